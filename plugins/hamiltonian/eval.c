/*
 * eval.c -- adaptation on the held-out system and its metrics (eval.h).
 */
#include "eval.h"

#include <gsl/gsl_blas.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const start_names[HAM_NSTARTS] = {"meta", "pretrain", "random", "pretrain_own"};

const char *ham_start_name(int s) { return s >= 0 && s < HAM_NSTARTS ? start_names[s] : "?"; }

/* ------------------------------------------------------------------ */
/* Programs                                                            */
/* ------------------------------------------------------------------ */

void ham_eval_prog_free(ham_eval_prog *p)
{
  if (!p)
    return;
  sv_plan_free(p->plan);
  free(p->bx);
  memset(p, 0, sizeof *p);
}

int ham_eval_prog_build(ham_model *m, int N, int K, int reps, ham_eval_prog *p)
{
  memset(p, 0, sizeof *p);
  p->N = N, p->K = K;
  p->bx = calloc((size_t)K * N * 4, sizeof(double));
  if (!p->bx)
    return sv_fail("hamiltonian: out of memory for the evaluation program");
  p->x = ham_input(m, "x_eval", N, K);
  if (ham_net_build(m, ham_model_blocks(m), N, K, p->x, 1, &p->net) < 0) {
    ham_eval_prog_free(p);
    return -1;
  }
  sv_node *out[2 + HAM_MAX_REPS];
  int n = 0;
  out[n++] = p->net.grad;
  out[n++] = p->net.Hpoint;
  for (int i = 0; reps && i < p->net.nrep; i++)
    out[n++] = p->net.rep[i];
  if (!reps)
    p->net.nrep = 0;
  if (!(p->plan = sv_compile(ham_model_graph(m), n, out, 1)) || sv_plan_bind(p->plan, p->x, p->bx) < 0) {
    ham_eval_prog_free(p);
    return sv_fail_context("hamiltonian: evaluation program for %d particle(s), %d states", N, K);
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Rollouts                                                            */
/* ------------------------------------------------------------------ */

static int field_at(ham_eval_prog *one, const double *x, double *f)
{
  int dim = 4 * one->N;
  memcpy(one->bx, x, (size_t)dim * sizeof *x);
  if (sv_plan_run(one->plan) < 0)
    return -1;
  ham_grad_to_field(one->N, sv_plan_value(one->plan, one->net.grad), f);
  return 0;
}

#define ROLLOUT_BOUND 1e3

int ham_rollout(ham_eval_prog *one, const double *x0, int npoints, double tmax, int substeps,
                double *xs, int *diverged)
{
  int dim = 4 * one->N;
  double x[HAM_MAX_STATE], k1[HAM_MAX_STATE], k2[HAM_MAX_STATE], k3[HAM_MAX_STATE],
      k4[HAM_MAX_STATE], y[HAM_MAX_STATE];
  double h = tmax / (npoints - 1) / substeps;
  *diverged = 0;
  memcpy(x, x0, (size_t)dim * sizeof *x);
  memcpy(xs, x, (size_t)dim * sizeof *x);
  for (int k = 1; k < npoints; k++) {
    for (int s = 0; s < substeps && !*diverged; s++) {
      if (field_at(one, x, k1) < 0)
        return -1;
      for (int i = 0; i < dim; i++)
        y[i] = x[i] + 0.5 * h * k1[i];
      if (field_at(one, y, k2) < 0)
        return -1;
      for (int i = 0; i < dim; i++)
        y[i] = x[i] + 0.5 * h * k2[i];
      if (field_at(one, y, k3) < 0)
        return -1;
      for (int i = 0; i < dim; i++)
        y[i] = x[i] + h * k3[i];
      if (field_at(one, y, k4) < 0)
        return -1;
      int ok = 1;
      for (int i = 0; i < dim; i++) {
        y[i] = x[i] + h / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
        ok &= isfinite(y[i]) && fabs(y[i]) < ROLLOUT_BOUND;
      }
      if (ok)
        memcpy(x, y, (size_t)dim * sizeof *x);
      else
        *diverged = 1;
    }
    memcpy(xs + (size_t)k * (size_t)dim, x, (size_t)dim * sizeof *x);
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* CKA and statistics                                                  */
/* ------------------------------------------------------------------ */

static void centre(int n, int d, const double *X, double *Xc)
{
  for (int j = 0; j < d; j++) {
    double mu = 0;
    for (int i = 0; i < n; i++)
      mu += X[(size_t)i * d + j];
    mu /= n;
    for (int i = 0; i < n; i++)
      Xc[(size_t)i * d + j] = X[(size_t)i * d + j] - mu;
  }
}

static double frob2(int r, int c, const double *A)
{
  double s = 0;
  for (size_t i = 0; i < (size_t)r * c; i++)
    s += A[i] * A[i];
  return s;
}

double ham_linear_cka(int n, int dx, const double *X, int dy, const double *Y)
{
  double *Xc = malloc((size_t)n * dx * sizeof *Xc), *Yc = malloc((size_t)n * dy * sizeof *Yc);
  int dm = dx > dy ? dx : dy;
  double *G = malloc((size_t)dm * dm * sizeof *G);
  double cka = NAN;
  if (Xc && Yc && G) {
    centre(n, dx, X, Xc);
    centre(n, dy, Y, Yc);
    gsl_matrix_const_view xv = gsl_matrix_const_view_array(Xc, (size_t)n, (size_t)dx);
    gsl_matrix_const_view yv = gsl_matrix_const_view_array(Yc, (size_t)n, (size_t)dy);
    gsl_matrix_view g1 = gsl_matrix_view_array(G, (size_t)dy, (size_t)dx);
    gsl_blas_dgemm(CblasTrans, CblasNoTrans, 1.0, &yv.matrix, &xv.matrix, 0.0, &g1.matrix);
    double yx = frob2(dy, dx, G);
    gsl_matrix_view g2 = gsl_matrix_view_array(G, (size_t)dx, (size_t)dx);
    gsl_blas_dgemm(CblasTrans, CblasNoTrans, 1.0, &xv.matrix, &xv.matrix, 0.0, &g2.matrix);
    double xx = sqrt(frob2(dx, dx, G));
    gsl_matrix_view g3 = gsl_matrix_view_array(G, (size_t)dy, (size_t)dy);
    gsl_blas_dgemm(CblasTrans, CblasNoTrans, 1.0, &yv.matrix, &yv.matrix, 0.0, &g3.matrix);
    double yy = sqrt(frob2(dy, dy, G));
    if (xx > 0 && yy > 0)
      cka = yx / (xx * yy);
  }
  free(Xc), free(Yc), free(G);
  return cka;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double ham_median(int n, const double *v)
{
  double *w = malloc((size_t)(n > 0 ? n : 1) * sizeof *w);
  int m = 0;
  if (!w)
    return NAN;
  for (int i = 0; i < n; i++)
    if (!isnan(v[i]))
      w[m++] = v[i];
  double r = NAN;
  if (m > 0) {
    qsort(w, (size_t)m, sizeof *w, cmp_double);
    r = m % 2 ? w[m / 2] : 0.5 * (w[m / 2 - 1] + w[m / 2]);
  }
  free(w);
  return r;
}

double ham_mean(int n, const double *v)
{
  double s = 0;
  int m = 0;
  for (int i = 0; i < n; i++)
    if (!isnan(v[i]))
      s += v[i], m++;
  return m ? s / m : NAN;
}

/* ------------------------------------------------------------------ */
/* Adaptation and metrics                                              */
/* ------------------------------------------------------------------ */

void ham_eval_result_free(ham_eval_result *res)
{
  if (!res)
    return;
  free(res->dmse), free(res->traj), free(res->energy), free(res->cka), free(res->diverged);
  free(res->ex_true), free(res->ex_roll), free(res->ex_H_roll), free(res->ex_Hlearn_true);
  memset(res, 0, sizeof *res);
}

/* What one rank computes for one trajectory, as one row of doubles. */
typedef struct {
  int nstarts, steps, nat, nrep;
  size_t len;
} row_layout;

static size_t row_dmse(const row_layout *L, int s, int S) { return (size_t)s * (L->steps + 1) + S; }
static size_t row_at(const row_layout *L, int which, int s, int a)
{
  size_t base = (size_t)L->nstarts * (L->steps + 1);
  return base + (((size_t)which * L->nstarts + s) * L->nat + a);
}
static size_t row_cka(const row_layout *L, int s, int a, int l)
{
  size_t base = (size_t)L->nstarts * (L->steps + 1) + 3 * (size_t)L->nstarts * L->nat;
  return base + ((size_t)s * L->nat + a) * L->nrep + l;
}

int ham_evaluate(sv_run *r, ham_model *m, const ham_eval_opts *o, ham_eval_result *res)
{
  memset(res, 0, sizeof *res);
  const ham_dataset *d = o->data;
  int N = d->nodes, dim = d->dim, np = d->npoints, K = o->K, nq = np - K;
  if (K < 1 || nq < 1)
    return sv_fail("hamiltonian: %d support points leave no query points of %d", K, np);
  if (o->test_first < 0 || o->ntest < 1 || o->test_first + o->ntest > d->ntraj)
    return sv_fail("hamiltonian: bad test trajectories [%d, %d) of %d", o->test_first,
                   o->test_first + o->ntest, d->ntraj);
  sv_params *P = ham_model_params(m);
  size_t n = sv_params_count(P);
  double *theta = sv_params_data(P);

  /* evaluation steps: 0, 1, 10, 50 and the last, those <= steps */
  static const int wanted[] = {0, 1, 10, 50};
  res->nat = 0;
  for (size_t i = 0; i < sizeof wanted / sizeof *wanted; i++)
    if (wanted[i] <= o->steps)
      res->at[res->nat++] = wanted[i];
  if (res->at[res->nat - 1] != o->steps)
    res->at[res->nat++] = o->steps;
  res->ntest = o->ntest;
  res->nstarts = o->nstarts;
  res->steps = o->steps;

  ham_maml_prog ad;
  ham_eval_prog full, one;
  memset(&full, 0, sizeof full);
  memset(&one, 0, sizeof one);
  if (ham_maml_prog_build(m, N, K, K, HAM_PROG_ADAPT, &ad) < 0)
    return -1;
  ad.balpha = 0;
  double *save = malloc(n * sizeof *save), *tgt_rep = NULL, *probe = NULL, *roll = malloc((size_t)np * dim * sizeof *roll);
  int *perm = malloc((size_t)np * sizeof *perm), rc = -1;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  double *rows = NULL, *all = NULL;
  if (!save || !roll || !perm || !rng) {
    sv_fail("hamiltonian: out of memory for the evaluation");
    goto done;
  }
  memcpy(save, theta, n * sizeof *save);
  if (ham_eval_prog_build(m, N, np, 1, &full) < 0 || ham_eval_prog_build(m, N, 1, 0, &one) < 0)
    goto done;
  res->nrep = full.net.nrep;
  for (int l = 0; l < res->nrep; l++)
    res->rep_name[l] = full.net.rep_name[l];
  /* representation sizes */
  size_t rep_off[HAM_MAX_REPS + 1];
  int rep_rows[HAM_MAX_REPS], width = ham_model_arch(m)->width;
  rep_off[0] = 0;
  for (int l = 0; l < res->nrep; l++) {
    rep_rows[l] = (int)(sv_plan_size(full.plan, full.net.rep[l]) / (size_t)width);
    rep_off[l + 1] = rep_off[l] + sv_plan_size(full.plan, full.net.rep[l]);
  }
  if (o->target && (!(tgt_rep = malloc(rep_off[res->nrep] * sizeof *tgt_rep)) ||
                    !(probe = malloc((size_t)np * dim * sizeof *probe)))) {
    sv_fail("hamiltonian: out of memory for the representations");
    goto done;
  }
  if (tgt_rep) {
    /* the probe states: np states spread over all test trajectories, the
       same for every start and step; the target model's representations of
       them once */
    for (int p = 0; p < np; p++) {
      int j = o->test_first + p % o->ntest, k = (37 * p + p / o->ntest) % np;
      memcpy(probe + (size_t)p * dim, ham_state(d, j, k), (size_t)dim * sizeof(double));
    }
    memcpy(full.bx, probe, (size_t)np * dim * sizeof(double));
    memcpy(theta, o->target, n * sizeof *theta);
    if (sv_plan_run(full.plan) < 0)
      goto done;
    for (int l = 0; l < res->nrep; l++)
      memcpy(tgt_rep + rep_off[l], sv_plan_value(full.plan, full.net.rep[l]),
             (rep_off[l + 1] - rep_off[l]) * sizeof(double));
  }

  row_layout L = {o->nstarts, o->steps, res->nat, res->nrep, 0};
  L.len = row_cka(&L, o->nstarts, 0, 0);
  int first, count;
  sv_run_partition(r, o->ntest, &first, &count);
  rows = calloc((size_t)(count > 0 ? count : 1) * L.len, sizeof *rows);
  all = calloc((size_t)o->ntest * L.len, sizeof *all);
  res->ex_traj = o->test_first;
  res->ex_dim = dim;
  res->ex_npoints = np;
  size_t exn = (size_t)np * dim;
  res->ex_true = calloc(exn, sizeof(double));
  res->ex_roll = calloc(exn * o->nstarts, sizeof(double));
  res->ex_H_roll = calloc((size_t)np * o->nstarts, sizeof(double));
  res->ex_Hlearn_true = calloc((size_t)np * o->nstarts, sizeof(double));
  if (!rows || !all || !res->ex_true || !res->ex_roll || !res->ex_H_roll || !res->ex_Hlearn_true) {
    sv_fail("hamiltonian: out of memory for the results");
    goto done;
  }
  if (sv_run_rank(r) == 0)
    sv_progress_begin(r, "adapt", (long)count * o->nstarts);

  for (int c = 0; c < count; c++) {
    int jt = first + c, traj = o->test_first + jt;
    double *row = rows + (size_t)c * L.len;
    /* the support set of this trajectory: the same for every start */
    gsl_rng_set(rng, o->seed + 7919UL * (unsigned long)jt);
    for (int i = 0; i < np; i++)
      perm[i] = i;
    for (int i = 0; i < np - 1; i++) {
      int k = i + (int)gsl_rng_uniform_int(rng, (unsigned long)(np - i));
      int t = perm[i];
      perm[i] = perm[k];
      perm[k] = t;
    }
    ham_task_fill(d, traj, K, perm, ad.bxs, ad.bys);
    memcpy(full.bx, ham_state(d, traj, 0), (size_t)np * dim * sizeof(double));
    double E0 = ham_energy(d->system, ham_state(d, traj, 0));
    for (int s = 0; s < o->nstarts; s++) {
      memcpy(theta, o->theta[s], n * sizeof *theta);
      int a = 0;
      for (int S = 0; S <= o->steps; S++) {
        if (sv_plan_run(full.plan) < 0)
          goto done;
        const double *gq = sv_plan_value(full.plan, full.net.grad);
        double se = 0;
        for (int i = K; i < np; i++) {
          double f[HAM_MAX_STATE];
          const double *y = ham_deriv(d, traj, perm[i]);
          ham_grad_to_field(N, gq + (size_t)perm[i] * dim, f);
          for (int k = 0; k < dim; k++)
            se += (f[k] - y[k]) * (f[k] - y[k]);
        }
        row[row_dmse(&L, s, S)] = se / ((double)nq * dim);
        if (a < res->nat && res->at[a] == S) {
          int div;
          if (ham_rollout(&one, ham_state(d, traj, 0), np, d->tmax, o->substeps, roll, &div) < 0)
            goto done;
          double num = 0, den = 0, ee = 0;
          for (int k = 0; k < np; k++) {
            const double *xt = ham_state(d, traj, k), *xr = roll + (size_t)k * dim;
            for (int i = 0; i < dim; i++) {
              num += (xr[i] - xt[i]) * (xr[i] - xt[i]);
              den += xt[i] * xt[i];
            }
            ee += fabs(ham_energy(d->system, xr) - E0) / fabs(E0);
          }
          /* a rollout that blew up has failed: infinite errors (held at its
             last state it would otherwise score a small energy error) */
          row[row_at(&L, 0, s, a)] = div ? INFINITY : sqrt(num / den);
          row[row_at(&L, 1, s, a)] = div ? INFINITY : ee / np;
          row[row_at(&L, 2, s, a)] = div;
          if (jt == 0 && S == o->steps) {
            /* the example: rollout, true H along it, learned H along the truth */
            memcpy(res->ex_roll + (size_t)s * exn, roll, exn * sizeof(double));
            const double *Hl = sv_plan_value(full.plan, full.net.Hpoint);
            for (int k = 0; k < np; k++) {
              res->ex_H_roll[(size_t)s * np + k] = ham_energy(d->system, roll + (size_t)k * dim);
              res->ex_Hlearn_true[(size_t)s * np + k] = Hl[k];
            }
          }
          /* CKA against the target model on the probe states */
          for (int l = 0; l < res->nrep; l++)
            row[row_cka(&L, s, a, l)] = NAN;
          if (tgt_rep) {
            memcpy(full.bx, probe, (size_t)np * dim * sizeof(double));
            if (sv_plan_run(full.plan) < 0)
              goto done;
            for (int l = 0; l < res->nrep; l++)
              row[row_cka(&L, s, a, l)] =
                  ham_linear_cka(rep_rows[l], width, sv_plan_value(full.plan, full.net.rep[l]), width,
                                 tgt_rep + rep_off[l]);
            memcpy(full.bx, ham_state(d, traj, 0), (size_t)np * dim * sizeof(double));
          }
          a++;
        }
        if (S == o->steps)
          break;
        /* one SGD step on the support loss */
        if (sv_plan_run(ad.adapt) < 0)
          goto done;
        const double *g = sv_plan_value(ad.adapt, ad.gs);
        for (size_t i = 0; i < n; i++)
          theta[i] -= o->lr[s] * g[i];
      }
      if (sv_run_rank(r) == 0)
        sv_progress_update(r, (long)c * o->nstarts + s + 1, row[row_dmse(&L, s, o->steps)]);
    }
  }
  if (sv_run_rank(r) == 0)
    sv_progress_end(r);

  /* gather the rows in trajectory order, and the example from its rank */
  if (sv_allgather(r, rows, count * (int)L.len, all) < 0)
    goto done;
  if (sv_run_size(r) > 1) {
    /* the example lives on the rank holding test trajectory 0 (rank 0) */
    size_t exl = exn * o->nstarts + 2 * (size_t)np * o->nstarts;
    double *ex = calloc(exl, sizeof *ex);
    if (!ex) {
      sv_fail("hamiltonian: out of memory");
      goto done;
    }
    if (first == 0 && count > 0) {
      memcpy(ex, res->ex_roll, exn * o->nstarts * sizeof(double));
      memcpy(ex + exn * o->nstarts, res->ex_H_roll, (size_t)np * o->nstarts * sizeof(double));
      memcpy(ex + exn * o->nstarts + (size_t)np * o->nstarts, res->ex_Hlearn_true,
             (size_t)np * o->nstarts * sizeof(double));
    }
    int ok = sv_allreduce_sum(r, ex, exl);
    if (ok == 0) {
      memcpy(res->ex_roll, ex, exn * o->nstarts * sizeof(double));
      memcpy(res->ex_H_roll, ex + exn * o->nstarts, (size_t)np * o->nstarts * sizeof(double));
      memcpy(res->ex_Hlearn_true, ex + exn * o->nstarts + (size_t)np * o->nstarts,
             (size_t)np * o->nstarts * sizeof(double));
    }
    free(ex);
    if (ok < 0)
      goto done;
  }
  memcpy(res->ex_true, ham_state(d, o->test_first, 0), exn * sizeof(double));

  /* unpack into the result's arrays */
  int T = o->ntest;
  res->dmse = malloc((size_t)o->nstarts * (o->steps + 1) * T * sizeof(double));
  res->traj = malloc((size_t)o->nstarts * res->nat * T * sizeof(double));
  res->energy = malloc((size_t)o->nstarts * res->nat * T * sizeof(double));
  res->diverged = malloc((size_t)o->nstarts * res->nat * T * sizeof(double));
  res->cka = malloc((size_t)o->nstarts * res->nat * (res->nrep ? res->nrep : 1) * T * sizeof(double));
  if (!res->dmse || !res->traj || !res->energy || !res->diverged || !res->cka) {
    sv_fail("hamiltonian: out of memory for the results");
    goto done;
  }
  for (int j = 0; j < T; j++) {
    const double *row = all + (size_t)j * L.len;
    for (int s = 0; s < o->nstarts; s++) {
      for (int S = 0; S <= o->steps; S++)
        ham_res_dmse(res, s, S)[j] = row[row_dmse(&L, s, S)];
      for (int a = 0; a < res->nat; a++) {
        ham_res_at(res, res->traj, s, a)[j] = row[row_at(&L, 0, s, a)];
        ham_res_at(res, res->energy, s, a)[j] = row[row_at(&L, 1, s, a)];
        ham_res_at(res, res->diverged, s, a)[j] = row[row_at(&L, 2, s, a)];
        for (int l = 0; l < res->nrep; l++)
          ham_res_cka(res, s, a, l)[j] = row[row_cka(&L, s, a, l)];
      }
    }
  }
  rc = 0;
done:
  if (save)
    memcpy(theta, save, n * sizeof *theta);
  free(save), free(tgt_rep), free(probe), free(roll), free(perm), free(rows), free(all);
  gsl_rng_free(rng);
  ham_maml_prog_free(&ad);
  ham_eval_prog_free(&full);
  ham_eval_prog_free(&one);
  if (rc < 0)
    ham_eval_result_free(res);
  return rc;
}
