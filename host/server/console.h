/*
** console.h: the merchant console's files, compiled into the binary from
** console/ by cmake/embed.cmake (the generated console_files.c), served
** at /admin/<path> by console.c.  The table ends with a NULL path.
*/
#ifndef TAILOR_SRV_CONSOLE_H
#define TAILOR_SRV_CONSOLE_H

#include <stddef.h>

typedef struct srv_console_file {
  const char *path;          /* "index.html", "vendor/uPlot-1.6.32.iife.min.js" */
  const unsigned char *data; /* its bytes */
  size_t len;
} srv_console_file;

extern const srv_console_file srv_console_files[];

#endif /* TAILOR_SRV_CONSOLE_H */
