/*
** deliver.c: the server's delivery thread.  Every deliver_interval_ms it
** calls tailor_deliver_due(), which hands due outbox rows to the plugins'
** channels (SMTP, webhooks).  It is a thread of its own, not the loop nor a
** decision worker, because a channel may block for as long as its timeouts
** allow; the engine holds no lock while a channel sends, so decisions and
** ingestion go on meanwhile.  The interval and batch are read at start
** (a SIGHUP does not change them).
**
** On SIGTERM the thread is told at once (srv_deliver_quit), not once the
** connections are done: the send in progress, bounded by its channel's
** timeout, finishes while they do, and the rest of its batch is left for
** the next start (eng_deliver_quit).  Told only after the loop, a stop
** waited for the whole batch, each row up to its channel's timeout.
*/
#include <stdlib.h>

#include "engine/deliver.h"
#include "server/internal.h"

struct srv_deliver {
  srv *s;
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cv;       /* signalled to stop */
  int stop;
  int busy;           /* in tailor_deliver_due (under mu) */
  uint64_t interval_ns;
  int batch;
};

static void deliver_main(void *arg) {
  struct srv_deliver *d = arg;
  int failing = 0; /* said once, until a pass works again */
  uv_mutex_lock(&d->mu);
  while (!d->stop) {
    d->busy = 1;
    uv_mutex_unlock(&d->mu);
    int sent = 0;
    tailor_error e = {0};
    int rc = tailor_deliver_due(d->s->t, d->batch, &sent, &e);
    if (rc && !failing)
      srv_log(TAILOR_LOG_ERROR, "delivery: %s; tried again every pass, said again when it works",
              e.message);
    else if (!rc && failing)
      srv_log(TAILOR_LOG_WARN, "delivery: works again");
    if (!rc && sent) srv_log(TAILOR_LOG_INFO, "delivery: %d sent", sent);
    failing = rc != 0;
    uv_mutex_lock(&d->mu);
    d->busy = 0;
    /* A full batch went out: more may be due, so no pause. */
    if (!rc && sent == d->batch) continue;
    if (!d->stop) uv_cond_timedwait(&d->cv, &d->mu, d->interval_ns);
  }
  uv_mutex_unlock(&d->mu);
}

int srv_deliver_start(srv *s) {
  long interval = s->conf->deliver_interval_ms;
  if (!interval) {
    srv_log(TAILOR_LOG_INFO, "delivery: off (server.deliver_interval_ms is 0)");
    return 0;
  }
  struct srv_deliver *d = calloc(1, sizeof *d);
  if (!d) return -1;
  d->s = s;
  d->interval_ns = (uint64_t)interval * 1000000u;
  d->batch = (int)s->conf->deliver_batch;
  uv_mutex_init(&d->mu);
  uv_cond_init(&d->cv);
  if (uv_thread_create(&d->thread, deliver_main, d)) {
    srv_log(TAILOR_LOG_ERROR, "cannot start the delivery thread");
    uv_mutex_destroy(&d->mu);
    uv_cond_destroy(&d->cv);
    free(d);
    return -1;
  }
  s->deliver = d;
  srv_log(TAILOR_LOG_INFO, "delivery: every %ld ms, up to %d rows at a time", interval,
          d->batch);
  return 0;
}

void srv_deliver_quit(srv *s) {
  struct srv_deliver *d = s->deliver;
  if (!d) return;
  eng_deliver_quit(s->t);
  uv_mutex_lock(&d->mu);
  d->stop = 1;
  uv_cond_signal(&d->cv);
  uv_mutex_unlock(&d->mu);
}

void srv_deliver_stop(srv *s) {
  struct srv_deliver *d = s->deliver;
  if (!d) return;
  srv_deliver_quit(s);
  uv_mutex_lock(&d->mu);
  int busy = d->busy;
  uv_mutex_unlock(&d->mu);
  /* A send in progress finishes first (bounded by its plugin's timeouts):
     said, since the process may wait that long yet. */
  if (busy)
    srv_log(TAILOR_LOG_INFO, "shutdown: waiting for the delivery under way (one send, up to "
                             "its channel's timeout_ms)");
  uv_thread_join(&d->thread);
  uv_mutex_destroy(&d->mu);
  uv_cond_destroy(&d->cv);
  free(d);
  s->deliver = NULL;
}
