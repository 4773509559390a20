#!/usr/bin/env python3
"""serve_ops_test.py: every operation of `tailor serve` over NDJSON and over
HTTP, token roles and their refusals, CORS, on the real binary.
"""

import http.client
import json
import os
import socket
import sys

from serve_kit import (ADMIN, METRICS, STOREFRONT, Checks, Server, customer_token, error_code,
                       result)

T = Checks()
check = T.check


def ndjson_ops(s):
    c = s.connect()
    r = c.call("ping")
    check("ping", result(r) and result(r)["pong"] is True and r["id"] == 1, r)
    r = c.call("decide", kind="recommend")
    check("no token: unauthorized", error_code(r) == "unauthorized", r)
    check("no token: field", r["error"]["field"] == "token", r)
    r = c.call("auth", token="not-a-token")
    check("auth with a wrong token", error_code(r) == "unauthorized", r)
    r = c.call("auth", token=ADMIN)
    check("auth as admin", result(r) == {"role": "admin"}, r)

    r = c.call("item.upsert", item={"id": "hat", "name": "Wool Hat", "price": 24})
    check("item.upsert", result(r) == {"ok": True}, r)
    r = c.call("item.upsert", item={"id": "scarf", "price": 30})
    r = c.call("item.upsert", item={"id": "gone", "price": 1})
    r = c.call("item.delete", item="gone")
    check("item.delete", result(r) == {"ok": True}, r)
    r = c.call("item.upsert", item={"price": 3})
    check("item.upsert without id", error_code(r) == "bad_field" and
          r["error"]["field"] == "item.id", r)

    r = c.call("event", event={"type": "view", "item": "hat", "anon": "v1"})
    check("event", result(r) == {"ok": True}, r)
    r = c.call("event", event={"event": "Product Viewed", "anonymousId": "v2",
                               "properties": {"product_id": "scarf"}})
    check("event in Segment's dialect", result(r) == {"ok": True}, r)
    r = c.call("event", event={"type": "view", "anon": "v1"})
    check("invalid event: bad_field naming it", error_code(r) == "bad_field" and
          r["error"]["field"] == "item", r)
    r = c.call("events", events=[
        {"type": "view", "item": "scarf", "anon": "v3"},
        {"type": "teleport", "anon": "v3"},
        {"type": "add_to_cart", "item": "hat", "anon": "v3"}])
    res = result(r)
    check("events: counts", res and res["accepted"] == 2 and res["rejected"] == 1, r)
    check("events: the rejected one by index",
          res and res["errors"][0]["index"] == 1 and res["errors"][0]["code"] == "bad_field", r)
    r = c.call("events", events=[])
    check("events: empty", error_code(r) == "bad_field", r)
    r = c.call("events", events={"type": "view"})
    check("events: not an array", error_code(r) == "bad_field", r)

    r = c.call("customer.upsert", customer={"id": "c1", "email": "ada@example.com",
                                            "phone": "+49 30 1234",
                                            "consent": {"email": True},
                                            "attrs": {"country": "DE"}})
    check("customer.upsert", result(r) == {"ok": True}, r)
    r = c.call("identify", customer="c1", anon="v1")
    check("identify", result(r) == {"ok": True}, r)
    r = c.call("identify", customer="c1")
    check("identify without anon", error_code(r) == "bad_field" and
          r["error"]["field"] == "anon", r)

    r = c.call("decide", kind="recommend", anon="v9", k=5,
               page={"type": "home"}, context={"device": "mobile"})
    items = [i["id"] for i in (result(r) or {}).get("items", [])]
    check("decide sees the events", "hat" in items and "scarf" in items, r)
    check("decide skips deleted items", "gone" not in items, r)
    r = c.call("decide", kind="recommend", customer="c1", session="s1", k=1)
    check("decide k=1", len(result(r)["items"]) == 1, r)
    r = c.call("decide", kind="recommend", k="ten")
    check("decide: k mistyped", error_code(r) == "bad_field" and r["error"]["field"] == "k", r)
    r = c.call("decide", kind="recommend", costumer="c1")
    check("decide: unknown field named", error_code(r) == "bad_field" and
          r["error"]["field"] == "costumer", r)
    r = c.call("decide", kind="Recommend!")
    check("decide: bad kind", error_code(r) == "bad_field" and r["error"]["field"] == "kind", r)
    r = c.call("decide", kind="no_such_handler", anon="v1")
    check("decide: a kind without a handler still answers",
          result(r) is not None and result(r).get("fallback") is True, r)

    r = c.call("customer.get", customer="c1")
    res = result(r) or {}
    check("customer.get as admin has PII", res.get("email") == "ada@example.com", r)
    check("customer.get has figures", "figures" in res, r)
    r = c.call("customer.get", customer="nobody")
    check("customer.get unknown", error_code(r) == "not_found", r)

    r = c.call("stats")
    res = result(r) or {}
    check("stats", res.get("events", {}).get("view", 0) >= 3, r)

    r = c.call("customer.forget", customer="c1")
    check("customer.forget", result(r) and result(r)["erased"] >= 1, r)
    r = c.call("customer.get", customer="c1")
    check("forgotten customer has no PII",
          error_code(r) == "not_found" or "email" not in (result(r) or {}), r)

    r = c.call("nosuch.op")
    check("unknown op", error_code(r) == "unknown_op" and r["error"]["field"] == "op", r)
    c.send({"op": "ping"})
    r = c.line()
    check("missing id", error_code(r) == "bad_field" and r["id"] is None, r)
    c.send({"id": "str-id", "op": "ping"})
    r = c.line()
    check("string ids are repeated", r["id"] == "str-id" and result(r), r)
    c.send({"id": [1], "op": "ping"})
    r = c.line()
    check("id of the wrong type", error_code(r) == "bad_field" and r["error"]["field"] == "id", r)
    r = c.call("ping")
    check("connection usable after errors", result(r) is not None, r)
    c.close()


def roles(s):
    sf = s.connect()
    r = sf.call("auth", token=STOREFRONT)
    check("auth as storefront", result(r) == {"role": "storefront"}, r)
    r = sf.call("event", event={"type": "view", "item": "hat", "anon": "s1"})
    check("storefront sends events", result(r) == {"ok": True}, r)
    r = sf.call("identify", customer="c2", anon="s1")
    check("storefront identifies only with proof", error_code(r) == "bad_field" and
          r["error"]["field"] == "customer", r)
    r = sf.call("identify", customer="c2", anon="s1", customer_token=customer_token("c2"))
    check("storefront identifies with a customer token", result(r) == {"ok": True}, r)
    r = sf.call("decide", kind="recommend", anon="s1")
    check("storefront decides", result(r) and "items" in result(r), r)
    for op, fields in [("item.upsert", {"item": {"id": "x"}}),
                       ("item.delete", {"item": "hat"}),
                       ("customer.upsert", {"customer": {"id": "c9", "email": "e@x.org"}}),
                       ("customer.get", {"customer": "c1"}),
                       ("customer.forget", {"customer": "c1"}),
                       ("stats", {})]:
        r = sf.call(op, **fields)
        check("storefront refused " + op, error_code(r) == "forbidden", r)
    r = sf.call("event", event={"type": "item_upsert", "item": {"id": "x"}})
    check("storefront refused a catalog event", error_code(r) == "forbidden", r)
    r = sf.call("events", events=[{"type": "view", "item": "hat", "anon": "s1"},
                                  {"type": "customer_upsert",
                                   "customer": {"id": "c9", "email": "e@x.org"}}])
    check("storefront refused a batch with a profile write", error_code(r) == "forbidden", r)
    # A request's own token wins over the connection's.
    r = sf.call("customer.get", customer="c2", token=ADMIN)
    check("per-request token", result(r) is not None, r)
    # Email never reaches a storefront: not in decisions either.
    adm = s.connect()
    adm.call("customer.upsert", token=ADMIN,
             customer={"id": "c2", "email": "bob@example.com", "phone": "+1 555"})
    r = sf.call("decide", kind="recommend", customer="c2")
    check("no email in a storefront's decision", "bob@example.com" not in json.dumps(r), r)
    m = s.connect()
    r = m.call("stats", token=METRICS)
    check("metrics role reads stats", result(r) is not None, r)
    r = m.call("decide", kind="recommend", token=METRICS)
    check("metrics role may not decide", error_code(r) == "forbidden", r)
    check("and the message names the roles that may",
          "(a token of role storefront or admin may)" in json.dumps(r), r)
    for c in (sf, adm, m):
        c.close()


def http_call(s, method, path, body=None, token=ADMIN, headers=None, conn=None):
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=h)
    resp = conn.getresponse()
    raw = resp.read()
    if own:
        conn.close()
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = raw.decode(errors="replace")
    return resp, doc


def http_ops(s):
    r, d = http_call(s, "GET", "/healthz", token=None)
    check("GET /healthz", r.status == 200 and d == {"status": "ok"}, d)
    r, d = http_call(s, "POST", "/v1/items", {"id": "boots", "price": 90})
    check("POST /v1/items", r.status == 200 and d == {"ok": True}, d)
    r, d = http_call(s, "POST", "/v1/events",
                     {"type": "view", "item": "boots", "anon": "h1"}, token=STOREFRONT)
    check("POST /v1/events one", r.status == 200 and d == {"ok": True}, d)
    r, d = http_call(s, "POST", "/v1/events",
                     [{"type": "view", "item": "boots", "anon": "h2"},
                      {"type": "view", "anon": "h2"}], token=STOREFRONT)
    check("POST /v1/events batch", r.status == 200 and d["accepted"] == 1 and
          d["rejected"] == 1, d)
    r, d = http_call(s, "POST", "/v1/events", {"type": "view", "anon": "h2"}, token=STOREFRONT)
    check("POST /v1/events invalid: 400", r.status == 400 and
          d["error"]["code"] == "bad_field", d)
    r, d = http_call(s, "POST", "/v1/decide/recommend", {"anon": "h1", "k": 3},
                     token=STOREFRONT)
    check("POST /v1/decide/recommend", r.status == 200 and
          any(i["id"] == "boots" for i in d["items"]), d)
    r, d = http_call(s, "POST", "/v1/decide/recommend", None, token=STOREFRONT)
    check("POST /v1/decide without a body", r.status == 200 and "items" in d, d)
    r, d = http_call(s, "POST", "/v1/decide/recommend", {"k": "x"}, token=STOREFRONT)
    check("decide over HTTP: bad k", r.status == 400 and d["error"]["field"] == "k", d)
    r, d = http_call(s, "POST", "/v1/customers",
                     {"id": "c%2F7 x", "email": "eve@example.com"})
    r, d = http_call(s, "POST", "/v1/customers", {"id": "c7", "email": "eve@example.com"})
    check("POST /v1/customers", r.status == 200, d)
    r, d = http_call(s, "POST", "/v1/identify", {"customer": "c7", "anon": "h1"},
                     token=STOREFRONT, headers={"X-Tailor-Customer": customer_token("c7")})
    check("POST /v1/identify", r.status == 200, d)
    r, d = http_call(s, "GET", "/v1/customers/c7")
    check("GET /v1/customers/{id}", r.status == 200 and d["email"] == "eve@example.com", d)
    r, d = http_call(s, "GET", "/v1/customers/c7", token=STOREFRONT)
    check("GET customer as storefront: 403", r.status == 403 and
          "eve@example.com" not in json.dumps(d), d)
    r, d = http_call(s, "GET", "/v1/customers/c7", token=None)
    check("GET customer without token: 401", r.status == 401 and
          r.getheader("WWW-Authenticate") == "Bearer", d)
    r, d = http_call(s, "GET", "/v1/customers/c7", token="bogus-token-xxxxxxxxxx")
    check("unknown bearer: 401", r.status == 401, d)
    r, d = http_call(s, "GET", "/v1/customers/nobody%40example.com")
    check("GET unknown customer: 404", r.status == 404, d)
    r, d = http_call(s, "DELETE", "/v1/customers/c7")
    check("DELETE /v1/customers/{id}", r.status == 200 and d["erased"] >= 1, d)
    r, d = http_call(s, "DELETE", "/v1/items/boots")
    check("DELETE /v1/items/{id}", r.status == 200, d)
    r, d = http_call(s, "GET", "/v1/stats", token=METRICS)
    check("GET /v1/stats", r.status == 200 and "events" in d, d)
    r, d = http_call(s, "GET", "/metrics", token=METRICS)
    text = d if isinstance(d, str) else ""
    for name in ["tailor_requests_total{proto=\"http\",op=\"decide\"}",
                 "tailor_request_duration_seconds_bucket{op=\"decide\",le=\"0.001\"}",
                 "tailor_request_errors_total{code=\"forbidden\"}",
                 "tailor_events_total{type=\"view\"}",
                 "tailor_strategy_errors_total",
                 "tailor_index_entries{kind=\"items\"}",
                 "process_resident_memory_bytes"]:
        check("metrics has " + name, name in text, text[:200])
    check("metrics content type", r.getheader("Content-Type", "").startswith("text/plain"))
    r, d = http_call(s, "GET", "/metrics", token=STOREFRONT)
    check("metrics as storefront: 403", r.status == 403, d)
    r, d = http_call(s, "GET", "/nope")
    check("unknown path: 404", r.status == 404 and d["error"]["code"] == "not_found", d)
    r, d = http_call(s, "PUT", "/v1/events", {})
    check("wrong method: 405", r.status == 405, d)
    r, d = http_call(s, "POST", "/v1/events", b"{not json", token=STOREFRONT)
    check("bad JSON body: 400", r.status == 400 and d["error"]["code"] == "bad_json", d)

    # Keep-alive: several requests on one connection.
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    statuses = []
    for _ in range(5):
        r, d = http_call(s, "GET", "/healthz", conn=conn)
        statuses.append(r.status)
    check("keep-alive", statuses == [200] * 5, statuses)
    # HEAD: the headers of GET and no body, the connection still in step.
    conn.request("HEAD", "/healthz")
    r = conn.getresponse()
    check("HEAD /healthz", r.status == 200 and r.read() == b"" and
          int(r.getheader("Content-Length")) > 0)
    r, d = http_call(s, "GET", "/healthz", conn=conn)
    check("GET after HEAD on the same connection", r.status == 200 and d == {"status": "ok"}, d)
    conn.close()


def http_raw(s):
    # Two pipelined requests in one write; answers in order, then close.
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    body = json.dumps({"anon": "h1"}).encode()
    req = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" +
           b"POST /v1/decide/recommend HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
           STOREFRONT.encode() + b"\r\nContent-Length: " + str(len(body)).encode() +
           b"\r\n\r\n" + body +
           b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    sock.sendall(req)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    parts = data.split(b"HTTP/1.1 ")[1:]
    check("HTTP pipelining: three answers", len(parts) == 3, data[:300])
    check("HTTP pipelining: in order", len(parts) == 3 and b"status" in parts[0] and
          b"items" in parts[1] and b"Connection: close" in parts[2], data[:600])

    # HTTP/1.0 without keep-alive closes after the answer.
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    check("HTTP/1.0 answered and closed", data.startswith(b"HTTP/1.1 200"), data[:100])
    sock.close()


def cors(s):
    r, d = http_call(s, "OPTIONS", "/v1/decide/recommend", token=None,
                     headers={"Origin": "https://shop.example",
                              "Access-Control-Request-Method": "POST",
                              "Access-Control-Request-Headers": "authorization"})
    check("preflight from an allowed origin: 204", r.status == 204, d)
    check("preflight allow-origin",
          r.getheader("Access-Control-Allow-Origin") == "https://shop.example")
    check("preflight allow-headers",
          "Authorization" in (r.getheader("Access-Control-Allow-Headers") or ""))
    r, d = http_call(s, "POST", "/v1/decide/recommend", {"anon": "h1"}, token=STOREFRONT,
                     headers={"Origin": "https://shop.example"})
    check("CORS header on a request",
          r.getheader("Access-Control-Allow-Origin") == "https://shop.example" and
          r.getheader("Vary") == "Origin")
    r, d = http_call(s, "OPTIONS", "/v1/decide/recommend", token=None,
                     headers={"Origin": "https://evil.example"})
    check("preflight from another origin refused", r.status == 403 and
          r.getheader("Access-Control-Allow-Origin") is None, d)
    r, d = http_call(s, "POST", "/v1/decide/recommend", {"anon": "h1"}, token=STOREFRONT,
                     headers={"Origin": "https://evil.example"})
    check("no CORS header for another origin",
          r.getheader("Access-Control-Allow-Origin") is None)


def unix_socket(s):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(s.cfg["server"]["unix"])
    sock.sendall(b'{"id":1,"op":"ping"}\n')
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    sock.close()
    check("NDJSON over the Unix socket", b'"pong":true' in data, data)
    # A second server on the same socket path refuses to start, and the
    # first one keeps its socket.
    import subprocess
    from serve_kit import TAILOR
    p = subprocess.run([TAILOR, "serve", "--config", s.config, "--db",
                        os.path.join(s.dir, "other.db")], capture_output=True, timeout=60)
    check("second server on the same socket refused",
          p.returncode == 1 and b"another server is listening" in p.stderr, p.stderr)
    check("the first keeps its socket", os.path.exists(s.cfg["server"]["unix"]))


def decisions(s):
    """rank over NDJSON and HTTP; one k limit (decide.max_k) at every door."""
    c = s.connect()
    c.call("auth", token=STOREFRONT)
    r = c.call("decide", kind="rank", items=["boots", "hat", 7])
    res = r.get("result") or {}
    check("rank over NDJSON is accepted", res.get("kind") == "rank", r)
    check("rank without a handler keeps the given order",
          [i["id"] for i in res.get("items", [])] == ["boots", "hat", "7"], r)
    r = c.call("decide", kind="rank")
    check("rank needs items", error_code(r) == "bad_field" and
          r["error"]["field"] == "items", r)
    r = c.call("decide", kind="recommend", k=101)
    check("k above decide.max_k is refused with the limit",
          error_code(r) == "bad_field" and "from 1 to 100" in r["error"]["message"], r)
    r = c.call("decide", kind="recommend", k=100)
    check("k at decide.max_k is fine", "result" in r, r)
    r = c.call("decide", kind="recommend", costumer="c1")
    check("a typo is named", error_code(r) == "bad_field" and
          r["error"]["field"] == "costumer", r)
    c.close()
    resp, d = http_call(s, "POST", "/v1/decide/rank", {"items": ["hat", "boots"]},
                        token=STOREFRONT)
    check("rank over HTTP", resp.status == 200 and
          [i["id"] for i in d["items"]] == ["hat", "boots"], d)


def export(s):
    """The right of access over the admin API: NDJSON and HTTP, admin only."""
    adm = s.connect()
    adm.call("auth", token=ADMIN)
    adm.call("customer.upsert", customer={"id": "exp-1", "email": "exp@example.com",
                                          "consent": {"email": True}})
    adm.call("event", event={"type": "view", "item": "boots", "customer": "exp-1"})
    r = adm.call("customer.export", customer="exp-1")
    res = r.get("result") or {}
    check("customer.export has the profile with PII",
          (res.get("profile") or {}).get("email") == "exp@example.com", r)
    check("customer.export has the events", len(res.get("events", [])) == 2, r)
    adm.close()
    resp, d = http_call(s, "GET", "/v1/customers/exp-1/export")
    check("GET /v1/customers/<id>/export", resp.status == 200 and d["customer"] == "exp-1" and
          len(d["events"]) == 2, d)
    resp, d = http_call(s, "GET", "/v1/customers/exp-1/export", token=STOREFRONT)
    check("a storefront token may not export", resp.status == 403, d)
    r = s.connect().call("nosuch.op")
    check("an unknown op lists the known ones from the table",
          error_code(r) == "unknown_op" and "customer.export" in r["error"]["message"], r)


def console_login(s):
    """The console's login form is decoded in one pass (every byte of the
    token percent-escaped still logs in; '%' before a non-hex byte is
    literal), and a session cookie sent in a second Cookie header is
    found."""
    def login(body):
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        conn.request("POST", "/admin/login", body=body,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp
    r = login("token=" + "".join("%%%02X" % ord(ch) for ch in ADMIN))
    check("a fully escaped token logs in", r.status == 200, r.status)
    cookie = (r.getheader("Set-Cookie") or "").split(";")[0]
    check("the login sets the session cookie", cookie.startswith("tailor_session="), cookie)
    r = login("token=%\t" + ADMIN[1:])
    check("'%' and a tab are not an escape", r.status == 401, r.status)
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    conn.putrequest("GET", "/admin/api/session")
    conn.putheader("Cookie", "theme=dark")
    conn.putheader("Cookie", cookie)
    conn.endheaders()
    resp = conn.getresponse()
    resp.read()
    conn.close()
    check("a session in a second Cookie header is found", resp.status == 200, resp.status)
    # 64 metrics logins (the sessions' number) do not end an admin's
    # session: a metrics login pushes out its own oldest, or another
    # metrics one, never an admin's.
    for _ in range(70):
        login("token=" + METRICS)
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    conn.request("GET", "/admin/api/session", headers={"Cookie": cookie})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    check("an admin's session outlives 70 metrics logins", resp.status == 200, resp.status)
    # A login with no body at all (the console's Log out posts none) is
    # refused, and the server goes on (a memcpy from NULL aborted it).
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    conn.request("POST", "/admin/login")
    resp = conn.getresponse()
    resp.read()
    conn.close()
    check("a login without a body is refused", resp.status in (400, 401), resp.status)
    resp, d = http_call(s, "GET", "/admin/api/session")
    check("the server goes on", resp.status == 200, (resp.status, d))
    # Retry and purge take fields of their types only: a "key" that is a
    # number retried every dead row, an age as a string purged any age.
    for path, body, field in (("/admin/api/outbox/retry", {"key": 3}, "key"),
                              ("/admin/api/outbox/purge", {"state": "dead",
                                                           "older_than_ms": "604800000"},
                               "older_than_ms"),
                              ("/admin/api/outbox/purge", {"state": ["dead"]}, "state")):
        resp, d = http_call(s, "POST", path, body=body)
        check("%s %s: refused, the field named" % (path, body), resp.status == 400 and
              (d or {}).get("error", {}).get("field") == field, (resp.status, d))
    # A metrics token's change is refused for what it is: the console's
    # changes (it read "may not change the catalog").
    resp, d = http_call(s, "POST", "/admin/api/outbox/retry", body={}, token=METRICS)
    message = (d or {}).get("error", {}).get("message", "")
    check("a metrics token's retry: refused as a console change", resp.status == 403 and
          "console's changes" in message and "catalog" not in message, (resp.status, d))
    # An audience with no members answers an empty list (sorting nothing
    # passed a NULL array to qsort_r).
    resp, d = http_call(s, "GET", "/admin/api/audiences/members?audience=buyers&days=14")
    check("an empty audience: no members", resp.status == 200 and d.get("members") == [],
          (resp.status, d))


def main():
    import tempfile

    from serve_kit import TMP
    d = tempfile.mkdtemp(prefix="serveops", dir=TMP)
    s = Server(server={"cors_origins": ["https://shop.example"],
                       "unix": os.path.join(d, "tailor.sock")}, tmpdir=d)
    try:
        T.run(ndjson_ops, s)
        T.run(roles, s)
        T.run(http_ops, s)
        T.run(decisions, s)
        T.run(export, s)
        T.run(http_raw, s)
        T.run(cors, s)
        T.run(console_login, s)
        T.run(unix_socket, s)
        T.stopped_clean(s)
    finally:
        s.cleanup()
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
