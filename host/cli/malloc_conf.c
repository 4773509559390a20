/*
** malloc_conf.c: jemalloc's options for the tailor executable and the
** in-process benchmarks, through its documented global (MALLOC_CONF in
** the environment still overrides them): transparent huge pages for what
** it maps.  The indexes are hundreds of MB of tables read at random; with
** 2 MiB pages they fault in 512 times fewer pieces as they grow and miss
** the TLB less: `tailor ingest` of 240k views went from 2.04 s to 1.55-1.69 s.
*/
#include "cli/malloc_conf.h"

#ifdef TAILOR_WITH_JEMALLOC
const char *malloc_conf = "thp:always";
#endif

const char *tailor_allocator(void) {
#ifdef TAILOR_WITH_JEMALLOC
  return "jemalloc, thp:always (as the tailor executable; MALLOC_CONF overrides)";
#else
  return "the C library's malloc";
#endif
}
