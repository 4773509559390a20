/*
** config.h: the engine's configuration.  Every key is one row of CONFIG_MAP
** with its type, default and meaning; docs/configuration.md is written from
** the same table (`tailor config --keys` prints it).
*/
#ifndef TAILOR_CONFIG_H
#define TAILOR_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tailor.h"

/* X(field, "dotted.key", type, default, "what it is") ; type: STR, INT, BOOL,
   JSON (a value kept as it is: the default is JSON text, a given value must
   be of the default's JSON type) */
#define CONFIG_MAP(X)                                                        \
  X(db, "db", STR, "tailor.db",                                              \
    "SQLite store file; \":memory:\" keeps everything in memory")            \
  X(strategies, "strategies", STR, "strategies",                             \
    "folder of Lua strategies; \"\" for none (decisions use the fallback)")  \
  X(durable_full, "store.synchronous_full", BOOL, 1,                         \
    "fsync on every commit (survives power loss); false survives a crash "   \
    "of the process only")                                                   \
  X(lua_budget, "lua.instruction_budget", INT, 5000000,                      \
    "Lua instructions a strategy may run per call")                          \
  X(lua_memory_mb, "lua.memory_limit_mb", INT, 64,                           \
    "memory cap of each Lua state, in MiB")                                  \
  X(reload_ms, "lua.reload_interval_ms", INT, 1000,                          \
    "how often strategy files are checked for edits; 0 checks every call")   \
  X(max_event_bytes, "limits.max_event_bytes", INT, 65536,                   \
    "largest accepted event, in bytes")                                      \
  X(max_request_bytes, "limits.max_request_bytes", INT, 65536,               \
    "largest accepted decision request, in bytes")                           \
  X(default_k, "decide.default_k", INT, 10,                                  \
    "items returned when a request does not say k")                          \
  X(max_k, "decide.max_k", INT, 100, "largest k a request may ask for")      \
  X(trigger_max_age_s, "triggers.max_event_age_s", INT, 3600,                \
    "events older than this fire no triggers (imports of history send "     \
    "nothing)")                                                              \
  X(email_cap_per_week, "triggers.email_cap_per_week", INT, 3,               \
    "most emails scheduled for one customer in 7 days; 0: no cap")           \
  X(coupons, "coupons", STR, "",                                             \
    "coupon pools and their sizes, \"FREESHIP=1000,WELCOME10=500\"; a "      \
    "popup_shown event with props.coupon uses one")                         \
  X(min_margin_pct, "discounts.min_margin_pct", INT, 15,                    \
    "no discount may take an item's price within this many percent of its " \
    "cost (the item's \"cost\" field)")                                     \
  X(recent_max, "index.recent_max", INT, 20,                                 \
    "recently viewed items kept per person")                                 \
  X(coview_window, "index.coview_window", INT, 5,                            \
    "earlier items of a session that a view is paired with")                 \
  X(max_neighbors, "index.max_neighbors", INT, 64,                           \
    "neighbours kept per item and relation (co-view, co-purchase)")          \
  X(cooc_half_life_days, "index.cooc_half_life_days", INT, 60,               \
    "half-life of co-occurrence counts, in days; 0 for no decay")            \
  X(trend_half_life_days, "index.trend_half_life_days", INT, 7,              \
    "half-life of trending counters, in days; 0 for no decay")               \
  X(lapsed_days, "index.lapsed_days", INT, 180,                              \
    "a customer without an order for this many days is lapsed")              \
  X(checkpoint, "index.checkpoint", STR, "auto",                             \
    "checkpoint file of the indexes; \"auto\" is the store's path + .ckpt, "  \
    "\"\" for none")                                                          \
  X(checkpoint_every, "index.checkpoint_every", INT, 0,                      \
    "also write the checkpoint every this many events; 0: only on close")    \
  X(value_refit_orders, "index.value_refit_orders", INT, 1000,              \
    "refit the customer-value model after this many new orders; 0: only "   \
    "on start")                                                              \
  X(clusters, "index.clusters", INT, 5,                                     \
    "automatic customer segments (k-means), refitted with the value model; " \
    "0 for none")                                                            \
  X(audience_days, "index.audience_days", STR, "2,7,14",                    \
    "recency windows of the retargeting audiences, in days")                 \
  X(trend_keys, "index.trend_keys", STR,                                    \
    "country,gender,country+gender,device,source,category",                 \
    "segment keys with their own bestsellers; \"a+b\" joins two keys")      \
  X(plugins, "plugins", JSON, "[]",                                          \
    "plugins to load at start: [{\"path\": FILE or \"name\": NAME, "        \
    "\"config\": {...}}] (docs/plugins.md)")                                 \
  X(plugin_dir, "plugin_dir", STR, "",                                       \
    "where a plugin given by \"name\" is found (NAME.so); \"\" for the "     \
    "installed folder, lib/tailor/plugins")                                  \
  X(deliver_max_attempts, "delivery.max_attempts", INT, 8,                   \
    "tries of an outbox row before it goes dead with its last error")        \
  X(deliver_backoff_ms, "delivery.backoff_base_ms", INT, 60000,              \
    "wait after the first failed try; doubles with each try, with jitter")   \
  X(deliver_backoff_max_ms, "delivery.backoff_max_ms", INT, 21600000,        \
    "longest wait between two tries")                                        \
  X(deliver_lease_ms, "delivery.lease_ms", INT, 300000,                      \
    "a row being sent is another sender's again after this long (a crash "   \
    "mid-send); keep it above the channels' timeouts")

typedef struct config {
#define CONFIG_FIELD_STR(f) char *f;
#define CONFIG_FIELD_INT(f) long f;
#define CONFIG_FIELD_BOOL(f) int f;
#define CONFIG_FIELD_JSON(f) json_t *f;
#define CONFIG_FIELD_(f, key, type, def, doc) CONFIG_FIELD_##type(f)
  CONFIG_MAP(CONFIG_FIELD_)
#undef CONFIG_FIELD_
#undef CONFIG_FIELD_STR
#undef CONFIG_FIELD_INT
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

/* Call `fn` for each key: its dotted name, type name, default and doc. */
void config_each(void (*fn)(void *ud, const char *key, const char *type,
                            const char *def, const char *doc),
                 void *ud);

#endif /* TAILOR_CONFIG_H */
