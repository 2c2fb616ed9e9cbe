/*
 * khronon_reference.h -- an independent reference for the khronon on a
 * Schwarzschild black hole (specs/pinn.md, section 3), without any network.
 *
 * x = 2M/r, f = 1 - x, y = -u_t, P2 = y^2 - f, P1 = P2 - c^2 y^2:
 *
 *     P1 P2 x^2 y'' + c^2 y [x^2 (f y'^2 + y y' + 1/4) + 2 P2^2] = 0,
 *
 * with y(0) = 1 and y regular at the sound horizon (P1 = 0). For
 * c -> infinity the closed form is used; for finite c a shooting solver
 * (GSL ODE integration from the sound horizon, Brent on its position).
 */
#ifndef PINN_KHRONON_REFERENCE_H
#define PINN_KHRONON_REFERENCE_H

#include <stddef.h>

/* The c -> infinity solution (1 - 3x/4) sqrt(1 + x/2 + 3x^2/16) and its
   first two derivatives. */
double khronon_exact_y(double x);
double khronon_exact_dy(double x);
double khronon_exact_d2y(double x);

/*
 * The residual of the equation at one point. For finite c it is the
 * spec's left-hand side divided by max(c^2, 1) (so that its size does not
 * grow with c); for c = INFINITY the c^2-divided limit
 * -y^2 P2 x^2 y'' + y [x^2 (f y'^2 + y y' + 1/4) + 2 P2^2].
 */
double khronon_residual(double c, double x, double y, double dy, double d2y);

typedef struct khronon_ref {
  double c;            /* khronon speed; INFINITY: the closed form */
  double x_sound;      /* sound horizon, P1 = 0 (4/3 in the limit) */
  double x_universal;  /* universal horizon, y = 0 (4/3 in the limit) */
  /* The solution is regular on [0, x_regular): past the universal horizon
     P1 vanishes again for c > 1 and the solution is singular there.
     KHRONON_X_SCAN when no such point was found up to there. */
  double x_regular;
  /* u = u^r = -sqrt(P2) and its derivatives at x_sound (finite c). */
  double u_c, du_c, d2u_c;
} khronon_ref;

/* How far past the sound horizon the solution is followed. */
#define KHRONON_X_SCAN 2.0

/* The range of finite c the shooting reference is checked on (tests): past
   c = 1000 it loses accuracy between the two horizons (then ~1e-7 apart). */
#define KHRONON_C_MIN 0.01
#define KHRONON_C_MAX 1000.0

/* Solve for the regular solution at khronon speed c (c in [KHRONON_C_MIN,
   KHRONON_C_MAX], or INFINITY for the limit). 0 or -1 with sv_fail(). */
int khronon_ref_solve(double c, khronon_ref *ref);

/* y (and y' if dy != NULL) at n points x, sorted ascending, in
   [0, x_regular). 0 or -1 with sv_fail(). */
int khronon_ref_eval(const khronon_ref *ref, size_t n, const double *x, double *y,
                     double *dy);

#endif /* PINN_KHRONON_REFERENCE_H */
