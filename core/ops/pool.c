/*
 * pool.c -- 2-D max-pooling, k x k windows with stride k, NCHW:
 * y[b, c, i, j] = max over x[b, c, i k .. i k + k - 1, j k .. j k + k - 1]
 * (rows and columns that do not fill a window are dropped, as PyTorch does).
 *
 * As max over axes (reduce.c): maxpool(x) = pool_pick(x, x), the value of
 * v at the FIRST maximum of x in each window (row-major; a NaN wins and
 * sticks); the subgradient sends the adjoint there, pool_back(G, x), whose
 * own adjoint is pool_pick again. x only selects (nodiff). ia[0] = k.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* Flat offset (within one [H, W] plane) of the first maximum of window
   (i, j). */
static size_t window_argmax(const double *x, size_t W, size_t k, size_t i, size_t j)
{
  size_t best = i * k * W + j * k;
  double bv = x[best];
  if (isnan(bv))
    return best;
  for (size_t p = 0; p < k; p++)
    for (size_t q = 0; q < k; q++) {
      size_t at = (i * k + p) * W + j * k + q;
      if (isnan(x[at]))
        return at;
      if (x[at] > bv) {
        bv = x[at];
        best = at;
      }
    }
  return best;
}

static const sv_opdef op_pool_pick, op_pool_back;

/* v, x [.., H, W] -> [.., H/k, W/k] */
static int pool_pick_kernel(const sv_kctx *k)
{
  const double *v = sv__kin(k, 0), *x = sv__kin(k, 1);
  const sv_shape *xs = sv__kshape(k, 1);
  size_t H = (size_t)xs->d[2], W = (size_t)xs->d[3], K = (size_t)k->n->ia[0];
  size_t Ho = H / K, Wo = W / K, planes = sv__kcount(k, 1) / (H * W);
  for (size_t pl = 0; pl < planes; pl++) {
    const double *vp = v + pl * H * W, *xp = x + pl * H * W;
    double *yp = k->y + pl * Ho * Wo;
    for (size_t i = 0; i < Ho; i++)
      for (size_t j = 0; j < Wo; j++)
        yp[i * Wo + j] = vp[window_argmax(xp, W, K, i, j)];
  }
  return 0;
}

/* G [.., H/k, W/k], x [.., H, W] -> [.., H, W] */
static int pool_back_kernel(const sv_kctx *k)
{
  const double *G = sv__kin(k, 0), *x = sv__kin(k, 1);
  size_t H = (size_t)k->ys->d[2], W = (size_t)k->ys->d[3], K = (size_t)k->n->ia[0];
  size_t Ho = H / K, Wo = W / K, planes = k->ny / (H * W);
  memset(k->y, 0, k->ny * sizeof *k->y);
  for (size_t pl = 0; pl < planes; pl++) {
    const double *gp = G + pl * Ho * Wo, *xp = x + pl * H * W;
    double *yp = k->y + pl * H * W;
    for (size_t i = 0; i < Ho; i++)
      for (size_t j = 0; j < Wo; j++)
        yp[window_argmax(xp, W, K, i, j)] = gp[i * Wo + j];
  }
  return 0;
}

static sv_node *pool_node(const sv_opdef *op, sv_node *a, sv_node *x, const sv_shape *s, int K)
{
  sv_node *in[2] = {a, x};
  sv_graph *g = sv__graph_of(2, in);
  if (!g)
    return NULL;
  sv_node *r = sv__node_new(g, op, 2, in, s);
  if (r)
    r->ia[0] = K;
  return r;
}

static sv_node *pool_pick_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return pool_node(&op_pool_back, G, n->in[1], &n->in[1]->shape, n->ia[0]);
}

static sv_node *pool_back_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return pool_node(&op_pool_pick, G, n->in[1], &n->in[0]->shape, n->ia[0]);
}

static const sv_opdef op_pool_pick = {.name = "maxpool2d", .kernel = pool_pick_kernel,
                                      .vjp = pool_pick_vjp, .nodiff = 2};
static const sv_opdef op_pool_back = {.name = "maxpool2d_back", .kernel = pool_back_kernel,
                                      .vjp = pool_back_vjp, .nodiff = 2};

sv_node *sv_maxpool2d(sv_node *x, int k)
{
  sv_graph *g = sv__graph_of(1, &x);
  if (!g)
    return NULL;
  char sx[64];
  sv__shape_format(&x->shape, sx, sizeof sx);
  if (x->shape.ndim != 4)
    return sv__graph_fail(g, "maxpool2d: x %s must be [B, C, H, W]", sx);
  if (k < 1 || x->shape.d[2] < k || x->shape.d[3] < k)
    return sv__graph_fail(g, "maxpool2d: a %dx%d window does not fit x %s", k, k, sx);
  sv_shape s = {4, {x->shape.d[0], x->shape.d[1], x->shape.d[2] / k, x->shape.d[3] / k}};
  return pool_node(&op_pool_pick, x, x, &s, k);
}
