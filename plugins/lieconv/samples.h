/*
 * samples.h -- the group samples a network is built on.
 *
 * A network keeps `nsets` sets of `n` elements g = P R(theta) of G, in
 * layer order (set 0: the lifting layer's outputs, which the residual
 * group convolutions keep; set 1: the last group convolution's outputs).
 * Rotations lie on the even grid theta_k = 2 pi k / n (the reference's
 * linspace(-pi, pi, n) repeats -pi and pi and misses 90 degrees), or, with
 * a restricted range R < pi, evenly on [-R, R] (partial equivariance: a
 * digit 6 is then not a 9 turned over); the
 * positive-definite part is log-normal, P = exp(X / 2) with X a random
 * symmetric matrix (traceless for sl2) whose coordinates in an orthonormal
 * basis (trace inner product) are N(0, spd_var) -- the reference's
 * `--spd_bounds 0.1` is this variance (standard deviation 0.32); the
 * plugin's default 0.8 is X/2 = [[a, b], [b, -a]] with a, b ~ N(0, 0.1).
 * so2 has P = I.
 *
 * Orbits (`orbit` K > 1, our choice, not the paper's): the P parts come in
 * rotation orbits of K, P_i = R(theta_i - theta_b) P_b R(theta_i -
 * theta_b)^T with b = i mod (n / K) drawn as above, so that a rotation by
 * 360 / K degrees maps the sample set onto itself (R_phi P_i R(theta_i) =
 * P_{i + n/K} R(theta_{i + n/K})) and the network is exactly equivariant
 * to it, as an so2 network is, while each P_i is still log-normal (the
 * distribution is invariant under conjugation by rotations). K = 1:
 * independent draws.
 *
 * The text form (`-samples_file`, and samples.txt in every run's output):
 * '#' comment lines, then one line per sample, "set index theta P00 P01
 * P11", sets in layer order, so that two implementations can be compared
 * on exactly the same samples.
 */
#ifndef LIECONV_SAMPLES_H
#define LIECONV_SAMPLES_H

#include "groups.h"

#include <gsl/gsl_rng.h>

typedef struct {
  lie_group group;
  int nsets, n;
  double spd_var;
  double rot_range; /* >= pi: the full circle 2 pi k / n; else [-R, R] */
  int orbit;        /* P parts in rotation orbits of this size (1: independent); divides n */
  double *theta; /* nsets * n */
  sym2 *P;       /* nsets * n */
} lie_samples;

lie_samples *lie_samples_new(lie_group group, int nsets, int n, double spd_var);
void lie_samples_free(lie_samples *s);
lie_samples *lie_samples_clone(const lie_samples *s);
/* Copy the samples of src into dst (the same group and counts). */
int lie_samples_copy(lie_samples *dst, const lie_samples *src);
/* The angle of rotation sample i: 2 pi i / n on the full circle, or
   evenly over [-R, R] (both ends) for a restricted range. */
double lie_grid_angle(const lie_samples *s, int i);
/* Rotation grid and fresh log-normal P parts from rng. */
void lie_samples_draw(lie_samples *s, gsl_rng *rng);
/* g = P R(theta) of sample i of set `set`. */
mat2 lie_sample(const lie_samples *s, int set, int i);
/* The text form: write atomically; read replaces every sample, checking
   the counts, that each (set, index) comes once, that P is symmetric
   positive definite (det 1 for sl2, the identity for so2), with messages
   naming the file and line. */
int lie_samples_write(const lie_samples *s, const char *path);
int lie_samples_read(lie_samples *s, const char *path);

#endif
