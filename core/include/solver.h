/*
 * solver.h -- the one public header of libsolver.
 *
 * Everything a plugin may use from the core is declared here:
 *
 *   errors      every fallible call returns 0 on success and -1 on failure,
 *               leaving a message in sv_errmsg() that names what was wrong.
 *   graph       a symbolic float64 tensor graph, built once; derivative
 *               nodes (sv_vjp, sv_grad) are ordinary nodes and can be
 *               differentiated again.
 *   plan        a graph compiled for one batch size: topological order,
 *               dead nodes dropped, buffers planned in one arena; run many
 *               times without allocating.
 *   params      all trainable values in one contiguous vector.
 *   nn          dense layers and MLPs over a params vector.
 *   lsq         a least-squares objective (loss, gradient, exact Jacobian)
 *               built from residual nodes of a graph.
 *   optim       SGD, Adam, L-BFGS (PETSc TAO) and Levenberg-Marquardt
 *               behind one call; MPI reductions happen here.
 *   run         what a plugin receives: options, RNG, MPI, log, progress,
 *               output directory, metrics, CSV, plots, checkpoints.
 *   plugin      the descriptor a plugin exports.
 *
 * Conventions: all reals are double; shapes are row-major with at most
 * SV_MAX_DIMS axes; axis 0 of a node may be the batch axis (SV_BATCH), whose
 * size is fixed only when the graph is compiled.
 */
#ifndef SOLVER_H
#define SOLVER_H

#include <stddef.h>
#include <stdint.h>
#include <gsl/gsl_rng.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(SV_API)
#define SV_API __attribute__((visibility("default")))
#elif !defined(SV_API)
#define SV_API
#endif

#if defined(__GNUC__)
#define SV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SV_PRINTF(a, b)
#endif

/* ------------------------------------------------------------------ */
/* Version and errors                                                  */
/* ------------------------------------------------------------------ */

SV_API const char *sv_version(void);

/* The message of the last failure in this thread ("" if none). */
SV_API const char *sv_errmsg(void);
/* Set the message (printf-style) and return -1, for `return sv_fail(...)`. */
SV_API int sv_fail(const char *fmt, ...) SV_PRINTF(1, 2);
/* Prefix the current message with more context and return -1. */
SV_API int sv_fail_context(const char *fmt, ...) SV_PRINTF(1, 2);
SV_API void sv_clear_error(void);

/* ------------------------------------------------------------------ */
/* Graph                                                               */
/* ------------------------------------------------------------------ */

#define SV_MAX_DIMS 4
/* In a shape, axis 0 may be SV_BATCH: its size is chosen at compile time. */
#define SV_BATCH (-1)

typedef struct sv_graph sv_graph;
typedef struct sv_node sv_node;
typedef struct sv_params sv_params;

/*
 * Building never fails loudly: an op given a bad shape returns NULL and
 * records the first error in the graph (sticky, like cairo); an op given a
 * NULL input returns NULL. sv_graph_error() or sv_compile() reports it.
 */
SV_API sv_graph *sv_graph_new(void);
SV_API void sv_graph_free(sv_graph *g);
SV_API const char *sv_graph_error(const sv_graph *g); /* NULL if none */
SV_API int sv_graph_node_count(const sv_graph *g);

/* Leaves. `dims` has `ndim` entries; dims[0] may be SV_BATCH. */
SV_API sv_node *sv_input(sv_graph *g, const char *name, int ndim, const int *dims);
SV_API sv_node *sv_constant(sv_graph *g, int ndim, const int *dims, const double *data);
SV_API sv_node *sv_scalar(sv_graph *g, double value);
/* A tensor filled with one value, of the shape of `like` (batch kept). */
SV_API sv_node *sv_fill_like(sv_node *like, double value);
/* A parameter block: a named view into the params vector. */
SV_API sv_node *sv_param(sv_graph *g, sv_params *p, const char *name, int ndim,
                         const int *dims);

/* Shape queries. sv_dim returns SV_BATCH for a batch axis. */
SV_API int sv_ndim(const sv_node *a);
SV_API int sv_dim(const sv_node *a, int axis);
SV_API int sv_is_batched(const sv_node *a);
SV_API sv_graph *sv_node_graph(const sv_node *a);
SV_API const char *sv_op_name(const sv_node *a);

/* Elementwise binary ops with numpy broadcasting (right-aligned). */
SV_API sv_node *sv_add(sv_node *a, sv_node *b);
SV_API sv_node *sv_sub(sv_node *a, sv_node *b);
SV_API sv_node *sv_mul(sv_node *a, sv_node *b);
SV_API sv_node *sv_div(sv_node *a, sv_node *b);
/* atan2(a, b): the angle of the point (b, a) in (-pi, pi], as C's atan2(y = a, x = b). */
SV_API sv_node *sv_atan2(sv_node *a, sv_node *b);

/* Elementwise unary ops. */
SV_API sv_node *sv_neg(sv_node *a);
SV_API sv_node *sv_square(sv_node *a);
SV_API sv_node *sv_pow(sv_node *a, double p); /* a^p, p a constant */
SV_API sv_node *sv_exp(sv_node *a);
SV_API sv_node *sv_ln(sv_node *a);     /* natural log (sv_log is the logger) */
SV_API sv_node *sv_sqrt(sv_node *a);
SV_API sv_node *sv_tanh(sv_node *a);
SV_API sv_node *sv_sin(sv_node *a);
SV_API sv_node *sv_cos(sv_node *a);
SV_API sv_node *sv_sigmoid(sv_node *a);
SV_API sv_node *sv_softplus(sv_node *a);
SV_API sv_node *sv_scale(sv_node *a, double s);      /* s * a */
SV_API sv_node *sv_add_scalar(sv_node *a, double s); /* a + s */
SV_API sv_node *sv_erf(sv_node *a);
/* GELU, the erf form (PyTorch's default nn.GELU): x (1 + erf(x / sqrt 2)) / 2. */
SV_API sv_node *sv_gelu(sv_node *a);
/* The gated linear unit along the last axis (PyTorch's nn.GLU(dim=-1)):
   z = [a, b] (two halves of the last axis, of even size) -> a * sigmoid(b). */
SV_API sv_node *sv_glu(sv_node *z);

/*
 * Matrix product through cblas_dgemm: op(a) * op(b), op = transpose when
 * the flag is set. A batched `a` ([B,k] * [k,n] -> [B,n]) is the common
 * case; transpose_a of a batched `a` contracts over the batch ([B,m]^T
 * [B,n] -> [m,n]). `a` may have more axes, all but the last being rows:
 * [B,J,k] * [k,n] -> [B,J,n], and [B,J,m]^T [B,J,n] -> [m,n].
 */
SV_API sv_node *sv_matmul(sv_node *a, sv_node *b);
SV_API sv_node *sv_matmul_t(sv_node *a, int transpose_a, sv_node *b, int transpose_b);
/* A batch of products: a [N, m, k] x b [N, k, n] -> [N, m, n], one per
   leading index (usually the batch axis), transposes on the last two axes. */
SV_API sv_node *sv_bmm(sv_node *a, int transpose_a, sv_node *b, int transpose_b);

/* Reductions. axis may be negative (from the end); the axis is dropped. */
SV_API sv_node *sv_sum(sv_node *a);  /* all elements -> scalar */
SV_API sv_node *sv_mean(sv_node *a); /* all elements -> scalar */
SV_API sv_node *sv_sum_axis(sv_node *a, int axis);
SV_API sv_node *sv_mean_axis(sv_node *a, int axis);
/* Maximum over one axis or several (dropped). Subgradient: the whole
   adjoint goes to the FIRST maximum of each group in row-major order (ties);
   a NaN wins, so NaN propagates. */
SV_API sv_node *sv_max_axis(sv_node *a, int axis);
SV_API sv_node *sv_max_axes(sv_node *a, int naxes, const int *axes);
/* Sort along the last axis (not the batch axis), largest first; ties keep
   their order and NaN comes first. Its derivative sends each adjoint back to
   where its value came from. Insertion sort: for short axes. */
SV_API sv_node *sv_sort_last(sv_node *a);
/* log sum exp along an axis (dropped), stable for large inputs. */
SV_API sv_node *sv_logsumexp(sv_node *a, int axis);
/* Sum over broadcast axes down to a shape (the adjoint of broadcasting). */
SV_API sv_node *sv_sum_to(sv_node *a, int ndim, const int *dims);
/* Broadcast to a shape (numpy rules). */
SV_API sv_node *sv_broadcast_to(sv_node *a, int ndim, const int *dims);

/* Shape ops. A reshape of a batched node keeps dims[0] = SV_BATCH. */
SV_API sv_node *sv_reshape(sv_node *a, int ndim, const int *dims);
SV_API sv_node *sv_transpose(sv_node *a); /* 2-D, not batched */
SV_API sv_node *sv_slice(sv_node *a, int axis, int start, int len);
SV_API sv_node *sv_concat(int n, sv_node *const *parts, int axis);

/*
 * Rows by index (message passing). a is [n, ...] (not batched);
 * gather -> [m, ...] with out[i] = a[idx[i]];
 * scatter_add -> [nrows, ...] with out[idx[i]] += a[i].
 * The index array is copied.
 */
SV_API sv_node *sv_gather_rows(sv_node *a, int m, const int *idx);
SV_API sv_node *sv_scatter_add_rows(sv_node *a, int m, const int *idx, int nrows);
/* labels [...] holding class indices (doubles) -> [..., nclasses] with a 1
   at each label. A label that is not an integer in [0, nclasses) fails the
   plan run with a message naming it. */
SV_API sv_node *sv_onehot(sv_node *labels, int nclasses);

/*
 * Convolution and pooling, NCHW. conv2d: x [B, Cin, H, W] with filters
 * w [Cout, Cin, kh, kw] (any node: weights may be computed), stride and
 * zero padding on both axes -> [B, Cout, (H + 2 pad - kh) / stride + 1,
 * (W + 2 pad - kw) / stride + 1]; the cross-correlation deep-learning
 * libraries call convolution (no kernel flip). A compiled plan computes
 * each conv2d node (and its adjoints) by im2col and dgemm, or, for stride 1
 * and wide layers where the cost model expects several times less work, by
 * FFT (same values to round-off); SOLVER_CONV2D=direct|fft in the
 * environment forces one. maxpool2d: k x k windows,
 * stride k, a partial last window dropped; the subgradient goes to the
 * first maximum of each window (row-major).
 */
SV_API sv_node *sv_conv2d(sv_node *x, sv_node *w, int stride, int pad);
SV_API sv_node *sv_maxpool2d(sv_node *x, int k);

/*
 * Classifier losses and normalisation.
 * log_softmax: x - logsumexp(x) along an axis (not the batch axis).
 * softmax_xent: logits [..., C] (classes last) against labels [...] (class
 * indices as doubles): the per-row loss logsumexp(z) - z[label], one fused,
 * stable op (take sv_mean of it for the usual loss); bad labels fail the run.
 * layer_norm: (x - mean) / sqrt(var + eps) over the trailing `naxes` axes
 * (biased variance, as PyTorch's LayerNorm); the affine form multiplies by
 * `scale` and adds `shift` (nodes of the trailing shape; either may be NULL).
 */
SV_API sv_node *sv_log_softmax(sv_node *a, int axis);
SV_API sv_node *sv_softmax_xent(sv_node *logits, sv_node *labels);
SV_API sv_node *sv_layer_norm(sv_node *x, int naxes, double eps);
SV_API sv_node *sv_layer_norm_affine(sv_node *x, int naxes, double eps, sv_node *scale,
                                     sv_node *shift);

/*
 * Causal depthwise convolution along time (the long convolution of
 * state-space models), through FFTW: u [B, L, H] (B may be SV_BATCH) or
 * [L, H], k [H, L] (one kernel per channel), y of u's shape with
 *   y[b, l, h] = sum_{j <= l} k[h, j] u[b, l - j, h].
 * Differentiable to any order in both u and k. Compiling a plan with it
 * runs FFTW's planner (FFTW_MEASURE, up to about a second for long
 * sequences), which is not thread-safe: compile from one thread at a time.
 */
SV_API sv_node *sv_causal_conv(sv_node *u, sv_node *k);
/*
 * The anti-causal one, the same convolution run backwards in time (the
 * second direction of a bidirectional state-space layer), shapes as above:
 *   y[b, m, h] = sum_{l >= m} k[h, l - m] u[b, l, h].
 * It is the adjoint of sv_causal_conv with respect to u, so the same
 * transforms and derivative rules serve it.
 */
SV_API sv_node *sv_anticausal_conv(sv_node *u, sv_node *k);

/*
 * Vandermonde sums, the convolution kernels of diagonal state-space models
 * (S4D): for complex c = c_re + i c_im and s = s_re + i s_im given as four
 * real nodes of one shape [H, M] (or [M]), without a batch axis,
 *   y[h, l] = sum_m Re(c[h, m] exp(l s[h, m])),  l = 0..L-1   -> [H, L] ([L]).
 * With c = 2 C Bbar and s = log Abar this is K_l = 2 Re sum_m C_m Bbar_m
 * Abar_m^l. O(H M L): e^s once per mode, then powers by complex
 * multiplication (about l ulps from e^{l s}). Differentiable to any order in
 * all four inputs.
 */
SV_API sv_node *sv_vandermonde(sv_node *c_re, sv_node *c_im, sv_node *s_re, sv_node *s_im, int L);

/*
 * Reverse-mode derivatives, built as graph nodes.
 * sv_vjp: for each x[i], the node sum_j seed_j * d y_j / d x[i] (shape of
 * x[i]); seed NULL means all ones. A node y does not depend on gives zeros.
 * sv_grad: d(sum y)/dx. For a batched y whose rows depend only on the
 * same row of x (a PINN), sv_grad(u, x) is du/dx row by row.
 */
SV_API int sv_vjp(sv_node *y, sv_node *seed, int nx, sv_node *const *x, sv_node **out);
SV_API sv_node *sv_grad(sv_node *y, sv_node *x);
/* Gradient of sum(y) w.r.t. every block of p, packed as one [n] vector in
   the params' order. */
SV_API sv_node *sv_grad_params(sv_node *y, sv_params *p);

/* ------------------------------------------------------------------ */
/* Plans: a graph compiled for one batch size                          */
/* ------------------------------------------------------------------ */

typedef struct sv_plan sv_plan;

SV_API sv_plan *sv_compile(sv_graph *g, int nout, sv_node *const *outputs, int batch);
SV_API void sv_plan_free(sv_plan *p);
/* Point an input at caller-owned data (batch rows of the input's row size).
   The data must stay valid while the plan runs; nothing is copied. */
SV_API int sv_plan_bind(sv_plan *p, sv_node *input, const double *data);
SV_API int sv_plan_run(sv_plan *p);
/* The buffer of a compiled node: an output, an input, a parameter or a
   constant. NULL for anything else (intermediate buffers are reused) and
   while an input is unbound. */
SV_API const double *sv_plan_value(const sv_plan *p, const sv_node *n);
SV_API size_t sv_plan_size(const sv_plan *p, const sv_node *n); /* elements */
SV_API size_t sv_plan_arena_bytes(const sv_plan *p);
SV_API int sv_plan_step_count(const sv_plan *p);

/* ------------------------------------------------------------------ */
/* Parameters                                                          */
/* ------------------------------------------------------------------ */

/* Kinds, for initialisers. */
typedef enum { SV_PARAM_OTHER = 0, SV_PARAM_WEIGHT, SV_PARAM_BIAS } sv_param_kind;

SV_API sv_params *sv_params_new(void);
SV_API void sv_params_free(sv_params *p);
/* Declaring blocks grows the vector; the first sv_params_data() or
   sv_compile() freezes it (no more blocks after that). */
SV_API size_t sv_params_count(const sv_params *p);   /* total values */
SV_API double *sv_params_data(sv_params *p);         /* freezes */
SV_API int sv_params_block_count(const sv_params *p);
SV_API const char *sv_params_block_name(const sv_params *p, int i);
SV_API size_t sv_params_block_offset(const sv_params *p, int i);
SV_API size_t sv_params_block_size(const sv_params *p, int i);
SV_API int sv_params_set_kind(sv_params *p, sv_node *param, sv_param_kind kind,
                              int fan_in, int fan_out);
/* Glorot (Xavier) uniform for weights, zero for biases, from the RNG. */
SV_API int sv_params_init_glorot(sv_params *p, gsl_rng *rng);
/* The index of the block named `name`, or -1. */
SV_API int sv_params_find(const sv_params *p, const char *name);

/*
 * Functional parameters: a network evaluated at a node theta instead of the
 * vector's values (MAML's theta' = theta - alpha grad L(theta)).
 * sv_params_node: the whole vector as one [n] node of graph g, the blocks
 * concatenated in order; its derivatives are the params' derivatives.
 * sv_params_view: block `block` of a [n] node theta, in the block's shape.
 * Declare every block before taking views (the length must not change).
 */
SV_API sv_node *sv_params_node(sv_graph *g, sv_params *p);
SV_API sv_node *sv_params_view(sv_params *p, sv_node *theta, const char *block);

/* ------------------------------------------------------------------ */
/* Networks                                                            */
/* ------------------------------------------------------------------ */

typedef enum {
  SV_ACT_NONE = 0, SV_ACT_TANH, SV_ACT_SIGMOID, SV_ACT_SOFTPLUS, SV_ACT_SIN
} sv_activation;

/* Parse "tanh", "sigmoid", "softplus", "sin", "none". */
SV_API int sv_activation_parse(const char *s, sv_activation *out);
SV_API const char *sv_activation_name(sv_activation a);

/* act(x W + b), x [rows, nin] -> [rows, nout]; blocks "<name>.W", "<name>.b". */
SV_API sv_node *sv_dense(sv_params *p, const char *name, sv_node *x, int nout,
                         sv_activation act);
/* depth hidden layers of `width` with act, then a linear layer to nout. */
SV_API sv_node *sv_mlp(sv_params *p, const char *name, sv_node *x, int width,
                       int depth, int nout, sv_activation act);
/* The same layers evaluated at theta, a [n] node laid out as p (see
   sv_params_view); theta NULL means p's own values. The blocks are found by
   name and declared (as sv_dense would) when p does not have them yet, so
   a network can be built at theta and again at theta' with shared blocks. */
SV_API sv_node *sv_dense_at(sv_params *p, sv_node *theta, const char *name, sv_node *x, int nout,
                            sv_activation act);
SV_API sv_node *sv_mlp_at(sv_params *p, sv_node *theta, const char *name, sv_node *x, int width,
                          int depth, int nout, sv_activation act);

/* ------------------------------------------------------------------ */
/* Training: schedules, per-block scales, interrupt and resume         */
/* ------------------------------------------------------------------ */

typedef struct sv_run sv_run;

/*
 * Learning-rate schedules of SGD and Adam (sv_optim_opts.schedule), after
 * an optional linear warm-up: lr (t + 1) / warmup_steps for the steps
 * t < warmup_steps, then
 *   SV_LR_CONSTANT  lr, or cosine warm restarts when restart_period > 0;
 *   SV_LR_COSINE    lr_min + (lr - lr_min) (1 + cos(pi p)) / 2 with
 *                   p = (t - warmup_steps) / (max_steps - warmup_steps):
 *                   one cosine over the whole stage, down to lr_min.
 */
typedef enum { SV_LR_CONSTANT = 0, SV_LR_COSINE } sv_lr_schedule;

/*
 * Per-block multipliers of the learning rate and of the weight decay for
 * every block whose name starts with block_prefix ("" is every block):
 * block i moves at lr * lr_scale_i and decays by weight_decay *
 * decay_scale_i (0 exempts biases, norms, state-space parameters). Both
 * default to 1. Fails, naming the prefix, when no block matches or a
 * scale is negative or not finite. SGD and Adam apply them; L-BFGS and LM
 * ignore them.
 */
SV_API int sv_params_set_scales(sv_params *p, const char *block_prefix, double lr_scale,
                                double decay_scale);
SV_API double sv_params_block_lr_scale(const sv_params *p, int i);
SV_API double sv_params_block_decay_scale(const sv_params *p, int i);

/*
 * Nonzero (the signal number, SIGINT or SIGTERM) once the user asked this
 * process to stop: the `solver` program catches SIGINT and SIGTERM while
 * the plugin runs. sv_minimize stops by itself at the end of a step,
 * saves what resuming needs and fails; a plugin's own long loops (data
 * generation, evaluation) check this and return sv_fail(...) early. It is
 * this rank's view, without communication: a loop with collective calls
 * sums it over the ranks itself (sv_allreduce_sum) so that every rank
 * leaves at the same iteration.
 */
SV_API int sv_interrupted(const sv_run *r);

/*
 * Taylor mode (jets): an MLP of x [B, d] (d <= SV_JET_MAX_DIRS) together
 * with its first `order` (1 or 2) derivatives along each input axis,
 * pushed forward layer by layer: du/dx_k and d2u/dx_k^2 (no mixed
 * derivatives). The value and derivative rows are stacked so that each
 * layer is one matrix product and one fused activation node; the weight
 * gradient is ordinary reverse mode over those nodes. Same parameter
 * blocks (and so the same values and checkpoints) as sv_mlp / sv_mlp_at;
 * theta as in sv_mlp_at (NULL: the params). Far cheaper than
 * sv_grad(sv_grad(u, x), x) for u''. 0, or -1 with sv_fail.
 */
#define SV_JET_MAX_DIRS 3
typedef struct sv_jet {
  int ndir, order;
  sv_node *u;                     /* [B, nout] */
  sv_node *du[SV_JET_MAX_DIRS];   /* du/dx_k, [B, nout] */
  sv_node *d2u[SV_JET_MAX_DIRS];  /* d2u/dx_k^2 (order 2), [B, nout] */
  sv_node *stack;                 /* [B, 1 + order d, nout]: u, du_k..., d2u_k... */
} sv_jet;
SV_API int sv_mlp_jet(sv_params *p, sv_node *theta, const char *name, sv_node *x, int width,
                      int depth, int nout, sv_activation act, int order, sv_jet *out);

/* ------------------------------------------------------------------ */
/* Objectives and optimizers                                           */
/* ------------------------------------------------------------------ */

/*
 * What an optimizer minimises. Every callback computes this rank's share;
 * the optimizer sums losses and gradients over the ranks and gathers
 * residual rows, so a plugin that splits its data needs nothing else.
 * theta is the parameter vector being optimised (n values, the same on all
 * ranks).
 */
typedef struct sv_objective {
  size_t n;                   /* parameters */
  size_t m;                   /* residual rows on this rank (0: no lsq) */
  /* loss (this rank's share) and, if grad != NULL, its gradient. */
  int (*loss_grad)(void *ctx, const double *theta, double *loss, double *grad);
  /* residuals r (m) and, if J != NULL, the Jacobian (m x n, row-major);
     loss = sum over all ranks of |r|^2. NULL when not a least-squares
     problem. */
  int (*residuals)(void *ctx, const double *theta, double *r, double *J);
  void *ctx;
} sv_objective;

typedef enum { SV_OPTIM_SGD = 0, SV_OPTIM_ADAM, SV_OPTIM_LBFGS, SV_OPTIM_LM } sv_optim_kind;

SV_API int sv_optim_parse(const char *s, sv_optim_kind *out); /* "sgd", "adam", "lbfgs", "lm" */
SV_API const char *sv_optim_name(sv_optim_kind k);

typedef struct sv_optim_opts {
  sv_optim_kind kind;
  const char *stage;     /* name for progress, logs and metrics ("adam") */
  int max_steps;         /* iterations */
  double lr;             /* SGD/Adam learning rate */
  double momentum;       /* SGD */
  double beta1, beta2, eps; /* Adam */
  int restart_period;    /* Adam: cosine warm restarts, first period (0: constant lr) */
  double restart_mult;   /* period multiplier after each restart (>= 1) */
  double lr_min;         /* cosine floor */
  double gtol;           /* stop when |grad| (L-BFGS) or the LM step is this small */
  double ftol;           /* stop when the loss is below this */
  double lm_lambda;      /* LM initial damping */
  int checkpoint_every;  /* steps between checkpoints (0: stage end only) */
  /* Called every step before the loss is evaluated (for resampling); may be NULL. */
  int (*on_step)(void *ctx, int step);
  void *on_step_ctx;
  /* ABI 2 (appended; sv_optim_defaults sets them all). */
  int steps_per_epoch;   /* > 0: a stochastic objective (SGD/Adam): on_step(step) moves
                            to the minibatch of that step, batch step % steps_per_epoch
                            of epoch step / steps_per_epoch; max_steps evaluations, no
                            final one; epochs.csv gets each epoch's mean loss */
  /* Optional, with steps_per_epoch: this rank's (sum, count) of a metric
     over the batch just evaluated (e.g. correct predictions, samples); the
     core sums both over the ranks and shows sum/count over the epoch so
     far as metric_name. Called with on_step_ctx after each evaluation. */
  int (*batch_metric)(void *ctx, double *sum, double *count);
  const char *metric_name; /* "accuracy" (NULL: "metric") */
  double weight_decay;   /* SGD/Adam: decoupled decay theta *= 1 - lr wd before the update
                            (Adam with weight_decay > 0 is AdamW) */
  sv_lr_schedule schedule; /* SGD/Adam, see sv_lr_schedule */
  int warmup_steps;      /* SGD/Adam: linear warm-up steps (0: none) */
  double clip_norm;      /* SGD/Adam: clip the global gradient 2-norm to this (0: off) */
  /* LM: stop (converged) when the loss fell by less than a fraction
     stall_rtol over the last stall_window steps, checked every
     stall_window steps (0: run every step) */
  int stall_window;
  double stall_rtol;
} sv_optim_opts;

/* Defaults for a kind: Adam lr 1e-3, betas 0.9/0.999, ... */
SV_API void sv_optim_defaults(sv_optim_opts *o, sv_optim_kind kind);

typedef struct sv_optim_result {
  int steps;
  double loss;           /* final loss */
  double seconds;
  int converged;         /* 1 when a tolerance stopped it */
} sv_optim_result;

/*
 * Minimise obj over the values of p (in place). Records the loss history in
 * the run (loss_history.csv), shows progress, checkpoints the parameters,
 * and stops with an error naming the step if the loss becomes NaN or Inf
 * (the parameters are restored to the last good values).
 *
 * Each call is a stage with an ordinal (1, 2, ... in the run). Under the
 * `solver` program a completed stage is journalled in <outdir>/resume/, and
 * an interrupted one (SIGINT, SIGTERM) stops at the end of a step, saves
 * its parameters, optimizer state and the run's RNG state there and fails;
 * `solver --resume DIR` runs the plugin again, and each stage journalled
 * before loads its result instead of training, the interrupted one goes on
 * from the next step. An interrupted L-BFGS stage starts over (TAO's
 * history cannot be saved).
 */
SV_API int sv_minimize(sv_run *run, sv_params *p, const sv_objective *obj,
                       const sv_optim_opts *o, sv_optim_result *res);

/* ------------------------------------------------------------------ */
/* Least squares from a graph                                          */
/* ------------------------------------------------------------------ */

/*
 * The objective loss = sum_k weight_k * sum_rows res_k^2 / rows_global for
 * batched residual nodes res_k ([B] or [B,1]) whose rows depend only on the
 * same rows of the inputs. Loss and gradient run on a batch-`rows` plan;
 * the exact Jacobian (for LM) runs a batch-1 plan once per row, so it costs
 * about one extra backward pass per row. Refuses residuals that mix rows.
 */
typedef struct sv_lsq sv_lsq;

SV_API sv_lsq *sv_lsq_new(sv_graph *g, sv_params *p, int nres, sv_node *const *res,
                          int rows, int rows_global);
SV_API void sv_lsq_free(sv_lsq *l);
SV_API int sv_lsq_bind(sv_lsq *l, sv_node *input, const double *data);
/* Per-residual weights (default 1); may change between steps (SoftAdapt). */
SV_API int sv_lsq_set_weight(sv_lsq *l, int k, double w);
SV_API const sv_objective *sv_lsq_objective(sv_lsq *l);
/* Split this rank's rows over `threads` threads of this process (default
   1), each with its own plans; OpenBLAS is single-threaded until the
   objective is freed (the threads are the parallelism); loss, gradient,
   residuals and Jacobian rows are combined in a fixed order, so a run is
   reproducible for a given thread count and agrees with 1 thread to
   round-off. At most one thread per row. Call after sv_lsq_new. */
SV_API int sv_lsq_set_threads(sv_lsq *l, int threads);
SV_API int sv_lsq_threads(const sv_lsq *l);
/* This rank's mean square of residual k at the current parameters, from the
   last loss evaluation. */
SV_API double sv_lsq_last_part(const sv_lsq *l, int k);

/* ------------------------------------------------------------------ */
/* The run context                                                     */
/* ------------------------------------------------------------------ */

/* Options (PETSc's options database): name with its leading dash, "-n". A
   declared option is listed by -help with its default and help text; an
   option given on the command line that no one declared is an error. */
SV_API int sv_opt_int(sv_run *r, const char *name, int def, const char *help, int *out);
SV_API int sv_opt_real(sv_run *r, const char *name, double def, const char *help, double *out);
SV_API int sv_opt_bool(sv_run *r, const char *name, int def, const char *help, int *out);
SV_API int sv_opt_string(sv_run *r, const char *name, const char *def, const char *help,
                         char *out, size_t outsize);

SV_API gsl_rng *sv_run_rng(sv_run *r);
SV_API unsigned long sv_run_seed(const sv_run *r);
SV_API int sv_run_rank(const sv_run *r);
SV_API int sv_run_size(const sv_run *r);
/* Sum n doubles over all ranks, in place. */
SV_API int sv_allreduce_sum(sv_run *r, double *x, size_t n);
/* Split `total` items over the ranks: this rank gets [*first, *first + *count). */
SV_API void sv_run_partition(const sv_run *r, int total, int *first, int *count);
/* Gather each rank's `count` doubles (counts may differ) into `all` on every
   rank, in rank order. */
SV_API int sv_allgather(sv_run *r, const double *mine, int count, double *all);

/* Clocks, in seconds: wall (monotonic, from an arbitrary origin) and the
   CPU time of this process, all its threads (on a shared machine the time
   a computation actually ran). Differences are what count. */
SV_API double sv_wall_seconds(void);
SV_API double sv_cpu_seconds(void);

/* Logging (rank 0 only; never print directly from a plugin). */
SV_API void sv_log(sv_run *r, const char *fmt, ...) SV_PRINTF(2, 3);
SV_API void sv_warn(sv_run *r, const char *fmt, ...) SV_PRINTF(2, 3);

/* Progress: a bar with rate and ETA on a terminal, a line every few
   seconds otherwise. sv_minimize uses it for you. */
SV_API void sv_progress_begin(sv_run *r, const char *what, long total);
SV_API void sv_progress_update(sv_run *r, long done, double loss);
SV_API void sv_progress_end(sv_run *r);

/* Output directory (created by the core). */
SV_API const char *sv_run_outdir(const sv_run *r);
/* A named number for summary.json's "metrics" (last value wins). */
SV_API int sv_metric(sv_run *r, const char *name, double value);
/* A headline line for the end-of-run summary on stdout. */
SV_API int sv_headline(sv_run *r, const char *fmt, ...) SV_PRINTF(2, 3);
/* Write a CSV (atomically) of ncols columns of nrows values each. */
SV_API int sv_write_csv(sv_run *r, const char *file, int ncols, const char *const *names,
                        size_t nrows, const double *const *cols);
/* Append a row to a CSV series kept open by the run (header on first use). */
SV_API int sv_series_append(sv_run *r, const char *file, int ncols,
                            const char *const *names, const double *values);
/* Render a PNG with gnuplot (if installed; otherwise a note in the log).
   `script` is gnuplot commands run in the output directory after
   "set terminal pngcairo; set output '<png>'". */
SV_API int sv_plot(sv_run *r, const char *png, const char *script);

/* Checkpoints of a params vector: versioned header, block names, checksum,
   written to a temporary file then renamed. */
SV_API int sv_checkpoint_save(const sv_params *p, const char *path);
SV_API int sv_checkpoint_load(sv_params *p, const char *path);
/* The run's own checkpoint path (<outdir>/checkpoint.bin). */
SV_API const char *sv_run_checkpoint_path(const sv_run *r);

/* ------------------------------------------------------------------ */
/* Datasets, minibatches and evaluation                                */
/* ------------------------------------------------------------------ */

/*
 * A dataset in memory: n examples of `size` values each, and optionally one
 * integer label per example. Read from IDX files (the MNIST format: a
 * big-endian header "00 00 type ndims", ndims uint32 sizes, then the
 * values), plain or gzipped. Unsigned-byte values (type 0x08) become v/255
 * in [0, 1]; signed bytes, shorts, ints, floats and doubles (types 0x09,
 * 0x0B, 0x0C, 0x0D, 0x0E) are taken as they are and must be finite.
 * Labels are integer types (0x08, 0x09, 0x0B, 0x0C) in a one-axis file.
 */
typedef struct sv_dataset {
  int n;              /* examples (at least 1) */
  int ndim;           /* axes of one example: 2 for IDX images (rows, cols),
                         1 for vectors, 0 for scalars */
  int dims[3];        /* sizes of those axes (unused ones are 1) */
  size_t size;        /* values per example: the product of dims */
  double *x;          /* n * size values, example after example */
  int *y;             /* n labels in [0, nclasses), or NULL without labels */
  int nclasses;       /* as given to the loader */
} sv_dataset;

/* At most this many values in one IDX file (a corrupt header claiming more
   is refused before anything is allocated). */
#define SV_IDX_MAX_VALUES 2147483647L /* INT_MAX */

/*
 * Read an IDX file of examples (plain or gzip, told apart by the content,
 * not the name) and, if `labels` is not NULL, its IDX labels file, whose
 * count must match and whose values must lie in [0, nclasses). Memory grows
 * only with the data actually read, so a corrupt header cannot cause a huge
 * allocation. NULL on failure, with a message naming the file and the
 * problem: missing or unreadable, truncated header or data (bytes expected
 * and found), not IDX (bad magic), unsupported type, trailing bytes,
 * impossible dimensions, no examples, count mismatch, a label out of range
 * (its index and value), a corrupt gzip stream.
 */
SV_API sv_dataset *sv_dataset_load_idx(const char *images, const char *labels, int nclasses);
/* The split of an MNIST-layout directory: <dir>/<split>-images-idx3-ubyte
   and <dir>/<split>-labels-idx1-ubyte, each plain or with ".gz" (the plain
   file wins when both exist). `split` is a file name prefix such as
   "train" or "t10k" (no '/'). */
SV_API sv_dataset *sv_dataset_load_dir(const char *dir, const char *split, int nclasses);
/* A copy of examples [first, first + count), labels included. */
SV_API sv_dataset *sv_dataset_subset(const sv_dataset *d, int first, int count);
SV_API void sv_dataset_free(sv_dataset *d);
/* Copy examples idx[0..count) into x (count * d->size values) and their
   labels into y (count values, as doubles since graph inputs are doubles).
   Either output may be NULL; asking for labels of an unlabelled dataset
   or an index outside [0, n) is an error naming it. */
SV_API int sv_dataset_gather(const sv_dataset *d, int count, const int *idx, double *x,
                             double *y);

/* Write n images of rows x cols values in [0, 1] as an IDX unsigned-byte
   file (each value stored as round(v * 255)), and n labels in [0, 255] as
   an IDX labels file, atomically (a temporary file, then renamed). A path
   ending in ".gz" is gzipped. For tests, benchmarks and generated data. */
SV_API int sv_idx_write_images(const char *path, int n, int rows, int cols, const double *x);
SV_API int sv_idx_write_labels(const char *path, int n, const int *y);

/*
 * Shuffled minibatches of n examples, split over the ranks of a run.
 *
 * An epoch is a fresh permutation of 0..n-1 cut into batches of `batch`;
 * the last, partial batch is dropped when drop_last is set and kept (with
 * fewer examples) otherwise. The permutation of epoch e depends only on
 * (run seed, salt, e), so the examples of any step can be recomputed from
 * the step number alone: resuming at step s gives the batches an
 * uninterrupted run would have had. Use different salts for independent
 * streams (training and validation). Each rank gets a contiguous share of
 * every batch (sv_run_partition of the batch over the ranks); a rank's
 * share may be empty when a batch has fewer examples than there are ranks.
 * With a NULL run: one rank, seed 0. The run must outlive the batches.
 */
typedef struct sv_batches sv_batches;

SV_API sv_batches *sv_batches_new(sv_run *r, int n, int batch, int drop_last,
                                  unsigned long salt);
SV_API void sv_batches_free(sv_batches *b);
SV_API long sv_batches_per_epoch(const sv_batches *b);
/*
 * The batch of global step `step` (>= 0; epoch = step / per_epoch): *idx
 * points at this rank's *count example indices (valid until the next call
 * or sv_batches_free), *global_count is the size of the whole batch over
 * all ranks (divide a summed loss by it, so that the optimizer's sum over
 * ranks is the batch mean), *epoch the epoch. Any output may be NULL.
 */
SV_API int sv_batches_get(sv_batches *b, long step, const int **idx, int *count,
                          int *global_count, long *epoch);

/*
 * Evaluating a classifier over a labelled dataset. The predict callback
 * gets `count` examples (x: count * d->size values) and writes count *
 * nclasses scores (logits or probabilities); the prediction is the argmax,
 * the first maximum on ties. Each rank predicts its share of the examples
 * (sv_run_partition), in calls of at most `batch` examples; the counts are
 * summed over the ranks, so every rank gets the same result, whatever the
 * number of ranks. A failing callback or a NaN score fails the call on
 * every rank. A NULL run is one rank.
 */
typedef int (*sv_predict_fn)(void *ctx, int count, const double *x, double *scores);

typedef struct sv_eval {
  double accuracy;    /* correct / n */
  int n, correct, nclasses;
  long *confusion;    /* nclasses x nclasses, row-major [true][predicted] */
  int *pred;          /* n predictions, in the dataset's order */
} sv_eval;

SV_API int sv_evaluate_classifier(sv_run *r, const sv_dataset *d, int batch, sv_predict_fn f,
                                  void *ctx, sv_eval *out);
/* Free what sv_evaluate_classifier allocated in *e (not e itself). */
SV_API void sv_eval_free(sv_eval *e);
/*
 * Report an evaluation under a name prefix ("test"): the metric
 * "<prefix>_accuracy" (a fraction in [0, 1]); <prefix>_confusion.csv (a
 * "true" column of class names, then one column per predicted class);
 * <prefix>_per_class.csv (class, name, count, correct, accuracy; accuracy
 * is nan for a class without examples); <prefix>_confusion.png, a heat map
 * of the fraction of each true class with the counts written in (gnuplot,
 * when installed). class_names may be NULL (names are then 0..n-1).
 * Files are written on rank 0 only; call it on every rank.
 */
SV_API int sv_eval_report(sv_run *r, const sv_eval *e, const char *prefix,
                          const char *const *class_names);
/*
 * A PNG grid of `count` grey-scale images (rows x cols values each, 0 black
 * to 1 white, values outside clipped) for a person to look at, each with a
 * caption: the predicted class, and for a mistake (pred != truth) a red
 * frame and "pred A / true B". pred and truth may be NULL (no captions, or
 * only the class given); class_names may be NULL (numbers). At most
 * SV_GRID_MAX images. Rank 0 draws (gnuplot, when installed).
 */
#define SV_GRID_MAX 400
SV_API int sv_plot_image_grid(sv_run *r, const char *png, int count, int rows, int cols,
                              const double *images, const int *pred, const int *truth,
                              const char *const *class_names);

/* ------------------------------------------------------------------ */
/* Plugins                                                             */
/* ------------------------------------------------------------------ */

/* Bump on any incompatible change; the descriptor only grows at its end. */
#define SV_ABI_VERSION 2
#define SV_PLUGIN_ENTRY_NAME "sv_plugin_entry"

typedef struct sv_plugin {
  uint32_t abi_version;   /* SV_ABI_VERSION */
  uint32_t struct_size;   /* sizeof(sv_plugin) */
  uint32_t real_size;     /* sizeof(double) */
  const char *name;       /* "pinn_legendre" */
  const char *summary;    /* one line */
  /* Declare and read options (sv_opt_*), check them, allocate *state. */
  int (*setup)(sv_run *r, void **state);
  /* Do the work: train, evaluate, report metrics and files. */
  int (*run)(sv_run *r, void *state);
  /* Free state (may be NULL). */
  void (*cleanup)(void *state);
} sv_plugin;

#define SV_PLUGIN_INIT(name_, summary_, setup_, run_, cleanup_) \
  { SV_ABI_VERSION, (uint32_t)sizeof(sv_plugin), (uint32_t)sizeof(double), \
    (name_), (summary_), (setup_), (run_), (cleanup_) }

/* A plugin defines: SV_PLUGIN_EXPORT const sv_plugin *sv_plugin_entry(void) */
#define SV_PLUGIN_EXPORT __attribute__((visibility("default")))
typedef const sv_plugin *(*sv_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif /* SOLVER_H */
