/*
 * batches.c -- shuffled minibatches, split over the ranks of a run.
 *
 * The permutation of an epoch is a pure function of (run seed, salt,
 * epoch): a Fisher-Yates shuffle of the identity by a gsl_rng_mt19937
 * seeded with a hash of the three. Nothing depends on which steps were
 * asked for before, so a resumed run, or a step asked for twice, gets the
 * same examples. Only the current epoch's permutation is kept.
 */
#include "internal.h"

#include <stdlib.h>

#include <gsl/gsl_randist.h>

struct sv_batches {
  sv_run *run;            /* for the rank partition (NULL: one rank) */
  int n, batch, drop_last;
  unsigned long seed, salt;
  long per_epoch;
  long epoch;             /* of perm; -1 before the first */
  int *perm;              /* n */
  gsl_rng *rng;
};

/* splitmix64's finaliser: a bijection that mixes every input bit into
   every output bit, so nearby seeds, salts and epochs give unrelated
   streams. */
static uint64_t mix64(uint64_t z)
{
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

sv_batches *sv_batches_new(sv_run *r, int n, int batch, int drop_last, unsigned long salt)
{
  if (n < 1) {
    sv_fail("batches: %d examples (need at least 1)", n);
    return NULL;
  }
  if (batch < 1) {
    sv_fail("batches: batch size %d (need at least 1)", batch);
    return NULL;
  }
  if (drop_last && batch > n) {
    sv_fail("batches: a batch of %d from %d examples with the partial batch dropped leaves "
            "no batch at all", batch, n);
    return NULL;
  }
  sv_batches *b = calloc(1, sizeof *b);
  if (!b || !(b->perm = malloc((size_t)n * sizeof(int))) ||
      !(b->rng = gsl_rng_alloc(gsl_rng_mt19937))) {
    sv_batches_free(b);
    sv_fail("batches of %d examples: out of memory", n);
    return NULL;
  }
  b->run = r;
  b->n = n;
  b->batch = batch;
  b->drop_last = drop_last != 0;
  b->seed = sv_run_seed(r);
  b->salt = salt;
  b->per_epoch = drop_last ? n / batch : (n + batch - 1) / batch;
  b->epoch = -1;
  return b;
}

void sv_batches_free(sv_batches *b)
{
  if (!b)
    return;
  if (b->rng)
    gsl_rng_free(b->rng);
  free(b->perm);
  free(b);
}

long sv_batches_per_epoch(const sv_batches *b)
{
  return b ? b->per_epoch : 0;
}

static void shuffle_epoch(sv_batches *b, long epoch)
{
  uint64_t h = mix64((uint64_t)b->seed);
  h = mix64(h ^ (uint64_t)b->salt);
  h = mix64(h ^ (uint64_t)epoch);
  /* mt19937 takes 32 bits of seed: fold the hash */
  gsl_rng_set(b->rng, (unsigned long)((h ^ (h >> 32)) & 0xffffffffu));
  for (int i = 0; i < b->n; i++)
    b->perm[i] = i;
  gsl_ran_shuffle(b->rng, b->perm, (size_t)b->n, sizeof(int));
  b->epoch = epoch;
}

int sv_batches_get(sv_batches *b, long step, const int **idx, int *count, int *global_count,
                   long *epoch)
{
  if (!b)
    return sv_fail("batches: none");
  if (step < 0)
    return sv_fail("batches: step %ld is negative", step);
  long e = step / b->per_epoch, k = step % b->per_epoch;
  if (e != b->epoch)
    shuffle_epoch(b, e);
  int start = (int)(k * b->batch);
  int total = b->n - start < b->batch ? b->n - start : b->batch;
  int first, mine;
  sv_run_partition(b->run, total, &first, &mine);
  if (idx)
    *idx = b->perm + start + first;
  if (count)
    *count = mine;
  if (global_count)
    *global_count = total;
  if (epoch)
    *epoch = e;
  return 0;
}
