"""serve_kit.py: what the `tailor serve` end-to-end tests share: starting
the real server on a free loopback port, NDJSON and raw-socket clients, and
the checks that print the closing "N passed, N failed" line.

Standard library only.  Every wait has a deadline, so a hung server fails a
test instead of hanging ctest.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

TAILOR = os.environ.get("TAILOR", "tailor")
ROOT = os.environ.get("TAILOR_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
TMP = os.environ.get("TAILOR_TEST_TMP", tempfile.gettempdir())

STOREFRONT = "storefront-token-0123456789"
ADMIN = "admin-token-0123456789abcdef"
METRICS = "metrics-token-0123456789abc"
TOKENS = [
    {"token": STOREFRONT, "role": "storefront"},
    {"token": ADMIN, "role": "admin"},
    {"token": METRICS, "role": "metrics"},
]


CUSTOMER_SECRET = "test-customer-secret-0123456789"


def customer_token(customer, ttl=3600, secret=CUSTOMER_SECRET):
    """What a shop's backend gives its pages: proof of who the visitor is."""
    import hashlib
    import hmac

    msg = "%s.%d" % (customer, int(time.time()) + ttl)
    return msg + "." + hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()


RECOMMEND = """
return { recommend = function(ctx)
  local picks = tailor.most_viewed(ctx.k, { exclude = ctx.customer.cart })
  for _, item in ipairs(picks) do item.explain = "Popular right now" end
  return picks
end }
"""


class Checks:
    """Named checks that record failures and go on, like tests/c/check.h."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL: %s %s" % (name, detail), file=sys.stderr, flush=True)
        return cond

    def run(self, fn, *args):
        """Run one test function; an exception is a failure, not the end."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - report and go on
            import traceback

            traceback.print_exc()
            self.check(fn.__name__, False, "raised %r" % e)

    def sanitizer_clean(self, server):
        """No AddressSanitizer or UBSan report in the server's log."""
        log = server.read_log().decode(errors="replace")
        return self.check("no sanitizer report",
                          "Sanitizer" not in log and "runtime error" not in log, log[-3000:])

    def stopped_clean(self, server):
        """SIGTERM, exit 0, and no sanitizer report in the log."""
        code = server.stop()
        self.check("SIGTERM exits 0", code == 0, code)
        return self.sanitizer_clean(server)

    def done(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 else 1


class Server:
    """A `tailor serve` process on 127.0.0.1 and a free port."""

    def __init__(self, server=None, args=(), engine=None, db=None, tmpdir=None, env=None,
                 recommend=RECOMMEND):
        """`recommend`: the text of the strategies' recommend.lua."""
        self.dir = tmpdir or tempfile.mkdtemp(prefix="serve", dir=TMP)
        self.db = db or os.path.join(self.dir, "shop.db")
        self.recommend = recommend
        cfg = {"db": self.db, "strategies": self.strategies()}
        cfg.update(engine or {})
        section = {"listen": "127.0.0.1:0", "tokens": TOKENS, "customer_secret": CUSTOMER_SECRET}
        section.update(server or {})
        cfg["server"] = section
        self.config = os.path.join(self.dir, "tailor.json")
        self.write_config(cfg)
        self.log_path = os.path.join(self.dir, "serve.log")
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.start()

    def strategies(self):
        """A strategy of the tests' own, so that they test the server and
        not the shipped strategies, which change as they grow."""
        d = os.path.join(self.dir, "strategies")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "recommend.lua"), "w") as f:
            f.write(self.recommend)
        return d

    def write_config(self, cfg):
        self.cfg = cfg
        with open(self.config + ".new", "w") as f:
            json.dump(cfg, f)
        os.replace(self.config + ".new", self.config)

    def start(self, deadline=60):
        self.log = open(self.log_path, "ab")
        skip = self.log.tell()  # a restart appends: look at its lines only
        self.proc = subprocess.Popen(
            [TAILOR, "serve", "--config", self.config] + self.args,
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, env=self.env)
        end = time.time() + deadline
        while time.time() < end:
            log = self.read_log()[skip:]
            m = re.findall(rb"listening on 127\.0\.0\.1:(\d+)", log)
            if m and b"ready:" in log:
                self.port = int(m[-1])
                return
            if self.proc.poll() is not None:
                raise RuntimeError("tailor serve exited %s:\n%s" %
                                   (self.proc.returncode, self.read_log().decode()))
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError("tailor serve did not start:\n" + self.read_log().decode())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read()

    def connect(self, timeout=30, source=None):
        """An NDJSON client; `source` another loopback address to connect
        from (127.0.0.2: a second client address on one machine)."""
        return Client(self.port, timeout, source)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, deadline=60):
        """Signal the server and wait; returns its exit code (None if hung)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(deadline)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        self.log.close()
        return code

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Client:
    """NDJSON over one TCP connection."""

    def __init__(self, port, timeout=30, source=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.next_id = 1

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, obj):
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def line(self):
        """The next response line as a dict; None when the server closed."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, op, **fields):
        """Send one request (an id is added) and return its response."""
        req = {"id": self.next_id, "op": op}
        self.next_id += 1
        req.update(fields)
        self.send(req)
        return self.line()

    def closed(self, wait=5):
        """Whether the server closed the connection within `wait` s."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()



def request(port, method, path, body=None, key=ADMIN, headers=None, timeout=60):
    """One HTTP request to a tailor serve on loopback: (status, headers,
    the body parsed when it is JSON, else its text).  `body` goes as JSON;
    `key` as a bearer token (None: none)."""
    hdrs = {"Content-Type": "application/json"}
    if key:
        hdrs["Authorization"] = "Bearer " + key
    hdrs.update(headers or {})
    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (port, path), method=method, headers=hdrs,
        data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, head, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, head, raw = e.code, e.headers, e.read()
    if head.get("Content-Type", "").startswith("application/json"):
        return status, head, json.loads(raw) if raw else None
    return status, head, raw.decode()

def rss_kib(pid):
    """The resident set of a process, in KiB (VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def result(resp):
    return resp.get("result") if isinstance(resp, dict) else None


def error_code(resp):
    if not isinstance(resp, dict) or "error" not in resp:
        return None
    return resp["error"].get("code")


def tailor_stats(db):
    """`tailor stats` on a store, as a dict."""
    out = subprocess.run([TAILOR, "stats", "--db", db], capture_output=True, timeout=120)
    return json.loads(out.stdout)
