/*
** serve_load.c: a load generator for `tailor serve` (NDJSON) and, for
** comparison, redis-server (RESP), from one client thread with the same
** connections, pipelining and timing.
**
**   serve_load --port P --mode MODE [--conns 4] [--depth 32] [--seconds 5]
**              [--warmup 1] [--rate R] [--sessions FILE] [--token T]
**
** MODE: event (tailor `event`, a view), decide (tailor `decide`
** kind=recommend), ping (tailor `ping`: the server alone, no engine),
** zincrby (Redis ZINCRBY trending 1 ITEM), zrevrange (Redis ZREVRANGE
** trending 0 9), evalsha (Redis EVALSHA of a loaded script, --sha).  Items and visitors come from a
** Diginetica sessions file (one session a line, item ids): line i is the
** visitor a<i>, as ingested by bench/serve_bench.sh.
**
** Closed loop (default): each connection keeps `depth` requests in flight
** and sends a new one per answer; the figure is the most the server
** answers.  Open loop (--rate R): R requests a second in total, sent on a
** schedule whatever the answers do; latency is counted from the scheduled
** time, so a server that falls behind shows it (no coordinated omission).
**
** Prints one line: mode=... requests=... rps=... p50_us=... p99_us=...
** p999_us=... max_us=... errors=...
*/
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define MAX_CONNS 256
#define MAX_DEPTH 4096         /* in flight per connection */
#define IN_CAP (1 << 20)       /* per connection */
#define OUT_CAP (1 << 20)
#define HIST_US 1000000        /* microsecond buckets up to 1 s */

enum { M_EVENT, M_DECIDE, M_PING, M_ZINCRBY, M_ZREVRANGE, M_EVALSHA };

typedef struct conn {
  int fd;
  char *in, *out;
  size_t in_len, out_len, out_off;
  uint64_t ring[MAX_DEPTH]; /* send (or scheduled) time of each in flight */
  unsigned head, count;
  uint64_t next_send;       /* open loop: the next scheduled send */
  uint64_t seq;
} conn;

static struct {
  const char *host;
  int port, mode, conns, depth;
  double seconds, warmup, rate;
  const char *token;
  const char *sha;     /* evalsha: the script's SHA1 */
  char **items;        /* item ids seen in the sessions */
  size_t n_items;
  uint32_t *sess_item; /* for visitor i, one of its items */
  size_t n_sess;
} opt = {"127.0.0.1", 7300, M_DECIDE, 4, 32, 5, 1, 0, NULL, "", NULL, 0, NULL, 0};

static uint32_t *hist;
static uint64_t over, n_lat, n_err, n_done;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "serve_load: %s: %s\n", what, strerror(errno));
  exit(1);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Items and, per session line, one item (for the page of a decision). */
static void load_sessions(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) die(path);
  size_t cap = 1 << 16, scap = 1 << 18;
  char *seen = calloc(1 << 20, 1);
  opt.items = malloc(cap * sizeof *opt.items);
  opt.sess_item = malloc(scap * sizeof *opt.sess_item);
  char line[65536];
  while (fgets(line, sizeof line, f)) {
    long first = -1;
    for (char *p = strtok(line, " \t\n"); p; p = strtok(NULL, " \t\n")) {
      long id = strtol(p, NULL, 10);
      if (first < 0) first = id;
      if (id > 0 && id < (1 << 20) && !seen[id]) {
        seen[id] = 1;
        if (opt.n_items == cap) opt.items = realloc(opt.items, (cap *= 2) * sizeof *opt.items);
        opt.items[opt.n_items++] = strdup(p);
      }
    }
    if (opt.n_sess == scap)
      opt.sess_item = realloc(opt.sess_item, (scap *= 2) * sizeof *opt.sess_item);
    opt.sess_item[opt.n_sess++] = (uint32_t)(first > 0 ? first : 1);
  }
  fclose(f);
  free(seen);
}

static const char *an_item(void) {
  static char buf[16];
  if (opt.n_items) return opt.items[rnd() % opt.n_items];
  snprintf(buf, sizeof buf, "%u", (unsigned)(rnd() % 1000) + 1);
  return buf;
}

/* Append the next request of `c` to its output buffer. */
static void add_request(conn *c, int k) {
  char *o = c->out + c->out_len;
  size_t room = OUT_CAP - c->out_len;
  int n = 0;
  c->seq++;
  switch (opt.mode) {
    case M_EVENT: {
      /* New views by visitors of their own: a session of ~5 views each. */
      n = snprintf(o, room,
                   "{\"id\":%llu,\"op\":\"event\",\"event\":{\"type\":\"view\","
                   "\"item\":\"%s\",\"anon\":\"bench%d-%llu\",\"session\":\"bench%d-%llu\"}}\n",
                   (unsigned long long)c->seq, an_item(), k,
                   (unsigned long long)(c->seq / 5), k, (unsigned long long)(c->seq / 5));
      break;
    }
    case M_DECIDE: {
      size_t s = opt.n_sess ? rnd() % opt.n_sess : rnd() % 1000;
      unsigned item = opt.n_sess ? opt.sess_item[s] : 1;
      n = snprintf(o, room,
                   "{\"id\":%llu,\"op\":\"decide\",\"kind\":\"recommend\",\"anon\":\"a%zu\","
                   "\"page\":{\"type\":\"product\",\"item\":\"%u\"},\"k\":10}\n",
                   (unsigned long long)c->seq, s + 1, item);
      break;
    }
    case M_PING:
      n = snprintf(o, room, "{\"id\":%llu,\"op\":\"ping\"}\n", (unsigned long long)c->seq);
      break;
    case M_ZINCRBY: {
      const char *it = an_item();
      n = snprintf(o, room, "*4\r\n$7\r\nZINCRBY\r\n$8\r\ntrending\r\n$1\r\n1\r\n$%zu\r\n%s\r\n",
                   strlen(it), it);
      break;
    }
    case M_EVALSHA:
      /* The script loaded by serve_bench.sh: the trending top 10 with
         scores, the same logic as tailor's one-line trending strategy. */
      n = snprintf(o, room, "*4\r\n$7\r\nEVALSHA\r\n$%zu\r\n%s\r\n$1\r\n1\r\n$8\r\ntrending\r\n",
                   strlen(opt.sha), opt.sha);
      break;
    default:
      n = snprintf(o, room, "*4\r\n$9\r\nZREVRANGE\r\n$8\r\ntrending\r\n$1\r\n0\r\n$1\r\n9\r\n");
  }
  c->out_len += (size_t)n;
}

/* Length of the complete RESP reply at p, 0 when incomplete. */
static size_t resp_reply(const char *p, size_t n) {
  const char *nl = memchr(p, '\n', n);
  if (!nl || n < 3) return 0;
  size_t head = (size_t)(nl - p) + 1;
  long v = strtol(p + 1, NULL, 10);
  switch (p[0]) {
    case '$':
      if (v < 0) return head;
      return head + (size_t)v + 2 <= n ? head + (size_t)v + 2 : 0;
    case '*': {
      size_t at = head;
      for (long i = 0; i < v; i++) {
        size_t k = resp_reply(p + at, n - at);
        if (!k) return 0;
        at += k;
      }
      return at;
    }
    default:
      return head;
  }
}

static void record(uint64_t sent, uint64_t now, int error, int measuring) {
  n_done++;
  if (!measuring) return;
  uint64_t us = (now - sent) / 1000;
  if (us < HIST_US)
    hist[us]++;
  else
    over++;
  n_lat++;
  n_err += (uint64_t)error;
}

/* Take the complete answers out of c->in. */
static void read_answers(conn *c, uint64_t now, int measuring) {
  size_t at = 0;
  for (;;) {
    size_t n;
    int error = 0;
    if (opt.mode <= M_PING) {
      char *nl = memchr(c->in + at, '\n', c->in_len - at);
      if (!nl) break;
      n = (size_t)(nl - (c->in + at)) + 1;
      /* An error response names it near the front: {"id":N,"error":... */
      error = memmem(c->in + at, n < 40 ? n : 40, "\"error\"", 7) != NULL;
    } else {
      if (!(n = resp_reply(c->in + at, c->in_len - at))) break;
      error = c->in[at] == '-';
    }
    if (!c->count) {
      fprintf(stderr, "serve_load: an answer nobody asked for\n");
      exit(1);
    }
    record(c->ring[c->head], now, error, measuring);
    c->head = (c->head + 1) % MAX_DEPTH;
    c->count--;
    at += n;
  }
  memmove(c->in, c->in + at, c->in_len - at);
  c->in_len -= at;
}

static int connect_to(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
  inet_pton(AF_INET, opt.host, &sa.sin_addr);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* tailor: authenticate the connection once, before anything is timed. */
static void authenticate(int fd) {
  char buf[512];
  int n = snprintf(buf, sizeof buf, "{\"id\":0,\"op\":\"auth\",\"token\":\"%s\"}\n", opt.token);
  if (write(fd, buf, (size_t)n) != n) die("auth");
  size_t got = 0;
  while (got == 0 || buf[got - 1] != '\n') {
    ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
    if (r <= 0) die("auth answer");
    got += (size_t)r;
  }
  buf[got] = '\0';
  if (strstr(buf, "\"error\"")) {
    fprintf(stderr, "serve_load: auth refused: %s", buf);
    exit(1);
  }
}

static void flush(conn *c) {
  while (c->out_off < c->out_len) {
    ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
    if (w < 0) {
      if (errno == EAGAIN) break;
      die("write");
    }
    c->out_off += (size_t)w;
  }
  if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: serve_load --port P --mode event|decide|ping|zincrby|zrevrange|evalsha\n"
          "       [--host H] [--conns N] [--depth D] [--seconds S] [--warmup S]\n"
          "       [--rate R] [--sessions FILE] [--token T] [--sha SCRIPT_SHA1]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *sessions = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) usage();
    i++;
    if (!strcmp(a, "--port")) opt.port = atoi(v);
    else if (!strcmp(a, "--host")) opt.host = v;
    else if (!strcmp(a, "--conns")) opt.conns = atoi(v);
    else if (!strcmp(a, "--depth")) opt.depth = atoi(v);
    else if (!strcmp(a, "--seconds")) opt.seconds = atof(v);
    else if (!strcmp(a, "--warmup")) opt.warmup = atof(v);
    else if (!strcmp(a, "--rate")) opt.rate = atof(v);
    else if (!strcmp(a, "--sessions")) sessions = v;
    else if (!strcmp(a, "--token")) opt.token = v;
    else if (!strcmp(a, "--sha")) opt.sha = v;
    else if (!strcmp(a, "--mode"))
      opt.mode = !strcmp(v, "event")     ? M_EVENT
                 : !strcmp(v, "decide")  ? M_DECIDE
                 : !strcmp(v, "ping")    ? M_PING
                 : !strcmp(v, "zincrby") ? M_ZINCRBY
                 : !strcmp(v, "zrevrange") ? M_ZREVRANGE
                 : !strcmp(v, "evalsha") ? M_EVALSHA
                                           : (usage(), 0);
    else usage();
  }
  if (opt.conns < 1 || opt.conns > MAX_CONNS || opt.depth < 1 || opt.depth > MAX_DEPTH / 2 ||
      opt.seconds <= 0 || opt.seconds > 600)
    usage();
  if (sessions) load_sessions(sessions);
  hist = calloc(HIST_US, sizeof *hist);
  int ep = epoll_create1(0);
  conn *cs = calloc((size_t)opt.conns, sizeof *cs);
  for (int k = 0; k < opt.conns; k++) {
    conn *c = &cs[k];
    c->fd = connect_to();
    if (opt.token && opt.mode <= M_PING) authenticate(c->fd);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->in = malloc(IN_CAP);
    c->out = malloc(OUT_CAP);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)k};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev)) die("epoll_ctl");
  }
  uint64_t start = now_ns(), measure_from = start + (uint64_t)(opt.warmup * 1e9),
           end = measure_from + (uint64_t)(opt.seconds * 1e9);
  uint64_t interval = opt.rate > 0 ? (uint64_t)(1e9 * opt.conns / opt.rate) : 0;
  for (int k = 0; k < opt.conns; k++)
    cs[k].next_send = start + interval * (uint64_t)k / (uint64_t)opt.conns;
  uint64_t dropped_sched = 0;
  struct epoll_event evs[MAX_CONNS];
  for (;;) {
    uint64_t now = now_ns();
    if (now >= end) break;
    uint64_t wake = end;
    for (int k = 0; k < opt.conns; k++) {
      conn *c = &cs[k];
      if (interval) {
        /* Open loop: every scheduled send, stamped with its schedule. */
        while (c->next_send <= now) {
          if (c->count < MAX_DEPTH / 2 && c->out_len < OUT_CAP - 512) {
            add_request(c, k);
            c->ring[(c->head + c->count++) % MAX_DEPTH] = c->next_send;
          } else {
            dropped_sched++; /* the server is that far behind */
          }
          c->next_send += interval;
        }
        if (c->next_send < wake) wake = c->next_send;
      } else {
        while (c->count < (unsigned)opt.depth && c->out_len < OUT_CAP - 512) {
          add_request(c, k);
          c->ring[(c->head + c->count++) % MAX_DEPTH] = now;
        }
      }
      flush(c);
    }
    uint64_t wait_ns = wake > now ? wake - now : 0;
    struct timespec to = {(time_t)(wait_ns / 1000000000u), (long)(wait_ns % 1000000000u)};
    int n = epoll_pwait2(ep, evs, MAX_CONNS, &to, NULL);
    if (n < 0 && errno != EINTR) die("epoll");
    now = now_ns();
    for (int i = 0; i < n; i++) {
      conn *c = &cs[evs[i].data.u32];
      if (evs[i].events & EPOLLOUT) flush(c);
      for (;;) {
        ssize_t r = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
        if (r > 0) {
          c->in_len += (size_t)r;
          read_answers(c, now, now >= measure_from);
          continue;
        }
        if (r == 0) {
          fprintf(stderr, "serve_load: the server closed a connection\n");
          exit(1);
        }
        if (errno == EAGAIN) break;
        die("read");
      }
    }
  }
  double secs = opt.seconds;
  uint64_t total = n_lat;
  uint64_t p[4] = {0}, want[3] = {total / 2, total - total / 100, total - total / 1000};
  uint64_t cum = 0, max_us = 0;
  int got = 0;
  for (uint64_t us = 0; us < HIST_US; us++) {
    if (!hist[us]) continue;
    cum += hist[us];
    max_us = us;
    while (got < 3 && cum > want[got]) p[got++] = us;
  }
  if (over) max_us = HIST_US;
  while (got < 3) p[got++] = HIST_US;
  static const char *const names[] = {"event", "decide", "ping", "zincrby", "zrevrange",
                                      "evalsha"};
  printf("mode=%s conns=%d depth=%d rate=%.0f requests=%llu rps=%.0f p50_us=%llu "
         "p99_us=%llu p999_us=%llu max_us=%llu errors=%llu behind=%llu\n",
         names[opt.mode], opt.conns, opt.depth, opt.rate, (unsigned long long)n_lat,
         (double)n_lat / secs, (unsigned long long)p[0], (unsigned long long)p[1],
         (unsigned long long)p[2], (unsigned long long)max_us, (unsigned long long)n_err,
         (unsigned long long)dropped_sched);
  for (int k = 0; k < opt.conns; k++) {
    close(cs[k].fd);
    free(cs[k].in);
    free(cs[k].out);
  }
  free(cs);
  free(hist);
  for (size_t i = 0; i < opt.n_items; i++) free(opt.items[i]);
  free(opt.items);
  free(opt.sess_item);
  return 0;
}
