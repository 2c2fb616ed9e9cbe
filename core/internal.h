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
/* A jet layer's activation: the stack S [..., 1 + order ndir, w] with the
   bias b [w] added to its value row, through act (ops/jet.c). */
SV_HIDDEN sv_node *sv__jet_act(sv_node *S, sv_node *b, sv_activation act, int ndir, int order);
/* y[i] = f(x[i]) for n values (x == y allowed), vectorised with SLEEF where
   the CPU allows (vmath.c); the implementation's name for logs. */
SV_HIDDEN void sv__vtanh(const double *x, double *y, size_t n);
SV_HIDDEN void sv__vexp(const double *x, double *y, size_t n);
SV_HIDDEN void sv__vsin(const double *x, double *y, size_t n);
SV_HIDDEN void sv__vcos(const double *x, double *y, size_t n);
SV_HIDDEN void sv__verfc(const double *x, double *y, size_t n);
/* sigmoid over n values, through sv__vexp (x == y allowed) */
SV_HIDDEN void sv__vsigmoid(const double *x, double *y, size_t n);
SV_HIDDEN const char *sv__vmath_name(void);
/* The Jacobian of a batched residual y ([B] or [B,1], rows independent)
   with respect to every block of p, as one [B, n] node; NULL when a use of
   a parameter has no per-row rule (jacobian_rows.c). */
SV_HIDDEN sv_node *sv__jacobian_rows(sv_node *y, sv_params *p);
/* Whether an lsq objective computes its Jacobian rows in one batched pass
   (on = 1) or one batch-1 pass per row (on = 0); on = -1 only asks. A
   graph without per-row rules always goes row by row. For tests. */
SV_HIDDEN int sv__lsq_batched_jacobian(sv_lsq *l, int on);
/* n tasks side by side: task 0 on the caller, 1..n-1 on worker threads
   started by sv__pool_new and kept until sv__pool_free (thread_pool.c).
   sv__pool_run returns when every task has; -1 (with the lowest failing
   task's message) if any failed. A NULL pool runs task 0 alone. */
typedef struct sv__pool sv__pool;
SV_HIDDEN sv__pool *sv__pool_new(int n);
SV_HIDDEN void sv__pool_free(sv__pool *p);
SV_HIDDEN int sv__pool_size(const sv__pool *p);
SV_HIDDEN int sv__pool_run(sv__pool *p, int (*task)(void *ctx, int i), void *ctx);
/* The number of fused elementwise runs in a plan (for tests). */
SV_HIDDEN int sv__plan_fused_runs(const sv_plan *p);
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
  double *scales;         /* 2 per block (lr, decay); blocks past nscales: 1 (params.c) */
  int nscales;
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

/* A series of the run being resumed: its first `length` bytes are kept and
   the resumed run appends to them instead of starting the file anew. */
typedef struct {
  char *file;
  uint64_t length;
} sv_series_keep;

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
  /* progress of a stochastic stage: epoch e/E batch b/B, running metric */
  long prog_epoch, prog_epochs, prog_batch, prog_batches;
  char *prog_metric_name; /* NULL: no metric shown */
  double prog_metric;
  int prog_told;          /* a signal has been shown */

  /* interrupt and resume (signals.c, journal.c, optim.c) */
  int journal;            /* journal stages in <outdir>/resume (the solver program) */
  int resuming;           /* --resume: journalled stages load instead of training */
  sv_series_keep *keep; int nkeep;
  int interrupted;        /* a stage stopped on a signal (every rank agrees) */
  int interrupt_signal;   /* SIGINT or SIGTERM */
  int interrupt_step;     /* the last step the stage completed */
  char *interrupt_stage;  /* its name */
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
/* The byte length of a series file written so far (rank 0; 0 if not open). */
SV_HIDDEN uint64_t sv__series_length(sv_run *r, const char *file);

/* run.json (runinfo.c): how a run was started, for solver --resume. */
typedef struct {
  char *plugin, *plugin_path, *version, *cwd;
  unsigned long seed;
  int ranks;
  char **args;            /* the options as given */
  int nargs;
} sv__runinfo;

/* Write <outdir>/run.json (rank 0; the others return 0). */
SV_HIDDEN int sv__runinfo_write(const sv_run *r, const char *plugin_path, const char *cwd,
                                int nargs, char *const *args);
/* Read DIR/run.json; every refusal names the file and the reason. */
SV_HIDDEN int sv__runinfo_read(const char *dir, sv__runinfo *info);
SV_HIDDEN void sv__runinfo_free(sv__runinfo *info);

/* Signals (signals.c). sv__signals_install catches SIGINT and SIGTERM
   (each once: a second one has the default action, so the user can force
   the process to quit); sv__signals_restore puts the previous actions back.
   sv__signal_pending is the signal caught (0: none). */
SV_HIDDEN int sv__signals_install(void);
SV_HIDDEN void sv__signals_restore(void);
SV_HIDDEN int sv__signal_pending(void);
/* Ignore SIGINT and SIGTERM (hold = 1) or catch them again (0), when
   they are caught at all. */
SV_HIDDEN void sv__signals_hold(int hold);
SV_HIDDEN void sv__signal_clear(void);
SV_HIDDEN const char *sv__signal_name(int sig);

/* Progress of a stochastic stage (progress.c): "epoch e/E batch b/B" and
   the running metric (name NULL: none) after the stats. */
SV_HIDDEN void sv__progress_epoch(sv_run *r, long epoch, long epochs, long batch, long batches,
                                  const char *metric_name, double metric);

/* FNV-1a 64 (checkpoint.c): the checksum of checkpoints and the journal. */
SV_HIDDEN uint64_t sv__fnv1a64(const unsigned char *s, size_t n);
/* A whole regular file into malloc'd memory; `what` names it in errors
   ("checkpoint", "resume state"). */
SV_HIDDEN int sv__read_file(const char *what, const char *path, unsigned char **out, size_t *n);

/* ------------------------------------------------------------------ */
/* Optimizers (optim.c, optim_stage.c, optim_lbfgs.c, optim_lm.c)     */
/* ------------------------------------------------------------------ */

/* The optimizer state of a stage stopped by a signal: saved in the
   journal (journal.c), given back to the stage's driver on resume. */
#define SV__STATE_MAX_SCALARS 16
#define SV__STAGE_SCALARS 6   /* the step loop's, before the driver's */
#define SV__LM_SCALARS 4      /* LM's: lambda, nu, the stall window's start loss and step */
typedef struct {
  int step;               /* the last step completed (its update done) */
  int nscalars;
  double scalars[SV__STATE_MAX_SCALARS];
  int nvecs;              /* vectors of n values (Adam: m and v) */
  double *vecs;           /* nvecs * n, malloc'd */
} sv__optstate;

/* Reduced with the gradient in sv__stage_eval, after its n values. */
enum { SV__RED_LOSS, SV__RED_FAILED, SV__RED_SIGNAL, SV__RED_MSUM, SV__RED_MCOUNT, SV__RED_EXTRA };

/* One sv_minimize call: the state the drivers share with the step loop in
   optim_stage.c (evaluation with the MPI reduction, NaN checks, history,
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
  double *red;            /* n + SV__RED_EXTRA: gradient, then SV__RED_* */
  int on_step_done;       /* last step on_step was called for (-1: none) */
  int no_history;         /* writing loss_history.csv failed (rank 0) */
  int no_epochs;          /* writing epochs.csv failed (rank 0) */
  double t0;              /* wall clock at the start (less the seconds before a resume) */
  /* stochastic stages (steps_per_epoch > 0): this epoch so far */
  double ep_loss, ep_batches, ep_msum, ep_mcount;
  double batch_msum, batch_mcount; /* the last evaluation's batch_metric, summed */
  double last_epoch_loss; /* mean loss of the last epoch completed */
  /* interrupt and resume */
  int stop;               /* a signal was seen in a reduction: stop after this step */
  int stop_signal;
  int stopped;            /* the driver stopped and filled `saved` */
  sv__optstate saved;     /* where it stopped */
  const sv__optstate *resume; /* resume: the state to go on from (NULL: start) */
  gsl_rng *rng0;          /* journal: the run's RNG when the stage began */
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
/* Save the parameters (theta copied into p first) to the run's
   checkpoint on rank 0; every rank learns whether that failed. */
SV_HIDDEN int sv__stage_checkpoint(sv__stage *s, const double *theta);
/* Restore the last good parameters, checkpoint them and fail with
   "stage <name>: <what> at step <step>; last good parameters kept in ...". */
SV_HIDDEN int sv__stage_nonfinite(sv__stage *s, int step, const char *what);
/* Fail unless every value is finite; `what` names them ("loss"). */
SV_HIDDEN int sv__stage_check_finite(sv__stage *s, int step, const char *what,
                                     const double *v, size_t n);
/* Begin a state at `step` with the step loop's scalars; the driver adds
   its own scalars and vectors (sv__stage_state_vecs). */
SV_HIDDEN void sv__stage_state_begin(sv__stage *s, int step);
SV_HIDDEN double *sv__stage_state_vecs(sv__stage *s, int nvecs);
/* Take the step loop's scalars back from s->resume. */
SV_HIDDEN void sv__stage_state_restore(sv__stage *s);
/* The drivers: x holds the start on entry and the result on return. When
   a signal stops them they return 0 with s->stopped set and s->saved
   filled (L-BFGS stops without a state: it starts over on resume). */
SV_HIDDEN int sv__minimize_lbfgs(sv__stage *s, double *x, sv_optim_result *res);
SV_HIDDEN int sv__minimize_lm(sv__stage *s, double *x, sv_optim_result *res);

/* ------------------------------------------------------------------ */
/* The stage journal (journal.c)                                      */
/* ------------------------------------------------------------------ */

/* One entry: <outdir>/resume/stage-<ordinal>.ckpt for a completed stage,
   stage-<ordinal>.state for one stopped by a signal (with `st`). */
typedef struct {
  int ordinal;
  sv_optim_kind kind;
  const char *plugin;     /* the plugin's name ("" without one) */
  const char *stage;      /* the stage's name */
  int stopped;            /* 1: a .state */
  sv_optim_result res;
  uint64_t history_len;   /* bytes of loss_history.csv and epochs.csv then */
  uint64_t epochs_len;
  sv__optstate st;        /* stopped only; vecs malloc'd on read */
  void *rng0;             /* stopped only: the RNG state when the stage began
                             (gsl_rng_size bytes; malloc'd on read) */
} sv__jrec;

/* Write an entry with the values of p and the state of rng, atomically. */
SV_HIDDEN int sv__journal_write(const char *path, const sv__jrec *rec, const sv_params *p,
                                const gsl_rng *rng);
/* Read and check an entry against `want` (plugin, ordinal, stage, kind,
   stopped) and the layout of p; only then set p's values and rng's state
   and fill *got (its names point into nothing: NULL). Every refusal
   names the file and the reason; p and rng are then unchanged. */
SV_HIDDEN int sv__journal_read(const char *path, const sv__jrec *want, sv__jrec *got,
                               sv_params *p, gsl_rng *rng);
/* The path of a stage's entry, malloc'd. */
SV_HIDDEN char *sv__journal_path(const sv_run *r, int ordinal, int stopped);
/* Start the journal of a run (rank 0 touches the files; call on every
   rank): a fresh run removes an earlier run's entries from the output
   directory; a resumed one needs entries, and keeps loss_history.csv and
   epochs.csv as long as its latest entry says. */
SV_HIDDEN int sv__journal_begin(sv_run *r, int resuming);
/* Which entry stage `ordinal` has: 0 none, 1 completed, 2 stopped. */
SV_HIDDEN int sv__journal_find(const sv_run *r, int ordinal);
/* A stage that completed: write its entry (rank 0) and remove its .state;
   every rank learns the outcome. */
SV_HIDDEN int sv__journal_stage_done(sv__stage *s, const sv_optim_result *res);
/* A stage that stopped on a signal: write its .state (rank 0). */
SV_HIDDEN int sv__journal_stage_stopped(sv__stage *s, const sv_optim_result *res);
/* Resuming stage s: load its entry (kind from sv__journal_find); every
   rank reads the file and all agree. A stopped stage then replays its
   on_step calls 0..step from the RNG state it began with, so that the
   plugin's minibatch state is what it was, and checks that this leaves
   the RNG where the state says. */
SV_HIDDEN int sv__journal_stage_load(sv__stage *s, int stopped, sv_optim_result *res,
                                     sv__optstate *st);

#endif
