/*
 * index.c -- ops that address elements by index: rows by index (gather and
 * scatter-add, for message passing; each the other's adjoint) and one-hot
 * rows from integer labels.
 */
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------- gather_rows / scatter_add_rows (indices in node->idx) ---------- */

static const sv_opdef op_gather, op_scatter_add;

static int gather_kernel(const sv_kctx *k)
{
  const double *a = sv__kin(k, 0);
  size_t row = k->ny / (size_t)k->ys->d[0];
  for (int i = 0; i < k->n->nidx; i++)
    memcpy(k->y + (size_t)i * row, a + (size_t)k->n->idx[i] * row, row * sizeof(double));
  return 0;
}

static int scatter_add_kernel(const sv_kctx *k)
{
  const double *a = sv__kin(k, 0);
  size_t row = k->ny / (size_t)k->ys->d[0];
  memset(k->y, 0, k->ny * sizeof(double));
  for (int i = 0; i < k->n->nidx; i++) {
    double *dst = k->y + (size_t)k->n->idx[i] * row;
    const double *src = a + (size_t)i * row;
    for (size_t j = 0; j < row; j++)
      dst[j] += src[j];
  }
  return 0;
}

static sv_node *gather_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return sv_scatter_add_rows(G, n->nidx, n->idx, n->in[0]->shape.d[0]);
}

static sv_node *scatter_add_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return sv_gather_rows(G, n->nidx, n->idx);
}

static const sv_opdef op_gather = {.name = "gather", .kernel = gather_kernel, .vjp = gather_vjp};
static const sv_opdef op_scatter_add = {.name = "scatter_add", .kernel = scatter_add_kernel,
                                        .vjp = scatter_add_vjp};

static sv_node *index_op(const sv_opdef *op, sv_node *a, int m, const int *idx, int nrows)
{
  sv_graph *g = sv__graph_of(1, &a);
  if (!g)
    return NULL;
  int gather = op == &op_gather;
  const char *name = gather ? "gather_rows" : "scatter_add_rows";
  if (a->shape.ndim < 1 || sv__shape_is_batched(&a->shape))
    return sv__graph_fail(g, "%s: needs a node of at least 1 axis without batch axis", name);
  if (m < 1 || !idx)
    return sv__graph_fail(g, "%s: needs at least one index", name);
  if (!gather && a->shape.d[0] != m)
    return sv__graph_fail(g, "scatter_add_rows: %d indices for %d rows", m, a->shape.d[0]);
  int bound = gather ? a->shape.d[0] : nrows;
  if (bound < 1)
    return sv__graph_fail(g, "%s: bad row count %d", name, bound);
  for (int i = 0; i < m; i++)
    if (idx[i] < 0 || idx[i] >= bound)
      return sv__graph_fail(g, "%s: index %d at position %d is outside [0, %d)", name, idx[i], i, bound);
  sv_shape t = a->shape;
  t.d[0] = gather ? m : nrows;
  sv_node *r = sv__node_new(g, op, 1, &a, &t);
  if (!r)
    return NULL;
  r->idx = malloc((size_t)m * sizeof(int));
  if (!r->idx)
    return sv__graph_fail(g, "out of memory for indices");
  memcpy(r->idx, idx, (size_t)m * sizeof(int));
  r->nidx = m;
  return r;
}

sv_node *sv_gather_rows(sv_node *a, int m, const int *idx) { return index_op(&op_gather, a, m, idx, 0); }

sv_node *sv_scatter_add_rows(sv_node *a, int m, const int *idx, int nrows)
{
  return index_op(&op_scatter_add, a, m, idx, nrows);
}

/* ---------- onehot: labels [...] -> [..., C], 1 at the label (ia[0] = C) ---------- */

/* A label is a double holding an integer class in [0, C); anything else is
   an error naming it, never a write out of bounds. */
int sv__label_check(const char *who, double v, size_t at, int nclasses)
{
  if (!(v >= 0 && v < nclasses) || v != floor(v))
    return sv_fail("%s: label %.17g at position %zu is not a class index in [0, %d)", who, v, at,
                   nclasses);
  return 0;
}

static int onehot_kernel(const sv_kctx *k)
{
  const double *lab = sv__kin(k, 0);
  size_t n = sv__kcount(k, 0), C = (size_t)k->n->ia[0];
  memset(k->y, 0, k->ny * sizeof(double));
  for (size_t i = 0; i < n; i++) {
    if (sv__label_check("onehot", lab[i], i, (int)C) < 0)
      return -1;
    k->y[i * C + (size_t)lab[i]] = 1.0;
  }
  return 0;
}

static const sv_opdef op_onehot = {.name = "onehot", .kernel = onehot_kernel, .nodiff = 1};

sv_node *sv_onehot(sv_node *labels, int nclasses)
{
  sv_graph *g = sv__graph_of(1, &labels);
  if (!g)
    return NULL;
  if (nclasses < 1)
    return sv__graph_fail(g, "onehot: %d classes", nclasses);
  if (labels->shape.ndim >= SV_MAX_DIMS)
    return sv__graph_fail(g, "onehot: labels of %d axes leave no room for the class axis",
                          labels->shape.ndim);
  sv_shape s = labels->shape;
  s.d[s.ndim++] = nclasses;
  sv_node *r = sv__node_new(g, &op_onehot, 1, &labels, &s);
  if (r)
    r->ia[0] = nclasses;
  return r;
}
