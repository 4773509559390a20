#!/usr/bin/env python3
"""serve_signals_test.py: SIGTERM in the middle of a load loses no
acknowledged event (acks counted on the clients, then compared with
`tailor stats` on the store and with a restarted server), and SIGHUP reloads
tokens, keeping the running configuration when the new one is broken, and
says so in the log even while a failing strategy floods it.
A SIGTERM while the delivery thread sends to a mute SMTP server waits for
one send, not for the whole batch, and an HTTP answer under way at SIGTERM
says "Connection: close".
A SIGTERM while the fitter refits (index.background_refits) waits for the
fit's step under way, whose lines are logged: the server once took its
logger and console away under the fit, which went on writing to them.
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
import threading
import time

from serve_kit import (ADMIN, ROOT, STOREFRONT, TAILOR, TMP, Checks, Client, Server,
                       error_code, result, tailor_stats)

T = Checks()
check = T.check

CLIENTS = 4
WINDOW = 16           # requests in flight per client
LOAD_SECONDS = 1.5    # before SIGTERM
DEADLINE = 30         # for any client, whatever happens


class Loader(threading.Thread):
    """Pipelines `view` events on one connection, counting acks."""

    def __init__(self, port, k):
        super().__init__(daemon=True)
        self.port, self.k = port, k
        self.sent = self.acked = self.errors = 0
        self.error_codes = set()

    def run(self):
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
        except OSError:
            return
        buf = b""
        end = time.time() + DEADLINE
        auth = b'{"id":0,"op":"auth","token":"' + STOREFRONT.encode() + b'"}\n'
        try:
            sock.sendall(auth)
            outstanding = 1
            while time.time() < end:
                batch = []
                while outstanding < WINDOW:
                    self.sent += 1
                    outstanding += 1
                    batch.append(json.dumps({
                        "id": self.sent, "op": "event",
                        "event": {"type": "view", "item": "i%d" % (self.sent % 10),
                                  "anon": "load%d-%d" % (self.k, self.sent)}}).encode())
                try:
                    sock.sendall(b"\n".join(batch) + b"\n")
                except OSError:
                    pass  # the server stopped reading; answers may still come
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    r = json.loads(line)
                    outstanding -= 1
                    if r.get("id") == 0:
                        continue
                    if "result" in r:
                        self.acked += 1
                    else:
                        self.errors += 1
                        self.error_codes.add(error_code(r))
        except OSError:
            pass
        finally:
            sock.close()


def sigterm_under_load():
    s = Server()
    try:
        c = s.connect()
        for i in range(10):
            c.call("item.upsert", token=ADMIN, item={"id": "i%d" % i, "price": i + 1})
        idle = s.connect()  # a client that sends nothing must not delay the exit
        loaders = [Loader(s.port, k) for k in range(CLIENTS)]
        for ld in loaders:
            ld.start()
        time.sleep(LOAD_SECONDS)
        acked_before = sum(ld.acked for ld in loaders)
        t0 = time.time()
        s.send_signal(signal.SIGTERM)
        for ld in loaders:
            ld.join(DEADLINE + 5)
        code = s.stop(deadline=60)
        took = time.time() - t0
        c.close()
        idle.close()
        acked = sum(ld.acked for ld in loaders)
        sent = sum(ld.sent for ld in loaders)
        print("load: %d sent, %d acknowledged (%d before SIGTERM), exit in %.2f s" %
              (sent, acked, acked_before, took), flush=True)
        check("load ran before SIGTERM", acked_before > 0, acked_before)
        check("SIGTERM under load exits 0", code == 0, code)
        check("exit within the grace period", took < 15, took)
        errs = set().union(*(ld.error_codes for ld in loaders))
        check("no error answers", not errs, errs)
        stats = tailor_stats(s.db)
        stored = stats["events"].get("view", 0)
        check("every acknowledged event is in the store", stored >= acked,
              "stored %d < acked %d" % (stored, acked))
        check("nothing stored that was not sent", stored <= sent, (stored, sent))
        T.sanitizer_clean(s)
        # The same store, served again: the same events, in the index too.
        s.start()
        c = s.connect()
        r = c.call("stats", token=ADMIN)
        check("restarted server has them", result(r)["events"].get("view", 0) == stored, r)
        check("and applied them to the index",
              result(r)["index"]["events_applied"] >= stored, r)
        c.close()
        check("second stop exits 0", s.stop() == 0)
    finally:
        s.cleanup()


def sigterm_checkpoint_fails():
    """SIGTERM when the index checkpoint cannot be written: the engine's
    error is logged, before "stopped" (once srv_run returned, the engine's
    lines went nowhere: the log said "stopped" and nothing of the failure)."""
    s = Server()
    try:
        c = s.connect()
        for i in range(20):
            c.call("event", token=STOREFRONT,
                   event={"type": "view", "item": "i%d" % (i % 3), "anon": "v%d" % i})
        c.close()
        ckpt = s.db + ".ckpt"
        if os.path.exists(ckpt):
            os.remove(ckpt)
        os.mkdir(ckpt)  # a checkpoint cannot be renamed over a folder
        check("exits 0 (every event is in the store)", s.stop() == 0)
        tail = s.read_log().decode(errors="replace").split("SIGTERM: stopping")[-1]
        check("the failed checkpoint is logged", "cannot write" in tail, tail)
        check("before 'stopped', the last line",
              "cannot write" in tail and tail.index("cannot write") < tail.rindex("stopped")
              and tail.rstrip().endswith("stopped"), tail)
    finally:
        s.cleanup()


def wait_log(s, text, deadline=10):
    end = time.time() + deadline
    while time.time() < end:
        if text in s.read_log().decode(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def sighup_reload():
    s = Server()
    try:
        c = s.connect()
        r = c.call("auth", token=STOREFRONT)
        check("old token works", result(r) is not None, r)
        new = "rotated-storefront-token-42"
        cfg = dict(s.cfg)
        cfg["server"] = dict(cfg["server"], tokens=[{"token": new, "role": "storefront"},
                                                    {"token": ADMIN, "role": "admin"}],
                             cors_origins=["https://new.example"])
        s.write_config(cfg)
        s.send_signal(signal.SIGHUP)
        check("reload logged", wait_log(s, "configuration reloaded"))
        r = c.call("decide", kind="recommend")
        check("revoked token refused on its open connection",
              error_code(r) == "unauthorized", r)
        r = c.call("decide", kind="recommend", token=new)
        check("new token works", result(r) is not None, r)
        # A broken file is refused; the running configuration stays.
        with open(s.config, "w") as f:
            f.write('{"server": {"tokens": "nope"}')
        s.send_signal(signal.SIGHUP)
        check("broken reload refused", wait_log(s, "reload refused"))
        r = c.call("decide", kind="recommend", token=new)
        check("still serving after a refused reload", result(r) is not None, r)
        # Engine keys cannot change while running: said so.
        cfg["lua"] = {"instruction_budget": 1000}
        s.write_config(cfg)
        s.send_signal(signal.SIGHUP)
        check("engine change needs a restart", wait_log(s, "take effect on restart"))
        c.close()
        check("exits 0 after reloads", s.stop() == 0)
    finally:
        s.cleanup()


def sigterm_during_a_fit():
    """A store whose refit takes a second or two; 25 orders cross
    index.value_refit_orders and SIGTERM comes as the fitter starts."""
    s = None
    events = []
    for n in range(20000):
        events += ['{"type":"view","item":"i%d","anon":"a%d","session":"s%d","ts":%d}'
                   % (1 + (n * 7 + i % 3) % 400, n % 3000, n, 1700000000000 + n * 60000 + i)
                   for i in range(6)]
    events += ['{"type":"purchase","customer":"c%d","order_id":"o%d","ts":%d,'
               '"items":[{"id":"i%d","price":%d}]}'
               % (o % 900, o, 1700000000000 + o * 400000, 1 + o % 400, 5 + o % 50)
               for o in range(3000)]
    d = tempfile.mkdtemp(prefix="fitstop", dir=TMP)
    try:
        db = os.path.join(d, "shop.db")
        p = subprocess.run([TAILOR, "ingest", "--db", db], input="\n".join(events).encode(),
                           capture_output=True, timeout=300)
        check("the store loaded", p.returncode == 0, p.stderr)
        s = Server(engine={"index": {"value_refit_orders": 20}}, db=db, tmpdir=d)
        c = s.connect()
        result(c.call("auth", token=ADMIN))
        for o in range(25):
            result(c.call("event", event={"type": "purchase", "customer": "n%d" % o,
                                          "order_id": "n%d" % o,
                                          "items": [{"id": "i1", "price": 10}]}))
        c.close()
        check("exits 0", s.stop() == 0)
        log = s.read_log().decode(errors="replace")
        # The open's fit went before the server's logger.  The fit under
        # way either ends or stops at its next step (the engine is
        # closing), and says which, before the server says it stopped.
        fit = max(log.rfind("value model:"), log.rfind("model refit stopped"))
        check("the fit under way ended or stopped, logged before the server stopped",
              0 <= fit < log.rfind("stopped"), log[-2000:])
    finally:
        if s:
            s.cleanup()
        shutil.rmtree(d, ignore_errors=True)


class MuteSmtp(threading.Thread):
    """An SMTP server that accepts connections and never says a word: each
    send waits out the channel's timeout."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held = []

    def run(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


def sigterm_during_a_slow_delivery():
    """SIGTERM while the delivery thread sends a batch of confirmation
    emails to an SMTP server that never answers: the stop waits for the
    one send under way (its channel's timeout_ms), not for the batch, one
    timeout a row (the process went on for minutes, and looked as if it
    ignored the signal).  The rows left are due again at once, for the
    next start, instead of waiting out their lease."""
    rows, timeout_ms = 8, 3000
    smtp = MuteSmtp()
    smtp.start()
    plugin = {"path": os.path.join(os.path.dirname(TAILOR), "plugins", "smtp.so"),
              "config": {"url": "smtp://127.0.0.1:%d" % smtp.port, "tls": "none",
                         "from": "Shop <shop@example.com>",
                         "templates": os.path.join(ROOT, "plugins", "smtp", "templates"),
                         "timeout_ms": timeout_ms, "connect_timeout_ms": timeout_ms}}
    s = Server(engine={"plugins": [plugin],
                       "optin": {"secret": "optin-secret-0123456789",
                                 "confirm_url": "http://127.0.0.1:1/v1/confirm"}},
               server={"deliver_interval_ms": 2000})
    try:
        c = s.connect()
        result(c.call("auth", token=STOREFRONT))
        for i in range(rows):
            result(c.call("subscribe", email="v%d@example.com" % i, anon="v%d" % i,
                          purpose="newsletter", text="Email me."))
        c.close()
        # The delivery's first pass came at the start, before these rows;
        # its next one, 2 s on, claims them all as one batch.  SIGTERM
        # once the first row's send has begun.
        end = time.time() + 15
        while not smtp.held and time.time() < end:
            time.sleep(0.05)
        check("the delivery reached the SMTP server", smtp.held)
        time.sleep(0.2)
        t0 = time.time()
        code = s.stop(deadline=rows * timeout_ms / 1000 + 30)
        took = time.time() - t0
        print("stop during a slow delivery: %.2f s" % took, flush=True)
        check("exits 0", code == 0, code)
        check("the stop waits for one send, not for the batch",
              took < timeout_ms / 1000 + 3, "%.2f s" % took)
        log = s.read_log().decode(errors="replace")
        check("the wait is logged", "waiting for the delivery under way" in log, log[-2000:])
        check("the rows left are logged", "claimed rows not sent" in log, log[-2000:])
        p = subprocess.run([TAILOR, "outbox", "list", "--json", "--db", s.db],
                           capture_output=True, timeout=60)
        left = json.loads(p.stdout)
        leased = [r["key"] for r in left
                  if r["state"] == "sending" and r["next_at"] > time.time() * 1000 + 5000]
        check("every row is there", len(left) == rows, p.stdout[-1000:])
        check("no row left waiting out its lease", not leased, leased)
        T.sanitizer_clean(s)
    finally:
        s.cleanup()
        smtp.close()


SLOW = """
return { recommend = function(ctx)
  local x = 0
  for i = 1, 60000000 do x = x + i end
  return {}
end }
"""


def sigterm_answers_say_close():
    """An HTTP request under way at SIGTERM is answered with "Connection:
    close": the server reads nothing more on that connection, and a
    keep-alive client (a browser, a proxy's pool) that was not told sent
    its next request on it, into a socket that closed without an answer,
    not knowing whether it was stored."""
    s = Server(recommend=SLOW, engine={"lua": {"instruction_budget": 2000000000}})
    try:
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        head = {"Authorization": "Bearer " + STOREFRONT, "Content-Type": "application/json"}
        # The first decision shows the strategy slow: the next one goes to
        # a decision thread, and the loop sees the signal meanwhile.
        c.request("POST", "/v1/decide/recommend", body='{"anon": "v0"}', headers=head)
        r = c.getresponse()
        r.read()
        check("a keep-alive answer while serving", r.getheader("Connection") is None,
              r.getheaders())
        c.request("POST", "/v1/decide/recommend", body='{"anon": "v1"}', headers=head)
        time.sleep(0.05)
        s.send_signal(signal.SIGTERM)
        r = c.getresponse()
        r.read()
        check("the request under way is answered", r.status == 200, r.status)
        check("with Connection: close", (r.getheader("Connection") or "").lower() == "close",
              r.getheaders())
        c.close()
        try:
            s.proc.wait(60)  # a second signal would end it at once
        except subprocess.TimeoutExpired:
            pass
        check("exits 0", s.stop() == 0)
        T.sanitizer_clean(s)
    finally:
        s.cleanup()


FAILING = 'return { recommend = function(ctx) error("always fails") end }\n'
FIXED = 'return { recommend = function(ctx) return {} end }\n'


class Failer(threading.Thread):
    """Decisions on one connection, as fast as answered, until stopped."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.halt, self.fallbacks = port, threading.Event(), 0

    def run(self):
        c = Client(self.port)
        c.call("auth", token=STOREFRONT)
        while not self.halt.is_set():
            r = c.call("decide", kind="recommend", anon="v1")
            self.fallbacks += bool((result(r) or {}).get("fallback"))
        c.close()


def log_flood():
    """A strategy failing on every decision is logged a few lines a second,
    and the lines of other kinds still go out: a refused SIGHUP, the fixed
    strategy's reload.  (One budget for every line dropped both.)"""
    s = Server(recommend=FAILING, engine={"lua": {"reload_interval_ms": 100}})
    try:
        failers = [Failer(s.port) for _ in range(2)]
        for f in failers:
            f.start()
        time.sleep(1.5)
        with open(s.config, "w") as f:
            f.write('{"server": {"tokens": "nope"}')
        s.send_signal(signal.SIGHUP)
        time.sleep(1)
        with open(os.path.join(s.dir, "strategies", "recommend.lua"), "w") as f:
            f.write(FIXED)
        check("fixed strategy serves", wait_decide_ok(s))
        time.sleep(0.5)
        for f in failers:
            f.halt.set()
        for f in failers:
            f.join(10)
        fallbacks = sum(f.fallbacks for f in failers)
        log = s.read_log().decode(errors="replace")
        check("the strategy failed many times", fallbacks > 200, fallbacks)
        check("refused SIGHUP logged during the flood", "reload refused" in log)
        check("fixed strategy's reload logged during the flood",
              "strategies reloaded" in log, log[-2000:])
        per_second = {}
        for m in re.finditer(r"^(\S+) tailor: error: recommend.lua:1: always fails", log, re.M):
            per_second[m.group(1)] = per_second.get(m.group(1), 0) + 1
        check("the flood is rationed", per_second and max(per_second.values()) <= 5,
              per_second)
        check("what was dropped is counted", "log lines dropped" in log)
        check("exits 0", s.stop() == 0)
    finally:
        s.cleanup()


def wait_decide_ok(s, deadline=10):
    c = s.connect()
    end = time.time() + deadline
    try:
        while time.time() < end:
            r = c.call("decide", kind="recommend", anon="v2", token=STOREFRONT)
            if result(r) is not None and not result(r).get("fallback"):
                return True
            time.sleep(0.05)
        return False
    finally:
        c.close()


def main():
    T.run(sigterm_under_load)
    T.run(sigterm_checkpoint_fails)
    T.run(sighup_reload)
    T.run(sigterm_during_a_fit)
    T.run(sigterm_during_a_slow_delivery)
    T.run(sigterm_answers_say_close)
    T.run(log_flood)
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
