-- quiz.lua: a guided-selling quiz, asked as the decision kind "quiz" with
-- the quiz's id in context.quiz (tailor.js or the shop's page shows the
-- questions and sends each answer as a quiz_answer event).  The host checks
-- every answer against what this handler returns for that quiz: a question
-- or an answer not offered is refused, and the attributes an answer sets
-- (its `sets`) become ctx.customer.prefs, with their source ("quiz:fit")
-- and time in ctx.customer.pref_sources, for every strategy to read.
--
-- The example: "fit", three questions that set size, style and budget.
-- Ids are what the answers send; texts are what the visitor reads.

local quizzes = {
  fit = {
    title = "Find your fit",
    questions = {
      { id = "size", text = "Which size do you usually wear?", answers = {
        { id = "s", text = "Small", sets = { size = "S" } },
        { id = "m", text = "Medium", sets = { size = "M" } },
        { id = "l", text = "Large", sets = { size = "L" } },
        { id = "xl", text = "Extra large", sets = { size = "XL" } } } },
      { id = "style", text = "Which style is yours?", answers = {
        { id = "classic", text = "Classic", sets = { style = "classic" } },
        { id = "sporty", text = "Sporty", sets = { style = "sporty" } },
        { id = "outdoor", text = "Outdoor", sets = { style = "outdoor" } } } },
      { id = "budget", text = "What do you like to spend on a piece?", answers = {
        { id = "under_50", text = "Under 50", sets = { budget = "50" } },
        { id = "under_150", text = "Under 150", sets = { budget = "150" } },
        { id = "any", text = "Whatever it takes", sets = { budget = "any" } } } },
    },
  },
}

-- The quiz asked for (context.quiz, "fit" when none), with what the
-- visitor already answered marked, so a page can resume it; nil for a quiz
-- this shop does not have.
local function quiz(ctx)
  local id = ctx.context.quiz or "fit"
  local q = quizzes[id]
  if not q then return nil end
  local prefs = ctx.customer.prefs or {}
  local answered = {}
  for _, question in ipairs(q.questions) do
    for _, a in ipairs(question.answers) do
      local all = next(a.sets) ~= nil
      for k, v in pairs(a.sets) do
        if prefs[k] ~= v then all = false end
      end
      if all then answered[question.id] = a.id end
    end
  end
  return { id = id, title = q.title, questions = q.questions, answered = answered }
end

return { quiz = quiz }
