/*
 * lsq.c -- a least-squares objective from residual nodes of a graph.
 *
 *   loss = sum_k w_k * sum_rows res_k^2 / rows_global
 *
 * Loss and gradient come from one plan compiled for this rank's rows. The
 * exact Jacobian for Gauss-Newton: every row of a residual depends only on
 * the same row of the inputs, so d res_k[i] / d theta is what one backward
 * pass gives for row i alone. When every parameter enters through ops with
 * a per-row rule (dense and jet layers), one batched plan computes all rows
 * at once (jacobian_rows.c: the weight-gradient products kept per row
 * instead of summed over the batch). Otherwise a plan of the SAME graph
 * compiled for batch 1 runs once per row.
 *
 * sv_lsq_set_threads(l, T) splits this rank's rows into T shares, one plan
 * per share for the loss and gradient and one for the batched Jacobian
 * rows, run side by side by a thread pool (thread_pool.c) and summed in
 * share order: within a process the same row split MPI makes across
 * ranks. OpenBLAS runs single-threaded while there are shares (on a few
 * hundred rows its own threads cost more than they gain, and they would
 * fight the shares' threads for the cores).
 */
#include "internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One share of this rank's rows, computed by one thread. */
typedef struct {
  int row0, rows;
  sv_plan *plan;  /* loss, grad, parts of these rows */
  sv_plan *planj; /* res_k, jrows_k of these rows (NULL: no batched rows) */
} lsq_share;

struct sv_lsq {
  sv_graph *g;
  sv_params *p;
  int nres, rows, rows_global;
  sv_node **res, **part, **jac;
  sv_node *wnode, *loss, *grad;
  double *w, *last_part;
  sv_plan *plan;   /* batch = rows: loss, grad, parts */
  sv_plan *plan1;  /* batch = 1: res_k, jac_k (row by row) */
  sv_node **jrows; /* [B, n] Jacobian of res_k, all rows at once (or NULL) */
  sv_plan *planj;  /* batch = rows: res_k, jrows_k (NULL: row by row) */
  int use_planj;
  int ninputs;
  sv_node **inputs;
  const double **data; /* bound by the caller */
  double **row;        /* batch-1 copy of the current row (batched inputs) */
  sv_node **outs;      /* the plan's outputs: loss, grad, part_k */
  sv_node **outsj;     /* the batched Jacobian plan's: res_k, jrows_k */
  int nshares;         /* sv_lsq_set_threads: 0 (one thread) or >= 2 */
  lsq_share *shares;
  sv__pool *pool;
  int blas_saved;      /* OpenBLAS threads before the shares (restored) */
  double *out_r, *out_J; /* where the shares write residuals and rows */
  sv_objective obj;
};

/* Does the residual mix rows (a reduction or a contraction over the batch
   axis)? Then batch-1 plans would not give its Jacobian rows. */
static const sv_node *mixes_rows(sv_graph *g, const sv_node *res)
{
  char *need = calloc((size_t)res->id + 1, 1);
  const sv_node *bad = NULL;
  if (!need)
    return res;
  need[res->id] = 1;
  for (int i = res->id; i >= 0 && !bad; i--) {
    if (!need[i])
      continue;
    const sv_node *n = g->nodes[i];
    for (int j = 0; j < n->nin; j++)
      need[n->in[j]->id] = 1;
    if (sv__mixes_rows(n))
      bad = n;
  }
  free(need);
  return bad;
}

static void free_shares(sv_lsq *l)
{
  if (l->blas_saved > 1)
    openblas_set_num_threads(l->blas_saved);
  l->blas_saved = 0;
  sv__pool_free(l->pool);
  l->pool = NULL;
  for (int t = 0; t < l->nshares; t++) {
    sv_plan_free(l->shares[t].plan);
    sv_plan_free(l->shares[t].planj);
  }
  free(l->shares);
  l->shares = NULL;
  l->nshares = 0;
}

void sv_lsq_free(sv_lsq *l)
{
  if (!l)
    return;
  free_shares(l);
  free(l->outs);
  free(l->outsj);
  sv_plan_free(l->plan);
  sv_plan_free(l->plan1);
  sv_plan_free(l->planj);
  free(l->jrows);
  if (l->row)
    for (int i = 0; i < l->ninputs; i++)
      free(l->row[i]);
  free(l->row);
  free(l->data);
  free(l->inputs);
  free(l->res);
  free(l->part);
  free(l->jac);
  free(l->w);
  free(l->last_part);
  free(l);
}

static int lsq_loss_grad(void *ctx, const double *theta, double *loss, double *grad);
static int lsq_residuals(void *ctx, const double *theta, double *r, double *J);

sv_lsq *sv_lsq_new(sv_graph *g, sv_params *p, int nres, sv_node *const *res, int rows, int rows_global)
{
  if (!g || !p || nres < 1 || !res)
    return sv_fail("lsq: needs a graph, a params vector and at least one residual"), NULL;
  if (g->error)
    return sv_fail("lsq: the graph has an error: %s", g->error), NULL;
  if (rows < 1 || rows_global < rows)
    return sv_fail("lsq: %d rows on this rank of %d in all", rows, rows_global), NULL;
  for (int k = 0; k < nres; k++) {
    if (!res[k] || res[k]->g != g)
      return sv_fail("lsq: residual %d is not a node of this graph", k), NULL;
    if (!sv__shape_is_batched(&res[k]->shape) || sv__shape_count(&res[k]->shape, 1) != 1)
      return sv_fail("lsq: residual %d must be [B] or [B,1] (one value per row)", k), NULL;
    const sv_node *bad = mixes_rows(g, res[k]);
    if (bad)
      return sv_fail("lsq: residual %d mixes rows (node %d, %s, reduces over the batch axis); "
                     "its Jacobian rows cannot be computed row by row", k, bad->id, sv_op_name(bad)), NULL;
  }

  sv_lsq *l = calloc(1, sizeof *l);
  if (!l)
    return sv_fail("lsq: out of memory"), NULL;
  l->g = g;
  l->p = p;
  l->nres = nres;
  l->rows = rows;
  l->rows_global = rows_global;
  l->res = calloc((size_t)nres, sizeof *l->res);
  l->part = calloc((size_t)nres, sizeof *l->part);
  l->jac = calloc((size_t)nres, sizeof *l->jac);
  l->w = malloc((size_t)nres * sizeof *l->w);
  l->last_part = calloc((size_t)nres, sizeof *l->last_part);
  if (!l->res || !l->part || !l->jac || !l->w || !l->last_part)
    goto oom;
  for (int k = 0; k < nres; k++) {
    l->res[k] = res[k];
    l->w[k] = 1.0;
  }

  /* the loss, its gradient and the per-row Jacobians, as nodes */
  int wd = nres;
  l->wnode = sv_input(g, "lsq.weights", 1, &wd);
  sv_node *sum = NULL;
  for (int k = 0; k < nres; k++) {
    l->part[k] = sv_sum(sv_square(res[k]));
    sv_node *wk = sv_reshape(sv_slice(l->wnode, 0, k, 1), 0, NULL);
    sv_node *term = sv_mul(wk, l->part[k]);
    sum = sum ? sv_add(sum, term) : term;
  }
  l->loss = sv_scale(sum, 1.0 / rows_global);
  l->grad = sv_grad_params(l->loss, p);
  for (int k = 0; k < nres; k++)
    l->jac[k] = sv_grad_params(res[k], p);
  if (g->error) {
    sv_fail("lsq: %s", g->error);
    goto fail;
  }

  int nout = 2 + nres;
  sv_node **outs = malloc((size_t)(2 * nres + 2) * sizeof *outs);
  l->outs = malloc((size_t)nout * sizeof *l->outs);
  l->outsj = malloc((size_t)(2 * nres) * sizeof *l->outsj);
  if (!outs || !l->outs || !l->outsj) {
    free(outs);
    goto oom;
  }
  outs[0] = l->loss;
  outs[1] = l->grad;
  for (int k = 0; k < nres; k++)
    outs[2 + k] = l->part[k];
  memcpy(l->outs, outs, (size_t)nout * sizeof *outs);
  l->plan = sv_compile(g, nout, outs, rows);
  for (int k = 0; k < nres; k++) {
    outs[2 * k] = res[k];
    outs[2 * k + 1] = l->jac[k];
  }
  l->plan1 = l->plan ? sv_compile(g, 2 * nres, outs, 1) : NULL;
  if (!l->plan || !l->plan1) {
    free(outs);
    goto fail;
  }
  /* all rows in one pass, where the graph allows it */
  l->jrows = calloc((size_t)nres, sizeof *l->jrows);
  if (!l->jrows) {
    free(outs);
    goto oom;
  }
  int batched = 1;
  for (int k = 0; k < nres && batched; k++)
    batched = (l->jrows[k] = sv__jacobian_rows(res[k], p)) != NULL;
  if (batched) {
    for (int k = 0; k < nres; k++) {
      outs[2 * k] = res[k];
      outs[2 * k + 1] = l->jrows[k];
    }
    memcpy(l->outsj, outs, (size_t)(2 * nres) * sizeof *outs);
    l->planj = sv_compile(g, 2 * nres, outs, rows);
    if (!l->planj) {
      free(outs);
      goto fail;
    }
    l->use_planj = 1;
  }
  free(outs);

  /* every input of the graph can be bound; the weights are bound here */
  for (int i = 0; i < g->n; i++)
    l->ninputs += sv__is_input(g->nodes[i]);
  l->inputs = calloc((size_t)l->ninputs, sizeof *l->inputs);
  l->data = calloc((size_t)l->ninputs, sizeof *l->data);
  l->row = calloc((size_t)l->ninputs, sizeof *l->row);
  if (!l->inputs || !l->data || !l->row)
    goto oom;
  for (int i = 0, k = 0; i < g->n; i++)
    if (sv__is_input(g->nodes[i]))
      l->inputs[k++] = g->nodes[i];
  if (sv_lsq_bind(l, l->wnode, l->w) < 0)
    goto fail;

  l->obj.n = sv_params_count(p);
  l->obj.m = (size_t)nres * (size_t)rows;
  l->obj.loss_grad = lsq_loss_grad;
  l->obj.residuals = lsq_residuals;
  l->obj.ctx = l;
  return l;

oom:
  sv_fail("lsq: out of memory");
fail:
  sv_lsq_free(l);
  return NULL;
}

/* Input k's data into every share's plans: batched inputs from the
   share's first row on. */
static int bind_shares(sv_lsq *l, int k)
{
  sv_node *in = l->inputs[k];
  size_t rs = sv__shape_is_batched(&in->shape) ? sv__shape_count(&in->shape, 1) : 0;
  for (int t = 0; t < l->nshares; t++) {
    const double *d = l->data[k] + (size_t)l->shares[t].row0 * rs;
    if (sv_plan_bind(l->shares[t].plan, in, d) < 0 ||
        (l->shares[t].planj && sv_plan_bind(l->shares[t].planj, in, d) < 0))
      return -1;
  }
  return 0;
}

int sv_lsq_set_threads(sv_lsq *l, int threads)
{
  if (!l)
    return sv_fail("lsq threads: no objective");
  if (threads < 1)
    return sv_fail("lsq threads: %d (must be >= 1)", threads);
  free_shares(l);
  if (threads > l->rows)
    threads = l->rows; /* at least one row per share */
  if (threads == 1)
    return 0;
  l->shares = calloc((size_t)threads, sizeof *l->shares);
  if (!l->shares)
    return sv_fail("lsq threads: out of memory");
  l->nshares = threads;
  int row0 = 0;
  for (int t = 0; t < threads; t++) {
    lsq_share *sh = &l->shares[t];
    sh->row0 = row0;
    sh->rows = l->rows / threads + (t < l->rows % threads);
    row0 += sh->rows;
    sh->plan = sv_compile(l->g, 2 + l->nres, l->outs, sh->rows);
    sh->planj = sh->plan && l->planj ? sv_compile(l->g, 2 * l->nres, l->outsj, sh->rows) : NULL;
    if (!sh->plan || (l->planj && !sh->planj)) {
      free_shares(l);
      return sv_fail_context("lsq threads: compiling the plans of share %d of %d", t, threads);
    }
  }
  for (int k = 0; k < l->ninputs; k++)
    if (l->data[k] && bind_shares(l, k) < 0) {
      free_shares(l);
      return -1;
    }
  l->pool = sv__pool_new(threads);
  if (!l->pool) {
    free_shares(l);
    return -1;
  }
  /* The threads are the parallelism: OpenBLAS's own threads on top of
     them (inside the shares, or in the optimizer's products between
     runs, while the pool's workers still spin) fight them for the cores.
     Serial until the shares go (free_shares). */
  l->blas_saved = openblas_get_num_threads();
  if (l->blas_saved > 1)
    openblas_set_num_threads(1);
  return 0;
}

int sv_lsq_threads(const sv_lsq *l) { return l && l->nshares > 1 ? l->nshares : 1; }

/* Run task over the shares (BLAS is single-threaded while there are
   shares: sv_lsq_set_threads). */
static int run_shares(sv_lsq *l, int (*task)(void *ctx, int i))
{
  return sv__pool_run(l->pool, task, l);
}

static int share_loss_grad(void *ctx, int t)
{
  sv_lsq *l = ctx;
  return sv_plan_run(l->shares[t].plan);
}

int sv_lsq_bind(sv_lsq *l, sv_node *input, const double *data)
{
  if (!l || !input || !data)
    return sv_fail("lsq bind: missing argument");
  int k = 0;
  while (k < l->ninputs && l->inputs[k] != input)
    k++;
  if (k == l->ninputs)
    return sv_fail("lsq bind: '%s' is not an input of this graph", input->name ? input->name : "?");
  l->data[k] = data;
  if (sv_plan_bind(l->plan, input, data) < 0 || (l->planj && sv_plan_bind(l->planj, input, data) < 0))
    return -1;
  if (bind_shares(l, k) < 0)
    return -1;
  if (sv__shape_is_batched(&input->shape)) {
    if (!l->row[k]) {
      l->row[k] = calloc(sv__shape_count(&input->shape, 1), sizeof(double));
      if (!l->row[k])
        return sv_fail("lsq bind: out of memory");
    }
    return sv_plan_bind(l->plan1, input, l->row[k]);
  }
  return sv_plan_bind(l->plan1, input, data);
}

int sv_lsq_set_weight(sv_lsq *l, int k, double w)
{
  if (!l || k < 0 || k >= l->nres)
    return sv_fail("lsq: no residual %d", k);
  if (!(w >= 0) || !isfinite(w))
    return sv_fail("lsq: weight %g of residual %d must be finite and >= 0", w, k);
  l->w[k] = w;
  return 0;
}

const sv_objective *sv_lsq_objective(sv_lsq *l) { return l ? &l->obj : NULL; }

double sv_lsq_last_part(const sv_lsq *l, int k)
{
  return l && k >= 0 && k < l->nres ? l->last_part[k] : NAN;
}

/* The optimizer may hand us a vector other than the params' own. */
static void use_theta(sv_lsq *l, const double *theta)
{
  if (theta && theta != l->p->data)
    memcpy(l->p->data, theta, l->p->count * sizeof(double));
}

static int lsq_loss_grad(void *ctx, const double *theta, double *loss, double *grad)
{
  sv_lsq *l = ctx;
  use_theta(l, theta);
  if (l->nshares > 1) {
    /* every share's loss is its rows' part of the sum over rows_global */
    if (run_shares(l, share_loss_grad) < 0)
      return -1;
    size_t n = l->p->count;
    double f = 0;
    if (grad)
      memset(grad, 0, n * sizeof(double));
    for (int k = 0; k < l->nres; k++)
      l->last_part[k] = 0;
    for (int t = 0; t < l->nshares; t++) {
      const sv_plan *pl = l->shares[t].plan;
      f += sv_plan_value(pl, l->loss)[0];
      if (grad) {
        const double *gt = sv_plan_value(pl, l->grad);
        for (size_t j = 0; j < n; j++)
          grad[j] += gt[j];
      }
      for (int k = 0; k < l->nres; k++)
        l->last_part[k] += sv_plan_value(pl, l->part[k])[0];
    }
    for (int k = 0; k < l->nres; k++)
      l->last_part[k] /= l->rows;
    *loss = f;
    return 0;
  }
  if (sv_plan_run(l->plan) < 0)
    return -1;
  *loss = sv_plan_value(l->plan, l->loss)[0];
  if (grad)
    memcpy(grad, sv_plan_value(l->plan, l->grad), l->p->count * sizeof(double));
  for (int k = 0; k < l->nres; k++)
    l->last_part[k] = sv_plan_value(l->plan, l->part[k])[0] / l->rows;
  return 0;
}

/* All rows from the batched plan. */
/* Rows [row0, row0 + rows) of every residual from plan pl (which computed
   exactly those) into r and J (NULL: residuals only). */
static void copy_rows(const sv_lsq *l, const sv_plan *pl, int row0, int rows, double *r, double *J)
{
  size_t n = l->p->count;
  for (int k = 0; k < l->nres; k++) {
    double s = sqrt(l->w[k] / l->rows_global);
    const double *rv = sv_plan_value(pl, l->res[k]), *jv = sv_plan_value(pl, l->jrows[k]);
    for (int i = 0; i < rows; i++) {
      size_t m = (size_t)k * (size_t)l->rows + (size_t)(row0 + i);
      r[m] = s * rv[i];
      if (J) {
        const double *jr = jv + (size_t)i * n;
        double *dst = J + m * n;
        for (size_t j = 0; j < n; j++)
          dst[j] = s * jr[j];
      }
    }
  }
}

static int share_residuals(void *ctx, int t)
{
  sv_lsq *l = ctx;
  const lsq_share *sh = &l->shares[t];
  if (sv_plan_run(sh->planj) < 0)
    return -1;
  copy_rows(l, sh->planj, sh->row0, sh->rows, l->out_r, l->out_J);
  return 0;
}

static int residuals_batched(sv_lsq *l, double *r, double *J)
{
  if (l->nshares > 1) {
    l->out_r = r, l->out_J = J;
    return run_shares(l, share_residuals);
  }
  if (sv_plan_run(l->planj) < 0)
    return -1;
  copy_rows(l, l->planj, 0, l->rows, r, J);
  return 0;
}

int sv__lsq_batched_jacobian(sv_lsq *l, int on)
{
  if (!l)
    return 0;
  if (on >= 0)
    l->use_planj = on && l->planj;
  return l->use_planj;
}

static int lsq_residuals(void *ctx, const double *theta, double *r, double *J)
{
  sv_lsq *l = ctx;
  size_t n = l->p->count;
  use_theta(l, theta);
  if (l->use_planj)
    return residuals_batched(l, r, J);
  for (int i = 0; i < l->rows; i++) {
    for (int k = 0; k < l->ninputs; k++) {
      if (!l->row[k])
        continue;
      if (!l->data[k])
        return sv_fail("lsq: input '%s' is not bound (sv_lsq_bind)", l->inputs[k]->name);
      size_t rs = sv__shape_count(&l->inputs[k]->shape, 1);
      memcpy(l->row[k], l->data[k] + (size_t)i * rs, rs * sizeof(double));
    }
    if (sv_plan_run(l->plan1) < 0)
      return -1;
    for (int k = 0; k < l->nres; k++) {
      double s = sqrt(l->w[k] / l->rows_global);
      size_t m = (size_t)k * (size_t)l->rows + (size_t)i;
      r[m] = s * sv_plan_value(l->plan1, l->res[k])[0];
      if (J) {
        const double *jr = sv_plan_value(l->plan1, l->jac[k]);
        double *dst = J + m * n;
        for (size_t j = 0; j < n; j++)
          dst[j] = s * jr[j];
      }
    }
  }
  return 0;
}
