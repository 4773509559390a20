"""serve_exposures_test.py: experiment exposures while serving.

A decision that calls tailor.experiment buffers the unit's exposure; once
enough are buffered, the server's writer thread writes them, so that no
decision waits for that transaction.  They are in the store while the
server runs, a unit's first exposure once (a pair seen again is not written
again), and the rest are written when the server stops.
"""

import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from serve_kit import STOREFRONT, Checks, Server, result  # noqa: E402

T = Checks()
check = T.check

EXPERIMENT = """
return { recommend = function(ctx)
  tailor.experiment("layout", { "a", "b" }, ctx.context.unit)
  return {}
end }
"""

UNITS = 300  # more than the engine buffers before they are written (256)


def exposures(db):
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute("SELECT count(*), count(DISTINCT unit) FROM exposures "
                           "WHERE experiment='layout'").fetchone()
    finally:
        con.close()


def decide_all(c, units):
    """Pipelined: every request first, then every answer."""
    for u in units:
        c.send({"id": u, "op": "decide", "kind": "recommend", "context": {"unit": u}})
    answers = [c.line() for _ in units]
    return [a for a in answers if result(a) is None or result(a).get("fallback")]


def main():
    s = Server(recommend=EXPERIMENT)
    try:
        c = s.connect()
        c.call("auth", token=STOREFRONT)
        units = ["u%d" % i for i in range(UNITS)]
        bad = decide_all(c, units)
        check("every decision answered", not bad, bad[:3])
        deadline = time.time() + 20
        n = exposures(s.db)
        while n[0] < 256 and time.time() < deadline:
            time.sleep(0.05)
            n = exposures(s.db)
        check("exposures are written while the server runs", n[0] >= 256, n)
        check("each unit once", n[0] == n[1], n)
        bad = decide_all(c, units)  # the same units again
        check("the same units decide again", not bad, bad[:3])
        c.close()
        T.stopped_clean(s)
        n = exposures(s.db)
        check("after the stop: every unit's first exposure, once", n == (UNITS, UNITS), n)
    finally:
        s.cleanup()
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
