/*
** flat.h: a scanner for the one shape of JSON most writes have: an object
** of strings without escapes and plain numbers, one level of objects
** inside at most ({"id": 7, "op": "event", "event": {"type": "view",
** "item": "sku1", "anon": "a1"}}).  The scan builds nothing: it points
** into the text, and only ever says "this is such an object, here are its
** members" or "not this shape"; for any other text the caller reads it
** with the full JSON parser, whose verdict and error messages stand.  So
** the scanner may refuse more than it has to (an escape, a true, a null,
** an array, a duplicate key, a number of many digits), never accept what
** the parser would read differently.  A caller that wants the JSON tree
** of a flat text gets it from flat_tree, the same tree the parser makes.
*/
#ifndef TAILOR_FLAT_H
#define TAILOR_FLAT_H

#include <jansson.h>
#include <stddef.h>

/* One member: its key and its value's bytes. */
typedef struct flat_member {
  const char *key; /* not NUL-terminated; never holds an escape */
  size_t key_len;
  const char *val; /* a string's contents (without the quotes), a number's
                      text, or an object's text from '{' to '}' */
  size_t val_len;
  char kind;       /* 's' string, 'n' number, 'o' object */
} flat_member;

#define FLAT_MAX_MEMBERS 16

/*
** Scan the object that starts at s[0] (after optional whitespace) within
** `len` bytes into m[] (at most FLAT_MAX_MEMBERS).  Objects inside are
** allowed when `nested` is set, and must be flat themselves (their members
** are not returned: scan their text again).  Returns the bytes the object
** took, up to and including its '}', or 0 when the text is not of the
** shape.  *n receives the number of members.
*/
size_t flat_object(const char *s, size_t len, int nested, flat_member *m, size_t *n);

/* Whether the member's key is `k` (NUL-terminated). */
int flat_key_is(const flat_member *m, const char *k);

/*
** A number member as a double, when it is an unsigned integer or decimal
** of at most 15 digits without an exponent (so that every JSON reader gets
** the same double); 0 on success, -1 otherwise.  *integral (may be NULL) is set when it has
** neither fraction nor exponent.
*/
int flat_number(const flat_member *m, double *x, int *integral);

/* A whole text that is such an object (one level of objects inside, only
   whitespace after it, UTF-8): flat_object's scan, or 0. */
size_t flat_text(const char *text, size_t len, flat_member *m, size_t *n);

/* The JSON tree of a flat text, the same as json_loadb's, made without a
   parser; NULL for any other text.  flat_tree_of makes it from the
   members of flat_text's scan. */
json_t *flat_tree(const char *text, size_t len);
json_t *flat_tree_of(const flat_member *m, size_t n);

#endif /* TAILOR_FLAT_H */
