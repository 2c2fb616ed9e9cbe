/*
 * dataset.c -- datasets in memory, read from and written to IDX files.
 *
 * IDX (the MNIST format) is a 4-byte magic "00 00 type ndims", ndims
 * big-endian uint32 sizes (axis 0 counts the examples), then the values,
 * big-endian, example after example, and nothing else.
 *
 * Files are read through zlib's gz* API, which reads gzip and plain files
 * alike (it looks at the content, not the name). A file comes from outside
 * the program, so every size in it is checked before it is used: the
 * buffer for the values grows with the bytes actually read, never to what
 * a header claims, so a corrupt header cannot cause a huge allocation; and
 * a short, long or undecodable file is refused with a message naming the
 * file and what is wrong. Nothing partial is ever returned.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Bytes of values read per gzread call, and the first buffer size. */
#define READ_CHUNK (1u << 20)
/* An IDX file has at most 4 axes here: examples and up to 3 per example. */
#define MAX_AXES 4

/* ------------------------------------------------------------------ */
/* IDX element types                                                   */
/* ------------------------------------------------------------------ */

typedef struct {
  unsigned char code;
  int size;          /* bytes */
  int integer;       /* may hold labels */
  const char *name;
} idx_type;

static const idx_type IDX_TYPES[] = {
  {0x08, 1, 1, "unsigned byte"},
  {0x09, 1, 1, "signed byte"},
  {0x0B, 2, 1, "short"},
  {0x0C, 4, 1, "int"},
  {0x0D, 4, 0, "float"},
  {0x0E, 8, 0, "double"},
};

static const idx_type *idx_type_of(unsigned char code)
{
  for (size_t i = 0; i < sizeof IDX_TYPES / sizeof IDX_TYPES[0]; i++)
    if (IDX_TYPES[i].code == code)
      return &IDX_TYPES[i];
  return NULL;
}

static uint32_t be32(const unsigned char *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Value k of a big-endian array of type t, as a double. */
static double idx_value(const idx_type *t, const unsigned char *s, size_t k)
{
  const unsigned char *p = s + k * (size_t)t->size;
  switch (t->code) {
  case 0x08:
    return p[0];
  case 0x09:
    return (signed char)p[0];
  case 0x0B:
    return (int16_t)(uint16_t)((unsigned)p[0] << 8 | p[1]);
  case 0x0C:
    return (int32_t)be32(p);
  case 0x0D: {
    uint32_t bits = be32(p);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
  }
  default: { /* 0x0E */
    uint64_t bits = (uint64_t)be32(p) << 32 | be32(p + 4);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
  }
  }
}

/* ------------------------------------------------------------------ */
/* Reading one IDX file                                                */
/* ------------------------------------------------------------------ */

/* One file being read. `what` ("images file", "labels file") and `path`
   start every message. */
typedef struct {
  const char *what, *path;
  gzFile gz;
} src;

/* Fail with zlib's or the system's reason for a failed read. */
static int src_fail(const src *f)
{
  int err = Z_OK;
  const char *msg = gzerror(f->gz, &err);
  if (err == Z_ERRNO)
    return sv_fail("cannot read %s '%s': %s", f->what, f->path, strerror(errno));
  if (err == Z_MEM_ERROR)
    return sv_fail("cannot read %s '%s': out of memory", f->what, f->path);
  return sv_fail("%s '%s' is not a valid gzip file (zlib: %s)", f->what, f->path,
                 msg && *msg ? msg : "unknown error");
}

/*
 * Read up to n bytes. Returns the count read (n unless the data ended),
 * or -1 after failing with the reason. A gzip stream that ends early is
 * reported as truncated by the caller (it knows what was expected); zlib
 * says so with Z_BUF_ERROR, which *gz_short is set for.
 */
static long long src_read(src *f, unsigned char *s, size_t n, int *gz_short)
{
  size_t got = 0;
  *gz_short = 0;
  while (got < n) {
    size_t want = n - got < READ_CHUNK ? n - got : READ_CHUNK;
    int k = gzread(f->gz, s + got, (unsigned)want);
    if (k < 0)
      return src_fail(f);
    got += (size_t)k;
    if ((size_t)k < want)
      break;
  }
  int err = Z_OK;
  gzerror(f->gz, &err);
  if (err == Z_BUF_ERROR)
    *gz_short = 1;
  else if (err != Z_OK)
    return src_fail(f);
  return (long long)got;
}

/* What a truncated read is called: a plain file simply ends; a gzip stream
   that ends early says so. */
static const char *short_kind(int gz_short)
{
  return gz_short ? " (the gzip stream ends early)" : "";
}

/* A file's header and values. */
typedef struct {
  const idx_type *type;
  int ndims;
  uint32_t dims[MAX_AXES];
  size_t count;            /* values */
  unsigned char *bytes;    /* count * type->size bytes, big-endian */
} idx_file;

/*
 * Read a whole IDX file. `labels` selects the rules of a labels file (one
 * axis, an integer type); an images file has 1 to MAX_AXES axes.
 */
static int idx_read(const char *what, const char *path, int labels, idx_file *out)
{
  memset(out, 0, sizeof *out);
  if (!path || !*path)
    return sv_fail("%s: empty file name", what);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return sv_fail("cannot open %s '%s': %s", what, path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int e = errno;
    close(fd);
    return sv_fail("cannot read %s '%s': %s", what, path, strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return sv_fail("%s '%s' is a directory, not an IDX file", what, path);
  }
  src f = {what, path, gzdopen(fd, "rb")};
  if (!f.gz) {
    close(fd);
    return sv_fail("cannot read %s '%s': out of memory", what, path);
  }
  gzbuffer(f.gz, 1u << 17);

  int rc = -1, gz_short = 0;
  unsigned char head[4 + 4 * MAX_AXES];
  long long k = src_read(&f, head, 4, &gz_short);
  if (k < 0)
    goto out;
  if (k == 0 && !gz_short) {
    sv_fail("%s '%s' is empty", what, path);
    goto out;
  }
  if (k < 4) {
    sv_fail("%s '%s' is truncated: %lld bytes%s, an IDX header has at least 4", what, path, k,
            short_kind(gz_short));
    goto out;
  }
  if (head[0] != 0 || head[1] != 0) {
    sv_fail("%s '%s' is not an IDX file: it starts with bytes %02x %02x %02x %02x, "
            "where IDX has 00 00 <type> <axes>", what, path, head[0], head[1], head[2], head[3]);
    goto out;
  }
  out->type = idx_type_of(head[2]);
  if (!out->type) {
    sv_fail("%s '%s' has an unknown IDX type 0x%02x (known: 0x08 unsigned byte, "
            "0x09 signed byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double)", what, path,
            head[2]);
    goto out;
  }
  if (labels && !out->type->integer) {
    sv_fail("%s '%s' holds %ss; labels must be integers (IDX type 0x08, 0x09, 0x0B or 0x0C)",
            what, path, out->type->name);
    goto out;
  }
  out->ndims = head[3];
  if (out->ndims == 0) {
    sv_fail("%s '%s' declares 0 axes; an IDX file needs at least one (the examples)", what,
            path);
    goto out;
  }
  if (labels && out->ndims != 1) {
    sv_fail("%s '%s' has %d axes; a labels file has one (IDX1)", what, path, out->ndims);
    goto out;
  }
  if (out->ndims > MAX_AXES) {
    sv_fail("%s '%s' has %d axes; at most %d are supported (the examples and up to %d "
            "per example)", what, path, out->ndims, MAX_AXES, MAX_AXES - 1);
    goto out;
  }
  size_t hlen = 4 + 4 * (size_t)out->ndims;
  k = src_read(&f, head + 4, hlen - 4, &gz_short);
  if (k < 0)
    goto out;
  if ((size_t)k < hlen - 4) {
    sv_fail("%s '%s' is truncated: its header is %lld bytes%s where %d axes need %zu", what,
            path, 4 + k, short_kind(gz_short), out->ndims, hlen);
    goto out;
  }

  /* The sizes: none zero, and a product within the cap (checked step by
     step, so it cannot overflow). */
  uint64_t count = 1;
  char shape[16 * MAX_AXES];
  size_t w = 0;
  for (int i = 0; i < out->ndims; i++) {
    out->dims[i] = be32(head + 4 + 4 * i);
    w += (size_t)snprintf(shape + w, sizeof shape - w, "%s%lu", i ? " x " : "",
                          (unsigned long)out->dims[i]);
  }
  if (out->dims[0] == 0) {
    sv_fail("%s '%s' has no examples (its header says %s)", what, path, shape);
    goto out;
  }
  for (int i = 0; i < out->ndims; i++) {
    if (out->dims[i] == 0) {
      sv_fail("%s '%s' has examples of no values (axis %d has size 0 in %s)", what, path, i,
              shape);
      goto out;
    }
    if (count > (uint64_t)SV_IDX_MAX_VALUES / out->dims[i]) {
      sv_fail("%s '%s' has impossible dimensions %s: more than %ld values (corrupt header?)",
              what, path, shape, SV_IDX_MAX_VALUES);
      goto out;
    }
    count *= out->dims[i];
  }
  out->count = (size_t)count;
  size_t nbytes = out->count * (size_t)out->type->size;

  /* The values, into a buffer that grows only as they arrive. */
  size_t have = 0, cap = 0;
  for (;;) {
    if (have == cap) {
      size_t ncap = cap ? (cap < nbytes / 2 ? 2 * cap : nbytes) : (nbytes < READ_CHUNK ? nbytes : READ_CHUNK);
      unsigned char *s = realloc(out->bytes, ncap);
      if (!s) {
        sv_fail("%s '%s': out of memory for %zu bytes of values", what, path, ncap);
        goto out;
      }
      out->bytes = s;
      cap = ncap;
    }
    k = src_read(&f, out->bytes + have, cap - have, &gz_short);
    if (k < 0)
      goto out;
    have += (size_t)k;
    if (have < cap || have == nbytes)
      break;
  }
  if (have < nbytes) {
    sv_fail("%s '%s' is truncated%s: its header (%s %ss) describes %zu bytes of values, "
            "found %zu", what, path, short_kind(gz_short), shape, out->type->name, nbytes,
            have);
    goto out;
  }
  /* Nothing may follow. Reading on also makes zlib check the gzip trailer
     (CRC and length), which it does only at the end of the stream. */
  unsigned char extra[4096];
  k = src_read(&f, extra, sizeof extra, &gz_short);
  if (k < 0)
    goto out;
  if (k > 0) {
    sv_fail("%s '%s' has %s%lld bytes of trailing garbage after the %zu bytes of values its "
            "header (%s) describes", what, path, (size_t)k == sizeof extra ? "at least " : "",
            k, nbytes, shape);
    goto out;
  }
  if (gz_short) {
    sv_fail("%s '%s' is truncated (the gzip stream ends early, after all %zu bytes of values)",
            what, path, nbytes);
    goto out;
  }
  rc = 0;
out:;
  int zc = gzclose_r(f.gz);
  if (rc == 0 && zc != Z_OK) {
    rc = zc == Z_BUF_ERROR
             ? sv_fail("%s '%s' is truncated (the gzip stream ends early)", what, path)
             : sv_fail("cannot read %s '%s': closing failed (zlib error %d)", what, path, zc);
  }
  if (rc < 0) {
    free(out->bytes);
    out->bytes = NULL;
  }
  return rc;
}

/* ------------------------------------------------------------------ */
/* Datasets                                                            */
/* ------------------------------------------------------------------ */

void sv_dataset_free(sv_dataset *d)
{
  if (!d)
    return;
  free(d->x);
  free(d->y);
  free(d);
}

/* An empty dataset of n examples of the given axes, x allocated, y if
   `labelled`. */
static sv_dataset *dataset_new(int n, int ndim, const int *dims, int labelled, int nclasses)
{
  sv_dataset *d = calloc(1, sizeof *d);
  if (!d)
    return NULL;
  d->n = n;
  d->ndim = ndim;
  d->size = 1;
  for (int i = 0; i < 3; i++) {
    d->dims[i] = i < ndim ? dims[i] : 1;
    d->size *= (size_t)d->dims[i];
  }
  d->nclasses = nclasses;
  d->x = malloc((size_t)n * d->size * sizeof(double));
  d->y = labelled ? malloc((size_t)n * sizeof(int)) : NULL;
  if (!d->x || (labelled && !d->y)) {
    sv_dataset_free(d);
    return NULL;
  }
  return d;
}

sv_dataset *sv_dataset_load_idx(const char *images, const char *labels, int nclasses)
{
  if (labels && nclasses < 1) {
    sv_fail("labels file '%s': %d classes; labels need at least one", labels, nclasses);
    return NULL;
  }
  if (nclasses < 0) {
    sv_fail("images file '%s': %d classes", images ? images : "", nclasses);
    return NULL;
  }
  idx_file im, lb;
  memset(&lb, 0, sizeof lb);
  if (idx_read("images file", images, 0, &im) < 0)
    return NULL;
  if (labels && idx_read("labels file", labels, 1, &lb) < 0) {
    free(im.bytes);
    return NULL;
  }
  sv_dataset *d = NULL;
  int n = (int)im.dims[0];
  if (labels && lb.dims[0] != im.dims[0]) {
    sv_fail("labels file '%s' has %lu labels but images file '%s' has %d examples", labels,
            (unsigned long)lb.dims[0], images, n);
    goto out;
  }
  int dims[3];
  for (int i = 1; i < im.ndims; i++)
    dims[i - 1] = (int)im.dims[i];
  d = dataset_new(n, im.ndims - 1, dims, labels != NULL, nclasses);
  if (!d) {
    sv_fail("images file '%s': out of memory for %zu values", images, im.count);
    goto out;
  }
  /* Unsigned bytes are pixel intensities: scale them to [0, 1]. */
  int scale = im.type->code == 0x08;
  for (size_t i = 0; i < im.count; i++) {
    double v = idx_value(im.type, im.bytes, i);
    if (!isfinite(v)) {
      sv_fail("images file '%s': value %zu (example %zu) is %g; values must be finite", images,
              i, i / d->size, v);
      sv_dataset_free(d);
      d = NULL;
      goto out;
    }
    d->x[i] = scale ? v / 255.0 : v;
  }
  for (int i = 0; labels && i < n; i++) {
    double v = idx_value(lb.type, lb.bytes, (size_t)i);
    if (v < 0 || v >= nclasses) {
      sv_fail("labels file '%s': label %.0f at index %d is outside [0, %d)", labels, v, i,
              nclasses);
      sv_dataset_free(d);
      d = NULL;
      goto out;
    }
    d->y[i] = (int)v;
  }
out:
  free(im.bytes);
  free(lb.bytes);
  return d;
}

/* <dir>/<name>, or <dir>/<name>.gz when only that exists; NULL (failed)
   when neither does. */
static char *find_split_file(const char *dir, const char *name)
{
  size_t len = strlen(dir) + 1 + strlen(name) + 4;
  char *plain = malloc(len), *gz = malloc(len);
  if (!plain || !gz) {
    free(plain);
    free(gz);
    sv_fail("dataset directory '%s': out of memory", dir);
    return NULL;
  }
  snprintf(plain, len, "%s/%s", dir, name);
  snprintf(gz, len, "%s/%s.gz", dir, name);
  if (access(plain, F_OK) == 0) {
    free(gz);
    return plain;
  }
  if (access(gz, F_OK) == 0) {
    free(plain);
    return gz;
  }
  sv_fail("dataset directory '%s' has no '%s' (neither %s nor %s exists)", dir, name, plain,
          gz);
  free(plain);
  free(gz);
  return NULL;
}

sv_dataset *sv_dataset_load_dir(const char *dir, const char *split, int nclasses)
{
  if (!dir || !*dir) {
    sv_fail("dataset directory: empty name");
    return NULL;
  }
  if (!split || !*split || strchr(split, '/')) {
    sv_fail("dataset directory '%s': split '%s' should be a file name prefix such as "
            "\"train\" or \"t10k\"", dir, split ? split : "");
    return NULL;
  }
  struct stat st;
  if (stat(dir, &st) < 0) {
    sv_fail("dataset directory '%s': %s", dir, strerror(errno));
    return NULL;
  }
  if (!S_ISDIR(st.st_mode)) {
    sv_fail("dataset directory '%s' is not a directory", dir);
    return NULL;
  }
  size_t len = strlen(split) + 32;
  char *iname = malloc(len), *lname = malloc(len);
  char *ipath = NULL, *lpath = NULL;
  sv_dataset *d = NULL;
  if (!iname || !lname) {
    sv_fail("dataset directory '%s': out of memory", dir);
    goto out;
  }
  snprintf(iname, len, "%s-images-idx3-ubyte", split);
  snprintf(lname, len, "%s-labels-idx1-ubyte", split);
  if ((ipath = find_split_file(dir, iname)) && (lpath = find_split_file(dir, lname)))
    d = sv_dataset_load_idx(ipath, lpath, nclasses);
out:
  free(iname);
  free(lname);
  free(ipath);
  free(lpath);
  return d;
}

sv_dataset *sv_dataset_subset(const sv_dataset *d, int first, int count)
{
  if (!d) {
    sv_fail("dataset subset: no dataset");
    return NULL;
  }
  if (first < 0 || count < 1 || first > d->n - count) {
    sv_fail("dataset subset [%d, %d + %d) is not a non-empty part of the %d examples", first,
            first, count, d->n);
    return NULL;
  }
  sv_dataset *s = dataset_new(count, d->ndim, d->dims, d->y != NULL, d->nclasses);
  if (!s) {
    sv_fail("dataset subset of %d examples: out of memory", count);
    return NULL;
  }
  memcpy(s->x, d->x + (size_t)first * d->size, (size_t)count * d->size * sizeof(double));
  if (d->y)
    memcpy(s->y, d->y + first, (size_t)count * sizeof(int));
  return s;
}

int sv_dataset_gather(const sv_dataset *d, int count, const int *idx, double *x, double *y)
{
  if (!d)
    return sv_fail("dataset gather: no dataset");
  if (count < 0)
    return sv_fail("dataset gather: negative count %d", count);
  if (count > 0 && !idx)
    return sv_fail("dataset gather: no indices for %d examples", count);
  if (y && !d->y)
    return sv_fail("dataset gather: labels asked for, but the dataset has none");
  for (int i = 0; i < count; i++)
    if (idx[i] < 0 || idx[i] >= d->n)
      return sv_fail("dataset gather: index %d at position %d is outside [0, %d)", idx[i], i,
                     d->n);
  for (int i = 0; i < count; i++) {
    if (x)
      memcpy(x + (size_t)i * d->size, d->x + (size_t)idx[i] * d->size, d->size * sizeof(double));
    if (y)
      y[i] = d->y[idx[i]];
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Writing IDX files                                                   */
/* ------------------------------------------------------------------ */

static void put_be32(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static int ends_with_gz(const char *path)
{
  size_t n = strlen(path);
  return n > 3 && strcmp(path + n - 3, ".gz") == 0;
}

/* Write bytes to path atomically, gzipped if the name ends in ".gz". */
static int write_maybe_gz(const char *what, const char *path, const unsigned char *s, size_t n)
{
  if (!ends_with_gz(path))
    return sv__write_atomic(path, s, n);
  z_stream z;
  memset(&z, 0, sizeof z);
  /* windowBits 15 + 16: a gzip wrapper, as gzip(1) writes */
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return sv_fail("%s '%s': cannot start compression", what, path);
  uLong bound = deflateBound(&z, (uLong)n);
  unsigned char *gz = malloc(bound);
  if (!gz) {
    deflateEnd(&z);
    return sv_fail("%s '%s': out of memory for %lu bytes", what, path, (unsigned long)bound);
  }
  z.next_in = (unsigned char *)s;
  z.avail_in = (uInt)n;
  z.next_out = gz;
  z.avail_out = (uInt)bound;
  int zrc = deflate(&z, Z_FINISH);
  size_t len = z.total_out;
  deflateEnd(&z);
  int rc = zrc == Z_STREAM_END ? sv__write_atomic(path, gz, len)
                               : sv_fail("%s '%s': compression failed (zlib error %d)", what,
                                         path, zrc);
  free(gz);
  return rc;
}

int sv_idx_write_images(const char *path, int n, int rows, int cols, const double *x)
{
  if (!path || !*path)
    return sv_fail("IDX images: empty file name");
  if (n < 1 || rows < 1 || cols < 1)
    return sv_fail("IDX images '%s': %d images of %d x %d (each must be at least 1)", path, n,
                   rows, cols);
  if ((long long)n * rows * cols > SV_IDX_MAX_VALUES / 8) /* deflate counts in uInt */
    return sv_fail("IDX images '%s': %d images of %d x %d is too many values", path, n, rows,
                   cols);
  if (!x)
    return sv_fail("IDX images '%s': no values", path);
  size_t count = (size_t)n * (size_t)rows * (size_t)cols, len = 16 + count;
  unsigned char *s = malloc(len);
  if (!s)
    return sv_fail("IDX images '%s': out of memory for %zu bytes", path, len);
  s[0] = s[1] = 0;
  s[2] = 0x08;
  s[3] = 3;
  put_be32(s + 4, (uint32_t)n);
  put_be32(s + 8, (uint32_t)rows);
  put_be32(s + 12, (uint32_t)cols);
  for (size_t i = 0; i < count; i++) {
    if (!(x[i] >= 0 && x[i] <= 1)) { /* also NaN */
      free(s);
      return sv_fail("IDX images '%s': value %zu (image %zu) is %g, outside [0, 1]", path, i,
                     i / ((size_t)rows * (size_t)cols), x[i]);
    }
    s[16 + i] = (unsigned char)lround(x[i] * 255.0);
  }
  int rc = write_maybe_gz("IDX images", path, s, len);
  free(s);
  return rc;
}

int sv_idx_write_labels(const char *path, int n, const int *y)
{
  if (!path || !*path)
    return sv_fail("IDX labels: empty file name");
  if (n < 1 || n > SV_IDX_MAX_VALUES / 8)
    return sv_fail("IDX labels '%s': %d labels (at least 1)", path, n);
  if (!y)
    return sv_fail("IDX labels '%s': no labels", path);
  size_t len = 8 + (size_t)n;
  unsigned char *s = malloc(len);
  if (!s)
    return sv_fail("IDX labels '%s': out of memory for %zu bytes", path, len);
  s[0] = s[1] = 0;
  s[2] = 0x08;
  s[3] = 1;
  put_be32(s + 4, (uint32_t)n);
  for (int i = 0; i < n; i++) {
    if (y[i] < 0 || y[i] > 255) {
      free(s);
      return sv_fail("IDX labels '%s': label %d at index %d is outside [0, 255] (one byte)",
                     path, y[i], i);
    }
    s[8 + i] = (unsigned char)y[i];
  }
  int rc = write_maybe_gz("IDX labels", path, s, len);
  free(s);
  return rc;
}
