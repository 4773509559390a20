-- bounded_spec.lua: work a strategy makes the host do in C is bounded:
-- table.insert/remove/sort/concat over a made-up length, JSON of a table
-- reached by many paths, large strings worked on in a loop, coupons issued
-- in a loop.  Each fails the handler quickly with a message; the host goes on.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

local function shop()
  local e = assert(tailor.open { db = ":memory:", strategies = root .. "/tests/lua/bounded" })
  for i = 1, 3 do
    assert(e:ingest { type = "item_upsert", item = { id = "i" .. i, price = 10, in_stock = true } })
    assert(e:ingest { type = "view", anon = "v1", item = "i" .. i })
  end
  assert(e:ingest { type = "item_upsert", item = { id = "cheap", price = 100, cost = 1 } })
  assert(e:ingest { type = "item_upsert", item = { id = "costly", price = 100, cost = 90 } })
  assert(e:ingest { type = "add_to_cart", anon = "v1", item = "costly" })
  return e
end

local function quick(e, req)
  local started = os.clock()
  local d = assert(e:decide(req))
  assert.is_true(os.clock() - started < 20, "took too long")
  return d
end

describe("work a strategy makes the host do in C", function()
  it("refuses table loops over a made-up length", function()
    local e = shop()
    for case, msg in pairs { remove = "table.remove: not on a table with a __len",
                             insert = "table.insert: not on a table with a __len",
                             sort = "table.sort: not on a table with a __len",
                             concat = "table.concat: more than" } do
      local d = quick(e, { kind = "recommend", anon = "v1", context = { case = case } })
      assert.is_true(d.fallback, case)
      assert.matches(msg, d.error, 1, true)
    end
    e:close()
  end)

  it("still inserts into and sorts the host's lists", function()
    local e = shop()
    local d = quick(e, { kind = "recommend", anon = "v1", k = 3, context = { case = "rows" } })
    assert.is_nil(d.fallback, d.error)
    assert.are.equal("i3", d.items[1].id)
    e:close()
  end)

  it("excludes every id of a long exclude list", function()
    local e = shop()
    local lines = {}
    for i = 0, 304 do
      lines[#lines + 1] = string.format(
        '{"type":"item_upsert","item":{"id":"e%d","price":5,"in_stock":true}}', i)
      for _ = 1, 305 - i do
        lines[#lines + 1] = string.format('{"type":"view","item":"e%d","anon":"x%d"}', i, i)
      end
    end
    assert(e:ingest_batch(table.concat(lines, "\n")))
    local d = quick(e, { kind = "recommend", anon = "v1", k = 6, context = { case = "exclude" } })
    assert.is_nil(d.fallback, d.error)
    assert.is_true(#d.items > 0)
    for _, it in ipairs(d.items) do
      local n = tonumber(it.id:match("^e(%d+)$"))
      assert.is_true(n == nil or n >= 300, it.id .. " was excluded")
    end
    e:close()
  end)

  it("gives session_next's k rows when enough candidates pass its filters", function()
    local e = shop()
    local lines = { '{"type":"item_upsert","item":{"id":"a","price":5}}' }
    for i = 1, 150 do
      lines[#lines + 1] = string.format('{"type":"view","item":"a","anon":"s%d","session":"s%d"}', i, i)
      for j = 1, 4 do
        lines[#lines + 1] = string.format(
          '{"type":"view","item":"x%d_%d","anon":"s%d","session":"s%d"}', i, j, i, i)
      end
    end
    assert(e:ingest_batch(table.concat(lines, "\n")))
    local d = quick(e, { kind = "recommend", anon = "v1", k = 1, context = { case = "next" } })
    assert.is_nil(d.fallback, d.error)
    assert.are.equal(10, d.items[1].score)
    e:close()
  end)

  it("charges work on large strings to the budget", function()
    local e = shop()
    local d = quick(e, { kind = "recommend", anon = "v1", context = { case = "upper" } })
    assert.is_true(d.fallback)
    assert.matches("instruction budget exhausted", d.error)
    e:close()
  end)

  it("stops JSON of a table reached by millions of paths", function()
    local e = shop()
    local d = quick(e, { kind = "popup", anon = "v1" })
    assert.is_true(d.fallback)
    assert.matches("budget exhausted", d.error)
    e:close()
  end)

  it("issues at most 16 coupons a call", function()
    local e = shop()
    local d = quick(e, { kind = "popup", anon = "v1", context = { case = "coupons" } })
    assert.is_true(d.fallback)
    assert.matches("at most 16 coupons in one call", d.error)
    e:close()
  end)

  it("guards a discount on what is written, not on what __index shows", function()
    local e = shop()
    local d = quick(e, { kind = "discount", anon = "v1" })
    assert.is_nil(d.fallback, d.error)
    assert.is_true(d.result.capped)
    assert.is_true(d.result.percent < 90)
    assert.is_nil(d.result.item)
    e:close()
  end)
end)
