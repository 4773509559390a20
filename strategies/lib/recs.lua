-- recs.lua: which products to show, page by page, and why.  Used by
-- recommend.lua (the storefront's widgets) and triggers.lua (the items of
-- an email).
--
--   product page  bought together, then viewed together, then similar,
--                 then bestsellers for the visitor's segment
--   cart          complements of the whole cart
--   home          continue shopping (recently viewed), then what visitors
--                 went on to buy after this session's searches, then
--                 bestsellers for the visitor's segment, nudged by their
--                 interests
--   search        what visitors viewed and bought after searching
--                 page.query, then bestsellers
--   category      bestsellers of the category for the visitor's segment
--   email         from the customer's purchase history
--
-- Bestseller rows (tailor.trending: views, carts and sales, so shown as
-- "Popular ...", lib/text.lua), wherever they show, follow what the visitor said in the
-- quiz (ctx.customer.prefs, settings.prefs): within their budget, and
-- their style's categories first.
--
-- A page with two widgets names the one it asks for in page.widget:
-- "similar" on a product page puts similar items first; on the home page
-- "continue" is continue shopping alone and "bestsellers" the bestsellers
-- alone.
--
-- Everywhere: in stock, not in the cart, and what was bought stays away
-- with its substitutes for the replacement interval of its category
-- (tailor.substitutes, tailor.replacement_days: learned from the shop's
-- data): after a sofa no second sofa, but cushions (complements are not
-- substitutes); after running shoes socks and shirts, and new shoes once
-- the shoes are due.  Replenishable categories come back at once.  "Bought
-- together" rows are complements (tailor.complements: enough support and
-- lift, so a sofa bought months after a jacket does not turn up on the
-- jacket page).  Continue shopping shows what the visitor looked at even
-- when it is a substitute: they looked.  Each item says why it is there.
--
-- Merchandising: the request's controls (ctx.filter, ctx.pin, ctx.boost,
-- ctx.bury) and the shop's own (settings.merchandising, the same shape, or
-- what a handler passes to M.recommend) are merged by M.controls; the
-- filter goes into every kernel call, so a widget limited to one brand is
-- still full, and M.merchandise boosts, buries and pins as the host does.

local settings = require "lib.settings"
local text = require "lib.text"

local category_of, item_of = tailor.category, tailor.item

local M = {}

local function replenishable(category)
  for _, prefix in ipairs(settings.replenishable) do
    if category and category:sub(1, #prefix) == prefix then return true end
  end
  return false
end

-- ---- Merchandising controls ------------------------------------------------

local function as_list(v)
  if v == nil then return nil end
  if type(v) == "string" then return { v } end
  return v
end

local function append(list, ids)
  if not ids then return end
  for _, id in ipairs(ids) do list[#list + 1] = id end
end

-- Pins of `src` into `pins`, each slot and each item once (`taken`).
local function add_pins(pins, src, taken)
  if not src then return end
  for _, p in ipairs(src) do
    if not taken.slot[p.slot] and not taken.item[p.item] then
      taken.slot[p.slot], taken.item[p.item] = true, true
      pins[#pins + 1] = { item = p.item, slot = p.slot }
    end
  end
end

local function by_slot(x, y) return x.slot < y.slot end

-- The request's controls (ctx) and the strategy's own (`own`, shaped like
-- a request's: {filter = {brand, min_price, max_price, in_stock}, pin =
-- {{item, slot}}, boost = {ids or "brand:<name>"}, bury = {...}}) as one:
-- both filters hold (brands in both lists, the narrower price band; sold
-- out items only when the request allows them and `own` does not refuse
-- them); the request's boosts, buries and pins come first, and a pin of
-- `own` keeps its slot only when the request did not take it.
function M.controls(ctx, own)
  own = own or {}
  local f, of = ctx.filter or {}, own.filter or {}
  local rb, ob = as_list(f.brand), as_list(of.brand)
  local brand = rb or ob
  if rb and ob then
    local mine = {}
    brand = {}
    for _, b in ipairs(ob) do mine[b] = true end
    for _, b in ipairs(rb) do if mine[b] then brand[#brand + 1] = b end end
  end
  local min_price = math.max(f.min_price or 0, of.min_price or 0)
  local filter = {
    in_stock = f.in_stock ~= false or of.in_stock == true,
    brand = brand,
    min_price = min_price ~= 0 and min_price or nil,
    max_price = (f.max_price and of.max_price) and math.min(f.max_price, of.max_price)
                or f.max_price or of.max_price,
  }
  local c = { filter = filter, boost = {}, bury = {}, pin = {} }
  append(c.boost, ctx.boost)
  append(c.boost, own.boost)
  append(c.bury, ctx.bury)
  append(c.bury, own.bury)
  local pins, own_pins = ctx.pin, own.pin
  if (pins and #pins > 0) or (own_pins and #own_pins > 0) then
    local taken = { slot = {}, item = {} }
    add_pins(c.pin, pins, taken)
    add_pins(c.pin, own_pins, taken)
    table.sort(c.pin, by_slot)
  end
  return c
end

-- Kernel options with the controls' filter in them (tailor.* filters
-- inside the kernel, so k items of the right brand come back).
function M.kernel_opts(c, opts)
  local f = c.filter
  opts.in_stock = f.in_stock
  opts.brand, opts.min_price, opts.max_price = f.brand, f.min_price, f.max_price
  return opts
end

local function brand_set(list)
  if not list then return nil end
  local set = {}
  for _, b in ipairs(list) do set[b] = true end
  return set
end

-- Whether the filter keeps an item (for rows that come from no kernel).
function M.keeps(c, id)
  local f = c.filter
  local item = item_of(id)
  if not item then return false end
  if f.in_stock and not item.in_stock then return false end
  if f.brand and not brand_set(f.brand)[item.brand or false] then return false end
  local price = item.price or 0
  if f.min_price and price < f.min_price then return false end
  if f.max_price and price > f.max_price then return false end
  return true
end

local function named(list, id, brand)
  for _, v in ipairs(list) do
    if v == id or (brand and v == "brand:" .. brand) then return true end
  end
  return false
end

-- rows (best first) as the controls arrange them, at most k: filtered,
-- boosted ahead, buried behind, pinned items in their slots (a pinned item
-- not among the rows gets reason "pinned"; one that is sold out or in
-- `skip`, a set of ids not to show, gives its slot to the next row).  The
-- host does the same again with the request's controls: what a strategy
-- arranges, the host keeps.
function M.merchandise(rows, c, k, skip)
  local filtering = c.filter.brand or c.filter.min_price or c.filter.max_price
  if not filtering and #c.pin == 0 and #c.boost == 0 and #c.bury == 0 then
    local out = {} -- nothing to arrange: the first k rows
    for i = 1, math.min(k, #rows) do out[i] = rows[i] end
    return out
  end
  skip = skip or {}
  local pins, pinned = {}, {}
  for _, p in ipairs(c.pin) do
    local item = item_of(p.item)
    if p.slot <= k and item and not skip[p.item] and (item.in_stock or not c.filter.in_stock) then
      pins[p.slot] = p.item
      pinned[p.item] = { id = p.item, reason = "pinned", explain = "Featured" }
    end
  end
  local groups = { {}, {}, {} }
  local needs_brand = filtering or #c.boost > 0 or #c.bury > 0
  for _, row in ipairs(rows) do
    if pinned[row.id] then
      pinned[row.id] = row
    elseif not filtering or M.keeps(c, row.id) then
      local brand = needs_brand and item_of(row.id, "brand")
      local g = named(c.bury, row.id, brand) and 3 or named(c.boost, row.id, brand) and 1 or 2
      groups[g][#groups[g] + 1] = row
    end
  end
  local rest = {}
  for _, g in ipairs(groups) do for _, row in ipairs(g) do rest[#rest + 1] = row end end
  local out, next_rest = {}, 1
  for slot = 1, k do
    if pins[slot] then
      out[#out + 1] = pinned[pins[slot]]
      pins[slot] = nil
    elseif rest[next_rest] then
      out[#out + 1] = rest[next_rest]
      next_rest = next_rest + 1
    end
  end
  for slot = 1, k do  -- pins past the end of a short list: last
    if pins[slot] and #out < k then out[#out + 1] = pinned[pins[slot]] end
  end
  return out
end

-- Bought items whose substitutes are looked up (the newest), and how many
-- substitutes each.
local RECENT_BOUGHT, SUBSTITUTES = 20, 50
local DAY_MS = 86400000

-- What this visitor must not be shown (a list, for the kernels), and the
-- substitutes of what they bought lately (a set: hidden too, except from
-- continue shopping).
local function exclusions(ctx)
  local exclude, hidden, customer = {}, {}, ctx.customer
  for _, id in ipairs(customer.cart) do exclude[#exclude + 1] = id end
  local bought = customer.bought
  local at = #bought > 0 and customer.bought_at or {}
  for i = #bought, 1, -1 do
    local id = bought[i]
    -- Bought when is not known (an old checkpoint): as if just now.
    local due = at[id] and ctx.now - at[id] >= tailor.replacement_days(id) * DAY_MS
    if not replenishable(category_of(id)) and not due then
      exclude[#exclude + 1] = id
      if i > #bought - RECENT_BOUGHT then
        for _, row in ipairs(tailor.substitutes(id, { k = SUBSTITUTES })) do
          hidden[row.id] = true
        end
      end
    end
  end
  local item = ctx.page.item
  if item then exclude[#exclude + 1] = item end
  -- What the page already shows in its other widgets (the request's exclude).
  for _, id in ipairs(ctx.exclude) do exclude[#exclude + 1] = id end
  return exclude, hidden
end

-- Collects rows from several kernels, in order, until the widget is full:
-- k rows, or 2k when boosts and buries may reorder them (M.merchandise
-- cuts to k).  pick.opts(opts) adds the exclusions and the filter to a
-- kernel's options.
local function picker(ctx, c)
  local exclude, hidden = exclusions(ctx)
  local seen, out = {}, {}
  for _, id in ipairs(exclude) do seen[id] = true end
  local skip = {}
  for id in pairs(seen) do skip[id] = true end
  -- The kernels skip the substitutes too, so they fill the widget.
  local kernel_exclude = {}
  for _, id in ipairs(exclude) do kernel_exclude[#kernel_exclude + 1] = id end
  for id in pairs(hidden) do kernel_exclude[#kernel_exclude + 1] = id end
  table.sort(kernel_exclude)
  local limit = (#c.boost > 0 or #c.bury > 0) and ctx.k * 2 or ctx.k
  local filtering = c.filter.brand or c.filter.min_price or c.filter.max_price
  local self = { items = out, exclude = kernel_exclude, skip = skip }
  function self.opts(opts)
    opts.exclude = kernel_exclude
    return M.kernel_opts(c, opts)
  end
  function self.add(rows, decorate, content)
    for _, row in ipairs(rows) do
      if #out >= limit then return end
      if not seen[row.id] and (row.reason == "recently_viewed" or not hidden[row.id])
         and (content or not M.is_content(row.id))
         and (not filtering or M.keeps(c, row.id)) then
        seen[row.id] = true
        if decorate then decorate(row) end
        row.explain = row.explain or text.explain(row, ctx)
        out[#out + 1] = row
      end
    end
  end
  function self.full() return #out >= limit end
  return self
end

-- The visitor's segment's bestsellers, most specific first (country and
-- gender, country, gender), each list nudged by the visitor's interests;
-- while fewer than opts.k rows, the broader lists fill up with rows not
-- yet listed, and at last everyone's: one German sale does not leave a
-- home page of four with one item.  Each row keeps the label of the list it
-- came from (a shop-wide row is not "in Germany").
local function segment_bestsellers(ctx, opts)
  local a = ctx.customer.attrs
  local country = ctx.context.country or a.country
  local tries = {}
  if country and a.gender then tries[#tries + 1] = { "country+gender", country .. "|" .. a.gender } end
  if country then tries[#tries + 1] = { "country", country } end
  if a.gender then tries[#tries + 1] = { "gender", a.gender } end
  local want = opts.k or 10
  local out, listed = {}, {}
  -- tier: the list a row came from, 1 the most specific; a merge of such
  -- lists (bestsellers' style rows) keeps the segment's rows ahead of the
  -- filler, whose scores, shop-wide, are larger.
  local function add(rows, tier)
    for _, row in ipairs(rows) do
      if #out >= want then return end
      if not listed[row.id] then
        listed[row.id] = true
        row.tier = tier
        out[#out + 1] = row
      end
    end
  end
  local who = ctx.customer.id or ctx.customer.anon or ""
  for tier, t in ipairs(tries) do
    if #out >= want then return out end
    local rows = tailor.trending(t[1], t[2], opts)
    if #rows > 0 then
      local label = text.segment_label(t[1], t[2])
      -- Nudge towards what the visitor likes: a runner sees running first.
      local ids = {}
      for i, row in ipairs(rows) do ids[i] = row.id end
      local like = tailor.affinity(who, ids)
      for _, row in ipairs(rows) do
        row.segment_label = label
        row.score = row.score * (1 + (like[row.id] or 0))
      end
      table.sort(rows, function(x, y)
        if x.score ~= y.score then return x.score > y.score end
        return x.id < y.id
      end)
      add(rows, tier)
    end
  end
  if #out == 0 then return tailor.trending(nil, nil, opts) end
  if #out < want then add(tailor.trending(nil, nil, opts), #tries + 1) end
  return out
end

-- What the visitor told the shop in the quiz (ctx.customer.prefs, see
-- settings.prefs): a budget caps the price of bestseller rows; a style
-- puts the bestsellers of its categories first (not on a category page,
-- whose category wins), each saying so.
local function bestsellers(ctx, opts)
  local prefs, P = ctx.customer.prefs or {}, settings.prefs
  local budget = P.budget and tonumber(prefs.budget)
  if budget then opts.max_price = math.min(opts.max_price or budget, budget) end
  local rows = segment_bestsellers(ctx, opts)
  local categories = not opts.category and prefs.style and P.styles[prefs.style]
  if not categories then return rows end
  local first, seen = {}, {}
  for _, category in ipairs(categories) do
    local o = {}
    for key, v in pairs(opts) do o[key] = v end
    o.category = category
    for _, row in ipairs(segment_bestsellers(ctx, o)) do
      if not seen[row.id] then
        seen[row.id] = true
        row.style = prefs.style
        first[#first + 1] = row
      end
    end
  end
  table.sort(first, function(x, y)
    local tx, ty = x.tier or math.huge, y.tier or math.huge
    if tx ~= ty then return tx < ty end
    if x.score ~= y.score then return x.score > y.score end
    return x.id < y.id
  end)
  for _, row in ipairs(rows) do
    if not seen[row.id] then first[#first + 1] = row end
  end
  return first
end

-- Shown fields: strip what the host does not take.
local function rows_out(items)
  for _, row in ipairs(items) do
    if row.segment_label ~= nil or row.style ~= nil or row.tier ~= nil then
      row.segment_label, row.style, row.tier = nil, nil, nil
    end
  end
  return items
end

local pages = {}

-- A guide or blog post (catalog kind "content"): kept out of product rows.
function M.is_content(id)
  return item_of(id, "kind") == "content"
end

-- A guide's page: what its readers went on to buy, then what they read next.
function pages.content(ctx, pick)
  local item = ctx.page.item
  pick.add(tailor.products_for(item, pick.opts { k = ctx.k * 2 }))
  if not pick.full() then pick.add(tailor.read_next(item, pick.opts { k = ctx.k }), nil, true) end
  if not pick.full() then pick.add(bestsellers(ctx, pick.opts { k = ctx.k * 3 })) end
end

-- The guide whose readers went on to this product, in the last slot.
local function guide_for(ctx, pick, item)
  if not settings.content.guide_on_product or ctx.page.widget == "similar" then return end
  local guide = tailor.content_for(item, pick.opts { k = 1 })[1]
  if not guide or guide.score < settings.content.min_score then return end
  if pick.full() then table.remove(pick.items) end
  pick.add({ guide }, nil, true)
end

function pages.product(ctx, pick)
  local page, k = ctx.page, ctx.k
  local item = page.item
  if item and M.is_content(item) then return pages.content(ctx, pick) end
  if page.widget == "similar" then
    pick.add(tailor.similar(item, pick.opts { k = k * 2 }))
    if not pick.full() then pick.add(bestsellers(ctx, pick.opts { k = k * 3 })) end
    return
  end
  local customer = ctx.customer
  local unit = customer.id or customer.anon or ctx.session.id or "anonymous"
  -- The shipped experiment: how "bought together" is scored.
  local measure = tailor.experiment("product_bought_together",
                                    { control = 50, cosine = 50 }, unit)
  local opts = pick.opts { k = k * 2, measure = measure == "cosine" and "cosine" or "also" }
  pick.add(tailor.complements(item, opts))
  -- What visitors looked at next in sessions like this one (the session
  -- kernel that `tailor eval` measures: the shop's tuned parameters and
  -- re-ranker when the config has index.tuned), else plain "viewed together".
  if not pick.full() then
    local session = ctx.session
    if #session.items > 0 then
      pick.add(tailor.session_next(session.items, pick.opts { k = k * 2, session = session.id }))
    end
  end
  if not pick.full() then pick.add(tailor.viewed_together(item, pick.opts { k = k * 2 })) end
  if not pick.full() then pick.add(tailor.similar(item, pick.opts { k = k * 2 })) end
  if not pick.full() then pick.add(bestsellers(ctx, pick.opts { k = k * 3 })) end
  guide_for(ctx, pick, item)
end

function pages.cart(ctx, pick)
  local cart = ctx.customer.cart
  if #cart > 0 then
    pick.add(tailor.complements(cart, pick.opts { k = ctx.k * 3 }))
    if not pick.full() then pick.add(tailor.viewed_together(cart, pick.opts { k = ctx.k * 2 })) end
  end
  if not pick.full() then pick.add(bestsellers(ctx, pick.opts { k = ctx.k * 3 })) end
end

function pages.home(ctx, pick)
  local widget = ctx.page.widget
  -- Continue shopping: what they looked at, newest first.
  local recent = widget ~= "bestsellers" and ctx.customer.recent or {}
  local rows = {}
  for i = #recent, 1, -1 do
    if item_of(recent[i], "in_stock") then
      rows[#rows + 1] = { id = recent[i], reason = "recently_viewed" }
    end
  end
  pick.add(rows)
  -- Because you searched: the session's terms, newest first.
  if widget ~= "continue" and widget ~= "bestsellers" then
    for _, term in ipairs(ctx.session.searches) do
      if pick.full() then break end
      pick.add(tailor.searched(term, pick.opts { k = ctx.k * 2 }))
    end
  end
  if widget ~= "continue" and not pick.full() then pick.add(bestsellers(ctx, pick.opts { k = ctx.k * 3 })) end
end

function pages.search(ctx, pick)
  local query = ctx.page.query or ctx.session.searches[1]
  if query then pick.add(tailor.searched(query, pick.opts { k = ctx.k * 2 })) end
  if not pick.full() then pick.add(bestsellers(ctx, pick.opts { k = ctx.k * 3 })) end
end

function pages.category(ctx, pick)
  local category = ctx.page.category
  if category then
    -- The category's trend table counts events under the category an item
    -- had when they came: the filter keeps only what is in it now, so an
    -- item moved away leaves the page (and one moved in comes with the
    -- bestsellers below).
    local rows = tailor.trending("category", category, pick.opts { k = ctx.k * 2, category = category })
    for _, row in ipairs(rows) do row.segment_label = text.segment_label("category", category) end
    pick.add(rows)
  end
  if not pick.full() then pick.add(bestsellers(ctx, pick.opts { k = ctx.k * 3, category = category })) end
end

function pages.email(ctx, pick)
  local bought = ctx.customer.bought
  if #bought > 0 then pick.add(tailor.complements(bought, pick.opts { k = ctx.k * 3 })) end
  if not pick.full() then pick.add(bestsellers(ctx, pick.opts { k = ctx.k * 3 })) end
end

-- The items for ctx.page (type product, cart, home, search, category or email),
-- under the request's merchandising controls and `own` (the strategy's;
-- settings.merchandising when not given).
function M.recommend(ctx, own)
  local c = M.controls(ctx, own or settings.merchandising)
  local pick = picker(ctx, c)
  local page = pages[ctx.page.type or "home"] or pages.home
  page(ctx, pick)
  return rows_out(M.merchandise(pick.items, c, ctx.k, pick.skip))
end

-- The items of an email for a customer: ctx as on_event gets it.
function M.for_email(ctx, k)
  local email_ctx = setmetatable({ page = { type = "email" }, k = k }, { __index = ctx })
  return M.recommend(email_ctx)
end

return M
