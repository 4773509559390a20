-- search_spec.lua: searches feed "because you searched ..." (what visitors
-- viewed, carted and bought after a term), ctx.session.searches and the
-- search segments, on the shipped strategies and the real engine.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

local function shop()
  local e = assert(tailor.open { db = ":memory:", strategies = root .. "/strategies" })
  local catalog = {
    { id = "runner", name = "Trail Runner", price = 119, category = "Sport/Running/Shoes" },
    { id = "racer", name = "Road Racer", price = 139, category = "Sport/Running/Shoes" },
    { id = "tights", name = "Running Tights", price = 59, category = "Sport/Running/Apparel" },
    { id = "mug", name = "Gift Mug", price = 12, category = "Home/Kitchen" },
    { id = "sofa", name = "Oslo Sofa", price = 899, category = "Home/Living/Sofas" },
  }
  for _, it in ipairs(catalog) do assert(e:ingest { type = "item_upsert", item = it }) end
  -- Three visitors search for running shoes, in the senders' own words,
  -- and go on to the shoes; one of them buys the racer.
  local queries = { "Running Shoes", "  running   SHOES ", "running shoes" }
  for n, q in ipairs(queries) do
    local who, s = "v" .. n, "s" .. n
    assert(e:ingest { type = "search", anon = who, session = s, query = q })
    assert(e:ingest { type = "view", anon = who, session = s, item = "racer" })
    if n == 1 then assert(e:ingest { type = "view", anon = who, session = s, item = "runner" }) end
    if n == 2 then
      assert(e:ingest { type = "purchase", anon = who, session = s, order_id = "o2",
                        items = { { id = "racer" } } })
    end
  end
  -- Segment's and GA4's names for a search, then what followed.
  assert(e:ingest { event = "Products Searched", anonymousId = "v4", properties = { query = "Gift" } })
  assert(e:ingest { event = "Product Viewed", anonymousId = "v4", properties = { product_id = "mug" } })
  assert(e:ingest { name = "search", client_id = "v5", params = { search_term = "gift " } })
  assert(e:ingest { name = "add_to_cart", client_id = "v5", params = { items = { { item_id = "mug" } } } })
  -- Viewed without a search before it: counts for no term.
  assert(e:ingest { type = "view", anon = "v6", session = "s6", item = "sofa" })
  return e
end

local function ids(items)
  local out = {}
  for i, it in ipairs(items) do out[i] = it.id end
  return out
end

describe("search", function()
  it("recommends what searchers of a term went on to view and buy, naming the term", function()
    local e = shop()
    assert(e:ingest { type = "search", anon = "new", session = "sn", query = "RUNNING shoes" })
    local d = e:decide { kind = "recommend", k = 3, anon = "new", session = "sn",
                         page = { type = "home" } }
    assert.is_nil(d.fallback, d.error)
    assert.are.same({ "racer", "runner" }, { d.items[1].id, d.items[2].id })
    assert.are.equal("searched", d.items[1].reason)
    assert.are.same({ "running shoes" }, d.items[1].because)
    assert.are.equal("Because you searched 'running shoes'", d.items[1].explain)
    e:close()
  end)

  it("answers a search page for page.query, through Segment's and GA4's events too", function()
    local e = shop()
    local d = e:decide { kind = "recommend", k = 1, anon = "x", page = { type = "search", query = "GIFT" } }
    assert.is_nil(d.fallback, d.error)
    assert.are.same({ "mug" }, ids(d.items))
    assert.are.same({ "gift" }, d.items[1].because)
    e:close()
  end)

  it("gives a visitor without searches the usual home page", function()
    local e = shop()
    local d = e:decide { kind = "recommend", k = 3, anon = "v6", session = "s6", page = { type = "home" } }
    for _, it in ipairs(d.items) do assert.are_not.equal("searched", it.reason) end
    e:close()
  end)

  it("exposes the session's terms to segments: searcher, searching_gifts", function()
    local e = shop()
    local d = e:decide { kind = "visitor", anon = "v4" }
    assert.is_nil(d.fallback, d.error)
    local seg = {}
    for _, s in ipairs(d.result.segments) do seg[s] = true end
    assert.is_true(seg.searcher)
    assert.is_true(seg.searching_gifts)
    d = e:decide { kind = "visitor", anon = "v1", session = "s1" }
    seg = {}
    for _, s in ipairs(d.result.segments) do seg[s] = true end
    assert.is_true(seg.searcher)
    assert.is_nil(seg.searching_gifts)
    d = e:decide { kind = "visitor", anon = "v6", session = "s6" }
    for _, s in ipairs(d.result.segments) do assert.are_not.equal("searcher", s) end
    e:close()
  end)

  it("lowercases accented capitals too: one term for every spelling, shown in lowercase", function()
    local e = shop()
    for n, q in ipairs { "ÉTÉ Sofa", "été sofa", "Été SOFA" } do
      local who = "f" .. n
      assert(e:ingest { type = "search", anon = who, session = who, query = q })
      assert(e:ingest { type = "view", anon = who, session = who, item = "sofa" })
    end
    assert(e:ingest { type = "search", anon = "g", session = "g", query = "ŁÓDŹ ΑΘΗΝΑ МОСКВА" })
    assert(e:ingest { type = "view", anon = "g", session = "g", item = "mug" })
    local d = e:decide { kind = "recommend", k = 1, anon = "x", page = { type = "search", query = "ÉTÉ SOFA" } }
    assert.is_nil(d.fallback, d.error)
    assert.are.same({ "sofa" }, ids(d.items))
    assert.are.same({ "été sofa" }, d.items[1].because)
    assert.are.equal("Because you searched 'été sofa'", d.items[1].explain)
    d = e:decide { kind = "recommend", k = 1, anon = "x", page = { type = "search", query = "łódź αθηνα москва" } }
    assert.are.same({ "mug" }, ids(d.items))
    e:close()
  end)

  it("keeps a session's searches across a login in it", function()
    local e = shop()
    -- Someone went to the racer after searching warm tights.
    assert(e:ingest { type = "search", anon = "b1", session = "sb", query = "warm tights" })
    assert(e:ingest { type = "view", anon = "b1", session = "sb", item = "racer" })
    -- A visitor searches, logs in, and goes on to the tights as a customer.
    assert(e:ingest { type = "search", anon = "a1", session = "sa", query = "Warm Tights" })
    assert(e:ingest { type = "identify", customer = "c1", anon = "a1", session = "sa" })
    assert(e:ingest { type = "view", customer = "c1", anon = "a1", session = "sa", item = "tights" })
    local d = e:decide { kind = "recommend", k = 2, anon = "x", page = { type = "search", query = "warm tights" } }
    assert.is_nil(d.fallback, d.error)
    local got = ids(d.items)
    table.sort(got)
    assert.are.same({ "racer", "tights" }, got)
    -- Their home page still answers the search made before the login.
    d = e:decide { kind = "recommend", k = 3, customer = "c1", anon = "a1", session = "sa",
                   page = { type = "home" } }
    local searched = {}
    for _, it in ipairs(d.items) do
      if it.reason == "searched" then searched[#searched + 1] = it.because[1] end
    end
    assert.are.same({ "warm tights" }, searched)
    e:close()
  end)
end)
