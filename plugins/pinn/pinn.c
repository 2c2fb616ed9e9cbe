/*
 * pinn.c -- the PINN helper: options, collocation points, the training
 * driver (Adam, then Levenberg-Marquardt or L-BFGS), evaluation on a grid,
 * error metrics, the solution CSV and the plots. See pinn.h.
 */
#include "pinn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

static const char *const second_names[] = {"none", "lm", "lbfgs"};

const char *pinn_second_name(pinn_second s)
{
  return (unsigned)s < 3u ? second_names[s] : "?";
}

static const char *const grid_names[] = {"even", "chebyshev"};

const char *pinn_grid_name(pinn_grid g)
{
  return (unsigned)g < 2u ? grid_names[g] : "?";
}

static const char *const continuation_names[] = {"none", "frobenius"};

const char *pinn_continuation_name(pinn_continuation c)
{
  return (unsigned)c < 2u ? continuation_names[c] : "?";
}

static const char *const derivatives_names[] = {"jet", "reverse"};

const char *pinn_derivatives_name(pinn_derivatives d)
{
  return (unsigned)d < 2u ? derivatives_names[d] : "?";
}

void pinn_opts_defaults(pinn_opts *o)
{
  memset(o, 0, sizeof *o);
  o->width = 20;
  o->depth = 2;
  o->act = SV_ACT_TANH;
  o->points = 64;
  o->resample_every = 0;
  o->adam_steps = 500;
  o->adam_lr = 1e-2;
  o->adam_restart = 0;
  o->adam_restart_mult = 2.0;
  o->adam_lr_min = 1e-4;
  o->adam_beta1 = 0.9;
  o->adam_beta2 = 0.999;
  o->second = PINN_SECOND_LM;
  o->lm_steps = 100;
  o->lbfgs_steps = 2000;
  o->ftol = 0;
  o->gtol = 1e-14;
  /* converged: the loss fell by less than 0.1% over 100 steps (the
     default runs' losses still fall by 6-30% per 100 steps at the end of
     their budgets, so they run every step; a plateau stops) */
  o->lm_stall_window = 100;
  o->lm_stall_rtol = 1e-3;
  o->derivatives = PINN_DERIVATIVES_JET;
  o->eval_points = 1001;
  o->threads = 1;
  o->grid = PINN_GRID_EVEN;
  o->declare_continuation = 0;
  o->continuation = PINN_CONTINUATION_FROBENIUS;
  o->frobenius_window = 0.5;
  o->frobenius_points = 48;
  o->frobenius_weight = 1;
  o->left_steps = 0;
  o->trust_between = 100;
}

/* Upper bounds that keep a typo (an extra zero or three) from asking for
   hours of work or gigabytes of Jacobian. */
#define MAX_WIDTH 1024
#define MAX_DEPTH 32
#define MAX_POINTS 1000000
#define MAX_STEPS 100000000
#define MAX_EVAL 10000000

static int check_range_int(const char *name, int v, int lo, int hi, const char *why)
{
  if (v < lo || v > hi)
    return sv_fail("option %s = %d is out of range [%d, %d]%s%s", name, v, lo, hi,
                   why ? ": " : "", why ? why : "");
  return 0;
}

/* The index of `value` among the n names of option `opt` (any case), or a
   message listing the `expected` ones. */
static int parse_name(const char *opt, const char *value, const char *const *names, int n,
                      const char *expected, int *out)
{
  for (int i = 0; i < n; i++)
    if (strcasecmp(value, names[i]) == 0) {
      *out = i;
      return 0;
    }
  return sv_fail("option %s '%s': expected %s", opt, value, expected);
}

int pinn_opts_declare(sv_run *r, pinn_opts *o)
{
  char act[32], second[32], grid[32], cont[32], deriv[32];
  if (sv_opt_int(r, "-width", o->width, "hidden layer width", &o->width) < 0 ||
      sv_opt_int(r, "-depth", o->depth, "number of hidden layers", &o->depth) < 0 ||
      sv_opt_string(r, "-activation", sv_activation_name(o->act),
                    "activation: tanh, sigmoid, softplus or sin", act, sizeof act) < 0 ||
      sv_opt_int(r, "-points", o->points,
                 "collocation points over all ranks (always including the ends and singular points)",
                 &o->points) < 0 ||
      sv_opt_string(r, "-grid", pinn_grid_name(o->grid),
                    "collocation grid: even, or chebyshev (Chebyshev-Lobatto points between "
                    "the singular points, clustered towards them)", grid, sizeof grid) < 0 ||
      sv_opt_int(r, "-resample_every", o->resample_every,
                 "redraw the interior collocation points at random every K Adam steps (0: never)",
                 &o->resample_every) < 0 ||
      sv_opt_int(r, "-adam_steps", o->adam_steps, "Adam steps (0: skip the Adam stage)",
                 &o->adam_steps) < 0 ||
      sv_opt_real(r, "-adam_lr", o->adam_lr, "Adam learning rate", &o->adam_lr) < 0 ||
      sv_opt_int(r, "-adam_restart", o->adam_restart,
                 "Adam cosine schedule: first warm-restart period in steps (0: constant rate)",
                 &o->adam_restart) < 0 ||
      sv_opt_real(r, "-adam_restart_mult", o->adam_restart_mult,
                  "Adam cosine schedule: period multiplier after each restart",
                  &o->adam_restart_mult) < 0 ||
      sv_opt_real(r, "-adam_lr_min", o->adam_lr_min, "Adam cosine schedule: lowest rate",
                  &o->adam_lr_min) < 0 ||
      sv_opt_real(r, "-adam_beta1", o->adam_beta1, "Adam beta1", &o->adam_beta1) < 0 ||
      sv_opt_real(r, "-adam_beta2", o->adam_beta2, "Adam beta2", &o->adam_beta2) < 0 ||
      sv_opt_string(r, "-second_stage", pinn_second_name(o->second),
                    "after Adam: lm (Levenberg-Marquardt, exact Jacobian), lbfgs or none", second,
                    sizeof second) < 0 ||
      sv_opt_int(r, "-lm_steps", o->lm_steps, "Levenberg-Marquardt iterations", &o->lm_steps) < 0 ||
      sv_opt_int(r, "-lbfgs_steps", o->lbfgs_steps, "L-BFGS iterations", &o->lbfgs_steps) < 0 ||
      sv_opt_real(r, "-ftol", o->ftol, "stop a stage when the loss is below this (0: never)",
                  &o->ftol) < 0 ||
      sv_opt_real(r, "-gtol", o->gtol,
                  "stop LM when its step, or L-BFGS when the gradient norm, is below this",
                  &o->gtol) < 0 ||
      sv_opt_int(r, "-lm_stall_window", o->lm_stall_window,
                 "stop Levenberg-Marquardt as converged when its loss fell by less than the "
                 "fraction -lm_stall_rtol over the last this many steps (checked every window; "
                 "0: run every step)", &o->lm_stall_window) < 0 ||
      sv_opt_real(r, "-lm_stall_rtol", o->lm_stall_rtol,
                  "relative decrease of the loss over -lm_stall_window steps below which "
                  "Levenberg-Marquardt stops (in [0, 1); 0: only when the loss stops "
                  "falling at all)", &o->lm_stall_rtol) < 0 ||
      sv_opt_string(r, "-derivatives", pinn_derivatives_name(o->derivatives),
                    "input derivatives u', u'' of the trial solution: jet (Taylor mode: the "
                    "value and derivatives pushed forward together, one matrix product per "
                    "layer; the weight gradient and Jacobian by ordinary reverse mode) or "
                    "reverse (reverse over reverse, sv_grad of sv_grad: the same numbers to "
                    "round-off, slower; for comparison)", deriv, sizeof deriv) < 0 ||
      sv_opt_bool(r, "-write_gradient", o->write_gradient,
                  "write gradient.csv: the loss gradient at the initial parameters, from the "
                  "gradient plan (Adam's) and as 2 J^T r from the Jacobian (Levenberg-"
                  "Marquardt's), e.g. to compare -derivatives jet and reverse",
                  &o->write_gradient) < 0 ||
      sv_opt_int(r, "-eval_points", o->eval_points, "points of the evaluation grid",
                 &o->eval_points) < 0 ||
      sv_opt_int(r, "-threads", o->threads,
                 "threads of this process that split the collocation points (loss, gradient "
                 "and Jacobian rows), each with single-threaded BLAS; results agree with 1 "
                 "thread to round-off and are reproducible for a given count (under MPI: "
                 "per rank)", &o->threads) < 0 ||
      sv_opt_real(r, "-trust_between", o->trust_between,
                  "trust check: warn when the rms residual between the collocation points is "
                  "more than this times the rms residual at them (the network fits the points, "
                  "not the equation)", &o->trust_between) < 0)
    return -1;
  snprintf(cont, sizeof cont, "%s", pinn_continuation_name(o->continuation));
  if (o->declare_continuation &&
      (sv_opt_string(r, "-continuation", pinn_continuation_name(o->continuation),
                     "across a regular singular point x_s inside the domain: frobenius (near "
                     "x_s the solution must equal one combination sum_j C_j u_j of the local "
                     "solutions that are analytic there, the same C_j on both sides: the "
                     "analytic continuation) or none (the residual alone, which cannot tell "
                     "the two sides' solutions apart when the second exponent at x_s is >= 1)",
                     cont, sizeof cont) < 0 ||
       sv_opt_real(r, "-frobenius_window", o->frobenius_window,
                   "half-width of the matching window around x_s, as a fraction of the "
                   "radius of convergence of the local series (the distance to the next "
                   "singular point)", &o->frobenius_window) < 0 ||
       sv_opt_int(r, "-frobenius_points", o->frobenius_points,
                  "matching points in the window (both sides together)",
                  &o->frobenius_points) < 0 ||
       sv_opt_real(r, "-frobenius_weight", o->frobenius_weight,
                   "weight of the matching residual in the loss", &o->frobenius_weight) < 0 ||
       sv_opt_int(r, "-left_steps", o->left_steps,
                  "Levenberg-Marquardt steps on the domain up to the first singular point "
                  "inside it, before the whole domain (0: none)", &o->left_steps) < 0))
    return -1;

  if (sv_activation_parse(act, &o->act) < 0)
    return sv_fail_context("option -activation");
  if (o->act == SV_ACT_NONE)
    return sv_fail("option -activation none: a linear network cannot have the curvature "
                   "the equations need (its second derivative is zero)");
  int k[4] = {0, 0, 0, 0};
  if (parse_name("-second_stage", second, second_names, 3, "lm, lbfgs or none", &k[0]) < 0 ||
      parse_name("-grid", grid, grid_names, 2, "even or chebyshev", &k[1]) < 0 ||
      parse_name("-continuation", cont, continuation_names, 2, "frobenius or none", &k[2]) < 0 ||
      parse_name("-derivatives", deriv, derivatives_names, 2, "jet or reverse", &k[3]) < 0)
    return -1;
  o->second = (pinn_second)k[0];
  o->grid = (pinn_grid)k[1];
  o->continuation = (pinn_continuation)k[2];
  o->derivatives = (pinn_derivatives)k[3];
  if (!(o->frobenius_window > 0 && o->frobenius_window < 1))
    return sv_fail("option -frobenius_window = %g: must be in (0, 1) (a fraction of the radius "
                   "of convergence of the local series)", o->frobenius_window);
  if (!(o->frobenius_weight > 0) || !isfinite(o->frobenius_weight))
    return sv_fail("option -frobenius_weight = %g: must be a positive number",
                   o->frobenius_weight);
  if (!(o->trust_between > 1) || !isfinite(o->trust_between))
    return sv_fail("option -trust_between = %g: must be a number > 1", o->trust_between);

  if (check_range_int("-width", o->width, 1, MAX_WIDTH, NULL) < 0 ||
      check_range_int("-depth", o->depth, 1, MAX_DEPTH, NULL) < 0 ||
      check_range_int("-points", o->points, 3, MAX_POINTS,
                      "at least both ends and one interior point") < 0 ||
      check_range_int("-resample_every", o->resample_every, 0, MAX_STEPS, NULL) < 0 ||
      check_range_int("-adam_steps", o->adam_steps, 0, MAX_STEPS, NULL) < 0 ||
      check_range_int("-threads", o->threads, 1, 64, NULL) < 0 ||
      check_range_int("-adam_restart", o->adam_restart, 0, MAX_STEPS, NULL) < 0 ||
      check_range_int("-lm_steps", o->lm_steps, 0, MAX_STEPS, NULL) < 0 ||
      check_range_int("-lbfgs_steps", o->lbfgs_steps, 0, MAX_STEPS, NULL) < 0 ||
      check_range_int("-lm_stall_window", o->lm_stall_window, 0, MAX_STEPS, NULL) < 0 ||
      check_range_int("-eval_points", o->eval_points, 2, MAX_EVAL, NULL) < 0 ||
      check_range_int("-frobenius_points", o->frobenius_points, 4, MAX_POINTS,
                      "at least two points on each side") < 0 ||
      check_range_int("-left_steps", o->left_steps, 0, MAX_STEPS, NULL) < 0)
    return -1;
  if (!(o->adam_lr > 0) || !isfinite(o->adam_lr))
    return sv_fail("option -adam_lr = %g: must be a positive number", o->adam_lr);
  if (o->adam_restart > 0 && !(o->adam_restart_mult >= 1 && isfinite(o->adam_restart_mult)))
    return sv_fail("option -adam_restart_mult = %g: must be >= 1", o->adam_restart_mult);
  if (o->adam_restart > 0 && !(o->adam_lr_min >= 0 && o->adam_lr_min <= o->adam_lr))
    return sv_fail("option -adam_lr_min = %g: must be in [0, adam_lr = %g]", o->adam_lr_min,
                   o->adam_lr);
  if (!(o->adam_beta1 >= 0 && o->adam_beta1 < 1))
    return sv_fail("option -adam_beta1 = %g: must be in [0, 1)", o->adam_beta1);
  if (!(o->adam_beta2 >= 0 && o->adam_beta2 < 1))
    return sv_fail("option -adam_beta2 = %g: must be in [0, 1)", o->adam_beta2);
  if (!(o->ftol >= 0) || !isfinite(o->ftol))
    return sv_fail("option -ftol = %g: must be >= 0", o->ftol);
  if (!(o->gtol >= 0) || !isfinite(o->gtol))
    return sv_fail("option -gtol = %g: must be >= 0", o->gtol);
  if (!(o->lm_stall_rtol >= 0 && o->lm_stall_rtol < 1))
    return sv_fail("option -lm_stall_rtol = %g: must be in [0, 1) (a relative decrease of the "
                   "loss)", o->lm_stall_rtol);
  if (o->points < sv_run_size(r))
    return sv_fail("option -points = %d: fewer points than the %d MPI ranks", o->points,
                   sv_run_size(r));
  return 0;
}

/* ------------------------------------------------------------------ */
/* Model                                                               */
/* ------------------------------------------------------------------ */

struct pinn_model {
  sv_run *r;
  pinn_opts o;
  int distrusted; /* a plugin's own check failed (pinn_model_distrust) */
  int untrained;  /* no optimizer step ran: the answer is the initial network's */
  double lo, hi;
  sv_graph *g;
  sv_params *p;
  sv_node *x;
  int nout, nres;
  sv_node *out[PINN_MAX_OUTPUTS], *res[PINN_MAX_RESIDUALS];
  char *out_name[PINN_MAX_OUTPUTS], *res_name[PINN_MAX_RESIDUALS];
  /* collocation: `total` points over the ranks, ours are [first, first+count) */
  int total, first, count;
  int nfixed;
  int fixed_index[PINN_MAX_PINS + 2];  /* global indices that never move */
  double *grid;                         /* total values: the start grid */
  double *pts;                          /* count values, bound to the lsq */
  sv_lsq *lsq;
  pinn_step_hook hook;
  void *hook_ctx;
  const char *stage;                    /* the stage running (for the hook) */
  int resampling;                       /* resample in this stage */
  int resamples;                        /* how many redraws so far */
  /* regular singular points (pinn_model_add_frobenius) */
  int nsing;
  struct pinn_singular {
    pinn_frobenius f;
    char *name;
    sv_node *y;                         /* the solution it constrains */
    sv_node *C, *match;                 /* NULL without matching */
    int total, count;                   /* matching points: all, this rank's (0 or all) */
    double *pts;                        /* total points in the window */
    double *wts;                        /* their weights (bound to w) */
    sv_node *w;                         /* input: the weight of each matching row */
    sv_lsq *lsq;
  } sing[PINN_MAX_SINGULAR];
  char *jet_error;                      /* a network jet that could not be built */
  sv_objective obj;                     /* what the optimizers see: all the lsq's */
  double *gtmp;                         /* a gradient buffer for summing them */
};

/* The even grid on [lo, hi] with both ends; each pin replaces the grid
   point nearest to it (a free one), so every singular point is exact. */
static int grid_even(pinn_model *m, int npin, const double *pins)
{
  int N = m->total;
  double h = (m->hi - m->lo) / (N - 1);
  for (int i = 0; i < N; i++)
    m->grid[i] = m->lo + i * h;
  m->grid[N - 1] = m->hi;
  m->fixed_index[0] = 0;
  m->fixed_index[1] = N - 1;
  m->nfixed = 2;
  for (int k = 0; k < npin; k++) {
    double v = pins[k];
    if (v == m->lo || v == m->hi)
      continue;
    int gi = (int)lround((v - m->lo) / h), found = -1;
    /* the nearest index not already fixed */
    for (int d = 0; d <= N && found < 0; d++)
      for (int c = 0; c < 2 && found < 0; c++) {
        int cand = c ? gi + d : gi - d, taken = 0;
        if (cand < 1 || cand > N - 2)
          continue;
        for (int j = 0; j < m->nfixed; j++)
          taken |= m->fixed_index[j] == cand;
        if (!taken)
          found = cand;
      }
    if (found < 0)
      return sv_fail("pinn: no free grid point for pinned point %g", v);
    m->grid[found] = v;
    m->fixed_index[m->nfixed++] = found;
  }
  return 0;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/*
 * Chebyshev-Lobatto points on each segment between consecutive break
 * points (both ends and the pins): clustered towards every singular point
 * and end, where the solution's derivatives are largest. The interior
 * points are shared out in proportion to the segments' lengths, but every
 * segment gets at least a quarter of an equal share (and at least 2): two
 * singular points close together (the khronon's horizons at large c,
 * 5e-3 apart for c = 100 on a domain of 1.34) would otherwise get one point
 * between them, and the network would fit the points but not the equation
 * there (measured: a residual between the points 1000 times that at them).
 */
static int grid_chebyshev(pinn_model *m, int npin, const double *pins)
{
  const double pi = 3.14159265358979323846;
  double b[PINN_MAX_PINS + 2];
  int nb = 0;
  b[nb++] = m->lo;
  for (int k = 0; k < npin; k++)
    if (pins[k] > m->lo && pins[k] < m->hi)
      b[nb++] = pins[k];
  b[nb++] = m->hi;
  qsort(b, (size_t)nb, sizeof *b, cmp_double);
  int u = 1; /* drop duplicate pins */
  for (int k = 1; k < nb; k++)
    if (b[k] != b[u - 1])
      b[u++] = b[k];
  nb = u;
  int interior = m->total - nb, used = 0, gi = 0;
  if (interior < nb - 1)
    return sv_fail("pinn: %d collocation points are too few for %d segments between the "
                   "singular points", m->total, nb - 1);
  m->nfixed = 0;
  int nseg = nb - 1, least = interior / (4 * nseg);
  if (least < 2)
    least = 2;
  if (least * nseg > interior)
    least = interior / nseg;
  /* the share of each segment beyond its `least`, in proportion to length,
     rounded so that the shares add up */
  int spare = interior - least * nseg;
  for (int s = 0; s + 1 < nb; s++) {
    double frac = (b[s + 1] - m->lo) / (m->hi - m->lo);
    int upto = s + 2 == nb ? interior : least * (s + 1) + (int)lround(frac * spare);
    int ns = upto - used;
    if (ns < 1)
      ns = 1;
    if (ns > interior - used - (nb - 2 - s))
      ns = interior - used - (nb - 2 - s);
    used += ns;
    m->fixed_index[m->nfixed++] = gi;
    m->grid[gi++] = b[s];
    for (int j = 1; j <= ns; j++)
      m->grid[gi++] = b[s] + (b[s + 1] - b[s]) * 0.5 * (1 - cos(pi * j / (ns + 1)));
  }
  m->fixed_index[m->nfixed++] = gi;
  m->grid[gi++] = m->hi;
  return gi == m->total ? 0 : sv_fail("pinn: internal error: %d of %d grid points", gi, m->total);
}

/* The start grid (m->grid, built once), this rank's share. */
static void grid_reset(pinn_model *m)
{
  memcpy(m->pts, m->grid + m->first, (size_t)m->count * sizeof(double));
}

/* Uniform random interior points, fixed points in place. Every rank draws
   the whole set from the same RNG stream (the run's RNG is seeded alike on
   all ranks), so the ranks stay in step and the union is one draw. */
static void grid_random(pinn_model *m)
{
  gsl_rng *rng = sv_run_rng(m->r);
  for (int gi = 0; gi < m->total; gi++) {
    double u = m->lo + (m->hi - m->lo) * gsl_rng_uniform_pos(rng);
    if (gi >= m->first && gi < m->first + m->count)
      m->pts[gi - m->first] = u;
  }
  for (int k = 0; k < m->nfixed; k++) {
    int gi = m->fixed_index[k];
    if (gi >= m->first && gi < m->first + m->count)
      m->pts[gi - m->first] = m->grid[gi];
  }
}

pinn_model *pinn_model_new(sv_run *r, const pinn_opts *o, double lo, double hi, int npin,
                           const double *pins)
{
  if (!r || !o)
    return sv_fail("pinn: needs a run and options"), NULL;
  if (!(lo < hi) || !isfinite(lo) || !isfinite(hi))
    return sv_fail("pinn: the domain [%g, %g] is empty or not finite", lo, hi), NULL;
  if (npin < 0 || npin > PINN_MAX_PINS || (npin > 0 && !pins))
    return sv_fail("pinn: %d pinned points (at most %d)", npin, PINN_MAX_PINS), NULL;
  if (o->points < npin + 3)
    return sv_fail("pinn: %d collocation points cannot hold both ends, %d pinned point(s) "
                   "and an interior point", o->points, npin), NULL;
  if (o->points < sv_run_size(r))
    return sv_fail("pinn: %d collocation points for %d MPI ranks", o->points,
                   sv_run_size(r)), NULL;

  pinn_model *m = calloc(1, sizeof *m);
  if (!m)
    return sv_fail("pinn: out of memory"), NULL;
  m->r = r;
  m->o = *o;
  m->lo = lo;
  m->hi = hi;
  m->total = o->points;

  m->grid = malloc((size_t)m->total * sizeof *m->grid);
  if (!m->grid) {
    sv_fail("pinn: out of memory for %d points", m->total);
    goto fail;
  }
  for (int k = 0; k < npin; k++)
    if (!(pins[k] >= lo && pins[k] <= hi)) {
      sv_fail("pinn: pinned point %g is outside the domain [%g, %g]", pins[k], lo, hi);
      goto fail;
    }
  if ((o->grid == PINN_GRID_CHEBYSHEV ? grid_chebyshev(m, npin, pins)
                                      : grid_even(m, npin, pins)) < 0)
    goto fail;

  sv_run_partition(r, m->total, &m->first, &m->count);
  m->pts = malloc((size_t)(m->count > 0 ? m->count : 1) * sizeof *m->pts);
  m->g = sv_graph_new();
  m->p = sv_params_new();
  if (!m->pts || !m->g || !m->p) {
    sv_fail("pinn: out of memory");
    goto fail;
  }
  grid_reset(m);
  int dims[2] = {SV_BATCH, 1};
  m->x = sv_input(m->g, "x", 2, dims);
  if (!m->x) {
    sv_fail("pinn: %s", sv_graph_error(m->g) ? sv_graph_error(m->g) : "cannot create the input");
    goto fail;
  }
  return m;
fail:
  pinn_model_free(m);
  return NULL;
}

void pinn_model_free(pinn_model *m)
{
  if (!m)
    return;
  sv_lsq_free(m->lsq);
  sv_graph_free(m->g);
  sv_params_free(m->p);
  for (int i = 0; i < m->nout; i++)
    free(m->out_name[i]);
  for (int i = 0; i < m->nres; i++)
    free(m->res_name[i]);
  for (int k = 0; k < m->nsing; k++) {
    sv_lsq_free(m->sing[k].lsq);
    free(m->sing[k].name);
    free(m->sing[k].pts);
    free(m->sing[k].wts);
  }
  free(m->gtmp);
  free(m->jet_error);
  free(m->pts);
  free(m->grid);
  free(m);
}

sv_graph *pinn_model_graph(pinn_model *m) { return m ? m->g : NULL; }
sv_params *pinn_model_params(pinn_model *m) { return m ? m->p : NULL; }
sv_node *pinn_model_input(pinn_model *m) { return m ? m->x : NULL; }
sv_lsq *pinn_model_lsq(pinn_model *m) { return m ? m->lsq : NULL; }

const double *pinn_model_points(const pinn_model *m, int *count)
{
  if (count)
    *count = m ? m->count : 0;
  return m ? m->pts : NULL;
}

sv_node *pinn_model_net(pinn_model *m, const char *name, sv_node *t)
{
  if (!m || !t)
    return NULL;
  return sv_mlp(m->p, name, t, m->o.width, m->o.depth, 1, m->o.act);
}

sv_node *pinn_normalize(sv_node *x, double lo, double hi)
{
  /* 2 (x - lo) / (hi - lo) - 1 */
  double s = 2.0 / (hi - lo);
  return sv_add_scalar(sv_scale(x, s), -1.0 - s * lo);
}

/* The graph took the derivative nodes d1 (and d2 when asked). */
static int derivs_built(pinn_model *m, sv_node *d1, sv_node *d2, int want_d2)
{
  const char *e = sv_graph_error(m->g);
  if (e)
    return sv_fail("pinn: building derivatives: %s", e);
  if (!d1 || (want_d2 && !d2))
    return sv_fail("pinn: building derivatives failed");
  return 0;
}

int pinn_derivs(pinn_model *m, sv_node *y, sv_node **d1, sv_node **d2)
{
  if (!m || !y || !d1)
    return sv_fail("pinn_derivs: missing argument");
  *d1 = sv_grad(y, m->x);
  if (d2)
    *d2 = sv_grad(*d1, m->x);
  return derivs_built(m, *d1, d2 ? *d2 : NULL, d2 != NULL);
}

pinn_jet pinn_model_input_jet(pinn_model *m, int order)
{
  pinn_jet j = {m ? m->x : NULL, {NULL, NULL}, {1.0, 0.0}, 0};
  if (m && m->o.derivatives == PINN_DERIVATIVES_JET)
    j.order = order < 1 ? 1 : order > 2 ? 2 : order;
  return j;
}

pinn_jet pinn_model_net_jet(pinn_model *m, const char *name, pinn_jet t)
{
  pinn_jet bad = {NULL, {NULL, NULL}, {0, 0}, 0};
  if (!m || !t.v)
    return bad;
  if (t.order == 0) {
    bad.v = pinn_model_net(m, name, t.v);
    return bad;
  }
  sv_jet J;
  if (sv_mlp_jet(m->p, NULL, name, t.v, m->o.width, m->o.depth, 1, m->o.act, t.order, &J) < 0) {
    /* kept for pinn_jet_derivs and add_node, which report it */
    if (!m->jet_error)
      m->jet_error = strdup(sv_errmsg());
    return bad;
  }
  return pinn_jet_chain(t, J.u, J.du[0], J.d2u[0]);
}

int pinn_jet_derivs(pinn_model *m, const pinn_jet *y, sv_node **d1, sv_node **d2)
{
  if (!m || !y || !d1)
    return sv_fail("pinn_jet_derivs: missing argument");
  if (m->jet_error)
    return sv_fail("pinn: building the network's jet: %s", m->jet_error);
  if (y->order == 0)
    return pinn_derivs(m, y->v, d1, d2);
  if (d2 && y->order < 2)
    return sv_fail("pinn_jet_derivs: the jet carries first derivatives only (built with "
                   "order 1)");
  *d1 = pinn_jet_node(y, 0);
  if (d2)
    *d2 = pinn_jet_node(y, 1);
  return derivs_built(m, *d1, d2 ? *d2 : NULL, d2 != NULL);
}

static int add_node(pinn_model *m, const char *what, int max, int *n, sv_node **nodes,
                    char **names, const char *name, sv_node *v)
{
  if (!m)
    return sv_fail("pinn: no model");
  if (m->jet_error)
    return sv_fail("pinn: %s '%s': building the network's jet: %s", what, name ? name : "?",
                   m->jet_error);
  const char *e = sv_graph_error(m->g);
  if (e)
    return sv_fail("pinn: %s '%s': the graph has an error: %s", what, name ? name : "?", e);
  if (!v)
    return sv_fail("pinn: %s '%s' is missing (NULL node)", what, name ? name : "?");
  if (*n >= max)
    return sv_fail("pinn: more than %d %ss", max, what);
  if (!sv_is_batched(v) || !((sv_ndim(v) == 1) || (sv_ndim(v) == 2 && sv_dim(v, 1) == 1)))
    return sv_fail("pinn: %s '%s' must have shape [B] or [B,1]", what, name ? name : "?");
  char *c = strdup(name ? name : what);
  if (!c)
    return sv_fail("pinn: out of memory");
  nodes[*n] = v;
  names[*n] = c;
  (*n)++;
  return 0;
}

int pinn_model_add_output(pinn_model *m, const char *name, sv_node *y)
{
  return add_node(m, "output", PINN_MAX_OUTPUTS, m ? &m->nout : NULL, m ? m->out : NULL,
                  m ? m->out_name : NULL, name, y);
}

int pinn_model_add_residual(pinn_model *m, const char *name, sv_node *res)
{
  if (m && m->lsq)
    return sv_fail("pinn: residual '%s' added after training started", name ? name : "?");
  return add_node(m, "residual", PINN_MAX_RESIDUALS, m ? &m->nres : NULL, m ? m->res : NULL,
                  m ? m->res_name : NULL, name, res);
}

void pinn_model_set_hook(pinn_model *m, pinn_step_hook hook, void *ctx)
{
  if (!m)
    return;
  m->hook = hook;
  m->hook_ctx = ctx;
}

/* ------------------------------------------------------------------ */
/* Regular singular points: matching the Frobenius solutions           */
/* ------------------------------------------------------------------ */

/* n Chebyshev-Lobatto points on [a, b], both ends included (n >= 2). */
static void lobatto(double a, double b, int n, double *x)
{
  const double pi = 3.14159265358979323846;
  for (int j = 0; j < n; j++)
    x[j] = a + (b - a) * 0.5 * (1 - cos(pi * j / (n - 1)));
  x[0] = a;
  x[n - 1] = b;
}

int pinn_model_add_frobenius(pinn_model *m, const char *name, sv_node *y,
                             const pinn_linear_ode *ode, double xs, pinn_frobenius *info)
{
  if (!m || !y || !ode)
    return sv_fail("pinn_model_add_frobenius: missing argument");
  if (m->lsq)
    return sv_fail("pinn: singular point %g declared after training started", xs);
  if (m->nsing >= PINN_MAX_SINGULAR)
    return sv_fail("pinn: more than %d singular points", PINN_MAX_SINGULAR);
  if (sv_graph_error(m->g))
    return sv_fail("pinn: singular point %g: the graph has an error: %s", xs,
                   sv_graph_error(m->g));
  struct pinn_singular *sp = &m->sing[m->nsing];
  memset(sp, 0, sizeof *sp);
  if (pinn_frobenius_local(ode, xs, m->o.frobenius_window, m->lo, m->hi, &sp->f) < 0)
    return sv_fail_context("pinn: singular point %s at x = %g", name ? name : "?", xs);
  sp->name = strdup(name ? name : "singular");
  if (!sp->name)
    return sv_fail("pinn: out of memory");
  sp->y = y;
  m->nsing++;
  if (info)
    *info = sp->f;
  if (m->o.continuation == PINN_CONTINUATION_NONE)
    return 0;

  /* the matching points: Chebyshev-Lobatto on each side, shared out in
     proportion to the sides' lengths, x_s once */
  const pinn_frobenius *f = &sp->f;
  double left = xs - f->lo, right = f->hi - xs;
  int n = m->o.frobenius_points;
  int nl = left > 0 ? (int)lround(n * left / (left + right)) : 0;
  if (left > 0 && nl < 2)
    nl = 2;
  if (right > 0 && n - nl < 2)
    nl = n - 2;
  int nr = n - nl;
  sp->total = n;
  sp->pts = malloc((size_t)n * sizeof *sp->pts);
  if (!sp->pts)
    return sv_fail("pinn: out of memory");
  if (nl > 0 && nr > 0) {
    lobatto(f->lo, xs, nl, sp->pts);
    lobatto(xs, f->hi, nr + 1, sp->pts + nl - 1); /* its first point is x_s again */
  } else if (nl > 0) {
    lobatto(f->lo, xs, nl, sp->pts);
  } else {
    lobatto(xs, f->hi, nr, sp->pts);
  }
  /* all matching rows on the last rank: gathered after every rank's
     collocation rows, in the one-rank order */
  sp->count = sv_run_rank(m->r) == sv_run_size(m->r) - 1 ? n : 0;

  /* y - sum_j C_j u_j(x), u_j by Horner in t = x - x_s */
  char pname[160];
  snprintf(pname, sizeof pname, "%s.C", sp->name);
  int dims[1] = {f->nbasis};
  sp->C = sv_param(m->g, m->p, pname, 1, dims);
  sv_node *t = sv_add_scalar(m->x, -xs), *fit = NULL;
  for (int b = 0; b < f->nbasis; b++) {
    int K = f->terms[b];
    double s = 1.0 / f->scale[b];
    sv_node *acc = sv_add_scalar(sv_scale(t, s * f->coef[b][K - 1]), s * f->coef[b][K - 2]);
    for (int k = K - 3; k >= 0; k--)
      acc = sv_add_scalar(sv_mul(acc, t), s * f->coef[b][k]);
    sv_node *term = sv_mul(acc, sv_slice(sp->C, 0, b, 1));
    fit = fit ? sv_add(fit, term) : term;
  }
  /* measured on each side relative to the size of the local solutions
     there (max over that side's points of max_j |u_j|): a solution that is
     small on one side (|t|^N, or a zero of y nearby) is tied as firmly
     there as on the other */
  sp->wts = malloc((size_t)n * sizeof *sp->wts);
  if (!sp->wts)
    return sv_fail("pinn: out of memory");
  double side_max[2] = {0, 0};
  for (int i = 0; i < n; i++)
    for (int b = 0; b < f->nbasis; b++)
      side_max[sp->pts[i] > xs] =
          fmax(side_max[sp->pts[i] > xs], fabs(pinn_frobenius_eval(f, b, sp->pts[i])));
  for (int i = 0; i < n; i++) {
    double sm = side_max[sp->pts[i] > xs];
    sp->wts[i] = sm > 0 ? 1 / sm : 1;
  }
  char wname[160];
  snprintf(wname, sizeof wname, "%s.weight", sp->name);
  int wd[2] = {SV_BATCH, 1};
  sp->w = sv_input(m->g, wname, 2, wd);
  sp->match = sv_mul(sv_sub(y, fit), sp->w);
  const char *e = sv_graph_error(m->g);
  if (e || !sp->match)
    return sv_fail("pinn: building the matching residual at x = %g: %s", xs,
                   e ? e : "failed");
  return 0;
}

/* ------------------------------------------------------------------ */
/* Training                                                            */
/* ------------------------------------------------------------------ */

/*
 * What the optimizers minimise: the collocation lsq plus every matching
 * lsq. Residual rows: the collocation rows, then the matching rows (only
 * the last rank has any), so that the gathered Jacobian has the one-rank
 * row order.
 */
static int all_loss_grad(void *ctx, const double *theta, double *loss, double *grad)
{
  pinn_model *m = ctx;
  const sv_objective *o = sv_lsq_objective(m->lsq);
  if (o->loss_grad(o->ctx, theta, loss, grad) < 0)
    return -1;
  for (int k = 0; k < m->nsing; k++) {
    if (!m->sing[k].lsq)
      continue;
    const sv_objective *ok = sv_lsq_objective(m->sing[k].lsq);
    double l;
    if (ok->loss_grad(ok->ctx, theta, &l, grad ? m->gtmp : NULL) < 0)
      return -1;
    *loss += l;
    if (grad)
      for (size_t i = 0; i < m->obj.n; i++)
        grad[i] += m->gtmp[i];
  }
  return 0;
}

static int all_residuals(void *ctx, const double *theta, double *r, double *J)
{
  pinn_model *m = ctx;
  const sv_objective *o = sv_lsq_objective(m->lsq);
  if (o->residuals(o->ctx, theta, r, J) < 0)
    return -1;
  size_t row = o->m;
  for (int k = 0; k < m->nsing; k++) {
    if (!m->sing[k].lsq)
      continue;
    const sv_objective *ok = sv_lsq_objective(m->sing[k].lsq);
    if (ok->residuals(ok->ctx, theta, r + row, J ? J + row * m->obj.n : NULL) < 0)
      return -1;
    row += ok->m;
  }
  return 0;
}

/* Evaluate k nodes at n points x into dst[0..k) (n values each). */
static int eval_nodes(pinn_model *m, int k, sv_node *const *nodes, int n, const double *x,
                      double *const *dst)
{
  sv_plan *plan = sv_compile(m->g, k, nodes, n);
  if (!plan)
    return sv_fail_context("pinn: compiling the evaluation plan");
  int rc = sv_plan_bind(plan, m->x, x);
  if (rc == 0)
    rc = sv_plan_run(plan);
  for (int i = 0; i < k && rc == 0; i++) {
    const double *v = sv_plan_value(plan, nodes[i]);
    if (!v)
      rc = sv_fail("pinn: no value for an evaluated node");
    else
      memcpy(dst[i], v, (size_t)n * sizeof(double));
  }
  sv_plan_free(plan);
  return rc;
}

/*
 * Least squares y ~ sum_j c_j U[j] over n values, nb <= 2 columns
 * (modified Gram-Schmidt). *misfit: rms of the remainder. -1 when a
 * column is zero or the two are dependent.
 */
static int small_lsq(int n, int nb, double *const *U, const double *y, double *c,
                     double *misfit)
{
  double r11 = 0, r12 = 0, r22 = 0, q1y = 0, q2y = 0;
  for (int i = 0; i < n; i++)
    r11 += U[0][i] * U[0][i];
  r11 = sqrt(r11);
  if (!(r11 > 0))
    return -1;
  for (int i = 0; i < n; i++)
    q1y += U[0][i] / r11 * y[i];
  if (nb == 2) {
    for (int i = 0; i < n; i++)
      r12 += U[0][i] / r11 * U[1][i];
    for (int i = 0; i < n; i++) {
      double v = U[1][i] - r12 * U[0][i] / r11;
      r22 += v * v;
    }
    r22 = sqrt(r22);
    if (!(r22 > 1e-12 * r11))
      return -1;
    for (int i = 0; i < n; i++)
      q2y += (U[1][i] - r12 * U[0][i] / r11) / r22 * y[i];
    c[1] = q2y / r22;
    c[0] = (q1y - r12 * c[1]) / r11;
  } else {
    c[0] = q1y / r11;
  }
  double se = 0;
  for (int i = 0; i < n; i++) {
    double e = y[i] - c[0] * U[0][i] - (nb == 2 ? c[1] * U[1][i] : 0);
    se += e * e;
  }
  *misfit = sqrt(se / n);
  return 0;
}

/* The matching coefficients that fit the current network best (every rank
   alike: all points, evaluated everywhere). */
static int fit_matching(pinn_model *m, int left_only)
{
  double *data = sv_params_data(m->p);
  for (int k = 0; k < m->nsing; k++) {
    struct pinn_singular *sp = &m->sing[k];
    if (!sp->C)
      continue;
    int n = sp->total, nb = sp->f.nbasis;
    if (left_only) /* the points are sorted: those up to x_s */
      for (n = 0; n < sp->total && sp->pts[n] <= sp->f.x; n++)
        ;
    if (n < 2)
      continue;
    double *y = malloc((size_t)n * sizeof *y), *U[2] = {NULL, NULL};
    for (int b = 0; b < nb; b++)
      U[b] = malloc((size_t)n * sizeof(double));
    int rc = !y || !U[0] || (nb == 2 && !U[1]) ? sv_fail("pinn: out of memory") : 0;
    if (rc == 0)
      rc = eval_nodes(m, 1, &sp->y, n, sp->pts, &y);
    for (int b = 0; b < nb && rc == 0; b++)
      for (int i = 0; i < n; i++)
        U[b][i] = pinn_frobenius_eval(&sp->f, b, sp->pts[i]);
    double c[2] = {0, 0}, misfit;
    if (rc == 0 && small_lsq(n, nb, U, y, c, &misfit) == 0) {
      char pname[160];
      snprintf(pname, sizeof pname, "%s.C", sp->name);
      int bi = sv_params_find(m->p, pname);
      if (bi < 0)
        rc = sv_fail("pinn: no parameter block %s", pname);
      else
        for (int b = 0; b < nb; b++)
          data[sv_params_block_offset(m->p, bi) + (size_t)b] = c[b];
    }
    free(y);
    free(U[0]);
    free(U[1]);
    if (rc < 0)
      return -1;
  }
  return 0;
}

/*
 * gradient.csv at the current parameters (-write_gradient): the loss
 * gradient from loss_grad, and 2 J^T r from the residuals and their
 * Jacobian (both summed over the ranks); metric initial_loss.
 */
static int write_gradient(pinn_model *m)
{
  const sv_objective *o = &m->obj;
  size_t n = o->n, rows = o->m;
  double *theta = sv_params_data(m->p);
  double *g = calloc(2 * n + 1, sizeof *g), *res = malloc((rows + 1) * sizeof *res);
  double *J = malloc((rows * n + 1) * sizeof *J);
  int rc = !g || !res || !J ? sv_fail("pinn: out of memory for gradient.csv") : 0;
  double *g2 = g + n, loss = 0;
  if (rc == 0)
    rc = o->loss_grad(o->ctx, theta, &loss, g);
  if (rc == 0)
    rc = o->residuals(o->ctx, theta, res, J);
  for (size_t i = 0; i < rows && rc == 0; i++)
    for (size_t j = 0; j < n; j++)
      g2[j] += 2 * J[i * n + j] * res[i];
  g[2 * n] = loss;
  if (rc == 0 && sv_run_size(m->r) > 1)
    rc = sv_allreduce_sum(m->r, g, 2 * n + 1);
  if (rc == 0) {
    static const char *const names[] = {"loss_gradient", "jacobian_gradient"};
    const double *cols[] = {g, g2};
    rc = sv_write_csv(m->r, "gradient.csv", 2, names, n, cols);
  }
  if (rc == 0)
    rc = sv_metric(m->r, "initial_loss", g[2 * n]);
  free(g), free(res), free(J);
  return rc;
}

static int on_step(void *ctx, int step)
{
  pinn_model *m = ctx;
  int every = m->o.resample_every;
  if (m->resampling && every > 0 && step > 0 && step % every == 0) {
    grid_random(m);
    m->resamples++;
  }
  if (m->hook && m->hook(m->hook_ctx, m, m->stage, step) < 0)
    return sv_fail_context("pinn: step hook in stage %s at step %d", m->stage, step);
  return 0;
}

/*
 * Solve up to the first interior singular point before crossing it
 * (option -left_steps): Levenberg-Marquardt on Chebyshev-Lobatto points of
 * [lo, x_s] alone (as many as the whole grid, split over the ranks alike),
 * without the matching residual; then the matching coefficients are fitted
 * to the window's left half, so that the whole-domain stage starts from
 * the determined left solution and its analytic continuation's
 * coefficients. Without it a high-degree polynomial (2F1(-6, 7; 2; x),
 * 1e3 at x = 2 and 1e-1 between its zeros on [0, 1]) left
 * Levenberg-Marquardt wandering for 1500 steps from the Adam stage's
 * point and never reaching it.
 */
static int left_stage(pinn_model *m, pinn_train_result *res, double *t0)
{
  double xs = INFINITY;
  for (int k = 0; k < m->nsing; k++)
    if (m->sing[k].f.x > m->lo && m->sing[k].f.x < m->hi)
      xs = fmin(xs, m->sing[k].f.x);
  if (!isfinite(xs))
    return 0;
  sv_run *r = m->r;
  double *left = malloc((size_t)m->total * sizeof *left);
  if (!left)
    return sv_fail("pinn: out of memory");
  lobatto(m->lo, xs, m->total, left);
  memcpy(m->pts, left + m->first, (size_t)m->count * sizeof(double));
  free(left);
  for (int k = 0; k < m->nsing; k++)
    if (m->sing[k].lsq && sv_lsq_set_weight(m->sing[k].lsq, 0, 0) < 0)
      return -1;
  sv_optim_opts so;
  sv_optim_result or;
  sv_optim_defaults(&so, SV_OPTIM_LM);
  so.stage = "lm_left";
  so.max_steps = m->o.left_steps;
  so.gtol = m->o.gtol;
  so.ftol = m->o.ftol;
  so.on_step = on_step;
  so.on_step_ctx = m;
  m->stage = so.stage;
  if (sv_minimize(r, m->p, &m->obj, &so, &or) < 0)
    return sv_fail_context("pinn: Levenberg-Marquardt on [%g, %g]", m->lo, xs);
  res->second_seconds += or.seconds;
  *t0 += or.seconds;
  res->left_steps = or.steps;
  for (int k = 0; k < m->nsing; k++)
    if (m->sing[k].lsq && sv_lsq_set_weight(m->sing[k].lsq, 0, m->o.frobenius_weight) < 0)
      return -1;
  if (fit_matching(m, 1) < 0)
    return -1;
  grid_reset(m);
  return 0;
}

int pinn_model_train(pinn_model *m, pinn_train_result *res)
{
  pinn_train_result dummy;
  if (!res)
    res = &dummy;
  memset(res, 0, sizeof *res);
  res->loss = res->adam_loss = NAN;
  if (!m)
    return sv_fail("pinn: no model");
  if (m->nres < 1)
    return sv_fail("pinn: no residual to train on (pinn_model_add_residual)");
  if (m->lsq)
    return sv_fail("pinn: the model is already trained");
  sv_run *r = m->r;
  if (sv_params_count(m->p) == 0)
    return sv_fail("pinn: the model has no parameters (no network was built)");
  if (sv_params_init_glorot(m->p, sv_run_rng(r)) < 0)
    return sv_fail_context("pinn: initialising the parameters");

  m->lsq = sv_lsq_new(m->g, m->p, m->nres, m->res, m->count, m->total);
  if (!m->lsq)
    return sv_fail_context("pinn: building the least-squares objective");
  if (sv_lsq_bind(m->lsq, m->x, m->pts) < 0 ||
      (m->o.threads > 1 && sv_lsq_set_threads(m->lsq, m->o.threads) < 0))
    return -1;
  m->obj = *sv_lsq_objective(m->lsq);
  int matching = 0;
  for (int k = 0; k < m->nsing; k++) {
    struct pinn_singular *sp = &m->sing[k];
    if (!sp->match)
      continue;
    matching++;
    if (sp->count > 0) {
      sp->lsq = sv_lsq_new(m->g, m->p, 1, &sp->match, sp->count, sp->total);
      if (!sp->lsq)
        return sv_fail_context("pinn: the matching residual at x = %g", sp->f.x);
      if (sv_lsq_bind(sp->lsq, m->x, sp->pts) < 0 || sv_lsq_bind(sp->lsq, sp->w, sp->wts) < 0 ||
          sv_lsq_set_weight(sp->lsq, 0, m->o.frobenius_weight) < 0)
        return -1;
      m->obj.m += sv_lsq_objective(sp->lsq)->m;
    }
  }
  if (matching) {
    m->gtmp = malloc(m->obj.n * sizeof *m->gtmp + 1);
    if (!m->gtmp)
      return sv_fail("pinn: out of memory");
    m->obj.loss_grad = all_loss_grad;
    m->obj.residuals = all_residuals;
    m->obj.ctx = m;
    if (fit_matching(m, 0) < 0)
      return sv_fail_context("pinn: first matching coefficients");
    sv_metric(r, "matching_points", matching * m->o.frobenius_points);
  }
  const sv_objective *obj = &m->obj;
  {
    static const char *const cn[] = {"x"};
    const double *cc[] = {m->grid};
    if (sv_write_csv(r, "collocation.csv", 1, cn, (size_t)m->total, cc) < 0)
      return sv_fail_context("pinn");
  }
  sv_metric(r, "parameters", (double)sv_params_count(m->p));
  sv_metric(r, "points", m->total);
  if (m->o.write_gradient && write_gradient(m) < 0)
    return sv_fail_context("pinn: gradient.csv");

  double t0 = 0;
  sv_optim_result or;
  if (m->o.adam_steps > 0) {
    sv_optim_opts ao;
    sv_optim_defaults(&ao, SV_OPTIM_ADAM);
    ao.stage = "adam";
    ao.max_steps = m->o.adam_steps;
    ao.lr = m->o.adam_lr;
    ao.beta1 = m->o.adam_beta1;
    ao.beta2 = m->o.adam_beta2;
    ao.restart_period = m->o.adam_restart;
    ao.restart_mult = m->o.adam_restart_mult;
    ao.lr_min = m->o.adam_lr_min;
    ao.ftol = m->o.ftol;
    ao.on_step = on_step;
    ao.on_step_ctx = m;
    m->stage = "adam";
    m->resampling = 1;
    if (sv_minimize(r, m->p, obj, &ao, &or) < 0)
      return sv_fail_context("pinn: Adam stage");
    res->adam_seconds = or.seconds;
    res->adam_steps = or.steps;
    res->adam_loss = res->loss = or.loss;
    t0 += or.seconds;
    if (m->resamples > 0)
      sv_metric(r, "resamples", m->resamples);
  }

  /* LM and L-BFGS need one fixed objective: back to the even grid */
  m->resampling = 0;
  grid_reset(m);
  if (m->o.left_steps > 0 && m->o.second == PINN_SECOND_LM && m->o.lm_steps > 0 &&
      left_stage(m, res, &t0) < 0)
    return -1;
  if (m->o.second != PINN_SECOND_NONE) {
    int lm = m->o.second == PINN_SECOND_LM;
    int steps = lm ? m->o.lm_steps : m->o.lbfgs_steps;
    if (steps > 0) {
      sv_optim_opts so;
      sv_optim_defaults(&so, lm ? SV_OPTIM_LM : SV_OPTIM_LBFGS);
      so.stage = lm ? "lm" : "lbfgs";
      so.max_steps = steps;
      so.gtol = m->o.gtol;
      so.ftol = m->o.ftol;
      if (lm) {
        so.stall_window = m->o.lm_stall_window;
        so.stall_rtol = m->o.lm_stall_rtol;
      }
      so.on_step = on_step;
      so.on_step_ctx = m;
      m->stage = so.stage;
      if (sv_minimize(r, m->p, obj, &so, &or) < 0)
        return sv_fail_context("pinn: %s stage", lm ? "Levenberg-Marquardt" : "L-BFGS");
      res->second_seconds += or.seconds;
      res->second_steps = or.steps;
      res->loss = or.loss;
      t0 += or.seconds;
    }
  }
  m->untrained = res->adam_steps + res->left_steps + res->second_steps == 0;
  if (isnan(res->loss)) {
    /* no stage ran: the loss of the initial network */
    double loss;
    if (obj->loss_grad(obj->ctx, sv_params_data(m->p), &loss, NULL) < 0)
      return -1;
    if (sv_run_size(r) > 1 && sv_allreduce_sum(r, &loss, 1) < 0)
      return -1;
    res->loss = loss;
  }
  res->total_seconds = t0;
  /* steps taken (a stage may stop before its budget: ftol, gtol, the LM stall) */
  sv_metric(r, "adam_steps_taken", res->adam_steps);
  sv_metric(r, "second_steps_taken", res->second_steps);
  sv_metric(r, "final_loss", res->loss);
  sv_metric(r, "train_seconds", t0);
  return 0;
}

const char *pinn_describe_training(const pinn_opts *o, const pinn_train_result *t, char *buf,
                                   size_t n)
{
  if (!buf || n == 0)
    return "";
  buf[0] = 0;
  int w = 0;
  if (t->adam_steps > 0)
    w = snprintf(buf, n, "Adam %d steps (%.2f s)", t->adam_steps, t->adam_seconds);
  if (w < 0 || (size_t)w >= n)
    return buf;
  if (o->second != PINN_SECOND_NONE && t->second_steps > 0) {
    char left[64] = "";
    if (t->left_steps > 0)
      snprintf(left, sizeof left, " after %d up to the singular point", t->left_steps);
    snprintf(buf + w, n - (size_t)w, "%s%s %d steps%s (%.2f s)", w ? " + " : "",
             o->second == PINN_SECOND_LM ? "Levenberg-Marquardt" : "L-BFGS", t->second_steps,
             left, t->second_seconds);
  }
  if (!buf[0])
    snprintf(buf, n, "no training steps");
  return buf;
}

int pinn_headline_training(sv_run *r, const pinn_opts *o, const pinn_train_result *t)
{
  char how[160];
  return sv_headline(r, "  PINN %dx%d %s, %d %s points: %s, final loss %.2e", o->depth, o->width,
                     sv_activation_name(o->act), o->points, pinn_grid_name(o->grid),
                     pinn_describe_training(o, t, how, sizeof how), t->loss);
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                          */
/* ------------------------------------------------------------------ */

double *pinn_linspace(double lo, double hi, int n)
{
  if (n < 2)
    return sv_fail("pinn_linspace: %d points (need at least 2)", n), NULL;
  double *x = malloc((size_t)n * sizeof *x);
  if (!x)
    return sv_fail("pinn_linspace: out of memory for %d points", n), NULL;
  double h = (hi - lo) / (n - 1);
  for (int i = 0; i < n; i++)
    x[i] = lo + i * h;
  x[n - 1] = hi;
  return x;
}

int pinn_model_eval(pinn_model *m, int n, const double *x, double *const *vals,
                    double *const *res)
{
  if (!m || !x || n < 1)
    return sv_fail("pinn_model_eval: needs a model and at least one point");
  sv_node *outs[PINN_MAX_OUTPUTS + PINN_MAX_RESIDUALS];
  double *dst[PINN_MAX_OUTPUTS + PINN_MAX_RESIDUALS];
  int k = 0;
  for (int i = 0; i < m->nout; i++)
    if (vals && vals[i]) {
      outs[k] = m->out[i];
      dst[k++] = vals[i];
    }
  for (int i = 0; i < m->nres; i++)
    if (res && res[i]) {
      outs[k] = m->res[i];
      dst[k++] = res[i];
    }
  if (k == 0)
    return 0;
  return eval_nodes(m, k, outs, n, x, dst);
}

pinn_error pinn_error_of(int n, const double *y, const double *ref)
{
  double se = 0, sr = 0, mx = 0;
  for (int i = 0; i < n; i++) {
    double e = y[i] - ref[i];
    se += e * e;
    sr += ref[i] * ref[i];
    if (!(fabs(e) <= mx))   /* also lets a NaN through to the result */
      mx = fabs(e);
  }
  pinn_error out;
  out.rel_l2 = sr > 0 ? sqrt(se / sr) : sqrt(se);
  out.max_abs = mx;
  return out;
}

int pinn_error_metrics(sv_run *r, const char *suffix, int n, const double *y,
                       const double *ref, pinn_error *out)
{
  pinn_error e = pinn_error_of(n, y, ref);
  if (out)
    *out = e;
  char key[128];
  snprintf(key, sizeof key, "rel_l2%s", suffix ? suffix : "");
  if (sv_metric(r, key, e.rel_l2) < 0)
    return -1;
  snprintf(key, sizeof key, "max_abs_err%s", suffix ? suffix : "");
  return sv_metric(r, key, e.max_abs);
}

double pinn_max_abs(int n, const double *v)
{
  double mx = 0;
  for (int i = 0; i < n; i++)
    if (!(fabs(v[i]) <= mx))
      mx = fabs(v[i]);
  return mx;
}

/* ------------------------------------------------------------------ */
/* Trust                                                               */
/* ------------------------------------------------------------------ */

/* Thresholds of the continuation check, relative to max |y| on the window:
   a healthy run is at the level of its own error there (1e-8 .. 1e-7,
   measured); two glued solutions are at the level of the wrong coefficient
   (1e-3 .. 1). */
#define TRUST_MISMATCH 1e-5
#define TRUST_MISFIT 1e-5

/* rms over n points of sqrt(sum_k res_k^2) for every residual of m; the
   values (n per residual) into buf. */
static int residual_rms(pinn_model *m, int n, const double *x, double *buf, double *rms)
{
  double *dst[PINN_MAX_RESIDUALS];
  for (int k = 0; k < m->nres; k++)
    dst[k] = buf + (size_t)k * n;
  int rc = eval_nodes(m, m->nres, m->res, n, x, dst);
  double s = 0;
  for (int k = 0; k < m->nres && rc == 0; k++)
    for (int i = 0; i < n; i++)
      s += dst[k][i] * dst[k][i];
  *rms = sqrt(s / n);
  return rc;
}

/* residual.csv: x, at_point (1 at a collocation point, 0 at a midpoint)
   and every residual, sorted by x. */
static int write_residuals(pinn_model *m, int N, const double *g, const double *rg, int nm,
                           const double *mid, const double *rm)
{
  int n = N + nm, nc = 2 + m->nres;
  double *cols = malloc((size_t)n * (size_t)nc * sizeof *cols);
  if (!cols)
    return sv_fail("pinn: out of memory for residual.csv");
  const char *names[2 + PINN_MAX_RESIDUALS];
  const double *cp[2 + PINN_MAX_RESIDUALS];
  names[0] = "x";
  names[1] = "at_point";
  for (int k = 0; k < m->nres; k++)
    names[2 + k] = m->res_name[k];
  for (int c = 0; c < nc; c++)
    cp[c] = cols + (size_t)c * n;
  /* merge: g and mid are sorted and interleave */
  int i = 0, j = 0;
  for (int w = 0; w < n; w++) {
    int take_g = j >= nm || (i < N && g[i] <= mid[j]);
    cols[w] = take_g ? g[i] : mid[j];
    cols[(size_t)n + w] = take_g;
    for (int k = 0; k < m->nres; k++)
      cols[(size_t)(2 + k) * n + w] = take_g ? rg[(size_t)k * N + i] : rm[(size_t)k * nm + j];
    if (take_g)
      i++;
    else
      j++;
  }
  int rc = sv_write_csv(m->r, "residual.csv", nc, names, (size_t)n, cp);
  free(cols);
  return rc;
}

/* The two halves of the window of one singular point: fit, compare. */
static int check_continuation(pinn_model *m, const struct pinn_singular *sp, double *mismatch,
                              double *misfit, double *extrapolated)
{
  enum { NS = 200 };
  const pinn_frobenius *f = &sp->f;
  int nb = f->nbasis, rc = 0;
  double xs[2][NS], ys[2][NS], ub[2][2][NS], c[2][2] = {{0, 0}, {0, 0}}, ymax = 0;
  int have[2] = {f->x > f->lo, f->hi > f->x};
  *mismatch = 0;
  *misfit = 0;
  for (int side = 0; side < 2 && rc == 0; side++) {
    if (!have[side])
      continue;
    /* the half-window without x_s itself */
    for (int i = 0; i < NS; i++) {
      double u = (i + 1.0) / NS;
      xs[side][i] = side ? f->x + u * (f->hi - f->x) : f->x - u * (f->x - f->lo);
    }
    double *dst[1] = {ys[side]};
    rc = eval_nodes(m, 1, (sv_node *const *)&sp->y, NS, xs[side], dst);
    for (int i = 0; i < NS && rc == 0; i++) {
      ymax = fmax(ymax, fabs(ys[side][i]));
      for (int b = 0; b < nb; b++)
        ub[side][b][i] = pinn_frobenius_eval(f, b, xs[side][i]);
    }
  }
  if (rc < 0)
    return -1;
  if (!(ymax > 0))
    ymax = 1;
  for (int side = 0; side < 2; side++) {
    if (!have[side])
      continue;
    double *U[2] = {ub[side][0], ub[side][1]}, mf;
    if (small_lsq(NS, nb, U, ys[side], c[side], &mf) < 0) {
      *misfit = INFINITY;
      continue;
    }
    *misfit = fmax(*misfit, mf / ymax);
  }
  if (have[0] && have[1])
    for (int side = 0; side < 2; side++)
      for (int i = 0; i < NS; i++) {
        double d = 0;
        for (int b = 0; b < nb; b++)
          d += (c[0][b] - c[1][b]) * ub[side][b][i];
        *mismatch = fmax(*mismatch, fabs(d) / ymax);
      }

  /* Beyond the window. What the window cannot pin down (the mismatch, and
     the misfit: the part of y that is no analytic local solution, at worst
     the exponent-rho solution |t|^rho (...)) is a homogeneous solution,
     invisible to the residual, which grows like |t|^rho away from x_s: out
     to the end of the domain at distance d > h it is (d/h)^rho times larger,
     relative to max |y| out there rather than in the window. Measured on
     (-6, 1, 3.7) (rho = 8.7): a misfit of 4.1e-7 in the window became
     1.9e-4 at x = 2, (1/0.5)^8.7 = 416 times more. */
  *extrapolated = fmax(*mismatch, *misfit);
  double ends[2] = {m->lo, m->hi}, edges[2] = {f->lo, f->hi};
  for (int side = 0; side < 2 && f->rho > 0; side++) {
    double d = fabs(ends[side] - f->x), h = fabs(edges[side] - f->x);
    if (!have[side] || !(d > h * (1 + 1e-12)))
      continue;
    double xo[NS], yo[NS], *dst[1] = {yo}, yout = 0;
    for (int i = 0; i < NS; i++)
      xo[i] = edges[side] + (ends[side] - edges[side]) * (i + 1.0) / NS;
    if (eval_nodes(m, 1, (sv_node *const *)&sp->y, NS, xo, dst) < 0)
      return -1;
    for (int i = 0; i < NS; i++)
      yout = fmax(yout, fabs(yo[i]));
    double grow = pow(d / h, f->rho) * (yout > 0 ? ymax / yout : 1);
    *extrapolated = fmax(*extrapolated, fmax(*mismatch, *misfit) * grow);
  }
  return 0;
}

void pinn_model_distrust(pinn_model *m)
{
  if (m)
    m->distrusted = 1;
}

int pinn_model_trust(pinn_model *m, pinn_trust *out)
{
  pinn_trust t;
  memset(&t, 0, sizeof t);
  if (!m || !m->lsq)
    return sv_fail("pinn_model_trust: the model is not trained");
  sv_run *r = m->r;

  /* 1. residual at the start grid's points and at its midpoints */
  int N = m->total, nm = 0;
  double *g = malloc((size_t)N * sizeof *g), *mid = malloc((size_t)N * sizeof *mid);
  double *rg = malloc((size_t)N * (size_t)m->nres * sizeof *rg);
  double *rm = malloc((size_t)N * (size_t)m->nres * sizeof *rm);
  int rc = 0;
  if (!g || !mid || !rg || !rm)
    rc = sv_fail("pinn: out of memory for the trust check");
  if (rc == 0) {
    memcpy(g, m->grid, (size_t)N * sizeof *g);
    qsort(g, (size_t)N, sizeof *g, cmp_double);
    for (int i = 0; i + 1 < N; i++)
      if (g[i + 1] > g[i])
        mid[nm++] = 0.5 * (g[i] + g[i + 1]);
    rc = residual_rms(m, N, g, rg, &t.rms_at);
  }
  if (rc == 0 && nm > 0)
    rc = residual_rms(m, nm, mid, rm, &t.rms_between);
  if (rc == 0)
    rc = write_residuals(m, N, g, rg, nm, mid, rm);
  free(g), free(mid), free(rg), free(rm);
  if (rc < 0)
    return -1;
  t.between_ratio = t.rms_at > 0 ? t.rms_between / t.rms_at : (t.rms_between > 0 ? INFINITY : 1);
  sv_metric(r, "residual_rms_at_points", t.rms_at);
  sv_metric(r, "residual_rms_between_points", t.rms_between);
  sv_metric(r, "residual_between_ratio", t.between_ratio);

  /* 2. the continuation at each declared singular point */
  double worst_x = NAN;
  for (int k = 0; k < m->nsing; k++) {
    const struct pinn_singular *sp = &m->sing[k];
    double mm, mf, ex;
    if (check_continuation(m, sp, &mm, &mf, &ex) < 0)
      return -1;
    t.continuation_extrapolated = fmax(t.continuation_extrapolated, ex);
    if (mm > t.continuation_mismatch)
      worst_x = sp->f.x;
    t.continuation_mismatch = fmax(t.continuation_mismatch, mm);
    t.frobenius_misfit = fmax(t.frobenius_misfit, mf);
    int interior = sp->f.x > m->lo && sp->f.x < m->hi;
    if (!sp->match && !sp->f.residual_decides && (interior || !sp->f.integer_rho))
      t.undetermined = 1;
  }
  if (m->nsing > 0) {
    sv_metric(r, "continuation_mismatch", t.continuation_mismatch);
    sv_metric(r, "frobenius_misfit", t.frobenius_misfit);
    sv_metric(r, "continuation_extrapolated", t.continuation_extrapolated);
    sv_metric(r, "continuation_undetermined", t.undetermined);
  }

  t.trusted = 1;
  if (!(t.between_ratio <= m->o.trust_between)) {
    t.trusted = 0;
    sv_warn(r, "the rms residual between the collocation points (%.2e) is %.3g times the rms "
            "residual at them (%.2e): the network fits the points, not the equation "
            "(more -points, or -trust_between to move the threshold of %g)",
            t.rms_between, t.between_ratio, t.rms_at, m->o.trust_between);
    sv_headline(r, "  NOT TRUSTED: residual between the collocation points %.2e = %.3g x the "
                "residual at them", t.rms_between, t.between_ratio);
  }
  if (t.undetermined) {
    t.trusted = 0;
    sv_warn(r, "-continuation none at a regular singular point whose second exponent is >= 1: "
            "the residual cannot tell the solutions on its two sides apart, so the answer past "
            "it is not determined (use -continuation frobenius)");
    sv_headline(r, "  NOT TRUSTED: the residual cannot distinguish the continuations across "
                "the singular point (-continuation none)");
  }
  if (t.continuation_mismatch > TRUST_MISMATCH) {
    t.trusted = 0;
    sv_warn(r, "the trained solution is two different solutions of the equation glued at the "
            "singular point x = %g: fitted with the local Frobenius solutions on each side, "
            "the two sides differ by %.2e of max |y| (threshold %g), which the residual "
            "cannot see", worst_x, t.continuation_mismatch, TRUST_MISMATCH);
    sv_headline(r, "  NOT TRUSTED: two different solutions on the two sides of x = %g "
                "(continuation mismatch %.2e)", worst_x, t.continuation_mismatch);
  }
  if (t.frobenius_misfit > TRUST_MISFIT) {
    t.trusted = 0;
    sv_warn(r, "near a singular point the trained solution is no combination of the analytic "
            "local solutions (misfit %.2e of max |y|, threshold %g): it is not analytic "
            "there, or not a solution", t.frobenius_misfit, TRUST_MISFIT);
    sv_headline(r, "  NOT TRUSTED: not analytic at a singular point (Frobenius misfit %.2e)",
                t.frobenius_misfit);
  }
  if (t.continuation_mismatch <= TRUST_MISMATCH && t.frobenius_misfit <= TRUST_MISFIT &&
      t.continuation_extrapolated > TRUST_MISMATCH) {
    t.trusted = 0;
    sv_warn(r, "the continuation is pinned down near the singular points (mismatch %.2e, misfit "
            "%.2e of max |y|) but not well enough for the far end of the domain: what is left "
            "is a solution of the equation that grows like |x - x_s|^rho there, to %.2e of "
            "max |y| out there (threshold %g)", t.continuation_mismatch, t.frobenius_misfit,
            t.continuation_extrapolated, TRUST_MISMATCH);
    sv_headline(r, "  NOT TRUSTED: the continuation's error grown to the end of the domain "
                "%.2e (|x - x_s|^rho beyond the matching window)", t.continuation_extrapolated);
  }
  if (m->untrained) {
    /* a random network's residual can be uniform (ratio ~1) and its
       continuation consistent: the checks above judge a trained answer */
    t.trusted = 0;
    sv_warn(r, "no optimizer step ran (-adam_steps 0 and no second stage): the answer is the "
            "initial network's");
    sv_headline(r, "  NOT TRUSTED: the network was not trained");
  }
  if (m->distrusted)
    t.trusted = 0; /* the plugin said why */
  sv_metric(r, "trusted", t.trusted);
  if (t.trusted)
    sv_headline(r, "  trust checks passed: residual between/at collocation points %.3g%s",
                t.between_ratio, m->nsing ? ", the same analytic solution on both sides of "
                                            "each singular point" : "");
  if (out)
    *out = t;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Files and plots                                                     */
/* ------------------------------------------------------------------ */

/* Copy s into a gnuplot single-quoted string (quotes doubled). */
static void gp_quote(char *dst, size_t n, const char *s)
{
  size_t k = 0;
  for (; s && *s && k + 3 < n; s++) {
    if (*s == '\n' || *s == '\r')
      continue;
    if (*s == '\'')
      dst[k++] = '\'';
    dst[k++] = *s;
  }
  dst[k] = 0;
}

int pinn_write_solution(sv_run *r, const char *title, const char *xname, int n,
                        const double *x, int ncurves, const pinn_curve *c)
{
  if (!r || !x || !c || n < 1 || ncurves < 1 || ncurves > PINN_MAX_OUTPUTS)
    return sv_fail("pinn_write_solution: bad arguments");
  int ncols = 1 + 3 * ncurves;
  const char *names[1 + 3 * PINN_MAX_OUTPUTS];
  const double *cols[1 + 3 * PINN_MAX_OUTPUTS];
  char namebuf[PINN_MAX_OUTPUTS][3][64];
  double *err[PINN_MAX_OUTPUTS] = {0};
  int rc = 0;
  names[0] = xname ? xname : "x";
  cols[0] = x;
  for (int k = 0; k < ncurves && rc == 0; k++) {
    err[k] = malloc((size_t)n * sizeof(double));
    if (!err[k]) {
      rc = sv_fail("pinn_write_solution: out of memory");
      break;
    }
    for (int i = 0; i < n; i++)
      err[k][i] = c[k].y[i] - c[k].ref[i];
    if (ncurves == 1) {
      snprintf(namebuf[k][0], 64, "%s", c[k].name ? c[k].name : "y");
      snprintf(namebuf[k][1], 64, "reference");
      snprintf(namebuf[k][2], 64, "error");
    } else {
      snprintf(namebuf[k][0], 64, "%s", c[k].name);
      snprintf(namebuf[k][1], 64, "%s_reference", c[k].name);
      snprintf(namebuf[k][2], 64, "%s_error", c[k].name);
    }
    for (int j = 0; j < 3; j++)
      names[1 + 3 * k + j] = namebuf[k][j];
    cols[1 + 3 * k] = c[k].y;
    cols[2 + 3 * k] = c[k].ref;
    cols[3 + 3 * k] = err[k];
  }
  if (rc == 0)
    rc = sv_write_csv(r, "solution.csv", ncols, names, (size_t)n, cols);
  for (int k = 0; k < ncurves; k++)
    free(err[k]);
  if (rc < 0)
    return -1;

  /* the plots */
  char t[256], xl[64], script[4096];
  gp_quote(t, sizeof t, title ? title : "");
  gp_quote(xl, sizeof xl, names[0]);
  size_t w = 0;
#define ADD(...) do { int k_ = snprintf(script + w, sizeof script - w, __VA_ARGS__); \
                      if (k_ > 0 && (size_t)k_ < sizeof script - w) w += (size_t)k_; } while (0)
  ADD("set datafile separator ','\nset key autotitle columnhead\nset grid\n"
      "set xlabel '%s'\n", xl);
  if (ncurves > 1)
    ADD("set multiplot layout %d,1 title '%s'\n", ncurves, t);
  else
    ADD("set title '%s'\n", t);
  for (int k = 0; k < ncurves; k++) {
    char nm[64];
    gp_quote(nm, sizeof nm, c[k].name ? c[k].name : "y");
    ADD("set ylabel '%s'\n", nm);
    ADD("plot 'solution.csv' using 1:%d with points pt 7 ps 0.4 lc rgb '#999999' "
        "title 'reference', '' using 1:%d with lines lw 2 lc rgb '#1f77b4' title 'PINN'\n",
        3 + 3 * k, 2 + 3 * k);
  }
  if (ncurves > 1)
    ADD("unset multiplot\n");
  if (sv_plot(r, "solution.png", script) < 0)
    return -1;

  w = 0;
  ADD("set datafile separator ','\nset key autotitle columnhead\nset grid\n"
      "set logscale y\nset format y '%%.0e'\nset xlabel '%s'\nset ylabel '|error|'\n"
      "set title '%s: |PINN - reference|'\n", xl, t);
  ADD("plot ");
  for (int k = 0; k < ncurves; k++) {
    char nm[64];
    gp_quote(nm, sizeof nm, c[k].name ? c[k].name : "y");
    /* an exact zero (a hard-constrained end) has no logarithm: skip it */
    ADD("%s'solution.csv' using 1:(abs($%d) > 0 ? abs($%d) : 1/0) with lines lw 2 title '%s'",
        k ? ", " : "", 4 + 3 * k, 4 + 3 * k, nm);
  }
  ADD("\n");
#undef ADD
  return sv_plot(r, "error.png", script);
}

int pinn_plot_loss(sv_run *r, const char *title)
{
  char t[256], script[1024];
  /* no optimizer step ran (-adam_steps 0 -second_stage none): there is no
     loss history to plot, and gnuplot would fail on the missing file */
  const char *dir = sv_run_outdir(r);
  if (dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/loss_history.csv", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
      sv_log(r, "no training step ran: no loss history, no loss.png");
      return 0;
    }
    fclose(f);
  }
  gp_quote(t, sizeof t, title ? title : "");
  /* column 0 is gnuplot's record counter: the running step over stages;
     the stage number (column 1) colours the curve */
  snprintf(script, sizeof script,
           "set datafile separator ','\nset key autotitle columnhead\nset grid\n"
           "set logscale y\nset format y '%%.0e'\nset xlabel 'step (all stages)'\n"
           "set ylabel 'loss'\nset title '%s: training loss (colour: optimizer stage)'\n"
           "plot 'loss_history.csv' using 0:3:1 with lines lw 2 lc variable notitle\n",
           t);
  return sv_plot(r, "loss.png", script);
}
