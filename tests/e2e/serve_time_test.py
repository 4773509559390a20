"""serve_time_test.py: the server owns time.

A storefront token is public: its events take the server's clock, whatever
time they carry (a visitor's clock in 2099 must not blank the bestsellers).
A trusted token (admin) may carry its own time, at most
limits.max_future_ms ahead; an event further ahead is refused with the
field named, and the other events of its batch are kept.  A storefront may
not add unknown items to the index past limits.max_unknown_items.
"""

import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from serve_kit import ADMIN, STOREFRONT, Checks, Server, error_code  # noqa: E402

T = Checks()
check = T.check

TRENDING = """
return { recommend = function(ctx)
  return tailor.trending(nil, nil, { k = ctx.k, in_stock = false })
end }
"""


def stored_ts(db, msg):
    con = sqlite3.connect(db)
    row = con.execute("SELECT ts FROM events WHERE msg_id=?", (msg,)).fetchone()
    con.close()
    return row[0] if row else None


def main():
    s = Server(engine={"limits": {"max_future_ms": 60000, "max_unknown_items": 3}},
               recommend=TRENDING)
    try:
        sf = s.connect()
        sf.call("auth", token=STOREFRONT)
        before = int(time.time() * 1000)
        r = sf.call("events", events=[
            {"type": "view", "id": "sf-1", "item": "a", "anon": "v1", "ts": "2099-01-01T00:00:00Z"},
            {"type": "view", "id": "sf-2", "item": "b", "anon": "v2", "ts": 946684800000},
            {"type": "view", "id": "sf-3", "item": "b", "anon": "v3"},
        ])
        after = int(time.time() * 1000)
        check("storefront events are accepted whatever their time",
              r.get("result", {}).get("accepted") == 3, r)
        ts = [stored_ts(s.db, m) for m in ("sf-1", "sf-2", "sf-3")]
        check("storefront events take the server's clock",
              all(t is not None and before - 1000 <= t <= after + 1000 for t in ts), (ts, before))
        d = sf.call("decide", kind="recommend", k=5)
        items = [i["id"] for i in d.get("result", {}).get("items", [])]
        check("the bestsellers are not blanked by a visitor's 2099", items[:2] == ["b", "a"], d)
        sf.close()

        adm = s.connect()
        ok_ts = int(time.time() * 1000) + 30000
        r = adm.call("events", token=ADMIN, events=[
            {"type": "view", "id": "ad-1", "item": "c", "anon": "v4", "ts": ok_ts},
            {"type": "bogus", "anon": "v4"},
            {"type": "view", "id": "ad-2", "item": "c", "anon": "v5", "ts": "2099-01-01"},
            {"type": "view", "id": "ad-3", "item": "c", "anon": "v6", "ts": 946684800000},
        ])
        res = r.get("result", {})
        check("a trusted batch keeps what is in the window", res.get("accepted") == 2 and
              res.get("rejected") == 2, r)
        errs = {e["index"]: e for e in res.get("errors", [])}
        check("the event too far ahead is refused with its place and field",
              2 in errs and errs[2].get("field") == "ts" and
              "ahead of the server's clock" in errs[2].get("message", ""), r)
        check("rejections stay in request order", sorted(errs) == [1, 2], r)
        check("a trusted time within the window is kept", stored_ts(s.db, "ad-1") == ok_ts)
        check("a trusted time in the past is kept (imports)",
              stored_ts(s.db, "ad-3") == 946684800000)
        check("the refused event is not stored", stored_ts(s.db, "ad-2") is None)
        r = adm.call("event", token=ADMIN, event={"type": "view", "item": "c", "anon": "v7",
                                                  "ts": "2099-01-01"})
        check("a single event too far ahead is the request's error",
              error_code(r) == "bad_field" and r["error"]["field"] == "ts", r)
        adm.close()

        # Items known only from events: a, b (storefront) and c (admin) make
        # three, the limit.  A storefront may not add a fourth; known items,
        # the catalog and trusted senders go on.
        sf = s.connect()
        sf.call("auth", token=STOREFRONT)
        r = sf.call("event", event={"type": "view", "item": "made-up-1", "anon": "v8"})
        check("a storefront may not add unknown items past the limit",
              error_code(r) == "bad_field" and r["error"]["field"] == "item" and
              "max_unknown_items" in r["error"]["message"], r)
        r = sf.call("event", event={"type": "view", "item": "a", "anon": "v8"})
        check("known items are fine", r.get("result") == {"ok": True}, r)
        adm = s.connect()
        adm.call("item.upsert", token=ADMIN, item={"id": "made-up-1", "price": 5})
        r = sf.call("event", event={"type": "view", "item": "made-up-1", "anon": "v8"})
        check("an item of the catalog is fine", r.get("result") == {"ok": True}, r)
        r = adm.call("event", token=ADMIN, event={"type": "view", "item": "import-9", "anon": "v9"})
        check("a trusted sender may add items", r.get("result") == {"ok": True}, r)
        st = adm.call("stats", token=ADMIN)
        check("the index holds no made-up storefront item",
              st["result"]["index"]["items"] == 5, st)
        sf.close()
        adm.close()
        T.stopped_clean(s)
    finally:
        s.cleanup()
    # The limit is exact: counted in the order of the events, each new item
    # once, within one batch too (it was checked against the index as it
    # was before the batch, so a batch could add any number).
    small = Server(engine={"limits": {"max_unknown_items": 2}}, recommend=TRENDING)
    try:
        sf = small.connect()
        sf.call("auth", token=STOREFRONT)
        r = sf.call("events", events=[
            {"type": "view", "item": "n1", "anon": "v1"},
            {"type": "view", "item": "n1", "anon": "v2"},
            {"type": "view", "item": "n2", "anon": "v1"},
            {"type": "view", "item": "n3", "anon": "v1"},
            {"type": "add_to_cart", "item": "n1", "anon": "v1"},
        ])
        res = r.get("result", {})
        check("a batch adds new items up to the limit and no further",
              res.get("accepted") == 4 and res.get("rejected") == 1, r)
        errs = res.get("errors", [])
        check("the event past the limit is refused with its place, field and item",
              len(errs) == 1 and errs[0].get("index") == 3 and errs[0].get("field") == "item" and
              "'n3'" in errs[0].get("message", ""), r)
        r = sf.call("event", event={"type": "view", "item": "n4", "anon": "v3"})
        check("a single event past the limit is the request's error",
              error_code(r) == "bad_field" and r["error"]["field"] == "item", r)
        adm = small.connect()
        st = adm.call("stats", token=ADMIN)
        res = st.get("result", {})
        check("the index holds exactly the limit's items",
              res.get("index", {}).get("items") == 2, st)
        check("the refused views are not stored", res.get("events", {}).get("view") == 3, st)
        adm.close()
        sf.close()
        T.stopped_clean(small)
    finally:
        small.cleanup()
    # A limit past 32 bits is a limit, not 0 (it was truncated to 0, which
    # refused every unknown item).
    big = Server(engine={"limits": {"max_unknown_items": 4294967296}}, recommend=TRENDING)
    try:
        sf = big.connect()
        sf.call("auth", token=STOREFRONT)
        r = sf.call("event", event={"type": "view", "item": "new-1", "anon": "v1"})
        check("a limit of 2^32 unknown items takes a new one", r.get("result") == {"ok": True}, r)
        sf.close()
        T.stopped_clean(big)
    finally:
        big.cleanup()
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
