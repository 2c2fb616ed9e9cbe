/*
 * plan.h -- the compiled plan (compile.c builds it, kernels.c runs it, the
 * ops' kernels read their inputs' buffers and shapes from it).
 */
#ifndef SV_PLAN_H
#define SV_PLAN_H

#include "internal.h"

enum { BUF_NONE = 0, BUF_ARENA, BUF_INPUT, BUF_PARAM, BUF_CONST, BUF_ALIAS };

struct sv_plan {
  sv_graph *g;
  int batch;
  int nnodes;            /* g->n when compiled; later nodes are not in the plan */
  /* per node id */
  double **buf;          /* resolved storage */
  char *kind;            /* BUF_* */
  int *src;              /* BUF_ALIAS: the node whose buffer this one shares */
  size_t *off;           /* arena offset (doubles) */
  sv_shape *shape;       /* shape with the batch axis resolved */
  size_t *count;         /* elements */
  const double **bound;  /* input bindings */
  char *visible;         /* readable after a run: outputs, leaves, views of them
                            (other arena slices are reused) */
  /* execution */
  int *steps;            /* node ids to compute, in order */
  int nsteps;
  int *fused;            /* per step: the length of the fused elementwise run it
                            starts (>= 2), 1 for a step on its own, 0 inside a run */
  double *arena;
  size_t arena_size;     /* doubles */
  double *work;          /* scratch shared by the kernels (the largest op->work) */
  size_t work_size;      /* doubles */
  void **state;          /* per node id: what op->prepare made (NULL if none) */
  int dirty;             /* bindings changed: re-resolve pointers */
};

SV_HIDDEN int sv__plan_resolve(sv_plan *p);

#endif
