/*
 * data.h -- images for the affine benchmark: centred on a 40x40 canvas,
 * and the affNIST-style affine test-set generator.
 *
 * Images are S x S doubles in [0, 1], row-major, background 0. Point
 * coordinates are (x, y) = (column, row) about the canvas centre
 * ((S - 1)/2, (S - 1)/2), the convention of the group layers.
 */
#ifndef LIECONV_DATA_H
#define LIECONV_DATA_H

#include <solver.h>

#define LIE_CANVAS 40
#define LIE_PI_DATA 3.14159265358979323846

/* The affine distribution: rotation U[-rot, rot] degrees, shear
   U[-shear, shear], x and y scales U[scale_lo, scale_hi] independently,
   then an integer translation uniform over the range that keeps the whole
   object (its non-zero pixels) inside the canvas. */
typedef struct {
  double rot_deg, shear, scale_lo, scale_hi;
  int translate;
} lie_affine;

/* Centre each image of d (h x w, both <= S) on an S x S canvas:
   n * S * S values, or NULL with a message. */
double *lie_centre_images(const sv_dataset *d, int S, const char *what);

/* out(p) = in(A^-1 p) about the centre, bilinear, zero outside. */
void lie_warp(const double *in, int S, const double A[4], double *out);
/* The forward matrix A = R(theta) [[1, shear], [0, 1]] diag(sx, sy). */
void lie_affine_matrix(double theta, double shear, double sx, double sy, double A[4]);
/* n images of `in` transformed by independent draws of the distribution
   from a generator seeded with `seed` (the same seed, the same set). The
   number of objects too large for the canvas (centred, clipped) goes to
   *clipped when not NULL. */
int lie_affine_set(const double *in, int n, int S, const lie_affine *a, unsigned long seed,
                   double *out, int *clipped);

/* Exact pixel maps: the rotation by +90 degrees of the group action
   (f'(p) = f(R(90)^-1 p), x along columns, y along rows), and the
   reflection x -> -x (columns reversed). */
void lie_rot90(const double *in, int S, double *out);
void lie_reflect(const double *in, int S, double *out);

#endif
