#!/usr/bin/env python3
"""serve_overload_test.py: a connection refused as overloaded (past
server.max_connections) is answered in its own protocol: an HTTP client
gets a well-formed `HTTP/1.1 503` with a JSON error body and
`Connection: close` (also when its request comes in pieces, and without a
body for HEAD); an NDJSON client gets its error line; one that says
nothing gets the NDJSON line after a short wait.  Each wait is bounded.
"""

import http.client
import json
import socket
import sys
import time

from serve_kit import STOREFRONT, Checks, Server, error_code, result

T = Checks()
check = T.check

MAX_CONNS = 3


def connect(s):
    return socket.create_connection(("127.0.0.1", s.port), timeout=30)


def read_until_close(sock, wait=10):
    """Bytes until the server closes: (data, closed, reset)."""
    data = b""
    end = time.time() + wait
    while time.time() < end:
        sock.settimeout(max(0.01, end - time.time()))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return data, False, False
        except ConnectionResetError:
            return data, True, True
        if not chunk:
            return data, True, False
        data += chunk
    return data, False, False


def parse_http(data):
    """(status line, headers with lowercase names, body) of one response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, body


def is_overloaded_503(name, data, closed, reset, head=False):
    status, headers, body = parse_http(data)
    check(name + ": HTTP/1.1 503", status == "HTTP/1.1 503 Service Unavailable", data[:200])
    check(name + ": JSON content type", headers.get("content-type") == "application/json",
          headers)
    check(name + ": Connection: close", headers.get("connection") == "close", headers)
    check(name + ": closed without a reset", closed and not reset, (closed, reset))
    if head:
        check(name + ": no body for HEAD", body == b"" and
              int(headers.get("content-length", "0")) > 0, data)
        return
    check(name + ": Content-Length is the body's",
          headers.get("content-length") == str(len(body)), (headers, body))
    try:
        err = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        err = {}
    check(name + ": JSON error body, code overloaded", err.get("code") == "overloaded" and
          "max_connections" in err.get("message", ""), body)


def refusals(s):
    held = [s.connect() for _ in range(MAX_CONNS)]
    for c in held:
        check("held connection served", result(c.call("ping")) is not None)

    # A plain GET in one piece.
    sk = connect(s)
    sk.sendall(b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")
    is_overloaded_503("GET", *read_until_close(sk))
    sk.close()

    # A POST whose method, headers and body come in separate packets: the
    # answer waits for the method, and the body sent after it does not
    # turn the close into a reset that would lose the answer.
    sk = connect(s)
    body = json.dumps({"type": "view", "item": "p1", "anon": "v1"}).encode()
    sk.sendall(b"PO")
    time.sleep(0.1)
    sk.sendall(b"ST /v1/events HTTP/1.1\r\nHost: shop\r\nAuthorization: Bearer " +
               STOREFRONT.encode() + b"\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
    time.sleep(0.2)
    try:
        sk.sendall(body)
    except OSError:
        pass
    is_overloaded_503("POST in pieces", *read_until_close(sk))
    sk.close()

    # HEAD: the same status and headers, no body.
    sk = connect(s)
    sk.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")
    is_overloaded_503("HEAD", *read_until_close(sk), head=True)
    sk.close()

    # A real HTTP client library reads it as a response.
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.request("POST", "/v1/decide/recommend", body=b'{"anon":"v1"}',
                 headers={"Authorization": "Bearer " + STOREFRONT,
                          "Content-Type": "application/json"})
    r = conn.getresponse()
    payload = r.read()
    conn.close()
    check("http.client: 503", r.status == 503, r.status)
    check("http.client: overloaded error body",
          json.loads(payload).get("error", {}).get("code") == "overloaded", payload)

    # NDJSON clients still get their line.
    c = s.connect()
    c.send({"id": 7, "op": "ping"})
    r = c.line()
    check("NDJSON: overloaded line", error_code(r) == "overloaded", r)
    check("NDJSON: then closed", c.closed())
    c.close()
    # One that says nothing too, after a short wait.
    c = s.connect()
    t0 = time.time()
    r = c.line()
    check("silent: overloaded line", error_code(r) == "overloaded", r)
    check("silent: within a few seconds", time.time() - t0 < 5, time.time() - t0)
    check("silent: then closed", c.closed())
    c.close()

    # The held connections were not disturbed, and once they go there is
    # room again.
    for c in held:
        check("held connection still served", result(c.call("ping")) is not None)
        c.close()
    time.sleep(0.3)
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    r.read()
    conn.close()
    check("room again: HTTP 200", r.status == 200, r.status)


def main():
    s = Server(server={"max_connections": MAX_CONNS})
    try:
        T.run(refusals, s)
        T.stopped_clean(s)
    finally:
        s.cleanup()
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
