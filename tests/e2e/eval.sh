#!/usr/bin/env bash
# eval.sh: `tailor eval` on the real binary: a slice of the Diginetica data
# (the first 3,000 training sessions, the first 2,000 test pairs) twice, for
# determinism and sanity; NDJSON logs; --validate, which never reads the
# test file; --param; a strategy backtest; usage errors and exit codes.
set -u
T=${TAILOR:?} ROOT=${TAILOR_ROOT:?}
dir=$(mktemp -d "${TAILOR_TEST_TMP:-/tmp}/evalXXXXXX")
data=${TAILOR_DATA:-$ROOT/../shared/data}/diginetica
# The backtest's temporary strategy folders go here, to check they are removed.
export TMPDIR="$dir/tmp"
mkdir -p "$TMPDIR"
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { # expect NAME CONDITION...
  local name=$1; shift
  if "$@"; then ok; else bad "$name"; fi
}
# json FILE EXPR: evaluate a Python expression on the parsed JSON `j`.
json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
# The rows without their latency figures, for comparing runs.
stable() {
  python3 -c "
import json, sys
rows = json.load(open(sys.argv[1]))
for r in rows:
    r.pop('us_per_query_p50'); r.pop('us_per_query_p99')
print(json.dumps(rows, sort_keys=True))" "$1"
}

"$T" eval --help >"$dir/help"
expect "help exits 0" test $? = 0
expect "help names the options" grep -q -- "--strategy PATH" "$dir/help"
"$T" --help | grep -q "^  eval " 
expect "eval is listed among the commands" test $? = 0

# ---- Usage errors: exit 2 with a message; unreadable files exit 1.
printf '1 2 3\n2 3\n3 1 2\n1 2\n' > "$dir/train.txt"
printf '1 2\t3\n1\t2\n' > "$dir/test.txt"
"$T" eval --test "$dir/test.txt" 2>"$dir/err"
expect "no --train exits 2" test $? = 2
expect "no --train explained" grep -q -- "--train FILE is required" "$dir/err"
# Nine-digit numeric ids (yoochoose's) are read as names: dense arrays
# indexed by the number took 11 GB for 5,000 items.
python3 - "$dir" <<'PY'
import random, sys
random.seed(3)
base = (1 << 28) - 1 - 100000
with open(sys.argv[1] + "/huge.train", "w") as f:
    for _ in range(2000):
        cur, s = random.randint(0, 5000), []
        for _ in range(random.randint(2, 8)):
            cur = (cur + random.choice([1, 2, -1])) % 5000
            s.append(base + cur)
        f.write(" ".join(map(str, s)) + "\n")
with open(sys.argv[1] + "/huge.test", "w") as f:
    for _ in range(200):
        cur = random.randint(0, 5000)
        f.write("%d\t%d\n" % (base + cur, base + (cur + 1) % 5000))
PY
peak=$(python3 -c '
import resource, subprocess, sys
rc = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], "w")).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$dir/huge.out" \
  "$T" eval --train "$dir/huge.train" --test "$dir/huge.test" --kernel sknn --quiet --json)
expect "large numeric ids: scored" test "${peak%% *}" = 0
expect "large numeric ids: in bounded memory (${peak##* } KB)" test "${peak##* }" -lt 1000000
expect "large numeric ids: every query" grep -q '"queries": 200' "$dir/huge.out"
# Read through a pipe, the second reading cannot happen: said, not a
# silently shorter training set.
cat "$dir/huge.train" | "$T" eval --train /dev/stdin --test "$dir/huge.test" --kernel pop \
  --quiet >/dev/null 2>"$dir/err"
expect "large ids through a pipe: exit 1" test $? = 1
expect "and why" grep -q "cannot be read twice (a pipe?)" "$dir/err"
printf '99\t98\n1\t99\n1 2\t3\n' > "$dir/unseen.txt"
"$T" eval --train "$dir/train.txt" --test "$dir/unseen.txt" --kernel pop >/dev/null 2>"$dir/err"
expect "plain pairs with unknown targets: scored" test $? = 0
expect "and counted" grep -q "2 of 3 test pairs target an item the training sessions never show" "$dir/err"
: > "$dir/empty.txt"
"$T" eval --train "$dir/train.txt" --test "$dir/empty.txt" --kernel pop --quiet >/dev/null 2>"$dir/err"
expect "no test queries exits 2" test $? = 2
expect "no test queries said" grep -q "no test queries" "$dir/err"
"$T" eval --train "$dir/empty.txt" --test "$dir/test.txt" --kernel pop --quiet >/dev/null 2>"$dir/err"
expect "no training sessions exits 2" test $? = 2
expect "no training sessions said" grep -q "no training sessions" "$dir/err"
echo '{}' > "$dir/tuned.json"
"$T" eval --train "$dir/train.txt" --validate --tuned "$dir/tuned.json" 2>"$dir/err"
expect "--tuned with --validate exits 2" test $? = 2
expect "--tuned with --validate explained" grep -q "queries tune chose them on" "$dir/err"
"$T" eval --train "$dir/train.txt" --test "$dir/test.txt" --kernel nope 2>"$dir/err"
expect "unknown kernel exits 2" test $? = 2
expect "unknown kernel named" grep -q "unknown kernel 'nope'" "$dir/err"
"$T" eval --train "$dir/train.txt" --test "$dir/test.txt" --param nope=1 2>"$dir/err"
expect "unknown --param exits 2" test $? = 2
expect "unknown --param names the key" grep -q "unknown key 'nope'" "$dir/err"
"$T" eval --train "$dir/train.txt" --test "$dir/test.txt" --kernel stan --param lambda1=-1 2>"$dir/err"
expect "out-of-range --param exits 2" test $? = 2
expect "out-of-range --param names the key" grep -q "key 'lambda1'" "$dir/err"
"$T" eval --train "$dir/train.txt" --test "$dir/test.txt" --param k 2>"$dir/err"
expect "--param without = exits 2" test $? = 2
"$T" eval --train "$dir/train.txt" --test "$dir/test.txt" --kernel pop \
  --strategy "$ROOT/examples/strategies/session_recs.lua" 2>/dev/null
expect "--kernel with --strategy exits 2" test $? = 2
"$T" eval --train "$dir/missing" --test "$dir/test.txt" 2>"$dir/err"
expect "a missing file exits 1" test $? = 1
printf '1 2\n1 x\n' > "$dir/badtrain.txt"
"$T" eval --train "$dir/badtrain.txt" --test "$dir/test.txt" 2>"$dir/err"
expect "bad content exits 2" test $? = 2
expect "bad content names file and line" grep -q "badtrain.txt:2: bad item id 'x'" "$dir/err"

# ---- NDJSON logs: sessions by session id, string ids, other events skipped.
cat > "$dir/train.ndjson" <<'NDJSON'
{"type":"view","item":"hat","session":"s1","anon":"v1"}
{"type":"view","item":"jacket","session":"s2","anon":"v2"}
{"type":"view","item":"gloves","session":"s1","anon":"v1"}
{"type":"add_to_cart","item":"gloves","session":"s1","anon":"v1"}
{"event":"Product Viewed","anonymousId":"v2","properties":{"product_id":"hat","session_id":"s2"}}
{"type":"view","item":"hat","session":"s3"}
{"type":"view","item":"gloves","session":"s3"}
{"type":"view","item":"socks","anon":"v4"}
NDJSON
cat > "$dir/test.ndjson" <<'NDJSON'
{"type":"view","item":"hat","session":"t1"}
{"type":"view","item":"sofa","session":"t1"}
{"type":"view","item":"gloves","session":"t1"}
{"type":"view","item":"jacket","session":"t2"}
NDJSON
"$T" eval --train "$dir/train.ndjson" --test "$dir/test.ndjson" --kernel itemknn --json \
  >"$dir/nd.json" 2>"$dir/nd.err"
expect "NDJSON eval exits 0" test $? = 0
expect "NDJSON: one query (t1: hat -> gloves; sofa unknown, t2 too short)" \
  test "$(json "$dir/nd.json" "j[0]['queries']")" = 1
expect "NDJSON: gloves follow hat at rank 1" \
  test "$(json "$dir/nd.json" "j[0]['MRR@20']")" = 100.0
expect "NDJSON: skipped events reported" grep -q "skipped 1 events that are not views and 1 views" "$dir/nd.err"
printf '{"type":"view","item":"hat","session":"s1"}\n{"type":"view","session":"s1"}\n' > "$dir/bad.ndjson"
"$T" eval --train "$dir/bad.ndjson" --test "$dir/test.ndjson" 2>"$dir/err"
expect "a bad event exits 2" test $? = 2
expect "a bad event names file, line and field" grep -q "bad.ndjson:2: view: missing field 'item'" "$dir/err"

# ---- A strategy backtest on the small NDJSON logs, and a failing strategy.
"$T" eval --train "$dir/train.ndjson" --test "$dir/test.ndjson" \
  --strategy "$ROOT/examples/strategies/session_recs.lua" --json >"$dir/st.json" 2>"$dir/st.err"
expect "strategy backtest exits 0" test $? = 0
expect "strategy row names the file" test "$(json "$dir/st.json" "j[0]['kernel']")" = session_recs.lua
expect "strategy row is online" test "$(json "$dir/st.json" "j[0]['protocol']")" = online
expect "strategy answers without fallback" test "$(json "$dir/st.json" "j[0]['fallbacks']")" = 0
expect "strategy finds gloves after hat" test "$(json "$dir/st.json" "j[0]['P@20']")" = 100.0
mkdir -p "$dir/broken"
printf 'return { recommend = function(ctx) error("boom") end }\n' > "$dir/broken/recs.lua"
"$T" eval --train "$dir/train.ndjson" --test "$dir/test.ndjson" --strategy "$dir/broken" \
  --json >"$dir/br.json" 2>"$dir/br.err"
expect "a failing strategy still exits 0" test $? = 0
expect "its fallbacks are counted" test "$(json "$dir/br.json" "j[0]['fallbacks']")" = 1
expect "and reported" grep -q "1 of 1 answers were the fallback" "$dir/br.err"
printf 'return { recommend = function(ctx)\n' > "$dir/syntax.lua"
"$T" eval --train "$dir/train.ndjson" --test "$dir/test.ndjson" --strategy "$dir/syntax.lua" 2>"$dir/err"
expect "a strategy that does not compile exits 2" test $? = 2
expect "no temporary folder is left behind" test -z "$(ls -A "$TMPDIR")"

# ---- A slice of the real data.
if [ ! -r "$data/train.sessions" ]; then
  echo "SKIP: no Diginetica data in $data" >&2
else
  head -n 3000 "$data/train.sessions" > "$dir/train.sessions"
  head -n 2000 "$data/test.pairs" > "$dir/test.pairs"
  "$T" eval --train "$dir/train.sessions" --test "$dir/test.pairs" --json >"$dir/run1.json"
  expect "slice run exits 0" test $? = 0
  "$T" eval --train "$dir/train.sessions" --test "$dir/test.pairs" --json >"$dir/run2.json"
  expect "two runs agree apart from latency" test "$(stable "$dir/run1.json")" = "$(stable "$dir/run2.json")"
  expect "every kernel has a row" test "$(json "$dir/run1.json" "' '.join(r['kernel'] for r in j)")" = \
    "pop spop itemknn sknn vsknn stan tailor"
  expect "each row has its fields" test "$(json "$dir/run1.json" "all(set(['kernel','P@10','MRR@10','NDCG@10','P@20','MRR@20','NDCG@20','coverage','popular_share','queries','us_per_query_p50','us_per_query_p99','params']) <= set(r) for r in j)")" = True
  expect "2,000 queries each" test "$(json "$dir/run1.json" "set(r['queries'] for r in j)")" = "{2000}"
  expect "tailor beats pop" test "$(json "$dir/run1.json" "j[6]['P@20'] > j[0]['P@20'] and j[6]['MRR@20'] > j[0]['MRR@20']")" = True
  expect "the parameters used are listed" test "$(json "$dir/run1.json" "j[6]['params']['k']")" = 100

  "$T" eval --train "$dir/train.sessions" --test "$dir/test.pairs" >"$dir/table"
  expect "table exits 0" test $? = 0
  expect "table has tailor's row" grep -q "^tailor  " "$dir/table"
  expect "table has the published rows" grep -q "^SR-GNN .* 50.73  17.59" "$dir/table"

  "$T" eval --train "$dir/train.sessions" --test "$dir/test.pairs" --kernel tailor \
    --param k=5 --param trans=0 --json >"$dir/param.json"
  expect "--param is used" test "$(json "$dir/param.json" "(j[0]['params']['k'], j[0]['params']['trans'])")" = "(5, 0)"
  expect "--param changes the figures" test "$(json "$dir/param.json" "j[0]['P@20']")" != \
    "$(json "$dir/run1.json" "j[6]['P@20']")"

  # --validate never reads the test file: a missing one is fine.
  "$T" eval --train "$dir/train.sessions" --test "$dir/no-such-file" --validate --kernel stan \
    --json >"$dir/val.json" 2>"$dir/val.err"
  expect "--validate exits 0 without the test file" test $? = 0
  expect "--validate says so" grep -q "is not read" "$dir/val.err"
  expect "--validate scores the validation split" test "$(json "$dir/val.json" "j[0]['split']")" = validation
  expect "--validate has queries" test "$(json "$dir/val.json" "j[0]['queries'] > 500")" = True
  "$T" eval --train "$dir/train.sessions" --validate --kernel stan --json >"$dir/val2.json"
  expect "--validate is deterministic" test "$(stable "$dir/val.json")" = "$(stable "$dir/val2.json")"

  # The strategy backtest on a smaller slice: deterministic too.
  head -n 800 "$dir/train.sessions" > "$dir/small.sessions"
  head -n 300 "$dir/test.pairs" > "$dir/small.pairs"
  for i in 1 2; do
    "$T" eval --train "$dir/small.sessions" --test "$dir/small.pairs" \
      --strategy "$ROOT/examples/strategies/session_recs.lua" --json >"$dir/bt$i.json" 2>"$dir/bt.err"
    expect "backtest $i exits 0" test $? = 0
  done
  expect "the backtest is deterministic" test "$(stable "$dir/bt1.json")" = "$(stable "$dir/bt2.json")"
  expect "the backtest scores every pair" test "$(json "$dir/bt1.json" "j[0]['queries']")" = 300
  expect "the backtest finds next items" test "$(json "$dir/bt1.json" "j[0]['P@20'] > 1")" = True
fi

rm -rf "$dir"
echo "eval.sh: $pass passed, $fail failed"
[ "$fail" = 0 ]
