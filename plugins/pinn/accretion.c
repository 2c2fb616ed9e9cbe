/*
 * accretion.c -- pinn_accretion.so: spherical (Michel) accretion onto a
 * Schwarzschild black hole (specs/pinn.md, section 4), two networks.
 *
 * M = 1, f = 1 - 2M/r, p = K rho^Gamma (K = 0.1, Gamma = 4/3),
 * h = 1 + Gamma/(Gamma-1) K rho^(Gamma-1), c_s^2 = Gamma p / (rho h),
 * gamma^2 = 1 / (1 - v^2). The equations are the radial derivatives of the
 * two conserved quantities, ln F = ln(rho gamma v sqrt(f) r^2) and
 * ln B = ln(h gamma sqrt(f)), with d ln h = c_s^2 d ln rho:
 *
 *     R_F = r rho'/rho + gamma^2 r v'/v + M/(r - 2M) + 2            = 0
 *     R_B = [c_s^2 r rho'/rho + gamma^2 v r v' + M/(r - 2M)] / c_s^2 = 0
 *
 * Both stay finite at the sonic point v^2 = c_s^2, where the pair becomes
 * singular (its determinant is gamma^2 (v^2 - c_s^2) / (rho v)); that is
 * the "multiplied through" form without dividing by v^2 - c_s^2 at all.
 * R_B is divided by c_s^2 (~1e-2) because a change of rho and v that keeps
 * F moves ln B only by about c_s^2 times as much: unscaled, Bernoulli is
 * enforced a hundred times more loosely (measured: errors ~1e-4). The
 * form solved for rho' and v' and multiplied by v^2 - c_s^2 was tried
 * too: its residuals vanish on a whole family of wrong curves near the
 * sonic point and Levenberg-Marquardt lands on one of them.
 *
 * Trial solutions (both positive, both fixed at r_b):
 *
 *     rho = rho_b + ((r_b - r)/r) A exp(-N1/100)
 *     v   = v_b (r_b/r)^q exp(-((r_b - r)/r) N2/100)
 *
 * A and q make the first guess (N = 0) pass through the sonic point
 * (r_c, rho_c, v_c), which follows from r_c alone. Fixing v at r_b too is
 * needed: with rho_b alone every subsonic "breeze" through rho_b is an
 * exact, smooth solution on [r_in, r_b], so the transonic one would not be
 * determined. The factor 1/100 conditions Levenberg-Marquardt (measured).
 *
 * The reference (accretion_reference.c) solves the conserved quantities
 * for rho at each r with Brent's method; rho_b, v_b come from it at r_b.
 */
#include "accretion_reference.h"
#include "pinn.h"

#include <solver.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_roots.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUTPUT_SCALE 1e-2

typedef struct {
  double r_c, r_in, r_out;
  int softadapt;
  double softadapt_T;
  pinn_opts o;
  accretion_ref ref;
  double rho_b, v_b, v_c, amp, q; /* boundary values and first-guess shape */
  pinn_model *m;
  /* SoftAdapt state */
  double prev[2], w[2];
  int have_prev, weights_reset;
} accretion;

static void accretion_free(void *st)
{
  accretion *a = st;
  if (!a)
    return;
  pinn_model_free(a->m);
  free(a);
}

static int accretion_setup(sv_run *r, void **state)
{
  accretion *a = calloc(1, sizeof *a);
  if (!a)
    return sv_fail("out of memory");
  *state = a;
  if (sv_opt_real(r, "-r_sonic", 40.5, "sonic radius r_c in units of M (> 3M/2; the paper: 40.5)",
                  &a->r_c) < 0 ||
      sv_opt_real(r, "-r_in", 0, "inner end of the domain, in M (> 2M, < r_sonic); 0: "
                  "r_sonic x 20/40.5 (the paper's 20 for its r_sonic = 40.5)", &a->r_in) < 0 ||
      sv_opt_real(r, "-r_out", 0, "outer end r_b of the domain, in M (> r_sonic), where rho "
                  "and v are fixed; 0: r_sonic x 140.5/40.5 (the paper's 140.5)", &a->r_out) < 0 ||
      sv_opt_bool(r, "-softadapt", 0, "SoftAdapt weights for the two equations in the Adam stage: "
                  "w_i = 2 softmax_i(T (L_i(t) - L_i(t-1)) / L_i(t-1))", &a->softadapt) < 0 ||
      sv_opt_real(r, "-softadapt_T", 100, "SoftAdapt temperature T", &a->softadapt_T) < 0)
    return -1;

  pinn_opts_defaults(&a->o);
  a->o.width = 20;
  a->o.depth = 2;
  a->o.points = 121;
  a->o.adam_steps = 0;
  /* 600 Levenberg-Marquardt steps: 300 left 1.5e-6 at r_sonic = 6 M and a
     sonic radius 2e-4 M off at 200 M; 600 reach 3e-7 and 5e-5 M there, and
     3.4e-8 (against 2.0e-7) at the paper's 40.5 M (measured) */
  a->o.lm_steps = 600;
  a->o.eval_points = 1206;
  if (pinn_opts_declare(r, &a->o) < 0)
    return -1;

  if (accretion_ref_init(a->r_c, &a->ref) < 0)
    return sv_fail_context("-r_sonic %g", a->r_c);
  /* the domain scales with the sonic radius: the same r_in/r_c and
     r_out/r_c as the paper's [20, 140.5] around 40.5 (exactly those for
     r_c = 40.5) */
  if (a->r_in == 0)
    a->r_in = a->r_c * 20 / 40.5;
  if (a->r_out == 0)
    a->r_out = a->r_c * 140.5 / 40.5;
  if (!(a->r_in > 2 * a->ref.M))
    return sv_fail("-r_in %g: the domain must stay outside the horizon r = 2M", a->r_in);
  if (!(a->r_in < a->r_c && a->r_c < a->r_out))
    return sv_fail("-r_in %g, -r_sonic %g, -r_out %g: the sonic point must lie inside the "
                   "domain (r_in < r_sonic < r_out)", a->r_in, a->r_c, a->r_out);
  if (!(a->softadapt_T >= 0) || !isfinite(a->softadapt_T))
    return sv_fail("-softadapt_T %g: must be >= 0", a->softadapt_T);
  if (accretion_ref_eval(&a->ref, a->r_out, &a->rho_b, &a->v_b) < 0)
    return sv_fail_context("-r_out %g", a->r_out);
  a->v_c = sqrt(a->ref.cs2_c);
  a->amp = (a->ref.rho_c - a->rho_b) * a->r_c / (a->r_out - a->r_c);
  a->q = log(a->v_c / a->v_b) / log(a->r_out / a->r_c);
  return 0;
}

/* ------------------------------------------------------------------ */
/* SoftAdapt                                                           */
/* ------------------------------------------------------------------ */

/* The global mean square of each equation from the last evaluation. */
static int global_parts(sv_run *r, pinn_model *m, double L[2])
{
  sv_lsq *l = pinn_model_lsq(m);
  int count;
  pinn_model_points(m, &count);
  double s[3];
  for (int k = 0; k < 2; k++)
    s[k] = sv_lsq_last_part(l, k) * count;
  s[2] = count;
  if (sv_run_size(r) > 1 && sv_allreduce_sum(r, s, 3) < 0)
    return -1;
  L[0] = s[0] / s[2];
  L[1] = s[1] / s[2];
  return 0;
}

/*
 * lambda_i = softmax_i(T s_i), s_i the change of loss i since the last
 * step, taken relative to its last value (raw differences are ~1e-6 here
 * and would leave the weights at 1/2 whatever T): the equation whose loss
 * falls slowest, or rises, gets the weight. Scaled by 2 so that equal
 * weights are 1. Levenberg-Marquardt solves for a zero residual and uses
 * weights 1.
 */
typedef struct {
  accretion *a;
  sv_run *r;
} hook_ctx;

static int softadapt_hook(void *vp, pinn_model *m, const char *stage, int step)
{
  hook_ctx *h = vp;
  accretion *a = h->a;
  sv_lsq *l = pinn_model_lsq(m);
  if (strcmp(stage, "adam") != 0) {
    if (!a->weights_reset) {
      a->weights_reset = 1;
      if (sv_lsq_set_weight(l, 0, 1) < 0 || sv_lsq_set_weight(l, 1, 1) < 0)
        return -1;
    }
    return 0;
  }
  if (step == 0)
    return 0; /* nothing evaluated yet */
  double L[2];
  if (global_parts(h->r, m, L) < 0)
    return -1;
  if (a->have_prev) {
    double s[2], mx = -INFINITY;
    for (int k = 0; k < 2; k++) {
      s[k] = a->softadapt_T * (L[k] - a->prev[k]) / fmax(a->prev[k], 1e-300);
      mx = fmax(mx, s[k]);
    }
    double e0 = exp(s[0] - mx), e1 = exp(s[1] - mx);
    a->w[0] = 2 * e0 / (e0 + e1);
    a->w[1] = 2 * e1 / (e0 + e1);
    if (sv_lsq_set_weight(l, 0, a->w[0]) < 0 || sv_lsq_set_weight(l, 1, a->w[1]) < 0)
      return -1;
  }
  a->prev[0] = L[0];
  a->prev[1] = L[1];
  a->have_prev = 1;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Sonic point of the trained solution                                 */
/* ------------------------------------------------------------------ */

typedef struct {
  accretion *a;
  int failed;
} sonic_fn;

/* v^2 - c_s^2(rho) at r: > 0 inside the sonic point. */
static double sonic_gap(double r, void *vp)
{
  sonic_fn *s = vp;
  double rho, v;
  double *vals[2] = {&rho, &v};
  if (pinn_model_eval(s->a->m, 1, &r, vals, NULL) < 0) {
    s->failed = 1;
    return 0;
  }
  return v * v - accretion_sound_speed2(&s->a->ref, rho);
}

static int find_sonic(accretion *a, int n, const double *r, const double *rho, const double *v,
                      double *root)
{
  *root = NAN;
  int i0 = -1;
  for (int i = 0; i + 1 < n && i0 < 0; i++) {
    double g0 = v[i] * v[i] - accretion_sound_speed2(&a->ref, rho[i]);
    double g1 = v[i + 1] * v[i + 1] - accretion_sound_speed2(&a->ref, rho[i + 1]);
    if (g0 > 0 && g1 <= 0)
      i0 = i;
  }
  if (i0 < 0)
    return 0;
  sonic_fn s = {a, 0};
  gsl_function fn = {sonic_gap, &s};
  double lo = r[i0], hi = r[i0 + 1];
  double glo = sonic_gap(lo, &s), ghi = sonic_gap(hi, &s);
  if (s.failed)
    return -1;
  if (ghi == 0) {
    *root = hi;
    return 0;
  }
  if ((glo < 0) == (ghi < 0))
    return 0;
  gsl_error_handler_t *old = gsl_set_error_handler_off();
  gsl_root_fsolver *fs = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
  int status = fs ? gsl_root_fsolver_set(fs, &fn, lo, hi) : GSL_ENOMEM;
  for (int it = 0; it < 100 && status == GSL_SUCCESS && !s.failed; it++) {
    if ((status = gsl_root_fsolver_iterate(fs)) != GSL_SUCCESS)
      break;
    status = gsl_root_test_interval(gsl_root_fsolver_x_lower(fs), gsl_root_fsolver_x_upper(fs),
                                    1e-12, 0);
    if (status == GSL_SUCCESS) {
      *root = gsl_root_fsolver_root(fs);
      break;
    }
    status = GSL_SUCCESS;
  }
  if (fs)
    gsl_root_fsolver_free(fs);
  gsl_set_error_handler(old);
  if (s.failed)
    return -1;
  if (isnan(*root))
    return sv_fail("Brent on v^2 - c_s^2 of the trained solution did not converge on [%g, %g]",
                   lo, hi);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Run                                                                 */
/* ------------------------------------------------------------------ */

static int accretion_run(sv_run *r, void *state)
{
  accretion *a = state;
  const accretion_ref *ref = &a->ref;
  const double M = ref->M, G = ref->gamma, n_poly = G / (G - 1), rb = a->r_out;
  sv_log(r, "Michel accretion, M = 1, K = %g, Gamma = %g: sonic point r_c = %g (rho_c = %.6e, "
         "v_c = %.6f), F = %.10f, B = %.12f; domain [%g, %g], rho_b = %.8e, v_b = %.8f",
         ref->K, G, a->r_c, ref->rho_c, a->v_c, ref->F, ref->B, a->r_in, rb, a->rho_b, a->v_b);

  a->m = pinn_model_new(r, &a->o, a->r_in, rb, 1, &a->r_c);
  if (!a->m)
    return -1;
  /* rho, v built forward with rho', v' (Taylor mode, first order;
     -derivatives reverse: sv_grad) */
  sv_node *x = pinn_model_input(a->m);
  pinn_jet X = pinn_model_input_jet(a->m, 1);
  pinn_jet s = pinn_jet_normalize(X, a->r_in, rb);
  pinn_jet N1 = pinn_jet_scale(pinn_model_net_jet(a->m, "rho", s), OUTPUT_SCALE);
  pinn_jet N2 = pinn_jet_scale(pinn_model_net_jet(a->m, "v", s), OUTPUT_SCALE);
  pinn_jet g = pinn_jet_div(pinn_jet_add_scalar(pinn_jet_neg(X), rb), X); /* (r_b - r)/r */
  pinn_jet Rho = pinn_jet_add_scalar(
      pinn_jet_mul(g, pinn_jet_scale(pinn_jet_exp(pinn_jet_neg(N1)), a->amp)), a->rho_b);
  pinn_jet V = pinn_jet_mul(pinn_jet_scale(pinn_jet_pow(pinn_jet_scale(X, 1 / rb), -a->q), a->v_b),
                            pinn_jet_exp(pinn_jet_neg(pinn_jet_mul(g, N2))));
  sv_node *rho = Rho.v, *v = V.v, *drho, *dv;
  if (pinn_jet_derivs(a->m, &Rho, &drho, NULL) < 0 || pinn_jet_derivs(a->m, &V, &dv, NULL) < 0)
    return -1;

  /* c_s^2 = Gamma theta / (1 + n theta), theta = K rho^(Gamma-1) */
  sv_node *theta = sv_scale(sv_pow(rho, G - 1), ref->K);
  sv_node *cs2 = sv_div(sv_scale(theta, G), sv_add_scalar(sv_scale(theta, n_poly), 1));
  sv_node *v2 = sv_square(v);
  sv_node *gam2 = sv_div(sv_fill_like(v2, 1), sv_add_scalar(sv_neg(v2), 1));
  sv_node *dlnrho = sv_div(sv_mul(x, drho), rho);                  /* r rho'/rho */
  sv_node *grav = sv_div(sv_fill_like(x, M), sv_add_scalar(x, -2 * M)); /* M/(r - 2M) */
  sv_node *rv = sv_mul(x, dv);                                      /* r v' */
  sv_node *res_f = sv_add_scalar(sv_add(sv_add(dlnrho, sv_mul(gam2, sv_div(rv, v))), grav), 2);
  sv_node *res_b = sv_div(sv_add(sv_add(sv_mul(cs2, dlnrho), sv_mul(gam2, sv_mul(v, rv))), grav),
                          cs2);
  if (pinn_model_add_output(a->m, "rho", rho) < 0 || pinn_model_add_output(a->m, "v", v) < 0 ||
      pinn_model_add_residual(a->m, "flux", res_f) < 0 ||
      pinn_model_add_residual(a->m, "bernoulli", res_b) < 0)
    return -1;

  hook_ctx hc = {a, r};
  a->w[0] = a->w[1] = 1;
  if (a->softadapt)
    pinn_model_set_hook(a->m, softadapt_hook, &hc);
  pinn_train_result tr;
  if (pinn_model_train(a->m, &tr) < 0)
    return -1;
  if (a->softadapt) {
    sv_metric(r, "softadapt_weight_flux", a->w[0]);
    sv_metric(r, "softadapt_weight_bernoulli", a->w[1]);
  }

  int n = a->o.eval_points, rc = -1;
  double *rs = pinn_linspace(a->r_in, rb, n);
  double *rho_v = malloc((size_t)n * sizeof(double)), *v_v = malloc((size_t)n * sizeof(double));
  double *rho_r = malloc((size_t)n * sizeof(double)), *v_r = malloc((size_t)n * sizeof(double));
  double *res1 = malloc((size_t)n * sizeof(double)), *res2 = malloc((size_t)n * sizeof(double));
  if (!rs || !rho_v || !v_v || !rho_r || !v_r || !res1 || !res2) {
    sv_fail("out of memory for %d evaluation points", n);
    goto done;
  }
  double *vals[2] = {rho_v, v_v}, *resv[2] = {res1, res2};
  if (pinn_model_eval(a->m, n, rs, vals, resv) < 0)
    goto done;
  for (int i = 0; i < n; i++)
    if (accretion_ref_eval(ref, rs[i], &rho_r[i], &v_r[i]) < 0)
      goto done;
  pinn_error e_rho, e_v;
  if (pinn_error_metrics(r, "_rho", n, rho_v, rho_r, &e_rho) < 0 ||
      pinn_error_metrics(r, "_v", n, v_v, v_r, &e_v) < 0)
    goto done;
  /* the worse of the two; the largest error in units of rho_c and v_c */
  double worst = 0;
  for (int i = 0; i < n; i++)
    worst = fmax(worst, fmax(fabs(rho_v[i] - rho_r[i]) / ref->rho_c, fabs(v_v[i] - v_r[i]) / a->v_c));
  sv_metric(r, "rel_l2", fmax(e_rho.rel_l2, e_v.rel_l2));
  sv_metric(r, "max_abs_err", worst);
  sv_metric(r, "max_residual", fmax(pinn_max_abs(n, res1), pinn_max_abs(n, res2)));

  double r_sonic;
  if (find_sonic(a, n, rs, rho_v, v_v, &r_sonic) < 0)
    goto done;
  sv_metric(r, "r_in", a->r_in);
  sv_metric(r, "r_out", a->r_out);
  sv_metric(r, "r_sonic", r_sonic);
  sv_metric(r, "r_sonic_reference", a->r_c);
  sv_metric(r, "r_sonic_error", fabs(r_sonic - a->r_c));
  if (isnan(r_sonic))
    sv_warn(r, "the trained flow never crosses v^2 = c_s^2 on [%g, %g]", a->r_in, rb);

  char title[128];
  snprintf(title, sizeof title, "Michel accretion, r_c = %g M", a->r_c);
  pinn_curve curves[2] = {{"rho", rho_v, rho_r}, {"v", v_v, v_r}};
  if (pinn_write_solution(r, title, "r", n, rs, 2, curves) < 0 || pinn_plot_loss(r, title) < 0)
    goto done;

  sv_headline(r, "Michel accretion onto Schwarzschild, sonic radius %g M, rho(r) and v(r) on "
              "[%g, %g]", a->r_c, a->r_in, rb);
  sv_headline(r, "relative L2 error: rho %.3e, v %.3e (max |error| %.3e, %.3e) against Brent "
              "on F and B", e_rho.rel_l2, e_v.rel_l2, e_rho.max_abs, e_v.max_abs);
  sv_headline(r, "sonic radius r = %.8f M (reference %g, error %.2e)", r_sonic, a->r_c,
              fabs(r_sonic - a->r_c));
  sv_headline(r, "final loss %.3e in %.2f s (adam %d steps %.2f s%s, %s %d steps %.2f s)", tr.loss,
              tr.total_seconds, tr.adam_steps, tr.adam_seconds,
              a->softadapt ? " with SoftAdapt" : "", pinn_second_name(a->o.second),
              tr.second_steps, tr.second_seconds);
  if (pinn_model_trust(a->m, NULL) < 0)
    goto done;
  rc = 0;
done:
  free(rs), free(rho_v), free(v_v), free(rho_r), free(v_r), free(res1), free(res2);
  return rc;
}

static const sv_plugin accretion_plugin =
    SV_PLUGIN_INIT("pinn_accretion",
                   "PINN: spherical (Michel) accretion onto a Schwarzschild black hole, "
                   "density and velocity through the sonic point",
                   accretion_setup, accretion_run, accretion_free);

SV_PLUGIN_EXPORT const sv_plugin *sv_plugin_entry(void) { return &accretion_plugin; }
