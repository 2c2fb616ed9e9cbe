/*
 * output.c -- what a run leaves in its output directory: atomic files,
 * metrics and headlines, CSV tables and series, gnuplot plots and
 * summary.json.
 *
 * Rank 0 writes; the other ranks validate their arguments the same way and
 * return 0, so a plugin calls these on every rank without branching.
 */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------------ */
/* A growing text buffer                                               */
/* ------------------------------------------------------------------ */

typedef struct {
  char *s;
  size_t n, cap;
  int oom; /* sticky: one check at the end instead of one per append */
} buf;

static void buf_reserve(buf *b, size_t extra)
{
  if (b->oom)
    return;
  if (extra > SIZE_MAX / 2 - b->n) {
    b->oom = 1;
    return;
  }
  if (b->n + extra + 1 <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + extra + 1)
    cap *= 2;
  char *s = realloc(b->s, cap);
  if (!s) {
    b->oom = 1;
    return;
  }
  b->s = s;
  b->cap = cap;
}

static void buf_add(buf *b, const char *s, size_t n)
{
  buf_reserve(b, n);
  if (b->oom)
    return;
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = '\0';
}

static void buf_puts(buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_printf(buf *b, const char *fmt, ...) SV_PRINTF(2, 3);
static void buf_printf(buf *b, const char *fmt, ...)
{
  char small[128];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (k < 0) {
    b->oom = 1;
    return;
  }
  if ((size_t)k < sizeof small) {
    buf_add(b, small, (size_t)k);
    return;
  }
  buf_reserve(b, (size_t)k);
  if (b->oom)
    return;
  va_start(ap, fmt);
  vsnprintf(b->s + b->n, (size_t)k + 1, fmt, ap);
  va_end(ap);
  b->n += (size_t)k;
}

/* ------------------------------------------------------------------ */
/* Atomic files                                                        */
/* ------------------------------------------------------------------ */

static int write_all(int fd, const void *data, size_t n)
{
  const char *p = data;
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

/*
 * The temporary file lives in the target's directory (rename is atomic only
 * within one file system) and is hidden, so a crash leaves at worst a
 * ".name.tmp-XXXXXX" beside an intact old file, never a half-written one.
 */
int sv__write_atomic(const char *path, const void *data, size_t n)
{
  if (!path || !*path)
    return sv_fail("write: empty file name");
  if (n > 0 && !data)
    return sv_fail("write '%s': no data", path);

  const char *slash = strrchr(path, '/');
  size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0; /* with the slash */
  const char *base = slash ? slash + 1 : path;
  if (!*base)
    return sv_fail("write '%s': the path names a directory, not a file", path);
  size_t tlen = dirlen + 1 + strlen(base) + sizeof ".tmp-XXXXXX";
  char *tmp = malloc(tlen);
  if (!tmp)
    return sv_fail("write '%s': out of memory", path);
  snprintf(tmp, tlen, "%.*s.%s.tmp-XXXXXX", (int)dirlen, path, base);

  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    free(tmp);
    return sv_fail("cannot create a temporary file for '%s': %s", path, strerror(e));
  }
  /* mkstemp makes the file 0600; give it the mode open() would have. The
     umask can only be read by setting it. */
  mode_t mask = umask(022);
  umask(mask);
  const char *what = "write";
  int err = 0;
  if (fchmod(fd, 0666 & ~mask) < 0) {
    what = "chmod";
    err = errno;
  } else if (write_all(fd, data, n) < 0) {
    err = errno;
  } else if (fsync(fd) < 0) {
    what = "fsync";
    err = errno;
  }
  if (close(fd) < 0 && !err) {
    what = "close";
    err = errno;
  }
  if (!err && rename(tmp, path) < 0) {
    what = "rename";
    err = errno;
  }
  if (err) {
    unlink(tmp);
    free(tmp);
    return sv_fail("cannot write '%s' (%s): %s", path, what, strerror(err));
  }
  free(tmp);

  /* Make the rename itself durable. Some file systems refuse to fsync a
     directory; the file is complete either way, so that is not an error. */
  char *dir = malloc(dirlen + 2);
  if (dir) {
    if (dirlen)
      snprintf(dir, dirlen + 2, "%.*s", (int)dirlen, path);
    else
      strcpy(dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)fsync(dfd);
      close(dfd);
    }
    free(dir);
  }
  return 0;
}

char *sv__outpath(const sv_run *r, const char *file)
{
  if (!r || !file || !*file) {
    sv_fail("output file: empty name");
    return NULL;
  }
  const char *dir = r->outdir && *r->outdir ? r->outdir : ".";
  size_t dl = strlen(dir), fl = strlen(file);
  int sep = dir[dl - 1] != '/';
  char *p = malloc(dl + (size_t)sep + fl + 1);
  if (!p) {
    sv_fail("output file '%s': out of memory", file);
    return NULL;
  }
  memcpy(p, dir, dl);
  if (sep)
    p[dl] = '/';
  memcpy(p + dl + (size_t)sep, file, fl + 1);
  return p;
}

/* ------------------------------------------------------------------ */
/* Metrics and headlines                                               */
/* ------------------------------------------------------------------ */

int sv_metric(sv_run *r, const char *name, double value)
{
  if (!r)
    return sv_fail("sv_metric: no run");
  if (!name || !*name)
    return sv_fail("sv_metric: empty metric name");
  for (int i = 0; i < r->nmetrics; i++)
    if (strcmp(r->metrics[i].name, name) == 0) {
      r->metrics[i].value = value;
      return 0;
    }
  if (r->nmetrics == r->capmetrics) {
    int cap = r->capmetrics ? 2 * r->capmetrics : 16;
    sv_metric_entry *m = realloc(r->metrics, (size_t)cap * sizeof *m);
    if (!m)
      return sv_fail("metric '%s': out of memory", name);
    r->metrics = m;
    r->capmetrics = cap;
  }
  char *copy = strdup(name);
  if (!copy)
    return sv_fail("metric '%s': out of memory", name);
  r->metrics[r->nmetrics].name = copy;
  r->metrics[r->nmetrics].value = value;
  r->nmetrics++;
  return 0;
}

int sv_headline(sv_run *r, const char *fmt, ...)
{
  if (!r)
    return sv_fail("sv_headline: no run");
  if (!fmt)
    return sv_fail("sv_headline: no format");
  buf b = {0};
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (k < 0)
    return sv_fail("sv_headline: bad format '%s'", fmt);
  buf_reserve(&b, (size_t)k);
  if (b.oom)
    return sv_fail("sv_headline: out of memory");
  va_start(ap, fmt);
  vsnprintf(b.s, (size_t)k + 1, fmt, ap);
  va_end(ap);
  if (r->nheadlines == r->capheadlines) {
    int cap = r->capheadlines ? 2 * r->capheadlines : 8;
    char **h = realloc(r->headlines, (size_t)cap * sizeof *h);
    if (!h) {
      free(b.s);
      return sv_fail("sv_headline: out of memory");
    }
    r->headlines = h;
    r->capheadlines = cap;
  }
  r->headlines[r->nheadlines++] = b.s;
  return 0;
}

/* ------------------------------------------------------------------ */
/* CSV                                                                 */
/* ------------------------------------------------------------------ */

/* A header field, quoted (RFC 4180) only when it has to be. */
static void csv_field(buf *b, const char *s)
{
  if (!strpbrk(s, ",\"\r\n")) {
    buf_puts(b, s);
    return;
  }
  buf_puts(b, "\"");
  for (; *s; s++) {
    if (*s == '"')
      buf_puts(b, "\"");
    buf_add(b, s, 1);
  }
  buf_puts(b, "\"");
}

static void csv_header(buf *b, int ncols, const char *const *names)
{
  for (int j = 0; j < ncols; j++) {
    if (j)
      buf_puts(b, ",");
    csv_field(b, names[j]);
  }
  buf_puts(b, "\n");
}

static int check_columns(const char *who, const char *file, int ncols,
                         const char *const *names)
{
  if (!file || !*file)
    return sv_fail("%s: empty file name", who);
  if (ncols < 1)
    return sv_fail("%s '%s': %d columns (need at least one)", who, file, ncols);
  if (!names)
    return sv_fail("%s '%s': no column names", who, file);
  for (int j = 0; j < ncols; j++)
    if (!names[j] || !*names[j])
      return sv_fail("%s '%s': column %d has no name", who, file, j);
  return 0;
}

int sv_write_csv(sv_run *r, const char *file, int ncols, const char *const *names,
                 size_t nrows, const double *const *cols)
{
  if (!r)
    return sv_fail("sv_write_csv: no run");
  if (check_columns("CSV", file, ncols, names) < 0)
    return -1;
  if (nrows > 0) {
    if (!cols)
      return sv_fail("CSV '%s': no column data", file);
    for (int j = 0; j < ncols; j++)
      if (!cols[j])
        return sv_fail("CSV '%s': column '%s' has no data", file, names[j]);
  }
  if (r->rank != 0)
    return 0;

  buf b = {0};
  csv_header(&b, ncols, names);
  for (size_t i = 0; i < nrows && !b.oom; i++)
    for (int j = 0; j < ncols; j++)
      buf_printf(&b, j + 1 < ncols ? "%.17g," : "%.17g\n", cols[j][i]);
  if (b.oom) {
    free(b.s);
    return sv_fail("CSV '%s': out of memory for %zu rows", file, nrows);
  }
  char *path = sv__outpath(r, file);
  int rc = path ? sv__write_atomic(path, b.s, b.n) : -1;
  free(path);
  free(b.s);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Series: CSV files appended row by row                               */
/* ------------------------------------------------------------------ */

int sv_series_append(sv_run *r, const char *file, int ncols, const char *const *names,
                     const double *values)
{
  if (!r)
    return sv_fail("sv_series_append: no run");
  if (!file || !*file)
    return sv_fail("series: empty file name");
  if (!values)
    return sv_fail("series '%s': no values", file);
  if (r->rank != 0)
    return 0;

  sv_series_entry *e = NULL;
  for (int i = 0; i < r->nseries; i++)
    if (strcmp(r->series[i].file, file) == 0) {
      e = &r->series[i];
      break;
    }
  if (e && ncols != e->ncols)
    return sv_fail("series '%s': a row of %d values, the file has %d columns", file, ncols,
                   e->ncols);
  if (!e) {
    /* First use: create (or truncate) the file and write the header. */
    if (check_columns("series", file, ncols, names) < 0)
      return -1;
    if (r->nseries == r->capseries) {
      int cap = r->capseries ? 2 * r->capseries : 8;
      sv_series_entry *s = realloc(r->series, (size_t)cap * sizeof *s);
      if (!s)
        return sv_fail("series '%s': out of memory", file);
      r->series = s;
      r->capseries = cap;
    }
    char *path = sv__outpath(r, file);
    char *copy = strdup(file);
    buf h = {0};
    csv_header(&h, ncols, names);
    if (!path || !copy || h.oom) {
      free(path);
      free(copy);
      free(h.s);
      return path ? sv_fail("series '%s': out of memory", file) : -1;
    }
    /* a series the resumed run keeps: append to the rows written before */
    int append = 0;
    struct stat st;
    for (int i = 0; i < r->nkeep; i++)
      if (strcmp(r->keep[i].file, file) == 0 && r->keep[i].length > 0)
        append = stat(path, &st) == 0 && (uint64_t)st.st_size == r->keep[i].length;
    FILE *fp = fopen(path, append ? "a" : "w");
    if (fp && append)
      h.s[0] = '\0'; /* its header is there */
    if (!fp) {
      int err = errno;
      sv_fail("cannot open series '%s': %s", path, strerror(err));
      free(path);
      free(copy);
      free(h.s);
      return -1;
    }
    int bad = fputs(h.s, fp) == EOF || fflush(fp) == EOF;
    int err = errno;
    free(h.s);
    if (bad) {
      fclose(fp);
      sv_fail("cannot write series '%s': %s", path, strerror(err));
      free(path);
      free(copy);
      return -1;
    }
    free(path);
    e = &r->series[r->nseries++];
    e->file = copy;
    e->fp = fp;
    e->ncols = ncols;
  }

  /* One row, flushed, so the history survives a crash and can be watched
     with tail -f. stdio formats into its own buffer: no allocation here. */
  int bad = 0;
  for (int j = 0; j < ncols && !bad; j++)
    bad = fprintf(e->fp, j + 1 < ncols ? "%.17g," : "%.17g\n", values[j]) < 0;
  if (bad || fflush(e->fp) == EOF) {
    int err = errno;
    return sv_fail("cannot append to series '%s' in '%s': %s", file,
                   r->outdir ? r->outdir : ".", strerror(err));
  }
  return 0;
}

uint64_t sv__series_length(sv_run *r, const char *file)
{
  if (!r || !file)
    return 0;
  for (int i = 0; i < r->nseries; i++)
    if (strcmp(r->series[i].file, file) == 0 && r->series[i].fp) {
      long pos = ftell(r->series[i].fp);
      return pos > 0 ? (uint64_t)pos : 0;
    }
  return 0;
}

void sv__series_close_all(sv_run *r)
{
  if (!r)
    return;
  for (int i = 0; i < r->nseries; i++) {
    if (r->series[i].fp && fclose(r->series[i].fp) == EOF)
      sv_warn(r, "closing series '%s' failed: %s", r->series[i].file, strerror(errno));
    free(r->series[i].file);
  }
  free(r->series);
  r->series = NULL;
  r->nseries = r->capseries = 0;
}

/* ------------------------------------------------------------------ */
/* Plots through gnuplot                                               */
/* ------------------------------------------------------------------ */

/*
 * Run argv[0] (a path) with stdin from /dev/null and stdout+stderr into
 * `out` (truncated to outsize - 1 bytes, always terminated), in directory
 * `cwd` (NULL: ours). *status is the waitpid status. posix_spawn avoids a
 * fork() of a process that may hold an MPI library's pinned memory.
 */
static int run_capture(char *const argv[], const char *cwd, int *status, char *out,
                       size_t outsize)
{
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0)
    return sv_fail("cannot run '%s': pipe: %s", argv[0], strerror(errno));

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  if (cwd)
    posix_spawn_file_actions_addchdir_np(&fa, cwd);
  pid_t pid;
  int e = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (e != 0) {
    close(fds[0]);
    return sv_fail("cannot run '%s'%s%s: %s", argv[0], cwd ? " in " : "", cwd ? cwd : "",
                   strerror(e));
  }

  size_t n = 0;
  char drain[512];
  for (;;) {
    int room = n + 1 < outsize;
    ssize_t k = read(fds[0], room ? out + n : drain, room ? outsize - 1 - n : sizeof drain);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    if (room)
      n += (size_t)k;
  }
  out[n] = '\0';
  close(fds[0]);

  while (waitpid(pid, status, 0) < 0) {
    if (errno != EINTR)
      return sv_fail("cannot run '%s': waitpid: %s", argv[0], strerror(errno));
  }
  return 0;
}

static int is_executable(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/*
 * Which gnuplot: $SOLVER_GNUPLOT if set (empty turns plots off), else the
 * one configure found if it is still there, else the first on $PATH.
 * Fills `path` or, when there is none, `why`.
 */
static int find_gnuplot(char *path, size_t n, char *why, size_t whyn)
{
  const char *env = getenv("SOLVER_GNUPLOT");
  if (env) {
    if (!*env) {
      snprintf(why, whyn, "plots are turned off (SOLVER_GNUPLOT is empty)");
      return -1;
    }
    if (is_executable(env) && strlen(env) < n) {
      strcpy(path, env);
      return 0;
    }
    snprintf(why, whyn, "SOLVER_GNUPLOT='%s' is not an executable file", env);
    return -1;
  }
#ifdef SV_GNUPLOT
  if (is_executable(SV_GNUPLOT) && strlen(SV_GNUPLOT) < n) {
    strcpy(path, SV_GNUPLOT);
    return 0;
  }
#endif
  const char *p = getenv("PATH");
  while (p && *p) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    /* an empty PATH element means the current directory */
    int k = len ? snprintf(path, n, "%.*s/gnuplot", (int)len, p) : snprintf(path, n, "./gnuplot");
    if (k > 0 && (size_t)k < n && is_executable(path))
      return 0;
    p = end ? end + 1 : NULL;
  }
  snprintf(why, whyn, "gnuplot was not found (install gnuplot-nox for plots)");
  return -1;
}

/* Does this gnuplot have the cairo PNG terminal? Asked once per gnuplot:
   "set terminal" with no name lists the terminals it has. */
static int has_pngcairo(const char *gnuplot)
{
  static char probed[PATH_MAX];
  static int answer;
  if (strcmp(probed, gnuplot) == 0)
    return answer;
  char out[16384];
  int status;
  char *argv[] = {(char *)gnuplot, "-e", "set terminal", NULL};
  /* a gnuplot that cannot even list its terminals gets plain png (and
     fails visibly when the plot itself runs) */
  answer = run_capture(argv, NULL, &status, out, sizeof out) == 0 &&
           strstr(out, "pngcairo") != NULL;
  snprintf(probed, sizeof probed, "%s", gnuplot);
  return answer;
}

/* gnuplot's complaint as one line: its '"x.gp" line N: ...' lines joined
   with "; " (without the echoed command and caret above them), or all of
   its output if it has none. */
static void gnuplot_reason(const char *out, const char *gpname, char *why, size_t n)
{
  char tag[PATH_MAX + 8];
  snprintf(tag, sizeof tag, "\"%s\" line", gpname);
  int tagged = strstr(out, tag) != NULL;
  size_t w = 0;
  why[0] = '\0';
  for (const char *line = out; *line && w + 1 < n;) {
    const char *end = strchr(line, '\n');
    size_t full = end ? (size_t)(end - line) : strlen(line), len = full;
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\r'))
      len--;
    const char *t = line;
    while (t < line + len && *t == ' ')
      t++;
    size_t tl = len - (size_t)(t - line);
    if (tl > 0 && (!tagged || strncmp(t, tag, strlen(tag)) == 0)) {
      int k = snprintf(why + w, n - w, "%s%.*s", w ? "; " : "", (int)tl, t);
      w = k < 0 ? n : w + (size_t)k;
      if (w >= n)
        w = n - 1;
    }
    line = end ? end + 1 : line + full;
  }
}

int sv_plot(sv_run *r, const char *png, const char *script)
{
  if (!r)
    return sv_fail("sv_plot: no run");
  if (!png || !*png)
    return sv_fail("plot: empty PNG file name");
  if (!script)
    return sv_fail("plot '%s': no gnuplot script", png);
  /* The name goes into a single-quoted gnuplot string. */
  if (strpbrk(png, "'\n\r"))
    return sv_fail("plot '%s': the file name may not contain quotes or newlines", png);
  if (r->rank != 0)
    return 0;

  char gnuplot[PATH_MAX], why[PATH_MAX + 64];
  if (find_gnuplot(gnuplot, sizeof gnuplot, why, sizeof why) < 0) {
    sv_log(r, "plot %s skipped: %s", png, why);
    return 0;
  }

  /* <stem>.gp beside the PNG, kept so that the plot can be re-made by hand. */
  size_t len = strlen(png);
  size_t stem = len > 4 && strcmp(png + len - 4, ".png") == 0 ? len - 4 : len;
  char *gpname = malloc(stem + 4);
  buf b = {0};
  if (!gpname)
    return sv_fail("plot '%s': out of memory", png);
  snprintf(gpname, stem + 4, "%.*s.gp", (int)stem, png);
  if (has_pngcairo(gnuplot))
    buf_puts(&b, "set terminal pngcairo size 900,600 noenhanced\n");
  else
    buf_puts(&b, "set terminal png size 900,600 noenhanced\n");
  buf_printf(&b, "set output '%s'\n", png);
  buf_puts(&b, script);
  if (b.n == 0 || b.s[b.n - 1] != '\n')
    buf_puts(&b, "\n");
  /* Close the PNG before gnuplot exits, so it is complete when we return. */
  buf_puts(&b, "unset output\n");
  char *gppath = sv__outpath(r, gpname);
  if (b.oom || !gppath) {
    free(b.s);
    free(gpname);
    free(gppath);
    return gppath ? sv_fail("plot '%s': out of memory", png) : -1;
  }
  int rc = sv__write_atomic(gppath, b.s, b.n);
  free(b.s);
  if (rc < 0) {
    free(gpname);
    free(gppath);
    return -1;
  }

  char out[4096];
  int status;
  char *argv[] = {gnuplot, gpname, NULL};
  const char *cwd = r->outdir && *r->outdir ? r->outdir : ".";
  rc = run_capture(argv, cwd, &status, out, sizeof out);
  if (rc == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    char why[1024];
    gnuplot_reason(out, gpname, why, sizeof why);
    if (WIFEXITED(status))
      rc = sv_fail("plot '%s': gnuplot failed on %s (exit status %d)%s%s", png, gppath,
                   WEXITSTATUS(status), *why ? ": " : "", why);
    else
      rc = sv_fail("plot '%s': gnuplot killed by signal %d on %s", png,
                   WIFSIGNALED(status) ? WTERMSIG(status) : 0, gppath);
    /* no empty or half-drawn PNG left behind */
    char *pngpath = sv__outpath(r, png);
    if (pngpath)
      unlink(pngpath);
    free(pngpath);
  }
  free(gpname);
  free(gppath);
  return rc;
}

/* ------------------------------------------------------------------ */
/* summary.json                                                        */
/* ------------------------------------------------------------------ */

/* Length of a valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static int utf8_len(const unsigned char *s)
{
  unsigned c = s[0];
  int n;
  unsigned min;
  if (c < 0x80)
    return 1;
  else if ((c & 0xe0) == 0xc0)
    n = 2, min = 0x80, c &= 0x1f;
  else if ((c & 0xf0) == 0xe0)
    n = 3, min = 0x800, c &= 0x0f;
  else if ((c & 0xf8) == 0xf0)
    n = 4, min = 0x10000, c &= 0x07;
  else
    return 0;
  for (int i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
      return 0;
    c = (c << 6) | (s[i] & 0x3f);
  }
  if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
    return 0;
  return n;
}

/* A JSON string: quotes, backslash and control characters escaped, invalid
   UTF-8 bytes replaced by U+FFFD so that the file is always valid JSON. */
static void json_string(buf *b, const char *str)
{
  const unsigned char *s = (const unsigned char *)(str ? str : "");
  buf_puts(b, "\"");
  while (*s) {
    unsigned c = *s;
    if (c == '"' || c == '\\') {
      buf_puts(b, c == '"' ? "\\\"" : "\\\\");
      s++;
    } else if (c < 0x20) {
      switch (c) {
      case '\n': buf_puts(b, "\\n"); break;
      case '\r': buf_puts(b, "\\r"); break;
      case '\t': buf_puts(b, "\\t"); break;
      case '\b': buf_puts(b, "\\b"); break;
      case '\f': buf_puts(b, "\\f"); break;
      default: buf_printf(b, "\\u%04x", c); break;
      }
      s++;
    } else {
      int n = utf8_len(s);
      if (n == 0) {
        buf_puts(b, "\\ufffd");
        s++;
      } else {
        buf_add(b, (const char *)s, (size_t)n);
        s += n;
      }
    }
  }
  buf_puts(b, "\"");
}

/* The shortest of %.15g..%.17g that reads back as the same double; null for
   NaN and Inf (JSON has no such numbers). */
static void json_number(buf *b, double v)
{
  if (!isfinite(v)) {
    buf_puts(b, "null");
    return;
  }
  char s[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(s, sizeof s, "%.*g", prec, v);
    if (strtod(s, NULL) == v)
      break;
  }
  buf_puts(b, s);
}

/* Does s follow JSON's number grammar exactly? -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_json_number(const char *s)
{
  if (*s == '-')
    s++;
  if (*s == '0')
    s++;
  else if (*s >= '1' && *s <= '9')
    while (*s >= '0' && *s <= '9')
      s++;
  else
    return 0;
  if (*s == '.') {
    s++;
    if (!(*s >= '0' && *s <= '9'))
      return 0;
    while (*s >= '0' && *s <= '9')
      s++;
  }
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '+' || *s == '-')
      s++;
    if (!(*s >= '0' && *s <= '9'))
      return 0;
    while (*s >= '0' && *s <= '9')
      s++;
  }
  return *s == '\0';
}

/* An option's value: a boolean option as true/false, text that reads as a
   finite number as a number (as typed when that is valid JSON), anything
   else as a string. */
static void json_option_value(buf *b, const sv_optdecl *o)
{
  const char *v = o->value ? o->value : o->def;
  if (!v) {
    buf_puts(b, "null");
    return;
  }
  if (o->type == SV_OPTTYPE_BOOL) {
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
      if (strcasecmp(v, yes[i]) == 0) {
        buf_puts(b, "true");
        return;
      }
      if (strcasecmp(v, no[i]) == 0) {
        buf_puts(b, "false");
        return;
      }
    }
  }
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (*v && !isspace((unsigned char)*v) && *end == '\0' && end != v && isfinite(x)) {
    if (is_json_number(v))
      buf_puts(b, v);
    else
      json_number(b, x);
    return;
  }
  json_string(b, v);
}

int sv__write_summary(sv_run *r, double wall_seconds)
{
  if (!r)
    return sv_fail("summary: no run");
  if (r->rank != 0)
    return 0;

  buf b = {0};
  buf_puts(&b, "{\n  \"plugin\": ");
  json_string(&b, r->plugin && r->plugin->name ? r->plugin->name : "");
  buf_puts(&b, ",\n  \"version\": ");
  json_string(&b, sv_version());
  buf_printf(&b, ",\n  \"seed\": %lu,\n  \"ranks\": %d,\n  \"wall_seconds\": ", r->seed, r->size);
  json_number(&b, wall_seconds);
  /* a run stopped by a signal says so, where, and how to go on */
  buf_printf(&b, ",\n  \"status\": \"%s\",\n  \"interrupted\": %s",
             r->interrupted ? "interrupted" : "completed", r->interrupted ? "true" : "false");
  if (r->resuming)
    buf_puts(&b, ",\n  \"resumed\": true");
  if (r->interrupted) {
    buf_puts(&b, ",\n  \"signal\": ");
    json_string(&b, sv__signal_name(r->interrupt_signal));
    if (r->interrupt_stage) {
      buf_puts(&b, ",\n  \"interrupted_stage\": ");
      json_string(&b, r->interrupt_stage);
      buf_printf(&b, ",\n  \"interrupted_step\": %d", r->interrupt_step);
    }
  }

  buf_puts(&b, ",\n  \"options\": {");
  int first = 1;
  for (int i = 0; i < r->nopts; i++) {
    const sv_optdecl *o = &r->opts[i];
    if (!o->name)
      continue;
    const char *key = o->name;
    while (*key == '-')
      key++;
    /* a name declared twice is written once (JSON keys should be unique) */
    int dup = 0;
    for (int j = 0; j < i && !dup; j++) {
      const char *k2 = r->opts[j].name;
      if (!k2)
        continue;
      while (*k2 == '-')
        k2++;
      dup = strcmp(key, k2) == 0;
    }
    if (dup)
      continue;
    buf_puts(&b, first ? "\n    " : ",\n    ");
    first = 0;
    json_string(&b, key);
    buf_puts(&b, ": ");
    json_option_value(&b, o);
  }
  buf_puts(&b, first ? "},\n" : "\n  },\n");

  buf_puts(&b, "  \"metrics\": {");
  for (int i = 0; i < r->nmetrics; i++) {
    buf_puts(&b, i ? ",\n    " : "\n    ");
    json_string(&b, r->metrics[i].name);
    buf_puts(&b, ": ");
    json_number(&b, r->metrics[i].value);
  }
  buf_puts(&b, r->nmetrics ? "\n  }\n}\n" : "}\n}\n");

  if (b.oom) {
    free(b.s);
    return sv_fail("summary.json: out of memory");
  }
  char *path = sv__outpath(r, "summary.json");
  int rc = path ? sv__write_atomic(path, b.s, b.n) : -1;
  free(path);
  free(b.s);
  return rc;
}
