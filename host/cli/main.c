/*
** main.c: the `tailor` command: dispatch to subcommands, and the options
** they share.
*/
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/util.h"
#include "engine/config.h"
#include "store/store.h"

static const struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *what;
} commands[] = {
    {"ingest", cmd_ingest, "load NDJSON events into the store"},
    {"decide", cmd_decide, "make one decision from a JSON request on stdin"},
    {"check", cmd_check, "compile every strategy and report errors"},
    {"stats", cmd_stats, "counts of events by type, items, customers"},
    {"checkpoint", cmd_checkpoint, "write the checkpoint of the indexes now"},
    {"report", cmd_report, "experiment results: conversion, revenue, uplift, p-values"},
    {"audiences", cmd_audiences, "export a recency audience for an ad platform"},
    {"export-customer", cmd_export_customer, "all that is held on one customer, as JSON (right of access)"},
    {"erase", cmd_erase, "erase a customer and every copy of their data (right to erasure)"},
    {"outbox", cmd_outbox, "see and act on scheduled emails and webhooks"},
    {"eval", cmd_eval, "score next-item recommendations on recorded sessions"},
    {"tune", cmd_tune, "choose a shop's kernel parameters and train its re-ranker"},
    {"config", cmd_config, "list the configuration keys and defaults"},
    {"serve", cmd_serve, "serve storefronts over NDJSON and HTTP (docs/server.md)"},
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

static void usage(FILE *f) {
  fprintf(f,
          "tailor %s: a personalization engine for online shops\n\n"
          "usage: tailor COMMAND [OPTIONS]\n\ncommands:\n",
          tailor_version());
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].what);
  fprintf(f, "\n'tailor COMMAND --help' tells more about one; 'tailor --version' prints "
             "the version.\n"
             "exit codes: 0 ok, 1 failure, 2 bad input\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EXIT_BADINPUT;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
      !strcmp(argv[1], "help")) {
    /* `tailor help COMMAND` is `tailor COMMAND --help`. */
    if (!strcmp(argv[1], "help") && argc > 2) {
      for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(argv[2], commands[i].name))
          return commands[i].run(2, (char *[]){argv[2], "--help", NULL});
      fprintf(stderr, "tailor: unknown command '%s'\n\n", argv[2]);
      usage(stderr);
      return EXIT_BADINPUT;
    }
    usage(stdout);
    return EXIT_OK;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
    printf("tailor %s\n", tailor_version());
    return EXIT_OK;
  }
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (!strcmp(argv[1], commands[i].name))
      return commands[i].run(argc - 1, argv + 1);
  fprintf(stderr, "tailor: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return EXIT_BADINPUT;
}

int cli_common_opt(cli_opts *o, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  const char **slot = !strcmp(a, "--config")       ? &o->config
                      : !strcmp(a, "--db")         ? &o->db
                      : !strcmp(a, "--strategies") ? &o->strategies
                                                   : NULL;
  if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
    o->quiet = 1;
    return 1;
  }
  if (!slot) return 0;
  if (*i + 1 >= argc) {
    fprintf(stderr, "tailor: %s needs a value\n", a);
    exit(EXIT_BADINPUT);
  }
  *slot = argv[++*i];
  return 1;
}

/* The engine's configuration as JSON text (malloc'd; NULL when out of
   memory): the config file without its "server" section, `extra_json` over
   it, then --db and --strategies.  Exits EXIT_BADINPUT when the file cannot
   be read or is not JSON. */
static char *config_text(const cli_opts *o, const char *extra_json) {
  json_t *cfg = NULL;
  if (o->config) {
    tailor_error jerr = {0};
    if (!(cfg = util_json_file(o->config, &jerr))) {
      fprintf(stderr, "tailor: %s\n", jerr.message);
      exit(EXIT_BADINPUT); /* bad input, as a bad option is */
    }
  } else {
    cfg = json_object();
  }
  /* One file serves `tailor serve` and the other commands: the server's
     section is the server's (host/server/conf.c), not the engine's. */
  json_object_del(cfg, "server");
  if (extra_json) {
    json_t *extra = json_loads(extra_json, 0, NULL);
    json_object_update_recursive(cfg, extra); /* a user's "store" keeps its other keys */
    json_decref(extra);
  }
  if (o->db) json_object_set_new(cfg, "db", json_string(o->db));
  if (o->strategies)
    json_object_set_new(cfg, "strategies", json_string(o->strategies));
  char *text = json_dumps(cfg, JSON_COMPACT);
  json_decref(cfg);
  return text;
}

int cli_config(const cli_opts *o, struct config *c) {
  char *text = config_text(o, NULL);
  tailor_error err = {.message = "out of memory"};
  int rc = text ? config_parse(c, text, &err) : TAILOR_ENOMEM;
  free(text);
  if (rc) fprintf(stderr, "tailor: %s\n", err.message);
  if (rc == TAILOR_ECONFIG) exit(EXIT_BADINPUT);
  return rc;
}

tailor *cli_open(const cli_opts *o, const char *extra_json) {
  char *text = config_text(o, extra_json);
  /* The store the config names (its default included), which only a
     command that creates one may find missing. */
  config c;
  if (!o->create && text && config_parse(&c, text, NULL) == TAILOR_OK) {
    int missing = !store_exists(c.db);
    if (missing)
      fprintf(stderr,
              "tailor: no store at %s (check --db or the config's \"db\"; `tailor ingest` "
              "creates one)\n",
              c.db);
    config_free(&c);
    if (missing) exit(EXIT_BADINPUT);
  }
  tailor_error err = {.message = "out of memory"};
  tailor *t = text ? tailor_open(text, &err) : NULL;
  free(text);
  if (!t) fprintf(stderr, "tailor: %s\n", err.message);
  if (!t && err.code == TAILOR_ECONFIG) exit(EXIT_BADINPUT); /* the config's fault */
  return t;
}

void cli_print_json(const char *s) {
  json_t *j = json_loads(s, 0, NULL);
  char *pretty = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
  printf("%s\n", pretty ? pretty : s);
  free(pretty);
  json_decref(j);
}

int cli_number(const char *cmd, const char *opt, const char *text, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (!*text || *end || errno || v < lo || v > hi) {
    fprintf(stderr, "tailor %s: %s takes a whole number from %ld to %ld, not '%s'\n", cmd, opt,
            lo, hi, text);
    return -1;
  }
  *out = v;
  return 0;
}

int cli_progress_on(const cli_opts *o) { return !o->quiet && isatty(2); }
