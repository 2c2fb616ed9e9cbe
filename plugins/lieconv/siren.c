/*
 * siren.c -- the SIREN kernel network (siren.h).
 */
#include "siren.h"

#include <math.h>
#include <stdio.h>

/* The sine layers: z [P, din] -> h_L [P, width]; the output layer's blocks
   declared too (in the order of the checkpoints), returned in *A and *a. */
static sv_node *hidden(sv_params *p, const char *name, const lie_siren *s, sv_node *z, sv_node **A,
                       sv_node **a)
{
  if (!z)
    return NULL;
  sv_graph *g = sv_node_graph(z);
  char bn[256];
  sv_node *h = z;
  int nin = s->din;
  for (int l = 0; l < s->layers; l++) {
    int wd[2] = {nin, s->width}, bd[1] = {s->width};
    snprintf(bn, sizeof bn, "%s.l%d.W", name, l);
    sv_node *W = sv_param(g, p, bn, 2, wd);
    snprintf(bn, sizeof bn, "%s.l%d.b", name, l);
    sv_node *b = sv_param(g, p, bn, 1, bd);
    h = sv_sin(sv_scale(sv_add(sv_matmul(h, W), b), s->w0));
    nin = s->width;
  }
  int wd[2] = {nin, s->nout}, bd[1] = {s->nout};
  snprintf(bn, sizeof bn, "%s.out.W", name);
  *A = sv_param(g, p, bn, 2, wd);
  snprintf(bn, sizeof bn, "%s.out.b", name);
  *a = sv_param(g, p, bn, 1, bd);
  return h;
}

sv_node *lie_siren_build(sv_params *p, const char *name, const lie_siren *s, sv_node *z)
{
  sv_node *A, *a, *h = hidden(p, name, s, z, &A, &a);
  return h ? sv_add(sv_matmul(h, A), a) : NULL;
}

sv_node *lie_siren_build_weighted(sv_params *p, const char *name, const lie_siren *s, sv_node *z,
                                  sv_node *f, int npoints, int group)
{
  sv_node *A, *a, *h = hidden(p, name, s, z, &A, &a);
  if (!h)
    return NULL;
  int hd[3] = {npoints, group, s->width}, fd[3] = {npoints, group, 1}, row[2] = {1, s->nout};
  sv_node *hs = sv_sum_axis(sv_reshape(sv_mul(h, f), 3, hd), 1); /* [P, width] */
  sv_node *fs = sv_sum_axis(sv_reshape(f, 3, fd), 1);             /* [P, 1] */
  return sv_add(sv_matmul(hs, A), sv_matmul(fs, sv_reshape(a, 2, row)));
}

static int fill_uniform(sv_params *p, const char *block, double lo, double hi, gsl_rng *rng)
{
  int i = sv_params_find(p, block);
  if (i < 0)
    return sv_fail("kernel network: no parameter block '%s'", block);
  double *d = sv_params_data(p);
  if (!d)
    return -1;
  d += sv_params_block_offset(p, i);
  size_t n = sv_params_block_size(p, i);
  for (size_t k = 0; k < n; k++)
    d[k] = lo + (hi - lo) * gsl_rng_uniform(rng);
  return 0;
}

int lie_siren_init(sv_params *p, const char *name, const lie_siren *s, gsl_rng *rng)
{
  char bn[256];
  int nin = s->din;
  for (int l = 0; l < s->layers; l++) {
    double wb = l == 0 ? 1.0 / nin : sqrt(6.0 / nin) / s->w0;
    double bb = l == 0 ? 1.0 / sqrt((double)nin) : 0.0;
    snprintf(bn, sizeof bn, "%s.l%d.W", name, l);
    if (fill_uniform(p, bn, -wb, wb, rng) < 0)
      return -1;
    snprintf(bn, sizeof bn, "%s.l%d.b", name, l);
    if (fill_uniform(p, bn, -bb, bb, rng) < 0)
      return -1;
    nin = s->width;
  }
  double ab = sqrt(6.0 / nin) / sqrt(s->fan_in);
  snprintf(bn, sizeof bn, "%s.out.W", name);
  if (fill_uniform(p, bn, -ab, ab, rng) < 0)
    return -1;
  snprintf(bn, sizeof bn, "%s.out.b", name);
  return fill_uniform(p, bn, 0, 0, rng);
}
