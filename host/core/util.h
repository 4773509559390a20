/*
** util.h: the few helpers every part of the host uses.
*/
#ifndef TAILOR_UTIL_H
#define TAILOR_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include "tailor.h"

/* Wall-clock milliseconds since the epoch. */
int64_t util_now_ms(void);

/* Monotonic nanoseconds, for latency figures. */
uint64_t util_mono_ns(void);

/* Fill `err` (may be NULL) with code, field (may be NULL) and a formatted
   message; returns `code` so callers can `return util_fail(...)`. */
int util_fail(tailor_error *err, int code, const char *field, const char *fmt,
              ...) __attribute__((format(printf, 4, 5)));

/* Read a stream to its end into a NUL-terminated buffer the caller frees;
   NULL with errno set on failure.  *len (may be NULL) receives its length. */
char *util_read_stream(FILE *f, size_t *len);

/* Read a whole file into a NUL-terminated buffer the caller frees; NULL with
   errno set on failure.  *len (may be NULL) receives its length. */
char *util_read_file(const char *path, size_t *len);

/*
** The deepest nesting of arrays and objects in `len` bytes of JSON text
** (strings skipped), without parsing it: checked before a parse, so that
** a document nested thousands deep is refused at once.  Every parser of
** input uses UTIL_MAX_JSON_DEPTH.
*/
int util_json_depth(const char *s, size_t len);
#define UTIL_MAX_JSON_DEPTH 32

#endif /* TAILOR_UTIL_H */
