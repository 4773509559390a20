-- popup.lua: a popup that gives up when its coupon is capped (tailor.coupon
-- answers nil), as the shipped one does: the answer still says which cap.
return {
  caps = { per_day = 5, per_campaign = 1 },
  popup = function(ctx)
    local c = tailor.coupon("ten", { percent = 10 })
    if not c then return nil end
    return { name = "other", percent = 10, coupon = c.code }
  end,
}
