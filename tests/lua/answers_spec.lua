-- answers_spec.lua: what a strategy answers is checked whole.  Ids are
-- UTF-8 text without NUL bytes, a ranking re-orders the request's entries
-- each once, field names are UTF-8, a popup is nil or a table of fields,
-- the margin guard covers every item a discount names, and default_k never
-- exceeds max_k.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

local function shop()
  local e = assert(tailor.open { db = ":memory:", strategies = root .. "/tests/lua/answers" })
  assert(e:ingest { type = "item_upsert", item = { id = "i1", price = 10, in_stock = true } })
  assert(e:ingest { type = "item_upsert", item = { id = "i2", price = 10, in_stock = true } })
  return e
end

describe("the answers of strategies", function()
  it("refuses an id with a NUL byte instead of writing another item's", function()
    local e = shop()
    local d = assert(e:decide { kind = "recommend", anon = "v1", context = { case = "nul" } })
    assert.is_true(d.fallback)
    assert.matches("without NUL", d.error)
    d = assert(e:decide { kind = "recommend", anon = "v1" })
    assert.is_nil(d.fallback, d.error)
    assert.are.equal("i1", d.items[1].id)
    e:close()
  end)

  it("hands the module an explanation with a NUL byte as it is (valid JSON)", function()
    local e = shop()
    local d = assert(e:decide { kind = "recommend", anon = "v1", context = { case = "nul_text" } })
    assert.is_nil(d.fallback, d.error)
    assert.are.equal("a\0b", d.items[1].explain)
    e:close()
  end)

  it("takes each entry of a ranking's list once, no more", function()
    local e = shop()
    local d = assert(e:decide { kind = "rank", anon = "v1", items = { "i1", "i2" },
                                context = { case = "twice" } })
    assert.is_true(d.fallback)
    assert.matches("item 2 repeats an entry", d.error)
    assert.are.same({ "i1", "i2" }, { d.items[1].id, d.items[2].id })
    d = assert(e:decide { kind = "rank", anon = "v1", items = { "i1", "i2" },
                          context = { case = "more" } })
    assert.is_true(d.fallback)
    assert.matches("5 items for a list of 2", d.error)
    assert.are.equal(2, #d.items)
    -- A list that holds an id twice may be ranked with it twice.
    d = assert(e:decide { kind = "rank", anon = "v1", items = { "i2", "i1", "i2" } })
    assert.is_nil(d.fallback, d.error)
    assert.are.same({ "i2", "i1", "i2" }, { d.items[1].id, d.items[2].id, d.items[3].id })
    e:close()
  end)

  it("refuses a field name that is not UTF-8, so the answer stays JSON", function()
    local e = shop()
    local d = assert(e:decide { kind = "popup", anon = "v1", context = { case = "key" } })
    assert.is_true(d.fallback)
    assert.matches("field name is not valid UTF%-8", d.error)
    d = assert(e:decide { kind = "popup", anon = "v1" })
    assert.are.equal("ok", d.result.title)
    e:close()
  end)

  it("refuses a popup that is not a table of fields, or a documented field of the wrong type", function()
    local e = shop()
    for case, why in pairs {
      string = "popup returned a string: return nil or a table of fields",
      list = "popup returned a list: return nil or a table of fields",
      mixed = "popup returned a list: return nil or a table of fields",
      percent = "popup returned a popup: 'percent' must be a number from 0 to 100",
      over = "'percent' must be a number from 0 to 100",
      coupon = "'coupon' must be a string",
      name = "'name' must be a string",
      expires = "'expires' must be a number",
    } do
      local d = assert(e:decide { kind = "popup", anon = "v1", context = { case = case } })
      assert.is_true(d.fallback, case)
      assert.is_nil(d.result, case)
      assert.matches("^recommend%.lua:%d+: popup returned ", d.error)
      assert.is_truthy(d.error:find(why, 1, true), d.error)
    end
    local d = assert(e:decide { kind = "popup", anon = "v1" })
    assert.is_nil(d.fallback, d.error)
    assert.are.equal("ok", d.result.title)
    e:close()
  end)

  it("guards the margin of every item a discount names, however many", function()
    local e = shop()
    for i = 1, 300 do
      assert(e:ingest { type = "item_upsert", item = { id = "c" .. i, price = 100 } })
    end
    assert(e:ingest { type = "item_upsert", item = { id = "costly", price = 100, cost = 90 } })
    for _, n in ipairs { 10, 299 } do
      local d = assert(e:decide { kind = "discount", anon = "v1", context = { n = n } })
      assert.is_nil(d.fallback, d.error)
      assert.is_true(d.result.capped, n .. " items")
      assert.is_true(d.result.percent < 10, n .. " items: " .. d.result.percent)
    end
    local d = assert(e:decide { kind = "discount", anon = "v1", context = { case = "string" } })
    assert.is_true(d.fallback)
    assert.matches("'items' must be a list of item ids", d.error)
    e:close()
  end)

  it("guards the margin of a discount's category, and its reason says the percent given", function()
    local e = shop()
    assert(e:ingest { type = "item_upsert",
                      item = { id = "hat", price = 100, cost = 80, category = "Acc/Hats/Wool" } })
    assert(e:ingest { type = "item_upsert", item = { id = "cap", price = 100, category = "Acc/Hats" } })
    assert(e:ingest { type = "item_upsert",
                      item = { id = "bag", price = 100, cost = 95, category = "Acc/Hatsx" } })
    local d = assert(e:decide { kind = "discount", anon = "v1", context = { case = "category" } })
    assert.is_nil(d.fallback, d.error)
    -- The hat (inside the category) keeps 15% over its cost: 5% at most;
    -- the bag of another category does not count.
    assert.are.equal(5, d.result.percent)
    assert.is_true(d.result.capped)
    assert.are.equal("We miss you: 5% off hats", d.result.reason)
    e:close()
  end)

  it("refuses a default k larger than the largest k a request may ask for", function()
    local e, err = tailor.open { db = ":memory:", strategies = "",
                                 decide = { default_k = 250, max_k = 20 } }
    assert.is_nil(e)
    assert.matches("'decide.default_k' %(250%) must be from 1 to 'decide.max_k' %(20%)",
                   tostring(err))
    e, err = tailor.open { db = ":memory:", strategies = "", decide = { default_k = 0 } }
    assert.is_nil(e)
    assert.matches("default_k", tostring(err))
    e = assert(tailor.open { db = ":memory:", strategies = "", decide = { default_k = 20, max_k = 20 } })
    e:close()
  end)
end)
