/*
** defaults.h: every number that matters, written once.  A row is a
** configuration key's default (the engine's keys, and the "server"
** section's), or a fixed limit that more than one place states: the C code
** that applies it, the docs that tell it, the strategies that read it.
**
** Who reads the table:
**   - C: DEF_<NAME> is the value, an int constant expression (array sizes,
**     static initializers); the config tables (engine/config.h CONFIG_MAP,
**     server/server.h SRV_CONF_INTS) take a numeric key's name, default,
**     unit and meaning from its row, and the headers that had a copy of a
**     number (EV_DEFAULT_MAX_BYTES, LVM_DEFAULT_INSTRUCTION_BUDGET, ...)
**     now say DEF_<NAME>.
**   - Lua: strategies see the engine's configuration, defaults included, as
**     the read-only table `tailor.config` (docs/lua-api.md), so
**     strategies/lib/settings.lua reads index.lapsed_days instead of
**     repeating it.
**   - Docs: `tailor config --defaults` prints the table;
**     docs/configuration.md is `tailor config --markdown`, and
**     tests/e2e/docs_defaults_test.py fails when a number the other docs
**     give for a key or a limit differs from its row.
**
** X(NAME, value, "key", "unit", "meaning"): "key" is the dotted config key
** ("server.*" keys are the server section's), "" for a fixed limit; "unit"
** is what the value counts (bytes, MiB, ms, s, days, or a plural noun).
** Values fit an int.  Only numbers live here: text defaults (paths, lists)
** have one home already, their config row.
*/
#ifndef TAILOR_DEFAULTS_H
#define TAILOR_DEFAULTS_H

#define DEFAULTS_MAP(X)                                                      \
  /* ** The engine's keys (engine/config.h) */                               \
  X(LUA_INSTRUCTION_BUDGET, 5000000, "lua.instruction_budget",               \
    "instructions", "Lua instructions a strategy call may run, counted "      \
    "once it has run 5 ms (lua.watchdog)")                                   \
  X(LUA_MEMORY_LIMIT_MB, 64, "lua.memory_limit_mb", "MiB",                    \
    "memory cap of each Lua state, in MiB")                                  \
  X(LUA_RELOAD_INTERVAL_MS, 1000, "lua.reload_interval_ms", "ms",             \
    "how often strategy files are checked for edits; 0 checks every call")   \
  X(MAX_EVENT_BYTES, 65536, "limits.max_event_bytes", "bytes",                \
    "largest accepted event, in bytes")                                      \
  X(MAX_FUTURE_MS, 300000, "limits.max_future_ms", "ms",                     \
    "how far ahead of the server's clock a trusted sender's event time may be") \
  X(MAX_AMOUNT, 1000000000, "", "currency units",                             \
    "largest accepted price or revenue in an event (0 is the smallest)")      \
  X(MAX_QUANTITY, 1000000, "", "items",                                       \
    "largest accepted quantity of a product line (0 is the smallest)")        \
  X(MAX_UNKNOWN_ITEMS, 50000, "limits.max_unknown_items", "items",            \
    "items known only from events; past it a storefront may not add more")   \
  X(MAX_REQUEST_BYTES, 65536, "limits.max_request_bytes", "bytes",            \
    "largest accepted decision request, in bytes")                           \
  X(DECIDE_DEFAULT_K, 10, "decide.default_k", "items",                       \
    "items returned when a request does not say k")                          \
  X(DECIDE_MAX_K, 100, "decide.max_k", "items",                              \
    "largest k a request may ask for")                                       \
  X(TRIGGER_MAX_EVENT_AGE_S, 3600, "triggers.max_event_age_s", "s",           \
    "events older than this fire no triggers (imports of history send "     \
    "nothing)")                                                              \
  X(EMAIL_CAP_PER_WEEK, 3, "triggers.email_cap_per_week", "emails",          \
    "most emails due for one customer in a week (an email is not "         \
    "scheduled when as many are due in the 7 days up to it, the ones it "   \
    "supersedes left out); 0: no cap")                                      \
  X(MIN_MARGIN_PCT, 15, "discounts.min_margin_pct", "percent",               \
    "no discount may take an item's price within this many percent of its " \
    "cost (the item's \"cost\" field)")                                     \
  X(INDEX_RECENT_MAX, 20, "index.recent_max", "items",                       \
    "recently viewed items kept per person")                                 \
  X(INDEX_COVIEW_WINDOW, 5, "index.coview_window", "items",                  \
    "earlier items of a session that a view is paired with")                 \
  X(INDEX_MAX_NEIGHBORS, 64, "index.max_neighbors", "items",                 \
    "neighbours kept per item and relation (co-view, co-purchase)")          \
  X(INDEX_COOC_HALF_LIFE_DAYS, 60, "index.cooc_half_life_days", "days",      \
    "half-life of co-occurrence counts, in days; 0 for no decay")            \
  X(INDEX_TREND_HALF_LIFE_DAYS, 7, "index.trend_half_life_days", "days",     \
    "half-life of trending counters, in days; 0 for no decay")               \
  X(INDEX_LAPSED_DAYS, 180, "index.lapsed_days", "days",                     \
    "a customer without an order for this many days is lapsed")              \
  X(INDEX_CHECKPOINT_EVERY, 0, "index.checkpoint_every", "events",           \
    "also write the checkpoint every this many events; 0: only on close")    \
  X(INDEX_VALUE_REFIT_ORDERS, 1000, "index.value_refit_orders", "orders",    \
    "refit the models (value, clusters, propensity) every this many "      \
    "orders; on SQLite counted from the last fit, 0: only on start; on "    \
    "PostgreSQL at each multiple of it in the log and at the powers of "    \
    "two below it, 0: at the powers of two")                                 \
  X(INDEX_VALUE_MIN_REPEAT_CUSTOMERS, 20, "index.value_min_repeat_customers", \
    "customers",                                                             \
    "customers with two or more orders the value model needs; with fewer "  \
    "it is \"none\": no predicted value, so no value tier")                  \
  X(INDEX_VALUE_HOLDOUT_DAYS, 90, "index.value_holdout_days", "days",        \
    "the value model's check holds back the last this many days of orders "  \
    "and ranks customers by their spend in them (tailor stats); 0: no check") \
  X(INDEX_CLUSTERS, 5, "index.clusters", "segments",                         \
    "automatic customer segments (k-means), refitted with the value model; " \
    "0 for none")                                                            \
  X(DELIVERY_MAX_ATTEMPTS, 8, "delivery.max_attempts", "tries",              \
    "tries of an outbox row before it goes dead with its last error")        \
  X(DELIVERY_BACKOFF_BASE_MS, 60000, "delivery.backoff_base_ms", "ms",       \
    "wait after the first failed try; doubles with each try, with jitter")   \
  X(DELIVERY_BACKOFF_MAX_MS, 21600000, "delivery.backoff_max_ms", "ms",      \
    "longest wait between two tries")                                        \
  X(DELIVERY_LEASE_MS, 300000, "delivery.lease_ms", "ms",                    \
    "a row being sent is another sender's again after this long (a crash "   \
    "mid-send); keep it above the channels' timeouts")                       \
  X(OPTIN_LINK_TTL_S, 172800, "optin.link_ttl_s", "s",                       \
    "how long the link of a double opt-in confirmation email stays valid")  \
                                                                             \
  /* ** The server's keys (server/server.h) */                               \
  X(SERVER_MAX_LINE_BYTES, 65536, "server.max_line_bytes", "bytes",          \
    "longest NDJSON request line, in bytes")                                 \
  X(SERVER_MAX_BODY_BYTES, 1 << 20, "server.max_body_bytes", "bytes",        \
    "largest HTTP request body, in bytes")                                   \
  X(SERVER_MAX_BATCH_EVENTS, 1000, "server.max_batch_events", "events",      \
    "most events in one `events` request")                                   \
  X(SERVER_MAX_CONNECTIONS, 1024, "server.max_connections", "connections",   \
    "open connections; more are answered with an error and closed")          \
  X(SERVER_MAX_CONNS_PER_PEER, 256, "server.max_conns_per_peer",             \
    "connections",                                                           \
    "open connections from one client address (IPv4, or IPv6 /64); more "    \
    "are answered with an error and closed; 0: no limit")                   \
  X(SERVER_MAX_INFLIGHT, 64, "server.max_inflight", "requests",              \
    "requests of one connection in progress before its reads pause")        \
  X(SERVER_MAX_OUTPUT_BYTES, 1 << 20, "server.max_output_bytes", "bytes",    \
    "unsent response bytes of one connection before its reads pause")       \
  X(SERVER_IDLE_TIMEOUT_MS, 60000, "server.idle_timeout_ms", "ms",           \
    "close a connection with no complete request or response for this "    \
    "long; 0: never")                                                        \
  X(SERVER_HEADER_TIMEOUT_MS, 10000, "server.header_timeout_ms", "ms",       \
    "close a connection whose HTTP request line and headers, or first "      \
    "NDJSON line, are not whole this long after they began; 0: never")      \
  X(SERVER_THREADS, 0, "server.threads", "threads",                          \
    "decision worker threads; 0: one per CPU")                               \
  X(SERVER_SHUTDOWN_GRACE_MS, 10000, "server.shutdown_grace_ms", "ms",       \
    "on SIGTERM, how long in-flight work may take before connections are "  \
    "closed")                                                                \
  X(SERVER_DELIVER_INTERVAL_MS, 1000, "server.deliver_interval_ms", "ms",    \
    "how often the delivery thread looks for due outbox rows; 0: never "    \
    "(another process delivers)")                                           \
  X(SERVER_DELIVER_BATCH, 50, "server.deliver_batch", "rows",                \
    "outbox rows the delivery thread takes at a time")                       \
  X(SERVER_CONSOLE_SESSION_MS, 28800000, "server.console_session_ms", "ms",  \
    "how long a login to the merchant console (/admin) lasts")              \
  X(SERVER_CONSOLE_SNAPSHOT_MS, 3600000, "server.console_snapshot_ms", "ms", \
    "how often the console's audience and segment sizes are kept for its "  \
    "chart over time; 0: never")                                             \
                                                                             \
  /* ** Fixed limits that code and docs both state */                        \
  X(EVENT_MAX_LINES, 500, "", "lines", "most product lines in one event")    \
  X(VALUE_HOLDOUT_MIN_DAYS, 7, "", "days",                                   \
    "the value model's check halves index.value_holdout_days until the "     \
    "orders before it give the model its minimum, but not below this")       \
  X(MAX_ID_BYTES, 256, "", "bytes",                                          \
    "longest id (item, customer, order, session, request, token)")           \
  X(MIN_TOKEN_BYTES, 16, "", "bytes",                                        \
    "shortest server token: shorter ones are guessable")                     \
  X(MAX_JSON_DEPTH, 32, "", "levels",                                        \
    "deepest nesting of arrays and objects in input JSON")                   \
  X(LUA_DEFAULT_K, 10, "", "items",                                          \
    "rows a kernel (tailor.trending, ...) returns when opts.k is not given") \
  X(LUA_MAX_K, 1000, "", "items", "largest k a kernel may be asked for")     \
  X(LUA_WATCHERS_DAYS, 30, "", "days",                                       \
    "tailor.watchers(item): how recently a watcher must have been seen")     \
  X(REPLACEMENT_DAYS, 180, "", "days",                                       \
    "how long a bought item keeps its substitutes out of recommendations "  \
    "when its category has too few repeat purchases to learn its own")       \
  X(LUA_MAX_EXPOSURES, 64, "", "exposures",                                  \
    "distinct experiment exposures one handler call records")                \
  X(LUA_MAX_COUPONS, 16, "", "coupons",                                      \
    "coupons one handler call may issue (tailor.coupon)")                    \
  X(LUA_CALL_TIME_LIMIT_MS, 5000, "", "ms",                                   \
    "wall-clock time one strategy call may run: checked with the "          \
    "instruction budget, and past it the call ends in the budget error")    \
  X(OPTIN_MAX_PER_ADDRESS, 3, "", "emails",                                  \
    "confirmation emails one address is sent within a day (subscribe)")     \
  X(OPTIN_MAX_TEXT_BYTES, 2000, "", "bytes",                                 \
    "longest consent text (what the visitor was shown) a subscribe keeps")  \
  X(COUPON_TTL_S, 7 * 86400, "", "s",                                        \
    "tailor.coupon(tier): how long a code stays redeemable without opts.ttl") \
  X(CAPS_WINDOW_HOURS, 24, "", "hours",                                      \
    "the window of a strategy's caps (per_day, per_campaign) without "      \
    "caps.window_hours")                                                     \
  X(EMAIL_CAP_WINDOW_DAYS, 7, "", "days",                                    \
    "the window of triggers.email_cap_per_week, at scheduling and sending")  \
  X(DELIVER_MAX_BATCH, 10000, "", "rows",                                    \
    "most outbox rows one tailor_deliver_due() call may take")               \
  X(OUTBOX_LIST_MAX, 1000, "", "rows",                                       \
    "most rows tailor_outbox_list() (tailor outbox list) returns")           \
  X(OUTBOX_PURGE_DAYS, 30, "", "days",                                       \
    "tailor outbox purge: final rows last changed this long ago")            \
  X(PG_CONNECT_TIMEOUT_S, 10, "", "s",                                       \
    "how long opening a connection to PostgreSQL may take when the db URL "  \
    "sets no connect_timeout")                                               \
  X(REPORT_WINDOW_DAYS, 7, "", "days",                                       \
    "tailor report experiments: outcomes count this long after a unit's "   \
    "first exposure")                                                        \
  X(SERVER_READ_CHUNK_BYTES, 64 * 1024, "", "bytes",                         \
    "bytes the server asks of each read of a connection")                    \
  X(SERVER_LINGER_MS, 2000, "", "ms",                                        \
    "reading after the server's FIN, so an error response is not lost to a " \
    "reset")                                                                 \
  X(SERVER_REFUSED_WAIT_MS, 1000, "", "ms",                                  \
    "how long a refused connection may take to show its protocol")          \
  X(SERVER_MAX_REPORTED_ERRORS, 100, "", "errors",                           \
    "rejected events detailed in one `events` answer")                       \
  X(SERVER_STATS_TTL_MS, 10000, "", "ms",                                    \
    "/metrics reuses the engine's stats this long")                          \
  X(SERVER_CORS_MAX_AGE_S, 600, "", "s",                                     \
    "how long a browser caches a CORS preflight")                            \
  X(SERVER_CONSOLE_MAX_SESSIONS, 64, "", "sessions",                         \
    "console logins held at once; a new one ends the oldest")               \
  X(CONSOLE_SIZES_FINE_DAYS, 14, "", "days",                                \
    "the console keeps every size snapshot this long; older, the first of " \
    "each day")                                                              \
  X(CONSOLE_SIZES_KEEP_DAYS, 400, "", "days",                                \
    "the console's size snapshots older than this are dropped")             \
  X(CONSOLE_MEMBERS_MAX, 200, "", "members",                                 \
    "most members the console's sample of an audience or segment lists")    \
  X(CONSOLE_ATTRIBUTION_HOURS, 24, "", "hours",                              \
    "the console's attribution window when the request names none: an "     \
    "order counts for the click, popup or email before it within this")     \
  X(SERVER_STATIC_MAX_BYTES, 16 << 20, "", "bytes",                          \
    "largest file the server's static folder serves")

/* DEF_<NAME>: the value. */
enum {
#define DEF_VALUE_(name, value, key, unit, doc) DEF_##name = (value),
  DEFAULTS_MAP(DEF_VALUE_)
#undef DEF_VALUE_
};

/* DEFI_<NAME>: the row's index in def_rows[]. */
enum def_index {
#define DEF_INDEX_(name, value, key, unit, doc) DEFI_##name,
  DEFAULTS_MAP(DEF_INDEX_)
#undef DEF_INDEX_
  DEF_COUNT
};

/* One row of the table, as the code that lists or looks up reads it. */
typedef struct def_row {
  const char *name; /* "LUA_INSTRUCTION_BUDGET" */
  long value;
  const char *key;  /* "lua.instruction_budget", "" for a fixed limit */
  const char *unit;
  const char *doc;
} def_row;

/* The rows, in DEFAULTS_MAP's order; &def_rows[DEFI_<NAME>] is a constant
   that static tables (the config tables) may hold. */
extern const def_row def_rows[DEF_COUNT];

/* The row whose key is `key`, or NULL. */
const def_row *def_find(const char *key);

#endif /* TAILOR_DEFAULTS_H */
