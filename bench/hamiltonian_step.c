/*
 * hamiltonian_step.c -- outer MAML steps per second of hamiltonian_meta.so's
 * machinery (plugins/hamiltonian, linked as libhamiltonian), the C side of
 * bench/hamiltonian_bench.sh.
 *
 * The configuration of the measurement: all six systems in the
 * task distribution, the graph network at width 64, 1 round, tanh, the
 * paper's meta-batch (10 tasks, 50 support + 50 query points, one inner SGD
 * step at the paper's alpha = 1e-3 on the task loss summed over its points,
 * the plugin's defaults), float64. One outer step = draw a meta-batch, every task's
 * inner step and query loss, the meta-gradient (second order through the
 * inner step, or first order), one Adam step (the same update as
 * sv_minimize's). Graphs are built and compiled once, before timing.
 *
 * Usage: hamiltonian_step [-order 1|2] [-steps N] [-repeats R] [-warmup W]
 *                         [-width W] [-rounds R] [-trajectories T] [-only1]
 *                         [-dump FILE]
 * Prints "c_order<k>_steps_per_second V" (the median over the repeats), the
 * repeats, and "c_order<k>_cpu_steps_per_second V" (steps per second of
 * process CPU time, the rate while running on a shared machine). -only1
 * keeps the one-particle systems only.
 *
 * -dump FILE writes what bench/hamiltonian_torch.py -check needs to verify
 * that both sides compute the same thing: the initial weights, three
 * meta-batches (states and labels), the first- and second-order
 * meta-gradients of the first, the weights after three second-order Adam
 * steps, and a pool of 20 tasks per system for the peer's timing.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "maml.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* CPU time of the process: on a shared machine, the rate while running */
static double cpu_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

typedef struct {
  int order, steps, repeats, warmup, width, rounds, trajectories, only1;
  const char *dump;
} opts;

static int parse(int argc, char **argv, opts *o)
{
  for (int i = 1; i < argc; i++) {
    int *dst = NULL;
    if (strcmp(argv[i], "-dump") == 0 && i + 1 < argc) {
      o->dump = argv[++i];
      continue;
    }
    if (strcmp(argv[i], "-only1") == 0) {
      o->only1 = 1;
      continue;
    }
    if (strcmp(argv[i], "-order") == 0) dst = &o->order;
    else if (strcmp(argv[i], "-steps") == 0) dst = &o->steps;
    else if (strcmp(argv[i], "-repeats") == 0) dst = &o->repeats;
    else if (strcmp(argv[i], "-warmup") == 0) dst = &o->warmup;
    else if (strcmp(argv[i], "-width") == 0) dst = &o->width;
    else if (strcmp(argv[i], "-rounds") == 0) dst = &o->rounds;
    else if (strcmp(argv[i], "-trajectories") == 0) dst = &o->trajectories;
    if (!dst || i + 1 >= argc) {
      fprintf(stderr, "hamiltonian_step: unknown or incomplete option '%s'\n", argv[i]);
      return -1;
    }
    *dst = atoi(argv[++i]);
  }
  if ((o->order != 1 && o->order != 2) || o->steps < 1 || o->repeats < 1 || o->width < 1 ||
      o->rounds < 1 || o->rounds > 2 || o->trajectories < 1) {
    fprintf(stderr, "hamiltonian_step: bad options\n");
    return -1;
  }
  return 0;
}

/* Adam as sv_minimize does it (core/optim.c). */
typedef struct {
  size_t n;
  double *m, *v, b1t, b2t, lr;
} adam;

static void adam_step(adam *a, double *x, const double *g)
{
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  a->b1t *= b1;
  a->b2t *= b2;
  double c1 = 1 / (1 - a->b1t), c2 = 1 / (1 - a->b2t);
  for (size_t i = 0; i < a->n; i++) {
    a->m[i] = b1 * a->m[i] + (1 - b1) * g[i];
    a->v[i] = b2 * a->v[i] + (1 - b2) * g[i] * g[i];
    x[i] -= a->lr * (a->m[i] * c1) / (sqrt(a->v[i] * c2) + eps);
  }
}

static void write_vec(FILE *f, const char *tag, size_t n, const double *v)
{
  fprintf(f, "%s %zu\n", tag, n);
  for (size_t i = 0; i < n; i++)
    fprintf(f, "%.17g\n", v[i]);
}

/* A task as the peer reads it: N K, then support states, support labels
   (dq/dt, dp/dt), query states, query labels, 4 N K values each. */
static void write_task(FILE *f, const ham_dataset *d, const ham_task *t, int K)
{
  fprintf(f, "task %d %d %s\n", d->nodes, K, ham_system(d->system)->name);
  for (int part = 0; part < 4; part++) {
    const int *idx = t->idx + (part >= 2 ? K : 0);
    for (int k = 0; k < K; k++) {
      const double *v = part % 2 ? ham_deriv(d, t->traj, idx[k]) : ham_state(d, t->traj, idx[k]);
      for (int i = 0; i < d->dim; i++)
        fprintf(f, "%.17g%c", v[i], k == K - 1 && i == d->dim - 1 ? '\n' : ' ');
    }
  }
}

int main(int argc, char **argv)
{
  opts o = {2, 200, 5, 20, 64, 1, 50, 0, NULL};
  if (parse(argc, argv, &o) < 0)
    return 2;
  const double alpha = 1e-3, lr = 5e-4; /* the plugin's defaults (summed task loss) */
  const int T = 10, K = 50;
  ham_dataset data[HAM_NSYSTEMS];
  ham_pool pool;
  memset(&pool, 0, sizeof pool);
  for (int s = 0; s < HAM_NSYSTEMS; s++) {
    if (ham_dataset_generate(s, o.trajectories, 200, 10.0, 1e-12, 1000 + (unsigned long)s, &data[s]) < 0) {
      fprintf(stderr, "hamiltonian_step: %s\n", sv_errmsg());
      return 1;
    }
    if (o.only1 && data[s].nodes > 1)
      continue;
    pool.data[s] = &data[s];
    pool.sys[pool.nsys++] = s;
    pool.first[s] = 0;
    pool.count[s] = o.trajectories;
  }
  ham_arch a = {o.width, o.rounds, HAM_ACT_TANH, HAM_LOSS_SUM};
  ham_model *m = ham_model_new(&a);
  if (!m) {
    fprintf(stderr, "hamiltonian_step: %s\n", sv_errmsg());
    return 1;
  }
  ham_train_opts to = {HAM_TRAIN_META, o.order, T, K, alpha, 0, lr, 0, "meta", 7};
  ham_trainer *t = ham_trainer_new(NULL, m, &pool, &to);
  if (!t) {
    fprintf(stderr, "hamiltonian_step: %s\n", sv_errmsg());
    return 1;
  }
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 3);
  ham_model_init(m, rng);
  double *theta = sv_params_data(ham_model_params(m));
  size_t n = sv_params_count(ham_model_params(m));
  double *g = malloc(n * sizeof *g), *g1 = malloc(n * sizeof *g1), *theta0 = malloc(n * sizeof *theta0);
  adam ad = {n, calloc(n, sizeof(double)), calloc(n, sizeof(double)), 1, 1, lr};
  memcpy(theta0, theta, n * sizeof *theta0);
  double loss;

  if (o.dump) {
    FILE *f = fopen(o.dump, "w");
    if (!f) {
      perror(o.dump);
      return 1;
    }
    fprintf(f, "width %d\nrounds %d\nalpha %.17g\nlr %.17g\nnorm sum\n", o.width, o.rounds, alpha, lr);
    sv_params *P = ham_model_params(m);
    fprintf(f, "blocks %d\n", sv_params_block_count(P));
    for (int b = 0; b < sv_params_block_count(P); b++)
      write_vec(f, sv_params_block_name(P, b), sv_params_block_size(P, b),
                theta + sv_params_block_offset(P, b));
    /* the second trainer gives both gradients on the same batch */
    ham_train_opts t2 = to;
    t2.order = 2;
    ham_trainer *tb = ham_trainer_new(NULL, m, &pool, &t2);
    fprintf(f, "batches 3\n");
    for (int bi = 0; bi < 3; bi++) {
      ham_trainer_draw(tb);
      fprintf(f, "batch %d\n", T);
      for (int i = 0; i < T; i++)
        write_task(f, pool.data[ham_trainer_tasks(tb)[i].sys], &ham_trainer_tasks(tb)[i], K);
      if (ham_trainer_both_gradients(tb, g, g1, &loss) < 0) {
        fprintf(stderr, "hamiltonian_step: %s\n", sv_errmsg());
        return 1;
      }
      if (bi == 0) {
        fprintf(f, "loss %.17g\n", loss);
        write_vec(f, "grad2", n, g);
        write_vec(f, "grad1", n, g1);
      }
      adam_step(&ad, theta, g);
    }
    write_vec(f, "after3", n, theta);
    /* the timing pool: 20 tasks per system */
    int per = 20;
    fprintf(f, "pool %d\n", per * pool.nsys);
    ham_train_opts tp = to;
    tp.tasks = 1;
    for (int s = 0; s < pool.nsys; s++) {
      ham_pool one = pool;
      one.nsys = 1;
      one.sys[0] = pool.sys[s];
      ham_trainer *ts = ham_trainer_new(NULL, m, &one, &tp);
      for (int k = 0; k < per; k++) {
        ham_trainer_draw(ts);
        write_task(f, pool.data[pool.sys[s]], &ham_trainer_tasks(ts)[0], K);
      }
      ham_trainer_free(ts);
    }
    fclose(f);
    ham_trainer_free(tb);
    memcpy(theta, theta0, n * sizeof *theta);
    memset(ad.m, 0, n * sizeof(double));
    memset(ad.v, 0, n * sizeof(double));
    ad.b1t = ad.b2t = 1;
  }

  double *rates = malloc((size_t)o.repeats * sizeof *rates);
  double *crates = malloc((size_t)o.repeats * sizeof *crates);
  for (int w = 0; w < o.warmup; w++) {
    ham_trainer_draw(t);
    ham_trainer_loss_grad(t, theta, &loss, g);
    adam_step(&ad, theta, g);
  }
  for (int r = 0; r < o.repeats; r++) {
    double t0 = now(), c0 = cpu_now();
    for (int s = 0; s < o.steps; s++) {
      ham_trainer_draw(t);
      if (ham_trainer_loss_grad(t, theta, &loss, g) < 0) {
        fprintf(stderr, "hamiltonian_step: %s\n", sv_errmsg());
        return 1;
      }
      adam_step(&ad, theta, g);
    }
    rates[r] = o.steps / (now() - t0);
    crates[r] = o.steps / (cpu_now() - c0);
  }
  if (!isfinite(loss)) {
    fprintf(stderr, "hamiltonian_step: the meta-loss is not finite (%g)\n", loss);
    return 1;
  }
  double *sorted = malloc((size_t)o.repeats * sizeof *sorted);
  memcpy(sorted, rates, (size_t)o.repeats * sizeof *sorted);
  qsort(sorted, (size_t)o.repeats, sizeof *sorted, cmp_double);
  printf("c_order%d_steps_per_second %.2f\n", o.order, sorted[o.repeats / 2]);
  printf("c_order%d_rates", o.order);
  for (int r = 0; r < o.repeats; r++)
    printf(" %.2f", rates[r]);
  memcpy(sorted, crates, (size_t)o.repeats * sizeof *sorted);
  qsort(sorted, (size_t)o.repeats, sizeof *sorted, cmp_double);
  printf("\nc_order%d_cpu_steps_per_second %.2f", o.order, sorted[o.repeats / 2]);
  printf("\nc_params %zu\nc_final_meta_loss %.6g\n", n, loss);
  free(rates), free(crates), free(sorted), free(g), free(g1), free(theta0), free(ad.m), free(ad.v);
  gsl_rng_free(rng);
  ham_trainer_free(t);
  ham_model_free(m);
  for (int s = 0; s < HAM_NSYSTEMS; s++)
    ham_dataset_free(&data[s]);
  return 0;
}
