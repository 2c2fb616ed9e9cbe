/*
 * jet_algebra.c -- trial solutions built forward in Taylor mode: each
 * quantity carries its value and its first and second derivatives with
 * respect to the model's input x, and each operation applies the sum,
 * product, quotient and chain rules to them (pinn.h, "Input derivatives").
 *
 * Why: u'' by reverse over reverse (sv_grad twice over the whole trial
 * solution) builds a second-order adjoint graph whose matrix products are
 * about twice those of pushing (u, u', u'') forward together, and the
 * batched Jacobian rows of Levenberg-Marquardt are not available on it.
 * The network's jet comes from the core's sv_mlp_jet (one matrix product
 * and one fused activation per layer, value and derivative rows stacked);
 * everything around it (the hard constraints, normalisation, exp, powers)
 * is a handful of [B,1] elementwise nodes written here.
 *
 * A derivative is a node or, when it is known to be a constant (dx/dx = 1,
 * the second derivative of an affine map = 0), that number: no node is
 * made for constants, and products with 0 or 1 fold away. In reverse mode
 * (-derivatives reverse) a jet carries its value only, built with exactly
 * the ops the plugins used before, and pinn_jet_derivs falls back to
 * sv_grad over it.
 */
#include "pinn.h"

#include <math.h>

/* A derivative: the node n, or the constant c when n is NULL. */
typedef struct {
  sv_node *n;
  double c;
} term;

static term node_term(sv_node *n) { return (term){n, 0}; }
static term const_term(double c) { return (term){NULL, c}; }
static term jet_term(const pinn_jet *a, int k) { return (term){a->d[k], a->c[k]}; }
static int is_const(term t, double c) { return !t.n && t.c == c; }

static term t_add(term a, term b)
{
  if (!a.n && !b.n)
    return const_term(a.c + b.c);
  if (!a.n)
    return a.c == 0 ? b : node_term(sv_add_scalar(b.n, a.c));
  if (!b.n)
    return b.c == 0 ? a : node_term(sv_add_scalar(a.n, b.c));
  return node_term(sv_add(a.n, b.n));
}

static term t_scale(term a, double s)
{
  if (!a.n)
    return const_term(s * a.c);
  if (s == 0)
    return const_term(0);
  if (s == 1)
    return a;
  return node_term(s == -1 ? sv_neg(a.n) : sv_scale(a.n, s));
}

static term t_sub(term a, term b)
{
  if (a.n && b.n)
    return node_term(sv_sub(a.n, b.n));
  return t_add(a, t_scale(b, -1));
}

static term t_mul(term a, term b)
{
  if (!a.n)
    return t_scale(b, a.c);
  if (!b.n)
    return t_scale(a, b.c);
  return node_term(sv_mul(a.n, b.n));
}

static term t_square(term a)
{
  return a.n ? node_term(sv_square(a.n)) : const_term(a.c * a.c);
}

/* a / b for a node b. */
static term t_div(term a, sv_node *b)
{
  if (is_const(a, 0))
    return a;
  if (!a.n)
    return node_term(sv_div(sv_fill_like(b, a.c), b));
  return node_term(sv_div(a.n, b));
}

static pinn_jet make_jet(sv_node *v, int order, term d1, term d2)
{
  pinn_jet j = {v, {NULL, NULL}, {0, 0}, order};
  if (order >= 1) {
    j.d[0] = d1.n;
    j.c[0] = d1.c;
  }
  if (order >= 2) {
    j.d[1] = d2.n;
    j.c[1] = d2.c;
  }
  return j;
}

static int min_order(pinn_jet a, pinn_jet b) { return a.order < b.order ? a.order : b.order; }

pinn_jet pinn_jet_add(pinn_jet a, pinn_jet b)
{
  int o = min_order(a, b);
  sv_node *v = sv_add(a.v, b.v);
  if (o == 0)
    return make_jet(v, 0, const_term(0), const_term(0));
  return make_jet(v, o, t_add(jet_term(&a, 0), jet_term(&b, 0)),
                  o > 1 ? t_add(jet_term(&a, 1), jet_term(&b, 1)) : const_term(0));
}

pinn_jet pinn_jet_sub(pinn_jet a, pinn_jet b)
{
  int o = min_order(a, b);
  sv_node *v = sv_sub(a.v, b.v);
  if (o == 0)
    return make_jet(v, 0, const_term(0), const_term(0));
  return make_jet(v, o, t_sub(jet_term(&a, 0), jet_term(&b, 0)),
                  o > 1 ? t_sub(jet_term(&a, 1), jet_term(&b, 1)) : const_term(0));
}

pinn_jet pinn_jet_scale(pinn_jet a, double s)
{
  sv_node *v = sv_scale(a.v, s);
  if (a.order == 0)
    return make_jet(v, 0, const_term(0), const_term(0));
  return make_jet(v, a.order, t_scale(jet_term(&a, 0), s),
                  a.order > 1 ? t_scale(jet_term(&a, 1), s) : const_term(0));
}

pinn_jet pinn_jet_add_scalar(pinn_jet a, double s)
{
  pinn_jet j = a;
  j.v = sv_add_scalar(a.v, s);
  return j;
}

pinn_jet pinn_jet_neg(pinn_jet a)
{
  sv_node *v = sv_neg(a.v);
  if (a.order == 0)
    return make_jet(v, 0, const_term(0), const_term(0));
  return make_jet(v, a.order, t_scale(jet_term(&a, 0), -1),
                  a.order > 1 ? t_scale(jet_term(&a, 1), -1) : const_term(0));
}

/* (ab)' = a'b + ab', (ab)'' = a''b + 2a'b' + ab'' */
pinn_jet pinn_jet_mul(pinn_jet a, pinn_jet b)
{
  int o = min_order(a, b);
  sv_node *v = sv_mul(a.v, b.v);
  if (o == 0)
    return make_jet(v, 0, const_term(0), const_term(0));
  term av = node_term(a.v), bv = node_term(b.v);
  term a1 = jet_term(&a, 0), b1 = jet_term(&b, 0);
  term d1 = t_add(t_mul(a1, bv), t_mul(av, b1)), d2 = const_term(0);
  if (o > 1)
    d2 = t_add(t_add(t_mul(jet_term(&a, 1), bv), t_scale(t_mul(a1, b1), 2)),
               t_mul(av, jet_term(&b, 1)));
  return make_jet(v, o, d1, d2);
}

/* (a^2)' = 2aa', (a^2)'' = 2(a'^2 + aa'') */
pinn_jet pinn_jet_square(pinn_jet a)
{
  sv_node *v = sv_square(a.v);
  if (a.order == 0)
    return make_jet(v, 0, const_term(0), const_term(0));
  term av = node_term(a.v), a1 = jet_term(&a, 0);
  term d1 = t_scale(t_mul(av, a1), 2), d2 = const_term(0);
  if (a.order > 1)
    d2 = t_scale(t_add(t_square(a1), t_mul(av, jet_term(&a, 1))), 2);
  return make_jet(v, a.order, d1, d2);
}

/* q = a/b: q' = (a' - q b')/b, q'' = (a'' - 2 q' b' - q b'')/b */
pinn_jet pinn_jet_div(pinn_jet a, pinn_jet b)
{
  int o = min_order(a, b);
  sv_node *v = sv_div(a.v, b.v);
  if (o == 0)
    return make_jet(v, 0, const_term(0), const_term(0));
  term q = node_term(v), b1 = jet_term(&b, 0);
  term q1 = t_div(t_sub(jet_term(&a, 0), t_mul(q, b1)), b.v), q2 = const_term(0);
  if (o > 1)
    q2 = t_div(t_sub(t_sub(jet_term(&a, 1), t_scale(t_mul(q1, b1), 2)),
                     t_mul(q, jet_term(&b, 1))), b.v);
  return make_jet(v, o, q1, q2);
}

/* (e^a)' = e^a a', (e^a)'' = e^a (a'' + a'^2) */
pinn_jet pinn_jet_exp(pinn_jet a)
{
  sv_node *v = sv_exp(a.v);
  if (a.order == 0)
    return make_jet(v, 0, const_term(0), const_term(0));
  term e = node_term(v), a1 = jet_term(&a, 0);
  term d2 = a.order > 1 ? t_mul(e, t_add(jet_term(&a, 1), t_square(a1))) : const_term(0);
  return make_jet(v, a.order, t_mul(e, a1), d2);
}

/* a^p for a constant p (a > 0 unless p is an integer):
   (a^p)' = p a^(p-1) a', (a^p)'' = p (p-1) a^(p-2) a'^2 + p a^(p-1) a'' */
static term power_term(sv_node *a, double p)
{
  if (p == 0)
    return const_term(1);
  if (p == 1)
    return node_term(a);
  return node_term(sv_pow(a, p));
}

pinn_jet pinn_jet_pow(pinn_jet a, double p)
{
  sv_node *v = sv_pow(a.v, p);
  if (a.order == 0)
    return make_jet(v, 0, const_term(0), const_term(0));
  term a1 = jet_term(&a, 0), w1 = t_scale(power_term(a.v, p - 1), p);
  term d2 = const_term(0);
  if (a.order > 1)
    d2 = t_add(t_mul(t_scale(power_term(a.v, p - 2), p * (p - 1)), t_square(a1)),
               t_mul(w1, jet_term(&a, 1)));
  return make_jet(v, a.order, t_mul(w1, a1), d2);
}

/* f(a) from f(a), f'(a), f''(a): f' a', f'' a'^2 + f' a'' */
pinn_jet pinn_jet_chain(pinn_jet a, sv_node *f, sv_node *f1, sv_node *f2)
{
  if (a.order == 0)
    return make_jet(f, 0, const_term(0), const_term(0));
  term a1 = jet_term(&a, 0), g1 = node_term(f1), d2 = const_term(0);
  if (a.order > 1)
    d2 = t_add(t_mul(node_term(f2), t_square(a1)), t_mul(g1, jet_term(&a, 1)));
  return make_jet(f, a.order, t_mul(g1, a1), d2);
}

pinn_jet pinn_jet_normalize(pinn_jet x, double lo, double hi)
{
  /* 2 (x - lo) / (hi - lo) - 1, with the ops of pinn_normalize */
  double s = 2.0 / (hi - lo);
  return pinn_jet_add_scalar(pinn_jet_scale(x, s), -1.0 - s * lo);
}

sv_node *pinn_jet_node(const pinn_jet *a, int k)
{
  if (!a || !a->v || k < 0 || k >= a->order)
    return NULL;
  return a->d[k] ? a->d[k] : sv_fill_like(a->v, a->c[k]);
}
