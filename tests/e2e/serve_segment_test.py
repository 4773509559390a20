"""serve_segment_test.py: the clients' own protocols on `tailor serve`'s
port, spoken raw: Segment's HTTP Tracking API (/v1/batch, /v1/track, ...)
and GA4's Measurement Protocol (/mp/collect, /debug/mp/collect), and what
they answer to bad input: a wrong write key (401), a message over 32 KB
(refused alone in a batch, 400 alone), a batch over 500 KB (400), a batch
with one bad message (the others stored, the bad one named), invalid gzip
(400, nothing stored).  Segment's clock-skew correction for a trusted
(ingest) key, the server's clock for a storefront key.  The real clients
are tests/clients.
"""

import base64
import gzip
import json
import os
import sqlite3
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from serve_kit import STOREFRONT, TOKENS, Checks, Server, customer_token  # noqa: E402

T = Checks()
check = T.check

INGEST = "ingest-token-0123456789abcdef"


def post(port, path, body, key=INGEST, raw=None, headers=None, basic=True):
    data = raw if raw is not None else json.dumps(body).encode()
    h = {"Content-Type": "application/json"}
    if key and basic:
        h["Authorization"] = "Basic " + base64.b64encode((key + ":").encode()).decode()
    h.update(headers or {})
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method="POST", headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, json.loads(text) if text else None


def rows(db, sql, *args):
    con = sqlite3.connect(db)
    out = con.execute(sql, args).fetchall()
    con.close()
    return out


def track(mid, event="Product Viewed", **props):
    return {"type": "track", "event": event, "anonymousId": "v-" + mid, "messageId": mid,
            "properties": props or {"product_id": "p-" + mid}}


def segment_bad_input(s):
    # More messages than max_batch_events (1000): refused whole, as an
    # `events` request is, also when gzip makes the body small.
    big = {"batch": [track("many-%d" % i) for i in range(1001)]}
    st, r = post(s.port, "/v1/batch", None, raw=gzip.compress(json.dumps(big).encode()),
                 headers={"Content-Encoding": "gzip"})
    check("a Segment batch over max_batch_events is refused",
          st == 400 and (r or {}).get("error", {}).get("code") == "too_large" and
          not rows(s.db, "SELECT 1 FROM events WHERE msg_id='many-0'"), (st, r))
    st, r = post(s.port, "/v1/batch", {"batch": [track("k1")]}, key="wrong-key-0123456789")
    check("a wrong write key is 401", st == 401 and r["error"]["code"] == "unauthorized", (st, r))
    st, r = post(s.port, "/v1/batch", {"batch": [track("k1")]}, key=None)
    check("no write key is 401", st == 401, (st, r))
    big = track("big", list_id="x" * 40000)
    st, r = post(s.port, "/v1/batch", {"batch": [track("b1"), big, {"type": "teleport"},
                                                 track("b2")]})
    errs = {e["index"]: e for e in (r or {}).get("errors", [])}
    check("a batch with bad messages keeps the good ones",
          st == 200 and r.get("accepted") == 2 and r.get("rejected") == 2, (st, r))
    check("the oversized message is named",
          errs.get(1, {}).get("code") == "too_large" and errs[1].get("messageId") == "big" and
          "32 KB" in errs[1].get("message", ""), errs)
    check("the message that is no Segment call is named",
          errs.get(2, {}).get("field") == "type" and "teleport" in errs[2].get("message", ""),
          errs)
    check("the good messages are stored",
          len(rows(s.db, "SELECT 1 FROM events WHERE msg_id IN ('b1','b2')")) == 2)
    st, r = post(s.port, "/v1/track", big)
    check("a single call over 32 KB is 400, as Segment answers", st == 400 and
          r["error"]["code"] == "too_large", (st, r and r.get("error")))
    huge = {"batch": [track("h%d" % i, list_id="y" * 20000) for i in range(30)]}
    st, r = post(s.port, "/v1/batch", huge)
    check("a batch over 500 KB is 400", st == 400 and "500 KB" in r["error"]["message"], (st, r))
    check("nothing of it is stored", not rows(s.db, "SELECT 1 FROM events WHERE msg_id='h1'"))
    st, r = post(s.port, "/v1/batch", None, raw=b"\x1f\x8b\x08\x00garbage",
                 headers={"Content-Encoding": "gzip"})
    check("invalid gzip is a clear 400", st == 400 and r["error"]["code"] == "bad_request" and
          "gzip" in r["error"]["message"], (st, r))
    st, r = post(s.port, "/v1/batch", None,
                 raw=gzip.compress(json.dumps({"batch": [track("z1")]}).encode()),
                 headers={"Content-Encoding": "gzip"})
    check("a gzip batch is stored", st == 200 and r.get("accepted") == 1, (st, r))
    st, r = post(s.port, "/v1/track", track("u1", event="Totally Custom Thing"))
    check("an unknown event is kept as 'other' under its name",
          st == 200 and rows(s.db, "SELECT type, json_extract(body,'$.name') FROM events "
                                   "WHERE msg_id='u1'") == [("other", "Totally Custom Thing")],
          (st, r))
    st, r = post(s.port, "/v1/batch", {"batch": []})
    check("an empty batch is a clear 400", st == 400 and r["error"]["field"] == "batch", (st, r))


def segment_time(s):
    # A sender whose clock is an hour behind: its timestamp and sentAt are
    # both an hour old; the corrected time is close to ours.
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000Z"  # noqa: E731
    m = track("skew1")
    m["timestamp"] = iso(now - 3600 - 5)
    st, r = post(s.port, "/v1/batch", {"batch": [m], "sentAt": iso(now - 3600)})
    ts = rows(s.db, "SELECT ts FROM events WHERE msg_id='skew1'")
    check("timestamp + (receivedAt - sentAt)",
          st == 200 and ts and abs(ts[0][0] / 1000 - (now - 5)) < 3, (st, r, ts, now))
    m = track("skew2")
    m["timestamp"] = iso(now - 86400)
    st, r = post(s.port, "/v1/track", m, key=STOREFRONT)
    ts = rows(s.db, "SELECT ts FROM events WHERE msg_id='skew2'")
    check("a storefront key's events take the server's clock",
          st == 200 and ts and abs(ts[0][0] / 1000 - now) < 5, (st, r, ts))
    m = track("fut1")
    m["timestamp"] = iso(now + 86400)
    st, r = post(s.port, "/v1/batch", {"batch": [m, track("fut2")], "sentAt": iso(now)})
    check("a trusted time too far ahead is refused, the rest kept",
          st == 200 and r.get("accepted") == 1 and r["errors"][0]["messageId"] == "fut1", r)
    st, r = post(s.port, "/v1/batch", {"batch": [
        {"type": "identify", "userId": "stranger", "anonymousId": "sf-a",
         "traits": {"email": "x@example.com"}, "messageId": "sfid"}, track("sf-ok")]},
        key=STOREFRONT)
    # One message refused is one rejection, named once (its traits and its
    # link were counted as two).
    check("a storefront names no customer without proof: identify refused, the rest kept",
          st == 200 and r.get("accepted") == 1 and r.get("rejected") == 1 and
          [e.get("messageId") for e in r.get("errors", [])] == ["sfid"] and
          not rows(s.db, "SELECT 1 FROM customers WHERE id='stranger'"), r)


def segment_own_names(s):
    # A client's event named as one of tailor's own records is the client's
    # name: a track call "customer_upsert" from a visitor with a valid
    # customer token writes no profile (no email, no consent without the
    # double opt-in), an "item_upsert" from a trusted key no catalog item.
    st, r = post(s.port, "/v1/track", {
        "type": "track", "event": "customer_upsert", "anonymousId": "own-a", "messageId": "own1",
        "properties": {"customer": {"id": "own-c", "email": "victim@example.com",
                                    "consent": {"email": True}}}},
        key=STOREFRONT, headers={"X-Tailor-Customer": customer_token("own-c")})
    check("a track call named customer_upsert writes no profile",
          not rows(s.db, "SELECT 1 FROM customers WHERE id='own-c'") and
          not rows(s.db, "SELECT 1 FROM events WHERE type='customer_upsert'"), (st, r))
    st, r = post(s.port, "/v1/track", {
        "type": "track", "event": "item_upsert", "anonymousId": "own-a", "messageId": "own2",
        "properties": {"item": {"id": "own-i", "price": 1}}})
    check("a track call named item_upsert adds nothing to the catalog",
          not rows(s.db, "SELECT 1 FROM items WHERE id='own-i'"), (st, r))
    # An identify without a userId is kept as an `other` event named
    # identify (it was refused: identify needs a customer).
    st, r = post(s.port, "/v1/identify", {"messageId": "own3", "anonymousId": "own-a",
                                          "traits": {"plan": "gold", "email": "x@example.com"}})
    kept = rows(s.db, "SELECT type, body FROM events WHERE msg_id='own3'")
    check("an anonymous identify is kept as other/identify, without the PII",
          st == 200 and r.get("accepted") == 1 and kept and kept[0][0] == "other" and
          '"name":"identify"' in kept[0][1] and "x@example.com" not in kept[0][1], (st, r, kept))
    # A messageId near the longest id: the traits' own id still fits, and a
    # retry of the call is the same traits.
    mid = "m" * 252
    for _ in range(2):
        st, r = post(s.port, "/v1/identify", {"messageId": mid, "userId": "long-u",
                                              "anonymousId": "long-a", "traits": {"plan": "gold"}})
        check("an identify with a 252-byte messageId keeps its traits", st == 200 and
              r.get("accepted") == 1 and not r.get("rejected"), (st, r))
    check("its traits are stored once and the ids linked",
          rows(s.db, "SELECT count(*) FROM events WHERE type='customer_upsert' AND customer='long-u'")
          == [(1,)] and rows(s.db, "SELECT count(*) FROM events WHERE type='identify' AND "
                                   "customer='long-u'") == [(1,)],
          rows(s.db, "SELECT type, msg_id FROM events WHERE customer='long-u'"))


# Payloads from Google's Measurement Protocol reference (gtag.js events).
GA4_PURCHASE = {
    "client_id": "123456.7654321", "user_id": "ga-user",
    "events": [{"name": "purchase", "params": {
        "currency": "USD", "transaction_id": "T_12345", "value": 30.03, "coupon": "SUMMER_FUN",
        "shipping": 3.33, "tax": 1.11,
        "items": [{"item_id": "SKU_12345", "item_name": "Stan and Friends Tee",
                   "affiliation": "Google Merchandise Store", "coupon": "SUMMER_FUN",
                   "discount": 2.22, "index": 0, "item_brand": "Google",
                   "item_category": "Apparel", "item_variant": "green", "price": 10.01,
                   "quantity": 3}]}}]}
GA4_EVENTS = {
    "client_id": "123456.7654321",
    "events": [
        {"name": "view_item", "params": {"currency": "USD", "value": 30.03,
                                         "items": [{"item_id": "SKU_12345", "price": 10.01}]}},
        {"name": "view_item_list", "params": {"item_list_id": "related_products",
                                              "items": [{"item_id": "SKU_1"}, {"item_id": "SKU_2"}]}},
        {"name": "select_item", "params": {"item_list_id": "related_products",
                                           "items": [{"item_id": "SKU_1"}]}},
        {"name": "add_to_cart", "params": {"currency": "USD", "value": 10.01,
                                           "items": [{"item_id": "SKU_12345", "price": 10.01}]}},
        {"name": "remove_from_cart", "params": {"items": [{"item_id": "SKU_12345"}]}},
        {"name": "view_cart", "params": {"items": [{"item_id": "SKU_12345"}]}},
        {"name": "add_to_wishlist", "params": {"items": [{"item_id": "SKU_2"}]}},
        {"name": "begin_checkout", "params": {"items": [{"item_id": "SKU_12345"}]}},
        {"name": "search", "params": {"search_term": "t-shirts"}},
        {"name": "refund", "params": {"transaction_id": "T_12345", "value": 30.03}},
    ]}


def ga4(s):
    q = "/mp/collect?measurement_id=G-TEST123&api_secret=" + INGEST
    st, r = post(s.port, q, GA4_PURCHASE, basic=False)
    check("GA4 collect answers 204", st == 204 and r is None, (st, r))
    got = rows(s.db, "SELECT customer, anon, json_extract(body,'$.revenue'), "
                     "json_extract(body,'$.items[0].id') FROM events WHERE type='purchase' "
                     "AND json_extract(body,'$.order_id')='T_12345'")
    check("GA4's purchase with its items", got == [("ga-user", "123456.7654321", 30.03,
                                                    "SKU_12345")], got)
    st, r = post(s.port, q, GA4_EVENTS, basic=False)
    check("GA4's recommended e-commerce events are all stored", st == 204, (st, r))
    types = [t for (t,) in rows(s.db, "SELECT type FROM events WHERE anon='123456.7654321' "
                                      "ORDER BY seq")]
    check("each mapped onto tailor's types, the rest kept as other",
          types == ["purchase", "view", "other", "other", "add_to_cart", "remove_from_cart",
                    "other", "other", "checkout", "search", "refund"], types)
    # GA4's session_id is the second the session began: two clients that
    # began in the same second have two sessions.
    for cid in ("c-one.1", "c-two.2"):
        st, r = post(s.port, q, {"client_id": cid, "events": [
            {"name": "view_item", "params": {"session_id": 1765000000,
                                             "items": [{"item_id": "SKU_1"}]}}]}, basic=False)
        check("GA4 view of %s stored" % cid, st == 204, (st, r))
    got = rows(s.db, "SELECT anon, session FROM events WHERE anon IN ('c-one.1', 'c-two.2') "
                     "ORDER BY seq")
    check("a GA4 session is its client's", got == [("c-one.1", "c-one.1:1765000000"),
                                                  ("c-two.2", "c-two.2:1765000000")], got)
    st, r = post(s.port, "/mp/collect?measurement_id=G-TEST123&api_secret=wrong-secret-012345",
                 GA4_PURCHASE, basic=False)
    check("a wrong api_secret is 401", st == 401, (st, r))
    bad = {"client_id": "c.1", "events": [{"name": "_bad_name"},
                                          {"name": "purchase", "params": {"value": 1}},
                                          {"name": "view_item", "params": {"items": [{}]}}]}
    st, r = post(s.port, "/debug/mp/collect?measurement_id=G-TEST123&api_secret=" + INGEST, bad,
                 basic=False)
    msgs = (r or {}).get("validationMessages", [])
    check("debug answers GA4's validation messages",
          st == 200 and len(msgs) == 3 and
          all(set(m) == {"fieldPath", "description", "validationCode"} for m in msgs), (st, r))
    codes = [m["validationCode"] for m in msgs]
    check("with GA4's codes", codes == ["NAME_RESERVED", "VALUE_REQUIRED", "VALUE_REQUIRED"],
          msgs)
    st, r = post(s.port, "/debug/mp/collect?measurement_id=G-TEST123&api_secret=" + INGEST,
                 GA4_PURCHASE, basic=False)
    check("a valid payload has no messages", st == 200 and r == {"validationMessages": []}, r)
    check("debug stores nothing",
          len(rows(s.db, "SELECT 1 FROM events WHERE type='purchase'")) == 1)
    st, r = post(s.port, "/debug/mp/collect?measurement_id=G-TEST123&api_secret=" + INGEST,
                 None, raw=b"{not json", basic=False)
    check("debug names a malformed body",
          st == 200 and r["validationMessages"][0]["validationCode"] == "VALUE_INVALID", r)
    st, r = post(s.port, q, bad, basic=False)
    check("collect keeps the valid events and names the others",
          st == 200 and r.get("rejected") == 3, (st, r))


def main():
    s = Server(server={"tokens": TOKENS + [{"token": INGEST, "role": "ingest"}]})
    try:
        T.run(segment_bad_input, s)
        T.run(segment_time, s)
        T.run(segment_own_names, s)
        T.run(ga4, s)
        T.stopped_clean(s)
    finally:
        s.cleanup()
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
