-- session_recs.lua: product-page recommendations that follow the visitor's
-- session: what shoppers looked at next in sessions like this one.  It is
-- the strategy docs/evaluation.md backtests on recorded sessions:
--
--   tailor eval --train train.sessions --test test.pairs \
--               --strategy examples/strategies/session_recs.lua
--
-- The session kernel ranks what comes next after this session's views,
-- oldest first.  Items the visitor already saw are kept: visitors often go
-- back to one, and the kernel knows how likely that is.  When the session
-- says too little, items viewed together with the product on the page, then
-- the most viewed items, fill the list.

local function add(out, seen, rows, k)
  for _, row in ipairs(rows) do
    if #out >= k then return end
    if not seen[row.id] then
      seen[row.id] = true
      out[#out + 1] = row
    end
  end
end

local function recommend(ctx)
  local out, seen, k = {}, {}, ctx.k
  local items = ctx.session.items
  if #items == 0 and ctx.page.item then items = { ctx.page.item } end
  if #items > 0 then
    -- The visitor's own session is named so it is never its own neighbour.
    add(out, seen, tailor.session_next(items, { k = k, session = ctx.session.id }), k)
  end
  if #out < k and ctx.page.item then
    add(out, seen, tailor.viewed_together(ctx.page.item, { k = k }), k)
  end
  if #out < k then add(out, seen, tailor.most_viewed(k), k) end
  return out
end

return { recommend = recommend }
