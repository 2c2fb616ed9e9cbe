/*
 * layers.c -- lifting and group-convolution filters from a kernel network
 * (layers.h).
 */
#include "layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lie_grid_point(int k, int t, double *x, double *y)
{
  int p = t / k, q = t % k;
  *x = (2.0 * q + 1) / k - 1;
  *y = (2.0 * p + 1) / k - 1;
}

void lie_cell_point(int k, int t, int sub, int s, double *x, double *y)
{
  double cx, cy, h = 1.0 / k; /* half the cell's side */
  lie_grid_point(k, t, &cx, &cy);
  *x = cx + h * ((2.0 * (s % sub) + 1) / sub - 1);
  *y = cy + h * ((2.0 * (s / sub) + 1) / sub - 1);
}

int lie_layer_build(lie_layer *L, sv_graph *g, sv_params *p)
{
  int kk = L->k * L->k;
  if (L->sub < 1) /* a layer struct zeroed by its caller: the cell centre */
    L->sub = 1;
  int ss = L->sub * L->sub;
  if (L->lift)
    L->nin = 1;
  L->din = L->lift ? 2 : 2 + lie_group_dim(L->group) + (L->angle == LIE_ANGLE_CIRCLE);
  L->npoints = L->nout * L->nin * kk * ss;
  L->z = malloc((size_t)L->npoints * L->din * sizeof *L->z);
  L->f = malloc((size_t)L->npoints * sizeof *L->f);
  size_t nw = (size_t)L->cout * L->nout * L->cin * L->nin * kk;
  int *perm = malloc(nw * sizeof *perm);
  if (!L->z || !L->f || !perm) {
    free(perm);
    return sv_fail("layer %s: out of memory for %d kernel points", L->name, L->npoints);
  }
  char nm[64];
  snprintf(nm, sizeof nm, "%s.points", L->name);
  int zd[2] = {L->npoints, L->din}, fd[2] = {L->npoints, 1};
  L->zin = sv_input(g, nm, 2, zd);
  snprintf(nm, sizeof nm, "%s.factors", L->name);
  L->fin = sv_input(g, nm, 2, fd);
  L->net.din = L->din;
  L->net.nout = L->cout * L->cin;
  L->net.fan_in = (double)L->cin * kk;
  snprintf(nm, sizeof nm, "%s.kernel", L->name);
  /* [taps, oc]; with sub > 1 the factor-weighted sums over each tap's ss
     points (the factors carry the 1 / ss of the mean) */
  sv_node *K = ss > 1 ? lie_siren_build_weighted(p, nm, &L->net, L->zin, L->fin,
                                                  L->nout * L->nin * kk, ss)
                      : sv_mul(lie_siren_build(p, nm, &L->net, L->zin), L->fin);
  /* filter index ((o nout + i) cin nin + c nin + j) kk + t  <-
     kernel index ((i nin + j) kk + t) cout cin + o cin + c */
  size_t at = 0;
  int oc = L->cout * L->cin;
  for (int o = 0; o < L->cout; o++)
    for (int i = 0; i < L->nout; i++)
      for (int c = 0; c < L->cin; c++)
        for (int j = 0; j < L->nin; j++)
          for (int t = 0; t < kk; t++)
            perm[at++] = ((i * L->nin + j) * kk + t) * oc + o * L->cin + c;
  int flat[2] = {(int)nw, 1};
  int wd[4] = {L->cout * L->nout, L->cin * L->nin, L->k, L->k};
  L->w = sv_reshape(sv_gather_rows(sv_reshape(K, 2, flat), (int)nw, perm), 4, wd);
  free(perm);
  if (!L->w)
    return sv_fail("layer %s: %s", L->name, sv_graph_error(g) ? sv_graph_error(g) : "graph error");
  return 0;
}

int lie_layer_fill(lie_layer *L, const lie_samples *s)
{
  if (s->n != L->nout || (!L->lift && s->n != L->nin) || L->set_out >= s->nsets ||
      (!L->lift && L->set_in >= s->nsets))
    return sv_fail("layer %s: the samples (%d sets of %d) do not fit the layer", L->name, s->nsets,
                   s->n);
  int kk = L->k * L->k, ss = L->sub * L->sub;
  for (int i = 0; i < L->nout; i++) {
    mat2 g = lie_sample(s, L->set_out, i), gi = m2_inv(g);
    for (int j = 0; j < L->nin; j++) {
      double coords[5] = {0, 0, 0, 0, 0}, haar;
      if (L->lift) {
        haar = 1 / fabs(m2_det(g));
      } else {
        mat2 h = lie_sample(s, L->set_in, j);
        int dim = lie_chart_coords(L->group, m2_mul(gi, h), coords);
        if (L->angle == LIE_ANGLE_CIRCLE) { /* theta is the last chart coordinate */
          double t = coords[dim - 1];
          coords[dim - 1] = cos(t);
          coords[dim] = sin(t);
        }
        haar = 1 / fabs(m2_det(h));
      }
      for (int t = 0; t < kk; t++)
        for (int q = 0; q < ss; q++) {
          int pt = ((i * L->nin + j) * kk + t) * ss + q;
          double dx, dy, u, v;
          lie_cell_point(L->k, t, L->sub, q, &dx, &dy);
          m2_apply(gi, dx, dy, &u, &v);
          double *z = L->z + (size_t)pt * L->din;
          z[0] = u;
          z[1] = v;
          for (int c = 2; c < L->din; c++)
            z[c] = coords[c - 2];
          double rad = hypot(u, v);
          double m = L->mask == LIE_MASK_HARD ? (rad <= 1.0 ? 1.0 : 0.0)
                                              : 1 / (1 + exp(-2 * (1 - rad)));
          L->f[pt] = m * haar / ss;
        }
    }
  }
  return 0;
}

int lie_layer_bind(lie_layer *L, sv_plan *plan)
{
  if (sv_plan_bind(plan, L->zin, L->z) < 0 || sv_plan_bind(plan, L->fin, L->f) < 0)
    return sv_fail_context("layer %s", L->name);
  return 0;
}

int lie_layer_init(lie_layer *L, sv_params *p, gsl_rng *rng)
{
  char nm[64];
  snprintf(nm, sizeof nm, "%s.kernel", L->name);
  return lie_siren_init(p, nm, &L->net, rng);
}

void lie_layer_free(lie_layer *L)
{
  free(L->z);
  free(L->f);
  L->z = L->f = NULL;
}
