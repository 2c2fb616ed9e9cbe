/*
 * params.c -- the parameter vector: named blocks in one contiguous array.
 *
 * Blocks are declared while a graph is built (sv_param); the array is
 * allocated when the vector is frozen (first sv_params_data or compile),
 * so every view (plan buffers, optimizers, checkpoints) sees one stable
 * pointer.
 */
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

sv_params *sv_params_new(void) { return calloc(1, sizeof(sv_params)); }

void sv_params_free(sv_params *p)
{
  if (!p)
    return;
  for (int i = 0; i < p->nblocks; i++)
    free(p->blocks[i].name);
  free(p->blocks);
  free(p->data);
  free(p->scales);
  free(p);
}

int sv__params_freeze(sv_params *p)
{
  if (!p)
    return sv_fail("no params vector");
  if (p->frozen)
    return 0;
  p->data = calloc(p->count ? p->count : 1, sizeof(double));
  if (!p->data)
    return sv_fail("out of memory for %zu parameters", p->count);
  p->frozen = 1;
  return 0;
}

size_t sv_params_count(const sv_params *p) { return p ? p->count : 0; }

double *sv_params_data(sv_params *p)
{
  if (sv__params_freeze(p) < 0)
    return NULL;
  return p->data;
}

int sv_params_block_count(const sv_params *p) { return p ? p->nblocks : 0; }

static const sv_param_block *block(const sv_params *p, int i)
{
  return p && i >= 0 && i < p->nblocks ? &p->blocks[i] : NULL;
}

const char *sv_params_block_name(const sv_params *p, int i)
{
  const sv_param_block *b = block(p, i);
  return b ? b->name : NULL;
}

size_t sv_params_block_offset(const sv_params *p, int i)
{
  const sv_param_block *b = block(p, i);
  return b ? b->offset : 0;
}

size_t sv_params_block_size(const sv_params *p, int i)
{
  const sv_param_block *b = block(p, i);
  return b ? b->size : 0;
}

sv_node *sv_param(sv_graph *g, sv_params *p, const char *name, int ndim, const int *dims)
{
  if (!g || g->error)
    return NULL;
  if (!p)
    return sv__graph_fail(g, "param '%s': no params vector", name ? name : "?");
  if (p->frozen)
    return sv__graph_fail(g, "param '%s': the params vector is frozen (declare every block before "
                             "sv_params_data or sv_compile)", name ? name : "?");
  sv_shape s;
  s.ndim = ndim;
  size_t size = 1;
  if (ndim < 0 || ndim > SV_MAX_DIMS)
    return sv__graph_fail(g, "param '%s': bad number of axes %d", name ? name : "?", ndim);
  for (int i = 0; i < SV_MAX_DIMS; i++) {
    s.d[i] = i < ndim ? dims[i] : 1;
    if (i < ndim && dims[i] < 1)
      return sv__graph_fail(g, "param '%s': axis %d has size %d (a parameter has no batch axis)",
                            name ? name : "?", i, dims[i]);
    size *= (size_t)s.d[i];
  }
  if (p->nblocks == p->cap) {
    int cap = p->cap ? 2 * p->cap : 16;
    sv_param_block *b = realloc(p->blocks, (size_t)cap * sizeof *b);
    if (!b)
      return sv__graph_fail(g, "out of memory for params");
    p->blocks = b;
    p->cap = cap;
  }
  sv_param_block *b = &p->blocks[p->nblocks];
  memset(b, 0, sizeof *b);
  b->name = strdup(name ? name : "param");
  b->shape = s;
  b->offset = p->count;
  b->size = size;
  sv_node *n = sv__node_new(g, &sv__op_param, 0, NULL, &s);
  if (!n || !b->name) {
    free(b->name);
    return n ? sv__graph_fail(g, "out of memory for params") : NULL;
  }
  n->params = p;
  n->block = p->nblocks++;
  n->name = strdup(b->name);
  p->count += size;
  return n;
}

int sv_params_set_kind(sv_params *p, sv_node *param, sv_param_kind kind, int fan_in, int fan_out)
{
  if (!param || !sv__is_param(param) || param->params != p)
    return sv_fail("sv_params_set_kind: not a parameter of this vector");
  sv_param_block *b = &p->blocks[param->block];
  b->kind = kind;
  b->fan_in = fan_in;
  b->fan_out = fan_out;
  return 0;
}

int sv_params_init_glorot(sv_params *p, gsl_rng *rng)
{
  if (!rng)
    return sv_fail("glorot init: no RNG");
  if (sv__params_freeze(p) < 0)
    return -1;
  for (int i = 0; i < p->nblocks; i++) {
    const sv_param_block *b = &p->blocks[i];
    double *v = p->data + b->offset;
    if (b->kind == SV_PARAM_WEIGHT) {
      double bound = sqrt(6.0 / (double)(b->fan_in + b->fan_out));
      for (size_t j = 0; j < b->size; j++)
        v[j] = bound * (2.0 * gsl_rng_uniform(rng) - 1.0);
    } else if (b->kind == SV_PARAM_BIAS) {
      memset(v, 0, b->size * sizeof *v);
    }
    /* SV_PARAM_OTHER: left as the plugin set it. */
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Per-block learning-rate and weight-decay scales                     */
/* ------------------------------------------------------------------ */

int sv_params_set_scales(sv_params *p, const char *block_prefix, double lr_scale,
                         double decay_scale)
{
  const char *pre = block_prefix ? block_prefix : "";
  if (!p)
    return sv_fail("sv_params_set_scales '%s': no params vector", pre);
  if (!(lr_scale >= 0) || !isfinite(lr_scale))
    return sv_fail("sv_params_set_scales '%s': lr_scale must be finite and >= 0 (got %g)", pre,
                   lr_scale);
  if (!(decay_scale >= 0) || !isfinite(decay_scale))
    return sv_fail("sv_params_set_scales '%s': decay_scale must be finite and >= 0 (got %g)", pre,
                   decay_scale);
  size_t k = strlen(pre);
  int matched = 0;
  for (int i = 0; i < p->nblocks; i++)
    matched += strncmp(p->blocks[i].name, pre, k) == 0;
  if (!matched)
    return sv_fail("sv_params_set_scales: no parameter block name starts with '%s' (%d blocks%s%s)",
                   pre, p->nblocks, p->nblocks ? ", the first is " : "",
                   p->nblocks ? p->blocks[0].name : "");
  if (p->nscales < p->nblocks) {
    double *sc = realloc(p->scales, 2 * (size_t)p->nblocks * sizeof *sc);
    if (!sc)
      return sv_fail("sv_params_set_scales '%s': out of memory", pre);
    for (int i = p->nscales; i < p->nblocks; i++)
      sc[2 * i] = sc[2 * i + 1] = 1;
    p->scales = sc;
    p->nscales = p->nblocks;
  }
  for (int i = 0; i < p->nblocks; i++)
    if (strncmp(p->blocks[i].name, pre, k) == 0) {
      p->scales[2 * i] = lr_scale;
      p->scales[2 * i + 1] = decay_scale;
    }
  return 0;
}

double sv_params_block_lr_scale(const sv_params *p, int i)
{
  return p && i >= 0 && i < p->nscales ? p->scales[2 * i] : 1.0;
}

double sv_params_block_decay_scale(const sv_params *p, int i)
{
  return p && i >= 0 && i < p->nscales ? p->scales[2 * i + 1] : 1.0;
}
