-- discount.lua: the discount tier a customer gets, one at a time (never
-- stacked).  A lapsed customer gets the win-back tier on the category they
-- used to buy; otherwise the tier follows their predicted value (none
-- while the shop has too few repeat customers for a value model: the
-- value is then -1 and the vip and high_value segments are empty).  The
-- engine caps every percent so no item falls below the configured margin
-- over its cost (discounts.min_margin_pct): a strategy cannot get that
-- wrong.

local settings = require "lib.settings"

-- The category a customer bought most from.
local function usual_category(ctx)
  local count, best, best_n = {}, nil, 0
  for _, id in ipairs(ctx.customer.bought) do
    local c = tailor.category(id)
    if c then
      count[c] = (count[c] or 0) + 1
      if count[c] > best_n or (count[c] == best_n and c < best) then best, best_n = c, count[c] end
    end
  end
  return best
end

local function discount(ctx)
  local d, c = settings.discount, ctx.customer
  if c.orders > 0 and c.days_since_order >= d.win_back_after_days then
    return { tier = "win_back", percent = d.win_back_percent, category = usual_category(ctx),
             reason = "We miss you: " .. d.win_back_percent .. "% off what you used to buy" }
  end
  if ctx.segments.vip then
    return { tier = "vip", percent = d.tiers.vip, reason = "VIP pricing" }
  end
  if ctx.segments.high_value then
    return { tier = "high_value", percent = d.tiers.high, reason = "Thanks for shopping with us" }
  end
  if c.orders == 0 and d.first_order_percent > 0 then
    return { tier = "first_order", percent = d.first_order_percent, reason = "Welcome" }
  end
  return nil
end

return { discount = discount }
