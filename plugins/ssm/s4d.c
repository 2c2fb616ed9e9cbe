/*
 * s4d.c -- the S4D classifier of s4d.h: the graph (convolution mode), the
 * initialisation, and the step-by-step recurrent mode on the same
 * parameters.
 *
 * The graph is built for a fixed number of rows B (no batch axis), so that
 * the position-wise maps are plain matrix products over B L rows; a
 * minibatch share smaller than B is padded and weighted 0 in the loss.
 */
#include "s4d.h"

#include <gsl/gsl_randist.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Complex arithmetic on pairs of nodes                                */
/* ------------------------------------------------------------------ */

typedef struct {
  sv_node *re, *im;
} cnode;

static cnode cmul(cnode a, cnode b)
{
  return (cnode){sv_sub(sv_mul(a.re, b.re), sv_mul(a.im, b.im)),
                 sv_add(sv_mul(a.re, b.im), sv_mul(a.im, b.re))};
}

/* a / b = a conj(b) / |b|^2 */
static cnode cdiv(cnode a, cnode b)
{
  sv_node *d = sv_add(sv_square(b.re), sv_square(b.im));
  return (cnode){sv_div(sv_add(sv_mul(a.re, b.re), sv_mul(a.im, b.im)), d),
                 sv_div(sv_sub(sv_mul(a.im, b.re), sv_mul(a.re, b.im)), d)};
}

/* ------------------------------------------------------------------ */
/* The graph                                                           */
/* ------------------------------------------------------------------ */

static sv_node *param(s4d_model *m, const char *layer, const char *name, int ndim, int d0, int d1)
{
  char full[64];
  int dims[2] = {d0, d1};
  snprintf(full, sizeof full, "%s%s%s", layer, *layer ? "." : "", name);
  return sv_param(m->g, m->p, full, ndim, dims);
}

/* The kernel [H, L] of layer `k` from its parameters; bidirectional, also
   the backward direction's kernel in *back (same A, B, dt; its own C'). */
static sv_node *ssm_kernel(s4d_model *m, const char *k, sv_node **back)
{
  const s4d_config *c = &m->c;
  int H = c->H, M = c->N / 2;
  sv_node *log_dt = param(m, k, "ssm.log_dt", 2, H, 1);
  sv_node *log_a_re = param(m, k, "ssm.log_a_re", 2, H, M);
  sv_node *a_im = param(m, k, "ssm.a_im", 2, H, M);
  cnode B = {param(m, k, "ssm.b_re", 2, H, M), param(m, k, "ssm.b_im", 2, H, M)};
  cnode C = {param(m, k, "c_re", 2, H, M), param(m, k, "c_im", 2, H, M)};
  sv_node *dt = sv_exp(log_dt); /* [H, 1], broadcast over the modes */
  cnode A = {sv_neg(sv_exp(log_a_re)), a_im};
  cnode dtA = {sv_mul(dt, A.re), sv_mul(dt, A.im)};
  cnode s, Bbar;
  if (c->disc == SSM_ZOH) {
    /* s = dt A; Bbar = (e^s - 1) / A B */
    s = dtA;
    sv_node *e = sv_exp(s.re);
    cnode em1 = {sv_add_scalar(sv_mul(e, sv_cos(s.im)), -1.0), sv_mul(e, sv_sin(s.im))};
    Bbar = cmul(cdiv(em1, A), B);
  } else {
    /* Abar = (1 + dtA/2) / (1 - dtA/2), s = log Abar; Bbar = dt B / (1 - dtA/2) */
    cnode num = {sv_add_scalar(sv_scale(dtA.re, 0.5), 1.0), sv_scale(dtA.im, 0.5)};
    cnode den = {sv_add_scalar(sv_scale(dtA.re, -0.5), 1.0), sv_scale(dtA.im, -0.5)};
    sv_node *n2 = sv_add(sv_square(num.re), sv_square(num.im));
    sv_node *d2 = sv_add(sv_square(den.re), sv_square(den.im));
    s.re = sv_scale(sv_sub(sv_ln(n2), sv_ln(d2)), 0.5);
    s.im = sv_sub(sv_atan2(num.im, num.re), sv_atan2(den.im, den.re));
    Bbar = cdiv((cnode){sv_mul(dt, B.re), sv_mul(dt, B.im)}, den);
  }
  cnode cb = cmul(C, Bbar);
  if (c->bidirectional) {
    cnode C2 = {param(m, k, "c2_re", 2, H, M), param(m, k, "c2_im", 2, H, M)};
    cnode cb2 = cmul(C2, Bbar);
    *back = sv_vandermonde(sv_scale(cb2.re, 2.0), sv_scale(cb2.im, 2.0), s.re, s.im, c->L);
  }
  return sv_vandermonde(sv_scale(cb.re, 2.0), sv_scale(cb.im, 2.0), s.re, s.im, c->L);
}

/* One residual block on u [B, L, H]. */
static sv_node *s4d_block(s4d_model *m, int layer, sv_node *u)
{
  const s4d_config *c = &m->c;
  int H = c->H, B = m->B, L = c->L;
  char k[16];
  snprintf(k, sizeof k, "%d", layer);
  sv_node *Kback = NULL;
  sv_node *K = ssm_kernel(m, k, &Kback);
  if (layer == 0)
    m->kernel0 = K;
  /* the skip term D u is the kernel's first tap: conv(u, K + D e_0) =
     conv(u, K) + D u, with no pass over u of its own (nor in the backward
     pass: dD is dK[:, 0]) */
  sv_node *D = param(m, k, "D", 2, H, 1);
  double *e0 = calloc((size_t)L, sizeof *e0);
  if (!e0)
    return NULL;
  e0[0] = 1;
  int ld[2] = {1, L};
  sv_node *tap = sv_mul(D, sv_constant(m->g, 2, ld, e0));
  free(e0);
  sv_node *y = sv_causal_conv(u, sv_add(K, tap));
  if (Kback)
    y = sv_add(y, sv_anticausal_conv(u, Kback));
  y = sv_gelu(y);
  /* position-wise H -> 2H, then the GLU */
  int rows[2] = {B * L, H};
  sv_node *W = param(m, k, "W", 2, H, 2 * H), *b = param(m, k, "b", 1, 2 * H, 0);
  sv_node *z = sv_add(sv_matmul(sv_reshape(y, 2, rows), W), b);
  sv_node *glu = sv_glu(z);
  sv_node *res = sv_add(glu, sv_reshape(u, 2, rows));
  sv_node *g = param(m, k, "ln_g", 1, H, 0), *be = param(m, k, "ln_b", 1, H, 0);
  sv_node *out = sv_layer_norm_affine(res, 1, c->ln_eps, g, be);
  int bl[3] = {B, L, H};
  return sv_reshape(out, 3, bl);
}

void s4d_model_free(s4d_model *m)
{
  if (!m)
    return;
  for (int t = 0; t < m->nplans; t++) {
    if (m->train)
      sv_plan_free(m->train[t]);
    if (m->eval)
      sv_plan_free(m->eval[t]);
  }
  free(m->train);
  free(m->eval);
  free(m->xb);
  free(m->yb);
  free(m->wb);
  free(m->gpart);
  free(m->xe);
  sv_graph_free(m->g);
  sv_params_free(m->p);
  memset(m, 0, sizeof *m);
}

int s4d_model_new(s4d_model *m, const s4d_config *c, int B, int nplans)
{
  memset(m, 0, sizeof *m);
  if (c->H < 1 || c->layers < 0 || c->L < 1 || c->nclasses < 2 || B < 1 || nplans < 1)
    return sv_fail("S4D: bad sizes (H %d, layers %d, L %d, classes %d, rows %d, plans %d)", c->H,
                   c->layers, c->L, c->nclasses, B, nplans);
  if (c->N < 2 || c->N % 2)
    return sv_fail("S4D: state size N = %d must be even and >= 2 (N/2 conjugate pairs of modes)",
                   c->N);
  if (c->disc != SSM_ZOH && c->disc != SSM_BILINEAR)
    return sv_fail("S4D: discretisation %s (zoh or bilinear)", ssm_disc_name(c->disc));
  m->c = *c;
  m->B = B;
  m->p = sv_params_new();
  m->g = sv_graph_new();
  if (!m->p || !m->g) {
    s4d_model_free(m);
    return sv_fail("S4D: out of memory");
  }
  int H = c->H, L = c->L;
  int xd[2] = {B, L}, bd[1] = {B};
  m->x = sv_input(m->g, "x", 2, xd);
  m->labels = sv_input(m->g, "labels", 1, bd);
  m->weights = sv_input(m->g, "weights", 1, bd);
  /* encoder: one value per step -> H channels */
  int col[2] = {B * L, 1};
  sv_node *We = param(m, "enc", "W", 2, 1, H), *be = param(m, "enc", "b", 1, H, 0);
  sv_node *u = sv_add(sv_matmul(sv_reshape(m->x, 2, col), We), be);
  int bl[3] = {B, L, H};
  u = sv_reshape(u, 3, bl);
  for (int k = 0; k < c->layers; k++)
    u = s4d_block(m, k, u);
  sv_node *pooled = sv_mean_axis(u, 1); /* [B, H] */
  sv_node *Wh = param(m, "head", "W", 2, H, c->nclasses), *bh = param(m, "head", "b", 1, c->nclasses, 0);
  m->logits = sv_add(sv_matmul(pooled, Wh), bh);
  m->loss = sv_sum(sv_mul(sv_softmax_xent(m->logits, m->labels), m->weights));
  m->grad = m->loss ? sv_grad_params(m->loss, m->p) : NULL;
  if (sv_graph_error(m->g)) {
    sv_fail("S4D: building the graph: %s", sv_graph_error(m->g));
    s4d_model_free(m);
    return -1;
  }
  sv_node *to[3] = {m->loss, m->grad, m->logits}, *eo[2] = {m->logits, m->kernel0};
  int neo = m->kernel0 ? 2 : 1; /* no kernel without layers */
  size_t np = sv_params_count(m->p), rows = (size_t)nplans * B;
  m->nplans = nplans;
  m->train = calloc((size_t)nplans, sizeof *m->train);
  m->eval = calloc((size_t)nplans, sizeof *m->eval);
  m->xb = calloc(rows * L, sizeof *m->xb);
  m->yb = calloc(rows, sizeof *m->yb);
  m->wb = calloc(rows, sizeof *m->wb);
  m->xe = calloc(rows * L, sizeof *m->xe);
  m->gpart = malloc((size_t)nplans * np * sizeof *m->gpart);
  if (!m->train || !m->eval || !m->xb || !m->yb || !m->wb || !m->xe || !m->gpart) {
    s4d_model_free(m);
    return sv_fail("S4D: out of memory for %d plans of %d rows", nplans, B);
  }
  for (int t = 0; t < nplans; t++) {
    m->train[t] = sv_compile(m->g, 3, to, 1);
    m->eval[t] = m->train[t] ? sv_compile(m->g, neo, eo, 1) : NULL;
    if (!m->train[t] || !m->eval[t] ||
        sv_plan_bind(m->train[t], m->x, m->xb + (size_t)t * B * L) < 0 ||
        sv_plan_bind(m->train[t], m->labels, m->yb + (size_t)t * B) < 0 ||
        sv_plan_bind(m->train[t], m->weights, m->wb + (size_t)t * B) < 0 ||
        sv_plan_bind(m->eval[t], m->x, m->xe + (size_t)t * B * L) < 0) {
      sv_fail_context("S4D: compiling the model (B = %d, L = %d, H = %d)", B, L, H);
      s4d_model_free(m);
      return -1;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
  int (*fn)(void *ctx, int t);
  void *ctx;
  int t, rc;
  char msg[512];
} job;

static void *job_main(void *arg)
{
  job *j = arg;
  j->rc = j->fn(j->ctx, j->t);
  if (j->rc < 0)
    snprintf(j->msg, sizeof j->msg, "%s", sv_errmsg());
  return NULL;
}

int s4d_parallel(int n, int (*fn)(void *ctx, int t), void *ctx)
{
  if (n <= 1)
    return n == 1 ? fn(ctx, 0) : 0;
  job jobs[64];
  pthread_t th[64];
  int started[64] = {0};
  if (n > 64)
    return sv_fail("S4D: at most 64 threads");
  for (int t = 0; t < n; t++)
    jobs[t] = (job){.fn = fn, .ctx = ctx, .t = t, .rc = 0, .msg = ""};
  for (int t = 1; t < n; t++)
    started[t] = pthread_create(&th[t], NULL, job_main, &jobs[t]) == 0;
  /* a thread that could not start runs here, after the first job */
  job_main(&jobs[0]);
  for (int t = 1; t < n; t++) {
    if (started[t])
      pthread_join(th[t], NULL);
    else
      job_main(&jobs[t]);
  }
  for (int t = 0; t < n; t++)
    if (jobs[t].rc < 0)
      return sv_fail("%s", jobs[t].msg);
  return 0;
}

static int run_train(void *ctx, int t)
{
  s4d_model *m = ctx;
  return sv_plan_run(m->train[t]);
}

int s4d_train_run(s4d_model *m, int n, double *loss, double *grad, double *logits)
{
  if (n < 1 || n > m->nplans)
    return sv_fail("S4D: %d training plans of %d", n, m->nplans);
  if (s4d_parallel(n, run_train, m) < 0)
    return -1;
  size_t np = sv_params_count(m->p);
  int C = m->c.nclasses;
  double l = 0;
  for (int t = 0; t < n; t++) {
    l += sv_plan_value(m->train[t], m->loss)[0];
    const double *g = sv_plan_value(m->train[t], m->grad);
    if (grad) {
      if (t == 0)
        memcpy(grad, g, np * sizeof *grad);
      else
        for (size_t i = 0; i < np; i++)
          grad[i] += g[i];
    }
    if (logits)
      memcpy(logits + (size_t)t * m->B * C, sv_plan_value(m->train[t], m->logits),
             (size_t)m->B * C * sizeof *logits);
  }
  *loss = l;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Initialisation and rates                                            */
/* ------------------------------------------------------------------ */

static double *block(s4d_model *m, const char *name, size_t *n)
{
  int i = sv_params_find(m->p, name);
  if (i < 0)
    return NULL;
  *n = sv_params_block_size(m->p, i);
  return sv_params_data(m->p) + sv_params_block_offset(m->p, i);
}

static void uniform(gsl_rng *r, double *x, size_t n, double a)
{
  for (size_t i = 0; i < n; i++)
    x[i] = a * (2 * gsl_rng_uniform(r) - 1);
}

int s4d_model_init(s4d_model *m, gsl_rng *rng)
{
  const s4d_config *c = &m->c;
  int H = c->H, M = c->N / 2;
  double complex *A0 = malloc((size_t)M * sizeof *A0), *B0 = malloc((size_t)M * sizeof *B0);
  if (!A0 || !B0) {
    free(A0);
    free(B0);
    return sv_fail("S4D: out of memory");
  }
  if (ssm_s4d_init(c->init, c->N, A0, B0) < 0) {
    free(A0);
    free(B0);
    return -1;
  }
  size_t n;
  double *x;
#define BLOCK(name) (x = block(m, (name), &n))
  /* PyTorch's nn.Linear / Conv1d defaults: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
  if (BLOCK("enc.W"))
    uniform(rng, x, n, 1.0);
  if (BLOCK("enc.b"))
    uniform(rng, x, n, 1.0);
  for (int k = 0; k < c->layers; k++) {
    char nm[64];
#define LBLOCK(s) (snprintf(nm, sizeof nm, "%d.%s", k, (s)), BLOCK(nm))
    if (LBLOCK("ssm.log_dt"))
      for (size_t i = 0; i < n; i++)
        x[i] = log(c->dt_min) + gsl_rng_uniform(rng) * (log(c->dt_max) - log(c->dt_min));
    if (LBLOCK("ssm.log_a_re"))
      for (int h = 0; h < H; h++)
        for (int q = 0; q < M; q++)
          x[h * M + q] = log(-creal(A0[q]));
    if (LBLOCK("ssm.a_im"))
      for (int h = 0; h < H; h++)
        for (int q = 0; q < M; q++)
          x[h * M + q] = cimag(A0[q]);
    if (LBLOCK("ssm.b_re"))
      for (int h = 0; h < H; h++)
        for (int q = 0; q < M; q++)
          x[h * M + q] = creal(B0[q]);
    if (LBLOCK("ssm.b_im"))
      for (int h = 0; h < H; h++)
        for (int q = 0; q < M; q++)
          x[h * M + q] = cimag(B0[q]);
    /* C: complex standard normal (real and imaginary parts of variance 1/2) */
    if (LBLOCK("c_re"))
      for (size_t i = 0; i < n; i++)
        x[i] = gsl_ran_gaussian(rng, sqrt(0.5));
    if (LBLOCK("c_im"))
      for (size_t i = 0; i < n; i++)
        x[i] = gsl_ran_gaussian(rng, sqrt(0.5));
    if (LBLOCK("c2_re"))
      for (size_t i = 0; i < n; i++)
        x[i] = gsl_ran_gaussian(rng, sqrt(0.5));
    if (LBLOCK("c2_im"))
      for (size_t i = 0; i < n; i++)
        x[i] = gsl_ran_gaussian(rng, sqrt(0.5));
    if (LBLOCK("D"))
      for (size_t i = 0; i < n; i++)
        x[i] = gsl_ran_gaussian(rng, 1.0);
    if (LBLOCK("W"))
      uniform(rng, x, n, 1 / sqrt((double)H));
    if (LBLOCK("b"))
      uniform(rng, x, n, 1 / sqrt((double)H));
    if (LBLOCK("ln_g"))
      for (size_t i = 0; i < n; i++)
        x[i] = 1;
    if (LBLOCK("ln_b"))
      memset(x, 0, n * sizeof *x);
#undef LBLOCK
  }
  if (BLOCK("head.W"))
    uniform(rng, x, n, 1 / sqrt((double)H));
  if (BLOCK("head.b"))
    uniform(rng, x, n, 1 / sqrt((double)H));
#undef BLOCK
  free(A0);
  free(B0);
  return 0;
}

int s4d_model_set_scales(s4d_model *m, double lr, double lr_ssm)
{
  for (int k = 0; k < m->c.layers; k++) {
    char nm[32];
    snprintf(nm, sizeof nm, "%d.ssm.", k);
    if (sv_params_set_scales(m->p, nm, lr_ssm / lr, 0.0) < 0)
      return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Convolution mode                                                    */
/* ------------------------------------------------------------------ */

typedef struct {
  s4d_model *m;
  int count;
  const double *x;
  double *logits;
} conv_job;

static int run_eval(void *ctx, int t)
{
  conv_job *j = ctx;
  s4d_model *m = j->m;
  int L = m->c.L, C = m->c.nclasses, first = t * m->B;
  int n = j->count - first < m->B ? j->count - first : m->B;
  if (n <= 0)
    return 0;
  double *xb = m->xe + (size_t)first * L;
  /* the plan reads B rows: pad with zeros (their logits are dropped) */
  memcpy(xb, j->x + (size_t)first * L, (size_t)n * L * sizeof *xb);
  memset(xb + (size_t)n * L, 0, (size_t)(m->B - n) * L * sizeof *xb);
  if (sv_plan_run(m->eval[t]) < 0)
    return -1;
  memcpy(j->logits + (size_t)first * C, sv_plan_value(m->eval[t], m->logits),
         (size_t)n * C * sizeof *j->logits);
  return 0;
}

int s4d_logits_conv(s4d_model *m, int count, const double *x, double *logits)
{
  if (count < 1 || count > m->nplans * m->B)
    return sv_fail("S4D: %d rows for %d plans of %d", count, m->nplans, m->B);
  conv_job j = {m, count, x, logits};
  int n = (count + m->B - 1) / m->B;
  return s4d_parallel(n, run_eval, &j);
}

const double *s4d_kernel0(s4d_model *m)
{
  return m->kernel0 ? sv_plan_value(m->eval[0], m->kernel0) : NULL;
}


/* ------------------------------------------------------------------ */
/* Recurrent mode                                                      */
/* ------------------------------------------------------------------ */

static double gelu(double x) { return x * 0.5 * erfc(-x * 0.70710678118654752440); }

static double sigmoid(double x)
{
  if (x >= 0)
    return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}

static const double *cblock(const s4d_model *m, const char *name)
{
  int i = sv_params_find(m->p, name);
  return i < 0 ? NULL : sv_params_data(m->p) + sv_params_block_offset(m->p, i);
}

static size_t recurrent_work(const s4d_config *c)
{
  size_t HM = (size_t)c->H * (c->N / 2);
  /* Abar, Bbar, 2C, 2C' and the state (complex), then u, y, z, acc; the
     bidirectional mode keeps a layer's whole input and output sequences */
  size_t seq = c->bidirectional ? (size_t)3 * c->L * c->H : 0;
  return (size_t)c->layers * HM * 2 * 5 + (size_t)8 * c->H + seq;
}

/* The position-wise part of a block at one step: y (the convolution's
   output, before GELU) and the block's input u -> the block's output in u:
   GELU, z = y W + b, GLU, residual, layer norm. */
static void block_positionwise(int H, const double *W, const double *bW, const double *lg,
                               const double *lb, double eps, double *y, double *z, double *u)
{
  for (int h = 0; h < H; h++)
    y[h] = gelu(y[h]);
  for (int j = 0; j < 2 * H; j++) {
    double s2 = bW[j];
    for (int h = 0; h < H; h++)
      s2 += y[h] * W[(size_t)h * 2 * H + j];
    z[j] = s2;
  }
  double mu = 0, var = 0;
  for (int h = 0; h < H; h++) {
    u[h] = z[h] * sigmoid(z[H + h]) + u[h];
    mu += u[h];
  }
  mu /= H;
  for (int h = 0; h < H; h++)
    var += (u[h] - mu) * (u[h] - mu);
  double rs = 1.0 / sqrt(var / H + eps);
  for (int h = 0; h < H; h++)
    u[h] = (u[h] - mu) * rs * lg[h] + lb[h];
}

/* One step of one channel's M modes, s_q <- Abar_q s_q + Bbar_q u, and
   their output sum_q Re(2C_q s_q) (cc holds 2C). */
static double channel_step(const double complex *ab, const double complex *bb,
                           const double complex *cc, double complex *s, double u, int M)
{
  double v = 0;
  for (int q = 0; q < M; q++) {
    s[q] = ab[q] * s[q] + bb[q] * u;
    v += creal(cc[q] * s[q]);
  }
  return v;
}

/* The head on the sum over time of the last layer's output: logits =
   (acc / L) Wh + bh. */
static void head_logits(int H, int NC, int L, const double *Wh, const double *bh,
                        const double *acc, double *logits)
{
  for (int j = 0; j < NC; j++) {
    double s2 = bh[j];
    for (int h = 0; h < H; h++)
      s2 += acc[h] / L * Wh[(size_t)h * NC + j];
    logits[j] = s2;
  }
}

static int recurrent_rows(const s4d_model *m, int count, const double *x, double *logits,
                          double *work)
{
  const s4d_config *c = &m->c;
  int H = c->H, M = c->N / 2, L = c->L, nl = c->layers, NC = c->nclasses;
  size_t HM = (size_t)H * M;
  double complex *Ab = (double complex *)work, *Bb = Ab + nl * HM, *Cc = Bb + nl * HM,
                 *Cb = Cc + nl * HM, *st = Cb + nl * HM;
  double *u = (double *)(st + nl * HM), *y = u + H, *z = y + H, *acc = z + 2 * H;
  double *useq = acc + H, *yseq = useq + (size_t)L * H, *bseq = yseq + (size_t)L * H;
  const double *We = cblock(m, "enc.W"), *be = cblock(m, "enc.b");
  const double *Wh = cblock(m, "head.W"), *bh = cblock(m, "head.b");
  const double *D[64] = {0}, *W[64] = {0}, *bW[64] = {0}, *lg[64] = {0}, *lb[64] = {0};
  if (nl > 64)
    return sv_fail("S4D recurrent: at most 64 layers");
  if (!We || !be || !Wh || !bh)
    return sv_fail("S4D recurrent: the parameters are missing");
  /* Abar, Bbar and 2 C per layer, as the graph computes them */
  for (int k = 0; k < nl; k++) {
    char nm[64];
#define P(s) (snprintf(nm, sizeof nm, "%d.%s", k, (s)), cblock(m, nm))
    const double *ldt = P("ssm.log_dt"), *lar = P("ssm.log_a_re"), *aim = P("ssm.a_im");
    const double *br = P("ssm.b_re"), *bi = P("ssm.b_im"), *cr = P("c_re"), *ci = P("c_im");
    const double *c2r = c->bidirectional ? P("c2_re") : NULL;
    const double *c2i = c->bidirectional ? P("c2_im") : NULL;
    D[k] = P("D");
    W[k] = P("W");
    bW[k] = P("b");
    lg[k] = P("ln_g");
    lb[k] = P("ln_b");
#undef P
    if (!ldt || !lar || !aim || !br || !bi || !cr || !ci || !D[k] || !W[k] || !bW[k] || !lg[k] ||
        !lb[k] || (c->bidirectional && (!c2r || !c2i)))
      return sv_fail("S4D recurrent: the parameters of layer %d are missing", k);
    for (int h = 0; h < H; h++) {
      double dt = exp(ldt[h]);
      for (int q = 0; q < M; q++) {
        size_t i = (size_t)h * M + q;
        double complex A = -exp(lar[i]) + I * aim[i], dtA = dt * A, B = br[i] + I * bi[i];
        double complex ab, bb;
        if (c->disc == SSM_ZOH) {
          ab = exp(creal(dtA)) * (cos(cimag(dtA)) + I * sin(cimag(dtA)));
          bb = (ab - 1) / A * B;
        } else {
          ab = (1 + dtA / 2) / (1 - dtA / 2);
          bb = dt * B / (1 - dtA / 2);
        }
        Ab[k * HM + i] = ab;
        Bb[k * HM + i] = bb;
        Cc[k * HM + i] = 2 * (cr[i] + I * ci[i]);
        Cb[k * HM + i] = c->bidirectional ? 2 * (c2r[i] + I * c2i[i]) : 0;
      }
    }
  }
  if (c->bidirectional) {
    /* Layer by layer over the whole sequence: the forward recurrence from
       the first step, x_l = Abar x_{l-1} + Bbar u_l, y_l = 2 Re C x_l, and
       the backward one from the last, x'_l = Abar x'_{l+1} + Bbar u_l,
       y'_l = 2 Re C' x'_l (the anti-causal kernel's sum, its lag 0
       included); still O(N) per step and channel. */
    for (int r = 0; r < count; r++) {
      const double *xr = x + (size_t)r * L;
      for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
          useq[(size_t)l * H + h] = xr[l] * We[h] + be[h];
      for (int k = 0; k < nl; k++) {
        const double complex *ab = Ab + k * HM, *bb = Bb + k * HM;
        for (int dir = 0; dir < 2; dir++) {
          const double complex *cc = (dir ? Cb : Cc) + k * HM;
          double *out = dir ? bseq : yseq;
          memset(st, 0, HM * sizeof *st);
          for (int i = 0; i < L; i++) {
            int l = dir ? L - 1 - i : i;
            const double *ul = useq + (size_t)l * H;
            for (int h = 0; h < H; h++) {
              size_t o = (size_t)h * M;
              out[(size_t)l * H + h] = channel_step(ab + o, bb + o, cc + o, st + o, ul[h], M);
            }
          }
        }
        for (int l = 0; l < L; l++) {
          double *ul = useq + (size_t)l * H;
          for (int h = 0; h < H; h++)
            y[h] = yseq[(size_t)l * H + h] + bseq[(size_t)l * H + h] + D[k][h] * ul[h];
          block_positionwise(H, W[k], bW[k], lg[k], lb[k], c->ln_eps, y, z, ul);
        }
      }
      memset(acc, 0, (size_t)H * sizeof *acc);
      for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++)
          acc[h] += useq[(size_t)l * H + h];
      head_logits(H, NC, L, Wh, bh, acc, logits + (size_t)r * NC);
    }
    return 0;
  }
  for (int r = 0; r < count; r++) {
    const double *xr = x + (size_t)r * L;
    memset(st, 0, nl * HM * sizeof *st);
    memset(acc, 0, (size_t)H * sizeof *acc);
    for (int l = 0; l < L; l++) {
      for (int h = 0; h < H; h++)
        u[h] = xr[l] * We[h] + be[h];
      for (int k = 0; k < nl; k++) {
        const double complex *ab = Ab + k * HM, *bb = Bb + k * HM, *cc = Cc + k * HM;
        double complex *s = st + k * HM;
        for (int h = 0; h < H; h++) {
          size_t o = (size_t)h * M;
          y[h] = channel_step(ab + o, bb + o, cc + o, s + o, u[h], M) + D[k][h] * u[h];
        }
        block_positionwise(H, W[k], bW[k], lg[k], lb[k], c->ln_eps, y, z, u);
      }
      for (int h = 0; h < H; h++)
        acc[h] += u[h];
    }
    head_logits(H, NC, L, Wh, bh, acc, logits + (size_t)r * NC);
  }
  return 0;
}

typedef struct {
  const s4d_model *m;
  int count, per;
  const double *x;
  double *logits;
} rec_job;

static int run_recurrent(void *ctx, int t)
{
  rec_job *j = ctx;
  int first = t * j->per, n = j->count - first < j->per ? j->count - first : j->per;
  if (n <= 0)
    return 0;
  double *work = malloc(recurrent_work(&j->m->c) * sizeof *work);
  if (!work)
    return sv_fail("S4D recurrent: out of memory");
  int rc = recurrent_rows(j->m, n, j->x + (size_t)first * j->m->c.L,
                          j->logits + (size_t)first * j->m->c.nclasses, work);
  free(work);
  return rc;
}

int s4d_logits_recurrent(const s4d_model *m, int count, const double *x, double *logits)
{
  if (count < 1)
    return sv_fail("S4D recurrent: %d rows", count);
  int T = m->nplans < count ? m->nplans : count;
  rec_job j = {m, count, (count + T - 1) / T, x, logits};
  return s4d_parallel(T, run_recurrent, &j);
}
