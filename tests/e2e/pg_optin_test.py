"""pg_optin_test.py: email capture with double opt-in and the console's
outbox on PostgreSQL (issue 18), through two `tailor serve` nodes on one
database, the shipped strategies and templates, the smtp plugin and a real
SMTP server (aiosmtpd) on loopback.  The test starts its own PostgreSQL 15
(tests/pg/pg_kit.py).

- a visitor subscribes on node 1: the confirmation row is in the shared
  outbox, which node 2's console lists (GET /admin/api/outbox: counted by
  template and state, the row with its link for an admin, without its
  variables for a metrics token), and the email reaches the SMTP server
  once, with the same signed link;
- node 2's console previews that row as its channel renders it
  (GET /admin/api/outbox/message and message.html);
- the link, pointing at node 2, confirms: node 1 then has the address on
  the customer with consent, and the consent record (text, purpose,
  source, state) in the customer's export; the consent event reaches the
  strategies through the log, so the welcome email with its code arrives
  too, once; a second use of the link is refused on node 1;
- the console's retry (a sent row refused) and purge act on the shared
  outbox;
- erasure through node 2 removes the record: node 1's export lists none
  and the link then finds nothing.
"""

import hashlib
import json
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pg"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins"))

import deliver_kit as kit  # noqa: E402
import serve_kit  # noqa: E402
from pg_kit import Postgres  # noqa: E402

SECRET = "optin-pg-secret-0123456789"
ADDRESS = "ada.lovelace@example.com"
CONFIRM = "Please confirm your address for Trail Co"
WELCOME = "Welcome to Trail Co: your 10% off"

checks = kit.Checks()
check = checks.check


def http(port, method, path, body=None, key=serve_kit.ADMIN):
    """(status, headers, parsed JSON or the text) of one request."""
    return serve_kit.request(port, method, path, body, key, timeout=30)

def follow(url):
    """Follow a link and press its button, as a person does: no token; the
    GET shows the button, its POST confirms."""
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            page = r.read().decode()
        if "<button" not in page:
            return r.status, page
        req = urllib.request.Request(url, method="POST", data=b"", headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def outbox(port, state=None, key=serve_kit.ADMIN):
    q = "?state=" + state if state else ""
    status, _, box = http(port, "GET", "/admin/api/outbox" + q, key=key)
    return box if status == 200 else {"error": (status, box)}


def row_of(box, prefix):
    for r in box.get("rows", []):
        if r.get("key", "").startswith(prefix):
            return r
    return None



def test_optin_on_pg():
    d = tempfile.mkdtemp(prefix="pgoptin", dir=kit.TMP)
    smtp_port, p1, p2 = kit.free_port(), kit.free_port(), kit.free_port()
    sink = kit.SmtpSink(smtp_port, os.path.join(d, "mail"))
    nodes = []
    try:
        with Postgres() as pg:
            strategies = kit.strategies(d, 3600)
            engine = {"plugins": [kit.smtp_plugin(smtp_port, tls="none")],
                      "optin": {"secret": SECRET,
                                "confirm_url": "http://127.0.0.1:%d/v1/confirm" % p2}}
            for port in (p1, p2):
                folder = os.path.join(d, "node%d" % port)
                os.makedirs(folder)
                nodes.append(kit.Serve(strategies, engine=engine, db=pg.url, tmpdir=folder,
                                       server={"listen": "127.0.0.1:%d" % port,
                                               "deliver_interval_ms": 100}))
            kit.load_shop(nodes[0], customers=()).close()
            run(pg, sink, p1, p2)
            for n in nodes:
                checks.stopped_clean(n)
    finally:
        for n in nodes:
            n.cleanup()
        sink.stop()


def run(pg, sink, p1, p2):
    sf = serve_kit.STOREFRONT
    # The popup's ask on node 1, and the address given there.
    status, _, dec = http(p1, "POST", "/v1/decide/popup", key=sf,
                          body={"anon": "v1", "session": "s1",
                                "context": {"trigger": "time_on_page", "seconds": 90}})
    ask = (dec.get("result") or {}) if status == 200 else {}
    check("the popup asks for an email", ask.get("kind") == "email_capture", dec)
    status, _, r = http(p1, "POST", "/v1/subscribe", key=sf, body={
        "email": "Ada.Lovelace@Example.com", "anon": "v1", "purpose": ask.get("purpose"),
        "text": ask.get("consent_text"), "source": ask.get("source")})
    check("subscribe on PostgreSQL: pending", status == 200 and r.get("status") == "pending",
          (status, r))
    sub = "sub-" + hashlib.sha256(b"v1").hexdigest()[:24]
    check("no profile holds the address yet",
          http(p1, "GET", "/v1/customers/" + sub)[0] == 404)

    # Node 2's console lists the confirmation row of node 1's request.
    box = outbox(p2)
    row = row_of(box, "optin:")
    check("node 2's console lists the confirmation row", row is not None and
          row.get("template") == "confirm_email" and row.get("channel") == "email" and
          row.get("customer") == sub, box)
    row = row or {}
    link = (row.get("vars") or {}).get("link", "")
    check("with its signed link, for an admin",
          link.startswith("http://127.0.0.1:%d/v1/confirm?token=" % p2), row)
    check("the row never holds the address", ADDRESS not in json.dumps(row), row)
    counts = (box.get("triggers") or {}).get("confirm_email") or {}
    check("counted by template and state", counts.get("channel") == "email" and
          sum(n for k, n in counts.items() if k != "channel") == 1, box.get("triggers"))
    metrics = outbox(p2, key=serve_kit.METRICS)
    check("a metrics token sees no variables", row_of(metrics, "optin:") is not None and
          "vars" not in row_of(metrics, "optin:"), metrics)

    # The email goes out once, with that link.
    env, msg = kit.mail(sink, ADDRESS, CONFIRM, "the confirmation email")
    text = kit.text_of(msg, "plain")
    check("the email carries the console's link", link and link in text, (link, text))
    check("names the purpose, not the caller's text", "newsletter" in text and
          ask.get("consent_text", "?") not in text, text)
    sent = kit.wait_for("the row sent", lambda: row_of(outbox(p2, "sent"), "optin:"), 30)
    check("the console lists it as sent", sent.get("state") == "sent" and
          sent.get("attempts") == 1, sent)
    check("filtered by state", all(x["state"] == "sent" for x in outbox(p2, "sent")["rows"]) and
          row_of(outbox(p2, "scheduled"), "optin:") is None)

    # The preview of that row on node 2, as its channel renders it.
    key = urllib.parse.quote(row.get("key", "none"))
    status, _, m = http(p2, "GET", "/admin/api/outbox/message?key=" + key)
    parts = ((m.get("rendered") or {}).get("parts") or {}) if status == 200 else {}
    check("node 2 previews the row", status == 200 and m.get("key") == row.get("key") and
          m.get("state") == "sent", (status, m))
    check("as the email went out", parts.get("subject") == msg["Subject"] and
          link in (parts.get("text") or ""), parts)
    status, head, page = http(p2, "GET", "/admin/api/outbox/message.html?key=" + key)
    check("its HTML part, sandboxed", status == 200 and link.replace("&", "&amp;") in page and
          "sandbox" in head.get("Content-Security-Policy", ""), (status, page[:300]))
    status, _, m = http(p2, "GET", "/admin/api/outbox/message?key=no-such-key")
    check("an unknown key: 404", status == 404 and "no-such-key" in json.dumps(m), (status, m))

    # The link, served by node 2, confirms; node 1 sees it all.
    status, body = follow(link)
    check("the link confirms", status == 200 and 'id="confirmed"' in body, (status, body))
    status, _, c = http(p1, "GET", "/v1/customers/" + sub)
    check("node 1: the customer has the address", status == 200 and c.get("email") == ADDRESS, c)
    check("and consent to email", (c.get("consent") or {}).get("email") is True, c)
    status, _, x = http(p1, "GET", "/v1/customers/%s/export" % sub)
    recs = x.get("consents") or [{}]
    check("node 1's export holds the consent record", len(recs) == 1 and
          recs[0].get("state") == "confirmed" and recs[0].get("email") == ADDRESS and
          recs[0].get("text") == ask.get("consent_text") and
          recs[0].get("purpose") == "newsletter" and
          recs[0].get("source") == "popup:newsletter_10" and
          recs[0].get("confirmed", 0) >= recs[0].get("requested", 1), x.get("consents"))
    consent_events = [e for e in x.get("events", [])
                      if (e.get("body") or {}).get("type") == "consent"]
    check("and the consent event, in the log",
          len(consent_events) == 1 and
          consent_events[0]["body"].get("props", {}).get("double_opt_in") == row.get(
              "key", ":").split(":")[1], consent_events)
    status, _, r = http(p1, "POST", "/v1/confirm", key=None, body={"link": link})
    check("a second use on node 1 is refused", status == 400 and
          "used already" in r["error"]["message"], (status, r))

    # The consent event reached the strategies through the log: the welcome.
    env, msg = kit.mail(sink, ADDRESS, WELCOME, "the welcome email")
    check("the welcome brings a code",
          re.search(r"\bWELCOME10-[0-9A-Z]{10}\b", kit.text_of(msg, "plain")) is not None)
    time.sleep(1.0)  # a copy from the other node, if there were one, would be here
    subjects = [m[1]["Subject"] for m in sink.messages()]
    check("each email once, from two nodes delivering", subjects == [CONFIRM, WELCOME], subjects)
    kit.wait_for("the welcome row sent", lambda: row_of(outbox(p1, "sent"), "subscribed:"), 30)
    box = outbox(p1)
    check("node 1's console counts both", (box.get("totals") or {}).get("sent") == 2 and
          (box["triggers"].get("subscribed") or {}).get("sent") == 1 and
          (box["triggers"].get("confirm_email") or {}).get("sent") == 1, box.get("triggers"))

    # Retry and purge through the console, on the shared outbox.
    status, _, r = http(p2, "POST", "/admin/api/outbox/retry", body={"key": row.get("key")})
    check("retry of a sent row is refused, saying why", status == 403 and
          "a key is never sent twice" in r["error"]["message"], (status, r))
    status, _, r = http(p2, "POST", "/admin/api/outbox/retry", body={})
    check("retry of every dead row: none", status == 200 and r.get("changed") == 0, (status, r))
    status, _, r = http(p2, "POST", "/admin/api/outbox/purge",
                        body={"state": "sent", "older_than_ms": 0})
    check("purge of sent rows", status == 200 and r.get("purged") == 2, (status, r))
    check("gone from the other node's console", (outbox(p1).get("totals") or {}).get("sent")
          is None and pg.psql("SELECT count(*) FROM outbox") == "0", outbox(p1))

    # Erasure through node 2: node 1's export has no record left.
    status, _, r = http(p2, "DELETE", "/v1/customers/" + sub)
    check("erased", status == 200, (status, r))
    status, _, x = http(p1, "GET", "/v1/customers/%s/export" % sub)
    check("no consent record left", x.get("consents") == [], x)
    check("none in the database", pg.psql("SELECT count(*) FROM consents") == "0")
    status, body = follow(link)
    check("the link finds nothing", status == 404 and "erased" in body, (status, body))


if __name__ == "__main__":
    checks.run(test_optin_on_pg)
    raise SystemExit(checks.done())
