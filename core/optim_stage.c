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
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Are all n values finite? A double is Inf or NaN when its exponent bits
   are all ones, and exactly then does adding 1 to the exponent field carry
   into the sign bit: one integer OR per value, which vectorises (a
   Jacobian of 10^5 entries is checked every Levenberg-Marquardt step). */
static int all_finite(const double *v, size_t n)
{
  const uint64_t exp_bits = 0x7ffULL << 52, exp_one = 1ULL << 52;
  uint64_t acc = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t b;
    memcpy(&b, v + i, sizeof b);
    acc |= (b & exp_bits) + exp_one;
  }
  return !(acc >> 63);
}

int sv__stage_check_finite(sv__stage *s, int step, const char *what, const double *v, size_t n)
{
  if (all_finite(v, n))
    return 0;
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

/* Which signal stopped the ranks: this rank's, or else the one the sum
   of the others' says (all ranks normally receive the same one). */
static int decode_signal(double sum)
{
  int mine = sv__signal_pending();
  if (mine)
    return mine;
  return fmod(sum, SIGTERM) == 0 ? SIGTERM : SIGINT;
}

int sv__stage_eval(sv__stage *s, int step, const double *theta, double *loss, double *grad)
{
  size_t n = s->n;
  const sv_optim_opts *o = s->o;
  double *pd = s->p->data, *red = s->red;
  if (theta != pd)
    memcpy(pd, theta, n * sizeof(double));
  memset(red, 0, (n + SV__RED_EXTRA) * sizeof(double));
  /* a failure on one rank still joins the reduction below */
  int rc = sv__stage_on_step(s, step);
  if (rc == 0)
    rc = s->obj->loss_grad(s->obj->ctx, pd, &red[n + SV__RED_LOSS], grad ? red : NULL);
  if (rc == 0 && o->steps_per_epoch > 0 && o->batch_metric &&
      o->batch_metric(o->on_step_ctx, &red[n + SV__RED_MSUM], &red[n + SV__RED_MCOUNT]) < 0)
    rc = sv_fail_context("batch_metric");
  red[n + SV__RED_FAILED] = rc < 0;
  /* read after the evaluation: a signal that came during it stops this
     step, on every rank, since the flag is reduced with the loss */
  red[n + SV__RED_SIGNAL] = sv__signal_pending();
  /* loss, gradient, the failure count and the signal in one reduction:
     every rank then takes the same branch */
  if (s->r->size > 1 && sv_allreduce_sum(s->r, red, n + SV__RED_EXTRA) < 0)
    return sv_fail_context("stage %s, step %d", s->name, step);
  if (rc < 0)
    return sv_fail_context("stage %s, step %d", s->name, step);
  if (red[n + SV__RED_FAILED] != 0)
    return sv_fail("stage %s, step %d: the objective failed on %.0f other rank(s)", s->name, step,
                   red[n + SV__RED_FAILED]);
  if (red[n + SV__RED_SIGNAL] != 0 && !s->stop) {
    s->stop = 1;
    s->stop_signal = decode_signal(red[n + SV__RED_SIGNAL]);
  }
  s->batch_msum = red[n + SV__RED_MSUM];
  s->batch_mcount = red[n + SV__RED_MCOUNT];
  *loss = red[n + SV__RED_LOSS];
  if (sv__stage_check_finite(s, step, "loss", &red[n + SV__RED_LOSS], 1) < 0)
    return -1;
  if (grad) {
    if (sv__stage_check_finite(s, step, "gradient", red, n) < 0)
      return -1;
    memcpy(grad, red, n * sizeof(double));
  }
  return 0;
}

/* A stochastic stage: this step's batch joins the epoch's means; at the
   end of an epoch, a row of epochs.csv (stage, epoch, mean loss, metric,
   lr, seconds). */
static void record_batch(sv__stage *s, int step, double loss, double lr)
{
  const sv_optim_opts *o = s->o;
  long spe = o->steps_per_epoch, total = o->max_steps;
  s->ep_loss += loss;
  s->ep_batches += 1;
  s->ep_msum += s->batch_msum;
  s->ep_mcount += s->batch_mcount;
  long epoch = step / spe + 1, epochs = (total + spe - 1) / spe, batch = step % spe + 1;
  long batches = epoch < epochs ? spe : total - (epoch - 1) * spe;
  double metric = s->ep_mcount > 0 ? s->ep_msum / s->ep_mcount : NAN;
  sv__progress_epoch(s->r, epoch, epochs, batch, batches,
                     o->batch_metric ? (o->metric_name ? o->metric_name : "metric") : NULL,
                     metric);
  if (batch < batches)
    return;
  double mean = s->ep_loss / s->ep_batches;
  s->last_epoch_loss = mean;
  if (s->r->rank == 0 && !s->no_epochs) {
    static const char *const cols[] = {"stage", "epoch", "loss", "metric", "lr", "seconds"};
    double row[6] = {s->ordinal, (double)epoch, mean, metric, lr, sv__now() - s->t0};
    if (sv_series_append(s->r, "epochs.csv", 6, cols, row) < 0) {
      sv_warn(s->r, "stage %s: no more epoch means: %s", s->name, sv_errmsg());
      s->no_epochs = 1;
    }
  }
  s->ep_loss = s->ep_batches = s->ep_msum = s->ep_mcount = 0;
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
  if (s->o->steps_per_epoch > 0) {
    record_batch(s, step, loss, lr);
    sv_progress_update(s->r, step + 1, loss); /* step + 1 batches done */
  } else {
    sv_progress_update(s->r, step, loss);
  }
  int every = s->o->checkpoint_every;
  if (every > 0 && step > 0 && step % every == 0 && sv__stage_checkpoint(s, theta) < 0)
    return sv_fail_context("stage %s, step %d", s->name, step);
  return 0;
}

/* ------------------------------------------------------------------ */
/* The state of a stage stopped by a signal                            */
/* ------------------------------------------------------------------ */

void sv__stage_state_begin(sv__stage *s, int step)
{
  sv__optstate *st = &s->saved;
  st->step = step;
  double *sc = st->scalars;
  sc[0] = sv__now() - s->t0; /* seconds so far */
  sc[1] = s->ep_loss;
  sc[2] = s->ep_batches;
  sc[3] = s->ep_msum;
  sc[4] = s->ep_mcount;
  sc[5] = s->last_epoch_loss;
  st->nscalars = SV__STAGE_SCALARS;
}

double *sv__stage_state_vecs(sv__stage *s, int nvecs)
{
  sv__optstate *st = &s->saved;
  free(st->vecs);
  st->nvecs = 0;
  st->vecs = nvecs > 0 ? malloc((size_t)nvecs * s->n * sizeof(double)) : NULL;
  if (nvecs > 0 && !st->vecs) {
    sv_fail("stage %s: out of memory for the state of %zu parameters", s->name, s->n);
    return NULL;
  }
  st->nvecs = nvecs;
  return st->vecs;
}

void sv__stage_state_restore(sv__stage *s)
{
  const double *sc = s->resume->scalars;
  s->t0 = sv__now() - sc[0];
  s->ep_loss = sc[1];
  s->ep_batches = sc[2];
  s->ep_msum = sc[3];
  s->ep_mcount = sc[4];
  s->last_epoch_loss = sc[5];
}
