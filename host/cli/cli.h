/*
** cli.h: what the `tailor` subcommands share: options common to all of
** them, opening an engine from them, exit codes.
*/
#ifndef TAILOR_CLI_H
#define TAILOR_CLI_H

#include <stdio.h>

#include "tailor.h"

/* Exit codes of every command. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_BADINPUT = 2 };

typedef struct cli_opts {
  const char *config;     /* --config FILE (JSON) */
  const char *db;         /* --db FILE */
  const char *strategies; /* --strategies DIR */
  int quiet;              /* --quiet: no progress */
  int create;             /* the command may create the store (ingest);
                             the others refuse a store that is not there */
} cli_opts;

/*
** Take a common option at argv[*i] (advancing *i past its value) and return
** 1, or return 0 when argv[*i] is not a common option.  Exits with
** EXIT_BADINPUT on a missing value.
*/
int cli_common_opt(cli_opts *o, int argc, char **argv, int *i);

/*
** Parse a command's arguments: common options into `o`, up to `max`
** positional ones into `args`; prints `help` and returns -1 for -h/--help,
** exits with EXIT_BADINPUT on an unknown option.  Returns the positionals.
*/
int cli_parse_args(int argc, char **argv, cli_opts *o, const char *help, const char **args,
                   int max);

/*
** A whole number option: `text` read in full into *out when it is from
** `lo` to `hi`; else prints "tailor CMD: OPT takes a whole number from LO
** to HI" and returns -1 (the caller exits EXIT_BADINPUT).
*/
int cli_number(const char *cmd, const char *opt, const char *text, long lo, long hi, long *out);

/*
** The engine's configuration from the options, as cli_open reads it: the
** config file (its "server" section aside) with --db and --strategies over
** it, parsed by config_parse into `c` (engine/config.h; config_free it).
** Exits EXIT_BADINPUT, saying why, when the file cannot be read or the
** configuration is not valid; returns another error after printing it.
*/
struct config;
int cli_config(const cli_opts *o, struct config *c);

/* Open an engine from the options; prints the error and returns NULL (the
   command exits EXIT_FAIL), or exits EXIT_BADINPUT itself when the input is
   at fault: a config file that is not valid JSON or not a valid config, or,
   without o->create, a store file that does not exist (a mistyped --db
   would otherwise be a new, empty store: an erasure on nothing, reported
   done). */
tailor *cli_open(const cli_opts *o, const char *extra_json);

/* extra_json of a command that only reads: no strategies, and beside a
   `tailor serve` that writes the store (store.lock false: no lock taken,
   no checkpoint saved). */
#define CLI_READER "{\"strategies\": \"\", \"store\": {\"lock\": false}}"

/* Print JSON text `s` indented, on one line of its own (as it is when it
   does not parse). */
void cli_print_json(const char *s);

/* Whether progress lines should be drawn (stderr is a terminal). */
int cli_progress_on(const cli_opts *o);

/* Help for the options every command takes. */
#define CLI_COMMON_HELP                                                     \
  "  --config FILE      JSON configuration (see docs/configuration.md)\n"   \
  "  --db FILE          the store (default: tailor.db)\n"                   \
  "  --strategies DIR   strategy folder (default: strategies)\n"            \
  "  --quiet            no progress output\n"                               \
  "  -h, --help         this help\n"

int cmd_ingest(int argc, char **argv);
int cmd_decide(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_audiences(int argc, char **argv);
int cmd_outbox(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_erase(int argc, char **argv);
int cmd_export_customer(int argc, char **argv);

#endif /* TAILOR_CLI_H */
