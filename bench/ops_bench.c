/*
 * ops_bench.c -- single ops of libsolver, forward and backward, against
 * their PyTorch peers (bench/ops_torch.py; bench/run.sh ops runs both).
 *
 * A case is a graph: inputs filled from a seeded RNG, a scalar objective
 * f (sum(w * y) with a fixed random w, or the mean loss), and the gradient
 * of f with respect to the op's differentiable inputs. The plan computing f
 * and the gradients is compiled once; the timed loop is sv_plan_run alone
 * (forward and backward, as a training step runs them).
 *
 *   causal_conv   sv_causal_conv, u [64, 784, 64], k [64, 784]: f = sum(w y),
 *                 df/du and df/dk
 *   xent256       sv_mean(sv_softmax_xent(z, labels)), z [256, 10]: f, df/dz
 *   xent4096      the same, z [4096, 10]
 *   conv2d        sv_conv2d(x [64,128,18,18], W [128,128,5,5], stride 1,
 *                 pad 2): f = sum(w y), df/dx and df/dW
 *
 * -dump DIR writes the inputs and the C results (raw little-endian float64,
 * one NAME.bin per array, shapes in DIR/manifest.txt) and exits, so that
 * `ops_torch.py -case NAME -check DIR` recomputes them in PyTorch from the
 * same inputs: run.sh refuses to time a case whose two sides differ.
 *
 * Usage: ops_bench -case NAME [-steps N] [-repeats R] [-dump DIR]
 *        ops_bench -list
 * Prints "c_rates r1 r2 ..." (steps per second of each repeat) and
 * "c_steps_per_second M" (their median). OPENBLAS_NUM_THREADS applies.
 */
#include <solver.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#define MAXARR 6

typedef struct {
  const char *name;
  sv_node *node;
  int ndim, dims[SV_MAX_DIMS]; /* resolved */
  double *data;                /* inputs: owned; outputs: the plan's */
} arr;

typedef struct {
  const char *name;
  sv_graph *g;
  int batch;
  arr in[MAXARR], out[MAXARR];
  int nin, nout;
  int steps, repeats; /* defaults of the case */
} bcase;

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static size_t arr_count(const arr *a)
{
  size_t n = 1;
  for (int i = 0; i < a->ndim; i++)
    n *= (size_t)a->dims[i];
  return n;
}

/* An input node (dims[0] may be SV_BATCH, resolved to bc->batch) and its
   data: uniform in [lo, hi), or integers in [0, classes) when classes > 0. */
static sv_node *add_input(bcase *bc, gsl_rng *r, const char *name, int ndim, const int *dims,
                          double lo, double hi, int classes)
{
  arr *a = &bc->in[bc->nin++];
  a->name = name;
  a->node = sv_input(bc->g, name, ndim, dims);
  a->ndim = ndim;
  for (int i = 0; i < ndim; i++)
    a->dims[i] = dims[i] == SV_BATCH ? bc->batch : dims[i];
  size_t n = arr_count(a);
  a->data = malloc(n * sizeof *a->data);
  if (!a->data)
    return NULL;
  for (size_t i = 0; i < n; i++)
    a->data[i] = classes > 0 ? (double)gsl_rng_uniform_int(r, (unsigned long)classes)
                             : lo + (hi - lo) * gsl_rng_uniform(r);
  return a->node;
}

static void add_output(bcase *bc, const char *name, sv_node *n)
{
  arr *a = &bc->out[bc->nout++];
  a->name = name;
  a->node = n;
  a->ndim = n ? sv_ndim(n) : 0;
  for (int i = 0; i < a->ndim; i++)
    a->dims[i] = sv_dim(n, i) == SV_BATCH ? bc->batch : sv_dim(n, i);
}

/* ---------- the cases ---------- */

static int build_causal_conv(bcase *bc, gsl_rng *r)
{
  enum { B = 64, L = 784, H = 64 };
  int ud[3] = {SV_BATCH, L, H}, kd[2] = {H, L};
  bc->batch = B;
  sv_node *u = add_input(bc, r, "u", 3, ud, -1, 1, 0);
  sv_node *k = add_input(bc, r, "k", 2, kd, -1, 1, 0);
  sv_node *w = add_input(bc, r, "w", 3, ud, -1, 1, 0);
  sv_node *y = sv_causal_conv(u, k);
  sv_node *f = sv_sum(sv_mul(w, y));
  sv_node *x[2] = {u, k}, *d[2] = {NULL, NULL};
  if (sv_vjp(f, NULL, 2, x, d) < 0)
    return -1;
  add_output(bc, "f", f);
  add_output(bc, "du", d[0]);
  add_output(bc, "dk", d[1]);
  add_output(bc, "y", y); /* dumped, not needed by the timed plan */
  bc->steps = 5;
  bc->repeats = 5;
  return 0;
}

static int build_xent(bcase *bc, gsl_rng *r, int B)
{
  enum { C = 10 };
  int zd[2] = {SV_BATCH, C}, ld[1] = {SV_BATCH};
  bc->batch = B;
  sv_node *z = add_input(bc, r, "z", 2, zd, -3, 3, 0);
  sv_node *lab = add_input(bc, r, "labels", 1, ld, 0, 0, C);
  sv_node *f = sv_mean(sv_softmax_xent(z, lab));
  add_output(bc, "f", f);
  add_output(bc, "dz", sv_grad(f, z));
  bc->steps = B >= 4096 ? 500 : 5000;
  bc->repeats = 5;
  return 0;
}

static int build_xent256(bcase *bc, gsl_rng *r) { return build_xent(bc, r, 256); }
static int build_xent4096(bcase *bc, gsl_rng *r) { return build_xent(bc, r, 4096); }

static int build_conv2d(bcase *bc, gsl_rng *r)
{
  enum { B = 64, CI = 128, CO = 128, HW = 18, KS = 5 };
  int xd[4] = {SV_BATCH, CI, HW, HW}, wd[4] = {CO, CI, KS, KS}, yd[4] = {SV_BATCH, CO, HW, HW};
  bc->batch = B;
  sv_node *x = add_input(bc, r, "x", 4, xd, -1, 1, 0);
  /* weights at the scale of a Kaiming-uniform init: y stays O(1) */
  double s = 1.0 / sqrt((double)CI * KS * KS);
  sv_node *W = add_input(bc, r, "W", 4, wd, -s, s, 0);
  sv_node *w = add_input(bc, r, "w", 4, yd, -1, 1, 0);
  sv_node *y = sv_conv2d(x, W, 1, 2);
  sv_node *f = sv_sum(sv_mul(w, y));
  sv_node *in[2] = {x, W}, *d[2] = {NULL, NULL};
  if (sv_vjp(f, NULL, 2, in, d) < 0)
    return -1;
  add_output(bc, "f", f);
  add_output(bc, "dx", d[0]);
  add_output(bc, "dW", d[1]);
  add_output(bc, "y", y);
  bc->steps = 2;
  bc->repeats = 5;
  return 0;
}

static const struct {
  const char *name;
  int (*build)(bcase *, gsl_rng *);
  int timed_outputs; /* the first outputs form the timed plan */
} cases[] = {
  {"causal_conv", build_causal_conv, 3},
  {"xent256", build_xent256, 2},
  {"xent4096", build_xent4096, 2},
  {"conv2d", build_conv2d, 3},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* ---------- dump ---------- */

static int write_arr(FILE *man, const char *dir, const arr *a, const double *data)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.bin", dir, a->name);
  FILE *f = fopen(path, "wb");
  size_t n = arr_count(a);
  if (!f || fwrite(data, sizeof *data, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "ops_bench: cannot write '%s'\n", path);
    return -1;
  }
  fprintf(man, "%s", a->name);
  for (int i = 0; i < a->ndim; i++)
    fprintf(man, " %d", a->dims[i]);
  fprintf(man, "\n");
  return 0;
}

/* manifest.txt: "in NAME d0 d1 ..." and "out NAME d0 ..." lines. */
static int dump(const char *dir, const bcase *bc, sv_plan *pl)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/manifest.txt", dir);
  FILE *man = fopen(path, "w");
  if (!man) {
    fprintf(stderr, "ops_bench: cannot write '%s' (does the directory exist?)\n", path);
    return -1;
  }
  fprintf(man, "case %s\n", bc->name);
  for (int i = 0; i < bc->nin; i++) {
    fprintf(man, "in ");
    if (write_arr(man, dir, &bc->in[i], bc->in[i].data) < 0)
      return fclose(man), -1;
  }
  for (int i = 0; i < bc->nout; i++) {
    fprintf(man, "out ");
    if (write_arr(man, dir, &bc->out[i], sv_plan_value(pl, bc->out[i].node)) < 0)
      return fclose(man), -1;
  }
  if (fclose(man) != 0) {
    fprintf(stderr, "ops_bench: error writing '%s'\n", path);
    return -1;
  }
  return 0;
}

/* ---------- main ---------- */

static int positive(const char *opt, const char *v, int *dst)
{
  char *end;
  long x = strtol(v, &end, 10);
  if (*end || x < 1 || x > 100000000) {
    fprintf(stderr, "ops_bench: %s needs a positive integer (got '%s')\n", opt, v);
    return -1;
  }
  *dst = (int)x;
  return 0;
}

static int usage(void)
{
  fprintf(stderr, "usage: ops_bench -case NAME [-steps N] [-repeats R] [-dump DIR] | -list\n");
  return 2;
}

int main(int argc, char **argv)
{
  const char *name = NULL, *dir = NULL;
  int steps = 0, repeats = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-list") == 0) {
      for (int c = 0; c < NCASES; c++)
        printf("%s\n", cases[c].name);
      return 0;
    }
    if (i + 1 >= argc)
      return usage();
    if (strcmp(argv[i], "-case") == 0)
      name = argv[++i];
    else if (strcmp(argv[i], "-dump") == 0)
      dir = argv[++i];
    else if (strcmp(argv[i], "-steps") == 0) {
      if (positive(argv[i], argv[i + 1], &steps) < 0)
        return 2;
      i++;
    } else if (strcmp(argv[i], "-repeats") == 0) {
      if (positive(argv[i], argv[i + 1], &repeats) < 0)
        return 2;
      i++;
    } else
      return usage();
  }
  int ci = -1;
  for (int c = 0; name && c < NCASES; c++)
    if (strcmp(name, cases[c].name) == 0)
      ci = c;
  if (ci < 0) {
    fprintf(stderr, "ops_bench: unknown or missing -case (ops_bench -list names them)\n");
    return 2;
  }

  bcase bc = {.name = cases[ci].name, .g = sv_graph_new()};
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!bc.g || !rng) {
    fprintf(stderr, "ops_bench: out of memory\n");
    return 1;
  }
  gsl_rng_set(rng, 20261201UL);
  if (cases[ci].build(&bc, rng) < 0 || sv_graph_error(bc.g)) {
    fprintf(stderr, "ops_bench: %s: building the graph: %s\n", bc.name,
            sv_graph_error(bc.g) ? sv_graph_error(bc.g) : sv_errmsg());
    return 1;
  }
  for (int i = 0; i < bc.nin; i++)
    if (!bc.in[i].data) {
      fprintf(stderr, "ops_bench: out of memory\n");
      return 1;
    }
  if (!steps)
    steps = bc.steps;
  if (!repeats)
    repeats = bc.repeats;

  sv_node *outs[MAXARR];
  for (int i = 0; i < bc.nout; i++)
    outs[i] = bc.out[i].node;
  double t0 = sv_wall_seconds();
  /* the timed plan has only f and the gradients */
  sv_plan *pl = sv_compile(bc.g, cases[ci].timed_outputs, outs, bc.batch);
  double t1 = sv_wall_seconds();
  sv_plan *all = dir ? sv_compile(bc.g, bc.nout, outs, bc.batch) : NULL;
  if (!pl || (dir && !all)) {
    fprintf(stderr, "ops_bench: %s: compile: %s\n", bc.name, sv_errmsg());
    return 1;
  }
  for (int i = 0; i < bc.nin; i++)
    if (sv_plan_bind(pl, bc.in[i].node, bc.in[i].data) < 0 ||
        (all && sv_plan_bind(all, bc.in[i].node, bc.in[i].data) < 0)) {
      fprintf(stderr, "ops_bench: bind: %s\n", sv_errmsg());
      return 1;
    }
  printf("c_case %s\nc_compile_seconds %.3f\nc_plan_steps %d\nc_arena_bytes %zu\n", bc.name,
         t1 - t0, sv_plan_step_count(pl), sv_plan_arena_bytes(pl));
  if (all) {
    if (sv_plan_run(all) < 0) {
      fprintf(stderr, "ops_bench: run: %s\n", sv_errmsg());
      return 1;
    }
    int bad = dump(dir, &bc, all);
    sv_plan_free(all);
    sv_plan_free(pl);
    for (int i = 0; i < bc.nin; i++)
      free(bc.in[i].data);
    sv_graph_free(bc.g);
    gsl_rng_free(rng);
    return bad < 0 ? 1 : 0; /* dumping, not timing */
  }

  /* warm-up: one run (the first touches the arena and work pages) */
  int warm = steps / 5 > 1 ? steps / 5 : 1;
  for (int i = 0; i < warm; i++)
    if (sv_plan_run(pl) < 0) {
      fprintf(stderr, "ops_bench: run: %s\n", sv_errmsg());
      return 1;
    }
  double *rates = malloc((size_t)repeats * sizeof *rates);
  if (!rates)
    return 1;
  printf("c_f %.17g\n", sv_plan_value(pl, bc.out[0].node)[0]);
  printf("c_rates");
  for (int r = 0; r < repeats; r++) {
    double a = sv_wall_seconds();
    for (int i = 0; i < steps; i++)
      sv_plan_run(pl);
    rates[r] = steps / (sv_wall_seconds() - a);
    printf(" %.2f", rates[r]);
  }
  printf("\n");
  qsort(rates, (size_t)repeats, sizeof *rates, cmp_double);
  printf("c_steps_per_second %.2f\n", rates[repeats / 2]);

  free(rates);
  for (int i = 0; i < bc.nin; i++)
    free(bc.in[i].data);
  sv_plan_free(pl);
  sv_graph_free(bc.g);
  gsl_rng_free(rng);
  return 0;
}
