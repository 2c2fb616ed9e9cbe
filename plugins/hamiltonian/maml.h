/*
 * maml.h -- tasks, the MAML programs (one inner SGD step, exact second
 * order or first order) and the training loops: meta-training, ordinary
 * multi-task pre-training, and training on one system (the CKA reference).
 *
 * A task is one trajectory of one system: 2K distinct points of its 200,
 * the first K the support set (the inner step), the other K the query set
 * (the outer loss). Our choice: disjoint support and query sets of K
 * points each; the system of each task is drawn uniformly from the
 * training systems, then the trajectory uniformly.
 *
 * Each particle count N has its own programs, built once in the model's
 * graph and compiled once: a meta-batch mixing 1-, 2- and 3-particle tasks
 * runs each task's own plan (its own inner step) and sums the gradients.
 * Under MPI the tasks of a meta-batch are split over the ranks; every rank
 * draws the same meta-batch from the same seed, and sv_minimize sums the
 * ranks' shares.
 */
#ifndef HAM_MAML_H
#define HAM_MAML_H

#include "model.h"
#include "systems.h"

/* The MAML programs of one particle count. */
typedef struct {
  int N, Ks, Kq;
  sv_node *xs, *ys, *xq, *yq, *alpha;
  double *bxs, *bys, *bxq, *byq, balpha;
  sv_node *Ls;      /* support loss at theta */
  sv_node *gs;      /* its gradient (packed [n]) */
  sv_node *Lq;      /* query loss at theta' = theta - alpha gs */
  sv_node *meta2;   /* d Lq(theta'(theta)) / d theta: the exact meta-gradient */
  sv_node *meta1;   /* d Lq / d theta' at theta': first-order MAML */
  sv_plan *plan2;   /* Lq, meta2, meta1, Ls */
  sv_plan *plan1;   /* Lq, meta1, Ls */
  sv_plan *adapt;   /* Ls, gs */
} ham_maml_prog;

enum { HAM_PROG_SECOND = 1, HAM_PROG_FIRST = 2, HAM_PROG_ADAPT = 4 };

int ham_maml_prog_build(ham_model *m, int N, int Ks, int Kq, int which, ham_maml_prog *out);
void ham_maml_prog_free(ham_maml_prog *p);

/* Plain training on K points at theta: loss and its gradient. */
typedef struct {
  int N, K;
  sv_node *x, *y;
  double *bx, *by;
  sv_node *L, *grad;
  sv_plan *plan;
} ham_train_prog;

int ham_train_prog_build(ham_model *m, int N, int K, ham_train_prog *out);
void ham_train_prog_free(ham_train_prog *p);

/* Where tasks come from: systems and, per system, a range of trajectories. */
typedef struct {
  const ham_dataset *data[HAM_NSYSTEMS];
  int nsys, sys[HAM_NSYSTEMS];
  int first[HAM_NSYSTEMS], count[HAM_NSYSTEMS]; /* by system id */
} ham_pool;

typedef struct {
  int sys, traj;
  int *idx;  /* 2K point indices: support then query */
} ham_task;

/* Copy K states of trajectory `traj` at idx into x, and their labels in
   gradient layout (ham_labels_to_grad) into y (if not NULL). */
void ham_task_fill(const ham_dataset *d, int traj, int K, const int *idx, double *x, double *y);

typedef enum { HAM_TRAIN_META = 0, HAM_TRAIN_PLAIN } ham_train_kind;

typedef struct {
  ham_train_kind kind;
  int order;        /* MAML: 1 or 2 */
  int tasks;        /* per (meta-)batch */
  int K;            /* points per support and per query set */
  double alpha;     /* inner rate */
  int steps;        /* outer steps */
  double lr;        /* outer Adam rate */
  int gap_every;    /* first-order MAML: measure the gap to second order every this many steps */
  const char *stage;
  unsigned long seed; /* task sampling */
} ham_train_opts;

typedef struct ham_trainer ham_trainer;

ham_trainer *ham_trainer_new(sv_run *r, ham_model *m, const ham_pool *pool, const ham_train_opts *o);
void ham_trainer_free(ham_trainer *t);
/* Draw the (meta-)batch of step `step` (what on_step does; it depends only
   on the seed and the step), or of the step after the last one drawn. */
int ham_trainer_draw_step(ham_trainer *t, int step);
int ham_trainer_draw(ham_trainer *t);
/* This rank's share of the (meta-)loss and gradient on the current batch
   (the objective's loss_grad). */
int ham_trainer_loss_grad(void *ctx, const double *theta, double *loss, double *grad);
/* The current batch's tasks (for tests): tasks() of count() */
ham_task *ham_trainer_tasks(ham_trainer *t);
/* Set a task by hand (tests): system, trajectory and 2K point indices. */
int ham_trainer_set_task(ham_trainer *t, int i, int sys, int traj, const int *idx);
/* Both meta-gradients of the current batch over all ranks (g2 exact, g1
   first order), each the mean over the tasks; 0 or -1. */
int ham_trainer_both_gradients(ham_trainer *t, double *g2, double *g1, double *loss);

typedef struct {
  double seconds, loss;
  int steps;
  /* the first- against the second-order meta-gradient over the steps measured */
  int gap_count;
  double gap_cos_mean, gap_rel_mean, gap_cos_min, gap_rel_max;
} ham_train_result;

/* Run the optimizer (Adam) on the model's parameters in place. */
int ham_train(ham_trainer *t, ham_train_result *res);

#endif
