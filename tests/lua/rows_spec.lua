-- rows_spec.lua: kernel lists in a decision wait in C until read.  A list
-- handed back untouched is written from C; it must answer exactly as the
-- same rows made into tables, under every merchandising control, and
-- every way of reading a list must see all its rows.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

local function shop()
  local e = assert(tailor.open {
    db = ":memory:", strategies = root .. "/tests/lua/rows",
    index = { cooc_half_life_days = 0, trend_half_life_days = 0 },
  })
  local brands = { "Acme", "Bolt", "Crux" }
  for i = 1, 12 do
    assert(e:ingest { type = "item_upsert", item = { id = "i" .. i, price = 10 * i,
                      brand = brands[i % 3 + 1], category = "Cat/" .. (i % 2), in_stock = i ~= 5 } })
  end
  -- Sessions of four views picked by a fixed LCG; every other one buys them.
  for s = 1, 80 do
    local x, lines = s, {}
    for _ = 1, 4 do
      x = (x * 1103515245 + 12345) % 2147483648
      local id = "i" .. (x // 65536 % 12 + 1)
      lines[#lines + 1] = { id = id }
      assert(e:ingest { type = "view", anon = "v" .. s, session = "s" .. s, item = id })
    end
    if s % 2 == 0 then
      assert(e:ingest { type = "purchase", anon = "v" .. s, order_id = "o" .. s, items = lines })
    end
  end
  return e
end

local kernels = {
  { kernel = "trending" },
  { kernel = "viewed_together", item = "i2" },
  { kernel = "also_bought", item = "i2" },
  { kernel = "similar", item = "i2" },
}

local controls = {
  {},
  { pin = { { item = "i7", slot = 1 }, { item = "i3", slot = 9 } } },
  { boost = { "i4", "brand:Bolt" }, bury = { "i1" } },
  { exclude = { "i2", "i8" } },
  { filter = { brand = { "Acme", "Crux" }, max_price = 90 } },
  { filter = { in_stock = false }, k = 3 },
}

local function decide(e, page, extra)
  local req = { kind = "recommend", anon = "v1", k = 5, page = page }
  for key, v in pairs(extra or {}) do req[key] = v end
  local d = assert(e:decide(req))
  assert.is_nil(d.error)
  return d
end

local function with(page, mode)
  local p = { mode = mode }
  for k, v in pairs(page) do p[k] = v end
  return p
end

describe("kernel rows kept in C until read", function()
  it("answer as the same rows made into tables, under every control", function()
    local e = shop()
    for _, page in ipairs(kernels) do
      for _, c in ipairs(controls) do
        local want = decide(e, with(page, "copied"), c)
        assert.is_true(#want.items > 0, page.kernel)
        assert.are.same(want.items, decide(e, with(page, "untouched"), c).items)
        assert.are.same(want.items, decide(e, with(page, "wrapped"), c).items)
        assert.are.same(want.items, decide(e, with(page, "first"), c).items)
        assert.are.same(want.items, decide(e, with(page, "first_wrapped"), c).items)
        assert.are.same(decide(e, with(page, "edited_copied"), c).items,
                        decide(e, with(page, "edited"), c).items)
      end
    end
    e:close()
  end)

  it("are whole to every way of reading a table", function()
    local e = shop()
    local d = decide(e, with(kernels[1], "probe"))
    local p, n = d.items[1].explain, 10 -- k * 2 rows, the shop has 12 items
    assert.are.same({
      len = n, next = true, rawlen = n, rawget = d.items[1].id, index = d.items[1].id,
      pairs = n, ipairs = n, insert = n + 1, sorted = p.max, max = p.max, setmetatable = n,
      append = n + 1, plain = true, type = "table", metatable = true, rawnext = true,
      strict = true, part_pairs = n, part_rawlen = n, part_remove = (n - 1) .. "," .. (n - 1),
      part_insert = true, part_sorted = p.max, part_ipairs = n, part_set = true, part_next = true,
    }, p)
    e:close()
  end)

  it("keep their rows in a list kept past its call", function()
    local e = shop()
    local want = decide(e, with(kernels[2], "untouched")).items
    decide(e, with(kernels[2], "keep"))
    assert.are.same(want, decide(e, with(kernels[2], "kept")).items)
    e:close()
  end)
end)
