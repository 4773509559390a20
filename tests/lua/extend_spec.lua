-- extend_spec.lua: a merchant's strategy folder that extends the shipped
-- one (config strategies_base): a file of the same name replaces the
-- shipped one, every other shipped handler keeps serving.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

describe("a folder that extends the shipped strategies", function()
  it("replaces one handler and keeps the others", function()
    local e = assert(tailor.open {
      db = ":memory:", strategies = root .. "/tests/lua/extend",
      strategies_base = root .. "/strategies", lua = { reload_interval_ms = 0 },
    })
    assert(e:ingest { type = "item_upsert", item = { id = "a", price = 10, category = "Hats" } })
    assert(e:ingest { type = "view", item = "a", anon = "v1" })
    local p = assert(e:decide { kind = "popup", anon = "v1", context = { trigger = "exit_intent" } })
    assert.is_nil(p.fallback)
    assert.are.equal("merchant_offer", p.result.name)
    assert.are.equal("popup.lua", p.strategy:match("[^/]+$"))
    local r = assert(e:decide { kind = "recommend", anon = "v1", page = { type = "home" } })
    assert.is_nil(r.fallback)
    assert.are.equal("recommend.lua", r.strategy:match("[^/]+$"))
    e:close()
  end)

  it("refuses a base folder that is not there", function()
    local e, msg = tailor.open { db = ":memory:", strategies = root .. "/tests/lua/extend",
                                 strategies_base = "/no/such/folder" }
    assert.is_nil(e)
    assert.matches("strategies_base folder '/no/such/folder' not found", msg)
  end)
end)
