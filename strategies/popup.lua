-- popup.lua: the one in-session offer a visitor may see.
--
-- A storefront asks for a popup when something happens on the page and
-- says what in ctx.context.trigger: "exit_intent" (the mouse leaves a
-- desktop page), "page_hidden" (a mobile page was hidden, with
-- context.hidden_seconds), "time_on_page" (with context.seconds),
-- "inactivity" (with context.seconds), or "cart_value" (with
-- context.cart_value).  The offer depends on who the visitor is (first
-- match in settings.popup.offers); at most one popup per session, none
-- after a purchase in the session.
--
-- Each offer with a tier comes with a real coupon: tailor.coupon issues a
-- unique code for this visitor, single-use, valid for
-- settings.popup.coupon_ttl_hours, which the shop's checkout checks and
-- redeems once.  The host's frequency caps (caps.lua) count the popup and
-- its coupon as one contact, with the emails and other coupons of the
-- window: a visitor already contacted today (the cart email, say) gets no
-- popup, and tailor.coupon answers nil when a cap holds (then no popup
-- either: an offer without its code is no offer).
--
-- A discount (an offer with a percent) is held for a session whose
-- purchase propensity (ctx.session.propensity, fitted on the shop's
-- history) is above settings.popup.hold_above: it would likely buy anyway;
-- the next offer without a percent may still show.
--
-- Email capture comes first on the triggers of settings.popup.email_capture
-- (staying on a page, idling): a visitor whose address tailor does not
-- have with consent, and who has not declined marketing, is asked for it
-- with an incentive, as a popup of kind "email_capture" (name, title,
-- message, purpose, consent_text, source, incentive {percent, text}).  The
-- storefront shows a field and the consent text and sends them to
-- POST /v1/subscribe; the incentive comes by email once the address is
-- confirmed (triggers.lua).

local settings = require "lib.settings"

local function triggered(ctx)
  local c, p = ctx.context, settings.popup
  local t = c.trigger
  if t == "exit_intent" then return not ctx.segments.mobile end
  if t == "page_hidden" then return ctx.segments.mobile and (c.hidden_seconds or 0) >= p.hidden_seconds end
  if t == "time_on_page" then return (c.seconds or 0) >= p.time_on_page end
  if t == "inactivity" then return (c.seconds or 0) >= p.inactivity end
  if t == "cart_value" then return (c.cart_value or 0) >= p.cart_value end
  return false
end

local function email_capture(ctx)
  local ask, c = settings.popup.email_capture, ctx.customer
  if not ask or not ask.triggers[ctx.context.trigger] then return nil end
  if (c.has_email and c.consent.email) or not c.consent.marketing then return nil end
  local incentive = ask.incentive
  return {
    kind = "email_capture", name = ask.name, title = ask.title, message = ask.message,
    purpose = ask.purpose, consent_text = ask.consent_text, source = "popup:" .. ask.name,
    incentive = incentive and { percent = incentive.percent, text = incentive.text } or nil,
  }
end

-- Whether the session would likely buy without a discount.
local function would_buy(ctx)
  local above, p = settings.popup.hold_above, ctx.session.propensity
  return above ~= nil and p ~= nil and p > above
end

local function popup(ctx)
  local s, P = ctx.session, settings.popup
  if s.popups_shown > 0 or s.purchased or not triggered(ctx) then return nil end
  local ask = email_capture(ctx)
  if ask then return ask end
  for _, offer in ipairs(P.offers) do
    if ctx.segments[offer.segment] and not (offer.percent and would_buy(ctx)) then
      local answer = {
        name = offer.name, title = offer.title, message = offer.message,
        percent = offer.percent, free_shipping = offer.free_shipping,
      }
      if offer.tier then
        local coupon = tailor.coupon(offer.tier, { ttl = P.coupon_ttl_hours * 3600,
                                                   percent = offer.percent })
        if not coupon then return nil end -- a cap holds
        answer.coupon, answer.expires = coupon.code, coupon.expires
      end
      return answer
    end
  end
  return nil
end

return { popup = popup }
