/*
** index.h: the in-memory state the engine decides from, rebuilt from the
** store's event log and updated on every event.  Items, people (customers
** and anonymous visitors, merged on login) and sessions are interned to
** dense ids; everything below works on those ids.
**
** Not thread-safe by itself: the engine applies events under its write lock
** and reads under its read lock.
**
** Where it lives: index.c (new/free, interning), apply.c (idx_apply),
** person.c (people), affinity.c (interests), value.c (the value model),
** query.c (filters and kernel entry points), kmeans.c, content.c,
** checkpoint.c, and the session kernels in sknn*.c (sknn.h); internal.h is
** what the index's own files share.
*/
#ifndef TAILOR_INDEX_H
#define TAILOR_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "index/clv.h"
#include "index/cooc.h"
#include "index/intern.h"
#include "index/sknn.h"
#include "index/topk.h"
#include "index/search.h"
#include "index/trend.h"

/* Why an item was recommended: X(ENUM, "code"). */
#define IDX_REASON_MAP(X)              \
  X(NONE, "none")                      \
  X(BOUGHT_TOGETHER, "bought_together") \
  X(VIEWED_TOGETHER, "viewed_together") \
  X(SIMILAR, "similar")                \
  X(SESSION, "session")                \
  X(TRENDING, "trending")              \
  X(POPULAR, "popular")                \
  X(RECENTLY_VIEWED, "recently_viewed") \
  X(IN_CART, "in_cart")                \
  X(PURCHASED, "purchased")

typedef enum idx_reason {
#define IDX_REASON_ENUM_(e, s) IDX_REASON_##e,
  IDX_REASON_MAP(IDX_REASON_ENUM_)
#undef IDX_REASON_ENUM_
  IDX_REASON_COUNT
} idx_reason;

const char *idx_reason_name(idx_reason r);

#define IDX_DEFAULT_RECENT 20        /* recently viewed items kept per person */
#define IDX_DEFAULT_COVIEW_WINDOW 5  /* earlier items of a session a view pairs with */
#define IDX_MAX_COVIEW_WINDOW 16
#define IDX_DEFAULT_CROSS_ORDER 0.5  /* weight of pairs across a customer's orders */
#define IDX_CROSS_ORDER_ITEMS 20     /* earlier purchases a new order pairs with */
#define IDX_MAX_ORDER_LINES 50       /* lines of one order that form pairs */
#define IDX_DEFAULT_TREND_KEYS "country,gender,country+gender,device,source,category"
#define IDX_MAX_TREND_KEYS 16
#define IDX_MAX_ATTRS 16             /* attributes kept per person */
#define IDX_MAX_PREFS 16             /* preferences kept per person */
#define IDX_MAX_PREF_BYTES 127       /* a preference's name, and its value */
#define IDX_MAX_CATEGORY_DEPTH 6     /* category levels counted in trending */
#define IDX_DEFAULT_AUDIENCE_DAYS "2,7,14" /* recency windows for retargeting */
#define IDX_MAX_AUDIENCES 8
#define IDX_CONTENT_CANDIDATES 500   /* items a content query scores at most */
#define IDX_CONTENT_W_CATEGORY 0.5
#define IDX_CONTENT_W_BRAND 0.2
#define IDX_CONTENT_W_TAGS 0.2
#define IDX_CONTENT_W_PRICE 0.1      /* full at equal price, 0 at 2x apart */
/* How much each kind of interest counts in trending. */
#define IDX_TREND_VIEW 1.0
#define IDX_TREND_CART 3.0
#define IDX_TREND_PURCHASE 5.0
#define IDX_VISIT_GAP_MS (30 * 60 * 1000) /* a new visit after 30 idle minutes */
#define IDX_DEFAULT_LAPSED_DAYS 180       /* no order for this long: lapsed */
/* Complements and substitutes (pairs.c): the evidence each needs. */
#define IDX_COMPLEMENT_MIN_SUPPORT 1.0 /* co-purchases (decayed), more than */
#define IDX_COMPLEMENT_MIN_LIFT 2.0    /* times more often than chance */
#define IDX_COMPLEMENT_MIN_BOTH 0.5    /* ... or this share of the sales of
                                          the more bought of the two */
#define IDX_SUBSTITUTE_MIN_COVIEW 1.0  /* sessions viewing both, more than */
#define IDX_SUBSTITUTE_MAX_LIFT 1.0    /* bought together no more than chance */
#define IDX_SUBSTITUTE_PRICE_RATIO 2.0 /* the category prior: prices at most
                                          this factor apart */
#define IDX_REPLACE_MIN_REPEATS 5      /* repeat purchases before a category's
                                          own replacement interval is used */

/* A cache of the trend tables of joined keys ("country+gender"): the
   pair of attribute value ids -> table + 1, open addressing. */
typedef struct idx_pair_cache {
  struct idx_pair_slot { uint32_t a, b, table; } *slot;
  uint32_t size, used; /* slots (power of two, or 0), filled */
} idx_pair_cache;

typedef struct idx_config {
  uint32_t recent_max;       /* recently viewed kept per person, <= 255 */
  uint32_t coview_window;    /* 0: default */
  uint16_t max_neighbors;    /* per item and relation; 0: default */
  double cooc_half_life_days;  /* 0: default; < 0: no decay */
  double trend_half_life_days; /* 0: default; < 0: no decay */
  double cross_order_weight;   /* < 0: default */
  uint32_t lapsed_days;      /* 0: default */
  const char *audience_days; /* comma-separated windows in days; NULL: default */
  const char *coupons;       /* coupon pools "NAME=SIZE,..."; NULL: none */
  const char *trend_keys;    /* comma-separated segment keys; a key may join
                                two with '+': "country+gender"; NULL: default */
} idx_config;

#define IDX_MAX_TAGS 8 /* tags of an item used for content similarity */

/* What an item was before its last catalog update (idx_item.prev): in stock,
   and listed (upserted and not deleted): an item listed for the first time
   is not "back in stock".  Older checkpoints hold the first bit only (the
   same byte): an item in stock then was listed, which the loader adds. */
#define IDX_PREV_IN_STOCK 1u
#define IDX_PREV_LISTED 2u

typedef struct idx_item {
  char *doc;          /* compact catalog JSON (owned), NULL if never upserted */
  double price;       /* from the catalog, else the last price seen */
  double cost;        /* the catalog's "cost": what the item costs the shop; 0 unknown */
  double prev_price;  /* the price before the last catalog update */
  uint8_t prev;       /* IDX_PREV_* before the last catalog update */
  uint32_t category;  /* id in idx.categories, or INTERN_NONE */
  uint32_t brand;     /* id in idx.brands, or INTERN_NONE */
  uint32_t tags[IDX_MAX_TAGS]; /* ids in idx.tags */
  uint8_t ntags;
  uint8_t in_stock;   /* 1 unless the catalog says otherwise */
  uint8_t deleted;    /* removed from the catalog */
  uint8_t content;    /* the catalog's kind is "content" (a guide, a post) */
  uint64_t views, carts, purchases; /* lifetime counts */
} idx_item;

#define IDX_MAX_WATCHERS 64 /* customers remembered per item for price-drop
                               and back-in-stock emails; the latest kept */

/* A growable array of item ids. */
typedef struct idx_ids {
  uint32_t *v;
  uint32_t n, cap;
} idx_ids;

/* A person's attribute (country, gender, ...): ids in idx.attrs. */
typedef struct idx_attr {
  uint32_t key, value;
} idx_attr;

/* A preference the visitor gave (a quiz answer): key and value and source
   ("quiz:<id>") in idx.attrs, and when. */
typedef struct idx_pref {
  uint32_t key, value, source;
  int64_t ts;
} idx_pref;

/* A decayed interest in a category (key = category id) or a brand (key =
   brand id | IDX_AFF_BRAND). */
#define IDX_AFF_BRAND 0x80000000u
#define IDX_MAX_AFFINITIES 16          /* per person; Space-Saving beyond */
#define IDX_AFFINITY_HALF_LIFE_DAYS 30.0
typedef struct idx_affinity {
  uint32_t key;
  float w;
} idx_affinity;

/* Person flags from the profile; IDX_NO_* from consent events: a purpose
   the visitor declined (none set: nothing declined).  IDX_UNSUBSCRIBED:
   the decline of marketing came from an email's unsubscribe link (a
   consent event with props.source "unsubscribe"); a profile's
   "marketing": true does not undo it (the shop's next sync of an
   unchanged profile would), only the customer's own consent event does. */
enum { IDX_CONSENT_EMAIL = 1, IDX_CONSENT_SMS = 2, IDX_HAS_EMAIL = 4,
       IDX_HAS_PHONE = 8, IDX_NO_ANALYTICS = 16, IDX_NO_PERSONALIZATION = 32,
       IDX_NO_MARKETING = 64, IDX_UNSUBSCRIBED = 128 };

typedef struct idx_person {
  uint32_t canon;      /* itself, or the person it was merged into on login */
  uint8_t is_customer; /* a known customer id (not only an anonymous one) */
  uint8_t flags;       /* IDX_CONSENT_*, IDX_HAS_* */
  uint8_t naff;
  uint8_t cluster;     /* automatic segment + 1 (kmeans.c); 0: none */
  uint32_t emails;     /* email_sent events */
  uint32_t contact;    /* 16-bit hashes of the profile's email (low half)
                          and phone (high half): consent is given for an
                          address, so a profile naming another one without
                          its own consent clears it (apply.c) */
  int64_t last_email;  /* ms; 0 = never */
  idx_affinity *aff;   /* naff entries, unsorted */
  int64_t first_seen, last_seen, last_order; /* ms; 0 = never */
  int64_t first_order;
  uint32_t orders;     /* less those refunded in full */
  uint32_t order_head; /* derived (apply.c): index + 1 in idx.orders of the
                          latest order applied under this id, 0: none */
  uint32_t visits;     /* sessions, or bursts of activity without one */
  uint32_t last_session; /* id in idx.sessions + 1, 0 = none */
  double revenue;      /* less refunds */
  idx_ids recent;      /* recently viewed, oldest first, deduplicated */
  idx_ids cart;        /* current cart */
  idx_ids bought;      /* distinct items ever bought */
  int64_t *bought_at;  /* when each of `bought` was last bought (ms), the
                          first bought_at_n of them (0: not known) */
  uint32_t bought_at_n;
  idx_attr *attrs;     /* profile and latest session attributes */
  uint8_t nattrs;
  uint8_t nprefs;
  idx_pref *prefs;     /* zero-party preferences (quiz answers), nprefs */
  int64_t click_ts;    /* the last click on a recommendation, popup or email
                          (attrib.c); 0 = none */
  uint32_t click_group; /* its idx_attrib group */
} idx_person;

/* Set a person's preference (an answer's key, value, source and time): a
   later answer to the same key replaces it.  -1 when out of memory. */
int idx_pref_set(idx_person *p, const idx_pref *v);
/* Remove a person's preference `key` (an id in idx.attrs) unless it was set
   after `ts`. */
void idx_pref_remove(idx_person *p, uint32_t key, int64_t ts);

/* Where a person stands with the shop: X(ENUM, "name"). */
#define IDX_LIFECYCLE_MAP(X)                   \
  X(NEW_VISITOR, "new_visitor")                \
  X(RETURNING_VISITOR, "returning_visitor")    \
  X(CUSTOMER, "customer")                      \
  X(LAPSED, "lapsed")

typedef enum idx_lifecycle {
#define IDX_LIFECYCLE_ENUM_(e, s) IDX_##e,
  IDX_LIFECYCLE_MAP(IDX_LIFECYCLE_ENUM_)
#undef IDX_LIFECYCLE_ENUM_
} idx_lifecycle;

const char *idx_lifecycle_name(idx_lifecycle l);

/* What the index knows of a person at a moment: RFM and lifecycle. */
typedef struct idx_figures {
  int seen;                 /* the person exists in the index */
  uint32_t orders, visits;
  double revenue;           /* monetary: total */
  double avg_order;         /* monetary: per order; 0 without orders */
  int64_t first_seen, last_seen, last_order; /* ms; 0 = never */
  double days_since_visit;  /* -1 when never seen */
  double days_since_order;  /* recency; -1 without orders */
  idx_lifecycle lifecycle;
  /* From the value model fitted on the shop's orders (idx_value_model);
     -1 when no model is fitted or the person never ordered. */
  double p_alive;           /* probability the customer is still active */
  double expected_orders;   /* in the next IDX_VALUE_HORIZON_DAYS */
  double predicted_value;   /* revenue in the next IDX_VALUE_HORIZON_DAYS */
} idx_figures;

/*
** Automatic segments (kmeans.c): customers clustered on recency, orders,
** average order, visits and the share of their interest in each of the
** shop's main categories.
*/
#define IDX_KMEANS_MAX_K 12
#define IDX_KMEANS_CATEGORIES 6
#define IDX_KMEANS_MAX_DIMS (4 + IDX_KMEANS_CATEGORIES)
#define IDX_DEFAULT_CLUSTERS 5
#define IDX_CLUSTER_NAME 64
#define IDX_CLUSTER_DESCRIPTION 256

typedef struct idx_clusters {
  uint32_t k, dims;
  size_t n;                    /* customers clustered */
  size_t size[IDX_KMEANS_MAX_K];
  double centroid[IDX_KMEANS_MAX_K][IDX_KMEANS_MAX_DIMS]; /* in feature units */
  uint32_t cats[IDX_KMEANS_MAX_DIMS]; /* category of each share feature */
  uint8_t *assign;             /* during a fit only */
  int64_t fitted_at;
  /* What sets each cluster apart, set by idx_cluster_install: a short name
     ("repeat Sport buyers, budget") kept across refits by the cluster that
     matches it, and a description with the figures behind it. */
  char name[IDX_KMEANS_MAX_K][IDX_CLUSTER_NAME];
  char description[IDX_KMEANS_MAX_K][IDX_CLUSTER_DESCRIPTION];
} idx_clusters;

/* The features of every customer, collected under the read lock. */
typedef struct idx_km_data {
  double *f;          /* n rows of dims */
  uint32_t *person;   /* the person of each row */
  size_t n;
  uint32_t dims, ncats;
  uint32_t cats[IDX_KMEANS_CATEGORIES];
} idx_km_data;

/*
** The customer-value model: BG/NBD for whether and how often a customer
** orders again, with Gamma-Gamma for how much (clv.h), fitted on the shop's
** own order history.  Below a documented minimum of repeat customers
** (index.value_min_repeat_customers) there is no model (IDX_VALUE_NONE):
** nobody gets a predicted value, so no value tier is handed out on a guess.
** The simple estimator of clv.h stands in only when the shop has enough
** repeat customers but the BG/NBD fit fails.
**
** The check (idx_value_check): the last index.value_holdout_days days of
** orders held back, the model fitted on the orders before them, and how
** well it ranks customers by their spend in the held-back days (Spearman's
** rank correlation), next to how well their past spend does.
*/
#define IDX_VALUE_HORIZON_DAYS 365.0
#define IDX_VALUE_KIND_MAP(X)          \
  X(NONE, "none")                      \
  X(SIMPLE, "simple")                  \
  X(BGNBD, "bgnbd")
typedef enum {
#define IDX_VALUE_KIND_ENUM_(e, s) IDX_VALUE_##e,
  IDX_VALUE_KIND_MAP(IDX_VALUE_KIND_ENUM_)
#undef IDX_VALUE_KIND_ENUM_
} idx_value_kind;

/* The holdout check of one fit; spearman_* are NAN when undefined (no
   model, or nobody or everybody spent in the held-back days). */
typedef struct idx_value_check {
  int ran;                 /* 0: not run (no orders, or turned off) */
  idx_value_kind kind;     /* the model the orders before the cutoff gave */
  double holdout_days;     /* held back: the configured days, halved while
                              too few repeat customers are left before them */
  int64_t cutoff, end;     /* ms: orders after cutoff, up to end, held back */
  size_t customers;        /* customers with an order before the cutoff */
  size_t repeat_customers; /* of them, with two or more */
  size_t spenders;         /* of them, with an order in the held-back days */
  double spearman_predicted;  /* predicted value vs held-back spend */
  double spearman_past_spend; /* spend before the cutoff vs held-back spend */
} idx_value_check;

typedef struct idx_value_model {
  idx_value_kind kind;
  clv_bgnbd bg;
  clv_gamma_gamma gg;  /* gg_ok: fitted; else each customer's own mean order
                          value, shrunk to simple.order_value, is used */
  int gg_ok;
  int bg_rc, gg_rc;    /* clv codes of the two fits (CLV_ETOOFEW: not tried) */
  clv_simple simple;
  size_t customers;    /* customers it was fitted on */
  size_t repeat_customers; /* of them, with two or more orders */
  size_t min_repeat;   /* the minimum it was fitted with */
  int64_t fitted_at;   /* ms */
  idx_value_check check; /* set by the engine after the fit */
} idx_value_model;

/* "none", "simple", "bgnbd". */
const char *idx_value_kind_name(idx_value_kind k);
/* Why the model is what it is, in a sentence written to buf. */
const char *idx_value_reason(const idx_value_model *m, char *buf, size_t len);

/*
** Where the models (value, clusters, propensity, the session kernel's
** repeat profile) were last fitted, kept with them in the checkpoint.  On
** a shared log the engine fits them at log positions (engine.c,
** eng_refit_due), so every node that applied the same log holds the same
** fit; on SQLite `seq` is the position the node had reached.
*/
typedef struct idx_fit {
  int64_t seq;       /* the log position fitted at; 0: never fitted */
  uint64_t orders;   /* orders_seen there */
  int64_t at;        /* the fit's "now" (ms): on a shared log the newest
                        event time in the log up to seq */
  sknn_repeat_profile repeat; /* the session kernel's profile then */
  int repeat_ok;     /* repeat is set */
} idx_fit;

/* Repeat purchases in a category: the gaps, in days, and how many. */
typedef struct idx_repeat {
  double days;
  uint32_t n;
} idx_repeat;

/* What happened in one session so far (popups, exit intent, ...). */
/* The fields of a session's traffic source, in idx_session.source. */
#define IDX_SOURCE_FIELDS 4
extern const char *const idx_source_fields[IDX_SOURCE_FIELDS];

typedef struct idx_session {
  int64_t first_ts, last_ts;
  uint16_t views, pages, exit_intents, hidden, popups_shown, carts;
  uint8_t purchased;
  uint8_t returning;   /* the visitor had an earlier visit when it began */
  uint16_t distinct;   /* views of an item not among the session's latest
                          (index.coview_window) views: distinct items, nearly */
  /* Where the session came from, as the storefront parsed it once (its
     events' props medium, source, campaign, device): ids in idx.attrs + 1,
     0 when not given. */
  uint32_t source[IDX_SOURCE_FIELDS];
  /* Revenue attribution (attrib.c): the latest personalization seen in it
     (a recommendation or popup shown, any click), and the last click of an
     event that named only the session (else the person keeps it). */
  int64_t touched;     /* ms; 0 = none */
  int64_t click_ts;    /* ms; 0 = none */
  uint32_t click_group; /* idx_attrib group of that click */
} idx_session;

/* The relations between items that the index counts. */
typedef enum idx_relation { IDX_COVIEW, IDX_COPURCHASE } idx_relation;

/* Filters applied inside every kernel, before the heap. */
typedef struct idx_filter {
  const uint32_t *exclude; /* item ids never returned, sorted ascending
                              (idx_ids_sort) */
  size_t nex;
  int in_stock;            /* only items known, not deleted and in stock
                              (0: sold-out items too, never deleted ones) */
  const char *category;    /* category path prefix ("Women/Shoes"), or NULL */
  double min_price;        /* 0: no lower bound */
  double max_price;        /* 0: no upper bound */
  int by_brand;            /* only items of the nbrands ids in `brands` (ids
                              in idx.brands; none known: nothing passes) */
  const uint32_t *brands;
  size_t nbrands;
} idx_filter;

/*
** Revenue attribution (attrib.c): what the console's revenue page shows,
** kept as events are applied, so a request sums a few arrays instead of
** reading the event log.  A group is (source, strategy, widget): the
** source from the event's type (rec_* recommendation, popup_* popup,
** email_clicked email), the strategy its props.strategy, the widget its
** name ("-" for either when missing).
**
**   - Impressions (rec_shown, popup_shown) and clicks (rec_clicked,
**     popup_clicked, email_clicked) are counted by group and UTC day.
**   - A click is the person's last click (idx_person.click_ts, or the
**     session's for an event that names only a session) when it is the
**     latest one seen; a merge on login keeps the later of the two.
**   - An order (purchase) is kept with its time, revenue, and the group and
**     age of the person's last click at or before it, so any attribution
**     window is one pass over the orders.
**   - A session's latest personalization (idx_session.touched) gives the
**     share of sessions that saw any.
** What a scan of the log would credit and this cannot: a click that
** arrives after an order it preceded (an import out of time order).
** Erasure clears the person's last click; orders and counts are anonymous
** and stay, as trending does.
*/
#define IDX_ATTRIB_MAX_GROUPS 256 /* beyond, a source's new groups are "(other)" */
#define IDX_DAY_MS 86400000LL

typedef enum idx_attrib_source {
  IDX_ATTRIB_RECOMMENDATION, IDX_ATTRIB_POPUP, IDX_ATTRIB_EMAIL, IDX_ATTRIB_SOURCES
} idx_attrib_source;

/* "recommendation", "popup", "email". */
const char *idx_attrib_source_name(idx_attrib_source s);

typedef struct idx_attrib_day {
  int32_t day;            /* UTC days since the epoch */
  uint32_t shown, clicks;
} idx_attrib_day;

typedef struct idx_attrib_group {
  uint8_t source;           /* idx_attrib_source */
  uint32_t strategy, widget; /* ids in idx_attrib.names */
  idx_attrib_day *days;     /* ascending day; ndays of cap */
  uint32_t ndays, cap;
} idx_attrib_group;

typedef struct idx_attrib_order {
  int64_t ts;
  int64_t gap;          /* ms since the person's last click; -1 without one */
  double revenue;
  uint32_t group;       /* the click's group (when gap >= 0) */
} idx_attrib_order;

typedef struct idx_attrib {
  intern names;              /* strategies and widgets */
  idx_attrib_group *groups;  /* IDX_ATTRIB_MAX_GROUPS once the first is made */
  uint32_t ngroups;
  idx_attrib_order *orders;  /* in the order they were applied */
  uint64_t norders, orders_cap;
} idx_attrib;

/* One group's figures over a period, as idx_attribution reports them. */
typedef struct idx_attrib_row {
  idx_attrib_source source;
  const char *strategy, *widget; /* borrowed from the index: valid under its lock */
  uint64_t shown, clicks, orders;
  double revenue;
} idx_attrib_row;

typedef struct idx_attribution {
  uint64_t orders, attributed_orders;
  double revenue, attributed_revenue;
  uint64_t sessions, personalized_sessions;
  idx_attrib_row rows[IDX_ATTRIB_MAX_GROUPS]; /* groups with anything in the period */
  uint32_t nrows;
} idx_attribution;

struct idx;

/* One order, as the value model's check reads it (idx_value_check_orders). */
typedef struct idx_value_order {
  uint32_t person;
  int64_t ts; /* ms */
  double revenue;   /* what is left of it after partial refunds */
  uint64_t key;     /* intern_hash of the order id (never 0), 0: none */
  uint32_t prev;    /* derived (apply.c): index + 1 of the previous order
                       applied under the same person, 0: none */
  uint8_t refunded; /* refunded in full: no longer an order */
} idx_value_order;

/* Count what event `e` says for attribution (person `pid` and session
   `sid` may be INTERN_NONE): 0, or -1 when out of memory.  Called by
   idx_apply. */
int idx_attrib_apply(struct idx *x, uint32_t pid, uint32_t sid, const ev *e);

/*
** Orders since `since` (rounded down to its UTC day: impressions are
** counted by day) credited to the last click within `window_ms` before
** each, by group, with the impressions and clicks of the period and the
** sessions active in it (and those that saw personalization) into *out.
*/
void idx_attribution_report(const struct idx *x, int64_t window_ms, int64_t since,
                            idx_attribution *out);

/* What an index's attribution owns. */
void idx_attrib_free(idx_attrib *a);

typedef struct idx {
  idx_config cfg;
  intern items, people, sessions, categories, brands, attrs, tags;
  idx_ids *members;    /* by category id (every level): its items */
  idx_ids *watchers;   /* by item id: customers who viewed or carted it */
  uint32_t watchers_cap;
  uint32_t members_cap;
  idx_repeat *repeat;  /* by category id: repeat purchases (pairs.c) */
  uint32_t repeat_cap;
  cooc coview, copurchase;
  trend trend;
  sknn_index *sknn;    /* sessions for the session-kNN kernels; time is the
                          session's number, as in `tailor eval` */
  search_index *search; /* what searches lead to (search.h) */
  search_index *reads;  /* what readers of content go on to (reads.h) */
  char trend_keys[IDX_MAX_TREND_KEYS][64];
  uint8_t trend_key_kind[IDX_MAX_TREND_KEYS]; /* IDX_KEY_*: read per event */
  /* Caches that spare the event path any string work (all derivable, so
     never checkpointed): the trend table of everyone, the attribute id of
     each trend key, per key the table of each value, per category the
     tables of its levels. */
  uint32_t trend_all;                      /* table id + 1; 0: not yet */
  uint32_t trend_key_attr[IDX_MAX_TREND_KEYS]; /* attr id + 1; 0: not yet */
  idx_ids trend_value_table[IDX_MAX_TREND_KEYS]; /* by value attr id: table + 1 */
  uint32_t trend_join_attr[IDX_MAX_TREND_KEYS][2]; /* "a+b": attr ids + 1 */
  idx_pair_cache trend_join_table[IDX_MAX_TREND_KEYS]; /* (a, b) values: table */
  uint32_t (*cat_tables)[IDX_MAX_CATEGORY_DEPTH + 1]; /* [0] = levels + 1 */
  uint32_t cat_tables_cap;
  intern coupons;          /* pool names */
  idx_ids coupon_size, coupon_used; /* by pool id */
  uint32_t audience_days[IDX_MAX_AUDIENCES];
  uint32_t naudiences;
  uint32_t ntrend_keys;
  idx_session *session;  /* by session id */
  uint32_t session_cap;
  decay aff_decay;       /* of the people's affinities */
  uint32_t (*window)[IDX_MAX_COVIEW_WINDOW]; /* by session: latest items */
  uint8_t *window_n;
  uint32_t window_cap;
  idx_item *item;      /* by item id */
  idx_person *person;  /* by person id */
  uint32_t item_cap, person_cap;
  idx_value_model value; /* set by the engine with idx_value_fit */
  idx_clusters clusters; /* set by the engine with idx_cluster_install */
  idx_attrib attrib;     /* revenue attribution (attrib.c) */
  struct idx_propensity *propensity; /* set by the engine at the value refit
                                        (propensity.c); NULL: none fitted */
  uint64_t orders_seen;  /* purchase events applied from the log (a
                            duplicate never is; a node that applied an
                            order later erased counted it, a replay after
                            the erasure does not), to pace refits */
  idx_fit fit;           /* where the models above were fitted (engine.c) */
  idx_value_order *orders; /* every order applied, with its person then (the
                              value check's history; forgetting a customer
                              drops theirs) */
  size_t norders, orders_cap;
  /* The chains of orders by person (prev, order_head), built when a refund
     first needs them and kept up by each order; rebuilt after a forget,
     which moves the orders (never checkpointed). */
  uint32_t order_chains_forgets; /* people.forgets when built */
  uint8_t order_chains;          /* built */
  uint64_t order_lines;  /* sum of the items' purchases (derived on load) */
  uint64_t applied;    /* events applied */
  uint32_t uncataloged; /* items known only from events, never upserted */
  int64_t last_ts;     /* newest event time seen */
} idx;

/*
** In-session purchase propensity (propensity.c): a logistic regression on a
** session's features (log views, carts, distinct items, minutes, pages;
** returning visitor; one flag per frequent traffic medium), fitted on the
** closed sessions of the history (label: the session purchased) with every
** fifth session (by a hash of its id) held out, then Platt-scaled on the
** held-out part, where its AUC and calibration error are measured.
*/
#define IDX_PROP_MEDIA 4
#define IDX_PROP_FEATURES (6 + IDX_PROP_MEDIA)
#define IDX_PROP_CLOSED_MS (30 * 60 * 1000LL) /* sessions idle this long are over */
typedef struct idx_propensity {
  uint32_t media[IDX_PROP_MEDIA]; /* attr ids + 1 of the mediums flagged; 0 unused */
  double mean[IDX_PROP_FEATURES], sd[IDX_PROP_FEATURES];
  double w[IDX_PROP_FEATURES], b; /* on the standardized features */
  double platt_a, platt_b;        /* p = 1 / (1 + exp(-(a * z + b))) */
  double auc, ece;                /* on the held-out sessions */
  uint32_t n_train, n_holdout, purchases;
  int64_t fitted_at;
} idx_propensity;

/* The sessions' features and labels, taken under the read lock. */
typedef struct idx_prop_data {
  double *f;        /* n * IDX_PROP_FEATURES */
  uint8_t *y, *held;
  size_t n;
  uint32_t media[IDX_PROP_MEDIA];
} idx_prop_data;
int idx_propensity_data(const idx *x, idx_prop_data *d);
void idx_prop_data_free(idx_prop_data *d);
/* Fit; 0 with *m set, -1 when the history is too small or one-sided
   (fewer than 40 training or 10 held-out sessions, or no purchase or no
   non-purchase in either part) or out of memory. */
int idx_propensity_fit(const idx_prop_data *d, idx_propensity *m);
/* The calibrated probability that session `sid` purchases, or -1 with no
   model or no such session. */
double idx_propensity_score(const idx *x, uint32_t sid);
/* The features of one session (IDX_PROP_FEATURES values). */
void idx_propensity_features(const idx *x, const idx_session *s,
                             const uint32_t media[IDX_PROP_MEDIA], double *f);

/* A new, empty index; NULL when out of memory.  `cfg` may be NULL. */
idx *idx_new(const idx_config *cfg);
void idx_free(idx *x);

/*
** Apply one event.  Returns TAILOR_OK, or TAILOR_ENOMEM (the index may then
** miss part of this event; the store still has it).
*/
int idx_apply(idx *x, const ev *e);

/* Apply n events in order, as idx_apply does each, faster: the memory of
   the next events is fetched while one is applied.  rcs (may be NULL)
   receives each event's result; returns the first that is not TAILOR_OK. */
int idx_apply_batch(idx *x, const ev *const *evs, size_t n, int *rcs);

/* The item id of an external id, or INTERN_NONE. */
uint32_t idx_item_id(const idx *x, const char *id);

/* The canonical person of a customer id or an anonymous id (either may be
   NULL; the customer wins), or INTERN_NONE when never seen. */
uint32_t idx_person_of(const idx *x, const char *customer, const char *anon);

/* Whether an item can be recommended: known, not deleted, in stock. */
int idx_item_available(const idx *x, uint32_t item);

/*
** Sort ids ascending and drop repeats, in place; the count kept.  An
** exclude list (idx_filter, idx_most_viewed) is one.
*/
size_t idx_ids_sort(uint32_t *v, size_t n);

/*
** The k most viewed available items, best first, skipping the `nex` ids in
** `exclude`.  Writes up to k entries to `out`; returns how many.
*/
size_t idx_most_viewed(const idx *x, size_t k, const uint32_t *exclude,
                       size_t nex, topk_entry *out);

/* Whether an item passes a filter (NULL passes everything; a filter never
   passes a deleted item). */
int idx_keep(const idx *x, const idx_filter *f, uint32_t item);

/*
** The k items most related to the anchors by a relation, best first; each
** result's aux is its strongest anchor.  See cooc_top_k.
*/
size_t idx_related(const idx *x, idx_relation rel, const cooc_params *p,
                   const uint32_t *anchors, size_t n, const idx_filter *f,
                   int64_t now, size_t k, topk_entry *out);

/*
** The k trending items for a segment (key "" and value "" for everyone),
** best first, filtered.  Returns 0 when nothing was counted for it.
*/
size_t idx_trending(const idx *x, const char *key, const char *value,
                    const idx_filter *f, int64_t now, size_t k,
                    topk_entry *out);

/*
** Erase a customer and the anonymous ids merged into them (the right to
** erasure): their profile, carts, views and purchases are cleared and their
** ids no longer resolve.  Aggregates they contributed to (co-occurrence,
** trending) are anonymous and stay.  Returns the people erased.
*/
size_t idx_forget(idx *x, const char *customer);

/*
** Erase a session: its id no longer resolves, its name's bytes are zeroed
** (so no checkpoint holds it) and its counters are cleared.  The items of
** the session stay in the session-kNN index under its number, anonymous.
** Returns 1 when the session was known.
*/
int idx_forget_session(idx *x, const char *session);

/*
** idx_forget and idx_forget_session for ids known by the hex SHA-256 of
** their text (an erase in a shared log, which keeps no id).  Returns the
** people erased.
*/
size_t idx_forget_hashed(idx *x, const char *customer_hex, const char *const *session_hex,
                         size_t nsessions);

/* Fill `f` for a person (INTERN_NONE gives a new visitor) at `now`. */
void idx_person_figures(const idx *x, uint32_t person, int64_t now,
                        idx_figures *f);

/* The same without the value model's figures (p_alive, expected_orders,
   predicted_value are -1): those sum a hypergeometric series for each
   buyer, tens of microseconds and more, and are asked for apart:
   idx_person_value fills those three. */
void idx_person_counts(const idx *x, uint32_t person, int64_t now, idx_figures *f);
void idx_person_value(const idx *x, uint32_t person, int64_t now, idx_figures *f);

/*
** Content similarity, for items nobody has interacted with yet: candidates
** from the anchor's category (widening to parent categories until
** IDX_CONTENT_CANDIDATES are found), scored on shared category depth,
** brand, tags and price band (weights IDX_CONTENT_W_*).  Results carry the
** anchor in aux.  Deleted items are never returned.
*/
size_t idx_similar(const idx *x, uint32_t anchor, const idx_filter *f,
                   size_t k, topk_entry *out);

/* The content score of j for anchor i, in [0, 1]. */
double idx_content_score(const idx *x, uint32_t i, uint32_t j);

/* Keep the category member lists right after an item's category changed
   (old may be INTERN_NONE).  Returns 0 or -1 when out of memory. */
int idx_content_update(idx *x, uint32_t item, uint32_t old_category);

/*
** Recency audiences for retargeting (person.c).  They partition the people
** seen within the longest of the windows (idx_config.audience_days,
** "2,7,14"), so a person is in one at most:
**   buyers           ordered within the longest window
**   cart_abandoners  else: seen within the shortest window with items in
**                    the cart (carted, neither bought nor removed since)
**   visitors         else: by when last seen, in the bands between the
**                    windows, (0,2], (2,7], (7,14] days, each named by its
**                    upper end (`days`)
** X(ENUM, "name").
*/
#define IDX_AUDIENCE_MAP(X)                   \
  X(VISITORS, "visitors")                     \
  X(CART_ABANDONERS, "cart_abandoners")       \
  X(BUYERS, "buyers")

typedef enum idx_audience_kind {
#define IDX_AUDIENCE_ENUM_(e, s) IDX_AUD_##e,
  IDX_AUDIENCE_MAP(IDX_AUDIENCE_ENUM_)
#undef IDX_AUDIENCE_ENUM_
  IDX_AUDIENCE_COUNT
} idx_audience_kind;

typedef struct idx_audience {
  idx_audience_kind kind;
  uint32_t days;  /* the window (buyers, cart abandoners) or the band's upper end */
} idx_audience;

/* The name of an audience kind ("cart_abandoners"), and the kind of a name
   (-1 when none). */
const char *idx_audience_name(idx_audience_kind k);
int idx_audience_kind_of(const char *name);

/* The window of buyers (the longest) or of cart abandoners (the shortest);
   0 without windows. */
uint32_t idx_audience_window(const idx *x, idx_audience_kind kind);

/* Whether `a` is one of the audiences: a configured visitor band, or the
   buyers' or the cart abandoners' window. */
int idx_audience_exists(const idx *x, idx_audience a);

/* The audience a person is in at `now`: 1 with *out filled, or 0 when in
   none (never seen, erased, or not seen within the longest window). */
int idx_person_audience(const idx *x, uint32_t person, int64_t now,
                        idx_audience *out);

/*
** The members of audience `a` at `now`: idx_person_audience says `a` for
** each.  Anonymous visitors not linked to a customer are included (they can
** be retargeted by cookie).  Calls fn (may be NULL) for each canonical
** person; returns the count.
*/
size_t idx_audience_members(const idx *x, idx_audience a, int64_t now,
                            void (*fn)(void *ud, uint32_t person), void *ud);

/* Every audience's size at `now` in one pass: the visitor bands in the
   order of idx.audience_days, cart abandoners, buyers. */
typedef struct idx_audience_counts {
  size_t visitors[IDX_MAX_AUDIENCES];
  size_t cart_abandoners, buyers;
} idx_audience_counts;
void idx_audience_sizes(const idx *x, int64_t now, idx_audience_counts *out);

/*
** Checkpoints (index/checkpoint.c).  idx_save writes the whole index and the
** sequence number of the last event in it, atomically (temp file, fsync,
** rename).  idx_load reads one back; a file of another format, another
** index configuration (fingerprint) or a bad checksum is refused with a
** message, and the caller rebuilds from the store.
*/
uint64_t idx_fingerprint(const idx *x);
int idx_save(const idx *x, const char *path, uint64_t fingerprint, int64_t seq,
             tailor_error *err);
idx *idx_load(const char *path, const idx_config *cfg, uint64_t fingerprint,
              int64_t *seq, tailor_error *err);
/* The position a checkpoint of this format says it holds, read from its
   header alone (nothing checked past it): TAILOR_OK, or a code. */
int idx_checkpoint_seq(const char *path, int64_t *seq);

/*
** Fitting the value model in three steps, so the slow middle one holds no
** lock: collect every customer's history at `now` (caller frees *out),
** fit (no index access), then install the result.
*/
int idx_value_customers(const idx *x, int64_t now, clv_customer **out,
                        size_t *n);
/* The order value above which the fit caps a customer's mean (an outlier
   fence over all customers' means; INFINITY when there are too few). */
double idx_value_cap(const clv_customer *c, size_t n);

/* The fit: NONE with fewer than min_repeat (or no) customers of x > 0. */
void idx_value_fit(const clv_customer *c, size_t n, int64_t now,
                   size_t min_repeat, idx_value_model *m);

/*
** The holdout check on a shop's orders (any order; sorted in place by
** person and time): the last holdout_days before the newest order held
** back (halved, down to DEF_VALUE_HOLDOUT_MIN_DAYS, while fewer than
** min_repeat customers have two orders before them), the model fitted on
** the rest with min_repeat, every
** customer of the rest ranked by predicted value over the held-back days
** and by past spend, and both rankings compared with their held-back
** spend.  Returns 0, or -1 out of memory.
*/
int idx_value_check_orders(idx_value_order *o, size_t n, double holdout_days,
                           size_t min_repeat, idx_value_check *out);

/* The same check on the orders the index holds, each under its person's
   current canonical id (an anonymous buyer who signed in since counts as
   the customer).  Reads x only.  Returns 0, or -1 out of memory. */
int idx_value_check_held(const idx *x, double holdout_days, size_t min_repeat,
                         idx_value_check *out);
/* Those orders copied (a new array, freed by the caller), so that the
   check can run without the index: what idx_value_check_held reads. */
int idx_value_orders_held(const idx *x, idx_value_order **o, size_t *n);

/* Spearman's rank correlation of x and y (ties take their mean rank);
   NAN when n < 2 or either is constant. */
double idx_spearman(const double *x, const double *y, size_t n);

/*
** A person's affinities at `now`, strongest first: categories when
** `brands` is 0, else brands (keys without IDX_AFF_BRAND).  Weights are in
** "interest now" units (a view now counts 1, a cart 3, an order 5).
** Returns how many were written (at most IDX_MAX_AFFINITIES).
*/
size_t idx_person_affinities(const idx *x, uint32_t person, int brands,
                             int64_t now, idx_affinity *out);

/* How well an item matches a person's interests at `now`: the affinity of
   its category (and of its parent categories, halved per level up) plus
   that of its brand.  0 for strangers. */
double idx_item_affinity(const idx *x, uint32_t person, uint32_t item,
                         int64_t now);

/*
** The next items after a session's views (items, oldest first) by a session
** kernel (params: the validated defaults of a kernel, sknn.h), filtered,
** best first; aux is the view most responsible.  `session` is the visitor's
** own open session (never its own neighbour), or INTERN_NONE.  `work` is
** the calling thread's scratch space.  Returns the rows written.
*/
size_t idx_session_next(const idx *x, const uint32_t *items, size_t n,
                        uint32_t session, const sknn_params *p, sknn_work *work,
                        const idx_filter *f, size_t k, topk_entry *out);

/*
** The same with tailor's kernel (params p) and a learned re-ranker
** (index/sknn_rerank.h): the union of tailor's, itemknn's and the session's
** own items ordered by the model, filtered, best first; aux is each row's
** strongest source (tailor's anchor, else the last view, else the item
** itself, viewed in this session) and score the model's, squashed into
** (0, 1) by a logistic so that it stays positive and in order.  `rwork` is
** the calling thread's.  Returns the rows written, or a negative
** tailor_code when the model fails.
*/
struct sknn_ranker;
struct sknn_rerank_work;
int idx_session_next_reranked(const idx *x, const struct sknn_ranker *r,
                              const uint32_t *items, size_t n, uint32_t session,
                              const sknn_params *p, struct sknn_rerank_work *rwork,
                              const idx_filter *f, size_t k, topk_entry *out);

/* How well a category (a navigation tab, "Home/Decor") matches a person's
   interests: interests inside it count fully, others as for items. */
double idx_category_affinity(const idx *x, uint32_t person, const char *path,
                             int64_t now);

/* The state of a session, or NULL when unknown. */
const idx_session *idx_session_of(const idx *x, const char *session);

/* The largest discount in percent (0..100) that keeps an item's margin at
   or above min_margin_pct: 1 - cost / (price * (1 - min_margin)).  100 when
   the item's cost is unknown. */
double idx_max_discount(const idx *x, uint32_t item, double min_margin_pct);

/* Customers who viewed or carted an item, have not bought it, and were
   seen within `days` of `now`, latest first (the people a price drop or a
   return to stock is news to); writes up to `cap` person ids, returns how
   many. */
size_t idx_watchers(const idx *x, uint32_t item, int64_t now, uint32_t days,
                    uint32_t *out, size_t cap);

/* The customer id of a person ("c1"), or NULL for an anonymous one. */
const char *idx_customer_id(const idx *x, uint32_t person);

/* Coupons left in a pool (its configured size minus the popup_shown events
   that carried it as props.coupon); -1 for a pool that is not configured. */
long idx_coupons_left(const idx *x, const char *pool);

/*
** The same three steps as the value model: collect (read lock), fit (no
** lock; deterministic; k clusters at most, fewer when there are fewer
** customers), install (write lock; takes the result).  Return 0 or -1
** (out of memory).
*/
int idx_cluster_features(const idx *x, int64_t now, idx_km_data *d);
int idx_cluster_fit(const idx_km_data *d, uint32_t k, idx_clusters *out);
void idx_cluster_install(idx *x, const idx_km_data *d, idx_clusters *c);
/* Called by idx_cluster_install: renumbers c's clusters so that each one
   matching a cluster of prev (centroids less than sd apart, each feature's
   spread over the customers, on every feature) takes its number and name;
   names the others from what sets them apart (main category, price band,
   rhythm) and describes all. */
void idx_cluster_name(const idx *x, const idx_clusters *prev, idx_clusters *c,
                      const double *sd);
void idx_km_data_free(idx_km_data *d);
/* After an erasure (the people already cleared): the clusters summed up
   again from the customers they still hold, so that none of the erased
   customer's figures stays in a centroid or description.  0, or -1 when
   out of memory (the clusters are then dropped). */
int idx_cluster_forget(idx *x);

/* The name of feature j ("orders", "share:Home"); may use buf. */
const char *idx_cluster_feature_name(const idx *x, const idx_clusters *c,
                                     uint32_t j, char *buf, size_t size);

/* A person's attribute value, or NULL. */
const char *idx_person_attr(const idx *x, uint32_t person, const char *key);

/*
** Complements and substitutes (pairs.c, which says what evidence each
** needs).  idx_complement_params sets a co-purchase kernel's support and
** lift thresholds (for idx_related); idx_complementary tests one pair;
** idx_substitutes writes the k substitutes of an item, best first (learned
** ones first, then same-category items the data does not call
** complements), filtered, aux the anchor.
*/
void idx_complement_params(const idx *x, int64_t now, cooc_params *p);
int idx_complementary(const idx *x, uint32_t i, uint32_t j, int64_t now);
size_t idx_substitutes(const idx *x, uint32_t anchor, const idx_filter *f, int64_t now,
                       size_t k, topk_entry *out);
/* The decayed number of orders the co-purchase counts stand for. */
double idx_decayed_orders(const idx *x, int64_t now);

/*
** Purchase times: idx_bought_stamp records that `person` bought `item`
** (already in their bought list) at ts, learning the gap since their last
** purchase in its category; 0 or -1 when out of memory.  idx_bought_merge
** carries the times of a merged visitor over; idx_bought_time is when an
** item was last bought (0: never, or not known).  idx_replacement_days is
** the item's category's learned replacement interval, or
** DEF_REPLACEMENT_DAYS (*learned says which; may be NULL).
*/
int idx_bought_stamp(idx *x, uint32_t person, uint32_t item, int64_t ts);
int idx_bought_merge(idx_person *into, const idx_person *from);
int64_t idx_bought_time(const idx_person *p, uint32_t item);
double idx_replacement_days(const idx *x, uint32_t item, int *learned);

/* Growable id arrays: append (0, or -1 when out of memory), remove the
   first occurrence, free. */
int idx_ids_push(idx_ids *a, uint32_t id);
void idx_ids_remove(idx_ids *a, uint32_t id);
void idx_ids_free(idx_ids *a);

/* Whether `id` is among the n ids of `v`. */
int idx_ids_has(const uint32_t *v, size_t n, uint32_t id);

#endif /* TAILOR_INDEX_H */
