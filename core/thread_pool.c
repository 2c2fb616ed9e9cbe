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
 * A failing task's message (error.c keeps one per thread) is handed to the
 * caller's thread, so sv_errmsg() after a failed sv__pool_run says what
 * went wrong wherever it happened.
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* as long as error.c's message buffer */
#define POOL_MSG_MAX 2048

struct sv__pool {
  int n; /* tasks per run; n - 1 workers */
  pthread_t *threads;
  int started; /* workers running */
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  unsigned long generation; /* bumped by each run: the workers' signal to start */
  int pending;              /* worker tasks of this run not finished yet */
  int quit;
  int (*task)(void *ctx, int i);
  void *ctx;
  int failed; /* lowest failing task + 1, 0: none */
  char msg[POOL_MSG_MAX];
};

typedef struct {
  sv__pool *pool;
  int index;
} worker_arg;

static void task_failed(sv__pool *p, int i)
{
  /* called with p->mu held */
  if (!p->failed || i + 1 < p->failed) {
    p->failed = i + 1;
    snprintf(p->msg, sizeof p->msg, "%s", sv_errmsg());
  }
}

static void *worker(void *arg)
{
  worker_arg *w = arg;
  sv__pool *p = w->pool;
  int i = w->index;
  free(w);
  unsigned long seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->quit && p->generation == seen)
      pthread_cond_wait(&p->go, &p->mu);
    if (p->quit)
      break;
    seen = p->generation;
    int (*task)(void *, int) = p->task;
    void *ctx = p->ctx;
    pthread_mutex_unlock(&p->mu);
    int rc = task(ctx, i);
    pthread_mutex_lock(&p->mu);
    if (rc < 0)
      task_failed(p, i);
    if (--p->pending == 0)
      pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
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
  p->quit = 1;
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
  pthread_mutex_lock(&p->mu);
  p->task = task;
  p->ctx = ctx;
  p->failed = 0;
  p->pending = p->n - 1;
  p->generation++;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);

  int rc = task(ctx, 0);

  pthread_mutex_lock(&p->mu);
  if (rc < 0)
    task_failed(p, 0);
  while (p->pending > 0)
    pthread_cond_wait(&p->done, &p->mu);
  int failed = p->failed;
  pthread_mutex_unlock(&p->mu);
  if (failed)
    return sv_fail("%s", p->msg);
  return 0;
}
