-- recs.lua: which products to show, page by page, and why.  Used by
-- recommend.lua (the storefront's widgets) and triggers.lua (the items of
-- an email).
--
--   product page  bought together, then viewed together, then similar,
--                 then bestsellers for the visitor's segment
--   cart          complements of the whole cart
--   home          continue shopping (recently viewed), then bestsellers
--                 for the visitor's segment, nudged by their interests
--   category      bestsellers of the category for the visitor's segment
--   email         from the customer's purchase history
--
-- A page with two widgets names the one it asks for in page.widget:
-- "similar" on a product page puts similar items first; on the home page
-- "continue" is continue shopping alone and "bestsellers" the bestsellers
-- alone.
--
-- Everywhere: in stock, not in the cart, not bought already (unless the
-- category is replenishable), and never a second item of a category the
-- customer bought (no second sofa).  Each item says why it is there.

local settings = require "lib.settings"
local text = require "lib.text"

local category_of = tailor.category

local function replenishable(category)
  for _, prefix in ipairs(settings.replenishable) do
    if category and category:sub(1, #prefix) == prefix then return true end
  end
  return false
end

-- What this visitor must not be shown, and which categories they are done
-- with.
local function exclusions(ctx)
  local exclude, done = {}, {}
  for _, id in ipairs(ctx.customer.cart) do exclude[#exclude + 1] = id end
  for _, id in ipairs(ctx.customer.bought) do
    local category = category_of(id)
    if not replenishable(category) then
      exclude[#exclude + 1] = id
      if category then done[category] = true end
    end
  end
  if ctx.page.item then exclude[#exclude + 1] = ctx.page.item end
  -- What the page already shows in its other widgets (the request's exclude).
  for _, id in ipairs(ctx.exclude) do exclude[#exclude + 1] = id end
  return exclude, done
end

-- Collects rows from several kernels, in order, until k are found.
local function picker(ctx)
  local exclude, done = exclusions(ctx)
  local seen, out = {}, {}
  for _, id in ipairs(exclude) do seen[id] = true end
  local self = { items = out, exclude = exclude }
  function self.add(rows, decorate)
    for _, row in ipairs(rows) do
      if #out >= ctx.k then return end
      local category = category_of(row.id)
      if not seen[row.id] and not (category and done[category]) then
        seen[row.id] = true
        if decorate then decorate(row) end
        row.explain = row.explain or text.explain(row, ctx)
        out[#out + 1] = row
      end
    end
  end
  function self.full() return #out >= ctx.k end
  return self
end

-- The most specific bestseller list there is for this visitor.
local function bestsellers(ctx, opts)
  local a = ctx.customer.attrs
  local country = ctx.context.country or a.country
  local tries = {}
  if country and a.gender then tries[#tries + 1] = { "country+gender", country .. "|" .. a.gender } end
  if country then tries[#tries + 1] = { "country", country } end
  if a.gender then tries[#tries + 1] = { "gender", a.gender } end
  for _, t in ipairs(tries) do
    local rows = tailor.trending(t[1], t[2], opts)
    if #rows > 0 then
      local label = text.segment_label(t[1], t[2])
      -- Nudge towards what the visitor likes: a runner sees running first.
      local ids = {}
      for i, row in ipairs(rows) do ids[i] = row.id end
      local like = tailor.affinity(ctx.customer.id or ctx.customer.anon or "", ids)
      for _, row in ipairs(rows) do
        row.segment_label = label
        row.score = row.score * (1 + (like[row.id] or 0))
      end
      table.sort(rows, function(x, y)
        if x.score ~= y.score then return x.score > y.score end
        return x.id < y.id
      end)
      return rows
    end
  end
  return tailor.trending(nil, nil, opts)
end

-- Shown fields: strip what the host does not take.
local function rows_out(items)
  for _, row in ipairs(items) do row.segment_label = nil end
  return items
end

local pages = {}

function pages.product(ctx, pick)
  local item = ctx.page.item
  if ctx.page.widget == "similar" then
    pick.add(tailor.similar(item, { k = ctx.k * 2, exclude = pick.exclude }))
    if not pick.full() then pick.add(bestsellers(ctx, { k = ctx.k * 3, exclude = pick.exclude })) end
    return
  end
  local unit = ctx.customer.id or ctx.customer.anon or ctx.session.id or "anonymous"
  -- The shipped experiment: how "bought together" is scored.
  local measure = tailor.experiment("product_bought_together",
                                    { control = 50, cosine = 50 }, unit)
  local opts = { k = ctx.k * 2, exclude = pick.exclude, measure = measure == "cosine" and "cosine" or "also" }
  pick.add(tailor.also_bought(item, opts))
  -- What visitors looked at next in sessions like this one (the session
  -- kernel that `tailor eval` measures), else plain "viewed together".
  if not pick.full() and #ctx.session.items > 0 then
    pick.add(tailor.session_next(ctx.session.items, { k = ctx.k * 2, exclude = pick.exclude,
                                                      session = ctx.session.id }))
  end
  if not pick.full() then pick.add(tailor.viewed_together(item, { k = ctx.k * 2, exclude = pick.exclude })) end
  if not pick.full() then pick.add(tailor.similar(item, { k = ctx.k * 2, exclude = pick.exclude })) end
  if not pick.full() then pick.add(bestsellers(ctx, { k = ctx.k * 3, exclude = pick.exclude })) end
end

function pages.cart(ctx, pick)
  local cart = ctx.customer.cart
  if #cart > 0 then
    pick.add(tailor.also_bought(cart, { k = ctx.k * 3, exclude = pick.exclude }))
    if not pick.full() then pick.add(tailor.viewed_together(cart, { k = ctx.k * 2, exclude = pick.exclude })) end
  end
  if not pick.full() then pick.add(bestsellers(ctx, { k = ctx.k * 3, exclude = pick.exclude })) end
end

function pages.home(ctx, pick)
  local widget = ctx.page.widget
  -- Continue shopping: what they looked at, newest first.
  local recent = widget ~= "bestsellers" and ctx.customer.recent or {}
  local rows = {}
  for i = #recent, 1, -1 do
    local item = tailor.item(recent[i])
    if item and item.in_stock then rows[#rows + 1] = { id = recent[i], reason = "recently_viewed" } end
  end
  pick.add(rows)
  if widget ~= "continue" and not pick.full() then pick.add(bestsellers(ctx, { k = ctx.k * 3, exclude = pick.exclude })) end
end

function pages.category(ctx, pick)
  local category = ctx.page.category
  if category then
    local rows = tailor.trending("category", category, { k = ctx.k * 2, exclude = pick.exclude })
    for _, row in ipairs(rows) do row.segment_label = text.segment_label("category", category) end
    pick.add(rows)
  end
  if not pick.full() then pick.add(bestsellers(ctx, { k = ctx.k * 3, exclude = pick.exclude, category = category })) end
end

function pages.email(ctx, pick)
  local bought = ctx.customer.bought
  if #bought > 0 then pick.add(tailor.also_bought(bought, { k = ctx.k * 3, exclude = pick.exclude })) end
  if not pick.full() then pick.add(bestsellers(ctx, { k = ctx.k * 3, exclude = pick.exclude })) end
end

local M = {}

-- The items for ctx.page (type product, cart, home, category or email).
function M.recommend(ctx)
  local pick = picker(ctx)
  local page = pages[ctx.page.type or "home"] or pages.home
  page(ctx, pick)
  return rows_out(pick.items)
end

-- The items of an email for a customer: ctx as on_event gets it.
function M.for_email(ctx, k)
  local email_ctx = setmetatable({ page = { type = "email" }, k = k }, { __index = ctx })
  return M.recommend(email_ctx)
end

return M
