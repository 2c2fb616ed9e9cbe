/*
 * test_pinn_jet.c -- the PINN helper's jet algebra (plugins/pinn/
 * jet_algebra.c): every rule (add, sub, mul, div, scale, add_scalar, neg,
 * square, exp, pow, chain, normalize, and a network's jet composed through
 * the chain rule) on compositions like the plugins' trial solutions,
 * against reverse over reverse (sv_grad of sv_grad of the value) to
 * 1e-13, and against central finite differences of the value and of the
 * first derivative; order-1 jets carry no second derivative.
 */
#include "pinn.h"

#include <solver.h>

#include <check.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>

#define NPTS 9

/* The jet of the input itself: x' = 1, x'' = 0. */
static pinn_jet input_jet(sv_node *x, int order)
{
  pinn_jet j = {x, {NULL, NULL}, {1, 0}, order};
  return j;
}

typedef struct {
  sv_graph *g;
  sv_params *p;
  sv_node *x;
} fixture;

static void setup_fixture(fixture *f)
{
  f->g = sv_graph_new();
  f->p = sv_params_new();
  int dims[2] = {SV_BATCH, 1};
  f->x = sv_input(f->g, "x", 2, dims);
  ck_assert(f->g && f->p && f->x);
}

/* The expressions, of x in [0.6, 2.2] (positive, for div and pow). */
enum { E_PHI, E_QUOT, E_POLY, E_NET, E_COUNT };

static pinn_jet expression(fixture *f, int which, int order)
{
  pinn_jet x = input_jet(f->x, order);
  switch (which) {
  case E_PHI: {
    /* (1 - exp(-(x + 1))) sin(x) - 1: the Legendre constraint, chain */
    pinn_jet phi = pinn_jet_add_scalar(
        pinn_jet_neg(pinn_jet_exp(pinn_jet_neg(pinn_jet_add_scalar(x, 1.0)))), 1.0);
    pinn_jet s = pinn_jet_chain(x, sv_sin(f->x), sv_cos(f->x), sv_neg(sv_sin(f->x)));
    return pinn_jet_add_scalar(pinn_jet_mul(phi, s), -1);
  }
  case E_QUOT: {
    /* 0.3 (x/3)^(-0.7) exp(-((3 - x)/x) x^2) + rho_b + g exp(-x): the
       accretion trial solutions' div, pow, exp */
    pinn_jet g = pinn_jet_div(pinn_jet_add_scalar(pinn_jet_neg(x), 3), x);
    pinn_jet v = pinn_jet_mul(pinn_jet_scale(pinn_jet_pow(pinn_jet_scale(x, 1 / 3.0), -0.7), 0.3),
                              pinn_jet_exp(pinn_jet_neg(pinn_jet_mul(g, pinn_jet_square(x)))));
    pinn_jet w = pinn_jet_mul(g, pinn_jet_exp(pinn_jet_neg(x)));
    return pinn_jet_add(pinn_jet_add_scalar(v, 0.1), pinn_jet_div(w, pinn_jet_pow(x, 2.5)));
  }
  case E_POLY: {
    /* 1 - x/2 - x^2/8 - x^3/16 - x^4: the khronon's Taylor polynomial,
       sub, normalize */
    pinn_jet x2 = pinn_jet_square(x);
    pinn_jet p = pinn_jet_add_scalar(
        pinn_jet_add(pinn_jet_add(pinn_jet_scale(x, -0.5), pinn_jet_scale(x2, -0.125)),
                     pinn_jet_scale(pinn_jet_mul(x2, x), -1.0 / 16)),
        1);
    return pinn_jet_sub(p, pinn_jet_mul(pinn_jet_square(x2), pinn_jet_normalize(x, 0.5, 2.5)));
  }
  default: {
    /* 1 + x N(s(x)), N a 3 x 8 tanh network of s = normalize(x): the
       hypergeometric trial solution, the network's jet composed */
    pinn_jet s = pinn_jet_normalize(x, 0, 2.5);
    sv_jet J;
    ck_assert_msg(sv_mlp_jet(f->p, NULL, "net", s.v, 8, 3, 1, SV_ACT_TANH, order, &J) == 0, "%s",
                  sv_errmsg());
    pinn_jet N = pinn_jet_chain(s, J.u, J.du[0], J.d2u[0]);
    return pinn_jet_add_scalar(pinn_jet_mul(x, N), 1);
  }
  }
}

static void init_params(fixture *f)
{
  if (sv_params_count(f->p) == 0)
    return;
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, 7);
  sv_params_init_glorot(f->p, r);
  double *th = sv_params_data(f->p);
  for (size_t i = 0; i < sv_params_count(f->p); i++)
    if (th[i] == 0) /* nonzero biases */
      th[i] = 0.3 * (2 * gsl_rng_uniform(r) - 1);
  gsl_rng_free(r);
}

/* Evaluate nodes[0..k) at n points. */
static void eval(fixture *f, int k, sv_node **nodes, int n, const double *x, double **out)
{
  sv_plan *pl = sv_compile(f->g, k, nodes, n);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(sv_plan_bind(pl, f->x, x), 0);
  ck_assert_msg(sv_plan_run(pl) == 0, "%s", sv_errmsg());
  for (int i = 0; i < k; i++) {
    const double *v = sv_plan_value(pl, nodes[i]);
    ck_assert(v != NULL);
    for (int j = 0; j < n; j++)
      out[i][j] = v[j];
  }
  sv_plan_free(pl);
}

static double scale_of(const double *v, int n)
{
  double s = 0;
  for (int i = 0; i < n; i++)
    s = fmax(s, fabs(v[i]));
  return fmax(s, 1e-300);
}

START_TEST(jet_rules_against_reverse_and_fd) {
  int which = _i;
  fixture f;
  setup_fixture(&f);
  pinn_jet y = expression(&f, which, 2);
  ck_assert_msg(sv_graph_error(f.g) == NULL, "%s", sv_graph_error(f.g));
  ck_assert_int_eq(y.order, 2);
  sv_node *d1 = pinn_jet_node(&y, 0), *d2 = pinn_jet_node(&y, 1);
  sv_node *r1 = sv_grad(y.v, f.x), *r2 = sv_grad(r1, f.x);
  ck_assert_msg(d1 && d2 && r1 && r2, "%s", sv_graph_error(f.g) ? sv_graph_error(f.g) : "");
  init_params(&f);

  /* the points and their +-h neighbours */
  const double h = 1e-5;
  double x[3 * NPTS];
  for (int i = 0; i < NPTS; i++) {
    double xi = 0.6 + 1.6 * i / (NPTS - 1);
    x[i] = xi;
    x[NPTS + i] = xi - h;
    x[2 * NPTS + i] = xi + h;
  }
  double v[3 * NPTS], a1[3 * NPTS], a2[3 * NPTS], b1[3 * NPTS], b2[3 * NPTS];
  sv_node *nodes[5] = {y.v, d1, d2, r1, r2};
  double *out[5] = {v, a1, a2, b1, b2};
  eval(&f, 5, nodes, 3 * NPTS, x, out);

  double s1 = scale_of(b1, NPTS), s2 = scale_of(b2, NPTS);
  for (int i = 0; i < NPTS; i++) {
    /* Taylor mode against reverse over reverse: round-off */
    ck_assert_msg(fabs(a1[i] - b1[i]) <= 1e-13 * s1, "expr %d x = %g: y' jet %.17g reverse %.17g",
                  which, x[i], a1[i], b1[i]);
    ck_assert_msg(fabs(a2[i] - b2[i]) <= 1e-13 * s2,
                  "expr %d x = %g: y'' jet %.17g reverse %.17g", which, x[i], a2[i], b2[i]);
    /* against central differences (error h^2 f''' / 6 plus round-off) */
    double fd1 = (v[2 * NPTS + i] - v[NPTS + i]) / (2 * h);
    double fd2 = (a1[2 * NPTS + i] - a1[NPTS + i]) / (2 * h);
    ck_assert_msg(fabs(a1[i] - fd1) <= 1e-7 * fmax(s1, 1), "expr %d x = %g: y' %.12g, fd %.12g",
                  which, x[i], a1[i], fd1);
    ck_assert_msg(fabs(a2[i] - fd2) <= 1e-7 * fmax(s2, 1), "expr %d x = %g: y'' %.12g, fd %.12g",
                  which, x[i], a2[i], fd2);
  }
  sv_params_free(f.p);
  sv_graph_free(f.g);
}
END_TEST

/* Order 1: the first derivative only, equal to reverse mode. */
START_TEST(jet_order_one) {
  int which = _i;
  fixture f;
  setup_fixture(&f);
  pinn_jet y = expression(&f, which, 1);
  ck_assert_int_eq(y.order, 1);
  ck_assert(pinn_jet_node(&y, 1) == NULL);
  sv_node *d1 = pinn_jet_node(&y, 0), *r1 = sv_grad(y.v, f.x);
  ck_assert_msg(d1 && r1, "%s", sv_graph_error(f.g) ? sv_graph_error(f.g) : "");
  init_params(&f);
  double x[NPTS], a1[NPTS], b1[NPTS];
  for (int i = 0; i < NPTS; i++)
    x[i] = 0.6 + 1.6 * i / (NPTS - 1);
  sv_node *nodes[2] = {d1, r1};
  double *out[2] = {a1, b1};
  eval(&f, 2, nodes, NPTS, x, out);
  double s1 = scale_of(b1, NPTS);
  for (int i = 0; i < NPTS; i++)
    ck_assert_msg(fabs(a1[i] - b1[i]) <= 1e-13 * s1, "expr %d x = %g: %.17g vs %.17g", which,
                  x[i], a1[i], b1[i]);
  sv_params_free(f.p);
  sv_graph_free(f.g);
}
END_TEST

/* Order 0 (reverse mode): values only, the same nodes as plain ops. */
START_TEST(jet_order_zero_is_values_only) {
  fixture f;
  setup_fixture(&f);
  pinn_jet y = expression(&f, E_QUOT, 0);
  ck_assert_int_eq(y.order, 0);
  ck_assert(y.v != NULL);
  ck_assert(pinn_jet_node(&y, 0) == NULL);
  sv_graph_free(f.g);
  sv_params_free(f.p);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("pinn_jet");
  TCase *t = tcase_create("rules");
  tcase_add_loop_test(t, jet_rules_against_reverse_and_fd, 0, E_COUNT);
  tcase_add_loop_test(t, jet_order_one, 0, E_COUNT);
  tcase_add_test(t, jet_order_zero_is_values_only);
  suite_add_tcase(s, t);
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
