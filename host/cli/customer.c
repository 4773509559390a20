/*
** customer.c: a person's rights over their data, from the command line:
** `tailor export-customer ID` prints all that the shop holds on them
** (access), `tailor erase ID` erases it from the store, the indexes and the
** checkpoint (erasure).  The server offers the same to admin tokens.
*/
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"

static const char export_help[] =
    "usage: tailor export-customer [OPTIONS] CUSTOMER_ID\n\n"
    "Print everything held on one customer as JSON: the profile with email and\n"
    "phone, linked anonymous ids, every event of theirs as stored, scheduled\n"
    "and sent messages, experiment exposures, and the index's figures.\n"
    "What `tailor erase` removes is exactly what this lists.\n\n";

int cmd_export_customer(int argc, char **argv) {
  cli_opts o = {0};
  const char *id[1];
  int n = cli_parse_args(argc, argv, &o, export_help, id, 1);
  if (n < 0) return EXIT_OK;
  if (n != 1) {
    fprintf(stderr, "tailor export-customer: which customer? (see --help)\n");
    return EXIT_BADINPUT;
  }
  tailor *t = cli_open(&o, CLI_READER);
  if (!t) return EXIT_FAIL;
  char *s = NULL;
  tailor_error err = {0};
  int rc = tailor_export_customer(t, id[0], &s, &err);
  if (rc == TAILOR_OK) cli_print_json(s);
  else fprintf(stderr, "tailor export-customer: %s\n", err.message);
  tailor_free(s);
  tailor_close(t);
  return rc ? EXIT_FAIL : EXIT_OK;
}

static const char erase_help[] =
    "usage: tailor erase [OPTIONS] CUSTOMER_ID\n\n"
    "Erase a customer: their events (and those of their anonymous ids and\n"
    "sessions), profile, identities, messages and exposures from the store,\n"
    "securely, with the WAL truncated; their profile and session ids from the\n"
    "indexes; and the checkpoint written again.  Anonymous aggregates they\n"
    "contributed to (co-occurrence counts, bestsellers) stay.\n\n";

int cmd_erase(int argc, char **argv) {
  cli_opts o = {0};
  const char *id[1];
  int n = cli_parse_args(argc, argv, &o, erase_help, id, 1);
  if (n < 0) return EXIT_OK;
  if (n != 1) {
    fprintf(stderr, "tailor erase: which customer? (see --help)\n");
    return EXIT_BADINPUT;
  }
  tailor *t = cli_open(&o, "{\"strategies\": \"\"}");
  if (!t) return EXIT_FAIL;
  int64_t erased = 0;
  tailor_error err = {0};
  int rc = tailor_forget(t, id[0], &erased, &err);
  if (rc == TAILOR_OK)
    printf("erased %s: %lld events\n", id[0], (long long)erased);
  else
    fprintf(stderr, "tailor erase: %s\n", err.message);
  tailor_close(t);
  return rc ? EXIT_FAIL : EXIT_OK;
}
