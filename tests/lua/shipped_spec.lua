-- shipped_spec.lua: the scenarios merchants care about, on the shipped
-- strategies and the real engine.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."
local DAY = 86400

local function iso(seconds_ago)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - seconds_ago)
end

local function shop(extra)
  local cfg = {
    db = ":memory:", strategies = root .. "/strategies",
    coupons = "FREESHIP=100",
    lua = { reload_interval_ms = 60000 },
  }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  local e = assert(tailor.open(cfg))
  local catalog = {
    { id = "jacket", name = "Winter Jacket", price = 149, cost = 60, category = "Women/Outerwear/Jackets", brand = "Nordkap" },
    { id = "hat", name = "Wool Hat", price = 24, cost = 8, category = "Accessories/Hats", brand = "Nordkap" },
    { id = "gloves", name = "Leather Gloves", price = 39, cost = 15, category = "Accessories/Gloves", brand = "Nordkap" },
    { id = "scarf", name = "Scarf", price = 29, cost = 10, category = "Accessories/Scarves", brand = "Other" },
    { id = "sofa", name = "Oslo Sofa", price = 899, cost = 500, category = "Home/Living/Sofas", brand = "Hem" },
    { id = "sofa2", name = "Bergen Sofa", price = 799, cost = 450, category = "Home/Living/Sofas", brand = "Hem" },
    { id = "armchair", name = "Oslo Armchair", price = 399, cost = 200, category = "Home/Living/Armchairs", brand = "Hem" },
    { id = "table", name = "Oslo Coffee Table", price = 249, cost = 100, category = "Home/Living/Tables", brand = "Hem" },
    { id = "runner", name = "Trail Runner", price = 119, cost = 50, category = "Sport/Running/Shoes", brand = "Velo" },
    { id = "tights", name = "Running Tights", price = 59, cost = 20, category = "Sport/Running/Apparel", brand = "Velo" },
    { id = "yoga", name = "Yoga Mat", price = 35, cost = 10, category = "Sport/Yoga", brand = "Om" },
  }
  for _, it in ipairs(catalog) do assert(e:ingest { type = "item_upsert", item = it }) end
  return e
end

local function order(e, who, id, items, seconds_ago)
  local lines = {}
  for _, i in ipairs(items) do lines[#lines + 1] = { id = i } end
  assert(e:ingest { type = "purchase", customer = who, order_id = id, items = lines,
                    ts = seconds_ago and iso(seconds_ago) or nil })
end

local function ids(d)
  local out = {}
  for _, it in ipairs(d.items) do out[#out + 1] = it.id end
  return out
end

local function has(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

describe("the shipped strategies", function()
  it("a winter jacket in the cart brings hats and gloves", function()
    local e = shop()
    for i = 1, 6 do order(e, "o" .. i, "a" .. i, { "jacket", "hat", "gloves" }, 3 * DAY) end
    for i = 1, 2 do order(e, "p" .. i, "b" .. i, { "yoga", "tights" }, 3 * DAY) end
    assert(e:ingest { type = "add_to_cart", item = "jacket", anon = "v1" })
    local d = e:decide { kind = "recommend", anon = "v1", k = 2, page = { type = "cart" } }
    assert.is_nil(d.fallback, d.error)
    table.sort(d.items, function(a, b) return a.id < b.id end)
    assert.are.same({ "gloves", "hat" }, ids(d))
    assert.matches("Customers who bought Winter Jacket also bought this", d.items[1].explain, 1, true)
    e:close()
  end)

  it("offers free shipping to a new visitor on exit intent, 10% to a returning one, once a session", function()
    local e = shop()
    local new = e:decide { kind = "popup", anon = "n1", session = "s1",
                           context = { trigger = "exit_intent", device = "desktop" } }
    assert.is_nil(new.fallback, new.error)
    assert.are.equal("free_shipping", new.result.name)
    -- A returning visitor: a visit before this one.
    assert(e:ingest { type = "view", item = "hat", anon = "r1", session = "old", ts = iso(3 * DAY) })
    assert(e:ingest { type = "view", item = "hat", anon = "r1", session = "s2" })
    local back = e:decide { kind = "popup", anon = "r1", session = "s2",
                            context = { trigger = "exit_intent", device = "desktop" } }
    assert.are.equal("returning_10", back.result.name)
    assert.are.equal(10, back.result.percent)
    -- The storefront reports the popup; a second exit intent gets nothing.
    assert(e:ingest { type = "popup_shown", name = "returning_10", anon = "r1", session = "s2",
                      props = { coupon = back.result.coupon } })
    local again = e:decide { kind = "popup", anon = "r1", session = "s2",
                             context = { trigger = "exit_intent", device = "desktop" } }
    assert.is_nil(again.result)
    -- Exit intent means nothing on mobile; a hidden page does.
    local mobile = e:decide { kind = "popup", anon = "n2", session = "s3",
                              context = { trigger = "exit_intent", device = "mobile" } }
    assert.is_nil(mobile.result)
    mobile = e:decide { kind = "popup", anon = "n2", session = "s3",
                        context = { trigger = "page_hidden", hidden_seconds = 8, device = "mobile" } }
    assert.are.equal("free_shipping", mobile.result.name)
    e:close()
  end)

  it("gives every popup a unique code of its own", function()
    local e = shop()
    local codes = {}
    for i = 1, 20 do
      local d = e:decide { kind = "popup", anon = "n" .. i, session = "s" .. i,
                           context = { trigger = "exit_intent" } }
      assert.matches("^FREESHIPPING%-", d.result.coupon)
      assert.is_nil(codes[d.result.coupon])
      codes[d.result.coupon] = true
    end
    e:close()
  end)

  it("follows the session on a product page once nothing is bought together", function()
    local e = shop()
    -- Past sessions: after the trail runner, people look at tights.
    for i = 1, 4 do
      assert(e:ingest { type = "view", item = "runner", anon = "p" .. i, session = "past" .. i })
      assert(e:ingest { type = "view", item = "tights", anon = "p" .. i, session = "past" .. i })
    end
    assert(e:ingest { type = "view", item = "runner", anon = "me", session = "now" })
    local d = e:decide { kind = "recommend", anon = "me", session = "now", k = 1,
                         page = { type = "product", item = "runner" } }
    assert.is_nil(d.fallback, d.error)
    assert.are.equal("tights", d.items[1].id)
    assert.are.equal("session", d.items[1].reason)
    assert.are.equal("Picked for what you are browsing now", d.items[1].explain)
    e:close()
  end)

  it("offers a sofa buyer a matching armchair or table, not another sofa", function()
    local e = shop()
    for i = 1, 5 do order(e, "h" .. i, "s" .. i, { "sofa", "armchair", "table" }, 90 * DAY) end
    for i = 1, 5 do order(e, "k" .. i, "t" .. i, { "sofa", "sofa2" }, 90 * DAY) end
    order(e, "c1", "mine", { "sofa" }, 60 * DAY)
    local d = e:decide { kind = "recommend", customer = "c1", k = 3, page = { type = "email" } }
    assert.is_nil(d.fallback, d.error)
    local got = ids(d)
    assert.is_true(has(got, "armchair") or has(got, "table"))
    assert.is_false(has(got, "sofa2"))
    assert.is_false(has(got, "sofa"))
    e:close()
  end)

  it("gives a customer lapsed for 10 months the win-back tier on their category", function()
    local e = shop()
    order(e, "c1", "o1", { "runner" }, 320 * DAY)
    order(e, "c1", "o2", { "tights" }, 300 * DAY)
    local d = e:decide { kind = "discount", customer = "c1" }
    assert.is_nil(d.fallback, d.error)
    assert.are.equal("win_back", d.result.tier)
    assert.are.equal(25, d.result.percent)
    assert.matches("^Sport/Running", d.result.category)
    -- The margin guard: a discount on the sofa alone is capped by its cost.
    e:close()
  end)

  it("caps any discount that would sell below the margin", function()
    local e = shop()
    order(e, "c1", "o1", { "sofa" }, 320 * DAY)
    assert(e:ingest { type = "add_to_cart", item = "sofa", customer = "c1" })
    local d = e:decide { kind = "discount", customer = "c1" }
    -- 1 - 500 / (899 * 0.85) = 34.6% would keep 15% margin: 25% is fine.
    assert.are.equal(25, d.result.percent)
    assert(e:ingest { type = "item_upsert", item = { id = "sofa", name = "Oslo Sofa", price = 899,
                                                     cost = 700, category = "Home/Living/Sofas" } })
    d = e:decide { kind = "discount", customer = "c1" }
    assert.is_true(d.result.capped)
    assert.are.equal(8, d.result.percent) -- floor(100 * (1 - 700 / (899 * 0.85)))
    e:close()
  end)

  it("schedules an abandoned-cart email that a purchase cancels", function()
    local e = shop()
    assert(e:ingest { type = "customer_upsert", customer = { id = "c1", email = "ada@example.com",
                                                             consent = { email = true } } })
    assert(e:ingest { type = "add_to_cart", item = "jacket", customer = "c1" })
    local rows = e:outbox()
    assert.are.equal(1, #rows)
    assert.matches("^abandoned_cart:c1:", rows[1].key)
    assert.are.equal("abandoned_cart", rows[1].template)
    assert.are.equal("Winter Jacket", rows[1].vars.cart[1].name)
    order(e, "c1", "o1", { "jacket" })
    rows = e:outbox("pending")
    for _, r in ipairs(rows) do assert.is_nil(r.key:match("^abandoned_cart")) end
    local cancelled = e:outbox("cancelled")
    assert.are.equal(1, #cancelled)
    -- The purchase schedules the follow-up and the win-back reminder.
    local keys = {}
    for _, r in ipairs(rows) do keys[#keys + 1] = r.template end
    table.sort(keys)
    assert.are.same({ "post_purchase", "win_back" }, keys)
    e:close()
  end)

  it("sends no email to a customer without email consent", function()
    local e = shop()
    assert(e:ingest { type = "customer_upsert", customer = { id = "c2", email = "bo@example.com",
                                                             consent = { email = false } } })
    assert(e:ingest { type = "add_to_cart", item = "jacket", customer = "c2" })
    order(e, "c2", "o1", { "jacket" })
    assert.are.equal(0, #e:outbox())
    e:close()
  end)

  it("tells a woman runner in Germany different bestsellers from everyone's", function()
    local e = shop()
    -- Everyone buys yoga mats; women in Germany buy running gear.
    for i = 1, 8 do order(e, "y" .. i, "y" .. i, { "yoga" }, DAY) end
    for i = 1, 3 do
      assert(e:ingest { type = "customer_upsert", customer = { id = "de" .. i,
                        attrs = { country = "DE", gender = "female" } } })
      order(e, "de" .. i, "d" .. i, { "tights", "runner" }, DAY)
    end
    assert(e:ingest { type = "customer_upsert", customer = { id = "anna",
                      attrs = { country = "DE", gender = "female" } } })
    local global = e:decide { kind = "recommend", anon = "nobody", k = 1, page = { type = "home" } }
    local anna = e:decide { kind = "recommend", customer = "anna", k = 2, page = { type = "home" } }
    assert.are.same({ "yoga" }, ids(global))
    assert.is_false(has(ids(anna), "yoga"))
    assert.are.equal("Popular among women in Germany", anna.items[1].explain)
    e:close()
  end)

  it("fills a thin segment's bestsellers up from the broader lists, each row labelled by its own", function()
    local e = shop()
    local function customer(id, country, gender)
      assert(e:ingest { type = "customer_upsert", customer = { id = id,
                        attrs = { country = country, gender = gender } } })
    end
    -- One sale among women in Germany, one among men there, one among
    -- women elsewhere; the rest of the shop buys yoga mats and tights.
    customer("d1", "DE", "female"); order(e, "d1", "d1", { "hat" }, 2 * DAY)
    customer("d2", "DE", "male"); order(e, "d2", "d2", { "gloves" }, 2 * DAY)
    customer("u1", "US", "female"); order(e, "u1", "u1", { "scarf" }, 2 * DAY)
    for i = 1, 4 do order(e, "y" .. i, "y" .. i, { "yoga" }, 2 * DAY) end
    for i = 1, 3 do order(e, "t" .. i, "t" .. i, { "tights" }, 2 * DAY) end
    customer("anna", "DE", "female")
    local d = e:decide { kind = "recommend", customer = "anna", k = 5, page = { type = "home" } }
    assert.is_nil(d.fallback, d.error)
    assert.are.same({ "hat", "gloves", "scarf", "yoga", "tights" }, ids(d))
    local said = {}
    for _, it in ipairs(d.items) do said[#said + 1] = it.explain end
    assert.are.same({ "Popular among women in Germany", "Popular in Germany",
                      "Popular among women", "Popular right now", "Popular right now" }, said)
    -- A visitor known only by the country the storefront sends.
    d = e:decide { kind = "recommend", anon = "newde", k = 4, page = { type = "home" },
                   context = { country = "DE" } }
    assert.are.equal(4, #d.items)
    local german = { d.items[1].id, d.items[2].id }
    table.sort(german)
    assert.are.same({ "gloves", "hat" }, german)
    for i, it in ipairs(d.items) do
      assert.are.equal(i <= 2, it.explain:find("Germany", 1, true) ~= nil, it.id .. ": " .. it.explain)
    end
    e:close()
  end)

  it("leaves an item moved to another category out of its old category's bestsellers", function()
    local e = shop()
    for i = 1, 5 do order(e, "u" .. i, "o" .. i, { "yoga", "tights" }, 2 * DAY) end
    assert(e:ingest { type = "item_upsert", item = { id = "yoga", name = "Yoga Mat", price = 35, cost = 10,
                                                     category = "Outdoor/Mats", brand = "Om" } })
    local sport = e:decide { kind = "recommend", anon = "x", k = 4, page = { type = "category", category = "Sport" } }
    assert.is_nil(sport.fallback, sport.error)
    assert.is_false(has(ids(sport), "yoga"))
    assert.are.equal("tights", sport.items[1].id)
    assert.matches("in Sport$", sport.items[1].explain)
    -- On its new category's page it is no bestseller "in Sport".
    local outdoor = e:decide { kind = "recommend", anon = "x", k = 4, page = { type = "category", category = "Outdoor" } }
    assert.are.equal("yoga", outdoor.items[1].id)
    assert.is_nil(outdoor.items[1].explain:find("Sport", 1, true), outdoor.items[1].explain)
    e:close()
  end)

  it("fills a widget that lets sold-out items through, whatever was deleted from the catalog", function()
    local e = shop()
    -- Hats and gloves are bought with the jacket most, then the scarf and
    -- the runner; hats and gloves leave the catalog, the scarf sells out.
    for i = 1, 4 do order(e, "w" .. i, "w" .. i, { "jacket", "hat", "gloves" }) end
    for i = 1, 2 do order(e, "s" .. i, "s" .. i, { "jacket", "scarf", "runner" }) end
    assert(e:ingest { type = "item_delete", item = "hat" })
    assert(e:ingest { type = "item_delete", item = "gloves" })
    assert(e:ingest { type = "item_upsert", item = { id = "scarf", name = "Scarf", price = 29, cost = 10,
                                                     category = "Accessories/Scarves", in_stock = false } })
    for _, page in ipairs { { type = "product", item = "jacket" }, { type = "home" },
                            { type = "category", category = "Accessories" } } do
      local d = e:decide { kind = "recommend", anon = "x", k = 3, page = page, filter = { in_stock = false } }
      assert.is_nil(d.fallback, d.error)
      local got = ids(d)
      assert.is_false(has(got, "hat") or has(got, "gloves"), table.concat(got, ","))
      if page.type == "product" then -- what is bought with it and still listed
        assert.are.same({ "scarf", "runner" }, got)
      end
    end
    e:close()
  end)

  it("calls trending rows popular, not bestsellers: views and carts count too", function()
    local e = shop()
    -- Nobody bought anything: one view, one cart, one view in Germany.
    assert(e:ingest { type = "view", anon = "w1", item = "yoga" })
    assert(e:ingest { type = "add_to_cart", anon = "w2", item = "sofa" })
    assert(e:ingest { type = "customer_upsert", customer = { id = "d1", attrs = { country = "DE" } } })
    assert(e:ingest { type = "view", customer = "d1", item = "hat" })
    local d = e:decide { kind = "recommend", anon = "v1", k = 2, page = { type = "home" } }
    assert.are.equal(2, #d.items)
    for _, it in ipairs(d.items) do
      assert.are.equal("trending", it.reason)
      assert.are.equal("Popular right now", it.explain)
    end
    d = e:decide { kind = "recommend", anon = "v2", k = 1, page = { type = "home" }, context = { country = "DE" } }
    assert.are.same({ "hat" }, ids(d))
    assert.are.equal("Popular in Germany", d.items[1].explain)
    d = e:decide { kind = "recommend", anon = "v3", k = 1, page = { type = "category", category = "Sport" } }
    assert.are.same({ "yoga" }, ids(d))
    assert.are.equal("Popular in Sport", d.items[1].explain)
    e:close()
  end)

  it("assigns the product-page experiment stably and by its weights", function()
    local e = shop()
    order(e, "o1", "a1", { "jacket", "hat" }, DAY)
    local count, first = { control = 0, cosine = 0 }, {}
    for i = 1, 10000 do
      local d = e:decide { kind = "recommend", anon = "u" .. i, k = 1, page = { type = "product", item = "jacket" } }
      assert.is_nil(d.fallback, d.error)
      if i <= 50 then first[i] = d.items[1].id end
    end
    local report = e:report_experiments(7)
    assert.are.equal("product_bought_together", report[1].experiment)
    for _, v in ipairs(report[1].variants) do count[v.variant] = v.exposures end
    assert.are.equal(10000, count.control + count.cosine)
    assert.is_true(math.abs(count.control - 5000) < 200) -- 4 standard deviations
    -- The same visitors again: no new exposures, same variants.
    for i = 1, 50 do
      e:decide { kind = "recommend", anon = "u" .. i, k = 1, page = { type = "product", item = "jacket" } }
    end
    local again = e:report_experiments(7)
    local total = 0
    for _, v in ipairs(again[1].variants) do total = total + v.exposures end
    assert.are.equal(10000, total)
    e:close()
  end)

  it("ranks a list by the visitor's interests and stated preferences", function()
    local e = shop()
    for _ = 1, 3 do assert(e:ingest { type = "view", item = "table", anon = "v9" }) end
    local d = e:decide { kind = "rank", anon = "v9", items = { "runner", "yoga", "armchair", "hat" } }
    assert.is_nil(d.fallback, d.error)
    assert.are.equal("armchair", d.items[1].id) -- Home/Living, like the table
    assert.are.same({ "runner", "yoga", "hat" }, { d.items[2].id, d.items[3].id, d.items[4].id })
    assert.matches("Moved up", d.items[1].explain)
    -- Menu tabs are categories: a home-decor browser sees Home first.
    d = e:decide { kind = "rank", anon = "v9", items = { "Sport", "Accessories", "Home" } }
    assert.are.same({ "Home", "Sport", "Accessories" }, { d.items[1].id, d.items[2].id, d.items[3].id })
    -- A visitor nobody knows sees the storefront's order.
    d = e:decide { kind = "rank", anon = "stranger", items = { "Sport", "Accessories", "Home" } }
    assert.are.same({ "Sport", "Accessories", "Home" }, { d.items[1].id, d.items[2].id, d.items[3].id })
    e:close()
  end)

  it("gives a page with two widgets each its own list (page.widget)", function()
    local e = shop()
    for i = 1, 4 do order(e, "o" .. i, "a" .. i, { "jacket", "hat", "gloves" }, 3 * DAY) end
    order(e, "o9", "a9", { "runner", "tights" }, 3 * DAY)
    local together = e:decide { kind = "recommend", anon = "v1", k = 2,
                                page = { type = "product", item = "jacket" } }
    assert.are.equal("bought_together", together.items[1].reason)
    local similar = e:decide { kind = "recommend", anon = "v1", k = 1,
                               page = { type = "product", item = "hat", widget = "similar" } }
    assert.is_nil(similar.fallback, similar.error)
    assert.are.equal("similar", similar.items[1].reason)
    assert.matches("Similar to Wool Hat", similar.items[1].explain, 1, true)
    -- Home: continue shopping alone, or the bestsellers alone.
    assert(e:ingest { type = "view", item = "scarf", anon = "v2" })
    local continue = e:decide { kind = "recommend", anon = "v2", k = 4,
                                page = { type = "home", widget = "continue" } }
    assert.are.same({ "scarf" }, ids(continue))
    local best = e:decide { kind = "recommend", anon = "v2", k = 4,
                            page = { type = "home", widget = "bestsellers" } }
    assert.is_true(#best.items > 0)
    for _, it in ipairs(best.items) do assert.are.equal("trending", it.reason) end
    e:close()
  end)

  it("puts a recent visitor in one recency audience with its bid multiplier", function()
    local e = shop()
    assert(e:ingest { type = "view", item = "hat", anon = "v1" })
    assert(e:ingest { type = "add_to_cart", item = "hat", anon = "v2" })
    order(e, "c1", "o1", { "hat" })
    local function names(who, as)
      local d = e:decide { kind = "audiences", [as or "anon"] = who }
      local out = {}
      for _, a in ipairs(d.result.audiences) do out[#out + 1] = a.name .. "@" .. a.bid end
      return out
    end
    assert.are.same({ "visitors_2d@1.4" }, names("v1"))
    assert.are.same({ "cart_abandoners_2d@1.6" }, names("v2"))
    assert.are.same({ "recent_buyers_14d@0.5" }, names("c1", "customer"))
    -- An anonymous id that names a customer is a stranger, not c1.
    assert.are.same({}, names("c1"))
    e:close()
  end)
end)
