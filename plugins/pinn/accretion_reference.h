/*
 * accretion_reference.h -- an independent reference for spherical
 * (Michel) accretion onto a Schwarzschild black hole (specs/pinn.md,
 * section 4), from the two conserved quantities alone: no ODE is solved.
 *
 * Polytrope p = K rho^Gamma, h = 1 + Gamma/(Gamma-1) K rho^(Gamma-1),
 * c_s^2 = Gamma p / (rho h), f = 1 - 2M/r, gamma = (1 - v^2)^(-1/2):
 *
 *     mass flux  F = rho gamma v sqrt(f) r^2,   Bernoulli  B = h gamma sqrt(f).
 *
 * Both are fixed by the sonic point r_c, where v^2 = c_s^2 = M / (2 r_c - 3M).
 */
#ifndef PINN_ACCRETION_REFERENCE_H
#define PINN_ACCRETION_REFERENCE_H

/* The paper's constants. */
#define ACCRETION_M 1.0
#define ACCRETION_K 0.1
#define ACCRETION_GAMMA (4.0 / 3.0)

typedef struct accretion_ref {
  double M, K, gamma;   /* mass, polytropic constant and exponent */
  double r_c;           /* sonic radius */
  double rho_c, cs2_c;  /* density and c_s^2 = v^2 there */
  double F, B;          /* mass flux and Bernoulli constant */
  long double F_l, B_l; /* the same, kept in extended precision */
} accretion_ref;

/* Derive rho_c, F and B from the sonic radius (M, K, Gamma as above).
   Refuses r_c <= 3M/2 (c_s^2 = M / (2 r_c - 3M) would be negative or
   infinite) and r_c so close that c_s^2 >= Gamma - 1, which no density of
   the polytrope reaches. 0 or -1 with sv_fail(). */
int accretion_ref_init(double r_sonic, accretion_ref *ref);

/* Specific enthalpy and squared sound speed at density rho. */
double accretion_enthalpy(const accretion_ref *ref, double rho);
double accretion_sound_speed2(const accretion_ref *ref, double rho);

/* The density at which the flow at radius r would be sonic (v^2 = c_s^2
   for the Bernoulli constant B): the maximum of the mass flux over rho. */
int accretion_ref_sonic_density(const accretion_ref *ref, double r, double *rho_s);

/* rho and v of the transonic accretion flow at r > 2M: the subsonic root
   of rho r^2 sqrt((B/h)^2 - f) = F for r > r_c, the supersonic one for
   r < r_c (Brent's method). 0 or -1 with sv_fail(). */
int accretion_ref_eval(const accretion_ref *ref, double r, double *rho, double *v);

#endif /* PINN_ACCRETION_REFERENCE_H */
