/*
** malloc_conf.h: which allocator this program runs on (malloc_conf.c),
** for the benchmarks to print beside their figures.
*/
#ifndef TAILOR_MALLOC_CONF_H
#define TAILOR_MALLOC_CONF_H

const char *tailor_allocator(void);

#endif /* TAILOR_MALLOC_CONF_H */
