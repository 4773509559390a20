-- optin_spec.lua: email capture with double opt-in (issue 20 item 1, the
-- email half), on the real engine and the shipped strategies: the popup
-- asks for an address with an incentive; a subscribe stores no address on
-- anyone and schedules the confirmation email through the outbox; only the
-- signed link stores it, with consent to email and a consent record, and
-- brings the incentive's code; a forged, malformed, expired or used link
-- and a malformed address change nothing; erasure removes the records.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."
local tmp = os.getenv("TAILOR_TEST_TMP") or "/tmp"

local SECRET = "optin-secret-0123456789"
local URL = "https://shop.example/tailor/v1/confirm"

local function open(extra)
  local cfg = {
    db = ":memory:", strategies = root .. "/strategies",
    lua = { reload_interval_ms = 60000 },
    optin = { secret = SECRET, confirm_url = URL },
  }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return assert(tailor.open(cfg))
end

local function ask(e, who, session)
  local d = e:decide { kind = "popup", anon = who, session = session or (who .. "-s"),
                       context = { trigger = "time_on_page", seconds = 90, device = "desktop" } }
  assert.is_nil(d.fallback, d.error)
  return d.result
end

local NONE = {} -- a field left out of a request

local function subscribe(e, fields)
  local req = { email = "ada@example.com", anon = "v1", purpose = "newsletter",
                text = "Yes, email me the newsletter.", source = "popup:newsletter_10" }
  for k, v in pairs(fields or {}) do
    if v == NONE then req[k] = nil else req[k] = v end
  end
  return e:subscribe(req)
end

-- The confirmation row of a request (the newest), and its link's token.
local function confirmation(e)
  for _, row in ipairs(e:outbox()) do
    if row.key:match("^optin:") then return row, row.vars.link:match("token=([%w.]+)$") end
  end
end

local function events(e) return e:stats().events_total end

local function count(e, prefix)
  local n = 0
  for _, row in ipairs(e:outbox()) do
    if row.key:sub(1, #prefix) == prefix then n = n + 1 end
  end
  return n
end

describe("email capture", function()
  it("stores the address only once the signed link is followed, with its consent record", function()
    local e = open()
    local before = events(e)
    local text = "Yes, email me the newsletter. I can withdraw my consent at any time."
    local r = assert(subscribe(e, { email = "  Ada@Example.COM ", text = text }))
    assert.are.equal("pending", r.status)
    assert.is_true(r.expires > os.time() * 1000 + 47 * 3600 * 1000)
    -- Nothing about the visitor changed, no profile holds the address, and
    -- the confirmation row names the request, not the address.
    assert.are.equal(before, events(e))
    assert.are.equal(0, e:stats().customers)
    local row, token = confirmation(e)
    assert.are.equal("confirm_email", row.template)
    assert.are.equal("email", row.channel)
    assert.matches("^sub%-" .. ("%x"):rep(24) .. "$", row.customer)
    assert.are.equal(1, row.vars.link:find(URL .. "?token=", 1, true))
    assert.matches("^%x+%.%d+%.%x+$", token)
    assert.are.equal(text, row.vars.text)
    for _, v in pairs(row.vars) do
      assert.is_nil(tostring(v):lower():find("ada@example.com", 1, true))
    end
    assert.is_nil(e:customer(row.customer))

    local c = assert(e:confirm(token))
    assert.is_true(c.confirmed)
    assert.are.equal(row.customer, c.customer)
    assert.are.equal("ada@example.com", c.email) -- trimmed, lower-cased
    local who = e:customer(c.customer, true)
    assert.are.equal("ada@example.com", who.email)
    assert.is_true(who.consent.email)
    -- The consent record, for audit.
    local rec = e:export_customer(c.customer).consents
    assert.are.equal(1, #rec)
    assert.are.equal("confirmed", rec[1].state)
    assert.are.equal("newsletter", rec[1].purpose)
    assert.are.equal(text, rec[1].text)
    assert.are.equal("popup:newsletter_10", rec[1].source)
    assert.are.equal("v1", rec[1].anon)
    assert.is_true(rec[1].confirmed >= rec[1].requested)
    -- The visitor is linked to the new customer.
    assert.are.equal("v1", e:export_customer(c.customer).identities[1].anon)
    e:close()
  end)

  it("is asked by the shipped popup with an incentive, whose code the confirmation brings", function()
    local e = open()
    local p = ask(e, "v1")
    assert.are.equal("email_capture", p.kind)
    assert.are.equal("newsletter_10", p.name)
    assert.are.equal("popup:newsletter_10", p.source)
    assert.are.equal("newsletter", p.purpose)
    assert.are.equal(10, p.incentive.percent)
    assert.is_nil(p.coupon) -- the code comes once the address is confirmed
    assert.matches("newsletter", p.consent_text)
    -- Exit intent still brings the offers (shipped_spec), and a visitor who
    -- declined marketing is not asked.
    local x = e:decide { kind = "popup", anon = "v9", session = "v9-s",
                         context = { trigger = "exit_intent", device = "desktop" } }
    assert.are.equal("free_shipping", x.result.name)
    assert(e:ingest { type = "consent", anon = "v8", props = { marketing = false } })
    assert.are_not.equal("email_capture", (ask(e, "v8") or {}).kind)

    assert(subscribe(e, { purpose = p.purpose, text = p.consent_text, source = p.source }))
    local _, token = confirmation(e)
    assert.are.equal(0, count(e, "subscribed:"))
    local c = assert(e:confirm(token))
    -- The visitor is known now: no more asking.
    assert.are_not.equal("email_capture", (ask(e, "v1", "v1-s2") or {}).kind)
    -- The welcome carries the incentive's code, valid at the checkout.
    local welcome
    for _, o in ipairs(e:outbox()) do
      if o.key:match("^subscribed:") then welcome = o end
    end
    assert.is_table(welcome)
    assert.are.equal(c.customer, welcome.customer)
    assert.are.equal("subscribed", welcome.template)
    assert.are.equal(10, welcome.vars.percent)
    assert.matches("^WELCOME10%-", welcome.vars.coupon)
    assert.is_true(e:coupon_check(welcome.vars.coupon).valid)
    -- From elsewhere (a form of the shop's): the welcome, without a code.
    assert(subscribe(e, { anon = "v2", email = "bob@example.com", source = "footer" }))
    local _, t2 = confirmation(e)
    assert(e:confirm(t2))
    local plain
    for _, o in ipairs(e:outbox()) do
      if o.key:match("^subscribed:") and o.customer ~= c.customer then plain = o end
    end
    assert.is_table(plain)
    assert.is_nil(plain.vars.coupon)
    e:close()
  end)

  it("refuses a malformed address, naming what is wrong, and stores nothing", function()
    local e = open()
    for addr, why in pairs {
      ["ada"] = "no '@'", ["ada@"] = "nothing comes after", ["@example.com"] = "nothing comes before",
      ["a b@example.com"] = "character", ["ada@example"] = "no dot", ["ada@-x.example.com"] = "starts with '-'",
      ["a..b@example.com"] = "two dots", ["ada@x..com"] = "empty label", ["a@b@example.com"] = "more than one",
      ["ada@exa mple.com"] = "character", ["adä@example.com"] = "not ASCII",
    } do
      local ok, msg, code = subscribe(e, { email = addr })
      assert.is_nil(ok, addr)
      assert.are.equal("EINVAL", code)
      assert.matches("is not an email address", msg, 1, true)
      assert.matches(why, msg, 1, true)
    end
    local ok, msg = subscribe(e, { purpose = false })
    assert.is_nil(ok)
    assert.matches("'purpose' must be a string", msg, 1, true)
    -- The purpose is a key, not a sentence a caller puts in the shop's email.
    ok, msg = subscribe(e, { purpose = "URGENT: your account is locked" })
    assert.is_nil(ok)
    assert.matches("'purpose' must be a key", msg, 1, true)
    ok, msg = subscribe(e, { anon = NONE })
    assert.is_nil(ok)
    assert.matches("say who asks", msg, 1, true)
    ok, msg = e:subscribe { email = "ada@example.com", anon = "v1", purpose = "n", text = "t",
                            costumer = "c1" }
    assert.is_nil(ok)
    assert.matches("unknown field 'costumer'", msg, 1, true)
    ok, msg = subscribe(e, { text = ("x"):rep(2001) })
    assert.is_nil(ok)
    assert.matches("'text' must be 1 to 2000 bytes", msg, 1, true)
    assert.are.same({}, e:outbox())
    assert.are.same({}, e:export_customer("sub-anything").consents)
    e:close()
  end)

  it("refuses a forged, malformed, expired or used link, changing nothing", function()
    local e = open()
    assert(subscribe(e))
    local row, token = confirmation(e)
    local before = events(e)
    local id, expiry, sig = token:match("^(%x+)%.(%d+)%.(%x+)$")
    local flip = sig:sub(1, 1) == "a" and "b" or "a"
    for _, bad in ipairs {
      { id .. "." .. expiry .. "." .. flip .. sig:sub(2), "signature does not match" },
      { id .. "." .. (expiry + 86400) .. "." .. sig, "signature does not match" },
      { ("0"):rep(32) .. "." .. expiry .. "." .. sig, "signature does not match" },
      { "hello", "not a confirmation link" },
      { token .. "0", "not a confirmation link" },
      { "", "not a confirmation link" },
    } do
      local ok, msg, code = e:confirm(bad[1])
      assert.is_nil(ok)
      assert.are.equal("EINVAL", code)
      assert.matches(bad[2], msg, 1, true)
    end
    assert.are.equal(before, events(e))
    assert.is_nil(e:customer(row.customer))
    assert.are.equal("pending", e:export_customer(row.customer).consents[1].state)
    -- The real one works once; the second use is refused and changes nothing.
    assert(e:confirm(token))
    local after = events(e)
    local welcomes = count(e, "subscribed:")
    local ok, msg = e:confirm(token)
    assert.is_nil(ok)
    assert.matches("used already: the address was confirmed at 20", msg, 1, true)
    assert.are.equal(after, events(e))
    assert.are.equal(welcomes, count(e, "subscribed:"))
    e:close()

    -- A link past its time: signed, but refused.
    e = open { optin = { secret = SECRET, confirm_url = URL, link_ttl_s = 1 } }
    assert(subscribe(e, { anon = "v2" }))
    row, token = confirmation(e)
    local t0 = os.time()
    while os.time() - t0 < 2 do end
    before = events(e)
    ok, msg = e:confirm(token)
    assert.is_nil(ok)
    assert.matches("expired at", msg, 1, true)
    assert.are.equal(before, events(e))
    assert.is_nil(e:customer(row.customer))
    -- The next request deletes the expired one: no address kept unconfirmed.
    assert(subscribe(e, { anon = "v3", email = "bob@example.com" }))
    assert.are.same({}, e:export_customer(row.customer).consents)
    e:close()
  end)

  it("sends an address at most three confirmations a day", function()
    local e = open()
    for i = 1, 3 do assert(subscribe(e, { anon = "v" .. i })) end
    local ok, msg = subscribe(e, { anon = "v4", email = "ADA@example.com" })
    assert.is_nil(ok)
    assert.matches("3 confirmation emails went to this address", msg, 1, true)
    -- A "+tag" reaches the same mailbox: the same limit.
    ok, msg = subscribe(e, { anon = "v5", email = "ada+news@example.com" })
    assert.is_nil(ok)
    assert.matches("3 confirmation emails went to this address", msg, 1, true)
    assert.are.equal(3, count(e, "optin:"))
    -- At Gmail, the dots and the domain's two names too.
    for i, addr in ipairs { "grace@gmail.com", "g.race@gmail.com", "grace+x@googlemail.com" } do
      assert(subscribe(e, { anon = "g" .. i, email = addr }))
    end
    ok, msg = subscribe(e, { anon = "g4", email = "gr.ace@googlemail.com" })
    assert.is_nil(ok)
    assert.matches("3 confirmation emails went to this address", msg, 1, true)
    assert(subscribe(e, { anon = "v4", email = "bob@example.com" }))
    e:close()
  end)

  it("puts a customer's address on their profile and keeps the rest of it", function()
    local e = open()
    assert(e:ingest { type = "customer_upsert",
                      customer = { id = "c1", phone = "+441234", attrs = { country = "DE" } } })
    assert(subscribe(e, { customer = "c1", anon = NONE }))
    local row, token = confirmation(e)
    assert.are.equal("c1", row.customer)
    assert(e:confirm(token))
    local p = e:export_customer("c1").profile
    assert.are.equal("ada@example.com", p.email)
    assert.are.equal("+441234", p.phone)
    assert.are.equal(1, p.consent_email)
    assert.are.equal("DE", p.body.attrs.country)
    e:close()
  end)

  it("is erased with the person: their requests, pending or confirmed, and those for their address", function()
    local e = open()
    assert(e:ingest { type = "customer_upsert", customer = { id = "c1" } })
    assert(e:ingest { type = "identify", customer = "c1", anon = "a1" })
    assert(subscribe(e, { customer = "c1", anon = NONE }))
    local _, token = confirmation(e)
    assert(e:confirm(token))
    assert(subscribe(e, { anon = "a1", email = "other@example.com" }))     -- their visitor's
    assert(subscribe(e, { anon = "stranger" }))                           -- their address
    assert(subscribe(e, { anon = "v7", email = "v7@example.com" }))       -- someone else
    local _, t7 = confirmation(e)
    assert.are.equal(3, #e:export_customer("c1").consents)
    assert(e:forget("c1"))
    assert.are.same({}, e:export_customer("c1").consents)
    local ok, msg = e:confirm(token)
    assert.is_nil(ok)
    assert.matches("never made, expired unconfirmed, or its address was erased", msg, 1, true)
    -- Someone else's request is theirs; an anonymous subscriber is erased
    -- by the customer id its confirmation gave.
    local c = assert(e:confirm(t7))
    assert.are.equal(1, #e:export_customer(c.customer).consents)
    assert(e:forget(c.customer))
    assert.are.same({}, e:export_customer(c.customer).consents)
    assert.is_nil(e:customer(c.customer))
    e:close()
  end)

  it("keeps a confirmed address over a restart, from the checkpoint and by replay", function()
    local db = tmp .. "/optin_spec.db"
    os.remove(db)
    os.remove(db .. ".ckpt")
    local e = open { db = db }
    assert(subscribe(e))
    local _, token = confirmation(e)
    local c = assert(e:confirm(token))
    e:close()
    for _, ckpt in ipairs { "auto", "" } do
      e = open { db = db, index = { checkpoint = ckpt } }
      local who = e:customer(c.customer)
      assert.is_true(who.consent.email)
      assert.are.equal("confirmed", e:export_customer(c.customer).consents[1].state)
      assert.is_nil(e:confirm(token))
      e:close()
    end
    os.remove(db)
    os.remove(db .. ".ckpt")
  end)

  it("is off without a secret and a link, and refuses a weak secret", function()
    local e = assert(tailor.open { db = ":memory:", strategies = "" })
    local ok, msg, code = subscribe(e)
    assert.is_nil(ok)
    assert.are.equal("EUNSUPPORTED", code)
    assert.matches("email capture is off: set optin.secret and optin.confirm_url", msg, 1, true)
    e:close()
    local none, why = tailor.open { db = ":memory:", optin = { secret = "short" } }
    assert.is_nil(none)
    assert.matches("'optin.secret' must have 16 bytes or more", why, 1, true)
    none, why = tailor.open { db = ":memory:", optin = { secret = SECRET, confirm_url = "ftp://x" } }
    assert.is_nil(none)
    assert.matches("'optin.confirm_url' must be an http", why, 1, true)
  end)
end)
