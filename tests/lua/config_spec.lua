-- config_spec.lua: strategies read the engine's numbers (tailor.config)
-- instead of keeping copies of them.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."

describe("tailor.config", function()
  it("shows the engine's numbers, defaults or configured, read-only", function()
    local e = assert(tailor.open {
      db = ":memory:", strategies = root .. "/tests/lua/config",
      coupons = "FREESHIP=10", index = { lapsed_days = 45 }, store = { synchronous_full = false },
    })
    local d = e:decide { kind = "probe", anon = "v1" }
    assert.is_nil(d.fallback, d.error)
    local r = d.result
    assert.are.equal(45, r.lapsed_days)
    assert.are.equal(5000000, r.instruction_budget) -- a default
    assert.are.equal(100, r.max_k)
    assert.is_false(r.synchronous_full)
    -- Paths, lists and plugin settings (credentials) are not shown.
    assert.are.same({ db = false, plugins = false, coupons = false }, r.hidden)
    assert.is_false(r.wrote)
    assert.matches("read%-only", r.why)
    e:close()
  end)

  it("is where the shipped settings take the engine's lapsed_days from", function()
    -- settings.lua run as the engine runs it, with a tailor.config of our own.
    local chunk = assert(loadfile(root .. "/strategies/lib/settings.lua", "t",
                                  setmetatable({ tailor = { config = { index = { lapsed_days = 45 } } } },
                                               { __index = _G })))
    assert.are.equal(45, chunk().lapsed_days)
  end)
end)
