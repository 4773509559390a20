-- names.lua: the automatic segments as a strategy reads them, for
-- clusters_spec.lua.
return {
  names = function(ctx)
    return { clusters = tailor.clusters(), mine = ctx.customer.cluster_name,
             id = ctx.customer.cluster }
  end,
}
