-- A strategy for decide_spec: tailor.item's copies, a read-only ctx, rank,
-- the request's merchandising controls, a ctx kept past its call, a
-- buyer's value figures.
local kept
return {
  recommend = function(ctx)
    if ctx.page.type == "mutate" then
      local it = tailor.item("a")
      it.name = "changed"
      it.tags[1] = "x"
      local again = tailor.item("a")
      return { { id = "a", explain = again.name .. "/" .. again.tags[1] } }
    elseif ctx.page.type == "huge" then
      -- One 6 MiB string in the state, written once per item and field,
      -- as \u0001 (6 bytes a byte): far past 32 MiB of answer.
      if ctx.context.plain then -- plain text: the second string would pass the limit
        local s = string.rep("a", 20 * 1024 * 1024)
        return { { id = "a", explain = s }, { id = "b", explain = s } }
      end
      local big = string.rep("\1", 6 * 1024 * 1024)
      local out = {}
      for i, id in ipairs { "a", "b", "c", "e" } do out[i] = { id = id, explain = big, reason = big } end
      return out
    elseif ctx.page.type == "everything" then
      -- Returns what the page already shows too: the host drops it.
      return { { id = "a" }, { id = "b" } }
    elseif ctx.page.type == "list" then
      -- The ids the test names, in its order: the host's controls arrange them.
      local out = {}
      for i, id in ipairs(ctx.context.ids) do out[i] = { id = id, explain = "listed" } end
      return out
    elseif ctx.page.type == "controls" then
      -- What the strategy sees of the request's controls.
      local f = ctx.filter
      return { { id = "a", explain = table.concat(f.brand or {}, "+") .. "|" .. tostring(f.min_price)
        .. "|" .. tostring(f.max_price) .. "|" .. tostring(f.in_stock) .. "|" .. #ctx.pin
        .. "|" .. (ctx.pin[1] and ctx.pin[1].item .. "@" .. ctx.pin[1].slot or "")
        .. "|" .. table.concat(ctx.boost, "+") .. "|" .. table.concat(ctx.bury, "+") } }
    elseif ctx.page.type == "field" then
      -- One field at a time: live figures, catalog fields, a nested copy.
      local tags = tailor.item("a", "tags")
      tags[1] = "changed"
      local parts = { tailor.item("a", "name"), tostring(tailor.item("a", "price")),
                      tostring(tailor.item("a", "in_stock")), tostring(tailor.item("a", "views")),
                      tailor.item("a", "tags")[1], tostring(tailor.item("a", "nope")),
                      tostring(tailor.item("zzz", "name")), tailor.item("b", "id") }
      return { { id = "a", explain = table.concat(parts, "|") } }
    elseif ctx.page.type == "affinities" then
      local c, b = ctx.customer.categories, ctx.customer.brands
      return { { id = "a", explain = #c .. ":" .. (c[1] and c[1].name or "-") .. "|"
                                     .. #b .. ":" .. (b[1] and b[1].name or "-") } }
    elseif ctx.page.type == "value" then
      -- A buyer's value figures, read from ctx and listed by pairs over
      -- tailor.customer (both are worked out when first asked for).
      local listed = {}
      for key in pairs(tailor.customer(ctx.customer.id)) do
        if key == "p_alive" or key == "expected_orders" or key == "predicted_value" then
          listed[#listed + 1] = key
        end
      end
      table.sort(listed)
      local c = ctx.customer
      return { { id = ctx.page.item, explain = table.concat(listed, ",") .. "|" .. c.p_alive
                                               .. "|" .. c.expected_orders .. "|" .. c.predicted_value } }
    elseif ctx.page.type == "error_table" then
      error({ code = 42 })
    elseif ctx.page.type == "error_tostring_fails" then
      error(setmetatable({}, { __tostring = function() return {} end }))
    elseif ctx.page.type == "error_tostring_loops" then
      local t = setmetatable({}, {})
      getmetatable(t).__tostring = function(s) return tostring(s) end
      error(t)
    elseif ctx.page.type == "error_tostring" then
      error(setmetatable({}, { __tostring = function() return "out of hats" end }))
    elseif ctx.page.type == "boom" then
      error("boom")
    elseif ctx.page.type == "write_ctx" then
      ctx.k = 99
    elseif ctx.page.type == "pairs_ctx" then
      local n = 0
      for _ in pairs(ctx) do n = n + 1 end -- lists nothing, even after reads
      return { { id = "a", explain = n .. "|" .. ctx.kind .. "|" .. tostring(getmetatable(ctx)) } }
    elseif ctx.page.type == "keep" then
      kept = ctx -- read page now, context never in this call
      return { { id = "a", explain = "kept" } }
    elseif ctx.page.type == "late_page" then
      return { { id = "a", explain = kept.page.type .. "/" .. kept.kind .. "/" .. tostring(kept.items)
                                     .. "/" .. tostring(kept.customer.anon) } }
    elseif ctx.page.type == "late_context" then
      return { { id = "a", explain = tostring(kept.context.x) } }
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
