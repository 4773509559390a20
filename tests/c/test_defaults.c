/*
** test_defaults.c: the table of named defaults (core/defaults.h) and the
** tables that read it agree: every numeric config key of the engine has its
** row, every keyed row is a key of the engine or of the server section, and
** the copies host/index still keeps of the index keys' defaults equal the
** table (checked at compile time until index.h refers to it).
*/
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/defaults.h"
#include "engine/config.h"
#include "index/cooc.h"
#include "index/index.h"
#include "index/trend.h"

/* host/index keeps its own defaults for callers without a config (tailor
   eval, tests, benchmarks); they must be the config's. */
_Static_assert(IDX_DEFAULT_RECENT == DEF_INDEX_RECENT_MAX, "index.recent_max");
_Static_assert(IDX_DEFAULT_COVIEW_WINDOW == DEF_INDEX_COVIEW_WINDOW, "index.coview_window");
_Static_assert(COOC_DEFAULT_MAX_NEIGHBORS == DEF_INDEX_MAX_NEIGHBORS, "index.max_neighbors");
_Static_assert((int)COOC_DEFAULT_HALF_LIFE_DAYS == DEF_INDEX_COOC_HALF_LIFE_DAYS,
               "index.cooc_half_life_days");
_Static_assert((int)TREND_DEFAULT_HALF_LIFE_DAYS == DEF_INDEX_TREND_HALF_LIFE_DAYS,
               "index.trend_half_life_days");
_Static_assert(IDX_DEFAULT_LAPSED_DAYS == DEF_INDEX_LAPSED_DAYS, "index.lapsed_days");

typedef struct key_list {
  char keys[64][64];
  char defs[64][64];
  char types[64][8];
  size_t n;
} key_list;

static void collect(void *ud, const char *key, const char *type, const char *def,
                    const char *doc) {
  key_list *l = ud;
  if (l->n == 64) abort();
  snprintf(l->keys[l->n], sizeof l->keys[0], "%s", key);
  snprintf(l->types[l->n], sizeof l->types[0], "%s", type);
  snprintf(l->defs[l->n++], sizeof l->defs[0], "%s", def);
  CHECK(doc && *doc);
}

static const char *default_of(const key_list *l, const char *key) {
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->keys[i], key)) return l->defs[i];
  return NULL;
}

static void test_engine_numbers_are_rows(void) {
  key_list l = {0};
  config_each(collect, &l);
  CHECK(l.n > 20);
  for (size_t i = 0; i < l.n; i++) {
    if (strcmp(l.types[i], "INT")) continue;
    const def_row *d = def_find(l.keys[i]);
    CHECK(d != NULL);
    if (!d) continue;
    char want[24];
    snprintf(want, sizeof want, "%ld", d->value);
    CHECK_STR(l.defs[i], want);
  }
}

static void test_rows_are_keys(void) {
  key_list l = {0};
  config_each(collect, &l);
  size_t keyed = 0;
  for (size_t i = 0; i < DEF_COUNT; i++) {
    const def_row *d = &def_rows[i];
    CHECK(*d->name && *d->unit && *d->doc);
    CHECK(d->value >= 0);
    if (!*d->key) continue;
    keyed++;
    CHECK(def_find(d->key) == d); /* a key has one row */
    if (!strncmp(d->key, "server.", 7)) continue; /* the server's: docs test */
    if (!default_of(&l, d->key)) fprintf(stderr, "  %s: not an engine key\n", d->key);
    CHECK(default_of(&l, d->key) != NULL);
  }
  CHECK(keyed > 30);
  CHECK(def_find("no.such.key") == NULL);
  CHECK(def_find("") == NULL);
}

/* Text defaults are not in the table; the index's copies of two of them are
   compared here, at run time. */
static void test_index_text_defaults(void) {
  key_list l = {0};
  config_each(collect, &l);
  /* config_each gives a text default as its C literal, quotes included */
  CHECK_STR(default_of(&l, "index.audience_days"), "\"" IDX_DEFAULT_AUDIENCE_DAYS "\"");
  CHECK_STR(default_of(&l, "index.trend_keys"), "\"" IDX_DEFAULT_TREND_KEYS "\"");
}

/* A config parsed from nothing holds the table's values. */
static void test_parsed_defaults(void) {
  config c;
  tailor_error err = {0};
  CHECK_INT(config_parse(&c, NULL, &err), TAILOR_OK);
  CHECK_INT(c.lua_budget, DEF_LUA_INSTRUCTION_BUDGET);
  CHECK_INT(c.lapsed_days, DEF_INDEX_LAPSED_DAYS);
  CHECK_INT(c.deliver_lease_ms, DEF_DELIVERY_LEASE_MS);
  config_free(&c);
  CHECK_INT(config_parse(&c, "{\"index\": {\"lapsed_days\": 30}}", &err), TAILOR_OK);
  CHECK_INT(c.lapsed_days, 30);
  config_free(&c);
}

typedef struct seen {
  long lapsed, budget;
  int durable, others;
} seen;

static void note(void *ud, const char *key, long value, int is_bool) {
  seen *s = ud;
  if (!strcmp(key, "index.lapsed_days")) s->lapsed = value;
  else if (!strcmp(key, "lua.instruction_budget")) s->budget = value;
  else if (!strcmp(key, "store.synchronous_full")) s->durable = is_bool ? (int)value : -1;
  else if (!strcmp(key, "db") || !strcmp(key, "plugins") || !strcmp(key, "coupons")) s->others++;
}

/* What strategies see as tailor.config: numbers and booleans, as configured. */
static void test_numbers_for_strategies(void) {
  config c;
  tailor_error err = {0};
  seen s = {0};
  CHECK_INT(config_parse(&c, "{\"index\": {\"lapsed_days\": 45}, \"store\": "
                             "{\"synchronous_full\": false}}",
                         &err),
            TAILOR_OK);
  config_each_number(&c, note, &s);
  CHECK_INT(s.lapsed, 45);
  CHECK_INT(s.budget, DEF_LUA_INSTRUCTION_BUDGET);
  CHECK_INT(s.durable, 0);
  CHECK_INT(s.others, 0);
  config_free(&c);
}

int main(void) {
  RUN(test_engine_numbers_are_rows);
  RUN(test_rows_are_keys);
  RUN(test_index_text_defaults);
  RUN(test_parsed_defaults);
  RUN(test_numbers_for_strategies);
  return CHECK_DONE();
}
