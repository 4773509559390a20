#!/usr/bin/env bash
# serve_bench.sh: figures for `tailor serve`, against redis-server on the
# same machine, from the same client (bench/serve_load) in the same run.
#
#   bench/serve_bench.sh            # about two minutes, then stops
#
# 1. The Diginetica training sessions (../shared/data/diginetica) become
#    view events (session i is visitor a<i>), ingested into a fresh store;
#    Redis gets the same views as ZINCRBY trending 1 ITEM.
# 2. Redis: EVALSHA of a script returning the trending top 10 (the same
#    logic as tailor's one-line trending strategy), and ZREVRANGE.
# 3. tailor serve with the shipped strategies: `ping` (the server alone),
#    `decide` kind=recommend on product pages, closed loop and open loop at
#    half its own capacity (latency from the scheduled send, so falling
#    behind shows), and wrk on HTTP decide.
# 4. tailor serve again with the trending top k as its strategy: closed
#    loop, then open loop at half its capacity, beside EVALSHA at that
#    rate.  Decisions: EV_CONNS connections pipelined by 16.
#    The open loop sends each request on its own, as a storefront does,
#    so "its capacity" is measured in that shape too: closed loop, not
#    pipelined.  Half of the pipelined capacity is printed beside it; sent
#    one by one, that rate costs a system call a request on both sides and
#    is no longer half of anything (Redis queues at it too).
# 5. Server memory (VmRSS, VmHWM) under load; ratios; everything stopped.
# 6. Durable events the way shops send them: EV_CONNS (50) connections,
#    unpipelined and pipelined by 16, tailor `event` (acknowledged after
#    its transaction's fsync, with the shipped strategies' triggers) beside
#    Redis ZINCRBY with AOF fsync always (acknowledged after its fsync),
#    both columns and the ratio.
#
# PARTS (default "decide events") picks sections: "events" alone skips the
# decision cases.
#
# Each ratio is also measured in ROUNDS (default 5) alternations of the
# tailor case and its Redis case, back to back, and the median ratio is
# the headline: on a shared machine the throughput of either moves by
# tens of percent between minutes, and one tailor run beside one Redis
# run taken minutes apart does not say which is faster.
#
# Closed loop: EV_CONNS connections, pipelined by 1 and 16.  Environment:
# BUILD (default build/release), DATA, STRATEGIES, RUN (seconds per case,
# default 5), EV_CONNS (50), SESSIONS (training sessions to ingest,
# default all 186,670), ROUNDS (5).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build/release}
DATA=${DATA:-$ROOT/../shared/data/diginetica}
STRATEGIES=${STRATEGIES:-$ROOT/strategies}
RUN=${RUN:-5}
SESSIONS=${SESSIONS:-0}
EV_CONNS=${EV_CONNS:-50}
PARTS=${PARTS:-decide events}
ROUNDS=${ROUNDS:-5}
TOKEN=bench-storefront-token-0123456789
STEP_TIMEOUT=$((RUN * 4 + 60)) # no step may hang the run

for tool in redis-server redis-cli wrk python3; do
  command -v "$tool" >/dev/null || { echo "serve_bench: $tool missing (apt-get install redis-server wrk python3)" >&2; exit 1; }
done
if [ ! -x "$BUILD/tailor" ] || [ ! -x "$BUILD/bench/serve_load" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target tailor serve_load >/dev/null
fi
T=$BUILD/tailor LOAD=$BUILD/bench/serve_load
WORK=$(mktemp -d "${TMPDIR:-/tmp}/serve_benchXXXXXX")
TAILOR_PID= REDIS_PID=
cleanup() {
  [ -n "$TAILOR_PID" ] && kill "$TAILOR_PID" 2>/dev/null && wait "$TAILOR_PID" 2>/dev/null
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
rss() { # VmRSS and VmHWM of a pid, in MiB
  awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} END {printf "rss=%.0fMiB peak=%.0fMiB", r/1024, h/1024}' "/proc/$1/status"
}
field() { # field NAME LINE
  sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"
}

SESS=$WORK/sessions
if [ "$SESSIONS" -gt 0 ]; then head -n "$SESSIONS" "$DATA/train.sessions" >"$SESS"; else cp "$DATA/train.sessions" "$SESS"; fi
echo "== data: $(wc -l <"$SESS") sessions, $(awk '{n+=NF} END {print n}' "$SESS") views"

# Views, a second apart within a session, sessions in order, ending now.
awk -v now="$(date +%s)" 'NR == FNR {total++; next}
  {for (i = 1; i <= NF; i++)
     printf "{\"type\":\"view\",\"item\":\"%s\",\"anon\":\"a%d\",\"session\":\"a%d\",\"ts\":%.0f}\n",
            $i, FNR, FNR, (now - (total - FNR) * 10 + i) * 1000}' "$SESS" "$SESS" >"$WORK/views.ndjson"
t0=$(date +%s.%N)
timeout 600 "$T" ingest --quiet --db "$WORK/shop.db" "$WORK/views.ndjson" >/dev/null
echo "tailor ingest: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$WORK" --daemonize no --loglevel warning >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
awk '{for (i = 1; i <= NF; i++) printf "*4\r\n$7\r\nZINCRBY\r\n$8\r\ntrending\r\n$1\r\n1\r\n$%d\r\n%s\r\n", length($i), $i}' "$SESS" |
  timeout 300 redis-cli -p "$REDIS_PORT" --pipe >/dev/null
echo "redis: $(redis-cli -p "$REDIS_PORT" zcard trending) items in trending"

# The equivalent of ZREVRANGE trending 0 9 as a strategy: the top k of
# the decayed trending counters, nothing else.
mkdir -p "$WORK/trending"
cat >"$WORK/trending/recommend.lua" <<'EOF'
return { recommend = function(ctx)
  return tailor.trending(nil, nil, { k = ctx.k, in_stock = false })
end }
EOF

start_tailor() { # start_tailor STRATEGIES
  cat >"$WORK/tailor.json" <<EOF
{"db": "$WORK/shop.db", "strategies": "$1",
 "server": {"listen": "127.0.0.1:0", "max_inflight": 256,
            "tokens": [{"token": "$TOKEN", "role": "storefront"}]}}
EOF
  : >"$WORK/serve.log"
  "$T" serve --config "$WORK/tailor.json" 2>"$WORK/serve.log" &
  TAILOR_PID=$!
  PORT=
  for _ in $(seq 600); do
    PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/serve.log")
    grep -q "ready:" "$WORK/serve.log" && [ -n "$PORT" ] && break
    kill -0 "$TAILOR_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "tailor serve ($1): port $PORT, $(rss "$TAILOR_PID") after opening"
}
stop_tailor() {
  kill -TERM "$TAILOR_PID"
  if wait "$TAILOR_PID"; then echo "tailor serve: SIGTERM, exit 0"; else echo "tailor serve: exit $?"; fi
  TAILOR_PID=
}

show() { # show LABEL LINE [EXTRA]
  printf "%-38s %8s req/s  p50 %6s us  p99 %6s us  p999 %6s us  errors %s%s\n" "$1" \
    "$(field rps "$2")" "$(field p50_us "$2")" "$(field p99_us "$2")" "$(field p999_us "$2")" \
    "$(field errors "$2")" "${3:+  $3}"
}

has_part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# alternate LABEL TAILOR_MODE REDIS_MODE DEPTH: ROUNDS runs of tailor
# (on $PORT) and Redis, back to back; prints each round, then the median
# ratio, which it also leaves in $MEDIAN.
alternate() {
  local label=$1 tmode=$2 rmode=$3 depth=$4 ratios=() a b r
  for r in $(seq "$ROUNDS"); do
    a=$(timeout "$STEP_TIMEOUT" "$LOAD" --port "$PORT" --mode "$tmode" --conns "$EV_CONNS" \
      --depth "$depth" --seconds "$RUN" --warmup 1 --sessions "$SESS" --token "$TOKEN")
    b=$(timeout "$STEP_TIMEOUT" "$LOAD" --port "$REDIS_PORT" --mode "$rmode" --conns "$EV_CONNS" \
      --depth "$depth" --seconds "$RUN" --warmup 1 --sessions "$SESS" --sha "${SHA:-none}")
    ratios+=("$(awk -v a="$(field rps "$a")" -v b="$(field rps "$b")" 'BEGIN {printf "%.3f", a / b}')")
    printf "  %-36s round %d: tailor %8s/s  redis %8s/s  ratio %s\n" "$label" "$r" \
      "$(field rps "$a")" "$(field rps "$b")" "${ratios[-1]}"
  done
  MEDIAN=$(printf "%s\n" "${ratios[@]}" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  printf "  %-36s median ratio of %d rounds: %s\n" "$label" "$ROUNDS" "$MEDIAN"
}

if has_part decide; then
echo "load: $EV_CONNS connections x 16 pipelined requests (closed loop) unless a rate is given, ${RUN} s a case after 1 s of warm-up"
# Redis's side of a decision: a Lua script with the same logic as tailor's
# one-line trending strategy (the top 10 of the trending counters).
SHA=$(redis-cli -p "$REDIS_PORT" script load "return redis.call('ZREVRANGE', KEYS[1], 0, 9, 'WITHSCORES')")
dload() { # dload PORT MODE [ARGS...]: EV_CONNS connections, pipelined by 16
  local port=$1 mode=$2
  shift 2
  timeout "$STEP_TIMEOUT" "$LOAD" --port "$port" --mode "$mode" --conns "$EV_CONNS" \
    --depth 16 --seconds "$RUN" --warmup 1 --sessions "$SESS" --token "$TOKEN" --sha "$SHA" "$@"
}
echo
echo "== redis"
ev=$(dload "$REDIS_PORT" evalsha); show "redis EVALSHA (trending top 10)" "$ev"
ev_rps=$(field rps "$ev")
zr=$(dload "$REDIS_PORT" zrevrange); show "redis ZREVRANGE trending 0 9" "$zr"
echo
echo "== the shipped strategies ($STRATEGIES)"
start_tailor "$STRATEGIES"
pg=$(dload "$PORT" ping); show "tailor ping (server only)" "$pg" "$(rss "$TAILOR_PID")"
ds=$(dload "$PORT" decide); show "tailor decide recommend (product page)" "$ds" "$(rss "$TAILOR_PID")"
ds_rps=$(field rps "$ds")
ds1=$(dload "$PORT" decide --depth 1); show "  same, not pipelined (closed loop)" "$ds1"
ds1_rps=$(field rps "$ds1")
half_ds=$((${ds1_rps%.*} / 2))
hs=$(dload "$PORT" decide --rate "$half_ds"); show "  same, open loop @ $half_ds/s (half)" "$hs" "behind $(field behind "$hs")"
half_ds16=$((${ds_rps%.*} / 2))
hs16=$(dload "$PORT" decide --rate "$half_ds16"); show "  same, open loop @ $half_ds16/s" "$hs16" "behind $(field behind "$hs16")"
alternate "product page / EVALSHA" decide evalsha 16
med_shipped=$MEDIAN

cat >"$WORK/decide.lua" <<EOF
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $TOKEN"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/decide/recommend", nil,
    '{"anon":"a' .. (n * 7919 % $(wc -l <"$SESS") + 1) .. '","k":10}')
end
done = function(s, lat, req)
  local e = s.errors
  io.write(string.format("rps=%.0f p50_us=%d p99_us=%d p999_us=%d errors=%d\\n",
    s.requests / (s.duration / 1e6), lat:percentile(50), lat:percentile(99),
    lat:percentile(99.9), e.connect + e.read + e.write + e.timeout + e.status))
end
EOF
wk=$(timeout "$STEP_TIMEOUT" wrk -t1 -c8 -d"${RUN}s" -s "$WORK/decide.lua" "http://127.0.0.1:$PORT" | tail -1)
show "wrk HTTP decide (8 conns, home page)" "$wk" "$(rss "$TAILOR_PID")"
mem_shipped=$(rss "$TAILOR_PID")
stop_tailor

echo
echo "== the equivalent query: a strategy returning the trending top k"
start_tailor "$WORK/trending"
de=$(dload "$PORT" decide); show "tailor decide (trending top 10)" "$de" "$(rss "$TAILOR_PID")"
de_rps=$(field rps "$de")
de1=$(dload "$PORT" decide --depth 1); show "  same, not pipelined (closed loop)" "$de1"
de1_rps=$(field rps "$de1")
half=$((${de1_rps%.*} / 2))
hl=$(dload "$PORT" decide --rate "$half"); show "tailor decide @ $half/s (half its own)" "$hl" "behind $(field behind "$hl")"
rl=$(dload "$REDIS_PORT" evalsha --rate "$half"); show "redis EVALSHA @ $half/s" "$rl"
half16=$((${de_rps%.*} / 2))
hl16=$(dload "$PORT" decide --rate "$half16"); show "tailor decide @ $half16/s" "$hl16" "behind $(field behind "$hl16")"
rl16=$(dload "$REDIS_PORT" evalsha --rate "$half16"); show "redis EVALSHA @ $half16/s" "$rl16"
alternate "trending / EVALSHA" decide evalsha 16
med_trend=$MEDIAN
mem_trend=$(rss "$TAILOR_PID")
stop_tailor

echo
echo "== memory"
echo "tailor serve, shipped strategies, after its load: $mem_shipped"
echo "tailor serve, trending strategy, after its load:  $mem_trend"
echo "redis-server:                                     $(rss "$REDIS_PID")"
echo
echo "== ratios (tailor / redis EVALSHA, $EV_CONNS connections pipelined by 16)"
echo "decide (trending) / EVALSHA, median of $ROUNDS alternating rounds: $med_trend"
echo "decide (shipped) / EVALSHA, median of $ROUNDS alternating rounds:  $med_shipped"
echo "single runs, minutes apart:"
awk -v a="$de_rps" -v b="$ev_rps" 'BEGIN {printf "decide (trending) / EVALSHA throughput:  %.3f\n", a / b}'
awk -v a="$ds_rps" -v b="$ev_rps" 'BEGIN {printf "decide (shipped) / EVALSHA throughput:   %.3f\n", a / b}'
awk -v a="$(field rps "$pg")" -v b="$ev_rps" 'BEGIN {printf "ping / EVALSHA throughput:               %.3f\n", a / b}'
echo "decide p99 at half its own capacity (not pipelined): trending $(field p99_us "$hl") us, shipped $(field p99_us "$hs") us (target < 1000)"
echo "  at half the pipelined capacity: trending $(field p99_us "$hl16") us (redis $(field p99_us "$rl16") us), shipped $(field p99_us "$hs16") us"
fi

if has_part events; then
  echo
  echo "== durable events: $EV_CONNS connections, tailor event (shipped strategies) vs redis ZINCRBY (AOF, fsync always)"
  redis-cli -p "$REDIS_PORT" config set appendonly yes >/dev/null
  redis-cli -p "$REDIS_PORT" config set appendfsync always >/dev/null
  sleep 1
  # What a durable write costs this disk: both sides wait for an fsync per
  # group commit (Redis per event-loop turn), so unpipelined it bounds
  # both, and the ratio moves with it from machine to machine.
  python3 - "$WORK/fsync.probe" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
os.write(fd, b"\0" * (1 << 20)); os.fsync(fd)
ts = []
for i in range(200):
    t = time.perf_counter()
    os.pwrite(fd, b"x" * 4096, (i * 4096) % (1 << 20)); os.fdatasync(fd)
    ts.append(time.perf_counter() - t)
os.close(fd); os.unlink(sys.argv[1])
ts.sort()
print("disk: fdatasync after a 4 KiB write p50 %.0f us, p90 %.0f us (one per commit, either side)"
      % (ts[100] * 1e6, ts[180] * 1e6))
PY
  start_tailor "$STRATEGIES"
  printf "%-10s %12s %12s %8s   %s\n" "pipeline" "tailor ev/s" "redis ev/s" "ratio" "p50 / p99 us (tailor | redis)"
  for depth in 1 16; do
    te=$(timeout "$STEP_TIMEOUT" "$LOAD" --port "$PORT" --mode event --conns "$EV_CONNS" --depth "$depth" \
      --seconds "$RUN" --warmup 1 --sessions "$SESS" --token "$TOKEN")
    re=$(timeout "$STEP_TIMEOUT" "$LOAD" --port "$REDIS_PORT" --mode zincrby --conns "$EV_CONNS" \
      --depth "$depth" --seconds "$RUN" --warmup 1 --sessions "$SESS")
    printf "%-10s %12s %12s %8s   %s / %s | %s / %s  errors %s | %s\n" "$depth" "$(field rps "$te")" \
      "$(field rps "$re")" "$(awk -v a="$(field rps "$te")" -v b="$(field rps "$re")" 'BEGIN {printf "%.3f", a / b}')" \
      "$(field p50_us "$te")" "$(field p99_us "$te")" "$(field p50_us "$re")" "$(field p99_us "$re")" \
      "$(field errors "$te")" "$(field errors "$re")"
  done
  for depth in 1 16; do alternate "events / ZINCRBY, pipeline $depth" event zincrby "$depth"; done
  echo "tailor serve after the events: $(rss "$TAILOR_PID")"
  stop_tailor
fi
