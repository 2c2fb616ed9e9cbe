/*
 * ssm_s4.c -- ssm_s4.so: an S4D classifier (s4d.h) on sequential
 * Fashion-MNIST: each image read pixel by pixel (2x2-averaged to 14x14,
 * L = 196, by default), AdamW with a cosine schedule, the state-space
 * parameters A, B, dt at a lower rate and without weight decay. Evaluated
 * on the 10,000 test images by the convolution mode (or the recurrent one
 * with -mode recurrent); the two modes' logits are compared on a batch of
 * test images.
 */
#include "s4d.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S4_DEFAULT_DATA "/usr/share/datasets/fashion-mnist"
#define S4_MAX_H 1024
#define S4_MAX_N 1024
#define S4_MAX_LAYERS 64

typedef struct {
  /* options */
  char data[1024], checkpoint[1024], mode[16];
  int H, N, layers, epochs, batch, pool, train_size, val_size, test_size, eval_only, grid, agree_rows;
  int warmup, threads, blas_threads, params_csv, bidirectional;
  double lr, ssm_lr, wd, dt_min, dt_max, clip;
  ssm_init init;
  ssm_disc disc;
  /* data (pooled sequences) */
  sv_dataset *train, *val, *test;
  double *grid_images; /* the first test images at full resolution */
  int rows, cols;      /* of a full image */
  int fashion;
  /* model and training */
  s4d_model m;
  sv_batches *batches;
  sv_run *r;
  int Bl;              /* the largest share of a batch on one rank */
  int Bt;              /* rows per plan: Bl over the threads */
  int count;           /* real rows of this rank in the current step */
  int active;          /* plans with real rows */
  double *logits;      /* threads * Bt rows of the training plans' logits */
  double correct;
  long spe;
  double val_wall, val_cpu; /* time of the validations inside the training */
} s4;

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* ------------------------------------------------------------------ */
/* Data                                                                */
/* ------------------------------------------------------------------ */

/* Average pool x pool blocks of every image in place: [rows, cols] -> a
   sequence of (rows/pool)(cols/pool) values, row by row. */
static void pool_images(sv_dataset *d, int pool)
{
  int R = d->dims[0], C = d->dims[1], r2 = R / pool, c2 = C / pool;
  double *tmp = malloc((size_t)r2 * c2 * sizeof *tmp);
  for (int i = 0; i < d->n; i++) {
    const double *img = d->x + (size_t)i * d->size;
    for (int a = 0; a < r2; a++)
      for (int b = 0; b < c2; b++) {
        double s = 0;
        for (int p = 0; p < pool; p++)
          for (int q = 0; q < pool; q++)
            s += img[(size_t)(a * pool + p) * C + b * pool + q];
        tmp[a * c2 + b] = s / (pool * pool);
      }
    memcpy(d->x + (size_t)i * r2 * c2, tmp, (size_t)r2 * c2 * sizeof *tmp);
  }
  free(tmp);
  d->ndim = 1;
  d->dims[0] = r2 * c2;
  d->dims[1] = d->dims[2] = 1;
  d->size = (size_t)r2 * c2;
}

static int load_data(s4 *s)
{
  struct stat st;
  if (stat(s->data, &st) != 0 || !S_ISDIR(st.st_mode))
    return sv_fail("option -data = '%s': no such directory (it must hold train-images-idx3-ubyte"
                   "[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and "
                   "t10k-labels-idx1-ubyte[.gz]; Debian's Fashion-MNIST is the package "
                   "dataset-fashion-mnist in %s)", s->data, S4_DEFAULT_DATA);
  sv_dataset *train = sv_dataset_load_dir(s->data, "train", 10);
  if (!train)
    return sv_fail_context("option -data = '%s'", s->data);
  sv_dataset *test = sv_dataset_load_dir(s->data, "t10k", 10);
  if (!test) {
    sv_dataset_free(train);
    return sv_fail_context("option -data = '%s'", s->data);
  }
  if (s->test_size > test->n) {
    int n = test->n;
    sv_dataset_free(test);
    sv_dataset_free(train);
    return sv_fail("option -test_size = %d: the test split has %d images", s->test_size, n);
  }
  if (s->test_size > 0 && s->test_size < test->n) {
    sv_dataset *t = sv_dataset_subset(test, 0, s->test_size);
    sv_dataset_free(test);
    if (!t) {
      sv_dataset_free(train);
      return -1;
    }
    test = t;
  }
  s->test = test;
  if (train->ndim != 2 || test->ndim != 2 || train->dims[0] != test->dims[0] ||
      train->dims[1] != test->dims[1]) {
    sv_dataset_free(train);
    return sv_fail("option -data = '%s': the images must be 2-D and of one size in both splits",
                   s->data);
  }
  s->rows = train->dims[0];
  s->cols = train->dims[1];
  if (s->rows % s->pool || s->cols % s->pool) {
    sv_dataset_free(train);
    return sv_fail("option -pool = %d: does not divide the %d x %d images", s->pool, s->rows,
                   s->cols);
  }
  int avail = train->n;
  if (s->val_size < 0 || s->val_size >= avail) {
    sv_dataset_free(train);
    return sv_fail("option -val_size = %d: must be in [0, %d) (the training split has %d images)",
                   s->val_size, avail, avail);
  }
  if (s->train_size <= 0)
    s->train_size = avail - s->val_size;
  if (s->train_size > avail - s->val_size) {
    sv_dataset_free(train);
    return sv_fail("option -train_size = %d: only %d training images are left after -val_size %d",
                   s->train_size, avail - s->val_size, s->val_size);
  }
  /* the validation images are the last val_size of the training file */
  if (s->val_size > 0) {
    s->val = sv_dataset_subset(train, avail - s->val_size, s->val_size);
    if (!s->val) {
      sv_dataset_free(train);
      return -1;
    }
  }
  s->train = sv_dataset_subset(train, 0, s->train_size);
  sv_dataset_free(train);
  if (!s->train)
    return -1;
  /* the grid's images at full resolution, before pooling */
  if (s->grid > test->n)
    s->grid = test->n;
  s->grid_images = malloc((size_t)s->grid * test->size * sizeof *s->grid_images);
  if (!s->grid_images && s->grid > 0)
    return sv_fail("ssm_s4: out of memory");
  if (s->grid > 0)
    memcpy(s->grid_images, test->x, (size_t)s->grid * test->size * sizeof *s->grid_images);
  pool_images(s->train, s->pool);
  pool_images(s->test, s->pool);
  if (s->val)
    pool_images(s->val, s->pool);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Setup                                                               */
/* ------------------------------------------------------------------ */

static void s4_cleanup(void *state)
{
  s4 *s = state;
  if (!s)
    return;
  s4d_model_free(&s->m);
  sv_batches_free(s->batches);
  sv_dataset_free(s->train);
  sv_dataset_free(s->val);
  sv_dataset_free(s->test);
  free(s->grid_images);
  free(s->logits);
  if (s->blas_threads > 0)
    openblas_set_num_threads(s->blas_threads);
  free(s);
}

static int s4_setup(sv_run *r, void **state)
{
  s4 *s = calloc(1, sizeof *s);
  if (!s)
    return sv_fail("ssm_s4: out of memory");
  *state = s;
  s->r = r;
  char init[16], disc[16];
  if (sv_opt_string(r, "-data", S4_DEFAULT_DATA,
                    "IDX directory with train-* and t10k-* images and labels (MNIST layout, plain "
                    "or .gz; MNIST itself works too)", s->data, sizeof s->data) < 0 ||
      sv_opt_int(r, "-pool", 2, "average pool x pool pixels: 2 gives 14x14 images, L = 196; 1 "
                 "the full 28x28, L = 784", &s->pool) < 0 ||
      sv_opt_int(r, "-H", 64, "channels (model width)", &s->H) < 0 ||
      sv_opt_int(r, "-N", 64, "state size per channel (even: N/2 complex conjugate pairs)", &s->N) < 0 ||
      sv_opt_int(r, "-layers", 2, "S4D blocks (0: no state-space layer at all, an ablation: a "
                 "linear classifier of the encoded pixels' mean over time)", &s->layers) < 0 ||
      sv_opt_string(r, "-init", "lin", "initialisation of the diagonal state: lin (A = -1/2 - i pi n), "
                    "inv (A = -1/2 - i N/pi (N/(2n+1) - 1)), legs (the eigenvalues of HiPPO-LegS, "
                    "B = V* B) or real (A = -(n+1))", init, sizeof init) < 0 ||
      sv_opt_string(r, "-disc", "zoh", "discretisation: zoh or bilinear", disc, sizeof disc) < 0 ||
      sv_opt_bool(r, "-bidirectional", 0, "each layer also convolves backwards in time with a second "
                  "kernel (its own C' on the same A, B, dt, as the reference's bidirectional S4D), so "
                  "every step sees the whole image; the recurrent mode then runs each layer forwards "
                  "and backwards over the sequence", &s->bidirectional) < 0 ||
      sv_opt_real(r, "-dt_min", 1e-3, "log dt per channel is drawn uniformly in [log dt_min, log dt_max]",
                  &s->dt_min) < 0 ||
      sv_opt_real(r, "-dt_max", 1e-1, "(see -dt_min)", &s->dt_max) < 0 ||
      sv_opt_int(r, "-epochs", 8, "training epochs (8: about the most that fit the 10 minutes "
                 "of training on 2 idle cores of the default run's target: measured 445 samples "
                 "per CPU second on one thread of a 2-core Xeon (AVX-512), so an estimated 890 "
                 "samples/s on its 2 idle cores, 8 epochs of 60,000 in about 540 s; a first-"
                 "generation EPYC at 2 GHz ran 375 samples/s, 1280 s; README.md)",
                 &s->epochs) < 0 ||
      sv_opt_int(r, "-batch", 64, "minibatch size (over all MPI ranks: each takes its share)",
                 &s->batch) < 0 ||
      sv_opt_real(r, "-lr", 4e-2, "AdamW learning rate (peak of the cosine schedule; 4e-2 chosen "
                  "on held-out training images, -val_size 5000: README.md)", &s->lr) < 0 ||
      sv_opt_real(r, "-ssm_lr", 1e-3, "learning rate of the state-space parameters A, B and log dt "
                  "(no weight decay on them)", &s->ssm_lr) < 0 ||
      sv_opt_real(r, "-weight_decay", 0.01, "AdamW decoupled weight decay (all but A, B, dt)",
                  &s->wd) < 0 ||
      sv_opt_int(r, "-warmup", 0, "linear warm-up steps before the cosine decay", &s->warmup) < 0 ||
      sv_opt_real(r, "-clip", 0.0, "clip the gradient norm to this (0: off)", &s->clip) < 0 ||
      sv_opt_int(r, "-train_size", 0, "training images used (0: all that -val_size leaves)",
                 &s->train_size) < 0 ||
      sv_opt_int(r, "-val_size", 0, "the last V training images held out for validation (accuracy "
                 "after every epoch; choose hyperparameters on it, never on the test set)",
                 &s->val_size) < 0 ||
      sv_opt_int(r, "-test_size", 0, "test images evaluated (0: all 10,000; fewer only for quick "
                 "checks)", &s->test_size) < 0 ||
      sv_opt_string(r, "-mode", "conv", "test-set inference: conv (FFT convolution with the "
                    "kernel) or recurrent (the same model step by step, O(N) per step and channel)",
                    s->mode, sizeof s->mode) < 0 ||
      sv_opt_bool(r, "-eval_only", 0, "no training: evaluate the model in -checkpoint", &s->eval_only) < 0 ||
      sv_opt_string(r, "-checkpoint", "", "a checkpoint of this model (same -H -N -layers) for "
                    "-eval_only", s->checkpoint, sizeof s->checkpoint) < 0 ||
      sv_opt_int(r, "-grid", 36, "test images in the grid of predictions (test_grid.png)", &s->grid) < 0 ||
      sv_opt_int(r, "-threads", 0, "threads of this process, each running its share of every "
                 "minibatch through its own compiled plan (0: the online CPUs divided by the MPI "
                 "ranks, at least 1); with more than one, or more than one rank, OpenBLAS runs "
                 "single-threaded inside them", &s->threads) < 0 ||
      sv_opt_bool(r, "-params_csv", 0, "also write the trained parameters to params.csv (index, "
                  "value; the order of the checkpoint)", &s->params_csv) < 0 ||
      sv_opt_int(r, "-agreement_rows", 16, "test images on which the recurrent and convolution "
                 "logits are compared", &s->agree_rows) < 0)
    return -1;
  if (ssm_init_parse("-init", init, &s->init) < 0 || ssm_disc_parse("-disc", disc, &s->disc) < 0)
    return -1;
  if (s->disc != SSM_ZOH && s->disc != SSM_BILINEAR)
    return sv_fail("option -disc = %s: the S4D layer offers zoh and bilinear", disc);
  if (strcmp(s->mode, "conv") && strcmp(s->mode, "recurrent"))
    return sv_fail("option -mode = '%s': expected conv or recurrent", s->mode);
  if (s->N < 2 || s->N % 2)
    return sv_fail("option -N = %d: the state size must be even and >= 2 (the diagonal state is "
                   "N/2 complex conjugate pairs, the kernel 2 Re of their sum)", s->N);
  if (s->N > S4_MAX_N)
    return sv_fail("option -N = %d: at most %d", s->N, S4_MAX_N);
  if (s->H < 1 || s->H > S4_MAX_H)
    return sv_fail("option -H = %d: must be in [1, %d]", s->H, S4_MAX_H);
  if (s->layers < 0 || s->layers > S4_MAX_LAYERS)
    return sv_fail("option -layers = %d: must be in [0, %d]", s->layers, S4_MAX_LAYERS);
  if (s->pool != 1 && s->pool != 2 && s->pool != 4)
    return sv_fail("option -pool = %d: expected 1, 2 or 4", s->pool);
  if (!(s->dt_min > 0) || !(s->dt_max >= s->dt_min) || !isfinite(s->dt_max))
    return sv_fail("options -dt_min %g -dt_max %g: need 0 < dt_min <= dt_max", s->dt_min, s->dt_max);
  if (s->epochs < 1 && !s->eval_only)
    return sv_fail("option -epochs = %d: must be >= 1", s->epochs);
  if (s->batch < 1)
    return sv_fail("option -batch = %d: must be >= 1", s->batch);
  if (s->batch < sv_run_size(r))
    return sv_fail("option -batch = %d: smaller than the %d MPI ranks sharing every batch", s->batch,
                   sv_run_size(r));
  if (!(s->lr > 0) || !(s->ssm_lr >= 0) || !(s->wd >= 0) || !(s->clip >= 0))
    return sv_fail("options -lr %g -ssm_lr %g -weight_decay %g -clip %g: need lr > 0 and the others "
                   ">= 0", s->lr, s->ssm_lr, s->wd, s->clip);
  if (s->warmup < 0)
    return sv_fail("option -warmup = %d: must be >= 0", s->warmup);
  if (s->train_size < 0)
    return sv_fail("option -train_size = %d: must be >= 0 (0: all)", s->train_size);
  if (s->test_size < 0)
    return sv_fail("option -test_size = %d: must be >= 0 (0: all)", s->test_size);
  if (s->grid < 0 || s->grid > SV_GRID_MAX)
    return sv_fail("option -grid = %d: must be in [0, %d]", s->grid, SV_GRID_MAX);
  if (s->threads < 0 || s->threads > 64)
    return sv_fail("option -threads = %d: must be in [0, 64] (0: automatic)", s->threads);
  if (s->threads == 0) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    s->threads = (int)(ncpu > 0 ? ncpu : 1) / sv_run_size(r);
    if (s->threads < 1)
      s->threads = 1;
  }
  if (s->agree_rows < 1)
    return sv_fail("option -agreement_rows = %d: must be >= 1", s->agree_rows);
  if (s->eval_only && !s->checkpoint[0])
    return sv_fail("option -eval_only: give the trained model with -checkpoint FILE (for example "
                   "out/ssm_s4/checkpoint.bin)");
  if (!s->eval_only && s->checkpoint[0])
    return sv_fail("option -checkpoint '%s': only with -eval_only (training writes its own "
                   "checkpoint.bin)", s->checkpoint);
  if (load_data(s) < 0)
    return -1;
  s->fashion = strstr(s->data, "fashion") != NULL;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Training                                                            */
/* ------------------------------------------------------------------ */

static int predict_conv(void *ctx, int count, const double *x, double *scores);

/* After each epoch (at the first step of the next, and after the last),
   the validation accuracy into val.csv. */
static int validate(s4 *s, long epoch)
{
  sv_eval ev;
  double w0 = sv_wall_seconds(), c0 = sv_cpu_seconds();
  if (sv_evaluate_classifier(s->r, s->val, s->threads * s->Bt, predict_conv, s, &ev) < 0)
    return -1;
  /* not training: train_seconds leaves it out */
  s->val_wall += sv_wall_seconds() - w0;
  s->val_cpu += sv_cpu_seconds() - c0;
  static const char *const cols[] = {"epoch", "val_accuracy"};
  double row[2] = {(double)epoch, ev.accuracy};
  sv_log(s->r, "epoch %ld: validation accuracy %.4f on %d images", epoch, ev.accuracy, s->val->n);
  sv_eval_free(&ev);
  return sv_series_append(s->r, "val.csv", 2, cols, row);
}

static int on_step(void *ctx, int step)
{
  s4 *s = ctx;
  if (s->val && step > 0 && step % s->spe == 0 && validate(s, step / s->spe) < 0)
    return -1;
  const int *idx;
  int count, global;
  if (sv_batches_get(s->batches, step, &idx, &count, &global, NULL) < 0)
    return -1;
  int L = s->m.c.L, rows = s->m.nplans * s->m.B;
  if (count > rows)
    return sv_fail("ssm_s4: a share of %d rows for %d plans of %d", count, s->m.nplans, s->m.B);
  if (count > 0 && sv_dataset_gather(s->train, count, idx, s->m.xb, s->m.yb) < 0)
    return -1;
  /* padding rows weigh 0; the loss is the batch mean over all ranks */
  for (int i = 0; i < rows; i++)
    s->m.wb[i] = i < count ? 1.0 / global : 0.0;
  for (int i = count; i < rows; i++) {
    s->m.yb[i] = 0;
    memset(s->m.xb + (size_t)i * L, 0, (size_t)L * sizeof *s->m.xb);
  }
  s->count = count;
  s->active = (count + s->m.B - 1) / s->m.B;
  return 0;
}

static int loss_grad(void *ctx, const double *theta, double *loss, double *grad)
{
  s4 *s = ctx;
  (void)theta; /* the plans read the params vector, which theta is */
  if (s->active == 0) { /* no rows on this rank in this step */
    *loss = 0;
    if (grad)
      memset(grad, 0, sv_params_count(s->m.p) * sizeof *grad);
    s->correct = 0;
    return 0;
  }
  if (s4d_train_run(&s->m, s->active, loss, grad, s->logits) < 0)
    return -1;
  /* correct predictions among the real rows, for the running accuracy */
  const double *z = s->logits;
  int C = s->m.c.nclasses;
  double correct = 0;
  for (int i = 0; i < s->count; i++) {
    int best = 0;
    for (int j = 1; j < C; j++)
      if (z[(size_t)i * C + j] > z[(size_t)i * C + best])
        best = j;
    correct += best == (int)s->m.yb[i];
  }
  s->correct = correct;
  return 0;
}

static int batch_metric(void *ctx, double *sum, double *count)
{
  s4 *s = ctx;
  *sum = s->correct;
  *count = s->count;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                          */
/* ------------------------------------------------------------------ */

static int predict_conv(void *ctx, int count, const double *x, double *scores)
{
  s4 *s = ctx;
  return s4d_logits_conv(&s->m, count, x, scores);
}

static int predict_recurrent(void *ctx, int count, const double *x, double *scores)
{
  s4 *s = ctx;
  return s4d_logits_recurrent(&s->m, count, x, scores);
}

static int plot_epochs(sv_run *r)
{
  static const char script[] =
      "set datafile separator ','\nset grid\nset key top center\nset xlabel 'epoch'\n"
      "set ylabel 'training loss (mean over the epoch)'\nset y2label 'training accuracy'\n"
      "set ytics nomirror\nset y2tics\n"
      "set title 'S4D on sequential images: training loss and accuracy per epoch'\n"
      "plot 'epochs.csv' every ::1 using 2:3 with linespoints lw 2 title 'loss', "
      "'' every ::1 using 2:4 axes x1y2 with linespoints lw 2 title 'accuracy (running, train)'\n";
  return sv_plot(r, "epochs.png", script);
}

static int s4_run(sv_run *r, void *state)
{
  s4 *s = state;
  int nranks = sv_run_size(r);
  s4d_config c = {.H = s->H, .N = s->N, .layers = s->layers, .L = (int)s->train->size,
                  .nclasses = 10, .init = s->init, .disc = s->disc, .dt_min = s->dt_min,
                  .dt_max = s->dt_max, .ln_eps = 1e-5, .bidirectional = s->bidirectional};
  s->Bl = (s->batch + nranks - 1) / nranks;
  if (s->threads > s->Bl)
    s->threads = s->Bl;
  s->Bt = (s->Bl + s->threads - 1) / s->threads;
  if (s4d_model_new(&s->m, &c, s->Bt, s->threads) < 0)
    return -1;
  s->logits = malloc((size_t)s->threads * s->Bt * c.nclasses * sizeof *s->logits);
  if (!s->logits)
    return sv_fail("ssm_s4: out of memory");
  if (s->threads > 1 || nranks > 1) {
    /* the threads (or the ranks) are the parallelism: OpenBLAS inside
       them stays serial (restored at the end of the run); OpenBLAS's own
       threads on top of them oversubscribe the cores */
    s->blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
  }
  size_t np = sv_params_count(s->m.p);
  sv_log(r, "S4D: %d %slayers, H = %d, N = %d (%d complex modes per channel), init %s, %s; "
         "%zu parameters; L = %d (pool %d), %d training, %d validation, %d test images; %d "
         "thread%s of %d rows", c.layers, c.bidirectional ? "bidirectional " : "", c.H, c.N,
         c.N / 2, ssm_init_name(c.init), ssm_disc_name(c.disc), np, c.L, s->pool, s->train->n, s->val ? s->val->n : 0,
         s->test->n, s->threads, s->threads > 1 ? "s" : "", s->Bt);

  double train_seconds = 0, sps = 0;
  if (s->eval_only) {
    if (sv_checkpoint_load(s->m.p, s->checkpoint) < 0)
      return sv_fail_context("option -checkpoint '%s' (the model must have been trained with the "
                             "same -H %d -N %d -layers %d -bidirectional %d)", s->checkpoint,
                             c.H, c.N, c.layers, c.bidirectional);
  } else {
    if (s4d_model_init(&s->m, sv_run_rng(r)) < 0 || s4d_model_set_scales(&s->m, s->lr, s->ssm_lr) < 0)
      return -1;
    s->batches = sv_batches_new(r, s->train->n, s->batch, 1, 0x5334ul);
    if (!s->batches)
      return -1;
    s->spe = sv_batches_per_epoch(s->batches);
    if (s->spe < 1)
      return sv_fail("option -batch = %d: larger than the %d training images", s->batch,
                     s->train->n);
    sv_objective obj = {np, 0, loss_grad, NULL, s};
    sv_optim_opts o;
    sv_optim_defaults(&o, SV_OPTIM_ADAM);
    o.stage = "adamw";
    o.lr = s->lr;
    o.max_steps = (int)(s->epochs * s->spe);
    o.steps_per_epoch = (int)s->spe;
    o.weight_decay = s->wd;
    o.schedule = SV_LR_COSINE;
    o.warmup_steps = s->warmup;
    o.lr_min = 0;
    o.clip_norm = s->clip;
    o.on_step = on_step;
    o.on_step_ctx = s;
    o.batch_metric = batch_metric;
    o.metric_name = "accuracy";
    sv_optim_result res;
    double c0 = sv_cpu_seconds();
    if (sv_minimize(r, s->m.p, &obj, &o, &res) < 0)
      return sv_fail_context("ssm_s4: training");
    /* the validations after epochs 1 .. E-1 ran inside sv_minimize */
    train_seconds = res.seconds - s->val_wall;
    /* summed over the ranks: samples per CPU second is per core */
    double cpu = sv_cpu_seconds() - c0 - s->val_cpu;
    if (nranks > 1 && sv_allreduce_sum(r, &cpu, 1) < 0)
      return -1;
    if (s->val && validate(s, s->epochs) < 0)
      return -1;
    sps = train_seconds > 0 ? (double)res.steps * s->batch / train_seconds : 0;
    sv_metric(r, "train_seconds", train_seconds);
    sv_metric(r, "samples_per_second", sps);
    sv_metric(r, "train_cpu_seconds", cpu);
    sv_metric(r, "samples_per_cpu_second", cpu > 0 ? (double)res.steps * s->batch / cpu : 0);
    sv_metric(r, "train_loss", res.loss);
    if (plot_epochs(r) < 0)
      return -1;
  }

  if (s->params_csv) {
    double *ix = malloc(np * sizeof *ix);
    if (!ix)
      return sv_fail("ssm_s4: out of memory");
    for (size_t i = 0; i < np; i++)
      ix[i] = (double)i;
    const double *cols[2] = {ix, sv_params_data(s->m.p)};
    const char *names[2] = {"index", "value"};
    int wrc = sv_write_csv(r, "params.csv", 2, names, np, cols);
    free(ix);
    if (wrc < 0)
      return -1;
  }

  /* the test set, by the chosen mode */
  int recurrent = strcmp(s->mode, "recurrent") == 0;
  const char *const *names = s->fashion ? fashion_names : NULL;
  sv_eval e;
  if (sv_evaluate_classifier(r, s->test, s->threads * s->Bt, recurrent ? predict_recurrent : predict_conv, s,
                             &e) < 0)
    return -1;
  if (sv_eval_report(r, &e, "test", names) < 0) {
    sv_eval_free(&e);
    return -1;
  }
  double test_acc = e.accuracy;
  if (s->grid > 0 && sv_plot_image_grid(r, "test_grid.png", s->grid, s->rows, s->cols,
                                        s->grid_images, e.pred, s->test->y, names) < 0) {
    sv_eval_free(&e);
    return -1;
  }
  sv_eval_free(&e);
  double val_acc = NAN;
  if (s->val) {
    sv_eval ev;
    if (sv_evaluate_classifier(r, s->val, s->threads * s->Bt, predict_conv, s, &ev) < 0)
      return -1;
    val_acc = ev.accuracy;
    sv_metric(r, "val_accuracy", val_acc);
    sv_eval_free(&ev);
  }

  /* the two modes on the first test images */
  int na = s->agree_rows < s->test->n ? s->agree_rows : s->test->n;
  double *z1 = malloc((size_t)na * 10 * sizeof *z1), *z2 = malloc((size_t)na * 10 * sizeof *z2);
  if (!z1 || !z2) {
    free(z1);
    free(z2);
    return sv_fail("ssm_s4: out of memory");
  }
  double agree = 0, zmax = 0;
  int step = s->threads * s->Bt;
  for (int i = 0; i < na; i += step) {
    int n = na - i < step ? na - i : step;
    if (s4d_logits_conv(&s->m, n, s->test->x + (size_t)i * c.L, z1 + (size_t)i * 10) < 0 ||
        s4d_logits_recurrent(&s->m, n, s->test->x + (size_t)i * c.L, z2 + (size_t)i * 10) < 0) {
      free(z1);
      free(z2);
      return -1;
    }
  }
  for (int i = 0; i < na * 10; i++) {
    agree = fmax(agree, fabs(z1[i] - z2[i]));
    zmax = fmax(zmax, fabs(z1[i]));
  }
  free(z1);
  free(z2);
  sv_metric(r, "recurrent_agreement", agree);

  sv_headline(r, "S4D (%d %slayers, H = %d, N = %d, init %s, %s) on sequential %s, L = %d: test "
              "accuracy %.2f%% on %d images (%s mode)", c.layers,
              c.bidirectional ? "bidirectional " : "", c.H, c.N, ssm_init_name(c.init),
              ssm_disc_name(c.disc), s->fashion ? "Fashion-MNIST" : "images", c.L, 100 * test_acc,
              s->test->n, recurrent ? "recurrent" : "convolution");
  if (!s->eval_only)
    sv_headline(r, "  trained %d epochs on %d images in %.1f s (%.0f samples/s, %d rank%s)",
                s->epochs, s->train->n, train_seconds, sps, nranks, nranks > 1 ? "s" : "");
  if (s->val)
    sv_headline(r, "  validation accuracy %.2f%% on %d held-out training images", 100 * val_acc,
                s->val->n);
  sv_headline(r, "  recurrent vs convolution mode on %d test images: max |logit difference| %.1e "
              "(logits up to %.1f)", na, agree, zmax);
  return 0;
}

static const sv_plugin s4_plugin =
    SV_PLUGIN_INIT("ssm_s4",
                   "S4D sequence classifier on sequential Fashion-MNIST (FFT convolution mode and "
                   "an exact recurrent mode)",
                   s4_setup, s4_run, s4_cleanup);

SV_PLUGIN_EXPORT const sv_plugin *sv_plugin_entry(void) { return &s4_plugin; }
