-- caps.lua: frequency caps across channels, which the host enforces over
-- every handler (docs/strategies.md, "caps"): popups answered, coupons
-- tailor.coupon issues and emails on_event schedules are each a contact
-- of the visitor, counted together within settings.caps.window_hours of
-- one another (an email at the time it is due).  With per_day = 1 a
-- visitor who gets the cart email today gets no 10% popup as well, and
-- one who took a popup's coupon gets no browse email the same day; an
-- email due weeks later (post-purchase, win-back) does not count today.
-- What the visitor asked for (the welcome of an address they confirmed,
-- with the code the email-capture popup promised) is exempt: never held
-- back, though it counts.

local settings = require "lib.settings"

local caps, exempt = {}, {}
for k, v in pairs(settings.caps) do caps[k] = v end
for _, name in ipairs(settings.caps.exempt or {}) do exempt[#exempt + 1] = name end
local ask = settings.popup.email_capture
if ask and ask.incentive then exempt[#exempt + 1] = ask.incentive.tier end
caps.exempt = exempt

return { caps = caps }
