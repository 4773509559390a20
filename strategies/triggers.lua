-- triggers.lua: "if this then that" emails.  on_event sees every new event
-- and answers with emails to schedule (and pending ones to cancel); the
-- engine keeps them in the outbox and re-checks consent and the weekly cap.
--
--   welcome              on signup, right away
--   subscribed           when an address from email capture is confirmed
--                        (double opt-in), with the incentive's code
--   abandoned cart       an hour after the last cart change, with what is bought
--                        with the cart's items; a purchase cancels it
--   browse abandonment   hours after viewing without carting; a cart cancels it
--   post-purchase        N days after an order, with complements of the order
--   win-back             N days after the last order; each order moves it
--   price drop           to customers who looked at an item lately (viewed or
--                        carted it) and have not bought it
--   back in stock        likewise, when an item returns
--
-- VIP customers get their own template (the template name + "_vip").
--
-- When an email is due, the engine asks on_due(ctx, row) whether it still
-- applies: a purchase since cancels an abandoned-cart or browse email, an
-- emptied cart (or one of items no longer listed) the cart email, a price
-- back up the price-drop email, a viewed item sold out or no longer listed
-- the browse email; the cart email shows the cart as it is at send time,
-- and its complements, the win-back its picks made again, the others their
-- items' names and prices of that day, without what is sold out or no
-- longer listed.

local settings = require "lib.settings"
local recs = require "lib.recs"

local E = settings.email

local function template(ctx, name)
  return ctx.segments.vip and (name .. "_vip") or name
end

-- The items an email shows: id, name, price, link, image.
local function describe(ids)
  local out = {}
  for _, id in ipairs(ids) do
    local item = tailor.item(id)
    if item then
      out[#out + 1] = { id = id, name = item.name or id, price = item.price,
                        url = item.url, image = item.image }
    end
  end
  return out
end

-- From the customer's history (welcome, browse, win-back).
local function picks(ctx)
  local ids = {}
  for _, row in ipairs(recs.for_email(ctx, E.recommendations)) do ids[#ids + 1] = row.id end
  return describe(ids)
end

-- What is bought with `items` (a cart, an order), leaving out the cart and
-- what the customer bought already.
local function complements(ctx, items)
  local exclude = {}
  for _, id in ipairs(ctx.customer.cart) do exclude[#exclude + 1] = id end
  for _, id in ipairs(ctx.customer.bought) do exclude[#exclude + 1] = id end
  local ids = {}
  for _, row in ipairs(tailor.also_bought(items, { k = E.recommendations, exclude = exclude })) do
    ids[#ids + 1] = row.id
  end
  return ids
end

local function consented(ctx)
  return ctx.customer.consent.email and ctx.customer.has_email
end

-- Emails to everyone who looked at an item lately and did not buy it (price
-- drop, back in stock: tailor.watchers leaves buyers out).
local function to_watchers(item_id, kind, vars)
  local out = {}
  for _, customer in ipairs(tailor.watchers(item_id, E.watch_days)) do
    local c = tailor.customer(customer)
    if c.consent.email and c.has_email then
      local vip = (c.predicted_value or 0) >= settings.value_tiers.vip
      out[#out + 1] = {
        key = kind .. ":" .. item_id .. ":" .. customer .. ":" .. vars.stamp,
        customer = customer, template = vip and (kind .. "_vip") or kind, delay = 0,
        vars = vars.fields,
      }
    end
  end
  return out
end

local on = {}

function on.signup(ctx, ev)
  return { schedule = { { key = "welcome:" .. ev.customer, template = template(ctx, "welcome"),
                          delay = 0, vars = { items = picks(ctx) } } } }
end

-- An address confirmed through the double opt-in of email capture (the
-- host's consent event, props.double_opt_in): the welcome, with a code of
-- the incentive the popup promised when it came from that popup.
function on.consent(ctx, ev)
  local p = ev.props or {}
  if not p.double_opt_in then return nil end
  local vars = { items = picks(ctx) }
  local ask = settings.popup.email_capture
  local incentive = ask and p.source == "popup:" .. ask.name and ask.incentive
  if incentive then
    local coupon = tailor.coupon(incentive.tier, { percent = incentive.percent,
                                                   ttl = (incentive.ttl_days or 7) * 86400 })
    if coupon then vars.coupon, vars.percent = coupon.code, incentive.percent end
  end
  return { schedule = { { key = "subscribed:" .. p.double_opt_in, delay = 0,
                          template = template(ctx, "subscribed"), vars = vars } } }
end

function on.add_to_cart(ctx, ev)
  local who = ctx.customer.id
  return {
    cancel = { "browse:" .. who .. ":*" },
    schedule = { {
      key = "abandoned_cart:" .. who .. ":" .. ev.ts, supersede = "abandoned_cart:" .. who .. ":",
      template = template(ctx, "abandoned_cart"), delay = E.abandoned_cart_delay,
      vars = { cart = describe(ctx.customer.cart), items = describe(complements(ctx, ctx.customer.cart)),
               since = ev.ts },
    } },
  }
end

function on.view(ctx, ev)
  local who = ctx.customer.id
  if #ctx.customer.cart > 0 then return nil end -- the cart email covers them
  return { schedule = { {
    key = "browse:" .. who .. ":" .. ev.item, supersede = "browse:" .. who .. ":",
    template = template(ctx, "browse_abandonment"), delay = E.browse_abandonment_delay,
    vars = { viewed = describe({ ev.item }), items = picks(ctx), since = ev.ts },
  } } }
end

function on.purchase(ctx, ev)
  local who = ctx.customer.id
  local bought = {}
  for _, line in ipairs(ev.items or { { id = ev.item } }) do bought[#bought + 1] = line.id end
  return {
    cancel = { "abandoned_cart:" .. who .. ":*", "browse:" .. who .. ":*" },
    schedule = {
      { key = "post_purchase:" .. ev.order_id, template = template(ctx, "post_purchase"),
        delay = E.post_purchase_days * 86400,
        vars = { order_id = ev.order_id, bought = describe(bought), items = describe(complements(ctx, bought)) } },
      { key = "win_back:" .. who .. ":" .. ev.order_id, supersede = "win_back:" .. who .. ":",
        template = template(ctx, "win_back"), delay = E.win_back_days * 86400,
        vars = { items = picks(ctx), since = ev.ts } },
    },
  }
end

function on.item_upsert(ctx, ev)
  local item = tailor.item(ev.item.id)
  if not item then return nil end
  -- Back in stock: listed and out of stock before (an item listed for the
  -- first time is new, not back).
  if item.in_stock and item.was_listed and not item.was_in_stock then
    return { schedule = to_watchers(item.id, "back_in_stock",
      { stamp = ev.ts, fields = { item = describe({ item.id })[1] } }) }
  end
  -- A price drop: a price below the one before (an item without a price, a
  -- guide, has none to drop).
  if item.in_stock and item.was_listed and type(item.price) == "number"
     and item.previous_price and item.price < item.previous_price then
    return { schedule = to_watchers(item.id, "price_drop",
      { stamp = item.price, fields = { item = describe({ item.id })[1], old_price = item.previous_price } }) }
  end
  return nil
end

local function on_event(ctx, ev)
  local handler = on[ev.type]
  if not handler then return nil end
  -- Customer emails need a known, consenting customer; catalog events
  -- (price drop, back in stock) pick their customers themselves.
  -- ev.customer first: an anonymous event costs no customer lookup.
  if ev.type ~= "item_upsert" and not (ev.customer and consented(ctx)) then return nil end
  return handler(ctx, ev)
end

-- At send time.  `row` is the outbox row: key, template, vars, created (ms).
local still = {}

-- An order after the event that scheduled the email (vars.since, ms).
local function ordered_since(ctx, row)
  return (ctx.customer.last_order or 0) > (row.vars.since or row.created)
end

function still.abandoned_cart(ctx, row)
  if ordered_since(ctx, row) or #ctx.customer.cart == 0 then return false end
  local cart = ctx.customer.cart
  -- A cart whose items all left the catalog: nothing to come back for.
  local shown = describe(cart)
  if #shown == 0 then return false end
  return { vars = { cart = shown, items = describe(complements(ctx, cart)),
                    since = row.vars.since } }
end

-- The items of a list (vars.items, vars.bought) as they are now: names and
-- prices of today, and only those still listed and in stock.
local function current(list)
  local ids = {}
  for _, shown in ipairs(list or {}) do
    local item = shown.id and tailor.item(shown.id)
    if item and item.in_stock then ids[#ids + 1] = shown.id end
  end
  return describe(ids)
end

-- Hours after the view: the viewed item and the picks as they are now; a
-- viewed item sold out or no longer listed leaves nothing to come back for.
function still.browse(ctx, row)
  -- a cart since: the cart email covers them
  if ordered_since(ctx, row) or #ctx.customer.cart > 0 then return false end
  local v = row.vars
  local viewed = v.viewed and current(v.viewed)
  if viewed and #viewed == 0 then return false end
  return { vars = { viewed = viewed, items = current(v.items), since = v.since } }
end

-- Picks made weeks before the email goes: made again at send time.
function still.win_back(ctx, row)
  if ordered_since(ctx, row) then return false end
  return { vars = { items = picks(ctx), since = row.vars.since } }
end

function still.post_purchase(ctx, row)
  local v = row.vars
  return { vars = { order_id = v.order_id, bought = v.bought, items = current(v.items) } }
end

-- At today's price, and only while it is below the announced old one.
function still.price_drop(ctx, row)
  local item = row.vars.item and tailor.item(row.vars.item.id)
  if not (item and item.in_stock and row.vars.old_price and item.price
          and item.price < row.vars.old_price) then
    return false
  end
  return { vars = { item = describe({ item.id })[1], old_price = row.vars.old_price } }
end

function still.back_in_stock(ctx, row)
  local item = row.vars.item and tailor.item(row.vars.item.id)
  if not (item and item.in_stock) then return false end
  return { vars = { item = describe({ item.id })[1] } }
end

local function on_due(ctx, row)
  local kind = row.key:match("^([%w_]+):")
  local check = kind and still[kind]
  if not check then return true end
  return check(ctx, row)
end

-- The events on_event acts on: a customer's (the emails above need a
-- consenting customer), and every catalog update (price drop, back in
-- stock).  The host does not call it for the others, most of all the
-- anonymous views that are most of a shop's traffic.
local on_event_for = { item_upsert = "all" }
for type in pairs(on) do
  if type ~= "item_upsert" then on_event_for[type] = "customers" end
end

return { on_event = on_event, on_event_for = on_event_for, on_due = on_due }
