-- clusters_spec.lua: the automatic segments get names from what sets them
-- apart, on the real engine: in tailor.clusters(), ctx.customer and
-- `tailor stats`, and the same names and numbers after refits on a shop
-- that keeps growing.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."
local DAY = 86400

-- Times from one moment, so customers who did the same are alike to the
-- second however long the spec takes (a loop that crossed a second made
-- twenty "identical" customers differ, and they got clusters of their own).
local NOW = os.time()
local function iso(seconds_ago)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", NOW - seconds_ago)
end

-- Customers n .. n+count-1 of each kind: runners who buy cheap socks
-- often, and one-time buyers of an expensive sofa.
local function customers(e, from, count)
  for n = from, from + count - 1 do
    for o = 1, 4 do
      assert(e:ingest { type = "purchase", customer = "run" .. n, order_id = "r" .. n .. "-" .. o,
                        items = { { id = "sock", price = 12 } }, ts = iso((40 - o * 8) * DAY) })
    end
    assert(e:ingest { type = "purchase", customer = "home" .. n, order_id = "h" .. n,
                      items = { { id = "sofa", price = 900 } }, ts = iso(30 * DAY) })
  end
end

local function names(e, who)
  local d = assert(e:decide { kind = "names", customer = who })
  return d.result
end

-- An engine asking for `clusters` of them, refitting every `refit_orders`
-- orders, with the sock and the sofa in its catalog.
local function shop(clusters, refit_orders)
  local e = assert(tailor.open {
    db = ":memory:", strategies = root .. "/tests/lua/clusters",
    index = { clusters = clusters, value_refit_orders = refit_orders },
    lua = { reload_interval_ms = 60000 },
  })
  assert(e:ingest { type = "item_upsert", item = { id = "sock", name = "Run Sock", price = 12, category = "Sport/Running" } })
  assert(e:ingest { type = "item_upsert", item = { id = "sofa", name = "Oslo Sofa", price = 900, category = "Home/Sofas" } })
  return e
end

describe("named clusters", function()
  it("are named by what sets them apart, and keep their names across refits", function()
    local e = shop(2, 25)
    customers(e, 1, 20)
    local r = names(e, "run1")
    assert.equal(2, #r.clusters)
    local by = {}
    for _, c in ipairs(r.clusters) do by[c.name] = c end
    local run, home = by["repeat Sport buyers, budget"], by["one-time Home buyers, premium"]
    assert.is_table(run, "names: " .. r.clusters[1].name .. " / " .. r.clusters[2].name)
    assert.is_table(home)
    assert.matches("^%d+ customers; 4%.0 orders", run.description)
    assert.matches("100%% of interest in Home", home.description)
    assert.equal(run.id, r.id)
    assert.equal("repeat Sport buyers, budget", r.mine)
    assert.equal("one-time Home buyers, premium", names(e, "home3").mine)
    -- tailor stats lists them.
    local s = e:stats()
    local listed = {}
    for _, c in ipairs(s.clusters) do listed[c.id] = c.name end
    assert.equal("repeat Sport buyers, budget", listed[run.id])
    assert.equal("one-time Home buyers, premium", listed[home.id])
    -- The shop grows; each refit keeps the numbers and names.
    for round = 1, 3 do
      customers(e, 20 * round + 1, 20)
      local again = names(e, "run" .. (20 * round + 5))
      assert.equal(run.id, again.id)
      assert.equal("repeat Sport buyers, budget", again.mine)
      assert.equal(home.id, names(e, "home" .. (20 * round + 5)).id)
      assert.equal("one-time Home buyers, premium", names(e, "home1").mine)
    end
    e:close()
  end)
end)

describe("a refit", function()
  it("names afresh a cluster that is another group of customers, not one that drifted", function()
    local e = shop(3, 10)
    assert(e:ingest { type = "item_upsert", item = { id = "pan", name = "Iron Pan", price = 40, category = "Kitchen/Pans" } })
    customers(e, 1, 20)
    for n = 1, 5 do -- a few cooks, each with two pans
      for o = 1, 2 do
        assert(e:ingest { type = "purchase", customer = "cook" .. n, order_id = "k" .. n .. "-" .. o,
                          items = { { id = "pan", price = 40 } }, ts = iso((60 - o * 10) * DAY) })
      end
    end
    assert.equal("occasional Kitchen buyers, budget", names(e, "cook1").mine)
    local run = names(e, "run1")
    -- One customer who spends like no one else: the next fit gives them a
    -- cluster of their own, and the cooks join the sofa buyers.  No
    -- cluster of this fit is the cooks' any more: the whale's is named
    -- by what the whale does, not after the cooks.
    for o = 1, 10 do
      assert(e:ingest { type = "purchase", customer = "whale", order_id = "w" .. o,
                        items = { { id = "sofa", price = 50000 } }, ts = iso(o * DAY) })
    end
    local whale = names(e, "whale")
    assert.equal("repeat Home buyers, premium", whale.mine)
    for _, c in ipairs(whale.clusters) do
      if c.id == whale.id then assert.matches("^1 customers; 10%.0 orders", c.description) end
    end
    -- The runners did not move: their number and name stay.
    local again = names(e, "run1")
    assert.equal(run.id, again.id)
    assert.equal("repeat Sport buyers, budget", again.mine)
    e:close()
  end)
end)

describe("customers alike", function()
  it("make as many clusters as there are groups, none empty", function()
    local e = shop(5, 10)
    -- Twenty customers who did exactly the same: one group, not five.
    for n = 1, 20 do
      assert(e:ingest { type = "purchase", customer = "sofa" .. n, order_id = "s" .. n,
                        items = { { id = "sofa", price = 900 } }, ts = iso(30 * DAY) })
    end
    local r = names(e, "sofa1")
    assert.equal(1, #r.clusters)
    assert.equal(20, r.clusters[1].size)
    assert.equal("one-time Home buyers, mid-price", r.mine)
    -- Twenty runners alike, and twenty more sofa buyers like the first:
    -- two groups for the five clusters asked for.
    customers(e, 1, 20)
    r = names(e, "run1")
    assert.equal(2, #r.clusters)
    assert.equal(60, r.clusters[1].size + r.clusters[2].size)
    for _, c in ipairs(r.clusters) do
      assert.is_true(c.size > 0, c.name .. ": " .. c.description)
      assert.not_matches("all%-round", c.name)
    end
    local s = e:stats()
    assert.equal(2, #s.clusters)
    e:close()
  end)
end)

describe("an erasure", function()
  it("takes the customer's figures out of the clusters", function()
    local e = shop(3, 10)
    customers(e, 1, 20)
    for o = 1, 10 do
      assert(e:ingest { type = "purchase", customer = "whale", order_id = "w" .. o,
                        items = { { id = "sofa", price = 50000 } }, ts = iso(o * DAY) })
    end
    local before = names(e, "run1")
    local whale = names(e, "whale")
    local mine
    for _, c in ipairs(whale.clusters) do if c.id == whale.id then mine = c end end
    assert.equal(1, mine.size) -- a cluster of one: the whale's own figures
    assert.matches("average order 50000%.00", mine.description)
    e:forget("whale")
    local after = names(e, "run1")
    assert.equal(2, #after.clusters)
    for _, c in ipairs(after.clusters) do
      assert.is_true(c.size == 20, c.description)
      assert.not_matches("50000", c.description)
      assert.is_true(c.centroid.avg_order < 1000)
    end
    -- The others keep their numbers and names.
    assert.equal(before.id, after.id)
    assert.equal(before.mine, after.mine)
    assert.equal("one-time Home buyers, premium", names(e, "home1").mine)
    for _, c in ipairs(e:stats().clusters) do assert.not_matches("50000", c.description) end
    e:close()
  end)
end)
