"""serve_coupon_test.py: coupons that are real and frequency caps, through
a real `tailor serve` (issue 20 items 2 and 3): a popup decision issues a
unique code, the checkout checks it (POST /v1/coupons/check and the NDJSON
op coupon.check) and redeems it with a coupon_redeemed event, once; a
second redemption, an expired code and an unknown one are refused with a
clear error and change nothing; a storefront token may neither check nor
redeem; the day's cap holds back the next popup, and one of two decisions
of a visitor at once; tailor stats reports the coupons by tier and
experiment arm.
"""

import base64
import json
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import serve_kit  # noqa: E402
from serve_kit import ADMIN, ROOT, STOREFRONT, Checks, Server  # noqa: E402

T = Checks()
check = T.check


def http(port, method, path, body=None, key=ADMIN, headers=None):
    status, _, doc = serve_kit.request(port, method, path, body, key, headers, timeout=30)
    return status, doc

class CouponServer(Server):
    def strategies(self):
        d = os.path.join(self.dir, "strategies")
        shutil.copytree(os.path.join(ROOT, "tests", "lua", "coupons"), d)
        return d


def popup(port, anon, **ctx):
    ctx["trigger"] = "exit_intent"
    status, d = http(port, "POST", "/v1/decide/popup", {"anon": anon, "context": ctx},
                     key=STOREFRONT)
    check("popup for %s answered" % anon, status == 200 and not d.get("fallback"), d)
    return d


def main():
    s = CouponServer()
    try:
        p = s.port
        d = popup(p, "v1")
        code = (d.get("result") or {}).get("coupon")
        check("the popup carries a unique code", isinstance(code, str) and
              code.startswith("RETURNING10"), d)
        other = (popup(p, "v2").get("result") or {}).get("coupon")
        check("another visitor gets another code", other and other != code, other)

        status, c = http(p, "POST", "/v1/coupons/check", {"code": code})
        check("checkout: valid", status == 200 and c.get("valid") is True and
              c.get("percent") == 10, (status, c))
        status, c = http(p, "POST", "/v1/coupons/check", {"code": code}, key=STOREFRONT)
        check("a storefront token may not check codes", status == 403, (status, c))
        status, c = http(p, "POST", "/v1/events",
                         {"type": "coupon_redeemed", "code": code, "anon": "v1"}, key=STOREFRONT)
        check("a storefront token may not redeem", status == 403, (status, c))

        before = http(p, "GET", "/v1/stats")[1]["events_total"]
        status, r = http(p, "POST", "/v1/events",
                         {"type": "coupon_redeemed", "code": code, "order_id": "o1"})
        check("redeemed by the checkout", status == 200, (status, r))
        status, r = http(p, "POST", "/v1/events",
                         {"type": "coupon_redeemed", "code": code, "order_id": "o2"})
        check("a second redemption is refused, saying why",
              status == 400 and "already redeemed" in json.dumps(r), (status, r))
        status, r = http(p, "POST", "/v1/events", {"type": "coupon_redeemed", "code": "NOPE-1"})
        check("an unknown code is refused", status == 404 and "does not exist" in json.dumps(r),
              (status, r))
        status, c = http(p, "POST", "/v1/coupons/check", {"code": code})
        check("checkout: redeemed by o1", c.get("valid") is False and c.get("reason") ==
              "redeemed" and c.get("order_id") == "o1", c)
        after = http(p, "GET", "/v1/stats")[1]["events_total"]
        check("only the good redemption was stored", after == before + 1, (before, after))

        # NDJSON: the same check.
        conn = s.connect()
        resp = conn.call("coupon.check", code="NOPE-1", token=ADMIN)
        check("coupon.check over NDJSON: unknown code", resp.get("error", {}).get("code") ==
              "not_found", resp)
        resp = conn.call("coupon.check", code=other, token=ADMIN)
        check("coupon.check over NDJSON: valid", (resp.get("result") or {}).get("valid") is True,
              resp)
        conn.close()

        # A checkout's retry (the same message id) is acknowledged and
        # stored once; it was refused as "already redeemed".
        before = http(p, "GET", "/v1/stats")[1]["events_total"]
        ev = {"type": "coupon_redeemed", "code": other, "order_id": "o9", "message_id": "chk-o9"}
        first = http(p, "POST", "/v1/events", ev)
        again = http(p, "POST", "/v1/events", ev)
        check("a retried redemption is acknowledged", first[0] == 200 and again[0] == 200,
              (first, again))
        status, r = http(p, "POST", "/v1/events", [ev])
        check("a retried redemption in a batch is a duplicate",
              status == 200 and r.get("duplicates") == 1, (status, r))
        after = http(p, "GET", "/v1/stats")[1]["events_total"]
        check("the redemption is stored once", after == before + 1, (before, after))
        ev["message_id"] = "chk-o9-other"
        status, r = http(p, "POST", "/v1/events", ev)
        check("another message redeeming the spent code is refused",
              status == 400 and "already redeemed" in json.dumps(r), (status, r))
        # In a batch, the spent code is that event's rejection, by index;
        # the batch's other events are stored (a Segment client would retry
        # a refused batch for ever).
        before = http(p, "GET", "/v1/stats")[1]["events_total"]
        batch = [{"type": "view", "anon": "b1", "item": "hat"},
                 {"type": "coupon_redeemed", "code": other, "order_id": "o10"},
                 {"type": "coupon_redeemed", "code": "NOPE-2", "order_id": "o11"},
                 {"type": "view", "anon": "b1", "item": "scarf"}]
        status, r = http(p, "POST", "/v1/events", batch)
        errs = {e.get("index"): e for e in (r or {}).get("errors", [])}
        check("a batch with spent and unknown codes stores the rest, naming them by index",
              status == 200 and r.get("accepted") == 2 and r.get("rejected") == 2 and
              "already redeemed" in errs.get(1, {}).get("message", "") and
              errs.get(2, {}).get("code") == "not_found", (status, r))
        after = http(p, "GET", "/v1/stats")[1]["events_total"]
        check("its two views are stored", after == before + 2, (before, after))

        # Expired.
        short = (popup(p, "v3", ttl=1).get("result") or {}).get("coupon")
        time.sleep(1.5)
        status, r = http(p, "POST", "/v1/events", {"type": "coupon_redeemed", "code": short})
        check("an expired code is refused", status == 400 and "expired" in json.dumps(r),
              (status, r))

        # The day's cap: v1 had its popup (with its coupon).
        d = popup(p, "v1")
        check("the day's cap holds the next popup back", d.get("result") is None and
              d.get("capped") == "per_day", d)

        stats = http(p, "GET", "/v1/stats")[1].get("coupons", {})
        issued = sum(t["issued"] for t in stats.get("tiers", {}).values())
        redeemed = sum(t["redeemed"] for t in stats.get("tiers", {}).values())
        check("stats: coupons by tier", issued == 3 and redeemed == 2, stats)
        check("stats: by experiment arm", "popup_offer" in stats.get("experiments", {}), stats)
        T.stopped_clean(s)
    finally:
        s.cleanup()


def two_tabs():
    """Two decisions of one visitor at once (two tabs), each issuing a
    coupon with per_day = 1: one gets a code, the other is capped.  Both
    read the caps before either wrote, and both codes were kept."""
    s = CouponServer(server={"threads": 4})
    try:
        codes = {}
        for v in range(6):
            who = "tab%d" % v
            got = []

            def decide():
                got.append(http(s.port, "POST", "/v1/decide/slow", {"anon": who},
                                key=STOREFRONT))

            tabs = [threading.Thread(target=decide) for _ in range(2)]
            for t in tabs:
                t.start()
            for t in tabs:
                t.join()
            check("both tabs of %s answered" % who,
                  all(st == 200 and not d.get("fallback") for st, d in got), got)
            codes[who] = [d.get("result") for _, d in got
                          if str(d.get("result")).startswith("SLOW5-")]
        check("one code a visitor at per_day = 1, however many tabs decide at once",
              all(len(c) == 1 for c in codes.values()), codes)
        tiers = http(s.port, "GET", "/v1/stats")[1].get("coupons", {}).get("tiers", {})
        check("stats: one coupon issued a visitor", tiers.get("slow_5", {}).get("issued") == 6,
              tiers)

        # A ranking whose coupon the other tab's took the cap from still
        # ranks: every id once (items: null left the shop's page empty).
        ids = ["i1", "i2", "i3"]
        for v in range(4):
            got = []

            def rank(who="rank%d" % v):
                got.append(http(s.port, "POST", "/v1/decide/rank", {"anon": who, "items": ids},
                                key=STOREFRONT))

            tabs = [threading.Thread(target=rank) for _ in range(2)]
            for t in tabs:
                t.start()
            for t in tabs:
                t.join()
            for st, d in got:
                check("a ranking answers every id once, capped or not",
                      st == 200 and sorted(i.get("id") for i in d.get("items") or []) == ids, d)
            check("one ranking a visitor carries a code",
                  sum("RANK5-" in json.dumps(d) for _, d in got) == 1, got)
        T.stopped_clean(s)
    finally:
        s.cleanup()


if __name__ == "__main__":
    T.run(main)
    T.run(two_tabs)
    sys.exit(T.done())
