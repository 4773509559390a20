/*
** vm.c: the per-thread Lua states of an engine.  Each thread that decides
** (or commits, for triggers) gets its own sandboxed state on first use,
** kept in a thread-specific slot and listed so that tailor_close() can free
** them.  Edited strategy files are picked up by a new generation: a state
** of an older generation is rebuilt before its next call, once the edited
** folder compiles.
*/
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "engine/engine.h"

struct vm_slot {
  tailor *t; /* NULL once orphaned (below) */
  lvm *vm;
  sknn_work *work; /* the session kernels' scratch space, made on first use */
  sknn_rerank_work *rwork; /* the re-ranker's, made on first use */
  uint64_t gen;
  vm_slot *prev, *next;
};

/*
** The slots' lists are guarded by one process-wide mutex, never destroyed:
** a thread's exit (slot_destroy) may run while tailor_close frees the
** engine, and an engine's own mutex could be gone by the time the exiting
** thread took it.  Close frees every state and, of the slots of threads
** other than its own, keeps the small struct on `orphans`: an exit already
** under way may still hold its pointer, and frees it when it gets the lock
** (a thread that exits later runs no destructor: the key is deleted; its
** struct stays listed, reachable).
*/
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;
static vm_slot *orphans;

static void slot_unlink(vm_slot **head, vm_slot *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    *head = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
}

static void slot_link(vm_slot **head, vm_slot *s) {
  s->prev = NULL;
  s->next = *head;
  if (*head) (*head)->prev = s;
  *head = s;
}

static void slot_free_states(vm_slot *s) {
  lvm_free(s->vm);
  sknn_work_free(s->work);
  sknn_rerank_work_free(s->rwork);
  s->vm = NULL, s->work = NULL, s->rwork = NULL;
}

/* Runs when a thread that decided exits: its Lua state goes with it. */
static void slot_destroy(void *p) {
  vm_slot *s = p;
  pthread_mutex_lock(&slots_mu);
  if (!s->t) { /* its engine closed meanwhile and freed the states */
    slot_unlink(&orphans, s);
    pthread_mutex_unlock(&slots_mu);
    free(s);
    return;
  }
  slot_unlink(&s->t->vms, s);
  pthread_mutex_unlock(&slots_mu);
  slot_free_states(s);
  free(s);
}

sknn_work *eng_thread_work(tailor *t) {
  vm_slot *s = pthread_getspecific(t->vm_key);
  if (s && !s->work) s->work = sknn_work_new();
  return s ? s->work : NULL;
}

sknn_rerank_work *eng_thread_rerank_work(tailor *t) {
  vm_slot *s = pthread_getspecific(t->vm_key);
  if (s && !s->rwork) s->rwork = sknn_rerank_work_new();
  return s ? s->rwork : NULL;
}

static void vm_log(void *ud, int level, const char *msg) {
  eng_log(ud, level, "%s", msg);
}

void eng_vm_config(tailor *t, lvm_config *c) {
  memset(c, 0, sizeof *c);
  /* The last good snapshot when there is one (see "Snapshots"). */
  char *snap = atomic_load(&t->strat_dir);
  c->dir = snap ? snap : t->cfg.strategies;
  c->budget = t->cfg.lua_budget;
  c->count_all = !t->cfg.lua_watchdog;
  c->memory_limit = (size_t)t->cfg.lua_memory_mb << 20;
  c->open_api = lapi_open;
  c->api_ud = t;
  c->log = vm_log;
  c->log_ud = t;
}

/*
** Snapshots.  States are built from a private copy of the strategy folder
** taken when it last compiled, never from the live folder: a thread that
** makes its first state after a broken edit gets the last good version like
** every other thread, and a `require` inside a handler reads the version
** its state was built from.  Copies live until tailor_close().
*/
static int copy_file(const char *from, const char *to) {
  FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
  char buf[16384];
  size_t n;
  int ok = a && b;
  while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
  if (a && ferror(a)) ok = 0;
  if (a) fclose(a);
  if (b && fclose(b)) ok = 0;
  return ok ? 0 : -1;
}

/* The *.lua files under `from` (folders followed, symlinked ones not, as
   lvm_dir_signature walks them) copied to the existing folder `to`. */
static int copy_tree(const char *from, const char *to, int depth) {
  DIR *d = opendir(from);
  struct dirent *de;
  int rc = d ? 0 : -1;
  while (d && !rc && (de = readdir(d))) {
    char src[PATH_MAX], dst[PATH_MAX];
    struct stat st;
    size_t n = strlen(de->d_name);
    if (de->d_name[0] == '.') continue;
    if (snprintf(src, sizeof src, "%s/%s", from, de->d_name) >= (int)sizeof src ||
        snprintf(dst, sizeof dst, "%s/%s", to, de->d_name) >= (int)sizeof dst || lstat(src, &st))
      continue;
    if (S_ISDIR(st.st_mode) && depth < 16)
      rc = (mkdir(dst, 0700) && errno != EEXIST) ? -1 : copy_tree(src, dst, depth + 1);
    else if (n > 4 && !strcmp(de->d_name + n - 4, ".lua") && !stat(src, &st) && S_ISREG(st.st_mode))
      rc = copy_file(src, dst);
  }
  if (d) closedir(d);
  return rc;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  return remove(path);
}

/* What changes when any strategy file changes: the folder and its base. */
uint64_t eng_strategies_signature(tailor *t) {
  uint64_t sig = lvm_dir_signature(t->cfg.strategies);
  if (t->cfg.strategies_base && *t->cfg.strategies_base)
    sig ^= lvm_dir_signature(t->cfg.strategies_base) * 0x9e3779b97f4a7c15ull;
  return sig;
}

/* Where strategy copies go: $TMPDIR, else /tmp. */
static const char *tmp_dir(void) {
  const char *tmp = getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

char *eng_strategies_merged(const char *base, const char *dir, tailor_error *err) {
  char *out = malloc(PATH_MAX);
  if (!out) {
    util_fail(err, TAILOR_ENOMEM, NULL, "strategies: out of memory");
    return NULL;
  }
  snprintf(out, PATH_MAX, "%s/tailor-strategies-XXXXXX", tmp_dir());
  /* The base folder first, then the strategies over it: a file of the same
     name (popup.lua, lib/settings.lua) replaces the base's. */
  if (!mkdtemp(out) || (base && *base && copy_tree(base, out, 0)) || copy_tree(dir, out, 0)) {
    util_fail(err, TAILOR_EIO, "strategies", "cannot copy the strategy folder '%s' to %s: %s",
              dir, out, strerror(errno));
    eng_strategies_discard(out);
    return NULL;
  }
  return out;
}

void eng_strategies_discard(char *copy) {
  if (!copy) return;
  nftw(copy, remove_one, 16, FTW_DEPTH | FTW_PHYS);
  free(copy);
}

/*
** A served snapshot's owner mark: <snap>/.owner, locked (flock, shared)
** before it has that name and held until the engine closes.  An engine
** that was killed (SIGKILL, a crash) left its snapshots in TMPDIR for
** good: a machine that runs the tests had 1,119 of them.  When an engine
** takes its first snapshot it removes every snapshot whose .owner no
** process holds; one without .owner (a `tailor check` copy in use, an
** older build's) is left alone.
*/
static int snapshot_own(const char *snap) {
  char fresh[PATH_MAX], path[PATH_MAX];
  snprintf(fresh, sizeof fresh, "%s/.owner-new", snap);
  snprintf(path, sizeof path, "%s/.owner", snap);
  int fd = open(fresh, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  if (flock(fd, LOCK_SH) || rename(fresh, path)) {
    close(fd);
    return -1;
  }
  return fd;
}

static void snapshots_sweep(void) {
  const char *dir = tmp_dir();
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strncmp(de->d_name, "tailor-strategies-", 18)) continue;
    char snap[PATH_MAX], owner[PATH_MAX + 8];
    snprintf(snap, sizeof snap, "%s/%s", dir, de->d_name);
    snprintf(owner, sizeof owner, "%s/.owner", snap);
    int fd = open(owner, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    struct stat st;
    if (!fstat(fd, &st) && st.st_uid == getuid() && !flock(fd, LOCK_EX | LOCK_NB))
      nftw(snap, remove_one, 16, FTW_DEPTH | FTW_PHYS); /* its owner is gone */
    close(fd);
  }
  closedir(d);
}

/* A new copy of the live folder; NULL (with `err`) when it cannot be made. */
static char *snapshot_take(tailor *t, tailor_error *err) {
  return eng_strategies_merged(t->cfg.strategies_base, t->cfg.strategies, err);
}

/*
** Take a snapshot of the live folder and load it once: on success it
** becomes the version new states are built from (TAILOR_OK), else it is
** removed and `err` says why.  The caller holds scan_mu (or is opening).
*/
int eng_strategies_load(tailor *t, tailor_error *err) {
  if (!t->n_snaps) snapshots_sweep();
  char *snap = snapshot_take(t, err);
  if (!snap) return err && err->code ? err->code : TAILOR_EIO;
  lvm_config c;
  eng_vm_config(t, &c);
  c.dir = snap;
  lvm *probe = lvm_new(&c, err);
  if (probe && eng_strategies_check(probe, err)) {
    lvm_free(probe);
    probe = NULL;
  }
  if (!probe) {
    nftw(snap, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free(snap);
    return err && err->code ? err->code : TAILOR_ESTRATEGY;
  }
  lvm_free(probe);
  int fd = snapshot_own(snap);
  pthread_mutex_lock(&t->vm_mu);
  struct eng_snap *snaps = realloc(t->snaps, (t->n_snaps + 1) * sizeof *t->snaps);
  if (snaps) {
    t->snaps = snaps;
    t->snaps[t->n_snaps++] = (struct eng_snap){snap, fd};
  } else if (fd >= 0) {
    close(fd); /* out of memory: kept without its mark, as before it */
  }
  pthread_mutex_unlock(&t->vm_mu);
  atomic_store(&t->strat_dir, snap);
  return TAILOR_OK;
}

void eng_strategies_free(tailor *t) {
  for (size_t i = 0; i < t->n_snaps; i++) {
    nftw(t->snaps[i].path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free(t->snaps[i].path);
    if (t->snaps[i].owner >= 0) close(t->snaps[i].owner);
  }
  free(t->snaps);
  t->snaps = NULL;
  t->n_snaps = 0;
}

/*
** Look for edited strategy files at most every reload_interval_ms.  An edit
** that does not compile is refused once (and logged); every thread keeps
** the last good version, new threads included, until the folder changes
** again.
*/
static void scan_strategies(tailor *t) {
  if (!t->cfg.strategies || !*t->cfg.strategies) return;
  int64_t now = util_now_ms();
  if (now - atomic_load(&t->last_scan_ms) < t->cfg.reload_ms) return;
  if (pthread_mutex_trylock(&t->scan_mu)) return; /* another thread scans */
  atomic_store(&t->last_scan_ms, now);
  uint64_t sig = eng_strategies_signature(t);
  if (sig != t->strat_sig) {
    t->strat_sig = sig;
    tailor_error e = {0};
    if (eng_strategies_load(t, &e) == TAILOR_OK) {
      atomic_store(&t->serving_sig, sig);
      atomic_fetch_add(&t->strat_gen, 1);
      eng_log(t, TAILOR_LOG_INFO, "strategies reloaded from %s", t->cfg.strategies);
    } else {
      eng_log(t, TAILOR_LOG_ERROR,
              "strategy edit refused, the previous version keeps serving: %s", e.message);
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
  pthread_mutex_lock(&slots_mu);
  slot_link(&t->vms, s);
  pthread_mutex_unlock(&slots_mu);
  pthread_setspecific(t->vm_key, s);
  return vm;
}

/* Lua states alive: one per thread that decided and has not exited. */
size_t eng_count_states(tailor *t) {
  size_t n = 0;
  pthread_mutex_lock(&slots_mu);
  for (vm_slot *s = t->vms; s; s = s->next) n++;
  pthread_mutex_unlock(&slots_mu);
  return n;
}


int eng_vms_init(tailor *t) { return pthread_key_create(&t->vm_key, slot_destroy); }

void eng_vms_free(tailor *t) {
  vm_slot *mine = pthread_getspecific(t->vm_key); /* no exit of ours is under way */
  pthread_mutex_lock(&slots_mu);
  pthread_key_delete(t->vm_key); /* no destructor starts after this */
  for (vm_slot *s = t->vms, *next; s; s = next) {
    next = s->next;
    slot_free_states(s);
    if (s == mine) {
      free(s);
    } else { /* an exit under way may hold it: see slots_mu */
      s->t = NULL;
      slot_link(&orphans, s);
    }
  }
  t->vms = NULL;
  pthread_mutex_unlock(&slots_mu);
}
