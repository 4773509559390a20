-- What a strategy might do that costs the host in C, not in Lua
-- instructions or Lua memory: the case is ctx.context.case.
local function endless()
  return setmetatable({}, { __len = function() return math.maxinteger // 2 end })
end

local cases = {
  remove = function() table.remove(endless(), 1) end,
  insert = function() table.insert(endless(), 1, "x") end,
  sort = function() table.sort(endless()) end,
  concat = function()
    return table.concat(setmetatable({}, { __index = function() return "" end }), "", 1,
                        math.maxinteger // 2)
  end,
  upper = function()
    local s = ("x"):rep(4 << 20)
    for _ = 1, 1e6 do local _ = s:upper() end
  end,
  -- An exclude list longer than 256 ids, with repeats: all of it holds.
  exclude = function()
    local ex = {}
    for i = 0, 299 do ex[#ex + 1] = "e" .. i end
    for i = 0, 50 do ex[#ex + 1] = "e" .. i end
    return tailor.most_viewed(3, { exclude = ex }),
           tailor.trending(nil, nil, { k = 3, in_stock = false, exclude = ex })
  end,
  -- session_next with the 30 best excluded: still k rows, since hundreds
  -- of candidates pass (it asked the kernel for 3k and filtered those).
  next = function()
    local ex = {}
    for _, r in ipairs(tailor.session_next({ "a" }, { k = 30, in_stock = false })) do
      ex[#ex + 1] = r.id
    end
    local rows = tailor.session_next({ "a" }, { k = 10, in_stock = false, exclude = ex })
    return { { id = "a", score = #rows, reason = "count" } }
  end,
  -- Host lists still take table.insert and sort (made whole first).
  rows = function()
    local rows = tailor.trending(nil, nil, { k = 2, in_stock = false })
    table.insert(rows, { id = "i3", reason = "added" })
    table.sort(rows, function(a, b) return a.id > b.id end)
    return rows
  end,
}

return {
  recommend = function(ctx)
    local r, more = cases[ctx.context.case]()
    for _, row in ipairs(more or {}) do r[#r + 1] = row end
    return r or {}
  end,
  popup = function(ctx)
    if ctx.context.case == "coupons" then
      for _ = 1, 1e6 do tailor.coupon("x") end
    end
    -- {t, t} twenty-four levels deep: 16 million paths to one table.
    local t = {}
    for _ = 1, 24 do t = { t, t } end
    return { name = "x", data = t }
  end,
  discount = function()
    -- The guard must see what is written: a raw percent, an item only
    -- through __index (not written, so the discount is on the whole cart).
    return setmetatable({ percent = 90 }, { __index = { item = "cheap" } })
  end,
}
