/*
** tune.c: `tailor tune`: choose a shop's kernel parameters and train its
** re-ranker on a validation split of its own sessions (eval/tune.h), and
** write them where `tailor eval --tuned` and `tailor serve` (index.tuned)
** read them.  Only training sessions are read: there is no test input.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/event.h"
#include "core/util.h"
#include "eval/tune.h"
#include "store/store.h"

/* The defaults in the help text come from tune.h, where the search reads
   them, not from copies. */
#define TUNE_STR_(x) #x
#define TUNE_STR(x) TUNE_STR_(x)

static const char tune_help[] =
    "usage: tailor tune (--train FILE | --db PATH) --out FILE [OPTIONS]\n\n"
    "Choose the tailor kernel's parameters for this shop and train a re-ranker\n"
    "on a validation split carved from the end of the training sessions (time\n"
    "order): the last share of the sessions become (prefix, next item) queries,\n"
    "the sessions before them are indexed.  Test data is never read.  Writes\n"
    "the parameters as JSON, with the validation figures, and the re-ranker's\n"
    "model beside it (FILE without .json, plus .model.json).\n\n"
    "  --train FILE       training sessions, in time order (the formats of\n"
    "                     'tailor eval': plain or NDJSON)\n"
    "  --db PATH          or the views of a store, grouped by session\n"
    "  --out FILE         the parameters (JSON)\n"
    "  --val-share X      share of the sessions held out (default 0.1)\n"
    "  --queries N        validation queries scored per try (default "
    TUNE_STR(TUNE_DEFAULT_QUERIES) ";\n"
    "                     0 = all)\n"
    "  --passes N         coordinate passes at most (default "
    TUNE_STR(TUNE_DEFAULT_MAX_PASSES) ")\n"
    "  --budget-s S       seconds the search may take (default "
    TUNE_STR(TUNE_DEFAULT_BUDGET_S) ")\n"
    "  --threads N        scoring threads (default 2)\n"
    "  --no-rerank        tune the kernel only\n"
    "  --rank-queries N   queries the re-ranker learns from (default "
    TUNE_STR(TUNE_DEFAULT_RANK_QUERIES) ")\n"
    "  --trees N          boosting rounds at most (default "
    TUNE_STR(TUNE_DEFAULT_TREES) ")\n"
    "  --quiet            no progress output\n"
    "  -h, --help         this help\n\n"
    "Then: tailor eval --train FILE --test FILE --tuned OUT, or index.tuned = OUT\n"
    "in the configuration of 'tailor serve'.\n";

static int bad_usage(const char *msg, const char *arg) {
  fprintf(stderr, "tailor tune: ");
  fprintf(stderr, msg, arg);
  fprintf(stderr, "\n(tailor tune --help for usage)\n");
  return EXIT_BADINPUT;
}

static void print_line(void *ud, const char *line) {
  (void)ud;
  fprintf(stderr, "%s\n", line);
}

/* The store's views as NDJSON lines (session and item only), which the
** eval loader groups into sessions as it does an event log. */
static int add_view(void *ud, int64_t seq, const ev *e) {
  strbuf *b = ud;
  (void)seq;
  if (e->type != EV_VIEW || !e->session || !e->n_lines) return 0;
  buf_puts(b, "{\"type\":\"view\",\"item\":");
  buf_json_str(b, e->lines[0].item, strlen(e->lines[0].item));
  buf_puts(b, ",\"session\":");
  buf_json_str(b, e->session, strlen(e->session));
  buf_puts(b, "}\n");
  return b->oom ? TAILOR_ENOMEM : 0;
}

/*
** Whether `path` can be written, asked before the sessions are read: the
** search takes minutes (the default budget is TUNE_DEFAULT_BUDGET_S), and
** an output that cannot be written failed only after it.  Opened for
** writing without truncating, and removed again when this made it.
** Returns 0, or -1 with errno set.
*/
static int can_write(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd >= 0) {
    close(fd);
    unlink(path);
    return 0;
  }
  if (errno != EEXIST || (fd = open(path, O_WRONLY)) < 0) return -1;
  close(fd);
  return 0;
}

static int load_store(eval_data *d, const char *path, double val_share,
                      tailor_error *err) {
  store_options so = {.busy_timeout_ms = STORE_DEFAULT_BUSY_TIMEOUT_MS, .readonly = 1};
  memset(d, 0, sizeof *d);
  store *s = store_open(path, &so, err);
  if (!s) return err->code ? err->code : TAILOR_EIO;
  strbuf b = {0};
  int rc = store_scan(s, 0, add_view, &b, err);
  store_close(s);
  if (!rc && b.n == 0)
    rc = util_fail(err, TAILOR_EINVAL, "db", "%s: no views with a session id", path);
  if (!rc) rc = eval_load_text(d, b.s, b.n, NULL, 0, val_share, err);
  buf_free(&b);
  return rc;
}

int cmd_tune(int argc, char **argv) {
  const char *train = NULL, *db = NULL, *out = NULL;
  double val_share = EVAL_DEFAULT_VAL_SHARE;
  int quiet = 0;
  tune_opts o;
  tune_opts_default(&o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(tune_help, stdout);
      return EXIT_OK;
    }
    if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      quiet = 1;
      continue;
    }
    if (!strcmp(a, "--no-rerank")) {
      o.rerank = 0;
      continue;
    }
    if (!strcmp(a, "--test"))
      return bad_usage("%s: tune reads no test data (it validates on the end of --train)", a);
    if (strcmp(a, "--train") && strcmp(a, "--db") && strcmp(a, "--out") &&
        strcmp(a, "--val-share") && strcmp(a, "--queries") && strcmp(a, "--passes") &&
        strcmp(a, "--budget-s") && strcmp(a, "--threads") && strcmp(a, "--rank-queries") &&
        strcmp(a, "--trees"))
      return bad_usage("unexpected argument '%s'", a);
    if (!v) return bad_usage("%s needs a value", a);
    i++;
    char *end;
    double x = strtod(v, &end);
    int num = *end == '\0' && end != v;
    if (!strcmp(a, "--train")) train = v;
    else if (!strcmp(a, "--db")) db = v;
    else if (!strcmp(a, "--out")) out = v;
    else if (!strcmp(a, "--val-share")) {
      if (!num || !(x > 0 && x < 1)) return bad_usage("--val-share '%s': a share between 0 and 1", v);
      val_share = x;
    } else if (!strcmp(a, "--budget-s")) {
      if (!num || !(x > 0)) return bad_usage("--budget-s '%s': seconds", v);
      o.budget_s = x;
    } else {
      if (!num || x < 0 || x > 1e9 || x != (double)(long)x)
        return bad_usage("%s: a whole count", a);
      if (!strcmp(a, "--queries")) o.queries = (size_t)x;
      else if (!strcmp(a, "--passes")) o.max_passes = (unsigned)x;
      else if (!strcmp(a, "--threads")) o.threads = x < 1 ? 1 : (unsigned)x;
      else if (!strcmp(a, "--rank-queries")) o.rank_queries = (size_t)x;
      else o.trees = x < 1 ? 1 : (unsigned)x;
    }
  }
  if (!train == !db) return bad_usage("%s", "one of --train FILE or --db PATH is required");
  if (!out) return bad_usage("%s", "--out FILE is required");
  char model[4096];
  size_t len = strlen(out);
  if (len > 5 && !strcmp(out + len - 5, ".json")) len -= 5;
  snprintf(model, sizeof model, "%.*s.model.json", (int)len, out);
  o.model_path = o.rerank ? model : NULL;
  const char *unwritable = can_write(out) ? out : o.rerank && can_write(model) ? model : NULL;
  if (unwritable) {
    fprintf(stderr, "tailor tune: cannot write %s: %s\n", unwritable, strerror(errno));
    return EXIT_FAIL;
  }
  if (!quiet) {
    o.progress = print_line;
    fprintf(stderr, "tailor tune: reading the sessions...\n");
  }
  uint64_t t0 = util_mono_ns();
  eval_data d;
  tailor_error err = {0};
  int rc = train ? eval_load(&d, train, NULL, val_share, &err)
                 : load_store(&d, db, val_share, &err);
  if (rc) {
    fprintf(stderr, "tailor tune: %s\n", err.message);
    eval_data_free(&d);
    return rc == TAILOR_EIO || rc == TAILOR_ENOMEM ? EXIT_FAIL : EXIT_BADINPUT;
  }
  tune_result r;
  rc = tune_run(&d, &o, &r, &err);
  if (!rc) rc = tune_write(out, &r, o.model_path, &d, &err);
  if (rc) {
    fprintf(stderr, "tailor tune: %s\n", err.message);
    eval_data_free(&d);
    return rc == TAILOR_EIO || rc == TAILOR_ENOMEM ? EXIT_FAIL : EXIT_BADINPUT;
  }
  double secs = (double)(util_mono_ns() - t0) / 1e9;
  printf("validation: the last %zu of %zu sessions, %zu queries (P@20 / MRR@20 in percent)\n",
         d.train.n - d.ntrain, d.train.n, d.nqueries);
  printf("  repeat share %.1f%%%s\n", 100 * r.profile.share,
         r.profile.share >= SKNN_REPEAT_HEAVY ? " (repeat-heavy: defaults adjusted)" : "");
  printf("  %-22s %6.2f %6.2f\n", "defaults", 100 * r.s_defaults.p20, 100 * r.s_defaults.mrr20);
  if (memcmp(&r.adapted, &r.defaults, sizeof r.adapted))
    printf("  %-22s %6.2f %6.2f\n", "adapted defaults", 100 * r.s_adapted.p20,
           100 * r.s_adapted.mrr20);
  printf("  %-22s %6.2f %6.2f  (%u runs, %u passes%s, %.0f s)\n", "tuned", 100 * r.s_tuned.p20,
         100 * r.s_tuned.mrr20, r.evaluations, r.passes,
         r.budget_cut ? " and part of one more: the time budget ran out" : "", r.search_s);
  if (r.reranked) {
    printf("  held-out part (%zu queries):\n", r.h_tuned.queries);
    printf("  %-22s %6.2f %6.2f\n", "tuned", 100 * r.h_tuned.p20, 100 * r.h_tuned.mrr20);
    printf("  %-22s %6.2f %6.2f  (%u trees, %zu queries, %.0f s)\n", "tuned + re-ranked",
           100 * r.h_reranked.p20, 100 * r.h_reranked.mrr20, r.trees, r.rank_train_queries,
           r.rerank_s);
  }
  char buf[1024];
  sknn_params_format(&r.tuned, buf, sizeof buf);
  printf("parameters: %s\nwritten: %s%s%s (%.0f s in all)\n", buf, out, r.reranked ? ", " : "",
         r.reranked ? model : "", secs);
  eval_data_free(&d);
  return EXIT_OK;
}
