/*
 * linalg.c -- the matrix product, through cblas_dgemm (OpenBLAS).
 */
#include "ops.h"

#include <cblas.h>

/* ---------- matmul: op(a) op(b), op = transpose when the flag is set ---------- */

static int matmul_kernel(const sv_kctx *k)
{
  const sv_shape *sa = sv__kshape(k, 0), *sb = sv__kshape(k, 1);
  int ta = k->n->ia[0], tb = k->n->ia[1];
  int M = k->ys->d[0], N = k->ys->d[1], K = ta ? sa->d[0] : sa->d[1];
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
              1.0, sv__kin(k, 0), sa->d[1], sv__kin(k, 1), sb->d[1], 0.0, k->y, N);
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

sv_node *sv_matmul_t(sv_node *a, int ta, sv_node *b, int tb)
{
  sv_node *in[2] = {a, b};
  sv_graph *g = sv__graph_of(2, in);
  if (!g)
    return NULL;
  if (a->shape.ndim != 2 || b->shape.ndim != 2)
    return sv__graph_fail(g, "matmul: operands must be 2-D (got %d-D and %d-D)", a->shape.ndim,
                          b->shape.ndim);
  int m = ta ? a->shape.d[1] : a->shape.d[0], k = ta ? a->shape.d[0] : a->shape.d[1];
  int k2 = tb ? b->shape.d[1] : b->shape.d[0], n = tb ? b->shape.d[0] : b->shape.d[1];
  char sa[64], sb[64];
  sv__shape_format(&a->shape, sa, sizeof sa);
  sv__shape_format(&b->shape, sb, sizeof sb);
  if (k != k2)
    return sv__graph_fail(g, "matmul: inner dimensions differ: %s%s x %s%s", sa, ta ? "^T" : "", sb,
                          tb ? "^T" : "");
  if (n == SV_BATCH)
    return sv__graph_fail(g, "matmul: %s%s x %s%s would put the batch axis in a column", sa,
                          ta ? "^T" : "", sb, tb ? "^T" : "");
  sv_shape s = {2, {m, n, 1, 1}};
  sv_node *r = sv__node_new(g, &op_matmul, 2, in, &s);
  if (r) {
    r->ia[0] = ta != 0;
    r->ia[1] = tb != 0;
  }
  return r;
}
