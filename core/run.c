/*
 * run.c -- the run context a plugin receives: RNG, MPI rank and
 * reductions, the logger, the clock and the output directory.
 *
 * Options live in options.c, the progress bar in progress.c, and what is
 * written into the output directory in output.c and checkpoint.c.
 */
#include "loader.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <gsl/gsl_rng.h>

double sv_wall_seconds(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double sv_cpu_seconds(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double sv__now(void) { return sv_wall_seconds(); }

/* ------------------------------------------------------------------ */
/* Output directory                                                    */
/* ------------------------------------------------------------------ */

/* mkdir -p: create every missing component of `dir`. */
static int make_dirs(const char *dir)
{
  char *p = strdup(dir);
  if (!p)
    return sv_fail("output directory '%s': out of memory", dir);
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0777) < 0 && errno != EEXIST) {
      int err = errno;
      if (strcmp(p, dir) == 0)
        sv_fail("cannot create output directory '%s': %s", dir, strerror(err));
      else
        sv_fail("cannot create output directory '%s': '%s': %s", dir, p, strerror(err));
      free(p);
      return -1;
    }
    *s = c;
    if (c == '\0')
      break;
  }
  free(p);

  struct stat st;
  if (stat(dir, &st) < 0)
    return sv_fail("output directory '%s': %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return sv_fail("output directory '%s' exists and is not a directory", dir);
  if (access(dir, W_OK | X_OK) < 0)
    return sv_fail("output directory '%s' is not writable: %s", dir, strerror(errno));
  return 0;
}

/* Rank 0 creates the directory; every rank learns the outcome, so that a
   failure is reported the same way everywhere. */
static int prepare_outdir(sv_run *r)
{
  char msg[512];
  int rc = 0;
  if (r->rank == 0) {
    rc = make_dirs(r->outdir);
    snprintf(msg, sizeof msg, "%s", rc < 0 ? sv_errmsg() : "");
  }
  if (r->size > 1) {
    int st = rc;
    if (MPI_Bcast(&st, 1, MPI_INT, 0, r->comm) != MPI_SUCCESS)
      return sv_fail("output directory '%s': MPI_Bcast failed", r->outdir);
    if (st < 0 && MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, 0, r->comm) != MPI_SUCCESS)
      return sv_fail("output directory '%s': MPI_Bcast failed", r->outdir);
    if (st < 0 && r->rank != 0)
      return sv_fail("%s", msg);
    rc = st;
  }
  return rc;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

/* A NULL or empty outdir is the current directory, taken as it is (the
   program's -help mode passes NULL: it must not create anything). */
sv_run *sv__run_new(MPI_Comm comm, const char *outdir, unsigned long seed)
{
  int up = 0, down = 0;
  MPI_Initialized(&up);
  MPI_Finalized(&down);
  if (!up || down) {
    sv_fail("run: MPI is not initialised (PetscInitialize comes first)");
    return NULL;
  }
  sv_run *r = calloc(1, sizeof *r);
  if (!r) {
    sv_fail("run: out of memory");
    return NULL;
  }
  r->comm = comm;
  if (MPI_Comm_rank(comm, &r->rank) != MPI_SUCCESS ||
      MPI_Comm_size(comm, &r->size) != MPI_SUCCESS) {
    free(r);
    sv_fail("run: not a valid MPI communicator");
    return NULL;
  }
  r->seed = seed;
  r->t_start = sv__now();
  r->is_tty = r->rank == 0 && isatty(STDERR_FILENO);
  r->outdir = strdup(outdir && *outdir ? outdir : ".");
  r->rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!r->outdir || !r->rng) {
    sv__run_free(r);
    sv_fail("run: out of memory");
    return NULL;
  }
  gsl_rng_set(r->rng, seed);
  r->checkpoint_path = sv__outpath(r, "checkpoint.bin");
  if (!r->checkpoint_path || (outdir && *outdir && prepare_outdir(r) < 0)) {
    sv__run_free(r);
    return NULL;
  }
  return r;
}

void sv__run_free(sv_run *r)
{
  if (!r)
    return;
  sv__progress_free(r);
  sv__series_close_all(r);
  sv__options_free(r);
  for (int i = 0; i < r->nmetrics; i++)
    free(r->metrics[i].name);
  free(r->metrics);
  for (int i = 0; i < r->nheadlines; i++)
    free(r->headlines[i]);
  free(r->headlines);
  if (r->rng)
    gsl_rng_free(r->rng);
  free(r->outdir);
  free(r->checkpoint_path);
  free(r->plugin_path);
  for (int i = 0; i < r->nkeep; i++)
    free(r->keep[i].file);
  free(r->keep);
  free(r->interrupt_stage);
  free(r);
}

/* ------------------------------------------------------------------ */
/* Accessors                                                           */
/* ------------------------------------------------------------------ */

gsl_rng *sv_run_rng(sv_run *r)
{
  return r ? r->rng : NULL;
}

unsigned long sv_run_seed(const sv_run *r)
{
  return r ? r->seed : 0;
}

int sv_run_rank(const sv_run *r)
{
  return r ? r->rank : 0;
}

int sv_run_size(const sv_run *r)
{
  return r ? r->size : 1;
}

const char *sv_run_outdir(const sv_run *r)
{
  return r && r->outdir ? r->outdir : ".";
}

const char *sv_run_checkpoint_path(const sv_run *r)
{
  return r && r->checkpoint_path ? r->checkpoint_path : "checkpoint.bin";
}

/* ------------------------------------------------------------------ */
/* MPI                                                                 */
/* ------------------------------------------------------------------ */

int sv_allreduce_sum(sv_run *r, double *x, size_t n)
{
  if (!r)
    return sv_fail("sv_allreduce_sum: no run");
  if (n == 0 || r->size == 1)
    return 0;
  if (!x)
    return sv_fail("sv_allreduce_sum: no data for %zu values", n);
  /* MPI counts are ints: reduce in chunks */
  for (size_t off = 0; off < n;) {
    size_t k = n - off < (size_t)INT_MAX ? n - off : (size_t)INT_MAX;
    if (MPI_Allreduce(MPI_IN_PLACE, x + off, (int)k, MPI_DOUBLE, MPI_SUM, r->comm) != MPI_SUCCESS)
      return sv_fail("sv_allreduce_sum: MPI_Allreduce of %zu values failed", n);
    off += k;
  }
  return 0;
}

void sv_run_partition(const sv_run *r, int total, int *first, int *count)
{
  int size = r ? r->size : 1, rank = r ? r->rank : 0;
  if (total < 0)
    total = 0;
  int base = total / size, extra = total % size;
  /* the first `extra` ranks take one more */
  int f = rank * base + (rank < extra ? rank : extra);
  int c = base + (rank < extra ? 1 : 0);
  if (first)
    *first = f;
  if (count)
    *count = c;
}

int sv_allgather(sv_run *r, const double *mine, int count, double *all)
{
  if (!r)
    return sv_fail("sv_allgather: no run");
  if (count < 0)
    return sv_fail("sv_allgather: negative count %d", count);
  if ((count > 0 && !mine) || !all)
    return sv_fail("sv_allgather: no data");
  if (r->size == 1) {
    if (count > 0 && all != mine)
      memmove(all, mine, (size_t)count * sizeof(double));
    return 0;
  }
  int *counts = malloc(2 * (size_t)r->size * sizeof(int));
  if (!counts)
    return sv_fail("sv_allgather: out of memory");
  int *displs = counts + r->size;
  int rc = 0;
  if (MPI_Allgather(&count, 1, MPI_INT, counts, 1, MPI_INT, r->comm) != MPI_SUCCESS) {
    rc = sv_fail("sv_allgather: MPI_Allgather failed");
  } else {
    long long off = 0;
    for (int i = 0; i < r->size; i++) {
      displs[i] = (int)off;
      off += counts[i];
      if (off > INT_MAX) {
        rc = sv_fail("sv_allgather: %lld values in all are more than MPI can count", off);
        break;
      }
    }
    /* every rank sees the same counts, so every rank takes the same path */
    if (rc == 0 && MPI_Allgatherv(mine, count, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE,
                                  r->comm) != MPI_SUCCESS)
      rc = sv_fail("sv_allgather: MPI_Allgatherv failed");
  }
  free(counts);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Logging                                                             */
/* ------------------------------------------------------------------ */

/* One line on `fp`, with the bar (if any) out of the way. */
static void emit(sv_run *r, FILE *fp, const char *prefix, const char *fmt, va_list ap)
{
  char small[512], *msg = small;
  va_list cp;
  va_copy(cp, ap);
  int k = vsnprintf(small, sizeof small, fmt, cp);
  va_end(cp);
  if (k < 0)
    return;
  if ((size_t)k >= sizeof small) {
    msg = malloc((size_t)k + 1);
    if (!msg) {
      msg = small; /* print what fits */
    } else {
      vsnprintf(msg, (size_t)k + 1, fmt, ap);
    }
  }
  size_t len = strlen(msg);
  int nl = len > 0 && msg[len - 1] == '\n';
  sv__progress_clear(r);
  fprintf(fp, "%s%s%s", prefix, msg, nl ? "" : "\n");
  fflush(fp);
  sv__progress_redraw(r);
  if (msg != small)
    free(msg);
}

void sv_log(sv_run *r, const char *fmt, ...)
{
  if (!r || r->rank != 0 || r->quiet || !fmt)
    return;
  va_list ap;
  va_start(ap, fmt);
  emit(r, stdout, "", fmt, ap);
  va_end(ap);
}

void sv_warn(sv_run *r, const char *fmt, ...)
{
  if (!r || r->rank != 0 || !fmt)
    return;
  va_list ap;
  va_start(ap, fmt);
  emit(r, stderr, "warning: ", fmt, ap);
  va_end(ap);
}
