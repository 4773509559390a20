/*
** store.c: the SQLite store (store.h's "sqlite" implementation, behind the
** table of store_impl.h), the embedded default.  One connection, WAL
** journal, prepared statements kept for the hot path (appending events).
** Every write of a batch happens inside one transaction, so a batch is
** durable or absent.
*/
#include "store/store_impl.h"
#include "store/sq.h"

#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SQ_EVENT_ROWS 16 /* events one multi-row INSERT writes */

typedef struct sq {
  store base; /* first: a store * is an sq * */
  sqlite3 *db;
  sqlite3_stmt *ins_event;
  sqlite3_stmt *ins_events; /* SQ_EVENT_ROWS events without message ids */
  sqlite3_stmt *up_item;
  sqlite3_stmt *del_item;
  sqlite3_stmt *up_customer;
  sqlite3_stmt *up_identity;
  sqlite3_stmt *add_count;   /* event_counts, once per type and batch */
  sqlite3_stmt *ins_outcome; /* outcomes (migration 6 -> 7) */
  char *path; /* as opened: the checkpoint's default and the reader's */
  int lock_fd; /* <path>.lock, held by a writing store (sq_lock); -1 */
} sq;

/*
** Migrations: migrations[i] takes the schema from version i to i+1.  Never
** edit one that has shipped; append a new one and bump STORE_SCHEMA_VERSION.
*/
static const char *const migrations[STORE_SCHEMA_VERSION] = {
    /* 0 -> 1: the first schema. */
    "CREATE TABLE events("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  ts INTEGER NOT NULL,"
    "  type TEXT NOT NULL,"
    "  customer TEXT, anon TEXT, session TEXT,"
    "  body TEXT NOT NULL);"
    "CREATE INDEX events_customer ON events(customer) WHERE customer IS NOT NULL;"
    "CREATE INDEX events_anon ON events(anon) WHERE anon IS NOT NULL;"
    "CREATE TABLE items("
    "  id TEXT PRIMARY KEY,"
    "  body TEXT NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  deleted INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE customers("
    "  id TEXT PRIMARY KEY,"
    "  email TEXT, phone TEXT,"
    "  consent_email INTEGER NOT NULL DEFAULT 0,"
    "  consent_sms INTEGER NOT NULL DEFAULT 0,"
    "  body TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL);"
    "CREATE TABLE identities("
    "  anon TEXT PRIMARY KEY,"
    "  customer TEXT NOT NULL,"
    "  linked INTEGER NOT NULL);"
    "CREATE INDEX identities_customer ON identities(customer);"
    "CREATE TABLE outbox("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL UNIQUE,"
    "  customer TEXT, channel TEXT NOT NULL, template TEXT NOT NULL,"
    "  vars TEXT NOT NULL DEFAULT '{}',"
    "  due INTEGER NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending',"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL);"
    "CREATE INDEX outbox_due ON outbox(state, due);"
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);",
    /* 1 -> 2: experiment exposures, a unit's first one per experiment. */
    "CREATE TABLE exposures("
    "  experiment TEXT NOT NULL,"
    "  unit TEXT NOT NULL,"
    "  variant TEXT NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  PRIMARY KEY (experiment, unit));",
    /* 2 -> 3: delivery.  next_at: when a row is tried again (a retry's
       backoff, or a sender's lease while sending); 0 for at once.  The
       ledger of deliveries, kept when rows are purged, so a key is never
       sent twice to a channel. */
    "ALTER TABLE outbox ADD COLUMN next_at INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE outbox_sent("
    "  key TEXT NOT NULL,"
    "  channel TEXT NOT NULL,"
    "  customer TEXT,"
    "  sent INTEGER NOT NULL,"
    "  PRIMARY KEY (key, channel));"
    "CREATE INDEX outbox_sent_customer ON outbox_sent(customer, channel, sent)"
    "  WHERE customer IS NOT NULL;",
    /* 3 -> 4: message ids, so that a retried event is stored once. */
    "ALTER TABLE events ADD COLUMN msg_id TEXT;"
    "CREATE UNIQUE INDEX events_msg_id ON events(msg_id) WHERE msg_id IS NOT NULL;",
    /* 4 -> 5: the log is written on every event and read by person only by
       erasure and the experiment report.  Indexes on customer and anon ids
       put a random page of each into every commit (most of what a commit
       wrote); those two readers scan instead (SQLite builds a transient
       index for the report's join). */
    "DROP INDEX events_customer;"
    "DROP INDEX events_anon;",
    /* 5 -> 6: single-use coupons (store/coupon.c), and the contacts a
       frequency cap counts beside emails and coupons (popups shown). */
    "CREATE TABLE coupons("
    "  code TEXT PRIMARY KEY,"
    "  tier TEXT NOT NULL,"
    "  percent REAL,"
    "  customer TEXT, anon TEXT,"
    "  issued INTEGER NOT NULL,"
    "  expires INTEGER NOT NULL,"
    "  redeemed INTEGER,"
    "  order_id TEXT);"
    "CREATE INDEX coupons_customer ON coupons(customer) WHERE customer IS NOT NULL;"
    "CREATE INDEX coupons_anon ON coupons(anon) WHERE anon IS NOT NULL;"
    "CREATE TABLE contacts("
    "  unit TEXT NOT NULL,"
    "  channel TEXT NOT NULL,"
    "  campaign TEXT NOT NULL,"
    "  ts INTEGER NOT NULL);"
    "CREATE INDEX contacts_unit ON contacts(unit, ts);",
    /* 6 -> 7: what the console reads on every page, kept in the events'
       own transaction instead of counted from the log per request (1 M
       events: 0.7 s for the counts, 7 s for an experiment report).
       event_counts: events by type (stats).  outcomes: the purchases,
       recommendation clicks and carts of each customer and anonymous id
       (a row per id an event names), by unit and time, which the
       experiment report joins with the exposures.  Rows deleted from the
       log (erasure) leave both through the trigger. */
    "CREATE TABLE event_counts(type TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO event_counts SELECT type, count(*) FROM events GROUP BY type;"
    "CREATE TABLE outcomes("
    "  seq INTEGER NOT NULL,"
    "  unit TEXT NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  type TEXT NOT NULL,"
    "  revenue REAL NOT NULL,"
    "  PRIMARY KEY (seq, unit)) WITHOUT ROWID;"
    "INSERT INTO outcomes SELECT seq, customer, ts, type,"
    "  CASE WHEN type = 'purchase' THEN coalesce(json_extract(body, '$.revenue'), 0) ELSE 0 END"
    "  FROM events WHERE customer IS NOT NULL"
    "  AND type IN ('purchase', 'rec_clicked', 'add_to_cart');"
    "INSERT INTO outcomes SELECT seq, anon, ts, type,"
    "  CASE WHEN type = 'purchase' THEN coalesce(json_extract(body, '$.revenue'), 0) ELSE 0 END"
    "  FROM events WHERE anon IS NOT NULL AND anon IS NOT customer"
    "  AND type IN ('purchase', 'rec_clicked', 'add_to_cart');"
    "CREATE INDEX outcomes_unit ON outcomes(unit, ts);"
    "CREATE TRIGGER events_deleted AFTER DELETE ON events BEGIN"
    "  UPDATE event_counts SET n = n - 1 WHERE type = old.type;"
    "  DELETE FROM outcomes WHERE seq = old.seq;"
    "END;",
    /* 7 -> 8: email capture with double opt-in (store/consent.c): each
       request for an address, pending until its link is followed, then
       the consent record kept for audit. */
    "CREATE TABLE consents("
    "  id TEXT PRIMARY KEY,"
    "  customer TEXT NOT NULL, anon TEXT,"
    "  email TEXT NOT NULL,"
    "  purpose TEXT NOT NULL,"
    "  text TEXT NOT NULL,"
    "  source TEXT NOT NULL,"
    "  requested INTEGER NOT NULL,"
    "  expires INTEGER NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending',"
    "  confirmed INTEGER);"
    "CREATE INDEX consents_customer ON consents(customer);"
    "CREATE INDEX consents_anon ON consents(anon) WHERE anon IS NOT NULL;"
    "CREATE INDEX consents_email ON consents(email, requested);",
    /* 8 -> 9: which kind of id a contact's unit is.  Customer and
       anonymous ids are apart everywhere else (an anonymous id is whatever
       a browser sends: "c42" is not customer c42), but a popup's contact
       kept either in one column, so a stranger's popup asked as "c42"
       held customer c42's emails back for a day.  Rows written before are
       read as a customer's when that id is a customer's (a profile, a
       login, or an event naming it as the customer), as an anonymous id's
       otherwise; they count for a day or so. */
    "ALTER TABLE contacts ADD COLUMN is_anon INTEGER NOT NULL DEFAULT 0;"
    "UPDATE contacts SET is_anon = 1 WHERE unit NOT IN (SELECT id FROM customers)"
    "  AND unit NOT IN (SELECT customer FROM identities)"
    "  AND NOT EXISTS (SELECT 1 FROM events e WHERE e.customer = contacts.unit);",
    /* 9 -> 10: an anonymous id's link is its first customer's, as the
       index has it (a visitor is merged into the first customer an event
       names beside them).  Builds before 9 moved the link to each later
       customer signing in on the same browser, and a store they wrote
       kept it there: the second one's export listed the first one's
       events before login, and the first one's erasure left them.  Each
       link is taken again from the log, from the anonymous id's first
       event naming a customer; a link no kept event names stays. */
    "CREATE TEMP TABLE first_links(anon TEXT PRIMARY KEY, customer TEXT, ts INTEGER);"
    "INSERT INTO first_links SELECT anon, customer, ts FROM (SELECT anon, customer, ts,"
    "  min(seq) FROM events WHERE anon IS NOT NULL AND customer IS NOT NULL GROUP BY anon);"
    "UPDATE identities SET (customer, linked) ="
    "  (SELECT customer, ts FROM first_links f WHERE f.anon = identities.anon)"
    "  WHERE EXISTS (SELECT 1 FROM first_links f WHERE f.anon = identities.anon"
    "  AND f.customer IS NOT identities.customer);"
    "DROP TABLE first_links;",
};

int store_fail(tailor_error *err, int code, sqlite3 *db, const char *what) {
  return util_fail(err, code, NULL, "%s: %s", what,
                   db ? sqlite3_errmsg(db) : "cannot allocate");
}

static int sq_exec(store *base, const char *sql, tailor_error *err) {
  sq *s = (sq *)base;
  char *msg = NULL;
  if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    util_fail(err, TAILOR_ESTORE, NULL, "store: %s",
              msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return TAILOR_ESTORE;
  }
  return TAILOR_OK;
}

static int user_version(sqlite3 *db) {
  sqlite3_stmt *st;
  int v = -1;
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
    return -1;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return v;
}

static int sq_schema_version(store *base) {
  sq *s = (sq *)base; return user_version(s->db); }

/* Bring the schema to STORE_SCHEMA_VERSION, one transaction a step. */
static int migrate(sq *s, const store_options *opt, tailor_error *err) {
  int v = user_version(s->db);
  if (v < 0)
    return store_fail(err, TAILOR_ESTORE, s->db, "store: reading schema version");
  if (v > STORE_SCHEMA_VERSION)
    return util_fail(err, TAILOR_ESTORE, NULL,
                     "store: schema version %d is newer than this build (%d)", v,
                     STORE_SCHEMA_VERSION);
  /* Opened beside the writer (store.lock false), an older store is not
     upgraded under it: the engine writing there may be of an older build
     (one without <db>.lock among them), which would keep none of what a
     later migration counts as events come (event_counts, outcomes), and
     those counts would stay short for good. */
  if (v > 0 && v < STORE_SCHEMA_VERSION && opt->no_lock)
    return util_fail(err, TAILOR_ESTORE, NULL,
                     "store: schema version %d is older than this build (%d): an "
                     "engine that writes it upgrades it (this build's tailor serve, "
                     "ingest or checkpoint, the older one stopped), not one beside it "
                     "(store.lock false: stats, report, outbox, export-customer)",
                     v, STORE_SCHEMA_VERSION);
  for (; v < STORE_SCHEMA_VERSION; v++) {
    char bump[64];
    snprintf(bump, sizeof bump, "PRAGMA user_version=%d;", v + 1);
    if (sq_exec(&s->base, "BEGIN IMMEDIATE", err) ||
        sq_exec(&s->base, migrations[v], err) || sq_exec(&s->base, bump, err) ||
        sq_exec(&s->base, "COMMIT", err)) {
      sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
      return TAILOR_ESTORE;
    }
  }
  return TAILOR_OK;
}

static int prepare(sq *s, sqlite3_stmt **st, const char *sql,
                   tailor_error *err) {
  if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) !=
      SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, s->db, "store: preparing statement");
  return TAILOR_OK;
}

static const store_ops sqlite_ops;
static void sq_close(store *base);
static void sq_rollback(store *base);

/*
** SQLite keeps memory statistics behind a global mutex taken on every
** allocation it makes: a lock and an unlock per bound value and per row.
** tailor reads none of them, so they are turned off once, before SQLite
** first starts.  A program embedding tailor that started SQLite itself
** keeps its own setting (the call is then refused, harmlessly).
*/
static void sqlite_setup(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

/*
** One writing engine a SQLite store: its index and checkpoint follow only
** the events it writes itself, so events another engine appended meanwhile
** were never applied (and its checkpoint then said they were), and an
** erasure by another engine came back from the first one's checkpoint.
** An open-file-description lock on <path>.lock (not on the database, whose
** locks are SQLite's), held while the store is open: a second engine is
** refused whether it is another process or the same one, and closing
** another descriptor of the file drops nothing (as a process's POSIX lock
** would be).  The holder writes its pid there for the message.  The file
** stays: removing it would race.
*/
static int sq_lock(sq *s, tailor_error *err) {
  char lock[4096];
  snprintf(lock, sizeof lock, "%s.lock", s->path);
  s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (s->lock_fd < 0)
    return util_fail(err, TAILOR_ESTORE, "db", "store: cannot open the lock file %s: %s",
                     lock, strerror(errno));
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
  if (!fcntl(s->lock_fd, F_OFD_SETLK, &fl)) {
    char pid[24];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) || pwrite(s->lock_fd, pid, (size_t)n, 0) != n) {
      /* only the message of a refused engine lacks the pid */
    }
    return TAILOR_OK;
  }
  int e = errno;
  if (e != EACCES && e != EAGAIN)
    return util_fail(err, TAILOR_ESTORE, "db", "store: cannot lock %s: %s", lock, strerror(e));
  char text[24] = "", by[64] = "";
  ssize_t got = pread(s->lock_fd, text, sizeof text - 1, 0);
  long pid = got > 0 ? strtol(text, NULL, 10) : 0;
  if (pid == (long)getpid()) snprintf(by, sizeof by, " (this process: it is open already)");
  else if (pid > 0) snprintf(by, sizeof by, " (pid %ld)", pid);
  return util_fail(err, TAILOR_ESTORE, "db",
                   "store: %s is in use by another tailor engine%s: stop it first, or send "
                   "to its API; several nodes share a PostgreSQL store (docs/scale-out.md)",
                   s->path, by);
}

/* What to add to an open's error when the store's folder cannot be written
   (a read-only mount): SQLite's own message is "unable to open database
   file", even for a reader, whose WAL index lives beside the store. */
static const char *folder_hint(const char *path, char *buf, size_t n) {
  char dir[4096];
  if (!access(util_dir_of(path, dir, sizeof dir), W_OK)) return "";
  snprintf(buf, n, " (the folder %s cannot be written: a store writes its journal beside it)",
           dir);
  return buf;
}

store *store_sqlite_open(const char *path, const store_options *opt,
                         tailor_error *err) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, sqlite_setup);
  store_options defaults = {1, STORE_DEFAULT_BUSY_TIMEOUT_MS, 0, 0};
  if (!opt) opt = &defaults;
  sq *s = calloc(1, sizeof *s);
  if (s) s->base.ops = &sqlite_ops, s->lock_fd = -1;
  if (!s || !(s->path = strdup(path))) {
    free(s);
    util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate");
    return NULL;
  }
  /* A "file:" URI names a file SQLite resolves itself, which the lock on
     <path>.lock would not: a writer is refused it (config.c says so first). */
  if (!opt->readonly && !strncmp(path, "file:", 5)) {
    util_fail(err, TAILOR_ECONFIG, "db",
              "store: '%.200s' is a SQLite URI: a writer takes the file's path", path);
    sq_close(&s->base);
    return NULL;
  }
  if (!opt->readonly && !opt->no_lock && *path && strcmp(path, ":memory:") &&
      sq_lock(s, err)) {
    sq_close(&s->base);
    return NULL;
  }
  int flags = opt->readonly ? SQLITE_OPEN_READONLY
                            : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  flags |= SQLITE_OPEN_NOMUTEX; /* one thread at a time, by contract */
  if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
    char what[600], hint[400];
    snprintf(what, sizeof what, "store: cannot open '%s'%s", path,
             folder_hint(path, hint, sizeof hint));
    store_fail(err, TAILOR_ESTORE, s->db, what);
    sq_close(&s->base);
    return NULL;
  }
  sqlite3_busy_timeout(s->db, opt->busy_timeout_ms > 0
                                  ? opt->busy_timeout_ms
                                  : STORE_DEFAULT_BUSY_TIMEOUT_MS);
  sqlite3_extended_result_codes(s->db, 1);
  char pragmas[160];
  snprintf(pragmas, sizeof pragmas,
           "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; "
           "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; "
           /* erased customers leave no readable trace in free pages */
           "PRAGMA secure_delete=ON;",
           opt->synchronous_full ? "FULL" : "NORMAL");
  /* A file that is not a database fails here with "file is not a database". */
  if ((!opt->readonly && sq_exec(&s->base, pragmas, err)) ||
      (!opt->readonly && migrate(s, opt, err))) {
    char msg[sizeof err->message], hint[400];
    if (err) {
      snprintf(msg, sizeof msg, "%s (%s)%s", err->message, path,
               folder_hint(path, hint, sizeof hint));
      memcpy(err->message, msg, sizeof msg);
    }
    sq_close(&s->base);
    return NULL;
  }
  char rows[SQ_EVENT_ROWS * 16 + 128];
  size_t at = (size_t)snprintf(rows, sizeof rows,
                               "INSERT INTO events(ts,type,customer,anon,session,body) VALUES");
  for (int i = 0; i < SQ_EVENT_ROWS; i++)
    at += (size_t)snprintf(rows + at, sizeof rows - at, "%s(?,?,?,?,?,?)", i ? "," : "");
  if (!opt->readonly &&
      (prepare(s, &s->ins_events, rows, err) ||
       prepare(s, &s->ins_event,
               "INSERT INTO events(ts,type,customer,anon,session,body,msg_id) "
               "VALUES(?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
               err) ||
       prepare(s, &s->up_item,
               "INSERT INTO items(id,body,updated,deleted) VALUES(?,?,?,0) "
               "ON CONFLICT(id) DO UPDATE SET body=excluded.body,"
               "updated=excluded.updated,deleted=0",
               err) ||
       prepare(s, &s->del_item,
               "UPDATE items SET deleted=1, updated=? WHERE id=?", err) ||
       prepare(s, &s->up_customer,
               "INSERT INTO customers(id,email,phone,consent_email,consent_sms,"
               "body,created,updated) VALUES(?1,?2,?3,coalesce(?4,0),coalesce(?5,0),"
               "?6,?7,?7) ON CONFLICT(id) DO UPDATE SET "
               "email=coalesce(excluded.email,email),"
               "phone=coalesce(excluded.phone,phone),"
               /* Consent is given for an address: a new one without its
                  own consent has none (a signed-in visitor's identify
                  naming another address must not send it the shop's
                  email; docs/events.md). */
               "consent_email=coalesce(?4,CASE WHEN excluded.email IS NOT NULL AND "
               "excluded.email IS NOT email THEN 0 ELSE consent_email END),"
               "consent_sms=coalesce(?5,CASE WHEN excluded.phone IS NOT NULL AND "
               "excluded.phone IS NOT phone THEN 0 ELSE consent_sms END),"
               "body=excluded.body, updated=excluded.updated",
               err) ||
       /* An anonymous id stays with the first customer it was linked to,
          as in the index (person.c merges a visitor into one customer):
          a second customer signing in on the same browser (a shared
          computer, no tailor.reset()) took the link over here alone, and
          their export and erasure then held the first one's events. */
       prepare(s, &s->up_identity,
               "INSERT INTO identities(anon,customer,linked) VALUES(?,?,?) "
               "ON CONFLICT(anon) DO NOTHING",
               err) ||
       prepare(s, &s->add_count,
               "INSERT INTO event_counts(type,n) VALUES(?1,?2) "
               "ON CONFLICT(type) DO UPDATE SET n=n+excluded.n",
               err) ||
       prepare(s, &s->ins_outcome,
               "INSERT OR IGNORE INTO outcomes(seq,unit,ts,type,revenue) VALUES(?,?,?,?,?)",
               err))) {
    sq_close(&s->base);
    return NULL;
  }
  return &s->base;
}

static void sq_close(store *base) {
  sq *s = (sq *)base;
  if (!s) return;
  sqlite3_finalize(s->ins_event);
  sqlite3_finalize(s->ins_events);
  sqlite3_finalize(s->up_item);
  sqlite3_finalize(s->del_item);
  sqlite3_finalize(s->up_customer);
  sqlite3_finalize(s->up_identity);
  sqlite3_finalize(s->add_count);
  sqlite3_finalize(s->ins_outcome);
  sqlite3_close(s->db);
  if (s->lock_fd >= 0) close(s->lock_fd);
  free(s->path);
  free(s);
}



/* Run a bound statement to completion and reset it. */
static int step_done(sq *s, sqlite3_stmt *st, tailor_error *err) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) return store_fail(err, TAILOR_ESTORE, s->db, "store: write");
  return TAILOR_OK;
}

/* A consent flag the upsert names (0 or 1), or NULL to keep the stored
   one (a new customer starts without consent). */
static void bind_consent(sqlite3_stmt *st, int i, json_t *profile,
                         const char *channel) {
  json_t *c = json_object_get(json_object_get(profile, "consent"), channel);
  if (json_is_boolean(c))
    sqlite3_bind_int(st, i, json_is_true(c));
  else
    sqlite3_bind_null(st, i);
}

/* The state tables an event changes, in the event's own transaction. */
static int apply_state(sq *s, const ev *e, tailor_error *err) {
  sqlite3_stmt *st;
  switch (e->type) {
    case EV_ITEM_UPSERT: {
      json_t *item = e->object;
      char *body = json_dumps(item, JSON_COMPACT);
      if (!body) return util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate");
      st = s->up_item;
      sq_bind_text(st, 1, json_string_value(json_object_get(item, "id")));
      sqlite3_bind_text(st, 2, body, -1, free);
      sqlite3_bind_int64(st, 3, e->ts);
      return step_done(s, st, err);
    }
    case EV_ITEM_DELETE:
      st = s->del_item;
      sqlite3_bind_int64(st, 1, e->ts);
      sq_bind_text(st, 2, e->n_lines ? e->lines[0].item : NULL);
      return step_done(s, st, err);
    case EV_CUSTOMER_UPSERT: {
      json_t *c = e->object;
      char *body = json_dumps(c, JSON_COMPACT);
      if (!body) return util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate");
      st = s->up_customer;
      sq_bind_text(st, 1, e->customer);
      sq_bind_text(st, 2, json_string_value(json_object_get(c, "email")));
      sq_bind_text(st, 3, json_string_value(json_object_get(c, "phone")));
      bind_consent(st, 4, c, "email");
      bind_consent(st, 5, c, "sms");
      sqlite3_bind_text(st, 6, body, -1, free);
      sqlite3_bind_int64(st, 7, e->ts);
      return step_done(s, st, err);
    }
    case EV_IDENTIFY:
      st = s->up_identity;
      sq_bind_text(st, 1, e->anon);
      sq_bind_text(st, 2, e->customer);
      sqlite3_bind_int64(st, 3, e->ts);
      return step_done(s, st, err);
    default:
      return TAILOR_OK;
  }
}

static int sq_begin(store *base, tailor_error *err) {
  sq *s = (sq *)base;
  return sq_exec(&s->base, "BEGIN IMMEDIATE", err) ? TAILOR_ESTORE : TAILOR_OK;
}

static int sq_commit(store *base, tailor_error *err) {
  sq *s = (sq *)base;
  if (sq_exec(&s->base, "COMMIT", err) == TAILOR_OK) return TAILOR_OK;
  sq_rollback(&s->base);
  return TAILOR_ESTORE;
}

static void sq_rollback(store *base) {
  sq *s = (sq *)base; sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); }

/* An outcome row of event `seq` for `unit` (migration 6 -> 7). */
static int add_outcome(sq *s, int64_t seq, const char *unit, const ev *e,
                       tailor_error *err) {
  sqlite3_stmt *st = s->ins_outcome;
  sqlite3_bind_int64(st, 1, seq);
  sqlite3_bind_text(st, 2, unit, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, e->ts);
  sqlite3_bind_text(st, 4, ev_type_name(e->type), -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 5, e->type == EV_PURCHASE && e->has_revenue ? e->revenue : 0);
  return step_done(s, st, err);
}

/* An event's columns but its message id, from parameter `at` on. */
static void bind_event(sqlite3_stmt *st, int at, const ev *e, const char *body, size_t blen) {
  sqlite3_bind_int64(st, at, e->ts);
  sqlite3_bind_text(st, at + 1, ev_type_name(e->type), -1, SQLITE_STATIC);
  sq_bind_text(st, at + 2, e->customer);
  sq_bind_text(st, at + 3, e->anon);
  sq_bind_text(st, at + 4, e->session);
  sqlite3_bind_text(st, at + 5, body, (int)blen, SQLITE_STATIC);
}

/* What an event stored as `seq` adds beside its row: its outcomes, the
   catalog, profile and identity tables. */
static int after_event(sq *s, ev *e, int64_t seq, tailor_error *err) {
  if ((e->type == EV_PURCHASE || e->type == EV_REC_CLICKED || e->type == EV_ADD_TO_CART) &&
      ((e->customer && add_outcome(s, seq, e->customer, e, err)) ||
       (e->anon && (!e->customer || strcmp(e->anon, e->customer)) &&
        add_outcome(s, seq, e->anon, e, err))))
    return TAILOR_ESTORE;
  if (apply_state(s, e, err)) return err ? err->code : TAILOR_ESTORE;
  /* Any event that names both ids links them, as a login would. */
  if (e->type != EV_IDENTIFY && e->customer && e->anon) {
    sqlite3_stmt *id = s->up_identity;
    sq_bind_text(id, 1, e->anon);
    sq_bind_text(id, 2, e->customer);
    sqlite3_bind_int64(id, 3, e->ts);
    if (step_done(s, id, err)) return TAILOR_ESTORE;
  }
  return TAILOR_OK;
}

/*
** The events' rows, in order.  A run of SQ_EVENT_ROWS events without
** message ids is one INSERT of that many rows (their seqs follow one
** another: AUTOINCREMENT gives each row the next), which writes the
** table's AUTOINCREMENT counter once instead of per row; an event with a
** message id is an INSERT of its own, which a stored id turns into nothing
** (the event is a duplicate).
*/
static int sq_append_rows(store *base, ev *const *evs, size_t n, int64_t *seqs,
                      tailor_error *err) {
  sq *s = (sq *)base;
  uint32_t counts[EV_TYPE_COUNT] = {0};
  for (size_t i = 0; i < n;) {
    size_t run = 0, blen;
    while (run < SQ_EVENT_ROWS && i + run < n && !evs[i + run]->msg_id) run++;
    if (run < SQ_EVENT_ROWS) run = 1;
    sqlite3_stmt *st = run > 1 ? s->ins_events : s->ins_event;
    for (size_t k = 0; k < run; k++) {
      const char *body = ev_body(evs[i + k], &blen);
      if (!body) return util_fail(err, TAILOR_ENOMEM, NULL, "store: cannot allocate");
      bind_event(st, (int)(6 * k) + 1, evs[i + k], body, blen);
    }
    if (run == 1) sq_bind_text(st, 7, evs[i]->msg_id);
    if (step_done(s, st, err)) return TAILOR_ESTORE;
    /* ON CONFLICT DO NOTHING: a message id seen before changes nothing. */
    if (run == 1 && (evs[i]->dup = evs[i]->msg_id && sqlite3_changes(s->db) == 0)) {
      if (seqs) seqs[i] = 0;
      i++;
      continue;
    }
    int64_t first = sqlite3_last_insert_rowid(s->db) - (int64_t)run + 1;
    for (size_t k = 0; k < run; k++, i++) {
      if (seqs) seqs[i] = first + (int64_t)k;
      counts[evs[i]->type]++;
      if (after_event(s, evs[i], first + (int64_t)k, err)) return err ? err->code : TAILOR_ESTORE;
    }
  }
  for (int t = 0; t < EV_TYPE_COUNT; t++) {
    if (!counts[t]) continue;
    sqlite3_bind_text(s->add_count, 1, ev_type_name((ev_type)t), -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->add_count, 2, counts[t]);
    if (step_done(s, s->add_count, err)) return TAILOR_ESTORE;
  }
  return TAILOR_OK;
}

static int64_t query_int(sq *s, const char *sql) {
  sqlite3_stmt *st;
  int64_t v = -1;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* The highest seq ever given (AUTOINCREMENT's mark in sqlite_sequence):
   an erasure of the person whose events end the log lowers max(seq), and a
   checkpoint taken up to there was then refused as newer than the store. */
static int64_t sq_last_seq(store *base) {
  sq *s = (sq *)base;
  return query_int(s, "SELECT max(coalesce((SELECT max(seq) FROM events), 0), "
                      "coalesce((SELECT seq FROM sqlite_sequence WHERE name='events'), 0))");
}

static int64_t sq_count(store *base, const char *table) {
  sq *s = (sq *)base;
  static const char *const known[] = {"events", "items", "customers",
                                      "identities", "outbox"};
  for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
    if (strcmp(table, known[i]) == 0) {
      char sql[96];
      if (!strcmp(table, "events")) /* counted as they come (migration 6 -> 7) */
        return query_int(s, "SELECT coalesce(sum(n), 0) FROM event_counts");
      snprintf(sql, sizeof sql, "SELECT count(*) FROM %s%s", known[i],
               strcmp(known[i], "items") == 0 ? " WHERE deleted=0" : "");
      return query_int(s, sql);
    }
  }
  return -1;
}

static char *sq_meta_get(store *base, const char *key) {
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  char *out = NULL;
  if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key=?1", -1, &st, NULL) !=
      SQLITE_OK)
    return NULL;
  sq_bind_text(st, 1, key);
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    out = strdup((const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return out;
}

static int sq_meta_set(store *base, const char *key, const char *value, tailor_error *err) {
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  const char *sql = value ? "INSERT INTO meta(key,value) VALUES(?1,?2) "
                            "ON CONFLICT(key) DO UPDATE SET value=excluded.value"
                          : "DELETE FROM meta WHERE key=?1";
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, s->db, "store: meta");
  sq_bind_text(st, 1, key);
  if (value) sq_bind_text(st, 2, value);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? TAILOR_OK : store_fail(err, TAILOR_ESTORE, s->db, "store: meta");
}

static int sq_scan(store *base, int64_t after, store_event_fn fn, void *ud,
                   store_known_fn known, tailor_error *err) {
  (void)known; /* SQLite's writer applies its events itself (ingest.c) */
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT seq, ts, body FROM events WHERE seq > ? "
                                "ORDER BY seq",
                         -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, s->db, "store: scan");
  sqlite3_bind_int64(st, 1, after);
  int rc = TAILOR_OK, step;
  tailor_error why = {0}; /* a refused row's reason (util_fail writes it whole) */
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t seq = sqlite3_column_int64(st, 0);
    /* The text the store wrote, read by the parser that accepted it; what
       was accepted once is accepted again (no size or depth limit), at
       its stored time. */
    ev_limits lim = {(size_t)-1, (size_t)-1, sqlite3_column_int64(st, 1), 1 << 20, 0, 1};
    const char *body = (const char *)sqlite3_column_text(st, 2);
    int blen = sqlite3_column_bytes(st, 2);
    ev e;
    if (ev_parse(body, (size_t)blen, &lim, &e, &why) != TAILOR_OK) {
      /* A row that no longer parses (an older build's, or damage): said,
         with its seq, and passed over or the scan's end (store.h). */
      if ((rc = store_unreadable(base, seq, why.message, err))) break;
      if ((rc = fn(ud, seq, NULL))) break; /* passed over: the position moves on */
      continue;
    }
    rc = fn(ud, seq, &e);
    ev_clear(&e);
    if (rc) break;
  }
  if (rc == TAILOR_OK && step != SQLITE_DONE)
    rc = store_fail(err, TAILOR_ESTORE, s->db, "store: scan");
  sqlite3_finalize(st);
  return rc;
}

static json_t *sq_event_counts(store *base) {
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  json_t *out = json_object();
  if (sqlite3_prepare_v2(s->db,
                         "SELECT type, n FROM event_counts WHERE n > 0 ORDER BY type",
                         -1, &st, NULL) != SQLITE_OK)
    return out;
  while (sqlite3_step(st) == SQLITE_ROW)
    json_object_set_new(out, (const char *)sqlite3_column_text(st, 0),
                        json_integer(sqlite3_column_int64(st, 1)));
  sqlite3_finalize(st);
  return out;
}

/* The JSON document in column 0 of a one-row query keyed by `id`. */
static json_t *query_doc(sq *s, const char *sql, const char *id) {
  sqlite3_stmt *st;
  json_t *doc = NULL;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return NULL;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) == SQLITE_ROW) {
    const char *body = (const char *)sqlite3_column_text(st, 0);
    if (body) doc = json_loads(body, 0, NULL);
  }
  sqlite3_finalize(st);
  return doc;
}

static json_t *sq_item(store *base, const char *id) {
  sq *s = (sq *)base;
  return query_doc(s, "SELECT body FROM items WHERE id=? AND deleted=0", id);
}

static json_t *sq_customer(store *base, const char *id) {
  sq *s = (sq *)base;
  /* The body is the latest upsert; email, phone and consent are columns
     that an upsert which omits them keeps, so they win. */
  sqlite3_stmt *st;
  json_t *doc = NULL;
  if (sqlite3_prepare_v2(s->db,
                         "SELECT body, email, phone, consent_email, consent_sms "
                         "FROM customers WHERE id=?",
                         -1, &st, NULL) != SQLITE_OK)
    return NULL;
  sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) == SQLITE_ROW &&
      (doc = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL))) {
    for (int c = 1; c <= 2; c++) {
      const char *v = (const char *)sqlite3_column_text(st, c);
      if (v) json_object_set_new(doc, c == 1 ? "email" : "phone", json_string(v));
    }
    json_t *consent = json_object_get(doc, "consent");
    if (!json_is_object(consent)) {
      consent = json_object();
      json_object_set_new(doc, "consent", consent);
    }
    json_object_set_new(consent, "email", json_boolean(sqlite3_column_int(st, 3)));
    json_object_set_new(consent, "sms", json_boolean(sqlite3_column_int(st, 4)));
  }
  sqlite3_finalize(st);
  return doc;
}

static char *sq_identity(store *base, const char *anon) {
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  char *out = NULL;
  if (sqlite3_prepare_v2(s->db, "SELECT customer FROM identities WHERE anon=?",
                         -1, &st, NULL) != SQLITE_OK)
    return NULL;
  sqlite3_bind_text(st, 1, anon, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) == SQLITE_ROW)
    out = strdup((const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return out;
}

static int sq_outbox_add(store *base, const store_outbox_row *row, int *added,
                     tailor_error *err) {
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db,
                         "INSERT INTO outbox(key,customer,channel,template,vars,"
                         "due,created,updated) VALUES(?1,?2,?3,?4,?5,?6,"
                         "?7,?7) ON CONFLICT(key) DO NOTHING",
                         -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, s->db, "store: outbox");
  sq_bind_text(st, 1, row->key);
  sq_bind_text(st, 2, row->customer);
  sq_bind_text(st, 3, row->channel);
  sq_bind_text(st, 4, row->template_);
  sq_bind_text(st, 5, row->vars ? row->vars : "{}");
  sqlite3_bind_int64(st, 6, row->due);
  sqlite3_bind_int64(st, 7, util_now_ms());
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return store_fail(err, TAILOR_ESTORE, s->db, "store: outbox");
  if (added) *added = sqlite3_changes(s->db) > 0;
  return TAILOR_OK;
}

/* The sessions a customer (and the anonymous ids linked to them) used, as a
   JSON array of ids; NULL on failure. */
static json_t *sessions_of(sq *s, const char *customer, tailor_error *err) {
  sqlite3_stmt *st;
  json_t *out = json_array();
  if (sqlite3_prepare_v2(s->db,
                         "SELECT session FROM " SQ_SESSIONS_OF,
                         -1, &st, NULL) != SQLITE_OK) {
    json_decref(out);
    store_fail(err, TAILOR_ESTORE, s->db, "store: forget");
    return NULL;
  }
  sqlite3_bind_text(st, 1, customer, -1, SQLITE_TRANSIENT);
  while (sqlite3_step(st) == SQLITE_ROW)
    json_array_append_new(out, json_string((const char *)sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  return out;
}

static int sq_forget(store *base, const char *customer, int64_t *events, json_t **sessions,
                 tailor_error *err) {
  sq *s = (sq *)base;
  /* Order matters: identities go last, the steps before find the anonymous
     ids through them.  ?2 is the JSON array of the person's sessions. */
  static const char *const steps[] = {
      "DELETE FROM events WHERE " SQ_EVENTS_OF("(SELECT value FROM json_each(?2))"),
      "DELETE FROM exposures WHERE unit=?1 OR unit IN "
      "(SELECT anon FROM identities WHERE customer=?1)",
      "DELETE FROM coupons WHERE customer=?1 OR anon IN "
      "(SELECT anon FROM identities WHERE customer=?1)",
      "DELETE FROM contacts WHERE " SQ_CONTACTS_OF,
      /* Before the profile goes: their address, asked for by anyone, and
         the confirmation emails of those requests (the text they quote). */
      "DELETE FROM outbox WHERE key IN (SELECT 'optin:' || id FROM consents WHERE "
      CONSENTS_OF ")",
      "DELETE FROM outbox_sent WHERE key IN (SELECT 'optin:' || id FROM consents WHERE "
      CONSENTS_OF ")",
      "DELETE FROM consents WHERE " CONSENTS_OF,
      "DELETE FROM outbox WHERE customer=?1",
      "DELETE FROM outbox_sent WHERE customer=?1",
      "DELETE FROM customers WHERE id=?1",
      "DELETE FROM identities WHERE customer=?1",
  };
  json_t *sess = NULL;
  char *sess_text = NULL;
  if (sessions) *sessions = NULL;
  if (sq_exec(&s->base, "BEGIN IMMEDIATE", err)) return TAILOR_ESTORE;
  if (!(sess = sessions_of(s, customer, err)) ||
      !(sess_text = json_dumps(sess, JSON_COMPACT))) {
    if (sess) store_fail(err, TAILOR_ENOMEM, NULL, "store: forget");
    goto rollback;
  }
  for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, steps[i], -1, &st, NULL) != SQLITE_OK) {
      store_fail(err, TAILOR_ESTORE, s->db, "store: forget");
      goto rollback;
    }
    sqlite3_bind_text(st, 1, customer, -1, SQLITE_TRANSIENT);
    if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_text(st, 2, sess_text, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
      store_fail(err, TAILOR_ESTORE, s->db, "store: forget");
      goto rollback;
    }
    if (i == 0 && events) *events = sqlite3_changes(s->db);
  }
  if (sq_exec(&s->base, "COMMIT", err) == TAILOR_OK) {
    /* secure_delete zeroed the freed cells in the database; the old copies
       of the pages live in the WAL until a checkpoint, so one runs now and
       truncates it. */
    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    free(sess_text);
    if (sessions) *sessions = sess;
    else json_decref(sess);
    return TAILOR_OK;
  }
rollback:
  sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
  free(sess_text);
  json_decref(sess);
  return TAILOR_ESTORE;
}

json_t *sq_row_json(sqlite3_stmt *st) {
  json_t *row = json_object();
  for (int c = 0; c < sqlite3_column_count(st); c++) {
    const char *name = sqlite3_column_name(st, c);
    json_t *v;
    switch (sqlite3_column_type(st, c)) {
      case SQLITE_INTEGER: v = json_integer(sqlite3_column_int64(st, c)); break;
      case SQLITE_FLOAT: v = json_real(sqlite3_column_double(st, c)); break;
      case SQLITE_NULL: v = json_null(); break;
      default: {
        const char *text = (const char *)sqlite3_column_text(st, c);
        if (!text) text = "";
        v = !strcmp(name, "body") || !strcmp(name, "vars") ? json_loads(text, 0, NULL) : NULL;
        if (!v) v = json_string(text);
      }
    }
    json_object_set_new(row, name, v);
  }
  return row;
}

/* The rows of `sql` (bound to the customer as ?1) as a JSON array of
   objects keyed by column name; a column named "body" (JSON text) is
   parsed.  Adds to `out`; 0, or -1 with `err`. */
static int export_rows(store *base, const char *sql, const char *customer, json_t *out,
                       tailor_error *err) {
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
    store_fail(err, TAILOR_ESTORE, s->db, "store: export");
    return -1;
  }
  sqlite3_bind_text(st, 1, customer, -1, SQLITE_TRANSIENT);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    json_array_append_new(out, sq_row_json(st));
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) {
    store_fail(err, TAILOR_ESTORE, s->db, "store: export");
    return -1;
  }
  return 0;
}

static json_t *sq_export_customer(store *base, const char *customer, tailor_error *err) {
  static const store_export_part parts[] = {
      {"profile", "SELECT id, email, phone, consent_email, consent_sms, body, created, updated "
                  "FROM customers WHERE id=?1"},
      {"identities", "SELECT anon, linked FROM identities WHERE customer=?1"},
      {"events",
       "SELECT seq, body FROM events WHERE " SQ_EVENTS_OF(SQ_SESSIONS_OF) " ORDER BY seq"},
      {"outbox", "SELECT key, channel, template, vars, due, state, attempts, created, updated "
                 "FROM outbox WHERE customer=?1 ORDER BY id"},
      {"deliveries", "SELECT key, channel, sent FROM outbox_sent WHERE customer=?1 ORDER BY sent"},
      {"exposures", "SELECT experiment, variant, ts FROM exposures WHERE unit=?1 OR unit IN "
                    "(SELECT anon FROM identities WHERE customer=?1)"},
      {"coupons", "SELECT code, tier, percent, issued, expires, redeemed, order_id FROM coupons "
                  "WHERE customer=?1 OR anon IN (SELECT anon FROM identities WHERE customer=?1) "
                  "ORDER BY issued"},
      {"contacts", "SELECT channel, campaign, ts FROM contacts WHERE " SQ_CONTACTS_OF
                   " ORDER BY ts"},
      {"consents", "SELECT id, email, purpose, text, source, anon, requested, expires, state, "
                   "confirmed FROM consents WHERE " CONSENTS_OF " ORDER BY requested"},
  };
  return store_export_parts(base, parts, sizeof parts / sizeof *parts, customer, export_rows,
                            err);
}

static int sq_outbox_cancel(store *base, const char *key, int *cancelled,
                        tailor_error *err) {
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db,
                         "UPDATE outbox SET state='cancelled', updated=?2 "
                         "WHERE key=?1 AND state IN ('pending','sending')",
                         -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, s->db, "store: outbox");
  sq_bind_text(st, 1, key);
  sqlite3_bind_int64(st, 2, util_now_ms());
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return store_fail(err, TAILOR_ESTORE, s->db, "store: outbox");
  if (cancelled) *cancelled = sqlite3_changes(s->db) > 0;
  return TAILOR_OK;
}

static int64_t sq_outbox_due(store *base, const char *customer, const char *channel,
                             int64_t from, int64_t to, const char *except) {
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  int64_t n = 0;
  /* substr, not LIKE: keys may hold % and _. */
  if (sqlite3_prepare_v2(s->db,
                         "SELECT count(*) FROM outbox WHERE customer=?1 AND channel=?2 "
                         "AND due BETWEEN ?3 AND ?4 AND state IN ('pending','sending','sent') "
                         "AND NOT (?5 IS NOT NULL AND state='pending' AND "
                         "substr(key, 1, length(?5)) = ?5) AND " SQ_NOT_OPTIN,
                         -1, &st, NULL) != SQLITE_OK)
    return 0;
  sq_bind_text(st, 1, customer);
  sq_bind_text(st, 2, channel);
  sqlite3_bind_int64(st, 3, from);
  sqlite3_bind_int64(st, 4, to);
  if (except) sq_bind_text(st, 5, except);
  else sqlite3_bind_null(st, 5);
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

static json_t *sq_outbox_list(store *base, const char *state, const char *customer,
                          int limit) {
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  json_t *out = json_array();
  if (sqlite3_prepare_v2(s->db,
                         "SELECT id,key,customer,channel,template,vars,due,state,"
                         "attempts,last_error,created,next_at,updated FROM outbox "
                         "WHERE (?1 IS NULL OR state=?1) AND (?2 IS NULL OR customer=?2) "
                         "ORDER BY id DESC LIMIT ?3",
                         -1, &st, NULL) != SQLITE_OK)
    return out;
  sq_bind_text(st, 1, state);
  sq_bind_text(st, 2, customer);
  sqlite3_bind_int(st, 3, limit);
  while (sqlite3_step(st) == SQLITE_ROW) {
    json_t *vars = json_loads((const char *)sqlite3_column_text(st, 5), 0, NULL);
    const char *cust = (const char *)sqlite3_column_text(st, 2);
    const char *last = (const char *)sqlite3_column_text(st, 9);
    json_array_append_new(
        out, json_pack("{sI ss ss? ss ss so sI ss si ss? sI sI sI}", "id",
                       (json_int_t)sqlite3_column_int64(st, 0), "key",
                       (const char *)sqlite3_column_text(st, 1), "customer",
                       cust, "channel",
                       (const char *)sqlite3_column_text(st, 3), "template",
                       (const char *)sqlite3_column_text(st, 4), "vars",
                       vars ? vars : json_object(), "due",
                       (json_int_t)sqlite3_column_int64(st, 6), "state",
                       (const char *)sqlite3_column_text(st, 7), "attempts",
                       sqlite3_column_int(st, 8), "last_error",
                       last, "created",
                       (json_int_t)sqlite3_column_int64(st, 10), "next_at",
                       (json_int_t)sqlite3_column_int64(st, 11), "updated",
                       (json_int_t)sqlite3_column_int64(st, 12)));
  }
  sqlite3_finalize(st);
  return out;
}

static int sq_exposures_add(store *base, const store_exposure *rows, size_t n,
                            tailor_error *err) {
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  if (sq_exec(&s->base, "BEGIN IMMEDIATE", err)) return TAILOR_ESTORE;
  if (sqlite3_prepare_v2(s->db,
                         "INSERT OR IGNORE INTO exposures(experiment,unit,variant,ts) "
                         "VALUES(?,?,?,?)",
                         -1, &st, NULL) != SQLITE_OK) {
    store_fail(err, TAILOR_ESTORE, s->db, "store: exposures");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return TAILOR_ESTORE;
  }
  int rc = TAILOR_OK;
  for (size_t i = 0; i < n; i++) {
    sq_bind_text(st, 1, rows[i].experiment);
    sq_bind_text(st, 2, rows[i].unit);
    sq_bind_text(st, 3, rows[i].variant);
    sqlite3_bind_int64(st, 4, rows[i].ts);
    if ((rc = step_done(s, st, err))) break;
  }
  sqlite3_finalize(st);
  if (rc || sq_exec(&s->base, "COMMIT", err)) {
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return TAILOR_ESTORE;
  }
  return TAILOR_OK;
}

static json_t *sq_exposure_outcomes(store *base, int64_t window_ms, tailor_error *err) {
  sq *s = (sq *)base;
  /* Per person (a customer with the anonymous ids the identities table
     links to them; an id linked to nobody is its own person): the arm of
     their first exposure, from its time on, and their outcomes in the
     window each counted once (an order names the customer and the anon
     id: two outcome rows, one event).  A visitor exposed as anon and
     again after login is one visitor, of the arm they saw first.  Through
     outcomes' index by unit and time and identities' by customer. */
  static const char sql[] =
      "WITH f AS ("
      "  SELECT experiment, person, variant, min(ts) AS ts FROM ("
      "    SELECT x.experiment, x.variant, x.ts, coalesce(i.customer, x.unit) AS person"
      "    FROM exposures x LEFT JOIN identities i ON i.anon = x.unit)"
      "  GROUP BY experiment, person),"
      " o AS ("
      "  SELECT f.experiment, f.person, o.seq, o.type, o.revenue"
      "  FROM f JOIN outcomes o ON o.unit = f.person AND o.ts >= f.ts AND o.ts < f.ts + ?1"
      "  UNION"
      "  SELECT f.experiment, f.person, o.seq, o.type, o.revenue"
      "  FROM f JOIN identities i ON i.customer = f.person"
      "  JOIN outcomes o ON o.unit = i.anon AND o.ts >= f.ts AND o.ts < f.ts + ?1)"
      "SELECT f.experiment, f.variant,"
      "  coalesce(sum(o.type = 'purchase'), 0),"
      "  coalesce(sum(CASE WHEN o.type = 'purchase' THEN o.revenue END), 0),"
      "  coalesce(sum(o.type = 'rec_clicked'), 0),"
      "  coalesce(sum(o.type = 'add_to_cart'), 0)"
      " FROM f LEFT JOIN o ON o.experiment = f.experiment AND o.person = f.person"
      " GROUP BY f.experiment, f.person ORDER BY f.experiment, f.variant";
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
    store_fail(err, TAILOR_ESTORE, s->db, "store: experiment report");
    return NULL;
  }
  sqlite3_bind_int64(st, 1, window_ms);
  json_t *out = json_array();
  while (sqlite3_step(st) == SQLITE_ROW)
    json_array_append_new(
        out, json_pack("[ss Ifii]", (const char *)sqlite3_column_text(st, 0),
                       (const char *)sqlite3_column_text(st, 1),
                       (json_int_t)sqlite3_column_int64(st, 2), sqlite3_column_double(st, 3),
                       sqlite3_column_int(st, 4), sqlite3_column_int(st, 5)));
  sqlite3_finalize(st);
  return out;
}

static int sq_outbox_cancel_prefix(store *base, const char *prefix, int *cancelled,
                               tailor_error *err) {
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  /* substr, not LIKE: keys may hold % and _. */
  if (sqlite3_prepare_v2(s->db,
                         "UPDATE outbox SET state='cancelled', updated=?2 "
                         "WHERE state IN ('pending','sending') AND "
                         "substr(key, 1, length(?1)) = ?1",
                         -1, &st, NULL) != SQLITE_OK)
    return store_fail(err, TAILOR_ESTORE, s->db, "store: outbox");
  sq_bind_text(st, 1, prefix);
  sqlite3_bind_int64(st, 2, util_now_ms());
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return store_fail(err, TAILOR_ESTORE, s->db, "store: outbox");
  if (cancelled) *cancelled = sqlite3_changes(s->db);
  return TAILOR_OK;
}

sqlite3 *store_db(store *base) {
  return base && base->ops == &sqlite_ops ? ((sq *)base)->db : NULL;
}

/* A file's checkpoint is beside it: "<path>.ckpt". */
static char *sq_checkpoint_path(store *base) {
  sq *s = (sq *)base;
  if (!*s->path || !strcmp(s->path, ":memory:")) return NULL;
  size_t n = strlen(s->path) + 6;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%s.ckpt", s->path);
  return p;
}

/* WAL lets a second, read-only connection read while the writer commits;
   an in-memory store is private to its connection. */
static store *sq_open_reader(store *base) {
  sq *s = (sq *)base;
  if (!*s->path || !strcmp(s->path, ":memory:")) return NULL;
  store_options ro = {0, 0, 1, 1};
  return store_sqlite_open(s->path, &ro, NULL);
}

static int sq_has_seq(store *base, int64_t seq) {
  return seq <= sq_last_seq(base);
}

static int sq_has_msg(store *base, const char *msg_id) {
  sq *s = (sq *)base;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM events WHERE msg_id=?", -1, &st, NULL) !=
      SQLITE_OK)
    return -1;
  sqlite3_bind_text(st, 1, msg_id, -1, SQLITE_STATIC);
  int step = sqlite3_step(st);
  sqlite3_finalize(st);
  return step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : -1;
}

static const store_ops sqlite_ops = {
    .kind = "sqlite",
    .close = sq_close,
    .schema_version = sq_schema_version,
    .checkpoint_path = sq_checkpoint_path,
    .open_reader = sq_open_reader,
    .shared = 0,
    .wait = NULL,
    .has_seq = sq_has_seq,
    .has_msg = sq_has_msg,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .append_rows = sq_append_rows,
    .last_seq = sq_last_seq,
    .scan = sq_scan,
    .event_counts = sq_event_counts,
    .count = sq_count,
    .item = sq_item,
    .customer = sq_customer,
    .identity = sq_identity,
    .forget = sq_forget,
    .export_customer = sq_export_customer,
    .outbox_add = sq_outbox_add,
    .outbox_cancel = sq_outbox_cancel,
    .outbox_cancel_prefix = sq_outbox_cancel_prefix,
    .outbox_due = sq_outbox_due,
    .outbox_list = sq_outbox_list,
    .exposures_add = sq_exposures_add,
    .exposure_outcomes = sq_exposure_outcomes,
    .exec = sq_exec,
    .meta_get = sq_meta_get,
    .meta_set = sq_meta_set,
    .coupons_add = sq_coupons_add,
    .coupon_get = sq_coupon_get,
    .coupon_mark = sq_coupon_mark,
    .coupon_report = sq_coupon_report,
    .contact_add = sq_contact_add,
    .contacts_between = sq_contacts_between,
    .consent_add = sq_consent_add,
    .consent_get = sq_consent_get,
    .consent_mark = sq_consent_mark,
    .consents_since = sq_consents_since,
    .outbox_claim = sq_outbox_claim,
    .outbox_renew = sq_outbox_renew,
    .outbox_release = sq_outbox_release,
    .outbox_tally = sq_outbox_tally,
    .outbox_view = sq_outbox_view,
    .outbox_get = sq_outbox_get,
    .outbox_mark_sent = sq_outbox_mark_sent,
    .outbox_settle = sq_outbox_settle,
    .outbox_sent_since = sq_outbox_sent_since,
    .outbox_retry = sq_outbox_retry,
    .outbox_state = sq_outbox_state,
    .outbox_purge = sq_outbox_purge,
};
