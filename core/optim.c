/*
 * optim.c -- one interface to the optimizers: sv_minimize checks the
 * options and hands the parameters to a driver. SGD and Adam (with
 * decoupled weight decay: AdamW), their schedules, gradient clipping and
 * per-block scales live here; L-BFGS (PETSc TAO) in optim_lbfgs.c;
 * Levenberg-Marquardt in optim_lm.c. With the `solver` program each call
 * is a stage of the run's journal (journal.c): a stage journalled before
 * loads instead of training, a stopped one goes on where it stopped.
 * What every driver shares -- the evaluation with its MPI reduction, NaN
 * checks, history, progress and checkpoints -- is the step loop of
 * optim_stage.c, which this file and the drivers call and which calls
 * none of them.
 */
#include "internal.h"

#include <math.h>
#include <signal.h>
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
  o->schedule = SV_LR_CONSTANT;
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

/* Learning rate of step t. A linear warm-up first: lr (t + 1) / W for
   t < W = warmup_steps. Then SV_LR_COSINE: one cosine from lr down to
   lr_min over the rest of the stage, lr_min + (lr - lr_min) (1 + cos(pi
   p)) / 2 with p = (t - W) / (max_steps - W). Otherwise cosine annealing
   with warm restarts (SGDR, Loshchilov & Hutter) when restart_period > 0:
   the same formula with p = t' / T, where t' counts the steps since the
   last restart and T grows by restart_mult after each one; else lr. */
typedef struct {
  double t, period;
} schedule;

static double schedule_next(schedule *sc, const sv_optim_opts *o, int step)
{
  const double pi = 3.14159265358979323846;
  if (step < o->warmup_steps)
    return o->lr * (double)(step + 1) / (double)o->warmup_steps;
  if (o->schedule == SV_LR_COSINE) {
    double span = (double)(o->max_steps - o->warmup_steps);
    double p = span > 0 ? (double)(step - o->warmup_steps) / span : 1;
    return o->lr_min + 0.5 * (o->lr - o->lr_min) * (1 + cos(pi * p));
  }
  if (o->restart_period <= 0)
    return o->lr;
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

/* torch.nn.utils.clip_grad_norm_: scale by max_norm / (|g| + 1e-6) when
   that is below 1, so the direction is kept. */
static void clip_norm(double *g, size_t n, double max_norm)
{
  double coef = max_norm / (norm2(g, n) + 1e-6);
  if (coef < 1)
    for (size_t i = 0; i < n; i++)
      g[i] *= coef;
}

/* The driver's part of a stopped stage's state: 4 scalars, then m (and v). */
#define FO_SCALARS 4

/*
 * One update of x by gradient g at rate lr, block by block: block b moves
 * at lr_b = lr * lr_scale_b, and first decays as x *= 1 - lr_b wd_b with
 * wd_b = weight_decay * decay_scale_b (decoupled, as PyTorch's AdamW does
 * before its Adam step; for SGD this is SGDW, not an L2 term).
 */
static void update(const sv__stage *s, double *x, const double *g, double *m, double *v,
                   double lr, double c1, double c2)
{
  const sv_optim_opts *o = s->o;
  const sv_params *p = s->p;
  int adam = o->kind == SV_OPTIM_ADAM;
  for (int b = 0; b < p->nblocks; b++) {
    size_t i0 = p->blocks[b].offset, i1 = i0 + p->blocks[b].size;
    double lrb = lr * sv_params_block_lr_scale(p, b);
    double keep = 1 - lrb * (o->weight_decay * sv_params_block_decay_scale(p, b));
    if (keep != 1)
      for (size_t i = i0; i < i1; i++)
        x[i] *= keep;
    if (adam) {
      for (size_t i = i0; i < i1; i++) {
        m[i] = o->beta1 * m[i] + (1 - o->beta1) * g[i];
        v[i] = o->beta2 * v[i] + (1 - o->beta2) * g[i] * g[i];
        x[i] -= lrb * (m[i] * c1) / (sqrt(v[i] * c2) + o->eps);
      }
    } else {
      for (size_t i = i0; i < i1; i++) {
        m[i] = o->momentum * m[i] + g[i];
        x[i] -= lrb * m[i];
      }
    }
  }
}

/*
 * Both update x = p->data in place. Step k evaluates the k-th iterate. A
 * deterministic objective has max_steps updates and max_steps + 1
 * evaluations, so the final loss is the loss of the returned parameters; a
 * stochastic one (steps_per_epoch > 0) has max_steps of each (a last
 * evaluation would cost a batch and say little) and its final loss is the
 * mean over its last epoch. A signal seen in step k's evaluation stops the
 * loop after k's update, with the state to go on from k + 1.
 */
static int minimize_first_order(sv__stage *s, sv_optim_result *res)
{
  const sv_optim_opts *o = s->o;
  size_t n = s->n;
  double *x = s->p->data;
  int adam = o->kind == SV_OPTIM_ADAM, stoch = o->steps_per_epoch > 0;
  double *g = malloc(n * sizeof *g);
  double *m = calloc(n, sizeof *m); /* SGD: the velocity */
  double *v = adam ? calloc(n, sizeof *v) : NULL;
  if (!g || !m || (adam && !v)) {
    free(g), free(m), free(v);
    return sv_fail("stage %s: out of memory for %zu parameters", s->name, n);
  }
  schedule sc = {0, o->restart_period};
  double b1t = 1, b2t = 1, loss = NAN;
  int step = 0, rc = 0;
  res->converged = 0;
  if (s->resume) {
    const sv__optstate *st = s->resume;
    const double *q = st->scalars + SV__STAGE_SCALARS;
    sc.t = q[0], sc.period = q[1], b1t = q[2], b2t = q[3];
    memcpy(m, st->vecs, n * sizeof *m);
    if (adam)
      memcpy(v, st->vecs + n, n * sizeof *v);
    step = st->step + 1;
  }
  for (;; step++) {
    if (stoch && step >= o->max_steps)
      break;
    if (sv__stage_eval(s, step, x, &loss, g) < 0) {
      rc = -1;
      break;
    }
    int last = !stoch && step == o->max_steps;
    if (!stoch && ((o->ftol > 0 && loss < o->ftol) || (o->gtol > 0 && norm2(g, n) < o->gtol))) {
      res->converged = 1;
      last = 1;
    }
    double lr = last ? 0 : schedule_next(&sc, o, step);
    if (sv__stage_record(s, step, x, loss, lr) < 0) {
      rc = -1;
      break;
    }
    if (last)
      break;
    if (o->clip_norm > 0)
      clip_norm(g, n, o->clip_norm);
    double c1 = 1, c2 = 1;
    if (adam) {
      b1t *= o->beta1;
      b2t *= o->beta2;
      c1 = 1 / (1 - b1t), c2 = 1 / (1 - b2t);
    }
    update(s, x, g, m, v, lr, c1, c2);
    if (s->stop) {
      sv__stage_state_begin(s, step);
      double *q = s->saved.scalars + s->saved.nscalars;
      q[0] = sc.t, q[1] = sc.period, q[2] = b1t, q[3] = b2t;
      s->saved.nscalars += FO_SCALARS;
      double *vecs = sv__stage_state_vecs(s, adam ? 2 : 1);
      if (!vecs) {
        rc = -1;
        break;
      }
      memcpy(vecs, m, n * sizeof *m);
      if (adam)
        memcpy(vecs + n, v, n * sizeof *v);
      s->stopped = 1;
      step++;
      break;
    }
  }
  res->steps = step;
  res->loss = stoch ? s->last_epoch_loss : loss;
  free(g), free(m), free(v);
  return rc;
}

/* ------------------------------------------------------------------ */
/* sv_minimize                                                         */
/* ------------------------------------------------------------------ */

static int first_order(sv_optim_kind k)
{
  return k == SV_OPTIM_SGD || k == SV_OPTIM_ADAM;
}

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
  if (o->stall_window < 0)
    return sv_fail("stage %s: stall_window must be >= 0 (got %d)", st, o->stall_window);
  if (o->stall_window > 0 && !(o->stall_rtol >= 0 && o->stall_rtol < 1))
    return sv_fail("stage %s: stall_rtol must be in [0, 1) (got %g)", st, o->stall_rtol);

  /* ABI 2: minibatches, decay, schedules, clipping */
  const char *kn = sv_optim_name(o->kind);
  if (o->steps_per_epoch < 0)
    return sv_fail("stage %s: steps_per_epoch must be >= 0 (got %d)", st, o->steps_per_epoch);
  if (o->steps_per_epoch > 0 && !first_order(o->kind))
    return sv_fail("stage %s: steps_per_epoch (a stochastic objective) needs sgd or adam, not %s",
                   st, kn);
  if (o->steps_per_epoch > 0 && (o->ftol > 0 || o->gtol > 0))
    return sv_fail("stage %s: ftol and gtol test one minibatch's loss; with steps_per_epoch = %d "
                   "set them to 0 (got %g, %g)", st, o->steps_per_epoch, o->ftol, o->gtol);
  if (o->batch_metric && o->steps_per_epoch <= 0)
    return sv_fail("stage %s: batch_metric needs steps_per_epoch > 0 (a stochastic objective)",
                   st);
  if (!(o->weight_decay >= 0) || !isfinite(o->weight_decay))
    return sv_fail("stage %s: weight_decay must be finite and >= 0 (got %g)", st,
                   o->weight_decay);
  if (o->weight_decay > 0 && !first_order(o->kind))
    return sv_fail("stage %s: weight_decay applies to sgd and adam, not %s", st, kn);
  if (o->schedule != SV_LR_CONSTANT && o->schedule != SV_LR_COSINE)
    return sv_fail("stage %s: unknown schedule %d (SV_LR_CONSTANT or SV_LR_COSINE)", st,
                   (int)o->schedule);
  if (o->schedule == SV_LR_COSINE) {
    if (!first_order(o->kind))
      return sv_fail("stage %s: schedule SV_LR_COSINE applies to sgd and adam, not %s", st, kn);
    if (o->restart_period > 0)
      return sv_fail("stage %s: schedule SV_LR_COSINE and restart_period = %d exclude each "
                     "other (warm restarts are their own schedule)", st, o->restart_period);
    if (!(o->lr_min >= 0 && o->lr_min <= o->lr))
      return sv_fail("stage %s: lr_min must be in [0, lr = %g] (got %g)", st, o->lr, o->lr_min);
  }
  if (o->warmup_steps < 0 || o->warmup_steps > o->max_steps)
    return sv_fail("stage %s: warmup_steps must be in [0, max_steps = %d] (got %d)", st,
                   o->max_steps, o->warmup_steps);
  if (o->warmup_steps > 0 && !first_order(o->kind))
    return sv_fail("stage %s: warmup_steps applies to sgd and adam, not %s", st, kn);
  if (!(o->clip_norm >= 0) || !isfinite(o->clip_norm))
    return sv_fail("stage %s: clip_norm must be finite and >= 0 (got %g)", st, o->clip_norm);
  if (o->clip_norm > 0 && !first_order(o->kind))
    return sv_fail("stage %s: clip_norm applies to sgd and adam, not %s", st, kn);
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

static void stage_metrics(sv_run *r, const char *name, const sv_optim_result *res, int done)
{
  char key[256];
  snprintf(key, sizeof key, "%s_seconds", name);
  sv_metric(r, key, res->seconds);
  if (done) {
    snprintf(key, sizeof key, "%s_final_loss", name);
    sv_metric(r, key, res->loss);
  }
}

/* Which journal entry this stage has on a resumed run (rank 0 looks; all
   ranks take its answer). */
static int journal_entry(sv_run *r, int ordinal, int *found)
{
  double f = r->rank == 0 ? sv__journal_find(r, ordinal) : 0;
  if (r->size > 1 && sv_allreduce_sum(r, &f, 1) < 0)
    return -1;
  *found = (int)f;
  return 0;
}

/* The state a driver keeps when a signal stops it. */
static void state_counts(sv_optim_kind k, sv__optstate *st)
{
  memset(st, 0, sizeof *st);
  st->nscalars = SV__STAGE_SCALARS + (k == SV_OPTIM_LM ? SV__LM_SCALARS : FO_SCALARS);
  st->nvecs = k == SV_OPTIM_ADAM ? 2 : k == SV_OPTIM_SGD ? 1 : 0;
}

/* A stage that stopped on a signal: the parameters where it stopped go to
   the checkpoint and, under the solver program, the state to the journal;
   then the failure that tells the plugin to return. */
static int stopped(sv__stage *s, const sv_optim_result *res)
{
  sv_run *r = s->r;
  int lbfgs = s->o->kind == SV_OPTIM_LBFGS;
  int step = lbfgs ? res->steps : s->saved.step;
  if (sv__stage_checkpoint(s, s->p->data) < 0)
    return sv_fail_context("stage %s: saving the parameters after a signal", s->name);
  if (r->journal && !lbfgs && sv__journal_stage_stopped(s, res) < 0)
    return sv_fail_context("stage %s: saving the state after a signal", s->name);
  r->interrupted = 1;
  r->interrupt_signal = s->stop_signal;
  r->interrupt_step = step;
  free(r->interrupt_stage);
  r->interrupt_stage = strdup(s->name);
  return sv_fail("interrupted by %s at step %d of stage %s%s", sv__signal_name(s->stop_signal),
                 step, s->name, lbfgs ? " (an L-BFGS stage starts over when resumed)" : "");
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

  sv__stage s;
  memset(&s, 0, sizeof s);
  s.r = r, s.p = p, s.obj = obj, s.o = o, s.name = name, s.n = n;
  s.on_step_done = -1;
  s.last_epoch_loss = NAN;
  s.ordinal = next_ordinal(r);
  int driver_copy = o->kind == SV_OPTIM_LBFGS || o->kind == SV_OPTIM_LM;

  /* a resumed run: this stage's entry in the journal, if it has one */
  sv__optstate resume;
  memset(&resume, 0, sizeof resume);
  int found = 0;
  if (r->journal && r->resuming && journal_entry(r, s.ordinal, &found) < 0)
    return sv_fail_context("stage %s", name);
  if (found == 1) {
    if (sv__journal_stage_load(&s, 0, res, NULL) < 0)
      return sv_fail_context("stage %s (stage %d of the run being resumed)", name, s.ordinal);
    stage_metrics(r, name, res, 1);
    sv_log(r, "stage %s: done before (%d steps, loss %.6e); loaded from the journal", name,
           res->steps, res->loss);
    if (sv__stage_checkpoint(&s, p->data) < 0)
      return sv_fail_context("stage %s: checkpoint", name);
    return 0;
  }
  /* where the run's RNG is as the stage begins: a stopped stage's state
     keeps it, for the replay of its on_step calls */
  if (r->journal && o->kind != SV_OPTIM_LBFGS && !(s.rng0 = gsl_rng_clone(r->rng)))
    return sv_fail("stage %s: out of memory", name);
  if (found == 2) {
    state_counts(o->kind, &resume);
    if (sv__journal_stage_load(&s, 1, res, &resume) < 0) {
      gsl_rng_free(s.rng0);
      return sv_fail_context("stage %s (stage %d of the run being resumed)", name, s.ordinal);
    }
    s.resume = &resume;
    memset(res, 0, sizeof *res);
    res->loss = NAN;
  }

  s.good = malloc(n * sizeof(double));
  s.red = malloc((n + SV__RED_EXTRA) * sizeof(double));

  double *x = driver_copy ? malloc(n * sizeof(double)) : NULL;
  if (!s.good || !s.red || (driver_copy && !x)) {
    free(s.good), free(s.red), free(x), free(resume.vecs);
    if (s.rng0)
      gsl_rng_free(s.rng0);
    return sv_fail("stage %s: out of memory for %zu parameters", name, n);
  }
  memcpy(s.good, p->data, n * sizeof(double));

  s.t0 = sv__now();
  if (s.resume) {
    sv__stage_state_restore(&s);
    sv_log(r, "stage %s: going on from step %d", name, s.resume->step + 1);
  }
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
  res->seconds = sv__now() - s.t0;

  if (rc == 0 && s.stopped) {
    stage_metrics(r, name, res, 0);
    rc = stopped(&s, res);
  } else {
    if (rc == 0 && sv__stage_checkpoint(&s, p->data) < 0)
      rc = sv_fail_context("stage %s: final checkpoint", name);
    if (rc == 0 && r->journal && sv__journal_stage_done(&s, res) < 0)
      rc = sv_fail_context("stage %s: journal", name);
    stage_metrics(r, name, res, rc == 0);
    if (rc == 0)
      sv_log(r, "stage %s: %d steps, loss %.6e, %.3g s%s", name, res->steps, res->loss,
             res->seconds, res->converged ? " (converged)" : "");
  }
  free(s.good), free(s.red), free(x), free(resume.vecs), free(s.saved.vecs);
  if (s.rng0)
    gsl_rng_free(s.rng0);
  return rc;
}
