/*
** sizes.c: the server's thread for the console's sizes over time.  Every
** console_snapshot_ms (and once at start) it keeps a snapshot of every
** audience's and segment's size in the store (eng_console_snapshot), which
** the console's Audiences page draws.  Audiences move with the clock, not
** only with events (a visitor ages out of a band), so this runs on a timer
** rather than in the write path.  A snapshot is one pass over the people
** under the index's read lock and one small write; a restart or another
** node of a shared store within half an interval adds none.  The interval
** is read at start (a SIGHUP does not change it).
*/
#include <stdlib.h>

#include "engine/console.h"
#include "server/internal.h"

struct srv_sizes {
  srv *s;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv; /* signalled to stop */
  int stop;
  long interval_ms;
};

static void sizes_main(void *arg) {
  struct srv_sizes *z = arg;
  uv_mutex_lock(&z->mu);
  while (!z->stop) {
    uv_mutex_unlock(&z->mu);
    tailor_error e = {0};
    if (eng_console_snapshot(z->s->t, util_now_ms(), z->interval_ms / 2, NULL, &e))
      srv_log(TAILOR_LOG_WARN, "console sizes: %s", e.message);
    uv_mutex_lock(&z->mu);
    if (!z->stop) uv_cond_timedwait(&z->cv, &z->mu, (uint64_t)z->interval_ms * 1000000u);
  }
  uv_mutex_unlock(&z->mu);
}

int srv_sizes_start(srv *s) {
  long interval = s->conf->console_snapshot_ms;
  if (!interval) return 0;
  struct srv_sizes *z = calloc(1, sizeof *z);
  if (!z) return -1;
  z->s = s;
  z->interval_ms = interval;
  uv_mutex_init(&z->mu);
  uv_cond_init(&z->cv);
  if (uv_thread_create(&z->thread, sizes_main, z)) {
    srv_log(TAILOR_LOG_ERROR, "cannot start the console's sizes thread");
    uv_mutex_destroy(&z->mu);
    uv_cond_destroy(&z->cv);
    free(z);
    return -1;
  }
  s->sizes = z;
  return 0;
}

void srv_sizes_stop(srv *s) {
  struct srv_sizes *z = s->sizes;
  if (!z) return;
  uv_mutex_lock(&z->mu);
  z->stop = 1;
  uv_cond_signal(&z->cv);
  uv_mutex_unlock(&z->mu);
  uv_thread_join(&z->thread);
  uv_mutex_destroy(&z->mu);
  uv_cond_destroy(&z->cv);
  free(z);
  s->sizes = NULL;
}
