/*
 * reduce.c -- reductions and their adjoint, broadcasting: sum_to and
 * broadcast (with a mean flag), the sum/mean calls built on them, max over
 * axes (with its subgradient), and logsumexp along an axis.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* sum_to and broadcast: each the other's adjoint                      */
/* ------------------------------------------------------------------ */

/* ia[0] is the mean flag: divide by the element ratio, which is known only
   once the batch size is (mean over a batched axis). */

static const sv_opdef op_sum_to;
static sv_node *reduce_or_expand(const sv_opdef *op, sv_node *a, int ndim, const int *dims, int mean);

/* out (small) = sum of in (big) over its broadcast axes, times `scale`. */
static int sum_to_kernel(const sv_kctx *k)
{
  const double *in = sv__kin(k, 0);
  double *o = k->y;
  size_t nsmall = k->ny, d[4], so[4];
  double scale = k->n->ia[0] ? (double)k->ny / (double)sv__kcount(k, 0) : 1.0;
  sv__pad4(sv__kshape(k, 0), d);
  sv__bstrides(k->ys, d, so);
  memset(o, 0, nsmall * sizeof *o);
  if (nsmall == 1) {
    double s = 0;
    size_t n = d[0] * d[1] * d[2] * d[3];
    for (size_t i = 0; i < n; i++)
      s += in[i];
    o[0] = s * scale;
    return 0;
  }
  size_t m = 0;
  for (size_t i0 = 0; i0 < d[0]; i0++)
    for (size_t i1 = 0; i1 < d[1]; i1++)
      for (size_t i2 = 0; i2 < d[2]; i2++) {
        double *po = o + i0 * so[0] + i1 * so[1] + i2 * so[2];
        for (size_t i3 = 0; i3 < d[3]; i3++)
          po[i3 * so[3]] += in[m++];
      }
  if (scale != 1.0)
    for (size_t i = 0; i < nsmall; i++)
      o[i] *= scale;
  return 0;
}

static sv_node *sum_to_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  const sv_shape *t = &n->in[0]->shape;
  return reduce_or_expand(&sv__op_broadcast, G, t->ndim, t->d, n->ia[0]);
}

static const sv_opdef op_sum_to = {.name = "sum_to", .kernel = sum_to_kernel, .vjp = sum_to_vjp};

/* out (big) = in (small) broadcast, times `scale`. */
static int broadcast_kernel(const sv_kctx *k)
{
  const double *in = sv__kin(k, 0);
  const sv_shape *small = sv__kshape(k, 0);
  double *o = k->y;
  size_t nbig = k->ny, d[4], si[4], m = 0;
  double scale = k->n->ia[0] ? (double)sv__kcount(k, 0) / (double)k->ny : 1.0;
  if (sv__kcount(k, 0) == 1) {
    double v = in[0] * scale;
    for (size_t i = 0; i < nbig; i++)
      o[i] = v;
    return 0;
  }
  sv__pad4(k->ys, d);
  sv__bstrides(small, d, si);
  for (size_t i0 = 0; i0 < d[0]; i0++)
    for (size_t i1 = 0; i1 < d[1]; i1++)
      for (size_t i2 = 0; i2 < d[2]; i2++) {
        const double *pi = in + i0 * si[0] + i1 * si[1] + i2 * si[2];
        for (size_t i3 = 0; i3 < d[3]; i3++)
          o[m++] = pi[i3 * si[3]] * scale;
      }
  return 0;
}

static sv_node *broadcast_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  const sv_shape *t = &n->in[0]->shape;
  return reduce_or_expand(&op_sum_to, G, t->ndim, t->d, n->ia[0]);
}

const sv_opdef sv__op_broadcast = {.name = "broadcast", .kernel = broadcast_kernel,
                                   .vjp = broadcast_vjp};

static sv_node *reduce_or_expand(const sv_opdef *op, sv_node *a, int ndim, const int *dims, int mean)
{
  sv_graph *g = sv__graph_of(1, &a);
  sv_shape t, chk;
  if (!g)
    return NULL;
  if (sv__shape_make(&t, ndim, dims) < 0)
    return sv__graph_fail(g, "%s: bad target shape", op->name);
  int summing = op == &op_sum_to;
  const sv_shape *big = summing ? &a->shape : &t, *small = summing ? &t : &a->shape;
  if (sv__shape_broadcast(big, small, &chk) < 0 || !sv__shape_equal(&chk, big) || small->ndim > big->ndim) {
    char sa[64], sb[64];
    sv__shape_format(&a->shape, sa, sizeof sa);
    sv__shape_format(&t, sb, sizeof sb);
    return sv__graph_fail(g, "%s: %s cannot be %s %s", op->name, sa,
                          summing ? "summed to" : "broadcast to", sb);
  }
  if (sv__shape_equal(&a->shape, &t))
    return a; /* nothing to do (and the mean ratio is 1) */
  sv_node *r = sv__node_new(g, op, 1, &a, &t);
  if (r)
    r->ia[0] = mean;
  return r;
}

sv_node *sv_sum_to(sv_node *a, int ndim, const int *dims)
{
  return reduce_or_expand(&op_sum_to, a, ndim, dims, 0);
}

sv_node *sv_broadcast_to(sv_node *a, int ndim, const int *dims)
{
  return reduce_or_expand(&sv__op_broadcast, a, ndim, dims, 0);
}

sv_node *sv_sum(sv_node *a) { return reduce_or_expand(&op_sum_to, a, 0, NULL, 0); }

sv_node *sv_mean(sv_node *a)
{
  if (a && a->shape.ndim == 0)
    return a;
  return reduce_or_expand(&op_sum_to, a, 0, NULL, 1);
}

/* The shape with `axis` dropped. */
static sv_shape drop_axis(const sv_shape *s, int axis)
{
  sv_shape r;
  r.ndim = s->ndim - 1;
  for (int i = 0, j = 0; i < s->ndim; i++)
    if (i != axis)
      r.d[j++] = s->d[i];
  for (int i = r.ndim; i < SV_MAX_DIMS; i++)
    r.d[i] = 1;
  return r;
}

static sv_node *reduce_axis(sv_node *a, int axis, int mean)
{
  sv_graph *g = sv__graph_of(1, &a);
  if (!g)
    return NULL;
  int nd = a->shape.ndim, ax = sv__axis(axis, nd);
  if (ax < 0)
    return sv__graph_fail(g, "%s_axis: axis %d out of range for a %d-D node", mean ? "mean" : "sum",
                          axis, nd);
  sv_shape keep = a->shape, drop = drop_axis(&a->shape, ax);
  keep.d[ax] = 1;
  sv_node *r = reduce_or_expand(&op_sum_to, a, keep.ndim, keep.d, mean);
  return sv_reshape(r, drop.ndim, drop.d);
}

sv_node *sv_sum_axis(sv_node *a, int axis) { return reduce_axis(a, axis, 0); }
sv_node *sv_mean_axis(sv_node *a, int axis) { return reduce_axis(a, axis, 1); }

/* ------------------------------------------------------------------ */
/* max over axes                                                       */
/* ------------------------------------------------------------------ */

/*
 * max(x) over a set of axes is max_pick(x, x): for each output element, the
 * value of the first input v at the position of the FIRST maximum of the
 * selector x (row-major order; a NaN in x wins and sticks, so NaN
 * propagates). The subgradient puts the whole adjoint on that position:
 * d/dv = max_back(G, x), which scatters G there; x only selects (nodiff).
 * max_back's own adjoint is max_pick again, so the pair differentiates to
 * any order. ia[0] holds the reduced axes as a bit mask.
 */

static const sv_opdef op_max_pick, op_max_back;

/* work[o] = flat input index of the first maximum of group o (as a double). */
static void first_argmax(const sv_kctx *k, const double *x, const sv_shape *xs, size_t nout, double *work)
{
  double *best = work + nout, *idx = work, *state = work + 2 * nout; /* 0 unseen, 1 seen, 2 NaN */
  size_t d[4], st[4], m = 0;
  sv_shape keep = *xs;
  for (int a = 0; a < xs->ndim; a++)
    if (k->n->ia[0] & (1 << a))
      keep.d[a] = 1;
  sv__pad4(xs, d);
  sv__bstrides(&keep, d, st);
  memset(state, 0, nout * sizeof *state);
  for (size_t i0 = 0; i0 < d[0]; i0++)
    for (size_t i1 = 0; i1 < d[1]; i1++)
      for (size_t i2 = 0; i2 < d[2]; i2++) {
        size_t base = i0 * st[0] + i1 * st[1] + i2 * st[2];
        for (size_t i3 = 0; i3 < d[3]; i3++, m++) {
          size_t o = base + i3 * st[3];
          double v = x[m];
          if (state[o] == 2)
            continue;
          if (state[o] == 0 || isnan(v) || v > best[o]) {
            best[o] = v;
            idx[o] = (double)m;
            state[o] = isnan(v) ? 2 : 1;
          }
        }
      }
}

static size_t max_work(const sv_plan *p, const sv_node *n)
{
  /* three values per output group; max_back's groups are its input G's */
  size_t groups = n->op == &op_max_back ? p->count[n->in[0]->id] : p->count[n->id];
  return 3 * groups;
}

static int max_pick_kernel(const sv_kctx *k)
{
  const double *v = sv__kin(k, 0);
  first_argmax(k, sv__kin(k, 1), sv__kshape(k, 1), k->ny, k->work);
  for (size_t o = 0; o < k->ny; o++)
    k->y[o] = v[(size_t)k->work[o]];
  return 0;
}

static int max_back_kernel(const sv_kctx *k)
{
  const double *G = sv__kin(k, 0);
  size_t ng = sv__kcount(k, 0);
  first_argmax(k, sv__kin(k, 1), sv__kshape(k, 1), ng, k->work);
  memset(k->y, 0, k->ny * sizeof *k->y);
  for (size_t o = 0; o < ng; o++)
    k->y[(size_t)k->work[o]] = G[o];
  return 0;
}

static sv_node *max_node(const sv_opdef *op, sv_node *v, sv_node *x, int mask, const sv_shape *s)
{
  sv_node *in[2] = {v, x};
  sv_node *r = sv__node_new(x->g, op, 2, in, s);
  if (r)
    r->ia[0] = mask;
  return r;
}

static sv_node *max_pick_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return max_node(&op_max_back, G, n->in[1], n->ia[0], &n->in[1]->shape);
}

static sv_node *max_back_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return max_node(&op_max_pick, G, n->in[1], n->ia[0], &n->in[0]->shape);
}

static const sv_opdef op_max_pick = {.name = "max_pick", .kernel = max_pick_kernel,
                                     .vjp = max_pick_vjp, .work = max_work, .nodiff = 2};
static const sv_opdef op_max_back = {.name = "max_back", .kernel = max_back_kernel,
                                     .vjp = max_back_vjp, .work = max_work, .nodiff = 2};

sv_node *sv_max_axes(sv_node *a, int naxes, const int *axes)
{
  sv_graph *g = sv__graph_of(1, &a);
  if (!g)
    return NULL;
  int nd = a->shape.ndim, mask = 0;
  if (naxes < 1 || !axes)
    return sv__graph_fail(g, "max: no axes given");
  for (int j = 0; j < naxes; j++) {
    int ax = sv__axis(axes[j], nd);
    if (ax < 0)
      return sv__graph_fail(g, "max: axis %d out of range for a %d-D node", axes[j], nd);
    if (mask & (1 << ax))
      return sv__graph_fail(g, "max: axis %d given twice", axes[j]);
    mask |= 1 << ax;
  }
  sv_shape s;
  s.ndim = 0;
  for (int i = 0; i < nd; i++)
    if (!(mask & (1 << i)))
      s.d[s.ndim++] = a->shape.d[i];
  for (int i = s.ndim; i < SV_MAX_DIMS; i++)
    s.d[i] = 1;
  if (s.ndim > 0 && s.d[0] == SV_BATCH && a->shape.d[0] != SV_BATCH)
    return sv__graph_fail(g, "max: internal: batch axis moved"); /* cannot happen */
  return max_node(&op_max_pick, a, a, mask, &s);
}

sv_node *sv_max_axis(sv_node *a, int axis) { return sv_max_axes(a, 1, &axis); }

/* ------------------------------------------------------------------ */
/* logsumexp along an axis                                             */
/* ------------------------------------------------------------------ */

/* y = m + log sum_j exp(x_j - m), m = max_j x_j (finite for any finite
   input, however large); the axis is dropped. The derivative is the
   softmax along the axis: G exp(x - y). */

static int logsumexp_kernel(const sv_kctx *k)
{
  const double *x = sv__kin(k, 0);
  const sv_shape *xs = sv__kshape(k, 0);
  int axis = k->n->ia[0];
  size_t outer, inner, len = (size_t)xs->d[axis];
  sv__split_axis(xs, axis, &outer, &inner);
  for (size_t o = 0; o < outer; o++)
    for (size_t in = 0; in < inner; in++) {
      const double *p = x + o * len * inner + in;
      double m = -INFINITY, s = 0;
      for (size_t j = 0; j < len; j++)
        m = fmax(m, p[j * inner]);
      if (isinf(m)) { /* all -inf, or a +inf: the sum is m */
        k->y[o * inner + in] = m;
        continue;
      }
      for (size_t j = 0; j < len; j++)
        s += exp(p[j * inner] - m);
      k->y[o * inner + in] = m + log(s);
    }
  return 0;
}

static sv_node *logsumexp_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  sv_node *x = n->in[0];
  sv_shape keep = x->shape;
  keep.d[n->ia[0]] = 1;
  /* exp(x - y) is the softmax; not log_softmax, which refuses the batch axis */
  return sv_mul(sv_reshape(G, keep.ndim, keep.d), sv_exp(sv_sub(x, sv_reshape(n, keep.ndim, keep.d))));
}

static const sv_opdef op_logsumexp = {.name = "logsumexp", .kernel = logsumexp_kernel,
                                      .vjp = logsumexp_vjp};

sv_node *sv_logsumexp(sv_node *a, int axis)
{
  sv_graph *g = sv__graph_of(1, &a);
  if (!g)
    return NULL;
  int ax = sv__axis(axis, a->shape.ndim);
  if (ax < 0)
    return sv__graph_fail(g, "logsumexp: axis %d out of range for a %d-D node", axis, a->shape.ndim);
  sv_shape s = drop_axis(&a->shape, ax);
  sv_node *r = sv__node_new(g, &op_logsumexp, 1, &a, &s);
  if (r)
    r->ia[0] = ax;
  return r;
}
