"""serve_prometheus_test.py: a real Prometheus (Debian's `prometheus`
package; `make test` installs it) scrapes a real `tailor serve` on
loopback with a metrics-role token as its bearer: the target is up, and
tailor's series are there with values, read back through Prometheus's
HTTP API (/api/v1/query).  The exposition passes `promtool check metrics`
(Prometheus's own lint of names, units, HELP and TYPE).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from serve_kit import METRICS, STOREFRONT, Checks, Server  # noqa: E402

T = Checks()
check = T.check

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


def query(port, q):
    body = get("http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q})))
    return json.loads(body)["data"]["result"]


def main():
    s = Server()
    prom = None
    try:
        # Some traffic so the counters have values.
        c = s.connect()
        for i in range(3):
            c.call("event", token=STOREFRONT,
                   event={"type": "view", "anon": "v%d" % i, "item": "hat"})
        c.call("decide", kind="recommend", anon="v1", token=STOREFRONT)
        c.close()

        text = get("http://127.0.0.1:%d/metrics" % s.port,
                   {"Authorization": "Bearer " + METRICS}).decode()
        lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                              capture_output=True, timeout=30)
        check("promtool check metrics finds nothing",
              lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(),
              (lint.stdout + lint.stderr).decode())

        port = free_port()
        cfg = os.path.join(s.dir, "prometheus.yml")
        with open(os.path.join(s.dir, "metrics.token"), "w") as f:
            f.write(METRICS)
        with open(cfg, "w") as f:
            f.write("""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tailor
    metrics_path: /metrics
    authorization:
      credentials_file: %s
    static_configs:
      - targets: ["127.0.0.1:%d"]
""" % (os.path.join(s.dir, "metrics.token"), s.port))
        log = open(os.path.join(s.dir, "prometheus.log"), "wb")
        prom = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(s.dir, "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % port],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        # Wait for the first scrape to be in.
        up, end = [], time.time() + 60
        while time.time() < end:
            try:
                up = query(port, 'up{job="tailor"}')
                if up and up[0]["value"][1] == "1" and query(port, "tailor_requests_total"):
                    break
            except (OSError, ValueError, KeyError):
                pass
            if prom.poll() is not None:
                break
            time.sleep(0.5)
        check("Prometheus scraped tailor (up == 1)", up and up[0]["value"][1] == "1",
              open(os.path.join(s.dir, "prometheus.log"), "rb").read()[-2000:])

        def value(q):
            r = query(port, q)
            return float(r[0]["value"][1]) if r else None

        v = value('tailor_events_total{type="view"}')
        check("events counted by type", v is not None and v >= 3, v)
        v = value('sum(tailor_requests_total{op="decide"})')
        check("requests counted by op", v is not None and v >= 1, v)
        v = value('sum(tailor_request_duration_seconds_count{op="event"})')
        check("latency histogram in seconds", v is not None and v >= 3, v)
        v = value("tailor_open_connections")
        check("open connections, a gauge", v is not None and v >= 1, v)
        v = value('tailor_index_entries{kind="items"}')
        check("index entries", v is not None and v >= 1, v)
        v = value("tailor_index_events_applied_total")
        check("events applied, a counter", v is not None and v >= 3, v)
        v = value("tailor_events_unreadable_total")
        check("unreadable stored events, a counter (none here)", v == 0, v)
        v = value('tailor_store_rows{table="events"}')
        check("store rows", v is not None and v >= 3, v)
        v = value("process_resident_memory_bytes")
        check("resident memory in bytes", v is not None and v > 1e6, v)
        r = query(port, "tailor_build_info")
        check("build info", r and r[0]["metric"].get("version"), r)
        meta = json.loads(get("http://127.0.0.1:%d/api/v1/metadata?metric=tailor_events_total" % port))
        types = [m["type"] for m in meta["data"].get("tailor_events_total", [])]
        check("TYPE read by Prometheus: tailor_events_total is a counter", types == ["counter"], meta)
        T.stopped_clean(s)
    finally:
        if prom:
            prom.terminate()
            try:
                prom.wait(20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        s.cleanup()


if __name__ == "__main__":
    if not PROMETHEUS or not PROMTOOL:
        print("FAIL: Debian's prometheus package is not installed (make deps installs it)")
        sys.exit(1)
    T.run(main)
    sys.exit(T.done())
