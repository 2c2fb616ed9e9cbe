/*
 * nplr.c -- the normal-plus-low-rank form A = V Lambda V* - P P* of a
 * HiPPO matrix (S4, section 3.3), and the S4D initialisations of a
 * diagonal state.
 *
 * A + P^T P = c I + S with S real skew-symmetric, so Lambda = c + i eig(S):
 * LAPACK's zheev diagonalises the Hermitian matrix -iS (real eigenvalues
 * w, orthonormal eigenvectors), and S v = i w v. Real S has its
 * eigenvalues in conjugate pairs; of each the member with w < 0 is kept
 * (N/2 columns). A zero eigenvalue (FouT's constant and dead states) has a
 * real null space, whose orthonormal real basis a_1, b_1, ... is paired
 * into (a + i b) / sqrt 2, a column whose conjugate is the pair's other
 * half. The phase of each column is arbitrary (it depends on the
 * eigensolver); it is fixed so that the first non-zero entry of (V* P_r)_n
 * is real and positive, which makes V* P and V* B unique.
 */
#include "ssm.h"

#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ssm_nplr_free(ssm_nplr *d)
{
  if (!d)
    return;
  free(d->lambda);
  free(d->V);
  free(d->P);
  free(d->B);
  memset(d, 0, sizeof *d);
}

int ssm_nplr_new(int N, const double *A, const double *B, int rank, const double *P,
                 ssm_nplr *out)
{
  memset(out, 0, sizeof *out);
  if (N < 2 || N % 2)
    return sv_fail("NPLR: state size N = %d: must be even and >= 2 (the eigenvalues come in "
                   "conjugate pairs, of which one half is kept)", N);
  if (rank < 1 || rank > 4)
    return sv_fail("NPLR: rank %d of the correction (1 to 4 supported)", rank);
  size_t NN = (size_t)N * N;
  int half = N / 2, rc = -1;
  double *S = malloc(NN * sizeof *S), *w = malloc((size_t)N * sizeof *w);
  double complex *H = malloc(NN * sizeof *H);
  double *re = NULL;
  out->N = N;
  out->half = half;
  out->rank = rank;
  out->lambda = malloc((size_t)half * sizeof *out->lambda);
  out->V = malloc((size_t)N * half * sizeof *out->V);
  out->P = malloc((size_t)rank * half * sizeof *out->P);
  out->B = B ? malloc((size_t)half * sizeof *out->B) : NULL;
  if (!S || !w || !H || !out->lambda || !out->V || !out->P || (B && !out->B)) {
    sv_fail("NPLR: out of memory for N = %d", N);
    goto done;
  }

  /* AP = A + P^T P; c = mean of its diagonal; S = AP - c I */
  double amax = 0, c = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double v = A[(size_t)i * N + j];
      amax = fmax(amax, fabs(v));
      for (int r = 0; r < rank; r++)
        v += P[(size_t)r * N + i] * P[(size_t)r * N + j];
      S[(size_t)i * N + j] = v;
    }
  for (int i = 0; i < N; i++)
    c += S[(size_t)i * N + i] / N;
  for (int i = 0; i < N; i++)
    S[(size_t)i * N + i] -= c;
  double skew = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++)
      skew = fmax(skew, fabs(S[(size_t)i * N + j] + S[(size_t)j * N + i]));
  out->c = c;
  out->skew_error = amax > 0 ? skew / amax : skew;
  if (out->skew_error > 1e-10) {
    sv_fail("NPLR: A + P P^T is not a multiple of I plus a skew-symmetric matrix (relative "
            "asymmetry %.2e): P is not this A's correction", out->skew_error);
    goto done;
  }

  /* zheev on H = -i S (lower triangle), eigenvectors in the columns */
  for (size_t k = 0; k < NN; k++)
    H[k] = -I * S[k];
  lapack_int info = LAPACKE_zheev(LAPACK_ROW_MAJOR, 'V', 'L', N, H, N, w);
  if (info != 0) {
    sv_fail("NPLR: LAPACK zheev failed (info %d) for N = %d", (int)info, N);
    goto done;
  }
  double wmax = 0;
  for (int n = 0; n < N; n++)
    wmax = fmax(wmax, fabs(w[n]));
  double tol = 1e-10 * (wmax > 0 ? wmax : 1.0);
  int neg = 0, zero = 0;
  for (int n = 0; n < N; n++) {
    if (w[n] < -tol)
      neg++;
    else if (fabs(w[n]) <= tol)
      zero++;
  }
  if (zero % 2 || neg + zero / 2 != half) {
    sv_fail("NPLR: the spectrum of the skew part is not in conjugate pairs (%d negative, %d "
            "zero eigenvalues for N = %d)", neg, zero, N);
    goto done;
  }
  /* the negative half, ascending (most negative first) */
  for (int n = 0; n < neg; n++) {
    out->lambda[n] = c + I * w[n];
    for (int j = 0; j < N; j++)
      out->V[(size_t)j * half + n] = H[(size_t)j * N + n];
  }
  if (zero) {
    /* a real orthonormal basis of the null space from the real and
       imaginary parts of zheev's null vectors (Gram-Schmidt, twice) */
    re = malloc((size_t)2 * zero * N * sizeof *re);
    if (!re) {
      sv_fail("NPLR: out of memory");
      goto done;
    }
    int got = 0;
    for (int q = 0; q < 2 * zero && got < zero; q++) {
      double *v = re + (size_t)got * N;
      for (int j = 0; j < N; j++) {
        double complex h = H[(size_t)j * N + neg + q / 2];
        v[j] = q % 2 ? cimag(h) : creal(h);
      }
      for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < got; k++) {
          double dot = 0;
          for (int j = 0; j < N; j++)
            dot += re[(size_t)k * N + j] * v[j];
          for (int j = 0; j < N; j++)
            v[j] -= dot * re[(size_t)k * N + j];
        }
      double nrm = 0;
      for (int j = 0; j < N; j++)
        nrm += v[j] * v[j];
      nrm = sqrt(nrm);
      if (nrm > 1e-6) {
        for (int j = 0; j < N; j++)
          v[j] /= nrm;
        got++;
      }
    }
    if (got != zero) {
      sv_fail("NPLR: could not build a real basis of the %d-dimensional null space", zero);
      goto done;
    }
    for (int q = 0; q < zero / 2; q++) {
      int n = neg + q;
      out->lambda[n] = c;
      for (int j = 0; j < N; j++)
        out->V[(size_t)j * half + n] =
            (re[(size_t)(2 * q) * N + j] + I * re[(size_t)(2 * q + 1) * N + j]) / sqrt(2.0);
    }
  }

  /* phases: the first non-zero (V* P_r)_n real and positive */
  for (int n = 0; n < half; n++) {
    double complex phase = 1;
    for (int r = 0; r < rank; r++) {
      double complex pt = 0;
      double pn = 0;
      for (int j = 0; j < N; j++) {
        pt += conj(out->V[(size_t)j * half + n]) * P[(size_t)r * N + j];
        pn += P[(size_t)r * N + j] * P[(size_t)r * N + j];
      }
      if (cabs(pt) > 1e-12 * sqrt(pn)) {
        phase = pt / cabs(pt);
        break;
      }
    }
    for (int j = 0; j < N; j++)
      out->V[(size_t)j * half + n] *= phase;
  }
  for (int n = 0; n < half; n++) {
    for (int r = 0; r < rank; r++) {
      double complex pt = 0;
      for (int j = 0; j < N; j++)
        pt += conj(out->V[(size_t)j * half + n]) * P[(size_t)r * N + j];
      out->P[(size_t)r * half + n] = pt;
    }
    if (B) {
      double complex bt = 0;
      for (int j = 0; j < N; j++)
        bt += conj(out->V[(size_t)j * half + n]) * B[j];
      out->B[n] = bt;
    }
  }

  /* the reconstruction 2 Re(V Lambda V*) - P^T P against A */
  double err = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) {
      double complex s = 0;
      for (int n = 0; n < half; n++)
        s += out->V[(size_t)i * half + n] * out->lambda[n] * conj(out->V[(size_t)j * half + n]);
      double v = 2 * creal(s);
      for (int r = 0; r < rank; r++)
        v -= P[(size_t)r * N + i] * P[(size_t)r * N + j];
      err = fmax(err, fabs(v - A[(size_t)i * N + j]));
    }
  out->recon_error = amax > 0 ? err / amax : err;
  rc = 0;
done:
  free(S);
  free(w);
  free(H);
  free(re);
  if (rc < 0)
    ssm_nplr_free(out);
  return rc;
}

/* ------------------------------------------------------------------ */
/* S4D initialisations                                                 */
/* ------------------------------------------------------------------ */

static const char *const init_names[] = {"lin", "inv", "legs", "real"};

const char *ssm_init_name(ssm_init i) { return (unsigned)i < 4u ? init_names[i] : "?"; }

int ssm_init_parse(const char *option, const char *s, ssm_init *out)
{
  for (int i = 0; i < 4; i++)
    if (strcmp(s, init_names[i]) == 0) {
      *out = (ssm_init)i;
      return 0;
    }
  return sv_fail("option %s = '%s': unknown S4D initialisation (expected lin, inv, legs or real)",
                 option, s);
}

int ssm_s4d_init(ssm_init init, int N, double complex *A, double complex *B)
{
  if (N < 2 || N % 2)
    return sv_fail("S4D: state size N = %d: must be even and >= 2 (N/2 conjugate pairs)", N);
  int half = N / 2;
  if (init == SSM_INIT_LEGS) {
    double *Am = malloc((size_t)N * N * sizeof *Am), *Bm = malloc((size_t)N * sizeof *Bm);
    double *P = malloc((size_t)N * sizeof *P);
    ssm_nplr d;
    int rc = -1;
    if (!Am || !Bm || !P)
      sv_fail("S4D: out of memory");
    else if (ssm_hippo_AB(SSM_LEGS, SSM_SCALE_PAPER, N, Am, Bm) == 0 &&
             ssm_hippo_P(SSM_LEGS, SSM_SCALE_PAPER, N, P) == 0 &&
             ssm_nplr_new(N, Am, Bm, 1, P, &d) == 0) {
      for (int n = 0; n < half; n++) {
        A[n] = d.lambda[n];
        B[n] = d.B[n];
      }
      ssm_nplr_free(&d);
      rc = 0;
    }
    free(Am);
    free(Bm);
    free(P);
    return rc;
  }
  for (int n = 0; n < half; n++) {
    switch (init) {
    case SSM_INIT_LIN: A[n] = -0.5 - I * M_PI * n; break;
    case SSM_INIT_INV: A[n] = -0.5 - I * (N / M_PI) * ((double)N / (2 * n + 1) - 1); break;
    case SSM_INIT_REAL: A[n] = -(n + 1.0); break;
    default: return sv_fail("S4D: unknown initialisation %d", (int)init);
    }
    B[n] = 1;
  }
  return 0;
}
