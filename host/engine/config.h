/*
** config.h: the engine's configuration.  Every key is one row of CONFIG_MAP
** with its type, default and meaning (a number's in core/defaults.h);
** docs/configuration.md is written from the same table (`tailor config
** --markdown` prints it).
*/
#ifndef TAILOR_CONFIG_H
#define TAILOR_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/defaults.h"
#include "tailor.h"

/*
** Two kinds of rows, in the order `tailor config` lists them:
**   S(field, "dotted.key", type, default, "what it is") for text, true/false
**     and JSON values; type STR, BOOL or JSON (a value kept as it is: the
**     default is JSON text, a given value must be of the default's JSON
**     type);
**   N(field, NAME) for a number (a long, never negative): its key,
**     default, unit and meaning are the row NAME of DEFAULTS_MAP in
**     core/defaults.h, which the rest of the code and the docs read too.
*/
#define CONFIG_MAP(S, N)                                                     \
  S(db, "db", STR, "tailor.db",                                              \
    "SQLite store file, by its path (not \"\" nor a file: URI; "            \
    "\":memory:\" keeps everything in memory, and "                          \
    "its decisions take turns with the writer), or a postgresql:// URL "     \
    "shared by several nodes (docs/scale-out.md)")                           \
  S(strategies, "strategies", STR, "strategies",                             \
    "folder of Lua strategies (the default one may be missing: a warning "   \
    "says so); \"\" for none (decisions use the fallback)")                  \
  S(strategies_base, "strategies_base", STR, "",                             \
    "a folder the strategies extend (the shipped one): its files count "      \
    "unless the strategies folder has one of the same name")                  \
  S(durable_full, "store.synchronous_full", BOOL, 1,                         \
    "fsync on every commit (survives power loss); false survives a crash "   \
    "of the process only")                                                   \
  S(store_lock, "store.lock", BOOL, 1,                                       \
    "hold <db>.lock so one engine writes a SQLite store (another is "       \
    "refused); false only beside it, for what writes no event: the CLI's "  \
    "stats, outbox list/retry/purge, export-customer and report, which "     \
    "save no checkpoint and do not upgrade an older store's schema "         \
    "(server.md, Upgrades and backups)")                                     \
  N(lua_budget, LUA_INSTRUCTION_BUDGET)                                      \
  S(lua_watchdog, "lua.watchdog", BOOL, 1,                                   \
    "count a call's instructions once it has run 5 ms, armed by a watchdog " \
    "thread with SIGURG (short calls skip the count); false counts every "   \
    "instruction and starts no thread")                                      \
  N(lua_memory_mb, LUA_MEMORY_LIMIT_MB)                                      \
  N(reload_ms, LUA_RELOAD_INTERVAL_MS)                                       \
  N(max_event_bytes, MAX_EVENT_BYTES)                                        \
  N(max_future_ms, MAX_FUTURE_MS)                                            \
  N(max_unknown_items, MAX_UNKNOWN_ITEMS)                                    \
  N(max_request_bytes, MAX_REQUEST_BYTES)                                    \
  N(default_k, DECIDE_DEFAULT_K)                                             \
  N(max_k, DECIDE_MAX_K)                                                     \
  N(trigger_max_age_s, TRIGGER_MAX_EVENT_AGE_S)                              \
  N(email_cap_per_week, EMAIL_CAP_PER_WEEK)                                  \
  S(coupons, "coupons", STR, "",                                             \
    "coupon pools and their sizes, \"FREESHIP=1000,WELCOME10=500\"; a "      \
    "popup_shown event with props.coupon uses one (a count of those shown, " \
    "not a reservation: decisions before the events may offer the last one " \
    "more than once)")                                                       \
  N(min_margin_pct, MIN_MARGIN_PCT)                                          \
  N(recent_max, INDEX_RECENT_MAX)                                            \
  N(coview_window, INDEX_COVIEW_WINDOW)                                      \
  N(max_neighbors, INDEX_MAX_NEIGHBORS)                                      \
  N(cooc_half_life_days, INDEX_COOC_HALF_LIFE_DAYS)                          \
  N(trend_half_life_days, INDEX_TREND_HALF_LIFE_DAYS)                        \
  N(lapsed_days, INDEX_LAPSED_DAYS)                                          \
  S(checkpoint, "index.checkpoint", STR, "auto",                             \
    "checkpoint file of the indexes; \"auto\" is the store's path + .ckpt "   \
    "(none on PostgreSQL, where each node names its own), \"\" for none")    \
  N(checkpoint_every, INDEX_CHECKPOINT_EVERY)                                \
  S(tuned, "index.tuned", STR, "",                                           \
    "tuned session-kernel parameters from `tailor tune --out` (and the "      \
    "re-ranker model beside them) for tailor.session_next; \"\" for tailor's "  \
    "defaults, adjusted to a repeat-heavy or sequential shop (evaluation.md, " \
    "\"Defaults that fit the shop\")")                                          \
  N(value_refit_orders, INDEX_VALUE_REFIT_ORDERS)                            \
  S(refit_background, "index.background_refits", BOOL, 0,                    \
    "refit the models (index.value_refit_orders) on a thread of their own, "  \
    "so that the writer goes on taking events meanwhile (a fit takes "       \
    "seconds on a shop of some 10,000 customers); tailor serve turns it on " \
    "unless the config says false; SQLite only (on PostgreSQL every node "   \
    "refits at the same log positions)")                                      \
  N(value_min_repeat, INDEX_VALUE_MIN_REPEAT_CUSTOMERS)                      \
  N(value_holdout_days, INDEX_VALUE_HOLDOUT_DAYS)                            \
  N(clusters, INDEX_CLUSTERS)                                                \
  S(audience_days, "index.audience_days", STR, "2,7,14",                    \
    "recency windows of the retargeting audiences, in days")                 \
  S(trend_keys, "index.trend_keys", STR,                                    \
    "country,gender,country+gender,device,source,category",                 \
    "segment keys with their own bestsellers; \"a+b\" joins two keys")      \
  S(plugins, "plugins", JSON, "[]",                                          \
    "plugins to load at start: [{\"path\": FILE or \"name\": NAME, "        \
    "\"config\": {...}}] (docs/plugins.md)")                                 \
  S(plugin_dir, "plugin_dir", STR, "",                                       \
    "where a plugin given by \"name\" is found (NAME.so); \"\" for the "     \
    "installed folder, lib/tailor/plugins")                                  \
  N(deliver_max_attempts, DELIVERY_MAX_ATTEMPTS)                             \
  N(deliver_backoff_ms, DELIVERY_BACKOFF_BASE_MS)                            \
  N(deliver_backoff_max_ms, DELIVERY_BACKOFF_MAX_MS)                         \
  N(deliver_lease_ms, DELIVERY_LEASE_MS)                                     \
  S(optin_secret, "optin.secret", STR, "",                                   \
    "key (16 bytes or more) that signs the links of double opt-in "         \
    "confirmation emails (email capture, docs/server.md); \"\" turns email "  \
    "capture off")                                                           \
  S(optin_url, "optin.confirm_url", STR, "",                                 \
    "where confirmation emails link to: tailor serve's GET /v1/confirm as "  \
    "visitors reach it (https://shop.example/tailor/v1/confirm); \"\" turns " \
    "email capture off")                                                     \
  S(unsubscribe_url, "optin.unsubscribe_url", STR, "",                      \
    "where the unsubscribe link of every email but a confirmation goes: "  \
    "tailor serve's /v1/unsubscribe as customers reach it "                 \
    "(https://shop.example/tailor/v1/unsubscribe), signed with "            \
    "optin.secret; \"\" sends emails without one (docs/strategies.md)")      \
  N(optin_ttl_s, OPTIN_LINK_TTL_S)                                           \
  S(optin_channel, "optin.channel", STR, "email",                           \
    "the delivery channel (a plugin's) that confirmation emails go through")

typedef struct config {
#define CONFIG_FIELD_STR(f) char *f;
#define CONFIG_FIELD_BOOL(f) int f;
#define CONFIG_FIELD_JSON(f) json_t *f;
#define CONFIG_FIELD_(f, key, type, def, doc) CONFIG_FIELD_##type(f)
#define CONFIG_FIELD_N_(f, name) long f;
  CONFIG_MAP(CONFIG_FIELD_, CONFIG_FIELD_N_)
#undef CONFIG_FIELD_N_
#undef CONFIG_FIELD_
#undef CONFIG_FIELD_STR
#undef CONFIG_FIELD_BOOL
#undef CONFIG_FIELD_JSON
} config;

/*
** Parse a JSON object (NULL or "" for the defaults) into `c`.  Nested
** objects spell dotted keys: {"lua": {"instruction_budget": 1000}}.
** Unknown keys and wrong types are errors naming the key.  On failure `c`
** holds nothing to free.  Release with config_free().
*/
int config_parse(config *c, const char *json, tailor_error *err);
void config_free(config *c);

/* Whether the string key `key` still has its default value. */
int config_is_default(const config *c, const char *key);

/* Call `fn` for each key: its dotted name, type name, default (as text)
   and doc. */
void config_each(void (*fn)(void *ud, const char *key, const char *type,
                            const char *def, const char *doc),
                 void *ud);

/*
** Call `fn` for each key whose value is a number or true/false, with its
** value in `c`: what strategies read as `tailor.config` (engine/lapi.c).
** Text and JSON keys are left out: paths, and plugin settings that may
** hold credentials, are none of a strategy's business.
*/
void config_each_number(const config *c,
                        void (*fn)(void *ud, const char *key, long value,
                                   int is_bool),
                        void *ud);

#endif /* TAILOR_CONFIG_H */
