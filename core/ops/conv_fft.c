/*
 * conv_fft.c -- stride-1 2-D convolutions through FFTW and one real matrix
 * product per frequency, for the wide layers where im2col and dgemm do
 * C kh kw multiply-adds per output and the transforms about one: the Lie
 * network's last layer (128 -> 128 channels, 5x5, 20x20 maps) is
 * 2 B O C kh kw Ho Wo = 21 GFLOP per minibatch of 64 by im2col, 2.6 GFLOP
 * of products plus about 0.4 of transforms here.
 *
 * Every map lives on an N1 x N2 grid, N1 >= H + 2 pad (a length FFTW does
 * fast), large enough that no circular product wraps onto the outputs
 * kept. With ^ the 2-D real transform (F = N1 (N2/2 + 1) frequencies):
 *
 *   xp     x zero-padded: x[c] at offset (pad, pad);
 *   Wk     ^ of w[o, c] placed flipped, at (-p mod N1, -q mod N2), which
 *          turns the cross-correlation into a convolution;
 *   y      y^[o, b] = sum_c Wk[o, c] xp^[c, b]          (Wk xp^, per frequency)
 *   dx     dxp^[c, b] = sum_o conj(Wk[o, c]) G^[o, b]   (Wk^H G^), dx = dxp at (pad, pad)
 *   dw     Z[o, c] = sum_b G^[o, b] conj(xp^[c, b])     (G^ xp^H): the transform of
 *          the correlation sum_b sum_i G[i] xp[i + p] reversed, so dw[o, c, p, q]
 *          is its inverse at (-p mod N1, -q mod N2).
 *
 * The filters' transforms are not FFTs: a 5 x 5 filter on a 24 x 24 grid
 * would leave FFTW mostly zeros, so they are products with the DFT matrices
 * of the kh x kw taps (filters_transform, filters_inverse): a whole SL(2)
 * training step on one Zen 1 core went from 27.3 to 32.5 images/s with them
 * (from 13.1 by im2col).
 *
 * The complex products are real dgemms on stacked parts (OpenBLAS's zgemm
 * ran at 4.4 GFLOP/s on a Zen 1 core for these shapes, its dgemm at 11):
 * with a = ar + i ai planar, [ar; ai] the real parts stacked on the
 * imaginary ones, and the block Wb = [wr -wi; wi wr],
 *
 *   [yr; yi] = Wb [xr; xi],   [dxr; dxi] = Wb^T [gr; gi],
 *   [gr; gi] [xr; xi]^T = [P11 P12; P21 P22],  Z = (P11 + P22) + i (P21 - P12).
 *
 * Layout (doubles, frequency-major, so that each frequency's matrix is one
 * dgemm operand; FFTW's split-format guru plans write and read these
 * strides directly, many transforms at once):
 *
 *   x side  [F][2][C][ldb]   (the x transforms, or dx's product)
 *   g side  [F][2][O][ldb]   (the G transforms, or y's product)
 *   w side  [F][2O][ldw]     (Wb, or dw's four blocks)
 *
 * ldb >= images per chunk, ldw >= 2C, and the grids' stride, all multiples
 * of 8 doubles, so that every array FFTW runs on is 64-byte aligned, as the
 * ones it planned on (its SIMD codelets need the same alignment). The batch
 * goes in chunks of CF_BATCH images, which bounds the scratch; dw sums the
 * chunks in its dgemm (beta 1). FFTW_ESTIMATE: the same plan, hence the
 * same numbers, on every run (FFTW_MEASURE picks by timing).
 */
#include "conv_fft.h"

#include <cblas.h>
#include <fftw3.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CF_BATCH 64 /* images per chunk */
#define CF_ALIGN 8  /* doubles: 64 bytes */
/* The FFT path is taken when the direct algorithm would do this many times
   its arithmetic: dgemm on im2col columns runs near the core's peak, and
   the transforms, gathers and scatters here well below it. */
#define CF_MARGIN 3.0

static size_t round_up(size_t n) { return (n + CF_ALIGN - 1) / CF_ALIGN * CF_ALIGN; }

/* Sizes derived from the geometry (sizes_of). */
typedef struct {
  int n[2];   /* the grid, N1 x N2 */
  size_t nh;  /* N2 / 2 + 1 */
  size_t F;   /* N1 nh frequencies */
  size_t gs;  /* doubles per grid, >= N1 N2 */
  size_t ts;  /* doubles per spectrum in the spectra buffer, >= 2 F */
  size_t bc;  /* images per chunk */
  size_t ldb; /* leading dimension of the x and g sides */
  size_t ldw; /* leading dimension of the w side */
  size_t dft; /* doubles of the filters' transforms' scratch */
} cf_sizes;

typedef struct {
  sv__conv_geom g;
  cf_sizes z;
  size_t rest; /* images in the last chunk when fewer than bc, else 0 */
  /* transforms of count grids to count contiguous spectra and back, for
     the counts used: bc and rest */
  struct {
    int count;
    fftw_plan r2c, c2r;
  } pl[2];
  int npl;
  /* the filters' DFT matrices (filters_transform, filters_inverse) */
  double *ecos, *esin; /* [kw][nh]: cos, sin of 2 pi k2 q / N2 */
  double *rows2;       /* [2 N1][2 kh]: the k1 step, rows (part, k1), columns (p, part) */
  double *ca, *sa;     /* [kh][N1]: cos, sin of 2 pi k1 p / N1 */
  double *cols2;       /* [kw][2 nh]: the inverse's k2 step, columns (k2, part) */
} cfft;

static cf_sizes sizes_of(const sv__conv_geom *g)
{
  cf_sizes z;
  z.n[0] = sv__fft_fast_length((int)(g->H + 2 * g->pad));
  z.n[1] = sv__fft_fast_length((int)(g->W + 2 * g->pad));
  z.F = (size_t)z.n[0] * ((size_t)z.n[1] / 2 + 1);
  z.gs = round_up((size_t)z.n[0] * (size_t)z.n[1]);
  z.ts = round_up(2 * z.F);
  z.bc = g->B < CF_BATCH ? g->B : CF_BATCH;
  z.ldb = round_up(z.bc);
  z.ldw = round_up(2 * g->C);
  z.nh = (size_t)z.n[1] / 2 + 1;
  size_t fwd = 2 * g->kh * g->O * g->C * z.nh + 2 * (size_t)z.n[0] * g->C * z.nh;
  size_t inv = (2 * z.nh * g->kh + g->kw) * g->O * z.ldw;
  z.dft = round_up(fwd > inv ? fwd : inv);
  return z;
}

int sv__conv_fft_chosen(const sv__conv_geom *g)
{
  const char *e = getenv("SOLVER_CONV2D");
  int forced = -1; /* -1 auto, 0 direct, 1 fft */
  if (e && *e && strcmp(e, "auto") != 0) {
    if (strcmp(e, "fft") == 0)
      forced = 1;
    else if (strcmp(e, "direct") == 0)
      forced = 0;
    else
      return sv_fail("environment variable SOLVER_CONV2D = '%s': must be auto, fft or direct", e);
  }
  if (g->s != 1 || g->B == 0)
    return 0;
  if (forced >= 0)
    return forced;
  cf_sizes z = sizes_of(g);
  double np = (double)z.n[0] * z.n[1], F = (double)z.F;
  double B = (double)g->B, C = (double)g->C, O = (double)g->O;
  double direct = 2 * B * O * C * (double)(g->kh * g->kw * g->Ho * g->Wo);
  double fft = 8 * F * O * C * B + 2.5 * np * log2(np) * (B * C + O * C + B * O);
  return direct > CF_MARGIN * fft;
}

/* The work layout, in doubles from an aligned start: the w side, the x
   side, the g side, bc grids, bc spectra, the filters' transforms' scratch;
   off[6] is the end. */
static void work_layout(const sv__conv_geom *g, const cf_sizes *z, size_t off[7])
{
  size_t len[6] = {z->F * 2 * g->O * z->ldw, z->F * 2 * g->C * z->ldb, z->F * 2 * g->O * z->ldb,
                   z->bc * z->gs, z->bc * z->ts, z->dft};
  off[0] = 0;
  for (int i = 0; i < 6; i++)
    off[i + 1] = off[i] + len[i];
}

size_t sv__conv_fft_work(const sv__conv_geom *g)
{
  cf_sizes z = sizes_of(g);
  size_t off[7];
  work_layout(g, &z, off);
  return CF_ALIGN + off[6]; /* and the slack to align the start */
}

void sv__conv_fft_release(void *state)
{
  cfft *s = state;
  if (!s)
    return;
  for (int i = 0; i < s->npl; i++) {
    if (s->pl[i].r2c)
      fftw_destroy_plan(s->pl[i].r2c);
    if (s->pl[i].c2r)
      fftw_destroy_plan(s->pl[i].c2r);
  }
  free(s->ecos);
  free(s->esin);
  free(s->rows2);
  free(s->ca);
  free(s->sa);
  free(s->cols2);
  free(s);
}

typedef struct {
  double *w, *x, *g, *grids, *spectra, *dft;
} cf_work;

static cf_work split_work(const cfft *s, double *work)
{
  uintptr_t a = (uintptr_t)work, m = CF_ALIGN * sizeof(double);
  double *base = (double *)((a + m - 1) / m * m);
  size_t off[7];
  work_layout(&s->g, &s->z, off);
  cf_work k = {base + off[0], base + off[1], base + off[2], base + off[3], base + off[4], base + off[5]};
  return k;
}

/* count transforms between grids (stride gs) and contiguous split spectra
   (stride ts: F real parts, then F imaginary parts): FFTW's fast case. The
   kernels scatter the spectra into the frequency-major sides and gather
   them back, which costs less than FFTW's strided transforms (measured on
   a Zen 1 core, 24 x 24 grids: 8-10 us a transform with the scatter, 13-19
   writing the strided layout directly). */
static fftw_plan plan_r2c(const cfft *s, int count, double *grids, double *spectra)
{
  fftw_iodim d[2] = {{s->z.n[0], s->z.n[1], (int)s->z.nh}, {s->z.n[1], 1, 1}};
  fftw_iodim h = {count, (int)s->z.gs, (int)s->z.ts};
  return fftw_plan_guru_split_dft_r2c(2, d, 1, &h, grids, spectra, spectra + s->z.F, FFTW_ESTIMATE);
}

static fftw_plan plan_c2r(const cfft *s, int count, double *spectra, double *grids)
{
  fftw_iodim d[2] = {{s->z.n[0], (int)s->z.nh, s->z.n[1]}, {s->z.n[1], 1, 1}};
  fftw_iodim h = {count, (int)s->z.ts, (int)s->z.gs};
  return fftw_plan_guru_split_dft_c2r(2, d, 1, &h, spectra, spectra + s->z.F, grids, FFTW_ESTIMATE);
}

/* cos and sin of 2 pi m / n, the product reduced mod n first (exact). */
static double cos_of(size_t m, size_t n) { return cos(2 * M_PI * (double)(m % n) / (double)n); }
static double sin_of(size_t m, size_t n) { return sin(2 * M_PI * (double)(m % n) / (double)n); }

/* The filters' transforms are products with DFT matrices restricted to the
   kh x kw taps (filters_transform, filters_inverse): 5 x 5 of a 24 x 24
   grid would leave FFTW mostly zeros to transform. */
static int dft_matrices(cfft *s)
{
  const sv__conv_geom *g = &s->g;
  size_t N1 = (size_t)s->z.n[0], N2 = (size_t)s->z.n[1], nh = s->z.nh, kh = g->kh, kw = g->kw;
  s->ecos = malloc(kw * nh * sizeof *s->ecos);
  s->esin = malloc(kw * nh * sizeof *s->esin);
  s->rows2 = malloc(4 * N1 * kh * sizeof *s->rows2);
  s->ca = malloc(kh * N1 * sizeof *s->ca);
  s->sa = malloc(kh * N1 * sizeof *s->sa);
  s->cols2 = malloc(2 * kw * nh * sizeof *s->cols2);
  if (!s->ecos || !s->esin || !s->rows2 || !s->ca || !s->sa || !s->cols2)
    return sv_fail("conv2d: out of memory");
  for (size_t q = 0; q < kw; q++)
    for (size_t k2 = 0; k2 < nh; k2++) {
      s->ecos[q * nh + k2] = cos_of(k2 * q, N2);
      s->esin[q * nh + k2] = sin_of(k2 * q, N2);
      /* the inverse sums each k2 in (0, N2/2) twice: itself and its mirror */
      double a = (k2 == 0 || 2 * k2 == N2) ? 1 : 2;
      s->cols2[q * 2 * nh + 2 * k2] = a * cos_of(k2 * q, N2);
      s->cols2[q * 2 * nh + 2 * k2 + 1] = a * sin_of(k2 * q, N2);
    }
  for (size_t k1 = 0; k1 < N1; k1++)
    for (size_t p = 0; p < kh; p++) {
      double c = cos_of(k1 * p, N1), sn = sin_of(k1 * p, N1);
      double *re = s->rows2 + k1 * 2 * kh, *im = s->rows2 + (N1 + k1) * 2 * kh;
      re[2 * p] = c, re[2 * p + 1] = -sn; /* wr = cos tr - sin ti */
      im[2 * p] = sn, im[2 * p + 1] = c;  /* wi = sin tr + cos ti */
      s->ca[p * N1 + k1] = c;
      s->sa[p * N1 + k1] = sn;
    }
  return 0;
}

int sv__conv_fft_prepare(const sv__conv_geom *g, void **state)
{
  cfft *s = calloc(1, sizeof *s);
  if (!s)
    return sv_fail("conv2d: out of memory");
  *state = s;
  s->g = *g;
  s->z = sizes_of(g);
  s->rest = g->B % s->z.bc;
  /* FFTW_ESTIMATE neither reads nor writes the arrays it plans on: a
     scratch of the kernels' layout, never touched (so never paged in),
     stands for theirs */
  double *scratch = malloc(sv__conv_fft_work(g) * sizeof *scratch);
  if (!scratch)
    return sv_fail("conv2d: out of memory");
  cf_work k = split_work(s, scratch);
  int counts[2] = {(int)s->z.bc, (int)s->rest};
  int ok = 1;
  for (int i = 0; i < 2; i++) {
    int dup = counts[i] == 0;
    for (int j = 0; j < s->npl; j++)
      dup = dup || s->pl[j].count == counts[i];
    if (dup)
      continue;
    int m = s->npl++;
    s->pl[m].count = counts[i];
    s->pl[m].r2c = plan_r2c(s, counts[i], k.grids, k.spectra);
    s->pl[m].c2r = plan_c2r(s, counts[i], k.spectra, k.grids);
    ok = ok && s->pl[m].r2c && s->pl[m].c2r;
  }
  free(scratch);
  if (!ok)
    return sv_fail("conv2d: FFTW made no plan for %dx%d transforms", s->z.n[0], s->z.n[1]);
  return dft_matrices(s);
}

/* grid = the rows x cols map m placed at (r0, r0), zero elsewhere. */
static void place(const cfft *s, const double *m, size_t rows, size_t cols, size_t r0,
                  double *grid)
{
  memset(grid, 0, (size_t)s->z.n[0] * (size_t)s->z.n[1] * sizeof *grid);
  for (size_t i = 0; i < rows; i++)
    memcpy(grid + (r0 + i) * (size_t)s->z.n[1] + r0, m + i * cols, cols * sizeof *m);
}

static int plan_index(const cfft *s, size_t count)
{
  for (int i = 0; i < s->npl; i++)
    if ((size_t)s->pl[i].count == count)
      return i;
  return 0; /* not reached: prepare planned every count used */
}

/* The count grids' spectra, scattered into a side: transform t's frequency
   f to base[f S + t] (real part) and base[f S + im + t]. */
static void grids_to_side(const cfft *s, cf_work *k, size_t count, double *base, size_t S, size_t im)
{
  fftw_execute_split_dft_r2c(s->pl[plan_index(s, count)].r2c, k->grids, k->spectra,
                             k->spectra + s->z.F);
  for (size_t f = 0; f < s->z.F; f++) {
    double *re = base + f * S, *imp = re + im;
    const double *sp = k->spectra + f;
    for (size_t t = 0; t < count; t++) {
      re[t] = sp[t * s->z.ts];
      imp[t] = sp[t * s->z.ts + s->z.F];
    }
  }
}

/* The reverse: count spectra gathered from a side, inverted into grids. */
static void side_to_grids(const cfft *s, cf_work *k, size_t count, const double *base, size_t S,
                          size_t im)
{
  for (size_t f = 0; f < s->z.F; f++) {
    const double *re = base + f * S, *imp = re + im;
    double *sp = k->spectra + f;
    for (size_t t = 0; t < count; t++) {
      sp[t * s->z.ts] = re[t];
      sp[t * s->z.ts + s->z.F] = imp[t];
    }
  }
  fftw_execute_split_dft_c2r(s->pl[plan_index(s, count)].c2r, k->spectra, k->spectra + s->z.F,
                             k->grids);
}

/* The w side: Wb = [wr -wi; wi wr], Wk[k1, k2] = sum_{p, q} w[p, q]
   e^{+2 pi i (k1 p / N1 + k2 q / N2)} (the transform of w placed flipped),
   in two products: t[p, k2] = sum_q w[p, q] e^{+2 pi i k2 q / N2} for all
   filters at once, then the k1 sum for one output channel's filters at a
   time, scattered into the frequency-major blocks. */
static void filters_transform(const cfft *s, const double *w, cf_work *k)
{
  const sv__conv_geom *g = &s->g;
  size_t N1 = (size_t)s->z.n[0], nh = s->z.nh, O = g->O, C = g->C, kh = g->kh, kw = g->kw;
  size_t OC = O * C, ldw = s->z.ldw;
  double *t = k->dft, *out = t + 2 * kh * OC * nh; /* t [(p, part)][oc nh], out [(part, k1)][c nh] */
  for (size_t p = 0; p < kh; p++) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)OC, (int)nh, (int)kw, 1.0, w + p * kw,
                (int)(kh * kw), s->ecos, (int)nh, 0.0, t + 2 * p * OC * nh, (int)nh);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)OC, (int)nh, (int)kw, 1.0, w + p * kw,
                (int)(kh * kw), s->esin, (int)nh, 0.0, t + (2 * p + 1) * OC * nh, (int)nh);
  }
  for (size_t o = 0; o < O; o++) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(2 * N1), (int)(C * nh), (int)(2 * kh),
                1.0, s->rows2, (int)(2 * kh), t + o * C * nh, (int)(OC * nh), 0.0, out, (int)(C * nh));
    /* wr into the top left and bottom right blocks, wi into the bottom
       left and, negated, the top right: both halves in one pass over the
       side (a second pass re-read it, and the side is far out of cache) */
    for (size_t k1 = 0; k1 < N1; k1++) {
      const double *re = out + k1 * C * nh, *im = out + (N1 + k1) * C * nh;
      double *top = k->w + (k1 * nh * 2 * O + o) * ldw, *bot = top + O * ldw;
      for (size_t k2 = 0; k2 < nh; k2++, top += 2 * O * ldw, bot += 2 * O * ldw)
        for (size_t c = 0; c < C; c++) {
          double wr = re[c * nh + k2], wi = im[c * nh + k2];
          top[c] = wr;
          bot[C + c] = wr;
          bot[c] = wi;
          top[C + c] = -wi;
        }
    }
  }
}

/* dw from Z (real parts at the w side's P11 places, imaginary at P21's):
   dw[o, c, p, q] = scale sum_{k1, k2 < nh} a_k2 Re(Z[k1, k2] e^{-2 pi i (k1 p / N1
   + k2 q / N2)}), a_k2 = 2 for the columns whose mirror the half spectrum
   leaves out, else 1 (the inverse real transform at (-p, -q)). The k1 sum
   per k2: u = ca zr + sa zi, v = ca zi - sa zr (rows p); then per p the
   k2 sum with cols2. The columns run over the w side's rows whole (o ldw +
   c, the right halves and padding included: cheaper than skipping them). */
static void filters_inverse(const cfft *s, cf_work *k, double *dw, double scale)
{
  const sv__conv_geom *g = &s->g;
  size_t N1 = (size_t)s->z.n[0], nh = s->z.nh, O = g->O, C = g->C, kh = g->kh, kw = g->kw;
  size_t ldw = s->z.ldw, n = O * ldw, lda = nh * 2 * O * ldw;
  double *u = k->dft, *d = u + 2 * nh * kh * n; /* u [(k2, part)][p][n], d [q][n] */
  for (size_t k2 = 0; k2 < nh; k2++) {
    const double *zr = k->w + k2 * 2 * O * ldw, *zi = zr + O * ldw;
    double *ur = u + 2 * k2 * kh * n, *ui = ur + kh * n;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)kh, (int)n, (int)N1, 1.0, s->ca, (int)N1,
                zr, (int)lda, 0.0, ur, (int)n);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)kh, (int)n, (int)N1, 1.0, s->sa, (int)N1,
                zi, (int)lda, 1.0, ur, (int)n);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)kh, (int)n, (int)N1, 1.0, s->ca, (int)N1,
                zi, (int)lda, 0.0, ui, (int)n);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)kh, (int)n, (int)N1, -1.0, s->sa,
                (int)N1, zr, (int)lda, 1.0, ui, (int)n);
  }
  for (size_t p = 0; p < kh; p++) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)kw, (int)n, (int)(2 * nh), 1.0, s->cols2,
                (int)(2 * nh), u + p * n, (int)(kh * n), 0.0, d, (int)n);
    for (size_t o = 0; o < O; o++)
      for (size_t c = 0; c < C; c++)
        for (size_t q = 0; q < kw; q++)
          dw[((o * C + c) * kh + p) * kw + q] = d[q * n + o * ldw + c] * scale;
  }
}

/* Images [b0, b0 + nb) of maps [B, rows, h, w], each placed at (r0, c0)
   of its grid, transformed into a side [F][2][rows][ldb] (the x side: x at
   (pad, pad); the g side: G at (0, 0)). */
static void maps_to_side(const cfft *s, cf_work *k, const double *maps, size_t rows, size_t h,
                         size_t w, size_t r0, size_t b0, size_t nb, double *side)
{
  for (size_t r = 0; r < rows; r++) {
    for (size_t b = 0; b < nb; b++)
      place(s, maps + ((b0 + b) * rows + r) * h * w, h, w, r0, k->grids + b * s->z.gs);
    grids_to_side(s, k, nb, side + r * s->z.ldb, 2 * rows * s->z.ldb, rows * s->z.ldb);
  }
}

/* The reverse: a side's spectra inverted, the h x w window at (r0, r0) of
   each grid, scaled, into images [b0, b0 + nb) of maps [B, rows, h, w]. */
static void side_to_maps(const cfft *s, cf_work *k, const double *side, size_t rows, size_t h,
                         size_t w, size_t r0, size_t b0, size_t nb, double *maps)
{
  size_t N2 = (size_t)s->z.n[1];
  double scale = 1.0 / ((double)s->z.n[0] * (double)N2);
  for (size_t r = 0; r < rows; r++) {
    side_to_grids(s, k, nb, side + r * s->z.ldb, 2 * rows * s->z.ldb, rows * s->z.ldb);
    for (size_t b = 0; b < nb; b++) {
      const double *grid = k->grids + b * s->z.gs;
      double *m = maps + ((b0 + b) * rows + r) * h * w;
      for (size_t i = 0; i < h; i++)
        for (size_t j = 0; j < w; j++)
          m[i * w + j] = grid[(i + r0) * N2 + j + r0] * scale;
    }
  }
}

/* The filters applied per frequency to the images' spectra: y = conv2d(x, w)
   ([yr; yi] = Wb [xr; xi]), or with `adjoint` dx = conv2d_dx(G, w)
   ([dxr; dxi] = Wb^T [gr; gi]). */
static void apply_filters(const cfft *s, const double *in, const double *w, double *out,
                          double *work, int adjoint)
{
  const sv__conv_geom *g = &s->g;
  cf_work k = split_work(s, work);
  /* the x side: C maps of H x W at (pad, pad); the g side: O of Ho x Wo at (0, 0) */
  size_t xs[4] = {g->C, g->H, g->W, g->pad}, gs[4] = {g->O, g->Ho, g->Wo, 0};
  const size_t *a = adjoint ? gs : xs, *r = adjoint ? xs : gs;
  double *side_in = adjoint ? k.g : k.x, *side_out = adjoint ? k.x : k.g;
  size_t ldb = s->z.ldb;
  filters_transform(s, w, &k);
  for (size_t b0 = 0; b0 < g->B; b0 += s->z.bc) {
    size_t nb = g->B - b0 < s->z.bc ? g->B - b0 : s->z.bc;
    maps_to_side(s, &k, in, a[0], a[1], a[2], a[3], b0, nb, side_in);
    for (size_t f = 0; f < s->z.F; f++)
      cblas_dgemm(CblasRowMajor, adjoint ? CblasTrans : CblasNoTrans, CblasNoTrans, (int)(2 * r[0]),
                  (int)nb, (int)(2 * a[0]), 1.0, k.w + f * 2 * g->O * s->z.ldw, (int)s->z.ldw,
                  side_in + f * 2 * a[0] * ldb, (int)ldb, 0.0, side_out + f * 2 * r[0] * ldb, (int)ldb);
    side_to_maps(s, &k, side_out, r[0], r[1], r[2], r[3], b0, nb, out);
  }
}

void sv__conv_fft_forward(const void *state, const double *x, const double *w, double *y,
                          double *work)
{
  apply_filters(state, x, w, y, work, 0);
}

void sv__conv_fft_dx(const void *state, const double *G, const double *w, double *dx, double *work)
{
  apply_filters(state, G, w, dx, work, 1);
}

void sv__conv_fft_dw(const void *state, const double *G, const double *x, double *dw, double *work)
{
  const cfft *s = state;
  const sv__conv_geom *g = &s->g;
  cf_work k = split_work(s, work);
  size_t O = g->O, C = g->C, ldb = s->z.ldb, ldw = s->z.ldw;
  double scale = 1.0 / ((double)s->z.n[0] * (double)s->z.n[1]);
  for (size_t b0 = 0; b0 < g->B; b0 += s->z.bc) {
    size_t nb = g->B - b0 < s->z.bc ? g->B - b0 : s->z.bc;
    maps_to_side(s, &k, x, C, g->H, g->W, g->pad, b0, nb, k.x);
    maps_to_side(s, &k, G, O, g->Ho, g->Wo, 0, b0, nb, k.g);
    for (size_t f = 0; f < s->z.F; f++) /* [P11 P12; P21 P22] (+)= [gr; gi] [xr; xi]^T */
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(2 * O), (int)(2 * C), (int)nb, 1.0,
                  k.g + f * 2 * O * ldb, (int)ldb, k.x + f * 2 * C * ldb, (int)ldb, b0 ? 1.0 : 0.0,
                  k.w + f * 2 * O * ldw, (int)ldw);
  }
  for (size_t f = 0; f < s->z.F; f++) /* Z = (P11 + P22) + i (P21 - P12), into P11 and P21 */
    for (size_t o = 0; o < O; o++) {
      double *top = k.w + (f * 2 * O + o) * ldw, *bot = top + O * ldw;
      for (size_t c = 0; c < C; c++) {
        top[c] += bot[C + c];
        bot[c] -= top[C + c];
      }
      /* filters_inverse reads the rows whole: no uninitialised padding */
      memset(top + 2 * C, 0, (ldw - 2 * C) * sizeof *top);
      memset(bot + 2 * C, 0, (ldw - 2 * C) * sizeof *bot);
    }
  filters_inverse(s, &k, dw, scale);
}
