/*
 * test_references.c -- the PINN plugins' independent references, checked
 * against the values of specs/pinn.md, the closed form, the conserved
 * quantities and finite-difference residuals. No network involved.
 */
#include "accretion_reference.h"
#include "khronon_reference.h"
#include "pinn.h"

#include <solver.h>

#include <check.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_hyperg.h>
#include <gsl/gsl_sf_legendre.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Khronon                                                             */
/* ------------------------------------------------------------------ */

START_TEST(khronon_closed_form) {
  /* boundary behaviour y -> 1 - x/2, horizon at 4/3, (u^r)^2 = 27 x^4 / 256 */
  ck_assert_double_eq_tol(khronon_exact_y(0), 1, 1e-16);
  ck_assert_double_eq_tol(khronon_exact_dy(0), -0.5, 1e-16);
  ck_assert_double_eq_tol(khronon_exact_y(4.0 / 3.0), 0, 1e-15);
  for (int k = 0; k <= 150; k++) {
    double x = 1.5 * k / 150, y = khronon_exact_y(x);
    double p2 = y * y - (1 - x);
    ck_assert_double_eq_tol(p2, 27 * pow(x, 4) / 256, 1e-14);
    /* the c -> infinity equation holds to round-off */
    double r = khronon_residual(INFINITY, x, y, khronon_exact_dy(x), khronon_exact_d2y(x));
    ck_assert_msg(fabs(r) < 1e-14, "closed-form residual %g at x = %g", r, x);
    /* the derivatives agree with finite differences */
    double h = 1e-5;
    double fd1 = (khronon_exact_y(x + h) - khronon_exact_y(x - h)) / (2 * h);
    double fd2 = (khronon_exact_dy(x + h) - khronon_exact_dy(x - h)) / (2 * h);
    ck_assert_double_eq_tol(khronon_exact_dy(x), fd1, 1e-9);
    ck_assert_double_eq_tol(khronon_exact_d2y(x), fd2, 1e-9);
  }
}
END_TEST

START_TEST(khronon_limit_reference) {
  khronon_ref r;
  ck_assert_int_eq(khronon_ref_solve(INFINITY, &r), 0);
  ck_assert_double_eq_tol(r.x_sound, 4.0 / 3.0, 1e-15);
  ck_assert_double_eq_tol(r.x_universal, 4.0 / 3.0, 1e-15);
  double x[3] = {0, 0.7, 1.5}, y[3];
  ck_assert_int_eq(khronon_ref_eval(&r, 3, x, y, NULL), 0);
  for (int k = 0; k < 3; k++)
    ck_assert_double_eq(y[k], khronon_exact_y(x[k]));
}
END_TEST

/* The spec's preliminary values for c = 10. */
START_TEST(khronon_c10_horizons) {
  khronon_ref r;
  ck_assert_int_eq(khronon_ref_solve(10, &r), 0);
  ck_assert_double_eq_tol(r.x_sound, 1.2844, 5e-5);
  ck_assert_double_eq_tol(r.x_universal, 1.3366, 5e-5);
  /* the sound horizon is where P1 = 0 on the solution */
  double x[1] = {r.x_sound}, y[1];
  ck_assert_int_eq(khronon_ref_eval(&r, 1, x, y, NULL), 0);
  double p1 = y[0] * y[0] - (1 - r.x_sound) - 100 * y[0] * y[0];
  ck_assert_msg(fabs(p1) < 1e-12, "P1(x_c) = %g", p1);
  /* and y vanishes at the universal horizon */
  x[0] = r.x_universal;
  ck_assert_int_eq(khronon_ref_eval(&r, 1, x, y, NULL), 0);
  ck_assert_double_eq_tol(y[0], 0, 1e-12);
}
END_TEST

/* y(0) = 1 with y'(0) = -1/2, P1 = 0 at x_c, and the equation holds (by
   central differences of y') on [0, past the universal horizon]. */
static const double khronon_speeds[] = {0.01, 0.2, 0.5, 1, 2, 10};

START_TEST(khronon_shooting_residual) {
  double c = khronon_speeds[_i];
  khronon_ref r;
  ck_assert_msg(khronon_ref_solve(c, &r) == 0, "c = %g: %s", c, sv_errmsg());
  ck_assert(r.x_sound < r.x_universal && r.x_universal < r.x_regular);
  if (c == 1)
    ck_assert_double_eq(r.x_sound, 1);
  else /* P1 = 0: y_c^2 = (1 - x_c) / (1 - c^2) */
    ck_assert(c < 1 ? r.x_sound < 1 : r.x_sound > 1);
  double x0[2] = {0, r.x_sound}, y0[2], dy0[2];
  ck_assert_int_eq(khronon_ref_eval(&r, 2, x0, y0, dy0), 0);
  ck_assert_double_eq_tol(y0[0], 1, 1e-15);
  ck_assert_double_eq_tol(dy0[0], -0.5, 1e-12);
  double p1 = (1 - c * c) * y0[1] * y0[1] - (1 - r.x_sound);
  ck_assert_msg(fabs(p1) < 1e-12, "c = %g: P1(x_c) = %g", c, p1);

  double xmax = r.x_universal + 0.5 * (r.x_regular - r.x_universal), h = 1e-5, worst = 0;
  for (int k = 1; k < 200; k++) {
    double xk = xmax * k / 200, x[3] = {xk - h, xk, xk + h}, y[3], dy[3];
    ck_assert_msg(khronon_ref_eval(&r, 3, x, y, dy) == 0, "%s", sv_errmsg());
    /* y' agrees with the finite difference of y, and the ODE holds */
    ck_assert_double_eq_tol(dy[1], (y[2] - y[0]) / (2 * h), 1e-8);
    double res = khronon_residual(c, xk, y[1], dy[1], (dy[2] - dy[0]) / (2 * h));
    worst = fmax(worst, fabs(res));
  }
  ck_assert_msg(worst < 1e-8, "c = %g: max |residual| = %g", c, worst);
}
END_TEST

/* The finite-c solver tends to the closed form as O(1/c^2). */
START_TEST(khronon_large_c_limit) {
  double err[2], cs[2] = {100, 1000};
  for (int i = 0; i < 2; i++) {
    khronon_ref r;
    ck_assert_int_eq(khronon_ref_solve(cs[i], &r), 0);
    enum { N = 300 };
    double x[N], y[N];
    for (int k = 0; k < N; k++)
      x[k] = r.x_universal * k / (N - 1);
    ck_assert_int_eq(khronon_ref_eval(&r, N, x, y, NULL), 0);
    err[i] = 0;
    for (int k = 0; k < N; k++)
      err[i] = fmax(err[i], fabs(y[k] - khronon_exact_y(x[k])));
    if (i == 1) {
      ck_assert_double_eq_tol(r.x_universal, 4.0 / 3.0, 2e-6);
      ck_assert_double_eq_tol(r.x_sound, 4.0 / 3.0, 1e-3);
    }
  }
  ck_assert_msg(err[1] < 2e-6, "c = 1000: max |y - closed form| = %g", err[1]);
  ck_assert_msg(err[0] / err[1] > 30 && err[0] / err[1] < 300,
                "no O(1/c^2) convergence: errors %g (c = 100), %g (c = 1000)", err[0], err[1]);
}
END_TEST

START_TEST(khronon_refusals) {
  khronon_ref r;
  ck_assert_int_eq(khronon_ref_solve(0, &r), -1);
  ck_assert_int_eq(khronon_ref_solve(-2, &r), -1);
  ck_assert_int_eq(khronon_ref_solve(NAN, &r), -1);
  ck_assert_int_eq(khronon_ref_solve(2000, &r), -1); /* outside the checked range */
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "c = inf"));
  ck_assert_int_eq(khronon_ref_solve(0.001, &r), -1);
  ck_assert_int_eq(khronon_ref_solve(10, &r), 0);
  double bad[2] = {0.5, 0.2}, y[2];
  ck_assert_int_eq(khronon_ref_eval(&r, 2, bad, y, NULL), -1); /* unsorted */
  double past[1] = {r.x_regular + 0.01};
  ck_assert_int_eq(khronon_ref_eval(&r, 1, past, y, NULL), -1);
  double neg[1] = {-0.1};
  ck_assert_int_eq(khronon_ref_eval(&r, 1, neg, y, NULL), -1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Accretion                                                           */
/* ------------------------------------------------------------------ */

START_TEST(accretion_constants) {
  accretion_ref a;
  ck_assert_int_eq(accretion_ref_init(40.5, &a), 0);
  ck_assert_double_eq_tol(a.F, 0.18225, 1e-13);
  ck_assert_double_eq_tol(a.B, 1.02055903344, 5e-12);
  ck_assert_double_eq_tol(a.rho_c, 1e-3, 1e-15);
  ck_assert_double_eq_tol(a.cs2_c, 1.0 / 78, 1e-16);
  ck_assert_double_eq_tol(accretion_sound_speed2(&a, a.rho_c), 1.0 / 78, 1e-15);
}
END_TEST

START_TEST(accretion_check_values) {
  accretion_ref a;
  ck_assert_int_eq(accretion_ref_init(40.5, &a), 0);
  double rho, v;
  ck_assert_int_eq(accretion_ref_eval(&a, 20, &rho, &v), 0);
  ck_assert_double_eq_tol(rho, 2.27863098e-3, 5e-12);
  ck_assert_double_eq_tol(v, 0.206240391, 5e-10);
  ck_assert_int_eq(accretion_ref_eval(&a, 100, &rho, &v), 0);
  ck_assert_double_eq_tol(rho, 4.18733974e-4, 5e-13);
  ck_assert_double_eq_tol(v, 0.0439235020, 5e-11);
  ck_assert_int_eq(accretion_ref_eval(&a, 140.5, &rho, &v), 0);
  ck_assert_double_eq_tol(rho, 3.24197e-4, 5e-10);
  ck_assert_double_eq_tol(v, 0.0286708, 5e-8);
  ck_assert_int_eq(accretion_ref_eval(&a, 40.5, &rho, &v), 0);
  /* at r_c the two roots merge and rounding moves them by sqrt(eps) */
  ck_assert_double_eq_tol(rho, 1e-3, 1e-11);
  ck_assert_double_eq_tol(v * v, 1.0 / 78, 1e-10);
}
END_TEST

/* Both conserved quantities hold everywhere, the flow is transonic at
   r_c, and rho, v are smooth through it: a switch to the other branch at
   the X-point would be a kink, a second difference ~ 1e-2 of the value. */
START_TEST(accretion_conservation_and_branch) {
  accretion_ref a;
  ck_assert_int_eq(accretion_ref_init(40.5, &a), 0);
  enum { N = 1206 };
  static double rho[N], v[N];
  for (int k = 0; k < N; k++) {
    double r = 20 + 0.1 * k;
    ck_assert_msg(accretion_ref_eval(&a, r, &rho[k], &v[k]) == 0, "%s", sv_errmsg());
    double f = 1 - 2 / r, gam = 1 / sqrt(1 - v[k] * v[k]);
    ck_assert_double_eq_tol(rho[k] * gam * v[k] * sqrt(f) * r * r / a.F, 1, 1e-13);
    ck_assert_double_eq_tol(accretion_enthalpy(&a, rho[k]) * gam * sqrt(f) / a.B, 1, 1e-14);
    double mach2 = v[k] * v[k] / accretion_sound_speed2(&a, rho[k]);
    if (r < 40.45)
      ck_assert_msg(mach2 > 1, "subsonic at r = %g (the wrong branch)", r);
    if (r > 40.55)
      ck_assert_msg(mach2 < 1, "supersonic at r = %g (the wrong branch)", r);
    if (k > 0) /* both fall outwards */
      ck_assert(rho[k] < rho[k - 1] && v[k] < v[k - 1]);
    if (k > 1) {
      double d2rho = fabs(rho[k] - 2 * rho[k - 1] + rho[k - 2]) / rho[k - 1];
      double d2v = fabs(v[k] - 2 * v[k - 1] + v[k - 2]) / v[k - 1];
      ck_assert_msg(d2rho < 2e-4 && d2v < 2e-4, "kink at r = %g: %g %g", r, d2rho, d2v);
    }
  }
}
END_TEST

START_TEST(accretion_refusals) {
  accretion_ref a;
  ck_assert_int_eq(accretion_ref_init(1.5, &a), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "3M/2"));
  ck_assert_int_eq(accretion_ref_init(1.0, &a), -1);
  ck_assert_int_eq(accretion_ref_init(2.9, &a), -1); /* c_s^2 above Gamma - 1 */
  ck_assert_int_eq(accretion_ref_init(NAN, &a), -1);
  ck_assert_int_eq(accretion_ref_init(40.5, &a), 0);
  double rho, v;
  ck_assert_int_eq(accretion_ref_eval(&a, 2.0, &rho, &v), -1);
  ck_assert_int_eq(accretion_ref_eval(&a, 1.0, &rho, &v), -1);
  /* another sonic radius: its own sonic point */
  ck_assert_int_eq(accretion_ref_init(10, &a), 0);
  ck_assert_int_eq(accretion_ref_eval(&a, 10, &rho, &v), 0);
  ck_assert_double_eq_tol(v * v, 1.0 / 17, 1e-10);
  ck_assert_double_eq_tol(rho, a.rho_c, 1e-9 * a.rho_c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Frobenius solutions at regular singular points (pinn.h)             */
/* ------------------------------------------------------------------ */

static pinn_linear_ode hyperg_ode(double a, double b, double c) {
  pinn_linear_ode o = {2, {0, 1, -1}, {c, -(a + b + 1)}, {-a * b}};
  return o;
}

/* max over the window of |u - k v| / max |u|, k fitted at the window's
   end (u and v should be proportional) */
static double proportional(const pinn_frobenius *f, int b, double (*v)(double, void *),
                           void *ctx) {
  double k = pinn_frobenius_eval(f, b, f->hi) / v(f->hi, ctx), worst = 0;
  for (int i = 0; i <= 100; i++) {
    double x = f->lo + (f->hi - f->lo) * i / 100.0;
    worst = fmax(worst, fabs(pinn_frobenius_eval(f, b, x) - k * v(x, ctx)));
  }
  return worst;
}

typedef struct { double a, b, c; } abc;

/* 2F1(a, b; a + b - c + 1; 1 - x): the exponent-0 solution at x = 1 */
static double u0_at_1(double x, void *vp) {
  abc *p = vp;
  return gsl_sf_hyperg_2F1(p->a, p->b, p->a + p->b - p->c + 1, 1 - x);
}

/* 2F1(-3, 1; 1/2; x) = 1 - 6x + 8x^2 - 16x^3/5 */
static double poly_311half(double x, void *vp) {
  (void)vp;
  return 1 - 6 * x + 8 * x * x - 3.2 * x * x * x;
}

/* Non-integer rho: only u_0 is analytic; it is GSL's 2F1 in 1 - x. */
START_TEST(frobenius_hyperg_noninteger) {
  abc p = {-3, 1, 0.5}; /* rho = 2.5 */
  pinn_linear_ode o = hyperg_ode(p.a, p.b, p.c);
  pinn_frobenius f;
  ck_assert_int_eq(pinn_frobenius_local(&o, 1.0, 0.5, 0, 2, &f), 0);
  ck_assert_double_eq_tol(f.rho, 2.5, 1e-15);
  ck_assert_int_eq(f.integer_rho, 0);
  ck_assert_int_eq(f.nbasis, 1);
  ck_assert_double_eq_tol(f.radius, 1, 1e-14);
  ck_assert_double_eq_tol(f.lo, 0.5, 1e-15);
  ck_assert_double_eq_tol(f.hi, 1.5, 1e-15);
  ck_assert_int_eq(f.residual_decides, 0);
  /* the polynomial 2F1(-3, 1; 1/2; x) has no |1 - x|^2.5 part: it is u_0 */
  ck_assert_msg(proportional(&f, 0, poly_311half, NULL) < 1e-13,
                "2F1(-3, 1; 1/2; x) is not u_0");
  abc q = {-0.3, 0.7, 1.9}; /* non-terminating: rho = 1.5, a true series */
  pinn_linear_ode o2 = hyperg_ode(q.a, q.b, q.c);
  ck_assert_int_eq(pinn_frobenius_local(&o2, 1.0, 0.5, 0, 2, &f), 0);
  ck_assert_int_eq(f.nbasis, 1);
  ck_assert_int_gt(f.terms[0], 20);
  ck_assert_msg(proportional(&f, 0, u0_at_1, &q) < 1e-13, "u_0 is not 2F1(a, b; a+b-c+1; 1-x)");
}
END_TEST

static double cube(double x, void *vp) { (void)vp; return (1 - x) * (1 - x) * (1 - x); }

/* (-3, 1, 1): rho = 3, the exponent-0 solution has a log; the analytic one
   is (1 - x)^3 = 2F1(-3, 1; 1; x) itself. */
START_TEST(frobenius_hyperg_log_case) {
  pinn_linear_ode o = hyperg_ode(-3, 1, 1);
  pinn_frobenius f;
  ck_assert_int_eq(pinn_frobenius_local(&o, 1.0, 0.5, 0, 2, &f), 0);
  ck_assert_int_eq(f.integer_rho, 1);
  ck_assert_double_eq(f.rho, 3);
  ck_assert_int_eq(f.logarithmic, 1);
  ck_assert_int_eq(f.nbasis, 1);
  ck_assert_int_eq(f.exponent[0], 3);
  ck_assert_msg(proportional(&f, 0, cube, NULL) < 1e-15, "u_3 is not (1 - x)^3");
  char buf[256];
  ck_assert_ptr_nonnull(strstr(pinn_frobenius_describe(&f, buf, sizeof buf), "log"));
}
END_TEST

/* (-1, 1, 3): rho = 3 and the recursion passes n = 3 (a + 1 = 0 kills
   c_2): both local solutions are analytic, and the polynomial 1 - x/3 is a
   combination of them on both sides. */
START_TEST(frobenius_hyperg_two_analytic) {
  pinn_linear_ode o = hyperg_ode(-1, 1, 3);
  pinn_frobenius f;
  ck_assert_int_eq(pinn_frobenius_local(&o, 1.0, 0.5, 0, 2, &f), 0);
  ck_assert_int_eq(f.nbasis, 2);
  ck_assert_int_eq(f.logarithmic, 0);
  ck_assert_int_eq(f.exponent[0], 0);
  ck_assert_int_eq(f.exponent[1], 3);
  /* fit y = 1 - x/3 at two points, check everywhere on the window */
  double x1 = 0.6, x2 = 1.4, m11 = pinn_frobenius_eval(&f, 0, x1), m12 = pinn_frobenius_eval(&f, 1, x1);
  double m21 = pinn_frobenius_eval(&f, 0, x2), m22 = pinn_frobenius_eval(&f, 1, x2);
  double y1 = 1 - x1 / 3, y2 = 1 - x2 / 3, det = m11 * m22 - m12 * m21;
  double c0 = (y1 * m22 - m12 * y2) / det, c1 = (m11 * y2 - m21 * y1) / det, worst = 0;
  for (int i = 0; i <= 100; i++) {
    double x = 0.5 + i / 100.0;
    worst = fmax(worst, fabs(c0 * pinn_frobenius_eval(&f, 0, x) + c1 * pinn_frobenius_eval(&f, 1, x) -
                             (1 - x / 3)));
  }
  ck_assert_msg(worst < 1e-14, "1 - x/3 is no combination of the analytic solutions: %g", worst);
}
END_TEST

/* Non-positive rho: the second solution is singular, the residual decides. */
START_TEST(frobenius_hyperg_negative_rho) {
  pinn_linear_ode o = hyperg_ode(-1, 5, 2); /* rho = -2 */
  pinn_frobenius f;
  ck_assert_int_eq(pinn_frobenius_local(&o, 1.0, 0.5, 0, 2, &f), 0);
  ck_assert_double_eq(f.rho, -2);
  ck_assert_int_eq(f.nbasis, 1);
  ck_assert_int_eq(f.exponent[0], 0);
  ck_assert_int_eq(f.residual_decides, 1);
  /* the polynomial 2F1(-1, 5; 2; x) = 1 - 5x/2 is u_0 */
  double k = pinn_frobenius_eval(&f, 0, 1.5) / (1 - 2.5 * 1.5), worst = 0;
  for (int i = 0; i <= 100; i++) {
    double x = 0.5 + i / 100.0;
    worst = fmax(worst, fabs(pinn_frobenius_eval(&f, 0, x) - k * (1 - 2.5 * x)));
  }
  ck_assert_msg(worst < 1e-14, "u_0 is not 1 - 5x/2: %g", worst);
}
END_TEST

/* Legendre at x = 1: exponents 0 and 0, u_0 = P_n (radius 2, to x = -1). */
START_TEST(frobenius_legendre) {
  for (int n = 0; n <= 12; n++) {
    pinn_linear_ode o = {2, {1, 0, -1}, {0, -2}, {(double)n * (n + 1)}};
    pinn_frobenius f;
    ck_assert_int_eq(pinn_frobenius_local(&o, 1.0, 0.5, -1, 1, &f), 0);
    ck_assert_double_eq(f.rho, 0);
    ck_assert_double_eq_tol(f.radius, 2, 1e-14);
    ck_assert_int_eq(f.nbasis, 1);
    ck_assert_double_eq_tol(f.lo, 0, 1e-15);
    ck_assert_double_eq_tol(f.hi, 1, 1e-15);
    double k = 1 / pinn_frobenius_eval(&f, 0, 1.0), worst = 0;
    for (int i = 0; i <= 100; i++) {
      double x = i / 100.0;
      worst = fmax(worst, fabs(k * pinn_frobenius_eval(&f, 0, x) - gsl_sf_legendre_Pl(n, x)));
    }
    /* the terms of P_n in powers of (x - 1) reach 3e5 at n = 12 on this
       window (k = 6 at x = 0) and cancel to |P_n| <= 1: round-off 1e-10 */
    ck_assert_msg(worst < 1e-9, "n = %d: u_0 differs from P_n by %g", n, worst);
  }
}
END_TEST

START_TEST(frobenius_refusals) {
  pinn_frobenius f;
  pinn_linear_ode o = hyperg_ode(-2, 1, 1);
  ck_assert_int_eq(pinn_frobenius_local(&o, 0.5, 0.5, 0, 2, &f), -1); /* P(0.5) != 0 */
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "not a singular point"));
  pinn_linear_ode dbl = {2, {0, 0, 1}, {1, 0}, {1}}; /* x^2 y'' + y' + y: irregular */
  ck_assert_int_eq(pinn_frobenius_local(&dbl, 0, 0.5, 0, 1, &f), -1);
  ck_assert_ptr_nonnull(strstr(sv_errmsg(), "multiple zero"));
  ck_assert_int_eq(pinn_frobenius_local(&o, 3, 0.5, 0, 2, &f), -1); /* outside */
  ck_assert_int_eq(pinn_frobenius_local(&o, 1, 0, 0, 2, &f), -1);   /* no window */
}
END_TEST

static Suite *references_suite(void) {
  Suite *s = suite_create("references");
  TCase *k = tcase_create("khronon");
  tcase_set_timeout(k, 0);
  tcase_add_test(k, khronon_closed_form);
  tcase_add_test(k, khronon_limit_reference);
  tcase_add_test(k, khronon_c10_horizons);
  tcase_add_loop_test(k, khronon_shooting_residual, 0,
                      (int)(sizeof khronon_speeds / sizeof khronon_speeds[0]));
  tcase_add_test(k, khronon_large_c_limit);
  tcase_add_test(k, khronon_refusals);
  suite_add_tcase(s, k);
  TCase *a = tcase_create("accretion");
  tcase_set_timeout(a, 0);
  tcase_add_test(a, accretion_constants);
  tcase_add_test(a, accretion_check_values);
  tcase_add_test(a, accretion_conservation_and_branch);
  tcase_add_test(a, accretion_refusals);
  suite_add_tcase(s, a);
  TCase *fr = tcase_create("frobenius");
  tcase_set_timeout(fr, 0);
  tcase_add_test(fr, frobenius_hyperg_noninteger);
  tcase_add_test(fr, frobenius_hyperg_log_case);
  tcase_add_test(fr, frobenius_hyperg_two_analytic);
  tcase_add_test(fr, frobenius_hyperg_negative_rho);
  tcase_add_test(fr, frobenius_legendre);
  tcase_add_test(fr, frobenius_refusals);
  suite_add_tcase(s, fr);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(references_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
