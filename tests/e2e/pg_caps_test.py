"""pg_caps_test.py: frequency caps across `tailor serve` nodes on one
PostgreSQL store.

Two nodes run a popup strategy (tests/lua/coupons: a coupon with every
popup, caps per_day = 1).  For each of 10 fresh visitors, 4 popup
decisions start at the same moment, alternating between the nodes.  Each
node read the caps before its handler ran, so both could pass them; the
write, under the person's lock, counts again.  Checked: every visitor has
at most one coupon in the database, each one a popup answered with it, and
the other answers say which cap held ("capped"), or are the strategy's own
answer when tailor.coupon said a cap holds.
"""

import os
import shutil
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))

from pg_kit import Postgres  # noqa: E402
from serve_kit import ADMIN, Checks, Server, result  # noqa: E402

ROOT = os.environ.get("TAILOR_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
VISITORS = 10
AT_ONCE = 4


class CouponServer(Server):
    def strategies(self):
        d = os.path.join(self.dir, "strategies")
        shutil.copytree(os.path.join(ROOT, "tests", "lua", "coupons"), d)
        return d


def main():
    ck = Checks()
    with Postgres() as pg:
        n1, n2 = CouponServer(db=pg.url), CouponServer(db=pg.url)
        try:
            conns = []
            for n in (n1, n2, n1, n2):
                c = n.connect()
                c.call("auth", token=ADMIN)
                conns.append(c)
            answers = {}
            for v in range(VISITORS):
                who = "r%d" % v
                got = answers[who] = []
                start = threading.Barrier(AT_ONCE)

                def ask(c, got=got, who=who, start=start):
                    start.wait()
                    got.append(c.call("decide", kind="popup", anon=who,
                                      context={"trigger": "exit_intent"}))

                ts = [threading.Thread(target=ask, args=(c,)) for c in conns]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
            for c in conns:
                c.close()
            rows = pg.psql("SELECT anon, count(*) FROM coupons GROUP BY anon ORDER BY anon")
            counts = dict(line.split("|") for line in rows.splitlines() if line)
            ck.check("at most one coupon a visitor across the nodes",
                     all(int(n) <= 1 for n in counts.values()), counts)
            for who, got in sorted(answers.items()):
                answered = [result(a) or {} for a in got]
                coupons = [a["result"]["coupon"] for a in answered
                           if (a.get("result") or {}).get("coupon")]
                # The others: capped before the handler or at the write
                # ("capped"), or the strategy's own answer when
                # tailor.coupon said the cap holds ("no_coupon").
                held = [a for a in answered if not (a.get("result") or {}).get("coupon")]
                ck.check("%s: one popup with its coupon, the others held back" % who,
                         len(coupons) == 1 and int(counts.get(who, 0)) == 1 and
                         len(held) == AT_ONCE - 1 and
                         all(a.get("capped") in ("per_day", "per_campaign") or
                             (a.get("result") or {}).get("name") == "no_coupon" for a in held),
                         (coupons, held, counts.get(who)))
            ck.stopped_clean(n1)
            ck.stopped_clean(n2)
        finally:
            n1.cleanup()
            n2.cleanup()
    return ck.done()


if __name__ == "__main__":
    sys.exit(main())
