/*
 * test_nn.c -- parameters and layers: Glorot initialisation (reproducible,
 * within its bound, biases zero, other blocks untouched), the parameter
 * layout of sv_mlp, and sv_dense / sv_mlp outputs against a forward pass
 * written out here; functional parameters (a network at a node theta): the
 * same values as at the params, and the MAML meta-gradient through one inner
 * step against finite differences of the whole two-step computation.
 */
#include <solver.h>

#include <check.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gsl_rng *rng_new(unsigned long seed)
{
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, seed);
  return r;
}

static int ends_with(const char *s, const char *suffix)
{
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* An MLP 3 -> 64 -> 64 -> 2 plus an extra block of kind "other". */
typedef struct {
  sv_graph *g;
  sv_params *p;
  sv_node *x, *u, *extra;
} net;

static net net_build(void)
{
  net n;
  n.g = sv_graph_new();
  n.p = sv_params_new();
  int d[2] = {SV_BATCH, 3}, ed[1] = {5};
  n.x = sv_input(n.g, "x", 2, d);
  n.u = sv_mlp(n.p, "net", n.x, 64, 2, 2, SV_ACT_TANH);
  n.extra = sv_param(n.g, n.p, "extra", 1, ed);
  ck_assert_msg(n.u && n.extra, "%s", sv_graph_error(n.g));
  return n;
}

static void net_free(net *n)
{
  sv_params_free(n->p);
  sv_graph_free(n->g);
}

/* ------------------------------------------------------------------ */
/* Glorot                                                              */
/* ------------------------------------------------------------------ */

START_TEST(test_glorot_reproducible)
{
  net a = net_build(), b = net_build(), c = net_build();
  size_t n = sv_params_count(a.p);
  ck_assert_uint_eq(n, sv_params_count(b.p));
  gsl_rng *r1 = rng_new(42), *r2 = rng_new(42), *r3 = rng_new(43);
  ck_assert_int_eq(sv_params_init_glorot(a.p, r1), 0);
  ck_assert_int_eq(sv_params_init_glorot(b.p, r2), 0);
  ck_assert_int_eq(sv_params_init_glorot(c.p, r3), 0);
  const double *va = sv_params_data(a.p), *vb = sv_params_data(b.p), *vc = sv_params_data(c.p);
  ck_assert_msg(memcmp(va, vb, n * sizeof *va) == 0, "same seed, different parameters");
  /* another seed: every weight differs (biases are zero in both) */
  size_t weights = 0, differ = 0;
  for (int i = 0; i < sv_params_block_count(a.p); i++) {
    if (!ends_with(sv_params_block_name(a.p, i), ".W"))
      continue;
    size_t off = sv_params_block_offset(a.p, i), sz = sv_params_block_size(a.p, i);
    for (size_t k = off; k < off + sz; k++) {
      weights++;
      differ += va[k] != vc[k];
    }
  }
  ck_assert_uint_gt(weights, 4000);
  ck_assert_uint_eq(differ, weights);
  gsl_rng_free(r1);
  gsl_rng_free(r2);
  gsl_rng_free(r3);
  net_free(&a);
  net_free(&b);
  net_free(&c);
}
END_TEST

START_TEST(test_glorot_bounds)
{
  net a = net_build();
  size_t n = sv_params_count(a.p);
  double *v = sv_params_data(a.p);
  ck_assert_ptr_nonnull(v);
  /* garbage everywhere first: init must overwrite weights and biases */
  for (size_t k = 0; k < n; k++)
    v[k] = 7.25;
  gsl_rng *r = rng_new(9);
  ck_assert_int_eq(sv_params_init_glorot(a.p, r), 0);
  ck_assert_ptr_eq(sv_params_data(a.p), v); /* frozen: the same vector */

  int seen_w = 0, seen_b = 0, seen_extra = 0;
  for (int i = 0; i < sv_params_block_count(a.p); i++) {
    const char *name = sv_params_block_name(a.p, i);
    size_t off = sv_params_block_offset(a.p, i), sz = sv_params_block_size(a.p, i);
    if (ends_with(name, ".W")) {
      /* W is [fan_in, fan_out]: 3x64, 64x64, 64x2 */
      int fan_in = sz == 3 * 64 ? 3 : 64, fan_out = sz == 64 * 2 ? 2 : 64;
      double bound = sqrt(6.0 / (fan_in + fan_out)), m = 0, s = 0, s2 = 0;
      for (size_t k = off; k < off + sz; k++) {
        ck_assert_msg(fabs(v[k]) <= bound, "%s[%zu] = %g outside +-%g", name, k - off, v[k], bound);
        m = fmax(m, fabs(v[k]));
        s += v[k];
        s2 += v[k] * v[k];
      }
      /* uniform on [-bound, bound]: mean 0 (standard error bound / sqrt(3 sz)),
         variance bound^2 / 3; the limits are about 4 standard errors */
      double mean = s / sz, var = s2 / sz - mean * mean;
      ck_assert_msg(m > 0.9 * bound, "%s: largest |w| %g of bound %g", name, m, bound);
      ck_assert_msg(fabs(mean) < 4 * bound / sqrt(3.0 * sz), "%s: mean %g (bound %g, %zu values)",
                    name, mean, bound, sz);
      ck_assert_msg(fabs(var / (bound * bound / 3) - 1) < (sz >= 1000 ? 0.1 : 0.3),
                    "%s: variance %g, expected %g", name, var, bound * bound / 3);
      seen_w++;
    } else if (ends_with(name, ".b")) {
      for (size_t k = off; k < off + sz; k++)
        ck_assert_msg(v[k] == 0.0, "%s[%zu] = %g, expected 0", name, k - off, v[k]);
      seen_b++;
    } else {
      ck_assert_str_eq(name, "extra");
      for (size_t k = off; k < off + sz; k++)
        ck_assert_msg(v[k] == 7.25, "block 'extra' (kind other) was changed by the initialiser");
      seen_extra++;
    }
  }
  ck_assert_int_eq(seen_w, 3);
  ck_assert_int_eq(seen_b, 3);
  ck_assert_int_eq(seen_extra, 1);
  ck_assert_int_eq(sv_params_init_glorot(a.p, NULL), -1);
  gsl_rng_free(r);
  net_free(&a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Layout                                                              */
/* ------------------------------------------------------------------ */

/* depth hidden layers nin -> width -> ... -> width, then width -> nout. */
static size_t mlp_count(int nin, int width, int depth, int nout)
{
  size_t c = 0;
  int prev = nin;
  for (int l = 0; l < depth; l++) {
    c += (size_t)prev * width + width;
    prev = width;
  }
  return c + (size_t)prev * nout + nout;
}

static void check_layout(int nin, int width, int depth, int nout, size_t expect)
{
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  int d[2] = {SV_BATCH, nin};
  sv_node *x = sv_input(g, "x", 2, d);
  sv_node *u = sv_mlp(p, "u", x, width, depth, nout, SV_ACT_TANH);
  ck_assert_msg(u != NULL, "%s", sv_graph_error(g));
  ck_assert_int_eq(sv_ndim(u), 2);
  ck_assert_int_eq(sv_dim(u, 0), SV_BATCH);
  ck_assert_int_eq(sv_dim(u, 1), nout);
  ck_assert_uint_eq(mlp_count(nin, width, depth, nout), expect);
  ck_assert_uint_eq(sv_params_count(p), expect);
  ck_assert_int_eq(sv_params_block_count(p), 2 * (depth + 1));
  size_t off = 0;
  int prev = nin;
  for (int l = 0; l <= depth; l++) {
    char wn[32], bn[32];
    int out = l < depth ? width : nout;
    if (l < depth) {
      snprintf(wn, sizeof wn, "u.%d.W", l);
      snprintf(bn, sizeof bn, "u.%d.b", l);
    } else {
      snprintf(wn, sizeof wn, "u.out.W");
      snprintf(bn, sizeof bn, "u.out.b");
    }
    ck_assert_str_eq(sv_params_block_name(p, 2 * l), wn);
    ck_assert_str_eq(sv_params_block_name(p, 2 * l + 1), bn);
    ck_assert_uint_eq(sv_params_block_offset(p, 2 * l), off);
    ck_assert_uint_eq(sv_params_block_size(p, 2 * l), (size_t)prev * out);
    off += (size_t)prev * out;
    ck_assert_uint_eq(sv_params_block_offset(p, 2 * l + 1), off);
    ck_assert_uint_eq(sv_params_block_size(p, 2 * l + 1), (size_t)out);
    off += (size_t)out;
    prev = out;
  }
  ck_assert_uint_eq(off, expect);
  sv_params_free(p);
  sv_graph_free(g);
}

START_TEST(test_mlp_layout)
{
  /* 1 -> 32, 3 x 32 -> 32, 32 -> 1: 64 + 3 * 1056 + 33 */
  check_layout(1, 32, 4, 1, 3265);
  check_layout(2, 5, 3, 4, 15 + 30 + 30 + 24);
  check_layout(3, 7, 0, 2, 8); /* no hidden layer: one linear layer */
  check_layout(4, 1, 1, 1, 5 + 2);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Forward passes against a hand computation                           */
/* ------------------------------------------------------------------ */

static double act_value(sv_activation a, double z)
{
  switch (a) {
  case SV_ACT_TANH: return tanh(z);
  case SV_ACT_SIGMOID: return 1.0 / (1.0 + exp(-z));
  case SV_ACT_SOFTPLUS: return log1p(exp(z));
  case SV_ACT_SIN: return sin(z);
  case SV_ACT_NONE: break;
  }
  return z;
}

/* out[r, j] = act(sum_i x[r, i] W[i, j] + b[j]) with W row-major [nin, nout]. */
static void dense_ref(const double *x, int rows, int nin, const double *W, const double *b,
                      int nout, sv_activation act, double *out)
{
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < nout; j++) {
      double z = b[j];
      for (int i = 0; i < nin; i++)
        z += x[r * nin + i] * W[i * nout + j];
      out[r * nout + j] = act_value(act, z);
    }
}

START_TEST(test_dense_hand)
{
  enum { ROWS = 4, NIN = 3, NOUT = 2 };
  sv_activation act = (sv_activation)_i;
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  int d[2] = {SV_BATCH, NIN};
  sv_node *x = sv_input(g, "x", 2, d);
  sv_node *y = sv_dense(p, "d", x, NOUT, act);
  ck_assert_msg(y != NULL, "%s", sv_graph_error(g));
  ck_assert_int_eq(sv_dim(y, 0), SV_BATCH);
  ck_assert_int_eq(sv_dim(y, 1), NOUT);
  ck_assert_int_eq(sv_params_block_count(p), 2);
  ck_assert_str_eq(sv_params_block_name(p, 0), "d.W");
  ck_assert_str_eq(sv_params_block_name(p, 1), "d.b");
  double *theta = sv_params_data(p);
  /* W = [[0.5, -1], [0.25, 2], [-0.75, 0.1]], b = [0.3, -0.2] */
  const double W[NIN * NOUT] = {0.5, -1, 0.25, 2, -0.75, 0.1}, b[NOUT] = {0.3, -0.2};
  memcpy(theta, W, sizeof W);
  memcpy(theta + NIN * NOUT, b, sizeof b);
  const double xd[ROWS * NIN] = {1, 2, 3, -0.5, 0.25, 0, 0.1, -0.2, 0.4, -1, -1, 1};
  double want[ROWS * NOUT];
  dense_ref(xd, ROWS, NIN, W, b, NOUT, act, want);

  sv_plan *pl = sv_compile(g, 1, &y, ROWS);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(sv_plan_bind(pl, x, xd), 0);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  const double *v = sv_plan_value(pl, y);
  ck_assert_ptr_nonnull(v);
  for (int k = 0; k < ROWS * NOUT; k++)
    ck_assert_msg(fabs(v[k] - want[k]) <= 1e-15 * fmax(1, fabs(want[k])),
                  "dense (%s) out[%d] = %.17g, expected %.17g", sv_activation_name(act), k, v[k],
                  want[k]);
  sv_plan_free(pl);
  sv_params_free(p);
  sv_graph_free(g);
}
END_TEST

START_TEST(test_mlp_hand)
{
  enum { ROWS = 5, NIN = 2, W_ = 4, NOUT = 3, DEPTH = 2 };
  sv_activation act = _i ? SV_ACT_SIN : SV_ACT_SOFTPLUS;
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  int d[2] = {SV_BATCH, NIN};
  sv_node *x = sv_input(g, "x", 2, d);
  sv_node *y = sv_mlp(p, "m", x, W_, DEPTH, NOUT, act);
  ck_assert_msg(y != NULL, "%s", sv_graph_error(g));
  size_t n = sv_params_count(p);
  double *theta = sv_params_data(p);
  gsl_rng *r = rng_new(21);
  for (size_t k = 0; k < n; k++)
    theta[k] = 2 * gsl_rng_uniform(r) - 1;
  double xd[ROWS * NIN];
  for (int k = 0; k < ROWS * NIN; k++)
    xd[k] = 2 * gsl_rng_uniform(r) - 1;

  /* forward by hand through the documented layout */
  double h0[ROWS * W_], h1[ROWS * W_], want[ROWS * NOUT];
  const double *t = theta;
  dense_ref(xd, ROWS, NIN, t, t + NIN * W_, W_, act, h0);
  t += NIN * W_ + W_;
  dense_ref(h0, ROWS, W_, t, t + W_ * W_, W_, act, h1);
  t += W_ * W_ + W_;
  dense_ref(h1, ROWS, W_, t, t + W_ * NOUT, NOUT, SV_ACT_NONE, want);
  t += W_ * NOUT + NOUT;
  ck_assert_uint_eq((size_t)(t - theta), n);

  sv_plan *pl = sv_compile(g, 1, &y, ROWS);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(sv_plan_bind(pl, x, xd), 0);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  const double *v = sv_plan_value(pl, y);
  ck_assert_ptr_nonnull(v);
  for (int k = 0; k < ROWS * NOUT; k++)
    ck_assert_msg(fabs(v[k] - want[k]) <= 1e-14 * fmax(1, fabs(want[k])),
                  "mlp (%s) out[%d] = %.17g, expected %.17g", sv_activation_name(act), k, v[k],
                  want[k]);
  gsl_rng_free(r);
  sv_plan_free(pl);
  sv_params_free(p);
  sv_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Names and errors                                                    */
/* ------------------------------------------------------------------ */

START_TEST(test_activation_names)
{
  const char *names[] = {"none", "tanh", "sigmoid", "softplus", "sin"};
  const sv_activation acts[] = {SV_ACT_NONE, SV_ACT_TANH, SV_ACT_SIGMOID, SV_ACT_SOFTPLUS,
                                SV_ACT_SIN};
  for (int i = 0; i < 5; i++) {
    sv_activation a = (sv_activation)-1;
    ck_assert_int_eq(sv_activation_parse(names[i], &a), 0);
    ck_assert_int_eq(a, acts[i]);
    ck_assert_str_eq(sv_activation_name(acts[i]), names[i]);
  }
  sv_activation a = SV_ACT_TANH;
  ck_assert_int_eq(sv_activation_parse("relu", &a), -1);
  ck_assert_msg(strstr(sv_errmsg(), "relu") != NULL, "message does not name 'relu': %s",
                sv_errmsg());
  ck_assert_int_eq(a, SV_ACT_TANH);
  ck_assert_int_eq(sv_activation_parse(NULL, &a), -1);
  ck_assert_int_eq(sv_activation_parse("", &a), -1);
}
END_TEST

START_TEST(test_nn_errors)
{
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  int d1[1] = {3};
  sv_node *flat = sv_input(g, "flat", 1, d1);
  ck_assert_ptr_null(sv_dense(p, "layer", flat, 2, SV_ACT_TANH));
  ck_assert_msg(sv_graph_error(g) && strstr(sv_graph_error(g), "layer"),
                "dense error does not name the layer: %s", sv_graph_error(g));
  sv_graph_free(g);

  g = sv_graph_new();
  int d2[2] = {SV_BATCH, 2};
  sv_node *x = sv_input(g, "x", 2, d2);
  ck_assert_ptr_null(sv_mlp(p, "net", x, 0, 2, 1, SV_ACT_TANH));
  ck_assert_msg(sv_graph_error(g) && strstr(sv_graph_error(g), "net"),
                "mlp error does not name the network: %s", sv_graph_error(g));
  sv_graph_free(g);

  /* no blocks after the vector is frozen */
  g = sv_graph_new();
  x = sv_input(g, "x", 2, d2);
  ck_assert_ptr_nonnull(sv_dense(p, "a", x, 2, SV_ACT_NONE));
  ck_assert_ptr_nonnull(sv_params_data(p));
  ck_assert_ptr_null(sv_dense(p, "late", x, 2, SV_ACT_NONE));
  ck_assert_msg(sv_graph_error(g) && strstr(sv_graph_error(g), "frozen"),
                "late block: %s", sv_graph_error(g));
  sv_graph_free(g);
  sv_params_free(p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Functional parameters                                               */
/* ------------------------------------------------------------------ */

/* The network at sv_params_node(p) equals the network at the params. */
START_TEST(test_params_node_same_values)
{
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  int d[2] = {SV_BATCH, 2};
  sv_node *x = sv_input(g, "x", 2, d);
  sv_node *u = sv_mlp_at(p, NULL, "net", x, 5, 2, 1, SV_ACT_TANH);
  sv_node *theta = sv_params_node(g, p);
  sv_node *v = sv_mlp_at(p, theta, "net", x, 5, 2, 1, SV_ACT_TANH);
  ck_assert_msg(u && v, "%s", sv_graph_error(g));
  ck_assert_int_eq(sv_params_block_count(p), 6); /* no block declared twice */
  gsl_rng *r = rng_new(7);
  sv_params_init_glorot(p, r);
  double xd[6] = {0.1, -0.4, 0.7, 0.2, -0.9, 0.5};
  sv_node *outs[2] = {u, v};
  sv_plan *pl = sv_compile(g, 2, outs, 3);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  sv_plan_bind(pl, x, xd);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  for (int k = 0; k < 3; k++)
    ck_assert(sv_plan_value(pl, u)[k] == sv_plan_value(pl, v)[k]);
  /* a view of a wrong-length node, and an unknown block, are refused */
  int n3 = 3;
  ck_assert_ptr_null(sv_params_view(p, sv_input(g, "short", 1, &n3), "net.0.W"));
  ck_assert_msg(strstr(sv_graph_error(g), "must be ["), "%s", sv_graph_error(g));
  sv_plan_free(pl);
  gsl_rng_free(r);
  sv_params_free(p);
  sv_graph_free(g);
}
END_TEST

/*
 * MAML with one inner SGD step on a tiny tanh network:
 *   theta' = theta - alpha grad_theta L_in(theta),  L_out(theta')
 * The meta-gradient d L_out / d theta (sv_grad_params through the inner
 * step: second derivatives of the network) against central differences of
 * the whole two-step computation, and against the first-order gradient,
 * which must differ by the dropped term.
 */
START_TEST(test_maml_meta_gradient)
{
  const double alpha = 0.3, h = 1e-6;
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  int d[2] = {SV_BATCH, 2};
  sv_node *xin = sv_input(g, "x_in", 2, d), *yin = sv_input(g, "y_in", 2, (int[]){SV_BATCH, 1});
  sv_node *xout = sv_input(g, "x_out", 2, d), *yout = sv_input(g, "y_out", 2, (int[]){SV_BATCH, 1});
  ck_assert_ptr_nonnull(sv_mlp_at(p, NULL, "net", xin, 4, 1, 1, SV_ACT_TANH)); /* declares */
  sv_node *theta = sv_params_node(g, p);
  sv_node *lin = sv_mean(sv_square(sv_sub(sv_mlp_at(p, theta, "net", xin, 4, 1, 1, SV_ACT_TANH), yin)));
  sv_node *gin = sv_grad(lin, theta);
  sv_node *theta1 = sv_sub(theta, sv_scale(gin, alpha));
  sv_node *lout =
    sv_mean(sv_square(sv_sub(sv_mlp_at(p, theta1, "net", xout, 4, 1, 1, SV_ACT_TANH), yout)));
  sv_node *meta = sv_grad_params(lout, p);
  /* first order: the outer gradient at theta', treating theta' as a leaf */
  sv_node *fo;
  sv_node *dth1[1];
  ck_assert_int_eq(sv_vjp(lout, NULL, 1, &theta1, dth1), 0);
  fo = dth1[0];
  ck_assert_msg(meta && fo, "%s", sv_graph_error(g));
  sv_node *outs[3] = {lout, meta, fo};
  sv_plan *pl = sv_compile(g, 3, outs, 4);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  double xi[8] = {0.3, -0.2, 0.8, 0.1, -0.5, 0.6, 0.0, -0.9}, yi[4] = {0.5, -0.1, 0.2, 0.7};
  double xo[8] = {-0.3, 0.4, 0.2, -0.7, 0.9, 0.1, -0.6, -0.2}, yo[4] = {0.1, 0.3, -0.4, 0.6};
  sv_plan_bind(pl, xin, xi);
  sv_plan_bind(pl, yin, yi);
  sv_plan_bind(pl, xout, xo);
  sv_plan_bind(pl, yout, yo);
  gsl_rng *r = rng_new(11);
  sv_params_init_glorot(p, r);
  double *th = sv_params_data(p);
  size_t n = sv_params_count(p);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  double *mg = malloc(n * sizeof *mg), *fg = malloc(n * sizeof *fg);
  memcpy(mg, sv_plan_value(pl, meta), n * sizeof *mg);
  memcpy(fg, sv_plan_value(pl, fo), n * sizeof *fg);
  double maxerr = 0, maxg = 0, diff = 0, dn = 0;
  for (size_t k = 0; k < n; k++) {
    double t0 = th[k];
    th[k] = t0 + h;
    sv_plan_run(pl);
    double fp = sv_plan_value(pl, lout)[0];
    th[k] = t0 - h;
    sv_plan_run(pl);
    double fm = sv_plan_value(pl, lout)[0];
    th[k] = t0;
    double fd = (fp - fm) / (2 * h);
    maxerr = fmax(maxerr, fabs(fd - mg[k]));
    maxg = fmax(maxg, fabs(fd));
    diff += (mg[k] - fg[k]) * (mg[k] - fg[k]);
    dn += mg[k] * mg[k];
  }
  ck_assert_msg(maxerr <= 1e-8 * maxg, "meta-gradient vs differences: max error %.3g (max |g| %.3g)",
                maxerr, maxg);
  /* the inner step's second-order term is not negligible here */
  ck_assert_msg(sqrt(diff / dn) > 1e-3, "first- and second-order meta-gradients agree to %.3g",
                sqrt(diff / dn));
  free(mg), free(fg);
  sv_plan_free(pl);
  gsl_rng_free(r);
  sv_params_free(p);
  sv_graph_free(g);
}
END_TEST

static Suite *nn_suite(void)
{
  Suite *s = suite_create("nn");
  TCase *tc = tcase_create("glorot");
  tcase_add_test(tc, test_glorot_reproducible);
  tcase_add_test(tc, test_glorot_bounds);
  suite_add_tcase(s, tc);
  tc = tcase_create("layers");
  tcase_add_test(tc, test_mlp_layout);
  tcase_add_loop_test(tc, test_dense_hand, 0, 5);
  tcase_add_loop_test(tc, test_mlp_hand, 0, 2);
  tcase_add_test(tc, test_activation_names);
  tcase_add_test(tc, test_nn_errors);
  suite_add_tcase(s, tc);
  tc = tcase_create("functional");
  tcase_add_test(tc, test_params_node_same_values);
  tcase_add_test(tc, test_maml_meta_gradient);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(nn_suite()); /* fork mode unless CK_FORK=no */
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
