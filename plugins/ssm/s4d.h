/*
 * s4d.h -- an S4D sequence classifier as a graph (convolution mode) and as
 * a recurrence (recurrent mode), over one parameter vector.
 *
 *   x [B, L] (one value per step)
 *   -> encoder: u = x W_enc + b_enc                          [B, L, H]
 *   -> `layers` times (0 layers: an ablation, the encoder, the mean over
 *      time and the head, a linear classifier of the mean pixel value):
 *        K = 2 Re sum_n C_n Bbar_n Abar_n^l per channel     [H, L]
 *            (sv_vandermonde of the trainable A, B, C, log dt)
 *        y = causal_conv(u, K) + D u;  y = GELU(y)
 *            (bidirectional: y = causal_conv(u, K) + anticausal_conv(u, K')
 *            + D u, K' from a second C' on the same A, B, dt, as the
 *            reference's bidirectional S4D: every step sees the whole
 *            sequence, the later pixels too)
 *        z = y W + b (H -> 2H);  y = z[:, :H] * sigmoid(z[:, H:])   (GLU)
 *        u = layer_norm(y + u)        (post-norm, as the reference block)
 *   -> mean over time -> linear head -> logits [B, nclasses]
 *
 * The diagonal state has N/2 complex modes per channel (conjugate pairs,
 * hence 2 Re); A_n = -exp(log_a_re) + i a_im keeps Re A < 0. ZOH: Abar =
 * e^{dt A}, Bbar = (e^{dt A} - 1) / A B; bilinear: Abar = (1 + dt A/2) / (1 -
 * dt A/2), Bbar = dt B / (1 - dt A/2).
 *
 * Parameter blocks (per layer k): "k.ssm.log_dt" [H], "k.ssm.log_a_re",
 * "k.ssm.a_im", "k.ssm.b_re", "k.ssm.b_im" [H, N/2] (the state-space
 * parameters A, B, dt), "k.c_re", "k.c_im" [H, N/2], "k.D" [H], "k.W"
 * [H, 2H], "k.b" [2H], "k.ln_g", "k.ln_b" [H]; "enc.W" [1, H], "enc.b" [H],
 * "head.W" [H, C], "head.b" [C].
 */
#ifndef S4D_H
#define S4D_H

#include "ssm.h"

typedef struct s4d_config {
  int H, N, layers, L, nclasses;
  ssm_init init;
  ssm_disc disc;          /* SSM_ZOH or SSM_BILINEAR */
  double dt_min, dt_max;  /* log dt ~ U[log dt_min, log dt_max] */
  double ln_eps;          /* layer norm epsilon (PyTorch's 1e-5) */
  int bidirectional;      /* 1: a second, anti-causal kernel per layer */
} s4d_config;

typedef struct s4d_model {
  s4d_config c;
  int B;                  /* rows of each compiled plan */
  int nplans;             /* plans of each kind, run by as many threads */
  sv_params *p;
  sv_graph *g;
  sv_node *x, *labels, *weights; /* inputs [B, L], [B], [B] */
  sv_node *logits, *loss, *grad;
  sv_node *kernel0;       /* the first layer's kernel [H, L], for tests */
  sv_plan **train;        /* loss, grad, logits */
  sv_plan **eval;         /* logits, kernel0 */
  /* the training plans' inputs: plan t reads rows [t B, (t + 1) B) */
  double *xb, *yb, *wb;
  double *gpart;          /* nplans x params: each plan's gradient, summed in order */
  double *xe;             /* nplans * B rows for the evaluation plans */
} s4d_model;

/* Declare the parameters, build the graph for B rows, compile nplans
   training and evaluation plans (FFTW's planner runs here, in this thread).
   Fails (naming the value) on bad sizes. */
int s4d_model_new(s4d_model *m, const s4d_config *c, int B, int nplans);
/* Run the training plans 0..n-1 (n <= nplans) on m->xb, yb, wb, each in its
   own thread: *loss and grad are their sums in plan order (deterministic);
   logits (n B rows) may be NULL. */
int s4d_train_run(s4d_model *m, int n, double *loss, double *grad, double *logits);
void s4d_model_free(s4d_model *m);
/* PyTorch's default initialisations for the linear maps, the S4D ones for
   the state (specs/hippo.md), from rng. */
int s4d_model_init(s4d_model *m, gsl_rng *rng);
/* Per-block rates: the state-space parameters (A, B, dt) at lr_ssm / lr
   and without weight decay. */
int s4d_model_set_scales(s4d_model *m, double lr, double lr_ssm);

/* Logits of count <= nplans B rows of x (L values each) by the convolution
   plans, B rows per thread. */
int s4d_logits_conv(s4d_model *m, int count, const double *x, double *logits);
/*
 * The same model run step by step: per layer and channel the N/2 complex
 * states x_n <- Abar_n x_n + Bbar_n u_l, y_l = 2 Re sum_n C_n x_n + D u_l,
 * then the position-wise maps; O(N) per step and channel, all layers
 * advanced together, the running mean over time, then the head. Reads the
 * parameters from m->p; any count, split over nplans threads.
 */
int s4d_logits_recurrent(const s4d_model *m, int count, const double *x, double *logits);

/* Run fn(ctx, t) for t < n, t = 0 in this thread and the others in their
   own; the first failure's message is kept. */
int s4d_parallel(int n, int (*fn)(void *ctx, int t), void *ctx);
/* The first layer's kernel [H, L] by the graph (for tests and plots). */
const double *s4d_kernel0(s4d_model *m);

#endif
