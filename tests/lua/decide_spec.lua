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

  it("writes scores with six significant digits and explanations as given", function()
    local e = engine()
    local d = assert(e:decide { kind = "recommend" })
    assert.are.equal(0.5, d.items[1].score)
    assert.are.equal("recommend.lua", d.strategy:match("[^/]+$"))
    e:close()
  end)
end)
