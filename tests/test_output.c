/*
 * test_output.c -- the output directory: atomic files, CSV tables read back
 * bit for bit, series, summary.json parsed by a strict JSON reader written
 * here from RFC 8259, and plots through gnuplot when it is installed.
 */
#include "internal.h"

#include <check.h>
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Fixture: a run with its output in a fresh directory                 */
/* ------------------------------------------------------------------ */

static char tmpdir[256];
static struct sv_run run;

static void remove_tree(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  char path[1024];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
      remove_tree(path);
    else
      unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

static void setup(void)
{
  snprintf(tmpdir, sizeof tmpdir, "%s/sv_out_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
  memset(&run, 0, sizeof run);
  run.outdir = tmpdir;
  run.comm = MPI_COMM_SELF;
  run.rank = 0;
  run.size = 1;
  run.seed = 1234;
  unsetenv("SOLVER_GNUPLOT");
  sv_clear_error();
}

static void teardown(void)
{
  unsetenv("SOLVER_GNUPLOT");
  sv__series_close_all(&run);
  for (int i = 0; i < run.nmetrics; i++)
    free(run.metrics[i].name);
  free(run.metrics);
  for (int i = 0; i < run.nheadlines; i++)
    free(run.headlines[i]);
  free(run.headlines);
  remove_tree(tmpdir);
}

static char *tpath(const char *name)
{
  static char buf[4][512];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  return p;
}

static char *slurp(const char *path)
{
  FILE *fp = fopen(path, "rb");
  ck_assert_msg(fp != NULL, "cannot open %s", path);
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  ck_assert_uint_eq(fread(s, 1, (size_t)n, fp), (size_t)n);
  s[n] = '\0';
  fclose(fp);
  return s;
}

/* The names in the output directory, sorted, joined by spaces. */
static char *listing(void)
{
  static char out[2048];
  char names[32][256];
  int n = 0;
  DIR *d = opendir(tmpdir);
  ck_assert_ptr_nonnull(d);
  struct dirent *e;
  while ((e = readdir(d)) && n < 32)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      snprintf(names[n++], 256, "%s", e->d_name);
  closedir(d);
  qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    if (i)
      strcat(out, " ");
    strcat(out, names[i]);
  }
  return out;
}

static int same_double(double a, double b)
{
  return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

/* ------------------------------------------------------------------ */
/* Atomic writes                                                       */
/* ------------------------------------------------------------------ */

START_TEST(atomic_write_replaces_and_leaves_nothing)
{
  const char *p = tpath("a.txt");
  ck_assert_int_eq(sv__write_atomic(p, "first\n", 6), 0);
  ck_assert_int_eq(sv__write_atomic(p, "second\n", 7), 0);
  char *s = slurp(p);
  ck_assert_str_eq(s, "second\n");
  free(s);
  ck_assert_int_eq(sv__write_atomic(tpath("empty"), NULL, 0), 0);
  s = slurp(tpath("empty"));
  ck_assert_str_eq(s, "");
  free(s);
  ck_assert_str_eq(listing(), "a.txt empty");

  /* the mode open(2) would give, not mkstemp's 0600 */
  mode_t old = umask(022);
  ck_assert_int_eq(sv__write_atomic(p, "x", 1), 0);
  umask(old);
  struct stat st;
  ck_assert_int_eq(stat(p, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0644);

  /* a relative path (no directory part) */
  char cwd[1024];
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
  ck_assert_int_eq(chdir(tmpdir), 0);
  ck_assert_int_eq(sv__write_atomic("rel.txt", "r", 1), 0);
  ck_assert_int_eq(chdir(cwd), 0);
  ck_assert_str_eq(listing(), "a.txt empty rel.txt");
}
END_TEST

START_TEST(atomic_write_failure_cleans_up)
{
  /* rename onto a directory fails after the data was written: the
     temporary must be removed and the message must name the path */
  char sub[600];
  snprintf(sub, sizeof sub, "%s/sub", tmpdir);
  ck_assert_int_eq(mkdir(sub, 0755), 0);
  ck_assert_int_eq(sv__write_atomic(sub, "data", 4), -1);
  ck_assert_msg(strstr(sv_errmsg(), sub) && strstr(sv_errmsg(), "rename"), "%s", sv_errmsg());
  ck_assert_str_eq(listing(), "sub");

  /* a directory that does not exist */
  char missing[600];
  snprintf(missing, sizeof missing, "%s/nope/f.txt", tmpdir);
  ck_assert_int_eq(sv__write_atomic(missing, "data", 4), -1);
  ck_assert_msg(strstr(sv_errmsg(), missing) && strstr(sv_errmsg(), "No such file"), "%s",
                sv_errmsg());
  ck_assert_str_eq(listing(), "sub");

  ck_assert_int_eq(sv__write_atomic("", "x", 1), -1);
  ck_assert_int_eq(sv__write_atomic(tpath("x"), NULL, 3), -1);
}
END_TEST

START_TEST(outpath_joins)
{
  char *p = sv__outpath(&run, "f.csv");
  ck_assert_str_eq(p, tpath("f.csv"));
  free(p);
  char dir[300];
  snprintf(dir, sizeof dir, "%s/", tmpdir);
  run.outdir = dir;
  p = sv__outpath(&run, "f.csv");
  ck_assert_str_eq(p, tpath("f.csv"));
  free(p);
  run.outdir = tmpdir;
  ck_assert_ptr_null(sv__outpath(&run, ""));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Metrics and headlines                                               */
/* ------------------------------------------------------------------ */

START_TEST(metrics_and_headlines)
{
  ck_assert_int_eq(sv_metric(&run, "l2_error", 1.0), 0);
  ck_assert_int_eq(sv_metric(&run, "steps", 100), 0);
  ck_assert_int_eq(sv_metric(&run, "l2_error", 2.5e-9), 0); /* last value wins */
  ck_assert_int_eq(run.nmetrics, 2);
  ck_assert_str_eq(run.metrics[0].name, "l2_error");
  ck_assert(run.metrics[0].value == 2.5e-9);
  ck_assert_int_eq(sv_metric(&run, "", 1), -1);
  ck_assert_int_eq(sv_metric(&run, NULL, 1), -1);
  for (int i = 0; i < 40; i++) {
    char name[32];
    snprintf(name, sizeof name, "m%d", i);
    ck_assert_int_eq(sv_metric(&run, name, i), 0);
  }
  ck_assert_int_eq(run.nmetrics, 42);

  ck_assert_int_eq(sv_headline(&run, "relative L2 error %.3e after %d steps", 1.5e-7, 300), 0);
  char long_line[1000];
  memset(long_line, 'x', sizeof long_line - 1);
  long_line[sizeof long_line - 1] = '\0';
  ck_assert_int_eq(sv_headline(&run, "%s", long_line), 0);
  ck_assert_int_eq(run.nheadlines, 2);
  ck_assert_str_eq(run.headlines[0], "relative L2 error 1.500e-07 after 300 steps");
  ck_assert_str_eq(run.headlines[1], long_line);
}
END_TEST

/* ------------------------------------------------------------------ */
/* CSV                                                                 */
/* ------------------------------------------------------------------ */

/* Split a line at commas (no quoting in data rows). */
static int split(char *line, char **f, int max)
{
  int n = 0;
  f[n++] = line;
  for (char *c = line; *c && n < max; c++)
    if (*c == ',') {
      *c = '\0';
      f[n++] = c + 1;
    }
  return n;
}

START_TEST(csv_round_trip)
{
  enum { N = 12 };
  double x[N], u[N], w[N];
  const double tricky[] = {0.1, -0.0, 1.0 / 3.0, DBL_MIN / 16, DBL_MAX, M_PI, 1e-300, -2.5};
  for (int i = 0; i < N; i++) {
    x[i] = i < 8 ? tricky[i] : exp((double)i) / 7.0;
    u[i] = sin(1.0 + i) * 1e10;
    w[i] = i == 3 ? NAN : i == 4 ? INFINITY : i == 5 ? -INFINITY : 1.0 / (i + 1);
  }
  const char *names[] = {"x", "u", "w"};
  const double *cols[] = {x, u, w};
  ck_assert_int_eq(sv_write_csv(&run, "sol.csv", 3, names, N, cols), 0);

  char *s = slurp(tpath("sol.csv"));
  char *save, *line = strtok_r(s, "\n", &save);
  ck_assert_str_eq(line, "x,u,w");
  int row = 0;
  while ((line = strtok_r(NULL, "\n", &save))) {
    ck_assert_int_lt(row, N);
    char *f[4];
    ck_assert_int_eq(split(line, f, 4), 3);
    const double *want[] = {x, u, w};
    for (int j = 0; j < 3; j++) {
      char *end;
      double v = strtod(f[j], &end);
      ck_assert_msg(*end == '\0' && end != f[j], "row %d col %d: '%s'", row, j, f[j]);
      ck_assert_msg(same_double(v, want[j][row]), "row %d col %d: %s != %.17g", row, j, f[j],
                    want[j][row]);
    }
    row++;
  }
  ck_assert_int_eq(row, N);
  free(s);

  /* header fields that need quoting; zero rows is a header only */
  const char *odd[] = {"a,b", "say \"hi\"", "plain"};
  ck_assert_int_eq(sv_write_csv(&run, "odd.csv", 3, odd, 0, NULL), 0);
  s = slurp(tpath("odd.csv"));
  ck_assert_str_eq(s, "\"a,b\",\"say \"\"hi\"\"\",plain\n");
  free(s);
  ck_assert_str_eq(listing(), "odd.csv sol.csv");
}
END_TEST

START_TEST(csv_errors_and_other_ranks)
{
  double x[2] = {1, 2};
  const double *cols[] = {x, NULL};
  const char *names[] = {"x", "y"};
  ck_assert_int_eq(sv_write_csv(&run, "e.csv", 0, names, 2, cols), -1);
  ck_assert_int_eq(sv_write_csv(&run, "e.csv", 2, names, 2, cols), -1);
  ck_assert_msg(strstr(sv_errmsg(), "'y'") && strstr(sv_errmsg(), "e.csv"), "%s", sv_errmsg());
  const char *noname[] = {"x", ""};
  const double *both[] = {x, x};
  ck_assert_int_eq(sv_write_csv(&run, "e.csv", 2, noname, 2, both), -1);
  ck_assert_int_eq(sv_write_csv(&run, "", 2, names, 2, both), -1);
  ck_assert_int_eq(sv_write_csv(&run, "missing_dir/e.csv", 2, names, 2, both), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "missing_dir/e.csv"));
  /* rank 1 checks its arguments but writes nothing */
  run.rank = 1;
  ck_assert_int_eq(sv_write_csv(&run, "r1.csv", 2, names, 2, cols), -1);
  ck_assert_int_eq(sv_write_csv(&run, "r1.csv", 2, names, 2, both), 0);
  ck_assert_int_eq(sv_series_append(&run, "r1s.csv", 1, names, x), 0);
  ck_assert_int_eq(sv__write_summary(&run, 1.0), 0);
  ck_assert_str_eq(listing(), "");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Series                                                              */
/* ------------------------------------------------------------------ */

START_TEST(series_append)
{
  const char *ln[] = {"step", "loss"};
  const char *gn[] = {"step", "gnorm", "lr"};
  for (int i = 0; i < 5; i++) {
    double a[2] = {i, 1.0 / (i + 1)};
    double b[3] = {i, i * 0.1, i == 2 ? NAN : 1e-3};
    ck_assert_int_eq(sv_series_append(&run, "loss.csv", 2, ln, a), 0);
    ck_assert_int_eq(sv_series_append(&run, "grad.csv", 3, gn, b), 0);
    /* flushed row by row: readable before the run ends */
    char *s = slurp(tpath("loss.csv"));
    int lines = 0;
    for (char *c = s; *c; c++)
      lines += *c == '\n';
    ck_assert_int_eq(lines, i + 2);
    free(s);
  }
  /* a row of the wrong width is refused */
  double three[3] = {1, 2, 3};
  ck_assert_int_eq(sv_series_append(&run, "loss.csv", 3, gn, three), -1);
  ck_assert_msg(strstr(sv_errmsg(), "loss.csv") && strstr(sv_errmsg(), "2 columns"), "%s",
                sv_errmsg());
  /* later rows need no names */
  double a[2] = {5, 0.125};
  ck_assert_int_eq(sv_series_append(&run, "loss.csv", 2, NULL, a), 0);
  sv__series_close_all(&run);
  ck_assert_int_eq(run.nseries, 0);

  char *s = slurp(tpath("loss.csv"));
  ck_assert_str_eq(s, "step,loss\n0,1\n1,0.5\n2,0.33333333333333331\n3,0.25\n4,0.20000000000000001\n"
                      "5,0.125\n");
  free(s);
  s = slurp(tpath("grad.csv"));
  char *save, *line = strtok_r(s, "\n", &save);
  ck_assert_str_eq(line, "step,gnorm,lr");
  for (int i = 0; i < 5; i++) {
    line = strtok_r(NULL, "\n", &save);
    ck_assert_ptr_nonnull(line);
    char *f[4];
    ck_assert_int_eq(split(line, f, 4), 3);
    ck_assert(strtod(f[0], NULL) == i);
    ck_assert(strtod(f[1], NULL) == i * 0.1);
    ck_assert(same_double(strtod(f[2], NULL), i == 2 ? NAN : 1e-3));
  }
  ck_assert_ptr_null(strtok_r(NULL, "\n", &save));
  free(s);

  /* first use needs valid names; a missing directory names the file */
  ck_assert_int_eq(sv_series_append(&run, "new.csv", 2, NULL, a), -1);
  ck_assert_int_eq(sv_series_append(&run, "nodir/new.csv", 2, ln, a), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "nodir/new.csv"));
  ck_assert_str_eq(listing(), "grad.csv loss.csv");
}
END_TEST

/* ------------------------------------------------------------------ */
/* A strict JSON reader (RFC 8259), enough to check summary.json        */
/* ------------------------------------------------------------------ */

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
  jtype t;
  double num;
  int boolean;
  char *str;         /* J_STR: decoded UTF-8 */
  int n;             /* J_ARR / J_OBJ: entries */
  char **keys;       /* J_OBJ */
  struct jval **items;
} jval;

typedef struct {
  const char *s;
  const char *err;
} jparser;

static void jfree(jval *v)
{
  if (!v)
    return;
  free(v->str);
  for (int i = 0; i < v->n; i++) {
    if (v->keys)
      free(v->keys[i]);
    jfree(v->items[i]);
  }
  free(v->keys);
  free(v->items);
  free(v);
}

static void jws(jparser *p)
{
  while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
    p->s++;
}

static jval *jvalue(jparser *p, int depth);

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

static void put_utf8(char **w, unsigned c)
{
  unsigned char *o = (unsigned char *)*w;
  if (c < 0x80) {
    *o++ = (unsigned char)c;
  } else if (c < 0x800) {
    *o++ = (unsigned char)(0xc0 | (c >> 6));
    *o++ = (unsigned char)(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    *o++ = (unsigned char)(0xe0 | (c >> 12));
    *o++ = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
    *o++ = (unsigned char)(0x80 | (c & 0x3f));
  } else {
    *o++ = (unsigned char)(0xf0 | (c >> 18));
    *o++ = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
    *o++ = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
    *o++ = (unsigned char)(0x80 | (c & 0x3f));
  }
  *w = (char *)o;
}

/* A string; also checks that the raw bytes are valid UTF-8. */
static char *jstring(jparser *p)
{
  if (*p->s != '"') {
    p->err = "expected a string";
    return NULL;
  }
  p->s++;
  char *out = malloc(strlen(p->s) * 3 + 1), *w = out;
  while (*p->s != '"') {
    unsigned char c = (unsigned char)*p->s;
    if (c == '\0' || c < 0x20) {
      p->err = c ? "raw control character in a string" : "unterminated string";
      free(out);
      return NULL;
    }
    if (c == '\\') {
      char e = p->s[1];
      p->s += 2;
      switch (e) {
      case '"': *w++ = '"'; break;
      case '\\': *w++ = '\\'; break;
      case '/': *w++ = '/'; break;
      case 'b': *w++ = '\b'; break;
      case 'f': *w++ = '\f'; break;
      case 'n': *w++ = '\n'; break;
      case 'r': *w++ = '\r'; break;
      case 't': *w++ = '\t'; break;
      case 'u': {
        unsigned u;
        if (hex4(p->s, &u) < 0) {
          p->err = "bad \\u escape";
          free(out);
          return NULL;
        }
        p->s += 4;
        if (u >= 0xd800 && u <= 0xdbff) {
          unsigned lo;
          if (p->s[0] != '\\' || p->s[1] != 'u' || hex4(p->s + 2, &lo) < 0 || lo < 0xdc00 ||
              lo > 0xdfff) {
            p->err = "lone surrogate";
            free(out);
            return NULL;
          }
          p->s += 6;
          u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        } else if (u >= 0xdc00 && u <= 0xdfff) {
          p->err = "lone surrogate";
          free(out);
          return NULL;
        }
        put_utf8(&w, u);
        break;
      }
      default:
        p->err = "bad escape";
        free(out);
        return NULL;
      }
      continue;
    }
    /* raw bytes: must be well-formed UTF-8 */
    int n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    unsigned cp = n == 1 ? c : n == 2 ? c & 0x1fu : n == 3 ? c & 0x0fu : c & 0x07u;
    for (int i = 1; i < n; i++) {
      if (((unsigned char)p->s[i] & 0xc0) != 0x80)
        n = 0;
      else
        cp = (cp << 6) | ((unsigned char)p->s[i] & 0x3fu);
    }
    static const unsigned minv[] = {0, 0, 0x80, 0x800, 0x10000};
    if (n == 0 || cp < minv[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      p->err = "invalid UTF-8";
      free(out);
      return NULL;
    }
    memcpy(w, p->s, (size_t)n);
    w += n;
    p->s += n;
  }
  p->s++;
  *w = '\0';
  return out;
}

static int jnumber(jparser *p, double *out)
{
  const char *s = p->s, *start = s;
  if (*s == '-')
    s++;
  if (*s == '0')
    s++;
  else if (*s >= '1' && *s <= '9')
    while (*s >= '0' && *s <= '9')
      s++;
  else
    return -1;
  if (*s == '.') {
    s++;
    if (!(*s >= '0' && *s <= '9'))
      return -1;
    while (*s >= '0' && *s <= '9')
      s++;
  }
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '+' || *s == '-')
      s++;
    if (!(*s >= '0' && *s <= '9'))
      return -1;
    while (*s >= '0' && *s <= '9')
      s++;
  }
  *out = strtod(start, NULL);
  p->s = s;
  return 0;
}

static jval *jnew(jtype t)
{
  jval *v = calloc(1, sizeof *v);
  v->t = t;
  return v;
}

static jval *jcontainer(jparser *p, int depth, int obj)
{
  jval *v = jnew(obj ? J_OBJ : J_ARR);
  p->s++;
  jws(p);
  if (*p->s == (obj ? '}' : ']')) {
    p->s++;
    return v;
  }
  for (;;) {
    char *key = NULL;
    jws(p);
    if (obj) {
      key = jstring(p);
      if (!key)
        break;
      jws(p);
      if (*p->s != ':') {
        free(key);
        p->err = "expected ':'";
        break;
      }
      p->s++;
    }
    jval *item = jvalue(p, depth + 1);
    if (!item) {
      free(key);
      break;
    }
    v->items = realloc(v->items, (size_t)(v->n + 1) * sizeof *v->items);
    v->items[v->n] = item;
    if (obj) {
      v->keys = realloc(v->keys, (size_t)(v->n + 1) * sizeof *v->keys);
      v->keys[v->n] = key;
    }
    v->n++;
    jws(p);
    if (*p->s == ',') {
      p->s++;
      continue;
    }
    if (*p->s == (obj ? '}' : ']')) {
      p->s++;
      return v;
    }
    p->err = "expected ',' or a closing bracket";
    break;
  }
  if (!p->err)
    p->err = "bad container";
  jfree(v);
  return NULL;
}

static jval *jvalue(jparser *p, int depth)
{
  if (depth > 64) {
    p->err = "too deep";
    return NULL;
  }
  jws(p);
  const char *s = p->s;
  if (*s == '{' || *s == '[')
    return jcontainer(p, depth, *s == '{');
  if (*s == '"') {
    char *str = jstring(p);
    if (!str)
      return NULL;
    jval *v = jnew(J_STR);
    v->str = str;
    return v;
  }
  if (!strncmp(s, "null", 4) || !strncmp(s, "true", 4) || !strncmp(s, "false", 5)) {
    jval *v = jnew(*s == 'n' ? J_NULL : J_BOOL);
    v->boolean = *s == 't';
    p->s += *s == 'f' ? 5 : 4;
    return v;
  }
  double x;
  if (jnumber(p, &x) == 0) {
    jval *v = jnew(J_NUM);
    v->num = x;
    return v;
  }
  p->err = "unexpected character";
  return NULL;
}

/* The whole text must be one value (and whitespace). */
static jval *jparse(const char *text, const char **err)
{
  jparser p = {text, NULL};
  jval *v = jvalue(&p, 0);
  if (v) {
    jws(&p);
    if (*p.s) {
      p.err = "trailing characters";
      jfree(v);
      v = NULL;
    }
  }
  *err = p.err;
  return v;
}

static const jval *jget(const jval *obj, const char *key)
{
  ck_assert_ptr_nonnull(obj);
  ck_assert_int_eq(obj->t, J_OBJ);
  const jval *found = NULL;
  for (int i = 0; i < obj->n; i++)
    if (strcmp(obj->keys[i], key) == 0) {
      ck_assert_msg(found == NULL, "key '%s' appears twice", key);
      found = obj->items[i];
    }
  return found;
}

START_TEST(json_reader_is_strict)
{
  /* the reader must reject what a real JSON parser rejects, or the summary
     tests below would prove nothing */
  const char *bad[] = {"{\"a\": nan}", "{\"a\": NaN}", "{\"a\": inf}", "{\"a\": 1,}",
                       "{\"a\" 1}", "{\"a\": \"x\ty\"}", "{\"a\": \"\\q\"}", "{\"a\": 01}",
                       "{\"a\": .5}", "{\"a\": 1.}", "{\"a\": \"\xff\"}", "{\"a\": 1} x",
                       "{\"a\": \"\\ud800\"}", "{'a': 1}", "{\"a\": +1}", "[1, 2"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *err;
    jval *v = jparse(bad[i], &err);
    ck_assert_msg(v == NULL, "accepted: %s", bad[i]);
  }
  const char *err;
  jval *v = jparse(" {\"a\": [1, -2.5e-3, true, null, \"\\u00e9\\ud83d\\ude00\"], \"b\": {}} ",
                   &err);
  ck_assert_msg(v != NULL, "%s", err);
  const jval *a = jget(v, "a");
  ck_assert_int_eq(a->n, 5);
  ck_assert(a->items[1]->num == -2.5e-3);
  ck_assert_str_eq(a->items[4]->str, "\xc3\xa9\xf0\x9f\x98\x80");
  jfree(v);
}
END_TEST

/* ------------------------------------------------------------------ */
/* summary.json                                                        */
/* ------------------------------------------------------------------ */

static sv_optdecl opt(const char *name, sv_opttype t, const char *def, const char *value)
{
  sv_optdecl o = {(char *)name, t, (char *)def, (char *)value, (char *)"help"};
  return o;
}

static const sv_plugin weird_plugin = {SV_ABI_VERSION, sizeof(sv_plugin), sizeof(double),
                                       "pinn \"quoted\" \\ name", "summary", NULL, NULL, NULL};

START_TEST(summary_json)
{
  sv_optdecl opts[] = {
      opt("-n", SV_OPTTYPE_INT, "128", "256"),
      opt("-lr", SV_OPTTYPE_REAL, "1e-3", "2.5e-4"),
      opt("-tol", SV_OPTTYPE_REAL, "1.", "1."),    /* strtod reads it; JSON needs 1.0 */
      opt("-x0", SV_OPTTYPE_REAL, "+.5", NULL),    /* not set: the default */
      opt("-act", SV_OPTTYPE_STRING, "tanh", "tanh"),
      opt("-label", SV_OPTTYPE_STRING, "", "a \"b\" c\\d\ne\tf\x01g \xc3\xa9 \xff"),
      opt("-inf_text", SV_OPTTYPE_STRING, "", "inf"),
      opt("-verbose", SV_OPTTYPE_BOOL, "false", "true"),
      opt("-resample", SV_OPTTYPE_BOOL, "1", "0"),
      opt("-lr", SV_OPTTYPE_REAL, "1e-3", "2.5e-4"), /* declared twice: one key */
  };
  run.opts = opts;
  run.nopts = (int)(sizeof opts / sizeof opts[0]);
  run.plugin = &weird_plugin;
  run.size = 2;
  run.seed = 18446744073709551615ul;
  ck_assert_int_eq(sv_metric(&run, "l2_error", 1.25e-9), 0);
  ck_assert_int_eq(sv_metric(&run, "nan_metric", NAN), 0);
  ck_assert_int_eq(sv_metric(&run, "inf_metric", INFINITY), 0);
  ck_assert_int_eq(sv_metric(&run, "minus_inf", -INFINITY), 0);
  ck_assert_int_eq(sv_metric(&run, "tiny", 4.9406564584124654e-324), 0);
  ck_assert_int_eq(sv_metric(&run, "third", 1.0 / 3.0), 0);
  ck_assert_int_eq(sv_metric(&run, "neg_zero", -0.0), 0);
  ck_assert_int_eq(sv_metric(&run, "key \"with\" \\ and \n", 7), 0);

  ck_assert_int_eq(sv__write_summary(&run, 12.5), 0);
  char *text = slurp(tpath("summary.json"));
  const char *err;
  jval *root = jparse(text, &err);
  ck_assert_msg(root != NULL, "summary.json does not parse (%s):\n%s", err, text);

  ck_assert_str_eq(jget(root, "plugin")->str, "pinn \"quoted\" \\ name");
  ck_assert_str_eq(jget(root, "version")->str, sv_version());
  ck_assert(jget(root, "seed")->t == J_NUM);
  ck_assert_ptr_nonnull(strstr(text, "\"seed\": 18446744073709551615"));
  ck_assert(jget(root, "ranks")->num == 2);
  ck_assert(jget(root, "wall_seconds")->num == 12.5);

  const jval *o = jget(root, "options");
  ck_assert_int_eq(o->n, 9);
  ck_assert(jget(o, "n")->t == J_NUM && jget(o, "n")->num == 256);
  ck_assert(jget(o, "lr")->t == J_NUM && jget(o, "lr")->num == 2.5e-4);
  ck_assert(jget(o, "tol")->t == J_NUM && jget(o, "tol")->num == 1.0);
  ck_assert(jget(o, "x0")->t == J_NUM && jget(o, "x0")->num == 0.5);
  ck_assert_str_eq(jget(o, "act")->str, "tanh");
  ck_assert_str_eq(jget(o, "label")->str, "a \"b\" c\\d\ne\tf\x01g \xc3\xa9 \xef\xbf\xbd");
  ck_assert_str_eq(jget(o, "inf_text")->str, "inf");
  ck_assert(jget(o, "verbose")->t == J_BOOL && jget(o, "verbose")->boolean == 1);
  ck_assert(jget(o, "resample")->t == J_BOOL && jget(o, "resample")->boolean == 0);

  const jval *m = jget(root, "metrics");
  ck_assert_int_eq(m->n, 8);
  ck_assert(jget(m, "l2_error")->num == 1.25e-9);
  ck_assert(jget(m, "nan_metric")->t == J_NULL);
  ck_assert(jget(m, "inf_metric")->t == J_NULL);
  ck_assert(jget(m, "minus_inf")->t == J_NULL);
  ck_assert(jget(m, "tiny")->num == 4.9406564584124654e-324);
  ck_assert(jget(m, "third")->num == 1.0 / 3.0);
  ck_assert(same_double(jget(m, "neg_zero")->num, -0.0));
  ck_assert(jget(m, "key \"with\" \\ and \n")->num == 7);
  /* shortest round-trip form */
  ck_assert_ptr_nonnull(strstr(text, "\"l2_error\": 1.25e-09"));
  jfree(root);
  free(text);
  ck_assert_str_eq(listing(), "summary.json");
  run.opts = NULL;
  run.nopts = 0;
}
END_TEST

START_TEST(summary_json_empty_run)
{
  ck_assert_int_eq(sv__write_summary(&run, NAN), 0);
  char *text = slurp(tpath("summary.json"));
  const char *err;
  jval *root = jparse(text, &err);
  ck_assert_msg(root != NULL, "%s:\n%s", err, text);
  ck_assert_str_eq(jget(root, "plugin")->str, "");
  ck_assert(jget(root, "wall_seconds")->t == J_NULL);
  ck_assert_int_eq(jget(root, "options")->n, 0);
  ck_assert_int_eq(jget(root, "metrics")->n, 0);
  ck_assert(jget(root, "ranks")->num == 1);
  ck_assert(jget(root, "seed")->num == 1234);
  jfree(root);
  free(text);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Plots                                                               */
/* ------------------------------------------------------------------ */

/* The gnuplot sv_plot would use: configure's, else the first on $PATH. */
static int have_gnuplot(void)
{
#ifdef SV_GNUPLOT
  if (access(SV_GNUPLOT, X_OK) == 0)
    return 1;
#endif
  const char *path = getenv("PATH");
  char buf[4096];
  if (!path)
    return 0;
  snprintf(buf, sizeof buf, "%s", path);
  char *save, *dir = strtok_r(buf, ":", &save);
  for (; dir; dir = strtok_r(NULL, ":", &save)) {
    char cand[4200];
    snprintf(cand, sizeof cand, "%s/gnuplot", dir);
    if (access(cand, X_OK) == 0)
      return 1;
  }
  return 0;
}

START_TEST(plot_png)
{
  if (!have_gnuplot()) {
    /* without gnuplot a plot is a note in the log, not an error */
    ck_assert_int_eq(sv_plot(&run, "fig.png", "plot sin(x)"), 0);
    ck_assert_str_eq(listing(), "");
    return;
  }
  double x[50], y[50];
  for (int i = 0; i < 50; i++) {
    x[i] = i / 49.0;
    y[i] = sin(6 * x[i]);
  }
  const char *names[] = {"x", "y"};
  const double *cols[] = {x, y};
  ck_assert_int_eq(sv_write_csv(&run, "data.csv", 2, names, 50, cols), 0);
  /* relative data file: gnuplot runs in the output directory */
  ck_assert_int_eq(sv_plot(&run, "fig.png",
                           "set datafile separator ','\n"
                           "plot 'data.csv' skip 1 using 1:2 with lines title 'u_{x}'"),
                   0);
  char *png = slurp(tpath("fig.png"));
  ck_assert_int_eq(memcmp(png, "\x89PNG\r\n\x1a\n", 8), 0);
  free(png);
  char *gp = slurp(tpath("fig.gp"));
  ck_assert_ptr_nonnull(strstr(gp, "set output 'fig.png'"));
  ck_assert_ptr_nonnull(strstr(gp, "size 900,600 noenhanced"));
  ck_assert_ptr_nonnull(strstr(gp, "plot 'data.csv'"));
  free(gp);
  ck_assert_str_eq(listing(), "data.csv fig.gp fig.png");

  /* a broken script is an error with gnuplot's message and the script path */
  ck_assert_int_eq(sv_plot(&run, "bad.png", "plot 'no_such_file.csv' using 1:2"), -1);
  ck_assert_msg(strstr(sv_errmsg(), "bad.gp") && strstr(sv_errmsg(), "no_such_file.csv"), "%s",
                sv_errmsg());
  ck_assert_str_eq(listing(), "bad.gp data.csv fig.gp fig.png"); /* no empty bad.png */
  /* a syntax error: gnuplot's own line, as one line */
  ck_assert_int_eq(sv_plot(&run, "syn.png", "plot undefined_thing(x)   "), -1);
  ck_assert_msg(strstr(sv_errmsg(), "\"syn.gp\" line 3:") && !strchr(sv_errmsg(), '\n'), "%s",
                sv_errmsg());
  ck_assert_int_eq(sv_plot(&run, "it's.png", "plot x"), -1);
  /* other ranks do nothing */
  run.rank = 1;
  ck_assert_int_eq(sv_plot(&run, "r1.png", "plot x"), 0);
  ck_assert_ptr_null(strstr(listing(), "r1"));
}
END_TEST

/* A stand-in gnuplot: a shell script in the output directory. */
static char *fake_gnuplot(const char *name, const char *body)
{
  char *path = tpath(name);
  FILE *fp = fopen(path, "w");
  ck_assert_ptr_nonnull(fp);
  fprintf(fp, "#!/bin/sh\n%s\n", body);
  ck_assert_int_eq(fclose(fp), 0);
  ck_assert_int_eq(chmod(path, 0755), 0);
  return path;
}

START_TEST(plot_without_gnuplot)
{
  /* turned off, or pointing at nothing: a note in the log, no files */
  ck_assert_int_eq(setenv("SOLVER_GNUPLOT", "", 1), 0);
  ck_assert_int_eq(sv_plot(&run, "fig.png", "plot x"), 0);
  ck_assert_int_eq(setenv("SOLVER_GNUPLOT", tpath("no_gnuplot_here"), 1), 0);
  ck_assert_int_eq(sv_plot(&run, "fig.png", "plot x"), 0);
  ck_assert_str_eq(listing(), "");
}
END_TEST

START_TEST(plot_fake_gnuplots)
{
  /* a gnuplot without cairo gets "set terminal png"; it runs in the output
     directory with the script's name as its argument */
  setenv("SOLVER_GNUPLOT",
         fake_gnuplot("gp_nocairo",
                      "if [ \"$1\" = -e ]; then echo '  png  PNG images using libgd' >&2; exit 0; fi\n"
                      "cp \"$1\" ran_with.txt && pwd > ran_in.txt"),
         1);
  ck_assert_int_eq(sv_plot(&run, "fig.png", "plot x"), 0);
  char *gp = slurp(tpath("fig.gp"));
  ck_assert_str_eq(gp, "set terminal png size 900,600 noenhanced\nset output 'fig.png'\nplot x\n"
                       "unset output\n");
  free(gp);
  gp = slurp(tpath("ran_with.txt"));
  ck_assert_ptr_nonnull(strstr(gp, "set terminal png size"));
  free(gp);
  char *cwd = slurp(tpath("ran_in.txt"));
  char *real = realpath(tmpdir, NULL);
  ck_assert_int_eq(strncmp(cwd, real, strlen(real)), 0);
  free(real);
  free(cwd);

  /* with cairo */
  setenv("SOLVER_GNUPLOT",
         fake_gnuplot("gp_cairo", "if [ \"$1\" = -e ]; then echo '  pngcairo  png terminal based on cairo' >&2; fi"),
         1);
  ck_assert_int_eq(sv_plot(&run, "fig.png", "plot x\n"), 0);
  gp = slurp(tpath("fig.gp"));
  ck_assert_str_eq(gp, "set terminal pngcairo size 900,600 noenhanced\nset output 'fig.png'\n"
                       "plot x\nunset output\n");
  free(gp);

  /* a failing exit status, and a crash */
  setenv("SOLVER_GNUPLOT", fake_gnuplot("gp_exit3", "[ \"$1\" = -e ] && exit 0\necho 'it broke' >&2; exit 3"), 1);
  ck_assert_int_eq(sv_plot(&run, "e.png", "plot x"), -1);
  ck_assert_msg(strstr(sv_errmsg(), "exit status 3") && strstr(sv_errmsg(), "it broke") &&
                strstr(sv_errmsg(), "e.gp"), "%s", sv_errmsg());
  setenv("SOLVER_GNUPLOT", fake_gnuplot("gp_kill", "[ \"$1\" = -e ] && exit 0\nkill -9 $$"), 1);
  ck_assert_int_eq(sv_plot(&run, "k.png", "plot x"), -1);
  ck_assert_msg(strstr(sv_errmsg(), "signal 9"), "%s", sv_errmsg());
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("output");
  TCase *tc = tcase_create("output");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 0);
  tcase_add_test(tc, atomic_write_replaces_and_leaves_nothing);
  tcase_add_test(tc, atomic_write_failure_cleans_up);
  tcase_add_test(tc, outpath_joins);
  tcase_add_test(tc, metrics_and_headlines);
  tcase_add_test(tc, csv_round_trip);
  tcase_add_test(tc, csv_errors_and_other_ranks);
  tcase_add_test(tc, series_append);
  tcase_add_test(tc, json_reader_is_strict);
  tcase_add_test(tc, summary_json);
  tcase_add_test(tc, summary_json_empty_run);
  tcase_add_test(tc, plot_png);
  tcase_add_test(tc, plot_without_gnuplot);
  tcase_add_test(tc, plot_fake_gnuplots);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
