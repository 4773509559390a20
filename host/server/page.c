/*
** page.c: the pages the API shows a person rather than a program: the
** answer to GET /v1/confirm, the link of a double opt-in confirmation
** email (engine/optin.c), and to /v1/unsubscribe, the link every other
** email carries.  A few lines of HTML that say what happened, in
** the status too (200 confirmed; 400 a forged, malformed, expired or used
** link; 404 a request that is gone), with nothing loaded from elsewhere and
** the link's token kept from other sites (Referrer-Policy).
*/
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"
#include "server/internal.h"

/* `s` with &, <, >, " and ' escaped. */
static void put_escaped(strbuf *b, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
      case '&': buf_puts(b, "&amp;"); break;
      case '<': buf_puts(b, "&lt;"); break;
      case '>': buf_puts(b, "&gt;"); break;
      case '"': buf_puts(b, "&quot;"); break;
      case '\'': buf_puts(b, "&#39;"); break;
      default: buf_putc(b, *s);
    }
  }
}

/* A page: `title` as its title and heading, then `body` (HTML, escaped by
   the caller); the status of `rc`.  Takes `body`. */
static void put_page(job *j, int rc, const char *title, char *body) {
  strbuf b = {0};
  buf_puts(&b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
               "<meta name=\"robots\" content=\"noindex\"><title>");
  put_escaped(&b, title);
  buf_puts(&b, "</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:34em;"
               "margin:4em auto;padding:0 1em;color:#1f2430}h1{font-size:1.4em}</style>"
               "</head><body><h1>");
  put_escaped(&b, title);
  buf_puts(&b, "</h1>\n");
  buf_puts(&b, body ? body : "");
  free(body);
  buf_puts(&b, "\n</body></html>\n");
  size_t len = 0;
  char *page = buf_take(&b, &len);
  buf_free(&b);
  if (!page || !(j->headers = strdup("Referrer-Policy: no-referrer\r\n"
                                     "Content-Security-Policy: default-src 'none'; "
                                     "style-src 'unsafe-inline'\r\n"))) {
    free(page);
    util_fail(&j->err, SRV_EINTERNAL, NULL, "page: out of memory");
    return;
  }
  j->body = page;
  j->body_len = len;
  j->ctype = "text/html; charset=utf-8";
  j->status = rc ? srv_err_status(srv_err_of_tailor(rc)) : 200;
}

/* The engine's message without its "<op>: " prefix. */
static const char *bare(int rc, const tailor_error *e, const char *prefix) {
  const char *msg = e && e->message[0] ? e->message : tailor_strerror(rc);
  size_t n = strlen(prefix);
  return strncmp(msg, prefix, n) ? msg : msg + n;
}

void srv_confirm_page(job *j, int rc, const char *json, const tailor_error *e) {
  json_t *ans = json && !rc ? json_loads(json, 0, NULL) : NULL;
  const char *title = rc ? "This link did not work"
                      : ans ? "Thank you: your address is confirmed"
                            : "Confirm your address";
  strbuf b = {0};
  buf_puts(&b, "<p");
  if (rc) {
    buf_puts(&b, " id=\"error\">");
    put_escaped(&b, bare(rc, e, "confirm: "));
  } else if (ans) {
    buf_puts(&b, " id=\"confirmed\"><strong>");
    put_escaped(&b, json_string_value(json_object_get(ans, "email")));
    buf_puts(&b, "</strong> will receive what you asked for (");
    put_escaped(&b, json_string_value(json_object_get(ans, "purpose")));
    buf_puts(&b, "). You can withdraw your consent at any time.");
  } else {
    buf_puts(&b, ">One click and we will send you what you asked for.</p><form method=\"post\">"
                 "<p><button type=\"submit\">Confirm my address</button></p></form><p>"
                 "If you did not ask for it, do nothing: without the click nothing is kept.");
  }
  buf_puts(&b, "</p>");
  json_decref(ans);
  put_page(j, rc, title, buf_take(&b, NULL));
  buf_free(&b);
}

/*
** The unsubscribe link of an email (GET): a page with one button, which
** posts back to the same address; the POST (that button, or a mail
** client's one-click List-Unsubscribe-Post) is what unsubscribes, so a
** link scanner that follows links changes nothing.
*/
void srv_unsubscribe_page(job *j, int rc, int done, const tailor_error *e) {
  const char *title = rc ? "This link did not work"
                      : done ? "You are unsubscribed"
                             : "Unsubscribe from these emails?";
  strbuf b = {0};
  if (rc) {
    buf_puts(&b, "<p id=\"error\">");
    put_escaped(&b, bare(rc, e, "unsubscribe: "));
    buf_puts(&b, "</p>");
  } else if (done) {
    buf_puts(&b, "<p id=\"unsubscribed\">You will get no more marketing emails from us, "
                 "and we will not show you ads for what you looked at. Emails you ask for "
                 "(an order's, a confirmation) still come.</p>");
  } else {
    buf_puts(&b, "<form method=\"post\"><p>No more marketing emails, and no ads for what "
                 "you looked at.</p><p><button type=\"submit\" name=\"List-Unsubscribe\" "
                 "value=\"One-Click\">Unsubscribe</button></p></form>");
  }
  put_page(j, rc, title, buf_take(&b, NULL));
  buf_free(&b);
}
