/*
 * glu.c -- the gated linear unit along the last axis (PyTorch's nn.GLU,
 * dim = -1): z = [a, b] with a, b the two halves,
 *
 *   glu(z) = a * sigmoid(b)                       [..., 2H] -> [..., H]
 *
 * one pass instead of two slices, a sigmoid and a product. Its derivative is
 * one fused node too,
 *
 *   glu_back(G, z) = [G s, G a s (1 - s)],  s = sigmoid(b)   -> [..., 2H],
 *
 * whose own derivative rule (needed only for second order) is written in
 * ops: correct to any order, fast where training needs it.
 */
#include "ops.h"

/* the sigmoids of a row's second half, a chunk at a time (vmath.c) */
#define GCHUNK 256

/* rows and H of a [..., 2H] input */
static void rows_of(const sv_shape *s, size_t count, size_t *rows, size_t *H)
{
  *H = (size_t)s->d[s->ndim - 1] / 2;
  *rows = count / (2 * *H);
}

static int glu_kernel(const sv_kctx *k)
{
  const double *z = sv__kin(k, 0);
  size_t rows, H;
  rows_of(sv__kshape(k, 0), sv__kcount(k, 0), &rows, &H);
  double s[GCHUNK];
  for (size_t r = 0; r < rows; r++) {
    const double *a = z + r * 2 * H, *b = a + H;
    double *y = k->y + r * H;
    for (size_t j0 = 0; j0 < H; j0 += GCHUNK) {
      size_t m = H - j0 < GCHUNK ? H - j0 : GCHUNK;
      sv__vsigmoid(b + j0, s, m);
      for (size_t j = 0; j < m; j++)
        y[j0 + j] = a[j0 + j] * s[j];
    }
  }
  return 0;
}

static int glu_back_kernel(const sv_kctx *k)
{
  const double *G = sv__kin(k, 0), *z = sv__kin(k, 1);
  size_t rows, H;
  rows_of(sv__kshape(k, 1), sv__kcount(k, 1), &rows, &H);
  double sb[GCHUNK];
  for (size_t r = 0; r < rows; r++) {
    const double *a = z + r * 2 * H, *b = a + H, *g = G + r * H;
    double *da = k->y + r * 2 * H, *db = da + H;
    for (size_t j0 = 0; j0 < H; j0 += GCHUNK) {
      size_t m = H - j0 < GCHUNK ? H - j0 : GCHUNK;
      sv__vsigmoid(b + j0, sb, m);
      for (size_t j = 0; j < m; j++) {
        double s = sb[j];
        da[j0 + j] = g[j0 + j] * s;
        db[j0 + j] = g[j0 + j] * a[j0 + j] * s * (1 - s);
      }
    }
  }
  return 0;
}

static sv_node *glu_back(sv_node *G, sv_node *z);

static sv_node *glu_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return glu_back(G, n->in[0]);
}

/*
 * The derivatives of glu_back(G, z) = [G s, G a s'] (s = sigmoid(b),
 * s' = s (1 - s), s'' = s' (1 - 2 s)) with the adjoint A = [A1, A2]:
 *   d/dG = A1 s + A2 a s',   d/dz = [A2 G s', G (A1 s' + A2 a s'')],
 * in ops.
 */
static sv_node *glu_back_vjp(sv_node *n, int i, sv_node *A)
{
  sv_node *G = n->in[0], *z = n->in[1];
  int H = z->shape.d[z->shape.ndim - 1] / 2;
  sv_node *a = sv_slice(z, -1, 0, H), *s = sv_sigmoid(sv_slice(z, -1, H, H));
  sv_node *A1 = sv_slice(A, -1, 0, H), *A2 = sv_slice(A, -1, H, H);
  sv_node *s1 = sv_mul(s, sv_add_scalar(sv_neg(s), 1.0));
  if (i == 0)
    return sv_add(sv_mul(A1, s), sv_mul(sv_mul(A2, a), s1));
  sv_node *s2 = sv_mul(s1, sv_add_scalar(sv_scale(s, -2.0), 1.0));
  sv_node *parts[2] = {sv_mul(sv_mul(A2, G), s1),
                       sv_mul(G, sv_add(sv_mul(A1, s1), sv_mul(sv_mul(A2, a), s2)))};
  return sv_concat(2, parts, -1);
}

static const sv_opdef op_glu = {.name = "glu", .kernel = glu_kernel, .vjp = glu_vjp};
static const sv_opdef op_glu_back = {.name = "glu_back", .kernel = glu_back_kernel,
                                     .vjp = glu_back_vjp};

static sv_node *glu_back(sv_node *G, sv_node *z)
{
  sv_node *in[2] = {G, z};
  sv_graph *g = sv__graph_of(2, in);
  if (!g)
    return NULL;
  return sv__node_new(g, &op_glu_back, 2, in, &z->shape);
}

sv_node *sv_glu(sv_node *z)
{
  sv_graph *g = sv__graph_of(1, &z);
  if (!g)
    return NULL;
  int nd = z->shape.ndim;
  char sz[64];
  sv__shape_format(&z->shape, sz, sizeof sz);
  if (nd < 1 || z->shape.d[nd - 1] == SV_BATCH || z->shape.d[nd - 1] % 2)
    return sv__graph_fail(g, "glu: the last axis of %s must have an even size (two halves)", sz);
  sv_shape t = z->shape;
  t.d[nd - 1] /= 2;
  return sv__node_new(g, &op_glu, 1, &z, &t);
}
