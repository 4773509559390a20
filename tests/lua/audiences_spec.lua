-- audiences_spec.lua: the retargeting audiences on the real engine and the
-- shipped strategies.  A generated history with known times (views, carts,
-- removals, orders, logins) goes in; the spec works out each visitor's
-- audience from the events itself, by the rules of lib/settings.lua, and
-- compares it with what the audiences handler says (tailor.audiences) and
-- with what `tailor audiences export` lists.
local tailor = require "tailor"
local root = os.getenv("TAILOR_ROOT") or "."
local tmp = os.getenv("TAILOR_TEST_TMP") or "/tmp"
local bin = os.getenv("TAILOR") or (tmp .. "/../tailor")
local DAY = 86400
local HOUR = 3600

local function iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

-- The audiences of the shipped settings, by the name the strategy gives.
local AUDIENCES = {
  recent_buyers_14d = { "buyers", 14 }, cart_abandoners_2d = { "cart_abandoners", 2 },
  visitors_2d = { "visitors", 2 }, visitors_7d = { "visitors", 7 }, visitors_14d = { "visitors", 14 },
}

-- The audience a visitor belongs in, from the spec's own account of them.
local function expected(p, now)
  local seen = now - p.last_seen
  if p.last_order and now - p.last_order <= 14 * DAY then return "recent_buyers_14d" end
  if next(p.cart) and seen <= 2 * DAY then return "cart_abandoners_2d" end
  if seen <= 2 * DAY then return "visitors_2d" end
  if seen <= 7 * DAY then return "visitors_7d" end
  if seen <= 14 * DAY then return "visitors_14d" end
  return nil
end

-- Visitors "v<i>", last active 0 to 18 days ago with 1 to 6 events in the
-- 5 days before; every third logs in as "c<i>" for its events of the last
-- 10 days.  Times stay an hour clear of the windows' edges.
local function history(now)
  local seed = 6
  local function rand(n)
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed % n
  end
  local events = {}
  for i = 1, 90 do
    local last = now - rand(18 * 24) * HOUR - rand(HOUR)
    for k = 1, 1 + rand(6) do
      local ts = k == 1 and last or last - rand(5 * DAY)
      local clear = true
      for _, d in ipairs { 2, 7, 14 } do
        if math.abs(now - ts - d * DAY) < HOUR then clear = false end
      end
      local roll = rand(100)
      local type = roll < 50 and "view" or roll < 80 and "add_to_cart"
        or roll < 90 and "remove_from_cart" or "purchase"
      if clear then
        events[#events + 1] = { ts = ts, i = i, item = "i" .. rand(4), type = type, n = #events }
      end
    end
  end
  table.sort(events, function(a, b)
    if a.ts ~= b.ts then return a.ts < b.ts end
    return a.n < b.n
  end)
  return events
end

describe("recency audiences", function()
  it("put each visitor in one audience, the one their events say, in decide and export", function()
    local db = tmp .. "/audiences_spec.db"
    os.remove(db)
    os.remove(db .. ".ckpt")
    local e = assert(tailor.open { db = db, strategies = root .. "/strategies" })
    local now = os.time()
    local people, login = {}, {}
    for _, ev in ipairs(history(now)) do
      local anon = "v" .. ev.i
      local customer = ev.i % 3 == 0 and ev.ts > now - 10 * DAY and "c" .. ev.i or nil
      local msg = { type = ev.type, anon = anon, customer = customer, ts = iso(ev.ts) }
      if ev.type == "purchase" then
        msg.order_id = "o" .. ev.n
        msg.items = { { id = ev.item, price = 10 } }
      else
        msg.item = ev.item
      end
      assert(e:ingest(msg))
      -- The spec's own account: a login moves the visitor's past over.
      if customer and not login[anon] then
        login[anon] = customer
        local v = people[anon] or { cart = {} }
        people[customer] = { last_seen = v.last_seen, last_order = v.last_order, cart = v.cart }
        people[anon] = nil
      end
      local who = login[anon] or anon
      local p = people[who] or { cart = {} }
      people[who] = p
      p.last_seen = ev.ts
      if ev.type == "add_to_cart" then p.cart[ev.item] = true end
      if ev.type == "remove_from_cart" or ev.type == "purchase" then p.cart[ev.item] = nil end
      if ev.type == "purchase" then p.last_order = ev.ts end
    end
    -- An email sent now to every customer is not a visit: no audience moves.
    for who in pairs(people) do
      if who:match("^c") then
        assert(e:ingest { type = "email_sent", customer = who, name = "win_back",
                          props = { key = "win_back:" .. who, channel = "smtp" } })
      end
    end

    -- tailor.audiences, through the shipped audiences handler.
    local want, count = {}, {}
    for who, p in pairs(people) do
      local name = expected(p, now)
      local d = e:decide { kind = "audiences", customer = who:match("^c") and who or nil,
                           anon = who:match("^v") and who or nil }
      assert.is_nil(d.fallback, d.error)
      local names = {}
      for _, a in ipairs(d.result.audiences) do names[#names + 1] = a.name end
      assert.are.same({ who, name and { name } or {} }, { who, names })
      if name then
        want[name] = want[name] or {}
        want[name][who] = true
        count[name] = (count[name] or 0) + 1
      end
    end
    for name in pairs(AUDIENCES) do
      assert.is_true((count[name] or 0) > 0, "no member of " .. name .. " in the history")
    end
    e:close()

    -- `tailor audiences export`, audience by audience: the same members.
    for name, a in pairs(AUDIENCES) do
      local cmd = string.format("%s audiences export --db %s %s --days %d 2>/dev/null",
                                bin, db, a[1], a[2])
      local f = assert(io.popen(cmd))
      local got = {}
      for line in f:lines() do
        local who = line:match('"customer":"([^"]+)"') or line:match('"anon":"([^"]+)"')
        got[who] = true
      end
      assert.is_true(f:close(), cmd)
      assert.are.same({ name, want[name] }, { name, got })
    end
  end)

  it("refuses an audience that does not exist, naming those that do", function()
    -- An empty store (a store that is not there is refused before the
    -- audience is read).
    local cmd = string.format("%s ingest --quiet --db %s/empty_aud.db - </dev/null >/dev/null 2>&1; "
                              .. "%s audiences export --db %s/empty_aud.db visitors --days 3 2>&1",
                              bin, tmp, bin, tmp)
    local f = assert(io.popen(cmd))
    local out = f:read("a")
    local ok, _, code = f:close()
    assert.is_nil(ok)
    assert.are.equal(2, code)
    assert.matches("visitors 2, 7, 14 days, cart_abandoners 2, buyers 14", out, 1, true)
  end)
end)
