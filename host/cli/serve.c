/*
** serve.c: `tailor serve`: read the config file, take its "server" section
** for the server (the engine refuses keys it does not know), open the
** engine with the rest, and serve until SIGTERM (host/server).
*/
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "server/server.h"

static void print_key(void *ud, const char *key, long def, const char *doc) {
  printf("  %-20s %-9ld %s\n", key, def, doc);
}

static void help(void) {
  fputs("usage: tailor serve [OPTIONS]\n\n"
        "Serve storefronts: NDJSON (one JSON request a line) and HTTP/1.1 on\n"
        "one TCP port, and a Unix socket when configured.  The protocol is in\n"
        "docs/server.md.  SIGTERM stops (in-flight requests finish), SIGHUP\n"
        "reloads the config's \"server\" section.\n\n"
        "  --listen HOST:PORT  TCP address (default " SRV_DEFAULT_LISTEN
        "; port 0 picks a\n"
        "                      free one, printed at start; \"\" for none)\n"
        "  --unix PATH         also listen on a Unix socket\n"
        "  --insecure          without tokens, let every client act as admin;\n"
        "                      loopback addresses only\n",
        stdout);
  fputs(CLI_COMMON_HELP, stdout);
  printf("\nThe \"server\" section of the config file:\n"
         "  %-20s %-9s %s\n"
         "  %-20s %-9s %s\n"
         "  %-20s %-9s %s\n"
         "  %-20s %-9s %s\n"
         "  %-20s %-9s %s\n"
         "  %-20s %-9s %s\n",
         "listen", SRV_DEFAULT_LISTEN, "TCP address, host:port or [v6]:port; port 0 picks a "
         "free one; \"\" for none", "unix", "none", "Unix socket path", "tokens",
         "[]", "[{\"token\": \"...\", \"role\": \"storefront|admin|metrics\"}]",
         "cors_origins", "[]", "origins allowed to call from a browser; \"*\" any",
         "static_dir", "none", "folder whose files GET serves outside /v1/ (a demo shop)",
         "customer_secret", "none", "secret (16 bytes or more) that signs customer tokens: "
         "a storefront request names a signed-in customer only with one");
  srv_conf_each(print_key, NULL);
}

int cmd_serve(int argc, char **argv) {
  cli_opts o = {0};
  const char *listen = NULL, *unix_path = NULL;
  int insecure = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      help();
      return EXIT_OK;
    }
    if (cli_common_opt(&o, argc, argv, &i)) continue;
    if (!strcmp(a, "--insecure")) {
      insecure = 1;
    } else if ((!strcmp(a, "--listen") || !strcmp(a, "--unix")) && i + 1 < argc) {
      *(a[2] == 'l' ? &listen : &unix_path) = argv[++i];
    } else {
      fprintf(stderr, "tailor serve: unexpected argument '%s' (see --help)\n", a);
      return EXIT_BADINPUT;
    }
  }
  srv_conf *conf = calloc(1, sizeof *conf);
  json_t *engine = NULL;
  tailor_error err = {0};
  if (!conf) return EXIT_FAIL;
  if (srv_conf_load(o.config, conf, &engine, &err) ||
      srv_conf_override(conf, listen, unix_path, &err) ||
      srv_conf_check(conf, insecure, &err)) {
    fprintf(stderr, "tailor serve: %s\n", err.message);
    srv_conf_free(conf);
    free(conf);
    json_decref(engine);
    return EXIT_BADINPUT;
  }
  json_t *ecfg = json_deep_copy(engine);
  /* A server refits beside its writer unless the config says otherwise
     (index.background_refits): clients wait for no fit. */
  json_t *ix = json_object_get(ecfg, "index");
  if (!ix) json_object_set_new(ecfg, "index", ix = json_object());
  if (json_is_object(ix) && !json_object_get(ix, "background_refits"))
    json_object_set_new(ix, "background_refits", json_true());
  if (o.db) json_object_set_new(ecfg, "db", json_string(o.db));
  if (o.strategies) json_object_set_new(ecfg, "strategies", json_string(o.strategies));
  char *text = json_dumps(ecfg, JSON_COMPACT);
  json_decref(ecfg);
  tailor_error terr = {0};
  tailor *t = text ? tailor_open(text, &terr) : NULL;
  free(text);
  if (!t) {
    fprintf(stderr, "tailor serve: %s\n", terr.message[0] ? terr.message : "out of memory");
    srv_conf_free(conf);
    free(conf);
    json_decref(engine);
    return terr.code == TAILOR_ECONFIG ? EXIT_BADINPUT : EXIT_FAIL; /* the config's fault */
  }
  srv_opts so = {o.config, listen, unix_path, engine, insecure};
  int rc = srv_run(t, conf, &so);
  /* Closing the engine writes the index checkpoint; every acknowledged
     event was already durable. */
  srv_close_engine(t, rc == 0);
  json_decref(engine);
  return rc ? EXIT_FAIL : EXIT_OK;
}
