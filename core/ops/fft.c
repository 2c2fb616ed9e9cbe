/*
 * fft.c -- causal depthwise convolution along time through FFTW, the long
 * convolution of state-space models (S4, S4D, Hyena):
 *
 *   y[b, l, h] = sum_{j <= l} k[h, j] u[b, l - j, h]      u [B, L, H], k [H, L]
 *
 * It is bilinear, y = C(u, k), and its adjoints are correlations:
 *
 *   Du(G, k)[b, m, h] = sum_{l >= m} G[b, l, h] k[h, l - m]           (shape of u)
 *   Dk(G, u)[h, j]    = sum_b sum_{l >= j} G[b, l, h] u[b, l - j, h]  (shape of k)
 *
 * The three ops are one family closed under differentiation (with an
 * adjoint A of the op's output):
 *
 *   C(u, k):  du = Du(A, k),  dk = Dk(A, u)
 *   Du(G, k): dG = C(A, k),   dk = Dk(G, A)
 *   Dk(G, u): dG = C(u, A),   du = Du(G, A)
 *
 * (each is a rearrangement of the one triple sum
 * sum G[b,l,h] k[h,j] u[b,l-j,h]), so derivatives of any order stay in it.
 *
 * All three are products of transforms: sequences zero-padded to a length
 * n >= 2L - 1 that FFTW does fast (2^a 3^b 5^c 7^d), so that the circular
 * convolution and correlation of the transforms have no wrap-around in the
 * first L outputs; a correlation is the product with one conjugate.
 *
 * Layout: FFTW runs 3x faster on contiguous sequences than on the stride-H
 * ones of [B, L, H] (measured, 4096 sequences of 1568), so the kernels
 * gather a chunk of S sequences (b, h) into rows of a scratch, transform
 * them in place (r2c and c2r, FFTW's padded in-place layout), and scatter
 * the first L outputs back; the chunk is small enough to stay in the L2
 * cache through gather, transform, product, inverse and scatter. Plans are
 * made once per compiled plan (prepare), for the chunk size, the last
 * partial chunk and the H rows of the k side; the scratch is the plan's
 * shared work area, aligned to 64 bytes as the buffers the plans were made
 * on, so the kernels allocate nothing.
 *
 * FFTW's planner is not thread-safe: compile plans with these ops from one
 * thread at a time (running them concurrently is fine).
 */
#include "ops.h"

#include <fftw3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Shared machinery: sizes, plans, gather and scatter                  */
/* ------------------------------------------------------------------ */

enum { FC_CONV, FC_DU, FC_DK };

/* Scratch rows per chunk: S rows of ld doubles in about this many bytes. */
#define FC_CHUNK_BYTES (256u * 1024u)
#define FC_ALIGN 8 /* doubles: 64 bytes, AVX-512's alignment (FFTW's largest) */
#define FC_MAX_L (1 << 28)

int sv__fft_fast_length(int m)
{
  for (int n = m > 1 ? m : 1;; n++) {
    int r = n;
    static const int p[4] = {2, 3, 5, 7};
    for (int i = 0; i < 4; i++)
      while (r % p[i] == 0)
        r /= p[i];
    if (r == 1)
      return n;
  }
}

/* Resolved sizes of a node of the family. Input 0 is always a time-side
   tensor ([B, L, H] or [L, H]): u for C, G for Du and Dk. */
typedef struct {
  int B, L, H;
  int n, nf;   /* transform length, complex outputs n/2 + 1 */
  size_t ld;   /* doubles per scratch row: >= 2 nf, a multiple of FC_ALIGN */
  int S;       /* sequences per chunk */
} fc_dims;

static void fc_dims_of(const sv_plan *p, const sv_node *nd, fc_dims *d)
{
  const sv_shape *s = &p->shape[nd->in[0]->id];
  d->B = s->ndim == 3 ? s->d[0] : 1;
  d->L = s->d[s->ndim - 2];
  d->H = s->d[s->ndim - 1];
  d->n = sv__fft_fast_length(2 * d->L - 1);
  d->nf = d->n / 2 + 1;
  d->ld = ((size_t)2 * (size_t)d->nf + FC_ALIGN - 1) / FC_ALIGN * FC_ALIGN;
  size_t S = FC_CHUNK_BYTES / (d->ld * sizeof(double));
  size_t BH = (size_t)d->B * (size_t)d->H;
  d->S = (int)(S < 1 ? 1 : S > BH ? BH : S);
}

/* In-place r2c and c2r plans for some number of rows. */
typedef struct {
  int rows;
  fftw_plan r2c, c2r;
} fc_plans;

typedef struct {
  int mode;
  fc_dims d;
  fc_plans pl[3]; /* rows = S, the last chunk's (B H mod S), H; duplicates share */
  int npl;
} fc_state;

/* Work layout (doubles): slack to align, then the H rows of the k side
   (K's transform, or Dk's accumulator), then one or two chunks of S rows. */
static size_t fc_work_size(const fc_dims *d, int mode)
{
  size_t chunks = mode == FC_DK ? 2 : 1;
  return FC_ALIGN + ((size_t)d->H + chunks * (size_t)d->S) * d->ld;
}

static double *fc_align(double *w)
{
  uintptr_t a = (uintptr_t)w, m = FC_ALIGN * sizeof(double);
  return (double *)((a + m - 1) / m * m);
}

static const fc_plans *fc_plans_for(const fc_state *st, int rows)
{
  for (int i = 0; i < st->npl; i++)
    if (st->pl[i].rows == rows)
      return &st->pl[i];
  return NULL; /* not reached: prepare made one for every count used */
}

static void fc_release(void *state)
{
  fc_state *st = state;
  if (!st)
    return;
  for (int i = 0; i < st->npl; i++) {
    if (st->pl[i].r2c)
      fftw_destroy_plan(st->pl[i].r2c);
    if (st->pl[i].c2r)
      fftw_destroy_plan(st->pl[i].c2r);
  }
  free(st);
}

/* FFTW_MEASURE, not ESTIMATE: at B = H = 64, L = 784 forward and backward
   ran in 135-145 ms against 150-200 ms (bench/README.md), for about 1 s of
   planning per compile (less for sizes FFTW has already measured in this
   process). It times candidates on a scratch freed again. */
static const unsigned fc_flags = FFTW_MEASURE;

static int fc_add_plans(fc_state *st, int rows, double *buf)
{
  for (int i = 0; i < st->npl; i++)
    if (st->pl[i].rows == rows)
      return 0;
  fc_plans *q = &st->pl[st->npl++];
  int n = st->d.n, ld = (int)st->d.ld;
  q->rows = rows;
  q->r2c = fftw_plan_many_dft_r2c(1, &n, rows, buf, NULL, 1, ld, (fftw_complex *)buf, NULL, 1,
                                  ld / 2, fc_flags);
  q->c2r = fftw_plan_many_dft_c2r(1, &n, rows, (fftw_complex *)buf, NULL, 1, ld / 2, buf, NULL, 1,
                                  ld, fc_flags);
  if (!q->r2c || !q->c2r)
    return sv_fail("causal_conv: FFTW made no plan for %d transforms of length %d", rows, n);
  return 0;
}

static int fc_prepare(const sv_plan *p, const sv_node *nd, void **state, int mode)
{
  fc_state *st = calloc(1, sizeof *st);
  if (!st)
    return sv_fail("causal_conv: out of memory");
  *state = st;
  st->mode = mode;
  fc_dims_of(p, nd, &st->d);
  const fc_dims *d = &st->d;
  size_t BH = (size_t)d->B * (size_t)d->H;
  int rest = (int)(BH % (size_t)d->S);
  size_t rows = (size_t)(d->S > d->H ? d->S : d->H);
  /* MEASURE overwrites the arrays: plan on a scratch of the work's layout */
  double *buf = fftw_malloc(rows * d->ld * sizeof(double));
  if (!buf)
    return sv_fail("causal_conv: out of memory for %zu transform rows of %zu doubles", rows, d->ld);
  int rc = fc_add_plans(st, d->S, buf);
  if (rc == 0 && rest)
    rc = fc_add_plans(st, rest, buf);
  if (rc == 0)
    rc = fc_add_plans(st, d->H, buf);
  fftw_free(buf);
  return rc;
}

/* Tiles of the transposes between [L, H] slices and rows: T x T doubles
   of the source and of the destination stay in L1. */
#define FC_TILE 16

/* rows[j ld + l] = x[l H + j] for l < L, j < cnt (an [L, cnt] block of
   x with row stride H, transposed). */
static void transpose_in(const double *restrict x, size_t H, size_t L, size_t cnt,
                         double *restrict rows, size_t ld)
{
  for (size_t l0 = 0; l0 < L; l0 += FC_TILE) {
    size_t l1 = l0 + FC_TILE < L ? l0 + FC_TILE : L;
    for (size_t j0 = 0; j0 < cnt; j0 += FC_TILE) {
      size_t j1 = j0 + FC_TILE < cnt ? j0 + FC_TILE : cnt;
      for (size_t j = j0; j < j1; j++)
        for (size_t l = l0; l < l1; l++)
          rows[j * ld + l] = x[l * H + j];
    }
  }
}

/* The inverse: y[l H + j] = rows[j ld + l]. */
static void transpose_out(const double *restrict rows, size_t ld, size_t L, size_t cnt,
                          double *restrict y, size_t H)
{
  for (size_t l0 = 0; l0 < L; l0 += FC_TILE) {
    size_t l1 = l0 + FC_TILE < L ? l0 + FC_TILE : L;
    for (size_t j0 = 0; j0 < cnt; j0 += FC_TILE) {
      size_t j1 = j0 + FC_TILE < cnt ? j0 + FC_TILE : cnt;
      for (size_t l = l0; l < l1; l++)
        for (size_t j = j0; j < j1; j++)
          y[l * H + j] = rows[j * ld + l];
    }
  }
}

/* Sequences s0 .. s0 + cnt - 1 (s = b H + h) of a time-side tensor
   [B, L, H] go to or come from rows 0 .. cnt - 1: one transpose per
   batch row b the chunk touches. */
static void gather(const fc_dims *d, const double *x, size_t s0, int cnt, double *rows)
{
  size_t L = (size_t)d->L, H = (size_t)d->H, s = s0, end = s0 + (size_t)cnt;
  while (s < end) {
    size_t b = s / H, h = s % H, m = H - h < end - s ? H - h : end - s;
    transpose_in(x + b * L * H + h, H, L, m, rows + (s - s0) * d->ld, d->ld);
    s += m;
  }
  for (int j = 0; j < cnt; j++) /* the zero padding: c2r overwrote it */
    memset(rows + (size_t)j * d->ld + L, 0, ((size_t)d->n - L) * sizeof(double));
}

static void scatter(const fc_dims *d, const double *rows, size_t s0, int cnt, double *y)
{
  size_t L = (size_t)d->L, H = (size_t)d->H, s = s0, end = s0 + (size_t)cnt;
  while (s < end) {
    size_t b = s / H, h = s % H, m = H - h < end - s ? H - h : end - s;
    transpose_out(rows + (s - s0) * d->ld, d->ld, L, m, y + b * L * H + h, H);
    s += m;
  }
}

/* The k side's H rows [H, L] (contiguous rows of k) padded, times scale. */
static void load_rows(const fc_dims *d, const double *k, double *rows, double scale)
{
  size_t L = (size_t)d->L;
  for (size_t h = 0; h < (size_t)d->H; h++) {
    double *r = rows + h * d->ld;
    for (size_t l = 0; l < L; l++)
      r[l] = k[h * L + l] * scale;
    memset(r + L, 0, ((size_t)d->n - L) * sizeof(double));
  }
}

/* a[i] *= b[i] (or conj(b[i])) over nf complex values held as (re, im). */
static void cmul(double *restrict a, const double *restrict b, int nf, int conj)
{
  double sg = conj ? -1.0 : 1.0;
  for (int f = 0; f < nf; f++) {
    double ar = a[2 * f], ai = a[2 * f + 1], br = b[2 * f], bi = sg * b[2 * f + 1];
    a[2 * f] = ar * br - ai * bi;
    a[2 * f + 1] = ar * bi + ai * br;
  }
}

/* acc[i] += a[i] conj(b[i]) */
static void cmac_conj(double *restrict acc, const double *restrict a, const double *restrict b,
                      int nf)
{
  for (int f = 0; f < nf; f++) {
    double ar = a[2 * f], ai = a[2 * f + 1], br = b[2 * f], bi = b[2 * f + 1];
    acc[2 * f] += ar * br + ai * bi;
    acc[2 * f + 1] += ai * br - ar * bi;
  }
}

/* C and Du: y = time-side x (input 0) convolved with (Du: correlated with)
   the k side (input 1, [H, L]). */
static int fc_time_kernel(const sv_kctx *k)
{
  const fc_state *st = k->state;
  const fc_dims *d = &st->d;
  double *kh = fc_align(k->work), *rows = kh + (size_t)d->H * d->ld;
  size_t BH = (size_t)d->B * (size_t)d->H;
  /* K's transform, with FFTW's 1/n of the inverse folded in */
  load_rows(d, sv__kin(k, 1), kh, 1.0 / d->n);
  fftw_execute_dft_r2c(fc_plans_for(st, d->H)->r2c, kh, (fftw_complex *)kh);
  const double *x = sv__kin(k, 0);
  for (size_t s0 = 0; s0 < BH; s0 += (size_t)d->S) {
    int cnt = (int)(BH - s0 < (size_t)d->S ? BH - s0 : (size_t)d->S);
    const fc_plans *q = fc_plans_for(st, cnt);
    gather(d, x, s0, cnt, rows);
    fftw_execute_dft_r2c(q->r2c, rows, (fftw_complex *)rows);
    for (int j = 0; j < cnt; j++)
      cmul(rows + (size_t)j * d->ld, kh + ((s0 + (size_t)j) % (size_t)d->H) * d->ld, d->nf,
           st->mode == FC_DU);
    fftw_execute_dft_c2r(q->c2r, (fftw_complex *)rows, rows);
    scatter(d, rows, s0, cnt, k->y);
  }
  return 0;
}

/* Dk: [H, L] = sum over b of G (input 0) correlated with u (input 1). */
static int fc_dk_kernel(const sv_kctx *k)
{
  const fc_state *st = k->state;
  const fc_dims *d = &st->d;
  double *acc = fc_align(k->work), *ga = acc + (size_t)d->H * d->ld, *ua = ga + (size_t)d->S * d->ld;
  size_t BH = (size_t)d->B * (size_t)d->H;
  const double *G = sv__kin(k, 0), *u = sv__kin(k, 1);
  for (size_t h = 0; h < (size_t)d->H; h++)
    memset(acc + h * d->ld, 0, 2 * (size_t)d->nf * sizeof(double));
  for (size_t s0 = 0; s0 < BH; s0 += (size_t)d->S) {
    int cnt = (int)(BH - s0 < (size_t)d->S ? BH - s0 : (size_t)d->S);
    const fc_plans *q = fc_plans_for(st, cnt);
    gather(d, G, s0, cnt, ga);
    gather(d, u, s0, cnt, ua);
    fftw_execute_dft_r2c(q->r2c, ga, (fftw_complex *)ga);
    fftw_execute_dft_r2c(q->r2c, ua, (fftw_complex *)ua);
    for (int j = 0; j < cnt; j++)
      cmac_conj(acc + ((s0 + (size_t)j) % (size_t)d->H) * d->ld, ga + (size_t)j * d->ld,
                ua + (size_t)j * d->ld, d->nf);
  }
  fftw_execute_dft_c2r(fc_plans_for(st, d->H)->c2r, (fftw_complex *)acc, acc);
  size_t L = (size_t)d->L;
  double scale = 1.0 / d->n;
  for (size_t h = 0; h < (size_t)d->H; h++)
    for (size_t l = 0; l < L; l++)
      k->y[h * L + l] = acc[h * d->ld + l] * scale;
  return 0;
}

static size_t fc_work(const sv_plan *p, const sv_node *nd, int mode)
{
  fc_dims d;
  fc_dims_of(p, nd, &d);
  return fc_work_size(&d, mode);
}

/* The builder of all three (below the descriptors it refers to). */
static sv_node *conv_node(int mode, sv_node *a, sv_node *b);

/* ---------- causal_conv: y = C(u, k) ---------- */

static int conv_prepare(const sv_plan *p, const sv_node *n, void **state)
{
  return fc_prepare(p, n, state, FC_CONV);
}
static size_t conv_work(const sv_plan *p, const sv_node *n) { return fc_work(p, n, FC_CONV); }

static sv_node *conv_vjp(sv_node *n, int i, sv_node *A)
{
  sv_node *u = n->in[0], *k = n->in[1];
  return i == 0 ? conv_node(FC_DU, A, k) : conv_node(FC_DK, A, u);
}

static const sv_opdef op_causal_conv = {.name = "causal_conv", .kernel = fc_time_kernel,
                                        .vjp = conv_vjp, .work = conv_work,
                                        .prepare = conv_prepare, .release = fc_release};

/* ---------- causal_conv_du: Du(G, k), the adjoint for u ---------- */

static int du_prepare(const sv_plan *p, const sv_node *n, void **state)
{
  return fc_prepare(p, n, state, FC_DU);
}
static size_t du_work(const sv_plan *p, const sv_node *n) { return fc_work(p, n, FC_DU); }

static sv_node *du_vjp(sv_node *n, int i, sv_node *A)
{
  sv_node *G = n->in[0], *k = n->in[1];
  return i == 0 ? conv_node(FC_CONV, A, k) : conv_node(FC_DK, G, A);
}

static const sv_opdef op_causal_conv_du = {.name = "causal_conv_du", .kernel = fc_time_kernel,
                                           .vjp = du_vjp, .work = du_work,
                                           .prepare = du_prepare, .release = fc_release};

/* ---------- causal_conv_dk: Dk(G, u), the adjoint for k ---------- */

static int dk_prepare(const sv_plan *p, const sv_node *n, void **state)
{
  return fc_prepare(p, n, state, FC_DK);
}
static size_t dk_work(const sv_plan *p, const sv_node *n) { return fc_work(p, n, FC_DK); }

static sv_node *dk_vjp(sv_node *n, int i, sv_node *A)
{
  sv_node *G = n->in[0], *u = n->in[1];
  return i == 0 ? conv_node(FC_CONV, u, A) : conv_node(FC_DU, G, A);
}

static const sv_opdef op_causal_conv_dk = {.name = "causal_conv_dk", .kernel = fc_dk_kernel,
                                           .vjp = dk_vjp, .work = dk_work,
                                           .prepare = dk_prepare, .release = fc_release};

/* ---------- builders ---------- */

/* A time-side shape: [B, L, H] (B may be SV_BATCH) or [L, H]; L, H >= 1. */
static int time_shape(const sv_shape *s, int *L, int *H)
{
  if (s->ndim != 2 && s->ndim != 3)
    return 0;
  *L = s->d[s->ndim - 2];
  *H = s->d[s->ndim - 1];
  return *L >= 1 && *H >= 1;
}

/* C(a = u, b = k), Du(a = G, b = k), Dk(a = G, b = u). */
static sv_node *conv_node(int mode, sv_node *a, sv_node *b)
{
  static const char *const names[3] = {"causal_conv", "causal_conv_du", "causal_conv_dk"};
  static const sv_opdef *const ops[3] = {&op_causal_conv, &op_causal_conv_du, &op_causal_conv_dk};
  static const char *const roles[3][2] = {{"u", "k"}, {"G", "k"}, {"G", "u"}};
  sv_node *in[2] = {a, b};
  sv_graph *g = sv__graph_of(2, in);
  if (!g)
    return NULL;
  char sa[64], sb[64];
  sv__shape_format(&a->shape, sa, sizeof sa);
  sv__shape_format(&b->shape, sb, sizeof sb);
  const char *nm = names[mode], *ra = roles[mode][0], *rb = roles[mode][1];
  int L, H;
  if (!time_shape(&a->shape, &L, &H))
    return sv__graph_fail(g, "%s: %s is %s; it must be [B, L, H] or [L, H] (time on the axis "
                             "before the channels)", nm, ra, sa);
  if (L > FC_MAX_L) /* the transform length is an int for FFTW */
    return sv__graph_fail(g, "%s: %s %s: sequences of %d steps are longer than the %d of one "
                             "transform", nm, ra, sa, L, FC_MAX_L);
  if (mode == FC_DK) {
    /* G and u: the same time-side shape */
    if (!sv__shape_equal(&a->shape, &b->shape))
      return sv__graph_fail(g, "%s: G %s and u %s must have the same shape", nm, sa, sb);
    sv_shape ks = {2, {H, L, 1, 1}};
    return sv__node_new(g, ops[mode], 2, in, &ks);
  }
  if (b->shape.ndim != 2 || b->shape.d[0] != H || b->shape.d[1] != L)
    return sv__graph_fail(g, "%s: %s %s and %s %s: %s must be [H, L] = [%d,%d] (one kernel of "
                             "the sequence's length per channel)", nm, ra, sa, rb, sb, rb, H, L);
  return sv__node_new(g, ops[mode], 2, in, &a->shape);
}

sv_node *sv_causal_conv(sv_node *u, sv_node *k) { return conv_node(FC_CONV, u, k); }

/* The anti-causal convolution is the family's adjoint for u, Du(u, k). */
sv_node *sv_anticausal_conv(sv_node *u, sv_node *k) { return conv_node(FC_DU, u, k); }
