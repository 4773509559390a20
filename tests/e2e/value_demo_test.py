#!/usr/bin/env python3
"""value_demo_test.py: the value model's holdout check on the demo shop.

The demo's data (examples/data/generate.py, as `make demo` makes it, with a
fixed --now so the figures do not move with the calendar) is loaded into a
fresh store; `tailor stats` must say which model it fitted and, on the
orders it held back, that a customer's predicted value ranks customers by
their spend there better than their past spend does.
"""

import json
import os
import shutil
import subprocess
import sys

TAILOR = os.environ.get("TAILOR", "build/tailor")
ROOT = os.environ.get("TAILOR_ROOT", ".")
TMP = os.path.join(os.environ.get("TAILOR_TEST_TMP", "/tmp"), "value_demo")


def main():
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    events, db = os.path.join(TMP, "shop.ndjson"), os.path.join(TMP, "demo.db")
    subprocess.run([sys.executable, os.path.join(ROOT, "examples/data/generate.py"),
                    "--events", events, "--now", "2025-06-01"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([TAILOR, "ingest", "--quiet", "--db", db, events], check=True,
                   stdout=subprocess.DEVNULL)
    out = subprocess.run([TAILOR, "stats", "--quiet", "--db", db], check=True,
                         capture_output=True, text=True).stdout
    vm = json.loads(out)["value_model"]
    c = vm.get("check")
    print("value model: %s (%s)" % (vm["kind"], vm["reason"]))
    print("check: %s" % json.dumps(c))
    assert vm["kind"] == "bgnbd" and vm["tiers"] is True, vm
    assert c and c["kind"] == "bgnbd", c
    assert 0 < c["holdout_days"] <= 90 and c["spenders"] > 20, c
    assert c["spearman_predicted"] > c["spearman_past_spend"], c
    assert c["beats_past_spend"] is True
    shutil.rmtree(TMP, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
