/*
** decide.c: one decision.  The request arrives typed (core/request.h); the
** handler runs in the thread's sandbox with a lazy ctx; what it returns is
** checked and written straight into the answer's text, with no JSON tree in
** between.  A strategy that fails yields the fallback (bestsellers, or for
** rank the storefront's own order), counted and logged; the caller still
** gets an answer.
*/
#include <lauxlib.h>
#include <limits.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/util.h"
#include "engine/engine.h"
#include "lua/ljson.h"

/* Scores rank, they are not money: six significant digits (printing
   doubles in full was a fifth of a decision once). */
#define DECIDE_DIGITS 6

/* One decision, shared with the function that runs inside Lua. */
typedef struct request {
  tailor *t;
  const dreq *q;
  long k;
  const char *file; /* strategy file of the handler */
  int line;         /* line where the handler is defined */
  strbuf *out;      /* the answer being written */
  int no_handler;   /* no strategy defines `kind` */
  eng_call call;    /* what the call issued (coupons), for tailor.coupon */
  const char *capped; /* a popup held back by a frequency cap: which */
  char popup[128];  /* the popup answered (its name), for the caps */
} request;

static void push_ctx(lua_State *L, request *r) {
  lapi_ctx c = {r->q->kind, r->k, r->q->customer, r->q->anon, r->q->session,
                r->q->page, r->q->context, r->q->items, r->q->exclude, 0};
  /* A visitor who declined personalization gets what anyone would: the
     strategy sees no one (runs under the index read lock). */
  uint32_t p = idx_person_of(r->t->ix, c.customer, c.anon);
  if (p != INTERN_NONE && (r->t->ix->person[p].flags & IDX_NO_PERSONALIZATION))
    c.customer = c.anon = c.session = NULL;
  lapi_push_decide_ctx(L, r->t, &c, &r->q->ctl);
}

/* luaL_error with the handler's file and line in front. */
static int handler_error(lua_State *L, request *r, const char *fmt, const char *detail) {
  return luaL_error(L, "%s:%d: %s returned %s: %s", r->file ? r->file : "?", r->line,
                    r->q->kind, fmt, detail);
}

/* Write the value at `idx` as JSON, or fail the handler with where. */
static void write_value(lua_State *L, request *r, int at, const char *path) {
  char why[300];
  if (ljson_write(L, at, r->out, DECIDE_DIGITS, path, why, sizeof why))
    handler_error(L, r, "a value that is not JSON", why);
}

/*
** The request's merchandising controls (core/request.h req_controls), the
** host's side: whatever a recommend handler returned, or the fallback, what
** the page already shows (exclude) and what the filter rules out (brand,
** price band, sold out unless filter.in_stock is false) is dropped; boosted
** items move ahead of the rest and buried ones behind it, each group in the
** strategy's order; then each pinned item takes its slot.  A pin overrides
** the filter, boost and bury (the merchant named that item for that place)
** but not exclude, a sold-out item or a deleted one: its slot goes to the
** next item.  A pin the strategy did not return is written {"id", "reason":
** "pinned"}; past the end of a short list it comes last.  An id the engine
** does not know is left for the writer to refuse.
*/
typedef struct slate {
  size_t n;            /* candidates, in the strategy's order */
  const char **id;     /* their ids (NULL: an entry without one) */
  uint32_t *iid;       /* their items in the index (INTERN_NONE: unknown) */
  signed char *cls;    /* per candidate: SL_* */
  long *out;           /* what to write: i >= 0 candidate i, -1 - p pin p */
  size_t nout;
} slate;

enum { SL_DROP = -1, SL_BOOST, SL_PLAIN, SL_BURY, SL_PINNED };

static int in_list(const char *const *v, size_t n, const char *id) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(v[i], id)) return 1;
  return 0;
}

/* Whether `id` (item iid) is named by a boost or bury list: by its id, or
   by "brand:<its brand>". */
static int named(const idx *x, const char *const *v, size_t n, const char *id, uint32_t iid) {
  const char *brand = iid != INTERN_NONE ? intern_name(&x->brands, x->item[iid].brand) : NULL;
  for (size_t i = 0; i < n; i++) {
    if (!strncmp(v[i], "brand:", 6) ? brand && !strcmp(v[i] + 6, brand) : !strcmp(v[i], id))
      return 1;
  }
  return 0;
}

/* Whether a known item may be shown at all: not excluded, not deleted, in
   stock unless the request lets sold-out items through. */
static int showable(const idx *x, const dreq *q, const char *id, uint32_t iid) {
  if (in_list(q->ex_ids, q->n_ex, id)) return 0;
  if (iid == INTERN_NONE) return 1; /* the writer refuses it, by name */
  const idx_item *it = &x->item[iid];
  return !it->deleted && (it->in_stock || q->ctl.any_stock);
}

static int filtered_out(const idx *x, const req_controls *c, uint32_t iid) {
  if (iid == INTERN_NONE) return 0;
  const idx_item *it = &x->item[iid];
  if (c->min_price > 0 && it->price < c->min_price) return 1;
  if (c->max_price > 0 && it->price > c->max_price) return 1;
  if (!c->n_brands) return 0;
  const char *brand = intern_name(&x->brands, it->brand);
  return !brand || !in_list(c->brands, c->n_brands, brand);
}

/*
** Whether a pinned item the strategy did not return may be put back: not
** the page's own item, not in the visitor's cart.  A strategy leaves those
** out of its answer on purpose (the product page recommends other items,
** the cart page what goes with the cart), and a pin put back there would
** recommend the very item on the page, or one already bought in a minute.
*/
static int pin_fits(const idx *x, const dreq *q, const char *id, uint32_t iid) {
  const char *page_item = json_string_value(json_object_get(q->page, "item"));
  if (page_item && !strcmp(page_item, id)) return 0;
  uint32_t p = idx_person_of(x, q->customer, q->anon);
  return p == INTERN_NONE || !idx_ids_has(x->person[p].cart.v, x->person[p].cart.n, iid);
}

/* Fill s->cls and s->out (room for n + REQ_MAX_PINS) for at most k items. */
static void arrange(const idx *x, const dreq *q, long k, slate *s) {
  const req_controls *c = &q->ctl;
  long pin_at[REQ_MAX_PINS]; /* per pin: its candidate, -1 - p when none, or
                                LONG_MIN when it cannot be shown */
  for (size_t p = 0; p < c->n_pins; p++) {
    uint32_t iid = idx_item_id(x, c->pins[p].item);
    int shown = c->pins[p].slot <= k && iid != INTERN_NONE && showable(x, q, c->pins[p].item, iid);
    pin_at[p] = shown ? -1 - (long)p : LONG_MIN; /* a slot beyond k: not in this widget */
  }
  /* A pin the strategy did not return is put back only where it fits. */
  for (size_t p = 0; p < c->n_pins; p++) {
    if (pin_at[p] == LONG_MIN) continue;
    int returned = 0;
    for (size_t i = 0; i < s->n && !returned; i++)
      returned = s->id[i] && !strcmp(s->id[i], c->pins[p].item);
    if (!returned && !pin_fits(x, q, c->pins[p].item, idx_item_id(x, c->pins[p].item)))
      pin_at[p] = LONG_MIN;
  }
  for (size_t i = 0; i < s->n; i++) {
    const char *id = s->id[i];
    uint32_t iid = id ? idx_item_id(x, id) : INTERN_NONE;
    s->iid[i] = iid;
    s->cls[i] = SL_PLAIN;
    if (!id) continue;
    if (!showable(x, q, id, iid)) {
      s->cls[i] = SL_DROP;
      continue;
    }
    for (size_t p = 0; p < c->n_pins; p++) {
      if (pin_at[p] == LONG_MIN || strcmp(c->pins[p].item, id)) continue;
      s->cls[i] = pin_at[p] < 0 ? SL_PINNED : SL_DROP; /* a repeat: once */
      if (pin_at[p] < 0) pin_at[p] = (long)i;
    }
    if (s->cls[i] != SL_PLAIN) continue;
    if (filtered_out(x, c, iid)) s->cls[i] = SL_DROP;
    else if (named(x, c->bury, c->n_bury, id, iid)) s->cls[i] = SL_BURY;
    else if (named(x, c->boost, c->n_boost, id, iid)) s->cls[i] = SL_BOOST;
  }
  /* The rest in order, then the pins into their slots. */
  size_t nrest = 0;
  long *rest = s->out + c->n_pins; /* room: the first n_pins stay free */
  for (int g = SL_BOOST; g <= SL_BURY; g++)
    for (size_t i = 0; i < s->n; i++)
      if (s->cls[i] == g) rest[nrest++] = (long)i;
  size_t taken = 0, pinned = 0, npins = 0;
  for (size_t p = 0; p < c->n_pins; p++) npins += pin_at[p] != LONG_MIN;
  s->nout = 0;
  for (long slot = 1; slot <= k; slot++) {
    size_t p = 0;
    while (p < c->n_pins && (pin_at[p] == LONG_MIN || c->pins[p].slot != slot)) p++;
    if (p < c->n_pins) {
      s->out[s->nout++] = pin_at[p];
      pinned++;
    } else if (taken < nrest) {
      s->out[s->nout++] = rest[taken++];
    } else {
      break;
    }
  }
  /* Pins past the end of a short list: last, in slot order. */
  for (long slot = (long)s->nout + 1; pinned < npins && slot <= k; slot++)
    for (size_t p = 0; p < c->n_pins; p++)
      if (pin_at[p] != LONG_MIN && c->pins[p].slot == slot) {
        s->out[s->nout++] = pin_at[p];
        pinned++;
      }
}

/* The fields an entry may have, in the order they are written, with the
   JSON that starts each. */
#define ENTRY_FIELD(name, json) {name, sizeof name - 1, json, sizeof json - 1}
static const struct entry_field {
  const char *name;
  size_t len;
  const char *json;
  size_t json_len;
} entry_fields[] = {
    ENTRY_FIELD("id", "{\"id\":"),
    ENTRY_FIELD("score", ",\"score\":"),
    ENTRY_FIELD("reason", ",\"reason\":"),
    ENTRY_FIELD("because", ",\"because\":"),
    ENTRY_FIELD("explain", ",\"explain\":"),
};
enum { NFIELDS = sizeof entry_fields / sizeof *entry_fields };

/* The place of key (klen bytes) in entry_fields, or -1. */
static int field_of(const char *key, size_t klen) {
  for (int a = 0; a < NFIELDS; a++)
    if (entry_fields[a].len == klen && !memcmp(entry_fields[a].name, key, klen)) return a;
  return -1;
}

/* A pinned item the strategy did not return (slate out -1 - p). */
static void write_pin(request *r, long at) {
  const char *id = r->q->ctl.pins[-1 - at].item;
  buf_puts(r->out, "{\"id\":");
  buf_json_str(r->out, id, strlen(id));
  buf_puts(r->out, ",\"reason\":\"pinned\",\"explain\":\"Featured\"}");
}

/* The slate's arrays on the C stack for a usual list, else in Lua's memory
   (userdata, under the cap): an error thrown while writing leaks nothing
   either way. */
enum { SLATE_SMALL = 64 };
typedef struct slate_room {
  const char *id[SLATE_SMALL];
  uint32_t iid[SLATE_SMALL];
  signed char cls[SLATE_SMALL];
  long out[SLATE_SMALL + REQ_MAX_PINS];
} slate_room;

static slate slate_new(lua_State *L, slate_room *room, size_t n) {
  slate s = {n, room->id, room->iid, room->cls, room->out, 0};
  if (n > SLATE_SMALL) {
    s.id = lua_newuserdatauv(L, n * sizeof *s.id, 0);
    s.iid = lua_newuserdatauv(L, n * sizeof *s.iid, 0);
    s.cls = lua_newuserdatauv(L, n, 0);
    s.out = lua_newuserdatauv(L, (n + REQ_MAX_PINS) * sizeof *s.out, 0);
  }
  return s;
}

/*
** A kernel's list handed back untouched (engine.h, lapi_rows_of): written
** from its snapshot as write_recommend writes the same rows made into Lua
** tables, byte for byte.  Returns 0, having written nothing, when a row is
** one the writer refuses (an item deleted since, a score that is not a
** number) or an anchor's name is not UTF-8: then the list is made into
** tables and write_recommend says what is wrong, as for any list.
*/
static int write_kernel_rows(lua_State *L, request *r, const lapi_rows *k) {
  slate_room room;
  slate s = slate_new(L, &room, k->n);
  for (size_t i = 0; i < s.n; i++) s.id[i] = k->row[i].id;
  arrange(r->t->ix, r->q, r->k, &s);
  for (size_t w = 0; w < s.nout; w++) {
    long at = s.out[w];
    if (at < 0) continue;
    const lapi_row *row = &k->row[at];
    if (!row->id || s.iid[at] == INTERN_NONE || r->t->ix->item[s.iid[at]].deleted ||
        !isfinite(row->score) ||
        (row->because && !util_utf8_valid(row->because, row->because_len, NULL)))
      return 0;
  }
  buf_putc(r->out, '[');
  for (size_t w = 0; w < s.nout; w++) {
    long at = s.out[w];
    if (w) buf_putc(r->out, ',');
    if (at < 0) {
      write_pin(r, at);
      continue;
    }
    const lapi_row *row = &k->row[at];
    buf_put(r->out, entry_fields[0].json, entry_fields[0].json_len);
    buf_json_str(r->out, row->id, row->id_len);
    buf_put(r->out, entry_fields[1].json, entry_fields[1].json_len);
    buf_json_num(r->out, row->score, DECIDE_DIGITS);
    buf_put(r->out, entry_fields[2].json, entry_fields[2].json_len);
    buf_json_str(r->out, k->reason, strlen(k->reason));
    if (row->because) {
      buf_put(r->out, entry_fields[3].json, entry_fields[3].json_len);
      buf_putc(r->out, '[');
      buf_json_str(r->out, row->because, row->because_len);
      buf_putc(r->out, ']');
    }
    buf_putc(r->out, '}');
  }
  buf_putc(r->out, ']');
  return 1;
}

/*
** An entry as one pass over it found it (the list holds the entry and the
** entry its values, and no strategy code runs until the answer is written:
** ljson calls only the host's __totable, lvm_totable; so the strings stay):
** each allowed field's value, strings and numbers as they are, others
** (a list of anchors in `because`) looked up again when written; the
** first field that is not allowed.
*/
typedef struct entry_val {
  int type; /* LUA_TNIL when absent */
  int isint;
  size_t len;
  union {
    const char *s;
    lua_Integer i;
    lua_Number d;
  } v;
} entry_val;

typedef struct entry {
  int table; /* else the entry is not a table (a plain id for rank, when a string) */
  const char *unknown;
  entry_val f[NFIELDS];
} entry;

static void read_val(lua_State *L, int at, entry_val *v) {
  v->type = lua_type(L, at);
  if (v->type == LUA_TSTRING) {
    v->v.s = lua_tolstring(L, at, &v->len);
  } else if (v->type == LUA_TNUMBER) {
    v->isint = lua_isinteger(L, at);
    if (v->isint) v->v.i = lua_tointeger(L, at);
    else v->v.d = lua_tonumber(L, at);
  }
}

/* Entry i of the list at `list` into e; nothing left on the stack. */
static void read_entry(lua_State *L, int list, lua_Integer i, entry *e) {
  int t = lua_rawgeti(L, list, i);
  e->table = t == LUA_TTABLE;
  e->unknown = NULL;
  for (int a = 0; a < NFIELDS; a++) e->f[a].type = LUA_TNIL;
  if (!e->table) {
    read_val(L, -1, &e->f[0]); /* rank: an id as a string */
    lua_pop(L, 1);
    return;
  }
  int entry_at = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, entry_at)) {
    size_t klen = 0;
    const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : "?";
    int a = field_of(key, klen);
    if (a >= 0) read_val(L, -1, &e->f[a]);
    else if (!e->unknown) e->unknown = key;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Field a of entry i: its value as JSON. */
static void write_field(lua_State *L, request *r, int list, lua_Integer i, const entry_val *v,
                        int a) {
  char what[160], why[300];
  const char *name = entry_fields[a].name;
  why[0] = '\0';
  if (v->type == LUA_TSTRING) {
    /* Charged as ljson charges a string: the writing is the strategy's. */
    if (lvm_spend(L, 4 + (long)(v->len / 16)))
      snprintf(why, sizeof why, "%s: %s", name, lvm_budget_message(L));
    else if (r->out->n + v->len > LJSON_MAX_WRITE) /* at least its bytes */
      snprintf(why, sizeof why, "%s: the answer is larger than %zu MiB as JSON", name,
               LJSON_MAX_WRITE >> 20);
    else if (util_utf8_valid(v->v.s, v->len, NULL)) buf_json_str(r->out, v->v.s, v->len);
    else snprintf(why, sizeof why, "%s: string is not valid UTF-8", name);
  } else if (v->type == LUA_TNUMBER && v->isint) {
    buf_json_int(r->out, (long long)v->v.i);
  } else if (v->type == LUA_TNUMBER) {
    if (isfinite(v->v.d)) buf_json_num(r->out, v->v.d, DECIDE_DIGITS);
    else snprintf(why, sizeof why, "%s: number is not finite", name);
  } else if (lua_rawgeti(L, list, i) != LUA_TTABLE) { /* cannot change: no strategy code
                                                          runs while the answer is written */
    snprintf(why, sizeof why, "must be a table with an id");
    lua_pop(L, 1);
  } else { /* a table, a boolean, ...: as ljson writes it, or its error */
    lua_pushstring(L, name);
    lua_rawget(L, -2);
    ljson_write(L, -1, r->out, DECIDE_DIGITS, name, why, sizeof why);
    lua_pop(L, 2);
  }
  if (why[0]) {
    snprintf(what, sizeof what, "item %lld", (long long)i);
    handler_error(L, r, what, why);
  }
}

/*
** A recommend (or rank) handler returns a list of entries ({id=, score=,
** reason=, because=, explain=}), or a table with that list under `items`.
** Ids must name items the engine knows (for rank: items of the request's
** list; a plain id string is an entry too); unknown fields are errors, so a
** typo in a strategy shows up at once instead of as a missing explanation.
** The entries are read in one pass, then written with their fields in a
** fixed order; a recommend answer as the request's controls arrange it
** (above), a ranking whole.
*/
static void write_recommend(lua_State *L, request *r, int res) {
  int rank = !strcmp(r->q->kind, "rank");
  char what[160];
  int list = res;
  /* A kernel's list itself is not asked for `items`: that would make its rows. */
  const lapi_rows *kernel = lapi_rows_of(L, res);
  if (!kernel && lua_type(L, res) == LUA_TTABLE) {
    if (lua_getfield(L, res, "items") == LUA_TTABLE) {
      list = lua_gettop(L);
      kernel = lapi_rows_of(L, list);
    } else {
      lua_pop(L, 1);
    }
  }
  if (lua_type(L, list) != LUA_TTABLE)
    handler_error(L, r, "no list of items", "return a list or {items = {...}}");
  if (kernel && !rank && write_kernel_rows(L, r, kernel)) return;
  lvm_whole(L, list); /* a kernel's rows as Lua tables (also when partly read) */
  lua_Integer n = (lua_Integer)lua_rawlen(L, list);
  slate_room room;
  slate s = slate_new(L, &room, (size_t)n);
  entry ent_room[SLATE_SMALL];
  entry *ents = s.n <= SLATE_SMALL ? ent_room : lua_newuserdatauv(L, s.n * sizeof *ents, 0);
  luaL_checkstack(L, 8, "recommend");
  /* A ranking may reorder the storefront's list, never add to it: each of
     the request's entries at most once (checked on the values read, which
     are the ones written: no strategy code runs in between). */
  if (rank && (size_t)n > r->q->n_ids) {
    snprintf(what, sizeof what, "%lld items for a list of %zu", (long long)n, r->q->n_ids);
    handler_error(L, r, what, "a ranking re-orders the request's items, each once");
  }
  unsigned char *taken = rank ? lua_newuserdatauv(L, r->q->n_ids + 1, 0) : NULL;
  if (taken) memset(taken, 0, r->q->n_ids + 1);
  for (size_t i = 0; i < s.n; i++) {
    read_entry(L, list, (lua_Integer)i + 1, &ents[i]);
    const entry_val *id = &ents[i].f[0];
    const char *rid = id->type == LUA_TSTRING ? id->v.s : NULL;
    /* An id is text: no NUL inside (it would be looked up cut short and
       written whole), valid UTF-8 (the answer is JSON). */
    if (rid && (strlen(rid) != id->len || !util_utf8_valid(rid, id->len, NULL))) {
      snprintf(what, sizeof what, "item %lld", (long long)i + 1);
      handler_error(L, r, what, "'id' must be UTF-8 text without NUL bytes");
    }
    s.id[i] = ents[i].table ? rid : NULL;
    if (!rank) continue;
    size_t g = 0, any = 0;
    for (; rid && g < r->q->n_ids; g++) {
      if (strcmp(r->q->ids[g], rid)) continue;
      any = 1;
      if (!taken[g]) break;
    }
    if (!rid || g == r->q->n_ids) {
      snprintf(what, sizeof what, any ? "item %lld repeats an entry of the request's list"
                                      : "item %lld not in the request's list",
               (long long)i + 1);
      handler_error(L, r, what, rid ? rid : "(no id)");
    }
    taken[g] = 1;
  }
  if (!rank) arrange(r->t->ix, r->q, r->k, &s);
  buf_putc(r->out, '[');
  size_t count = rank ? (size_t)n : s.nout;
  for (size_t w = 0; w < count; w++) {
    long at = rank ? (long)w : s.out[w];
    if (w) buf_putc(r->out, ',');
    if (at < 0) {
      write_pin(r, at);
      continue;
    }
    lua_Integer i = (lua_Integer)at + 1;
    const entry *e = &ents[at];
    const entry_val *id = &e->f[0];
    if (rank && !e->table && id->type == LUA_TSTRING) {
      buf_puts(r->out, "{\"id\":");
      buf_json_str(r->out, id->v.s, id->len);
      buf_putc(r->out, '}');
      continue;
    }
    if (!e->table) {
      snprintf(what, sizeof what, "item %lld", (long long)i);
      handler_error(L, r, what, "must be a table with an id");
    }
    if (e->unknown) {
      snprintf(what, sizeof what, "item %lld with unknown field '%s'", (long long)i, e->unknown);
      handler_error(L, r, what, "allowed: id, score, reason, because, explain");
    }
    if (id->type != LUA_TSTRING) {
      snprintf(what, sizeof what, "item %lld", (long long)i);
      handler_error(L, r, what, "'id' must be a string");
    }
    uint32_t iid = rank ? INTERN_NONE : s.iid[at]; /* arrange looked it up */
    if (!rank && (iid == INTERN_NONE || r->t->ix->item[iid].deleted)) {
      snprintf(what, sizeof what, "item %lld with unknown id", (long long)i);
      handler_error(L, r, what, id->v.s);
    }
    buf_put(r->out, entry_fields[0].json, entry_fields[0].json_len);
    buf_json_str(r->out, id->v.s, id->len);
    for (int a = 1; a < NFIELDS; a++) {
      const entry_val *v = &e->f[a];
      if (v->type == LUA_TNIL) continue;
      if (a == 1 && v->type != LUA_TNUMBER) {
        snprintf(what, sizeof what, "item %lld", (long long)i);
        handler_error(L, r, what, "'score' must be a number");
      }
      buf_put(r->out, entry_fields[a].json, entry_fields[a].json_len);
      /* because: an item id, or a list of them */
      int one = a == 3 && v->type == LUA_TSTRING;
      if (one) buf_putc(r->out, '[');
      write_field(L, r, list, i, v, a);
      if (one) buf_putc(r->out, ']');
    }
    buf_putc(r->out, '}');
    if (r->out->n > LJSON_MAX_WRITE) {
      snprintf(what, sizeof what, "item %lld", (long long)i);
      char why[64];
      snprintf(why, sizeof why, "the answer is larger than %zu MiB as JSON", LJSON_MAX_WRITE >> 20);
      handler_error(L, r, what, why);
    }
  }
  buf_putc(r->out, ']');
}

/* The largest discount that keeps the item named by the string at `at`
   over its margin; 100 for an item the index does not know (no cost). */
static double item_max_discount(const idx *x, lua_State *L, int at, double min_margin) {
  size_t len;
  const char *id = lua_tolstring(L, at, &len);
  uint32_t i = strlen(id) == len ? idx_item_id(x, id) : INTERN_NONE;
  return i == INTERN_NONE ? 100 : idx_max_discount(x, i, min_margin);
}

/*
** A discount handler returns {percent =, tier =, reason =, code =, item =
** or items = {...}} or nil.  The margin guard is the host's: the percent is
** lowered to what keeps every concerned item (the named ones, else the
** customer's cart) at discounts.min_margin_pct over its cost, and the
** answer says so ("capped": true, "max_percent").
*/
/* The field `name` of the table at `t` as the answer will be written: raw
   (ljson reads the table with lua_next), so no __index can show the guard
   one item and the answer another. */
static int raw_field(lua_State *L, int t, const char *name) {
  lua_pushstring(L, name);
  return lua_rawget(L, t);
}

/* The largest discount that keeps every item of category path `cat` (and
   of the categories inside it) over its margin: a walk of the catalog, as
   a discount on a category is rarer than a decision. */
static double category_max_discount(const idx *x, const char *cat, size_t len,
                                    double min_margin) {
  double max = 100;
  for (uint32_t i = 0; i < x->items.n; i++) {
    const idx_item *it = &x->item[i];
    if (it->deleted || it->category == INTERN_NONE) continue;
    const char *c = intern_name(&x->categories, it->category);
    if (c && !strncmp(c, cat, len) && (c[len] == '\0' || c[len] == '/'))
      max = fmin(max, idx_max_discount(x, i, min_margin));
  }
  return max;
}

/* The reason's text says the percent the guard lowered: "25%" in it becomes
   "5%" (the first such number, as a strategy writes it with ..). */
static void reason_follows(lua_State *L, int res, double asked, double max) {
  if (raw_field(L, res, "reason") != LUA_TSTRING) {
    lua_pop(L, 1);
    return;
  }
  char was[32], now[32];
  snprintf(was, sizeof was, "%.14g%%", asked);
  snprintf(now, sizeof now, "%.14g%%", max);
  const char *text = lua_tostring(L, -1), *at = strstr(text, was);
  if (!at && asked == floor(asked)) { /* a float as Lua writes it: "25.0%" */
    snprintf(was, sizeof was, "%.1f%%", asked);
    at = strstr(text, was);
  }
  if (at && (at == text || !isdigit((unsigned char)at[-1]))) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, text, (size_t)(at - text));
    luaL_addstring(&b, now);
    luaL_addstring(&b, at + strlen(was));
    luaL_pushresult(&b);
    lua_pushliteral(L, "reason");
    lua_insert(L, -2);
    lua_rawset(L, res);
  }
  lua_pop(L, 1);
}

static void check_discount(lua_State *L, request *r, int res) {
  if (lua_isnil(L, res)) return;
  if (lua_type(L, res) == LUA_TTABLE) lvm_whole(L, res);
  int pt = lua_type(L, res) == LUA_TTABLE ? raw_field(L, res, "percent") : LUA_TNONE;
  if (pt == LUA_TNONE || (pt != LUA_TNIL && (pt != LUA_TNUMBER || !(lua_tonumber(L, -1) >= 0) ||
                                             lua_tonumber(L, -1) > 100)))
    handler_error(L, r, "a discount", "'percent' must be a number from 0 to 100");
  double pct = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (pt == LUA_TNIL) return;
  const idx *x = r->t->ix;
  double min_margin = (double)r->t->cfg.min_margin_pct, max = 100;
  int named = 0, t = raw_field(L, res, "item");
  if (t == LUA_TSTRING) {
    named = 1;
    max = fmin(max, item_max_discount(x, L, -1, min_margin));
  } else if (t != LUA_TNIL) {
    handler_error(L, r, "a discount", "'item' must be an item id");
  }
  lua_pop(L, 1);
  t = raw_field(L, res, "items");
  if (t == LUA_TTABLE) {
    /* Every item named, however many: the guard holds for each. */
    named = 1;
    lua_Integer m = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= m; i++) {
      if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
        handler_error(L, r, "a discount", "'items' must be a list of item ids");
      max = fmin(max, item_max_discount(x, L, -1, min_margin));
      lua_pop(L, 1);
    }
  } else if (t != LUA_TNIL) {
    handler_error(L, r, "a discount", "'items' must be a list of item ids");
  }
  lua_pop(L, 1);
  /* A discount on a category (the win-back's): every item of it. */
  t = raw_field(L, res, "category");
  if (t == LUA_TSTRING) {
    size_t len;
    const char *cat = lua_tolstring(L, -1, &len);
    named = 1;
    max = fmin(max, category_max_discount(x, cat, len, min_margin));
  } else if (t != LUA_TNIL) {
    handler_error(L, r, "a discount", "'category' must be a category path");
  }
  lua_pop(L, 1);
  if (!named) { /* the whole cart */
    uint32_t p = idx_person_of(x, r->q->customer, r->q->anon);
    for (uint32_t c = 0; p != INTERN_NONE && c < x->person[p].cart.n; c++)
      max = fmin(max, idx_max_discount(x, x->person[p].cart.v[c], min_margin));
  }
  max = floor(max); /* whole percents: what a shop prints */
  if (pct > max) {
    reason_follows(L, res, pct, max);
    lua_pushnumber(L, max);
    lua_setfield(L, res, "percent");
    lua_pushboolean(L, 1);
    lua_setfield(L, res, "capped");
    lua_pushnumber(L, max);
    lua_setfield(L, res, "max_percent");
  }
}

/*
** A popup handler returns nil or a table of fields the storefront renders
** (strategies.md): tailor.js reads name, title, message, coupon (the code),
** percent and expires, and the caps count the popup by its name.  Those are
** checked, as a recommend entry's are, so a string or a list, a coupon
** table in place of its code or a percent of "ten" fails the handler (the
** answer is null) instead of reaching the page as a broken popup; other
** fields are the merchant's renderer's and pass as they are.
*/
static void check_popup(lua_State *L, request *r, int res) {
  static const char *const texts[] = {"name", "title", "message", "coupon", "kind"};
  static const char fields[] = "return nil or a table of fields (name, title, message, "
                               "coupon, percent, ...)";
  int t = lua_type(L, res);
  if (t == LUA_TNIL) return;
  if (t != LUA_TTABLE) {
    char what[32];
    snprintf(what, sizeof what, "a %s", lua_typename(L, t));
    handler_error(L, r, what, fields);
  }
  lvm_whole(L, res);
  lua_pushnil(L);
  while (lua_next(L, res)) { /* a list, or a table with one, is no popup */
    if (lua_type(L, -2) != LUA_TSTRING)
      handler_error(L, r, lua_rawlen(L, res) ? "a list" : "a table with a key that is not a name",
                    fields);
    lua_pop(L, 1);
  }
  char why[64];
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
    t = raw_field(L, res, texts[i]);
    if (t != LUA_TNIL && t != LUA_TSTRING) {
      snprintf(why, sizeof why, "'%s' must be a string", texts[i]);
      handler_error(L, r, "a popup", why);
    }
    lua_pop(L, 1);
  }
  t = raw_field(L, res, "percent");
  if (t != LUA_TNIL && (t != LUA_TNUMBER || !(lua_tonumber(L, -1) >= 0) ||
                        lua_tonumber(L, -1) > 100))
    handler_error(L, r, "a popup", "'percent' must be a number from 0 to 100");
  lua_pop(L, 1);
  t = raw_field(L, res, "expires");
  if (t != LUA_TNIL && t != LUA_TNUMBER)
    handler_error(L, r, "a popup", "'expires' must be a number (ms)");
  lua_pop(L, 1);
}

/* Runs inside lvm_pcall: everything that touches Lua is protected. */
static int run_handler(lua_State *L) {
  request *r = lvm_ud(L);
  lvm *vm = lvm_of(L);
  if (!lvm_push_handler(vm, r->q->kind, &r->file)) {
    r->no_handler = 1;
    return luaL_error(L, "no strategy defines a '%s' handler%s", r->q->kind,
                      r->t->no_default_strategies
                          ? " (no strategies are loaded: the default folder 'strategies' "
                            "was not found where tailor runs)"
                          : "");
  }
  lua_Debug ar;
  lua_pushvalue(L, -1);
  if (lua_getinfo(L, ">S", &ar)) r->line = ar.linedefined;
  /* Frequency caps (engine/coupon.c): a visitor at the day's cap gets no
     popup, and the handler is not asked. */
  int popup = !strcmp(r->q->kind, "popup");
  eng_call *c = &r->call;
  if (popup) {
    eng_caps_read(L, &c->caps);
    c->caps_read = 1;
    if ((r->capped = eng_caps_over(r->t, &c->caps, c->customer, c->anon, NULL, 0,
                                   util_now_ms(), NULL))) {
      buf_puts(r->out, "null");
      return 0;
    }
  }
  int rows = !strcmp(r->q->kind, "recommend") || !strcmp(r->q->kind, "rank");
  if (rows) lapi_lazy_rows(L); /* kernel rows stay in C until read */
  push_ctx(L, r);
  lua_call(L, 1, 1);
  int res = lua_gettop(L);
  if (rows) {
    write_recommend(L, r, res);
    return 0;
  }
  if (!strcmp(r->q->kind, "discount")) check_discount(L, r, res);
  if (popup) check_popup(L, r, res);
  /* No popup because tailor.coupon met a cap: the answer says which. */
  if (popup && lua_isnil(L, res) && c->capped) r->capped = c->capped;
  if (popup && lua_istable(L, res)) {
    const char *name = lua_getfield(L, res, "name") == LUA_TSTRING ? lua_tostring(L, -1) : "popup";
    snprintf(r->popup, sizeof r->popup, "%s", name);
    lua_pop(L, 1);
    /* ... and one past its campaign's cap gets none, nor its coupon. */
    if ((r->capped = eng_caps_over(r->t, &c->caps, c->customer, c->anon, r->popup, 0,
                                   util_now_ms(), NULL))) {
      eng_call_clear(c);
      r->popup[0] = '\0';
      buf_puts(r->out, "null");
      return 0;
    }
  }
  write_value(L, r, res, "result");
  return 0;
}

/* The fallback: today's bestsellers for everyone (trending), or the most
   viewed items while nothing has trended yet; the request's controls hold
   here too (the filter inside the kernel, then arrange()). */
static void write_fallback_items(request *r) {
  enum { MAX_ROWS = 256 };
  topk_entry top[MAX_ROWS];
  const idx *x = r->t->ix;
  const req_controls *c = &r->q->ctl;
  uint32_t brands[REQ_MAX_BRANDS], ex[MAX_ROWS];
  idx_filter f = {.in_stock = !c->any_stock, .min_price = c->min_price,
                  .max_price = c->max_price, .by_brand = c->n_brands > 0, .brands = brands,
                  .exclude = ex};
  for (size_t i = 0; i < c->n_brands; i++) {
    uint32_t b = intern_get(&x->brands, c->brands[i]);
    if (b != INTERN_NONE) brands[f.nbrands++] = b;
  }
  for (size_t i = 0; i < r->q->n_ex && f.nex < MAX_ROWS; i++) {
    uint32_t id = idx_item_id(x, r->q->ex_ids[i]);
    if (id != INTERN_NONE) ex[f.nex++] = id;
  }
  f.nex = idx_ids_sort(ex, f.nex);
  size_t k = (size_t)r->k + c->n_pins < MAX_ROWS ? (size_t)r->k + c->n_pins : MAX_ROWS;
  idx_reason reason = IDX_REASON_TRENDING;
  size_t n = idx_trending(x, "", "", &f, util_now_ms(), k, top);
  if (n == 0) {
    n = idx_most_viewed(x, k, ex, f.nex, top);
    reason = IDX_REASON_POPULAR;
  }
  const char *ids[MAX_ROWS];
  uint32_t iids[MAX_ROWS];
  signed char cls[MAX_ROWS];
  long out[MAX_ROWS + REQ_MAX_PINS];
  for (size_t i = 0; i < n; i++) ids[i] = intern_name(&x->items, top[i].id);
  slate s = {n, ids, iids, cls, out, 0};
  arrange(x, r->q, r->k, &s);
  buf_putc(r->out, '[');
  for (size_t w = 0; w < s.nout; w++) {
    const char *id = out[w] < 0 ? c->pins[-1 - out[w]].item : ids[out[w]];
    buf_puts(r->out, w ? ",{\"id\":" : "{\"id\":");
    buf_json_str(r->out, id, strlen(id));
    if (out[w] >= 0) {
      buf_puts(r->out, ",\"score\":");
      buf_json_num(r->out, top[out[w]].score, DECIDE_DIGITS);
    }
    const char *why = out[w] < 0 ? "pinned" : idx_reason_name(reason);
    buf_puts(r->out, ",\"reason\":");
    buf_json_str(r->out, why, strlen(why));
    buf_putc(r->out, '}');
  }
  buf_putc(r->out, ']');
}

/* The rank fallback: the storefront's own order. */
static void write_given_order(request *r) {
  buf_putc(r->out, '[');
  for (size_t i = 0; i < r->q->n_ids; i++) {
    buf_puts(r->out, i ? ",{\"id\":" : "{\"id\":");
    buf_json_str(r->out, r->q->ids[i], strlen(r->q->ids[i]));
    buf_putc(r->out, '}');
  }
  buf_putc(r->out, ']');
}

/* The answer of a decision its handler's answer is not given for (it
   failed, or a cap filled meanwhile): null, or for the kinds that answer
   items a list all the same, the shop's own for rank (every id once). */
static void write_no_answer(request *r, int recommend) {
  if (!recommend) buf_puts(r->out, "null");
  else if (strcmp(r->q->kind, "rank")) write_fallback_items(r);
  else write_given_order(r);
}

int eng_decide(tailor *t, const dreq *q, strbuf *out, tailor_error *err) {
  request r = {t, q, q->k ? q->k : t->cfg.default_k, NULL, 0, out, 0,
               {q->customer, q->anon, NULL, {0}, 0, NULL}, NULL, ""};
  /* A dry run (the console's Check) decides for nobody: its calls are not
     counted, logged or measured as the shop's, or one Check added some
     2,000 decisions and every error it found, once per sample visitor, to
     /metrics and the error log. */
  const int real = !eng_dry_running;
  if (real) atomic_fetch_add(&t->n_decisions, 1);
  uint64_t started = util_mono_ns();
  int recommend = !strcmp(q->kind, "recommend") || !strcmp(q->kind, "rank");
  buf_puts(out, "{\"kind\":");
  buf_json_str(out, q->kind, strlen(q->kind));
  buf_puts(out, recommend ? ",\"items\":" : ",\"result\":");
  size_t mark = out->n;
  tailor_error serr = {0};
  lvm *vm = eng_thread_vm(t, &serr);
  /* Without a reader of its own the strategy's store reads wait for
     write_mu; taken here, before the index lock, as the writer takes them
     (engine.h, eng_serial), never the other way round. */
  int serial = !t->st_read && eng_writing != t && eng_serial != t;
  if (serial) {
    pthread_mutex_lock(&t->write_mu);
    eng_serial = t;
  }
  pthread_rwlock_rdlock(&t->lock);
  eng_current = &r.call;
  int rc = vm ? lvm_pcall(vm, run_handler, &r, &serr) : serr.code;
  eng_current = NULL;
  if (rc == TAILOR_OK && r.capped) {
    buf_puts(out, ",\"capped\":");
    buf_json_str(out, r.capped, strlen(r.capped));
  }
  /* The coupons the answer names exist before it leaves (the write waits
     for write_mu, so the index lock is released first). */
  if (rc == TAILOR_OK && (r.call.coupons || r.popup[0])) {
    pthread_rwlock_unlock(&t->lock);
    rc = eng_call_write(t, &r.call, r.popup[0] ? r.popup : NULL, &serr);
    pthread_rwlock_rdlock(&t->lock);
    if (rc == ENG_CAPPED) { /* another decision's contact came first: no popup */
      out->n = mark;
      write_no_answer(&r, recommend);
      buf_puts(out, ",\"capped\":");
      buf_json_str(out, r.call.capped, strlen(r.call.capped));
      rc = TAILOR_OK;
    }
  }
  eng_call_clear(&r.call);
  if (rc == TAILOR_OK) {
    buf_puts(out, ",\"strategy\":");
    buf_json_str(out, r.file ? r.file : "", r.file ? strlen(r.file) : 0);
  } else {
    if (!r.no_handler && real) {
      atomic_fetch_add(&t->n_strategy_errors, 1);
      eng_log(t, TAILOR_LOG_ERROR, "%s (%s), served the fallback", serr.message,
              tailor_errname(rc));
    }
    out->n = mark; /* drop what the handler had written */
    write_no_answer(&r, recommend);
    buf_puts(out, ",\"fallback\":true,\"error\":");
    buf_json_str(out, serr.message, strlen(serr.message));
  }
  pthread_rwlock_unlock(&t->lock);
  if (serial) {
    eng_serial = NULL;
    pthread_mutex_unlock(&t->write_mu);
  }
  buf_putc(out, '}');
  if (eng_exposures_pending(t)) { /* decisions only: exposures still land */
    if (t->expo_due) t->expo_due(t->expo_due_ud); /* a writer thread writes them */
    else eng_write_exposures(t);
  }
  if (real) eng_metric(t, "decide_us", q->kind, (double)(util_mono_ns() - started) / 1e3);
  if (real && rc != TAILOR_OK) eng_metric(t, "decide_fallback", q->kind, 1);
  return out->oom ? util_fail(err, TAILOR_ENOMEM, NULL, "out of memory") : TAILOR_OK;
}

void eng_request_limits(tailor *t, req_limits *lim) {
  lim->max_k = t->cfg.max_k;
  lim->envelope = NULL;
}

int tailor_decide(tailor *t, const char *text, size_t len, char **response,
                  size_t *response_len, tailor_error *err) {
  if (!t || !text || !response)
    return util_fail(err, TAILOR_EINVAL, NULL, "decide: missing argument");
  *response = NULL;
  req_limits lim;
  dreq q;
  eng_request_limits(t, &lim);
  int rc = req_parse(text, len, (size_t)t->cfg.max_request_bytes, &lim, &q, err);
  if (rc) return rc;
  strbuf out = {0};
  rc = eng_decide(t, &q, &out, err);
  req_clear(&q);
  if (rc) {
    buf_free(&out);
    return rc;
  }
  if (!(*response = buf_take(&out, response_len)))
    return util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
  return TAILOR_OK;
}
