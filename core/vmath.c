/*
 * vmath.c -- vectorised tanh, exp, sin, cos and erfc over arrays, for the
 * kernels: SLEEF's 1-ulp functions (Debian libsleef-dev) in AVX-512 or
 * AVX2 registers, chosen once at run time from what the CPU supports; the
 * plain C library elsewhere. erfc in AVX2 and AVX-512 is glibc's libmvec when
 * configure finds it (SV_HAVE_MVEC_ERFC: five times faster than SLEEF's).
 *
 * Every element, the last partial vector included, goes through the same
 * routine, so an array's values do not depend on its length or alignment.
 * The SLEEF routines are correctly rounded to within 1 ulp (tests/
 * test_vmath.c measures them against long-double references and libm).
 * SV_VMATH=libm in the environment forces the C library (for comparisons).
 */
#include "internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef void (*varray_fn)(const double *x, double *y, size_t n);

/* The AVX code is compiled for those targets only (each in its own region,
   so the AVX2 code holds no AVX-512 instruction); it runs only when the CPU
   says it has them. The target pragma also defines __AVX2__ and friends,
   which sleef.h needs to declare the vector functions. */
#include <immintrin.h> /* outside the pragmas: each intrinsic keeps its own target */
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f")
#include <sleef.h>
#pragma GCC pop_options

#define AVX2_ARRAY(name, sleef_fn)                                                  \
  static void name(const double *x, double *y, size_t n)                            \
  {                                                                                 \
    size_t i = 0;                                                                   \
    for (; i + 4 <= n; i += 4)                                                      \
      _mm256_storeu_pd(y + i, sleef_fn(_mm256_loadu_pd(x + i)));                    \
    if (i < n) {                                                                    \
      double t[4] = {0, 0, 0, 0};                                                   \
      memcpy(t, x + i, (n - i) * sizeof *t);                                        \
      _mm256_storeu_pd(t, sleef_fn(_mm256_loadu_pd(t)));                            \
      memcpy(y + i, t, (n - i) * sizeof *t);                                        \
    }                                                                               \
  }

#define AVX512_ARRAY(name, sleef_fn)                                                \
  static void name(const double *x, double *y, size_t n)                            \
  {                                                                                 \
    size_t i = 0;                                                                   \
    for (; i + 8 <= n; i += 8)                                                      \
      _mm512_storeu_pd(y + i, sleef_fn(_mm512_loadu_pd(x + i)));                    \
    if (i < n) {                                                                    \
      double t[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                       \
      memcpy(t, x + i, (n - i) * sizeof *t);                                        \
      _mm512_storeu_pd(t, sleef_fn(_mm512_loadu_pd(t)));                            \
      memcpy(y + i, t, (n - i) * sizeof *t);                                        \
    }                                                                               \
  }

#pragma GCC push_options
#pragma GCC target("avx2,fma")
AVX2_ARRAY(tanh_avx2, Sleef_tanhd4_u10avx2)
AVX2_ARRAY(exp_avx2, Sleef_expd4_u10avx2)
AVX2_ARRAY(sin_avx2, Sleef_sind4_u10avx2)
AVX2_ARRAY(cos_avx2, Sleef_cosd4_u10avx2)
#ifdef SV_HAVE_MVEC_ERFC
/* SLEEF's erfc is no faster than libm's (17 ns an element here); glibc's
   libmvec has a fast one (3 ns) */
__m256d _ZGVdN4v_erfc(__m256d x);
AVX2_ARRAY(erfc_avx2, _ZGVdN4v_erfc)
#else
AVX2_ARRAY(erfc_avx2, Sleef_erfcd4_u15avx2)
#endif
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f")
AVX512_ARRAY(tanh_avx512, Sleef_tanhd8_u10avx512f)
AVX512_ARRAY(exp_avx512, Sleef_expd8_u10avx512f)
AVX512_ARRAY(sin_avx512, Sleef_sind8_u10avx512f)
AVX512_ARRAY(cos_avx512, Sleef_cosd8_u10avx512f)
#ifdef SV_HAVE_MVEC_ERFC
/* the same in AVX-512: libmvec's (glibc 2.35, with the AVX2 one) against
   SLEEF's, which took 13% of an S4D training step (ssm_s4's GELU) */
__m512d _ZGVeN8v_erfc(__m512d x);
AVX512_ARRAY(erfc_avx512, _ZGVeN8v_erfc)
#else
AVX512_ARRAY(erfc_avx512, Sleef_erfcd8_u15avx512f)
#endif
#pragma GCC pop_options

#define LIBM_ARRAY(name, fn)                                                        \
  static void name(const double *x, double *y, size_t n)                            \
  {                                                                                 \
    for (size_t i = 0; i < n; i++)                                                  \
      y[i] = fn(x[i]);                                                              \
  }

LIBM_ARRAY(tanh_libm, tanh)
LIBM_ARRAY(exp_libm, exp)
LIBM_ARRAY(sin_libm, sin)
LIBM_ARRAY(cos_libm, cos)
LIBM_ARRAY(erfc_libm, erfc)

typedef struct {
  const char *name;
  varray_fn tanh_, exp_, sin_, cos_, erfc_;
} vmath_impl;

static const vmath_impl impls[] = {
  {"libm", tanh_libm, exp_libm, sin_libm, cos_libm, erfc_libm},
  {"sleef-avx2", tanh_avx2, exp_avx2, sin_avx2, cos_avx2, erfc_avx2},
  {"sleef-avx512", tanh_avx512, exp_avx512, sin_avx512, cos_avx512, erfc_avx512},
};

static const vmath_impl *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
  const char *force = getenv("SV_VMATH");
  int k = 0;
  __builtin_cpu_init();
  if (force && strcmp(force, "libm") == 0)
    k = 0;
  else if (__builtin_cpu_supports("avx512f"))
    k = 2;
  else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    k = 1;
  chosen = &impls[k];
}

/* Chosen on first use, once even when plans first run on several threads
   at a time (lsq.c's shares); the choice never changes within a process. */
static const vmath_impl *impl(void)
{
  pthread_once(&chosen_once, choose);
  return chosen;
}

const char *sv__vmath_name(void) { return impl()->name; }
void sv__vtanh(const double *x, double *y, size_t n) { impl()->tanh_(x, y, n); }
void sv__vexp(const double *x, double *y, size_t n) { impl()->exp_(x, y, n); }
void sv__vsin(const double *x, double *y, size_t n) { impl()->sin_(x, y, n); }
void sv__vcos(const double *x, double *y, size_t n) { impl()->cos_(x, y, n); }
void sv__verfc(const double *x, double *y, size_t n) { impl()->erfc_(x, y, n); }

/* sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) otherwise, e = exp(-|x|)
   (never overflows) */
void sv__vsigmoid(const double *x, double *y, size_t n)
{
  double e[256];
  for (size_t i0 = 0; i0 < n; i0 += 256) {
    size_t m = n - i0 < 256 ? n - i0 : 256;
    for (size_t j = 0; j < m; j++)
      e[j] = -fabs(x[i0 + j]);
    sv__vexp(e, e, m);
    for (size_t j = 0; j < m; j++)
      y[i0 + j] = (x[i0 + j] >= 0 ? 1.0 : e[j]) / (1.0 + e[j]);
  }
}
