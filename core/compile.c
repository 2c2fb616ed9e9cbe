/*
 * compile.c -- turning a graph into a plan for one batch size.
 *
 * A plan keeps only the nodes the outputs need (in id order, which is
 * topological), resolves the batch axis, and gives every intermediate a
 * slice of one arena. Slices are reused once their last reader has run, so
 * the arena is about the size of the live set, not of the whole graph.
 * Inputs and parameters are not copied: their buffers are the caller's
 * bound arrays and the params vector. Reshapes are views of their input.
 * Running a plan allocates nothing.
 */
#include "ops/ops.h"

#include <stdlib.h>
#include <string.h>

/* ---------- arena slices: a free list sorted by offset ---------- */

typedef struct {
  size_t off, len;
} span;

typedef struct {
  span *v;
  int n, cap;
  size_t top; /* arena size so far */
} freelist;

static size_t round_up(size_t n) { return (n + 7) & ~(size_t)7; } /* 64-byte slices */

static int fl_alloc(freelist *f, size_t len, size_t *off)
{
  len = round_up(len);
  for (int i = 0; i < f->n; i++) {
    if (f->v[i].len >= len) {
      *off = f->v[i].off;
      f->v[i].off += len;
      f->v[i].len -= len;
      if (f->v[i].len == 0) {
        memmove(&f->v[i], &f->v[i + 1], (size_t)(f->n - i - 1) * sizeof(span));
        f->n--;
      }
      return 0;
    }
  }
  /* grow at the end; absorb a free span touching the top */
  if (f->n > 0 && f->v[f->n - 1].off + f->v[f->n - 1].len == f->top) {
    *off = f->v[f->n - 1].off;
    f->top = *off + len;
    f->n--;
    return 0;
  }
  *off = f->top;
  f->top += len;
  return 0;
}

static int fl_free(freelist *f, size_t off, size_t len)
{
  len = round_up(len);
  if (f->n == f->cap) {
    int cap = f->cap ? 2 * f->cap : 32;
    span *v = realloc(f->v, (size_t)cap * sizeof *v);
    if (!v)
      return -1;
    f->v = v;
    f->cap = cap;
  }
  int i = 0;
  while (i < f->n && f->v[i].off < off)
    i++;
  memmove(&f->v[i + 1], &f->v[i], (size_t)(f->n - i) * sizeof(span));
  f->v[i].off = off;
  f->v[i].len = len;
  f->n++;
  /* merge with neighbours */
  if (i + 1 < f->n && f->v[i].off + f->v[i].len == f->v[i + 1].off) {
    f->v[i].len += f->v[i + 1].len;
    memmove(&f->v[i + 1], &f->v[i + 2], (size_t)(f->n - i - 2) * sizeof(span));
    f->n--;
  }
  if (i > 0 && f->v[i - 1].off + f->v[i - 1].len == f->v[i].off) {
    f->v[i - 1].len += f->v[i].len;
    memmove(&f->v[i], &f->v[i + 1], (size_t)(f->n - i - 1) * sizeof(span));
    f->n--;
  }
  return 0;
}

/* ---------- folding: merge duplicates and trivial ops ---------- */

/* The storage a view finally reads. */
static int root_of(const sv_plan *p, int id)
{
  while (p->kind[id] == BUF_ALIAS)
    id = p->src[id];
  return id;
}

int sv__fold_input(const sv_fold *f, int id, int i) { return f->rep[f->p->g->nodes[id]->in[i]->id]; }

/* A constant, possibly broadcast, equal to v everywhere. */
int sv__fold_is_const(const sv_fold *f, int id, double v)
{
  const sv_graph *g = f->p->g;
  const sv_node *n = g->nodes[f->rep[id]];
  if (n->op == &sv__op_broadcast && !n->ia[0])
    n = g->nodes[f->rep[n->in[0]->id]];
  if (n->op != &sv__op_const)
    return 0;
  size_t c = sv__shape_count(&n->shape, 1);
  for (size_t k = 0; k < c; k++)
    if (n->data[k] != v)
      return 0;
  return 1;
}

int sv__fold_same_shape(const sv_fold *f, int a, int b)
{
  return sv__shape_equal(&f->p->shape[a], &f->p->shape[b]);
}

/* Same op, same (merged) inputs, same attributes: same value. */
static int same_node(const int *rep, const sv_node *x, const sv_node *y)
{
  if (x->op != y->op || x->nin != y->nin || x->a != y->a || memcmp(x->ia, y->ia, sizeof x->ia) != 0 ||
      x->nidx != y->nidx || x->shape.ndim != y->shape.ndim)
    return 0;
  for (int j = 0; j < x->nin; j++)
    if (rep[x->in[j]->id] != rep[y->in[j]->id])
      return 0;
  for (int j = 0; j < x->shape.ndim; j++)
    if (x->shape.d[j] != y->shape.d[j])
      return 0;
  return x->nidx == 0 || memcmp(x->idx, y->idx, (size_t)x->nidx * sizeof(int)) == 0;
}

static size_t node_hash(const int *rep, const sv_node *x)
{
  size_t h = (size_t)x->op * 0x9E3779B97F4A7C15u;
  for (int j = 0; j < x->nin; j++)
    h = (h ^ (size_t)rep[x->in[j]->id]) * 0x100000001B3u;
  h ^= (size_t)x->ia[0] << 7 ^ (size_t)x->ia[1] << 13 ^ (size_t)x->ia[2] << 19;
  return h;
}

/* Fill rep[]: for each needed node, the node whose value it shares: a
   node its op's folding rule says it equals (x*1 is x: derivative graphs
   are full of these, the seed of sv_grad being a broadcast 1), or an
   earlier node with the same op, inputs and attributes. */
static int fold_nodes(const sv_plan *p, const char *need, int *rep)
{
  const sv_graph *g = p->g;
  sv_fold f = {p, rep};
  size_t cap = 64;
  while (cap < 2 * (size_t)g->n)
    cap *= 2;
  int *table = malloc(cap * sizeof *table);
  if (!table)
    return -1;
  for (size_t k = 0; k < cap; k++)
    table[k] = -1;
  for (int i = 0; i < g->n; i++) {
    const sv_node *n = g->nodes[i];
    if (!need[i] || n->nin == 0)
      continue;
    int t = n->op->fold ? n->op->fold(&f, i) : -1;
    if (t >= 0) {
      rep[i] = t;
      continue;
    }
    size_t k = node_hash(rep, n) & (cap - 1);
    while (table[k] >= 0 && !same_node(rep, g->nodes[table[k]], n))
      k = (k + 1) & (cap - 1);
    if (table[k] >= 0)
      rep[i] = table[k];
    else
      table[k] = i;
  }
  free(table);
  return 0;
}

/* ---------- fusion of elementwise chains ---------- */

/* A step that computes element i from element i of inputs of its own size
   (or from 1-element inputs): it can run block by block. */
static int fusable(const sv_plan *p, int id)
{
  const sv_node *nd = p->g->nodes[id];
  if (!(nd->op->flags & SV_OPF_ELEMENTWISE) || p->count[id] < 2)
    return 0;
  for (int j = 0; j < nd->nin; j++) {
    size_t c = p->count[nd->in[j]->id];
    if (c != 1 && c != p->count[id])
      return 0;
  }
  return 1;
}

/* Runs of consecutive fusable steps of one size: p->fused[s] is the length
   of the run starting at s (1 alone, 0 inside a run), run_end[s] the last
   step of s's run. SV_FUSE=0 in the environment turns fusion off. */
static void find_runs(sv_plan *p, int *run_end)
{
  const char *env = getenv("SV_FUSE");
  int on = !(env && strcmp(env, "0") == 0);
  for (int s = 0; s < p->nsteps;) {
    int t = s;
    if (on && fusable(p, p->steps[s]))
      while (t + 1 < p->nsteps && fusable(p, p->steps[t + 1]) &&
             p->count[p->steps[t + 1]] == p->count[p->steps[s]])
        t++;
    p->fused[s] = t - s + 1;
    for (int u = s; u <= t; u++) {
      run_end[u] = t;
      if (u > s)
        p->fused[u] = 0;
    }
    s = t + 1;
  }
}

/* ---------- compile ---------- */

static void resolve_shape(const sv_shape *s, int batch, sv_shape *out)
{
  *out = *s;
  if (sv__shape_is_batched(s))
    out->d[0] = batch;
}

void sv_plan_free(sv_plan *p)
{
  if (!p)
    return;
  /* the ops' state first: its release reads the step list */
  if (p->state) {
    for (int s = 0; s < p->nsteps; s++) {
      int id = p->steps[s];
      if (p->state[id] && p->g->nodes[id]->op->release)
        p->g->nodes[id]->op->release(p->state[id]);
    }
    free(p->state);
  }
  free(p->buf);
  free(p->kind);
  free(p->off);
  free(p->shape);
  free(p->count);
  free(p->steps);
  free(p->fused);
  free(p->arena);
  free(p->bound);
  free(p->visible);
  free(p->src);
  free(p->work);
  free(p);
}

sv_plan *sv_compile(sv_graph *g, int nout, sv_node *const *outputs, int batch)
{
  if (!g)
    return sv_fail("compile: no graph"), NULL;
  if (g->error)
    return sv_fail("compile: the graph has an error: %s", g->error), NULL;
  if (nout < 1 || !outputs)
    return sv_fail("compile: no outputs"), NULL;
  for (int k = 0; k < nout; k++)
    if (!outputs[k] || outputs[k]->g != g)
      return sv_fail("compile: output %d is not a node of this graph", k), NULL;
  if (batch < 1)
    return sv_fail("compile: batch size %d (must be >= 1)", batch), NULL;

  int n = g->n;
  sv_plan *p = calloc(1, sizeof *p);
  int *last = NULL;
  freelist fl = {0};
  if (!p)
    goto oom;
  p->g = g;
  p->batch = batch;
  p->nnodes = n;
  p->buf = calloc((size_t)n, sizeof *p->buf);
  p->kind = calloc((size_t)n, sizeof *p->kind);
  p->off = calloc((size_t)n, sizeof *p->off);
  p->shape = calloc((size_t)n, sizeof *p->shape);
  p->count = calloc((size_t)n, sizeof *p->count);
  p->steps = calloc((size_t)n, sizeof *p->steps);
  p->bound = calloc((size_t)n, sizeof *p->bound);
  p->visible = calloc((size_t)n, 1);
  p->src = malloc((size_t)n * sizeof *p->src);
  last = malloc((size_t)n * sizeof *last);
  if (!p->buf || !p->kind || !p->off || !p->shape || !p->count || !p->steps || !p->bound || !p->visible || !p->src || !last)
    goto oom;

  /* needed nodes: walk back from the outputs in reverse id order */
  char *need = calloc((size_t)n, 1);
  int *rep = malloc((size_t)n * sizeof *rep);
  if (!need || !rep) {
    free(need);
    free(rep);
    goto oom;
  }
  for (int k = 0; k < nout; k++)
    need[outputs[k]->id] = 1;
  for (int i = n - 1; i >= 0; i--)
    if (need[i])
      for (int j = 0; j < g->nodes[i]->nin; j++)
        need[g->nodes[i]->in[j]->id] = 1;

  /* shapes, then merge duplicates and trivial ops (see fold_node) */
  for (int i = 0; i < n; i++) {
    rep[i] = i;
    if (!need[i])
      continue;
    resolve_shape(&g->nodes[i]->shape, batch, &p->shape[i]);
    p->count[i] = sv__shape_count(&g->nodes[i]->shape, batch);
  }
  if (fold_nodes(p, need, rep) < 0) {
    free(need);
    free(rep);
    goto oom;
  }

  /* kinds and the step list: a node merged into another, or a reshape,
     is a view (BUF_ALIAS) of p->src */
  for (int i = 0; i < n; i++) {
    sv_node *nd = g->nodes[i];
    p->src[i] = -1;
    if (!need[i]) {
      p->kind[i] = BUF_NONE;
      continue;
    }
    if (rep[i] != i) {
      p->kind[i] = BUF_ALIAS;
      p->src[i] = rep[i];
      continue;
    }
    switch (nd->op->store) {
    case SV_STORE_INPUT: p->kind[i] = BUF_INPUT; break;
    case SV_STORE_PARAM:
      if (sv__params_freeze(nd->params) < 0) {
        free(need);
        free(rep);
        goto fail;
      }
      p->kind[i] = BUF_PARAM;
      break;
    case SV_STORE_CONST: p->kind[i] = BUF_CONST; break;
    case SV_STORE_VIEW:
      p->kind[i] = BUF_ALIAS;
      p->src[i] = rep[nd->in[0]->id];
      break;
    case SV_STORE_ARENA:
      p->kind[i] = BUF_ARENA;
      break;
    }
  }
  /* drop what only merged-away nodes read: mark again through the views */
  memset(need, 0, (size_t)n);
  for (int k = 0; k < nout; k++)
    need[outputs[k]->id] = 1;
  for (int i = n - 1; i >= 0; i--) {
    if (!need[i])
      continue;
    if (p->kind[i] == BUF_ALIAS)
      need[p->src[i]] = 1;
    else
      for (int j = 0; j < g->nodes[i]->nin; j++)
        need[g->nodes[i]->in[j]->id] = 1;
  }
  for (int i = 0; i < n; i++) {
    if (!need[i])
      p->kind[i] = BUF_NONE;
    else if (p->kind[i] == BUF_ARENA)
      p->steps[p->nsteps++] = i;
  }
  free(need);
  free(rep);

  /* fused elementwise runs; a buffer read inside a run lives to its end */
  int *run_end = malloc(((size_t)p->nsteps + 1) * sizeof *run_end);
  p->fused = malloc(((size_t)p->nsteps + 1) * sizeof *p->fused);
  if (!run_end || !p->fused) {
    free(run_end);
    goto oom;
  }
  find_runs(p, run_end);

  /* last reader of each arena buffer; a view's readers read its root */
  for (int i = 0; i < n; i++)
    last[i] = -1;
  for (int s = 0; s < p->nsteps; s++) {
    sv_node *nd = g->nodes[p->steps[s]];
    for (int j = 0; j < nd->nin; j++)
      last[root_of(p, nd->in[j]->id)] = run_end[s];
  }
  for (int k = 0; k < nout; k++) { /* outputs live forever (and so do their sources) */
    int id = outputs[k]->id;
    p->visible[id] = 1;
    last[root_of(p, id)] = p->nsteps;
  }
  for (int i = 0; i < n; i++)
    if (p->kind[i] == BUF_INPUT || p->kind[i] == BUF_PARAM || p->kind[i] == BUF_CONST)
      p->visible[i] = 1;

  /* place arena buffers: allocate at the step, free after the last reader */
  int *dies = calloc((size_t)p->nsteps + 1, sizeof *dies); /* head of a per-step list */
  int *next = malloc((size_t)n * sizeof *next);
  if (!dies || !next) {
    free(dies);
    free(next);
    goto oom;
  }
  for (int s = 0; s <= p->nsteps; s++)
    dies[s] = -1;
  for (int i = 0; i < n; i++) {
    next[i] = -1;
    if (p->kind[i] == BUF_ARENA && last[i] >= 0 && last[i] < p->nsteps) {
      next[i] = dies[last[i]];
      dies[last[i]] = i;
    }
  }
  int failed = 0;
  for (int s = 0; s < p->nsteps; s++) { /* computed but never read: free at its run's end */
    int id = p->steps[s];
    if (last[id] < 0) {
      next[id] = dies[run_end[s]];
      dies[run_end[s]] = id;
    }
  }
  for (int s = 0; s < p->nsteps && !failed; s++) {
    int id = p->steps[s];
    fl_alloc(&fl, p->count[id], &p->off[id]);
    for (int d = dies[s]; d >= 0; d = next[d])
      failed |= fl_free(&fl, p->off[d], p->count[d]);
  }
  free(dies);
  free(next);
  free(run_end);
  if (failed)
    goto oom;
  p->arena_size = fl.top;
  p->arena = malloc((fl.top ? fl.top : 1) * sizeof(double));
  if (!p->arena)
    goto oom;

  /* the ops' scratch (one area: steps run one at a time) and state */
  for (int s = 0; s < p->nsteps; s++) {
    const sv_node *nd = g->nodes[p->steps[s]];
    if (nd->op->work) {
      size_t w = nd->op->work(p, nd);
      if (w > p->work_size)
        p->work_size = w;
    }
    if (nd->op->prepare) {
      if (!p->state && !(p->state = calloc((size_t)n, sizeof *p->state)))
        goto oom;
      if (nd->op->prepare(p, nd, &p->state[nd->id]) < 0) {
        sv_fail_context("compile: node %d (%s)", nd->id, nd->op->name);
        goto fail;
      }
    }
  }
  if (p->work_size && !(p->work = malloc(p->work_size * sizeof(double))))
    goto oom;
  p->dirty = 1;
  free(fl.v);
  free(last);
  return p;

oom:
  sv_fail("compile: out of memory");
fail:
  free(fl.v);
  free(last);
  sv_plan_free(p);
  return NULL;
}

/* Point every buffer at its storage (after compile or a new binding). */
int sv__plan_resolve(sv_plan *p)
{
  sv_graph *g = p->g;
  for (int i = 0; i < p->nnodes; i++) {
    sv_node *nd = g->nodes[i];
    switch (p->kind[i]) {
    case BUF_NONE: p->buf[i] = NULL; break;
    case BUF_ARENA: p->buf[i] = p->arena + p->off[i]; break;
    case BUF_INPUT:
      if (!p->bound[i])
        return sv_fail("plan: input '%s' is not bound (sv_plan_bind)", nd->name);
      p->buf[i] = (double *)p->bound[i];
      break;
    case BUF_PARAM: p->buf[i] = nd->params->data + nd->params->blocks[nd->block].offset; break;
    case BUF_CONST: p->buf[i] = nd->data; break;
    case BUF_ALIAS: p->buf[i] = p->buf[p->src[i]]; break;
    }
  }
  p->dirty = 0;
  return 0;
}

int sv_plan_bind(sv_plan *p, sv_node *input, const double *data)
{
  if (!p || !input || input->g != p->g || !sv__is_input(input))
    return sv_fail("plan bind: not an input node of this plan's graph");
  if (!data)
    return sv_fail("plan bind: input '%s': no data", input->name);
  if (input->id >= p->nnodes || p->kind[input->id] != BUF_INPUT)
    return 0; /* the plan does not read this input: nothing to do */
  p->bound[input->id] = data;
  p->dirty = 1;
  return 0;
}

const double *sv_plan_value(const sv_plan *p, const sv_node *n)
{
  if (!p || !n || n->g != p->g || n->id >= p->nnodes || !p->visible[n->id])
    return NULL;
  if (p->dirty && sv__plan_resolve((sv_plan *)p) < 0)
    return NULL;
  return p->buf[n->id];
}

size_t sv_plan_size(const sv_plan *p, const sv_node *n)
{
  if (!p || !n || n->g != p->g || n->id >= p->nnodes || p->kind[n->id] == BUF_NONE)
    return 0;
  return p->count[n->id];
}

size_t sv_plan_arena_bytes(const sv_plan *p) { return p ? p->arena_size * sizeof(double) : 0; }

int sv__plan_fused_runs(const sv_plan *p)
{
  int r = 0;
  for (int s = 0; p && s < p->nsteps; s++)
    r += p->fused[s] > 1;
  return r;
}
int sv_plan_step_count(const sv_plan *p) { return p ? p->nsteps : 0; }
