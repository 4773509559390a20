/*
** config.c: parsing the configuration against CONFIG_MAP (numbers: their
** rows of DEFAULTS_MAP, core/defaults.h).
*/
#include "engine/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

enum { T_STR, T_INT, T_BOOL, T_JSON };

typedef struct key_info {
  const char *key, *type, *def_text, *doc; /* a number's: in `num` */
  int kind;
  size_t offset;
  const char *def_str;
  long def_num;
  const def_row *num; /* a number's row in core/defaults.h */
} key_info;

#define CONFIG_DEF_STR(v) v, 0
#define CONFIG_DEF_BOOL(v) NULL, v
#define CONFIG_DEF_JSON(v) v, 0
#define CONFIG_ROW_(f, key, type, def, doc) \
  {key, #type, #def, doc, T_##type, offsetof(config, f), CONFIG_DEF_##type(def), NULL},
#define CONFIG_ROW_N_(f, name) \
  {NULL, "INT", NULL, NULL, T_INT, offsetof(config, f), NULL, DEF_##name, &def_rows[DEFI_##name]},
static const key_info keys[] = {CONFIG_MAP(CONFIG_ROW_, CONFIG_ROW_N_)};
#undef CONFIG_ROW_N_
#undef CONFIG_ROW_
#define NKEYS (sizeof keys / sizeof *keys)

static const char *key_name(const key_info *k) { return k->num ? k->num->key : k->key; }

void config_each(void (*fn)(void *, const char *, const char *, const char *,
                            const char *),
                 void *ud) {
  for (size_t i = 0; i < NKEYS; i++) {
    const key_info *k = &keys[i];
    char num[24];
    if (k->num) {
      snprintf(num, sizeof num, "%ld", k->num->value);
      fn(ud, k->num->key, k->type, num, k->num->doc);
    } else {
      fn(ud, k->key, k->type, k->kind == T_JSON ? k->def_str : k->def_text, k->doc);
    }
  }
}

void config_each_number(const config *c,
                        void (*fn)(void *, const char *, long, int), void *ud) {
  for (size_t i = 0; i < NKEYS; i++) {
    const void *field = (const char *)c + keys[i].offset;
    if (keys[i].kind == T_INT)
      fn(ud, key_name(&keys[i]), *(const long *)field, 0);
    else if (keys[i].kind == T_BOOL)
      fn(ud, key_name(&keys[i]), *(const int *)field, 1);
  }
}

int config_is_default(const config *c, const char *key) {
  for (size_t i = 0; i < NKEYS; i++) {
    if (keys[i].kind != T_STR || strcmp(keys[i].key, key)) continue;
    const char *v = *(char *const *)((const char *)c + keys[i].offset);
    return v && strcmp(v, keys[i].def_str) == 0;
  }
  return 0;
}

void config_free(config *c) {
  for (size_t i = 0; i < NKEYS; i++) {
    if (keys[i].kind == T_STR) {
      char **p = (char **)((char *)c + keys[i].offset);
      free(*p);
      *p = NULL;
    } else if (keys[i].kind == T_JSON) {
      json_t **p = (json_t **)((char *)c + keys[i].offset);
      json_decref(*p);
      *p = NULL;
    }
  }
}

static int set_key(config *c, const char *key, json_t *v, tailor_error *err) {
  for (size_t i = 0; i < NKEYS; i++) {
    const key_info *k = &keys[i];
    if (strcmp(key_name(k), key) != 0) continue;
    void *field = (char *)c + k->offset;
    switch (k->kind) {
      case T_STR:
        if (!json_is_string(v))
          return util_fail(err, TAILOR_ECONFIG, key,
                           "config: '%s' must be a string", key);
        free(*(char **)field);
        *(char **)field = strdup(json_string_value(v));
        return *(char **)field ? TAILOR_OK : TAILOR_ENOMEM;
      case T_INT:
        if (!json_is_integer(v) || json_integer_value(v) < 0)
          return util_fail(err, TAILOR_ECONFIG, key,
                           "config: '%s' must be a non-negative integer", key);
        *(long *)field = (long)json_integer_value(v);
        return TAILOR_OK;
      case T_JSON: {
        json_t **slot = (json_t **)field;
        if (json_typeof(v) != json_typeof(*slot))
          return util_fail(err, TAILOR_ECONFIG, key, "config: '%s' must be %s",
                           key, json_is_array(*slot) ? "an array" : "an object");
        json_decref(*slot);
        *slot = json_incref(v);
        return TAILOR_OK;
      }
      default:
        if (!json_is_boolean(v))
          return util_fail(err, TAILOR_ECONFIG, key,
                           "config: '%s' must be true or false", key);
        *(int *)field = json_is_true(v);
        return TAILOR_OK;
    }
  }
  return util_fail(err, TAILOR_ECONFIG, key, "config: unknown key '%s'", key);
}

static int takes_json(const char *key) {
  for (size_t i = 0; i < NKEYS; i++)
    if (keys[i].kind == T_JSON && !strcmp(key_name(&keys[i]), key)) return 1;
  return 0;
}

/* Walk nested objects, joining names with dots. */
static int walk(config *c, const char *prefix, json_t *obj, tailor_error *err) {
  const char *name;
  json_t *v;
  json_object_foreach(obj, name, v) {
    char key[256];
    snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", name);
    /* An object is a level of dotted keys, unless the key itself takes
       a JSON value. */
    int rc = json_is_object(v) && !takes_json(key) ? walk(c, key, v, err)
                                                   : set_key(c, key, v, err);
    if (rc) return rc;
  }
  return TAILOR_OK;
}

int config_parse(config *c, const char *json, tailor_error *err) {
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < NKEYS; i++) {
    void *field = (char *)c + keys[i].offset;
    if (keys[i].kind == T_STR) {
      if (!(*(char **)field = strdup(keys[i].def_str))) {
        config_free(c);
        return util_fail(err, TAILOR_ENOMEM, NULL, "config: out of memory");
      }
    } else if (keys[i].kind == T_JSON) {
      if (!(*(json_t **)field = json_loads(keys[i].def_str, JSON_DECODE_ANY, NULL))) {
        config_free(c);
        return util_fail(err, TAILOR_ENOMEM, NULL, "config: out of memory");
      }
    } else if (keys[i].kind == T_INT) {
      *(long *)field = keys[i].def_num;
    } else {
      *(int *)field = (int)keys[i].def_num;
    }
  }
  if (!json || !*json) return TAILOR_OK;
  json_error_t jerr;
  json_t *root = json_loads(json, 0, &jerr);
  int rc;
  if (!root)
    rc = util_fail(err, TAILOR_ECONFIG, NULL, "config: line %d column %d: %s",
                   jerr.line, jerr.column, jerr.text);
  else if (!json_is_object(root))
    rc = util_fail(err, TAILOR_ECONFIG, NULL, "config: must be a JSON object");
  else
    rc = walk(c, "", root, err);
  /* SQLite reads "" as a temporary database deleted at close: every event
     acknowledged, none kept.  A "file:" URI is a path SQLite resolves
     itself: the lock (<db>.lock) and the checkpoint beside the store go by
     the text, so a second writer on the same file was not refused. */
  if (!rc && !*c->db)
    rc = util_fail(err, TAILOR_ECONFIG, "db",
                   "config: 'db' is empty: SQLite would keep the events in a temporary "
                   "database deleted at close; name a file, \":memory:\" or a "
                   "postgresql:// URL");
  if (!rc && !strncmp(c->db, "file:", 5))
    rc = util_fail(err, TAILOR_ECONFIG, "db",
                   "config: 'db' is a SQLite URI ('%.200s'): give the file's path instead "
                   "(the store's lock and checkpoint go by it)", c->db);
  /* One k limit: a request without k gets default_k, which no request
     asking for k could exceed. */
  if (!rc && (c->max_k < 1 || c->default_k < 1 || c->default_k > c->max_k))
    rc = util_fail(err, TAILOR_ECONFIG, c->max_k < 1 ? "decide.max_k" : "decide.default_k",
                   "config: 'decide.default_k' (%ld) must be from 1 to 'decide.max_k' (%ld)",
                   c->default_k, c->max_k);
  json_decref(root);
  if (rc) config_free(c);
  return rc;
}
