/*
** commands.c: the store-side commands: ingest, decide, check, stats, config.
*/
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/defaults.h"
#include "engine/config.h"
#include "engine/dryrun.h"
#include "engine/engine.h"
#include "core/util.h"
#include "lua/lvm.h"

/* Parse the common options; anything else not starting with '-' goes to
   `args` (at most `max`).  Returns the count of positional arguments, or -1
   after printing help. */
int cli_parse_args(int argc, char **argv, cli_opts *o, const char *help,
                      const char **args, int max) {
  int n = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      fputs(help, stdout);
      fputs(CLI_COMMON_HELP, stdout);
      return -1;
    }
    if (cli_common_opt(o, argc, argv, &i)) continue;
    if ((argv[i][0] == '-' && argv[i][1]) || n == max) {
      fprintf(stderr, "tailor %s: unexpected argument '%s' (see --help)\n",
              argv[0], argv[i]);
      exit(EXIT_BADINPUT);
    }
    args[n++] = argv[i];
  }
  return n;
}

/*
** ingest: NDJSON in chunks of whole lines, each chunk one batch (one
** transaction), so memory stays flat however large the file.
*/
#define INGEST_CHUNK (4u << 20)

typedef struct ingest_run {
  const char *name; /* the input, as messages name it */
  long line_base;   /* lines before the current chunk */
  size_t shown;     /* rejected lines printed */
} ingest_run;

/* "FILE:LINE: why", as compilers say it (an editor jumps there). */
static void on_reject(void *ud, const tailor_error *e) {
  ingest_run *r = ud;
  fprintf(stderr, "%s:%ld: %s\n", r->name, r->line_base + e->line, e->message);
  r->shown++;
}

static const char ingest_help[] =
    "usage: tailor ingest [OPTIONS] [FILE|-]\n\n"
    "Load NDJSON events (tailor, Segment or GA4 format) from FILE or stdin.\n"
    "Valid lines are kept; each rejected line is printed with its reason.\n"
    "Exit status 2 when any line was rejected.\n\n";

int cmd_ingest(int argc, char **argv) {
  cli_opts o = {0};
  const char *path = NULL;
  int n = cli_parse_args(argc, argv, &o, ingest_help, &path, 1);
  if (n < 0) return EXIT_OK;
  o.create = 1;
  FILE *in = (!path || !strcmp(path, "-")) ? stdin : fopen(path, "rb");
  struct stat st;
  if (in && in != stdin && !fstat(fileno(in), &st) && S_ISDIR(st.st_mode)) {
    fclose(in);
    in = NULL;
    errno = EISDIR;
  }
  if (!in) {
    fprintf(stderr, "tailor ingest: %s: %s\n", path, strerror(errno));
    return EXIT_FAIL;
  }
  tailor *t = cli_open(&o, NULL);
  if (!t) {
    if (in != stdin) fclose(in);
    return EXIT_FAIL;
  }
  char *buf = malloc(INGEST_CHUNK + 1);
  size_t have = 0, total_acc = 0, total_rej = 0;
  ingest_run run = {in == stdin ? "stdin" : path, 0, 0};
  int progress = cli_progress_on(&o), rc = TAILOR_OK, read_error = 0, first = 1;
  int skipping = 0; /* in a line longer than the buffer: dropped to its end */
  uint64_t start = util_mono_ns();
  while (buf) {
    size_t got = fread(buf + have, 1, INGEST_CHUNK - have, in);
    if (!got && ferror(in)) {
      read_error = errno ? errno : EIO;
      break;
    }
    have += got;
    int eof = got == 0 || feof(in);
    if (!have) break;
    /* A UTF-8 byte order mark is not part of the first line. */
    if (first && have >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) {
      memmove(buf, buf + 3, have - 3);
      have -= 3;
    }
    first = 0;
    if (skipping) {
      char *nl = memchr(buf, '\n', have);
      size_t drop = nl ? (size_t)(nl - buf) + 1 : have;
      memmove(buf, buf + drop, have - drop);
      have -= drop;
      if (nl) {
        skipping = 0;
        run.line_base++;
      }
      if (eof && !have) break;
      continue;
    }
    /* Cut after the last newline; keep the partial line for the next
       chunk, unless the input ended.  A line that fills the whole buffer
       is one rejection, skipped to its end. */
    size_t cut = have;
    if (!eof) {
      while (cut > 0 && buf[cut - 1] != '\n') cut--;
      if (cut == 0) {
        fprintf(stderr, "%s:%ld: the line is longer than %u bytes (4 MiB); skipped\n",
                run.name, run.line_base + 1, INGEST_CHUNK);
        total_rej++;
        have = 0;
        skipping = 1;
        continue;
      }
    }
    size_t acc = 0, rej = 0;
    rc = tailor_ingest_batch(t, buf, cut, on_reject, &run, &acc, &rej);
    total_acc += acc;
    total_rej += rej;
    if (rc) break;
    for (size_t i = 0; i < cut; i++) run.line_base += buf[i] == '\n';
    if (cut < have && buf[cut - 1] != '\n') run.line_base++;
    memmove(buf, buf + cut, have - cut);
    have -= cut;
    if (progress) {
      double s = (double)(util_mono_ns() - start) / 1e9;
      fprintf(stderr, "\r%zu accepted, %zu rejected, %.0f events/s   ",
              total_acc, total_rej, s > 0 ? (double)(total_acc + total_rej) / s : 0);
    }
    if (eof && !have) break;
  }
  if (progress) fputc('\n', stderr);
  free(buf);
  if (in != stdin) fclose(in);
  tailor_close(t);
  if (read_error) {
    fprintf(stderr, "tailor ingest: %s: %s; the %zu events accepted before it are stored\n",
            run.name, strerror(read_error), total_acc);
    return EXIT_FAIL;
  }
  if (rc) {
    /* The events before the failing transaction are stored (events with
       message ids make a re-run of the whole file safe). */
    fprintf(stderr, "tailor ingest: %s; the %zu events accepted before it are stored, the "
                    "rest of the input is not\n",
            tailor_strerror(rc), total_acc);
    return EXIT_FAIL;
  }
  printf("accepted %zu, rejected %zu\n", total_acc, total_rej);
  return total_rej ? EXIT_BADINPUT : EXIT_OK;
}

static const char decide_help[] =
    "usage: tailor decide [OPTIONS] < request.json\n\n"
    "Read one JSON request from stdin, e.g.\n"
    "  {\"kind\": \"recommend\", \"customer\": \"c1\", \"k\": 5}\n"
    "and print the decision as JSON.\n\n";

int cmd_decide(int argc, char **argv) {
  cli_opts o = {0};
  if (cli_parse_args(argc, argv, &o, decide_help, NULL, 0) < 0) return EXIT_OK;
  size_t len;
  char *req = util_read_stream(stdin, &len);
  if (!req) {
    fprintf(stderr, "tailor decide: cannot read stdin\n");
    return EXIT_FAIL;
  }
  tailor *t = cli_open(&o, NULL);
  if (!t) {
    free(req);
    return EXIT_FAIL;
  }
  char *resp = NULL;
  tailor_error err = {0};
  int rc = tailor_decide(t, req, len, &resp, NULL, &err);
  if (rc == TAILOR_OK) printf("%s\n", resp);
  else fprintf(stderr, "tailor decide: %s\n", err.message);
  tailor_free(resp);
  free(req);
  tailor_close(t);
  return rc == TAILOR_OK ? EXIT_OK
         : (rc == TAILOR_EPARSE || rc == TAILOR_EFIELD || rc == TAILOR_ETOOBIG)
             ? EXIT_BADINPUT
             : EXIT_FAIL;
}

static void report_error(void *ud, const char *file, const char *msg) {
  (void)file;
  fprintf(stderr, "%s\n", msg);
}

static const char check_help[] =
    "usage: tailor check [--sample N] [OPTIONS] [DIR]\n\n"
    "Compile every strategy in DIR (default: --strategies, else the config's\n"
    "\"strategies\", else strategies), over the config's \"strategies_base\" when\n"
    "it has one, and report each error as file:line: message.  Exit status 2\n"
    "when any file fails.  A handler named one edit away from a kind tailor\n"
    "knows (recomend, on_evnt) is a warning.\n\n"
    "  --sample N         then a dry run: every handler of every strategy (each\n"
    "                     recommend page, popup, discount, audiences, rank, every\n"
    "                     segment, on_event with a sample event of each type\n"
    "                     its on_event_for names,\n"
    "                     on_due with the rows on_event scheduled) against N\n"
    "                     visitors with history from the store (--db), picked\n"
    "                     deterministically, or N made-up ones when there is no\n"
    "                     store or it is empty.  Nothing is written.  Reports\n"
    "                     errors and reads of undefined segments (file:line,\n"
    "                     exit status 2) and handlers that answered nothing to\n"
    "                     anybody (warnings).\n";

static int check_sample(cli_opts *o, const char *dir, long n);

/* The handler names the host gives a meaning (strategies.md, "The
   folder"); any other name is a decision kind of the shop's own. */
static const char *const known_kinds[] = {
    "recommend", "popup",  "discount", "audiences",    "rank",     "landing", "visitor",
    "quiz",      "on_event", "on_due", "on_event_for", "segments", "caps",    NULL};

/* Whether a and b are one edit apart: a letter added, dropped or changed,
   or two neighbours swapped. */
static int one_edit(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (la < lb) return one_edit(b, a);
  if (la - lb > 1) return 0;
  size_t i = 0;
  while (i < lb && a[i] == b[i]) i++;
  if (i == la) return 0; /* the same name */
  if (la > lb) return !strcmp(a + i + 1, b + i);
  if (!strcmp(a + i + 1, b + i + 1)) return 1;
  return a[i] == b[i + 1] && a[i + 1] == b[i] && !strcmp(a + i + 2, b + i + 2);
}

/* A handler one edit away from a kind the host knows (`recomend`,
   `on_evnt`, `popop`) compiles as a decision kind of its own, and the
   kind it meant is never called: warned about on stdout, not an error (a
   shop may mean a kind of its own). */
static void warn_near_kinds(lvm *vm) {
  const char *name, *file;
  for (size_t i = 0; (name = lvm_handler_name(vm, i, &file)); i++) {
    const char *const *k = known_kinds;
    while (*k && strcmp(*k, name)) k++;
    if (*k) continue;
    for (k = known_kinds; *k && !one_edit(name, *k); k++) {}
    if (*k)
      printf("warning: %s: handler '%s' is no kind tailor knows: did you mean '%s'?\n", file,
             name, *k);
  }
}

/* No store needed: the API is installed against an empty index, which is
   enough for files that call it while loading. */
int cmd_check(int argc, char **argv) {
  cli_opts o = {0};
  const char *dir = NULL;
  long sample = 0;
  /* --sample is check's own; the rest are the common options. */
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  int nrest = 0;
  for (int i = 0; rest && i < argc; i++) {
    if (!strcmp(argv[i], "--sample")) {
      char *end = NULL;
      if (i + 1 < argc) sample = strtol(argv[i + 1], &end, 10);
      if (!end || *end || sample < 1 || sample > 100000) {
        fprintf(stderr, "tailor check: --sample takes a number of visitors, 1 to 100000\n");
        free(rest);
        return EXIT_BADINPUT;
      }
      i++;
      continue;
    }
    rest[nrest++] = argv[i];
  }
  if (!rest) return EXIT_FAIL;
  int parsed = cli_parse_args(nrest, rest, &o, check_help, &dir, 1);
  free(rest);
  if (parsed < 0) return EXIT_OK;
  /* The folder the engine would load (DIR, else --strategies, else the
     config's, else the default) and the base the config extends it with. */
  config cfg;
  if (cli_config(&o, &cfg)) return EXIT_FAIL;
  if (!dir) dir = cfg.strategies;
  const char *base = cfg.strategies_base;
  if (!*dir) {
    fprintf(stderr, "tailor check: no strategy folder to check (the config's \"strategies\" "
                    "is \"\"): give DIR\n");
    config_free(&cfg);
    return EXIT_BADINPUT;
  }
  if (*base && access(base, F_OK)) {
    fprintf(stderr, "tailor check: strategies_base folder '%s' not found\n", base);
    config_free(&cfg);
    return EXIT_BADINPUT;
  }
  /* The config's Lua limits and plugins (which may add to the API), on an
     in-memory store that writes no checkpoint. */
  tailor *t = cli_open(&(cli_opts){.config = o.config},
                       "{\"db\": \":memory:\", \"strategies\": \"\", "
                       "\"index\": {\"checkpoint\": \"\"}}");
  /* A folder that extends a base is checked as the engine loads it: a
     copy of the base with the folder's files over it (a file requiring the
     base's lib.settings fails alone). */
  tailor_error me = {0};
  char *merged = t && *base ? eng_strategies_merged(base, dir, &me) : NULL;
  if (!t || (*base && !merged)) {
    if (me.code) fprintf(stderr, "tailor check: %s\n", me.message);
    tailor_close(t);
    config_free(&cfg);
    return EXIT_FAIL;
  }
  const char *load = merged ? merged : dir;
  lvm_config c;
  eng_vm_config(t, &c);
  int bad = lvm_check_dir(load, &c, report_error, NULL);
  if (bad == 0) { /* compiled: what the host reads of it (on_event_for) */
    tailor_error e = {0};
    c.dir = load;
    lvm *vm = lvm_new(&c, &e);
    if (!vm || eng_strategies_check(vm, &e)) {
      fprintf(stderr, "%s\n", e.message);
      bad = 1;
    }
    if (!bad) warn_near_kinds(vm);
    lvm_free(vm);
  }
  tailor_close(t);
  eng_strategies_discard(merged);
  if (bad < 0) {
    fprintf(stderr, "tailor check: cannot read %s\n", dir);
  } else if (bad == 0) {
    if (*base) printf("%s: all strategies compile (over the base %s)\n", dir, base);
    else printf("%s: all strategies compile\n", dir);
  }
  int code = bad < 0 ? EXIT_FAIL : bad ? EXIT_BADINPUT : EXIT_OK;
  if (!code && sample) code = check_sample(&o, dir, sample);
  config_free(&cfg);
  return code;
}

static const char *const dry_kinds[] = {"error", "unknown segment", "warning: empty"};

/* The dry run on the store of --db (or --config), or on made-up visitors
   when there is none. */
static int check_sample(cli_opts *o, const char *dir, long n) {
  cli_opts open = *o;
  open.strategies = dir;
  if (!open.db && !open.config) open.db = "tailor.db";
  if (open.db && !store_exists(open.db)) {
    printf("no store at %s: made-up visitors\n", open.db);
    open.db = ":memory:";
  }
  tailor *t = cli_open(&open, NULL);
  if (!t) return EXIT_FAIL;
  tailor_set_logger(t, NULL, NULL); /* the report says it all */
  eng_dry_report rep;
  tailor_error err = {0};
  if (eng_dry_run(t, (size_t)n, &rep, &err)) {
    fprintf(stderr, "tailor check: %s\n", err.message);
    tailor_close(t);
    return EXIT_FAIL;
  }
  printf("dry run of %s on %zu %s visitors (%zu customers, %zu anonymous)\n\n", dir,
         rep.visitors, rep.generated ? "made-up" : "sampled", rep.customers,
         rep.visitors - rep.customers);
  printf("%-34s %-26s %6s %6s %6s\n", "handler", "defined at", "calls", "errors", "empty");
  for (size_t i = 0; i < rep.n_handlers; i++) {
    const eng_dry_handler *h = &rep.handlers[i];
    printf("%-34s %-26s %6zu %6zu %6zu\n", h->name, h->where ? h->where : "?", h->calls,
           h->errors, h->empty);
  }
  if (rep.n_problems) fputc('\n', stdout);
  for (size_t i = 0; i < rep.n_problems; i++) {
    const eng_dry_problem *p = &rep.problems[i];
    FILE *to = p->kind == ENG_DRY_EMPTY ? stdout : stderr;
    fprintf(to, "%s: %s [%s", dry_kinds[p->kind], p->text, p->call);
    if (p->kind != ENG_DRY_EMPTY)
      fprintf(to, ", %zu call%s, first for %s", p->count, p->count == 1 ? "" : "s", p->visitor);
    fputs("]\n", to);
  }
  printf("\n%zu errors, %zu unknown segments, %zu warnings\n", rep.errors,
         rep.unknown_segments, rep.empty);
  int bad = rep.errors || rep.unknown_segments;
  eng_dry_report_free(&rep);
  tailor_close(t);
  return bad ? EXIT_BADINPUT : EXIT_OK;
}

static const char stats_help[] =
    "usage: tailor stats [OPTIONS]\n\n"
    "Print counts of events by type, items and customers as JSON.\n\n";

int cmd_stats(int argc, char **argv) {
  cli_opts o = {0};
  if (cli_parse_args(argc, argv, &o, stats_help, NULL, 0) < 0) return EXIT_OK;
  tailor *t = cli_open(&o, CLI_READER);
  if (!t) return EXIT_FAIL;
  char *s = NULL;
  tailor_error err = {0};
  int rc = tailor_stats(t, &s, &err);
  if (rc == TAILOR_OK) cli_print_json(s);
  else fprintf(stderr, "tailor stats: %s\n", err.message);
  tailor_free(s);
  tailor_close(t);
  return rc ? EXIT_FAIL : EXIT_OK;
}

/* A format: the default window is filled in. */
static const char report_help[] =
    "usage: tailor report experiments [OPTIONS] [--window-days N] [--json]\n\n"
    "Per experiment and variant: exposures, conversion rate, revenue per\n"
    "visitor, and against control the difference and the relative uplift, each\n"
    "with a 95%% interval in its own units, and a\n"
    "p-value (two-proportion z-test for conversion, Welch's t-test for\n"
    "revenue).  Outcomes count within N days (default %d) of a visitor's\n"
    "first exposure.\n\n";

int cmd_report(int argc, char **argv) {
  cli_opts o = {0};
  int window = DEF_REPORT_WINDOW_DAYS, as_json = 0;
  const char *what = NULL;
  /* report's own options out, the rest (the command's name first) to
     cli_parse_args, which refuses what it does not take: as many as given. */
  char **args = calloc((size_t)argc + 1, sizeof *args);
  if (!args) return EXIT_FAIL;
  int nargs = 0;
  args[nargs++] = argv[0];
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--window-days") && i + 1 < argc) {
      long v;
      if (cli_number("report", "--window-days", argv[++i], 1, 36500, &v)) {
        free(args);
        return EXIT_BADINPUT;
      }
      window = (int)v;
    }
    else if (!strcmp(argv[i], "--json")) as_json = 1;
    else args[nargs++] = argv[i];
  }
  char help[sizeof report_help + 16];
  snprintf(help, sizeof help, report_help, DEF_REPORT_WINDOW_DAYS);
  int parsed = cli_parse_args(nargs, args, &o, help, &what, 1);
  free(args);
  if (parsed < 0) return EXIT_OK;
  if (!what || strcmp(what, "experiments") || window < 1) {
    fprintf(stderr, "tailor report: say 'experiments' and a window of at least 1 day "
                    "(see --help)\n");
    return EXIT_BADINPUT;
  }
  tailor *t = cli_open(&o, CLI_READER);
  if (!t) return EXIT_FAIL;
  char *s = NULL;
  tailor_error err = {0};
  int rc = tailor_report_experiments(t, window, &s, &err);
  tailor_close(t);
  if (rc) {
    fprintf(stderr, "tailor report: %s\n", err.message);
    return EXIT_FAIL;
  }
  json_t *all = json_loads(s, 0, NULL);
  tailor_free(s);
  if (as_json) {
    char *pretty = json_dumps(all, JSON_INDENT(2));
    printf("%s\n", pretty);
    free(pretty);
  } else {
    size_t i, j;
    json_t *e, *v;
    if (!json_array_size(all)) printf("no experiment has exposures yet\n");
    json_array_foreach(all, i, e) {
      printf("%s (control: %s, outcomes within %d days)\n",
             json_string_value(json_object_get(e, "experiment")),
             json_string_value(json_object_get(e, "control")), window);
      /* Each figure beside an interval in its own units: conversion in
         percentage points and relative to control, revenue per visitor in
         the shop's currency and relative to control. */
      printf("  %-14s %9s %8s %12s  %-26s %-26s %7s  %-26s %-26s %7s\n", "variant", "exposed",
             "conv", "rev/visitor", "conv diff, pts [95% CI]", "conv uplift [95% CI]", "p",
             "rev/visitor diff [95% CI]", "rev uplift [95% CI]", "p");
      json_array_foreach(json_object_get(e, "variants"), j, v) {
        json_t *ci = json_object_get(v, "conversion_diff_ci95");
        json_t *cu = json_object_get(v, "conversion_uplift_ci95");
        json_t *rci = json_object_get(v, "revenue_diff_ci95");
        json_t *ru = json_object_get(v, "revenue_uplift_ci95");
        char cd[40] = "-", cup[40] = "-", rd[40] = "-", rup[40] = "-";
        if (ci)
          snprintf(cd, sizeof cd, "%+.2f [%+.2f, %+.2f]",
                   100 * json_number_value(json_object_get(v, "conversion_diff")),
                   100 * json_number_value(json_array_get(ci, 0)),
                   100 * json_number_value(json_array_get(ci, 1)));
        if (cu)
          snprintf(cup, sizeof cup, "%+.1f%% [%+.1f%%, %+.1f%%]",
                   100 * json_number_value(json_object_get(v, "conversion_uplift")),
                   100 * json_number_value(json_array_get(cu, 0)),
                   100 * json_number_value(json_array_get(cu, 1)));
        if (rci)
          snprintf(rd, sizeof rd, "%+.2f [%+.2f, %+.2f]",
                   json_number_value(json_object_get(v, "revenue_diff")),
                   json_number_value(json_array_get(rci, 0)),
                   json_number_value(json_array_get(rci, 1)));
        if (ru)
          snprintf(rup, sizeof rup, "%+.1f%% [%+.1f%%, %+.1f%%]",
                   100 * json_number_value(json_object_get(v, "revenue_uplift")),
                   100 * json_number_value(json_array_get(ru, 0)),
                   100 * json_number_value(json_array_get(ru, 1)));
        /* Revenue the same for every visitor of both arms has a difference
           but no interval (experiment.c). */
        if (!rci && json_object_get(v, "revenue_diff"))
          snprintf(rd, sizeof rd, "%+.2f",
                   json_number_value(json_object_get(v, "revenue_diff")));
        printf("  %-14s %9lld %7.2f%% %12.2f  %-26s %-26s", json_string_value(json_object_get(v, "variant")),
               (long long)json_integer_value(json_object_get(v, "exposures")),
               100 * json_number_value(json_object_get(v, "conversion")),
               json_number_value(json_object_get(v, "revenue_per_visitor")), cd, cup);
        if (ci) printf(" %7.3f", json_number_value(json_object_get(v, "conversion_p_value")));
        else printf(" %7s", "-");
        printf("  %-26s %-26s", rd, rup);
        if (rci) printf(" %7.3f", json_number_value(json_object_get(v, "revenue_p_value")));
        else printf(" %7s", "-");
        printf("\n");
      }
    }
  }
  json_decref(all);
  return EXIT_OK;
}

static const char checkpoint_help[] =
    "usage: tailor checkpoint [OPTIONS]\n\n"
    "Write the checkpoint of the indexes now, so the next start replays only\n"
    "the events after it (it is also written whenever an engine closes).\n\n";

int cmd_checkpoint(int argc, char **argv) {
  cli_opts o = {0};
  if (cli_parse_args(argc, argv, &o, checkpoint_help, NULL, 0) < 0) return EXIT_OK;
  tailor *t = cli_open(&o, "{\"strategies\": \"\"}");
  if (!t) return EXIT_FAIL;
  tailor_error err = {0};
  int rc = tailor_checkpoint(t, &err);
  if (rc) fprintf(stderr, "tailor checkpoint: %s\n", err.message);
  else printf("checkpoint written\n");
  tailor_close(t);
  return rc ? EXIT_FAIL : EXIT_OK;
}

static void print_key(void *ud, const char *key, const char *type,
                      const char *def, const char *doc) {
  if (ud)
    printf("| `%s` | %s | `%s` | %s |\n", key, type, def, doc);
  else
    printf("%-28s %-5s %-12s %s\n", key, type, def, doc);
}

static const char config_markdown_head[] =
    "# Configuration\n\n"
    "The engine takes a JSON object; nested objects spell dotted keys, so\n"
    "`{\"lua\": {\"instruction_budget\": 1000000}}` sets `lua.instruction_budget`.\n"
    "An unknown key or a wrong type is an error that names the key. On the command\n"
    "line, `--config FILE` reads the object from a file and `--db` / `--strategies`\n"
    "override those two keys. This page is printed by `tailor config --markdown`\n"
    "from the one table of keys in the code (`CONFIG_MAP` in host/engine/config.h;\n"
    "the numbers are rows of `DEFAULTS_MAP` in host/core/defaults.h, which\n"
    "`tailor config --defaults` lists with the server's keys and the fixed limits).\n\n"
    "| key | type | default | meaning |\n|---|---|---|---|\n";

/* `--defaults`: every row of DEFAULTS_MAP, "-" for a limit without a key.
   tests/e2e/docs_defaults_test.py reads this to check the docs. */
static void print_defaults(void) {
  printf("%-28s %10s  %-30s %-12s %s\n", "name", "value", "key", "unit", "meaning");
  for (size_t i = 0; i < DEF_COUNT; i++) {
    const def_row *d = &def_rows[i];
    printf("%-28s %10ld  %-30s %-12s %s\n", d->name, d->value, *d->key ? d->key : "-",
           d->unit, d->doc);
  }
}

int cmd_config(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  int markdown = !strcmp(mode, "--markdown"), defaults = !strcmp(mode, "--defaults");
  int help = !strcmp(mode, "-h") || !strcmp(mode, "--help");
  if (!help && (argc > 2 || (*mode && !markdown && !defaults))) {
    fprintf(stderr, "tailor config: unexpected argument '%s' (see --help)\n",
            argc > 2 && (markdown || defaults) ? argv[2] : mode);
    return EXIT_BADINPUT;
  }
  if (help) {
    printf("usage: tailor config [--markdown | --defaults]\n\nList every "
           "configuration key of the engine with its type, default and\n"
           "meaning; --markdown prints docs/configuration.md; --defaults lists\n"
           "every named number (core/defaults.h): the engine's and the server's\n"
           "numeric keys and the fixed limits, with their units.\n");
    return EXIT_OK;
  }
  if (defaults) {
    print_defaults();
    return EXIT_OK;
  }
  if (markdown)
    fputs(config_markdown_head, stdout);
  else
    printf("%-28s %-5s %-12s %s\n", "key", "type", "default", "meaning");
  config_each(print_key, markdown ? (void *)1 : NULL);
  return EXIT_OK;
}
