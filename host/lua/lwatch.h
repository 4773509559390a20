/*
** lwatch.h: arms a long call's instruction budget late.
**
** Lua 5.4 sends every instruction through its hook dispatcher while a count
** hook is set, whatever the count: a tenth of a Lua-heavy decision, spent
** on calls that end in microseconds.  So a call starts without the budget's
** hook, and one watchdog thread for the process looks at the running calls
** every LWATCH_TICK_MS; a call it finds running on two looks in a row gets
** SIGURG on its thread, whose handler sets the hook (lua_sethook is meant to
** be called from a signal handler: lua.c stops a script on Ctrl-C the same
** way).  From then on the call is counted as before, so a runaway call
** still ends, LWATCH_TICK_MS to twice that later than it would have.
**
** SIGURG, because its default action is to ignore it and hardly anything
** uses it (Go's runtime preempts goroutines with it for the same reasons).
** When the process already has a handler of its own for SIGURG, or a
** thread blocks it, that thread's calls are counted from their first
** instruction: lwatch_begin says so and the caller sets the hook itself.
** After fork(), the child starts its own watchdog on its first call.
*/
#ifndef TAILOR_LWATCH_H
#define TAILOR_LWATCH_H

#include <lua.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#define LWATCH_TICK_MS 5 /* a call is armed after 5 to 10 ms */

typedef struct lwatch {
  /* set by the owner before lwatch_add */
  lua_State *L;                /* the state to arm */
  void (*arm)(lua_State *L);   /* sets the hook: runs in the signal handler */
  /* the watchdog's */
  _Atomic uint64_t live;       /* serial of the running call, 0 between calls */
  uint64_t seen;               /* `live` at the watchdog's last look */
  pthread_t thread;            /* the running call's */
  pthread_mutex_t end;         /* `live` drops to 0 under it */
  _Atomic int armed;           /* the running call has its hook */
  struct lwatch *outer;        /* the call this one runs inside, if any */
  int added;
  uint64_t began;              /* lwatch_now() at the running call's start */
} lwatch;

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t lwatch_now(void);

/* Watch `w`'s calls from now on (starting the watchdog when it is the
   first); 0, or -1 when calls cannot be armed late in this process
   (another SIGURG handler, no thread): then every lwatch_begin is 0. */
int lwatch_add(lwatch *w);

/* Stop watching `w` (before its state is closed).  Safe when not added. */
void lwatch_remove(lwatch *w);

/*
** A call with serial `serial` (non-zero, new for each call) starts on this
** thread.  1: the watchdog will arm it if it runs long (the caller has
** cleared the hook before); 0: the caller must set the hook now.  Either
** way `began` is set, for the call's time limit (lvm.c).
*/
int lwatch_begin(lwatch *w, uint64_t serial);

/* The call ends: no signal reaches this thread for it from now on, and a
   call it ran inside (another state's) is this thread's again. */
void lwatch_end(lwatch *w);

#endif
