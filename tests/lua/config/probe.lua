-- probe.lua: a test strategy that answers with what tailor.config shows it.
local function probe(ctx)
  local c = tailor.config
  local wrote, why = pcall(function() c.index.lapsed_days = 1 end)
  return {
    lapsed_days = c.index.lapsed_days,
    instruction_budget = c.lua.instruction_budget,
    max_k = c.decide.max_k,
    synchronous_full = c.store.synchronous_full,
    hidden = { db = c.db ~= nil, plugins = c.plugins ~= nil, coupons = c.coupons ~= nil },
    wrote = wrote,
    why = tostring(why),
  }
end

return { probe = probe }
