/*
** audiences.c: `tailor audiences export` and `sync`: the members of a
** recency audience, for an ad platform's customer list.  The audiences
** partition the recent visitors (tailor_audience_members).  Without
** --format, ids (and hashed emails of customers who consented to email) as
** NDJSON or CSV (tailor_audience_export, which the console's download
** shares); with --format google or meta, the platform's own CSV of
** hashed identifiers (tailor_audience_upload, engine/adlist.c says how they
** are normalized and who is listed).  `sync` pushes what changed since the
** last sync through a delivery channel (tailor_audience_sync).
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* The export's text goes to stdout as the library writes it. */
static int to_stdout(void *ud, const char *text, size_t len) {
  (void)ud;
  return fwrite(text, 1, len, stdout) != len;
}

/* The platforms' CSV: a header of their documented column names, then one
   row per member: email and phone hashes (empty when not given) and the
   bid multiplier unless --no-bid. */
typedef struct upload_run {
  int bid;
} upload_run;

static void print_upload(void *ud, const char *email, const char *phone, double bid) {
  upload_run *r = ud;
  printf("%s,%s", email ? email : "", phone ? phone : "");
  if (r->bid) printf(",%g", bid);
  putchar('\n');
}

static const char help[] =
    "usage: tailor audiences export [OPTIONS] AUDIENCE --days N\n"
    "                               [--hashed-emails] [--csv]\n"
    "                               [--format google|meta [--phone-country CC]\n"
    "                                [--no-bid]]\n"
    "       tailor audiences sync [OPTIONS] AUDIENCE --days N --format google|meta\n"
    "                               [--phone-country CC] [--channel NAME]\n\n"
    "The members of one recency audience, one a line as NDJSON ({customer,\n"
    "anon, email_sha256}) or CSV (customer,anon,email_sha256).  Nobody is in\n"
    "two audiences; with index.audience_days \"2,7,14\" they are:\n"
    "  buyers --days 14           ordered within 14 days\n"
    "  cart_abandoners --days 2   else: seen within 2 days, items in the cart\n"
    "  visitors --days 2, 7, 14   everyone else, last seen within 2 days,\n"
    "                             2 to 7, 7 to 14\n"
    "--hashed-emails adds the SHA-256 of the normalized email of customers who\n"
    "consented to email; addresses themselves are never exported.\n\n"
    "--format google writes Google Ads Customer Match's CSV (Email,Phone),\n"
    "--format meta Meta Custom Audiences' (email,phone): SHA-256 of the\n"
    "normalized email of customers who consented to email and of the E.164\n"
    "phone of those who consented to SMS, nobody who declined marketing, no\n"
    "anonymous visitors; a last column, Bid Multiplier (bid_multiplier), is\n"
    "the strategy's bid for the audience (--no-bid leaves it out).\n"
    "--phone-country CC: the calling code (44, not GB) for phones stored\n"
    "without one (else those are left out).\n\n"
    "sync pushes the members who joined and left since the last sync of the\n"
    "same audience and format as one outbox row to the channel (default\n"
    "webhook: the webhook plugin, configured with --config), delivered at\n"
    "once when the plugin is loaded, else by tailor serve.\n\n";

static int sync_audience(const cli_opts *o, const char *audience, int days,
                         const char *format, const char *country, const char *channel) {
  tailor *t = cli_open(o, NULL);
  if (!t) return EXIT_FAIL;
  size_t added = 0, removed = 0;
  tailor_error err = {0};
  int rc = tailor_audience_sync(t, audience, days, format, country, channel, &added,
                                &removed, &err);
  int sent = 0;
  if (!rc && (added || removed) && tailor_delivery_channels(t))
    rc = tailor_deliver_due(t, 100, &sent, &err);
  tailor_close(t);
  if (rc) {
    fprintf(stderr, "tailor audiences: %s\n", err.message);
    return rc == TAILOR_EINVAL ? EXIT_BADINPUT : EXIT_FAIL;
  }
  fprintf(stderr, "%zu added, %zu removed%s\n", added, removed,
          !added && !removed ? ": nothing to push"
          : sent ? ", pushed" : ", queued for delivery");
  return EXIT_OK;
}

int cmd_audiences(int argc, char **argv) {
  cli_opts o = {0};
  int days = 0;
  int flags = 0;
  upload_run up = {1};
  int export = 0, sync = 0;
  const char *audience = NULL, *format = NULL, *country = NULL, *channel = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      fputs(help, stdout);
      fputs(CLI_COMMON_HELP, stdout);
      return EXIT_OK;
    }
    if (cli_common_opt(&o, argc, argv, &i)) continue;
    if (!export && !sync && !strcmp(argv[i], "export")) export = 1;
    else if (!export && !sync && !strcmp(argv[i], "sync")) sync = 1;
    else if (!strcmp(argv[i], "--days") && i + 1 < argc) {
      long v;
      if (cli_number("audiences", "--days", argv[++i], 1, 36500, &v)) return EXIT_BADINPUT;
      days = (int)v;
    }
    else if (!strcmp(argv[i], "--hashed-emails")) flags |= TAILOR_EXPORT_HASHED_EMAILS;
    else if (!strcmp(argv[i], "--csv")) flags |= TAILOR_EXPORT_CSV;
    else if (!strcmp(argv[i], "--format") && i + 1 < argc) format = argv[++i];
    else if (!strcmp(argv[i], "--phone-country") && i + 1 < argc) country = argv[++i];
    else if (!strcmp(argv[i], "--channel") && i + 1 < argc) channel = argv[++i];
    else if (!strcmp(argv[i], "--no-bid")) up.bid = 0;
    else if ((export || sync) && !audience && argv[i][0] != '-') audience = argv[i];
    else {
      fprintf(stderr, "tailor audiences: unexpected argument '%s' (see --help)\n", argv[i]);
      return EXIT_BADINPUT;
    }
  }
  if (!(export || sync) || !audience || days < 1) {
    fprintf(stderr, "tailor audiences: say 'export AUDIENCE --days N' or 'sync AUDIENCE "
                    "--days N --format F' (buyers, cart_abandoners or visitors; see --help)\n");
    return EXIT_BADINPUT;
  }
  int google = format && !strcmp(format, "google");
  if (format && !google && strcmp(format, "meta")) {
    fprintf(stderr, "tailor audiences: --format is google or meta, not '%s'\n", format);
    return EXIT_BADINPUT;
  }
  if ((sync && !format) || (format && flags)) {
    fprintf(stderr, "tailor audiences: %s\n",
            sync ? "sync needs --format google or meta"
                 : "--format writes the platform's CSV: no --csv or --hashed-emails");
    return EXIT_BADINPUT;
  }
  if (sync) return sync_audience(&o, audience, days, format, country, channel);
  /* The platform formats ask the strategy for the bid; ids need no strategy. */
  tailor *t = cli_open(&o, format ? NULL : "{\"strategies\": \"\"}");
  if (!t) return EXIT_FAIL;
  size_t n = 0, with_email = 0;
  tailor_error err = {0};
  int rc;
  if (format) {
    printf(google ? "Email,Phone%s\n" : "email,phone%s\n",
           !up.bid ? "" : google ? ",Bid Multiplier" : ",bid_multiplier");
    rc = tailor_audience_upload(t, audience, days, format, country, print_upload, &up, &n,
                                &err);
  } else {
    rc = tailor_audience_export(t, audience, days, flags, to_stdout, NULL, &n, &with_email,
                                &err);
  }
  tailor_close(t);
  if (rc) {
    fprintf(stderr, "tailor audiences: %s\n", err.message);
    return rc == TAILOR_EINVAL ? EXIT_BADINPUT : EXIT_FAIL;
  }
  /* The list goes to a file a cron job uploads: a full disk must not pass
     for a short list (stdout is buffered, so errors show at the flush). */
  if (fflush(stdout) || ferror(stdout)) {
    fprintf(stderr, "tailor audiences: cannot write the list: %s\n", strerror(errno));
    return EXIT_FAIL;
  }
  if (format) fprintf(stderr, "%zu members with a consented email or phone\n", n);
  else fprintf(stderr, "%zu members, %zu with a hashed email\n", n, with_email);
  return EXIT_OK;
}
