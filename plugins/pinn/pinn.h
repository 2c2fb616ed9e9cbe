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
 *     pinn_jet X = pinn_model_input_jet(m, 2);                   (x, x' = 1, x'' = 0)
 *     pinn_jet N = pinn_model_net_jet(m, "net", X);
 *     pinn_jet Y = ...;  pinn_jet_derivs(m, &Y, &dy, &d2y);       (built forward)
 *     sv_node *y = Y.v, *x = pinn_model_input(m);  ...
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

/* How a solution is continued across a regular singular point inside the
   domain (see "Regular singular points" below). */
typedef enum { PINN_CONTINUATION_NONE = 0, PINN_CONTINUATION_FROBENIUS } pinn_continuation;

/* How the input derivatives u', u'' of a trial solution are built (see
   "Input derivatives" below): Taylor mode, or reverse over reverse. */
typedef enum { PINN_DERIVATIVES_JET = 0, PINN_DERIVATIVES_REVERSE } pinn_derivatives;

typedef struct pinn_opts {
  /* network: depth hidden layers of width, activation */
  int width, depth;
  sv_activation act;
  /* collocation: points in total (over all ranks); every resample_every
     Adam steps the interior points are redrawn uniformly at random (0:
     never); the pinned points (singular points, ends) always stay. */
  int points, resample_every;
  /* threads of this process that share the collocation points (-threads) */
  int threads;
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
  /* LM has converged when its loss fell by less than the fraction
     lm_stall_rtol over the last lm_stall_window steps (checked every
     window; 0: run every step). */
  int lm_stall_window;
  double lm_stall_rtol;
  /* Input derivatives: jet (Taylor mode) or reverse (sv_grad twice). */
  pinn_derivatives derivatives;
  /* Write gradient.csv at the initial parameters (-write_gradient). */
  int write_gradient;
  /* Evaluation grid size. */
  int eval_points;
  /* Collocation start grid (also the grid of the second stage). */
  pinn_grid grid;
  /* Continuation across regular singular points of a linear equation
     (pinn_model_add_frobenius): frobenius or none; the matching window's
     half-width as a fraction of the local series' radius of convergence;
     matching points (over both sides); the matching residual's weight. The
     options -continuation -frobenius_window -frobenius_points
     -frobenius_weight are declared only when a plugin sets
     declare_continuation before pinn_opts_declare. */
  int declare_continuation;
  pinn_continuation continuation;
  double frobenius_window;
  int frobenius_points;
  double frobenius_weight;
  /* Levenberg-Marquardt steps on [lo, x_s] alone (x_s the first interior
     singular point declared) before the whole domain (-left_steps). */
  int left_steps;
  /* Trust checks after training (pinn_model_trust): warn when the rms
     residual between the collocation points exceeds trust_between times
     the rms residual at them (-trust_between). */
  double trust_between;
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
 *   -lbfgs_steps -ftol -gtol -lm_stall_window -lm_stall_rtol -eval_points
 *   -grid even|chebyshev -derivatives jet|reverse -write_gradient
 * Refuses values out of range with a message naming the option.
 */
int pinn_opts_declare(sv_run *r, pinn_opts *o);

/* "lm", "lbfgs", "none"; "even", "chebyshev"; "none", "frobenius"; "jet", "reverse". */
const char *pinn_second_name(pinn_second s);
const char *pinn_grid_name(pinn_grid g);
const char *pinn_continuation_name(pinn_continuation c);
const char *pinn_derivatives_name(pinn_derivatives d);

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

/* ------------------------------------------------------------------ */
/* Input derivatives: Taylor mode (jets)                               */
/* ------------------------------------------------------------------ */

/*
 * A trial solution built forward with its derivatives with respect to the
 * model's input x (jet_algebra.c): each pinn_jet carries the value and
 * d/dx, d2/dx2, each a node or (d[k] NULL) the constant c[k]; the ops
 * apply the sum, product, quotient and chain rules, and a network's jet
 * comes from sv_mlp_jet (u, u', u'' stacked through each layer: one matrix
 * product per layer, the weight gradient ordinary reverse mode). With
 * -derivatives reverse the jets carry values only (order 0, the same ops
 * as the plain sv_* calls) and pinn_jet_derivs takes sv_grad twice, as
 * pinn_derivs does: the two are the same functions to round-off.
 *
 *     pinn_jet x = pinn_model_input_jet(m, 2);
 *     pinn_jet N = pinn_model_net_jet(m, "net", pinn_jet_normalize(x, lo, hi));
 *     pinn_jet y = pinn_jet_add_scalar(pinn_jet_mul(x, N), 1);
 *     sv_node *dy, *d2y;  pinn_jet_derivs(m, &y, &dy, &d2y);
 */
typedef struct pinn_jet {
  sv_node *v;     /* the value, [B,1] */
  sv_node *d[2];  /* d/dx, d2/dx2, or NULL: then the constant c[k] */
  double c[2];
  int order;      /* derivatives carried: 0 (reverse mode), 1 or 2 */
} pinn_jet;

/* x with x' = 1, x'' = 0, carrying `order` (1 or 2) derivatives; order 0
   under -derivatives reverse. */
pinn_jet pinn_model_input_jet(pinn_model *m, int order);
/* The network of pinn_model_net at the jet t, composed by the chain rule
   (same parameter blocks). */
pinn_jet pinn_model_net_jet(pinn_model *m, const char *name, pinn_jet t);
/* The first (and, if d2 != NULL, second) derivative of y as nodes
   (jets: its components; reverse: sv_grad). 0, or -1 with sv_fail. */
int pinn_jet_derivs(pinn_model *m, const pinn_jet *y, sv_node **d1, sv_node **d2);

pinn_jet pinn_jet_add(pinn_jet a, pinn_jet b);
pinn_jet pinn_jet_sub(pinn_jet a, pinn_jet b);
pinn_jet pinn_jet_mul(pinn_jet a, pinn_jet b);
pinn_jet pinn_jet_div(pinn_jet a, pinn_jet b);
pinn_jet pinn_jet_scale(pinn_jet a, double s);      /* s a */
pinn_jet pinn_jet_add_scalar(pinn_jet a, double s); /* a + s */
pinn_jet pinn_jet_neg(pinn_jet a);
pinn_jet pinn_jet_square(pinn_jet a);
pinn_jet pinn_jet_exp(pinn_jet a);
pinn_jet pinn_jet_pow(pinn_jet a, double p);         /* a^p, p a constant */
/* f(a) given the nodes f(a), f'(a), f''(a) (f2 unused below order 2). */
pinn_jet pinn_jet_chain(pinn_jet a, sv_node *f, sv_node *f1, sv_node *f2);
/* 2 (x - lo) / (hi - lo) - 1, as pinn_normalize. */
pinn_jet pinn_jet_normalize(pinn_jet x, double lo, double hi);
/* Derivative k (0: d/dx, 1: d2/dx2) as a node (a constant filled in);
   NULL when the jet does not carry it. */
sv_node *pinn_jet_node(const pinn_jet *a, int k);

/* Outputs (solutions reported on the evaluation grid) and residuals (the
   loss: sum_k w_k mean(res_k^2)); each [B,1] or [B]. Names are copied. */
int pinn_model_add_output(pinn_model *m, const char *name, sv_node *y);
int pinn_model_add_residual(pinn_model *m, const char *name, sv_node *res);

/* The collocation points of this rank (count values); valid after
   pinn_model_new, rewritten by resampling. */
const double *pinn_model_points(const pinn_model *m, int *count);

/* ------------------------------------------------------------------ */
/* Regular singular points of linear equations                         */
/* ------------------------------------------------------------------ */

/*
 * Why this exists. At a regular singular point x_s of
 *
 *     P(x) y'' + Q(x) y' + R(x) y = 0     (P(x_s) = 0, P'(x_s) != 0)
 *
 * the local solutions have the exponents 0 and rho = 1 - Q(x_s)/P'(x_s).
 * When rho >= 1 the second one, |x - x_s|^rho (...), is C^1 or smoother
 * at x_s, so a solution that is u on one side and u + B |x - x_s|^rho (...)
 * on the other satisfies the equation on both sides, and the residual at
 * the collocation points cannot tell the two apart: B is tied to the other
 * side only through the network's smoothness, which a network that bends
 * quickly near x_s (where |x - x_s|^rho is below its approximation error)
 * does not provide. Measured on the hypergeometric equation at x = 1,
 * (a, b, c) = (-3, 1, 1): the network came out as 0.628 (1 - x)^3 on
 * (1, 2] (an exact solution; the ratio to (1 - x)^3 is constant to 1e-6)
 * instead of (1 - x)^3, with a final loss of 1.4e-10; other seeds gave
 * 0.069 and 0.014 times it, and a 3 x 32 network on 256 points with 3000
 * steps 0.134 times it.
 *
 * The remedy is the one of the Frobenius method: near x_s the solution is
 * a combination of the local solutions that are analytic there (a power
 * series in t = x - x_s, the same function on both sides), with ONE set of
 * coefficients C_j:
 *
 *     y(x) = sum_j C_j u_j(x)   for |x - x_s| <= h, on both sides.
 *
 * pinn_model_add_frobenius adds the C_j as trainable parameters and the
 * residual y - sum_j C_j u_j at points of that window (both sides) to the
 * loss. The analytic local solutions are u_0 (exponent 0) and, when rho is
 * a positive integer N, u_N = t^N (...); a local solution with a
 * non-integer power |t|^rho or a log|t| is excluded, since it has no
 * continuation that the equation fixes (for rho not an integer, (x_s -
 * x)^rho continues past x_s with an arbitrary phase). Tying the
 * coefficients is then exactly the analytic continuation; a solution that
 * needs an excluded part (a non-terminating 2F1 at x = 1) cannot satisfy
 * the matching residual, which the trust check reports. The series are
 * summed to round-off for |t| <= h = frobenius_window times their radius
 * of convergence (the distance to the nearest other zero of P).
 */
#define PINN_MAX_DEGREE 6
#define PINN_MAX_TERMS 400
#define PINN_MAX_SINGULAR 4

/* The coefficients of P, Q, R in powers of x (degree <= PINN_MAX_DEGREE). */
typedef struct pinn_linear_ode {
  int degree;
  double P[PINN_MAX_DEGREE + 1], Q[PINN_MAX_DEGREE + 1], R[PINN_MAX_DEGREE + 1];
} pinn_linear_ode;

/* The analytic local solutions at one regular singular point. */
typedef struct pinn_frobenius {
  double x;             /* the singular point x_s */
  double rho;           /* the exponents are 0 and rho */
  int integer_rho;      /* rho is an integer */
  int logarithmic;      /* rho = N >= 1 and the exponent-0 solution has a log */
  double radius;        /* of convergence: distance to the nearest other zero of P */
  double h, lo, hi;     /* window half-width; the window [lo, hi] (clipped to the domain) */
  int nbasis;           /* analytic local solutions: 1 or 2 */
  int exponent[2];      /* 0 or N */
  int terms[2];         /* coefficients kept (powers t^0 ... t^(terms-1)) */
  double scale[2];      /* max |series| over the window: u_j = series / scale */
  double coef[2][PINN_MAX_TERMS];
  int residual_decides; /* rho < 1: the residual alone tells the sides apart */
} pinn_frobenius;

/* The analysis at xs with the window `window` x radius (clipped to [lo,
   hi]; the whole domain times window when P has no other zero). Fails with
   a reason when xs is not a simple zero of P or a series does not settle. */
int pinn_frobenius_local(const pinn_linear_ode *ode, double xs, double window, double lo,
                         double hi, pinn_frobenius *f);
/* u_b(x), normalised (max |u_b| = 1 on the window); meaningful on the window. */
double pinn_frobenius_eval(const pinn_frobenius *f, int b, double x);
/* One line: the exponents, which local solutions are analytic, the radius. */
const char *pinn_frobenius_describe(const pinn_frobenius *f, char *buf, size_t n);

/*
 * Declare x_s a regular singular point of the linear equation `ode` that
 * the solution y ([B,1], built on the model's input) crosses or ends at.
 * With o->continuation == frobenius (the default) this adds the matching
 * parameters "<name>.C" and residual described above (its own fixed points
 * in the window, Chebyshev-Lobatto on each side; on MPI all on the last
 * rank, so the rows keep the one-rank order); with none, only the
 * analysis, for the trust check. Call before pinn_model_train. *info (may
 * be NULL) receives the analysis.
 */
int pinn_model_add_frobenius(pinn_model *m, const char *name, sv_node *y,
                             const pinn_linear_ode *ode, double xs, pinn_frobenius *info);

/* ------------------------------------------------------------------ */
/* Training                                                            */
/* ------------------------------------------------------------------ */

typedef struct pinn_train_result {
  double loss;                  /* final loss */
  double adam_seconds, second_seconds, total_seconds;
  int adam_steps, second_steps; /* steps actually taken */
  int left_steps;               /* of which on [lo, x_s] first (-left_steps) */
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

/* ------------------------------------------------------------------ */
/* Does the run trust its answer?                                      */
/* ------------------------------------------------------------------ */

/*
 * Two checks that need no reference solution, run after training:
 *
 * 1. The residual between the collocation points against the residual at
 *    them: the rms over the midpoints of the (sorted) start grid divided
 *    by the rms at its points (every residual of the model). A network
 *    that fits the points, not the equation, has a large ratio.
 *    Metrics residual_rms_at_points, residual_rms_between_points,
 *    residual_between_ratio.
 * 2. At each point declared with pinn_model_add_frobenius: the trained
 *    solution is fitted, separately on the window's left and right halves,
 *    with the analytic local solutions. If the two sides need different
 *    coefficients, they are two different solutions glued at x_s, which the
 *    residual could not tell apart. Metrics continuation_mismatch (the
 *    largest, over the declared points, of |sum_j (C_j^left - C_j^right)
 *    u_j| over the window, relative to max |y| there) and
 *    frobenius_misfit (how far y is from any combination of them, the
 *    worse side); continuation_undetermined = 1 when a point with rho >= 1
 *    was declared with -continuation none (the residual cannot decide).
 *    Beyond the window the undetermined part (a homogeneous solution the
 *    residual does not see) grows like |x - x_s|^rho: metric
 *    continuation_extrapolated = max(mismatch, misfit) x (d/h)^rho x
 *    max|y| in the window / max|y| between the window and the end at
 *    distance d (h the window's half-width on that side); it must stay
 *    below the mismatch threshold too.
 *
 * Metric trusted = 1 when neither check fails; otherwise 0, a warning on
 * stderr and a "NOT TRUSTED" line among the headlines, each with the reason.
 */
typedef struct pinn_trust {
  double rms_at, rms_between, between_ratio;
  double continuation_mismatch, frobenius_misfit;
  double continuation_extrapolated; /* their growth out to the domain's ends */
  int undetermined;
  int trusted;
} pinn_trust;

int pinn_model_trust(pinn_model *m, pinn_trust *t);
/* A plugin's own check failed (it has printed its NOT TRUSTED line): the
   next pinn_model_trust reports trusted = 0 and no "passed" line. */
void pinn_model_distrust(pinn_model *m);

#endif /* PINN_H */
