/*
** lvm.c: sandboxed Lua 5.4 states that run merchant strategies.
**
** Three fences, each on a hook Lua offers: a counting allocator that refuses
** to grow past the cap (memory errors, not a dead process); a count hook
** that charges each call's instruction budget, set once the call has run a
** few milliseconds (lwatch.h: the hook costs every instruction, and most
** calls are over sooner); and globals built from an
** allow-list, with text-only `load`, a `require` confined to the strategy
** folder, and _G frozen.  Handler values live in a registry table, their
** names and files in a C array, so finding one never allocates in Lua.
**
** Two decisions to know before changing the fences:
**
** Pattern matching is charged to the budget.  string.find, match, gmatch
** and gsub backtrack inside one C call that the count hook never sees, and
** `("a"):rep(3000):find(".-.-.-.-.-b")` held a thread for minutes.  Limits
** on the pattern alone cannot be sound without refusing ordinary patterns:
** two '-' items on 3,000 bytes are already ~4.5e9 steps, one '-' on a
** megabyte 1e12, and "ab?" patterns grow as 2^n.  So the sandbox replaces
** the four functions (in the string table, which is also what `s:find`
** reaches through the string metatable) with lmatch.c: Lua 5.4's matcher
** semantics, each step (an item entered, a character tested, a byte
** compared) charged as one instruction through lvm_charge.  A pathological
** pattern ends in the usual budget error within the call's budget
** (milliseconds at the default); an ordinary one costs no more than the
** same search written as a Lua loop.  Named limits: LMATCH_MAX_DEPTH,
** LMATCH_MAX_CAPTURES and LMATCH_CHARGE_EVERY in lmatch.h, the budget here.
**
** Shared tables are read-only.  One state serves every strategy file for
** the thread's life, so `string.format = nil` or `tailor.trending = f` in
** one handler would change the others.  A metatable cannot catch writes to
** fields that exist, so strategies never hold the real tables: each table
** reachable from the globals is referred to through an empty proxy whose
** __index is the real table (a table, so reads stay in the VM's fast path),
** whose __newindex raises, whose __pairs walks the real table and whose
** __metatable hides it.  `rawset` refuses the proxies, the string metatable
** is protected, and chunks get _G's proxy as their environment.  rawget and
** next see an empty table.  Tables a strategy makes itself (its module
** tables, what it requires) stay writable.
*/
#include "lvm.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "lmatch.h"
#include "lwatch.h"

#define LVM_RANDOM_SEED 0x7461696c /* "tail": the same decisions every run */

typedef struct handler {
  char *name, *file; /* file: where it is defined ("recommend.lua") */
} handler;

typedef struct request {
  void *ptr;
  size_t osize, nsize;
} request;

/*
** Small blocks (Lua's strings, table parts, closures, most under 128
** bytes) come from free lists by size class, carved from slabs the state
** owns and frees with it.  With glibc's malloc a decision spent about a
** fifth of its time in malloc's slow paths (unlink, consolidate), fed by
** the collector's bursts of frees, which its small per-thread caches do
** not hold.  Lua gives the block's size on every realloc and free, so a
** block needs no header: a size of at most POOL_MAX is always a pool
** block.  Under AddressSanitizer a free block (and a slab's unused part)
** is poisoned and a block in use unpoisoned to its exact size, so reads
** past the end or after a free are still caught.  A free block stays in
** its class until the state closes, so the cap counts the slabs, free
** blocks included (see lvm_alloc): it bounds what the state takes from the
** process, not only what its live objects take.
*/
#if defined(__SANITIZE_ADDRESS__)
#define POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_ASAN 1
#endif
#endif
#ifdef POOL_ASAN
#include <sanitizer/asan_interface.h>
#define POOL_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define POOL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POOL_POISON(p, n) ((void)(p), (void)(n))
#define POOL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif
#define POOL_STEP 16
#define POOL_MAX 256
#define POOL_CLASSES (POOL_MAX / POOL_STEP)
#define POOL_SLAB (64 * 1024)

typedef struct pool {
  void *free[POOL_CLASSES]; /* each block's first word links the next */
  char *at, *end;           /* the current slab's unused part */
  void *slabs;              /* each slab's first word links the previous */
  size_t slab_bytes;        /* POOL_SLAB per slab */
} pool;

struct lvm {
  lua_State *L;
  char *dir; /* strategy folder, or NULL */
  void (*open_api)(lua_State *L, void *ud);
  void *api_ud;
  void (*log)(void *ud, int level, const char *msg);
  void *log_ud;
  /* memory */
  pool pool;
  size_t used, limit;
  size_t large; /* bytes of the blocks in use that are not pooled */
  int mem_hit;     /* a refusal that reached the strategy as an error */
  int refusing;    /* the last request was refused... */
  request refused; /* ...and this is it */
  /* time */
  long budget, remaining;
  long time_limit_ms; /* wall-clock, per call; the call's start is watch.began */
  long unclocked;     /* steps charged from C since the clock was last read */
  int exhausted;
  char budget_msg[200];
  lwatch watch; /* sets the budget's hook on a call that runs long */
  /* the running call */
  int running;
  uint64_t calls; /* lvm_pcall calls so far */
  void *ud;
  const char *file; /* strategy file of the running call, or NULL */
  handler *handlers; /* handlers[i] is value i + 1 of the registry table */
  size_t nhandlers, cap;
};

static const char handlers_key = 'h'; /* registry: handler values by index */
static const char modules_key = 'm';  /* registry: modules by name */
static const char loading_mark = 'l'; /* a module whose chunk is running */
static const char readonly_key = 'r'; /* registry: read-only proxy -> name */

/*
** ** Memory
*/
static inline int pooled(size_t n) { return n <= POOL_MAX; }
static inline size_t pool_class(size_t n) { return (n + POOL_STEP - 1) / POOL_STEP - 1; }

static void *pool_get(pool *p, size_t n) {
  size_t c = pool_class(n), size = (c + 1) * POOL_STEP;
  void *b = p->free[c];
  if (b) {
    POOL_UNPOISON(b, sizeof b);
    memcpy(&p->free[c], b, sizeof b);
  } else {
    if ((size_t)(p->end - p->at) < size) {
      char *slab = malloc(POOL_SLAB);
      if (!slab) return NULL;
      memcpy(slab, &p->slabs, sizeof p->slabs);
      p->slabs = slab;
      p->slab_bytes += POOL_SLAB;
      p->at = slab + POOL_STEP; /* the link, padded to keep blocks aligned */
      p->end = slab + POOL_SLAB;
      POOL_POISON(p->at, (size_t)(p->end - p->at));
    }
    b = p->at;
    p->at += size;
  }
  POOL_POISON(b, size);
  POOL_UNPOISON(b, n);
  return b;
}

static void pool_put(pool *p, void *b, size_t n) {
  size_t c = pool_class(n);
  POOL_UNPOISON(b, sizeof b);
  memcpy(b, &p->free[c], sizeof b);
  POOL_POISON(b, (c + 1) * POOL_STEP);
  p->free[c] = b;
}

static void pool_release(pool *p) {
  while (p->slabs) {
    void *next;
    memcpy(&next, p->slabs, sizeof next);
    free(p->slabs);
    p->slabs = next;
  }
}

/* Block ptr of old bytes (0: none) made nsize bytes (> 0), wherever it
   belongs: the pool or malloc. */
static void *move_block(pool *p, void *ptr, size_t old, size_t nsize) {
  if (!pooled(nsize) && (!ptr || !pooled(old))) return realloc(ptr, nsize);
  if (ptr && pooled(nsize) && pooled(old) && pool_class(old) == pool_class(nsize)) {
    POOL_POISON(ptr, (pool_class(old) + 1) * POOL_STEP);
    POOL_UNPOISON(ptr, nsize);
    return ptr;
  }
  void *b = pooled(nsize) ? pool_get(p, nsize) : malloc(nsize);
  if (!b || !ptr) return b;
  memcpy(b, ptr, old < nsize ? old : nsize);
  if (pooled(old))
    pool_put(p, ptr, old);
  else
    free(ptr);
  return b;
}

/* What granting a grow (nsize > old) adds to the bytes the state holds: a
   slab when the pool has no block of the class at hand, or a malloc'd
   block (a pooled old block stays held, on its free list). */
static size_t held_growth(const pool *p, void *ptr, size_t old, size_t nsize) {
  if (!pooled(nsize)) return pooled(old) ? nsize : nsize - old;
  size_t c = pool_class(nsize);
  if (ptr && pool_class(old) == c) return 0;
  return p->free[c] || (size_t)(p->end - p->at) >= (c + 1) * POOL_STEP ? 0 : POOL_SLAB;
}

#define LVM_CHARGED_GROW 65536 /* grows from this size on are charged */

static void *lvm_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  lvm *vm = ud;
  size_t old = ptr ? osize : 0; /* without a block, osize is a type tag */
  if (nsize == 0) {
    if (ptr && pooled(old))
      pool_put(&vm->pool, ptr, old);
    else
      free(ptr);
    vm->used -= old;
    if (!pooled(old)) vm->large -= old;
    return NULL;
  }
  /* Shrinks always pass: refusing them would make Lua fail while it gives
     memory back.  A grow keeps under the cap both the objects' bytes and
     the bytes the state holds, the free blocks kept in their size class
     counted: without the second, a strategy that filled its cap with
     strings of one size, then of the next, held many times its cap. */
  size_t held = vm->pool.slab_bytes + vm->large;
  if (nsize <= old ||
      (nsize - old <= vm->limit - vm->used && held <= vm->limit &&
       held_growth(&vm->pool, ptr, old, nsize) <= vm->limit - held)) {
    void *p = move_block(&vm->pool, ptr, old, nsize);
    if (p) {
      /* Work in C on large strings and tables (s:upper() of 16 MiB costs
         one instruction): a step per 64 bytes grown, off the budget; the
         next count hook sees it spent. */
      if (nsize > old && nsize - old >= LVM_CHARGED_GROW && vm->running)
        vm->remaining -= (long)((nsize - old) / 64);
      vm->used = vm->used - old + nsize;
      vm->large = vm->large - (pooled(old) ? 0 : old) + (pooled(nsize) ? 0 : nsize);
      vm->refusing = 0;
      return p;
    }
  }
  /* Lua answers a refusal with an emergency collection, then asks for the
     same block again.  Only when that retry fails too does the strategy see
     an error, so only then is the cap hit: garbage near the cap is not. */
  if (vm->refusing && vm->refused.ptr == ptr && vm->refused.osize == osize &&
      vm->refused.nsize == nsize)
    vm->mem_hit = 1;
  vm->refused = (request){ptr, osize, nsize};
  vm->refusing = 1;
  return NULL;
}

/*
** ** Instruction budget
**
** The count hook charges the instructions run since its last call.  Once the
** budget is spent the thread (and the main thread) switch to a hook on every
** instruction that raises again, so a strategy that catches the error with
** pcall gets no further than its next instruction.  The hook charges the
** one budget of the lvm whatever thread runs.
**
** On the main thread the hook is set late, by the watchdog (lwatch.h), so
** the budget counts the instructions of a call past its first few
** milliseconds.  Coroutines are counted from their first instruction:
** coroutine.create and coroutine.wrap set the hook on the new thread, as
** the watchdog's signal reaches only the main one.
**
** Not every instruction costs the same: `a == b` on two distinct 24 MiB
** strings compares them whole, `s + 0` on a long string parses it, and
** the budget counts each as one.  So the same checks (the hook, every
** LVM_HOOK_STEP instructions, and charges from C, every LVM_HOOK_STEP
** steps) also read the clock: a call past its time limit ends in the same
** error, "file:line: time limit exceeded (5000 ms)".  The check is as late
** as the next hook (the instructions between two hooks are not bounded in
** time, only in count), so the limit is a bound on the order of the
** limit, not an exact deadline.
*/
static void budget_hook(lua_State *L, lua_Debug *ar);

/* Whether the running call is past its time limit. */
static int overtime(const lvm *vm) {
  return (lwatch_now() - vm->watch.began) / 1000000u >= (uint64_t)vm->time_limit_ms;
}

/* Spend the call: the message names `src`:`line` (line <= 0: the file). */
static void exhaust(lvm *vm, const char *src, int line, int late) {
  char where[120];
  if (line > 0) snprintf(where, sizeof where, "%s:%d", src, line);
  else snprintf(where, sizeof where, "%s", vm->file ? vm->file : "strategy");
  vm->exhausted = 1;
  if (late)
    snprintf(vm->budget_msg, sizeof vm->budget_msg, "%s: time limit exceeded (%ld ms)", where,
             vm->time_limit_ms);
  else
    snprintf(vm->budget_msg, sizeof vm->budget_msg,
             "%s: instruction budget exhausted (%ld instructions)", where, vm->budget);
}

/* The watchdog's arming (it runs in its signal handler), also at a call's
   start and on a new coroutine.  Past the budget the hook already raises
   on every instruction (and a new coroutine copies that): left as it is. */
static void arm_budget(lua_State *L) {
  if (!lvm_of(L)->exhausted) lua_sethook(L, budget_hook, LUA_MASKCOUNT, LVM_HOOK_STEP);
}

/* Past the budget, every thread of the call raises again on its next
   instruction. */
static int raise_exhausted(lua_State *L, lvm *vm) {
  lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1);
  if (L != vm->L) lua_sethook(vm->L, budget_hook, LUA_MASKCOUNT, 1);
  lua_pushstring(L, vm->budget_msg);
  return lua_error(L);
}

static void budget_hook(lua_State *L, lua_Debug *ar) {
  lvm *vm = lvm_of(L);
  if (!vm->exhausted) {
    int step = lua_gethookcount(L);
    if (step != LVM_HOOK_STEP) /* a coroutine left raising by a past call */
      lua_sethook(L, budget_hook, LUA_MASKCOUNT, LVM_HOOK_STEP);
    vm->remaining -= step;
    int late = vm->remaining > 0;
    if (late && !overtime(vm)) return;
    /* luaL_error would name the caller (level 1); the loop is at level 0,
       always a Lua function with line information (count hooks run in no
       other kind, and every chunk is compiled from text). */
    lua_getinfo(L, "Sl", ar);
    exhaust(vm, ar->short_src, ar->currentline, late);
  }
  raise_exhausted(L, vm);
}

/* Work done in C (the pattern matcher) is charged here; the message names
   the nearest Lua line below the C function (its caller may be C too, as
   in pcall(string.find, ...)), found without allocating. */
int lvm_spend(lua_State *L, long steps) {
  lvm *vm = lvm_of(L);
  lua_Debug ar;
  int level = 1, line = -1;
  if (!vm || !vm->running) return 0; /* not a sandbox's state, or no call */
  if (!vm->exhausted) {
    vm->remaining -= steps;
    int late = vm->remaining > 0;
    if (late) { /* the clock, as often as the hook would read it */
      vm->unclocked += steps;
      if (vm->unclocked < LVM_HOOK_STEP) return 0;
      vm->unclocked = 0;
      if (!overtime(vm)) return 0;
    }
    while (line <= 0 && lua_getstack(L, level++, &ar))
      if (lua_getinfo(L, "Sl", &ar)) line = ar.currentline;
    exhaust(vm, ar.short_src, line, late);
  }
  return 1;
}

void lvm_charge(lua_State *L, long steps) {
  if (lvm_spend(L, steps)) raise_exhausted(L, lvm_of(L));
}

const char *lvm_budget_message(lua_State *L) {
  lvm *vm = lvm_of(L);
  return vm && vm->exhausted ? vm->budget_msg : NULL;
}

/*
** ** The sandbox's own versions of base functions
*/

/* Run the wrapped original (upvalue 1, a C function without upvalues of
   its own) in this call's frame, so its errors read as if it had been
   called directly ("file:line: bad argument #1 to 'len'"). */
static int as_original(lua_State *L) {
  return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/* Call the wrapped original (upvalue 1) with the arguments on the stack. */
static int call_original(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* load(chunk [, name [, mode [, env]]]) with mode forced to text: bytecode
   can break the VM's invariants, so it never gets in. */
static int sb_load(lua_State *L) {
  if (lua_gettop(L) < 4) lua_settop(L, 3); /* no env: the sandbox globals */
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  return call_original(L);
}

/* print(...) goes to the host's log, one line at TAILOR_LOG_INFO. */
static int sb_print(lua_State *L) {
  lvm *vm = lvm_of(L);
  int n = lua_gettop(L);
  luaL_Buffer b;
  if (!vm->log) return 0;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  vm->log(vm->log_ud, TAILOR_LOG_INFO, lua_tostring(L, -1));
  return 0;
}

/* collectgarbage("count") only: the other options let a strategy spend
   unbounded time in the collector or change its pacing for every call. */
static int sb_collectgarbage(lua_State *L) {
  const char *opt = luaL_optstring(L, 1, "collect");
  if (strcmp(opt, "count") != 0)
    return luaL_error(L, "collectgarbage('%s') is not allowed in strategies",
                      opt);
  lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT) +
                        (lua_Number)lua_gc(L, LUA_GCCOUNTB) / 1024);
  return 1;
}

/* string.rep and table.move are C loops the count hook cannot see: an empty
   string repeated 1e15 times, or a move over 1e15 slots, would hang the
   thread.  Bound both before calling the original. */
#define LVM_MAX_MOVE 10000000 /* elements one table.move may touch */

static int sb_rep(lua_State *L) {
  size_t len, seplen;
  luaL_checklstring(L, 1, &len);
  lua_Integer n = luaL_checkinteger(L, 2);
  luaL_optlstring(L, 3, "", &seplen);
  if (n > 0 && len + seplen == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  if (n > 0 && (double)n * (double)(len + seplen) > (double)lvm_of(L)->limit)
    return luaL_error(L, "string.rep: result larger than the memory cap");
  return call_original(L);
}

/*
** table.insert, remove, sort and concat loop in C over a length that a
** __len may make up (math.maxinteger: the loop never ends, no instruction
** runs, nothing is allocated).  A host list is made whole first (its own
** __len goes with its metatable, lvm_whole); a strategy's own __len is
** refused; the loop's length is charged to the budget.
*/
static lua_Integer plain_len(lua_State *L, const char *fn) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lvm_whole(L, 1);
  if (luaL_getmetafield(L, 1, "__len") != LUA_TNIL)
    luaL_error(L, "table.%s: not on a table with a __len metamethod", fn);
  return (lua_Integer)lua_rawlen(L, 1);
}

static int sb_insert(lua_State *L) {
  lvm_charge(L, (long)plain_len(L, "insert"));
  return call_original(L);
}

static int sb_remove(lua_State *L) {
  lvm_charge(L, (long)plain_len(L, "remove"));
  return call_original(L);
}

static int sb_sort(lua_State *L) {
  lua_Integer n = plain_len(L, "sort");
  long log = 1;
  for (lua_Integer k = n; k > 1; k >>= 1) log++;
  lvm_charge(L, (long)n * log);
  return call_original(L);
}

static int sb_concat(lua_State *L) {
  lua_Integer i = luaL_optinteger(L, 3, 1), j;
  if (lua_isnoneornil(L, 4)) { /* to the end: a length of its own */
    j = plain_len(L, "concat");
    lua_settop(L, 3);
    if (lua_isnil(L, 2)) { /* the default separator, as Lua's */
      lua_pushliteral(L, "");
      lua_replace(L, 2);
    }
    lua_pushinteger(L, i);
    lua_replace(L, 3);
    lua_pushinteger(L, j);
  } else {
    j = luaL_checkinteger(L, 4);
  }
  if (j >= i && (lua_Unsigned)j - (lua_Unsigned)i >= LVM_MAX_MOVE)
    return luaL_error(L, "table.concat: more than %d elements", LVM_MAX_MOVE);
  if (j >= i) lvm_charge(L, (long)(j - i + 1));
  return call_original(L);
}

static int sb_move(lua_State *L) {
  lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
  if (e >= f && (lua_Unsigned)e - (lua_Unsigned)f >= LVM_MAX_MOVE)
    return luaL_error(L, "table.move: more than %d elements", LVM_MAX_MOVE);
  return call_original(L);
}

/* xpcall(f, msgh, ...): Lua calls a message handler where the error is
   raised, and the budget's error is raised inside its hook, where Lua runs
   no hooks: a handler that looped there would never be stopped.  So past
   the budget the strategy's handler is not called and the error stays. */
static int xpcall_handler(lua_State *L) {
  if (lvm_of(L)->exhausted) return 1;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/* Lua's xpcall (lbaselib.c), with the handler wrapped as above; a
   continuation, so the function may yield. */
static int xpcall_done(lua_State *L, int status, lua_KContext extra) {
  if (status != LUA_OK && status != LUA_YIELD) {
    lua_pushboolean(L, 0);
    lua_pushvalue(L, -2);
    return 2;
  }
  return lua_gettop(L) - (int)extra;
}

static int sb_xpcall(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, xpcall_handler, 1);
  lua_replace(L, 2);
  lua_pushboolean(L, 1);
  lua_pushvalue(L, 1);
  lua_rotate(L, 3, 2); /* true and the function below its arguments */
  return xpcall_done(L, lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_done), 2);
}

/* coroutine.create and coroutine.wrap: the new thread is counted from its
   first instruction, as the watchdog's signal arms the main thread only. */
static int sb_cocreate(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  call_original(L);
  arm_budget(lua_tothread(L, -1));
  return 1;
}

static int sb_cowrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  call_original(L);
  lua_getupvalue(L, -1, 1); /* the function's coroutine */
  arm_budget(lua_tothread(L, -1));
  lua_pop(L, 1);
  return 1;
}

/*
** utf8.len, codepoint, offset and the iterator of utf8.codes, and tonumber,
** scan their string in one C call: utf8.len of a 24 MiB string is about
** 100 ms, and a loop of them kept a thread for hours on a budget that
** counted each as one instruction.  Each is charged a step per byte it
** scans (a byte decoded costs about what an instruction does): len and
** codepoint their range, before the scan; offset and the iterator the
** distance they went, after it (one scan is bounded by the string, and
** its result tells how far it went); tonumber a string's length.
*/
static lua_Integer byte_pos(lua_Integer pos, size_t len) { /* Lua's u_posrelat */
  if (pos >= 0) return pos;
  return (size_t)-pos > len ? 0 : (lua_Integer)len + pos + 1;
}

/* Charge the bytes i..j of a string of `len` (clamped to it). */
static void charge_range(lua_State *L, lua_Integer i, lua_Integer j, size_t len) {
  if (i < 1) i = 1;
  if (j > (lua_Integer)len) j = (lua_Integer)len;
  if (j >= i) lvm_charge(L, (long)(j - i + 1));
}

static int sb_utf8_len(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  lua_Integer i = byte_pos(luaL_optinteger(L, 2, 1), len);
  charge_range(L, i, byte_pos(luaL_optinteger(L, 3, -1), len), len);
  return as_original(L);
}

static int sb_utf8_codepoint(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  lua_Integer i = byte_pos(luaL_optinteger(L, 2, 1), len);
  charge_range(L, i, byte_pos(luaL_optinteger(L, 3, i), len), len);
  return as_original(L);
}

static int sb_utf8_offset(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  lua_Integer n = luaL_checkinteger(L, 2);
  lua_Integer i = byte_pos(luaL_optinteger(L, 3, n >= 0 ? 1 : (lua_Integer)len + 1), len);
  int nres = as_original(L);
  lua_Integer at = nres > 0 && lua_isinteger(L, -nres) ? lua_tointeger(L, -nres)
                   : n > 0                             ? (lua_Integer)len + 1
                                                       : 0;
  lvm_charge(L, (long)(at > i ? at - i : i - at) + 1);
  return nres;
}

/* The iterator utf8.codes returns, wrapped (upvalue 1: the original). */
static int sb_codes_step(lua_State *L) {
  size_t len;
  luaL_checklstring(L, 1, &len);
  lua_Integer from = lua_tointeger(L, 2);
  int nres = as_original(L);
  lua_Integer to = nres > 0 ? lua_tointeger(L, -nres) : (lua_Integer)len;
  if (from < 0) from = 0;
  if (from > (lua_Integer)len) from = (lua_Integer)len;
  lvm_charge(L, (long)(to > from ? to - from : 1));
  return nres;
}

static int sb_utf8_codes(lua_State *L) {
  int nres = as_original(L); /* iterator, s, 0 */
  if (nres == 3 && lua_iscfunction(L, -3)) {
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, sb_codes_step, 1);
    lua_replace(L, -4);
  }
  return nres;
}

static int sb_tonumber(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) lvm_charge(L, (long)lua_rawlen(L, 1));
  return as_original(L);
}

/* setmetatable refusing __gc: Lua runs finalizers with hooks off (GCTM), so
   a finalizer would run outside the budget, at any later allocation or in
   lua_close.  An object only gets a finalizer when its metatable has __gc
   as it is set, so checking here is enough. */
static int sb_setmetatable(lua_State *L) {
  lua_settop(L, 2);
  lvm_whole(L, 1); /* a table whose fields wait: made whole, then given away */
  lua_pushliteral(L, "__gc");
  if (lua_type(L, 2) == LUA_TTABLE && lua_rawget(L, 2) != LUA_TNIL)
    return luaL_error(L, "__gc metamethods are not allowed in strategies");
  lua_settop(L, 2);
  return call_original(L);
}

typedef struct chunk_reader {
  FILE *f;
  char buf[4096];
} chunk_reader;

static const char *read_chunk(lua_State *L, void *ud, size_t *size) {
  chunk_reader *r = ud;
  *size = fread(r->buf, 1, sizeof r->buf, r->f);
  return *size ? r->buf : NULL;
}

#define LOAD_MISSING (-1)

/*
** Push the chunk of `rel` (a path inside the strategy folder) compiled as
** text and named "@rel", so its errors read "rel:line: ...".  Returns
** LUA_OK, or a lua_load status or LOAD_MISSING with a message pushed.
*/
static int load_chunk(lua_State *L, const lvm *vm, const char *rel) {
  chunk_reader r;
  int status;
  /* Both strings are pushed before the file is opened: if pushing raises,
     there is no FILE to leak. */
  const char *name = lua_pushfstring(L, "@%s", rel);
  const char *path = lua_pushfstring(L, "%s/%s", vm->dir ? vm->dir : ".", rel);
  if (!vm->dir || !(r.f = fopen(path, "r"))) {
    int missing = !vm->dir || errno == ENOENT || errno == ENOTDIR;
    const char *why = vm->dir ? strerror(errno) : "no strategy folder";
    lua_pop(L, 2);
    lua_pushfstring(L, "%s: %s", rel, why);
    return missing ? LOAD_MISSING : LUA_ERRFILE;
  }
  status = lua_load(L, read_chunk, &r, name, "t"); /* protected inside */
  if (status == LUA_OK && ferror(r.f)) {
    lua_pop(L, 1);
    lua_pushfstring(L, "%s: read error", rel);
    status = LUA_ERRFILE;
  }
  fclose(r.f);
  lua_replace(L, -3); /* the chunk or message over the name; drop the path */
  lua_pop(L, 1);
  return status;
}

static int valid_module_name(const char *s, size_t len) {
  if (len == 0 || strlen(s) != len || s[0] == '.' || s[len - 1] == '.')
    return 0;
  for (const char *p = s; *p; p++) {
    int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
             (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.';
    if (!ok || (p[0] == '.' && p[1] == '.')) return 0;
  }
  return 1;
}

/*
** require(name): "lib.util" is lib/util.lua inside the strategy folder, run
** once and cached in the registry like package.loaded.  Names are checked
** character by character so no path can leave the folder.
*/
static int sb_require(lua_State *L) {
  lvm *vm = lvm_of(L);
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  int status;
  if (!valid_module_name(name, len))
    return luaL_error(L, "invalid module name '%s' (letters, digits, '_', "
                         "'-' and '.' between parts only)", name);
  lua_settop(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &modules_key); /* 2 */
  if (lua_getfield(L, 2, name) != LUA_TNIL) {
    if (lua_touserdata(L, -1) == &loading_mark)
      return luaL_error(L, "circular require of module '%s'", name);
    return 1;
  }
  lua_pop(L, 1);
  luaL_gsub(L, name, ".", "/");
  lua_pushfstring(L, "%s.lua", lua_tostring(L, -1)); /* 4: the file */
  status = load_chunk(L, vm, lua_tostring(L, 4));
  if (status == LOAD_MISSING)
    return luaL_error(L, "module '%s' not found in strategies folder", name);
  if (status != LUA_OK) return lua_error(L);
  lua_pushlightuserdata(L, (void *)&loading_mark);
  lua_setfield(L, 2, name);
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pushnil(L); /* a later require may try again */
    lua_setfield(L, 2, name);
    return lua_error(L);
  }
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, 2, name);
  return 1;
}

/*
** next, rawget, rawlen, getmetatable and pairs see a table whose fields
** wait to be made (__totable, see lvm_whole) made whole, as JSON does: a
** kernel's list shows its rows and no metatable, like any list.  Each is
** Lua's own, written again here rather than wrapped, so its errors name
** the strategy's line and the function as Lua's would.  The sandbox's next
** is lvm_raw_next, which pairs hands out too.
*/
static int sb_rawget(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  lvm_whole(L, 1);
  lua_settop(L, 2);
  lua_rawget(L, 1);
  return 1;
}

static int sb_rawlen(lua_State *L) {
  int t = lua_type(L, 1);
  luaL_argexpected(L, t == LUA_TTABLE || t == LUA_TSTRING, 1, "table or string");
  lvm_whole(L, 1);
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
  return 1;
}

static int sb_getmetatable(lua_State *L) {
  luaL_checkany(L, 1);
  lvm_whole(L, 1);
  if (!lua_getmetatable(L, 1)) {
    lua_pushnil(L);
    return 1;
  }
  luaL_getmetafield(L, 1, "__metatable"); /* returns it when present */
  return 1;
}

static int pairs_done(lua_State *L, int status, lua_KContext k) {
  (void)L, (void)status, (void)k;
  return 3;
}

static int sb_pairs(lua_State *L) {
  luaL_checkany(L, 1);
  lvm_whole(L, 1);
  if (luaL_getmetafield(L, 1, "__pairs") == LUA_TNIL) {
    lua_pushcfunction(L, lvm_raw_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
  } else {
    lua_pushvalue(L, 1);
    lua_callk(L, 1, 3, 0, pairs_done); /* a __pairs may yield */
  }
  return 3;
}

/* rawset refusing the read-only proxies (see "Read-only tables"). */
static int sb_rawset(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lvm_whole(L, 1);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &readonly_key);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) != LUA_TNIL)
    return luaL_error(L, "rawset: table '%s' is read-only in strategies",
                      lua_tostring(L, -1));
  lua_pop(L, 2);
  return call_original(L);
}

/* What the sandbox leaves out of os and string raises an error that names
   it, rather than "attempt to call a nil value". */
static int os_missing(lua_State *L) {
  return luaL_error(L, "os.%s is not available in strategies",
                    luaL_tolstring(L, 2, NULL));
}

static int no_dump(lua_State *L) {
  return luaL_error(L, "string.dump is not available in strategies");
}

/* _G's metamethods: a typo in a strategy is an error, not a silent nil or a
   global that leaks from one call into the next. */
static int undeclared(lua_State *L, const char *what) {
  const char *name = lua_isstring(L, 2) ? lua_tostring(L, 2) : NULL;
  return luaL_error(L, "%s undeclared global '%s'", what,
                    name ? name : luaL_typename(L, 2));
}

static int frozen_index(lua_State *L) { return undeclared(L, "read of"); }

/*
** ** Read-only tables
**
** The proxies described at the top of this file.  Their metamethods find
** the proxy's name and real table in upvalues 1 and 2.
*/
#define READONLY_MESSAGE "the sandbox's tables are read-only"

static int readonly_newindex(lua_State *L) {
  const char *table = lua_tostring(L, lua_upvalueindex(1));
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaL_error(L, "assignment to read-only table '%s'", table);
  return luaL_error(L, "assignment to read-only field '%s.%s'", table,
                    lua_tostring(L, 2));
}

/* _G's: a new name is a typo or a leak between calls, an old one a library
   or the API another strategy relies on. */
static int globals_newindex(lua_State *L) {
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(2)) == LUA_TNIL)
    return undeclared(L, "assignment to");
  return luaL_error(L, "assignment to read-only global '%s'",
                    lua_isstring(L, 2) ? lua_tostring(L, 2) : "?");
}

static int readonly_next(lua_State *L) {
  lua_settop(L, 2);
  if (lua_next(L, lua_upvalueindex(1))) return 2;
  lua_pushnil(L);
  return 1;
}

static int readonly_pairs(lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushcclosure(L, readonly_next, 1);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/*
** Push the proxy of the table at index `real` (absolute), named `name`
** ("_G", "string", "tailor.plugins"); `seen` (absolute) maps each table
** already wrapped to its proxy, so a table reached twice (_G._G) gets one.
** Fields of the real table that hold tables are pointed at their proxies
** (changing existing fields while traversing is allowed).
*/
static void push_proxy(lua_State *L, int real, const char *name, int seen) {
  static const luaL_Reg meta[] = {
      {"__newindex", readonly_newindex}, {"__pairs", readonly_pairs},
      {NULL, NULL}};
  int globals = strcmp(name, LUA_GNAME) == 0, proxy;
  luaL_checkstack(L, 8, "read-only tables nested too deeply");
  lua_pushvalue(L, real);
  if (lua_rawget(L, seen) != LUA_TNIL) return;
  lua_pop(L, 1);
  lua_newtable(L);
  proxy = lua_gettop(L);
  lua_pushvalue(L, real);
  lua_pushvalue(L, proxy);
  lua_rawset(L, seen);
  lua_pushnil(L);
  while (lua_next(L, real)) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      int value = lua_gettop(L);
      const char *field =
          lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      const char *child = globals ? lua_pushstring(L, field)
                                  : lua_pushfstring(L, "%s.%s", name, field);
      push_proxy(L, value, child, seen);
      lua_pushvalue(L, value - 1);
      lua_insert(L, -2);
      lua_rawset(L, real);
      lua_pop(L, 1); /* the child's name */
    }
    lua_pop(L, 1);
  }
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, real);
  lua_setfield(L, -2, "__index");
  lua_pushstring(L, name);
  lua_pushvalue(L, real);
  luaL_setfuncs(L, meta, 2);
  if (globals) {
    lua_pushstring(L, name);
    lua_pushvalue(L, real);
    lua_pushcclosure(L, globals_newindex, 2);
    lua_setfield(L, -2, "__newindex");
  }
  lua_pushliteral(L, READONLY_MESSAGE);
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, proxy);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &readonly_key);
  lua_pushvalue(L, proxy);
  lua_pushstring(L, name);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* Make everything reachable from the globals (at index 1) read-only and
   give chunks _G's proxy as their environment. */
static void freeze(lua_State *L) {
  int seen;
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &readonly_key);
  lua_pushliteral(L, ""); /* the strings' metatable: its __index is string */
  lua_getmetatable(L, -1);
  lua_pushliteral(L, READONLY_MESSAGE);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);
  lua_newtable(L);
  seen = lua_gettop(L);
  push_proxy(L, 1, LUA_GNAME, seen);
  lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
  lua_pop(L, 1);
}

/* Runs in lvm_pcall: builds the globals from the allow-list, then freezes. */
static int open_sandbox(lua_State *L) {
  static const luaL_Reg libs[] = {
      {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string},
      {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
      {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_COLIBNAME, luaopen_coroutine},
      {NULL, NULL}};
  static const luaL_Reg own[] = {
      {"print", sb_print},     {"collectgarbage", sb_collectgarbage},
      {"require", sb_require}, {"xpcall", sb_xpcall},
      {"next", lvm_raw_next},  {"rawget", sb_rawget},
      {"rawlen", sb_rawlen},   {"pairs", sb_pairs},
      {"getmetatable", sb_getmetatable}, {NULL, NULL}};
  static const char *const os_kept[] = {"time", "clock", "date", NULL};
  lvm *vm = lvm_of(L);
  for (const luaL_Reg *lib = libs; lib->name; lib++) {
    luaL_requiref(L, lib->name, lib->func, 1);
    lua_pop(L, 1);
  }
  lua_pushglobaltable(L); /* 1 */
  luaL_setfuncs(L, own, 0);
  lua_getfield(L, 1, "load");
  lua_pushcclosure(L, sb_load, 1);
  lua_setfield(L, 1, "load");
  lua_getfield(L, 1, "setmetatable");
  lua_pushcclosure(L, sb_setmetatable, 1);
  lua_setfield(L, 1, "setmetatable");
  lua_getfield(L, 1, "rawset");
  lua_pushcclosure(L, sb_rawset, 1);
  lua_setfield(L, 1, "rawset");
  lua_pushnil(L);
  lua_setfield(L, 1, "dofile");
  lua_pushnil(L);
  lua_setfield(L, 1, "loadfile");
  lua_getfield(L, 1, LUA_STRLIBNAME);
  lua_pushcfunction(L, no_dump);
  lua_setfield(L, -2, "dump"); /* the one way back to bytecode */
  lua_getfield(L, -1, "rep");
  lua_pushcclosure(L, sb_rep, 1);
  lua_setfield(L, -2, "rep");
  lmatch_open(L, -1); /* find, match, gmatch, gsub under the budget */
  lua_getfield(L, 1, LUA_TABLIBNAME);
  lua_getfield(L, -1, "move");
  lua_pushcclosure(L, sb_move, 1);
  lua_setfield(L, -2, "move");
  static const luaL_Reg table_loops[] = {
      {"insert", sb_insert}, {"remove", sb_remove}, {"sort", sb_sort}, {"concat", sb_concat},
      {NULL, NULL}};
  for (const luaL_Reg *f = table_loops; f->name; f++) {
    lua_getfield(L, -1, f->name);
    lua_pushcclosure(L, f->func, 1);
    lua_setfield(L, -2, f->name);
  }
  static const luaL_Reg utf8_scans[] = {
      {"len", sb_utf8_len}, {"codepoint", sb_utf8_codepoint}, {"offset", sb_utf8_offset},
      {"codes", sb_utf8_codes}, {NULL, NULL}};
  lua_getfield(L, 1, LUA_UTF8LIBNAME);
  for (const luaL_Reg *f = utf8_scans; f->name; f++) {
    lua_getfield(L, -1, f->name);
    lua_pushcclosure(L, f->func, 1);
    lua_setfield(L, -2, f->name);
  }
  lua_getfield(L, 1, "tonumber");
  lua_pushcclosure(L, sb_tonumber, 1);
  lua_setfield(L, 1, "tonumber");
  lua_getfield(L, 1, LUA_COLIBNAME);
  lua_getfield(L, -1, "create");
  lua_pushcclosure(L, sb_cocreate, 1);
  lua_setfield(L, -2, "create");
  lua_getfield(L, -1, "wrap");
  lua_pushcclosure(L, sb_cowrap, 1);
  lua_setfield(L, -2, "wrap");
  lua_getfield(L, 1, LUA_MATHLIBNAME);
  lua_getfield(L, -1, "randomseed");
  lua_pushinteger(L, LVM_RANDOM_SEED);
  lua_call(L, 1, 0);
  lua_settop(L, 1);

  /* The real os library is opened into a table nobody keeps (not through
     requiref, so not in the registry's loaded table either). */
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, luaopen_os);
  lua_call(L, 0, 1);
  for (const char *const *f = os_kept; *f; f++) {
    lua_getfield(L, -1, *f);
    lua_setfield(L, -3, *f);
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, os_missing);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, -2);
  lua_setfield(L, 1, "os");

  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &modules_key);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &handlers_key);
  if (vm->open_api) vm->open_api(L, vm->api_ud);
  lua_settop(L, 1);

  lua_createtable(L, 0, 1); /* the real _G: reads of new names raise */
  lua_pushcfunction(L, frozen_index);
  lua_setfield(L, -2, "__index");
  lua_setmetatable(L, 1);
  freeze(L);
  return 0;
}

/*
** ** States and calls
*/
lvm *lvm_of(lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud); /* shared by every thread of the state */
  return ud;
}

void *lvm_ud(lua_State *L) { return lvm_of(L)->ud; }

lua_State *lvm_state(lvm *vm) { return vm->L; }

size_t lvm_memory(lvm *vm) { return vm->used; }

size_t lvm_memory_limit(lvm *vm) { return vm->limit; }

size_t lvm_memory_held(lvm *vm) { return vm->pool.slab_bytes + vm->large; }

uint64_t lvm_call_serial(lua_State *L) { return lvm_of(L)->calls; }

void lvm_set_view_meta(lua_State *L, const char *tname, const luaL_Reg *fns,
                       const char *locked) {
  if (luaL_getmetatable(L, tname) != LUA_TTABLE) {
    lua_pop(L, 1);
    luaL_newmetatable(L, tname);
    luaL_setfuncs(L, fns, 0);
    lvm_mark_totable(L, -1);
    lua_pushstring(L, locked);
    lua_setfield(L, -2, "__metatable");
  }
  lua_setmetatable(L, -2);
}

int lvm_view_get(lua_State *L) {
  if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL) {
      lua_remove(L, -2);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 0;
}

void lvm_view_keep(lua_State *L) {
  int kept = lvm_view_kept(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, kept - 1);
  lua_rawset(L, kept);
  lua_pop(L, 1);
}

/* Marks the host's metatables whose __totable may run: a strategy's own
   __totable is not called, so no strategy code runs while the host writes
   JSON or walks a table (decide.c keeps pointers into an answer's strings
   meanwhile).  Strategies cannot make a light userdata key, nor reach
   these metatables (getmetatable makes such a table whole and plain). */
static const char totable_mark = 'T';

void lvm_mark_totable(lua_State *L, int mt) {
  mt = lua_absindex(L, mt);
  lua_pushboolean(L, 1);
  lua_rawsetp(L, mt, &totable_mark);
}

int lvm_totable(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (!lua_getmetatable(L, idx)) return 0;
  int ours = lua_rawgetp(L, -1, &totable_mark) == LUA_TBOOLEAN;
  lua_pop(L, 1);
  lua_pushliteral(L, "__totable");
  if (ours && lua_rawget(L, -2) == LUA_TFUNCTION) { /* raw: no __index runs */
    lua_remove(L, -2);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    if (lua_istable(L, -1)) return 1;
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 2); /* the metatable, and the key or what was under it */
  return 0;
}

void lvm_whole(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TTABLE && lvm_totable(L, idx)) lua_pop(L, 1);
}

/* The table at idx whole, and every table within it, keys too, down to
   `depth` levels more: the C stack, not the data, bounds the recursion.
   `seen` (a table at that index) has, for each table walked, the depth it
   was walked with: a cycle ends, and a table reached again by a shorter
   path is walked again deeper.  Each entry is charged to the budget as an
   instruction: a strategy cannot hide a long walk in a plugin call. */
static void whole_deep(lua_State *L, int idx, int seen, int depth) {
  if (depth < 0) return;
  lua_pushvalue(L, idx);
  int was = lua_rawget(L, seen) == LUA_TNUMBER ? (int)lua_tointeger(L, -1) : -1;
  lua_pop(L, 1);
  if (was >= depth) return;
  lua_pushvalue(L, idx);
  lua_pushinteger(L, depth);
  lua_rawset(L, seen);
  lvm_whole(L, idx);
  luaL_checkstack(L, 4, "whole");
  long walked = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    walked++;
    int top = lua_gettop(L);
    if (lua_type(L, top) == LUA_TTABLE) whole_deep(L, top, seen, depth - 1);
    if (lua_type(L, top - 1) == LUA_TTABLE) whole_deep(L, top - 1, seen, depth - 1);
    lua_pop(L, 1);
  }
  lvm_charge(L, walked);
}

void lvm_whole_deep(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TTABLE) return;
  idx = lua_absindex(L, idx);
  lua_newtable(L);
  whole_deep(L, idx, lua_gettop(L), LVM_WHOLE_DEPTH);
  lua_pop(L, 1);
}

int lvm_raw_next(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lvm_whole(L, 1); /* all of it, also from a key of a table read in part */
  lua_settop(L, 2);
  if (lua_next(L, 1)) return 2;
  lua_pushnil(L);
  return 1;
}

int lvm_pairs_whole(lua_State *L) {
  lua_settop(L, 1);
  if (!lvm_totable(L, 1)) lua_pushvalue(L, 1);
  lua_pushcfunction(L, lvm_raw_next);
  lua_insert(L, -2);
  lua_pushnil(L);
  return 3;
}

int lvm_view_kept(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_getiuservalue(L, idx, 1) == LUA_TTABLE) return lua_gettop(L);
  lua_pop(L, 1);
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, 1);
  return lua_gettop(L);
}

/* Keep the error message "file:line: message"; only make it a string. */
/*
** An error's text: a string as raised (error() put the file and line in
** front); anything else (error({code = 42})) gets the place it was raised,
** the nearest Lua line, in front of its __tostring, which may itself fail
** or recurse without end (it runs protected).
*/
static int message_handler(lua_State *L) {
  if (lua_isstring(L, 1)) return 1;
  const char *text = NULL;
  if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
    lua_pushvalue(L, 1);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
      text = lua_tostring(L, -1);
  }
  char where[256] = "";
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++)
    if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
      snprintf(where, sizeof where, "%s:%d: ", ar.short_src, ar.currentline);
      break;
    }
  if (text) lua_pushfstring(L, "%s%s", where, text);
  else lua_pushfstring(L, "%s(error object is a %s value)", where, luaL_typename(L, 1));
  return 1;
}

int lvm_pcall(lvm *vm, lua_CFunction fn, void *ud, tailor_error *err) {
  lua_State *L = vm->L;
  int base, status, code;
  if (vm->running) /* a nested call would arm a fresh budget */
    return util_fail(err, TAILOR_EINVAL, NULL,
                     "lvm_pcall: the lvm is already in a call");
  vm->running = 1;
  vm->calls++;
  vm->ud = ud;
  vm->file = NULL;
  vm->remaining = vm->budget;
  vm->exhausted = 0;
  vm->mem_hit = vm->refusing = 0;
  lua_sethook(L, NULL, 0, 0); /* before the watchdog may set it */
  if (!lwatch_begin(&vm->watch, vm->calls)) arm_budget(L);
  base = lua_gettop(L) + 1;
  lua_pushcfunction(L, message_handler);
  lua_pushcfunction(L, fn);
  status = lua_pcall(L, 0, LUA_MULTRET, base);
  lwatch_end(&vm->watch);
  if (vm->exhausted)
    code = TAILOR_EBUDGET;
  else if (vm->mem_hit || status == LUA_ERRMEM)
    code = TAILOR_ELUAMEM;
  else
    code = status == LUA_OK ? TAILOR_OK : TAILOR_ESTRATEGY;
  if (code == TAILOR_OK) {
    lua_remove(L, base);
  } else if (code == TAILOR_EBUDGET) {
    util_fail(err, code, NULL, "%s", vm->budget_msg);
  } else if (code == TAILOR_ELUAMEM) {
    int mib = vm->limit % (1u << 20) == 0;
    util_fail(err, code, NULL, "%s: out of memory (limit %zu %s)",
              vm->file ? vm->file : "strategy",
              mib ? vm->limit >> 20 : vm->limit, mib ? "MiB" : "bytes");
  } else {
    const char *msg = lua_tostring(L, -1);
    util_fail(err, code, NULL, "%s", msg ? msg : "strategy failed");
  }
  if (code != TAILOR_OK) {
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT); /* give back what the failed call held */
    vm->refusing = 0;
  }
  vm->running = 0;
  vm->ud = NULL;
  vm->file = NULL;
  return code;
}

static handler *find_handler(lvm *vm, const char *name) {
  for (size_t i = 0; i < vm->nhandlers; i++)
    if (strcmp(vm->handlers[i].name, name) == 0) return &vm->handlers[i];
  return NULL;
}

int lvm_push_handler(lvm *vm, const char *name, const char **file) {
  handler *h = find_handler(vm, name);
  if (!h) return 0;
  lua_rawgetp(vm->L, LUA_REGISTRYINDEX, &handlers_key);
  lua_rawgeti(vm->L, -1, (lua_Integer)(h - vm->handlers) + 1);
  lua_remove(vm->L, -2);
  /* Names the file when the call runs out of memory: the call's own
     handler, pushed first; the tables read meanwhile (caps, segments,
     quiz) do not take the name. */
  if (!vm->file) vm->file = h->file;
  if (file) *file = h->file;
  return 1;
}

int lvm_has_handler(lvm *vm, const char *name) {
  return find_handler(vm, name) != NULL;
}

const char *lvm_handler_name(lvm *vm, size_t i, const char **file) {
  if (i >= vm->nhandlers) return NULL;
  if (file) *file = vm->handlers[i].file;
  return vm->handlers[i].name;
}

/*
** ** Loading the folder
*/

/* A handler is a function under a string key, or a table under "segments"
   (the predicates), "caps" (the frequency caps the host enforces) or
   "on_event_for" (the events on_event wants); anything else in the
   returned table is the file's own. */
static int is_handler(lua_State *L, int key, int value) {
  if (lua_type(L, key) != LUA_TSTRING) return 0;
  const char *k = lua_tostring(L, key);
  return lua_type(L, value) == LUA_TFUNCTION ||
         (lua_type(L, value) == LUA_TTABLE &&
          (!strcmp(k, "segments") || !strcmp(k, "caps") || !strcmp(k, "on_event_for")));
}

/* Merge the handlers of the table at `t`.  Duplicates are refused before
   anything is merged, so a failing file leaves nothing behind (lvm_check_dir
   goes on after it). */
static void merge_handlers(lua_State *L, lvm *vm, const char *file, int t) {
  int values;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    handler *h;
    if (is_handler(L, -2, -1) && (h = find_handler(vm, lua_tostring(L, -2)))) {
      lua_pushfstring(L, "handler '%s' defined in both %s and %s",
                      lua_tostring(L, -2), h->file, file);
      lua_error(L);
    }
    lua_pop(L, 1);
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &handlers_key);
  values = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    handler *h;
    if (is_handler(L, -2, -1)) {
      if (vm->nhandlers == vm->cap) {
        size_t cap = 2 * vm->cap + 8;
        handler *grown = realloc(vm->handlers, cap * sizeof *grown);
        if (!grown) luaL_error(L, "out of memory");
        vm->handlers = grown;
        vm->cap = cap;
      }
      /* The value goes in first: if that raises, no C string is orphaned. */
      lua_pushvalue(L, -1);
      lua_rawseti(L, values, (lua_Integer)vm->nhandlers + 1);
      h = &vm->handlers[vm->nhandlers];
      h->name = strdup(lua_tostring(L, -2));
      h->file = strdup(file);
      if (!h->name || !h->file) {
        free(h->name);
        free(h->file);
        luaL_error(L, "out of memory");
      }
      vm->nhandlers++;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Runs in lvm_pcall with the file name as ud: load, run, merge. */
static int load_strategy(lua_State *L) {
  lvm *vm = lvm_of(L);
  const char *file = lvm_ud(L);
  vm->file = file;
  if (load_chunk(L, vm, file) != LUA_OK) return lua_error(L);
  lua_call(L, 0, 1);
  if (!lua_istable(L, -1)) {
    lua_pushfstring(L, "%s: must return a table of handlers (got %s)", file,
                    luaL_typename(L, -1));
    return lua_error(L);
  }
  merge_handlers(L, vm, file, lua_gettop(L));
  return 0;
}

static int visible(const struct dirent *e) { return e->d_name[0] != '.'; }

static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name); /* not alphasort: no locale */
}

static void free_list(struct dirent **list, int n) {
  while (n-- > 0) free(list[n]);
  free(list);
}

static int is_lua_name(const char *name) {
  size_t len = strlen(name);
  return len > 4 && strcmp(name + len - 4, ".lua") == 0;
}

/* Whether `name` in `dir` is a regular file (symlinks followed). */
static int is_regular(const char *dir, const char *name) {
  char path[PATH_MAX];
  struct stat st;
  if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
    return 0;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
** Load every top-level *.lua file of vm->dir.  Unless `all`, stops at the
** first failure (err filled, returns 1); with it, reports each failing file
** to `report` (may be NULL) and goes on.  Returns the number of failing
** files, or -1 when the folder cannot be read (err filled).
*/
static int load_dir(lvm *vm, int all, lvm_report_fn report, void *ud,
                    tailor_error *err) {
  struct dirent **list;
  int n = scandir(vm->dir, &list, visible, by_name), failed = 0;
  if (n < 0) {
    util_fail(err, TAILOR_ECONFIG, NULL, "cannot read strategy folder '%s': %s",
              vm->dir, strerror(errno));
    return -1;
  }
  for (int i = 0; i < n; i++) {
    char *name = list[i]->d_name;
    tailor_error e;
    if (!is_lua_name(name) || !is_regular(vm->dir, name)) continue;
    if (lvm_pcall(vm, load_strategy, name, &e) == TAILOR_OK) {
      lua_settop(vm->L, 0);
      continue;
    }
    failed++;
    if (err) *err = e;
    if (!all) break;
    if (report) report(ud, name, e.message);
  }
  free_list(list, n);
  return failed;
}

/* A sandbox without strategies yet; dir is copied. */
static lvm *sandbox_new(const lvm_config *cfg, const char *dir,
                        tailor_error *err) {
  static const lvm_config defaults;
  lvm *vm = calloc(1, sizeof *vm);
  if (!cfg) cfg = &defaults;
  if (!vm || (dir && *dir && !(vm->dir = strdup(dir)))) {
    util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
    goto fail;
  }
  vm->budget = cfg->budget > 0 ? cfg->budget : LVM_DEFAULT_INSTRUCTION_BUDGET;
  vm->time_limit_ms = cfg->time_limit_ms > 0 ? cfg->time_limit_ms : LVM_DEFAULT_TIME_LIMIT_MS;
  vm->limit = cfg->memory_limit ? cfg->memory_limit : LVM_DEFAULT_MEMORY_LIMIT;
  vm->remaining = vm->budget;
  vm->open_api = cfg->open_api;
  vm->api_ud = cfg->api_ud;
  vm->log = cfg->log;
  vm->log_ud = cfg->log_ud;
  if (!(vm->L = lua_newstate(lvm_alloc, vm))) {
    util_fail(err, TAILOR_ELUAMEM, NULL,
              "cannot create a Lua state within %zu bytes", vm->limit);
    goto fail;
  }
  vm->watch.L = vm->L;
  vm->watch.arm = arm_budget;
  /* Without the watchdog (count_all, or it cannot run here) every call is
     counted from its first instruction. */
  if (!cfg->count_all) lwatch_add(&vm->watch);
  if (lvm_pcall(vm, open_sandbox, NULL, err) != TAILOR_OK) goto fail;
  return vm;
fail:
  lvm_free(vm);
  return NULL;
}

lvm *lvm_new(const lvm_config *cfg, tailor_error *err) {
  lvm *vm = sandbox_new(cfg, cfg ? cfg->dir : NULL, err);
  if (vm && vm->dir && load_dir(vm, 0, NULL, NULL, err) != 0) {
    lvm_free(vm);
    return NULL;
  }
  return vm;
}

void lvm_free(lvm *vm) {
  if (!vm) return;
  lwatch_remove(&vm->watch);
  if (vm->L) lua_close(vm->L);
  pool_release(&vm->pool);
  for (size_t i = 0; i < vm->nhandlers; i++) {
    free(vm->handlers[i].name);
    free(vm->handlers[i].file);
  }
  free(vm->handlers);
  free(vm->dir);
  free(vm);
}

int lvm_check_dir(const char *dir, const lvm_config *cfg, lvm_report_fn report,
                  void *ud) {
  tailor_error e = {.message = "no strategy folder given"};
  int failed;
  lvm *vm = NULL;
  if (!dir || !*dir || !(vm = sandbox_new(cfg, dir, &e))) {
    if (report) report(ud, NULL, e.message);
    return -1;
  }
  failed = load_dir(vm, 1, report, ud, &e);
  if (failed < 0 && report) report(ud, NULL, e.message);
  lvm_free(vm);
  return failed;
}

/*
** ** Folder signature
*/
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static void fnv(uint64_t *h, const void *p, size_t n) {
  const unsigned char *s = p;
  for (size_t i = 0; i < n; i++) *h = (*h ^ s[i]) * FNV_PRIME;
}

static void fnv_u64(uint64_t *h, uint64_t v) { fnv(h, &v, sizeof v); }

/* Sign the *.lua files under path[0..len), which holds the folder at
   path[0..root) plus a relative part: the relative path is what is hashed.
   Symlinked folders are not followed, so a link loop cannot trap the walk. */
static int sign_dir(char *path, size_t len, size_t root, uint64_t *h) {
  struct dirent **list;
  int n = scandir(path, &list, visible, by_name);
  if (n < 0) return -1;
  for (int i = 0; i < n; i++) {
    const char *name = list[i]->d_name;
    size_t nl = strlen(name);
    struct stat st;
    if (len + 1 + nl >= PATH_MAX) continue;
    path[len] = '/';
    memcpy(path + len + 1, name, nl + 1);
    if (lstat(path, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      sign_dir(path, len + 1 + nl, root, h); /* unreadable: skipped */
    } else if (is_lua_name(name) && stat(path, &st) == 0 &&
               S_ISREG(st.st_mode)) {
      fnv(h, path + root + 1, len + nl - root + 1); /* with its NUL */
      fnv_u64(h, (uint64_t)st.st_size);
      fnv_u64(h, (uint64_t)st.st_mtim.tv_sec);
      fnv_u64(h, (uint64_t)st.st_mtim.tv_nsec);
      fnv_u64(h, (uint64_t)st.st_ino);
    }
  }
  path[len] = '\0';
  free_list(list, n);
  return 0;
}

uint64_t lvm_dir_signature(const char *dir) {
  char path[PATH_MAX];
  size_t len = dir ? strlen(dir) : 0;
  uint64_t h = FNV_OFFSET;
  if (len == 0 || len >= sizeof path) return 0;
  memcpy(path, dir, len + 1);
  if (sign_dir(path, len, len, &h) < 0) return 0;
  return h ? h : 1; /* 0 means unreadable */
}
