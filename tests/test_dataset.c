/*
 * test_dataset.c -- datasets, minibatches and evaluation.
 *
 * IDX files: exact round trips (plain and gzip, every element type), every
 * kind of bad file refused with a message naming the file and the problem,
 * and fuzzing (every truncation, every flipped byte, random multi-byte
 * flips of small plain and gzipped files) judged against an independent
 * reader written here: a file loads exactly when that reader finds it
 * valid, and then with the same values. The real Fashion-MNIST files when
 * installed. Minibatches: each example once per epoch, fresh permutations,
 * reproducible and random-access steps, rank shares that add up to the
 * one-rank batch. Evaluation: known predictions give the exact accuracy,
 * confusion matrix and files.
 */
#include "internal.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------------ */
/* Fixture: a scratch directory and a one-rank run writing into it     */
/* ------------------------------------------------------------------ */

static char tmpdir[256];
static struct sv_run run;
/* <tmpdir>/<name> paths handed out, kept until the test's end */
static char *tpaths[256];
static int ntpaths;

static void remove_tree(const char *dir)
{
  DIR *d = opendir(dir);
  if (!d)
    return;
  struct dirent *e;
  char path[1024];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
      remove_tree(path);
    else
      unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

static void setup(void)
{
  snprintf(tmpdir, sizeof tmpdir, "%s/sv_data_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(tmpdir));
  memset(&run, 0, sizeof run);
  run.outdir = tmpdir;
  run.comm = MPI_COMM_SELF;
  run.rank = 0;
  run.size = 1;
  run.seed = 1234;
  run.quiet = 1;
  sv_clear_error();
}

static void teardown(void)
{
  for (int i = 0; i < run.nmetrics; i++)
    free(run.metrics[i].name);
  free(run.metrics);
  remove_tree(tmpdir);
  for (int i = 0; i < ntpaths; i++)
    free(tpaths[i]);
  ntpaths = 0;
}


static char *tpath(const char *name)
{
  for (int i = 0; i < ntpaths; i++)
    if (!strcmp(tpaths[i] + strlen(tmpdir) + 1, name))
      return tpaths[i];
  ck_assert_int_lt(ntpaths, 256);
  char *p = malloc(strlen(tmpdir) + strlen(name) + 2);
  ck_assert_ptr_nonnull(p);
  sprintf(p, "%s/%s", tmpdir, name);
  return tpaths[ntpaths++] = p;
}

static unsigned char *slurp(const char *path, size_t *n)
{
  FILE *fp = fopen(path, "rb");
  ck_assert_msg(fp != NULL, "cannot open %s", path);
  fseek(fp, 0, SEEK_END);
  long len = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  unsigned char *s = malloc(len > 0 ? (size_t)len + 1 : 1);
  ck_assert_ptr_nonnull(s);
  ck_assert_uint_eq(fread(s, 1, (size_t)len, fp), (size_t)len);
  fclose(fp);
  s[len > 0 ? len : 0] = '\0';
  *n = (size_t)len;
  return s;
}

static char *slurp_text(const char *path)
{
  size_t n;
  return (char *)slurp(path, &n);
}

static void spit(const char *path, const void *s, size_t n)
{
  FILE *fp = fopen(path, "wb");
  ck_assert_ptr_nonnull(fp);
  ck_assert_uint_eq(fwrite(s, 1, n, fp), n);
  ck_assert_int_eq(fclose(fp), 0);
}

/* The bytes gzipped by zlib's gz* writer (as gzip(1) would). */
static void spit_gz(const char *path, const void *s, size_t n)
{
  gzFile gz = gzopen(path, "wb9");
  ck_assert_ptr_nonnull(gz);
  ck_assert_int_eq(gzwrite(gz, s, (unsigned)n), (int)n);
  ck_assert_int_eq(gzclose(gz), Z_OK);
}

/* The file as bytes, gzipped in memory. */
static unsigned char *gz_bytes(const char *src, size_t *n)
{
  const char *tmp = tpath("gz_bytes.tmp");
  size_t len;
  unsigned char *s = slurp(src, &len);
  spit_gz(tmp, s, len);
  free(s);
  s = slurp(tmp, n);
  unlink(tmp);
  return s;
}

static int has(const char *msg, const char *a, const char *b)
{
  return strstr(msg, a) && (!b || strstr(msg, b));
}

/* Load must fail with a message containing the path and both words. */
#define REFUSED(images, labels, k, a, b)                                                     \
  do {                                                                                      \
    sv_clear_error();                                                                       \
    sv_dataset *d_ = sv_dataset_load_idx((images), (labels), (k));                          \
    ck_assert_msg(d_ == NULL, "loaded");                                                    \
    const char *m_ = sv_errmsg();                                                           \
    ck_assert_msg(has(m_, (labels) && strstr(m_, "labels") ? (labels) : (images), NULL) &&  \
                  has(m_, (a), (b)), "message: '%s'", m_);                                   \
  } while (0)

/* ------------------------------------------------------------------ */
/* An independent IDX reader: the specification, on a whole buffer     */
/* ------------------------------------------------------------------ */

static uint32_t rd32(const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Valid IDX? Then 1, with the values (u8 scaled by 1/255) and axis 0. */
static int ref_idx(const unsigned char *s, size_t n, int labels, int nclasses, double **vals,
                   size_t *count, uint32_t *n0)
{
  *vals = NULL;
  if (n < 4 || s[0] || s[1])
    return 0;
  int t = s[2], nd = s[3], es;
  switch (t) {
  case 0x08: case 0x09: es = 1; break;
  case 0x0B: es = 2; break;
  case 0x0C: es = 4; break;
  case 0x0D: es = labels ? 0 : 4; break;
  case 0x0E: es = labels ? 0 : 8; break;
  default: es = 0;
  }
  if (!es || nd < 1 || nd > 4 || (labels && nd != 1) || n < 4 + 4 * (size_t)nd)
    return 0;
  uint64_t c = 1;
  for (int i = 0; i < nd; i++) {
    uint32_t d = rd32(s + 4 + 4 * i);
    if (d == 0)
      return 0;
    c *= d;
    if (c > 2147483647u)
      return 0;
  }
  size_t off = 4 + 4 * (size_t)nd;
  if (n != off + c * (uint64_t)es)
    return 0;
  double *v = malloc((size_t)c * sizeof(double) + 1);
  for (size_t i = 0; i < c; i++) {
    const unsigned char *p = s + off + i * (size_t)es;
    double x;
    if (t == 0x08)
      x = labels ? p[0] : p[0] / 255.0;
    else if (t == 0x09)
      x = (signed char)p[0];
    else if (t == 0x0B)
      x = (int16_t)(p[0] << 8 | p[1]);
    else if (t == 0x0C)
      x = (int32_t)rd32(p);
    else if (t == 0x0D) {
      uint32_t b = rd32(p);
      float f;
      memcpy(&f, &b, 4);
      x = f;
    } else {
      uint64_t b = (uint64_t)rd32(p) << 32 | rd32(p + 4);
      memcpy(&x, &b, 8);
    }
    if (!isfinite(x) || (labels && (x < 0 || x >= nclasses))) {
      free(v);
      return 0;
    }
    v[i] = x;
  }
  *vals = v;
  *count = (size_t)c;
  *n0 = rd32(s + 4);
  return 1;
}

/* What gzread makes of a file: gzip members inflated (trailing non-gzip
   bytes ignored, as zlib documents), anything else as it is. 0 if zlib
   would report an error or the stream ends early. */
static int ref_gunzip(const unsigned char *s, size_t n, unsigned char **out, size_t *outn)
{
  if (n < 2 || s[0] != 0x1f || s[1] != 0x8b) {
    *out = malloc(n + 1);
    memcpy(*out, s, n);
    *outn = n;
    return 1;
  }
  size_t cap = 1 << 16, len = 0;
  unsigned char *o = malloc(cap);
  z_stream z;
  memset(&z, 0, sizeof z);
  ck_assert_int_eq(inflateInit2(&z, 15 + 16), Z_OK);
  z.next_in = (unsigned char *)s;
  z.avail_in = (uInt)n;
  int ok = 0;
  for (;;) {
    if (len == cap)
      o = realloc(o, cap *= 2);
    z.next_out = o + len;
    z.avail_out = (uInt)(cap - len);
    int rc = inflate(&z, Z_NO_FLUSH);
    len = cap - z.avail_out;
    if (rc == Z_STREAM_END) {
      if (z.avail_in >= 2 && z.next_in[0] == 0x1f && z.next_in[1] == 0x8b) {
        inflateReset(&z);
        continue;
      }
      ok = 1;
      break;
    }
    if (rc == Z_BUF_ERROR && z.avail_out > 0)
      break; /* input ended inside the stream */
    if (rc != Z_OK && rc != Z_BUF_ERROR)
      break;
  }
  inflateEnd(&z);
  if (!ok) {
    free(o);
    return 0;
  }
  *out = o;
  *outn = len;
  return 1;
}

/* ------------------------------------------------------------------ */
/* Small files                                                         */
/* ------------------------------------------------------------------ */

#define NI 7
#define ROWS 5
#define COLS 4

/* n images whose bytes are (31 i + 7 p) mod 256. */
static void small_images(double *x, int n)
{
  for (int i = 0; i < n; i++)
    for (int p = 0; p < ROWS * COLS; p++)
      x[i * ROWS * COLS + p] = ((31 * i + 7 * p) % 256) / 255.0;
}

static const int SMALL_LABELS[NI] = {3, 0, 4, 4, 1, 2, 0};

/* An IDX file from parts: type, axes, dims, then raw value bytes. */
static void spit_idx(const char *path, int type, int nd, const uint32_t *dims,
                     const void *data, size_t nbytes)
{
  unsigned char *s = malloc(4 + 4 * (size_t)nd + nbytes + 1);
  s[0] = s[1] = 0;
  s[2] = (unsigned char)type;
  s[3] = (unsigned char)nd;
  for (int i = 0; i < nd; i++) {
    s[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
    s[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
    s[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
    s[7 + 4 * i] = (unsigned char)dims[i];
  }
  if (nbytes)
    memcpy(s + 4 + 4 * nd, data, nbytes);
  spit(path, s, 4 + 4 * (size_t)nd + nbytes);
  free(s);
}

/* ------------------------------------------------------------------ */
/* Round trips                                                         */
/* ------------------------------------------------------------------ */

START_TEST(round_trip_plain_and_gzip)
{
  double x[NI * ROWS * COLS];
  small_images(x, NI);
  const char *im = tpath("im.idx"), *lb = tpath("lb.idx");
  ck_assert_int_eq(sv_idx_write_images(im, NI, ROWS, COLS, x), 0);
  ck_assert_int_eq(sv_idx_write_labels(lb, NI, SMALL_LABELS), 0);

  /* the documented layout, byte for byte */
  size_t n;
  unsigned char *s = slurp(im, &n);
  ck_assert_uint_eq(n, 16 + NI * ROWS * COLS);
  static const unsigned char head[16] = {0, 0, 8, 3, 0, 0, 0, NI, 0, 0, 0, ROWS, 0, 0, 0, COLS};
  ck_assert_int_eq(memcmp(s, head, 16), 0);
  for (int i = 0; i < NI * ROWS * COLS; i++)
    ck_assert_int_eq(s[16 + i], (31 * (i / 20) + 7 * (i % 20)) % 256);
  free(s);
  s = slurp(lb, &n);
  ck_assert_uint_eq(n, 8 + NI);
  ck_assert_int_eq(memcmp(s, "\0\0\x08\x01\0\0\0\x07", 8), 0);
  free(s);

  /* plain, gzipped by zlib here, and gzipped by the writer (".gz") */
  const char *img = tpath("im.idx.gz"), *lbg = tpath("lb.idx.gz");
  size_t gn;
  unsigned char *g = gz_bytes(im, &gn);
  ck_assert(g[0] == 0x1f && g[1] == 0x8b);
  spit(img, g, gn);
  free(g);
  g = gz_bytes(lb, &gn);
  spit(lbg, g, gn);
  free(g);
  const char *imw = tpath("imw.gz"), *lbw = tpath("lbw.gz");
  ck_assert_int_eq(sv_idx_write_images(imw, NI, ROWS, COLS, x), 0);
  ck_assert_int_eq(sv_idx_write_labels(lbw, NI, SMALL_LABELS), 0);
  s = slurp(imw, &n);
  ck_assert(n > 2 && s[0] == 0x1f && s[1] == 0x8b);
  free(s);

  const char *ims[] = {im, img, imw, im}, *lbs[] = {lb, lbg, lbw, lbg};
  for (int v = 0; v < 4; v++) {
    sv_dataset *d = sv_dataset_load_idx(ims[v], lbs[v], 5);
    ck_assert_msg(d != NULL, "%s", sv_errmsg());
    ck_assert_int_eq(d->n, NI);
    ck_assert_int_eq(d->ndim, 2);
    ck_assert_int_eq(d->dims[0], ROWS);
    ck_assert_int_eq(d->dims[1], COLS);
    ck_assert_int_eq(d->dims[2], 1);
    ck_assert_uint_eq(d->size, ROWS * COLS);
    ck_assert_int_eq(d->nclasses, 5);
    /* exact: the values were multiples of 1/255 */
    ck_assert_int_eq(memcmp(d->x, x, sizeof x), 0);
    ck_assert_int_eq(memcmp(d->y, SMALL_LABELS, sizeof SMALL_LABELS), 0);
    sv_dataset_free(d);
  }
  /* the name does not decide: gzip content under a plain name, and back */
  ck_assert_int_eq(rename(img, tpath("looks_plain")), 0);
  ck_assert_int_eq(rename(im, tpath("looks.gz")), 0);
  sv_dataset *d = sv_dataset_load_idx(tpath("looks_plain"), NULL, 0);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  ck_assert_ptr_null(d->y);
  ck_assert_int_eq(memcmp(d->x, x, sizeof x), 0);
  sv_dataset_free(d);
  d = sv_dataset_load_idx(tpath("looks.gz"), NULL, 0);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(memcmp(d->x, x, sizeof x), 0);
  sv_dataset_free(d);
}
END_TEST

START_TEST(write_rounds_and_checks)
{
  /* round(v * 255): 0.5 -> 128, 0.998 -> 254, 0.999 -> 255 */
  double x[4] = {0.5, 0.998, 0.999, 1.0 / 510};
  const char *p = tpath("r.idx");
  ck_assert_int_eq(sv_idx_write_images(p, 1, 2, 2, x), 0);
  size_t n;
  unsigned char *s = slurp(p, &n);
  ck_assert_int_eq(s[16], 128);
  ck_assert_int_eq(s[17], 254);
  ck_assert_int_eq(s[18], 255);
  ck_assert_int_eq(s[19], 1); /* 0.5 rounds away from zero */
  free(s);

  double bad[4] = {0, 0.5, 1.5, 0};
  ck_assert_int_eq(sv_idx_write_images(p, 1, 2, 2, bad), -1);
  ck_assert_msg(has(sv_errmsg(), p, "value 2 (image 0) is 1.5"), "%s", sv_errmsg());
  bad[2] = NAN;
  ck_assert_int_eq(sv_idx_write_images(p, 1, 2, 2, bad), -1);
  ck_assert_msg(has(sv_errmsg(), "outside [0, 1]", NULL), "%s", sv_errmsg());
  ck_assert_int_eq(sv_idx_write_images(p, 0, 2, 2, x), -1);
  ck_assert_int_eq(sv_idx_write_images(p, 1, 2, 2, NULL), -1);
  int y[2] = {3, 256};
  ck_assert_int_eq(sv_idx_write_labels(p, 2, y), -1);
  ck_assert_msg(has(sv_errmsg(), "label 256 at index 1", p), "%s", sv_errmsg());
  char nodir[600];
  snprintf(nodir, sizeof nodir, "%s/no_dir/x.idx", tmpdir);
  ck_assert_int_eq(sv_idx_write_labels(nodir, 1, y), -1);
  ck_assert_msg(has(sv_errmsg(), nodir, NULL), "%s", sv_errmsg());
  /* the failed writes left the earlier file alone */
  s = slurp(p, &n);
  ck_assert_uint_eq(n, 20);
  free(s);
}
END_TEST

/* Every IDX type: signed bytes, shorts, ints, floats and doubles are taken
   as they are; integer labels of any width; 1-axis and 4-axis examples. */
START_TEST(other_types_and_shapes)
{
  const char *p = tpath("t.idx"), *l = tpath("l.idx");
  uint32_t d2[2] = {2, 3};
  const unsigned char sb[6] = {0x80, 0xff, 0, 1, 0x7f, 2};
  spit_idx(p, 0x09, 2, d2, sb, 6);
  sv_dataset *d = sv_dataset_load_idx(p, NULL, 0);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(d->ndim, 1);
  ck_assert_int_eq(d->dims[0], 3);
  const double want_sb[6] = {-128, -1, 0, 1, 127, 2};
  ck_assert_int_eq(memcmp(d->x, want_sb, sizeof want_sb), 0);
  sv_dataset_free(d);

  const unsigned char sh[12] = {0x80, 0x00, 0xff, 0xfe, 0x01, 0x02, 0, 0, 0x7f, 0xff, 0, 9};
  spit_idx(p, 0x0B, 2, d2, sh, 12);
  d = sv_dataset_load_idx(p, NULL, 0);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  const double want_sh[6] = {-32768, -2, 258, 0, 32767, 9};
  ck_assert_int_eq(memcmp(d->x, want_sh, sizeof want_sh), 0);
  sv_dataset_free(d);

  /* ints, one value per example (a scalar dataset) */
  uint32_t d1[1] = {3};
  const unsigned char in[12] = {0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03, 0x04};
  spit_idx(p, 0x0C, 1, d1, in, 12);
  d = sv_dataset_load_idx(p, NULL, 0);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(d->ndim, 0);
  ck_assert_uint_eq(d->size, 1);
  ck_assert(d->x[0] == -2147483648.0 && d->x[1] == -1 && d->x[2] == 0x01020304);
  sv_dataset_free(d);

  /* floats (0.25, -3.5e10) and doubles (-1e300, 1/3) */
  uint32_t df[2] = {1, 2};
  const unsigned char fl[8] = {0x3e, 0x80, 0, 0, 0xd0, 0x50, 0x96, 0x1b};
  spit_idx(p, 0x0D, 2, df, fl, 8);
  d = sv_dataset_load_idx(p, NULL, 0);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  float f1;
  uint32_t b1 = 0xd050961bu;
  memcpy(&f1, &b1, 4);
  ck_assert(d->x[0] == 0.25 && d->x[1] == (double)f1);
  sv_dataset_free(d);
  double dv[2] = {-1e300, 1.0 / 3};
  unsigned char db[16];
  for (int i = 0; i < 2; i++) {
    uint64_t bits;
    memcpy(&bits, &dv[i], 8);
    for (int k = 0; k < 8; k++)
      db[8 * i + k] = (unsigned char)(bits >> (56 - 8 * k));
  }
  spit_idx(p, 0x0E, 2, df, db, 16);
  d = sv_dataset_load_idx(p, NULL, 0);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  ck_assert(d->x[0] == -1e300 && d->x[1] == 1.0 / 3);
  sv_dataset_free(d);
  /* a NaN is refused, naming the value */
  db[8] = 0x7f;
  db[9] = 0xf8;
  spit_idx(p, 0x0E, 2, df, db, 16);
  REFUSED(p, NULL, 0, "value 1 (example 0)", "finite");

  /* examples of 3 axes (a 4-axis file) */
  uint32_t d4[4] = {2, 2, 1, 3};
  unsigned char u[12];
  for (int i = 0; i < 12; i++)
    u[i] = (unsigned char)(20 * i);
  spit_idx(p, 0x08, 4, d4, u, 12);
  d = sv_dataset_load_idx(p, NULL, 0);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(d->ndim, 3);
  ck_assert(d->dims[0] == 2 && d->dims[1] == 1 && d->dims[2] == 3 && d->size == 6);
  ck_assert(d->x[11] == 220 / 255.0);
  sv_dataset_free(d);

  /* int32 and short labels */
  uint32_t dl[1] = {2};
  const unsigned char li[8] = {0, 0, 0, 6, 0, 0, 0, 0};
  spit_idx(l, 0x0C, 1, dl, li, 8);
  d = sv_dataset_load_idx(p, l, 7);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  ck_assert(d->y[0] == 6 && d->y[1] == 0);
  sv_dataset_free(d);
  REFUSED(p, l, 6, "label 6 at index 0", "outside [0, 6)");
  const unsigned char ls[4] = {0xff, 0xff, 0, 1};
  spit_idx(l, 0x0B, 1, dl, ls, 4);
  REFUSED(p, l, 6, "label -1 at index 0", "outside [0, 6)");
  /* float labels are refused by type */
  spit_idx(l, 0x0D, 1, dl, fl, 8);
  REFUSED(p, l, 6, "floats", "labels must be integers");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Bad files, one kind at a time                                       */
/* ------------------------------------------------------------------ */

START_TEST(bad_files_are_refused)
{
  double x[NI * ROWS * COLS];
  small_images(x, NI);
  const char *im = tpath("im.idx"), *lb = tpath("lb.idx"), *bad = tpath("bad.idx");
  ck_assert_int_eq(sv_idx_write_images(im, NI, ROWS, COLS, x), 0);
  ck_assert_int_eq(sv_idx_write_labels(lb, NI, SMALL_LABELS), 0);
  size_t n;
  unsigned char *s = slurp(im, &n);

  /* missing, a directory, empty */
  REFUSED(tpath("no_such_file"), NULL, 0, "cannot open images file", "No such file");
  REFUSED(im, tpath("no_labels"), 5, "cannot open labels file", "No such file");
  REFUSED(tmpdir, NULL, 0, "is a directory", NULL);
  spit(bad, "", 0);
  REFUSED(bad, NULL, 0, "is empty", NULL);
  /* truncated header: in the magic, in the sizes */
  spit(bad, s, 3);
  REFUSED(bad, NULL, 0, "truncated", "3 bytes");
  spit(bad, s, 10);
  REFUSED(bad, NULL, 0, "truncated", "header is 10 bytes where 3 axes need 16");
  /* truncated values: expected and found */
  spit(bad, s, n - 1);
  REFUSED(bad, NULL, 0, "truncated", "describes 140 bytes of values, found 139");
  /* trailing garbage */
  unsigned char *longer = malloc(n + 5);
  memcpy(longer, s, n);
  memcpy(longer + n, "junk\n", 5);
  spit(bad, longer, n + 5);
  REFUSED(bad, NULL, 0, "5 bytes of trailing garbage", "140 bytes of values");
  free(longer);
  /* wrong magic: text, and a nonzero first byte */
  spit(bad, "P5\n28 28\n255\n", 13);
  REFUSED(bad, NULL, 0, "not an IDX file", "50 35 0a 32");
  /* unknown and unsupported types, axes */
  unsigned char h[16];
  memcpy(h, s, 16);
  h[2] = 0x07;
  spit(bad, h, 16);
  REFUSED(bad, NULL, 0, "unknown IDX type 0x07", NULL);
  uint32_t none[1] = {0};
  spit_idx(bad, 0x08, 0, none, NULL, 0);
  REFUSED(bad, NULL, 0, "0 axes", NULL);
  uint32_t five[5] = {1, 1, 1, 1, 1};
  spit_idx(bad, 0x08, 5, five, "x", 1);
  REFUSED(bad, NULL, 0, "5 axes", "at most 4");
  /* impossible dimensions: a product that overflows 64 bits, one over the
     cap, and one that fits the cap but not the file (no huge allocation:
     the buffer grows with the data read) */
  uint32_t huge[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
  spit_idx(bad, 0x08, 4, huge, "abc", 3);
  REFUSED(bad, NULL, 0, "impossible dimensions 4294967295 x 4294967295", "corrupt header");
  uint32_t over[3] = {65536, 256, 128};
  spit_idx(bad, 0x08, 3, over, "abc", 3);
  REFUSED(bad, NULL, 0, "impossible dimensions 65536 x 256 x 128", NULL);
  uint32_t big[3] = {60000, 28, 28};
  spit_idx(bad, 0x0E, 3, big, "abcdefgh", 8);
  REFUSED(bad, NULL, 0, "describes 376320000 bytes of values, found 8", NULL);
  /* no examples; examples of no values */
  uint32_t zero[3] = {0, 28, 28};
  spit_idx(bad, 0x08, 3, zero, NULL, 0);
  REFUSED(bad, NULL, 0, "no examples", "0 x 28 x 28");
  uint32_t hollow[3] = {5, 28, 0};
  spit_idx(bad, 0x08, 3, hollow, NULL, 0);
  REFUSED(bad, NULL, 0, "axis 2 has size 0", NULL);

  /* labels: count mismatch, out of range, two axes, no classes */
  ck_assert_int_eq(sv_idx_write_labels(bad, NI - 1, SMALL_LABELS), 0);
  REFUSED(im, bad, 5, "has 6 labels but images file", "has 7 examples");
  ck_assert_msg(strstr(sv_errmsg(), im), "%s", sv_errmsg());
  REFUSED(im, lb, 4, "label 4 at index 2 is outside [0, 4)", NULL);
  uint32_t l2[2] = {NI, 1};
  spit_idx(bad, 0x08, 2, l2, SMALL_LABELS, NI);
  REFUSED(im, bad, 5, "2 axes", "labels file");
  REFUSED(im, lb, 0, "0 classes", NULL);
  free(s);
}
END_TEST

/* A header that claims 2^31 - 1 values over 8 bytes of data is refused as
   truncated, with no allocation of what it claims: under an address-space
   limit of 256 MB more than the process has, trusting the header (2 GB of
   bytes, then 16 GB of doubles) would fail as out of memory instead.
   AddressSanitizer reserves terabytes of shadow memory, so there the limit
   cannot be set and only the message is checked. */
START_TEST(corrupt_header_allocates_little)
{
  uint32_t claim[2] = {2147483647u, 1};
  const char *bad = tpath("claims.idx");
  spit_idx(bad, 0x08, 2, claim, "abcdefgh", 8);
#if !defined(__SANITIZE_ADDRESS__)
  FILE *fp = fopen("/proc/self/statm", "r");
  ck_assert_ptr_nonnull(fp);
  unsigned long pages = 0;
  ck_assert_int_eq(fscanf(fp, "%lu", &pages), 1);
  fclose(fp);
  rlim_t limit = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256ul << 20);
  struct rlimit rl = {limit, limit};
  ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
#endif
  REFUSED(bad, NULL, 0, "truncated", "describes 2147483647 bytes of values, found 8");
  spit_gz(bad, "\0\0\x08\x02\x7f\xff\xff\xff\0\0\0\x01" "abcdefgh", 20);
  REFUSED(bad, NULL, 0, "truncated", "describes 2147483647 bytes of values, found 8");
}
END_TEST

START_TEST(bad_gzip_is_refused)
{
  double x[NI * ROWS * COLS];
  small_images(x, NI);
  const char *im = tpath("im.idx"), *bad = tpath("bad.gz");
  ck_assert_int_eq(sv_idx_write_images(im, NI, ROWS, COLS, x), 0);
  size_t n;
  unsigned char *g = gz_bytes(im, &n);

  /* a stream that ends early: in the header, in the values, in the trailer */
  spit(bad, g, 12);
  REFUSED(bad, NULL, 0, "truncated", "gzip stream ends early");
  spit(bad, g, n / 2);
  REFUSED(bad, NULL, 0, "truncated", "gzip stream ends early");
  spit(bad, g, n - 4);
  REFUSED(bad, NULL, 0, "truncated", "gzip stream ends early");
  /* a wrong CRC */
  g[n - 8] ^= 0x55;
  spit(bad, g, n);
  REFUSED(bad, NULL, 0, "not a valid gzip file", "incorrect data check");
  g[n - 8] ^= 0x55;
  /* a wrong method byte, and garbage in the deflate data */
  g[2] ^= 0xff;
  spit(bad, g, n);
  REFUSED(bad, NULL, 0, "not a valid gzip file", "zlib:");
  g[2] ^= 0xff;
  memset(g + 10, 0xff, 6);
  spit(bad, g, n);
  REFUSED(bad, NULL, 0, "not a valid gzip file", "zlib:");
  free(g);

  /* a valid gzip stream of a bad IDX file: the IDX problem is reported */
  size_t pn;
  unsigned char *s = slurp(im, &pn);
  spit_gz(bad, s, pn - 3);
  REFUSED(bad, NULL, 0, "truncated", "describes 140 bytes of values, found 137");
  free(s);
}
END_TEST

START_TEST(load_dir)
{
  double x[NI * ROWS * COLS];
  small_images(x, NI);
  /* train plain, t10k gzipped */
  ck_assert_int_eq(sv_idx_write_images(tpath("train-images-idx3-ubyte"), NI, ROWS, COLS, x), 0);
  ck_assert_int_eq(sv_idx_write_labels(tpath("train-labels-idx1-ubyte"), NI, SMALL_LABELS), 0);
  ck_assert_int_eq(sv_idx_write_images(tpath("t10k-images-idx3-ubyte.gz"), 3, ROWS, COLS, x), 0);
  ck_assert_int_eq(sv_idx_write_labels(tpath("t10k-labels-idx1-ubyte.gz"), 3, SMALL_LABELS), 0);
  sv_dataset *d = sv_dataset_load_dir(tmpdir, "train", 5);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(d->n, NI);
  sv_dataset_free(d);
  d = sv_dataset_load_dir(tmpdir, "t10k", 5);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(d->n, 3);
  ck_assert_int_eq(memcmp(d->x, x, 3 * ROWS * COLS * sizeof(double)), 0);
  sv_dataset_free(d);

  /* a missing split names both files it looked for */
  ck_assert_ptr_null(sv_dataset_load_dir(tmpdir, "valid", 5));
  ck_assert_msg(has(sv_errmsg(), "valid-images-idx3-ubyte.gz", tmpdir), "%s", sv_errmsg());
  unlink(tpath("t10k-labels-idx1-ubyte.gz"));
  ck_assert_ptr_null(sv_dataset_load_dir(tmpdir, "t10k", 5));
  ck_assert_msg(has(sv_errmsg(), "t10k-labels-idx1-ubyte", NULL), "%s", sv_errmsg());
  ck_assert_ptr_null(sv_dataset_load_dir(tpath("nowhere"), "train", 5));
  ck_assert_msg(has(sv_errmsg(), "nowhere", "No such file"), "%s", sv_errmsg());
  ck_assert_ptr_null(sv_dataset_load_dir(tmpdir, "../train", 5));
  ck_assert_msg(has(sv_errmsg(), "'../train'", NULL), "%s", sv_errmsg());
  /* a problem inside names the file */
  spit(tpath("train-labels-idx1-ubyte"), "\0\0\x08\x01\0\0\0\x07", 8);
  ck_assert_ptr_null(sv_dataset_load_dir(tmpdir, "train", 5));
  ck_assert_msg(has(sv_errmsg(), "train-labels-idx1-ubyte", "found 0"), "%s", sv_errmsg());
}
END_TEST

/* ------------------------------------------------------------------ */
/* Fuzzing against the independent reader                             */
/* ------------------------------------------------------------------ */

typedef struct {
  int loaded, refused;
} tally;

/*
 * Write `s` to the file under test (images or labels), load, and check the
 * outcome against the reference: loaded if and only if valid, and then with
 * the reference's values; otherwise a message naming the file.
 */
static void judge(const unsigned char *s, size_t n, int labels_case, const char *good_images,
                  const double *good_x, size_t good_count, tally *t, const char *what)
{
  const char *path = tpath(labels_case ? "fuzz_labels" : "fuzz_images");
  spit(path, s, n);
  unsigned char *raw = NULL;
  size_t rawn = 0;
  double *vals = NULL;
  size_t count = 0;
  uint32_t n0 = 0;
  int valid = ref_gunzip(s, n, &raw, &rawn) &&
              ref_idx(raw, rawn, labels_case, 5, &vals, &count, &n0);
  /* the labels must also match the images' count */
  if (valid && labels_case && n0 != NI)
    valid = 0;
  sv_clear_error();
  sv_dataset *d = labels_case ? sv_dataset_load_idx(good_images, path, 5)
                              : sv_dataset_load_idx(path, NULL, 0);
  if (valid) {
    ck_assert_msg(d != NULL, "%s: valid file refused: %s", what, sv_errmsg());
    if (labels_case) {
      ck_assert_int_eq(d->n, NI);
      for (int i = 0; i < NI; i++)
        ck_assert_msg(d->y[i] == (int)vals[i], "%s: label %d", what, i);
      ck_assert_int_eq(memcmp(d->x, good_x, good_count * sizeof(double)), 0);
    } else {
      ck_assert_uint_eq((size_t)d->n * d->size, count);
      ck_assert_uint_eq((uint32_t)d->n, n0);
      ck_assert_msg(memcmp(d->x, vals, count * sizeof(double)) == 0, "%s: values differ", what);
    }
    t->loaded++;
  } else {
    ck_assert_msg(d == NULL, "%s: invalid file loaded", what);
    ck_assert_msg(strstr(sv_errmsg(), path) != NULL, "%s: message without the file: '%s'",
                  what, sv_errmsg());
    t->refused++;
  }
  sv_dataset_free(d);
  free(raw);
  free(vals);
}

/* xorshift64*, so that the flips are the same on every machine */
static uint64_t rng_state = 88172645463325252ull;
static uint64_t rnd(void)
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

static void fuzz_file(const unsigned char *s, size_t n, int labels_case, const char *images,
                      const double *x, size_t count, tally *t)
{
  char what[96];
  unsigned char *m = malloc(n + 1);
  /* every truncation */
  for (size_t len = 0; len < n; len++) {
    snprintf(what, sizeof what, "prefix of %zu bytes", len);
    judge(s, len, labels_case, images, x, count, t, what);
  }
  /* every byte, three ways */
  const unsigned char masks[] = {0x01, 0x80, 0xff};
  for (size_t pos = 0; pos < n; pos++)
    for (int k = 0; k < 3; k++) {
      memcpy(m, s, n);
      m[pos] ^= masks[k];
      snprintf(what, sizeof what, "byte %zu ^ 0x%02x", pos, masks[k]);
      judge(m, n, labels_case, images, x, count, t, what);
    }
  /* 300 random changes of 1 to 4 bytes */
  for (int trial = 0; trial < 300; trial++) {
    memcpy(m, s, n);
    int flips = 1 + (int)(rnd() % 4);
    for (int f = 0; f < flips; f++)
      m[rnd() % n] ^= (unsigned char)(1 + rnd() % 255);
    snprintf(what, sizeof what, "random change %d", trial);
    judge(m, n, labels_case, images, x, count, t, what);
  }
  free(m);
}

START_TEST(fuzz_images_and_labels)
{
  double x[3 * ROWS * COLS];
  small_images(x, 3);
  const char *im = tpath("im.idx"), *lb = tpath("lb.idx");
  ck_assert_int_eq(sv_idx_write_images(im, 3, ROWS, COLS, x), 0);
  size_t n, gn;
  unsigned char *s = slurp(im, &n), *g = gz_bytes(im, &gn);
  tally plain = {0, 0}, gz = {0, 0};
  fuzz_file(s, n, 0, NULL, NULL, 0, &plain);
  fuzz_file(g, gn, 0, NULL, NULL, 0, &gz);
  free(s);
  free(g);

  /* labels, against the images of NI examples */
  double x7[NI * ROWS * COLS];
  small_images(x7, NI);
  ck_assert_int_eq(sv_idx_write_images(im, NI, ROWS, COLS, x7), 0);
  ck_assert_int_eq(sv_idx_write_labels(lb, NI, SMALL_LABELS), 0);
  s = slurp(lb, &n);
  g = gz_bytes(lb, &gn);
  tally lplain = {0, 0}, lgz = {0, 0};
  fuzz_file(s, n, 1, im, x7, NI * ROWS * COLS, &lplain);
  fuzz_file(g, gn, 1, im, x7, NI * ROWS * COLS, &lgz);
  free(s);
  free(g);

  /* both outcomes happened: flips in plain values load (with the changed
     values), flips in a gzip header's time stamp load, most others fail */
  ck_assert_int_gt(plain.loaded, 100);
  ck_assert_int_gt(plain.refused, 100);
  ck_assert_int_gt(gz.loaded, 10);
  ck_assert_int_gt(gz.refused, 400);
  ck_assert_int_ge(lplain.loaded, 5);
  ck_assert_int_gt(lplain.refused, 250);
  ck_assert_int_gt(lgz.loaded, 10);
  ck_assert_int_gt(lgz.refused, 250);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Fashion-MNIST                                                       */
/* ------------------------------------------------------------------ */

#define FASHION "/usr/share/datasets/fashion-mnist"

static void check_fashion(const char *split, int n, int first_label, long first_sum)
{
  sv_dataset *d = sv_dataset_load_dir(FASHION, split, 10);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(d->n, n);
  ck_assert_int_eq(d->ndim, 2);
  ck_assert(d->dims[0] == 28 && d->dims[1] == 28 && d->size == 784);
  ck_assert_int_eq(d->nclasses, 10);
  int hist[10] = {0};
  for (int i = 0; i < n; i++) {
    ck_assert(d->y[i] >= 0 && d->y[i] < 10);
    hist[d->y[i]]++;
  }
  for (int k = 0; k < 10; k++)
    ck_assert_msg(hist[k] == n / 10, "%s: class %d has %d examples", split, k, hist[k]);
  /* values in [0, 1], each v * 255 the byte it came from (counted, not
     asserted one by one: a Check assertion costs a message to the parent) */
  double lo = 1, hi = 0;
  size_t off_grid = 0;
  for (size_t i = 0; i < (size_t)n * 784; i++) {
    double v = d->x[i];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    off_grid += v * 255 != nearbyint(v * 255);
  }
  ck_assert(lo == 0 && hi == 1);
  ck_assert_uint_eq(off_grid, 0);
  /* the first example, as Python's gzip module reads it: label and byte sum */
  ck_assert_int_eq(d->y[0], first_label);
  long sum = 0;
  for (int i = 0; i < 784; i++)
    sum += lround(d->x[i] * 255);
  ck_assert_int_eq(sum, first_sum);
  sv_dataset_free(d);
}

START_TEST(fashion_mnist)
{
  if (access(FASHION, R_OK) != 0) {
    printf("fashion_mnist: skipped, %s is missing (Debian: dataset-fashion-mnist)\n", FASHION);
    return;
  }
  check_fashion("train", 60000, 9, 76247);
  check_fashion("t10k", 10000, 9, 33456);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Subsets and gathering                                               */
/* ------------------------------------------------------------------ */

START_TEST(subset_and_gather)
{
  double x[NI * ROWS * COLS];
  small_images(x, NI);
  const char *im = tpath("im.idx"), *lb = tpath("lb.idx");
  ck_assert_int_eq(sv_idx_write_images(im, NI, ROWS, COLS, x), 0);
  ck_assert_int_eq(sv_idx_write_labels(lb, NI, SMALL_LABELS), 0);
  sv_dataset *d = sv_dataset_load_idx(im, lb, 5);
  ck_assert_ptr_nonnull(d);

  sv_dataset *s = sv_dataset_subset(d, 2, 4);
  ck_assert_msg(s != NULL, "%s", sv_errmsg());
  ck_assert(s->n == 4 && s->size == d->size && s->ndim == 2 && s->nclasses == 5);
  ck_assert_int_eq(memcmp(s->x, d->x + 2 * 20, 4 * 20 * sizeof(double)), 0);
  ck_assert_int_eq(memcmp(s->y, d->y + 2, 4 * sizeof(int)), 0);
  ck_assert_ptr_ne(s->x, d->x + 2 * 20); /* a copy */
  sv_dataset_free(s);
  ck_assert_ptr_null(sv_dataset_subset(d, 4, 4));
  ck_assert_msg(has(sv_errmsg(), "[4, 4 + 4)", "7 examples"), "%s", sv_errmsg());
  ck_assert_ptr_null(sv_dataset_subset(d, -1, 2));
  ck_assert_ptr_null(sv_dataset_subset(d, 0, 0));
  s = sv_dataset_subset(d, 0, NI);
  ck_assert_ptr_nonnull(s);
  sv_dataset_free(s);

  int idx[3] = {6, 0, 6};
  double gx[3 * 20], gy[3];
  ck_assert_int_eq(sv_dataset_gather(d, 3, idx, gx, gy), 0);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(memcmp(gx + 20 * i, x + 20 * idx[i], 20 * sizeof(double)), 0);
    ck_assert(gy[i] == SMALL_LABELS[idx[i]]);
  }
  ck_assert_int_eq(sv_dataset_gather(d, 3, idx, NULL, gy), 0);
  ck_assert_int_eq(sv_dataset_gather(d, 0, NULL, gx, gy), 0);
  idx[1] = 7;
  ck_assert_int_eq(sv_dataset_gather(d, 3, idx, gx, gy), -1);
  ck_assert_msg(has(sv_errmsg(), "index 7 at position 1", "[0, 7)"), "%s", sv_errmsg());
  sv_dataset_free(d);

  d = sv_dataset_load_idx(im, NULL, 0);
  idx[1] = 1;
  ck_assert_int_eq(sv_dataset_gather(d, 3, idx, gx, NULL), 0);
  ck_assert_int_eq(sv_dataset_gather(d, 3, idx, gx, gy), -1);
  ck_assert_msg(has(sv_errmsg(), "no labels", NULL) || has(sv_errmsg(), "has none", NULL), "%s",
                sv_errmsg());
  sv_dataset_free(d);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Minibatches                                                         */
/* ------------------------------------------------------------------ */

/* The examples of one epoch, batch after batch, with their batch sizes. */
static void epoch_of(sv_batches *b, long epoch, int n, int *order, int *sizes)
{
  long per = sv_batches_per_epoch(b);
  int w = 0;
  for (long k = 0; k < per; k++) {
    const int *idx;
    int count, global;
    long e;
    ck_assert_int_eq(sv_batches_get(b, epoch * per + k, &idx, &count, &global, &e), 0);
    ck_assert_int_eq(e, epoch);
    ck_assert_int_eq(count, global); /* one rank */
    if (sizes)
      sizes[k] = count;
    for (int i = 0; i < count; i++) {
      ck_assert(w < n);
      order[w++] = idx[i];
    }
  }
}

START_TEST(batches_cover_each_epoch)
{
  int n = 10;
  sv_batches *b = sv_batches_new(&run, n, 3, 0, 7);
  ck_assert_ptr_nonnull(b);
  ck_assert_int_eq(sv_batches_per_epoch(b), 4);
  int first[10], order[10], sizes[4], differ = 0;
  for (long e = 0; e < 6; e++) {
    for (int i = 0; i < n; i++)
      order[i] = -1;
    epoch_of(b, e, n, order, sizes);
    ck_assert(sizes[0] == 3 && sizes[1] == 3 && sizes[2] == 3 && sizes[3] == 1);
    int seen[10] = {0};
    for (int i = 0; i < n; i++) {
      ck_assert(order[i] >= 0 && order[i] < n);
      seen[order[i]]++;
    }
    for (int i = 0; i < n; i++)
      ck_assert_msg(seen[i] == 1, "epoch %ld: example %d seen %d times", e, i, seen[i]);
    if (e == 0)
      memcpy(first, order, sizeof first);
    else
      differ += memcmp(first, order, sizeof first) != 0;
  }
  ck_assert_int_eq(differ, 5); /* every later epoch is another permutation */
  int identity = 1;
  for (int i = 0; i < n; i++)
    identity &= first[i] == i;
  ck_assert(!identity);
  sv_batches_free(b);

  /* drop_last: 3 full batches of distinct examples, one left out */
  b = sv_batches_new(&run, n, 3, 1, 7);
  ck_assert_int_eq(sv_batches_per_epoch(b), 3);
  int seen[10] = {0};
  epoch_of(b, 2, 9, order, sizes);
  for (int i = 0; i < 9; i++)
    seen[order[i]]++;
  int once = 0;
  for (int i = 0; i < n; i++) {
    ck_assert(seen[i] <= 1);
    once += seen[i];
  }
  ck_assert_int_eq(once, 9);
  sv_batches_free(b);

  /* one batch bigger than the data: the whole set, shuffled */
  b = sv_batches_new(NULL, 5, 8, 0, 0);
  ck_assert_int_eq(sv_batches_per_epoch(b), 1);
  const int *idx;
  int count, global;
  ck_assert_int_eq(sv_batches_get(b, 3, &idx, &count, &global, NULL), 0);
  ck_assert(count == 5 && global == 5);
  sv_batches_free(b);
}
END_TEST

START_TEST(batches_reproducible_and_random_access)
{
  enum { N = 50, B = 7, STEPS = 40 };
  sv_batches *a = sv_batches_new(&run, N, B, 0, 11);
  ck_assert_int_eq(sv_batches_per_epoch(a), 8);
  /* the whole sequence in order */
  int seq[STEPS][B], cnt[STEPS];
  for (long s = 0; s < STEPS; s++) {
    const int *idx;
    ck_assert_int_eq(sv_batches_get(a, s, &idx, &cnt[s], NULL, NULL), 0);
    memcpy(seq[s], idx, (size_t)cnt[s] * sizeof(int));
  }
  /* the same from a new object; then jumping around (a resume goes back
     to an earlier epoch, a step is asked for twice) */
  sv_batches *b = sv_batches_new(&run, N, B, 0, 11);
  const long jumps[] = {39, 0, 17, 16, 17, 8, 7, 31, 2, 39, 24, 23, 0};
  for (size_t j = 0; j < sizeof jumps / sizeof jumps[0]; j++) {
    long s = jumps[j];
    const int *idx;
    int count;
    long e;
    ck_assert_int_eq(sv_batches_get(b, s, &idx, &count, NULL, &e), 0);
    ck_assert_int_eq(e, s / 8);
    ck_assert_int_eq(count, cnt[s]);
    ck_assert_msg(memcmp(idx, seq[s], (size_t)count * sizeof(int)) == 0, "step %ld", s);
  }
  sv_batches_free(b);

  /* another salt, another seed: other batches */
  b = sv_batches_new(&run, N, B, 0, 12);
  const int *idx;
  int count;
  ck_assert_int_eq(sv_batches_get(b, 0, &idx, &count, NULL, NULL), 0);
  ck_assert(memcmp(idx, seq[0], B * sizeof(int)) != 0);
  sv_batches_free(b);
  run.seed = 1235;
  b = sv_batches_new(&run, N, B, 0, 11);
  ck_assert_int_eq(sv_batches_get(b, 0, &idx, &count, NULL, NULL), 0);
  ck_assert(memcmp(idx, seq[0], B * sizeof(int)) != 0);
  sv_batches_free(b);
  run.seed = 1234;
  sv_batches_free(a);

  /* errors */
  ck_assert_ptr_null(sv_batches_new(&run, 0, 3, 0, 0));
  ck_assert_msg(has(sv_errmsg(), "0 examples", NULL), "%s", sv_errmsg());
  ck_assert_ptr_null(sv_batches_new(&run, 5, 0, 0, 0));
  ck_assert_msg(has(sv_errmsg(), "batch size 0", NULL), "%s", sv_errmsg());
  ck_assert_ptr_null(sv_batches_new(&run, 5, 6, 1, 0));
  ck_assert_msg(has(sv_errmsg(), "no batch", NULL), "%s", sv_errmsg());
  a = sv_batches_new(&run, 5, 2, 0, 0);
  ck_assert_int_eq(sv_batches_get(a, -1, &idx, &count, NULL, NULL), -1);
  ck_assert_msg(has(sv_errmsg(), "step -1", NULL), "%s", sv_errmsg());
  ck_assert_int_eq(sv_batches_get(NULL, 0, &idx, &count, NULL, NULL), -1);
  sv_batches_free(a);
}
END_TEST

/* The shuffle is uniform: over 2400 epochs of 4 examples every one of the
   24 orders appears near its expected 100 times (a biased shuffle, such
   as swapping each element with any position, misses by far more). */
START_TEST(batches_shuffle_is_uniform)
{
  sv_batches *b = sv_batches_new(&run, 4, 4, 1, 3);
  int hist[256] = {0};
  for (long e = 0; e < 2400; e++) {
    const int *idx;
    int count;
    ck_assert_int_eq(sv_batches_get(b, e, &idx, &count, NULL, NULL), 0);
    ck_assert_int_eq(count, 4);
    hist[idx[0] * 64 + idx[1] * 16 + idx[2] * 4 + idx[3]]++;
  }
  int orders = 0;
  double chi2 = 0;
  for (int i = 0; i < 256; i++)
    if (hist[i]) {
      orders++;
      chi2 += (hist[i] - 100.0) * (hist[i] - 100.0) / 100.0;
    }
  ck_assert_int_eq(orders, 24);
  /* 23 degrees of freedom: P(chi2 > 49.7) = 0.001 for a uniform shuffle
     (the seed is fixed, so this is one deterministic draw) */
  ck_assert_msg(chi2 < 49.7, "chi2 = %g", chi2);
  sv_batches_free(b);
}
END_TEST

/* On R ranks, the shares of a step, in rank order, are the one-rank batch;
   the global count is the same everywhere. */
START_TEST(batches_rank_shares)
{
  enum { N = 23, B = 5 };
  sv_batches *one = sv_batches_new(&run, N, B, 0, 5);
  for (int R = 2; R <= 6; R++) {
    struct sv_run ranks[6];
    sv_batches *b[6];
    for (int k = 0; k < R; k++) {
      memset(&ranks[k], 0, sizeof ranks[k]);
      ranks[k].rank = k;
      ranks[k].size = R;
      ranks[k].seed = run.seed;
      b[k] = sv_batches_new(&ranks[k], N, B, 0, 5);
      ck_assert_ptr_nonnull(b[k]);
    }
    for (long s = 0; s < 12; s++) {
      const int *want;
      int wcount, wglobal;
      ck_assert_int_eq(sv_batches_get(one, s, &want, &wcount, &wglobal, NULL), 0);
      int got[B], w = 0, empty = 0;
      for (int k = 0; k < R; k++) {
        const int *idx;
        int count, global;
        ck_assert_int_eq(sv_batches_get(b[k], s, &idx, &count, &global, NULL), 0);
        ck_assert_int_eq(global, wglobal);
        int f, c;
        sv_run_partition(&ranks[k], global, &f, &c);
        ck_assert_int_eq(count, c);
        empty += count == 0;
        for (int i = 0; i < count; i++)
          got[w++] = idx[i];
      }
      ck_assert_int_eq(w, wcount);
      ck_assert_msg(memcmp(got, want, (size_t)w * sizeof(int)) == 0, "R=%d step %ld", R, s);
      /* the last batch of an epoch has 3 examples: some ranks get none */
      if (s % 5 == 4)
        ck_assert_int_eq(empty, R > 3 ? R - 3 : 0);
    }
    for (int k = 0; k < R; k++)
      sv_batches_free(b[k]);
  }
  sv_batches_free(one);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Evaluation                                                          */
/* ------------------------------------------------------------------ */

/* Scores by example (x holds the example's index): ties included. With
   truth {0,0,1,1,2,2,0,2} the argmaxes are {0,1,1,1,2,0,0,2}. */
#define EN 8
#define EK 3
static const double SCORES[EN][EK] = {
  {5, 1, 1},     /* 0 */
  {1, 3, 3},     /* tie 1 and 2: 1 */
  {0, 2, -1},    /* 1 */
  {-INFINITY, 0, -1}, /* 1 */
  {0.5, 0.5, 0.7},    /* 2 */
  {4, 4, 4},     /* all tied: 0 */
  {9, 8, 9},     /* tie 0 and 2: 0 */
  {0, 0, 1e-300} /* 2 */
};
static const int ETRUTH[EN] = {0, 0, 1, 1, 2, 2, 0, 2};
static const int EPRED[EN] = {0, 1, 1, 1, 2, 0, 0, 2};

typedef struct {
  int batch, calls, fail_at, skip_write;
} pctx;

static int predict(void *ctx, int count, const double *x, double *scores)
{
  pctx *c = ctx;
  c->calls++;
  ck_assert(count >= 1 && count <= c->batch);
  for (int i = 0; i < count; i++) {
    int e = (int)x[i];
    if (e == c->fail_at)
      return sv_fail("the network blew up on example %d", e);
    for (int k = 0; k < EK; k++)
      if (!(e == c->skip_write && k == 1))
        scores[i * EK + k] = SCORES[e][k];
  }
  return 0;
}

static sv_dataset *eval_data(void)
{
  double x[EN];
  for (int i = 0; i < EN; i++)
    x[i] = i;
  uint32_t dims[1] = {EN};
  unsigned char xb[EN], yb[EN];
  for (int i = 0; i < EN; i++) {
    xb[i] = (unsigned char)i;
    yb[i] = (unsigned char)ETRUTH[i];
  }
  /* signed bytes are taken as they are: x[i] = i */
  spit_idx(tpath("ex.idx"), 0x09, 1, dims, xb, EN);
  spit_idx(tpath("ey.idx"), 0x08, 1, dims, yb, EN);
  sv_dataset *d = sv_dataset_load_idx(tpath("ex.idx"), tpath("ey.idx"), EK);
  ck_assert_msg(d != NULL, "%s", sv_errmsg());
  ck_assert_int_eq(memcmp(d->x, x, sizeof x), 0);
  return d;
}

START_TEST(evaluate_exact)
{
  sv_dataset *d = eval_data();
  const long want_conf[EK * EK] = {2, 1, 0,  0, 2, 0,  1, 0, 2};
  const int batches[] = {1, 2, 3, 7, 8, 100};
  for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
    pctx c = {batches[bi], 0, -1, -1};
    sv_eval e;
    ck_assert_int_eq(sv_evaluate_classifier(&run, d, c.batch, predict, &c, &e), 0);
    ck_assert_int_eq(c.calls, (EN + c.batch - 1) / c.batch);
    ck_assert_int_eq(e.n, EN);
    ck_assert_int_eq(e.nclasses, EK);
    ck_assert_int_eq(e.correct, 6);
    ck_assert(e.accuracy == 6.0 / 8.0);
    ck_assert_int_eq(memcmp(e.pred, EPRED, sizeof EPRED), 0);
    ck_assert_int_eq(memcmp(e.confusion, want_conf, sizeof want_conf), 0);
    sv_eval_free(&e);
    ck_assert_ptr_null(e.confusion);
  }
  /* without a run: one rank */
  pctx c = {4, 0, -1, -1};
  sv_eval e;
  ck_assert_int_eq(sv_evaluate_classifier(NULL, d, 4, predict, &c, &e), 0);
  ck_assert_int_eq(e.correct, 6);
  sv_eval_free(&e);
  sv_dataset_free(d);
}
END_TEST

START_TEST(evaluate_errors)
{
  sv_dataset *d = eval_data();
  sv_eval e;
  pctx c = {3, 0, 5, -1};
  ck_assert_int_eq(sv_evaluate_classifier(&run, d, 3, predict, &c, &e), -1);
  ck_assert_msg(has(sv_errmsg(), "predicting examples 3 to 5", "blew up on example 5"), "%s",
                sv_errmsg());
  ck_assert_ptr_null(e.confusion);
  ck_assert_ptr_null(e.pred);
  pctx c2 = {3, 0, -1, 4};
  ck_assert_int_eq(sv_evaluate_classifier(&run, d, 3, predict, &c2, &e), -1);
  ck_assert_msg(has(sv_errmsg(), "class 1 for example 4 is NaN", NULL), "%s", sv_errmsg());
  ck_assert_int_eq(sv_evaluate_classifier(&run, d, 0, predict, &c, &e), -1);
  ck_assert_msg(has(sv_errmsg(), "batch size 0", NULL), "%s", sv_errmsg());
  ck_assert_int_eq(sv_evaluate_classifier(&run, d, 3, NULL, &c, &e), -1);
  ck_assert_int_eq(sv_evaluate_classifier(&run, NULL, 3, predict, &c, &e), -1);
  ck_assert_int_eq(sv_evaluate_classifier(&run, d, 3, predict, &c, NULL), -1);
  sv_dataset *u = sv_dataset_load_idx(tpath("ex.idx"), NULL, 0);
  ck_assert_int_eq(sv_evaluate_classifier(&run, u, 3, predict, &c, &e), -1);
  ck_assert_msg(has(sv_errmsg(), "no labels", NULL), "%s", sv_errmsg());
  sv_dataset_free(u);
  sv_dataset_free(d);
}
END_TEST

/* The gnuplot sv_plot would use: configure's, else the first on $PATH. */
static int have_gnuplot(void)
{
#ifdef SV_GNUPLOT
  if (access(SV_GNUPLOT, X_OK) == 0)
    return 1;
#endif
  return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

static int is_png(const char *path)
{
  size_t n;
  unsigned char *s = slurp(path, &n);
  int ok = n > 8 && memcmp(s, "\x89PNG\r\n\x1a\n", 8) == 0;
  free(s);
  return ok;
}

static double metric(const char *name)
{
  for (int i = 0; i < run.nmetrics; i++)
    if (!strcmp(run.metrics[i].name, name))
      return run.metrics[i].value;
  return NAN;
}

START_TEST(report_files)
{
  sv_dataset *d = eval_data();
  pctx c = {8, 0, -1, -1};
  sv_eval e;
  ck_assert_int_eq(sv_evaluate_classifier(&run, d, 8, predict, &c, &e), 0);
  ck_assert_int_eq(sv_eval_report(&run, &e, "test", NULL), 0);
  ck_assert(metric("test_accuracy") == 0.75);
  char *s = slurp_text(tpath("test_confusion.csv"));
  ck_assert_str_eq(s, "true,0,1,2\n0,2,1,0\n1,0,2,0\n2,1,0,2\n");
  free(s);
  s = slurp_text(tpath("test_per_class.csv"));
  ck_assert_str_eq(s, "class,name,count,correct,accuracy\n"
                      "0,0,3,2,0.66666666666666663\n"
                      "1,1,2,2,1\n"
                      "2,2,3,2,0.66666666666666663\n");
  free(s);
  int gp = have_gnuplot();
  if (gp)
    ck_assert(is_png(tpath("test_confusion.png")));
  else
    printf("report_files: gnuplot missing, PNGs not checked\n");

  /* class names (one needing CSV quotes) and a class without examples */
  const char *names[] = {"T-shirt, top", "Say \"hi\"", "it's"};
  e.confusion[1 * EK + 1] = 0; /* class 1 has no examples now */
  e.confusion[1 * EK + 0] = 0;
  e.confusion[1 * EK + 2] = 0;
  ck_assert_int_eq(sv_eval_report(&run, &e, "named", names), 0);
  s = slurp_text(tpath("named_confusion.csv"));
  ck_assert_str_eq(s, "true,\"T-shirt, top\",\"Say \"\"hi\"\"\",it's\n"
                      "\"T-shirt, top\",2,1,0\n\"Say \"\"hi\"\"\",0,0,0\nit's,1,0,2\n");
  free(s);
  s = slurp_text(tpath("named_per_class.csv"));
  ck_assert_ptr_nonnull(strstr(s, "\n1,\"Say \"\"hi\"\"\",0,0,nan\n"));
  free(s);
  if (gp) {
    ck_assert(is_png(tpath("named_confusion.png")));
    /* the quote in a name went into gnuplot doubled */
    s = slurp_text(tpath("named_confusion.gp"));
    ck_assert_ptr_nonnull(strstr(s, "'it''s' 2"));
    free(s);
  }

  /* bad arguments */
  ck_assert_int_eq(sv_eval_report(&run, &e, "", NULL), -1);
  ck_assert_int_eq(sv_eval_report(&run, &e, "a/b", NULL), -1);
  ck_assert_msg(has(sv_errmsg(), "'a/b'", NULL), "%s", sv_errmsg());
  const char *holes[] = {"a", NULL, "c"};
  ck_assert_int_eq(sv_eval_report(&run, &e, "x", holes), -1);
  ck_assert_msg(has(sv_errmsg(), "class 1 has no name", NULL), "%s", sv_errmsg());
  sv_eval none = {0};
  ck_assert_int_eq(sv_eval_report(&run, &none, "x", NULL), -1);

  /* another rank: the metric, no files */
  run.rank = 1;
  ck_assert_int_eq(sv_eval_report(&run, &e, "r1", NULL), 0);
  ck_assert(metric("r1_accuracy") == 0.75);
  ck_assert_int_ne(access(tpath("r1_confusion.csv"), F_OK), 0);
  run.rank = 0;
  sv_eval_free(&e);
  sv_dataset_free(d);
}
END_TEST

START_TEST(image_grid)
{
  enum { N = 10, R = 12, C = 9 };
  double img[N * R * C];
  for (int i = 0; i < N; i++)
    for (int y = 0; y < R; y++)
      for (int x = 0; x < C; x++) /* a bar whose place says which image it is */
        img[(i * R + y) * C + x] = (x == i % C || y == i) ? 1.0 : 0.1 * (x % 3);
  img[5] = -3; /* clipped */
  int pred[N] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, truth[N] = {0, 1, 2, 0, 4, 5, 9, 7, 8, 1};
  const char *names[10] = {"zero", "one", "two", "three", "four", "five", "six", "seven",
                           "eight", "nine"};
  ck_assert_int_eq(sv_plot_image_grid(&run, "grid.png", N, R, C, img, pred, truth, names), 0);
  ck_assert_int_eq(sv_plot_image_grid(&run, "grid_nolabels.png", N, R, C, img, NULL, NULL,
                                      NULL), 0);
  if (have_gnuplot()) {
    ck_assert(is_png(tpath("grid.png")));
    ck_assert(is_png(tpath("grid_nolabels.png")));
    char *s = slurp_text(tpath("grid.gp"));
    /* three mistakes: three red frames and their captions */
    int frames = 0;
    for (char *p = s; (p = strstr(p, "set object rectangle")); p++)
      frames++;
    ck_assert_int_eq(frames, 3);
    ck_assert_ptr_nonnull(strstr(s, "'pred six'"));
    ck_assert_ptr_nonnull(strstr(s, "'true nine'"));
    ck_assert_ptr_nonnull(strstr(s, "'seven'"));
    free(s);
  }
  ck_assert_int_eq(sv_plot_image_grid(&run, "g.png", 0, R, C, img, NULL, NULL, NULL), -1);
  ck_assert_int_eq(sv_plot_image_grid(&run, "g.png", SV_GRID_MAX + 1, R, C, img, NULL, NULL,
                                      NULL), -1);
  ck_assert_msg(has(sv_errmsg(), "g.png", "at most") || has(sv_errmsg(), "g.png", "to 400"),
                "%s", sv_errmsg());
  img[7] = NAN;
  ck_assert_int_eq(sv_plot_image_grid(&run, "g.png", N, R, C, img, NULL, NULL, NULL), -1);
  ck_assert_msg(has(sv_errmsg(), "pixel 7 of image 0 is NaN", NULL), "%s", sv_errmsg());
  img[7] = 0;
  pred[2] = -1;
  ck_assert_int_eq(sv_plot_image_grid(&run, "g.png", N, R, C, img, pred, NULL, NULL), -1);
  ck_assert_msg(has(sv_errmsg(), "image 2", "negative class"), "%s", sv_errmsg());
  ck_assert_int_ne(access(tpath("g.png"), F_OK), 0);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("dataset");
  TCase *tc = tcase_create("dataset");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 0);
  tcase_add_test(tc, round_trip_plain_and_gzip);
  tcase_add_test(tc, write_rounds_and_checks);
  tcase_add_test(tc, other_types_and_shapes);
  tcase_add_test(tc, bad_files_are_refused);
  tcase_add_test(tc, corrupt_header_allocates_little);
  tcase_add_test(tc, bad_gzip_is_refused);
  tcase_add_test(tc, load_dir);
  tcase_add_test(tc, fuzz_images_and_labels);
  tcase_add_test(tc, fashion_mnist);
  tcase_add_test(tc, subset_and_gather);
  tcase_add_test(tc, batches_cover_each_epoch);
  tcase_add_test(tc, batches_reproducible_and_random_access);
  tcase_add_test(tc, batches_shuffle_is_uniform);
  tcase_add_test(tc, batches_rank_shares);
  tcase_add_test(tc, evaluate_exact);
  tcase_add_test(tc, evaluate_errors);
  tcase_add_test(tc, report_files);
  tcase_add_test(tc, image_grid);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
