/*
 * frobenius.c -- the local solutions of a linear second-order equation at a
 * regular singular point, for continuing a PINN across it (pinn.h,
 * "Regular singular points").
 *
 * The equation P(x) y'' + Q(x) y' + R(x) y = 0 has polynomial
 * coefficients and P a simple zero at x_s. In t = x - x_s,
 *
 *     P = p1 t + p2 t^2 + ...,  Q = q0 + q1 t + ...,  R = r0 + r1 t + ...,
 *
 * and a series y = sum_n c_n t^(n+s) solves it when
 *
 *     I(n+s) c_n = - sum_{k<n} c_k [p_{n-k+1} (k+s)(k+s-1) + q_{n-k} (k+s) + r_{n-k-1}],
 *     I(s) = p1 s (s - 1) + q0 s = p1 s (s - rho),   rho = 1 - q0 / p1.
 *
 * The exponents are 0 and rho. Which local solutions are analytic (a
 * power series in t, so the same function on both sides of x_s):
 *
 *   rho not an integer, or rho <= 0:  only u_0 (exponent 0; I(n) != 0 for
 *       n >= 1). The other one is |t|^rho (...) or has a pole or a log.
 *   rho = N >= 1 an integer:  u_N = t^N (1 + ...) always. u_0 exists when
 *       the recursion is consistent at n = N (its right side vanishes;
 *       c_N is then free and set to 0); otherwise the exponent-0 solution
 *       has a term log|t| u_N and only u_N is analytic.
 *
 * The series converge for |t| below the distance to the nearest other
 * zero of P (the only other finite singular points: Q and R are
 * polynomials). Everything here is plain arithmetic on the coefficients:
 * no network, no graph.
 */
#include "pinn.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_poly.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Coefficients of a(x) in powers of t = x - xs (Taylor shift). */
static void shift_poly(int deg, const double *a, double xs, double *b)
{
  double work[PINN_MAX_DEGREE + 1];
  memcpy(work, a, (size_t)(deg + 1) * sizeof *work);
  /* repeated synthetic division by (x - xs): b_j = a^(j)(xs) / j! */
  for (int j = 0; j <= deg; j++) {
    double acc = 0;
    for (int i = deg; i >= j; i--) {
      acc = acc * xs + work[i];
      work[i] = acc;
    }
    b[j] = work[j];
  }
}

/* sum |a_i| |x|^i: the size against which a value of the polynomial at x
   is round-off. */
static double poly_scale(int deg, const double *a, double x)
{
  double s = 0, xp = 1;
  for (int i = 0; i <= deg; i++, xp *= fabs(x))
    s += fabs(a[i]) * xp;
  return s;
}

/* The smallest |t| over the complex zeros of p1 + p2 t + ... + pD t^(D-1),
   i.e. the distance from xs to the nearest other zero of P. INFINITY when
   that polynomial is a constant. */
static int other_zero_distance(int deg, const double *p, double *dist)
{
  double c[PINN_MAX_DEGREE + 1];
  int n = 0;
  for (int i = 1; i <= deg; i++)
    c[n++] = p[i];
  while (n > 1 && c[n - 1] == 0)
    n--;
  *dist = INFINITY;
  if (n <= 1)
    return 0;
  if (n == 2) {
    *dist = fabs(c[0] / c[1]);
    return 0;
  }
  double z[2 * PINN_MAX_DEGREE];
  gsl_error_handler_t *old = gsl_set_error_handler_off();
  gsl_poly_complex_workspace *w = gsl_poly_complex_workspace_alloc((size_t)n);
  int st = w ? gsl_poly_complex_solve(c, (size_t)n, w, z) : GSL_ENOMEM;
  if (w)
    gsl_poly_complex_workspace_free(w);
  gsl_set_error_handler(old);
  if (st != GSL_SUCCESS)
    return sv_fail("frobenius: the zeros of P could not be found: %s", gsl_strerror(st));
  for (int i = 0; i + 1 < n; i++)
    *dist = fmin(*dist, hypot(z[2 * i], z[2 * i + 1]));
  return 0;
}

/*
 * The series with exponent s (0 or the integer N), c_0 = 1, up to
 * PINN_MAX_TERMS terms; stops when the terms |c_n| h^n stay below 1e-18 of
 * the largest one for 8 terms in a row (or are exactly zero: a
 * polynomial). With s = 0 and rho = N, *consistent tells whether the
 * recursion can pass n = N (then c_N = 0). Returns the number of terms, or
 * -1 (sv_fail) when the series does not settle within PINN_MAX_TERMS.
 */
static int series(const double *p, const double *q, const double *r, int deg, double rho,
                  double s, int N, double h, double *c, int *consistent)
{
  double big = 1, hn = 1;
  int quiet = 0;
  if (consistent)
    *consistent = 1;
  c[0] = 1;
  for (int n = 1; n < PINN_MAX_TERMS; n++) {
    double rhs = 0, mag = 0;
    int k0 = n - deg - 1 > 0 ? n - deg - 1 : 0;
    for (int k = k0; k < n; k++) {
      int j = n - k;
      double ks = k + s;
      double pj = j + 1 <= deg ? p[j + 1] : 0, qj = j <= deg ? q[j] : 0,
             rj = j - 1 >= 0 && j - 1 <= deg ? r[j - 1] : 0;
      double term = c[k] * (pj * ks * (ks - 1) + qj * ks + rj);
      rhs -= term;
      mag += fabs(term);
    }
    double I = p[1] * (n + s) * (n + s - rho);
    if (s == 0 && N > 0 && n == N) {
      /* I(N) = 0: the recursion is consistent only if its right side vanishes */
      if (fabs(rhs) > 1e-9 * mag) {
        if (consistent)
          *consistent = 0;
        return n;
      }
      c[n] = 0;
    } else {
      c[n] = rhs / I;
    }
    hn *= h;
    double t = fabs(c[n]) * hn;
    big = fmax(big, t);
    quiet = t <= 1e-18 * big ? quiet + 1 : 0;
    if (quiet >= 8)
      return n + 1;
  }
  return sv_fail("frobenius: the series at the singular point has not converged after %d "
                 "terms on the window |x - x_s| <= %g; use a smaller window",
                 PINN_MAX_TERMS, h);
}

int pinn_frobenius_local(const pinn_linear_ode *ode, double xs, double window, double lo,
                         double hi, pinn_frobenius *f)
{
  if (!ode || !f)
    return sv_fail("frobenius: missing argument");
  memset(f, 0, sizeof *f);
  int deg = ode->degree;
  if (deg < 1 || deg > PINN_MAX_DEGREE)
    return sv_fail("frobenius: polynomial degree %d (1 to %d)", deg, PINN_MAX_DEGREE);
  if (!(xs >= lo && xs <= hi) || !(window > 0))
    return sv_fail("frobenius: point %g outside [%g, %g] or window %g <= 0", xs, lo, hi, window);
  double p[PINN_MAX_DEGREE + 1], q[PINN_MAX_DEGREE + 1], r[PINN_MAX_DEGREE + 1];
  shift_poly(deg, ode->P, xs, p);
  shift_poly(deg, ode->Q, xs, q);
  shift_poly(deg, ode->R, xs, r);
  double sc = poly_scale(deg, ode->P, xs);
  if (!(fabs(p[0]) <= 1e-12 * sc))
    return sv_fail("frobenius: x = %g is not a singular point (P(x) = %g != 0)", xs, p[0]);
  p[0] = 0;
  if (!(fabs(p[1]) > 1e-12 * sc))
    return sv_fail("frobenius: x = %g is a multiple zero of P: an irregular singular point "
                   "or one this helper does not treat (it needs P ~ (x - x_s) P'(x_s))", xs);
  f->x = xs;
  f->rho = 1 - q[0] / p[1];
  double N = nearbyint(f->rho);
  f->integer_rho = fabs(f->rho - N) <= 1e-10 * fmax(1, fabs(f->rho));
  if (f->integer_rho)
    f->rho = N;
  if (other_zero_distance(deg, p, &f->radius) < 0)
    return -1;
  double h = isfinite(f->radius) ? window * f->radius : window * (hi - lo);
  f->lo = fmax(lo, xs - h);
  f->hi = fmin(hi, xs + h);
  f->h = h;

  int Ni = f->integer_rho && f->rho >= 1 ? (int)f->rho : 0;
  double c[PINN_MAX_TERMS];
  int consistent = 1;
  int n0 = series(p, q, r, deg, f->rho, 0, Ni, h, c, Ni ? &consistent : NULL);
  if (n0 < 0)
    return -1;
  f->nbasis = 0;
  if (consistent) {
    f->exponent[0] = 0;
    f->terms[0] = n0;
    memcpy(f->coef[0], c, (size_t)n0 * sizeof *c);
    f->nbasis = 1;
  } else {
    f->logarithmic = 1;
  }
  if (Ni) {
    int nN = series(p, q, r, deg, f->rho, Ni, 0, h, c, NULL);
    if (nN < 0)
      return -1;
    if (nN + Ni > PINN_MAX_TERMS)
      return sv_fail("frobenius: the series of exponent %d needs more than %d terms", Ni,
                     PINN_MAX_TERMS);
    int b = f->nbasis++;
    f->exponent[b] = Ni;
    f->terms[b] = nN + Ni;
    memset(f->coef[b], 0, (size_t)Ni * sizeof(double));
    memcpy(f->coef[b] + Ni, c, (size_t)nN * sizeof *c);
  }
  /* scale each to max |u| = 1 over the window, so that the matching
     coefficients are of the size of the solution */
  for (int b = 0; b < f->nbasis; b++) {
    f->scale[b] = 1;
    double mx = 0;
    for (int i = 0; i <= 400; i++) {
      double x = f->lo + (f->hi - f->lo) * i / 400.0;
      mx = fmax(mx, fabs(pinn_frobenius_eval(f, b, x)));
    }
    if (!(mx > 0) || !isfinite(mx))
      return sv_fail("frobenius: local solution %d vanishes or overflows on the window [%g, %g]",
                     b, f->lo, f->hi);
    f->scale[b] = mx;
  }
  /* does the residual alone tell the two sides' solutions apart? Only when
     the second local solution is not C^1 at x_s (0 < rho < 1, or rho <= 0
     with a pole or a log); for rho >= 1 a different multiple of it on one
     side leaves the residual zero on both sides. */
  f->residual_decides = f->rho < 1;
  return 0;
}

double pinn_frobenius_eval(const pinn_frobenius *f, int b, double x)
{
  if (!f || b < 0 || b >= f->nbasis)
    return NAN;
  double t = x - f->x, acc = 0;
  for (int k = f->terms[b] - 1; k >= 0; k--)
    acc = acc * t + f->coef[b][k];
  return acc / f->scale[b];
}

const char *pinn_frobenius_describe(const pinn_frobenius *f, char *buf, size_t n)
{
  if (!buf || n == 0)
    return "";
  if (!f) {
    buf[0] = 0;
    return buf;
  }
  char rho[64];
  if (f->integer_rho)
    snprintf(rho, sizeof rho, "%d", (int)f->rho);
  else
    snprintf(rho, sizeof rho, "%.6g", f->rho);
  const char *kind;
  if (f->nbasis == 2)
    kind = "both local solutions are analytic (integer exponents without a log)";
  else if (f->logarithmic)
    kind = "the exponent-0 solution has a log|x - x_s| term: only the exponent-rho one is "
           "analytic";
  else if (f->rho <= 0)
    kind = "the exponent-rho solution is singular: only the exponent-0 one is analytic";
  else
    kind = "the exponent-rho solution is |x - x_s|^rho (...), not analytic: only the "
           "exponent-0 one is";
  snprintf(buf, n, "x = %g: exponents 0 and rho = %s; %s; series radius %g", f->x, rho, kind,
           f->radius);
  return buf;
}
