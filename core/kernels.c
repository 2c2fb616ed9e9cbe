/*
 * kernels.c -- running a plan: one kernel per op over resolved buffers.
 *
 * Shapes are padded on the left to 4 axes; a broadcast input gets stride 0
 * on the axes it is broadcast along. The common cases (same shapes, a
 * scalar operand) take flat loops.
 */
#include "internal.h"
#include "plan.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Left-pad a shape with 1s to 4 axes (numpy's right alignment). */
static void pad4(const sv_shape *s, size_t d[4])
{
  for (int i = 0; i < 4; i++)
    d[i] = 1;
  for (int i = 0; i < s->ndim; i++)
    d[4 - s->ndim + i] = (size_t)s->d[i];
}

/* Strides of `in` (right-aligned within an output of nd axes) as seen from
   the output's 4-axis index space: 0 where `in` is broadcast. */
static void bstrides(const sv_shape *in, const size_t out[4], size_t st[4])
{
  size_t d[4], acc = 1;
  pad4(in, d);
  for (int i = 3; i >= 0; i--) {
    st[i] = (d[i] == 1 && out[i] != 1) ? 0 : acc;
    acc *= d[i];
  }
}

#define BINARY_LOOP(EXPR)                                                          \
  do {                                                                             \
    if (na == no && nb == no) {                                                    \
      for (size_t i = 0; i < no; i++) {                                            \
        double x = a[i], y = b[i];                                                 \
        o[i] = (EXPR);                                                             \
      }                                                                            \
    } else if (nb == 1) {                                                          \
      double y = b[0];                                                             \
      for (size_t i = 0; i < no; i++) {                                            \
        double x = a[i];                                                           \
        o[i] = (EXPR);                                                             \
      }                                                                            \
    } else if (na == 1) {                                                          \
      double x = a[0];                                                             \
      for (size_t i = 0; i < no; i++) {                                            \
        double y = b[i];                                                           \
        o[i] = (EXPR);                                                             \
      }                                                                            \
    } else {                                                                       \
      size_t d[4], sa[4], sb[4], k = 0;                                            \
      pad4(so, d);                                                              \
      bstrides(sha, d, sa);                                                        \
      bstrides(shb, d, sb);                                                        \
      for (size_t i0 = 0; i0 < d[0]; i0++)                                         \
        for (size_t i1 = 0; i1 < d[1]; i1++)                                       \
          for (size_t i2 = 0; i2 < d[2]; i2++) {                                   \
            const double *pa = a + i0 * sa[0] + i1 * sa[1] + i2 * sa[2];           \
            const double *pb = b + i0 * sb[0] + i1 * sb[1] + i2 * sb[2];           \
            for (size_t i3 = 0; i3 < d[3]; i3++) {                                 \
              double x = pa[i3 * sa[3]], y = pb[i3 * sb[3]];                       \
              o[k++] = (EXPR);                                                     \
            }                                                                      \
          }                                                                        \
    }                                                                              \
  } while (0)

static void binary(sv_op op, const double *a, const sv_shape *sha, size_t na, const double *b,
                   const sv_shape *shb, size_t nb, double *o, const sv_shape *so, size_t no)
{
  switch (op) {
  case OP_ADD: BINARY_LOOP(x + y); break;
  case OP_SUB: BINARY_LOOP(x - y); break;
  case OP_MUL: BINARY_LOOP(x * y); break;
  case OP_DIV: BINARY_LOOP(x / y); break;
  case OP_TANH_BACK: BINARY_LOOP(x * (1.0 - y * y)); break;
  default: break;
  }
}

static double sigmoid(double x)
{
  if (x >= 0)
    return 1.0 / (1.0 + exp(-x));
  double e = exp(x);
  return e / (1.0 + e);
}

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

#define UNARY_LOOP(EXPR)                                                           \
  for (size_t i = 0; i < n; i++) {                                                 \
    double x = a[i];                                                               \
    o[i] = (EXPR);                                                                 \
  }

static void unary(const sv_node *nd, const double *a, double *o, size_t n)
{
  double c = nd->a;
  switch (nd->op) {
  case OP_NEG: UNARY_LOOP(-x); break;
  case OP_SQUARE: UNARY_LOOP(x * x); break;
  case OP_POW: UNARY_LOOP(pow(x, c)); break;
  case OP_EXP: UNARY_LOOP(exp(x)); break;
  case OP_LOG: UNARY_LOOP(log(x)); break;
  case OP_SQRT: UNARY_LOOP(sqrt(x)); break;
  case OP_TANH: UNARY_LOOP(tanh(x)); break;
  case OP_SIN: UNARY_LOOP(sin(x)); break;
  case OP_COS: UNARY_LOOP(cos(x)); break;
  case OP_SIGMOID: UNARY_LOOP(sigmoid(x)); break;
  case OP_SOFTPLUS: UNARY_LOOP(softplus(x)); break;
  case OP_SCALE: UNARY_LOOP(c * x); break;
  case OP_ADD_SCALAR: UNARY_LOOP(x + c); break;
  default: break;
  }
}

/* out (small) = sum of in (big) over its broadcast axes, times `scale`. */
static void sum_to(const double *in, const sv_shape *big, double *o, const sv_shape *small,
                   size_t nsmall, double scale)
{
  size_t d[4], so[4];
  pad4(big, d);
  bstrides(small, d, so);
  memset(o, 0, nsmall * sizeof *o);
  if (nsmall == 1) {
    double s = 0;
    size_t n = d[0] * d[1] * d[2] * d[3];
    for (size_t i = 0; i < n; i++)
      s += in[i];
    o[0] = s * scale;
    return;
  }
  size_t k = 0;
  for (size_t i0 = 0; i0 < d[0]; i0++)
    for (size_t i1 = 0; i1 < d[1]; i1++)
      for (size_t i2 = 0; i2 < d[2]; i2++) {
        double *po = o + i0 * so[0] + i1 * so[1] + i2 * so[2];
        for (size_t i3 = 0; i3 < d[3]; i3++)
          po[i3 * so[3]] += in[k++];
      }
  if (scale != 1.0)
    for (size_t i = 0; i < nsmall; i++)
      o[i] *= scale;
}

/* out (big) = in (small) broadcast, times `scale`. */
static void broadcast(const double *in, const sv_shape *small, double *o, const sv_shape *big,
                      size_t nbig, double scale)
{
  size_t d[4], si[4], k = 0;
  if (sv__shape_count(small, 1) == 1) {
    double v = in[0] * scale;
    for (size_t i = 0; i < nbig; i++)
      o[i] = v;
    return;
  }
  pad4(big, d);
  bstrides(small, d, si);
  for (size_t i0 = 0; i0 < d[0]; i0++)
    for (size_t i1 = 0; i1 < d[1]; i1++)
      for (size_t i2 = 0; i2 < d[2]; i2++) {
        const double *pi = in + i0 * si[0] + i1 * si[1] + i2 * si[2];
        for (size_t i3 = 0; i3 < d[3]; i3++)
          o[k++] = pi[i3 * si[3]] * scale;
      }
}

/* Elements before / after an axis. */
static void split_axis(const sv_shape *s, int axis, size_t *outer, size_t *inner)
{
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < axis; i++)
    *outer *= (size_t)s->d[i];
  for (int i = axis + 1; i < s->ndim; i++)
    *inner *= (size_t)s->d[i];
}

static void run_step(sv_plan *p, int id)
{
  const sv_node *nd = p->g->nodes[id];
  double *o = p->buf[id];
  const sv_shape *so = &p->shape[id];
  size_t no = p->count[id];
  int a_id = nd->nin > 0 ? nd->in[0]->id : 0, b_id = nd->nin > 1 ? nd->in[1]->id : 0;
  const double *a = nd->nin > 0 ? p->buf[a_id] : NULL, *b = nd->nin > 1 ? p->buf[b_id] : NULL;

  switch (nd->op) {
  case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_TANH_BACK:
    binary(nd->op, a, &p->shape[a_id], p->count[a_id], b, &p->shape[b_id], p->count[b_id], o, so, no);
    break;
  case OP_NEG: case OP_SQUARE: case OP_POW: case OP_EXP: case OP_LOG: case OP_SQRT:
  case OP_TANH: case OP_SIN: case OP_COS: case OP_SIGMOID: case OP_SOFTPLUS:
  case OP_SCALE: case OP_ADD_SCALAR:
    unary(nd, a, o, no);
    break;
  case OP_MATMUL: {
    const sv_shape *sa = &p->shape[a_id], *sb = &p->shape[b_id];
    int ta = nd->ia[0], tb = nd->ia[1];
    int M = so->d[0], N = so->d[1], K = ta ? sa->d[0] : sa->d[1];
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
                1.0, a, sa->d[1], b, sb->d[1], 0.0, o, N);
    break;
  }
  case OP_SUM_TO: {
    double scale = nd->ia[0] ? (double)no / (double)p->count[a_id] : 1.0;
    sum_to(a, &p->shape[a_id], o, so, no, scale);
    break;
  }
  case OP_BROADCAST: {
    double scale = nd->ia[0] ? (double)p->count[a_id] / (double)no : 1.0;
    broadcast(a, &p->shape[a_id], o, so, no, scale);
    break;
  }
  case OP_TRANSPOSE: {
    size_t r = (size_t)p->shape[a_id].d[0], c = (size_t)p->shape[a_id].d[1];
    for (size_t i = 0; i < r; i++)
      for (size_t j = 0; j < c; j++)
        o[j * r + i] = a[i * c + j];
    break;
  }
  case OP_SLICE: {
    size_t outer, inner;
    int axis = nd->ia[0];
    size_t start = (size_t)nd->ia[1], len = (size_t)nd->ia[2], full = (size_t)p->shape[a_id].d[axis];
    split_axis(so, axis, &outer, &inner);
    for (size_t k = 0; k < outer; k++)
      memcpy(o + k * len * inner, a + (k * full + start) * inner, len * inner * sizeof *o);
    break;
  }
  case OP_CONCAT: {
    size_t outer, inner, off = 0;
    int axis = nd->ia[0];
    size_t total = (size_t)so->d[axis];
    split_axis(so, axis, &outer, &inner);
    for (int j = 0; j < nd->nin; j++) {
      int pid = nd->in[j]->id;
      size_t mid = (size_t)p->shape[pid].d[axis];
      const double *src = p->buf[pid];
      for (size_t k = 0; k < outer; k++)
        memcpy(o + (k * total + off) * inner, src + k * mid * inner, mid * inner * sizeof *o);
      off += mid;
    }
    break;
  }
  case OP_GATHER: {
    size_t row = no / (size_t)so->d[0];
    for (int i = 0; i < nd->nidx; i++)
      memcpy(o + (size_t)i * row, a + (size_t)nd->idx[i] * row, row * sizeof *o);
    break;
  }
  case OP_SCATTER_ADD: {
    size_t row = no / (size_t)so->d[0];
    memset(o, 0, no * sizeof *o);
    for (int i = 0; i < nd->nidx; i++) {
      double *dst = o + (size_t)nd->idx[i] * row;
      const double *src = a + (size_t)i * row;
      for (size_t k = 0; k < row; k++)
        dst[k] += src[k];
    }
    break;
  }
  case OP_INPUT: case OP_PARAM: case OP_CONST: case OP_RESHAPE: case OP_COUNT:
    break;
  }
}

int sv_plan_run(sv_plan *p)
{
  if (!p)
    return sv_fail("plan run: no plan");
  if (p->dirty && sv__plan_resolve(p) < 0)
    return -1;
  for (int s = 0; s < p->nsteps; s++)
    run_step(p, p->steps[s]);
  return 0;
}
