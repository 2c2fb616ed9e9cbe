/*
 * data.c -- centred canvases and the affine test-set generator (data.h).
 */
#include "data.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double *lie_centre_images(const sv_dataset *d, int S, const char *what)
{
  if (d->ndim != 2) {
    sv_fail("%s: examples must be images (2 axes), these have %d", what, d->ndim);
    return NULL;
  }
  int h = d->dims[0], w = d->dims[1];
  if (h > S || w > S) {
    sv_fail("%s: images are %dx%d, larger than the %dx%d canvas", what, h, w, S, S);
    return NULL;
  }
  double *x = calloc((size_t)d->n * S * S, sizeof *x);
  if (!x) {
    sv_fail("%s: out of memory for %d images", what, d->n);
    return NULL;
  }
  int r0 = (S - h) / 2, c0 = (S - w) / 2;
  for (int k = 0; k < d->n; k++)
    for (int r = 0; r < h; r++)
      memcpy(x + ((size_t)k * S + r0 + r) * S + c0, d->x + ((size_t)k * h + r) * w,
             (size_t)w * sizeof *x);
  return x;
}

void lie_affine_matrix(double theta, double shear, double sx, double sy, double A[4])
{
  double c = cos(theta), s = sin(theta);
  /* R Sh = [[c, c shear - s], [s, s shear + c]]; times diag(sx, sy) */
  A[0] = c * sx;
  A[1] = (c * shear - s) * sy;
  A[2] = s * sx;
  A[3] = (s * shear + c) * sy;
}

static double pixel(const double *in, int S, int r, int c)
{
  return r >= 0 && r < S && c >= 0 && c < S ? in[r * S + c] : 0.0;
}

/* Warp from an S x S source into a T x T target, both about their centres. */
static void warp_into(const double *in, int S, const double A[4], double *out, int T)
{
  double det = A[0] * A[3] - A[1] * A[2];
  double i0 = A[3] / det, i1 = -A[1] / det, i2 = -A[2] / det, i3 = A[0] / det;
  double cs = 0.5 * (S - 1), ct = 0.5 * (T - 1);
  for (int r = 0; r < T; r++)
    for (int c = 0; c < T; c++) {
      double x = c - ct, y = r - ct;
      double u = i0 * x + i1 * y + cs, v = i2 * x + i3 * y + cs; /* source column, row */
      double fu = floor(u), fv = floor(v);
      int cu = (int)fu, rv = (int)fv;
      double a = u - fu, b = v - fv;
      double val = (1 - a) * (1 - b) * pixel(in, S, rv, cu) + a * (1 - b) * pixel(in, S, rv, cu + 1) +
                   (1 - a) * b * pixel(in, S, rv + 1, cu) + a * b * pixel(in, S, rv + 1, cu + 1);
      out[r * T + c] = val;
    }
}

void lie_warp(const double *in, int S, const double A[4], double *out)
{
  warp_into(in, S, A, out, S);
}

int lie_affine_set(const double *in, int n, int S, const lie_affine *a, unsigned long seed,
                   double *out, int *clipped)
{
  int T = 2 * S; /* render on a larger canvas, then translate and crop */
  double *big = malloc((size_t)T * T * sizeof *big);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!big || !rng) {
    free(big);
    if (rng)
      gsl_rng_free(rng);
    return sv_fail("affine test set: out of memory");
  }
  gsl_rng_set(rng, seed);
  int nclip = 0;
  const double deg = LIE_PI_DATA / 180;
  for (int k = 0; k < n; k++) {
    double th = (2 * gsl_rng_uniform(rng) - 1) * a->rot_deg * deg;
    double sh = (2 * gsl_rng_uniform(rng) - 1) * a->shear;
    double sx = a->scale_lo + (a->scale_hi - a->scale_lo) * gsl_rng_uniform(rng);
    double sy = a->scale_lo + (a->scale_hi - a->scale_lo) * gsl_rng_uniform(rng);
    double A[4];
    lie_affine_matrix(th, sh, sx, sy, A);
    warp_into(in + (size_t)k * S * S, S, A, big, T);
    /* bounding box of the object on the big canvas */
    int r0 = T, r1 = -1, c0 = T, c1 = -1;
    for (int r = 0; r < T; r++)
      for (int c = 0; c < T; c++)
        if (big[r * T + c] > 0) {
          if (r < r0) r0 = r;
          if (r > r1) r1 = r;
          if (c < c0) c0 = c;
          if (c > c1) c1 = c;
        }
    /* the crop's top-left corner (oy, ox) on the big canvas: the object
       stays inside for oy in [r1 - (S-1), r0]; centred when it cannot */
    int oy = (T - S) / 2, ox = (T - S) / 2, clip = 0;
    double ur = gsl_rng_uniform(rng), uc = gsl_rng_uniform(rng);
    if (r1 >= 0) {
      int lo = r1 - (S - 1), hi = r0;
      if (lo <= hi) {
        if (a->translate)
          oy = lo + (int)(ur * (hi - lo + 1));
        else if (oy < lo || oy > hi)
          oy = oy < lo ? lo : hi;
      } else {
        oy = (r0 + r1 - (S - 1)) / 2;
        clip = 1;
      }
      lo = c1 - (S - 1), hi = c0;
      if (lo <= hi) {
        if (a->translate)
          ox = lo + (int)(uc * (hi - lo + 1));
        else if (ox < lo || ox > hi)
          ox = ox < lo ? lo : hi;
      } else {
        ox = (c0 + c1 - (S - 1)) / 2;
        clip = 1;
      }
    }
    nclip += clip;
    double *o = out + (size_t)k * S * S;
    for (int r = 0; r < S; r++)
      for (int c = 0; c < S; c++) {
        int rr = r + oy, cc = c + ox;
        o[r * S + c] = rr >= 0 && rr < T && cc >= 0 && cc < T ? big[rr * T + cc] : 0.0;
      }
  }
  if (clipped)
    *clipped = nclip;
  free(big);
  gsl_rng_free(rng);
  return 0;
}

void lie_rot90(const double *in, int S, double *out)
{
  /* R(90) (x, y) = (-y, x); f'(x', y') = f(y', -x'): out[r][c] = in[S-1-c][r] */
  for (int r = 0; r < S; r++)
    for (int c = 0; c < S; c++)
      out[r * S + c] = in[(S - 1 - c) * S + r];
}

void lie_reflect(const double *in, int S, double *out)
{
  for (int r = 0; r < S; r++)
    for (int c = 0; c < S; c++)
      out[r * S + c] = in[r * S + S - 1 - c];
}
