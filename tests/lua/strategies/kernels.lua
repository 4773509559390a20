-- kernels.lua: a test strategy that hands the request's page to one kernel,
-- so specs can drive every kernel through the real sandbox and engine.
local function recommend(ctx)
  local p = ctx.page
  if p.kernel == "also_bought" or p.kernel == "bought_together"
      or p.kernel == "viewed_together" then
    return tailor[p.kernel](p.items or p.item, { k = ctx.k, category = p.category,
                                                 max_price = p.max_price })
  elseif p.kernel == "session_next" then
    -- The visitor is on the page of their last view: not that one again
    -- (p.repeats: the session's items may come back).
    local rows = tailor.session_next(ctx.session.items, { k = ctx.k, session = ctx.session.id,
                                                          kernel = p.name, rerank = p.rerank,
                                                          exclude = not p.repeats and ctx.session.items or nil })
    for _, row in ipairs(rows) do row.explain = "after " .. table.concat(ctx.session.items, ",") end
    return rows
  elseif p.kernel == "products_for" or p.kernel == "read_next" or p.kernel == "content_for" then
    return tailor[p.kernel](p.item, { k = ctx.k })
  elseif p.kernel == "similar" then
    return tailor.similar(p.item, { k = ctx.k })
  elseif p.kernel == "customer" then
    -- Echo the figures through explanations, so the spec can read them.
    local c = tailor.customer(p.who)
    local out = {}
    for _, a in ipairs(tailor.audiences(p.who)) do
      out[#out + 1] = { id = p.item, explain = "audience " .. a.kind .. " " .. a.days }
    end
    out[#out + 1] = { id = p.item, explain = c.lifecycle .. " orders=" .. c.orders }
    return { items = out }
  elseif p.kernel == "opts" then
    -- The request's options as written, for the errors a mistake in them gives.
    return tailor[p.name](p.item, p.opts)
  elseif p.kernel == "trending" then
    return tailor.trending(p.key, p.value, { k = ctx.k })
  elseif p.kernel == "recently_viewed" then
    local out = {}
    for _, id in ipairs(tailor.recently_viewed(ctx.customer.id or ctx.customer.anon, ctx.k)) do
      out[#out + 1] = { id = id, reason = "recently_viewed" }
    end
    return out
  end
  error("unknown kernel " .. tostring(p.kernel))
end

return { recommend = recommend }
