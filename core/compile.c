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
#include "internal.h"
#include "plan.h"

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
  free(p->buf);
  free(p->kind);
  free(p->off);
  free(p->shape);
  free(p->count);
  free(p->steps);
  free(p->arena);
  free(p->bound);
  free(p->visible);
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
  last = malloc((size_t)n * sizeof *last);
  if (!p->buf || !p->kind || !p->off || !p->shape || !p->count || !p->steps || !p->bound || !p->visible || !last)
    goto oom;

  /* needed nodes: walk back from the outputs in reverse id order */
  char *need = (char *)p->kind; /* reuse as a mark array before kinds are set */
  for (int k = 0; k < nout; k++)
    need[outputs[k]->id] = 1;
  for (int i = n - 1; i >= 0; i--)
    if (need[i])
      for (int j = 0; j < g->nodes[i]->nin; j++)
        need[g->nodes[i]->in[j]->id] = 1;

  /* kinds, shapes and the step list */
  for (int i = 0; i < n; i++) {
    if (!need[i]) {
      p->kind[i] = BUF_NONE;
      continue;
    }
    sv_node *nd = g->nodes[i];
    resolve_shape(&nd->shape, batch, &p->shape[i]);
    p->count[i] = sv__shape_count(&nd->shape, batch);
    switch (nd->op) {
    case OP_INPUT: p->kind[i] = BUF_INPUT; break;
    case OP_PARAM:
      if (sv__params_freeze(nd->params) < 0)
        goto fail;
      p->kind[i] = BUF_PARAM;
      break;
    case OP_CONST: p->kind[i] = BUF_CONST; break;
    case OP_RESHAPE: p->kind[i] = BUF_ALIAS; break;
    default:
      p->kind[i] = BUF_ARENA;
      p->steps[p->nsteps++] = i;
    }
  }

  /* last reader of each arena buffer (a view extends its source's life) */
  for (int i = 0; i < n; i++)
    last[i] = -1;
  for (int s = 0; s < p->nsteps; s++) {
    sv_node *nd = g->nodes[p->steps[s]];
    for (int j = 0; j < nd->nin; j++)
      last[nd->in[j]->id] = s;
  }
  for (int i = n - 1; i >= 0; i--) /* views: push their life to the source */
    if (p->kind[i] == BUF_ALIAS) {
      int src = g->nodes[i]->in[0]->id;
      if (last[i] > last[src])
        last[src] = last[i];
    }
  for (int k = 0; k < nout; k++) { /* outputs live forever (and so do their sources) */
    int id = outputs[k]->id;
    while (p->kind[id] == BUF_ALIAS) {
      last[id] = p->nsteps;
      p->visible[id] = 1;
      id = g->nodes[id]->in[0]->id;
    }
    last[id] = p->nsteps;
    p->visible[id] = 1;
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
  for (int s = 0; s < p->nsteps && !failed; s++) {
    int id = p->steps[s];
    fl_alloc(&fl, p->count[id], &p->off[id]);
    if (last[id] < 0) /* computed but never read: free at once */
      failed |= fl_free(&fl, p->off[id], p->count[id]);
    for (int d = dies[s]; d >= 0; d = next[d])
      failed |= fl_free(&fl, p->off[d], p->count[d]);
  }
  free(dies);
  free(next);
  if (failed)
    goto oom;
  p->arena_size = fl.top;
  p->arena = malloc((fl.top ? fl.top : 1) * sizeof(double));
  if (!p->arena)
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
    case BUF_ALIAS: p->buf[i] = p->buf[nd->in[0]->id]; break;
    }
  }
  p->dirty = 0;
  return 0;
}

int sv_plan_bind(sv_plan *p, sv_node *input, const double *data)
{
  if (!p || !input || input->g != p->g || input->op != OP_INPUT)
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
int sv_plan_step_count(const sv_plan *p) { return p ? p->nsteps : 0; }
