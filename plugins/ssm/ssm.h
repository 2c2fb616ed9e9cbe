/*
 * ssm.h -- the helper shared by ssm_hippo and ssm_s4: HiPPO operators,
 * their normal-plus-low-rank form, discretisations, kernels, signals and
 * the S4D initialisations (specs/hippo.md).
 *
 * One concept per file:
 *   hippo.c       the transition matrices A, B of each measure, the
 *                 low-rank corrections P, the basis functions and measures
 *   nplr.c        A = V Lambda V* - P P* (LAPACK zheev), phases
 *                 normalised; the S4D initialisations
 *   expm.c        the matrix exponential (Pade 13, scaling and squaring,
 *                 LAPACK solves)
 *   discretize.c  bilinear / Euler / backward Euler (GBT) and ZOH; the O(N)
 *                 LegS step
 *   kernels.c     the convolution kernel three ways: recurrence, dense
 *                 powers, the generating function at roots of unity
 *                 (Cauchy sums and the Woodbury correction for DPLR, dense
 *                 resolvents for ZOH), then an inverse FFT
 *   signal.c      band-limited white noise
 *
 * Matrices are row-major doubles (A[i * N + j]); complex vectors use C99
 * double complex. Every function that can fail returns 0 / -1 with
 * sv_fail().
 */
#ifndef SSM_H
#define SSM_H

#include <complex.h>
#include <solver.h>

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

typedef enum { SSM_LEGS = 0, SSM_LEGT, SSM_LAGT, SSM_FOUT } ssm_measure;
#define SSM_NMEASURES 4

/* The scale of LegT and FouT: the paper's (window [0, 1]) or the
   reference code's halved matrices (window [0, 2]). LegS and LagT have
   one scale. */
typedef enum { SSM_SCALE_PAPER = 0, SSM_SCALE_S4 } ssm_scale;

/* Discretisations: the generalised bilinear transform with alpha = 1/2
   (bilinear), 0 (forward Euler), 1 (backward Euler), and zero-order hold. */
typedef enum { SSM_BILINEAR = 0, SSM_ZOH, SSM_EULER, SSM_BACKWARD_EULER } ssm_disc;

/* Parse a name; failures name `option` and list the accepted values. */
int ssm_measure_parse(const char *option, const char *s, ssm_measure *out);
int ssm_scale_parse(const char *option, const char *s, ssm_scale *out);
int ssm_disc_parse(const char *option, const char *s, ssm_disc *out);
const char *ssm_measure_name(ssm_measure m);
const char *ssm_scale_name(ssm_scale s);
const char *ssm_disc_name(ssm_disc d);
/* alpha of the GBT family; -1 for ZOH. */
double ssm_disc_alpha(ssm_disc d);

/* ------------------------------------------------------------------ */
/* hippo.c: the operators                                              */
/* ------------------------------------------------------------------ */

/* A (N x N) and B (N) of a measure (specs/hippo.md, the table). */
int ssm_hippo_AB(ssm_measure m, ssm_scale sc, int N, double *A, double *B);
/* The rank of the correction P that makes A + P^T P normal: 2 for LegT, 1
   otherwise. */
int ssm_hippo_rank(ssm_measure m);
/* P (rank x N, row r is the r-th correction vector) with A + sum_r P_r
   P_r^T = c I + S, S skew-symmetric. */
int ssm_hippo_P(ssm_measure m, ssm_scale sc, int N, double *P);
/* The window length of a translated measure (LegT, FouT: 1 at the paper's
   scale, 2 at the reference code's), INFINITY for LegS and LagT. */
double ssm_hippo_window(ssm_measure m, ssm_scale sc);
/*
 * The basis of the LTI system x' = A x + B u: p[n] = p_n(s) and *w = w(s)
 * at a time s >= 0 into the past, such that the impulse response is
 * (e^{sA} B)_n = p_n(s) w(s), the p_n are orthonormal under w, and the
 * input's history is u(t - s) ~ sum_n x_n(t) p_n(s).
 */
void ssm_hippo_basis(ssm_measure m, ssm_scale sc, int N, double s, double *p, double *w);
/* Orthonormal shifted Legendre L_n(x) = sqrt(2n+1) P_n(2x - 1), n < N. */
void ssm_legendre_shifted(int N, double x, double *L);

/* ------------------------------------------------------------------ */
/* nplr.c: A = V Lambda V* - P P* and the S4D initialisations           */
/* ------------------------------------------------------------------ */

/*
 * The normal-plus-low-rank form of a real A with real P (rank x N) such
 * that A + P^T P = c I + S, S skew-symmetric: Lambda = c + i eig(S) from
 * LAPACK's zheev on the Hermitian -iS. Of each conjugate pair the half
 * with negative imaginary part is kept (a zero eigenvalue's real null
 * space is paired into (a + ib)/sqrt 2), so A = 2 Re(V diag(Lambda) V*) -
 * P^T P with V (N x N/2) orthonormal columns. Each column's phase is fixed
 * so that the first non-zero entry of V* P_r (r = 0, then 1) is real and
 * positive; Ptilde = V* P and Btilde = V* B are then unique.
 */
typedef struct ssm_nplr {
  int N, half, rank;
  double c;                  /* the real part of every eigenvalue */
  double complex *lambda;    /* half */
  double complex *V;         /* N x half, V[j * half + n] */
  double complex *P;         /* rank x half: (V* P_r)_n at P[r * half + n] */
  double complex *B;         /* half: V* B (NULL when no B was given) */
  double skew_error;         /* max |A + P^T P - c I + (...)^T| relative to max |A| */
  double recon_error;        /* max |2 Re(V Lambda V*) - P^T P - A| / max |A| */
} ssm_nplr;

/* N even (pairs); B may be NULL. Fails naming the problem (odd N, A + P^T P
   not skew plus identity, LAPACK failure). */
int ssm_nplr_new(int N, const double *A, const double *B, int rank, const double *P,
                 ssm_nplr *out);
void ssm_nplr_free(ssm_nplr *d);

/* The S4D initialisations of a diagonal state (specs/hippo.md): N/2 modes
   A_n and B_n (B_n = 1 except for LegS, whose B = V* B of the NPLR). */
typedef enum { SSM_INIT_LIN = 0, SSM_INIT_INV, SSM_INIT_LEGS, SSM_INIT_REAL } ssm_init;
int ssm_init_parse(const char *option, const char *s, ssm_init *out);
const char *ssm_init_name(ssm_init i);
int ssm_s4d_init(ssm_init init, int N, double complex *A, double complex *B);

/* ------------------------------------------------------------------ */
/* expm.c and discretize.c                                             */
/* ------------------------------------------------------------------ */

/* E = e^A (n x n), Pade degree 13 with scaling and squaring (Higham 2005),
   the Pade system solved by LAPACK (dgesv). */
int ssm_expm(int n, const double *A, double *E);

/* Abar (N x N) and Bbar (N) of x' = A x + B u with step dt. GBT through a
   LAPACK LU solve; ZOH from the exponential of [[A, B], [0, 0]] dt, so A
   need not be invertible. */
int ssm_discretize(ssm_disc d, int N, const double *A, const double *B, double dt, double *Ab,
                   double *Bb);

/*
 * One GBT step of LegS (paper matrices) in O(N), without a triangular
 * solve: x <- (I - alpha c A)^{-1} ((I + (1 - alpha) c A) x + c B u), a
 * forward pass of prefix sums of sqrt(2k+1) x_k, then a substitution of
 * prefix sums of sqrt(2k+1) z_k. c = dt for the LTI system, 1/t for the
 * time-varying HiPPO-LegS step t.
 */
void ssm_legs_step(int N, double alpha, double c, double u, double *x);
/* The same step with dense matrices: y = (I + (1 - alpha) c A) x + c B u
   (dgemv), then (I - alpha c A) z = y by dense LU (dgesv). work: N*N + N
   doubles, ipiv: N ints. */
int ssm_dense_step(int N, const double *A, const double *B, double alpha, double c, double u,
                   double *x, double *work, int *ipiv);

/* ------------------------------------------------------------------ */
/* kernels.c: K[l * N + m] = (Abar^l Bbar)_m, l < L (the state kernels;   */
/* y = C x gives C K_l)                                                */
/* ------------------------------------------------------------------ */

/* The impulse response of x_k = Abar x_{k-1} + Bbar u_k. */
int ssm_kernel_recurrence(int N, const double *Ab, const double *Bb, int L, double *K);
/* Abar^l Bbar from the powers Abar^(2^j) (repeated squaring). */
int ssm_kernel_powers(int N, const double *Ab, const double *Bb, int L, double *K);
/*
 * The generating function sum_l K_l z^l = (I - z^L Abar^L)(I - z Abar)^{-1}
 * Bbar evaluated at the L points z_k = exp(-i pi (2k+1) / L) (the L-th roots
 * of -1, so z^L = -1: neither z = 1, where FouT's zero eigenvalue makes the
 * Cauchy sums singular, nor z = -1, where the bilinear form divides by
 * 1 + z, is a node), then an inverse FFT and the twist exp(i pi l / L).
 * For the GBT family (I - z Abar)^{-1} Bbar = dt M^{-1} B with
 * M = (1 - z) I - dt (alpha + (1 - alpha) z) A, and with A = V (Lambda -
 * P~ P~*) V* the inverse is the Woodbury correction of Cauchy sums over the
 * eigenvalues (S4's Algorithm 1), both halves of each conjugate pair
 * summed. ZOH has no resolvent form: ssm_kernel_genfun_dense solves
 * (I - z Abar) y = Bbar with LAPACK (zgesv) at each point instead.
 */
int ssm_kernel_genfun_dplr(const ssm_nplr *d, double dt, double alpha, const double *Ab, int L,
                           double *K);
int ssm_kernel_genfun_dense(int N, const double *Ab, const double *Bb, int L, double *K);
/* max |K1 - K2| / max |K1| over all entries (0 when both are zero). */
double ssm_kernel_disagreement(size_t n, const double *K1, const double *K2);

/* ------------------------------------------------------------------ */
/* signal.c: band-limited white noise                                  */
/* ------------------------------------------------------------------ */

typedef enum { SSM_SIGNAL_NENGO = 0, SSM_SIGNAL_LOWPASS } ssm_signal;
int ssm_signal_parse(const char *option, const char *s, ssm_signal *out);
const char *ssm_signal_name(ssm_signal s);
/*
 * n = round(T / dt) samples of band-limited white noise with cutoff freq
 * (Hz) and rms `rms`, starting from 0, drawn from rng:
 *   nengo    nengo's WhiteSignal (used by the state-spaces/s4 HiPPO
 *            notebook): Gaussian Fourier coefficients of a signal of
 *            period T, zero above the cutoff, power-corrected, an inverse
 *            real FFT, then the first value subtracted;
 *   lowpass  Gaussian white noise on 4n samples, its spectrum cut at the
 *            cutoff (an ideal low-pass), the middle n samples scaled to the
 *            rms, then the first value subtracted (not periodic).
 */
int ssm_white_signal(ssm_signal kind, gsl_rng *rng, int n, double dt, double freq, double rms,
                     double *u);
/*
 * The nengo signal is u = sum_q g_q f_q: fixed modes f_q (n samples each:
 * the cosine minus 1 and the sine of each frequency kept, so that u starts
 * at 0) with independent Gaussian weights g_q of variance *var. So for any
 * linear reconstruction the expected squared error is *var times the sum
 * of the modes' squared errors, exactly. *count gets the number of modes;
 * modes (count x n) may be NULL to ask only for the count.
 */
int ssm_nengo_modes(int n, double dt, double freq, double rms, int *count, double *modes,
                    double *var);

#endif
