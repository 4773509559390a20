/*
** defaults.c: the rows of DEFAULTS_MAP as data, for the tables that hold
** a row (the config tables), list them (`tailor config --defaults`) or look
** a key up.
*/
#include "core/defaults.h"

#include <string.h>

const def_row def_rows[DEF_COUNT] = {
#define DEF_ROW_(name, value, key, unit, doc) {#name, (value), key, unit, doc},
    DEFAULTS_MAP(DEF_ROW_)
#undef DEF_ROW_
};

const def_row *def_find(const char *key) {
  for (size_t i = 0; i < DEF_COUNT; i++)
    if (*def_rows[i].key && !strcmp(def_rows[i].key, key)) return &def_rows[i];
  return NULL;
}
