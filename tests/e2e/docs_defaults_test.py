#!/usr/bin/env python3
"""docs_defaults_test.py: the numbers the docs give are the engine's.

Every named default (host/core/defaults.h) is printed by `tailor config
--defaults`: name, value, config key ("-" for a fixed limit), unit, meaning.
docs/configuration.md is that table's engine keys in full (`tailor config
--markdown`, compared in cli.sh); the other pages are prose written by hand,
and this test reads them so that a number cannot drift:

- a key followed by a number, "`index.max_neighbors` (64)", "`lua.memory_limit_mb`,
  64 MiB", "`index.clusters`, 5 by default", anywhere in docs/*.md or
  README.md, must be that key's default (the server's keys also by their
  name in the section, `max_inflight`, on docs/server.md);
- a table row "| `key` | default | ..." likewise, in a table whose header
  has a "default" column;
- a fixed limit the prose states without a key is listed below (PHRASES) by
  its name, so the sentence is checked against the value, not a copy.

Units are converted: 65536 bytes may read "64 KiB", 10000 ms "10 s".
`tailor serve --help` is also checked to list exactly the "server.*" rows.
"""

import glob
import os
import re
import subprocess
import sys

TAILOR = os.environ.get("TAILOR", "build/tailor")
ROOT = os.environ.get("TAILOR_ROOT", ".")

# Sentences that state a fixed limit: {NAME} is its value, {NAME:UNIT} its
# value in another unit (KiB, MiB, s).  Whitespace, line breaks included,
# matches any run of whitespace.
PHRASES = [
    ("docs/events.md", "at most `limits.max_event_bytes` ({MAX_EVENT_BYTES:KiB} KiB) "
                       "and {EVENT_MAX_LINES} product lines"),
    ("docs/events.md", "ids at most {MAX_ID_BYTES} bytes"),
    ("docs/events.md", "nested at most {MAX_JSON_DEPTH} deep"),
    ("docs/server.md", "a token has {MIN_TOKEN_BYTES} to {MAX_ID_BYTES} bytes"),
    ("docs/server.md", "(at most {SERVER_MAX_REPORTED_ERRORS} detailed)"),
    ("docs/server.md", "of {SERVER_CORS_MAX_AGE_S} s"),
    ("docs/server.md", "reuses them for up to {SERVER_STATS_TTL_MS:s} s"),
    ("docs/server.md", "up to {SERVER_STATIC_MAX_BYTES:MiB} MiB each"),
    ("docs/server.md", "read ({SERVER_READ_CHUNK_BYTES:KiB} KiB) is buffered"),
    ("docs/server.md", "for up to {SERVER_LINGER_MS:s} s"),
    ("docs/server.md", "sends nothing within {SERVER_REFUSED_WAIT_MS:s} s"),
    ("docs/lua-api.md", "| `k` | {LUA_DEFAULT_K} | how many rows (1 to {LUA_MAX_K}) |"),
    ("docs/lua-api.md", "seen within `days` ({LUA_WATCHERS_DAYS})"),
    ("docs/lua-api.md", "at most {LUA_MAX_EXPOSURES} distinct ones per handler call"),
    ("docs/strategies.md", "records at most {LUA_MAX_EXPOSURES} of them"),
    ("docs/strategies.md", "a time limit: {LUA_CALL_TIME_LIMIT_MS} ms of wall-clock time"),
    ("docs/strategies.md", "within {REPORT_WINDOW_DAYS} days (`--window-days`)"),
    ("docs/plugins.md", "in the last {EMAIL_CAP_WINDOW_DAYS} days"),
    ("docs/plugins.md", "default {OUTBOX_PURGE_DAYS} days"),
    ("docs/server.md", "A mailbox is sent at most {OPTIN_MAX_PER_ADDRESS} confirmation"),
    ("docs/server.md", "word for word (1 to {OPTIN_MAX_TEXT_BYTES} bytes)"),
]

# How many base units (bytes, ms, s, ...) one unit written in the docs is.
SCALE = {
    "bytes": {"": 1, "bytes": 1, "KiB": 1024, "MiB": 1 << 20, "GiB": 1 << 30},
    "MiB": {"": 1, "MiB": 1, "GiB": 1024},
    "ms": {"": 1, "ms": 1, "s": 1000, "seconds": 1000, "min": 60000,
           "minutes": 60000, "h": 3600000, "hours": 3600000, "days": 86400000},
    "s": {"": 1, "s": 1, "seconds": 1, "min": 60, "minutes": 60, "h": 3600,
          "hours": 3600, "days": 86400},
    "days": {"": 1, "days": 1},
    "percent": {"": 1, "%": 1},
}
COUNT = {"": 1}

NUMBER = r"(\d[\d,]*(?:\.\d+)?)\s*(million|thousand)?\s*(KiB|MiB|GiB|bytes|ms|seconds|s|minutes|min|hours|h|days|%)?"
# `key` (N unit...  /  `key`, N unit)  /  `key`, N unit by default
PROSE = re.compile(r"`([a-z_]+(?:\.[a-z_]+)*)`(?: \(|, )" + NUMBER + r"(?=[);]| by default)")

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg)


def run(*args):
    return subprocess.run([TAILOR, *args], check=True, capture_output=True, text=True).stdout


def load_rows():
    rows = {}
    lines = run("config", "--defaults").splitlines()
    assert lines[0].split()[:5] == ["name", "value", "key", "unit", "meaning"], lines[0]
    for line in lines[1:]:
        m = re.match(r"(\S+)\s+(-?\d+)\s+(\S+)\s+(\S+)\s+(.*)$", line)
        assert m, "unparsed line of tailor config --defaults: " + line
        name, value, key, unit, doc = m.groups()
        rows[name] = {"name": name, "value": int(value), "key": "" if key == "-" else key,
                      "unit": unit, "doc": doc}
    return rows


def doc_value(number, scale_word, unit_word, unit):
    """The base-unit value of "64 KiB" for a row in `unit`, or None when the
    docs' unit is not one of that row's."""
    n = float(number.replace(",", ""))
    n *= {"million": 1e6, "thousand": 1e3}.get(scale_word or "", 1)
    factor = SCALE.get(unit, COUNT).get(unit_word or "")
    return None if factor is None else n * factor


def docs():
    paths = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))) + [os.path.join(ROOT, "README.md")]
    return {os.path.relpath(p, ROOT): open(p, encoding="utf-8").read() for p in paths}


def keys_for(rel, rows):
    """The keys a page may name: dotted keys anywhere, and on the server's
    page the server section's keys by their own name."""
    keys = {r["key"]: r for r in rows.values() if r["key"]}
    if rel == "docs/server.md":
        for r in rows.values():
            if r["key"].startswith("server."):
                keys[r["key"][len("server."):]] = r
    return keys


def check_prose(rel, text, rows):
    checked = 0
    keys = keys_for(rel, rows)
    flat = re.sub(r"\s+", " ", text)
    for m in PROSE.finditer(flat):
        row = keys.get(m.group(1))
        if not row:
            continue
        got = doc_value(m.group(2), m.group(3), m.group(4), row["unit"])
        checked += 1
        if got != row["value"]:
            fail("%s: \"%s\" but %s is %d %s" % (rel, m.group(0), row["key"], row["value"], row["unit"]))
    return checked


def check_tables(rel, text, rows):
    checked = 0
    keys = keys_for(rel, rows)
    default_col = None
    for line in text.splitlines():
        if not line.startswith("|"):
            default_col = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if default_col is None:
            default_col = cells.index("default") if "default" in cells else -1
            continue
        m = re.fullmatch(r"`([a-z_.]+)`", cells[0])
        if default_col < 1 or not m or m.group(1) not in keys or len(cells) <= default_col:
            continue
        row = keys[m.group(1)]
        cell = cells[default_col].strip("`")
        n = re.fullmatch(NUMBER, cell)
        got = doc_value(n.group(1), n.group(2), n.group(3), row["unit"]) if n else None
        checked += 1
        if got != row["value"]:
            fail("%s: table row %s says %s but %s is %d" % (rel, cells[0], cells[default_col],
                                                          row["key"], row["value"]))
    return checked


def expand(template, rows):
    def one(m):
        row = rows.get(m.group(1))
        if not row:
            raise KeyError("PHRASES names %s, which tailor config --defaults does not list" % m.group(1))
        unit = m.group(2) or ""
        return "%g" % (row["value"] / SCALE.get(row["unit"], COUNT)[unit])
    return re.sub(r"\{([A-Z0-9_]+)(?::(\w+))?\}", one, template)


def check_phrases(texts, rows):
    for rel, template in PHRASES:
        want = expand(template, rows)
        flat = re.sub(r"\s+", " ", texts.get(rel, ""))
        if want not in flat:
            fail("%s: lacks \"%s\" (PHRASES: \"%s\"); the docs give another number, "
                 "or were reworded (then reword PHRASES too)" % (rel, want, template))
    return len(PHRASES)


def check_serve_help(rows):
    """`tailor serve --help` lists the server section: its numeric keys must
    be exactly the "server.*" rows, with their defaults."""
    listed = {}
    for line in run("serve", "--help").splitlines():
        m = re.match(r"  ([a-z_]+)\s+(-?\d+)\s+\S", line)
        if m:
            listed["server." + m.group(1)] = int(m.group(2))
    want = {r["key"]: r["value"] for r in rows.values() if r["key"].startswith("server.")}
    if listed != want:
        fail("tailor serve --help lists %s, the table has %s" % (sorted(listed.items()), sorted(want.items())))


def main():
    rows = load_rows()
    texts = docs()
    prose = sum(check_prose(rel, text, rows) for rel, text in texts.items())
    tables = sum(check_tables(rel, text, rows) for rel, text in texts.items())
    phrases = check_phrases(texts, rows)
    check_serve_help(rows)
    # The test must be looking: a parser that stopped matching would pass.
    if prose < 10 or tables < 20:
        fail("only %d key mentions and %d table rows found: the patterns no longer match the docs"
             % (prose, tables))
    print("%d rows; %d numbers after a key, %d table rows, %d sentences checked; %d wrong"
          % (len(rows), prose, tables, phrases, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
