-- recommend.lua: what to show a visitor.
--
-- The first strategy: the most viewed items, leaving out what the visitor
-- already has in the cart.  ctx.k says how many the page wants.

local function recommend(ctx)
  local picks = tailor.most_viewed(ctx.k, { exclude = ctx.customer.cart })
  for _, item in ipairs(picks) do
    item.explain = "Popular right now"
  end
  return picks
end

return { recommend = recommend }
