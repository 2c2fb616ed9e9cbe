/*
 * test_fft_conv.c -- sv_causal_conv at the sizes of state-space models,
 * against direct sums (test_ops.c checks its derivatives against finite
 * differences at small sizes):
 *
 *   - y = C(u, k) and its adjoints Du(G, k), Dk(G, u) (sv_vjp with a
 *     random seed G) against O(B H L^2) sums, to 1e-12 relative (the
 *     largest error over the largest value), for L = 50, 97, 128, 784,
 *     1000 and batches whose sequence count is and is not a multiple of the
 *     kernel's chunk;
 *   - a second run of the same plan on new data (no state left from the
 *     first: the zero padding is rebuilt every run);
 *   - two plans of one graph for different batch sizes, alive together;
 *   - shapes that do not fit, refused with messages naming them.
 */
#include <solver.h>

#include <check.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double TOL = 1e-12;

/* The three sums, u [B, L, H], k [H, L], G [B, L, H]. */
static void ref_conv(int B, int L, int H, const double *u, const double *k, double *y)
{
  for (int b = 0; b < B; b++)
    for (int l = 0; l < L; l++)
      for (int h = 0; h < H; h++) {
        double s = 0;
        for (int j = 0; j <= l; j++)
          s += k[h * L + j] * u[((size_t)b * L + l - j) * H + h];
        y[((size_t)b * L + l) * H + h] = s;
      }
}

static void ref_du(int B, int L, int H, const double *G, const double *k, double *du)
{
  for (int b = 0; b < B; b++)
    for (int m = 0; m < L; m++)
      for (int h = 0; h < H; h++) {
        double s = 0;
        for (int l = m; l < L; l++)
          s += G[((size_t)b * L + l) * H + h] * k[h * L + l - m];
        du[((size_t)b * L + m) * H + h] = s;
      }
}

static void ref_dk(int B, int L, int H, const double *G, const double *u, double *dk)
{
  for (int h = 0; h < H; h++)
    for (int j = 0; j < L; j++) {
      double s = 0;
      for (int b = 0; b < B; b++)
        for (int l = j; l < L; l++)
          s += G[((size_t)b * L + l) * H + h] * u[((size_t)b * L + l - j) * H + h];
      dk[h * L + j] = s;
    }
}

/* max |got - want| / max |want| <= TOL */
static void expect_rel(const char *tag, const char *what, const double *got, const double *want,
                       size_t n)
{
  ck_assert_msg(got != NULL, "%s: %s: no value: %s", tag, what, sv_errmsg());
  double err = 0, mx = 0;
  size_t at = 0;
  for (size_t i = 0; i < n; i++) {
    if (fabs(got[i] - want[i]) > err) {
      err = fabs(got[i] - want[i]);
      at = i;
    }
    mx = fmax(mx, fabs(want[i]));
  }
  ck_assert_msg(mx > 0, "%s: %s: the reference is all zeros", tag, what);
  ck_assert_msg(err <= TOL * mx, "%s: %s: max error %.3g at [%zu] (%.17g, expected %.17g) over max "
                "value %.3g: relative %.3g > %.0e", tag, what, err, at, got[at], want[at], mx,
                err / mx, TOL);
}

static void fill(gsl_rng *r, double *x, size_t n)
{
  for (size_t i = 0; i < n; i++)
    x[i] = 2 * gsl_rng_uniform(r) - 1;
}

/* u declared [SV_BATCH, L, H] (or [L, H] when unbatched), compiled for B. */
static void check_direct(int B, int L, int H, int batched)
{
  char tag[96];
  snprintf(tag, sizeof tag, "causal_conv B=%d L=%d H=%d%s", B, L, H, batched ? "" : " (unbatched)");
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, (unsigned long)(1000 * L + 10 * H + B));
  sv_graph *g = sv_graph_new();
  int du_dims[3] = {SV_BATCH, L, H}, kd[2] = {H, L};
  int nd = batched ? 3 : 2;
  const int *ud = batched ? du_dims : du_dims + 1;
  sv_node *u = sv_input(g, "u", nd, ud), *k = sv_input(g, "k", 2, kd);
  sv_node *G = sv_input(g, "G", nd, ud);
  sv_node *y = sv_causal_conv(u, k);
  sv_node *x[2] = {u, k}, *d[2];
  ck_assert_msg(y != NULL, "%s: %s", tag, sv_graph_error(g));
  ck_assert_int_eq(sv_vjp(y, G, 2, x, d), 0);
  ck_assert_msg(sv_graph_error(g) == NULL, "%s: %s", tag, sv_graph_error(g));
  sv_node *outs[3] = {y, d[0], d[1]};
  sv_plan *pl = sv_compile(g, 3, outs, B);
  ck_assert_msg(pl != NULL, "%s: compile: %s", tag, sv_errmsg());

  size_t nu = (size_t)B * L * H, nk = (size_t)H * L;
  double *ub = malloc(nu * sizeof *ub), *kb = malloc(nk * sizeof *kb), *Gb = malloc(nu * sizeof *Gb);
  double *yr = malloc(nu * sizeof *yr), *dur = malloc(nu * sizeof *dur), *dkr = malloc(nk * sizeof *dkr);
  ck_assert(ub && kb && Gb && yr && dur && dkr);
  ck_assert_int_eq(sv_plan_bind(pl, u, ub), 0);
  ck_assert_int_eq(sv_plan_bind(pl, k, kb), 0);
  ck_assert_int_eq(sv_plan_bind(pl, G, Gb), 0);
  ck_assert_uint_eq(sv_plan_size(pl, y), nu);
  ck_assert_uint_eq(sv_plan_size(pl, d[0]), nu);
  ck_assert_uint_eq(sv_plan_size(pl, d[1]), nk);
  for (int run = 0; run < 2; run++) { /* the second run on new data */
    char t2[128];
    snprintf(t2, sizeof t2, "%s, run %d", tag, run + 1);
    fill(rng, ub, nu);
    fill(rng, kb, nk);
    fill(rng, Gb, nu);
    ck_assert_msg(sv_plan_run(pl) == 0, "%s: run: %s", t2, sv_errmsg());
    ref_conv(B, L, H, ub, kb, yr);
    ref_du(B, L, H, Gb, kb, dur);
    ref_dk(B, L, H, Gb, ub, dkr);
    expect_rel(t2, "y", sv_plan_value(pl, y), yr, nu);
    expect_rel(t2, "du = Du(G, k)", sv_plan_value(pl, d[0]), dur, nu);
    expect_rel(t2, "dk = Dk(G, u)", sv_plan_value(pl, d[1]), dkr, nk);
  }
  free(ub), free(kb), free(Gb), free(yr), free(dur), free(dkr);
  sv_plan_free(pl);
  sv_graph_free(g);
  gsl_rng_free(rng);
}

/* L = 784 has n = 1568 and 20 sequences per chunk; B H = 45 is two full
   chunks and one of 5, B H = 12 is one partial chunk. */
static const struct {
  int B, L, H, batched;
} direct_cases[] = {
  {3, 50, 4, 1}, {3, 97, 4, 1}, {3, 128, 4, 1}, {3, 784, 4, 1}, {5, 784, 9, 1},
  {2, 1000, 3, 1}, {1, 97, 4, 0}, {1, 784, 5, 0},
};
#define NDIRECT ((int)(sizeof direct_cases / sizeof direct_cases[0]))

START_TEST(test_direct)
{
  check_direct(direct_cases[_i].B, direct_cases[_i].L, direct_cases[_i].H, direct_cases[_i].batched);
}
END_TEST

/* One graph, plans for batch 4 and 1 alive together, run interleaved. */
START_TEST(test_two_plans)
{
  enum { L = 37, H = 3 };
  sv_graph *g = sv_graph_new();
  int ud[3] = {SV_BATCH, L, H}, kd[2] = {H, L};
  sv_node *u = sv_input(g, "u", 3, ud), *k = sv_input(g, "k", 2, kd);
  sv_node *y = sv_causal_conv(u, k);
  sv_node *f = sv_sum(sv_square(y));
  sv_node *gk = sv_grad(f, k);
  sv_node *outs[2] = {y, gk};
  sv_plan *p4 = sv_compile(g, 2, outs, 4), *p1 = sv_compile(g, 2, outs, 1);
  ck_assert_msg(p4 && p1, "%s", sv_errmsg());
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  double ub[4 * L * H], kb[H * L], yr[4 * L * H], dkr[H * L], G[4 * L * H];
  fill(rng, ub, 4 * L * H);
  fill(rng, kb, H * L);
  sv_plan_bind(p4, u, ub), sv_plan_bind(p4, k, kb);
  sv_plan_bind(p1, u, ub + 3 * L * H), sv_plan_bind(p1, k, kb); /* the last row alone */
  for (int rep = 0; rep < 2; rep++) {
    ck_assert_int_eq(sv_plan_run(p4), 0);
    ck_assert_int_eq(sv_plan_run(p1), 0);
  }
  for (int b = 0; b < 2; b++) {
    int Bn = b ? 1 : 4;
    const double *uu = b ? ub + 3 * L * H : ub;
    sv_plan *p = b ? p1 : p4;
    ref_conv(Bn, L, H, uu, kb, yr);
    for (int i = 0; i < Bn * L * H; i++)
      G[i] = 2 * yr[i];
    ref_dk(Bn, L, H, G, uu, dkr);
    expect_rel(b ? "batch 1" : "batch 4", "y", sv_plan_value(p, y), yr, (size_t)Bn * L * H);
    expect_rel(b ? "batch 1" : "batch 4", "d sum(y^2)/dk", sv_plan_value(p, gk), dkr, H * L);
  }
  sv_plan_free(p4);
  sv_plan_free(p1);
  sv_graph_free(g);
  gsl_rng_free(rng);
}
END_TEST

static void expect_refused(sv_node *u, sv_node *k, const char *msg)
{
  sv_graph *g = sv_node_graph(u);
  ck_assert_ptr_null(sv_causal_conv(u, k));
  ck_assert_msg(sv_graph_error(g) && strstr(sv_graph_error(g), msg), "expected '%s' in: %s", msg,
                sv_graph_error(g) ? sv_graph_error(g) : "(no error)");
}

START_TEST(test_shape_errors)
{
  static const struct {
    int und, ud[4], knd, kd[4];
    const char *msg;
  } bad[] = {
    {3, {SV_BATCH, 8, 3}, 2, {3, 7}, "causal_conv: u [B,8,3] and k [3,7]: k must be [H, L] = [3,8]"},
    {3, {SV_BATCH, 8, 3}, 2, {4, 8}, "causal_conv: u [B,8,3] and k [4,8]: k must be [H, L] = [3,8]"},
    {2, {8, 3}, 2, {8, 3}, "causal_conv: u [8,3] and k [8,3]: k must be [H, L] = [3,8]"},
    {2, {8, 3}, 1, {24}, "causal_conv: u [8,3] and k [24]: k must be [H, L] = [3,8]"},
    {2, {8, 3}, 3, {1, 3, 8}, "causal_conv: u [8,3] and k [1,3,8]: k must be [H, L] = [3,8]"},
    {2, {8, 3}, 2, {SV_BATCH, 8}, "causal_conv: u [8,3] and k [B,8]: k must be [H, L] = [3,8]"},
    {1, {8}, 2, {1, 8}, "causal_conv: u is [8]; it must be [B, L, H] or [L, H]"},
    {4, {2, 2, 8, 3}, 2, {3, 8}, "causal_conv: u is [2,2,8,3]; it must be [B, L, H] or [L, H]"},
    {2, {SV_BATCH, 3}, 2, {3, 1}, "causal_conv: u is [B,3]; it must be [B, L, H] or [L, H]"},
    {2, {(1 << 28) + 1, 1}, 2, {1, (1 << 28) + 1},
     "causal_conv: u [268435457,1]: sequences of 268435457 steps are longer than the 268435456"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sv_graph *g = sv_graph_new();
    sv_node *u = sv_input(g, "u", bad[i].und, bad[i].ud), *k = sv_input(g, "k", bad[i].knd, bad[i].kd);
    ck_assert_msg(u && k, "%s", sv_graph_error(g));
    expect_refused(u, k, bad[i].msg);
    sv_graph_free(g);
  }
  /* NULL in, NULL out */
  sv_graph *g = sv_graph_new();
  int kd[2] = {3, 8};
  ck_assert_ptr_null(sv_causal_conv(NULL, sv_input(g, "k", 2, kd)));
  sv_graph_free(g);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("fft_conv");
  TCase *tc = tcase_create("direct");
  tcase_add_loop_test(tc, test_direct, 0, NDIRECT);
  suite_add_tcase(s, tc);
  tc = tcase_create("two_plans");
  tcase_add_test(tc, test_two_plans);
  suite_add_tcase(s, tc);
  tc = tcase_create("shape_errors");
  tcase_add_test(tc, test_shape_errors);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
