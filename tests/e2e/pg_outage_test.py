"""pg_outage_test.py: PostgreSQL stopped and started again under load, with
two `tailor serve` nodes on it (issue 18).

Clients send events with message ids to both nodes, each retried (same id,
the other node) until acknowledged; another client sends each of its
events once and never again.  PostgreSQL is stopped (pg_ctl stop -m fast)
for a few seconds and started again on the same port.  Checked:

- during the outage an event gets a clear error at once (store_error,
  saying whether anything may be stored), never a hang or a dropped
  connection, and the nodes stay up; decisions are still answered from the
  in-memory index;
- the nodes report the outage: stats' log.reachable false with the error,
  /metrics tailor_store_up 0, the log says so; and its end;
- after the restart writes are accepted again at once (time to resume
  measured), the followers catch up;
- every event a client saw acknowledged is in the log exactly once, and an
  event refused as "nothing stored" is not there;
- both nodes applied the whole log and agree (index stats, decisions);
- after a second outage with no traffic at all, the first event sent to
  each node is acknowledged: idle connections the restart closed are
  found and reopened before use, not by a failed request.
"""

import os
import re
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))

from pg_kit import Postgres  # noqa: E402
from pg_nodes_test import applied, decisions, stats  # noqa: E402
from serve_kit import ADMIN, Checks, Server, result  # noqa: E402

CLIENTS = 4
OUTAGE_S = 3.0       # from pg_ctl stop returning to pg_ctl start
HANG_S = 5.0         # an answer slower than this is a hang
NOT_STORED = "nothing of this request was stored"
MAYBE_STORED = "may be stored"


class Load:
    """The clients and what they saw: (time sent, latency, node, what)."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = []          # message ids acknowledged to retrying clients
        self.once = {}           # once-client: message id -> "ack" / error message / "exc"
        self.errors = []         # (t, latency, node, code, message)
        self.exceptions = []     # (t, node, repr)
        self.acks = []           # (t, node index) of every acknowledgement
        self.slowest = 0.0

    def call(self, conns, n, ev):
        node = self.nodes[n]
        c = conns.get(n)
        if c is None:
            c = node.connect(timeout=3 * HANG_S)
            c.call("auth", token=ADMIN)
            conns[n] = c
        t0 = time.time()
        r = c.call("event", event=ev)
        lat = time.time() - t0
        with self.lock:
            self.slowest = max(self.slowest, lat)
            if result(r) is not None:
                self.acks.append((t0 + lat, n))
            else:
                err = (r or {}).get("error", {})
                self.errors.append((t0, lat, n, err.get("code"), err.get("message", "")))
        return r

    def retrying(self, k):
        conns, i = {}, 0
        while not self.stop.is_set():
            msg = "k%d-%d" % (k, i)
            ev = {"type": "view" if i % 5 else "add_to_cart", "item": "sku%d" % ((i * 7 + k) % 25),
                  "anon": "v%d-%d" % (k, i % 9), "session": "s%d-%d" % (k, i % 4),
                  "message_id": msg}
            for attempt in range(1000):
                n = (k + i + attempt) % len(self.nodes)
                try:
                    if result(self.call(conns, n, ev)) is not None:
                        with self.lock:
                            self.acked.append(msg)
                        break
                except Exception as e:  # noqa: BLE001 - recorded, checked after
                    with self.lock:
                        self.exceptions.append((time.time(), n, repr(e)))
                    conns.pop(n, None)
                time.sleep(0.05)
            i += 1
            time.sleep(0.01)

    def once_only(self):
        conns, i = {}, 0
        while not self.stop.is_set():
            msg = "once-%d" % i
            n = i % len(self.nodes)
            try:
                r = self.call(conns, n, {"type": "view", "item": "sku%d" % (i % 25),
                                         "anon": "w%d" % (i % 7), "message_id": msg})
                self.once[msg] = "ack" if result(r) is not None else r["error"]["message"]
            except Exception as e:  # noqa: BLE001
                self.once[msg] = "exc"
                with self.lock:
                    self.exceptions.append((time.time(), n, repr(e)))
                conns.pop(n, None)
            i += 1
            time.sleep(0.05)


def metrics(node):
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % node.port,
                                 headers={"Authorization": "Bearer " + ADMIN})
    return urllib.request.urlopen(req, timeout=HANG_S).read().decode()


def metric(text, name):
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def main():
    ck = Checks()
    check = ck.check
    with Postgres() as pg:
        nodes = []
        try:
            nodes = [Server(db=pg.url), Server(db=pg.url)]
            load = Load(nodes)
            threads = [threading.Thread(target=load.retrying, args=(k,)) for k in range(CLIENTS)]
            threads.append(threading.Thread(target=load.once_only))
            for t in threads:
                t.start()
            time.sleep(2.0)

            # The outage.
            t_stopping = time.time()
            pg.stop("fast")
            t_down = time.time()
            seen = [None, None]
            end = time.time() + HANG_S
            while time.time() < end and not all(seen):
                for n, x in enumerate(nodes):
                    log = stats(x).get("log", {})
                    if not seen[n] and log.get("reachable") is False:
                        seen[n] = log
                time.sleep(0.1)
            check("stats show the outage on both nodes", all(seen), seen)
            for log in filter(None, seen):
                check("stats name the store's error", log.get("error") and
                      log.get("unreachable_ms", 0) > 0, log)
            during = [metrics(x) for x in nodes]
            for text in during:
                check("/metrics: tailor_store_up 0", metric(text, "tailor_store_up") == 0,
                      re.findall(r"^tailor_store.*$", text, re.M))
                check("/metrics counts the refused writes",
                      (metric(text, 'tailor_request_errors_total{code="store_error"}') or 0) > 0,
                      re.findall(r"^tailor_request_errors.*$", text, re.M))
            d = decisions(nodes[0])
            check("decisions answered during the outage, from memory", any(d), d)
            time.sleep(max(0.0, OUTAGE_S - (time.time() - t_down)))
            t_starting = time.time()
            pg.restart()
            t_up = time.time()
            time.sleep(3.0)
            load.stop.set()
            for t in threads:
                t.join(60)
            check("the clients finished", not any(t.is_alive() for t in threads))

            # What the clients saw.
            during_errs = [e for e in load.errors if t_stopping <= e[0] <= t_up]
            resumed = [min((a[0] for a in load.acks if a[0] > t_up and a[1] == n), default=None)
                       for n in range(len(nodes))]
            print("outage: pg_ctl stop took %.2f s, PostgreSQL down %.2f s (start took %.2f s); "
                  "%d events refused during it, slowest answer %.3f s; writes acknowledged "
                  "again %s s after PostgreSQL was up; %d events acknowledged in all"
                  % (t_down - t_stopping, t_up - t_down, t_up - t_starting, len(during_errs),
                     load.slowest, ["%.2f" % (r - t_up) if r else None for r in resumed],
                     len(load.acked)), flush=True)
            check("writes refused during the outage", len(during_errs) > 0, len(load.errors))
            check("every refusal is a store_error",
                  all(e[3] == "store_error" for e in load.errors),
                  [e for e in load.errors if e[3] != "store_error"][:5])
            check("every refusal says whether anything may be stored",
                  all(NOT_STORED in e[4] or MAYBE_STORED in e[4] for e in load.errors),
                  [e[4] for e in load.errors if NOT_STORED not in e[4]][:5])
            check("no answer slower than %g s (no hang)" % HANG_S, load.slowest < HANG_S,
                  load.slowest)
            check("no connection dropped or timed out", not load.exceptions, load.exceptions[:5])
            check("both nodes alive", all(x.proc.poll() is None for x in nodes))
            check("writes resume on both nodes within 2 s",
                  all(r is not None and r - t_up < 2.0 for r in resumed),
                  [r and r - t_up for r in resumed])

            # The log against what was acknowledged.
            rows = pg.psql("SELECT msg_id FROM events").split()
            stored = set(rows)
            check("the log holds each event once", len(rows) == len(stored),
                  len(rows) - len(stored))
            check("every acknowledged event is stored",
                  not set(load.acked) - stored, sorted(set(load.acked) - stored)[:10])
            check("retried events were acknowledged once each",
                  len(load.acked) == len(set(load.acked)), len(load.acked))
            once_acked = {m for m, v in load.once.items() if v == "ack"}
            refused = {m for m, v in load.once.items() if NOT_STORED in v}
            check("single-shot events acknowledged are stored", once_acked <= stored,
                  sorted(once_acked - stored)[:10])
            check("single-shot events refused as not stored are not stored",
                  not refused & stored, sorted(refused & stored)[:10])
            check("some single-shot events were refused", refused, len(load.once))

            # The followers caught up and agree.
            n = len(rows)
            end = time.time() + 30
            while time.time() < end and not all(applied(x) == n for x in nodes):
                time.sleep(0.1)
            check("both nodes applied the whole log", all(applied(x) == n for x in nodes),
                  ([applied(x) for x in nodes], n))
            after = [stats(x) for x in nodes]
            check("stats show the store reachable again",
                  all(s.get("log", {}).get("reachable") is True and
                      "error" not in s.get("log", {}) for s in after),
                  [s.get("log") for s in after])
            check("same index on both", after[0].get("index") == after[1].get("index"),
                  [s.get("index") for s in after])
            d = [decisions(x) for x in nodes]
            check("same decisions on both", d[0] == d[1], d)
            for x in nodes:
                check("/metrics: tailor_store_up 1", metric(metrics(x), "tailor_store_up") == 1)
                log = x.read_log().decode(errors="replace")
                check("the log reports the outage", "the store is unreachable" in log, log[-2000:])
                check("the log reports its end", re.search(r"the store is back after \d+ ms", log),
                      log[-2000:])

            # A quiet outage: nobody writes while PostgreSQL is down; the
            # first event after it must not be the one that finds out.
            pg.stop("fast")
            time.sleep(1.0)
            pg.restart()
            for k, x in enumerate(nodes):
                c = x.connect(timeout=3 * HANG_S)
                c.call("auth", token=ADMIN)
                r = c.call("event", event={"type": "view", "item": "sku1", "anon": "quiet",
                                           "message_id": "quiet-%d" % k})
                check("first event after a quiet outage acknowledged", result(r) is not None, r)
                c.close()
            for x in nodes:
                ck.stopped_clean(x)
        finally:
            for x in nodes:
                x.cleanup()
    return ck.done()


if __name__ == "__main__":
    sys.exit(main())
