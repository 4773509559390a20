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
    elseif case == "category" then
      -- opts.category made by an __index, then garbage made while the
      -- kernel reads its other options.
      local opts = setmetatable({ k = 3 }, { __index = function(_, key)
        if key == "category" then return string.rep("Cat", 20) .. tostring(ctx.context.n) end
        if key == "brand" then
          local junk = {}
          for i = 1, 20000 do junk[i % 100 + 1] = string.rep("z", 200) .. i end
        end
      end })
      return tailor.trending(nil, nil, opts)
    elseif case == "variants" then
      return { { id = tailor.experiment("e", { 1, 2 }, "v1"), reason = "similar", score = 1 } }
    end
    return {}
  end,
  -- A ranking whose second entry, asked for its id, swaps the first for an
  -- item the request never listed.
  rank = function(ctx)
    local list = { { id = "i1" } }
    list[2] = setmetatable({}, { __index = function(self, key)
      if key == "id" then
        rawset(list, 1, "not-in-the-request")
        rawset(self, "id", "i2")
        return "i2"
      end
    end })
    return list
  end,
  popup = function(ctx)
    local opts = { ttl = ctx.context.ttl, percent = ctx.context.percent or 10 }
    if ctx.context.typo then opts = { ttl = 3600, percnt = 10 } end
    if ctx.context.list then opts = { 3600, 10 } end
    local c, why = tailor.coupon("welcome", opts)
    return c and { name = "coupon", coupon = c.code, expires = c.expires } or { name = why }
  end,
}
