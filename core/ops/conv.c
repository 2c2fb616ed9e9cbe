/*
 * conv.c -- 2-D convolution (cross-correlation, as every deep-learning
 * library computes it), NCHW, with stride and zero padding:
 *
 *   y[b, o, i, j] = sum_{c, p, q} w[o, c, p, q] x[b, c, i s + p - pad, j s + q - pad]
 *
 * x [B, Cin, H, W], w [Cout, Cin, kh, kw] (an ordinary node: the Lie-group
 * networks compute it from a kernel network every step), y [B, Cout, Ho,
 * Wo]. Each image is im2col into the plan's scratch and multiplied by
 * cblas_dgemm, a few input channels at a time (chunk_channels): the
 * columns of all channels ([Cin kh kw, Ho Wo], 10 MB for 128 channels of
 * 20x20 maps) fall out of cache between the im2col that writes them and the
 * dgemm that reads them, a chunk's (under 512 KB) stays in it. Measured on
 * a Zen 1 core for the Lie network's last layer (128 -> 128 channels, 5x5,
 * 20x20): forward 25.1 -> 21.4 ms per image, conv2d_dx 23.1 -> 22.4,
 * conv2d_dw 24.1 -> 22.8. The forward then sums the chunks in another order
 * (round-off); the two adjoints compute the same numbers.
 *
 * The op is bilinear, y = C(x, w), and its two adjoints are ops of this
 * file, so the family is closed under differentiation:
 *
 *   conv2d_dx(G, w) [x's shape] = col2im(w^T G)    d/dx <G, C(x, w)>
 *   conv2d_dw(G, x) [w's shape] = sum_b G col(x)^T  d/dw <G, C(x, w)>
 *
 *   rules: C(x, w):       dx = Dx(G, w),  dw = Dw(G, x)
 *          Dx(G, w) (H):  dG = C(H, w),   dw = Dw(G, H)
 *          Dw(G, x) (H):  dG = C(x, H),   dx = Dx(G, H)
 *
 * (each from <H, Dx(G, w)> = <C(H, w), G> = <w, Dw(G, H)> and its twin).
 * ia: [0] stride, [1] padding.
 *
 * Algorithm: each node chooses at compile time (prepare) between the
 * im2col-dgemm kernels below and, for stride 1, the FFT kernels of
 * conv_fft.c, which do several times less arithmetic for wide layers with
 * 5x5 filters (the Lie network's last layer: 21 GFLOP per minibatch of 64
 * by im2col, 3 by FFT; a whole SL(2) training step on a Zen 1 core went from
 * 13.1 to 32.5 images/s). The rules above do not depend on the choice.
 */
#include "conv_fft.h"

#include <cblas.h>
#include <string.h>

typedef sv__conv_geom geom;

/* The geometry from the resolved shapes of x and w. */
static geom geom_of(const sv_shape *x, const sv_shape *w, int stride, int pad)
{
  geom g;
  g.B = (size_t)x->d[0], g.C = (size_t)x->d[1], g.H = (size_t)x->d[2], g.W = (size_t)x->d[3];
  g.O = (size_t)w->d[0], g.kh = (size_t)w->d[2], g.kw = (size_t)w->d[3];
  g.s = (size_t)stride, g.pad = (size_t)pad;
  g.Ho = (g.H + 2 * g.pad - g.kh) / g.s + 1;
  g.Wo = (g.W + 2 * g.pad - g.kw) / g.s + 1;
  return g;
}

/* With stride 1, the output columns j whose input column j + q - pad lies
   in [0, W), for kernel column q: [*j0, *j1) (possibly empty). */
static void unit_stride_run(const geom *g, size_t q, size_t *j0, size_t *j1)
{
  long lo = (long)g->pad - (long)q, hi = (long)g->W + (long)g->pad - (long)q;
  size_t a = lo > 0 ? (size_t)lo : 0, b = hi < (long)g->Wo ? (size_t)(hi > 0 ? hi : 0) : g->Wo;
  if (a > g->Wo)
    a = g->Wo;
  if (b < a)
    b = a;
  *j0 = a;
  *j1 = b;
}

/* col[(c, p, q), (i, j)] = x[c, i s + p - pad, j s + q - pad] (0 outside). */
static void im2col(const geom *g, const double *x, double *col)
{
  size_t n = g->Ho * g->Wo;
  for (size_t c = 0; c < g->C; c++)
    for (size_t p = 0; p < g->kh; p++)
      for (size_t q = 0; q < g->kw; q++) {
        double *row = col + ((c * g->kh + p) * g->kw + q) * n;
        const double *xc = x + c * g->H * g->W;
        for (size_t i = 0; i < g->Ho; i++) {
          double *r = row + i * g->Wo;
          long yy = (long)(i * g->s + p) - (long)g->pad;
          if (yy < 0 || yy >= (long)g->H) {
            memset(r, 0, g->Wo * sizeof *r);
            continue;
          }
          const double *xr = xc + (size_t)yy * g->W;
          if (g->s == 1) {
            size_t j0, j1;
            unit_stride_run(g, q, &j0, &j1);
            memset(r, 0, j0 * sizeof *r);
            if (j1 > j0)
              memcpy(r + j0, xr + (long)j0 + (long)q - (long)g->pad, (j1 - j0) * sizeof *r);
            memset(r + j1, 0, (g->Wo - j1) * sizeof *r);
          } else {
            for (size_t j = 0; j < g->Wo; j++) {
              long xx = (long)(j * g->s + q) - (long)g->pad;
              r[j] = xx >= 0 && xx < (long)g->W ? xr[xx] : 0.0;
            }
          }
        }
      }
}

/* x[c, ...] += col[(c, p, q), (i, j)]: the adjoint of im2col. */
static void col2im_add(const geom *g, const double *col, double *x)
{
  size_t n = g->Ho * g->Wo;
  for (size_t c = 0; c < g->C; c++)
    for (size_t p = 0; p < g->kh; p++)
      for (size_t q = 0; q < g->kw; q++) {
        const double *row = col + ((c * g->kh + p) * g->kw + q) * n;
        double *xc = x + c * g->H * g->W;
        for (size_t i = 0; i < g->Ho; i++) {
          long yy = (long)(i * g->s + p) - (long)g->pad;
          if (yy < 0 || yy >= (long)g->H)
            continue;
          double *xr = xc + (size_t)yy * g->W;
          const double *r = row + i * g->Wo;
          if (g->s == 1) {
            /* the columns in range, as in im2col: one contiguous run the
               compiler vectorises (the same additions in the same order) */
            size_t j0, j1;
            unit_stride_run(g, q, &j0, &j1);
            if (j1 > j0) {
              double *xo = xr + (long)j0 + (long)q - (long)g->pad;
              for (size_t j = j0; j < j1; j++)
                xo[j - j0] += r[j];
            }
            continue;
          }
          for (size_t j = 0; j < g->Wo; j++) {
            long xx = (long)(j * g->s + q) - (long)g->pad;
            if (xx >= 0 && xx < (long)g->W)
              xr[xx] += r[j];
          }
        }
      }
}

/* Input channels per chunk: as many as keep one chunk's columns within
   CHUNK_BYTES (at least one). */
#define CHUNK_BYTES (512u * 1024u)
static size_t chunk_channels(const geom *g)
{
  size_t per = g->kh * g->kw * g->Ho * g->Wo * sizeof(double);
  size_t cc = per ? CHUNK_BYTES / per : g->C;
  if (cc < 1)
    cc = 1;
  return cc < g->C ? cc : g->C;
}

/* The geometry of channels [c0, c0 + cc) alone (the same planes, fewer of
   them), and how many those are. */
static geom chunk_of(const geom *g, size_t c0, size_t cc)
{
  geom h = *g;
  h.C = g->C - c0 < cc ? g->C - c0 : cc;
  return h;
}

static const sv_opdef op_conv2d, op_conv2d_dx, op_conv2d_dw;
static sv_node *conv_node(const sv_opdef *op, sv_node *a, sv_node *b, const sv_shape *s, int stride,
                          int pad);

/* The geometry of a node of the family: every op knows x's and w's shapes
   from its inputs or output. */
static geom node_geom(const sv_plan *p, const sv_node *n)
{
  const sv_shape *x, *w;
  if (n->op == &op_conv2d)
    x = &p->shape[n->in[0]->id], w = &p->shape[n->in[1]->id];
  else if (n->op == &op_conv2d_dx)
    x = &p->shape[n->id], w = &p->shape[n->in[1]->id];
  else
    x = &p->shape[n->in[1]->id], w = &p->shape[n->id];
  return geom_of(x, w, n->ia[0], n->ia[1]);
}

/* Scratch: one chunk's columns, [cc kh kw, Ho Wo], or the FFT kernels'. */
static size_t conv_work(const sv_plan *p, const sv_node *n)
{
  geom g = node_geom(p, n);
  if (sv__conv_fft_chosen(&g) > 0)
    return sv__conv_fft_work(&g);
  return chunk_channels(&g) * g.kh * g.kw * g.Ho * g.Wo;
}

/* State: the FFT plans when the node takes that path, else none. */
static int conv_prepare(const sv_plan *p, const sv_node *n, void **state)
{
  geom g = node_geom(p, n);
  int fft = sv__conv_fft_chosen(&g);
  if (fft < 0)
    return -1;
  *state = NULL;
  return fft ? sv__conv_fft_prepare(&g, state) : 0;
}

/* ---------- conv2d(x, w) ---------- */

static int conv2d_kernel(const sv_kctx *k)
{
  if (k->state) {
    sv__conv_fft_forward(k->state, sv__kin(k, 0), sv__kin(k, 1), k->y, k->work);
    return 0;
  }
  geom g = geom_of(sv__kshape(k, 0), sv__kshape(k, 1), k->n->ia[0], k->n->ia[1]);
  const double *x = sv__kin(k, 0), *w = sv__kin(k, 1);
  size_t K = g.C * g.kh * g.kw, n = g.Ho * g.Wo, kk = g.kh * g.kw, cc = chunk_channels(&g);
  for (size_t b = 0; b < g.B; b++)
    for (size_t c0 = 0; c0 < g.C; c0 += cc) { /* y_b = sum over chunks of w[:, chunk] col(chunk) */
      geom h = chunk_of(&g, c0, cc);
      im2col(&h, x + (b * g.C + c0) * g.H * g.W, k->work);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g.O, (int)n, (int)(h.C * kk), 1.0,
                  w + c0 * kk, (int)K, k->work, (int)n, c0 ? 1.0 : 0.0, k->y + b * g.O * n, (int)n);
    }
  return 0;
}

static sv_node *conv2d_vjp(sv_node *n, int i, sv_node *G)
{
  sv_node *x = n->in[0], *w = n->in[1];
  if (i == 0)
    return conv_node(&op_conv2d_dx, G, w, &x->shape, n->ia[0], n->ia[1]);
  return conv_node(&op_conv2d_dw, G, x, &w->shape, n->ia[0], n->ia[1]);
}

static const sv_opdef op_conv2d = {.name = "conv2d", .kernel = conv2d_kernel, .vjp = conv2d_vjp,
                                   .work = conv_work, .prepare = conv_prepare,
                                   .release = sv__conv_fft_release};

/* ---------- conv2d_dx(G, w): the adjoint with respect to x ---------- */

static int conv2d_dx_kernel(const sv_kctx *k)
{
  if (k->state) {
    sv__conv_fft_dx(k->state, sv__kin(k, 0), sv__kin(k, 1), k->y, k->work);
    return 0;
  }
  geom g = geom_of(k->ys, sv__kshape(k, 1), k->n->ia[0], k->n->ia[1]);
  const double *G = sv__kin(k, 0), *w = sv__kin(k, 1);
  size_t K = g.C * g.kh * g.kw, n = g.Ho * g.Wo, kk = g.kh * g.kw, cc = chunk_channels(&g);
  memset(k->y, 0, k->ny * sizeof *k->y);
  for (size_t b = 0; b < g.B; b++)
    for (size_t c0 = 0; c0 < g.C; c0 += cc) { /* the chunk's rows of w^T G_b, then col2im */
      geom h = chunk_of(&g, c0, cc);
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(h.C * kk), (int)n, (int)g.O, 1.0,
                  w + c0 * kk, (int)K, G + b * g.O * n, (int)n, 0.0, k->work, (int)n);
      col2im_add(&h, k->work, k->y + (b * g.C + c0) * g.H * g.W);
    }
  return 0;
}

static sv_node *conv2d_dx_vjp(sv_node *n, int i, sv_node *H)
{
  sv_node *G = n->in[0], *w = n->in[1];
  if (i == 0)
    return conv_node(&op_conv2d, H, w, &G->shape, n->ia[0], n->ia[1]);
  return conv_node(&op_conv2d_dw, G, H, &w->shape, n->ia[0], n->ia[1]);
}

static const sv_opdef op_conv2d_dx = {.name = "conv2d_dx", .kernel = conv2d_dx_kernel,
                                      .vjp = conv2d_dx_vjp, .work = conv_work,
                                      .prepare = conv_prepare, .release = sv__conv_fft_release};

/* ---------- conv2d_dw(G, x): the adjoint with respect to w ---------- */

static int conv2d_dw_kernel(const sv_kctx *k)
{
  if (k->state) {
    sv__conv_fft_dw(k->state, sv__kin(k, 0), sv__kin(k, 1), k->y, k->work);
    return 0;
  }
  geom g = geom_of(sv__kshape(k, 1), k->ys, k->n->ia[0], k->n->ia[1]);
  const double *G = sv__kin(k, 0), *x = sv__kin(k, 1);
  size_t K = g.C * g.kh * g.kw, n = g.Ho * g.Wo, kk = g.kh * g.kw, cc = chunk_channels(&g);
  for (size_t b = 0; b < g.B; b++) /* batch >= 1: image 0 overwrites y, the rest add */
    for (size_t c0 = 0; c0 < g.C; c0 += cc) { /* the chunk's columns of y */
      geom h = chunk_of(&g, c0, cc);
      im2col(&h, x + (b * g.C + c0) * g.H * g.W, k->work);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g.O, (int)(h.C * kk), (int)n, 1.0,
                  G + b * g.O * n, (int)n, k->work, (int)n, b ? 1.0 : 0.0, k->y + c0 * kk, (int)K);
    }
  return 0;
}

static sv_node *conv2d_dw_vjp(sv_node *n, int i, sv_node *H)
{
  sv_node *G = n->in[0], *x = n->in[1];
  if (i == 0)
    return conv_node(&op_conv2d, x, H, &G->shape, n->ia[0], n->ia[1]);
  return conv_node(&op_conv2d_dx, G, H, &x->shape, n->ia[0], n->ia[1]);
}

static const sv_opdef op_conv2d_dw = {.name = "conv2d_dw", .kernel = conv2d_dw_kernel,
                                      .vjp = conv2d_dw_vjp, .work = conv_work,
                                      .prepare = conv_prepare, .release = sv__conv_fft_release};

static sv_node *conv_node(const sv_opdef *op, sv_node *a, sv_node *b, const sv_shape *s, int stride,
                          int pad)
{
  sv_node *in[2] = {a, b};
  sv_graph *g = sv__graph_of(2, in);
  if (!g)
    return NULL;
  sv_node *r = sv__node_new(g, op, 2, in, s);
  if (r) {
    r->ia[0] = stride;
    r->ia[1] = pad;
  }
  return r;
}

sv_node *sv_conv2d(sv_node *x, sv_node *w, int stride, int pad)
{
  sv_node *in[2] = {x, w};
  sv_graph *g = sv__graph_of(2, in);
  if (!g)
    return NULL;
  char sx[64], sw[64];
  sv__shape_format(&x->shape, sx, sizeof sx);
  sv__shape_format(&w->shape, sw, sizeof sw);
  if (x->shape.ndim != 4 || w->shape.ndim != 4 || sv__shape_is_batched(&w->shape))
    return sv__graph_fail(g, "conv2d: x %s must be [B, Cin, H, W] and w %s [Cout, Cin, kh, kw]", sx, sw);
  if (x->shape.d[1] != w->shape.d[1])
    return sv__graph_fail(g, "conv2d: x %s has %d channels, w %s expects %d", sx, x->shape.d[1], sw,
                          w->shape.d[1]);
  if (stride < 1 || pad < 0)
    return sv__graph_fail(g, "conv2d: stride %d and padding %d (need >= 1 and >= 0)", stride, pad);
  int Hp = x->shape.d[2] + 2 * pad, Wp = x->shape.d[3] + 2 * pad;
  if (Hp < w->shape.d[2] || Wp < w->shape.d[3])
    return sv__graph_fail(g, "conv2d: a %dx%d kernel does not fit x %s padded by %d", w->shape.d[2],
                          w->shape.d[3], sx, pad);
  sv_shape s = {4, {x->shape.d[0], w->shape.d[0], (Hp - w->shape.d[2]) / stride + 1,
                    (Wp - w->shape.d[3]) / stride + 1}};
  return conv_node(&op_conv2d, x, w, &s, stride, pad);
}
