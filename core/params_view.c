/*
 * params_view.c -- functional parameters: a network evaluated at a node
 * instead of at the params vector's own values.
 *
 * MAML's inner step is theta' = theta - alpha grad L(theta), and the outer
 * loss is the network at theta'. So theta must be a node: sv_params_node
 * gives the whole vector as one [n] node (the concatenation of every block
 * in the params' order), and sv_params_view cuts a block, with its shape,
 * out of any node of that length. Differentiating through views is
 * ordinary reverse mode (slice and reshape have rules), so the outer
 * gradient includes the inner step's second derivatives exactly.
 */
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

int sv_params_find(const sv_params *p, const char *name)
{
  if (!p || !name)
    return -1;
  for (int i = 0; i < p->nblocks; i++)
    if (strcmp(p->blocks[i].name, name) == 0)
      return i;
  return -1;
}

/* The node of block b in graph g: the existing one if g has it (one node
   per block and graph, so that sv_grad_params sees every use), else a new
   leaf for the block. */
sv_node *sv__param_node(sv_graph *g, sv_params *p, int b)
{
  for (int i = 0; i < g->n; i++) {
    sv_node *n = g->nodes[i];
    if (sv__is_param(n) && n->params == p && n->block == b)
      return n;
  }
  const sv_param_block *blk = &p->blocks[b];
  sv_node *n = sv__node_new(g, &sv__op_param, 0, NULL, &blk->shape);
  if (!n)
    return NULL;
  n->params = p;
  n->block = b;
  n->name = strdup(blk->name);
  if (!n->name)
    return sv__graph_fail(g, "out of memory for a parameter node");
  return n;
}

sv_node *sv_params_node(sv_graph *g, sv_params *p)
{
  if (!g || g->error)
    return NULL;
  if (!p || p->nblocks == 0)
    return sv__graph_fail(g, "params_node: the params vector has no blocks");
  sv_node **parts = calloc((size_t)p->nblocks, sizeof *parts);
  if (!parts)
    return sv__graph_fail(g, "out of memory");
  for (int b = 0; b < p->nblocks; b++) {
    int size = (int)p->blocks[b].size;
    parts[b] = sv_reshape(sv__param_node(g, p, b), 1, &size);
  }
  sv_node *r = sv_concat(p->nblocks, parts, 0);
  free(parts);
  return r;
}

sv_node *sv_params_view(sv_params *p, sv_node *theta, const char *block)
{
  if (!theta)
    return NULL;
  sv_graph *g = theta->g;
  if (g->error)
    return NULL;
  int b = sv_params_find(p, block);
  if (b < 0)
    return sv__graph_fail(g, "params_view: no block '%s'", block ? block : "(null)");
  char st[64];
  sv__shape_format(&theta->shape, st, sizeof st);
  if (theta->shape.ndim != 1 || sv__shape_is_batched(&theta->shape) ||
      (size_t)theta->shape.d[0] != p->count)
    return sv__graph_fail(g, "params_view '%s': theta %s must be [%zu], the params vector's length "
                             "(declare every block before taking views)", block, st, p->count);
  const sv_param_block *blk = &p->blocks[b];
  sv_node *s = sv_slice(theta, 0, (int)blk->offset, (int)blk->size);
  return sv_reshape(s, blk->shape.ndim, blk->shape.d);
}
