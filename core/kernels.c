/*
 * kernels.c -- running a plan: each step calls its op's kernel (defined
 * with the op under core/ops/) on resolved buffers. A run of elementwise
 * steps fused at compile time goes block by block: every op of the run on
 * elements [i, i + FUSE_BLOCK), then the next block, so a chain's
 * intermediate values stay in cache. Nothing is allocated.
 */
#include "ops/ops.h"

/* doubles per block: a chain of ~10 ops touches ~20 blocks, ~160 KB */
#define FUSE_BLOCK 1024

static int step_ctx(sv_plan *p, int s, sv_kctx *k)
{
  int id = p->steps[s];
  k->n = p->g->nodes[id];
  k->y = p->buf[id];
  k->ys = &p->shape[id];
  k->ny = p->count[id];
  k->state = p->state ? p->state[id] : NULL;
  return id;
}

static int failed(const sv_kctx *k)
{
  return sv_fail_context("plan run: node %d (%s)", k->n->id, k->n->op->name);
}

int sv_plan_run(sv_plan *p)
{
  if (!p)
    return sv_fail("plan run: no plan");
  if (p->dirty && sv__plan_resolve(p) < 0)
    return -1;
  sv_kctx k = {.p = p, .work = p->work};
  for (int s = 0; s < p->nsteps;) {
    int len = p->fused[s];
    if (len == 1) {
      step_ctx(p, s, &k);
      k.off = 0;
      k.len = k.ny;
      if (k.n->op->kernel(&k) < 0)
        return failed(&k);
      s++;
      continue;
    }
    size_t total = p->count[p->steps[s]];
    for (size_t off = 0; off < total; off += FUSE_BLOCK) {
      for (int t = s; t < s + len; t++) {
        step_ctx(p, t, &k);
        k.off = off;
        k.len = total - off < FUSE_BLOCK ? total - off : FUSE_BLOCK;
        if (k.n->op->kernel(&k) < 0)
          return failed(&k);
      }
    }
    s += len;
  }
  return 0;
}
