-- probe.lua: what a strategy sees of consent and the traffic source.
return {
  probe = function(ctx)
    return { source = ctx.session.source or false, consent = ctx.customer.consent,
             seen = ctx.customer.seen, recent = #ctx.customer.recent }
  end,
}
