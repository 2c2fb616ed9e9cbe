/*
 * test_optim.c -- the optimizers against problems with known answers.
 *
 * Objectives are written by hand (C closures, no graph), so a failure here
 * is the optimizer's. References are closed forms or GSL (linear solves,
 * SVD pseudo-inverse, multifit_nlinear), never the code under test.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, nftw, M_PI */
#endif
#include "internal.h"

#include <check.h>
#include <ftw.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <petscsys.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Fixtures: PETSc per forked child, or once for CK_NOFORK             */
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

typedef struct {
  char dir[64];
  sv_run *r;
  sv_graph *g;
  sv_params *p;
  double *x;
} env;

static env setup(size_t n)
{
  env e;
  strcpy(e.dir, "/tmp/test_optim.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(e.dir));
  e.r = sv__run_new(MPI_COMM_WORLD, e.dir, 1);
  ck_assert_msg(e.r != NULL, "sv__run_new: %s", sv_errmsg());
  e.g = sv_graph_new();
  e.p = sv_params_new();
  int d = (int)n;
  ck_assert_ptr_nonnull(sv_param(e.g, e.p, "theta", 1, &d));
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

/* ------------------------------------------------------------------ */
/* Objectives                                                          */
/* ------------------------------------------------------------------ */

/* Rosenbrock: (1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1). */
static int rosen(void *ctx, const double *t, double *f, double *g)
{
  (void)ctx;
  double a = 1 - t[0], b = t[1] - t[0] * t[0];
  *f = a * a + 100 * b * b;
  if (g) {
    g[0] = -2 * a - 400 * t[0] * b;
    g[1] = 200 * b;
  }
  return 0;
}

/* 0.5 x^T A x - b^T x with a fixed SPD A (3 x 3). */
static const double QA[9] = {3, 1, 0, 1, 2, 0.5, 0, 0.5, 1};
static const double QB[3] = {1, -2, 0.5};

static int quad(void *ctx, const double *x, double *f, double *g)
{
  (void)ctx;
  double s = 0;
  for (int i = 0; i < 3; i++) {
    double ax = 0;
    for (int j = 0; j < 3; j++)
      ax += QA[3 * i + j] * x[j];
    s += 0.5 * x[i] * ax - QB[i] * x[i];
    if (g)
      g[i] = ax - QB[i];
  }
  *f = s;
  return 0;
}

/* GSL reference: A x = b by Cholesky. */
static void quad_solution(double *x)
{
  double a[9];
  memcpy(a, QA, sizeof a);
  gsl_matrix_view A = gsl_matrix_view_array(a, 3, 3);
  gsl_vector_const_view b = gsl_vector_const_view_array(QB, 3);
  gsl_vector_view xv = gsl_vector_view_array(x, 3);
  ck_assert_int_eq(gsl_linalg_cholesky_decomp1(&A.matrix), 0);
  ck_assert_int_eq(gsl_linalg_cholesky_solve(&A.matrix, &b.vector, &xv.vector), 0);
}

/* Exponential decay y = A exp(-k t) + c sampled at t_i = 0.1 i, with an
   optional perturbation `noise` * sin(7 i) so the fit has a nonzero
   residual. Residuals r_i = A exp(-k t_i) + c - y_i. */
#define NPTS 40
typedef struct {
  int n;
  double t[NPTS], y[NPTS];
} expfit;

static void expfit_init(expfit *e, double A, double k, double c, double noise)
{
  e->n = NPTS;
  for (int i = 0; i < NPTS; i++) {
    e->t[i] = 0.1 * i;
    e->y[i] = A * exp(-k * e->t[i]) + c + noise * sin(7.0 * i);
  }
}

static int exp_res(void *ctx, const double *th, double *r, double *J)
{
  expfit *e = ctx;
  for (int i = 0; i < e->n; i++) {
    double ex = exp(-th[1] * e->t[i]);
    r[i] = th[0] * ex + th[2] - e->y[i];
    if (J) {
      J[3 * i + 0] = ex;
      J[3 * i + 1] = -th[0] * e->t[i] * ex;
      J[3 * i + 2] = 1;
    }
  }
  return 0;
}

static int exp_loss(void *ctx, const double *th, double *f, double *g)
{
  expfit *e = ctx;
  double r[NPTS], J[3 * NPTS];
  exp_res(ctx, th, r, J);
  *f = 0;
  if (g)
    g[0] = g[1] = g[2] = 0;
  for (int i = 0; i < e->n; i++) {
    *f += r[i] * r[i];
    if (g)
      for (int j = 0; j < 3; j++)
        g[j] += 2 * r[i] * J[3 * i + j];
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Names and defaults                                                  */
/* ------------------------------------------------------------------ */

START_TEST(test_parse_and_defaults)
{
  sv_optim_kind k;
  const char *names[] = {"sgd", "adam", "lbfgs", "lm"};
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(sv_optim_parse(names[i], &k), 0);
    ck_assert_int_eq(k, i);
    ck_assert_str_eq(sv_optim_name(k), names[i]);
  }
  ck_assert_int_eq(sv_optim_parse("adamw", &k), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "'adamw'"));

  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  ck_assert_double_eq(o.lr, 1e-3);
  ck_assert_double_eq(o.beta1, 0.9);
  ck_assert_double_eq(o.beta2, 0.999);
  ck_assert_double_eq(o.eps, 1e-8);
  ck_assert_int_eq(o.restart_period, 0);
  ck_assert_str_eq(o.stage, "adam");
  sv_optim_defaults(&o, SV_OPTIM_SGD);
  ck_assert_double_eq(o.lr, 1e-2);
  ck_assert_double_eq(o.momentum, 0);
  sv_optim_defaults(&o, SV_OPTIM_LBFGS);
  ck_assert_double_eq(o.gtol, 1e-10);
  ck_assert_int_eq(o.max_steps, 1000);
  sv_optim_defaults(&o, SV_OPTIM_LM);
  ck_assert_double_eq(o.lm_lambda, 1e-3);
  ck_assert_double_eq(o.gtol, 1e-14);
}
END_TEST

START_TEST(test_bad_options)
{
  env e = setup(2);
  sv_objective obj = {2, 0, rosen, NULL, NULL};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  o.lr = -1;
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "lr"));
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  o.beta1 = 1;
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "beta1"));
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  o.restart_period = 10;
  o.restart_mult = 0.5;
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "restart_mult"));
  sv_optim_defaults(&o, SV_OPTIM_SGD);
  o.max_steps = -3;
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "max_steps"));
  /* LM needs residuals */
  sv_optim_defaults(&o, SV_OPTIM_LM);
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "residuals"));
  /* parameter count mismatch */
  sv_objective wrong = {3, 0, rosen, NULL, NULL};
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  ck_assert_int_eq(sv_minimize(e.r, e.p, &wrong, &o, NULL), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "3 parameters"));
  teardown(&e);
}
END_TEST

/* ------------------------------------------------------------------ */
/* First order                                                         */
/* ------------------------------------------------------------------ */

START_TEST(test_sgd_quadratic)
{
  /* with and without momentum; tolerance 1e-8 on each coordinate. At lr
     0.05 plain gradient descent contracts by 1 - 0.05 lambda_min per step,
     too slowly for 400 steps: only the momentum gets there. */
  double ref[3];
  quad_solution(ref);
  for (int mom = 0; mom < 2; mom++) {
    env e = setup(3);
    sv_objective obj = {3, 0, quad, NULL, NULL};
    sv_optim_opts o;
    sv_optim_defaults(&o, SV_OPTIM_SGD);
    o.lr = mom ? 0.05 : 0.2;
    o.momentum = mom ? 0.8 : 0;
    o.max_steps = mom ? 400 : 2000;
    sv_optim_result res;
    ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, &res) == 0, "%s", sv_errmsg());
    for (int i = 0; i < 3; i++)
      ck_assert_msg(fabs(e.x[i] - ref[i]) < 1e-8, "momentum %g: x[%d] = %.17g, want %.17g",
                    o.momentum, i, e.x[i], ref[i]);
    ck_assert_int_eq(res.steps, o.max_steps);
    double f;
    quad(NULL, e.x, &f, NULL);
    ck_assert_double_eq(res.loss, f);
    teardown(&e);
  }
}
END_TEST

/* the quadratic shifted so that its minimum is 0 (ctx: the minimum) */
static int quad0(void *ctx, const double *x, double *f, double *g)
{
  quad(NULL, x, f, g);
  *f -= *(const double *)ctx;
  return 0;
}

START_TEST(test_sgd_ftol)
{
  env e = setup(3);
  double ref[3], fmin;
  quad_solution(ref);
  quad(NULL, ref, &fmin, NULL);
  sv_objective obj = {3, 0, quad0, NULL, &fmin};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_SGD);
  o.lr = 0.2;
  o.max_steps = 100000;
  o.ftol = 1e-6;
  sv_optim_result res;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, &res) == 0, "%s", sv_errmsg());
  ck_assert_int_eq(res.converged, 1);
  ck_assert_int_lt(res.steps, 1000);
  ck_assert(res.loss < 1e-6);
  double f;
  quad0(&fmin, e.x, &f, NULL);
  ck_assert_double_eq(f, res.loss);
  teardown(&e);
}
END_TEST

/* Adam's first step with bias correction is lr * g / (|g| + eps) per
   coordinate (Kingma & Ba, section 3): m_hat = g, v_hat = g^2. */
START_TEST(test_adam_first_step)
{
  env e = setup(2);
  e.x[0] = -1.2;
  e.x[1] = 1;
  double g[2], f;
  rosen(NULL, e.x, &f, g);
  sv_objective obj = {2, 0, rosen, NULL, NULL};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  o.max_steps = 1;
  o.eps = 1e-3;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, NULL) == 0, "%s", sv_errmsg());
  for (int i = 0; i < 2; i++) {
    double want = (i ? 1 : -1.2) - 1e-3 * g[i] / (fabs(g[i]) + 1e-3);
    ck_assert_msg(fabs(e.x[i] - want) < 1e-15, "x[%d] = %.17g, want %.17g", i, e.x[i], want);
  }
  teardown(&e);
}
END_TEST

START_TEST(test_adam_rosenbrock)
{
  /* Adam with cosine warm restarts (periods 1000, 2000, 4000, 8000),
     ending at the end of a period where the rate is near lr_min: reaches
     (1, 1) to 1e-4 */
  env e = setup(2);
  e.x[0] = -1.2;
  e.x[1] = 1;
  sv_objective obj = {2, 0, rosen, NULL, NULL};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  o.lr = 2e-2;
  o.restart_period = 1000;
  o.restart_mult = 2;
  o.lr_min = 0;
  o.max_steps = 15000;
  sv_optim_result res;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, &res) == 0, "%s", sv_errmsg());
  ck_assert_msg(fabs(e.x[0] - 1) < 1e-4 && fabs(e.x[1] - 1) < 1e-4, "x = (%.10g, %.10g)", e.x[0],
                e.x[1]);
  ck_assert_int_eq(res.steps, 15000);

  /* the metrics and the final checkpoint */
  int seen = 0;
  for (int i = 0; i < e.r->nmetrics; i++) {
    if (strcmp(e.r->metrics[i].name, "adam_final_loss") == 0) {
      ck_assert_double_eq(e.r->metrics[i].value, res.loss);
      seen |= 1;
    }
    if (strcmp(e.r->metrics[i].name, "adam_seconds") == 0) {
      ck_assert(e.r->metrics[i].value >= 0);
      seen |= 2;
    }
  }
  ck_assert_int_eq(seen, 3);
  sv_graph *g = sv_graph_new();
  sv_params *q = sv_params_new();
  int d = 2;
  sv_param(g, q, "theta", 1, &d);
  ck_assert_msg(sv_checkpoint_load(q, sv_run_checkpoint_path(e.r)) == 0, "%s", sv_errmsg());
  ck_assert_double_eq(sv_params_data(q)[0], e.x[0]);
  ck_assert_double_eq(sv_params_data(q)[1], e.x[1]);
  sv_params_free(q);
  sv_graph_free(g);
  teardown(&e);
}
END_TEST

/* The lr column of loss_history.csv follows the SGDR formula, and a
   second stage gets stage number 2. */
START_TEST(test_history_schedule)
{
  env e = setup(3);
  sv_objective obj = {3, 0, quad, NULL, NULL};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  o.lr = 0.1;
  o.lr_min = 0.01;
  o.restart_period = 4;
  o.restart_mult = 2;
  o.max_steps = 12;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, NULL) == 0, "%s", sv_errmsg());
  sv_optim_defaults(&o, SV_OPTIM_SGD);
  o.max_steps = 3;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, NULL) == 0, "%s", sv_errmsg());
  sv__run_free(e.r); /* flushes the series */
  e.r = NULL;

  char path[128], line[512];
  snprintf(path, sizeof path, "%s/loss_history.csv", e.dir);
  FILE *f = fopen(path, "r");
  ck_assert_ptr_nonnull(f);
  ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
  ck_assert_msg(strncmp(line, "stage,step,loss,lr", 18) == 0, "header: %s", line);
  int rows = 0;
  double stage, step, loss, lr;
  while (fgets(line, sizeof line, f)) {
    ck_assert_int_eq(sscanf(line, "%lf,%lf,%lf,%lf", &stage, &step, &loss, &lr), 4);
    if (rows <= 12) {
      ck_assert_double_eq(stage, 1);
      ck_assert_double_eq(step, rows);
      /* steps 0-3: period 4; 4-11: period 8; step 12 is the final
         evaluation (no update, lr 0) */
      double t = rows < 4 ? rows : rows - 4, T = rows < 4 ? 4 : 8;
      double want = rows == 12 ? 0 : 0.01 + 0.5 * 0.09 * (1 + cos(M_PI * t / T));
      ck_assert_msg(fabs(lr - want) < 1e-15, "step %d: lr %.17g, want %.17g", rows, lr, want);
    } else {
      ck_assert_double_eq(stage, 2);
      ck_assert_double_eq(step, rows - 13);
    }
    rows++;
  }
  fclose(f);
  ck_assert_int_eq(rows, 13 + 4);
  sv_params_free(e.p);
  sv_graph_free(e.g);
  nftw(e.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

/* ------------------------------------------------------------------ */
/* L-BFGS (TAO)                                                        */
/* ------------------------------------------------------------------ */

START_TEST(test_lbfgs_rosenbrock)
{
  env e = setup(2);
  e.x[0] = -1.2;
  e.x[1] = 1;
  sv_objective obj = {2, 0, rosen, NULL, NULL};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_LBFGS);
  sv_optim_result res;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, &res) == 0, "%s", sv_errmsg());
  ck_assert_msg(fabs(e.x[0] - 1) < 1e-8 && fabs(e.x[1] - 1) < 1e-8, "x = (%.17g, %.17g) after %d",
                e.x[0], e.x[1], res.steps);
  ck_assert_int_gt(res.steps, 5);
  ck_assert_int_lt(res.steps, 1000);
  double f;
  rosen(NULL, e.x, &f, NULL);
  ck_assert_double_eq(res.loss, f);
  teardown(&e);
}
END_TEST

/* TaoSetFromOptions: -tao_max_it overrides the stage's max_steps. */
START_TEST(test_lbfgs_tao_options)
{
  env e = setup(2);
  e.x[0] = -1.2;
  e.x[1] = 1;
  sv_objective obj = {2, 0, rosen, NULL, NULL};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_LBFGS);
  ck_assert_int_eq(PetscOptionsSetValue(NULL, "-tao_max_it", "3"), 0);
  sv_optim_result res;
  int rc = sv_minimize(e.r, e.p, &obj, &o, &res);
  PetscOptionsClearValue(NULL, "-tao_max_it");
  ck_assert_msg(rc == 0, "%s", sv_errmsg());
  ck_assert_int_eq(res.steps, 3);
  ck_assert_int_eq(res.converged, 0);
  teardown(&e);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Levenberg-Marquardt                                                 */
/* ------------------------------------------------------------------ */

START_TEST(test_lm_exp_fit)
{
  /* exact data, M = 40 >= n = 3, far start: recovers A, k, c to 1e-10 */
  expfit d;
  expfit_init(&d, 2.5, 1.3, 0.5, 0);
  env e = setup(3);
  e.x[0] = 10;
  e.x[1] = 0.05;
  e.x[2] = -5;
  sv_objective obj = {3, NPTS, exp_loss, exp_res, &d};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_LM);
  sv_optim_result res;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, &res) == 0, "%s", sv_errmsg());
  ck_assert_msg(fabs(e.x[0] - 2.5) < 1e-10 && fabs(e.x[1] - 1.3) < 1e-10 &&
                fabs(e.x[2] - 0.5) < 1e-10, "theta = (%.17g, %.17g, %.17g) after %d steps",
                e.x[0], e.x[1], e.x[2], res.steps);
  ck_assert_int_eq(res.converged, 1);
  ck_assert(res.loss < 1e-24);
  teardown(&e);
}
END_TEST

/* GSL's multifit_nlinear (trust-region LM) on the same noisy problem. */
static int gsl_f(const gsl_vector *x, void *ctx, gsl_vector *f)
{
  return exp_res(ctx, x->data, f->data, NULL), GSL_SUCCESS;
}

static int gsl_df(const gsl_vector *x, void *ctx, gsl_matrix *J)
{
  double r[NPTS];
  return exp_res(ctx, x->data, r, J->data), GSL_SUCCESS;
}

START_TEST(test_lm_noisy_vs_gsl)
{
  /* nonzero residual: the minimiser agrees with GSL's to 1e-9 */
  expfit d;
  expfit_init(&d, 2.5, 1.3, 0.5, 0.02);
  env e = setup(3);
  e.x[0] = 1;
  e.x[1] = 0.5;
  e.x[2] = 0;
  sv_objective obj = {3, NPTS, exp_loss, exp_res, &d};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_LM);
  sv_optim_result res;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, &res) == 0, "%s", sv_errmsg());

  gsl_multifit_nlinear_parameters par = gsl_multifit_nlinear_default_parameters();
  gsl_multifit_nlinear_workspace *w =
    gsl_multifit_nlinear_alloc(gsl_multifit_nlinear_trust, &par, NPTS, 3);
  gsl_multifit_nlinear_fdf fdf = {gsl_f, gsl_df, NULL, NPTS, 3, &d, 0, 0, 0};
  double x0[3] = {1, 0.5, 0};
  gsl_vector_view xv = gsl_vector_view_array(x0, 3);
  int info;
  gsl_multifit_nlinear_init(&xv.vector, &fdf, w);
  ck_assert_int_eq(gsl_multifit_nlinear_driver(500, 1e-15, 1e-15, 1e-15, NULL, NULL, &info, w),
                   GSL_SUCCESS);
  const gsl_vector *ref = gsl_multifit_nlinear_position(w);
  for (int i = 0; i < 3; i++)
    ck_assert_msg(fabs(e.x[i] - gsl_vector_get(ref, i)) < 1e-9, "theta[%d] = %.17g, GSL %.17g", i,
                  e.x[i], gsl_vector_get(ref, i));
  gsl_multifit_nlinear_free(w);
  ck_assert(res.loss > 1e-4); /* the noise does not fit */
  teardown(&e);
}
END_TEST

/* The stall window: on a problem whose loss stops falling (noise), LM
   stops by itself long before max_steps, at the same minimiser. */
START_TEST(test_lm_stall)
{
  expfit d;
  expfit_init(&d, 2.5, 1.3, 0.5, 0.02);
  sv_objective obj = {3, NPTS, exp_loss, exp_res, &d};
  double full[3] = {0, 0, 0}, loss_full = 0;
  int steps_full = 0;
  for (int stall = 0; stall < 2; stall++) {
    env e = setup(3);
    e.x[0] = 1, e.x[1] = 0.5, e.x[2] = 0;
    sv_optim_opts o;
    sv_optim_defaults(&o, SV_OPTIM_LM);
    o.max_steps = 400;
    o.gtol = 0; /* only the window (or max_steps) may stop it */
    o.stall_window = stall ? 10 : 0;
    o.stall_rtol = 1e-12;
    sv_optim_result res;
    ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, &res) == 0, "%s", sv_errmsg());
    if (!stall) {
      memcpy(full, e.x, sizeof full);
      loss_full = res.loss;
      steps_full = res.steps; /* until the damping overflows: the loss cannot fall further */
    } else {
      ck_assert_msg(res.converged && res.steps < steps_full && res.steps % 10 == 0,
                    "stalled stop after %d steps of %d (converged %d)", res.steps, steps_full,
                    res.converged);
      for (int i = 0; i < 3; i++)
        ck_assert_msg(fabs(e.x[i] - full[i]) < 1e-9, "theta[%d] = %.17g vs %.17g", i, e.x[i], full[i]);
      ck_assert(fabs(res.loss - loss_full) <= 1e-12 * loss_full);
    }
    teardown(&e);
  }
  /* bad settings are refused by name */
  env e = setup(3);
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_LM);
  o.stall_window = 5;
  o.stall_rtol = 1.5;
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  ck_assert_msg(strstr(sv_errmsg(), "stall_rtol"), "%s", sv_errmsg());
  o.stall_window = -1;
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  ck_assert_msg(strstr(sv_errmsg(), "stall_window"), "%s", sv_errmsg());
  teardown(&e);
}
END_TEST

/* Linear and underdetermined: r = B theta - y with B 5 x 12. From theta =
   0 every LM step lies in the row space of B, so LM must end at the
   minimum-norm solution pinv(B) y (GSL SVD), with zero residual. */
#define UM 5
#define UN 12
typedef struct {
  double B[UM * UN], y[UM];
  int calls, nan_at;
  double seen[8][UN];
} linprob;

static int lin_res(void *ctx, const double *th, double *r, double *J)
{
  linprob *L = ctx;
  for (int i = 0; i < UM; i++) {
    double s = 0;
    for (int j = 0; j < UN; j++)
      s += L->B[i * UN + j] * th[j];
    r[i] = s - L->y[i];
  }
  if (J)
    memcpy(J, L->B, sizeof L->B);
  if (L->calls < 8)
    memcpy(L->seen[L->calls], th, sizeof L->seen[0]);
  if (L->calls++ == L->nan_at)
    r[2] = NAN;
  return 0;
}

static void lin_init(linprob *L)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 7);
  for (int i = 0; i < UM * UN; i++)
    L->B[i] = 2 * gsl_rng_uniform(rng) - 1;
  for (int i = 0; i < UM; i++)
    L->y[i] = 2 * gsl_rng_uniform(rng) - 1;
  gsl_rng_free(rng);
  L->calls = 0;
  L->nan_at = -1;
}

START_TEST(test_lm_underdetermined_linear)
{
  linprob L;
  lin_init(&L);
  /* reference: B^T = U S V^T (12 x 5), pinv(B) y = U S^-1 V^T y */
  gsl_matrix *U = gsl_matrix_alloc(UN, UM), *V = gsl_matrix_alloc(UM, UM);
  gsl_vector *S = gsl_vector_alloc(UM), *wk = gsl_vector_alloc(UM), *z = gsl_vector_alloc(UM);
  for (int i = 0; i < UM; i++)
    for (int j = 0; j < UN; j++)
      gsl_matrix_set(U, j, i, L.B[i * UN + j]);
  ck_assert_int_eq(gsl_linalg_SV_decomp(U, V, S, wk), 0);
  gsl_vector_view yv = gsl_vector_view_array(L.y, UM);
  gsl_blas_dgemv(CblasTrans, 1, V, &yv.vector, 0, z);
  gsl_vector_div(z, S);
  double ref[UN];
  gsl_vector_view rv = gsl_vector_view_array(ref, UN);
  gsl_blas_dgemv(CblasNoTrans, 1, U, z, 0, &rv.vector);

  env e = setup(UN);
  sv_objective obj = {UN, UM, NULL, lin_res, &L};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_LM);
  sv_optim_result res;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, &res) == 0, "%s", sv_errmsg());
  for (int j = 0; j < UN; j++)
    ck_assert_msg(fabs(e.x[j] - ref[j]) < 1e-10, "theta[%d] = %.17g, min-norm %.17g", j, e.x[j],
                  ref[j]);
  ck_assert(res.loss < 1e-24);
  ck_assert_int_eq(res.converged, 1);
  gsl_matrix_free(U), gsl_matrix_free(V);
  gsl_vector_free(S), gsl_vector_free(wk), gsl_vector_free(z);
  teardown(&e);
}
END_TEST

/* Nonlinear and underdetermined: y = a exp(-b t) + c sin(d t) + e
   through 3 points (5 parameters). LM reaches zero residual. */
static const double UT[3] = {0.0, 0.7, 1.9}, UY[3] = {1.0, -0.3, 0.8};

static int under_res(void *ctx, const double *th, double *r, double *J)
{
  (void)ctx;
  for (int i = 0; i < 3; i++) {
    double t = UT[i], ex = exp(-th[1] * t), sn = sin(th[3] * t);
    r[i] = th[0] * ex + th[2] * sn + th[4] - UY[i];
    if (J) {
      double *row = J + 5 * i;
      row[0] = ex;
      row[1] = -th[0] * t * ex;
      row[2] = sn;
      row[3] = th[2] * t * cos(th[3] * t);
      row[4] = 1;
    }
  }
  return 0;
}

START_TEST(test_lm_underdetermined_nonlinear)
{
  env e = setup(5);
  double start[5] = {0.1, 0.2, 0.3, 0.4, 0.5};
  memcpy(e.x, start, sizeof start);
  sv_objective obj = {5, 3, NULL, under_res, NULL};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_LM);
  sv_optim_result res;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, &res) == 0, "%s", sv_errmsg());
  double r[3];
  under_res(NULL, e.x, r, NULL);
  for (int i = 0; i < 3; i++)
    ck_assert_msg(fabs(r[i]) < 1e-12, "r[%d] = %.3g after %d steps", i, r[i], res.steps);
  ck_assert_int_eq(res.converged, 1);
  teardown(&e);
}
END_TEST

/* ------------------------------------------------------------------ */
/* NaN, Inf and failing objectives                                     */
/* ------------------------------------------------------------------ */

/* sum (x_i - 1)^2 that returns NaN (or an Inf gradient) at call
   `bad_at` and remembers every point it saw. */
typedef struct {
  int calls, bad_at, inf_grad, fail_at;
  double seen[64][2];
} trap;

static int trap_loss(void *ctx, const double *x, double *f, double *g)
{
  trap *t = ctx;
  int k = t->calls++;
  if (k < 64)
    memcpy(t->seen[k], x, sizeof t->seen[k]);
  if (k == t->fail_at)
    return sv_fail("boom in call %d", k);
  rosen(NULL, x, f, g);
  if (k == t->bad_at) {
    if (t->inf_grad && g)
      g[1] = INFINITY;
    else
      *f = NAN;
  }
  return 0;
}

START_TEST(test_nan_adam)
{
  env e = setup(2);
  e.x[0] = -1;
  e.x[1] = 2;
  trap t = {0, 5, 0, -1, {{0}}};
  sv_objective obj = {2, 0, trap_loss, NULL, &t};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  o.max_steps = 100;
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  const char *m = sv_errmsg();
  ck_assert_msg(strstr(m, "stage adam: loss is NaN at step 5; last good parameters kept in ") != NULL,
                "message: %s", m);
  ck_assert_ptr_nonnull(strstr(m, sv_run_checkpoint_path(e.r)));
  ck_assert_int_eq(t.calls, 6);
  /* the parameters of step 4, in memory and in the checkpoint */
  ck_assert_double_eq(e.x[0], t.seen[4][0]);
  ck_assert_double_eq(e.x[1], t.seen[4][1]);
  ck_assert(e.x[0] != t.seen[5][0]);
  sv_graph *g = sv_graph_new();
  sv_params *q = sv_params_new();
  int d = 2;
  sv_param(g, q, "theta", 1, &d);
  ck_assert_msg(sv_checkpoint_load(q, sv_run_checkpoint_path(e.r)) == 0, "%s", sv_errmsg());
  ck_assert_double_eq(sv_params_data(q)[0], t.seen[4][0]);
  ck_assert_double_eq(sv_params_data(q)[1], t.seen[4][1]);
  sv_params_free(q);
  sv_graph_free(g);
  teardown(&e);
}
END_TEST

START_TEST(test_inf_gradient_lbfgs)
{
  env e = setup(2);
  e.x[0] = -1.2;
  e.x[1] = 1;
  trap t = {0, 4, 1, -1, {{0}}};
  sv_objective obj = {2, 0, trap_loss, NULL, &t};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_LBFGS);
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  const char *m = sv_errmsg();
  ck_assert_msg(strstr(m, "stage lbfgs: gradient is +Inf at index 1 at step ") != NULL,
                "message: %s", m);
  ck_assert_int_eq(t.calls, 5);
  /* restored to a point evaluated before, with a finite loss */
  int found = 0;
  for (int k = 0; k < 4; k++)
    found |= e.x[0] == t.seen[k][0] && e.x[1] == t.seen[k][1];
  ck_assert(found);
  teardown(&e);
}
END_TEST

START_TEST(test_nan_lm)
{
  /* every step of a linear problem is accepted, so the last good point
     is the one evaluated just before the NaN */
  linprob L;
  lin_init(&L);
  L.nan_at = 3;
  env e = setup(UN);
  sv_objective obj = {UN, UM, NULL, lin_res, &L};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_LM);
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  ck_assert_msg(strstr(sv_errmsg(), "stage lm: residual is NaN at index 2 at step 3;") != NULL,
                "message: %s", sv_errmsg());
  ck_assert_int_eq(L.calls, 4);
  for (int j = 0; j < UN; j++)
    ck_assert_double_eq(e.x[j], L.seen[2][j]);
  teardown(&e);
}
END_TEST

START_TEST(test_objective_failure)
{
  env e = setup(2);
  trap t = {0, -1, 0, 3, {{0}}};
  sv_objective obj = {2, 0, trap_loss, NULL, &t};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_SGD);
  o.lr = 1e-4;
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  ck_assert_msg(strstr(sv_errmsg(), "step 3") && strstr(sv_errmsg(), "boom in call 3"),
                "message: %s", sv_errmsg());
  /* the same through TAO */
  t.calls = 0;
  sv_optim_defaults(&o, SV_OPTIM_LBFGS);
  ck_assert_int_eq(sv_minimize(e.r, e.p, &obj, &o, NULL), -1);
  ck_assert_msg(strstr(sv_errmsg(), "boom in call 3") != NULL, "message: %s", sv_errmsg());
  teardown(&e);
}
END_TEST

/* on_step is called once per step, before the step's evaluation. */
typedef struct {
  int steps[32], n, evals;
} stepper;

static int count_step(void *ctx, int step)
{
  stepper *s = ctx;
  if (s->n < 32)
    s->steps[s->n] = step;
  s->n++;
  ck_assert_int_eq(s->evals, step); /* before evaluation `step` */
  return 0;
}

static int quad_counted(void *ctx, const double *x, double *f, double *g)
{
  ((stepper *)ctx)->evals++;
  return quad(NULL, x, f, g);
}

START_TEST(test_on_step)
{
  env e = setup(3);
  stepper st = {{0}, 0, 0};
  sv_objective obj = {3, 0, quad_counted, NULL, &st};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  o.max_steps = 7;
  o.on_step = count_step;
  o.on_step_ctx = &st;
  ck_assert_msg(sv_minimize(e.r, e.p, &obj, &o, NULL) == 0, "%s", sv_errmsg());
  ck_assert_int_eq(st.n, 8);
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq(st.steps[i], i);
  teardown(&e);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("optim");
  TCase *tc = tcase_create("optim");
  tcase_add_checked_fixture(tc, petsc_up, petsc_down);
  tcase_set_timeout(tc, 0);
  tcase_add_test(tc, test_parse_and_defaults);
  tcase_add_test(tc, test_bad_options);
  tcase_add_test(tc, test_sgd_quadratic);
  tcase_add_test(tc, test_sgd_ftol);
  tcase_add_test(tc, test_adam_first_step);
  tcase_add_test(tc, test_adam_rosenbrock);
  tcase_add_test(tc, test_history_schedule);
  tcase_add_test(tc, test_lbfgs_rosenbrock);
  tcase_add_test(tc, test_lbfgs_tao_options);
  tcase_add_test(tc, test_lm_exp_fit);
  tcase_add_test(tc, test_lm_stall);
  tcase_add_test(tc, test_lm_noisy_vs_gsl);
  tcase_add_test(tc, test_lm_underdetermined_linear);
  tcase_add_test(tc, test_lm_underdetermined_nonlinear);
  tcase_add_test(tc, test_nan_adam);
  tcase_add_test(tc, test_inf_gradient_lbfgs);
  tcase_add_test(tc, test_nan_lm);
  tcase_add_test(tc, test_objective_failure);
  tcase_add_test(tc, test_on_step);
  suite_add_tcase(s, tc);

  SRunner *sr = srunner_create(s);
  /* without fork (CK_FORK=no, or under a debugger) MPI can only be
     initialised once: do it here instead of in each test */
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
