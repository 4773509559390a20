#!/usr/bin/env python3
"""console_bench.py: the merchant console on a store of 1 M events.

    bench/console_bench.py                 # ~3 minutes on two cores
    bench/console_bench.py --work DIR      # keep the store in DIR and reuse it

1. Builds a store of --events events (default 1,000,000) with `tailor
   ingest`: the catalog and 20,000 customer profiles, then the Diginetica
   training sessions (../shared/data/diginetica) as views over the last 60
   days, with what the console counts mixed in: recommendations shown and
   clicked, popups shown and clicked, email clicks, carts and orders (a
   quarter of the sessions are a returning customer's).
2. Starts `tailor serve` with the shipped strategies, makes --decisions
   (20,000) product page decisions for as many visitors (exposures of the
   shipped experiment: the report joins each with its outcomes) and
   schedules a few
   abandoned-cart emails, so every page has something to show.
3. Times every admin API endpoint a console page reads (the first call,
   then --runs more: median and worst), and, when playwright-core and
   chromium are there (NODE_PATH, as the browser tests set it), each page
   drawn in chromium (the console's own data-render-ms: from asking the API
   to the page drawn).

Environment: TAILOR (default build/release/tailor, built when missing),
DATA, CHROMIUM (default /usr/bin/chromium), NODE_PATH.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADMIN = "bench-admin-token-0123456789abcdef"
STOREFRONT = "bench-storefront-token-0123456789"
DAY = 86400000


def generate(path, total, data, seed=7):
    """Writes `total` events as NDJSON; returns counts by type."""
    rnd = random.Random(seed)
    sessions = [line.split() for line in open(os.path.join(data, "train.sessions"))]
    items = sorted({i for s in sessions for i in s}, key=int)
    now = int(time.time() * 1000)
    start = now - 60 * DAY
    counts = {}
    out = open(path, "w")
    n = 0

    def put(ev):
        nonlocal n
        out.write(json.dumps(ev, separators=(",", ":")) + "\n")
        counts[ev["type"]] = counts.get(ev["type"], 0) + 1
        n += 1

    price = {}
    for i in items:
        price[i] = round(5 + (int(i) * 7919 % 19500) / 100, 2)
        put({"type": "item_upsert", "ts": start - DAY, "item": {
            "id": "i" + i, "name": "Item " + i, "price": price[i],
            "category": "C%d/S%d" % (int(i) % 12, int(i) % 97)}})
    customers = 20000
    for c in range(customers):
        put({"type": "customer_upsert", "ts": start - DAY, "customer": {
            "id": "c%d" % c, "email": "c%d@example.com" % c,
            "consent": {"email": c % 3 != 0}}})
    span = now - 2 * 3600000 - start
    for k, views in enumerate(sessions):
        if n >= total:
            break
        ts = start + span * k // len(sessions)
        who = ({"customer": "c%d" % rnd.randrange(customers)} if rnd.random() < 0.25
               else {"anon": "a%d" % k})
        who["session"] = "s%d" % k
        def ev(kind, **kw):
            e = {"type": kind, "ts": ts}
            e.update(who)
            e.update(kw)
            return e
        if rnd.random() < 0.3:
            widget = rnd.choice(["home", "product", "cart"])
            put(ev("rec_shown", name=widget, items=[{"id": "i" + i} for i in views[:4]],
                   props={"strategy": "recommend.lua"}))
            if rnd.random() < 0.3:
                put(ev("rec_clicked", name=widget, item="i" + views[0],
                       props={"strategy": "recommend.lua"}))
        if rnd.random() < 0.1:
            put(ev("popup_shown", name="free_shipping", props={"strategy": "popup.lua"}))
            if rnd.random() < 0.3:
                put(ev("popup_clicked", name="free_shipping", props={"strategy": "popup.lua"}))
        if "customer" in who and rnd.random() < 0.05:
            put(ev("email_clicked", name="win_back"))
        for i in views:
            ts += rnd.randrange(5000, 60000)
            put(ev("view", item="i" + i))
        if rnd.random() < 0.15:
            put(ev("add_to_cart", item="i" + views[-1], price=price[views[-1]]))
            if rnd.random() < 0.4:
                ts += 30000
                lines = [{"id": "i" + views[-1], "price": price[views[-1]], "quantity": 1}]
                put(ev("purchase", order_id="o%d" % k, items=lines, currency="EUR"))
    out.close()
    return counts, n


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Client:
    def __init__(self, port):
        self.port = port
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method, path, body=None, token=ADMIN):
        headers = {"Authorization": "Bearer " + token}
        if body is not None:
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        t0 = time.perf_counter()
        self.c.request(method, path, body=body, headers=headers)
        r = self.c.getresponse()
        data = r.read()
        ms = (time.perf_counter() - t0) * 1000
        if r.status != 200:
            raise RuntimeError("%s %s: %d %s" % (method, path, r.status, data[:300]))
        return ms, data


def start_serve(tailor, work, port):
    cfg = {"db": os.path.join(work, "shop.db"),
           "strategies": os.path.join(ROOT, "strategies"),
           "server": {"listen": "127.0.0.1:%d" % port, "deliver_interval_ms": 0,
                      "tokens": [{"token": ADMIN, "role": "admin"},
                                 {"token": STOREFRONT, "role": "storefront"}]}}
    with open(os.path.join(work, "tailor.json"), "w") as f:
        json.dump(cfg, f)
    log = open(os.path.join(work, "serve.log"), "w")
    t0 = time.time()
    proc = subprocess.Popen([tailor, "serve", "--config", os.path.join(work, "tailor.json")],
                            stdout=log, stderr=subprocess.STDOUT)
    while True:
        text = open(os.path.join(work, "serve.log")).read()
        if "ready:" in text:
            return proc, time.time() - t0
        if proc.poll() is not None or time.time() - t0 > 900:
            proc.kill()
            sys.exit("tailor serve did not start:\n" + text)
        time.sleep(0.1)


def render_times(port):
    """Each page drawn in chromium: {page: ms}, or None without playwright."""
    script = os.path.join(ROOT, "bench", "console_render.js")
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not shutil.which("node") or not os.path.exists(chromium):
        return None
    r = subprocess.run(["node", script, "http://127.0.0.1:%d" % port, ADMIN, chromium],
                       capture_output=True, text=True, timeout=600)
    if r.returncode:
        print("render: " + (r.stderr.strip() or r.stdout.strip())[:500])
        return None
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1000000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--decisions", type=int, default=20000)
    ap.add_argument("--work", help="folder for the store, kept and reused")
    ap.add_argument("--no-render", action="store_true", help="skip chromium")
    args = ap.parse_args()
    tailor = os.environ.get("TAILOR", os.path.join(ROOT, "build", "release", "tailor"))
    data = os.environ.get("DATA", os.path.join(ROOT, "..", "shared", "data", "diginetica"))
    if not os.path.exists(tailor):
        build = os.path.dirname(tailor)
        subprocess.run(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release"],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", build, "-j2", "--target", "tailor"], check=True,
                       stdout=subprocess.DEVNULL)
    work = args.work or tempfile.mkdtemp(prefix="console_bench")
    os.makedirs(work, exist_ok=True)
    db = os.path.join(work, "shop.db")
    if not os.path.exists(db):
        t0 = time.time()
        counts, n = generate(os.path.join(work, "events.ndjson"), args.events, data)
        print("== data: %d events (%s), generated in %.1f s" % (
            n, ", ".join("%s %d" % kv for kv in sorted(counts.items(), key=lambda kv: -kv[1])),
            time.time() - t0))
        t0 = time.time()
        subprocess.run([tailor, "ingest", "--quiet", "--db", db,
                        os.path.join(work, "events.ndjson")], check=True,
                       stdout=subprocess.DEVNULL)
        print("tailor ingest: %.1f s" % (time.time() - t0))
        os.remove(os.path.join(work, "events.ndjson"))
    else:
        print("== reusing the store in " + work)
    port = free_port()
    proc, opened = start_serve(tailor, work, port)
    print("tailor serve: ready in %.1f s (%s)" % (opened, tailor))
    try:
        c = Client(port)
        stats = json.loads(c.call("GET", "/v1/stats")[1])
        print("store: %d events, %d customers, %d sessions in the index" % (
            stats["events_total"], stats["customers"], stats["index"]["sessions"]))
        # Exposures of the shipped experiment, and emails in the outbox.
        t0 = time.time()
        for k in range(args.decisions):
            c.call("POST", "/v1/decide/recommend", {
                "anon": "a%d" % (k * 7), "page": {"type": "product", "item": "i%d" % (k + 1)},
                "k": 4}, token=STOREFRONT)
        now = int(time.time() * 1000)
        evs = []
        for k in range(20):
            evs.append({"type": "add_to_cart", "customer": "c%d" % (3 * k + 1),
                        "session": "bench-cart-%d" % k, "item": "i%d" % (k + 1), "ts": now - 5000})
        c.call("POST", "/v1/events", evs)
        print("%d decisions and 20 carts sent in %.1f s" % (args.decisions, time.time() - t0))
        box = json.loads(c.call("GET", "/admin/api/outbox")[1])
        key = box["rows"][0]["key"] if box["rows"] else None
        # What each page reads (console/console.js).
        pages = [
            ("overview", "/admin/api/overview"),
            ("revenue", "/admin/api/revenue?window_hours=24"),
            ("revenue", "/admin/api/revenue?window_hours=24&days=7"),
            ("experiments", "/admin/api/experiments"),
            ("outbox", "/admin/api/outbox"),
            ("outbox", "/admin/api/outbox/message?key=" + key if key else None),
            ("preview", "/admin/api/preview?customer=c1"),
            ("strategies", "/admin/api/strategies"),
        ]
        for extra in ("audiences", "audiences/members?audience=buyers&days=14",
                      "audiences/members?segment=1", "audiences/export?audience=buyers&days=14"):
            try:
                c.call("GET", "/admin/api/" + extra)
                pages.append(("audiences", "/admin/api/" + extra))
            except RuntimeError:
                pass  # a build without the page
        print("\n%-12s %-52s %9s %9s %9s" % ("page", "endpoint", "first ms", "p50 ms", "max ms"))
        for page, path in pages:
            if not path:
                continue
            first = c.call("GET", path)[0]
            runs = [c.call("GET", path)[0] for _ in range(args.runs)]
            print("%-12s %-52s %9.1f %9.1f %9.1f" % (page, path[len("/admin/api/"):][:52], first,
                                                      statistics.median(runs), max(runs)))
        if not args.no_render:
            times = render_times(port)
            if times:
                print("\nchromium, page drawn (data-render-ms, median of 5 after a first):")
                for page, ms in times.items():
                    print("  %-12s %7.1f ms" % (page, ms))
            else:
                print("\n(no chromium render: node, playwright-core (NODE_PATH) or chromium missing)")
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
