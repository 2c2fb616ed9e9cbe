/*
 * test_train.c -- minibatch training: AdamW against a hand-computed
 * reference (with decay-exempt blocks and lr scales), the schedules
 * against their closed forms, gradient clipping, a stochastic least-squares
 * fit against GSL's linear least squares, the checks of the new options,
 * the resume state file (round trip, every truncation, byte flips,
 * refusals that name the reason), and a signal stopping a stage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, nftw, M_PI */
#endif
#include "internal.h"

#include <check.h>
#include <ftw.h>
#include <gsl/gsl_multifit.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <petscsys.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int petsc_once;

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

typedef struct {
  char dir[64];
  sv_run *r;
  sv_graph *g;
  sv_params *p;
  double *x;
} env;

/* Blocks "W" (nw values) and "b" (nb values, none if 0). */
static env setup2(int nw, int nb)
{
  env e;
  strcpy(e.dir, "/tmp/test_train.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(e.dir));
  e.r = sv__run_new(MPI_COMM_WORLD, e.dir, 1);
  ck_assert_msg(e.r != NULL, "sv__run_new: %s", sv_errmsg());
  e.g = sv_graph_new();
  e.p = sv_params_new();
  ck_assert_ptr_nonnull(sv_param(e.g, e.p, "W", 1, &nw));
  if (nb > 0)
    ck_assert_ptr_nonnull(sv_param(e.g, e.p, "b", 1, &nb));
  e.x = sv_params_data(e.p);
  ck_assert_ptr_nonnull(e.x);
  return e;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static void teardown(env *e)
{
  sv__run_free(e->r);
  sv_params_free(e->p);
  sv_graph_free(e->g);
  nftw(e->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* 0.5 sum a_i (x_i - c_i)^2 over 5 values */
static const double QA5[5] = {1, 3, 0.5, 2, 4}, QC5[5] = {1, -2, 0.5, 3, -1};

static int quad5(void *ctx, const double *x, double *f, double *g)
{
  (void)ctx;
  *f = 0;
  for (int i = 0; i < 5; i++) {
    double d = x[i] - QC5[i];
    *f += 0.5 * QA5[i] * d * d;
    if (g)
      g[i] = QA5[i] * d;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* AdamW                                                               */
/* ------------------------------------------------------------------ */

/* PyTorch's AdamW step as its documentation writes it, per parameter:
   p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
   p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps). */
START_TEST(test_adamw_reference)
{
  env e = setup2(3, 2);
  const double x0[5] = {0.3, -0.7, 1.5, 2.0, -0.4};
  memcpy(e.x, x0, sizeof x0);
  ck_assert_msg(sv_params_set_scales(e.p, "b", 0.5, 0) == 0, "%s", sv_errmsg());
  ck_assert(sv_params_block_lr_scale(e.p, 0) == 1 && sv_params_block_decay_scale(e.p, 0) == 1);
  ck_assert(sv_params_block_lr_scale(e.p, 1) == 0.5 && sv_params_block_decay_scale(e.p, 1) == 0);
  sv_objective obj = {5, 0, quad5, NULL, NULL};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  o.lr = 0.05;
  o.weight_decay = 0.3;
  o.max_steps = 6;
  sv_optim_result res;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, &res) == 0, "%s", sv_errmsg());

  double p[5], m[5] = {0}, v[5] = {0}, g[5], f;
  memcpy(p, x0, sizeof p);
  for (int t = 1; t <= 6; t++) {
    quad5(NULL, p, &f, g);
    for (int i = 0; i < 5; i++) {
      double lr = i < 3 ? 0.05 : 0.025, wd = i < 3 ? 0.3 : 0;
      p[i] *= 1 - lr * wd;
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      double step = lr / (1 - pow(0.9, t));
      p[i] -= step * m[i] / (sqrt(v[i]) / sqrt(1 - pow(0.999, t)) + 1e-8);
    }
  }
  for (int i = 0; i < 5; i++)
    ck_assert_msg(fabs(e.x[i] - p[i]) < 1e-14 * (1 + fabs(p[i])), "x[%d] = %.17g, want %.17g",
                  i, e.x[i], p[i]);
  /* the decay did something: without it the W block would differ */
  ck_assert(res.steps == 6);
  teardown(&e);
}
END_TEST

START_TEST(test_set_scales_errors)
{
  env e = setup2(3, 2);
  ck_assert_int_eq(sv_params_set_scales(e.p, "enc.", 1, 1), -1);
  ck_assert_msg(strstr(sv_errmsg(), "'enc.'") != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(sv_params_set_scales(e.p, "W", -1, 1), -1);
  ck_assert_msg(strstr(sv_errmsg(), "lr_scale") && strstr(sv_errmsg(), "'W'"), "%s", sv_errmsg());
  ck_assert_int_eq(sv_params_set_scales(e.p, "W", 1, NAN), -1);
  ck_assert_msg(strstr(sv_errmsg(), "decay_scale") != NULL, "%s", sv_errmsg());
  /* "" matches every block */
  ck_assert_int_eq(sv_params_set_scales(e.p, "", 0.25, 0.5), 0);
  ck_assert(sv_params_block_lr_scale(e.p, 1) == 0.25 && sv_params_block_decay_scale(e.p, 0) == 0.5);
  ck_assert(sv_params_block_lr_scale(e.p, 7) == 1); /* no such block: the default */
  teardown(&e);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Schedules                                                           */
/* ------------------------------------------------------------------ */

/* The lr column of loss_history.csv, rows of stage `stage`. */
static int read_lrs(const env *e, double *lr, int max)
{
  char path[128], line[512];
  snprintf(path, sizeof path, "%s/loss_history.csv", e->dir);
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  int n = 0;
  double st, step, loss, l;
  while (fgets(line, sizeof line, f) && n < max) {
    ck_assert_int_eq(sscanf(line, "%lf,%lf,%lf,%lf", &st, &step, &loss, &l), 4);
    ck_assert_double_eq(step, n);
    lr[n++] = l;
  }
  fclose(f);
  return n;
}

START_TEST(test_schedule_cosine_warmup)
{
  env e = setup2(5, 0);
  sv_objective obj = {5, 0, quad5, NULL, NULL};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  o.lr = 0.1;
  o.lr_min = 0.01;
  o.schedule = SV_LR_COSINE;
  o.warmup_steps = 4;
  o.max_steps = 14;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, NULL) == 0, "%s", sv_errmsg());
  sv__series_close_all(e.r);
  double lr[32];
  ck_assert_int_eq(read_lrs(&e, lr, 32), 15);
  for (int t = 0; t < 14; t++) {
    double want = t < 4 ? 0.1 * (t + 1) / 4
                        : 0.01 + 0.5 * 0.09 * (1 + cos(M_PI * (t - 4) / 10.0));
    ck_assert_msg(fabs(lr[t] - want) < 1e-15, "step %d: lr %.17g, want %.17g", t, lr[t], want);
  }
  /* warm-up ends at lr, the cosine starts there and ends near lr_min */
  ck_assert(fabs(lr[3] - 0.1) < 1e-15 && fabs(lr[4] - 0.1) < 1e-15);
  ck_assert(lr[13] > 0.01 && lr[13] < 0.013);
  ck_assert_double_eq(lr[14], 0); /* the final evaluation: no update */
  teardown(&e);
}
END_TEST

/* Warm-up before warm restarts: the restarts count from the warm-up's end. */
START_TEST(test_schedule_warmup_restarts)
{
  env e = setup2(5, 0);
  sv_objective obj = {5, 0, quad5, NULL, NULL};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_SGD);
  o.lr = 0.2;
  o.lr_min = 0.02;
  o.restart_period = 3;
  o.restart_mult = 2;
  o.warmup_steps = 2;
  o.max_steps = 11;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, NULL) == 0, "%s", sv_errmsg());
  sv__series_close_all(e.r);
  double lr[32];
  ck_assert_int_eq(read_lrs(&e, lr, 32), 12);
  for (int t = 0; t < 11; t++) {
    int u = t - 2;
    double want;
    if (t < 2)
      want = 0.2 * (t + 1) / 2;
    else {
      double tt = u < 3 ? u : u - 3, T = u < 3 ? 3 : 6;
      want = 0.02 + 0.5 * 0.18 * (1 + cos(M_PI * tt / T));
    }
    ck_assert_msg(fabs(lr[t] - want) < 1e-15, "step %d: lr %.17g, want %.17g", t, lr[t], want);
  }
  teardown(&e);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Clipping                                                            */
/* ------------------------------------------------------------------ */

/* f = g . x: the gradient is g everywhere. */
static const double LG[2] = {3, -4}; /* |g| = 5 */

static int linear(void *ctx, const double *x, double *f, double *g)
{
  double s = *(const double *)ctx;
  *f = s * (LG[0] * x[0] + LG[1] * x[1]);
  if (g)
    g[0] = s * LG[0], g[1] = s * LG[1];
  return 0;
}

START_TEST(test_clip_norm)
{
  for (int big = 0; big < 2; big++) {
    env e = setup2(2, 0);
    e.x[0] = 1, e.x[1] = 2;
    double scale = big ? 1 : 0.05; /* |g| = 5 or 0.25 */
    sv_objective obj = {2, 0, linear, NULL, &scale};
    sv_optim_opts o;
    sv_optim_defaults(&o, SV_OPTIM_SGD);
    o.lr = 1;
    o.max_steps = 1;
    o.clip_norm = 0.5;
    ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, NULL) == 0, "%s", sv_errmsg());
    double d[2] = {1 - e.x[0], 2 - e.x[1]}, nd = hypot(d[0], d[1]);
    double gn = 5 * scale;
    double want = big ? 0.5 * gn / (gn + 1e-6) : gn; /* torch's coefficient */
    ck_assert_msg(fabs(nd - want) < 1e-15, "|step| = %.17g, want %.17g", nd, want);
    /* the direction is the gradient's */
    ck_assert(fabs(d[0] / nd - LG[0] / 5) < 1e-15 && fabs(d[1] / nd - LG[1] / 5) < 1e-15);
    teardown(&e);
  }
}
END_TEST

/* ------------------------------------------------------------------ */
/* A stochastic least-squares fit                                      */
/* ------------------------------------------------------------------ */

#define NS 64
#define NF 3
#define BATCH 8
typedef struct {
  double X[NS][NF], y[NS];
  int batch;          /* the current batch: samples [batch * BATCH, ...) */
  int evals, steps;
  double hits;
} sls;

static int sls_step(void *ctx, int step)
{
  sls *d = ctx;
  d->batch = (step * 3) % (NS / BATCH); /* a fixed rule: every batch once an epoch */
  d->steps++;
  return 0;
}

/* mean square of x.w + b - y over the batch; theta = (w, b) */
static int sls_loss(void *ctx, const double *th, double *f, double *g)
{
  sls *d = ctx;
  d->evals++;
  *f = 0;
  d->hits = 0;
  if (g)
    memset(g, 0, (NF + 1) * sizeof *g);
  for (int k = 0; k < BATCH; k++) {
    int i = d->batch * BATCH + k;
    double e = th[NF] - d->y[i];
    for (int j = 0; j < NF; j++)
      e += th[j] * d->X[i][j];
    *f += e * e / BATCH;
    d->hits += fabs(e) < 1e-3;
    if (g) {
      for (int j = 0; j < NF; j++)
        g[j] += 2 * e * d->X[i][j] / BATCH;
      g[NF] += 2 * e / BATCH;
    }
  }
  return 0;
}

static int sls_metric(void *ctx, double *sum, double *count)
{
  sls *d = ctx;
  *sum = d->hits;
  *count = BATCH;
  return 0;
}

START_TEST(test_stochastic_lsq)
{
  sls d;
  memset(&d, 0, sizeof d);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 3);
  const double w[NF] = {1.5, -2, 0.25}, b = 0.75;
  for (int i = 0; i < NS; i++) {
    d.y[i] = b;
    for (int j = 0; j < NF; j++) {
      d.X[i][j] = 2 * gsl_rng_uniform(rng) - 1;
      d.y[i] += w[j] * d.X[i][j];
    }
  }
  gsl_rng_free(rng);
  /* reference: GSL's linear least squares on all the samples */
  gsl_matrix *A = gsl_matrix_alloc(NS, NF + 1);
  gsl_vector *yv = gsl_vector_alloc(NS), *c = gsl_vector_alloc(NF + 1);
  gsl_matrix *cov = gsl_matrix_alloc(NF + 1, NF + 1);
  for (int i = 0; i < NS; i++) {
    for (int j = 0; j < NF; j++)
      gsl_matrix_set(A, i, j, d.X[i][j]);
    gsl_matrix_set(A, i, NF, 1);
    gsl_vector_set(yv, i, d.y[i]);
  }
  double chisq;
  gsl_multifit_linear_workspace *ws = gsl_multifit_linear_alloc(NS, NF + 1);
  ck_assert_int_eq(gsl_multifit_linear(A, yv, c, cov, &chisq, ws), 0);

  env e = setup2(NF + 1, 0);
  sv_objective obj = {NF + 1, 0, sls_loss, NULL, &d};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_SGD);
  o.lr = 0.1;
  o.momentum = 0.5;
  o.steps_per_epoch = NS / BATCH;
  o.max_steps = 300 * o.steps_per_epoch;
  o.on_step = sls_step;
  o.on_step_ctx = &d;
  o.batch_metric = sls_metric;
  o.metric_name = "hits";
  sv_optim_result res;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, &res) == 0, "%s", sv_errmsg());
  for (int j = 0; j <= NF; j++)
    ck_assert_msg(fabs(e.x[j] - gsl_vector_get(c, j)) < 1e-10, "theta[%d] = %.17g, GSL %.17g",
                  j, e.x[j], gsl_vector_get(c, j));
  /* max_steps evaluations (no final one), one on_step each */
  ck_assert_int_eq(d.evals, o.max_steps);
  ck_assert_int_eq(d.steps, o.max_steps);
  ck_assert_int_eq(res.steps, o.max_steps);

  /* epochs.csv: one row per epoch, the loss the mean of its batches */
  sv__series_close_all(e.r);
  char path[128], line[512];
  snprintf(path, sizeof path, "%s/epochs.csv", e.dir);
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  ck_assert_str_eq(line, "stage,epoch,loss,metric,lr,seconds\n");
  int rows = 0;
  double st, ep, loss, metric, lr, secs, last = NAN;
  while (fgets(line, sizeof line, f)) {
    ck_assert_int_eq(sscanf(line, "%lf,%lf,%lf,%lf,%lf,%lf", &st, &ep, &loss, &metric, &lr, &secs),
                     6);
    ck_assert_double_eq(ep, ++rows);
    ck_assert(metric >= 0 && metric <= 1);
    last = loss;
  }
  fclose(f);
  ck_assert_int_eq(rows, 300);
  ck_assert_double_eq(res.loss, last);
  ck_assert(metric == 1); /* every residual is below 1e-3 by the end */
  gsl_multifit_linear_free(ws);
  gsl_matrix_free(A), gsl_matrix_free(cov);
  gsl_vector_free(yv), gsl_vector_free(c);
  teardown(&e);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Option checks                                                       */
/* ------------------------------------------------------------------ */

static int dummy_metric(void *ctx, double *s, double *c)
{
  (void)ctx;
  *s = *c = 0;
  return 0;
}

START_TEST(test_bad_new_options)
{
  env e = setup2(5, 0);
  sv_objective obj = {5, 0, quad5, NULL, NULL};
  struct {
    const char *want;
    sv_optim_kind kind;
    int spe, warm, sched, metric;
    double wd, clip, ftol;
  } cases[] = {
    {"steps_per_epoch must be >= 0", SV_OPTIM_ADAM, -1, 0, 0, 0, 0, 0, 0},
    {"steps_per_epoch (a stochastic objective) needs sgd or adam, not lbfgs", SV_OPTIM_LBFGS, 5,
     0, 0, 0, 0, 0, 0},
    {"ftol and gtol", SV_OPTIM_ADAM, 5, 0, 0, 0, 0, 0, 1e-3},
    {"batch_metric needs steps_per_epoch", SV_OPTIM_ADAM, 0, 0, 0, 1, 0, 0, 0},
    {"weight_decay must be finite and >= 0", SV_OPTIM_ADAM, 0, 0, 0, 0, -0.1, 0, 0},
    {"weight_decay applies to sgd and adam, not lbfgs", SV_OPTIM_LBFGS, 0, 0, 0, 0, 0.1, 0, 0},
    {"unknown schedule 7", SV_OPTIM_ADAM, 0, 0, 7, 0, 0, 0, 0},
    {"warmup_steps must be in [0, max_steps = 1000]", SV_OPTIM_ADAM, 0, 1001, 0, 0, 0, 0, 0},
    {"clip_norm must be finite and >= 0", SV_OPTIM_SGD, 0, 0, 0, 0, 0, INFINITY, 0},
    {"clip_norm applies to sgd and adam, not lbfgs", SV_OPTIM_LBFGS, 0, 0, 0, 0, 0, 1, 0},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    sv_optim_opts o;
    sv_optim_defaults(&o, cases[k].kind);
    o.steps_per_epoch = cases[k].spe;
    o.warmup_steps = cases[k].warm;
    o.schedule = (sv_lr_schedule)cases[k].sched;
    o.batch_metric = cases[k].metric ? dummy_metric : NULL;
    o.weight_decay = cases[k].wd;
    o.clip_norm = cases[k].clip;
    if (cases[k].ftol > 0)
      o.ftol = cases[k].ftol;
    ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
    ck_assert_msg(strstr(sv_errmsg(), cases[k].want) != NULL, "case %zu: %s", k, sv_errmsg());
  }
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  o.schedule = SV_LR_COSINE;
  o.restart_period = 10;
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  ck_assert_msg(strstr(sv_errmsg(), "exclude each other") != NULL, "%s", sv_errmsg());
  teardown(&e);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The resume state file                                               */
/* ------------------------------------------------------------------ */

/* A stopped-stage entry of params W[3], b[2] with 2 state vectors. */
static void write_state(env *e, const char *path, gsl_rng *rng, double *vecs)
{
  for (int i = 0; i < 5; i++)
    e->x[i] = 0.5 * i - 1 / 3.0;
  for (int i = 0; i < 10; i++)
    vecs[i] = sin(i + 1.0);
  sv__jrec rec;
  memset(&rec, 0, sizeof rec);
  rec.ordinal = 2;
  rec.kind = SV_OPTIM_ADAM;
  rec.plugin = "test_train";
  rec.stage = "adam";
  rec.stopped = 1;
  rec.res.steps = 17;
  rec.res.loss = 0.125;
  rec.res.seconds = 1.5;
  rec.history_len = 1234;
  rec.epochs_len = 56;
  rec.st.step = 16;
  rec.st.nscalars = SV__STAGE_SCALARS + 4;
  for (int i = 0; i < rec.st.nscalars; i++)
    rec.st.scalars[i] = i * 0.25;
  rec.st.nvecs = 2;
  rec.st.vecs = vecs;
  gsl_rng *r0 = gsl_rng_clone(rng);
  gsl_rng_get(rng);
  rec.rng0 = gsl_rng_state(r0);
  ck_assert_msg(sv__journal_write(path, &rec, e->p, rng) == 0, "%s", sv_errmsg());
  gsl_rng_free(r0);
}

static sv__jrec want_state(void)
{
  sv__jrec w;
  memset(&w, 0, sizeof w);
  w.ordinal = 2;
  w.kind = SV_OPTIM_ADAM;
  w.plugin = "test_train";
  w.stage = "adam";
  w.stopped = 1;
  w.st.nscalars = SV__STAGE_SCALARS + 4;
  w.st.nvecs = 2;
  return w;
}

static unsigned char *slurp(const char *path, size_t *n)
{
  unsigned char *s;
  ck_assert_int_eq(sv__read_file("file", path, &s, n), 0);
  return s;
}

/* A new file each time: ext4 writes back a file truncated on open as it
   is closed, which would make this loop slow. */
static void spit(const char *path, const unsigned char *s, size_t n)
{
  unlink(path);
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(s, 1, n, f), n);
  fclose(f);
}

START_TEST(test_state_round_trip)
{
  env e = setup2(3, 2);
  char path[128];
  snprintf(path, sizeof path, "%s/stage-2.state", e.dir);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 99);
  double vecs[10], x[5];
  write_state(&e, path, rng, vecs);
  memcpy(x, e.x, sizeof x);

  /* read into a fresh params vector and a differently seeded RNG */
  sv_graph *g = sv_graph_new();
  sv_params *q = sv_params_new();
  int three = 3, two = 2;
  sv_param(g, q, "W", 1, &three);
  sv_param(g, q, "b", 1, &two);
  gsl_rng *other = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(other, 1);
  sv__jrec want = want_state(), got;
  ck_assert_msg(sv__journal_read(path, &want, &got, q, other) == 0, "%s", sv_errmsg());
  for (int i = 0; i < 5; i++)
    ck_assert(sv_params_data(q)[i] == x[i]);
  ck_assert_int_eq(memcmp(gsl_rng_state(other), gsl_rng_state(rng), gsl_rng_size(rng)), 0);
  ck_assert_int_eq(got.res.steps, 17);
  ck_assert(got.res.loss == 0.125 && got.res.seconds == 1.5);
  ck_assert(got.history_len == 1234 && got.epochs_len == 56);
  ck_assert_int_eq(got.st.step, 16);
  ck_assert_int_eq(got.st.nscalars, SV__STAGE_SCALARS + 4);
  for (int i = 0; i < got.st.nscalars; i++)
    ck_assert(got.st.scalars[i] == i * 0.25);
  ck_assert_int_eq(got.st.nvecs, 2);
  ck_assert_int_eq(memcmp(got.st.vecs, vecs, sizeof vecs), 0);
  ck_assert_ptr_nonnull(got.rng0);
  free(got.st.vecs);
  free(got.rng0);

  /* refusals that name the reason, each leaving q and other unchanged */
  double before[5];
  memcpy(before, sv_params_data(q), sizeof before);
  sv_params_data(q)[0] = 42;
  struct {
    const char *field, *text;
  } refusals[] = {{"plugin", "is from plugin 'test_train', this is 'another'"},
                  {"stage", "stage 2 is 'adam' (adam) in the journal, 'lm' (adam) here"},
                  {"kind", "'adam' (adam) in the journal, 'adam' (sgd) here"},
                  {"ordinal", "is of stage 2, expected stage 3"},
                  {"stopped", "is the state of a stopped stage, expected a completed one"},
                  {"counts", "holds 10 scalars and 2 vectors of optimizer state"}};
  for (size_t k = 0; k < sizeof refusals / sizeof *refusals; k++) {
    sv__jrec w = want_state();
    const char *f = refusals[k].field;
    if (!strcmp(f, "plugin"))
      w.plugin = "another";
    else if (!strcmp(f, "stage"))
      w.stage = "lm";
    else if (!strcmp(f, "kind"))
      w.kind = SV_OPTIM_SGD;
    else if (!strcmp(f, "ordinal"))
      w.ordinal = 3;
    else if (!strcmp(f, "stopped"))
      w.stopped = 0;
    else
      w.st.nvecs = 1;
    ck_assert_int_eq(sv__journal_read(path, &w, &got, q, other), -1);
    ck_assert_msg(strstr(sv_errmsg(), refusals[k].text) && strstr(sv_errmsg(), path),
                  "%s: %s", f, sv_errmsg());
    ck_assert(sv_params_data(q)[0] == 42);
  }
  (void)before;

  /* another layout: a block of another size, another name */
  sv_graph *g2 = sv_graph_new();
  sv_params *q2 = sv_params_new();
  int four = 4;
  sv_param(g2, q2, "W", 1, &four);
  sv_param(g2, q2, "b", 1, &two);
  ck_assert_int_eq(sv__journal_read(path, &want, &got, q2, other), -1);
  ck_assert_msg(strstr(sv_errmsg(), "block 'W' has 3 values in the state, 4 here"), "%s",
                sv_errmsg());
  sv_params_free(q2), sv_graph_free(g2);
  g2 = sv_graph_new(), q2 = sv_params_new();
  sv_param(g2, q2, "W1", 1, &three);
  sv_param(g2, q2, "b", 1, &two);
  ck_assert_int_eq(sv__journal_read(path, &want, &got, q2, other), -1);
  ck_assert_msg(strstr(sv_errmsg(), "block 0 is 'W' in the state, 'W1' here"), "%s",
                sv_errmsg());
  sv_params_free(q2), sv_graph_free(g2);
  g2 = sv_graph_new(), q2 = sv_params_new();
  sv_param(g2, q2, "W", 1, &three);
  ck_assert_int_eq(sv__journal_read(path, &want, &got, q2, other), -1);
  ck_assert_msg(strstr(sv_errmsg(), "has 2 parameter blocks, the model here has 1"), "%s",
                sv_errmsg());
  sv_params_free(q2), sv_graph_free(g2);

  gsl_rng_free(other);
  gsl_rng_free(rng);
  sv_params_free(q), sv_graph_free(g);
  teardown(&e);
}
END_TEST

START_TEST(test_state_truncation_and_flips)
{
  env e = setup2(3, 2);
  char path[128], bad[128];
  snprintf(path, sizeof path, "%s/stage-2.state", e.dir);
  snprintf(bad, sizeof bad, "%s/bad.state", e.dir);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 5);
  double vecs[10];
  write_state(&e, path, rng, vecs);
  size_t n;
  unsigned char *img = slurp(path, &n);
  ck_assert(n > 5000); /* mt19937's state is most of it */

  sv_graph *g = sv_graph_new();
  sv_params *q = sv_params_new();
  int three = 3, two = 2;
  sv_param(g, q, "W", 1, &three);
  sv_param(g, q, "b", 1, &two);
  double *qd = sv_params_data(q);
  for (int i = 0; i < 5; i++)
    qd[i] = 7;
  gsl_rng *other = gsl_rng_alloc(gsl_rng_mt19937);
  unsigned char *rs = malloc(gsl_rng_size(other));
  memcpy(rs, gsl_rng_state(other), gsl_rng_size(other));
  sv__jrec want = want_state(), got;

  /* every truncation, the empty file included */
  for (size_t k = 0; k < n; k++) {
    spit(bad, img, k);
    ck_assert_msg(sv__journal_read(bad, &want, &got, q, other) == -1, "%zu bytes accepted", k);
    ck_assert_msg(strstr(sv_errmsg(), bad) != NULL, "%zu: %s", k, sv_errmsg());
  }
  /* one flipped bit at every byte */
  unsigned char *c = malloc(n);
  for (size_t k = 0; k < n; k++) {
    memcpy(c, img, n);
    c[k] ^= (unsigned char)(1u << (k % 8));
    spit(bad, c, n);
    ck_assert_msg(sv__journal_read(bad, &want, &got, q, other) == -1, "flip at %zu accepted", k);
  }
  /* a byte too many */
  memcpy(c, img, n);
  spit(bad, c, n);
  FILE *f = fopen(bad, "ab");
  fputc(0, f);
  fclose(f);
  ck_assert_int_eq(sv__journal_read(bad, &want, &got, q, other), -1);
  /* nothing was touched by any of them */
  for (int i = 0; i < 5; i++)
    ck_assert(qd[i] == 7);
  ck_assert_int_eq(memcmp(rs, gsl_rng_state(other), gsl_rng_size(other)), 0);
  /* and the intact file still reads */
  ck_assert_msg(sv__journal_read(path, &want, &got, q, other) == 0, "%s", sv_errmsg());
  free(got.st.vecs);
  free(got.rng0);
  free(c), free(img), free(rs);
  gsl_rng_free(other), gsl_rng_free(rng);
  sv_params_free(q), sv_graph_free(g);
  teardown(&e);
}
END_TEST

/* ------------------------------------------------------------------ */
/* A signal stops a stage at the end of a step                         */
/* ------------------------------------------------------------------ */

static int raise_at_3(void *ctx, int step)
{
  int *calls = ctx;
  (*calls)++;
  if (step == 3)
    raise(SIGINT);
  return 0;
}

START_TEST(test_signal_stops_stage)
{
  for (int sgd = 0; sgd < 2; sgd++) {
    env e = setup2(5, 0);
    ck_assert_int_eq(sv__signals_install(), 0);
    int calls = 0;
    sv_objective obj = {5, 0, quad5, NULL, NULL};
    sv_optim_opts o;
    sv_optim_defaults(&o, sgd ? SV_OPTIM_SGD : SV_OPTIM_ADAM);
    o.max_steps = 50;
    o.on_step = raise_at_3;
    o.on_step_ctx = &calls;
    ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
    sv__signals_restore();
    sv__signal_clear();
    char want[64];
    snprintf(want, sizeof want, "interrupted by SIGINT at step 3 of stage %s", sgd ? "sgd" : "adam");
    ck_assert_msg(strstr(sv_errmsg(), want) != NULL, "%s", sv_errmsg());
    ck_assert_int_eq(calls, 4); /* steps 0-3: the stage stopped after step 3's update */
    ck_assert_int_eq(e.r->interrupted, 1);
    ck_assert_int_eq(e.r->interrupt_signal, SIGINT);
    ck_assert_int_eq(e.r->interrupt_step, 3);
    ck_assert_str_eq(e.r->interrupt_stage, sgd ? "sgd" : "adam");
    /* the checkpoint holds the parameters it stopped with */
    sv_graph *g = sv_graph_new();
    sv_params *q = sv_params_new();
    int five = 5;
    sv_param(g, q, "W", 1, &five);
    ck_assert_msg(sv_checkpoint_load(q, sv_run_checkpoint_path(e.r)) == 0, "%s", sv_errmsg());
    ck_assert_int_eq(memcmp(sv_params_data(q), e.x, 5 * sizeof(double)), 0);
    sv_params_free(q), sv_graph_free(g);
    teardown(&e);
  }
}
END_TEST

int main(void)
{
  Suite *s = suite_create("train");
  TCase *tc = tcase_create("train");
  tcase_add_checked_fixture(tc, petsc_up, petsc_down);
  tcase_set_timeout(tc, 0);
  tcase_add_test(tc, test_adamw_reference);
  tcase_add_test(tc, test_set_scales_errors);
  tcase_add_test(tc, test_schedule_cosine_warmup);
  tcase_add_test(tc, test_schedule_warmup_restarts);
  tcase_add_test(tc, test_clip_norm);
  tcase_add_test(tc, test_stochastic_lsq);
  tcase_add_test(tc, test_bad_new_options);
  tcase_add_test(tc, test_state_round_trip);
  tcase_add_test(tc, test_state_truncation_and_flips);
  tcase_add_test(tc, test_signal_stops_stage);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
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
