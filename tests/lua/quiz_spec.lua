-- quiz_spec.lua: zero-party preferences (issue 20 item 1, the quiz): answers
-- checked against the strategy's quiz become ctx.customer.prefs with source
-- and time; an answer not offered is refused with nothing changed; prefs
-- survive a restart and go with erasure; the preference centre's read
-- (e:prefs, tailor_prefs) and pref_removed, which takes one back.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."
local tmp = os.getenv("TAILOR_TEST_TMP") or "/tmp"

local function open(db, checkpoint)
  return assert(tailor.open { db = db, strategies = root .. "/tests/lua/quiz",
                              index = checkpoint and { checkpoint = checkpoint } or nil,
                              lua = { reload_interval_ms = 60000 } })
end

local function answer(e, who, question, a)
  assert(e:ingest { type = "quiz_answer", customer = who, quiz = "fit", question = question, answer = a })
end

local function prefs(e, who)
  local d = e:decide { kind = "probe", customer = who }
  assert.is_nil(d.fallback, d.error)
  return d.result
end

describe("quiz", function()
  it("sets prefs with source and time; refuses what is not offered", function()
    local e = open(":memory:")
    assert(e:ingest { type = "quiz_answer", customer = "c1", quiz = "fit", question = "size", answer = "m" })
    assert(e:ingest { type = "quiz_answer", customer = "c1", quiz = "fit", question = "budget", answer = "low" })
    local p = prefs(e, "c1")
    assert.are.equal("M", p.prefs.size)
    assert.are.equal("50", p.prefs.budget)
    assert.are.equal("quiz:fit", p.sources.size.source)
    assert.is_number(p.sources.size.time)
    local before = e:stats().events_total
    for _, bad in ipairs {
      { "answer", { quiz = "fit", question = "size", answer = "xl" } },
      { "question", { quiz = "fit", question = "colour", answer = "m" } },
      { "quiz", { quiz = "nope", question = "size", answer = "m" } },
    } do
      local ev = bad[2]; ev.type = "quiz_answer"; ev.customer = "c1"; ev.sets = { size = "XXL" }
      local ok, msg = e:ingest(ev)
      assert.is_nil(ok)
      assert.matches(bad[1], msg)
    end
    assert.are.equal(before, e:stats().events_total)
    assert.are.equal("M", prefs(e, "c1").prefs.size)
  end)

  it("takes integer ids; says what is wrong with a field or with the quiz's sets", function()
    local e = open(":memory:")
    -- The decision gives integer ids; the page may send them back as
    -- numbers or as text.
    assert(e:ingest { type = "quiz_answer", customer = "c1", quiz = "fit", question = 3, answer = 1 })
    assert.are.equal("u30", prefs(e, "c1").prefs.age)
    assert.are.equal("quiz:fit", prefs(e, "c1").sources.age.source)
    -- A numbered quiz is the same source whichever way its id came.
    assert(e:ingest { type = "quiz_answer", customer = "c4", quiz = 7, question = "size", answer = "m" })
    assert.are.equal("quiz:7", prefs(e, "c4").sources.size.source)
    assert(e:ingest { type = "quiz_answer", customer = "c5", quiz = "7", question = "size", answer = "m" })
    assert.are.equal("quiz:7", prefs(e, "c5").sources.size.source)
    assert(e:ingest { type = "quiz_answer", customer = "c2", quiz = "fit", question = "3", answer = "1" })
    assert.are.equal("u30", prefs(e, "c2").prefs.age)
    local before = e:stats().events_total
    for _, bad in ipairs {
      -- An integer quiz id is taken as text: "5" is no quiz here.
      { { quiz = 5, question = "size", answer = "m" }, "quiz '5' is not offered" },
      { { quiz = "fit", question = { "size" }, answer = "m" }, "'question' must be a string or an integer .*found an array" },
      { { quiz = "fit", question = "size", answer = true }, "'answer' must be a string or an integer .*found a boolean" },
      { { quiz = "fit", question = "size" }, "missing field 'answer'" },
      -- The strategy's mistakes, said rather than a preference dropped.
      { { quiz = "fit", question = 3, answer = 2 }, "sets 'kkkk.*at most 127 bytes" },
      { { quiz = "fit", question = 3, answer = 4 }, "answer '4' of question '3'.*sets 'note'.*at most 127 bytes" },
      { { quiz = "fit", question = 3, answer = 5 }, "sets 'flag'.*strings or numbers" },
    } do
      local ev = bad[1]; ev.type = "quiz_answer"; ev.customer = "c3"
      local ok, msg = e:ingest(ev)
      assert.is_nil(ok)
      assert.matches(bad[2], msg)
    end
    assert.are.equal(before, e:stats().events_total)
    assert.is_nil(next(prefs(e, "c3").prefs))
    e:close()
  end)

  it("keeps prefs over a restart, from the checkpoint and by replay", function()
    local db = tmp .. "/quiz_spec.db"
    os.remove(db)
    os.remove(db .. ".ckpt")
    local e = open(db)
    answer(e, "c1", "size", "s")
    answer(e, "c1", "budget", "any")
    answer(e, "c1", "size", "m") -- a later answer replaces the earlier one
    local want = prefs(e, "c1")
    assert.are.same({ size = "M", budget = "any", style = "classic" }, want.prefs)
    e:close()
    for _, how in ipairs { "checkpoint", "replay" } do
      e = open(db, how == "replay" and "" or nil)
      local got = prefs(e, "c1")
      assert.are.same(want.prefs, got.prefs, how)
      assert.are.same(want.sources, got.sources, how)
      e:close()
    end
    os.remove(db)
    os.remove(db .. ".ckpt")
  end)

  it("merges a visitor's answers into the customer on login", function()
    local e = open(":memory:")
    assert(e:ingest { type = "quiz_answer", anon = "v1", quiz = "fit", question = "size", answer = "s" })
    assert(e:ingest { type = "identify", customer = "c2", anon = "v1" })
    assert.are.equal("S", prefs(e, "c2").prefs.size)
    assert.are.equal("quiz:fit", prefs(e, "c2").sources.size.source)
    e:close()
  end)

  it("are removed by erasure, also from the checkpoint", function()
    local db = tmp .. "/quiz_spec_erase.db"
    os.remove(db)
    os.remove(db .. ".ckpt")
    local e = open(db)
    answer(e, "c3", "size", "m")
    answer(e, "c4", "size", "s")
    assert(e:forget("c3"))
    assert.is_nil(next(prefs(e, "c3").prefs))
    assert.is_nil(next(prefs(e, "c3").sources))
    assert.are.equal("S", prefs(e, "c4").prefs.size)
    e:close()
    for _, ckpt in ipairs { false, true } do
      e = open(db, not ckpt and "" or nil)
      assert.is_nil(next(prefs(e, "c3").prefs))
      assert.are.equal("S", prefs(e, "c4").prefs.size)
      e:close()
    end
    os.remove(db)
    os.remove(db .. ".ckpt")
  end)

  it("keeps the answers of a visitor who declined analytics", function()
    local e = open(":memory:")
    assert(e:ingest { type = "consent", customer = "c5", props = { analytics = false } })
    answer(e, "c5", "size", "m")
    assert.are.equal("M", prefs(e, "c5").prefs.size)
    e:close()
  end)

  it("reads a visitor's prefs with source and time for a preference centre", function()
    local e = open(":memory:")
    assert(e:ingest { type = "quiz_answer", anon = "v7", quiz = "fit", question = "size", answer = "m" })
    local p = assert(e:prefs { anon = "v7" }).prefs
    assert.are.equal("M", p.size.value)
    assert.are.equal("quiz:fit", p.size.source)
    assert.are.equal(e:decide { kind = "probe", anon = "v7" }.result.sources.size.time, p.size.time)
    -- Nobody known, or nothing given: no keys.
    assert.is_nil(next(assert(e:prefs { anon = "nobody" }).prefs))
    -- The customer when known, as a decision finds them.
    assert(e:ingest { type = "identify", customer = "c7", anon = "v7" })
    assert.are.equal("M", assert(e:prefs { customer = "c7", anon = "v7" }).prefs.size.value)
    local ok, msg = e:prefs {}
    assert.is_nil(ok)
    assert.matches("customer or anon", msg)
    -- customer.get's figures list them too (the right of access).
    assert.are.equal("M", e:customer("c7").figures.prefs.size.value)
    e:close()
  end)

  it("takes a preference back with pref_removed, which a restart keeps", function()
    local db = tmp .. "/quiz_spec_removed.db"
    os.remove(db)
    os.remove(db .. ".ckpt")
    local e = open(db)
    answer(e, "c8", "size", "m")
    answer(e, "c8", "budget", "any")
    assert(e:ingest { type = "pref_removed", customer = "c8", key = "size" })
    assert.are.same({ budget = "any", style = "classic" }, prefs(e, "c8").prefs)
    assert.is_nil(prefs(e, "c8").sources.size)
    -- Removing one not given changes nothing and is no error.
    assert(e:ingest { type = "pref_removed", customer = "c8", props = { key = "colour" } })
    -- Without a key, or with one that is not a string: refused, nothing stored.
    local before = e:stats().events_total
    for _, bad in ipairs { {}, { key = 7 }, { key = "" }, { key = string.rep("k", 128) } } do
      local ev = { type = "pref_removed", customer = "c8", props = bad }
      local ok, msg = e:ingest(ev)
      assert.is_nil(ok)
      assert.matches("pref_removed: .*'key'", msg)
    end
    assert.are.equal(before, e:stats().events_total)
    -- An answer after the removal sets it again.
    answer(e, "c8", "size", "s")
    assert(e:ingest { type = "pref_removed", customer = "c8", key = "style" })
    local want = prefs(e, "c8")
    assert.are.same({ size = "S", budget = "any" }, want.prefs)
    e:close()
    for _, how in ipairs { "checkpoint", "replay" } do
      e = open(db, how == "replay" and "" or nil)
      assert.are.same(want.prefs, prefs(e, "c8").prefs, how)
      e:close()
    end
    os.remove(db)
    os.remove(db .. ".ckpt")
  end)

  it("keeps a removal by a visitor who declined analytics", function()
    local e = open(":memory:")
    answer(e, "c9", "size", "m")
    assert(e:ingest { type = "consent", customer = "c9", props = { analytics = false } })
    assert(e:ingest { type = "pref_removed", customer = "c9", key = "size" })
    assert.is_nil(prefs(e, "c9").prefs.size)
    e:close()
  end)

  it("shipped recommendations follow the answers: budget, style; not size", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/strategies",
                                   lua = { reload_interval_ms = 60000 } })
    local catalog = {
      { "jacket", "Clothing/Jackets/Winter Jackets", 199 }, { "boot", "Shoes/Hiking Boots", 149 },
      { "tent", "Outdoor/Camping/Tents", 299 }, { "hat", "Accessories/Hats", 25 },
      { "runner", "Shoes/Running Shoes", 129 }, { "socks", "Sport/Running/Socks", 15 },
      { "tee", "Sport/Running/Shirts", 39 }, { "mat", "Sport/Yoga/Mats", 45 },
    }
    for i, c in ipairs(catalog) do
      assert(e:ingest { type = "item_upsert", item = { id = c[1], category = c[2], price = c[3] } })
      -- The dearer, the more often bought: the plain bestsellers are dear.
      for n = 1, math.floor(c[3] / 10) do
        assert(e:ingest { type = "view", item = c[1], anon = "p" .. i .. "-" .. n })
      end
    end
    local function home()
      local d = e:decide { kind = "recommend", anon = "me", k = 4,
                           page = { type = "home", widget = "bestsellers" } }
      assert.is_nil(d.fallback, d.error)
      return d.items
    end
    local prices = {}
    for _, c in ipairs(catalog) do prices[c[1]] = c[3] end
    local plain = home()
    assert.are.equal("tent", plain[1].id)
    local function quiz(q, a)
      assert(e:ingest { type = "quiz_answer", anon = "me", quiz = "fit", question = q, answer = a })
    end
    quiz("budget", "under_50")
    local cheap = home()
    assert.is_true(#cheap > 0)
    for _, row in ipairs(cheap) do assert.is_true(prices[row.id] <= 50, row.id) end
    quiz("style", "sporty")
    local sporty = home()
    assert.are.same({ "mat", "tee", "socks" }, { sporty[1].id, sporty[2].id, sporty[3].id })
    assert.matches("^Popular .*, in your sporty style$", sporty[1].explain)
    assert.are.equal("hat", sporty[4].id) -- the rest of the budget after the style
    quiz("size", "m") -- the strategy reads no size
    assert.are.same(sporty, home())
    quiz("budget", "any")
    assert.are.equal("runner", home()[1].id) -- the dearest of the style
    assert(e:ingest { type = "pref_removed", anon = "me", key = "style" })
    assert.are.same(plain, home())
    e:close()
  end)

  it("shipped style rows keep the visitor's segment ahead of the shop-wide filler", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/strategies",
                                   lua = { reload_interval_ms = 60000 } })
    for _, it in ipairs {
      { id = "tights", price = 59, category = "Sport/Running/Apparel" },
      { id = "yoga", price = 35, category = "Sport/Yoga" },
    } do assert(e:ingest { type = "item_upsert", item = it }) end
    local function customer(id)
      assert(e:ingest { type = "customer_upsert", customer = { id = id, attrs = { country = "DE", gender = "female" } } })
    end
    customer("d1")
    assert(e:ingest { type = "purchase", customer = "d1", order_id = "od1", items = { { id = "tights" } } })
    for i = 1, 4 do -- the shop-wide bestseller, bought elsewhere
      assert(e:ingest { type = "purchase", customer = "y" .. i, order_id = "oy" .. i, items = { { id = "yoga" } } })
    end
    customer("anna")
    assert(e:ingest { type = "quiz_answer", customer = "anna", quiz = "fit", question = "style", answer = "sporty" })
    local d = e:decide { kind = "recommend", customer = "anna", k = 4, page = { type = "home", widget = "bestsellers" } }
    assert.is_nil(d.fallback, d.error)
    assert.are.equal("tights", d.items[1].id)
    assert.matches("among women in Germany", d.items[1].explain)
    assert.are.equal("yoga", d.items[2].id)
    assert.matches("^Popular right now", d.items[2].explain)
    e:close()
  end)

  it("shipped quiz: size, style and budget", function()
    local e = assert(tailor.open { db = ":memory:", strategies = root .. "/strategies",
                                   lua = { reload_interval_ms = 60000 } })
    local d = e:decide { kind = "quiz", customer = "c6", context = { quiz = "fit" } }
    assert.is_nil(d.fallback, d.error)
    local ids = {}
    for _, q in ipairs(d.result.questions) do ids[#ids + 1] = q.id end
    assert.are.same({ "size", "style", "budget" }, ids)
    for q, a in pairs { size = "l", style = "outdoor", budget = "under_150" } do
      assert(e:ingest { type = "quiz_answer", customer = "c6", quiz = "fit", question = q, answer = a })
    end
    local ok, msg = e:ingest { type = "quiz_answer", customer = "c6", quiz = "fit", question = "style", answer = "punk" }
    assert.is_nil(ok)
    assert.matches("answer", msg)
    d = e:decide { kind = "quiz", customer = "c6", context = { quiz = "fit" } }
    assert.are.same({ size = "l", style = "outdoor", budget = "under_150" }, d.result.answered)
    assert.is_nil(e:decide { kind = "quiz", customer = "c6", context = { quiz = "nope" } }.result)
    e:close()
  end)
end)
