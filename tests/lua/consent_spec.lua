-- consent_spec.lua: consent per purpose (a consent event from the
-- storefront) honoured by the engine: analytics declined, events are not
-- kept; personalization declined, decisions are what anyone gets;
-- marketing declined, no audience and no email; and the session's traffic
-- source (props medium, source, campaign, device of its events) as
-- ctx.session.source.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

local function engine(dir)
  local e = assert(tailor.open { db = ":memory:", strategies = root .. (dir or "/tests/lua/consent") })
  for _, id in ipairs { "hat", "scarf", "gloves" } do
    assert(e:ingest { type = "item_upsert", item = { id = id, name = id, price = 10 } })
  end
  return e
end

local function probe(e, who, session)
  local d = e:decide { kind = "probe", anon = who, session = session }
  assert.is_nil(d.fallback, d.error)
  return d.result
end

describe("consent", function()
  it("keeps no event of a visitor who declined analytics, until they accept", function()
    local e = engine()
    assert(e:ingest { type = "consent", anon = "v1", props = { analytics = false } })
    assert(e:ingest { type = "view", anon = "v1", item = "hat" })
    assert(e:ingest { type = "view", anon = "v1", item = "scarf" })
    local r = probe(e, "v1")
    assert.are.equal(0, r.recent)
    assert.is_false(r.consent.analytics)
    assert.is_true(r.consent.personalization)
    assert(e:ingest { type = "consent", anon = "v1", props = { analytics = true } })
    assert(e:ingest { type = "view", anon = "v1", item = "gloves" })
    assert.are.equal(1, probe(e, "v1").recent)
    e:close()
  end)

  it("answers a visitor who declined personalization as anyone", function()
    local e = engine()
    assert(e:ingest { type = "view", anon = "v2", item = "hat" })
    assert.are.equal(1, probe(e, "v2").recent)
    assert(e:ingest { type = "consent", anon = "v2", props = { personalization = false } })
    local r = probe(e, "v2")
    assert.is_false(r.seen)
    assert.are.equal(0, r.recent)
    e:close()
  end)

  -- How many retargeting audiences the shipped strategy puts `who` in.
  local function audiences(e, who)
    local d = e:decide { kind = "audiences", anon = who.anon, customer = who.customer }
    assert.is_nil(d.fallback, d.error)
    return #d.result.audiences
  end

  it("puts a visitor who declined marketing in no audience", function()
    local e = engine("/strategies")
    assert(e:ingest { type = "view", anon = "v3", item = "hat" })
    assert.are.equal(1, audiences(e, { anon = "v3" }))
    assert(e:ingest { type = "consent", anon = "v3", props = { marketing = false } })
    assert.are.equal(0, audiences(e, { anon = "v3" }))
    e:close()
  end)

  it("takes a profile's consent.marketing = false as a decline", function()
    local e = engine("/strategies")
    assert(e:ingest { type = "customer_upsert",
                      customer = { id = "c6", email = "c6@example.com",
                                   consent = { email = true, marketing = false } } })
    assert(e:ingest { type = "view", customer = "c6", item = "hat" })
    assert.are.equal(0, audiences(e, { customer = "c6" }))
    assert(e:ingest { type = "customer_upsert", customer = { id = "c6", consent = { marketing = true } } })
    assert.are.equal(1, audiences(e, { customer = "c6" }))
    e:close()
  end)

  it("keeps a decline made before login for the customer it turns out to be", function()
    local e = engine("/strategies")
    assert(e:ingest { type = "view", anon = "v5", item = "hat" })
    assert(e:ingest { type = "consent", anon = "v5", props = { marketing = false } })
    assert(e:ingest { type = "customer_upsert",
                      customer = { id = "c5", email = "c5@example.com", consent = { email = true } } })
    assert(e:ingest { type = "identify", customer = "c5", anon = "v5" })
    assert.are.equal(0, audiences(e, { customer = "c5" }))
    -- Their own consent later says otherwise: in audiences again.
    assert(e:ingest { type = "consent", customer = "c5", props = { marketing = true } })
    assert.are.equal(1, audiences(e, { customer = "c5" }))
    e:close()
  end)
end)

describe("the session's traffic source", function()
  it("is the first one its events name, as ctx.session.source", function()
    local e = engine()
    assert(e:ingest { type = "page_view", anon = "v4", session = "s4",
                      props = { medium = "social", source = "instagram", campaign = "spring",
                                device = "mobile" } })
    assert(e:ingest { type = "page_view", anon = "v4", session = "s4",
                      props = { medium = "email", source = "newsletter", device = "mobile" } })
    assert.are.same({ medium = "social", source = "instagram", campaign = "spring", device = "mobile" },
                    probe(e, "v4", "s4").source)
    assert.is_false(probe(e, "v4", "other").source)
    e:close()
  end)

  it("is a segment input in the shipped segments", function()
    local e = engine("/strategies")
    assert(e:ingest { type = "page_view", anon = "v5", session = "s5",
                      props = { medium = "paid", source = "google", device = "tablet" } })
    local d = e:decide { kind = "visitor", anon = "v5", session = "s5" }
    assert.is_nil(d.fallback, d.error)
    local seg = {}
    for _, s in ipairs(d.result.segments) do seg[s] = true end
    assert.is_true(seg.from_ads)
    assert.is_true(seg.tablet)
    e:close()
  end)
end)

describe("consent to email", function()
  it("is given for an address: a new address without its own consent has none", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/tests/lua/consent" })
    assert(e:ingest { type = "customer_upsert",
                      customer = { id = "m1", email = "m1@example.com", consent = { email = true } } })
    assert.is_true(e:customer("m1").consent.email)
    -- The same address again (a shop's sync): consent stays.
    assert(e:ingest { type = "customer_upsert", customer = { id = "m1", email = "m1@example.com" } })
    assert.is_true(e:customer("m1").consent.email)
    -- Another address without consent (a signed-in visitor's identify
    -- traits, a typo): none until it is given for that one.
    assert(e:ingest { type = "customer_upsert", customer = { id = "m1", email = "other@example.com" } })
    assert.is_false(e:customer("m1").consent.email)
    assert.are.equal("other@example.com", e:export_customer("m1").profile.email)
    assert.are.equal(0, e:export_customer("m1").profile.consent_email)
    e:close()
  end)
end)
