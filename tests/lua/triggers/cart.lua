-- cart.lua: a test strategy for the trigger mechanics: an email an hour
-- after a cart, cancelled by a purchase; a browse email per viewed item.
-- A refund and a signup exercise the event itself: its fields by pairs,
-- as JSON in vars, assigned, and kept for a later call.
local kept_signup

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
  elseif ev.type == "refund" then
    ev.seen = "yes" -- a handler may add to its event
    local keys = {}
    for k in pairs(ev) do keys[#keys + 1] = k end
    table.sort(keys)
    return { schedule = { {
      key = "refund:" .. who, template = "refund", delay = 60,
      vars = { event = ev, keys = table.concat(keys, ","), first = ev.items[1].id,
               color = ev.items[1].color, missing = ev.nothing == nil },
    } } }
  elseif ev.type == "signup" then
    kept_signup = ev -- kept: its ids stay readable, what is made from JSON does not
  elseif ev.type == "page_view" and kept_signup then
    local ok, msg = pcall(function() return kept_signup.props end)
    return { schedule = { {
      key = "late:" .. who, template = "late", delay = 60,
      vars = { kept_customer = kept_signup.customer, kept_type = kept_signup.type,
               late_ok = ok, late_msg = tostring(msg) },
    } } }
  elseif ev.type == "search" and ev.query == "long keys" then
    -- Keys past 511 bytes that share their first 511.
    return { schedule = {
      { key = "long:" .. string.rep("x", 600) .. "a", template = "t", delay = 60 },
      { key = "long:" .. string.rep("x", 506) .. "zz", template = "t", delay = 60 } } }
  elseif ev.type == "search" and ev.query == "cancel long" then
    return { cancel = { "long:" .. string.rep("x", 600) .. "*" } }
  elseif ev.type == "search" and ev.query:match("^delay ") then
    return { schedule = { { key = "far:" .. ev.query, template = "t",
                            delay = tonumber(ev.query:sub(7)) } } }
  elseif ev.type == "search" and ev.query:match("^due ") then
    return { schedule = { { key = "far:" .. ev.query, template = "t",
                            due = math.tointeger(tonumber(ev.query:sub(5))) } } }
  elseif ev.type == "search" and ev.query == "broken" then
    return { schedule = { { template = "no key" } } }
  end
end

return { on_event = on_event }
