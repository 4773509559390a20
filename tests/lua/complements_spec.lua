-- complements_spec.lua: complements, not a blanket ban (issue 15 item 7),
-- on the shipped strategies and the real engine, with a generated shop
-- whose categories are coarse ("Home/Living" holds sofas and cushions,
-- "Sport/Running" shoes, socks and shirts), as many shops file them.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."
local DAY = 86400

local function iso(days_ago)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - math.floor(days_ago * DAY))
end

local function shop()
  local e = assert(tailor.open { db = ":memory:", strategies = root .. "/strategies",
                                 lua = { reload_interval_ms = 60000 } })
  local function item(id, price, category)
    assert(e:ingest { type = "item_upsert", item = { id = id, name = id, price = price, category = category } })
  end
  for i = 1, 3 do
    item("sofa" .. i, 700 + 50 * i, "Home/Living")
    item("cushion" .. i, 30, "Home/Living")
  end
  for i = 1, 2 do
    item("shoe" .. i, 120, "Sport/Running")
    item("socks" .. i, 15, "Sport/Running")
    item("shirt" .. i, 40, "Sport/Running")
  end
  item("jacket", 150, "Clothing/Jackets")
  item("hat", 25, "Clothing/Hats")
  item("tee", 20, "Clothing/Tees")
  local n = 0
  local function order(who, items, days_ago)
    n = n + 1
    local lines = {}
    for _, id in ipairs(items) do lines[#lines + 1] = { id = id } end
    assert(e:ingest { type = "purchase", customer = who, order_id = "o" .. n, items = lines, ts = iso(days_ago) })
  end
  local function view(who, id, days_ago)
    assert(e:ingest { type = "view", customer = who, session = who .. "-s", item = id, ts = iso(days_ago) })
  end
  -- Shoppers compare two sofas and buy one with its cushion; runners
  -- compare two shoes and buy one with its socks and shirt.
  for i = 0, 11 do
    local a, b = i % 3 + 1, (i + 1) % 3 + 1
    view("h" .. i, "sofa" .. a, 2)
    view("h" .. i, "sofa" .. b, 2)
    order("h" .. i, { "sofa" .. a, "cushion" .. a }, 2)
    local s, t = i % 2 + 1, (i + 1) % 2 + 1
    view("r" .. i, "shoe" .. s, 2)
    view("r" .. i, "shoe" .. t, 2)
    order("r" .. i, { "shoe" .. s, "socks" .. s, "shirt" .. s }, 2)
  end
  -- Jackets sell with hats; three jacket buyers came back for a sofa.
  for i = 0, 9 do order("j" .. i, { "jacket", "hat" }, 3) end
  for i = 0, 2 do order("j" .. i, { "sofa1", "cushion1" }, 1) end
  for i = 0, 19 do order("t" .. i, { "tee" }, 2) end
  -- Runners buy new shoes about every 120 days.
  for i = 0, 5 do
    order("again" .. i, { "shoe1" }, 300)
    order("again" .. i, { "shoe2" }, 180)
  end
  return e, order, view
end

local function ids(d)
  assert.is_nil(d.fallback, d.error)
  local out = {}
  for _, it in ipairs(d.items) do out[it.id] = it.reason or true end
  return out
end

describe("complements, not a blanket ban", function()
  it("after buying a sofa, no second sofa, but cushions", function()
    local e, order = shop()
    order("c1", { "sofa1" }, 5)
    for _, page in ipairs { { type = "email" }, { type = "category", category = "Home/Living" },
                            { type = "home" } } do
      local got = ids(e:decide { kind = "recommend", customer = "c1", k = 8, page = page })
      assert.is_nil(got.sofa1, page.type)
      assert.is_nil(got.sofa2, page.type)
      assert.is_nil(got.sofa3, page.type)
      assert.truthy(got.cushion1, page.type)
    end
    e:close()
  end)

  it("after running shoes, socks and shirts, and no second pair yet", function()
    local e, order = shop()
    order("c2", { "shoe1" }, 10)
    local got = ids(e:decide { kind = "recommend", customer = "c2", k = 6,
                               page = { type = "category", category = "Sport/Running" } })
    assert.truthy(got.socks1)
    assert.truthy(got.shirt1)
    assert.is_nil(got.shoe1)
    assert.is_nil(got.shoe2)
    -- The post-purchase email: what goes with the shoes.
    got = ids(e:decide { kind = "recommend", customer = "c2", k = 2, page = { type = "email" } })
    assert.are.equal("bought_together", got.socks1)
    assert.are.equal("bought_together", got.shirt1)
    e:close()
  end)

  it("new shoes again after the interval learned from repeat purchases", function()
    local e, order = shop()
    -- 130 days: past the runners' 120, short of the 180-day default.
    order("c3", { "shoe1" }, 130)
    local got = ids(e:decide { kind = "recommend", customer = "c3", k = 6,
                               page = { type = "category", category = "Sport/Running" } })
    assert.truthy(got.shoe2)
    -- A sofa's category has no repeat purchases: the default holds it back.
    order("c4", { "sofa1" }, 130)
    got = ids(e:decide { kind = "recommend", customer = "c4", k = 6,
                         page = { type = "category", category = "Home/Living" } })
    assert.is_nil(got.sofa2)
    assert.is_nil(got.sofa3)
    e:close()
  end)

  it("continue shopping keeps a shoe the customer looked at after buying one", function()
    local e, order, view = shop()
    order("c5", { "shoe1" }, 10)
    view("c5", "shoe2", 1)
    local got = ids(e:decide { kind = "recommend", customer = "c5", k = 4,
                               page = { type = "home", widget = "continue" } })
    assert.are.equal("recently_viewed", got.shoe2)
    e:close()
  end)

  it("puts no sofa on a jacket page for customers who bought both months apart", function()
    local e = shop()
    local d = e:decide { kind = "recommend", anon = "v1", k = 4, page = { type = "product", item = "jacket" } }
    local got = ids(d)
    assert.are.equal("bought_together", got.hat)
    for _, it in ipairs(d.items) do
      if it.reason == "bought_together" then assert.are.equal("hat", it.id) end
    end
    assert.are_not.equal("bought_together", got.sofa1)
    e:close()
  end)
end)
