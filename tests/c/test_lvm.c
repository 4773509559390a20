/*
** test_lvm.c: the Lua sandbox: loading a strategy folder, handlers, the
** instruction budget (pattern matching included), the memory cap, what a
** strategy can and cannot reach or change, require, lvm_check_dir and
** lvm_dir_signature.
*/
#include <ftw.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "lua/lvm.h"

#define TEST_BUDGET 200000L        /* small: a runaway loop ends in ms */
#define TEST_MEMORY (2u << 20)     /* small: a runaway allocation too */

/*
** ** Helpers
*/
static const char *tmp_root(void) {
  const char *t = getenv("TAILOR_TEST_TMP");
  return t && *t ? t : "/tmp";
}

/* A fresh folder under the test tmp; `buf` receives its path. */
static const char *make_dir(char *buf, size_t n) {
  snprintf(buf, n, "%s/lvm-XXXXXX", tmp_root());
  if (!mkdtemp(buf)) {
    perror(buf);
    exit(2);
  }
  return buf;
}

/* Write `text` to dir/rel, creating one level of subfolder if needed. */
static void write_file(const char *dir, const char *rel, const char *text) {
  char path[1024];
  const char *slash = strrchr(rel, '/');
  FILE *f;
  if (slash) {
    snprintf(path, sizeof path, "%s/%.*s", dir, (int)(slash - rel), rel);
    mkdir(path, 0700);
  }
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  if (!(f = fopen(path, "w"))) {
    perror(path);
    exit(2);
  }
  fputs(text, f);
  fclose(f);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw) {
  return remove(path);
}

static void remove_tree(const char *dir) {
  nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

typedef struct log_capture {
  int calls, level;
  char last[256];
} log_capture;

static void capture_log(void *ud, int level, const char *msg) {
  log_capture *c = ud;
  c->calls++;
  c->level = level;
  snprintf(c->last, sizeof c->last, "%s", msg);
}

/* The host API a test state gets: a `tailor` table with a name and a
   nested table, like tailor.plugins. */
static void open_test_api(lua_State *L, void *ud) {
  lua_createtable(L, 0, 2);
  lua_pushstring(L, ud ? (const char *)ud : "test-host");
  lua_setfield(L, -2, "name");
  lua_createtable(L, 0, 1);
  lua_pushinteger(L, 7);
  lua_setfield(L, -2, "value");
  lua_setfield(L, -2, "nested");
  lua_setglobal(L, "tailor");
}

static void open_failing_api(lua_State *L, void *ud) {
  luaL_error(L, "api refused to open");
}

static lvm_config test_config(const char *dir) {
  lvm_config c;
  memset(&c, 0, sizeof c);
  c.dir = dir;
  c.budget = TEST_BUDGET;
  c.memory_limit = TEST_MEMORY;
  c.open_api = open_test_api;
  return c;
}

static lvm *open_vm(const char *dir, tailor_error *err) {
  lvm_config c = test_config(dir);
  memset(err, 0, sizeof *err);
  return lvm_new(&c, err);
}

/* A state for tests whose loops run long on purpose, not a runaway. */
static lvm *open_vm_long(const char *dir, tailor_error *err) {
  lvm_config c = test_config(dir);
  c.budget = 50000000L;
  c.time_limit_ms = 600000;
  memset(err, 0, sizeof *err);
  return lvm_new(&c, err);
}

/* A lazy table's __totable: marks it made and plain. */
static int made_totable(lua_State *L) {
  lua_pushboolean(L, 1);
  lua_setfield(L, 1, "made");
  lua_pushnil(L);
  lua_setmetatable(L, 1);
  lua_settop(L, 1);
  return 1;
}

/* A metatable with made_totable, marked as the host's or not; left on top. */
static int totable_meta(lua_State *L, int host) {
  lua_newtable(L);
  lua_pushcfunction(L, made_totable);
  lua_setfield(L, -2, "__totable");
  if (host) lvm_mark_totable(L, -1);
  return lua_gettop(L);
}

static int made(lua_State *L, int idx) {
  lua_getfield(L, idx, "made");
  int m = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return m;
}

/* What a plugin gets: the host's lazy tables within its arguments made
   whole, nested too, once each (a cycle ends), to a depth that keeps the C
   stack safe; a table's own __totable, not the host's, is not run. */
static void test_whole_deep(void) {
  lua_State *L = luaL_newstate();
  int host = totable_meta(L, 1), own = totable_meta(L, 0);
  lua_newtable(L);
  int arg = lua_gettop(L);
  lua_newtable(L); /* arg.a.b: lazy */
  lua_newtable(L);
  lua_pushvalue(L, host);
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "b");
  lua_setfield(L, arg, "a");
  lua_newtable(L); /* arg[1]: lazy */
  lua_pushvalue(L, host);
  lua_setmetatable(L, -2);
  lua_rawseti(L, arg, 1);
  lua_pushvalue(L, arg); /* arg.cycle = arg */
  lua_setfield(L, arg, "cycle");
  lua_newtable(L); /* arg.own: a strategy's own __totable */
  lua_pushvalue(L, own);
  lua_setmetatable(L, -2);
  lua_setfield(L, arg, "own");
  lvm_whole_deep(L, arg);
  CHECK_INT(lua_gettop(L), arg);
  lua_getfield(L, arg, "a");
  lua_getfield(L, -1, "b");
  CHECK(made(L, -1));
  lua_rawgeti(L, arg, 1);
  CHECK(made(L, -1));
  lua_getfield(L, arg, "own");
  CHECK(!made(L, -1));
  CHECK(lua_getmetatable(L, -1)); /* left as it was */
  /* A table first reached at the depth limit, and again by a short path:
     walked again from there (X.lazy, two levels down, made). */
  lua_settop(L, 0);
  host = totable_meta(L, 1);
  lua_newtable(L); /* 2: A */
  lua_newtable(L); /* 3: X */
  lua_newtable(L);
  lua_pushvalue(L, host);
  lua_setmetatable(L, -2);
  lua_setfield(L, 3, "lazy");
  lua_newtable(L); /* A[1]: a chain of LVM_WHOLE_DEPTH - 1 tables, then X */
  lua_pushvalue(L, -1);
  lua_rawseti(L, 2, 1);
  for (int i = 1; i < LVM_WHOLE_DEPTH - 1; i++) {
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "next");
    lua_remove(L, -2);
  }
  lua_pushvalue(L, 3);
  lua_setfield(L, -2, "next");
  lua_pop(L, 1);
  lua_pushvalue(L, 3); /* A[2] = X */
  lua_rawseti(L, 2, 2);
  lvm_whole_deep(L, 2);
  lua_getfield(L, 3, "lazy");
  CHECK(made(L, -1));
  /* A chain far deeper than LVM_WHOLE_DEPTH ends, the C stack whole. */
  lua_settop(L, 0);
  lua_newtable(L);
  lua_pushvalue(L, 1);
  for (int i = 0; i < 200000; i++) {
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "next");
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
  lvm_whole_deep(L, 1);
  CHECK_INT(lua_gettop(L), 1);
  lua_close(L);
}

/* What lvm_pcall runs: the handler named in the call, with an optional
   string argument; its result as text in `out`. */
typedef struct call {
  const char *handler;
  const char *arg;
  char out[256];
} call;

static int call_handler(lua_State *L) {
  call *c = lvm_ud(L);
  if (!lvm_push_handler(lvm_of(L), c->handler, NULL))
    return luaL_error(L, "no handler '%s'", c->handler);
  if (c->arg) lua_pushstring(L, c->arg);
  lua_call(L, c->arg ? 1 : 0, 1);
  snprintf(c->out, sizeof c->out, "%s", luaL_tolstring(L, -1, NULL));
  lua_pop(L, 1);
  return 1; /* the handler's result stays on the stack */
}

/* Call `handler` and return the lvm_pcall code; `out` gets the result. */
static int run(lvm *vm, const char *handler, call *c, tailor_error *err) {
  int rc;
  memset(c, 0, sizeof *c);
  memset(err, 0, sizeof *err);
  c->handler = handler;
  rc = lvm_pcall(vm, call_handler, c, err);
  lua_settop(lvm_state(vm), 0);
  return rc;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
** ** Loading and calling
*/
static void test_handlers_from_two_files(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  const char *file = NULL;
  lvm *vm;
  write_file(dir, "a.lua",
             "return { recommend = function(x) return 'rec:' .. x end }\n");
  write_file(dir, "b.lua",
             "local n = 0\n"
             "return { popup = function() n = n + 1 return n * 10 end,\n"
             "         segments = { vip = function() return true end },\n"
             "         version = 3 }\n");
  write_file(dir, "notes.txt", "not a strategy");
  write_file(dir, ".hidden.lua", "this would not compile");
  vm = open_vm(dir, &err);
  CHECK(vm != NULL);
  if (!vm) {
    fprintf(stderr, "  %s\n", err.message);
    remove_tree(dir);
    return;
  }
  CHECK(lvm_has_handler(vm, "recommend"));
  CHECK(lvm_has_handler(vm, "popup"));
  CHECK(lvm_has_handler(vm, "segments"));
  CHECK(!lvm_has_handler(vm, "version")); /* not a function */
  CHECK(!lvm_has_handler(vm, "discount"));

  memset(&c, 0, sizeof c);
  c.handler = "recommend";
  c.arg = "sku-1";
  CHECK_INT(lvm_pcall(vm, call_handler, &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "rec:sku-1");
  /* The stack is left as the function left it: its one result. */
  CHECK_INT(lua_gettop(lvm_state(vm)), 1);
  CHECK_STR(lua_tostring(lvm_state(vm), -1), "rec:sku-1");
  lua_settop(lvm_state(vm), 0);

  CHECK_INT(run(vm, "popup", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "10");
  CHECK_INT(run(vm, "popup", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "20"); /* the state lives across calls */

  CHECK_INT(lvm_push_handler(vm, "segments", &file), 1);
  CHECK_INT(lua_type(lvm_state(vm), -1), LUA_TTABLE);
  CHECK_STR(file, "b.lua");
  lua_settop(lvm_state(vm), 0);
  CHECK_INT(lvm_push_handler(vm, "discount", &file), 0);
  CHECK_INT(lua_gettop(lvm_state(vm)), 0);

  CHECK(lvm_memory(vm) > 0);
  CHECK(lvm_memory(vm) < lvm_memory_limit(vm));
  CHECK_INT(lvm_memory_limit(vm), TEST_MEMORY);
  lvm_free(vm);
  remove_tree(dir);
}

static void test_no_folder(void) {
  tailor_error err;
  lvm *vm = open_vm(NULL, &err);
  call c;
  CHECK(vm != NULL);
  if (!vm) return;
  CHECK(!lvm_has_handler(vm, "recommend"));
  CHECK_INT(run(vm, "recommend", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "no handler 'recommend'");
  lvm_free(vm);
  lvm_free(NULL);

  vm = open_vm("/nonexistent/strategies", &err);
  CHECK(vm == NULL);
  CHECK_INT(err.code, TAILOR_ECONFIG);
  CHECK_CONTAINS(err.message, "/nonexistent/strategies");
}

static void test_duplicate_handler(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  lvm *vm;
  write_file(dir, "a.lua", "return { recommend = function() end }\n");
  write_file(dir, "b.lua", "return { recommend = function() end }\n");
  vm = open_vm(dir, &err);
  CHECK(vm == NULL);
  CHECK_INT(err.code, TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "handler 'recommend' defined in both a.lua and b.lua");
  lvm_free(vm);
  remove_tree(dir);
}

static void test_load_errors(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  lvm *vm;
  write_file(dir, "bad.lua", "return {\n  a = 1,\n  b = = 2,\n}\n");
  vm = open_vm(dir, &err);
  CHECK(vm == NULL);
  CHECK_INT(err.code, TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "bad.lua:3:");
  CHECK(strchr(err.message, '\n') == NULL);
  lvm_free(vm);
  remove_tree(dir);

  dir = make_dir(buf, sizeof buf);
  write_file(dir, "x.lua", "local t = {}\n");
  vm = open_vm(dir, &err);
  CHECK(vm == NULL);
  CHECK_STR(err.message, "x.lua: must return a table of handlers (got nil)");
  remove_tree(dir);

  dir = make_dir(buf, sizeof buf);
  write_file(dir, "spin.lua", "local n = 0\nwhile true do n = n + 1 end\n");
  vm = open_vm(dir, &err);
  CHECK(vm == NULL);
  CHECK_INT(err.code, TAILOR_EBUDGET);
  CHECK_CONTAINS(err.message, "spin.lua:2:");
  remove_tree(dir);

  /* A compiled chunk as a strategy file is refused: text only. */
  dir = make_dir(buf, sizeof buf);
  write_file(dir, "bin.lua", "\033Lua\x54");
  vm = open_vm(dir, &err);
  CHECK(vm == NULL);
  CHECK_INT(err.code, TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "binary");
  remove_tree(dir);
}

static void test_error_messages(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  lvm *vm;
  write_file(dir, "e.lua",
             "return {\n"
             "  tbl = function() error({}) end,\n"
             "  lines = function() error('one\\ntwo') end,\n"
             "  num = function() error(42) end,\n"
             "}\n");
  vm = open_vm(dir, &err);
  CHECK(vm != NULL);
  if (!vm) goto out;
  CHECK_INT(run(vm, "tbl", &c, &err), TAILOR_ESTRATEGY);
  CHECK_STR(err.message, "e.lua:2: (error object is a table value)"); /* where it was raised */
  CHECK_INT(lua_gettop(lvm_state(vm)), 0);
  CHECK_INT(run(vm, "lines", &c, &err), TAILOR_ESTRATEGY);
  CHECK_STR(err.message, "e.lua:3: one two");
  CHECK_INT(run(vm, "num", &c, &err), TAILOR_ESTRATEGY);
  CHECK_STR(err.message, "42");
  lvm_free(vm);
out:
  remove_tree(dir);
}

/*
** ** Budget
*/
static void test_budget(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  lvm *vm;
  double t0;
  write_file(dir, "loop.lua",
             "return {\n"
             "  spin = function()\n"
             "    while true do end\n"
             "  end,\n"
             "  caught = function()\n"
             "    for i = 1, 1000 do pcall(function() while true do end end) end\n"
             "    return 'escaped'\n"
             "  end,\n"
             "  nested = function()\n"
             "    while true do\n"
             "      pcall(function() while true do pcall(function() while true do end end) end end)\n"
             "    end\n"
             "  end,\n"
             "  co = function()\n"
             "    local co = coroutine.create(function() while true do end end)\n"
             "    local ok = coroutine.resume(co)\n"
             "    return 'escaped'\n"
             "  end,\n"
             "  wrapped = function()\n"
             "    local f = coroutine.wrap(function() while true do end end)\n"
             "    pcall(f)\n"
             "    return 'escaped'\n"
             "  end,\n"
             "  ok = function() local n = 0 for i = 1, 1000 do n = n + i end return n end,\n"
             "  handler = function()\n"
             "    xpcall(function() while true do end end, function() while true do end end)\n"
             "    return 'escaped'\n"
             "  end,\n"
             "  handled = function()\n"
             "    local ok, e = xpcall(error, function(m) return 'handled: ' .. m end, 'x')\n"
             "    return e\n"
             "  end,\n"
             "  yields = function()\n"
             "    local f = coroutine.wrap(function()\n"
             "      return xpcall(function() coroutine.yield(1) return 2 end, print)\n"
             "    end)\n"
             "    local a = f()\n"
             "    local ok, b = f()\n"
             "    return a .. tostring(ok) .. b\n"
             "  end,\n"
             "  nilpairs = function() for k in pairs(nil) do end end,\n"
             "  rawgetnil = function() return rawget(nil, 1) end,\n"
             "}\n");
  vm = open_vm(dir, &err);
  CHECK(vm != NULL);
  if (!vm) goto out;
  t0 = now_seconds();
  CHECK_INT(run(vm, "spin", &c, &err), TAILOR_EBUDGET);
  CHECK_CONTAINS(err.message, "loop.lua:3:");
  CHECK_CONTAINS(err.message, "instruction budget exhausted (200000 instructions)");
  CHECK_INT(err.code, TAILOR_EBUDGET);
  CHECK_INT(run(vm, "caught", &c, &err), TAILOR_EBUDGET);
  CHECK_CONTAINS(err.message, "loop.lua:6:");
  CHECK(strcmp(c.out, "escaped") != 0);
  CHECK_INT(run(vm, "nested", &c, &err), TAILOR_EBUDGET);
  CHECK_INT(run(vm, "co", &c, &err), TAILOR_EBUDGET);
  CHECK_CONTAINS(err.message, "loop.lua:15:");
  CHECK(strcmp(c.out, "escaped") != 0);
  CHECK_INT(run(vm, "wrapped", &c, &err), TAILOR_EBUDGET);
  CHECK_CONTAINS(err.message, "loop.lua:20:");
  CHECK(now_seconds() - t0 < 5.0);
  /* Each call gets a fresh budget: a normal call still runs. */
  CHECK_INT(run(vm, "ok", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "500500");
  CHECK_INT(run(vm, "co", &c, &err), TAILOR_EBUDGET);
  CHECK_INT(run(vm, "ok", &c, &err), TAILOR_OK);
  /* xpcall's handler runs where the error is raised: past the budget, not
     at all (it would run with hooks off); otherwise as usual. */
  t0 = now_seconds();
  CHECK_INT(run(vm, "handler", &c, &err), TAILOR_EBUDGET);
  CHECK(now_seconds() - t0 < 5.0);
  CHECK_INT(run(vm, "handled", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "handled: x");
  CHECK_INT(run(vm, "yields", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "1true2");
  /* The sandbox's own next, rawget and pairs err as Lua's do. */
  CHECK_INT(run(vm, "nilpairs", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "loop.lua:41: bad argument #1 to 'for iterator' (table expected, got nil)");
  CHECK_INT(run(vm, "rawgetnil", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "loop.lua:42: bad argument #1 to 'rawget' (table expected, got nil)");
  lvm_free(vm);
out:
  remove_tree(dir);
}

/*
** The budget's hook is armed by the watchdog (lua/lwatch.h) once a call has
** run a few milliseconds.  A call over before that runs whole whatever its
** count; coroutines, a thread that blocks SIGURG and a forked child are
** counted; a call that runs around another state's call is armed still.
*/
#define SHORT_LOOP /* 210,000 instructions: over TEST_BUDGET, under 5 ms */ \
  "  short = function() local n = 0 for i = 1, 105000 do n = n + i end return n end,\n"

static void *run_short_blocked(void *vm) {
  sigset_t urg;
  sigemptyset(&urg);
  sigaddset(&urg, SIGURG);
  pthread_sigmask(SIG_BLOCK, &urg, NULL);
  tailor_error err;
  call c;
  return (void *)(intptr_t)run(vm, "short", &c, &err);
}

/* In lvm A's call: a whole call of lvm B, then A's own runaway loop. */
static int around_other(lua_State *L) {
  lvm *b = lvm_ud(L);
  tailor_error err;
  call c = {.handler = "short"};
  if (lvm_pcall(b, call_handler, &c, &err) != TAILOR_OK) return luaL_error(L, "b failed");
  lua_settop(lvm_state(b), 0);
  lvm_push_handler(lvm_of(L), "spin", NULL);
  lua_call(L, 0, 0);
  return 0;
}

static void test_budget_armed_late(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  write_file(dir, "late.lua",
             "return {\n" SHORT_LOOP
             "  co = function()\n"
             "    local f = coroutine.wrap(function() local n = 0 for i = 1, 105000 do n = n + i end return n end)\n"
             "    return f()\n"
             "  end,\n"
             "  spin = function() while true do end end,\n"
             "}\n");
  lvm *vm = open_vm(dir, &err), *other = open_vm(dir, &err);
  CHECK(vm != NULL && other != NULL);
  if (!vm || !other) goto out;
  /* Whole unless the thread stalled 5 ms within its first 10,000
     instructions: allowed a second and third try on a loaded machine. */
  int rc = TAILOR_EBUDGET;
  for (int try = 0; try < 3 && rc != TAILOR_OK; try++) rc = run(vm, "short", &c, &err);
  CHECK_INT(rc, TAILOR_OK);
  CHECK_STR(c.out, "5512552500");
  CHECK_INT(run(vm, "co", &c, &err), TAILOR_EBUDGET);
  CHECK_CONTAINS(err.message, "late.lua:4:");
  /* A thread that blocks the watchdog's signal counts every instruction. */
  pthread_t t;
  void *blocked = NULL;
  CHECK_INT(pthread_create(&t, NULL, run_short_blocked, vm), 0);
  pthread_join(t, &blocked);
  CHECK_INT((int)(intptr_t)blocked, TAILOR_EBUDGET);
  /* A's runaway loop after B's whole call on the same thread. */
  double t0 = now_seconds();
  memset(&err, 0, sizeof err);
  CHECK_INT(lvm_pcall(vm, around_other, other, &err), TAILOR_EBUDGET);
  CHECK_CONTAINS(err.message, "late.lua:7:");
  CHECK(now_seconds() - t0 < 5.0);
  lua_settop(lvm_state(vm), 0);
  /* A forked child runs its own watchdog. */
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    int code = run(vm, "spin", &c, &err);
    _exit(code == TAILOR_EBUDGET ? 0 : 1);
  }
  int status = -1;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
out:
  lvm_free(vm);
  lvm_free(other);
  remove_tree(dir);
}

/*
** C functions that scan a string (utf8.*, tonumber) are charged a step per
** byte, and a call whose instructions are slow (long-string compares, one
** instruction each) ends at its time limit.  Each case here is short
** without the charges: it would return, not end in the budget error.
*/
static void test_scans_and_time_limit(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  lvm *vm = NULL;
  double t0;
  write_file(dir, "u.lua",
             "local big = string.rep('a', 256 * 1024)\n"
             "local cont = string.rep('\\x80', 256 * 1024)\n"
             "local step = utf8.codes('a')\n"
             "return {\n"
             "  len = function() local n = 0 for i = 1, 20 do n = n + utf8.len(big) end return n end,\n"
             "  codepoint = function() for i = 1, 20 do utf8.codepoint(big, 1, -1) end end,\n"
             "  offset = function() for i = 1, 20 do utf8.offset(big, #big) end end,\n"
             "  codes = function() for i = 1, 20 do step(cont, 0) end end,\n"
             "  codesfor = function() local n = 0 for _ in utf8.codes(big) do n = n + 1 end return n end,\n"
             "  tonumber = function() local s = big .. '1' for i = 1, 20 do tonumber(s) end end,\n"
             "  based = function() for i = 1, 20 do tonumber(big, 16) end end,\n"
             "  small = function()\n"
             "    local s, t = 'h\\u{e9}llo', {}\n"
             "    for p, cp in utf8.codes(s) do t[#t + 1] = p .. ':' .. cp end\n"
             "    for i = 1, 1000 do assert(utf8.offset(big, -1) == #big) end\n"
             "    return utf8.len(s) .. ' ' .. utf8.codepoint(s, 2) .. ' ' .. utf8.offset(s, 3) ..\n"
             "      ' ' .. table.concat(t, ',') .. ' ' .. tonumber('0x10') .. ' ' .. tonumber('z', 36) ..\n"
             "      ' ' .. tostring(utf8.len('\\xff')) .. ' ' .. tostring(tonumber({}))\n"
             "  end,\n"
             "  invalid = function() return utf8.codepoint('\\xff') end,\n"
             "  badarg = function() return utf8.len({}) end,\n"
             "}\n");
  write_file(dir, "t.lua",
             "local a = string.rep('a', 1 << 20)\n"
             "local b = string.rep('a', 1 << 20)\n"
             "return {\n"
             "  compare = function()\n"
             "    local n = 0\n"
             "    for i = 1, 20000 do if a == b then n = n + 1 end end\n"
             "    return n\n"
             "  end,\n"
             "  ok = function() local n = 0 for i = 1, 1000 do n = n + i end return n end,\n"
             "}\n");
  lvm_config cfg = test_config(dir);
  cfg.memory_limit = 16u << 20;
  cfg.budget = 200000;
  cfg.time_limit_ms = 100;
  memset(&err, 0, sizeof err);
  vm = lvm_new(&cfg, &err);
  CHECK(vm != NULL);
  if (!vm) goto out;
  static const struct {
    const char *handler, *where;
  } charged[] = {{"len", "u.lua:5:"},      {"codepoint", "u.lua:6:"}, {"offset", "u.lua:7:"},
                 {"codes", "u.lua:8:"},    {"codesfor", "u.lua:9:"},  {"tonumber", "u.lua:10:"},
                 {"based", "u.lua:11:"}};
  for (size_t i = 0; i < sizeof charged / sizeof *charged; i++) {
    CHECK_INT(run(vm, charged[i].handler, &c, &err), TAILOR_EBUDGET);
    CHECK_CONTAINS(err.message, charged[i].where);
    CHECK_CONTAINS(err.message, "instruction budget exhausted (200000 instructions)");
  }
  /* Short strings cost little, and the wrapped functions answer and fail
     as Lua's do, errors named at the caller's line. */
  CHECK_INT(run(vm, "small", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "5 233 4 1:104,2:233,4:108,5:108,6:111 16 35 nil nil");
  CHECK_INT(run(vm, "invalid", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "u.lua:20: invalid UTF-8 code");
  CHECK_INT(run(vm, "badarg", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "u.lua:21: bad argument #1 to 'len' (string expected, got table)");
  /* 20,000 compares of two 1 MiB strings: 80,000 instructions, well
     within the budget, and seconds of memcmp. */
  t0 = now_seconds();
  CHECK_INT(run(vm, "compare", &c, &err), TAILOR_EBUDGET);
  CHECK_CONTAINS(err.message, "t.lua:6: time limit exceeded (100 ms)");
  CHECK(now_seconds() - t0 < 2.0);
  CHECK_INT(run(vm, "ok", &c, &err), TAILOR_OK); /* the next call has its own */
  CHECK_STR(c.out, "500500");
out:
  lvm_free(vm);
  remove_tree(dir);
}

/* Strategies that try the corners: a finalizer (Lua runs those with hooks
   off, so they are refused), a to-be-closed variable and an error object
   whose __tostring never end, runaway recursion, one huge string, a
   coroutine kept across calls. */
static void test_hostile_corners(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  lvm *vm;
  double t0 = now_seconds();
  write_file(dir, "h.lua",
             "local spin = function() while true do end end\n"
             "local kept\n"
             "return {\n"
             "  gc = function()\n"
             "    for i = 1, 10 do setmetatable({}, {__gc = spin}) end\n"
             "    return 'left garbage'\n"
             "  end,\n"
             "  close = function()\n"
             "    local x <close> = setmetatable({}, {__close = spin})\n"
             "    error('first')\n"
             "  end,\n"
             "  tostr = function() error(setmetatable({}, {__tostring = spin})) end,\n"
             "  recurse = function() local function f() return 1 + f() end return f() end,\n"
             "  huge = function() return #string.rep('x', 1 << 30) end,\n"
             "  emptyrep = function() return #string.rep('', 1e15) end,\n"
             "  methodrep = function() return #(''):rep(1e15, '') end,\n"
             "  move = function() return #table.move({}, 1, 1e15, 2) end,\n"
             "  gen = function()\n"
             "    kept = kept or coroutine.wrap(function()\n"
             "      local n = 0 while true do n = n + 1 coroutine.yield(n) end\n"
             "    end)\n"
             "    return kept()\n"
             "  end,\n"
             "}\n");
  vm = open_vm(dir, &err);
  CHECK(vm != NULL);
  if (!vm) goto out;
  CHECK_INT(run(vm, "gc", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "h.lua:5: __gc metamethods are not allowed");
  CHECK_INT(run(vm, "close", &c, &err), TAILOR_EBUDGET);
  CHECK_INT(run(vm, "tostr", &c, &err), TAILOR_EBUDGET);
  /* The Lua stack outgrows the 2 MiB cap before its own limit. */
  CHECK_INT(run(vm, "recurse", &c, &err), TAILOR_ELUAMEM);
  CHECK_INT(run(vm, "huge", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "larger than the memory cap");
  /* C loops the count hook cannot see are bounded before they start. */
  CHECK_INT(run(vm, "emptyrep", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "0");
  CHECK_INT(run(vm, "methodrep", &c, &err), TAILOR_OK);
  CHECK_INT(run(vm, "move", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "table.move: more than");
  CHECK_INT(run(vm, "gen", &c, &err), TAILOR_OK);
  CHECK_INT(run(vm, "gen", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "2"); /* the coroutine lives across calls */
  lvm_free(vm);
  CHECK(now_seconds() - t0 < 5.0);
out:
  remove_tree(dir);
}

/*
** ** Pattern matching under the budget
*/

/* The matcher's worst cases, each once through every entry point: none may
   hold the thread, at the default budget, for anything near a second. */
static void test_patterns_under_budget(void) {
  static const struct {
    const char *handler;
    int line;
  } cases[] = {
      {"find", 3},     {"two_items", 4}, {"method", 5},   {"match", 6},
      {"gmatch", 7},   {"gsub", 8},      {"optional", 9}, {"balanced", 10},
      {"plain", 11},   {"caught", 13},
  };
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  lvm_config cfg = test_config(dir);
  lvm *vm;
  write_file(dir, "p.lua",
             "local a = ('a'):rep(3000)\n"
             "return {\n"
             "  find = function() return string.find(a, '.-.-.-.-.-b') end,\n"
             "  two_items = function() return string.find(a, '.-.-b') end,\n"
             "  method = function() return a:find('.-.-.-.-.-b') end,\n"
             "  match = function() return a:match('(.-)(.-)(.-)b') end,\n"
             "  gmatch = function() for x in a:gmatch('.-.-.-b') do end end,\n"
             "  gsub = function() return (a:gsub('.-.-.-b', '')) end,\n"
             "  optional = function() return a:sub(1, 40):match(('a?'):rep(40) .. a:sub(1, 40)) end,\n"
             "  balanced = function() return (('('):rep(6000) .. 'x'):find('%b()') end,\n"
             "  plain = function() return a:rep(300):find(a:sub(1, 2000) .. 'b', 1, true) end,\n"
             "  caught = function()\n"
             "    for i = 1, 1000 do pcall(string.find, a, '.-.-.-b') end\n"
             "    return 'escaped'\n"
             "  end,\n"
             "  ordinary = function()\n"
             "    local words = {}\n"
             "    for w in ('one two  three'):gmatch('%a+') do words[#words + 1] = w end\n"
             "    local k, v = ('size=XL'):match('^(%w+)=(%w+)$')\n"
             "    return table.concat(words, ',') .. ' ' .. k .. ':' .. v .. ' ' ..\n"
             "           (' pad '):gsub('^%s*(.-)%s*$', '%1') .. ' ' ..\n"
             "           tostring(('Home/Decor'):find('/', 1, true)) .. ' ' ..\n"
             "           ('abandoned_cart:c1:x'):match('^([%w_]+):')\n"
             "  end,\n"
             "}\n");
  cfg.budget = 0; /* the default: what a server runs with */
  cfg.memory_limit = 0;
  vm = lvm_new(&cfg, &err);
  CHECK(vm != NULL);
  if (!vm) goto out;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char where[64];
    double t0 = now_seconds(), took;
    int rc = run(vm, cases[i].handler, &c, &err);
    took = now_seconds() - t0;
    snprintf(where, sizeof where, "p.lua:%d: instruction budget exhausted",
             cases[i].line);
    if (rc != TAILOR_EBUDGET || took > 1.0)
      fprintf(stderr, "  case %s: rc %d in %.2f s, \"%s\"\n", cases[i].handler,
              rc, took, err.message);
    CHECK_INT(rc, TAILOR_EBUDGET);
    CHECK_CONTAINS(err.message, where);
    CHECK(took < 1.0);
  }
  CHECK_INT(run(vm, "ordinary", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "one,two,three size:XL pad 5 abandoned_cart");
  lvm_free(vm);
out:
  remove_tree(dir);
}

/* A handler's string result in full (call.out keeps 255 bytes). */
typedef struct long_call {
  const char *handler;
  char *out; /* malloc'd */
} long_call;

static int call_long(lua_State *L) {
  long_call *c = lvm_ud(L);
  size_t n;
  const char *s;
  if (!lvm_push_handler(lvm_of(L), c->handler, NULL))
    return luaL_error(L, "no handler '%s'", c->handler);
  lua_call(L, 0, 1);
  s = luaL_checklstring(L, -1, &n);
  if ((c->out = malloc(n + 1))) memcpy(c->out, s, n + 1);
  return 0;
}

/* Patterns from random pieces and hand-picked corners through find, match,
   gmatch and gsub; every result and error message as one text. */
static const char pattern_cases_lua[] =
    "local pieces = { 'a', 'b', '.', '%a', '%d', '%s', '%w', '%A', '[ab]',\n"
    "  '[^a]', '[a-c]', '[%d%s]', '[]]', '%%', '(', ')', '()', '*', '+', '-',\n"
    "  '?', '^', '$', '%b()', '%f[%w]', '%f[%W]', '%1', '%2', '[', '%', 'x',\n"
    "  '=', ' ' }\n"
    "local subjects = { '', 'a', 'aab', 'abcabc', 'hello world 42', '(a(b)c)',\n"
    "  '  x=1, y=22 ', 'aaa\\0bbb', 'ab\\n12', '((()))' }\n"
    "local seed = 42\n"
    "local function rand(n)\n"
    "  seed = (seed * 1103515245 + 12345) % 2147483648\n"
    "  return seed % n + 1\n"
    "end\n"
    "local function show(...)\n"
    "  local t = table.pack(...)\n"
    "  for i = 1, t.n do\n"
    "    t[i] = type(t[i]) == 'string' and string.format('%q', t[i]) or tostring(t[i])\n"
    "  end\n"
    "  return table.concat(t, ',', 1, t.n)\n"
    "end\n"
    "local function all(s, p, init)\n"
    "  local r = {}\n"
    "  local ok, err = pcall(function()\n"
    "    for a, b, c in string.gmatch(s, p, init) do\n"
    "      r[#r + 1] = show(a, b, c)\n"
    "      if #r > 40 then break end\n"
    "    end\n"
    "  end)\n"
    "  if not ok then r[#r + 1] = 'error ' .. err end\n"
    "  return table.concat(r, ';')\n"
    "end\n"
    "local function run(out, s, p, init)\n"
    "  out[#out + 1] = show(p, init, pcall(string.find, s, p, init))\n"
    "  out[#out + 1] = show(pcall(string.find, s, p, init, true))\n"
    "  out[#out + 1] = show(pcall(string.match, s, p, init))\n"
    "  out[#out + 1] = show(pcall(string.gsub, s, p, '<%0>'))\n"
    "  out[#out + 1] = show(pcall(string.gsub, s, p, '%1', 2))\n"
    "  out[#out + 1] = show(pcall(string.gsub, s, p, { a = 'A', ['('] = false }))\n"
    "  out[#out + 1] = show(pcall(string.gsub, s, p, function(...) return select('#', ...) end))\n"
    "  out[#out + 1] = all(s, p, init)\n"
    "end\n"
    "local corners = {\n"
    "  {'hello world', '(o)(r?)'}, {'THE (quick) fox', '%f[%a]%a+'},\n"
    "  {'x = (a(b)c) y', '%b()'}, {'abab', '(ab)%1'}, {'key=val', '()=()'},\n"
    "  {'aaa', 'a-'}, {'aaa', 'a*'}, {'', ''}, {'abc', ''}, {'abc', '^'},\n"
    "  {'abc', '$'}, {'a.b', '%.'}, {'a]b', '[]]'}, {'a^b', '[%^]'},\n"
    "  {'a-b', '[a-]'}, {'hello', 'l+'}, {'x', '%'}, {'x', '[a'}, {'x', '%b'},\n"
    "  {'x', '%bx'}, {'x', '%f'}, {'x', '(x'}, {'x', 'x)'}, {'x', '%1'},\n"
    "  {'x', '(x)%2'}, {'x', '%0'}, {'a\\0b', '%z'}, {'a1 b2', '^(%a)(%d)'},\n"
    "  {'[[x]]', '%[(.-)%]'}, {'one, two', '(%w+), (%w+)$'}, {'aXb', '%u'},\n"
    "}\n"
    "return { cases = function()\n"
    "  local out = {}\n"
    "  for i = 1, 3000 do\n"
    "    local p = {}\n"
    "    for j = 1, rand(6) - 1 do p[j] = pieces[rand(#pieces)] end\n"
    "    run(out, subjects[rand(#subjects)], table.concat(p), rand(7) - 4)\n"
    "  end\n"
    "  for _, c in ipairs(corners) do\n"
    "    for init = -2, 4 do run(out, c[1], c[2], init) end\n"
    "    run(out, c[1], c[2], 100)\n"
    "  end\n"
    "  local gsub = string.gsub\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '%w', '%'))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '%w', '%x'))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '%w', '%2'))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '(%w)', '%2'))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '()%w', '%1'))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '%w', '%%%0'))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '%w', 7))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '%w', {}))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '%w', { a = {} }))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '%w', function() return true end))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '%w'))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '%w', 'x', 0))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '%w', 'x', -1))\n"
    "  out[#out + 1] = show(pcall(gsub, 'abc', '^%w', 'x'))\n"
    "  out[#out + 1] = show(pcall(string.find, 'abc', 'b', 1.5))\n"
    "  out[#out + 1] = show(pcall(string.find, 123, 2))\n"
    "  out[#out + 1] = show(pcall(string.match))\n"
    "  out[#out + 1] = show(pcall(string.find, 'a+b', '+', 1, true))\n"
    "  out[#out + 1] = show(pcall(string.find, 'a\\0b', '\\0b'))\n"
    "  out[#out + 1] = show(pcall(string.match, ('a'):rep(300), ('a?'):rep(300)))\n"
    "  out[#out + 1] = show(pcall(string.match, 'x', ('()'):rep(40)))\n"
    "  out[#out + 1] = show(pcall(string.match, ('a'):rep(60), ('(a)'):rep(33)))\n"
    "  out[#out + 1] = show(('hello'):find('l'), ('hello'):match('(h)(e)'),\n"
    "                       ('hello'):gsub('l', 'L'))\n"
    "  local it = ('a1b2'):gmatch('%a(%d)')\n"
    "  out[#out + 1] = show(it(), it(), it(), it())\n"
    "  return table.concat(out, '\\n')\n"
    "end }\n";

/* The text of pattern_cases_lua in a stock Lua state. */
static char *stock_results(void) {
  lua_State *L = luaL_newstate();
  char *out = NULL;
  luaL_openlibs(L);
  if (luaL_loadbuffer(L, pattern_cases_lua, sizeof pattern_cases_lua - 1,
                      "@m.lua") == LUA_OK &&
      lua_pcall(L, 0, 1, 0) == LUA_OK && lua_getfield(L, -1, "cases") &&
      lua_pcall(L, 0, 1, 0) == LUA_OK) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    if (s && (out = malloc(n + 1))) memcpy(out, s, n + 1);
  } else {
    fprintf(stderr, "  stock: %s\n", lua_tostring(L, -1));
  }
  lua_close(L);
  return out;
}

/* The sandbox's matcher gives what the string library gives, errors
   included. */
static void test_patterns_match_stock(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  lvm_config cfg = test_config(dir);
  long_call c = {"cases", NULL};
  char *stock = stock_results();
  lvm *vm;
  write_file(dir, "m.lua", pattern_cases_lua);
  cfg.budget = 1L << 40; /* thousands of cases, none slow */
  cfg.memory_limit = 256u << 20;
  vm = lvm_new(&cfg, &err);
  CHECK(vm != NULL);
  CHECK(stock != NULL);
  if (vm && stock) {
    CHECK_INT(lvm_pcall(vm, call_long, &c, &err), TAILOR_OK);
    lua_settop(lvm_state(vm), 0);
    if (c.out && strcmp(c.out, stock) != 0) {
      size_t i = 0, line = 1;
      for (; c.out[i] && c.out[i] == stock[i]; i++) line += stock[i] == '\n';
      fprintf(stderr, "  results differ at line %zu:\n  sandbox: %.200s\n"
                      "  stock:   %.200s\n", line, c.out + i, stock + i);
    }
    CHECK(c.out && strcmp(c.out, stock) == 0);
    CHECK(c.out && strlen(c.out) > 100000); /* the cases did run */
  }
  free(c.out);
  free(stock);
  lvm_free(vm);
  remove_tree(dir);
}

/* A call into lvm_pcall from inside a call would arm a fresh budget. */
static int nested_pcall(lua_State *L) {
  tailor_error err;
  lua_pushinteger(L, lvm_pcall(lvm_of(L), nested_pcall, NULL, &err));
  return 1;
}

static void test_not_reentrant(void) {
  tailor_error err;
  lvm *vm = open_vm(NULL, &err);
  CHECK(vm != NULL);
  if (!vm) return;
  CHECK_INT(lvm_pcall(vm, nested_pcall, NULL, &err), TAILOR_OK);
  CHECK_INT(lua_tointeger(lvm_state(vm), -1), TAILOR_EINVAL);
  lua_settop(lvm_state(vm), 0);
  lvm_free(vm);
}

/*
** ** Memory
*/
static void test_memory_cap(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  lvm *vm;
  size_t before;
  write_file(dir, "mem.lua",
             "local function hog()\n"
             "  local t = {} while true do t[#t+1] = string.rep('x', 1000) .. #t end\n"
             "end\n"
             "return {\n"
             "  hog = hog,\n"
             "  caught = function() pcall(hog) return 'survived' end,\n"
             "  churn = function()\n"
             "    local keep = {}\n"
             "    for i = 1, 1100 do keep[i] = string.rep('k', 1000) .. i end\n"
             "    for i = 1, 4000 do local s = string.rep('g', 1000) .. i end\n"
             "    return #keep\n"
             "  end,\n"
             "  ok = function() return 'fine' end,\n"
             "}\n");
  vm = open_vm(dir, &err);
  CHECK(vm != NULL);
  if (!vm) goto out;
  before = lvm_memory(vm);
  CHECK_INT(run(vm, "hog", &c, &err), TAILOR_ELUAMEM);
  CHECK_STR(err.message, "mem.lua: out of memory (limit 2 MiB)");
  CHECK(lvm_memory(vm) <= lvm_memory_limit(vm));
  /* The failed call's garbage is collected and the state still works. */
  CHECK(lvm_memory(vm) < before + (256u << 10));
  CHECK_INT(run(vm, "ok", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "fine");
  /* Catching the memory error does not hide it. */
  CHECK_INT(run(vm, "caught", &c, &err), TAILOR_ELUAMEM);
  CHECK_STR(c.out, "survived"); /* it did return, yet the call failed */
  /* Garbage near the cap is reclaimed by Lua's emergency collection: the
     call succeeds and is not reported as out of memory. */
  CHECK_INT(run(vm, "churn", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "1100");
  CHECK_INT(run(vm, "ok", &c, &err), TAILOR_OK);
  lvm_free(vm);
out:
  remove_tree(dir);
}

/* Small blocks come from the state's own pool (lvm.c): blocks that grow
   and shrink across its size classes and past its largest keep their
   contents, freed blocks are reused, and the count of bytes in use comes
   back down after a collection. */
static void test_small_blocks(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  write_file(dir, "small.lua",
             "local function build(round)\n"
             "  local all = {}\n"
             "  for i = 1, 400 do\n"
             "    local t = {}\n"
             "    for j = 1, i % 50 do t[j] = j * round end\n"
             "    for j = 1, i % 7 do t['k' .. j] = string.rep('v', (i * j) % 300) end\n"
             "    all[i] = {t = t, s = string.rep('s', i % 290) .. i}\n"
             "  end\n"
             "  return all\n"
             "end\n"
             "local function sum(all)\n"
             "  local n = 0\n"
             "  for i, a in ipairs(all) do\n"
             "    for _, v in ipairs(a.t) do n = n + v end\n"
             "    for j = 1, i % 7 do n = n + #a.t['k' .. j] end\n"
             "    n = n + #a.s\n"
             "  end\n"
             "  return n\n"
             "end\n"
             "return {\n"
             "  churn = function()\n"
             "    local first = sum(build(1))\n"
             "    for round = 2, 6 do\n"
             "      local all = build(round)\n"
             "      for i = 1, #all, 2 do all[i].t = nil end\n"
             "    end\n"
             "    return first == sum(build(1)) and first or -1\n"
             "  end,\n"
             "}\n");
  lvm *vm = open_vm_long(dir, &err);
  CHECK(vm != NULL);
  if (!vm) goto out;
  /* The expected sum, from the same loops in C. */
  long want = 0;
  for (long i = 1; i <= 400; i++) {
    for (long j = 1; j <= i % 50; j++) want += j;
    for (long j = 1; j <= i % 7; j++) want += (i * j) % 300;
    want += i % 290 + snprintf(NULL, 0, "%ld", i);
  }
  char expect[32];
  snprintf(expect, sizeof expect, "%ld", want);
  size_t before = lvm_memory(vm);
  for (int k = 0; k < 3; k++) {
    CHECK_INT(run(vm, "churn", &c, &err), TAILOR_OK);
    CHECK_STR(c.out, expect);
  }
  lua_gc(lvm_state(vm), LUA_GCCOLLECT);
  CHECK(lvm_memory(vm) < before + (64u << 10));
  lvm_free(vm);
out:
  remove_tree(dir);
}

/* The small blocks a state keeps for reuse stay in their size class, so a
   strategy that takes half its cap in strings of one size, drops them,
   then does the same with the next size, held 15.6 MiB under a 2 MiB cap
   when the kept blocks were not counted.  The state never holds more than
   its cap (the strategy gets a memory error instead), and works on after. */
static void test_kept_blocks_capped(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  write_file(dir, "sizes.lua",
             "return {\n"
             "  sizes = function()\n"
             "    for len = 8, 224, 16 do -- a string takes 25 + len bytes\n"
             "      local keep, pad = {}, string.rep('x', len - 8)\n"
             "      for i = 1, 1000000 // (len + 25) do\n"
             "        keep[i] = pad .. string.format('%08d', i)\n"
             "      end\n"
             "    end\n"
             "    return 'done'\n"
             "  end,\n"
             "  ok = function() return 'fine' end,\n"
             "}\n");
  lvm *vm = open_vm_long(dir, &err);
  CHECK(vm != NULL);
  if (!vm) goto out;
  int rc = run(vm, "sizes", &c, &err);
  CHECK(rc == TAILOR_OK || rc == TAILOR_ELUAMEM);
  CHECK(lvm_memory(vm) <= lvm_memory_held(vm));
  CHECK(lvm_memory_held(vm) <= lvm_memory_limit(vm));
  CHECK_INT(run(vm, "ok", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "fine");
  lvm_free(vm);
out:
  remove_tree(dir);
}

static void test_tiny_memory_limit(void) {
  tailor_error err;
  lvm_config c = test_config(NULL);
  lvm *vm;
  c.memory_limit = 4096; /* not even the base library fits */
  memset(&err, 0, sizeof err);
  vm = lvm_new(&c, &err);
  CHECK(vm == NULL);
  CHECK_INT(err.code, TAILOR_ELUAMEM);
  CHECK_CONTAINS(err.message, "4096 bytes");
  lvm_free(vm);
}

/*
** ** The sandbox
*/
static void test_sandbox_refuses(void) {
  static const struct {
    const char *handler, *expect;
  } cases[] = {
      {"os_execute", "s.lua:2: os.execute is not available in strategies"},
      {"io_open", "undeclared global 'io'"},
      {"debug", "undeclared global 'debug'"},
      {"package", "undeclared global 'package'"},
      {"dofile", "undeclared global 'dofile'"},
      {"loadfile", "undeclared global 'loadfile'"},
      {"dump", "string.dump is not available"},
      {"binary", "binary chunk"},
      {"binary_mode", "binary chunk"},
      {"gc", "collectgarbage('collect') is not allowed"},
      {"new_global", "s.lua:13: assignment to undeclared global 'counter'"},
      {"read_global", "s.lua:14: read of undeclared global 'undefined_thing'"},
      {"unfreeze", "protected metatable"},
      {"require_os", "module 'os' not found"},
      {"getenv", "os.getenv is not available"},
  };
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  lvm *vm;
  write_file(dir, "s.lua",
             "return {\n"
             "  os_execute = function() return os.execute('true') end,\n"
             "  io_open = function() return io.open('/etc/passwd') end,\n"
             "  debug = function() return debug.getinfo(1) end,\n"
             "  package = function() return package.loaded end,\n"
             "  dofile = function() return dofile('/etc/passwd') end,\n"
             "  loadfile = function() return loadfile('/etc/passwd') end,\n"
             "  dump = function() return string.dump(function() end) end,\n"
             "  binary = function() return assert(load('\\27Lua\\84\\0')) end,\n"
             "  binary_mode = function() return assert(load('\\27Lua\\84\\0', 'x', 'b')) end,\n"
             "  gc = function() return collectgarbage() end,\n"
             "  count = function() return type(collectgarbage('count')) end,\n"
             "  new_global = function() counter = 1 end,\n"
             "  read_global = function() return undefined_thing end,\n"
             "  unfreeze = function() setmetatable(_G, nil) end,\n"
             "  require_os = function() return require('os') end,\n"
             "  getenv = function() return os.getenv('HOME') end,\n"
             "  text_load = function() return load('return 6 * 7')() end,\n"
             "  env_load = function() return load('return x', 'c', 't', {x = 5})() end,\n"
             "  rawset_ok = function() return rawequal(_G, _G) end,\n"
             "}\n");
  vm = open_vm(dir, &err);
  CHECK(vm != NULL);
  if (!vm) goto out;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = run(vm, cases[i].handler, &c, &err);
    if (rc != TAILOR_ESTRATEGY || !strstr(err.message, cases[i].expect))
      fprintf(stderr, "  case %s: rc %d, \"%s\"\n", cases[i].handler, rc,
              err.message);
    CHECK_INT(rc, TAILOR_ESTRATEGY);
    CHECK_CONTAINS(err.message, cases[i].expect);
  }
  CHECK_INT(run(vm, "count", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "number");
  CHECK_INT(run(vm, "text_load", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "42");
  CHECK_INT(run(vm, "env_load", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "5");
  lvm_free(vm);
out:
  remove_tree(dir);
}

/* One handler changing what every strategy of the thread shares would
   change it for the rest of the state's life: writes to the libraries, the
   API and the globals fail, rawset included, and the tables still read. */
static void test_shared_tables_read_only(void) {
  static const struct {
    const char *handler, *expect;
  } cases[] = {
      {"format", "w.lua:4: assignment to read-only field 'string.format'"},
      {"api", "assignment to read-only field 'tailor.name'"},
      {"api_new", "assignment to read-only field 'tailor.extra'"},
      {"nested", "assignment to read-only field 'tailor.nested.value'"},
      {"libs", "assignment to read-only field 'math.pi'"},
      {"table_lib", "assignment to read-only field 'table.insert'"},
      {"utf8", "assignment to read-only field 'utf8.char'"},
      {"coroutine", "assignment to read-only field 'coroutine.wrap'"},
      {"os", "assignment to read-only field 'os.time'"},
      {"global", "assignment to read-only global 'print'"},
      {"via_G", "assignment to read-only global 'string'"},
      {"via_ENV", "assignment to read-only global 'tailor'"},
      {"new_via_G", "assignment to undeclared global 'leak'"},
      {"rawset_G", "rawset: table '_G' is read-only"},
      {"rawset_string", "rawset: table 'string' is read-only"},
      {"rawset_api", "rawset: table 'tailor' is read-only"},
      {"rawset_nested", "rawset: table 'tailor.nested' is read-only"},
      {"insert", "assignment to read-only"},
      {"loaded", "assignment to read-only field 'string.format'"},
      {"unprotect", "protected metatable"},
      {"string_meta", "attempt to index"},
  };
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  lvm *vm;
  write_file(dir, "w.lua",
             "local M = { count = 0 }\n"
             "M.check = function()\n"
             "  return string.format('%d', 42) .. ' ' .. tailor.name .. ' ' .. tailor.nested.value end\n"
             "M.format = function() string.format = nil end\n"
             "M.api = function() tailor.name = 'hijacked' end\n"
             "M.api_new = function() tailor.extra = 1 end\n"
             "M.nested = function() tailor.nested.value = 8 end\n"
             "M.libs = function() math.pi = 3 end\n"
             "M.table_lib = function() table.insert = nil end\n"
             "M.utf8 = function() utf8.char = nil end\n"
             "M.coroutine = function() coroutine.wrap = nil end\n"
             "M.os = function() os.time = nil end\n"
             "M.global = function() print = nil end\n"
             "M.via_G = function() _G.string = {} end\n"
             "M.via_ENV = function() _ENV.tailor = {} end\n"
             "M.new_via_G = function() _G.leak = 1 end\n"
             "M.rawset_G = function() rawset(_G, 'leak', 1) end\n"
             "M.rawset_string = function() rawset(string, 'format', print) end\n"
             "M.rawset_api = function() rawset(tailor, 'name', 'x') end\n"
             "M.rawset_nested = function() rawset(tailor.nested, 'value', 9) end\n"
             "M.insert = function() table.insert(string, 'x') end\n"
             "M.loaded = function() load('string.format = nil')() end\n"
             "M.unprotect = function() setmetatable(string, nil) end\n"
             "M.string_meta = function() getmetatable('').__index.format = nil end\n"
             "M.leaked = function() return leak end\n"
             "M.reads = function()\n"
             "  local n = 0\n"
             "  for k, v in pairs(string) do n = n + 1 end\n"
             "  assert(n > 10 and _G._G == _G and _G.string == string)\n"
             "  assert(('x'):rep(3) == 'xxx' and getmetatable(string) ~= nil)\n"
             "  local seen = {}\n"
             "  for k in pairs(_G) do seen[k] = true end\n"
             "  assert(seen.string and seen.tailor and seen.print)\n"
             "  M.count = M.count + 1 -- the file's own table stays writable\n"
             "  local mine = setmetatable({}, { __index = string })\n"
             "  mine.extra = 1\n"
             "  return n > 10 and M.count\n"
             "end\n"
             "return M\n");
  vm = open_vm(dir, &err);
  CHECK(vm != NULL);
  if (!vm) goto out;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = run(vm, cases[i].handler, &c, &err);
    if (rc != TAILOR_ESTRATEGY || !strstr(err.message, cases[i].expect))
      fprintf(stderr, "  case %s: rc %d, \"%s\"\n", cases[i].handler, rc,
              err.message);
    CHECK_INT(rc, TAILOR_ESTRATEGY);
    CHECK_CONTAINS(err.message, cases[i].expect);
    /* Whatever the handler tried, the next one sees the tables intact. */
    CHECK_INT(run(vm, "check", &c, &err), TAILOR_OK);
    CHECK_STR(c.out, "42 test-host 7");
  }
  CHECK_INT(run(vm, "leaked", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "read of undeclared global 'leak'");
  CHECK_INT(run(vm, "reads", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "1");
  CHECK_INT(run(vm, "reads", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "2");
  lvm_free(vm);
out:
  remove_tree(dir);
}

static void test_os_subset_and_print(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  log_capture logs = {0};
  lvm_config cfg = test_config(dir);
  lvm *vm;
  write_file(dir, "t.lua",
             "return {\n"
             "  clock = function()\n"
             "    assert(type(os.time()) == 'number' and os.time() > 1600000000)\n"
             "    assert(os.time({year = 2020, month = 1, day = 1, hour = 12}) > 0)\n"
             "    assert(os.clock() >= 0)\n"
             "    return os.date('!%Y-%m-%d', 86400)\n"
             "  end,\n"
             "  say = function() print('hello', 42, nil, true) return 'said' end,\n"
             "  api = function() return tailor.name end,\n"
             "}\n");
  cfg.log = capture_log;
  cfg.log_ud = &logs;
  cfg.api_ud = (void *)"shop-api";
  vm = lvm_new(&cfg, &err);
  CHECK(vm != NULL);
  if (!vm) goto out;
  CHECK_INT(run(vm, "clock", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "1970-01-02");
  CHECK_INT(run(vm, "say", &c, &err), TAILOR_OK);
  CHECK_INT(logs.calls, 1);
  CHECK_INT(logs.level, TAILOR_LOG_INFO);
  CHECK_STR(logs.last, "hello\t42\tnil\ttrue");
  CHECK_INT(run(vm, "api", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "shop-api");
  lvm_free(vm);

  /* Without a log, print is dropped, not an error. */
  cfg.log = NULL;
  vm = lvm_new(&cfg, &err);
  CHECK(vm != NULL);
  if (vm) {
    CHECK_INT(run(vm, "say", &c, &err), TAILOR_OK);
    CHECK_STR(c.out, "said");
  }
  lvm_free(vm);
out:
  remove_tree(dir);
}

static void test_open_api(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  lvm_config cfg = test_config(dir);
  lvm *vm;
  /* The API is there while the files load, and frozen with the rest. */
  write_file(dir, "a.lua",
             "local name = tailor.name\n"
             "return { name = function() return name end }\n");
  vm = lvm_new(&cfg, &err);
  CHECK(vm != NULL);
  lvm_free(vm);

  cfg.open_api = open_failing_api;
  memset(&err, 0, sizeof err);
  vm = lvm_new(&cfg, &err);
  CHECK(vm == NULL);
  CHECK_INT(err.code, TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "api refused to open");

  cfg.open_api = NULL; /* no API: reading `tailor` is an undeclared global */
  vm = lvm_new(&cfg, &err);
  CHECK(vm == NULL);
  CHECK_CONTAINS(err.message, "a.lua:1: read of undeclared global 'tailor'");
  remove_tree(dir);
}

static void test_random_is_deterministic(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c1, c2;
  lvm *a, *b;
  write_file(dir, "r.lua",
             "return { roll = function()\n"
             "  return math.random(1, 1000000) .. ',' .. math.random(1, 1000000)\n"
             "end }\n");
  a = open_vm(dir, &err);
  b = open_vm(dir, &err);
  CHECK(a && b);
  if (a && b) {
    CHECK_INT(run(a, "roll", &c1, &err), TAILOR_OK);
    CHECK_INT(run(b, "roll", &c2, &err), TAILOR_OK);
    CHECK_STR(c1.out, c2.out);
  }
  lvm_free(a);
  lvm_free(b);
  remove_tree(dir);
}

/*
** ** require
*/
static void test_require(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  tailor_error err;
  call c;
  lvm *vm;
  write_file(dir, "lib/count.lua", "return { loads = 0 }\n");
  write_file(dir, "lib/util.lua", /* a module's table is its own: writable */
             "local count = require 'lib.count'\n"
             "count.loads = count.loads + 1\n"
             "return { double = function(x) return 2 * x end }\n");
  write_file(dir, "lib/broken.lua", "local x = 1\nerror('module went wrong')\n");
  write_file(dir, "lib/syntax.lua", "return {\n  = 1\n}\n");
  write_file(dir, "lib/loop.lua", "return require 'lib.loop'\n");
  write_file(dir, "secret.txt", "return 'outside'\n");
  write_file(dir, "main.lua",
             "local util = require 'lib.util'\n"
             "return {\n"
             "  twice = function()\n"
             "    local a, b = require 'lib.util', require('lib.util')\n"
             "    assert(a == b and a == util)\n"
             "    return require('lib.count').loads .. ':' .. util.double(21)\n"
             "  end,\n"
             "  up = function() return require '../secret' end,\n"
             "  slash = function() return require 'lib/util' end,\n"
             "  dotted = function() return require '.hidden' end,\n"
             "  odd = function() return require 'lib.util lua' end,\n"
             "  missing = function() return require 'lib.nothing' end,\n"
             "  broken = function() return require 'lib.broken' end,\n"
             "  syntax = function() return require 'lib.syntax' end,\n"
             "  loop = function() return require 'lib.loop' end,\n"
             "}\n");
  vm = open_vm(dir, &err);
  CHECK(vm != NULL);
  if (!vm) {
    fprintf(stderr, "  %s\n", err.message);
    goto out;
  }
  CHECK(!lvm_has_handler(vm, "double")); /* modules are not strategy files */
  CHECK_INT(run(vm, "twice", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "1:42");
  CHECK_INT(run(vm, "up", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "main.lua:8: invalid module name '../secret'");
  CHECK_INT(run(vm, "slash", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "invalid module name");
  CHECK_INT(run(vm, "dotted", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "invalid module name");
  CHECK_INT(run(vm, "odd", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "invalid module name");
  CHECK_INT(run(vm, "missing", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message,
                 "main.lua:12: module 'lib.nothing' not found in strategies folder");
  CHECK_INT(run(vm, "broken", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "lib/broken.lua:2: module went wrong");
  CHECK_INT(run(vm, "syntax", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "lib/syntax.lua:2:");
  CHECK_INT(run(vm, "loop", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "circular require");
  /* A failed module is not cached as loaded: it fails the same way again. */
  CHECK_INT(run(vm, "broken", &c, &err), TAILOR_ESTRATEGY);
  CHECK_CONTAINS(err.message, "module went wrong");
  CHECK_INT(run(vm, "twice", &c, &err), TAILOR_OK);
  CHECK_STR(c.out, "1:42");
  lvm_free(vm);
out:
  remove_tree(dir);
}

/*
** ** lvm_check_dir and lvm_dir_signature
*/
typedef struct reports {
  int calls, null_file;
  char files[256];
  char text[1024];
} reports;

static void collect_report(void *ud, const char *file, const char *msg) {
  reports *r = ud;
  size_t n = strlen(r->text);
  r->calls++;
  if (!file) r->null_file++;
  else strncat(r->files, file, sizeof r->files - strlen(r->files) - 2),
       strcat(r->files, " ");
  snprintf(r->text + n, sizeof r->text - n, "%s|", msg);
}

static void test_check_dir(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  reports r = {0};
  lvm_config cfg = test_config("ignored");
  write_file(dir, "a_bad.lua", "return {\n  x = ,\n}\n");
  write_file(dir, "b_good.lua", "return { recommend = function() end }\n");
  write_file(dir, "c_bad.lua",
             "local t = {}\n"
             "t.x = 1\n"
             "error('refusing to load')\n"
             "return t\n");
  CHECK_INT(lvm_check_dir(dir, &cfg, collect_report, &r), 2);
  CHECK_INT(r.calls, 2);
  CHECK_STR(r.files, "a_bad.lua c_bad.lua ");
  CHECK_CONTAINS(r.text, "a_bad.lua:2:");
  CHECK_CONTAINS(r.text, "c_bad.lua:3: refusing to load");

  /* The same folder cannot be opened as an lvm: it stops at the first. */
  {
    tailor_error err;
    lvm *vm = open_vm(dir, &err);
    CHECK(vm == NULL);
    CHECK_CONTAINS(err.message, "a_bad.lua:2:");
  }

  memset(&r, 0, sizeof r);
  CHECK_INT(lvm_check_dir("/nonexistent/strategies", &cfg, collect_report, &r),
            -1);
  CHECK_INT(r.null_file, 1);
  CHECK_CONTAINS(r.text, "/nonexistent/strategies");
  CHECK_INT(lvm_check_dir(dir, NULL, NULL, NULL), 2);
  remove_tree(dir);
}

static void test_dir_signature(void) {
  char buf[512];
  const char *dir = make_dir(buf, sizeof buf);
  uint64_t s1, s2, s3, s4, s5;
  write_file(dir, "a.lua", "return {}\n");
  write_file(dir, "lib/m.lua", "return {}\n");
  s1 = lvm_dir_signature(dir);
  CHECK(s1 != 0);
  CHECK(lvm_dir_signature(dir) == s1); /* stable */
  write_file(dir, "notes.txt", "not lua");
  CHECK(lvm_dir_signature(dir) == s1); /* only *.lua counts */
  write_file(dir, "a.lua", "return { }\n");
  s2 = lvm_dir_signature(dir);
  CHECK(s2 != s1);
  CHECK(lvm_dir_signature(dir) == s2);
  write_file(dir, "b.lua", "return {}\n");
  s3 = lvm_dir_signature(dir);
  CHECK(s3 != s2);
  write_file(dir, "lib/m.lua", "return {1}\n"); /* subfolders count too */
  s4 = lvm_dir_signature(dir);
  CHECK(s4 != s3);
  write_file(dir, "lib/n.lua", "return {}\n");
  s5 = lvm_dir_signature(dir);
  CHECK(s5 != s4);
  CHECK(lvm_dir_signature("/nonexistent/strategies") == 0);
  CHECK(lvm_dir_signature(NULL) == 0);
  remove_tree(dir);
}

int main(void) {
  mkdir(tmp_root(), 0700);
  RUN(test_handlers_from_two_files);
  RUN(test_no_folder);
  RUN(test_duplicate_handler);
  RUN(test_load_errors);
  RUN(test_error_messages);
  RUN(test_budget);
  RUN(test_budget_armed_late);
  RUN(test_hostile_corners);
  RUN(test_scans_and_time_limit);
  RUN(test_patterns_under_budget);
  RUN(test_patterns_match_stock);
  RUN(test_not_reentrant);
  RUN(test_memory_cap);
  RUN(test_small_blocks);
  RUN(test_kept_blocks_capped);
  RUN(test_tiny_memory_limit);
  RUN(test_sandbox_refuses);
  RUN(test_shared_tables_read_only);
  RUN(test_os_subset_and_print);
  RUN(test_open_api);
  RUN(test_random_is_deterministic);
  RUN(test_require);
  RUN(test_whole_deep);
  RUN(test_check_dir);
  RUN(test_dir_signature);
  return CHECK_DONE();
}
