/*
 * eval.h -- adapting a start on the held-out system and measuring it.
 *
 * For each held-out test trajectory (never seen in training): K support
 * points drawn once (the same for every start, so the comparison is
 * paired), the other points of the trajectory are the query points. Each
 * start (meta-trained, pre-trained, random) takes S = 0 .. adapt_steps SGD
 * steps on the support loss, and after each step:
 *
 *   derivative MSE   mean over the query points and the 4N coordinates of
 *                    (J grad H_theta - xdot)^2;
 * and at the evaluation steps (0, 1, 10, 50 and the last):
 *   trajectory error the learned field integrated (RK4) from the true
 *                    initial state over the trajectory's times:
 *                    sqrt(sum_t |x^(t) - x(t)|^2) / sqrt(sum_t |x(t)|^2);
 *   energy error     mean over t of |H(x^(t)) - H(x(0))| / |H(x(0))|, H the
 *                    true Hamiltonian;
 *   CKA              linear CKA of each layer's representation against a
 *                    model trained on the held-out system (its other
 *                    trajectories, from its own initialisation), both on
 *                    the same probe states: 200 states spread over all the
 *                    test trajectories (one trajectory alone is a curve in
 *                    state space, on which every smooth network looks alike).
 */
#ifndef HAM_EVAL_H
#define HAM_EVAL_H

#include "maml.h"

/* The network on K states at the params' values: field, H per state,
   representations. */
typedef struct {
  int N, K;
  sv_node *x;
  double *bx;
  ham_net net;
  sv_plan *plan;
} ham_eval_prog;

int ham_eval_prog_build(ham_model *m, int N, int K, int reps, ham_eval_prog *p);
void ham_eval_prog_free(ham_eval_prog *p);

/*
 * Integrate the field of the network (at the params' values) with RK4 from
 * x0 over npoints times t_k = k tmax / (npoints - 1), `substeps` RK4 steps
 * per interval; one = the K = 1 program. A state that becomes non-finite
 * or leaves |x| < 1e3 stops the rollout: the rest is held at the last
 * state and *diverged set (ham_evaluate then scores its trajectory and
 * energy errors as infinite). xs: npoints * 4N.
 */
int ham_rollout(ham_eval_prog *one, const double *x0, int npoints, double tmax, int substeps,
                double *xs, int *diverged);

/* Linear CKA of X [n, dx] and Y [n, dy] (row-major; copied and centred). */
double ham_linear_cka(int n, int dx, const double *X, int dy, const double *Y);

/* Our starts: the meta-trained, pre-trained and random parameters, each
   adapted at the common rate, and the pre-trained ones again at their own
   rate ("pretrain_own"). */
enum { HAM_START_META = 0, HAM_START_PRETRAIN, HAM_START_RANDOM, HAM_START_PRETRAIN_OWN, HAM_NSTARTS };
const char *ham_start_name(int s);

typedef struct {
  int system;                 /* the held-out system */
  const ham_dataset *data;
  int test_first, ntest;      /* its test trajectories */
  int K;                      /* support points */
  int steps;                  /* S max */
  double lr[HAM_NSTARTS];     /* adaptation SGD rate of each start (by slot) */
  int substeps;               /* RK4 steps per sample interval */
  unsigned long seed;         /* support sets */
  int nstarts;
  int start_id[HAM_NSTARTS];  /* which starts are present (HAM_START_*) */
  const double *theta[HAM_NSTARTS]; /* by slot */
  const double *target;       /* the model trained on the system (CKA), or NULL */
} ham_eval_opts;

/* Per-trajectory results, gathered over the ranks. */
typedef struct {
  int ntest, nstarts, steps, nat, nrep;
  int at[8];                  /* the evaluation steps */
  const char *rep_name[HAM_MAX_REPS];
  double *dmse;    /* [start][S 0..steps][traj] */
  double *traj;    /* [start][at][traj] */
  double *energy;  /* [start][at][traj] */
  double *cka;     /* [start][at][rep][traj] (NAN without a target) */
  double *diverged;/* [start][at][traj] 0/1 */
  /* the example trajectory (test trajectory 0) */
  int ex_traj, ex_dim, ex_npoints;
  double *ex_true;            /* npoints * dim */
  double *ex_roll;            /* [start][npoints * dim] after the last step */
  double *ex_H_roll;          /* [start][npoints]: true H along each rollout */
  double *ex_Hlearn_true;     /* [start][npoints]: learned H along the true trajectory */
} ham_eval_result;

int ham_evaluate(sv_run *r, ham_model *m, const ham_eval_opts *o, ham_eval_result *res);
void ham_eval_result_free(ham_eval_result *res);

static inline double *ham_res_dmse(const ham_eval_result *e, int s, int S)
{
  return e->dmse + ((size_t)s * (size_t)(e->steps + 1) + (size_t)S) * (size_t)e->ntest;
}
static inline double *ham_res_at(const ham_eval_result *e, double *base, int s, int a)
{
  return base + ((size_t)s * (size_t)e->nat + (size_t)a) * (size_t)e->ntest;
}
static inline double *ham_res_cka(const ham_eval_result *e, int s, int a, int l)
{
  return e->cka + (((size_t)s * (size_t)e->nat + (size_t)a) * (size_t)e->nrep + (size_t)l) *
                      (size_t)e->ntest;
}

/* Median and mean of n values (NaN ignored; NaN if none). */
double ham_median(int n, const double *v);
double ham_mean(int n, const double *v);

#endif
