-- quiz_spec.lua: zero-party preferences (issue 20 item 1, the quiz): answers
-- checked against the strategy's quiz become ctx.customer.prefs with source
-- and time; an answer not offered is refused with nothing changed; prefs
-- survive a restart and go with erasure.
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
