-- audiences.lua: retargeting.  The recency audience a visitor is in (one
-- at most: the engine's audiences partition the visitors, settings.lua
-- says how) and the bid multiplier an ad platform should use for it.
-- `tailor audiences export` lists the members of one for an ad platform.

local settings = require "lib.settings"

local function audiences(ctx)
  local id, anon = ctx.customer.id, ctx.customer.anon
  if not (id or anon) then return { audiences = {} } end
  local out = {}
  -- Both ids, so that an anonymous id is never read as a customer's.
  for _, a in ipairs(tailor.audiences(id, anon)) do
    for _, def in ipairs(settings.audiences) do
      if def.kind == a.kind and def.days == a.days then
        out[#out + 1] = { name = def.name, days = def.days, bid = def.bid }
      end
    end
  end
  return { audiences = out }
end

return { audiences = audiences }
