/*
 * linalg.c -- the matrix product, through cblas_dgemm (OpenBLAS).
 */
#include "ops.h"

#include <cblas.h>

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

static const sv_opdef op_matmul = {.name = "matmul", .kernel = matmul_kernel, .vjp = matmul_vjp};

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
