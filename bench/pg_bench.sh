#!/usr/bin/env bash
# pg_bench.sh: durable events on PostgreSQL against SQLite, same client,
# same run; log lag; decisions of three nodes against one.
#
#   bench/pg_bench.sh              # a few minutes; starts and stops its own PostgreSQL
#
# 1. A PostgreSQL 15 of its own on loopback (tests/pg/pg_kit.py: initdb in
#    a temporary folder, stopped after), fsync on as Debian ships it.
# 2. Durable events the way shops send them: EV_CONNS (50) connections,
#    unpipelined and pipelined by 16, bench/serve_load --mode event (views
#    of the Diginetica sessions, acknowledged after their transaction
#    commits, shipped strategies' triggers included), into one node on a
#    fresh SQLite file and one on a fresh PostgreSQL database: both columns
#    and the ratio.
# 3. Log lag: a second node follows the PostgreSQL log while the first
#    takes LAG_RATE (2000) events/s, open loop; each node reports how long
#    the events took from the writer's receipt to being applied to its
#    index (tailor stats: log.lag_ms; the writer's node counts the events
#    it applied since its start, the first case's included).  The
#    follower's figure is the log's lag as a shop sees it: receipt,
#    commit, notification, read, applied on another node.
# 4. Decisions: three nodes on the database, the load spread over them,
#    against one node, closed loop, and the CPU the nodes used.
#
# Environment: BUILD (default build/release), DATA, RUN (seconds a case,
# default 5), EV_CONNS (50), SESSIONS (training sessions the clients draw
# visitors and items from, default 20000).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${TAILOR_PG_URL:-}" ]; then
  exec python3 "$ROOT/tests/pg/pg_kit.py" "$0" "$@"
fi
BUILD=${BUILD:-$ROOT/build/release}
DATA=${DATA:-$ROOT/../shared/data/diginetica}
RUN=${RUN:-5}
EV_CONNS=${EV_CONNS:-50}
SESSIONS=${SESSIONS:-20000}
TOKEN=bench-storefront-token-0123456789
ADMIN=bench-admin-token-0123456789abcd
STEP_TIMEOUT=$((RUN * 4 + 60))

if [ ! -x "$BUILD/tailor" ] || [ ! -x "$BUILD/bench/serve_load" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target tailor serve_load >/dev/null
fi
T=$BUILD/tailor LOAD=$BUILD/bench/serve_load
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pg_benchXXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}'; }
cpu_s() { # user+system seconds of a pid
  awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"
}
SESS=$WORK/sessions
head -n "$SESSIONS" "$DATA/train.sessions" >"$SESS"

# start NAME DB: a node; sets PORT and PID.
start() {
  local name=$1 db=$2
  cat >"$WORK/$name.json" <<EOF
{"db": "$db", "strategies": "$ROOT/strategies",
 "server": {"listen": "127.0.0.1:0", "max_inflight": 256,
            "tokens": [{"token": "$TOKEN", "role": "storefront"},
                       {"token": "$ADMIN", "role": "admin"}]}}
EOF
  "$T" serve --config "$WORK/$name.json" 2>"$WORK/$name.log" &
  PID=$!
  PIDS+=("$PID")
  PORT=
  for _ in $(seq 600); do
    PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/$name.log" | head -1)
    grep -q "ready:" "$WORK/$name.log" && [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/$name.log" >&2; exit 1; }
    sleep 0.1
  done
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }
load() { # load PORT MODE DEPTH
  timeout "$STEP_TIMEOUT" "$LOAD" --port "$1" --mode "$2" --conns "$EV_CONNS" --depth "$3" \
    --seconds "$RUN" --warmup 1 --sessions "$SESS" --token "$TOKEN"
}
lag() { # lag PORT: "p50 p99 count" of the node's log lag, ms
  curl -s -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$1/v1/stats" | python3 -c '
import json, sys
lag = json.load(sys.stdin).get("log", {}).get("lag_ms", {})
print(lag.get("p50", "-"), lag.get("p99", "-"), lag.get("count", 0))'
}

echo "== data: $SESSIONS sessions to draw visitors and items from; $EV_CONNS connections, ${RUN} s a case"
echo
echo "== durable events: one node on SQLite, one on PostgreSQL (fsync on both)"
printf "%-10s %12s %12s %8s   %s\n" pipeline "sqlite ev/s" "pg ev/s" "pg/sqlite" "p50 / p99 us (sqlite | pg)"
start sqlite "$WORK/shop.db"; SQ_PORT=$PORT SQ_PID=$PID
start pg "$TAILOR_PG_URL"; PG_PORT=$PORT PG_PID=$PID
for depth in 1 16; do
  sq=$(load "$SQ_PORT" event "$depth")
  pg=$(load "$PG_PORT" event "$depth")
  printf "%-10s %12s %12s %8s   %s / %s | %s / %s  errors %s | %s\n" "$depth" "$(field rps "$sq")" \
    "$(field rps "$pg")" "$(ratio "$(field rps "$pg")" "$(field rps "$sq")")" \
    "$(field p50_us "$sq")" "$(field p99_us "$sq")" "$(field p50_us "$pg")" "$(field p99_us "$pg")" \
    "$(field errors "$sq")" "$(field errors "$pg")"
done
stop "$SQ_PID"

echo
LAG_RATE=${LAG_RATE:-2000}
echo "== log lag: a second node follows while the first takes $LAG_RATE events/s (open loop)"
start follower "$TAILOR_PG_URL"; F_PORT=$PORT F_PID=$PID
pg=$(timeout "$STEP_TIMEOUT" "$LOAD" --port "$PG_PORT" --mode event --conns "$EV_CONNS" --depth 16 \
  --rate "$LAG_RATE" --seconds "$RUN" --warmup 1 --sessions "$SESS" --token "$TOKEN")
sleep 1
read -r w50 w99 wn <<<"$(lag "$PG_PORT")"
read -r f50 f99 fn <<<"$(lag "$F_PORT")"
echo "writer:   $(field rps "$pg") ev/s, acknowledged p50 $(field p50_us "$pg") us p99 $(field p99_us "$pg") us; receipt to applied p50 ${w50} ms, p99 ${w99} ms ($wn events since start)"
echo "follower: receipt to applied p50 ${f50} ms, p99 ${f99} ms ($fn events)"

echo
echo "== decisions: three nodes against one (recommend on product pages, pipelined by 16)"
start third "$TAILOR_PG_URL"; X_PORT=$PORT X_PID=$PID
c0=$(cpu_s "$PG_PID")
one=$(load "$PG_PORT" decide 16)
c1=$(cpu_s "$PG_PID")
echo "one node:    $(field rps "$one") decisions/s  p50 $(field p50_us "$one") us  p99 $(field p99_us "$one") us  cpu $(awk -v a="$c0" -v b="$c1" -v r="$RUN" 'BEGIN {printf "%.2f", (b - a) / (r + 1)}') cores"
EV_CONNS=$(( (EV_CONNS + 2) / 3 ))
s0="$(cpu_s "$PG_PID") $(cpu_s "$F_PID") $(cpu_s "$X_PID")"
load "$PG_PORT" decide 16 >"$WORK/d1" & l1=$!
load "$F_PORT" decide 16 >"$WORK/d2" & l2=$!
load "$X_PORT" decide 16 >"$WORK/d3" & l3=$!
wait $l1 $l2 $l3
s1="$(cpu_s "$PG_PID") $(cpu_s "$F_PID") $(cpu_s "$X_PID")"
tot=0
for f in d1 d2 d3; do tot=$(awk -v a="$tot" -v b="$(field rps "$(cat "$WORK/$f")")" 'BEGIN {print a + b}'); done
cpu=$(awk -v a="$s0" -v b="$s1" -v r="$RUN" 'BEGIN {split(a, x); split(b, y); printf "%.2f", (y[1]+y[2]+y[3]-x[1]-x[2]-x[3]) / (r + 1)}')
echo "three nodes: $tot decisions/s in all ($(ratio "$tot" "$(field rps "$one")")x one node), cpu $cpu cores (the machine has $(nproc))"
for p in "$PG_PID" "$F_PID" "$X_PID"; do stop "$p"; done
PIDS=()
