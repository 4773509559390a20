"""pg_outage_delivery_test.py: delivery across a short PostgreSQL outage.

Two nodes deliver 30 abandoned-cart emails to a slow SMTP server (aiosmtpd
on loopback, a quarter of a second a message), each claiming batches that
take seconds to send, when PostgreSQL stops for two seconds.  The rows a
node had claimed and not yet sent cannot be renewed, and a row just sent
cannot be marked sent.  What is checked (docs/scale-out.md, "Delivery
pauses and resumes where it stopped"):
- every email goes out once the database is back, long before the claims'
  lease (two minutes here) would have let the rows be claimed again;
- none goes out twice: a send the store did not record is recorded once it
  answers, not sent again;
- each node says the failure once, not at every pass.
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
from serve_kit import result  # noqa: E402

CUSTOMERS = 30
LEASE_MS = 120000


def main():
    ck = kit.Checks()
    d = tempfile.mkdtemp(prefix="pgoutdel", dir=kit.TMP)
    port = kit.free_port()
    sink = kit.SmtpSink(port, os.path.join(d, "mail"), delay=0.25)
    nodes = []
    try:
        with Postgres() as pg:
            strategies = kit.strategies(d, 2)
            engine = {"plugins": [kit.smtp_plugin(port, tls="none")],
                      "triggers": {"email_cap_per_week": 0},
                      "delivery": {"lease_ms": LEASE_MS}}
            for n in range(2):
                os.makedirs(os.path.join(d, "node%d" % n))
                nodes.append(kit.Serve(strategies, db=pg.url, engine=engine,
                                       server={"deliver_interval_ms": 100},
                                       tmpdir=os.path.join(d, "node%d" % n)))
            a = nodes[0]
            ca = kit.load_shop(a, customers=[("c%d" % i, "s%d@example.com" % i)
                                             for i in range(CUSTOMERS)])
            for i in range(CUSTOMERS):
                r = ca.call("event", event={"type": "add_to_cart", "item": kit.ITEMS[0]["id"],
                                            "customer": "c%d" % i})
                ck.check("cart %d acknowledged" % i, result(r) == {"ok": True}, r)
            kit.wait_for("emails going out", lambda: len(sink.messages()) >= 5, deadline=40,
                         step=0.02)
            pg.stop()
            down = time.time()
            time.sleep(2)
            pg.restart()

            def settled():
                rows = pg.psql("SELECT state FROM outbox").split()
                return rows if rows and all(r in ("sent", "dead", "cancelled")
                                            for r in rows) else None
            try:
                kit.wait_for("every row settled", settled, deadline=60, step=0.2)
            except TimeoutError:
                pass
            took = time.time() - down
            states = pg.psql("SELECT state, count(*) FROM outbox GROUP BY 1")
            print("all rows settled %.1f s after the outage began (lease %d s): %s"
                  % (took, LEASE_MS // 1000, states.replace("\n", ", ")), flush=True)
            ck.check("every email sent, before the lease ends", states == "sent|%d" % CUSTOMERS,
                     states)
            time.sleep(1.0)  # a copy on its way, if there were one
            mails = sink.messages()
            per = collections.Counter(m["Message-ID"] for _, m in mails)
            ck.check("each email once", len(mails) == CUSTOMERS and len(per) == CUSTOMERS,
                     (len(mails), len(per)))
            for x in nodes:
                log = x.read_log().decode(errors="replace")
                passes = log.count("delivery: store:")
                ck.check("a node says the failure once", passes <= 2, passes)
            for x in nodes:
                ck.stopped_clean(x)
    finally:
        for x in nodes:
            x.cleanup()
        sink.stop()
    return ck.done()


if __name__ == "__main__":
    sys.exit(main())
