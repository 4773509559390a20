#!/usr/bin/env bash
# tune_serve.sh: a shop's tuned parameters in the engine (index.tuned): a
# small `tailor tune` run on the shop's sessions, the same sessions ingested
# as views, and tailor.session_next asked for the same visitors with and
# without the key: the tuned parameters and re-ranker change the answers,
# every row still says which view it came from, and a tuned file that
# cannot be used stops the engine with an error naming the key and file.
set -u
T=${TAILOR:?}
ROOT=${TAILOR_ROOT:?}
dir=$(mktemp -d "${TAILOR_TEST_TMP:-/tmp}/tuneserveXXXXXX")
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { local name=$1; shift; if "$@"; then ok; else bad "$name"; fi; }

# A shop (tune.sh's): 40 clusters of 12 items, sessions mostly walking a
# path, some going back; as a sessions file for tune and as view events.
python3 - "$dir" <<'PY'
import json, random, sys
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
train = shop(3000)
with open(d + "/train.sessions", "w") as f:
    for s in train: f.write(" ".join(map(str, s)) + "\n")
ts = 1700000000000
with open(d + "/events.ndjson", "w") as f:
    for i in range(1, 481):
        f.write(json.dumps({"type": "item_upsert", "ts": ts,
                            "item": {"id": str(i), "price": 10}}) + "\n")
    for n, s in enumerate(train):
        for it in s:
            ts += 1000
            f.write(json.dumps({"type": "view", "item": str(it), "anon": "p%d" % n,
                                "session": "s%d" % n, "ts": ts}) + "\n")
# Visitors to ask about: new sessions, views only.
with open(d + "/visitors.ndjson", "w") as f:
    for n, s in enumerate(shop(20)):
        for it in s:
            ts += 1000
            f.write(json.dumps({"type": "view", "item": str(it), "anon": "v%d" % n,
                                "session": "now%d" % n, "ts": ts}) + "\n")
with open(d + "/requests.ndjson", "w") as f:
    for n in range(20):
        f.write(json.dumps({"kind": "recommend", "anon": "v%d" % n, "session": "now%d" % n,
                            "k": 10, "page": {"kernel": "session_next", "repeats": True}}) + "\n")
PY

"$T" tune --train "$dir/train.sessions" --out "$dir/shop.json" --passes 1 --trees 20 \
  >"$dir/tune.out" 2>"$dir/tune.err"
expect "tune exits 0" test $? = 0
expect "a model beside the parameters" test -s "$dir/shop.model.json"
cat "$dir/events.ndjson" "$dir/visitors.ndjson" | "$T" ingest --db "$dir/shop.db" --quiet - >"$dir/ingest.out" 2>&1
expect "ingest exits 0" test $? = 0

S="$ROOT/tests/lua/strategies"
decide() { # config file, output: one decision a line, one per request
  : >"$2"
  while read -r req; do
    printf '%s' "$req" | "$T" decide --config "$1" --strategies "$S" --quiet >>"$2" 2>"$2.err" || return 1
  done <"$dir/requests.ndjson"
}
printf '{"db": "%s", "index": {}}' "$dir/shop.db" >"$dir/plain.json"
printf '{"db": "%s", "index": {"tuned": "%s"}}' "$dir/shop.db" "$dir/shop.json" >"$dir/tuned.json"
python3 - "$dir/shop.json" "$dir/params.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); del j["model"]; json.dump(j, open(sys.argv[2], "w"))
PY
printf '{"db": "%s", "index": {"tuned": "%s"}}' "$dir/shop.db" "$dir/params.json" >"$dir/params_only.json"

decide "$dir/plain.json" "$dir/plain.out"
expect "decide with defaults exits 0" test $? = 0
decide "$dir/tuned.json" "$dir/tuned.out"
expect "decide with index.tuned exits 0" test $? = 0
decide "$dir/params_only.json" "$dir/params.out"
expect "decide with tuned parameters alone exits 0" test $? = 0

python3 - "$dir" <<'PY' >"$dir/cmp" 2>&1
import json, sys
d = sys.argv[1]
def rows(name):
    out = []
    for line in filter(str.strip, open(d + "/" + name)):
        j = json.loads(line)
        assert not j.get("fallback"), j
        out.append(j["items"])
    return out
plain, tuned, params = rows("plain.out"), rows("tuned.out"), rows("params.out")
assert len(plain) == len(tuned) == 20
ids = lambda rs: [[i["id"] for i in r] for r in rs]
print("differ", sum(a != b for a, b in zip(ids(plain), ids(tuned))))
print("params_differ", sum(a != b for a, b in zip(ids(plain), ids(params))))
print("full", all(len(r) == 10 for r in tuned))
print("explained", all(i.get("because") and i["reason"] == "session" for r in tuned for i in r))
print("scores", all(0 < i["score"] < 1 for r in tuned for i in r))
PY
cat "$dir/cmp" >&2
expect "the re-ranked answers differ from the defaults'" grep -Eq '^differ ([5-9]|1[0-9]|20)$' "$dir/cmp"
expect "every re-ranked list is full" grep -q '^full True' "$dir/cmp"
expect "every re-ranked row says which view it came from" grep -q '^explained True' "$dir/cmp"
expect "re-ranked scores stay in (0, 1)" grep -q '^scores True' "$dir/cmp"

# Tuned parameters that differ from the defaults change the kernel alone.
python3 - "$dir/params.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); j["params"]["repeat"] = 50; j["params"]["trans"] = 0
json.dump(j, open(sys.argv[1], "w"))
PY
decide "$dir/params_only.json" "$dir/params2.out"
expect "decide with changed parameters exits 0" test $? = 0
expect "changed parameters change the answers" sh -c "! cmp -s '$dir/plain.out' '$dir/params2.out'"

# A tuned file that cannot be used: the engine does not start, and says why.
printf '{"params": {"k": "many"}}' >"$dir/bad.json"
printf '{"db": "%s", "index": {"tuned": "%s"}}' "$dir/shop.db" "$dir/bad.json" >"$dir/bad_cfg.json"
decide "$dir/bad_cfg.json" "$dir/bad.out"
rc=$?
expect "a bad tuned file fails the open" test $rc != 0
expect "naming the key" grep -q "index.tuned" "$dir/bad.out.err"
expect "the file" grep -q "bad.json" "$dir/bad.out.err"
expect "and the parameter" grep -q "params.k" "$dir/bad.out.err"
printf '{"db": "%s", "index": {"tuned": "%s"}}' "$dir/shop.db" "$dir/none.json" >"$dir/none_cfg.json"
decide "$dir/none_cfg.json" "$dir/none.out"
expect "a missing tuned file fails the open" test $? != 0
expect "naming the key and file" sh -c "grep -q 'index.tuned' '$dir/none.out.err' && grep -q 'none.json' '$dir/none.out.err'"
python3 - "$dir/shop.json" "$dir/nomodel.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); j["model"] = "gone.model.json"; json.dump(j, open(sys.argv[2], "w"))
PY
printf '{"db": "%s", "index": {"tuned": "%s"}}' "$dir/shop.db" "$dir/nomodel.json" >"$dir/nomodel_cfg.json"
decide "$dir/nomodel_cfg.json" "$dir/nomodel.out"
expect "a missing model fails the open" test $? != 0
expect "naming the key and the model" sh -c "grep -q 'index.tuned' '$dir/nomodel.out.err' && grep -q 'gone.model.json' '$dir/nomodel.out.err'"

[ "$fail" = 0 ] && [ -z "${KEEP:-}" ] && rm -rf "$dir"
echo "tune_serve.sh: $pass passed, $fail failed"
[ "$fail" = 0 ]
