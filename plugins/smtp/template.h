/*
** template.h: the email templates of the smtp plugin: a small
** Mustache-like language that escapes by default.
**
**   {{name}}             a value (dotted paths: {{item.name}}; {{.}} is the
**                        current value); escaped for where it lands: HTML
**                        entities in the HTML part, no line breaks in the
**                        subject, as is in the text part
**   {{price | money}}    a filter: money (two decimals), url (only http:,
**                        https:, mailto: and /paths pass, a /path made
**                        absolute with shop.url when it is http(s);
**                        anything else, javascript: included, is dropped)
**   {{#items}}..{{/items}}  a section: repeated for each element of a list
**                        (inside, names are looked up in the element first,
**                        then outwards; {{@number}} counts from 1,
**                        {{#@first}} and {{#@last}} tell the ends), shown
**                        once for any other value that is not false, null,
**                        "" or an empty list (an object is looked in)
**   {{^items}}..{{/items}}  shown when it is false, null, "", or empty
**   {{! a comment }}
**
** There is no raw output: a variable can never add markup.  A line that
** holds nothing but a section tag or a comment is dropped whole, so text
** templates keep their layout.  A missing name renders as nothing.
** Compile errors name the template and the line.
*/
#ifndef TAILOR_SMTP_TEMPLATE_H
#define TAILOR_SMTP_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

/* Limits: sections nested deeper, or output larger, is an error. */
#define TPL_MAX_DEPTH 16
#define TPL_MAX_OUTPUT (4u << 20)

typedef struct tpl tpl;

/* Where the output goes, which decides the escaping. */
typedef enum tpl_mode { TPL_TEXT, TPL_HTML, TPL_HEADER } tpl_mode;

/*
** Compile `len` bytes of template text.  `name` ("abandoned_cart.html")
** prefixes error messages.  Returns the template (free with tpl_free), or
** NULL with "name:line: what" in `err`.
*/
tpl *tpl_compile(const char *src, size_t len, const char *name, char *err,
                 size_t errlen);

/*
** Render with `scope` (a JSON object, borrowed) escaping for `mode`.
** Returns a NUL-terminated string the caller frees (length in *len, may be
** NULL), or NULL with the reason in `err` (output over TPL_MAX_OUTPUT,
** out of memory).
*/
char *tpl_render(const tpl *t, json_t *scope, tpl_mode mode, size_t *len,
                 char *err, size_t errlen);

void tpl_free(tpl *t);

#endif /* TAILOR_SMTP_TEMPLATE_H */
