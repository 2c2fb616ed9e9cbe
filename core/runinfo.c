/*
 * runinfo.c -- <outdir>/run.json: how a run was started, so that
 * `solver --resume DIR` can start it again the same way.
 *
 *   {
 *     "plugin": "fixture_train",
 *     "plugin_path": "/abs/path/fixture_train.so",
 *     "version": "0.1.0",
 *     "seed": 42,
 *     "ranks": 1,
 *     "cwd": "/where/it/was/started",
 *     "args": ["-width", "4", "-options_file", "run.opts"]
 *   }
 *
 * "args" are the options exactly as given (the command line after the
 * program's own --flags), so PETSc's options and options files come back
 * too; "cwd" lets relative paths in them mean what they meant. Written
 * atomically by rank 0 when the plugin starts its run; read by every rank
 * of a resumed run before MPI starts. The reader is a small strict JSON
 * parser that skips keys it does not know, so the file can grow.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
  char *s;
  size_t n, cap;
  int oom;
} tbuf;

static void add(tbuf *b, const char *s, size_t k)
{
  if (b->oom)
    return;
  if (b->n + k + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 512;
    while (b->n + k + 1 > cap)
      cap *= 2;
    char *p = realloc(b->s, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->s = p;
    b->cap = cap;
  }
  memcpy(b->s + b->n, s, k);
  b->n += k;
  b->s[b->n] = '\0';
}

static void adds(tbuf *b, const char *s) { add(b, s, strlen(s)); }

static void addf(tbuf *b, const char *fmt, ...) SV_PRINTF(2, 3);
static void addf(tbuf *b, const char *fmt, ...)
{
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (k < 0 || (size_t)k >= sizeof tmp)
    b->oom = 1;
  else
    add(b, tmp, (size_t)k);
}

/* Quotes, backslashes and control characters escaped; other bytes as
   they are, so that any argument reads back exactly. */
static void jstr(tbuf *b, const char *s)
{
  adds(b, "\"");
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    if (*p == '"' || *p == '\\') {
      char e[2] = {'\\', (char)*p};
      add(b, e, 2);
    } else if (*p < 0x20) {
      addf(b, "\\u%04x", *p);
    } else {
      add(b, (const char *)p, 1);
    }
  }
  adds(b, "\"");
}

int sv__runinfo_write(const sv_run *r, const char *plugin_path, const char *cwd, int nargs,
                      char *const *args)
{
  if (!r)
    return sv_fail("run.json: no run");
  if (r->rank != 0)
    return 0;
  tbuf b = {0};
  adds(&b, "{\n  \"plugin\": ");
  jstr(&b, r->plugin && r->plugin->name ? r->plugin->name : "");
  adds(&b, ",\n  \"plugin_path\": ");
  jstr(&b, plugin_path ? plugin_path : "");
  adds(&b, ",\n  \"version\": ");
  jstr(&b, sv_version());
  addf(&b, ",\n  \"seed\": %lu,\n  \"ranks\": %d,\n  \"cwd\": ", r->seed, r->size);
  jstr(&b, cwd ? cwd : "");
  adds(&b, ",\n  \"args\": [");
  for (int i = 0; i < nargs; i++) {
    adds(&b, i ? ", " : "");
    jstr(&b, args[i]);
  }
  adds(&b, "]\n}\n");
  if (b.oom) {
    free(b.s);
    return sv_fail("run.json: out of memory");
  }
  char *path = sv__outpath(r, "run.json");
  int rc = path ? sv__write_atomic(path, b.s, b.n) : -1;
  free(path);
  free(b.s);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
  const char *start, *s, *end;
  const char *path;
  int depth;
} jp;

static int jfail(jp *p, const char *what)
{
  return sv_fail("'%s' is not a valid run description: %s at byte %ld", p->path, what,
                 (long)(p->s - p->start));
}

/* Consumes c if it is the next character: 1, else 0. */
static int eat(jp *p, char c)
{
  if (p->s < p->end && *p->s == c) {
    p->s++;
    return 1;
  }
  return 0;
}

static void ws(jp *p)
{
  while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
    p->s++;
}

static int lit(jp *p, const char *word)
{
  size_t k = strlen(word);
  if ((size_t)(p->end - p->s) < k || memcmp(p->s, word, k) != 0)
    return 0;
  p->s += k;
  return 1;
}

static int hex4(const char *s, unsigned *out)
{
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = s[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return -1;
  }
  *out = v;
  return 0;
}

static void utf8(tbuf *b, unsigned c)
{
  char u[4];
  if (c < 0x80) {
    u[0] = (char)c;
    add(b, u, 1);
  } else if (c < 0x800) {
    u[0] = (char)(0xc0 | (c >> 6)), u[1] = (char)(0x80 | (c & 0x3f));
    add(b, u, 2);
  } else if (c < 0x10000) {
    u[0] = (char)(0xe0 | (c >> 12)), u[1] = (char)(0x80 | ((c >> 6) & 0x3f));
    u[2] = (char)(0x80 | (c & 0x3f));
    add(b, u, 3);
  } else {
    u[0] = (char)(0xf0 | (c >> 18)), u[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    u[2] = (char)(0x80 | ((c >> 6) & 0x3f)), u[3] = (char)(0x80 | (c & 0x3f));
    add(b, u, 4);
  }
}

/* A string into *out (malloc'd; NULL: skipped). A NUL inside is refused:
   it could not be an argument. */
static int jstring(jp *p, char **out)
{
  if (p->s >= p->end || *p->s != '"')
    return jfail(p, "expected a string");
  p->s++;
  tbuf b = {0};
  add(&b, "", 0);
  while (p->s < p->end && *p->s != '"') {
    unsigned char c = (unsigned char)*p->s;
    if (c < 0x20) {
      free(b.s);
      return jfail(p, "a control character in a string");
    }
    if (c != '\\') {
      add(&b, p->s++, 1);
      continue;
    }
    if (p->end - p->s < 2) {
      free(b.s);
      return jfail(p, "an unfinished escape");
    }
    char e = p->s[1];
    p->s += 2;
    const char *simple = strchr("\"\\/bfnrt", e);
    if (e && simple) {
      static const char map[] = "\"\\/\b\f\n\r\t";
      add(&b, &map[simple - "\"\\/bfnrt"], 1);
      continue;
    }
    unsigned u, lo;
    if (e != 'u' || p->end - p->s < 4 || hex4(p->s, &u) < 0) {
      free(b.s);
      return jfail(p, "a bad escape");
    }
    p->s += 4;
    if (u >= 0xd800 && u < 0xdc00) {
      if (p->end - p->s < 6 || p->s[0] != '\\' || p->s[1] != 'u' || hex4(p->s + 2, &lo) < 0 ||
          lo < 0xdc00 || lo > 0xdfff) {
        free(b.s);
        return jfail(p, "an unpaired surrogate");
      }
      p->s += 6;
      u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
    } else if (u >= 0xdc00 && u <= 0xdfff) {
      free(b.s);
      return jfail(p, "an unpaired surrogate");
    }
    if (u == 0) {
      free(b.s);
      return jfail(p, "a NUL character in a string");
    }
    utf8(&b, u);
  }
  if (p->s >= p->end) {
    free(b.s);
    return jfail(p, "an unterminated string");
  }
  p->s++;
  if (b.oom) {
    free(b.s);
    return sv_fail("'%s': out of memory", p->path);
  }
  if (out)
    *out = b.s;
  else
    free(b.s);
  return 0;
}

static int jnumber(jp *p, double *out)
{
  char tmp[64];
  size_t k = 0;
  while (p->s + k < p->end && k < sizeof tmp - 1 && strchr("+-0123456789.eE", p->s[k]))
    k++;
  if (k == 0 || k == sizeof tmp - 1)
    return jfail(p, "expected a number");
  memcpy(tmp, p->s, k);
  tmp[k] = '\0';
  char *endp;
  double v = strtod(tmp, &endp);
  if (*endp)
    return jfail(p, "a bad number");
  p->s += k;
  if (out)
    *out = v;
  return 0;
}

static int jvalue(jp *p);

static int jarray_skip(jp *p)
{
  p->s++;
  ws(p);
  if (eat(p, ']'))
    return 0;
  for (;;) {
    if (jvalue(p) < 0)
      return -1;
    ws(p);
    if (eat(p, ','))
      continue;
    if (eat(p, ']'))
      return 0;
    return jfail(p, "expected ',' or ']'");
  }
}

static int jobject_skip(jp *p)
{
  p->s++;
  ws(p);
  if (eat(p, '}'))
    return 0;
  for (;;) {
    ws(p);
    if (jstring(p, NULL) < 0)
      return -1;
    ws(p);
    if (p->s >= p->end || *p->s != ':')
      return jfail(p, "expected ':'");
    p->s++;
    if (jvalue(p) < 0)
      return -1;
    ws(p);
    if (eat(p, ','))
      continue;
    if (eat(p, '}'))
      return 0;
    return jfail(p, "expected ',' or '}'");
  }
}

/* Any value, skipped. */
static int jvalue(jp *p)
{
  ws(p);
  if (p->s >= p->end)
    return jfail(p, "unexpected end");
  if (++p->depth > 64)
    return jfail(p, "nested too deeply");
  int rc;
  char c = *p->s;
  if (c == '"')
    rc = jstring(p, NULL);
  else if (c == '{')
    rc = jobject_skip(p);
  else if (c == '[')
    rc = jarray_skip(p);
  else if (lit(p, "true") || lit(p, "false") || lit(p, "null"))
    rc = 0;
  else
    rc = jnumber(p, NULL);
  p->depth--;
  return rc;
}

/* "args": an array of strings. */
static int jargs(jp *p, sv__runinfo *info)
{
  ws(p);
  if (p->s >= p->end || *p->s != '[')
    return jfail(p, "\"args\" must be an array of strings");
  p->s++;
  ws(p);
  if (eat(p, ']'))
    return 0;
  for (;;) {
    ws(p);
    char *a = NULL;
    if (jstring(p, &a) < 0)
      return -1;
    char **v = realloc(info->args, ((size_t)info->nargs + 1) * sizeof *v);
    if (!v) {
      free(a);
      return sv_fail("'%s': out of memory", p->path);
    }
    info->args = v;
    info->args[info->nargs++] = a;
    ws(p);
    if (eat(p, ','))
      continue;
    if (eat(p, ']'))
      return 0;
    return jfail(p, "expected ',' or ']' in \"args\"");
  }
}

void sv__runinfo_free(sv__runinfo *info)
{
  if (!info)
    return;
  free(info->plugin);
  free(info->plugin_path);
  free(info->version);
  free(info->cwd);
  for (int i = 0; i < info->nargs; i++)
    free(info->args[i]);
  free(info->args);
  memset(info, 0, sizeof *info);
}

static int parse(jp *p, sv__runinfo *info)
{
  ws(p);
  if (p->s >= p->end || *p->s != '{')
    return jfail(p, "expected an object");
  p->s++;
  int seen_seed = 0, seen_args = 0;
  ws(p);
  if (p->s < p->end && *p->s == '}')
    return jfail(p, "an empty object");
  for (;;) {
    ws(p);
    char *key = NULL;
    if (jstring(p, &key) < 0)
      return -1;
    ws(p);
    if (p->s >= p->end || *p->s != ':') {
      free(key);
      return jfail(p, "expected ':'");
    }
    p->s++;
    ws(p);
    int rc;
    char **field = strcmp(key, "plugin") == 0        ? &info->plugin
                   : strcmp(key, "plugin_path") == 0 ? &info->plugin_path
                   : strcmp(key, "version") == 0     ? &info->version
                   : strcmp(key, "cwd") == 0         ? &info->cwd
                                                     : NULL;
    if (field) {
      free(*field);
      *field = NULL;
      rc = jstring(p, field);
    } else if (strcmp(key, "seed") == 0 || strcmp(key, "ranks") == 0) {
      double v;
      rc = jnumber(p, &v);
      int seed = key[0] == 's';
      if (rc == 0 && !(v >= 0 && v <= (seed ? 4294967295.0 : (double)INT_MAX) && v == (long long)v))
        rc = sv_fail("'%s': \"%s\" is %g, not a %s", p->path, key, v,
                     seed ? "seed (an integer from 0 to 4294967295)" : "number of ranks");
      if (rc == 0 && seed) {
        info->seed = (unsigned long)v;
        seen_seed = 1;
      } else if (rc == 0) {
        info->ranks = (int)v;
      }
    } else if (strcmp(key, "args") == 0) {
      rc = jargs(p, info);
      seen_args = 1;
    } else {
      rc = jvalue(p);
    }
    free(key);
    if (rc < 0)
      return -1;
    ws(p);
    if (eat(p, ','))
      continue;
    if (p->s < p->end && *p->s == '}') {
      p->s++;
      break;
    }
    return jfail(p, "expected ',' or '}'");
  }
  ws(p);
  if (p->s != p->end)
    return jfail(p, "text after the object");
  if (!info->plugin || !*info->plugin)
    return sv_fail("'%s' names no plugin (\"plugin\")", p->path);
  if (!seen_seed)
    return sv_fail("'%s' has no \"seed\"", p->path);
  if (!seen_args)
    return sv_fail("'%s' has no \"args\"", p->path);
  return 0;
}

int sv__runinfo_read(const char *dir, sv__runinfo *info)
{
  memset(info, 0, sizeof *info);
  if (!dir || !*dir)
    return sv_fail("no directory to resume");
  size_t len = strlen(dir) + sizeof "/run.json";
  char *path = malloc(len);
  if (!path)
    return sv_fail("out of memory");
  snprintf(path, len, "%s%srun.json", dir, dir[strlen(dir) - 1] == '/' ? "" : "/");
  unsigned char *s = NULL;
  size_t n = 0;
  if (sv__read_file("run description", path, &s, &n) < 0) {
    free(path);
    return -1;
  }
  if (n > (1u << 24)) {
    free(s);
    sv_fail("'%s' is %zu bytes, too large for a run description", path, n);
    free(path);
    return -1;
  }
  jp p = {(const char *)s, (const char *)s, (const char *)s + n, path, 0};
  int rc = parse(&p, info);
  free(s);
  free(path);
  if (rc < 0)
    sv__runinfo_free(info);
  return rc;
}
