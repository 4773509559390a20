-- A strategy for decide_spec: tailor.item's copies, a read-only ctx, rank.
return {
  recommend = function(ctx)
    if ctx.page.type == "mutate" then
      local it = tailor.item("a")
      it.name = "changed"
      it.tags[1] = "x"
      local again = tailor.item("a")
      return { { id = "a", explain = again.name .. "/" .. again.tags[1] } }
    elseif ctx.page.type == "everything" then
      -- Returns what the page already shows too: the host drops it.
      return { { id = "a" }, { id = "b" } }
    elseif ctx.page.type == "write_ctx" then
      ctx.k = 99
    end
    local it = tailor.item("a")
    return { { id = "a", score = 0.5, explain = it.name .. ":" .. tostring(it.price) } }
  end,
  rank = function(ctx)
    local out = {}
    for i = #ctx.items, 1, -1 do out[#out + 1] = ctx.items[i] end
    return out
  end,
}
