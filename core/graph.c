/*
 * graph.c -- the symbolic graph: shapes, nodes, queries. The ops themselves
 * (builders with their shape rules, kernels, derivative rules) live under
 * core/ops/, one family per file.
 *
 * Nodes are appended to the graph and never removed, so a node's inputs
 * always have smaller ids: id order is a topological order. A shape may
 * carry the batch axis (SV_BATCH) at axis 0 only; its size is chosen when
 * a plan is compiled, so one graph serves batch-N training plans and the
 * batch-1 plans that compute Jacobian rows.
 *
 * Errors while building are sticky: the first one is kept in g->error and
 * every op returns NULL from then on for a NULL input.
 */
#include "ops/ops.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---------- shapes ---------- */

int sv__shape_is_batched(const sv_shape *s)
{
  return s->ndim > 0 && s->d[0] == SV_BATCH;
}

size_t sv__shape_count(const sv_shape *s, int batch)
{
  size_t c = 1;
  for (int i = 0; i < s->ndim; i++)
    c *= (size_t)(s->d[i] == SV_BATCH ? batch : s->d[i]);
  return c;
}

void sv__shape_format(const sv_shape *s, char *buf, size_t n)
{
  size_t k = 0;
  k += (size_t)snprintf(buf + k, n - k, "[");
  for (int i = 0; i < s->ndim && k < n; i++) {
    if (s->d[i] == SV_BATCH)
      k += (size_t)snprintf(buf + k, n - k, "%sB", i ? "," : "");
    else
      k += (size_t)snprintf(buf + k, n - k, "%s%d", i ? "," : "", s->d[i]);
  }
  if (k < n)
    snprintf(buf + k, n - k, "]");
}

int sv__shape_equal(const sv_shape *a, const sv_shape *b)
{
  if (a->ndim != b->ndim)
    return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->d[i] != b->d[i])
      return 0;
  return 1;
}

int sv__shape_make(sv_shape *s, int ndim, const int *dims)
{
  if (ndim < 0 || ndim > SV_MAX_DIMS)
    return -1;
  s->ndim = ndim;
  for (int i = 0; i < ndim; i++) {
    if (dims[i] == SV_BATCH ? i != 0 : dims[i] < 1)
      return -1;
    s->d[i] = dims[i];
  }
  for (int i = ndim; i < SV_MAX_DIMS; i++)
    s->d[i] = 1;
  return 0;
}

/* numpy broadcasting, right-aligned; the batch axis must end at axis 0. */
int sv__shape_broadcast(const sv_shape *a, const sv_shape *b, sv_shape *out)
{
  int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
  out->ndim = nd;
  for (int i = 0; i < nd; i++) {
    int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
    int da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
    int d;
    if (da == db)
      d = da;
    else if (da == 1)
      d = db;
    else if (db == 1)
      d = da;
    else
      return -1;
    if (d == SV_BATCH && i != 0)
      return -1;
    out->d[i] = d;
  }
  for (int i = nd; i < SV_MAX_DIMS; i++)
    out->d[i] = 1;
  return 0;
}

/* ---------- graph ---------- */

sv_graph *sv_graph_new(void)
{
  sv_graph *g = calloc(1, sizeof *g);
  return g;
}

static void node_free(sv_node *n)
{
  if (n->in != n->in_inline)
    free(n->in);
  free(n->idx);
  free(n->data);
  free(n->name);
  free(n);
}

void sv_graph_free(sv_graph *g)
{
  if (!g)
    return;
  for (int i = 0; i < g->n; i++)
    node_free(g->nodes[i]);
  free(g->nodes);
  free(g->error);
  free(g);
}

const char *sv_graph_error(const sv_graph *g) { return g ? g->error : "no graph"; }
int sv_graph_node_count(const sv_graph *g) { return g ? g->n : 0; }

sv_node *sv__graph_fail(sv_graph *g, const char *fmt, ...)
{
  if (g && !g->error) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g->error = strdup(buf);
  }
  return NULL;
}

sv_node *sv__node_new(sv_graph *g, const sv_opdef *op, int nin, sv_node *const *in,
                      const sv_shape *shape)
{
  if (!g)
    return NULL;
  if (g->n == g->cap) {
    int cap = g->cap ? 2 * g->cap : 64;
    sv_node **nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
    if (!nodes)
      return sv__graph_fail(g, "out of memory growing the graph");
    g->nodes = nodes;
    g->cap = cap;
  }
  sv_node *n = calloc(1, sizeof *n);
  if (!n)
    return sv__graph_fail(g, "out of memory adding a node");
  n->in = n->in_inline;
  if (nin > SV_MAX_INPUTS) {
    n->in = calloc((size_t)nin, sizeof *n->in);
    if (!n->in) {
      free(n);
      return sv__graph_fail(g, "out of memory adding a node");
    }
  }
  for (int i = 0; i < nin; i++)
    n->in[i] = in[i];
  n->nin = nin;
  n->op = op;
  n->g = g;
  n->shape = *shape;
  n->id = g->n;
  g->nodes[g->n++] = n;
  return n;
}

const char *sv_op_name(const sv_node *a) { return a ? a->op->name : "(null)"; }
int sv_ndim(const sv_node *a) { return a ? a->shape.ndim : -1; }
int sv_dim(const sv_node *a, int axis)
{
  if (!a)
    return 0;
  if (axis < 0)
    axis += a->shape.ndim;
  return axis >= 0 && axis < a->shape.ndim ? a->shape.d[axis] : 0;
}
int sv_is_batched(const sv_node *a) { return a && sv__shape_is_batched(&a->shape); }
sv_graph *sv_node_graph(const sv_node *a) { return a ? a->g : NULL; }

/* Inputs of one op must come from one graph. */
sv_graph *sv__graph_of(int n, sv_node *const *in)
{
  sv_graph *g = NULL;
  for (int i = 0; i < n; i++) {
    if (!in[i])
      return NULL;
    if (g && in[i]->g != g)
      return sv__graph_fail(g, "an op mixes nodes of two graphs"), NULL;
    g = in[i]->g;
  }
  if (g && g->error)
    return NULL;
  return g;
}

int sv__axis(int axis, int ndim)
{
  if (axis < 0)
    axis += ndim;
  return axis >= 0 && axis < ndim ? axis : -1;
}

int sv__is_input(const sv_node *n) { return n && n->op == &sv__op_input; }
int sv__is_param(const sv_node *n) { return n && n->op == &sv__op_param; }

int sv__mixes_rows(const sv_node *n)
{
  if (sv__shape_is_batched(&n->shape))
    return 0;
  for (int j = 0; j < n->nin; j++)
    if (sv__shape_is_batched(&n->in[j]->shape))
      return 1;
  return 0;
}
