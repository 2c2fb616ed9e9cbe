/*
 * test_jet.c -- Taylor-mode MLPs (sv_mlp_jet): u, du/dx_k and d2u/dx_k^2
 * against today's reverse-over-reverse derivative nodes (sv_grad of
 * sv_grad) to 1e-13, and against finite differences of u; the weight
 * gradient of a PINN-style loss on u'' against the reverse-over-reverse
 * one; for every activation, one and two input directions, order 1 and 2.
 */
#include <solver.h>

#include <check.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPTS 7

static const sv_activation acts[] = {SV_ACT_TANH, SV_ACT_SIN, SV_ACT_SIGMOID, SV_ACT_SOFTPLUS};
#define NACT 4

static double relerr(const double *a, const double *b, size_t n)
{
  double m = 0, s = 0;
  for (size_t i = 0; i < n; i++) {
    m = fmax(m, fabs(a[i] - b[i]));
    s = fmax(s, fabs(b[i]));
  }
  return m / fmax(s, 1e-300);
}

typedef struct {
  sv_graph *g;
  sv_params *p;
  sv_node *x;
  sv_jet jet;
  sv_node *u, *du[SV_JET_MAX_DIRS], *d2u[SV_JET_MAX_DIRS]; /* reverse mode */
  double xd[NPTS * SV_JET_MAX_DIRS];
} fixture;

/* The same network twice: in Taylor mode and as sv_mlp_at with
   reverse-over-reverse derivatives (the blocks are shared by name). */
static void build(fixture *f, sv_activation act, int d, int order, int width, int depth)
{
  f->g = sv_graph_new();
  f->p = sv_params_new();
  int dims[2] = {SV_BATCH, d};
  f->x = sv_input(f->g, "x", 2, dims);
  ck_assert_msg(sv_mlp_jet(f->p, NULL, "net", f->x, width, depth, 1, act, order, &f->jet) == 0, "%s",
                sv_errmsg());
  f->u = sv_mlp_at(f->p, NULL, "net", f->x, width, depth, 1, act);
  sv_node *gx = sv_grad(f->u, f->x); /* [B, d] */
  for (int k = 0; k < d; k++) {
    f->du[k] = sv_slice(gx, 1, k, 1);
    f->d2u[k] = order == 2 ? sv_slice(sv_grad(f->du[k], f->x), 1, k, 1) : NULL;
  }
  ck_assert_msg(sv_graph_error(f->g) == NULL, "%s", sv_graph_error(f->g));
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, 2024);
  sv_params_init_glorot(f->p, r);
  /* biases nonzero, so that the bias path of the jets is exercised */
  double *th = sv_params_data(f->p);
  for (size_t i = 0; i < sv_params_count(f->p); i++)
    if (th[i] == 0)
      th[i] = 0.3 * (2 * gsl_rng_uniform(r) - 1);
  for (int i = 0; i < NPTS * d; i++)
    f->xd[i] = 2 * gsl_rng_uniform(r) - 1;
  gsl_rng_free(r);
}

static void destroy(fixture *f)
{
  sv_params_free(f->p);
  sv_graph_free(f->g);
}

static void values(sv_plan *pl, sv_node *n, double *out)
{
  const double *v = sv_plan_value(pl, n);
  ck_assert_msg(v != NULL, "no value: %s", sv_errmsg());
  memcpy(out, v, NPTS * sizeof *out);
}

START_TEST(test_jet_vs_reverse)
{
  int act = _i % NACT, d = 1 + (_i / NACT) % 2, order = 1 + _i / (2 * NACT);
  fixture f;
  build(&f, acts[act], d, order, 6, 2);
  sv_node *outs[2 + 4 * SV_JET_MAX_DIRS];
  int no = 0;
  outs[no++] = f.jet.u;
  outs[no++] = f.u;
  for (int k = 0; k < d; k++) {
    outs[no++] = f.jet.du[k];
    outs[no++] = f.du[k];
    if (order == 2) {
      outs[no++] = f.jet.d2u[k];
      outs[no++] = f.d2u[k];
    }
  }
  sv_plan *pl = sv_compile(f.g, no, outs, NPTS);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  sv_plan_bind(pl, f.x, f.xd);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  char tag[96];
  snprintf(tag, sizeof tag, "%s d=%d order=%d", sv_activation_name(acts[act]), d, order);
  for (int o = 0; o < no; o += 2) {
    double a[NPTS], b[NPTS];
    values(pl, outs[o], a);
    values(pl, outs[o + 1], b);
    double e = relerr(a, b, NPTS);
    ck_assert_msg(e <= 1e-13, "%s: output %d: jet vs reverse-over-reverse %.3g", tag, o / 2, e);
  }

  /* finite differences of u along each input axis */
  sv_plan *pu = sv_compile(f.g, 1, &f.jet.u, NPTS);
  double h = 1e-4, xs[NPTS * SV_JET_MAX_DIRS];
  for (int k = 0; k < d; k++) {
    double up[NPTS], um[NPTS], u0[NPTS], fd1[NPTS], fd2[NPTS], j1[NPTS], j2[NPTS];
    memcpy(xs, f.xd, sizeof xs);
    sv_plan_bind(pu, f.x, xs);
    for (int sgn = -1; sgn <= 1; sgn++) {
      for (int i = 0; i < NPTS; i++)
        xs[i * d + k] = f.xd[i * d + k] + sgn * h;
      ck_assert_int_eq(sv_plan_run(pu), 0);
      values(pu, f.jet.u, sgn < 0 ? um : sgn > 0 ? up : u0);
    }
    values(pl, f.jet.du[k], j1);
    for (int i = 0; i < NPTS; i++) {
      fd1[i] = (up[i] - um[i]) / (2 * h);
      fd2[i] = (up[i] - 2 * u0[i] + um[i]) / (h * h);
    }
    ck_assert_msg(relerr(j1, fd1, NPTS) < 1e-7, "%s: du/dx%d vs differences %.3g", tag, k,
                  relerr(j1, fd1, NPTS));
    if (order == 2) {
      /* the second difference errs by ~h^2 u''''/12 + eps |u| / h^2: scale
         by |u| too, since u'' may be far smaller than u (sigmoid nets) */
      double err = 0, scale = 0;
      values(pl, f.jet.d2u[k], j2);
      for (int i = 0; i < NPTS; i++) {
        err = fmax(err, fabs(j2[i] - fd2[i]));
        scale = fmax(scale, fmax(fabs(fd2[i]), fabs(u0[i])));
      }
      ck_assert_msg(err < 1e-6 * scale, "%s: d2u/dx%d^2 vs differences %.3g", tag, k, err / scale);
    }
  }
  sv_plan_free(pu);
  sv_plan_free(pl);
  destroy(&f);
}
END_TEST

/* The weight gradient of mean((u'' + u)^2 + (u')^2) through the jets equals
   the one through reverse-over-reverse, and differences of the loss. */
START_TEST(test_jet_weight_gradient)
{
  fixture f;
  build(&f, acts[_i], 1, 2, 8, 3);
  sv_node *lj = sv_mean(sv_add(sv_square(sv_add(f.jet.d2u[0], f.jet.u)), sv_square(f.jet.du[0])));
  sv_node *lr = sv_mean(sv_add(sv_square(sv_add(f.d2u[0], f.u)), sv_square(f.du[0])));
  sv_node *gj = sv_grad_params(lj, f.p), *gr = sv_grad_params(lr, f.p);
  sv_node *outs[4] = {lj, lr, gj, gr};
  sv_plan *pl = sv_compile(f.g, 4, outs, NPTS);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  sv_plan_bind(pl, f.x, f.xd);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  size_t n = sv_params_count(f.p);
  double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  memcpy(a, sv_plan_value(pl, gj), n * sizeof *a);
  memcpy(b, sv_plan_value(pl, gr), n * sizeof *b);
  double l0 = sv_plan_value(pl, lj)[0];
  ck_assert_msg(fabs(l0 - sv_plan_value(pl, lr)[0]) <= 1e-13 * fabs(l0), "loss differs");
  ck_assert_msg(relerr(a, b, n) <= 1e-13, "%s: weight gradient jet vs reverse %.3g",
                sv_activation_name(acts[_i]), relerr(a, b, n));
  double *th = sv_params_data(f.p), h = 1e-6, maxerr = 0, maxg = 0;
  for (size_t i = 0; i < n; i++) {
    double t0 = th[i];
    th[i] = t0 + h;
    sv_plan_run(pl);
    double fp = sv_plan_value(pl, lj)[0];
    th[i] = t0 - h;
    sv_plan_run(pl);
    double fm = sv_plan_value(pl, lj)[0];
    th[i] = t0;
    maxerr = fmax(maxerr, fabs((fp - fm) / (2 * h) - a[i]));
    maxg = fmax(maxg, fabs(a[i]));
  }
  ck_assert_msg(maxerr <= 1e-7 * maxg, "%s: weight gradient vs differences %.3g",
                sv_activation_name(acts[_i]), maxerr / maxg);
  free(a), free(b);
  sv_plan_free(pl);
  destroy(&f);
}
END_TEST

/* Second-order rules of the fused jet nodes: the Hessian-vector product of
   the loss w.r.t. the weights, against differences of the gradient. */
START_TEST(test_jet_weight_hessian)
{
  fixture f;
  build(&f, acts[_i], 1, 2, 4, 2); /* depth 2: a hidden layer whose d2 rows reach a weight */
  sv_node *lj = sv_mean(sv_square(sv_add(f.jet.d2u[0], f.jet.u)));
  int n = (int)sv_params_count(f.p);
  sv_node *v = sv_input(f.g, "v", 1, &n);
  sv_node *gj = sv_grad_params(lj, f.p), *hv = sv_grad_params(sv_sum(sv_mul(gj, v)), f.p);
  sv_node *outs[2] = {gj, hv};
  sv_plan *pl = sv_compile(f.g, 2, outs, NPTS);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  double *vd = malloc((size_t)n * sizeof *vd), *h0 = malloc((size_t)n * sizeof *h0);
  double *gp = malloc((size_t)n * sizeof *gp), *gm = malloc((size_t)n * sizeof *gm);
  double *fd = malloc((size_t)n * sizeof *fd);
  for (int i = 0; i < n; i++)
    vd[i] = sin(1.0 + i);
  sv_plan_bind(pl, f.x, f.xd);
  sv_plan_bind(pl, v, vd);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  memcpy(h0, sv_plan_value(pl, hv), (size_t)n * sizeof *h0);
  double hmax = 0;
  for (int i = 0; i < n; i++)
    hmax = fmax(hmax, fabs(h0[i]));
  ck_assert_msg(hmax > 1e-3, "the Hessian-vector product is %g: nothing was tested", hmax);
  double *th = sv_params_data(f.p), h = 1e-6;
  for (int s = 0; s < 2; s++) {
    for (int i = 0; i < n; i++)
      th[i] += (s ? -2 : 1) * h * vd[i];
    sv_plan_run(pl);
    memcpy(s ? gm : gp, sv_plan_value(pl, gj), (size_t)n * sizeof *gp);
  }
  for (int i = 0; i < n; i++) {
    th[i] += h * vd[i];
    fd[i] = (gp[i] - gm[i]) / (2 * h);
  }
  ck_assert_msg(relerr(h0, fd, (size_t)n) <= 1e-6, "%s: weight Hessian-vector product vs differences %.3g",
                sv_activation_name(acts[_i]), relerr(h0, fd, (size_t)n));
  free(vd), free(h0), free(gp), free(gm), free(fd);
  sv_plan_free(pl);
  destroy(&f);
}
END_TEST

START_TEST(test_jet_errors)
{
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  int d4[2] = {SV_BATCH, 4}, d1[2] = {SV_BATCH, 1};
  sv_jet j;
  ck_assert_int_eq(sv_mlp_jet(p, NULL, "a", sv_input(g, "x4", 2, d4), 4, 1, 1, SV_ACT_TANH, 2, &j), -1);
  ck_assert_msg(strstr(sv_errmsg(), "d <= 3"), "%s", sv_errmsg());
  ck_assert_int_eq(sv_mlp_jet(p, NULL, "b", sv_input(g, "x1", 2, d1), 4, 1, 1, SV_ACT_TANH, 3, &j), -1);
  ck_assert_msg(strstr(sv_errmsg(), "order 3"), "%s", sv_errmsg());
  sv_params_free(p);
  sv_graph_free(g);
}
END_TEST

static Suite *jet_suite(void)
{
  Suite *s = suite_create("jet");
  TCase *tc = tcase_create("jet");
  tcase_add_loop_test(tc, test_jet_vs_reverse, 0, 4 * NACT);
  tcase_add_loop_test(tc, test_jet_weight_gradient, 0, NACT);
  tcase_add_loop_test(tc, test_jet_weight_hessian, 0, NACT);
  tcase_add_test(tc, test_jet_errors);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(jet_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
