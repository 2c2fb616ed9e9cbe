/*
 * kernels.c -- the convolution kernel of a discrete SSM three ways.
 *
 * The state kernels K_l = Abar^l Bbar (l < L, an N-vector each; the output
 * kernel of y = C x is C K_l) by
 *   1. the recurrence x_l = Abar x_{l-1} + Bbar u_l driven by an impulse;
 *   2. dense powers: Abar^l Bbar as the product of the squarings
 *      Abar^(2^j) over the bits of l;
 *   3. the generating function sum_{l<L} K_l z^l at L points on the unit
 *      circle, then an inverse FFT (FFTW): S4's Algorithm 1.
 * Each way rounds differently, so their agreement tests the whole chain.
 *
 * The generating function. sum_{l<L} (z Abar)^l = (I - z^L Abar^L)
 * (I - z Abar)^{-1}. The points are z_k = exp(-i pi (2k + 1) / L), the L-th
 * roots of -1: z^L = -1, so the factor is C' = I + Abar^L (computed once by
 * squaring), and neither z = 1 nor z = -1 is a node. The inverse DFT of the
 * values gives K_l exp(-i pi l / L). For the GBT family,
 *   (I - z Abar)^{-1} Bbar = dt M(z)^{-1} B,
 *   M(z) = a I - b A,  a = 1 - z,  b = dt (alpha + (1 - alpha) z),
 * a form that never divides by 1 + z. With A = V (Lambda - P~ P~*) V* (V
 * with all N columns, the conjugate halves included), M = V (D + b P~ P~*)
 * V* with D = diag(a - b lambda_n), and Woodbury:
 *   C' M^{-1} B = k00 - b k01 (I + b k11)^{-1} k10,
 *   k00 = sum_n c_n b_n / D_n,  k01_r = sum_n c_n p_rn / D_n,
 *   k10_r = sum_n conj(p_rn) b_n / D_n,  k11_rs = sum_n conj(p_rn) p_sn / D_n,
 * Cauchy sums over all N eigenvalues, evaluated from the kept half (the
 * other half is the complex conjugate of each numerator over
 * a - b conj(lambda_n)). Here c_n = (C' V)_mn for every state m at once.
 * K is real, so only the points with Im z <= 0 are evaluated; the others
 * are their conjugates.
 */
#include "ssm.h"

#include <cblas.h>
#include <fftw3.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int ssm_kernel_recurrence(int N, const double *Ab, const double *Bb, int L, double *K)
{
  if (L < 1)
    return sv_fail("kernel: length L = %d (must be >= 1)", L);
  memcpy(K, Bb, (size_t)N * sizeof *K);
  for (int l = 1; l < L; l++)
    cblas_dgemv(CblasRowMajor, CblasNoTrans, N, N, 1.0, Ab, N, K + (size_t)(l - 1) * N, 1, 0.0,
                K + (size_t)l * N, 1);
  return 0;
}

/* The squarings Abar^(2^j), j < levels, with 2^levels > L - 1. */
static double *squarings(int N, const double *Ab, int L, int *levels)
{
  int lv = 1;
  while ((1L << lv) <= L)
    lv++;
  size_t NN = (size_t)N * N;
  double *Q = malloc((size_t)lv * NN * sizeof *Q);
  if (!Q)
    return NULL;
  memcpy(Q, Ab, NN * sizeof *Q);
  for (int j = 1; j < lv; j++)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0, Q + (size_t)(j - 1) * NN,
                N, Q + (size_t)(j - 1) * NN, N, 0.0, Q + (size_t)j * NN, N);
  *levels = lv;
  return Q;
}

int ssm_kernel_powers(int N, const double *Ab, const double *Bb, int L, double *K)
{
  if (L < 1)
    return sv_fail("kernel: length L = %d (must be >= 1)", L);
  int lv;
  double *Q = squarings(N, Ab, L, &lv), *t = malloc((size_t)N * sizeof *t);
  if (!Q || !t) {
    free(Q);
    free(t);
    return sv_fail("kernel: out of memory for the powers of a %d x %d matrix", N, N);
  }
  size_t NN = (size_t)N * N;
  for (int l = 0; l < L; l++) {
    double *v = K + (size_t)l * N;
    memcpy(v, Bb, (size_t)N * sizeof *v);
    for (int j = 0; j < lv; j++)
      if (l >> j & 1) {
        cblas_dgemv(CblasRowMajor, CblasNoTrans, N, N, 1.0, Q + (size_t)j * NN, N, v, 1, 0.0, t,
                    1);
        memcpy(v, t, (size_t)N * sizeof *v);
      }
  }
  free(Q);
  free(t);
  return 0;
}

/* C' = I + Abar^L (z^L = -1), from the squarings. */
static int cprime(int N, const double *Ab, int L, double *Cp)
{
  int lv;
  double *Q = squarings(N, Ab, L, &lv), *T = malloc((size_t)N * N * sizeof *T);
  size_t NN = (size_t)N * N;
  if (!Q || !T) {
    free(Q);
    free(T);
    return sv_fail("kernel: out of memory for the powers of a %d x %d matrix", N, N);
  }
  /* Cp = Abar^L */
  memset(Cp, 0, NN * sizeof *Cp);
  for (int i = 0; i < N; i++)
    Cp[(size_t)i * N + i] = 1;
  for (int j = 0; j < lv; j++)
    if (L >> j & 1) {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0, Q + (size_t)j * NN, N,
                  Cp, N, 0.0, T, N);
      memcpy(Cp, T, NN * sizeof *Cp);
    }
  for (int i = 0; i < N; i++)
    Cp[(size_t)i * N + i] += 1;
  free(Q);
  free(T);
  return 0;
}

/* From G[k * N + m] (the generating function of state m at z_k, k < L,
   all filled) to K: inverse DFT (FFTW, unnormalised), / L, the twist. */
static int inverse_twisted(int N, int L, fftw_complex *G, double *K)
{
  int n = L;
  fftw_plan p = fftw_plan_many_dft(1, &n, N, G, NULL, N, 1, G, NULL, N, 1, FFTW_BACKWARD,
                                   FFTW_ESTIMATE);
  if (!p)
    return sv_fail("kernel: FFTW could not plan an inverse DFT of size %d", L);
  fftw_execute(p);
  fftw_destroy_plan(p);
  for (int l = 0; l < L; l++) {
    double complex tw = cexp(I * M_PI * l / L) / L;
    for (int m = 0; m < N; m++) {
      double complex g = ((double complex *)G)[(size_t)l * N + m];
      K[(size_t)l * N + m] = creal(g * tw);
    }
  }
  return 0;
}

/* The value at z_k and its conjugate at z_{L-1-k} = conj(z_k); the
   self-conjugate point z = -1 (odd L) keeps the real part. */
static void store(double complex *G, int N, int L, int k, int m, double complex g)
{
  if (L - 1 - k == k) {
    G[(size_t)k * N + m] = creal(g);
    return;
  }
  G[(size_t)k * N + m] = g;
  G[(size_t)(L - 1 - k) * N + m] = conj(g);
}

/* Solve the r x r complex system (I + b k11) y = k10 in place (r <= 4),
   Gaussian elimination with partial pivoting. */
static int small_solve(int r, double complex *M, double complex *y)
{
  for (int c = 0; c < r; c++) {
    int piv = c;
    for (int i = c + 1; i < r; i++)
      if (cabs(M[i * r + c]) > cabs(M[piv * r + c]))
        piv = i;
    if (cabs(M[piv * r + c]) == 0)
      return -1;
    if (piv != c) {
      for (int j = 0; j < r; j++) {
        double complex t = M[c * r + j];
        M[c * r + j] = M[piv * r + j];
        M[piv * r + j] = t;
      }
      double complex t = y[c];
      y[c] = y[piv];
      y[piv] = t;
    }
    for (int i = c + 1; i < r; i++) {
      double complex f = M[i * r + c] / M[c * r + c];
      for (int j = c; j < r; j++)
        M[i * r + j] -= f * M[c * r + j];
      y[i] -= f * y[c];
    }
  }
  for (int c = r - 1; c >= 0; c--) {
    for (int j = c + 1; j < r; j++)
      y[c] -= M[c * r + j] * y[j];
    y[c] /= M[c * r + c];
  }
  return 0;
}

int ssm_kernel_genfun_dplr(const ssm_nplr *d, double dt, double alpha, const double *Ab, int L,
                           double *K)
{
  if (L < 1)
    return sv_fail("kernel: length L = %d (must be >= 1)", L);
  if (!d->B)
    return sv_fail("kernel: the NPLR form has no B");
  if (alpha < 0 || alpha > 1)
    return sv_fail("kernel: the DPLR generating function needs a GBT discretisation (alpha = %g)",
                   alpha);
  int N = d->N, h = d->half, R = d->rank, rc = -1;
  size_t NN = (size_t)N * N;
  double *Cp = malloc(NN * sizeof *Cp);
  double complex *W = malloc((size_t)N * h * sizeof *W);
  double complex *q0 = malloc((size_t)h * sizeof *q0), *q1 = malloc((size_t)h * sizeof *q1);
  fftw_complex *G = fftw_malloc((size_t)L * N * sizeof *G);
  if (!Cp || !W || !q0 || !q1 || !G) {
    sv_fail("kernel: out of memory (N = %d, L = %d)", N, L);
    goto done;
  }
  if (cprime(N, Ab, L, Cp) < 0)
    goto done;
  /* W = C' V: the c_n of every state m */
  for (int m = 0; m < N; m++)
    for (int n = 0; n < h; n++) {
      double complex s = 0;
      for (int j = 0; j < N; j++)
        s += Cp[(size_t)m * N + j] * d->V[(size_t)j * h + n];
      W[(size_t)m * h + n] = s;
    }
  double complex *Gc = (double complex *)G;
  for (int k = 0; k < (L + 1) / 2; k++) {
    double complex z = cexp(-I * M_PI * (2.0 * k + 1) / L);
    double complex a = 1 - z, b = dt * (alpha + (1 - alpha) * z);
    /* q0 = 1 / D_n, q1 = 1 / D'_n (the conjugate half) */
    for (int n = 0; n < h; n++) {
      q0[n] = 1 / (a - b * d->lambda[n]);
      q1[n] = 1 / (a - b * conj(d->lambda[n]));
    }
    /* k10, k11 (state independent) */
    double complex k10[4], k11[16];
    for (int r = 0; r < R; r++) {
      const double complex *pr = d->P + (size_t)r * h;
      double complex s = 0;
      for (int n = 0; n < h; n++) {
        double complex u = conj(pr[n]) * d->B[n];
        s += u * q0[n] + conj(u) * q1[n];
      }
      k10[r] = s;
      for (int t = 0; t < R; t++) {
        const double complex *pt = d->P + (size_t)t * h;
        double complex s2 = 0;
        for (int n = 0; n < h; n++) {
          double complex u = conj(pr[n]) * pt[n];
          s2 += u * q0[n] + conj(u) * q1[n];
        }
        k11[r * R + t] = (r == t ? 1.0 : 0.0) + b * s2;
      }
    }
    if (small_solve(R, k11, k10) < 0) {
      sv_fail("kernel: the Woodbury system is singular at z = exp(-i pi %d / %d)", 2 * k + 1, L);
      goto done;
    }
    /* per state: k00 - b k01 y */
    for (int m = 0; m < N; m++) {
      const double complex *wm = W + (size_t)m * h;
      double complex s00 = 0, s01[4] = {0, 0, 0, 0};
      for (int n = 0; n < h; n++) {
        double complex u = wm[n] * d->B[n];
        s00 += u * q0[n] + conj(u) * q1[n];
        for (int r = 0; r < R; r++) {
          double complex v = wm[n] * d->P[(size_t)r * h + n];
          s01[r] += v * q0[n] + conj(v) * q1[n];
        }
      }
      double complex g = s00;
      for (int r = 0; r < R; r++)
        g -= b * s01[r] * k10[r];
      store(Gc, N, L, k, m, dt * g);
    }
  }
  rc = inverse_twisted(N, L, G, K);
done:
  free(Cp);
  free(W);
  free(q0);
  free(q1);
  fftw_free(G);
  return rc;
}

int ssm_kernel_genfun_dense(int N, const double *Ab, const double *Bb, int L, double *K)
{
  if (L < 1)
    return sv_fail("kernel: length L = %d (must be >= 1)", L);
  size_t NN = (size_t)N * N;
  int rc = -1;
  double *Cp = malloc(NN * sizeof *Cp);
  double complex *M = malloc(NN * sizeof *M), *y = malloc((size_t)N * sizeof *y);
  lapack_int *ipiv = malloc((size_t)N * sizeof *ipiv);
  fftw_complex *G = fftw_malloc((size_t)L * N * sizeof *G);
  if (!Cp || !M || !y || !ipiv || !G) {
    sv_fail("kernel: out of memory (N = %d, L = %d)", N, L);
    goto done;
  }
  if (cprime(N, Ab, L, Cp) < 0)
    goto done;
  double complex *Gc = (double complex *)G;
  for (int k = 0; k < (L + 1) / 2; k++) {
    double complex z = cexp(-I * M_PI * (2.0 * k + 1) / L);
    for (int i = 0; i < N; i++) {
      for (int j = 0; j < N; j++)
        M[(size_t)i * N + j] = (i == j ? 1.0 : 0.0) - z * Ab[(size_t)i * N + j];
      y[i] = Bb[i];
    }
    lapack_int info = LAPACKE_zgesv(LAPACK_ROW_MAJOR, N, 1, M, N, ipiv, y, 1);
    if (info != 0) {
      sv_fail("kernel: I - z Abar is singular at z = exp(-i pi %d / %d) (LAPACK zgesv info %d)",
              2 * k + 1, L, (int)info);
      goto done;
    }
    for (int m = 0; m < N; m++) {
      double complex g = 0;
      for (int j = 0; j < N; j++)
        g += Cp[(size_t)m * N + j] * y[j];
      store(Gc, N, L, k, m, g);
    }
  }
  rc = inverse_twisted(N, L, G, K);
done:
  free(Cp);
  free(M);
  free(y);
  free(ipiv);
  fftw_free(G);
  return rc;
}

double ssm_kernel_disagreement(size_t n, const double *K1, const double *K2)
{
  double d = 0, m = 0;
  for (size_t i = 0; i < n; i++) {
    d = fmax(d, fabs(K1[i] - K2[i]));
    m = fmax(m, fabs(K1[i]));
  }
  if (isnan(d))
    return NAN;
  return m > 0 ? d / m : d;
}
