/*
 * vandermonde.c -- Vandermonde sums, the convolution kernels of diagonal
 * state-space models (S4D):
 *
 *   V_p(c, s)[h, l] = sum_m Re(c[h, m] l^p e^{l s[h, m]}),   l = 0..L-1,
 *
 * for complex c = c_re + i c_im and s = s_re + i s_im, four real inputs of
 * one shape [H, M] (or [M]), giving [H, L] (or [L]). sv_vandermonde is V_0;
 * with c = 2 C Bbar and s = log Abar it is the kernel 2 Re sum_m C_m Bbar_m
 * Abar_m^l. Its adjoints are the transposed sums
 *
 *   T_p(G, s)[h, m] = sum_l G[h, l] l^p e^{l s[h, m]}      (complex, [H, M]),
 *
 * one op per part (Re, Im), and the family {V_p, Re T_p, Im T_p} is closed
 * under differentiation (with an adjoint A of the op's output):
 *
 *   V_p:      dc_re = Re T_p(A, s),  dc_im = -Im T_p(A, s),
 *             ds_re = c_re Re T_{p+1} - c_im Im T_{p+1},
 *             ds_im = -(c_re Im T_{p+1} + c_im Re T_{p+1})   (T_{p+1} = T_{p+1}(A, s));
 *   Re T_p:   dG = V_p(A, 0, s),   ds_re = A Re T_{p+1}(G, s),  ds_im = -A Im T_{p+1}(G, s);
 *   Im T_p:   dG = V_p(0, -A, s),  ds_re = A Im T_{p+1}(G, s),  ds_im =  A Re T_{p+1}(G, s).
 *
 * The kernels never call a transcendental per element: z = e^s once per
 * (h, m), then the powers c z^l by repeated complex multiplication (V) and
 * Horner's rule (T), 8 modes side by side so that the compiler vectorises
 * across them; O(H M L) multiply-adds. The powers drift by about l ulps
 * from e^{l s}, 1e-13 relative at L = 1000.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

#define VM_BLOCK 8 /* modes per pass */

/* l^p for l < L into w (p >= 1), or NULL for p = 0. */
static const double *powers_of_l(const sv_kctx *k, int L, int p)
{
  if (p == 0)
    return NULL;
  double *w = k->work;
  for (int l = 0; l < L; l++) {
    double v = 1;
    for (int q = 0; q < p; q++)
      v *= l;
    w[l] = v;
  }
  return w;
}

/* Resolved [H, M] of an input shape (1-D: H = 1). */
static void hm_of(const sv_shape *s, size_t *H, size_t *M)
{
  *M = (size_t)s->d[s->ndim - 1];
  *H = s->ndim == 2 ? (size_t)s->d[0] : 1;
}

/* ---------- V_p: y [H, L] from c_re, c_im, s_re, s_im [H, M] ---------- */

static int vand_kernel(const sv_kctx *k)
{
  const double *cr = sv__kin(k, 0), *ci = sv__kin(k, 1), *sr = sv__kin(k, 2), *si = sv__kin(k, 3);
  size_t H, M;
  hm_of(sv__kshape(k, 0), &H, &M);
  int L = k->ys->d[k->ys->ndim - 1], p = k->n->ia[0];
  const double *lp = powers_of_l(k, L, p);
  memset(k->y, 0, k->ny * sizeof *k->y);
  for (size_t h = 0; h < H; h++) {
    double *y = k->y + h * (size_t)L;
    for (size_t m0 = 0; m0 < M; m0 += VM_BLOCK) {
      double zr[VM_BLOCK], zi[VM_BLOCK], wr[VM_BLOCK], wi[VM_BLOCK];
      size_t nb = M - m0 < VM_BLOCK ? M - m0 : VM_BLOCK;
      for (size_t j = 0; j < VM_BLOCK; j++) {
        size_t q = h * M + m0 + j;
        if (j < nb) {
          double e = exp(sr[q]);
          zr[j] = e * cos(si[q]);
          zi[j] = e * sin(si[q]);
          wr[j] = cr[q];
          wi[j] = ci[q];
        } else {
          zr[j] = zi[j] = wr[j] = wi[j] = 0;
        }
      }
      for (int l = 0; l < L; l++) {
        double acc = 0;
        for (size_t j = 0; j < VM_BLOCK; j++) {
          acc += wr[j];
          double tr = wr[j] * zr[j] - wi[j] * zi[j];
          wi[j] = wr[j] * zi[j] + wi[j] * zr[j];
          wr[j] = tr;
        }
        y[l] += lp ? lp[l] * acc : acc;
      }
    }
  }
  return 0;
}

/* ---------- T_p: [H, M] from G [H, L], s_re, s_im [H, M]; part 0 Re, 1 Im ---------- */

static int vand_t_kernel(const sv_kctx *k)
{
  const double *G = sv__kin(k, 0), *sr = sv__kin(k, 1), *si = sv__kin(k, 2);
  size_t H, M;
  hm_of(sv__kshape(k, 1), &H, &M);
  const sv_shape *gs = sv__kshape(k, 0);
  int L = gs->d[gs->ndim - 1], p = k->n->ia[0], part = k->n->ia[1];
  const double *lp = powers_of_l(k, L, p);
  for (size_t h = 0; h < H; h++) {
    const double *g = G + h * (size_t)L;
    for (size_t m0 = 0; m0 < M; m0 += VM_BLOCK) {
      double zr[VM_BLOCK], zi[VM_BLOCK], ar[VM_BLOCK], ai[VM_BLOCK];
      size_t nb = M - m0 < VM_BLOCK ? M - m0 : VM_BLOCK;
      for (size_t j = 0; j < VM_BLOCK; j++) {
        size_t q = h * M + m0 + (j < nb ? j : 0);
        double e = exp(sr[q]);
        zr[j] = e * cos(si[q]);
        zi[j] = e * sin(si[q]);
        ar[j] = ai[j] = 0;
      }
      /* Horner: acc = (((g_{L-1}) z + g_{L-2}) z + ...) z + g_0 */
      for (int l = L - 1; l >= 0; l--) {
        double gl = lp ? g[l] * lp[l] : g[l];
        for (size_t j = 0; j < VM_BLOCK; j++) {
          double tr = ar[j] * zr[j] - ai[j] * zi[j] + gl;
          ai[j] = ar[j] * zi[j] + ai[j] * zr[j];
          ar[j] = tr;
        }
      }
      for (size_t j = 0; j < nb; j++)
        k->y[h * M + m0 + j] = part ? ai[j] : ar[j];
    }
  }
  return 0;
}

/* ---------- builders and derivative rules ---------- */

static sv_node *vand_node(sv_node *cr, sv_node *ci, sv_node *sr, sv_node *si, int L, int p);
static sv_node *vand_t_node(sv_node *G, sv_node *sr, sv_node *si, int p, int part);

static sv_node *vand_vjp(sv_node *n, int i, sv_node *A)
{
  sv_node *cr = n->in[0], *ci = n->in[1], *sr = n->in[2], *si = n->in[3];
  int p = n->ia[0];
  switch (i) {
  case 0: return vand_t_node(A, sr, si, p, 0);
  case 1: return sv_neg(vand_t_node(A, sr, si, p, 1));
  case 2:
    return sv_sub(sv_mul(cr, vand_t_node(A, sr, si, p + 1, 0)),
                  sv_mul(ci, vand_t_node(A, sr, si, p + 1, 1)));
  default:
    return sv_neg(sv_add(sv_mul(cr, vand_t_node(A, sr, si, p + 1, 1)),
                         sv_mul(ci, vand_t_node(A, sr, si, p + 1, 0))));
  }
}

static sv_node *vand_t_vjp(sv_node *n, int i, sv_node *A)
{
  sv_node *G = n->in[0], *sr = n->in[1], *si = n->in[2];
  int p = n->ia[0], part = n->ia[1], L = G->shape.d[G->shape.ndim - 1];
  if (i == 0) {
    sv_node *z = sv__zeros(n->g, &A->shape);
    return part ? vand_node(z, sv_neg(A), sr, si, L, p) : vand_node(A, z, sr, si, L, p);
  }
  /* d/ds_re T_p = T_{p+1}, d/ds_im T_p = i T_{p+1} */
  if (i == 1)
    return sv_mul(A, vand_t_node(G, sr, si, p + 1, part));
  return part ? sv_mul(A, vand_t_node(G, sr, si, p + 1, 0))
              : sv_neg(sv_mul(A, vand_t_node(G, sr, si, p + 1, 1)));
}

/* Scratch: the L powers l^p (L is the output's last axis for V, G's for T). */
static size_t vand_work(const sv_plan *p, const sv_node *n)
{
  const sv_shape *s = &p->shape[n->id];
  return (size_t)s->d[s->ndim - 1];
}
static size_t vand_t_work(const sv_plan *p, const sv_node *n)
{
  const sv_shape *s = &p->shape[n->in[0]->id];
  return (size_t)s->d[s->ndim - 1];
}

static const sv_opdef op_vand = {.name = "vandermonde", .kernel = vand_kernel, .vjp = vand_vjp,
                                 .work = vand_work};
static const sv_opdef op_vand_t = {.name = "vandermonde_t", .kernel = vand_t_kernel,
                                   .vjp = vand_t_vjp, .work = vand_t_work};

/* c, s: one shape, 1-D or 2-D, not batched. */
static int hm_shape_ok(const sv_shape *s)
{
  return (s->ndim == 1 || s->ndim == 2) && !sv__shape_is_batched(s);
}

static sv_node *vand_node(sv_node *cr, sv_node *ci, sv_node *sr, sv_node *si, int L, int p)
{
  sv_node *in[4] = {cr, ci, sr, si};
  sv_graph *g = sv__graph_of(4, in);
  if (!g)
    return NULL;
  char s0[64], s1[64];
  sv__shape_format(&cr->shape, s0, sizeof s0);
  if (!hm_shape_ok(&cr->shape))
    return sv__graph_fail(g, "vandermonde: c and s must be [H, M] or [M] without a batch axis "
                          "(got %s)", s0);
  for (int j = 1; j < 4; j++)
    if (!sv__shape_equal(&in[j]->shape, &cr->shape)) {
      sv__shape_format(&in[j]->shape, s1, sizeof s1);
      return sv__graph_fail(g, "vandermonde: c_re, c_im, s_re, s_im must have one shape (%s and "
                            "%s)", s0, s1);
    }
  if (L < 1)
    return sv__graph_fail(g, "vandermonde: length L = %d (must be >= 1)", L);
  sv_shape t = cr->shape;
  t.d[t.ndim - 1] = L;
  sv_node *r = sv__node_new(g, &op_vand, 4, in, &t);
  if (r)
    r->ia[0] = p;
  return r;
}

static sv_node *vand_t_node(sv_node *G, sv_node *sr, sv_node *si, int p, int part)
{
  sv_node *in[3] = {G, sr, si};
  sv_graph *g = sv__graph_of(3, in);
  if (!g)
    return NULL;
  sv_node *r = sv__node_new(g, &op_vand_t, 3, in, &sr->shape);
  if (r) {
    r->ia[0] = p;
    r->ia[1] = part;
  }
  return r;
}

sv_node *sv_vandermonde(sv_node *c_re, sv_node *c_im, sv_node *s_re, sv_node *s_im, int L)
{
  return vand_node(c_re, c_im, s_re, s_im, L, 0);
}
