/*
 * linalg.c -- matrix products through cblas_dgemm (OpenBLAS): matmul (with
 * stacked rows) and bmm (one product per leading index).
 */
#include "ops.h"

#include <cblas.h>
#include <string.h>

/* ---------- matmul: op(a) op(b), op = transpose when the flag is set ----------
 *
 * a may have leading axes: a [..., k] x b [k, n] -> [..., n], the leading
 * axes being rows (a stack of jets [B, J, k] times a weight matrix); with
 * transpose_a, a [..., m] and b [..., n] with the same leading axes give
 * a^T b [m, n], contracted over all of them (the weight gradient). */

/* Rows of a node: the product of all axes but the last (resolved). */
static int rows_of(const sv_shape *s)
{
  int r = 1;
  for (int i = 0; i < s->ndim - 1; i++)
    r *= s->d[i];
  return r;
}

static int matmul_kernel(const sv_kctx *k)
{
  const sv_shape *sa = sv__kshape(k, 0), *sb = sv__kshape(k, 1);
  int ta = k->n->ia[0], tb = k->n->ia[1];
  int lda = sa->d[sa->ndim - 1], ldb = sb->d[sb->ndim - 1];
  int N = k->ys->d[k->ys->ndim - 1], M = rows_of(k->ys), K = ta ? rows_of(sa) : lda;
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
              1.0, sv__kin(k, 0), lda, sv__kin(k, 1), ldb, 0.0, k->y, N);
  return 0;
}

static sv_node *matmul_vjp(sv_node *n, int i, sv_node *G)
{
  sv_node *a = n->in[0], *b = n->in[1];
  int ta = n->ia[0], tb = n->ia[1];
  if (i == 0) {
    if (!ta)
      return sv_matmul_t(G, 0, b, !tb); /* dA = G op(B)^T */
    return sv_matmul_t(b, tb, G, 1);    /* dA = op(B) G^T */
  }
  if (!tb)
    return sv_matmul_t(a, !ta, G, 0);   /* dB = op(A)^T G */
  return sv_matmul_t(G, 1, a, ta);      /* dB = G^T op(A) */
}

static sv_node *matmul_vjp_rows(sv_node *n, int i, sv_node *G);
static const sv_opdef op_matmul = {.name = "matmul", .kernel = matmul_kernel, .vjp = matmul_vjp,
                                   .vjp_rows = matmul_vjp_rows};

sv_node *sv_matmul(sv_node *a, sv_node *b) { return sv_matmul_t(a, 0, b, 0); }

/* 2-D operands: the four transpose combinations. More axes: a [..., k] x
   b [k, n] (or b^T [n, k]), or a^T b with matching leading axes. */
sv_node *sv_matmul_t(sv_node *a, int ta, sv_node *b, int tb)
{
  sv_node *in[2] = {a, b};
  sv_graph *g = sv__graph_of(2, in);
  if (!g)
    return NULL;
  ta = ta != 0;
  tb = tb != 0;
  char sa[64], sb[64];
  sv__shape_format(&a->shape, sa, sizeof sa);
  sv__shape_format(&b->shape, sb, sizeof sb);
  const sv_shape *as = &a->shape, *bs = &b->shape;
  if (as->ndim < 2 || bs->ndim < 2)
    return sv__graph_fail(g, "matmul: operands must have at least 2 axes (got %s and %s)", sa, sb);
  sv_shape s;
  if (as->ndim == 2 && bs->ndim == 2) {
    int m = ta ? as->d[1] : as->d[0], k = ta ? as->d[0] : as->d[1];
    int k2 = tb ? bs->d[1] : bs->d[0], n = tb ? bs->d[0] : bs->d[1];
    if (k != k2)
      return sv__graph_fail(g, "matmul: inner dimensions differ: %s%s x %s%s", sa, ta ? "^T" : "", sb,
                            tb ? "^T" : "");
    if (n == SV_BATCH)
      return sv__graph_fail(g, "matmul: %s%s x %s%s would put the batch axis in a column", sa,
                            ta ? "^T" : "", sb, tb ? "^T" : "");
    s = (sv_shape){2, {m, n, 1, 1}};
  } else if (!ta) {
    /* rows of a times a 2-D b */
    int k = as->d[as->ndim - 1];
    if (bs->ndim != 2 || sv__shape_is_batched(bs))
      return sv__graph_fail(g, "matmul: %s x %s: with more than 2 axes, b must be a 2-D matrix", sa, sb);
    int k2 = tb ? bs->d[1] : bs->d[0], n = tb ? bs->d[0] : bs->d[1];
    if (k != k2)
      return sv__graph_fail(g, "matmul: inner dimensions differ: %s x %s%s", sa, sb, tb ? "^T" : "");
    s = *as;
    s.d[s.ndim - 1] = n;
  } else {
    /* a^T b over the common leading axes */
    int same = !tb && as->ndim == bs->ndim;
    for (int j = 0; same && j < as->ndim - 1; j++)
      same = as->d[j] == bs->d[j];
    if (!same)
      return sv__graph_fail(g, "matmul: %s^T x %s%s: a^T b with more than 2 axes needs the same "
                               "leading axes and no transposed b", sa, sb, tb ? "^T" : "");
    s = (sv_shape){2, {as->d[as->ndim - 1], bs->d[bs->ndim - 1], 1, 1}};
  }
  sv_node *r = sv__node_new(g, &op_matmul, 2, in, &s);
  if (r) {
    r->ia[0] = ta;
    r->ia[1] = tb;
  }
  return r;
}

/* ---------- bmm: a batch of matrix products, one per leading index ----------
 *
 * a [N, m, k] x b [N, k, n] -> [N, m, n] (with transposes of the last two
 * axes); N is usually the batch axis. Small products (the per-row weight
 * gradients of a PINN Jacobian) run as plain loops, large ones through
 * cblas_dgemm. */

static const sv_opdef op_bmm;

/* C = op(A) op(B) for the small per-row products (the Jacobian rows of a
   jet layer are 16 x 16 outer sums over 3 stacked rows). restrict: the
   operands never alias the output, and without it GCC re-checks aliasing
   before every 16-long inner loop, which costs more than the loop. */
static void small_gemm(int ta, int tb, int m, int n, int k, const double *restrict A, int lda,
                       const double *restrict B, int ldb, double *restrict C)
{
  if (n == 1) { /* a matrix-vector product: one dot per output */
    for (int i = 0; i < m; i++) {
      double s = 0;
      for (int l = 0; l < k; l++)
        s += (ta ? A[l * lda + i] : A[i * lda + l]) * (tb ? B[l] : B[l * ldb]);
      C[i] = s;
    }
    return;
  }
  if (ta && !tb && k <= 3) {
    /* the Jacobian rows of a jet layer: k = 1 + order stacked rows, each
       output row a sum of k scaled rows of B in one pass (the loops over
       16 columns were shorter than their own set-up) */
    const double *b0 = B, *b1 = B + ldb, *b2 = B + 2 * ldb;
    for (int i = 0; i < m; i++) {
      double *restrict c = C + i * n;
      double a0 = A[i], a1 = k > 1 ? A[lda + i] : 0, a2 = k > 2 ? A[2 * lda + i] : 0;
      if (k == 3)
        for (int j = 0; j < n; j++)
          c[j] = a0 * b0[j] + a1 * b1[j] + a2 * b2[j];
      else if (k == 2)
        for (int j = 0; j < n; j++)
          c[j] = a0 * b0[j] + a1 * b1[j];
      else
        for (int j = 0; j < n; j++)
          c[j] = a0 * b0[j];
    }
    return;
  }
  for (int i = 0; i < m; i++) {
    double *restrict c = C + i * n;
    for (int j = 0; j < n; j++)
      c[j] = 0;
    for (int l = 0; l < k; l++) {
      double av = ta ? A[l * lda + i] : A[i * lda + l];
      if (tb)
        for (int j = 0; j < n; j++)
          c[j] += av * B[j * ldb + l];
      else
        for (int j = 0; j < n; j++)
          c[j] += av * B[l * ldb + j];
    }
  }
}

static int bmm_kernel(const sv_kctx *k)
{
  const sv_shape *sa = sv__kshape(k, 0), *sb = sv__kshape(k, 1);
  int ta = k->n->ia[0], tb = k->n->ia[1];
  int N = sa->d[0], M = k->ys->d[1], Nc = k->ys->d[2], K = ta ? sa->d[1] : sa->d[2];
  int lda = sa->d[2], ldb = sb->d[2];
  size_t as = (size_t)sa->d[1] * (size_t)sa->d[2], bs = (size_t)sb->d[1] * (size_t)sb->d[2];
  size_t cs = (size_t)M * (size_t)Nc;
  const double *A = sv__kin(k, 0), *B = sv__kin(k, 1);
  int big = (long)M * Nc * K >= 32768;
  for (int r = 0; r < N; r++) {
    if (big)
      cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, Nc,
                  K, 1.0, A + r * as, lda, B + r * bs, ldb, 0.0, k->y + r * cs, Nc);
    else
      small_gemm(ta, tb, M, Nc, K, A + r * as, lda, B + r * bs, ldb, k->y + r * cs);
  }
  return 0;
}

/* the four rules of matmul, row by row */
static sv_node *bmm_vjp(sv_node *n, int i, sv_node *G)
{
  sv_node *a = n->in[0], *b = n->in[1];
  int ta = n->ia[0], tb = n->ia[1];
  if (i == 0)
    return ta ? sv_bmm(b, tb, G, 1) : sv_bmm(G, 0, b, !tb);
  return tb ? sv_bmm(G, 1, a, ta) : sv_bmm(a, !ta, G, 0);
}

static const sv_opdef op_bmm = {.name = "bmm", .kernel = bmm_kernel, .vjp = bmm_vjp};

sv_node *sv_bmm(sv_node *a, int ta, sv_node *b, int tb)
{
  sv_node *in[2] = {a, b};
  sv_graph *g = sv__graph_of(2, in);
  if (!g)
    return NULL;
  char sa[64], sb[64];
  sv__shape_format(&a->shape, sa, sizeof sa);
  sv__shape_format(&b->shape, sb, sizeof sb);
  const sv_shape *as = &a->shape, *bs = &b->shape;
  if (as->ndim != 3 || bs->ndim != 3 || as->d[0] != bs->d[0])
    return sv__graph_fail(g, "bmm: operands %s and %s must be [N, ., .] with the same N", sa, sb);
  ta = ta != 0;
  tb = tb != 0;
  int m = ta ? as->d[2] : as->d[1], k = ta ? as->d[1] : as->d[2];
  int k2 = tb ? bs->d[2] : bs->d[1], n = tb ? bs->d[1] : bs->d[2];
  if (k != k2)
    return sv__graph_fail(g, "bmm: inner dimensions differ: %s%s x %s%s", sa, ta ? "^T" : "", sb,
                          tb ? "^T" : "");
  sv_shape s = {3, {as->d[0], m, n, 1}};
  sv_node *r = sv__node_new(g, &op_bmm, 2, in, &s);
  if (r) {
    r->ia[0] = ta;
    r->ia[1] = tb;
  }
  return r;
}

/* The per-row weight gradient of y = a W (a batched, W a parameter):
   a_r^T G_r for each row r, [B, k n] (or G_r^T a_r for a transposed W). */
static sv_node *matmul_vjp_rows(sv_node *n, int i, sv_node *G)
{
  sv_node *a = n->in[0], *W = n->in[1];
  if (i != 1 || n->ia[0] || !sv__shape_is_batched(&a->shape))
    return NULL;
  /* rows of a and G as [B, R, k] and [B, R, n] */
  int R = 1;
  for (int j = 1; j < a->shape.ndim - 1; j++)
    R *= a->shape.d[j];
  int k = a->shape.d[a->shape.ndim - 1], nn = G->shape.d[G->shape.ndim - 1];
  int da[3] = {SV_BATCH, R, k}, dg[3] = {SV_BATCH, R, nn};
  sv_node *A = sv_reshape(a, 3, da), *Gr = sv_reshape(G, 3, dg);
  sv_node *o = n->ia[1] ? sv_bmm(Gr, 1, A, 0) : sv_bmm(A, 1, Gr, 0);
  int flat[2] = {SV_BATCH, (int)sv__shape_count(&W->shape, 1)};
  return sv_reshape(o, 2, flat);
}
