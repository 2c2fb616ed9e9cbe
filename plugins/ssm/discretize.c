/*
 * discretize.c -- from x' = A x + B u to x_k = Abar x_{k-1} + Bbar u_k.
 *
 *   GBT (alpha):  Abar = (I - alpha dt A)^{-1} (I + (1 - alpha) dt A),
 *                 Bbar = (I - alpha dt A)^{-1} dt B
 *                 (bilinear alpha = 1/2, forward Euler 0, backward Euler 1);
 *   ZOH:          Abar = e^{dt A}, Bbar = A^{-1} (e^{dt A} - I) B, both read off
 *                 exp(dt [[A, B], [0, 0]]) = [[Abar, Bbar], [0, 1]], which
 *                 needs no inverse of A (FouT's A is singular).
 *
 * And the O(N) step of LegS: with r_n = sqrt(2n + 1), (A x)_n =
 * -r_n sum_{k<n} r_k x_k - (n + 1) x_n, so a multiplication by I + b A is
 * one pass of prefix sums and a solve with I - g A a substitution whose
 * prefix sums run along with it.
 */
#include "ssm.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int ssm_discretize(ssm_disc d, int N, const double *A, const double *B, double dt, double *Ab,
                   double *Bb)
{
  if (!(dt > 0) || !isfinite(dt))
    return sv_fail("discretisation: step dt = %g (must be a finite number > 0)", dt);
  if (d == SSM_ZOH) {
    int M = N + 1;
    double *X = calloc((size_t)M * M, sizeof *X), *E = malloc((size_t)M * M * sizeof *E);
    if (!X || !E) {
      free(X);
      free(E);
      return sv_fail("discretisation: out of memory for N = %d", N);
    }
    for (int i = 0; i < N; i++) {
      for (int j = 0; j < N; j++)
        X[(size_t)i * M + j] = dt * A[(size_t)i * N + j];
      X[(size_t)i * M + N] = dt * B[i];
    }
    int rc = ssm_expm(M, X, E);
    if (rc == 0)
      for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++)
          Ab[(size_t)i * N + j] = E[(size_t)i * M + j];
        Bb[i] = E[(size_t)i * M + N];
      }
    free(X);
    free(E);
    return rc;
  }
  double alpha = ssm_disc_alpha(d);
  if (alpha < 0)
    return sv_fail("discretisation: unknown method %d", (int)d);
  int M = N + 1;
  double *L = malloc((size_t)N * N * sizeof *L), *R = malloc((size_t)N * M * sizeof *R);
  lapack_int *ipiv = malloc((size_t)N * sizeof *ipiv);
  if (!L || !R || !ipiv) {
    free(L);
    free(R);
    free(ipiv);
    return sv_fail("discretisation: out of memory for N = %d", N);
  }
  for (int i = 0; i < N; i++) {
    for (int j = 0; j < N; j++) {
      double a = A[(size_t)i * N + j], e = i == j ? 1.0 : 0.0;
      L[(size_t)i * N + j] = e - alpha * dt * a;
      R[(size_t)i * M + j] = e + (1 - alpha) * dt * a;
    }
    R[(size_t)i * M + N] = dt * B[i];
  }
  lapack_int info = LAPACKE_dgesv(LAPACK_ROW_MAJOR, N, M, L, N, ipiv, R, M);
  if (info == 0)
    for (int i = 0; i < N; i++) {
      for (int j = 0; j < N; j++)
        Ab[(size_t)i * N + j] = R[(size_t)i * M + j];
      Bb[i] = R[(size_t)i * M + N];
    }
  free(L);
  free(R);
  free(ipiv);
  if (info != 0)
    return sv_fail("discretisation %s: I - %g dt A is singular (LAPACK dgesv info %d)",
                   ssm_disc_name(d), alpha, (int)info);
  return 0;
}

void ssm_legs_step(int N, double alpha, double c, double u, double *x)
{
  double b = (1 - alpha) * c, g = alpha * c, S = 0, T = 0;
  /* y = (I + b A) x + c B u, overwriting x (S: prefix sum of r_k x_k over
     the old values), then z = (I - g A)^{-1} y in place (T: prefix sum of
     r_k z_k over the new values) in the same pass */
  for (int n = 0; n < N; n++) {
    double r = sqrt(2.0 * n + 1), xn = x[n];
    double y = xn + b * (-r * S - (n + 1.0) * xn) + c * r * u;
    S += r * xn;
    double z = (y - g * r * T) / (1 + g * (n + 1.0));
    T += r * z;
    x[n] = z;
  }
}

int ssm_dense_step(int N, const double *A, const double *B, double alpha, double c, double u,
                   double *x, double *work, int *ipiv)
{
  double *M = work, *y = work + (size_t)N * N;
  /* y = x + (1 - alpha) c A x + c B u */
  for (int i = 0; i < N; i++)
    y[i] = x[i] + c * B[i] * u;
  cblas_dgemv(CblasRowMajor, CblasNoTrans, N, N, (1 - alpha) * c, A, N, x, 1, 1.0, y, 1);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      M[(size_t)i * N + j] = (i == j ? 1.0 : 0.0) - alpha * c * A[(size_t)i * N + j];
  lapack_int info = LAPACKE_dgesv(LAPACK_ROW_MAJOR, N, 1, M, N, (lapack_int *)ipiv, y, 1);
  if (info != 0)
    return sv_fail("dense step: I - alpha c A is singular (LAPACK dgesv info %d)", (int)info);
  memcpy(x, y, (size_t)N * sizeof *x);
  return 0;
}
