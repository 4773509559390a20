-- recommend.lua (rows_spec): one kernel list, handed back untouched, read
-- first, or read every way a strategy can read a table (page.mode).
local kept

local function kernel(ctx)
  local p = ctx.page
  if p.kernel == "trending" then return tailor.trending(nil, nil, { k = ctx.k * 2, in_stock = false }) end
  return tailor[p.kernel](p.item, { k = ctx.k * 2, in_stock = false })
end

-- What each way of reading a fresh list sees.
local function probe(ctx)
  local fresh = function() return kernel(ctx) end
  local r = {}
  r.len = #fresh()
  r.next = next(fresh()) ~= nil
  r.rawlen = rawlen(fresh())
  r.rawget = rawget(fresh(), 1).id
  r.index = fresh()[1].id
  local n = 0
  for _ in pairs(fresh()) do n = n + 1 end
  r.pairs = n
  n = 0
  for _ in ipairs(fresh()) do n = n + 1 end
  r.ipairs = n
  local t = fresh()
  table.insert(t, { id = "extra" })
  r.insert = #t
  t = fresh()
  table.sort(t, function(a, b) return a.id > b.id end)
  r.sorted = t[1].id
  local max = ""
  for _, row in ipairs(fresh()) do if row.id > max then max = row.id end end
  r.max = max
  t = fresh()
  setmetatable(t, {})
  r.setmetatable = rawlen(t)
  t = fresh()
  t[#t + 1] = { id = "more" }
  r.append = rawlen(t)
  t = fresh()
  r.plain = t[1] ~= nil and getmetatable(t) == nil
  r.type = type(fresh())
  r.metatable = getmetatable(fresh()) == nil
  local rawnext = pairs({})
  local k, v = rawnext(fresh())
  r.rawnext = k == 1 and type(v) == "table"
  -- read in part first (rows are made from the front), then every way
  local function part(i) local t = fresh(); local _ = t[i]; return t end
  local function count(t) local c = 0 for _ in pairs(t) do c = c + 1 end return c end
  t = part(2)
  r.part_pairs = count(t)
  t = part(1)
  r.part_rawlen = rawlen(t)
  t = part(1)
  local last = fresh()[#t].id
  table.remove(t)
  r.part_remove = #t .. "," .. rawlen(t)
  t = part(1)
  local first = t[1].id
  table.insert(t, 1, { id = "x" })
  r.part_insert = #t == r.len + 1 and t[2].id == first and t[#t].id == last
  t = part(1)
  table.sort(t, function(a, b) return a.id > b.id end)
  r.part_sorted = t[1].id
  t = fresh()
  for i in ipairs(t) do if i == 3 then break end end
  n = 0
  for _ in ipairs(t) do n = n + 1 end
  r.part_ipairs = n
  t = part(1)
  local walked, key = 0, 2
  repeat walked = walked + 1; key = next(t, key) until key == nil or type(key) ~= "number"
  r.part_next = key == nil and walked == r.len - 1
  t = part(1)
  t[1] = { id = "y" }
  r.part_set = t[1].id == "y" and t[#t].id == last and count(t) == r.len
  -- an object of a strict class: its class raises on unknown keys
  local Class = setmetatable({}, { __index = function(_, key) error("no field " .. tostring(key)) end })
  Class.__index = Class
  local obj = setmetatable({}, Class)
  r.strict = next(obj) == nil and rawlen(obj) == 0 and getmetatable(obj) == Class
  return r
end

return {
  recommend = function(ctx)
    local mode = ctx.page.mode
    if mode == "probe" then return { { id = kernel(ctx)[1].id, explain = probe(ctx) } } end
    if mode == "kept" then return kept end
    local rows = kernel(ctx)
    if mode == "keep" then kept = rows return {} end
    if mode == "untouched" then return rows end
    if mode == "wrapped" then return { items = rows } end
    -- read in part (the first rows made), then handed back
    if mode == "first" then local _ = rows[1] return rows end
    if mode == "first_wrapped" then local _ = rows[2] return { items = rows } end
    if mode == "edited" then rows[1].explain = "edited" return rows end
    -- "copied": the same rows as tables the strategy made
    local out = {}
    for i, r in ipairs(rows) do
      out[i] = { id = r.id, score = r.score, reason = r.reason, because = r.because }
    end
    if mode == "edited_copied" then out[1].explain = "edited" end
    return out
  end,
}
