/*
** vm.c: the per-thread Lua states of an engine.  Each thread that decides
** (or commits, for triggers) gets its own sandboxed state on first use,
** kept in a thread-specific slot and listed so that tailor_close() can free
** them.  Edited strategy files are picked up by a new generation: a state
** of an older generation is rebuilt before its next call, once the edited
** folder compiles.
*/
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "engine/engine.h"

struct vm_slot {
  tailor *t;
  lvm *vm;
  sknn_work *work; /* the session kernels' scratch space, made on first use */
  uint64_t gen;
  vm_slot *prev, *next;
};

static void slot_unlink(tailor *t, vm_slot *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    t->vms = s->next;
  if (s->next) s->next->prev = s->prev;
}

/* Runs when a thread that decided exits: its Lua state goes with it. */
static void slot_destroy(void *p) {
  vm_slot *s = p;
  pthread_mutex_lock(&s->t->vm_mu);
  slot_unlink(s->t, s);
  pthread_mutex_unlock(&s->t->vm_mu);
  lvm_free(s->vm);
  sknn_work_free(s->work);
  free(s);
}

sknn_work *eng_thread_work(tailor *t) {
  vm_slot *s = pthread_getspecific(t->vm_key);
  if (s && !s->work) s->work = sknn_work_new();
  return s ? s->work : NULL;
}

static void vm_log(void *ud, int level, const char *msg) {
  eng_log(ud, level, "%s", msg);
}

void eng_vm_config(tailor *t, lvm_config *c) {
  memset(c, 0, sizeof *c);
  c->dir = t->cfg.strategies;
  c->budget = t->cfg.lua_budget;
  c->memory_limit = (size_t)t->cfg.lua_memory_mb << 20;
  c->open_api = lapi_open;
  c->api_ud = t;
  c->log = vm_log;
  c->log_ud = t;
}

/*
** Look for edited strategy files at most every reload_interval_ms.  An edit
** that does not compile is refused once (and logged); the states keep the
** version they have until the folder changes again.
*/
static void scan_strategies(tailor *t) {
  if (!t->cfg.strategies || !*t->cfg.strategies) return;
  int64_t now = util_now_ms();
  if (now - atomic_load(&t->last_scan_ms) < t->cfg.reload_ms) return;
  if (pthread_mutex_trylock(&t->scan_mu)) return; /* another thread scans */
  atomic_store(&t->last_scan_ms, now);
  uint64_t sig = lvm_dir_signature(t->cfg.strategies);
  if (sig != t->strat_sig) {
    t->strat_sig = sig;
    lvm_config c;
    tailor_error e = {0};
    eng_vm_config(t, &c);
    lvm *probe = lvm_new(&c, &e);
    if (probe) {
      lvm_free(probe);
      atomic_fetch_add(&t->strat_gen, 1);
      eng_log(t, TAILOR_LOG_INFO, "strategies reloaded from %s",
              t->cfg.strategies);
    } else {
      eng_log(t, TAILOR_LOG_ERROR,
              "strategy edit refused, the previous version keeps serving: %s",
              e.message);
    }
  }
  pthread_mutex_unlock(&t->scan_mu);
}

lvm *eng_thread_vm(tailor *t, tailor_error *err) {
  scan_strategies(t);
  vm_slot *s = pthread_getspecific(t->vm_key);
  uint64_t gen = atomic_load(&t->strat_gen);
  if (s && s->gen == gen) return s->vm;
  lvm_config c;
  eng_vm_config(t, &c);
  lvm *vm = lvm_new(&c, err);
  if (!vm) return s ? s->vm : NULL; /* keep serving the old version */
  if (s) {
    lvm_free(s->vm);
    s->vm = vm;
    s->gen = gen;
    return vm;
  }
  if (!(s = calloc(1, sizeof *s))) {
    lvm_free(vm);
    util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
    return NULL;
  }
  s->t = t;
  s->vm = vm;
  s->gen = gen;
  pthread_mutex_lock(&t->vm_mu);
  s->next = t->vms;
  if (t->vms) t->vms->prev = s;
  t->vms = s;
  pthread_mutex_unlock(&t->vm_mu);
  pthread_setspecific(t->vm_key, s);
  return vm;
}

/* Lua states alive: one per thread that decided and has not exited. */
size_t eng_count_states(tailor *t) {
  size_t n = 0;
  pthread_mutex_lock(&t->vm_mu);
  for (vm_slot *s = t->vms; s; s = s->next) n++;
  pthread_mutex_unlock(&t->vm_mu);
  return n;
}


int eng_vms_init(tailor *t) { return pthread_key_create(&t->vm_key, slot_destroy); }

void eng_vms_free(tailor *t) {
  /* After the key is deleted no thread-exit destructor runs for it, so the
     list below is ours alone. */
  pthread_key_delete(t->vm_key);
  for (vm_slot *s = t->vms, *next; s; s = next) {
    next = s->next;
    lvm_free(s->vm);
    sknn_work_free(s->work);
    free(s);
  }
}
