-- A popup for value_spec: the visitor's customer table as the answer, so
-- its JSON shows what ctx.customer holds (a buyer's value figures too,
-- though nothing read them first).
return { popup = function(ctx) return { name = "whoami", customer = ctx.customer } end }
