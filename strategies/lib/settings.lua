-- settings.lua: the shop's knobs, in one place.  Every strategy reads its
-- numbers from here; change them here, not in the logic.  A number the
-- engine owns too is read from the engine (tailor.config, docs/lua-api.md),
-- not copied: change it in the engine's configuration.

return {
  -- Value tiers by predicted revenue over the next 12 months
  -- (ctx.customer.predicted_value, from the model fitted on your orders).
  value_tiers = { vip = 500, high = 150 },

  -- A customer without an order for this many days is lapsed: the engine's
  -- index.lapsed_days, which its "lapsed" lifecycle uses too.
  lapsed_days = tailor.config.index.lapsed_days,

  -- Categories people buy again and again: already-bought items there may
  -- be recommended again.
  replenishable = { "Beauty", "Grocery", "Pets/Food" },

  -- Content (catalog kind "content": guides, blog posts).  A product page
  -- shows the guide whose readers went on to the product most, in the last
  -- slot, once at least min_score of reading led there (views 1, carts 3,
  -- purchases 5); a guide's page shows what its readers went on to buy,
  -- then what they read next.
  content = { guide_on_product = true, min_score = 3 },
  -- The landing decision (landing.lua): what a visit's first page shows
  -- for where the visitor came from.  hero_items: at most this many.
  -- Banners and offers by medium ("search" covers paid search too); "%s"
  -- in a banner is the campaign's label, or the searched category or term
  -- ("our shop" when none is known).  campaigns: by utm_campaign, each with items (shown
  -- first, in order), a category (its bestsellers next), label, banner,
  -- offer and why, any of them; for example
  --   spring = { items = { "rain-jacket", "trail-shoe" }, category = "Outdoor",
  --              label = "spring", banner = { title = "Spring is here" } }
  -- A new-arrivals mail names its new items here.  An offer is shown as a
  -- popup's is (name, title, percent, coupon: a pool of the coupons
  -- config, off once empty, free_shipping); new_only: not to customers.
  landing = {
    hero_items = 4,
    campaigns = {},
    banners = {
      email = { title = "New for you", text = "Picked for readers of our newsletter." },
      -- The hero items are trending rows (views, carts and sales), so the
      -- banners say "popular", not "bestsellers" (lib/text.lua).
      search = { title = "Popular in %s", text = "What shoppers who looked for this went for most." },
      social = { title = "Trending now", text = "What is popular this week." },
      -- direct: a visitor who looked at items and ordered; direct_viewed:
      -- one who only looked; direct_bought: one who only ordered; welcome:
      -- anyone else who came directly (a new visitor, or one who declined
      -- personalization: nothing there is picked from them).
      direct = { title = "Picked for you", text = "From what you looked at and bought." },
      direct_viewed = { title = "Picked for you", text = "From what you looked at." },
      direct_bought = { title = "Picked for you", text = "From what you bought." },
      welcome = { title = "Welcome", text = "What is popular in our shop right now." },
    },
    offers = {
      social = { name = "social_welcome", title = "Free shipping on your first order",
                 free_shipping = true, coupon = "FREESHIP", new_only = true },
    },
  },

  -- What the visitor told the shop in the quiz (quiz.lua; ctx.customer.prefs)
  -- and how the recommendations follow it: bestseller rows stay within the
  -- budget (its number is a price: "50"; "any" is none) when budget is true,
  -- and a style puts the bestsellers of its categories (path prefixes)
  -- first.  A size changes nothing here: the demo's catalog has no sizes.
  prefs = {
    budget = true,
    styles = {
      classic = { "Clothing/T-Shirts", "Shoes/Sneakers", "Accessories" },
      sporty = { "Sport", "Shoes/Running Shoes" },
      outdoor = { "Outdoor", "Shoes/Hiking Boots", "Clothing/Jackets" },
    },
  },

  -- Frequency caps across channels (caps.lua; the host enforces them):
  -- contacts a visitor may get within window_hours (popups with their
  -- coupons, other coupons, emails at their due time), and of one campaign
  -- (a popup's name, a coupon's tier, an email's template); 0 or nil: none.
  -- exempt: campaigns never held back, because the visitor asked for them
  -- (the welcome of a confirmed address; caps.lua adds its code's tier,
  -- popup.email_capture.incentive.tier); they still count.
  caps = { per_day = 1, per_campaign = 0, window_hours = 24,
           exempt = { "subscribed", "subscribed_vip" } },

  popup = {
    -- Offers in priority order: the first one the visitor qualifies for is
    -- shown.  tier: each popup of the offer carries a unique single-use
    -- coupon of that tier (tailor.coupon; the code starts with its letters:
    -- RETURNING10-7K3M9QX2PA), valid for coupon_ttl_hours.
    offers = {
      { name = "vip_15", segment = "vip", percent = 15, tier = "vip_15",
        title = "15% off, just for you", message = "Thank you for being one of our best customers." },
      { name = "returning_10", segment = "returning_visitor", percent = 10, tier = "returning_10",
        title = "Welcome back: 10% off", message = "Good to see you again. Here is 10% off your order." },
      { name = "free_shipping", segment = "new_visitor", tier = "free_shipping", free_shipping = true,
        title = "Free shipping on your first order", message = "Your first order ships free." },
    },
    coupon_ttl_hours = 72, -- how long a popup's code may be redeemed
    hidden_seconds = 5,  -- mobile: the page was hidden at least this long
    time_on_page = 60,   -- seconds on a page before a popup may show
    inactivity = 30,     -- seconds without interaction
    cart_value = 75,     -- a cart worth this much may trigger a popup
    -- No discount (an offer with a percent) when the session's purchase
    -- propensity (ctx.session.propensity: the chance it buys, from the
    -- model fitted on the shop's sessions; its AUC in `tailor stats`) is
    -- above this: the visitor would likely buy anyway.  nil: always offer.
    hold_above = 0.6,
    -- Email capture (popup.lua): a visitor with no address on file who
    -- stays on a page (time_on_page) or idles (inactivity) is asked for
    -- their email first, with an incentive.  The storefront shows the
    -- popup's consent_text beside the field and sends it with the address
    -- (POST /v1/subscribe); the address counts only once confirmed through
    -- the link tailor emails (double opt-in).  On confirmation triggers.lua
    -- sends the welcome with a code of the incentive's tier.  nil: never.
    email_capture = {
      name = "newsletter_10", triggers = { time_on_page = true, inactivity = true },
      title = "10% off your first order",
      message = "Join our newsletter: new arrivals and offers, twice a month.",
      purpose = "newsletter",
      consent_text = "Yes, email me the newsletter with news and offers. "
        .. "I can withdraw my consent at any time.",
      incentive = { tier = "WELCOME10", percent = 10, ttl_days = 30,
                    text = "10% off your first order, emailed once you confirm" },
    },
  },

  discount = {
    tiers = { vip = 10, high = 5 },  -- percent, by value tier
    win_back_percent = 25,           -- for a lapsed customer ...
    win_back_after_days = 300,       -- ... this long without an order
    first_order_percent = 0,         -- set above 0 to welcome new customers
  },

  email = {
    abandoned_cart_delay = 3600,          -- seconds after the last cart change
    browse_abandonment_delay = 4 * 3600,  -- seconds after viewing without carting
    post_purchase_days = 14,              -- follow-up with complements
    win_back_days = 90,                   -- reminder after this long without an order
    watch_days = 30,                      -- price drop / back in stock: who looked lately
    recommendations = 4,                  -- items in an email
  },

  -- Retargeting: recency audiences and how much more to bid on them.  The
  -- engine puts each visitor in one at most (tailor.audiences), so an ad
  -- platform bids once: recent buyers first (ordered within the longest of
  -- index.audience_days, 14), then cart abandoners (seen within the
  -- shortest, 2, with items in the cart: carted, neither bought nor
  -- removed), then everyone else by days since last seen, in bands between
  -- the windows: (0,2], (2,7], (7,14].  A visitor of the last two days with
  -- nothing in the cart is in visitors_2d.  `days` must match the engine's
  -- windows.
  audiences = {
    { kind = "buyers", days = 14, name = "recent_buyers_14d", bid = 0.5 },
    { kind = "cart_abandoners", days = 2, name = "cart_abandoners_2d", bid = 1.6 },
    { kind = "visitors", days = 2, name = "visitors_2d", bid = 1.4 },
    { kind = "visitors", days = 7, name = "visitors_7d", bid = 1.2 },
    { kind = "visitors", days = 14, name = "visitors_14d", bid = 1.0 },
  },
}
