-- cart.lua: a test strategy for the trigger mechanics: an email an hour
-- after a cart, cancelled by a purchase; a browse email per viewed item.
local function on_event(ctx, ev)
  local who = ctx.customer.id
  if not who then return nil end
  if ev.type == "add_to_cart" then
    return { schedule = { {
      key = "cart:" .. who, template = "abandoned_cart", delay = 3600,
      vars = { item = ev.item, lifecycle = ctx.customer.lifecycle },
    } } }
  elseif ev.type == "view" then
    return { schedule = { { key = "browse:" .. who .. ":" .. ev.item,
                            template = "browse_abandonment", delay = 7200 } } }
  elseif ev.type == "purchase" then
    return { cancel = { "cart:" .. who } }
  elseif ev.type == "search" and ev.query == "broken" then
    return { schedule = { { template = "no key" } } }
  end
end

return { on_event = on_event }
