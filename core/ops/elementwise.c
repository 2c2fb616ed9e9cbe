/*
 * elementwise.c -- ops that map elements to elements: the binary ops with
 * numpy broadcasting (add, sub, mul, div, atan2) and the unary maths (neg, square,
 * pow, exp, ln, sqrt, tanh, sin, cos, sigmoid, softplus, erf, gelu, scale,
 * add_scalar), with the fused derivative nodes that PINN and classifier
 * graphs are full of (tanh_back, gelu_deriv).
 *
 * Each op: kernel, derivative rule, descriptor, builder. A binary op's rule
 * sums its contribution back to the input's shape (sv__unbroadcast).
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Binary ops with broadcasting                                        */
/* ------------------------------------------------------------------ */

/* One loop per op: flat when the shapes match or one side is a scalar,
   strided over 4 padded axes otherwise. */
#define BINARY_KERNEL(fname, EXPR)                                                  \
  static int fname(const sv_kctx *k)                                                \
  {                                                                                 \
    const double *a = sv__kin_at(k, 0), *b = sv__kin_at(k, 1);                      \
    size_t na = sv__kcount(k, 0), nb = sv__kcount(k, 1), no = k->ny;                \
    double *o = k->y + k->off;                                                      \
    if (na == no && nb == no) {                                                     \
      no = k->len;                                                                  \
      for (size_t i = 0; i < no; i++) {                                             \
        double x = a[i], y = b[i];                                                  \
        o[i] = (EXPR);                                                              \
      }                                                                             \
    } else if (nb == 1 && (na == no || na == 1)) {                                  \
      double y = b[0];                                                              \
      no = na == 1 ? no : k->len; /* both scalars: no is the output's count */      \
      for (size_t i = 0; i < no; i++) {                                             \
        double x = a[i];                                                            \
        o[i] = (EXPR);                                                              \
      }                                                                             \
    } else if (na == 1 && nb == no) {                                               \
      double x = a[0];                                                              \
      no = k->len;                                                                  \
      for (size_t i = 0; i < no; i++) {                                             \
        double y = b[i];                                                            \
        o[i] = (EXPR);                                                              \
      }                                                                             \
    } else { /* broadcasting: never fused (off 0, len ny) */                        \
      size_t d[4], sa[4], sb[4], m = 0;                                             \
      sv__pad4(k->ys, d);                                                           \
      sv__bstrides(sv__kshape(k, 0), d, sa);                                        \
      sv__bstrides(sv__kshape(k, 1), d, sb);                                        \
      for (size_t i0 = 0; i0 < d[0]; i0++)                                          \
        for (size_t i1 = 0; i1 < d[1]; i1++)                                        \
          for (size_t i2 = 0; i2 < d[2]; i2++) {                                    \
            const double *pa = a + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];            \
            const double *pb = b + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];            \
            double *po = o + m;                                                     \
            size_t n3 = d[3];                                                       \
            /* unit-stride inner loops (a bias row, a column) vectorise */          \
            if (sa[3] == 1 && sb[3] == 1) {                                         \
              for (size_t i3 = 0; i3 < n3; i3++) {                                  \
                double x = pa[i3], y = pb[i3];                                      \
                po[i3] = (EXPR);                                                    \
              }                                                                     \
            } else if (sa[3] == 1 && sb[3] == 0) {                                  \
              double y = pb[0];                                                     \
              for (size_t i3 = 0; i3 < n3; i3++) {                                  \
                double x = pa[i3];                                                  \
                po[i3] = (EXPR);                                                    \
              }                                                                     \
            } else if (sa[3] == 0 && sb[3] == 1) {                                  \
              double x = pa[0];                                                     \
              for (size_t i3 = 0; i3 < n3; i3++) {                                  \
                double y = pb[i3];                                                  \
                po[i3] = (EXPR);                                                    \
              }                                                                     \
            } else {                                                                \
              for (size_t i3 = 0; i3 < n3; i3++) {                                  \
                double x = pa[i3 * sa[3]], y = pb[i3 * sb[3]];                      \
                po[i3] = (EXPR);                                                    \
              }                                                                     \
            }                                                                       \
            m += n3;                                                                \
          }                                                                         \
    }                                                                               \
    return 0;                                                                       \
  }

static sv_node *binary(const sv_opdef *op, sv_node *a, sv_node *b)
{
  sv_node *in[2] = {a, b};
  sv_graph *g = sv__graph_of(2, in);
  sv_shape s;
  if (!g)
    return NULL;
  if (sv__shape_broadcast(&a->shape, &b->shape, &s) < 0) {
    char sa[64], sb[64];
    sv__shape_format(&a->shape, sa, sizeof sa);
    sv__shape_format(&b->shape, sb, sizeof sb);
    return sv__graph_fail(g, "%s: shapes %s and %s do not broadcast", op->name, sa, sb);
  }
  return sv__node_new(g, op, 2, in, &s);
}

/* Folding: the other operand, when it already has the output's shape. */
static int fold_identity(const sv_fold *f, int id, int keep, int other, double v)
{
  int a = sv__fold_input(f, id, keep), b = sv__fold_input(f, id, other);
  return sv__fold_is_const(f, b, v) && sv__fold_same_shape(f, a, id) ? a : -1;
}

/* Per-row rules (jacobian_rows.c): the contribution before it is summed
   over the batch. */
static sv_node *add_vjp_rows(sv_node *n, int i, sv_node *G) { return sv__rows_unbroadcast(G, n->in[i]); }
static sv_node *sub_vjp_rows(sv_node *n, int i, sv_node *G)
{
  return sv__rows_unbroadcast(i == 0 ? G : sv_neg(G), n->in[i]);
}
static sv_node *mul_vjp_rows(sv_node *n, int i, sv_node *G)
{
  return sv__rows_unbroadcast(sv_mul(G, n->in[1 - i]), n->in[i]);
}
static sv_node *div_vjp_rows(sv_node *n, int i, sv_node *G)
{
  sv_node *b = n->in[1];
  return sv__rows_unbroadcast(i == 0 ? sv_div(G, b) : sv_neg(sv_div(sv_mul(G, n), b)), n->in[i]);
}

/* ---------- add ---------- */

BINARY_KERNEL(add_kernel, x + y)
static sv_node *add_vjp(sv_node *n, int i, sv_node *G) { return sv__unbroadcast(G, n->in[i]); }
static int add_fold(const sv_fold *f, int id) /* x + 0, 0 + x */
{
  int r = fold_identity(f, id, 0, 1, 0.0);
  return r >= 0 ? r : fold_identity(f, id, 1, 0, 0.0);
}
static const sv_opdef op_add = {.name = "add", .flags = SV_OPF_ELEMENTWISE, .kernel = add_kernel, .vjp = add_vjp, .fold = add_fold,
                                .vjp_rows = add_vjp_rows};
sv_node *sv_add(sv_node *a, sv_node *b) { return binary(&op_add, a, b); }

/* ---------- sub ---------- */

BINARY_KERNEL(sub_kernel, x - y)
static sv_node *sub_vjp(sv_node *n, int i, sv_node *G)
{
  return sv__unbroadcast(i == 0 ? G : sv_neg(G), n->in[i]);
}
static int sub_fold(const sv_fold *f, int id) { return fold_identity(f, id, 0, 1, 0.0); } /* x - 0 */
static const sv_opdef op_sub = {.name = "sub", .flags = SV_OPF_ELEMENTWISE, .kernel = sub_kernel, .vjp = sub_vjp, .fold = sub_fold,
                                .vjp_rows = sub_vjp_rows};
sv_node *sv_sub(sv_node *a, sv_node *b) { return binary(&op_sub, a, b); }

/* ---------- mul ---------- */

BINARY_KERNEL(mul_kernel, x * y)
static sv_node *mul_vjp(sv_node *n, int i, sv_node *G)
{
  return sv__unbroadcast(sv_mul(G, n->in[1 - i]), n->in[i]);
}
static int mul_fold(const sv_fold *f, int id) /* x * 1, 1 * x */
{
  int r = fold_identity(f, id, 0, 1, 1.0);
  return r >= 0 ? r : fold_identity(f, id, 1, 0, 1.0);
}
static const sv_opdef op_mul = {.name = "mul", .flags = SV_OPF_ELEMENTWISE, .kernel = mul_kernel, .vjp = mul_vjp, .fold = mul_fold,
                                .vjp_rows = mul_vjp_rows};
sv_node *sv_mul(sv_node *a, sv_node *b) { return binary(&op_mul, a, b); }

/* ---------- div ---------- */

BINARY_KERNEL(div_kernel, x / y)
/* d(a/b)/da = 1/b; d(a/b)/db = -(a/b)/b */
static sv_node *div_vjp(sv_node *n, int i, sv_node *G)
{
  sv_node *a = n->in[0], *b = n->in[1];
  if (i == 0)
    return sv__unbroadcast(sv_div(G, b), a);
  return sv__unbroadcast(sv_neg(sv_div(sv_mul(G, n), b)), b);
}
static int div_fold(const sv_fold *f, int id) { return fold_identity(f, id, 0, 1, 1.0); } /* x / 1 */
static const sv_opdef op_div = {.name = "div", .flags = SV_OPF_ELEMENTWISE, .kernel = div_kernel, .vjp = div_vjp, .fold = div_fold,
                                .vjp_rows = div_vjp_rows};
sv_node *sv_div(sv_node *a, sv_node *b) { return binary(&op_div, a, b); }

/* ---------- atan2(a, b): the angle of the point (b, a), in (-pi, pi] ---------- */

BINARY_KERNEL(atan2_kernel, atan2(x, y))
/* d/da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2) */
static sv_node *atan2_vjp(sv_node *n, int i, sv_node *G)
{
  sv_node *a = n->in[0], *b = n->in[1];
  sv_node *r2 = sv_add(sv_square(a), sv_square(b));
  if (i == 0)
    return sv__unbroadcast(sv_div(sv_mul(G, b), r2), a);
  return sv__unbroadcast(sv_neg(sv_div(sv_mul(G, a), r2)), b);
}
static const sv_opdef op_atan2 = {.name = "atan2", .flags = SV_OPF_ELEMENTWISE, .kernel = atan2_kernel,
                                   .vjp = atan2_vjp};
sv_node *sv_atan2(sv_node *a, sv_node *b) { return binary(&op_atan2, a, b); }

/* ---------- tanh_back: A (1 - y^2), the adjoint through tanh ---------- */

static sv_node *tanh_back(sv_node *G, sv_node *y);
BINARY_KERNEL(tanh_back_kernel, x * (1.0 - y * y))
/* n = A (1 - y^2): dA = G (1 - y^2), dy = -2 G A y */
static sv_node *tanh_back_vjp(sv_node *n, int i, sv_node *G)
{
  sv_node *A = n->in[0], *y = n->in[1];
  if (i == 0)
    return tanh_back(G, y);
  return sv_mul(sv_mul(G, A), sv_scale(y, -2.0));
}
static const sv_opdef op_tanh_back = {.name = "tanh_back", .flags = SV_OPF_ELEMENTWISE, .kernel = tanh_back_kernel,
                                      .vjp = tanh_back_vjp};
/* One node where the shapes agree (the common case), the ops otherwise. */
static sv_node *tanh_back(sv_node *G, sv_node *y)
{
  sv_node *in[2] = {G, y};
  sv_graph *g = sv__graph_of(2, in);
  if (!g)
    return NULL;
  if (!sv__shape_equal(&G->shape, &y->shape))
    return sv_mul(G, sv_add_scalar(sv_neg(sv_square(y)), 1.0));
  return sv__node_new(g, &op_tanh_back, 2, in, &y->shape);
}

/* ------------------------------------------------------------------ */
/* Unary ops                                                           */
/* ------------------------------------------------------------------ */

/* x is the input element, c the node's real attribute. */
#define UNARY_KERNEL(fname, EXPR)                                                   \
  static int fname(const sv_kctx *k)                                                \
  {                                                                                 \
    const double *a = sv__kin_at(k, 0);                                             \
    double *o = k->y + k->off, c = k->n->a;                                         \
    (void)c;                                                                        \
    for (size_t i = 0; i < k->len; i++) {                                           \
      double x = a[i];                                                              \
      o[i] = (EXPR);                                                                \
    }                                                                               \
    return 0;                                                                       \
  }

static sv_node *unary(const sv_opdef *op, sv_node *a, double attr)
{
  sv_graph *g = sv__graph_of(1, &a);
  if (!g)
    return NULL;
  sv_node *n = sv__node_new(g, op, 1, &a, &a->shape);
  if (n)
    n->a = attr;
  return n;
}

/* ---------- neg ---------- */

UNARY_KERNEL(neg_kernel, -x)
static sv_node *neg_vjp(sv_node *n, int i, sv_node *G) { (void)n, (void)i; return sv_neg(G); }
static const sv_opdef op_neg = {.name = "neg", .flags = SV_OPF_ELEMENTWISE, .kernel = neg_kernel, .vjp = neg_vjp};
sv_node *sv_neg(sv_node *a) { return unary(&op_neg, a, 0); }

/* ---------- square ---------- */

UNARY_KERNEL(square_kernel, x * x)
static sv_node *square_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return sv_mul(G, sv_scale(n->in[0], 2.0));
}
static const sv_opdef op_square = {.name = "square", .flags = SV_OPF_ELEMENTWISE, .kernel = square_kernel, .vjp = square_vjp};
sv_node *sv_square(sv_node *a) { return unary(&op_square, a, 0); }

/* ---------- pow: a^c for a constant c ---------- */

UNARY_KERNEL(pow_kernel, pow(x, c))
static sv_node *pow_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  sv_node *a = n->in[0];
  if (n->a == 1.0)
    return G;
  if (n->a == 2.0)
    return sv_mul(G, sv_scale(a, 2.0));
  return sv_mul(G, sv_scale(sv_pow(a, n->a - 1.0), n->a));
}
static const sv_opdef op_pow = {.name = "pow", .flags = SV_OPF_ELEMENTWISE, .kernel = pow_kernel, .vjp = pow_vjp};
sv_node *sv_pow(sv_node *a, double p) { return unary(&op_pow, a, p); }

/* ---------- exp ---------- */

/* exp, tanh, sin, cos: vectorised (SLEEF, 1 ulp; see vmath.c) */
#define VMATH_KERNEL(fname, vfn)                                                    \
  static int fname(const sv_kctx *k)                                                \
  {                                                                                 \
    vfn(sv__kin_at(k, 0), k->y + k->off, k->len);                                   \
    return 0;                                                                       \
  }

VMATH_KERNEL(exp_kernel, sv__vexp)
static sv_node *exp_vjp(sv_node *n, int i, sv_node *G) { (void)i; return sv_mul(G, n); }
static const sv_opdef op_exp = {.name = "exp", .flags = SV_OPF_ELEMENTWISE, .kernel = exp_kernel, .vjp = exp_vjp};
sv_node *sv_exp(sv_node *a) { return unary(&op_exp, a, 0); }

/* ---------- log ---------- */

UNARY_KERNEL(log_kernel, log(x))
static sv_node *log_vjp(sv_node *n, int i, sv_node *G) { (void)i; return sv_div(G, n->in[0]); }
static const sv_opdef op_log = {.name = "log", .flags = SV_OPF_ELEMENTWISE, .kernel = log_kernel, .vjp = log_vjp};
sv_node *sv_ln(sv_node *a) { return unary(&op_log, a, 0); }

/* ---------- sqrt ---------- */

UNARY_KERNEL(sqrt_kernel, sqrt(x))
static sv_node *sqrt_vjp(sv_node *n, int i, sv_node *G) { (void)i; return sv_div(sv_scale(G, 0.5), n); }
static const sv_opdef op_sqrt = {.name = "sqrt", .flags = SV_OPF_ELEMENTWISE, .kernel = sqrt_kernel, .vjp = sqrt_vjp};
sv_node *sv_sqrt(sv_node *a) { return unary(&op_sqrt, a, 0); }

/* ---------- tanh: G (1 - tanh^2), fused ---------- */

VMATH_KERNEL(tanh_kernel, sv__vtanh)
static sv_node *tanh_vjp(sv_node *n, int i, sv_node *G) { (void)i; return tanh_back(G, n); }
static const sv_opdef op_tanh = {.name = "tanh", .flags = SV_OPF_ELEMENTWISE, .kernel = tanh_kernel, .vjp = tanh_vjp};
sv_node *sv_tanh(sv_node *a) { return unary(&op_tanh, a, 0); }

/* ---------- sin, cos ---------- */

VMATH_KERNEL(sin_kernel, sv__vsin)
static sv_node *sin_vjp(sv_node *n, int i, sv_node *G) { (void)i; return sv_mul(G, sv_cos(n->in[0])); }
static const sv_opdef op_sin = {.name = "sin", .flags = SV_OPF_ELEMENTWISE, .kernel = sin_kernel, .vjp = sin_vjp};
sv_node *sv_sin(sv_node *a) { return unary(&op_sin, a, 0); }

VMATH_KERNEL(cos_kernel, sv__vcos)
static sv_node *cos_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return sv_neg(sv_mul(G, sv_sin(n->in[0])));
}
static const sv_opdef op_cos = {.name = "cos", .flags = SV_OPF_ELEMENTWISE, .kernel = cos_kernel, .vjp = cos_vjp};
sv_node *sv_cos(sv_node *a) { return unary(&op_cos, a, 0); }

/* ---------- sigmoid: s' = s (1 - s) ---------- */

/* through sv__vexp (vmath.c) */
static int sigmoid_kernel(const sv_kctx *k)
{
  sv__vsigmoid(sv__kin_at(k, 0), k->y + k->off, k->len);
  return 0;
}
static sv_node *sigmoid_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return sv_mul(G, sv_mul(n, sv_add_scalar(sv_neg(n), 1.0)));
}
static const sv_opdef op_sigmoid = {.name = "sigmoid", .flags = SV_OPF_ELEMENTWISE, .kernel = sigmoid_kernel, .vjp = sigmoid_vjp};
sv_node *sv_sigmoid(sv_node *a) { return unary(&op_sigmoid, a, 0); }

/* ---------- softplus: log(1 + e^x), stable; derivative sigmoid ---------- */

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }
UNARY_KERNEL(softplus_kernel, softplus(x))
static sv_node *softplus_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return sv_mul(G, sv_sigmoid(n->in[0]));
}
static const sv_opdef op_softplus = {.name = "softplus", .flags = SV_OPF_ELEMENTWISE, .kernel = softplus_kernel,
                                     .vjp = softplus_vjp};
sv_node *sv_softplus(sv_node *a) { return unary(&op_softplus, a, 0); }

/* ---------- erf: erf'(x) = 2/sqrt(pi) exp(-x^2) ---------- */

UNARY_KERNEL(erf_kernel, erf(x))
static sv_node *erf_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  const double two_over_sqrt_pi = 1.12837916709551257390;
  return sv_mul(G, sv_scale(sv_exp(sv_neg(sv_square(n->in[0]))), two_over_sqrt_pi));
}
static const sv_opdef op_erf = {.name = "erf", .flags = SV_OPF_ELEMENTWISE, .kernel = erf_kernel, .vjp = erf_vjp};
sv_node *sv_erf(sv_node *a) { return unary(&op_erf, a, 0); }

/* ---------- gelu (the erf form, PyTorch's default nn.GELU) ----------
 *
 *   gelu(x)  = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
 *   gelu'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
 *   gelu''(x) = phi(x) (2 - x^2)
 *
 * gelu' is one fused node (gelu_deriv) so that training's backward pass is
 * one loop; its own rule is written in ops. */

/* erfc and exp a chunk at a time through sv__verfc and sv__vexp (vmath.c) */
#define GELU_CHUNK 256

static int gelu_deriv_kernel(const sv_kctx *k)
{
  const double *a = sv__kin_at(k, 0);
  double *y = k->y + k->off, t[GELU_CHUNK], u[GELU_CHUNK];
  for (size_t i0 = 0; i0 < k->len; i0 += GELU_CHUNK) {
    size_t m = k->len - i0 < GELU_CHUNK ? k->len - i0 : GELU_CHUNK;
    const double *x = a + i0;
    for (size_t j = 0; j < m; j++) {
      t[j] = -x[j] * 0.70710678118654752440;
      u[j] = -0.5 * x[j] * x[j];
    }
    sv__verfc(t, t, m);
    sv__vexp(u, u, m);
    for (size_t j = 0; j < m; j++)
      y[i0 + j] = 0.5 * t[j] + x[j] * 0.39894228040143267794 * u[j];
  }
  return 0;
}
static sv_node *gelu_deriv_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  sv_node *x = n->in[0];
  sv_node *pdf = sv_scale(sv_exp(sv_scale(sv_square(x), -0.5)), 0.39894228040143267794);
  return sv_mul(G, sv_mul(pdf, sv_add_scalar(sv_neg(sv_square(x)), 2.0)));
}
static const sv_opdef op_gelu_deriv = {.name = "gelu_deriv", .flags = SV_OPF_ELEMENTWISE, .kernel = gelu_deriv_kernel,
                                       .vjp = gelu_deriv_vjp};

static int gelu_kernel(const sv_kctx *k)
{
  const double *a = sv__kin_at(k, 0);
  double *y = k->y + k->off, t[GELU_CHUNK];
  for (size_t i0 = 0; i0 < k->len; i0 += GELU_CHUNK) {
    size_t m = k->len - i0 < GELU_CHUNK ? k->len - i0 : GELU_CHUNK;
    const double *x = a + i0;
    for (size_t j = 0; j < m; j++)
      t[j] = -x[j] * 0.70710678118654752440;
    sv__verfc(t, t, m);
    for (size_t j = 0; j < m; j++)
      y[i0 + j] = x[j] * 0.5 * t[j];
  }
  return 0;
}
static sv_node *gelu_vjp(sv_node *n, int i, sv_node *G)
{
  (void)i;
  return sv_mul(G, unary(&op_gelu_deriv, n->in[0], 0));
}
static const sv_opdef op_gelu = {.name = "gelu", .flags = SV_OPF_ELEMENTWISE, .kernel = gelu_kernel, .vjp = gelu_vjp};
sv_node *sv_gelu(sv_node *a) { return unary(&op_gelu, a, 0); }

/* ---------- scale: c a ---------- */

UNARY_KERNEL(scale_kernel, c * x)
static sv_node *scale_vjp(sv_node *n, int i, sv_node *G) { (void)i; return sv_scale(G, n->a); }
static int scale_fold(const sv_fold *f, int id)
{
  return f->p->g->nodes[id]->a == 1.0 ? sv__fold_input(f, id, 0) : -1;
}
static const sv_opdef op_scale = {.name = "scale", .flags = SV_OPF_ELEMENTWISE, .kernel = scale_kernel, .vjp = scale_vjp,
                                  .fold = scale_fold};
sv_node *sv_scale(sv_node *a, double s) { return unary(&op_scale, a, s); }

/* ---------- add_scalar: a + c ---------- */

UNARY_KERNEL(add_scalar_kernel, x + c)
static sv_node *add_scalar_vjp(sv_node *n, int i, sv_node *G) { (void)n, (void)i; return G; }
static int add_scalar_fold(const sv_fold *f, int id)
{
  return f->p->g->nodes[id]->a == 0.0 ? sv__fold_input(f, id, 0) : -1;
}
static const sv_opdef op_add_scalar = {.name = "add_scalar", .flags = SV_OPF_ELEMENTWISE, .kernel = add_scalar_kernel,
                                       .vjp = add_scalar_vjp, .fold = add_scalar_fold};
sv_node *sv_add_scalar(sv_node *a, double s) { return unary(&op_add_scalar, a, s); }
