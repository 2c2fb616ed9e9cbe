/*
 * graph.c -- building the symbolic graph: leaves, ops and shape inference.
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
#include "internal.h"

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

static int shape_equal(const sv_shape *a, const sv_shape *b)
{
  if (a->ndim != b->ndim)
    return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->d[i] != b->d[i])
      return 0;
  return 1;
}

static int shape_make(sv_shape *s, int ndim, const int *dims)
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
static int shape_broadcast(const sv_shape *a, const sv_shape *b, sv_shape *out)
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

sv_node *sv__node_new(sv_graph *g, sv_op op, int nin, sv_node *const *in, const sv_shape *shape)
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

static const char *const op_names[OP_COUNT] = {
  "input", "param", "const", "add", "sub", "mul", "div", "neg", "square", "pow",
  "exp", "log", "sqrt", "tanh", "sin", "cos", "sigmoid", "softplus", "scale",
  "add_scalar", "matmul", "sum_to", "broadcast", "reshape", "transpose", "slice",
  "concat", "gather", "scatter_add", "tanh_back"
};

const char *sv_op_name(const sv_node *a) { return a ? op_names[a->op] : "(null)"; }
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
static sv_graph *graph_of(int n, sv_node *const *in)
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

/* ---------- leaves ---------- */

sv_node *sv_input(sv_graph *g, const char *name, int ndim, const int *dims)
{
  sv_shape s;
  if (!g || g->error)
    return NULL;
  if (shape_make(&s, ndim, dims) < 0)
    return sv__graph_fail(g, "input '%s': bad shape (ndim %d; dims must be >= 1, SV_BATCH only at axis 0)",
                          name ? name : "?", ndim);
  sv_node *n = sv__node_new(g, OP_INPUT, 0, NULL, &s);
  if (n)
    n->name = strdup(name ? name : "input");
  return n;
}

sv_node *sv_constant(sv_graph *g, int ndim, const int *dims, const double *data)
{
  sv_shape s;
  if (!g || g->error)
    return NULL;
  if (shape_make(&s, ndim, dims) < 0 || sv__shape_is_batched(&s))
    return sv__graph_fail(g, "constant: bad shape (a constant has no batch axis)");
  size_t c = sv__shape_count(&s, 1);
  sv_node *n = sv__node_new(g, OP_CONST, 0, NULL, &s);
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

/* ---------- elementwise ---------- */

static sv_node *binary(sv_op op, sv_node *a, sv_node *b)
{
  sv_node *in[2] = {a, b};
  sv_graph *g = graph_of(2, in);
  sv_shape s;
  if (!g)
    return NULL;
  if (shape_broadcast(&a->shape, &b->shape, &s) < 0) {
    char sa[64], sb[64];
    sv__shape_format(&a->shape, sa, sizeof sa);
    sv__shape_format(&b->shape, sb, sizeof sb);
    return sv__graph_fail(g, "%s: shapes %s and %s do not broadcast", op_names[op], sa, sb);
  }
  return sv__node_new(g, op, 2, in, &s);
}

sv_node *sv_add(sv_node *a, sv_node *b) { return binary(OP_ADD, a, b); }
sv_node *sv_sub(sv_node *a, sv_node *b) { return binary(OP_SUB, a, b); }
sv_node *sv_mul(sv_node *a, sv_node *b) { return binary(OP_MUL, a, b); }
sv_node *sv_div(sv_node *a, sv_node *b) { return binary(OP_DIV, a, b); }

static sv_node *unary(sv_op op, sv_node *a, double attr)
{
  sv_graph *g = graph_of(1, &a);
  if (!g)
    return NULL;
  sv_node *n = sv__node_new(g, op, 1, &a, &a->shape);
  if (n)
    n->a = attr;
  return n;
}

sv_node *sv_neg(sv_node *a) { return unary(OP_NEG, a, 0); }
sv_node *sv_square(sv_node *a) { return unary(OP_SQUARE, a, 0); }
sv_node *sv_pow(sv_node *a, double p) { return unary(OP_POW, a, p); }
sv_node *sv_exp(sv_node *a) { return unary(OP_EXP, a, 0); }
sv_node *sv_ln(sv_node *a) { return unary(OP_LOG, a, 0); }
sv_node *sv_sqrt(sv_node *a) { return unary(OP_SQRT, a, 0); }
sv_node *sv_tanh(sv_node *a) { return unary(OP_TANH, a, 0); }
sv_node *sv_sin(sv_node *a) { return unary(OP_SIN, a, 0); }
sv_node *sv_cos(sv_node *a) { return unary(OP_COS, a, 0); }
sv_node *sv_sigmoid(sv_node *a) { return unary(OP_SIGMOID, a, 0); }
sv_node *sv_softplus(sv_node *a) { return unary(OP_SOFTPLUS, a, 0); }
sv_node *sv_scale(sv_node *a, double s) { return unary(OP_SCALE, a, s); }
sv_node *sv_add_scalar(sv_node *a, double s) { return unary(OP_ADD_SCALAR, a, s); }

/* ---------- matmul ---------- */

sv_node *sv_matmul(sv_node *a, sv_node *b) { return sv_matmul_t(a, 0, b, 0); }

sv_node *sv_matmul_t(sv_node *a, int ta, sv_node *b, int tb)
{
  sv_node *in[2] = {a, b};
  sv_graph *g = graph_of(2, in);
  if (!g)
    return NULL;
  if (a->shape.ndim != 2 || b->shape.ndim != 2)
    return sv__graph_fail(g, "matmul: operands must be 2-D (got %d-D and %d-D)", a->shape.ndim,
                          b->shape.ndim);
  int m = ta ? a->shape.d[1] : a->shape.d[0], k = ta ? a->shape.d[0] : a->shape.d[1];
  int k2 = tb ? b->shape.d[1] : b->shape.d[0], n = tb ? b->shape.d[0] : b->shape.d[1];
  char sa[64], sb[64];
  sv__shape_format(&a->shape, sa, sizeof sa);
  sv__shape_format(&b->shape, sb, sizeof sb);
  if (k != k2)
    return sv__graph_fail(g, "matmul: inner dimensions differ: %s%s x %s%s", sa, ta ? "^T" : "", sb,
                          tb ? "^T" : "");
  if (n == SV_BATCH)
    return sv__graph_fail(g, "matmul: %s%s x %s%s would put the batch axis in a column", sa,
                          ta ? "^T" : "", sb, tb ? "^T" : "");
  sv_shape s = {2, {m, n, 1, 1}};
  sv_node *r = sv__node_new(g, OP_MATMUL, 2, in, &s);
  if (r) {
    r->ia[0] = ta != 0;
    r->ia[1] = tb != 0;
  }
  return r;
}

/* ---------- reductions and broadcasting ---------- */

static sv_node *reduce_or_expand(sv_op op, sv_node *a, int ndim, const int *dims, int mean)
{
  sv_graph *g = graph_of(1, &a);
  sv_shape t, chk;
  if (!g)
    return NULL;
  if (shape_make(&t, ndim, dims) < 0)
    return sv__graph_fail(g, "%s: bad target shape", op_names[op]);
  const sv_shape *big = op == OP_SUM_TO ? &a->shape : &t, *small = op == OP_SUM_TO ? &t : &a->shape;
  if (shape_broadcast(big, small, &chk) < 0 || !shape_equal(&chk, big) || small->ndim > big->ndim) {
    char sa[64], sb[64];
    sv__shape_format(&a->shape, sa, sizeof sa);
    sv__shape_format(&t, sb, sizeof sb);
    return sv__graph_fail(g, "%s: %s cannot be %s %s", op_names[op], sa,
                          op == OP_SUM_TO ? "summed to" : "broadcast to", sb);
  }
  if (shape_equal(&a->shape, &t))
    return a; /* nothing to do (and the mean ratio is 1) */
  sv_node *r = sv__node_new(g, op, 1, &a, &t);
  if (r)
    r->ia[0] = mean;
  return r;
}

sv_node *sv_sum_to(sv_node *a, int ndim, const int *dims)
{
  return reduce_or_expand(OP_SUM_TO, a, ndim, dims, 0);
}

sv_node *sv_broadcast_to(sv_node *a, int ndim, const int *dims)
{
  return reduce_or_expand(OP_BROADCAST, a, ndim, dims, 0);
}

/* Internal: the mean variants (divide by the element ratio, known at
   compile time when the batch axis is involved). */
sv_node *sv__sum_to_mean(sv_node *a, const sv_shape *t, int mean);
sv_node *sv__broadcast_mean(sv_node *a, const sv_shape *t, int mean);
sv_node *sv__sum_to_mean(sv_node *a, const sv_shape *t, int mean)
{
  return reduce_or_expand(OP_SUM_TO, a, t->ndim, t->d, mean);
}
sv_node *sv__broadcast_mean(sv_node *a, const sv_shape *t, int mean)
{
  return reduce_or_expand(OP_BROADCAST, a, t->ndim, t->d, mean);
}

sv_node *sv_sum(sv_node *a) { return reduce_or_expand(OP_SUM_TO, a, 0, NULL, 0); }

sv_node *sv_mean(sv_node *a)
{
  if (a && a->shape.ndim == 0)
    return a;
  return reduce_or_expand(OP_SUM_TO, a, 0, NULL, 1);
}

static sv_node *reduce_axis(sv_node *a, int axis, int mean)
{
  sv_graph *g = graph_of(1, &a);
  if (!g)
    return NULL;
  int nd = a->shape.ndim;
  if (axis < 0)
    axis += nd;
  if (axis < 0 || axis >= nd)
    return sv__graph_fail(g, "%s_axis: axis out of range for a %d-D node", mean ? "mean" : "sum", nd);
  sv_shape keep = a->shape, drop;
  keep.d[axis] = 1;
  drop.ndim = nd - 1;
  for (int i = 0, j = 0; i < nd; i++)
    if (i != axis)
      drop.d[j++] = a->shape.d[i];
  for (int i = drop.ndim; i < SV_MAX_DIMS; i++)
    drop.d[i] = 1;
  sv_node *r = reduce_or_expand(OP_SUM_TO, a, keep.ndim, keep.d, mean);
  return sv_reshape(r, drop.ndim, drop.d);
}

sv_node *sv_sum_axis(sv_node *a, int axis) { return reduce_axis(a, axis, 0); }
sv_node *sv_mean_axis(sv_node *a, int axis) { return reduce_axis(a, axis, 1); }

/* ---------- shape ops ---------- */

sv_node *sv_reshape(sv_node *a, int ndim, const int *dims)
{
  sv_graph *g = graph_of(1, &a);
  sv_shape t;
  if (!g)
    return NULL;
  if (shape_make(&t, ndim, dims) < 0)
    return sv__graph_fail(g, "reshape: bad target shape");
  char sa[64], sb[64];
  sv__shape_format(&a->shape, sa, sizeof sa);
  sv__shape_format(&t, sb, sizeof sb);
  if (sv__shape_is_batched(&a->shape) != sv__shape_is_batched(&t) ||
      sv__shape_count(&a->shape, 1) != sv__shape_count(&t, 1))
    return sv__graph_fail(g, "reshape: %s cannot become %s (same element count, batch axis kept first)",
                          sa, sb);
  if (shape_equal(&a->shape, &t))
    return a;
  return sv__node_new(g, OP_RESHAPE, 1, &a, &t);
}

sv_node *sv_transpose(sv_node *a)
{
  sv_graph *g = graph_of(1, &a);
  if (!g)
    return NULL;
  if (a->shape.ndim != 2 || sv__shape_is_batched(&a->shape))
    return sv__graph_fail(g, "transpose: needs a 2-D node without batch axis (use sv_matmul_t)");
  sv_shape t = {2, {a->shape.d[1], a->shape.d[0], 1, 1}};
  return sv__node_new(g, OP_TRANSPOSE, 1, &a, &t);
}

sv_node *sv_slice(sv_node *a, int axis, int start, int len)
{
  sv_graph *g = graph_of(1, &a);
  if (!g)
    return NULL;
  int nd = a->shape.ndim;
  if (axis < 0)
    axis += nd;
  if (axis < 0 || axis >= nd)
    return sv__graph_fail(g, "slice: axis out of range for a %d-D node", nd);
  if (a->shape.d[axis] == SV_BATCH)
    return sv__graph_fail(g, "slice: cannot slice the batch axis");
  if (start < 0 || len < 1 || start + len > a->shape.d[axis])
    return sv__graph_fail(g, "slice: [%d, %d) is outside axis %d of size %d", start, start + len, axis,
                          a->shape.d[axis]);
  sv_shape t = a->shape;
  t.d[axis] = len;
  sv_node *r = sv__node_new(g, OP_SLICE, 1, &a, &t);
  if (r) {
    r->ia[0] = axis;
    r->ia[1] = start;
    r->ia[2] = len;
  }
  return r;
}

sv_node *sv_concat(int n, sv_node *const *parts, int axis)
{
  sv_graph *g = n > 0 ? graph_of(n, parts) : NULL;
  if (!g)
    return NULL;
  int nd = parts[0]->shape.ndim;
  if (axis < 0)
    axis += nd;
  if (axis < 0 || axis >= nd)
    return sv__graph_fail(g, "concat: axis out of range for %d-D nodes", nd);
  if (parts[0]->shape.d[axis] == SV_BATCH)
    return sv__graph_fail(g, "concat: cannot join along the batch axis");
  if (n == 1)
    return parts[0];
  sv_shape t = parts[0]->shape;
  t.d[axis] = 0;
  for (int i = 0; i < n; i++) {
    const sv_shape *s = &parts[i]->shape;
    int ok = s->ndim == nd;
    for (int j = 0; ok && j < nd; j++)
      ok = j == axis || s->d[j] == t.d[j];
    if (!ok)
      return sv__graph_fail(g, "concat: part %d does not match the others except along axis %d", i, axis);
    t.d[axis] += s->d[axis];
  }
  sv_node *r = sv__node_new(g, OP_CONCAT, n, parts, &t);
  if (r)
    r->ia[0] = axis;
  return r;
}

/* ---------- indexing ---------- */

static sv_node *index_op(sv_op op, sv_node *a, int m, const int *idx, int nrows)
{
  sv_graph *g = graph_of(1, &a);
  if (!g)
    return NULL;
  const char *name = op == OP_GATHER ? "gather_rows" : "scatter_add_rows";
  if (a->shape.ndim < 1 || sv__shape_is_batched(&a->shape))
    return sv__graph_fail(g, "%s: needs a node of at least 1 axis without batch axis", name);
  if (m < 1 || !idx)
    return sv__graph_fail(g, "%s: needs at least one index", name);
  if (op == OP_SCATTER_ADD && a->shape.d[0] != m)
    return sv__graph_fail(g, "scatter_add_rows: %d indices for %d rows", m, a->shape.d[0]);
  int bound = op == OP_GATHER ? a->shape.d[0] : nrows;
  if (bound < 1)
    return sv__graph_fail(g, "%s: bad row count %d", name, bound);
  for (int i = 0; i < m; i++)
    if (idx[i] < 0 || idx[i] >= bound)
      return sv__graph_fail(g, "%s: index %d at position %d is outside [0, %d)", name, idx[i], i, bound);
  sv_shape t = a->shape;
  t.d[0] = op == OP_GATHER ? m : nrows;
  sv_node *r = sv__node_new(g, op, 1, &a, &t);
  if (!r)
    return NULL;
  r->idx = malloc((size_t)m * sizeof(int));
  if (!r->idx)
    return sv__graph_fail(g, "out of memory for indices");
  memcpy(r->idx, idx, (size_t)m * sizeof(int));
  r->nidx = m;
  return r;
}

sv_node *sv_gather_rows(sv_node *a, int m, const int *idx)
{
  return index_op(OP_GATHER, a, m, idx, 0);
}

sv_node *sv_scatter_add_rows(sv_node *a, int m, const int *idx, int nrows)
{
  return index_op(OP_SCATTER_ADD, a, m, idx, nrows);
}

/* ---------- fused ---------- */

sv_node *sv__tanh_back(sv_node *G, sv_node *y)
{
  sv_node *in[2] = {G, y};
  sv_graph *g = graph_of(2, in);
  if (!g)
    return NULL;
  if (G->shape.ndim != y->shape.ndim || memcmp(G->shape.d, y->shape.d, sizeof G->shape.d) != 0)
    return sv_mul(G, sv_add_scalar(sv_neg(sv_square(y)), 1.0)); /* broadcasting case */
  return sv__node_new(g, OP_TANH_BACK, 2, in, &y->shape);
}
