"""pg_email_cap_test.py: the weekly email cap at send time, with two
`tailor serve` nodes delivering from one PostgreSQL outbox to a real SMTP
server (aiosmtpd) on loopback.

Each customer has two emails due at once (a backlog after delivery was
down, say) and triggers.email_cap_per_week = 1: one of them goes out, the
other is cancelled at send time.  The SMTP server is slow (it answers each
message half a second after taking it), and each node claims one row at a
time, so while one node is sending a customer's first email the other node
claims the second.  Checked: each customer receives one email, not two;
each customer's other row is cancelled for the cap; the ledger holds one
delivery a customer.
"""

import collections
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins"))

import deliver_kit as kit  # noqa: E402
from pg_kit import Postgres  # noqa: E402
from pg_nodes_test import applied  # noqa: E402
from serve_kit import ADMIN, result  # noqa: E402

CUSTOMERS = 8
SLOW_SMTP = 0.5
ENGINE = {"triggers": {"email_cap_per_week": 1},
          "delivery": {"lease_ms": 10000, "backoff_base_ms": 300, "backoff_max_ms": 1000}}
SERVER = {"deliver_interval_ms": 50, "deliver_batch": 1}


def main():
    ck = kit.Checks()
    d = tempfile.mkdtemp(prefix="pgemailcap", dir=kit.TMP)
    port = kit.free_port()
    sink = kit.SmtpSink(port, os.path.join(d, "mail"), delay=SLOW_SMTP)
    nodes = []
    try:
        with Postgres() as pg:
            strategies = kit.strategies(d, 3600)
            engine = dict(ENGINE, plugins=[kit.smtp_plugin(port, tls="none")])
            for n in range(2):
                os.makedirs(os.path.join(d, "node%d" % n))
                nodes.append(kit.Serve(strategies, db=pg.url, engine=engine, server=SERVER,
                                       tmpdir=os.path.join(d, "node%d" % n)))
            a, b = nodes
            c = a.connect()
            c.call("auth", token=ADMIN)
            addr = {"k%d" % i: "capped%d@example.com" % i for i in range(CUSTOMERS)}
            for cid in sorted(addr):
                r = c.call("customer.upsert", customer={
                    "id": cid, "email": addr[cid], "consent": {"email": True}})
                ck.check("customer %s stored" % cid, result(r) is not None, r)
            c.close()
            n = int(pg.psql("SELECT count(*) FROM events"))
            kit.wait_for("both nodes hold the customers",
                         lambda: all(applied(x) == n for x in nodes))
            # Two welcome rows a customer, due in the past, one after the
            # other: the nodes' claims of one row each take a customer's two
            # rows at about the same moment.
            now = int(time.time() * 1000)
            values = []
            for i, cid in enumerate(sorted(addr)):
                for j in range(2):
                    values.append("('welcome:%s:%d', '%s', 'email', 'welcome', '{}', %d, %d, %d)"
                                  % (cid, j, cid, now - 60000 + 10 * i + j, now, now))
            pg.psql("INSERT INTO outbox(key, customer, channel, template, vars, due, created, "
                    "updated) VALUES " + ",".join(values))

            def settled():
                rows = pg.psql("SELECT state FROM outbox WHERE key LIKE 'welcome:k%'").split()
                return rows if all(r in ("sent", "dead", "cancelled") for r in rows) else None
            kit.wait_for("every row settled", settled, deadline=60, step=0.2)
            time.sleep(1.0)  # a message on its way, if there were one
            got = collections.Counter(tuple(e["to"]) for e, m in sink.messages())
            print("emails received: %d for %d customers (cap 1 a week)"
                  % (sum(got.values()), CUSTOMERS), flush=True)
            ck.check("one email a customer, as the cap allows",
                     got == collections.Counter({(addr[cid],): 1 for cid in addr}), got)
            states = collections.Counter(
                tuple(line.split("|")) for line in pg.psql(
                    "SELECT customer, state FROM outbox WHERE key LIKE 'welcome:k%'").splitlines())
            ck.check("each customer: one row sent, one cancelled",
                     states == collections.Counter(
                         {**{(cid, "sent"): 1 for cid in addr},
                          **{(cid, "cancelled"): 1 for cid in addr}}), states)
            why = pg.psql("SELECT DISTINCT last_error FROM outbox WHERE state = 'cancelled'")
            ck.check("cancelled for the weekly cap", why.startswith("weekly email cap"), why)
            ledger = pg.psql("SELECT count(*), count(DISTINCT customer) FROM outbox_sent "
                             "WHERE key LIKE 'welcome:k%'")
            ck.check("the ledger: one delivery a customer",
                     ledger == "%d|%d" % (CUSTOMERS, CUSTOMERS), ledger)
            for x in nodes:
                ck.stopped_clean(x)
    finally:
        for x in nodes:
            x.cleanup()
        sink.stop()
    return ck.done()


if __name__ == "__main__":
    sys.exit(main())
