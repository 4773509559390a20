-- recommend.lua: the storefront's recommendation widgets.  The logic lives
-- in lib/recs.lua so emails recommend the same way.
local recs = require "lib.recs"

return { recommend = recs.recommend }
