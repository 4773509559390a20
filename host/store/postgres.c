/*
** postgres.c: the PostgreSQL store (store.h), the log that several tailor
** nodes share.  Same tables as SQLite's, in PostgreSQL's dialect, through
** libpq; created on first open under an advisory lock, so nodes starting
** together do not race.
**
** The log's order.  A row's seq comes from a sequence when its transaction
** inserts it, but transactions commit in another order: a reader that asks
** for "seq > last seen" skips the rows of a transaction that took a smaller
** seq and committed after the reader looked.  So every row also carries the
** id of the transaction that wrote it (xid, pg_current_xact_id()), and the
** log is read only below pg_snapshot_xmin(pg_current_snapshot()), the
** oldest transaction still running: every transaction below it has
** committed or aborted, so no row can appear there any more.  The order is
** (xid, seq), the same for every node; a reader's position is the seq of
** the last row it applied, whose xid the store looks up (rows are never
** deleted from the log: erasure empties them, see forget).
**
** Writers NOTIFY tailor_log in their transaction (delivered at commit); a
** follower LISTENs on a connection of its own (store_wait).
**
** The outbox is shared: a claim takes due rows with FOR UPDATE SKIP LOCKED,
** so two nodes never claim one row, and leases them until lease_until.
*/
#include "store/store_impl.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/defaults.h"
#include "core/util.h"

typedef struct pg {
  store base; /* first: a store * is a pg * */
  PGconn *c;
  PGconn *listen; /* store_wait's connection, opened on first wait */
  char *url;
  int in_tx;
  int begin_due; /* BEGIN not sent yet: it goes with the first statement */
  int owed;      /* appended events owe their triggers (store_triggers_owed) */
  /* Batches whose triggers are done (store_triggers_done), not deleted from
     events_owed yet: "seq,seq,..." of their events, since done_ms.  The
     DELETE goes with the next COMMIT that sends anything (pg_commit,
     pg_append_commit), or on its own once idle (pg_triggers_flush). */
  strbuf done;
  int64_t done_ms;
  /* done's length when this transaction began: the marks past it are the
     transaction's own, which count only if it commits (a failed COMMIT or
     a rollback drops them: their events stay owed). */
  size_t done_kept;
  int lazy; /* this transaction's COMMIT need not wait for the WAL (pg_commit) */
  /* The first page of the scan from prefetch_after, read in the commit's
     round trip (pg_append_commit) for the scan that follows it. */
  PGresult *prefetch;
  int64_t prefetch_after, prefetch_ms;
  _Atomic int pid;          /* c's backend process */
  const _Atomic int *writer; /* a reader's: the writer's backend (pg_wait) */
  /* One log position's xid (pg_scan: the next scan starts where the last
     ended without asking for it again); pos_seq 0: none known. */
  int64_t pos_seq;
  char pos_xid[32];
} pg;

static const store_ops pg_ops;

/* The schema, created once per database (the advisory lock keeps two
   nodes from creating it at the same time). */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS events("
    "  seq bigserial PRIMARY KEY,"
    "  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),"
    "  ts bigint NOT NULL,"
    "  type text NOT NULL,"
    "  customer text, anon text, session text,"
    "  body text NOT NULL,"
    "  msg_id text UNIQUE);"
    "CREATE INDEX IF NOT EXISTS events_pos ON events(xid, seq);"
    /* The builds of 4 December kept the owed mark on the events
       (events.triggers_owed) with an index named events_owed, which
       CREATE TABLE IF NOT EXISTS below took for the table and skipped:
       every write failed ("events_owed" is an index).  Their marks move
       to the table (a node that died between its two commits left them),
       and the index keeps its use under another name for an older node
       still running.  The column stays: such a node writes it. */
    "DO $$ BEGIN"
    "  IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('events_owed')) = 'i' THEN"
    "    ALTER INDEX events_owed RENAME TO events_triggers_owed;"
    "    CREATE TABLE events_owed("
    "      id bigserial PRIMARY KEY, seqs bigint[] NOT NULL,"
    "      since timestamptz NOT NULL DEFAULT now());"
    "    INSERT INTO events_owed(seqs, since)"
    "      SELECT array_agg(seq ORDER BY seq), triggers_owed FROM events"
    "      WHERE triggers_owed IS NOT NULL GROUP BY triggers_owed;"
    "    UPDATE events SET triggers_owed = NULL WHERE triggers_owed IS NOT NULL;"
    "  END IF;"
    "END $$;"
    /* Events whose triggers have not run yet (store_triggers_owed): one
       row per appended batch, its seqs and since when.  A narrow table of
       a few live rows, not a mark on each event: clearing a mark on the
       events table rewrote every event row and its seven index entries. */
    "CREATE TABLE IF NOT EXISTS events_owed("
    "  id bigserial PRIMARY KEY, seqs bigint[] NOT NULL,"
    "  since timestamptz NOT NULL DEFAULT now());"
    "CREATE INDEX IF NOT EXISTS events_customer ON events(customer) WHERE customer IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS events_anon ON events(anon) WHERE anon IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS events_session ON events(session) WHERE session IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS items("
    "  id text PRIMARY KEY, body text NOT NULL, updated bigint NOT NULL,"
    "  deleted int NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS customers("
    "  id text PRIMARY KEY, email text, phone text,"
    "  consent_email int NOT NULL DEFAULT 0, consent_sms int NOT NULL DEFAULT 0,"
    "  body text NOT NULL, created bigint NOT NULL, updated bigint NOT NULL);"
    "CREATE TABLE IF NOT EXISTS identities("
    "  anon text PRIMARY KEY, customer text NOT NULL, linked bigint NOT NULL);"
    "CREATE INDEX IF NOT EXISTS identities_customer ON identities(customer);"
    /* An anonymous id's link is its first customer's, as the index has it
       (SQLite's migration 9 -> 10 in store.c).  Builds before 7 December
       moved it to each later customer signing in on the same browser, so
       the second one's export listed the first one's events before login
       and the first one's erasure left them.  Taken again from the log,
       in its order, once (meta's identities_first_link says it was). */
    "DO $$ BEGIN"
    "  IF NOT EXISTS (SELECT 1 FROM meta WHERE key = 'identities_first_link') THEN"
    "    UPDATE identities i SET customer = f.customer, linked = f.ts FROM ("
    "      SELECT DISTINCT ON (anon) anon, customer, ts FROM events"
    "      WHERE anon IS NOT NULL AND customer IS NOT NULL ORDER BY anon, xid, seq) f"
    "    WHERE f.anon = i.anon AND f.customer <> i.customer;"
    "    INSERT INTO meta VALUES ('identities_first_link', '1');"
    "  END IF;"
    "END $$;"
    "CREATE TABLE IF NOT EXISTS outbox("
    "  id bigserial PRIMARY KEY, key text NOT NULL UNIQUE,"
    "  customer text, channel text NOT NULL, template text NOT NULL,"
    "  vars text NOT NULL DEFAULT '{}', due bigint NOT NULL,"
    "  state text NOT NULL DEFAULT 'pending', attempts int NOT NULL DEFAULT 0,"
    "  last_error text, created bigint NOT NULL, updated bigint NOT NULL,"
    "  next_at bigint NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, due);"
    "CREATE TABLE IF NOT EXISTS outbox_sent("
    "  key text NOT NULL, channel text NOT NULL, customer text, sent bigint NOT NULL,"
    "  PRIMARY KEY (key, channel));"
    "CREATE TABLE IF NOT EXISTS exposures("
    "  experiment text NOT NULL, unit text NOT NULL, variant text NOT NULL,"
    "  ts bigint NOT NULL, PRIMARY KEY (experiment, unit));"
    "CREATE TABLE IF NOT EXISTS coupons("
    "  code text PRIMARY KEY, tier text NOT NULL, percent double precision,"
    "  customer text, anon text, issued bigint NOT NULL, expires bigint NOT NULL,"
    "  redeemed bigint, order_id text);"
    "CREATE INDEX IF NOT EXISTS coupons_customer ON coupons(customer) WHERE customer IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS coupons_anon ON coupons(anon) WHERE anon IS NOT NULL;"
    "CREATE TABLE IF NOT EXISTS contacts("
    "  unit text NOT NULL, channel text NOT NULL, campaign text NOT NULL DEFAULT '',"
    "  ts bigint NOT NULL);"
    "CREATE INDEX IF NOT EXISTS contacts_unit ON contacts(unit, ts);"
    /* Which kind of id the unit is.  Rows of earlier builds are told
       apart as SQLite's migration 8 -> 9 does (store.c): a customer's when
       the id is one (a profile or a login), an anonymous id's otherwise.
       Read all as a customer's, a visitor's contacts before the upgrade
       were left by the erasure of the customer they signed in as, and
       missing from their export. */
    "DO $$ BEGIN"
    "  IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'contacts'::regclass"
    "                 AND attname = 'is_anon' AND NOT attisdropped) THEN"
    "    ALTER TABLE contacts ADD COLUMN is_anon boolean NOT NULL DEFAULT false;"
    "    UPDATE contacts SET is_anon = true WHERE unit NOT IN (SELECT id FROM customers)"
    "      AND unit NOT IN (SELECT customer FROM identities)"
    "      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.customer = contacts.unit);"
    "  END IF;"
    "END $$;"
    "CREATE TABLE IF NOT EXISTS consents("
    "  id text PRIMARY KEY, customer text NOT NULL, anon text, email text NOT NULL,"
    "  purpose text NOT NULL, text text NOT NULL, source text NOT NULL,"
    "  requested bigint NOT NULL, expires bigint NOT NULL,"
    "  state text NOT NULL DEFAULT 'pending', confirmed bigint);"
    "CREATE INDEX IF NOT EXISTS consents_customer ON consents(customer);"
    "CREATE INDEX IF NOT EXISTS consents_anon ON consents(anon) WHERE anon IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS consents_email ON consents(email, requested);"
    "CREATE TABLE IF NOT EXISTS meta(key text PRIMARY KEY, value text);"
    "INSERT INTO meta VALUES ('schema_version', '2') "
    "  ON CONFLICT (key) DO UPDATE SET value = '2' WHERE meta.value::int < 2;";

/* The schema's version, raised with every change of it: every build checks
   it at open and refuses a newer one.  1 covered four schemas (coupons,
   the owed mark, the owed table, consents added), so a build of any of
   them opened a newer database, and wrote beside it without knowing its
   tables (an erasure left the consents with the address); 2 is the
   schema above. */
#define PG_SCHEMA_VERSION 2

/* The version of the database's schema (0: none yet), read before this
   build changes anything in it (its meta table created first if need be). */
static const char meta_sql[] = "CREATE TABLE IF NOT EXISTS meta(key text PRIMARY KEY, value text)";
static const char version_sql[] =
    "SELECT coalesce(max(value::int), 0) FROM meta WHERE key = 'schema_version'";

/* Fill `err` with "<what>: <PostgreSQL's message>"; returns TAILOR_ESTORE. */
static int pg_fail(tailor_error *err, pg *p, const PGresult *r, const char *what) {
  const char *m = r ? PQresultErrorMessage(r) : NULL;
  if (!m || !*m) m = p && p->c ? PQerrorMessage(p->c) : "cannot allocate";
  char msg[400];
  snprintf(msg, sizeof msg, "%s", m);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = '\0';
  return util_fail(err, TAILOR_ESTORE, NULL, "%s: %s", what, msg);
}

/* What the server says outside a statement (its FATAL goodbye when it
   stops) reaches the caller as the next statement's error, not stderr. */
static void quiet(void *ud, const char *message) {
  (void)ud;
  (void)message;
}

/*
** A connection to `url` with PG_CONNECT_TIMEOUT_S unless the URL sets its
** own connect_timeout (it comes after, so it wins): an address that does
** not answer fails the open instead of holding the writer for minutes.
*/
static PGconn *connect_to(const char *url) {
  char timeout[16];
  snprintf(timeout, sizeof timeout, "%d", DEF_PG_CONNECT_TIMEOUT_S);
  const char *const keys[] = {"connect_timeout", "dbname", NULL};
  const char *const values[] = {timeout, url, NULL};
  PGconn *c = PQconnectdbParams(keys, values, 1);
  if (c) PQsetNoticeProcessor(c, quiet, NULL);
  return c;
}

/*
** Before the first statement of a transaction (or one outside any), a
** connection that broke is reset, so a node rides out a restart of
** PostgreSQL.  One that the server closed while it was idle (a restart,
** an idle timeout) still says CONNECTION_OK until it is read: its socket
** is readable although nothing was asked, so it is read first, which
** finds the end of it, instead of failing the request that comes next.
*/
static void revive(pg *p) {
  if (p->in_tx && !p->begin_due) return;
  for (int i = 0; i < 4 && PQstatus(p->c) == CONNECTION_OK; i++) {
    struct pollfd fd = {PQsocket(p->c), POLLIN, 0};
    if (fd.fd < 0 || poll(&fd, 1, 0) <= 0 || !PQconsumeInput(p->c)) break;
  }
  if (PQstatus(p->c) != CONNECTION_OK) {
    PQreset(p->c);
    atomic_store(&p->pid, PQbackendPID(p->c));
  }
}

/*
** Statements sent together in pipeline mode (libpq 14 and later): one
** round trip for all.  Each statement's result lands in its `res` (NULL
** when none came: the connection broke); after a failure PostgreSQL skips
** the rest of the pipeline (PGRES_PIPELINE_ABORTED), so a transaction's
** statements and its COMMIT commit all or none of them.  Returns whether
** all of it was sent (0: none of it reached the server, or not all).
*/
typedef struct pg_stmt {
  const char *sql;
  int n;
  const char *const *v;
  PGresult *res;
} pg_stmt;

static int pipeline(pg *p, pg_stmt *s, int k) {
  PGconn *c = p->c;
  if (!PQenterPipelineMode(c)) return 0;
  int sent = 1;
  for (int i = 0; sent && i < k; i++)
    sent = PQsendQueryParams(c, s[i].sql, s[i].n, NULL, s[i].v, NULL, NULL, 0);
  if (sent && (sent = PQpipelineSync(c))) {
    /* Each statement's results end with a NULL; the sync's result ends all. */
    for (int q = 0; q <= k;) {
      PGresult *x = PQgetResult(c);
      if (!x) {
        if (PQstatus(c) != CONNECTION_OK) break;
        q++;
        continue;
      }
      if (PQresultStatus(x) == PGRES_PIPELINE_SYNC) {
        PQclear(x);
        break;
      }
      if (q < k && !s[q].res) s[q].res = x;
      else PQclear(x);
    }
  }
  PQexitPipelineMode(c);
  return sent;
}

#define PG_PREFETCH_MS 100

static void drop_prefetch(pg *p) {
  PQclear(p->prefetch);
  p->prefetch = NULL;
}

static int stmt_ok(const pg_stmt *s) {
  ExecStatusType st = s->res ? PQresultStatus(s->res) : PGRES_FATAL_ERROR;
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/*
** A transaction's BEGIN goes with its first statement, in one round trip:
** a script (the simple protocol) is sent as "BEGIN;" and the script; a
** statement with parameters goes in a pipeline after BEGIN.  Returns the
** statement's result, BEGIN's when that failed, or NULL.
*/
static PGresult *run_begun(pg *p, const char *sql, int n, const char *const *v,
                           tailor_error *err, const char *what) {
  if (!n) {
    size_t len = strlen(sql);
    char *script = malloc(len + 8);
    if (!script) {
      util_fail(err, TAILOR_ENOMEM, NULL, "%s: cannot allocate", what);
      return NULL;
    }
    memcpy(script, "BEGIN;", 6);
    memcpy(script + 6, sql, len + 1);
    PGresult *r = PQexec(p->c, script);
    free(script);
    return r;
  }
  pg_stmt s[2] = {{"BEGIN", 0, NULL, NULL}, {sql, n, v, NULL}};
  pipeline(p, s, 2);
  if (s[0].res && !stmt_ok(&s[0])) {
    /* BEGIN failed: its message, not the aborted statement's. */
    PQclear(s[1].res);
    return s[0].res;
  }
  PQclear(s[0].res);
  return s[1].res;
}

/*
** Run `sql` with `n` text parameters (NULL is SQL NULL).  Returns the
** result (the caller clears it) or NULL with `err` filled.
*/
static PGresult *run(pg *p, const char *sql, int n, const char *const *v,
                     tailor_error *err, const char *what) {
  drop_prefetch(p);
  revive(p);
  PGresult *r;
  if (p->begin_due) {
    r = run_begun(p, sql, n, v, err, what);
    p->begin_due = 0;
  } else {
    /* Without parameters, the simple protocol: a script of statements. */
    r = n ? PQexecParams(p->c, sql, n, NULL, v, NULL, NULL, 0) : PQexec(p->c, sql);
  }
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return r;
  pg_fail(err, p, r, what);
  PQclear(r);
  return NULL;
}

/* run() for statements whose rows do not matter; TAILOR_OK or the code. */
static int exec_params(pg *p, const char *sql, int n, const char *const *v,
                       tailor_error *err, const char *what) {
  PGresult *r = run(p, sql, n, v, err, what);
  if (!r) return TAILOR_ESTORE;
  PQclear(r);
  return TAILOR_OK;
}

static int64_t one_int(pg *p, const char *sql, int n, const char *const *v) {
  PGresult *r = run(p, sql, n, v, NULL, "store");
  int64_t out = -1;
  if (r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  return out;
}

#define I64(buf, x) (snprintf((buf), sizeof(buf), "%" PRId64, (int64_t)(x)), (buf))

static char *pg_meta_get(store *base, const char *key) {
  const char *v[] = {key};
  PGresult *r = run((pg *)base, "SELECT value FROM meta WHERE key=$1", 1, v, NULL, "store");
  char *out = r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? strdup(PQgetvalue(r, 0, 0)) : NULL;
  PQclear(r);
  return out;
}

static int pg_meta_set(store *base, const char *key, const char *value, tailor_error *err) {
  const char *v[] = {key, value};
  return value ? exec_params((pg *)base,
                             "INSERT INTO meta(key,value) VALUES($1,$2) "
                             "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                             2, v, err, "store: meta")
               : exec_params((pg *)base, "DELETE FROM meta WHERE key=$1", 1, v, err,
                             "store: meta");
}

static int pg_exec(store *base, const char *sql, tailor_error *err) {
  return exec_params((pg *)base, sql, 0, NULL, err, "store");
}

static int pg_triggers_flush(store *base, int older_ms, tailor_error *err);

static void pg_close(store *base) {
  pg *p = (pg *)base;
  if (!p) return;
  if (p->c && p->done.n && !p->in_tx && PQstatus(p->c) == CONNECTION_OK)
    pg_triggers_flush(base, 0, NULL); /* no batch left owing for another node to run */
  if (p->c) PQfinish(p->c);
  if (p->listen) PQfinish(p->listen);
  buf_free(&p->done);
  PQclear(p->prefetch);
  free(p->url);
  free(p);
}

store *store_pg_open(const char *url, const store_options *opt, tailor_error *err) {
  pg *p = calloc(1, sizeof *p);
  if (!p || !(p->url = strdup(url))) {
    free(p);
    util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate");
    return NULL;
  }
  p->base.ops = &pg_ops;
  p->c = connect_to(url);
  if (!p->c || PQstatus(p->c) != CONNECTION_OK) {
    pg_fail(err, p, NULL, "store: cannot connect to PostgreSQL");
    pg_close(&p->base);
    return NULL;
  }
  atomic_store(&p->pid, PQbackendPID(p->c));
  /* Short statements, no notices on stderr (connect_to); an acknowledged
     event must survive PostgreSQL's crash, so commits wait for the WAL's
     flush (synchronous_commit on, the server's default, is kept as is). */
  int rc = exec_params(p, "SET client_min_messages = warning", 0, NULL, err, "store");
  /* A newer schema is refused before this build's script runs on it: the
     script is written for the versions before it. */
  int64_t v = -1;
  if (!rc && !(opt && opt->readonly)) {
    rc = exec_params(p, "BEGIN", 0, NULL, err, "store: schema") ||
         exec_params(p, "SELECT pg_advisory_xact_lock(7300)", 0, NULL, err, "store: schema") ||
         exec_params(p, meta_sql, 0, NULL, err, "store: schema");
    if (!rc && (v = one_int(p, version_sql, 0, NULL)) < 0)
      rc = pg_fail(err, p, NULL, "store: cannot read the schema version");
    /* Opened beside the nodes (store.lock false), an older database is
       not upgraded under them: the nodes of the older build would be
       refused when they restart, as SQLite's commands beside leave
       its upgrade to its writer (store.c, migrate). */
    if (!rc && opt && opt->no_lock && v > 0 && v < PG_SCHEMA_VERSION)
      rc = util_fail(err, TAILOR_ESTORE, NULL,
                     "store: schema version %lld is older than this build (%d): a node of "
                     "this build upgrades it when it starts (tailor serve, ingest or "
                     "checkpoint), not a command beside the nodes (store.lock false: stats, "
                     "report, outbox, export-customer)",
                     (long long)v, PG_SCHEMA_VERSION);
    if (!rc && v <= PG_SCHEMA_VERSION)
      rc = exec_params(p, schema, 0, NULL, err, "store: schema") ||
           exec_params(p, "COMMIT", 0, NULL, err, "store: schema");
  } else if (!rc) {
    v = one_int(p, version_sql, 0, NULL); /* -1 without a schema yet */
  }
  if (rc || v > PG_SCHEMA_VERSION) PQclear(PQexec(p->c, "ROLLBACK"));
  if (rc) {
    pg_close(&p->base);
    return NULL;
  }
  if (v > PG_SCHEMA_VERSION) {
    util_fail(err, TAILOR_ESTORE, NULL,
              "store: schema version %lld is newer than this build (%d): upgrade this node "
              "(docs/scale-out.md, \"Upgrades and backups\")", (long long)v,
              PG_SCHEMA_VERSION);
    pg_close(&p->base);
    return NULL;
  }
  /* The log orders events by the transaction ids of this cluster: a log
     copied from another one (pg_dump and restore, a logical-replication
     upgrade) carries xids this cluster has not reached, and its events
     would stay invisible to every node, silently.  Refused, with why. */
  if (one_int(p, "SELECT (max(xid) >= pg_snapshot_xmax(pg_current_snapshot()))::int FROM events", 0,
              NULL) == 1) {
    util_fail(err, TAILOR_ESTORE, NULL,
              "store: the event log's transaction ids come from another PostgreSQL cluster "
              "(a dump restored or a replication upgrade?); its events would never be read "
              "(docs/scale-out.md, \"Moving the store\")");
    pg_close(&p->base);
    return NULL;
  }
  return &p->base;
}

static int pg_schema_version(store *base) {
  return (int)one_int((pg *)base, "SELECT value::int FROM meta WHERE key = 'schema_version'",
                      0, NULL);
}

/* Each node names its own checkpoint (index.checkpoint). */
static char *pg_checkpoint_path(store *base) { return NULL; }

static store *pg_open_reader(store *base) {
  store_options ro = {0, 0, 1, 1};
  pg *r = (pg *)store_pg_open(((pg *)base)->url, &ro, NULL);
  if (r) r->writer = &((pg *)base)->pid;
  return r ? &r->base : NULL;
}

static int pg_wait(store *base, int timeout_ms, tailor_error *err) {
  pg *p = (pg *)base;
  if (!p->listen || PQstatus(p->listen) != CONNECTION_OK) {
    if (p->listen) PQfinish(p->listen);
    p->listen = connect_to(p->url);
    PGresult *r = p->listen && PQstatus(p->listen) == CONNECTION_OK
                      ? PQexec(p->listen, "LISTEN tailor_log")
                      : NULL;
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
      util_fail(err, TAILOR_ESTORE, NULL, "store: cannot listen: %s",
                p->listen ? PQerrorMessage(p->listen) : "cannot allocate");
      return TAILOR_ESTORE;
    }
    return 1; /* anything may have happened while nobody listened */
  }
  /* A reader's writer (the same node) applies its own commits itself
     (follow.c): their notifications are not news, only others' are, or
     the timeout. */
  int64_t end = util_mono_ns() / 1000000 + timeout_ms;
  for (;;) {
    int woken = 0;
    PGnotify *n;
    while ((n = PQnotifies(p->listen))) {
      if (!p->writer || n->be_pid != atomic_load(p->writer)) woken = 1;
      PQfreemem(n);
    }
    if (woken) return 1;
    int64_t left = end - util_mono_ns() / 1000000;
    if (left <= 0) return 0;
    struct pollfd fd = {PQsocket(p->listen), POLLIN, 0};
    if (poll(&fd, 1, (int)left) > 0 && !PQconsumeInput(p->listen)) {
      util_fail(err, TAILOR_ESTORE, NULL, "store: lost the listening connection: %s",
                PQerrorMessage(p->listen));
      return TAILOR_ESTORE;
    }
  }
}

static int pg_has_seq(store *base, int64_t seq) {
  char b[24];
  const char *v[] = {I64(b, seq)};
  return seq == 0 || one_int((pg *)base, "SELECT 1 FROM events WHERE seq = $1", 1, v) == 1;
}

/* The event at seq's transaction id, time and type (FNV-1a): a dump
   restored into the same cluster keeps the ids of its events while newer
   events get newer ones; a base backup restored to a point in time gives
   the ids after that point again, to events of other times.  An erasure
   keeps all three. */
static int pg_seq_token(store *base, int64_t seq, uint64_t *token, tailor_error *err) {
  char b[24];
  const char *v[] = {I64(b, seq)};
  PGresult *r = run((pg *)base, "SELECT xid::text || '/' || ts || '/' || type FROM events "
                    "WHERE seq = $1", 1, v, err, "store: checkpoint position");
  if (!r) return TAILOR_ESTORE;
  /* An absent row (has_seq refuses that position first) leaves 0. */
  if (PQntuples(r) == 1) {
    uint64_t h = 1469598103934665603ull;
    for (const char *c = PQgetvalue(r, 0, 0); *c; c++)
      h = (h ^ (unsigned char)*c) * 1099511628211ull;
    *token = h;
  }
  PQclear(r);
  return TAILOR_OK;
}

static int pg_has_msg(store *base, const char *msg_id) {
  const char *v[] = {msg_id};
  int64_t n = one_int((pg *)base, "SELECT count(*) FROM events WHERE msg_id = $1", 1, v);
  return n < 0 ? -1 : n > 0;
}

static int64_t pg_log_behind(store *base, int64_t after) {
  char b[24];
  const char *v[] = {I64(b, after)};
  return one_int((pg *)base,
                 "SELECT count(*) FROM events WHERE (xid, seq) > "
                 "(SELECT coalesce((SELECT xid FROM events WHERE seq = $1), '0'::xid8), $1::bigint)",
                 1, v);
}

/*
** BEGIN waits for the transaction's first statement (run() sends it), so a
** transaction that turns out to have nothing to do (the triggers of events
** that schedule nothing) costs no round trip at all.
*/
static int pg_begin(store *base, tailor_error *err) {
  pg *p = (pg *)base;
  (void)err;
  p->in_tx = p->begin_due = 1;
  p->done_kept = p->done.n;
  return TAILOR_OK;
}

/* The transaction ended without committing: its own done marks go. */
static void drop_tx_marks(pg *p) {
  if (p->done.n > p->done_kept) {
    p->done.n = p->done_kept;
    if (p->done.s) p->done.s[p->done.n] = '\0';
  }
}

#define DONE_SQL "DELETE FROM events_owed WHERE seqs && $1::bigint[]"

/* The done batches' seqs as a bigint[] literal into `lit`; 0 or -1. */
static int done_literal(pg *p, strbuf *lit) {
  buf_putc(lit, '{');
  buf_put(lit, p->done.s, p->done.n);
  buf_putc(lit, '}');
  return lit->oom ? -1 : 0;
}

/*
** COMMIT, in one round trip with what goes with it: the DELETE of the
** batches whose triggers are done (p->done, cleared once committed; when
** the commit fails, the marks this transaction added are dropped, those
** from before kept for the next one) and,
** for a transaction that only writes what a later pass would write again
** (p->lazy: a triggers' transaction, whose events stay owed until it is
** durable), synchronous_commit off, so that it does not wait for the
** WAL's flush (its rows are visible at once; any later durable commit
** flushes it too).  A transaction that sent nothing commits nothing: its
** done batches wait for the next one.
**
** `pre` holds the statements to send before COMMIT (pg_append_commit puts
** its INSERT there), `k` of them, and `post` one to send after it (or
** NULL); their results are left in them for the caller to read and clear.
*/
static int commit_with(pg *p, pg_stmt *pre, int k, pg_stmt *post, tailor_error *err) {
  int lazy = p->lazy;
  p->lazy = 0;
  if (p->begin_due && !k) {
    p->in_tx = p->begin_due = 0;
    return TAILOR_OK;
  }
  pg_stmt s[8];
  int m = 0;
  strbuf lit = {0};
  size_t done = p->done.n;
  if (done && done_literal(p, &lit)) {
    buf_free(&lit);
    /* Not committed: ended, as any commit that fails. */
    if (!p->begin_due && PQstatus(p->c) == CONNECTION_OK) PQclear(PQexec(p->c, "ROLLBACK"));
    p->in_tx = p->begin_due = 0;
    drop_tx_marks(p);
    return util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate");
  }
  const char *dv[] = {lit.s};
  if (p->begin_due) s[m++] = (pg_stmt){"BEGIN", 0, NULL, NULL};
  int first = m;
  for (int i = 0; i < k; i++) s[m++] = pre[i];
  if (done) s[m++] = (pg_stmt){DONE_SQL, 1, dv, NULL};
  if (lazy) s[m++] = (pg_stmt){"SET LOCAL synchronous_commit TO off", 0, NULL, NULL};
  s[m++] = (pg_stmt){"COMMIT", 0, NULL, NULL};
  if (post) s[m] = *post;
  p->in_tx = p->begin_due = 0;
  int sent = pipeline(p, s, m + !!post);
  buf_free(&lit);
  if (post) post->res = s[m].res;
  for (int i = 0; i < k; i++) pre[i].res = s[first + i].res, s[first + i].res = NULL;
  int bad = -1;
  for (int i = 0; i < m && bad < 0; i++)
    if (i >= first && i < first + k ? !stmt_ok(&pre[i - first]) : !stmt_ok(&s[i])) bad = i;
  int rc = TAILOR_OK;
  if (bad >= 0 && sent && PQstatus(p->c) != CONNECTION_OK) {
    /* The connection broke with the COMMIT sent: PostgreSQL may have
       committed it.  Not "nothing stored" then: TAILOR_EIO says so. */
    pg_fail(err, p, NULL, "store: commit");
    char why[sizeof err->message];
    snprintf(why, sizeof why, "%s", err ? err->message : "");
    rc = util_fail(err, TAILOR_EIO, NULL,
                   "%s; the connection broke before PostgreSQL answered the COMMIT, which "
                   "may have committed", why);
  } else if (bad >= 0) {
    pg_fail(err, p, bad >= first && bad < first + k ? pre[bad - first].res : s[bad].res,
            "store: commit");
    /* A statement failed (or none was sent): the transaction is
       aborted, not ended. */
    if (PQstatus(p->c) == CONNECTION_OK) PQclear(PQexec(p->c, "ROLLBACK"));
    rc = TAILOR_ESTORE;
  } else if (strcmp(PQcmdStatus(s[m - 1].res), "COMMIT")) {
    /* COMMIT of a transaction that failed answers ROLLBACK. */
    rc = util_fail(err, TAILOR_ESTORE, NULL, "store: commit: the transaction was rolled back");
  } else if (done) {
    p->done.n = 0; /* deleted (nothing was done since: one thread) */
  }
  /* Not committed (or not known to be): this transaction's own marks go,
     the ones kept from before wait for the next commit. */
  if (rc) drop_tx_marks(p);
  for (int i = 0; i < m; i++) PQclear(s[i].res);
  return rc;
}

static int pg_commit(store *base, tailor_error *err) {
  return commit_with((pg *)base, NULL, 0, NULL, err);
}

static void pg_rollback(store *base) {
  pg *p = (pg *)base;
  if (!p->begin_due) PQclear(PQexec(p->c, "ROLLBACK"));
  p->in_tx = p->begin_due = p->lazy = 0;
  drop_tx_marks(p);
}

/* A consent flag the upsert names, "0"/"1", or NULL to keep the stored one. */
static const char *consent_of(json_t *profile, const char *channel) {
  json_t *c = json_object_get(json_object_get(profile, "consent"), channel);
  return json_is_boolean(c) ? (json_is_true(c) ? "1" : "0") : NULL;
}

static int apply_state(pg *p, const ev *e, tailor_error *err) {
  char ts[24];
  I64(ts, e->ts);
  switch (e->type) {
    case EV_ITEM_UPSERT: {
      char *body = json_dumps(e->object, JSON_COMPACT);
      if (!body) return util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate");
      const char *v[] = {json_string_value(json_object_get(e->object, "id")), body, ts};
      int rc = exec_params(p,
                           "INSERT INTO items(id,body,updated,deleted) VALUES($1,$2,$3,0) "
                           "ON CONFLICT(id) DO UPDATE SET body=excluded.body,"
                           "updated=excluded.updated,deleted=0",
                           3, v, err, "store: write");
      free(body);
      return rc;
    }
    case EV_ITEM_DELETE: {
      const char *v[] = {ts, e->n_lines ? e->lines[0].item : NULL};
      return exec_params(p, "UPDATE items SET deleted=1, updated=$1 WHERE id=$2", 2, v, err,
                         "store: write");
    }
    case EV_CUSTOMER_UPSERT: {
      json_t *c = e->object;
      char *body = json_dumps(c, JSON_COMPACT);
      if (!body) return util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate");
      const char *v[] = {e->customer,
                         json_string_value(json_object_get(c, "email")),
                         json_string_value(json_object_get(c, "phone")),
                         consent_of(c, "email"),
                         consent_of(c, "sms"),
                         body,
                         ts};
      int rc = exec_params(
          p,
          "INSERT INTO customers(id,email,phone,consent_email,consent_sms,body,created,updated) "
          "VALUES($1,$2,$3,coalesce($4::int,0),coalesce($5::int,0),$6,$7,$7) "
          "ON CONFLICT(id) DO UPDATE SET email=coalesce(excluded.email,customers.email),"
          "phone=coalesce(excluded.phone,customers.phone),"
          /* Consent is given for an address (store.c). */
          "consent_email=coalesce($4::int,CASE WHEN excluded.email IS NOT NULL AND "
          "excluded.email IS DISTINCT FROM customers.email THEN 0 ELSE customers.consent_email END),"
          "consent_sms=coalesce($5::int,CASE WHEN excluded.phone IS NOT NULL AND "
          "excluded.phone IS DISTINCT FROM customers.phone THEN 0 ELSE customers.consent_sms END),"
          "body=excluded.body, updated=excluded.updated",
          7, v, err, "store: write");
      free(body);
      return rc;
    }
    default:
      return TAILOR_OK;
  }
}

/* Append one element of a text[] literal (NULL: SQL NULL), quoted, with
   " and \ escaped; the literal is "{" elements "}". */
static void arr_add(strbuf *a, const char *v) {
  if (a->n > 1) buf_putc(a, ',');
  if (!v) {
    buf_puts(a, "NULL");
    return;
  }
  buf_putc(a, '"');
  for (const char *p = v;;) {
    size_t k = strcspn(p, "\"\\");
    buf_put(a, p, k);
    if (!p[k]) break;
    buf_putc(a, '\\');
    buf_putc(a, p[k]);
    p += k + 1;
  }
  buf_putc(a, '"');
}

/*
** A batch of events is one INSERT of arrays (unnest, in the batch's order,
** so the sequence numbers follow it), one round trip however many events:
** the group commit's whole batch travels at once.  A row whose msg_id is
** already stored (a retry) is skipped; RETURNING names the stored ones by
** seq and msg_id, and the batch is walked beside them in seq order: an
** event without a msg_id is always stored, one with a msg_id is stored
** when the next returned row carries it (a retry inside the same batch
** meets the row its first copy made and is skipped).  Then the state of
** the stored ones: catalog and profile rows one statement each (rare),
** identity links as one more array INSERT, the last link of an anon kept.
*/
#define PG_APPEND_COLS 7

static int cmp_seq_rows(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Below the oldest open transaction nothing can change: each page reads
   up to the horizon of its own statement (it only moves up).  The
   position's xid goes out as text under a name of its own: ORDER BY "xid"
   would sort that text. */
#define SCAN_SQL                                                                        \
  "SELECT seq, ts, body, xid::text AS at_xid FROM events "                              \
  "WHERE (xid, seq) > ($1::xid8, $2::bigint) "                                          \
  "AND xid < pg_snapshot_xmin(pg_current_snapshot()) "                                  \
  "ORDER BY events.xid, events.seq LIMIT 2000"

/* The batch as PG_APPEND_COLS array literals; TAILOR_OK or ENOMEM. */
static int append_cols(ev *const *evs, size_t n, strbuf *col, tailor_error *err) {
  int rc = TAILOR_OK;
  for (int c = 0; c < PG_APPEND_COLS; c++) buf_putc(&col[c], '{');
  for (size_t i = 0; i < n && !rc; i++) {
    ev *e = evs[i];
    size_t blen;
    const char *body = ev_body(e, &blen);
    char ts[24];
    const char *v[PG_APPEND_COLS] = {I64(ts, e->ts), ev_type_name(e->type), e->customer, e->anon,
                                     e->session, body, e->msg_id};
    if (!body) rc = -1;
    for (int c = 0; c < PG_APPEND_COLS && !rc; c++) arr_add(&col[c], v[c]);
  }
  for (int c = 0; c < PG_APPEND_COLS; c++) {
    buf_putc(&col[c], '}');
    if (col[c].oom) rc = -1;
  }
  return rc ? util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate") : TAILOR_OK;
}

/* Followers wake when this commits: the stored rows NOTIFY (one
   notification a transaction, PostgreSQL folds the same ones). */
#define APPEND_INSERT                                                                    \
  "WITH ins AS (INSERT INTO events(ts,type,customer,anon,session,body,msg_id) "          \
  "SELECT * FROM unnest($1::bigint[],$2::text[],$3::text[],$4::text[],"                  \
  "$5::text[],$6::text[],$7::text[]) ON CONFLICT (msg_id) DO NOTHING "                   \
  "RETURNING seq, msg_id)"
#define APPEND_OWED                                                                      \
  ", owed AS (INSERT INTO events_owed(seqs) SELECT array_agg(seq) FROM ins "             \
  "HAVING count(*) > 0)"
#define APPEND_ROWS " SELECT seq, msg_id, pg_notify('tailor_log', '') FROM ins"

static const char *append_sql(const pg *p) {
  return p->owed ? APPEND_INSERT APPEND_OWED APPEND_ROWS : APPEND_INSERT APPEND_ROWS;
}

/*
** The INSERT's answer: each event's seq (0 and `dup` set for one whose
** message id was stored before), matched by message id in seq order.
*/
static int take_rows(const PGresult *r, ev *const *evs, size_t n, int64_t *seqs,
                     tailor_error *err) {
  size_t got = (size_t)PQntuples(r), j = 0;
  int64_t *rows = malloc((got ? got : 1) * 2 * sizeof *rows); /* seq, row */
  if (!rows) return util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate");
  for (size_t k = 0; k < got; k++) {
    rows[2 * k] = strtoll(PQgetvalue(r, (int)k, 0), NULL, 10);
    rows[2 * k + 1] = (int64_t)k;
  }
  qsort(rows, got, 2 * sizeof *rows, cmp_seq_rows);
  int lost = 0; /* an event without msg_id that no row answers */
  for (size_t i = 0; i < n; i++) {
    ev *e = evs[i];
    int stored = 0;
    if (j < got) {
      int k = (int)rows[2 * j + 1];
      stored = !e->msg_id || (!PQgetisnull(r, k, 1) && !strcmp(PQgetvalue(r, k, 1), e->msg_id));
    }
    lost |= !stored && !e->msg_id;
    if (seqs) seqs[i] = stored ? rows[2 * j] : 0;
    j += stored;
    e->dup = !stored;
  }
  free(rows);
  if (j != got || lost)
    return util_fail(err, TAILOR_ESTORE, NULL,
                     "store: append: %zu rows stored for %zu events matched", got, j);
  return TAILOR_OK;
}

/* Whether an event changes a table beside the log (apply_state, or the
   identities its customer and anon link). */
static int writes_state(const ev *e) {
  return e->type == EV_ITEM_UPSERT || e->type == EV_ITEM_DELETE ||
         e->type == EV_CUSTOMER_UPSERT || (e->customer && e->anon);
}

/* The state the stored events change. */
static int apply_states(pg *p, ev *const *evs, size_t n, tailor_error *err) {
  int rc = TAILOR_OK;
  strbuf ids[3] = {{0}};
  for (int c = 0; c < 3; c++) buf_putc(&ids[c], '{');
  size_t links = 0;
  for (size_t i = 0; i < n && !rc; i++) {
    ev *e = evs[i];
    if (e->dup) continue;
    if ((rc = apply_state(p, e, err))) break;
    /* identify links its ids; any other event that names both does too.
       Only an anon's first link of the batch is written (one row a key;
       an anon linked already keeps its customer). */
    if (!e->customer || !e->anon) continue;
    int earlier = 0;
    for (size_t k = 0; k < i && !earlier; k++)
      earlier = !evs[k]->dup && evs[k]->customer && evs[k]->anon && !strcmp(evs[k]->anon, e->anon);
    if (earlier) continue;
    char ts[24];
    arr_add(&ids[0], e->anon);
    arr_add(&ids[1], e->customer);
    arr_add(&ids[2], I64(ts, e->ts));
    links++;
  }
  for (int c = 0; c < 3; c++) {
    buf_putc(&ids[c], '}');
    if (ids[c].oom && !rc) rc = util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate");
  }
  if (!rc && links) {
    const char *v[] = {ids[0].s, ids[1].s, ids[2].s};
    rc = exec_params(p,
                     "INSERT INTO identities(anon,customer,linked) "
                     "SELECT * FROM unnest($1::text[],$2::text[],$3::bigint[]) "
                     /* the first customer keeps it, as in SQLite (store.c) */
                     "ON CONFLICT(anon) DO NOTHING",
                     3, v, err, "store: write");
  }
  for (int c = 0; c < 3; c++) buf_free(&ids[c]);
  return rc;
}

static int pg_append_rows(store *base, ev *const *evs, size_t n, int64_t *seqs,
                          tailor_error *err) {
  pg *p = (pg *)base;
  if (!n) return TAILOR_OK;
  strbuf col[PG_APPEND_COLS] = {{0}};
  int rc = append_cols(evs, n, col, err);
  PGresult *r = NULL;
  if (!rc) {
    const char *v[PG_APPEND_COLS];
    for (int c = 0; c < PG_APPEND_COLS; c++) v[c] = col[c].s;
    if (!(r = run(p, append_sql(p), PG_APPEND_COLS, v, err, "store: append"))) rc = TAILOR_ESTORE;
  }
  for (int c = 0; c < PG_APPEND_COLS; c++) buf_free(&col[c]);
  if (!rc) rc = take_rows(r, evs, n, seqs, err);
  PQclear(r);
  return rc ? rc : apply_states(p, evs, n, err);
}

/*
** Append and commit the transaction store_begin opened.  A batch that
** changes nothing beside the log (views, carts, orders of visitors not
** linking ids) goes in one round trip: BEGIN (when nothing was sent yet),
** the INSERT, the done batches' DELETE and COMMIT in one pipeline.
*/
static int pg_append_commit(store *base, ev *const *evs, size_t n, int64_t *seqs,
                            tailor_error *err) {
  pg *p = (pg *)base;
  int state = 0;
  for (size_t i = 0; i < n && !state; i++) state = writes_state(evs[i]);
  if (!n || state) {
    int rc = pg_append_rows(base, evs, n, seqs, err);
    if (rc) {
      pg_rollback(base);
      return rc;
    }
    return pg_commit(base, err);
  }
  revive(p);
  strbuf col[PG_APPEND_COLS] = {{0}};
  int rc = append_cols(evs, n, col, err);
  if (rc) {
    pg_rollback(base);
  } else {
    const char *v[PG_APPEND_COLS];
    for (int c = 0; c < PG_APPEND_COLS; c++) v[c] = col[c].s;
    pg_stmt ins = {append_sql(p), PG_APPEND_COLS, v, NULL};
    /* The writer's scan for its events comes next (follow.c), from where
       its last one ended: its first page goes in this round trip. */
    char at[24];
    const char *sv[] = {p->pos_seq ? p->pos_xid : "0", I64(at, p->pos_seq)};
    pg_stmt scan = {SCAN_SQL, 2, sv, NULL};
    drop_prefetch(p);
    rc = commit_with(p, &ins, 1, &scan, err);
    if (!rc && PQresultStatus(scan.res) == PGRES_TUPLES_OK) {
      p->prefetch = scan.res;
      p->prefetch_after = p->pos_seq;
      p->prefetch_ms = util_now_ms();
    } else {
      PQclear(scan.res);
    }
    /* Committed: a mismatch here (never expected) is told as "may be
       stored", not as a refusal. */
    if (!rc && (rc = take_rows(ins.res, evs, n, seqs, err))) {
      char why[sizeof err->message];
      snprintf(why, sizeof why, "%s", err ? err->message : "");
      rc = util_fail(err, TAILOR_EIO, NULL, "%s; the batch was committed", why);
    }
    PQclear(ins.res);
  }
  for (int c = 0; c < PG_APPEND_COLS; c++) buf_free(&col[c]);
  return rc;
}

static int64_t pg_last_seq(store *base) {
  return one_int((pg *)base, "SELECT coalesce(max(seq),0) FROM events", 0, NULL);
}

#define SCAN_BATCH 2000

/* Keep where a scan handed its last event on (p->pos_seq). */
static void pg_pos(pg *p, int rc, int64_t seq, const char *xid) {
  if (rc) return;
  p->pos_seq = seq;
  snprintf(p->pos_xid, sizeof p->pos_xid, "%s", xid);
}

static int pg_scan(store *base, int64_t after, store_event_fn fn, void *ud,
                   store_known_fn known, tailor_error *err) {
  pg *p = (pg *)base;
  char xid[32] = "0", seq[24];
  /* The position's xid: known when the last scan ended there (one round
     trip less on the follower's and the writer's path), asked otherwise. */
  if (after > 0 && after == p->pos_seq) {
    snprintf(xid, sizeof xid, "%s", p->pos_xid);
  } else if (after > 0) {
    const char *pv[] = {I64(seq, after)};
    PGresult *h = run(p, "SELECT xid::text FROM events WHERE seq = $1", 1, pv, err,
                      "store: scan");
    if (!h) return TAILOR_ESTORE;
    if (PQntuples(h) != 1) {
      PQclear(h);
      return util_fail(err, TAILOR_ESTORE, NULL,
                       "store: scan: log position %lld is not in this database",
                       (long long)after);
    }
    snprintf(xid, sizeof xid, "%s", PQgetvalue(h, 0, 0));
    PQclear(h);
  }
  I64(seq, after);
  /* The first page may be the one read with the commit (pg_append_commit),
     when this scan comes right after it (no statement between, within the
     follower's poll interval): not staler than a scan the follower makes. */
  if (p->prefetch &&
      (p->prefetch_after != after || util_now_ms() - p->prefetch_ms > PG_PREFETCH_MS))
    drop_prefetch(p);
  tailor_error why = {0}; /* a refused row's reason (util_fail writes it whole) */
  for (;;) {
    const char *v[] = {xid, seq};
    /* Below the oldest open transaction nothing can change: each page
       reads up to the horizon of its own statement (it only moves up). */
    PGresult *r = p->prefetch ? p->prefetch : run(p, SCAN_SQL, 2, v, err, "store: scan");
    p->prefetch = NULL;
    if (!r) return TAILOR_ESTORE;
    int rows = PQntuples(r), rc = TAILOR_OK;
    for (int i = 0; i < rows && rc == TAILOR_OK; i++) {
      int64_t s = strtoll(PQgetvalue(r, i, 0), NULL, 10);
      snprintf(xid, sizeof xid, "%s", PQgetvalue(r, i, 3));
      I64(seq, s);
      const char *body = PQgetvalue(r, i, 2);
      if (!strcmp(body, "{}")) { /* erased */
        if (known && known(ud, s)) { /* this writer's own: reached (store.h) */
          rc = fn(ud, s, NULL);
          pg_pos(p, rc, s, xid);
        }
        continue;
      }
      const ev *mine = known ? known(ud, s) : NULL;
      if (mine) {
        rc = fn(ud, s, mine);
        pg_pos(p, rc, s, xid);
        continue;
      }
      ev_limits lim = {(size_t)-1, (size_t)-1, strtoll(PQgetvalue(r, i, 1), NULL, 10), 1 << 20, 0, 1};
      ev e;
      if (ev_parse(body, (size_t)PQgetlength(r, i, 2), &lim, &e, &why) != TAILOR_OK) {
        if ((rc = store_unreadable(&p->base, s, why.message, err))) break;
        rc = fn(ud, s, NULL); /* passed over: the position moves on */
        pg_pos(p, rc, s, xid);
        if (rc) break;
        continue;
      }
      rc = fn(ud, s, &e);
      pg_pos(p, rc, s, xid);
      ev_clear(&e);
    }
    PQclear(r);
    if (rc) return rc;
    if (rows < SCAN_BATCH) return TAILOR_OK;
  }
}

static json_t *pg_event_counts(store *base) {
  json_t *out = json_object();
  PGresult *r = run((pg *)base,
                    "SELECT type, count(*) FROM events WHERE body <> '{}' GROUP BY type ORDER BY type",
                    0, NULL, NULL, "store");
  for (int i = 0; r && i < PQntuples(r); i++)
    json_object_set_new(out, PQgetvalue(r, i, 0),
                        json_integer(strtoll(PQgetvalue(r, i, 1), NULL, 10)));
  PQclear(r);
  return out;
}

static int64_t pg_count(store *base, const char *table) {
  static const char *const known[] = {"events", "items", "customers", "identities", "outbox"};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++)
    if (!strcmp(table, known[i])) {
      char sql[96];
      snprintf(sql, sizeof sql, "SELECT count(*) FROM %s%s", known[i],
               !strcmp(known[i], "items") ? " WHERE deleted=0"
               : !strcmp(known[i], "events") ? " WHERE body <> '{}'"
                                             : "");
      return one_int((pg *)base, sql, 0, NULL);
    }
  return -1;
}

static json_t *query_doc(pg *p, const char *sql, const char *id) {
  const char *v[] = {id};
  PGresult *r = run(p, sql, 1, v, NULL, "store");
  json_t *doc = r && PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
  PQclear(r);
  return doc;
}

static json_t *pg_item(store *base, const char *id) {
  return query_doc((pg *)base, "SELECT body FROM items WHERE id=$1 AND deleted=0", id);
}

static json_t *pg_customer(store *base, const char *id) {
  const char *v[] = {id};
  PGresult *r = run((pg *)base,
                    "SELECT body, email, phone, consent_email, consent_sms FROM customers "
                    "WHERE id=$1",
                    1, v, NULL, "store");
  json_t *doc = NULL;
  if (r && PQntuples(r) == 1 && (doc = json_loads(PQgetvalue(r, 0, 0), 0, NULL))) {
    for (int c = 1; c <= 2; c++)
      if (!PQgetisnull(r, 0, c))
        json_object_set_new(doc, c == 1 ? "email" : "phone", json_string(PQgetvalue(r, 0, c)));
    json_t *consent = json_object_get(doc, "consent");
    if (!json_is_object(consent)) {
      consent = json_object();
      json_object_set_new(doc, "consent", consent);
    }
    json_object_set_new(consent, "email", json_boolean(atoi(PQgetvalue(r, 0, 3))));
    json_object_set_new(consent, "sms", json_boolean(atoi(PQgetvalue(r, 0, 4))));
  }
  PQclear(r);
  return doc;
}

static char *pg_identity(store *base, const char *anon) {
  const char *v[] = {anon};
  PGresult *r = run((pg *)base, "SELECT customer FROM identities WHERE anon=$1", 1, v, NULL,
                    "store");
  char *out = r && PQntuples(r) == 1 ? strdup(PQgetvalue(r, 0, 0)) : NULL;
  PQclear(r);
  return out;
}

static int pg_outbox_add(store *base, const store_outbox_row *row, int *added,
                         tailor_error *err) {
  char due[24], now[24];
  const char *v[] = {row->key,  row->customer, row->channel, row->template_,
                     row->vars ? row->vars : "{}", I64(due, row->due), I64(now, util_now_ms())};
  PGresult *r = run((pg *)base,
                    "INSERT INTO outbox(key,customer,channel,template,vars,due,created,updated) "
                    "VALUES($1,$2,$3,$4,$5,$6,$7,$7) ON CONFLICT(key) DO NOTHING",
                    7, v, err, "store: outbox");
  if (!r) return TAILOR_ESTORE;
  if (added) *added = atoi(PQcmdTuples(r)) > 0;
  PQclear(r);
  return TAILOR_OK;
}

/* The confirmation emails of double opt-in (keys "optin:<id>"): a visitor
   asked for each, so no frequency cap counts them (as sq.h's
   SQ_NOT_OPTIN). */
#define PG_NOT_OPTIN "left(key, 6) <> 'optin:'"

/* The rows a person's erasure and export cover: $1 the customer. */
#define PERSON_ANONS "(SELECT anon FROM identities WHERE customer=$1)"
#define PERSON_SESSIONS                                                                   \
  "(SELECT DISTINCT session FROM events WHERE session IS NOT NULL AND (customer=$1 OR " \
  "customer IS NULL AND anon IN " PERSON_ANONS "))"
/* Their events, as the index counts them (as sq.h's SQ_EVENTS_OF): not
   another customer's that carry one of their anonymous ids, nor another
   visitor's that carry one of their session ids. */
#define PERSON_EVENTS                                                             \
  "(customer=$1 OR customer IS NULL AND (anon IN " PERSON_ANONS                   \
  " OR anon IS NULL AND session IN " PERSON_SESSIONS "))"
/* Their popup contacts, each as the kind of id it was written as (as
   sq.h's SQ_CONTACTS_OF). */
#define PERSON_CONTACTS "(NOT is_anon AND unit=$1 OR is_anon AND unit IN " PERSON_ANONS ")"
/* Consent records asked for them, one of their anonymous ids, or the
   address their profile holds (as sq.h's CONSENTS_OF). */
#define PERSON_CONSENTS \
  "(customer=$1 OR anon IN " PERSON_ANONS " OR email IN (SELECT email FROM customers WHERE id=$1))"

/*
** Erasure empties the person's rows of the log instead of deleting them: a
** row's (xid, seq) is every follower's position, and an emptied row ("{}",
** no ids) is skipped by readers.  Autovacuum reclaims the old versions.
*/
/*
** The erase itself goes into the log, in the erasing transaction, so that
** every node applies it in the log's order (and a node that starts later
** replays it): an `erase` event naming the customer and their sessions by
** the SHA-256 of their ids, not by the ids (idx_forget_hashed).
*/
static int log_erase(pg *p, const char *customer, json_t *sessions, tailor_error *err) {
  char hex[65], ts[24];
  util_sha256_hex(customer, strlen(customer), hex);
  json_t *sh = json_array();
  size_t i;
  json_t *s;
  json_array_foreach(sessions, i, s) {
    char h[65];
    util_sha256_hex(json_string_value(s), json_string_length(s), h);
    json_array_append_new(sh, json_string(h));
  }
  int64_t now = util_now_ms();
  json_t *o = json_pack("{ss sI ss so}", "type", "erase", "ts", (json_int_t)now,
                        "customer_sha256", hex, "sessions_sha256", sh);
  char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!body) return util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate");
  const char *v[] = {I64(ts, now), body};
  int rc = exec_params(p, "INSERT INTO events(ts,type,body) VALUES($1,'erase',$2)", 2, v, err,
                       "store: forget");
  free(body);
  return rc ? rc : exec_params(p, "NOTIFY tailor_log", 0, NULL, err, "store: forget");
}

static int pg_forget(store *base, const char *customer, int64_t *events, json_t **sessions,
                     tailor_error *err) {
  pg *p = (pg *)base;
  static const char *const steps[] = {
      "DELETE FROM exposures WHERE unit=$1 OR unit IN " PERSON_ANONS,
      "DELETE FROM coupons WHERE customer=$1 OR anon IN " PERSON_ANONS,
      "DELETE FROM contacts WHERE " PERSON_CONTACTS,
      /* Before the profile goes: their address, asked for by anyone, and
         the confirmation emails of those requests (the text they quote). */
      "DELETE FROM outbox WHERE key IN (SELECT 'optin:' || id FROM consents WHERE "
      PERSON_CONSENTS ")",
      "DELETE FROM outbox_sent WHERE key IN (SELECT 'optin:' || id FROM consents WHERE "
      PERSON_CONSENTS ")",
      "DELETE FROM consents WHERE " PERSON_CONSENTS,
      "DELETE FROM outbox WHERE customer=$1",
      "DELETE FROM outbox_sent WHERE customer=$1",
      "DELETE FROM customers WHERE id=$1",
      "DELETE FROM identities WHERE customer=$1",
  };
  const char *v[] = {customer};
  if (sessions) *sessions = NULL;
  if (pg_begin(base, err)) return TAILOR_ESTORE;
  /* Under READ COMMITTED the UPDATE and DELETEs below neither see nor wait
     for another node's append of this person still in flight: it would
     commit after the erasure, its rows kept for good.  These locks wait for
     such appends and hold new ones until the erasure commits (erasures are
     rare; appends take ROW EXCLUSIVE, which SHARE ROW EXCLUSIVE excludes). */
  if (exec_params(p,
                  "LOCK TABLE events, customers, identities IN SHARE ROW EXCLUSIVE MODE", 0,
                  NULL, err, "store: forget")) {
    pg_rollback(base);
    return TAILOR_ESTORE;
  }
  json_t *sess = json_array();
  PGresult *r = run(p, "SELECT session FROM " PERSON_SESSIONS " s", 1, v, err, "store: forget");
  if (!r) goto rollback;
  for (int i = 0; i < PQntuples(r); i++)
    json_array_append_new(sess, json_string(PQgetvalue(r, i, 0)));
  PQclear(r);
  r = run(p,
          "UPDATE events SET body='{}', customer=NULL, anon=NULL, session=NULL, msg_id=NULL "
          "WHERE body <> '{}' AND " PERSON_EVENTS,
          1, v, err, "store: forget");
  if (!r) goto rollback;
  if (events) *events = strtoll(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
    if (exec_params(p, steps[i], 1, v, err, "store: forget")) goto rollback;
  if (log_erase(p, customer, sess, err)) goto rollback;
  if (pg_commit(base, err)) goto fail;
  if (sessions) *sessions = sess;
  else json_decref(sess);
  return TAILOR_OK;
rollback:
  pg_rollback(base);
fail:
  json_decref(sess);
  return TAILOR_ESTORE;
}

/* Row i of r as an object keyed by column name: numbers as numbers,
   "body" and "vars" (JSON text) parsed, NULL as null. */
static json_t *row_json(const PGresult *r, int i) {
  json_t *row = json_object();
  for (int c = 0; c < PQnfields(r); c++) {
    const char *name = PQfname(r, c), *text = PQgetvalue(r, i, c);
    Oid t = PQftype(r, c);
    json_t *val;
    if (PQgetisnull(r, i, c)) val = json_null();
    else if (t == 20 || t == 23 || t == 21) val = json_integer(strtoll(text, NULL, 10));
    else if (t == 701 || t == 700 || t == 1700) val = json_real(strtod(text, NULL));
    else {
      val = !strcmp(name, "body") || !strcmp(name, "vars") ? json_loads(text, 0, NULL) : NULL;
      if (!val) val = json_string(text);
    }
    json_object_set_new(row, name, val);
  }
  return row;
}

/* The rows of `sql` (the customer as $1) added to `out`; 0, or -1 with
   `err`. */
static int export_rows(store *base, const char *sql, const char *customer, json_t *out,
                       tailor_error *err) {
  pg *p = (pg *)base;
  const char *v[] = {customer};
  PGresult *r = run(p, sql, 1, v, err, "store: export");
  if (!r) return -1;
  for (int i = 0; i < PQntuples(r); i++) json_array_append_new(out, row_json(r, i));
  PQclear(r);
  return 0;
}

static json_t *pg_export_customer(store *base, const char *customer, tailor_error *err) {
  static const store_export_part parts[] = {
      {"profile", "SELECT id, email, phone, consent_email, consent_sms, body, created, updated "
                  "FROM customers WHERE id=$1"},
      {"identities", "SELECT anon, linked FROM identities WHERE customer=$1"},
      {"events", "SELECT seq, body FROM events WHERE " PERSON_EVENTS " ORDER BY seq"},
      {"outbox", "SELECT key, channel, template, vars, due, state, attempts, created, updated "
                 "FROM outbox WHERE customer=$1 ORDER BY id"},
      {"deliveries", "SELECT key, channel, sent FROM outbox_sent WHERE customer=$1 ORDER BY sent"},
      {"exposures", "SELECT experiment, variant, ts FROM exposures WHERE unit=$1 OR unit IN "
                    PERSON_ANONS},
      {"coupons", "SELECT code, tier, percent, issued, expires, redeemed, order_id FROM coupons "
                  "WHERE customer=$1 OR anon IN " PERSON_ANONS " ORDER BY issued"},
      {"contacts", "SELECT channel, campaign, ts FROM contacts WHERE " PERSON_CONTACTS
                   " ORDER BY ts"},
      {"consents", "SELECT id, email, purpose, text, source, anon, requested, expires, state, "
                   "confirmed FROM consents WHERE " PERSON_CONSENTS " ORDER BY requested"},
  };
  return store_export_parts(base, parts, sizeof parts / sizeof *parts, customer, export_rows,
                            err);
}

static int changed(pg *p, const char *sql, int n, const char *const *v, int *count,
                   tailor_error *err, const char *what) {
  PGresult *r = run(p, sql, n, v, err, what);
  if (!r) return TAILOR_ESTORE;
  if (count) *count = atoi(PQcmdTuples(r));
  PQclear(r);
  return TAILOR_OK;
}

static int pg_outbox_cancel(store *base, const char *key, int *cancelled, tailor_error *err) {
  char now[24];
  const char *v[] = {key, I64(now, util_now_ms())};
  int n = 0, rc = changed((pg *)base,
                          "UPDATE outbox SET state='cancelled', updated=$2 "
                          "WHERE key=$1 AND state IN ('pending','sending')",
                          2, v, &n, err, "store: outbox");
  if (cancelled) *cancelled = n > 0;
  return rc;
}

static int pg_outbox_cancel_prefix(store *base, const char *prefix, int *cancelled,
                                   tailor_error *err) {
  char now[24];
  const char *v[] = {prefix, I64(now, util_now_ms())};
  return changed((pg *)base,
                 "UPDATE outbox SET state='cancelled', updated=$2 WHERE "
                 "left(key, length($1)) = $1 AND state IN ('pending','sending')",
                 2, v, cancelled, err, "store: outbox");
}

static int64_t pg_outbox_due(store *base, const char *customer, const char *channel,
                             int64_t from, int64_t to, const char *except) {
  char b[24], c[24];
  const char *v[] = {customer, channel, I64(b, from), I64(c, to), except};
  int64_t n = one_int((pg *)base,
                      "SELECT count(*) FROM outbox WHERE customer=$1 AND channel=$2 AND "
                      "due BETWEEN $3 AND $4 AND state IN ('pending','sending','sent') AND "
                      "NOT ($5::text IS NOT NULL AND state='pending' AND "
                      "left(key, length($5)) = $5) AND " PG_NOT_OPTIN,
                      5, v);
  return n < 0 ? 0 : n;
}

static json_t *pg_outbox_list(store *base, const char *state, const char *customer,
                              int limit) {
  char lim[24];
  const char *v[] = {state, customer, I64(lim, limit)};
  json_t *out = json_array();
  PGresult *r = run((pg *)base,
                    "SELECT id,key,customer,channel,template,vars,due,state,attempts,"
                    "last_error,created,next_at,updated FROM outbox "
                    "WHERE ($1::text IS NULL OR state=$1) AND ($2::text IS NULL OR customer=$2) "
                    "ORDER BY id DESC LIMIT $3",
                    3, v, NULL, "store");
  for (int i = 0; r && i < PQntuples(r); i++) {
#define COL(c) (PQgetisnull(r, i, (c)) ? NULL : PQgetvalue(r, i, (c)))
#define NUM(c) ((json_int_t)strtoll(PQgetvalue(r, i, (c)), NULL, 10))
    json_t *vars = json_loads(PQgetvalue(r, i, 5), 0, NULL);
    json_array_append_new(
        out, json_pack("{sI ss ss? ss ss so sI ss si ss? sI sI sI}", "id", NUM(0), "key", COL(1),
                       "customer", COL(2), "channel", COL(3), "template", COL(4), "vars",
                       vars ? vars : json_object(), "due", NUM(6), "state", COL(7), "attempts",
                       (int)NUM(8), "last_error", COL(9), "created", NUM(10), "next_at",
                       NUM(11), "updated", NUM(12)));
  }
  PQclear(r);
  return out;
}

static int pg_exposures_add(store *base, const store_exposure *rows, size_t n,
                            tailor_error *err) {
  pg *p = (pg *)base;
  if (pg_begin(base, err)) return TAILOR_ESTORE;
  for (size_t i = 0; i < n; i++) {
    char ts[24];
    const char *v[] = {rows[i].experiment, rows[i].unit, rows[i].variant, I64(ts, rows[i].ts)};
    if (exec_params(p,
                    "INSERT INTO exposures(experiment,unit,variant,ts) VALUES($1,$2,$3,$4) "
                    "ON CONFLICT DO NOTHING",
                    4, v, err, "store: exposures")) {
      pg_rollback(base);
      return TAILOR_ESTORE;
    }
  }
  return pg_commit(base, err);
}

static json_t *pg_exposure_outcomes(store *base, int64_t window_ms, tailor_error *err) {
  /* As on SQLite (store.c): per person, the arm of their first exposure,
     each outcome event in the window once; events by customer, by anon
     id, and by the anon ids linked to the customer, each through its
     index. */
  static const char sql[] =
      "WITH f AS ("
      "  SELECT DISTINCT ON (experiment, person) experiment, person, variant, ts FROM ("
      "    SELECT x.experiment, x.variant, x.ts, coalesce(i.customer, x.unit) AS person"
      "    FROM exposures x LEFT JOIN identities i ON i.anon = x.unit) xp"
      "  ORDER BY experiment, person, ts),"
      " u AS ("
      "  SELECT experiment, person, ts, person AS unit FROM f"
      "  UNION SELECT f.experiment, f.person, f.ts, i.anon FROM f"
      "  JOIN identities i ON i.customer = f.person),"
      " o AS ("
      "  SELECT u.experiment, u.person, e.seq, e.type,"
      "         coalesce((e.body::jsonb->>'revenue')::float8, 0) AS rev"
      "  FROM u JOIN events e ON e.customer = u.unit"
      "  WHERE e.ts >= u.ts AND e.ts < u.ts + $1::bigint"
      "    AND e.type IN ('purchase', 'rec_clicked', 'add_to_cart')"
      "  UNION"
      "  SELECT u.experiment, u.person, e.seq, e.type,"
      "         coalesce((e.body::jsonb->>'revenue')::float8, 0)"
      "  FROM u JOIN events e ON e.anon = u.unit"
      "  WHERE e.ts >= u.ts AND e.ts < u.ts + $1::bigint"
      "    AND e.type IN ('purchase', 'rec_clicked', 'add_to_cart'))"
      "SELECT f.experiment, f.variant,"
      "  count(o.seq) FILTER (WHERE o.type = 'purchase'),"
      "  coalesce(sum(o.rev) FILTER (WHERE o.type = 'purchase'), 0),"
      "  count(o.seq) FILTER (WHERE o.type = 'rec_clicked'),"
      "  count(o.seq) FILTER (WHERE o.type = 'add_to_cart')"
      " FROM f LEFT JOIN o ON o.experiment = f.experiment AND o.person = f.person"
      " GROUP BY f.experiment, f.person, f.variant ORDER BY 1, 2";
  char w[24];
  const char *v[] = {I64(w, window_ms)};
  PGresult *r = run((pg *)base, sql, 1, v, err, "store: experiment report");
  if (!r) return NULL;
  json_t *out = json_array();
  for (int i = 0; i < PQntuples(r); i++)
    json_array_append_new(
        out, json_pack("[ss Ifii]", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                       (json_int_t)strtoll(PQgetvalue(r, i, 2), NULL, 10),
                       strtod(PQgetvalue(r, i, 3), NULL), atoi(PQgetvalue(r, i, 4)),
                       atoi(PQgetvalue(r, i, 5))));
  PQclear(r);
  return out;
}

/*
** The outbox shared by nodes: due rows (pending and due, or sending with a
** lease run out: its sender died) are locked FOR UPDATE SKIP LOCKED, so a
** row another node is claiming is passed over rather than waited for, and
** leased to this node until lease_until in the same statement.
**
** A row on a `serial` channel waits while another of its customer's rows
** on one is being sent (outbox.h).  Each statement sees what committed
** before it began, so two claims at once on two nodes would each miss the
** other's row: such claims take one advisory lock first, and the claim
** that waited for it sees the rows the other leased.
*/
static json_t *pg_outbox_claim(store *base, const char *names, const char *one_each,
                               int64_t now, int max, int64_t lease_until, tailor_error *err) {
  pg *p = (pg *)base;
  char b_now[24], b_max[24], b_lease[24];
  const char *v[] = {names, I64(b_now, now), I64(b_max, max), I64(b_lease, lease_until),
                     one_each};
  int locked = strcmp(one_each, "[]") != 0;
  PGresult *r = NULL;
  if (!locked || (!pg_begin(base, err) &&
                  !exec_params(p, "SELECT pg_advisory_xact_lock(7303)", 0, NULL, err,
                               "store: outbox claim")))
    r = run(p,
            "WITH due AS ("
            "  SELECT id FROM outbox o"
            "  WHERE channel IN (SELECT jsonb_array_elements_text($1::jsonb))"
            "  AND ((state = 'pending' AND due <= $2 AND next_at <= $2) OR"
            "       (state = 'sending' AND next_at <= $2))"
            "  AND NOT (o.customer IS NOT NULL"
            "    AND o.channel IN (SELECT jsonb_array_elements_text($5::jsonb))"
            "    AND EXISTS(SELECT 1 FROM outbox b WHERE b.customer = o.customer"
            "      AND b.id <> o.id AND b.state = 'sending' AND b.next_at > $2"
            "      AND b.channel IN (SELECT jsonb_array_elements_text($5::jsonb))))"
            "  ORDER BY due LIMIT $3 FOR UPDATE SKIP LOCKED)"
            "UPDATE outbox o SET state = 'sending', attempts = o.attempts + 1, next_at = $4,"
            "  updated = $2 FROM due WHERE o.id = due.id "
            "RETURNING o.id, o.key, o.customer, o.channel, o.template, o.vars, o.due, o.created,"
            "  o.attempts, EXISTS(SELECT 1 FROM outbox_sent s WHERE s.key = o.key AND"
            "  s.channel = o.channel)",
            5, v, err, "store: outbox claim");
  if (locked && (!r || pg_commit(base, err))) {
    if (!r) pg_rollback(base);
    PQclear(r);
    r = NULL;
  }
  if (!r) return NULL;
  json_t *out = json_array();
  for (int i = 0; i < PQntuples(r); i++) {
    json_t *vars = json_loads(PQgetvalue(r, i, 5), 0, NULL);
    json_t *row = json_pack(
        "{sI ss ss? ss ss so sI sI si sb}", "id", NUM(0), "key", COL(1), "customer", COL(2),
        "channel", COL(3), "template", COL(4), "vars",
        json_is_object(vars) ? vars : json_object(), "due", NUM(6), "created", NUM(7),
        "attempts", (int)NUM(8), "already_sent", PQgetvalue(r, i, 9)[0] == 't');
    if (vars && !json_is_object(vars)) json_decref(vars);
    if (row) json_array_append_new(out, row);
  }
  PQclear(r);
  /* Oldest due first, as SQLite's claim answers. */
  size_t n = json_array_size(out);
  for (size_t i = 1; i < n; i++)
    for (size_t j = i; j > 0; j--) {
      json_t *a = json_array_get(out, j - 1), *b = json_array_get(out, j);
      if (json_integer_value(json_object_get(a, "due")) <=
          json_integer_value(json_object_get(b, "due")))
        break;
      json_incref(a);
      json_array_set(out, j - 1, b);
      json_array_set_new(out, j, a);
    }
  return out;
}

static int pg_outbox_mark_sent(store *base, int64_t id, const char *key, const char *channel,
                               const char *customer, const char *vars, int64_t now,
                               tailor_error *err) {
  pg *p = (pg *)base;
  char b_id[24], b_now[24];
  const char *v1[] = {I64(b_id, id), vars, I64(b_now, now)};
  const char *v2[] = {key, channel, customer, b_now};
  int n = 0;
  if (pg_begin(base, err)) return TAILOR_ESTORE;
  if (changed(p,
              "UPDATE outbox SET state = 'sent', next_at = 0, last_error = NULL, "
              "vars = coalesce($2, vars), updated = $3 WHERE id = $1",
              3, v1, &n, err, "store: outbox") ||
      (n && exec_params(p,
                        "INSERT INTO outbox_sent(key, channel, customer, sent) "
                        "VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING",
                        4, v2, err, "store: outbox"))) {
    pg_rollback(base);
    return TAILOR_ESTORE;
  }
  int rc = pg_commit(base, err);
  return rc || n ? rc
                 : util_fail(err, TAILOR_ENOTFOUND, NULL, "outbox row %lld is gone (erased)",
                             (long long)id);
}

static int pg_outbox_settle(store *base, int64_t id, int attempt, const char *state,
                            int64_t next_at, const char *error, int64_t now, tailor_error *err) {
  char b_id[24], b_next[24], b_now[24], b_try[24];
  const char *v[] = {I64(b_id, id), state, I64(b_next, next_at), error, I64(b_now, now),
                     I64(b_try, attempt)};
  return exec_params((pg *)base,
                     "UPDATE outbox SET state = $2, next_at = $3, last_error = $4, updated = $5 "
                     "WHERE id = $1 AND state = 'sending' AND attempts = $6",
                     6, v, err, "store: outbox");
}

static int64_t pg_outbox_sent_since(store *base, const char *customer, const char *channel,
                                    int64_t since) {
  if (!customer) return 0;
  char b[24];
  const char *v[] = {customer, channel, I64(b, since)};
  int64_t n = one_int((pg *)base,
                      "SELECT count(*) FROM outbox_sent WHERE customer=$1 AND channel=$2 AND "
                      "sent >= $3 AND " PG_NOT_OPTIN,
                      3, v);
  return n < 0 ? 0 : n;
}

static int pg_outbox_retry(store *base, const char *key, int64_t now, int *count,
                           tailor_error *err) {
  char b[24];
  const char *v[] = {key, I64(b, now)};
  return changed((pg *)base,
                 "UPDATE outbox SET state = 'pending', attempts = 0, next_at = 0, "
                 "due = least(due, $2::bigint), last_error = NULL, updated = $2 WHERE "
                 "($1::text IS NULL AND state = 'dead') OR "
                 "(key = $1 AND (state IN ('dead', 'cancelled') OR (state = 'pending' AND attempts > 0)))",
                 2, v, count, err, "store: outbox retry");
}

static const char *pg_outbox_state(store *base, const char *key) {
  const char *v[] = {key};
  PGresult *r = run((pg *)base, "SELECT state FROM outbox WHERE key = $1", 1, v, NULL, "store");
  const char *out = NULL;
  if (r && PQntuples(r) == 1) out = store_outbox_state_name(PQgetvalue(r, 0, 0));
  PQclear(r);
  return out;
}

static int pg_outbox_purge(store *base, const char *state, int64_t before, int64_t *purged,
                           tailor_error *err) {
  char b[24];
  const char *v[] = {state, I64(b, before)};
  int n = 0;
  int rc = changed((pg *)base,
                   "DELETE FROM outbox WHERE state IN ('sent', 'cancelled', 'dead') "
                   "AND ($1::text IS NULL OR state = $1) AND updated < $2",
                   2, v, &n, err, "store: outbox purge");
  if (purged) *purged = n;
  return rc;
}

static int pg_outbox_renew(store *base, int64_t id, int attempt, int64_t now,
                           int64_t lease_until, tailor_error *err) {
  char b_id[24], b_att[24], b_now[24], b_lease[24];
  const char *v[] = {I64(b_id, id), I64(b_att, attempt), I64(b_now, now), I64(b_lease, lease_until)};
  int n = 0;
  int rc = changed((pg *)base,
                   "UPDATE outbox SET next_at = $4, updated = $3 "
                   "WHERE id = $1 AND state = 'sending' AND attempts = $2",
                   4, v, &n, err, "store: outbox lease");
  return rc ? rc : n == 1;
}

static int pg_outbox_release(store *base, int64_t id, int attempt, int64_t now,
                             tailor_error *err) {
  char b_id[24], b_att[24], b_now[24];
  const char *v[] = {I64(b_id, id), I64(b_att, attempt), I64(b_now, now)};
  int n = 0;
  int rc = changed((pg *)base,
                   "UPDATE outbox SET state = 'pending', attempts = attempts - 1, next_at = 0,"
                   " updated = $3 WHERE id = $1 AND state = 'sending' AND attempts = $2",
                   3, v, &n, err, "store: outbox give back");
  return rc ? rc : n == 1;
}

/*
** Coupons and contacts, shared by the nodes: a code issued on one node is
** redeemed once on any (the UPDATE is conditional on the row not being
** redeemed, and the loser of a race is told so).
*/
static int pg_coupons_add(store *base, json_t *rows, tailor_error *err) {
  pg *p = (pg *)base;
  size_t i;
  json_t *r;
  json_array_foreach(rows, i, r) {
    char pct[40], issued[24], expires[24];
    json_t *pv = json_object_get(r, "percent");
    if (json_is_number(pv)) snprintf(pct, sizeof pct, "%.17g", json_number_value(pv));
    const char *v[] = {json_string_value(json_object_get(r, "code")),
                       json_string_value(json_object_get(r, "tier")),
                       json_is_number(pv) ? pct : NULL,
                       json_string_value(json_object_get(r, "customer")),
                       json_string_value(json_object_get(r, "anon")),
                       I64(issued, json_integer_value(json_object_get(r, "issued"))),
                       I64(expires, json_integer_value(json_object_get(r, "expires")))};
    if (exec_params(p,
                    "INSERT INTO coupons(code,tier,percent,customer,anon,issued,expires) "
                    "VALUES($1,$2,$3,$4,$5,$6,$7)",
                    7, v, err, "store: coupons"))
      return TAILOR_ESTORE;
  }
  return TAILOR_OK;
}

static json_t *pg_coupon_get(store *base, const char *code, tailor_error *err) {
  const char *v[] = {code};
  PGresult *r = run((pg *)base,
                    "SELECT code, tier, percent, customer, anon, issued, expires, redeemed, "
                    "order_id FROM coupons WHERE code=$1",
                    1, v, err, "store: coupon");
  if (!r) return NULL;
  json_t *out = NULL;
  if (PQntuples(r) == 1) {
    out = json_object();
    for (int c = 0; c < PQnfields(r); c++) {
      const char *name = PQfname(r, c), *val = PQgetvalue(r, 0, c);
      json_t *j = PQgetisnull(r, 0, c) ? json_null()
                  : !strcmp(name, "percent") ? json_real(strtod(val, NULL))
                  : (!strcmp(name, "issued") || !strcmp(name, "expires") ||
                     !strcmp(name, "redeemed"))
                      ? json_integer(strtoll(val, NULL, 10))
                      : json_string(val);
      json_object_set_new(out, name, j);
    }
  } else {
    util_fail(err, TAILOR_ENOTFOUND, "code", "coupon '%.64s' does not exist", code);
  }
  PQclear(r);
  return out;
}

static int pg_coupon_mark(store *base, const char *code, int64_t now, const char *order_id,
                          tailor_error *err) {
  char ts[24];
  const char *v[] = {code, I64(ts, now), order_id};
  PGresult *r = run((pg *)base,
                    "UPDATE coupons SET redeemed=$2, order_id=$3 "
                    "WHERE code=$1 AND redeemed IS NULL",
                    3, v, err, "store: coupon");
  if (!r) return TAILOR_ESTORE;
  int changed = atoi(PQcmdTuples(r));
  PQclear(r);
  return changed ? TAILOR_OK
                 : util_fail(err, TAILOR_EINVAL, "code", "coupon '%.64s' was already redeemed",
                             code);
}

static json_t *pg_coupon_report(store *base, int64_t now) {
  pg *p = (pg *)base;
  json_t *out = json_pack("{s{}s{}}", "tiers", "experiments");
  char ts[24];
  const char *v[] = {I64(ts, now)};
  PGresult *r = run(p,
                    "SELECT tier, count(*), count(redeemed), "
                    "count(*) FILTER (WHERE redeemed IS NULL AND expires <= $1) "
                    "FROM coupons GROUP BY tier",
                    1, v, NULL, "store: coupons");
  for (int i = 0; r && i < PQntuples(r); i++) {
    const char *path[] = {"tiers", PQgetvalue(r, i, 0), NULL};
    store_json_bump(out, path, "issued", strtoll(PQgetvalue(r, i, 1), NULL, 10));
    store_json_bump(out, path, "redeemed", strtoll(PQgetvalue(r, i, 2), NULL, 10));
    store_json_bump(out, path, "expired", strtoll(PQgetvalue(r, i, 3), NULL, 10));
  }
  PQclear(r);
  /* As on SQLite (coupon.c): the arm of the holder's first exposure to
     each experiment, by any of the holder's ids, a coupon once. */
  r = run(p,
          STORE_COUPON_HOLDERS
          " a AS ("
          "  SELECT DISTINCT ON (h.code, x.experiment) h.tier, h.redeemed, x.experiment, x.variant"
          "  FROM h JOIN u ON u.code = h.code JOIN exposures x ON x.unit = u.unit"
          "  ORDER BY h.code, x.experiment, x.ts)"
          "SELECT experiment, variant, tier, count(*), count(redeemed) FROM a GROUP BY 1, 2, 3",
          0, NULL, NULL, "store: coupons");
  for (int i = 0; r && i < PQntuples(r); i++) {
    const char *path[] = {"experiments", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                          PQgetvalue(r, i, 2), NULL};
    store_json_bump(out, path, "issued", strtoll(PQgetvalue(r, i, 3), NULL, 10));
    store_json_bump(out, path, "redeemed", strtoll(PQgetvalue(r, i, 4), NULL, 10));
  }
  PQclear(r);
  return out;
}

static int pg_contact_add(store *base, const char *customer, const char *anon,
                          const char *channel, const char *campaign, int64_t ts,
                          tailor_error *err) {
  char t[24];
  const char *v[] = {customer ? customer : anon, channel, campaign ? campaign : "", I64(t, ts),
                     customer ? "false" : "true"};
  return exec_params((pg *)base,
                     "INSERT INTO contacts(unit,channel,campaign,ts,is_anon) "
                     "VALUES($1,$2,$3,$4,$5)",
                     5, v, err, "store: contacts");
}

/* As sq_contacts_between (store.h): emails by their due time, the
   pending rows a superseding email replaces left out. */
static int64_t pg_contacts_between(store *base, const char *customer, const char *anon,
                                   const char *campaign, int64_t from, int64_t to,
                                   const char *replacing) {
  char f[24], t[24];
  const char *v[] = {customer, anon, I64(f, from), campaign, I64(t, to), replacing};
  int64_t n = one_int(
      (pg *)base,
      /* the person: as sq_contacts_between, every id the identities link */
      "WITH c AS (SELECT $1::text AS id UNION SELECT customer FROM identities WHERE anon=$2),"
      " a AS (SELECT $2::text AS id UNION SELECT anon FROM identities"
      "       WHERE customer IN (SELECT id FROM c)) "
      /* = ANY(ARRAY(...)): an index scan (IN (SELECT) OR IN (SELECT) read
         the whole tables) */
      "SELECT (SELECT count(*) FROM contacts WHERE (NOT is_anon AND unit = ANY(ARRAY(SELECT id FROM c))"
      "         OR is_anon AND unit = ANY(ARRAY(SELECT id FROM a)))"
      "         AND ts BETWEEN $3 AND $5 AND ($4::text IS NULL OR campaign=$4))"
      "     + (SELECT count(*) FROM coupons WHERE (customer = ANY(ARRAY(SELECT id FROM c)) OR"
      "         anon = ANY(ARRAY(SELECT id FROM a))) AND issued BETWEEN $3 AND $5"
      "         AND ($4::text IS NULL OR tier=$4))"
      "     + (SELECT count(*) FROM outbox WHERE customer = ANY(ARRAY(SELECT id FROM c))"
      "         AND due BETWEEN $3 AND $5"
      "         AND state IN ('pending','sending','sent') AND ($4::text IS NULL OR template=$4)"
      "         AND NOT ($6::text IS NOT NULL AND state='pending'"
      "                  AND left(key, length($6::text))=$6::text) AND " PG_NOT_OPTIN ")",
      6, v);
  return n < 0 ? 0 : n;
}

/* The people's locks (store.h): an advisory lock on the customer each pair
   of ids links to, else on the anonymous id, taken in the order of the
   locks' keys and held until the transaction ends. */
static int pg_lock_people(store *base, const char *const *customers, const char *const *anons,
                          size_t n, tailor_error *err) {
  strbuf ids[2] = {{0}, {0}};
  buf_putc(&ids[0], '{');
  buf_putc(&ids[1], '{');
  for (size_t i = 0; i < n; i++) {
    arr_add(&ids[0], customers[i]);
    arr_add(&ids[1], anons[i]);
  }
  buf_putc(&ids[0], '}');
  buf_putc(&ids[1], '}');
  int rc = ids[0].oom || ids[1].oom ? util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate")
                                    : TAILOR_OK;
  const char *v[] = {ids[0].s, ids[1].s};
  if (!rc && exec_params((pg *)base,
                         "SELECT count(pg_advisory_xact_lock(7302, h)) FROM (SELECT DISTINCT "
                         "hashtext(coalesce(p.c, (SELECT customer FROM identities WHERE anon=p.a),"
                         " p.a)) AS h FROM unnest($1::text[], $2::text[]) AS p(c, a) "
                         "WHERE coalesce(p.c, p.a) IS NOT NULL ORDER BY h) s",
                         2, v, err, "store: person locks"))
    rc = TAILOR_ESTORE;
  buf_free(&ids[0]);
  buf_free(&ids[1]);
  return rc;
}

/*
** Consents (email capture's double opt-in), shared by the nodes: a link
** sent by one node is confirmed on any.  The UPDATE that confirms is
** conditional on the request being pending, so of two nodes following one
** link at once the second waits for the first's transaction and is told
** the link was used.
*/
static int pg_consent_add(store *base, json_t *row, tailor_error *err) {
  pg *p = (pg *)base;
  char requested[24], expires[24];
  I64(requested, json_integer_value(json_object_get(row, "requested")));
  I64(expires, json_integer_value(json_object_get(row, "expires")));
  const char *gone[] = {requested};
  if (exec_params(p, "DELETE FROM consents WHERE state='pending' AND expires<=$1", 1, gone, err,
                  "store: consents"))
    return TAILOR_ESTORE;
  static const char *const text[] = {"id", "customer", "anon", "email",
                                     "purpose", "text", "source"};
  const char *v[9];
  for (int i = 0; i < 7; i++) v[i] = json_string_value(json_object_get(row, text[i]));
  v[7] = requested;
  v[8] = expires;
  return exec_params(p,
                     "INSERT INTO consents(id,customer,anon,email,purpose,text,source,"
                     "requested,expires) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9)",
                     9, v, err, "store: consents");
}

static json_t *pg_consent_get(store *base, const char *id, tailor_error *err) {
  const char *v[] = {id};
  PGresult *r = run((pg *)base,
                    "SELECT id,customer,anon,email,purpose,text,source,requested,"
                    "expires,state,confirmed FROM consents WHERE id=$1",
                    1, v, err, "store: consents");
  if (!r) return NULL;
  json_t *out = PQntuples(r) == 1 ? row_json(r, 0) : NULL;
  if (!out) util_fail(err, TAILOR_ENOTFOUND, "token", STORE_CONSENT_GONE);
  PQclear(r);
  return out;
}

static int pg_consent_mark(store *base, const char *id, int64_t now, tailor_error *err) {
  char ts[24];
  const char *v[] = {id, I64(ts, now)};
  int n = 0;
  int rc = changed((pg *)base,
                   "UPDATE consents SET state='confirmed', confirmed=$2 "
                   "WHERE id=$1 AND state='pending'",
                   2, v, &n, err, "store: consents");
  if (rc) return rc;
  return n ? TAILOR_OK : util_fail(err, TAILOR_EINVAL, "token", "this link was used already");
}

/*
** Inside a transaction, the address is locked first (an advisory lock
** until the transaction ends), so two nodes counting the day's requests
** for it at once cannot both find room under the limit.
*/
static int64_t pg_consents_since(store *base, const char *email, int64_t since) {
  pg *p = (pg *)base;
  char t[24];
  const char *v[] = {email, I64(t, since)};
  if (p->in_tx &&
      exec_params(p, "SELECT pg_advisory_xact_lock(7301, hashtext($1))", 1, v, NULL, "store"))
    return 0;
  int64_t n = one_int(p,
                      "SELECT count(*) FROM (SELECT split_part(split_part(email,'@',1),'+',1) "
                      "AS b, split_part(email,'@',2) AS d FROM consents WHERE requested>=$2) c "
                      "WHERE CASE WHEN d IN ('gmail.com','googlemail.com') THEN "
                      "replace(b,'.','') || '@gmail.com' ELSE b || '@' || d END = $1",
                      2, v);
  return n < 0 ? 0 : n;
}

/*
** The outbox as an operator reads it (outbox.h), the console's page and
** preview: SQLite's queries (outbox.c) in PostgreSQL's dialect, text
** sorted bytewise as SQLite sorts it.
*/
#define PG_VIEW_COLUMNS                                                               \
  "SELECT id, key, customer, channel, template, vars, due, " STORE_OUTBOX_VIEW_STATE \
  " AS state, attempts, last_error, created, next_at, updated FROM outbox"

static json_t *pg_outbox_tally(store *base, tailor_error *err) {
  PGresult *r = run((pg *)base,
                    "SELECT template, channel, " STORE_OUTBOX_VIEW_STATE ", count(*) FROM outbox "
                    "GROUP BY 1, 2, 3 ORDER BY template COLLATE \"C\", channel COLLATE \"C\", "
                    "(" STORE_OUTBOX_VIEW_STATE ") COLLATE \"C\"",
                    0, NULL, err, "outbox");
  if (!r) return NULL;
  json_t *out = json_array();
  for (int i = 0; i < PQntuples(r); i++)
    json_array_append_new(out, json_pack("{ss ss ss sI}", "template", PQgetvalue(r, i, 0),
                                         "channel", PQgetvalue(r, i, 1), "state",
                                         PQgetvalue(r, i, 2), "n",
                                         (json_int_t)strtoll(PQgetvalue(r, i, 3), NULL, 10)));
  PQclear(r);
  return out;
}

static json_t *pg_outbox_view(store *base, const char *state, int limit, tailor_error *err) {
  char lim[24];
  const char *v[] = {state, I64(lim, limit)};
  PGresult *r = run((pg *)base,
                    PG_VIEW_COLUMNS " WHERE $1::text IS NULL OR " STORE_OUTBOX_VIEW_STATE
                    " = $1 ORDER BY id DESC LIMIT $2",
                    2, v, err, "outbox");
  if (!r) return NULL;
  json_t *out = json_array();
  for (int i = 0; i < PQntuples(r); i++) json_array_append_new(out, row_json(r, i));
  PQclear(r);
  return out;
}

static json_t *pg_outbox_get(store *base, const char *key, tailor_error *err) {
  const char *v[] = {key};
  PGresult *r = run((pg *)base, PG_VIEW_COLUMNS " WHERE key = $1", 1, v, err, "outbox message");
  json_t *row = r && PQntuples(r) == 1 ? row_json(r, 0) : NULL;
  PQclear(r);
  return row;
}

/* Triggers owed by events of a node that died before running them. */
static void pg_triggers_owed(store *base, int on) { ((pg *)base)->owed = on; }

/*
** The batches these events came in are done (a batch is done when its
** triggers are: they ran in one transaction, or the overdue pass ran them
** all).  Their DELETE goes with this transaction's COMMIT, which need not
** wait for the WAL then (commit_with); when the transaction sends nothing
** (triggers that scheduled nothing), with the next one's.
*/
static int pg_triggers_done(store *base, const int64_t *seqs, size_t n, tailor_error *err) {
  pg *p = (pg *)base;
  if (!p->done.n) p->done_ms = util_now_ms();
  for (size_t i = 0; i < n; i++) {
    char v[24];
    if (p->done.n) buf_putc(&p->done, ',');
    buf_puts(&p->done, I64(v, seqs[i]));
  }
  p->lazy = 1;
  if (p->done.oom) {
    /* Lost marks: the events stay owed, and the overdue pass runs their
       triggers again (their outbox keys keep that from sending twice). */
    buf_free(&p->done);
    p->done_kept = 0;
    return util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate");
  }
  return TAILOR_OK;
}

/* Done batches kept waiting for a commit for older_ms or more: deleted
   now, in a transaction of their own (outside any). */
static int pg_triggers_flush(store *base, int older_ms, tailor_error *err) {
  pg *p = (pg *)base;
  if (!p->done.n || p->in_tx || util_now_ms() - p->done_ms < older_ms) return TAILOR_OK;
  strbuf lit = {0};
  int rc = done_literal(p, &lit) ? util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate")
                                 : TAILOR_OK;
  const char *v[] = {lit.s};
  if (!rc) rc = exec_params(p, DONE_SQL, 1, v, err, "store: triggers");
  if (!rc) p->done.n = 0;
  buf_free(&lit);
  return rc;
}

/*
** Batches owing their triggers for more than after_s seconds, oldest
** first, locked (SKIP LOCKED: another node takes others), until they hold
** `max` events or more (the first ones of each are among the first `max`
** handed on, which triggers_done needs): each of their events handed to
** fn in log order.
** A batch none of whose events is left to hand on (all erased since) is
** deleted here, as triggers_done does for the others.
*/
static int pg_triggers_overdue(store *base, int after_s, int max, store_event_fn fn, void *ud,
                               tailor_error *err) {
  pg *p = (pg *)base;
  char a[24], m[24];
  const char *v[] = {I64(a, after_s), I64(m, max)};
  PGresult *r = run(p,
                    "WITH locked AS (SELECT id, seqs FROM events_owed "
                    "WHERE since < now() - make_interval(secs => $1::int) ORDER BY id "
                    "LIMIT 64 FOR UPDATE SKIP LOCKED), "
                    "o AS (SELECT id, seqs, sum(cardinality(seqs)) OVER (ORDER BY id) "
                    "- cardinality(seqs) AS before FROM locked), "
                    "mine AS (SELECT id, seqs FROM o WHERE before < $2::bigint), "
                    "gone AS (DELETE FROM events_owed WHERE id IN (SELECT id FROM mine) AND "
                    "NOT EXISTS (SELECT 1 FROM events e WHERE e.seq = ANY(events_owed.seqs) "
                    "AND e.body <> '{}')) "
                    "SELECT e.seq, e.ts, e.body FROM events e WHERE e.seq IN "
                    "(SELECT unnest(seqs) FROM mine) AND e.body <> '{}' ORDER BY e.xid, e.seq",
                    2, v, err, "store: triggers");
  if (!r) return TAILOR_ESTORE;
  int rc = TAILOR_OK;
  for (int i = 0; i < PQntuples(r) && rc == TAILOR_OK; i++) {
    const char *body = PQgetvalue(r, i, 2);
    int64_t seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    ev_limits lim = {(size_t)-1, (size_t)-1, strtoll(PQgetvalue(r, i, 1), NULL, 10), 1 << 20, 0, 1};
    ev e;
    if (ev_parse(body, (size_t)PQgetlength(r, i, 2), &lim, &e, NULL) != TAILOR_OK) continue;
    rc = fn(ud, seq, &e);
    ev_clear(&e);
  }
  PQclear(r);
  return rc;
}

static const store_ops pg_ops = {
    .kind = "postgresql",
    .close = pg_close,
    .schema_version = pg_schema_version,
    .checkpoint_path = pg_checkpoint_path,
    .open_reader = pg_open_reader,
    .shared = 1,
    .wait = pg_wait,
    .has_seq = pg_has_seq,
    .seq_token = pg_seq_token,
    .has_msg = pg_has_msg,
    .log_behind = pg_log_behind,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .append_rows = pg_append_rows,
    .append_commit = pg_append_commit,
    .last_seq = pg_last_seq,
    .scan = pg_scan,
    .event_counts = pg_event_counts,
    .count = pg_count,
    .item = pg_item,
    .customer = pg_customer,
    .identity = pg_identity,
    .forget = pg_forget,
    .export_customer = pg_export_customer,
    .outbox_add = pg_outbox_add,
    .outbox_cancel = pg_outbox_cancel,
    .outbox_cancel_prefix = pg_outbox_cancel_prefix,
    .outbox_due = pg_outbox_due,
    .outbox_list = pg_outbox_list,
    .exposures_add = pg_exposures_add,
    .exposure_outcomes = pg_exposure_outcomes,
    .exec = pg_exec,
    .meta_get = pg_meta_get,
    .meta_set = pg_meta_set,
    .coupons_add = pg_coupons_add,
    .coupon_get = pg_coupon_get,
    .coupon_mark = pg_coupon_mark,
    .coupon_report = pg_coupon_report,
    .contact_add = pg_contact_add,
    .contacts_between = pg_contacts_between,
    .lock_people = pg_lock_people,
    .consent_add = pg_consent_add,
    .consent_get = pg_consent_get,
    .consent_mark = pg_consent_mark,
    .consents_since = pg_consents_since,
    .outbox_tally = pg_outbox_tally,
    .outbox_view = pg_outbox_view,
    .outbox_get = pg_outbox_get,
    .triggers_owed = pg_triggers_owed,
    .triggers_done = pg_triggers_done,
    .triggers_flush = pg_triggers_flush,
    .triggers_overdue = pg_triggers_overdue,
    .outbox_claim = pg_outbox_claim,
    .outbox_renew = pg_outbox_renew,
    .outbox_release = pg_outbox_release,
    .outbox_mark_sent = pg_outbox_mark_sent,
    .outbox_settle = pg_outbox_settle,
    .outbox_sent_since = pg_outbox_sent_since,
    .outbox_retry = pg_outbox_retry,
    .outbox_state = pg_outbox_state,
    .outbox_purge = pg_outbox_purge,
};
