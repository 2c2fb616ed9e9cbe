/*
 * test_lieconv.c -- the pieces of lieconv_affine.so (plugins/lieconv/).
 *
 * 2x2 closed forms against series and identities (exp, log, sqrt, polar
 * decomposition, the chart and its inverse, the angle guarded at 0 / 2 pi);
 * group samples (the rotation grid, det P = 1 for sl2, the log-normal's
 * variance, the text file's round trip and every refusal); the kernel grid
 * and the layers' kernel points (x along columns, y along rows); the
 * affine generator (identity, exact 90-degree rotation, objects kept
 * inside the canvas); and the networks: exact equivariance of the lifted
 * feature map under a 90-degree rotation, with the samples shifted in the
 * direction the group action says (a transposed grid shifts them the other
 * way and fails), the logits of so2 networks invariant to 1e-10 while a
 * reflection changes them by far more, an sl2 network that is not
 * invariant (the test can fail), sl2 and gl2 networks whose logits for a
 * rotated image equal those for the image with the samples moved by the
 * rotation's inverse (to 1e-10; the samples moved the other way differ:
 * kernels at g d or a transposed grid fail it), and the training gradient
 * against central finite differences.
 */
#include "data.h"
#include "groups.h"
#include "layers.h"
#include "model.h"
#include "samples.h"

#include <check.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S LIE_CANVAS

static double maxdiff_m2(mat2 x, mat2 y)
{
  double d = fabs(x.a - y.a);
  d = fmax(d, fabs(x.b - y.b));
  d = fmax(d, fabs(x.c - y.c));
  return fmax(d, fabs(x.d - y.d));
}

/* exp of a 2x2 matrix by its Taylor series (accurate for small norms) */
static mat2 expm_series(mat2 x)
{
  mat2 sum = {1, 0, 0, 1}, term = {1, 0, 0, 1};
  for (int k = 1; k < 40; k++) {
    term = m2_mul(term, x);
    term.a /= k, term.b /= k, term.c /= k, term.d /= k;
    sum.a += term.a, sum.b += term.b, sum.c += term.c, sum.d += term.d;
  }
  return sum;
}

/* ------------------------------------------------------------------ */
/* 2x2 closed forms                                                    */
/* ------------------------------------------------------------------ */

START_TEST(test_sym2_exp_log_sqrt)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 1);
  double worst_exp = 0, worst_log = 0, worst_sqrt = 0;
  for (int k = 0; k < 2000; k++) {
    /* a spread of sizes, including nearly equal eigenvalues (delta -> 0) */
    double sc = pow(10, -8 + 8 * gsl_rng_uniform(rng));
    sym2 X = {sc * (2 * gsl_rng_uniform(rng) - 1), sc * (2 * gsl_rng_uniform(rng) - 1),
              sc * (2 * gsl_rng_uniform(rng) - 1)};
    if (k % 3 == 0)
      X.r = X.p + 1e-9 * X.q; /* delta ~ |q| only */
    X.p += 0.3, X.r -= 0.2;   /* and a trace */
    sym2 E = sym2_exp(X);
    mat2 ref = expm_series(m2_of_sym(X));
    worst_exp = fmax(worst_exp, maxdiff_m2(m2_of_sym(E), ref));
    sym2 L = sym2_log(E);
    worst_log = fmax(worst_log, fmax(fabs(L.p - X.p), fmax(fabs(L.q - X.q), fabs(L.r - X.r))));
    sym2 R = sym2_sqrt(E);
    mat2 RR = m2_mul(m2_of_sym(R), m2_of_sym(R));
    worst_sqrt = fmax(worst_sqrt, maxdiff_m2(RR, m2_of_sym(E)));
  }
  gsl_rng_free(rng);
  ck_assert_msg(worst_exp < 1e-14, "exp vs series: %g", worst_exp);
  ck_assert_msg(worst_log < 1e-14, "log(exp X) - X: %g", worst_log);
  ck_assert_msg(worst_sqrt < 1e-14, "sqrt^2 - S: %g", worst_sqrt);
  /* exactly equal eigenvalues */
  sym2 I2 = sym2_exp((sym2){0.5, 0, 0.5});
  ck_assert(fabs(I2.p - exp(0.5)) < 1e-15 && I2.q == 0 && fabs(I2.r - exp(0.5)) < 1e-15);
  sym2 L0 = sym2_log((sym2){2, 0, 2});
  ck_assert(fabs(L0.p - log(2)) < 1e-15 && L0.q == 0);
}
END_TEST

START_TEST(test_polar_chart)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 2);
  for (int k = 0; k < 1000; k++) {
    sym2 X = {gsl_rng_uniform(rng) - 0.5, gsl_rng_uniform(rng) - 0.5, gsl_rng_uniform(rng) - 0.5};
    double th = 2 * LIE_PI * gsl_rng_uniform(rng);
    mat2 g = lie_chart(X, th);
    sym2 P;
    double t;
    lie_polar(g, &P, &t);
    ck_assert_msg(fabs(t - th) < 1e-13 || fabs(fabs(t - th) - 2 * LIE_PI) < 1e-13, "theta %g vs %g",
                  t, th);
    ck_assert(t >= 0 && t < 2 * LIE_PI);
    mat2 back = m2_mul(m2_of_sym(P), m2_rot(t));
    ck_assert_msg(maxdiff_m2(back, g) < 1e-14, "P R != g");
    sym2 L = sym2_log(P);
    ck_assert(fabs(L.p - X.p) < 1e-13 && fabs(L.q - X.q) < 1e-13 && fabs(L.r - X.r) < 1e-13);
    /* gl2 coordinates: an orthonormal basis of log P, then theta */
    double c[4];
    ck_assert_int_eq(lie_chart_coords(LIE_GL2, g, c), 4);
    ck_assert(fabs(c[0] - X.p) < 1e-13 && fabs(c[1] - X.r) < 1e-13 &&
              fabs(c[2] - sqrt(2) * X.q) < 1e-13 && fabs(c[3] - t) < 1e-15);
    /* sl2 coordinates of a traceless X */
    sym2 Y = {X.p, X.q, -X.p};
    ck_assert_int_eq(lie_chart_coords(LIE_SL2, lie_chart(Y, th), c), 3);
    ck_assert(fabs(c[0] - sqrt(2) * Y.p) < 1e-13 && fabs(c[1] - sqrt(2) * Y.q) < 1e-13);
    ck_assert_int_eq(lie_chart_coords(LIE_SO2, m2_rot(th), c), 1);
    ck_assert(fabs(c[0] - th) < 1e-13 || fabs(fabs(c[0] - th) - 2 * LIE_PI) < 1e-13);
  }
  gsl_rng_free(rng);
}
END_TEST

START_TEST(test_angle_guard)
{
  /* g^-1 g in floating point: a sine of +-1e-17 must give 0, never 2 pi - 1e-17 */
  ck_assert(lie_angle(1, -1e-17) == 0.0);
  ck_assert(lie_angle(1, 1e-17) == 0.0);
  ck_assert(lie_angle(2, -1e-13) == 0.0);
  ck_assert(lie_angle(1, -1e-300) == 0.0);
  ck_assert(fabs(lie_angle(1, -1e-6) - (2 * LIE_PI - 1e-6)) < 1e-15);
  ck_assert(fabs(lie_angle(-1, 0) - LIE_PI) < 1e-15);
  ck_assert(fabs(lie_angle(0, -1) - 1.5 * LIE_PI) < 1e-15);
  for (int n = 1; n <= 16; n++)
    for (int i = 0; i < n; i++)
      for (int j = 0; j < n; j++) {
        mat2 rel = m2_mul(m2_inv(m2_rot(2 * LIE_PI * i / n)), m2_rot(2 * LIE_PI * j / n));
        double c[1];
        lie_chart_coords(LIE_SO2, rel, c);
        double want = 2 * LIE_PI * (((j - i) % n + n) % n) / n;
        ck_assert_msg(fabs(c[0] - want) < 1e-14, "n %d, i %d, j %d: %g vs %g", n, i, j, c[0], want);
        ck_assert(c[0] >= 0 && c[0] < 2 * LIE_PI);
      }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Samples                                                             */
/* ------------------------------------------------------------------ */

START_TEST(test_samples_draw)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 3);
  for (int grp = 0; grp < 3; grp++) {
    int n = 8, nsets = 4000;
    lie_samples *s = lie_samples_new((lie_group)grp, nsets, n, 0.1);
    ck_assert_ptr_nonnull(s);
    lie_samples_draw(s, rng);
    double var[3] = {0, 0, 0};
    for (int k = 0; k < nsets; k++)
      for (int i = 0; i < n; i++) {
        int at = k * n + i;
        ck_assert(fabs(s->theta[at] - 2 * LIE_PI * i / n) < 1e-15);
        sym2 P = s->P[at];
        ck_assert(P.p > 0 && sym2_det(P) > 0);
        if (grp == LIE_SL2)
          ck_assert(fabs(sym2_det(P) - 1) < 1e-14);
        if (grp == LIE_SO2)
          ck_assert(P.p == 1 && P.q == 0 && P.r == 1);
        /* X = 2 log P in the orthonormal basis */
        sym2 L = sym2_log(P);
        if (grp == LIE_SL2) {
          var[0] += 2 * L.p * L.p * 4;         /* (sqrt2 s * 2)^2 */
          var[1] += 2 * L.q * L.q * 4;
        } else if (grp == LIE_GL2) {
          var[0] += 4 * L.p * L.p;
          var[1] += 8 * L.q * L.q;
          var[2] += 4 * L.r * L.r;
        }
      }
    int dims = grp == LIE_SL2 ? 2 : grp == LIE_GL2 ? 3 : 0;
    for (int d = 0; d < dims; d++) {
      double v = var[d] / (nsets * n);
      /* 32000 draws: the variance's relative standard error is 0.8% */
      ck_assert_msg(fabs(v - 0.1) < 0.005, "group %d coordinate %d: variance %g, expected 0.1",
                    grp, d, v);
    }
    lie_samples_free(s);
  }
  /* one orbit of all 8 (-spd_orbit 8): sample i + 1 is sample i turned by
     45 degrees, R P_i R^T (45 degrees, where R^T P R differs), and every P
     is still log-normal with variance 0.1 */
  for (int grp = LIE_SL2; grp <= LIE_GL2; grp++) {
    int n = 8, nsets = 4000;
    lie_samples *s = lie_samples_new((lie_group)grp, nsets, n, 0.1);
    s->orbit = n;
    lie_samples_draw(s, rng);
    double var = 0, worst = 0;
    mat2 R = m2_rot(2 * LIE_PI / n);
    for (int k = 0; k < nsets; k++)
      for (int i = 0; i < n; i++) {
        int at = k * n + i;
        sym2 L = sym2_log(s->P[at]);
        var += 2 * L.q * L.q * 4; /* the off-diagonal coordinate, in both groups' bases */
        if (i + 1 < n) {
          mat2 T = m2_mul(m2_mul(R, m2_of_sym(s->P[at])), m2_inv(R));
          sym2 Q = s->P[at + 1];
          worst = fmax(worst, fmax(fabs(T.a - Q.p), fmax(fabs(T.b - Q.q), fabs(T.d - Q.r))));
        }
      }
    ck_assert_msg(worst < 1e-14, "group %d orbits: sample i + 1 is not R P_i R^T (%g)", grp, worst);
    var /= nsets * n;
    ck_assert_msg(fabs(var - 0.1) < 0.005, "group %d orbits: variance %g, expected 0.1", grp, var);
    lie_samples_free(s);
  }
  gsl_rng_free(rng);
}
END_TEST

static char tmp[64];

static const char *write_text(const char *name, const char *text)
{
  static char path[128];
  snprintf(path, sizeof path, "%s/%s", tmp, name);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  return path;
}

static void refuse(lie_samples *s, const char *text, const char *pattern)
{
  const char *p = write_text("bad.txt", text);
  double keep = s->theta[1];
  ck_assert_int_eq(lie_samples_read(s, p), -1);
  ck_assert_msg(strstr(sv_errmsg(), pattern), "message '%s' lacks '%s'", sv_errmsg(), pattern);
  ck_assert(s->theta[1] == keep); /* unchanged */
}

START_TEST(test_samples_file)
{
  snprintf(tmp, sizeof tmp, "/tmp/test_lieconv.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(tmp));
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 4);
  lie_samples *a = lie_samples_new(LIE_SL2, 2, 4, 0.3), *b = lie_samples_new(LIE_SL2, 2, 4, 0.3);
  lie_samples_draw(a, rng);
  char path[128];
  snprintf(path, sizeof path, "%s/samples.txt", tmp);
  ck_assert_int_eq(lie_samples_write(a, path), 0);
  ck_assert_int_eq(lie_samples_read(b, path), 0);
  for (int i = 0; i < 8; i++) {
    ck_assert(a->theta[i] == b->theta[i]);
    ck_assert(a->P[i].p == b->P[i].p && a->P[i].q == b->P[i].q && a->P[i].r == b->P[i].r);
  }
  /* the same file in another order, with comments, is the same set */
  write_text("shuffled.txt", "# comment\n\n1 3 0 1 0 1\n0 0 0 1 0 1\n0 1 1 1 0 1\n0 2 2 1 0 1\n"
                             "0 3 3 1 0 1\n1 0 0.5 1 0 1\n1 1 0.5 1 0 1\n1 2 0.5 1 0 1\n");
  snprintf(path, sizeof path, "%s/shuffled.txt", tmp);
  ck_assert_int_eq(lie_samples_read(b, path), 0);
  ck_assert(b->theta[2] == 2 && b->theta[7] == 0 && b->theta[4] == 0.5);
  lie_samples_copy(b, a);
  const char *full = "0 0 0 1 0 1\n0 1 0 1 0 1\n0 2 0 1 0 1\n0 3 0 1 0 1\n"
                     "1 0 0 1 0 1\n1 1 0 1 0 1\n1 2 0 1 0 1\n";
  refuse(b, full, "sample (set 1, index 3) is missing");
  char buf[512];
  snprintf(buf, sizeof buf, "%s1 3 0 1 0 1\n0 0 0 1 0 1\n", full);
  refuse(b, buf, "given twice");
  snprintf(buf, sizeof buf, "%s1 4 0 1 0 1\n", full);
  refuse(b, buf, "outside the model's 2 sets of 4 samples");
  snprintf(buf, sizeof buf, "%s1 3 0 2 0 1\n", full);
  refuse(b, buf, "det P = 2, but sl2 needs det P = 1");
  snprintf(buf, sizeof buf, "%s1 3 0 -1 0 -1\n", full);
  refuse(b, buf, "not positive definite");
  snprintf(buf, sizeof buf, "%s1 3 0 1 0\n", full);
  refuse(b, buf, "line 8: expected 'set index theta P00 P01 P11'");
  snprintf(buf, sizeof buf, "%s1 3 0 1 0 1 7\n", full);
  refuse(b, buf, "line 8: expected");
  snprintf(buf, sizeof buf, "%s1 3 nan 1 0 1\n", full);
  refuse(b, buf, "not finite");
  snprintf(path, sizeof path, "%s/none.txt", tmp);
  ck_assert_int_eq(lie_samples_read(b, path), -1);
  ck_assert(strstr(sv_errmsg(), "cannot open"));
  lie_samples *so = lie_samples_new(LIE_SO2, 1, 2, 0.1);
  snprintf(path, sizeof path, "%s", write_text("so2.txt", "0 0 0 1 0 1\n0 1 3 1.1 0 0.9090909090909\n"));
  ck_assert_int_eq(lie_samples_read(so, path), -1);
  ck_assert(strstr(sv_errmsg(), "so2 needs P = I"));
  lie_samples_free(so);
  lie_samples_free(a);
  lie_samples_free(b);
  gsl_rng_free(rng);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Kernel points                                                       */
/* ------------------------------------------------------------------ */

START_TEST(test_grid_and_points)
{
  double x, y;
  lie_grid_point(5, 0, &x, &y);
  ck_assert(fabs(x + 0.8) < 1e-15 && fabs(y + 0.8) < 1e-15);
  lie_grid_point(5, 1, &x, &y); /* row 0, column 1: x moves along columns */
  ck_assert(fabs(x + 0.4) < 1e-15 && fabs(y + 0.8) < 1e-15);
  lie_grid_point(5, 5, &x, &y); /* row 1, column 0 */
  ck_assert(fabs(x + 0.8) < 1e-15 && fabs(y + 0.4) < 1e-15);
  lie_grid_point(5, 12, &x, &y);
  ck_assert(x == 0 && y == 0);

  /* a lifting and a group-conv layer on known samples */
  lie_samples *s = lie_samples_new(LIE_GL2, 2, 2, 0.1);
  s->P[0] = (sym2){2, 0, 1}; /* set 0: diag(2, 1), then diag(2, 1) R(pi/2) */
  s->P[1] = (sym2){2, 0, 1};
  s->theta[1] = LIE_PI / 2;
  s->P[2] = (sym2){1, 0, 1}; /* set 1: I, R(pi/2) */
  s->P[3] = (sym2){1, 0, 1};
  s->theta[3] = LIE_PI / 2;
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  lie_layer L = {.group = LIE_GL2, .lift = 1, .cin = 1, .cout = 1, .nout = 2, .set_out = 0, .k = 5,
                 .mask = LIE_MASK_HARD, .net = {.width = 4, .layers = 1, .w0 = 10}};
  snprintf(L.name, sizeof L.name, "lift");
  ck_assert_int_eq(lie_layer_build(&L, g, p), 0);
  ck_assert_int_eq(lie_layer_fill(&L, s), 0);
  ck_assert_int_eq(L.din, 2);
  /* sample 1, tap (row 0, column 1): g^-1 (x, y) with g = diag(2,1) R(90) */
  mat2 g1 = lie_sample(s, 0, 1), gi = m2_inv(g1);
  double u, v;
  m2_apply(gi, -0.4, -0.8, &u, &v);
  ck_assert(fabs(L.z[(25 + 1) * 2] - u) < 1e-15 && fabs(L.z[(25 + 1) * 2 + 1] - v) < 1e-15);
  /* R(90)^-1 diag(1/2, 1) (-0.4, -0.8) = R(-90) (-0.2, -0.8) = (-0.8, 0.2) */
  ck_assert(fabs(u + 0.8) < 1e-15 && fabs(v - 0.2) < 1e-15);
  ck_assert(fabs(L.f[25 + 1] - 0.5) < 1e-15); /* inside the disc, 1/|det g| = 1/2 */
  ck_assert(fabs(L.f[0] - 0.5) < 1e-15); /* corner (-0.8, -0.8) -> (-0.4, -0.8): inside */
  lie_layer G = {.group = LIE_GL2, .cin = 1, .cout = 1, .nin = 2, .nout = 2, .set_in = 0,
                 .set_out = 1, .k = 5, .mask = LIE_MASK_HARD, .net = {.width = 4, .layers = 1, .w0 = 10}};
  snprintf(G.name, sizeof G.name, "gc");
  ck_assert_int_eq(lie_layer_build(&G, g, p), 0);
  ck_assert_int_eq(lie_layer_fill(&G, s), 0);
  ck_assert_int_eq(G.din, 6);
  /* output sample 1 (R(90)), input sample 0 (diag(2,1)): chart of R(-90) diag(2,1) */
  double c[4];
  lie_chart_coords(LIE_GL2, m2_mul(m2_inv(lie_sample(s, 1, 1)), lie_sample(s, 0, 0)), c);
  int pt = (1 * 2 + 0) * 25 + 12;
  for (int d = 0; d < 4; d++)
    ck_assert(fabs(G.z[pt * 6 + 2 + d] - c[d]) < 1e-15);
  /* the Haar factor 1/|det h_j| follows the INPUT sample */
  ck_assert(fabs(G.f[pt] - 0.5) < 1e-15);
  ck_assert(fabs(G.f[(1 * 2 + 1) * 25 + 12] - 0.5) < 1e-15);
  ck_assert(fabs(lie_sample(s, 1, 0).a - 1) < 1e-15);
  /* outputs on rotations: the corners (radius 1.13) are outside the disc */
  ck_assert(G.f[(0 * 2 + 1) * 25 + 0] == 0.0 && G.f[(1 * 2 + 0) * 25 + 24] == 0.0);
  lie_layer_free(&L);
  lie_layer_free(&G);
  sv_params_free(p);
  sv_graph_free(g);
  lie_samples_free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Images                                                              */
/* ------------------------------------------------------------------ */

static void random_digit(gsl_rng *rng, double *x)
{
  memset(x, 0, S * S * sizeof *x);
  for (int r = 12; r < 28; r++)
    for (int c = 14; c < 26; c++)
      x[r * S + c] = gsl_rng_uniform(rng) < 0.4 ? gsl_rng_uniform(rng) : 0;
}

START_TEST(test_affine)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 5);
  double x[S * S], y[S * S], z[S * S], w[S * S];
  random_digit(rng, x);
  double A[4];
  lie_affine_matrix(0, 0, 1, 1, A);
  lie_warp(x, S, A, y);
  for (int i = 0; i < S * S; i++)
    ck_assert(fabs(y[i] - x[i]) < 1e-15);
  /* a warp by +90 degrees is the exact pixel map of the group action */
  lie_affine_matrix(LIE_PI / 2, 0, 1, 1, A);
  lie_warp(x, S, A, y);
  lie_rot90(x, S, z);
  for (int i = 0; i < S * S; i++)
    ck_assert_msg(fabs(y[i] - z[i]) < 1e-12, "pixel %d: warp %g, rot90 %g", i, y[i], z[i]);
  /* rot90 four times, reflect twice: the identity */
  lie_rot90(z, S, y), lie_rot90(y, S, w), lie_rot90(w, S, y);
  lie_reflect(x, S, z), lie_reflect(z, S, w);
  for (int i = 0; i < S * S; i++)
    ck_assert(y[i] == x[i] && w[i] == x[i]);
  /* the set: objects inside the canvas, sums about preserved x det,
     reproducible from the seed, different between seeds */
  int n = 50;
  double *in = malloc(n * S * S * sizeof *in), *out = malloc(n * S * S * sizeof *out),
         *out2 = malloc(n * S * S * sizeof *out2);
  for (int k = 0; k < n; k++)
    random_digit(rng, in + k * S * S);
  lie_affine a = {20, 0.2, 0.8, 1.2, 1};
  int clipped = -1;
  ck_assert_int_eq(lie_affine_set(in, n, S, &a, 7, out, &clipped), 0);
  ck_assert_int_eq(clipped, 0);
  int moved = 0;
  for (int k = 0; k < n; k++) {
    double s0 = 0, s1 = 0;
    for (int i = 0; i < S * S; i++)
      s0 += in[k * S * S + i], s1 += out[k * S * S + i];
    /* scales 0.8-1.2, shear: the mass scales by det A in [0.64, 1.44] */
    ck_assert_msg(s1 > 0.6 * s0 && s1 < 1.5 * s0, "image %d: mass %g -> %g", k, s0, s1);
    double cx = 0;
    for (int i = 0; i < S * S; i++)
      cx += (i % S) * out[k * S * S + i];
    moved += fabs(cx / s1 - 19.5) > 3;
  }
  ck_assert_msg(moved > n / 4, "only %d of %d objects translated by more than 3 pixels", moved, n);
  ck_assert_int_eq(lie_affine_set(in, n, S, &a, 7, out2, NULL), 0);
  ck_assert(memcmp(out, out2, n * S * S * sizeof *out) == 0);
  ck_assert_int_eq(lie_affine_set(in, n, S, &a, 8, out2, NULL), 0);
  ck_assert(memcmp(out, out2, n * S * S * sizeof *out) != 0);
  /* a shape that cannot fit is clipped and counted */
  for (int i = 0; i < S * S; i++)
    in[i] = 1;
  ck_assert_int_eq(lie_affine_set(in, 1, S, &a, 7, out2, &clipped), 0);
  ck_assert_int_eq(clipped, 1);
  free(in);
  free(out);
  free(out2);
  gsl_rng_free(rng);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Networks                                                            */
/* ------------------------------------------------------------------ */

static lie_arch small_arch(lie_group grp, int C, int N)
{
  lie_arch a = {.kind = LIE_MODEL_LIE, .group = grp, .channels = C, .samples = N, .mid = 0,
                .pad = 2, .blocks = 1, .final_norm = 1, .head = 8, .cnn_channels = 0, .kernel_width = 16, .kernel_layers = 3,
                .omega = 10, .spd_var = 0.1, .mask = LIE_MASK_HARD, .pool = LIE_POOL_MAX};
  return a;
}

static lie_model *small_model(lie_arch a, int batch, unsigned long seed)
{
  lie_model *m = lie_model_new(&a, batch, batch, 4);
  ck_assert_msg(m != NULL, "model: %s", sv_errmsg());
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, seed);
  ck_assert_int_eq(lie_model_init(m, rng), 0);
  if (m->samples) {
    lie_samples_draw(m->samples, rng);
    ck_assert_int_eq(lie_model_refresh(m), 0);
  }
  gsl_rng_free(rng);
  return m;
}

/* ||z1 - z0||_F / ||z0||_F over the k values */
static double rel_change(const double *z1, const double *z0, int k)
{
  double num = 0, den = 0;
  for (int i = 0; i < k; i++)
    num += (z1[i] - z0[i]) * (z1[i] - z0[i]), den += z0[i] * z0[i];
  return sqrt(num / den);
}

static void rot180(const double *x, int n, double *y)
{
  double *t = malloc((size_t)n * n * sizeof *t);
  lie_rot90(x, n, t);
  lie_rot90(t, n, y);
  free(t);
}

/* relative Frobenius change of the logits of n images under a pixel map */
static double logit_change(lie_model *m, int n, const double *x, void (*map)(const double *, int, double *))
{
  double *tx = malloc(n * S * S * sizeof *tx), z0[8 * 10], z1[8 * 10];
  for (int k = 0; k < n; k++)
    map(x + k * S * S, S, tx + k * S * S);
  ck_assert_int_eq(lie_model_logits(m, n, x, z0), 0);
  ck_assert_int_eq(lie_model_logits(m, n, tx, z1), 0);
  free(tx);
  return rel_change(z1, z0, n * 10);
}

/* The final map size of each skeleton: the padding of the lift and of the
   last convolution, each 2 or 0, and the mid convolution's. */
START_TEST(test_final_size)
{
  lie_arch a = small_arch(LIE_SO2, 3, 4);
  int want[3][3] = {{14, 5, 3}, {20, 10, 8}, {16, 6, 4}}; /* unpadded, same, lift only */
  for (int k = 0; k < 3; k++)
    for (int mid = 0; mid < 3; mid++) {
      a.same = k > 0;
      a.lift_only = k == 2;
      a.mid = mid > 0;
      a.pad = mid == 2 ? 0 : 2;
      ck_assert_int_eq(lie_arch_final_size(&a), want[k][mid]);
    }
}
END_TEST

START_TEST(test_invariance_so2)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 6);
  double x[6 * S * S];
  for (int k = 0; k < 6; k++)
    random_digit(rng, x + k * S * S);
  for (int N = 4; N <= 12; N += 4) {
    for (int pad = -2; pad <= 2; pad += 2) { /* no mid conv; mid with padding 0, 2 */
      lie_arch a = small_arch(LIE_SO2, 3, N);
      a.angle = (N / 4 + pad / 2) % 2 ? LIE_ANGLE_CIRCLE : LIE_ANGLE_CHART; /* both, in turn */
      a.same = N >= 8; /* padded lift and last convolution (N = 12: the lift only) */
      a.lift_only = N == 12;
      a.mid = pad >= 0;
      a.pad = pad < 0 ? 2 : pad;
      a.blocks = pad == 0 ? 0 : 1;
      lie_model *m = small_model(a, 2, 10 + N + pad);
      double rot = logit_change(m, 6, x, lie_rot90), ref = logit_change(m, 6, x, lie_reflect);
      ck_assert_msg(rot <= 1e-10, "so2 N = %d pad %d: a 90-degree rotation changes the logits by %g",
                    N, pad, rot);
      ck_assert_msg(ref > 1e4 * 1e-10 && ref > 1e6 * rot,
                    "so2 N = %d: a reflection changes the logits by only %g (rotation %g)", N, ref, rot);
      lie_model_free(m);
    }
  }
  /* with random positive-definite parts the sample set is not closed under
     the rotation: the logits change (the test above can fail) */
  lie_model *m = small_model(small_arch(LIE_SL2, 3, 8), 2, 30);
  double rot = logit_change(m, 6, x, lie_rot90);
  ck_assert_msg(rot > 1e-6, "sl2: rotation change %g, expected far above round-off", rot);
  lie_model_free(m);
  /* P parts in rotation orbits (-spd_orbit): an sl2 or gl2 sample set
     closed under 90-degree rotations makes the network exactly invariant
     to them; orbits of 2 (closed under 180 degrees only) do not */
  for (int grp = LIE_SL2; grp <= LIE_GL2; grp++) {
    lie_arch a = small_arch((lie_group)grp, 3, 8);
    a.spd_var = 0.8;
    a.spd_orbit = 4;
    a.mask = grp == LIE_GL2 ? LIE_MASK_SMOOTH : LIE_MASK_HARD;
    m = small_model(a, 2, 40 + grp);
    rot = logit_change(m, 6, x, lie_rot90);
    double ref = logit_change(m, 6, x, lie_reflect);
    ck_assert_msg(rot <= 1e-10, "group %d, orbits of 4: a 90-degree rotation changes the logits "
                  "by %g", grp, rot);
    ck_assert_msg(ref > 1e6 * rot, "group %d, orbits of 4: a reflection changes them by only %g",
                  grp, ref);
    lie_model_free(m);
    a.spd_orbit = 2;
    m = small_model(a, 2, 50 + grp);
    rot = logit_change(m, 6, x, lie_rot90);
    double half = logit_change(m, 6, x, rot180);
    ck_assert_msg(half <= 1e-10 && rot > 1e-6, "group %d, orbits of 2: 180 degrees change the "
                  "logits by %g (want round-off), 90 degrees by %g (want far more)", grp, half, rot);
    lie_model_free(m);
  }
  /* sorted pooling (the head reads every channel's N spatial maxima in
     sorted order) is as invariant as the max over the samples: a rotation
     permutes them; with random P parts it is not invariant */
  for (int grp = LIE_SO2; grp <= LIE_SL2; grp++) {
    lie_arch a = small_arch((lie_group)grp, 3, 8);
    a.pool = LIE_POOL_SORTED;
    a.same = 1;
    m = small_model(a, 2, 60 + grp);
    ck_assert_int_eq(sv_dim(m->pooled, 1), 3 * 8);
    rot = logit_change(m, 6, x, lie_rot90);
    double ref = logit_change(m, 6, x, lie_reflect);
    if (grp == LIE_SO2)
      ck_assert_msg(rot <= 1e-10 && ref > 1e6 * rot, "so2, sorted pooling: a 90-degree rotation "
                    "changes the logits by %g, a reflection by %g", rot, ref);
    else
      ck_assert_msg(rot > 1e-6, "sl2, sorted pooling: rotation change %g", rot);
    lie_model_free(m);
  }
  /* aligned pooling shifts the whole C x N matrix of spatial maxima by a
     learned soft choice of shift: exactly invariant to a cyclic shift of
     the samples, which a 90-degree rotation is for so2 (N / 4 samples) */
  for (int grp = LIE_SO2; grp <= LIE_SL2; grp++) {
    lie_arch a = small_arch((lie_group)grp, 3, 8);
    a.pool = LIE_POOL_ALIGN;
    a.same = 1;
    m = small_model(a, 2, 70 + grp);
    ck_assert_int_eq(sv_dim(m->pooled, 1), 3 * 8);
    rot = logit_change(m, 6, x, lie_rot90);
    double ref = logit_change(m, 6, x, lie_reflect);
    if (grp == LIE_SO2)
      ck_assert_msg(rot <= 1e-10 && ref > 1e6 * rot, "so2, aligned pooling: a 90-degree rotation "
                    "changes the logits by %g, a reflection by %g", rot, ref);
    else
      ck_assert_msg(rot > 1e-6, "sl2, aligned pooling: rotation change %g", rot);
    lie_model_free(m);
  }
  /* and N not divisible by 4 misses 90 degrees */
  m = small_model(small_arch(LIE_SO2, 3, 6), 2, 31);
  rot = logit_change(m, 6, x, lie_rot90);
  ck_assert_msg(rot > 1e-6, "so2 N = 6: rotation change %g", rot);
  lie_model_free(m);
  gsl_rng_free(rng);
}
END_TEST

/* -kernel_sub: a tap's weight is the kernel's mean over sub x sub points
   of its pixel cell (the midpoint rule for the kernel's integral over the
   cell, which keeps frequencies above the pixel grid's from aliasing). With
   a kernel network set by hand to k(u, v) = sin(w0 (a u + b v + c)), the
   taps whose cells lie inside the disc converge to the exact cell means of
   k at second order; the factors are the mask's mean over the cell. */
static double cell_mean_sin(double al, double be, double c, double x0, double x1, double y0,
                            double y1)
{
#define F_(x, y) (-sin(al * (x) + be * (y) + c) / (al * be))
  return (F_(x1, y1) - F_(x0, y1) - F_(x1, y0) + F_(x0, y0)) / ((x1 - x0) * (y1 - y0));
#undef F_
}

START_TEST(test_kernel_sub)
{
  double x, y;
  lie_cell_point(5, 0, 1, 0, &x, &y); /* one point: the cell centre, the grid point */
  ck_assert(fabs(x + 0.8) < 1e-15 && fabs(y + 0.8) < 1e-15);
  lie_cell_point(5, 0, 2, 1, &x, &y); /* 2 x 2 in the cell [-1, -0.6]^2: (-0.7, -0.9) */
  ck_assert(fabs(x + 0.7) < 1e-15 && fabs(y + 0.9) < 1e-15);
  lie_cell_point(5, 12, 3, 6, &x, &y); /* 3 x 3 about (0, 0): row 2, column 0 */
  ck_assert(fabs(x + 0.4 / 3) < 1e-15 && fabs(y - 0.4 / 3) < 1e-15);

  /* the factors: the mask's mean over the cell times the Haar factor */
  lie_samples *s = lie_samples_new(LIE_SO2, 2, 8, 0.0);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 3);
  lie_samples_draw(s, rng);
  gsl_rng_free(rng);
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  lie_layer L = {.group = LIE_SO2, .lift = 1, .cin = 1, .cout = 1, .nout = 8, .set_out = 0, .k = 5,
                 .sub = 4, .mask = LIE_MASK_HARD, .net = {.width = 4, .layers = 1, .w0 = 10}};
  snprintf(L.name, sizeof L.name, "lift");
  ck_assert_int_eq(lie_layer_build(&L, g, p), 0);
  ck_assert_int_eq(lie_layer_fill(&L, s), 0);
  ck_assert_int_eq(L.npoints, 8 * 25 * 16);
  double centre = 0, corner = 0, edge = 0;
  for (int q = 0; q < 16; q++) {
    centre += L.f[12 * 16 + q]; /* tap (0, 0): inside the disc */
    corner += L.f[0 * 16 + q];  /* tap (-0.8, -0.8): its cell [-1, -0.6]^2 only partly inside */
    edge += L.f[1 * 16 + q];    /* tap (-0.4, -0.8): partly, more */
  }
  /* of the 4 x 4 points at +-0.05, +-0.15 about each tap, 3 of the corner
     cell's and 12 of the edge cell's have radius <= 1 */
  ck_assert(fabs(centre - 1) < 1e-15);
  ck_assert_msg(fabs(corner - 3.0 / 16) < 1e-15 && fabs(edge - 12.0 / 16) < 1e-15,
                "cell coverage %g, %g (want 3/16, 12/16)", corner, edge);
  lie_layer_free(&L);
  sv_params_free(p);
  sv_graph_free(g);
  lie_samples_free(s);

  /* the taps against the exact cell means */
  double err[4], w0 = 10, ka = 0.31, kb = -0.17, kc = 0.4; /* 3.5 rad per unit: 1.4 per cell */
  for (int e = 0; e < 4; e++) {
    int sub = 1 << e; /* 1, 2, 4, 8 */
    lie_samples *one = lie_samples_new(LIE_SO2, 1, 1, 0.0); /* the identity */
    g = sv_graph_new();
    p = sv_params_new();
    lie_layer K = {.group = LIE_SO2, .lift = 1, .cin = 1, .cout = 1, .nout = 1, .k = 5, .sub = sub,
                   .mask = LIE_MASK_HARD, .net = {.width = 1, .layers = 1, .w0 = w0}};
    snprintf(K.name, sizeof K.name, "lift");
    ck_assert_int_eq(lie_layer_build(&K, g, p), 0);
    ck_assert_int_eq(lie_layer_fill(&K, one), 0);
    double *th = sv_params_data(p);
    size_t W = sv_params_block_offset(p, sv_params_find(p, "lift.kernel.l0.W"));
    th[W] = ka;
    th[W + 1] = kb;
    th[sv_params_block_offset(p, sv_params_find(p, "lift.kernel.l0.b"))] = kc;
    th[sv_params_block_offset(p, sv_params_find(p, "lift.kernel.out.W"))] = 1;
    th[sv_params_block_offset(p, sv_params_find(p, "lift.kernel.out.b"))] = 0;
    sv_plan *pl = sv_compile(g, 1, &K.w, 1);
    ck_assert_ptr_nonnull(pl);
    ck_assert_int_eq(lie_layer_bind(&K, pl), 0);
    ck_assert_int_eq(sv_plan_run(pl), 0);
    const double *w = sv_plan_value(pl, K.w);
    err[e] = 0;
    for (int t = 0; t < 25; t++) {
      double cx, cy;
      lie_grid_point(5, t, &cx, &cy);
      if (fabs(cx) > 0.5 || fabs(cy) > 0.5)
        continue; /* the 3 x 3 taps about the centre: cells in [-0.6, 0.6]^2, inside the disc */
      double exact = cell_mean_sin(w0 * ka, w0 * kb, w0 * kc, cx - 0.2, cx + 0.2, cy - 0.2, cy + 0.2);
      err[e] = fmax(err[e], fabs(w[t] - exact));
    }
    sv_plan_free(pl);
    lie_layer_free(&K);
    sv_params_free(p);
    sv_graph_free(g);
    lie_samples_free(one);
  }
  fprintf(stderr, "test_kernel_sub: cell-mean error %.3g %.3g %.3g %.3g (1, 2, 4, 8 points per axis)\n",
          err[0], err[1], err[2], err[3]);
  for (int e = 1; e < 4; e++)
    ck_assert_msg(err[e - 1] / err[e] > 3.5 && err[e - 1] / err[e] < 4.5,
                  "midpoint rule: error %g with %d points per axis, %g with %d: not second order",
                  err[e - 1], 1 << (e - 1), err[e], 1 << e);

  /* 90-degree rotations stay exact for an so2 network with averaged kernels */
  double xs[6 * S * S];
  rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 9);
  for (int k = 0; k < 6; k++)
    random_digit(rng, xs + k * S * S);
  gsl_rng_free(rng);
  lie_arch a = small_arch(LIE_SO2, 3, 8);
  a.same = 1;
  a.kernel_sub = 3;
  lie_model *m = small_model(a, 2, 70);
  double rot = logit_change(m, 6, xs, lie_rot90), ref = logit_change(m, 6, xs, lie_reflect);
  ck_assert_msg(rot <= 1e-10 && ref > 1e6 * rot, "so2, -kernel_sub 3: a 90-degree rotation changes "
                "the logits by %g, a reflection by %g", rot, ref);
  lie_model_free(m);
}
END_TEST

/* The lifted feature map of a rotated image is the rotated map at the
   sample N/4 before: out'(x, g_i) = out(R^-1 x, R^-1 g_i) = out(R^-1 x, g_{i - N/4}).
   A grid with x along rows (transposed) shifts the samples the other way. */
START_TEST(test_lift_direction)
{
  int N = 8, C = 2;
  lie_samples *s = lie_samples_new(LIE_SO2, 1, N, 0.1);
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  lie_layer L = {.group = LIE_SO2, .lift = 1, .cin = 1, .cout = C, .nout = N, .k = 5,
                 .mask = LIE_MASK_HARD, .net = {.width = 16, .layers = 3, .w0 = 10}};
  snprintf(L.name, sizeof L.name, "lift");
  ck_assert_int_eq(lie_layer_build(&L, g, p), 0);
  int xd[4] = {SV_BATCH, 1, S, S};
  sv_node *x = sv_input(g, "x", 4, xd);
  sv_node *y = sv_conv2d(x, L.w, 1, 0);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 7);
  ck_assert_int_eq(lie_layer_init(&L, p, rng), 0);
  ck_assert_int_eq(lie_layer_fill(&L, s), 0);
  sv_plan *pl = sv_compile(g, 1, &y, 2);
  ck_assert_ptr_nonnull(pl);
  double img[2 * S * S];
  random_digit(rng, img);
  lie_rot90(img, S, img + S * S);
  ck_assert_int_eq(sv_plan_bind(pl, x, img), 0);
  ck_assert_int_eq(lie_layer_bind(&L, pl), 0);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  const double *out = sv_plan_value(pl, y);
  int H = S - 4;
  double worst_right = 0, worst_wrong = 0, scale = 0;
  double *rot = malloc(H * H * sizeof *rot);
  for (int c = 0; c < C; c++)
    for (int i = 0; i < N; i++) {
      const double *o1 = out + ((size_t)C * N + c * N + i) * H * H; /* image 1, (c, i) */
      for (int sh = -1; sh <= 1; sh += 2) {
        int j = ((i + sh * N / 4) % N + N) % N;
        lie_rot90(out + (size_t)(c * N + j) * H * H, H, rot);
        double d = 0;
        for (int q = 0; q < H * H; q++)
          d = fmax(d, fabs(o1[q] - rot[q])), scale = fmax(scale, fabs(o1[q]));
        if (sh < 0)
          worst_right = fmax(worst_right, d);
        else
          worst_wrong = fmax(worst_wrong, d);
      }
    }
  ck_assert_msg(worst_right <= 1e-12 * scale, "shifted by -N/4: %g (scale %g)", worst_right, scale);
  ck_assert_msg(worst_wrong > 1e-3 * scale, "shifted by +N/4 matches too: %g", worst_wrong);
  free(rot);
  sv_plan_free(pl);
  lie_layer_free(&L);
  sv_params_free(p);
  sv_graph_free(g);
  lie_samples_free(s);
  gsl_rng_free(rng);
}
END_TEST

/* The whole network's identity for a group element that maps the pixel
   grid onto itself, with non-trivial positive-definite parts (which the
   so2 test above cannot see, SO(2) being abelian): for g0 the 90-degree
   rotation of lie_rot90, logits(T_g0 f; samples S) = logits(f; g0^-1 S),
   g0^-1 P R(theta) = (R0^T P R0) R(theta - 90 deg). Kernel points at g d
   instead of g^-1 d, a transposed grid, or a wrong angle sign in the
   chart coordinates of g_i^-1 h_j make the two sides differ (the same
   sets moved the other way, g0 S, are checked to differ). */
static void conjugate_samples(lie_samples *s, const lie_samples *from, double turn)
{
  mat2 r = m2_rot(turn), rt = m2_rot(-turn);
  for (int i = 0; i < from->nsets * from->n; i++) {
    mat2 P = m2_mul(m2_mul(rt, m2_of_sym(from->P[i])), r);
    s->P[i] = (sym2){P.a, 0.5 * (P.b + P.c), P.d};
    double t = from->theta[i] - turn;
    t = fmod(t, 2 * LIE_PI);
    s->theta[i] = t < 0 ? t + 2 * LIE_PI : t;
  }
}

START_TEST(test_equivariance_conjugated_samples)
{
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 8);
  double x[6 * S * S], tx[6 * S * S], z0[60], z1[60], z2[60];
  for (int k = 0; k < 6; k++) {
    random_digit(rng, x + k * S * S);
    lie_rot90(x + k * S * S, S, tx + k * S * S);
  }
  for (int grp = LIE_SL2; grp <= LIE_GL2; grp++)
    for (int blocks = 0; blocks <= 1; blocks++) {
      lie_arch a = small_arch((lie_group)grp, 3, 8);
      a.blocks = blocks;
      a.angle = blocks ? LIE_ANGLE_CHART : LIE_ANGLE_CIRCLE;
      a.same = grp == LIE_GL2;
      a.spd_var = 0.5; /* clearly non-trivial P */
      a.mask = grp == LIE_GL2 ? LIE_MASK_SMOOTH : LIE_MASK_HARD;
      lie_model *m = small_model(a, 2, 40 + grp * 2 + blocks);
      lie_samples *S0 = lie_samples_clone(m->samples);
      ck_assert_int_eq(lie_model_logits(m, 6, tx, z0), 0);
      conjugate_samples(m->samples, S0, LIE_PI / 2); /* g0^-1 S */
      ck_assert_int_eq(lie_model_refresh(m), 0);
      ck_assert_int_eq(lie_model_logits(m, 6, x, z1), 0);
      conjugate_samples(m->samples, S0, -LIE_PI / 2); /* g0 S: the wrong way */
      ck_assert_int_eq(lie_model_refresh(m), 0);
      ck_assert_int_eq(lie_model_logits(m, 6, x, z2), 0);
      double d1 = rel_change(z1, z0, 60), d2 = rel_change(z2, z0, 60);
      ck_assert_msg(d1 <= 1e-10, "%s, %d block(s): logits(rot90 x; S) - logits(x; g0^-1 S) = %g "
                    "relative", lie_group_name(a.group), blocks, d1);
      ck_assert_msg(d2 > 1e-4, "%s, %d block(s): the samples moved the wrong way match too (%g)",
                    lie_group_name(a.group), blocks, d2);
      lie_samples_free(S0);
      lie_model_free(m);
    }
  gsl_rng_free(rng);
}
END_TEST

START_TEST(test_gradient)
{
  for (int kind = 0; kind < 4; kind++) { /* lie, cnn, lie with sorted pooling and -kernel_sub 2,
                                            lie with aligned pooling */
    lie_arch a = small_arch(LIE_GL2, 2, 4);
    a.mask = LIE_MASK_SMOOTH;
    a.blocks = 1;
    a.mid = 1;
    a.pad = 0;
    if (kind == 1) {
      a.kind = LIE_MODEL_CNN;
      a.cnn_channels = 3;
    }
    if (kind == 2) {
      a.pool = LIE_POOL_SORTED;
      a.kernel_sub = 2; /* the kernels' means over their cells */
    }
    if (kind == 3) {
      a.pool = LIE_POOL_ALIGN;
      a.align_shift = 1; /* shifts -1, 0, 1 of the 4 samples */
    }
    lie_model *m = small_model(a, 3, 40 + kind);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 8);
    for (int k = 0; k < 3; k++) {
      random_digit(rng, m->xbuf + k * S * S);
      m->ybuf[k] = k * 3;
    }
    sv_objective obj = lie_model_objective(m);
    size_t n = obj.n;
    double *theta = sv_params_data(m->p), *g = malloc(n * sizeof *g), loss;
    ck_assert_int_eq(obj.loss_grad(obj.ctx, theta, &loss, g), 0);
    /* a few entries of every block */
    double worst = 0;
    for (int b = 0; b < sv_params_block_count(m->p); b++) {
      size_t off = sv_params_block_offset(m->p, b), sz = sv_params_block_size(m->p, b);
      for (int t = 0; t < 2; t++) {
        size_t i = off + gsl_rng_uniform_int(rng, sz);
        /* central differences at two steps: the max-pools and the invariant
           max have kinks, and one step may straddle a switch */
        double keep = theta[i], err = 1, fd = 0;
        for (double h = 1e-5; h > 1e-7; h /= 10) {
          double lp, lm;
          theta[i] = keep + h;
          ck_assert_int_eq(obj.loss_grad(obj.ctx, theta, &lp, NULL), 0);
          theta[i] = keep - h;
          ck_assert_int_eq(obj.loss_grad(obj.ctx, theta, &lm, NULL), 0);
          theta[i] = keep;
          double f = (lp - lm) / (2 * h), e = fabs(f - g[i]) / (fabs(f) + fabs(g[i]) + 1e-6);
          if (e < err)
            err = e, fd = f;
        }
        if (err > worst)
          worst = err;
        ck_assert_msg(err < 1e-5, "%s block %s[%zu]: gradient %.10g, finite difference %.10g",
                      kind == 1 ? "cnn" : kind == 2 ? "lie (sorted)" : kind ? "lie (aligned)" : "lie", sv_params_block_name(m->p, b), i - off, g[i], fd);
      }
    }
    free(g);
    gsl_rng_free(rng);
    lie_model_free(m);
  }
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("lieconv");
  TCase *tc = tcase_create("groups");
  tcase_add_test(tc, test_sym2_exp_log_sqrt);
  tcase_add_test(tc, test_polar_chart);
  tcase_add_test(tc, test_angle_guard);
  suite_add_tcase(s, tc);
  tc = tcase_create("samples");
  tcase_add_test(tc, test_samples_draw);
  tcase_add_test(tc, test_samples_file);
  suite_add_tcase(s, tc);
  tc = tcase_create("layers");
  tcase_add_test(tc, test_grid_and_points);
  tcase_add_test(tc, test_lift_direction);
  suite_add_tcase(s, tc);
  tc = tcase_create("data");
  tcase_add_test(tc, test_affine);
  suite_add_tcase(s, tc);
  tc = tcase_create("network");
  tcase_add_test(tc, test_final_size);
  tcase_add_test(tc, test_invariance_so2);
  tcase_add_test(tc, test_kernel_sub);
  tcase_add_test(tc, test_equivariance_conjugated_samples);
  tcase_add_test(tc, test_gradient);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
