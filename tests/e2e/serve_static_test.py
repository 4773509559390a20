#!/usr/bin/env python3
"""serve_static_test.py: server.static_dir, the files `tailor serve` hands
out for a demo shop: content types, index pages, HEAD, and every way out of
the folder refused (.., encoded .., symbolic links in and out, hidden
files, NUL bytes); the API's routes win over files; a config naming no
folder is refused.
"""

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time

from serve_kit import STOREFRONT, TAILOR, TMP, Checks, Server, rss_kib

T = Checks()
check = T.check


def get(s, path, method="GET", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r.getheader("Content-Type"), body


def raw(s, target):
    """A request line sent as is (http.client would normalize it)."""
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    return data


def make_site(d):
    site = os.path.join(d, "site")
    os.makedirs(os.path.join(site, "img"))
    os.makedirs(os.path.join(site, "shop"))
    os.makedirs(os.path.join(site, "bare"))
    files = {
        "index.html": b"<!doctype html><h1>home</h1>",
        "shop.css": b"body{}",
        "tailor.js": b"window.x=1;",
        "catalog.json": b'{"products":[]}',
        "img/hat.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "shop/index.html": b"<p>shop</p>",
        "bare/notes.bin": b"\x00\x01\x02",
        ".secret": b"hidden",
        "with space.txt": b"spaced",
    }
    for name, data in files.items():
        with open(os.path.join(site, name), "wb") as f:
            f.write(data)
    with open(os.path.join(d, "outside.txt"), "wb") as f:
        f.write(b"OUTSIDE")
    os.symlink(os.path.join(d, "outside.txt"), os.path.join(site, "out.txt"))
    os.symlink("shop.css", os.path.join(site, "in.css"))
    os.symlink(d, os.path.join(site, "up"))
    os.mkfifo(os.path.join(site, "pipe.txt"))
    return site


def files(s):
    status, ctype, body = get(s, "/")
    check("/ is index.html", status == 200 and body == b"<!doctype html><h1>home</h1>", (status, body))
    check("html type", ctype == "text/html; charset=utf-8", ctype)
    for path, want in [("/shop.css", "text/css; charset=utf-8"),
                       ("/tailor.js", "text/javascript; charset=utf-8"),
                       ("/catalog.json", "application/json"),
                       ("/img/hat.svg", "image/svg+xml"),
                       ("/bare/notes.bin", "application/octet-stream")]:
        status, ctype, _ = get(s, path)
        check("%s served as %s" % (path, want), status == 200 and ctype == want, (status, ctype))
    status, _, body = get(s, "/shop/")
    check("a folder's index page", status == 200 and body == b"<p>shop</p>", (status, body))
    status, ctype, body = get(s, "/shop")
    check("a folder without its slash", status == 200 and body == b"<p>shop</p>" and
          ctype.startswith("text/html"), (status, body))
    status, _, body = get(s, "/shop.css?v=3#top")
    check("query strings are ignored", status == 200 and body == b"body{}", status)
    status, _, body = get(s, "/with%20space.txt")
    check("percent-decoded names", status == 200 and body == b"spaced", status)
    status, _, body = get(s, "//img//hat.svg")
    check("repeated slashes", status == 200, status)
    status, ctype, body = get(s, "/shop.css", method="HEAD")
    check("HEAD: headers, no body", status == 200 and body == b"" and ctype.startswith("text/css"),
          (status, body))
    status, ctype, body = get(s, "/nope.html")
    check("a missing file is 404 JSON", status == 404 and b"not_found" in body and
          ctype == "application/json", (status, body))
    status, _, _ = get(s, "/bare/")
    check("a folder without index.html is 404", status == 404, status)


def escapes(s):
    for target in [b"/../outside.txt", b"/img/../../outside.txt", b"/%2e%2e/outside.txt",
                   b"/%2E%2E%2Foutside.txt", b"/img/%2e%2e/shop.css", b"/./shop.css",
                   b"/out.txt", b"/in.css", b"/up/outside.txt", b"/up/site/shop.css",
                   b"/.secret", b"/img/%00hat.svg", b"/img\\..\\shop.css", b"/%zz",
                   b"/pipe.txt", b"http://127.0.0.1/../outside.txt"]:
        r = raw(s, target)
        status = r.split(b" ", 2)[1] if r.startswith(b"HTTP/1.1 ") else r[:40]
        check("refused: %r" % target, status in (b"404", b"400") and b"OUTSIDE" not in r
              and b"body{}" not in r, r[:200])


def api_wins(s):
    status, _, body = get(s, "/healthz")
    check("/healthz is the API's", status == 200 and b'"ok"' in body, body)
    status, _, body = get(s, "/v1/stats")
    check("/v1/ is the API's (a token needed)", status == 401, (status, body))
    status, _, body = get(s, "/v1/nothing")
    check("no file under /v1/", status == 404 and b"no route" in body, body)
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
    c.request("POST", "/v1/decide/recommend", body=b'{"anon":"v1","k":2}',
              headers={"Authorization": "Bearer " + STOREFRONT})
    r = c.getresponse()
    check("decisions still work beside files", r.status == 200, r.status)
    r.read()
    c.request("POST", "/shop.css", body=b"{}")
    r = c.getresponse()
    check("POST to a file path is no route", r.status == 404, r.status)
    r.read()
    c.close()


def bad_config():
    d = tempfile.mkdtemp(prefix="static", dir=TMP)
    cfg = os.path.join(d, "tailor.json")
    for value, what in [('"%s"' % os.path.join(d, "missing"), "is not a folder"),
                        ("7", "expected a folder path")]:
        with open(cfg, "w") as f:
            f.write('{"db": ":memory:", "strategies": "", "server": {"listen": "127.0.0.1:0",'
                    ' "static_dir": %s, "tokens": [{"token": "%s", "role": "storefront"}]}}'
                    % (value, STOREFRONT))
        out = subprocess.run([TAILOR, "serve", "--config", cfg], capture_output=True, timeout=60)
        check("static_dir %s refused" % value, out.returncode == 2 and
              what.encode() in out.stderr, out.stderr)


def long_target(s):
    status, _, body = get(s, "/" + "a" * 9000)
    check("a request target over 8192 bytes: 414 too_large",
          status == 414 and b"too_large" in body, (status, body[:200]))


def big_files_unread(s, site):
    # Pipelined requests for a large file from a client that never reads:
    # one file is read at a time (no other request is made meanwhile), so
    # the server holds one or two copies, not one per request (200 here).
    with open(os.path.join(site, "big.bin"), "wb") as f:
        f.write(os.urandom(4 << 20))
    rss0 = rss_kib(s.proc.pid)
    socks = []
    for _ in range(2):
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(1)
        try:
            sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 200)
        except (socket.timeout, TimeoutError):
            pass
        socks.append(sock)
    time.sleep(2)
    growth = rss_kib(s.proc.pid) - rss0
    check("pipelined large files unread: memory bounded", growth < 96 * 1024,
          "%d KiB" % growth)
    for sock in socks:
        sock.close()
    status, _, body = get(s, "/big.bin")
    check("the file is still served", status == 200 and len(body) == 4 << 20, status)


def smuggling(s):
    # A space before a header's colon is refused (RFC 7230 3.2.4): taken as
    # a length, it hid the next request inside a body that a proxy in front
    # would have passed on as a request of its own.
    for field in (b"Content-Length : 26", b"Transfer-Encoding : chunked", b"Content\tLength: 1"):
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        sock.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n" + field + b"\r\n\r\n"
                     b"GET /shop.css HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, TimeoutError):
            pass
        sock.close()
        check("%r: 400, nothing served" % field,
              data.startswith(b"HTTP/1.1 400") and b"home" not in data and b"body{}" not in data,
              data[:200])


def main():
    d = tempfile.mkdtemp(prefix="static", dir=TMP)
    site = make_site(d)
    s = Server(server={"static_dir": site}, tmpdir=d)
    try:
        check("the log names the folder", b"server.static_dir" in s.read_log())
        T.run(files, s)
        T.run(escapes, s)
        T.run(api_wins, s)
        T.run(smuggling, s)
        T.run(long_target, s)
        T.run(big_files_unread, s, site)
        T.stopped_clean(s)
    finally:
        s.cleanup()
    T.run(bad_config)
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
