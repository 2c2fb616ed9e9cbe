/*
 * sort.c -- sort along the last axis, largest first:
 * y[.., j] = x[.., p(j)] with x[.., p(0)] >= x[.., p(1)] >= ...
 *
 * As max over axes (reduce.c): sort(x) = sort_pick(x, x), the values of v
 * at the sorted positions of the selector x; the derivative sends each
 * adjoint back to the position its value came from, sort_back(G, x), whose
 * own adjoint is sort_pick again, so the pair differentiates to any order.
 * x only selects (nodiff). Ties keep their order (a stable sort, so the
 * first of equal values comes first, as max picks the first maximum); a
 * NaN sorts before every number, as it wins in max. Insertion sort: meant
 * for short axes (a network's group samples), O(L^2) per row.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* Does a come before b? NaN first; otherwise larger first. */
static int before(double a, double b) { return isnan(a) ? !isnan(b) : a > b; }

/* perm[0..L) = positions of row x[0..L) in sorted order (stable). */
static void row_order(const double *x, size_t L, double *perm)
{
  for (size_t j = 0; j < L; j++) {
    size_t i = j;
    while (i > 0 && before(x[j], x[(size_t)perm[i - 1]])) {
      perm[i] = perm[i - 1];
      i--;
    }
    perm[i] = (double)j;
  }
}

static const sv_opdef op_sort_pick, op_sort_back;

static size_t sort_work(const sv_plan *p, const sv_node *n)
{
  (void)p;
  return (size_t)n->in[1]->shape.d[n->in[1]->shape.ndim - 1];
}

static int sort_pick_kernel(const sv_kctx *k)
{
  const double *v = sv__kin(k, 0), *x = sv__kin(k, 1);
  const sv_shape *xs = sv__kshape(k, 1);
  size_t L = (size_t)xs->d[xs->ndim - 1], rows = sv__kcount(k, 1) / L;
  for (size_t r = 0; r < rows; r++) {
    row_order(x + r * L, L, k->work);
    for (size_t j = 0; j < L; j++)
      k->y[r * L + j] = v[r * L + (size_t)k->work[j]];
  }
  return 0;
}

static int sort_back_kernel(const sv_kctx *k)
{
  const double *G = sv__kin(k, 0), *x = sv__kin(k, 1);
  const sv_shape *xs = sv__kshape(k, 1);
  size_t L = (size_t)xs->d[xs->ndim - 1], rows = sv__kcount(k, 1) / L;
  for (size_t r = 0; r < rows; r++) {
    row_order(x + r * L, L, k->work);
    for (size_t j = 0; j < L; j++)
      k->y[r * L + (size_t)k->work[j]] = G[r * L + j];
  }
  return 0;
}

static sv_node *sort_node(const sv_opdef *op, sv_node *v, sv_node *x)
{
  sv_node *in[2] = {v, x};
  sv_graph *g = sv__graph_of(2, in);
  return g ? sv__node_new(g, op, 2, in, &x->shape) : NULL;
}

static sv_node *sort_pick_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return sort_node(&op_sort_back, G, n->in[1]);
}

static sv_node *sort_back_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return sort_node(&op_sort_pick, G, n->in[1]);
}

static const sv_opdef op_sort_pick = {.name = "sort", .kernel = sort_pick_kernel,
                                      .vjp = sort_pick_vjp, .work = sort_work, .nodiff = 2};
static const sv_opdef op_sort_back = {.name = "sort_back", .kernel = sort_back_kernel,
                                      .vjp = sort_back_vjp, .work = sort_work, .nodiff = 2};

sv_node *sv_sort_last(sv_node *a)
{
  sv_graph *g = sv__graph_of(1, &a);
  if (!g)
    return NULL;
  char sa[64];
  sv__shape_format(&a->shape, sa, sizeof sa);
  if (a->shape.ndim < 1 || a->shape.d[a->shape.ndim - 1] == SV_BATCH)
    return sv__graph_fail(g, "sort: the last axis of %s must not be the batch axis", sa);
  return sort_node(&op_sort_pick, a, a);
}
