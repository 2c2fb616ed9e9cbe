/*
 * thread_pool.c -- n tasks run side by side: task 0 on the calling thread,
 * tasks 1..n-1 on worker threads started once and kept, so that a training
 * step split over the cores costs two wake-ups, not two thread creations.
 *
 * Used by the least-squares objective (lsq.c) to split its rows over the
 * cores of one process, as MPI splits them over ranks. Each task works on
 * its own data (its own compiled plan), so the tasks never synchronise;
 * the caller combines their results in task order after sv__pool_run
 * returns, which keeps a run with a given number of threads bit-for-bit
 * reproducible.
 *
 * Waiting is a short spin, then a sleep (see the struct).
 *
 * A failing task's message (error.c keeps one per thread) is handed to the
 * caller's thread, so sv_errmsg() after a failed sv__pool_run says what
 * went wrong wherever it happened.
 */
#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* as long as error.c's message buffer */
#define POOL_MSG_MAX 2048

struct sv__pool {
  int n; /* tasks per run; n - 1 workers */
  pthread_t *threads;
  int started; /* workers running */
  /* A run is announced by bumping `generation` and counted down in
     `pending`. Both sides spin on these for a while before they sleep on
     the condition variables: a training loop runs the pool every few
     hundred microseconds, and waking a sleeping thread (on a virtual
     machine, a halted virtual CPU) can cost as much as the work. */
  _Atomic unsigned long generation;
  _Atomic int pending; /* worker tasks of this run not finished yet */
  _Atomic int quit;
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  int sleepers;     /* workers waiting on `go` (under mu) */
  int main_waiting; /* the caller waits on `done` (under mu) */
  int (*task)(void *ctx, int i);
  void *ctx;
  int failed; /* lowest failing task + 1, 0: none (under mu) */
  char msg[POOL_MSG_MAX];
};

/* about half a millisecond of polling before sleeping */
#define POOL_SPINS 20000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

typedef struct {
  sv__pool *pool;
  int index;
} worker_arg;

static void task_failed(sv__pool *p, int i)
{
  pthread_mutex_lock(&p->mu);
  if (!p->failed || i + 1 < p->failed) {
    p->failed = i + 1;
    snprintf(p->msg, sizeof p->msg, "%s", sv_errmsg());
  }
  pthread_mutex_unlock(&p->mu);
}

/* Wait until the generation differs from `seen` (or quit); returns it. */
static unsigned long wait_for_run(sv__pool *p, unsigned long seen)
{
  for (int k = 0; k < POOL_SPINS; k++) {
    unsigned long g = atomic_load_explicit(&p->generation, memory_order_acquire);
    if (g != seen || atomic_load_explicit(&p->quit, memory_order_relaxed))
      return g;
    cpu_relax();
  }
  pthread_mutex_lock(&p->mu);
  p->sleepers++;
  while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen &&
         !atomic_load_explicit(&p->quit, memory_order_relaxed))
    pthread_cond_wait(&p->go, &p->mu);
  p->sleepers--;
  pthread_mutex_unlock(&p->mu);
  return atomic_load_explicit(&p->generation, memory_order_acquire);
}

static void *worker(void *arg)
{
  worker_arg *w = arg;
  sv__pool *p = w->pool;
  int i = w->index;
  free(w);
  unsigned long seen = 0;
  for (;;) {
    seen = wait_for_run(p, seen);
    if (atomic_load_explicit(&p->quit, memory_order_relaxed))
      break;
    /* task and ctx were stored before the generation (release) */
    if (p->task(p->ctx, i) < 0)
      task_failed(p, i);
    if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&p->mu);
      if (p->main_waiting)
        pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
  return NULL;
}

sv__pool *sv__pool_new(int n)
{
  if (n < 1)
    return sv_fail("thread pool: %d tasks (must be >= 1)", n), NULL;
  sv__pool *p = calloc(1, sizeof *p);
  if (!p)
    return sv_fail("thread pool: out of memory"), NULL;
  p->n = n;
  atomic_init(&p->generation, 0);
  atomic_init(&p->pending, 0);
  atomic_init(&p->quit, 0);
  if (pthread_mutex_init(&p->mu, NULL) != 0) {
    free(p);
    return sv_fail("thread pool: pthread_mutex_init failed"), NULL;
  }
  pthread_cond_init(&p->go, NULL);
  pthread_cond_init(&p->done, NULL);
  p->threads = calloc((size_t)n, sizeof *p->threads);
  if (!p->threads) {
    sv__pool_free(p);
    return sv_fail("thread pool: out of memory"), NULL;
  }
  for (int i = 1; i < n; i++) {
    worker_arg *w = malloc(sizeof *w);
    if (!w || (w->pool = p, w->index = i, pthread_create(&p->threads[i - 1], NULL, worker, w) != 0)) {
      free(w);
      sv__pool_free(p);
      return sv_fail("thread pool: could not start worker thread %d of %d", i, n - 1), NULL;
    }
    p->started++;
  }
  return p;
}

void sv__pool_free(sv__pool *p)
{
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  atomic_store_explicit(&p->quit, 1, memory_order_relaxed);
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->started; i++)
    pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->go);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
  free(p->threads);
  free(p);
}

int sv__pool_size(const sv__pool *p) { return p ? p->n : 1; }

int sv__pool_run(sv__pool *p, int (*task)(void *ctx, int i), void *ctx)
{
  if (!p || p->n == 1)
    return task(ctx, 0);
  p->task = task;
  p->ctx = ctx;
  p->failed = 0;
  atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
  /* the lock orders the bump against a worker going to sleep */
  pthread_mutex_lock(&p->mu);
  atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
  if (p->sleepers)
    pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);

  if (task(ctx, 0) < 0)
    task_failed(p, 0);

  int spins = 0;
  while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0 && spins++ < POOL_SPINS)
    cpu_relax();
  pthread_mutex_lock(&p->mu);
  if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
    p->main_waiting = 1;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
      pthread_cond_wait(&p->done, &p->mu);
    p->main_waiting = 0;
  }
  int failed = p->failed;
  pthread_mutex_unlock(&p->mu);
  if (failed)
    return sv_fail("%s", p->msg);
  return 0;
}
