-- decide_spec.lua: decisions through the real engine: tailor.item hands
-- out copies of a catalog parsed once per version, ctx is read-only, rank
-- re-orders the request's own list, answers are well-formed JSON values.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

local function engine()
  local e = assert(tailor.open {
    db = ":memory:", strategies = root .. "/tests/lua/decide",
    lua = { reload_interval_ms = 0 },
  })
  assert(e:ingest { type = "item_upsert", item = { id = "a", name = "Hat", price = 10, tags = { "wool" } } })
  assert(e:ingest { type = "item_upsert", item = { id = "b", name = "Scarf", price = 20 } })
  return e
end

describe("decisions", function()
  it("hands out copies of the catalog: a change stays in the strategy's table", function()
    local e = engine()
    local d = assert(e:decide { kind = "recommend", page = { type = "mutate" } })
    assert.is_nil(d.fallback)
    assert.are.equal("Hat/wool", d.items[1].explain)
    e:close()
  end)

  it("names a visitor's category and brand affinities from their own lists", function()
    local e = engine()
    -- ids differ between the two lists: Headwear and Footwear are
    -- categories 0 and 1, Zed is brand 0
    assert(e:ingest { type = "item_upsert", item = { id = "c", name = "Cap", price = 5,
                                                     category = "Headwear" } })
    assert(e:ingest { type = "item_upsert", item = { id = "d", name = "Boot", price = 50,
                                                     category = "Footwear", brand = "Zed" } })
    assert(e:ingest { type = "view", item = "d", anon = "v1" })
    local d = assert(e:decide { kind = "recommend", anon = "v1", page = { type = "affinities" } })
    assert.is_nil(d.fallback)
    assert.are.equal("1:Footwear|1:Zed", d.items[1].explain)
    e:close()
  end)

  it("reads one field of an item as the whole table has it", function()
    local e = engine()
    assert(e:ingest { type = "view", item = "a", anon = "v1" })
    local d = assert(e:decide { kind = "recommend", page = { type = "field" } })
    assert.is_nil(d.fallback)
    assert.are.equal("Hat|10|true|1|wool|nil|nil|b", d.items[1].explain)
    e:close()
  end)

  it("sees a catalog update on the next call", function()
    local e = engine()
    assert.are.equal("Hat:10", e:decide { kind = "recommend" }.items[1].explain)
    assert(e:ingest { type = "item_upsert", item = { id = "a", name = "Cap", price = 12 } })
    assert.are.equal("Cap:12", e:decide { kind = "recommend" }.items[1].explain)
    e:close()
  end)

  it("refuses a write to ctx, with the fallback", function()
    local e = engine()
    local d = assert(e:decide { kind = "recommend", page = { type = "write_ctx" } })
    assert.is_true(d.fallback)
    assert.matches("ctx is read%-only %(assignment to ctx.k%)", d.error)
    e:close()
  end)

  it("lists nothing under pairs(ctx) and keeps its metatable to itself", function()
    local e = engine()
    local d = assert(e:decide { kind = "recommend", page = { type = "pairs_ctx" } })
    assert.is_nil(d.error)
    assert.are.equal("0|recommend|ctx", d.items[1].explain)
    e:close()
  end)

  it("builds ctx fields when read: a kept ctx answers what was read, and names what was not", function()
    local e = engine()
    assert(e:decide { kind = "recommend", anon = "v1", page = { type = "keep" }, context = { x = 7 } })
    local d = assert(e:decide { kind = "recommend", page = { type = "late_page" } })
    assert.is_nil(d.error)
    -- kind and the visitor's ids are the ctx's own: readable later too
    assert.are.equal("keep/recommend/nil/v1", d.items[1].explain)
    d = assert(e:decide { kind = "recommend", page = { type = "late_context" } })
    assert.is_true(d.fallback)
    assert.matches("ctx.context read after the call ctx was given to had ended", d.error)
    e:close()
  end)

  it("ranks the request's own list", function()
    local e = engine()
    local d = assert(e:decide { kind = "rank", items = { "a", "b" } })
    assert.are.equal("b", d.items[1].id)
    assert.are.equal("a", d.items[2].id)
    local bad, msg = e:decide { kind = "rank" }
    assert.is_nil(bad)
    assert.matches("'items' is required for rank", msg)
    e:close()
  end)

  it("never recommends what the page already shows (exclude), whatever the strategy says", function()
    local e = engine()
    local d = assert(e:decide { kind = "recommend", page = { type = "everything" }, exclude = { "a" } })
    assert.are.equal(1, #d.items)
    assert.are.equal("b", d.items[1].id)
    local bad, msg = e:decide { kind = "recommend", exclude = "a" }
    assert.is_nil(bad)
    assert.matches("'exclude' must be a list of item ids", msg)
    e:close()
  end)

  it("the shipped strategy fills its widget around what the page shows", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/strategies" })
    for _, id in ipairs { "a", "b", "c", "d", "e" } do
      assert(e:ingest { type = "item_upsert", item = { id = id, price = 10, category = "Hats" } })
      for v = 1, 3 do assert(e:ingest { type = "view", item = id, anon = "v" .. v }) end
    end
    local first = assert(e:decide { kind = "recommend", anon = "v9", k = 2, page = { type = "home" } })
    local shown = {}
    for _, it in ipairs(first.items) do shown[#shown + 1] = it.id end
    assert.are.equal(2, #shown)
    local second = assert(e:decide { kind = "recommend", anon = "v9", k = 2, page = { type = "home" },
                                     exclude = shown })
    assert.is_nil(second.fallback)
    assert.are.equal(2, #second.items)
    for _, it in ipairs(second.items) do
      assert.are_not.equal(shown[1], it.id)
      assert.are_not.equal(shown[2], it.id)
    end
    e:close()
  end)

  -- A small shop for the merchandising controls: two brands, four prices,
  -- one item sold out, one the strategy never returns.
  local function shop()
    local e = assert(tailor.open {
      db = ":memory:", strategies = root .. "/tests/lua/decide",
      lua = { reload_interval_ms = 0 },
    })
    for _, it in ipairs {
      { id = "a", brand = "Acme", price = 10 }, { id = "b", brand = "Bolt", price = 20 },
      { id = "c", brand = "Acme", price = 30 }, { id = "d", brand = "Bolt", price = 40, in_stock = false },
      { id = "e", brand = "Acme", price = 50 },
    } do
      assert(e:ingest { type = "item_upsert", item = it })
    end
    return e
  end
  local function ids(e, req)
    req.kind = "recommend"
    req.page = req.page or { type = "list" }
    req.context = req.context or { ids = { "a", "b", "c", "d" } }
    local d = assert(e:decide(req))
    assert.is_nil(d.error)
    local out = {}
    for i, it in ipairs(d.items) do out[i] = it.id end
    return table.concat(out, ","), d
  end

  it("leaves sold-out items out of a recommend answer unless filter.in_stock is false", function()
    local e = shop()
    assert.are.equal("a,b,c", ids(e, {}))
    assert.are.equal("a,b,c,d", ids(e, { filter = { in_stock = false } }))
    e:close()
  end)

  it("filters by brand and by price band, whatever the strategy returns", function()
    local e = shop()
    assert.are.equal("a,c", ids(e, { filter = { brand = "Acme" } }))
    assert.are.equal("a,b,c", ids(e, { filter = { brand = { "Acme", "Bolt" } } }))
    assert.are.equal("", ids(e, { filter = { brand = "Nobody" } }))
    assert.are.equal("b,c", ids(e, { filter = { min_price = 15, max_price = 35 } }))
    assert.are.equal("c", ids(e, { filter = { brand = "Acme", min_price = 15 } }))
    e:close()
  end)

  it("pins an item to a slot, from the strategy's list or not", function()
    local e = shop()
    assert.are.equal("c,a,b", ids(e, { pin = { { item = "c", slot = 1 } } }))
    local got, d = ids(e, { pin = { { item = "e", slot = 2 } } })
    assert.are.equal("a,e,b,c", got)
    assert.are.equal("pinned", d.items[2].reason)
    assert.are.equal("listed", d.items[1].explain)
    -- k counts the pin; a slot past a short list comes last; one past k is not shown.
    assert.are.equal("a,e", ids(e, { k = 2, pin = { { item = "e", slot = 2 } } }))
    assert.are.equal("a,b,c,e", ids(e, { k = 9, pin = { { item = "e", slot = 8 } } }))
    assert.are.equal("a,b", ids(e, { k = 2, pin = { { item = "e", slot = 3 } } }))
    -- A pin overrides the filter, never exclude or stock.
    assert.are.equal("e,a,c", ids(e, { filter = { brand = "Acme", max_price = 35 }, pin = { { item = "e", slot = 1 } } }))
    assert.are.equal("a,b,c", ids(e, { pin = { { item = "d", slot = 1 } } }))
    assert.are.equal("b,c", ids(e, { exclude = { "e", "a" }, pin = { { item = "e", slot = 1 } } }))
    assert.are.equal("Featured", d.items[2].explain) -- every item says why
    e:close()
  end)

  it("puts back no pin for the page's own item or one in the visitor's cart", function()
    local e = shop()
    assert(e:ingest { type = "add_to_cart", item = "e", anon = "v1" })
    assert.are.equal("a,b,c", ids(e, { anon = "v1", pin = { { item = "e", slot = 1 } } }))
    assert.are.equal("a,b,c", ids(e, { page = { type = "list", item = "e" },
                                       pin = { { item = "e", slot = 2 } } }))
    -- Another visitor, another page: the pin is shown.
    assert.are.equal("e,a,b,c", ids(e, { anon = "v2", pin = { { item = "e", slot = 1 } } }))
    -- One the strategy returns itself stays where the pin puts it.
    assert.are.equal("c,a,b", ids(e, { anon = "v1", page = { type = "list", item = "c" },
                                       pin = { { item = "c", slot = 1 } } }))
    e:close()
  end)

  it("says where an error that is not a string was raised", function()
    local e = shop()
    for page, want in pairs {
      error_table = "^recommend%.lua:%d+: %(error object is a table value%)",
      error_tostring_fails = "^recommend%.lua:%d+: %(error object is a table value%)",
      error_tostring_loops = "^recommend%.lua:%d+: %(error object is a table value%)",
      error_tostring = "^recommend%.lua:%d+: out of hats",
    } do
      local d = assert(e:decide { kind = "recommend", page = { type = page } })
      assert.is_true(d.fallback, page)
      assert.matches(want, d.error, 1, false, page)
    end
    local d = assert(e:decide { kind = "recommend", page = { type = "list" }, context = { ids = { "a" } } })
    assert.is_nil(d.fallback) -- and the state serves the next call
    e:close()
  end)

  it("refuses an answer past 32 MiB of JSON, naming the item", function()
    local e = shop()
    local d = assert(e:decide { kind = "recommend", k = 4, page = { type = "huge" } })
    assert.is_true(d.fallback)
    assert.matches("item %d+: .*the answer is larger than 32 MiB as JSON", d.error)
    d = assert(e:decide { kind = "recommend", k = 4, page = { type = "huge" }, context = { plain = true } })
    assert.is_true(d.fallback)
    assert.matches("item 2: explain: the answer is larger than 32 MiB as JSON", d.error)
    e:close()
  end)

  it("boosts and buries items and brands", function()
    local e = shop()
    assert.are.equal("b,a,c", ids(e, { boost = { "brand:Bolt" } }))
    assert.are.equal("c,a,b", ids(e, { boost = { "c" } }))
    assert.are.equal("b,c,a", ids(e, { bury = { "a" } }))
    -- Bury wins over boost; each group keeps the strategy's order.
    assert.are.equal("b,a,c", ids(e, { bury = { "brand:Acme" }, boost = { "a" } }))
    assert.are.equal("a,c,b", ids(e, { boost = { "brand:Acme" } }))
    -- With k below the list, a buried item gives way to the next one.
    assert.are.equal("b,c", ids(e, { k = 2, bury = { "a" } }))
    e:close()
  end)

  it("hands the controls to the strategy as ctx fields", function()
    local e = shop()
    local d = assert(e:decide { kind = "recommend", page = { type = "controls" },
      filter = { brand = "Acme", min_price = 5, max_price = 50, in_stock = false },
      pin = { { item = "c", slot = 2 } }, boost = { "brand:Acme" }, bury = { "b" } })
    assert.are.equal("Acme|5.0|50.0|false|1|c@2|brand:Acme|b", d.items[1].explain)
    d = assert(e:decide { kind = "recommend", page = { type = "controls" } })
    assert.are.equal("|nil|nil|true|0|||", d.items[1].explain)
    e:close()
  end)

  it("keeps the controls in the fallback", function()
    local e = shop()
    for _, id in ipairs { "a", "b", "c", "d", "e" } do
      assert(e:ingest { type = "view", item = id, anon = "v1" })
    end
    local d = assert(e:decide { kind = "recommend", page = { type = "boom" }, filter = { brand = "Bolt" } })
    assert.is_true(d.fallback)
    assert.are.equal(1, #d.items)
    assert.are.equal("b", d.items[1].id)
    d = assert(e:decide { kind = "recommend", page = { type = "boom" }, k = 2,
                          filter = { max_price = 25 }, pin = { { item = "c", slot = 1 } } })
    assert.are.equal("c", d.items[1].id)
    assert.are.equal(2, #d.items)
    e:close()
  end)

  it("refuses a malformed control, naming the field", function()
    local e = shop()
    for _, case in ipairs {
      { { filter = "Acme" }, "'filter' must be an object" },
      { { filter = { brand = 5 } }, "'filter.brand' must be a brand name" },
      { { filter = { brand = {} } }, "'filter.brand' must be a brand name" },
      { { filter = { brnd = "Acme" } }, "unknown field 'filter.brnd'" },
      { { filter = { min_price = -1 } }, "'filter.min_price' must be a non%-negative number" },
      { { filter = { max_price = 0 } }, "'filter.max_price' must be a positive number" },
      { { filter = { min_price = 30, max_price = 20 } }, "'filter.max_price' is below 'filter.min_price'" },
      { { filter = { in_stock = "no" } }, "'filter.in_stock' must be true or false" },
      { { pin = { item = "a", slot = 1 } }, "'pin' must be a list of {item, slot}" },
      { { pin = { { item = "a" } } }, "'pin%[0%].slot' must be an integer from 1 to" },
      { { pin = { { slot = 1 } } }, "'pin%[0%].item' must be an item id" },
      { { pin = { { item = "a", slot = 1 }, { item = "b", slot = 1 } } }, "'pin%[1%]' repeats" },
      { { pin = { { item = "a", slot = 1, at = 2 } } }, "unknown field 'pin%[0%].at'" },
      { { boost = "brand:Acme" }, "'boost' must be a list of item ids" },
      { { bury = { {} } }, "'bury%[0%]' must be an item id" },
    } do
      local req = case[1]
      req.kind = "recommend"
      local bad, msg = e:decide(req)
      assert.is_nil(bad)
      assert.matches(case[2], msg)
    end
    e:close()
  end)

  -- The shipped strategy under controls: eight items, Bolt's the most viewed.
  local function shipped(folder)
    local e = assert(tailor.open {
      db = ":memory:", strategies = root .. (folder or "/strategies"),
      strategies_base = folder and root .. "/strategies" or nil, lua = { reload_interval_ms = 0 },
    })
    for i = 1, 4 do
      assert(e:ingest { type = "item_upsert", item = { id = "a" .. i, brand = "Acme", price = 10 * i, category = "Hats" } })
      assert(e:ingest { type = "item_upsert", item = { id = "b" .. i, brand = "Bolt", price = 10 * i, category = "Caps" } })
      for v = 1, 10 - i do assert(e:ingest { type = "view", item = "b" .. i, anon = "w" .. v }) end
      for v = 1, 5 - i do assert(e:ingest { type = "view", item = "a" .. i, anon = "w" .. v }) end
    end
    return e
  end
  local function home(e, req)
    req.kind, req.anon, req.page = "recommend", "v9", { type = "home" }
    local d = assert(e:decide(req))
    assert.is_nil(d.error)
    local out = {}
    for i, it in ipairs(d.items) do out[i] = it.id end
    return table.concat(out, ",")
  end

  it("the shipped strategy fills its widget under the request's filter", function()
    local e = shipped()
    assert.are.equal("b1,b2,b3", home(e, { k = 3 }))
    assert.are.equal("a1,a2,a3", home(e, { k = 3, filter = { brand = "Acme" } }))
    assert.are.equal("b2,b3,a2", home(e, { k = 3, filter = { min_price = 15, max_price = 30 } }))
    assert.are.equal("a1,a2,b2", home(e, { k = 3, boost = { "brand:Acme" }, bury = { "b1" } }))
    assert.are.equal("b1,a4,b2", home(e, { k = 3, pin = { { item = "a4", slot = 2 } } }))
    e:close()
  end)

  it("a strategy applies its own controls with lib/recs.lua", function()
    local e = shipped("/tests/lua/merch")
    assert.are.equal("a1,a2,a3", home(e, { k = 3, context = { own = { filter = { brand = "Acme" } } } }))
    -- Both filters hold: the request's price band and the strategy's brand.
    assert.are.equal("a2,a3", home(e, { k = 3, filter = { min_price = 15, max_price = 30 },
                                        context = { own = { filter = { brand = "Acme" } } } }))
    assert.are.equal("a1,a2,b1", home(e, { k = 3, context = { own = { boost = { "brand:Acme" } } } }))
    assert.are.equal("b2,b3,b4", home(e, { k = 3, context = { own = { bury = { "b1" }, filter = { brand = "Bolt" } } } }))
    assert.are.equal("b1,b2,a4", home(e, { k = 3, context = { own = { pin = { { item = "a4", slot = 3 } } } } }))
    -- The request's pin takes the slot; the strategy's pin for it gives way.
    assert.are.equal("b1,a3,b2", home(e, { k = 3, pin = { { item = "a3", slot = 2 } },
                                           context = { own = { pin = { { item = "a4", slot = 2 } } } } }))
    e:close()
  end)

  it("writes scores with six significant digits and explanations as given", function()
    local e = engine()
    local d = assert(e:decide { kind = "recommend" })
    assert.are.equal(0.5, d.items[1].score)
    assert.are.equal("recommend.lua", d.strategy:match("[^/]+$"))
    e:close()
  end)
end)
