"""serve_popup_test.py: the shipped popup through a real `tailor serve`
with the shipped strategies (issue 20 items 2, 3 and 6), as a storefront
and a shop's checkout use it over HTTP:

  - every popup carries a unique coupon code of its tier (tailor.coupon),
    valid for settings.popup.coupon_ttl_hours; the checkout checks it and
    redeems it once: a second redemption is refused and changes nothing; a
    storefront token may do neither
  - the shipped caps (caps.lua): a customer whose abandoned-cart email is
    due today gets no 10% popup ("capped": "per_day"), nor does a visitor
    who had a popup today on their next visit; one without gets it
  - the purchase propensity: fitted on a history where carts and views lead
    to purchases, its AUC in GET /v1/stats, the session's score in the
    shipped visitor decision, and the 10% held for the session that would
    buy anyway while the one that would not gets it, with its code
"""

import json
import math
import os
import random
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import serve_kit  # noqa: E402
from serve_kit import ADMIN, ROOT, STOREFRONT, Checks, Server, customer_token  # noqa: E402

T = Checks()
check = T.check
HOUR_MS = 3600 * 1000
ITEMS = ["a", "b", "c", "d", "e", "f", "g", "h"]


def http(port, method, path, body=None, key=STOREFRONT, headers=None):
    status, _, doc = serve_kit.request(port, method, path, body, key, headers, timeout=60)
    return status, doc

class ShippedServer(Server):
    def strategies(self):
        d = os.path.join(self.dir, "strategies")
        shutil.copytree(os.path.join(ROOT, "strategies"), d)
        return d


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def history(now):
    """600 past sessions, an hour apart: the chance of a purchase rises with
    carts and views (a logistic with a known signal), as propensity_spec."""
    rng = random.Random(20)
    evs = []
    for i in range(1, 601):
        who, sid, at = "h%d" % i, "hs%d" % i, now - (700 - i) * HOUR_MS
        views, carts = rng.randint(1, 8), rng.randint(0, 3)
        if rng.random() < 0.3:
            carts = 0
        minute = lambda n: iso(at + n * 60000)  # noqa: E731 - a minute of the session
        for v in range(1, views + 1):
            evs.append({"type": "view", "item": ITEMS[(i + v) % 8], "anon": who, "session": sid,
                        "ts": minute(v)})
        for c in range(1, carts + 1):
            evs.append({"type": "add_to_cart", "item": ITEMS[(i + c) % 8], "anon": who,
                        "session": sid, "ts": minute(views + c)})
        z = -3 + 1.4 * carts + 0.25 * views
        if rng.random() < 1 / (1 + math.exp(-z)):
            # A minute after the last step, so the visit's length says nothing.
            evs.append({"type": "purchase", "anon": who, "session": sid, "order_id": "ho%d" % i,
                        "items": [{"id": ITEMS[i % 8], "price": 40}], "ts": minute(views + carts + 1)})
    return evs


def popup(port, who, headers=None):
    body = dict(who, context={"trigger": "exit_intent", "device": "desktop"})
    status, d = http(port, "POST", "/v1/decide/popup", body, headers=headers)
    check("popup for %s answered" % json.dumps(who), status == 200 and not d.get("fallback"),
          (status, d))
    return d


def setup(p):
    now = int(time.time() * 1000)
    for item in ITEMS:
        http(p, "POST", "/v1/items", {"id": item, "name": item, "price": 40,
                                      "category": "Shop/" + item}, key=ADMIN)
    for c in ("c1", "c2"):
        status, _ = http(p, "POST", "/v1/customers",
                         {"id": c, "email": c + "@example.com", "consent": {"email": True}}, key=ADMIN)
        check("customer %s stored" % c, status == 200)
    evs = history(now)
    # Returning visitors: a visit days ago (old enough to schedule nothing).
    for who in ({"customer": "c1"}, {"customer": "c2"}, {"anon": "hot"}, {"anon": "cold"}):
        name = who.get("customer") or who.get("anon")
        evs.append(dict(who, type="view", item="a", session=name + "-old", ts=iso(now - 30 * HOUR_MS)))
    for i in range(0, len(evs), 500):
        status, r = http(p, "POST", "/v1/events", evs[i:i + 500], key=ADMIN)
        check("history batch %d accepted" % (i // 500), status == 200 and r.get("rejected") == 0,
              (status, r))
    return now


def codes_and_checkout(p):
    a = popup(p, {"anon": "n1", "session": "n1-s"}).get("result") or {}
    b = popup(p, {"anon": "n2", "session": "n2-s"}).get("result") or {}
    check("a new visitor gets free shipping with a code of its own",
          a.get("name") == "free_shipping" and str(a.get("coupon", "")).startswith("FREESHIPPING-"),
          a)
    check("another visitor another code", b.get("coupon") and b.get("coupon") != a.get("coupon"), b)
    status, c = http(p, "POST", "/v1/coupons/check", {"code": a.get("coupon")}, key=ADMIN)
    check("the checkout finds it valid, of its tier", status == 200 and c.get("valid") is True and
          c.get("tier") == "free_shipping", (status, c))
    hours = (c.get("expires", 0) - c.get("issued", 0)) / HOUR_MS
    check("valid for the configured 72 hours", abs(hours - 72) < 0.01, c)
    status, c = http(p, "POST", "/v1/coupons/check", {"code": a.get("coupon")})
    check("a storefront token may not check codes", status == 403, (status, c))
    status, r = http(p, "POST", "/v1/events", {"type": "coupon_redeemed", "code": a.get("coupon"),
                                               "anon": "n1"})
    check("nor redeem them", status == 403, (status, r))

    before = http(p, "GET", "/v1/stats", key=ADMIN)[1]["events_total"]
    status, r = http(p, "POST", "/v1/events", {"type": "coupon_redeemed", "code": a.get("coupon"),
                                               "order_id": "o1", "anon": "n1"}, key=ADMIN)
    check("redeemed by the checkout", status == 200, (status, r))
    status, r = http(p, "POST", "/v1/events", {"type": "coupon_redeemed", "code": a.get("coupon"),
                                               "order_id": "o2"}, key=ADMIN)
    check("a second redemption is refused, saying why",
          status == 400 and "already redeemed" in json.dumps(r), (status, r))
    after = http(p, "GET", "/v1/stats", key=ADMIN)[1]["events_total"]
    check("only the good redemption was stored", after == before + 1, (before, after))
    status, c = http(p, "POST", "/v1/coupons/check", {"code": a.get("coupon")}, key=ADMIN)
    check("the checkout sees it redeemed by o1", c.get("valid") is False and
          c.get("reason") == "redeemed" and c.get("order_id") == "o1", c)

    # The next visit of a visitor who had a popup today: capped.
    d = popup(p, {"anon": "n1", "session": "n1-s2"})
    check("a popup today holds the next visit's popup back",
          d.get("result") is None and d.get("capped") == "per_day", d)


def caps_across_channels(p):
    proof = {"c1": {"X-Tailor-Customer": customer_token("c1")},
             "c2": {"X-Tailor-Customer": customer_token("c2")}}
    # c1 carts: the shipped triggers schedule the abandoned-cart email, due in an hour.
    status, r = http(p, "POST", "/v1/events", {"type": "add_to_cart", "item": "b", "price": 40,
                                               "customer": "c1", "session": "c1-now"},
                     headers=proof["c1"])
    check("c1's cart event kept", status == 200, (status, r))
    status, out = http(p, "GET", "/v1/customers/c1/export", key=ADMIN)
    pending = [row["template"] for row in out.get("outbox", []) if row.get("state") == "pending"]
    check("the cart email is due today", pending == ["abandoned_cart"], out.get("outbox"))
    d = popup(p, {"customer": "c1", "session": "c1-now"}, headers=proof["c1"])
    check("so c1 gets no 10% popup", d.get("result") is None and d.get("capped") == "per_day", d)
    # c2 has no email today: a returning visitor's 10%, with its code.
    http(p, "POST", "/v1/events", {"type": "page_view", "customer": "c2", "session": "c2-now"},
         headers=proof["c2"])
    r = popup(p, {"customer": "c2", "session": "c2-now"}, headers=proof["c2"]).get("result") or {}
    check("c2 gets the 10% with its code", r.get("name") == "returning_10" and
          r.get("percent") == 10 and str(r.get("coupon", "")).startswith("RETURNING10-"), r)


def propensity(p, now):
    # The models refit beside the writer (index.background_refits, on in
    # tailor serve): the setup's orders asked for a fit that comes in a
    # moment after their events were acknowledged.
    # Waited for until the last one is in: the models' orders stay put.
    deadline, seen, since = time.time() + 60, None, time.time()
    while True:
        stats = http(p, "GET", "/v1/stats", key=ADMIN)[1]
        m, fitted = stats.get("propensity"), (stats.get("models") or {}).get("orders")
        if fitted != seen:
            seen, since = fitted, time.time()
        if (isinstance(m, dict) and time.time() - since > 1) or time.time() > deadline:
            break
        time.sleep(0.1)
    check("stats has the propensity model", isinstance(m, dict), stats.get("propensity"))
    if not isinstance(m, dict):
        return
    print("propensity over serve: AUC %.3f, calibration error %.3f, %d held out"
          % (m["auc"], m["calibration_error"], m["holdout_sessions"]), flush=True)
    check("with a held-out AUC that says it learned", m["auc"] > 0.75, m)
    # hot views and carts a lot this visit; cold glances at one item.
    evs = []
    for v in range(8):
        evs.append({"type": "view", "item": ITEMS[v], "anon": "hot", "session": "hot-now",
                    "ts": iso(now - (20 - v) * 60000)})
    for c in range(3):
        evs.append({"type": "add_to_cart", "item": ITEMS[c], "anon": "hot", "session": "hot-now",
                    "ts": iso(now - (10 - c) * 60000)})
    evs.append({"type": "view", "item": "a", "anon": "cold", "session": "cold-now",
                "ts": iso(now - 60000)})
    status, r = http(p, "POST", "/v1/events", evs, key=ADMIN)
    check("this visit's events kept", status == 200 and r.get("accepted") == len(evs), r)
    score = {}
    for who in ("hot", "cold"):
        status, d = http(p, "POST", "/v1/decide/visitor", {"anon": who, "session": who + "-now"})
        score[who] = (d.get("result") or {}).get("propensity")
    check("the visitor decision shows each session's propensity",
          isinstance(score["hot"], float) and isinstance(score["cold"], float) and
          score["hot"] > 0.6 > score["cold"], score)
    hot = popup(p, {"anon": "hot", "session": "hot-now"})
    cold = popup(p, {"anon": "cold", "session": "cold-now"})
    check("the session that would buy anyway gets no discount (held, not capped)",
          hot.get("result") is None and "capped" not in hot, hot)
    r = cold.get("result") or {}
    check("the one that would not gets the 10%, with its code",
          r.get("name") == "returning_10" and str(r.get("coupon", "")).startswith("RETURNING10-"), r)


def main():
    s = ShippedServer(engine={"index": {"value_refit_orders": 50}})
    try:
        p = s.port
        now = setup(p)
        T.run(codes_and_checkout, p)
        T.run(caps_across_channels, p)
        T.run(propensity, p, now)
        T.stopped_clean(s)
    finally:
        s.cleanup()


if __name__ == "__main__":
    T.run(main)
    sys.exit(T.done())
