"""deliver_kit.py: what the delivery end-to-end tests share: a real SMTP
server (smtp_sink.py, aiosmtpd) and `tailor serve` (tests/e2e/serve_kit.py)
on free loopback ports, the shipped strategies with a short cart delay, a
shop's catalog and history, and reading the outbox with the CLI.

Every wait has a deadline; every server is stopped by the test that
started it (cleanup runs in `finally`).
"""

import email
import email.policy
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import serve_kit  # noqa: E402

TAILOR = serve_kit.TAILOR
ROOT = serve_kit.ROOT
TMP = serve_kit.TMP
PLUGINS = os.environ.get("TAILOR_PLUGINS", os.path.join(os.path.dirname(TAILOR), "plugins"))
ADMIN = serve_kit.ADMIN
Checks = serve_kit.Checks
SINK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smtp_sink.py")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def held_port():
    """(socket, port): a loopback port held by a bound socket that does not
    listen, so a connection to it is refused and no other process (a test
    server binding port 0 meanwhile) is given it; close the socket just
    before starting what should listen there."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def wait_for(what, fn, deadline=30, step=0.1):
    """Poll fn() until it returns something true; raise after `deadline` s."""
    end = time.time() + deadline
    while time.time() < end:
        got = fn()
        if got:
            return got
        time.sleep(step)
    raise TimeoutError("waited %d s for %s" % (deadline, what))


def mail(sink, to, subject, what):
    """The message to `to` whose subject starts with `subject`, waited for."""
    def find():
        for env, msg in sink.messages():
            if env["to"] == [to] and msg["Subject"].startswith(subject):
                return env, msg
        return None
    return wait_for(what, find, deadline=60)


def aiosmtpd_python():
    """A Python that has aiosmtpd: this one, or Debian's (a pyenv or venv
    interpreter first on PATH does not see Debian's python3-aiosmtpd)."""
    for py in (sys.executable, "/usr/bin/python3"):
        if py and subprocess.run([py, "-c", "import aiosmtpd"],
                                 capture_output=True).returncode == 0:
            return py
    raise RuntimeError("no python3 with aiosmtpd (Debian: python3-aiosmtpd)")


def make_cert(folder):
    """A self-signed certificate for 127.0.0.1: (cert, key)."""
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    return cert, key


class SmtpSink:
    """smtp_sink.py as a process: started on `port`, messages in `folder`."""

    def __init__(self, port, folder, cert=None, key=None, auth=None, delay=None, reject=None):
        self.port, self.folder = port, folder
        os.makedirs(folder, exist_ok=True)
        args = [aiosmtpd_python(), SINK, "--port", str(port), "--dir", folder]
        if cert:
            args += ["--cert", cert, "--key", key]
        if auth:
            args += ["--auth", auth]
        if delay:
            args += ["--delay", str(delay)]
        if reject:
            args += ["--reject", reject]
        self.log = open(os.path.join(folder, "sink.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline()  # "ready", or EOF if it died
        if line.strip() != b"ready":
            self.stop()
            raise RuntimeError("smtp_sink.py did not start (see %s/sink.log)" % folder)

    def messages(self):
        """[(envelope dict, email.message.EmailMessage)], oldest first."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.folder, "*.eml"))):
            with open(path[:-4] + ".json") as f:
                env = json.load(f)
            with open(path, "rb") as f:
                msg = email.message_from_binary_file(f, policy=email.policy.default)
            out.append((env, msg))
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


def strategies(folder, cart_delay):
    """The shipped strategies, with the abandoned-cart delay cut to
    `cart_delay` seconds (an hour in the shop's settings)."""
    dst = os.path.join(folder, "strategies")
    shutil.copytree(os.path.join(ROOT, "strategies"), dst)
    path = os.path.join(dst, "lib", "settings.lua")
    with open(path) as f:
        text = f.read()
    text, n = re.subn(r"abandoned_cart_delay\s*=\s*\d+", "abandoned_cart_delay = %d" % cart_delay,
                      text)
    if n != 1:
        raise RuntimeError("settings.lua has no abandoned_cart_delay to shorten")
    with open(path, "w") as f:
        f.write(text)
    return dst


class Serve(serve_kit.Server):
    """`tailor serve` on a strategy folder of the test's choosing."""

    def __init__(self, strategy_dir, **kw):
        self.strategy_dir = strategy_dir
        super().__init__(**kw)

    def strategies(self):
        return self.strategy_dir


def smtp_plugin(port, **config):
    """A plugins entry for the smtp plugin on 127.0.0.1:port with the
    shipped templates."""
    cfg = {"url": "smtp://127.0.0.1:%d" % port, "from": "Trail Co <shop@trail.example>",
           "templates": os.path.join(ROOT, "plugins", "smtp", "templates"),
           "timeout_ms": 5000, "connect_timeout_ms": 2000,
           "vars": {"shop": {"name": "Trail Co", "url": "https://trail.example",
                             "currency": "EUR"}}}
    cfg.update(config)
    return {"path": os.path.join(PLUGINS, "smtp.so"), "config": cfg}


# The shop: its catalog (one name that HTML must escape) and orders from
# two days ago, old enough to fire no triggers.
ITEMS = [
    {"id": "jacket", "name": "Winter Jacket", "price": 120, "category": "Outdoor/Jackets"},
    {"id": "hat", "name": "Wool Hat", "price": 24.5, "category": "Outdoor/Hats"},
    {"id": "gloves", "name": "Gloves & Mittens <Pro>", "price": 35, "category": "Outdoor/Gloves"},
    {"id": "scarf", "name": "Merino Scarf", "price": 19.9, "category": "Outdoor/Scarves"},
    {"id": "socks", "name": "Hiking Socks", "price": 12, "category": "Outdoor/Socks"},
]
for _item in ITEMS:
    _item.update(url="https://trail.example/p/" + _item["id"],
                 image="https://trail.example/img/%s.jpg" % _item["id"], in_stock=True)
ORDERS = [["jacket", "hat"], ["jacket", "scarf"], ["jacket", "hat", "socks"],
          ["hat", "scarf"], ["jacket", "hat", "scarf"], ["socks", "scarf"]]


def load_shop(server, customers=(("c1", "ada@example.com"),)):
    """Catalog, history and consenting customers, through the server."""
    c = server.connect()
    check = lambda r: r.get("result") or (_ for _ in ()).throw(RuntimeError(str(r)))  # noqa: E731
    check(c.call("auth", token=ADMIN))
    for item in ITEMS:
        check(c.call("item.upsert", item=item))
    then = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2 * 86400))
    events = [{"type": "purchase", "customer": "h%d" % i, "order_id": "h%d" % i, "ts": then,
               "items": [{"id": x, "price": 10} for x in order]}
              for i, order in enumerate(ORDERS)]
    check(c.call("events", events=events))
    for cid, addr in customers:
        check(c.call("customer.upsert",
                     customer={"id": cid, "email": addr, "consent": {"email": True}}))
    return c


def outbox(db, *args):
    """`tailor outbox list --json` on a store (rows newest first)."""
    out = subprocess.run([TAILOR, "outbox", "list", "--db", db, "--json"] + list(args),
                         capture_output=True, timeout=120)
    if out.returncode:
        raise RuntimeError(out.stderr.decode())
    return json.loads(out.stdout)


def row(db, prefix):
    """The newest outbox row whose key starts with `prefix`, or None."""
    for r in outbox(db):
        if r["key"].startswith(prefix):
            return r
    return None


def text_of(msg, subtype):
    part = msg.get_body(preferencelist=(subtype,))
    return part.get_content() if part is not None else ""
