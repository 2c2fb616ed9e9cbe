/*
 * hippo.c -- the HiPPO transition matrices A, B of each measure, the
 * low-rank corrections P that make A + P^T P normal, and the basis
 * functions and measures of the LTI systems (specs/hippo.md, the table).
 *
 * With r_n = sqrt(2n + 1):
 *   LegS  A_nk = -r_n r_k (n > k), -(n + 1) (n = k), 0 (n < k); B_n = r_n;
 *         P_n = sqrt(n + 1/2): A + P P^T = -I/2 + skew.
 *   LegT  A_nk = -r_n r_k (n >= k), -r_n r_k (-1)^(n-k) (n < k); B_n = r_n
 *         (the reference code halves both: window [0, 2]); P has two rows,
 *         r at the odd indices and r at the even ones (each / sqrt 2 at the
 *         halved scale): A + P P^T is skew.
 *   LagT  -1/2 on the diagonal, -1 below; B = 1; P = 1/sqrt 2: skew.
 *   FouT  A = 2 pi R - 2 b b^T, B = 2 b with R[2k, 2k+1] = -k,
 *         R[2k+1, 2k] = k, b = (1, 0, sqrt 2, 0, sqrt 2, 0, ...) (the
 *         reference code: pi R - b b^T, B = b); P = sqrt 2 b (b): skew.
 *         Index 1 (the sine of frequency 0) is a dead state.
 */
#include "ssm.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

static const char *const measure_names[] = {"legs", "legt", "lagt", "fout"};
static const char *const scale_names[] = {"paper", "s4"};
static const char *const disc_names[] = {"bilinear", "zoh", "euler", "backward_euler"};

const char *ssm_measure_name(ssm_measure m)
{
  return (unsigned)m < SSM_NMEASURES ? measure_names[m] : "?";
}
const char *ssm_scale_name(ssm_scale s) { return (unsigned)s < 2u ? scale_names[s] : "?"; }
const char *ssm_disc_name(ssm_disc d) { return (unsigned)d < 4u ? disc_names[d] : "?"; }

double ssm_disc_alpha(ssm_disc d)
{
  switch (d) {
  case SSM_BILINEAR: return 0.5;
  case SSM_EULER: return 0.0;
  case SSM_BACKWARD_EULER: return 1.0;
  default: return -1.0;
  }
}

static int parse(const char *option, const char *what, const char *s, const char *const *names,
                 int n, int *out)
{
  for (int i = 0; i < n; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = i;
      return 0;
    }
  char list[256] = "";
  size_t w = 0;
  for (int i = 0; i < n && w < sizeof list; i++) {
    int k = snprintf(list + w, sizeof list - w, "%s%s", i ? (i == n - 1 ? " or " : ", ") : "",
                     names[i]);
    if (k > 0)
      w += (size_t)k;
  }
  return sv_fail("option %s = '%s': unknown %s (expected %s)", option, s, what, list);
}

int ssm_measure_parse(const char *option, const char *s, ssm_measure *out)
{
  int i = 0;
  if (parse(option, "measure", s, measure_names, SSM_NMEASURES, &i) < 0)
    return -1;
  *out = (ssm_measure)i;
  return 0;
}

int ssm_scale_parse(const char *option, const char *s, ssm_scale *out)
{
  int i = 0;
  if (parse(option, "scale", s, scale_names, 2, &i) < 0)
    return -1;
  *out = (ssm_scale)i;
  return 0;
}

int ssm_disc_parse(const char *option, const char *s, ssm_disc *out)
{
  int i = 0;
  if (parse(option, "discretisation", s, disc_names, 4, &i) < 0)
    return -1;
  *out = (ssm_disc)i;
  return 0;
}

/* ------------------------------------------------------------------ */
/* The matrices                                                        */
/* ------------------------------------------------------------------ */

static double fout_b(int n) { return n == 0 ? 1.0 : (n % 2 ? 0.0 : sqrt(2.0)); }

int ssm_hippo_AB(ssm_measure m, ssm_scale sc, int N, double *A, double *B)
{
  if (N < 1)
    return sv_fail("HiPPO %s: state size N = %d (must be >= 1)", ssm_measure_name(m), N);
  double half = sc == SSM_SCALE_S4 ? 0.5 : 1.0;
  for (int n = 0; n < N; n++) {
    double rn = sqrt(2.0 * n + 1);
    for (int k = 0; k < N; k++) {
      double rk = sqrt(2.0 * k + 1), a = 0;
      switch (m) {
      case SSM_LEGS:
        a = n > k ? -rn * rk : (n == k ? -(n + 1.0) : 0.0);
        break;
      case SSM_LEGT:
        a = -rn * rk * (n >= k ? 1.0 : ((k - n) % 2 ? -1.0 : 1.0)) * half;
        break;
      case SSM_LAGT:
        a = n > k ? -1.0 : (n == k ? -0.5 : 0.0);
        break;
      case SSM_FOUT: {
        double R = 0;
        if (n % 2 == 0 && k == n + 1)
          R = -(n / 2);
        else if (n % 2 == 1 && k == n - 1)
          R = (n - 1) / 2;
        a = (2 * M_PI * R - 2 * fout_b(n) * fout_b(k)) * half;
        break;
      }
      default:
        return sv_fail("HiPPO: unknown measure %d", (int)m);
      }
      A[(size_t)n * N + k] = a;
    }
    switch (m) {
    case SSM_LEGS: B[n] = rn; break;
    case SSM_LEGT: B[n] = rn * half; break;
    case SSM_LAGT: B[n] = 1.0; break;
    case SSM_FOUT: B[n] = 2 * fout_b(n) * half; break;
    }
  }
  return 0;
}

int ssm_hippo_rank(ssm_measure m) { return m == SSM_LEGT ? 2 : 1; }

int ssm_hippo_P(ssm_measure m, ssm_scale sc, int N, double *P)
{
  double s = sc == SSM_SCALE_S4 ? sqrt(0.5) : 1.0;
  for (int n = 0; n < N; n++) {
    switch (m) {
    case SSM_LEGS: P[n] = sqrt(n + 0.5); break;
    case SSM_LEGT:
      P[n] = n % 2 ? sqrt(2.0 * n + 1) * s : 0.0;
      P[N + n] = n % 2 ? 0.0 : sqrt(2.0 * n + 1) * s;
      break;
    case SSM_LAGT: P[n] = sqrt(0.5); break;
    case SSM_FOUT: P[n] = sqrt(2.0) * fout_b(n) * s; break;
    default: return sv_fail("HiPPO: unknown measure %d", (int)m);
    }
  }
  return 0;
}

double ssm_hippo_window(ssm_measure m, ssm_scale sc)
{
  if (m == SSM_LEGT || m == SSM_FOUT)
    return sc == SSM_SCALE_S4 ? 2.0 : 1.0;
  return INFINITY;
}

/* ------------------------------------------------------------------ */
/* Basis functions                                                     */
/* ------------------------------------------------------------------ */

void ssm_legendre_shifted(int N, double x, double *L)
{
  double y = 2 * x - 1, pm = 1, p = y;
  for (int n = 0; n < N; n++) {
    double pn;
    if (n == 0)
      pn = 1;
    else if (n == 1)
      pn = y;
    else {
      pn = ((2.0 * n - 1) * y * p - (n - 1.0) * pm) / n;
      pm = p;
      p = pn;
    }
    L[n] = sqrt(2.0 * n + 1) * pn;
  }
}

void ssm_hippo_basis(ssm_measure m, ssm_scale sc, int N, double s, double *p, double *w)
{
  /* the halved LegT and FouT are the paper's at s / 2 over a window of 2 */
  double theta = (m == SSM_LEGT || m == SSM_FOUT) && sc == SSM_SCALE_S4 ? 2.0 : 1.0;
  s /= theta;
  switch (m) {
  case SSM_LEGS:
    ssm_legendre_shifted(N, exp(-s), p);
    *w = exp(-s);
    break;
  case SSM_LEGT:
    ssm_legendre_shifted(N, 1 - s, p);
    *w = s >= 0 && s <= 1 ? 1.0 : 0.0;
    break;
  case SSM_LAGT: {
    double lm = 1, l = 1 - s, e = exp(-s / 2);
    for (int n = 0; n < N; n++) {
      double ln;
      if (n == 0)
        ln = 1;
      else if (n == 1)
        ln = 1 - s;
      else {
        ln = ((2.0 * n - 1 - s) * l - (n - 1.0) * lm) / n;
        lm = l;
        l = ln;
      }
      p[n] = e * ln;
    }
    *w = 1;
    break;
  }
  case SSM_FOUT:
    for (int n = 0; n < N; n++) {
      int k = n / 2;
      if (n == 0)
        p[n] = 1;
      else if (n == 1)
        p[n] = 0; /* the dead state */
      else
        p[n] = sqrt(2.0) * (n % 2 ? sin(2 * M_PI * k * s) : cos(2 * M_PI * k * s));
    }
    *w = s >= 0 && s <= 1 ? 1.0 : 0.0;
    break;
  }
  *w /= theta;
}
