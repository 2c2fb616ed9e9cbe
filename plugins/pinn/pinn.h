/*
 * pinn.h -- the helper shared by the PINN plugins (specs/pinn.md).
 *
 * A PINN here is: one input x of shape [B,1]; one or more networks of x;
 * hard-constrained trial solutions y = y0 + phi(x) N(x) built from graph
 * ops; residuals of the ODE multiplied through so that they stay finite at
 * the singular points; a mean-square loss over collocation points that
 * include those singular points. A plugin does:
 *
 *     pinn_opts o;  pinn_opts_defaults(&o);  o.width = 20; ...   (its defaults)
 *     pinn_opts_declare(run, &o);                                 (-width ...)
 *     pinn_model *m = pinn_model_new(run, &o, lo, hi, npin, pins);
 *     sv_node *x = pinn_model_input(m);
 *     sv_node *N = pinn_model_net(m, "net", x);
 *     sv_node *y = ...;  sv_node *dy = sv_grad(y, x);  ...
 *     pinn_model_add_output(m, "y", y);
 *     pinn_model_add_residual(m, "ode", r);
 *     pinn_model_train(m, &tr);            (Adam, then LM or L-BFGS)
 *     pinn_model_eval(m, n, xs, vals, res) (any points, e.g. a fine grid)
 *     pinn_error_metrics(...), pinn_write_solution(...), pinn_plot_loss(...)
 *     pinn_model_free(m);
 *
 * Every function that can fail returns 0 / -1 (or NULL) with sv_fail().
 * Under MPI the collocation points are split over the ranks; evaluation
 * runs the full grid on every rank (so every rank has the same numbers)
 * and the core writes files on rank 0 only.
 */
#ifndef PINN_H
#define PINN_H

#include <solver.h>

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

typedef enum { PINN_SECOND_NONE = 0, PINN_SECOND_LM, PINN_SECOND_LBFGS } pinn_second;

/* The start grid of collocation points: even spacing, or Chebyshev-Lobatto
   points on each segment between singular points (clustered towards
   them). */
typedef enum { PINN_GRID_EVEN = 0, PINN_GRID_CHEBYSHEV } pinn_grid;

typedef struct pinn_opts {
  /* network: depth hidden layers of width, activation */
  int width, depth;
  sv_activation act;
  /* collocation: points in total (over all ranks); every resample_every
     Adam steps the interior points are redrawn uniformly at random (0:
     never); the pinned points (singular points, ends) always stay. */
  int points, resample_every;
  /* Adam stage: steps, learning rate, cosine warm restarts (first period
     in steps, 0: constant lr; period multiplier; floor), betas. */
  int adam_steps;
  double adam_lr;
  int adam_restart;
  double adam_restart_mult, adam_lr_min, adam_beta1, adam_beta2;
  /* Second stage: Levenberg-Marquardt (exact Jacobian) or L-BFGS. */
  pinn_second second;
  int lm_steps, lbfgs_steps;
  double ftol;                  /* stop a stage when the loss is below */
  double gtol;                  /* stop LM / L-BFGS on a small step / gradient */
  /* Evaluation grid size. */
  int eval_points;
  /* Collocation start grid (also the grid of the second stage). */
  pinn_grid grid;
} pinn_opts;

/* Generic defaults (every field set); a plugin overwrites what it wants
   before pinn_opts_declare. */
void pinn_opts_defaults(pinn_opts *o);

/*
 * Declare the common options with the values in *o as defaults and read
 * them back into *o:
 *   -width -depth -activation -points -resample_every
 *   -adam_steps -adam_lr -adam_restart -adam_restart_mult -adam_lr_min
 *   -adam_beta1 -adam_beta2 -second_stage lm|lbfgs|none -lm_steps
 *   -lbfgs_steps -ftol -gtol -eval_points -grid even|chebyshev
 * Refuses values out of range with a message naming the option.
 */
int pinn_opts_declare(sv_run *r, pinn_opts *o);

/* "lm", "lbfgs", "none"; "even", "chebyshev". */
const char *pinn_second_name(pinn_second s);
const char *pinn_grid_name(pinn_grid g);

/* ------------------------------------------------------------------ */
/* Model                                                               */
/* ------------------------------------------------------------------ */

typedef struct pinn_model pinn_model;

#define PINN_MAX_OUTPUTS 4
#define PINN_MAX_RESIDUALS 4
#define PINN_MAX_PINS 8

/*
 * A model on [lo, hi] with o->points collocation points that always include
 * both ends and the npin pinned points (singular points inside the domain)
 * exactly: an even grid in which the point nearest each pin is replaced by
 * it, or Chebyshev-Lobatto points on each segment between them (o->grid).
 * The options are copied. This rank gets its share of the points
 * (sv_run_partition).
 */
pinn_model *pinn_model_new(sv_run *r, const pinn_opts *o, double lo, double hi, int npin,
                           const double *pins);
void pinn_model_free(pinn_model *m);

sv_graph *pinn_model_graph(pinn_model *m);
sv_params *pinn_model_params(pinn_model *m);
/* The input x, shape [SV_BATCH, 1]. */
sv_node *pinn_model_input(pinn_model *m);
/* An MLP of t ([B,1]) with the options' width, depth and activation, one
   output; parameter blocks "<name>.*". Several networks may share a model. */
sv_node *pinn_model_net(pinn_model *m, const char *name, sv_node *t);

/* Map x from [lo, hi] to [-1, 1]: a better-conditioned network input. */
sv_node *pinn_normalize(sv_node *x, double lo, double hi);
/* First and second derivatives of a [B,1] node w.r.t. the input, row by
   row (d2 may be NULL). */
int pinn_derivs(pinn_model *m, sv_node *y, sv_node **d1, sv_node **d2);

/* Outputs (solutions reported on the evaluation grid) and residuals (the
   loss: sum_k w_k mean(res_k^2)); each [B,1] or [B]. Names are copied. */
int pinn_model_add_output(pinn_model *m, const char *name, sv_node *y);
int pinn_model_add_residual(pinn_model *m, const char *name, sv_node *res);

/* The collocation points of this rank (count values); valid after
   pinn_model_new, rewritten by resampling. */
const double *pinn_model_points(const pinn_model *m, int *count);

/* ------------------------------------------------------------------ */
/* Training                                                            */
/* ------------------------------------------------------------------ */

typedef struct pinn_train_result {
  double loss;                  /* final loss */
  double adam_seconds, second_seconds, total_seconds;
  int adam_steps, second_steps; /* steps actually taken */
  double adam_loss;             /* loss at the end of the Adam stage */
} pinn_train_result;

/*
 * Optional hook called every step of every stage, after resampling and
 * before the loss is evaluated (e.g. SoftAdapt: read sv_lsq_last_part and
 * set sv_lsq_set_weight). stage is "adam", "lm" or "lbfgs".
 */
typedef int (*pinn_step_hook)(void *ctx, pinn_model *m, const char *stage, int step);
void pinn_model_set_hook(pinn_model *m, pinn_step_hook hook, void *ctx);
/* The least-squares objective (after pinn_model_train has started; NULL
   before): for the hook. */
sv_lsq *pinn_model_lsq(pinn_model *m);

/*
 * Initialise the parameters (Glorot, from the run's RNG), then run the Adam
 * stage and the second stage. Writes collocation.csv (the start grid, all
 * ranks' points) and records metrics final_loss, train_seconds,
 * parameters, points, resamples (sv_minimize adds <stage>_seconds and
 * <stage>_final_loss). The collocation points are reset to the start grid
 * before the second stage (LM and L-BFGS need a fixed objective).
 */
int pinn_model_train(pinn_model *m, pinn_train_result *res);

/* "Adam 500 steps (0.07 s) + LM 1500 steps (1.37 s)" into buf (for a
   headline); stages that did not run are left out. Returns buf. */
const char *pinn_describe_training(const pinn_opts *o, const pinn_train_result *t, char *buf,
                                   size_t n);

/* The headline "  PINN 3x16 tanh, 96 chebyshev points: <training>, final
   loss 5.53e-13" that every PINN run prints under its equation. */
int pinn_headline_training(sv_run *r, const pinn_opts *o, const pinn_train_result *t);

/* ------------------------------------------------------------------ */
/* Evaluation and reports                                              */
/* ------------------------------------------------------------------ */

/* n points evenly spaced on [lo, hi] with both ends (malloc'd; NULL and
   sv_fail on failure). */
double *pinn_linspace(double lo, double hi, int n);

/*
 * The outputs and residuals at n points x (all on every rank).
 * vals[k] (n values each) for output k in the order added, res[k] for
 * residual k; either array, or any entry, may be NULL.
 */
int pinn_model_eval(pinn_model *m, int n, const double *x, double *const *vals,
                    double *const *res);

/* Relative L2 error |y - ref| / |ref| (absolute if |ref| = 0) and max |y - ref|
   over n values. */
typedef struct pinn_error {
  double rel_l2, max_abs;
} pinn_error;
pinn_error pinn_error_of(int n, const double *y, const double *ref);
/* Compute it and record metrics rel_l2<suffix> and max_abs_err<suffix>. */
int pinn_error_metrics(sv_run *r, const char *suffix, int n, const double *y,
                       const double *ref, pinn_error *out);

/* One solution curve for pinn_write_solution. */
typedef struct pinn_curve {
  const char *name;   /* "y", "rho" */
  const double *y;    /* the network's solution, n values */
  const double *ref;  /* the reference, n values */
} pinn_curve;

/*
 * Write solution.csv and two plots. With one curve the columns are
 * xname, y, reference, error; with several, xname and for each curve
 * <name>, <name>_reference, <name>_error. solution.png: solution (lines)
 * against the reference (points); error.png: |error| on a log scale.
 * title is a plot title ("Legendre n = 3").
 */
int pinn_write_solution(sv_run *r, const char *title, const char *xname, int n,
                        const double *x, int ncurves, const pinn_curve *c);

/* loss.png from loss_history.csv (log-scale loss against the running step
   over all stages). */
int pinn_plot_loss(sv_run *r, const char *title);

/* max |v[i]| over n values (e.g. residuals on the evaluation grid). */
double pinn_max_abs(int n, const double *v);

#endif /* PINN_H */
