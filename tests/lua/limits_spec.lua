-- limits_spec.lua: what a strategy hands tailor.* is bounded.  A list is
-- read up to its first 10,000 entries whatever its own __len claims (the
-- loops over it run in C, where the instruction budget cannot stop them),
-- and a coupon lives at most ten years, with only the options it knows.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

local function shop()
  local e = assert(tailor.open { db = ":memory:", strategies = root .. "/tests/lua/limits" })
  for i = 1, 3 do
    assert(e:ingest { type = "item_upsert", item = { id = "i" .. i, price = 10, in_stock = true } })
    assert(e:ingest { type = "view", anon = "v1", session = "s1", item = "i" .. i })
  end
  return e
end

describe("limits on what strategies hand the engine", function()
  it("reads a list whose __len claims math.maxinteger up to its bound, and answers", function()
    local e = shop()
    for _, case in ipairs { "affinity", "exclude", "session" } do
      local started = os.clock()
      local d = assert(e:decide { kind = "recommend", anon = "v1", k = 2, context = { case = case } })
      assert.is_nil(d.fallback, case .. ": " .. tostring(d.error))
      assert.is_table(d.items, case)
      assert.is_true(os.clock() - started < 5, case .. " took too long")
    end
    e:close()
  end)

  it("keeps an opts.category that only an __index made while the kernel reads on", function()
    local e = shop()
    for n = 1, 10 do
      local d = assert(e:decide { kind = "recommend", anon = "v1", k = 2,
                                  context = { case = "category", n = n } })
      assert.is_nil(d.fallback, tostring(d.error))
      assert.is_table(d.items)
    end
    e:close()
  end)

  it("refuses variant names that are not strings", function()
    local e = shop()
    local d = assert(e:decide { kind = "recommend", anon = "v1", context = { case = "variants" } })
    assert.matches("variant names must be strings", tostring(d.error))
    e:close()
  end)

  it("checks a ranking on the entries it writes: no strategy code runs between", function()
    local e = shop()
    local d = assert(e:decide { kind = "rank", anon = "v1", items = { "i1", "i2" } })
    for _, it in ipairs(d.items or {}) do
      assert.are_not.equal("not-in-the-request", it.id)
    end
    assert.matches("item 2 not in the request's list", tostring(d.error))
    e:close()
  end)

  it("refuses a coupon ttl past ten years, and issues one within", function()
    local e = shop()
    local d = assert(e:decide { kind = "popup", anon = "v1", context = { ttl = 1e15 } })
    assert.matches("ttl must be from 1 to", tostring(d.error))
    d = assert(e:decide { kind = "popup", anon = "v1", context = { ttl = 3600 } })
    assert.is_nil(d.error, d.error)
    assert.is_true(d.result.expires > os.time() * 1000)
    e:close()
  end)

  it("names a coupon option it does not know, or one of the wrong type", function()
    local e = shop()
    for _, case in ipairs {
      { { typo = true }, "opts.percnt: unknown option (the options: ttl, percent)" },
      { { list = true }, "opts: option names are strings" },
      { { ttl = "3600" }, "opts.ttl: a whole number of seconds expected, got string" },
      { { ttl = "3 days" }, "opts.ttl: a whole number of seconds expected, got string" },
      { { ttl = 1.5 }, "opts.ttl: a whole number of seconds expected, got number" },
      { { ttl = 3600, percent = "10" }, "opts.percent: a number expected, got string" },
    } do
      local d = assert(e:decide { kind = "popup", anon = "v1", context = case[1] })
      assert.is_true(d.fallback, case[2])
      assert.is_truthy(tostring(d.error):find(case[2], 1, true), d.error)
    end
    e:close()
  end)
end)
