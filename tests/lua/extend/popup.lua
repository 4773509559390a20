-- A merchant's folder that extends the shipped one (strategies_base) and
-- replaces its popup only.
return { popup = function(ctx) return { name = "merchant_offer", title = "Ours" } end }
