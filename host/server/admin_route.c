/*
** admin_route.c: the merchant console's HTTP routes (docs/console.md),
** apart from sockets like route.c: /admin and its files, the login and
** logout, and the admin API under /admin/api/ that the console reads.
** Which endpoints there are, with the method and the permissions each
** needs, is the one table below; console.c runs them.
*/
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "server/request.h"

/* X(name, POST, permissions): GET endpoints read, POST ones change. */
#define SRV_ADMIN_API(X)                                   \
  X("session", 0, SRV_PERM_STATS)                          \
  X("overview", 0, SRV_PERM_STATS)                         \
  X("revenue", 0, SRV_PERM_STATS)                          \
  X("experiments", 0, SRV_PERM_STATS)                      \
  X("outbox", 0, SRV_PERM_STATS)                           \
  X("outbox/message", 0, SRV_PERM_PROFILES)                \
  X("outbox/message.html", 0, SRV_PERM_PROFILES)           \
  X("outbox/retry", 1, SRV_PERM_ALL)                       \
  X("outbox/purge", 1, SRV_PERM_ALL)                       \
  X("audiences", 0, SRV_PERM_STATS)                        \
  X("audiences/members", 0, SRV_PERM_STATS)                \
  X("audiences/export", 0, SRV_PERM_PROFILES)              \
  X("preview", 0, SRV_PERM_PROFILES)                       \
  X("strategies", 0, SRV_PERM_STATS)                       \
  X("strategies/check", 0, SRV_PERM_STATS)

static const struct {
  const char *name;
  int post;
  unsigned need;
} endpoints[] = {
#define SRV_ADMIN_ROW_(name, post, need) {name, post, need},
    SRV_ADMIN_API(SRV_ADMIN_ROW_)
#undef SRV_ADMIN_ROW_
};

/* "a\0b\0c" into out->text: the parts console.c reads back. */
static int pack(srv_request *out, const char *a, size_t an, const char *b, size_t bn,
                const char *c, size_t cn, tailor_error *err) {
  if (!(out->text = malloc(an + bn + cn + 3))) return srv_oom(err, "admin");
  char *p = out->text;
  /* A part may be empty and NULL (a POST with no body): no memcpy of it. */
  if (an) memcpy(p, a, an);
  p += an, *p++ = '\0';
  if (bn) memcpy(p, b, bn);
  p += bn, *p++ = '\0';
  if (cn) memcpy(p, c, cn);
  p += cn, *p = '\0';
  out->text_len = an + bn + cn + 2;
  return SRV_OK;
}

int srv_parse_admin(int method, const char *p, size_t n, const char *query, size_t qn,
                    const char *body, size_t body_len, srv_request *out,
                    tailor_error *err) {
  static const char api[] = "/admin/api/";
  const size_t k = sizeof api - 1;
#define IS(lit) (n == sizeof(lit) - 1 && !memcmp(p, lit, n))
  if (IS("/admin/login") || IS("/admin/logout")) {
    out->op = IS("/admin/login") ? SRV_OP_CONSOLE_LOGIN : SRV_OP_CONSOLE_LOGOUT;
    if (method != SRV_POST)
      return util_fail(err, SRV_EBAD_METHOD, NULL, "%.*s takes POST", (int)n, p);
    return pack(out, body, body_len, "", 0, "", 0, err);
  }
#undef IS
  if (n > k && !memcmp(p, api, k)) {
    for (size_t i = 0; i < sizeof endpoints / sizeof *endpoints; i++) {
      if (strlen(endpoints[i].name) != n - k || memcmp(endpoints[i].name, p + k, n - k))
        continue;
      out->op = endpoints[i].post ? SRV_OP_CONSOLE_WRITE : SRV_OP_CONSOLE_READ;
      out->need = endpoints[i].need;
      if (method != (endpoints[i].post ? SRV_POST : SRV_GET))
        return util_fail(err, SRV_EBAD_METHOD, NULL, "/admin/api/%s takes %s",
                         endpoints[i].name, endpoints[i].post ? "POST" : "GET");
      return pack(out, p + k, n - k, query, qn, endpoints[i].post ? body : "",
                  endpoints[i].post ? body_len : 0, err);
    }
    out->op = SRV_OP_CONSOLE_READ;
    return util_fail(err, SRV_ENOT_FOUND, NULL, "no admin endpoint %.*s", (int)(n < 200 ? n : 200), p);
  }
  /* The console's own files: /admin and /admin/ are its page. */
  out->op = SRV_OP_CONSOLE_FILE;
  if (method != SRV_GET)
    return util_fail(err, SRV_EBAD_METHOD, NULL, "%.*s takes GET", (int)(n < 200 ? n : 200), p);
  const char *name = n > 7 ? p + 7 : "index.html";
  size_t nn = n > 7 ? n - 7 : strlen("index.html");
  for (size_t i = 0; i < nn; i++)
    if (name[i] == '%' || name[i] == '\\' || (name[i] == '.' && (i == 0 || name[i - 1] == '/')))
      return util_fail(err, SRV_ENOT_FOUND, NULL, "no console file %.*s", (int)(n < 200 ? n : 200), p);
  return pack(out, name, nn, "", 0, "", 0, err);
}
