#!/usr/bin/env python3
"""serve_slowloris_test.py: clients that hold connections open without ever
finishing a request (slowloris) cannot lock the others out.  Connections
from one address are bounded (server.max_conns_per_peer: past it, refused
at once), and a request head that is not whole within
server.header_timeout_ms closes its connection, long before the idle
timeout.  Every client here is on loopback: 127.0.0.2 plays a second
address, the Unix socket a client without one.  Each wait is bounded.
"""

import http.client
import json
import os
import select
import socket
import sys
import tempfile
import threading
import time

from serve_kit import METRICS, TMP, Checks, Server, result

T = Checks()
check = T.check

HEAD_S = 3.0     # server.header_timeout_ms, in seconds
IDLE_S = 60.0    # server.idle_timeout_ms (the default): far longer
PER_PEER = 10    # server.max_conns_per_peer
SLACK_S = 3.0    # how late a close may come (timers, a slow sanitizer build)


def connect(s, source=None):
    return socket.create_connection(("127.0.0.1", s.port), timeout=30,
                                    source_address=(source, 0) if source else None)


def read_until_close(sock, wait):
    """Bytes until the server closes (True) or `wait` s pass (False)."""
    data = b""
    end = time.time() + wait
    while time.time() < end:
        sock.settimeout(max(0.01, end - time.time()))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def gather(socks, window):
    """What each socket received in `window` s: [(data, closed)]."""
    got = {sk: [b"", False] for sk in socks}
    end = time.time() + window
    while time.time() < end:
        live = [sk for sk in socks if not got[sk][1]]
        if not live:
            break
        r, _, _ = select.select(live, [], [], max(0.01, end - time.time()))
        for sk in r:
            try:
                chunk = sk.recv(65536)
            except OSError:
                chunk = b""
            if chunk:
                got[sk][0] += chunk
            else:
                got[sk][1] = True
    return [tuple(got[sk]) for sk in socks]


def parse_http(data):
    """(status, headers with lowercase names, body) of one response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


class Dribble(threading.Thread):
    """Sends one more byte on each socket every 0.25 s, as a slowloris
    does, and notes when the server closes each one."""

    def __init__(self, socks, byte=b"a"):
        super().__init__(daemon=True)
        self.socks = list(socks)
        self.byte = byte
        self.started = time.time()
        self.closed_at = [None] * len(self.socks)
        self.stop = False

    def open_count(self):
        return sum(1 for t in self.closed_at if t is None)

    def run(self):
        end = self.started + HEAD_S + IDLE_S
        while not self.stop and time.time() < end and self.open_count():
            for i, sk in enumerate(self.socks):
                if self.closed_at[i] is not None:
                    continue
                gone = False
                try:
                    r, _, _ = select.select([sk], [], [], 0)
                    if r and not sk.recv(65536):
                        gone = True
                    else:
                        sk.send(self.byte)
                except OSError:
                    gone = True
                if gone:
                    self.closed_at[i] = time.time()
            time.sleep(0.25)

    def wait(self, deadline):
        end = time.time() + deadline
        while time.time() < end and self.open_count():
            time.sleep(0.05)
        self.stop = True


def healthz(s, source=None, conn=None):
    conn = conn or http.client.HTTPConnection(
        "127.0.0.1", s.port, timeout=10,
        source_address=(source, 0) if source else None)
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    return r.status, r.read(), conn


def ping_unix(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    sock.sendall(b'{"id":1,"op":"ping"}\n')
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return sock, data


def per_peer_limit(s):
    # Three times the limit from 127.0.0.1, each starting a request it
    # will never finish.
    t0 = time.time()
    socks = []
    for _ in range(3 * PER_PEER):
        sk = connect(s)
        sk.sendall(b"GET /healthz HTTP/1.1\r\nHost: shop\r\nX-Slow: ")
        socks.append(sk)
    check("opening the dribblers took less than the head deadline",
          time.time() - t0 < HEAD_S / 3, time.time() - t0)
    # Those past the limit are answered at once, in HTTP (their protocol),
    # and closed; the first PER_PEER are held, unanswered.
    held, refused = [], []
    for sk, (data, closed) in zip(socks, gather(socks, 1.0)):
        (refused if data or closed else held).append((sk, data, closed))
    check("per peer: the first max_conns_per_peer held", len(held) == PER_PEER,
          "%d held, %d refused" % (len(held), len(refused)))
    check("per peer: the rest refused", len(refused) == 2 * PER_PEER, len(refused))
    ok = True
    for sk, data, closed in refused:
        status, headers, body = parse_http(data)
        try:
            err = json.loads(body)["error"]
        except ValueError:
            err = {}
        ok = ok and closed and status == 503 and err.get("code") == "overloaded" and \
            "max_conns_per_peer" in err.get("message", "") and \
            headers.get("connection") == "close"
        if not ok:
            check("per peer: refused with an HTTP 503 naming the limit, then closed", False,
                  (closed, data[:300]))
            break
        sk.close()
    check("per peer: refused with an HTTP 503 naming the limit, then closed", ok)

    drib = Dribble([sk for sk, _, _ in held])
    drib.start()
    # While 127.0.0.1 is at its limit, another address is served at once...
    t1 = time.time()
    status, body, conn = healthz(s, source="127.0.0.2")
    conn.close()
    check("another address: HTTP served", status == 200, (status, body))
    c = s.connect(source="127.0.0.2")
    r = c.call("ping")
    c.close()
    check("another address: NDJSON served", result(r) is not None, r)
    check("another address: served promptly", time.time() - t1 < HEAD_S / 2,
          time.time() - t1)
    # ...and so is the Unix socket, whose clients are not counted per peer.
    unix = []
    for _ in range(PER_PEER + 5):
        sock, data = ping_unix(s.cfg["server"]["unix"])
        unix.append(sock)
        if b'"pong":true' not in data:
            break
    check("Unix socket: more than max_conns_per_peer served", len(unix) == PER_PEER + 5
          and b'"pong":true' in data, data)
    for sock in unix:
        sock.close()
    # 127.0.0.1 itself is still refused while the dribblers hold it.
    sk = connect(s)
    sk.sendall(b'{"id":1,"op":"ping"}\n')
    data, closed = read_until_close(sk, 5)
    sk.close()
    check("per peer: NDJSON past the limit gets an overloaded line",
          b'"overloaded"' in data and b"max_conns_per_peer" in data and closed, data)

    # The dribblers go once their heads are overdue, idle timeout or not.
    drib.wait(HEAD_S + SLACK_S)
    lived = [t - drib.started for t in drib.closed_at if t is not None]
    check("dribblers closed after header_timeout_ms", drib.open_count() == 0,
          "%d still open after %.1f s" % (drib.open_count(), time.time() - drib.started))
    check("not before it", lived and min(lived) > HEAD_S * 0.6, lived)
    check("long before the idle timeout", lived and max(lived) < HEAD_S + SLACK_S, lived)
    for sk, _, _ in held:
        sk.close()
    # Their slots are free again.
    time.sleep(0.2)
    status, _, conn = healthz(s)
    conn.close()
    check("127.0.0.1 served again once the dribblers are gone", status == 200, status)


def head_deadline(s):
    t0 = time.time()
    silent = connect(s)                              # sends nothing at all
    ndjson = connect(s)                              # a first line never ending
    ndjson.sendall(b'{"id":1,"op":"pi')
    nd_blank = connect(s)                            # blank lines are no request
    drib = Dribble([ndjson], byte=b" ")
    blanks = Dribble([nd_blank], byte=b"\n")
    drib.start()
    blanks.start()

    # A keep-alive HTTP client and an NDJSON client that finished a request
    # then wait longer than the head deadline: idleness, not a slow head.
    status, _, keep = healthz(s)
    c = s.connect()
    r1 = c.call("ping")
    time.sleep(HEAD_S * 1.5)
    status2, _, keep = healthz(s, conn=keep)
    check("HTTP keep-alive: idle between requests beyond the head deadline",
          status == 200 and status2 == 200, (status, status2))
    r2 = c.call("ping")
    check("NDJSON: idle after a first request beyond the head deadline",
          result(r1) is not None and result(r2) is not None, (r1, r2))
    c.close()

    # The silent connection went at the deadline.
    silent.settimeout(0.01)
    try:
        gone = silent.recv(1) == b""
    except (socket.timeout, TimeoutError):
        gone = False
    except ConnectionResetError:
        gone = True
    check("a connection that sends nothing is closed at the head deadline", gone)
    silent.close()
    drib.wait(HEAD_S + SLACK_S - (time.time() - t0))
    blanks.wait(HEAD_S + SLACK_S - (time.time() - t0))
    check("NDJSON dribbling a first line closed", drib.closed_at[0] is not None,
          time.time() - t0)
    check("NDJSON sending blank lines closed", blanks.closed_at[0] is not None,
          time.time() - t0)
    lived = [t - t0 for t in drib.closed_at + blanks.closed_at if t is not None]
    check("NDJSON dribblers: at the deadline", lived and min(lived) > HEAD_S * 0.6
          and max(lived) < HEAD_S + SLACK_S, lived)
    ndjson.close()
    nd_blank.close()

    # A second HTTP request on a kept connection has its own head deadline.
    sock = keep.sock
    t1 = time.time()
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    drib = Dribble([sock], byte=b"o")
    drib.start()
    drib.wait(HEAD_S + SLACK_S)
    lived = [t - t1 for t in drib.closed_at if t is not None]
    check("HTTP: a later request's dribbled head closed at the deadline",
          lived and HEAD_S * 0.6 < lived[0] < HEAD_S + SLACK_S, lived)
    keep.close()


def metrics(s):
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.request("GET", "/metrics", headers={"Authorization": "Bearer " + METRICS})
    text = conn.getresponse().read().decode()
    conn.close()
    figures = {}
    for line in text.splitlines():
        if line.startswith("tailor_connections_"):
            name, _, value = line.partition(" ")
            figures[name] = float(value)
    check("metrics: head timeouts counted",
          figures.get("tailor_connections_head_timeouts_total", 0) >= PER_PEER + 4,
          figures)
    check("metrics: refusals counted",
          figures.get("tailor_connections_refused_total", 0) >= 2 * PER_PEER + 1, figures)


def config_checks(s):
    for key, bad in (("max_conns_per_peer", -1), ("header_timeout_ms", "soon")):
        cfg = dict(s.cfg)
        cfg["server"] = dict(cfg["server"], **{key: bad})
        path = os.path.join(s.dir, "bad.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        import subprocess

        from serve_kit import TAILOR
        p = subprocess.run([TAILOR, "serve", "--config", path], capture_output=True,
                           timeout=60)
        check("bad %s named" % key, p.returncode == 2 and
              ("server." + key).encode() in p.stderr, p.stderr)


def main():
    d = tempfile.mkdtemp(prefix="serveslow", dir=TMP)
    s = Server(server={"max_conns_per_peer": PER_PEER, "max_connections": 200,
                       "header_timeout_ms": int(HEAD_S * 1000),
                       "idle_timeout_ms": int(IDLE_S * 1000),
                       "unix": os.path.join(d, "t.sock")}, tmpdir=d)
    try:
        for fn in (per_peer_limit, head_deadline, metrics, config_checks):
            T.run(fn, s)
            time.sleep(0.2)
        T.stopped_clean(s)
    finally:
        s.cleanup()
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
