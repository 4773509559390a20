-- engine_spec.lua: the real engine, driven from Lua through `require "tailor"`.
local tailor = require "tailor"

local root = os.getenv("TAILOR_ROOT") or "."

local function engine(strategies)
  local e, err = tailor.open {
    db = ":memory:",
    strategies = strategies or (root .. "/strategies"),
    lua = { reload_interval_ms = 0 },
  }
  assert(e, err)
  return e
end

describe("the engine as a Lua module", function()
  it("ingests tailor, Segment and GA4 events", function()
    local e = engine()
    assert.is_true(e:ingest { type = "view", item = "sku1", anon = "v1" })
    assert.is_true(e:ingest {
      type = "track", event = "Product Viewed", anonymousId = "v2",
      properties = { product_id = "sku1" },
    })
    assert.is_true(e:ingest {
      name = "view_item", client_id = "v3",
      params = { items = { { item_id = "sku2" } } },
    })
    local stats = e:stats()
    assert.are.equal(3, stats.events.view)
    assert.are.equal(2, stats.index.items)
    e:close()
  end)

  it("rejects a bad event with the field at fault", function()
    local e = engine()
    local ok, msg, code = e:ingest { type = "purchase", anon = "v1", items = { { id = "a" } } }
    assert.is_nil(ok)
    assert.are.equal("EFIELD", code)
    assert.matches("order_id", msg)
    assert.are.equal(0, e:stats().events_total)
    e:close()
  end)

  it("reports each bad line of a batch and keeps the good ones", function()
    local e = engine()
    local acc, rej, errors = e:ingest_batch(table.concat({
      '{"type":"view","item":"a","anon":"v1"}',
      '{"type":"view","anon":"v1"}',
      '{"type":"view","item":"b","anon":"v1"}',
    }, "\n"))
    assert.are.equal(2, acc)
    assert.are.equal(1, rej)
    assert.are.equal(2, errors[1].line)
    assert.are.equal("item", errors[1].field)
    e:close()
  end)

  it("decides with the shipped strategy: bestsellers on the home page, cart excluded", function()
    local e = engine()
    for _, v in ipairs { "a", "a", "a", "b", "b", "c" } do
      assert(e:ingest { type = "view", item = v, anon = "v1" })
    end
    local d = e:decide { kind = "recommend", anon = "v2", k = 2, page = { type = "home" } }
    assert.is_nil(d.fallback, d.error)
    assert.are.same({ "a", "b" }, { d.items[1].id, d.items[2].id })
    assert.are.equal("Popular right now", d.items[1].explain)
    assert(e:ingest { type = "add_to_cart", item = "a", anon = "v2" })
    d = e:decide { kind = "recommend", anon = "v2", k = 2, page = { type = "home" } }
    assert.are.same({ "b", "c" }, { d.items[1].id, d.items[2].id })
    e:close()
  end)

  it("refuses a malformed request with an error", function()
    local e = engine()
    local d, msg, code = e:decide { k = 3 }
    assert.is_nil(d)
    assert.are.equal("EFIELD", code)
    assert.matches("kind", msg)
    e:close()
  end)
end)
