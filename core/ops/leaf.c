/*
 * leaf.c -- the leaves of a graph: inputs bound by the caller, constants,
 * and parameter blocks (whose builder, sv_param, lives with the params
 * vector in params.c). Leaves have no kernel and no derivative rule: the
 * planner gives them storage, and autodiff stops at them.
 */
#include "ops.h"

#include <stdlib.h>
#include <string.h>

const sv_opdef sv__op_input = {.name = "input", .store = SV_STORE_INPUT};
const sv_opdef sv__op_param = {.name = "param", .store = SV_STORE_PARAM};
const sv_opdef sv__op_const = {.name = "const", .store = SV_STORE_CONST};

sv_node *sv_input(sv_graph *g, const char *name, int ndim, const int *dims)
{
  sv_shape s;
  if (!g || g->error)
    return NULL;
  if (sv__shape_make(&s, ndim, dims) < 0)
    return sv__graph_fail(g, "input '%s': bad shape (ndim %d; dims must be >= 1, SV_BATCH only at axis 0)",
                          name ? name : "?", ndim);
  sv_node *n = sv__node_new(g, &sv__op_input, 0, NULL, &s);
  if (n)
    n->name = strdup(name ? name : "input");
  return n;
}

sv_node *sv_constant(sv_graph *g, int ndim, const int *dims, const double *data)
{
  sv_shape s;
  if (!g || g->error)
    return NULL;
  if (sv__shape_make(&s, ndim, dims) < 0 || sv__shape_is_batched(&s))
    return sv__graph_fail(g, "constant: bad shape (a constant has no batch axis)");
  size_t c = sv__shape_count(&s, 1);
  sv_node *n = sv__node_new(g, &sv__op_const, 0, NULL, &s);
  if (!n)
    return NULL;
  n->data = malloc(c * sizeof(double));
  if (!n->data)
    return sv__graph_fail(g, "out of memory for a constant");
  memcpy(n->data, data, c * sizeof(double));
  return n;
}

sv_node *sv_scalar(sv_graph *g, double value) { return sv_constant(g, 0, NULL, &value); }

sv_node *sv_fill_like(sv_node *like, double value)
{
  if (!like)
    return NULL;
  return sv_broadcast_to(sv_scalar(like->g, value), like->shape.ndim, like->shape.d);
}
