"""deliver_smtp_test.py: the abandoned-cart email end to end, through
`tailor serve`, the shipped strategies and templates, the smtp plugin, and a
real SMTP server (aiosmtpd) on loopback:

- the email arrives over STARTTLS with AUTH, to the right recipient, with
  the right subject, the cart and the recommended items (names, prices,
  links, images; escaped in the HTML part), exactly once;
- the console's preview of that row (GET /admin/api/outbox/message) shows
  the same message: from, to, subject, text and HTML as received;
- with the SMTP server down for a while the row is tried again with
  backoff, then delivered once the server is up, never twice;
- a SIGKILL of tailor between scheduling and sending loses nothing: after a
  restart the email goes out once;
- shop data makes well-formed headers: a sender's name with a comma and
  non-ASCII letters is one address, a product's name of 1,300 characters
  in the subject is folded into lines of 78, never over 998;
- a message the server refuses keeps the server's words in last_error, as
  UTF-8 (a Latin-1 reply, a character cut at the line's end): a row whose
  last_error was not UTF-8 went missing from `tailor outbox list`.
"""

import glob
import html
import json
import os
import signal
import socket
import threading
import tempfile
import time
import urllib.parse
import urllib.request

import deliver_kit as kit

checks = kit.Checks()
check = checks.check

FAST = {"delivery": {"backoff_base_ms": 300, "backoff_max_ms": 1000, "max_attempts": 30}}
SERVER = {"deliver_interval_ms": 100}


def settle():
    """Give a duplicate, if there were one, time to arrive."""
    time.sleep(1.5)


def same_as_preview(server, key, msg):
    """The console's preview of the row renders the message that arrived."""
    req = urllib.request.Request(
        "http://127.0.0.1:%d/admin/api/outbox/message?key=%s" % (server.port,
                                                                 urllib.parse.quote(key)),
        headers={"Authorization": "Bearer " + kit.ADMIN})
    with urllib.request.urlopen(req, timeout=30) as r:
        m = json.load(r)
    got = m.get("rendered") or {}
    parts = got.get("parts") or {}
    check("preview: rendered, no error", parts and not got.get("render_error"), got)
    check("preview: a sent row has no verdict", got.get("verdict") is None, got)
    check("preview: from", parts.get("from") == msg["From"], (parts.get("from"), msg["From"]))
    check("preview: to", parts.get("to") == "ada@example.com" == got.get("to"), got)
    check("preview: subject as received", parts.get("subject") == msg["Subject"],
          (parts.get("subject"), msg["Subject"]))
    for sub, name in (("plain", "text"), ("html", "html")):
        sent = kit.text_of(msg, sub).replace("\r\n", "\n").rstrip("\n")
        shown = (parts.get(name) or "").rstrip("\n")
        check("preview: %s part as received" % name, sent and shown == sent,
              "%r\n  vs %r" % (shown[:300], sent[:300]))


def test_abandoned_cart_email():
    d = tempfile.mkdtemp(prefix="smtp", dir=kit.TMP)
    cert, key = kit.make_cert(d)
    port = kit.free_port()
    sink = kit.SmtpSink(port, os.path.join(d, "mail"), cert=cert, key=key, auth="shop:s3cret-pass")
    server = None
    try:
        plugin = kit.smtp_plugin(port, tls="required", ca_file=cert, username="shop",
                                 password="s3cret-pass")
        optin = {"secret": "smtp-unsubscribe-0123456789",
                 "unsubscribe_url": "https://trail.example/tailor/v1/unsubscribe"}
        server = kit.Serve(kit.strategies(d, 1), engine=dict(FAST, plugins=[plugin], optin=optin),
                           server=SERVER, tmpdir=d)
        c = kit.load_shop(server)
        for item in ("jacket", "gloves"):
            r = c.call("event", event={"type": "add_to_cart", "item": item, "customer": "c1"})
            check("add_to_cart accepted", r.get("result") == {"ok": True}, r)
        got = kit.wait_for("the abandoned-cart email", sink.messages, deadline=60)
        env, msg = got[0]
        check("recipient", env["to"] == ["ada@example.com"], env)
        check("over STARTTLS", env["tls"] is True, env)
        check("with an unsubscribe link configured, no warning of its lack",
              b"no optin.unsubscribe_url" not in server.read_log())
        check("authenticated", env["auth"] is True, env)
        check("envelope sender", env["from"] == "shop@trail.example", env)
        check("To header", msg["To"] == "ada@example.com", msg["To"])
        check("subject", msg["Subject"] == "Still thinking about Winter Jacket?", msg["Subject"])
        check("Message-ID from the key", msg["Message-ID"].endswith("@trail.example>"),
              msg["Message-ID"])
        check("multipart", msg.get_content_type() == "multipart/alternative",
              msg.get_content_type())
        text, page = kit.text_of(msg, "plain"), kit.text_of(msg, "html")
        r = kit.row(server.db, "abandoned_cart:c1:")
        check("outbox row sent", r and r["state"] == "sent", r)
        items = r["vars"].get("items", []) if r else []
        check("recommended items", len(items) > 0, r)
        for item in items + r["vars"].get("cart", []):
            check("text names %s" % item["id"], item["name"] in text, text)
            check("text prices %s" % item["id"], "%.2f EUR" % item["price"] in text, text)
            check("html escapes %s" % item["id"], html.escape(item["name"]) in page, page)
            check("html links %s" % item["id"], 'href="%s"' % item["url"] in page, page)
            check("html image %s" % item["id"], '<img src="%s"' % item["image"] in page, page)
        check("cart in the text", "Winter Jacket, 120.00 EUR" in text, text)
        check("no raw markup from a name", "<Pro>" not in page, page)
        check("the cart's link", 'href="https://trail.example/cart"' in page, page)
        unsub = r["vars"].get("unsubscribe_url", "") if r else ""
        check("a signed unsubscribe link in the vars",
              unsub.startswith("https://trail.example/tailor/v1/unsubscribe?c=c1&s="), r)
        check("List-Unsubscribe with one-click (RFC 8058)",
              msg["List-Unsubscribe"] == "<%s>" % unsub and
              msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click",
              (msg["List-Unsubscribe"], msg["List-Unsubscribe-Post"]))
        check("the link in the text and the page",
              unsub in text and 'href="%s"' % html.escape(unsub) in page, text)
        same_as_preview(server, r["key"], msg)
        settle()
        check("exactly one email", len(sink.messages()) == 1, len(sink.messages()))
        c.close()
    finally:
        if server:
            server.stop()
        sink.stop()


def test_smtp_down_then_up():
    d = tempfile.mkdtemp(prefix="smtpdown", dir=kit.TMP)
    # Held while "down": a free port given back at once was once taken by
    # a server of a test running beside this one, which then answered.
    hold, port = kit.held_port()
    server = sink = None
    try:
        plugin = kit.smtp_plugin(port, tls="none", connect_timeout_ms=500)
        server = kit.Serve(kit.strategies(d, 1), engine=dict(FAST, plugins=[plugin]),
                           server=SERVER, tmpdir=d)
        c = kit.load_shop(server)
        check("no unsubscribe link configured: said at start",
              b"no optin.unsubscribe_url" in server.read_log(), server.read_log()[-600:])
        c.call("event", event={"type": "add_to_cart", "item": "hat", "customer": "c1"})
        # Nothing listens on the port: tries fail and are scheduled again.
        # (A try in flight is "sending" with its attempt counted: wait until
        # the second one has been settled.)
        r = kit.wait_for("two failed tries", lambda: (
            lambda x: x if x and x["attempts"] >= 2 and x["state"] != "sending" else None)(
                kit.row(server.db, "abandoned_cart:c1:")), deadline=60)
        check("pending while down", r["state"] == "pending", r)
        check("last error kept", "Couldn't connect" in (r["last_error"] or "") or
              "connect" in (r["last_error"] or "").lower(), r)
        check("next try scheduled", r["next_at"] > 0, r)
        hold.close()
        sink = kit.SmtpSink(port, os.path.join(d, "mail"))
        kit.wait_for("the email once the server is up", sink.messages, deadline=60)
        settle()
        check("exactly one email", len(sink.messages()) == 1, len(sink.messages()))
        r = kit.row(server.db, "abandoned_cart:c1:")
        check("sent after retries", r["state"] == "sent" and r["attempts"] >= 3, r)
        check("error cleared", r["last_error"] is None, r)
        c.close()
    finally:
        hold.close()
        if server:
            server.stop()
        if sink:
            sink.stop()


def test_kill_before_sending():
    d = tempfile.mkdtemp(prefix="smtpkill", dir=kit.TMP)
    port = kit.free_port()
    sink = kit.SmtpSink(port, os.path.join(d, "mail"))
    server = None
    try:
        plugin = kit.smtp_plugin(port, tls="none")
        server = kit.Serve(kit.strategies(d, 4), engine=dict(FAST, plugins=[plugin]),
                           server=SERVER, tmpdir=d)
        c = kit.load_shop(server)
        r = c.call("event", event={"type": "add_to_cart", "item": "scarf", "customer": "c1"})
        check("scheduled", r.get("result") == {"ok": True}, r)
        # Acknowledged means durable: the row is in the store.  Kill now,
        # well before it is due.
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(30)
        c.close()
        row = kit.row(server.db, "abandoned_cart:c1:")
        check("the row survived the kill", row and row["state"] == "pending", row)
        check("nothing sent before the kill", sink.messages() == [], sink.messages())
        server.log.close()
        server.start()
        kit.wait_for("the email after the restart", sink.messages, deadline=60)
        settle()
        mails = sink.messages()
        check("exactly one email", len(mails) == 1, len(mails))
        check("to the customer", mails and mails[0][0]["to"] == ["ada@example.com"], mails)
        row = kit.row(server.db, "abandoned_cart:c1:")
        check("sent once", row["state"] == "sent" and row["attempts"] == 1, row)
    finally:
        if server:
            server.stop()
        sink.stop()


def header_lines(raw):
    """The lines of a raw message's header, CRLF cut off."""
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def test_headers_from_shop_data():
    d = tempfile.mkdtemp(prefix="smtphead", dir=kit.TMP)
    port = kit.free_port()
    sink = kit.SmtpSink(port, os.path.join(d, "mail"))
    server = None
    long_name = " ".join(["Trail Runner"] * 100)
    try:
        plugin = kit.smtp_plugin(port, tls="none",
                                 **{"from": "M\u00fcller & S\u00f6hne, Outdoor <shop@trail.example>"})
        server = kit.Serve(kit.strategies(d, 1), engine=dict(FAST, plugins=[plugin]),
                           server=SERVER, tmpdir=d)
        c = kit.load_shop(server)
        item = dict(kit.ITEMS[0], id="runner", name=long_name)
        check("item accepted", c.call("item.upsert", item=item).get("result"), item)
        c.call("event", event={"type": "add_to_cart", "item": "runner", "customer": "c1"})
        # A header line over 998 characters is refused by the server: the
        # row would go dead.
        r = kit.wait_for("the row settled", lambda: (
            lambda x: x if x and x["state"] in ("sent", "dead") else None)(
                kit.row(server.db, "abandoned_cart:c1:")), deadline=60)
        check("accepted by the server", r["state"] == "sent", r["last_error"])
        if r["state"] != "sent":
            return
        env, msg = kit.wait_for("the email", sink.messages, deadline=60)[0]
        with open(sorted(glob.glob(os.path.join(sink.folder, "*.eml")))[0], "rb") as f:
            lines = header_lines(f.read())
        check("header lines are ASCII", all(max(line, default=0) < 0x80 for line in lines),
              [line for line in lines if max(line, default=0) >= 0x80])
        check("header lines fit 78 characters", all(len(line) <= 78 for line in lines),
              [len(line) for line in lines])
        check("the subject survives folding",
              msg["Subject"] == "Still thinking about %s?" % long_name, msg["Subject"])
        sender = msg["From"].addresses
        check("From is one address", len(sender) == 1 and not msg["From"].defects,
              (sender, msg["From"].defects))
        check("From: name and address", sender and
              sender[0].display_name == "M\u00fcller & S\u00f6hne, Outdoor" and
              sender[0].addr_spec == "shop@trail.example", sender)
        c.close()
    finally:
        if server:
            server.stop()
        sink.stop()


def serve_through(d, port):
    """`tailor serve` sending through the SMTP server on `port`."""
    plugin = kit.smtp_plugin(port, tls="none")
    return kit.Serve(kit.strategies(d, 1), engine=dict(FAST, plugins=[plugin]),
                     server=SERVER, tmpdir=d)


def refused_cart_row(server):
    """c1's abandoned-cart email, which the SMTP server refuses: its dead
    outbox row."""
    c = kit.load_shop(server)
    c.call("event", event={"type": "add_to_cart", "item": "hat", "customer": "c1"})
    c.close()
    return kit.wait_for("the refused row listed", lambda: (
        lambda x: x if x and x["state"] == "dead" else None)(
            kit.row(server.db, "abandoned_cart:c1:")), deadline=60)


def test_refused_with_reason():
    d = tempfile.mkdtemp(prefix="smtprefuse", dir=kit.TMP)
    port = kit.free_port()
    sink = kit.SmtpSink(port, os.path.join(d, "mail"), reject="554 5.7.1 Rejected as spam")
    server = None
    try:
        server = serve_through(d, port)
        r = refused_cart_row(server)
        check("a 5xx is final", r["attempts"] == 1, r)
        check("the server's reason kept", "554 5.7.1 Rejected as spam" in (r["last_error"] or ""),
              r)
    finally:
        if server:
            server.stop()
        sink.stop()


def refusing_server(reply):
    """A bare SMTP server on loopback that refuses every DATA with the raw
    bytes `reply` (aiosmtpd sends ASCII only); returns its port."""
    def talk(c):
        data = False
        with c, c.makefile("rb") as f:
            c.sendall(b"220 raw ESMTP\r\n")
            for line in f:
                if data:
                    if line.rstrip(b"\r\n") == b".":
                        data = False
                        c.sendall(reply + b"\r\n")
                    continue
                cmd = line[:4].upper()
                if cmd == b"DATA":
                    data = True
                    c.sendall(b"354 go on\r\n")
                elif cmd == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"250 ok\r\n")

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)

    def serve():
        while True:
            threading.Thread(target=talk, args=(s.accept()[0],), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return s.getsockname()[1]


def test_refused_reply_not_utf8():
    # A Latin-1 byte, and a UTF-8 letter where the kept line (199 bytes) ends.
    reply = b"554 5.7.1 Empf\xe4nger " + b"a" * 178 + "\u00e4 unbekannt".encode()
    port = refusing_server(reply)
    d = tempfile.mkdtemp(prefix="smtprefuse8", dir=kit.TMP)
    server = None
    try:
        server = serve_through(d, port)
        r = refused_cart_row(server)
        err = r["last_error"] or ""
        check("the server's words, a byte of no character as ?", "554 5.7.1 Empf?nger a" in err,
              r)
        check("no part of a character at the end", err.endswith("a" * 178), r)
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    checks.run(test_abandoned_cart_email)
    checks.run(test_smtp_down_then_up)
    checks.run(test_kill_before_sending)
    checks.run(test_headers_from_shop_data)
    checks.run(test_refused_with_reason)
    checks.run(test_refused_reply_not_utf8)
    raise SystemExit(checks.done())
