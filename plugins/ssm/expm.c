/*
 * expm.c -- the matrix exponential: the [13/13] Pade approximant with
 * scaling and squaring (N. J. Higham, "The scaling and squaring method for
 * the matrix exponential revisited", SIAM J. Matrix Anal. Appl. 26 (2005),
 * the method of MATLAB's and SciPy's expm). Products through CBLAS
 * (dgemm), the Pade system (V - U) X = V + U through LAPACK (dgesv).
 */
#include "ssm.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void mm(int n, const double *a, const double *b, double *c)
{
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n);
}

int ssm_expm(int n, const double *A, double *E)
{
  /* Higham's b_k for degree 13 and its theta_13 */
  static const double b[14] = {64764752532480000.0, 32382376266240000.0, 7771770303897600.0,
                               1187353796428800.0,  129060195264000.0,   10559470521600.0,
                               670442572800.0,      33522128640.0,       1323241920.0,
                               40840800.0,          960960.0,            16380.0,
                               182.0,               1.0};
  const double theta13 = 5.371920351148152;
  if (n < 1)
    return sv_fail("expm: matrix size %d", n);
  size_t nn = (size_t)n * n;
  double *w = malloc(8 * nn * sizeof *w);
  lapack_int *ipiv = malloc((size_t)n * sizeof *ipiv);
  if (!w || !ipiv) {
    free(w);
    free(ipiv);
    return sv_fail("expm: out of memory for a %d x %d matrix", n, n);
  }
  double *As = w, *A2 = w + nn, *A4 = w + 2 * nn, *A6 = w + 3 * nn, *U = w + 4 * nn,
         *V = w + 5 * nn, *T = w + 6 * nn, *T2 = w + 7 * nn;

  /* the 1-norm decides the scaling 2^-s */
  double norm1 = 0;
  for (int j = 0; j < n; j++) {
    double s = 0;
    for (int i = 0; i < n; i++)
      s += fabs(A[(size_t)i * n + j]);
    norm1 = fmax(norm1, s);
  }
  if (!isfinite(norm1)) {
    free(w);
    free(ipiv);
    return sv_fail("expm: the matrix has a NaN or an infinite entry");
  }
  int s = norm1 > theta13 ? (int)ceil(log2(norm1 / theta13)) : 0;
  double scale = ldexp(1.0, -s);
  for (size_t k = 0; k < nn; k++)
    As[k] = A[k] * scale;
  mm(n, As, As, A2);
  mm(n, A2, A2, A4);
  mm(n, A2, A4, A6);

  /* U = A [A6 (b13 A6 + b11 A4 + b9 A2) + b7 A6 + b5 A4 + b3 A2 + b1 I]
     V =    A6 (b12 A6 + b10 A4 + b8 A2) + b6 A6 + b4 A4 + b2 A2 + b0 I */
  for (size_t k = 0; k < nn; k++)
    T[k] = b[13] * A6[k] + b[11] * A4[k] + b[9] * A2[k];
  mm(n, A6, T, T2);
  for (size_t k = 0; k < nn; k++)
    T2[k] += b[7] * A6[k] + b[5] * A4[k] + b[3] * A2[k];
  for (int i = 0; i < n; i++)
    T2[(size_t)i * n + i] += b[1];
  mm(n, As, T2, U);
  for (size_t k = 0; k < nn; k++)
    T[k] = b[12] * A6[k] + b[10] * A4[k] + b[8] * A2[k];
  mm(n, A6, T, V);
  for (size_t k = 0; k < nn; k++)
    V[k] += b[6] * A6[k] + b[4] * A4[k] + b[2] * A2[k];
  for (int i = 0; i < n; i++)
    V[(size_t)i * n + i] += b[0];

  /* (V - U) X = V + U */
  for (size_t k = 0; k < nn; k++) {
    T[k] = V[k] - U[k];
    E[k] = V[k] + U[k];
  }
  lapack_int info = LAPACKE_dgesv(LAPACK_ROW_MAJOR, n, n, T, n, ipiv, E, n);
  if (info != 0) {
    free(w);
    free(ipiv);
    return sv_fail("expm: LAPACK dgesv failed on the Pade system (info %d)", (int)info);
  }
  for (int k = 0; k < s; k++) {
    mm(n, E, E, T);
    memcpy(E, T, nn * sizeof *E);
  }
  free(w);
  free(ipiv);
  return 0;
}
