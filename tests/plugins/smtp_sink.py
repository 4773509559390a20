"""smtp_sink.py: a real SMTP server (aiosmtpd, Debian's python3-aiosmtpd)
on loopback for the delivery tests.  Each message it accepts becomes
DIR/NNN.eml (the message as received) beside DIR/NNN.json (the envelope,
and whether TLS and AUTH were used); the .eml appears last, whole.

    smtp_sink.py --port P --dir DIR [--cert C --key K] [--auth USER:PASS]
                 [--delay S] [--reject REPLY]

With a certificate, STARTTLS is required before anything else; with --auth,
AUTH is required before MAIL.  With --delay, each message is kept first and
answered "250" S seconds later: a slow server, and a window in which a
sender that dies has delivered a message it never heard accepted.  With
--reject, each message is refused after its DATA with that reply ("554
5.7.1 ..."), and not kept.  Prints
"ready" once listening; stops on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import json
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, folder, delay=0.0, reject=None):
        self.folder = folder
        self.delay = delay
        self.reject = reject
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        if self.reject:
            return self.reject
        with self.lock:
            self.count += 1
            base = os.path.join(self.folder, "%03d" % self.count)
        with open(base + ".json", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos,
                       "tls": session.ssl is not None,
                       "auth": bool(session.authenticated)}, f)
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.replace(base + ".tmp", base + ".eml")
        if self.delay:
            await asyncio.sleep(self.delay)
        return "250 OK"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--auth")
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--reject")
    a = ap.parse_args()
    tls = None
    if a.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.cert, a.key)
    auth = None
    if a.auth:
        user, password = a.auth.split(":", 1)

        def auth(server, session, envelope, mechanism, data):
            ok = (isinstance(data, LoginPassword) and data.login.decode() == user
                  and data.password.decode() == password)
            return AuthResult(success=ok)

    ctl = Controller(Sink(a.dir, a.delay, a.reject), hostname="127.0.0.1", port=a.port, tls_context=tls,
                     require_starttls=tls is not None, authenticator=auth,
                     auth_required=auth is not None, auth_require_tls=tls is not None)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ctl.start()
    print("ready", flush=True)
    while not stop.wait(0.2):
        pass
    ctl.stop()


if __name__ == "__main__":
    main()
