/*
 * layers.h -- the lifting layer and the group convolution, each one core
 * 2-D convolution whose filters come from a SIREN kernel network
 * (specs/lieconv.md). Channels are packed channel-major, index c n + i for
 * channel c at sample i (n samples), so a feature map on R^2 x G is an
 * ordinary [B, C n, H, W] tensor.
 *
 * Lifting (image channels c, output samples g_i of set s_out):
 *   out(x, g_i) = sum_y k(g_i^-1 (y - x)) f(y) / |det g_i|
 * Group convolution (input samples h_j of set s_in, outputs g_i of s_out):
 *   out(x, g_i) = sum_j sum_y k(g_i^-1 (y - x), xi^-1(g_i^-1 h_j)) f(y, h_j) / |det h_j|
 *
 * y - x runs over a k x k grid of offsets d = ((2q+1)/k - 1, (2p+1)/k - 1)
 * for tap (row p, column q): x along columns, y along rows, the grid of
 * PyTorch's affine_grid(align_corners=False). The kernel is masked to the
 * disc |g_i^-1 d| <= 1 ("hard", for sl2 and so2, volume preserving) or
 * smoothly by sigmoid(2 (1 - |g_i^-1 d|)) ("smooth", for gl2, as the
 * reference), in both cases on the spatial coordinates only. The Haar
 * factor 1/|det h_j| divides along the INPUT-sample axis.
 *
 * The kernel coordinates and the mask x Haar factors depend only on the
 * samples: they are graph inputs (not batched) owned by the layer, filled
 * by lie_layer_fill and rewritten when the samples are redrawn. The
 * kernel values [points, cout cin] are multiplied by the factors, then
 * permuted (one gather) into the filter [cout nout, cin nin, k, k].
 */
#ifndef LIECONV_LAYERS_H
#define LIECONV_LAYERS_H

#include "samples.h"
#include "siren.h"

#include <solver.h>

typedef enum { LIE_MASK_HARD = 0, LIE_MASK_SMOOTH } lie_mask;

typedef struct {
  char name[32];
  lie_group group;
  int lift;            /* 1: lifting layer (inputs on R^2 only, nin = 1) */
  int cin, cout;       /* channels per sample */
  int nin, nout;       /* samples in (1 for the lift) and out */
  int set_in, set_out; /* sample sets (set_in unused by the lift) */
  int k;               /* kernel size */
  lie_mask mask;
  lie_siren net;
  int npoints, din;
  double *z, *f;       /* npoints x din coordinates, npoints factors */
  sv_node *zin, *fin;  /* the inputs they are bound to */
  sv_node *w;          /* the filter node */
} lie_layer;

/* Declare the layer's inputs, kernel network and filter node in g/p (the
   struct's shape fields set by the caller). */
int lie_layer_build(lie_layer *L, sv_graph *g, sv_params *p);
/* Kernel coordinates and factors from the samples. */
int lie_layer_fill(lie_layer *L, const lie_samples *s);
int lie_layer_bind(lie_layer *L, sv_plan *plan);
int lie_layer_init(lie_layer *L, sv_params *p, gsl_rng *rng);
void lie_layer_free(lie_layer *L);

/* The grid offset of tap t (row t / k, column t % k). */
void lie_grid_point(int k, int t, double *x, double *y);

#endif
