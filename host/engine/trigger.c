/*
** trigger.c: "if this then that".  Once events are appended and in the
** index, inside the transaction that will make them durable, the
** strategies' on_event(ctx, event) handler sees each recent one and
** answers with side effects to schedule (an abandoned-cart email in an
** hour) or to cancel (that email, once the customer buys).  They go to the
** outbox in that same transaction, never out of Lua: delivery reads the
** outbox.  So an acknowledged event always has its scheduled emails, and
** a crash before the commit loses both (and acknowledged neither).
**
** The host enforces what must never depend on a strategy being right:
** email only to customers who consented and have an address, at most
** triggers.email_cap_per_week emails a customer a week, and no triggers
** for old events (an import of last year's history sends nothing).
*/
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "engine/deliver.h"
#include "engine/engine.h"
#include "engine/plugin.h"
#include "store/outbox.h"
#include "core/util.h"
#include "lua/ljson.h"

/* The furthest a trigger schedules, either way of now. */
#define TRIGGER_MAX_DELAY_DAYS 3650

/* Whether a channel reaches an inbox: its plugin says so
   (TAILOR_CHANNEL_EMAIL, whatever its name); a channel no plugin here
   provides is one when it is named "email". */
static int is_email(tailor *t, const char *channel) {
  const eng_channel *ch = eng_channel_find(t, channel);
  return ch ? (ch->flags & TAILOR_CHANNEL_EMAIL) != 0 : !strcmp(channel, "email");
}

/* The weekly cap's count for an email due at `due`: the customer's emails
   due in the week up to it, on every channel that reaches an inbox, but
   the pending ones a superseding row replaces (`except`, a key prefix, or
   NULL).  By due time, not by when they were scheduled: a win-back due in
   90 days is not this week's email, and a second order's win-back, which
   replaces the first's, does not count the first against itself. */
static int64_t emails_in_week(tailor *t, const char *customer, int64_t due, const char *except) {
  int64_t n = 0, from = due - DELIVER_CAP_WINDOW_MS + 1;
  for (size_t i = 0; i < eng_channel_count(t); i++)
    if (eng_channel_at(t, i)->flags & TAILOR_CHANNEL_EMAIL)
      n += store_outbox_due(t->st, customer, eng_channel_at(t, i)->name, from, due, except);
  if (!eng_channel_find(t, "email"))
    n += store_outbox_due(t->st, customer, "email", from, due, except);
  return n;
}

/* What one on_event call decided, checked and ready for the store. */
typedef struct trigger_run {
  tailor *t;
  const ev *e;
  json_t *schedule; /* array of {key, customer, channel, template, vars, due};
                       NULL until the first (most events schedule nothing) */
  json_t *cancel;   /* array of keys, or NULL */
  const char *file;
  int dropped;      /* schedules refused for consent */
  eng_call call;    /* coupons the call issued; the strategy's caps */
  int64_t now;      /* when the batch's triggers began (ms): ctx.now */
} trigger_run;

/* An error in what on_event returned, at the line that defines it (looked
   up only now: most calls return nothing wrong). */
static int bad(lua_State *L, trigger_run *r, const char *what) {
  lua_Debug ar;
  int line = 0;
  if (lvm_push_handler(lvm_of(L), "on_event", &r->file) && lua_getinfo(L, ">S", &ar))
    line = ar.linedefined;
  return luaL_error(L, "%s:%d: on_event returned %s", r->file ? r->file : "?", line, what);
}

/* Check one schedule entry at the top of the stack and queue it. */
static void take_schedule(lua_State *L, trigger_run *r, lua_Integer i) {
  static const char *const allowed[] = {"key", "template", "channel", "delay",
                                        "due", "customer", "vars", "supersede"};
  char what[200];
  if (!lua_istable(L, -1)) {
    snprintf(what, sizeof what, "schedule[%lld] that is not a table", (long long)i);
    bad(L, r, what);
  }
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
    size_t a = 0;
    while (a < sizeof allowed / sizeof *allowed && strcmp(allowed[a], k)) a++;
    if (a == sizeof allowed / sizeof *allowed) {
      snprintf(what, sizeof what, "schedule[%lld] with unknown field '%s'",
               (long long)i, k);
      bad(L, r, what);
    }
    lua_pop(L, 1);
  }
  char why[300];
  json_t *s = ljson_to(L, -1, "schedule", why, sizeof why);
  if (!s) bad(L, r, why);
  const char *key = json_string_value(json_object_get(s, "key"));
  const char *tmpl = json_string_value(json_object_get(s, "template"));
  json_t *delay = json_object_get(s, "delay"), *due = json_object_get(s, "due");
  json_t *vars = json_object_get(s, "vars");
  const char *customer = json_object_get(s, "customer")
                             ? json_string_value(json_object_get(s, "customer"))
                             : r->e->customer;
  const char *channel = json_object_get(s, "channel")
                            ? json_string_value(json_object_get(s, "channel"))
                            : "email";
  /* A delay or a due time within ten years either way: past that it is a
     mistake (1e300 seconds), and its milliseconds would overflow. */
  const double max_s = TRIGGER_MAX_DELAY_DAYS * 86400.0;
  double delay_s = json_number_value(delay);
  int64_t due_ms = json_integer_value(due), now_ms = util_now_ms();
  const char *problem =
      !key || !*key                                          ? "a 'key' string (the idempotency key)"
      : !tmpl || !*tmpl                                      ? "a 'template' string"
      : !channel || !*channel                                ? "a 'channel' string"
      : (delay && !json_is_number(delay))                    ? "'delay' in seconds"
      : (delay && !(delay_s >= -max_s && delay_s <= max_s))  ? "a 'delay' within ten years"
      : (due && !json_is_integer(due))                       ? "'due' in ms"
      : (due && (due_ms < now_ms - (int64_t)(max_s * 1000) || due_ms > now_ms + (int64_t)(max_s * 1000)))
          ? "a 'due' within ten years of now"
      : (vars && !json_is_object(vars)) ? "'vars' as a table"
                                        : NULL;
  if (problem) {
    json_decref(s);
    snprintf(what, sizeof what, "schedule[%lld] without %s", (long long)i, problem);
    bad(L, r, what);
  }
  /* A delay counts from the event's time (an hour after the cart changed,
     not after the server got to it: events up to triggers.max_event_age_s
     old still schedule), and is never due before now. */
  int64_t when = due ? due_ms : r->e->ts + (int64_t)(delay_s * 1000);
  if (!due && when < now_ms) when = now_ms;
  /* Consent, checked here while the index read lock is held. */
  if (is_email(r->t, channel)) {
    uint32_t p = idx_person_of(r->t->ix, customer, NULL);
    uint8_t f = p == INTERN_NONE ? 0 : r->t->ix->person[p].flags;
    if (!customer || !(f & IDX_CONSENT_EMAIL) || !(f & IDX_HAS_EMAIL) ||
        (f & IDX_NO_MARKETING)) {
      r->dropped++;
      json_decref(s);
      return;
    }
  }
  json_t *row = json_object();
  json_object_set_new(row, "key", json_string(key));
  json_object_set_new(row, "customer", customer ? json_string(customer) : json_null());
  json_object_set_new(row, "channel", json_string(channel));
  json_object_set_new(row, "template", json_string(tmpl));
  json_object_set_new(row, "vars", vars ? json_incref(vars) : json_object());
  json_object_set_new(row, "due", json_integer(when));
  json_t *sup = json_object_get(s, "supersede");
  if (json_is_string(sup)) json_object_set(row, "supersede", sup);
  if (!r->schedule && !(r->schedule = json_array())) {
    json_decref(row);
    luaL_error(L, "out of memory");
  }
  json_array_append_new(r->schedule, row);
  json_decref(s);
}

/* A number as Lua would read it from JSON: integral values as integers. */
static void push_num(lua_State *L, double x) {
  if (x == (double)(lua_Integer)x && x > -9e15 && x < 9e15)
    lua_pushinteger(L, (lua_Integer)x);
  else
    lua_pushnumber(L, x);
}

/*
** The `event` on_event receives: the event's normalized form (docs/events.md),
** made as it is read.  A userdata of one metatable shared by every call:
** reading a field makes it (most handlers read `type` and `customer` and
** stop there: an anonymous view costs one allocation, not a table and a
** string per id); a field assigned, and the lines, props and catalog or
** profile object once made, are kept in its user value (a table).
** `pairs(event)` and its JSON (a schedule's vars) list every field.  The
** ids are copied into the userdata; the lines, props and objects are made
** from the event, which lives as long as the call: read first after it,
** they are an error that says so (a handler keeps values, not the event).
*/
/* The event's fields: its strings (copied into the view) first. */
enum { EK_MSG, EK_ANON, EK_SESSION, EK_ORDER, EK_CURRENCY, EK_QUERY, EK_NAME, EK_CUSTOMER,
       EK_ITEM, ES_N, EK_TYPE = ES_N, EK_TS, EK_REVENUE, EK_PRICE, EK_QUANTITY, EK_ITEMS,
       EK_PROPS, EK_N };
static const char *const ev_keys[EK_N] = {
    "message_id", "anon", "session", "order_id", "currency", "query", "name", "customer",
    "item",       "type", "ts",      "revenue",  "price",    "quantity", "items", "props"};

/* The field `k` names, or -1: by its first letter, at most two strcmp (a
   handler reads a field or two per event, and each read comes here). */
static int ev_key(const char *k) {
  int c[2] = {-1, -1};
  switch (k[0]) {
    case 'a': c[0] = EK_ANON; break;
    case 'c': c[0] = EK_CUSTOMER, c[1] = EK_CURRENCY; break;
    case 'i': c[0] = EK_ITEM, c[1] = EK_ITEMS; break;
    case 'm': c[0] = EK_MSG; break;
    case 'n': c[0] = EK_NAME; break;
    case 'o': c[0] = EK_ORDER; break;
    case 'p': c[0] = EK_PRICE, c[1] = EK_PROPS; break;
    case 'q': c[0] = EK_QUANTITY, c[1] = EK_QUERY; break;
    case 'r': c[0] = EK_REVENUE; break;
    case 's': c[0] = EK_SESSION; break;
    case 't': c[0] = EK_TYPE, c[1] = EK_TS; break;
    default: break;
  }
  for (int i = 0; i < 2; i++)
    if (c[i] >= 0 && !strcmp(k, ev_keys[c[i]])) return c[i];
  return -1;
}

typedef struct ev_src {
  const ev *e;       /* only while the call runs (serial) */
  uint64_t serial;   /* lvm_call_serial of the call */
  ev_type type;
  int64_t ts;
  double revenue, price, quantity;
  unsigned char has_revenue, has_price, has_quantity;
  const char *str[ES_N]; /* into text; NULL when absent */
  char text[];
} ev_src;

/* Field `f` (an EK_*) of the event at index 1 made and pushed (nil when
   it has none); 1 when it is one to keep (made from the event's JSON). */
static int ev_field(lua_State *L, const ev_src *u, int f) {
  int object = (f == EK_CUSTOMER && u->type == EV_CUSTOMER_UPSERT) ||
               (f == EK_ITEM && u->type == EV_ITEM_UPSERT); /* the profile, the catalog item */
  if (f < ES_N && !object) {
    if (u->str[f]) lua_pushstring(L, u->str[f]);
    else lua_pushnil(L);
    return 0;
  }
  switch (f) {
    case EK_TYPE: lua_pushstring(L, ev_type_name(u->type)); return 0;
    case EK_TS: lua_pushinteger(L, u->ts); return 0;
    case EK_REVENUE: u->has_revenue ? push_num(L, u->revenue) : lua_pushnil(L); return 0;
    case EK_PRICE: u->has_price ? push_num(L, u->price) : lua_pushnil(L); return 0;
    case EK_QUANTITY: u->has_quantity ? push_num(L, u->quantity) : lua_pushnil(L); return 0;
    case EK_ITEMS: case EK_PROPS: case EK_CUSTOMER: case EK_ITEM: break;
    default: lua_pushnil(L); return 0;
  }
  const ev *e = u->e;
  if (u->serial != lvm_call_serial(L))
    return luaL_error(L, "event.%s read after the on_event call it was given to had ended; "
                      "keep the values a later call needs, not the event", ev_keys[f]);
  if (f == EK_PROPS) {
    if (e->props) ljson_push(L, e->props);
    else lua_pushnil(L);
  } else if (f != EK_ITEMS) { /* customer, item: the object */
    ljson_push(L, e->object);
  } else if (e->one_line || !e->n_lines) {
    lua_pushnil(L);
  } else {
    lua_createtable(L, (int)e->n_lines, 0);
    for (size_t i = 0; i < e->n_lines; i++) {
      const ev_line *l = &e->lines[i];
      if (l->extra) ljson_push(L, l->extra);
      else lua_createtable(L, 0, 3);
      lua_pushstring(L, l->item);
      lua_setfield(L, -2, "id");
      if (l->has_price) push_num(L, l->price), lua_setfield(L, -2, "price");
      if (l->has_quantity) push_num(L, l->quantity), lua_setfield(L, -2, "quantity");
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  }
  return 1;
}

static int ev_index(lua_State *L) {
  const ev_src *u = lua_touserdata(L, 1);
  if (lvm_view_get(L)) return 1;
  if (lua_type(L, 2) != LUA_TSTRING) {
    lua_pushnil(L);
    return 1;
  }
  int f = ev_key(lua_tostring(L, 2));
  if (f < 0) {
    lua_pushnil(L);
    return 1;
  }
  if (ev_field(L, u, f) && !lua_isnil(L, -1)) lvm_view_keep(L);
  return 1;
}

/* A handler may add to or change its event, as it could a table. */
static int ev_newindex(lua_State *L) {
  lvm_view_kept(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);
  return 0;
}

/* Every field into the kept table, which is pushed (the fields a handler
   assigned stay as it set them). */
static int ev_totable(lua_State *L) {
  const ev_src *u = luaL_checkudata(L, 1, "tailor.event");
  int kept = lvm_view_kept(L, 1);
  for (int f = 0; f < EK_N; f++) {
    if (lua_getfield(L, kept, ev_keys[f]) != LUA_TNIL) {
      lua_pop(L, 1);
      continue;
    }
    lua_pop(L, 1);
    ev_field(L, u, f);
    lua_setfield(L, kept, ev_keys[f]);
  }
  return 1;
}

static void push_event(lua_State *L, const ev *e) {
  const char *v[ES_N] = {e->msg_id, e->anon, e->session, e->order_id, e->currency, e->query,
                         e->name,   e->type == EV_CUSTOMER_UPSERT ? NULL : e->customer,
                         e->type == EV_ITEM_UPSERT ? NULL
                         : e->one_line            ? e->lines[0].item
                                                  : e->item};
  size_t text = 0;
  for (int i = 0; i < ES_N; i++) text += v[i] ? strlen(v[i]) + 1 : 0;
  ev_src *u = lua_newuserdatauv(L, sizeof *u + text, 1);
  u->e = e;
  u->serial = lvm_call_serial(L);
  u->type = e->type;
  u->ts = e->ts;
  u->revenue = e->revenue;
  u->has_revenue = (unsigned char)e->has_revenue;
  u->has_price = e->one_line && e->lines[0].has_price;
  u->has_quantity = e->one_line && e->lines[0].has_quantity;
  u->price = u->has_price ? e->lines[0].price : 0;
  u->quantity = u->has_quantity ? e->lines[0].quantity : 0;
  char *at = u->text;
  for (int i = 0; i < ES_N; i++) {
    u->str[i] = NULL;
    if (!v[i]) continue;
    size_t n = strlen(v[i]) + 1;
    u->str[i] = memcpy(at, v[i], n);
    at += n;
  }
  static const luaL_Reg meta[] = {{"__index", ev_index},
                                  {"__newindex", ev_newindex},
                                  {"__pairs", lvm_pairs_whole},
                                  {"__totable", ev_totable},
                                  {NULL, NULL}};
  lvm_set_view_meta(L, "tailor.event", meta, "event");
}

static int run_on_event(lua_State *L) {
  trigger_run *r = lvm_ud(L);
  lvm *vm = lvm_of(L);
  if (!lvm_push_handler(vm, "on_event", &r->file)) return 0;
  lapi_ctx c = {"on_event", r->t->cfg.default_k, r->e->customer, r->e->anon,
                r->e->session, NULL, r->e->props, NULL, NULL, r->now};
  lapi_push_ctx(L, r->t, &c);
  push_event(L, r->e);
  lua_call(L, 2, 1);
  if (lua_isnil(L, -1)) return 0;
  if (!lua_istable(L, -1)) bad(L, r, "something other than nil or a table");
  int res = lua_gettop(L);
  if (lua_getfield(L, res, "schedule") == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      take_schedule(L, r, i);
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    bad(L, r, "a 'schedule' that is not a list");
  }
  if (lua_getfield(L, res, "cancel") == LUA_TTABLE) {
    lua_Integer n = luaL_len(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_type(L, -1) != LUA_TSTRING) bad(L, r, "a 'cancel' entry that is not a key");
      if (!r->cancel && !(r->cancel = json_array())) luaL_error(L, "out of memory");
      json_array_append_new(r->cancel, json_string(lua_tostring(L, -1)));
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    bad(L, r, "a 'cancel' that is not a list of keys");
  }
  /* The strategy's caps, which apply_run checks the schedules against:
     read only when there are some (tailor.coupon may have read them). */
  if (r->schedule && !r->call.caps_read) {
    eng_caps_read(L, &r->call.caps);
    r->call.caps_read = 1;
  }
  return 0;
}

/* Write what one call decided, in the caller's transaction: cancels first
   (a purchase cancels the cart email before anything new is scheduled),
   then schedules within the cap.  Returns a store error, if any. */
static int apply_run(tailor *t, trigger_run *r, tailor_error *err) {
  size_t i;
  json_t *v;
  int rc = TAILOR_OK;
  /* A key ending in '*' cancels every pending key with that prefix. */
  json_array_foreach(r->cancel, i, v) {
    const char *key = json_string_value(v);
    size_t n = strlen(key);
    if (n && key[n - 1] == '*') {
      /* The whole prefix, however long: cut short, it would cancel more. */
      char *prefix = strndup(key, n - 1);
      rc = prefix ? store_outbox_cancel_prefix(t->st, prefix, NULL, err)
                  : util_fail(err, TAILOR_ENOMEM, NULL, "trigger: out of memory");
      free(prefix);
    } else {
      rc = store_outbox_cancel(t->st, key, NULL, err);
    }
    if (rc) return rc;
  }
  size_t added_rows = 0;
  json_array_foreach(r->schedule, i, v) {
    const char *customer = json_string_value(json_object_get(v, "customer"));
    const char *channel = json_string_value(json_object_get(v, "channel"));
    /* A superseding key scheduled before (a second run of the same
       trigger, two events with one timestamp) is a no-op, or its supersede
       would cancel the very row the add then keeps, and nothing is sent.
       (Without a supersede the add is a no-op of itself: no query.) */
    const char *sup = json_string_value(json_object_get(v, "supersede"));
    if (sup && store_outbox_state(t->st, json_string_value(json_object_get(v, "key")))) continue;
    int email = is_email(t, channel);
    if (customer && email && t->cfg.email_cap_per_week > 0 &&
        emails_in_week(t, customer, (int64_t)json_integer_value(json_object_get(v, "due")), sup) >=
            t->cfg.email_cap_per_week) {
      atomic_fetch_add(&t->n_trigger_capped, 1);
      continue;
    }
    /* The strategy's caps across channels (engine/coupon.c): the popups,
       coupons and emails of the window around the email's due time, and
       per campaign (template); the pending rows it supersedes do not
       count, it replaces them. */
    if (customer && email &&
        eng_caps_over(t, &r->call.caps, customer, NULL,
                      json_string_value(json_object_get(v, "template")), 0,
                      (int64_t)json_integer_value(json_object_get(v, "due")),
                      sup)) {
      atomic_fetch_add(&t->n_trigger_capped, 1);
      continue;
    }
    /* supersede: the new row replaces pending ones of that prefix (the
       next win-back reminder moves instead of piling up). */
    if (sup && (rc = store_outbox_cancel_prefix(t->st, sup, NULL, err))) return rc;
    char *vars = json_dumps(json_object_get(v, "vars"), JSON_COMPACT);
    store_outbox_row row = {json_string_value(json_object_get(v, "key")), customer,
                            channel, json_string_value(json_object_get(v, "template")),
                            vars, (int64_t)json_integer_value(json_object_get(v, "due"))};
    int added = 0;
    rc = store_outbox_add(t->st, &row, &added, err);
    free(vars);
    if (rc) return rc;
    if (added) {
      atomic_fetch_add(&t->n_triggers, 1);
      added_rows++;
    }
  }
  /* Coupons issued for messages none of which was scheduled (capped,
     dropped for want of consent, or one already pending under its key,
     which keeps the code it has) are not kept: nobody would see them,
     and kept they would count against the visitor's caps.  A call that
     scheduled nothing keeps its coupons. */
  size_t asked = json_array_size(r->schedule) + (size_t)r->dropped;
  if (r->call.coupons && (!asked || added_rows)) return eng_call_write(t, &r->call, NULL, err);
  return TAILOR_OK;
}

void eng_on_event_for(lua_State *L, unsigned char wants[EV_TYPE_COUNT]) {
  int top = lua_gettop(L);
  const char *file = "strategies";
  if (!lvm_push_handler(lvm_of(L), "on_event_for", &file) || !lua_istable(L, -1)) {
    memset(wants, 2, EV_TYPE_COUNT);
    lua_settop(L, top);
    return;
  }
  memset(wants, 0, EV_TYPE_COUNT);
  int tab = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, tab)) {
    const char *type = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    const char *who = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    int t = type ? ev_type_lookup(type) : -1;
    if (t < 0 || strcmp(type, ev_type_name((ev_type)t)))
      luaL_error(L, "%s: on_event_for: '%s' is not an event type (events.md lists them)",
                 file, type ? type : luaL_typename(L, -2));
    if (strcmp(who, "all") && strcmp(who, "customers"))
      luaL_error(L, "%s: on_event_for.%s: \"all\" or \"customers\", not %s", file, type,
                 lua_type(L, -1) == LUA_TSTRING ? who : luaL_typename(L, -1));
    wants[t] = who[0] == 'a' ? 2 : 1;
    lua_pop(L, 1);
  }
  lua_settop(L, top);
}

static int read_wants(lua_State *L) {
  eng_on_event_for(L, lvm_ud(L));
  return 0;
}

void eng_wants_of(lvm *vm, unsigned char wants[EV_TYPE_COUNT]) {
  tailor_error err = {0};
  if (lvm_pcall(vm, read_wants, wants, &err)) memset(wants, 2, EV_TYPE_COUNT);
}

static int check_folder(lua_State *L) {
  eng_on_event_for(L, lvm_ud(L));
  eng_caps_check(L);
  return 0;
}

int eng_strategies_check(lvm *vm, tailor_error *err) {
  unsigned char wants[EV_TYPE_COUNT];
  return lvm_pcall(vm, check_folder, wants, err);
}

int eng_run_triggers(tailor *t, ev *const *evs, size_t n, tailor_error *err) {
  if (!t->cfg.strategies || !*t->cfg.strategies) return TAILOR_OK;
  int64_t now = util_now_ms(), oldest = now - t->cfg.trigger_max_age_s * 1000;
  size_t due = 0;
  for (size_t i = 0; i < n; i++) due += !evs[i]->dup && evs[i]->ts >= oldest;
  if (!due) return TAILOR_OK;
  tailor_error lerr = {0};
  lvm *vm = eng_thread_vm(t, &lerr);
  if (!vm) {
    /* The events are kept; what their triggers would have scheduled is
       lost, so it is said loudly and counted. */
    atomic_fetch_add(&t->n_strategy_errors, due);
    eng_log(t, TAILOR_LOG_ERROR, "triggers: no strategy state (%s); %zu events ran no on_event",
            lerr.message, due);
    return TAILOR_OK;
  }
  if (!lvm_has_handler(vm, "on_event")) return TAILOR_OK;
  /* The events the strategy asked for (checked when the folder loaded). */
  unsigned char wants[EV_TYPE_COUNT];
  eng_wants_of(vm, wants);
#define RUNS(e) (!(e)->dup && (e)->ts >= oldest && wants[(e)->type] && \
                 (wants[(e)->type] != 1 || (e)->customer))
  /* Several nodes: the people of the events are locked first, all of them
     in one order, for the rest of the transaction.  Two nodes running the
     triggers of one customer's events at once (a cart changed in two tabs)
     would otherwise each check, cancel and add its rows before the other
     commits: the one row cancelled, or two emails sent. */
  if (!t->people_locked && store_shared(t->st)) { /* one writer: nothing to lock */
    const char **ids = calloc(2 * n, sizeof *ids);
    if (!ids) return util_fail(err, TAILOR_ENOMEM, NULL, "triggers: out of memory");
    size_t people = 0;
    for (size_t i = 0; i < n; i++)
      if (RUNS(evs[i])) {
        ids[people] = evs[i]->customer;
        ids[n + people++] = evs[i]->anon;
      }
    int locked = store_lock_people(t->st, ids, ids + n, people, err);
    free(ids);
    if (locked < 0) return locked;
  }
  for (size_t i = 0; i < n; i++) {
    if (!RUNS(evs[i])) continue;
    trigger_run r = {t, evs[i], NULL, NULL, NULL, 0,
                     {evs[i]->customer, evs[i]->anon, NULL, {0}, 0, NULL}, now};
    pthread_rwlock_rdlock(&t->lock);
    eng_current = &r.call;
    int lua_rc = lvm_pcall(vm, run_on_event, &r, &lerr), rc = TAILOR_OK;
    eng_current = NULL;
    pthread_rwlock_unlock(&t->lock);
    if (lua_rc) {
      atomic_fetch_add(&t->n_strategy_errors, 1);
      eng_log(t, TAILOR_LOG_ERROR, "%s (%s), on a %s event; the event is kept",
              lerr.message, tailor_errname(lua_rc), ev_type_name(evs[i]->type));
    } else {
      if (r.dropped) atomic_fetch_add(&t->n_trigger_no_consent, (uint64_t)r.dropped);
      rc = apply_run(t, &r, err);
    }
    json_decref(r.schedule);
    json_decref(r.cancel);
    eng_call_clear(&r.call);
    if (rc) return rc; /* the store failed: the caller rolls back */
  }
#undef RUNS
  return TAILOR_OK;
}
