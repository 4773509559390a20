/*
** ljson.h: moving values between JSON (jansson) and Lua.
*/
#ifndef TAILOR_LJSON_H
#define TAILOR_LJSON_H

#include <jansson.h>
#include <lua.h>
#include <stddef.h>

/* Push `v` as a Lua value: objects and arrays become tables, null nil. */
void ljson_push(lua_State *L, json_t *v);

/*
** The Lua value at `idx` as a new JSON value.  A table whose keys are
** exactly 1..n is an array (an empty table too); a table with string keys
** is an object; anything else (functions, mixed keys, nesting deeper than
** 32, NaN) fails: returns NULL and writes what and where into `why`
** ("result.items[2]: a function cannot be turned into JSON").  `path` names
** the value for those messages.
*/
json_t *ljson_to(lua_State *L, int idx, const char *path, char *why,
                 size_t why_len);

/*
** Write the Lua value at `idx` as JSON text into `out`, by the rules of
** ljson_to() (and its messages, into `why`), without a JSON tree in
** between.  Reals are written with `digits` significant digits.  Returns
** 0, or -1 with `why` filled and `out` holding a partial text the caller
** drops.
*/
struct strbuf;
/* What one answer is at most, as JSON: 32 MiB (ljson_write, and the
   decisions' entries that engine/decide.c writes itself). */
#define LJSON_MAX_WRITE ((size_t)32 << 20)
int ljson_write(lua_State *L, int idx, struct strbuf *out, int digits, const char *path,
                char *why, size_t why_len);

#endif /* TAILOR_LJSON_H */
