/*
 * khronon_reference.c -- the khronon reference: closed form for
 * c -> infinity, shooting on the sound horizon for finite c.
 *
 * Near x = 0 the spec's y-equation is a ratio of vanishing quantities
 * (P2 = (u^r)^2 ~ x^4), so the inner part is integrated for u = u^r =
 * -sqrt(y^2 - f) instead. Substituting y^2 = f + u^2 gives (checked
 * symbolically: E_y = (u/y)^3 E_u)
 *
 *     E_u:  P1 y^2 x^2 u'' = u [x^2 (1/4 - f u'^2 - u u') - 2 c^2 y^4],
 *           P1 = (1 - c^2) u^2 - c^2 f,
 *
 * which has no cancellation at small x: there u'' ~ 2u/x^2, so
 * u = a x^2 + b/x. The regular solution (y -> 1 - x/2, y(0) = 1) is b = 0;
 * the b/x mode grows towards x = 0 and makes y diverge.
 *
 * At the sound horizon P1 = 0 the right-hand side must vanish too:
 * f u'^2 + u u' + 2 c^2 y^4 / x^2 - 1/4 = 0 with y^2 = u^2 / c^2, a
 * quadratic in u'. Its root that stays finite when f -> 0 (c -> 1) is
 * the physical one (the other gives no regular solution); u'' there
 * follows from l'Hopital. The shooting parameter is p = u_c^2, so that
 * x_c = 1 - p (1 - c^2) / c^2 and c = 1 (x_c = 1) needs no special case.
 *
 * Shooting: step off x_c by STEP_OFF with the Taylor polynomial, integrate
 * E_u inwards to X_MATCH and measure b = x (2u - x u') / 3; Brent on p
 * makes b vanish. Outwards, E_u is singular where y = 0 (the universal
 * horizon) while the y-equation is not (P2 > 0 there), so the outer part
 * integrates the spec's equation for y.
 */
#include "khronon_reference.h"

#include <solver.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>
#include <gsl/gsl_roots.h>
#include <math.h>
#include <string.h>

#ifndef STEP_OFF
#define STEP_OFF 1e-6   /* Taylor step off the sound horizon */
#endif
#ifndef X_MATCH
#define X_MATCH 1e-3    /* where b is measured; below it u = a x^2 */
#endif
#ifndef EPS_REL
#define EPS_REL 1e-13   /* ODE tolerances */
#endif
#define EPS_ABS 1e-16
#define SCAN_POINTS 96  /* coarse scan of p for a sign change of b */
#define OUT_CHUNK (1.0 / 1024) /* outward scan step for the horizons */

/* ------------------------------------------------------------------ */
/* Closed form and residual                                            */
/* ------------------------------------------------------------------ */

double khronon_exact_y(double x) {
  return (1 - 0.75 * x) * sqrt(1 + 0.5 * x + 0.1875 * x * x);
}

double khronon_exact_dy(double x) {
  double s = sqrt(1 + 0.5 * x + 0.1875 * x * x), ds = (0.5 + 0.375 * x) / (2 * s);
  return -0.75 * s + (1 - 0.75 * x) * ds;
}

double khronon_exact_d2y(double x) {
  double q1 = 0.5 + 0.375 * x, s = sqrt(1 + 0.5 * x + 0.1875 * x * x);
  double ds = q1 / (2 * s), d2s = 0.375 / (2 * s) - q1 * q1 / (4 * s * s * s);
  return -1.5 * ds + (1 - 0.75 * x) * d2s;
}

double khronon_residual(double c, double x, double y, double dy, double d2y) {
  double f = 1 - x, p2 = y * y - f;
  double bracket = x * x * (f * dy * dy + y * dy + 0.25) + 2 * p2 * p2;
  if (isinf(c))
    return -y * y * p2 * x * x * d2y + y * bracket;
  double p1 = p2 - c * c * y * y, scale = c * c > 1 ? c * c : 1;
  return (p1 * p2 * x * x * d2y + c * c * y * bracket) / scale;
}

/* ------------------------------------------------------------------ */
/* The two forms of the equation                                       */
/* ------------------------------------------------------------------ */

typedef struct {
  double c;
} ode_params;

/* E_u as a first-order system for (u, u'). */
static int rhs_u(double x, const double s[], double ds[], void *vp) {
  double c = ((const ode_params *)vp)->c, u = s[0], du = s[1];
  double f = 1 - x, y2 = f + u * u, p1 = (1 - c * c) * u * u - c * c * f;
  double num = u * (x * x * (0.25 - f * du * du - u * du) - 2 * c * c * y2 * y2);
  double den = p1 * y2 * x * x;
  ds[0] = du;
  ds[1] = num / den;
  return den == 0 || !isfinite(ds[1]) ? GSL_EBADFUNC : GSL_SUCCESS;
}

/* The spec's equation for (y, y'). */
static int rhs_y(double x, const double s[], double ds[], void *vp) {
  double c = ((const ode_params *)vp)->c, y = s[0], dy = s[1];
  double f = 1 - x, p2 = y * y - f, p1 = p2 - c * c * y * y;
  double bracket = x * x * (f * dy * dy + y * dy + 0.25) + 2 * p2 * p2;
  double den = p1 * p2 * x * x;
  ds[0] = dy;
  ds[1] = -c * c * y * bracket / den;
  return den == 0 || !isfinite(ds[1]) ? GSL_EBADFUNC : GSL_SUCCESS;
}

static gsl_odeiv2_driver *driver_new(gsl_odeiv2_system *sys, double h0) {
  return gsl_odeiv2_driver_alloc_y_new(sys, gsl_odeiv2_step_rk8pd, h0, EPS_ABS, EPS_REL);
}

/* ------------------------------------------------------------------ */
/* The sound horizon for a given p = u_c^2                             */
/* ------------------------------------------------------------------ */

typedef struct {
  double x, u, du, d2u;
} horizon;

/* 0, or -1 when p gives no real regular crossing (no sv_fail: the scan
   just skips such p). */
static int horizon_at(double c, double p, horizon *h) {
  double x = c == 1 ? 1 : 1 - p * (1 - c * c) / (c * c);
  if (!(p > 0) || !(x > 0))
    return -1;
  double u = -sqrt(p), f = 1 - x, y2 = p / (c * c);
  double k = 2 * c * c * y2 * y2 / (x * x) - 0.25;
  double disc = u * u - 4 * f * k;
  if (disc < 0)
    return -1;
  /* f du^2 + u du + k = 0: the root finite as f -> 0, without cancellation */
  double du = 2 * k / (-u + sqrt(disc));
  /* l'Hopital: d/dx of numerator and denominator of E_u, where the
     numerator's bracket G vanishes: u'' D'= u G'(u''), linear in u''. */
  double dp1 = 2 * (1 - c * c) * u * du + c * c;
  double num = u * (2 * x * (0.25 - f * du * du - u * du) - 4 * c * c * y2 * (2 * u * du - 1));
  double den = x * x * (dp1 * y2 + u * (2 * f * du + u));
  if (den == 0)
    return -1;
  h->x = x;
  h->u = u;
  h->du = du;
  h->d2u = num / den;
  return isfinite(h->d2u) ? 0 : -1;
}

/* u, u' at x_c + dx from the Taylor polynomial. */
static void horizon_taylor(const horizon *h, double dx, double *u, double *du) {
  *u = h->u + h->du * dx + 0.5 * h->d2u * dx * dx;
  *du = h->du + h->d2u * dx;
}

/* ------------------------------------------------------------------ */
/* Shooting                                                            */
/* ------------------------------------------------------------------ */

/*
 * b = x (2u - x u') / 3 at X_MATCH for the solution through the horizon
 * of p. A trajectory whose b/x mode blows up before X_MATCH (P1 or y
 * vanishing again) still has the sign of b where it stopped; that value
 * is returned with *reached = 0. Brent only needs the sign far from the
 * root, and near the root the integration reaches X_MATCH.
 */
static int shoot(double c, double p, double *b, int *reached) {
  horizon h;
  if (horizon_at(c, p, &h))
    return -1;
  ode_params par = {c};
  gsl_odeiv2_system sys = {rhs_u, NULL, 2, &par};
  gsl_odeiv2_driver *d = driver_new(&sys, -STEP_OFF);
  if (!d)
    return -1;
  /* a trajectory running into a singularity stops early */
  gsl_odeiv2_driver_set_hmin(d, 1e-10);
  gsl_odeiv2_driver_set_nmax(d, 20000);
  double s[2], x = h.x - STEP_OFF;
  horizon_taylor(&h, -STEP_OFF, &s[0], &s[1]);
  *reached = 0;
  *b = x * (2 * s[0] - x * s[1]) / 3;
  /* geometric chunks so that a blow-up is caught where it starts */
  for (int k = 1; k <= 48; k++) {
    double target = h.x * pow(X_MATCH / h.x, k / 48.0);
    double saved[2] = {s[0], s[1]}, xs = x;
    if (gsl_odeiv2_driver_apply(d, &x, target, s) != GSL_SUCCESS) {
      s[0] = saved[0];
      s[1] = saved[1];
      x = xs;
      break;
    }
    *b = x * (2 * s[0] - x * s[1]) / 3;
    if (fabs(*b) > 1)
      break;
    if (k == 48)
      *reached = 1;
  }
  gsl_odeiv2_driver_free(d);
  return 0;
}

typedef struct {
  double c;
  int failed;
} shoot_params;

static double shoot_fn(double p, void *vp) {
  shoot_params *sp = vp;
  double b;
  int reached;
  if (shoot(sp->c, p, &b, &reached)) {
    sp->failed = 1;
    return 0;
  }
  return b;
}

/* The range of p to scan: x_c in (1, 4/3 + margin) for c > 1, (0, 1) for
   c < 1, and u_c^2 in (0, 2) for c = 1. */
static double p_of_scan(double c, double t) {
  if (c > 1)
    return t * 0.36 * c * c / (c * c - 1); /* x_c up to 1.36 */
  if (c < 1)
    return t * c * c / (1 - c * c);
  return 2 * t;
}

static int solve_shooting(double c, double *p_out) {
  double plo = 0, phi = 0, blo = 0, bhi = 0, prev_p = 0, prev_b = 0;
  int have_prev = 0, found = 0;
  for (int i = 1; i < SCAN_POINTS && !found; i++) {
    double p = p_of_scan(c, (double)i / SCAN_POINTS), b;
    int reached;
    if (shoot(c, p, &b, &reached)) {
      have_prev = 0;
      continue;
    }
    if (have_prev && (prev_b < 0) != (b < 0)) {
      plo = prev_p;
      blo = prev_b;
      phi = p;
      bhi = b;
      found = 1;
    }
    prev_p = p;
    prev_b = b;
    have_prev = 1;
  }
  if (!found)
    return sv_fail("khronon reference: no regular solution found for c = %g "
                   "(no sign change of the shooting function)", c);
  if (blo == 0 || bhi == 0) {
    *p_out = blo == 0 ? plo : phi;
    return 0;
  }
  shoot_params sp = {c, 0};
  gsl_function fn = {shoot_fn, &sp};
  gsl_root_fsolver *s = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
  if (!s)
    return sv_fail("khronon reference: out of memory");
  gsl_root_fsolver_set(s, &fn, plo, phi);
  int status = GSL_CONTINUE;
  for (int it = 0; it < 200 && status == GSL_CONTINUE && !sp.failed; it++) {
    if (gsl_root_fsolver_iterate(s) != GSL_SUCCESS)
      break;
    status = gsl_root_test_interval(gsl_root_fsolver_x_lower(s), gsl_root_fsolver_x_upper(s),
                                    0, 4 * GSL_DBL_EPSILON);
  }
  double p = gsl_root_fsolver_root(s);
  gsl_root_fsolver_free(s);
  if (sp.failed || status != GSL_SUCCESS)
    return sv_fail("khronon reference: Brent on the sound horizon did not converge "
                   "for c = %g", c);
  double b;
  int reached;
  if (shoot(c, p, &b, &reached) || !reached)
    return sv_fail("khronon reference: the solution for c = %g does not reach x = %g",
                   c, X_MATCH);
  *p_out = p;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Outwards: the universal horizon and the end of regularity           */
/* ------------------------------------------------------------------ */

/* y, y' at x_c + STEP_OFF. */
static void outer_start(const khronon_ref *ref, double s[2]) {
  horizon h = {ref->x_sound, ref->u_c, ref->du_c, ref->d2u_c};
  double u, du;
  horizon_taylor(&h, STEP_OFF, &u, &du);
  double x = h.x + STEP_OFF, y = sqrt(1 - x + u * u);
  s[0] = y;
  s[1] = (u * du - 0.5) / y;
}

typedef struct {
  double c, x0, s0[2];
  int failed;
} yroot_params;

/* y at x by integrating from a stored state. */
static double y_from(double x, void *vp) {
  yroot_params *yp = vp;
  ode_params par = {yp->c};
  gsl_odeiv2_system sys = {rhs_y, NULL, 2, &par};
  double s[2] = {yp->s0[0], yp->s0[1]}, t = yp->x0;
  if (x == t)
    return s[0];
  gsl_odeiv2_driver *d = driver_new(&sys, 1e-6);
  if (!d || gsl_odeiv2_driver_apply(d, &t, x, s) != GSL_SUCCESS)
    yp->failed = 1;
  if (d)
    gsl_odeiv2_driver_free(d);
  return s[0];
}

/* Brent on y between two points of the outward integration. */
static int universal_horizon(khronon_ref *ref, double xa, const double sa[2], double xb) {
  yroot_params yp = {ref->c, xa, {sa[0], sa[1]}, 0};
  gsl_function fn = {y_from, &yp};
  gsl_root_fsolver *rs = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
  if (!rs)
    return sv_fail("khronon reference: out of memory");
  int status = GSL_CONTINUE;
  gsl_root_fsolver_set(rs, &fn, xa, xb);
  for (int it = 0; it < 100 && status == GSL_CONTINUE && !yp.failed; it++) {
    if (gsl_root_fsolver_iterate(rs) != GSL_SUCCESS)
      break;
    status = gsl_root_test_interval(gsl_root_fsolver_x_lower(rs), gsl_root_fsolver_x_upper(rs),
                                    1e-15, 0);
  }
  ref->x_universal = gsl_root_fsolver_root(rs);
  gsl_root_fsolver_free(rs);
  if (status != GSL_SUCCESS || yp.failed)
    return sv_fail("khronon reference: Brent on the universal horizon failed for c = %g",
                   ref->c);
  return 0;
}

/*
 * Follow y outwards from the sound horizon: the universal horizon is the
 * zero of y. Past it, for c > 1, P1 = P2 - c^2 y^2 falls towards zero
 * again (a mirror image of the sound horizon, about as far past x_UH as
 * x_c is before it, or farther) and the solution turns sharply or becomes
 * singular there: x_regular is the minimum of P1 that follows its maximum
 * past x_UH (or where P1 vanishes, or the integration fails).
 */
static int find_outer_points(khronon_ref *ref) {
  ode_params par = {ref->c};
  gsl_odeiv2_system sys = {rhs_y, NULL, 2, &par};
  gsl_odeiv2_driver *d = driver_new(&sys, STEP_OFF);
  if (!d)
    return sv_fail("khronon reference: out of memory");
  double s[2], x = ref->x_sound + STEP_OFF, c2 = ref->c * ref->c, chunk = OUT_CHUNK;
  outer_start(ref, s);
  ref->x_universal = NAN;
  ref->x_regular = KHRONON_X_SCAN;
  double xa = x, sa[2] = {s[0], s[1]}, p1_prev = -INFINITY;
  int rc = 0, falling = 0;
  while (x < KHRONON_X_SCAN) {
    double target = fmin(x + chunk, KHRONON_X_SCAN);
    if (gsl_odeiv2_driver_apply(d, &x, target, s) != GSL_SUCCESS) {
      ref->x_regular = xa;
      break;
    }
    double f = 1 - x, p2 = s[0] * s[0] - f, p1 = p2 - c2 * s[0] * s[0];
    if (!(p1 > 0) || !(p2 > 0)) {
      ref->x_regular = xa;
      break;
    }
    if (isnan(ref->x_universal) && s[0] <= 0) {
      if (s[0] == 0)
        ref->x_universal = x;
      else if ((rc = universal_horizon(ref, xa, sa, x)) != 0)
        break;
      /* resolve the mirror point, as close to x_UH as x_c is */
      chunk = fmin(OUT_CHUNK, (ref->x_universal - ref->x_sound) / 64);
    }
    if (!isnan(ref->x_universal) && ref->c > 1) {
      if (p1 < p1_prev)
        falling = 1;
      else if (falling) { /* the minimum of P1 past its maximum */
        ref->x_regular = xa;
        break;
      }
      p1_prev = p1;
    }
    xa = x;
    sa[0] = s[0];
    sa[1] = s[1];
  }
  gsl_odeiv2_driver_free(d);
  if (rc == 0 && isnan(ref->x_universal))
    rc = sv_fail("khronon reference: no universal horizon (zero of y) found for c = %g "
                 "before x = %g", ref->c, ref->x_regular);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Public entry points                                                 */
/* ------------------------------------------------------------------ */

int khronon_ref_solve(double c, khronon_ref *ref) {
  memset(ref, 0, sizeof *ref);
  if (!(c > 0))
    return sv_fail("khronon reference: the khronon speed c must be > 0 (got %g)", c);
  if (!isinf(c) && (c < KHRONON_C_MIN || c > KHRONON_C_MAX))
    return sv_fail("khronon reference: c = %g is outside [%g, %g], where the shooting "
                   "reference is checked%s", c, KHRONON_C_MIN, KHRONON_C_MAX,
                   c > KHRONON_C_MAX ? "; beyond it the solution is within ~1/c^2 of the "
                                       "c -> infinity closed form: use c = inf" : "");
  ref->c = c;
  if (isinf(c)) {
    ref->x_sound = ref->x_universal = 4.0 / 3.0;
    ref->x_regular = KHRONON_X_SCAN;
    ref->u_c = -sqrt(1.0 / 3.0);
    ref->du_c = -sqrt(3.0) / 2;
    ref->d2u_c = -3 * sqrt(3.0) / 8;
    return 0;
  }
  /* GSL's default handler aborts; the reference reports errors instead. */
  gsl_error_handler_t *old = gsl_set_error_handler_off();
  double p = 0;
  int rc = solve_shooting(c, &p);
  if (rc == 0) {
    horizon h;
    if (horizon_at(c, p, &h))
      rc = sv_fail("khronon reference: the sound horizon for c = %g is degenerate", c);
    else {
      ref->x_sound = h.x;
      ref->u_c = h.u;
      ref->du_c = h.du;
      ref->d2u_c = h.d2u;
      rc = find_outer_points(ref);
    }
  }
  gsl_set_error_handler(old);
  return rc;
}

/* y, y' from u, u' (y > 0 inside the universal horizon). */
static void y_of_u(double x, double u, double du, double *y, double *dy) {
  double yy = sqrt(1 - x + u * u);
  *y = yy;
  if (dy)
    *dy = (u * du - 0.5) / yy;
}

/* Points x[0..n) <= x_c, from the largest down. */
static int eval_inner(const khronon_ref *ref, size_t n, const double *x, double *y, double *dy) {
  horizon h = {ref->x_sound, ref->u_c, ref->du_c, ref->d2u_c};
  ode_params par = {ref->c};
  gsl_odeiv2_system sys = {rhs_u, NULL, 2, &par};
  gsl_odeiv2_driver *d = driver_new(&sys, -STEP_OFF);
  if (!d)
    return sv_fail("khronon reference: out of memory");
  double s[2], t = h.x - STEP_OFF, a = NAN;
  horizon_taylor(&h, -STEP_OFF, &s[0], &s[1]);
  int rc = 0;
  for (size_t k = n; k-- > 0;) {
    double xk = x[k], u, du;
    if (xk > h.x - STEP_OFF) {
      horizon_taylor(&h, xk - h.x, &u, &du);
    } else if (xk >= X_MATCH) {
      if (gsl_odeiv2_driver_apply(d, &t, xk, s) != GSL_SUCCESS) {
        rc = sv_fail("khronon reference: integration failed at x = %g (c = %g)", t, ref->c);
        break;
      }
      u = s[0];
      du = s[1];
    } else {
      if (isnan(a)) { /* the regular part a x^2 of u = a x^2 + b/x at X_MATCH */
        if (t > X_MATCH && gsl_odeiv2_driver_apply(d, &t, X_MATCH, s) != GSL_SUCCESS) {
          rc = sv_fail("khronon reference: integration failed at x = %g (c = %g)", t,
                       ref->c);
          break;
        }
        a = (s[0] + t * s[1]) / (3 * t * t);
      }
      u = a * xk * xk;
      du = 2 * a * xk;
    }
    y_of_u(xk, u, du, &y[k], dy ? &dy[k] : NULL);
  }
  gsl_odeiv2_driver_free(d);
  return rc;
}

/* Points x[0..n) > x_c, from the smallest up. */
static int eval_outer(const khronon_ref *ref, size_t n, const double *x, double *y, double *dy) {
  horizon h = {ref->x_sound, ref->u_c, ref->du_c, ref->d2u_c};
  ode_params par = {ref->c};
  gsl_odeiv2_system sys = {rhs_y, NULL, 2, &par};
  gsl_odeiv2_driver *d = driver_new(&sys, STEP_OFF);
  if (!d)
    return sv_fail("khronon reference: out of memory");
  double s[2], t = h.x + STEP_OFF;
  outer_start(ref, s);
  int rc = 0;
  for (size_t k = 0; k < n; k++) {
    if (x[k] < t) {
      double u, du;
      horizon_taylor(&h, x[k] - h.x, &u, &du);
      y_of_u(x[k], u, du, &y[k], dy ? &dy[k] : NULL);
      continue;
    }
    if (gsl_odeiv2_driver_apply(d, &t, x[k], s) != GSL_SUCCESS) {
      rc = sv_fail("khronon reference: integration failed at x = %g (c = %g)", t, ref->c);
      break;
    }
    y[k] = s[0];
    if (dy)
      dy[k] = s[1];
  }
  gsl_odeiv2_driver_free(d);
  return rc;
}

int khronon_ref_eval(const khronon_ref *ref, size_t n, const double *x, double *y,
                     double *dy) {
  for (size_t k = 0; k < n; k++) {
    if (!(x[k] >= 0) || !(x[k] < ref->x_regular))
      return sv_fail("khronon reference: x = %g is outside [0, %g), where the solution "
                     "for c = %g is regular", x[k], ref->x_regular, ref->c);
    if (k > 0 && x[k] < x[k - 1])
      return sv_fail("khronon reference: evaluation points must be sorted ascending "
                     "(x[%zu] = %g < x[%zu] = %g)", k, x[k], k - 1, x[k - 1]);
  }
  if (isinf(ref->c)) {
    for (size_t k = 0; k < n; k++) {
      y[k] = khronon_exact_y(x[k]);
      if (dy)
        dy[k] = khronon_exact_dy(x[k]);
    }
    return 0;
  }
  size_t n_in = 0;
  while (n_in < n && x[n_in] <= ref->x_sound)
    n_in++;
  gsl_error_handler_t *old = gsl_set_error_handler_off();
  int rc = eval_inner(ref, n_in, x, y, dy);
  if (rc == 0)
    rc = eval_outer(ref, n - n_in, x + n_in, y + n_in, dy ? dy + n_in : NULL);
  gsl_set_error_handler(old);
  return rc;
}
