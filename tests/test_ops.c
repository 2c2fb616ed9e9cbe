/*
 * test_ops.c -- every op of the graph: its value against a direct
 * computation, its first derivative against central finite differences,
 * and its second derivative (Hessian-vector products) against finite
 * differences of the gradient.
 *
 * A case builds y = op(x_0, ..., x_{n-1}) on graph inputs and two
 * objectives with random weights w (so the adjoint seed is not all ones):
 *
 *   f1 = sum(w * y)        the op's derivative rule
 *   f2 = sum(w * y * y)    a Hessian that is nonzero even for linear ops,
 *                          so the rules of the derivative nodes (the
 *                          op's rule differentiated again) are exercised
 *
 * For each objective f it checks
 *   - f and y against the reference computed here, without the library;
 *   - g_i = sv_grad(f, x_i) against (f(x + h e_k) - f(x - h e_k)) / 2h;
 *   - H v = d/dx sum_i sum(g_i * v_i) (sv_vjp over all inputs at once, so
 *     the mixed second derivatives of binary ops count) against
 *     (g(x + h v) - g(x - h v)) / 2h, v random;
 * and sv_vjp(y, seed = w) against g_i of f1.
 *
 * One op per test case so a failure names the op; batched shapes
 * (axis 0 = SV_BATCH) are compiled and checked for batch 5 and batch 1.
 */
#include <solver.h>

#include <check.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXX 3   /* inputs of a case */
#define MAXE 512 /* elements of any tensor here */

static const double FD_H = 1e-6;
static const double TOL_VALUE = 1e-12; /* value: reference and kernel sum in different orders */
static const double TOL_GRAD = 1e-7;   /* first derivative vs central differences */
static const double TOL_HESS = 1e-6;   /* Hessian-vector product vs differences of the gradient */

/* ------------------------------------------------------------------ */
/* Shapes, independent of the library                                  */
/* ------------------------------------------------------------------ */

typedef struct {
  int nd;
  int d[SV_MAX_DIMS];
} shp;

#define B SV_BATCH
#define S0 {0, {0}}
#define S1(a) {1, {a}}
#define S2(a, b) {2, {a, b}}
#define S3(a, b, c) {3, {a, b, c}}

static size_t shp_count(const shp *s)
{
  size_t c = 1;
  for (int i = 0; i < s->nd; i++)
    c *= (size_t)s->d[i];
  return c;
}

static shp shp_resolve(const shp *s, int batch)
{
  shp r = *s;
  if (r.nd > 0 && r.d[0] == SV_BATCH)
    r.d[0] = batch;
  return r;
}

static void unflat(const shp *s, size_t k, int *ix)
{
  for (int i = s->nd - 1; i >= 0; i--) {
    ix[i] = (int)(k % (size_t)s->d[i]);
    k /= (size_t)s->d[i];
  }
}

static size_t flat(const shp *s, const int *ix)
{
  size_t k = 0;
  for (int i = 0; i < s->nd; i++)
    k = k * (size_t)s->d[i] + (size_t)ix[i];
  return k;
}

/* Index into `in` of the element at flat index k of `out` under numpy's
   right-aligned broadcasting. */
static size_t bmap(const shp *out, size_t k, const shp *in)
{
  int ix[SV_MAX_DIMS] = {0}, jx[SV_MAX_DIMS] = {0};
  unflat(out, k, ix);
  int off = out->nd - in->nd;
  for (int i = 0; i < in->nd; i++)
    jx[i] = in->d[i] == 1 ? 0 : ix[i + off];
  return flat(in, jx);
}

static void shp_format(const shp *s, char *buf, size_t n)
{
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int i = 0; i < s->nd && k < n; i++)
    k += s->d[i] == SV_BATCH ? (size_t)snprintf(buf + k, n - k, "%sB", i ? "," : "")
                             : (size_t)snprintf(buf + k, n - k, "%s%d", i ? "," : "", s->d[i]);
  if (k < n)
    snprintf(buf + k, n - k, "]");
}

static int shp_batched(const shp *s) { return s->nd > 0 && s->d[0] == SV_BATCH; }

/* ------------------------------------------------------------------ */
/* A case                                                              */
/* ------------------------------------------------------------------ */

typedef struct opcase opcase;
typedef sv_node *(*build_fn)(const opcase *c, sv_node *const *x);
/* Expected output shape (resolved) and values from the resolved inputs. */
typedef void (*ref_fn)(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                       double *y);

struct opcase {
  char name[128];
  int nx;
  shp x[MAXX];      /* declared shapes (d[0] may be SV_BATCH) */
  double lo, hi;    /* the inputs are uniform in [lo, hi] */
  build_fn build;
  ref_fn ref;
  /* attributes, by op */
  int op;           /* which op of a family */
  double p;         /* exponent, scale, added scalar */
  int axis, start, len;
  int ta, tb;
  shp t;            /* target shape (sum_to, broadcast_to, reshape) */
  int m, nrows;
  const int *idx;
  int naxes;        /* max over axes, layer norm */
  int axes[SV_MAX_DIMS];
  /* Inputs (bit i) that are selectors, not variables (class labels): filled
     with integers in [0, classes), never perturbed, and their derivative
     must be exactly zero. */
  unsigned fixed;
  int classes;
};

static double maxabs(const double *a, size_t n)
{
  double m = 0;
  for (size_t k = 0; k < n; k++)
    m = fmax(m, fabs(a[k]));
  return m;
}

/* |got - want| <= tol * max(1, |want|_inf), element by element. */
static void expect_close(const char *tag, const char *what, const double *got, const double *want,
                         size_t n, double tol)
{
  double scale = fmax(1.0, maxabs(want, n));
  ck_assert_msg(got != NULL, "%s: %s: no value", tag, what);
  for (size_t k = 0; k < n; k++)
    ck_assert_msg(fabs(got[k] - want[k]) <= tol * scale,
                  "%s: %s[%zu] = %.17g, expected %.17g (diff %.3g, tol %.3g)", tag, what, k, got[k],
                  want[k], fabs(got[k] - want[k]), tol * scale);
}

static double fvalue(const sv_plan *pl, const sv_node *f)
{
  const double *v = sv_plan_value(pl, f);
  ck_assert_msg(v != NULL, "objective has no value: %s", sv_errmsg());
  return v[0];
}

static void run_plan(sv_plan *pl, const char *tag)
{
  ck_assert_msg(sv_plan_run(pl) == 0, "%s: run: %s", tag, sv_errmsg());
}

static void check_case(const opcase *c, int batch)
{
  char tag[256];
  snprintf(tag, sizeof tag, "%s (batch %d)", c->name, batch);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(rng, 20240601UL + (unsigned long)batch);

  sv_graph *g = sv_graph_new();
  ck_assert_ptr_nonnull(g);
  sv_node *x[MAXX], *v[MAXX];
  for (int i = 0; i < c->nx; i++) {
    char nm[16];
    snprintf(nm, sizeof nm, "x%d", i);
    x[i] = sv_input(g, nm, c->x[i].nd, c->x[i].d);
    snprintf(nm, sizeof nm, "v%d", i);
    v[i] = sv_input(g, nm, c->x[i].nd, c->x[i].d);
    ck_assert_msg(x[i] && v[i], "%s: input: %s", tag, sv_graph_error(g));
  }
  sv_node *y = c->build(c, x);
  ck_assert_msg(y != NULL, "%s: build failed: %s", tag, sv_graph_error(g));

  /* data and the reference */
  shp xs[MAXX];
  double *xd[MAXX], *x0[MAXX], *vd[MAXX];
  size_t nxe[MAXX];
  for (int i = 0; i < c->nx; i++) {
    xs[i] = shp_resolve(&c->x[i], batch);
    nxe[i] = shp_count(&xs[i]);
    ck_assert(nxe[i] <= MAXE);
    xd[i] = malloc(nxe[i] * sizeof(double));
    x0[i] = malloc(nxe[i] * sizeof(double));
    vd[i] = malloc(nxe[i] * sizeof(double));
    for (size_t k = 0; k < nxe[i]; k++) {
      if (c->fixed & (1u << i)) {
        xd[i][k] = x0[i][k] = (double)gsl_rng_uniform_int(rng, (unsigned long)c->classes);
        vd[i][k] = 0;
      } else {
        xd[i][k] = x0[i][k] = c->lo + (c->hi - c->lo) * gsl_rng_uniform(rng);
        vd[i][k] = 2 * gsl_rng_uniform(rng) - 1;
      }
    }
  }
  shp ys;
  double yref[MAXE];
  c->ref(c, batch, xs, (const double *const *)xd, &ys, yref);
  size_t nye = shp_count(&ys);

  /* the node's shape is the expected one */
  int yd[SV_MAX_DIMS];
  ck_assert_msg(sv_ndim(y) == ys.nd, "%s: output has %d axes, expected %d", tag, sv_ndim(y), ys.nd);
  for (int i = 0; i < ys.nd; i++) {
    yd[i] = sv_dim(y, i);
    int got = yd[i] == SV_BATCH ? batch : yd[i];
    ck_assert_msg(got == ys.d[i], "%s: output axis %d is %d, expected %d", tag, i, got, ys.d[i]);
  }
  double wd[MAXE];
  for (size_t k = 0; k < nye; k++)
    wd[k] = 2 * gsl_rng_uniform(rng) - 1;

  /* objectives, gradients, Hessian-vector products, the seeded vjp */
  sv_node *w = sv_input(g, "w", ys.nd, yd);
  sv_node *f[2] = {sv_sum(sv_mul(w, y)), sv_sum(sv_mul(w, sv_mul(y, y)))};
  sv_node *gr[2][MAXX], *hv[2][MAXX], *vj[MAXX];
  for (int o = 0; o < 2; o++) {
    sv_node *s = NULL;
    for (int i = 0; i < c->nx; i++) {
      gr[o][i] = sv_grad(f[o], x[i]);
      ck_assert_msg(gr[o][i] != NULL, "%s: grad: %s", tag, sv_graph_error(g));
      sv_node *t = sv_sum(sv_mul(gr[o][i], v[i]));
      s = s ? sv_add(s, t) : t;
    }
    ck_assert_msg(sv_vjp(s, NULL, c->nx, x, hv[o]) == 0, "%s: hvp: %s", tag, sv_errmsg());
  }
  ck_assert_msg(sv_vjp(y, w, c->nx, x, vj) == 0, "%s: seeded vjp: %s", tag, sv_errmsg());
  ck_assert_msg(sv_graph_error(g) == NULL, "%s: graph error: %s", tag, sv_graph_error(g));

  sv_node *outs[3 + 5 * MAXX];
  int nout = 0;
  outs[nout++] = y;
  outs[nout++] = f[0];
  outs[nout++] = f[1];
  for (int i = 0; i < c->nx; i++) {
    outs[nout++] = gr[0][i];
    outs[nout++] = gr[1][i];
    outs[nout++] = hv[0][i];
    outs[nout++] = hv[1][i];
    outs[nout++] = vj[i];
  }
  sv_plan *pl = sv_compile(g, nout, outs, batch);
  ck_assert_msg(pl != NULL, "%s: compile: %s", tag, sv_errmsg());
  for (int i = 0; i < c->nx; i++) {
    ck_assert_int_eq(sv_plan_bind(pl, x[i], xd[i]), 0);
    ck_assert_int_eq(sv_plan_bind(pl, v[i], vd[i]), 0);
  }
  ck_assert_int_eq(sv_plan_bind(pl, w, wd), 0);
  run_plan(pl, tag);

  /* values */
  ck_assert_msg(sv_plan_size(pl, y) == nye, "%s: plan size of y %zu, expected %zu", tag,
                sv_plan_size(pl, y), nye);
  expect_close(tag, "y", sv_plan_value(pl, y), yref, nye, TOL_VALUE);
  double fref[2] = {0, 0};
  for (size_t k = 0; k < nye; k++) {
    fref[0] += wd[k] * yref[k];
    fref[1] += wd[k] * yref[k] * yref[k];
  }
  for (int o = 0; o < 2; o++) {
    double got = fvalue(pl, f[o]);
    expect_close(tag, o ? "sum(w*y*y)" : "sum(w*y)", &got, &fref[o], 1, TOL_VALUE);
  }

  /* derivatives at x */
  double gbase[2][MAXX][MAXE], hbase[2][MAXX][MAXE];
  for (int i = 0; i < c->nx; i++) {
    char what[64];
    for (int o = 0; o < 2; o++) {
      ck_assert_msg(sv_plan_size(pl, gr[o][i]) == nxe[i] && sv_plan_size(pl, hv[o][i]) == nxe[i],
                    "%s: derivative w.r.t. x%d has %zu elements, expected %zu", tag, i,
                    sv_plan_size(pl, gr[o][i]), nxe[i]);
      memcpy(gbase[o][i], sv_plan_value(pl, gr[o][i]), nxe[i] * sizeof(double));
      memcpy(hbase[o][i], sv_plan_value(pl, hv[o][i]), nxe[i] * sizeof(double));
    }
    snprintf(what, sizeof what, "vjp(y, seed w) w.r.t. x%d", i);
    expect_close(tag, what, sv_plan_value(pl, vj[i]), gbase[0][i], nxe[i], 1e-14);
  }

  /* first derivatives: central differences of f, one element at a time;
     a selector's derivative is exactly zero */
  for (int i = 0; i < c->nx; i++) {
    double fd[2][MAXE];
    if (c->fixed & (1u << i)) {
      for (int o = 0; o < 2; o++)
        for (size_t k = 0; k < nxe[i]; k++)
          ck_assert_msg(gbase[o][i][k] == 0.0, "%s: derivative w.r.t. selector x%d is %g", tag, i,
                        gbase[o][i][k]);
      continue;
    }
    for (size_t k = 0; k < nxe[i]; k++) {
      double fp[2], fm[2];
      xd[i][k] = x0[i][k] + FD_H;
      run_plan(pl, tag);
      fp[0] = fvalue(pl, f[0]);
      fp[1] = fvalue(pl, f[1]);
      xd[i][k] = x0[i][k] - FD_H;
      run_plan(pl, tag);
      fm[0] = fvalue(pl, f[0]);
      fm[1] = fvalue(pl, f[1]);
      xd[i][k] = x0[i][k];
      for (int o = 0; o < 2; o++)
        fd[o][k] = (fp[o] - fm[o]) / (2 * FD_H);
    }
    for (int o = 0; o < 2; o++) {
      char what[64];
      snprintf(what, sizeof what, "d(%s)/dx%d", o ? "sum(w*y*y)" : "sum(w*y)", i);
      expect_close(tag, what, gbase[o][i], fd[o], nxe[i], TOL_GRAD);
    }
  }

  /* Hessian-vector products: central differences of g along v */
  {
    static double gp[2][MAXX][MAXE], gm[2][MAXX][MAXE];
    for (int sgn = 0; sgn < 2; sgn++) {
      double h = sgn ? -FD_H : FD_H;
      for (int i = 0; i < c->nx; i++)
        for (size_t k = 0; k < nxe[i]; k++)
          xd[i][k] = x0[i][k] + h * vd[i][k];
      run_plan(pl, tag);
      for (int o = 0; o < 2; o++)
        for (int i = 0; i < c->nx; i++)
          memcpy(sgn ? gm[o][i] : gp[o][i], sv_plan_value(pl, gr[o][i]), nxe[i] * sizeof(double));
    }
    for (int i = 0; i < c->nx; i++)
      memcpy(xd[i], x0[i], nxe[i] * sizeof(double));
    for (int o = 0; o < 2; o++)
      for (int i = 0; i < c->nx; i++) {
        double fd[MAXE];
        char what[64];
        for (size_t k = 0; k < nxe[i]; k++)
          fd[k] = (gp[o][i][k] - gm[o][i][k]) / (2 * FD_H);
        snprintf(what, sizeof what, "(H v)_x%d of %s", i, o ? "sum(w*y*y)" : "sum(w*y)");
        expect_close(tag, what, hbase[o][i], fd, nxe[i], TOL_HESS);
      }
  }

  sv_plan_free(pl);
  sv_graph_free(g);
  for (int i = 0; i < c->nx; i++) {
    free(xd[i]);
    free(x0[i]);
    free(vd[i]);
  }
  gsl_rng_free(rng);
}

/* Batched cases run for batch 5 and 1; others once. */
static void check(const opcase *c)
{
  int batched = 0;
  for (int i = 0; i < c->nx; i++)
    batched |= shp_batched(&c->x[i]);
  check_case(c, batched ? 5 : 1);
  if (batched)
    check_case(c, 1);
}

/* "op [3,4] [4]" */
static void name_case(opcase *c, const char *op)
{
  size_t k = (size_t)snprintf(c->name, sizeof c->name, "%s", op);
  for (int i = 0; i < c->nx && k < sizeof c->name; i++) {
    char s[48];
    shp_format(&c->x[i], s, sizeof s);
    k += (size_t)snprintf(c->name + k, sizeof c->name - k, " %s", s);
  }
}

/* ------------------------------------------------------------------ */
/* Elementwise binary ops with broadcasting                            */
/* ------------------------------------------------------------------ */

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV };
static const char *const bin_names[] = {"add", "sub", "mul", "div"};

static sv_node *build_binary(const opcase *c, sv_node *const *x)
{
  switch (c->op) {
  case BIN_ADD: return sv_add(x[0], x[1]);
  case BIN_SUB: return sv_sub(x[0], x[1]);
  case BIN_MUL: return sv_mul(x[0], x[1]);
  default: return sv_div(x[0], x[1]);
  }
}

static void ref_binary(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                       double *y)
{
  (void)batch;
  const shp *a = &xs[0], *b = &xs[1];
  int nd = a->nd > b->nd ? a->nd : b->nd;
  ys->nd = nd;
  for (int i = 0; i < nd; i++) {
    int ia = i - (nd - a->nd), ib = i - (nd - b->nd);
    int da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
    ys->d[i] = da > db ? da : db;
  }
  for (size_t k = 0; k < shp_count(ys); k++) {
    double u = x[0][bmap(ys, k, a)], w = x[1][bmap(ys, k, b)];
    switch (c->op) {
    case BIN_ADD: y[k] = u + w; break;
    case BIN_SUB: y[k] = u - w; break;
    case BIN_MUL: y[k] = u * w; break;
    default: y[k] = u / w; break;
    }
  }
}

/* Broadcasting patterns: same shape, a row, a column, a scalar, each on
   either side, a 3-D mix, and batched shapes. */
static const shp bin_pat[][2] = {
  {S2(3, 4), S2(3, 4)},       /* same */
  {S2(3, 4), S1(4)},          /* [n,m] with [m] */
  {S2(3, 4), S2(3, 1)},       /* [n,m] with [n,1] */
  {S2(3, 4), S0},             /* with a scalar */
  {S0, S2(3, 4)},             /* scalar on the left */
  {S1(4), S2(3, 4)},          /* row on the left */
  {S2(3, 1), S2(3, 4)},       /* column on the left */
  {S3(2, 1, 4), S2(3, 1)},    /* both broadcast -> [2,3,4] */
  {S2(B, 4), S1(4)},          /* batched with a row */
  {S2(B, 4), S2(B, 1)},       /* batched with a batched column */
  {S2(B, 3), S2(B, 3)},       /* batched, same shape */
  {S0, S2(B, 3)},             /* scalar with batched */
};
#define NBINPAT ((int)(sizeof bin_pat / sizeof bin_pat[0]))

static void run_binary(int op, int pat)
{
  opcase c = {0};
  c.nx = 2;
  c.x[0] = bin_pat[pat][0];
  c.x[1] = bin_pat[pat][1];
  c.op = op;
  /* division: keep the denominator away from zero */
  c.lo = op == BIN_DIV ? 0.5 : -1.5;
  c.hi = op == BIN_DIV ? 2.0 : 1.5;
  c.build = build_binary;
  c.ref = ref_binary;
  name_case(&c, bin_names[op]);
  check(&c);
}

START_TEST(test_add) { run_binary(BIN_ADD, _i); }
END_TEST
START_TEST(test_sub) { run_binary(BIN_SUB, _i); }
END_TEST
START_TEST(test_mul) { run_binary(BIN_MUL, _i); }
END_TEST
START_TEST(test_div) { run_binary(BIN_DIV, _i); }
END_TEST

/* ------------------------------------------------------------------ */
/* Elementwise unary ops                                               */
/* ------------------------------------------------------------------ */

enum {
  UN_NEG, UN_SQUARE, UN_POW, UN_EXP, UN_LN, UN_SQRT, UN_TANH, UN_SIN, UN_COS, UN_SIGMOID,
  UN_SOFTPLUS, UN_SCALE, UN_ADD_SCALAR, UN_ERF, UN_GELU
};

static sv_node *build_unary(const opcase *c, sv_node *const *x)
{
  switch (c->op) {
  case UN_NEG: return sv_neg(x[0]);
  case UN_SQUARE: return sv_square(x[0]);
  case UN_POW: return sv_pow(x[0], c->p);
  case UN_EXP: return sv_exp(x[0]);
  case UN_LN: return sv_ln(x[0]);
  case UN_SQRT: return sv_sqrt(x[0]);
  case UN_TANH: return sv_tanh(x[0]);
  case UN_SIN: return sv_sin(x[0]);
  case UN_COS: return sv_cos(x[0]);
  case UN_SIGMOID: return sv_sigmoid(x[0]);
  case UN_SOFTPLUS: return sv_softplus(x[0]);
  case UN_SCALE: return sv_scale(x[0], c->p);
  case UN_ERF: return sv_erf(x[0]);
  case UN_GELU: return sv_gelu(x[0]);
  default: return sv_add_scalar(x[0], c->p);
  }
}

static double unary_value(int op, double p, double x)
{
  switch (op) {
  case UN_NEG: return -x;
  case UN_SQUARE: return x * x;
  case UN_POW: return pow(x, p);
  case UN_EXP: return exp(x);
  case UN_LN: return log(x);
  case UN_SQRT: return sqrt(x);
  case UN_TANH: return tanh(x);
  case UN_SIN: return sin(x);
  case UN_COS: return cos(x);
  case UN_SIGMOID: return 1.0 / (1.0 + exp(-x));
  case UN_SOFTPLUS: return log1p(exp(x));
  case UN_SCALE: return p * x;
  case UN_ERF: return erf(x);
  case UN_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
  default: return x + p;
  }
}

static void ref_unary(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                      double *y)
{
  (void)batch;
  *ys = xs[0];
  for (size_t k = 0; k < shp_count(ys); k++)
    y[k] = unary_value(c->op, c->p, x[0][k]);
}

/* Each unary op on a plain [3,4], a batched [B,3] and a 3-D [2,2,3]. */
static const shp un_shapes[] = {S2(3, 4), S2(B, 3), S3(2, 2, 3)};
#define NUNSHAPE 3

static void run_unary(const char *name, int op, double p, double lo, double hi, int shape)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = un_shapes[shape];
  c.op = op;
  c.p = p;
  c.lo = lo;
  c.hi = hi;
  c.build = build_unary;
  c.ref = ref_unary;
  char nm[64];
  if (op == UN_POW || op == UN_SCALE || op == UN_ADD_SCALAR)
    snprintf(nm, sizeof nm, "%s(%g)", name, p);
  else
    snprintf(nm, sizeof nm, "%s", name);
  name_case(&c, nm);
  check(&c);
}

START_TEST(test_neg) { run_unary("neg", UN_NEG, 0, -2, 2, _i); }
END_TEST
START_TEST(test_square) { run_unary("square", UN_SQUARE, 0, -2, 2, _i); }
END_TEST
/* The exponents cover the rule's special cases (1, 2, 2 = a-1 == 1) and
   general ones, negative and fractional. */
static const double pow_exps[] = {3.0, 2.5, -1.5, 2.0, 1.0, 0.5, 4.0};
#define NPOWEXP 7
START_TEST(test_pow) { run_unary("pow", UN_POW, pow_exps[_i / NUNSHAPE], 0.5, 2.0, _i % NUNSHAPE); }
END_TEST
START_TEST(test_exp) { run_unary("exp", UN_EXP, 0, -1.5, 1.5, _i); }
END_TEST
START_TEST(test_ln) { run_unary("ln", UN_LN, 0, 0.5, 2.5, _i); }
END_TEST
START_TEST(test_sqrt) { run_unary("sqrt", UN_SQRT, 0, 0.5, 2.5, _i); }
END_TEST
START_TEST(test_tanh) { run_unary("tanh", UN_TANH, 0, -2, 2, _i); }
END_TEST
START_TEST(test_sin) { run_unary("sin", UN_SIN, 0, -3, 3, _i); }
END_TEST
START_TEST(test_cos) { run_unary("cos", UN_COS, 0, -3, 3, _i); }
END_TEST
START_TEST(test_sigmoid) { run_unary("sigmoid", UN_SIGMOID, 0, -3, 3, _i); }
END_TEST
START_TEST(test_softplus) { run_unary("softplus", UN_SOFTPLUS, 0, -3, 3, _i); }
END_TEST
START_TEST(test_scale) { run_unary("scale", UN_SCALE, -1.75, -2, 2, _i); }
END_TEST
START_TEST(test_add_scalar) { run_unary("add_scalar", UN_ADD_SCALAR, 0.625, -2, 2, _i); }
END_TEST
START_TEST(test_erf) { run_unary("erf", UN_ERF, 0, -2.5, 2.5, _i); }
END_TEST
START_TEST(test_gelu) { run_unary("gelu", UN_GELU, 0, -3, 3, _i); }
END_TEST

/* ------------------------------------------------------------------ */
/* Matrix products                                                     */
/* ------------------------------------------------------------------ */

static sv_node *build_matmul(const opcase *c, sv_node *const *x)
{
  if (c->op == 0)
    return sv_matmul(x[0], x[1]);
  return sv_matmul_t(x[0], c->ta, x[1], c->tb);
}

static void ref_matmul(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                       double *y)
{
  (void)batch;
  /* leading axes of a are rows: flatten them (and b's, for a^T b) */
  int na = xs[0].nd, nb = xs[1].nd;
  int ar = (int)(shp_count(&xs[0]) / (size_t)xs[0].d[na - 1]), ac = xs[0].d[na - 1];
  int br = (int)(shp_count(&xs[1]) / (size_t)xs[1].d[nb - 1]), bc = xs[1].d[nb - 1];
  int m = c->ta ? ac : ar, k = c->ta ? ar : ac, n = c->tb ? br : bc;
  if (na > 2 && !c->ta) { /* [..., k] x [k, n] keeps a's leading axes */
    *ys = xs[0];
    ys->d[na - 1] = n;
  } else {
    ys->nd = 2;
    ys->d[0] = m;
    ys->d[1] = n;
  }
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      double s = 0;
      for (int l = 0; l < k; l++) {
        double u = c->ta ? x[0][l * ac + i] : x[0][i * ac + l];
        double w = c->tb ? x[1][j * bc + l] : x[1][l * bc + j];
        s += u * w;
      }
      y[i * n + j] = s;
    }
}

static const struct {
  int plain, ta, tb;
  shp a, b;
} mm_cases[] = {
  {1, 0, 0, S2(3, 4), S2(4, 2)},  /* sv_matmul */
  {0, 0, 0, S2(3, 4), S2(4, 2)},
  {0, 1, 0, S2(4, 3), S2(4, 2)},
  {0, 0, 1, S2(3, 4), S2(2, 4)},
  {0, 1, 1, S2(4, 3), S2(2, 4)},
  {1, 0, 0, S2(B, 4), S2(4, 2)},  /* batched rows */
  {0, 0, 1, S2(B, 4), S2(2, 4)},
  {0, 1, 0, S2(B, 3), S2(B, 2)},  /* contraction over the batch */
  {1, 0, 0, S3(B, 3, 4), S2(4, 2)}, /* stacked rows (jets) */
  {0, 0, 1, S3(2, 3, 4), S2(5, 4)},
  {0, 1, 0, S3(B, 3, 4), S3(B, 3, 2)}, /* contraction over batch and stack */
};
#define NMM ((int)(sizeof mm_cases / sizeof mm_cases[0]))

static void run_matmul(int i)
{
  opcase c = {0};
  c.nx = 2;
  c.x[0] = mm_cases[i].a;
  c.x[1] = mm_cases[i].b;
  c.op = !mm_cases[i].plain;
  c.ta = mm_cases[i].ta;
  c.tb = mm_cases[i].tb;
  c.lo = -1.5;
  c.hi = 1.5;
  c.build = build_matmul;
  c.ref = ref_matmul;
  char nm[64];
  if (mm_cases[i].plain)
    snprintf(nm, sizeof nm, "matmul");
  else
    snprintf(nm, sizeof nm, "matmul_t(ta=%d,tb=%d)", c.ta, c.tb);
  name_case(&c, nm);
  check(&c);
}

START_TEST(test_matmul) { run_matmul(_i); }
END_TEST

START_TEST(test_matmul_errors)
{
  sv_graph *g = sv_graph_new();
  int a[2] = {3, 4}, b[2] = {5, 2};
  sv_node *x = sv_input(g, "a", 2, a), *y = sv_input(g, "b", 2, b);
  ck_assert_ptr_null(sv_matmul(x, y));
  ck_assert_ptr_nonnull(sv_graph_error(g));
  ck_assert_msg(strstr(sv_graph_error(g), "[3,4]") && strstr(sv_graph_error(g), "[5,2]"),
                "matmul error does not name the shapes: %s", sv_graph_error(g));
  sv_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Reductions and broadcasting                                         */
/* ------------------------------------------------------------------ */

static sv_node *build_sum(const opcase *c, sv_node *const *x)
{
  return c->op ? sv_mean(x[0]) : sv_sum(x[0]);
}

static void ref_sum(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                    double *y)
{
  (void)batch;
  size_t n = shp_count(&xs[0]);
  double s = 0;
  for (size_t k = 0; k < n; k++)
    s += x[0][k];
  ys->nd = 0;
  y[0] = c->op ? s / (double)n : s;
}

static const shp red_shapes[] = {S1(5), S2(3, 4), S3(2, 3, 4), S2(B, 3), S3(B, 2, 2)};
#define NREDSHAPE 5

static void run_sum(int mean, int i)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = red_shapes[i];
  c.op = mean;
  c.lo = -1.5;
  c.hi = 1.5;
  c.build = build_sum;
  c.ref = ref_sum;
  name_case(&c, mean ? "mean" : "sum");
  check(&c);
}

START_TEST(test_sum) { run_sum(0, _i); }
END_TEST
START_TEST(test_mean) { run_sum(1, _i); }
END_TEST

static sv_node *build_sum_axis(const opcase *c, sv_node *const *x)
{
  return c->op ? sv_mean_axis(x[0], c->axis) : sv_sum_axis(x[0], c->axis);
}

static void ref_sum_axis(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                         double *y)
{
  (void)batch;
  const shp *a = &xs[0];
  int axis = c->axis < 0 ? c->axis + a->nd : c->axis;
  ys->nd = a->nd - 1;
  for (int i = 0, j = 0; i < a->nd; i++)
    if (i != axis)
      ys->d[j++] = a->d[i];
  size_t ny = shp_count(ys);
  for (size_t k = 0; k < ny; k++)
    y[k] = 0;
  for (size_t k = 0; k < shp_count(a); k++) {
    int ix[SV_MAX_DIMS] = {0}, jx[SV_MAX_DIMS] = {0};
    unflat(a, k, ix);
    for (int i = 0, j = 0; i < a->nd; i++)
      if (i != axis)
        jx[j++] = ix[i];
    y[flat(ys, jx)] += x[0][k];
  }
  if (c->op)
    for (size_t k = 0; k < ny; k++)
      y[k] /= a->d[axis];
}

static const struct {
  shp a;
  int axis;
} axis_cases[] = {
  {S3(2, 3, 4), 0}, {S3(2, 3, 4), 1}, {S3(2, 3, 4), 2}, {S3(2, 3, 4), -1}, {S3(2, 3, 4), -3},
  {S2(3, 4), 0}, {S2(3, 4), -1}, {S1(5), 0},
  {S3(B, 3, 2), 0}, {S3(B, 3, 2), 1}, {S3(B, 3, 2), -1}, {S2(B, 3), -2},
};
#define NAXIS ((int)(sizeof axis_cases / sizeof axis_cases[0]))

static void run_sum_axis(int mean, int i)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = axis_cases[i].a;
  c.axis = axis_cases[i].axis;
  c.op = mean;
  c.lo = -1.5;
  c.hi = 1.5;
  c.build = build_sum_axis;
  c.ref = ref_sum_axis;
  char nm[64];
  snprintf(nm, sizeof nm, "%s_axis(%d)", mean ? "mean" : "sum", c.axis);
  name_case(&c, nm);
  check(&c);
}

START_TEST(test_sum_axis) { run_sum_axis(0, _i); }
END_TEST
START_TEST(test_mean_axis) { run_sum_axis(1, _i); }
END_TEST

/* sum_to and broadcast_to: target shapes with SV_BATCH resolve to batch. */
static sv_node *build_sum_to(const opcase *c, sv_node *const *x)
{
  return sv_sum_to(x[0], c->t.nd, c->t.d);
}

static void ref_sum_to(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                       double *y)
{
  *ys = shp_resolve(&c->t, batch);
  for (size_t k = 0; k < shp_count(ys); k++)
    y[k] = 0;
  for (size_t k = 0; k < shp_count(&xs[0]); k++)
    y[bmap(&xs[0], k, ys)] += x[0][k];
}

static sv_node *build_broadcast_to(const opcase *c, sv_node *const *x)
{
  return sv_broadcast_to(x[0], c->t.nd, c->t.d);
}

static void ref_broadcast_to(const opcase *c, int batch, const shp *xs, const double *const *x,
                             shp *ys, double *y)
{
  *ys = shp_resolve(&c->t, batch);
  for (size_t k = 0; k < shp_count(ys); k++)
    y[k] = x[0][bmap(ys, k, &xs[0])];
}

static const shp sumto_cases[][2] = {
  {S3(2, 3, 4), S2(3, 4)}, {S3(2, 3, 4), S3(2, 1, 4)}, {S3(2, 3, 4), S2(3, 1)},
  {S3(2, 3, 4), S1(4)},    {S3(2, 3, 4), S0},          {S2(3, 4), S2(1, 1)},
  {S2(3, 4), S2(3, 4)},    {S2(B, 3), S1(3)},          {S2(B, 3), S2(B, 1)},
  {S2(B, 3), S0},
};
#define NSUMTO ((int)(sizeof sumto_cases / sizeof sumto_cases[0]))

static const shp bcast_cases[][2] = {
  {S2(3, 1), S3(2, 3, 4)}, {S1(4), S3(2, 3, 4)}, {S0, S2(2, 3)},  {S3(2, 1, 4), S3(2, 3, 4)},
  {S2(1, 4), S2(3, 4)},    {S1(3), S2(B, 3)},    {S2(B, 1), S2(B, 3)}, {S0, S2(B, 2)},
};
#define NBCAST ((int)(sizeof bcast_cases / sizeof bcast_cases[0]))

static void run_sum_to(int bc, int i)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = bc ? bcast_cases[i][0] : sumto_cases[i][0];
  c.t = bc ? bcast_cases[i][1] : sumto_cases[i][1];
  c.lo = -1.5;
  c.hi = 1.5;
  c.build = bc ? build_broadcast_to : build_sum_to;
  c.ref = bc ? ref_broadcast_to : ref_sum_to;
  char nm[64], ts[48];
  shp_format(&c.t, ts, sizeof ts);
  snprintf(nm, sizeof nm, "%s(%s)", bc ? "broadcast_to" : "sum_to", ts);
  name_case(&c, nm);
  check(&c);
}

START_TEST(test_sum_to) { run_sum_to(0, _i); }
END_TEST
START_TEST(test_broadcast_to) { run_sum_to(1, _i); }
END_TEST

/* ------------------------------------------------------------------ */
/* Shape ops                                                           */
/* ------------------------------------------------------------------ */

static sv_node *build_reshape(const opcase *c, sv_node *const *x)
{
  return sv_reshape(x[0], c->t.nd, c->t.d);
}

static void ref_reshape(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                        double *y)
{
  *ys = shp_resolve(&c->t, batch);
  memcpy(y, x[0], shp_count(&xs[0]) * sizeof(double));
}

static const shp reshape_cases[][2] = {
  {S3(2, 3, 4), S2(6, 4)}, {S3(2, 3, 4), S1(24)}, {S2(4, 6), S3(2, 3, 4)},
  {S1(1), S0},             {S3(B, 2, 3), S2(B, 6)}, {S2(B, 6), S3(B, 3, 2)},
};
#define NRESHAPE ((int)(sizeof reshape_cases / sizeof reshape_cases[0]))

START_TEST(test_reshape)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = reshape_cases[_i][0];
  c.t = reshape_cases[_i][1];
  c.lo = -1.5;
  c.hi = 1.5;
  c.build = build_reshape;
  c.ref = ref_reshape;
  char nm[64], ts[48];
  shp_format(&c.t, ts, sizeof ts);
  snprintf(nm, sizeof nm, "reshape(%s)", ts);
  name_case(&c, nm);
  check(&c);
}
END_TEST

static sv_node *build_transpose(const opcase *c, sv_node *const *x)
{
  (void)c;
  return sv_transpose(x[0]);
}

static void ref_transpose(const opcase *c, int batch, const shp *xs, const double *const *x,
                          shp *ys, double *y)
{
  (void)c, (void)batch;
  int r = xs[0].d[0], cc = xs[0].d[1];
  ys->nd = 2;
  ys->d[0] = cc;
  ys->d[1] = r;
  for (int i = 0; i < r; i++)
    for (int j = 0; j < cc; j++)
      y[j * r + i] = x[0][i * cc + j];
}

static const shp transpose_cases[] = {S2(3, 5), S2(1, 4), S2(4, 4)};

START_TEST(test_transpose)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = transpose_cases[_i];
  c.lo = -1.5;
  c.hi = 1.5;
  c.build = build_transpose;
  c.ref = ref_transpose;
  name_case(&c, "transpose");
  check(&c);
}
END_TEST

static sv_node *build_slice(const opcase *c, sv_node *const *x)
{
  return sv_slice(x[0], c->axis, c->start, c->len);
}

static void ref_slice(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                      double *y)
{
  (void)batch;
  int axis = c->axis < 0 ? c->axis + xs[0].nd : c->axis;
  *ys = xs[0];
  ys->d[axis] = c->len;
  for (size_t k = 0; k < shp_count(ys); k++) {
    int ix[SV_MAX_DIMS] = {0};
    unflat(ys, k, ix);
    ix[axis] += c->start;
    y[k] = x[0][flat(&xs[0], ix)];
  }
}

static const struct {
  shp a;
  int axis, start, len;
} slice_cases[] = {
  {S3(3, 4, 5), 0, 1, 2}, {S3(3, 4, 5), 1, 0, 3}, {S3(3, 4, 5), 2, 2, 3}, {S3(3, 4, 5), -1, 1, 1},
  {S3(3, 4, 5), 1, 3, 1}, {S2(3, 4), 0, 0, 3},    {S1(6), 0, 2, 3},       {S2(B, 4), 1, 1, 2},
  {S3(B, 3, 2), -2, 0, 2},
};
#define NSLICE ((int)(sizeof slice_cases / sizeof slice_cases[0]))

START_TEST(test_slice)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = slice_cases[_i].a;
  c.axis = slice_cases[_i].axis;
  c.start = slice_cases[_i].start;
  c.len = slice_cases[_i].len;
  c.lo = -1.5;
  c.hi = 1.5;
  c.build = build_slice;
  c.ref = ref_slice;
  char nm[64];
  snprintf(nm, sizeof nm, "slice(axis %d, start %d, len %d)", c.axis, c.start, c.len);
  name_case(&c, nm);
  check(&c);
}
END_TEST

static sv_node *build_concat(const opcase *c, sv_node *const *x)
{
  return sv_concat(c->nx, x, c->axis);
}

static void ref_concat(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                       double *y)
{
  (void)batch;
  int axis = c->axis < 0 ? c->axis + xs[0].nd : c->axis;
  *ys = xs[0];
  ys->d[axis] = 0;
  for (int i = 0; i < c->nx; i++)
    ys->d[axis] += xs[i].d[axis];
  for (size_t k = 0; k < shp_count(ys); k++) {
    int ix[SV_MAX_DIMS] = {0}, part = 0;
    unflat(ys, k, ix);
    while (ix[axis] >= xs[part].d[axis])
      ix[axis] -= xs[part++].d[axis];
    y[k] = x[part][flat(&xs[part], ix)];
  }
}

static const struct {
  int n, axis;
  shp p[MAXX];
} concat_cases[] = {
  {2, 0, {S2(2, 3), S2(3, 3)}},
  {3, 1, {S2(2, 1), S2(2, 3), S2(2, 2)}},
  {2, -1, {S3(2, 2, 1), S3(2, 2, 3)}},
  {3, 1, {S3(2, 1, 2), S3(2, 2, 2), S3(2, 1, 2)}},
  {2, 0, {S1(2), S1(3)}},
  {2, 1, {S2(B, 2), S2(B, 1)}},
  {3, -1, {S2(B, 1), S2(B, 2), S2(B, 1)}},
};
#define NCONCAT ((int)(sizeof concat_cases / sizeof concat_cases[0]))

START_TEST(test_concat)
{
  opcase c = {0};
  c.nx = concat_cases[_i].n;
  for (int i = 0; i < c.nx; i++)
    c.x[i] = concat_cases[_i].p[i];
  c.axis = concat_cases[_i].axis;
  c.lo = -1.5;
  c.hi = 1.5;
  c.build = build_concat;
  c.ref = ref_concat;
  char nm[64];
  snprintf(nm, sizeof nm, "concat(axis %d)", c.axis);
  name_case(&c, nm);
  check(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Rows by index                                                       */
/* ------------------------------------------------------------------ */

static sv_node *build_gather(const opcase *c, sv_node *const *x)
{
  return sv_gather_rows(x[0], c->m, c->idx);
}

static size_t row_size(const shp *s)
{
  return shp_count(s) / (size_t)s->d[0];
}

static void ref_gather(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                       double *y)
{
  (void)batch;
  size_t r = row_size(&xs[0]);
  *ys = xs[0];
  ys->d[0] = c->m;
  for (int i = 0; i < c->m; i++)
    for (size_t k = 0; k < r; k++)
      y[(size_t)i * r + k] = x[0][(size_t)c->idx[i] * r + k];
}

static sv_node *build_scatter(const opcase *c, sv_node *const *x)
{
  return sv_scatter_add_rows(x[0], c->m, c->idx, c->nrows);
}

static void ref_scatter(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                        double *y)
{
  (void)batch;
  size_t r = row_size(&xs[0]);
  *ys = xs[0];
  ys->d[0] = c->nrows;
  for (size_t k = 0; k < shp_count(ys); k++)
    y[k] = 0;
  for (int i = 0; i < c->m; i++)
    for (size_t k = 0; k < r; k++)
      y[(size_t)c->idx[i] * r + k] += x[0][(size_t)i * r + k];
}

/* Repeated indices, unused rows, first and last row. */
static const int gather_idx[] = {4, 0, 4, 2, 2, 1};
static const int scatter_idx[] = {1, 3, 1, 0, 3, 3};

static const shp gather_shapes[] = {S2(5, 3), S1(5), S3(5, 2, 2)};

START_TEST(test_gather_rows)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = gather_shapes[_i];
  c.m = 6;
  c.idx = gather_idx;
  c.lo = -1.5;
  c.hi = 1.5;
  c.build = build_gather;
  c.ref = ref_gather;
  name_case(&c, "gather_rows");
  check(&c);
}
END_TEST

static const shp scatter_shapes[] = {S2(6, 3), S1(6), S3(6, 2, 2)};

START_TEST(test_scatter_add_rows)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = scatter_shapes[_i];
  c.m = 6;
  c.nrows = 5; /* rows 2 and 4 receive nothing */
  c.idx = scatter_idx;
  c.lo = -1.5;
  c.hi = 1.5;
  c.build = build_scatter;
  c.ref = ref_scatter;
  name_case(&c, "scatter_add_rows");
  check(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* max over axes, logsumexp, log_softmax                               */
/* ------------------------------------------------------------------ */

/* y over the kept axes of x, folding each group with `fold` in row-major
   order (the reference for max and logsumexp). */
static void ref_reduce_axes(const shp *a, int mask, const double *x, shp *ys, double *y, int lse)
{
  ys->nd = 0;
  for (int i = 0; i < a->nd; i++)
    if (!(mask & (1 << i)))
      ys->d[ys->nd++] = a->d[i];
  size_t ny = shp_count(ys);
  double m[MAXE];
  int seen[MAXE] = {0};
  for (size_t k = 0; k < shp_count(a); k++) {
    int ix[SV_MAX_DIMS] = {0}, jx[SV_MAX_DIMS] = {0};
    unflat(a, k, ix);
    for (int i = 0, j = 0; i < a->nd; i++)
      if (!(mask & (1 << i)))
        jx[j++] = ix[i];
    size_t o = flat(ys, jx);
    if (!seen[o] || x[k] > m[o])
      m[o] = x[k];
    seen[o] = 1;
  }
  if (!lse) {
    memcpy(y, m, ny * sizeof *y);
    return;
  }
  for (size_t o = 0; o < ny; o++)
    y[o] = 0;
  for (size_t k = 0; k < shp_count(a); k++) {
    int ix[SV_MAX_DIMS] = {0}, jx[SV_MAX_DIMS] = {0};
    unflat(a, k, ix);
    for (int i = 0, j = 0; i < a->nd; i++)
      if (!(mask & (1 << i)))
        jx[j++] = ix[i];
    size_t o = flat(ys, jx);
    y[o] += exp(x[k] - m[o]);
  }
  for (size_t o = 0; o < ny; o++)
    y[o] = m[o] + log(y[o]);
}

static int axes_mask(const opcase *c, int nd)
{
  int mask = 0;
  for (int j = 0; j < c->naxes; j++)
    mask |= 1 << (c->axes[j] < 0 ? c->axes[j] + nd : c->axes[j]);
  return mask;
}

static sv_node *build_max(const opcase *c, sv_node *const *x)
{
  return c->naxes == 1 ? sv_max_axis(x[0], c->axes[0]) : sv_max_axes(x[0], c->naxes, c->axes);
}

static void ref_max(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                    double *y)
{
  (void)batch;
  ref_reduce_axes(&xs[0], axes_mask(c, xs[0].nd), x[0], ys, y, 0);
}

static const struct {
  shp a;
  int naxes, axes[3];
} max_cases[] = {
  {S3(2, 3, 4), 1, {0}}, {S3(2, 3, 4), 1, {1}}, {S3(2, 3, 4), 1, {-1}}, {S3(2, 3, 4), 2, {0, 2}},
  {S3(2, 3, 4), 2, {2, 1}}, {S3(2, 3, 4), 3, {0, 1, 2}}, {S1(6), 1, {0}},
  {S2(B, 5), 1, {1}}, {S2(B, 5), 1, {0}}, {S3(B, 2, 3), 2, {1, 2}}, {S3(B, 2, 3), 2, {0, 2}},
};
#define NMAX ((int)(sizeof max_cases / sizeof max_cases[0]))

START_TEST(test_max_axes)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = max_cases[_i].a;
  c.naxes = max_cases[_i].naxes;
  memcpy(c.axes, max_cases[_i].axes, sizeof max_cases[_i].axes);
  c.lo = -2;
  c.hi = 2;
  c.build = build_max;
  c.ref = ref_max;
  char nm[64];
  snprintf(nm, sizeof nm, "max(axes %d %d %d / %d)", c.axes[0], c.axes[1], c.axes[2], c.naxes);
  name_case(&c, nm);
  check(&c);
}
END_TEST

/* The subgradient on ties goes to the first maximum; NaN propagates. */
START_TEST(test_max_ties)
{
  sv_graph *g = sv_graph_new();
  int d[2] = {2, 4};
  sv_node *x = sv_input(g, "x", 2, d);
  sv_node *m = sv_max_axis(x, 1), *dx = sv_grad(sv_sum(m), x);
  sv_node *outs[2] = {m, dx};
  sv_plan *pl = sv_compile(g, 2, outs, 1);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  double xd[8] = {1, 3, 3, 2, /* a tie */ -1, NAN, 5, 0 /* a NaN */};
  sv_plan_bind(pl, x, xd);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  const double *mv = sv_plan_value(pl, m), *gv = sv_plan_value(pl, dx);
  ck_assert(mv[0] == 3 && isnan(mv[1]));
  double want[8] = {0, 1, 0, 0, 0, 1, 0, 0};
  for (int k = 0; k < 8; k++)
    ck_assert_msg(gv[k] == want[k], "dmax/dx[%d] = %g, expected %g", k, gv[k], want[k]);
  sv_plan_free(pl);
  sv_graph_free(g);
}
END_TEST

/* sort along the last axis, largest first; the reference selects the
   largest remaining element each time (not the op's insertion sort). */
static sv_node *build_sort(const opcase *c, sv_node *const *x)
{
  (void)c;
  return sv_sort_last(x[0]);
}

static void ref_sort(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                     double *y)
{
  (void)c;
  (void)batch;
  *ys = xs[0];
  size_t L = (size_t)xs[0].d[xs[0].nd - 1], n = shp_count(&xs[0]);
  for (size_t r = 0; r < n / L; r++) {
    int used[64] = {0};
    ck_assert(L <= 64);
    for (size_t j = 0; j < L; j++) {
      size_t best = L;
      for (size_t i = 0; i < L; i++)
        if (!used[i] && (best == L || x[0][r * L + i] > x[0][r * L + best]))
          best = i;
      used[best] = 1;
      y[r * L + j] = x[0][r * L + best];
    }
  }
}

static const shp sort_cases[] = {S1(7), S2(3, 8), S3(2, 3, 5), S2(B, 8), S3(B, 4, 8), S2(4, 1)};
#define NSORT ((int)(sizeof sort_cases / sizeof sort_cases[0]))

START_TEST(test_sort_last)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = sort_cases[_i];
  c.lo = -2;
  c.hi = 2;
  c.build = build_sort;
  c.ref = ref_sort;
  name_case(&c, "sort_last");
  check(&c);
}
END_TEST

/* Ties keep their order (the adjoint of each output goes to the position it
   was read from); NaN sorts first; the batch axis cannot be sorted. */
START_TEST(test_sort_ties)
{
  sv_graph *g = sv_graph_new();
  int d[2] = {2, 4};
  sv_node *x = sv_input(g, "x", 2, d);
  double wd[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  sv_node *w = sv_constant(g, 2, d, wd);
  sv_node *s = sv_sort_last(x), *dx = sv_grad(sv_sum(sv_mul(s, w)), x);
  sv_node *outs[2] = {s, dx};
  sv_plan *pl = sv_compile(g, 2, outs, 1);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  double xd[8] = {1, 3, 3, 2, /* a tie */ -1, NAN, 5, 0 /* a NaN */};
  sv_plan_bind(pl, x, xd);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  const double *sv = sv_plan_value(pl, s), *gv = sv_plan_value(pl, dx);
  double want_s[8] = {3, 3, 2, 1, NAN, 5, 0, -1};
  /* x[1] (first 3) -> output 0, x[2] -> 1, x[3] -> 2, x[0] -> 3 */
  double want_g[8] = {4, 1, 2, 3, 8, 5, 6, 7};
  for (int k = 0; k < 8; k++) {
    ck_assert_msg(isnan(want_s[k]) ? isnan(sv[k]) : sv[k] == want_s[k], "sort[%d] = %g", k, sv[k]);
    ck_assert_msg(gv[k] == want_g[k], "dsort/dx[%d] = %g, expected %g", k, gv[k], want_g[k]);
  }
  sv_plan_free(pl);
  int bd[1] = {SV_BATCH};
  ck_assert_ptr_null(sv_sort_last(sv_input(g, "b", 1, bd)));
  sv_graph_free(g);
}
END_TEST

static sv_node *build_logsumexp(const opcase *c, sv_node *const *x) { return sv_logsumexp(x[0], c->axis); }

static void ref_logsumexp(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                          double *y)
{
  (void)batch;
  int axis = c->axis < 0 ? c->axis + xs[0].nd : c->axis;
  ref_reduce_axes(&xs[0], 1 << axis, x[0], ys, y, 1);
}

START_TEST(test_logsumexp)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = axis_cases[_i].a;
  c.axis = axis_cases[_i].axis;
  c.lo = -3;
  c.hi = 3;
  c.build = build_logsumexp;
  c.ref = ref_logsumexp;
  char nm[64];
  snprintf(nm, sizeof nm, "logsumexp(%d)", c.axis);
  name_case(&c, nm);
  check(&c);
}
END_TEST

/* Large inputs: no overflow, exact to rounding; -inf entries drop out. */
START_TEST(test_logsumexp_stable)
{
  sv_graph *g = sv_graph_new();
  int d[2] = {3, 3};
  sv_node *x = sv_input(g, "x", 2, d);
  sv_node *l = sv_logsumexp(x, 1), *ls = sv_log_softmax(x, 1);
  sv_node *outs[2] = {l, ls};
  sv_plan *pl = sv_compile(g, 2, outs, 1);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  double xd[9] = {1000, 1001, 999, -1000, -1001, -999, -INFINITY, 0, -INFINITY};
  sv_plan_bind(pl, x, xd);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  const double *lv = sv_plan_value(pl, l), *sv = sv_plan_value(pl, ls);
  double r0 = 1001 + log(1 + exp(-1.0) + exp(-2.0)), r1 = -999 + log(1 + exp(-1.0) + exp(-2.0));
  ck_assert_msg(fabs(lv[0] - r0) <= 1e-12 * fabs(r0), "lse %.17g vs %.17g", lv[0], r0);
  ck_assert_msg(fabs(lv[1] - r1) <= 1e-12 * fabs(r1), "lse %.17g vs %.17g", lv[1], r1);
  ck_assert(lv[2] == 0.0);
  ck_assert_msg(fabs(sv[1] - (1001 - r0)) <= 1e-12, "log_softmax %.17g", sv[1]);
  ck_assert(sv[7] == 0.0 && isinf(sv[6]) && sv[6] < 0);
  sv_plan_free(pl);
  sv_graph_free(g);
}
END_TEST

static sv_node *build_log_softmax(const opcase *c, sv_node *const *x)
{
  return sv_log_softmax(x[0], c->axis);
}

static void ref_log_softmax(const opcase *c, int batch, const shp *xs, const double *const *x,
                            shp *ys, double *y)
{
  (void)batch;
  const shp *a = &xs[0];
  int axis = c->axis < 0 ? c->axis + a->nd : c->axis;
  shp ls;
  double l[MAXE];
  ref_reduce_axes(a, 1 << axis, x[0], &ls, l, 1);
  *ys = *a;
  for (size_t k = 0; k < shp_count(a); k++) {
    int ix[SV_MAX_DIMS] = {0}, jx[SV_MAX_DIMS] = {0};
    unflat(a, k, ix);
    for (int i = 0, j = 0; i < a->nd; i++)
      if (i != axis)
        jx[j++] = ix[i];
    y[k] = x[0][k] - l[flat(&ls, jx)];
  }
}

/* axis_cases without the batch axis (a softmax over rows would mix them) */
static const int ls_cases[] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 10};
#define NLS ((int)(sizeof ls_cases / sizeof ls_cases[0]))

START_TEST(test_log_softmax)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = axis_cases[ls_cases[_i]].a;
  c.axis = axis_cases[ls_cases[_i]].axis;
  c.lo = -3;
  c.hi = 3;
  c.build = build_log_softmax;
  c.ref = ref_log_softmax;
  char nm[64];
  snprintf(nm, sizeof nm, "log_softmax(%d)", c.axis);
  name_case(&c, nm);
  check(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* softmax cross-entropy and onehot                                    */
/* ------------------------------------------------------------------ */

static sv_node *build_xent(const opcase *c, sv_node *const *x)
{
  (void)c;
  return sv_softmax_xent(x[0], x[1]);
}

static void ref_xent(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                     double *y)
{
  (void)c, (void)batch;
  const shp *z = &xs[0];
  int C = z->d[z->nd - 1];
  *ys = xs[1];
  for (size_t r = 0; r < shp_count(ys); r++) {
    const double *zr = x[0] + r * (size_t)C;
    double m = zr[0], s = 0;
    for (int j = 1; j < C; j++)
      m = fmax(m, zr[j]);
    for (int j = 0; j < C; j++)
      s += exp(zr[j] - m);
    y[r] = m + log(s) - zr[(int)x[1][r]];
  }
}

static const shp xent_cases[][2] = {
  {S2(B, 5), S1(B)}, {S2(4, 3), S1(4)}, {S3(B, 2, 3), S2(B, 2)}, {S1(6), S0}, {S2(B, 1), S1(B)},
};
#define NXENT ((int)(sizeof xent_cases / sizeof xent_cases[0]))

START_TEST(test_softmax_xent)
{
  opcase c = {0};
  c.nx = 2;
  c.x[0] = xent_cases[_i][0];
  c.x[1] = xent_cases[_i][1];
  c.fixed = 2;
  c.classes = c.x[0].d[c.x[0].nd - 1];
  c.lo = -3;
  c.hi = 3;
  c.build = build_xent;
  c.ref = ref_xent;
  name_case(&c, "softmax_xent");
  check(&c);
}
END_TEST

static sv_node *build_onehot(const opcase *c, sv_node *const *x) { return sv_onehot(x[0], c->classes); }

static void ref_onehot(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                       double *y)
{
  (void)batch;
  *ys = xs[0];
  ys->d[ys->nd++] = c->classes;
  for (size_t r = 0; r < shp_count(&xs[0]); r++)
    for (int j = 0; j < c->classes; j++)
      y[r * (size_t)c->classes + (size_t)j] = (int)x[0][r] == j;
}

static const shp onehot_cases[] = {S1(B), S2(3, 2), S0};

START_TEST(test_onehot)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = onehot_cases[_i];
  c.fixed = 1;
  c.classes = 4;
  c.build = build_onehot;
  c.ref = ref_onehot;
  name_case(&c, "onehot");
  check(&c);
}
END_TEST

/* A label that is not a class index fails the run with its value, never a
   write out of bounds. */
START_TEST(test_xent_bad_labels)
{
  static const double bad[] = {3, -1, 1.5, NAN};
  sv_graph *g = sv_graph_new();
  int dz[2] = {SV_BATCH, 3}, dl[1] = {SV_BATCH};
  sv_node *z = sv_input(g, "z", 2, dz), *lab = sv_input(g, "labels", 1, dl);
  sv_node *loss = sv_mean(sv_softmax_xent(z, lab));
  sv_plan *pl = sv_compile(g, 1, &loss, 2);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  double zd[6] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
  for (int k = 0; k < 4; k++) {
    double ld[2] = {0, bad[k]};
    sv_plan_bind(pl, z, zd);
    sv_plan_bind(pl, lab, ld);
    ck_assert_int_eq(sv_plan_run(pl), -1);
    ck_assert_msg(strstr(sv_errmsg(), "softmax_xent: label") && strstr(sv_errmsg(), "position 1") &&
                  strstr(sv_errmsg(), "[0, 3)"), "message: %s", sv_errmsg());
  }
  /* shapes that do not fit are refused when building */
  int d4[1] = {4};
  sv_node *l4 = sv_input(g, "l4", 1, d4);
  ck_assert_ptr_null(sv_softmax_xent(z, l4));
  ck_assert_msg(strstr(sv_graph_error(g), "softmax_xent: logits [B,3] and labels [4]"), "%s",
                sv_graph_error(g));
  sv_plan_free(pl);
  sv_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------------ */
/* layer normalisation                                                 */
/* ------------------------------------------------------------------ */

static const double LN_EPS = 1e-5;

static sv_node *build_layer_norm(const opcase *c, sv_node *const *x)
{
  if (c->nx == 3)
    return sv_layer_norm_affine(x[0], c->naxes, LN_EPS, x[1], x[2]);
  return sv_layer_norm(x[0], c->naxes, LN_EPS);
}

static void ref_layer_norm(const opcase *c, int batch, const shp *xs, const double *const *x,
                           shp *ys, double *y)
{
  (void)batch;
  *ys = xs[0];
  size_t M = 1;
  for (int a = xs[0].nd - c->naxes; a < xs[0].nd; a++)
    M *= (size_t)xs[0].d[a];
  for (size_t r = 0; r < shp_count(ys) / M; r++) {
    const double *xr = x[0] + r * M;
    double mu = 0, var = 0;
    for (size_t j = 0; j < M; j++)
      mu += xr[j] / (double)M;
    for (size_t j = 0; j < M; j++)
      var += (xr[j] - mu) * (xr[j] - mu) / (double)M;
    for (size_t j = 0; j < M; j++) {
      double v = (xr[j] - mu) / sqrt(var + LN_EPS);
      y[r * M + j] = c->nx == 3 ? v * x[1][j] + x[2][j] : v;
    }
  }
}

static const struct {
  shp x, p;
  int naxes, affine;
} ln_cases[] = {
  {S2(B, 6), S0, 1, 0}, {S2(3, 4), S0, 1, 0}, {S2(3, 4), S0, 2, 0}, {S3(B, 2, 3), S0, 2, 0},
  {S3(2, 3, 4), S0, 1, 0}, {S2(B, 4), S1(4), 1, 1}, {S3(B, 2, 3), S2(2, 3), 2, 1},
};
#define NLN ((int)(sizeof ln_cases / sizeof ln_cases[0]))

START_TEST(test_layer_norm)
{
  opcase c = {0};
  c.nx = ln_cases[_i].affine ? 3 : 1;
  c.x[0] = ln_cases[_i].x;
  c.x[1] = c.x[2] = ln_cases[_i].p;
  c.naxes = ln_cases[_i].naxes;
  c.lo = -2;
  c.hi = 2;
  c.build = build_layer_norm;
  c.ref = ref_layer_norm;
  char nm[64];
  snprintf(nm, sizeof nm, "layer_norm%s(%d axes)", c.nx == 3 ? "_affine" : "", c.naxes);
  name_case(&c, nm);
  check(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 2-D convolution and max-pooling                                     */
/* ------------------------------------------------------------------ */

/* The direct sum, independent of the library's im2col. */
static void conv2d_ref(const shp *xs, const double *x, const shp *ws, const double *w, int s, int pad,
                       shp *ys, double *y)
{
  int nb = xs->d[0], C = xs->d[1], H = xs->d[2], W = xs->d[3];
  int O = ws->d[0], kh = ws->d[2], kw = ws->d[3];
  int Ho = (H + 2 * pad - kh) / s + 1, Wo = (W + 2 * pad - kw) / s + 1;
  ys->nd = 4;
  ys->d[0] = nb, ys->d[1] = O, ys->d[2] = Ho, ys->d[3] = Wo;
  for (int b = 0; b < nb; b++)
    for (int o = 0; o < O; o++)
      for (int i = 0; i < Ho; i++)
        for (int j = 0; j < Wo; j++) {
          double acc = 0;
          for (int c = 0; c < C; c++)
            for (int p = 0; p < kh; p++)
              for (int q = 0; q < kw; q++) {
                int yy = i * s + p - pad, xx = j * s + q - pad;
                if (yy >= 0 && yy < H && xx >= 0 && xx < W)
                  acc += w[((o * C + c) * kh + p) * kw + q] * x[((b * C + c) * H + yy) * W + xx];
              }
          y[((b * O + o) * Ho + i) * Wo + j] = acc;
        }
}

static sv_node *build_conv2d(const opcase *c, sv_node *const *x) { return sv_conv2d(x[0], x[1], c->start, c->len); }

static void ref_conv2d(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                       double *y)
{
  (void)batch;
  conv2d_ref(&xs[0], x[0], &xs[1], x[1], c->start, c->len, ys, y);
}

static const struct {
  shp x, w;
  int stride, pad;
} conv_cases[] = {
  {{4, {B, 2, 5, 5}}, {4, {3, 2, 3, 3}}, 1, 1}, {{4, {B, 2, 5, 5}}, {4, {3, 2, 3, 3}}, 2, 0},
  {{4, {B, 2, 5, 4}}, {4, {2, 2, 2, 3}}, 2, 1}, {{4, {2, 1, 4, 6}}, {4, {3, 1, 1, 1}}, 1, 0},
  {{4, {1, 3, 4, 4}}, {4, {2, 3, 5, 5}}, 1, 2}, {{4, {B, 1, 3, 3}}, {4, {2, 1, 3, 3}}, 3, 1},
};
#define NCONV ((int)(sizeof conv_cases / sizeof conv_cases[0]))

/* conv_cases[i] through the harness (direct sums, finite differences of
   first and second order), by the algorithm the environment leaves. */
static void conv2d_harness_case(int i, const char *label)
{
  opcase c = {0};
  c.nx = 2;
  c.x[0] = conv_cases[i].x;
  c.x[1] = conv_cases[i].w;
  c.start = conv_cases[i].stride;
  c.len = conv_cases[i].pad;
  c.lo = -1;
  c.hi = 1;
  c.build = build_conv2d;
  c.ref = ref_conv2d;
  char nm[64];
  snprintf(nm, sizeof nm, "%s(stride %d, pad %d)", label, c.start, c.len);
  name_case(&c, nm);
  check(&c);
}

START_TEST(test_conv2d) { conv2d_harness_case(_i, "conv2d"); }
END_TEST

/* At a size the harness cannot difference element by element: the values
   and both adjoints against direct sums (the adjoints as sums over the
   definition: dx = sum_o w * G shifted, dw = sum_b G * x shifted). */
#define NCONV_LARGE 6
static void conv2d_large_case(int i)
{
  static const int cfg[NCONV_LARGE][2] = {{1, 2}, {2, 2}, {1, 0}, {1, 2}, {1, 2}, {1, 1}};
  int st = cfg[i][0], pad = cfg[i][1];
  shp xs = {4, {3, 4, 9, 7}}, ws = {4, {5, 4, 5, 5}}, ys;
  if (i == 3) { /* 11 channels of 24x24 maps: the kernels take them in chunks of 4, 4, 3 */
    xs = (shp){4, {2, 11, 24, 24}};
    ws = (shp){4, {3, 11, 5, 5}};
  }
  if (i == 4) { /* 70 images: the FFT kernels take them in chunks of 64 and 6 */
    xs = (shp){4, {70, 3, 6, 5}};
    ws = (shp){4, {4, 3, 5, 5}};
  }
  if (i == 5) { /* a non-square filter on odd maps (transform sizes 9 x 15) */
    xs = (shp){4, {2, 3, 7, 13}};
    ws = (shp){4, {2, 3, 3, 5}};
  }
  size_t nx = shp_count(&xs), nw = shp_count(&ws);
  double *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *y = malloc(16384 * sizeof *y);
  double *G = malloc(16384 * sizeof *G), *dx = calloc(nx, sizeof *dx), *dw = calloc(nw, sizeof *dw);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  for (size_t k = 0; k < nx; k++)
    x[k] = 2 * gsl_rng_uniform(rng) - 1;
  for (size_t k = 0; k < nw; k++)
    w[k] = 2 * gsl_rng_uniform(rng) - 1;
  conv2d_ref(&xs, x, &ws, w, st, pad, &ys, y);
  size_t ny = shp_count(&ys);
  for (size_t k = 0; k < ny; k++)
    G[k] = 2 * gsl_rng_uniform(rng) - 1;
  ck_assert(ny <= 16384);
  int NB = xs.d[0], C = xs.d[1], H = xs.d[2], W = xs.d[3], O = ws.d[0], KH = ws.d[2], KW = ws.d[3],
      Ho = ys.d[2], Wo = ys.d[3];
  for (int b = 0; b < NB; b++)
    for (int o = 0; o < O; o++)
      for (int i = 0; i < Ho; i++)
        for (int j = 0; j < Wo; j++)
          for (int c2 = 0; c2 < C; c2++)
            for (int p = 0; p < KH; p++)
              for (int q = 0; q < KW; q++) {
                int yy = i * st + p - pad, xx = j * st + q - pad;
                if (yy < 0 || yy >= H || xx < 0 || xx >= W)
                  continue;
                double g = G[((b * O + o) * Ho + i) * Wo + j];
                dx[((b * C + c2) * H + yy) * W + xx] += g * w[((o * C + c2) * KH + p) * KW + q];
                dw[((o * C + c2) * KH + p) * KW + q] += g * x[((b * C + c2) * H + yy) * W + xx];
              }

  sv_graph *gr = sv_graph_new();
  sv_node *xn = sv_input(gr, "x", 4, xs.d), *wn = sv_input(gr, "w", 4, ws.d), *gn = sv_input(gr, "G", 4, ys.d);
  sv_node *yn = sv_conv2d(xn, wn, st, pad), *d[2];
  ck_assert_msg(yn != NULL, "%s", sv_graph_error(gr));
  sv_node *xin[2] = {xn, wn};
  ck_assert_int_eq(sv_vjp(yn, gn, 2, xin, d), 0);
  sv_node *outs[3] = {yn, d[0], d[1]};
  sv_plan *pl = sv_compile(gr, 3, outs, 1);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  sv_plan_bind(pl, xn, x);
  sv_plan_bind(pl, wn, w);
  sv_plan_bind(pl, gn, G);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  expect_close("conv2d large", "y", sv_plan_value(pl, yn), y, ny, 1e-12);
  expect_close("conv2d large", "dx", sv_plan_value(pl, d[0]), dx, nx, 1e-12);
  expect_close("conv2d large", "dw", sv_plan_value(pl, d[1]), dw, nw, 1e-12);
  sv_plan_free(pl);
  sv_graph_free(gr);
  gsl_rng_free(rng);
  free(x), free(w), free(y), free(G), free(dx), free(dw);
}

START_TEST(test_conv2d_large) { conv2d_large_case(_i); }
END_TEST

/* The FFT kernels (conv_fft.c), forced by the environment, against the
   same direct sums and, through the harness, finite differences of first
   and second order (stride-2 cases fall back to im2col). */
START_TEST(test_conv2d_large_fft)
{
  setenv("SOLVER_CONV2D", "fft", 1);
  conv2d_large_case(_i);
  unsetenv("SOLVER_CONV2D");
}
END_TEST

START_TEST(test_conv2d_fft)
{
  setenv("SOLVER_CONV2D", "fft", 1);
  conv2d_harness_case(_i, "conv2d fft");
  unsetenv("SOLVER_CONV2D");
}
END_TEST

/* A bad SOLVER_CONV2D is refused when a plan is compiled, with its value. */
START_TEST(test_conv2d_algorithm_env)
{
  setenv("SOLVER_CONV2D", "winograd", 1);
  sv_graph *g = sv_graph_new();
  int dx[4] = {2, 2, 5, 5}, dw[4] = {3, 2, 3, 3};
  sv_node *y = sv_conv2d(sv_input(g, "x", 4, dx), sv_input(g, "w", 4, dw), 1, 1);
  ck_assert_ptr_nonnull(y);
  sv_plan *p = sv_compile(g, 1, &y, 1);
  ck_assert_ptr_null(p);
  ck_assert_msg(strstr(sv_errmsg(), "SOLVER_CONV2D = 'winograd'") != NULL, "%s", sv_errmsg());
  sv_graph_free(g);
  unsetenv("SOLVER_CONV2D");
}
END_TEST

START_TEST(test_conv2d_errors)
{
  sv_graph *g = sv_graph_new();
  int dx[4] = {SV_BATCH, 2, 5, 5}, dw[4] = {3, 4, 3, 3}, dw2[4] = {3, 2, 7, 7};
  sv_node *x = sv_input(g, "x", 4, dx);
  ck_assert_ptr_null(sv_conv2d(x, sv_input(g, "w", 4, dw), 1, 0));
  ck_assert_msg(strstr(sv_graph_error(g), "has 2 channels"), "%s", sv_graph_error(g));
  sv_graph_free(g);
  g = sv_graph_new();
  x = sv_input(g, "x", 4, dx);
  ck_assert_ptr_null(sv_conv2d(x, sv_input(g, "w", 4, dw2), 1, 0));
  ck_assert_msg(strstr(sv_graph_error(g), "does not fit"), "%s", sv_graph_error(g));
  sv_graph_free(g);
}
END_TEST

static sv_node *build_maxpool(const opcase *c, sv_node *const *x) { return sv_maxpool2d(x[0], c->m); }

static void ref_maxpool(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                        double *y)
{
  (void)batch;
  int k = c->m, H = xs[0].d[2], W = xs[0].d[3], Ho = H / k, Wo = W / k;
  *ys = xs[0];
  ys->d[2] = Ho, ys->d[3] = Wo;
  for (int pl = 0; pl < xs[0].d[0] * xs[0].d[1]; pl++)
    for (int i = 0; i < Ho; i++)
      for (int j = 0; j < Wo; j++) {
        double m = -INFINITY;
        for (int p = 0; p < k; p++)
          for (int q = 0; q < k; q++)
            m = fmax(m, x[0][(pl * H + i * k + p) * W + j * k + q]);
        y[(pl * Ho + i) * Wo + j] = m;
      }
}

static const struct {
  shp x;
  int k;
} pool_cases[] = {
  {{4, {B, 2, 4, 4}}, 2}, {{4, {2, 3, 5, 6}}, 2}, {{4, {B, 1, 6, 7}}, 3}, {{4, {1, 2, 3, 3}}, 1},
};
#define NPOOL ((int)(sizeof pool_cases / sizeof pool_cases[0]))

START_TEST(test_maxpool2d)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = pool_cases[_i].x;
  c.m = pool_cases[_i].k;
  c.lo = -2;
  c.hi = 2;
  c.build = build_maxpool;
  c.ref = ref_maxpool;
  char nm[64];
  snprintf(nm, sizeof nm, "maxpool2d(%d)", c.m);
  name_case(&c, nm);
  check(&c);
}
END_TEST

/* Ties: the first maximum of the window (row-major) gets the adjoint. */
START_TEST(test_maxpool2d_ties)
{
  sv_graph *g = sv_graph_new();
  int d[4] = {1, 1, 2, 4};
  sv_node *x = sv_input(g, "x", 4, d);
  sv_node *m = sv_maxpool2d(x, 2), *dx = sv_grad(sv_sum(m), x);
  sv_node *outs[2] = {m, dx};
  sv_plan *pl = sv_compile(g, 2, outs, 1);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  double xd[8] = {1, 2, 7, 7, 2, 0, 7, 1};
  sv_plan_bind(pl, x, xd);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  const double *mv = sv_plan_value(pl, m), *gv = sv_plan_value(pl, dx);
  ck_assert(mv[0] == 2 && mv[1] == 7);
  double want[8] = {0, 1, 1, 0, 0, 0, 0, 0};
  for (int k = 0; k < 8; k++)
    ck_assert_msg(gv[k] == want[k], "dpool/dx[%d] = %g, expected %g", k, gv[k], want[k]);
  sv_plan_free(pl);
  sv_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The jet activation (the layer of sv_mlp_jet)                        */
/* ------------------------------------------------------------------ */

/* internal to the core (exported for tests): see core/ops/jet.c */
sv_node *sv__jet_act(sv_node *S, sv_node *b, sv_activation act, int ndir, int order);

static sv_node *build_jet_act(const opcase *c, sv_node *const *x)
{
  return sv__jet_act(x[0], x[1], (sv_activation)c->op, c->m, c->len);
}

/* the activation and its derivatives, written out independently */
static void act3(int act, double h, double *s)
{
  double t;
  switch (act) {
  case SV_ACT_TANH: t = tanh(h); s[0] = t, s[1] = 1 - t * t, s[2] = -2 * t * (1 - t * t);
    s[3] = (-2 + 8 * t * t - 6 * t * t * t * t); break;
  case SV_ACT_SIN: s[0] = sin(h), s[1] = cos(h), s[2] = -sin(h), s[3] = -cos(h); break;
  default: s[0] = h, s[1] = 1, s[2] = 0, s[3] = 0; break;
  }
}

static void ref_jet_act(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                        double *y)
{
  (void)batch;
  *ys = xs[0];
  int d = c->m, order = c->len, J = 1 + order * d, w = xs[0].d[xs[0].nd - 1];
  size_t rows = shp_count(&xs[0]) / (size_t)(J * w);
  for (size_t r = 0; r < rows; r++)
    for (int j = 0; j < w; j++) {
      const double *S = x[0] + r * (size_t)(J * w);
      double *o = y + r * (size_t)(J * w), s[4];
      act3(c->op, S[j] + x[1][j], s);
      o[j] = s[0];
      for (int k = 0; k < d; k++) {
        double h1 = S[(1 + k) * w + j];
        o[(1 + k) * w + j] = s[1] * h1;
        if (order == 2)
          o[(1 + d + k) * w + j] = s[1] * S[(1 + d + k) * w + j] + s[2] * h1 * h1;
      }
    }
}

static const struct {
  shp S;
  int act, d, order;
} jet_cases[] = {
  {S3(B, 3, 4), SV_ACT_TANH, 1, 2}, {S3(B, 2, 3), SV_ACT_TANH, 1, 1}, {S3(2, 5, 3), SV_ACT_SIN, 2, 2},
  {S2(3, 4), SV_ACT_TANH, 1, 2}, {S3(B, 3, 2), SV_ACT_NONE, 1, 2}, {S3(B, 7, 2), SV_ACT_TANH, 3, 2},
};
#define NJET ((int)(sizeof jet_cases / sizeof jet_cases[0]))

START_TEST(test_jet_act)
{
  opcase c = {0};
  c.nx = 2;
  c.x[0] = jet_cases[_i].S;
  c.x[1] = (shp)S1(c.x[0].d[c.x[0].nd - 1]);
  c.op = jet_cases[_i].act;
  c.m = jet_cases[_i].d;
  c.len = jet_cases[_i].order;
  c.lo = -1.2;
  c.hi = 1.2;
  c.build = build_jet_act;
  c.ref = ref_jet_act;
  char nm[64];
  snprintf(nm, sizeof nm, "jet_act(%s, d %d, order %d)", sv_activation_name((sv_activation)c.op), c.m,
           c.len);
  name_case(&c, nm);
  check(&c);
}
END_TEST

/* ------------------------------------------------------------------ */
/* causal convolution along time (FFT)                                 */
/* ------------------------------------------------------------------ */

static sv_node *build_causal_conv(const opcase *c, sv_node *const *x)
{
  (void)c;
  return sv_causal_conv(x[0], x[1]);
}

/* y[b, l, h] = sum_{j <= l} k[h, j] u[b, l - j, h], summed directly. */
static void ref_causal_conv(const opcase *c, int batch, const shp *xs, const double *const *x,
                            shp *ys, double *y)
{
  (void)c, (void)batch;
  const shp *u = &xs[0];
  int Bn = u->nd == 3 ? u->d[0] : 1, L = u->d[u->nd - 2], H = u->d[u->nd - 1];
  *ys = *u;
  for (int b = 0; b < Bn; b++)
    for (int l = 0; l < L; l++)
      for (int h = 0; h < H; h++) {
        double s = 0;
        for (int j = 0; j <= l; j++)
          s += x[1][h * L + j] * x[0][(b * L + l - j) * H + h];
        y[(b * L + l) * H + h] = s;
      }
}

static sv_node *build_anticausal_conv(const opcase *c, sv_node *const *x)
{
  (void)c;
  return sv_anticausal_conv(x[0], x[1]);
}

/* y[b, m, h] = sum_{l >= m} k[h, l - m] u[b, l, h], summed directly. */
static void ref_anticausal_conv(const opcase *c, int batch, const shp *xs, const double *const *x,
                                shp *ys, double *y)
{
  (void)c, (void)batch;
  const shp *u = &xs[0];
  int Bn = u->nd == 3 ? u->d[0] : 1, L = u->d[u->nd - 2], H = u->d[u->nd - 1];
  *ys = *u;
  for (int b = 0; b < Bn; b++)
    for (int m = 0; m < L; m++)
      for (int h = 0; h < H; h++) {
        double s = 0;
        for (int l = m; l < L; l++)
          s += x[1][h * L + l - m] * x[0][(b * L + l) * H + h];
        y[(b * L + m) * H + h] = s;
      }
}

/* u [B|2|-, L, H], k [H, L]: odd, prime and power-of-two lengths; the
   transform lengths (2L - 1 rounded up to 2^a 3^b 5^c 7^d) are 1, 3, 14,
   25, 32. */
static const shp cconv_cases[][2] = {
  {S3(B, 1, 3), S2(3, 1)},   {S3(B, 2, 3), S2(3, 2)},  {S3(B, 7, 3), S2(3, 7)},
  {S3(B, 13, 2), S2(2, 13)}, {S3(B, 16, 3), S2(3, 16)}, {S2(1, 2), S2(2, 1)},
  {S2(7, 3), S2(3, 7)},      {S2(13, 1), S2(1, 13)},  {S2(16, 2), S2(2, 16)},
  {S3(2, 7, 4), S2(4, 7)},   {S3(3, 13, 1), S2(1, 13)},
};
#define NCCONV ((int)(sizeof cconv_cases / sizeof cconv_cases[0]))

/* Case i of cconv_cases for the causal or the anti-causal op. */
static void check_time_conv(int i, int anti)
{
  opcase c = {0};
  c.nx = 2;
  c.x[0] = cconv_cases[i][0];
  c.x[1] = cconv_cases[i][1];
  c.lo = -1;
  c.hi = 1;
  c.build = anti ? build_anticausal_conv : build_causal_conv;
  c.ref = anti ? ref_anticausal_conv : ref_causal_conv;
  name_case(&c, anti ? "anticausal_conv" : "causal_conv");
  check(&c);
}

START_TEST(test_causal_conv) { check_time_conv(_i, 0); }
END_TEST

START_TEST(test_anticausal_conv) { check_time_conv(_i, 1); }
END_TEST

/* ------------------------------------------------------------------ */
/* Leaves: constants, scalars, fill_like as operands                   */
/* ------------------------------------------------------------------ */

static const double kconst[4] = {0.5, -1.25, 2.0, 0.75};

/* y = (x * C) / s + fill_like(x, 0.3) * x with C a [4] constant, s a
   scalar constant: the leaves carry no gradient but scale it. */
static sv_node *build_leaves(const opcase *c, sv_node *const *x)
{
  (void)c;
  sv_graph *g = sv_node_graph(x[0]);
  int d = 4;
  sv_node *C = sv_constant(g, 1, &d, kconst), *s = sv_scalar(g, 1.6);
  return sv_add(sv_div(sv_mul(x[0], C), s), sv_mul(sv_fill_like(x[0], 0.3), sv_sin(x[0])));
}

static void ref_leaves(const opcase *c, int batch, const shp *xs, const double *const *x, shp *ys,
                       double *y)
{
  (void)c, (void)batch;
  *ys = xs[0];
  for (size_t k = 0; k < shp_count(ys); k++)
    y[k] = x[0][k] * kconst[k % 4] / 1.6 + 0.3 * sin(x[0][k]);
}

static const shp leaves_shapes[] = {S2(3, 4), S2(B, 4)};

START_TEST(test_leaves)
{
  opcase c = {0};
  c.nx = 1;
  c.x[0] = leaves_shapes[_i];
  c.lo = -1.5;
  c.hi = 1.5;
  c.build = build_leaves;
  c.ref = ref_leaves;
  name_case(&c, "constant, scalar, fill_like");
  check(&c);
}
END_TEST

/* A node y does not depend on: the gradient is zeros of x's shape. */
START_TEST(test_grad_independent)
{
  sv_graph *g = sv_graph_new();
  int d[2] = {SV_BATCH, 3};
  sv_node *x = sv_input(g, "x", 2, d), *z = sv_input(g, "z", 2, d);
  sv_node *dz = sv_grad(sv_sum(sv_tanh(x)), z);
  ck_assert_ptr_nonnull(dz);
  ck_assert_int_eq(sv_ndim(dz), 2);
  ck_assert_int_eq(sv_dim(dz, 0), SV_BATCH);
  ck_assert_int_eq(sv_dim(dz, 1), 3);
  sv_plan *pl = sv_compile(g, 1, &dz, 4);
  ck_assert_msg(pl != NULL, "%s", sv_errmsg());
  double zd[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  sv_plan_bind(pl, x, zd);
  sv_plan_bind(pl, z, zd);
  ck_assert_int_eq(sv_plan_run(pl), 0);
  const double *v = sv_plan_value(pl, dz);
  ck_assert_ptr_nonnull(v);
  ck_assert_uint_eq(sv_plan_size(pl, dz), 12);
  for (int k = 0; k < 12; k++)
    ck_assert(v[k] == 0.0);
  sv_plan_free(pl);
  sv_graph_free(g);
}
END_TEST

/* ------------------------------------------------------------------ */

static void add_loop(Suite *s, const char *name, const TTest *t, int n)
{
  TCase *tc = tcase_create(name);
  tcase_add_loop_test(tc, t, 0, n);
  suite_add_tcase(s, tc);
}

static Suite *ops_suite(void)
{
  Suite *s = suite_create("ops");
  add_loop(s, "add", test_add, NBINPAT);
  add_loop(s, "sub", test_sub, NBINPAT);
  add_loop(s, "mul", test_mul, NBINPAT);
  add_loop(s, "div", test_div, NBINPAT);
  add_loop(s, "neg", test_neg, NUNSHAPE);
  add_loop(s, "square", test_square, NUNSHAPE);
  add_loop(s, "pow", test_pow, NUNSHAPE * NPOWEXP);
  add_loop(s, "exp", test_exp, NUNSHAPE);
  add_loop(s, "ln", test_ln, NUNSHAPE);
  add_loop(s, "sqrt", test_sqrt, NUNSHAPE);
  add_loop(s, "tanh", test_tanh, NUNSHAPE);
  add_loop(s, "sin", test_sin, NUNSHAPE);
  add_loop(s, "cos", test_cos, NUNSHAPE);
  add_loop(s, "sigmoid", test_sigmoid, NUNSHAPE);
  add_loop(s, "softplus", test_softplus, NUNSHAPE);
  add_loop(s, "scale", test_scale, NUNSHAPE);
  add_loop(s, "add_scalar", test_add_scalar, NUNSHAPE);
  add_loop(s, "erf", test_erf, NUNSHAPE);
  add_loop(s, "gelu", test_gelu, NUNSHAPE);
  add_loop(s, "matmul", test_matmul, NMM);
  add_loop(s, "matmul_errors", test_matmul_errors, 1);
  add_loop(s, "sum", test_sum, NREDSHAPE);
  add_loop(s, "mean", test_mean, NREDSHAPE);
  add_loop(s, "sum_axis", test_sum_axis, NAXIS);
  add_loop(s, "mean_axis", test_mean_axis, NAXIS);
  add_loop(s, "sum_to", test_sum_to, NSUMTO);
  add_loop(s, "broadcast_to", test_broadcast_to, NBCAST);
  add_loop(s, "reshape", test_reshape, NRESHAPE);
  add_loop(s, "transpose", test_transpose, 3);
  add_loop(s, "slice", test_slice, NSLICE);
  add_loop(s, "concat", test_concat, NCONCAT);
  add_loop(s, "gather_rows", test_gather_rows, 3);
  add_loop(s, "scatter_add_rows", test_scatter_add_rows, 3);
  add_loop(s, "max_axes", test_max_axes, NMAX);
  add_loop(s, "max_ties", test_max_ties, 1);
  add_loop(s, "sort_last", test_sort_last, NSORT);
  add_loop(s, "sort_ties", test_sort_ties, 1);
  add_loop(s, "logsumexp", test_logsumexp, NAXIS);
  add_loop(s, "logsumexp_stable", test_logsumexp_stable, 1);
  add_loop(s, "log_softmax", test_log_softmax, NLS);
  add_loop(s, "softmax_xent", test_softmax_xent, NXENT);
  add_loop(s, "onehot", test_onehot, 3);
  add_loop(s, "xent_bad_labels", test_xent_bad_labels, 1);
  add_loop(s, "layer_norm", test_layer_norm, NLN);
  add_loop(s, "conv2d", test_conv2d, NCONV);
  add_loop(s, "conv2d_large", test_conv2d_large, NCONV_LARGE);
  add_loop(s, "conv2d_fft", test_conv2d_fft, NCONV);
  add_loop(s, "conv2d_large_fft", test_conv2d_large_fft, NCONV_LARGE);
  add_loop(s, "conv2d_algorithm_env", test_conv2d_algorithm_env, 1);
  add_loop(s, "conv2d_errors", test_conv2d_errors, 1);
  add_loop(s, "maxpool2d", test_maxpool2d, NPOOL);
  add_loop(s, "maxpool2d_ties", test_maxpool2d_ties, 1);
  add_loop(s, "jet_act", test_jet_act, NJET);
  add_loop(s, "causal_conv", test_causal_conv, NCCONV);
  add_loop(s, "anticausal_conv", test_anticausal_conv, NCCONV);
  add_loop(s, "leaves", test_leaves, 2);
  add_loop(s, "grad_independent", test_grad_independent, 1);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(ops_suite()); /* fork mode unless CK_FORK=no */
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
