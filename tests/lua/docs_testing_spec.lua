-- docs_testing_spec.lua: the example spec of strategies.md ("Testing a
-- strategy") runs as written, against the shipped strategies: the page a
-- merchant's developer copies first must not rot.
local root = os.getenv("TAILOR_ROOT") or "."
local f = assert(io.open(root .. "/docs/strategies.md"))
local doc = f:read("a")
f:close()
local section = assert(doc:match("\n## Testing a strategy\n(.-)\n## "), "strategies.md: no 'Testing a strategy'")
local code = assert(section:match("```lua\n(.-)```"), "strategies.md: no example spec")
assert(load(code, "=strategies.md example", "t", _ENV))()
