-- quiz.lua (customer_spec): one question, so that the customer has prefs.
local fit = { { id = "size", text = "Your size?", answers = {
  { id = "m", text = "Medium", sets = { size = "M" } } } } }
return { quiz = function(ctx) return ctx.context.quiz == "fit" and { questions = fit } or nil end }
