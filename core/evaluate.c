/*
 * evaluate.c -- evaluating classifiers: accuracy and confusion matrix over
 * a dataset split over the ranks, their report (metric, CSV tables, a heat
 * map) and a grid of images with their predictions for a person to look
 * at.
 *
 * Every rank predicts its share of the examples; the counts and
 * predictions are summed over the ranks in one reduction (each example
 * belongs to exactly one rank, so the sum of shares is the whole), which
 * makes the result the same on every rank count. Only rank 0 writes files.
 */
#include "internal.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Beyond this a confusion matrix is no longer a table anyone reads. */
#define MAX_CLASSES 4096

/* ------------------------------------------------------------------ */
/* A growing text buffer (sticky out-of-memory flag, checked once)     */
/* ------------------------------------------------------------------ */

typedef struct {
  char *s;
  size_t n, cap;
  int oom;
} text;

static void text_printf(text *t, const char *fmt, ...) SV_PRINTF(2, 3);
static void text_printf(text *t, const char *fmt, ...)
{
  if (t->oom)
    return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = t->cap - t->n;
    int k = vsnprintf(t->s ? t->s + t->n : NULL, t->s ? room : 0, fmt, ap);
    va_end(ap);
    if (k < 0) {
      t->oom = 1;
      return;
    }
    if (t->s && (size_t)k < room) {
      t->n += (size_t)k;
      return;
    }
    size_t cap = t->cap ? t->cap : 1024;
    while (cap < t->n + (size_t)k + 1) {
      if (cap > SIZE_MAX / 2) {
        t->oom = 1;
        return;
      }
      cap *= 2;
    }
    char *s = realloc(t->s, cap);
    if (!s) {
      t->oom = 1;
      return;
    }
    t->s = s;
    t->cap = cap;
  }
}

/* A CSV field, quoted (RFC 4180) only when it has to be. */
static void text_csv_field(text *t, const char *s)
{
  if (!strpbrk(s, ",\"\r\n")) {
    text_printf(t, "%s", s);
    return;
  }
  text_printf(t, "\"");
  for (; *s; s++) {
    if (*s == '"')
      text_printf(t, "\"\"");
    else
      text_printf(t, "%c", *s);
  }
  text_printf(t, "\"");
}

/* A gnuplot single-quoted string: a quote is doubled; a line break, which
   a gnuplot string cannot hold, becomes a space. */
static void text_gp_string(text *t, const char *s)
{
  text_printf(t, "'");
  for (; *s; s++) {
    if (*s == '\'')
      text_printf(t, "''");
    else if (*s == '\n' || *s == '\r')
      text_printf(t, " ");
    else
      text_printf(t, "%c", *s);
  }
  text_printf(t, "'");
}

/* Write t to <outdir>/<file> atomically (rank 0 calls this). */
static int text_write(sv_run *r, const char *file, text *t)
{
  if (t->oom) {
    free(t->s);
    t->s = NULL;
    return sv_fail("'%s': out of memory", file);
  }
  char *path = sv__outpath(r, file);
  int rc = path ? sv__write_atomic(path, t->s ? t->s : "", t->n) : -1;
  free(path);
  free(t->s);
  memset(t, 0, sizeof *t);
  return rc;
}

/* The name of class k: class_names[k], or its number in `num`. */
static const char *class_name(const char *const *names, int k, char num[16])
{
  if (names)
    return names[k];
  snprintf(num, 16, "%d", k);
  return num;
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                          */
/* ------------------------------------------------------------------ */

void sv_eval_free(sv_eval *e)
{
  if (!e)
    return;
  free(e->confusion);
  free(e->pred);
  memset(e, 0, sizeof *e);
}

/*
 * Predict examples [first, first + count) in calls of at most `batch`,
 * counting into conf (K x K) and writing pred. A callback that leaves a
 * score unwritten is caught by the NaN the scores start as.
 */
static int predict_share(const sv_dataset *d, int first, int count, int batch,
                         sv_predict_fn f, void *ctx, double *conf, double *pred)
{
  int K = d->nclasses;
  int b = batch < count ? batch : count;
  double *scores = malloc((size_t)(b > 0 ? b : 1) * (size_t)K * sizeof(double));
  if (!scores)
    return sv_fail("evaluate: out of memory for %d x %d scores", b, K);
  int rc = 0;
  for (int s = first; s < first + count && rc == 0; s += batch) {
    int m = first + count - s < batch ? first + count - s : batch;
    for (size_t i = 0; i < (size_t)m * (size_t)K; i++)
      scores[i] = NAN;
    if (f(ctx, m, d->x + (size_t)s * d->size, scores) != 0) {
      rc = sv_fail_context("evaluate: predicting examples %d to %d failed", s, s + m - 1);
      break;
    }
    for (int i = 0; i < m && rc == 0; i++) {
      const double *v = scores + (size_t)i * (size_t)K;
      int best = 0;
      for (int j = 0; j < K; j++) {
        if (isnan(v[j])) {
          rc = sv_fail("evaluate: the score of class %d for example %d is NaN (or was not "
                       "written by the predict function)", j, s + i);
          break;
        }
        if (v[j] > v[best])
          best = j; /* strictly greater: the first maximum wins a tie */
      }
      conf[(size_t)d->y[s + i] * (size_t)K + (size_t)best] += 1;
      pred[s + i] = best;
    }
  }
  free(scores);
  return rc;
}

/*
 * Did any rank fail? Every rank learns it and gets the message of the
 * lowest failing rank, so all of them return the same error.
 */
static int agree_on_failure(sv_run *r, int failed)
{
  if (!r || r->size == 1)
    return failed ? -1 : 0;
  int mine = failed ? r->rank : INT_MAX, root = INT_MAX;
  if (MPI_Allreduce(&mine, &root, 1, MPI_INT, MPI_MIN, r->comm) != MPI_SUCCESS)
    return sv_fail("evaluate: MPI_Allreduce failed");
  if (root == INT_MAX)
    return 0;
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", r->rank == root ? sv_errmsg() : "");
  if (MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, root, r->comm) != MPI_SUCCESS)
    return sv_fail("evaluate: MPI_Bcast failed");
  return sv_fail("%s (on rank %d)", msg, root);
}

int sv_evaluate_classifier(sv_run *r, const sv_dataset *d, int batch, sv_predict_fn f,
                           void *ctx, sv_eval *out)
{
  if (!out)
    return sv_fail("evaluate: no result to fill");
  memset(out, 0, sizeof *out);
  /* Argument errors are the same on every rank: no collective needed. */
  if (!d)
    return sv_fail("evaluate: no dataset");
  if (!d->y)
    return sv_fail("evaluate: the dataset has no labels");
  if (d->nclasses < 1 || d->nclasses > MAX_CLASSES)
    return sv_fail("evaluate: %d classes (from 1 to %d)", d->nclasses, MAX_CLASSES);
  if (batch < 1)
    return sv_fail("evaluate: batch size %d (need at least 1)", batch);
  if (!f)
    return sv_fail("evaluate: no predict function");
  for (int i = 0; i < d->n; i++)
    if (d->y[i] < 0 || d->y[i] >= d->nclasses)
      return sv_fail("evaluate: label %d of example %d is outside [0, %d)", d->y[i], i,
                     d->nclasses);

  int K = d->nclasses, first, count;
  sv_run_partition(r, d->n, &first, &count);
  /* One vector to sum: the confusion counts, then the predictions (each
     rank fills only its share, the others stay 0). Doubles count exactly
     up to 2^53. */
  size_t kk = (size_t)K * (size_t)K, len = kk + (size_t)d->n;
  double *red = calloc(len, sizeof(double));
  int failed = red == NULL;
  if (failed)
    sv_fail("evaluate: out of memory for %zu counts", len);
  else
    failed = predict_share(d, first, count, batch, f, ctx, red, red + kk) < 0;
  if (agree_on_failure(r, failed) < 0) {
    free(red);
    return -1;
  }
  if (r && sv_allreduce_sum(r, red, len) < 0) {
    free(red);
    return -1;
  }

  out->confusion = malloc(kk * sizeof(long));
  out->pred = malloc((size_t)d->n * sizeof(int));
  if (!out->confusion || !out->pred) {
    free(red);
    sv_eval_free(out);
    return sv_fail("evaluate: out of memory for the results of %d examples", d->n);
  }
  out->n = d->n;
  out->nclasses = K;
  for (size_t i = 0; i < kk; i++)
    out->confusion[i] = (long)red[i];
  for (int i = 0; i < d->n; i++)
    out->pred[i] = (int)red[kk + (size_t)i];
  for (int k = 0; k < K; k++)
    out->correct += (int)out->confusion[(size_t)k * (size_t)K + (size_t)k];
  out->accuracy = (double)out->correct / (double)out->n;
  free(red);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Report                                                              */
/* ------------------------------------------------------------------ */

/* A prefix or file name that gnuplot and the file system take as it is. */
static int check_name(const char *who, const char *name)
{
  if (!name || !*name)
    return sv_fail("%s: empty name", who);
  if (strpbrk(name, "/'\"\n\r"))
    return sv_fail("%s '%s': the name may not contain '/', quotes or line breaks", who, name);
  return 0;
}

static int check_class_names(const char *who, const char *const *names, int K)
{
  for (int k = 0; names && k < K; k++)
    if (!names[k] || !*names[k])
      return sv_fail("%s: class %d has no name", who, k);
  return 0;
}

static int write_confusion_csv(sv_run *r, const sv_eval *e, const char *file,
                               const char *const *names)
{
  int K = e->nclasses;
  char num[16];
  text t = {0};
  text_printf(&t, "true");
  for (int j = 0; j < K; j++) {
    text_printf(&t, ",");
    text_csv_field(&t, class_name(names, j, num));
  }
  text_printf(&t, "\n");
  for (int i = 0; i < K; i++) {
    text_csv_field(&t, class_name(names, i, num));
    for (int j = 0; j < K; j++)
      text_printf(&t, ",%ld", e->confusion[(size_t)i * (size_t)K + (size_t)j]);
    text_printf(&t, "\n");
  }
  return text_write(r, file, &t);
}

static int write_per_class_csv(sv_run *r, const sv_eval *e, const char *file,
                               const char *const *names)
{
  int K = e->nclasses;
  char num[16];
  text t = {0};
  text_printf(&t, "class,name,count,correct,accuracy\n");
  for (int i = 0; i < K; i++) {
    long total = 0, right = e->confusion[(size_t)i * (size_t)K + (size_t)i];
    for (int j = 0; j < K; j++)
      total += e->confusion[(size_t)i * (size_t)K + (size_t)j];
    text_printf(&t, "%d,", i);
    text_csv_field(&t, class_name(names, i, num));
    if (total > 0)
      text_printf(&t, ",%ld,%ld,%.17g\n", total, right, (double)right / (double)total);
    else
      text_printf(&t, ",0,0,nan\n");
  }
  return text_write(r, file, &t);
}

/* Tick labels for classes 0..K-1 on an axis ("x" or "y"). */
static void gp_class_tics(text *t, const char *axis, int K, const char *const *names)
{
  char num[16];
  text_printf(t, "set %stics (", axis);
  for (int k = 0; k < K; k++) {
    text_printf(t, "%s", k ? ", " : "");
    text_gp_string(t, class_name(names, k, num));
    text_printf(t, " %d", k);
  }
  text_printf(t, ")\n");
}

/* The confusion matrix as a heat map: the colour is the fraction of the
   true class (row) predicted as each class, so that rare and common
   classes read alike; the counts are written in the cells. */
static int plot_confusion(sv_run *r, const sv_eval *e, const char *prefix, const char *png,
                          const char *const *names)
{
  int K = e->nclasses;
  text t = {0};
  text_printf(&t, "set title ");
  char title[256];
  snprintf(title, sizeof title, "%s: accuracy %.2f%% (%d of %d)", prefix, 100 * e->accuracy,
           e->correct, e->n);
  text_gp_string(&t, title);
  text_printf(&t, "\nset xlabel 'predicted class'\nset ylabel 'true class'\n"
                  "set xrange [-0.5:%g]\nset yrange [%g:-0.5]\nset size ratio -1\n"
                  "set tics scale 0\nset cbrange [0:1]\n"
                  "set cblabel 'fraction of the true class'\n"
                  "set palette defined (0 '#ffffff', 1 '#08306b')\n",
              K - 0.5, K - 0.5);
  if (K <= 40) {
    gp_class_tics(&t, "x", K, names);
    gp_class_tics(&t, "y", K, names);
    if (names)
      text_printf(&t, "set xtics rotate by 40 right\n");
  }
  text_printf(&t, "$confusion << EOD\n");
  for (int i = 0; i < K; i++) {
    long total = 0;
    for (int j = 0; j < K; j++)
      total += e->confusion[(size_t)i * (size_t)K + (size_t)j];
    for (int j = 0; j < K; j++) {
      long c = e->confusion[(size_t)i * (size_t)K + (size_t)j];
      text_printf(&t, "%d %d %.6f %ld\n", j, i, total ? (double)c / (double)total : 0.0, c);
    }
  }
  text_printf(&t, "EOD\nplot $confusion using 1:2:3 with image notitle");
  if (K <= 25) {
    /* counts, white on dark cells and black on light ones; zeros left out */
    const char *font = K <= 12 ? "" : " font ',7'";
    text_printf(&t, ", \\\n  $confusion using 1:2:(($3 > 0.5 && $4 > 0) ? stringcolumn(4) : '') "
                    "with labels tc rgb 'white'%s notitle", font);
    text_printf(&t, ", \\\n  $confusion using 1:2:(($3 <= 0.5 && $4 > 0) ? stringcolumn(4) : '') "
                    "with labels tc rgb 'black'%s notitle", font);
  }
  text_printf(&t, "\n");
  if (t.oom) {
    free(t.s);
    return sv_fail("plot '%s': out of memory", png);
  }
  int rc = sv_plot(r, png, t.s);
  free(t.s);
  return rc;
}

int sv_eval_report(sv_run *r, const sv_eval *e, const char *prefix,
                   const char *const *class_names)
{
  if (!r)
    return sv_fail("evaluation report: no run");
  if (!e || !e->confusion || !e->pred || e->nclasses < 1 || e->n < 1)
    return sv_fail("evaluation report: no evaluation (call sv_evaluate_classifier first)");
  if (check_name("evaluation report", prefix) < 0 ||
      check_class_names("evaluation report", class_names, e->nclasses) < 0)
    return -1;
  size_t len = strlen(prefix) + 32;
  char *name = malloc(len);
  if (!name)
    return sv_fail("evaluation report '%s': out of memory", prefix);
  snprintf(name, len, "%s_accuracy", prefix);
  int rc = sv_metric(r, name, e->accuracy);
  if (rc == 0 && r->rank == 0) {
    snprintf(name, len, "%s_confusion.csv", prefix);
    rc = write_confusion_csv(r, e, name, class_names);
    if (rc == 0) {
      snprintf(name, len, "%s_per_class.csv", prefix);
      rc = write_per_class_csv(r, e, name, class_names);
    }
    if (rc == 0) {
      snprintf(name, len, "%s_confusion.png", prefix);
      rc = plot_confusion(r, e, prefix, name, class_names);
    }
  }
  free(name);
  return rc;
}

/* ------------------------------------------------------------------ */
/* A grid of images                                                    */
/* ------------------------------------------------------------------ */

/* Sizes in screen pixels: a caption line's height and a character's
   width at the caption font, the gaps around an image. */
#define CAPTION_LINE 15
#define CAPTION_CHAR 7
#define GAP_X 14
#define GAP_Y 8
#define TITLE_H 30
/* Each image at most this many pixels a side. */
#define MAX_SIDE 512

/* The caption lines of image i (empty strings for none). */
static void caption(int i, const int *pred, const int *truth, const char *const *names,
                    char line[2][160])
{
  char num_p[16], num_t[16];
  const char *pn = pred ? class_name(names, pred[i], num_p) : NULL;
  const char *tn = truth ? class_name(names, truth[i], num_t) : NULL;
  line[0][0] = line[1][0] = '\0';
  if (pn && tn && pred[i] != truth[i]) {
    snprintf(line[0], 160, "pred %s", pn);
    snprintf(line[1], 160, "true %s", tn);
  } else if (pn) {
    snprintf(line[0], 160, "%s", pn);
  } else if (tn) {
    snprintf(line[0], 160, "true %s", tn);
  }
}

/*
 * The grid is one matrix image (the mosaic: every image at its place, white
 * between them) in image-pixel units, drawn at `s` screen pixels per image
 * pixel on a canvas sized to fit it, so that images of any number stay
 * large enough to see and captions never overlap. Mistakes get a red frame
 * and red captions.
 */
int sv_plot_image_grid(sv_run *r, const char *png, int count, int rows, int cols,
                       const double *images, const int *pred, const int *truth,
                       const char *const *class_names)
{
  if (!r)
    return sv_fail("image grid: no run");
  if (!png || !*png)
    return sv_fail("image grid: empty PNG file name");
  if (count < 1 || count > SV_GRID_MAX)
    return sv_fail("image grid '%s': %d images (from 1 to %d)", png, count, SV_GRID_MAX);
  if (rows < 1 || cols < 1 || rows > MAX_SIDE || cols > MAX_SIDE)
    return sv_fail("image grid '%s': images of %d x %d pixels (each side from 1 to %d)", png,
                   rows, cols, MAX_SIDE);
  if (!images)
    return sv_fail("image grid '%s': no images", png);
  size_t px = (size_t)rows * (size_t)cols;
  for (size_t i = 0; i < (size_t)count * px; i++)
    if (isnan(images[i]))
      return sv_fail("image grid '%s': pixel %zu of image %zu is NaN", png, i % px, i / px);
  for (int i = 0; i < count; i++)
    if ((pred && pred[i] < 0) || (truth && truth[i] < 0))
      return sv_fail("image grid '%s': image %d has a negative class", png, i);
  if (r->rank != 0)
    return 0;

  /* Scale: the larger side near 120 screen pixels, but big images at
     least at half size and small ones at most 8 times. */
  int side = rows > cols ? rows : cols;
  double s = 120.0 / side;
  if (s < 1 && side <= 256)
    s = 1;
  if (s < 0.5)
    s = 0.5;
  if (s > 8)
    s = 8;
  /* Cells wide enough for the longest caption, tall enough for the most
     lines, rounded up to whole image pixels. */
  int lines = 0, chars = 0, wrong = 0;
  for (int i = 0; i < count; i++) {
    char line[2][160];
    caption(i, pred, truth, class_names, line);
    for (int l = 0; l < 2; l++) {
      int len = (int)strlen(line[l]);
      if (len > 0 && l + 1 > lines)
        lines = l + 1;
      chars = len > chars ? len : chars;
    }
    wrong += pred && truth && pred[i] != truth[i];
  }
  double cell_w = fmax(cols * s, chars * CAPTION_CHAR) + GAP_X;
  double cell_h = rows * s + lines * CAPTION_LINE + 2 * GAP_Y;
  int cw = (int)ceil(cell_w / s), ch = (int)ceil(cell_h / s);
  /* Columns for a landscape canvas of about 3:2, then as few as the rows
     need. */
  int gc = (int)ceil(sqrt(count * 1.5 * (ch * s) / (cw * s)));
  gc = gc < 1 ? 1 : gc > count ? count : gc;
  int gr = (count + gc - 1) / gc;
  gc = (count + gr - 1) / gr;
  long W = (long)gc * cw, H = (long)gr * ch;
  int title = pred && truth;
  int cw_px = (int)ceil(W * s) + 2 * GAP_X, ch_px = (int)ceil(H * s) + GAP_Y + (title ? TITLE_H : GAP_Y);

  text t = {0};
  /* The canvas size replaces sv_plot's default on the same terminal. */
  text_printf(&t, "gridterm = GPVAL_TERM\nset terminal @gridterm size %d,%d noenhanced\n"
                  "unset key\nunset border\nunset tics\nunset colorbox\n"
                  "set lmargin at screen %.6f\nset rmargin at screen %.6f\n"
                  "set bmargin at screen %.6f\nset tmargin at screen %.6f\n"
                  "set xrange [-0.5:%ld.5]\nset yrange [%ld.5:-0.5]\n"
                  "set palette gray\nset cbrange [0:1]\n",
              cw_px, ch_px, (double)GAP_X / cw_px, 1 - (double)GAP_X / cw_px,
              (double)GAP_Y / ch_px, 1 - (double)(title ? TITLE_H : GAP_Y) / ch_px, W - 1,
              H - 1);
  if (title)
    text_printf(&t, "set label '%d images, %d %s (in red)' at screen 0.5, screen %.6f center "
                    "font ',11'\n", count, wrong, wrong == 1 ? "mistake" : "mistakes",
                1 - (TITLE_H / 2.0) / ch_px);
  for (int i = 0; i < count; i++) {
    long x0 = (long)(i % gc) * cw + (cw - cols) / 2, y0 = (long)(i / gc) * ch + (int)ceil(GAP_Y / s);
    int bad = pred && truth && pred[i] != truth[i];
    const char *colour = bad ? "#d00000" : "#000000";
    if (bad)
      text_printf(&t, "set object rectangle from %g,%g to %g,%g front fillstyle empty "
                      "border rgb '%s' linewidth 2\n", x0 - 0.5, y0 - 0.5, x0 + cols - 0.5,
                  y0 + rows - 0.5, colour);
    char line[2][160];
    caption(i, pred, truth, class_names, line);
    for (int l = 0; l < 2; l++) {
      if (!line[l][0])
        continue;
      text_printf(&t, "set label ");
      text_gp_string(&t, line[l]);
      text_printf(&t, " at %g,%g center front textcolor rgb '%s' font ',9'\n",
                  x0 + (cols - 1) / 2.0, y0 + rows - 0.5 + (l + 0.6) * CAPTION_LINE / s, colour);
    }
  }
  /* The mosaic as a matrix: background white (1) between the images. */
  text_printf(&t, "$mosaic << EOD\n");
  for (long y = 0; y < H && !t.oom; y++) {
    for (long x = 0; x < W; x++) {
      long i = (y / ch) * gc + x / cw;
      long ix = x % cw - (cw - cols) / 2, iy = y % ch - (long)ceil(GAP_Y / s);
      double v = 1;
      if (i < count && ix >= 0 && ix < cols && iy >= 0 && iy < rows) {
        v = images[(size_t)i * px + (size_t)iy * (size_t)cols + (size_t)ix];
        v = v < 0 ? 0 : v > 1 ? 1 : v;
      }
      text_printf(&t, x ? " %.3g" : "%.3g", v);
    }
    text_printf(&t, "\n");
  }
  text_printf(&t, "EOD\nplot $mosaic matrix with image\n");
  if (t.oom) {
    free(t.s);
    return sv_fail("image grid '%s': out of memory", png);
  }
  int rc = sv_plot(r, png, t.s);
  free(t.s);
  return rc;
}
