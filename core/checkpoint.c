/*
 * checkpoint.c -- a params vector on disk.
 *
 * Format (version 1), every integer little-endian:
 *
 *   "SVCKPT1\n"                       8 bytes of magic
 *   uint32 version                    1
 *   uint32 real_size                  sizeof(double) = 8
 *   uint64 count                      total values
 *   uint32 nblocks
 *   nblocks times:
 *     uint32 name_len, name bytes     (no terminating NUL)
 *     uint64 offset, uint64 size      in values
 *   count doubles                     IEEE 754 binary64
 *   uint64 checksum                   FNV-1a 64 of every byte before it
 *
 * Integers and doubles are stored in host byte order and the host is
 * assumed little-endian (x86-64, aarch64 as Debian runs them); the build
 * refuses a big-endian host rather than writing files no one else reads.
 *
 * A file is written with sv__write_atomic, so it is either the old one or
 * the new one. Loading validates every length before using it and checks
 * the checksum before touching the params, so a truncated, corrupt or
 * foreign file is an error that says which, and the params are unchanged.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c assumes a little-endian host (see the format comment)"
#endif

#define MAGIC "SVCKPT1\n"
#define MAGIC_LEN 8
#define FORMAT_VERSION 1u
/* magic, version, real_size, count, nblocks */
#define HEADER_LEN (MAGIC_LEN + 4 + 4 + 8 + 4)
#define CHECKSUM_LEN 8
/* A block name longer than this is not one the params code made. */
#define MAX_NAME_LEN 4096u

uint64_t sv__fnv1a64(const unsigned char *s, size_t n)
{
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= 1099511628211ull;
  }
  return h;
}

/* ------------------------------------------------------------------ */
/* Save                                                                */
/* ------------------------------------------------------------------ */

static unsigned char *put(unsigned char *w, const void *v, size_t n)
{
  memcpy(w, v, n);
  return w + n;
}

int sv_checkpoint_save(const sv_params *p, const char *path)
{
  if (!path || !*path)
    return sv_fail("checkpoint: empty file name");
  if (!p)
    return sv_fail("checkpoint '%s': no params vector", path);
  if (p->count > 0 && !p->data)
    return sv_fail("checkpoint '%s': the params vector has no values yet "
                   "(call sv_params_data or compile first)", path);
  if (p->count > (SIZE_MAX - (1u << 20)) / sizeof(double))
    return sv_fail("checkpoint '%s': %zu parameters is too many", path, p->count);

  size_t n = HEADER_LEN + p->count * sizeof(double) + CHECKSUM_LEN;
  for (int i = 0; i < p->nblocks; i++) {
    size_t len = strlen(p->blocks[i].name);
    if (len > MAX_NAME_LEN)
      return sv_fail("checkpoint '%s': block %d has a name of %zu bytes (at most %u)", path, i,
                     len, MAX_NAME_LEN);
    n += 4 + len + 8 + 8;
  }
  unsigned char *bytes = malloc(n);
  if (!bytes)
    return sv_fail("checkpoint '%s': out of memory for %zu bytes", path, n);

  unsigned char *w = bytes;
  uint32_t version = FORMAT_VERSION, real_size = sizeof(double);
  uint64_t count = p->count;
  uint32_t nblocks = (uint32_t)p->nblocks;
  w = put(w, MAGIC, MAGIC_LEN);
  w = put(w, &version, 4);
  w = put(w, &real_size, 4);
  w = put(w, &count, 8);
  w = put(w, &nblocks, 4);
  for (int i = 0; i < p->nblocks; i++) {
    const sv_param_block *b = &p->blocks[i];
    uint32_t len = (uint32_t)strlen(b->name);
    uint64_t off = b->offset, size = b->size;
    w = put(w, &len, 4);
    w = put(w, b->name, len);
    w = put(w, &off, 8);
    w = put(w, &size, 8);
  }
  if (p->count)
    w = put(w, p->data, p->count * sizeof(double));
  uint64_t sum = sv__fnv1a64(bytes, (size_t)(w - bytes));
  w = put(w, &sum, 8);

  int rc = sv__write_atomic(path, bytes, n);
  free(bytes);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Load                                                                */
/* ------------------------------------------------------------------ */

/* Reads from a file image that never run past its end: every get checks
   that the bytes are there, and a failed get leaves `bad` set. */
typedef struct {
  const unsigned char *s;
  size_t n, pos;
  int bad;
} reader;

static int get(reader *r, void *out, size_t k)
{
  if (r->bad || k > r->n - r->pos) {
    r->bad = 1;
    return -1;
  }
  memcpy(out, r->s + r->pos, k);
  r->pos += k;
  return 0;
}

static int skip(reader *r, uint64_t k)
{
  if (r->bad || k > r->n - r->pos) {
    r->bad = 1;
    return -1;
  }
  r->pos += (size_t)k;
  return 0;
}

int sv__read_file(const char *what, const char *path, unsigned char **out, size_t *n)
{
  FILE *fp = fopen(path, "rb");
  if (!fp)
    return sv_fail("cannot open %s '%s': %s", what, path, strerror(errno));
  struct stat st;
  if (fstat(fileno(fp), &st) < 0) {
    int e = errno;
    fclose(fp);
    return sv_fail("cannot read %s '%s': %s", what, path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    fclose(fp);
    return sv_fail("%s '%s' is not a regular file", what, path);
  }
  if ((uint64_t)st.st_size > SIZE_MAX - 1) {
    fclose(fp);
    return sv_fail("%s '%s' is too large to read", what, path);
  }
  size_t size = (size_t)st.st_size;
  unsigned char *s = malloc(size ? size : 1);
  if (!s) {
    fclose(fp);
    return sv_fail("%s '%s': out of memory for %zu bytes", what, path, size);
  }
  size_t got = fread(s, 1, size, fp);
  int err = ferror(fp) ? errno : 0;
  fclose(fp);
  if (err) {
    free(s);
    return sv_fail("cannot read %s '%s': %s", what, path, strerror(err));
  }
  *out = s;
  *n = got; /* a file that shrank while we read is simply shorter */
  return 0;
}

/*
 * Walk the structure: header and block table. Fills *count, *nblocks,
 * *data_pos and *want, the file size the structure describes. Returns 0,
 * or 1 if the block table runs past the end of the file, or 2 if the
 * count is too large for any file.
 */
static int parse_layout(const unsigned char *s, size_t n, uint64_t *count, uint32_t *nblocks,
                        size_t *data_pos, uint64_t *want)
{
  reader r = {s, n, MAGIC_LEN, 0};
  uint32_t version, real_size;
  get(&r, &version, 4);
  get(&r, &real_size, 4);
  get(&r, count, 8);
  get(&r, nblocks, 4);
  for (uint32_t i = 0; i < *nblocks && !r.bad; i++) {
    uint32_t len;
    if (get(&r, &len, 4) == 0)
      skip(&r, len);
    skip(&r, 16);
  }
  if (r.bad)
    return 1;
  *data_pos = r.pos;
  if (*count > (UINT64_MAX - r.pos - CHECKSUM_LEN) / sizeof(double))
    return 2;
  *want = r.pos + *count * sizeof(double) + CHECKSUM_LEN;
  return 0;
}

int sv_checkpoint_load(sv_params *p, const char *path)
{
  if (!path || !*path)
    return sv_fail("checkpoint: empty file name");
  if (!p)
    return sv_fail("checkpoint '%s': no params vector", path);

  unsigned char *s = NULL;
  size_t n = 0;
  if (sv__read_file("checkpoint", path, &s, &n) < 0)
    return -1;
  int rc = -1;

  /* What the file is: ours, and a version we read. */
  if (memcmp(s, MAGIC, n < MAGIC_LEN ? n : MAGIC_LEN) != 0) {
    sv_fail("checkpoint '%s' is not a solver checkpoint (bad magic)", path);
    goto out;
  }
  if (n < HEADER_LEN + CHECKSUM_LEN) {
    sv_fail("checkpoint '%s' is truncated (%zu bytes, a header alone is %d)", path, n,
            HEADER_LEN + CHECKSUM_LEN);
    goto out;
  }
  uint32_t version, real_size;
  memcpy(&version, s + MAGIC_LEN, 4);
  memcpy(&real_size, s + MAGIC_LEN + 4, 4);
  if (version != FORMAT_VERSION) {
    sv_fail("checkpoint '%s' has format version %u; this build reads version %u", path,
            version, FORMAT_VERSION);
    goto out;
  }

  /* Whole and intact. A size mismatch says truncated; anything else that
     fails the checksum is corruption. */
  uint64_t count = 0, want = 0;
  uint32_t nblocks = 0;
  size_t data_pos = 0;
  int layout = parse_layout(s, n, &count, &nblocks, &data_pos, &want);
  uint64_t stored;
  memcpy(&stored, s + n - CHECKSUM_LEN, CHECKSUM_LEN);
  if (sv__fnv1a64(s, n - CHECKSUM_LEN) != stored) {
    if (layout == 1)
      sv_fail("checkpoint '%s' is truncated (%zu bytes end inside its block table)", path, n);
    else if (layout == 2)
      sv_fail("checkpoint '%s' is corrupt (a parameter count of %llu; checksum mismatch)",
              path, (unsigned long long)count);
    else if (want > n)
      sv_fail("checkpoint '%s' is truncated (%zu bytes, its header describes %llu)", path, n,
              (unsigned long long)want);
    else if (want < n)
      sv_fail("checkpoint '%s' is corrupt (%zu bytes where its header describes %llu; "
              "checksum mismatch)", path, n, (unsigned long long)want);
    else
      sv_fail("checkpoint '%s' is corrupt (checksum mismatch)", path);
    goto out;
  }
  /* A matching checksum over a layout that does not add up is a file we
     did not write (or a checksum collision). */
  if (layout != 0) {
    sv_fail("checkpoint '%s' is corrupt (its block table or count does not fit in %zu bytes)",
            path, n);
    goto out;
  }
  if (want != n) {
    sv_fail("checkpoint '%s' is corrupt (%zu bytes where its header describes %llu)", path, n,
            (unsigned long long)want);
    goto out;
  }
  if (real_size != sizeof(double)) {
    sv_fail("checkpoint '%s' stores %u-byte reals; this build uses %zu-byte doubles", path,
            real_size, sizeof(double));
    goto out;
  }

  /* The same model: count and block layout. */
  if (count != p->count) {
    sv_fail("checkpoint '%s' has %llu parameters, the model has %zu", path,
            (unsigned long long)count, p->count);
    goto out;
  }
  if (nblocks != (uint32_t)p->nblocks) {
    sv_fail("checkpoint '%s' has %u parameter blocks, the model has %d", path, nblocks,
            p->nblocks);
    goto out;
  }
  reader r = {s, n, HEADER_LEN, 0};
  for (uint32_t i = 0; i < nblocks; i++) {
    const sv_param_block *b = &p->blocks[i];
    uint32_t len;
    uint64_t off, size;
    get(&r, &len, 4);
    const char *name = (const char *)s + r.pos;
    skip(&r, len);
    get(&r, &off, 8);
    get(&r, &size, 8);
    if (r.bad) /* cannot happen after parse_layout; kept as the bound check */
      break;
    if (len != strlen(b->name) || memcmp(name, b->name, len) != 0 || off != b->offset ||
        size != b->size) {
      int shown = len > 200 ? 200 : (int)len;
      sv_fail("checkpoint '%s': block %u is '%.*s' (%llu values at %llu), the model's is "
              "'%s' (%zu values at %zu)", path, i, shown, name, (unsigned long long)size,
              (unsigned long long)off, b->name, b->size, b->offset);
      goto out;
    }
  }
  if (r.bad || r.pos != data_pos) {
    sv_fail("checkpoint '%s' is corrupt (block table)", path);
    goto out;
  }

  if (sv__params_freeze(p) < 0) {
    sv_fail_context("checkpoint '%s'", path);
    goto out;
  }
  if (count)
    memcpy(p->data, s + data_pos, (size_t)count * sizeof(double));
  rc = 0;
out:
  free(s);
  return rc;
}
