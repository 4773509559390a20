-- landing_spec.lua: the shipped landing decision (strategies/landing.lua)
-- on the real engine, one visitor per traffic source: an email campaign,
-- paid search with a term, social, and a returning visitor who came
-- directly.  The source arrives as tailor.js sends it, in the props of the
-- session's page view.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."
local tmp = os.getenv("TAILOR_TEST_TMP") or "/tmp"

local CATALOG = {
  { id = "runner", name = "Trail Runner", price = 119, category = "Sport/Running/Shoes" },
  { id = "racer", name = "Road Racer", price = 139, category = "Sport/Running/Shoes" },
  { id = "tights", name = "Running Tights", price = 59, category = "Sport/Running/Apparel" },
  { id = "yoga", name = "Yoga Mat", price = 35, category = "Sport/Yoga" },
  { id = "sofa", name = "Oslo Sofa", price = 899, category = "Home/Living/Sofas" },
  { id = "lamp", name = "Floor Lamp", price = 129, category = "Home/Living/Lamps" },
  { id = "jacket", name = "Rain Jacket", price = 149, category = "Women/Outerwear" },
  { id = "hat", name = "Wool Hat", price = 24, category = "Accessories/Hats" },
}

local function shop(strategies)
  local e = assert(tailor.open {
    db = ":memory:", strategies = strategies or (root .. "/strategies"),
    coupons = "FREESHIP=100,WELCOMEBACK10=100,VIP15=10",
    lua = { reload_interval_ms = 60000 },
  })
  for _, it in ipairs(CATALOG) do assert(e:ingest { type = "item_upsert", item = it }) end
  -- Home goods trend everywhere (bought a lot); running shoes are what
  -- searchers of "trail shoes" buy, the racer most among running shoes.
  for n = 1, 8 do
    assert(e:ingest { type = "purchase", anon = "h" .. n, session = "hs" .. n, order_id = "h" .. n,
                      items = { { id = "sofa" }, { id = "lamp" } } })
  end
  for n = 1, 4 do
    local who, s = "s" .. n, "ss" .. n
    assert(e:ingest { type = "search", anon = who, session = s, query = "Trail Shoes" })
    assert(e:ingest { type = "view", anon = who, session = s, item = "runner" })
    assert(e:ingest { type = "purchase", anon = who, session = s, order_id = "s" .. n,
                      items = { { id = "runner" } } })
  end
  for n = 1, 5 do
    assert(e:ingest { type = "purchase", anon = "r" .. n, session = "rs" .. n, order_id = "r" .. n,
                      items = { { id = "racer" }, { id = "tights" } } })
  end
  return e
end

-- A visitor's first page view with the source tailor.js parsed, then the
-- landing decision for it.
local function land(e, who, session, props, context)
  assert(e:ingest { type = "page_view", anon = who, session = session, props = props })
  local d = assert(e:decide { kind = "landing", anon = who, session = session, k = 4,
                              page = { type = "home" }, context = context })
  assert.is_nil(d.error)
  assert.is_table(d.result, "a landing decision")
  return d.result
end

local function explained(result)
  assert.is_string(result.why)
  assert.is_table(result.banner)
  assert.is_string(result.banner.title)
  for _, row in ipairs(result.hero) do
    assert.is_string(row.explain, "every hero item says why: " .. row.id)
    assert.is_true(#row.explain > 0)
  end
end

describe("the landing decision", function()
  it("paid search: the searched category's bestsellers, with the term's finds", function()
    local e = shop()
    local r = land(e, "v1", "v1s", { medium = "paid", source = "google", campaign = "brand", device = "desktop" },
                   { term = "trail shoes" })
    explained(r)
    assert.equal("paid", r.medium)
    assert.equal("google", r.source)
    -- The term's buyers bought the runner, filed under Sport/Running/Shoes:
    -- that category's bestsellers first, the racer (5 orders) ahead.
    assert.same({ "racer", "runner" }, { r.hero[1].id, r.hero[2].id })
    assert.equal("Popular in Shoes", r.hero[1].explain)
    assert.equal("Popular in Shoes", r.banner.title)
    assert.equal("You searched for 'trail shoes'", r.why)
    -- The term's finds come next; what trends everywhere only fills up.
    assert.same({ "racer", "runner" }, { r.hero[1].id, r.hero[2].id })
    assert.is_true(r.hero[3].id == "sofa" or r.hero[3].id == "lamp", r.hero[3].id)
    assert.is_nil(r.offer)
    e:close()
  end)

  it("paid search: an item moved out of the searched category is no longer its bestseller", function()
    local e = shop()
    -- The racer, the shoes' bestseller, is filed under another category now.
    assert(e:ingest { type = "item_upsert", item = { id = "racer", name = "Road Racer", price = 139,
                                                     category = "Sport/Racing" } })
    local r = land(e, "v7", "v7s", { medium = "paid", source = "google" }, { term = "trail shoes" })
    explained(r)
    assert.equal("runner", r.hero[1].id)
    assert.matches("in Shoes$", r.hero[1].explain)
    for i = 2, #r.hero do
      assert.is_nil(r.hero[i].explain:find("Shoes", 1, true), r.hero[i].id .. ": " .. r.hero[i].explain)
    end
    e:close()
  end)

  it("email: the campaign's items first, its banner and offer", function()
    local e = shop()
    local r = land(e, "v2", "v2s", { medium = "email", source = "newsletter", campaign = "spring", device = "mobile" })
    explained(r)
    assert.equal("email", r.medium)
    assert.equal("spring", r.campaign)
    -- No campaign configured under that name: what sells, for a new reader.
    assert.equal("New for you", r.banner.title)
    assert.equal("You came from our 'spring' email", r.why)
    assert.is_true(#r.hero > 0)
    e:close()
  end)

  it("email: a configured campaign names its items, category and banner", function()
    -- The shipped strategies with one campaign in lib/settings.lua.
    local dir = tmp .. "/landing-strategies"
    assert(os.execute("rm -rf '" .. dir .. "' && cp -r '" .. root .. "/strategies' '" .. dir .. "'"))
    local path = dir .. "/lib/settings.lua"
    local f = assert(io.open(path))
    local src = f:read("a")
    f:close()
    local n
    src, n = src:gsub("campaigns = {},", 'campaigns = { spring = { items = { "jacket", "hat" }, '
                      .. 'category = "Sport/Running", label = "spring", '
                      .. 'banner = { title = "Spring is here", text = "Our %%s picks" }, '
                      .. 'offer = { name = "spring_10", title = "10%% off", percent = 10 } } },', 1)
    assert.equal(1, n)
    f = assert(io.open(path, "w"))
    f:write(src)
    f:close()
    local e = shop(dir)
    local r = land(e, "v6", "v6s", { medium = "email", source = "newsletter", campaign = "spring" })
    explained(r)
    assert.same({ "jacket", "hat", "racer" }, { r.hero[1].id, r.hero[2].id, r.hero[3].id })
    assert.equal("From our spring selection", r.hero[1].explain)
    assert.equal("Popular in Running", r.hero[3].explain)
    assert.same({ title = "Spring is here", text = "Our spring picks" }, r.banner)
    assert.equal("spring_10", r.offer.name)
    assert.equal(10, r.offer.percent)
    e:close()
  end)

  it("social: trending now, and free shipping for a first order", function()
    local e = shop()
    local r = land(e, "v3", "v3s", { medium = "social", source = "instagram.com", device = "mobile" })
    explained(r)
    assert.equal("social", r.medium)
    assert.equal("Trending now", r.banner.title)
    assert.equal("Trending now", r.hero[1].explain)
    -- Sofas and lamps were bought most.
    local top = { r.hero[1].id, r.hero[2].id }
    table.sort(top)
    assert.same({ "lamp", "sofa" }, top)
    assert.equal("social_welcome", r.offer.name)
    assert.is_true(r.offer.free_shipping)
    assert.equal("You came from instagram.com: here is what is popular right now", r.why)
    e:close()
  end)

  it("direct, returning: personalized, what they looked at first", function()
    local e = shop()
    assert(e:ingest { type = "view", anon = "v4", session = "old", item = "jacket",
                      ts = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 3 * 86400) })
    local r = land(e, "v4", "v4s", { medium = "direct", device = "desktop" })
    explained(r)
    assert.equal("direct", r.medium)
    assert.equal("jacket", r.hero[1].id)
    assert.matches("^You viewed this", r.hero[1].explain)
    -- They looked and never ordered: no "bought".
    assert.same({ title = "Picked for you", text = "From what you looked at." }, r.banner)
    assert.equal("Picked for you from what you looked at", r.why)
    assert.is_nil(r.offer)
    e:close()
  end)

  it("direct: 'picked for you' only for a visitor with history and personalization allowed", function()
    local e = shop()
    local days_ago = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 3 * 86400)
    -- A visitor who looked and ordered before.
    assert(e:ingest { type = "view", anon = "v8", session = "old8", item = "hat", ts = days_ago })
    assert(e:ingest { type = "purchase", anon = "v8", session = "old8", order_id = "v8o",
                      items = { { id = "hat" } }, ts = days_ago })
    local r = land(e, "v8", "v8s", { medium = "direct" })
    assert.same({ title = "Picked for you", text = "From what you looked at and bought." }, r.banner)
    assert.equal("Picked for you from what you looked at and bought", r.why)
    -- A visitor with history who declined personalization, and a new one:
    -- nothing on the page is picked from them.
    assert(e:ingest { type = "view", anon = "v9", session = "old9", item = "jacket", ts = days_ago })
    assert(e:ingest { type = "consent", anon = "v9", props = { personalization = false } })
    for _, who in ipairs { "v9", "brandnew" } do
      r = land(e, who, who .. "s", { medium = "direct" })
      explained(r)
      assert.equal("direct", r.medium)
      assert.equal("Welcome", r.banner.title, who)
      assert.is_nil(r.banner.text:find("you looked at", 1, true), who .. ": " .. r.banner.text)
      assert.is_nil(r.banner.text:find("bought", 1, true), who .. ": " .. r.banner.text)
      assert.is_nil(r.why:find("for you", 1, true), who .. ": " .. r.why)
      assert.is_true(#r.hero > 0, who)
    end
    e:close()
  end)

  it("reads the medium the storefront sends while the page view is on its way", function()
    local e = shop()
    local d = e:decide { kind = "landing", anon = "v5", session = "v5s", k = 4,
                         context = { source = "social" } }
    assert.equal("social", d.result.medium)
    assert.equal("Trending now", d.result.banner.title)
    e:close()
  end)
end)
