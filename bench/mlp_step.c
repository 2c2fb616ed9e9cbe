/*
 * mlp_step.c -- benchmark of one PINN training step through libsolver.
 *
 * A tanh MLP (default 4 hidden layers of 32, 1 input, 1 output) on 128
 * points: forward, u'' by two sv_grad, the loss mean((u'' + u)^2) and its
 * gradient w.r.t. every weight (sv_grad_params). The graph is built and
 * compiled once; the timed loop is sv_plan_run alone, as a training loop
 * would run it. No optimizer update (bench/mlp_step_torch.py, its PyTorch
 * peer, does none either).
 *
 * Before timing, the compiled gradient is checked against central finite
 * differences of the loss (a few weights) and u'' against finite
 * differences of u in x, so that a fast but wrong plan cannot pass.
 *
 * Usage: mlp_step [-steps N] [-repeats R] [-points B] [-width W] [-depth D]
 *                 [-threads T] [-reverse] [-dump FILE]
 * -threads T times the same loss and gradient as a least-squares objective
 * (sv_lsq) whose rows are split over T threads (sv_lsq_set_threads),
 * checked against the plain plan first.
 * Prints "c_steps_per_second N" (the median over the repeats). -dump writes
 * the parameter blocks, the loss and the gradient as text, so that
 * `mlp_step_torch.py -check FILE` can recompute both in PyTorch.
 */
#include <solver.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_rng.h>

typedef struct {
  int steps, repeats, points, width, depth;
  int threads; /* -threads T: time the least-squares objective with its rows split over T threads */
  int reverse; /* -reverse: u'' by two sv_grad (reverse over reverse) instead of Taylor mode */
  const char *dump; /* write params, loss and gradient here (for the torch cross-check) */
} bench_opts;

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int parse_args(int argc, char **argv, bench_opts *o)
{
  for (int i = 1; i < argc; i++) {
    int *dst = NULL;
    if (strcmp(argv[i], "-dump") == 0 && i + 1 < argc) {
      o->dump = argv[++i];
      continue;
    }
    if (strcmp(argv[i], "-reverse") == 0) {
      o->reverse = 1;
      continue;
    }
    if (strcmp(argv[i], "-steps") == 0) dst = &o->steps;
    else if (strcmp(argv[i], "-repeats") == 0) dst = &o->repeats;
    else if (strcmp(argv[i], "-points") == 0) dst = &o->points;
    else if (strcmp(argv[i], "-width") == 0) dst = &o->width;
    else if (strcmp(argv[i], "-depth") == 0) dst = &o->depth;
    else if (strcmp(argv[i], "-threads") == 0) dst = &o->threads;
    if (!dst || i + 1 >= argc) {
      fprintf(stderr, "mlp_step: unknown option or missing value: %s\n"
              "usage: mlp_step [-steps N] [-repeats R] [-points B] [-width W] [-depth D]"
              " [-threads T] [-reverse] [-dump FILE]\n",
              argv[i]);
      return -1;
    }
    char *end;
    long v = strtol(argv[++i], &end, 10);
    if (*end || v < 1 || v > 100000000) {
      fprintf(stderr, "mlp_step: %s needs a positive integer (got '%s')\n", argv[i - 1], argv[i]);
      return -1;
    }
    *dst = (int)v;
  }
  return 0;
}

/* Loss at the current params (plan outputs loss first). */
static double run_loss(sv_plan *plan, sv_node *loss)
{
  if (sv_plan_run(plan) < 0)
    return NAN;
  return sv_plan_value(plan, loss)[0];
}

/* Text: "loss L", then per block "block NAME SIZE" and SIZE lines
   "value gradient" (row-major, W is [nin, nout]). */
static int dump(const char *path, sv_params *p, double loss, const double *grad)
{
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "mlp_step: cannot write '%s'\n", path);
    return -1;
  }
  const double *theta = sv_params_data(p);
  fprintf(f, "loss %.17g\n", loss);
  for (int b = 0; b < sv_params_block_count(p); b++) {
    size_t off = sv_params_block_offset(p, b), sz = sv_params_block_size(p, b);
    fprintf(f, "block %s %zu\n", sv_params_block_name(p, b), sz);
    for (size_t i = off; i < off + sz; i++)
      fprintf(f, "%.17g %.17g\n", theta[i], grad[i]);
  }
  if (fclose(f) != 0) {
    fprintf(stderr, "mlp_step: error writing '%s'\n", path);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  bench_opts o = {2000, 5, 128, 32, 4, 0, 0, NULL};
  if (parse_args(argc, argv, &o) < 0)
    return 2;

  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!g || !p || !rng) {
    fprintf(stderr, "mlp_step: out of memory\n");
    return 1;
  }
  gsl_rng_set(rng, 1);

  int xd[2] = {SV_BATCH, 1};
  sv_node *x = sv_input(g, "x", 2, xd);
  sv_node *u, *d2u;
  if (o.reverse) {
    u = sv_mlp(p, "net", x, o.width, o.depth, 1, SV_ACT_TANH);
    d2u = sv_grad(sv_grad(u, x), x);
  } else {
    sv_jet jet;
    if (sv_mlp_jet(p, NULL, "net", x, o.width, o.depth, 1, SV_ACT_TANH, 2, &jet) < 0) {
      fprintf(stderr, "mlp_step: %s\n", sv_errmsg());
      return 1;
    }
    u = jet.u;
    d2u = jet.d2u[0];
  }
  sv_node *loss = sv_mean(sv_square(sv_add(d2u, u)));
  sv_node *gp = sv_grad_params(loss, p);
  if (!gp) {
    fprintf(stderr, "mlp_step: building the graph: %s\n", sv_graph_error(g));
    return 1;
  }
  if (sv_params_init_glorot(p, rng) < 0) {
    fprintf(stderr, "mlp_step: %s\n", sv_errmsg());
    return 1;
  }
  sv_node *outs[4] = {loss, gp, u, d2u};
  sv_plan *plan = sv_compile(g, 4, outs, o.points);
  /* The timed plan has only what a training step needs. */
  sv_plan *step = sv_compile(g, 2, outs, o.points);
  if (!plan || !step) {
    fprintf(stderr, "mlp_step: compile: %s\n", sv_errmsg());
    return 1;
  }
  size_t n = sv_params_count(p);
  double *xs = malloc(o.points * sizeof *xs), *grad = malloc(n * sizeof *grad);
  double *rates = malloc(o.repeats * sizeof *rates);
  if (!xs || !grad || !rates) {
    fprintf(stderr, "mlp_step: out of memory\n");
    return 1;
  }
  for (int i = 0; i < o.points; i++)
    xs[i] = o.points > 1 ? -1.0 + 2.0 * i / (o.points - 1) : 0.0;
  if (sv_plan_bind(plan, x, xs) < 0 || sv_plan_bind(step, x, xs) < 0) {
    fprintf(stderr, "mlp_step: bind: %s\n", sv_errmsg());
    return 1;
  }

  /* --- correctness checks (untimed) --- */
  double *theta = sv_params_data(p);
  double l0 = run_loss(plan, loss);
  memcpy(grad, sv_plan_value(plan, gp), n * sizeof *grad);
  /* Errors relative to the largest gradient entry: some entries are zero
     by symmetry (odd network on symmetric points). */
  double gmax = 0, worst_g = 0;
  for (size_t i = 0; i < n; i++)
    if (fabs(grad[i]) > gmax)
      gmax = fabs(grad[i]);
  size_t probe[6] = {0, 5, n / 3, n / 2, (2 * n) / 3, n - 1};
  for (int k = 0; k < 6; k++) {
    size_t i = probe[k];
    double t = theta[i], h = 1e-5 * (fabs(t) > 1 ? fabs(t) : 1);
    theta[i] = t + h;
    double lp = run_loss(plan, loss);
    theta[i] = t - h;
    double lm = run_loss(plan, loss);
    theta[i] = t;
    double fd = (lp - lm) / (2 * h);
    double err = fabs(fd - grad[i]) / (gmax > 0 ? gmax : 1);
    if (err > worst_g)
      worst_g = err;
  }
  /* u'' against a central second difference of u in x at one point
     (x near -0.5: u is odd here, so u'' near x = 0 is tiny). */
  int mid = o.points / 4;
  run_loss(plan, loss);
  double d2_graph = sv_plan_value(plan, d2u)[mid];
  double xm = xs[mid], hx = 1e-3, uv[3];
  for (int s = -1; s <= 1; s++) {
    xs[mid] = xm + s * hx;
    run_loss(plan, loss);
    uv[s + 1] = sv_plan_value(plan, u)[mid];
  }
  xs[mid] = xm;
  double d2_fd = (uv[0] - 2 * uv[1] + uv[2]) / (hx * hx);
  double err_d2 = fabs(d2_fd - d2_graph) / (fabs(d2_graph) + 1e-8);
  printf("c_params %zu\nc_plan_steps %d\nc_arena_bytes %zu\n", n, sv_plan_step_count(step),
         sv_plan_arena_bytes(step));
  printf("c_loss %.17g\n", l0);
  printf("c_check_grad_fd_relerr %.2e\nc_check_d2u_fd_relerr %.2e\n", worst_g, err_d2);
  if (!(worst_g < 1e-6) || !(err_d2 < 1e-4)) {
    fprintf(stderr, "mlp_step: the compiled derivatives disagree with finite differences\n");
    return 1;
  }

  if (o.dump && dump(o.dump, p, l0, grad) < 0)
    return 1;

  /* -threads: the same loss as a least-squares objective (residual
     u'' + u, weight 1, mean over the points), its rows split over the
     threads; checked against the plan above before it is timed */
  sv_lsq *lsq = NULL;
  const sv_objective *obj = NULL;
  if (o.threads > 0) {
    sv_node *res = sv_add(d2u, u);
    lsq = sv_lsq_new(g, p, 1, &res, o.points, o.points);
    if (!lsq || sv_lsq_bind(lsq, x, xs) < 0 || sv_lsq_set_threads(lsq, o.threads) < 0) {
      fprintf(stderr, "mlp_step: least-squares objective: %s\n", sv_errmsg());
      return 1;
    }
    obj = sv_lsq_objective(lsq);
    double lt, gerr = 0;
    double *gt = malloc(n * sizeof *gt);
    if (!gt || obj->loss_grad(obj->ctx, theta, &lt, gt) < 0) {
      fprintf(stderr, "mlp_step: objective: %s\n", sv_errmsg());
      return 1;
    }
    for (size_t i = 0; i < n; i++)
      gerr = fmax(gerr, fabs(gt[i] - grad[i]) / (gmax > 0 ? gmax : 1));
    free(gt);
    double lerr = fabs(lt - l0) / fabs(l0);
    printf("c_threads %d\nc_check_threads_loss_reldiff %.2e\nc_check_threads_grad_reldiff %.2e\n",
           sv_lsq_threads(lsq), lerr, gerr);
    if (!(lerr < 1e-12) || !(gerr < 1e-12)) {
      fprintf(stderr, "mlp_step: the threaded objective disagrees with the plan\n");
      return 1;
    }
  }

  /* --- timing --- */
  double lt;
  int warm = o.steps / 10 > 50 ? o.steps / 10 : 50;
  for (int i = 0; i < warm; i++)
    if (obj ? obj->loss_grad(obj->ctx, theta, &lt, grad) < 0 : sv_plan_run(step) < 0) {
      fprintf(stderr, "mlp_step: run: %s\n", sv_errmsg());
      return 1;
    }
  printf("c_rates");
  for (int r = 0; r < o.repeats; r++) {
    double t0 = sv_wall_seconds();
    if (obj)
      for (int i = 0; i < o.steps; i++)
        obj->loss_grad(obj->ctx, theta, &lt, grad);
    else
      for (int i = 0; i < o.steps; i++)
        sv_plan_run(step);
    rates[r] = o.steps / (sv_wall_seconds() - t0);
    printf(" %.1f", rates[r]);
  }
  printf("\n");
  qsort(rates, o.repeats, sizeof *rates, cmp_double);
  printf("c_steps_per_second %.1f\n", rates[o.repeats / 2]);

  sv_lsq_free(lsq);
  free(rates), free(grad), free(xs);
  sv_plan_free(step), sv_plan_free(plan);
  sv_graph_free(g), sv_params_free(p), gsl_rng_free(rng);
  return 0;
}
