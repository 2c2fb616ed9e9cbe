/*
 * samples.c -- group samples: the rotation grid, log-normal P parts, the
 * text file (samples.h).
 */
#include "samples.h"

#include <solver.h>

#include <gsl/gsl_randist.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lie_samples *lie_samples_new(lie_group group, int nsets, int n, double spd_var)
{
  if (nsets < 1 || n < 1) {
    sv_fail("group samples: %d sets of %d samples (need >= 1 each)", nsets, n);
    return NULL;
  }
  lie_samples *s = calloc(1, sizeof *s);
  if (!s || !(s->theta = calloc((size_t)nsets * n, sizeof *s->theta)) ||
      !(s->P = calloc((size_t)nsets * n, sizeof *s->P))) {
    lie_samples_free(s);
    sv_fail("group samples: out of memory for %d x %d", nsets, n);
    return NULL;
  }
  s->group = group;
  s->nsets = nsets;
  s->n = n;
  s->spd_var = spd_var;
  s->rot_range = LIE_PI;
  s->orbit = 1;
  for (int i = 0; i < nsets * n; i++) {
    s->theta[i] = lie_grid_angle(s, i % n);
    s->P[i] = (sym2){1, 0, 1};
  }
  return s;
}

double lie_grid_angle(const lie_samples *s, int i)
{
  if (s->rot_range >= LIE_PI)
    return 2 * LIE_PI * i / s->n;
  /* [-R, R] with both ends (a single sample: 0), as an angle in [0, 2 pi) */
  double t = s->n > 1 ? s->rot_range * (2.0 * i / (s->n - 1) - 1) : 0.0;
  return t < 0 ? t + 2 * LIE_PI : t;
}

void lie_samples_free(lie_samples *s)
{
  if (!s)
    return;
  free(s->theta);
  free(s->P);
  free(s);
}

lie_samples *lie_samples_clone(const lie_samples *s)
{
  lie_samples *c = lie_samples_new(s->group, s->nsets, s->n, s->spd_var);
  if (c) {
    c->rot_range = s->rot_range;
    c->orbit = s->orbit;
    lie_samples_copy(c, s);
  }
  return c;
}

int lie_samples_copy(lie_samples *dst, const lie_samples *src)
{
  if (dst->nsets != src->nsets || dst->n != src->n)
    return sv_fail("group samples: copying %d x %d into %d x %d", src->nsets, src->n, dst->nsets,
                   dst->n);
  size_t n = (size_t)src->nsets * src->n;
  memcpy(dst->theta, src->theta, n * sizeof *dst->theta);
  memcpy(dst->P, src->P, n * sizeof *dst->P);
  return 0;
}

/* X of a fresh log-normal P = exp(X / 2): coordinates N(0, spd_var) in an
   orthonormal basis, halved. */
static sym2 draw_half_log(const lie_samples *s, gsl_rng *rng)
{
  const double r2 = 1.41421356237309504880, sd = sqrt(s->spd_var);
  sym2 X = {0, 0, 0};
  if (s->group == LIE_SL2) {
    /* basis diag(1, -1)/sqrt2, [[0, 1], [1, 0]]/sqrt2 */
    double v1 = gsl_ran_gaussian(rng, sd), v2 = gsl_ran_gaussian(rng, sd);
    X = (sym2){v1 / r2, v2 / r2, -v1 / r2};
  } else if (s->group == LIE_GL2) {
    /* basis diag(1, 0), [[0, 1], [1, 0]]/sqrt2, diag(0, 1) */
    double v1 = gsl_ran_gaussian(rng, sd), v2 = gsl_ran_gaussian(rng, sd),
           v3 = gsl_ran_gaussian(rng, sd);
    X = (sym2){v1, v2 / r2, v3};
  }
  X.p *= 0.5, X.q *= 0.5, X.r *= 0.5;
  return X;
}

/* R(a) P R(a)^T of a symmetric P. */
static sym2 sym2_rotated(sym2 P, double a)
{
  mat2 R = m2_rot(a), Y = m2_mul(m2_mul(R, m2_of_sym(P)), m2_inv(R));
  return (sym2){Y.a, 0.5 * (Y.b + Y.c), Y.d};
}

void lie_samples_draw(lie_samples *s, gsl_rng *rng)
{
  int bases = s->orbit > 1 ? s->n / s->orbit : s->n;
  for (int k = 0; k < s->nsets; k++)
    for (int i = 0; i < s->n; i++) {
      int at = k * s->n + i, b = k * s->n + i % bases;
      s->theta[at] = lie_grid_angle(s, i);
      s->P[at] = i < bases ? sym2_exp(draw_half_log(s, rng))
                           : sym2_rotated(s->P[b], s->theta[at] - s->theta[b]);
    }
}

mat2 lie_sample(const lie_samples *s, int set, int i)
{
  int at = set * s->n + i;
  return m2_mul(m2_of_sym(s->P[at]), m2_rot(s->theta[at]));
}

int lie_samples_write(const lie_samples *s, const char *path)
{
  size_t len = strlen(path);
  char *tmp = malloc(len + 8);
  if (!tmp)
    return sv_fail("samples file %s: out of memory", path);
  snprintf(tmp, len + 8, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    int e = errno;
    free(tmp);
    return sv_fail("samples file %s: cannot write: %s", path, strerror(e));
  }
  fprintf(f, "# lieconv group samples: group %s, %d sets of %d samples, g = P R(theta)\n",
          lie_group_name(s->group), s->nsets, s->n);
  fprintf(f, "# set index theta P00 P01 P11\n");
  for (int k = 0; k < s->nsets; k++)
    for (int i = 0; i < s->n; i++) {
      int at = k * s->n + i;
      fprintf(f, "%d %d %.17g %.17g %.17g %.17g\n", k, i, s->theta[at], s->P[at].p, s->P[at].q,
              s->P[at].r);
    }
  int bad = ferror(f);
  if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    free(tmp);
    return sv_fail("samples file %s: write failed: %s", path, strerror(e));
  }
  free(tmp);
  return 0;
}

int lie_samples_read(lie_samples *s, const char *path)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return sv_fail("option -samples_file: cannot open '%s': %s", path, strerror(errno));
  int total = s->nsets * s->n, seen = 0, rc = 0, line = 0;
  char *got = calloc((size_t)total, 1);
  double *theta = malloc((size_t)total * sizeof *theta);
  sym2 *P = malloc((size_t)total * sizeof *P);
  char buf[512];
  if (!got || !theta || !P) {
    rc = sv_fail("samples file %s: out of memory", path);
    goto done;
  }
  while (rc == 0 && fgets(buf, sizeof buf, f)) {
    line++;
    char *c = buf;
    while (*c == ' ' || *c == '\t')
      c++;
    if (*c == '#' || *c == '\n' || *c == '\r' || *c == 0)
      continue;
    int k, i, used = 0;
    double t, p, q, r;
    if (sscanf(c, "%d %d %lf %lf %lf %lf %n", &k, &i, &t, &p, &q, &r, &used) != 6 || c[used]) {
      rc = sv_fail("samples file %s, line %d: expected 'set index theta P00 P01 P11'", path, line);
      break;
    }
    if (k < 0 || k >= s->nsets || i < 0 || i >= s->n) {
      rc = sv_fail("samples file %s, line %d: sample (set %d, index %d) is outside the model's "
                   "%d sets of %d samples (-samples %d)", path, line, k, i, s->nsets, s->n, s->n);
      break;
    }
    int at = k * s->n + i;
    if (got[at]) {
      rc = sv_fail("samples file %s, line %d: sample (set %d, index %d) given twice", path, line, k, i);
      break;
    }
    if (!isfinite(t) || !isfinite(p) || !isfinite(q) || !isfinite(r)) {
      rc = sv_fail("samples file %s, line %d: a value is not finite", path, line);
      break;
    }
    double det = p * r - q * q;
    if (!(p > 0) || !(det > 0)) {
      rc = sv_fail("samples file %s, line %d: P = [[%g, %g], [%g, %g]] is not positive definite",
                   path, line, p, q, q, r);
      break;
    }
    if (s->group == LIE_SL2 && fabs(det - 1) > 1e-9) {
      rc = sv_fail("samples file %s, line %d: det P = %.12g, but sl2 needs det P = 1 (to 1e-9)",
                   path, line, det);
      break;
    }
    if (s->group == LIE_SO2 && (fabs(p - 1) > 1e-12 || fabs(q) > 1e-12 || fabs(r - 1) > 1e-12)) {
      rc = sv_fail("samples file %s, line %d: so2 needs P = I, got [[%g, %g], [%g, %g]]", path, line,
                   p, q, q, r);
      break;
    }
    got[at] = 1;
    theta[at] = t;
    P[at] = (sym2){p, q, r};
    seen++;
  }
  if (rc == 0 && ferror(f))
    rc = sv_fail("samples file %s: read error", path);
  if (rc == 0 && seen != total) {
    int miss = 0;
    while (miss < total && got[miss])
      miss++;
    rc = sv_fail("samples file %s: %d samples, but the model needs %d sets of %d (-group %s, "
                 "-samples %d); sample (set %d, index %d) is missing", path, seen, s->nsets, s->n,
                 lie_group_name(s->group), s->n, miss / s->n, miss % s->n);
  }
  if (rc == 0) {
    memcpy(s->theta, theta, (size_t)total * sizeof *theta);
    memcpy(s->P, P, (size_t)total * sizeof *P);
  }
done:
  fclose(f);
  free(got);
  free(theta);
  free(P);
  return rc;
}
