/*
** static.c: files from server.static_dir over HTTP, for a demo shop or a
** storefront snippet served by tailor itself (GET and HEAD only; the API's
** routes, /v1/..., /healthz and /metrics, always win).
**
** Safety: a request can only name a regular file inside the folder.  The
** path is percent-decoded, then walked one component at a time with
** openat(O_NOFOLLOW) from the folder: ".." and "." are refused before any
** lookup, and no symbolic link is followed, inside the folder or out of it,
** so a link cannot lead outside and no check can be raced by a rename.
** Hidden names (".git", ".env") are never served.  Files are read on a
** decision worker, never on the event loop.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "server/internal.h"

#define SRV_STATIC_MAX_BYTES ((long)DEF_SERVER_STATIC_MAX_BYTES) /* largest file served */
#define SRV_STATIC_MAX_PATH 1024          /* decoded request path */
#define SRV_STATIC_INDEX "index.html"     /* what a folder's URL serves */

/* Content types by file extension; anything else is a download. */
static const struct {
  const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/plain; charset=utf-8"},
    {"woff2", "font/woff2"},
};

static const char *type_of(const char *name) {
  const char *dot = strrchr(name, '.');
  if (dot)
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
      if (!strcasecmp(dot + 1, types[i].ext)) return types[i].type;
  return "application/octet-stream";
}

/*
** The request path, decoded and checked, into `out` without its leading
** slash; a path ending in '/' gets SRV_STATIC_INDEX.  -1 for a path no file
** can have: malformed escapes, control bytes, backslashes, "." or "..",
** hidden names.
*/
static int clean_path(const char *p, size_t n, char out[SRV_STATIC_MAX_PATH]) {
  size_t o = 0, seg = 0; /* seg: where the current component starts */
  for (size_t i = 0; i <= n; i++) {
    int c = i < n ? (unsigned char)p[i] : '/';
    if (c == '%' && i < n) {
      int hi = i + 2 < n ? util_hex_digit(p[i + 1]) : -1;
      int lo = i + 2 < n ? util_hex_digit(p[i + 2]) : -1;
      if (hi < 0 || lo < 0) return -1;
      c = hi * 16 + lo;
      i += 2;
      if (c == '/') return -1; /* an encoded slash is not a separator */
    }
    if (c < 0x20 || c == 0x7f || c == '\\') return -1;
    if (c == '/') {
      if (o > seg && out[seg] == '.') return -1; /* ".", "..", hidden */
      if (o == seg) continue;                   /* "//" and the leading '/' */
      if (i < n) out[o++] = '/';
      seg = o;
    } else {
      out[o++] = (char)c;
    }
    if (o + sizeof SRV_STATIC_INDEX + 1 >= SRV_STATIC_MAX_PATH) return -1;
  }
  if (o > 0 && out[o - 1] == '/') o--;
  /* The folder itself, or a path that ended in '/'. */
  if (o == 0 || (n > 0 && p[n - 1] == '/')) {
    if (o) out[o++] = '/';
    memcpy(out + o, SRV_STATIC_INDEX, sizeof SRV_STATIC_INDEX);
  } else {
    out[o] = '\0';
  }
  return 0;
}

int srv_static_route(const srv_conf *cf, int get, const char *url, size_t url_len,
                     srv_request *req, tailor_error *err) {
  if (!cf->static_dir || !get) return 0;
  size_t start = 0, end;
  if (url_len > 7 && (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))) {
    start = url[4] == 's' ? 8 : 7;
    while (start < url_len && url[start] != '/') start++;
  }
  for (end = start; end < url_len && url[end] != '?' && url[end] != '#'; end++) {
  }
  const char *p = url + start;
  size_t n = end - start;
#define IS(lit) (n == sizeof(lit) - 1 && !memcmp(p, lit, n))
  if (!n || p[0] != '/' || IS("/healthz") || IS("/metrics") || IS("/v1") || IS("/admin") ||
      (n >= 7 && !memcmp(p, "/admin/", 7)) ||
      (n >= 4 && !memcmp(p, "/v1/", 4)))
    return 0;
#undef IS
  memset(req, 0, sizeof *req);
  req->op = SRV_OP_STATIC;
  char rel[SRV_STATIC_MAX_PATH];
  if (clean_path(p, n, rel)) {
    util_fail(err, SRV_ENOT_FOUND, NULL, "no such file: %.*s", (int)(n < 200 ? n : 200), p);
    return 1;
  }
  /* "folder\0relative path": the folder as configured now, since a reload
     may change it while the file is read. */
  size_t dl = strlen(cf->static_dir), rl = strlen(rel);
  if (!(req->text = malloc(dl + rl + 2))) {
    util_fail(err, SRV_EINTERNAL, NULL, "out of memory");
    return 1;
  }
  memcpy(req->text, cf->static_dir, dl + 1);
  memcpy(req->text + dl + 1, rel, rl + 1);
  req->text_len = dl + rl + 1;
  return 1;
}

/* No link is followed; O_NONBLOCK keeps a FIFO in the folder from holding a
   worker (it is refused as not a regular file right after). */
#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK)

/* Open `rel` under the folder `dir_fd` without following a link; the fd of
   a regular file or folder, or -1. */
static int open_beneath(int dir_fd, char *rel) {
  int fd = dup(dir_fd);
  for (char *name = rel, *slash; fd >= 0 && name; name = slash) {
    if ((slash = strchr(name, '/'))) *slash++ = '\0';
    int next = openat(fd, name, OPEN_FLAGS | (slash ? O_DIRECTORY : 0));
    close(fd);
    fd = next;
  }
  return fd;
}

/* The whole of a regular file; NULL when it is not one or cannot be read. */
static char *read_file(int fd, size_t *len, int *too_big) {
  struct stat st;
  *too_big = 0;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) return NULL;
  if (st.st_size > SRV_STATIC_MAX_BYTES) {
    *too_big = 1;
    return NULL;
  }
  char *buf = malloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (buf && got < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break; /* shrank meanwhile: serve what is there */
    got += (size_t)r;
  }
  *len = got;
  return buf;
}

void srv_static_read(job *j) {
  const char *dir = j->req.text, *rel = dir + strlen(dir) + 1;
  char path[SRV_STATIC_MAX_PATH];
  snprintf(path, sizeof path, "%s", rel);
  int dir_fd = open(dir, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
  if (dir_fd < 0) {
    srv_log(TAILOR_LOG_ERROR, "server.static_dir '%s': %s", dir, strerror(errno));
    util_fail(&j->err, SRV_ENOT_FOUND, NULL, "no such file: /%s", rel);
    return;
  }
  int fd = open_beneath(dir_fd, path);
  struct stat st;
  int folder = fd >= 0 && !fstat(fd, &st) && S_ISDIR(st.st_mode);
  if (folder) {
    /* A folder named without its trailing slash: its index page. */
    int index = openat(fd, SRV_STATIC_INDEX, OPEN_FLAGS);
    close(fd);
    fd = index;
  }
  close(dir_fd);
  size_t len = 0;
  int too_big = 0;
  char *body = fd >= 0 ? read_file(fd, &len, &too_big) : NULL;
  if (fd >= 0) close(fd);
  if (!body) {
    if (too_big)
      util_fail(&j->err, SRV_ETOO_LARGE, NULL, "/%s is larger than %ld bytes", rel,
                SRV_STATIC_MAX_BYTES);
    else
      util_fail(&j->err, SRV_ENOT_FOUND, NULL, "no such file: /%s", rel);
    return;
  }
  j->body = body;
  j->body_len = len;
  j->ctype = type_of(folder ? SRV_STATIC_INDEX : rel);
}
