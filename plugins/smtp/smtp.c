/*
** smtp.c: the "email" channel: renders an outbox row's template (subject,
** text and HTML parts; template.h) with the row's variables (also for the
** console's preview, without sending: smtp_render) and sends it
** through an SMTP server with libcurl: STARTTLS or TLS, AUTH from the
** config, timeouts.  Configuration and templates: docs/plugins.md.
**
** Idempotency: the Message-ID is derived from the row's key, so a message
** sent twice after a crash (see engine/deliver.c) carries the same id and
** receiving systems can drop the copy.
*/
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tailor.h"
#include "tailor_plugin.h"
#include "template.h"

#define SMTP_VERSION "1.0.0"
#define SMTP_DEFAULT_CHANNEL "email"
#define SMTP_DEFAULT_TIMEOUT_MS 30000
#define SMTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define SMTP_MAX_TEMPLATE_BYTES (1u << 20)
#define SMTP_QP_LINE 76         /* quoted-printable line length (RFC 2045) */
#define SMTP_SUBJECT_CHUNK 45   /* bytes per encoded word: 60 base64 chars */
#define SMTP_HEADER_LINE 78     /* a header line's length to fold at (RFC 5322) */
#define SMTP_HEADER_WORD 900    /* a longer ASCII word is encoded, not folded */

static const tailor_plugin_api *api;

/* One template: its subject and one or both bodies. */
typedef struct mail_tpl {
  char *name;
  tpl *subject, *text, *html;
} mail_tpl;

typedef struct smtp {
  tailor_plugin *p;
  char *url, *from, *from_addr, *reply_to, *username, *password, *ca_file, *dir;
  long use_ssl;           /* CURLUSESSL_* */
  int verify;
  long timeout_ms, connect_timeout_ms;
  json_t *vars;           /* the config's extra template variables */
  mail_tpl *tpls;
  size_t n_tpls;
} smtp;

static void smtp_free(smtp *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n_tpls; i++) {
    free(s->tpls[i].name);
    tpl_free(s->tpls[i].subject);
    tpl_free(s->tpls[i].text);
    tpl_free(s->tpls[i].html);
  }
  free(s->tpls);
  free(s->url);
  free(s->from);
  free(s->from_addr);
  free(s->reply_to);
  free(s->username);
  free(s->password);
  free(s->ca_file);
  free(s->dir);
  json_decref(s->vars);
  free(s);
}

/*
** Templates: NAME.subject, NAME.txt and NAME.html in one folder, compiled
** at start so a syntax error stops the engine's start, not a send.
*/
static mail_tpl *find_tpl(smtp *s, const char *name, size_t n) {
  for (size_t i = 0; i < s->n_tpls; i++)
    if (strlen(s->tpls[i].name) == n && !memcmp(s->tpls[i].name, name, n)) return &s->tpls[i];
  return NULL;
}

static int load_tpl_file(smtp *s, const char *file, char *err, size_t errlen) {
  static const char *const exts[] = {".subject", ".txt", ".html"};
  size_t fl = strlen(file), e = 0, el = 0;
  for (; e < 3; e++) {
    el = strlen(exts[e]);
    if (fl > el && !strcmp(file + fl - el, exts[e])) break;
  }
  if (e == 3 || file[0] == '.') return 0; /* not a template: ignored */
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", s->dir, file);
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot read %s", path);
    return -1;
  }
  char *text = malloc(SMTP_MAX_TEMPLATE_BYTES + 1);
  size_t len = text ? fread(text, 1, SMTP_MAX_TEMPLATE_BYTES + 1, f) : 0;
  fclose(f);
  if (!text || len > SMTP_MAX_TEMPLATE_BYTES) {
    free(text);
    snprintf(err, errlen, "%s: larger than %u bytes", path, SMTP_MAX_TEMPLATE_BYTES);
    return -1;
  }
  /* A subject is one line: the file's trailing newline is not part of it. */
  if (e == 0)
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
  tpl *t = tpl_compile(text, len, path, err, errlen);
  free(text);
  if (!t) return -1;
  mail_tpl *m = find_tpl(s, file, fl - el);
  if (!m) {
    mail_tpl *more = realloc(s->tpls, (s->n_tpls + 1) * sizeof *more);
    if (!more) {
      tpl_free(t);
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    s->tpls = more;
    m = &s->tpls[s->n_tpls++];
    memset(m, 0, sizeof *m);
    m->name = strndup(file, fl - el);
  }
  tpl **slot = e == 0 ? &m->subject : e == 1 ? &m->text : &m->html;
  tpl_free(*slot);
  *slot = t;
  return 0;
}

static int load_templates(smtp *s, char *err, size_t errlen) {
  DIR *d = opendir(s->dir);
  if (!d) {
    snprintf(err, errlen, "templates: cannot read the folder '%s'", s->dir);
    return -1;
  }
  struct dirent *de;
  int rc = 0;
  while (!rc && (de = readdir(d))) rc = load_tpl_file(s, de->d_name, err, errlen);
  closedir(d);
  for (size_t i = 0; !rc && i < s->n_tpls; i++) {
    if (!s->tpls[i].subject || (!s->tpls[i].text && !s->tpls[i].html)) {
      snprintf(err, errlen, "templates: '%s' needs %s.subject and %s.txt or %s.html in %s",
               s->tpls[i].name, s->tpls[i].name, s->tpls[i].name, s->tpls[i].name, s->dir);
      rc = -1;
    }
  }
  if (!rc && !s->n_tpls) {
    snprintf(err, errlen, "templates: no NAME.subject / NAME.txt / NAME.html in '%s'", s->dir);
    rc = -1;
  }
  return rc;
}

/* The template of a row: its name, or without its last _suffix
   ("abandoned_cart_vip" falls back to "abandoned_cart"). */
static mail_tpl *template_for(smtp *s, const char *name) {
  mail_tpl *m = find_tpl(s, name, strlen(name));
  const char *cut = strrchr(name, '_');
  if (!m && cut) m = find_tpl(s, name, (size_t)(cut - name));
  return m;
}

/*
** Building the message.
*/
typedef struct buf {
  char *p;
  size_t len, cap;
  int oom;
} buf;

static void add(buf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *more = realloc(b->p, cap);
    if (!more) {
      b->oom = 1;
      return;
    }
    b->p = more;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void adds(buf *b, const char *s) { add(b, s, strlen(s)); }

/* Quoted-printable (RFC 2045) with CRLF line ends: 8-bit text of any line
   length travels through every SMTP server. */
static void add_qp(buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  size_t col = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\r' && i + 1 < n && s[i + 1] == '\n') continue;
    if (ch == '\n') {
      adds(b, "\r\n");
      col = 0;
      continue;
    }
    int at_end = i + 1 == n || s[i + 1] == '\n' || s[i + 1] == '\r';
    int plain = (ch >= 33 && ch <= 126 && ch != '=') || ((ch == ' ' || ch == '\t') && !at_end);
    size_t w = plain ? 1 : 3;
    if (col + w > SMTP_QP_LINE - 1) {
      adds(b, "=\r\n");
      col = 0;
    }
    if (plain) {
      add(b, (const char *)&ch, 1);
    } else {
      char enc[3] = {'=', hex[ch >> 4], hex[ch & 15]};
      add(b, enc, 3);
    }
    col += w;
  }
  adds(b, "\r\n");
}

/* A header value after `col` characters of its line: ASCII folded before
   a space where a line would pass 78 characters (RFC 5322 2.1.1; a
   product's long name in a subject must not make a line over the 998 an
   SMTP server may refuse), anything else, or a word too long to fold, as
   RFC 2047 encoded words cut on UTF-8 character boundaries. */
static void add_header_text(buf *b, const char *s, size_t col) {
  size_t n = strlen(s), i, run = 0, longest = 0;
  for (i = 0; i < n && (unsigned char)s[i] < 0x80; i++) {
    run = s[i] == ' ' ? 0 : run + 1;
    if (run > longest) longest = run;
  }
  if (i == n && longest <= SMTP_HEADER_WORD) {
    for (size_t at = 0; at < n;) {
      size_t end = at + 1;
      while (end < n && s[end] != ' ') end++;
      /* fold before a word, never leaving a line of nothing but a space */
      if (at && col + (end - at) > SMTP_HEADER_LINE && end - at > 1) {
        adds(b, "\r\n");
        col = 0;
      }
      add(b, s + at, end - at);
      col += end - at;
      at = end;
    }
    return;
  }
  for (size_t at = 0; at < n;) {
    size_t take = n - at < SMTP_SUBJECT_CHUNK ? n - at : SMTP_SUBJECT_CHUNK;
    while (take < n - at && take > 1 && ((unsigned char)s[at + take] & 0xC0) == 0x80) take--;
    unsigned char out[4 * SMTP_SUBJECT_CHUNK / 3 + 8];
    int olen = EVP_EncodeBlock(out, (const unsigned char *)s + at, (int)take);
    if (at) adds(b, "\r\n ");
    adds(b, "=?UTF-8?B?");
    add(b, (const char *)out, (size_t)olen);
    adds(b, "?=");
    at += take;
  }
}

/* The From header of "Name <address>": the name as a quoted string when
   it holds a special character (unquoted, "Trail Co, Ltd" is two
   addresses), as encoded words when it is not ASCII (a raw "Café" is 8-bit
   bytes a 7-bit header cannot carry). */
static void add_from(buf *b, const char *from, const char *addr) {
  const char *lt = strrchr(from, '<');
  const char *name = from, *end = lt ? lt : from;
  while (name < end && (*name == ' ' || *name == '\t')) name++;
  while (end > name && (end[-1] == ' ' || end[-1] == '\t')) end--;
  if (end - name >= 2 && *name == '"' && end[-1] == '"') name++, end--;
  size_t n = (size_t)(end - name);
  if (!lt || !n) {
    adds(b, addr);
    return;
  }
  char *text = strndup(name, n);
  int ascii = 1, special = 0;
  for (size_t i = 0; i < n; i++) {
    ascii &= (unsigned char)name[i] < 0x80;
    special |= strchr("()<>[]:;@\\,.\"", name[i]) != NULL;
  }
  if (!text) {
    b->oom = 1;
  } else if (!ascii) {
    add_header_text(b, text, strlen("From: "));
  } else if (special) {
    adds(b, "\"");
    for (size_t i = 0; i < n; i++) {
      if (name[i] == '"' || name[i] == '\\') adds(b, "\\");
      add(b, name + i, 1);
    }
    adds(b, "\"");
  } else {
    adds(b, text);
  }
  free(text);
  adds(b, " <");
  adds(b, addr);
  adds(b, ">");
}

/* An address fit for an envelope and a header: no line breaks, no angle
   brackets, one @. */
static int plain_address(const char *a) {
  const char *at = a ? strchr(a, '@') : NULL;
  if (!at || at == a || !at[1] || strchr(at + 1, '@')) return 0;
  for (; *a; a++)
    if ((unsigned char)*a <= ' ' || *a == '<' || *a == '>' || *a == '"' || *a == ',')
      return 0;
  return 1;
}

static char *hex_sha256(const char *s, size_t hexlen) {
  unsigned char md[32];
  unsigned int mdlen = 0;
  static const char hex[] = "0123456789abcdef";
  char *out = malloc(hexlen + 1);
  if (!out || !EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL)) {
    free(out);
    return NULL;
  }
  for (size_t i = 0; i < hexlen && i / 2 < mdlen; i++)
    out[i] = hex[(i % 2 ? md[i / 2] : md[i / 2] >> 4) & 15];
  out[hexlen] = '\0';
  return out;
}

/* The variables a template sees: the config's "vars", the row's vars on
   top, and who it is for. */
static json_t *scope_of(smtp *s, const tailor_delivery *d, char *err, size_t errlen) {
  json_error_t je;
  json_t *vars = json_loads(d->vars ? d->vars : "{}", 0, &je);
  if (!json_is_object(vars)) {
    json_decref(vars);
    snprintf(err, errlen, "the row's vars are not a JSON object");
    return NULL;
  }
  json_t *scope = json_deep_copy(s->vars);
  json_object_update(scope, vars);
  json_decref(vars);
  json_object_set_new(scope, "customer",
                      json_pack("{ss? ss?}", "id", d->customer, "email", d->email));
  json_object_set_new(scope, "template", json_string(d->template_name));
  return scope;
}

/* A message's rendered parts: what a send puts in it and a preview shows. */
typedef struct mail_parts {
  char *subject, *text, *html; /* text or html NULL when the template has none */
  size_t tlen, hlen;
} mail_parts;

static void parts_free(mail_parts *p) {
  free(p->subject);
  free(p->text);
  free(p->html);
}

/* Render the subject and bodies of `d` with template `m`: 0, or -1 with
   the reason in `err` (the parts freed). */
static int render_parts(smtp *s, const tailor_delivery *d, mail_tpl *m, mail_parts *p,
                        char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  json_t *scope = scope_of(s, d, err, errlen);
  if (!scope) return -1;
  p->subject = tpl_render(m->subject, scope, TPL_HEADER, NULL, err, errlen);
  p->text = m->text ? tpl_render(m->text, scope, TPL_TEXT, &p->tlen, err, errlen) : NULL;
  p->html = m->html ? tpl_render(m->html, scope, TPL_HTML, &p->hlen, err, errlen) : NULL;
  json_decref(scope);
  if (!p->subject || (m->text && !p->text) || (m->html && !p->html)) {
    parts_free(p);
    if (!err[0]) snprintf(err, errlen, "cannot render '%s'", d->template_name);
    return -1;
  }
  return 0;
}

/* The row's unsubscribe link (the host's `unsubscribe_url` variable) as
   RFC 2369's List-Unsubscribe and RFC 8058's one-click List-Unsubscribe-
   Post, which mail clients show as an unsubscribe button and bulk-sender
   rules require.  Left out when it is not one http(s) address that fits a
   header line. */
static void add_unsubscribe(buf *b, const tailor_delivery *d) {
  json_t *vars = d->vars ? json_loads(d->vars, 0, NULL) : NULL;
  const char *url = json_string_value(json_object_get(vars, "unsubscribe_url"));
  size_t n = url ? strlen(url) : 0;
  int ok = n && n < 900 && (!strncmp(url, "https://", 8) || !strncmp(url, "http://", 7));
  for (size_t i = 0; ok && i < n; i++)
    ok = (unsigned char)url[i] > 32 && url[i] != 127 && url[i] != '<' && url[i] != '>';
  if (ok) {
    adds(b, "\r\nList-Unsubscribe: <");
    adds(b, url);
    adds(b, ">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click");
  }
  json_decref(vars);
}

static char *build_message(smtp *s, const tailor_delivery *d, mail_tpl *m, char *err,
                           size_t errlen) {
  mail_parts parts;
  if (render_parts(s, d, m, &parts, err, errlen)) return NULL;
  char *subject = parts.subject, *text = parts.text, *html = parts.html;
  size_t tlen = parts.tlen, hlen = parts.hlen;
  char *id = hex_sha256(d->key, 32);
  char *bound = hex_sha256(d->json ? d->json : d->key, 24);
  buf b = {0};
  if (id && bound) {
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    const char *domain = strchr(s->from_addr, '@') + 1;
    adds(&b, "From: ");
    add_from(&b, s->from, s->from_addr);
    adds(&b, "\r\nTo: ");
    adds(&b, d->email);
    if (s->reply_to) {
      adds(&b, "\r\nReply-To: ");
      adds(&b, s->reply_to);
    }
    adds(&b, "\r\nSubject: ");
    add_header_text(&b, subject, strlen("Subject: "));
    adds(&b, "\r\nDate: ");
    adds(&b, date);
    adds(&b, "\r\nMessage-ID: <");
    adds(&b, id);
    adds(&b, "@");
    adds(&b, domain);
    adds(&b, ">\r\nX-Tailor-Template: ");
    add_header_text(&b, d->template_name, strlen("X-Tailor-Template: "));
    add_unsubscribe(&b, d);
    adds(&b, "\r\nMIME-Version: 1.0\r\n");
    static const char text_part[] = "Content-Type: text/plain; charset=utf-8\r\n"
                                    "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
    static const char html_part[] = "Content-Type: text/html; charset=utf-8\r\n"
                                    "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
    if (text && html) {
      adds(&b, "Content-Type: multipart/alternative;\r\n boundary=\"tailor-");
      adds(&b, bound);
      adds(&b, "\"\r\n\r\nThis is a multipart message in MIME format.\r\n\r\n--tailor-");
      adds(&b, bound);
      adds(&b, "\r\n");
      adds(&b, text_part);
      add_qp(&b, text, tlen);
      adds(&b, "--tailor-");
      adds(&b, bound);
      adds(&b, "\r\n");
      adds(&b, html_part);
      add_qp(&b, html, hlen);
      adds(&b, "--tailor-");
      adds(&b, bound);
      adds(&b, "--\r\n");
    } else {
      adds(&b, text ? text_part : html_part);
      add_qp(&b, text ? text : html, text ? tlen : hlen);
    }
    if (b.oom) snprintf(err, errlen, "out of memory");
  } else {
    snprintf(err, errlen, "out of memory");
  }
  free(subject);
  free(text);
  free(html);
  free(id);
  free(bound);
  if (b.oom || !b.p) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

/*
** The preview (plugin API 2, channel_render): the parts the send would
** put in the message, from the same render_parts.
*/
static int smtp_render(void *ud, const tailor_delivery *d, tailor_render_part_fn part,
                       void *ctx, char *err, size_t errlen) {
  smtp *s = ud;
  mail_tpl *m = template_for(s, d->template_name);
  if (!m) {
    snprintf(err, errlen, "no template '%s' in %s", d->template_name, s->dir);
    return -1;
  }
  err[0] = '\0';
  mail_parts p;
  if (render_parts(s, d, m, &p, err, errlen)) return -1;
  part(ctx, "from", s->from, strlen(s->from));
  if (d->email) part(ctx, "to", d->email, strlen(d->email));
  part(ctx, "subject", p.subject, strlen(p.subject));
  if (p.text) part(ctx, "text", p.text, p.tlen);
  if (p.html) part(ctx, "html", p.html, p.hlen);
  parts_free(&p);
  return 0;
}

/*
** Sending.
*/
typedef struct upload {
  const char *p;
  size_t left;
} upload;

static size_t read_cb(char *out, size_t size, size_t n, void *ud) {
  upload *u = ud;
  size_t take = size * n < u->left ? size * n : u->left;
  memcpy(out, u->p, take);
  u->p += take;
  u->left -= take;
  return take;
}

/* The server's last refusal ("554 5.7.1 rejected as spam"): libcurl hands
   SMTP replies to the header callback, and its own error text for a
   refused DATA is only "Weird server reply".  Replies after it (to QUIT)
   do not replace it. */
typedef struct reply {
  char line[200];
} reply;

/* The length of the UTF-8 character at s (n bytes left), 0 when none is
   there: a byte of no character, or one cut short. */
static size_t utf8_char(const unsigned char *s, size_t n) {
  size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2
             : s[0] >= 0xE0 && s[0] < 0xF0 ? 3 : s[0] >= 0xF0 && s[0] < 0xF5 ? 4 : 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  return len;
}

static size_t reply_cb(char *in, size_t size, size_t n, void *ud) {
  reply *r = ud;
  size_t len = size * n, keep = len, at = 0;
  if (!len || (in[0] != '4' && in[0] != '5')) return len;
  while (keep && (in[keep - 1] == '\n' || in[keep - 1] == '\r')) keep--;
  /* One line of last_error, and UTF-8 (the store's text, the outbox's JSON):
     whole characters that fit, '?' for a byte of none (a Latin-1 reply). */
  for (size_t i = 0; i < keep;) {
    const unsigned char *c = (const unsigned char *)in + i;
    size_t ch = utf8_char(c, keep - i), w = ch ? ch : 1;
    if (at + w >= sizeof r->line) break;
    if (!ch) r->line[at++] = '?';
    else if (c[0] < ' ') r->line[at++] = ' ';
    else memcpy(r->line + at, c, ch), at += ch;
    i += w;
  }
  r->line[at] = '\0';
  return len;
}

static int smtp_send(void *ud, const tailor_delivery *d, char *err, size_t errlen) {
  smtp *s = ud;
  if (!d->email || !plain_address(d->email)) {
    snprintf(err, errlen, "no usable recipient address");
    return TAILOR_SEND_FAIL;
  }
  mail_tpl *m = template_for(s, d->template_name);
  if (!m) {
    snprintf(err, errlen, "no template '%s' in %s", d->template_name, s->dir);
    return TAILOR_SEND_FAIL;
  }
  err[0] = '\0';
  char *msg = build_message(s, d, m, err, errlen);
  if (!msg) {
    if (!err[0]) snprintf(err, errlen, "cannot render '%s'", d->template_name);
    return TAILOR_SEND_FAIL;
  }
  CURL *c = curl_easy_init();
  if (!c) {
    free(msg);
    snprintf(err, errlen, "cannot start a libcurl transfer");
    return TAILOR_SEND_RETRY;
  }
  char from[600], to[600], cerr[CURL_ERROR_SIZE] = "";
  reply last = {""};
  snprintf(from, sizeof from, "<%s>", s->from_addr);
  snprintf(to, sizeof to, "<%s>", d->email);
  struct curl_slist *rcpt = curl_slist_append(NULL, to);
  upload u = {msg, strlen(msg)};
  curl_easy_setopt(c, CURLOPT_URL, s->url);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(c, CURLOPT_USE_SSL, s->use_ssl);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, (long)s->verify);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, s->verify ? 2L : 0L);
  if (s->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
  if (s->username) curl_easy_setopt(c, CURLOPT_USERNAME, s->username);
  if (s->password) curl_easy_setopt(c, CURLOPT_PASSWORD, s->password);
  curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
  curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
  curl_easy_setopt(c, CURLOPT_READDATA, &u);
  curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)u.left);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s->timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* timeouts without SIGALRM: threads */
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, reply_cb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &last);
  CURLcode rc = curl_easy_perform(c);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(rcpt);
  curl_easy_cleanup(c);
  free(msg);
  if (rc == CURLE_OK) return TAILOR_SEND_OK;
  /* The server's words when it refused; libcurl's when nothing answered. */
  if (last.line[0]) {
    int w = snprintf(err, errlen, "%s (SMTP %ld): %s: %s", s->url, code,
                     cerr[0] ? cerr : curl_easy_strerror(rc), last.line);
    if (w >= 0 && (size_t)w >= errlen && errlen) { /* cut short: no part character at the end */
      size_t end = strlen(err), i = end;
      while (i > 0 && end - i < 3 && ((unsigned char)err[i - 1] & 0xC0) == 0x80) i--;
      if (i > 0 && !utf8_char((unsigned char *)err + i - 1, end - i + 1)) err[i - 1] = '\0';
    }
  } else {
    snprintf(err, errlen, "%s (SMTP %ld): %s", s->url, code,
             cerr[0] ? cerr : curl_easy_strerror(rc));
  }
  /* 5xx is the server saying no for good (no such mailbox, refused
     content); anything else (a connection refused, a timeout, 4xx) may
     pass. */
  return code >= 500 && code < 600 ? TAILOR_SEND_FAIL : TAILOR_SEND_RETRY;
}

/*
** Starting and stopping.
*/
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void init_curl(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static char *opt_string(json_t *cfg, const char *key) {
  const char *v = json_string_value(json_object_get(cfg, key));
  return v && *v ? strdup(v) : NULL;
}

static int smtp_start(tailor_plugin *p, const char *config_json, void **state, char *err,
                      size_t errlen) {
  static const char *const known[] = {"url", "from", "reply_to", "username", "password",
                                      "tls", "tls_verify", "ca_file", "templates", "vars",
                                      "timeout_ms", "connect_timeout_ms", "channel"};
  json_t *cfg = json_loads(config_json, 0, NULL);
  smtp *s = calloc(1, sizeof *s);
  int rc = -1;
  if (!cfg || !s) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  const char *key;
  json_t *v;
  json_object_foreach(cfg, key, v) {
    size_t i = 0;
    while (i < sizeof known / sizeof *known && strcmp(known[i], key)) i++;
    if (i == sizeof known / sizeof *known) {
      snprintf(err, errlen, "unknown config key '%s' (url, from, reply_to, username, "
               "password, tls, tls_verify, ca_file, templates, vars, timeout_ms, "
               "connect_timeout_ms, channel)", key);
      goto done;
    }
  }
  s->p = p;
  s->url = opt_string(cfg, "url");
  s->from = opt_string(cfg, "from");
  s->reply_to = opt_string(cfg, "reply_to");
  s->username = opt_string(cfg, "username");
  s->password = opt_string(cfg, "password");
  s->ca_file = opt_string(cfg, "ca_file");
  s->dir = opt_string(cfg, "templates");
  s->verify = !json_is_false(json_object_get(cfg, "tls_verify"));
  json_t *to = json_object_get(cfg, "timeout_ms"), *cto = json_object_get(cfg, "connect_timeout_ms");
  s->timeout_ms = json_is_integer(to) ? (long)json_integer_value(to) : SMTP_DEFAULT_TIMEOUT_MS;
  s->connect_timeout_ms =
      json_is_integer(cto) ? (long)json_integer_value(cto) : SMTP_DEFAULT_CONNECT_TIMEOUT_MS;
  const char *tls = json_string_value(json_object_get(cfg, "tls"));
  const char *channel = json_string_value(json_object_get(cfg, "channel"));
  json_t *vars = json_object_get(cfg, "vars");
  s->vars = vars ? json_incref(vars) : json_object();
  /* The from address: "Shop <shop@example.com>" or "shop@example.com". */
  if (s->from) {
    const char *lt = strrchr(s->from, '<'), *gt = strrchr(s->from, '>');
    s->from_addr = lt && gt > lt ? strndup(lt + 1, (size_t)(gt - lt - 1)) : strdup(s->from);
  }
  if (!s->url || (strncmp(s->url, "smtp://", 7) && strncmp(s->url, "smtps://", 8))) {
    snprintf(err, errlen, "\"url\" must be smtp://HOST:PORT (STARTTLS) or smtps://HOST:PORT");
  } else if (!s->from || !plain_address(s->from_addr) || strpbrk(s->from, "\r\n")) {
    snprintf(err, errlen, "\"from\" must be an address, \"Shop <shop@example.com>\"");
  } else if (s->reply_to && strpbrk(s->reply_to, "\r\n")) {
    snprintf(err, errlen, "\"reply_to\" must be one line");
  } else if (!s->dir) {
    snprintf(err, errlen, "\"templates\" must name the folder of the email templates");
  } else if (!json_is_object(s->vars)) {
    snprintf(err, errlen, "\"vars\" must be an object");
  } else if (tls && strcmp(tls, "required") && strcmp(tls, "try") && strcmp(tls, "none")) {
    snprintf(err, errlen, "\"tls\" must be \"required\", \"try\" or \"none\"");
  } else if (s->timeout_ms <= 0 || s->connect_timeout_ms <= 0) {
    snprintf(err, errlen, "timeouts must be positive milliseconds");
  } else if (!!s->username != !!s->password) {
    snprintf(err, errlen, "\"username\" and \"password\" go together");
  } else if (load_templates(s, err, errlen) == 0) {
    /* STARTTLS is required unless the config says otherwise: credentials
       and customers' addresses do not cross a network in clear text by
       default. */
    s->use_ssl = !tls || !strcmp(tls, "required") ? CURLUSESSL_ALL
                 : !strcmp(tls, "try")            ? CURLUSESSL_TRY
                                                  : CURLUSESSL_NONE;
    pthread_once(&curl_once, init_curl);
    if (curl_init_rc != CURLE_OK) {
      snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    } else if (api->channel(p, channel ? channel : SMTP_DEFAULT_CHANNEL, TAILOR_CHANNEL_EMAIL,
                            smtp_send, s)) {
      snprintf(err, errlen, "cannot register channel '%s' (taken by another plugin?)",
               channel ? channel : SMTP_DEFAULT_CHANNEL);
    } else if (api->version >= 2 &&
               api->channel_render(p, channel ? channel : SMTP_DEFAULT_CHANNEL, smtp_render,
                                   s)) {
      snprintf(err, errlen, "cannot register the preview of channel '%s'",
               channel ? channel : SMTP_DEFAULT_CHANNEL);
    } else {
      char msg[300];
      snprintf(msg, sizeof msg, "channel '%s' through %s, %zu templates from %s",
               channel ? channel : SMTP_DEFAULT_CHANNEL, s->url, s->n_tpls, s->dir);
      api->log(p, TAILOR_PLUGIN_LOG_INFO, msg);
      *state = s;
      s = NULL;
      rc = 0;
    }
  }
done:
  smtp_free(s);
  json_decref(cfg);
  return rc;
}

static void smtp_stop(void *state) { smtp_free(state); }

static const tailor_plugin_desc desc = {
    TAILOR_PLUGIN_API_VERSION, sizeof(tailor_plugin_desc), "smtp", SMTP_VERSION,
    "email through an SMTP server (libcurl, STARTTLS, AUTH), from templates",
    smtp_start, smtp_stop,
};

TAILOR_PLUGIN_EXPORT const tailor_plugin_desc *tailor_plugin_init(
    int host_api_version, const tailor_plugin_api *host) {
  if (host_api_version < TAILOR_PLUGIN_API_VERSION) return NULL;
  api = host;
  return &desc;
}
