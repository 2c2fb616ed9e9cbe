/*
 * kernels.c -- running a plan: each step calls its op's kernel (defined
 * with the op under core/ops/) on resolved buffers. Nothing is allocated.
 */
#include "ops/ops.h"

int sv_plan_run(sv_plan *p)
{
  if (!p)
    return sv_fail("plan run: no plan");
  if (p->dirty && sv__plan_resolve(p) < 0)
    return -1;
  sv_kctx k = {.p = p, .work = p->work};
  for (int s = 0; s < p->nsteps; s++) {
    int id = p->steps[s];
    k.n = p->g->nodes[id];
    k.y = p->buf[id];
    k.ys = &p->shape[id];
    k.ny = p->count[id];
    k.state = p->state ? p->state[id] : NULL;
    if (k.n->op->kernel(&k) < 0)
      return sv_fail_context("plan run: node %d (%s)", id, k.n->op->name);
  }
  return 0;
}
