/*
 * autodiff.c -- reverse-mode differentiation as a graph transformation.
 *
 * sv_vjp walks the nodes between the targets x and the output y in reverse
 * id order and, for each, adds the adjoint contributions of its inputs as
 * NEW NODES built by the op's derivative rule (its descriptor's vjp, next
 * to its kernel under core/ops/). Rules are written only in ops that have
 * rules themselves, so derivative nodes are differentiable again (u'' =
 * grad(grad(u, x), x); a loss on u'' differentiated w.r.t. the weights).
 */
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

sv_node *sv__unbroadcast(sv_node *c, const sv_node *input)
{
  if (!c || sv__shape_equal(&c->shape, &input->shape))
    return c;
  return sv_sum_to(c, input->shape.ndim, input->shape.d);
}

sv_node *sv__zeros(sv_graph *g, const sv_shape *s)
{
  return sv_broadcast_to(sv_scalar(g, 0.0), s->ndim, s->d);
}

/* The contribution of node n's adjoint G to the adjoint of its input i:
   the op's own rule (core/ops/). */
static sv_node *rule(sv_node *n, int i, sv_node *G)
{
  if (!n->op->vjp)
    return sv__graph_fail(n->g, "no derivative rule for op %s", n->op->name);
  return n->op->vjp(n, i, G);
}

/* The reverse sweep. With `partial`, the targets are taken as independent
   variables: no adjoint flows from a target into what it is computed from
   (a partial derivative; rules written as a composite of ops need this when
   one of their inputs depends on another). */
static int vjp_sweep(sv_node *y, sv_node *seed, int nx, sv_node *const *x, sv_node **out, int partial)
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
  else if (seed->g != g || !sv__shape_equal(&seed->shape, &y->shape))
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
      dep[x[k]->id] = 2; /* 2: a target */
  for (int i = 0; i < n0; i++) {
    sv_node *n = g->nodes[i];
    for (int j = 0; j < n->nin && !dep[i]; j++)
      dep[i] = dep[n->in[j]->id] != 0;
  }
  if (dep[y->id])
    adj[y->id] = seed;
  for (int i = y->id; i >= 0; i--) {
    sv_node *n = g->nodes[i], *G = adj[i];
    if (!G || n->nin == 0 || (partial && dep[i] == 2))
      continue;
    for (int j = 0; j < n->nin; j++) {
      sv_node *in = n->in[j];
      if (!dep[in->id] || (n->op->nodiff & (1u << j)))
        continue;
      sv_node *c = rule(n, j, G);
      adj[in->id] = adj[in->id] ? sv_add(adj[in->id], c) : c;
    }
  }
  for (int k = 0; k < nx; k++) {
    sv_node *r = x[k]->id < n0 ? adj[x[k]->id] : NULL;
    out[k] = r ? r : sv__zeros(g, &x[k]->shape);
  }
  free(dep);
  free(adj);
  if (g->error)
    return sv_fail("vjp: %s", g->error);
  return 0;
}

int sv_vjp(sv_node *y, sv_node *seed, int nx, sv_node *const *x, sv_node **out)
{
  return vjp_sweep(y, seed, nx, x, out, 0);
}

int sv__vjp_partial(sv_node *y, sv_node *seed, int nx, sv_node *const *x, sv_node **out)
{
  return vjp_sweep(y, seed, nx, x, out, 1);
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
    if (sv__is_param(n) && n->params == p && !x[n->block])
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
