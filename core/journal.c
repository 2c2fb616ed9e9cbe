/*
 * journal.c -- the stage journal: what `solver --resume` needs to go on.
 *
 * A plugin calls sv_minimize several times (Adam then LM; one model after
 * another); each call is a stage with an ordinal. Under the `solver`
 * program every stage that completes writes <outdir>/resume/stage-<k>.ckpt
 * (its final parameters, the run's RNG state after it, its result), and a
 * stage stopped by SIGINT or SIGTERM writes stage-<k>.state (parameters,
 * optimizer state, the last step completed, the RNG state). A resumed run
 * executes the plugin again from the start with the same options; stage k
 * then loads its .ckpt instead of training, or its .state and goes on from
 * the next step. Since the plugin's setup is deterministic given the seed
 * and the RNG state is restored at each stage boundary, the resumed run
 * ends with the parameters of an uninterrupted one, bit for bit.
 *
 * Format (version 1), integers little-endian as in checkpoint.c:
 *
 *   "SVJRNL1\n"                       8 bytes of magic
 *   uint32 version, real_size         1, 8
 *   uint32 entry                      1 completed stage, 2 stopped stage
 *   uint32 ordinal, kind              stage number, sv_optim_kind
 *   uint32 len + bytes                the plugin's name
 *   uint32 len + bytes                the stage's name
 *   int32 steps, int32 converged      sv_optim_result
 *   double loss, double seconds
 *   uint64 history_len, epochs_len    bytes of loss_history.csv, epochs.csv
 *   uint32 len + bytes                the RNG's name (gsl_rng_name)
 *   uint64 len + bytes                its state (gsl_rng_state)
 *   uint64 count, uint32 nblocks      the params layout, as in a checkpoint:
 *   nblocks times uint32 len + name, uint64 offset, uint64 size
 *   count doubles                     the parameters
 *   entry 2 only:
 *     int32 step                      the last step completed
 *     uint32 nscalars + doubles       the step loop's, then the driver's
 *     uint32 nvecs + nvecs*count doubles   (Adam: m, v)
 *     uint64 len + bytes              the RNG state when the stage began
 *   uint64 checksum                   FNV-1a 64 of every byte before it
 *
 * Written with sv__write_atomic; read whole, checksum first, every length
 * checked against the bytes left before it is used, and nothing is set
 * (params, RNG) until the whole entry has been checked against the run:
 * the plugin, the stage and the params layout must be the same.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "journal.c assumes a little-endian host (see the format comment)"
#endif

#define MAGIC "SVJRNL1\n"
#define MAGIC_LEN 8
#define FORMAT_VERSION 1u
#define ENTRY_DONE 1u
#define ENTRY_STOPPED 2u
#define CHECKSUM_LEN 8
#define MAX_NAME_LEN 4096u
#define MAX_RNG_STATE (1u << 20)
#define MAX_VECS 16u
#define JOURNAL_DIR "resume"

/* ------------------------------------------------------------------ */
/* Writing                                                             */
/* ------------------------------------------------------------------ */

typedef struct {
  unsigned char *s;
  size_t n, cap;
  int oom;
} wbuf;

static void put(wbuf *b, const void *v, size_t k)
{
  if (b->oom)
    return;
  if (k > b->cap - b->n) {
    size_t cap = b->cap ? b->cap : 1024;
    while (k > cap - b->n) {
      if (cap > SIZE_MAX / 2) {
        b->oom = 1;
        return;
      }
      cap *= 2;
    }
    unsigned char *s = realloc(b->s, cap);
    if (!s) {
      b->oom = 1;
      return;
    }
    b->s = s;
    b->cap = cap;
  }
  if (k)
    memcpy(b->s + b->n, v, k);
  b->n += k;
}

static void put_u32(wbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_i32(wbuf *b, int32_t v) { put(b, &v, 4); }
static void put_u64(wbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_f64(wbuf *b, double v) { put(b, &v, 8); }

static void put_str(wbuf *b, const char *s)
{
  size_t len = strlen(s ? s : "");
  put_u32(b, (uint32_t)len);
  put(b, s ? s : "", len);
}

int sv__journal_write(const char *path, const sv__jrec *rec, const sv_params *p,
                      const gsl_rng *rng)
{
  if (!path || !*path)
    return sv_fail("resume state: empty file name");
  if (!rec || !p || !rng)
    return sv_fail("resume state '%s': nothing to write", path);
  if (p->count > 0 && !p->data)
    return sv_fail("resume state '%s': the params vector has no values yet", path);
  const char *names[2] = {rec->plugin ? rec->plugin : "", rec->stage ? rec->stage : ""};
  for (int i = 0; i < 2; i++)
    if (strlen(names[i]) > MAX_NAME_LEN)
      return sv_fail("resume state '%s': a name of %zu bytes (at most %u)", path,
                     strlen(names[i]), MAX_NAME_LEN);
  const sv__optstate *st = &rec->st;
  if (rec->stopped && (st->nscalars < 0 || st->nscalars > SV__STATE_MAX_SCALARS ||
                       st->nvecs < 0 || (unsigned)st->nvecs > MAX_VECS ||
                       (st->nvecs > 0 && !st->vecs)))
    return sv_fail("resume state '%s': a bad optimizer state (%d scalars, %d vectors)", path,
                   st->nscalars, st->nvecs);

  wbuf b = {0};
  put(&b, MAGIC, MAGIC_LEN);
  put_u32(&b, FORMAT_VERSION);
  put_u32(&b, (uint32_t)sizeof(double));
  put_u32(&b, rec->stopped ? ENTRY_STOPPED : ENTRY_DONE);
  put_u32(&b, (uint32_t)rec->ordinal);
  put_u32(&b, (uint32_t)rec->kind);
  put_str(&b, names[0]);
  put_str(&b, names[1]);
  put_i32(&b, rec->res.steps);
  put_i32(&b, rec->res.converged);
  put_f64(&b, rec->res.loss);
  put_f64(&b, rec->res.seconds);
  put_u64(&b, rec->history_len);
  put_u64(&b, rec->epochs_len);
  put_str(&b, gsl_rng_name(rng));
  size_t rs = gsl_rng_size(rng);
  put_u64(&b, rs);
  put(&b, gsl_rng_state(rng), rs);
  put_u64(&b, p->count);
  put_u32(&b, (uint32_t)p->nblocks);
  for (int i = 0; i < p->nblocks; i++) {
    const sv_param_block *bl = &p->blocks[i];
    if (strlen(bl->name) > MAX_NAME_LEN) {
      free(b.s);
      return sv_fail("resume state '%s': block %d has a name of %zu bytes (at most %u)", path,
                     i, strlen(bl->name), MAX_NAME_LEN);
    }
    put_str(&b, bl->name);
    put_u64(&b, bl->offset);
    put_u64(&b, bl->size);
  }
  if (p->count)
    put(&b, p->data, p->count * sizeof(double));
  if (rec->stopped) {
    put_i32(&b, st->step);
    put_u32(&b, (uint32_t)st->nscalars);
    put(&b, st->scalars, (size_t)st->nscalars * sizeof(double));
    put_u32(&b, (uint32_t)st->nvecs);
    if (st->nvecs > 0 && p->count)
      put(&b, st->vecs, (size_t)st->nvecs * p->count * sizeof(double));
    put_u64(&b, rec->rng0 ? rs : 0);
    if (rec->rng0)
      put(&b, rec->rng0, rs);
  }
  if (!b.oom)
    put_u64(&b, sv__fnv1a64(b.s, b.n));
  if (b.oom) {
    free(b.s);
    return sv_fail("resume state '%s': out of memory", path);
  }
  int rc = sv__write_atomic(path, b.s, b.n);
  free(b.s);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */
/* ------------------------------------------------------------------ */

/* Reads from a file image that never run past its end: a failed get
   leaves `bad` set, and every later get fails too. */
typedef struct {
  const unsigned char *s;
  size_t n, pos;
  int bad;
} reader;

static const void *get(reader *r, uint64_t k)
{
  if (r->bad || k > r->n - r->pos) {
    r->bad = 1;
    return NULL;
  }
  const void *v = r->s + r->pos;
  r->pos += (size_t)k;
  return v;
}

static uint32_t get_u32(reader *r)
{
  uint32_t v = 0;
  const void *p = get(r, 4);
  if (p)
    memcpy(&v, p, 4);
  return v;
}

static int32_t get_i32(reader *r)
{
  int32_t v = 0;
  const void *p = get(r, 4);
  if (p)
    memcpy(&v, p, 4);
  return v;
}

static uint64_t get_u64(reader *r)
{
  uint64_t v = 0;
  const void *p = get(r, 8);
  if (p)
    memcpy(&v, p, 8);
  return v;
}

static double get_f64(reader *r)
{
  double v = 0;
  const void *p = get(r, 8);
  if (p)
    memcpy(&v, p, 8);
  return v;
}

/* A length-prefixed name: a pointer into the image (not terminated). */
static const char *get_name(reader *r, uint32_t *len)
{
  *len = get_u32(r);
  if (*len > MAX_NAME_LEN) {
    r->bad = 1;
    return NULL;
  }
  return get(r, *len);
}

static int name_is(const char *s, uint32_t len, const char *want)
{
  return s && strlen(want) == len && memcmp(s, want, len) == 0;
}

/* Everything an entry holds, as pointers into its image. */
typedef struct {
  uint32_t entry, ordinal, kind;
  const char *plugin, *stage, *rng_name;
  uint32_t plugin_len, stage_len, rng_name_len;
  sv_optim_result res;
  uint64_t history_len, epochs_len;
  const unsigned char *rng_state;
  uint64_t rng_len;
  uint64_t count;
  uint32_t nblocks;
  size_t blocks_pos;      /* the block table */
  const unsigned char *values;
  int32_t step;
  uint32_t nscalars, nvecs;
  const unsigned char *scalars, *vecs;
  uint64_t rng0_len;
  const unsigned char *rng0;
} parsed;

/* Walk an image whose checksum matched. Returns 0, or -1 when a length
   does not fit the bytes that are there. */
static int parse(const unsigned char *s, size_t n, parsed *e)
{
  reader r = {s, n - CHECKSUM_LEN, MAGIC_LEN + 8, 0};
  e->entry = get_u32(&r);
  e->ordinal = get_u32(&r);
  e->kind = get_u32(&r);
  e->plugin = get_name(&r, &e->plugin_len);
  e->stage = get_name(&r, &e->stage_len);
  e->res.steps = get_i32(&r);
  e->res.converged = get_i32(&r);
  e->res.loss = get_f64(&r);
  e->res.seconds = get_f64(&r);
  e->history_len = get_u64(&r);
  e->epochs_len = get_u64(&r);
  e->rng_name = get_name(&r, &e->rng_name_len);
  e->rng_len = get_u64(&r);
  if (e->rng_len > MAX_RNG_STATE)
    r.bad = 1;
  e->rng_state = get(&r, e->rng_len);
  e->count = get_u64(&r);
  e->nblocks = get_u32(&r);
  e->blocks_pos = r.pos;
  for (uint32_t i = 0; i < e->nblocks && !r.bad; i++) {
    uint32_t len;
    get_name(&r, &len);
    get(&r, 16);
  }
  if (e->count > (uint64_t)(SIZE_MAX / sizeof(double)))
    r.bad = 1;
  e->values = get(&r, e->count * sizeof(double));
  if (e->entry == ENTRY_STOPPED) {
    e->step = get_i32(&r);
    e->nscalars = get_u32(&r);
    if (e->nscalars > SV__STATE_MAX_SCALARS)
      r.bad = 1;
    e->scalars = get(&r, (uint64_t)e->nscalars * sizeof(double));
    e->nvecs = get_u32(&r);
    if (e->nvecs > MAX_VECS)
      r.bad = 1;
    /* count <= SIZE_MAX / 8 and nvecs <= 16: the product fits in 64 bits */
    e->vecs = get(&r, (uint64_t)e->nvecs * e->count * sizeof(double));
    e->rng0_len = get_u64(&r);
    if (e->rng0_len > MAX_RNG_STATE)
      r.bad = 1;
    e->rng0 = get(&r, e->rng0_len);
  }
  if (r.bad || r.pos != r.n)
    return -1;
  return 0;
}

/* The params layout of the entry against the model's. */
static int check_layout(const char *path, const unsigned char *s, size_t n, const parsed *e,
                        const sv_params *p)
{
  reader r = {s, n - CHECKSUM_LEN, e->blocks_pos, 0}; /* parse() bounded every block */
  if (e->nblocks != (uint32_t)p->nblocks)
    return sv_fail("resume state '%s' has %u parameter blocks, the model here has %d (another "
                   "network shape)", path, e->nblocks, p->nblocks);
  for (uint32_t i = 0; i < e->nblocks; i++) {
    const sv_param_block *b = &p->blocks[i];
    uint32_t len;
    const char *name = get_name(&r, &len);
    uint64_t off = get_u64(&r), size = get_u64(&r);
    int shown = len > 200 ? 200 : (int)len;
    if (!name_is(name, len, b->name))
      return sv_fail("resume state '%s': block %u is '%.*s' in the state, '%s' here", path, i,
                     shown, name, b->name);
    if (size != b->size)
      return sv_fail("resume state '%s': block '%s' has %llu values in the state, %zu here",
                     path, b->name, (unsigned long long)size, b->size);
    if (off != b->offset)
      return sv_fail("resume state '%s': block '%s' is at offset %llu in the state, %zu here",
                     path, b->name, (unsigned long long)off, b->offset);
  }
  if (e->count != p->count)
    return sv_fail("resume state '%s' has %llu parameters, the model here has %zu", path,
                   (unsigned long long)e->count, p->count);
  return 0;
}

static int check_entry(const char *path, const unsigned char *s, size_t n, const parsed *e,
                       const sv__jrec *want, const sv_params *p, const gsl_rng *rng)
{
  const char *plugin = want->plugin ? want->plugin : "";
  const char *stage = want->stage ? want->stage : "";
  if (!name_is(e->plugin, e->plugin_len, plugin))
    return sv_fail("resume state '%s' is from plugin '%.*s', this is '%s'", path,
                   (int)(e->plugin_len > 200 ? 200 : e->plugin_len), e->plugin, plugin);
  if (e->entry != ENTRY_DONE && e->entry != ENTRY_STOPPED)
    return sv_fail("resume state '%s' is corrupt (entry type %u)", path, e->entry);
  if ((e->entry == ENTRY_STOPPED) != (want->stopped != 0))
    return sv_fail("resume state '%s' is the state of a %s stage, expected a %s one", path,
                   e->entry == ENTRY_STOPPED ? "stopped" : "completed",
                   want->stopped ? "stopped" : "completed");
  if (e->ordinal != (uint32_t)want->ordinal)
    return sv_fail("resume state '%s' is of stage %u, expected stage %d", path, e->ordinal,
                   want->ordinal);
  if (!name_is(e->stage, e->stage_len, stage) || e->kind != (uint32_t)want->kind)
    return sv_fail("resume state '%s': stage %d is '%.*s' (%s) in the journal, '%s' (%s) here",
                   path, want->ordinal, (int)(e->stage_len > 200 ? 200 : e->stage_len), e->stage,
                   sv_optim_name((sv_optim_kind)e->kind), stage, sv_optim_name(want->kind));
  if (!name_is(e->rng_name, e->rng_name_len, gsl_rng_name(rng)) ||
      e->rng_len != gsl_rng_size(rng))
    return sv_fail("resume state '%s' holds a '%.*s' RNG state of %llu bytes, the run's RNG is "
                   "'%s' (%zu bytes)", path, (int)(e->rng_name_len > 200 ? 200 : e->rng_name_len),
                   e->rng_name, (unsigned long long)e->rng_len, gsl_rng_name(rng),
                   gsl_rng_size(rng));
  if (check_layout(path, s, n, e, p) < 0)
    return -1;
  if (e->entry == ENTRY_STOPPED) {
    if (e->step < 0 || e->nscalars < SV__STAGE_SCALARS ||
        (e->rng0_len != 0 && e->rng0_len != e->rng_len))
      return sv_fail("resume state '%s' is corrupt (step %d, %u scalars, %llu bytes of RNG)",
                     path, (int)e->step, e->nscalars, (unsigned long long)e->rng0_len);
    if (want->st.nscalars > 0 && (e->nscalars != (uint32_t)want->st.nscalars ||
                                  e->nvecs != (uint32_t)want->st.nvecs))
      return sv_fail("resume state '%s' holds %u scalars and %u vectors of optimizer state; "
                     "stage %s (%s) keeps %d and %d", path, e->nscalars, e->nvecs, stage,
                     sv_optim_name(want->kind), want->st.nscalars, want->st.nvecs);
  }
  return 0;
}

/* What the file is: ours, whole, intact, a version we read. */
static int check_image(const char *path, const unsigned char *s, size_t n, parsed *e)
{
  memset(e, 0, sizeof *e);
  const size_t head = MAGIC_LEN + 8;
  if (memcmp(s, MAGIC, n < MAGIC_LEN ? n : MAGIC_LEN) != 0)
    return sv_fail("resume state '%s' is not a solver resume state (bad magic)", path);
  if (n < head + CHECKSUM_LEN)
    return sv_fail("resume state '%s' is truncated (%zu bytes)", path, n);
  uint32_t version, real_size;
  memcpy(&version, s + MAGIC_LEN, 4);
  memcpy(&real_size, s + MAGIC_LEN + 4, 4);
  uint64_t stored;
  memcpy(&stored, s + n - CHECKSUM_LEN, CHECKSUM_LEN);
  if (sv__fnv1a64(s, n - CHECKSUM_LEN) != stored) {
    /* a header whose lengths run past the end says truncated */
    if (version == FORMAT_VERSION && parse(s, n, e) < 0)
      return sv_fail("resume state '%s' is truncated or corrupt (%zu bytes; checksum mismatch)",
                     path, n);
    return sv_fail("resume state '%s' is corrupt (checksum mismatch)", path);
  }
  if (version != FORMAT_VERSION)
    return sv_fail("resume state '%s' has format version %u; this build reads version %u", path,
                   version, FORMAT_VERSION);
  if (real_size != sizeof(double))
    return sv_fail("resume state '%s' stores %u-byte reals; this build uses %zu-byte doubles",
                   path, real_size, sizeof(double));
  if (parse(s, n, e) < 0)
    return sv_fail("resume state '%s' is corrupt (its lengths do not fit in %zu bytes)", path, n);
  return 0;
}

int sv__journal_read(const char *path, const sv__jrec *want, sv__jrec *got, sv_params *p,
                     gsl_rng *rng)
{
  if (!path || !*path)
    return sv_fail("resume state: empty file name");
  if (!want || !got || !p || !rng)
    return sv_fail("resume state '%s': nothing to read into", path);
  unsigned char *s = NULL;
  size_t n = 0;
  if (sv__read_file("resume state", path, &s, &n) < 0)
    return -1;
  int rc = -1;
  parsed e;
  if (check_image(path, s, n, &e) < 0)
    goto out;
  if (check_entry(path, s, n, &e, want, p, rng) < 0)
    goto out;

  /* all checked: now set things */
  double *vecs = NULL;
  void *rng0 = NULL;
  if (e.entry == ENTRY_STOPPED && e.rng0_len > 0) {
    if (!(rng0 = malloc((size_t)e.rng0_len))) {
      sv_fail("resume state '%s': out of memory", path);
      goto out;
    }
    memcpy(rng0, e.rng0, (size_t)e.rng0_len);
  }
  if (e.entry == ENTRY_STOPPED && e.nvecs > 0 && e.count > 0) {
    size_t k = (size_t)e.nvecs * (size_t)e.count * sizeof(double);
    if (!(vecs = malloc(k))) {
      free(rng0);
      sv_fail("resume state '%s': out of memory", path);
      goto out;
    }
    memcpy(vecs, e.vecs, k);
  }
  if (sv__params_freeze(p) < 0) {
    free(vecs);
    free(rng0);
    sv_fail_context("resume state '%s'", path);
    goto out;
  }
  memset(got, 0, sizeof *got);
  got->ordinal = (int)e.ordinal;
  got->kind = (sv_optim_kind)e.kind;
  got->stopped = e.entry == ENTRY_STOPPED;
  got->res = e.res;
  got->history_len = e.history_len;
  got->epochs_len = e.epochs_len;
  if (got->stopped) {
    got->st.step = e.step;
    got->st.nscalars = (int)e.nscalars;
    memcpy(got->st.scalars, e.scalars, (size_t)e.nscalars * sizeof(double));
    got->st.nvecs = e.count > 0 ? (int)e.nvecs : 0;
    got->st.vecs = vecs;
    got->rng0 = rng0;
  }
  if (e.count)
    memcpy(p->data, e.values, (size_t)e.count * sizeof(double));
  memcpy(gsl_rng_state(rng), e.rng_state, (size_t)e.rng_len);
  rc = 0;
out:
  free(s);
  return rc;
}

/* ------------------------------------------------------------------ */
/* The journal of a run                                                */
/* ------------------------------------------------------------------ */

char *sv__journal_path(const sv_run *r, int ordinal, int stopped)
{
  char file[64];
  snprintf(file, sizeof file, JOURNAL_DIR "/stage-%d.%s", ordinal, stopped ? "state" : "ckpt");
  return sv__outpath(r, file);
}

static int exists(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0;
}

int sv__journal_find(const sv_run *r, int ordinal)
{
  int found = 0;
  for (int stopped = 0; stopped < 2 && !found; stopped++) {
    char *path = sv__journal_path(r, ordinal, stopped);
    if (path && exists(path))
      found = stopped ? 2 : 1;
    free(path);
  }
  return found;
}

/* Is `name` a journal entry: stage-<digits>.ckpt or .state? Gives the
   ordinal and the kind (1 ckpt, 2 state). */
static int entry_name(const char *name, int *ordinal, int *kind)
{
  if (strncmp(name, "stage-", 6) != 0)
    return 0;
  const char *s = name + 6;
  long v = 0;
  int digits = 0;
  while (*s >= '0' && *s <= '9' && digits < 9) {
    v = v * 10 + (*s++ - '0');
    digits++;
  }
  if (!digits)
    return 0;
  if (strcmp(s, ".ckpt") == 0)
    *kind = 1;
  else if (strcmp(s, ".state") == 0)
    *kind = 2;
  else
    return 0;
  *ordinal = (int)v;
  return 1;
}

/* Rank 0's part of sv__journal_begin. */
static int begin_rank0(sv_run *r, int resuming)
{
  char *dir = sv__outpath(r, JOURNAL_DIR);
  if (!dir)
    return -1;
  DIR *d = opendir(dir);
  if (!d) {
    int e = errno;
    int rc = 0;
    if (resuming)
      rc = e == ENOENT ? sv_fail("nothing to resume in '%s': it has no journal '%s' (was it "
                                 "written by solver, with a stage that ended or stopped?)",
                                 sv_run_outdir(r), dir)
                       : sv_fail("cannot read the journal '%s': %s", dir, strerror(e));
    else if (e != ENOENT)
      rc = sv_fail("cannot read the journal '%s' of an earlier run: %s", dir, strerror(e));
    else if (mkdir(dir, 0777) < 0 && errno != EEXIST)
      rc = sv_fail("cannot create the journal '%s': %s", dir, strerror(errno));
    free(dir);
    return rc;
  }
  /* the latest entry: the highest ordinal, a .state before a .ckpt */
  int best = 0, best_kind = 0, nentries = 0, rc = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    int ord, kind;
    if (!entry_name(de->d_name, &ord, &kind))
      continue;
    nentries++;
    if (!resuming) {
      size_t len = strlen(dir) + 1 + strlen(de->d_name) + 1;
      char *f = malloc(len);
      if (!f) {
        rc = sv_fail("journal '%s': out of memory", dir);
        break;
      }
      snprintf(f, len, "%s/%s", dir, de->d_name);
      if (unlink(f) < 0 && errno != ENOENT)
        rc = sv_fail("cannot remove '%s' of an earlier run: %s", f, strerror(errno));
      free(f);
      if (rc < 0)
        break;
    } else if (ord > best || (ord == best && kind > best_kind)) {
      best = ord;
      best_kind = kind;
    }
  }
  closedir(d);
  if (rc < 0 || !resuming) {
    free(dir);
    return rc;
  }
  if (nentries == 0) {
    rc = sv_fail("nothing to resume in '%s': the journal '%s' is empty", sv_run_outdir(r), dir);
    free(dir);
    return rc;
  }
  free(dir);

  /* the latest entry says how much of the core's series to keep; its
     contents are checked when its stage comes */
  char *path = sv__journal_path(r, best, best_kind == 2);
  unsigned char *s = NULL;
  size_t n = 0;
  if (!path || sv__read_file("resume state", path, &s, &n) < 0) {
    free(path);
    return -1;
  }
  parsed e;
  if (check_image(path, s, n, &e) < 0) {
    rc = -1;
  } else if (!name_is(e.plugin, e.plugin_len,
                      r->plugin && r->plugin->name ? r->plugin->name : "")) {
    rc = sv_fail("resume state '%s' is from plugin '%.*s', this is '%s'", path,
                 (int)(e.plugin_len > 200 ? 200 : e.plugin_len), e.plugin,
                 r->plugin && r->plugin->name ? r->plugin->name : "");
  } else {
    const char *files[2] = {"loss_history.csv", "epochs.csv"};
    uint64_t lens[2] = {e.history_len, e.epochs_len};
    r->keep = calloc(2, sizeof *r->keep);
    if (!r->keep)
      rc = sv_fail("journal: out of memory");
    for (int i = 0; i < 2 && rc == 0; i++) {
      char *fp = sv__outpath(r, files[i]);
      if (!fp || !(r->keep[r->nkeep].file = strdup(files[i]))) {
        free(fp);
        rc = sv_fail("journal: out of memory");
        break;
      }
      r->keep[r->nkeep++].length = lens[i];
      /* the rows written after the entry are written again */
      struct stat st;
      if (stat(fp, &st) == 0 && (uint64_t)st.st_size > lens[i] && truncate(fp, (off_t)lens[i]) < 0)
        rc = sv_fail("cannot truncate '%s' to %llu bytes for the resumed run: %s", fp,
                     (unsigned long long)lens[i], strerror(errno));
      else if (stat(fp, &st) == 0 && (uint64_t)st.st_size < lens[i])
        rc = sv_fail("'%s' has %lld bytes, the journal '%s' says %llu: it was changed since", fp,
                     (long long)st.st_size, path, (unsigned long long)lens[i]);
      free(fp);
    }
  }
  free(s);
  free(path);
  return rc;
}

/* Every rank learns whether rank 0 failed; the others fail with a
   message that says so. */
static int agree(sv_run *r, int rc, const char *what)
{
  if (r->size == 1)
    return rc;
  double failed = rc < 0;
  if (sv_allreduce_sum(r, &failed, 1) < 0)
    return -1;
  if (failed && rc == 0)
    return sv_fail("%s failed on another rank", what);
  return failed ? -1 : 0;
}

int sv__journal_begin(sv_run *r, int resuming)
{
  if (!r)
    return sv_fail("journal: no run");
  r->journal = 1;
  r->resuming = resuming != 0;
  int rc = r->rank == 0 ? begin_rank0(r, resuming) : 0;
  return agree(r, rc, "starting the journal");
}

static void fill_rec(sv__stage *s, sv__jrec *rec, const sv_optim_result *res, int stopped)
{
  memset(rec, 0, sizeof *rec);
  rec->ordinal = s->ordinal;
  rec->kind = s->o->kind;
  rec->plugin = s->r->plugin && s->r->plugin->name ? s->r->plugin->name : "";
  rec->stage = s->name;
  rec->stopped = stopped;
  if (res)
    rec->res = *res;
  rec->history_len = sv__series_length(s->r, "loss_history.csv");
  rec->epochs_len = sv__series_length(s->r, "epochs.csv");
  if (stopped) {
    rec->st = s->saved;
    rec->rng0 = s->rng0 ? gsl_rng_state(s->rng0) : NULL;
  }
}

int sv__journal_stage_done(sv__stage *s, const sv_optim_result *res)
{
  sv_run *r = s->r;
  int rc = 0;
  if (r->rank == 0) {
    sv__jrec rec;
    fill_rec(s, &rec, res, 0);
    char *path = sv__journal_path(r, s->ordinal, 0), *state = sv__journal_path(r, s->ordinal, 1);
    rc = path && state ? sv__journal_write(path, &rec, s->p, r->rng) : -1;
    if (rc == 0 && unlink(state) < 0 && errno != ENOENT)
      rc = sv_fail("cannot remove '%s': %s", state, strerror(errno));
    free(path);
    free(state);
  }
  return agree(r, rc, "writing the stage journal");
}

int sv__journal_stage_stopped(sv__stage *s, const sv_optim_result *res)
{
  sv_run *r = s->r;
  int rc = 0;
  if (r->rank == 0) {
    sv__jrec rec;
    fill_rec(s, &rec, res, 1);
    char *path = sv__journal_path(r, s->ordinal, 1);
    rc = path ? sv__journal_write(path, &rec, s->p, r->rng) : -1;
    free(path);
  }
  return agree(r, rc, "writing the resume state");
}

/* The plugin's part of a stopped stage: on_step for steps 0..step again,
   from the RNG state the stage began with (no evaluations). */
static int replay(sv__stage *s, const sv__jrec *got)
{
  sv_run *r = s->r;
  const sv_optim_opts *o = s->o;
  if (!o->on_step)
    return 0;
  size_t rs = gsl_rng_size(r->rng);
  void *after = malloc(rs ? rs : 1);
  if (!after)
    return sv_fail("stage %s: out of memory", s->name);
  memcpy(after, gsl_rng_state(r->rng), rs);
  if (got->rng0)
    memcpy(gsl_rng_state(r->rng), got->rng0, rs);
  sv__signals_hold(1);
  for (int k = 0; k <= got->st.step; k++)
    if (o->on_step(o->on_step_ctx, k) < 0) {
      sv__signals_hold(0);
      free(after);
      return sv_fail_context("stage %s: on_step(%d), replayed to resume", s->name, k);
    }
  sv__signals_hold(0);
  s->on_step_done = got->st.step;
  double differs = memcmp(gsl_rng_state(r->rng), after, rs) != 0;
  memcpy(gsl_rng_state(r->rng), after, rs);
  free(after);
  if (r->size > 1 && sv_allreduce_sum(r, &differs, 1) < 0)
    return -1;
  if (differs)
    sv_warn(r, "stage %s: replaying on_step for steps 0-%d did not draw from the run's RNG "
               "as the run did; it goes on from the saved RNG state, but the plugin's own "
               "state may differ from the interrupted run's", s->name, got->st.step);
  return 0;
}

int sv__journal_stage_load(sv__stage *s, int stopped, sv_optim_result *res, sv__optstate *st)
{
  sv_run *r = s->r;
  sv__jrec want, got;
  memset(&want, 0, sizeof want);
  want.ordinal = s->ordinal;
  want.kind = s->o->kind;
  want.plugin = r->plugin && r->plugin->name ? r->plugin->name : "";
  want.stage = s->name;
  want.stopped = stopped;
  if (stopped && st)
    want.st = *st; /* the counts the driver keeps */
  memset(&got, 0, sizeof got);
  char *path = sv__journal_path(r, s->ordinal, stopped);
  int mine = path ? sv__journal_read(path, &want, &got, s->p, r->rng) : -1;
  free(path);
  if (agree(r, mine, "reading the stage journal") < 0 || (stopped && replay(s, &got) < 0)) {
    free(got.st.vecs);
    free(got.rng0);
    return -1;
  }
  free(got.rng0);
  *res = got.res;
  if (stopped && st)
    *st = got.st;
  else
    free(got.st.vecs);
  return 0;
}
