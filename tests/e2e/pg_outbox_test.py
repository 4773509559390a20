"""pg_outbox_test.py: the shared outbox under two `tailor serve` nodes and a
SIGKILL, delivering to a real SMTP server (aiosmtpd) on loopback (issue 18).

Both nodes run on one PostgreSQL database with delivery on; customers cart
items through both, so each schedules an abandoned-cart email (the shipped
strategies, the delay cut to 2 s).  The SMTP server is slow (it keeps each
message, then answers 250 a quarter of a second later), so a node's batch
of claimed rows takes longer than its lease, and a node killed mid-send has
handed over a message it never heard accepted.  One node is SIGKILLed while
the emails go out and restarted.  Then customers cart on both nodes at the same
moment: one email each.

What the product guarantees (docs/scale-out.md, "The outbox"), and what is
checked:
- every email scheduled reaches the SMTP server: one distinct Message-ID
  per outbox row, each row `sent`, once in the ledger, to its customer's
  address, none lost;
- a node sends only rows it still holds the lease of, so a slow batch does
  not let a second node send them too;
- the one send that may repeat is the one in flight at the kill: at most
  one message arrives twice, with the same Message-ID (the key's hash, for
  the receiver to drop), and it is a row that was being sent at the kill.
"""

import collections
import hashlib
import os
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins"))

import deliver_kit as kit  # noqa: E402
from pg_kit import Postgres  # noqa: E402
from pg_nodes_test import applied  # noqa: E402
from serve_kit import ADMIN, result  # noqa: E402

CUSTOMERS = 40
CART_DELAY = 2       # seconds from the cart to the email
SLOW_SMTP = 0.25     # seconds the SMTP server takes to answer each message
LEASE_MS = 3000      # well above one send, well below a batch of them
ENGINE = {"delivery": {"lease_ms": LEASE_MS, "backoff_base_ms": 300, "backoff_max_ms": 1000,
                       "max_attempts": 30}}
SERVER = {"deliver_interval_ms": 100}


def message_id(key):
    """The smtp plugin's Message-ID for an outbox key (plugins/smtp/smtp.c)."""
    return "<%s@trail.example>" % hashlib.sha256(key.encode()).hexdigest()[:32]


def outbox(pg):
    """{key: (state, customer, template, attempts)} from the shared outbox."""
    out = {}
    for line in pg.psql("SELECT key, state, customer, template, attempts FROM outbox "
                        "WHERE key LIKE 'abandoned_cart:%'").splitlines():
        key, state, customer, template, attempts = line.split("|")
        out[key] = (state, customer, template, int(attempts))
    return out


def two_nodes_at_once(ck, pg, sink, a, b):
    """A customer carts on both nodes at the same moment (two tabs, two
    nodes behind the balancer): each node's triggers supersede the other's
    abandoned-cart row, and one email goes out, not two and not none."""
    first = int(pg.psql("SELECT coalesce(max(id), 0) FROM outbox"))
    before = len(sink.messages())
    conns = []
    for node in (a, b):
        c = node.connect()
        c.call("auth", token=ADMIN)
        conns.append(c)
    # Customers of their own: the others had an email this week (caps).
    who = ["twice%d" % i for i in range(20)]
    addr = {cid: cid + "@example.com" for cid in who}
    for k, cid in enumerate(who):
        r = conns[k % 2].call("customer.upsert", customer={
            "id": cid, "email": addr[cid], "consent": {"email": True}})
        ck.check("customer %s stored" % cid, result(r) is not None, r)
    n = int(pg.psql("SELECT count(*) FROM events"))
    kit.wait_for("both nodes hold them", lambda: all(applied(x) == n for x in (a, b)))
    for cid in who:
        bar = threading.Barrier(2)
        out = []

        def cart(c, item):
            bar.wait()
            out.append(result(c.call("event", event={"type": "add_to_cart", "item": item,
                                                     "customer": cid})))
        ts = [threading.Thread(target=cart, args=(c, kit.ITEMS[k]["id"]))
              for k, c in enumerate(conns)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        ck.check("both carts of %s acknowledged" % cid, out == [{"ok": True}] * 2, out)
    for c in conns:
        c.close()

    def settled():
        rows = pg.psql("SELECT state FROM outbox WHERE id > %d" % first).split()
        return rows if rows and all(r in ("sent", "dead", "cancelled") for r in rows) else None
    kit.wait_for("the rows of both nodes settled", settled, deadline=60, step=0.2)
    live = dict(line.split("|") for line in pg.psql(
        "SELECT customer, count(*) FROM outbox WHERE id > %d AND state <> 'cancelled' "
        "GROUP BY 1" % first).splitlines())
    ck.check("two nodes at once: one row kept a customer",
             live == {cid: "1" for cid in who}, live)
    time.sleep(1.0)  # a copy on its way, if there were one
    got = collections.Counter(tuple(e["to"]) for e, m in sink.messages()[before:])
    ck.check("two nodes at once: one email a customer",
             got == collections.Counter({(addr[cid],): 1 for cid in who}), got)


def main():
    ck = kit.Checks()
    check = ck.check
    d = tempfile.mkdtemp(prefix="pgoutbox", dir=kit.TMP)
    port = kit.free_port()
    sink = kit.SmtpSink(port, os.path.join(d, "mail"), delay=SLOW_SMTP)
    nodes = []
    try:
        with Postgres() as pg:
            strategies = kit.strategies(d, CART_DELAY)
            engine = dict(ENGINE, plugins=[kit.smtp_plugin(port, tls="none")])
            for n in range(2):
                os.makedirs(os.path.join(d, "node%d" % n))
                nodes.append(kit.Serve(strategies, db=pg.url, engine=engine, server=SERVER,
                                       tmpdir=os.path.join(d, "node%d" % n)))
            a, b = nodes
            ca = kit.load_shop(a, customers=())
            cb = b.connect()
            cb.call("auth", token=ADMIN)
            conns = [ca, cb]
            addr = {"c%d" % i: "shopper%d@example.com" % i for i in range(CUSTOMERS)}
            for i, cid in enumerate(sorted(addr)):
                r = conns[i % 2].call("customer.upsert", customer={
                    "id": cid, "email": addr[cid], "consent": {"email": True}})
                check("customer %s stored" % cid, result(r) is not None, r)
            n = int(pg.psql("SELECT count(*) FROM events"))
            end = time.time() + 30
            while time.time() < end and not all(applied(x) == n for x in nodes):
                time.sleep(0.1)
            check("both nodes hold the shop", all(applied(x) == n for x in nodes),
                  [applied(x) for x in nodes])

            # The load: each customer carts an item on one node or the other,
            # spread over two seconds, so emails fall due while others go out.
            t0 = time.time()
            for i in range(CUSTOMERS):
                item = kit.ITEMS[i % len(kit.ITEMS)]["id"]
                r = conns[i % 2].call("event", event={"type": "add_to_cart", "item": item,
                                                      "customer": "c%d" % i})
                check("cart %d acknowledged" % i, result(r) == {"ok": True}, r)
                time.sleep(2.0 / CUSTOMERS)
            rows = outbox(pg)
            check("one email scheduled per customer", len(rows) == CUSTOMERS and
                  sorted(v[1] for v in rows.values()) == sorted(addr), len(rows))

            # Kill b once it has sent a few and while the rest go out.
            kit.wait_for("emails going out", lambda: len(sink.messages()) >= 10, deadline=40,
                         step=0.02)
            b.send_signal(signal.SIGKILL)
            b.proc.wait()
            b.log.close()
            killed_at = time.time()
            in_flight = {k for k, v in outbox(pg).items() if v[0] == "sending"}
            at_kill = len(sink.messages())
            time.sleep(1.0)
            b.start()

            def settled():
                rows = outbox(pg)
                return rows if all(v[0] in ("sent", "dead", "cancelled")
                                   for v in rows.values()) else None
            rows = kit.wait_for("every row settled", settled, deadline=60, step=0.2)
            done = time.time()
            # Every row is sent: none can be claimed again, and a sender
            # holding an old claim finds it gone (store_outbox_renew).  A
            # moment for a copy already on its way, if there were one.
            time.sleep(1.0)
            mails = sink.messages()
            by_id = collections.Counter(m["Message-ID"] for _, m in mails)
            by_rcpt = collections.Counter((tuple(e["to"]), m["X-Tailor-Template"])
                                          for e, m in mails)
            want = {message_id(k): k for k in rows}
            print("emails: %d scheduled, %d received at the SMTP server (%d distinct "
                  "Message-IDs), %d received before the kill, %d rows in flight at the kill, "
                  "all settled %.1f s after the kill, %.1f s after the first cart"
                  % (len(rows), len(mails), len(by_id), at_kill, len(in_flight),
                     done - killed_at, done - t0), flush=True)
            check("every row sent", all(v[0] == "sent" for v in rows.values()),
                  {k: v for k, v in rows.items() if v[0] != "sent"})
            check("every scheduled email reached the server (none lost)",
                  set(by_id) == set(want), (set(want) - set(by_id), set(by_id) - set(want)))
            check("one email per customer and template, by recipient",
                  sorted(by_rcpt) == sorted(((addr[v[1]],), v[2]) for v in rows.values()),
                  by_rcpt)
            dup = {mid: c for mid, c in by_id.items() if c > 1}
            check("at most one message twice: the send in flight at the kill",
                  len(mails) - len(by_id) <= 1, dup)
            check("a duplicate is a row that was being sent at the kill",
                  all(want.get(mid) in in_flight for mid in dup), (dup, in_flight))
            ledger = pg.psql("SELECT count(*), count(DISTINCT key) FROM outbox_sent "
                             "WHERE key LIKE 'abandoned_cart:%'")
            check("the ledger holds each key once", ledger == "%d|%d" % (CUSTOMERS, CUSTOMERS),
                  ledger)
            check("rows were in flight when b died", in_flight, in_flight)
            two_nodes_at_once(ck, pg, sink, a, b)
            for x in nodes:
                ck.stopped_clean(x)
    finally:
        for x in nodes:
            x.cleanup()
        sink.stop()
    return ck.done()


if __name__ == "__main__":
    sys.exit(main())
