/*
 * autodiff.c -- reverse-mode differentiation as a graph transformation.
 *
 * sv_vjp walks the nodes between the targets x and the output y in reverse
 * id order and, for each, adds the adjoint contributions of its inputs as
 * NEW NODES built from ordinary ops. So derivative nodes are differentiable
 * again (u'' = grad(grad(u, x), x); a loss on u'' differentiated w.r.t. the
 * weights), and each rule below is written only in terms of ops that have
 * rules themselves.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static int same_shape(const sv_shape *a, const sv_shape *b)
{
  if (a->ndim != b->ndim)
    return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->d[i] != b->d[i])
      return 0;
  return 1;
}

/* Sum a contribution down to the shape of the input it belongs to (the
   adjoint of broadcasting). */
static sv_node *unbroadcast(sv_node *c, const sv_node *input)
{
  if (!c || same_shape(&c->shape, &input->shape))
    return c;
  return sv_sum_to(c, input->shape.ndim, input->shape.d);
}

static sv_node *zeros_like_shape(sv_graph *g, const sv_shape *s)
{
  return sv_broadcast_to(sv_scalar(g, 0.0), s->ndim, s->d);
}

/* The contribution of node n's adjoint G to the adjoint of its input i. */
static sv_node *rule(sv_node *n, int i, sv_node *G)
{
  sv_node *a = n->nin > 0 ? n->in[0] : NULL, *b = n->nin > 1 ? n->in[1] : NULL;
  sv_graph *g = n->g;
  switch (n->op) {
  case OP_ADD:
    return unbroadcast(G, n->in[i]);
  case OP_SUB:
    return unbroadcast(i == 0 ? G : sv_neg(G), n->in[i]);
  case OP_MUL:
    return unbroadcast(sv_mul(G, i == 0 ? b : a), n->in[i]);
  case OP_DIV:
    /* d(a/b)/da = 1/b; d(a/b)/db = -(a/b)/b */
    if (i == 0)
      return unbroadcast(sv_div(G, b), a);
    return unbroadcast(sv_neg(sv_div(sv_mul(G, n), b)), b);
  case OP_NEG:
    return sv_neg(G);
  case OP_SQUARE:
    return sv_mul(G, sv_scale(a, 2.0));
  case OP_POW:
    if (n->a == 1.0)
      return G;
    if (n->a == 2.0)
      return sv_mul(G, sv_scale(a, 2.0));
    return sv_mul(G, sv_scale(sv_pow(a, n->a - 1.0), n->a));
  case OP_EXP:
    return sv_mul(G, n);
  case OP_LOG:
    return sv_div(G, a);
  case OP_SQRT:
    return sv_div(sv_scale(G, 0.5), n);
  case OP_TANH: /* G (1 - tanh^2), fused: PINN graphs are full of it */
    return sv__tanh_back(G, n);
  case OP_TANH_BACK: /* n = A (1 - y^2): dA = G (1 - y^2), dy = -2 G A y */
    if (i == 0)
      return sv__tanh_back(G, b);
    return sv_mul(sv_mul(G, a), sv_scale(b, -2.0));
  case OP_SIN:
    return sv_mul(G, sv_cos(a));
  case OP_COS:
    return sv_neg(sv_mul(G, sv_sin(a)));
  case OP_SIGMOID: /* s (1 - s) */
    return sv_mul(G, sv_mul(n, sv_add_scalar(sv_neg(n), 1.0)));
  case OP_SOFTPLUS:
    return sv_mul(G, sv_sigmoid(a));
  case OP_SCALE:
    return sv_scale(G, n->a);
  case OP_ADD_SCALAR:
    return G;
  case OP_MATMUL: {
    int ta = n->ia[0], tb = n->ia[1];
    if (i == 0) {
      if (!ta)
        return sv_matmul_t(G, 0, b, !tb);   /* dA = G op(B)^T */
      return sv_matmul_t(b, tb, G, 1);      /* dA = op(B) G^T */
    }
    if (!tb)
      return sv_matmul_t(a, !ta, G, 0);     /* dB = op(A)^T G */
    return sv_matmul_t(G, 1, a, ta);        /* dB = G^T op(A) */
  }
  case OP_SUM_TO:
    return sv__broadcast_mean(G, &a->shape, n->ia[0]);
  case OP_BROADCAST:
    return sv__sum_to_mean(G, &a->shape, n->ia[0]);
  case OP_RESHAPE:
    return sv_reshape(G, a->shape.ndim, a->shape.d);
  case OP_TRANSPOSE:
    return sv_transpose(G);
  case OP_SLICE: {
    /* embed G between zero blocks along the axis */
    int axis = n->ia[0], start = n->ia[1], len = n->ia[2], full = a->shape.d[axis];
    sv_node *parts[3];
    int np = 0;
    sv_shape s = a->shape;
    if (start > 0) {
      s.d[axis] = start;
      parts[np++] = zeros_like_shape(g, &s);
    }
    parts[np++] = G;
    if (start + len < full) {
      s.d[axis] = full - start - len;
      parts[np++] = zeros_like_shape(g, &s);
    }
    return sv_concat(np, parts, axis);
  }
  case OP_CONCAT: {
    int axis = n->ia[0], off = 0;
    for (int k = 0; k < i; k++)
      off += n->in[k]->shape.d[axis];
    return sv_slice(G, axis, off, n->in[i]->shape.d[axis]);
  }
  case OP_GATHER:
    return sv_scatter_add_rows(G, n->nidx, n->idx, a->shape.d[0]);
  case OP_SCATTER_ADD:
    return sv_gather_rows(G, n->nidx, n->idx);
  case OP_INPUT:
  case OP_PARAM:
  case OP_CONST:
  case OP_COUNT:
    break;
  }
  return sv__graph_fail(g, "no derivative rule for op %s", sv_op_name(n));
}

int sv_vjp(sv_node *y, sv_node *seed, int nx, sv_node *const *x, sv_node **out)
{
  if (!y)
    return sv_fail("vjp: no output node (an earlier op failed: %s)", "see sv_graph_error");
  sv_graph *g = y->g;
  if (g->error)
    return sv_fail("vjp: the graph has an error: %s", g->error);
  for (int k = 0; k < nx; k++)
    if (!x[k] || x[k]->g != g)
      return sv_fail("vjp: target %d is not a node of this graph", k);
  if (!seed)
    seed = sv_fill_like(y, 1.0);
  else if (seed->g != g || !same_shape(&seed->shape, &y->shape))
    return sv_fail("vjp: the seed must be a node of the output's shape");

  int n0 = y->id + 1; /* only nodes up to y can lie between x and y */
  char *dep = calloc((size_t)n0, 1);
  sv_node **adj = calloc((size_t)n0, sizeof *adj);
  if (!dep || !adj) {
    free(dep);
    free(adj);
    return sv_fail("vjp: out of memory");
  }
  /* dep[i]: node i depends on some target */
  for (int k = 0; k < nx; k++)
    if (x[k]->id < n0)
      dep[x[k]->id] = 1;
  for (int i = 0; i < n0; i++) {
    sv_node *n = g->nodes[i];
    for (int j = 0; j < n->nin && !dep[i]; j++)
      dep[i] = dep[n->in[j]->id];
  }
  if (dep[y->id])
    adj[y->id] = seed;
  for (int i = y->id; i >= 0; i--) {
    sv_node *n = g->nodes[i], *G = adj[i];
    if (!G || n->nin == 0)
      continue;
    for (int j = 0; j < n->nin; j++) {
      sv_node *in = n->in[j];
      if (!dep[in->id])
        continue;
      sv_node *c = rule(n, j, G);
      adj[in->id] = adj[in->id] ? sv_add(adj[in->id], c) : c;
    }
  }
  for (int k = 0; k < nx; k++) {
    sv_node *r = x[k]->id < n0 ? adj[x[k]->id] : NULL;
    out[k] = r ? r : zeros_like_shape(g, &x[k]->shape);
  }
  free(dep);
  free(adj);
  if (g->error)
    return sv_fail("vjp: %s", g->error);
  return 0;
}

sv_node *sv_grad(sv_node *y, sv_node *x)
{
  sv_node *out = NULL;
  if (!y || !x)
    return NULL;
  if (sv_vjp(y, NULL, 1, &x, &out) < 0) {
    sv__graph_fail(y->g, "%s", sv_errmsg());
    return NULL;
  }
  return out;
}

sv_node *sv_grad_params(sv_node *y, sv_params *p)
{
  if (!y)
    return NULL;
  sv_graph *g = y->g;
  if (!p || p->nblocks == 0)
    return sv__graph_fail(g, "grad_params: the params vector has no blocks");
  /* the param nodes of this graph, one per block */
  sv_node **x = calloc((size_t)p->nblocks, sizeof *x);
  sv_node **d = calloc((size_t)p->nblocks, sizeof *d);
  if (!x || !d) {
    free(x);
    free(d);
    return sv__graph_fail(g, "out of memory");
  }
  for (int i = 0; i < g->n; i++) {
    sv_node *n = g->nodes[i];
    if (n->op == OP_PARAM && n->params == p && !x[n->block])
      x[n->block] = n;
  }
  sv_node *r = NULL;
  for (int b = 0; b < p->nblocks; b++)
    if (!x[b]) {
      sv__graph_fail(g, "grad_params: block '%s' has no node in this graph", p->blocks[b].name);
      goto done;
    }
  if (sv_vjp(y, NULL, p->nblocks, x, d) < 0) {
    sv__graph_fail(g, "%s", sv_errmsg());
    goto done;
  }
  for (int b = 0; b < p->nblocks; b++) {
    int flat = (int)p->blocks[b].size;
    d[b] = sv_reshape(d[b], 1, &flat);
  }
  r = sv_concat(p->nblocks, d, 0);
done:
  free(x);
  free(d);
  return r;
}
