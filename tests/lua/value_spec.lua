-- value_spec.lua: the customer-value model as a merchant meets it, on the
-- real engine and the shipped strategies: which model, why, how well it
-- ranks customers on held-back orders, and no value tier it cannot support.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."
local DAY = 86400

local function iso(seconds_ago)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - seconds_ago)
end

local function shop(db, refit)
  local e = assert(tailor.open {
    db = db or ":memory:", strategies = root .. "/strategies",
    lua = { reload_interval_ms = 60000 },
    index = { value_refit_orders = refit or 1 }, -- 1: after every order
  })
  assert(e:ingest { type = "item_upsert", item = { id = "sofa", name = "Oslo Sofa", price = 899,
                                                   cost = 300, category = "Home/Living/Sofas" } })
  assert(e:ingest { type = "item_upsert", item = { id = "hat", name = "Wool Hat", price = 40,
                                                   cost = 10, category = "Accessories/Hats" } })
  return e
end

local PRICE = { sofa = 899, hat = 40 }

local function order(e, who, id, item, seconds_ago)
  assert(e:ingest { type = "purchase", customer = who, order_id = id,
                    items = { { id = item, price = PRICE[item], quantity = 1 } },
                    ts = iso(seconds_ago) })
end

describe("the value model", function()
  -- The shop of issue 15: 40 customers, one repeat customer.  The simple
  -- estimator used to predict a year of orders for everyone recent and
  -- made 39 of 40 VIP.
  it("hands out no value tier when too few customers came back", function()
    local e = shop()
    for i = 1, 40 do order(e, "c" .. i, "o" .. i, "sofa", i * DAY) end
    order(e, "c1", "again", "sofa", 50 * DAY)
    local vm = e:stats().value_model
    assert.are.equal("none", vm.kind)
    assert.is_false(vm.tiers)
    assert.are.equal(40, vm.customers)
    assert.are.equal(1, vm.repeat_customers)
    assert.are.equal(20, vm.min_repeat_customers)
    assert.matches("too few repeat customers", vm.reason, 1, true)
    for i = 1, 40 do
      local d = e:decide { kind = "discount", customer = "c" .. i }
      assert.is_nil(d.fallback, d.error)
      local tier = d.result and d.result.tier
      assert.is_true(tier ~= "vip" and tier ~= "high_value", "c" .. i .. " got " .. tostring(tier))
      assert.are.equal(-1, e:customer("c" .. i).figures.predicted_value)
    end
    e:close()
  end)

  it("says which model it fitted and how it ranks held-back orders", function()
    local db = (os.getenv("TAILOR_TEST_TMP") or "/tmp") .. "/value_spec.db"
    for _, f in ipairs { db, db .. "-wal", db .. "-shm", db .. ".ckpt" } do os.remove(f) end
    local e = shop(db, 0)
    -- 60 customers over 200 days; the frequent ones keep ordering.
    local n = 0
    for i = 1, 60 do
      local gap = 12 + (i % 5) * 15
      for d = 200 - (i % 20), 1, -gap do
        n = n + 1
        order(e, "c" .. i, "o" .. n, i % 3 == 0 and "sofa" or "hat", d * DAY)
        if i % 4 == 0 then break end -- one-time buyers
      end
    end
    e:close()
    e = shop(db, 0) -- the model is fitted on start
    local vm = e:stats().value_model
    assert.are_not.equal("none", vm.kind)
    assert.is_true(vm.tiers)
    assert.is_true(vm.repeat_customers >= vm.min_repeat_customers)
    local c = vm.check
    assert.is_table(c)
    assert.is_true(c.holdout_days > 0 and c.holdout_days <= 90)
    assert.is_true(c.cutoff < c["end"])
    assert.is_true(c.customers > 0 and c.spenders > 0)
    assert.is_number(c.spearman_past_spend)
    assert.is_boolean(c.beats_past_spend)
    local figures = e:customer("c5").figures
    e:close()
    -- A strategy reads the same figures from ctx.customer (worked out when
    -- first read), and pairs lists them.
    e = assert(tailor.open { db = db, strategies = root .. "/tests/lua/decide",
                             lua = { reload_interval_ms = 60000 } })
    local d = assert(e:decide { kind = "recommend", customer = "c5",
                                page = { type = "value", item = "sofa" } })
    assert.is_nil(d.fallback)
    local listed, p_alive, orders, value = d.items[1].explain:match("^([^|]*)|([^|]*)|([^|]*)|([^|]*)$")
    assert.are.equal("expected_orders,p_alive,predicted_value", listed)
    assert.is_true(figures.predicted_value > 0)
    assert.is_true(math.abs(tonumber(value) - figures.predicted_value) < 1e-6 * figures.predicted_value)
    assert.is_true(math.abs(tonumber(p_alive) - figures.p_alive) < 1e-6)
    assert.is_true(math.abs(tonumber(orders) - figures.expected_orders) < 1e-6 * figures.expected_orders + 1e-9)
    -- Written as JSON without being read first: the figures are there
    -- (a decision's numbers have six significant digits).
    local pop = assert(e:decide { kind = "popup", customer = "c5" })
    assert.is_table(pop.result)
    assert.is_true(math.abs(pop.result.customer.predicted_value - figures.predicted_value)
                   < 1e-5 * figures.predicted_value)
    assert.is_number(pop.result.customer.p_alive)
    e:close()
  end)

  -- 80 customers over 300 days, a third of whom stop ordering, each order
  -- its own order id; returns the next free order number.
  local function population(e, n)
    for i = 1, 80 do
      local gap, stop = 10 + (i % 7) * 9, (i % 3 == 0) and (150 - (i % 50) * 2) or 0
      for d = 300 - (i % 40) * 3, 1, -gap do
        if d < stop then break end
        n = n + 1
        order(e, "q" .. i, "p" .. n, i % 5 == 0 and "sofa" or "hat", d * DAY)
        if i % 4 == 0 then break end
      end
    end
    return n
  end

  local function fresh(name)
    local db = (os.getenv("TAILOR_TEST_TMP") or "/tmp") .. "/" .. name .. ".db"
    for _, f in ipairs { db, db .. "-wal", db .. "-shm", db .. ".ckpt" } do os.remove(f) end
    return db
  end

  -- A burst of orders a minute apart gives the fit a tiny alpha (hours);
  -- a customer whose first order is minutes old then has z = t/(alpha+T+t)
  -- within 1e-5 of 1, where the hypergeometric series never settled: the
  -- figures were NaN, a popup answering ctx.customer fell back ("number is
  -- not finite") and tailor.customer lost its whole figures object.
  it("gives finite figures to a customer of the last minutes", function()
    local db = fresh("value_spec_burst")
    local e = shop(db, 0)
    local n = population(e, 0)
    for i = 1, 300 do order(e, "burst", "b" .. i, "hat", 2 * DAY - i * 60) end
    e:close()
    e = assert(tailor.open { db = db, strategies = root .. "/tests/lua/decide",
                             lua = { reload_interval_ms = 60000 }, index = { value_refit_orders = 0 } })
    local vm = e:stats().value_model
    assert.are.equal("bgnbd", vm.kind)
    assert.is_true(vm.bgnbd.alpha < 0.05, "alpha " .. vm.bgnbd.alpha)
    order(e, "newbie", "p" .. (n + 1), "hat", 0)
    local f = e:customer("newbie").figures
    assert.is_table(f)
    for _, k in ipairs { "p_alive", "expected_orders", "predicted_value" } do
      assert.is_true(f[k] == f[k] and f[k] > 0 and f[k] < math.huge, k .. " " .. tostring(f[k]))
    end
    local pop = assert(e:decide { kind = "popup", customer = "newbie" })
    assert.is_nil(pop.fallback, pop.error)
    assert.is_true(math.abs(pop.result.customer.predicted_value - f.predicted_value)
                   < 1e-3 * f.predicted_value)
    e:close()
  end)

  -- A returned order is no order: the shipped discount gave "VIP pricing"
  -- to the buyer of a sofa they sent back.  A refund names the order; in
  -- full it takes the order out, in part its revenue; the same after a
  -- restart from the checkpoint and after a replay of the log.
  it("takes a refunded order out of the customer's figures, and keeps it out", function()
    local db = fresh("value_spec_refund")
    local e = shop(db, 0)
    local n = population(e, 0)
    order(e, "returner", "sofa1", "sofa", 2 * DAY)
    assert(e:ingest { type = "refund", customer = "returner", order_id = "sofa1", ts = iso(DAY) })
    order(e, "partial", "pa1", "hat", 5 * DAY)
    order(e, "partial", "pa2", "sofa", 3 * DAY)
    assert(e:ingest { type = "refund", customer = "partial", order_id = "pa2", revenue = 99,
                      ts = iso(2 * DAY) })
    -- Someone else's order id, and an unknown one, change nothing.
    assert(e:ingest { type = "refund", customer = "partial", order_id = "p1", ts = iso(DAY) })
    assert(e:ingest { type = "refund", customer = "partial", order_id = "nope", ts = iso(DAY) })
    local function figures(eng)
      local out = {}
      for _, who in ipairs { "returner", "partial", "q1" } do
        local f = eng:customer(who).figures
        out[who] = { f.orders, f.revenue, f.last_order, f.predicted_value }
      end
      return out
    end
    local before = figures(e)
    assert.are.same({ 0, 0, 0, -1 }, before.returner)
    assert.are.equal(2, before.partial[1])
    assert.are.equal(40 + 899 - 99, before.partial[2])
    e:close()
    e = shop(db, 0) -- from the checkpoint
    local vm = e:stats().value_model
    assert.are_not.equal("none", vm.kind)
    local tier = (e:decide { kind = "discount", customer = "returner" }).result
    assert.is_true(not tier or (tier.tier ~= "vip" and tier.tier ~= "high_value"))
    local restarted = figures(e)
    e:close()
    os.remove(db .. ".ckpt")
    e = shop(db, 0) -- from the log
    local replayed = figures(e)
    e:close()
    for _, who in ipairs { "returner", "partial", "q1" } do
      for i = 1, 3 do
        assert.are.equal(before[who][i], restarted[who][i], who .. " " .. i)
        assert.are.equal(before[who][i], replayed[who][i], who .. " " .. i)
      end
      assert.is_true(math.abs(restarted[who][4] - replayed[who][4]) <= 1e-6 * math.abs(replayed[who][4]),
                     who)
    end
    assert.is_true(n > 0)
  end)
end)
