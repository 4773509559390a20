"""serve_crash_test.py: SIGKILL at random points of a cart-abandonment load
on a real `tailor serve`, clients that retry as real ones do, and the store
checked after each restart.

Every request is one customer's consenting profile and their add_to_cart,
with message ids.  The test strategy schedules an abandoned-cart email keyed
by the customer and the session's cart count, so an event applied twice
would show as a second key.  Ten rounds: start, load from four connections,
SIGKILL after a random moment, restart.  Clients re-send what was not
answered and, at random, what was (a retry after a lost answer).  Checked:
every acknowledged cart is stored once and has exactly its one email; no
message id is stored twice; nothing acknowledged is lost.
"""

import os
import random
import signal
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from serve_kit import ADMIN, Checks, Server  # noqa: E402

TRIGGERS = """
return { on_event = function(ctx, ev)
  if ev.type ~= "add_to_cart" then return nil end
  return { schedule = { {
    key = "cart:" .. ev.customer .. ":" .. ctx.session.carts,
    template = "abandoned_cart", delay = 3600 } } }
end }
"""

ROUNDS = 10
CONNS = 4


def request(i):
    c = "c%d" % i
    return {"op": "events", "token": ADMIN, "events": [
        {"type": "customer_upsert", "id": "cu-%d" % i,
         "customer": {"id": c, "email": "%s@example.com" % c, "consent": {"email": True}}},
        {"type": "add_to_cart", "id": "cart-%d" % i, "customer": c, "session": "s%d" % i,
         "item": "sku%d" % (i % 50)},
    ]}


class Load:
    """Customers 0..n-1 handed out to connections; what was answered."""

    def __init__(self):
        self.lock = threading.Lock()
        self.next = 0
        self.acked = set()
        self.todo = []  # sent but not answered, or picked for a retry

    def take(self):
        with self.lock:
            if self.todo:
                return self.todo.pop()
            self.next += 1
            return self.next - 1

    def ack(self, i):
        with self.lock:
            self.acked.add(i)

    def unanswered(self, i):
        with self.lock:
            self.todo.append(i)


def client(srv, load, stop, errors):
    try:
        c = srv.connect(timeout=10)
    except OSError:
        return
    while not stop.is_set():
        i = load.take()
        try:
            r = c.call(**request(i))
        except (OSError, ValueError):
            load.unanswered(i)
            return
        if r is None:
            load.unanswered(i)
            return
        if r.get("result", {}).get("accepted") == 2:
            load.ack(i)
        else:
            errors.append(r)
            load.unanswered(i)
    c.close()


def run_round(srv, load, seconds, kill):
    stop = threading.Event()
    errors = []
    threads = [threading.Thread(target=client, args=(srv, load, stop, errors))
               for _ in range(CONNS)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    if kill:
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        srv.log.close()
    stop.set()
    for t in threads:
        t.join(30)
    return errors


def main():
    checks = Checks()
    rnd = random.Random(int(os.environ.get("TAILOR_SEED", "20261204")))
    srv = Server(engine={"triggers": {"email_cap_per_week": 0}})
    with open(os.path.join(srv.cfg["strategies"], "triggers.lua"), "w") as f:
        f.write(TRIGGERS)
    srv.stop()
    load = Load()
    try:
        for r in range(ROUNDS):
            srv.start()
            # Retries of answered requests, as after a lost answer.
            with load.lock:
                load.todo.extend(i for i in load.acked if rnd.random() < 0.2)
            errors = run_round(srv, load, rnd.uniform(0.2, 1.0), kill=True)
            checks.check("round %d: no request refused" % r, not errors, repr(errors[:3]))
        # A last round that ends cleanly, to answer whatever is left.
        srv.start()
        run_round(srv, load, 0.5, kill=False)
        while load.todo:
            c = srv.connect()
            i = load.todo.pop()
            resp = c.call(**request(i))
            checks.check("retry answered", resp and resp.get("result", {}).get("accepted") == 2,
                         repr(resp))
            load.ack(i)
            c.close()
        # A retry of an answered request: acknowledged, both events duplicates.
        c = srv.connect()
        again = c.call(**request(min(load.acked)))
        c.close()
        checks.check("a retry is answered as duplicates",
                     again and again.get("result") == {"accepted": 2, "rejected": 0, "duplicates": 2},
                     repr(again))
        checks.stopped_clean(srv)

        db = sqlite3.connect(srv.db)
        acked = load.acked
        checks.check("some carts acknowledged", len(acked) > 50, "only %d" % len(acked))
        ids = dict(db.execute("SELECT msg_id, count(*) FROM events WHERE msg_id IS NOT NULL "
                              "GROUP BY msg_id"))
        twice = [m for m, n in ids.items() if n != 1]
        checks.check("no message id stored twice", not twice, repr(twice[:5]))
        lost = [i for i in acked if "cart-%d" % i not in ids or "cu-%d" % i not in ids]
        checks.check("no acknowledged event lost", not lost, repr(lost[:5]))
        keys = [k for (k,) in db.execute("SELECT key FROM outbox")]
        by_customer = {}
        for k in keys:
            _, cust, _ = k.split(":")
            by_customer.setdefault(cust, []).append(k)
        missing = [i for i in acked if by_customer.get("c%d" % i) != ["cart:c%d:1" % i]]
        checks.check("every acknowledged cart has exactly its one email", not missing,
                     repr([(i, by_customer.get("c%d" % i)) for i in missing[:5]]))
        carts = db.execute("SELECT count(*) FROM events WHERE type='add_to_cart'").fetchone()[0]
        checks.check("one stored cart per email", carts == len(keys),
                     "%d carts, %d emails" % (carts, len(keys)))
        print("rounds %d, carts acknowledged %d, stored %d, emails %d" %
              (ROUNDS, len(acked), carts, len(keys)))
        db.close()
    finally:
        srv.cleanup()
    return checks.done()


if __name__ == "__main__":
    sys.exit(main())
