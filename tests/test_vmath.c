/*
 * test_vmath.c -- the vectorised tanh, exp, sin, cos and erfc of the kernels
 * (core/vmath.c: SLEEF's 1-ulp routines where the CPU has AVX2 or AVX-512;
 * erfc is libmvec's or SLEEF's) against long-double references and against
 * the C library, over many points of each function's working range: at
 * most 1 ulp (erfc 2) from the long-double value, at most 1 ulp (erfc 2)
 * from libm wherever libm is correctly rounded; the sigmoid built on exp within
 * 4 ulp of its long-double value; and the same value for an element
 * whatever the array's length or alignment.
 */
#include <solver.h>

#include <check.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* internal to the core, exported for tests */
void sv__vtanh(const double *x, double *y, size_t n);
void sv__vexp(const double *x, double *y, size_t n);
void sv__vsin(const double *x, double *y, size_t n);
void sv__vcos(const double *x, double *y, size_t n);
void sv__verfc(const double *x, double *y, size_t n);
void sv__vsigmoid(const double *x, double *y, size_t n);
const char *sv__vmath_name(void);

static long double sigmoidl(long double x) { return 1.0L / (1.0L + expl(-x)); }
static double sigmoid_libm(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

typedef struct {
  const char *name;
  void (*vec)(const double *, double *, size_t);
  double (*libm)(double);
  long double (*ref)(long double);
  double lo, hi;
  double tol, libm_tol; /* ulps from the exact value, from a correctly rounded libm */
} fn;

static const fn fns[] = {
  {"tanh", sv__vtanh, tanh, tanhl, -20, 20, 1, 1},
  {"exp", sv__vexp, exp, expl, -700, 700, 1, 1},
  {"sin", sv__vsin, sin, sinl, -100, 100, 1, 1},
  {"cos", sv__vcos, cos, cosl, -100, 100, 1, 1},
  /* glibc's libmvec erfc (used when configure finds it) errs by up to 2 ulp */
  {"erfc", sv__verfc, erfc, erfcl, -6, 26, 2, 2.5},
  /* a composite: exp, a sum and a division round on top of exp's 1 ulp */
  {"sigmoid", sv__vsigmoid, sigmoid_libm, sigmoidl, -700, 700, 4, 4},
};
#define NFNS ((int)(sizeof fns / sizeof fns[0]))

/* |a - b| in units of the last place of b (as a double). */
static double ulps(double a, long double b)
{
  double bd = (double)b;
  double u = nextafter(fabs(bd), INFINITY) - fabs(bd);
  if (u == 0 || !isfinite(u))
    return a == bd ? 0 : INFINITY;
  return (double)(fabsl((long double)a - b) / u);
}

#define NPTS 200000

START_TEST(test_vmath_accuracy)
{
  const fn *f = &fns[_i];
  double *x = malloc(NPTS * sizeof *x), *y = malloc(NPTS * sizeof *y);
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, 17);
  /* uniform over the range, plus points near 0 where relative accuracy is
     hardest for tanh and sin */
  for (int i = 0; i < NPTS; i++)
    x[i] = i % 4 ? f->lo + (f->hi - f->lo) * gsl_rng_uniform(r)
                 : (2 * gsl_rng_uniform(r) - 1) * pow(10, -8 * gsl_rng_uniform(r));
  f->vec(x, y, NPTS);
  /* libm itself is not always correctly rounded (glibc's tanh errs by up
     to 1.5 ulp, e.g. at x = -0.5098): beyond 1 ulp from libm is accepted
     only where libm is more than half an ulp from the exact value. */
  double worst_ref = 0, worst_libm = 0, libm_own = 0;
  int at = 0, beyond = 0;
  for (int i = 0; i < NPTS; i++) {
    long double t = f->ref(x[i]);
    double lv = f->libm(x[i]);
    double e = ulps(y[i], t), l = ulps(y[i], (long double)lv), own = ulps(lv, t);
    if (e > worst_ref) {
      worst_ref = e;
      at = i;
    }
    worst_libm = fmax(worst_libm, l);
    libm_own = fmax(libm_own, own);
    beyond += l > f->libm_tol && own <= 0.5;
  }
  fprintf(stderr, "vmath %s (%s): max %.3f ulp from the exact value (at x = %.17g); "
          "max %.0f ulp from libm, whose own error is up to %.3f ulp\n",
          f->name, sv__vmath_name(), worst_ref, x[at], worst_libm, libm_own);
  ck_assert_msg(worst_ref <= f->tol, "%s: %.3f ulp from the long-double value at x = %.17g", f->name,
                worst_ref, x[at]);
  ck_assert_msg(beyond == 0, "%s: %d points too far from a correctly rounded libm value",
                f->name, beyond);
  gsl_rng_free(r);
  free(x), free(y);
}
END_TEST

/* The value of an element does not depend on where it sits in the array
   (the partial last vector goes through the same routine). */
START_TEST(test_vmath_position)
{
  const fn *f = &fns[_i];
  double x[37], all[37];
  for (int i = 0; i < 37; i++)
    x[i] = f->lo + (f->hi - f->lo) * (i + 0.5) / 37;
  f->vec(x, all, 37);
  for (int start = 0; start < 37; start++)
    for (int len = 1; start + len <= 37 && len <= 11; len++) {
      double part[11];
      f->vec(x + start, part, (size_t)len);
      for (int j = 0; j < len; j++)
        ck_assert_msg(part[j] == all[start + j], "%s: element %d differs when computed in [%d, %d)",
                      f->name, start + j, start, start + len);
    }
  /* in place */
  double y[37];
  memcpy(y, x, sizeof y);
  f->vec(y, y, 37);
  ck_assert(memcmp(y, all, sizeof y) == 0);
}
END_TEST

static Suite *vmath_suite(void)
{
  Suite *s = suite_create("vmath");
  TCase *tc = tcase_create("vmath");
  tcase_add_loop_test(tc, test_vmath_accuracy, 0, NFNS);
  tcase_add_loop_test(tc, test_vmath_position, 0, NFNS);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(vmath_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
