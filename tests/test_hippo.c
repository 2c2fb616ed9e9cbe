/*
 * test_hippo.c -- the HiPPO operators of plugins/ssm (libssm) against the
 * spec's test vectors and against each other:
 *
 *   - LegS N = 4 (A, B) and LegT at the reference code's scale N = 4 (first
 *     row of A, B) to the digits the spec gives; the structure of LagT and
 *     FouT (the dead state, the two scales);
 *   - the NPLR form: LegS N = 8 Lambda to the spec's digits, A rebuilt from
 *     V, Lambda, P to 1e-13 for every measure at several N, normalised
 *     phases (the first non-zero entry of V* P real and positive), V* B for
 *     LegS equal to sqrt 2 V* P (B = sqrt 2 P), odd N refused;
 *   - the S4D initialisations (lin, inv, real by formula; legs = Lambda);
 *   - the matrix exponential against closed forms (a rotation, a diagonal
 *     matrix in a rotated basis, e^A = (e^{A/2})^2 at a large norm), ZOH
 *     against A^{-1} (e^{dt A} - I) B;
 *   - the impulse response e^{tA} B against the closed-form bases (LegS and
 *     LagT exactly, 1e-10);
 *   - the kernels three ways (recurrence, powers, generating function) for
 *     every measure and discretisation, both scales: 1e-10 relative;
 *   - the O(N) LegS step against the dense step: 1e-12;
 *   - the white-noise generators: starts at 0, no power above the cutoff,
 *     rms near the target over many draws; the nengo signal is exactly the
 *     sum of its modes weighted by the generator's draws.
 */
#include "ssm.h"

#include <check.h>
#include <fftw3.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double *dalloc(size_t n)
{
  double *p = calloc(n ? n : 1, sizeof(double));
  ck_assert_ptr_nonnull(p);
  return p;
}

/* ------------------------------------------------------------------ */
/* The spec's test vectors                                             */
/* ------------------------------------------------------------------ */

START_TEST(test_legs_n4)
{
  /* specs/hippo.md: to the 6 decimals given */
  static const double A4[16] = {-1, 0, 0, 0, -1.732051, -2, 0, 0, -2.236068, -3.872983, -3, 0,
                                -2.645751, -4.582576, -5.916080, -4};
  static const double B4[4] = {1, 1.732051, 2.236068, 2.645751};
  double A[16], B[4];
  ck_assert_int_eq(ssm_hippo_AB(SSM_LEGS, SSM_SCALE_PAPER, 4, A, B), 0);
  for (int i = 0; i < 16; i++)
    ck_assert_msg(fabs(A[i] - A4[i]) <= 5e-7, "LegS A[%d] = %.9f, spec %.6f", i, A[i], A4[i]);
  for (int i = 0; i < 4; i++)
    ck_assert_msg(fabs(B[i] - B4[i]) <= 5e-7, "LegS B[%d] = %.9f, spec %.6f", i, B[i], B4[i]);
  /* the s4 scale does not change LegS */
  double A2[16], B2[4];
  ck_assert_int_eq(ssm_hippo_AB(SSM_LEGS, SSM_SCALE_S4, 4, A2, B2), 0);
  ck_assert(memcmp(A, A2, sizeof A) == 0 && memcmp(B, B2, sizeof B) == 0);
}
END_TEST

START_TEST(test_legt_n4)
{
  static const double row[4] = {-0.5, 0.866025, -1.118034, 1.322876};
  static const double B4[4] = {0.5, 0.866025, 1.118034, 1.322876};
  double A[16], B[4], Ap[16], Bp[4];
  ck_assert_int_eq(ssm_hippo_AB(SSM_LEGT, SSM_SCALE_S4, 4, A, B), 0);
  for (int k = 0; k < 4; k++) {
    ck_assert_msg(fabs(A[k] - row[k]) <= 5e-7, "LegT A[0][%d] = %.9f, spec %.6f", k, A[k], row[k]);
    ck_assert_msg(fabs(B[k] - B4[k]) <= 5e-7, "LegT B[%d] = %.9f, spec %.6f", k, B[k], B4[k]);
  }
  /* the paper's scale is twice the reference code's */
  ck_assert_int_eq(ssm_hippo_AB(SSM_LEGT, SSM_SCALE_PAPER, 4, Ap, Bp), 0);
  for (int i = 0; i < 16; i++)
    ck_assert_double_eq_tol(Ap[i], 2 * A[i], 1e-15);
  for (int i = 0; i < 4; i++)
    ck_assert_double_eq_tol(Bp[i], 2 * B[i], 1e-15);
  /* A_nk = -r_n r_k below and on the diagonal, -r_n r_k (-1)^(n-k) above */
  for (int n = 0; n < 4; n++)
    for (int k = 0; k < 4; k++) {
      double r = sqrt((2.0 * n + 1) * (2.0 * k + 1)), s = n >= k ? 1 : ((k - n) % 2 ? -1 : 1);
      ck_assert_double_eq_tol(Ap[n * 4 + k], -r * s, 1e-14);
    }
}
END_TEST

START_TEST(test_lagt_fout_structure)
{
  int N = 8;
  double A[64], B[8];
  ck_assert_int_eq(ssm_hippo_AB(SSM_LAGT, SSM_SCALE_PAPER, N, A, B), 0);
  for (int n = 0; n < N; n++) {
    ck_assert_double_eq(B[n], 1.0);
    for (int k = 0; k < N; k++)
      ck_assert_double_eq(A[n * N + k], n > k ? -1.0 : n == k ? -0.5 : 0.0);
  }
  /* FouT, paper scale: 2 pi R - 2 b b^T, B = 2 b; state 1 is dead */
  double b[8] = {1, 0, sqrt(2.0), 0, sqrt(2.0), 0, sqrt(2.0), 0}, As[64], Bs[8];
  ck_assert_int_eq(ssm_hippo_AB(SSM_FOUT, SSM_SCALE_PAPER, N, A, B), 0);
  ck_assert_int_eq(ssm_hippo_AB(SSM_FOUT, SSM_SCALE_S4, N, As, Bs), 0);
  for (int n = 0; n < N; n++) {
    ck_assert_double_eq_tol(B[n], 2 * b[n], 1e-15);
    ck_assert_double_eq_tol(Bs[n], b[n], 1e-15);
    for (int k = 0; k < N; k++) {
      double R = (n % 2 == 0 && k == n + 1) ? -(n / 2) : (n % 2 == 1 && k == n - 1) ? (n - 1) / 2 : 0;
      ck_assert_double_eq_tol(A[n * N + k], 2 * M_PI * R - 2 * b[n] * b[k], 1e-14);
      ck_assert_double_eq_tol(As[n * N + k], M_PI * R - b[n] * b[k], 1e-14);
    }
    ck_assert_double_eq(A[1 * N + n], 0.0);
    ck_assert_double_eq(A[n * N + 1], 0.0);
  }
  ck_assert_double_eq(B[1], 0.0);
  ck_assert_double_eq_tol(A[2 * N + 3], -2 * M_PI, 1e-14);
  ck_assert_double_eq_tol(A[3 * N + 2], 2 * M_PI, 1e-14);
}
END_TEST

/* ------------------------------------------------------------------ */
/* NPLR                                                                */
/* ------------------------------------------------------------------ */

static void nplr_of(ssm_measure m, ssm_scale sc, int N, ssm_nplr *d)
{
  int R = ssm_hippo_rank(m);
  double *A = dalloc((size_t)N * N), *B = dalloc((size_t)N), *P = dalloc((size_t)R * N);
  ck_assert_int_eq(ssm_hippo_AB(m, sc, N, A, B), 0);
  ck_assert_int_eq(ssm_hippo_P(m, sc, N, P), 0);
  ck_assert_msg(ssm_nplr_new(N, A, B, R, P, d) == 0, "NPLR %s N=%d: %s", ssm_measure_name(m), N,
                sv_errmsg());
  free(A);
  free(B);
  free(P);
}

START_TEST(test_legs_lambda_n8)
{
  /* specs/hippo.md: Lambda = -1/2 +- i{0.42748871, 1.95779415, 5.35420852, 19.85741037} */
  static const double im[4] = {0.42748871, 1.95779415, 5.35420852, 19.85741037};
  ssm_nplr d;
  nplr_of(SSM_LEGS, SSM_SCALE_PAPER, 8, &d);
  ck_assert_int_eq(d.half, 4);
  double got[4];
  for (int n = 0; n < 4; n++) {
    ck_assert_msg(fabs(creal(d.lambda[n]) + 0.5) < 1e-13, "Re lambda %d = %.17g", n,
                  creal(d.lambda[n]));
    ck_assert_msg(cimag(d.lambda[n]) < 0, "kept half: Im lambda %d = %g", n, cimag(d.lambda[n]));
    got[n] = -cimag(d.lambda[n]);
  }
  /* sorted by magnitude for the comparison */
  for (int a = 0; a < 4; a++)
    for (int b = a + 1; b < 4; b++)
      if (got[b] < got[a]) {
        double t = got[a];
        got[a] = got[b];
        got[b] = t;
      }
  for (int n = 0; n < 4; n++)
    ck_assert_msg(fabs(got[n] - im[n]) <= 5e-9, "LegS N=8 |Im lambda| = %.10f, spec %.8f", got[n],
                  im[n]);
  ssm_nplr_free(&d);
}
END_TEST

START_TEST(test_nplr_all)
{
  static const int Ns[] = {2, 4, 8, 16, 64};
  for (int m = 0; m < SSM_NMEASURES; m++)
    for (int sc = 0; sc < 2; sc++)
      for (size_t q = 0; q < sizeof Ns / sizeof *Ns; q++) {
        int N = Ns[q];
        ssm_nplr d;
        nplr_of((ssm_measure)m, (ssm_scale)sc, N, &d);
        char tag[64];
        snprintf(tag, sizeof tag, "%s/%s N=%d", ssm_measure_name((ssm_measure)m),
                 ssm_scale_name((ssm_scale)sc), N);
        ck_assert_msg(d.recon_error < 1e-13, "%s: reconstruction error %.3g", tag, d.recon_error);
        ck_assert_msg(d.skew_error < 1e-14, "%s: skew error %.3g", tag, d.skew_error);
        /* orthonormal columns: V* V = I (N/2 x N/2), and V^T V = 0 (each
           column orthogonal to every conjugate), to the eigensolver's
           accuracy: about N eps |S| / gap, the gap between an eigenvalue
           and its conjugate being 2 min |Im lambda| (zero eigenvalues are
           paired exactly) */
        double wmax = 0, wmin = INFINITY;
        for (int n = 0; n < d.half; n++) {
          double w = fabs(cimag(d.lambda[n]));
          wmax = fmax(wmax, w);
          if (w > 0)
            wmin = fmin(wmin, w);
        }
        double otol = fmax(1e-14, 10 * N * 2.2e-16 * wmax / (2 * wmin));
        for (int a = 0; a < d.half; a++)
          for (int b = 0; b < d.half; b++) {
            double complex s = 0, t = 0;
            for (int j = 0; j < N; j++) {
              s += conj(d.V[j * d.half + a]) * d.V[j * d.half + b];
              t += d.V[j * d.half + a] * d.V[j * d.half + b];
            }
            ck_assert_msg(cabs(s - (a == b ? 1.0 : 0.0)) < 1e-13, "%s: V*V[%d][%d] = %g%+gi", tag,
                          a, b, creal(s), cimag(s));
            ck_assert_msg(cabs(t) < otol, "%s: V^T V[%d][%d] = %g (tolerance %.2g)", tag, a, b,
                          cabs(t), otol);
          }
        /* phases: the first non-zero (V* P_r)_n is real and positive */
        for (int n = 0; n < d.half; n++) {
          int found = 0;
          for (int r = 0; r < d.rank && !found; r++) {
            double complex p = d.P[r * d.half + n];
            if (cabs(p) > 1e-10) {
              found = 1;
              ck_assert_msg(creal(p) > 0 && fabs(cimag(p)) < 1e-14 * cabs(p),
                            "%s: (V* P_%d)_%d = %g%+gi is not real and positive", tag, r, n,
                            creal(p), cimag(p));
            }
          }
        }
        ssm_nplr_free(&d);
      }
}
END_TEST

START_TEST(test_nplr_legs_products)
{
  /* B = sqrt 2 P for LegS, so V* B = sqrt 2 V* P and B~ conj(P~) = sqrt 2 |P~|^2 */
  ssm_nplr d;
  nplr_of(SSM_LEGS, SSM_SCALE_PAPER, 16, &d);
  for (int n = 0; n < d.half; n++) {
    double complex bp = d.B[n] * conj(d.P[n]);
    double p2 = creal(d.P[n] * conj(d.P[n]));
    ck_assert_msg(cabs(bp - sqrt(2.0) * p2) < 1e-13, "B~ conj(P~) = %g%+gi, sqrt2 |P~|^2 = %g",
                  creal(bp), cimag(bp), sqrt(2.0) * p2);
  }
  /* sum |P~_n|^2 over both halves = |P|^2 = sum (n + 1/2) = N^2 / 2 */
  double s = 0;
  for (int n = 0; n < d.half; n++)
    s += 2 * creal(d.P[n] * conj(d.P[n]));
  ck_assert_double_eq_tol(s, 16.0 * 16 / 2, 1e-11);
  ssm_nplr_free(&d);
}
END_TEST

START_TEST(test_nplr_refusals)
{
  double A[9] = {0}, B[3] = {0}, P[3] = {0};
  ssm_nplr d;
  ck_assert_int_eq(ssm_nplr_new(3, A, B, 1, P, &d), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "even"));
  /* not skew plus identity */
  double A2[4] = {-1, 2, 0, -1}, P2[2] = {0, 0};
  ck_assert_int_eq(ssm_nplr_new(2, A2, B, 1, P2, &d), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "skew"));
  double complex a[4], b[4];
  ck_assert_int_eq(ssm_s4d_init(SSM_INIT_LIN, 7, a, b), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "even"));
}
END_TEST

START_TEST(test_s4d_inits)
{
  int N = 16, h = 8;
  double complex A[8], B[8];
  ck_assert_int_eq(ssm_s4d_init(SSM_INIT_LIN, N, A, B), 0);
  for (int n = 0; n < h; n++) {
    ck_assert(cabs(A[n] - (-0.5 - I * M_PI * n)) < 1e-15 && B[n] == 1);
  }
  ck_assert_int_eq(ssm_s4d_init(SSM_INIT_INV, N, A, B), 0);
  for (int n = 0; n < h; n++)
    ck_assert(cabs(A[n] - (-0.5 - I * (N / M_PI) * ((double)N / (2 * n + 1) - 1))) < 1e-13);
  ck_assert_int_eq(ssm_s4d_init(SSM_INIT_REAL, N, A, B), 0);
  for (int n = 0; n < h; n++)
    ck_assert(A[n] == -(n + 1.0) && B[n] == 1);
  ssm_nplr d;
  nplr_of(SSM_LEGS, SSM_SCALE_PAPER, N, &d);
  ck_assert_int_eq(ssm_s4d_init(SSM_INIT_LEGS, N, A, B), 0);
  for (int n = 0; n < h; n++)
    ck_assert(cabs(A[n] - d.lambda[n]) < 1e-15 && cabs(B[n] - d.B[n]) < 1e-15);
  ssm_nplr_free(&d);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Matrix exponential and discretisation                               */
/* ------------------------------------------------------------------ */

static double maxdiff(size_t n, const double *a, const double *b)
{
  double d = 0;
  for (size_t i = 0; i < n; i++)
    d = fmax(d, fabs(a[i] - b[i]));
  return d;
}

START_TEST(test_expm)
{
  /* a rotation generator */
  double t = 2.7, R[4] = {0, -t, t, 0}, E[4];
  ck_assert_int_eq(ssm_expm(2, R, E), 0);
  double ref[4] = {cos(t), -sin(t), sin(t), cos(t)};
  ck_assert_msg(maxdiff(4, E, ref) < 1e-15, "expm(rotation) off by %g", maxdiff(4, E, ref));
  /* Q diag(d) Q^T with Q a rotation: e^A = Q diag(e^d) Q^T */
  double c = cos(0.3), s = sin(0.3), d0 = -3.1, d1 = 1.7;
  double A[4] = {c * c * d0 + s * s * d1, c * s * (d1 - d0), c * s * (d1 - d0), s * s * d0 + c * c * d1};
  double r2[4] = {c * c * exp(d0) + s * s * exp(d1), c * s * (exp(d1) - exp(d0)),
                  c * s * (exp(d1) - exp(d0)), s * s * exp(d0) + c * c * exp(d1)};
  ck_assert_int_eq(ssm_expm(2, A, E), 0);
  ck_assert_msg(maxdiff(4, E, r2) < 1e-14 * exp(d1), "expm(sym) off by %g", maxdiff(4, E, r2));
  /* a large norm (scaling and squaring): e^A = (e^{A/2})^2 for LegS N = 16 */
  int N = 16;
  double *L = dalloc(N * N), *Lb = dalloc(N), *L2 = dalloc(N * N), *E1 = dalloc(N * N),
         *E2 = dalloc(N * N), *Sq = dalloc(N * N);
  ck_assert_int_eq(ssm_hippo_AB(SSM_LEGS, SSM_SCALE_PAPER, N, L, Lb), 0);
  for (int i = 0; i < N * N; i++)
    L2[i] = 0.5 * L[i];
  ck_assert_int_eq(ssm_expm(N, L, E1), 0);
  ck_assert_int_eq(ssm_expm(N, L2, E2), 0);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double v = 0;
      for (int k = 0; k < N; k++)
        v += E2[i * N + k] * E2[k * N + j];
      Sq[i * N + j] = v;
    }
  double mx = 0;
  for (int i = 0; i < N * N; i++)
    mx = fmax(mx, fabs(E1[i]));
  ck_assert_msg(maxdiff(N * N, E1, Sq) < 1e-13 * mx, "e^A vs (e^{A/2})^2: %g", maxdiff(N * N, E1, Sq));
  /* LegS is lower triangular with diagonal -(n+1): e^A has diagonal e^{-(n+1)} */
  for (int n = 0; n < N; n++)
    ck_assert_double_eq_tol(E1[n * N + n], exp(-(n + 1.0)), 1e-14);
  double bad[4] = {0, NAN, 0, 0};
  ck_assert_int_eq(ssm_expm(2, bad, E), -1);
  free(L);
  free(Lb);
  free(L2);
  free(E1);
  free(E2);
  free(Sq);
}
END_TEST

START_TEST(test_zoh)
{
  /* Bbar = A^{-1} (e^{dt A} - I) B, checked as A Bbar = (e^{dt A} - I) B */
  int N = 12;
  double dt = 0.05;
  double *A = dalloc(N * N), *B = dalloc(N), *Ab = dalloc(N * N), *Bb = dalloc(N), *E = dalloc(N * N),
         *X = dalloc(N * N);
  ck_assert_int_eq(ssm_hippo_AB(SSM_LEGT, SSM_SCALE_PAPER, N, A, B), 0);
  ck_assert_int_eq(ssm_discretize(SSM_ZOH, N, A, B, dt, Ab, Bb), 0);
  for (int i = 0; i < N * N; i++)
    X[i] = dt * A[i];
  ck_assert_int_eq(ssm_expm(N, X, E), 0);
  ck_assert_msg(maxdiff(N * N, Ab, E) < 1e-14, "ZOH Abar vs expm: %g", maxdiff(N * N, Ab, E));
  for (int i = 0; i < N; i++) {
    double lhs = 0, rhs = -B[i];
    for (int k = 0; k < N; k++) {
      lhs += A[i * N + k] * Bb[k];
      rhs += E[i * N + k] * B[k];
    }
    ck_assert_msg(fabs(lhs - rhs) < 1e-12, "ZOH row %d: A Bbar = %.17g, (e^{dtA} - I) B = %.17g", i,
                  lhs, rhs);
  }
  /* bilinear: (I - dt A/2) Abar = I + dt A/2 */
  ck_assert_int_eq(ssm_discretize(SSM_BILINEAR, N, A, B, dt, Ab, Bb), 0);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double l = 0;
      for (int k = 0; k < N; k++)
        l += ((i == k) - dt / 2 * A[i * N + k]) * Ab[k * N + j];
      ck_assert_double_eq_tol(l, (i == j) + dt / 2 * A[i * N + j], 1e-13);
    }
  ck_assert_int_eq(ssm_discretize(SSM_BILINEAR, N, A, B, 0.0, Ab, Bb), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "dt"));
  ck_assert_int_eq(ssm_discretize(SSM_ZOH, N, A, B, -1e-3, Ab, Bb), -1);
  free(A);
  free(B);
  free(Ab);
  free(Bb);
  free(E);
  free(X);
}
END_TEST

/* e^{tA} B against p_n(t) w(t): LegS and LagT are exact bases */
START_TEST(test_basis_closed_forms)
{
  static const ssm_measure ms[2] = {SSM_LEGS, SSM_LAGT};
  int N = 10;
  double *A = dalloc(N * N), *B = dalloc(N), *X = dalloc(N * N), *E = dalloc(N * N), *p = dalloc(N);
  for (int q = 0; q < 2; q++) {
    ck_assert_int_eq(ssm_hippo_AB(ms[q], SSM_SCALE_PAPER, N, A, B), 0);
    for (double t = 0.05; t < 3; t += 0.35) {
      for (int i = 0; i < N * N; i++)
        X[i] = t * A[i];
      ck_assert_int_eq(ssm_expm(N, X, E), 0);
      double w;
      ssm_hippo_basis(ms[q], SSM_SCALE_PAPER, N, t, p, &w);
      for (int n = 0; n < N; n++) {
        double k = 0;
        for (int j = 0; j < N; j++)
          k += E[n * N + j] * B[j];
        ck_assert_msg(fabs(k - p[n] * w) < 1e-10, "%s: (e^{tA}B)_%d at t = %g: %.15g vs %.15g",
                      ssm_measure_name(ms[q]), n, t, k, p[n] * w);
      }
    }
  }
  free(A);
  free(B);
  free(X);
  free(E);
  free(p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Kernels three ways                                                  */
/* ------------------------------------------------------------------ */

START_TEST(test_kernels_three_ways)
{
  int N = 16, L = 300;
  double dts[2] = {0.01, 0.003};
  for (int m = 0; m < SSM_NMEASURES; m++)
    for (int sc = 0; sc < 2; sc++)
      for (int dc = 0; dc < 4; dc++)
        for (int q = 0; q < 2; q++) {
          ssm_measure me = (ssm_measure)m;
          ssm_disc di = (ssm_disc)dc;
          int R = ssm_hippo_rank(me);
          double dt = dts[q];
          double *A = dalloc(N * N), *B = dalloc(N), *P = dalloc(R * N), *Ab = dalloc(N * N),
                 *Bb = dalloc(N), *K1 = dalloc((size_t)L * N), *K2 = dalloc((size_t)L * N),
                 *K3 = dalloc((size_t)L * N);
          ck_assert_int_eq(ssm_hippo_AB(me, (ssm_scale)sc, N, A, B), 0);
          ck_assert_int_eq(ssm_hippo_P(me, (ssm_scale)sc, N, P), 0);
          ck_assert_int_eq(ssm_discretize(di, N, A, B, dt, Ab, Bb), 0);
          ck_assert_int_eq(ssm_kernel_recurrence(N, Ab, Bb, L, K1), 0);
          ck_assert_int_eq(ssm_kernel_powers(N, Ab, Bb, L, K2), 0);
          if (di == SSM_ZOH) {
            ck_assert_int_eq(ssm_kernel_genfun_dense(N, Ab, Bb, L, K3), 0);
          } else {
            ssm_nplr d;
            ck_assert_int_eq(ssm_nplr_new(N, A, B, R, P, &d), 0);
            ck_assert_msg(ssm_kernel_genfun_dplr(&d, dt, ssm_disc_alpha(di), Ab, L, K3) == 0, "%s",
                          sv_errmsg());
            ssm_nplr_free(&d);
          }
          double a12 = ssm_kernel_disagreement((size_t)L * N, K1, K2);
          double a13 = ssm_kernel_disagreement((size_t)L * N, K1, K3);
          ck_assert_msg(a12 <= 1e-10 && a13 <= 1e-10,
                        "%s/%s %s dt=%g: recurrence vs powers %.3g, vs generating function %.3g",
                        ssm_measure_name(me), ssm_scale_name((ssm_scale)sc), ssm_disc_name(di), dt,
                        a12, a13);
          /* the kernel is Abar^l Bbar: K_1 = Abar Bbar */
          for (int i = 0; i < N; i++) {
            double v = 0;
            for (int j = 0; j < N; j++)
              v += Ab[i * N + j] * Bb[j];
            ck_assert_double_eq_tol(K1[N + i], v, 1e-14);
          }
          free(A);
          free(B);
          free(P);
          free(Ab);
          free(Bb);
          free(K1);
          free(K2);
          free(K3);
        }
}
END_TEST

START_TEST(test_kernel_odd_length)
{
  /* an odd L has the self-conjugate point z = -1 */
  int N = 8, L = 77;
  double *A = dalloc(N * N), *B = dalloc(N), *P = dalloc(N), *Ab = dalloc(N * N), *Bb = dalloc(N),
         *K1 = dalloc(L * N), *K3 = dalloc(L * N);
  ck_assert_int_eq(ssm_hippo_AB(SSM_LEGS, SSM_SCALE_PAPER, N, A, B), 0);
  ck_assert_int_eq(ssm_hippo_P(SSM_LEGS, SSM_SCALE_PAPER, N, P), 0);
  ck_assert_int_eq(ssm_discretize(SSM_BILINEAR, N, A, B, 0.02, Ab, Bb), 0);
  ssm_nplr d;
  ck_assert_int_eq(ssm_nplr_new(N, A, B, 1, P, &d), 0);
  ck_assert_int_eq(ssm_kernel_recurrence(N, Ab, Bb, L, K1), 0);
  ck_assert_int_eq(ssm_kernel_genfun_dplr(&d, 0.02, 0.5, Ab, L, K3), 0);
  ck_assert(ssm_kernel_disagreement((size_t)L * N, K1, K3) < 1e-12);
  ssm_nplr_free(&d);
  free(A);
  free(B);
  free(P);
  free(Ab);
  free(Bb);
  free(K1);
  free(K3);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The O(N) LegS step                                                  */
/* ------------------------------------------------------------------ */

START_TEST(test_legs_fast_step)
{
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, 4242);
  static const int Ns[] = {1, 2, 7, 64, 256};
  for (size_t q = 0; q < sizeof Ns / sizeof *Ns; q++) {
    int N = Ns[q];
    double *A = dalloc((size_t)N * N), *B = dalloc(N), *x = dalloc(N), *xd = dalloc(N),
           *w = dalloc((size_t)N * N + N);
    int *ipiv = calloc((size_t)N, sizeof *ipiv);
    ck_assert_int_eq(ssm_hippo_AB(SSM_LEGS, SSM_SCALE_PAPER, N, A, B), 0);
    static const double alphas[3] = {0.5, 0.0, 1.0}, cs[4] = {1.0, 0.25, 1e-3, 1.0 / 3000};
    for (int a = 0; a < 3; a++)
      for (int c = 0; c < 4; c++) {
        double mx = 0, dmax = 0;
        for (int i = 0; i < N; i++)
          x[i] = xd[i] = 2 * gsl_rng_uniform(r) - 1;
        double u = 2 * gsl_rng_uniform(r) - 1;
        ssm_legs_step(N, alphas[a], cs[c], u, x);
        ck_assert_int_eq(ssm_dense_step(N, A, B, alphas[a], cs[c], u, xd, w, ipiv), 0);
        for (int i = 0; i < N; i++) {
          dmax = fmax(dmax, fabs(x[i] - xd[i]));
          mx = fmax(mx, fabs(xd[i]));
        }
        ck_assert_msg(dmax <= 1e-12 * mx, "N=%d alpha=%g c=%g: fast vs dense %.3g (max %.3g)", N,
                      alphas[a], cs[c], dmax, mx);
      }
    free(A);
    free(B);
    free(x);
    free(xd);
    free(w);
    free(ipiv);
  }
  gsl_rng_free(r);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Signals                                                             */
/* ------------------------------------------------------------------ */

START_TEST(test_white_signal)
{
  ssm_signal kind = (ssm_signal)_i;
  int n = 3000;
  double dt = 1e-3, f = 3.0, rms = 0.5;
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, 99);
  double *u = dalloc(n), s2 = 0;
  int draws = 200;
  /* the band: the DFT of the signal minus its (removed) start value has no
     power above the cutoff (for nengo exactly; the lowpass segment is cut
     out of a longer filtered signal, so only nearly) */
  fftw_complex *F = fftw_malloc((size_t)(n / 2 + 1) * sizeof *F);
  double *t = fftw_malloc((size_t)n * sizeof *t);
  fftw_plan p = fftw_plan_dft_r2c_1d(n, t, F, FFTW_ESTIMATE);
  double worst = 0;
  for (int k = 0; k < draws; k++) {
    ck_assert_int_eq(ssm_white_signal(kind, r, n, dt, f, rms, u), 0);
    ck_assert_double_eq(u[0], 0.0);
    double mean = 0;
    for (int i = 0; i < n; i++)
      mean += u[i] / n;
    for (int i = 0; i < n; i++)
      s2 += (u[i] - mean) * (u[i] - mean) / n / draws;
    if (kind == SSM_SIGNAL_NENGO) {
      for (int i = 0; i < n; i++)
        t[i] = u[i];
      fftw_execute(p);
      double in = 0, out = 0;
      for (int q = 1; q <= n / 2; q++) {
        double pw = creal(F[q] * conj(F[q]));
        if (q / (n * dt) > f)
          out += pw;
        else
          in += pw;
      }
      worst = fmax(worst, out / in);
    }
  }
  /* the variance about the mean: rms^2 less the power of the subtracted
     start, which the mean does not fully remove; within 25 % */
  ck_assert_msg(fabs(sqrt(s2) - rms) < 0.25 * rms, "%s: rms %.3f, target %.3f",
                ssm_signal_name(kind), sqrt(s2), rms);
  ck_assert_msg(worst < 1e-25, "nengo: power above the cutoff %.3g of the band's", worst);
  fftw_destroy_plan(p);
  fftw_free(F);
  fftw_free(t);
  free(u);
  gsl_rng_free(r);
}
END_TEST

START_TEST(test_nengo_modes)
{
  int n = 3000, count;
  double dt = 1e-3, f = 3.0, rms = 0.5, var;
  ck_assert_int_eq(ssm_nengo_modes(n, dt, f, rms, &count, NULL, &var), 0);
  ck_assert_int_eq(count, 18); /* 9 frequencies up to 3 Hz over a period of 3, cos and sin */
  ck_assert_double_eq_tol(var, rms * rms / 2, 1e-16);
  double *modes = dalloc((size_t)count * n), *u = dalloc(n), *v = dalloc(n);
  ck_assert_int_eq(ssm_nengo_modes(n, dt, f, rms, &count, modes, &var), 0);
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937), *r2 = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, 5);
  gsl_rng_set(r2, 5);
  ck_assert_int_eq(ssm_white_signal(SSM_SIGNAL_NENGO, r, n, dt, f, rms, u), 0);
  /* the same draws: imaginary parts of coefficients 0..n/2, then the real
     parts; mode 2q is the cosine of frequency q + 1 (weight re), 2q + 1 its
     sine (weight im) */
  int nc = n / 2;
  double *im = dalloc(nc + 1), *re = dalloc(nc + 1);
  for (int k = 0; k <= nc; k++)
    im[k] = gsl_ran_gaussian(r2, rms * sqrt(0.5));
  for (int k = 0; k <= nc; k++)
    re[k] = gsl_ran_gaussian(r2, rms * sqrt(0.5));
  for (int q = 0; q < count / 2; q++)
    for (int i = 0; i < n; i++)
      v[i] += re[q + 1] * modes[(size_t)(2 * q) * n + i] + im[q + 1] * modes[(size_t)(2 * q + 1) * n + i];
  ck_assert_msg(maxdiff(n, u, v) < 1e-13, "nengo signal vs its modes: %g", maxdiff(n, u, v));
  free(modes);
  free(u);
  free(v);
  free(im);
  free(re);
  gsl_rng_free(r);
  gsl_rng_free(r2);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("hippo");
  TCase *tc = tcase_create("hippo");
  tcase_add_test(tc, test_legs_n4);
  tcase_add_test(tc, test_legt_n4);
  tcase_add_test(tc, test_lagt_fout_structure);
  tcase_add_test(tc, test_legs_lambda_n8);
  tcase_add_test(tc, test_nplr_all);
  tcase_add_test(tc, test_nplr_legs_products);
  tcase_add_test(tc, test_nplr_refusals);
  tcase_add_test(tc, test_s4d_inits);
  tcase_add_test(tc, test_expm);
  tcase_add_test(tc, test_zoh);
  tcase_add_test(tc, test_basis_closed_forms);
  tcase_add_test(tc, test_kernels_three_ways);
  tcase_add_test(tc, test_kernel_odd_length);
  tcase_add_test(tc, test_legs_fast_step);
  tcase_add_loop_test(tc, test_white_signal, 0, 2);
  tcase_add_test(tc, test_nengo_modes);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
