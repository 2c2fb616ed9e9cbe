/*
 * optim_lm.c -- Levenberg-Marquardt for loss = sum over ranks of |r|^2,
 * with the exact Jacobian from the objective (never finite differences).
 *
 * Every rank's residual rows and Jacobian rows are gathered in rank order
 * onto every rank (sv_allgather), so each rank holds the whole J (M x n)
 * and computes the identical step: the ranks never need to agree on
 * anything else. Each iteration minimises |J d + r|^2 + lambda |d|^2:
 *
 *   M >= n   (J^T J + lambda I) d = -J^T r        n x n Cholesky
 *   M <  n   d = -J^T (J J^T + lambda I)^{-1} r   M x M Cholesky (the dual,
 *            the same d by the push-through identity; PINNs have more
 *            weights than points, so this is the common case)
 *
 * Products are BLAS (dsyrk, dgemv), the factorisation LAPACK's dpotrf from
 * OpenBLAS, which reports a matrix that is not positive definite through
 * `info` instead of calling GSL's aborting error handler.
 *
 * Damping follows Nielsen (1999), as in Madsen, Nielsen & Tingleff,
 * "Methods for non-linear least squares problems": gain ratio rho =
 * actual / predicted decrease; accept when rho > 0 with lambda *= max(1/3,
 * 1 - (2 rho - 1)^3), nu = 2; else lambda *= nu, nu *= 2. The first lambda
 * is lm_lambda times the largest diagonal entry of J^T J.
 *
 * Why not GSL's multifit_nlinear: it refuses fewer residuals than
 * parameters (n < p), which is exactly the PINN regime, and it would need
 * the whole Jacobian through its own callbacks anyway. TAO's BRGN
 * regularises differently and works on distributed Vecs we do not have.
 */
#include "internal.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK Cholesky (OpenBLAS); the trailing length is gfortran's hidden
   argument for the character, harmless for OpenBLAS's C version. */
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info,
                    size_t uplo_len);

typedef struct {
  sv__stage *s;
  int size;          /* ranks */
  int m, M;          /* rows on this rank, in all */
  int *counts;       /* rows per rank */
  int dual;          /* M < n */
  int k;             /* order of the system: n, or M in the dual form */
  double *mine;      /* 2 + m: failure flag, signal, this rank's residuals */
  double *rall;      /* 2 size + M: everybody's flags and residuals */
  double *Jl;        /* m x n: this rank's Jacobian rows */
  double *R, *J;     /* the current point: M, M x n */
  double *Rt, *Jt;   /* the trial point */
  double *A;         /* k x k: J^T J or J J^T, upper triangle (row-major) */
  double *adiag;     /* k: its diagonal */
  double *g, *d, *xt, *y;
} lm;

static void lm_free(lm *L)
{
  free(L->counts), free(L->mine), free(L->rall), free(L->Jl);
  free(L->R), free(L->J), free(L->Rt), free(L->Jt);
  free(L->A), free(L->adiag), free(L->g), free(L->d), free(L->xt), free(L->y);
}

static int lm_alloc(lm *L, sv__stage *s)
{
  sv_run *r = s->r;
  size_t n = s->n;
  L->s = s;
  L->size = r->size;
  if (s->obj->m > (size_t)INT_MAX / (n > 0 ? n : 1))
    return sv_fail("stage %s: %zu residual rows x %zu parameters is too large", s->name,
                   s->obj->m, n);
  L->m = (int)s->obj->m;
  L->counts = calloc((size_t)L->size, sizeof *L->counts);
  double *c = calloc((size_t)L->size, sizeof *c);
  if (!L->counts || !c) {
    free(c);
    return sv_fail("stage %s: out of memory", s->name);
  }
  c[r->rank] = L->m;
  if (L->size > 1 && sv_allreduce_sum(r, c, (size_t)L->size) < 0) {
    free(c);
    return sv_fail_context("stage %s: counting residual rows", s->name);
  }
  double total = 0;
  for (int i = 0; i < L->size; i++) {
    L->counts[i] = (int)c[i];
    total += c[i];
  }
  free(c);
  if (total < 1)
    return sv_fail("stage %s: LM needs residual rows, but the objective has none", s->name);
  if (total * (double)n > (double)INT_MAX)
    return sv_fail("stage %s: %.0f residual rows x %zu parameters is too large", s->name, total,
                   n);
  L->M = (int)total;
  L->dual = (size_t)L->M < n;
  L->k = L->dual ? L->M : (int)n;
  size_t M = (size_t)L->M, k = (size_t)L->k;
  L->mine = malloc((2 + (size_t)L->m) * sizeof(double));
  L->rall = malloc((2 * (size_t)L->size + M) * sizeof(double));
  L->Jl = calloc((size_t)L->m * n + 1, sizeof(double));
  L->R = malloc(M * sizeof(double));
  L->Rt = malloc(M * sizeof(double));
  L->J = malloc(M * n * sizeof(double));
  L->Jt = malloc(M * n * sizeof(double));
  L->A = malloc(k * k * sizeof(double));
  L->adiag = malloc(k * sizeof(double));
  L->g = malloc(n * sizeof(double));
  L->d = malloc(n * sizeof(double));
  L->xt = malloc(n * sizeof(double));
  L->y = malloc(M * sizeof(double));
  if (!L->mine || !L->rall || !L->Jl || !L->R || !L->Rt || !L->J || !L->Jt || !L->A ||
      !L->adiag || !L->g || !L->d || !L->xt || !L->y)
    return sv_fail("stage %s: out of memory for a %d x %zu Jacobian", s->name, L->M, n);
  return 0;
}

/* Residuals and Jacobian of all ranks at theta into R (M) and J (M x n);
   *F = |R|^2. Every rank returns the same status. */
static int lm_eval(lm *L, int step, const double *theta, double *R, double *J, double *F)
{
  sv__stage *s = L->s;
  sv_run *r = s->r;
  size_t n = s->n, M = (size_t)L->M;
  double *pd = s->p->data;
  if (theta != pd)
    memcpy(pd, theta, n * sizeof(double));
  int rc = sv__stage_on_step(s, step);
  if (L->size == 1) {
    if (rc == 0)
      rc = s->obj->residuals(s->obj->ctx, pd, R, J);
    if (rc < 0)
      return sv_fail_context("stage %s, step %d", s->name, step);
    if (sv__signal_pending() && !s->stop) {
      s->stop = 1;
      s->stop_signal = sv__signal_pending();
    }
  } else {
    if (rc == 0)
      rc = s->obj->residuals(s->obj->ctx, pd, L->mine + 2, L->Jl);
    L->mine[0] = rc < 0;
    /* the signal travels with the residuals, so every rank stops at the
       same step */
    L->mine[1] = sv__signal_pending();
    if (sv_allgather(r, L->mine, 2 + L->m, L->rall) < 0 ||
        sv_allgather(r, L->Jl, L->m * (int)n, J) < 0)
      return sv_fail_context("stage %s, step %d: gathering residuals", s->name, step);
    if (rc < 0)
      return sv_fail_context("stage %s, step %d", s->name, step);
    const double *src = L->rall;
    double *dst = R;
    int sig = 0;
    for (int i = 0; i < L->size; i++) {
      if (src[0] != 0)
        return sv_fail("stage %s, step %d: the objective failed on rank %d", s->name, step, i);
      if (src[1] != 0 && !sig)
        sig = (int)src[1];
      memcpy(dst, src + 2, (size_t)L->counts[i] * sizeof(double));
      dst += L->counts[i];
      src += 2 + L->counts[i];
    }
    if (sig && !s->stop) {
      s->stop = 1;
      s->stop_signal = sv__signal_pending() ? sv__signal_pending() : sig;
    }
  }
  if (sv__stage_check_finite(s, step, "residual", R, M) < 0 ||
      sv__stage_check_finite(s, step, "Jacobian", J, M * n) < 0)
    return -1;
  double f = 0;
  for (size_t i = 0; i < M; i++)
    f += R[i] * R[i];
  *F = f;
  return sv__stage_check_finite(s, step, "loss", F, 1);
}

/* At a new point: g = J^T R and A = J^T J (or J J^T), upper triangle. */
static void lm_linearise(lm *L)
{
  int n = (int)L->s->n, M = L->M, k = L->k;
  cblas_dgemv(CblasRowMajor, CblasTrans, M, n, 1.0, L->J, n, L->R, 1, 0.0, L->g, 1);
  if (L->dual)
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, M, n, 1.0, L->J, n, 0.0, L->A, M);
  else
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, n, M, 1.0, L->J, n, 0.0, L->A, n);
  for (int i = 0; i < k; i++)
    L->adiag[i] = L->A[(size_t)i * k + i];
}

/* Solve for the step d at damping lambda. A keeps its upper triangle; the
   factor goes into the strict lower one and the diagonal (row-major lower
   = column-major upper for LAPACK), with adiag holding A's diagonal.
   Returns 1 when the damped matrix is not numerically positive definite. */
static int lm_step(lm *L, double lambda)
{
  int n = (int)L->s->n, M = L->M, k = L->k, info = 0;
  double *A = L->A;
  for (int i = 0; i < k; i++) {
    for (int j = 0; j < i; j++)
      A[(size_t)i * k + j] = A[(size_t)j * k + i];
    A[(size_t)i * k + i] = L->adiag[i] + lambda;
  }
  dpotrf_("U", &k, A, &k, &info, 1);
  if (info != 0)
    return 1;
  /* A + lambda I = Lo Lo^T with Lo the row-major lower triangle */
  double *b = L->dual ? L->y : L->d;
  if (L->dual)
    memcpy(b, L->R, (size_t)M * sizeof(double));
  else
    for (int i = 0; i < n; i++)
      b[i] = -L->g[i];
  cblas_dtrsv(CblasRowMajor, CblasLower, CblasNoTrans, CblasNonUnit, k, A, k, b, 1);
  cblas_dtrsv(CblasRowMajor, CblasLower, CblasTrans, CblasNonUnit, k, A, k, b, 1);
  if (L->dual)
    cblas_dgemv(CblasRowMajor, CblasTrans, M, n, -1.0, L->J, n, L->y, 1, 0.0, L->d, 1);
  return 0;
}

static double dot(const double *a, const double *b, size_t n)
{
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* A signal was seen: keep what going on from `step` needs. */
static int lm_save(sv__stage *s, int step, double lambda, double nu, double Fref, int wstart)
{
  sv__stage_state_begin(s, step);
  double *q = s->saved.scalars + s->saved.nscalars;
  q[0] = lambda, q[1] = nu, q[2] = Fref, q[3] = wstart;
  s->saved.nscalars += SV__LM_SCALARS;
  sv__stage_state_vecs(s, 0);
  s->stopped = 1;
  return 0;
}

/* A resumed stage goes on from the accepted point x of its state: R, J,
   g and J^T J are evaluated there again (the objective is deterministic),
   without calling on_step for that step a second time. */
int sv__minimize_lm(sv__stage *s, double *x, sv_optim_result *res)
{
  const sv_optim_opts *o = s->o;
  size_t n = s->n;
  lm L = {0};
  if (lm_alloc(&L, s) < 0) {
    lm_free(&L);
    return -1;
  }
  double F, Ft, lambda, nu = 2, Fref = INFINITY; /* Fref: the loss where the stall window began */
  int rc = 0, step = 0, converged = 0, wstart = 0;
  if (s->resume) {
    step = s->resume->step;
    lambda = s->resume->scalars[SV__STAGE_SCALARS];
    nu = s->resume->scalars[SV__STAGE_SCALARS + 1];
    Fref = s->resume->scalars[SV__STAGE_SCALARS + 2];
    wstart = (int)s->resume->scalars[SV__STAGE_SCALARS + 3];
    s->on_step_done = step;
    if (lm_eval(&L, step, x, L.R, L.J, &F) < 0) {
      lm_free(&L);
      return -1;
    }
    lm_linearise(&L);
    memcpy(s->good, x, n * sizeof(double));
  } else {
    if (lm_eval(&L, 0, x, L.R, L.J, &F) < 0) {
      lm_free(&L);
      return -1;
    }
    lm_linearise(&L);
    /* diag(J^T J): the squared column norms, accumulated row by row in d */
    double dmax = 0;
    memset(L.d, 0, n * sizeof(double));
    for (int i = 0; i < L.M; i++)
      for (size_t j = 0; j < n; j++)
        L.d[j] += L.J[(size_t)i * n + j] * L.J[(size_t)i * n + j];
    for (size_t j = 0; j < n; j++)
      dmax = L.d[j] > dmax ? L.d[j] : dmax;
    lambda = o->lm_lambda * (dmax > 0 ? dmax : 1);
    Fref = F;
    rc = sv__stage_record(s, 0, x, F, lambda);
    if (rc == 0 && s->stop)
      lm_save(s, 0, lambda, nu, Fref, wstart);
  }

  while (rc == 0 && !s->stopped) {
    if (o->ftol > 0 && F < o->ftol) {
      converged = 1;
      break;
    }
    if (step == o->max_steps)
      break;
    if (!(lambda < 1e300)) {
      sv_warn(s->r, "stage %s: the damping overflowed at step %d (loss %.6e); stopping", s->name,
              step, F);
      break;
    }
    if (lm_step(&L, lambda)) {
      lambda *= nu, nu *= 2;
      rc = sv__stage_record(s, ++step, x, F, lambda);
      if (rc == 0 && s->stop)
        lm_save(s, step, lambda, nu, Fref, wstart);
      continue;
    }
    double dn = sqrt(dot(L.d, L.d, n)), xn = sqrt(dot(x, x, n));
    if (dn <= o->gtol * (xn + o->gtol)) {
      converged = 1;
      break;
    }
    step++;
    for (size_t j = 0; j < n; j++)
      L.xt[j] = x[j] + L.d[j];
    /* predicted decrease |r|^2 - |r + J d|^2 = d.(lambda d - g), a sum of
       two non-negative terms, so it has no cancellation */
    double pred = lambda * dot(L.d, L.d, n) - dot(L.d, L.g, n);
    if (lm_eval(&L, step, L.xt, L.Rt, L.Jt, &Ft) < 0) {
      rc = -1;
      break;
    }
    double rho = (F - Ft) / pred;
    if (pred > 0 && rho > 0) {
      double *t;
      t = L.R, L.R = L.Rt, L.Rt = t;
      t = L.J, L.J = L.Jt, L.Jt = t;
      memcpy(x, L.xt, n * sizeof(double));
      F = Ft;
      lm_linearise(&L);
      double q = 2 * rho - 1;
      lambda *= fmax(1.0 / 3, 1 - q * q * q);
      nu = 2;
    } else {
      lambda *= nu, nu *= 2;
    }
    rc = sv__stage_record(s, step, x, F, lambda);
    if (rc == 0 && s->stop)
      lm_save(s, step, lambda, nu, Fref, wstart);
    /* converged in practice: the loss no longer falls over a window */
    if (rc == 0 && !s->stopped && o->stall_window > 0 && step - wstart >= o->stall_window) {
      if (!(F < (1 - o->stall_rtol) * Fref)) {
        sv_log(s->r, "stage %s: the loss fell by less than %g over the last %d steps; stopping at "
               "step %d", s->name, o->stall_rtol, o->stall_window, step);
        converged = 1;
        break;
      }
      Fref = F;
      wstart = step;
    }
  }
  res->steps = step;
  res->loss = F;
  res->converged = converged;
  lm_free(&L);
  return rc;
}
