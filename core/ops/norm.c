/*
 * norm.c -- layer normalisation over the trailing axes:
 *
 *   y = (x - mean) / sqrt(var + eps)      (biased variance, as PyTorch)
 *
 * one fused kernel; its derivative, written in ops,
 *
 *   dx = r (G - mean(G) - y mean(G y)),   r = 1 / sqrt(var + eps),
 *
 * with the means over the same axes. The affine form (a scale and a shift
 * of the trailing shape) is the plain ops on top.
 */
#include "ops.h"

#include <math.h>

/* ia[0]: the number of trailing axes; a: eps. */

static int layer_norm_kernel(const sv_kctx *k)
{
  const double *x = sv__kin(k, 0);
  int nax = k->n->ia[0];
  size_t M = 1;
  for (int a = k->ys->ndim - nax; a < k->ys->ndim; a++)
    M *= (size_t)k->ys->d[a];
  size_t rows = k->ny / M;
  double eps = k->n->a;
  for (size_t r = 0; r < rows; r++) {
    const double *xr = x + r * M;
    double *yr = k->y + r * M, mu = 0, var = 0;
    for (size_t j = 0; j < M; j++)
      mu += xr[j];
    mu /= (double)M;
    for (size_t j = 0; j < M; j++)
      var += (xr[j] - mu) * (xr[j] - mu);
    double rs = 1.0 / sqrt(var / (double)M + eps);
    for (size_t j = 0; j < M; j++)
      yr[j] = (xr[j] - mu) * rs;
  }
  return 0;
}

static sv_node *layer_norm_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  sv_node *x = n->in[0], *y = n;
  int nax = n->ia[0];
  sv_shape keep = x->shape;
  double M = 1;
  for (int a = keep.ndim - nax; a < keep.ndim; a++) {
    M *= keep.d[a];
    keep.d[a] = 1;
  }
#define MEAN(t) sv_scale(sv_sum_to((t), keep.ndim, keep.d), 1.0 / M)
  sv_node *xc = sv_sub(x, MEAN(x));
  sv_node *r = sv_pow(sv_add_scalar(MEAN(sv_square(xc)), n->a), -0.5);
  sv_node *dx = sv_mul(r, sv_sub(sv_sub(G, MEAN(G)), sv_mul(y, MEAN(sv_mul(G, y)))));
#undef MEAN
  return dx;
}

static const sv_opdef op_layer_norm = {.name = "layer_norm", .kernel = layer_norm_kernel,
                                       .vjp = layer_norm_vjp};

sv_node *sv_layer_norm(sv_node *x, int naxes, double eps)
{
  sv_graph *g = sv__graph_of(1, &x);
  if (!g)
    return NULL;
  int nd = x->shape.ndim;
  if (naxes < 1 || naxes > nd)
    return sv__graph_fail(g, "layer_norm: %d trailing axes of a %d-D node", naxes, nd);
  if (sv__shape_is_batched(&x->shape) && naxes == nd)
    return sv__graph_fail(g, "layer_norm: not over the batch axis (rows must stay independent)");
  if (!(eps > 0) || !isfinite(eps))
    return sv__graph_fail(g, "layer_norm: eps must be > 0 (got %g)", eps);
  sv_node *r = sv__node_new(g, &op_layer_norm, 1, &x, &x->shape);
  if (r) {
    r->ia[0] = naxes;
    r->a = eps;
  }
  return r;
}

sv_node *sv_layer_norm_affine(sv_node *x, int naxes, double eps, sv_node *scale, sv_node *shift)
{
  sv_node *y = sv_layer_norm(x, naxes, eps);
  if (!y)
    return NULL;
  int nd = x->shape.ndim;
  const sv_node *ps[2] = {scale, shift};
  for (int k = 0; k < 2; k++) {
    if (!ps[k])
      continue;
    int ok = ps[k]->shape.ndim == naxes;
    for (int a = 0; ok && a < naxes; a++)
      ok = ps[k]->shape.d[a] == x->shape.d[nd - naxes + a];
    if (!ok) {
      char sx[64], sp[64];
      sv__shape_format(&x->shape, sx, sizeof sx);
      sv__shape_format(&ps[k]->shape, sp, sizeof sp);
      return sv__graph_fail(x->g, "layer_norm: the %s %s must have the trailing shape of %s",
                            k ? "shift" : "scale", sp, sx);
    }
  }
  if (scale)
    y = sv_mul(y, scale);
  if (shift)
    y = sv_add(y, shift);
  return y;
}
