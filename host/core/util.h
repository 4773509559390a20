/*
** util.h: the few helpers every part of the host uses.
*/
#ifndef TAILOR_UTIL_H
#define TAILOR_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <stdio.h>

#include "core/defaults.h"
#include "tailor.h"

/* Wall-clock milliseconds since the epoch. */
int64_t util_now_ms(void);

/* `ms` (since the epoch) as "2026-12-04T10:00:00Z" in `buf` (n bytes, 21
   are enough); returns buf.  For messages that name a time. */
const char *util_iso_time(int64_t ms, char *buf, size_t n);

/* Monotonic nanoseconds, for latency figures. */
uint64_t util_mono_ns(void);

/* The SHA-256 of s[0..n) as 64 lowercase hex digits and a NUL. */
void util_sha256_hex(const char *s, size_t n, char out[65]);

/*
** The one way an error is filled, in every part of the host: `err` (may be
** NULL) gets `code`, `field` (NULL for none) and the formatted message;
** err->line is left alone (it is the batch reader's to set).  Returns
** `code`, so that callers `return util_fail(...)`.  Messages often echo
** input, so they are made one line (control characters become spaces) and
** valid UTF-8 (a cut at sizeof message inside a character drops the
** partial character): they can be printed or put in a JSON string as they
** are.  `code` is a tailor_code, except in the server, where it is an
** srv_err (server/proto.h).
*/
int util_fail(tailor_error *err, int code, const char *field, const char *fmt,
              ...) __attribute__((format(printf, 4, 5)));

/* Whether `len` bytes at `s` are valid UTF-8 (RFC 3629: no overlong forms,
** no surrogates, nothing past U+10FFFF); on failure *bad_at (may be NULL)
** is the offset of the first bad byte. */
int util_utf8_valid(const char *s, size_t len, size_t *bad_at);

/* The value of hex digit c, or -1 (percent-decoding: route.c, static.c). */
int util_hex_digit(int c);

/* s cut (in place) before its first byte that is not UTF-8, as a message
   cut at a buffer's size inside a character must be; returns s. */
char *util_utf8_cut(char *s);

/* Read a stream to its end into a NUL-terminated buffer the caller frees;
   NULL with errno set on failure.  *len (may be NULL) receives its length. */
char *util_read_stream(FILE *f, size_t *len);

/* The folder that holds `path` ("." for a bare name), into buf. */
const char *util_dir_of(const char *path, char *buf, size_t n);

/* fsync the folder that holds `path`, so that a file created, renamed or
   removed there stays so after a power loss; 0, or -1 with errno. */
int util_sync_dir_of(const char *path);

/* Read a whole file into a NUL-terminated buffer the caller frees; NULL with
   errno set on failure.  *len (may be NULL) receives its length. */
char *util_read_file(const char *path, size_t *len);

/* A JSON file, or NULL with `err` (TAILOR_EINVAL): "FILE:LINE:COL: what"
   for a syntax error, "FILE: the system's reason" for a file that cannot
   be read (a missing file, a folder: jansson has no position to give). */
json_t *util_json_file(const char *path, tailor_error *err);

/*
** The deepest nesting of arrays and objects in `len` bytes of JSON text
** (strings skipped), without parsing it: checked before a parse, so that
** a document nested thousands deep is refused at once.  Every parser of
** input uses UTIL_MAX_JSON_DEPTH.
*/
int util_json_depth(const char *s, size_t len);

#define UTIL_MAX_JSON_DEPTH DEF_MAX_JSON_DEPTH

/*
** Parse `len` bytes of JSON text into a jansson value, as json_loadb(buf,
** len, 0, err) does and with its verdicts and messages (an object or an
** array at the top, nothing after it, no NUL in strings; duplicate keys:
** the last wins), faster: a flat object (core/flat.h: the usual request)
** is made into its tree without a parser, anything else by yajl's
** tokenizer, and what that refuses is handed to jansson.  Callers bound
** the nesting first (util_json_depth).
*/
json_t *util_json_parse(const char *buf, size_t len, json_error_t *err);

/*
** Ids may come as integers; tailor keeps them as text.  An integer `v`,
** found in `parent` under `key` (an object) or at `index` (an array, key
** NULL), is replaced there by its decimal text; returns the value now in
** its place (`v` itself when it was no integer), NULL when out of memory.
*/
json_t *util_id_text(json_t *parent, const char *key, size_t index, json_t *v);

#endif /* TAILOR_UTIL_H */
