-- landing.lua: the first page of a visit, chosen for where the visitor
-- came from (ctx.session.source, as tailor.js parsed it: medium, source,
-- campaign).  Asked as the decision kind "landing"; tailor.js asks it on
-- the landing page view of a session that came from somewhere
-- (Tailor.landing, docs/storefront.md).
--
-- The answer: hero items (each with its explanation), a banner, an offer
-- (or none) and `why`, the sentence that says what the page was chosen
-- for.  By medium:
--   email     the campaign's items (settings.landing.campaigns), else what
--             goes with what the reader bought, else bestsellers
--   paid, search
--             the bestsellers of the searched category: the campaign's
--             category, else the category of what visitors who searched
--             the ad's term (context.term, utm_term) went on to buy, else
--             the page's category; the term's own finds fill up
--   social    what is trending now
--   anything else (direct, referral, a returning visitor's own link)
--             the personalized home page of lib/recs.lua; its banner
--             says "picked for you" only to a visitor it knows something
--             of (see personal), the neutral "welcome" one to anyone else
-- A configured campaign wins over the medium for its items, banner and
-- offer.

local settings = require "lib.settings"
local recs = require "lib.recs"
local text = require "lib.text"

-- The last part of a category path: "Sport/Running" reads "Running".
local function leaf(category)
  return category and (category:match("([^/]+)$") or category) or nil
end

-- Where the session came from: the session's own source, else what the
-- storefront sent with the request (context.source is the medium, as in
-- segments.lua; context.campaign) while the page view is still on its way.
local function source_of(ctx)
  local s = ctx.session.source
  if s then return s end
  local c = ctx.context
  return { medium = c.source, campaign = c.campaign, source = c.utm_source }
end

-- Collects hero rows up to k, once each, never what is in the cart.
local function collector(ctx, k)
  local out, seen, cart = {}, {}, {}
  for _, id in ipairs(ctx.customer.cart) do seen[id] = true; cart[#cart + 1] = id end
  local self = { items = out }
  function self.add(rows, explain)
    for _, row in ipairs(rows) do
      if #out >= k then return end
      if not seen[row.id] and not recs.is_content(row.id) then
        seen[row.id] = true
        row.explain = row.explain or (type(explain) == "function" and explain(row))
                      or explain or text.explain(row, ctx)
        row.segment_label = nil
        out[#out + 1] = row
      end
    end
  end
  function self.full() return #out >= k end
  function self.opts(o)
    o.exclude = cart
    return o
  end
  return self
end

-- A category's bestsellers, widening to the parent while it has none.
local function category_bestsellers(hero, category, k)
  local c = category
  while c and c ~= "" do
    -- Only what is in the category now (its trend table keeps an item
    -- moved away under its old category).
    local rows = tailor.trending("category", c, hero.opts { k = k * 2, category = c })
    if #rows > 0 then
      hero.add(rows, "Popular in " .. leaf(c)) -- trending rows: see text.explain
      return c
    end
    c = c:match("^(.*)/[^/]*$")
  end
  return nil
end

local function trending(hero, k, explain)
  hero.add(tailor.trending(nil, nil, hero.opts { k = k * 2 }), explain)
  if not hero.full() then hero.add(tailor.most_viewed(k * 2, { exclude = hero.opts({}).exclude })) end
end

local by_medium = {}

function by_medium.email(ctx, hero, k, src)
  local bought = ctx.customer.bought
  if #bought > 0 then
    hero.add(tailor.complements(bought, hero.opts { k = k * 2 }))
  end
  if not hero.full() then trending(hero, k) end
  local label = src.campaign and ("our '" .. src.campaign .. "' email") or "our email"
  return { why = "You came from " .. label, label = src.campaign }
end

function by_medium.search(ctx, hero, k, src)
  local term = ctx.context.term or ctx.session.searches[1]
  local found = term and tailor.searched(term, hero.opts { k = k * 2 }) or {}
  local category = ctx.page.category
    or (found[1] and tailor.category(found[1].id))
    or (ctx.page.item and tailor.category(ctx.page.item))
  local used = category and category_bestsellers(hero, category, k)
  if not hero.full() then hero.add(found) end
  if not hero.full() then trending(hero, k) end
  local what = term and ("'" .. term .. "'") or leaf(used)
  return { why = what and ("You searched for " .. what) or "You came from a search",
           label = leaf(used) or term, category = used, term = term }
end
by_medium.paid = by_medium.search

function by_medium.social(ctx, hero, k, src)
  trending(hero, k, "Trending now")
  local from = src.source and (" from " .. src.source) or ""
  return { why = "You came" .. from .. ": here is what is popular right now" }
end

-- Direct, referral and anything else: the visitor's own home page.  It
-- says "picked for you" only when there is something of theirs it was
-- picked from: what they looked at (ctx.customer.recent) or ordered, with
-- personalization allowed (the host answers a visitor who declined it as
-- no one; the consent is read too, to be sure).  It names only what they
-- did: no "bought" to a visitor who never ordered.  Anyone else, a new
-- visitor or one who declined, gets the neutral banner ("welcome").
local function personal(ctx, hero, k)
  local home = setmetatable({ page = { type = "home" }, k = k }, { __index = ctx })
  hero.add(recs.recommend(home, {}))
  local c = ctx.customer
  local allowed = c.consent.personalization ~= false
  local viewed = allowed and #c.recent > 0
  local bought = allowed and c.orders > 0
  if not viewed and not bought then
    return { why = "What is popular in our shop, to start with", banner = "welcome" }
  end
  if viewed and bought then
    return { why = "Picked for you from what you looked at and bought", banner = "direct" }
  end
  if viewed then
    return { why = "Picked for you from what you looked at", banner = "direct_viewed" }
  end
  return { why = "Picked for you from what you bought", banner = "direct_bought" }
end

-- The campaign's own items, in the order given, then its category.
local function campaign_items(hero, k, cfg, name)
  local rows = {}
  for _, id in ipairs(cfg.items or {}) do
    local item = tailor.item(id)
    if item and item.in_stock then rows[#rows + 1] = { id = id, reason = "campaign" } end
  end
  hero.add(rows, "From our " .. (cfg.label or name) .. " selection")
  if cfg.category and not hero.full() then category_bestsellers(hero, cfg.category, k) end
end

-- "%s" in a banner is the label: the campaign, the category or the term.
local function banner(cfg, label)
  if not cfg then return nil end
  local function fill(s) return s and (s:gsub("%%s", label or "our shop")) end
  return { title = fill(cfg.title), text = fill(cfg.text) }
end

-- The offer of the campaign or medium; only for visitors who have not
-- ordered yet when it says new_only, and off once its coupon pool is empty.
local function offer(ctx, cfg)
  if not cfg then return nil end
  if cfg.new_only and ctx.customer.orders > 0 then return nil end
  local left = cfg.coupon and tailor.coupons_left(cfg.coupon)
  if left ~= nil and left <= 0 then return nil end
  return { name = cfg.name, title = cfg.title, percent = cfg.percent, coupon = cfg.coupon,
           free_shipping = cfg.free_shipping }
end

local function landing(ctx)
  local s = settings.landing
  local src = source_of(ctx)
  local medium = src.medium or "direct"
  local k = math.min(ctx.k, s.hero_items)
  local hero = collector(ctx, k)
  local campaign = src.campaign and s.campaigns[src.campaign]
  if campaign then campaign_items(hero, k, campaign, src.campaign) end
  local pick = by_medium[medium]
  local got = pick and pick(ctx, hero, k, src) or personal(ctx, hero, k)
  local kind = pick and medium or "direct"
  if kind == "paid" then kind = "search" end
  local label = campaign and (campaign.label or src.campaign) or got.label
  if campaign and campaign.why then got.why = campaign.why end
  return {
    medium = medium, source = src.source, campaign = src.campaign,
    hero = hero.items,
    banner = banner(campaign and campaign.banner or s.banners[got.banner or kind], label),
    offer = offer(ctx, campaign and campaign.offer or s.offers[kind]),
    why = got.why,
  }
end

return { landing = landing }
