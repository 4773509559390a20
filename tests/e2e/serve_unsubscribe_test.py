"""serve_unsubscribe_test.py: the unsubscribe link every email carries.

GET /v1/unsubscribe?c=<customer>&s=<signature> shows one button and
changes nothing (a link scanner follows links); a POST, that button or a
mail client's one-click List-Unsubscribe-Post, records a consent event
with marketing false for the customer.  A forged or cut link is refused
with a page that says so, and nothing is stored.
"""

import hashlib
import hmac
import os
import sqlite3
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from serve_kit import Checks, Server, request  # noqa: E402

T = Checks()
check = T.check

SECRET = "unsubscribe-secret-0123456789"


def link(customer, secret=SECRET):
    sig = hmac.new(secret.encode(), ("unsubscribe:" + customer).encode(), hashlib.sha256)
    return "/v1/unsubscribe?c=%s&s=%s" % (urllib.parse.quote(customer, safe=""), sig.hexdigest())


def declines(db, customer):
    con = sqlite3.connect(db)
    n = con.execute("SELECT count(*) FROM events WHERE type='consent' AND customer=? AND "
                    "body LIKE '%\"marketing\":false%'", (customer,)).fetchone()[0]
    con.close()
    return n


def main():
    s = Server(engine={"optin": {"secret": SECRET,
                                 "unsubscribe_url": "https://shop.example/v1/unsubscribe"}})
    try:
        p = s.port
        st, _, r = request(p, "POST", "/v1/events", {
            "type": "customer_upsert",
            "customer": {"id": "ada 1", "email": "ada@example.com", "consent": {"email": True}}})
        check("a customer", st == 200, (st, r))
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        st, _, page = request(p, "GET", link("ada 1"), key=None)
        check("GET shows the button and changes nothing",
              st == 200 and "<button" in page and declines(s.db, "ada 1") == 0, (st, page))
        st, _, page = request(p, "HEAD", link("ada 1"), key=None)
        check("HEAD changes nothing", st == 200 and declines(s.db, "ada 1") == 0, st)
        bad = link("ada 1", secret="another-secret-0123456789")
        st, _, page = request(p, "GET", bad, key=None)
        check("GET of a forged link says so at once, with no button",
              st == 400 and "signature does not match" in page and "<button" not in page,
              (st, page))
        st, _, page = request(p, "POST", bad, key=None, headers=form)
        check("a forged link is refused with a page that says so",
              st == 400 and "signature does not match" in page and declines(s.db, "ada 1") == 0,
              (st, page))
        st, _, page = request(p, "POST", link("ada 1")[:-10], key=None, headers=form)
        check("a cut link is refused with the page", st == 400 and isinstance(page, str) and
              'id="error"' in page and declines(s.db, "ada 1") == 0, (st, page))
        st, _, page = request(p, "GET", "/v1/unsubscribe?c=a&s=b", key=None)
        check("a link cut short says so on the page", st == 400 and isinstance(page, str) and
              "signature does not match" in page, (st, page))
        # The one-click POST of RFC 8058, as a mail client sends it.
        req_body = "List-Unsubscribe=One-Click"
        import urllib.request
        r = urllib.request.Request("http://127.0.0.1:%d%s" % (p, link("ada 1")), method="POST",
                                   data=req_body.encode(), headers=form)
        with urllib.request.urlopen(r, timeout=30) as resp:
            st, page = resp.status, resp.read().decode()
        check("the one-click POST unsubscribes",
              st == 200 and "unsubscribed" in page and declines(s.db, "ada 1") == 1, (st, page))
        st, _, text = request(p, "GET", "/metrics")
        check("/metrics names the operation", 'op="unsubscribe"' in text and "(null)" not in text,
              [l for l in text.splitlines() if "unsub" in l or "null" in l][:5])
        T.stopped_clean(s)
    finally:
        s.cleanup()
    return T.done()


if __name__ == "__main__":
    sys.exit(main())
