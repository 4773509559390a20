/*
** lvm.h: sandboxed Lua 5.4 states that run merchant strategies.
**
** A strategy folder holds top-level `*.lua` files, each returning a table of
** handlers (recommend, popup, discount, audiences, rank, on_event, segments,
** ...); modules they `require` live in the same folder (subfolders allowed,
** `require "lib.util"` is `lib/util.lua`).  An lvm loads every top-level file
** and merges their handlers; two files defining the same handler is an error.
**
** The sandbox: base library without dofile/loadfile (load takes text only),
** string (no dump), table, math, utf8, coroutine, and os.time/os.clock/
** os.date; no io, debug or package; `require` resolves inside the folder
** only; new globals are refused and reading an undeclared global is an
** error.  The tables a strategy reaches from its globals (_G, string,
** table, math, utf8, coroutine, os and the host's API) are read-only, so
** one strategy cannot change them under another.  Each call runs under an
** instruction budget (count hook, plus the steps of pattern matching; on
** the main thread counted once the call has run a few milliseconds, see
** lwatch.h, unless count_all), with a wall-clock time limit checked at the
** same points (time_limit_ms), and the state under a memory cap (counting
** allocator).  Nothing a strategy
** does can take the host down: every failure comes back as a tailor_code
** with a message "file:line: what".
**
** An lvm belongs to one thread at a time.
*/
#ifndef TAILOR_LVM_H
#define TAILOR_LVM_H

#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "core/defaults.h"
#include "tailor.h"

/* The config's defaults (lua.instruction_budget, lua.memory_limit_mb), for
   states made without the engine's config. */
#define LVM_DEFAULT_INSTRUCTION_BUDGET ((long)DEF_LUA_INSTRUCTION_BUDGET) /* per call */
#define LVM_DEFAULT_MEMORY_LIMIT ((size_t)DEF_LUA_MEMORY_LIMIT_MB << 20)  /* bytes per state */
#define LVM_DEFAULT_TIME_LIMIT_MS ((long)DEF_LUA_CALL_TIME_LIMIT_MS) /* per call */
#define LVM_HOOK_STEP 1000                        /* instructions per hook */

typedef struct lvm lvm;

typedef struct lvm_config {
  const char *dir;       /* strategy folder; NULL or "" for none */
  long budget;           /* instructions per call; <= 0 for the default */
  int count_all;         /* count from a call's first instruction, without
                            the watchdog (lwatch.h) */
  long time_limit_ms;    /* wall-clock ms per call, checked where the budget
                            is; <= 0 for the default */
  size_t memory_limit;   /* bytes; 0 for the default */
  /* Called once on a new state, before globals are frozen, to install the
     host's API (the `tailor` global).  Runs in protected mode: it may raise
     Lua errors.  May be NULL. */
  void (*open_api)(lua_State *L, void *ud);
  void *api_ud;
  /* Where `print` from a strategy goes; NULL drops it. */
  void (*log)(void *ud, int level, const char *msg);
  void *log_ud;
} lvm_config;

/*
** A new sandboxed state; when cfg->dir is set, loads the strategy folder.
** Returns NULL with `err` filled when a file does not compile or raises
** while loading ("recommend.lua:3: unexpected symbol near 'x'").
** `cfg` strings are copied.
*/
lvm *lvm_new(const lvm_config *cfg, tailor_error *err);

/* Close the state and free everything; NULL is a no-op. */
void lvm_free(lvm *vm);

/* The Lua state, for pushing arguments inside an lvm_pcall function. */
lua_State *lvm_state(lvm *vm);

/*
** Push the handler `name` (a function) onto the stack and return 1, or
** return 0 and push nothing when no strategy file defines it.  *file
** (may be NULL) receives the file that defined it ("recommend.lua"), valid
** while the lvm lives.
*/
int lvm_push_handler(lvm *vm, const char *name, const char **file);

/* Whether some strategy file defines handler `name`. */
int lvm_has_handler(lvm *vm, const char *name);

/* The name of handler `i` (from 0, in the order the files defined them)
   and in *file (may be NULL) the file that defines it, both valid while
   the lvm lives; NULL past the last handler. */
const char *lvm_handler_name(lvm *vm, size_t i, const char **file);

/*
** Run `fn(L)` in protected mode under a fresh instruction budget.  `fn`
** finds `ud` with lvm_ud(L).  Returns TAILOR_OK, or TAILOR_ESTRATEGY (a Lua
** error), TAILOR_EBUDGET (the budget or the time limit ran out, even if the
** strategy caught the error), TAILOR_ELUAMEM (the memory cap was hit), with err->message
** "file:line: message".  The stack is left as `fn` left it on success and
** empty on failure; a full garbage collection follows a failure.
*/
int lvm_pcall(lvm *vm, lua_CFunction fn, void *ud, tailor_error *err);

/* The `ud` given to lvm_pcall, from inside `fn`. */
void *lvm_ud(lua_State *L);

/* The lvm of a state (for API functions). */
lvm *lvm_of(lua_State *L);

/*
** Charge `steps` of work a C function did for the strategy (a step is worth
** one instruction) to the running call's budget.  When the budget runs out
** this raises the budget error, as the count hook does, naming the Lua line
** that called the function; it does not return.  Outside a call, a no-op.
*/
void lvm_charge(lua_State *L, long steps);

/* lvm_charge without the error: 1 when the budget is spent (the call's
   error message is then lvm_budget_message), for C code that must unwind
   on its own (it holds memory a longjmp would lose). */
int lvm_spend(lua_State *L, long steps);
const char *lvm_budget_message(lua_State *L);

/*
** A number that changes with every lvm_pcall (it counts them): API
** functions that keep per-call state compare it with the one they saved.
*/
uint64_t lvm_call_serial(lua_State *L);

/*
** Lazy views the host hands strategies (ctx, on_event's event): a userdata
** whose fields are made when first read.  lvm_set_view_meta gives the
** userdata on top the metatable registered as `tname`, made from `fns` the
** first time, with `locked` as its __metatable (getmetatable's answer).
** lvm_view_kept pushes the table of fields kept for the view at `idx` (its
** first user value), made when absent, and returns its index.
*/
void lvm_set_view_meta(lua_State *L, const char *tname, const luaL_Reg *fns,
                       const char *locked);
int lvm_view_kept(lua_State *L, int idx);

/* __index's first look: the field kept under the key at index 2 for the
   view at index 1, pushed (1), or nothing pushed (0).  lvm_view_keep keeps
   the value on top (it stays there) under that key. */
int lvm_view_get(lua_State *L);
void lvm_view_keep(lua_State *L);

/* next() on the table at 1 without metamethods, the table made whole
   (lvm_whole) first: the sandbox's `next`, and the iterator its pairs and
   the __pairs of a lazy view or table hand out. */
int lvm_raw_next(lua_State *L);

/* __pairs for such a value (below): what its __totable gives, walked with
   lvm_raw_next. */
int lvm_pairs_whole(lua_State *L);

/* A value whose fields are made when first read (its metatable has
   __totable: a buyer's value figures, a kernel's rows, on_event's event)
   made whole: the table it stands for pushed (1), or nothing pushed (0)
   for any other value.  lvm_whole does it to a table in place, so raw
   reads see every field. */
int lvm_totable(lua_State *L, int idx);
void lvm_whole(lua_State *L, int idx);
/* Only a metatable so marked (the host's) has its __totable called:
   lvm_set_view_meta marks its own; the table at `mt`. */
void lvm_mark_totable(lua_State *L, int mt);
/* lvm_whole for the table at idx and every table reachable from it, to
   LVM_WHOLE_DEPTH levels (what C code that walks its arguments raw, a
   plugin, needs). */
#define LVM_WHOLE_DEPTH 64
void lvm_whole_deep(lua_State *L, int idx);

/* Bytes the state's objects take now, and its cap. */
size_t lvm_memory(lvm *vm);
size_t lvm_memory_limit(lvm *vm);

/* Bytes the state has taken from the process: its objects' blocks and the
   small blocks it freed and keeps for reuse (at least lvm_memory). */
size_t lvm_memory_held(lvm *vm);

/*
** Compile-check every top-level `*.lua` file of `dir` in a scratch sandbox
** (with `open_api` of cfg installed, so files may use the API at load time).
** Calls `report` for each error with the file and a "file:line: message"
** text.  Returns the number of files with errors, or -1 when `dir` cannot be
** read (report is called with file NULL).  `cfg->dir` is ignored.
*/
typedef void (*lvm_report_fn)(void *ud, const char *file, const char *msg);
int lvm_check_dir(const char *dir, const lvm_config *cfg, lvm_report_fn report,
                  void *ud);

/*
** A signature of the folder's `*.lua` files (names, sizes, mtimes, inodes,
** recursively), to detect edits cheaply.  Returns 0 when the folder cannot
** be read.
*/
uint64_t lvm_dir_signature(const char *dir);

#endif /* TAILOR_LVM_H */
