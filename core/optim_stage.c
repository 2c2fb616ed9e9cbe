/*
 * optim_stage.c -- the step loop every optimizer shares.
 *
 * The drivers (SGD and Adam in optim.c, L-BFGS in optim_lbfgs.c,
 * Levenberg-Marquardt in optim_lm.c) evaluate through sv__stage_eval and
 * report each iterate through sv__stage_record, so the concerns they share
 * are written once, here:
 *
 *   - the MPI reduction: each rank's loss and gradient are summed over the
 *     run's communicator in sv__stage_eval; this is the one place the core
 *     reduces them (LM gathers residual rows in optim_lm.c instead);
 *   - a NaN or Inf in the loss or gradient restores the last good
 *     parameters, checkpoints them and fails with the step number;
 *   - loss_history.csv (stage, step, loss, lr), progress and periodic
 *     checkpoints.
 *
 * The objective is always evaluated with theta == sv_params_data(p), so an
 * objective built on a compiled plan (whose parameter buffer is the params
 * vector) sees the point being evaluated whichever driver asks. This file
 * calls no driver: the dependencies run one way.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* The shared step loop                                                */
/* ------------------------------------------------------------------ */

int sv__stage_checkpoint(sv__stage *s, const double *theta)
{
  double *pd = s->p->data;
  if (theta != pd)
    memcpy(pd, theta, s->n * sizeof(double));
  double failed = 0;
  if (s->r->rank == 0 && sv_checkpoint_save(s->p, sv_run_checkpoint_path(s->r)) < 0)
    failed = 1;
  /* every rank must learn whether rank 0 failed, or they would part ways */
  if (s->r->size > 1 && sv_allreduce_sum(s->r, &failed, 1) < 0)
    return -1;
  if (failed)
    return s->r->rank == 0 ? -1 : sv_fail("checkpoint: saving on rank 0 failed");
  return 0;
}

int sv__stage_nonfinite(sv__stage *s, int step, const char *what)
{
  const char *path = sv_run_checkpoint_path(s->r);
  memcpy(s->p->data, s->good, s->n * sizeof(double));
  if (sv__stage_checkpoint(s, s->p->data) < 0)
    return sv_fail_context("stage %s: %s at step %d; saving the last good parameters to %s failed",
                           s->name, what, step, path ? path : "(no path)");
  return sv_fail("stage %s: %s at step %d; last good parameters kept in %s", s->name, what, step,
                 path ? path : "(no path)");
}

int sv__stage_check_finite(sv__stage *s, int step, const char *what, const double *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!isfinite(v[i])) {
      char msg[160];
      const char *bad = isnan(v[i]) ? "NaN" : v[i] > 0 ? "+Inf" : "-Inf";
      if (n == 1)
        snprintf(msg, sizeof msg, "%s is %s", what, bad);
      else
        snprintf(msg, sizeof msg, "%s is %s at index %zu", what, bad, i);
      return sv__stage_nonfinite(s, step, msg);
    }
  return 0;
}

int sv__stage_on_step(sv__stage *s, int step)
{
  if (!s->o->on_step || step == s->on_step_done)
    return 0;
  s->on_step_done = step;
  if (s->o->on_step(s->o->on_step_ctx, step) < 0)
    return sv_fail_context("on_step");
  return 0;
}

int sv__stage_eval(sv__stage *s, int step, const double *theta, double *loss, double *grad)
{
  size_t n = s->n;
  double *pd = s->p->data, *red = s->red;
  if (theta != pd)
    memcpy(pd, theta, n * sizeof(double));
  memset(red, 0, (n + 2) * sizeof(double));
  /* a failure on one rank still joins the reduction below */
  int rc = sv__stage_on_step(s, step);
  if (rc == 0)
    rc = s->obj->loss_grad(s->obj->ctx, pd, &red[n], grad ? red : NULL);
  red[n + 1] = rc < 0;
  /* loss, gradient and the failure count in one reduction: every rank
     then takes the same branch */
  if (s->r->size > 1 && sv_allreduce_sum(s->r, red, n + 2) < 0)
    return sv_fail_context("stage %s, step %d", s->name, step);
  if (rc < 0)
    return sv_fail_context("stage %s, step %d", s->name, step);
  if (red[n + 1] != 0)
    return sv_fail("stage %s, step %d: the objective failed on %.0f other rank(s)", s->name, step,
                   red[n + 1]);
  *loss = red[n];
  if (sv__stage_check_finite(s, step, "loss", &red[n], 1) < 0)
    return -1;
  if (grad) {
    if (sv__stage_check_finite(s, step, "gradient", red, n) < 0)
      return -1;
    memcpy(grad, red, n * sizeof(double));
  }
  return 0;
}

int sv__stage_record(sv__stage *s, int step, const double *theta, double loss, double lr)
{
  if (theta != s->good)
    memcpy(s->good, theta, s->n * sizeof(double));
  /* Only rank 0 writes, so a write error is not fatal: failing on one
     rank would leave the others waiting in the next reduction. */
  if (s->r->rank == 0 && !s->no_history) {
    static const char *const cols[] = {"stage", "step", "loss", "lr"};
    double row[4] = {s->ordinal, step, loss, lr};
    if (sv_series_append(s->r, "loss_history.csv", 4, cols, row) < 0) {
      sv_warn(s->r, "stage %s: no more loss history: %s", s->name, sv_errmsg());
      s->no_history = 1;
    }
  }
  sv_progress_update(s->r, step, loss);
  int every = s->o->checkpoint_every;
  if (every > 0 && step > 0 && step % every == 0 && sv__stage_checkpoint(s, theta) < 0)
    return sv_fail_context("stage %s, step %d", s->name, step);
  return 0;
}
