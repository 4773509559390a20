-- experiment_spec.lua: tailor.experiment and the report, end to end.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

describe("experiments", function()
  it("assigns stably, records exposures and reports outcomes per variant", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/tests/lua/experiment" })
    assert(e:ingest { type = "item_upsert", item = { id = "a", price = 10 } })
    local variant = {}
    for i = 1, 400 do
      local d = e:decide { kind = "recommend", anon = "u" .. i }
      variant[i] = d.items[1].explain
      -- Asking again gives the same answer.
      assert.are.equal(variant[i], e:decide { kind = "recommend", anon = "u" .. i }.items[1].explain)
    end
    -- Every treatment visitor buys for 20; one control visitor in ten for 10.
    local buyers = 0
    for i = 1, 400 do
      if variant[i] == "treatment" or i % 10 == 0 then
        buyers = buyers + 1
        assert(e:ingest { type = "purchase", anon = "u" .. i, order_id = "o" .. i,
                          items = { { id = "a", price = variant[i] == "treatment" and 20 or 10 } } })
      end
    end
    -- A window out of range is refused by name (math.maxinteger was cut to
    -- -1 days, a window that holds nothing).
    assert.has_error(function() e:report_experiments(math.maxinteger) end,
                     "bad argument #1 to 'report_experiments' (window_days must be from 1 to 36500)")
    local report = e:report_experiments(7)
    assert.are.equal(1, #report)
    local r = report[1]
    assert.are.equal("recs", r.experiment)
    assert.are.equal("control", r.control)
    local by = {}
    for _, v in ipairs(r.variants) do by[v.variant] = v end
    assert.are.equal(400, by.control.exposures + by.treatment.exposures)
    assert.is_true(math.abs(by.control.exposures - 200) < 40)
    assert.are.equal(1, by.treatment.conversion)
    assert.is_true(by.control.conversion < 0.2)
    assert.are.equal(20, by.treatment.revenue_per_visitor)
    assert.is_true(by.treatment.conversion_p_value < 1e-6)
    assert.is_true(by.treatment.revenue_p_value < 1e-6)
    assert.is_nil(by.control.conversion_p_value) -- control is not compared to itself
    -- Each figure with an interval in its own units: the difference, and
    -- the uplift relative to control (the difference's interval over
    -- control's rate).
    local t, pc = by.treatment, by.control.conversion
    assert.is_true(math.abs(t.conversion_diff - (1 - pc)) < 1e-9)
    assert.is_true(t.conversion_diff_ci95[1] <= t.conversion_diff and
                   t.conversion_diff <= t.conversion_diff_ci95[2])
    assert.is_true(math.abs(t.conversion_uplift_ci95[1] - t.conversion_diff_ci95[1] / pc) < 1e-9)
    assert.is_true(t.conversion_uplift_ci95[1] <= t.conversion_uplift and
                   t.conversion_uplift <= t.conversion_uplift_ci95[2])
    local mc = by.control.revenue_per_visitor
    assert.is_true(math.abs(t.revenue_diff - (20 - mc)) < 1e-9)
    assert.is_true(math.abs(t.revenue_uplift_ci95[2] - t.revenue_diff_ci95[2] / mc) < 1e-9)
    e:close()
  end)

  it("gives no revenue interval or p-value where Welch's test has none", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/tests/lua/experiment" })
    assert(e:ingest { type = "item_upsert", item = { id = "a", price = 20 } })
    -- A variants table of one arm at a time puts each visitor where wanted.
    local function expose(name, arm, anon, buys)
      local d = e:decide { kind = "split", anon = anon, context = { name = name, variants = { arm } } }
      assert.are.equal(arm, d.result.variant)
      if buys then
        assert(e:ingest { type = "purchase", anon = anon, order_id = name .. anon,
                          items = { { id = "a", price = buys } } })
      end
    end
    -- "flat": every treatment visitor spent 20, every control one nothing.
    -- "lone": one treatment visitor, who bought.
    for i = 1, 5 do
      expose("flat", "control", "f" .. i)
      expose("flat", "treatment", "g" .. i, 20)
      expose("lone", "control", "l" .. i, i % 2 == 0 and 10 * i or nil)
    end
    expose("lone", "treatment", "m1", 100)
    for _, r in ipairs(e:report_experiments(7)) do
      local t
      for _, v in ipairs(r.variants) do if v.variant == "treatment" then t = v end end
      assert.is_number(t.revenue_diff, r.experiment)
      -- was an interval of width 0 ([20, 20], [+91, +91]) beside p = 1
      assert.is_nil(t.revenue_diff_ci95, r.experiment)
      assert.is_nil(t.revenue_uplift_ci95, r.experiment)
      assert.is_nil(t.revenue_p_value, r.experiment)
      -- the conversion interval is never of width 0
      assert.is_true(t.conversion_diff_ci95[2] - t.conversion_diff_ci95[1] > 0.1, r.experiment)
    end
    e:close()
  end)

  it("refuses more than 16 variants, and a weight that is not a number, by name", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/tests/lua/experiment" })
    local weights, list = {}, {}
    for i = 1, 17 do
      weights["v" .. i] = 1
      list[i] = "v" .. i
    end
    -- The first 16 of a weights table were taken in its iteration order,
    -- which differs between Lua states: the same visitor's variant with them.
    for _, variants in ipairs { weights, list } do
      local d = e:decide { kind = "split", anon = "u1", context = { name = "many", variants = variants } }
      assert.is_true(d.fallback)
      assert.matches("more than 16 variants", d.error)
    end
    -- A weight that is not a number is refused by the variant's name.
    local d = e:decide { kind = "split", anon = "u1", context = { name = "w", variants = { control = "half" } } }
    assert.is_true(d.fallback)
    assert.matches("bad argument #2 to 'experiment' %(the weight of variant 'control' is string", d.error)
    list[17], weights.v17 = nil, nil
    local seen = {}
    for i = 1, 400 do
      local d = e:decide { kind = "split", anon = "u" .. i, context = { name = "many", variants = weights } }
      assert.is_nil(d.fallback, d.error)
      seen[d.result.variant] = true
    end
    for i = 1, 16 do assert.is_true(seen["v" .. i], "v" .. i) end
    e:close()
  end)

  it("counts a visitor who logs in once, in the arm they saw first, with each order once", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/tests/lua/experiment" })
    assert(e:ingest { type = "item_upsert", item = { id = "a", price = 10 } })
    local function arm(q) return e:decide(q).items[1].explain end
    -- Twenty visitors, each seen as anon, then logged in; about half of
    -- them have a customer id that falls in the other arm.
    local differ = 0
    for i = 1, 20 do
      local anon, customer = "anon" .. i, "cust" .. i
      local before = arm { kind = "recommend", anon = anon }
      assert(e:ingest { type = "identify", customer = customer, anon = anon })
      if before ~= arm { kind = "recommend", customer = customer, anon = anon } then
        differ = differ + 1
      end
      -- The checkout's purchase names both ids: two outcome rows, one order.
      assert(e:ingest { type = "purchase", customer = customer, anon = anon,
                        order_id = "o" .. i, items = { { id = "a", price = 100 } } })
    end
    assert.is_true(differ >= 3, tostring(differ))
    local by = {}
    for _, v in ipairs(e:report_experiments(7)[1].variants) do by[v.variant] = v end
    local exposed = (by.control and by.control.exposures or 0) + (by.treatment and by.treatment.exposures or 0)
    assert.are.equal(20, exposed)
    for _, v in pairs(by) do
      assert.are.equal(1, v.conversion)
      assert.are.equal(100, v.revenue_per_visitor)
    end
    e:close()
  end)
end)
