/*
 * jet.c -- the activation of a Taylor-mode (jet) layer.
 *
 * A jet stack S [..., J, w] holds, for each row, the pre-activation h and
 * its derivatives along d input directions: J = 1 + order d rows,
 *
 *   S[0] = h,  S[1 + k] = h'_k (k < d),  S[1 + d + k] = h''_k (order 2),
 *
 * where ' is d/dx_k. jet_act(S, b) adds the bias to the value row and
 * pushes the stack through a smooth activation s (chain rule, Faa di Bruno):
 *
 *   a = s(h),  a'_k = s'(h) h'_k,  a''_k = s'(h) h''_k + s''(h) h'_k^2.
 *
 * Its adjoint is one fused node too (jet_act_back(G, Y, S, b), which takes
 * s', s'', s''' from the output Y where it can), with adjoint rows
 * (A, A'_k, A''_k):
 *
 *   dh    = A s' + sum_k [A'_k s'' h'_k + A''_k (s'' h''_k + s''' h'_k^2)]
 *   dh'_k = A'_k s' + 2 A''_k s'' h'_k
 *   dh''_k = A''_k s'
 *
 * and the bias gets the sum of dh over the rows. jet_act_back's own rule
 * differentiates the same formula written in ops (so weight Hessians work,
 * if slowly); training needs only the fused pair.
 *
 * ia: [0] activation (sv_activation), [1] d, [2] order.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

/* Rows (leading elements) and columns of a stack [..., J, w]. */
static void stack_dims(const sv_shape *s, size_t *rows, size_t *J, size_t *w)
{
  *w = (size_t)s->d[s->ndim - 1];
  *J = (size_t)s->d[s->ndim - 2];
  *rows = 1;
  for (int i = 0; i < s->ndim - 2; i++)
    *rows *= (size_t)s->d[i];
}

static double sigmoid(double h)
{
  double e = exp(-fabs(h));
  return h >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/*
 * The derivatives s', s'', s''' of the activation for one row of w columns,
 * from the row's pre-activation h and value a = s(h) (tanh and sigmoid need
 * only a: no transcendental call in the backward pass), into d1, d2, d3
 * (d3 may be NULL). tmp: w doubles of scratch.
 */
static void row_derivs(int act, const double *h, const double *a, size_t w, double *restrict d1,
                       double *restrict d2, double *restrict d3, double *restrict tmp)
{
  switch (act) {
  case SV_ACT_TANH:
    for (size_t c = 0; c < w; c++) {
      double t = a[c], s1 = 1 - t * t;
      d1[c] = s1, d2[c] = -2 * t * s1;
      if (d3)
        d3[c] = -2 * s1 * s1 + 4 * t * t * s1;
    }
    break;
  case SV_ACT_SIN:
    sv__vcos(h, tmp, w);
    for (size_t c = 0; c < w; c++) {
      d1[c] = tmp[c], d2[c] = -a[c];
      if (d3)
        d3[c] = -tmp[c];
    }
    break;
  case SV_ACT_SIGMOID:
  case SV_ACT_SOFTPLUS:
    for (size_t c = 0; c < w; c++) {
      double sg = act == SV_ACT_SIGMOID ? a[c] : sigmoid(h[c]);
      double q1 = sg * (1 - sg), q2 = q1 * (1 - 2 * sg), q3 = q2 * (1 - 2 * sg) - 2 * q1 * q1;
      if (act == SV_ACT_SIGMOID)
        d1[c] = q1, d2[c] = q2, tmp[c] = q3;
      else /* softplus' = sigmoid */
        d1[c] = sg, d2[c] = q1, tmp[c] = q2;
      if (d3)
        d3[c] = tmp[c];
    }
    break;
  default:
    for (size_t c = 0; c < w; c++) {
      d1[c] = 1, d2[c] = 0;
      if (d3)
        d3[c] = 0;
    }
    break;
  }
}

/* a = s(h) for one row (h and a may be the same array). */
static void row_values(int act, const double *h, double *a, size_t w)
{
  switch (act) {
  case SV_ACT_TANH: sv__vtanh(h, a, w); break;
  case SV_ACT_SIN: sv__vsin(h, a, w); break;
  case SV_ACT_SIGMOID:
    for (size_t c = 0; c < w; c++)
      a[c] = sigmoid(h[c]);
    break;
  case SV_ACT_SOFTPLUS:
    for (size_t c = 0; c < w; c++)
      a[c] = h[c] > 0 ? h[c] + log1p(exp(-h[c])) : log1p(exp(h[c]));
    break;
  default:
    if (a != h)
      memcpy(a, h, w * sizeof *a);
    break;
  }
}

/* Scratch: 5 rows of w (h, s', s'', s''', the activation's own). */
static size_t jet_work(const sv_plan *p, const sv_node *n)
{
  const sv_shape *s = &p->shape[n->id];
  return 5 * (size_t)s->d[s->ndim - 1];
}

static const sv_opdef op_jet_act, op_jet_act_back;

static int jet_act_kernel(const sv_kctx *k)
{
  const double *S = sv__kin(k, 0), *b = sv__kin(k, 1);
  int act = k->n->ia[0];
  size_t d = (size_t)k->n->ia[1], order = (size_t)k->n->ia[2], rows, J, w;
  stack_dims(k->ys, &rows, &J, &w);
  double *h = k->work, *d1 = h + w, *d2 = d1 + w, *tmp = d2 + 2 * w;
  for (size_t r = 0; r < rows; r++) {
    const double *in = S + r * J * w;
    double *out = k->y + r * J * w;
    for (size_t c = 0; c < w; c++)
      h[c] = in[c] + b[c];
    row_values(act, h, out, w);
    row_derivs(act, h, out, w, d1, d2, NULL, tmp);
    for (size_t q = 0; q < d; q++) {
      const double *restrict h1 = in + (1 + q) * w, *restrict h2 = in + (1 + d + q) * w;
      double *restrict o1 = out + (1 + q) * w, *restrict o2 = out + (1 + d + q) * w;
      for (size_t c = 0; c < w; c++)
        o1[c] = d1[c] * h1[c];
      if (order > 1)
        for (size_t c = 0; c < w; c++)
          o2[c] = d1[c] * h2[c] + d2[c] * h1[c] * h1[c];
    }
  }
  return 0;
}

/* inputs: G (the adjoint), Y (jet_act's output), S, b */
static int jet_act_back_kernel(const sv_kctx *k)
{
  const double *G = sv__kin(k, 0), *Y = sv__kin(k, 1), *S = sv__kin(k, 2), *b = sv__kin(k, 3);
  int act = k->n->ia[0];
  size_t d = (size_t)k->n->ia[1], order = (size_t)k->n->ia[2], rows, J, w;
  stack_dims(k->ys, &rows, &J, &w);
  double *h = k->work, *d1 = h + w, *d2 = d1 + w, *d3 = d2 + w, *tmp = d3 + w;
  for (size_t r = 0; r < rows; r++) {
    const double *in = S + r * J * w, *g = G + r * J * w;
    double *out = k->y + r * J * w;
    for (size_t c = 0; c < w; c++)
      h[c] = in[c] + b[c];
    row_derivs(act, h, Y + r * J * w, w, d1, d2, d3, tmp);
    for (size_t c = 0; c < w; c++)
      out[c] = g[c] * d1[c];
    for (size_t q = 0; q < d; q++) {
      const double *restrict h1 = in + (1 + q) * w, *restrict g1 = g + (1 + q) * w;
      double *restrict o0 = out, *restrict o1 = out + (1 + q) * w;
      if (order > 1) {
        const double *restrict h2 = in + (1 + d + q) * w, *restrict g2 = g + (1 + d + q) * w;
        double *restrict o2 = out + (1 + d + q) * w;
        for (size_t c = 0; c < w; c++) {
          o0[c] += g1[c] * d2[c] * h1[c] + g2[c] * (d2[c] * h2[c] + d3[c] * h1[c] * h1[c]);
          o1[c] = g1[c] * d1[c] + 2 * g2[c] * d2[c] * h1[c];
          o2[c] = g2[c] * d1[c];
        }
      } else {
        for (size_t c = 0; c < w; c++) {
          o0[c] += g1[c] * d2[c] * h1[c];
          o1[c] = g1[c] * d1[c];
        }
      }
    }
  }
  return 0;
}

/* ---------- the same formulas in ops (for jet_act_back's rule) ---------- */

/* s', s'', s''' of h as nodes. */
static void act_derivs_ops(int act, sv_node *h, sv_node **s1, sv_node **s2, sv_node **s3)
{
  switch (act) {
  case SV_ACT_TANH: {
    sv_node *a = sv_tanh(h), *d = sv_add_scalar(sv_neg(sv_square(a)), 1.0);
    *s1 = d;
    *s2 = sv_scale(sv_mul(a, d), -2.0);
    *s3 = sv_add(sv_scale(sv_square(d), -2.0), sv_scale(sv_mul(sv_square(a), d), 4.0));
    break;
  }
  case SV_ACT_SIN:
    *s1 = sv_cos(h), *s2 = sv_neg(sv_sin(h)), *s3 = sv_neg(sv_cos(h));
    break;
  case SV_ACT_SIGMOID:
  case SV_ACT_SOFTPLUS: {
    sv_node *s = sv_sigmoid(h), *one_m2s = sv_add_scalar(sv_scale(s, -2.0), 1.0);
    sv_node *d1 = sv_mul(s, sv_add_scalar(sv_neg(s), 1.0)), *d2 = sv_mul(d1, one_m2s);
    if (act == SV_ACT_SIGMOID)
      *s1 = d1, *s2 = d2, *s3 = sv_sub(sv_mul(d2, one_m2s), sv_scale(sv_square(d1), 2.0));
    else
      *s1 = s, *s2 = d1, *s3 = d2;
    break;
  }
  default:
    *s1 = sv_fill_like(h, 1.0), *s2 = sv_fill_like(h, 0.0), *s3 = sv_fill_like(h, 0.0);
    break;
  }
}

static sv_node *row(sv_node *S, int j) { return sv_slice(S, -2, j, 1); }

static sv_node *jet_back_ops(sv_node *G, sv_node *S, sv_node *b, int act, int d, int order)
{
  sv_node *s1, *s2, *s3, *parts[1 + 2 * SV_JET_MAX_DIRS];
  act_derivs_ops(act, sv_add(row(S, 0), b), &s1, &s2, &s3);
  sv_node *dh = sv_mul(row(G, 0), s1);
  for (int q = 0; q < d; q++) {
    sv_node *h1 = row(S, 1 + q), *g1 = row(G, 1 + q);
    dh = sv_add(dh, sv_mul(g1, sv_mul(s2, h1)));
    if (order > 1) {
      sv_node *g2 = row(G, 1 + d + q);
      dh = sv_add(dh, sv_mul(g2, sv_add(sv_mul(s2, row(S, 1 + d + q)), sv_mul(s3, sv_square(h1)))));
      parts[1 + q] = sv_add(sv_mul(g1, s1), sv_scale(sv_mul(g2, sv_mul(s2, h1)), 2.0));
      parts[1 + d + q] = sv_mul(g2, s1);
    } else {
      parts[1 + q] = sv_mul(g1, s1);
    }
  }
  parts[0] = dh;
  return sv_concat(1 + order * d, parts, -2);
}

/* ---------- rules ---------- */

/* The bias's adjoint: the value row of dS summed over the rows. */
static sv_node *bias_adjoint(sv_node *dS, sv_node *b)
{
  return sv_sum_to(row(dS, 0), b->shape.ndim, b->shape.d);
}

static sv_node *back_node(sv_node *G, sv_node *Y, sv_node *S, sv_node *b, const sv_node *like)
{
  sv_node *in[4] = {G, Y, S, b};
  sv_node *r = sv__node_new(S->g, &op_jet_act_back, 4, in, &S->shape);
  if (r)
    memcpy(r->ia, like->ia, sizeof r->ia);
  return r;
}

static sv_node *jet_act_vjp(sv_node *n, int i, sv_node *G)
{
  sv_node *dS = back_node(G, n, n->in[0], n->in[1], n);
  return i == 0 ? dS : bias_adjoint(dS, n->in[1]);
}

/* The formula in ops, of (G, S, b) only (Y is s(S + b) recomputed), taken
   with its inputs as independent variables: Y gets no adjoint, its part
   being in the one of S and b. */
static sv_node *jet_act_back_vjp(sv_node *n, int i, sv_node *H)
{
  sv_node *x[4] = {n->in[0], n->in[1], n->in[2], n->in[3]}, *out[4];
  sv_node *f = jet_back_ops(x[0], x[2], x[3], n->ia[0], n->ia[1], n->ia[2]);
  if (!f || sv__vjp_partial(f, H, 4, x, out) < 0)
    return sv__graph_fail(n->g, "jet_act_back: %s", sv_errmsg());
  return out[i];
}

/* the bias gradient row by row: the value row of dS, [B, w] */
static sv_node *jet_act_vjp_rows(sv_node *n, int i, sv_node *G)
{
  sv_node *S = n->in[0];
  if (i != 1 || !sv__shape_is_batched(&S->shape) || S->shape.ndim != 3)
    return NULL;
  int flat[2] = {SV_BATCH, S->shape.d[2]};
  return sv_reshape(row(back_node(G, n, S, n->in[1], n), 0), 2, flat);
}

static const sv_opdef op_jet_act = {.name = "jet_act", .kernel = jet_act_kernel, .vjp = jet_act_vjp,
                                    .work = jet_work, .vjp_rows = jet_act_vjp_rows};
static const sv_opdef op_jet_act_back = {.name = "jet_act_back", .kernel = jet_act_back_kernel,
                                         .vjp = jet_act_back_vjp, .work = jet_work};

sv_node *sv__jet_act(sv_node *S, sv_node *b, sv_activation act, int ndir, int order)
{
  sv_node *in[2] = {S, b};
  sv_graph *g = sv__graph_of(2, in);
  if (!g)
    return NULL;
  char ss[64], sb[64];
  sv__shape_format(&S->shape, ss, sizeof ss);
  sv__shape_format(&b->shape, sb, sizeof sb);
  int nd = S->shape.ndim;
  if (nd < 2 || ndir < 1 || ndir > SV_JET_MAX_DIRS || order < 1 || order > 2 ||
      S->shape.d[nd - 2] != 1 + order * ndir)
    return sv__graph_fail(g, "jet_act: stack %s is not [..., 1 + %d x %d, w]", ss, order, ndir);
  if (b->shape.ndim != 1 || b->shape.d[0] != S->shape.d[nd - 1])
    return sv__graph_fail(g, "jet_act: bias %s does not match stack %s", sb, ss);
  sv_node *r = sv__node_new(g, &op_jet_act, 2, in, &S->shape);
  if (r) {
    r->ia[0] = (int)act;
    r->ia[1] = ndir;
    r->ia[2] = order;
  }
  return r;
}
