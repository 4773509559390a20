/*
** outbox.c: `tailor outbox list|retry|purge|deliver`: what an operator
** needs to see and act on the outbox (emails and webhooks strategies
** scheduled).  `tailor serve` delivers by itself; `deliver` is for hosts
** without a server (a cron job).
*/
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/defaults.h"
#include "store/outbox.h"

/* Defaults of the subcommands. */
#define OUTBOX_PURGE_DAYS DEF_OUTBOX_PURGE_DAYS /* purge rows last changed this long ago */
#define OUTBOX_DELIVER_MAX 100  /* rows one `deliver` takes */

/* A format: the defaults are filled in (print_help). */
static const char help[] =
    "usage: tailor outbox list [--state STATE] [--customer ID] [--json]\n"
    "       tailor outbox retry KEY | --dead\n"
    "       tailor outbox purge [--state STATE] [--older-than DAYS]\n"
    "       tailor outbox deliver [--max N]\n\n"
    "The outbox holds what strategies scheduled (emails, webhooks) until it is\n"
    "delivered.  States: pending (waiting for its time, or for a retry after a\n"
    "failure), sending, sent, cancelled, dead (gave up, with its last error).\n\n"
    "  list      newest first, at most %d rows; --json for every field\n"
    "  retry     make a failed, dead or cancelled row (or every dead row)\n"
    "            pending and due now, attempts reset; a sent row is never sent\n"
    "            again, a row not tried yet goes at its due time\n"
    "  purge     delete sent, cancelled and dead rows (or those of STATE) last\n"
    "            changed more than DAYS ago (default %d); pending rows stay\n"
    "  deliver   deliver what is due now, once, through the configured\n"
    "            plugins (tailor serve does this by itself)\n\n";

static void print_help(FILE *f) {
  fprintf(f, help, DEF_OUTBOX_LIST_MAX, OUTBOX_PURGE_DAYS);
  fputs(CLI_COMMON_HELP, f);
}

/* "2026-03-01 12:00:00" (UTC) for ms since the epoch; "-" for 0. */
static const char *stamp(int64_t ms, char *buf, size_t n) {
  if (!ms) return "-";
  time_t s = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&s, &tm);
  strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

static int list(tailor *t, const char *state, const char *customer, int as_json) {
  char *out = NULL;
  tailor_error err = {0};
  if (tailor_outbox_list(t, state, customer, &out, &err)) {
    fprintf(stderr, "tailor outbox: %s\n", err.message);
    return EXIT_FAIL;
  }
  json_t *rows = json_loads(out, 0, NULL);
  tailor_free(out);
  if (as_json) {
    char *pretty = json_dumps(rows, JSON_INDENT(2));
    printf("%s\n", pretty ? pretty : "[]");
    free(pretty);
  } else if (!json_array_size(rows)) {
    printf("the outbox has no such rows\n");
  } else {
    printf("%-6s %-9s %3s  %-19s  %-19s  %-8s %-18s %s\n", "id", "state", "try", "due (UTC)",
           "next try (UTC)", "channel", "template", "key / last error");
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
      char due[32], next[32];
      const char *st = json_string_value(json_object_get(r, "state"));
      int64_t next_at = json_integer_value(json_object_get(r, "next_at"));
      printf("%-6lld %-9s %3lld  %-19s  %-19s  %-8s %-18s %s\n",
             (long long)json_integer_value(json_object_get(r, "id")), st,
             (long long)json_integer_value(json_object_get(r, "attempts")),
             stamp(json_integer_value(json_object_get(r, "due")), due, sizeof due),
             stamp(st && !strcmp(st, "pending") ? next_at : 0, next, sizeof next),
             json_string_value(json_object_get(r, "channel")),
             json_string_value(json_object_get(r, "template")),
             json_string_value(json_object_get(r, "key")));
      const char *last = json_string_value(json_object_get(r, "last_error"));
      if (last) printf("%69s %s\n", "", last);
    }
  }
  json_decref(rows);
  return EXIT_OK;
}

int cmd_outbox(int argc, char **argv) {
  cli_opts o = {0};
  const char *what = argc > 1 ? argv[1] : NULL;
  const char *state = NULL, *customer = NULL, *key = NULL;
  int as_json = 0, dead = 0;
  long days = OUTBOX_PURGE_DAYS, max = OUTBOX_DELIVER_MAX;
  if (!what || !strcmp(what, "-h") || !strcmp(what, "--help")) {
    print_help(what ? stdout : stderr);
    return what ? EXIT_OK : EXIT_BADINPUT;
  }
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char **slot = !strcmp(a, "--state") ? &state
                        : !strcmp(a, "--customer") ? &customer
                                                   : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      print_help(stdout);
      return EXIT_OK;
    }
    if (cli_common_opt(&o, argc, argv, &i)) continue;
    if (slot && i + 1 < argc) {
      *slot = argv[++i];
    } else if ((!strcmp(a, "--older-than") || !strcmp(a, "--max")) && i + 1 < argc) {
      /* Days as milliseconds stay far from overflow: a century at most. */
      long v;
      if (cli_number("outbox", a, argv[++i], a[2] == 'm' ? 1 : 0, a[2] == 'm' ? 100000 : 36500,
                     &v))
        return EXIT_BADINPUT;
      *(a[2] == 'm' ? &max : &days) = v;
    } else if (!strcmp(a, "--json")) {
      as_json = 1;
    } else if (!strcmp(a, "--dead")) {
      dead = 1;
    } else if (a[0] != '-' && !key) {
      key = a;
    } else {
      fprintf(stderr, "tailor outbox: unexpected argument '%s' (see --help)\n", a);
      return EXIT_BADINPUT;
    }
  }
  /* A state that is not one lists nothing and purges nothing: say so. */
  if (state && !store_outbox_state_name(state)) {
    fprintf(stderr,
            "tailor outbox: --state '%s' is not a state (pending, sending, sent, cancelled, "
            "dead)\n",
            state);
    return EXIT_BADINPUT;
  }
  int is_list = !strcmp(what, "list"), is_retry = !strcmp(what, "retry"),
      is_purge = !strcmp(what, "purge"), is_deliver = !strcmp(what, "deliver");
  if (!is_list && !is_retry && !is_purge && !is_deliver) {
    fprintf(stderr, "tailor outbox: say list, retry, purge or deliver (see --help)\n");
    return EXIT_BADINPUT;
  }
  if (is_retry && !!key == dead) {
    fprintf(stderr, "tailor outbox retry: give one KEY, or --dead for every dead row\n");
    return EXIT_BADINPUT;
  }
  if (!is_retry && key) {
    fprintf(stderr, "tailor outbox %s: unexpected argument '%s'\n", what, key);
    return EXIT_BADINPUT;
  }
  /* Only delivery needs the strategies (on_due) and the plugins, and
     writes events (email_sent): the others change outbox rows alone, in
     transactions of their own, beside a `tailor serve` (store.lock). */
  tailor *t = cli_open(&o, is_deliver ? NULL
                                      : "{\"strategies\": \"\", \"plugins\": [], "
                                        "\"store\": {\"lock\": false}}");
  if (!t) return EXIT_FAIL;
  tailor_error err = {0};
  int rc = EXIT_OK;
  if (is_list) {
    rc = list(t, state, customer, as_json);
  } else if (is_retry) {
    int n = 0;
    int code = tailor_outbox_retry(t, key, &n, &err);
    if (code) {
      fprintf(stderr, "tailor outbox retry: %s\n", err.message);
      rc = code == TAILOR_ENOTFOUND || code == TAILOR_EDENIED ? EXIT_BADINPUT : EXIT_FAIL;
    } else {
      printf("%d row%s pending again\n", n, n == 1 ? "" : "s");
    }
  } else if (is_purge) {
    int64_t n = 0;
    if (tailor_outbox_purge(t, state, (int64_t)days * 86400000, &n, &err)) {
      fprintf(stderr, "tailor outbox purge: %s\n", err.message);
      rc = err.code == TAILOR_EINVAL ? EXIT_BADINPUT : EXIT_FAIL;
    } else {
      printf("purged %lld row%s\n", (long long)n, n == 1 ? "" : "s");
    }
  } else {
    int n = 0;
    if (!tailor_delivery_channels(t)) {
      /* "sent 0" would read as "nothing was due". */
      fprintf(stderr,
              "tailor outbox deliver: nothing can be sent: no delivery channel is configured "
              "(add the smtp or webhook plugin to the config's \"plugins\", docs/plugins.md); "
              "due rows wait in the outbox\n");
      rc = EXIT_FAIL;
    } else if (tailor_deliver_due(t, (int)max, &n, &err)) {
      fprintf(stderr, "tailor outbox deliver: %s\n", err.message);
      rc = EXIT_FAIL;
    } else {
      printf("sent %d\n", n);
    }
  }
  tailor_close(t);
  return rc;
}
