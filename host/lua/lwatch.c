/*
** lwatch.c: the watchdog that arms long calls' budgets (see lwatch.h).
**
** What each side touches.  The calling thread writes `thread` and `armed`
** and publishes the call in `live` (release); the watchdog reads `live`
** (acquire) and `armed`, and keeps `seen` to itself.  The watchdog signals
** a thread only while holding the call's `end` mutex and seeing the same
** call still live and not armed, and lwatch_end clears `live` under that
** mutex: so no signal is sent to a thread that has left its call (and may
** have exited).  One sent just before may still land after the call; the
** handler then arms the thread's enclosing or next call early, which only
** counts it.  The handler reads only this thread's `current`, in
** initial-exec TLS (a dynamic TLS read may allocate: not in a handler).
** The list of watched calls changes under `lock`, which the watchdog holds
** while it looks, so a call removed is never looked at again.
**
** What still escapes the count: a thread that blocks SIGURG only after its
** first call, and calls running when something else takes SIGURG over
** (the watchdog notices at its next tick and the calls after count every
** instruction).  ThreadSanitizer delays signals to the next libc call, which
** a Lua loop never makes, so its builds count every instruction.
*/

#include "lwatch.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_THREAD__)
#define LWATCH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LWATCH_TSAN 1
#endif
#endif
#ifndef LWATCH_TSAN
#define LWATCH_TSAN 0
#endif

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static lwatch **calls; /* under lock, as the two below */
static size_t ncalls, cap;
static int atfork_installed;
static _Atomic int state; /* 0: no watchdog yet; 1: running; -1: unavailable */

#define LWATCH_TLS static _Thread_local __attribute__((tls_model("initial-exec")))
LWATCH_TLS lwatch *volatile current; /* the call this thread runs */
LWATCH_TLS int reachable;            /* 0: not asked yet, 1 yes, -1 blocked */

static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  lwatch *w = current;
  if (w && !atomic_load(&w->armed)) {
    atomic_store(&w->armed, 1);
    w->arm(w->L);
  }
  errno = saved;
}

/* Whether SIGURG still comes to on_signal. */
static int signal_ours(void) {
  struct sigaction now;
  return !sigaction(SIGURG, NULL, &now) && !(now.sa_flags & SA_SIGINFO) &&
         now.sa_handler == on_signal;
}

static void *watchdog(void *arg) {
  (void)arg;
  for (;;) {
    struct timespec tick = {0, LWATCH_TICK_MS * 1000000L};
    while (nanosleep(&tick, &tick) && errno == EINTR) continue;
    if (!signal_ours()) { /* taken over: calls from now on count whole */
      atomic_store(&state, -1);
      return NULL;
    }
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < ncalls; i++) {
      lwatch *w = calls[i];
      uint64_t s = atomic_load_explicit(&w->live, memory_order_acquire);
      if (s && s == w->seen) { /* the same call as a tick ago */
        pthread_mutex_lock(&w->end);
        if (atomic_load_explicit(&w->live, memory_order_acquire) == s && !atomic_load(&w->armed))
          pthread_kill(w->thread, SIGURG);
        pthread_mutex_unlock(&w->end);
      }
      w->seen = s;
    }
    pthread_mutex_unlock(&lock);
  }
  return NULL;
}

/* After fork() only the forking thread exists: the child starts its own
   watchdog on its next call.  The calls other threads were running are
   gone with them (their `end` mutex perhaps held); the forking thread's
   own calls now run on this thread.  (A call in progress across the fork
   is armed only from the child's next call on.) */
static void before_fork(void) { pthread_mutex_lock(&lock); }
static void after_fork_parent(void) { pthread_mutex_unlock(&lock); }
static void after_fork_child(void) {
  for (size_t i = 0; i < ncalls; i++) {
    lwatch *w = calls[i], *c = current;
    while (c && c != w) c = c->outer;
    pthread_mutex_init(&w->end, NULL);
    w->seen = 0;
    if (c) w->thread = pthread_self();
    else atomic_store(&w->live, 0);
  }
  pthread_mutex_unlock(&lock);
  if (atomic_load(&state) == 1) atomic_store(&state, 0);
}

/* Under lock: install the handler (unless SIGURG is somebody else's) and
   start the thread, with every signal blocked in it.  The code both run is
   kept loaded for the life of the process: Lua unloads a C module (the
   tailor module busted loads) when its state closes, and the thread and
   the handler would then jump into unmapped memory. */
static void start(void) {
  struct sigaction old, sa;
  if (atomic_load(&state) != 0) return;
#if LWATCH_TSAN
  atomic_store(&state, -1);
  return;
#endif
  Dl_info self;
  struct link_map *mine = NULL, *prog = NULL;
  void *main_handle = dlopen(NULL, RTLD_LAZY);
  if (!main_handle || !dladdr1((void *)on_signal, &self, (void **)&mine, RTLD_DL_LINKMAP) ||
      dlinfo(main_handle, RTLD_DI_LINKMAP, &prog) ||
      (mine != prog && !dlopen(self.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE))) {
    atomic_store(&state, -1); /* a shared object that cannot be pinned */
    return;
  }
  if (!atfork_installed) {
    if (pthread_atfork(before_fork, after_fork_parent, after_fork_child)) {
      atomic_store(&state, -1);
      return;
    }
    atfork_installed = 1;
  }
  if (sigaction(SIGURG, NULL, &old) ||
      ((old.sa_flags & SA_SIGINFO) ? old.sa_sigaction != NULL
                                   : old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN &&
                                         old.sa_handler != on_signal)) {
    atomic_store(&state, -1);
    return;
  }
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGURG, &sa, NULL)) {
    atomic_store(&state, -1);
    return;
  }
  sigset_t all, was;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &was);
  pthread_attr_t attr;
  pthread_t t;
  int rc = pthread_attr_init(&attr);
  if (!rc) {
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    rc = pthread_create(&t, &attr, watchdog, NULL);
    pthread_attr_destroy(&attr);
  }
  pthread_sigmask(SIG_SETMASK, &was, NULL);
  atomic_store(&state, rc ? -1 : 1);
}

int lwatch_add(lwatch *w) {
  atomic_store(&w->live, 0);
  w->seen = 0;
  atomic_store(&w->armed, 0);
  w->added = 0;
  if (pthread_mutex_init(&w->end, NULL)) return -1;
  pthread_mutex_lock(&lock);
  start();
  if (atomic_load(&state) == 1 && ncalls == cap) {
    size_t n = cap ? cap * 2 : 16;
    lwatch **v = realloc(calls, n * sizeof *v);
    if (v) {
      calls = v;
      cap = n;
    }
  }
  if (atomic_load(&state) == 1 && ncalls < cap) {
    calls[ncalls++] = w;
    w->added = 1;
  }
  pthread_mutex_unlock(&lock);
  if (!w->added) pthread_mutex_destroy(&w->end);
  return w->added ? 0 : -1;
}

void lwatch_remove(lwatch *w) {
  if (!w->added) return;
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < ncalls; i++)
    if (calls[i] == w) {
      calls[i] = calls[--ncalls];
      break;
    }
  pthread_mutex_unlock(&lock);
  pthread_mutex_destroy(&w->end);
  w->added = 0;
}

uint64_t lwatch_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int lwatch_begin(lwatch *w, uint64_t serial) {
  w->began = lwatch_now();
  if (!w->added) return 0;
  if (!reachable) { /* once per thread: does SIGURG get through? */
    sigset_t mask;
    reachable = pthread_sigmask(SIG_BLOCK, NULL, &mask) || sigismember(&mask, SIGURG) ? -1 : 1;
  }
  if (reachable < 0) return 0;
  int now = atomic_load(&state);
  if (now == -1) return 0; /* unavailable, or taken over: no lock */
  if (now == 0) {           /* a forked child's first call */
    pthread_mutex_lock(&lock);
    start();
    pthread_mutex_unlock(&lock);
    if (atomic_load(&state) != 1) return 0;
  }
  atomic_store(&w->armed, 0);
  w->thread = pthread_self();
  w->outer = current;
  current = w;
  atomic_store_explicit(&w->live, serial, memory_order_release);
  return 1;
}

void lwatch_end(lwatch *w) {
  if (current != w) return;
  pthread_mutex_lock(&w->end);
  atomic_store_explicit(&w->live, 0, memory_order_release);
  pthread_mutex_unlock(&w->end);
  current = w->outer;
}
