-- A merchant's recommend.lua for decide_spec: the shipped logic
-- (lib/recs.lua, from strategies_base) with the shop's own merchandising
-- controls, which this test strategy reads from ctx.context.own.
local recs = require "lib.recs"

return {
  recommend = function(ctx)
    return recs.recommend(ctx, ctx.context.own or {})
  end,
}
