/*
 * systems.h -- the six Hamiltonian systems of the meta-learning plugin and
 * their trajectory data (specs/hamiltonian.md, "Systems").
 *
 * Every system is a set of N particles in the plane (N = 1, 2 or 3). A state
 * x holds 4 values per particle, (q_x, q_y, p_x, p_y), particle after
 * particle: exactly the rows of the graph network's node matrix. All
 * constants are 1.
 */
#ifndef HAM_SYSTEMS_H
#define HAM_SYSTEMS_H

#include <stddef.h>

typedef enum {
  HAM_MASS_SPRING = 0,
  HAM_PENDULUM,
  HAM_HENON_HEILES,
  HAM_MAGNETIC_MIRROR,
  HAM_TWO_BODY,
  HAM_THREE_BODY,
  HAM_NSYSTEMS
} ham_system_id;

#define HAM_MAX_NODES 3
#define HAM_MAX_STATE (4 * HAM_MAX_NODES)

typedef struct {
  const char *name;     /* option spelling: "henon_heiles" */
  int nodes;            /* particles */
  const char *formula;  /* H, as text */
  const char *sampling; /* how initial conditions are drawn, what is rejected */
} ham_system_info;

const ham_system_info *ham_system(int id);
/* The id of a system by name (also accepts '-' for '_'), or -1. */
int ham_system_find(const char *name);
/* "mass_spring, pendulum, ..." for messages. */
const char *ham_system_list(void);

/* The true H, its gradient dH/dx and the vector field J grad H (4N values). */
double ham_energy(int id, const double *x);
void ham_gradient(int id, const double *x, double *dH);
void ham_field(int id, const double *x, double *xdot);

/* Trajectories of one system. */
typedef struct {
  int system, nodes, dim;   /* dim = 4 * nodes */
  int ntraj, npoints;
  double tmax;
  double *t;                /* npoints times, 0 .. tmax */
  double *x;                /* ntraj * npoints * dim states */
  double *xdot;             /* the labels J grad H(x), same layout */
  double max_drift;         /* max over trajectories and times of |H(t) - H(0)| / |H(0)| */
  long rejected;            /* initial conditions drawn and rejected */
  long steps;               /* integrator steps taken */
} ham_dataset;

/* State k of trajectory j. */
static inline const double *ham_state(const ham_dataset *d, int j, int k)
{
  return d->x + ((size_t)j * (size_t)d->npoints + (size_t)k) * (size_t)d->dim;
}
static inline const double *ham_deriv(const ham_dataset *d, int j, int k)
{
  return d->xdot + ((size_t)j * (size_t)d->npoints + (size_t)k) * (size_t)d->dim;
}

/*
 * ntraj trajectories from random initial conditions (the system's own
 * sampler, reproducible from seed), integrated with GSL odeiv2 (rk8pd,
 * absolute and relative tolerance `tol`) over [0, tmax] and stored at
 * npoints evenly spaced times. Returns 0 or -1 with sv_fail.
 */
int ham_dataset_generate(int system, int ntraj, int npoints, double tmax, double tol,
                         unsigned long seed, ham_dataset *out);
void ham_dataset_free(ham_dataset *d);

/* One trajectory of the true dynamics from x0 (for tests): npoints states
   at t = k tmax / (npoints - 1) into xs. */
int ham_integrate(int system, const double *x0, int npoints, double tmax, double tol, double *xs);

#endif
