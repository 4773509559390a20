-- recommend.lua: a test strategy that runs one experiment and says which
-- variant a visitor got.
local function recommend(ctx)
  local unit = ctx.customer.id or ctx.customer.anon
  local v = tailor.experiment("recs", { control = 50, treatment = 50 }, unit)
  return { { id = "a", explain = v } }
end

-- The variants of the request's context, for the checks of the table.
local function split(ctx)
  return { variant = tailor.experiment(ctx.context.name, ctx.context.variants, ctx.customer.anon) }
end

return { recommend = recommend, split = split }
