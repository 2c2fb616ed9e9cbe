/*
 * test_graph.c -- graphs as a whole: compiling (dead nodes dropped), plans
 * run many times over rebound data, one graph at several batch sizes, the
 * PINN pattern (u, u', u'' by AD and a loss on them differentiated w.r.t.
 * the weights) against finite differences, build and run errors, and the
 * least-squares objective's residuals, Jacobian and gradient.
 *
 * References are computed here without the library (closed forms, loops)
 * or by central finite differences of values the plan computes.
 */
#include <solver.h>

/* internal to the core, exported for tests (core/lsq.c, core/compile.c) */
int sv__lsq_batched_jacobian(sv_lsq *l, int on);
typedef struct sv__pool sv__pool;
sv__pool *sv__pool_new(int n);
void sv__pool_free(sv__pool *p);
int sv__pool_run(sv__pool *p, int (*task)(void *ctx, int i), void *ctx);
int sv__plan_fused_runs(const sv_plan *p);

#include <cblas.h>
#include <dlfcn.h>

#include <check.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double FD_H = 1e-6;

static double maxabs(const double *a, size_t n)
{
  double m = 0;
  for (size_t k = 0; k < n; k++)
    m = fmax(m, fabs(a[k]));
  return m;
}

/* |got - want| <= tol * max(floor, |want|_inf), element by element. */
static void expect_close(const char *what, const double *got, const double *want, size_t n,
                         double tol, double floor)
{
  double scale = fmax(floor, maxabs(want, n));
  ck_assert_msg(got != NULL, "%s: no value", what);
  for (size_t k = 0; k < n; k++)
    ck_assert_msg(fabs(got[k] - want[k]) <= tol * scale,
                  "%s[%zu] = %.17g, expected %.17g (diff %.3g, tol %.3g)", what, k, got[k], want[k],
                  fabs(got[k] - want[k]), tol * scale);
}

static void run_ok(sv_plan *pl)
{
  ck_assert_msg(sv_plan_run(pl) == 0, "run: %s", sv_errmsg());
}

static const double *value(const sv_plan *pl, const sv_node *n)
{
  const double *v = sv_plan_value(pl, n);
  ck_assert_msg(v != NULL, "no value for a node (%s): %s", sv_op_name(n), sv_errmsg());
  return v;
}

static gsl_rng *rng_new(unsigned long seed)
{
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, seed);
  return r;
}

static void fill_uniform(gsl_rng *r, double *v, size_t n, double lo, double hi)
{
  for (size_t k = 0; k < n; k++)
    v[k] = lo + (hi - lo) * gsl_rng_uniform(r);
}

/* ------------------------------------------------------------------ */
/* Compiling                                                           */
/* ------------------------------------------------------------------ */

START_TEST(test_compile_drops_unused)
{
  sv_graph *g = sv_graph_new();
  int d[2] = {SV_BATCH, 3};
  sv_node *x = sv_input(g, "x", 2, d);
  sv_node *y = sv_scale(sv_tanh(x), 2.0);
  /* a branch y does not need, and derivatives nobody asked for */
  sv_node *unused = sv_exp(sv_sin(sv_mul(x, sv_cos(x))));
  sv_node *gu = sv_grad(sv_sum(unused), x);
  ck_assert_ptr_nonnull(gu);
  int nodes = sv_graph_node_count(g);
  ck_assert_int_ge(nodes, 12);

  sv_plan *p1 = sv_compile(g, 1, &y, 4);
  ck_assert_msg(p1 != NULL, "%s", sv_errmsg());
  /* tanh and scale: nothing else is computed */
  ck_assert_int_le(sv_plan_step_count(p1), 2);
  ck_assert_int_lt(sv_plan_step_count(p1), nodes);
  ck_assert_ptr_null(sv_plan_value(p1, unused));
  ck_assert_ptr_null(sv_plan_value(p1, gu));
  ck_assert_uint_eq(sv_plan_size(p1, unused), 0);

  sv_node *both[2] = {y, gu};
  sv_plan *p2 = sv_compile(g, 2, both, 4);
  ck_assert_msg(p2 != NULL, "%s", sv_errmsg());
  ck_assert_int_gt(sv_plan_step_count(p2), sv_plan_step_count(p1));
  ck_assert_int_lt(sv_plan_step_count(p2), nodes);

  double xd[12];
  for (int k = 0; k < 12; k++)
    xd[k] = 0.3 * k - 1.7;
  ck_assert_int_eq(sv_plan_bind(p1, x, xd), 0);
  ck_assert_int_eq(sv_plan_bind(p2, x, xd), 0);
  run_ok(p1);
  run_ok(p2);
  const double *v1 = value(p1, y), *v2 = value(p2, y), *vg = value(p2, gu);
  for (int k = 0; k < 12; k++) {
    double t = xd[k], want = 2 * tanh(t);
    ck_assert_double_eq_tol(v1[k], want, 1e-15);
    ck_assert_double_eq_tol(v2[k], want, 1e-15);
    /* d/dt exp(sin(t cos t)) */
    double in = t * cos(t), dg = exp(sin(in)) * cos(in) * (cos(t) - t * sin(t));
    ck_assert_double_eq_tol(vg[k], dg, 1e-13 * fmax(1, fabs(dg)));
  }
  sv_plan_free(p1);
  sv_plan_free(p2);
  sv_graph_free(g);
}
END_TEST

/* One plan, many runs: rebinding to other arrays and rewriting the bound
   arrays in place both give the right values every time. */
START_TEST(test_plan_rerun)
{
  enum { ROWS = 6, RUNS = 60 };
  sv_graph *g = sv_graph_new();
  int d[2] = {SV_BATCH, 2}, cd[1] = {2};
  sv_node *x = sv_input(g, "x", 2, d), *c = sv_input(g, "c", 1, cd);
  /* y[i] = sum_j sin(x_ij) * c_j + exp(-x_i0^2) */
  sv_node *x0 = sv_slice(x, 1, 0, 1);
  sv_node *y = sv_add(sv_sum_axis(sv_mul(sv_sin(x), c), 1),
                      sv_reshape(sv_exp(sv_neg(sv_square(x0))), 1, (int[]){SV_BATCH}));
  sv_node *dy = sv_grad(y, x);
  sv_node *outs[2] = {y, dy};
  sv_plan *pl = sv_compile(g, 2, outs, ROWS);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  ck_assert_uint_eq(sv_plan_size(pl, y), ROWS);
  ck_assert_uint_eq(sv_plan_size(pl, dy), 2 * ROWS);

  gsl_rng *r = rng_new(11);
  double bufs[3][2 * ROWS], cbuf[2][2];
  for (int run = 0; run < RUNS; run++) {
    double *xd = bufs[run % 3], *cdat = cbuf[run % 2];
    fill_uniform(r, xd, 2 * ROWS, -2, 2);
    fill_uniform(r, cdat, 2, -1, 1);
    if (run % 4 != 3) { /* every fourth run: new contents, same binding */
      ck_assert_int_eq(sv_plan_bind(pl, x, xd), 0);
      ck_assert_int_eq(sv_plan_bind(pl, c, cdat), 0);
    } else {
      xd = bufs[(run - 1) % 3];
      cdat = cbuf[(run - 1) % 2];
      fill_uniform(r, xd, 2 * ROWS, -2, 2);
      fill_uniform(r, cdat, 2, -1, 1);
    }
    run_ok(pl);
    const double *vy = value(pl, y), *vd = value(pl, dy);
    for (int i = 0; i < ROWS; i++) {
      double a = xd[2 * i], b = xd[2 * i + 1];
      double want = sin(a) * cdat[0] + sin(b) * cdat[1] + exp(-a * a);
      ck_assert_msg(fabs(vy[i] - want) <= 1e-14, "run %d row %d: y %.17g want %.17g", run, i, vy[i],
                    want);
      double da = cos(a) * cdat[0] - 2 * a * exp(-a * a), db = cos(b) * cdat[1];
      ck_assert_msg(fabs(vd[2 * i] - da) <= 1e-14 && fabs(vd[2 * i + 1] - db) <= 1e-14,
                    "run %d row %d: dy (%.17g, %.17g) want (%.17g, %.17g)", run, i, vd[2 * i],
                    vd[2 * i + 1], da, db);
    }
  }
  gsl_rng_free(r);
  sv_plan_free(pl);
  sv_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Batch sizes                                                         */
/* ------------------------------------------------------------------ */

START_TEST(test_batch_sizes_agree)
{
  enum { ROWS = 7, NIN = 2, NOUT = 3 };
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  int d[2] = {SV_BATCH, NIN};
  sv_node *x = sv_input(g, "x", 2, d);
  sv_node *u = sv_mlp(p, "net", x, 16, 2, NOUT, SV_ACT_TANH);
  sv_node *du = sv_grad(u, x);
  sv_node *d2u = sv_grad(sv_slice(du, 1, 0, 1), x);
  ck_assert_msg(d2u != NULL, "%s", sv_graph_error(g));
  gsl_rng *r = rng_new(3);
  ck_assert_int_eq(sv_params_init_glorot(p, r), 0);
  fill_uniform(r, sv_params_data(p), sv_params_count(p), -0.8, 0.8); /* biases too */

  sv_node *outs[3] = {u, du, d2u};
  sv_plan *p7 = sv_compile(g, 3, outs, ROWS), *p1 = sv_compile(g, 3, outs, 1);
  ck_assert_msg(p7 && p1, "%s", sv_errmsg());
  double xd[ROWS * NIN];
  fill_uniform(r, xd, ROWS * NIN, -1, 1);
  ck_assert_int_eq(sv_plan_bind(p7, x, xd), 0);
  run_ok(p7);
  const double *u7 = value(p7, u), *du7 = value(p7, du), *dd7 = value(p7, d2u);
  ck_assert_uint_eq(sv_plan_size(p7, u), ROWS * NOUT);
  ck_assert_uint_eq(sv_plan_size(p1, u), NOUT);
  for (int i = 0; i < ROWS; i++) {
    char what[64];
    ck_assert_int_eq(sv_plan_bind(p1, x, xd + i * NIN), 0);
    run_ok(p1);
    snprintf(what, sizeof what, "u row %d (batch 1 vs 7)", i);
    expect_close(what, value(p1, u), u7 + i * NOUT, NOUT, 1e-14, 1);
    snprintf(what, sizeof what, "du/dx row %d (batch 1 vs 7)", i);
    expect_close(what, value(p1, du), du7 + i * NIN, NIN, 1e-14, 1);
    snprintf(what, sizeof what, "d2u row %d (batch 1 vs 7)", i);
    expect_close(what, value(p1, d2u), dd7 + i * NIN, NIN, 1e-14, 1);
  }
  gsl_rng_free(r);
  sv_plan_free(p7);
  sv_plan_free(p1);
  sv_params_free(p);
  sv_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The PINN pattern                                                    */
/* ------------------------------------------------------------------ */

START_TEST(test_pinn_pattern)
{
  enum { ROWS = 6 };
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  int d[2] = {SV_BATCH, 1};
  sv_node *x = sv_input(g, "x", 2, d);
  sv_node *u = sv_mlp(p, "u", x, 8, 2, 1, SV_ACT_TANH);
  sv_node *du = sv_grad(u, x);
  sv_node *d2u = sv_grad(du, x);
  sv_node *loss = sv_mean(sv_add(sv_square(d2u), sv_square(u)));
  sv_node *gp = sv_grad_params(loss, p);
  ck_assert_msg(gp != NULL, "%s", sv_graph_error(g));
  size_t n = sv_params_count(p);
  ck_assert_uint_eq(n, 8 + 8 + 64 + 8 + 8 + 1);
  ck_assert_int_eq(sv_ndim(gp), 1);
  ck_assert_int_eq(sv_dim(gp, 0), (int)n);

  gsl_rng *r = rng_new(5);
  ck_assert_int_eq(sv_params_init_glorot(p, r), 0);
  double *theta = sv_params_data(p);
  for (size_t j = 0; j < n; j++) /* nonzero biases; weights a little larger */
    theta[j] = theta[j] * 1.5 + 0.2 * (gsl_rng_uniform(r) - 0.5);

  sv_node *outs[5] = {u, du, d2u, loss, gp};
  sv_plan *pl = sv_compile(g, 5, outs, ROWS);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  double xd[ROWS];
  fill_uniform(r, xd, ROWS, -1, 1);
  ck_assert_int_eq(sv_plan_bind(pl, x, xd), 0);
  run_ok(pl);
  double u0[ROWS], du0[ROWS], d2u0[ROWS], *g0 = malloc(n * sizeof *g0);
  memcpy(u0, value(pl, u), sizeof u0);
  memcpy(du0, value(pl, du), sizeof du0);
  memcpy(d2u0, value(pl, d2u), sizeof d2u0);
  memcpy(g0, value(pl, gp), n * sizeof *g0);
  double loss0 = value(pl, loss)[0], want = 0;
  for (int i = 0; i < ROWS; i++)
    want += (d2u0[i] * d2u0[i] + u0[i] * u0[i]) / ROWS;
  ck_assert_double_eq_tol(loss0, want, 1e-15 * fmax(1, want));

  /* du and d2u: central differences in x, row by row; rows independent */
  double fd1[ROWS], fd2[ROWS];
  for (int i = 0; i < ROWS; i++) {
    double up, um, dup, dum, xi = xd[i];
    xd[i] = xi + FD_H;
    run_ok(pl);
    up = value(pl, u)[i];
    dup = value(pl, du)[i];
    for (int k = 0; k < ROWS; k++)
      if (k != i)
        ck_assert_msg(value(pl, u)[k] == u0[k], "row %d changed when x[%d] moved", k, i);
    xd[i] = xi - FD_H;
    run_ok(pl);
    um = value(pl, u)[i];
    dum = value(pl, du)[i];
    xd[i] = xi;
    fd1[i] = (up - um) / (2 * FD_H);
    fd2[i] = (dup - dum) / (2 * FD_H);
  }
  expect_close("du/dx vs FD of u", du0, fd1, ROWS, 1e-7, 1);
  expect_close("d2u/dx2 vs FD of du", d2u0, fd2, ROWS, 1e-7, 1);

  /* the loss gradient: central differences in every parameter */
  double *fdg = malloc(n * sizeof *fdg);
  for (size_t j = 0; j < n; j++) {
    double t = theta[j], lp, lm;
    theta[j] = t + FD_H;
    run_ok(pl);
    lp = value(pl, loss)[0];
    theta[j] = t - FD_H;
    run_ok(pl);
    lm = value(pl, loss)[0];
    theta[j] = t;
    fdg[j] = (lp - lm) / (2 * FD_H);
  }
  ck_assert_msg(maxabs(fdg, n) > 1e-3, "degenerate test: loss gradient %.3g", maxabs(fdg, n));
  expect_close("d loss / d theta vs FD", g0, fdg, n, 1e-7, 0);

  free(g0);
  free(fdg);
  gsl_rng_free(r);
  sv_plan_free(pl);
  sv_params_free(p);
  sv_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

static void expect_error_has(const char *msg, const char *part)
{
  ck_assert_msg(msg != NULL, "no error message (expected one naming '%s')", part);
  ck_assert_msg(strstr(msg, part) != NULL, "error '%s' does not name '%s'", msg, part);
}

START_TEST(test_error_shapes)
{
  sv_graph *g = sv_graph_new();
  int da[2] = {3, 4}, db[1] = {5};
  sv_node *a = sv_input(g, "a", 2, da), *b = sv_input(g, "b", 1, db);
  sv_node *ok = sv_tanh(a);
  ck_assert_ptr_null(sv_graph_error(g));
  ck_assert_ptr_null(sv_add(a, b));
  expect_error_has(sv_graph_error(g), "[3,4]");
  expect_error_has(sv_graph_error(g), "[5]");
  /* the error is sticky and NULL propagates */
  const char *first = sv_graph_error(g);
  char keep[512];
  snprintf(keep, sizeof keep, "%s", first);
  ck_assert_ptr_null(sv_sin(sv_add(a, b)));
  ck_assert_ptr_null(sv_mul(NULL, a));
  ck_assert_str_eq(sv_graph_error(g), keep);
  /* compile refuses a graph with an error, and says which */
  ck_assert_ptr_null(sv_compile(g, 1, &ok, 2));
  expect_error_has(sv_errmsg(), "[3,4]");
  sv_graph_free(g);
}
END_TEST

/* Other shape errors name the shapes or values involved. */
START_TEST(test_error_messages)
{
  struct {
    const char *part;
    int which;
  } cases[] = {
    {"[2,3]", 0},  /* reshape to a different element count */
    {"4", 1},      /* slice beyond the axis */
    {"7", 2},      /* gather index out of range */
    {"[2,3]", 3},  /* sum_to a shape that does not broadcast */
    {"[2,3]", 4},  /* mul with mismatched batched shapes */
  };
  for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
    sv_graph *g = sv_graph_new();
    int d[2] = {2, 3}, bd[2] = {SV_BATCH, 2}, bd3[2] = {SV_BATCH, 3};
    sv_node *a = sv_input(g, "a", 2, d), *r = NULL;
    switch (cases[c].which) {
    case 0: r = sv_reshape(a, 2, (int[]){4, 2}); break;
    case 1: r = sv_slice(a, 1, 2, 2); break;
    case 2: r = sv_gather_rows(a, 2, (int[]){0, 7}); break;
    case 3: r = sv_sum_to(a, 1, (int[]){2}); break;
    case 4:
      r = sv_mul(sv_input(g, "p", 2, bd), sv_input(g, "q", 2, bd3));
      break;
    }
    ck_assert_msg(r == NULL, "case %d: a bad op returned a node", c);
    if (cases[c].which == 4) {
      expect_error_has(sv_graph_error(g), "[B,2]");
      expect_error_has(sv_graph_error(g), "[B,3]");
    } else {
      expect_error_has(sv_graph_error(g), cases[c].part);
    }
    sv_graph_free(g);
  }
}
END_TEST

START_TEST(test_error_unbound_input)
{
  sv_graph *g = sv_graph_new();
  int d[2] = {SV_BATCH, 2};
  sv_node *x = sv_input(g, "coords", 2, d);
  sv_node *y = sv_sum_axis(sv_sin(x), 1);
  sv_plan *pl = sv_compile(g, 1, &y, 3);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  sv_clear_error();
  ck_assert_int_eq(sv_plan_run(pl), -1);
  expect_error_has(sv_errmsg(), "coords");
  ck_assert_ptr_null(sv_plan_value(pl, y));
  /* binding fixes it */
  double xd[6] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
  ck_assert_int_eq(sv_plan_bind(pl, x, xd), 0);
  run_ok(pl);
  ck_assert_double_eq_tol(value(pl, y)[2], sin(0.5) + sin(0.6), 1e-15);
  sv_plan_free(pl);
  sv_graph_free(g);
}
END_TEST

START_TEST(test_error_api_misuse)
{
  sv_graph *g = sv_graph_new(), *g2 = sv_graph_new();
  sv_params *p = sv_params_new();
  int d[2] = {SV_BATCH, 2}, pd[1] = {2};
  sv_node *x = sv_input(g, "x", 2, d), *w = sv_param(g, p, "w", 1, pd);
  sv_node *y = sv_mul(x, w), *other = sv_input(g2, "orphan", 2, d);
  double buf[4] = {0};
  ck_assert_ptr_null(sv_compile(g, 1, &y, 0)); /* batch 0 */
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "0"));
  ck_assert_ptr_null(sv_compile(g, 0, &y, 2)); /* no outputs */
  ck_assert_ptr_null(sv_compile(g, 1, &other, 2)); /* node of another graph */
  ck_assert_ptr_null(sv_add(x, other)); /* ops across graphs */
  sv_plan *pl = sv_compile(g2, 1, &other, 2);
  ck_assert_ptr_nonnull(pl);
  ck_assert_int_eq(sv_plan_bind(pl, x, buf), -1);    /* input of another graph */
  ck_assert_int_eq(sv_plan_bind(pl, other, NULL), -1); /* no data */
  expect_error_has(sv_errmsg(), "orphan");
  sv_plan_free(pl);
  /* a seed of the wrong shape */
  sv_graph *g3 = sv_graph_new();
  sv_node *a = sv_input(g3, "a", 2, (int[]){2, 3}), *s = sv_input(g3, "s", 1, (int[]){3});
  sv_node *out = NULL;
  ck_assert_int_eq(sv_vjp(sv_tanh(a), s, 1, &a, &out), -1);
  ck_assert_ptr_null(sv_grad(NULL, a));
  ck_assert_ptr_null(sv_grad(a, NULL));
  sv_graph_free(g3);
  sv_params_free(p);
  sv_graph_free(g);
  sv_graph_free(g2);
}
END_TEST

/* Fused elementwise chains give the unfused values bit for bit, on an
   array that is not a multiple of the block, with intermediate buffers
   that die inside the chain, scalars, a read of an early intermediate
   after the chain, and the chain's output read by a non-elementwise op. */
START_TEST(test_fusion_same_values)
{
  const int N = 5003;
  double *xd = malloc(N * sizeof *xd), *zd = malloc(N * sizeof *zd);
  for (int i = 0; i < N; i++) {
    xd[i] = sin(0.37 * i);
    zd[i] = cos(0.11 * i);
  }
  double *vals[2][3];
  for (int fuse = 0; fuse < 2; fuse++) {
    if (fuse)
      unsetenv("SV_FUSE");
    else
      setenv("SV_FUSE", "0", 1);
    sv_graph *g = sv_graph_new();
    int d[2] = {SV_BATCH, 1};
    sv_node *x = sv_input(g, "x", 2, d), *z = sv_input(g, "z", 2, d);
    sv_node *a = sv_tanh(sv_scale(x, 1.5));
    sv_node *b = sv_add(sv_mul(a, z), sv_exp(sv_neg(sv_square(x))));
    sv_node *c = sv_div(sv_sub(b, sv_scalar(g, 0.25)), sv_add_scalar(sv_square(z), 1.0));
    sv_node *e = sv_mul(sv_gelu(c), sv_sin(a));
    sv_node *outs[3] = {e, sv_mul(a, sv_sum(e)), sv_sum(sv_square(e))};
    sv_plan *pl = sv_compile(g, 3, outs, N);
    ck_assert_msg(pl != NULL, "%s", sv_errmsg());
    ck_assert_int_eq(sv__plan_fused_runs(pl) > 0, fuse);
    sv_plan_bind(pl, x, xd);
    sv_plan_bind(pl, z, zd);
    ck_assert_int_eq(sv_plan_run(pl), 0);
    for (int k = 0; k < 3; k++) {
      size_t m = sv_plan_size(pl, outs[k]);
      vals[fuse][k] = malloc(m * sizeof(double));
      memcpy(vals[fuse][k], sv_plan_value(pl, outs[k]), m * sizeof(double));
    }
    sv_plan_free(pl);
    sv_graph_free(g);
  }
  unsetenv("SV_FUSE");
  ck_assert(memcmp(vals[0][0], vals[1][0], N * sizeof(double)) == 0);
  ck_assert(memcmp(vals[0][1], vals[1][1], N * sizeof(double)) == 0);
  ck_assert(vals[0][2][0] == vals[1][2][0]);
  for (int f = 0; f < 2; f++)
    for (int k = 0; k < 3; k++)
      free(vals[f][k]);
  free(xd), free(zd);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Least squares                                                       */
/* ------------------------------------------------------------------ */

typedef struct {
  sv_graph *g;
  sv_params *p;
  sv_node *x, *res[2];
} lsq_model;

/* res0 = u'' + sin(x) (an ODE residual), res1 = u - x^2 (data), both [B,1];
   u'' by reverse over reverse, or in Taylor mode (jet). */
static int lsq_jet;

static void lsq_model_build(lsq_model *m, unsigned long seed)
{
  m->g = sv_graph_new();
  m->p = sv_params_new();
  int d[2] = {SV_BATCH, 1};
  m->x = sv_input(m->g, "x", 2, d);
  sv_node *u, *d2u;
  if (lsq_jet) {
    sv_jet j;
    ck_assert_msg(sv_mlp_jet(m->p, NULL, "u", m->x, 6, 2, 1, SV_ACT_TANH, 2, &j) == 0, "%s", sv_errmsg());
    u = j.u;
    d2u = j.d2u[0];
  } else {
    u = sv_mlp(m->p, "u", m->x, 6, 2, 1, SV_ACT_TANH);
    d2u = sv_grad(sv_grad(u, m->x), m->x);
  }
  m->res[0] = sv_add(d2u, sv_sin(m->x));
  m->res[1] = sv_sub(u, sv_square(m->x));
  ck_assert_msg(m->res[0] && m->res[1], "%s", sv_graph_error(m->g));
  gsl_rng *r = rng_new(seed);
  ck_assert_int_eq(sv_params_init_glorot(m->p, r), 0);
  double *t = sv_params_data(m->p);
  for (size_t j = 0; j < sv_params_count(m->p); j++)
    t[j] += 0.3 * (gsl_rng_uniform(r) - 0.5);
  gsl_rng_free(r);
}

static void lsq_model_free(lsq_model *m)
{
  sv_params_free(m->p);
  sv_graph_free(m->g);
}

/* threads: 0 or 1, one thread; T > 1, the rows split over T threads after
   the inputs are bound; -T, split before they are bound */
static void check_lsq(int rows, int rows_global, double w1, int threads)
{
  lsq_model m;
  lsq_model_build(&m, 17);
  double xd[16];
  ck_assert(rows <= 16);
  for (int i = 0; i < rows; i++)
    xd[i] = -0.9 + 1.7 * i / (rows - 1);

  /* reference residuals from a plan of our own */
  sv_plan *own = sv_compile(m.g, 2, m.res, rows);
  ck_assert_msg(own != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(sv_plan_bind(own, m.x, xd), 0);

  sv_lsq *l = sv_lsq_new(m.g, m.p, 2, m.res, rows, rows_global);
  ck_assert_msg(l != NULL, "lsq: %s", sv_errmsg());
  if (threads < 0)
    ck_assert_msg(sv_lsq_set_threads(l, -threads) == 0, "%s", sv_errmsg());
  ck_assert_int_eq(sv_lsq_bind(l, m.x, xd), 0);
  if (threads > 1)
    ck_assert_msg(sv_lsq_set_threads(l, threads) == 0, "%s", sv_errmsg());
  int T = abs(threads) > 1 ? abs(threads) : 1;
  ck_assert_int_eq(sv_lsq_threads(l), T < rows ? T : rows); /* at most one thread per row */
  if (w1 != 1.0)
    ck_assert_int_eq(sv_lsq_set_weight(l, 1, w1), 0);
  const sv_objective *obj = sv_lsq_objective(l);
  size_t n = sv_params_count(m.p), nr = 2 * (size_t)rows;
  ck_assert_uint_eq(obj->n, n);
  ck_assert_uint_eq(obj->m, nr);
  ck_assert_ptr_nonnull(obj->residuals);
  ck_assert_ptr_nonnull(obj->loss_grad);

  /* theta: a copy, so the objective must use it rather than p's data */
  double *theta = malloc(n * sizeof *theta), *r = malloc(nr * sizeof *r);
  double *J = malloc(nr * n * sizeof *J), *rp = malloc(nr * sizeof *rp), *rm = malloc(nr * sizeof *rm);
  double *grad = malloc(n * sizeof *grad), *want = malloc(n * sizeof *want);
  memcpy(theta, sv_params_data(m.p), n * sizeof *theta);

  ck_assert_msg(obj->residuals(obj->ctx, theta, r, J) == 0, "%s", sv_errmsg());
  /* r = sqrt(w_k / N) res_k, rows of residual 0 then residual 1 */
  run_ok(own);
  double wk[2] = {1.0, w1}, loss_want = 0, part_want[2] = {0, 0};
  for (int k = 0; k < 2; k++) {
    const double *v = value(own, m.res[k]);
    double s = sqrt(wk[k] / rows_global);
    for (int i = 0; i < rows; i++) {
      double rv = r[(size_t)k * rows + i];
      ck_assert_msg(fabs(rv - s * v[i]) <= 1e-13 * fmax(1, fabs(v[i])),
                    "residual %d row %d: %.17g, expected %.17g", k, i, rv, s * v[i]);
      loss_want += wk[k] * v[i] * v[i] / rows_global;
      part_want[k] += v[i] * v[i] / rows;
    }
  }

  /* J against central differences of r in theta */
  double *fdJ = malloc(nr * n * sizeof *fdJ);
  for (size_t j = 0; j < n; j++) {
    double t = theta[j];
    theta[j] = t + FD_H;
    ck_assert_int_eq(obj->residuals(obj->ctx, theta, rp, NULL), 0);
    theta[j] = t - FD_H;
    ck_assert_int_eq(obj->residuals(obj->ctx, theta, rm, NULL), 0);
    theta[j] = t;
    for (size_t i = 0; i < nr; i++)
      fdJ[i * n + j] = (rp[i] - rm[i]) / (2 * FD_H);
  }
  ck_assert_msg(maxabs(fdJ, nr * n) > 1e-2, "degenerate Jacobian");
  expect_close("lsq Jacobian vs FD", J, fdJ, nr * n, 1e-7, 0);

  /* all rows in one batched pass (the default for this graph) against one
     batch-1 pass per row */
  ck_assert_msg(sv__lsq_batched_jacobian(l, -1) == 1, "the batched Jacobian is not in use");
  double *J1 = malloc(nr * n * sizeof *J1), *r1 = malloc(nr * sizeof *r1);
  sv__lsq_batched_jacobian(l, 0);
  ck_assert_int_eq(obj->residuals(obj->ctx, theta, r1, J1), 0);
  sv__lsq_batched_jacobian(l, 1);
  expect_close("lsq Jacobian: batched vs row by row", J, J1, nr * n, 1e-13, 0);
  expect_close("lsq residuals: batched vs row by row", r, r1, nr, 1e-14, 0);
  free(J1), free(r1);

  /* the batch plan's loss and gradient: |r|^2 and 2 J^T r */
  double loss;
  ck_assert_msg(obj->loss_grad(obj->ctx, theta, &loss, grad) == 0, "%s", sv_errmsg());
  double rr = 0;
  for (size_t i = 0; i < nr; i++)
    rr += r[i] * r[i];
  ck_assert_msg(fabs(loss - rr) <= 1e-13 * rr, "loss %.17g, |r|^2 %.17g", loss, rr);
  ck_assert_msg(fabs(loss - loss_want) <= 1e-13 * loss_want, "loss %.17g, expected %.17g", loss,
                loss_want);
  for (size_t j = 0; j < n; j++) {
    want[j] = 0;
    for (size_t i = 0; i < nr; i++)
      want[j] += 2 * J[i * n + j] * r[i];
  }
  expect_close("lsq gradient vs 2 J^T r", grad, want, n, 1e-12, 0);
  for (int k = 0; k < 2; k++)
    ck_assert_msg(fabs(sv_lsq_last_part(l, k) - part_want[k]) <= 1e-13 * part_want[k],
                  "last part %d: %.17g, expected %.17g", k, sv_lsq_last_part(l, k), part_want[k]);
  /* no gradient asked: loss only */
  double loss2;
  ck_assert_int_eq(obj->loss_grad(obj->ctx, theta, &loss2, NULL), 0);
  ck_assert(loss2 == loss);

  free(theta);
  free(r);
  free(J);
  free(rp);
  free(rm);
  free(grad);
  free(want);
  free(fdJ);
  sv_lsq_free(l);
  sv_plan_free(own);
  lsq_model_free(&m);
}

START_TEST(test_lsq_jacobian) { check_lsq(5, 5, 1.0, 0); }
END_TEST
START_TEST(test_lsq_jacobian_jet)
{
  lsq_jet = 1;
  check_lsq(5, 5, 1.0, 0);
  check_lsq(4, 9, 3.0, 0);
  lsq_jet = 0;
}
END_TEST
START_TEST(test_lsq_weights_share) { check_lsq(4, 9, 3.0, 0); } /* this rank's 4 of 9 rows */
END_TEST
/* the thread pool: every task runs once per run, on many runs; a task
   failing on a worker thread hands its message to the caller */
static int square_task(void *ctx, int i)
{
  int *out = ctx;
  out[i] += i * i;
  return 0;
}
static int fail_on_2(void *ctx, int i)
{
  (void)ctx;
  return i == 2 ? sv_fail("task %d failed", i) : 0;
}
START_TEST(test_thread_pool)
{
  sv__pool *p = sv__pool_new(4);
  ck_assert_msg(p != NULL, "%s", sv_errmsg());
  int out[4] = {0, 0, 0, 0};
  for (int run = 0; run < 1000; run++)
    ck_assert_int_eq(sv__pool_run(p, square_task, out), 0);
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(out[i], 1000 * i * i);
  sv_clear_error();
  ck_assert_int_eq(sv__pool_run(p, fail_on_2, NULL), -1);
  expect_error_has(sv_errmsg(), "task 2 failed");
  ck_assert_int_eq(sv__pool_run(p, square_task, out), 0); /* still usable */
  sv__pool_free(p);
  ck_assert_ptr_null(sv__pool_new(0));
}
END_TEST

/* the rows split over threads: every check above holds to the same
   tolerances (residuals, Jacobian against differences and row by row,
   loss, gradient, parts) */
START_TEST(test_lsq_threads)
{
  check_lsq(5, 5, 1.0, 2);
  check_lsq(4, 9, 3.0, -3);
  check_lsq(3, 3, 1.0, 8); /* more threads than rows: one row each */
  lsq_jet = 1;
  check_lsq(7, 7, 1.0, 2);
  check_lsq(6, 11, 3.0, -4);
  lsq_jet = 0;
}
END_TEST

START_TEST(test_lsq_refuses_mixing)
{
  lsq_model m;
  lsq_model_build(&m, 2);
  /* u minus its batch mean: every row depends on all rows */
  sv_node *bad = sv_sub(m.res[1], sv_mean(m.res[1]));
  ck_assert_ptr_nonnull(bad);
  ck_assert_ptr_null(sv_lsq_new(m.g, m.p, 1, &bad, 4, 4));
  expect_error_has(sv_errmsg(), "mixes rows");
  /* a residual with more than one value per row */
  sv_node *wide = sv_concat(2, m.res, 1);
  ck_assert_ptr_null(sv_lsq_new(m.g, m.p, 1, &wide, 4, 4));
  ck_assert_ptr_null(sv_lsq_new(m.g, m.p, 2, m.res, 5, 4)); /* rows > rows_global */
  sv_lsq *l = sv_lsq_new(m.g, m.p, 2, m.res, 3, 3);
  ck_assert_msg(l != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(sv_lsq_set_weight(l, 2, 1.0), -1);
  ck_assert_int_eq(sv_lsq_set_weight(l, 0, -1.0), -1);
  ck_assert_int_eq(sv_lsq_set_weight(l, 0, NAN), -1);
  /* unbound input: an error naming it, not a crash */
  const sv_objective *obj = sv_lsq_objective(l);
  double r[6];
  ck_assert_int_eq(obj->residuals(obj->ctx, sv_params_data(m.p), r, NULL), -1);
  expect_error_has(sv_errmsg(), "x");
  /* the same from a worker thread: its message reaches the caller */
  ck_assert_int_eq(sv_lsq_set_threads(l, 0), -1);
  ck_assert_int_eq(sv_lsq_set_threads(l, 3), 0);
  sv_clear_error();
  ck_assert_int_eq(obj->residuals(obj->ctx, sv_params_data(m.p), r, NULL), -1);
  expect_error_has(sv_errmsg(), "x");
  double loss;
  ck_assert_int_eq(obj->loss_grad(obj->ctx, sv_params_data(m.p), &loss, NULL), -1);
  expect_error_has(sv_errmsg(), "x");
  sv_lsq_free(l);
  lsq_model_free(&m);
}
END_TEST

/* The issue asks for GSL and the core on OpenBLAS's CBLAS: Debian's libgsl
   also pulls in the slow reference libgslcblas, so check which library
   cblas_dgemm actually binds to in this process. */
START_TEST(test_blas_is_openblas)
{
  Dl_info info;
  void (*fn)(void) = (void (*)(void))cblas_dgemm;
  ck_assert_int_ne(dladdr(*(void **)&fn, &info), 0);
  ck_assert_ptr_nonnull(info.dli_fname);
  ck_assert_msg(strstr(info.dli_fname, "openblas") != NULL, "cblas_dgemm comes from %s", info.dli_fname);
}
END_TEST

/* ------------------------------------------------------------------ */

static Suite *graph_suite(void)
{
  Suite *s = suite_create("graph");
  TCase *tc = tcase_create("compile");
  tcase_add_test(tc, test_compile_drops_unused);
  tcase_add_test(tc, test_plan_rerun);
  tcase_add_test(tc, test_batch_sizes_agree);
  suite_add_tcase(s, tc);
  tc = tcase_create("pinn");
  tcase_add_test(tc, test_pinn_pattern);
  suite_add_tcase(s, tc);
  tc = tcase_create("errors");
  tcase_add_test(tc, test_error_shapes);
  tcase_add_test(tc, test_error_messages);
  tcase_add_test(tc, test_error_unbound_input);
  tcase_add_test(tc, test_error_api_misuse);
  suite_add_tcase(s, tc);
  tc = tcase_create("blas");
  tcase_add_test(tc, test_blas_is_openblas);
  suite_add_tcase(s, tc);
  tc = tcase_create("lsq");
  tcase_add_test(tc, test_fusion_same_values);
  tcase_add_test(tc, test_lsq_jacobian);
  tcase_add_test(tc, test_lsq_jacobian_jet);
  tcase_add_test(tc, test_lsq_weights_share);
  tcase_add_test(tc, test_lsq_threads);
  tcase_add_test(tc, test_thread_pool);
  tcase_add_test(tc, test_lsq_refuses_mixing);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(graph_suite()); /* fork mode unless CK_FORK=no */
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
