/*
** test_plugins.c: loading plugins.  The example plugin's Lua functions
** from a strategy and its event subscription; and every way a plugin can be
** wrong refused at start with a message that says which entry and why: a
** plugin built for another API version (newer or older), a file that does
** not load, a shared object without the init symbol, an init or a start
** that fails, a bad name, a channel two plugins claim, a bad config entry.
** TAILOR_PLUGINS is the folder of the built plugins, TAILOR_FIXTURES that of
** the misbehaving builds of fixture.c.
*/
#include <stdlib.h>
#include <sys/stat.h>

#include "../c/check.h"
#include "tailor.h"
#include "tailor_plugin.h"
#include "engine/plugin.h"

static char tmp[512], plugins[512], fixtures[512];

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

/* Open an engine on an in-memory store with `plugins_json` as "plugins"
   and `extra` more keys ("" for none).  NULL on failure, with `err`. */
static tailor *open_with(const char *strategies, const char *plugins_json, const char *extra,
                         tailor_error *err) {
  char cfg[4096];
  snprintf(cfg, sizeof cfg, "{\"db\":\":memory:\",\"strategies\":\"%s\",\"plugins\":%s%s}",
           strategies, plugins_json, extra);
  memset(err, 0, sizeof *err);
  tailor *t = tailor_open(cfg, err);
  if (t) tailor_set_logger(t, NULL, NULL);
  return t;
}

/* The message of a start that must fail. */
static const char *refused(const char *plugins_json, const char *extra) {
  static tailor_error err;
  tailor *t = open_with("", plugins_json, extra, &err);
  if (t) {
    tailor_close(t);
    return "(it started)";
  }
  CHECK_INT(err.code, TAILOR_ECONFIG);
  return err.message;
}

/* The answer to visitor v1's recommend request on page type `page` ("":
   none); the caller frees it. */
static char *recommend_on(tailor *t, const char *page) {
  char req[200];
  char *resp = NULL;
  tailor_error err = {0};
  snprintf(req, sizeof req, "{\"kind\":\"recommend\",\"anon\":\"v1\",\"k\":5%s%s%s}",
           *page ? ",\"page\":{\"type\":\"" : "", page, *page ? "\"}" : "");
  CHECK_INT(tailor_decide(t, req, strlen(req), &resp, NULL, &err), TAILOR_OK);
  return resp;
}

static void test_example_plugin(void) {
  char dir[600], path[700], entry[1200];
  snprintf(dir, sizeof dir, "%s/pluginsXXXXXX", tmp);
  if (!mkdtemp(dir)) abort();
  snprintf(path, sizeof path, "%s/recommend.lua", dir);
  write_file(path,
             "return { recommend = function(ctx)\n"
             "  local ex = tailor.plugins.example\n"
             "  if ctx.page.type == 'heavy' then return ex.blend({}, {}, 2) end\n"
             "  if ctx.page.type == 'walk' then -- the walk of big arguments counts\n"
             "    local big = {}\n"
             "    for i = 1, 100000 do big[i] = { i } end\n"
             "    for _ = 1, 100 do ex.blend({}, { { id = 'hat', score = 1, more = big } }, 0.5) end\n"
             "    return {}\n"
             "  end\n"
             "  if ctx.page.type == 'kernels' then -- lists as the kernels return them\n"
             "    local t = tailor.trending(nil, nil, { k = 5, in_stock = false })\n"
             "    return ex.blend(t, tailor.trending(nil, nil, { k = 5, in_stock = false }), 0.5)\n"
             "  end\n"
             "  local rows = ex.blend({ { id = 'hat', score = 1 }, { id = 'sock', score = 0.2 } },\n"
             "                        { { id = 'sock', score = 1 } }, 0.25)\n"
             "  rows[1].explain = 'views: ' .. ex.seen('view') .. ', orders: ' .. ex.seen('purchase')\n"
             "  return rows\n"
             "end }\n");
  snprintf(entry, sizeof entry,
           "[{\"path\":\"%s/example.so\",\"config\":{\"types\":[\"view\",\"purchase\"]}}]",
           plugins);
  tailor_error err;
  tailor *t = open_with(dir, entry, "", &err);
  if (!t) fprintf(stderr, "open: %s\n", err.message);
  CHECK(t != NULL);
  if (!t) return;
  const char *events[] = {
      "{\"type\":\"item_upsert\",\"item\":{\"id\":\"hat\",\"name\":\"Hat\",\"price\":20}}",
      "{\"type\":\"item_upsert\",\"item\":{\"id\":\"sock\",\"name\":\"Sock\",\"price\":5}}",
      "{\"type\":\"view\",\"item\":\"hat\",\"anon\":\"v1\"}",
      "{\"type\":\"view\",\"item\":\"sock\",\"anon\":\"v1\"}",
  };
  for (size_t i = 0; i < sizeof events / sizeof *events; i++)
    CHECK_INT(tailor_ingest(t, events[i], strlen(events[i]), &err), TAILOR_OK);
  char *resp = recommend_on(t, "");
  /* sock: 0.25 * 0.2 + 0.75 * 1 = 0.8 before hat: 0.25 * 1. */
  CHECK_CONTAINS(resp, "\"items\":[{\"id\":\"sock\",\"score\":0.8");
  CHECK_CONTAINS(resp, "\"explain\":\"views: 2, orders: 0\"");
  CHECK(strstr(resp, "fallback") == NULL);
  tailor_free(resp);
  /* A kernel's list reaches the plugin's C code with its rows. */
  resp = recommend_on(t, "kernels");
  CHECK_CONTAINS(resp, "\"id\":\"hat\"");
  CHECK_CONTAINS(resp, "\"id\":\"sock\"");
  CHECK(strstr(resp, "fallback") == NULL);
  tailor_free(resp);
  /* The tables within a plugin's arguments are walked (made whole), and
     each entry walked counts against the instruction budget (5M): 100
     calls over 100,000 nested entries end in the budget's error. */
  resp = recommend_on(t, "walk");
  CHECK_CONTAINS(resp, "instruction budget exhausted");
  CHECK_CONTAINS(resp, "\"fallback\":true");
  tailor_free(resp);
  /* A plugin's error names the strategy's line and the function. */
  resp = recommend_on(t, "heavy");
  CHECK_CONTAINS(resp, "recommend.lua:3: bad argument #3 to 'blend' (weight must be between 0 and 1)");
  tailor_free(resp);
  tailor_close(t);

  /* Found by name in plugin_dir too. */
  char extra[700];
  snprintf(extra, sizeof extra, ",\"plugin_dir\":\"%s\"", plugins);
  t = open_with("", "[{\"name\":\"example\"}]", extra, &err);
  CHECK(t != NULL);
  tailor_close(t);
}

static void test_abi_versions(void) {
  char entry[800];
  snprintf(entry, sizeof entry, "[{\"path\":\"%s/fixture_future.so\"}]", fixtures);
  const char *msg = refused(entry, "");
  char want[200];
  CHECK_CONTAINS(msg, "plugins[0]: ");
  snprintf(want, sizeof want, "fixture_future.so was built for plugin API %d, but this tailor",
           TAILOR_PLUGIN_API_VERSION + 1);
  CHECK_CONTAINS(msg, want);
  snprintf(want, sizeof want, "provides plugin API %d", TAILOR_PLUGIN_API_VERSION);
  CHECK_CONTAINS(msg, want);
  CHECK_CONTAINS(msg, "rebuild the plugin");
  snprintf(entry, sizeof entry, "[{\"path\":\"%s/fixture_ancient.so\"}]", fixtures);
  CHECK_CONTAINS(refused(entry, ""), "was built for plugin API 0, older than the oldest");
  /* Built for API 1, before channel_render: it runs, its channel without
     a preview. */
  tailor_error err = {0};
  snprintf(entry, sizeof entry, "[{\"path\":\"%s/fixture_v1.so\"}]", fixtures);
  tailor *t = open_with("", entry, "", &err);
  CHECK(t != NULL);
  if (t) {
    const eng_channel *c = eng_channel_find(t, "fixture");
    CHECK(c != NULL && c->send != NULL && c->render == NULL);
    tailor_close(t);
  }
}

static void test_broken_plugins(void) {
  char entry[1600];
  snprintf(entry, sizeof entry, "[{\"path\":\"%s/fixture_noinit.so\"}]", fixtures);
  CHECK_CONTAINS(refused(entry, ""), "is not a tailor plugin: it exports no tailor_plugin_init");
  snprintf(entry, sizeof entry, "[{\"path\":\"%s/fixture_refuse.so\"}]", fixtures);
  char refusal[100];
  snprintf(refusal, sizeof refusal, "refused to initialize with plugin API %d",
           TAILOR_PLUGIN_API_VERSION);
  CHECK_CONTAINS(refused(entry, ""), refusal);
  snprintf(entry, sizeof entry, "[{\"path\":\"%s/fixture_fail.so\"}]", fixtures);
  CHECK_CONTAINS(refused(entry, ""), "failed to start: the fixture was told to fail");
  snprintf(entry, sizeof entry, "[{\"path\":\"%s/fixture_badname.so\"}]", fixtures);
  CHECK_CONTAINS(refused(entry, ""), "names itself 'Bad-Name'");
  snprintf(entry, sizeof entry, "[{\"path\":\"%s/no_such_plugin.so\"}]", fixtures);
  CHECK_CONTAINS(refused(entry, ""), "cannot load");
  /* A file that is not a shared object at all. */
  char junk[700];
  snprintf(junk, sizeof junk, "%s/junk.so", tmp);
  write_file(junk, "not an ELF file\n");
  snprintf(entry, sizeof entry, "[{\"path\":\"%s\"}]", junk);
  CHECK_CONTAINS(refused(entry, ""), "cannot load");
  /* The second plugin fails: the first is unloaded cleanly too. */
  snprintf(entry, sizeof entry,
           "[{\"path\":\"%s/fixture.so\"},{\"path\":\"%s/fixture_fail.so\"}]", fixtures,
           fixtures);
  CHECK_CONTAINS(refused(entry, ""), "plugins[1]: ");
}

static void test_channels(void) {
  char entry[1600];
  tailor_error err;
  snprintf(entry, sizeof entry,
           "[{\"path\":\"%s/fixture.so\",\"config\":{\"channel\":\"a\"}},"
           "{\"path\":\"%s/fixture.so\",\"config\":{\"channel\":\"b\"}}]",
           fixtures, fixtures);
  tailor *t = open_with("", entry, "", &err);
  CHECK(t != NULL);
  tailor_close(t);
  snprintf(entry, sizeof entry,
           "[{\"path\":\"%s/fixture.so\",\"config\":{\"channel\":\"a\"}},"
           "{\"path\":\"%s/fixture.so\",\"config\":{\"channel\":\"a\"}}]",
           fixtures, fixtures);
  CHECK_CONTAINS(refused(entry, ""), "plugins[1]: fixture");
  CHECK_CONTAINS(refused(entry, ""), "channel refused");
  /* The delivery plugins say what is wrong with their config. */
  snprintf(entry, sizeof entry, "[{\"path\":\"%s/smtp.so\",\"config\":{\"from\":\"x\"}}]",
           plugins);
  CHECK_CONTAINS(refused(entry, ""), "smtp");
  CHECK_CONTAINS(refused(entry, ""), "\"url\" must be smtp://");
  snprintf(entry, sizeof entry,
           "[{\"path\":\"%s/webhook.so\",\"config\":{\"url\":\"http://127.0.0.1:9/\","
           "\"secret\":\"short\"}}]",
           plugins);
  CHECK_CONTAINS(refused(entry, ""), "of at least 16 bytes");
  snprintf(entry, sizeof entry,
           "[{\"path\":\"%s/webhook.so\",\"config\":{\"url\":\"http://127.0.0.1:9/\","
           "\"secret\":\"0123456789abcdef\",\"retries\":3}}]",
           plugins);
  CHECK_CONTAINS(refused(entry, ""), "unknown config key 'retries'");
  /* A secret_env that names an unset variable says so. */
  unsetenv("TAILOR_TEST_UNSET_SECRET");
  snprintf(entry, sizeof entry,
           "[{\"path\":\"%s/webhook.so\",\"config\":{\"url\":\"http://127.0.0.1:9/\","
           "\"secret_env\":\"TAILOR_TEST_UNSET_SECRET\"}}]",
           plugins);
  CHECK_CONTAINS(refused(entry, ""), "the variable TAILOR_TEST_UNSET_SECRET, which is not set");
  /* A URL libcurl cannot parse is refused at start, not at every send. */
  snprintf(entry, sizeof entry,
           "[{\"path\":\"%s/webhook.so\",\"config\":{\"url\":\"http://\","
           "\"secret\":\"0123456789abcdef\"}}]",
           plugins);
  CHECK_CONTAINS(refused(entry, ""), "\"url\": ");
}

static void test_config_entries(void) {
  CHECK_CONTAINS(refused("{}", ""), "'plugins' must be an array");
  CHECK_CONTAINS(refused("[{\"file\":\"x.so\"}]", ""), "plugins[0]: unknown key 'file'");
  CHECK_CONTAINS(refused("[{\"path\":\"x.so\",\"name\":\"x\"}]", ""),
                 "give either \"path\"");
  CHECK_CONTAINS(refused("[{\"path\":\"x.so\",\"config\":[]}]", ""), "\"config\" as an object");
  CHECK_CONTAINS(refused("[{\"name\":\"../x\"}]", ""), "is not [a-z_][a-z0-9_]*");
  CHECK_CONTAINS(refused("[3]", ""), "plugins[0]: expected");
  /* None at all is the default. */
  tailor_error err;
  tailor *t = open_with("", "[]", "", &err);
  CHECK(t != NULL);
  tailor_close(t);
}

int main(void) {
  const char *base = getenv("TAILOR_TEST_TMP"), *p = getenv("TAILOR_PLUGINS"),
             *f = getenv("TAILOR_FIXTURES");
  if (!p || !f) {
    fprintf(stderr, "TAILOR_PLUGINS and TAILOR_FIXTURES must name the built plugins\n");
    return 1;
  }
  snprintf(tmp, sizeof tmp, "%s", base ? base : "/tmp");
  snprintf(plugins, sizeof plugins, "%s", p);
  snprintf(fixtures, sizeof fixtures, "%s", f);
  mkdir(tmp, 0700);
  RUN(test_example_plugin);
  RUN(test_abi_versions);
  RUN(test_broken_plugins);
  RUN(test_channels);
  RUN(test_config_entries);
  return CHECK_DONE();
}
