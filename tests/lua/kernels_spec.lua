-- kernels_spec.lua: the native kernels, called from a strategy in the real
-- sandbox, on events ingested through the real engine.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

local function shop()
  local e = assert(tailor.open {
    db = ":memory:", strategies = root .. "/tests/lua/strategies",
    index = { cooc_half_life_days = 0, trend_half_life_days = 0 },
  })
  local items = {
    { id = "jacket", price = 150, category = "Women/Outerwear" },
    { id = "hat", price = 20, category = "Accessories/Hats" },
    { id = "gloves", price = 40, category = "Accessories/Gloves" },
    { id = "sofa", price = 900, category = "Home/Sofas" },
  }
  for _, it in ipairs(items) do assert(e:ingest { type = "item_upsert", item = it }) end
  local orders = { { "jacket", "hat" }, { "jacket", "hat" }, { "jacket", "gloves" }, { "sofa" } }
  for n, o in ipairs(orders) do
    local lines = {}
    for _, id in ipairs(o) do lines[#lines + 1] = { id = id } end
    assert(e:ingest { type = "purchase", customer = "c" .. n, order_id = "o" .. n, items = lines })
  end
  return e
end

local function ids(d)
  local out = {}
  for i, it in ipairs(d.items) do out[i] = it.id end
  return out
end

describe("kernels through the Lua API", function()
  it("also_bought ranks what is bought with the anchor, with a because", function()
    local e = shop()
    local d = e:decide { kind = "recommend", k = 5, page = { kernel = "also_bought", item = "jacket" } }
    assert.is_nil(d.fallback, d.error)
    assert.are.same({ "hat", "gloves" }, ids(d))
    assert.are.equal("bought_together", d.items[1].reason)
    assert.are.same({ "jacket" }, d.items[1].because)
    e:close()
  end)

  it("applies category and price filters inside the kernel", function()
    local e = shop()
    local d = e:decide { kind = "recommend", k = 5,
                         page = { kernel = "bought_together", item = "jacket", max_price = 30 } }
    assert.are.same({ "hat" }, ids(d))
    d = e:decide { kind = "recommend", k = 5,
                   page = { kernel = "bought_together", item = "jacket", category = "Accessories/Gloves" } }
    assert.are.same({ "gloves" }, ids(d))
    e:close()
  end)

  it("refuses a mistaken option by its name instead of ignoring it", function()
    local e = shop()
    local cases = {
      { "also_bought", { excldue = { "hat" } }, "opts.excldue: unknown option %(the options: k, exclude," },
      { "also_bought", { max_prize = 30 }, "opts.max_prize: unknown option" },
      { "also_bought", { exclude = "hat" }, "opts.exclude: a list of item ids expected, got string" },
      { "also_bought", { k = "three" }, "bad argument #2 to '.-' %(opts.k: a whole number expected, got string%)" },
      { "also_bought", { k = 0 }, "opts.k: must be from 1 to 1000" },
      { "also_bought", { max_price = "cheap" }, "opts.max_price: number expected, got string" },
      { "also_bought", { min_price = "10" }, "opts.min_price: number expected, got string" },
      { "also_bought", { in_stock = "false" }, "opts.in_stock: true or false expected, got string" },
      { "also_bought", { brand = 5 }, "bad argument #2 to '.-' %(opts.brand: a name or a list of names expected, got number%)" },
      { "also_bought", { category = { "Accessories" } }, "opts.category: a category path expected, got table" },
      { "bought_together", { measure = "cos" }, "opts.measure: 'cos' is none of cosine, jaccard, also, count" },
      { "also_bought", { shrink = "x" }, "opts.shrink: number expected, got string" },
      { "viewed_together", { "hat" }, "opts: option names are strings" },
      { "similar", { kernel = "stan" }, "opts.kernel: unknown option" },
    }
    for _, c in ipairs(cases) do
      local d = e:decide { kind = "recommend", k = 5,
                           page = { kernel = "opts", name = c[1], item = "jacket", opts = c[2] } }
      assert.is_true(d.fallback, c[3])
      assert.matches("kernels.lua:%d+: .*" .. c[3], d.error)
    end
    -- the options a kernel has of its own are options
    local d = e:decide { kind = "recommend", k = 5, page = { kernel = "opts", name = "bought_together",
      item = "jacket", opts = { measure = "jaccard", shrink = 1, damping = 0, k = 2.0, in_stock = false } } }
    assert.is_nil(d.fallback, d.error)
    assert.are.same({ "hat", "gloves" }, ids(d))
  end)

  it("complements a whole cart, never returning what is in it", function()
    local e = shop()
    local d = e:decide { kind = "recommend", k = 5,
                         page = { kernel = "bought_together", items = { "hat", "gloves" } } }
    assert.are.same({ "jacket" }, ids(d))
    e:close()
  end)

  it("trending differs by segment", function()
    local e = shop()
    assert(e:ingest { type = "customer_upsert", customer = { id = "de1", attrs = { country = "DE" } } })
    for _ = 1, 3 do assert(e:ingest { type = "view", item = "sofa", customer = "de1" }) end
    local global = e:decide { kind = "recommend", k = 1, page = { kernel = "trending" } }
    local de = e:decide { kind = "recommend", k = 1,
                          page = { kernel = "trending", key = "country", value = "DE" } }
    assert.are.same({ "jacket" }, ids(global))
    assert.are.same({ "sofa" }, ids(de))
    assert.are.equal("trending", de.items[1].reason)
    e:close()
  end)

  it("recently_viewed is newest first and deduplicated", function()
    local e = shop()
    for _, id in ipairs { "hat", "sofa", "hat", "gloves" } do
      assert(e:ingest { type = "view", item = id, anon = "v1" })
    end
    local d = e:decide { kind = "recommend", anon = "v1", k = 5, page = { kernel = "recently_viewed" } }
    assert.are.same({ "gloves", "hat", "sofa" }, ids(d))
    e:close()
  end)

  it("reads the request's anonymous id as an anonymous id only", function()
    local e = shop()
    for _, id in ipairs { "hat", "sofa" } do
      assert(e:ingest { type = "view", item = id, customer = "c1" })
    end
    local function viewed(req)
      req.kind, req.k, req.page = "recommend", 5, { kernel = "recently_viewed" }
      return ids(e:decide(req))
    end
    assert.are.same({ "sofa", "hat" }, viewed { customer = "c1" })
    -- Anyone can send "anon": "c1"; they are a stranger, not customer c1.
    assert.are.same({}, viewed { anon = "c1" })
    local function told(req)
      req.kind, req.k = "recommend", 5
      req.page = { kernel = "customer", who = "c1", item = "hat" }
      local out = {}
      for _, it in ipairs(e:decide(req).items) do out[#out + 1] = it.explain end
      return table.concat(out, "; ")
    end
    assert.matches("orders=1", told { anon = "v9" }) -- an email strategy naming c1
    assert.matches("orders=0", told { anon = "c1" })
    assert.is_nil(told({ anon = "c1" }):find("audience buyers", 1, true))
    e:close()
  end)

  it("similar finds items of the same category and brand for a new item", function()
    local e = shop()
    assert(e:ingest { type = "item_upsert", item = { id = "beanie", price = 22,
                                                     category = "Accessories/Hats", brand = "Nordkap" } })
    local d = e:decide { kind = "recommend", k = 3, page = { kernel = "similar", item = "beanie" } }
    assert.are.equal("hat", d.items[1].id)
    assert.are.equal("similar", d.items[1].reason)
    assert.are.same({ "beanie" }, d.items[1].because)
    e:close()
  end)

  it("knows a customer's lifecycle and recency audiences", function()
    local e = shop()
    assert(e:ingest { type = "view", item = "hat", customer = "c1" })
    local d = e:decide { kind = "recommend", k = 10,
                         page = { kernel = "customer", who = "c1", item = "hat" } }
    local texts = {}
    for _, it in ipairs(d.items) do texts[#texts + 1] = it.explain end
    assert.are.same({ "audience buyers 14", "customer orders=1" }, texts)
    e:close()
  end)

  it("session_next predicts from the session's views, with the view it came from", function()
    local e = shop()
    -- Past sessions: after a jacket people look at hats, more than at gloves.
    local n = 0
    -- (gloves and hats both appear elsewhere too, so IDF-weighted kernels
    -- see the same rarity for both)
    for _, seq in ipairs { { "jacket", "hat" }, { "jacket", "hat" }, { "jacket", "gloves" },
                           { "sofa", "hat" }, { "sofa", "gloves" } } do
      n = n + 1
      for _, id in ipairs(seq) do
        assert(e:ingest { type = "view", item = id, anon = "p" .. n, session = "past" .. n })
      end
    end
    assert(e:ingest { type = "view", item = "jacket", anon = "me", session = "now" })
    for _, kernel in ipairs { "tailor", "stan", "vsknn" } do
      local d = e:decide { kind = "recommend", anon = "me", session = "now", k = 2,
                           page = { kernel = "session_next", name = kernel } }
      assert.is_nil(d.fallback, d.error)
      assert.are.equal("hat", d.items[1].id, kernel)
      assert.are.equal("session", d.items[1].reason)
      assert.are.same({ "jacket" }, d.items[1].because)
      assert.are.equal("after jacket", d.items[1].explain) -- ctx.session.items
    end
    e:close()
  end)
end)
