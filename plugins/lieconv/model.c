/*
 * model.c -- the Lie-group network and the CNN baseline (model.h).
 */
#include "model.h"

#include "data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN_EPS 1e-5

static sv_node *ln_gelu(sv_node *x) { return sv_gelu(sv_layer_norm(x, 3, LN_EPS)); }

static sv_node *param(lie_model *m, const char *name, int ndim, const int *dims)
{
  return sv_param(m->g, m->p, name, ndim, dims);
}

/* A plain 5x5 convolution of the CNN. */
static sv_node *cnn_conv(lie_model *m, const char *name, sv_node *x, int cin, int cout, int pad)
{
  int wd[4] = {cout, cin, 5, 5};
  return sv_conv2d(x, param(m, name, 4, wd), 1, pad);
}

static lie_layer *add_layer(lie_model *m, const char *name, int lift, int cin, int cout, int set_in,
                            int set_out)
{
  lie_layer *L = &m->layers[m->nlayers++];
  memset(L, 0, sizeof *L);
  snprintf(L->name, sizeof L->name, "%s", name);
  L->group = m->a.group;
  L->lift = lift;
  L->cin = cin;
  L->cout = cout;
  L->nin = lift ? 1 : m->a.samples;
  L->nout = m->a.samples;
  L->set_in = set_in;
  L->set_out = set_out;
  L->k = 5;
  L->sub = m->a.kernel_sub;
  L->mask = m->a.mask;
  L->angle = m->a.angle;
  L->net.width = m->a.kernel_width;
  L->net.layers = m->a.kernel_layers;
  L->net.w0 = m->a.omega;
  if (lie_layer_build(L, m->g, m->p) < 0)
    return NULL;
  return L;
}

static sv_node *gconv(lie_model *m, const char *name, sv_node *x, int lift, int cin, int set_in,
                      int set_out, int pad)
{
  lie_layer *L = add_layer(m, name, lift, cin, m->a.channels, set_in, set_out);
  return L ? sv_conv2d(x, L->w, 1, pad) : NULL;
}

/* The zero padding of the lift and of the last convolution: 2 with `same`
   (the maps keep their size), else none; `lift_only` leaves the last one
   unpadded (its maps 16x16 instead of 20x20: 0.64 of its cost). */
static int lift_pad(const lie_arch *a)
{
  return a->same ? 2 : 0;
}

static int final_pad(const lie_arch *a)
{
  return a->same && !a->lift_only ? 2 : 0;
}

/* The spatial size after the layers of the skeleton (model.h). */
int lie_arch_final_size(const lie_arch *a)
{
  int s = (LIE_CANVAS - 4 + 2 * lift_pad(a)) / 2; /* lift, pool: 18 (same: 20) */
  if (a->mid)
    s = (s + 2 * a->pad - 4) / 2;     /* mid, pool: 9 or 7 (10 or 8) */
  return s - 4 + 2 * final_pad(a);    /* final: 14, 5 or 3 (20, 10 or 8; lift_only 16, 6, 4) */
}

/* The number of pooled features the head reads (model.h). */
int lie_arch_pooled_width(const lie_arch *a)
{
  if (a->kind == LIE_MODEL_CNN)
    return a->cnn_channels;
  return a->pool == LIE_POOL_SORTED || a->pool == LIE_POOL_ALIGN ? a->channels * a->samples
                                                                 : a->channels;
}

/* Features before invariant pooling: [B, C, rest]. The Lie-group and the
   CNN skeletons are the same, layer for layer. */
static sv_node *build_features(lie_model *m)
{
  const lie_arch *a = &m->a;
  int lie = a->kind == LIE_MODEL_LIE, C = lie ? a->channels : a->cnn_channels;
  sv_node *h;
#define CONV(name, x, lift, set_out, pad)                                          \
  (lie ? gconv(m, name, x, lift, lift ? 1 : C, 0, set_out, pad)                    \
       : cnn_conv(m, "cnn." name ".W", x, lift ? 1 : C, C, pad))
  h = CONV("lift", m->x, 1, 0, lift_pad(a));
  h = ln_gelu(sv_maxpool2d(h, 2));
  for (int b = 0; b < a->blocks; b++) {
    char n1[32], n2[32];
    snprintf(n1, sizeof n1, "%sblock%d.conv1%s", lie ? "" : "cnn.", b, lie ? "" : ".W");
    snprintf(n2, sizeof n2, "%sblock%d.conv2%s", lie ? "" : "cnn.", b, lie ? "" : ".W");
    sv_node *r = lie ? gconv(m, n1, h, 0, C, 0, 0, 2) : cnn_conv(m, n1, h, C, C, 2);
    r = ln_gelu(r);
    r = lie ? gconv(m, n2, r, 0, C, 0, 0, 2) : cnn_conv(m, n2, r, C, C, 2);
    h = sv_gelu(sv_add(h, ln_gelu(r)));
  }
  if (a->mid) {
    h = ln_gelu(CONV("mid", h, 0, 0, a->pad));
    h = sv_maxpool2d(h, 2);
  }
  h = CONV("final", h, 0, 1, final_pad(a));
#undef CONV
  if (a->final_norm)
    h = ln_gelu(h);
  int fs = lie_arch_final_size(a);
  int d3[3] = {SV_BATCH, C, (lie ? a->samples : 1) * fs * fs};
  return sv_reshape(h, 3, d3);
}

/*
 * Aligned pooling: M[c, i], the max over space of channel c at sample i,
 * cyclically shifted along the sample axis to a canonical orientation.
 * A rotation by 2 pi / N (for rotation-closed samples) shifts M by one
 * sample, i -> i + 1. Sorting each channel (sorted pooling) forgets how the
 * channels' orientations relate; here the whole C x N matrix is shifted
 * instead, by a learned soft choice of shift: with F_k = M shifted by k,
 * scores s_k = <A, F_k> (A a learned C x N block), w = softmax(s), the
 * features are sum_k w_k F_k. Shifting the input shifts the scores with
 * it, so the sum is exactly invariant to cyclic shifts of the samples.
 * Our construction (a soft canonicalisation), not the paper's.
 */
static sv_node *aligned_pool(lie_model *m, sv_node *f)
{
  const lie_arch *a = &m->a;
  int C = a->channels, N = a->samples, fs = lie_arch_final_size(a);
  int per[3] = {SV_BATCH, C * N, fs * fs}, cn[3] = {SV_BATCH, C, N};
  sv_node *M = sv_reshape(sv_max_axis(sv_reshape(f, 3, per), 2), 3, cn);
  /* F[b, c, j, i] = M[b, c, (i + k_j) mod N] for the S shifts k_j: all N
     (exactly invariant), or -K..K (`align_shift` K: a rotation far from
     upright is then not undone, so a 6 stays apart from a 9) */
  int K = a->align_shift, S = K ? 2 * K + 1 : N;
  sv_node **shifted = malloc((size_t)S * sizeof *shifted);
  if (!shifted)
    return NULL;
  int one[4] = {SV_BATCH, C, 1, N};
  for (int j = 0; j < S; j++) {
    int k = ((K ? j - K : j) % N + N) % N;
    sv_node *r = M;
    if (k) {
      sv_node *parts[2] = {sv_slice(M, 2, k, N - k), sv_slice(M, 2, 0, k)};
      r = sv_concat(2, parts, 2);
    }
    shifted[j] = sv_reshape(r, 4, one);
  }
  sv_node *F = sv_concat(S, shifted, 2); /* [B, C, S (shift), N (sample)] */
  free(shifted);
  int ad[3] = {C, 1, N}, wd[4] = {SV_BATCH, 1, S, 1}, flat[2] = {SV_BATCH, C * N};
  sv_node *A = param(m, "pool.align.A", 3, ad);
  sv_node *s = sv_sum_axis(sv_sum_axis(sv_mul(F, A), 3), 1); /* [B, S] */
  sv_node *w = sv_reshape(sv_exp(sv_log_softmax(s, 1)), 4, wd);
  return sv_reshape(sv_sum_axis(sv_mul(F, w), 2), 2, flat);
}

static int build(lie_model *m)
{
  const lie_arch *a = &m->a;
  int xd[4] = {SV_BATCH, 1, LIE_CANVAS, LIE_CANVAS}, yd[1] = {SV_BATCH};
  m->x = sv_input(m->g, "images", 4, xd);
  m->y = sv_input(m->g, "labels", 1, yd);
  sv_node *f = build_features(m);
  if (!f)
    return -1;
  int width = lie_arch_pooled_width(a);
  sv_node *pooled;
  if (a->pool == LIE_POOL_ALIGN) {
    pooled = aligned_pool(m, f);
  } else if (a->pool == LIE_POOL_SORTED) {
    int C = a->channels, N = a->samples, fs = lie_arch_final_size(a);
    int per[3] = {SV_BATCH, C * N, fs * fs}, cn[3] = {SV_BATCH, C, N}, flat[2] = {SV_BATCH, C * N};
    pooled = sv_max_axis(sv_reshape(f, 3, per), 2);
    pooled = sv_reshape(sv_sort_last(sv_reshape(pooled, 3, cn)), 2, flat);
  } else {
    pooled = a->pool == LIE_POOL_MAX ? sv_max_axis(f, 2) : sv_mean_axis(f, 2);
  }
  if (!pooled)
    return sv_fail("building the invariant pooling: out of memory");
  int w1[2] = {width, a->head}, hs[1] = {a->head}, w2[2] = {a->head, LIE_NCLASSES},
      b2[1] = {LIE_NCLASSES};
  m->pooled = pooled;
  /* blocks declared one statement at a time: the order of the params
     vector (and of checkpoints) must not depend on the compiler's order
     of evaluating arguments */
  sv_node *W1 = param(m, "head.1.W", 2, w1);
  sv_node *B1 = param(m, "head.1.b", 1, hs);
  sv_node *scale = param(m, "head.ln.scale", 1, hs);
  sv_node *shift = param(m, "head.ln.shift", 1, hs);
  sv_node *W2 = param(m, "head.2.W", 2, w2);
  sv_node *B2 = param(m, "head.2.b", 1, b2);
  sv_node *h = sv_add(sv_matmul(pooled, W1), B1);
  h = sv_gelu(sv_layer_norm_affine(h, 1, LN_EPS, scale, shift));
  m->logits = sv_add(sv_matmul(h, W2), B2);
  sv_node *xent = sv_softmax_xent(m->logits, m->y);
  m->loss = sv_scale(sv_sum(xent), 1.0 / m->global_batch);
  m->grad = sv_grad_params(m->loss, m->p);
  if (!m->grad)
    return sv_fail("building the %s network: %s", a->kind == LIE_MODEL_LIE ? "Lie-group" : "CNN",
                   sv_graph_error(m->g) ? sv_graph_error(m->g) : "graph error");
  return 0;
}

static int bind_all(lie_model *m, sv_plan *plan)
{
  for (int i = 0; i < m->nlayers; i++)
    if (lie_layer_bind(&m->layers[i], plan) < 0)
      return -1;
  return 0;
}

lie_model *lie_model_new(const lie_arch *a, int train_batch, int global_batch, int eval_batch)
{
  lie_model *m = calloc(1, sizeof *m);
  if (!m) {
    sv_fail("model: out of memory");
    return NULL;
  }
  m->a = *a;
  m->train_batch = train_batch;
  m->global_batch = global_batch;
  m->eval_batch = eval_batch;
  m->g = sv_graph_new();
  m->p = sv_params_new();
  int maxlayers = 3 + 2 * (a->blocks > 0 ? a->blocks : 0);
  m->layers = calloc((size_t)maxlayers, sizeof *m->layers);
  size_t img = (size_t)LIE_CANVAS * LIE_CANVAS;
  m->xbuf = calloc((size_t)(train_batch > 0 ? train_batch : 1) * img, sizeof(double));
  m->ybuf = calloc((size_t)(train_batch > 0 ? train_batch : 1), sizeof(double));
  m->ebuf = calloc((size_t)eval_batch * img, sizeof(double));
  if (!m->g || !m->p || !m->layers || !m->xbuf || !m->ybuf || !m->ebuf) {
    sv_fail("model: out of memory");
    goto fail;
  }
  if (a->kind == LIE_MODEL_LIE) {
    m->samples = lie_samples_new(a->group, LIE_NSETS, a->samples, a->spd_var);
    if (!m->samples)
      goto fail;
    m->samples->rot_range = a->rot_range > 0 ? a->rot_range : LIE_PI;
    m->samples->orbit = a->spd_orbit > 1 ? a->spd_orbit : 1;
    for (int i = 0; i < LIE_NSETS * a->samples; i++)
      m->samples->theta[i] = lie_grid_angle(m->samples, i % a->samples);
  }
  if (build(m) < 0)
    goto fail;
  if (m->samples && lie_model_refresh(m) < 0)
    goto fail;
  if (train_batch > 0) {
    sv_node *outs[3] = {m->loss, m->grad, m->logits};
    m->train = sv_compile(m->g, 3, outs, train_batch);
    if (!m->train || sv_plan_bind(m->train, m->x, m->xbuf) < 0 ||
        sv_plan_bind(m->train, m->y, m->ybuf) < 0 || bind_all(m, m->train) < 0) {
      sv_fail_context("compiling the training plan");
      goto fail;
    }
  }
  sv_node *eouts[2] = {m->logits, m->pooled};
  m->eval = sv_compile(m->g, 2, eouts, eval_batch);
  if (!m->eval || sv_plan_bind(m->eval, m->x, m->ebuf) < 0 || bind_all(m, m->eval) < 0) {
    sv_fail_context("compiling the evaluation plan");
    goto fail;
  }
  return m;
fail:
  lie_model_free(m);
  return NULL;
}

void lie_model_free(lie_model *m)
{
  if (!m)
    return;
  sv_plan_free(m->train);
  sv_plan_free(m->eval);
  for (int i = 0; i < m->nlayers; i++)
    lie_layer_free(&m->layers[i]);
  free(m->layers);
  lie_samples_free(m->samples);
  sv_params_free(m->p);
  sv_graph_free(m->g);
  free(m->xbuf);
  free(m->ybuf);
  free(m->ebuf);
  free(m);
}

int lie_model_refresh(lie_model *m)
{
  for (int i = 0; i < m->nlayers; i++)
    if (lie_layer_fill(&m->layers[i], m->samples) < 0)
      return -1;
  return 0;
}

static int fill(sv_params *p, const char *block, double lo, double hi, gsl_rng *rng)
{
  int i = sv_params_find(p, block);
  if (i < 0)
    return sv_fail("model: no parameter block '%s'", block);
  double *d = sv_params_data(p) + sv_params_block_offset(p, i);
  size_t n = sv_params_block_size(p, i);
  for (size_t k = 0; k < n; k++)
    d[k] = lo == hi ? lo : lo + (hi - lo) * gsl_rng_uniform(rng);
  return 0;
}

int lie_model_init(lie_model *m, gsl_rng *rng)
{
  const lie_arch *a = &m->a;
  if (!sv_params_data(m->p))
    return -1;
  for (int i = 0; i < m->nlayers; i++)
    if (lie_layer_init(&m->layers[i], m->p, rng) < 0)
      return -1;
  if (a->kind == LIE_MODEL_CNN) {
    /* PyTorch's default for convolutions: U(+-1/sqrt(fan_in)) */
    char nm[64];
    int C = a->cnn_channels;
    double bnd = 1 / sqrt(25.0 * C);
    if (fill(m->p, "cnn.lift.W", -1 / 5.0, 1 / 5.0, rng) < 0 ||
        (a->mid && fill(m->p, "cnn.mid.W", -bnd, bnd, rng) < 0))
      return -1;
    for (int b = 0; b < a->blocks; b++)
      for (int c = 1; c <= 2; c++) {
        snprintf(nm, sizeof nm, "cnn.block%d.conv%d.W", b, c);
        if (fill(m->p, nm, -bnd, bnd, rng) < 0)
          return -1;
      }
    if (fill(m->p, "cnn.final.W", -bnd, bnd, rng) < 0)
      return -1;
  }
  /* the alignment scores: U(+-1), so that at initialisation the scores of
     the N shifts differ by O(1) (pooled features vary by ~0.4 between
     samples) and the choice of shift is already fairly sharp */
  if (a->kind == LIE_MODEL_LIE && a->pool == LIE_POOL_ALIGN &&
      fill(m->p, "pool.align.A", -1, 1, rng) < 0)
    return -1;
  int width = lie_arch_pooled_width(a);
  double b1 = 1 / sqrt((double)width), b2 = 1 / sqrt((double)a->head);
  if (fill(m->p, "head.1.W", -b1, b1, rng) < 0 || fill(m->p, "head.1.b", 0, 0, rng) < 0 ||
      fill(m->p, "head.ln.scale", 1, 1, rng) < 0 ||
      fill(m->p, "head.ln.shift", 0, 0, rng) < 0 || fill(m->p, "head.2.W", -b2, b2, rng) < 0 ||
      fill(m->p, "head.2.b", -b2, b2, rng) < 0)
    return -1;
  return 0;
}

static int loss_grad(void *ctx, const double *theta, double *loss, double *grad)
{
  lie_model *m = ctx;
  (void)theta; /* the plan reads the params vector, which is theta */
  if (sv_plan_run(m->train) < 0)
    return sv_fail_context("training step");
  *loss = sv_plan_value(m->train, m->loss)[0];
  if (grad)
    memcpy(grad, sv_plan_value(m->train, m->grad), sv_params_count(m->p) * sizeof(double));
  return 0;
}

sv_objective lie_model_objective(lie_model *m)
{
  sv_objective o = {sv_params_count(m->p), 0, loss_grad, NULL, m};
  return o;
}

int lie_model_train_correct(const lie_model *m)
{
  const double *z = sv_plan_value(m->train, m->logits);
  int correct = 0;
  for (int b = 0; b < m->train_batch; b++) {
    int best = 0;
    for (int c = 1; c < LIE_NCLASSES; c++)
      if (z[b * LIE_NCLASSES + c] > z[b * LIE_NCLASSES + best])
        best = c;
    correct += best == (int)m->ybuf[b];
  }
  return correct;
}

int lie_model_logits(lie_model *m, int count, const double *x, double *logits)
{
  size_t img = (size_t)LIE_CANVAS * LIE_CANVAS;
  for (int at = 0; at < count; at += m->eval_batch) {
    int k = count - at < m->eval_batch ? count - at : m->eval_batch;
    memcpy(m->ebuf, x + (size_t)at * img, (size_t)k * img * sizeof(double));
    if (k < m->eval_batch)
      memset(m->ebuf + (size_t)k * img, 0, (size_t)(m->eval_batch - k) * img * sizeof(double));
    if (sv_plan_run(m->eval) < 0)
      return sv_fail_context("evaluation");
    memcpy(logits + (size_t)at * LIE_NCLASSES, sv_plan_value(m->eval, m->logits),
           (size_t)k * LIE_NCLASSES * sizeof(double));
  }
  return 0;
}

int lie_model_center_head(lie_model *m, int count, const double *x)
{
  int width = sv_dim(m->pooled, 1), H = m->a.head;
  size_t img = (size_t)LIE_CANVAS * LIE_CANVAS;
  double *mean = calloc((size_t)width, sizeof *mean);
  if (!mean)
    return sv_fail("model: out of memory");
  int done = 0;
  for (int at = 0; at < count; at += m->eval_batch) {
    int k = count - at < m->eval_batch ? count - at : m->eval_batch;
    memcpy(m->ebuf, x + (size_t)at * img, (size_t)k * img * sizeof(double));
    if (sv_plan_run(m->eval) < 0) {
      free(mean);
      return sv_fail_context("centring the head");
    }
    const double *pv = sv_plan_value(m->eval, m->pooled);
    for (int b = 0; b < k; b++)
      for (int c = 0; c < width; c++)
        mean[c] += pv[b * width + c];
    done += k;
  }
  double *theta = sv_params_data(m->p);
  const double *W = theta + sv_params_block_offset(m->p, sv_params_find(m->p, "head.1.W"));
  double *bias = theta + sv_params_block_offset(m->p, sv_params_find(m->p, "head.1.b"));
  for (int h = 0; h < H; h++) {
    double s = 0;
    for (int c = 0; c < width; c++)
      s += mean[c] / done * W[c * H + h];
    bias[h] = -s;
  }
  free(mean);
  return 0;
}

int lie_model_predict(void *ctx, int count, const double *x, double *scores)
{
  return lie_model_logits(ctx, count, x, scores);
}

void lie_model_describe(const lie_model *m, char *buf, size_t size)
{
  const lie_arch *a = &m->a;
  if (a->kind == LIE_MODEL_LIE)
    snprintf(buf, size, "Lie-group network over R^2 x| %s: %d channels x %d samples, %d residual "
             "block(s), %s, final %dx%d, SIREN kernels %d x %d (w0 %g, %d x %d points per tap), %s pooling, head %d; %zu "
             "parameters", a->group == LIE_GL2 ? "GL+(2)" : a->group == LIE_SL2 ? "SL(2)" : "SO(2)",
             a->channels, a->samples, a->blocks, a->mid ? (a->pad ? "mid conv (padding 2) + pool" : "mid conv + pool") : "no mid conv",
             lie_arch_final_size(a), lie_arch_final_size(a), a->kernel_layers, a->kernel_width, a->omega,
             a->kernel_sub, a->kernel_sub, a->pool == LIE_POOL_MAX ? "max" : a->pool == LIE_POOL_MEAN ? "mean" : a->pool == LIE_POOL_ALIGN ? "aligned" : "sorted", a->head, sv_params_count(m->p));
  else
    snprintf(buf, size, "CNN: %d channels, %d residual block(s), %s, final %dx%d, global %s "
             "pooling, head %d; %zu parameters", a->cnn_channels, a->blocks,
             a->mid ? "mid conv + pool" : "no mid conv", lie_arch_final_size(a), lie_arch_final_size(a), a->pool == LIE_POOL_MAX ? "max" : "mean",
             a->head, sv_params_count(m->p));
}
