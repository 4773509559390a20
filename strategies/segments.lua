-- segments.lua: who a visitor is, as named yes/no questions.  The engine
-- asks every question once per decision; handlers read the answers as
-- ctx.segments.<name>.  Add your own: a function of ctx returning true or
-- false.

local settings = require "lib.settings"

local function device(ctx)
  local d = ctx.context.device or (ctx.session.source and ctx.session.source.device)
            or ctx.customer.attrs.device
  return d and d:lower() or "desktop"
end

-- The session's medium as tailor.js parsed it (search, social, email,
-- paid, referral, direct: ctx.session.source), else what the page says.
local function source(ctx)
  local s = (ctx.session.source and ctx.session.source.medium)
            or ctx.context.source or ctx.customer.attrs.source
  return s and s:lower() or "direct"
end

-- Whether the visitor searched this session (for `word` in a term when
-- given; terms are lowercase, trimmed: ctx.session.searches).
local function searched(ctx, word)
  for _, term in ipairs(ctx.session.searches) do
    if not word or term:find(word:lower(), 1, true) then return true end
  end
  return false
end

local function value(ctx)
  return ctx.customer.predicted_value or -1
end

local segments = {
  -- Lifecycle.
  new_visitor = function(ctx) return ctx.customer.lifecycle == "new_visitor" end,
  returning = function(ctx) return ctx.customer.lifecycle ~= "new_visitor" end,
  returning_visitor = function(ctx) return ctx.customer.lifecycle == "returning_visitor" end,
  first_time_customer = function(ctx) return ctx.customer.orders == 1 and ctx.customer.lifecycle == "customer" end,
  repeat_customer = function(ctx) return ctx.customer.orders > 1 and ctx.customer.lifecycle == "customer" end,
  lapsed_customer = function(ctx)
    return ctx.customer.orders > 0 and ctx.customer.days_since_order > settings.lapsed_days
  end,

  -- Value tiers from the predicted value of the next 12 months.
  vip = function(ctx) return value(ctx) >= settings.value_tiers.vip end,
  high_value = function(ctx)
    return value(ctx) >= settings.value_tiers.high and value(ctx) < settings.value_tiers.vip
  end,

  -- Device and traffic source, as the storefront reports them.
  mobile = function(ctx) return device(ctx) == "mobile" end,
  tablet = function(ctx) return device(ctx) == "tablet" end,
  desktop = function(ctx) return device(ctx) == "desktop" end,
  from_search = function(ctx) return source(ctx) == "search" end,
  from_social = function(ctx) return source(ctx) == "social" end,
  from_email = function(ctx) return source(ctx) == "email" end,
  from_ads = function(ctx) return source(ctx) == "ads" or source(ctx) == "paid" end,

  -- Search: visitors who searched this session, and what for.
  searcher = function(ctx) return searched(ctx) end,
  searching_gifts = function(ctx) return searched(ctx, "gift") end,

  -- Country examples; any attribute works the same way.
  germany = function(ctx) return (ctx.context.country or ctx.customer.attrs.country) == "DE" end,
  france = function(ctx) return (ctx.context.country or ctx.customer.attrs.country) == "FR" end,
}

return { segments = segments }
