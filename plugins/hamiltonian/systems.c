/*
 * systems.c -- the six systems: their Hamiltonians with analytic gradients,
 * the initial-condition samplers (our choices, documented in `sampling`),
 * and trajectories integrated with GSL odeiv2 (rk8pd at tight tolerance).
 *
 * The paper (Song & Jeong, arXiv:2212.01168) fixes the systems, t in
 * [0, 10] and 200 points per trajectory; the ranges of the initial
 * conditions, the magnetic-mirror Hamiltonian and the rejection rules are
 * ours.
 */
#include "systems.h"

#include <solver.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

/* Close encounters: a trajectory whose particles come closer than this
   (at any integrator step) is rejected: the 1/r potential is then too steep
   for a smooth network and for the 200-point sampling. */
#define CLOSE_ENCOUNTER 0.3
/* Escapes: the mirror's guiding centre leaving |y| <= 4, or a particle of a
   gravitating system leaving |q| <= 4, rejects the trajectory. */
#define ESCAPE 4.0
/* Draws per accepted trajectory before giving up (a sampler bug, not chance). */
#define MAX_DRAWS_PER_TRAJ 200

static const ham_system_info systems[HAM_NSYSTEMS] = {
  {"mass_spring", 1, "|p|^2/2 + |q|^2/2",
   "the 4-vector (q, p) uniform on the sphere of energy E, E ~ U[0.1, 1]"},
  {"pendulum", 1, "p_x^2/2 + (1 - cos q_x); the pendulum angle and momentum are the x components, "
   "the y components are zero",
   "E ~ U[0.1, 1.5] (below the separatrix at 2), q_x uniform where 1 - cos q_x <= E, p_x = +-sqrt(2(E - V))"},
  {"henon_heiles", 1, "|p|^2/2 + (x^2 + y^2)/2 + x^2 y - y^3/3",
   "E ~ U[0.02, 0.16] (below 1/6), q uniform in the bounded well where V(q) < E, |p| = sqrt(2(E - V)) in a uniform direction"},
  {"magnetic_mirror", 1, "|p|^2/2 + x^2 (1 + y^2)/2 (our separable surrogate: gyration in x whose "
   "frequency sqrt(1 + y^2) grows along the axis y, so the adiabatic invariant reflects the "
   "guiding centre as a mirror field does)",
   "q ~ U[-1, 1]^2, p uniform in the unit disc, E in [0.1, 1]; escapes beyond |y| = 4 rejected"},
  {"two_body", 2, "|p_1|^2/2 + |p_2|^2/2 - 1/|q_1 - q_2|",
   "centre of mass at rest at 0, separation r ~ U[0.6, 1.4] in a uniform direction, tangential "
   "relative speed f sqrt(2/r) with f ~ U[0.8, 1.2]; close encounters (r < 0.3) rejected"},
  {"three_body", 3, "sum |p_i|^2/2 - sum_{i<j} 1/|q_i - q_j|",
   "the rotating equilateral (Lagrange) configuration on a circle of radius R ~ U[0.9, 1.2], "
   "positions perturbed by N(0, 0.05^2), speeds scaled by U[0.9, 1.1] plus N(0, 0.05^2), centre "
   "of mass at rest at 0; close encounters (< 0.3), escapes (|q| > 4) and E >= 0 rejected"},
};

const ham_system_info *ham_system(int id)
{
  return id >= 0 && id < HAM_NSYSTEMS ? &systems[id] : NULL;
}

int ham_system_find(const char *name)
{
  if (!name)
    return -1;
  for (int i = 0; i < HAM_NSYSTEMS; i++) {
    const char *a = systems[i].name, *b = name;
    while (*a && *b && (*a == *b || (*a == '_' && *b == '-')))
      a++, b++;
    if (!*a && !*b)
      return i;
  }
  return -1;
}

const char *ham_system_list(void)
{
  return "mass_spring, pendulum, henon_heiles, magnetic_mirror, two_body, three_body";
}

/* ------------------------------------------------------------------ */
/* Hamiltonians                                                        */
/* ------------------------------------------------------------------ */

/* Gravitating particles: the potential and its gradient (added to dH). */
static double gravity(int n, const double *x, double *dH)
{
  double V = 0;
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++) {
      double dx = x[4 * i] - x[4 * j], dy = x[4 * i + 1] - x[4 * j + 1];
      double r2 = dx * dx + dy * dy, r = sqrt(r2);
      V -= 1 / r;
      if (dH) {
        double c = 1 / (r2 * r); /* d(-1/r)/dq_i = (q_i - q_j) / r^3 */
        dH[4 * i] += c * dx;
        dH[4 * i + 1] += c * dy;
        dH[4 * j] -= c * dx;
        dH[4 * j + 1] -= c * dy;
      }
    }
  return V;
}

double ham_energy(int id, const double *x)
{
  int n = systems[id].nodes;
  double T = 0;
  for (int i = 0; i < n; i++)
    T += 0.5 * (x[4 * i + 2] * x[4 * i + 2] + x[4 * i + 3] * x[4 * i + 3]);
  double qx = x[0], qy = x[1];
  switch ((ham_system_id)id) {
  case HAM_MASS_SPRING: return T + 0.5 * (qx * qx + qy * qy);
  case HAM_PENDULUM: return T + (1 - cos(qx));
  case HAM_HENON_HEILES: return T + 0.5 * (qx * qx + qy * qy) + qx * qx * qy - qy * qy * qy / 3;
  case HAM_MAGNETIC_MIRROR: return T + 0.5 * qx * qx * (1 + qy * qy);
  case HAM_TWO_BODY:
  case HAM_THREE_BODY: return T + gravity(n, x, NULL);
  case HAM_NSYSTEMS: break;
  }
  return NAN;
}

void ham_gradient(int id, const double *x, double *dH)
{
  int n = systems[id].nodes;
  for (int i = 0; i < n; i++) {
    dH[4 * i] = dH[4 * i + 1] = 0;
    dH[4 * i + 2] = x[4 * i + 2];
    dH[4 * i + 3] = x[4 * i + 3];
  }
  double qx = x[0], qy = x[1];
  switch ((ham_system_id)id) {
  case HAM_MASS_SPRING:
    dH[0] = qx;
    dH[1] = qy;
    break;
  case HAM_PENDULUM:
    dH[0] = sin(qx);
    break;
  case HAM_HENON_HEILES:
    dH[0] = qx + 2 * qx * qy;
    dH[1] = qy + qx * qx - qy * qy;
    break;
  case HAM_MAGNETIC_MIRROR:
    dH[0] = qx * (1 + qy * qy);
    dH[1] = qx * qx * qy;
    break;
  case HAM_TWO_BODY:
  case HAM_THREE_BODY:
    gravity(n, x, dH);
    break;
  case HAM_NSYSTEMS: break;
  }
}

void ham_field(int id, const double *x, double *xdot)
{
  double g[HAM_MAX_STATE];
  int n = systems[id].nodes;
  ham_gradient(id, x, g);
  for (int i = 0; i < n; i++) {
    xdot[4 * i] = g[4 * i + 2];      /* dq/dt =  dH/dp */
    xdot[4 * i + 1] = g[4 * i + 3];
    xdot[4 * i + 2] = -g[4 * i];     /* dp/dt = -dH/dq */
    xdot[4 * i + 3] = -g[4 * i + 1];
  }
}

/* ------------------------------------------------------------------ */
/* Initial conditions                                                  */
/* ------------------------------------------------------------------ */

/* Inside the triangle bounded by the Henon-Heiles saddle lines
   (y = -1/2, y = 1 +- sqrt(3) x): the well that is bounded for E < 1/6. */
static int hh_in_well(double x, double y)
{
  return y > -0.5 && y < 1 - sqrt(3.0) * x && y < 1 + sqrt(3.0) * x;
}

static void sample(int id, gsl_rng *rng, double *x)
{
  memset(x, 0, HAM_MAX_STATE * sizeof *x);
  switch ((ham_system_id)id) {
  case HAM_MASS_SPRING: {
    double E = 0.1 + 0.9 * gsl_rng_uniform(rng), s = 0;
    for (int i = 0; i < 4; i++) {
      x[i] = gsl_ran_gaussian(rng, 1.0);
      s += x[i] * x[i];
    }
    double scale = sqrt(2 * E / s);
    for (int i = 0; i < 4; i++)
      x[i] *= scale;
    break;
  }
  case HAM_PENDULUM: {
    double E = 0.1 + 1.4 * gsl_rng_uniform(rng), qmax = acos(1 - E);
    double q = qmax * (2 * gsl_rng_uniform(rng) - 1), V = 1 - cos(q);
    double p = sqrt(fmax(0, 2 * (E - V)));
    x[0] = q;
    x[2] = gsl_rng_uniform(rng) < 0.5 ? -p : p;
    break;
  }
  case HAM_HENON_HEILES: {
    double E = 0.02 + 0.14 * gsl_rng_uniform(rng), qx, qy, V;
    do {
      qx = 2 * gsl_rng_uniform(rng) - 1;
      qy = 2 * gsl_rng_uniform(rng) - 1;
      V = 0.5 * (qx * qx + qy * qy) + qx * qx * qy - qy * qy * qy / 3;
    } while (!hh_in_well(qx, qy) || V >= E);
    double p = sqrt(2 * (E - V)), a = 2 * PI * gsl_rng_uniform(rng);
    x[0] = qx;
    x[1] = qy;
    x[2] = p * cos(a);
    x[3] = p * sin(a);
    break;
  }
  case HAM_MAGNETIC_MIRROR: {
    double E;
    do {
      x[0] = 2 * gsl_rng_uniform(rng) - 1;
      x[1] = 2 * gsl_rng_uniform(rng) - 1;
      double r = sqrt(gsl_rng_uniform(rng)), a = 2 * PI * gsl_rng_uniform(rng);
      x[2] = r * cos(a);
      x[3] = r * sin(a);
      E = ham_energy(id, x);
    } while (E < 0.1 || E > 1);
    break;
  }
  case HAM_TWO_BODY: {
    double r = 0.6 + 0.8 * gsl_rng_uniform(rng), a = 2 * PI * gsl_rng_uniform(rng);
    double f = 0.8 + 0.4 * gsl_rng_uniform(rng), v = f * sqrt(2 / r);
    double ux = cos(a), uy = sin(a);
    x[0] = 0.5 * r * ux, x[1] = 0.5 * r * uy;
    x[4] = -x[0], x[5] = -x[1];
    /* each body moves at v/2 about the centre of mass, counter-clockwise */
    x[2] = -0.5 * v * uy, x[3] = 0.5 * v * ux;
    x[6] = -x[2], x[7] = -x[3];
    break;
  }
  case HAM_THREE_BODY: {
    double R = 0.9 + 0.3 * gsl_rng_uniform(rng), a = 2 * PI * gsl_rng_uniform(rng);
    /* equal masses on an equilateral triangle: the circular speed */
    double v = 1 / sqrt(sqrt(3.0) * R) * (0.9 + 0.2 * gsl_rng_uniform(rng));
    double cm[4] = {0, 0, 0, 0};
    for (int i = 0; i < 3; i++) {
      double b = a + 2 * PI * i / 3, ux = cos(b), uy = sin(b);
      double *s = x + 4 * i;
      s[0] = R * ux + gsl_ran_gaussian(rng, 0.05);
      s[1] = R * uy + gsl_ran_gaussian(rng, 0.05);
      s[2] = -v * uy + gsl_ran_gaussian(rng, 0.05);
      s[3] = v * ux + gsl_ran_gaussian(rng, 0.05);
      for (int c = 0; c < 4; c++)
        cm[c] += s[c] / 3;
    }
    for (int i = 0; i < 3; i++)
      for (int c = 0; c < 4; c++)
        x[4 * i + c] -= cm[c];
    break;
  }
  case HAM_NSYSTEMS: break;
  }
}

/* ------------------------------------------------------------------ */
/* Integration                                                         */
/* ------------------------------------------------------------------ */

static int rhs(double t, const double y[], double f[], void *params)
{
  (void)t;
  ham_field(*(const int *)params, y, f);
  return GSL_SUCCESS;
}

/* Is this state acceptable (no close encounter, no escape)? */
static int state_ok(int id, const double *x)
{
  int n = systems[id].nodes;
  for (int i = 0; i < 4 * n; i++)
    if (!isfinite(x[i]))
      return 0;
  if (id == HAM_MAGNETIC_MIRROR)
    return fabs(x[1]) <= ESCAPE;
  if (n < 2)
    return 1;
  for (int i = 0; i < n; i++) {
    if (hypot(x[4 * i], x[4 * i + 1]) > ESCAPE)
      return 0;
    for (int j = i + 1; j < n; j++)
      if (hypot(x[4 * i] - x[4 * j], x[4 * i + 1] - x[4 * j + 1]) < CLOSE_ENCOUNTER)
        return 0;
  }
  return 1;
}

/* Integrate from x0, storing npoints states; 1 if the trajectory is
   acceptable, 0 if rejected, -1 on an integrator failure. */
static int integrate(int id, const double *x0, int npoints, double tmax, double tol, int check,
                     double *xs, long *steps)
{
  int dim = 4 * systems[id].nodes, sid = id;
  gsl_odeiv2_system sys = {rhs, NULL, (size_t)dim, &sid};
  gsl_odeiv2_step *st = gsl_odeiv2_step_alloc(gsl_odeiv2_step_rk8pd, (size_t)dim);
  gsl_odeiv2_control *c = gsl_odeiv2_control_y_new(tol, tol);
  gsl_odeiv2_evolve *e = gsl_odeiv2_evolve_alloc((size_t)dim);
  if (!st || !c || !e) {
    gsl_odeiv2_step_free(st);
    gsl_odeiv2_control_free(c);
    gsl_odeiv2_evolve_free(e);
    return sv_fail("hamiltonian: out of memory for the integrator");
  }
  double y[HAM_MAX_STATE], t = 0, h = 1e-3;
  memcpy(y, x0, (size_t)dim * sizeof *y);
  memcpy(xs, y, (size_t)dim * sizeof *y);
  int rc = 1;
  for (int k = 1; k < npoints && rc == 1; k++) {
    double t1 = tmax * k / (npoints - 1);
    while (t < t1) {
      int s = gsl_odeiv2_evolve_apply(e, c, st, &sys, &t, t1, &h, y);
      (*steps)++;
      if (s != GSL_SUCCESS) {
        rc = sv_fail("hamiltonian: %s: the integrator failed at t = %g: %s", systems[id].name, t,
                     gsl_strerror(s));
        break;
      }
      if (check && !state_ok(id, y)) {
        rc = 0;
        break;
      }
    }
    if (rc == 1)
      memcpy(xs + (size_t)k * (size_t)dim, y, (size_t)dim * sizeof *y);
  }
  gsl_odeiv2_evolve_free(e);
  gsl_odeiv2_control_free(c);
  gsl_odeiv2_step_free(st);
  return rc;
}

int ham_integrate(int system, const double *x0, int npoints, double tmax, double tol, double *xs)
{
  long steps = 0;
  if (system < 0 || system >= HAM_NSYSTEMS || npoints < 2 || !(tmax > 0))
    return sv_fail("hamiltonian: bad integration request");
  gsl_error_handler_t *old = gsl_set_error_handler_off();
  int rc = integrate(system, x0, npoints, tmax, tol, 0, xs, &steps);
  gsl_set_error_handler(old);
  return rc < 0 ? -1 : 0;
}

void ham_dataset_free(ham_dataset *d)
{
  if (!d)
    return;
  free(d->t);
  free(d->x);
  free(d->xdot);
  memset(d, 0, sizeof *d);
}

int ham_dataset_generate(int system, int ntraj, int npoints, double tmax, double tol,
                         unsigned long seed, ham_dataset *out)
{
  memset(out, 0, sizeof *out);
  if (system < 0 || system >= HAM_NSYSTEMS)
    return sv_fail("hamiltonian: unknown system id %d", system);
  if (ntraj < 1 || npoints < 2)
    return sv_fail("hamiltonian: %d trajectories of %d points", ntraj, npoints);
  int dim = 4 * systems[system].nodes;
  size_t total = (size_t)ntraj * (size_t)npoints * (size_t)dim;
  out->system = system;
  out->nodes = systems[system].nodes;
  out->dim = dim;
  out->ntraj = ntraj;
  out->npoints = npoints;
  out->tmax = tmax;
  out->t = malloc((size_t)npoints * sizeof *out->t);
  out->x = malloc(total * sizeof *out->x);
  out->xdot = malloc(total * sizeof *out->xdot);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!out->t || !out->x || !out->xdot || !rng) {
    gsl_rng_free(rng);
    ham_dataset_free(out);
    return sv_fail("hamiltonian: out of memory for %d trajectories of %s", ntraj,
                   systems[system].name);
  }
  gsl_rng_set(rng, seed);
  for (int k = 0; k < npoints; k++)
    out->t[k] = tmax * k / (npoints - 1);

  gsl_error_handler_t *old = gsl_set_error_handler_off();
  int rc = 0;
  long draws = 0;
  for (int j = 0; j < ntraj && rc == 0; j++) {
    double *xs = out->x + (size_t)j * (size_t)npoints * (size_t)dim;
    for (;;) {
      double x0[HAM_MAX_STATE];
      if (++draws > (long)MAX_DRAWS_PER_TRAJ * (j + 1)) {
        rc = sv_fail("hamiltonian: %s: %ld initial conditions rejected for %d trajectories "
                     "(close encounters or escapes); the sampler is broken",
                     systems[system].name, out->rejected, j + 1);
        break;
      }
      sample(system, rng, x0);
      if (system == HAM_THREE_BODY && ham_energy(system, x0) >= 0) {
        out->rejected++;
        continue;
      }
      int ok = integrate(system, x0, npoints, tmax, tol, 1, xs, &out->steps);
      if (ok < 0) {
        rc = -1;
        break;
      }
      if (ok)
        break;
      out->rejected++;
    }
    if (rc < 0)
      break;
    double E0 = ham_energy(system, xs);
    for (int k = 0; k < npoints; k++) {
      const double *x = xs + (size_t)k * (size_t)dim;
      ham_field(system, x, out->xdot + ((size_t)j * (size_t)npoints + (size_t)k) * (size_t)dim);
      double drift = fabs(ham_energy(system, x) - E0) / fabs(E0);
      if (drift > out->max_drift)
        out->max_drift = drift;
    }
  }
  gsl_set_error_handler(old);
  gsl_rng_free(rng);
  if (rc < 0)
    ham_dataset_free(out);
  return rc;
}
