"""pg_upgrade_test.py: upgrades and restores of one PostgreSQL database
under `tailor serve` nodes.  The test starts its own PostgreSQL 15
(tests/pg/pg_kit.py):

- a database in the layout the builds of 4 December left (the owed mark
  on the events, an index named events_owed) is upgraded at a node's open:
  writes are acknowledged (they failed: "events_owed" is an index) and the
  marks a dead node left are owed in the table;
- `tailor stats` beside the nodes does not upgrade an older one (the
  older nodes would be refused at their restart);
- a database of a newer schema is refused at open, before this build's
  script touches it;
- a database restored from pg_dump in the same cluster, while a node kept
  its checkpoint from after the dump: another node writes first, so the
  checkpoint's position is in the log again with other events (one with
  the lost event's transaction id, as a point-in-time restore can give);
  the node's checkpoint is refused and its index is the other node's (it
  served the lost events' customers and never applied the new ones).
"""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pg"))

from pg_kit import Postgres  # noqa: E402
from serve_kit import ADMIN, TAILOR, TMP, Checks, Server, result  # noqa: E402


def events(start, n, who):
    """n views and purchases of `who`'s customers, with message ids."""
    out = []
    for i in range(start, start + n):
        e = {"type": "view", "item": "sku%d" % (i % 17), "anon": "%s-a%d" % (who, i % 7),
             "customer": "%s-c%d" % (who, i % 5), "session": "%s-s%d" % (who, i % 9),
             "message_id": "%s-m%d" % (who, i)}
        if i % 10 == 0:
            del e["item"]
            e.update(type="purchase", order_id="%s-o%d" % (who, i),
                     items=[{"id": "sku1", "price": 10}])
        out.append(e)
    return out


def send(node, evs):
    c = node.connect()
    c.call("auth", token=ADMIN)
    acks = [result(c.call("events", events=evs[i:i + 25])) is not None
            for i in range(0, len(evs), 25)]
    c.close()
    return all(acks)


def stats(node):
    c = node.connect()
    c.call("auth", token=ADMIN)
    r = result(c.call("stats")) or {}
    c.close()
    return r


def older_layout(ck, pg):
    n = Server(db=pg.url)
    try:
        ck.check("a first node creates the schema", send(n, events(0, 20, "old")))
        n.stop()
        # The layout of 4 December: the mark on the events, an index named
        # events_owed, version 1; a node died before its triggers of 1 and 2.
        pg.psql("DROP TABLE events_owed; ALTER TABLE events ADD COLUMN triggers_owed timestamptz;"
                "CREATE INDEX events_owed ON events(triggers_owed) WHERE triggers_owed IS NOT NULL;"
                "UPDATE events SET triggers_owed = now() + interval '1 hour' WHERE seq IN (1, 2);"
                "UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        # A look from the new build beside the older nodes upgrades nothing
        # (they would be refused at their restart).
        look = subprocess.run([TAILOR, "stats", "--db", pg.url, "--strategies",
                               os.path.join(n.dir, "strategies")], capture_output=True, text=True)
        ck.check("stats beside the nodes refuses an older schema, saying what upgrades it",
                 look.returncode != 0 and "older than this build (2): a node of this build "
                 "upgrades it" in look.stderr, look.stderr[-800:])
        ck.check("and leaves it as it was",
                 pg.psql("SELECT relkind FROM pg_class WHERE relname = 'events_owed'") == "i" and
                 pg.psql("SELECT value FROM meta WHERE key = 'schema_version'") == "1")
        n.start()
        ck.check("the upgraded database takes writes", send(n, events(20, 30, "old")),
                 n.read_log().decode(errors="replace")[-1500:])
        ck.check("the log holds them", pg.psql("SELECT count(*) FROM events") == "50",
                 pg.psql("SELECT count(*) FROM events"))
        ck.check("events_owed is the table, the old index renamed",
                 pg.psql("SELECT relname || ':' || relkind::text FROM pg_class WHERE relname IN "
                         "('events_owed', 'events_triggers_owed') ORDER BY 1")
                 == "events_owed:r\nevents_triggers_owed:i",
                 pg.psql("SELECT relname, relkind FROM pg_class WHERE relname LIKE 'events%'"))
        ck.check("the dead node's marks are owed in the table",
                 pg.psql("SELECT seqs FROM events_owed WHERE 1 = ANY(seqs)") == "{1,2}" and
                 pg.psql("SELECT count(*) FROM events WHERE triggers_owed IS NOT NULL") == "0",
                 pg.psql("SELECT * FROM events_owed"))
        ck.check("schema version 2",
                 pg.psql("SELECT value FROM meta WHERE key = 'schema_version'") == "2")
        n.stop()

        # A newer schema: refused, and this build's script not run on it
        # (it would have made the index again).
        pg.psql("UPDATE meta SET value = '3' WHERE key = 'schema_version';"
                "DROP INDEX events_session")
        try:
            n.start(deadline=20)
            refused = ""
            n.stop()
        except RuntimeError as e:
            refused = str(e)
        ck.check("a newer schema is refused, saying so",
                 "schema version 3 is newer than this build (2)" in refused, refused[-800:])
        ck.check("and left as it was",
                 pg.psql("SELECT count(*) FROM pg_class WHERE relname = 'events_session'") == "0")
        pg.psql("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    finally:
        n.cleanup()


def restored(ck, pg):
    d = tempfile.mkdtemp(prefix="serve", dir=TMP)
    a = Server(db=pg.url, tmpdir=d, engine={"index": {"checkpoint": os.path.join(d, "a.ckpt")}})
    b = None
    try:
        ck.check("node a takes the first events", send(a, events(0, 100, "base")))
        dump = os.path.join(pg.dir, "tailor.dump")
        pg.dump(dump)
        ck.check("and more after the dump", send(a, events(100, 100, "lost")))
        ck.check("node a stops and writes its checkpoint",
                 a.stop() == 0 and os.path.exists(os.path.join(a.dir, "a.ckpt")))
        lost_xid = pg.psql("SELECT xid FROM events WHERE seq = 200")
        pg.restore(dump)
        ck.check("the restored log ends before node a's checkpoint",
                 pg.psql("SELECT count(*) FROM events") == "100")
        # Node b comes back first and takes the traffic: the seqs of the
        # lost events are taken again, by others.
        b = Server(db=pg.url)
        ck.check("node b writes after the restore", send(b, events(200, 130, "new")))
        # A base backup restored to a point in time gives the transaction
        # ids after it again: the event now at node a's position may have
        # the lost one's.
        pg.psql("UPDATE events SET xid = '%s' WHERE seq = 200" % lost_xid)
        a.start()
        sa, sb = stats(a), stats(b)
        ck.check("node a's index is the restored log's, as node b's",
                 sa.get("index") == sb.get("index") and sa.get("index", {}).get("people") == 24,
                 (sa.get("index"), sb.get("index")))
        log = a.read_log().decode(errors="replace").split("ready:")[-2]
        ck.check("node a says its checkpoint was not used", "rebuilding from the store" in log,
                 log[-1500:])
    finally:
        a.cleanup()
        if b:
            b.cleanup()


def main():
    ck = Checks()
    with Postgres() as pg:
        ck.run(older_layout, ck, pg)
    with Postgres() as pg:
        ck.run(restored, ck, pg)
    return ck.done()


if __name__ == "__main__":
    sys.exit(main())
