-- text.lua: the sentences shown under recommendations and in emails.
-- Explanations are built from the reason a kernel gives and the item it
-- came from, with the item's name from the catalog.

local M = {}

local item_of = tailor.item

local function name_of(id)
  return id and item_of(id, "name") or id or "this"
end

local function ago(ms, now)
  local days = math.floor((now - ms) / 86400000)
  if days <= 0 then return "today" end
  if days == 1 then return "yesterday" end
  return days .. " days ago"
end

-- One explanation for a row of a kernel ({id, reason, because}); for
-- "searched" rows `because` is the search term, not an item.
function M.explain(row, ctx)
  local because = row.because
  if type(because) == "table" then because = because[1] end
  if row.reason == "bought_together" then
    return "Customers who bought " .. name_of(because) .. " also bought this"
  elseif row.reason == "viewed_together" then
    return "Shoppers who looked at " .. name_of(because) .. " also looked at this"
  elseif row.reason == "session" then
    return "Picked for what you are browsing now"
  elseif row.reason == "similar" then
    return "Similar to " .. name_of(because)
  elseif row.reason == "recently_viewed" then
    local when = row.viewed_at and (" " .. ago(row.viewed_at, ctx.now)) or ""
    return "You viewed this" .. when
  elseif row.reason == "searched" then
    return "Because you searched '" .. tostring(because) .. "'"
  elseif row.reason == "guide" then
    return "Readers of this guide went on to " .. name_of(because)
  elseif row.reason == "after_reading" then
    return "Readers of " .. name_of(because) .. " went on to this"
  elseif row.reason == "read_next" then
    return "Read next after " .. name_of(because)
  elseif row.reason == "trending" then
    -- "Popular", not "Bestseller": tailor.trending scores views 1, carts 3
    -- and purchases 5, so a row may have no sale at all (a much viewed
    -- item), and its score cannot tell one sale from five views.  Nor can
    -- tailor.item's `purchases` vouch for it: a lifetime, shop-wide count
    -- says nothing of "right now" or "in Germany".  Popular is true of
    -- every row.
    local s = row.segment_label and ("Popular " .. row.segment_label) or "Popular right now"
    return row.style and (s .. ", in your " .. row.style .. " style") or s
  end
  return "Popular right now"
end

-- "among runners in Germany": a human label for the segment a trending
-- ("bestseller") list was computed for.
function M.segment_label(key, value)
  if key == "country" then return "in " .. (M.countries[value] or value) end
  if key == "category" then return "in " .. value end
  if key == "gender" then return "among " .. (value == "female" and "women" or value == "male" and "men" or value) end
  if key == "country+gender" then
    local country, gender = value:match("^(.-)|(.*)$")
    return M.segment_label("gender", gender) .. " " .. M.segment_label("country", country)
  end
  return "for you"
end

M.countries = { DE = "Germany", FR = "France", GB = "the UK", US = "the US",
                NL = "the Netherlands", IT = "Italy", ES = "Spain", AT = "Austria" }

return M
