/*
 * shape.c -- ops that move elements without computing: reshape (a view of
 * its input's buffer), transpose, slice and concat.
 */
#include "ops.h"

#include <string.h>

/* ---------- reshape: same elements, new shape; the batch axis stays first ---------- */

static sv_node *reshape_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  const sv_shape *s = &n->in[0]->shape;
  return sv_reshape(G, s->ndim, s->d);
}

static const sv_opdef op_reshape = {.name = "reshape", .store = SV_STORE_VIEW, .vjp = reshape_vjp};

sv_node *sv_reshape(sv_node *a, int ndim, const int *dims)
{
  sv_graph *g = sv__graph_of(1, &a);
  sv_shape t;
  if (!g)
    return NULL;
  if (sv__shape_make(&t, ndim, dims) < 0)
    return sv__graph_fail(g, "reshape: bad target shape");
  char sa[64], sb[64];
  sv__shape_format(&a->shape, sa, sizeof sa);
  sv__shape_format(&t, sb, sizeof sb);
  if (sv__shape_is_batched(&a->shape) != sv__shape_is_batched(&t) ||
      sv__shape_count(&a->shape, 1) != sv__shape_count(&t, 1))
    return sv__graph_fail(g, "reshape: %s cannot become %s (same element count, batch axis kept first)",
                          sa, sb);
  if (sv__shape_equal(&a->shape, &t))
    return a;
  return sv__node_new(g, &op_reshape, 1, &a, &t);
}

/* ---------- transpose (2-D, no batch axis) ---------- */

static int transpose_kernel(const sv_kctx *k)
{
  const double *a = sv__kin(k, 0);
  size_t r = (size_t)sv__kshape(k, 0)->d[0], c = (size_t)sv__kshape(k, 0)->d[1];
  for (size_t i = 0; i < r; i++)
    for (size_t j = 0; j < c; j++)
      k->y[j * r + i] = a[i * c + j];
  return 0;
}

static sv_node *transpose_vjp(sv_node *n, int i, sv_node *G) { (void)n, (void)i; return sv_transpose(G); }

static const sv_opdef op_transpose = {.name = "transpose", .kernel = transpose_kernel,
                                      .vjp = transpose_vjp};

sv_node *sv_transpose(sv_node *a)
{
  sv_graph *g = sv__graph_of(1, &a);
  if (!g)
    return NULL;
  if (a->shape.ndim != 2 || sv__shape_is_batched(&a->shape))
    return sv__graph_fail(g, "transpose: needs a 2-D node without batch axis (use sv_matmul_t)");
  sv_shape t = {2, {a->shape.d[1], a->shape.d[0], 1, 1}};
  return sv__node_new(g, &op_transpose, 1, &a, &t);
}

/* ---------- slice: [start, start + len) along an axis (ia: axis, start, len) ---------- */

static int slice_kernel(const sv_kctx *k)
{
  size_t outer, inner;
  int axis = k->n->ia[0];
  size_t start = (size_t)k->n->ia[1], len = (size_t)k->n->ia[2], full = (size_t)sv__kshape(k, 0)->d[axis];
  const double *a = sv__kin(k, 0);
  sv__split_axis(k->ys, axis, &outer, &inner);
  for (size_t o = 0; o < outer; o++)
    memcpy(k->y + o * len * inner, a + (o * full + start) * inner, len * inner * sizeof(double));
  return 0;
}

/* G embedded between zero blocks along the axis. */
static sv_node *slice_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  const sv_node *a = n->in[0];
  int axis = n->ia[0], start = n->ia[1], len = n->ia[2], full = a->shape.d[axis];
  sv_node *parts[3];
  int np = 0;
  sv_shape s = a->shape;
  if (start > 0) {
    s.d[axis] = start;
    parts[np++] = sv__zeros(n->g, &s);
  }
  parts[np++] = G;
  if (start + len < full) {
    s.d[axis] = full - start - len;
    parts[np++] = sv__zeros(n->g, &s);
  }
  return sv_concat(np, parts, axis);
}

static const sv_opdef op_slice = {.name = "slice", .kernel = slice_kernel, .vjp = slice_vjp};

sv_node *sv_slice(sv_node *a, int axis, int start, int len)
{
  sv_graph *g = sv__graph_of(1, &a);
  if (!g)
    return NULL;
  int nd = a->shape.ndim, ax = sv__axis(axis, nd);
  if (ax < 0)
    return sv__graph_fail(g, "slice: axis out of range for a %d-D node", nd);
  if (a->shape.d[ax] == SV_BATCH)
    return sv__graph_fail(g, "slice: cannot slice the batch axis");
  if (start < 0 || len < 1 || start + len > a->shape.d[ax])
    return sv__graph_fail(g, "slice: [%d, %d) is outside axis %d of size %d", start, start + len, ax,
                          a->shape.d[ax]);
  sv_shape t = a->shape;
  t.d[ax] = len;
  sv_node *r = sv__node_new(g, &op_slice, 1, &a, &t);
  if (r) {
    r->ia[0] = ax;
    r->ia[1] = start;
    r->ia[2] = len;
  }
  return r;
}

/* ---------- concat along an axis (ia[0]) ---------- */

static int concat_kernel(const sv_kctx *k)
{
  size_t outer, inner, off = 0;
  int axis = k->n->ia[0];
  size_t total = (size_t)k->ys->d[axis];
  sv__split_axis(k->ys, axis, &outer, &inner);
  for (int j = 0; j < k->n->nin; j++) {
    size_t mid = (size_t)sv__kshape(k, j)->d[axis];
    const double *src = sv__kin(k, j);
    for (size_t o = 0; o < outer; o++)
      memcpy(k->y + (o * total + off) * inner, src + o * mid * inner, mid * inner * sizeof(double));
    off += mid;
  }
  return 0;
}

static sv_node *concat_vjp(sv_node *n, int i, sv_node *G)
{
  int axis = n->ia[0], off = 0;
  for (int j = 0; j < i; j++)
    off += n->in[j]->shape.d[axis];
  return sv_slice(G, axis, off, n->in[i]->shape.d[axis]);
}

static const sv_opdef op_concat = {.name = "concat", .kernel = concat_kernel, .vjp = concat_vjp};

sv_node *sv_concat(int n, sv_node *const *parts, int axis)
{
  sv_graph *g = n > 0 ? sv__graph_of(n, parts) : NULL;
  if (!g)
    return NULL;
  int nd = parts[0]->shape.ndim, ax = sv__axis(axis, nd);
  if (ax < 0)
    return sv__graph_fail(g, "concat: axis out of range for %d-D nodes", nd);
  if (parts[0]->shape.d[ax] == SV_BATCH)
    return sv__graph_fail(g, "concat: cannot join along the batch axis");
  if (n == 1)
    return parts[0];
  sv_shape t = parts[0]->shape;
  t.d[ax] = 0;
  for (int i = 0; i < n; i++) {
    const sv_shape *s = &parts[i]->shape;
    int ok = s->ndim == nd;
    for (int j = 0; ok && j < nd; j++)
      ok = j == ax || s->d[j] == t.d[j];
    if (!ok)
      return sv__graph_fail(g, "concat: part %d does not match the others except along axis %d", i, ax);
    t.d[ax] += s->d[ax];
  }
  sv_node *r = sv__node_new(g, &op_concat, n, parts, &t);
  if (r)
    r->ia[0] = ax;
  return r;
}
