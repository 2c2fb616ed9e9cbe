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
 * reference), in both cases on the spatial coordinates only. The kernel
 * network of a group convolution sees (g_i^-1 d, log P coordinates of
 * g_i^-1 h_j, its angle as theta or as (cos theta, sin theta)). The Haar
 * factor 1/|det h_j| divides along the INPUT-sample axis.
 *
 * With sub > 1 every tap's weight is the mean of the kernel times the mask
 * over sub x sub points spread evenly over the tap's pixel cell (the
 * midpoint rule for the kernel's integral over the cell), instead of its
 * value at the cell centre. A kernel network can learn frequencies above
 * the pixel grid's Nyquist limit; sampled at one point per pixel they alias,
 * and the sum over the square grid of taps then differs from the sum over
 * the same grid rotated by 45 degrees, so an SO(2) network is invariant to
 * 90-degree rotations only. Averaging over the cell low-passes the kernel
 * and the disc mask's edge before they are sampled.
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
/* How a group convolution's kernel network sees the rotation angle theta
   of g_i^-1 h_j: as the chart coordinate theta in [0, 2 pi) (the
   reference), or as the point (cos theta, sin theta) of the circle. The
   chart angle jumps from 0 to 2 pi: with positive-definite parts, the
   relative elements of two sample sets at nominally equal rotations have
   angles of a few tenths of a degree either side of 0, so some reach the
   kernel as ~0 and the others as ~2 pi, two unrelated inputs, and a
   rotation of the input that moves the samples by one grid step meets a
   different kernel. On the circle the kernel is continuous in theta. */
typedef enum { LIE_ANGLE_CHART = 0, LIE_ANGLE_CIRCLE } lie_angle_input;

typedef struct {
  char name[32];
  lie_group group;
  int lift;            /* 1: lifting layer (inputs on R^2 only, nin = 1) */
  int cin, cout;       /* channels per sample */
  int nin, nout;       /* samples in (1 for the lift) and out */
  int set_in, set_out; /* sample sets (set_in unused by the lift) */
  int k;               /* kernel size */
  int sub;             /* points per tap along each axis (1: the cell centre) */
  lie_mask mask;
  lie_angle_input angle; /* group convolutions only */
  lie_siren net;
  int npoints, din;    /* npoints = nout nin k k sub sub */
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
/* Point s (row s / sub, column s % sub) of the sub x sub points of tap t's
   cell (side 2 / k about the tap's grid offset). */
void lie_cell_point(int k, int t, int sub, int s, double *x, double *y);

#endif
