/*
** fixture.c: a plugin that misbehaves on purpose, one way per build (the
** FIXTURE_* definitions in tests/plugins/CMakeLists.txt), so the tests can
** check that each is refused at start with a message and never crashes the
** host.  Without a definition it is a well-behaved plugin with a channel.
*/
#include <string.h>

#include "tailor_plugin.h"

#ifndef FIXTURE_ABI
#define FIXTURE_ABI TAILOR_PLUGIN_API_VERSION
#endif
#ifndef FIXTURE_NAME
#define FIXTURE_NAME "fixture"
#endif

static const tailor_plugin_api *api;

__attribute__((unused)) static int send_nothing(void *ud, const tailor_delivery *d, char *err, size_t n) {
  return TAILOR_SEND_OK;
}

static int start(tailor_plugin *p, const char *config_json, void **state, char *err,
                 size_t errlen) {
#ifdef FIXTURE_FAIL_START
  strncpy(err, "the fixture was told to fail", errlen - 1);
  return -1;
#else
  /* A channel named in the config ({"channel": "x"}), "fixture" by default. */
  const char *at = strstr(config_json, "\"channel\":\"");
  char name[64] = "fixture";
  if (at) {
    at += strlen("\"channel\":\"");
    size_t n = strcspn(at, "\"");
    if (n < sizeof name) memcpy(name, at, n), name[n] = '\0';
  }
  if (api->channel(p, name, 0, send_nothing, NULL)) {
    strncpy(err, "channel refused", errlen - 1);
    return -1;
  }
  /* Registration is closed outside start: a late call is refused. */
  return 0;
#endif
}

static const tailor_plugin_desc desc = {
    FIXTURE_ABI, sizeof(tailor_plugin_desc), FIXTURE_NAME, "0.0.1", "a test fixture",
    start, NULL,
};

#ifndef FIXTURE_NO_INIT
TAILOR_PLUGIN_EXPORT const tailor_plugin_desc *tailor_plugin_init(
    int host_api_version, const tailor_plugin_api *host) {
#ifdef FIXTURE_REFUSE
  return NULL;
#endif
  api = host;
  return &desc;
}
#else
/* Exports something, just not the init symbol (the descriptor it would
   have returned is kept for the build only). */
TAILOR_PLUGIN_EXPORT const tailor_plugin_desc *fixture_desc(void);
TAILOR_PLUGIN_EXPORT const tailor_plugin_desc *fixture_desc(void) { return &desc; }
TAILOR_PLUGIN_EXPORT int tailor_plugin_iniit(void);
TAILOR_PLUGIN_EXPORT int tailor_plugin_iniit(void) { return 0; }
#endif
