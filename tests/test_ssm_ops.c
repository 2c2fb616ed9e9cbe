/*
 * test_ssm_ops.c -- the ops the state-space models added to the core:
 * sv_vandermonde (the S4D kernel), sv_atan2 (the phase of a bilinear
 * Abar), sv_glu (the gated channel mixing) and the fused layer-norm
 * derivative. In the manner of test_ops.c:
 *
 *   - values against direct sums with exp, cos and sin (O(H M L), 1e-12
 *     relative up to L = 1000; 1-D and 2-D shapes; an odd number of modes
 *     so that the kernel's blocks of 8 have a tail);
 *   - for f1 = sum(w * y) and f2 = sum(w * y * y) with random w: the
 *     gradient w.r.t. every input against central differences, and the
 *     Hessian-vector product against differences of the gradient (so the
 *     rules of the derivative ops, the transposed sums T_p and T_{p+1},
 *     are checked too), and a third-order check: the gradient of
 *     sum(v * grad f2) against its differences (T_{p+2});
 *   - shape errors refused with a message.
 */
#include <solver.h>

#include <check.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXX 4
static const double FD_H = 1e-6;

typedef sv_node *(*build_fn)(sv_node *const *x, int L);

typedef struct {
  const char *name;
  int nx, ndim, dims[2]; /* every input has this shape */
  int L;
  double lo[MAXX], hi[MAXX];
  build_fn build;
} tcase;

static sv_node *build_vand(sv_node *const *x, int L) { return sv_vandermonde(x[0], x[1], x[2], x[3], L); }
static sv_node *build_glu(sv_node *const *x, int L)
{
  (void)L;
  return sv_glu(x[0]);
}
static sv_node *build_layer_norm(sv_node *const *x, int L)
{
  (void)L;
  return sv_layer_norm(x[0], 1, 1e-5);
}
static sv_node *build_atan2(sv_node *const *x, int L)
{
  (void)L;
  return sv_atan2(x[0], x[1]);
}

/* |got - want| <= tol * max(1, max |want|) */
static void expect_close(const char *tag, const char *what, const double *got, const double *want,
                         size_t n, double tol)
{
  double scale = 1;
  for (size_t k = 0; k < n; k++)
    scale = fmax(scale, fabs(want[k]));
  ck_assert_msg(got != NULL, "%s: %s: no value", tag, what);
  for (size_t k = 0; k < n; k++)
    ck_assert_msg(fabs(got[k] - want[k]) <= tol * scale,
                  "%s: %s[%zu] = %.17g, expected %.17g (diff %.3g, tol %.3g)", tag, what, k,
                  got[k], want[k], fabs(got[k] - want[k]), tol * scale);
}

/* y of the vandermonde case directly: sum_m Re(c e^{l s}) with libm */
static void ref_vand(int H, int M, int L, double *const *x, double *y)
{
  for (int h = 0; h < H; h++)
    for (int l = 0; l < L; l++) {
      double s = 0;
      for (int m = 0; m < M; m++) {
        int q = h * M + m;
        double e = exp(l * x[2][q]), a = l * x[3][q];
        s += e * (x[0][q] * cos(a) - x[1][q] * sin(a));
      }
      y[h * L + l] = s;
    }
}

static void check_derivatives(const tcase *c, unsigned long seed)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed);
  sv_graph *g = sv_graph_new();
  sv_node *x[MAXX], *v[MAXX];
  size_t n = (size_t)c->dims[0] * (c->ndim == 2 ? (size_t)c->dims[1] : 1);
  double *xd[MAXX], *x0[MAXX], *vd[MAXX];
  for (int i = 0; i < c->nx; i++) {
    char nm[8];
    snprintf(nm, sizeof nm, "x%d", i);
    x[i] = sv_input(g, nm, c->ndim, c->dims);
    snprintf(nm, sizeof nm, "v%d", i);
    v[i] = sv_input(g, nm, c->ndim, c->dims);
    xd[i] = malloc(n * sizeof(double));
    x0[i] = malloc(n * sizeof(double));
    vd[i] = malloc(n * sizeof(double));
    for (size_t k = 0; k < n; k++) {
      xd[i][k] = x0[i][k] = c->lo[i] + (c->hi[i] - c->lo[i]) * gsl_rng_uniform(rng);
      vd[i][k] = 2 * gsl_rng_uniform(rng) - 1;
    }
  }
  sv_node *y = c->build(x, c->L);
  ck_assert_msg(y != NULL, "%s: %s", c->name, sv_graph_error(g));
  size_t ny = 1;
  int yd[2];
  for (int a = 0; a < sv_ndim(y); a++)
    ny *= (size_t)(yd[a] = sv_dim(y, a));
  double *wd = malloc(ny * sizeof(double));
  for (size_t k = 0; k < ny; k++)
    wd[k] = 2 * gsl_rng_uniform(rng) - 1;
  sv_node *w = sv_input(g, "w", sv_ndim(y), yd);
  sv_node *f[2] = {sv_sum(sv_mul(w, y)), sv_sum(sv_mul(w, sv_mul(y, y)))};
  sv_node *gr[2][MAXX], *hv[2][MAXX], *t3[MAXX];
  for (int o = 0; o < 2; o++) {
    sv_node *s = NULL;
    for (int i = 0; i < c->nx; i++) {
      gr[o][i] = sv_grad(f[o], x[i]);
      sv_node *t = sv_sum(sv_mul(gr[o][i], v[i]));
      s = s ? sv_add(s, t) : t;
    }
    ck_assert_int_eq(sv_vjp(s, NULL, c->nx, x, hv[o]), 0);
  }
  /* third order: d/dx sum(v * (H v)) of f2 */
  sv_node *s3 = NULL;
  for (int i = 0; i < c->nx; i++) {
    sv_node *t = sv_sum(sv_mul(hv[1][i], v[i]));
    s3 = s3 ? sv_add(s3, t) : t;
  }
  ck_assert_int_eq(sv_vjp(s3, NULL, c->nx, x, t3), 0);
  ck_assert_msg(sv_graph_error(g) == NULL, "%s: %s", c->name, sv_graph_error(g));
  sv_node *outs[3 + 5 * MAXX];
  int no = 0;
  outs[no++] = y;
  outs[no++] = f[0];
  outs[no++] = f[1];
  for (int i = 0; i < c->nx; i++) {
    outs[no++] = gr[0][i];
    outs[no++] = gr[1][i];
    outs[no++] = hv[0][i];
    outs[no++] = hv[1][i];
    outs[no++] = t3[i];
  }
  sv_plan *pl = sv_compile(g, no, outs, 1);
  ck_assert_msg(pl != NULL, "%s: compile: %s", c->name, sv_errmsg());
  for (int i = 0; i < c->nx; i++) {
    ck_assert_int_eq(sv_plan_bind(pl, x[i], xd[i]), 0);
    ck_assert_int_eq(sv_plan_bind(pl, v[i], vd[i]), 0);
  }
  ck_assert_int_eq(sv_plan_bind(pl, w, wd), 0);
  ck_assert_int_eq(sv_plan_run(pl), 0);

  double *gb[2][MAXX], *hb[2][MAXX], *tb[MAXX];
  for (int i = 0; i < c->nx; i++) {
    for (int o = 0; o < 2; o++) {
      gb[o][i] = malloc(n * sizeof(double));
      hb[o][i] = malloc(n * sizeof(double));
      memcpy(gb[o][i], sv_plan_value(pl, gr[o][i]), n * sizeof(double));
      memcpy(hb[o][i], sv_plan_value(pl, hv[o][i]), n * sizeof(double));
    }
    tb[i] = malloc(n * sizeof(double));
    memcpy(tb[i], sv_plan_value(pl, t3[i]), n * sizeof(double));
  }
  /* gradients by central differences of f */
  for (int i = 0; i < c->nx; i++) {
    double *fd[2] = {malloc(n * sizeof(double)), malloc(n * sizeof(double))};
    for (size_t k = 0; k < n; k++) {
      double fp[2], fm[2];
      xd[i][k] = x0[i][k] + FD_H;
      ck_assert_int_eq(sv_plan_run(pl), 0);
      fp[0] = sv_plan_value(pl, f[0])[0];
      fp[1] = sv_plan_value(pl, f[1])[0];
      xd[i][k] = x0[i][k] - FD_H;
      ck_assert_int_eq(sv_plan_run(pl), 0);
      fm[0] = sv_plan_value(pl, f[0])[0];
      fm[1] = sv_plan_value(pl, f[1])[0];
      xd[i][k] = x0[i][k];
      for (int o = 0; o < 2; o++)
        fd[o][k] = (fp[o] - fm[o]) / (2 * FD_H);
    }
    for (int o = 0; o < 2; o++) {
      char what[64];
      snprintf(what, sizeof what, "d f%d / d x%d", o + 1, i);
      expect_close(c->name, what, gb[o][i], fd[o], n, 1e-7);
      free(fd[o]);
    }
  }
  /* Hessian-vector and third-order products: differences along v */
  double *gp[2][MAXX], *gm[2][MAXX], *hp[MAXX], *hm[MAXX];
  for (int sg = 0; sg < 2; sg++) {
    double hh = sg ? -FD_H : FD_H;
    for (int i = 0; i < c->nx; i++)
      for (size_t k = 0; k < n; k++)
        xd[i][k] = x0[i][k] + hh * vd[i][k];
    ck_assert_int_eq(sv_plan_run(pl), 0);
    for (int i = 0; i < c->nx; i++) {
      double *hbuf = malloc(n * sizeof(double));
      memcpy(hbuf, sv_plan_value(pl, hv[1][i]), n * sizeof(double));
      if (sg)
        hm[i] = hbuf;
      else
        hp[i] = hbuf;
      for (int o = 0; o < 2; o++) {
        double *b = malloc(n * sizeof(double));
        memcpy(b, sv_plan_value(pl, gr[o][i]), n * sizeof(double));
        if (sg)
          gm[o][i] = b;
        else
          gp[o][i] = b;
      }
    }
  }
  for (int i = 0; i < c->nx; i++) {
    double *fd = malloc(n * sizeof(double));
    char what[64];
    for (int o = 0; o < 2; o++) {
      for (size_t k = 0; k < n; k++)
        fd[k] = (gp[o][i][k] - gm[o][i][k]) / (2 * FD_H);
      snprintf(what, sizeof what, "(H v) of f%d w.r.t. x%d", o + 1, i);
      expect_close(c->name, what, hb[o][i], fd, n, 1e-6);
      free(gp[o][i]);
      free(gm[o][i]);
      free(gb[o][i]);
      free(hb[o][i]);
    }
    for (size_t k = 0; k < n; k++)
      fd[k] = (hp[i][k] - hm[i][k]) / (2 * FD_H);
    snprintf(what, sizeof what, "third order of f2 w.r.t. x%d", i);
    expect_close(c->name, what, tb[i], fd, n, 1e-5);
    free(fd);
    free(hp[i]);
    free(hm[i]);
    free(tb[i]);
    free(xd[i]);
    free(x0[i]);
    free(vd[i]);
  }
  free(wd);
  sv_plan_free(pl);
  sv_graph_free(g);
  gsl_rng_free(rng);
}

/* s_re in [-0.3, -0.01] (decaying modes), s_im in [-2, 2], c in [-1, 1] */
START_TEST(test_vandermonde_derivatives)
{
  static const struct { int ndim, d0, d1, L; } sz[] = {{2, 2, 3, 7}, {1, 5, 0, 6}, {2, 1, 9, 4},
                                                       {2, 3, 2, 1}};
  tcase c = {.name = "vandermonde", .nx = 4, .build = build_vand,
             .lo = {-1, -1, -0.3, -2}, .hi = {1, 1, -0.01, 2}};
  c.ndim = sz[_i].ndim;
  c.dims[0] = sz[_i].d0;
  c.dims[1] = sz[_i].d1;
  c.L = sz[_i].L;
  check_derivatives(&c, 7000 + (unsigned long)_i);
}
END_TEST

START_TEST(test_atan2_derivatives)
{
  /* every quadrant: a and b both in [-2, 2] away from the origin is likely;
     the branch cut (b < 0, a = 0) has measure zero */
  tcase c = {.name = "atan2", .nx = 2, .ndim = 2, .dims = {3, 4}, .build = build_atan2,
             .lo = {-2, -2}, .hi = {2, 2}};
  check_derivatives(&c, 8100 + (unsigned long)_i);
}
END_TEST

/* glu against a * sigmoid(b), and its derivatives to third order */
START_TEST(test_glu)
{
  static const int sz[][2] = {{3, 8}, {1, 2}, {4, 6}};
  tcase c = {.name = "glu", .nx = 1, .ndim = 2, .build = build_glu, .lo = {-3}, .hi = {3}};
  c.dims[0] = sz[_i][0];
  c.dims[1] = sz[_i][1];
  check_derivatives(&c, 8200 + (unsigned long)_i);
  /* values */
  sv_graph *g = sv_graph_new();
  sv_node *z = sv_input(g, "z", 2, c.dims), *y = sv_glu(z);
  ck_assert_int_eq(sv_dim(y, 1), c.dims[1] / 2);
  sv_plan *pl = sv_compile(g, 1, &y, 1);
  double zv[24];
  for (int k = 0; k < c.dims[0] * c.dims[1]; k++)
    zv[k] = sin(1.7 * k) * 3;
  sv_plan_bind(pl, z, zv);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  int H = c.dims[1] / 2;
  for (int r = 0; r < c.dims[0]; r++)
    for (int j = 0; j < H; j++) {
      double a = zv[r * 2 * H + j], b = zv[r * 2 * H + H + j];
      ck_assert_double_eq_tol(sv_plan_value(pl, y)[r * H + j], a / (1 + exp(-b)), 1e-15);
    }
  sv_plan_free(pl);
  sv_graph_free(g);
}
END_TEST

START_TEST(test_glu_errors)
{
  sv_graph *g = sv_graph_new();
  int d[2] = {3, 5};
  ck_assert_ptr_null(sv_glu(sv_input(g, "z", 2, d)));
  ck_assert_ptr_nonnull(strstr(sv_graph_error(g), "even"));
  sv_graph_free(g);
}
END_TEST

/* the fused layer-norm derivative to third order (test_ops.c checks the
   value, gradient and Hessian-vector products) */
START_TEST(test_layer_norm_third)
{
  tcase c = {.name = "layer_norm", .nx = 1, .ndim = 2, .dims = {3, 5}, .build = build_layer_norm,
             .lo = {-2}, .hi = {2}};
  check_derivatives(&c, 8300);
}
END_TEST

START_TEST(test_atan2_values)
{
  sv_graph *g = sv_graph_new();
  int d[1] = {8}, one[1] = {1};
  sv_node *a = sv_input(g, "a", 1, d), *b = sv_input(g, "b", 1, d), *s = sv_input(g, "s", 1, one);
  sv_node *y = sv_atan2(a, b), *y2 = sv_atan2(a, s); /* broadcasting */
  sv_node *outs[2] = {y, y2};
  sv_plan *pl = sv_compile(g, 2, outs, 1);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  double av[8] = {1, 1, -1, -1, 0, 0, 2, -3}, bv[8] = {1, -1, 1, -1, 1, -1, 0, 0.5}, sv[1] = {-2};
  sv_plan_bind(pl, a, av);
  sv_plan_bind(pl, b, bv);
  sv_plan_bind(pl, s, sv);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  for (int k = 0; k < 8; k++) {
    ck_assert_double_eq_tol(sv_plan_value(pl, y)[k], atan2(av[k], bv[k]), 1e-15);
    ck_assert_double_eq_tol(sv_plan_value(pl, y2)[k], atan2(av[k], -2.0), 1e-15);
  }
  ck_assert_double_eq_tol(sv_plan_value(pl, y)[5], M_PI, 1e-15);
  sv_plan_free(pl);
  sv_graph_free(g);
}
END_TEST

/* values at S4D sizes against direct sums, 1e-12 relative */
START_TEST(test_vandermonde_values)
{
  static const int sz[][3] = {{4, 32, 1000}, {3, 13, 784}, {1, 1, 1}, {2, 9, 196}};
  int H = sz[_i][0], M = sz[_i][1], L = sz[_i][2];
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 9000 + (unsigned long)_i);
  sv_graph *g = sv_graph_new();
  int d[2] = {H, M};
  sv_node *x[4];
  double *xv[4];
  for (int i = 0; i < 4; i++) {
    char nm[8];
    snprintf(nm, sizeof nm, "x%d", i);
    x[i] = sv_input(g, nm, 2, d);
    xv[i] = malloc((size_t)H * M * sizeof(double));
    for (int k = 0; k < H * M; k++) {
      double u = gsl_rng_uniform(rng);
      /* S4D-like: dt in [1e-3, 1e-1], A = -1/2 - i pi n */
      xv[i][k] = i < 2 ? 2 * u - 1 : i == 2 ? -0.5 * exp(log(1e-3) + u * log(100.0))
                                              : -M_PI * (k % M) * exp(log(1e-3) + u * log(100.0));
    }
  }
  sv_node *y = sv_vandermonde(x[0], x[1], x[2], x[3], L);
  ck_assert_msg(y != NULL, "%s", sv_graph_error(g));
  ck_assert_int_eq(sv_dim(y, 0), H);
  ck_assert_int_eq(sv_dim(y, 1), L);
  sv_plan *pl = sv_compile(g, 1, &y, 1);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  for (int i = 0; i < 4; i++)
    sv_plan_bind(pl, x[i], xv[i]);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  double *ref = malloc((size_t)H * L * sizeof(double));
  ref_vand(H, M, L, xv, ref);
  double err = 0, mx = 0;
  const double *got = sv_plan_value(pl, y);
  for (int k = 0; k < H * L; k++) {
    err = fmax(err, fabs(got[k] - ref[k]));
    mx = fmax(mx, fabs(ref[k]));
  }
  ck_assert_msg(err <= 1e-12 * mx, "vandermonde H=%d M=%d L=%d: max error %.3g over max %.3g", H,
                M, L, err, mx);
  free(ref);
  for (int i = 0; i < 4; i++)
    free(xv[i]);
  sv_plan_free(pl);
  sv_graph_free(g);
  gsl_rng_free(rng);
}
END_TEST

START_TEST(test_vandermonde_errors)
{
  sv_graph *g = sv_graph_new();
  int d[2] = {3, 4}, e[2] = {3, 5}, b[2] = {SV_BATCH, 4}, t[3] = {2, 3, 4};
  sv_node *a = sv_input(g, "a", 2, d), *c = sv_input(g, "c", 2, e);
  ck_assert_ptr_null(sv_vandermonde(a, a, a, c, 5));
  ck_assert_ptr_nonnull(strstr(sv_graph_error(g), "one shape"));
  sv_graph_free(g);
  g = sv_graph_new();
  a = sv_input(g, "a", 2, d);
  ck_assert_ptr_null(sv_vandermonde(a, a, a, a, 0));
  ck_assert_ptr_nonnull(strstr(sv_graph_error(g), "L = 0"));
  sv_graph_free(g);
  g = sv_graph_new();
  a = sv_input(g, "a", 2, b);
  ck_assert_ptr_null(sv_vandermonde(a, a, a, a, 3));
  ck_assert_ptr_nonnull(strstr(sv_graph_error(g), "batch"));
  sv_graph_free(g);
  g = sv_graph_new();
  a = sv_input(g, "a", 3, t);
  ck_assert_ptr_null(sv_vandermonde(a, a, a, a, 3));
  ck_assert_ptr_nonnull(strstr(sv_graph_error(g), "[H, M]"));
  sv_graph_free(g);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("ssm_ops");
  TCase *tc = tcase_create("ops");
  tcase_add_loop_test(tc, test_vandermonde_derivatives, 0, 4);
  tcase_add_loop_test(tc, test_vandermonde_values, 0, 4);
  tcase_add_test(tc, test_vandermonde_errors);
  tcase_add_loop_test(tc, test_atan2_derivatives, 0, 3);
  tcase_add_test(tc, test_atan2_values);
  tcase_add_loop_test(tc, test_glu, 0, 3);
  tcase_add_test(tc, test_glu_errors);
  tcase_add_test(tc, test_layer_norm_third);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
