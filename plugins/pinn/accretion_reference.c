/*
 * accretion_reference.c -- Michel accretion from the mass flux and the
 * Bernoulli constant, by Brent's method on the density.
 *
 * At fixed r, Phi(rho) = rho r^2 sqrt((B/h)^2 - f) (= F on the flow) is 0
 * at rho = 0, rises to a maximum where v^2 = c_s^2 (the sonic density)
 * and falls to 0 at rho_max, where h = B / sqrt(f). The supersonic root
 * lies below the sonic density, the subsonic one above; the transonic
 * accretion flow is subsonic outside r_c and supersonic inside.
 *
 * Near r_c the two roots merge: Phi - F is then a difference of nearly
 * equal numbers and the root moves by sqrt(rounding), so Phi, F and B are
 * kept in long double there (on x86-64 that leaves ~3e-10 relative error
 * in rho right at r_c, and far less elsewhere).
 */
#include "accretion_reference.h"

#include <solver.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_roots.h>
#include <math.h>
#include <string.h>

static long double theta_of(const accretion_ref *ref, long double rho) {
  return (long double)ref->K * powl(rho, (long double)ref->gamma - 1);
}

static long double enthalpy_l(const accretion_ref *ref, long double rho) {
  long double n = (long double)ref->gamma / ((long double)ref->gamma - 1);
  return 1 + n * theta_of(ref, rho);
}

double accretion_enthalpy(const accretion_ref *ref, double rho) {
  return (double)enthalpy_l(ref, rho);
}

double accretion_sound_speed2(const accretion_ref *ref, double rho) {
  long double th = theta_of(ref, rho);
  return (double)((long double)ref->gamma * th / enthalpy_l(ref, rho));
}

int accretion_ref_init(double r_sonic, accretion_ref *ref) {
  memset(ref, 0, sizeof *ref);
  ref->M = ACCRETION_M;
  ref->K = ACCRETION_K;
  ref->gamma = ACCRETION_GAMMA;
  const long double M = ref->M, G = ref->gamma, n = G / (G - 1);
  if (!isfinite(r_sonic) || r_sonic <= 1.5 * ref->M)
    return sv_fail("accretion: sonic radius r_c = %g M must be > 3M/2 = %g M (inside the "
                   "photon sphere c_s^2 = M/(2 r_c - 3M) is negative or infinite)",
                   r_sonic, 1.5 * ref->M);
  long double a = M / (2 * (long double)r_sonic - 3 * M); /* c_s^2 = v^2 at r_c */
  if (a >= G - 1)
    return sv_fail("accretion: sonic radius r_c = %g M needs c_s^2 = %g at the sonic point, "
                   "but a polytrope with Gamma = %g stays below Gamma - 1 = %g: use "
                   "r_c > %g M", r_sonic, (double)a, ref->gamma, ref->gamma - 1,
                   (double)((M / (G - 1) + 3 * M) / 2));
  /* c_s^2 = Gamma theta / (1 + n theta) = a  =>  theta = a / (Gamma - n a) */
  long double theta = a / (G - n * a);
  long double rho_c = powl(theta / ref->K, 1 / (G - 1));
  long double f_c = 1 - 2 * M / r_sonic, lorentz = 1 / sqrtl(1 - a);
  ref->r_c = r_sonic;
  ref->rho_c = (double)rho_c;
  ref->cs2_c = (double)a;
  ref->F_l = rho_c * lorentz * sqrtl(a) * sqrtl(f_c) * (long double)r_sonic * r_sonic;
  ref->B_l = (1 + n * theta) * lorentz * sqrtl(f_c);
  ref->F = (double)ref->F_l;
  ref->B = (double)ref->B_l;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Root finding                                                        */
/* ------------------------------------------------------------------ */

typedef struct {
  const accretion_ref *ref;
  long double r, f;
} at_radius;

/* Phi(rho) - F; negative past rho_max (no real flow there). */
static double flux_gap(double rho, void *vp) {
  const at_radius *a = vp;
  long double q = a->ref->B_l / enthalpy_l(a->ref, rho);
  long double w2 = q * q - a->f;
  if (w2 <= 0)
    return (double)-a->ref->F_l;
  return (double)((long double)rho * a->r * a->r * sqrtl(w2) - a->ref->F_l);
}

/* v^2 - c_s^2 along the Bernoulli constant: decreasing in rho. */
static double sonic_gap(double rho, void *vp) {
  const at_radius *a = vp;
  long double h = enthalpy_l(a->ref, rho), q = a->ref->B_l / h;
  long double v2 = 1 - a->f / (q * q);
  return (double)(v2 - (long double)accretion_sound_speed2(a->ref, rho));
}

static int brent(gsl_function *fn, double lo, double hi, double *root) {
  gsl_root_fsolver *s = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
  if (!s)
    return sv_fail("accretion reference: out of memory");
  int converged = 0;
  if (gsl_root_fsolver_set(s, fn, lo, hi) == GSL_SUCCESS) {
    for (int it = 0; it < 300 && !converged; it++) {
      if (gsl_root_fsolver_iterate(s) != GSL_SUCCESS)
        break;
      converged = gsl_root_test_interval(gsl_root_fsolver_x_lower(s),
                                         gsl_root_fsolver_x_upper(s), 0,
                                         2 * GSL_DBL_EPSILON) == GSL_SUCCESS;
    }
  }
  *root = gsl_root_fsolver_root(s);
  gsl_root_fsolver_free(s);
  return converged ? 0 : sv_fail("accretion reference: Brent did not converge on [%g, %g]",
                                 lo, hi);
}

/* The density where h = B / sqrt(f): v = 0 there. */
static double rho_max_at(const accretion_ref *ref, long double f) {
  long double G = ref->gamma, n = G / (G - 1);
  long double theta = (ref->B_l / sqrtl(f) - 1) / n;
  return (double)powl(theta / ref->K, 1 / (G - 1));
}

static int check_radius(const accretion_ref *ref, double r) {
  if (!(r > 2 * ref->M) || !isfinite(r))
    return sv_fail("accretion reference: radius r = %g must lie outside the horizon 2M = %g",
                   r, 2 * ref->M);
  return 0;
}

int accretion_ref_sonic_density(const accretion_ref *ref, double r, double *rho_s) {
  if (check_radius(ref, r))
    return -1;
  at_radius a = {ref, r, 1 - 2 * (long double)ref->M / r};
  gsl_function fn = {sonic_gap, &a};
  double hi = rho_max_at(ref, a.f);
  /* sonic_gap(0) = 1 - f/B^2 > 0 (B > 1 for inflow from rest at infinity) */
  if (!(sonic_gap(0, &a) > 0) || !(sonic_gap(hi, &a) < 0))
    return sv_fail("accretion reference: no sonic density at r = %g", r);
  gsl_error_handler_t *old = gsl_set_error_handler_off();
  int rc = brent(&fn, 0, hi, rho_s);
  gsl_set_error_handler(old);
  return rc;
}

int accretion_ref_eval(const accretion_ref *ref, double r, double *rho, double *v) {
  double rho_s;
  if (accretion_ref_sonic_density(ref, r, &rho_s))
    return sv_fail_context("accretion reference at r = %g", r);
  at_radius a = {ref, r, 1 - 2 * (long double)ref->M / r};
  gsl_function fn = {flux_gap, &a};
  double lo, hi, root;
  if (r > ref->r_c) { /* subsonic */
    lo = rho_s;
    hi = rho_max_at(ref, a.f);
  } else {            /* supersonic */
    lo = 0;
    hi = rho_s;
  }
  int rc = 0;
  if (flux_gap(rho_s, &a) <= 0) {
    /* the roots have merged (r at r_c up to rounding) */
    root = rho_s;
  } else {
    gsl_error_handler_t *old = gsl_set_error_handler_off();
    rc = brent(&fn, lo, hi, &root);
    gsl_set_error_handler(old);
    if (rc)
      return sv_fail_context("accretion reference at r = %g", r);
  }
  /* v from the mass flux: gamma v = F / (rho sqrt(f) r^2) */
  long double w = ref->F_l / ((long double)root * sqrtl(a.f) * (long double)r * r);
  *rho = root;
  *v = (double)(w / sqrtl(1 + w * w));
  return rc;
}
