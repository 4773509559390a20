/*
** coupon.c: coupons that are real, and frequency caps across channels.
**
** A strategy issues a coupon with tailor.coupon(tier, {ttl =, percent =}):
** a unique code (the tier's name and 10 random characters), single-use,
** with an expiry, for the visitor of the call.  Codes issued in a call wait
** in the call's buffer (eng_call) and reach the store before the answer
** does: a decision writes them in a transaction of its own before it
** returns, an on_event call in the transaction of its event.  The shop's
** checkout checks a code (tailor_coupon_check, POST /v1/coupons/check) and
** redeems it with a coupon_redeemed event; the redemption is a conditional
** update in the event's own transaction, so a code is redeemed once, and a
** batch that tries a second time, or an expired code, is refused whole.
**
** Frequency caps are the strategy's (a `caps` table among its handlers:
** per_day, per_campaign, window_hours) and the host's to enforce: a popup
** decision, a coupon and an email each count as one contact of the
** visitor; a popup with a coupon of its own counts once.  A contact is
** over a cap when the window around its time (now for a popup or a
** coupon, the due time for an email) already holds that many: an email
** counts when it reaches the visitor, so the win-back a purchase schedules
** for three months later is no contact today, and the cart email due in
** an hour is one.  An email that supersedes pending ones (the cart email
** moved by the next cart change) replaces them instead of counting beside
** them.
*/
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/util.h"
#include "engine/engine.h"

_Thread_local eng_call *eng_current;
_Thread_local int eng_dry_running;

void eng_caps_read(lua_State *L, eng_caps *c) {
  memset(c, 0, sizeof *c);
  c->window_ms = (int64_t)DEF_CAPS_WINDOW_HOURS * 3600000;
  int top = lua_gettop(L);
  if (lvm_push_handler(lvm_of(L), "caps", NULL) && lua_istable(L, -1)) {
    if (lua_getfield(L, -1, "per_day") == LUA_TNUMBER) c->per_day = (long)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "per_campaign") == LUA_TNUMBER)
      c->per_campaign = (long)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "window_hours") == LUA_TNUMBER && lua_tonumber(L, -1) > 0)
      c->window_ms = (int64_t)(lua_tonumber(L, -1) * 3600000);
    lua_pop(L, 1);
    /* exempt: campaigns the visitor asked for (the welcome of a confirmed
       address and its code), never held back; they still count. */
    if (lua_getfield(L, -1, "exempt") == LUA_TTABLE) {
      for (lua_Integer i = 1; c->n_exempt < ENG_CAPS_MAX_EXEMPT; i++) {
        if (lua_geti(L, -1, i) != LUA_TSTRING) {
          lua_pop(L, 1);
          break;
        }
        snprintf(c->exempt[c->n_exempt++], sizeof c->exempt[0], "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  lua_settop(L, top);
}

/* caps.exempt, at the top of the stack: a list of campaign names. */
static void caps_check_exempt(lua_State *L, const char *file) {
  if (!lua_istable(L, -1))
    luaL_error(L, "%s: caps.exempt: a list of campaign names, not a %s", file,
               luaL_typename(L, -1));
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
      luaL_error(L, "%s: caps.exempt[%d]: a campaign name, not a %s", file, (int)i,
                 luaL_typename(L, -1));
    lua_pop(L, 1);
  }
}

/* The value at the top of the stack for an error: a number as it is,
   anything else by its type ("1" is a string, not the number 1). */
static const char *caps_shown(lua_State *L) {
  if (lua_type(L, -1) == LUA_TNUMBER) return luaL_tolstring(L, -1, NULL);
  return lua_pushfstring(L, "a %s", luaL_typename(L, -1));
}

/* eng_caps_read skips what it cannot read, so without this check a typo
   (`per_dya = 1`), `per_day = "1"` or caps written as a function would
   leave every visitor uncapped without a word. */
void eng_caps_check(lua_State *L) {
  int top = lua_gettop(L);
  const char *file = "strategies";
  if (!lvm_push_handler(lvm_of(L), "caps", &file)) {
    lua_settop(L, top);
    return;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "%s: caps: a table ({per_day = 1, ...}), not a %s", file, luaL_typename(L, -1));
  int tab = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, tab)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    int isint = 0;
    if (lua_type(L, -1) == LUA_TNUMBER) lua_tointegerx(L, -1, &isint);
    if (!k)
      luaL_error(L, "%s: caps: field names are strings, not a %s", file, luaL_typename(L, -2));
    else if (!strcmp(k, "exempt"))
      caps_check_exempt(L, file);
    else if (!strcmp(k, "per_day") || !strcmp(k, "per_campaign")) {
      if (!isint || lua_tointeger(L, -1) < 0)
        luaL_error(L, "%s: caps.%s: a whole number of contacts (0: no cap), not %s", file, k,
                   caps_shown(L));
    } else if (!strcmp(k, "window_hours")) {
      if (lua_type(L, -1) != LUA_TNUMBER || !(lua_tonumber(L, -1) > 0))
        luaL_error(L, "%s: caps.window_hours: a number of hours above 0, not %s", file,
                   caps_shown(L));
    } else
      luaL_error(L, "%s: caps.%s: unknown field (per_day, per_campaign, window_hours, exempt)",
                 file, k);
    lua_pop(L, 1);
  }
  lua_settop(L, top);
}

/* The caps' count on store `s` (the read connection, or the write
   transaction's for the second count of eng_call_write): which cap holds,
   or NULL.  The caller has checked the caps are set and the person named. */
static const char *caps_count(store *s, const eng_caps *c, const char *customer,
                              const char *anon, const char *campaign, long pending, int64_t at,
                              const char *replacing) {
  int64_t from = at - c->window_ms, to = at + c->window_ms;
  if (c->per_day > 0 &&
      store_contacts_between(s, customer, anon, NULL, from, to, replacing) + pending >=
          c->per_day)
    return "per_day";
  if (c->per_campaign > 0 && campaign &&
      store_contacts_between(s, customer, anon, campaign, from, to, replacing) >=
          c->per_campaign)
    return "per_campaign";
  return NULL;
}

static int caps_set(const eng_caps *c, const char *customer, const char *anon) {
  return (c->per_day > 0 || c->per_campaign > 0) && (customer || anon);
}

static int exempt(const eng_caps *c, const char *campaign) {
  for (int i = 0; campaign && i < c->n_exempt; i++)
    if (!strcmp(campaign, c->exempt[i])) return 1;
  return 0;
}

const char *eng_caps_over(tailor *t, const eng_caps *c, const char *customer,
                          const char *anon, const char *campaign, long pending, int64_t at,
                          const char *replacing) {
  if (!caps_set(c, customer, anon) || exempt(c, campaign)) return NULL;
  const char *why =
      caps_count(eng_read_begin(t), c, customer, anon, campaign, pending, at, replacing);
  eng_read_end(t);
  return why;
}

/* Crockford's base32: no I, L, O or U, so a code read aloud is a code. */
static const char code_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Codes are upper case ASCII, whatever the locale. */
static char code_upper(char ch) { return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch; }

int eng_coupon_issue(tailor *t, eng_call *call, const char *tier, double percent,
                     int64_t ttl_ms, char *code, size_t cap, int64_t *expires,
                     tailor_error *err) {
  (void)t;
  unsigned char rnd[ENG_COUPON_RANDOM];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
    return util_fail(err, TAILOR_EIO, NULL, "tailor.coupon: no randomness");
  /* The tier's letters and digits, upper-cased, up to 12, as a prefix. */
  size_t n = 0;
  for (const char *p = tier; *p && n < 12 && n + 1 < cap; p++) {
    char ch = code_upper(*p);
    if ((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) code[n++] = ch;
  }
  if (n && n + 1 < cap) code[n++] = '-';
  for (size_t i = 0; i < sizeof rnd && n + 1 < cap; i++) code[n++] = code_alphabet[rnd[i] & 31];
  code[n] = '\0';
  int64_t now = util_now_ms();
  *expires = now + ttl_ms;
  json_t *row = json_pack("{ss ss sI sI}", "code", code, "tier", tier, "issued",
                          (json_int_t)now, "expires", (json_int_t)*expires);
  if (!row) return util_fail(err, TAILOR_ENOMEM, NULL, "tailor.coupon: out of memory");
  if (percent >= 0) json_object_set_new(row, "percent", json_real(percent));
  if (call->customer) json_object_set_new(row, "customer", json_string(call->customer));
  if (call->anon) json_object_set_new(row, "anon", json_string(call->anon));
  if (!call->coupons) call->coupons = json_array();
  json_array_append_new(call->coupons, row);
  return TAILOR_OK;
}

/* Whether the call's contacts are all of exempt campaigns (never held
   back): the popup's name, the coupons' tiers. */
static int all_exempt(const eng_call *call, const char *popup) {
  size_t n = json_array_size(call->coupons);
  for (size_t i = 0; i <= n; i++) {
    const char *name = i < n ? json_string_value(json_object_get(json_array_get(call->coupons, i),
                                                                 "tier"))
                             : popup;
    if (name && !exempt(&call->caps, name)) return 0;
  }
  return 1;
}

int eng_call_write(tailor *t, eng_call *call, const char *popup, tailor_error *err) {
  size_t n = json_array_size(call->coupons);
  const char *unit = call->customer ? call->customer : call->anon;
  int contact = popup && !n && unit;
  if ((!n && !contact) || eng_dry_running) return TAILOR_OK;
  int own = eng_writing != t; /* a decision: a transaction of its own */
  int lock = own && eng_serial != t; /* a serial decision holds write_mu */
  /* A store that just failed a commit is not waited for (the writer may be
     rebuilding the index, seconds on a large shop): the decision's fallback
     (no popup, no coupon) at once. */
  if (lock && eng_commit_backoff(t))
    return util_fail(err, TAILOR_ESTORE, NULL, "the store failed a commit a moment ago: the "
                     "contact and coupons of this decision are not written, so it shows none");
  if (lock) pthread_mutex_lock(&t->write_mu);
  int rc = own ? store_begin(t->st, err) : TAILOR_OK;
  /* The caps were read before the handler ran, on the reader, and since
     then another decision of the person (a second tab: decision threads
     run at once) or another node may have written a contact of theirs.
     Counted again on this transaction's connection, under write_mu and,
     with several nodes, the person's lock: over a cap, nothing is written
     and the decision answers capped. */
  if (!rc && own && call->caps_read && caps_set(&call->caps, call->customer, call->anon) &&
      !all_exempt(call, popup)) {
    int locked = store_lock_person(t->st, call->customer, call->anon, err);
    if (locked < 0) rc = locked;
    else {
      /* This call's own contacts are pending: all but the last one counted
         (over a cap when they pass it). (call->capped may say a
         tailor.coupon that gave up: this count's verdict is its own.) */
      long pending = (n ? (long)n : 1) - 1;
      const char *over = caps_count(t->st, &call->caps, call->customer, call->anon, popup,
                                    pending, util_now_ms(), NULL);
      if (over) {
        call->capped = over;
        store_rollback(t->st);
        if (lock) pthread_mutex_unlock(&t->write_mu);
        return ENG_CAPPED;
      }
    }
  }
  if (!rc && n) rc = store_coupons_add(t->st, call->coupons, err);
  if (!rc && contact)
    rc = store_contact_add(t->st, call->customer, call->anon, "popup", popup, util_now_ms(), err);
  if (own) {
    if (!rc) rc = store_commit(t->st, err);
    else store_rollback(t->st);
  }
  if (lock) pthread_mutex_unlock(&t->write_mu);
  return rc;
}

void eng_call_clear(eng_call *call) {
  json_decref(call->coupons);
  call->coupons = NULL;
}

/* The code's state as the checkout sees it: {code, tier, percent,
   customer, expires, valid, reason}. */
static json_t *describe(json_t *c, int64_t now) {
  json_t *out = json_pack("{sO sO}", "code", json_object_get(c, "code"), "tier",
                          json_object_get(c, "tier"));
  static const char *const keep[] = {"percent", "customer", "issued", "expires",
                                     "redeemed", "order_id"};
  for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
    json_t *v = json_object_get(c, keep[i]);
    if (v && !json_is_null(v)) json_object_set(out, keep[i], v);
  }
  const char *reason = NULL;
  if (json_is_integer(json_object_get(c, "redeemed"))) reason = "redeemed";
  else if (json_integer_value(json_object_get(c, "expires")) <= now) reason = "expired";
  json_object_set_new(out, "valid", json_boolean(!reason));
  if (reason) json_object_set_new(out, "reason", json_string(reason));
  return out;
}

/* The code as issued, from what a shopper typed: codes are upper case,
   and their random part (after the tier's '-') has none of the letters
   Crockford's alphabet leaves out, so there an O is 0 and an I or L is 1.
   A code too long to be one of ours stays as it is (it is not found). */
static const char *issued_form(const char *code, char *out, size_t cap) {
  size_t n = strlen(code);
  if (n >= cap) return code;
  const char *dash = strrchr(code, '-');
  size_t random_from = dash ? (size_t)(dash - code) + 1 : 0;
  for (size_t i = 0; i < n; i++) {
    char ch = code_upper(code[i]);
    if (i >= random_from) ch = ch == 'O' ? '0' : ch == 'I' || ch == 'L' ? '1' : ch;
    out[i] = ch;
  }
  out[n] = '\0';
  return out;
}

/* Room for the longest code eng_coupon_issue writes (12 + '-' + random). */
#define COUPON_CODE_MAX 64

int tailor_coupon_check(tailor *t, const char *code, char **json, tailor_error *err) {
  if (!t || !code || !json) return util_fail(err, TAILOR_EINVAL, NULL, "coupon check: missing argument");
  *json = NULL;
  char typed[COUPON_CODE_MAX];
  code = issued_form(code, typed, sizeof typed);
  store *s = eng_read_begin(t);
  json_t *c = store_coupon_get(s, code, err);
  eng_read_end(t);
  if (!c) return err ? err->code : TAILOR_ENOTFOUND;
  json_t *out = describe(c, util_now_ms());
  json_decref(c);
  *json = json_dumps(out, JSON_COMPACT);
  json_decref(out);
  return *json ? TAILOR_OK : util_fail(err, TAILOR_ENOMEM, NULL, "out of memory");
}

/* The code a coupon_redeemed event names: top-level "code" (kept under
   props), or props.coupon. */
static const char *code_of(const ev *e) {
  const char *c = json_string_value(json_object_get(e->props, "code"));
  return c ? c : json_string_value(json_object_get(e->props, "coupon"));
}

static int check_redemption(const ev *e, tailor_error *err) {
  if (e->type != EV_COUPON_REDEEMED || code_of(e)) return TAILOR_OK;
  return util_fail(err, TAILOR_EFIELD, "code", "coupon_redeemed: missing field 'code'");
}

int eng_coupons_redeem(tailor *t, ev *const *evs, size_t n, tailor_error *err) {
  for (size_t i = 0; i < n; i++) {
    if (evs[i]->type != EV_COUPON_REDEEMED) continue;
    const char *code = code_of(evs[i]);
    if (!code) return check_redemption(evs[i], err);
    char typed[COUPON_CODE_MAX];
    code = issued_form(code, typed, sizeof typed);
    /* A retry of a redemption already stored (its message id): the code
       was spent by it, and the event is acknowledged as a duplicate. */
    if (evs[i]->msg_id) {
      int seen = store_has_msg(t->st, evs[i]->msg_id);
      if (seen < 0)
        return util_fail(err, TAILOR_ESTORE, NULL, "coupon_redeemed: the store cannot say "
                                                   "whether message '%.64s' is stored",
                         evs[i]->msg_id);
      if (seen) continue;
    }
    /* Expired by the server's clock, not the event's time: a back-dated
       ts redeemed a code days past its expiry. */
    int rc = store_coupon_redeem(t->st, code, util_now_ms(), evs[i]->order_id, err);
    if (rc) return rc;
  }
  return TAILOR_OK;
}
