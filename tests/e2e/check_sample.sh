#!/usr/bin/env bash
# check_sample.sh: `tailor check --sample N`, the dry run of every handler
# on sample visitors.  A folder with a typo in a segment name, a handler
# that fails and one that answers nothing: each reported with file and
# line, the first two failing the run; an on_event_for that names no
# event type fails `tailor check`, a handler named one edit away from a
# known kind is a warning, and the dry run calls on_event only for the
# events it names.  The shipped strategies pass clean
# on the demo shop's data, and the dry run writes nothing to the store.
set -u
T=${TAILOR:?} ROOT=${TAILOR_ROOT:?}
dir=$(mktemp -d "${TAILOR_TEST_TMP:-/tmp}/checksampleXXXXXX")
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { # expect NAME CONDITION...
  local name=$1; shift
  if "$@"; then ok; else bad "$name"; fi
}

mkdir -p "$dir/typo"
cat > "$dir/typo/segments.lua" <<'LUA'
return { segments = {
  vip = function(ctx) return ctx.customer.orders > 3 end,
  new_visitor = function(ctx) return ctx.customer.lifecycle == "new_visitor" end,
} }
LUA
cat > "$dir/typo/discount.lua" <<'LUA'
local function discount(ctx)
  if ctx.customer.orders == 0 then return nil end
  if ctx.segments.vipp then return { tier = "vip", percent = 15 } end
  return { tier = "regular", percent = 5 }
end
return { discount = discount }
LUA
cat > "$dir/typo/popup.lua" <<'LUA'
return { popup = function(ctx)
  local offer = nil
  if ctx.segments.new_visitor then return { name = "welcome" } end
  return { name = offer.name }
end }
LUA
cat > "$dir/typo/recommend.lua" <<'LUA'
return { recommend = function(ctx)
  return {}
end }
LUA

python3 "$ROOT/examples/data/generate.py" --events "$dir/shop.ndjson" --site "$dir/site" >/dev/null
"$T" ingest --db "$dir/demo.db" "$dir/shop.ndjson" >/dev/null

# On the demo shop's visitors.
"$T" check --sample 12 --db "$dir/demo.db" "$dir/typo" >"$dir/out" 2>"$dir/err"
code=$?
expect "a typo and an error exit 2" test "$code" = 2
expect "the unknown segment is named with file and line" \
  grep -q "^unknown segment: discount.lua:3: ctx.segments.vipp: no segment of that name" "$dir/err"
expect "the failing handler is reported with file and line" \
  grep -q "^error: popup.lua:4: .*\[popup, [0-9]* calls\?, first for " "$dir/err"
expect "the unknown segment is not also an error" \
  bash -c "! grep -q '^error: .*no segment named' '$dir/err'"
expect "an empty answer is a warning with file and line" \
  grep -q "^warning: empty: recommend.lua:1: recommend page=home answered nothing for all 12 visitors" "$dir/out"
expect "the counts" grep -q "^1 errors, 1 unknown segments, 5 warnings" "$dir/out"

# Without a store: made-up visitors (new ones, so only what new visitors
# reach is tried); the empty recommend still shows, nothing is created.
"$T" check --sample 4 --db "$dir/none.db" "$dir/typo" >"$dir/out" 2>"$dir/err"
expect "no store: made-up visitors" grep -q "on 4 made-up visitors" "$dir/out"
expect "no store: the empty answer" grep -q "^warning: empty: recommend.lua:1: recommend page=cart" "$dir/out"
expect "the store was not created" test ! -e "$dir/none.db"

# The shipped strategies pass clean on the demo data, and write nothing.
report() { # the events, the outbox and the experiments' exposures
  "$T" stats --db "$dir/demo.db" | sed -n '/"events"/,/"events_applied"/p'
  "$T" outbox list --db "$dir/demo.db" 2>&1
  "$T" report experiments --db "$dir/demo.db" --strategies "$ROOT/strategies" 2>&1
}
report >"$dir/before"
"$T" check --sample 25 --db "$dir/demo.db" "$ROOT/strategies" >"$dir/out" 2>"$dir/err"
code=$?
expect "the shipped strategies pass the dry run on the demo data" test "$code" = 0
expect "sampled from the store" grep -q "on 25 sampled visitors" "$dir/out"
expect "no errors, no unknown segments" grep -q "^0 errors, 0 unknown segments" "$dir/out"
expect "every kind of handler ran" bash -c "grep -q '^recommend page=cart ' '$dir/out' &&
  grep -q '^popup ' '$dir/out' && grep -q '^discount ' '$dir/out' &&
  grep -q '^audiences ' '$dir/out' && grep -q '^rank ' '$dir/out' &&
  grep -q '^segments.vip ' '$dir/out' && grep -q '^on_event ' '$dir/out' &&
  grep -q '^on_due ' '$dir/out'"
expect "nothing on stderr" test ! -s "$dir/err"
"$T" check --sample 25 --db "$dir/demo.db" "$ROOT/strategies" >"$dir/out2" 2>&1
expect "the same visitors every run" cmp -s "$dir/out" "$dir/out2"
report >"$dir/after"
expect "the dry run wrote nothing (events, outbox, exposures)" cmp -s "$dir/before" "$dir/after"

"$T" check --sample 0 "$ROOT/strategies" >/dev/null 2>&1
expect "--sample 0 is bad input" test $? = 2

# What the host reads beyond compiling: an on_event_for naming no event
# type fails the check, with the file and the name.
mkdir -p "$dir/for"
printf 'return { on_event_for = { veiw = "customers" }, on_event = function() end }\n' \
  >"$dir/for/triggers.lua"
"$T" check "$dir/for" >"$dir/for.out" 2>&1
expect "a bad on_event_for is bad input" test $? = 2
expect "it names the file and the type" \
  grep -q "triggers.lua: on_event_for: 'veiw' is not an event type" "$dir/for.out"

# A handler one edit away from a kind the host knows is a warning that
# names the kind it probably meant; the check still passes.
mkdir -p "$dir/near"
cat > "$dir/near/strategies.lua" <<'LUA'
return { recomend = function() return {} end, on_evnt = function() end,
  popop = function() end, quiz = function() end, mine = function() end }
LUA
"$T" check "$dir/near" >"$dir/near.out" 2>&1
expect "a near-miss handler name is no error" test $? = 0
for miss in "recomend:recommend" "on_evnt:on_event" "popop:popup"; do
  expect "the near miss ${miss%%:*} is named with the kind it meant" grep -q \
    "^warning: strategies.lua: handler '${miss%%:*}' is no kind tailor knows: did you mean '${miss#*:}'?" \
    "$dir/near.out"
done
expect "a kind of the shop's own, or a known one, is no warning" \
  test "$(grep -c '^warning' "$dir/near.out")" = 3

# The dry run calls on_event for what on_event_for names only, as the host
# does: a handler that counts on it is not failed for events it never sees.
mkdir -p "$dir/only"
cat > "$dir/only/triggers.lua" <<'LUA'
return { on_event_for = { add_to_cart = "customers" },
  on_event = function(ctx, e)
    assert(e.type == "add_to_cart" and e.customer, "called for " .. e.type)
  end }
LUA
"$T" check --sample 12 --db "$dir/demo.db" "$dir/only" >"$dir/only.out" 2>&1
expect "on_event_for is honoured by the dry run" test $? = 0
expect "no error for an event on_event_for leaves out" \
  grep -q "^0 errors" "$dir/only.out"
expect "on_event ran on the add_to_cart of customers" \
  grep -Eq "^on_event +triggers.lua:2 +[1-9][0-9]* +0 " "$dir/only.out"

[ -n "${KEEP:-}" ] || rm -rf "$dir"
echo "$pass passed, $fail failed"
test "$fail" = 0
