-- Answers a careless strategy might give: ids that are not text, a ranking
-- that repeats or adds entries, field names that are not UTF-8, a discount
-- over more items than a fixed table would hold.  The case is the
-- request's context.case.
return {
  recommend = function(ctx)
    if ctx.context.case == "nul" then return { { id = "i1\0\255\254" } } end
    if ctx.context.case == "nul_text" then return { { id = "i1", explain = "a\0b" } } end
    return { { id = "i1" } }
  end,
  rank = function(ctx)
    local case, out = ctx.context.case, {}
    if case == "twice" then return { ctx.items[1], ctx.items[1] } end
    if case == "more" then
      for i = 1, 5 do out[i] = ctx.items[#ctx.items] end
      return out
    end
    for i = #ctx.items, 1, -1 do out[#out + 1] = ctx.items[i] end
    return out
  end,
  popup = function(ctx)
    if ctx.context.case == "key" then return { name = "p", ["\255k"] = 1 } end
    local bad = { string = "x", list = { 1, 2 }, mixed = { name = "p", "x" },
                  percent = { name = "p", percent = "ten" }, over = { name = "p", percent = 150 },
                  coupon = { name = "p", coupon = { code = "C-1" } }, name = { name = 7 },
                  expires = { name = "p", expires = "soon" } }
    if bad[ctx.context.case] then return bad[ctx.context.case] end
    return { name = "p", title = "ok" }
  end,
  discount = function(ctx)
    local case = ctx.context.case
    if case == "string" then return { percent = 50, items = "costly" } end
    if case == "category" then
      return { percent = 25, category = "Acc/Hats", reason = "We miss you: 25% off hats" }
    end
    local items = {}
    for i = 1, ctx.context.n do items[i] = "c" .. i end
    items[#items + 1] = "costly"
    return { percent = 50, items = items }
  end,
}
