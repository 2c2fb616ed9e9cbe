/*
 * test_mpi_data.c -- minibatches and classifier evaluation on several
 * ranks; test_mpi_data.sh runs it on 1, 2 and 3 ranks and compares.
 *
 *   test_mpi_data RESULTS OUTDIR
 *
 * Writes on rank 0, to RESULTS: for 12 steps of shuffled batches (23
 * examples in batches of 5, the last of each epoch partial), the whole
 * batch gathered from the ranks' shares; the evaluation of a fixed scoring
 * rule over 37 examples (accuracy, confusion, predictions); and how a
 * predict function that fails on one example is reported (on every rank,
 * with one message). OUTDIR gets the report's CSV files. A plain main (no
 * Check): Check's fork mode does not work under mpiexec.
 */
#include "internal.h"

#include <math.h>
#include <petscsys.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 37
#define K 4

/* Scores that depend on the example alone: x = (i, i mod 5); the argmax
   is right for most, wrong for some, tied for others. */
static int predict(void *ctx, int count, const double *x, double *s)
{
  int fail_at = *(const int *)ctx;
  for (int j = 0; j < count; j++) {
    int i = (int)x[2 * j];
    if (i == fail_at)
      return sv_fail("no score for example %d", i);
    for (int k = 0; k < K; k++)
      s[K * j + k] = (k == i % K ? 2.0 : 0.0) + (k == (int)x[2 * j + 1] % K ? 2.0 : 0.0) +
                     0.1 * sin(i + 3.0 * k);
  }
  return 0;
}

static int batches(sv_run *r, FILE *out)
{
  sv_batches *b = sv_batches_new(r, 23, 5, 0, 9);
  if (!b)
    return -1;
  int rc = 0;
  for (long s = 0; s < 12 && rc == 0; s++) {
    const int *idx;
    int count, global;
    long epoch;
    double mine[5], all[5];
    if ((rc = sv_batches_get(b, s, &idx, &count, &global, &epoch)) < 0)
      break;
    for (int i = 0; i < count; i++)
      mine[i] = idx[i];
    if ((rc = sv_allgather(r, mine, count, all)) < 0)
      break;
    if (out) {
      fprintf(out, "step %ld epoch %ld size %d:", s, epoch, global);
      for (int i = 0; i < global; i++)
        fprintf(out, " %.0f", all[i]);
      fprintf(out, "\n");
    }
  }
  sv_batches_free(b);
  return rc;
}

static int evaluate(sv_run *r, FILE *out)
{
  double x[2 * N];
  int y[N];
  for (int i = 0; i < N; i++) {
    x[2 * i] = i;
    x[2 * i + 1] = i % 5;
    y[i] = i % K;
  }
  sv_dataset d = {N, 1, {2, 1, 1}, 2, x, y, K};
  int fail_at = -1;
  sv_eval e;
  if (sv_evaluate_classifier(r, &d, 4, predict, &fail_at, &e) < 0)
    return -1;
  if (out) {
    fprintf(out, "accuracy %.17g correct %d of %d\nconfusion", e.accuracy, e.correct, e.n);
    for (int i = 0; i < K * K; i++)
      fprintf(out, " %ld", e.confusion[i]);
    fprintf(out, "\npred");
    for (int i = 0; i < N; i++)
      fprintf(out, " %d", e.pred[i]);
    fprintf(out, "\n");
  }
  int rc = sv_eval_report(r, &e, "test", NULL);
  sv_eval_free(&e);
  if (rc < 0)
    return -1;

  /* Example 30 is on the last rank: every rank fails, with its message. */
  fail_at = 30;
  rc = sv_evaluate_classifier(r, &d, 4, predict, &fail_at, &e);
  double failed = rc < 0;
  if (sv_allreduce_sum(r, &failed, 1) < 0)
    return -1;
  if (out) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", sv_errmsg());
    /* the rank it happened on differs with the rank count */
    char *on = strstr(msg, " (on rank ");
    int has_rank = on != NULL;
    if (on)
      *on = '\0';
    fprintf(out, "failing predict: %s on %.0f of the ranks, rank named: %s, message: %s\n",
            failed == sv_run_size(r) ? "fails" : "DOES NOT FAIL", failed,
            has_rank == (sv_run_size(r) > 1) ? "as expected" : "WRONG", msg);
  }
  return 0;
}

int main(int argc, char **argv)
{
  if (PetscInitialize(&argc, &argv, NULL, NULL) != 0)
    return 2;
  if (argc != 3) {
    fprintf(stderr, "usage: test_mpi_data RESULTS OUTDIR\n");
    PetscFinalize();
    return 2;
  }
  int rc = 1;
  FILE *out = NULL;
  sv_run *r = sv__run_new(PETSC_COMM_WORLD, argv[2], 5);
  if (!r)
    goto done;
  if (sv_run_rank(r) == 0 && !(out = fopen(argv[1], "w"))) {
    fprintf(stderr, "test_mpi_data: cannot write %s\n", argv[1]);
    goto done;
  }
  if (batches(r, out) < 0 || evaluate(r, out) < 0)
    goto done;
  rc = 0;
done:
  if (rc)
    fprintf(stderr, "test_mpi_data (rank %d): %s\n", r ? sv_run_rank(r) : -1, sv_errmsg());
  if (out && fclose(out) != 0)
    rc = 1;
  sv__run_free(r);
  PetscFinalize();
  return rc;
}
