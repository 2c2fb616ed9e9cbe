/*
 * norm.c -- layer normalisation over the trailing axes:
 *
 *   y = (x - mean) / sqrt(var + eps)      (biased variance, as PyTorch)
 *
 * one fused kernel; its derivative
 *
 *   dx = r (G - mean(G) - y mean(G y)),   r = 1 / sqrt(var + eps),
 *
 * with the means over the same axes, is one fused kernel too
 * (layer_norm_back, a pass over G and x), whose own derivative rule is
 * written in ops (layer_norm_back_vjp). The affine form (a scale and a shift
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

/* Rows and their length M for `nax` trailing axes of a resolved shape. */
static size_t ln_width(const sv_shape *s, int nax)
{
  size_t M = 1;
  for (int a = s->ndim - nax; a < s->ndim; a++)
    M *= (size_t)s->d[a];
  return M;
}

/* layer_norm_back(G, x) = r (G - mean(G) - y mean(G y)), row by row, with
   y and r recomputed from x: one pass over G and x. */
static int layer_norm_back_kernel(const sv_kctx *k)
{
  const double *G = sv__kin(k, 0), *x = sv__kin(k, 1);
  size_t M = ln_width(k->ys, k->n->ia[0]), rows = k->ny / M;
  double eps = k->n->a;
  for (size_t r = 0; r < rows; r++) {
    const double *xr = x + r * M, *gr = G + r * M;
    double *dr = k->y + r * M, mu = 0, var = 0, mg = 0, mgy = 0;
    for (size_t j = 0; j < M; j++)
      mu += xr[j];
    mu /= (double)M;
    for (size_t j = 0; j < M; j++)
      var += (xr[j] - mu) * (xr[j] - mu);
    double rs = 1.0 / sqrt(var / (double)M + eps);
    for (size_t j = 0; j < M; j++) {
      mg += gr[j];
      mgy += gr[j] * (xr[j] - mu) * rs;
    }
    mg /= (double)M;
    mgy /= (double)M;
    for (size_t j = 0; j < M; j++)
      dr[j] = rs * (gr[j] - mg - (xr[j] - mu) * rs * mgy);
  }
  return 0;
}

static sv_node *layer_norm_back(sv_node *G, sv_node *x, int nax, double eps);

/*
 * The derivatives of f = layer_norm_back(G, x) = r P(G), P(u) = u - mean(u) -
 * y mean(u y), with the adjoint A. P is symmetric and r a scalar per row, so
 * d/dG = f(A, x). With dy_j/dx_k = r (delta_jk - 1/M - y_j y_k / M) and
 * dr/dx = -r^2 y / M, the row sums S = sum A f, beta = sum A y and
 * c = mean(G y) give
 *   d/dx = -(r / M) (S y + beta f) - r c f(A, x),
 * in ops that are differentiable again (layer_norm, layer_norm_back).
 */
static sv_node *layer_norm_back_vjp(sv_node *n, int i, sv_node *A)
{
  sv_node *G = n->in[0], *x = n->in[1];
  int nax = n->ia[0];
  double eps = n->a;
  sv_node *fA = layer_norm_back(A, x, nax, eps);
  if (i == 0)
    return fA;
  sv_shape keep = x->shape;
  double M = 1;
  for (int a = keep.ndim - nax; a < keep.ndim; a++) {
    M *= keep.d[a];
    keep.d[a] = 1;
  }
#define RSUM(t) sv_sum_to((t), keep.ndim, keep.d)
  sv_node *y = sv_layer_norm(x, nax, eps);
  sv_node *xc = sv_sub(x, sv_scale(RSUM(x), 1.0 / M));
  sv_node *r = sv_pow(sv_add_scalar(sv_scale(RSUM(sv_square(xc)), 1.0 / M), eps), -0.5);
  sv_node *S = RSUM(sv_mul(A, n)), *beta = RSUM(sv_mul(A, y));
  sv_node *c = sv_scale(RSUM(sv_mul(G, y)), 1.0 / M);
  sv_node *t1 = sv_scale(sv_mul(r, sv_add(sv_mul(S, y), sv_mul(beta, n))), -1.0 / M);
  sv_node *t2 = sv_neg(sv_mul(sv_mul(r, c), fA));
#undef RSUM
  return sv_add(t1, t2);
}

static const sv_opdef op_layer_norm_back = {.name = "layer_norm_back",
                                            .kernel = layer_norm_back_kernel,
                                            .vjp = layer_norm_back_vjp};

static sv_node *layer_norm_back(sv_node *G, sv_node *x, int nax, double eps)
{
  sv_node *in[2] = {G, x};
  sv_graph *g = sv__graph_of(2, in);
  if (!g)
    return NULL;
  sv_node *r = sv__node_new(g, &op_layer_norm_back, 2, in, &x->shape);
  if (r) {
    r->ia[0] = nax;
    r->a = eps;
  }
  return r;
}

static sv_node *layer_norm_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return layer_norm_back(G, n->in[0], n->ia[0], n->a);
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
