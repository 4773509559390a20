-- A strategy that hands tailor.* what a careless or hostile one might:
-- lists whose own __len claims any length, a coupon that never expires.
local function endless(list)
  return setmetatable(list, { __len = function() return math.maxinteger end })
end

return {
  recommend = function(ctx)
    local case = ctx.context.case
    if case == "affinity" then
      local like = tailor.affinity("v1", endless({ "i1" }))
      return { { id = "i1", reason = "similar", score = like.i1 or 0 } }
    elseif case == "exclude" then
      return tailor.trending(nil, nil, { k = 2, exclude = endless({ "i1" }) })
    elseif case == "session" then
      return tailor.session_next(endless({ "i1" }), { k = 2 })
    end
    return {}
  end,
  popup = function(ctx)
    local c, why = tailor.coupon("welcome", { ttl = ctx.context.ttl, percent = 10 })
    return c and { name = "coupon", coupon = c.code, expires = c.expires } or { name = why }
  end,
}
