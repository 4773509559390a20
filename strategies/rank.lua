-- rank.lua: personalized ordering of a list the storefront already has
-- (search results, a category listing, the tabs of a menu: an entry that
-- is not an item is taken as a category path, "Home/Decor").  Items the
-- visitor is into come first: their category and brand affinities, what
-- they look at in this session, and what they told us (zero-party data:
-- a quiz or profile form, stored as customer attributes such as "style"
-- or "interests").  The storefront's order breaks ties, so a visitor
-- nobody knows sees the list unchanged.

local function stated(ctx, id)
  local a = ctx.customer.attrs
  local item = tailor.item(id)
  if not item then return 0 end
  local score = 0
  local tags = item.tags or {}
  for _, field in ipairs { "style", "interests" } do
    local said = a[field]
    if said then
      for _, tag in ipairs(tags) do
        if said:find(tag, 1, true) then score = score + 1 end
      end
    end
  end
  local budget = tonumber(a.budget_max)
  if budget and item.price and item.price <= budget then score = score + 0.5 end
  return score
end

local function rank(ctx)
  local who = ctx.customer.id or ctx.customer.anon or ""
  local like = tailor.affinity(who, ctx.items)
  local rows = {}
  for i, id in ipairs(ctx.items) do
    local s = (like[id] or 0) + stated(ctx, id)
    rows[#rows + 1] = { id = id, score = s, pos = i }
  end
  table.sort(rows, function(a, b)
    if a.score ~= b.score then return a.score > b.score end
    return a.pos < b.pos
  end)
  for i, row in ipairs(rows) do
    if i < row.pos and row.score > 0 then
      row.explain = "Moved up for you: it matches what you like"
    end
    row.pos = nil
  end
  return rows
end

return { rank = rank }
