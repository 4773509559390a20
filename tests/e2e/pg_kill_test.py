"""pg_kill_test.py: three `tailor serve` nodes on one PostgreSQL database,
one SIGKILLed under load and restarted (issue 18).  Clients send events to
all three with retries (a refused or unanswered request is sent again, to
the next node, with the same message id); afterwards every acknowledged
event is in the log exactly once, and the three nodes, the restarted one
included, hold the same index and answer the same decisions.
"""

import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pg"))

from pg_kit import Postgres  # noqa: E402
from serve_kit import ADMIN, Checks, Server, result  # noqa: E402
from pg_nodes_test import applied, decisions, stats  # noqa: E402

CLIENTS = 6
PER_CLIENT = 150


def client(k, nodes, acked, stop_at):
    """Send PER_CLIENT events, each until some node acknowledges it."""
    conns = {}
    for i in range(PER_CLIENT):
        msg = "k%d-%d" % (k, i)
        ev = {"type": "view" if i % 4 else "add_to_cart", "item": "sku%d" % ((i * 7 + k) % 30),
              "anon": "v%d-%d" % (k, i % 11), "session": "s%d-%d" % (k, i % 5),
              "message_id": msg}
        for attempt in range(200):
            node = nodes[(k + i + attempt) % len(nodes)]
            try:
                c = conns.get(id(node))
                if c is None or c[0] != node.proc.pid:
                    cl = node.connect(timeout=5)
                    cl.call("auth", token=ADMIN)
                    conns[id(node)] = c = (node.proc.pid, cl)
                r = c[1].call("event", event=ev)
                if result(r) is not None:
                    acked.append(msg)
                    break
            except Exception:  # noqa: BLE001 - a dead node: next one
                conns.pop(id(node), None)
            time.sleep(0.05)
        if time.time() > stop_at:
            return


def main():
    ck = Checks()
    with Postgres() as pg:
        nodes = []
        try:
            for n in range(3):
                ckpt = os.path.join(pg.dir, "node%d.ckpt" % n) if n == 2 else None
                nodes.append(Server(db=pg.url, engine={"index": {"checkpoint": ckpt}} if ckpt
                                    else None))
            acked = []
            stop_at = time.time() + 120
            ts = [threading.Thread(target=client, args=(k, nodes, acked, stop_at))
                  for k in range(CLIENTS)]
            for t in ts:
                t.start()
            time.sleep(1.0)
            victim = nodes[2]
            victim.send_signal(signal.SIGKILL)
            victim.proc.wait()
            victim.log.close()
            time.sleep(1.0)
            victim.start()
            for t in ts:
                t.join()
            total = CLIENTS * PER_CLIENT
            ck.check("every event acknowledged", len(acked) == total, len(acked))
            rows = pg.psql("SELECT msg_id FROM events").split()
            ck.check("no acknowledged event lost",
                     not (set(acked) - set(rows)), sorted(set(acked) - set(rows))[:10])
            ck.check("none doubled", len(rows) == len(set(rows)), len(rows) - len(set(rows)))
            n = len(rows)
            end = time.time() + 60
            while time.time() < end and not all(applied(x) == n for x in nodes):
                time.sleep(0.2)
            ck.check("the three nodes applied the whole log once",
                     all(applied(x) == n for x in nodes), [applied(x) for x in nodes])
            idx = [stats(x).get("index") for x in nodes]
            ck.check("same index on the three", idx[0] == idx[1] == idx[2], idx)
            d = [decisions(x) for x in nodes]
            ck.check("same decisions on the three", d[0] == d[1] == d[2], d)
            for x in nodes:
                ck.stopped_clean(x)
        finally:
            for x in nodes:
                x.cleanup()
    return ck.done()


if __name__ == "__main__":
    sys.exit(main())
