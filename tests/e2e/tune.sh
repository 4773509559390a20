#!/usr/bin/env bash
# tune.sh: `tailor tune` on the real binary, on a small generated shop: it
# writes parameters and a re-ranker model, reads no test data (it has no
# option for it), and `tailor eval --tuned` prints the kernel rows and the
# tuned and re-ranked ones, in the table and in --json.
set -u
T=${TAILOR:?}
dir=$(mktemp -d "${TAILOR_TEST_TMP:-/tmp}/tuneXXXXXX")
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { local name=$1; shift; if "$@"; then ok; else bad "$name"; fi; }
json() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

# A shop: 40 clusters of 12 items, sessions mostly walking a path.
python3 - "$dir" <<'PY'
import random, sys
r = random.Random(3)
def shop(n):
    out = []
    for _ in range(n):
        c, at = r.randrange(40), r.randrange(12)
        s = []
        for i in range(3 + r.randrange(6)):
            if i > 1 and r.random() < 0.2:
                s.append(r.choice(s))
            else:
                at = (at + 1) % 12 if r.random() < 0.7 else r.randrange(12)
                s.append(1 + c * 12 + at)
        out.append(s)
    return out
d = sys.argv[1]
with open(d + "/train.sessions", "w") as f:
    for s in shop(3000): f.write(" ".join(map(str, s)) + "\n")
with open(d + "/test.pairs", "w") as f:
    for s in shop(150):
        for i in range(len(s) - 1, 0, -1):
            f.write(" ".join(map(str, s[:i])) + "\t%d\n" % s[i])
PY

"$T" tune --help >"$dir/help"
expect "help exits 0" test $? = 0
expect "tune is listed" sh -c "'$T' --help | grep -q '^  tune '"
"$T" tune --train "$dir/train.sessions" 2>"$dir/err"
expect "no --out exits 2" test $? = 2
"$T" tune --train "$dir/train.sessions" --out "$dir/x.json" --test "$dir/test.pairs" 2>"$dir/err"
expect "--test is refused" test $? = 2
expect "and why" grep -q "reads no test data" "$dir/err"

# A budget that ends the search inside a pass says so (the summary
# counted only whole passes, the log the pass begun).
"$T" tune --train "$dir/train.sessions" --out "$dir/cut.json" --budget-s 0.001 --no-rerank \
  >"$dir/cut.out" 2>/dev/null
expect "a cut search still writes" test $? = 0
expect "the cut is said" grep -q "part of one more: the time budget ran out" "$dir/cut.out"
expect "and recorded" test "$(json "$dir/cut.json" "j['search']['budget_cut']")" = True

"$T" tune --train "$dir/train.sessions" --out "$dir/shop.json" --passes 1 --trees 20 \
  >"$dir/tune.out" 2>"$dir/tune.err"
expect "tune exits 0" test $? = 0
expect "progress is shown" grep -q "best so far" "$dir/tune.err"
expect "the figures are printed" grep -q "tuned + re-ranked" "$dir/tune.out"
expect "the model is beside the parameters" test -s "$dir/shop.model.json"
expect "the file names the model" test "$(json "$dir/shop.json" "j['model']")" = shop.model.json
expect "validation figures are kept" test "$(json "$dir/shop.json" "j['validation']['tuned']['P@20'] >= j['validation']['defaults']['P@20']")" = True

"$T" eval --train "$dir/train.sessions" --test "$dir/test.pairs" --tuned "$dir/shop.json" \
  --json >"$dir/eval.json" 2>"$dir/eval.err"
expect "eval --tuned exits 0" test $? = 0
expect "kernel rows and the tuned rows" test "$(json "$dir/eval.json" "' '.join(r['kernel'] for r in j)")" = \
  "pop spop itemknn sknn vsknn stan tailor tailor/tuned tailor/reranked"
expect "rows keep their fields" test "$(json "$dir/eval.json" "all({'P@20','MRR@20','queries','params','us_per_query_p99'} <= set(r) for r in j)")" = True
expect "the re-ranked row names its model" test "$(json "$dir/eval.json" "j[8]['model'].endswith('shop.model.json')")" = True
expect "the tuned rows name the file" test "$(json "$dir/eval.json" "j[7]['tuned'].endswith('shop.json')")" = True
"$T" eval --train "$dir/train.sessions" --test "$dir/test.pairs" --tuned "$dir/shop.json" \
  --kernel tailor >"$dir/table" 2>/dev/null
expect "the table has both rows" sh -c "grep -q '^tailor/tuned ' '$dir/table' && grep -q '^tailor/reranked ' '$dir/table'"
printf '{"params": {"k": "many"}}' >"$dir/bad.json"
"$T" eval --train "$dir/train.sessions" --test "$dir/test.pairs" --tuned "$dir/bad.json" 2>"$dir/err"
expect "a bad tuned file exits 2" test $? = 2
expect "and names the key" grep -q "params.k" "$dir/err"

rm -rf "$dir"
echo "tune.sh: $pass passed, $fail failed"
[ "$fail" = 0 ]
