/*
 * siren.h -- the continuous kernel: a small MLP with sine activations
 * (SIREN, Sitzmann et al. 2020) from kernel coordinates to filter values.
 *
 *   h_1 = sin(w0 (z W_1 + b_1)),  h_l = sin(w0 (h_{l-1} W_l + b_l)),
 *   k(z) = h_L A + a          (one value per (output, input) channel pair)
 *
 * Blocks "<name>.l<i>.W", "<name>.l<i>.b" for the sine layers and
 * "<name>.out.W", "<name>.out.b". Initialisation (SIREN's, as the
 * reference): first layer W ~ U(+-1/din), b ~ U(+-1/sqrt(din)) (PyTorch's
 * default bias); later layers W ~ U(+-sqrt(6/width)/w0), b = 0; the output
 * layer A ~ U(+-sqrt(6/width)/sqrt(fan_in)) with fan_in = input channels x
 * kernel taps, a = 0.
 */
#ifndef LIECONV_SIREN_H
#define LIECONV_SIREN_H

#include <solver.h>

typedef struct {
  int din, width, layers, nout;
  double w0;
  double fan_in; /* of the convolution the kernel feeds, for the output init */
} lie_siren;

/* z [P, din] (not batched) -> [P, nout]. NULL (graph error) on failure. */
sv_node *lie_siren_build(sv_params *p, const char *name, const lie_siren *s, sv_node *z);
/* The weighted sums of the network's values over groups of `group`
   consecutive points: out_i = sum_s f_{i s} k(z_{i s}), z [npoints group,
   din], f [npoints group, 1] -> [npoints, nout]. The output layer is
   linear, so it runs on the weighted sums of the last sine layer,
   (sum_s f h_L) A + (sum_s f) a: once per group instead of once per point. */
sv_node *lie_siren_build_weighted(sv_params *p, const char *name, const lie_siren *s, sv_node *z,
                                  sv_node *f, int npoints, int group);
/* Draw the initial values of the blocks of `name` into p's data. */
int lie_siren_init(sv_params *p, const char *name, const lie_siren *s, gsl_rng *rng);

#endif
