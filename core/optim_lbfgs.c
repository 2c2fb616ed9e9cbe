/*
 * optim_lbfgs.c -- L-BFGS through PETSc TAO (TAOLMVM).
 *
 * Every rank runs the same TAO iterations on PETSC_COMM_SELF over a
 * sequential Vec wrapping the driver's copy of the parameters; the
 * objective callback evaluates through sv__stage_eval, which sums the loss
 * and gradient over the run's communicator, so all ranks see the same
 * numbers and take the same steps. TaoSetFromOptions comes last, so
 * -tao_monitor, -tao_type, -tao_gatol, -tao_max_it ... override the stage's
 * settings as a PETSc user expects.
 *
 * PETSc errors are caught by an error handler pushed for the solve (so
 * nothing is printed) and turned into an sv_fail message.
 */
#include "internal.h"

#include <petsctao.h>
#include <string.h>

typedef struct {
  sv__stage *s;
  int failed;      /* one of our callbacks failed: sv_errmsg() says why */
  int stopped;     /* a signal: the monitor stopped TAO after an iterate */
  int last;        /* last iteration the monitor saw (-1: none) */
  double f;        /* its loss */
  char perr[512];  /* the first PETSc error message */
} lbfgs;

static PetscErrorCode capture(MPI_Comm comm, int line, const char *func, const char *file,
                              PetscErrorCode n, PetscErrorType p, const char *mess, void *ctx)
{
  lbfgs *c = ctx;
  (void)comm, (void)line, (void)file;
  if (p == PETSC_ERROR_INITIAL && !c->perr[0]) {
    const char *text = NULL;
    if (!mess || !*mess || strcmp(mess, " ") == 0)
      PetscErrorMessage(n, &text, NULL);
    snprintf(c->perr, sizeof c->perr, "%s (PETSc error %d in %s)",
             text ? text : mess ? mess : "unknown error", (int)n, func ? func : "?");
  }
  return n;
}

/* Trial points of iteration k's line search are candidates for iterate
   k + 1; the first evaluation is step 0, as in the first-order loop. */
static PetscErrorCode objgrad(Tao tao, Vec X, PetscReal *f, Vec G, void *ctx)
{
  lbfgs *c = ctx;
  const PetscScalar *x;
  PetscScalar *g;
  (void)tao;
  PetscFunctionBeginUser;
  PetscCall(VecGetArrayRead(X, &x));
  PetscCall(VecGetArray(G, &g));
  int rc = sv__stage_eval(c->s, c->last + 1, x, f, g);
  PetscCall(VecRestoreArray(G, &g));
  PetscCall(VecRestoreArrayRead(X, &x));
  if (rc < 0) {
    c->failed = 1;
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_USER, "objective failed");
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode monitor(Tao tao, void *ctx)
{
  lbfgs *c = ctx;
  PetscInt its;
  PetscReal f, gnorm, cnorm, step;
  TaoConvergedReason reason;
  Vec X;
  const PetscScalar *x;
  PetscFunctionBeginUser;
  PetscCall(TaoGetSolutionStatus(tao, &its, &f, &gnorm, &cnorm, &step, &reason));
  PetscCall(TaoGetSolution(tao, &X));
  PetscCall(VecGetArrayRead(X, &x));
  int rc = sv__stage_record(c->s, (int)its, x, f, step);
  PetscCall(VecRestoreArrayRead(X, &x));
  c->last = (int)its;
  c->f = f;
  if (rc < 0) {
    c->failed = 1;
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_USER, "monitor failed");
  }
  /* an error is the one way out of TaoSolve that every TAO type honours */
  if (c->s->stop) {
    c->stopped = 1;
    SETERRQ(PETSC_COMM_SELF, PETSC_ERR_USER, "interrupted");
  }
  PetscFunctionReturn(0);
}

static PetscErrorCode solve(lbfgs *c, Tao tao, Vec X, TaoConvergedReason *reason)
{
  const sv_optim_opts *o = c->s->o;
  PetscFunctionBeginUser;
  PetscCall(TaoSetType(tao, TAOLMVM));
  PetscCall(TaoSetSolution(tao, X));
  PetscCall(TaoSetObjectiveAndGradient(tao, NULL, objgrad, c));
  /* only the absolute gradient norm: TAO's default relative test
     |g| / |f| < 1e-8 would stop early on losses far from zero */
  PetscCall(TaoSetTolerances(tao, o->gtol, 0.0, 0.0));
  PetscCall(TaoSetMaximumIterations(tao, o->max_steps));
  PetscCall(TaoSetMaximumFunctionEvaluations(tao, 100 * (PetscInt)o->max_steps + 1000));
  if (o->ftol > 0)
    PetscCall(TaoSetFunctionLowerBound(tao, o->ftol));
  PetscCall(TaoSetMonitor(tao, monitor, c, NULL));
  PetscCall(TaoSetFromOptions(tao));
  PetscCall(TaoSolve(tao));
  PetscCall(TaoGetConvergedReason(tao, reason));
  PetscFunctionReturn(0);
}

int sv__minimize_lbfgs(sv__stage *s, double *x, sv_optim_result *res)
{
  PetscBool up = PETSC_FALSE;
  if (PetscInitialized(&up) || !up)
    return sv_fail("stage %s: L-BFGS runs in PETSc TAO, but PETSc is not initialised "
                   "(PetscInitialize)", s->name);
  lbfgs c = {s, 0, 0, -1, 0, ""};
  Tao tao = NULL;
  Vec X = NULL;
  TaoConvergedReason reason = TAO_CONTINUE_ITERATING;

  PetscPushErrorHandler(capture, &c);
  PetscErrorCode ierr = TaoCreate(PETSC_COMM_SELF, &tao);
  if (!ierr)
    ierr = VecCreateSeqWithArray(PETSC_COMM_SELF, 1, (PetscInt)s->n, x, &X);
  if (!ierr)
    ierr = solve(&c, tao, X, &reason);
  VecDestroy(&X);
  TaoDestroy(&tao);
  PetscPopErrorHandler();

  if (c.failed)
    return -1; /* sv__stage_eval or _record said why */
  if (c.stopped) {
    /* no state: TAO's history cannot be saved, the stage starts over */
    memcpy(x, s->good, s->n * sizeof(double));
    res->steps = c.last;
    res->loss = c.f;
    s->stopped = 1;
    return 0;
  }
  if (ierr)
    return sv_fail("stage %s: PETSc TAO failed at step %d: %s", s->name, c.last + 1,
                   c.perr[0] ? c.perr : "unknown error");
  if (c.last < 0)
    return sv_fail("stage %s: TAO returned without evaluating the objective", s->name);

  /* the last monitored iterate: TAO may leave a rejected trial in X */
  memcpy(x, s->good, s->n * sizeof(double));
  res->steps = c.last;
  res->loss = c.f;
  res->converged = reason > 0;
  if (reason < 0 && reason != TAO_DIVERGED_MAXITS)
    sv_warn(s->r, "stage %s: TAO stopped at step %d with %s (loss %.6e)", s->name, c.last,
            TaoConvergedReasons[reason], c.f);
  return 0;
}
