-- offers.lua: a test strategy for coupons and frequency caps: a 10% popup
-- with a unique code (in an experiment), a cart email carrying a code,
-- and the caps the host enforces over both.
local function unit(ctx) return ctx.customer.id or ctx.customer.anon end

local function popup(ctx)
  if ctx.context.trigger ~= "exit_intent" then return nil end
  local arm = tailor.experiment("popup_offer", { control = 50, ten = 50 }, unit(ctx))
  local tier = ctx.context.tier or ("returning_10_" .. arm)
  local c, why = tailor.coupon(tier, { ttl = ctx.context.ttl or 3600, percent = 10 })
  if not c then return { name = "no_coupon", why = why } end
  return { name = tier, percent = 10, coupon = c.code, expires = c.expires }
end

local function browse(ctx) -- the popup's experiment, seen without a popup
  return { name = tailor.experiment("popup_offer", { control = 50, ten = 50 }, unit(ctx)) }
end

local function plain(ctx) -- a popup without a coupon, for the per-day cap
  return { name = ctx.context.name or "free_shipping" }
end

local function on_event(ctx, ev)
  local who = ctx.customer.id
  if who and ev.type == "signup" then -- an email without a coupon
    return { schedule = { { key = "welcome:" .. who, template = "welcome" } } }
  end
  if not who or ev.type ~= "add_to_cart" then return nil end
  local c = tailor.coupon("cart_5", { percent = 5 })
  return { schedule = { { key = "cart:" .. who .. ":" .. ev.ts, template = "abandoned_cart",
                          delay = 3600, vars = { code = c and c.code or false } } } }
end

-- A coupon, then work: two tabs of one visitor decide at once, and both
-- are past tailor.coupon before either is written.
local function slow()
  local c, why = tailor.coupon("slow_5", { percent = 5 })
  local t0 = os.clock()
  while os.clock() - t0 < 0.05 do end
  return c and c.code or why
end

-- The same in a ranking: the shop's list, in an order that comes with a
-- code of its own.
local function rank(ctx)
  local c = tailor.coupon("rank_5", { percent = 5 })
  local t0 = os.clock()
  while os.clock() - t0 < 0.05 do end
  local rows = {}
  for i = #ctx.items, 1, -1 do
    rows[#rows + 1] = { id = ctx.items[i], explain = c and ("5% off: " .. c.code) or nil }
  end
  return rows
end

local function outside() -- tailor.coupon with nobody to give it to
  return { code = tailor.coupon("x") }
end

return {
  caps = { per_day = 1, per_campaign = 1 },
  popup = popup, browse = browse, plain = plain, on_event = on_event, outside = outside, slow = slow,
  rank = rank,
}
