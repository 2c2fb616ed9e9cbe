/*
 * model.h -- the classifiers: the affine-equivariant Lie-group network
 * and the plain CNN baseline, each one graph compiled into a training plan
 * (loss and parameter gradient for this rank's share of a minibatch) and
 * an evaluation plan (logits).
 *
 * Lie-group network on a 40x40 image (C channels, N samples per set):
 *
 *   lift 5x5 (no padding)            [B, C N, 36, 36]   outputs on set 0
 *     (`same`: padding 2, [B, C N, 40, 40], and every size below + 2 or 4)
 *   2x2 max-pool, LayerNorm, GELU    [B, C N, 18, 18]
 *   residual blocks (`blocks`):      x <- GELU(x + GELU(LN(gconv(GELU(LN(gconv(x)))))))
 *                                    5x5, padding 2, set 0 -> set 0
 *   with `mid`: group conv 5x5 (padding `pad`), LN, GELU, 2x2 max-pool
 *                                    [B, C N, 9 or 7, ...] (pad 2 or 0)
 *   group conv 5x5 (no padding)      [B, C N, 14 (5, 3), ...]   set 0 -> set 1
 *     (`same`: padding 2, [B, C N, 20 (10, 8), ...];
 *      `same` and `lift_only`: no padding, [B, C N, 16 (6, 4), ...])
 *   LayerNorm, GELU (`final_norm`)
 *   invariant pooling: max (or mean) over samples and space   [B, C]
 *     (`sorted`: max over space, each channel's N values sorted  [B, C N])
 *   head: dense C -> H (its bias centred on the first training images),
 *         LayerNorm (with scale and shift), GELU, dense H -> 10
 *
 * Every size before a pooling is even, so a 90-degree rotation of the
 * input permutes pixels exactly all the way through.
 * LayerNorm over (channels, samples, rows, columns) without parameters.
 * The CNN has the same skeleton with learned 5x5 filters of `cnn_channels`
 * channels and a global max (or mean) over space.
 */
#ifndef LIECONV_MODEL_H
#define LIECONV_MODEL_H

#include "layers.h"
#include "samples.h"

#include <solver.h>

typedef enum { LIE_MODEL_LIE = 0, LIE_MODEL_CNN } lie_model_kind;
/* sorted: the max over space of each (channel, sample), then those N values
   of each channel sorted (C N features, invariant to any permutation of the
   samples, as the max over them is: the max is the first of each channel) */
typedef enum { LIE_POOL_MAX = 0, LIE_POOL_MEAN, LIE_POOL_SORTED, LIE_POOL_ALIGN } lie_pool;

typedef struct {
  lie_model_kind kind;
  lie_group group;
  int channels, samples, blocks, mid, pad, head, cnn_channels, final_norm;
  int same; /* 1: the lift and the last convolution padded by 2 (maps keep their size) */
  int lift_only; /* with same: only the lift padded, the last convolution not (final 16x16) */
  int kernel_width, kernel_layers;
  int kernel_sub; /* kernel points per tap along each axis (layers.h); 1: the cell centre */
  int align_shift; /* aligned pooling: shifts -K..K of the samples (0: all N) */
  double omega, spd_var, rot_range; /* rot_range in radians */
  int spd_orbit; /* P parts in rotation orbits of this size (samples.h); 0 or 1: independent */
  lie_mask mask;
  lie_angle_input angle;
  lie_pool pool;
} lie_arch;

#define LIE_NCLASSES 10
#define LIE_NSETS 2

typedef struct {
  lie_arch a;
  sv_graph *g;
  sv_params *p;
  sv_node *x, *y, *logits, *loss, *grad, *pooled;
  lie_layer *layers;
  int nlayers;
  lie_samples *samples; /* NULL for the CNN */
  sv_plan *train, *eval;
  int train_batch, global_batch, eval_batch;
  double *xbuf, *ybuf, *ebuf; /* train images and labels, eval images */
} lie_model;

/* The spatial size of the last group convolution's output. */
int lie_arch_final_size(const lie_arch *a);
/* The number of pooled features the head reads: C, C N with sorted pooling,
   or the CNN's channels. */
int lie_arch_pooled_width(const lie_arch *a);
/* Build both plans: the training plan for `train_batch` rows of a
   minibatch of `global_batch` (its loss is the sum over the rows divided
   by global_batch); the evaluation plan for eval_batch images. The
   samples are drawn from sample_rng (or given: they are copied). */
lie_model *lie_model_new(const lie_arch *a, int train_batch, int global_batch, int eval_batch);
void lie_model_free(lie_model *m);
/* Initial parameters from rng. */
int lie_model_init(lie_model *m, gsl_rng *rng);
/* Data-dependent start of the head: its first layer's bias becomes minus
   the mean over `count` images of (pooled features) W, so that the head's
   LayerNorm sees the differences between images rather than the mean
   response every image shares. */
int lie_model_center_head(lie_model *m, int count, const double *x);
/* After the samples changed: refill the layers' kernel coordinates. */
int lie_model_refresh(lie_model *m);
/* The training objective over m->xbuf / m->ybuf. */
sv_objective lie_model_objective(lie_model *m);
/* Correct predictions of the training plan's last run (its rows). */
int lie_model_train_correct(const lie_model *m);
/* Logits of `count` images (any count; in calls of eval_batch). */
int lie_model_logits(lie_model *m, int count, const double *x, double *logits);
/* sv_predict_fn over a lie_model */
int lie_model_predict(void *ctx, int count, const double *x, double *scores);
/* A one-line description. */
void lie_model_describe(const lie_model *m, char *buf, size_t size);

#endif
