/*
** admin.c: what an engine answers about itself and its people: stats, a
** customer's profile, erasure, the outbox, audience members.  Reads go
** through eng_read_begin(), which never waits for the writer's commit.
*/
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/defaults.h"
#include "core/util.h"
#include "engine/engine.h"

store *eng_read_begin(tailor *t) {
  if (eng_writing == t || eng_serial == t) return t->st; /* write_mu held */
  if (t->st_read) {
    pthread_mutex_lock(&t->read_mu);
    return t->st_read;
  }
  pthread_mutex_lock(&t->write_mu);
  return t->st;
}

void eng_read_end(tailor *t) {
  if (eng_writing == t || eng_serial == t) return;
  pthread_mutex_unlock(t->st_read ? &t->read_mu : &t->write_mu);
}

/* A figure that may be undefined (NAN): null then. */
static json_t *real_or_null(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

/*
** stats.value_model (docs/lua-api.md, "The value model"): which model is
** in use and why, its parameters, whether it supports value tiers, and
** its holdout check.
*/
static json_t *value_model_json(const idx_value_model *vm) {
  char why[256];
  json_t *model = json_pack(
      "{ss ss sb sI sI sI}", "kind", idx_value_kind_name(vm->kind), "reason",
      idx_value_reason(vm, why, sizeof why), "tiers", vm->kind != IDX_VALUE_NONE,
      "customers", (json_int_t)vm->customers, "repeat_customers",
      (json_int_t)vm->repeat_customers, "min_repeat_customers",
      (json_int_t)vm->min_repeat);
  if (vm->kind == IDX_VALUE_BGNBD)
    json_object_set_new(model, "bgnbd", json_pack("{sf sf sf sf}", "r", vm->bg.r,
                                                  "alpha", vm->bg.alpha, "a", vm->bg.a,
                                                  "b", vm->bg.b));
  if (vm->kind == IDX_VALUE_BGNBD && vm->gg_ok)
    json_object_set_new(model, "gamma_gamma", json_pack("{sf sf sf}", "p", vm->gg.p,
                                                        "q", vm->gg.q, "v", vm->gg.v));
  if (vm->kind != IDX_VALUE_NONE)
    json_object_set_new(model, "simple", json_pack("{sf sf}", "gap_days",
                                                   vm->simple.gap_days, "order_value",
                                                   vm->simple.order_value));
  const idx_value_check *c = &vm->check;
  if (c->ran) {
    json_t *chk = json_pack(
        "{sf sI sI ss sI sI sI so so}", "holdout_days", c->holdout_days, "cutoff",
        (json_int_t)c->cutoff, "end", (json_int_t)c->end, "kind",
        idx_value_kind_name(c->kind), "customers", (json_int_t)c->customers,
        "repeat_customers", (json_int_t)c->repeat_customers, "spenders",
        (json_int_t)c->spenders, "spearman_predicted",
        real_or_null(c->spearman_predicted), "spearman_past_spend",
        real_or_null(c->spearman_past_spend));
    json_object_set_new(chk, "beats_past_spend",
                        json_boolean(c->spearman_predicted > c->spearman_past_spend));
    json_object_set_new(model, "check", chk);
  }
  return model;
}

int tailor_stats(tailor *t, char **out, tailor_error *err) {
  if (!t || !out) return util_fail(err, TAILOR_EINVAL, NULL, "stats: no engine or no output");
  json_t *o = json_object();
  store *st = eng_read_begin(t);
  json_object_set_new(o, "events", store_event_counts(st));
  json_object_set_new(o, "events_total", json_integer(store_count(st, "events")));
  json_object_set_new(o, "items", json_integer(store_count(st, "items")));
  json_object_set_new(o, "customers", json_integer(store_count(st, "customers")));
  json_object_set_new(o, "identities", json_integer(store_count(st, "identities")));
  json_object_set_new(o, "outbox", json_integer(store_count(st, "outbox")));
  /* Coupons issued, redeemed and expired, by tier and by experiment arm. */
  json_object_set_new(o, "coupons", store_coupon_report(st, util_now_ms()));
  eng_read_end(t);
  pthread_rwlock_rdlock(&t->lock);
  json_object_set_new(o, "index",
                      json_pack("{sI sI sI sI}", "items", (json_int_t)t->ix->items.n,
                                "people", (json_int_t)t->ix->people.n,
                                "sessions", (json_int_t)t->ix->sessions.n,
                                "events_applied", (json_int_t)t->ix->applied));
  json_t *model = value_model_json(&t->ix->value);
  json_object_set_new(model, "fitted_at", json_integer(t->ix->value.fitted_at));
  json_object_set_new(o, "value_model", model);
  /* Where the models were fitted (engine.c): on a shared log a log
     position and the log's time there, the same on every node. */
  const idx_fit *fit = &t->ix->fit;
  uint64_t h = 1469598103934665603ull; /* FNV-1a of every person's cluster */
  for (uint32_t i = 0; i < t->ix->people.n; i++) {
    h ^= t->ix->person[i].cluster;
    h *= 1099511628211ull;
  }
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  json_object_set_new(o, "models",
                      json_pack("{sI sI sI sb sb ss}", "position", (json_int_t)fit->seq, "orders",
                                (json_int_t)fit->orders, "fitted_at", (json_int_t)fit->at,
                                "repeat_heavy", (t->sess_adapted & SKNN_ADAPTED_REPEAT) != 0,
                                "sequential", (t->sess_adapted & SKNN_ADAPTED_TRANS) != 0,
                                "cluster_assignment", hex));
  /* The automatic segments, by name (kmeans.c). */
  const idx_clusters *cl = &t->ix->clusters;
  json_t *clusters = json_array();
  for (uint32_t m = 0; m < cl->k; m++) {
    json_t *cen = json_array();
    for (uint32_t j = 0; j < cl->dims; j++) json_array_append_new(cen, json_real(cl->centroid[m][j]));
    json_array_append_new(clusters, json_pack("{sI ss ss sI so}", "id", (json_int_t)m + 1, "name",
                                              cl->name[m], "description", cl->description[m],
                                              "size", (json_int_t)cl->size[m], "centroid", cen));
  }
  json_object_set_new(o, "clusters", clusters);
  /* The in-session purchase propensity (propensity.c): measured on the
     sessions held out of its fit; null until there is enough history. */
  const idx_propensity *pm = t->ix->propensity;
  json_object_set_new(
      o, "propensity",
      pm ? json_pack("{sf sf sI sI sI sI}", "auc", pm->auc, "calibration_error", pm->ece,
                     "holdout_sessions", (json_int_t)pm->n_holdout, "train_sessions",
                     (json_int_t)pm->n_train, "purchases", (json_int_t)pm->purchases,
                     "fitted_at", (json_int_t)pm->fitted_at)
         : json_null());
  if (pm) {
    json_t *w = json_array();
    for (int j = 0; j < IDX_PROP_FEATURES; j++) json_array_append_new(w, json_real(pm->w[j]));
    json_t *jp = json_object_get(o, "propensity");
    json_object_set_new(jp, "weights", w);
    json_object_set_new(jp, "bias", json_real(pm->b));
  }
  pthread_rwlock_unlock(&t->lock);
  json_object_set_new(o, "log", eng_log_json(t));
  /* Counters of this process since the engine opened. */
  json_object_set_new(
      o, "process",
      json_pack("{sI sI sI sI sI sI sI sI sI}", "lua_states", (json_int_t)eng_count_states(t),
                "decisions",
                (json_int_t)atomic_load(&t->n_decisions), "strategy_errors",
                (json_int_t)atomic_load(&t->n_strategy_errors), "events_accepted",
                (json_int_t)atomic_load(&t->n_accepted), "events_rejected",
                (json_int_t)atomic_load(&t->n_rejected), "triggers_scheduled",
                (json_int_t)atomic_load(&t->n_triggers), "triggers_capped",
                (json_int_t)atomic_load(&t->n_trigger_capped), "triggers_without_consent",
                (json_int_t)atomic_load(&t->n_trigger_no_consent),
                /* stored events this process's scans passed over (a start
                   from a checkpoint does not read them again) */
                "events_unreadable", (json_int_t)atomic_load(&t->n_unreadable)));
  *out = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return *out ? TAILOR_OK : util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
}

int tailor_export_customer(tailor *t, const char *customer, char **json, tailor_error *err) {
  if (!t || !customer || !*customer || !json)
    return util_fail(err, TAILOR_EINVAL, "customer", "export: no customer id");
  *json = NULL;
  json_t *out = store_export_customer(eng_read_begin(t), customer, err);
  eng_read_end(t);
  if (!out) return err && err->code ? err->code : TAILOR_ESTORE;
  char *fig = NULL;
  tailor_error ferr = {0};
  json_t *index = NULL;
  if (tailor_customer(t, customer, TAILOR_PII, &fig, &ferr) == TAILOR_OK)
    index = json_loads(fig, 0, NULL);
  tailor_free(fig);
  json_object_set_new(out, "index", index ? index : json_null());
  *json = json_dumps(out, JSON_COMPACT);
  json_decref(out);
  return *json ? TAILOR_OK : util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
}

int tailor_forget(tailor *t, const char *customer, int64_t *erased,
                  tailor_error *err) {
  if (!t || !customer || !*customer)
    return util_fail(err, TAILOR_EINVAL, "customer", "forget: no customer id");
  /* Under write_mu so no event of theirs can slip in between the store and
     the index. */
  pthread_mutex_lock(&t->write_mu);
  /* The checkpoint on disk holds them: it goes before the store forgets,
     so that a crash in between costs a replay, not the erasure. */
  int gone = eng_drop_checkpoint(t); /* a close writes one, if this fails */
  if (gone) {
    pthread_mutex_unlock(&t->write_mu);
    return util_fail(err, TAILOR_ESTORE, NULL,
                     "forget: cannot remove the checkpoint %s (%s): it would bring the "
                     "customer back at the next start", t->ckpt_path, strerror(gone));
  }
  /* Exposures still waiting in memory go to the store first, where the
     erasure deletes them (kept, they were written back after it). */
  eng_flush_exposures(t);
  json_t *sessions = NULL;
  int rc = store_forget(t->st, customer, erased, &sessions, err);
  if (rc == TAILOR_OK) {
    size_t i;
    json_t *v;
    pthread_rwlock_wrlock(&t->lock);
    atomic_fetch_add(&t->ix_gen, 1);
    idx_forget(t->ix, customer);
    json_array_foreach(sessions, i, v) idx_forget_session(t->ix, json_string_value(v));
    pthread_rwlock_unlock(&t->lock);
    eng_exposures_reset(t); /* their exposures are gone from the store */
    /* A checkpoint without them, now (removed above: a failed write
       leaves none, and the next start replays). */
    eng_save_checkpoint(t);
  }
  json_decref(sessions);
  pthread_mutex_unlock(&t->write_mu);
  if (rc == TAILOR_OK) eng_log(t, TAILOR_LOG_INFO, "erased a customer");
  return rc;
}

static json_t *ids_json(const idx *x, const idx_ids *a) {
  json_t *out = json_array();
  for (uint32_t i = 0; a && i < a->n; i++)
    json_array_append_new(out, json_string(intern_name(&x->items, a->v[i])));
  return out;
}

/* A person's preferences: {key: {value, source, time}}; under the read lock. */
static json_t *prefs_json(const idx *x, const idx_person *ps) {
  json_t *o = json_object();
  for (uint8_t i = 0; ps && o && i < ps->nprefs; i++) {
    const idx_pref *p = &ps->prefs[i];
    json_object_set_new(o, intern_name(&x->attrs, p->key),
                        json_pack("{ss ss sI}", "value", intern_name(&x->attrs, p->value),
                                  "source", intern_name(&x->attrs, p->source), "time",
                                  (json_int_t)p->ts));
  }
  return o;
}

int tailor_prefs(tailor *t, const char *customer, const char *anon, char **json,
                 tailor_error *err) {
  if (!t || !json) return util_fail(err, TAILOR_EINVAL, NULL, "prefs: missing argument");
  *json = NULL;
  if (!customer && !anon)
    return util_fail(err, TAILOR_EINVAL, "anon", "prefs: name the visitor (customer or anon)");
  pthread_rwlock_rdlock(&t->lock);
  const idx *x = t->ix;
  uint32_t p = idx_person_of(x, customer, anon); /* as a decision finds them */
  json_t *o = json_pack("{so}", "prefs",
                        prefs_json(x, p == INTERN_NONE ? NULL : &x->person[p]));
  pthread_rwlock_unlock(&t->lock);
  if (o) *json = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return *json ? TAILOR_OK : util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
}

int tailor_customer(tailor *t, const char *id, int flags, char **out,
                    tailor_error *err) {
  if (!t || !id || !out)
    return util_fail(err, TAILOR_EINVAL, NULL, "customer: missing argument");
  *out = NULL;
  json_t *profile = store_customer(eng_read_begin(t), id);
  eng_read_end(t);
  pthread_rwlock_rdlock(&t->lock);
  const idx *x = t->ix;
  uint32_t p = idx_person_of(x, id, id);
  if (p == INTERN_NONE && !profile) {
    pthread_rwlock_unlock(&t->lock);
    return util_fail(err, TAILOR_ENOTFOUND, "id", "customer '%s' not found", id);
  }
  idx_figures f;
  idx_person_figures(x, p, util_now_ms(), &f);
  json_t *o = json_pack("{ss}", "id", id);
  if (profile) {
    if (!(flags & TAILOR_PII)) {
      json_object_del(profile, "email");
      json_object_del(profile, "phone");
    }
    json_object_del(profile, "id");
    json_object_update(o, profile);
    json_decref(profile);
  }
  const idx_person *ps = f.seen ? &x->person[p] : NULL;
  /* json_pack refuses a non-finite number: checked, so that a bad figure
     is an error rather than a profile without its figures. */
  json_t *fig = json_pack("{si si sf sf sI sI sI sf sf ss sf sf sf}", "orders", (int)f.orders,
                          "visits", (int)f.visits, "revenue", f.revenue, "avg_order",
                          f.avg_order, "first_seen", (json_int_t)f.first_seen, "last_seen",
                          (json_int_t)f.last_seen, "last_order", (json_int_t)f.last_order,
                          "days_since_visit", f.days_since_visit, "days_since_order",
                          f.days_since_order, "lifecycle", idx_lifecycle_name(f.lifecycle),
                          "p_alive", f.p_alive, "expected_orders", f.expected_orders,
                          "predicted_value", f.predicted_value);
  if (!o || !fig) {
    pthread_rwlock_unlock(&t->lock);
    json_decref(o);
    json_decref(fig);
    return util_fail(err, o ? TAILOR_EINVAL : TAILOR_ENOMEM, "figures",
                     "customer '%s': a figure is not a finite number (or out of memory)", id);
  }
  json_object_set_new(fig, "recent", ids_json(x, ps ? &ps->recent : NULL));
  json_object_set_new(fig, "cart", ids_json(x, ps ? &ps->cart : NULL));
  json_object_set_new(fig, "bought", ids_json(x, ps ? &ps->bought : NULL));
  json_object_set_new(fig, "prefs", prefs_json(x, ps));
  json_object_set_new(o, "figures", fig);
  pthread_rwlock_unlock(&t->lock);
  *out = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return *out ? TAILOR_OK : util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
}

int tailor_outbox_list(tailor *t, const char *state, const char *customer,
                       char **json, tailor_error *err) {
  if (!t || !json) return util_fail(err, TAILOR_EINVAL, NULL, "outbox: missing argument");
  json_t *rows = store_outbox_list(eng_read_begin(t), state, customer, DEF_OUTBOX_LIST_MAX);
  eng_read_end(t);
  *json = json_dumps(rows, JSON_COMPACT);
  json_decref(rows);
  return *json ? TAILOR_OK : util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
}

static void collect_member(void *ud, uint32_t person) {
  idx_ids *ids = ud;
  idx_ids_push(ids, person);
}

/* "visitors 2, 7 or 14 days, cart_abandoners 2, buyers 14": the audiences
   there are, for an error message. */
static void audience_list(const idx *x, char *buf, size_t size) {
  int n = snprintf(buf, size, "visitors");
  for (uint32_t i = 0; i < x->naudiences && n >= 0 && (size_t)n < size; i++)
    n += snprintf(buf + n, size - (size_t)n, "%s%u", i ? ", " : " ", x->audience_days[i]);
  if (n >= 0 && (size_t)n < size)
    snprintf(buf + n, size - (size_t)n, " days, cart_abandoners %u, buyers %u",
             idx_audience_window(x, IDX_AUD_CART_ABANDONERS),
             idx_audience_window(x, IDX_AUD_BUYERS));
}

json_t *eng_audience_ids(tailor *t, const char *audience, int days, tailor_error *err) {
  int kind = idx_audience_kind_of(audience);
  idx_audience a = {kind < 0 ? IDX_AUD_VISITORS : (idx_audience_kind)kind,
                    days > 0 ? (uint32_t)days : 0};
  if (kind < 0 || !idx_audience_exists(t->ix, a)) {
    char list[200];
    audience_list(t->ix, list, sizeof list);
    util_fail(err, TAILOR_EINVAL, kind < 0 ? "audience" : "days",
              "audience: no %s of %d days; the audiences are %s (index.audience_days)",
              audience ? audience : "(none)", days, list);
    return NULL;
  }
  idx_ids people = {0};
  json_t *ids = json_array();
  pthread_rwlock_rdlock(&t->lock);
  idx_audience_members(t->ix, a, util_now_ms(), collect_member, &people);
  for (uint32_t i = 0; i < people.n; i++) {
    const char *cust = idx_customer_id(t->ix, people.v[i]);
    const char *key = intern_name(&t->ix->people, people.v[i]);
    json_array_append_new(ids, json_pack("[ss?]", cust ? cust : "",
                                         !cust && key ? key + 2 : NULL));
  }
  pthread_rwlock_unlock(&t->lock);
  idx_ids_free(&people);
  return ids;
}

int tailor_audience_members(tailor *t, const char *audience, int days, int with_email,
                            tailor_member_fn fn, void *ud, size_t *count,
                            tailor_error *err) {
  if (!t || !fn) return util_fail(err, TAILOR_EINVAL, NULL, "audience: missing argument");
  /* Ids are copied under the read lock; emails come from the store after. */
  json_t *ids = eng_audience_ids(t, audience, days, err);
  if (!ids) return err ? err->code : TAILOR_EINVAL;
  size_t i;
  json_t *row;
  json_array_foreach(ids, i, row) {
    const char *cust = json_string_value(json_array_get(row, 0));
    const char *anon = json_string_value(json_array_get(row, 1));
    json_t *profile = NULL;
    if (with_email && *cust) {
      profile = store_customer(eng_read_begin(t), cust);
      eng_read_end(t);
    }
    const char *email = json_string_value(json_object_get(profile, "email"));
    if (!json_is_true(json_object_get(json_object_get(profile, "consent"), "email")))
      email = NULL;
    fn(ud, *cust ? cust : NULL, anon, email);
    json_decref(profile);
  }
  if (count) *count = json_array_size(ids);
  json_decref(ids);
  return TAILOR_OK;
}
