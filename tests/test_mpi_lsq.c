/*
 * test_mpi_lsq.c -- a least-squares fit whose data points are split over
 * the ranks; test_mpi.sh runs it on 1 and 2 ranks and compares.
 *
 *   test_mpi_lsq RESULTS OUTDIR
 *
 * Fits y = A exp(-k t) + c to 41 perturbed points (a nonzero residual, so
 * every point matters) with Levenberg-Marquardt, then Adam (300 steps) and
 * L-BFGS from the same start, and writes on rank 0 one line per stage to
 * RESULTS: the stage name, A, k, c and the loss, each with %.17g. The
 * objective is this rank's share only: the sums over ranks are the
 * optimizer layer's job. A plain main (no Check): Check's fork mode does
 * not work under mpiexec.
 */
#include "internal.h"

#include <math.h>
#include <petscsys.h>
#include <stdio.h>
#include <stdlib.h>

#define NPTS 41

typedef struct {
  int first, count;
  double t[NPTS], y[NPTS];
} data;

/* residuals scaled by 1/sqrt(N): the loss is the mean square over all
   points, whichever rank holds them */
static int res(void *ctx, const double *th, double *r, double *J)
{
  data *d = ctx;
  double s = 1 / sqrt(NPTS);
  for (int i = 0; i < d->count; i++) {
    double t = d->t[d->first + i], ex = exp(-th[1] * t);
    r[i] = s * (th[0] * ex + th[2] - d->y[d->first + i]);
    if (J) {
      J[3 * i + 0] = s * ex;
      J[3 * i + 1] = -s * th[0] * t * ex;
      J[3 * i + 2] = s;
    }
  }
  return 0;
}

static int loss_grad(void *ctx, const double *th, double *f, double *g)
{
  data *d = ctx;
  double r[NPTS], J[3 * NPTS];
  res(ctx, th, r, J);
  *f = 0;
  if (g)
    g[0] = g[1] = g[2] = 0;
  for (int i = 0; i < d->count; i++) {
    *f += r[i] * r[i];
    if (g)
      for (int j = 0; j < 3; j++)
        g[j] += 2 * r[i] * J[3 * i + j];
  }
  return 0;
}

static int fit(sv_run *r, sv_params *p, const sv_objective *obj, sv_optim_kind kind, FILE *out)
{
  static const double start[3] = {1, 0.5, 0};
  double *x = sv_params_data(p);
  for (int j = 0; j < 3; j++)
    x[j] = start[j];
  sv_optim_opts o;
  sv_optim_defaults(&o, kind);
  if (kind == SV_OPTIM_ADAM) {
    o.lr = 0.05;
    o.max_steps = 300;
  }
  sv_optim_result res;
  if (sv_minimize(r, p, obj, &o, &res) < 0)
    return -1;
  if (out)
    fprintf(out, "%s %.17g %.17g %.17g %.17g\n", sv_optim_name(kind), x[0], x[1], x[2], res.loss);
  return 0;
}

int main(int argc, char **argv)
{
  if (PetscInitialize(&argc, &argv, NULL, NULL) != 0)
    return 2;
  int rc = 1;
  if (argc != 3) {
    fprintf(stderr, "usage: test_mpi_lsq RESULTS OUTDIR\n");
    PetscFinalize();
    return 2;
  }
  sv_run *r = sv__run_new(PETSC_COMM_WORLD, argv[2], 1);
  sv_graph *g = sv_graph_new();
  sv_params *p = sv_params_new();
  int three = 3;
  FILE *out = NULL;
  if (!r || !sv_param(g, p, "theta", 1, &three) || !sv_params_data(p))
    goto done;

  data d;
  for (int i = 0; i < NPTS; i++) {
    d.t[i] = 0.1 * i;
    d.y[i] = 2.5 * exp(-1.3 * d.t[i]) + 0.5 + 0.02 * sin(7.0 * i);
  }
  sv_run_partition(r, NPTS, &d.first, &d.count);
  sv_objective obj = {3, (size_t)d.count, loss_grad, res, &d};

  if (sv_run_rank(r) == 0 && !(out = fopen(argv[1], "w"))) {
    fprintf(stderr, "test_mpi_lsq: cannot write %s\n", argv[1]);
    goto done;
  }
  if (fit(r, p, &obj, SV_OPTIM_LM, out) < 0 || fit(r, p, &obj, SV_OPTIM_ADAM, out) < 0 ||
      fit(r, p, &obj, SV_OPTIM_LBFGS, out) < 0)
    goto done;
  rc = 0;
done:
  if (rc)
    fprintf(stderr, "test_mpi_lsq (rank %d): %s\n", r ? sv_run_rank(r) : -1, sv_errmsg());
  if (out && fclose(out) != 0)
    rc = 1;
  sv_params_free(p);
  sv_graph_free(g);
  sv__run_free(r);
  PetscFinalize();
  return rc;
}
