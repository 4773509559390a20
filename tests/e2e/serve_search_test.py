"""serve_search_test.py: searches sent as Segment's `Products Searched`
(through /v1/batch, as analytics.js and the server clients send them) and
GA4's `search` feed "because you searched ..." on the shipped strategies
of a real `tailor serve`: what searchers went on to view and buy comes
back for the term (any case, any spacing), its seeds name the term, the
visitor's own searches fill their home page, and all of it survives a
restart (the index checkpoint keeps it).
"""

import base64
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from serve_kit import ADMIN, ROOT, STOREFRONT, Checks, Server  # noqa: E402

T = Checks()
check = T.check

CATALOG = [
    {"id": "runner", "name": "Trail Runner", "price": 119, "category": "Sport/Running/Shoes"},
    {"id": "racer", "name": "Road Racer", "price": 139, "category": "Sport/Running/Shoes"},
    {"id": "mug", "name": "Gift Mug", "price": 12, "category": "Home/Kitchen"},
    {"id": "sofa", "name": "Oslo Sofa", "price": 899, "category": "Home/Living/Sofas"},
]


def post(port, path, body, key=STOREFRONT):
    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (port, path), data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode((key + ":").encode()).decode()})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read() or b"null")


def searched(anon, query, then, n):
    out = [{"type": "track", "event": "Products Searched", "anonymousId": anon,
            "messageId": "%s-q" % anon, "properties": {"query": query}}]
    for i, item in enumerate(then):
        out.append({"type": "track", "event": "Product Viewed", "anonymousId": anon,
                    "messageId": "%s-%d-%d" % (anon, n, i), "properties": {"product_id": item}})
    return out


def decide(s, anon, page, k=3):
    c = s.connect()
    r = c.call("decide", kind="recommend", anon=anon, k=k, page=page, token=STOREFRONT)
    c.close()
    return (r or {}).get("result") or {}


def check_answers(s, when):
    r = decide(s, "v-other", {"type": "search", "query": "  RUNNING shoes"})
    items = r.get("items", [])
    check(when + ": a search page gets what searchers viewed, heaviest first",
          [i["id"] for i in items[:2]] == ["racer", "runner"], r)
    check(when + ": the seeds name the term, normalized",
          items and items[0].get("reason") == "searched" and
          items[0].get("because") == ["running shoes"], r)
    check(when + ": the explanation quotes it",
          items and items[0].get("explain") == "Because you searched 'running shoes'", r)
    r = decide(s, "v-new", {"type": "home"})
    items = r.get("items", [])
    check(when + ": the visitor's own search fills their home page",
          items and items[0]["id"] == "mug" and items[0].get("because") == ["gift"], r)


def main():
    s = Server(engine={"strategies": os.path.join(ROOT, "strategies")})
    try:
        adm = s.connect()
        for item in CATALOG:
            r = adm.call("item.upsert", item=item, token=ADMIN)
            check("catalog " + item["id"], r.get("result") is not None, r)
        adm.close()
        batch = (searched("v-1", "Running Shoes", ["racer", "runner"], 1) +
                 searched("v-2", "running  shoes ", ["racer"], 2) +
                 searched("v-3", "gift", ["mug"], 3) +
                 [{"type": "track", "event": "Product Viewed", "anonymousId": "v-4",
                   "messageId": "v-4-0", "properties": {"product_id": "sofa"}}])
        status, body = post(s.port, "/v1/batch", {"batch": batch})
        check("Segment batch accepted", status == 200, body)
        # GA4's name for it, with its own parameter.
        req = urllib.request.Request(
            "http://127.0.0.1:%d/mp/collect?measurement_id=G-1&api_secret=%s" % (s.port, STOREFRONT),
            data=json.dumps({"client_id": "v-new", "events": [
                {"name": "search", "params": {"search_term": "Gift"}}]}).encode(),
            method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            check("GA4 search accepted", r.status in (200, 204), r.status)
        check_answers(s, "live")
        T.stopped_clean(s)
        s.start()
        log = s.read_log().decode(errors="replace")
        check("the restart loaded the checkpoint", "ignored" not in log, log[-2000:])
        check_answers(s, "after a restart")
        T.stopped_clean(s)
    finally:
        s.cleanup()


if __name__ == "__main__":
    T.run(main)
    sys.exit(T.done())
