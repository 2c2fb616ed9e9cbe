/*
 * s4d_step.c -- one training step of the ssm_s4 model (plugins/ssm/s4d.c)
 * timed alone, against bench/s4d_torch.py --step (bench/README.md).
 *
 *   s4d_step [-H 64] [-N 64] [-layers 2] [-batch 64] [-threads 2]
 *            [-steps 20] [-warmup 3] [-repeats 5] [-data DIR] [-dump FILE]
 *
 * The model is built and initialised as the plugin does (seed 42); a step
 * is forward, backward and an AdamW update of the parameters on a random
 * minibatch of pooled Fashion-MNIST images (L = 196), the batch split over
 * -threads plans as the plugin splits it. Prints the median of the
 * repeats, by the wall clock and per CPU second of the process. -dump
 * FILE writes the parameters, one batch, its loss and gradient for
 * s4d_torch.py --check, before timing.
 */
#include "s4d.h"

#include <cblas.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double wall(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* CPU seconds of the whole process (all threads): on a shared machine the
   time this process actually ran, which wall time is not */
static double cpu(void)
{
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* 2x2 average pooling of 28x28 images into x (n x 196) */
static void pool2(const sv_dataset *d, int n, const int *idx, double *x)
{
  int R = d->dims[0], C = d->dims[1];
  for (int i = 0; i < n; i++) {
    const double *img = d->x + (size_t)idx[i] * d->size;
    for (int a = 0; a < R / 2; a++)
      for (int b = 0; b < C / 2; b++)
        x[(size_t)i * (R / 2) * (C / 2) + a * (C / 2) + b] =
            (img[(2 * a) * C + 2 * b] + img[(2 * a) * C + 2 * b + 1] + img[(2 * a + 1) * C + 2 * b] +
             img[(2 * a + 1) * C + 2 * b + 1]) / 4;
  }
}

static void dump_vec(FILE *f, const char *name, size_t n, const double *v)
{
  fprintf(f, "%s %zu", name, n);
  for (size_t i = 0; i < n; i++)
    fprintf(f, " %.17g", v[i]);
  fputc('\n', f);
}

int main(int argc, char **argv)
{
  int H = 64, N = 64, layers = 2, batch = 64, threads = 2, steps = 20, warmup = 3, repeats = 5;
  const char *data = "/usr/share/datasets/fashion-mnist", *dump = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *o = argv[i], *v = argv[i + 1];
    if (!strcmp(o, "-H")) H = atoi(v);
    else if (!strcmp(o, "-N")) N = atoi(v);
    else if (!strcmp(o, "-layers")) layers = atoi(v);
    else if (!strcmp(o, "-batch")) batch = atoi(v);
    else if (!strcmp(o, "-threads")) threads = atoi(v);
    else if (!strcmp(o, "-steps")) steps = atoi(v);
    else if (!strcmp(o, "-warmup")) warmup = atoi(v);
    else if (!strcmp(o, "-repeats")) repeats = atoi(v);
    else if (!strcmp(o, "-data")) data = v;
    else if (!strcmp(o, "-dump")) dump = v;
    else {
      fprintf(stderr, "s4d_step: unknown option %s\n", o);
      return 2;
    }
  }
  if (threads < 1 || threads > batch || repeats < 1 || steps < 1) {
    fprintf(stderr, "s4d_step: bad -threads, -repeats or -steps\n");
    return 2;
  }
  sv_dataset *d = sv_dataset_load_dir(data, "train", 10);
  if (!d) {
    fprintf(stderr, "s4d_step: %s\n", sv_errmsg());
    return 1;
  }
  s4d_config c = {.H = H, .N = N, .layers = layers, .L = (d->dims[0] / 2) * (d->dims[1] / 2),
                  .nclasses = 10, .init = SSM_INIT_LIN, .disc = SSM_ZOH, .dt_min = 1e-3,
                  .dt_max = 1e-1, .ln_eps = 1e-5};
  int Bt = (batch + threads - 1) / threads;
  s4d_model m;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 42);
  if (s4d_model_new(&m, &c, Bt, threads) < 0 || s4d_model_init(&m, rng) < 0) {
    fprintf(stderr, "s4d_step: %s\n", sv_errmsg());
    return 1;
  }
  if (threads > 1)
    openblas_set_num_threads(1);
  size_t np = sv_params_count(m.p);
  double *theta = sv_params_data(m.p), *g = malloc(np * sizeof *g), *mo = calloc(np, sizeof *mo),
         *ve = calloc(np, sizeof *ve);
  int *idx = calloc((size_t)batch, sizeof *idx);
  long t_adam = 0;

  /* one minibatch: rows of the plans, the rest padding of weight 0 */
  #define FILL()                                                                        \
    do {                                                                                \
      for (int i = 0; i < batch; i++)                                                   \
        idx[i] = (int)gsl_rng_uniform_int(rng, (unsigned long)d->n);                    \
      pool2(d, batch, idx, m.xb);                                                       \
      for (int i = 0; i < threads * Bt; i++) {                                          \
        m.yb[i] = i < batch ? d->y[idx[i]] : 0;                                         \
        m.wb[i] = i < batch ? 1.0 / batch : 0;                                          \
      }                                                                                 \
    } while (0)

  double loss;
  if (dump) {
    FILL();
    if (s4d_train_run(&m, (batch + Bt - 1) / Bt, &loss, g, NULL) < 0) {
      fprintf(stderr, "s4d_step: %s\n", sv_errmsg());
      return 1;
    }
    FILE *f = fopen(dump, "w");
    if (!f) {
      perror(dump);
      return 1;
    }
    double sizes[5] = {H, N, layers, c.L, batch};
    dump_vec(f, "sizes", 5, sizes);
    for (int b = 0; b < sv_params_block_count(m.p); b++)
      dump_vec(f, sv_params_block_name(m.p, b), sv_params_block_size(m.p, b),
               theta + sv_params_block_offset(m.p, b));
    dump_vec(f, "x", (size_t)batch * c.L, m.xb);
    dump_vec(f, "labels", (size_t)batch, m.yb);
    dump_vec(f, "loss", 1, &loss);
    dump_vec(f, "grad", np, g);
    fclose(f);
  }

  /* a step: forward + backward on the plans, then AdamW (lr 1e-3, wd 0.01) */
  double rates[64], crates[64];
  for (int r = -1; r < repeats && r < 64; r++) {
    int n = r < 0 ? warmup : steps;
    double t0 = wall(), c0 = cpu();
    for (int s = 0; s < n; s++) {
      FILL();
      if (s4d_train_run(&m, (batch + Bt - 1) / Bt, &loss, g, NULL) < 0) {
        fprintf(stderr, "s4d_step: %s\n", sv_errmsg());
        return 1;
      }
      t_adam++;
      double b1 = 0.9, b2 = 0.999, lr = 1e-3, c1 = 1 - pow(b1, (double)t_adam),
             c2 = 1 - pow(b2, (double)t_adam);
      for (size_t i = 0; i < np; i++) {
        theta[i] *= 1 - lr * 0.01;
        mo[i] = b1 * mo[i] + (1 - b1) * g[i];
        ve[i] = b2 * ve[i] + (1 - b2) * g[i] * g[i];
        theta[i] -= lr * (mo[i] / c1) / (sqrt(ve[i] / c2) + 1e-8);
      }
    }
    if (r >= 0) {
      rates[r] = n / (wall() - t0);
      crates[r] = n / (cpu() - c0);
    }
  }
  qsort(rates, (size_t)repeats, sizeof *rates, cmp);
  double med = rates[repeats / 2];
  printf("c_steps_per_second %.4g\n", med);
  printf("c_samples_per_second %.4g\n", med * batch);
  printf("c_rates");
  for (int r = 0; r < repeats; r++)
    printf(" %.3g", rates[r]);
  /* per CPU second: samples per second of one core's actual running
     time (with -threads T, T cores' worth) */
  qsort(crates, (size_t)repeats, sizeof *crates, cmp);
  printf("\nc_cpu_samples_per_second %.4g", crates[repeats / 2] * batch);
  printf("\nc_params %zu\nc_threads %d\n", np, threads);
  free(g);
  free(mo);
  free(ve);
  free(idx);
  s4d_model_free(&m);
  sv_dataset_free(d);
  gsl_rng_free(rng);
  return 0;
}
