/*
 * test_hamiltonian.c -- the pieces of hamiltonian_meta.so (issue 8):
 *
 *   - the six systems: analytic dH/dx against central differences of H, the
 *     data's labels equal J grad H, energy drift of the generated data;
 *   - the graph network: its vector field (grad_x H through derivative
 *     nodes) and the weight gradient of the loss against central
 *     differences, for 1, 2 and 3 particles and 1 and 2 rounds;
 *   - second-order MAML: the meta-gradient against central differences of
 *     the whole inner + outer computation on a tiny 3-particle network
 *     (so through third derivatives of the distance |q_i - q_j|), and the
 *     first-order one differing from it by exactly the dropped term
 *     -alpha Hess(L_support) g1 (a silently first-order MAML fails here);
 *   - one particle: no edges, the edge and message blocks get exactly zero
 *     gradients (inner, first- and second-order), nothing fails;
 *   - a meta-batch of 1-, 2- and 3-particle tasks: its gradient is the mean
 *     of each task's own MAML gradient (own inner step), and matches
 *     central differences of the meta-loss along a random direction;
 *   - linear CKA: 1 for the same representation up to rotation, shift and
 *     scale; small for unrelated ones.
 */
#include "eval.h"

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

static ham_dataset small_data(int system, int ntraj, unsigned long seed)
{
  ham_dataset d;
  int rc = ham_dataset_generate(system, ntraj, 200, 10.0, 1e-12, seed, &d);
  ck_assert_msg(rc == 0, "%s: %s", ham_system(system)->name, sv_errmsg());
  return d;
}

static double maxabs(size_t n, const double *v)
{
  double m = 0;
  for (size_t i = 0; i < n; i++)
    m = fmax(m, fabs(v[i]));
  return m;
}

static double norm2(size_t n, const double *v)
{
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += v[i] * v[i];
  return sqrt(s);
}

/* ------------------------------------------------------------------ */
/* Systems                                                             */
/* ------------------------------------------------------------------ */

START_TEST(test_system_gradients)
{
  int id = _i;
  ham_dataset d = small_data(id, 3, 100 + (unsigned long)id);
  const double h = 1e-6;
  double worst = 0, worst_label = 0;
  for (int j = 0; j < d.ntraj; j++)
    for (int k = 0; k < d.npoints; k += 17) {
      double x[HAM_MAX_STATE], g[HAM_MAX_STATE], f[HAM_MAX_STATE];
      memcpy(x, ham_state(&d, j, k), (size_t)d.dim * sizeof *x);
      ham_gradient(id, x, g);
      for (int i = 0; i < d.dim; i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double ep = ham_energy(id, x);
        x[i] = x0 - h;
        double em = ham_energy(id, x);
        x[i] = x0;
        double fd = (ep - em) / (2 * h);
        worst = fmax(worst, fabs(fd - g[i]) / fmax(1.0, fabs(g[i])));
      }
      /* the labels are J grad H */
      ham_field(id, x, f);
      const double *y = ham_deriv(&d, j, k);
      for (int i = 0; i < d.nodes; i++) {
        worst_label = fmax(worst_label, fabs(y[4 * i] - g[4 * i + 2]));
        worst_label = fmax(worst_label, fabs(y[4 * i + 1] - g[4 * i + 3]));
        worst_label = fmax(worst_label, fabs(y[4 * i + 2] + g[4 * i]));
        worst_label = fmax(worst_label, fabs(y[4 * i + 3] + g[4 * i + 1]));
        for (int c = 0; c < 4; c++)
          ck_assert(f[4 * i + c] == y[4 * i + c]);
      }
    }
  /* measured: 1e-10 and below (central differences at h = 1e-6) */
  ck_assert_msg(worst < 1e-7, "%s: dH/dx vs central differences of H: %.3g", ham_system(id)->name,
                worst);
  ck_assert_msg(worst_label == 0, "%s: labels differ from J grad H by %.3g", ham_system(id)->name,
                worst_label);
  /* measured: 1e-15 (one particle) to 5e-12 (two bodies) */
  ck_assert_msg(d.max_drift < 1e-8, "%s: energy drift %.3g", ham_system(id)->name, d.max_drift);
  ham_dataset_free(&d);
}
END_TEST

START_TEST(test_system_names)
{
  ck_assert_int_eq(ham_system_find("henon_heiles"), HAM_HENON_HEILES);
  ck_assert_int_eq(ham_system_find("three-body"), HAM_THREE_BODY);
  ck_assert_int_eq(ham_system_find("four_body"), -1);
  for (int i = 0; i < HAM_NSYSTEMS; i++)
    ck_assert_int_eq(ham_system_find(ham_system(i)->name), i);
  ck_assert_int_eq(ham_system(HAM_TWO_BODY)->nodes, 2);
  ck_assert_int_eq(ham_system(HAM_THREE_BODY)->nodes, 3);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The network                                                         */
/* ------------------------------------------------------------------ */

static const int sys_of_nodes[4] = {0, HAM_HENON_HEILES, HAM_TWO_BODY, HAM_THREE_BODY};

/* Field and weight gradient against central differences. _i: particles
   1..3 times rounds 1..2. */
START_TEST(test_network_fd)
{
  int N = 1 + _i % 3, rounds = 1 + _i / 3, K = 4;
  ham_arch a = {5, rounds, HAM_ACT_TANH, HAM_LOSS_MEAN};
  ham_model *m = ham_model_new(&a);
  ck_assert_msg(m != NULL, "%s", sv_errmsg());
  ham_eval_prog ev;
  ham_train_prog tr;
  ck_assert_msg(ham_eval_prog_build(m, N, K, 1, &ev) == 0, "%s", sv_errmsg());
  ck_assert_msg(ham_train_prog_build(m, N, K, &tr) == 0, "%s", sv_errmsg());
  gsl_rng *rng = rng_new(7 + (unsigned long)_i);
  ck_assert_int_eq(ham_model_init(m, rng), 0);
  double *theta = sv_params_data(ham_model_params(m));
  size_t n = sv_params_count(ham_model_params(m));
  /* biases away from zero, so that every term of the network is exercised */
  for (size_t i = 0; i < n; i++)
    theta[i] += 0.3 * (gsl_rng_uniform(rng) - 0.5);
  ham_dataset d = small_data(sys_of_nodes[N], 1, 5);
  int idx[4] = {3, 50, 101, 170};
  ham_task_fill(&d, 0, K, idx, ev.bx, NULL);
  ham_task_fill(&d, 0, K, idx, tr.bx, tr.by);

  /* 1. grad_x H per state against central differences of H per state */
  int dim = 4 * N;
  double *g = malloc((size_t)K * dim * sizeof *g);
  ck_assert_int_eq(sv_plan_run(ev.plan), 0);
  memcpy(g, sv_plan_value(ev.plan, ev.net.grad), (size_t)K * dim * sizeof *g);
  const double h = 1e-6;
  double err = 0, gmax = maxabs((size_t)K * dim, g);
  for (int k = 0; k < K; k++)
    for (int i = 0; i < dim; i++) {
      double *xi = ev.bx + (size_t)k * dim + i, x0 = *xi;
      *xi = x0 + h;
      sv_plan_run(ev.plan);
      double hp = sv_plan_value(ev.plan, ev.net.Hpoint)[k];
      *xi = x0 - h;
      sv_plan_run(ev.plan);
      double hm = sv_plan_value(ev.plan, ev.net.Hpoint)[k];
      *xi = x0;
      err = fmax(err, fabs((hp - hm) / (2 * h) - g[(size_t)k * dim + i]));
    }
  /* measured: ~1e-10 relative */
  ck_assert_msg(err < 1e-7 * gmax, "N = %d, rounds %d: grad_x H vs differences: %.3g (max %.3g)", N,
                rounds, err, gmax);

  /* 2. the loss's weight gradient against central differences */
  double *wg = malloc(n * sizeof *wg);
  ck_assert_int_eq(sv_plan_run(tr.plan), 0);
  memcpy(wg, sv_plan_value(tr.plan, tr.grad), n * sizeof *wg);
  err = 0;
  for (size_t i = 0; i < n; i++) {
    double t0 = theta[i];
    theta[i] = t0 + h;
    sv_plan_run(tr.plan);
    double lp = sv_plan_value(tr.plan, tr.L)[0];
    theta[i] = t0 - h;
    sv_plan_run(tr.plan);
    double lm = sv_plan_value(tr.plan, tr.L)[0];
    theta[i] = t0;
    err = fmax(err, fabs((lp - lm) / (2 * h) - wg[i]));
  }
  double wmax = maxabs(n, wg);
  ck_assert_msg(wmax > 0, "zero weight gradient");
  ck_assert_msg(err < 1e-7 * wmax, "N = %d, rounds %d: weight gradient vs differences: %.3g (max %.3g)",
                N, rounds, err, wmax);
  free(g), free(wg);
  ham_dataset_free(&d);
  ham_eval_prog_free(&ev);
  ham_train_prog_free(&tr);
  ham_model_free(m);
  gsl_rng_free(rng);
}
END_TEST

/* ------------------------------------------------------------------ */
/* MAML                                                                */
/* ------------------------------------------------------------------ */

typedef struct {
  ham_model *m;
  ham_maml_prog p;
  ham_dataset d;
  double *theta;
  size_t n;
} maml_fixture;

static void maml_setup(maml_fixture *f, int N, int width, int K, double alpha, unsigned long seed)
{
  ham_arch a = {width, 1, HAM_ACT_TANH, HAM_LOSS_MEAN};
  f->m = ham_model_new(&a);
  ck_assert_msg(f->m != NULL, "%s", sv_errmsg());
  ck_assert_msg(ham_maml_prog_build(f->m, N, K, K, HAM_PROG_SECOND | HAM_PROG_FIRST | HAM_PROG_ADAPT,
                                    &f->p) == 0, "%s", sv_errmsg());
  gsl_rng *rng = rng_new(seed);
  ck_assert_int_eq(ham_model_init(f->m, rng), 0);
  f->theta = sv_params_data(ham_model_params(f->m));
  f->n = sv_params_count(ham_model_params(f->m));
  for (size_t i = 0; i < f->n; i++)
    f->theta[i] += 0.2 * (gsl_rng_uniform(rng) - 0.5);
  gsl_rng_free(rng);
  f->d = small_data(sys_of_nodes[N], 1, seed);
  int idx[64];
  for (int k = 0; k < 2 * K; k++)
    idx[k] = (37 * k + 11) % 200;
  ham_task_fill(&f->d, 0, K, idx, f->p.bxs, f->p.bys);
  ham_task_fill(&f->d, 0, K, idx + K, f->p.bxq, f->p.byq);
  f->p.balpha = alpha;
}

static void maml_teardown(maml_fixture *f)
{
  ham_maml_prog_free(&f->p);
  ham_dataset_free(&f->d);
  ham_model_free(f->m);
}

START_TEST(test_maml_second_order_fd)
{
  const double alpha = 0.05, h = 1e-5;
  maml_fixture f;
  maml_setup(&f, 3, 4, 3, alpha, 21); /* 3 particles: third derivatives of |q_i - q_j| */
  size_t n = f.n;
  double *g2 = malloc(n * sizeof *g2), *g1 = malloc(n * sizeof *g1), *fd = malloc(n * sizeof *fd);
  ck_assert_int_eq(sv_plan_run(f.p.plan2), 0);
  memcpy(g2, sv_plan_value(f.p.plan2, f.p.meta2), n * sizeof *g2);
  memcpy(g1, sv_plan_value(f.p.plan2, f.p.meta1), n * sizeof *g1);
  /* the first-order plan gives the same g1 */
  ck_assert_int_eq(sv_plan_run(f.p.plan1), 0);
  const double *g1b = sv_plan_value(f.p.plan1, f.p.meta1);
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(fabs(g1b[i] - g1[i]) <= 1e-14 * (1 + fabs(g1[i])), "plan1 and plan2 differ at %zu", i);
  /* central differences of theta -> Lq(theta - alpha grad Ls(theta)), the
     whole inner + outer computation */
  for (size_t i = 0; i < n; i++) {
    double t0 = f.theta[i];
    f.theta[i] = t0 + h;
    sv_plan_run(f.p.plan2);
    double lp = sv_plan_value(f.p.plan2, f.p.Lq)[0];
    f.theta[i] = t0 - h;
    sv_plan_run(f.p.plan2);
    double lm = sv_plan_value(f.p.plan2, f.p.Lq)[0];
    f.theta[i] = t0;
    fd[i] = (lp - lm) / (2 * h);
  }
  double e2 = 0, e1 = 0, dn = 0;
  for (size_t i = 0; i < n; i++) {
    e2 = fmax(e2, fabs(g2[i] - fd[i]));
    e1 = fmax(e1, fabs(g1[i] - fd[i]));
    dn += (g2[i] - g1[i]) * (g2[i] - g1[i]);
  }
  double scale = maxabs(n, fd), rel_gap = sqrt(dn) / norm2(n, g2);
  printf("MAML second order vs differences: max error %.2e of max |g| %.2e; first order off by "
         "%.2e; |g2 - g1| / |g2| = %.3f\n", e2, scale, e1, rel_gap);
  ck_assert_msg(e2 < 1e-6 * scale, "second-order meta-gradient vs differences: %.3g (max %.3g)", e2,
                scale);
  /* measured here: second order matches to 3e-9 of max |g|; the dropped
     term is 81% of |g2| (alpha = 0.05, K = 3, width 4), so the first-order
     gradient misses the differences by ~1e8 times the second-order error */
  ck_assert_msg(rel_gap > 0.03, "first- and second-order agree to %.3g: the second-order term is "
                "not exercised", rel_gap);
  ck_assert_msg(e1 > 1e3 * e2, "first order as close to the differences as second order");

  /* g2 - g1 is exactly the dropped term -alpha Hess(Ls)(theta) g1: the
     Hessian-vector product from central differences of the inner gradient */
  double *gp = malloc(n * sizeof *gp), *hv = malloc(n * sizeof *hv), *t0 = malloc(n * sizeof *t0);
  memcpy(t0, f.theta, n * sizeof *t0);
  double eps = 1e-5 / norm2(n, g1);
  for (size_t i = 0; i < n; i++)
    f.theta[i] = t0[i] + eps * g1[i];
  sv_plan_run(f.p.adapt);
  memcpy(gp, sv_plan_value(f.p.adapt, f.p.gs), n * sizeof *gp);
  for (size_t i = 0; i < n; i++)
    f.theta[i] = t0[i] - eps * g1[i];
  sv_plan_run(f.p.adapt);
  const double *gm = sv_plan_value(f.p.adapt, f.p.gs);
  for (size_t i = 0; i < n; i++)
    hv[i] = -alpha * (gp[i] - gm[i]) / (2 * eps);
  memcpy(f.theta, t0, n * sizeof *t0);
  double de = 0, dd = 0;
  for (size_t i = 0; i < n; i++) {
    de += (g2[i] - g1[i] - hv[i]) * (g2[i] - g1[i] - hv[i]);
    dd += (g2[i] - g1[i]) * (g2[i] - g1[i]);
  }
  printf("g2 - g1 against -alpha Hess(Ls) g1: relative difference %.2e\n", sqrt(de / dd));
  ck_assert_msg(sqrt(de / dd) < 1e-5, "g2 - g1 is not the dropped term: %.3g", sqrt(de / dd));
  free(g2), free(g1), free(fd), free(gp), free(hv), free(t0);
  maml_teardown(&f);
}
END_TEST

START_TEST(test_one_particle_zero_edge_gradients)
{
  maml_fixture f;
  maml_setup(&f, 1, 6, 5, 0.05, 3);
  ck_assert_int_eq(sv_plan_run(f.p.plan2), 0);
  ck_assert_int_eq(sv_plan_run(f.p.adapt), 0);
  const double *g2 = sv_plan_value(f.p.plan2, f.p.meta2), *g1 = sv_plan_value(f.p.plan2, f.p.meta1);
  const double *gs = sv_plan_value(f.p.adapt, f.p.gs);
  sv_params *P = ham_model_params(f.m);
  int edge_blocks = 0;
  for (int b = 0; b < ham_model_nblocks(f.m); b++) {
    size_t off = sv_params_block_offset(P, b), sz = sv_params_block_size(P, b);
    double mx = 0;
    for (size_t i = off; i < off + sz; i++) {
      ck_assert(isfinite(g2[i]) && isfinite(g1[i]) && isfinite(gs[i]));
      mx = fmax(mx, fmax(fabs(g2[i]), fmax(fabs(g1[i]), fabs(gs[i]))));
    }
    if (ham_model_block_is_edge(f.m, b)) {
      edge_blocks++;
      ck_assert_msg(mx == 0.0, "block %s: gradient %.3g, expected exactly 0 without edges",
                    sv_params_block_name(P, b), mx);
    } else {
      ck_assert_msg(mx > 0, "block %s: zero gradient", sv_params_block_name(P, b));
    }
  }
  ck_assert_int_eq(edge_blocks, 5); /* edge.W, edge.b, msg1.W, msg1.b, readout.edge */
  maml_teardown(&f);
}
END_TEST

START_TEST(test_mixed_meta_batch)
{
  const int K = 4;
  ham_dataset d[HAM_NSYSTEMS];
  ham_pool pool;
  memset(&pool, 0, sizeof pool);
  static const int sys[3] = {HAM_MASS_SPRING, HAM_TWO_BODY, HAM_THREE_BODY};
  for (int s = 0; s < 3; s++) {
    d[sys[s]] = small_data(sys[s], 2, 40 + (unsigned long)s);
    pool.data[sys[s]] = &d[sys[s]];
    pool.sys[pool.nsys++] = sys[s];
    pool.first[sys[s]] = 0;
    pool.count[sys[s]] = 2;
  }
  ham_arch a = {5, 1, HAM_ACT_TANH, HAM_LOSS_MEAN};
  ham_model *m = ham_model_new(&a);
  ham_train_opts o = {HAM_TRAIN_META, 2, 3, K, 0.05, 0, 1e-3, 0, "meta", 1};
  ham_trainer *t = ham_trainer_new(NULL, m, &pool, &o);
  ck_assert_msg(t != NULL, "%s", sv_errmsg());
  ham_train_opts o1 = o;
  o1.tasks = 1;
  ham_trainer *one = ham_trainer_new(NULL, m, &pool, &o1);
  ck_assert_msg(one != NULL, "%s", sv_errmsg());
  gsl_rng *rng = rng_new(9);
  ck_assert_int_eq(ham_model_init(m, rng), 0);
  gsl_rng_free(rng);
  double *theta = sv_params_data(ham_model_params(m));
  size_t n = sv_params_count(ham_model_params(m));
  int idx[3][2 * K];
  for (int s = 0; s < 3; s++) {
    for (int k = 0; k < 2 * K; k++)
      idx[s][k] = (13 * k + 29 * s + 5) % 200;
    ck_assert_int_eq(ham_trainer_set_task(t, s, sys[s], s % 2, idx[s]), 0);
  }
  double L, *G = malloc(n * sizeof *G), *gi = malloc(n * sizeof *gi), *mean = calloc(n, sizeof *mean);
  ck_assert_msg(ham_trainer_loss_grad(t, theta, &L, G) == 0, "%s", sv_errmsg());
  double Lsum = 0, prev_norm = -1;
  for (int s = 0; s < 3; s++) {
    double li;
    ck_assert_int_eq(ham_trainer_set_task(one, 0, sys[s], s % 2, idx[s]), 0);
    ck_assert_int_eq(ham_trainer_loss_grad(one, theta, &li, gi), 0);
    Lsum += li / 3;
    for (size_t i = 0; i < n; i++)
      mean[i] += gi[i] / 3;
    ck_assert(norm2(n, gi) != prev_norm);
    prev_norm = norm2(n, gi);
  }
  double err = 0;
  for (size_t i = 0; i < n; i++)
    err = fmax(err, fabs(G[i] - mean[i]));
  ck_assert_msg(err <= 1e-13 * maxabs(n, mean), "meta-batch gradient vs mean of the tasks': %.3g", err);
  ck_assert_msg(fabs(L - Lsum) <= 1e-13 * fabs(Lsum), "meta-loss %.17g vs %.17g", L, Lsum);

  /* central differences of the meta-loss along a random direction */
  double *v = malloc(n * sizeof *v), *t0 = malloc(n * sizeof *t0), dir = 0;
  rng = rng_new(17);
  for (size_t i = 0; i < n; i++)
    v[i] = gsl_rng_uniform(rng) - 0.5;
  gsl_rng_free(rng);
  memcpy(t0, theta, n * sizeof *t0);
  double h = 1e-5 / norm2(n, v), lp, lm;
  for (size_t i = 0; i < n; i++)
    theta[i] = t0[i] + h * v[i];
  ham_trainer_loss_grad(t, theta, &lp, NULL);
  for (size_t i = 0; i < n; i++)
    theta[i] = t0[i] - h * v[i];
  ham_trainer_loss_grad(t, theta, &lm, NULL);
  memcpy(theta, t0, n * sizeof *t0);
  for (size_t i = 0; i < n; i++)
    dir += G[i] * v[i];
  double fd = (lp - lm) / (2 * h);
  ck_assert_msg(fabs(fd - dir) < 1e-6 * fabs(dir), "directional derivative %.12g vs differences %.12g",
                dir, fd);
  free(G), free(gi), free(mean), free(v), free(t0);
  ham_trainer_free(t);
  ham_trainer_free(one);
  ham_model_free(m);
  for (int s = 0; s < 3; s++)
    ham_dataset_free(&d[sys[s]]);
}
END_TEST

/* ------------------------------------------------------------------ */
/* CKA and statistics                                                  */
/* ------------------------------------------------------------------ */

START_TEST(test_cka)
{
  enum { NR = 60, D = 5 };
  double X[NR * D], Y[NR * D], Z[NR * 3];
  gsl_rng *rng = rng_new(4);
  for (int i = 0; i < NR * D; i++)
    X[i] = gsl_rng_uniform(rng) - 0.5;
  for (int i = 0; i < NR * 3; i++)
    Z[i] = gsl_rng_uniform(rng) - 0.5;
  gsl_rng_free(rng);
  /* Y = 3 X Q + 1 with Q a rotation in the (0, 1) plane and a sign flip */
  const double c = cos(0.7), s = sin(0.7);
  for (int i = 0; i < NR; i++) {
    const double *x = X + i * D;
    double *y = Y + i * D;
    y[0] = 3 * (c * x[0] - s * x[1]) + 1;
    y[1] = 3 * (s * x[0] + c * x[1]) + 1;
    for (int j = 2; j < D; j++)
      y[j] = -3 * x[j] + 1;
  }
  ck_assert(fabs(ham_linear_cka(NR, D, X, D, X) - 1) < 1e-12);
  ck_assert(fabs(ham_linear_cka(NR, D, X, D, Y) - 1) < 1e-12);
  double u = ham_linear_cka(NR, D, X, 3, Z);
  ck_assert_msg(u < 0.5, "unrelated representations: CKA %.3g", u);
  double v[5] = {3, NAN, 1, 2, 10};
  ck_assert(ham_median(5, v) == 2.5);
  ck_assert(ham_mean(5, v) == 4);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("hamiltonian");
  TCase *tc = tcase_create("systems");
  tcase_add_loop_test(tc, test_system_gradients, 0, HAM_NSYSTEMS);
  tcase_add_test(tc, test_system_names);
  suite_add_tcase(s, tc);
  tc = tcase_create("network");
  tcase_add_loop_test(tc, test_network_fd, 0, 6);
  suite_add_tcase(s, tc);
  tc = tcase_create("maml");
  tcase_add_test(tc, test_maml_second_order_fd);
  tcase_add_test(tc, test_one_particle_zero_edge_gradients);
  tcase_add_test(tc, test_mixed_meta_batch);
  suite_add_tcase(s, tc);
  tc = tcase_create("cka");
  tcase_add_test(tc, test_cka);
  suite_add_tcase(s, tc);
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
