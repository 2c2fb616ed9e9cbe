/*
 * jacobian_rows.c -- the Jacobian of a batched residual with respect to the
 * parameters, all rows in one batched graph.
 *
 * For residuals r_i that depend only on row i of the inputs (a PINN's
 * collocation points), d r_i / d theta is what reverse mode gives for row
 * i alone. One sweep with the seed 1 on every row gives every row's
 * adjoint at once on the batched nodes (rows do not mix); only where a
 * parameter enters, the rule would sum over the rows (a weight gradient
 * x^T G contracts over the batch, a bias gradient sums over it). There the
 * op's per-row rule (vjp_rows) keeps one contribution per row instead:
 * [B, size of the block]. The blocks side by side are the [B, n] Jacobian,
 * so a Levenberg-Marquardt step costs one batched backward pass instead of
 * one batch-1 pass per row.
 *
 * Supported when every parameter is used directly by batched ops that have
 * a per-row rule (dense layers, jet layers); otherwise NULL, and the
 * caller computes rows one by one.
 */
#include "ops/ops.h"

#include <stdlib.h>

sv_node *sv__jacobian_rows(sv_node *y, sv_params *p)
{
  if (!y || !p || p->nblocks == 0 || y->g->error)
    return NULL;
  sv_graph *g = y->g;
  if (!sv__shape_is_batched(&y->shape) || sv__shape_count(&y->shape, 1) != 1)
    return NULL;
  int n0 = y->id + 1, ok = 1;
  char *dep = calloc((size_t)n0, 1);
  sv_node **adj = calloc((size_t)n0, sizeof *adj);
  sv_node **part = calloc((size_t)p->nblocks, sizeof *part);
  if (!dep || !adj || !part) {
    free(dep), free(adj), free(part);
    return NULL;
  }
  /* dep: depends on a parameter of p; every such node but the parameters
     themselves must be batched (a parameter reshaped or combined with
     another before a batched use has no per-row rule here) */
  for (int i = 0; i < n0 && ok; i++) {
    sv_node *n = g->nodes[i];
    if (sv__is_param(n)) {
      dep[i] = n->params == p;
      continue;
    }
    for (int j = 0; j < n->nin && !dep[i]; j++)
      dep[i] = dep[n->in[j]->id];
    if (dep[i] && !sv__shape_is_batched(&n->shape))
      ok = 0;
  }
  if (ok && dep[y->id])
    adj[y->id] = sv_fill_like(y, 1.0);
  for (int i = y->id; i >= 0 && ok; i--) {
    sv_node *n = g->nodes[i], *G = adj[i];
    if (!G || n->nin == 0)
      continue;
    for (int j = 0; j < n->nin && ok; j++) {
      sv_node *in = n->in[j];
      if (!dep[in->id] || (n->op->nodiff & (1u << j)))
        continue;
      if (sv__is_param(in)) {
        sv_node *c = n->op->vjp_rows ? n->op->vjp_rows(n, j, G) : NULL;
        if (!c) {
          ok = 0;
          break;
        }
        part[in->block] = part[in->block] ? sv_add(part[in->block], c) : c;
      } else {
        sv_node *c = n->op->vjp ? n->op->vjp(n, j, G) : NULL;
        if (!c) {
          ok = 0;
          break;
        }
        adj[in->id] = adj[in->id] ? sv_add(adj[in->id], c) : c;
      }
    }
  }
  sv_node *r = NULL;
  if (ok && !g->error) {
    for (int b = 0; b < p->nblocks; b++)
      if (!part[b]) {
        sv_shape s = {2, {SV_BATCH, (int)p->blocks[b].size, 1, 1}};
        part[b] = sv__zeros(g, &s);
      }
    r = sv_concat(p->nblocks, part, 1);
  }
  free(dep), free(adj), free(part);
  return g->error ? NULL : r;
}

/* [B, ...] contribution c to an unbatched input, summed over every axis
   but the batch one that the input is broadcast along, as [B, count]. */
sv_node *sv__rows_unbroadcast(sv_node *c, const sv_node *input)
{
  if (!c)
    return NULL;
  int nd = c->shape.ndim, m = input->shape.ndim;
  sv_shape t;
  t.ndim = nd;
  t.d[0] = SV_BATCH;
  for (int i = 1; i < nd; i++) {
    int k = i - (nd - m);
    t.d[i] = k >= 0 ? input->shape.d[k] : 1;
  }
  for (int i = nd; i < SV_MAX_DIMS; i++)
    t.d[i] = 1;
  if (m == nd && input->shape.d[0] != 1)
    return NULL;
  int flat[2] = {SV_BATCH, (int)sv__shape_count(&input->shape, 1)};
  return sv_reshape(sv_sum_to(c, t.ndim, t.d), 2, flat);
}
