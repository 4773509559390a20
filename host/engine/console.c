/*
** console.c: the figures of the merchant console that the engine works
** out (console.h): revenue attribution as the index keeps it, the outbox by
** trigger and state, one message for a preview, a visitor's decisions,
** and the strategies' files and checks.  Reads only: the store through
** eng_read_begin(), decisions through eng_decide() like any caller.
*/
#include "engine/console.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/defaults.h"
#include "core/util.h"
#include "engine/deliver.h"
#include "engine/dryrun.h"
#include "engine/engine.h"
#include "store/outbox.h"

#define CONSOLE_OUTBOX_ROWS 100 /* newest outbox rows listed */
#define CONSOLE_PREVIEW_K 6     /* items per recommendation in a preview */

/*
** Revenue attribution: the index keeps it as events are applied (index.h,
** "Revenue attribution"), so this is a read of sums under its read lock.
*/
json_t *eng_console_revenue(tailor *t, int64_t window_ms, int64_t since_ms,
                            tailor_error *err) {
  idx_attribution *r = malloc(sizeof *r);
  if (!r) return util_fail(err, TAILOR_ENOMEM, NULL, "out of memory"), NULL;
  json_t *rows = json_array();
  pthread_rwlock_rdlock(&t->lock);
  idx_attribution_report(t->ix, window_ms, since_ms, r);
  for (uint32_t i = 0; i < r->nrows; i++) { /* names are the index's: copied here */
    const idx_attrib_row *g = &r->rows[i];
    json_array_append_new(
        rows, json_pack("{ss ss ss sI sI sI sf}", "source", idx_attrib_source_name(g->source),
                        "strategy", g->strategy, "widget", g->widget, "shown",
                        (json_int_t)g->shown, "clicks", (json_int_t)g->clicks, "orders",
                        (json_int_t)g->orders, "revenue", g->revenue));
  }
  pthread_rwlock_unlock(&t->lock);
  since_ms = since_ms / IDX_DAY_MS * IDX_DAY_MS;
  json_t *o = json_pack(
      "{sI sI so s{sI sf} s{sI sf} s{sI sf} so s{sI sI sf}}", "window_ms",
      (json_int_t)window_ms, "since", (json_int_t)since_ms, "model", json_string("last click"),
      "total", "orders", (json_int_t)r->orders, "revenue", r->revenue, "attributed", "orders",
      (json_int_t)r->attributed_orders, "revenue", r->attributed_revenue, "rest", "orders",
      (json_int_t)(r->orders - r->attributed_orders), "revenue",
      r->revenue - r->attributed_revenue, "groups", rows, "sessions", "total",
      (json_int_t)r->sessions, "personalized", (json_int_t)r->personalized_sessions, "share",
      r->sessions ? (double)r->personalized_sessions / (double)r->sessions : 0.0);
  free(r);
  return o;
}

/*
** The outbox, as the store's operator view reads it (store/outbox.h).
*/
json_t *eng_console_outbox(tailor *t, const char *state, int pii, tailor_error *err) {
  store *st = eng_read_begin(t);
  json_t *tally = store_outbox_tally(st, err);
  json_t *rows = tally ? store_outbox_view(st, state, CONSOLE_OUTBOX_ROWS, err) : NULL;
  eng_read_end(t);
  if (!rows) {
    json_decref(tally);
    return NULL;
  }
  json_t *by = json_object(), *totals = json_object(), *c;
  size_t i;
  json_array_foreach(tally, i, c) {
    const char *tpl = json_string_value(json_object_get(c, "template"));
    const char *s = json_string_value(json_object_get(c, "state"));
    json_int_t n = json_integer_value(json_object_get(c, "n"));
    json_t *one = json_object_get(by, tpl);
    if (!one) {
      json_object_set_new(by, tpl, json_pack("{sO}", "channel", json_object_get(c, "channel")));
      one = json_object_get(by, tpl);
    }
    json_object_set_new(one, s, json_integer(json_integer_value(json_object_get(one, s)) + n));
    json_object_set_new(totals, s,
                        json_integer(json_integer_value(json_object_get(totals, s)) + n));
  }
  json_decref(tally);
  if (!pii) json_array_foreach(rows, i, c) json_object_del(c, "vars");
  return json_pack("{so so so}", "triggers", by, "totals", totals, "rows", rows);
}

/* The id of an item as a message's variables name it: the id, or an
   object with an "id" (the shipped triggers.lua describes its items). */
static void add_item(json_t *ids, json_t *v) {
  json_t *id = json_is_object(v) ? json_object_get(v, "id") : v;
  if (json_is_string(id)) json_array_append(ids, id);
}

/* Item ids a message's variables name: "item" (a price drop's, a back in
   stock's), and the lists "items", "cart", "viewed" and "bought" of the
   shipped emails. */
static void add_items(json_t *vars, json_t *ids) {
  static const char *const lists[] = {"items", "cart", "viewed", "bought"};
  add_item(ids, json_object_get(vars, "item"));
  for (size_t l = 0; l < sizeof lists / sizeof *lists; l++) {
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(vars, lists[l]), i, v) add_item(ids, v);
  }
}

json_t *eng_console_message(tailor *t, const char *key, tailor_error *err) {
  store *st = eng_read_begin(t);
  json_t *row = store_outbox_get(st, key, err);
  if (!row) {
    eng_read_end(t);
    return NULL;
  }
  json_t *ids = json_array(), *items = json_object(), *id;
  add_items(json_object_get(row, "vars"), ids);
  size_t i;
  json_array_foreach(ids, i, id) {
    json_t *item = store_item(st, json_string_value(id));
    if (item) json_object_set_new(items, json_string_value(id), item);
  }
  json_t *profile = json_is_string(json_object_get(row, "customer"))
                        ? store_customer(st, json_string_value(json_object_get(row, "customer")))
                        : NULL;
  eng_read_end(t);
  json_decref(ids);
  json_object_set_new(row, "items", items);
  json_object_set_new(row, "to", json_is_object(profile) && json_object_get(profile, "email")
                                     ? json_incref(json_object_get(profile, "email"))
                                     : json_null());
  json_decref(profile);
  /* As it would go out: rendered by its channel, as delivery hands it. */
  json_t *rendered = eng_deliver_preview(t, row, err);
  if (!rendered) {
    json_decref(row);
    return NULL;
  }
  json_object_set_new(row, "rendered", rendered);
  return row;
}

/*
** Preview: the decisions for one visitor, made for nobody, as a dry run
** makes them (eng_dry_running): a coupon is a made-up code, and no
** contact, coupon or experiment exposure is recorded.  A preview that
** acted issued the previewed customer real coupons, whose contact then
** held back their cart email under the day's cap, and exposed them to
** experiments they never saw.
*/
static json_t *decide(tailor *t, json_t *req) {
  char *text = json_dumps(req, JSON_COMPACT), *out = NULL;
  tailor_error e = {0};
  uint64_t t0 = util_mono_ns();
  int rc = text ? tailor_decide(t, text, strlen(text), &out, NULL, &e) : TAILOR_ENOMEM;
  double ms = (double)(util_mono_ns() - t0) / 1e6;
  json_t *answer = rc ? json_pack("{ss}", "error", e.message[0] ? e.message : "out of memory")
                      : json_loads(out, 0, NULL);
  free(text);
  tailor_free(out);
  return json_pack("{sO so sf}", "request", req, "answer", answer ? answer : json_null(), "ms", ms);
}

json_t *eng_console_preview(tailor *t, const char *customer, const char *anon,
                            const char *cart, const char *source, const char *segment,
                            tailor_error *err) {
  (void)err;
  int was_dry = eng_dry_running;
  eng_dry_running = 1;
  json_t *who = json_object(), *context = json_object();
  if (customer && *customer) json_object_set_new(who, "customer", json_string(customer));
  if (anon && *anon) json_object_set_new(who, "anon", json_string(anon));
  if (source && *source) json_object_set_new(context, "source", json_string(source));
  if (segment && *segment) json_object_set_new(context, "segment", json_string(segment));
  json_t *cart_ids = json_array();
  for (const char *p = cart; p && *p;) {
    size_t n = strcspn(p, ", ");
    if (n) json_array_append_new(cart_ids, json_stringn(p, n));
    p += n;
    while (*p == ',' || *p == ' ') p++;
  }
  /* The visitor's profile, for the product page (their last view). */
  json_t *profile = NULL;
  const char *id = customer && *customer ? customer : anon && *anon ? anon : NULL;
  char *text = NULL;
  tailor_error e = {0};
  if (id && tailor_customer(t, id, 0, &text, &e) == TAILOR_OK) profile = json_loads(text, 0, NULL);
  tailor_free(text);
  json_t *recent = json_object_get(json_object_get(profile, "figures"), "recent");
  json_t *item = json_array_size(cart_ids) ? json_array_get(cart_ids, 0)
                 : json_array_size(recent) ? json_array_get(recent, json_array_size(recent) - 1)
                                           : NULL;
  json_t *pages = json_array(), *others = json_array();
  const char *types[] = {"home", "product", "cart", "email"};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    json_t *page = json_pack("{ss}", "type", types[i]);
    if (!strcmp(types[i], "product")) {
      if (!item) {
        json_decref(page);
        continue;
      }
      json_object_set(page, "item", item);
    }
    if (!strcmp(types[i], "cart") && json_array_size(cart_ids)) json_object_set(page, "items", cart_ids);
    json_t *req = json_deep_copy(who);
    json_object_set_new(req, "kind", json_string("recommend"));
    json_object_set_new(req, "page", page);
    json_object_set(req, "context", context);
    json_object_set_new(req, "k", json_integer(CONSOLE_PREVIEW_K));
    json_array_append_new(pages, decide(t, req));
    json_decref(req);
  }
  /* Every other handler the strategies define, but the triggers. */
  lvm *vm = eng_thread_vm(t, &e);
  const char *file;
  const char *name;
  for (size_t i = 0; vm && (name = lvm_handler_name(vm, i, &file)); i++) {
    if (!strcmp(name, "recommend") || !strcmp(name, "rank") || !strncmp(name, "on_", 3) ||
        !strcmp(name, "segments") || !strcmp(name, "caps"))
      continue;
    json_t *req = json_deep_copy(who);
    json_object_set_new(req, "kind", json_string(name));
    json_object_set_new(req, "page", json_pack("{ss}", "type", "home"));
    json_object_set(req, "context", context);
    json_array_append_new(others, decide(t, req));
    json_decref(req);
  }
  json_t *o = json_pack("{sO so so so}", "visitor", who, "profile",
                        profile ? profile : json_null(), "recommend", pages, "decisions", others);
  json_decref(who), json_decref(context), json_decref(cart_ids);
  eng_dry_running = was_dry;
  return o;
}

/*
** Audiences and segments.  Sizes now come from the index in one pass; sizes
** over time from the snapshots eng_console_snapshot keeps in the store's
** meta table under CONSOLE_SIZES_KEY, as a JSON array of {at, sizes}
** (sizes: {"buyers/14": n, "visitors/2": n, "segment/1": n, ...}).
*/
#define CONSOLE_SIZES_KEY "console.sizes"
#define CONSOLE_DAY_MS 86400000LL

typedef struct aud_row {
  const char *kind;
  uint32_t days;
  size_t n;
  const char *label; /* a format of days */
} aud_row;

/* The audiences and segments with their sizes at `now`, and the same
   sizes keyed as a snapshot keeps them. */
static void sizes_now(tailor *t, int64_t now, json_t **audiences, json_t **segments,
                      json_t **sizes) {
  *audiences = json_array();
  *segments = json_array();
  *sizes = json_object();
  idx_audience_counts c;
  char key[64], label[160];
  pthread_rwlock_rdlock(&t->lock);
  const idx *x = t->ix;
  idx_audience_sizes(x, now, &c);
  uint32_t longest = idx_audience_window(x, IDX_AUD_BUYERS);
  uint32_t shortest = idx_audience_window(x, IDX_AUD_CART_ABANDONERS);
  aud_row rows[2];
  size_t nrows = 0;
  if (x->naudiences) {
    rows[nrows++] = (aud_row){"buyers", longest, c.buyers, "buyers: ordered within %u days"};
    rows[nrows++] = (aud_row){"cart_abandoners", shortest, c.cart_abandoners,
                              "cart abandoners: seen within %u days, items in the cart"};
  }
  /* Visitor bands from the shortest: (0, 2], (2, 7], (7, 14] days. */
  uint32_t order[IDX_MAX_AUDIENCES], prev = 0;
  for (uint32_t i = 0; i < x->naudiences; i++) order[i] = i;
  for (uint32_t i = 0; i < x->naudiences; i++)
    for (uint32_t k = i + 1; k < x->naudiences; k++)
      if (x->audience_days[order[k]] < x->audience_days[order[i]]) {
        uint32_t tmp = order[i];
        order[i] = order[k];
        order[k] = tmp;
      }
  for (uint32_t i = 0; i < x->naudiences; i++) {
    uint32_t b = order[i], d = x->audience_days[b];
    snprintf(key, sizeof key, "%s/%u", "visitors", d);
    snprintf(label, sizeof label, "visitors last seen %u to %u days ago", prev, d);
    json_array_append_new(*audiences, json_pack("{ss ss sI ss sI}", "key", key, "audience",
                                                "visitors", "days", (json_int_t)d, "label",
                                                label, "size", (json_int_t)c.visitors[b]));
    json_object_set_new(*sizes, key, json_integer((json_int_t)c.visitors[b]));
    prev = d;
  }
  for (size_t i = 0; i < nrows; i++) {
    snprintf(key, sizeof key, "%s/%u", rows[i].kind, rows[i].days);
    snprintf(label, sizeof label, rows[i].label, rows[i].days);
    json_array_insert_new(*audiences, i, json_pack("{ss ss sI ss sI}", "key", key, "audience",
                                                   rows[i].kind, "days", (json_int_t)rows[i].days,
                                                   "label", label, "size", (json_int_t)rows[i].n));
    json_object_set_new(*sizes, key, json_integer((json_int_t)rows[i].n));
  }
  const idx_clusters *cl = &x->clusters;
  for (uint32_t m = 0; m < cl->k; m++) {
    snprintf(key, sizeof key, "segment/%u", m + 1);
    json_array_append_new(*segments, json_pack("{ss sI ss ss sI}", "key", key, "id",
                                               (json_int_t)m + 1, "name", cl->name[m],
                                               "description", cl->description[m], "size",
                                               (json_int_t)cl->size[m]));
    json_object_set_new(*sizes, key, json_integer((json_int_t)cl->size[m]));
  }
  pthread_rwlock_unlock(&t->lock);
}

json_t *eng_console_audiences(tailor *t, tailor_error *err) {
  (void)err;
  int64_t now = util_now_ms();
  json_t *audiences, *segments, *sizes;
  sizes_now(t, now, &audiences, &segments, &sizes);
  char *text = store_meta_get(eng_read_begin(t), CONSOLE_SIZES_KEY);
  eng_read_end(t);
  json_t *history = text ? json_loads(text, 0, NULL) : NULL;
  free(text);
  if (!json_is_array(history)) {
    json_decref(history);
    history = json_array();
  }
  json_array_append_new(history, json_pack("{sI so sb}", "at", (json_int_t)now, "sizes", sizes,
                                           "live", 1));
  return json_pack("{sI so so so}", "now", (json_int_t)now, "audiences", audiences, "segments",
                   segments, "history", history);
}

int eng_console_snapshot(tailor *t, int64_t now, int64_t min_gap_ms, int *taken,
                         tailor_error *err) {
  if (taken) *taken = 0;
  json_t *audiences, *segments, *sizes;
  sizes_now(t, now, &audiences, &segments, &sizes);
  json_decref(audiences);
  json_decref(segments);
  /* Read, add, thin and write under the writer's lock: one writer at a
     time in this process (other nodes of a shared store are kept apart
     by min_gap_ms). */
  pthread_mutex_lock(&t->write_mu);
  char *text = store_meta_get(t->st, CONSOLE_SIZES_KEY);
  json_t *old = text ? json_loads(text, 0, NULL) : NULL;
  free(text);
  json_t *keep = json_array();
  json_int_t last = INT64_MIN;
  int32_t prev_day = INT32_MIN;
  size_t i;
  json_t *p;
  json_array_foreach(json_is_array(old) ? old : NULL, i, p) {
    json_int_t at = json_integer_value(json_object_get(p, "at"));
    if (at < now - (int64_t)DEF_CONSOLE_SIZES_KEEP_DAYS * CONSOLE_DAY_MS || at > now) continue;
    int32_t day = (int32_t)(at / CONSOLE_DAY_MS);
    /* Older than the fine span: the first of each day. */
    if (at < now - (int64_t)DEF_CONSOLE_SIZES_FINE_DAYS * CONSOLE_DAY_MS && day == prev_day)
      continue;
    prev_day = day;
    json_array_append(keep, p);
    if (at > last) last = at;
  }
  json_decref(old);
  int rc = TAILOR_OK;
  if (last == INT64_MIN || now - last >= min_gap_ms) {
    json_array_append_new(keep, json_pack("{sI sO}", "at", (json_int_t)now, "sizes", sizes));
    char *out = json_dumps(keep, JSON_COMPACT);
    rc = out ? store_meta_set(t->st, CONSOLE_SIZES_KEY, out, err)
             : util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
    free(out);
    if (!rc && taken) *taken = 1;
  }
  pthread_mutex_unlock(&t->write_mu);
  json_decref(keep);
  json_decref(sizes);
  return rc;
}

/* The sample: canonical people `keep` accepts, the `limit` last seen. */
typedef struct member_pick {
  uint32_t *v;
  size_t n, cap;
} member_pick;

static int by_last_seen(const void *a, const void *b, void *x) {
  const idx *ix = x;
  int64_t sa = ix->person[*(const uint32_t *)a].last_seen;
  int64_t sb = ix->person[*(const uint32_t *)b].last_seen;
  return sa < sb ? 1 : sa > sb ? -1 : (*(const uint32_t *)a > *(const uint32_t *)b) -
                                        (*(const uint32_t *)a < *(const uint32_t *)b);
}

static void pick_member(void *ud, uint32_t person) {
  member_pick *m = ud;
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 256;
    uint32_t *more = realloc(m->v, cap * sizeof *more);
    if (!more) return; /* a smaller sample */
    m->v = more;
    m->cap = cap;
  }
  m->v[m->n++] = person;
}

json_t *eng_console_members(tailor *t, const char *audience, int days, int segment,
                            size_t limit, int pii, tailor_error *err) {
  member_pick pick = {0};
  int64_t now = util_now_ms();
  if (limit > DEF_CONSOLE_MEMBERS_MAX) limit = DEF_CONSOLE_MEMBERS_MAX;
  pthread_rwlock_rdlock(&t->lock);
  const idx *x = t->ix;
  const char *name = NULL;
  char name_buf[128];
  if (segment > 0) {
    if ((uint32_t)segment > x->clusters.k) {
      pthread_rwlock_unlock(&t->lock);
      util_fail(err, TAILOR_EINVAL, "segment", "members: no segment %d (there are %u)",
                segment, x->clusters.k);
      return NULL;
    }
    for (uint32_t i = 0; i < x->people.n; i++)
      if (x->person[i].canon == i && x->person[i].cluster == segment) pick_member(&pick, i);
    /* Copied under the lock: a refit or a reloaded index may free it. */
    snprintf(name_buf, sizeof name_buf, "%s", x->clusters.name[segment - 1]);
    name = name_buf;
  } else {
    int kind = idx_audience_kind_of(audience);
    idx_audience a = {kind < 0 ? IDX_AUD_VISITORS : (idx_audience_kind)kind,
                      days > 0 ? (uint32_t)days : 0};
    if (kind < 0 || !idx_audience_exists(x, a)) {
      pthread_rwlock_unlock(&t->lock);
      json_decref(eng_audience_ids(t, audience, days, err)); /* its message lists them */
      if (!err || !err->code) util_fail(err, TAILOR_EINVAL, "audience", "members: no audience");
      free(pick.v);
      return NULL;
    }
    idx_audience_members(x, a, now, pick_member, &pick);
  }
  size_t total = pick.n;
  if (pick.n > 1) qsort_r(pick.v, pick.n, sizeof *pick.v, by_last_seen, (void *)x);
  json_t *rows = json_array();
  for (size_t i = 0; i < pick.n && i < limit; i++) {
    const idx_person *p = &x->person[pick.v[i]];
    const char *cust = idx_customer_id(x, pick.v[i]);
    const char *key = intern_name(&x->people, pick.v[i]);
    json_array_append_new(
        rows, json_pack("{ss? ss? sI sI sf}", "customer", cust, "anon",
                        !cust && key ? key + 2 : NULL, "last_seen", (json_int_t)p->last_seen,
                        "orders", (json_int_t)p->orders, "revenue", p->revenue));
  }
  pthread_rwlock_unlock(&t->lock);
  free(pick.v);
  /* Contact details from the store, only for a role that may see them. */
  size_t i;
  json_t *r;
  json_array_foreach(rows, i, r) {
    const char *cust = json_string_value(json_object_get(r, "customer"));
    if (!pii || !cust) continue;
    json_t *profile = store_customer(eng_read_begin(t), cust);
    eng_read_end(t);
    json_t *consent = json_object_get(profile, "consent");
    json_object_set(r, "email", json_object_get(profile, "email") ? json_object_get(profile, "email")
                                                                   : json_null());
    json_object_set_new(r, "consent_email", json_boolean(json_is_true(json_object_get(consent, "email"))));
    json_decref(profile);
  }
  json_t *o = json_pack("{sI so sb}", "size", (json_int_t)total, "members", rows, "pii", pii);
  if (segment > 0) {
    json_object_set_new(o, "segment", json_integer(segment));
    json_object_set_new(o, "name", json_string(name ? name : ""));
  } else {
    json_object_set_new(o, "audience", json_string(audience));
    json_object_set_new(o, "days", json_integer(days));
  }
  return o;
}

/*
** Strategies.
*/
/* A version of a file: FNV-1a 64 of its text, as hex. */
static void file_version(const char *path, char out[17]) {
  uint64_t h = 1469598103934665603ull;
  FILE *f = fopen(path, "rb");
  int c;
  while (f && (c = getc(f)) != EOF) h = (h ^ (unsigned char)c) * 1099511628211ull;
  if (f) fclose(f);
  snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static void list_files(const char *dir, const char *rel, json_t *files, int depth) {
  char path[4096];
  snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
  DIR *d = opendir(path);
  struct dirent *de;
  while (d && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char sub[2048], full[6144];
    struct stat st;
    snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
    snprintf(full, sizeof full, "%s/%s", dir, sub);
    if (lstat(full, &st)) continue;
    size_t n = strlen(de->d_name);
    if (S_ISDIR(st.st_mode) && depth < 4) {
      list_files(dir, sub, files, depth + 1);
    } else if (S_ISREG(st.st_mode) && n > 4 && !strcmp(de->d_name + n - 4, ".lua")) {
      char v[17];
      file_version(full, v);
      json_array_append_new(files, json_pack("{ss ss sI sI ss}", "file", sub, "folder", dir,
                                             "bytes", (json_int_t)st.st_size, "modified",
                                             (json_int_t)st.st_mtime * 1000, "version", v));
    }
  }
  if (d) closedir(d);
}

static void report_compile(void *ud, const char *file, const char *msg) {
  json_array_append_new(ud, json_pack("{ss? ss}", "file", file, "message", msg));
}

static const char *const dry_kinds[] = {"error", "unknown_segment", "empty"};

json_t *eng_console_strategies(tailor *t, size_t sample, tailor_error *err) {
  const char *dir = t->cfg.strategies, *base = t->cfg.strategies_base;
  json_t *files = json_array(), *handlers = json_array(), *compile = json_array();
  if (dir && *dir) list_files(dir, "", files, 0);
  if (base && *base) list_files(base, "", files, 0);
  tailor_error e = {0};
  lvm *vm = dir && *dir ? eng_thread_vm(t, &e) : NULL;
  const char *file, *name;
  for (size_t i = 0; vm && (name = lvm_handler_name(vm, i, &file)); i++)
    json_array_append_new(handlers, json_pack("{ss ss?}", "handler", name, "file", file));
  if (dir && *dir) {
    /* Checked as loaded: over the base, when the folder extends one. */
    tailor_error me = {0};
    char *merged = base && *base ? eng_strategies_merged(base, dir, &me) : NULL;
    lvm_config c;
    eng_vm_config(t, &c);
    if (base && *base && !merged)
      json_array_append_new(compile, json_pack("{ss}", "message", me.message));
    else
      lvm_check_dir(merged ? merged : dir, &c, report_compile, compile);
    eng_strategies_discard(merged);
  }
  /* "version" is the files that serve; after an edit that was refused,
     "on_disk" is the files' own, which do not (it named those before). */
  char sig[17], disk[17];
  uint64_t serving = atomic_load(&t->serving_sig), now = eng_strategies_signature(t);
  snprintf(sig, sizeof sig, "%016llx", (unsigned long long)serving);
  snprintf(disk, sizeof disk, "%016llx", (unsigned long long)now);
  json_t *o = json_pack("{ss? ss? ss sI so so so}", "folder", dir, "base", base, "version", sig,
                        "generation", (json_int_t)atomic_load(&t->strat_gen), "files", files,
                        "handlers", handlers, "compile_errors", compile);
  if (dir && *dir && now != serving) json_object_set_new(o, "on_disk", json_string(disk));
  if (!vm && e.message[0]) json_object_set_new(o, "load_error", json_string(e.message));
  if (sample && dir && *dir) {
    eng_dry_report rep = {0};
    tailor_error de = {0};
    if (eng_dry_run(t, sample, &rep, &de) != TAILOR_OK) {
      json_object_set_new(o, "check", json_pack("{ss}", "error", de.message));
    } else {
      json_t *hs = json_array(), *ps = json_array();
      for (size_t i = 0; i < rep.n_handlers; i++)
        json_array_append_new(
            hs, json_pack("{ss ss? sI sI sI}", "name", rep.handlers[i].name, "where",
                          rep.handlers[i].where, "calls", (json_int_t)rep.handlers[i].calls,
                          "errors", (json_int_t)rep.handlers[i].errors, "empty",
                          (json_int_t)rep.handlers[i].empty));
      for (size_t i = 0; i < rep.n_problems; i++)
        json_array_append_new(
            ps, json_pack("{ss ss ss ss sI}", "kind", dry_kinds[rep.problems[i].kind], "call",
                          rep.problems[i].call, "text", rep.problems[i].text, "visitor",
                          rep.problems[i].visitor ? rep.problems[i].visitor : "-", "count",
                          (json_int_t)rep.problems[i].count));
      json_object_set_new(
          o, "check",
          json_pack("{sI sI sb so so sI sI sI sI}", "visitors", (json_int_t)rep.visitors,
                    "customers", (json_int_t)rep.customers, "generated", rep.generated,
                    "handlers", hs, "problems", ps, "errors", (json_int_t)rep.errors,
                    "unknown_segments", (json_int_t)rep.unknown_segments, "empty",
                    (json_int_t)rep.empty, "at", (json_int_t)util_now_ms()));
      eng_dry_report_free(&rep);
    }
  }
  (void)err;
  return o;
}
