-- content_spec.lua: guides and blog posts (catalog kind "content")
-- recommended by what their readers went on to view, cart and buy, on the
-- real engine: the kernels (tailor.products_for, read_next, content_for),
-- the shipped recommend strategy on a product page and on a guide's page,
-- and the same answers after a restart from the checkpoint.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."
local tmp = os.getenv("TAILOR_TEST_TMP") or "/tmp"

local CATALOG = {
  { id = "tent", name = "Dome Tent", price = 240, category = "Outdoor/Tents" },
  { id = "stakes", name = "Tent Stakes", price = 15, category = "Outdoor/Tents" },
  { id = "stove", name = "Camp Stove", price = 80, category = "Outdoor/Cooking" },
  { id = "pot", name = "Titanium Pot", price = 45, category = "Outdoor/Cooking" },
  { id = "lamp", name = "Head Lamp", price = 30, category = "Outdoor/Light" },
  { id = "g_pitch", name = "How to pitch a tent in wind", kind = "content", category = "Guides" },
  { id = "g_cook", name = "Cooking on the trail", kind = "content", category = "Guides" },
}

-- Readers of the pitching guide go on to the tent and stakes (some buy),
-- some read the cooking guide next; readers of the cooking guide go on to
-- the stove and the pot.  Shoppers who never read also view the tent with
-- the guide-free lamp, so the co-view kernels see guides beside products.
local function history(e)
  for _, it in ipairs(CATALOG) do assert(e:ingest { type = "item_upsert", item = it }) end
  for n = 1, 6 do
    local who, s = "r" .. n, "rs" .. n
    assert(e:ingest { type = "view", anon = who, session = s, item = "g_pitch" })
    assert(e:ingest { type = "view", anon = who, session = s, item = "tent" })
    assert(e:ingest { type = "view", anon = who, session = s, item = "stakes" })
    if n <= 3 then
      assert(e:ingest { type = "purchase", anon = who, session = s, order_id = "o" .. n,
                        items = { { id = "tent" } } })
    end
    if n <= 2 then assert(e:ingest { type = "view", anon = who, session = s, item = "g_cook" }) end
  end
  for n = 1, 4 do
    local who, s = "k" .. n, "ks" .. n
    assert(e:ingest { type = "view", anon = who, session = s, item = "g_cook" })
    assert(e:ingest { type = "view", anon = who, session = s, item = "stove" })
    assert(e:ingest { type = "add_to_cart", anon = who, session = s, item = "pot" })
  end
  for n = 1, 5 do
    local who, s = "p" .. n, "ps" .. n
    assert(e:ingest { type = "view", anon = who, session = s, item = "tent" })
    assert(e:ingest { type = "view", anon = who, session = s, item = "lamp" })
  end
  -- A product viewed before a guide is no reader's next step.
  assert(e:ingest { type = "view", anon = "b1", session = "bs1", item = "lamp" })
  assert(e:ingest { type = "view", anon = "b1", session = "bs1", item = "g_cook" })
end

local function ids(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r.id end
  return out
end

local function kernel(e, name, item, k)
  local d = e:decide { kind = "recommend", k = k or 5, anon = "probe",
                       page = { kernel = name, item = item } }
  assert.is_nil(d.fallback, d.error)
  return d.items
end

local function checks(e)
  local after = kernel(e, "products_for", "g_pitch")
  assert.are.same({ "tent", "stakes" }, ids(after))
  assert.are.equal("after_reading", after[1].reason)
  -- A cart (3) weighs more than a view (1); the lamp was seen before reading.
  assert.are.same({ "pot", "stove" }, ids(kernel(e, "products_for", "g_cook")))
  assert.are.same({ "g_cook" }, ids(kernel(e, "read_next", "g_pitch")))
  assert.are.same({ "g_pitch" }, ids(kernel(e, "content_for", "tent")))
  assert.are.same({ "g_cook" }, ids(kernel(e, "content_for", "pot")))
  assert.are.same({}, ids(kernel(e, "content_for", "lamp")))
end

describe("content recommendations", function()
  it("learn what readers of a guide go on to view and buy, and what they read next", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/tests/lua/strategies" })
    history(e)
    checks(e)
    e:close()
  end)

  it("keep the same answers after a restart from the checkpoint", function()
    local db = tmp .. "/content_spec.db"
    os.remove(db)
    os.remove(db .. ".ckpt")
    local e = assert(tailor.open { db = db, strategies = root .. "/tests/lua/strategies" })
    history(e)
    e:close()
    e = assert(tailor.open { db = db, strategies = root .. "/tests/lua/strategies" })
    checks(e)
    e:close()
  end)

  it("show the guide that fits on a product page, and no guide among the products", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/strategies" })
    history(e)
    local d = e:decide { kind = "recommend", k = 3, anon = "new", page = { type = "product", item = "tent" } }
    assert.is_nil(d.fallback, d.error)
    local last = d.items[#d.items]
    assert.are.equal(3, #d.items)
    assert.are.equal("g_pitch", last.id)
    assert.are.equal("guide", last.reason)
    assert.are.equal("Readers of this guide went on to Dome Tent", last.explain)
    for i = 1, #d.items - 1 do
      assert.is_falsy(d.items[i].id:match("^g_"), d.items[i].id)
    end
    -- The lamp: nobody read their way to it, so no guide.
    d = e:decide { kind = "recommend", k = 3, anon = "new", page = { type = "product", item = "lamp" } }
    for _, it in ipairs(d.items) do assert.is_falsy(it.id:match("^g_"), it.id) end
    e:close()
  end)

  it("show on a guide's page what its readers bought, then what they read next", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/strategies" })
    history(e)
    local d = e:decide { kind = "recommend", k = 3, anon = "new", page = { type = "product", item = "g_pitch" } }
    assert.is_nil(d.fallback, d.error)
    assert.are.same({ "tent", "stakes", "g_cook" }, ids(d.items))
    assert.are.equal("Readers of How to pitch a tent in wind went on to this", d.items[1].explain)
    assert.are.equal("Read next after How to pitch a tent in wind", d.items[3].explain)
    e:close()
  end)
end)
