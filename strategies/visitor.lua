-- visitor.lua: who the visitor is now, for a shop that shows it or tags
-- its analytics with it: the segments of segments.lua they are in (read
-- through ctx.segments, as every handler sees them), their lifecycle and
-- the session's purchase propensity (nil until the shop's model is fitted:
-- the chance this visit ends in a purchase, which popup.lua reads).
-- Asked as the decision kind "visitor"; the demo shop shows it in its top
-- bar.

local defined = require("segments").segments

local function visitor(ctx)
  local names = {}
  for name in pairs(defined) do
    if ctx.segments[name] then names[#names + 1] = name end
  end
  table.sort(names)
  return { segments = names, lifecycle = ctx.customer.lifecycle, cluster = ctx.customer.cluster,
           propensity = ctx.session.propensity }
end

return { visitor = visitor }
