/*
 * maml.c -- the MAML and plain-training programs, the task sampler and the
 * training loops (see maml.h).
 *
 * MAML per task (one inner SGD step):
 *     theta'  = theta - alpha grad_theta Ls(theta)          (support set)
 *     Lq(theta') on the query set;
 *     second order:  d Lq(theta'(theta)) / d theta, through the inner step
 *                    (the network's third derivatives, all derivative nodes);
 *     first order:   d Lq / d theta' at theta', the inner step's Jacobian
 *                    I - alpha Hess Ls dropped.
 * The meta-loss is the mean of Lq over the tasks of a meta-batch, minimised
 * with Adam (sv_minimize).
 */
#include "maml.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int graph_failed(ham_model *m, const char *what)
{
  const char *e = sv_graph_error(ham_model_graph(m));
  return sv_fail("hamiltonian: building %s: %s", what, e ? e : sv_errmsg());
}

/* ------------------------------------------------------------------ */
/* Programs                                                            */
/* ------------------------------------------------------------------ */

void ham_maml_prog_free(ham_maml_prog *p)
{
  if (!p)
    return;
  sv_plan_free(p->plan2);
  sv_plan_free(p->plan1);
  sv_plan_free(p->adapt);
  free(p->bxs), free(p->bys), free(p->bxq), free(p->byq);
  memset(p, 0, sizeof *p);
}

static int bind_all(sv_plan *pl, int n, sv_node *const *in, double *const *buf)
{
  for (int i = 0; i < n; i++)
    if (sv_plan_bind(pl, in[i], buf[i]) < 0)
      return -1;
  return 0;
}

int ham_maml_prog_build(ham_model *m, int N, int Ks, int Kq, int which, ham_maml_prog *p)
{
  memset(p, 0, sizeof *p);
  p->N = N, p->Ks = Ks, p->Kq = Kq;
  sv_graph *g = ham_model_graph(m);
  int nb = ham_model_nblocks(m);
  sv_node *const *B0 = ham_model_blocks(m);
  sv_node **gsb = calloc((size_t)nb, sizeof *gsb), **B1 = calloc((size_t)nb, sizeof *B1);
  sv_node **d1 = calloc((size_t)nb, sizeof *d1);
  size_t ns = (size_t)Ks * N * 4, nq = (size_t)Kq * N * 4;
  p->bxs = calloc(ns, sizeof(double));
  p->bys = calloc(ns, sizeof(double));
  p->bxq = calloc(nq, sizeof(double));
  p->byq = calloc(nq, sizeof(double));
  int rc = -1;
  if (!gsb || !B1 || !d1 || !p->bxs || !p->bys || !p->bxq || !p->byq) {
    sv_fail("hamiltonian: out of memory for the MAML program");
    goto done;
  }
  p->xs = ham_input(m, "x_support", N, Ks);
  p->ys = ham_input(m, "y_support", N, Ks);
  p->xq = ham_input(m, "x_query", N, Kq);
  p->yq = ham_input(m, "y_query", N, Kq);
  p->alpha = sv_input(g, "alpha", 1, (int[]){1});
  p->Ls = ham_loss_build(m, B0, N, Ks, p->xs, p->ys, NULL);
  if (!p->Ls)
    goto done;
  if (sv_vjp(p->Ls, NULL, nb, B0, gsb) < 0) {
    graph_failed(m, "the inner gradient");
    goto done;
  }
  for (int b = 0; b < nb; b++)
    B1[b] = sv_sub(B0[b], sv_mul(gsb[b], p->alpha));
  p->gs = ham_pack(m, gsb);
  p->Lq = ham_loss_build(m, B1, N, Kq, p->xq, p->yq, NULL);
  if (!p->Lq)
    goto done;
  if (sv_vjp(p->Lq, NULL, nb, B1, d1) < 0) {
    graph_failed(m, "the first-order meta-gradient");
    goto done;
  }
  p->meta1 = ham_pack(m, d1);
  p->meta2 = sv_grad_params(p->Lq, ham_model_params(m));
  if (!p->gs || !p->meta1 || !p->meta2) {
    graph_failed(m, "the meta-gradients");
    goto done;
  }
  sv_node *in[5] = {p->xs, p->ys, p->xq, p->yq, p->alpha};
  double *buf[5] = {p->bxs, p->bys, p->bxq, p->byq, &p->balpha};
  if (which & HAM_PROG_SECOND) {
    sv_node *o[4] = {p->Lq, p->meta2, p->meta1, p->Ls};
    if (!(p->plan2 = sv_compile(g, 4, o, 1)) || bind_all(p->plan2, 5, in, buf) < 0)
      goto done;
  }
  if (which & HAM_PROG_FIRST) {
    sv_node *o[3] = {p->Lq, p->meta1, p->Ls};
    if (!(p->plan1 = sv_compile(g, 3, o, 1)) || bind_all(p->plan1, 5, in, buf) < 0)
      goto done;
  }
  if (which & HAM_PROG_ADAPT) {
    sv_node *o[2] = {p->Ls, p->gs};
    if (!(p->adapt = sv_compile(g, 2, o, 1)) || bind_all(p->adapt, 5, in, buf) < 0)
      goto done;
  }
  rc = 0;
done:
  free(gsb), free(B1), free(d1);
  if (rc < 0) {
    sv_fail_context("hamiltonian: MAML program for %d particle(s)", N);
    ham_maml_prog_free(p);
  }
  return rc;
}

void ham_train_prog_free(ham_train_prog *p)
{
  if (!p)
    return;
  sv_plan_free(p->plan);
  free(p->bx), free(p->by);
  memset(p, 0, sizeof *p);
}

int ham_train_prog_build(ham_model *m, int N, int K, ham_train_prog *p)
{
  memset(p, 0, sizeof *p);
  p->N = N, p->K = K;
  size_t n = (size_t)K * N * 4;
  p->bx = calloc(n, sizeof(double));
  p->by = calloc(n, sizeof(double));
  if (!p->bx || !p->by) {
    ham_train_prog_free(p);
    return sv_fail("hamiltonian: out of memory for the training program");
  }
  p->x = ham_input(m, "x_train", N, K);
  p->y = ham_input(m, "y_train", N, K);
  p->L = ham_loss_build(m, ham_model_blocks(m), N, K, p->x, p->y, NULL);
  p->grad = p->L ? sv_grad_params(p->L, ham_model_params(m)) : NULL;
  if (!p->grad) {
    graph_failed(m, "the training program");
    ham_train_prog_free(p);
    return -1;
  }
  sv_node *o[2] = {p->L, p->grad};
  if (!(p->plan = sv_compile(ham_model_graph(m), 2, o, 1)) || sv_plan_bind(p->plan, p->x, p->bx) < 0 ||
      sv_plan_bind(p->plan, p->y, p->by) < 0) {
    ham_train_prog_free(p);
    return sv_fail_context("hamiltonian: training program for %d particle(s)", N);
  }
  return 0;
}

void ham_task_fill(const ham_dataset *d, int traj, int K, const int *idx, double *x, double *y)
{
  size_t dim = (size_t)d->dim;
  for (int k = 0; k < K; k++) {
    memcpy(x + (size_t)k * dim, ham_state(d, traj, idx[k]), dim * sizeof(double));
    if (y)
      ham_labels_to_grad(d->nodes, ham_deriv(d, traj, idx[k]), y + (size_t)k * dim);
  }
}

/* ------------------------------------------------------------------ */
/* The trainer                                                         */
/* ------------------------------------------------------------------ */

struct ham_trainer {
  sv_run *r;
  ham_model *m;
  ham_pool pool;
  ham_train_opts o;
  size_t n;
  gsl_rng *rng;
  ham_task *tasks;
  int *idx, *perm, npoints;
  ham_maml_prog mp[HAM_MAX_NODES + 1];
  ham_train_prog tp[HAM_MAX_NODES + 1];
  double *a2, *a1, *red;   /* accumulators (n each), reduction buffer (2n + 1) */
  int evals, next_step;
  /* gap statistics */
  int gap_count;
  double gap_cos_sum, gap_rel_sum, gap_cos_min, gap_rel_max;
  int failed_nonfinite;
};

void ham_trainer_free(ham_trainer *t)
{
  if (!t)
    return;
  for (int N = 0; N <= HAM_MAX_NODES; N++) {
    ham_maml_prog_free(&t->mp[N]);
    ham_train_prog_free(&t->tp[N]);
  }
  gsl_rng_free(t->rng);
  free(t->tasks), free(t->idx), free(t->perm);
  free(t->a2), free(t->a1), free(t->red);
  free(t);
}

ham_trainer *ham_trainer_new(sv_run *r, ham_model *m, const ham_pool *pool, const ham_train_opts *o)
{
  if (!m || !pool || !o || pool->nsys < 1 || o->tasks < 1 || o->K < 1)
    return sv_fail("hamiltonian: trainer: no systems, tasks or points"), NULL;
  ham_trainer *t = calloc(1, sizeof *t);
  if (!t)
    return sv_fail("hamiltonian: out of memory"), NULL;
  t->r = r;
  t->m = m;
  t->pool = *pool;
  t->o = *o;
  t->n = sv_params_count(ham_model_params(m));
  int np = 0;
  for (int s = 0; s < pool->nsys; s++) {
    const ham_dataset *d = pool->data[pool->sys[s]];
    if (!d || pool->count[pool->sys[s]] < 1)
      return ham_trainer_free(t), sv_fail("hamiltonian: trainer: system %s has no trajectories",
                                          ham_system(pool->sys[s])->name), NULL;
    if (d->npoints < 2 * o->K)
      return ham_trainer_free(t), sv_fail("hamiltonian: %d points per task (support %d + query %d) "
                                          "but trajectories have %d", 2 * o->K, o->K, o->K,
                                          d->npoints), NULL;
    if (d->npoints > np)
      np = d->npoints;
  }
  t->npoints = np;
  t->rng = gsl_rng_alloc(gsl_rng_mt19937);
  t->tasks = calloc((size_t)o->tasks, sizeof *t->tasks);
  t->idx = calloc((size_t)o->tasks * 2 * (size_t)o->K, sizeof *t->idx);
  t->perm = calloc((size_t)np, sizeof *t->perm);
  t->a2 = calloc(t->n, sizeof(double));
  t->a1 = calloc(t->n, sizeof(double));
  t->red = calloc(2 * t->n + 1, sizeof(double));
  if (!t->rng || !t->tasks || !t->idx || !t->perm || !t->a2 || !t->a1 || !t->red)
    return ham_trainer_free(t), sv_fail("hamiltonian: out of memory for the trainer"), NULL;
  gsl_rng_set(t->rng, o->seed);
  for (int i = 0; i < o->tasks; i++)
    t->tasks[i].idx = t->idx + (size_t)i * 2 * (size_t)o->K;
  t->gap_cos_min = 1;
  /* programs for every particle count present */
  for (int s = 0; s < pool->nsys; s++) {
    int N = ham_system(pool->sys[s])->nodes;
    int rc = 0;
    if (o->kind == HAM_TRAIN_META && !t->mp[N].plan1 && !t->mp[N].plan2) {
      int which = o->order == 2 ? HAM_PROG_SECOND : HAM_PROG_FIRST | HAM_PROG_SECOND;
      rc = ham_maml_prog_build(m, N, o->K, o->K, which, &t->mp[N]);
    } else if (o->kind == HAM_TRAIN_PLAIN && !t->tp[N].plan) {
      rc = ham_train_prog_build(m, N, 2 * o->K, &t->tp[N]);
    }
    if (rc < 0)
      return ham_trainer_free(t), NULL;
  }
  for (int N = 0; N <= HAM_MAX_NODES; N++)
    t->mp[N].balpha = o->alpha;
  return t;
}

ham_task *ham_trainer_tasks(ham_trainer *t) { return t->tasks; }

int ham_trainer_set_task(ham_trainer *t, int i, int sys, int traj, const int *idx)
{
  if (i < 0 || i >= t->o.tasks || sys < 0 || sys >= HAM_NSYSTEMS || !t->pool.data[sys] ||
      traj < 0 || traj >= t->pool.data[sys]->ntraj)
    return sv_fail("hamiltonian: set_task: bad task %d (system %d, trajectory %d)", i, sys, traj);
  int N = ham_system(sys)->nodes;
  if ((t->o.kind == HAM_TRAIN_META && !t->mp[N].plan2 && !t->mp[N].plan1) ||
      (t->o.kind == HAM_TRAIN_PLAIN && !t->tp[N].plan))
    return sv_fail("hamiltonian: set_task: no program for %d particle(s)", N);
  t->tasks[i].sys = sys;
  t->tasks[i].traj = traj;
  memcpy(t->tasks[i].idx, idx, 2 * (size_t)t->o.K * sizeof *idx);
  return 0;
}

int ham_trainer_draw(ham_trainer *t) { return ham_trainer_draw_step(t, t->next_step++); }

int ham_trainer_draw_step(ham_trainer *t, int step)
{
  const ham_pool *p = &t->pool;
  /* the batch of a step depends on (seed, step) alone, so that a stage
     resumed after an interrupt (sv_minimize journals it) sees the batches
     it would have seen */
  gsl_rng_set(t->rng, t->o.seed + 1000003UL * (unsigned long)(step + 1));
  int K2 = 2 * t->o.K;
  for (int i = 0; i < t->o.tasks; i++) {
    ham_task *k = &t->tasks[i];
    k->sys = p->sys[gsl_rng_uniform_int(t->rng, (unsigned long)p->nsys)];
    k->traj = p->first[k->sys] + (int)gsl_rng_uniform_int(t->rng, (unsigned long)p->count[k->sys]);
    int np = p->data[k->sys]->npoints;
    for (int j = 0; j < np; j++)
      t->perm[j] = j;
    /* partial Fisher-Yates: 2K distinct points */
    for (int j = 0; j < K2; j++) {
      int r = j + (int)gsl_rng_uniform_int(t->rng, (unsigned long)(np - j));
      int tmp = t->perm[j];
      t->perm[j] = t->perm[r];
      t->perm[r] = tmp;
      k->idx[j] = t->perm[j];
    }
  }
  return 0;
}

static int on_step(void *ctx, int step) { return ham_trainer_draw_step(ctx, step); }

static void axpy(size_t n, double a, const double *x, double *y)
{
  for (size_t i = 0; i < n; i++)
    y[i] += a * x[i];
}

/* Run task i's program; add w * its gradients into a2 (second order or
   plain) and a1 (first order, when want1); returns its loss. */
static int run_task(ham_trainer *t, int i, int want2, int want1, double w, double *loss)
{
  const ham_task *k = &t->tasks[i];
  const ham_dataset *d = t->pool.data[k->sys];
  int N = d->nodes, K = t->o.K;
  if (t->o.kind == HAM_TRAIN_PLAIN) {
    ham_train_prog *p = &t->tp[N];
    ham_task_fill(d, k->traj, 2 * K, k->idx, p->bx, p->by);
    if (sv_plan_run(p->plan) < 0)
      return -1;
    *loss = sv_plan_value(p->plan, p->L)[0];
    axpy(t->n, w, sv_plan_value(p->plan, p->grad), t->a2);
    return 0;
  }
  ham_maml_prog *p = &t->mp[N];
  ham_task_fill(d, k->traj, K, k->idx, p->bxs, p->bys);
  ham_task_fill(d, k->traj, K, k->idx + K, p->bxq, p->byq);
  sv_plan *pl = want2 ? p->plan2 : p->plan1;
  if (sv_plan_run(pl) < 0)
    return -1;
  *loss = sv_plan_value(pl, p->Lq)[0];
  if (want2)
    axpy(t->n, w, sv_plan_value(pl, p->meta2), t->a2);
  if (want1)
    axpy(t->n, w, sv_plan_value(pl, p->meta1), want2 ? t->a1 : t->a2);
  return 0;
}

/* This rank's share: the tasks [first, first + count) of the batch. */
static int share(ham_trainer *t, int want2, int want1, double *loss)
{
  int first, count;
  sv_run_partition(t->r, t->o.tasks, &first, &count);
  memset(t->a2, 0, t->n * sizeof(double));
  memset(t->a1, 0, t->n * sizeof(double));
  double w = 1.0 / t->o.tasks, sum = 0;
  for (int i = first; i < first + count; i++) {
    double li;
    if (run_task(t, i, want2, want1, w, &li) < 0)
      return sv_fail_context("hamiltonian: task %d (%s, trajectory %d)", i,
                             ham_system(t->tasks[i].sys)->name, t->tasks[i].traj);
    sum += li;
  }
  *loss = sum * w;
  return 0;
}

static double dot(size_t n, const double *a, const double *b)
{
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* The gap between the full (all ranks) second- and first-order gradients. */
static int record_gap(ham_trainer *t)
{
  size_t n = t->n;
  const double *g2 = t->a2, *g1 = t->a1;
  if (sv_run_size(t->r) > 1) {
    memcpy(t->red, t->a2, n * sizeof(double));
    memcpy(t->red + n, t->a1, n * sizeof(double));
    if (sv_allreduce_sum(t->r, t->red, 2 * n) < 0)
      return -1;
    g2 = t->red, g1 = t->red + n;
  }
  double n2 = sqrt(dot(n, g2, g2)), n1 = sqrt(dot(n, g1, g1)), dd = 0;
  for (size_t i = 0; i < n; i++)
    dd += (g2[i] - g1[i]) * (g2[i] - g1[i]);
  if (!(n2 > 0) || !(n1 > 0))
    return 0;
  double c = dot(n, g2, g1) / (n2 * n1), rel = sqrt(dd) / n2;
  t->gap_count++;
  t->gap_cos_sum += c;
  t->gap_rel_sum += rel;
  if (c < t->gap_cos_min)
    t->gap_cos_min = c;
  if (rel > t->gap_rel_max)
    t->gap_rel_max = rel;
  return 0;
}

int ham_trainer_loss_grad(void *ctx, const double *theta, double *loss, double *grad)
{
  ham_trainer *t = ctx;
  (void)theta; /* the plans read the params vector, which is theta */
  int meta = t->o.kind == HAM_TRAIN_META;
  int second = meta && t->o.order == 2;
  /* first-order runs measure the gap every gap_every evaluations */
  int gap = meta && (second || (t->o.gap_every > 0 && t->evals % t->o.gap_every == 0));
  t->evals++;
  if (share(t, second || gap, !second || gap, loss) < 0)
    return -1;
  if (gap && record_gap(t) < 0)
    return -1;
  if (grad)
    memcpy(grad, meta && !second ? (gap ? t->a1 : t->a2) : t->a2, t->n * sizeof(double));
  return 0;
}

int ham_trainer_both_gradients(ham_trainer *t, double *g2, double *g1, double *loss)
{
  if (t->o.kind != HAM_TRAIN_META)
    return sv_fail("hamiltonian: both_gradients needs a MAML trainer");
  double l;
  if (share(t, 1, 1, &l) < 0)
    return -1;
  size_t n = t->n;
  memcpy(t->red, t->a2, n * sizeof(double));
  memcpy(t->red + n, t->a1, n * sizeof(double));
  t->red[2 * n] = l;
  if (sv_run_size(t->r) > 1 && sv_allreduce_sum(t->r, t->red, 2 * n + 1) < 0)
    return -1;
  memcpy(g2, t->red, n * sizeof(double));
  memcpy(g1, t->red + n, n * sizeof(double));
  if (loss)
    *loss = t->red[2 * n];
  return 0;
}

int ham_train(ham_trainer *t, ham_train_result *res)
{
  memset(res, 0, sizeof *res);
  sv_objective obj = {t->n, 0, ham_trainer_loss_grad, NULL, t};
  sv_optim_opts o;
  sv_optim_defaults(&o, SV_OPTIM_ADAM);
  o.stage = t->o.stage;
  o.max_steps = t->o.steps;
  o.lr = t->o.lr;
  o.on_step = on_step;
  o.on_step_ctx = t;
  sv_optim_result r;
  if (sv_minimize(t->r, ham_model_params(t->m), &obj, &o, &r) < 0)
    return -1;
  res->seconds = r.seconds;
  res->loss = r.loss;
  res->steps = r.steps;
  res->gap_count = t->gap_count;
  if (t->gap_count > 0) {
    res->gap_cos_mean = t->gap_cos_sum / t->gap_count;
    res->gap_rel_mean = t->gap_rel_sum / t->gap_count;
    res->gap_cos_min = t->gap_cos_min;
    res->gap_rel_max = t->gap_rel_max;
  }
  return 0;
}
