"""serve_customer_test.py: what a storefront token may say about customers.

A storefront token is public (it sits in the shop's pages), so a request made
with it speaks for a customer only with a customer token from the shop's
backend (an HMAC of the customer id and an expiry with
server.customer_secret).  Without a valid one the request is the visitor's
alone: a decision is anonymous, an event loses its customer, an identify is
refused.  Trusted tokens (admin) name customers freely.
"""

import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(__file__))
from serve_kit import (ADMIN, STOREFRONT, Checks, Server, customer_token,  # noqa: E402
                       error_code)

T = Checks()
check = T.check

WHO = """
return { recommend = function(ctx)
  return { { id = "a", explain = ctx.customer.id or "anonymous" } }
end }
"""


def who(c, **fields):
    r = c.call("decide", kind="recommend", **fields)
    items = (r.get("result") or {}).get("items") or [{}]
    return items[0].get("explain"), r


def main():
    s = Server(recommend=WHO)
    try:
        adm = s.connect()
        adm.call("auth", token=ADMIN)
        adm.call("item.upsert", item={"id": "a", "price": 5})
        sf = s.connect()
        sf.call("auth", token=STOREFRONT)
        good = customer_token("vip-42")
        check("no token: anonymous", who(sf, customer="vip-42")[0] == "anonymous")
        check("a valid token: the customer", who(sf, customer="vip-42", customer_token=good)[0] ==
              "vip-42")
        check("another customer's token: anonymous",
              who(sf, customer="vip-42", customer_token=customer_token("someone"))[0] ==
              "anonymous")
        check("an expired token: anonymous",
              who(sf, customer="vip-42", customer_token=customer_token("vip-42", ttl=-10))[0] ==
              "anonymous")
        # An expiry past any clock, made up by anyone with the public
        # token: it overflowed (undefined behaviour) before the signature
        # was checked; it is one more bad token.
        check("a made-up expiry of 17 digits: anonymous, the server unharmed",
              who(sf, customer="vip-42",
                  customer_token="vip-42.99999999999999999." + "0" * 64)[0] == "anonymous")
        check("a negative expiry: anonymous",
              who(sf, customer="vip-42", customer_token="vip-42.-5." + "0" * 64)[0] ==
              "anonymous")
        forged = good[:-1] + ("0" if good[-1] != "0" else "1")
        check("a forged signature: anonymous",
              who(sf, customer="vip-42", customer_token=forged)[0] == "anonymous")
        check("a token signed with another secret: anonymous",
              who(sf, customer="vip-42",
                  customer_token=customer_token("vip-42", secret="another-secret-0123456789"))[0] ==
              "anonymous")
        check("an admin names customers freely", who(adm, customer="vip-42")[0] == "vip-42")

        r = sf.call("event", event={"type": "view", "id": "m-anon", "item": "a", "anon": "v1",
                                    "customer": "vip-42"})
        check("an unproven event is kept as the visitor's", r.get("result") == {"ok": True}, r)
        r = sf.call("event", event={"type": "view", "id": "m-proven", "item": "a", "anon": "v1",
                                    "customer": "vip-42"}, customer_token=good)
        check("a proven event is accepted", r.get("result") == {"ok": True}, r)
        r = sf.call("identify", customer="vip-42", anon="v1")
        check("identify without proof is refused", error_code(r) == "bad_field", r)
        r = sf.call("event", event={"type": "signup", "customer": "vip-43"})
        check("a signup for someone else is refused", error_code(r) == "bad_field", r)
        sf.close()
        adm.close()
        T.stopped_clean(s)
        db = sqlite3.connect(s.db)
        rows = dict(db.execute("SELECT msg_id, customer FROM events WHERE msg_id LIKE 'm-%'"))
        db.close()
        check("the unproven event was stored without the customer", rows.get("m-anon") is None and
              "m-anon" in rows, rows)
        check("the proven one with it", rows.get("m-proven") == "vip-42", rows)

        # A server without a secret cannot check proof: storefronts speak for
        # no customer at all.
        cfg = dict(s.cfg)
        cfg["server"] = dict(cfg["server"])
        del cfg["server"]["customer_secret"]
        s.write_config(cfg)
        s.start()
        sf = s.connect()
        sf.call("auth", token=STOREFRONT)
        check("no secret configured: anonymous even with a token",
              who(sf, customer="vip-42", customer_token=good)[0] == "anonymous")
        sf.close()
        check("clean stop without a secret", s.stop() == 0)
    finally:
        s.cleanup()
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
