/*
 * optim.c -- one interface to the optimizers: sv_minimize checks the
 * options and hands the parameters to a driver. SGD and Adam live here;
 * L-BFGS (PETSc TAO) in optim_lbfgs.c; Levenberg-Marquardt in optim_lm.c.
 * What every driver shares -- the evaluation with its MPI reduction, NaN
 * checks, history, progress and checkpoints -- is the step loop of
 * optim_stage.c, which this file and the drivers call and which calls
 * none of them.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const kind_names[] = {"sgd", "adam", "lbfgs", "lm"};
#define NKINDS ((int)(sizeof kind_names / sizeof *kind_names))

int sv_optim_parse(const char *s, sv_optim_kind *out)
{
  for (int i = 0; i < NKINDS; i++)
    if (s && strcasecmp(s, kind_names[i]) == 0) {
      *out = (sv_optim_kind)i;
      return 0;
    }
  return sv_fail("unknown optimizer '%s' (expected sgd, adam, lbfgs or lm)", s ? s : "");
}

const char *sv_optim_name(sv_optim_kind k)
{
  return (unsigned)k < (unsigned)NKINDS ? kind_names[k] : "?";
}

void sv_optim_defaults(sv_optim_opts *o, sv_optim_kind kind)
{
  if (!o)
    return;
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->stage = sv_optim_name(kind);
  o->restart_mult = 1.0;
  switch (kind) {
  case SV_OPTIM_SGD:
    o->max_steps = 1000;
    o->lr = 1e-2;
    break;
  case SV_OPTIM_ADAM:
    o->max_steps = 1000;
    o->lr = 1e-3;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    break;
  case SV_OPTIM_LBFGS:
    o->max_steps = 1000;
    o->gtol = 1e-10;
    break;
  case SV_OPTIM_LM:
    o->max_steps = 200;
    o->gtol = 1e-14;
    o->lm_lambda = 1e-3;
    break;
  }
}

/* ------------------------------------------------------------------ */
/* SGD and Adam                                                        */
/* ------------------------------------------------------------------ */

/* Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter):
   lr_min + (lr - lr_min) (1 + cos(pi t / T)) / 2, where t counts the steps
   since the last restart and T grows by restart_mult after each one. */
typedef struct {
  double t, period;
} schedule;

static double schedule_next(schedule *sc, const sv_optim_opts *o)
{
  if (o->restart_period <= 0)
    return o->lr;
  const double pi = 3.14159265358979323846;
  double lr = o->lr_min + 0.5 * (o->lr - o->lr_min) * (1 + cos(pi * sc->t / sc->period));
  if (++sc->t >= sc->period) {
    sc->t = 0;
    sc->period *= o->restart_mult;
  }
  return lr;
}

static double norm2(const double *v, size_t n)
{
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += v[i] * v[i];
  return sqrt(s);
}

/* Both update x = p->data in place. Step k evaluates the k-th iterate;
   there are max_steps updates and max_steps + 1 evaluations, so the final
   loss is the loss of the returned parameters. */
static int minimize_first_order(sv__stage *s, sv_optim_result *res)
{
  const sv_optim_opts *o = s->o;
  size_t n = s->n;
  double *x = s->p->data;
  int adam = o->kind == SV_OPTIM_ADAM;
  double *g = malloc(n * sizeof *g);
  double *m = calloc(n, sizeof *m); /* SGD: the velocity */
  double *v = adam ? calloc(n, sizeof *v) : NULL;
  if (!g || !m || (adam && !v)) {
    free(g), free(m), free(v);
    return sv_fail("stage %s: out of memory for %zu parameters", s->name, n);
  }
  schedule sc = {0, o->restart_period};
  double b1t = 1, b2t = 1, loss = NAN;
  int step, rc = 0;
  res->converged = 0;
  for (step = 0;; step++) {
    if (sv__stage_eval(s, step, x, &loss, g) < 0) {
      rc = -1;
      break;
    }
    int last = step == o->max_steps;
    if ((o->ftol > 0 && loss < o->ftol) || (o->gtol > 0 && norm2(g, n) < o->gtol)) {
      res->converged = 1;
      last = 1;
    }
    double lr = last ? 0 : schedule_next(&sc, o);
    if (sv__stage_record(s, step, x, loss, lr) < 0) {
      rc = -1;
      break;
    }
    if (last)
      break;
    if (adam) {
      b1t *= o->beta1;
      b2t *= o->beta2;
      double c1 = 1 / (1 - b1t), c2 = 1 / (1 - b2t);
      for (size_t i = 0; i < n; i++) {
        m[i] = o->beta1 * m[i] + (1 - o->beta1) * g[i];
        v[i] = o->beta2 * v[i] + (1 - o->beta2) * g[i] * g[i];
        x[i] -= lr * (m[i] * c1) / (sqrt(v[i] * c2) + o->eps);
      }
    } else {
      for (size_t i = 0; i < n; i++) {
        m[i] = o->momentum * m[i] + g[i];
        x[i] -= lr * m[i];
      }
    }
  }
  res->steps = step;
  res->loss = loss;
  free(g), free(m), free(v);
  return rc;
}

/* ------------------------------------------------------------------ */
/* sv_minimize                                                         */
/* ------------------------------------------------------------------ */

static int check_opts(const char *st, const sv_optim_opts *o, const sv_objective *obj, size_t n)
{
  if ((unsigned)o->kind >= (unsigned)NKINDS)
    return sv_fail("stage %s: unknown optimizer kind %d", st, (int)o->kind);
  if (!obj)
    return sv_fail("stage %s: no objective", st);
  if (n == 0)
    return sv_fail("stage %s: the params vector is empty", st);
  if (obj->n != n)
    return sv_fail("stage %s: the objective has %zu parameters but the params vector has %zu", st,
                   obj->n, n);
  if (o->kind == SV_OPTIM_LM ? !obj->residuals : !obj->loss_grad)
    return sv_fail("stage %s: optimizer %s needs an objective with %s", st, sv_optim_name(o->kind),
                   o->kind == SV_OPTIM_LM ? "residuals (a least-squares problem)" : "loss_grad");
  if (o->max_steps < 0)
    return sv_fail("stage %s: max_steps must be >= 0 (got %d)", st, o->max_steps);
  if (!(o->gtol >= 0) || !(o->ftol >= 0))
    return sv_fail("stage %s: gtol and ftol must be >= 0 (got %g, %g)", st, o->gtol, o->ftol);
  if (o->checkpoint_every < 0)
    return sv_fail("stage %s: checkpoint_every must be >= 0 (got %d)", st, o->checkpoint_every);
  if (o->kind == SV_OPTIM_SGD || o->kind == SV_OPTIM_ADAM) {
    if (!(o->lr > 0) || !isfinite(o->lr))
      return sv_fail("stage %s: lr must be > 0 (got %g)", st, o->lr);
    if (o->restart_period < 0)
      return sv_fail("stage %s: restart_period must be >= 0 (got %d)", st, o->restart_period);
    if (o->restart_period > 0 && !(o->restart_mult >= 1))
      return sv_fail("stage %s: restart_mult must be >= 1 (got %g)", st, o->restart_mult);
    if (o->restart_period > 0 && !(o->lr_min >= 0 && o->lr_min <= o->lr))
      return sv_fail("stage %s: lr_min must be in [0, lr = %g] (got %g)", st, o->lr, o->lr_min);
  }
  if (o->kind == SV_OPTIM_SGD && !(o->momentum >= 0 && o->momentum < 1))
    return sv_fail("stage %s: momentum must be in [0, 1) (got %g)", st, o->momentum);
  if (o->kind == SV_OPTIM_ADAM) {
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
      return sv_fail("stage %s: beta1 and beta2 must be in [0, 1) (got %g, %g)", st, o->beta1,
                     o->beta2);
    if (!(o->eps > 0))
      return sv_fail("stage %s: eps must be > 0 (got %g)", st, o->eps);
  }
  if (o->kind == SV_OPTIM_LM && !(o->lm_lambda > 0 && isfinite(o->lm_lambda)))
    return sv_fail("stage %s: lm_lambda must be > 0 (got %g)", st, o->lm_lambda);
  return 0;
}

/* The stage's number in this run, kept as the metric "optim_stages" so
   that loss_history.csv can tell consecutive stages apart. */
static int next_ordinal(sv_run *r)
{
  int k = 0;
  for (int i = 0; i < r->nmetrics; i++)
    if (strcmp(r->metrics[i].name, "optim_stages") == 0)
      k = (int)r->metrics[i].value;
  sv_metric(r, "optim_stages", k + 1);
  return k + 1;
}

int sv_minimize(sv_run *r, sv_params *p, const sv_objective *obj, const sv_optim_opts *o,
                sv_optim_result *res)
{
  sv_optim_result dummy;
  if (!res)
    res = &dummy;
  memset(res, 0, sizeof *res);
  res->loss = NAN;
  if (!r || !p || !o)
    return sv_fail("sv_minimize: needs a run, a params vector and options");
  const char *name = o->stage && *o->stage ? o->stage : sv_optim_name(o->kind);
  size_t n = sv_params_count(p);
  if (check_opts(name, o, obj, n) < 0)
    return -1;
  if (!sv_params_data(p))
    return sv_fail_context("stage %s", name);

  sv__stage s = {r, p, obj, o, name, n, 0, NULL, NULL, -1, 0};
  s.good = malloc(n * sizeof(double));
  s.red = malloc((n + 2) * sizeof(double));
  double *x = o->kind == SV_OPTIM_LBFGS || o->kind == SV_OPTIM_LM ? malloc(n * sizeof(double)) : NULL;
  if (!s.good || !s.red || ((o->kind == SV_OPTIM_LBFGS || o->kind == SV_OPTIM_LM) && !x)) {
    free(s.good), free(s.red), free(x);
    return sv_fail("stage %s: out of memory for %zu parameters", name, n);
  }
  memcpy(s.good, p->data, n * sizeof(double));
  s.ordinal = next_ordinal(r);

  double t0 = sv__now();
  sv_progress_begin(r, name, o->max_steps);
  int rc;
  switch (o->kind) {
  case SV_OPTIM_LBFGS:
  case SV_OPTIM_LM:
    /* the drivers work on a private copy: p->data is where the objective
       is evaluated, trial points included */
    memcpy(x, p->data, n * sizeof(double));
    rc = o->kind == SV_OPTIM_LBFGS ? sv__minimize_lbfgs(&s, x, res) : sv__minimize_lm(&s, x, res);
    if (rc == 0)
      memcpy(p->data, x, n * sizeof(double));
    break;
  default:
    rc = minimize_first_order(&s, res);
    break;
  }
  sv_progress_end(r);
  res->seconds = sv__now() - t0;

  if (rc == 0 && sv__stage_checkpoint(&s, p->data) < 0)
    rc = sv_fail_context("stage %s: final checkpoint", name);
  char key[256];
  snprintf(key, sizeof key, "%s_seconds", name);
  sv_metric(r, key, res->seconds);
  if (rc == 0) {
    snprintf(key, sizeof key, "%s_final_loss", name);
    sv_metric(r, key, res->loss);
    sv_log(r, "stage %s: %d steps, loss %.6e, %.3g s%s", name, res->steps, res->loss, res->seconds,
           res->converged ? " (converged)" : "");
  }
  free(s.good), free(s.red), free(x);
  return rc;
}
