/*
 * test_loader.c -- the plugin loader against good and broken plugins, and
 * the run context around it: errors, options over PETSc's database,
 * unknown-option detection, the -help listing, logging, progress, the
 * output directory and the rank partition.
 *
 * The fixtures (tests/fixtures/ files) are built as real shared modules into
 * fixtures/.libs of the build directory; $abs_builddir (set by make check)
 * or the current directory locates them.
 */
#include "loader.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <petscsys.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static int petsc_once; /* initialised in main (no-fork mode) */

static void petsc_up(void)
{
  if (!petsc_once)
    ck_assert_int_eq(PetscInitializeNoArguments(), 0);
}

static void petsc_down(void)
{
  if (!petsc_once)
    PetscFinalize();
}

static char fixture_dir[1024];

static void find_fixtures(void)
{
  const char *b = getenv("abs_builddir");
  snprintf(fixture_dir, sizeof fixture_dir, "%s%sfixtures/.libs", b ? b : "", b ? "/" : "");
}

static char *fixture(const char *name)
{
  static char buf[4][1200];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, sizeof buf[0], "%s/%s.so", fixture_dir, name);
  return p;
}

static char tmp[64];

static void make_tmp(void)
{
  strcpy(tmp, "/tmp/test_loader.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmp));
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static void remove_tmp(void)
{
  if (tmp[0])
    nftw(tmp, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
  tmp[0] = '\0';
}

static void write_text(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs(text, f);
  fclose(f);
}

/* Capture what is written to fd 1 or 2 between begin and end. */
typedef struct {
  int fd, saved;
  FILE *tmpf;
} capture;

static void capture_begin(capture *c, int fd)
{
  fflush(stdout);
  fflush(stderr);
  c->fd = fd;
  c->tmpf = tmpfile();
  ck_assert_ptr_nonnull(c->tmpf);
  c->saved = dup(fd);
  ck_assert_int_ge(c->saved, 0);
  ck_assert_int_ge(dup2(fileno(c->tmpf), fd), 0);
}

/* The captured text (malloc'd). */
static char *capture_end(capture *c)
{
  fflush(stdout);
  fflush(stderr);
  dup2(c->saved, c->fd);
  close(c->saved);
  long n = ftell(c->tmpf);
  ck_assert_int_ge(n, 0);
  char *s = calloc((size_t)n + 1, 1);
  ck_assert_ptr_nonnull(s);
  rewind(c->tmpf);
  ck_assert_uint_eq(fread(s, 1, (size_t)n, c->tmpf), (size_t)n);
  fclose(c->tmpf);
  return s;
}

static void has(const char *text, const char *needle)
{
  ck_assert_msg(text && strstr(text, needle), "expected \"%s\" in \"%s\"", needle,
                text ? text : "(null)");
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_error_messages)
{
  sv_clear_error();
  ck_assert_str_eq(sv_errmsg(), "");
  ck_assert_int_eq(sv_fail("file '%s': %d bad", "x.csv", 3), -1);
  ck_assert_str_eq(sv_errmsg(), "file 'x.csv': 3 bad");
  ck_assert_int_eq(sv_fail_context("stage %s", "adam"), -1);
  ck_assert_str_eq(sv_errmsg(), "stage adam: file 'x.csv': 3 bad");
  /* the old message as an argument of the new one */
  ck_assert_int_eq(sv_fail("again: %s", sv_errmsg()), -1);
  ck_assert_str_eq(sv_errmsg(), "again: stage adam: file 'x.csv': 3 bad");
  sv_clear_error();
  ck_assert_int_eq(sv_fail_context("only context"), -1);
  ck_assert_str_eq(sv_errmsg(), "only context");
  /* a message longer than the buffer is cut, never overflows */
  char big[5000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ck_assert_int_eq(sv_fail("%s", big), -1);
  ck_assert_uint_gt(strlen(sv_errmsg()), 1000);
  ck_assert_uint_lt(strlen(sv_errmsg()), sizeof big - 1);
  ck_assert_int_eq(sv_fail_context("%s", big), -1);
  ck_assert_uint_lt(strlen(sv_errmsg()), sizeof big - 1);
  ck_assert_str_ne(sv_version(), "");
}
END_TEST

static void *other_thread(void *arg)
{
  (void)arg;
  sv_fail("from the other thread");
  return strdup(sv_errmsg());
}

START_TEST(test_error_per_thread)
{
  sv_fail("from the main thread");
  pthread_t t;
  void *res = NULL;
  ck_assert_int_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
  ck_assert_int_eq(pthread_join(t, &res), 0);
  ck_assert_str_eq((char *)res, "from the other thread");
  ck_assert_str_eq(sv_errmsg(), "from the main thread");
  free(res);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Run context                                                         */
/* ------------------------------------------------------------------ */

START_TEST(test_run_outdir_and_rng)
{
  make_tmp();
  char dir[256];
  snprintf(dir, sizeof dir, "%s/a/b/c", tmp);
  sv_run *r = sv__run_new(MPI_COMM_WORLD, dir, 7);
  ck_assert_msg(r != NULL, "%s", sv_errmsg());
  struct stat st;
  ck_assert_int_eq(stat(dir, &st), 0);
  ck_assert(S_ISDIR(st.st_mode));
  ck_assert_str_eq(sv_run_outdir(r), dir);
  char ck[300];
  snprintf(ck, sizeof ck, "%s/checkpoint.bin", dir);
  ck_assert_str_eq(sv_run_checkpoint_path(r), ck);
  ck_assert_uint_eq(sv_run_seed(r), 7);
  ck_assert_int_eq(sv_run_rank(r), 0);
  ck_assert_int_eq(sv_run_size(r), 1);

  /* the RNG is GSL's mt19937 with the run's seed */
  gsl_rng *ref = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(ref, 7);
  ck_assert_str_eq(gsl_rng_name(sv_run_rng(r)), "mt19937");
  for (int i = 0; i < 100; i++)
    ck_assert_uint_eq(gsl_rng_get(sv_run_rng(r)), gsl_rng_get(ref));
  gsl_rng_free(ref);

  /* one rank: reductions and gathers are copies */
  double x[3] = {1, 2, 3}, all[3] = {0};
  ck_assert_int_eq(sv_allreduce_sum(r, x, 3), 0);
  ck_assert(x[0] == 1 && x[1] == 2 && x[2] == 3);
  ck_assert_int_eq(sv_allgather(r, x, 3, all), 0);
  ck_assert(all[0] == 1 && all[1] == 2 && all[2] == 3);
  ck_assert_int_eq(sv_allgather(r, x, -1, all), -1);
  has(sv_errmsg(), "negative count");
  sv__run_free(r);

  /* an existing directory is fine; a file in the way is an error naming it */
  r = sv__run_new(MPI_COMM_WORLD, dir, 1);
  ck_assert_msg(r != NULL, "%s", sv_errmsg());
  sv__run_free(r);
  char file[300];
  snprintf(file, sizeof file, "%s/plainfile", tmp);
  write_text(file, "x");
  ck_assert_ptr_null(sv__run_new(MPI_COMM_WORLD, file, 1));
  has(sv_errmsg(), file);
  has(sv_errmsg(), "not a directory");
  char below[320];
  snprintf(below, sizeof below, "%s/sub", file);
  ck_assert_ptr_null(sv__run_new(MPI_COMM_WORLD, below, 1));
  has(sv_errmsg(), "cannot create output directory");
  has(sv_errmsg(), below);
  remove_tmp();
}
END_TEST

START_TEST(test_partition)
{
  /* every split covers 0..total-1 once, in rank order, earlier ranks
     taking the extra items */
  static const int totals[] = {0, 1, 5, 7, 64, 1001};
  for (size_t t = 0; t < sizeof totals / sizeof *totals; t++)
    for (int size = 1; size <= 5; size++) {
      struct sv_run fake;
      memset(&fake, 0, sizeof fake);
      fake.size = size;
      int next = 0, prev_count = -1;
      for (int rank = 0; rank < size; rank++) {
        fake.rank = rank;
        int first = -1, count = -1;
        sv_run_partition(&fake, totals[t], &first, &count);
        ck_assert_int_eq(first, next);
        ck_assert_int_ge(count, totals[t] / size);
        ck_assert_int_le(count, totals[t] / size + 1);
        if (prev_count >= 0)
          ck_assert_int_le(count, prev_count);
        prev_count = count;
        next += count;
      }
      ck_assert_int_eq(next, totals[t]);
    }
}
END_TEST

START_TEST(test_log_and_warn)
{
  make_tmp();
  sv_run *r = sv__run_new(MPI_COMM_WORLD, tmp, 1);
  ck_assert_ptr_nonnull(r);
  r->is_tty = 0;
  capture c;
  capture_begin(&c, STDOUT_FILENO);
  sv_log(r, "hello %d", 42);
  sv_log(r, "with newline\n");
  r->quiet = 1;
  sv_log(r, "silenced");
  r->quiet = 0;
  r->rank = 1;
  sv_log(r, "not rank 0");
  r->rank = 0;
  char *out = capture_end(&c);
  ck_assert_str_eq(out, "hello 42\nwith newline\n");
  free(out);

  capture_begin(&c, STDERR_FILENO);
  r->quiet = 1; /* warnings are shown even when quiet */
  sv_warn(r, "careful: %s", "x");
  r->rank = 1;
  sv_warn(r, "not rank 0");
  r->rank = 0;
  out = capture_end(&c);
  ck_assert_str_eq(out, "warning: careful: x\n");
  free(out);
  sv__run_free(r);
  remove_tmp();
}
END_TEST

START_TEST(test_progress_lines)
{
  make_tmp();
  sv_run *r = sv__run_new(MPI_COMM_WORLD, tmp, 1);
  ck_assert_ptr_nonnull(r);
  r->is_tty = 0;
  capture c;
  capture_begin(&c, STDERR_FILENO);
  sv_progress_begin(r, "adam", 10);
  sv_progress_update(r, 1, 0.5); /* too soon after the start: nothing */
  r->prog_last -= 10;            /* as if 10 s had passed */
  r->prog_t0 -= 10;
  sv_progress_update(r, 5, 0.25);
  sv_progress_update(r, 6, 0.125); /* too soon after that line */
  sv_progress_end(r);
  char *out = capture_end(&c);
  has(out, "adam: ");
  has(out, " 50% 5/10");
  has(out, "steps/s");
  has(out, "ETA");
  has(out, "loss 2.500e-01");
  ck_assert_ptr_null(strstr(out, "6/10"));
  ck_assert_ptr_null(strstr(out, "\r"));
  ck_assert_ptr_null(strchr(strchr(out, '\n') + 1, '\n')); /* one line */
  free(out);

  /* quiet: nothing at all */
  r->quiet = 1;
  capture_begin(&c, STDERR_FILENO);
  sv_progress_begin(r, "adam", 10);
  r->prog_last -= 10;
  sv_progress_update(r, 5, 0.25);
  sv_progress_end(r);
  out = capture_end(&c);
  ck_assert_str_eq(out, "");
  free(out);
  sv__run_free(r);
  remove_tmp();
}
END_TEST

START_TEST(test_progress_bar)
{
  make_tmp();
  sv_run *r = sv__run_new(MPI_COMM_WORLD, tmp, 1);
  ck_assert_ptr_nonnull(r);
  r->is_tty = 1; /* as if stderr were a terminal */
  capture ce, co;
  capture_begin(&ce, STDERR_FILENO);
  sv_progress_begin(r, "lbfgs", 200);
  r->prog_last -= 1;
  r->prog_t0 -= 1;
  sv_progress_update(r, 100, 1e-3);
  capture_begin(&co, STDOUT_FILENO);
  sv_log(r, "a log line");
  char *lines = capture_end(&co);
  sv_progress_end(r);
  char *bar = capture_end(&ce);
  ck_assert_str_eq(lines, "a log line\n");
  has(bar, "\rlbfgs [");
  has(bar, "]  50% 100/200");
  has(bar, "loss 1.000e-03");
  has(bar, "\033[K");
  /* the bar is erased before the log line and drawn again after it: the
     last "\r\033[K" (erase) is followed by nothing (sv_progress_end) */
  int erases = 0;
  for (const char *p = bar; (p = strstr(p, "\r\033[K")); p++)
    erases++;
  ck_assert_int_ge(erases, 2);
  size_t n = strlen(bar);
  ck_assert_str_eq(bar + n - 4, "\r\033[K");
  ck_assert_ptr_null(strchr(bar, '\n'));
  free(lines);
  free(bar);
  sv__run_free(r);
  remove_tmp();
}
END_TEST

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

static sv_run *opt_run(const char *args)
{
  PetscOptionsClear(NULL);
  if (args)
    ck_assert_int_eq(PetscOptionsInsertString(NULL, args), 0);
  sv_run *r = sv__run_new(MPI_COMM_WORLD, NULL, 1);
  ck_assert_ptr_nonnull(r);
  return r;
}

static const sv_optdecl *decl(const sv_run *r, const char *name)
{
  for (int i = 0; i < r->nopts; i++)
    if (strcmp(r->opts[i].name, name) == 0)
      return &r->opts[i];
  return NULL;
}

START_TEST(test_options_values)
{
  sv_run *r = opt_run("-n 12 -lr 1e-3 -flag -off false -name hello -big 1e3");
  int n, flag, off, big, dflt;
  double lr, tol;
  char name[16], other[16];
  ck_assert_int_eq(sv_opt_int(r, "-n", 5, "points", &n), 0);
  ck_assert_int_eq(n, 12);
  ck_assert_int_eq(sv_opt_int(r, "-big", 5, "", &big), 0);
  ck_assert_int_eq(big, 1000);
  ck_assert_int_eq(sv_opt_int(r, "-absent", 5, "", &dflt), 0);
  ck_assert_int_eq(dflt, 5);
  ck_assert_int_eq(sv_opt_real(r, "-lr", 0.1, "learning rate", &lr), 0);
  ck_assert(lr == 1e-3);
  ck_assert_int_eq(sv_opt_real(r, "-tol", 0.1, "tolerance", &tol), 0);
  ck_assert(tol == 0.1);
  ck_assert_int_eq(sv_opt_bool(r, "-flag", 0, "", &flag), 0);
  ck_assert_int_eq(flag, 1);
  ck_assert_int_eq(sv_opt_bool(r, "-off", 1, "", &off), 0);
  ck_assert_int_eq(off, 0);
  ck_assert_int_eq(sv_opt_string(r, "-name", "x", "", name, sizeof name), 0);
  ck_assert_str_eq(name, "hello");
  ck_assert_int_eq(sv_opt_string(r, "-other", "dflt", "", other, sizeof other), 0);
  ck_assert_str_eq(other, "dflt");

  /* the record: defaults and values as text */
  const sv_optdecl *d = decl(r, "-n");
  ck_assert_ptr_nonnull(d);
  ck_assert_int_eq(d->type, SV_OPTTYPE_INT);
  ck_assert_str_eq(d->def, "5");
  ck_assert_str_eq(d->value, "12");
  ck_assert_str_eq(d->help, "points");
  ck_assert_str_eq(decl(r, "-tol")->def, "0.1");
  ck_assert_str_eq(decl(r, "-tol")->value, "0.1");
  ck_assert_str_eq(decl(r, "-lr")->value, "1e-3");
  ck_assert_str_eq(decl(r, "-flag")->value, "true");
  ck_assert_str_eq(decl(r, "-off")->def, "true");
  ck_assert_str_eq(decl(r, "-off")->value, "false");
  ck_assert_str_eq(decl(r, "-other")->value, "dflt");
  ck_assert_int_eq(r->nopts, 9);

  /* everything given was declared */
  ck_assert_msg(sv__options_check_unknown(r) == 0, "%s", sv_errmsg());
  sv__run_free(r);
}
END_TEST

START_TEST(test_options_bad_values)
{
  sv_run *r = opt_run("-n abc -m 2.5 -k 99999999999 -x nan -y 1.5q -b maybe -s "
                      "waytoolongforthebuffer -e");
  int i;
  double x;
  char s[8];
  ck_assert_int_eq(sv_opt_int(r, "-n", 1, "", &i), -1);
  has(sv_errmsg(), "-n");
  has(sv_errmsg(), "'abc' is not an integer");
  ck_assert_int_eq(sv_opt_int(r, "-m", 1, "", &i), -1);
  has(sv_errmsg(), "'2.5' is not an integer");
  ck_assert_int_eq(sv_opt_int(r, "-k", 1, "", &i), -1);
  has(sv_errmsg(), "out of range");
  ck_assert_int_eq(sv_opt_real(r, "-x", 1, "", &x), -1);
  has(sv_errmsg(), "option -x: 'nan' is not a finite real number");
  ck_assert_int_eq(sv_opt_real(r, "-y", 1, "", &x), -1);
  has(sv_errmsg(), "option -y: '1.5q' is not a real number");
  ck_assert_int_eq(sv_opt_bool(r, "-b", 1, "", &i), -1);
  has(sv_errmsg(), "option -b: 'maybe' is not a boolean");
  ck_assert_int_eq(sv_opt_string(r, "-s", "a", "", s, sizeof s), -1);
  has(sv_errmsg(), "option -s");
  has(sv_errmsg(), "longer than 7 characters");
  ck_assert_int_eq(sv_opt_real(r, "-e", 1, "", &x), -1);
  has(sv_errmsg(), "option -e needs a value");

  /* bad declarations */
  ck_assert_int_eq(sv_opt_int(r, "n", 1, "", &i), -1);
  has(sv_errmsg(), "option name 'n'");
  ck_assert_int_eq(sv_opt_int(r, "-9", 1, "", &i), -1);
  ck_assert_int_eq(sv_opt_int(r, "-a b", 1, "", &i), -1);
  ck_assert_int_eq(sv_opt_real(r, "-n", 1, "", &x), -1);
  has(sv_errmsg(), "option -n declared twice, as int and as real");
  ck_assert_int_eq(sv_opt_int(NULL, "-n", 1, "", &i), -1);
  sv__run_free(r);
}
END_TEST

START_TEST(test_options_help_mode)
{
  sv_run *r = opt_run("-n abc -lr 5");
  r->help_mode = 1;
  int n;
  double lr;
  char s[32];
  /* help mode records and returns defaults, even for a bad value */
  ck_assert_int_eq(sv_opt_int(r, "-n", 10, "number of points", &n), 0);
  ck_assert_int_eq(n, 10);
  ck_assert_int_eq(sv_opt_real(r, "-lr", 0.001, "learning rate", &lr), 0);
  ck_assert(lr == 0.001);
  ck_assert_int_eq(sv_opt_string(r, "-optimizer", "adam", "adam, lbfgs or lm", s, sizeof s), 0);
  ck_assert_str_eq(s, "adam");
  ck_assert_int_eq(sv_opt_bool(r, "-plot", 1, "write plots", &n), 0);

  static const sv_plugin desc = {SV_ABI_VERSION, sizeof(sv_plugin), sizeof(double),
                                 "demo", "a demonstration", NULL, NULL, NULL};
  r->plugin = &desc;
  char buf[4096] = {0};
  FILE *f = fmemopen(buf, sizeof buf - 1, "w");
  ck_assert_ptr_nonnull(f);
  sv__options_print_help(r, f);
  fclose(f);
  has(buf, "demo: a demonstration");
  has(buf, "-n <int>");
  has(buf, "-lr <real>");
  has(buf, "-optimizer <string>");
  has(buf, "-plot <bool>");
  has(buf, "\"adam\"");
  has(buf, "0.001");
  has(buf, "true");
  /* aligned: each help text starts in the same column */
  const char *texts[] = {"number of points", "learning rate", "adam, lbfgs or lm",
                         "write plots"};
  long col = -1;
  for (int i = 0; i < 4; i++) {
    const char *p = strstr(buf, texts[i]);
    ck_assert_ptr_nonnull(p);
    const char *bol = p;
    while (bol > buf && bol[-1] != '\n')
      bol--;
    if (col < 0)
      col = p - bol;
    ck_assert_int_eq(p - bol, col);
  }
  sv__run_free(r);
}
END_TEST

START_TEST(test_options_unknown)
{
  sv_run *r = opt_run("-lrr 3 -tao_monitor -log_view -ksp_type cg -malloc_debug");
  double lr;
  ck_assert_int_eq(sv_opt_real(r, "-lr", 0.1, "", &lr), 0);
  ck_assert_int_eq(sv__options_check_unknown(r), -1);
  ck_assert_str_eq(sv_errmsg(), "unknown option -lrr (did you mean -lr?)");
  sv__run_free(r);

  r = opt_run("-epochz 3 -xyzzy 1 -other");
  int e;
  ck_assert_int_eq(sv_opt_int(r, "-epochs", 1, "", &e), 0);
  ck_assert_int_eq(sv__options_check_unknown(r), -1);
  has(sv_errmsg(), "unknown option -");
  has(sv_errmsg(), "-xyzzy");
  has(sv_errmsg(), "-other");
  has(sv_errmsg(), "-epochz (did you mean -epochs?)");
  sv__run_free(r);

  /* nothing close: no suggestion, a hint instead */
  r = opt_run("-q 1");
  ck_assert_int_eq(sv_opt_int(r, "-n", 1, "", &e), 0);
  ck_assert_int_eq(sv__options_check_unknown(r), -1);
  has(sv_errmsg(), "unknown option -q (");
  ck_assert_ptr_null(strstr(sv_errmsg(), "did you mean"));
  sv__run_free(r);

  /* an option declared but not read (help mode) is not unknown */
  r = opt_run("-n 4");
  r->help_mode = 1;
  ck_assert_int_eq(sv_opt_int(r, "-n", 1, "", &e), 0);
  ck_assert_int_eq(sv__options_check_unknown(r), 0);
  sv__run_free(r);

  ck_assert(sv__option_is_petsc("-tao_type"));
  ck_assert(sv__option_is_petsc("log_view"));
  ck_assert(sv__option_is_petsc("-help"));
  ck_assert(sv__option_is_petsc("-options_file"));
  ck_assert(!sv__option_is_petsc("-taox"));
  ck_assert(!sv__option_is_petsc("-lr"));
}
END_TEST

START_TEST(test_edit_distance)
{
  ck_assert_int_eq(sv__edit_distance("lrr", "lr"), 1);
  ck_assert_int_eq(sv__edit_distance("lr", "lr"), 0);
  ck_assert_int_eq(sv__edit_distance("ab", "ba"), 1); /* transposition */
  ck_assert_int_eq(sv__edit_distance("kitten", "sitting"), 3);
  ck_assert_int_eq(sv__edit_distance("", "abc"), 3);
  ck_assert_int_eq(sv__edit_distance("Width", "width"), 0); /* PETSc ignores case */
}
END_TEST

/* ------------------------------------------------------------------ */
/* Loader                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_load_good)
{
  setenv("SOLVER_PLUGIN_PATH", fixture_dir, 1);
  const char *names[] = {"fixture_good", "fixture_good.so", fixture("fixture_good")};
  for (int i = 0; i < 3; i++) {
    sv__plugin *p = NULL;
    ck_assert_msg(sv__plugin_load(names[i], &p) == 0, "%s: %s", names[i], sv_errmsg());
    ck_assert_str_eq(p->desc->name, "fixture_good");
    ck_assert_str_eq(p->desc->summary, "a tiny plugin that sums 1..n for the tests");
    ck_assert_str_eq(p->path, fixture("fixture_good"));
    ck_assert_uint_eq(p->desc->abi_version, SV_ABI_VERSION);
    sv__plugin_close(p);
  }
  ck_assert_uint_eq(SV_PLUGIN_V1_SIZE, sizeof(sv_plugin));
}
END_TEST

START_TEST(test_load_missing)
{
  setenv("SOLVER_PLUGIN_PATH", fixture_dir, 1);
  sv__plugin *p = (sv__plugin *)1;
  ck_assert_int_eq(sv__plugin_load("no_such_plugin", &p), -1);
  ck_assert_ptr_null(p);
  has(sv_errmsg(), "no such plugin 'no_such_plugin' (searched: ");
  has(sv_errmsg(), fixture_dir);
  ck_assert_int_eq(sv__plugin_load("./no/such/file.so", &p), -1);
  has(sv_errmsg(), "no such plugin file './no/such/file.so'");
  ck_assert_int_eq(sv__plugin_load("", &p), -1);
  has(sv_errmsg(), "no plugin name given");
  /* empty entries of the path are skipped; nothing else changes */
  setenv("SOLVER_PLUGIN_PATH", "::/nonexistent_dir:", 1);
  ck_assert_int_eq(sv__plugin_load("fixture_good", &p), -1);
  has(sv_errmsg(), "/nonexistent_dir");
  make_tmp();
  ck_assert_int_eq(sv__plugin_load(tmp, &p), -1);
  has(sv_errmsg(), "is a directory");
  remove_tmp();
}
END_TEST

START_TEST(test_load_not_shared_object)
{
  make_tmp();
  char path[128];
  snprintf(path, sizeof path, "%s/text.so", tmp);
  write_text(path, "this is a text file, not a shared object\n");
  sv__plugin *p = NULL;
  ck_assert_int_eq(sv__plugin_load(path, &p), -1);
  ck_assert_ptr_null(p);
  char want[200];
  snprintf(want, sizeof want, "'%s' is not a shared object: ", path);
  has(sv_errmsg(), want);
  /* found through the search path too, by bare name */
  setenv("SOLVER_PLUGIN_PATH", tmp, 1);
  ck_assert_int_eq(sv__plugin_load("text", &p), -1);
  has(sv_errmsg(), want);
  remove_tmp();
}
END_TEST

START_TEST(test_load_no_entry)
{
  sv__plugin *p = NULL;
  ck_assert_int_eq(sv__plugin_load(fixture("fixture_noentry"), &p), -1);
  ck_assert_ptr_null(p);
  char want[1400];
  snprintf(want, sizeof want, "'%s' has no entry point sv_plugin_entry",
           fixture("fixture_noentry"));
  ck_assert_str_eq(sv_errmsg(), want);
}
END_TEST

START_TEST(test_load_bad_abi)
{
  sv__plugin *p = NULL;
  ck_assert_int_eq(sv__plugin_load(fixture("fixture_badabi"), &p), -1);
  ck_assert_ptr_null(p);
  char want[1400];
  snprintf(want, sizeof want, "'%s' was built for ABI version 999, this solver has %d",
           fixture("fixture_badabi"), SV_ABI_VERSION);
  ck_assert_str_eq(sv_errmsg(), want);
}
END_TEST

/* Load and run a fixture as the program does; returns run's status. */
static int run_fixture(const char *name, const char *args, sv_run **out)
{
  sv__plugin *p = NULL;
  ck_assert_msg(sv__plugin_load(fixture(name), &p) == 0, "%s", sv_errmsg());
  PetscOptionsClear(NULL);
  if (args)
    ck_assert_int_eq(PetscOptionsInsertString(NULL, args), 0);
  make_tmp();
  sv_run *r = sv__run_new(MPI_COMM_WORLD, tmp, 3);
  ck_assert_ptr_nonnull(r);
  r->plugin = p->desc;
  r->quiet = 1;
  void *state = NULL;
  int rc = p->desc->setup(r, &state);
  if (rc == 0)
    rc = sv__options_check_unknown(r);
  if (rc == 0)
    rc = p->desc->run(r, state);
  if (state && p->desc->cleanup)
    p->desc->cleanup(state);
  *out = r;
  sv__plugin_close(p);
  return rc;
}

START_TEST(test_run_good_fixture)
{
  sv_run *r;
  ck_assert_msg(run_fixture("fixture_good", "-n 4 -scale 0.5 -label x", &r) == 0, "%s",
                sv_errmsg());
  /* 0.5 * (1 + 2 + 3 + 4) */
  ck_assert_int_ge(r->nmetrics, 1);
  int found = 0;
  for (int i = 0; i < r->nmetrics; i++)
    if (strcmp(r->metrics[i].name, "answer") == 0) {
      ck_assert(r->metrics[i].value == 5.0);
      found = 1;
    }
  ck_assert(found);
  ck_assert_int_eq(r->nheadlines, 1);
  ck_assert_str_eq(r->headlines[0], "x answer = 5");
  sv__run_free(r);
  remove_tmp();

  /* a misspelled option of the fixture */
  ck_assert_int_eq(run_fixture("fixture_good", "-scal 2", &r), -1);
  ck_assert_str_eq(sv_errmsg(), "unknown option -scal (did you mean -scale?)");
  sv__run_free(r);
  remove_tmp();
}
END_TEST

START_TEST(test_run_failing_fixture)
{
  sv_run *r;
  ck_assert_int_eq(run_fixture("fixture_runfails", NULL, &r), -1);
  ck_assert_str_eq(sv_errmsg(), "deliberate failure");
  sv__run_free(r);
  remove_tmp();
}
END_TEST

START_TEST(test_list)
{
  make_tmp();
  /* a text file named .so in a directory ahead of the fixtures is not
     listed, nor are the fixtures that do not load */
  char path[128];
  snprintf(path, sizeof path, "%s/junk.so", tmp);
  write_text(path, "junk");
  char sp[2200];
  snprintf(sp, sizeof sp, "%s:%s", tmp, fixture_dir);
  setenv("SOLVER_PLUGIN_PATH", sp, 1);
  sv__plugin_info *list;
  int n;
  ck_assert_int_eq(sv__plugin_list(&list, &n), 0);
  int good = 0, fails = 0;
  for (int i = 0; i < n; i++) {
    ck_assert_str_ne(list[i].name, "fixture_badabi");
    ck_assert_str_ne(list[i].name, "fixture_badreal");
    ck_assert_ptr_null(strstr(list[i].path, "fixture_noentry"));
    ck_assert_ptr_null(strstr(list[i].path, "junk"));
    if (strcmp(list[i].name, "fixture_good") == 0) {
      good++;
      ck_assert_str_eq(list[i].summary, "a tiny plugin that sums 1..n for the tests");
      ck_assert_str_eq(list[i].path, fixture("fixture_good"));
    }
    fails += strcmp(list[i].name, "fixture_runfails") == 0;
  }
  ck_assert_int_eq(good, 1);
  ck_assert_int_eq(fails, 1);
  sv__plugin_list_free(list, n);

  /* the same directory twice: listed once */
  snprintf(sp, sizeof sp, "%s:%s", fixture_dir, fixture_dir);
  setenv("SOLVER_PLUGIN_PATH", sp, 1);
  ck_assert_int_eq(sv__plugin_list(&list, &n), 0);
  good = 0;
  for (int i = 0; i < n; i++)
    good += strcmp(list[i].name, "fixture_good") == 0;
  ck_assert_int_eq(good, 1);
  sv__plugin_list_free(list, n);
  remove_tmp();
}
END_TEST

int main(void)
{
  find_fixtures();
  Suite *s = suite_create("loader");

  TCase *te = tcase_create("errors");
  tcase_add_test(te, test_error_messages);
  tcase_add_test(te, test_error_per_thread);
  tcase_add_test(te, test_edit_distance);
  tcase_add_test(te, test_partition);
  suite_add_tcase(s, te);

  TCase *tr = tcase_create("run");
  tcase_add_checked_fixture(tr, petsc_up, petsc_down);
  tcase_add_test(tr, test_run_outdir_and_rng);
  tcase_add_test(tr, test_log_and_warn);
  tcase_add_test(tr, test_progress_lines);
  tcase_add_test(tr, test_progress_bar);
  tcase_add_test(tr, test_options_values);
  tcase_add_test(tr, test_options_bad_values);
  tcase_add_test(tr, test_options_help_mode);
  tcase_add_test(tr, test_options_unknown);
  tcase_add_test(tr, test_run_good_fixture);
  tcase_add_test(tr, test_run_failing_fixture);
  suite_add_tcase(s, tr);

  TCase *tl = tcase_create("loader");
  tcase_add_test(tl, test_load_good);
  tcase_add_test(tl, test_load_missing);
  tcase_add_test(tl, test_load_not_shared_object);
  tcase_add_test(tl, test_load_no_entry);
  tcase_add_test(tl, test_load_bad_abi);
  tcase_add_test(tl, test_list);
  suite_add_tcase(s, tl);

  SRunner *sr = srunner_create(s);
  /* without fork (CK_FORK=no) MPI can only be initialised once */
  if (srunner_fork_status(sr) == CK_NOFORK) {
    if (PetscInitializeNoArguments() != 0)
      return EXIT_FAILURE;
    petsc_once = 1;
  }
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  if (petsc_once)
    PetscFinalize();
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
