/*
** audiences.c: `tailor audiences export`: the members of a recency
** audience, for an ad platform's customer list.  The audiences partition
** the recent visitors (tailor_audience_members).  Emails are normalized
** (trimmed, lower case) and hashed with SHA-256 (hex), the form the large
** ad platforms take; only customers who consented to email are exported
** with one.
*/
#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* SHA-256 of a normalized email as 64 hex digits into out[65]. */
static void hash_email(const char *email, char out[65]) {
  char norm[320];
  size_t n = 0;
  while (isspace((unsigned char)*email)) email++;
  for (; *email && n < sizeof norm - 1; email++) norm[n++] = (char)tolower((unsigned char)*email);
  while (n && isspace((unsigned char)norm[n - 1])) n--;
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(norm, n, md, &len, EVP_sha256(), NULL);
  for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

typedef struct export_run {
  int hashed, csv;
  size_t with_email;
} export_run;

/* CSV fields here are ids and hex: quote only what needs it. */
static void csv_field(const char *s) {
  if (!s) return;
  if (!strpbrk(s, ",\"\n")) {
    fputs(s, stdout);
    return;
  }
  putchar('"');
  for (; *s; s++) {
    if (*s == '"') putchar('"');
    putchar(*s);
  }
  putchar('"');
}

static void print_member(void *ud, const char *customer, const char *anon,
                         const char *email) {
  export_run *r = ud;
  char hash[65];
  const char *e = NULL;
  if (email && r->hashed) {
    hash_email(email, hash);
    e = hash;
  }
  if (e) r->with_email++;
  if (r->csv) {
    csv_field(customer);
    putchar(',');
    csv_field(anon);
    putchar(',');
    csv_field(e);
    putchar('\n');
  } else {
    json_t *o = json_object();
    if (customer) json_object_set_new(o, "customer", json_string(customer));
    if (anon) json_object_set_new(o, "anon", json_string(anon));
    if (e) json_object_set_new(o, "email_sha256", json_string(e));
    char *s = json_dumps(o, JSON_COMPACT);
    puts(s);
    free(s);
    json_decref(o);
  }
}

static const char help[] =
    "usage: tailor audiences export [OPTIONS] AUDIENCE --days N\n"
    "                               [--hashed-emails] [--csv]\n\n"
    "The members of one recency audience, one a line as NDJSON ({customer,\n"
    "anon, email_sha256}) or CSV (customer,anon,email_sha256).  Nobody is in\n"
    "two audiences; with index.audience_days \"2,7,14\" they are:\n"
    "  buyers --days 14           ordered within 14 days\n"
    "  cart_abandoners --days 2   else: seen within 2 days, items in the cart\n"
    "  visitors --days 2, 7, 14   everyone else, last seen within 2 days,\n"
    "                             2 to 7, 7 to 14\n"
    "--hashed-emails adds the SHA-256 of the normalized email of customers who\n"
    "consented to email; addresses themselves are never exported.\n\n";

int cmd_audiences(int argc, char **argv) {
  cli_opts o = {0};
  int days = 0;
  export_run run = {0, 0, 0};
  int export = 0;
  const char *audience = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      fputs(help, stdout);
      fputs(CLI_COMMON_HELP, stdout);
      return EXIT_OK;
    }
    if (cli_common_opt(&o, argc, argv, &i)) continue;
    if (!strcmp(argv[i], "export")) export = 1;
    else if (!strcmp(argv[i], "--days") && i + 1 < argc) days = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--hashed-emails")) run.hashed = 1;
    else if (!strcmp(argv[i], "--csv")) run.csv = 1;
    else if (export && !audience && argv[i][0] != '-') audience = argv[i];
    else {
      fprintf(stderr, "tailor audiences: unexpected argument '%s' (see --help)\n", argv[i]);
      return EXIT_BADINPUT;
    }
  }
  if (!export || !audience || days < 1) {
    fprintf(stderr, "tailor audiences: say 'export AUDIENCE --days N' "
                    "(buyers, cart_abandoners or visitors; see --help)\n");
    return EXIT_BADINPUT;
  }
  tailor *t = cli_open(&o, "{\"strategies\": \"\"}");
  if (!t) return EXIT_FAIL;
  if (run.csv) puts("customer,anon,email_sha256");
  size_t n = 0;
  tailor_error err = {0};
  int rc = tailor_audience_members(t, audience, days, run.hashed, print_member, &run, &n, &err);
  tailor_close(t);
  if (rc) {
    fprintf(stderr, "tailor audiences: %s\n", err.message);
    return rc == TAILOR_EINVAL ? EXIT_BADINPUT : EXIT_FAIL;
  }
  fprintf(stderr, "%zu members, %zu with a hashed email\n", n, run.with_email);
  return EXIT_OK;
}
