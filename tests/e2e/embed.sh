#!/usr/bin/env bash
# embed.sh: libtailor as a user outside the tree gets it: install the build
# into a prefix, check that the library exports nothing but tailor_*, build
# examples/embed from the installed headers, library and tailor.pc alone,
# then drive the multi-threaded example service over loopback.
set -u
T=${TAILOR:?} ROOT=${TAILOR_ROOT:?}
build=$(dirname "$T")
dir=$(mktemp -d "${TAILOR_TEST_TMP:-/tmp}/embedXXXXXX")
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { local name=$1; shift; if "$@"; then ok; else bad "$name"; fi; }
finish() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; echo "$pass passed, $fail failed"; [ "$fail" = 0 ]; exit $?; }

cmake --install "$build" --prefix "$dir/prefix" >/dev/null
expect "install succeeds" test -f "$dir/prefix/include/tailor.h"
lib=$(ls "$dir"/prefix/lib*/libtailor.so.0.* | head -1)
expect "versioned shared library" test -n "$lib"
expect "SONAME libtailor.so.0" sh -c "objdump -p '$lib' | grep -q 'SONAME *libtailor.so.0'"
expect "static archive installed" test -f "$(dirname "$lib")/libtailor.a"
expect "CMake package installed" test -f "$(dirname "$lib")/cmake/tailor/tailorConfig.cmake"
others=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^tailor_' || true)
expect "exports nothing but tailor_* (got: $others)" test -z "$others"
expect "exports the API" sh -c "nm -D --defined-only '$lib' | grep -q ' tailor_decide$'"

# Build the example as a user would: a copy outside the tree, pkg-config only.
cp "$ROOT/examples/embed/recsvc.c" "$ROOT/examples/embed/Makefile" "$dir/"
export PKG_CONFIG_PATH="$(dirname "$lib")/pkgconfig"
extra=""
# A sanitizer build of the library needs the same runtime in the program.
ldd "$lib" | grep -q libasan && extra="-fsanitize=address,undefined"
make -s -C "$dir" CFLAGS="-O1 -Wall -Wextra -Werror $extra" LDFLAGS="$extra" >"$dir/build.log" 2>&1
expect "example builds from the installed package" test -x "$dir/recsvc"
[ -x "$dir/recsvc" ] || { cat "$dir/build.log" >&2; finish; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LD_LIBRARY_PATH="$(dirname "$lib")" ASAN_OPTIONS=detect_leaks=0 \
  "$dir/recsvc" --port "$port" --db "$dir/shop.db" --strategies "$ROOT/strategies" >"$dir/out" 2>&1 &
pid=$!
for _ in $(seq 50); do grep -q listening "$dir/out" && break; sleep 0.1; done
expect "service starts" grep -q listening "$dir/out"

python3 - "$port" >"$dir/client.log" 2>&1 <<'PY'
import json, sys, threading, urllib.request
base = "http://127.0.0.1:%s" % sys.argv[1]
def call(path, data=None):
    req = urllib.request.Request(base + path, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())
events = []
for i in range(1, 9):
    events.append({"type": "item_upsert", "item": {"id": "i%d" % i, "name": "Item %d" % i, "category": "C/S", "price": 10}})
for n in range(30):
    events.append({"type": "purchase", "customer": "c%d" % n, "order_id": "o%d" % n,
                   "items": [{"id": "i1"}, {"id": "i2"}], "ts": "2026-01-01T00:00:00Z"})
events.append({"type": "view", "anon": "v1"})  # bad: no item
got = call("/events", "\n".join(json.dumps(e) for e in events).encode())
assert got == {"accepted": 38, "rejected": 1}, got
assert call("/health")["ok"] is True
# Many threads at once, each answer consistent with the data.
errors = []
def worker(n):
    try:
        for _ in range(25):
            d = call("/recommend?visitor=v%d&item=i1&k=3" % n)
            ids = [x["id"] for x in d["items"]]
            if not ids or ids[0] != "i2" or "fallback" in d:
                errors.append(d)
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors[:3]
print("client ok")
PY
expect "the service ingests, and decides from 8 client threads" grep -q "client ok" "$dir/client.log" || cat "$dir/client.log" >&2
kill -TERM "$pid"; wait "$pid"; code=$?; pid=
expect "service stops cleanly on SIGTERM (exit $code)" test "$code" = 0
finish
