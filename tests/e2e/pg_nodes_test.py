"""pg_nodes_test.py: two `tailor serve` nodes on one PostgreSQL database
(issue 18).  The test starts its own PostgreSQL 15 (tests/pg/pg_kit.py),
sends events to both nodes, some of them twice (a client's retry to the
other node, same message id), and checks that both nodes applied the whole
log once, in the same order, and answer the same decisions; then a node
restarts and catches up from the log.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pg"))

from pg_kit import Postgres  # noqa: E402
from serve_kit import ADMIN, RECOMMEND, Checks, Server, result  # noqa: E402

ITEMS = ["sku%d" % i for i in range(40)]
VISITORS = ["v%d" % i for i in range(30)]


# The kit's strategy, and on pages of type "expo" an experiment's exposure.
RECOMMEND_EXPO = RECOMMEND.replace(
    "return { recommend = function(ctx)",
    "return { recommend = function(ctx)\n"
    "  if ctx.page.type == 'expo' then tailor.experiment('layout', { 'a', 'b' }, ctx.customer.anon) end")


def events(n):
    """n view and cart events with message ids, a fixed mix."""
    out = []
    for i in range(n):
        kind = "add_to_cart" if i % 7 == 0 else "view"
        out.append({"type": kind, "item": ITEMS[(i * 13) % len(ITEMS) if i % 3 else i % 5],
                    "anon": VISITORS[i % len(VISITORS)], "session": "s%d" % (i % 45),
                    "message_id": "m-%d" % i})
    return out


def stats(node):
    c = node.connect()
    c.call("auth", token=ADMIN)
    r = result(c.call("stats"))
    c.close()
    return r or {}


def applied(node):
    return stats(node).get("index", {}).get("events_applied")


def wait_applied(nodes, n, deadline=30):
    end = time.time() + deadline
    while time.time() < end:
        if all(applied(x) == n for x in nodes):
            return True
        time.sleep(0.1)
    return False


def decisions(node):
    c = node.connect()
    c.call("auth", token=ADMIN)
    out = []
    for v in VISITORS[:12] + ["new-visitor"]:
        r = result(c.call("decide", kind="recommend", anon=v, k=6))
        out.append([x.get("id") for x in (r or {}).get("items", [])])
    c.close()
    return out


def send(node, evs, acks):
    c = node.connect()
    c.call("auth", token=ADMIN)
    for i in range(0, len(evs), 25):
        r = c.call("events", events=evs[i:i + 25])
        acks.append(result(r) is not None)
    c.close()


def main():
    ck = Checks()
    with Postgres() as pg:
        n1 = Server(db=pg.url, recommend=RECOMMEND_EXPO)
        ckpt = os.path.join(n1.dir, "node2.ckpt")
        n2 = Server(db=pg.url, engine={"index": {"checkpoint": ckpt, "checkpoint_every": 10}},
                    recommend=RECOMMEND_EXPO)
        try:
            evs = events(600)
            # Each node gets half; every tenth event is retried on the other
            # node too, as a client that timed out would.
            half1 = [e for i, e in enumerate(evs) if i % 2 == 0]
            half2 = [e for i, e in enumerate(evs) if i % 2 == 1]
            retries = [e for i, e in enumerate(evs) if i % 10 == 0]
            acks = []
            ts = [threading.Thread(target=send, args=(n1, half1, acks)),
                  threading.Thread(target=send, args=(n2, half2, acks)),
                  threading.Thread(target=send, args=(n2, retries, acks))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            ck.check("every batch acknowledged", all(acks) and len(acks) == 27, acks)
            ck.check("the log holds each event once",
                     pg.psql("SELECT count(*), count(DISTINCT msg_id) FROM events") == "600|600",
                     pg.psql("SELECT count(*), count(DISTINCT msg_id) FROM events"))
            ck.check("both nodes applied the whole log once", wait_applied([n1, n2], 600),
                     (applied(n1), applied(n2)))
            ck.check("node 2 checkpoints as it goes (index.checkpoint_every)", os.path.exists(ckpt))
            s1, s2 = stats(n1), stats(n2)
            ck.check("same index on both", s1.get("index") == s2.get("index"),
                     (s1.get("index"), s2.get("index")))
            ck.check("same events by type", s1.get("events") == s2.get("events"),
                     (s1.get("events"), s2.get("events")))
            log = s1.get("log", {})
            ck.check("stats show the log position", log.get("store") == "postgresql" and
                     log.get("position", 0) > 0 and log.get("behind") == 0, log)
            import urllib.request
            req = urllib.request.Request("http://127.0.0.1:%d/metrics" % n1.port,
                                         headers={"Authorization": "Bearer " + ADMIN})
            text = urllib.request.urlopen(req, timeout=10).read().decode()
            ck.check("/metrics exports the log position and lag",
                     "tailor_log_position " in text and "tailor_log_behind_events 0" in text
                     and "tailor_log_read_age_seconds " in text, text[-1500:])
            d1, d2 = decisions(n1), decisions(n2)
            ck.check("decisions are not empty", any(d1), d1)
            ck.check("both nodes decide the same", d1 == d2, (d1, d2))

            # A node's own event is seen (60 views: more than any other
            # item's 43) by its next decision on the same
            # connection (read your writes through the log).
            c = n2.connect()
            c.call("auth", token=ADMIN)
            for i in range(60):
                c.call("event", event={"type": "view", "item": "fresh", "anon": "f%d" % i,
                                       "message_id": "fresh-%d" % i})
            r = result(c.call("decide", kind="recommend", anon="nobody", k=1))
            c.close()
            ck.check("a node's own events are applied before its next decision",
                     r and [x.get("id") for x in r.get("items", [])] == ["fresh"], r)

            # Exposures (a page of type "expo" is in an experiment) reach
            # the database with the node's next commit.
            c = n1.connect()
            c.call("auth", token=ADMIN)
            for i in range(5):
                result(c.call("decide", kind="recommend", anon="expo-%d" % i, k=3,
                              page={"type": "expo"}))
            c.call("event", event={"type": "view", "item": "fresh", "anon": "expo-0",
                                   "message_id": "expo-commit"})
            c.close()
            ck.check("exposures are written to the database",
                     pg.psql("SELECT count(DISTINCT unit) FROM exposures "
                             "WHERE experiment = 'layout'") == "5",
                     pg.psql("SELECT experiment, unit, variant FROM exposures"))
            # The report on PostgreSQL: per person, in the arm they saw first,
            # each order once. expo-0 logs in as pg-buyer and buys once, an
            # order naming both ids.
            c = n1.connect()
            c.call("auth", token=ADMIN)
            c.call("event", event={"type": "identify", "customer": "pg-buyer", "anon": "expo-0"})
            c.call("event", event={"type": "purchase", "customer": "pg-buyer", "anon": "expo-0",
                                   "order_id": "pg-o1", "items": [{"id": "fresh", "price": 30}]})
            c.close()
            # Seen again after login, under the customer id, in the other arm.
            pg.psql("INSERT INTO exposures(experiment, unit, variant, ts) SELECT experiment, "
                    "'pg-buyer', CASE variant WHEN 'a' THEN 'b' ELSE 'a' END, ts + 1 "
                    "FROM exposures WHERE unit = 'expo-0'")
            req = urllib.request.Request("http://127.0.0.1:%d/admin/api/experiments" % n1.port,
                                         headers={"Authorization": "Bearer " + ADMIN})
            rep = json.loads(urllib.request.urlopen(req, timeout=10).read().decode())
            arms = rep[0]["variants"] if rep else []
            ck.check("the experiment report counts 5 visitors and one order of 30, once",
                     sum(v["exposures"] for v in arms) == 5 and
                     round(sum(v["conversion"] * v["exposures"] for v in arms)) == 1 and
                     round(sum(v["revenue_per_visitor"] * v["exposures"] for v in arms)) == 30,
                     rep)

            # A restarted node replays the log from the database and agrees.
            ck.check("node 2 stops cleanly", n2.stop() == 0)
            ck.check("node 2 wrote its checkpoint", os.path.exists(ckpt))
            # Events while node 2 is down: it loads its checkpoint and
            # replays only these from its log position.
            acks = []
            send(n1, events(700)[600:], acks)
            ck.check("events while a node is down are acknowledged", all(acks), acks)
            n2.start()
            ck.check("node 2 caught up after its restart", wait_applied([n1, n2], 763),
                     (applied(n1), applied(n2)))
            ck.check("and decides as node 1 does", decisions(n1) == decisions(n2))
            log2 = n2.read_log().decode(errors="replace")
            ck.check("from its checkpoint, not the whole log",
                     "rebuilding" not in log2 and "checkpoint" not in log2.split("stopped")[-1],
                     log2[-2000:])
            # A customer erased through node 1: node 2's checkpoint, which
            # held them in plain bytes, is written again without them.
            c = n1.connect()
            c.call("auth", token=ADMIN)
            c.call("identify", customer="erase-me-0042", anon="v7")
            c.call("event", event={"type": "view", "item": "sku3", "customer": "erase-me-0042",
                                   "message_id": "erase-view"})
            for i in range(12):  # past index.checkpoint_every: node 2 writes one
                c.call("event", event={"type": "view", "item": "sku4", "anon": "v8",
                                       "message_id": "after-%d" % i})
            c.close()
            deadline = time.time() + 20
            while time.time() < deadline and b"erase-me-0042" not in open(ckpt, "rb").read():
                time.sleep(0.2)
            ck.check("node 2's checkpoint holds the customer first",
                     b"erase-me-0042" in open(ckpt, "rb").read())
            c = n1.connect()
            c.call("auth", token=ADMIN)
            forgot = c.call("customer.forget", customer="erase-me-0042")
            c.close()
            ck.check("the erasure through node 1", result(forgot) is not None, forgot)
            # The node removes the checkpoint, then writes it again: read
            # it whole or not at all (it may go between a look and a read).
            def written():
                try:
                    with open(ckpt, "rb") as f:
                        return f.read()
                except FileNotFoundError:
                    return None
            deadline = time.time() + 20
            now = written()
            while time.time() < deadline and (now is None or b"erase-me-0042" in now):
                time.sleep(0.2)
                now = written()
            ck.check("node 2's checkpoint no longer holds them",
                     now is not None and b"erase-me-0042" not in now)
            ck.stopped_clean(n1)
            ck.stopped_clean(n2)
            if ck.failed:
                sys.stderr.write(n1.read_log().decode(errors="replace")[-3000:])
                sys.stderr.write(n2.read_log().decode(errors="replace")[-3000:])
        finally:
            n1.cleanup()
            n2.cleanup()
    return ck.done()


if __name__ == "__main__":
    sys.exit(main())
