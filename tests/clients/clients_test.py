"""clients_test.py: the real Segment and RudderStack Node clients, pointed at
`tailor serve` as a shop would (its host and write key), send identify, a
page, the e-commerce spec v2 events, an unknown event and an alias
(tests/clients/send.js); tailor gives them back: the events by type in
stats, the customer with the traits' email and phone as PII (the
storefront's view of them without), the identities merged, the views in
a recommendation, and the unknown event kept.  A retried batch (same
messageIds) is stored once.

The clients are installed by the clients/setup test (setup.sh: `npm ci`
from the lock file in this folder) into CLIENTS_DIR.
"""

import json
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from serve_kit import ADMIN, STOREFRONT, TOKENS, Checks, Server, result  # noqa: E402

T = Checks()
check = T.check

INGEST = "ingest-token-0123456789abcdef"
NODE = os.environ.get("NODE", "node")
CLIENTS_DIR = os.environ.get("CLIENTS_DIR", os.path.dirname(__file__))
SEND = os.path.join(os.path.dirname(os.path.abspath(__file__)), "send.js")

E_COMMERCE = ["Products Searched", "Product List Viewed", "Product Clicked",
              "Product Added to Wishlist", "Cart Viewed", "Coupon Applied",
              "Promotion Viewed", "Promotion Clicked", "Newsletter Subscribed"]


def send(client, port, prefix):
    env = dict(os.environ, NODE_PATH=os.path.join(CLIENTS_DIR, "node_modules"))
    out = subprocess.run([NODE, SEND, client, "http://127.0.0.1:%d" % port, INGEST, prefix],
                         capture_output=True, timeout=120, env=env)
    return out.returncode, out.stdout.decode(), out.stderr.decode()


def post(port, path, body, key=INGEST):
    import base64

    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (port, path), data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode((key + ":").encode()).decode()})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read() or b"null")


def client_reads_back(s, admin, client, prefix):
    code, out, err = send(client, s.port, prefix)
    check("%s: the client delivers everything" % client, code == 0 and '"ok":true' in out,
          (code, out, err[-2000:]))
    user = prefix + "-user"
    exp = result(admin.call("customer.export", customer=user)) or {}
    prof = exp.get("profile") or {}
    check("%s: identify's email and phone are the profile's" % client,
          prof.get("email") == prefix + "@example.com" and prof.get("phone") == "+49 30 1234567",
          prof)
    check("%s: the other traits are attributes" % client,
          ((prof.get("body") or {}).get("attrs") or {}).get("plan") == "gold", prof)
    anons = sorted(i.get("anon") for i in exp.get("identities", []))
    check("%s: anonymousId and alias's previousId merge into the customer" % client,
          anons == sorted([prefix + "-anon", prefix + "-old-device"]), exp.get("identities"))
    bodies = [e.get("body", {}) for e in exp.get("events", [])]
    others = sorted(b.get("name") for b in bodies if b.get("type") == "other")
    check("%s: e-commerce events without a tailor type are kept under their names" % client,
          others == sorted(E_COMMERCE[1:]), others)
    types = sorted({b.get("type") for b in bodies})
    for t in ("page_view", "search", "view", "add_to_cart", "remove_from_cart", "checkout",
              "purchase", "refund", "identify"):
        check("%s: a %s event" % (client, t), t in types, types)
    purchase = [b for b in bodies if b.get("type") == "purchase"]
    check("%s: Order Completed with its products" % client,
          purchase and purchase[0].get("order_id") == prefix + "-o1" and
          purchase[0].get("revenue") == 24 and
          [i.get("id") for i in purchase[0].get("items", [])] == [prefix + "-hat"], purchase)
    check("%s: no email or phone in the event log" % client,
          "example.com" not in json.dumps([b for b in bodies if b.get("type") != "customer_upsert"]),
          bodies)
    got = result(admin.call("customer.get", customer=user)) or {}
    fig = got.get("figures", {})
    check("%s: the customer's views, cart and order are indexed" % client,
          prefix + "-gloves" in fig.get("recent", []) and prefix + "-hat" in fig.get("bought", []),
          fig)
    sf = s.connect()
    sf.call("auth", token=STOREFRONT)
    seen = result(sf.call("customer.get", customer=user))
    check("%s: a storefront token reads no profile" % client, seen is None)
    d = result(sf.call("decide", kind="recommend", anon=prefix + "-anon2", k=20)) or {}
    ids = [i["id"] for i in d.get("items", [])]
    check("%s: the recommendation uses the clients' views" % client,
          prefix + "-hat" in ids and prefix + "-scarf" in ids, d)
    sf.close()


def retried_batch(s, admin):
    batch = {"batch": [
        {"type": "track", "event": "Product Viewed", "anonymousId": "retry-anon",
         "messageId": "retry-%d" % i, "properties": {"product_id": "retry-item"},
         "timestamp": "2026-01-01T00:00:00Z"} for i in range(3)],
        "sentAt": "2026-01-01T00:00:01Z"}
    st1, first = post(s.port, "/v1/batch", batch)
    st2, again = post(s.port, "/v1/batch", batch)
    check("a batch is answered as Segment does", st1 == 200 and first.get("success") is True,
          first)
    check("its retry (same messageIds) is acknowledged as duplicates",
          st2 == 200 and again.get("success") is True and again.get("duplicates") == 3, again)
    import sqlite3

    con = sqlite3.connect(s.db)
    rows = con.execute("SELECT count(*) FROM events WHERE msg_id LIKE 'retry-%'").fetchone()[0]
    con.close()
    check("the retried batch is stored once", rows == 3, rows)


def main():
    s = Server(server={"tokens": TOKENS + [{"token": INGEST, "role": "ingest"}]})
    try:
        admin = s.connect()
        admin.call("auth", token=ADMIN)
        before = result(admin.call("stats")) or {}
        T.run(client_reads_back, s, admin, "segment", "sg")
        T.run(client_reads_back, s, admin, "rudderstack", "rs")
        stats = result(admin.call("stats")) or {}
        ev = stats.get("events", {})
        check("stats count the unknown events, kept as 'other'",
              ev.get("other", 0) - before.get("events", {}).get("other", 0) == 2 * 8, ev)
        check("stats count the clients' views", ev.get("view", 0) >= 2 * 4, ev)
        T.run(retried_batch, s, admin)
        admin.close()
        T.stopped_clean(s)
    finally:
        s.cleanup()
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
