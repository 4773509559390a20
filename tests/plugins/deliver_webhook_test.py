"""deliver_webhook_test.py: the webhook plugin end to end, through `tailor
serve`, to a local HTTP server (Python's http.server) on loopback:

- each row is POSTed as JSON with a valid HMAC-SHA256 signature of the body
  and its idempotency key; a 500 and a timeout are tried again with backoff,
  and the row is delivered once;
- decisions stay fast while the webhook hangs (delivery is off the loop and
  the decision workers);
- a 400 puts the row in the dead letters with the status; `tailor outbox
  retry` brings it back, a sent row is never retried, `purge` clears them;
- a long key (700 bytes and more) goes whole in Idempotency-Key: two keys
  that differ only at the end stay two;
- a configured header goes whole, a 4,000-byte bearer token too;
- the URL's secrets (userinfo, an api_key in the query) reach the hook but
  no message: not the log, not a row's last_error (the CLI, the console).
"""

import hashlib
import hmac
import http.server
import json
import os
import subprocess
import tempfile
import threading
import time

import deliver_kit as kit

checks = kit.Checks()
check = checks.check

SECRET = "whsec-test-0123456789abcdef"
TIMEOUT_MS = 1000
SLOW_S = 2.5  # the hook's hang, longer than the plugin's timeout
# A bearer token longer than any fixed buffer for a header line.
TOKEN = "Bearer " + "t" * 4000
LONG = "long:" + "k" * 700  # a key's start, longer than any fixed buffer for it
# Secrets in the URL, which messages must leave out.
URL_SECRETS = ("USERINFOSECRET99", "SUPERSECRETKEY123")

# The test's own trigger: every order is POSTed to the webhook at once;
# orders "long-..." with a long key.
TRIGGERS = """
return { on_event = function(ctx, ev)
  if ev.type ~= "purchase" then return nil end
  local key = "order:" .. ev.order_id
  if ev.order_id:sub(1, 5) == "long-" then key = "%s" .. ev.order_id end
  return { schedule = { { key = key, channel = "webhook",
    template = "order_placed", delay = 0,
    vars = { order_id = ev.order_id, revenue = ev.revenue } } } }
end }
""" % LONG


class Hook(http.server.ThreadingHTTPServer):
    """Answers each key's requests from a plan: "500", "400", "slow" (hang
    longer than the client waits, then 200) or "200" (the default)."""

    daemon_threads = True

    def __init__(self, plan):
        self.plan = plan
        self.requests = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        key = self.headers.get("Idempotency-Key", "")
        with self.server.lock:
            steps = self.server.plan.get(key, [])
            action = steps.pop(0) if steps else "200"
            self.server.requests.append({"headers": dict(self.headers), "body": body,
                                         "path": self.path,
                                         "action": action, "t": time.time()})
        if action == "slow":
            time.sleep(SLOW_S)
            action = "200"
        status = int(action)
        try:
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
        except OSError:
            pass  # the client gave up waiting


def signed(req):
    want = "sha256=" + hmac.new(SECRET.encode(), req["body"], hashlib.sha256).hexdigest()
    return req["headers"].get("X-Tailor-Signature") == want


def cli(db, *args):
    out = subprocess.run([kit.TAILOR, "outbox"] + list(args) + ["--db", db],
                         capture_output=True, timeout=120)
    return out.returncode, out.stdout.decode() + out.stderr.decode()


def test_webhook():
    d = tempfile.mkdtemp(prefix="webhook", dir=kit.TMP)
    sdir = os.path.join(d, "strategies")
    os.makedirs(sdir)
    with open(os.path.join(sdir, "triggers.lua"), "w") as f:
        f.write(TRIGGERS)
    with open(os.path.join(sdir, "recommend.lua"), "w") as f:
        f.write(kit.serve_kit.RECOMMEND)
    hook = Hook({"order:o1": ["500", "slow", "200"], "order:o2": ["400"]})
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    shown = "http://127.0.0.1:%d/hooks/tailor" % hook.server_address[1]
    url = "http://hook:%s@127.0.0.1:%d/hooks/tailor?api_key=%s" % (
        URL_SECRETS[0], hook.server_address[1], URL_SECRETS[1])
    plugin = {"path": os.path.join(kit.PLUGINS, "webhook.so"),
              "config": {"url": url, "secret": SECRET, "timeout_ms": TIMEOUT_MS,
                         "connect_timeout_ms": 1000,
                         "headers": {"X-Shop": "trail", "Authorization": TOKEN}}}
    server = None
    try:
        server = kit.Serve(sdir, tmpdir=d, server={"deliver_interval_ms": 100, "threads": 2},
                           engine={"plugins": [plugin],
                                   "delivery": {"backoff_base_ms": 200, "backoff_max_ms": 800,
                                                "max_attempts": 10}})
        c = kit.load_shop(server, customers=())
        r = c.call("event", event={"type": "purchase", "customer": "c9", "order_id": "o1",
                                   "items": [{"id": "hat", "price": 24.5}]})
        check("order accepted", r.get("result") == {"ok": True}, r)
        # While the hook hangs, decisions are answered at once.
        kit.wait_for("the slow request", lambda: any(
            q["action"] == "slow" for q in hook.requests), deadline=30)
        worst = 0
        for _ in range(10):
            t0 = time.time()
            r = c.call("decide", kind="recommend", anon="v1", k=3)
            worst = max(worst, time.time() - t0)
            check("decision answered", "result" in r, r)
            time.sleep(0.1)
        check("decisions fast while the webhook hangs (%.3f s)" % worst, worst < 1.0)
        kit.wait_for("a delivered request", lambda: any(
            q["action"] == "200" for q in hook.requests), deadline=60)
        time.sleep(1.0)  # room for a duplicate, if there were one
        reqs = [q for q in hook.requests if q["headers"].get("Idempotency-Key") == "order:o1"]
        check("500, timeout, then delivered: three requests", len(reqs) == 3,
              [q["action"] for q in reqs])
        check("every request signed", all(signed(q) for q in reqs))
        check("a wrong secret does not verify", not any(
            q["headers"].get("X-Tailor-Signature") == "sha256=" + hmac.new(
                b"another-secret-0000", q["body"], hashlib.sha256).hexdigest() for q in reqs))
        check("attempts counted", [q["headers"].get("X-Tailor-Attempt") for q in reqs] ==
              ["1", "2", "3"], [q["headers"] for q in reqs])
        check("configured header", all(q["headers"].get("X-Shop") == "trail" for q in reqs))
        check("a long header value whole", all(q["headers"].get("Authorization") == TOKEN
                                               for q in reqs),
              [len(q["headers"].get("Authorization", "")) for q in reqs])
        check("JSON content type", reqs and
              reqs[-1]["headers"].get("Content-Type") == "application/json", reqs)
        body = json.loads(reqs[-1]["body"]) if reqs else {}
        check("body: the row", body.get("key") == "order:o1" and body.get("channel") == "webhook"
              and body.get("template") == "order_placed" and body.get("customer") == "c9"
              and body.get("attempt") == 3, body)
        check("body: the vars", body.get("vars", {}).get("order_id") == "o1" and
              body["vars"].get("revenue") == 24.5, body)
        check("no address without consent", "email" not in body, body)
        row = kit.row(server.db, "order:o1")
        check("row sent after 3 tries", row and row["state"] == "sent" and row["attempts"] == 3,
              row)

        # A final refusal: dead, then an operator's retry.
        c.call("event", event={"type": "purchase", "customer": "c9", "order_id": "o2",
                               "items": [{"id": "socks", "price": 12}]})
        row = kit.wait_for("the dead letter", lambda: (
            lambda x: x if x and x["state"] == "dead" else None)(kit.row(server.db, "order:o2")),
            deadline=30)
        check("dead with the status", "answered HTTP 400" in row["last_error"], row)
        check("the URL shown without its secrets", row["last_error"] ==
              shown + " answered HTTP 400", row)
        rc, out = cli(server.db, "list")
        check("list shows it", rc == 0 and "dead" in out and "answered HTTP 400" in out, out)
        check("list: no secret of the URL", not any(x in out for x in URL_SECRETS), out)
        status, _, page = kit.serve_kit.request(server.port, "GET", "/admin/api/outbox")
        check("console: no secret of the URL", status == 200 and "answered HTTP 400" in
              json.dumps(page) and not any(x in json.dumps(page) for x in URL_SECRETS), page)
        log = server.read_log().decode(errors="replace")
        check("log: the URL shown", "(%s answered HTTP 500)" % shown in log and
              "(%s: Operation timed out" % shown in log, log[-3000:])
        check("log: no secret of the URL", not any(x in log for x in URL_SECRETS), log[-3000:])
        check("the hook was posted the whole URL", all(
            q["path"] == "/hooks/tailor?api_key=" + URL_SECRETS[1] for q in hook.requests),
            [q["path"] for q in hook.requests])
        rc, out = cli(server.db, "retry", "order:o2")
        check("retry", rc == 0 and "1 row pending again" in out, out)
        kit.wait_for("the retried delivery", lambda: (
            lambda x: x if x and x["state"] == "sent" else None)(kit.row(server.db, "order:o2")),
            deadline=30)
        rc, out = cli(server.db, "retry", "order:o2")
        check("a sent row is never retried", rc == 2 and "never sent twice" in out, out)
        rc, out = cli(server.db, "retry", "order:nope")
        check("an unknown key is named", rc == 2 and "no row with key" in out, out)
        time.sleep(0.05)
        rc, out = cli(server.db, "purge", "--older-than", "0")
        check("purge", rc == 0 and "purged 2 rows" in out, out)
        check("nothing left", kit.outbox(server.db) == [], kit.outbox(server.db))
        o2 = [q for q in hook.requests if q["headers"].get("Idempotency-Key") == "order:o2"]
        check("o2: refused once, delivered once", [q["action"] for q in o2] == ["400", "200"],
              [q["action"] for q in o2])

        # Two long keys that differ only in their last byte.
        for oid in ("long-a", "long-b"):
            c.call("event", event={"type": "purchase", "customer": "c9", "order_id": oid,
                                   "items": [{"id": "hat", "price": 24.5}]})
        want = [LONG + "long-a", LONG + "long-b"]
        got = kit.wait_for("the long keys' requests", lambda: (lambda ks: ks if len(ks) >= 2
            else None)([q for q in hook.requests
                        if q["headers"].get("Idempotency-Key", "").startswith("long:")]),
            deadline=30)
        check("long keys: whole and distinct in Idempotency-Key",
              sorted(q["headers"]["Idempotency-Key"] for q in got) == want,
              [len(q["headers"]["Idempotency-Key"]) for q in got])
        check("long keys: the header is the body's key", all(
            q["headers"]["Idempotency-Key"] == json.loads(q["body"])["key"] for q in got))
        c.close()
    finally:
        if server:
            server.stop()
        hook.shutdown()
        hook.server_close()


if __name__ == "__main__":
    checks.run(test_webhook)
    raise SystemExit(checks.done())
