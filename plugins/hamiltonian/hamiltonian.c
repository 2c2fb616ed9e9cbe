/*
 * hamiltonian.c -- hamiltonian_meta.so: a graph-network Hamiltonian
 * meta-trained (MAML) across physical systems and adapted to an unseen one
 * (Song & Jeong, arXiv:2212.01168; specs/hamiltonian.md; issue 8).
 *
 *   solver --plugin hamiltonian_meta.so            # meta vs pretrained vs random
 *   solver --plugin hamiltonian_meta.so -help      # options and our choices
 *
 * The run: trajectories of every system involved (systems.c); the graph
 * network (model.c); meta-training with MAML and ordinary multi-task
 * pre-training on the training systems from the same initialisation, and a
 * model trained on the held-out system itself for CKA (maml.c); each start
 * adapted on every held-out test trajectory and measured (eval.c); then
 * metrics, CSV, plots and headlines (here).
 */
#include "eval.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPOINTS 200     /* states per trajectory (the paper) */
#define TMAX 10.0       /* t in [0, 10] (the paper) */
#define MAX_STEPS 10000000
#define MAX_TRAJ 100000

typedef enum { MODE_ALL = 0, MODE_META, MODE_PRETRAIN, MODE_SCRATCH } run_mode;
static const char *const mode_names[] = {"all", "meta", "pretrain", "scratch"};

typedef struct {
  run_mode mode;
  int order;
  int nhold, hold[HAM_NSYSTEMS];   /* hold[0] is evaluated */
  int ntrain, train[HAM_NSYSTEMS];
  int outer_steps, pretrain_steps, target_steps;
  int tasks, points;
  double inner_lr, outer_lr, adapt_lr, pretrain_adapt_lr;
  int adapt_steps;
  ham_arch arch;
  int trajectories, test_trajectories;
  int substeps;
  double data_tol;
  int gap_every;
  int cka;
  char load[1024];                 /* params.csv of an earlier run, or "" */
} ham_state_t;

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

static int range_int(const char *name, int v, int lo, int hi, const char *why)
{
  if (v < lo || v > hi)
    return sv_fail("option %s = %d is out of range [%d, %d]%s%s", name, v, lo, hi, why ? ": " : "",
                   why ? why : "");
  return 0;
}

static int positive(const char *name, double v, const char *why)
{
  if (!(v > 0) || !isfinite(v))
    return sv_fail("option %s = %g: must be a positive number%s%s", name, v, why ? ": " : "",
                   why ? why : "");
  return 0;
}

static int parse_holdout(const char *list, ham_state_t *s)
{
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  s->nhold = 0;
  char *save = NULL;
  int seen[HAM_NSYSTEMS] = {0};
  for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
    int id = ham_system_find(tok);
    if (id < 0)
      return sv_fail("option -holdout: unknown system '%s' (the systems: %s)", tok, ham_system_list());
    if (!seen[id]) {
      seen[id] = 1;
      s->hold[s->nhold++] = id;
    }
  }
  if (s->nhold == 0)
    return sv_fail("option -holdout '%s': name at least one system to hold out (the systems: %s)",
                   list, ham_system_list());
  if (s->nhold == HAM_NSYSTEMS)
    return sv_fail("option -holdout '%s': holding out every system leaves nothing to train on; "
                   "hold out one (evaluated) or a few, and keep at least one for training", list);
  s->ntrain = 0;
  for (int i = 0; i < HAM_NSYSTEMS; i++)
    if (!seen[i])
      s->train[s->ntrain++] = i;
  return 0;
}

static int ham_setup(sv_run *r, void **state)
{
  ham_state_t s;
  memset(&s, 0, sizeof s);
  char mode[32], hold[256], act[32], norm[32];
  int order = 2;
  if (sv_opt_string(r, "-mode", "all",
                    "all: meta-train, pre-train and a random start, each adapted on the held-out "
                    "system and compared; meta: MAML only; pretrain: ordinary multi-task training "
                    "only; scratch: the random initialisation only", mode, sizeof mode) < 0 ||
      sv_opt_int(r, "-maml_order", 2,
                 "2: differentiate through the inner step exactly (third derivatives of the "
                 "network); 1: first-order MAML (the inner step's Jacobian dropped)", &order) < 0 ||
      sv_opt_string(r, "-holdout", "henon_heiles",
                    "system(s) left out of training, comma-separated; the first is the one adapted "
                    "to and measured (our default: Henon-Heiles, the paper's chaotic one-particle "
                    "system; two_body and three_body are the harder targets)", hold, sizeof hold) < 0 ||
      sv_opt_int(r, "-outer_steps", 2000,
                 "MAML outer (Adam) steps (the paper: 5000; ours 2000 keeps the default run within "
                 "minutes on 2 cores)", &s.outer_steps) < 0 ||
      sv_opt_int(r, "-pretrain_steps", s.outer_steps,
                 "pre-training Adam steps, on the same (meta-)batches (default: -outer_steps)",
                 &s.pretrain_steps) < 0 ||
      sv_opt_int(r, "-target_steps", s.outer_steps,
                 "Adam steps of the reference model trained on the held-out system's other "
                 "trajectories (for CKA only; default: -outer_steps)", &s.target_steps) < 0 ||
      sv_opt_int(r, "-tasks", 10, "tasks per meta-batch (the paper: 10)", &s.tasks) < 0 ||
      sv_opt_int(r, "-points", 50,
                 "K: points per task's support set and per query set (disjoint, drawn from one "
                 "trajectory's 200; the paper: 50), and the adaptation points on the held-out "
                 "system", &s.points) < 0 ||
      sv_opt_real(r, "-inner_lr", 1e-3,
                  "alpha, the inner SGD rate (the paper's 1e-3). With the default summed loss "
                  "(-loss_norm) it is an effective rate of 5e-2 on the per-point mean: our choice, "
                  "made on validation runs holding out pendulum and magnetic_mirror, never the test "
                  "system (see README); with the mean, 1e-3 barely moves a task's loss and MAML "
                  "collapses onto pre-training",
                  &s.inner_lr) < 0 ||
      sv_opt_real(r, "-outer_lr", 5e-4, "beta, the outer Adam rate (the paper: 5e-4)", &s.outer_lr) < 0 ||
      sv_opt_int(r, "-adapt_steps", 50, "S: SGD steps of adaptation on the held-out system",
                 &s.adapt_steps) < 0 ||
      sv_opt_real(r, "-adapt_lr", s.inner_lr,
                  "the adaptation SGD rate (default: -inner_lr, the rate MAML trained for)",
                  &s.adapt_lr) < 0 ||
      sv_opt_real(r, "-pretrain_adapt_lr", 0.5 * s.adapt_lr,
                  "also adapt the pre-trained start at this rate of its own (start 'pretrain_own'; "
                  "0: not; default: half of -adapt_lr). Our choice: at the common rate the "
                  "pre-trained start's SGD overshoots for a few steps; half of it (5e-4) was its "
                  "best stable rate on the validation runs (pendulum, magnetic_mirror held out), "
                  "so meta is also compared with pre-training adapted at its best",
                  &s.pretrain_adapt_lr) < 0 ||
      sv_opt_int(r, "-width", 64, "graph network width: node, edge and message features (our choice)",
                 &s.arch.width) < 0 ||
      sv_opt_int(r, "-rounds", 1, "message-passing rounds, 1 or 2", &s.arch.rounds) < 0 ||
      sv_opt_string(r, "-activation", "tanh",
                    "tanh, softplus, sigmoid, sin or gelu (smooth: the loss holds second "
                    "derivatives of the network; relu and other kinked ones are refused)", act,
                    sizeof act) < 0 ||
      sv_opt_string(r, "-loss_norm", "sum",
                    "the task loss over its K points of |J grad H - xdot|^2 (summed over the "
                    "coordinates): sum (our choice, see -inner_lr; the paper does not say) or mean "
                    "(divides the loss, hence the inner step, by K)",
                    norm, sizeof norm) < 0 ||
      sv_opt_int(r, "-trajectories", 200,
                 "trajectories per system (the paper: 10,000; our choice: 200, generated at "
                 "start-up in about a second)", &s.trajectories) < 0 ||
      sv_opt_int(r, "-test_trajectories", 32,
                 "held-out system trajectories adapted to and measured (never trained on); the "
                 "rest of its trajectories train the CKA reference model", &s.test_trajectories) < 0 ||
      sv_opt_int(r, "-rollout_substeps", 4,
                 "RK4 steps per sample interval (10/199) when integrating a learned field",
                 &s.substeps) < 0 ||
      sv_opt_real(r, "-data_tol", 1e-12,
                  "GSL odeiv2 rk8pd absolute and relative tolerance for the data", &s.data_tol) < 0 ||
      sv_opt_int(r, "-gap_every", 10,
                 "with -maml_order 1: compute the second-order meta-gradient every this many "
                 "steps to report the gap (with 2 the first-order one comes free every step)",
                 &s.gap_every) < 0 ||
      sv_opt_bool(r, "-cka", 1,
                  "train a reference model on the held-out system's non-test trajectories (from "
                  "its own random initialisation) and report layer-wise linear CKA of every "
                  "adapted start against it", &s.cka) < 0 ||
      sv_opt_string(r, "-load_params", "",
                    "params.csv of an earlier run with the same architecture: its init, meta, "
                    "pretrain and target columns are taken instead of training (to re-evaluate, "
                    "e.g. with another -adapt_lr or -adapt_steps, without training again)",
                    s.load, sizeof s.load) < 0)
    return -1;

  int found = -1;
  for (int i = 0; i < 4; i++)
    if (strcmp(mode, mode_names[i]) == 0)
      found = i;
  if (found < 0)
    return sv_fail("option -mode '%s': expected all, meta, pretrain or scratch", mode);
  s.mode = (run_mode)found;
  if (order != 1 && order != 2)
    return sv_fail("option -maml_order = %d: expected 1 (first order) or 2 (exact)", order);
  s.order = order;
  if (parse_holdout(hold, &s) < 0)
    return -1;
  if (ham_act_parse(act, &s.arch.act) < 0)
    return -1;
  if (strcmp(norm, "mean") == 0)
    s.arch.norm = HAM_LOSS_MEAN;
  else if (strcmp(norm, "sum") == 0)
    s.arch.norm = HAM_LOSS_SUM;
  else
    return sv_fail("option -loss_norm '%s': expected mean or sum", norm);
  if (range_int("-outer_steps", s.outer_steps, 0, MAX_STEPS, NULL) < 0 ||
      range_int("-pretrain_steps", s.pretrain_steps, 0, MAX_STEPS, NULL) < 0 ||
      range_int("-target_steps", s.target_steps, 0, MAX_STEPS, NULL) < 0 ||
      range_int("-tasks", s.tasks, 1, 100000, NULL) < 0 ||
      range_int("-points", s.points, 1, NPOINTS / 2,
                "a task's support and query sets are disjoint subsets of a trajectory's 200 points") < 0 ||
      range_int("-adapt_steps", s.adapt_steps, 0, 100000, NULL) < 0 ||
      range_int("-width", s.arch.width, 1, 1024, NULL) < 0 ||
      range_int("-rounds", s.arch.rounds, 1, HAM_MAX_ROUNDS, "one or two rounds of message passing") < 0 ||
      range_int("-trajectories", s.trajectories, 2, MAX_TRAJ,
                "the held-out system needs test trajectories and at least one other") < 0 ||
      range_int("-test_trajectories", s.test_trajectories, 1, s.trajectories - 1,
                "the held-out system keeps at least one trajectory for the reference model") < 0 ||
      range_int("-rollout_substeps", s.substeps, 1, 1000, NULL) < 0 ||
      range_int("-gap_every", s.gap_every, 0, MAX_STEPS, NULL) < 0)
    return -1;
  if (positive("-inner_lr", s.inner_lr,
               "alpha <= 0 is no inner step (0: MAML becomes pre-training on the query sets; "
               "< 0: gradient ascent)") < 0 ||
      positive("-outer_lr", s.outer_lr, NULL) < 0 ||
      positive("-adapt_lr", s.adapt_lr, "the adaptation is gradient descent") < 0)
    return -1;
  if (!(s.pretrain_adapt_lr >= 0) || !isfinite(s.pretrain_adapt_lr))
    return sv_fail("option -pretrain_adapt_lr = %g: must be >= 0 (0: no second adaptation of the "
                   "pre-trained start)", s.pretrain_adapt_lr);
  if (!(s.data_tol > 0 && s.data_tol <= 1e-6))
    return sv_fail("option -data_tol = %g: must be in (0, 1e-6] (the data must conserve energy to "
                   "1e-8)", s.data_tol);
  ham_state_t *st = malloc(sizeof *st);
  if (!st)
    return sv_fail("hamiltonian_meta: out of memory");
  *st = s;
  *state = st;
  return 0;
}

static void ham_cleanup(void *state) { free(state); }

/* ------------------------------------------------------------------ */
/* Outputs                                                             */
/* ------------------------------------------------------------------ */

static void metricf(sv_run *r, double v, const char *fmt, ...) SV_PRINTF(3, 4);
static void metricf(sv_run *r, double v, const char *fmt, ...)
{
  char name[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  sv_metric(r, name, v);
}

/* Share of the paired values where a < b (NaN pairs skipped). */
static double win_rate(int n, const double *a, const double *b)
{
  int w = 0, m = 0;
  for (int i = 0; i < n; i++)
    if (!isnan(a[i]) && !isnan(b[i])) {
      m++;
      w += a[i] < b[i];
    }
  return m ? (double)w / m : NAN;
}

static double quantile(int n, const double *v, double q)
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
    for (int i = 1; i < m; i++) /* insertion sort: n is small */
      for (int j = i; j > 0 && w[j - 1] > w[j]; j--) {
        double t = w[j];
        w[j] = w[j - 1];
        w[j - 1] = t;
      }
    double pos = q * (m - 1);
    int lo = (int)floor(pos);
    int hi = lo + 1 < m ? lo + 1 : lo;
    r = w[lo] + (pos - lo) * (w[hi] - w[lo]);
  }
  free(w);
  return r;
}

typedef struct {
  int nstarts, id[HAM_NSTARTS];
} starts_t;

static int slot_of(const starts_t *st, int id)
{
  for (int s = 0; s < st->nstarts; s++)
    if (st->id[s] == id)
      return s;
  return -1;
}

static int write_outputs(sv_run *r, const ham_state_t *s, const starts_t *st,
                         const ham_eval_result *e, const ham_dataset *d)
{
  int T = e->ntest, ns = st->nstarts;
  const char *sysname = ham_system(d->system)->name;
  /* ---- metrics at the evaluation steps ---- */
  static const char *const kinds[3] = {"deriv_mse", "traj_err", "energy_err"};
  for (int a = 0; a < e->nat; a++) {
    int S = e->at[a];
    for (int k = 0; k < 3; k++)
      for (int sl = 0; sl < ns; sl++) {
        const double *v = k == 0 ? ham_res_dmse(e, sl, S)
                                 : ham_res_at(e, k == 1 ? e->traj : e->energy, sl, a);
        metricf(r, ham_median(T, v), "%s_%s_s%d", kinds[k], ham_start_name(st->id[sl]), S);
        metricf(r, ham_mean(T, v), "%s_%s_s%d_mean", kinds[k], ham_start_name(st->id[sl]), S);
      }
    for (int sl = 0; sl < ns; sl++) {
      double dv = 0;
      const double *v = ham_res_at(e, e->diverged, sl, a);
      for (int j = 0; j < T; j++)
        dv += v[j];
      metricf(r, dv, "diverged_%s_s%d", ham_start_name(st->id[sl]), S);
      for (int l = 0; l < e->nrep; l++) {
        const double *c = ham_res_cka(e, sl, a, l);
        if (!isnan(ham_mean(T, c)))
          metricf(r, ham_median(T, c), "cka_%s_%s_s%d", ham_start_name(st->id[sl]), e->rep_name[l], S);
      }
    }
    /* paired comparisons: meta vs pretrain, pretrain vs random */
    static const int pairs[3][2] = {{HAM_START_META, HAM_START_PRETRAIN},
                                    {HAM_START_PRETRAIN, HAM_START_RANDOM},
                                    {HAM_START_META, HAM_START_PRETRAIN_OWN}};
    for (int p = 0; p < 3; p++) {
      int sa = slot_of(st, pairs[p][0]), sb = slot_of(st, pairs[p][1]);
      if (sa < 0 || sb < 0)
        continue;
      for (int k = 0; k < 3; k++) {
        const double *va = k == 0 ? ham_res_dmse(e, sa, S) : ham_res_at(e, k == 1 ? e->traj : e->energy, sa, a);
        const double *vb = k == 0 ? ham_res_dmse(e, sb, S) : ham_res_at(e, k == 1 ? e->traj : e->energy, sb, a);
        const char *na = ham_start_name(pairs[p][0]), *nb = ham_start_name(pairs[p][1]);
        metricf(r, win_rate(T, va, vb), "win_%s_over_%s_%s_s%d", na, nb, kinds[k], S);
        metricf(r, 1 - ham_median(T, va) / ham_median(T, vb), "margin_%s_over_%s_%s_s%d", na, nb,
                kinds[k], S);
      }
    }
  }
  int sm = slot_of(st, HAM_START_META), sp = slot_of(st, HAM_START_PRETRAIN),
      sr = slot_of(st, HAM_START_RANDOM);
  int S10 = s->adapt_steps >= 10 ? 10 : s->adapt_steps;
  if (sm >= 0 && sp >= 0 && sr >= 0) {
    double m = ham_median(T, ham_res_dmse(e, sm, S10)), p = ham_median(T, ham_res_dmse(e, sp, S10)),
           q = ham_median(T, ham_res_dmse(e, sr, S10));
    metricf(r, m < p && p < q, "ordering_deriv_mse_s%d", S10);
  }

  /* ---- CSV: the adaptation curves (median, quartiles, mean per start) ---- */
  int S1 = s->adapt_steps + 1, nc = 1 + 4 * ns;
  double *cols = malloc((size_t)nc * S1 * sizeof *cols);
  const char **names = malloc((size_t)nc * sizeof *names);
  char (*nbuf)[64] = malloc((size_t)nc * sizeof *nbuf);
  const double **cp = malloc((size_t)nc * sizeof *cp);
  if (!cols || !names || !nbuf || !cp) {
    free(cols), free(names), free(nbuf), free(cp);
    return sv_fail("hamiltonian_meta: out of memory for the CSV");
  }
  snprintf(nbuf[0], 64, "step");
  for (int S = 0; S < S1; S++)
    cols[S] = S;
  for (int sl = 0; sl < ns; sl++) {
    static const char *const stat[4] = {"median", "q25", "q75", "mean"};
    for (int k = 0; k < 4; k++) {
      int c = 1 + 4 * sl + k;
      snprintf(nbuf[c], 64, "deriv_mse_%s_%s", ham_start_name(st->id[sl]), stat[k]);
      for (int S = 0; S < S1; S++) {
        const double *v = ham_res_dmse(e, sl, S);
        cols[(size_t)c * S1 + S] = k == 0 ? ham_median(T, v)
                                   : k == 3 ? ham_mean(T, v)
                                            : quantile(T, v, k == 1 ? 0.25 : 0.75);
      }
    }
  }
  for (int c = 0; c < nc; c++) {
    names[c] = nbuf[c];
    cp[c] = cols + (size_t)c * S1;
  }
  int rc = sv_write_csv(r, "adaptation.csv", nc, names, (size_t)S1, cp);
  free(cols), free(names), free(nbuf), free(cp);
  if (rc < 0)
    return -1;

  /* ---- CSV: every test trajectory, start and evaluation step ---- */
  {
    size_t rows = (size_t)T * ns * e->nat;
    int ncol = 7 + e->nrep;
    double *v = malloc(rows * ncol * sizeof *v);
    const double **vp = malloc((size_t)ncol * sizeof *vp);
    const char **nm = malloc((size_t)ncol * sizeof *nm);
    char (*nb)[64] = malloc((size_t)ncol * sizeof *nb);
    if (!v || !vp || !nm || !nb) {
      free(v), free(vp), free(nm), free(nb);
      return sv_fail("hamiltonian_meta: out of memory for the CSV");
    }
    static const char *const base[7] = {"trajectory", "start", "step", "deriv_mse", "traj_err",
                                        "energy_err", "diverged"};
    for (int c = 0; c < 7; c++)
      snprintf(nb[c], 64, "%s", base[c]);
    for (int l = 0; l < e->nrep; l++)
      snprintf(nb[7 + l], 64, "cka_%s", e->rep_name[l]);
    size_t row = 0;
    for (int j = 0; j < T; j++)
      for (int sl = 0; sl < ns; sl++)
        for (int a = 0; a < e->nat; a++, row++) {
          double x[7 + HAM_MAX_REPS] = {j, st->id[sl], e->at[a], ham_res_dmse(e, sl, e->at[a])[j],
                                        ham_res_at(e, e->traj, sl, a)[j],
                                        ham_res_at(e, e->energy, sl, a)[j],
                                        ham_res_at(e, e->diverged, sl, a)[j]};
          for (int l = 0; l < e->nrep; l++)
            x[7 + l] = ham_res_cka(e, sl, a, l)[j];
          for (int c = 0; c < ncol; c++)
            v[(size_t)c * rows + row] = x[c];
        }
    for (int c = 0; c < ncol; c++) {
      vp[c] = v + (size_t)c * rows;
      nm[c] = nb[c];
    }
    rc = sv_write_csv(r, "trajectories.csv", ncol, nm, rows, vp);
    free(v), free(vp), free(nm), free(nb);
    if (rc < 0)
      return -1;
  }

  /* ---- CSV: the example rollout ---- */
  {
    int np = e->ex_npoints, dim = e->ex_dim;
    int ncol = 1 + dim * (1 + ns) + 2 * ns + 1;
    double *v = malloc((size_t)ncol * np * sizeof *v);
    const double **vp = malloc((size_t)ncol * sizeof *vp);
    const char **nm = malloc((size_t)ncol * sizeof *nm);
    char (*nb)[64] = malloc((size_t)ncol * sizeof *nb);
    if (!v || !vp || !nm || !nb) {
      free(v), free(vp), free(nm), free(nb);
      return sv_fail("hamiltonian_meta: out of memory for the CSV");
    }
    static const char *const comp[4] = {"qx", "qy", "px", "py"};
    int c = 0;
    snprintf(nb[c], 64, "t");
    for (int k = 0; k < np; k++)
      v[(size_t)c * np + k] = d->t[k];
    c++;
    for (int who = 0; who <= ns; who++)
      for (int i = 0; i < dim; i++, c++) {
        snprintf(nb[c], 64, "%s_%s%d", who == 0 ? "true" : ham_start_name(st->id[who - 1]),
                 comp[i % 4], i / 4 + 1);
        const double *src = who == 0 ? e->ex_true : e->ex_roll + (size_t)(who - 1) * np * dim;
        for (int k = 0; k < np; k++)
          v[(size_t)c * np + k] = src[(size_t)k * dim + i];
      }
    snprintf(nb[c], 64, "H_true");
    for (int k = 0; k < np; k++)
      v[(size_t)c * np + k] = ham_energy(d->system, e->ex_true + (size_t)k * dim);
    c++;
    for (int sl = 0; sl < ns; sl++, c++) {
      snprintf(nb[c], 64, "H_true_along_%s", ham_start_name(st->id[sl]));
      for (int k = 0; k < np; k++)
        v[(size_t)c * np + k] = e->ex_H_roll[(size_t)sl * np + k];
    }
    for (int sl = 0; sl < ns; sl++, c++) {
      /* the learned H along the true trajectory, shifted to the true H at t = 0 */
      snprintf(nb[c], 64, "H_%s_along_true", ham_start_name(st->id[sl]));
      const double *h = e->ex_Hlearn_true + (size_t)sl * np;
      double shift = ham_energy(d->system, e->ex_true) - h[0];
      for (int k = 0; k < np; k++)
        v[(size_t)c * np + k] = h[k] + shift;
    }
    for (int k = 0; k < ncol; k++) {
      vp[k] = v + (size_t)k * np;
      nm[k] = nb[k];
    }
    rc = sv_write_csv(r, "rollout_example.csv", ncol, nm, (size_t)np, vp);
    free(v), free(vp), free(nm), free(nb);
    if (rc < 0)
      return -1;
  }

  /* ---- plots ---- */
  static const char *const colour[HAM_NSTARTS] = {"#1f77b4", "#ff7f0e", "#7f7f7f", "#2ca02c"};
  char script[8192];
  int w = snprintf(script, sizeof script,
                   "set datafile separator ','\nset key autotitle columnhead top right\n"
                   "set logscale y\nset grid\nset xlabel 'SGD adaptation steps S (K = %d points)'\n"
                   "set ylabel 'derivative MSE on held-out points'\n"
                   "set title 'Adaptation to %s (held out): median and quartiles over %d test trajectories'\n"
                   "plot ",
                   s->points, sysname, T);
  for (int sl = 0; sl < ns; sl++)
    w += snprintf(script + w, sizeof script - (size_t)w,
                  "%s'adaptation.csv' using 1:%d:%d with filledcurves fc rgb '%s' fs transparent solid 0.15 notitle, "
                  "'' using 1:%d with lines lw 2 lc rgb '%s' title '%s'",
                  sl ? ", " : "", 3 + 4 * sl, 4 + 4 * sl, colour[st->id[sl]], 2 + 4 * sl,
                  colour[st->id[sl]], ham_start_name(st->id[sl]));
  snprintf(script + w, sizeof script - (size_t)w, "\n");
  if (sv_plot(r, "adaptation.png", script) < 0)
    return -1;

  int N = d->nodes, pend = d->system == HAM_PENDULUM;
  w = snprintf(script, sizeof script,
               "set datafile separator ','\nset grid\nset size ratio -1\nset key outside right top\n"
               "set title 'Held-out %s, test trajectory 0: rollouts after %d adaptation steps vs truth'\n"
               "set xlabel '%s'\nset ylabel '%s'\nplot ",
               sysname, s->adapt_steps, "q_x", pend ? "p_x" : "q_y");
  for (int i = 0; i < N; i++) {
    int cx = 2 + 4 * i, cy = 2 + 4 * i + (pend ? 2 : 1);
    w += snprintf(script + w, sizeof script - (size_t)w,
                  "%s'rollout_example.csv' using %d:%d with lines lw 3 lc rgb 'black' title '%s'",
                  i ? ", " : "", cx, cy, i ? "" : "truth");
    for (int sl = 0; sl < ns; sl++) {
      int off = (1 + sl) * 4 * N;
      w += snprintf(script + w, sizeof script - (size_t)w,
                    ", '' using %d:%d with lines lw 1.5 lc rgb '%s' title '%s'", cx + off, cy + off,
                    colour[st->id[sl]], i ? "" : ham_start_name(st->id[sl]));
    }
  }
  snprintf(script + w, sizeof script - (size_t)w, "\n");
  if (sv_plot(r, "rollout.png", script) < 0)
    return -1;

  int hcol = 2 + 4 * N * (1 + ns);
  w = snprintf(script, sizeof script,
               "set datafile separator ','\nset grid\nset key outside right top\n"
               "set multiplot layout 2,1 title "
               "'Held-out %s, test trajectory 0, after %d adaptation steps'\n"
               "set xlabel 't'\nset ylabel 'true H'\n"
               "set title 'true H along each rollout (constant for the true dynamics)'\n"
               "plot 'rollout_example.csv' using 1:%d with lines lw 3 lc rgb 'black' title 'truth'",
               sysname, s->adapt_steps, hcol);
  for (int sl = 0; sl < ns; sl++)
    w += snprintf(script + w, sizeof script - (size_t)w,
                  ", '' using 1:%d with lines lw 1.5 lc rgb '%s' title '%s'", hcol + 1 + sl,
                  colour[st->id[sl]], ham_start_name(st->id[sl]));
  w += snprintf(script + w, sizeof script - (size_t)w,
                "\nset ylabel 'learned H (shifted)'\n"
                "set title 'learned H_theta along the true trajectory, shifted to the true H at t = 0'\n"
                "plot 'rollout_example.csv' using 1:%d with lines lw 3 lc rgb 'black' title 'true H'",
                hcol);
  for (int sl = 0; sl < ns; sl++)
    w += snprintf(script + w, sizeof script - (size_t)w,
                  ", '' using 1:%d with lines lw 1.5 lc rgb '%s' title '%s'", hcol + 1 + ns + sl,
                  colour[st->id[sl]], ham_start_name(st->id[sl]));
  snprintf(script + w, sizeof script - (size_t)w, "\nunset multiplot\n");
  if (sv_plot(r, "energy.png", script) < 0)
    return -1;
  return 0;
}

/* Parameters of every start as one CSV (index, then one column each). */
static int write_params(sv_run *r, size_t n, int k, const char *const *names, const double *const *v)
{
  double *idx = malloc(n * sizeof *idx);
  const double *cols[8];
  const char *nm[8];
  if (!idx)
    return sv_fail("hamiltonian_meta: out of memory");
  for (size_t i = 0; i < n; i++)
    idx[i] = (double)i;
  cols[0] = idx;
  nm[0] = "index";
  for (int j = 0; j < k; j++) {
    cols[1 + j] = v[j];
    nm[1 + j] = names[j];
  }
  int rc = sv_write_csv(r, "params.csv", 1 + k, nm, n, cols);
  free(idx);
  return rc;
}

/* ------------------------------------------------------------------ */
/* The run                                                             */
/* ------------------------------------------------------------------ */

static unsigned long sub_seed(const sv_run *r, unsigned long what)
{
  return (sv_run_seed(r) + 1UL) * 1000003UL + what * 7919UL;
}

static int train_one(sv_run *r, ham_model *m, const ham_state_t *s, const ham_dataset *data,
                     ham_train_kind kind, const char *stage, int steps, int target, double *theta_out,
                     ham_train_result *res)
{
  ham_pool pool;
  memset(&pool, 0, sizeof pool);
  if (target) {
    int id = s->hold[0];
    pool.sys[pool.nsys++] = id;
    pool.data[id] = &data[id];
    pool.first[id] = s->test_trajectories;
    pool.count[id] = s->trajectories - s->test_trajectories;
  } else {
    for (int i = 0; i < s->ntrain; i++) {
      int id = s->train[i];
      pool.sys[pool.nsys++] = id;
      pool.data[id] = &data[id];
      pool.first[id] = 0;
      pool.count[id] = s->trajectories;
    }
  }
  ham_train_opts o = {kind, s->order, s->tasks, s->points, s->inner_lr, steps, s->outer_lr,
                      s->gap_every, stage, sub_seed(r, kind == HAM_TRAIN_META ? 11 : target ? 13 : 12)};
  ham_trainer *t = ham_trainer_new(r, m, &pool, &o);
  if (!t)
    return -1;
  int rc = ham_train(t, res);
  ham_trainer_free(t);
  if (rc == 0)
    memcpy(theta_out, sv_params_data(ham_model_params(m)), sv_params_count(ham_model_params(m)) * sizeof(double));
  return rc;
}

/* Read the columns of a params.csv (index, then one column per start) into
   the starts named there; got[k] = 1 for each found. */
static int load_params(const char *path, size_t n, double *const th[4], int got[4])
{
  static const char *const cols[4] = {"init", "meta", "pretrain", "target"};
  FILE *f = fopen(path, "r");
  if (!f)
    return sv_fail("option -load_params %s: cannot open: %s", path, strerror(errno));
  char line[4096];
  int map[8], ncol = 0, rc = -1;
  got[0] = got[1] = got[2] = got[3] = 0;
  if (!fgets(line, sizeof line, f)) {
    sv_fail("option -load_params %s: empty file", path);
    goto done;
  }
  line[strcspn(line, "\r\n")] = 0;
  char *save = NULL;
  for (char *tok = strtok_r(line, ",", &save); tok && ncol < 8; tok = strtok_r(NULL, ",", &save)) {
    map[ncol] = -1;
    for (int k = 0; k < 4; k++)
      if (strcmp(tok, cols[k]) == 0)
        map[ncol] = k, got[k] = 1;
    ncol++;
  }
  if (ncol < 2 || !got[0]) {
    sv_fail("option -load_params %s: not a params.csv (header 'index,init,...' expected)", path);
    goto done;
  }
  size_t row = 0;
  while (fgets(line, sizeof line, f)) {
    if (row >= n) {
      sv_fail("option -load_params %s: more than %zu rows: another architecture (-width, -rounds)?",
              path, n);
      goto done;
    }
    char *p = line;
    for (int c = 0; c < ncol; c++) {
      char *end;
      double v = strtod(p, &end);
      if (end == p || !isfinite(v)) {
        sv_fail("option -load_params %s: row %zu, column %d is not a finite number", path, row + 2,
                c + 1);
        goto done;
      }
      if (c > 0 && map[c] >= 0)
        th[map[c]][row] = v;
      p = end + (*end == ',');
    }
    row++;
  }
  if (row != n) {
    sv_fail("option -load_params %s: %zu rows for %zu parameters: another architecture (-width, "
            "-rounds)?", path, row, n);
    goto done;
  }
  rc = 0;
done:
  fclose(f);
  return rc;
}

static int ham_run(sv_run *r, void *state)
{
  const ham_state_t *s = state;
  ham_dataset data[HAM_NSYSTEMS];
  memset(data, 0, sizeof data);
  ham_model *m = NULL;
  double *th[HAM_NSTARTS + 2] = {0};
  ham_eval_result ev;
  memset(&ev, 0, sizeof ev);
  int rc = -1, target_id = s->hold[0];
  const ham_system_info *tinfo = ham_system(target_id);

  /* ---- data ---- */
  char trained[256] = "";
  int need[HAM_NSYSTEMS] = {0};
  need[target_id] = 1;
  int training = s->mode == MODE_ALL || s->mode == MODE_META || s->mode == MODE_PRETRAIN;
  for (int i = 0; i < s->ntrain; i++) {
    need[s->train[i]] = training;
    snprintf(trained + strlen(trained), sizeof trained - strlen(trained), "%s%s", i ? ", " : "",
             ham_system(s->train[i])->name);
  }
  for (int id = 0; id < HAM_NSYSTEMS; id++) {
    if (!need[id])
      continue;
    if (ham_dataset_generate(id, s->trajectories, NPOINTS, TMAX, s->data_tol, sub_seed(r, 100 + id),
                             &data[id]) < 0)
      goto done;
    const char *nm = ham_system(id)->name;
    metricf(r, data[id].max_drift, "energy_drift_%s", nm);
    metricf(r, (double)data[id].rejected, "rejected_%s", nm);
    sv_log(r, "data %-15s %d trajectories x %d points, %d particle(s), max relative energy drift "
           "%.1e, %ld initial conditions rejected", nm, s->trajectories, NPOINTS, ham_system(id)->nodes,
           data[id].max_drift, data[id].rejected);
    if (data[id].max_drift > 1e-8)
      sv_warn(r, "%s: energy drift %.1e above 1e-8; lower -data_tol", nm, data[id].max_drift);
  }

  /* ---- model and the common initialisation ---- */
  if (!(m = ham_model_new(&s->arch)))
    goto done;
  sv_params *P = ham_model_params(m);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (!rng) {
    sv_fail("hamiltonian_meta: out of memory");
    goto done;
  }
  gsl_rng_set(rng, sub_seed(r, 1));
  int irc = ham_model_init(m, rng);
  gsl_rng_free(rng);
  if (irc < 0)
    goto done;
  size_t n = sv_params_count(P);
  for (int i = 0; i < HAM_NSTARTS + 2; i++)
    if (!(th[i] = malloc(n * sizeof(double)))) {
      sv_fail("hamiltonian_meta: out of memory");
      goto done;
    }
  double *theta0 = th[HAM_START_RANDOM], *target = th[HAM_NSTARTS];
  memcpy(theta0, sv_params_data(P), n * sizeof(double));
  int loaded[4] = {0, 0, 0, 0}; /* init, meta, pretrain, target */
  if (s->load[0]) {
    double *const dst[4] = {theta0, th[HAM_START_META], th[HAM_START_PRETRAIN], target};
    if (load_params(s->load, n, dst, loaded) < 0)
      goto done;
    sv_log(r, "parameters from %s:%s%s%s%s", s->load, loaded[0] ? " init" : "", loaded[1] ? " meta" : "",
           loaded[2] ? " pretrain" : "", loaded[3] ? " target" : "");
  }
  sv_log(r, "graph network: width %d, %d round(s), %s, %zu parameters; held out %s (%d particle(s)); "
         "trained on %s", s->arch.width, s->arch.rounds, ham_act_name(s->arch.act), n, tinfo->name,
         tinfo->nodes, trained);

  starts_t st = {0, {0}};
  ham_train_result meta_res, pre_res, tgt_res;
  memset(&meta_res, 0, sizeof meta_res);
  memset(&pre_res, 0, sizeof pre_res);
  memset(&tgt_res, 0, sizeof tgt_res);
  if ((s->mode == MODE_ALL || s->mode == MODE_META) && !loaded[1]) {
    memcpy(sv_params_data(P), theta0, n * sizeof(double));
    if (train_one(r, m, s, data, HAM_TRAIN_META, "meta", s->outer_steps, 0, th[HAM_START_META],
                  &meta_res) < 0)
      goto done;
    st.id[st.nstarts++] = HAM_START_META;
    if (meta_res.gap_count > 0) {
      sv_metric(r, "maml_gradient_cosine", meta_res.gap_cos_mean);
      sv_metric(r, "maml_gradient_rel_diff", meta_res.gap_rel_mean);
      sv_metric(r, "maml_gradient_cosine_min", meta_res.gap_cos_min);
      sv_metric(r, "maml_gradient_rel_diff_max", meta_res.gap_rel_max);
      sv_metric(r, "maml_gradient_gap_batches", meta_res.gap_count);
    }
    sv_metric(r, "meta_steps_per_second", meta_res.seconds > 0 ? meta_res.steps / meta_res.seconds : 0);
  } else if (s->mode == MODE_ALL || s->mode == MODE_META) {
    st.id[st.nstarts++] = HAM_START_META;
  }
  if (s->mode == MODE_ALL || s->mode == MODE_PRETRAIN) {
    memcpy(sv_params_data(P), theta0, n * sizeof(double));
    if (!loaded[2] && train_one(r, m, s, data, HAM_TRAIN_PLAIN, "pretrain", s->pretrain_steps, 0,
                                th[HAM_START_PRETRAIN], &pre_res) < 0)
      goto done;
    st.id[st.nstarts++] = HAM_START_PRETRAIN;
  }
  if (s->mode == MODE_ALL || s->mode == MODE_SCRATCH)
    st.id[st.nstarts++] = HAM_START_RANDOM;
  if (slot_of(&st, HAM_START_PRETRAIN) >= 0 && s->pretrain_adapt_lr > 0 &&
      s->pretrain_adapt_lr != s->adapt_lr)
    st.id[st.nstarts++] = HAM_START_PRETRAIN_OWN;
  if (s->cka && !loaded[3]) {
    /* the reference starts from its own random initialisation: trained from
       theta0 it would stay close to theta0's features, and CKA would measure
       how far training moved rather than what it learned */
    gsl_rng *trng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!trng) {
      sv_fail("hamiltonian_meta: out of memory");
      goto done;
    }
    gsl_rng_set(trng, sub_seed(r, 2));
    int trc = ham_model_init(m, trng);
    gsl_rng_free(trng);
    if (trc < 0)
      goto done;
    if (train_one(r, m, s, data, HAM_TRAIN_PLAIN, "target", s->target_steps, 1, target, &tgt_res) < 0)
      goto done;
  }

  /* ---- adaptation on the held-out system ---- */
  ham_eval_opts eo;
  memset(&eo, 0, sizeof eo);
  eo.system = target_id;
  eo.data = &data[target_id];
  eo.test_first = 0;
  eo.ntest = s->test_trajectories;
  eo.K = s->points;
  eo.steps = s->adapt_steps;

  eo.substeps = s->substeps;
  eo.seed = sub_seed(r, 21);
  eo.nstarts = st.nstarts;
  for (int i = 0; i < st.nstarts; i++) {
    int own = st.id[i] == HAM_START_PRETRAIN_OWN;
    eo.start_id[i] = st.id[i];
    eo.theta[i] = th[own ? HAM_START_PRETRAIN : st.id[i]];
    eo.lr[i] = own ? s->pretrain_adapt_lr : s->adapt_lr;
  }
  eo.target = s->cka ? target : NULL;
  if (ham_evaluate(r, m, &eo, &ev) < 0)
    goto done;
  if (write_outputs(r, s, &st, &ev, &data[target_id]) < 0)
    goto done;
  {
    const char *pn[4];
    const double *pv[4];
    int k = 0;
    pn[k] = "init", pv[k++] = theta0;
    if (slot_of(&st, HAM_START_META) >= 0)
      pn[k] = "meta", pv[k++] = th[HAM_START_META];
    if (slot_of(&st, HAM_START_PRETRAIN) >= 0)
      pn[k] = "pretrain", pv[k++] = th[HAM_START_PRETRAIN];
    if (s->cka)
      pn[k] = "target", pv[k++] = target;
    if (write_params(r, n, k, pn, pv) < 0)
      goto done;
  }
  memcpy(sv_params_data(P), slot_of(&st, HAM_START_META) >= 0 ? th[HAM_START_META] : theta0,
         n * sizeof(double));

  /* ---- headlines ---- */
  sv_headline(r, "Hamiltonian meta-learning: held out %s (%d particle(s)), trained on %s", tinfo->name,
              tinfo->nodes, trained);
  sv_headline(r, "  graph network: width %d, %d round(s), %s, %zu parameters; K = %d points, "
              "%d tasks per meta-batch, alpha = %g (%s loss)", s->arch.width, s->arch.rounds,
              ham_act_name(s->arch.act), n, s->points, s->tasks, s->inner_lr,
              ham_loss_norm_name(s->arch.norm));
  if (slot_of(&st, HAM_START_META) >= 0 && !loaded[1])
    sv_headline(r, "  MAML (order %d): %d outer steps in %.1f s (%.1f steps/s); first- vs "
                "second-order meta-gradient: cosine %.3f, relative difference %.3f", s->order,
                meta_res.steps, meta_res.seconds,
                meta_res.seconds > 0 ? meta_res.steps / meta_res.seconds : 0, meta_res.gap_cos_mean,
                meta_res.gap_rel_mean);
  int S10 = s->adapt_steps >= 10 ? 10 : s->adapt_steps;
  int a10 = 0;
  for (int a = 0; a < ev.nat; a++)
    if (ev.at[a] == S10)
      a10 = a;
  char line[512];
  static const char *const kinds[3] = {"derivative MSE", "trajectory error", "energy error"};
  for (int k = 0; k < 3; k++) {
    int w = snprintf(line, sizeof line, "  %s after %d steps (median of %d):", kinds[k], S10, ev.ntest);
    for (int sl = 0; sl < st.nstarts; sl++) {
      const double *v = k == 0 ? ham_res_dmse(&ev, sl, S10)
                               : ham_res_at(&ev, k == 1 ? ev.traj : ev.energy, sl, a10);
      w += snprintf(line + w, sizeof line - (size_t)w, " %s %.3g%s", ham_start_name(st.id[sl]),
                    ham_median(ev.ntest, v), sl + 1 < st.nstarts ? "," : "");
    }
    sv_headline(r, "%s", line);
  }
  int sm = slot_of(&st, HAM_START_META), sp = slot_of(&st, HAM_START_PRETRAIN),
      sr = slot_of(&st, HAM_START_RANDOM);
  if (sm >= 0 && sp >= 0 && sr >= 0) {
    const double *vm = ham_res_dmse(&ev, sm, S10), *vp = ham_res_dmse(&ev, sp, S10),
                 *vr = ham_res_dmse(&ev, sr, S10);
    double mm = ham_median(ev.ntest, vm), mp = ham_median(ev.ntest, vp), mr = ham_median(ev.ntest, vr);
    double g1 = 100 * (1 - mm / mp), g2 = 100 * (1 - mp / mr);
    sv_headline(r, "  the paper's ordering meta < pretrained < random (derivative MSE, S = %d): %s; "
                "meta beats pretrained on %.0f%% of the trajectories (median %.1f%% %s), "
                "pretrained beats random on %.0f%% (median %.1f%% %s)", S10,
                mm < mp && mp < mr ? "yes" : "NO", 100 * win_rate(ev.ntest, vm, vp), fabs(g1),
                g1 >= 0 ? "lower" : "higher", 100 * win_rate(ev.ntest, vp, vr), fabs(g2),
                g2 >= 0 ? "lower" : "higher");
  }
  int so = slot_of(&st, HAM_START_PRETRAIN_OWN);
  if (sm >= 0 && so >= 0) {
    const double *vm = ham_res_dmse(&ev, sm, S10), *vo = ham_res_dmse(&ev, so, S10);
    double mm = ham_median(ev.ntest, vm), mo = ham_median(ev.ntest, vo), g = 100 * (1 - mm / mo);
    sv_headline(r, "  pretrained adapted at its own rate %g instead (pretrain_own): derivative MSE %.3g "
                "at S = %d; meta beats it on %.0f%% of the trajectories (median %.1f%% %s)",
                s->pretrain_adapt_lr, mo, S10, 100 * win_rate(ev.ntest, vm, vo), fabs(g),
                g >= 0 ? "lower" : "higher");
  }
  rc = 0;
done:
  ham_eval_result_free(&ev);
  for (int i = 0; i < HAM_NSTARTS + 2; i++)
    free(th[i]);
  ham_model_free(m);
  for (int id = 0; id < HAM_NSYSTEMS; id++)
    ham_dataset_free(&data[id]);
  return rc;
}

static const sv_plugin ham_plugin = SV_PLUGIN_INIT(
    "hamiltonian_meta",
    "graph-network Hamiltonian meta-learned (MAML) across six physical systems and adapted to a "
    "held-out one; meta-trained vs pre-trained vs random (Song & Jeong, arXiv:2212.01168)",
    ham_setup, ham_run, ham_cleanup);

SV_PLUGIN_EXPORT const sv_plugin *sv_plugin_entry(void) { return &ham_plugin; }
