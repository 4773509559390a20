-- triggers_spec.lua: on_event on the real engine: schedules and cancels in
-- the outbox, consent and the weekly cap enforced by the host, old events
-- firing nothing, a broken answer counted and the event kept.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

local function engine(cap)
  local e = assert(tailor.open {
    db = ":memory:", strategies = root .. "/tests/lua/triggers",
    triggers = { email_cap_per_week = cap or 3 },
  })
  e:ingest { type = "customer_upsert", customer = { id = "c1", email = "a@x.io", consent = { email = true } } }
  e:ingest { type = "customer_upsert", customer = { id = "c2", email = "b@x.io", consent = { email = false } } }
  return e
end

describe("on_event triggers", function()
  it("schedules an abandoned-cart email, cancelled by a purchase", function()
    local e = engine()
    assert(e:ingest { type = "add_to_cart", item = "hat", customer = "c1" })
    local rows = e:outbox()
    assert.are.equal(1, #rows)
    assert.are.equal("cart:c1", rows[1].key)
    assert.are.equal("pending", rows[1].state)
    assert.are.equal("email", rows[1].channel)
    assert.are.equal("hat", rows[1].vars.item)
    assert.is_true(rows[1].due > os.time() * 1000 + 3500 * 1000)
    -- The same key again is one row (idempotency).
    assert(e:ingest { type = "add_to_cart", item = "hat", customer = "c1" })
    assert.are.equal(1, #e:outbox())
    assert(e:ingest { type = "purchase", customer = "c1", order_id = "o1", items = { { id = "hat" } } })
    assert.are.equal("cancelled", e:outbox()[1].state)
    e:close()
  end)

  it("sends nothing to a customer without email consent", function()
    local e = engine()
    assert(e:ingest { type = "add_to_cart", item = "hat", customer = "c2" })
    assert.are.equal(0, #e:outbox())
    assert.are.equal(1, e:stats().process.triggers_without_consent)
    e:close()
  end)

  it("caps emails per customer and week", function()
    local e = engine(1)
    assert(e:ingest { type = "view", item = "hat", customer = "c1" })
    assert(e:ingest { type = "view", item = "sock", customer = "c1" })
    local rows = e:outbox()
    assert.are.equal(1, #rows)
    assert.are.equal("browse:c1:hat", rows[1].key)
    assert.are.equal(1, e:stats().process.triggers_capped)
    e:close()
  end)

  it("fires nothing for old events (an import of history)", function()
    local e = engine()
    assert(e:ingest { type = "add_to_cart", item = "hat", customer = "c1", ts = "2020-01-01T00:00:00Z" })
    assert.are.equal(0, #e:outbox())
    e:close()
  end)

  it("counts a broken answer as a strategy error and keeps the event", function()
    local e = engine()
    assert(e:ingest { type = "search", query = "broken", customer = "c1" })
    local s = e:stats()
    assert.are.equal(1, s.process.strategy_errors)
    assert.are.equal(1, s.events.search)
    e:close()
  end)
end)
