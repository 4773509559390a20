-- popup_spec.lua: the shipped popup (strategies/popup.lua) on the real
-- engine with the shipped caps (caps.lua) and triggers: every popup's
-- coupon is a unique single-use code with the configured lifetime, which
-- the checkout redeems once; the caps across channels hold it back for a
-- visitor who gets the cart email today and hold a same-day email back
-- after a popup, while the emails a purchase schedules for weeks later
-- (post-purchase, win-back) are all kept, and a superseding email
-- replaces the one it moves.  propensity_spec has the popup holding its
-- discount for a session that would buy anyway.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."
local DAY = 86400

local function iso(seconds_ago)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - seconds_ago)
end

local function shop()
  local e = assert(tailor.open { db = ":memory:", strategies = root .. "/strategies",
                                 lua = { reload_interval_ms = 60000 },
                                 optin = { secret = "popup-spec-secret-0123456789abcdef",
                                           confirm_url = "https://shop.example/confirm" } })
  for _, id in ipairs { "hat", "jacket", "gloves" } do
    assert(e:ingest { type = "item_upsert", item = { id = id, name = id, price = 40, category = "Shop/" .. id } })
  end
  for _, c in ipairs { "c1", "c2", "c3" } do
    assert(e:ingest { type = "customer_upsert",
                      customer = { id = c, email = c .. "@x.io", consent = { email = true } } })
    -- A visit days ago: a returning visitor now.
    assert(e:ingest { type = "view", item = "hat", customer = c, session = c .. "-old", ts = iso(3 * DAY) })
  end
  return e
end

-- A page of this visit (a page view schedules no email): a returning
-- visitor for a customer with the old visit.
local function arrive(e, customer)
  assert(e:ingest { type = "page_view", customer = customer, session = customer .. "-now" })
end

local function exit_popup(e, who)
  who.context = { trigger = "exit_intent", device = "desktop" }
  who.kind = "popup"
  local d = e:decide(who)
  assert.is_nil(d.fallback, d.error)
  return d
end

local function pending(e, customer)
  local out = {}
  for _, row in ipairs(e:outbox("pending", customer)) do out[#out + 1] = row.template end
  table.sort(out)
  return out
end

describe("the shipped popup", function()
  it("gives each visitor a unique code of its tier, valid for the configured hours, redeemed once", function()
    local e = shop()
    local a = exit_popup(e, { anon = "n1", session = "s1" })
    local b = exit_popup(e, { anon = "n2", session = "s2" })
    assert.are.equal("free_shipping", a.result.name)
    assert.matches("^FREESHIPPING%-[0-9A-Z]+$", a.result.coupon)
    assert.are_not.equal(a.result.coupon, b.result.coupon)
    local c = assert(e:coupon_check(a.result.coupon))
    assert.is_true(c.valid)
    assert.are.equal("free_shipping", c.tier)
    -- settings.popup.coupon_ttl_hours (72) from now
    local hours = (c.expires - c.issued) / 3600000
    assert.is_true(math.abs(hours - 72) < 0.01, hours)
    assert.are.equal(a.result.expires, c.expires)
    -- A returning customer: 10% with a code that says so.
    arrive(e, "c1")
    local r = exit_popup(e, { customer = "c1", session = "c1-now" })
    assert.are.equal("returning_10", r.result.name)
    assert.are.equal(10, r.result.percent)
    assert.matches("^RETURNING10%-", r.result.coupon)
    assert.are.equal(10, e:coupon_check(r.result.coupon).percent)
    -- Redeemed once by the checkout; the second time is refused.
    assert(e:ingest { type = "coupon_redeemed", code = r.result.coupon, order_id = "o1", customer = "c1" })
    local ok, msg = e:ingest { type = "coupon_redeemed", code = r.result.coupon, order_id = "o2" }
    assert.is_nil(ok)
    assert.matches("already redeemed", msg)
    local tiers = e:stats().coupons.tiers
    assert.are.equal(2, tiers.free_shipping.issued)
    assert.are.equal(1, tiers.returning_10.redeemed)
    e:close()
  end)

  it("gives a customer who gets the cart email today no 10% popup", function()
    local e = shop()
    assert(e:ingest { type = "add_to_cart", item = "jacket", customer = "c1", session = "c1-now" })
    assert.are.same({ "abandoned_cart" }, pending(e, "c1"))
    local d = exit_popup(e, { customer = "c1", session = "c1-now" })
    assert.is_nil(d.result)
    assert.are.equal("per_day", d.capped)
    assert.is_nil(e:stats().coupons.tiers.returning_10) -- no code issued
    -- Another returning customer without an email today gets it.
    arrive(e, "c2")
    assert.are.equal("returning_10", exit_popup(e, { customer = "c2", session = "c2-now" }).result.name)
    e:close()
  end)

  it("counts a coupon taken before login against the customer's caps", function()
    local e = shop()
    assert(e:ingest { type = "view", item = "hat", anon = "v9", session = "v9-old", ts = iso(3 * DAY) })
    assert(e:ingest { type = "page_view", anon = "v9", session = "v9-now" })
    assert.is_string(exit_popup(e, { anon = "v9", session = "v9-now" }).result.coupon)
    assert(e:ingest { type = "identify", customer = "c3", anon = "v9" })
    -- The cart email would be a second contact today: held back.
    assert(e:ingest { type = "add_to_cart", item = "jacket", customer = "c3", anon = "v9",
                      session = "v9-now" })
    assert.are.same({}, pending(e, "c3"))
    assert.are.equal(1, e:stats().process.triggers_capped)
    e:close()
  end)

  it("counts a popup asked under an anonymous id equal to a customer's as a stranger's", function()
    local e = shop()
    -- Anyone can send "anon": "c1": a stranger, not customer c1.  Their
    -- email capture (a popup without a coupon) is their contact ...
    local ask = { kind = "popup", anon = "c1", session = "x-now",
                  context = { trigger = "time_on_page", seconds = 90, device = "desktop" } }
    assert.are.equal("email_capture", e:decide(ask).result.kind)
    -- ... and does not hold back customer c1's cart email of today.
    arrive(e, "c1")
    assert(e:ingest { type = "add_to_cart", item = "jacket", customer = "c1", session = "c1-now" })
    assert.are.same({ "abandoned_cart" }, pending(e, "c1"))
    assert.are.equal(0, e:stats().process.triggers_capped)
    -- Nor is a stranger named "c9" capped by customer c9's popup today.
    assert(e:ingest { type = "customer_upsert", customer = { id = "c9" } })
    ask.customer, ask.anon, ask.session = "c9", nil, "c9-now"
    assert.are.equal("email_capture", e:decide(ask).result.kind)
    ask.customer, ask.anon, ask.session = nil, "c9", "y-now"
    assert.are.equal("email_capture", e:decide(ask).result.kind)
    e:close()
  end)

  it("holds a same-day email back after a popup; emails due weeks later are all kept", function()
    local e = shop()
    arrive(e, "c1")
    assert.is_string(exit_popup(e, { customer = "c1", session = "c1-now" }).result.coupon)
    -- The browse email (due in hours) would be a second contact today.
    assert(e:ingest { type = "view", item = "gloves", customer = "c1", session = "c1-now" })
    assert.are.same({}, pending(e, "c1"))
    assert.are.equal(1, e:stats().process.triggers_capped)
    -- A purchase schedules the follow-up (14 days) and the win-back (90
    -- days): neither is a contact today, nor do they cap each other.
    assert(e:ingest { type = "purchase", customer = "c1", session = "c1-now", order_id = "o1",
                      items = { { id = "hat", price = 40 } } })
    assert.are.same({ "post_purchase", "win_back" }, pending(e, "c1"))
    assert.are.equal(1, e:stats().process.triggers_capped)
    e:close()
  end)

  it("never holds back the welcome a visitor asked for, nor its code (caps.exempt)", function()
    local e = shop()
    -- A customer without an address on file is asked on a long stay ...
    assert(e:ingest { type = "customer_upsert", customer = { id = "c9" } })
    local d = e:decide { kind = "popup", customer = "c9", session = "c9-now",
                         context = { trigger = "time_on_page", seconds = 90, device = "desktop" } }
    assert.are.equal("email_capture", d.result.kind) -- a contact of today
    -- ... gives it, and confirms it from the mailbox the same day.
    assert(e:subscribe { email = "c9@x.io", customer = "c9", purpose = d.result.purpose,
                         text = d.result.consent_text, source = d.result.source })
    local token
    for _, row in ipairs(e:outbox()) do
      if row.key:match("^optin:") then token = row.vars.link:match("token=([%w.]+)$") end
    end
    assert(e:confirm(token))
    local welcome
    for _, row in ipairs(e:outbox("pending")) do
      if row.key:match("^subscribed:") then welcome = row end
    end
    assert.is_table(welcome, "the welcome was capped")
    assert.matches("^WELCOME10%-", welcome.vars.coupon)
    -- It counts, though: no 10% popup on top of it today.
    assert(e:ingest { type = "page_view", customer = "c9", session = "c9-next" })
    local next = exit_popup(e, { customer = "c9", session = "c9-next" })
    assert.is_nil(next.result)
    assert.are.equal("per_day", next.capped)
    e:close()
  end)

  it("lets an email replace the one it supersedes at the cap", function()
    local e = shop()
    -- Each cart change moves the cart email: the new one replaces the
    -- pending one instead of counting beside it.
    assert(e:ingest { type = "add_to_cart", item = "jacket", customer = "c3", session = "c3-now" })
    local first = e:outbox("pending", "c3")[1]
    assert(e:ingest { type = "add_to_cart", item = "gloves", customer = "c3", session = "c3-now",
                      ts = iso(-1) })
    local rows = e:outbox("pending", "c3")
    assert.are.equal(1, #rows)
    assert.are_not.equal(first.key, rows[1].key)
    assert.are.equal(2, #rows[1].vars.cart)
    assert.are.equal(0, e:stats().process.triggers_capped)
    e:close()
  end)

end)
