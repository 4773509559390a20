"""optin_smtp_test.py: email capture with double opt-in end to end (issue 20
item 1), through `tailor serve`, the shipped strategies and templates, the
smtp plugin and a real SMTP server (aiosmtpd) on loopback:

- the popup asks a visitor for an address with an incentive; the
  storefront's POST /v1/subscribe stores no address on anyone, and the
  confirmation email arrives at the SMTP server, to that address, quoting
  the consent text, with a signed link;
- the test follows the link (GET, as a mail reader would): an HTML page
  says it is confirmed, and only now does the customer have the address,
  consent to email and the consent record (purpose, text shown, source,
  times); the welcome email brings the incentive's code, valid at the
  checkout;
- a second use of the link, a forged one, one signed with an expiry that
  has passed, a malformed one and a HEAD of the link: clear errors (a page
  for people, JSON over POST and NDJSON), nothing changed; a malformed
  address and a storefront naming a customer without proof are refused,
  nothing stored, no email sent;
- erasing the customer removes the consent record: the link then finds
  nothing.
"""

import hashlib
import hmac
import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request

import deliver_kit as kit
import serve_kit

checks = kit.Checks()
check = checks.check

SECRET = "optin-e2e-secret-0123456789"
ADDRESS = "ada.lovelace@example.com"


def http(port, method, path, body=None, key=kit.ADMIN, headers=None):
    """(status, headers, parsed JSON or the text) of one request."""
    return serve_kit.request(port, method, path, body, key, headers, timeout=30)

def follow(url, method="GET", data=None):
    """Follow a link as a mail reader does: no token, no JSON."""
    req = urllib.request.Request(url, method=method, data=data, headers=(
        {"Content-Type": "application/x-www-form-urlencoded"} if data is not None else {}))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def events_total(port):
    """Events stored, but the email_sent events delivery records as it
    sends (the welcome's may land at any moment)."""
    counts = http(port, "GET", "/v1/stats")[2]["events"]
    return sum(n for kind, n in counts.items() if kind != "email_sent")



def subscriber_of(anon):
    """The customer an anonymous visitor's confirmed address goes on."""
    return "sub-" + hashlib.sha256(anon.encode()).hexdigest()[:24]


def test_double_opt_in():
    d = tempfile.mkdtemp(prefix="optin", dir=kit.TMP)
    smtp_port, port = kit.free_port(), kit.free_port()
    sink = kit.SmtpSink(smtp_port, os.path.join(d, "mail"))
    server = None
    try:
        confirm_url = "http://127.0.0.1:%d/v1/confirm" % port
        engine = {"plugins": [kit.smtp_plugin(smtp_port, tls="none")],
                  "optin": {"secret": SECRET, "confirm_url": confirm_url}}
        server = kit.Serve(kit.strategies(d, 3600), engine=engine, tmpdir=d,
                           server={"listen": "127.0.0.1:%d" % port, "deliver_interval_ms": 100})
        p = server.port
        kit.load_shop(server, customers=()).close()

        # The popup asks for the address, with its incentive.
        sf = serve_kit.STOREFRONT
        status, _, dec = http(p, "POST", "/v1/decide/popup", key=sf,
                              body={"anon": "v1", "session": "s1",
                                    "context": {"trigger": "time_on_page", "seconds": 90}})
        check("the popup asks for an email", status == 200 and
              (dec.get("result") or {}).get("kind") == "email_capture", dec)
        ask = dec.get("result") or {}
        check("with its incentive", (ask.get("incentive") or {}).get("percent") == 10, ask)

        # The storefront sends the address and the text it showed.
        before = events_total(p)
        status, _, r = http(p, "POST", "/v1/subscribe", key=sf, body={
            "email": "Ada.Lovelace@Example.com", "anon": "v1", "purpose": ask.get("purpose"),
            "text": ask.get("consent_text"), "source": ask.get("source")})
        check("subscribe: pending", status == 200 and r.get("status") == "pending", (status, r))
        sub = subscriber_of("v1")
        status, _, c = http(p, "GET", "/v1/customers/" + sub)
        check("no profile holds the address yet", status == 404, (status, c))
        check("no event stored for it", events_total(p) == before)

        # The confirmation email arrives, to that address.
        env, msg = kit.mail(sink, ADDRESS, "Please confirm your address for Trail Co",
                        "the confirmation email")
        check("sent to the address given, once", len(sink.messages()) == 1 and
              env["to"] == [ADDRESS], env)
        text, page = kit.text_of(msg, "plain"), kit.text_of(msg, "html")
        # Text a caller wrote is kept in the consent record, never put in
        # the shop's email (anyone may ask for any address).
        check("does not carry the caller's text", ask.get("consent_text", "?") not in text and
              ask.get("consent_text", "?") not in page, text)
        m = re.search(r"(http://127\.0\.0\.1:%d/v1/confirm\?token=[0-9a-f.]+)" % port, text)
        check("carries the signed link", m is not None, text)
        check("the HTML part links it too", m and ('href="%s"' % m.group(1)) in page, page)
        link = m.group(1) if m else confirm_url + "?token=none"

        # A HEAD of the link (a link checker) confirms nothing.
        status, _, _ = follow(link, "HEAD")
        check("HEAD answers", status == 200, status)
        check("HEAD confirms nothing", http(p, "GET", "/v1/customers/" + sub)[0] == 404)

        # Following the link shows a button and confirms nothing (a mail
        # scanner follows links); the button confirms, and says so.
        status, _, body = follow(link)
        check("GET shows the button", status == 200 and "<button" in body and
              'id="confirmed"' not in body, (status, body))
        check("GET confirms nothing", http(p, "GET", "/v1/customers/" + sub)[0] == 404)
        status, head, body = follow(link, "POST", b"")
        check("the button confirms", status == 200 and 'id="confirmed"' in body and
              ADDRESS in body, (status, body))
        check("a page", head.get("Content-Type") == "text/html; charset=utf-8", head)
        check("that keeps its link from other sites",
              head.get("Referrer-Policy") == "no-referrer", head)
        status, _, c = http(p, "GET", "/v1/customers/" + sub)
        check("the customer has the address", status == 200 and c.get("email") == ADDRESS, c)
        check("and consent to email", (c.get("consent") or {}).get("email") is True, c)
        status, _, x = http(p, "GET", "/v1/customers/%s/export" % sub)
        rec = (x.get("consents") or [{}])[0]
        check("the consent record", rec.get("state") == "confirmed" and
              rec.get("purpose") == "newsletter" and rec.get("text") == ask.get("consent_text") and
              rec.get("source") == "popup:newsletter_10" and rec.get("email") == ADDRESS and
              rec.get("confirmed", 0) >= rec.get("requested", 1), x.get("consents"))
        stored = events_total(p)

        # The welcome brings the incentive's code.
        env, msg = kit.mail(sink, ADDRESS, "Welcome to Trail Co", "the welcome email")
        welcome = kit.text_of(msg, "plain")
        check("welcome subject", msg["Subject"] == "Welcome to Trail Co: your 10% off",
              msg["Subject"])
        code = re.search(r"\b(WELCOME10-[0-9A-Z]{10})\b", welcome)
        check("with a code", code is not None, welcome)
        if code:
            status, _, cc = http(p, "POST", "/v1/coupons/check", body={"code": code.group(1)})
            check("that the checkout accepts", status == 200 and cc.get("valid") is True, cc)

        # A second use, a forged link, one past its time, a malformed one.
        token = link.split("token=")[1]
        rid, expiry, sig = token.split(".")
        forged = "%s.%s.%s%s" % (rid, expiry, "0" if sig[0] != "0" else "1", sig[1:])
        old = "%s.%d" % (rid, int(time.time()) - 60)
        expired = old + "." + hmac.new(SECRET.encode(), old.encode(), hashlib.sha256).hexdigest()
        for what, tok, status_want, words in (
                ("a second use", token, 400, "used already"),
                ("a forged link", forged, 400, "signature does not match"),
                ("an expired link", expired, 400, "expired at"),
                ("a malformed link", "abc.def", 400, "not a confirmation link"),
                ("no token at all", None, 400, "not a confirmation link")):
            url = confirm_url + ("?token=" + tok if tok else "")
            status, head, body = follow(url, "POST", b"") if tok else follow(url)
            check("%s: a clear page" % what, status == status_want and words in body and
                  'id="error"' in body, (status, body))
        status, _, r = http(p, "POST", "/v1/confirm", key=None, body={"link": forged})
        check("POST /v1/confirm: JSON error", status == 400 and
              r["error"]["code"] == "bad_field" and "signature" in r["error"]["message"], r)
        conn = server.connect()
        r = conn.call("confirm", link=link)
        check("NDJSON confirm: used", serve_kit.error_code(r) == "bad_field" and
              "used already" in r["error"]["message"], r)
        check("nothing changed", events_total(p) == stored)
        check("the record stays confirmed once",
              len(http(p, "GET", "/v1/customers/%s/export" % sub)[2]["consents"]) == 1)

        # A malformed address, a customer named without proof: refused.
        outbox_before = len(kit.outbox(server.db))
        status, _, r = http(p, "POST", "/v1/subscribe", key=sf, body={
            "email": "ada@", "anon": "v2", "purpose": "newsletter", "text": "t"})
        check("a malformed address is refused", status == 400 and
              r["error"]["field"] == "email" and "is not an email address" in
              r["error"]["message"], r)
        status, _, r = http(p, "POST", "/v1/subscribe", key=sf, body={
            "email": "eve@example.com", "customer": "c1", "purpose": "newsletter", "text": "t"})
        check("a storefront names a customer only with proof", status == 400 and
              r["error"]["field"] == "customer", r)
        status, _, r = http(p, "POST", "/v1/subscribe", key=None, body={
            "email": "eve@example.com", "anon": "v3", "purpose": "newsletter", "text": "t"})
        check("subscribe needs a token", status == 401, r)
        status, _, r = http(p, "POST", "/v1/events", key=sf, body={
            "type": "consent", "anon": "v1", "props": {"double_opt_in": rid, "email": True}})
        check("a sender cannot claim a confirmation", status == 400 and
              r["error"]["field"] == "props.double_opt_in", r)
        check("nothing stored", len(kit.outbox(server.db)) == outbox_before)

        # NDJSON, for a customer with their proof: pending, then confirmed by
        # the link as a shop's own page passes it on.
        r = conn.call("subscribe", email="grace@example.com", customer="c9", purpose="newsletter",
                      text="Yes, email me.", token=sf,
                      customer_token=serve_kit.customer_token("c9"))
        check("NDJSON subscribe with a customer token", (serve_kit.result(r) or {}).get(
            "status") == "pending", r)
        env, msg = kit.mail(sink, "grace@example.com", "Please confirm", "the second confirmation")
        m2 = re.search(r"(http://\S+/v1/confirm\?token=[0-9a-f.]+)", kit.text_of(msg, "plain"))
        status, _, r = http(p, "POST", "/v1/confirm", key=None,
                            body={"link": m2.group(1) if m2 else "x"})
        check("POST /v1/confirm: JSON", status == 200 and r.get("customer") == "c9" and
              r.get("email") == "grace@example.com", r)
        conn.close()

        # Erasure removes the consent record; the link then finds nothing.
        status, _, r = http(p, "DELETE", "/v1/customers/" + sub)
        check("erased", status == 200, r)
        status, _, x = http(p, "GET", "/v1/customers/%s/export" % sub)
        check("no consent record left", x.get("consents") == [], x)
        status, _, body = follow(link, "POST", b"")
        check("the link finds nothing", status == 404 and "erased" in body, (status, body))
        kit.mail(sink, "grace@example.com", "Welcome", "grace's welcome")
        want = ["Please confirm your address for Trail Co", "Welcome to Trail Co: your 10% off",
                "Please confirm your address for Trail Co", "Welcome to Trail Co"]
        time.sleep(1.0)  # a duplicate, if there were one, would be here
        subjects = [m[1]["Subject"] for m in sink.messages()]
        check("each email once", subjects == want, subjects)
        checks.stopped_clean(server)
    finally:
        if server:
            server.cleanup()
        sink.stop()


if __name__ == "__main__":
    checks.run(test_double_opt_in)
    raise SystemExit(checks.done())
