/*
 * loss.c -- the losses of classifiers, stable for any finite logits:
 * log-softmax along an axis, and softmax cross-entropy against integer
 * class labels as one fused op.
 */
#include "ops.h"

#include <math.h>

/* max and log-sum-exp of n values with stride s */
static double lse_strided(const double *p, size_t n, size_t s)
{
  double m = -INFINITY, sum = 0;
  for (size_t j = 0; j < n; j++)
    m = fmax(m, p[j * s]);
  if (isinf(m))
    return m;
  for (size_t j = 0; j < n; j++)
    sum += exp(p[j * s] - m);
  return m + log(sum);
}

/* ---------- log_softmax: x - logsumexp(x) along an axis (ia[0]) ----------
 * d/dx: G - softmax * sum(G) along the axis, softmax = exp(y). */

static int log_softmax_kernel(const sv_kctx *k)
{
  const double *x = sv__kin(k, 0);
  int axis = k->n->ia[0];
  size_t outer, inner, len = (size_t)k->ys->d[axis];
  sv__split_axis(k->ys, axis, &outer, &inner);
  for (size_t o = 0; o < outer; o++)
    for (size_t in = 0; in < inner; in++) {
      size_t base = o * len * inner + in;
      double l = lse_strided(x + base, len, inner);
      for (size_t j = 0; j < len; j++)
        k->y[base + j * inner] = x[base + j * inner] - l;
    }
  return 0;
}

static sv_node *log_softmax_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  sv_shape keep = n->shape;
  keep.d[n->ia[0]] = 1;
  return sv_sub(G, sv_mul(sv_exp(n), sv_sum_to(G, keep.ndim, keep.d)));
}

static const sv_opdef op_log_softmax = {.name = "log_softmax", .kernel = log_softmax_kernel,
                                        .vjp = log_softmax_vjp};

sv_node *sv_log_softmax(sv_node *a, int axis)
{
  sv_graph *g = sv__graph_of(1, &a);
  if (!g)
    return NULL;
  int ax = sv__axis(axis, a->shape.ndim);
  if (ax < 0)
    return sv__graph_fail(g, "log_softmax: axis %d out of range for a %d-D node", axis, a->shape.ndim);
  if (a->shape.d[ax] == SV_BATCH)
    return sv__graph_fail(g, "log_softmax: not along the batch axis (rows must stay independent)");
  sv_node *r = sv__node_new(g, &op_log_softmax, 1, &a, &a->shape);
  if (r)
    r->ia[0] = ax;
  return r;
}

/* ---------- softmax_xent: logsumexp(z) - z[label] per row ----------
 * z [..., C] (classes on the last axis), labels [...] holding class
 * indices as doubles; the loss per row, [...]. d/dz: G (softmax(z) -
 * onehot(label)), one fused node below; the labels only select (nodiff). */

/* log sum exp of a contiguous row, the exps vectorised through e (n). */
static double lse_row(const double *z, size_t n, double *e)
{
  double m = -INFINITY, sum = 0;
  for (size_t j = 0; j < n; j++)
    m = fmax(m, z[j]);
  if (isinf(m))
    return m;
  for (size_t j = 0; j < n; j++)
    e[j] = z[j] - m;
  sv__vexp(e, e, n);
  for (size_t j = 0; j < n; j++)
    sum += e[j];
  return m + log(sum);
}

static int softmax_xent_kernel(const sv_kctx *k)
{
  const double *z = sv__kin(k, 0), *lab = sv__kin(k, 1);
  const sv_shape *zs = sv__kshape(k, 0);
  size_t C = (size_t)zs->d[zs->ndim - 1], rows = k->ny;
  for (size_t r = 0; r < rows; r++) {
    if (sv__label_check("softmax_xent", lab[r], r, (int)C) < 0)
      return -1;
    const double *zr = z + r * C;
    k->y[r] = lse_row(zr, C, k->work) - zr[(size_t)lab[r]];
  }
  return 0;
}

static size_t softmax_xent_work(const sv_plan *p, const sv_node *n)
{
  const sv_shape *s = &p->shape[n->in[0]->id];
  return (size_t)s->d[s->ndim - 1];
}

/* The adjoint in ops: G (softmax(z) - onehot(labels)), G reshaped [..., 1]. */
static sv_node *xent_back_ops(sv_node *G, sv_node *z, sv_node *labels)
{
  int C = z->shape.d[z->shape.ndim - 1];
  sv_shape keep = z->shape;
  keep.d[keep.ndim - 1] = 1;
  sv_node *p = sv_exp(sv_log_softmax(z, -1));
  return sv_mul(sv_reshape(G, keep.ndim, keep.d), sv_sub(p, sv_onehot(labels, C)));
}

/* ---------- softmax_xent_back(G, z, labels): that adjoint as one node ----------
 * one exp per logit (kept in scratch between the sum and the quotient),
 * vectorised; its own rule is the reverse mode of xent_back_ops. */

static int xent_back_kernel(const sv_kctx *k)
{
  const double *G = sv__kin(k, 0), *z = sv__kin(k, 1), *lab = sv__kin(k, 2);
  size_t C = (size_t)k->ys->d[k->ys->ndim - 1], rows = k->ny / C;
  double *e = k->work;
  for (size_t r = 0; r < rows; r++) {
    if (sv__label_check("softmax_xent", lab[r], r, (int)C) < 0)
      return -1;
    const double *zr = z + r * C;
    double *out = k->y + r * C, m = -INFINITY, sum = 0;
    for (size_t j = 0; j < C; j++)
      m = fmax(m, zr[j]);
    for (size_t j = 0; j < C; j++)
      e[j] = zr[j] - m;
    sv__vexp(e, e, C);
    for (size_t j = 0; j < C; j++)
      sum += e[j];
    double g = G[r] / sum;
    for (size_t j = 0; j < C; j++)
      out[j] = g * e[j];
    out[(size_t)lab[r]] -= G[r];
  }
  return 0;
}

static size_t xent_back_work(const sv_plan *p, const sv_node *n)
{
  const sv_shape *s = &p->shape[n->id];
  return (size_t)s->d[s->ndim - 1];
}

static sv_node *xent_back_vjp(sv_node *n, int i, sv_node *H)
{
  sv_node *x[3] = {n->in[0], n->in[1], n->in[2]}, *out[3];
  sv_node *f = xent_back_ops(x[0], x[1], x[2]);
  if (!f || sv__vjp_partial(f, H, 3, x, out) < 0)
    return sv__graph_fail(n->g, "softmax_xent_back: %s", sv_errmsg());
  return out[i];
}

static const sv_opdef op_xent_back = {.name = "softmax_xent_back", .kernel = xent_back_kernel,
                                      .vjp = xent_back_vjp, .work = xent_back_work, .nodiff = 4};

static sv_node *softmax_xent_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  sv_node *in[3] = {G, n->in[0], n->in[1]};
  return sv__node_new(n->g, &op_xent_back, 3, in, &n->in[0]->shape);
}

static const sv_opdef op_softmax_xent = {.name = "softmax_xent", .kernel = softmax_xent_kernel,
                                         .vjp = softmax_xent_vjp, .work = softmax_xent_work,
                                         .nodiff = 2};

sv_node *sv_softmax_xent(sv_node *logits, sv_node *labels)
{
  sv_node *in[2] = {logits, labels};
  sv_graph *g = sv__graph_of(2, in);
  if (!g)
    return NULL;
  const sv_shape *zs = &logits->shape, *ls = &labels->shape;
  char sz[64], sl[64];
  sv__shape_format(zs, sz, sizeof sz);
  sv__shape_format(ls, sl, sizeof sl);
  int ok = zs->ndim >= 1 && ls->ndim == zs->ndim - 1 && zs->d[zs->ndim - 1] != SV_BATCH;
  for (int a = 0; ok && a < ls->ndim; a++)
    ok = ls->d[a] == zs->d[a];
  if (!ok)
    return sv__graph_fail(g, "softmax_xent: logits %s and labels %s: the labels must have the logits' "
                             "shape without the last (class) axis", sz, sl);
  return sv__node_new(g, &op_softmax_xent, 2, in, ls);
}
