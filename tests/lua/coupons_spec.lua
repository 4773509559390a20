-- coupons_spec.lua: coupons that are real (issue 20 item 2) and frequency
-- caps across channels (item 3), on the real engine: a unique single-use
-- code with an expiry, checked and redeemed once by the checkout, refused
-- when redeemed twice, expired or unknown (nothing changed), reported by
-- tier and experiment arm, erased with the customer; caps per day and per
-- campaign over popups, coupons and emails together.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

local function engine()
  local e = assert(tailor.open {
    db = ":memory:", strategies = root .. "/tests/lua/coupons",
    lua = { reload_interval_ms = 60000 },
  })
  assert(e:ingest { type = "customer_upsert",
                    customer = { id = "c1", email = "a@x.io", consent = { email = true } } })
  assert(e:ingest { type = "item_upsert", item = { id = "hat", price = 20 } })
  return e
end

local function exit_popup(e, who, ctx)
  ctx = ctx or {}
  ctx.trigger = "exit_intent"
  local d = e:decide { kind = "popup", anon = who, context = ctx }
  assert.is_nil(d.fallback, d.error)
  return d
end

local function total_events(e) return e:stats().events_total end

describe("coupons", function()
  it("says which cap held when a popup gives up for want of its coupon", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/tests/lua/capped" })
    local d = e:decide { kind = "popup", anon = "v1" }
    assert.is_nil(d.fallback, d.error)
    assert.is_string(d.result.coupon)
    d = e:decide { kind = "popup", anon = "v1" }
    assert.is_nil(d.fallback, d.error)
    assert.is_nil(d.result)
    assert.are.equal("per_campaign", d.capped)
    e:close()
  end)

  it("issues a unique code with an expiry that the checkout checks and redeems once", function()
    local e = engine()
    local a, b = exit_popup(e, "v1"), exit_popup(e, "v2")
    local code = a.result.coupon
    assert.matches("^RETURNING10", code)
    assert.are_not.equal(code, b.result.coupon)
    local c = assert(e:coupon_check(code))
    assert.is_true(c.valid)
    assert.are.equal(10, c.percent)
    assert.are.equal(a.result.expires, c.expires)
    assert.is_true(c.expires > os.time() * 1000 + 3500 * 1000)
    -- The checkout redeems it with the order.
    assert(e:ingest { type = "coupon_redeemed", code = code, order_id = "o1", anon = "v1" })
    c = assert(e:coupon_check(code))
    assert.is_false(c.valid)
    assert.are.equal("redeemed", c.reason)
    assert.are.equal("o1", c.order_id)
    -- A second redemption is refused, and nothing is stored.
    local n = total_events(e)
    local ok, msg = e:ingest { type = "coupon_redeemed", code = code, order_id = "o2" }
    assert.is_nil(ok)
    assert.matches("already redeemed at %d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ by order o1", msg)
    assert.are.equal(n, total_events(e))
    assert.are.equal("o1", e:coupon_check(code).order_id)
    e:close()
  end)

  it("takes a code as a shopper types it: any case, O for 0, I or L for 1", function()
    local e = engine()
    local code, tier, random
    for i = 1, 64 do -- one whose random part has a 0 or a 1 (half of them)
      code = exit_popup(e, "v" .. i).result.coupon
      tier, random = code:match("^(.-%-)(.*)$")
      if random:find("[01]") then break end
    end
    -- The random part read aloud: each 0 heard as O, each 1 as I or L.
    local typed = (tier .. random:gsub("0", "o"):gsub("1", "l")):lower()
    local c = assert(e:coupon_check(typed))
    assert.are.equal(code, c.code)
    assert.is_true(c.valid)
    assert(e:ingest { type = "coupon_redeemed", code = typed, order_id = "o1" })
    c = assert(e:coupon_check(code))
    assert.are.equal("redeemed", c.reason)
    local ok, msg = e:ingest { type = "coupon_redeemed", code = code:lower(), order_id = "o2" }
    assert.is_nil(ok)
    assert.matches("already redeemed", msg)
    -- The tier's own letters are not read as digits.
    assert.is_nil(e:coupon_check(tier:gsub("I", "1") .. random))
    e:close()
  end)

  it("refuses an expired code, an unknown one and one without a code, changing nothing", function()
    local e = engine()
    local code = exit_popup(e, "v1", { ttl = 1 }).result.coupon
    local t0 = os.time()
    while os.time() - t0 < 2 do end
    local c = assert(e:coupon_check(code))
    assert.is_false(c.valid)
    assert.are.equal("expired", c.reason)
    local n = total_events(e)
    local ok, msg = e:ingest { type = "coupon_redeemed", code = code }
    assert.is_nil(ok)
    assert.matches("expired at %d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ", msg)
    -- A time of its own before the expiry does not bring the code back.
    ok, msg = e:ingest { type = "coupon_redeemed", code = code, order_id = "o8",
                         ts = (t0 - 5) * 1000 }
    assert.is_nil(ok)
    assert.matches("expired at", msg)
    ok, msg = e:ingest { type = "coupon_redeemed", code = "NOPE-123" }
    assert.is_nil(ok)
    assert.matches("does not exist", msg)
    ok, msg = e:ingest { type = "coupon_redeemed", order_id = "o9" }
    assert.is_nil(ok)
    assert.matches("code", msg)
    assert.are.equal(n, total_events(e))
    local none, err = e:coupon_check("NOPE-123")
    assert.is_nil(none)
    assert.matches("does not exist", err)
    -- In a batch a refused redemption is that line's rejection, like a
    -- malformed line: the others are kept (a file's chunk was refused whole).
    local good = exit_popup(e, "v3").result.coupon
    local acc, rej, errors = e:ingest_batch(
      '{"type":"coupon_redeemed","code":"' .. good .. '"}\n{"type":"coupon_redeemed","code":"NOPE"}\n')
    assert.are.equal(1, acc)
    assert.are.equal(1, rej)
    assert.are.equal(2, errors[1].line)
    assert.matches("does not exist", errors[1].message)
    assert.is_false(e:coupon_check(good).valid)
    e:close()
  end)

  it("redeems a code once for a visitor who declined analytics", function()
    local e = engine()
    local code = exit_popup(e, "v7").result.coupon
    assert(e:ingest { type = "consent", anon = "v7", props = { analytics = false } })
    assert(e:ingest { type = "coupon_redeemed", code = code, order_id = "o7", anon = "v7" })
    local c = assert(e:coupon_check(code))
    assert.is_false(c.valid)
    assert.are.equal("redeemed", c.reason)
    local ok, msg = e:ingest { type = "coupon_redeemed", code = code, order_id = "o8", anon = "v7" }
    assert.is_nil(ok)
    assert.matches("already redeemed", msg)
    e:close()
  end)

  it("is only for a visitor", function()
    local e = engine()
    local d = e:decide { kind = "outside" }
    assert.is_true(d.fallback)
    assert.matches("only for a visitor", d.error)
    e:close()
  end)

  it("reports issued, redeemed and expired coupons by tier and experiment arm", function()
    local e = engine()
    local codes = {}
    for i = 1, 12 do codes[i] = exit_popup(e, "u" .. i).result end
    assert(e:ingest { type = "coupon_redeemed", code = codes[1].coupon })
    local s = e:stats().coupons
    local issued, redeemed, arms = 0, 0, 0
    for tier, row in pairs(s.tiers) do
      assert.matches("^returning_10_", tier)
      issued, redeemed = issued + row.issued, redeemed + row.redeemed
    end
    assert.are.equal(12, issued)
    assert.are.equal(1, redeemed)
    for arm, tiers in pairs(s.experiments.popup_offer) do
      arms = arms + 1
      -- each arm's coupons are of its own tier
      for tier in pairs(tiers) do assert.are.equal("returning_10_" .. arm, tier) end
    end
    assert.are.equal(2, arms)
    local first = s.experiments.popup_offer[codes[1].name:match("returning_10_(.*)")][codes[1].name]
    assert.are.equal(1, first.redeemed)
    e:close()
  end)

  it("counts a coupon once, in the arm its holder saw first, across a login", function()
    local e = engine()
    local first, issued = {}, 0
    for i = 1, 16 do
      local anon, customer = "w" .. i, "k" .. i
      -- Exposed as anon, then (a moment later) as the customer, who gets a
      -- coupon naming both ids: about half of them in the other arm.
      first[i] = e:decide { kind = "browse", anon = anon }.result.name
      os.execute("sleep 0.002")
      assert(e:ingest { type = "identify", customer = customer, anon = anon })
      local d = e:decide { kind = "popup", customer = customer, anon = anon,
                           context = { trigger = "exit_intent", tier = "login_" .. first[i] } }
      assert.is_nil(d.fallback, d.error)
      assert.is_string(d.result.coupon)
      issued = issued + 1
    end
    local arms = e:stats().coupons.experiments.popup_offer
    local counted = 0
    for arm, tiers in pairs(arms) do
      for tier, row in pairs(tiers) do
        -- each coupon in the arm of its holder's first exposure
        assert.are.equal("login_" .. arm, tier)
        counted = counted + row.issued
      end
    end
    assert.are.equal(issued, counted)
    e:close()
  end)

  it("is erased with the customer, and listed by the right of access", function()
    local e = engine()
    assert(e:ingest { type = "identify", customer = "c9", anon = "v9" })
    local code = exit_popup(e, "v9").result.coupon
    local x = assert(e:export_customer("c9"))
    assert.are.equal(code, x.coupons[1].code)
    assert(e:forget("c9"))
    assert.is_nil(e:coupon_check(code))
    assert.are.equal(0, #e:export_customer("c9").coupons)
    e:close()
  end)
end)

describe("frequency caps across channels", function()
  it("refuses caps it cannot read, which would cap no one, naming the field", function()
    local dir = os.getenv("TAILOR_TEST_TMP") .. "/caps_bad"
    os.execute("mkdir -p " .. dir)
    for _, case in ipairs {
      { "{ per_dya = 1 }", "t.lua: caps.per_dya: unknown field (per_day, per_campaign, window_hours, exempt)" },
      { "{ per_day = '1' }", "t.lua: caps.per_day: a whole number of contacts (0: no cap), not a string" },
      { "{ per_campaign = 1.5 }", "caps.per_campaign: a whole number of contacts (0: no cap), not 1.5" },
      { "{ per_day = 1, window_hours = 0 }", "caps.window_hours: a number of hours above 0, not 0" },
      { "{ per_day = 1, exempt = 'subscribed' }", "caps.exempt: a list of campaign names, not a string" },
      { "{ per_day = 1, exempt = { 'a', 5 } }", "caps.exempt[2]: a campaign name, not a number" },
      { "function() return { per_day = 1 } end", "t.lua: caps: a table ({per_day = 1, ...}), not a function" },
    } do
      local f = assert(io.open(dir .. "/t.lua", "w"))
      f:write("return { caps = " .. case[1] .. ", popup = function() return { name = 'x' } end }\n")
      f:close()
      local e, err = tailor.open { db = ":memory:", strategies = dir }
      assert.is_nil(e, case[1])
      assert.matches(case[2], tostring(err), 1, true)
    end
    -- what the docs show loads and caps
    local f = assert(io.open(dir .. "/t.lua", "w"))
    f:write("return { caps = { per_day = 1, per_campaign = 1, window_hours = 24, exempt = { 'subscribed' } },"
            .. " popup = function() return { name = 'x' } end }\n")
    f:close()
    local e = assert(tailor.open { db = ":memory:", strategies = dir })
    local ask = { kind = "popup", anon = "v1", context = { trigger = "exit_intent" } }
    assert.are.equal("x", e:decide(ask).result.name)
    assert.are.equal("per_day", e:decide(ask).capped)
    e:close()
  end)

  it("gives a visitor who got the cart email today no coupon popup as well", function()
    local e = engine()
    assert(e:ingest { type = "add_to_cart", item = "hat", customer = "c1" })
    local rows = e:outbox()
    assert.are.equal(1, #rows)
    assert.is_string(rows[1].vars.code) -- the email carries its own code
    local d = e:decide { kind = "popup", customer = "c1", context = { trigger = "exit_intent" } }
    assert.is_nil(d.fallback, d.error)
    assert.are_not.equal("table", type(d.result))
    assert.are.equal("per_day", d.capped)
    e:close()
  end)

  it("counts a popup with its coupon once, and caps the next popup of the day", function()
    local e = engine()
    local first = exit_popup(e, "v1")
    assert.is_string(first.result.coupon)
    assert.is_nil(first.capped)
    local second = e:decide { kind = "plain", anon = "v1" }
    -- only popups are capped in decisions; coupons by tailor.coupon
    assert.are.equal("free_shipping", second.result.name)
    local third = exit_popup(e, "v1")
    assert.are.equal("per_day", third.capped)
    -- Another visitor is not concerned.
    assert.is_string(exit_popup(e, "v2").result.coupon)
    e:close()
  end)

  it("caps an email that carries no coupon as well", function()
    local e = engine()
    local d = e:decide { kind = "popup", customer = "c1", context = { trigger = "exit_intent" } }
    assert.is_string(d.result.coupon)
    assert(e:ingest { type = "signup", customer = "c1" })
    assert.are.equal(0, #e:outbox())
    assert.are.equal(1, e:stats().process.triggers_capped)
    assert(e:ingest { type = "customer_upsert",
                      customer = { id = "c2", email = "b@x.io", consent = { email = true } } })
    assert(e:ingest { type = "signup", customer = "c2" }) -- nobody else is capped
    assert.are.equal(1, #e:outbox())
    e:close()
  end)

  it("schedules no email to a customer at the day's cap", function()
    local e = engine()
    local d = e:decide { kind = "popup", customer = "c1", context = { trigger = "exit_intent" } }
    assert.is_string(d.result.coupon)
    assert(e:ingest { type = "add_to_cart", item = "hat", customer = "c1" })
    assert.are.equal(0, #e:outbox())
    assert.are.equal(1, e:stats().process.triggers_capped)
    -- and the coupon the capped email would have carried is not kept
    local s = e:stats().coupons.tiers
    assert.is_nil(s.cart_5)
    e:close()
  end)

  it("keeps no coupon of an email that is not scheduled, nor counts it", function()
    local e = engine()
    -- c3 has not agreed to email: the cart email is dropped, and so is the
    -- code it would have carried, which nobody would ever see.
    assert(e:ingest { type = "customer_upsert", customer = { id = "c3", email = "c@x.io" } })
    assert(e:ingest { type = "add_to_cart", item = "hat", customer = "c3" })
    assert.are.equal(0, #e:outbox())
    assert.is_nil(e:stats().coupons.tiers.cart_5)
    local d = e:decide { kind = "popup", customer = "c3", context = { trigger = "exit_intent" } }
    assert.is_nil(d.capped)
    assert.is_string(d.result.coupon)
    -- An email already pending under the key: the new code would not be in it.
    local ts = os.time() * 1000
    assert(e:ingest { type = "add_to_cart", item = "hat", customer = "c1", ts = ts })
    assert(e:ingest { type = "add_to_cart", item = "hat", customer = "c1", ts = ts,
                      session = "again" })
    assert.are.equal(1, #e:outbox())
    assert.are.equal(1, e:stats().coupons.tiers.cart_5.issued)
    e:close()
  end)
end)
