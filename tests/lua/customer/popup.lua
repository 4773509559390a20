-- popup.lua (customer_spec): ctx.customer read one way or another
-- (ctx.context.mode); the answer carries what the strategy saw.
local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

local modes = {}

-- Written as JSON without a field read first.
function modes.json(ctx) return { customer = ctx.customer } end

-- Every field of ctx[what] named in context.keys read by name, one by
-- one, then the table as JSON.
local function named(ctx, what)
  local t, seen = ctx[what], {}
  for _, k in ipairs(ctx.context.keys) do seen[k] = t[k] == nil and "nil" or t[k] end
  return { seen = seen, [what] = t }
end

function modes.named(ctx) return named(ctx, "customer") end

-- next from a key, as from the start, walks the fields only.
function modes.walk(ctx)
  local c, keys, k = ctx.customer, {}, "id"
  repeat
    keys[#keys + 1] = type(k) == "string" and k or type(k)
    k = next(c, k)
  until k == nil
  return { keys = keys }
end

-- pairs, next, rawget and getmetatable see every field.
function modes.raw(ctx)
  local c = ctx.customer
  local r = { next = next(ctx.customer) ~= nil, rawget = rawget(ctx.customer, "orders"),
              meta = getmetatable(ctx.customer) == nil }
  r.fields = copy(c)
  return r
end

-- A field the strategy sets stays as it set it, also once its group is made;
-- one set to nil stays nil.
function modes.set(ctx)
  local c = ctx.customer
  c.orders, c.cart, c.recent = 99, { "mine" }, nil
  return { visits = c.visits, orders = c.orders, cart = c.cart, bought = c.bought,
           customer = c }
end

-- tailor.customer(id) is the same table as ctx.customer.
function modes.same(ctx)
  return { ctx = ctx.customer, api = tailor.customer(ctx.customer.id) }
end

-- ctx.session, whole as JSON, and read by name one field at a time.
function modes.session(ctx) return { session = ctx.session } end

function modes.session_named(ctx) return named(ctx, "session") end

return { popup = function(ctx) return modes[ctx.context.mode](ctx) end }
