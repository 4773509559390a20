/*
** proto.c: the server protocol's tables (roles, operations, error codes)
** and their lookups.  The parsers that use them are request.c (NDJSON
** lines) and route.c (HTTP requests); the input buffer is inbuf.c.
*/
#include "server/proto.h"

#include <string.h>

static const struct {
  const char *name;
  unsigned perms;
} roles[] = {
#define SRV_ROLE_ROW_(e, name, perms, doc) {name, perms},
    SRV_ROLE_MAP(SRV_ROLE_ROW_)
#undef SRV_ROLE_ROW_
};

int srv_role_lookup(const char *name) {
  for (int i = 0; name && i < SRV_ROLE_COUNT; i++)
    if (!strcmp(roles[i].name, name)) return i;
  return -1;
}
const char *srv_role_name(int role) {
  return role >= 0 && role < SRV_ROLE_COUNT ? roles[role].name : "none";
}
unsigned srv_role_perms(int role) {
  return role >= 0 && role < SRV_ROLE_COUNT ? roles[role].perms : 0;
}

static const struct {
  const char *name;
  int run;
  unsigned perms;
} ops[] = {
#define SRV_OP_ROW_(e, name, run, perms) {name, run, perms},
    SRV_OP_MAP(SRV_OP_ROW_)
#undef SRV_OP_ROW_
};

/* Names of the HTTP-only operations, for metrics and messages. */
static const char *const http_only_names[SRV_OP_COUNT] = {
    [SRV_OP_METRICS] = "metrics",
    [SRV_OP_HEALTH] = "healthz",
    [SRV_OP_PREFLIGHT] = "preflight",
    [SRV_OP_STATIC] = "static",
    [SRV_OP_SEGMENT] = "segment",
    [SRV_OP_GA4] = "ga4",
    [SRV_OP_GA4_DEBUG] = "ga4.debug",
    [SRV_OP_CONSOLE_FILE] = "console.file",
    [SRV_OP_CONSOLE_LOGIN] = "console.login",
    [SRV_OP_CONSOLE_LOGOUT] = "console.logout",
    [SRV_OP_CONSOLE_READ] = "console.read",
    [SRV_OP_CONSOLE_WRITE] = "console.write",
    [SRV_OP_UNSUBSCRIBE] = "unsubscribe",
};

int srv_op_batch(int op) {
  return op == SRV_OP_EVENTS || op == SRV_OP_SEGMENT || op == SRV_OP_GA4 ||
         op == SRV_OP_GA4_DEBUG;
}

const char *srv_op_name(int op) {
  if (op < 0 || op >= SRV_OP_COUNT) return "none";
  return ops[op].name ? ops[op].name : http_only_names[op];
}
int srv_op_ndjson(int op) { return op >= 0 && op < SRV_OP_COUNT && ops[op].name; }

int srv_op_lookup(const char *name) {
  for (int i = 0; name && i < SRV_OP_COUNT; i++)
    if (ops[i].name && !strcmp(ops[i].name, name)) return i;
  return -1;
}
int srv_op_run(int op) { return op >= 0 && op < SRV_OP_COUNT ? ops[op].run : 0; }
unsigned srv_op_perms(int op) {
  return op >= 0 && op < SRV_OP_COUNT ? ops[op].perms : 0;
}

static const struct {
  const char *code;
  int status;
} errs[] = {
    {"ok", 200},
#define SRV_ERR_ROW_(e, code, status, msg) {code, status},
    SRV_ERR_MAP(SRV_ERR_ROW_)
#undef SRV_ERR_ROW_
};

const char *srv_err_code(int e) {
  return e >= 0 && e < SRV_ERR_COUNT ? errs[e].code : "internal";
}
int srv_err_status(int e) { return e >= 0 && e < SRV_ERR_COUNT ? errs[e].status : 500; }

int srv_err_of_tailor(int code) {
  switch (code) {
    case 0: return SRV_OK;
    case -2 /* EPARSE */: return SRV_EBAD_JSON;
    case -5 /* ETOOBIG */: return SRV_ETOO_LARGE;
    case -13 /* ENOTFOUND */: return SRV_ENOT_FOUND;
    case -14 /* EDENIED */: return SRV_EFORBIDDEN;
    case -8 /* ESTORE */:
    case -11 /* EIO */: return SRV_ESTORE;
    case -9 /* ESTRATEGY: a handler that failed (a quiz answer's check) */:
    case -15 /* EBUDGET */:
    case -16 /* ELUAMEM */:
    case -10 /* ENOMEM */:
    case -12 /* ECONFIG */:
    case -17 /* EUNSUPPORTED */: return SRV_EINTERNAL;
    default: return SRV_EBAD_FIELD; /* EFIELD, ETYPE, EUTF8, ETIME, EINVAL */
  }
}
