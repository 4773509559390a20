-- propensity_spec.lua: the in-session purchase propensity on the real
-- engine and the shipped strategies: fitted at the value refit on a
-- history where carts and views lead to purchases, its held-out AUC in
-- `tailor stats`, and the popup holding its discount for a session likely
-- to buy anyway while offering it to one that is not.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."
local HOUR = 3600

local function iso(seconds_ago)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - seconds_ago)
end

local ITEMS = { "a", "b", "c", "d", "e", "f", "g", "h" }

-- 600 past sessions, an hour apart: the chance of a purchase rises with
-- carts and views (a logistic with a known signal), plus noise.
local function history(e)
  math.randomseed(20)
  for i = 1, 600 do
    local who, sid, at = "v" .. i, "s" .. i, (700 - i) * HOUR
    local views, carts = math.random(1, 8), math.random(0, 3)
    if math.random() < 0.3 then carts = 0 end
    for v = 1, views do
      assert(e:ingest { type = "view", item = ITEMS[(i + v) % #ITEMS + 1], anon = who,
                        session = sid, ts = iso(at - v * 60) })
    end
    for c = 1, carts do
      assert(e:ingest { type = "add_to_cart", item = ITEMS[(i + c) % #ITEMS + 1], anon = who,
                        session = sid, ts = iso(at - (views + c) * 60) })
    end
    local z = -3 + 1.4 * carts + 0.25 * views
    if math.random() < 1 / (1 + math.exp(-z)) then
      assert(e:ingest { type = "purchase", anon = who, session = sid, order_id = "o" .. i,
                        items = { { id = ITEMS[i % #ITEMS + 1], price = 40 } },
                        ts = iso(at - (views + carts + 1) * 60) })
    end
  end
end

describe("purchase propensity", function()
  it("is fitted on the history, reported with its AUC, and holds the popup's discount", function()
    local e = assert(tailor.open {
      db = ":memory:", strategies = root .. "/strategies",
      index = { value_refit_orders = 50 },
      lua = { reload_interval_ms = 60000 },
    })
    for _, id in ipairs(ITEMS) do
      assert(e:ingest { type = "item_upsert", item = { id = id, name = id, price = 40, category = "Shop/" .. id } })
    end
    history(e)
    local p = e:stats().propensity
    assert.is_table(p, "no propensity model in stats")
    print(string.format("\npropensity: AUC %.3f, calibration error %.3f, %d held out, %d trained on, %d purchases",
                        p.auc, p.calibration_error, p.holdout_sessions, p.train_sessions, p.purchases))
    assert.is_true(p.auc > 0.75, "AUC " .. p.auc)
    assert.is_true(p.calibration_error < 0.15, "calibration error " .. p.calibration_error)
    assert.is_true(p.holdout_sessions >= 60 and p.train_sessions >= 300)

    -- Two returning visitors, each with a visit before this one.
    for _, who in ipairs { "hot", "cold" } do
      assert(e:ingest { type = "view", item = "a", anon = who, session = who .. "-old", ts = iso(30 * HOUR) })
    end
    -- hot views and carts a lot this session; cold glances at one item.
    for v = 1, 8 do
      assert(e:ingest { type = "view", item = ITEMS[v], anon = "hot", session = "hot-now", ts = iso(20 * 60 - v * 60) })
    end
    for c = 1, 3 do
      assert(e:ingest { type = "add_to_cart", item = ITEMS[c], anon = "hot", session = "hot-now", ts = iso(10 * 60 - c * 60) })
    end
    assert(e:ingest { type = "view", item = "a", anon = "cold", session = "cold-now", ts = iso(60) })
    local ask = function(who)
      return e:decide { kind = "popup", anon = who, session = who .. "-now",
                        context = { trigger = "exit_intent", device = "desktop" } }
    end
    local cold, hot = ask("cold"), ask("hot")
    assert.is_nil(cold.fallback, cold.error)
    assert.is_nil(hot.fallback, hot.error)
    -- The cold one gets the returning visitor's 10%; the hot one none.
    assert.is_table(cold.result)
    assert.are.equal("returning_10", cold.result.name)
    assert.matches("^RETURNING10%-", cold.result.coupon) -- its own code
    assert.is_true(e:coupon_check(cold.result.coupon).valid)
    assert.is_nil(hot.result)
    assert.is_nil(hot.capped) -- held by the strategy, not by a cap
    -- The model's score is what the strategy saw: above the threshold.
    local seen = e:decide { kind = "visitor", anon = "hot", session = "hot-now" }.result
    assert.is_true(seen.propensity > 0.6, seen.propensity)
    assert.is_true(e:decide { kind = "visitor", anon = "cold", session = "cold-now" }.result.propensity < 0.6)
    e:close()
  end)
end)
