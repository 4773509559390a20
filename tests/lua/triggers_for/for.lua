-- for.lua: on_event_for names the events on_event is called for; this
-- handler fails on every call, so the strategy-error count says which
-- events reached it.
return {
  on_event_for = { view = "customers", add_to_cart = "all" },
  on_event = function(ctx, ev) error("called for " .. ev.type) end,
}
