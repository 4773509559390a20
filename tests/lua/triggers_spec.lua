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

  it("cancels by a long prefix only the keys it prefixes", function()
    local e = engine()
    assert(e:ingest { type = "search", query = "long keys", customer = "c1" })
    assert(e:ingest { type = "search", query = "cancel long", customer = "c1" })
    local state = {}
    for _, row in ipairs(e:outbox()) do state[#row.key] = row.state end
    assert.are.equal("cancelled", state[606])
    assert.are.equal("pending", state[513])
    e:close()
  end)

  it("counts a delay from the event's time", function()
    local e = engine()
    local at = os.time() - 3000 -- the cart changed 50 minutes ago; the delay is an hour
    assert(e:ingest { type = "add_to_cart", item = "hat", customer = "c1",
                      ts = os.date("!%Y-%m-%dT%H:%M:%SZ", at) })
    local due = e:outbox()[1].due
    assert.is_true(due >= (at + 3600) * 1000 and due <= (at + 3602) * 1000, tostring(due))
    e:close()
  end)

  it("caps by the week an email is due in, the rows it supersedes left out", function()
    -- The shipped strategies: a signup's welcome, an order's follow-up in
    -- 14 days and win-back in 90 are three rows this week, but one due
    -- now; a second order's win-back replaces the first's.
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/strategies",
                                   triggers = { email_cap_per_week = 3 } })
    assert(e:ingest { type = "item_upsert", item = { id = "hat", name = "Hat", price = 20 } })
    assert(e:ingest { type = "customer_upsert", customer = { id = "c1", email = "a@x.io", consent = { email = true } } })
    assert(e:ingest { type = "signup", customer = "c1" })
    local now = os.time()
    local function buy(order, t)
      assert(e:ingest { type = "purchase", customer = "c1", order_id = order,
                        items = { { id = "hat", price = 20 } },
                        ts = os.date("!%Y-%m-%dT%H:%M:%SZ", t) })
    end
    buy("o1", now - 2)
    buy("o2", now - 1)
    local state = {}
    for _, row in ipairs(e:outbox()) do state[row.key] = row.state end
    assert.are.equal("pending", state["win_back:c1:o2"])
    assert.are.equal("cancelled", state["win_back:c1:o1"])
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

  it("hands on_event the whole event: fields, pairs, JSON, assignment", function()
    local e = engine()
    assert(e:ingest { type = "refund", customer = "c1", order_id = "o9", reason = "damaged",
                      items = { { id = "hat", price = 10, quantity = 2, color = "red" },
                                { id = "sock", price = 5 } } })
    local rows = e:outbox()
    assert.are.equal(1, #rows)
    local v = rows[1].vars
    -- every field, including the one the handler set, by pairs and in JSON
    assert.are.equal("customer,items,order_id,props,revenue,seen,ts,type", v.keys)
    assert.are.equal("refund", v.event.type)
    assert.are.equal("c1", v.event.customer)
    assert.are.equal("o9", v.event.order_id)
    assert.are.equal("damaged", v.event.props.reason)
    assert.are.equal("yes", v.event.seen)
    assert.are.equal(25, v.event.revenue)
    assert.are.equal("sock", v.event.items[2].id)
    assert.are.equal("hat", v.first)
    assert.are.equal("red", v.color)
    assert.are.equal(2, v.event.items[1].quantity)
    assert.is_true(v.missing)
    e:close()
  end)

  it("an event kept past its call keeps its ids; what was never read is an error", function()
    local e = engine()
    assert(e:ingest { type = "signup", customer = "c1", source = "footer" })
    assert(e:ingest { type = "page_view", customer = "c1" })
    local late
    for _, r in ipairs(e:outbox()) do if r.key == "late:c1" then late = r.vars end end
    assert.is_table(late)
    assert.are.equal("c1", late.kept_customer)
    assert.are.equal("signup", late.kept_type)
    assert.is_false(late.late_ok)
    assert.matches("event.props read after the on_event call", late.late_msg, 1, true)
    e:close()
  end)

  it("calls on_event only for the events on_event_for names", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/tests/lua/triggers_for" })
    local function calls() return e:stats().process.strategy_errors end
    assert(e:ingest { type = "view", item = "hat", anon = "a1" })        -- customers only
    assert.are.equal(0, calls())
    assert(e:ingest { type = "view", item = "hat", customer = "c1" })
    assert.are.equal(1, calls())
    assert(e:ingest { type = "add_to_cart", item = "hat", anon = "a1" }) -- all
    assert.are.equal(2, calls())
    assert(e:ingest { type = "search", query = "hat", customer = "c1" }) -- not named
    assert.are.equal(2, calls())
    assert.are.equal(1, e:stats().events.search) -- the event itself is kept
    e:close()
  end)

  it("refuses an on_event_for that names no event type, or another value", function()
    local dir = os.getenv("TAILOR_TEST_TMP") .. "/triggers_bad_for"
    os.execute("mkdir -p " .. dir)
    for _, case in ipairs {
      { "{ veiw = 'all' }", "on_event_for: 'veiw' is not an event type" },
      { "{ view = 'everyone' }", 'on_event_for.view: "all" or "customers", not everyone' },
    } do
      local f = assert(io.open(dir .. "/t.lua", "w"))
      f:write("return { on_event_for = " .. case[1] .. ", on_event = function() end }\n")
      f:close()
      local e, err = tailor.open { db = ":memory:", strategies = dir }
      assert.is_nil(e)
      assert.matches(case[2], tostring(err), 1, true)
    end
  end)

  it("refuses a delay or a due time past ten years, which overflowed or came due at once", function()
    local e = engine()
    for _, q in ipairs { "delay 9.2233720368e15", "delay 1e300", "delay -1e300",
                         "due 9223372036854775807" } do
      assert(e:ingest { type = "search", query = q, customer = "c1" })
    end
    assert.are.equal(0, #e:outbox())
    assert.are.equal(4, e:stats().process.strategy_errors)
    -- A year is fine, and due then.
    assert(e:ingest { type = "search", query = "delay 31536000", customer = "c1" })
    local rows = e:outbox()
    assert.are.equal(1, #rows)
    assert.is_true(rows[1].due > (os.time() + 31535000) * 1000)
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

-- The shipped triggers.lua: who gets an email, and with which items.
describe("the shipped triggers", function()
  local function shop()
    local e = assert(tailor.open {
      db = ":memory:", strategies = root .. "/strategies",
      triggers = { email_cap_per_week = 20 },
    })
    for _, it in ipairs {
      { id = "jacket", name = "Winter Jacket", price = 149, category = "Women/Outerwear/Jackets" },
      { id = "hat", name = "Wool Hat", price = 24, category = "Accessories/Hats" },
      { id = "gloves", name = "Leather Gloves", price = 39, category = "Accessories/Gloves" },
      { id = "sofa", name = "Oslo Sofa", price = 899, category = "Home/Living/Sofas" },
      { id = "armchair", name = "Oslo Armchair", price = 399, category = "Home/Living/Armchairs" },
      { id = "table", name = "Oslo Coffee Table", price = 249, category = "Home/Living/Tables" },
    } do assert(e:ingest { type = "item_upsert", item = it }) end
    for _, c in ipairs { "viewer", "buyer", "carter" } do
      assert(e:ingest { type = "customer_upsert",
                        customer = { id = c, email = c .. "@example.com", consent = { email = true } } })
    end
    return e
  end

  local function order(e, who, id, items)
    local lines = {}
    for _, i in ipairs(items) do lines[#lines + 1] = { id = i } end
    assert(e:ingest { type = "purchase", customer = who, order_id = id, items = lines })
  end

  local function customers_of(e, template)
    local out = {}
    for _, r in ipairs(e:outbox()) do
      if r.template == template then out[#out + 1] = r.customer end
    end
    table.sort(out)
    return out
  end

  it("sends a price drop to who viewed or carted the item, not to who bought it", function()
    -- Two days ago: no browse or cart email of today holds the message
    -- back (the shipped caps allow one contact a day, caps.lua); so each
    -- message in a shop of its own.
    local function watched()
      local e = shop()
      local ts = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 2 * 86400)
      assert(e:ingest { type = "view", item = "jacket", customer = "viewer", ts = ts })
      assert(e:ingest { type = "add_to_cart", item = "jacket", customer = "carter", ts = ts })
      assert(e:ingest { type = "view", item = "jacket", customer = "buyer", ts = ts })
      assert(e:ingest { type = "purchase", customer = "buyer", order_id = "o1", ts = ts,
                        items = { { id = "jacket" } } })
      return e
    end
    local e = watched()
    assert(e:ingest { type = "item_upsert", item = { id = "jacket", name = "Winter Jacket", price = 119,
                                                     category = "Women/Outerwear/Jackets" } })
    assert.are.same({ "carter", "viewer" }, customers_of(e, "price_drop"))
    -- The same day, a second message to them is over the cap.
    assert(e:ingest { type = "item_upsert", item = { id = "jacket", price = 119, in_stock = false } })
    assert(e:ingest { type = "item_upsert", item = { id = "jacket", price = 119, in_stock = true } })
    assert.are.same({}, customers_of(e, "back_in_stock"))
    assert.are.equal(2, e:stats().process.triggers_capped)
    e:close()
    -- Back in stock: the same people.
    e = watched()
    assert(e:ingest { type = "item_upsert", item = { id = "jacket", price = 149, in_stock = false } })
    assert(e:ingest { type = "item_upsert", item = { id = "jacket", price = 149, in_stock = true } })
    assert.are.same({ "carter", "viewer" }, customers_of(e, "back_in_stock"))
    e:close()
  end)

  it("sees each catalog change of a batch as it came, not the batch's last", function()
    -- In one batch the jacket comes back in stock and its stock moves
    -- again: the first change is the one that is "back".
    local e = shop()
    local ts = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 2 * 86400)
    assert(e:ingest { type = "item_upsert", item = { id = "jacket", price = 149, in_stock = false } })
    assert(e:ingest { type = "view", item = "jacket", customer = "viewer", ts = ts })
    assert(e:ingest_batch(table.concat({
      '{"type":"item_upsert","item":{"id":"jacket","price":149,"in_stock":true,"stock":3}}',
      '{"type":"item_upsert","item":{"id":"jacket","price":149,"in_stock":true,"stock":2}}' }, "\n")))
    assert.are.same({ "viewer" }, customers_of(e, "back_in_stock"))
    e:close()
    -- And a price drop followed by a stock change in the same batch.
    e = shop()
    assert(e:ingest { type = "view", item = "jacket", customer = "viewer", ts = ts })
    assert(e:ingest_batch(table.concat({
      '{"type":"item_upsert","item":{"id":"jacket","price":99}}',
      '{"type":"item_upsert","item":{"id":"jacket","price":99,"stock":8}}' }, "\n")))
    assert.are.same({ "viewer" }, customers_of(e, "price_drop"))
    e:close()
  end)

  it("sends no back-in-stock or price-drop email for an item listed for the first time", function()
    local e = shop()
    local ts = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 2 * 86400)
    -- Seen in events (at 30) before the catalog has it, then listed at 25.
    assert(e:ingest { type = "view", item = "new-boot", customer = "viewer", ts = ts })
    assert(e:ingest { type = "add_to_cart", item = "new-boot", price = 30, customer = "carter", ts = ts })
    assert(e:ingest { type = "item_upsert", item = { id = "new-boot", name = "New Boot", price = 25 } })
    assert.are.same({}, customers_of(e, "back_in_stock"))
    assert.are.same({}, customers_of(e, "price_drop"))
    -- Listed, then out and back in stock: now it is back.
    assert(e:ingest { type = "item_upsert", item = { id = "new-boot", price = 25, in_stock = false } })
    assert(e:ingest { type = "item_upsert", item = { id = "new-boot", price = 25, in_stock = true } })
    assert.are.same({ "carter", "viewer" }, customers_of(e, "back_in_stock"))
    e:close()
  end)

  it("takes a catalog update without a price (a guide, a price left out) without an error", function()
    local e = shop()
    local ts = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 2 * 86400)
    assert(e:ingest { type = "item_upsert", item = { id = "guide", name = "Tent Guide", kind = "content" } })
    assert(e:ingest { type = "view", item = "guide", customer = "viewer", ts = ts })
    assert(e:ingest { type = "view", item = "jacket", customer = "viewer", ts = ts })
    assert(e:ingest { type = "item_upsert", item = { id = "guide", name = "Tent Guide, 2nd ed.", kind = "content" } })
    -- The upsert replaces the item: the jacket has no price now, and the
    -- price it gets next is a first price, not a drop from 149.
    assert(e:ingest { type = "item_upsert", item = { id = "jacket", name = "Winter Jacket" } })
    assert(e:ingest { type = "item_upsert", item = { id = "jacket", name = "Winter Jacket", price = 119 } })
    assert.are.equal(0, e:stats().process.strategy_errors)
    assert.are.same({}, customers_of(e, "price_drop"))
    e:close()
  end)

  it("fills an abandoned-cart email with what goes with the cart, not with past purchases", function()
    local e = shop()
    for i = 1, 4 do order(e, "j" .. i, "j" .. i, { "jacket", "hat", "gloves" }) end
    for i = 1, 4 do order(e, "s" .. i, "s" .. i, { "sofa", "armchair", "table" }) end
    order(e, "carter", "o1", { "sofa" })
    assert(e:ingest { type = "add_to_cart", item = "jacket", customer = "carter" })
    local row
    for _, r in ipairs(e:outbox("pending")) do
      if r.template == "abandoned_cart" then row = r end
    end
    assert.is_not_nil(row)
    assert.are.equal("jacket", row.vars.cart[1].id)
    local items = {}
    for _, it in ipairs(row.vars.items) do items[#items + 1] = it.id end
    table.sort(items)
    assert.are.same({ "gloves", "hat" }, items)
    e:close()
  end)
end)
