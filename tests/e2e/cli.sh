#!/usr/bin/env bash
# cli.sh: the tailor command line on the real binary: ingest with good and
# bad lines, stats, decide, check, audiences, a customer's export and
# erasure, help and exit codes.
set -u
T=${TAILOR:?} ROOT=${TAILOR_ROOT:?}
dir=$(mktemp -d "${TAILOR_TEST_TMP:-/tmp}/cliXXXXXX")
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { # expect NAME CONDITION...
  local name=$1; shift
  if "$@"; then ok; else bad "$name"; fi
}

cat > "$dir/events.ndjson" <<'NDJSON'
{"type":"item_upsert","item":{"id":"a","price":3}}
{"type":"view","item":"a","anon":"v1"}
{"type":"view","anon":"v1"}
{"type":"view","item":"a","anon":"v2","ts":"yesterday"}
not json at all
{"event":"Product Viewed","anonymousId":"v3","properties":{"product_id":"a"}}
NDJSON

"$T" ingest --db "$dir/shop.db" "$dir/events.ndjson" >"$dir/out" 2>"$dir/err"
code=$?
expect "ingest exits 2 on rejected lines" test "$code" = 2
expect "ingest counts" grep -q "accepted 3, rejected 3" "$dir/out"
expect "line 3 named with field" grep -q "events.ndjson:3: .*item" "$dir/err"
expect "line 4 bad timestamp" grep -q "events.ndjson:4: .*ts" "$dir/err"
expect "line 5 bad json" grep -q "events.ndjson:5: " "$dir/err"

# A redemption the engine refuses (no such code) is that line's rejection:
# the lines around it are stored (it failed the whole chunk, and a re-run
# counted the stored part twice).
{
  for i in 1 2 3; do echo "{\"type\":\"view\",\"item\":\"r$i\",\"anon\":\"rv\"}"; done
  echo '{"type":"coupon_redeemed","customer":"c1","code":"NOPE-1","order_id":"o1"}'
  for i in 4 5; do echo "{\"type\":\"view\",\"item\":\"r$i\",\"anon\":\"rv\"}"; done
} > "$dir/redeem.ndjson"
"$T" ingest --db "$dir/redeem.db" "$dir/redeem.ndjson" >"$dir/out" 2>"$dir/err"
code=$?
expect "a refused redemption exits 2" test "$code" = 2
expect "the lines around it are kept" grep -q "accepted 5, rejected 1" "$dir/out"
expect "the redemption's line is named" grep -q "redeem.ndjson:4: .*NOPE-1" "$dir/err"

# Unusual input: a byte order mark, a line over the 4 MiB buffer (one
# rejection, the lines after it kept), a folder, a store that is not there.
{
  printf '\xef\xbb\xbf{"type":"view","item":"b1","anon":"bom"}\n'
  head -c 5000000 /dev/zero | tr '\0' 'x'; echo
  echo '{"type":"view","item":"b2","anon":"bom"}'
} > "$dir/odd.ndjson"
"$T" ingest --db "$dir/odd.db" "$dir/odd.ndjson" >"$dir/out" 2>"$dir/err"
expect "BOM and a long line: one rejection, both events kept" grep -q "accepted 2, rejected 1" "$dir/out"
expect "the long line named once" test "$(grep -c 'odd.ndjson:2: the line is longer' "$dir/err")" = 1
"$T" ingest --db "$dir/odd.db" "$dir" >"$dir/out" 2>"$dir/err"
expect "a folder is refused" test $? = 1
expect "a folder is named as such" grep -q "Is a directory" "$dir/err"
"$T" erase --db "$dir/typo.db" c1 >"$dir/out" 2>"$dir/err"
expect "erase on a store that is not there is bad input" test $? = 2
expect "and says so" grep -q "no store at $dir/typo.db" "$dir/err"
expect "and creates none" test ! -e "$dir/typo.db"
echo '[1, 2]' > "$dir/array.json"
"$T" stats --config "$dir/array.json" --db "$dir/shop.db" >/dev/null 2>"$dir/err"
expect "a config that is not an object is bad input" test $? = 2
expect "and says so" grep -q "must be a JSON object" "$dir/err"
# A config file that cannot be read: its name and the system's reason, not
# jansson's position -1:-1 of a file it never opened.
"$T" stats --config "$dir/nonexist.json" --db "$dir/shop.db" >/dev/null 2>"$dir/err"
expect "a missing config is bad input" test $? = 2
expect "and is named with the reason" \
  grep -qx "tailor: $dir/nonexist.json: No such file or directory" "$dir/err"
"$T" serve --config "$dir/nonexist.json" >/dev/null 2>"$dir/err"
expect "serve: a missing config is bad input" test $? = 2
expect "serve: and is named with the reason" \
  grep -qx "tailor serve: $dir/nonexist.json: No such file or directory" "$dir/err"

# An empty store path is SQLite's temporary database, deleted at close:
# events were "accepted" and lost.  A file: URI went past the store's lock
# and was "no store" to the readers.  Both are refused, naming db.
echo '{"type":"view","item":"a","anon":"e1"}' > "$dir/clean.ndjson"
"$T" ingest --db '' "$dir/clean.ndjson" >"$dir/out" 2>"$dir/err"
expect "ingest --db '' is bad input" test $? = 2
expect "and names db" grep -q "'db' is empty" "$dir/err"
expect "and accepts nothing" sh -c "! grep -q accepted '$dir/out'"
printf '{"db": ""}\n' > "$dir/emptydb.json"
"$T" ingest --config "$dir/emptydb.json" "$dir/clean.ndjson" >/dev/null 2>"$dir/err"
expect "a config's empty db is bad input" test $? = 2
expect "and named" grep -q "'db' is empty" "$dir/err"
# (a server that did start would serve until stopped: bounded here)
timeout 20 "$T" serve --db '' --listen 127.0.0.1:0 --insecure --strategies "" >/dev/null 2>"$dir/err"
expect "serve --db '' is bad input" test $? = 2
expect "and named" grep -q "'db' is empty" "$dir/err"
"$T" ingest --db "file:$dir/shop.db" "$dir/clean.ndjson" >/dev/null 2>"$dir/err"
expect "ingest --db file: is bad input" test $? = 2
expect "and says it is a URI" grep -q "'db' is a SQLite URI" "$dir/err"
"$T" stats --db "file:$dir/shop.db" >/dev/null 2>"$dir/err"
expect "stats --db file: says it is a URI, not 'no store'" grep -q "'db' is a SQLite URI" "$dir/err"

# tune's outputs are checked before the sessions are read: one that could
# not be written failed after the whole search (420 s by default), with an
# xgboost backtrace, or "cannot write" and no reason.
python3 -c "
import random
r = random.Random(1)
for _ in range(300):
    c = r.randrange(10)
    print(' '.join(str(1 + c * 8 + r.randrange(8)) for _ in range(4)))
" > "$dir/tune.sessions"
"$T" tune --train "$dir/none.sessions" --out "$dir/nodir/x.json" --quiet 2>"$dir/err"
expect "tune: an output that cannot be written fails" test $? = 1
expect "before the sessions are read, with the reason" \
  grep -qx "tailor tune: cannot write $dir/nodir/x.json: No such file or directory" "$dir/err"
"$T" tune --train "$dir/tune.sessions" --out "$dir/nodir/x.json" --no-rerank --quiet \
  --budget-s 5 2>"$dir/err"
expect "tune --no-rerank: the same" grep -q "cannot write $dir/nodir/x.json: No such file" "$dir/err"
mkdir -p "$dir/t.model.json"
"$T" tune --train "$dir/tune.sessions" --out "$dir/t.json" --quiet --budget-s 5 \
  --trees 3 2>"$dir/err"
expect "tune: a model path that cannot be written fails" test $? = 1
expect "and is named" grep -q "cannot write $dir/t.model.json: Is a directory" "$dir/err"
expect "and no parameters are left behind" test ! -e "$dir/t.json"

# Test pairs whose target training never shows: misses for the kernels,
# which index training only; not for a strategy's backtest, which learns
# the test sessions as it replays them (it said "scored as misses" beside a
# P@10 that counted some of them as hits).
python3 -c "
import random
r = random.Random(2)
with open('$dir/ev.train', 'w') as f:
    for _ in range(200): f.write(' '.join(str(1 + r.randrange(20)) for _ in range(4)) + '\n')
with open('$dir/ev.test', 'w') as f:
    for i in range(30):
        f.write('%d %d\t%d\n' % (1 + r.randrange(20), 1 + r.randrange(20),
                                  100 + i % 3 if i % 2 else 1 + r.randrange(20)))
"
"$T" eval --train "$dir/ev.train" --test "$dir/ev.test" --kernel pop >/dev/null 2>"$dir/err"
expect "eval: unknown targets are the kernels' misses" \
  grep -q "15 of 30 test pairs target an item .*: scored as misses" "$dir/err"
"$T" eval --train "$dir/ev.train" --test "$dir/ev.test" --strategy "$ROOT/strategies" \
  >/dev/null 2>"$dir/err"
expect "eval --strategy: counted" grep -q "15 of 30 test pairs target an item" "$dir/err"
expect "and not called misses" sh -c "! grep -q 'scored as misses' '$dir/err'"

# Numbers and states of options are read whole and bounded.
"$T" outbox purge --db "$dir/shop.db" --older-than 200000000000 2>"$dir/err"
expect "a purge age past a century is refused" test $? = 2
expect "and the option named" grep -q "older-than takes a whole number" "$dir/err"
"$T" audiences export --db "$dir/shop.db" visitors --days 7x 2>"$dir/err" >/dev/null
expect "--days 7x is refused" test $? = 2
# report took its arguments into a char *[16] (UBSan: index 16 out of
# bounds) and dropped those past the 16th.
"$T" report --db "$dir/shop.db" experiments a b c d e f g h i j k l m n o p q >/dev/null 2>"$dir/err"
expect "report with 17 arguments is bad input" test $? = 2
expect "and names the first it does not take" grep -q "unexpected argument 'a'" "$dir/err"
"$T" report experiments --db "$dir/shop.db" $(printf -- '--quiet %.0s' $(seq 16)) --bogus \
  >/dev/null 2>"$dir/err"
expect "an argument past the 16th is read" test $? = 2
expect "and refused by name" grep -q "unexpected argument '--bogus'" "$dir/err"
"$T" outbox list --db "$dir/shop.db" --state bogus 2>"$dir/err"
expect "an unknown state is refused" test $? = 2
expect "and the states listed" grep -q "pending, sending, sent" "$dir/err"

"$T" stats --db "$dir/shop.db" >"$dir/stats"
expect "stats exits 0" test $? = 0
expect "stats counts views" grep -q '"view": 2' "$dir/stats"
expect "stats counts items" grep -q '"items": 1' "$dir/stats"

echo '{"kind":"recommend","anon":"v9","k":3}' |
  "$T" decide --db "$dir/shop.db" --strategies "$ROOT/strategies" >"$dir/dec"
expect "decide exits 0" test $? = 0
expect "decide recommends the viewed item" grep -q '"id":"a"' "$dir/dec"

echo '{"kind":' | "$T" decide --db "$dir/shop.db" --strategies "$ROOT/strategies" 2>"$dir/err"
expect "bad request exits 2" test $? = 2
expect "bad request explained" grep -q "decide: line [0-9]* column" "$dir/err"

mkdir -p "$dir/strat"
printf 'return { recommend = function(ctx) return {} end }\n' > "$dir/strat/good.lua"
printf 'return { popup = function(ctx)\n  return {\nend }\n' > "$dir/strat/broken.lua"
"$T" check "$dir/strat" 2>"$dir/err"
expect "check exits 2 on a broken file" test $? = 2
expect "check reports file:line" grep -q "broken.lua:3:" "$dir/err"
"$T" check "$ROOT/strategies" >/dev/null
expect "shipped strategies compile" test $? = 0
# Without DIR, check reads the folder the config names (it checked
# ./strategies, here the shipped one, and said all was well), and a folder
# extending the shipped one (strategies_base) is checked over it, as the
# engine loads it ("module 'lib.settings' not found" though decide ran).
printf '{"strategies": "%s"}\n' "$dir/strat" > "$dir/strat.json"
(cd "$ROOT" && "$T" check --config "$dir/strat.json" >/dev/null 2>"$dir/err")
expect "check --config checks the config's folder" test $? = 2
expect "and reports its broken file" grep -q "broken.lua:3:" "$dir/err"
mkdir -p "$dir/ext"
printf 'local settings = require "lib.settings"\nreturn { popup = function(ctx) return nil end }\n' \
  > "$dir/ext/popup.lua"
printf '{"strategies": "%s", "strategies_base": "%s"}\n' "$dir/ext" "$ROOT/strategies" \
  > "$dir/ext.json"
"$T" check --config "$dir/ext.json" >"$dir/out" 2>"$dir/err"
expect "a folder extending the shipped one compiles over it" test $? = 0
expect "and says so" grep -q "ext: all strategies compile (over the base" "$dir/out"
printf 'return { oops = function(ctx) return {} end\n' > "$dir/ext/broken.lua"
"$T" check --config "$dir/ext.json" >/dev/null 2>"$dir/err"
expect "an error in the extending folder is still found" test $? = 2
expect "and named" grep -q "broken.lua:2:" "$dir/err"
rm "$dir/ext/broken.lua"

"$T" checkpoint --db "$dir/shop.db" >/dev/null
expect "checkpoint exits 0" test $? = 0
# A checkpoint beside another store is not trusted: the other store's
# index is rebuilt from its own events.
"$T" ingest --db "$dir/other.db" "$dir/redeem.ndjson" >/dev/null 2>&1
"$T" checkpoint --db "$dir/other.db" >/dev/null
cp "$dir/shop.db.ckpt" "$dir/other.db.ckpt"
"$T" stats --db "$dir/other.db" >"$dir/ostats" 2>"$dir/err"
expect "another store's checkpoint is refused" grep -q "another store" "$dir/err"
expect "the store's own index is rebuilt (its 5 items)" grep -q '"items": 5' "$dir/ostats"
expect "checkpoint file written" test -s "$dir/shop.db.ckpt"
"$T" stats --db "$dir/shop.db" >"$dir/stats2"
expect "stats after a checkpoint" grep -q '"view": 2' "$dir/stats2"

# Audiences: recent visitors, hashed emails only with consent.
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cat > "$dir/people.ndjson" <<NDJSON
{"type":"customer_upsert","customer":{"id":"c1","email":" Ada@Example.com ","consent":{"email":true}}}
{"type":"customer_upsert","customer":{"id":"c2","email":"bo@example.com","consent":{"email":false}}}
{"type":"view","item":"a","customer":"c1","ts":"$now"}
{"type":"view","item":"a","customer":"c2","ts":"$now"}
{"type":"purchase","customer":"c2","order_id":"o9","items":[{"id":"a"}],"ts":"$now"}
{"type":"view","item":"a","anon":"v7","ts":"$now"}
NDJSON
"$T" ingest --db "$dir/aud.db" "$dir/people.ndjson" >/dev/null
"$T" audiences export --db "$dir/aud.db" visitors --days 2 --hashed-emails >"$dir/aud" 2>/dev/null
expect "audiences export exits 0" test $? = 0
ada=$(printf '%s' "ada@example.com" | sha256sum | cut -d' ' -f1)
expect "hashed, normalized email of a consenting customer" grep -q "\"customer\":\"c1\",\"email_sha256\":\"$ada\"" "$dir/aud"
expect "anonymous visitors included" grep -q '"anon":"v7"' "$dir/aud"
expect "the buyer is not a visitor too" sh -c "! grep -q '\"c2\"' '$dir/aud'"
expect "no address leaks" sh -c "! grep -qi 'example.com' '$dir/aud'"
"$T" audiences export --db "$dir/aud.db" buyers --days 14 --hashed-emails --csv >"$dir/aud.csv" 2>/dev/null
expect "csv has a header" grep -q '^customer,anon,email_sha256$' "$dir/aud.csv"
expect "the buyer, without an email (no consent)" grep -q '^c2,,$' "$dir/aud.csv"
"$T" audiences export --db "$dir/aud.db" visitors --days 3 2>/dev/null
expect "an audience that does not exist exits 2" test $? = 2

# A customer's rights: access (export-customer), then erasure (erase): the
# export lists what erase removes, and after it neither the export, the
# audience export nor a restart from the checkpoint knows them.
"$T" checkpoint --db "$dir/aud.db" >/dev/null 2>&1
"$T" export-customer --db "$dir/aud.db" c1 >"$dir/c1.json"
expect "export-customer exits 0" test $? = 0
expect "the export has the email" grep -q '"email": " Ada@Example.com "' "$dir/c1.json"
expect "the export has the events" test "$(python3 -c "import json,sys; d=json.load(open('$dir/c1.json')); print(len(d['events']))")" = 2
expect "the export has the index's figures" grep -q '"lifecycle"' "$dir/c1.json"
"$T" erase --db "$dir/aud.db" c1 >"$dir/erase.out"
expect "erase exits 0" test $? = 0
expect "erase counts the events" grep -q "erased c1: 2 events" "$dir/erase.out"
"$T" export-customer --db "$dir/aud.db" c1 >"$dir/c1.after"
expect "nothing left to export" python3 -c "import json,sys; d=json.load(open('$dir/c1.after')); sys.exit(0 if d['profile'] is None and d['events'] == [] and d['index'] is None else 1)"
"$T" audiences export --db "$dir/aud.db" visitors --days 2 >"$dir/aud.after" 2>/dev/null
expect "the audience export no longer lists them" sh -c "! grep -q '\"c1\"' '$dir/aud.after'"
expect "nor any byte of the address in the store or checkpoint" \
  sh -c "! grep -qi 'ada@example' '$dir/aud.db' '$dir/aud.db.ckpt' && ! grep -qi 'ada@example' '$dir/aud.db-wal' 2>/dev/null"
"$T" export-customer --db "$dir/aud.db" 2>/dev/null
expect "export-customer without an id exits 2" test $? = 2

# Delivery with no channel says so, instead of "sent 0".
"$T" outbox deliver --db "$dir/aud.db" >"$dir/deliver.out" 2>"$dir/deliver.err"
expect "outbox deliver without a channel exits 1" test $? = 1
expect "and says no channel is configured" grep -q "no delivery channel is configured" "$dir/deliver.err"

for cmd in ingest decide check stats config checkpoint report audiences erase export-customer; do
  "$T" $cmd --help >/dev/null
  expect "$cmd --help" test $? = 0
done
"$T" help ingest >"$dir/out"
expect "help ingest exits 0" test $? = 0
expect "help ingest is ingest's help" grep -q "^usage: tailor ingest" "$dir/out"
"$T" help nosuch >/dev/null 2>"$dir/err"
expect "help of an unknown command exits 2" test $? = 2
"$T" eval --train "$dir/ev.train" --test "$dir/ev.test" --every 2000000 2>"$dir/err"
expect "eval --every past its cap is refused" test $? = 2
expect "and the bounds said" grep -q "every takes a whole number from 1 to 1000000" "$dir/err"
"$T" config --bogus >"$dir/out" 2>"$dir/err"
expect "config: a bad argument exits 2" test $? = 2
expect "config: and is named" grep -q "unexpected argument '--bogus'" "$dir/err"
# docs/configuration.md is what `tailor config --markdown` prints.
"$T" config --markdown > "$dir/config.md"
expect "docs/configuration.md is up to date (tailor config --markdown)" \
  cmp -s "$dir/config.md" "$ROOT/docs/configuration.md"

# `tailor serve` refuses a bad "server" section before it opens anything,
# naming the file and the key.
printf '{"server": {"listen": "127.0.0.1:0", "bogus": 1}}\n' > "$dir/bad.json"
"$T" serve --config "$dir/bad.json" 2>"$dir/err"
expect "serve exits 2 on an unknown server key" test $? = 2
expect "serve names the file and the key" \
  grep -q "^tailor serve: $dir/bad.json: server.bogus: unknown key" "$dir/err"
printf '{"server": {"listen": "localhost:80"}}\n' > "$dir/bad.json"
"$T" serve --config "$dir/bad.json" 2>"$dir/err"
expect "serve refuses a host name" grep -q "server.listen: 'localhost' is not a numeric" "$dir/err"
printf '{"server": {"listen": "127.0.0.1:0"}}\n' > "$dir/bad.json"
"$T" serve --config "$dir/bad.json" 2>"$dir/err"
expect "serve exits 2 without tokens" test $? = 2
expect "serve explains the missing tokens" grep -q "no tokens configured" "$dir/err"

"$T" nosuch 2>/dev/null
expect "unknown command exits 2" test $? = 2

# Erasing the customer whose events end the log: the checkpoint the erasure
# writes is still the store's (max(seq) went down and it was refused as
# newer than the store, so the next start replayed everything).
{
  echo '{"type":"view","item":"a","anon":"w1"}'
  echo '{"type":"view","item":"a","customer":"last1"}'
  echo '{"type":"purchase","customer":"last1","order_id":"ol1","items":[{"id":"a","price":3}]}'
} > "$dir/last.ndjson"
"$T" ingest --db "$dir/last.db" "$dir/last.ndjson" >/dev/null 2>&1
"$T" erase --db "$dir/last.db" last1 >/dev/null 2>"$dir/err"
expect "erase of the log's last customer" test $? = 0
"$T" stats --db "$dir/last.db" >"$dir/out" 2>"$dir/err"
expect "its checkpoint is kept after the erasure" sh -c "! grep -q 'ignored' '$dir/err'"
expect "and read" test -f "$dir/last.db.ckpt"

# A stored event today's checks refuse (an older build accepted a price past
# today's bound): the index passes over it, said with its seq, instead of
# every command failing to open the store (erasure included).
{
  echo '{"type":"item_upsert","item":{"id":"old1","price":5}}'
  echo '{"type":"view","item":"old1","customer":"oldc"}'
} > "$dir/old.ndjson"
"$T" ingest --db "$dir/old.db" "$dir/old.ndjson" >/dev/null 2>&1
rm -f "$dir/old.db.ckpt"
python3 - "$dir/old.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("""UPDATE events SET body = replace(body, '"price":5', '"price":2500000000')
              WHERE type = 'item_upsert'""")
db.commit()
PY
"$T" stats --db "$dir/old.db" >"$dir/out" 2>"$dir/err"
expect "a store with an old row opens" test $? = 0
expect "the row is named" grep -q "stored event 1 is refused by today's checks (.*price" "$dir/err"
expect "and counted" grep -q '"events_unreadable": 1' "$dir/out"
"$T" erase --db "$dir/old.db" oldc >/dev/null 2>"$dir/err"
expect "an erasure runs on it" test $? = 0

# A quiz answer whose handler fails is that line's rejection; the lines
# after it are stored (the batch stopped there, and said nothing).
mkdir -p "$dir/qs"
echo 'return { quiz = function(ctx) error("quiz is broken") end }' > "$dir/qs/quiz.lua"
{
  echo '{"type":"view","item":"q1","anon":"qv"}'
  echo '{"type":"quiz_answer","anon":"qv","props":{"quiz":"fit","question":"size","answer":"m"}}'
  echo '{"type":"view","item":"q2","anon":"qv"}'
} > "$dir/quiz.ndjson"
"$T" ingest --db "$dir/quiz.db" --strategies "$dir/qs" "$dir/quiz.ndjson" >"$dir/out" 2>"$dir/err"
expect "failing quiz handler: exit 2" test $? = 2
expect "failing quiz handler: the others stored" grep -q "accepted 2, rejected 1" "$dir/out"
expect "failing quiz handler: its line named" grep -q "quiz.ndjson:2: .*quiz is broken" "$dir/err"

# One process writes a SQLite store: while `tailor serve` holds it, an
# ingest is refused with the reason (its events never reached the server's
# index, and an erasure came back from the server's checkpoint); the
# commands that only read still run beside it.
"$T" serve --db "$dir/last.db" --listen 127.0.0.1:0 --insecure --strategies "" \
  >/dev/null 2>"$dir/serve.err" &
serve_pid=$!
for _ in $(seq 100); do grep -q "listening" "$dir/serve.err" && break; sleep 0.1; done
echo '{"type":"view","item":"a","anon":"w9"}' > "$dir/one.ndjson"
"$T" ingest --db "$dir/last.db" "$dir/one.ndjson" >/dev/null 2>"$dir/err"
expect "a second writer is refused" test $? != 0
expect "it says the store is in use" grep -q "in use by another tailor engine (pid $serve_pid)" "$dir/err"
"$T" stats --db "$dir/last.db" >/dev/null 2>"$dir/err"
expect "stats runs beside the server" test $? = 0
"$T" outbox list --db "$dir/last.db" >/dev/null 2>"$dir/err"
expect "outbox list runs beside the server" test $? = 0
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null
"$T" ingest --db "$dir/last.db" "$dir/one.ndjson" >/dev/null 2>"$dir/err"
expect "the store is free once the server stopped" test $? = 0

# Where the default strategies folder is not: said at open, and in the
# fallback's error (decisions there were fallbacks without a word).
mkdir -p "$dir/elsewhere"
(cd "$dir/elsewhere" && echo '{"kind":"recommend","anon":"v1","k":2}' |
  "$T" decide --db "$dir/shop.db" >"$dir/out" 2>"$dir/err")
expect "missing default strategies warned" grep -q "no folder 'strategies' in .*elsewhere" "$dir/err"
expect "missing default strategies in the error" grep -q "no strategies are loaded" "$dir/out"

rm -rf "$dir"
echo "$pass passed, $fail failed"
test "$fail" = 0
