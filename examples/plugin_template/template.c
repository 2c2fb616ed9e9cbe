/*
 * template.c -- a complete solver plugin, to copy when writing your own.
 *
 * It fits y = sin(pi x) exp(-x) on [-1, 1] with a small MLP: the residual
 * u(x) - y(x) at `points` training points is a least-squares objective,
 * minimised first by Adam (robust from a random start) and then by
 * Levenberg-Marquardt (fast and precise near the minimum). The fit is then
 * compared with the exact function on a finer grid that the network never
 * saw, and the run reports:
 *
 *   metrics  rel_l2, max_abs_err, loss       (summary.json)
 *   files    fit.csv (x, u, exact, error), fit.png (with gnuplot)
 *
 * Build it out of tree against an installed libsolver:
 *
 *   cc -std=c11 -O2 -shared -fPIC -o template.so template.c \
 *      $(pkg-config --cflags --libs solver)
 *   solver --plugin ./template.so --out run1
 *   solver --plugin ./template.so -help          (its options)
 *
 * Only <solver.h> is needed. The plugin never prints (sv_log) and never
 * exits: every failure returns -1 with a message (sv_fail) that the
 * `solver` program reports.
 *
 * Under `mpiexec -n 2 solver --plugin ./template.so` each rank holds its
 * share of the training points; sv_minimize sums losses and gradients over
 * the ranks, so nothing here deals with MPI beyond sv_run_partition.
 */
#include <solver.h>

#include <math.h>
#include <stdlib.h>

#define PI 3.14159265358979323846

/* The function to fit. */
static double exact(double x) { return sin(PI * x) * exp(-x); }

/* Everything setup() reads from the options, kept for run(). */
typedef struct {
  int width, depth, points, eval_points;
  int adam_steps, lm_steps;
  double lr;
} template_state;

/* Declare and check the options. With -help, sv_opt_* only list the
   options and setup returns before run() is ever called. */
static int template_setup(sv_run *r, void **state)
{
  template_state s;
  if (sv_opt_int(r, "-width", 16, "hidden layer width", &s.width) < 0 ||
      sv_opt_int(r, "-depth", 2, "hidden layers", &s.depth) < 0 ||
      sv_opt_int(r, "-points", 64, "training points on [-1, 1]", &s.points) < 0 ||
      sv_opt_int(r, "-eval_points", 1001, "evaluation points on [-1, 1]", &s.eval_points) < 0 ||
      sv_opt_int(r, "-adam_steps", 2000, "Adam steps (first stage)", &s.adam_steps) < 0 ||
      sv_opt_real(r, "-lr", 1e-2, "Adam learning rate", &s.lr) < 0 ||
      sv_opt_int(r, "-lm_steps", 2000, "Levenberg-Marquardt steps (second stage)", &s.lm_steps) < 0)
    return -1;
  if (s.width < 1 || s.depth < 1)
    return sv_fail("-width %d -depth %d: both must be at least 1", s.width, s.depth);
  if (s.points < 2 || s.points < sv_run_size(r))
    return sv_fail("-points %d: need at least 2 and at least one per rank (%d ranks)", s.points,
                   sv_run_size(r));
  if (s.eval_points < 2)
    return sv_fail("-eval_points %d: need at least 2", s.eval_points);
  if (s.adam_steps < 0 || s.lm_steps < 0 || s.adam_steps + s.lm_steps == 0)
    return sv_fail("-adam_steps %d -lm_steps %d: must not be negative, and not both 0",
                   s.adam_steps, s.lm_steps);
  if (!(s.lr > 0))
    return sv_fail("-lr %g: must be positive", s.lr);

  template_state *st = malloc(sizeof *st);
  if (!st)
    return sv_fail("template: out of memory");
  *st = s;
  *state = st;
  return 0;
}

/* n equally spaced points on [-1, 1], from index `first` on. */
static void grid(int n, int first, int count, double *x)
{
  for (int i = 0; i < count; i++)
    x[i] = -1.0 + 2.0 * (first + i) / (n - 1);
}

static int fit(sv_run *r, const template_state *s, sv_graph *g, sv_params *p, sv_node *x,
               sv_node *u)
{
  int rc = -1;
  sv_lsq *lsq = NULL;
  sv_plan *eval = NULL;
  double *xs = NULL, *ys = NULL, *xe = NULL, *ue = NULL, *ye = NULL, *err = NULL;

  /* The training data: this rank's share of the points. */
  int first, count;
  sv_run_partition(r, s->points, &first, &count);
  int one[2] = {SV_BATCH, 1};
  sv_node *y = sv_input(g, "y", 2, one);
  sv_node *res = sv_sub(u, y);
  xs = malloc((size_t)count * sizeof *xs);
  ys = malloc((size_t)count * sizeof *ys);
  if (!xs || !ys) {
    sv_fail("template: out of memory");
    goto done;
  }
  grid(s->points, first, count, xs);
  for (int i = 0; i < count; i++)
    ys[i] = exact(xs[i]);

  /* The objective: mean over all points of (u - y)^2, with its exact
     Jacobian for Levenberg-Marquardt. */
  lsq = sv_lsq_new(g, p, 1, &res, count, s->points);
  if (!lsq || sv_lsq_bind(lsq, x, xs) < 0 || sv_lsq_bind(lsq, y, ys) < 0)
    goto done;

  /* Glorot weights from the run's seeded RNG: same seed, same run. */
  if (sv_params_init_glorot(p, sv_run_rng(r)) < 0)
    goto done;
  sv_log(r, "template: MLP %d x %d (tanh), %zu parameters, %d points", s->depth, s->width,
         sv_params_count(p), s->points);

  sv_optim_result out = {0};
  sv_optim_opts o;
  if (s->adam_steps > 0) {
    sv_optim_defaults(&o, SV_OPTIM_ADAM);
    o.max_steps = s->adam_steps;
    o.lr = s->lr;
    if (sv_minimize(r, p, sv_lsq_objective(lsq), &o, &out) < 0)
      goto done;
  }
  if (s->lm_steps > 0) {
    sv_optim_defaults(&o, SV_OPTIM_LM);
    o.max_steps = s->lm_steps;
    if (sv_minimize(r, p, sv_lsq_objective(lsq), &o, &out) < 0)
      goto done;
  }

  /* Evaluate on a finer grid (every rank computes it; rank 0 writes). */
  int ne = s->eval_points;
  eval = sv_compile(g, 1, &u, ne);
  xe = malloc((size_t)ne * sizeof *xe);
  ye = malloc((size_t)ne * sizeof *ye);
  err = malloc((size_t)ne * sizeof *err);
  ue = malloc((size_t)ne * sizeof *ue);
  if (!eval || !xe || !ye || !err || !ue) {
    if (eval)
      sv_fail("template: out of memory");
    goto done;
  }
  grid(ne, 0, ne, xe);
  if (sv_plan_bind(eval, x, xe) < 0 || sv_plan_run(eval) < 0)
    goto done;
  const double *uv = sv_plan_value(eval, u);
  double num = 0, den = 0, maxerr = 0;
  for (int i = 0; i < ne; i++) {
    ye[i] = exact(xe[i]);
    ue[i] = uv[i];
    err[i] = ue[i] - ye[i];
    num += err[i] * err[i];
    den += ye[i] * ye[i];
    if (fabs(err[i]) > maxerr)
      maxerr = fabs(err[i]);
  }
  double rel_l2 = sqrt(num / den);

  const char *names[4] = {"x", "u", "exact", "error"};
  const double *cols[4] = {xe, ue, ye, err};
  if (sv_metric(r, "rel_l2", rel_l2) < 0 || sv_metric(r, "max_abs_err", maxerr) < 0 ||
      sv_metric(r, "loss", out.loss) < 0 ||
      sv_headline(r, "rel_l2 %.3e  max_abs_err %.3e  (%d evaluation points)", rel_l2, maxerr, ne) < 0 ||
      sv_write_csv(r, "fit.csv", 4, names, (size_t)ne, cols) < 0)
    goto done;
  if (sv_plot(r, "fit.png",
              "set datafile separator ','\n"
              "set key autotitle columnhead\n"
              "set xlabel 'x'\n"
              "set multiplot layout 2,1\n"
              "plot 'fit.csv' using 1:3 with lines lw 2, '' using 1:2 with lines dt 2 lw 2\n"
              "plot 'fit.csv' using 1:4 with lines\n"
              "unset multiplot\n") < 0)
    goto done;
  rc = 0;

done:
  sv_plan_free(eval);
  sv_lsq_free(lsq);
  free(xs);
  free(ys);
  free(xe);
  free(ye);
  free(ue);
  free(err);
  return rc;
}

/* Build the network u(x) = MLP(x), fit it, report. */
static int template_run(sv_run *r, void *state)
{
  const template_state *s = state;
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  int rc = -1;
  if (!g || !p) {
    sv_fail("template: out of memory");
    goto done;
  }
  int one[2] = {SV_BATCH, 1};
  sv_node *x = sv_input(g, "x", 2, one);
  sv_node *u = sv_mlp(p, "u", x, s->width, s->depth, 1, SV_ACT_TANH);
  if (sv_graph_error(g)) {
    sv_fail("template: building the network: %s", sv_graph_error(g));
    goto done;
  }
  /* sv_minimize also keeps the trained parameters in checkpoint.bin. */
  rc = fit(r, s, g, p, x, u);

done:
  sv_params_free(p);
  sv_graph_free(g);
  return rc;
}

static void template_cleanup(void *state) { free(state); }

static const sv_plugin template_plugin =
    SV_PLUGIN_INIT("template", "fit sin(pi x) exp(-x) on [-1,1] with an MLP (Adam, then LM)",
                   template_setup, template_run, template_cleanup);

SV_PLUGIN_EXPORT const sv_plugin *sv_plugin_entry(void) { return &template_plugin; }
