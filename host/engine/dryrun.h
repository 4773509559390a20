/*
** dryrun.h: the dry run of `tailor check --sample N` (engine/dryrun.c), and
** the hook in the strategies' API (engine/lapi.c) it learns from.
*/
#ifndef TAILOR_DRYRUN_H
#define TAILOR_DRYRUN_H

#include <stddef.h>

#include "tailor.h"

/*
** Told of every read of ctx.segments.<name> that no predicate defines, on
** the calling thread, with where the strategy read it ("popup.lua:12: ",
** borrowed), before the read fails as an error.  The dry run
** (engine/dryrun.c) sets it; NULL removes it.
*/
typedef void (*lapi_segment_fn)(void *ud, const char *name, const char *where);
void lapi_set_segment_hook(lapi_segment_fn fn, void *ud);

/*
** The dry run of `tailor check --sample N` (engine/dryrun.c): every handler
** of the engine's strategies against n sample visitors from the index (or
** n generated ones when it knows nobody), writing nothing.  Fills `rep`
** (free it with eng_dry_report_free): a tally per handler (per page for
** recommend, per predicate for segments) and the problems found, each
** distinct one once with the calls it happened in.  Returns TAILOR_OK, or
** an error when the strategies cannot be loaded.
*/
enum { ENG_DRY_ERROR, ENG_DRY_UNKNOWN_SEGMENT, ENG_DRY_EMPTY };

typedef struct eng_dry_handler {
  char *name;   /* "popup", "recommend page=cart", "segments.vip", "on_event" */
  char *where;  /* "popup.lua:26", where the handler is defined */
  size_t calls, errors, empty;
} eng_dry_handler;

typedef struct eng_dry_problem {
  int kind;      /* ENG_DRY_* */
  char *call;    /* the call it happened in: "on_event(view)" */
  char *text;    /* "file:line: message" */
  char *visitor; /* the first visitor it happened to ("-" for none) */
  size_t count;  /* calls it happened in */
} eng_dry_problem;

typedef struct eng_dry_report {
  size_t visitors, customers; /* sampled, and how many of them customers */
  int generated;              /* the store knew nobody: made-up visitors */
  eng_dry_handler *handlers;
  size_t n_handlers;
  eng_dry_problem *problems;
  size_t n_problems;
  size_t errors, unknown_segments, empty; /* problems of each kind */
} eng_dry_report;

int eng_dry_run(tailor *t, size_t n, eng_dry_report *rep, tailor_error *err);
void eng_dry_report_free(eng_dry_report *rep);

#endif /* TAILOR_DRYRUN_H */
