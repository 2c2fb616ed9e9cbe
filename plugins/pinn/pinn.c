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
  o->eval_points = 1001;
  o->grid = PINN_GRID_EVEN;
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

int pinn_opts_declare(sv_run *r, pinn_opts *o)
{
  char act[32], second[32], grid[32];
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
      sv_opt_int(r, "-eval_points", o->eval_points, "points of the evaluation grid",
                 &o->eval_points) < 0)
    return -1;

  if (sv_activation_parse(act, &o->act) < 0)
    return sv_fail_context("option -activation");
  if (o->act == SV_ACT_NONE)
    return sv_fail("option -activation none: a linear network cannot have the curvature "
                   "the equations need (its second derivative is zero)");
  int found = 0;
  for (int i = 0; i < 3; i++)
    if (strcasecmp(second, second_names[i]) == 0) {
      o->second = (pinn_second)i;
      found = 1;
    }
  if (!found)
    return sv_fail("option -second_stage '%s': expected lm, lbfgs or none", second);
  found = 0;
  for (int i = 0; i < 2; i++)
    if (strcasecmp(grid, grid_names[i]) == 0) {
      o->grid = (pinn_grid)i;
      found = 1;
    }
  if (!found)
    return sv_fail("option -grid '%s': expected even or chebyshev", grid);

  if (check_range_int("-width", o->width, 1, MAX_WIDTH, NULL) < 0 ||
      check_range_int("-depth", o->depth, 1, MAX_DEPTH, NULL) < 0 ||
      check_range_int("-points", o->points, 3, MAX_POINTS,
                      "at least both ends and one interior point") < 0 ||
      check_range_int("-resample_every", o->resample_every, 0, MAX_STEPS, NULL) < 0 ||
      check_range_int("-adam_steps", o->adam_steps, 0, MAX_STEPS, NULL) < 0 ||
      check_range_int("-adam_restart", o->adam_restart, 0, MAX_STEPS, NULL) < 0 ||
      check_range_int("-lm_steps", o->lm_steps, 0, MAX_STEPS, NULL) < 0 ||
      check_range_int("-lbfgs_steps", o->lbfgs_steps, 0, MAX_STEPS, NULL) < 0 ||
      check_range_int("-eval_points", o->eval_points, 2, MAX_EVAL, NULL) < 0)
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
 * points are shared out in proportion to the segments' lengths.
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
  for (int s = 0; s + 1 < nb; s++) {
    /* this segment's share, rounded so that the shares add up */
    double frac = (b[s + 1] - m->lo) / (m->hi - m->lo);
    int upto = s + 2 == nb ? interior : (int)lround(frac * interior);
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

int pinn_derivs(pinn_model *m, sv_node *y, sv_node **d1, sv_node **d2)
{
  if (!m || !y || !d1)
    return sv_fail("pinn_derivs: missing argument");
  *d1 = sv_grad(y, m->x);
  if (d2)
    *d2 = sv_grad(*d1, m->x);
  const char *e = sv_graph_error(m->g);
  if (e)
    return sv_fail("pinn: building derivatives: %s", e);
  if (!*d1 || (d2 && !*d2))
    return sv_fail("pinn: building derivatives failed");
  return 0;
}

static int add_node(pinn_model *m, const char *what, int max, int *n, sv_node **nodes,
                    char **names, const char *name, sv_node *v)
{
  if (!m)
    return sv_fail("pinn: no model");
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
/* Training                                                            */
/* ------------------------------------------------------------------ */

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
  if (sv_lsq_bind(m->lsq, m->x, m->pts) < 0)
    return -1;
  const sv_objective *obj = sv_lsq_objective(m->lsq);
  {
    static const char *const cn[] = {"x"};
    const double *cc[] = {m->grid};
    if (sv_write_csv(r, "collocation.csv", 1, cn, (size_t)m->total, cc) < 0)
      return sv_fail_context("pinn");
  }
  sv_metric(r, "parameters", (double)sv_params_count(m->p));
  sv_metric(r, "points", m->total);

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
      so.on_step = on_step;
      so.on_step_ctx = m;
      m->stage = so.stage;
      if (sv_minimize(r, m->p, obj, &so, &or) < 0)
        return sv_fail_context("pinn: %s stage", lm ? "Levenberg-Marquardt" : "L-BFGS");
      res->second_seconds = or.seconds;
      res->second_steps = or.steps;
      res->loss = or.loss;
      t0 += or.seconds;
    }
  }
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
  if (o->second != PINN_SECOND_NONE && t->second_steps > 0)
    snprintf(buf + w, n - (size_t)w, "%s%s %d steps (%.2f s)", w ? " + " : "",
             o->second == PINN_SECOND_LM ? "Levenberg-Marquardt" : "L-BFGS", t->second_steps,
             t->second_seconds);
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
  sv_plan *plan = sv_compile(m->g, k, outs, n);
  if (!plan)
    return sv_fail_context("pinn: compiling the evaluation plan");
  int rc = sv_plan_bind(plan, m->x, x);
  if (rc == 0)
    rc = sv_plan_run(plan);
  for (int i = 0; i < k && rc == 0; i++) {
    const double *v = sv_plan_value(plan, outs[i]);
    if (!v)
      rc = sv_fail("pinn: no value for an evaluated node");
    else
      memcpy(dst[i], v, (size_t)n * sizeof(double));
  }
  sv_plan_free(plan);
  return rc;
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
