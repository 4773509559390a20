"""serve_diskfull_test.py: a store that cannot grow (a full disk; here the
server's file size limit, as `ulimit -f` sets it, which needs no root)
refuses events with an error and loses none it acknowledged.  The index
takes back what a failed commit applied, decisions go on, the store is
not retried at every refused event, and events are taken again once the
store has room.
"""

import os
import resource
import sqlite3
import sys
import time

from serve_kit import ADMIN, Checks, Server


def ok(r):
    return bool(r) and (r.get("result") or {}).get("ok") is True


def top_items(c):
    r = c.call("decide", kind="recommend", anon="reader", k=50)
    return [it["id"] for it in (r.get("result") or {}).get("items", [])], r


def test_full(ck, srv):
    c = srv.connect()
    c.call("auth", token=ADMIN)
    acked = []

    def send(item, pad=0):
        mid = "m%d" % send.n
        send.n += 1
        r = c.call("event", event={"type": "view", "anon": "v%d" % send.n, "item": item,
                                   "message_id": mid, "props": {"note": "x" * pad}})
        if ok(r):
            acked.append(mid)
        return r
    send.n = 0

    for i in range(20):
        ck.check("room: acknowledged", ok(send("kept")))
    files = [srv.db, srv.db + "-wal"]
    limit = max(os.path.getsize(f) for f in files if os.path.exists(f)) + 64 * 1024
    resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    refused = None
    for i in range(3000):
        r = send("fill-%d" % i, pad=2000)
        if not ok(r):
            refused = r
            break
    ck.check("full: an event is refused", refused is not None, len(acked))
    err = (refused or {}).get("error") or {}
    ck.check("full: a store error that says nothing was stored",
             err.get("code") == "store_error" and "nothing of this request was stored"
             in err.get("message", ""), refused)
    ck.check("full: the server is up", srv.proc.poll() is None)

    # Refused at once for a second after that, without a try (and a
    # rebuild of the index) each.
    t0 = time.time()
    quick = [send("burst") for _ in range(200)]
    ck.check("back-off: the burst is refused", not any(ok(r) for r in quick))
    log = srv.read_log().decode(errors="replace")
    ck.check("back-off: the failure is logged once, not at each request",
             log.count("error: ingest:") == 1 and log.count("index rebuilt") <= 1, log[-2000:])
    ck.check("back-off: the log says so", "events are refused for 1000 ms" in log, log[-2000:])

    # Past the back-off the store is tried again: this view is applied to
    # the index, its commit fails, and the index must forget it.
    time.sleep(1.2)
    ghost = send("ghost", pad=4000)
    ck.check("retried: still refused while full", not ok(ghost), ghost)
    items, r = top_items(c)
    ck.check("decisions go on while full", "result" in r, r)
    ck.check("the index forgot the refused events", "ghost" not in items and "burst" not in items,
             items)
    ck.check("the acknowledged events are in the index", "kept" in items, items)

    # Room again: taken once the back-off is over.
    resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE,
                     (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    time.sleep(1.2)
    ck.check("room again: acknowledged", ok(send("after")))
    log = srv.read_log().decode(errors="replace")
    ck.check("still failing: not logged again, and the end of it is",
             log.count("error: ingest:") == 1 and "the store takes events again" in log,
             log[-2000:])
    items, _ = top_items(c)
    ck.check("room again: in the index", "after" in items, items)
    c.close()
    ck.stopped_clean(srv)

    db = sqlite3.connect(srv.db)
    ck.check("store intact", db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
    stored = {row[0] for row in db.execute("SELECT msg_id FROM events")}
    ck.check("every acknowledged event is stored", set(acked) <= stored,
             sorted(set(acked) - stored)[:5])
    ck.check("no refused event is stored", len(stored) == len(acked), (len(stored), len(acked)))
    db.close()

    # A restart reads the same store: the refused events are not there.
    srv.start()
    c = srv.connect()
    c.call("auth", token=ADMIN)
    items, _ = top_items(c)
    ck.check("restart: nothing refused came back", "ghost" not in items and "kept" in items,
             items)
    c.close()
    ck.stopped_clean(srv)


def main():
    ck = Checks()
    srv = Server()
    try:
        ck.run(test_full, ck, srv)
    finally:
        srv.cleanup()
    return ck.done()


if __name__ == "__main__":
    sys.exit(main())
