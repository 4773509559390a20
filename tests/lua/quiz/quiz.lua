-- A guided-selling quiz for quiz_spec: two questions that set size and budget.
local quizzes = {
  fit = {
    { id = "size", text = "Your size?", answers = {
      { id = "s", text = "Small", sets = { size = "S" } },
      { id = "m", text = "Medium", sets = { size = "M" } } } },
    { id = "budget", text = "Your budget?", answers = {
      { id = "low", text = "Under 50", sets = { budget = 50 } },
      { id = "any", text = "Any", sets = { budget = "any", style = "classic" } } } },
    { id = 3, text = "Numbered ids: your age band?", answers = {
      { id = 1, text = "Under 30", sets = { age = "u30" } },
      { id = 2, text = "A long name", sets = { [string.rep("k", 128)] = "v" } },
      { id = 4, text = "A long value", sets = { note = string.rep("v", 128) } },
      { id = 5, text = "A flag", sets = { flag = true } } } },
  },
}
return {
  -- Quiz 7 is the same quiz under a numbered id (the page may send 7 or "7").
  quiz = function(ctx)
    local q = quizzes[ctx.context.quiz] or (tostring(ctx.context.quiz) == "7" and quizzes.fit)
    return q and { questions = q }
  end,
  probe = function(ctx) return { prefs = ctx.customer.prefs, sources = ctx.customer.pref_sources } end,
}
