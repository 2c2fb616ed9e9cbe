/*
 * internal.h -- structures shared by the core's files. Never installed;
 * plugins see only solver.h.
 */
#ifndef SV_INTERNAL_H
#define SV_INTERNAL_H

#include "solver.h"
#include <stdio.h>
#include <mpi.h>

/* Internal functions shared across core files. They are exported from
   libsolver.so (so the unit tests can call them) but not declared in
   solver.h, so plugins never see them. */
#define SV_HIDDEN __attribute__((visibility("default")))

/* ------------------------------------------------------------------ */
/* Graph (graph.c, autodiff.c, compile.c, kernels.c, ops/)            */
/* ------------------------------------------------------------------ */

/* An op: its builder, shape rule, kernel and derivative rule live together
   in one block under core/ops/ (see ops/ops.h). */
typedef struct sv_opdef sv_opdef;

typedef struct {
  int ndim;
  int d[SV_MAX_DIMS]; /* d[0] may be SV_BATCH */
} sv_shape;

#define SV_MAX_INPUTS 3

struct sv_node {
  int id;                 /* index in graph->nodes; inputs have smaller ids */
  const sv_opdef *op;
  sv_graph *g;
  sv_shape shape;
  int nin;
  sv_node **in;           /* nin inputs (points into inline or heap) */
  sv_node *in_inline[SV_MAX_INPUTS];
  /* attributes */
  double a;               /* pow exponent, scale, scalar, epsilon */
  int ia[4];              /* integer attributes, by op (axis, flags, stride...) */
  int *idx; int nidx;     /* gather/scatter indices (owned) */
  double *data;           /* OP_CONST values (owned) */
  char *name;             /* inputs and params */
  sv_params *params;      /* OP_PARAM */
  int block;              /* OP_PARAM: block index */
};

struct sv_graph {
  sv_node **nodes;
  int n, cap;
  char *error;            /* first build error (sticky) */
};

/* Shapes */
SV_HIDDEN int sv__shape_is_batched(const sv_shape *s);
/* Elements with the batch axis resolved to `batch`. */
SV_HIDDEN size_t sv__shape_count(const sv_shape *s, int batch);
SV_HIDDEN void sv__shape_format(const sv_shape *s, char *buf, size_t n);
/* Record a build error on g (first one wins) and return NULL. */
SV_HIDDEN sv_node *sv__graph_fail(sv_graph *g, const char *fmt, ...) SV_PRINTF(2, 3);
/* Low-level node creation (graph.c) */
SV_HIDDEN sv_node *sv__node_new(sv_graph *g, const sv_opdef *op, int nin, sv_node *const *in,
                                const sv_shape *shape);
/* Is n a leaf of that kind? */
SV_HIDDEN int sv__is_input(const sv_node *n);
SV_HIDDEN int sv__is_param(const sv_node *n);
/* Does the op reduce or contract over the batch axis (a batched input, an
   output without batch axis)? Then its rows are not independent. */
SV_HIDDEN int sv__mixes_rows(const sv_node *n);
/* The node of params block b in graph g (the graph's existing one, or a new
   leaf): one node per block and graph. */
SV_HIDDEN sv_node *sv__param_node(sv_graph *g, sv_params *p, int b);
/* Freeze a params vector (allocate its data); 0 or -1. */
SV_HIDDEN int sv__params_freeze(sv_params *p);

/* Params (params.c) */
typedef struct {
  char *name;
  sv_shape shape;         /* no batch axis */
  size_t offset, size;
  sv_param_kind kind;
  int fan_in, fan_out;
} sv_param_block;

struct sv_params {
  sv_param_block *blocks;
  int nblocks, cap;
  size_t count;
  double *data;           /* allocated when frozen */
  int frozen;
};

/* ------------------------------------------------------------------ */
/* Run context (run.c, options.c, progress.c, output.c, main.c)       */
/* ------------------------------------------------------------------ */

typedef enum { SV_OPTTYPE_INT, SV_OPTTYPE_REAL, SV_OPTTYPE_BOOL, SV_OPTTYPE_STRING } sv_opttype;

typedef struct {
  char *name;             /* "-n" */
  sv_opttype type;
  char *def;              /* default, as text */
  char *value;            /* value used, as text */
  char *help;
} sv_optdecl;

typedef struct {
  char *name;
  double value;
} sv_metric_entry;

typedef struct {
  char *file;             /* relative to outdir */
  FILE *fp;
  int ncols;
} sv_series_entry;

struct sv_run {
  MPI_Comm comm;
  int rank, size;
  unsigned long seed;
  gsl_rng *rng;
  char *outdir;
  char *checkpoint_path;
  const sv_plugin *plugin;
  char *plugin_path;
  int help_mode;          /* -help: declarations are listed, nothing runs */
  int quiet;
  int is_tty;             /* stderr is a terminal: draw a bar */
  double t_start;         /* wall clock at start */

  sv_optdecl *opts; int nopts, capopts;
  sv_metric_entry *metrics; int nmetrics, capmetrics;
  char **headlines; int nheadlines, capheadlines;
  sv_series_entry *series; int nseries, capseries;

  /* progress */
  char *prog_what;
  long prog_total, prog_done;
  double prog_t0, prog_last;
  double prog_loss;
  int prog_active;
};

/* Create a run context (run.c): the communicator is used as given (the
   caller initialised PETSc/MPI); outdir is created if missing (rank 0).
   The RNG is a gsl_rng_mt19937 seeded with `seed`. */
SV_HIDDEN sv_run *sv__run_new(MPI_Comm comm, const char *outdir, unsigned long seed);
SV_HIDDEN void sv__run_free(sv_run *r);

/* Wall clock in seconds. */
SV_HIDDEN double sv__now(void);
/* Write a whole file atomically: temporary file in the same directory,
   fsync, rename. */
SV_HIDDEN int sv__write_atomic(const char *path, const void *data, size_t n);
/* <outdir>/<file>, malloc'd. */
SV_HIDDEN char *sv__outpath(const sv_run *r, const char *file);
/* Write <outdir>/summary.json from the run (options, metrics, ...). */
SV_HIDDEN int sv__write_summary(sv_run *r, double wall_seconds);
/* Close the run's open series files. */
SV_HIDDEN void sv__series_close_all(sv_run *r);

/* ------------------------------------------------------------------ */
/* Optimizers (optim.c, optim_lbfgs.c, optim_lm.c)                    */
/* ------------------------------------------------------------------ */

/* One sv_minimize call: the state the drivers share with the step loop in
   optim.c (evaluation with the MPI reduction, NaN checks, history,
   progress, checkpoints). */
typedef struct {
  sv_run *r;
  sv_params *p;
  const sv_objective *obj;
  const sv_optim_opts *o;
  const char *name;       /* stage name */
  size_t n;               /* parameters */
  int ordinal;            /* 1-based stage number in the run (history column) */
  double *good;           /* last parameters whose loss and gradient were finite */
  double *red;            /* n + 2: gradient, loss, failed ranks */
  int on_step_done;       /* last step on_step was called for (-1: none) */
  int no_history;         /* writing loss_history.csv failed (rank 0) */
} sv__stage;

/* Loss (summed over ranks) and, if grad != NULL, the gradient (n values)
   at theta. Calls o->on_step first if `step` is new. Fails with the step
   on an objective error on any rank or a non-finite loss or gradient (the
   last good parameters are then restored and checkpointed). */
SV_HIDDEN int sv__stage_eval(sv__stage *s, int step, const double *theta, double *loss,
                             double *grad);
/* Call o->on_step once per step (before that step's first evaluation). */
SV_HIDDEN int sv__stage_on_step(sv__stage *s, int step);
/* An accepted iterate: remember it as good, append to the history, update
   progress, checkpoint every o->checkpoint_every steps. */
SV_HIDDEN int sv__stage_record(sv__stage *s, int step, const double *theta, double loss,
                               double lr);
/* Restore the last good parameters, checkpoint them and fail with
   "stage <name>: <what> at step <step>; last good parameters kept in ...". */
SV_HIDDEN int sv__stage_nonfinite(sv__stage *s, int step, const char *what);
/* Fail unless every value is finite; `what` names them ("loss"). */
SV_HIDDEN int sv__stage_check_finite(sv__stage *s, int step, const char *what,
                                     const double *v, size_t n);
/* The drivers: x holds the start on entry and the result on return. */
SV_HIDDEN int sv__minimize_lbfgs(sv__stage *s, double *x, sv_optim_result *res);
SV_HIDDEN int sv__minimize_lm(sv__stage *s, double *x, sv_optim_result *res);

#endif
