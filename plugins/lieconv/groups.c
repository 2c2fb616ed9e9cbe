/*
 * groups.c -- GL+(2), SL(2), SO(2) and their 2x2 closed forms (groups.h).
 * No LAPACK: every decomposition of a 2x2 matrix has a closed form.
 */
#include "groups.h"

#include <solver.h>

#include <math.h>
#include <string.h>

static const char *const group_names[] = {"so2", "sl2", "gl2"};

int lie_group_parse(const char *s, lie_group *out)
{
  for (int i = 0; i < 3; i++)
    if (s && strcmp(s, group_names[i]) == 0) {
      *out = (lie_group)i;
      return 0;
    }
  return sv_fail("option -group = '%s': unknown group (expected gl2 for GL+(2, R), sl2 for "
                 "SL(2, R), or so2 for rotations only)", s ? s : "");
}

const char *lie_group_name(lie_group g) { return (unsigned)g < 3 ? group_names[g] : "?"; }

int lie_group_dim(lie_group g)
{
  switch (g) {
  case LIE_SO2: return 1;
  case LIE_SL2: return 3;
  case LIE_GL2: return 4;
  }
  return 0;
}

mat2 m2_mul(mat2 x, mat2 y)
{
  mat2 z = {x.a * y.a + x.b * y.c, x.a * y.b + x.b * y.d, x.c * y.a + x.d * y.c,
            x.c * y.b + x.d * y.d};
  return z;
}

double m2_det(mat2 x) { return x.a * x.d - x.b * x.c; }

mat2 m2_inv(mat2 x)
{
  double det = m2_det(x);
  mat2 z = {x.d / det, -x.b / det, -x.c / det, x.a / det};
  return z;
}

mat2 m2_rot(double theta)
{
  double c = cos(theta), s = sin(theta);
  mat2 r = {c, -s, s, c};
  return r;
}

mat2 m2_of_sym(sym2 s)
{
  mat2 m = {s.p, s.q, s.q, s.r};
  return m;
}

void m2_apply(mat2 g, double x, double y, double *u, double *v)
{
  *u = g.a * x + g.b * y;
  *v = g.c * x + g.d * y;
}

double sym2_det(sym2 s) { return s.p * s.r - s.q * s.q; }

/* f(S) = alpha I + beta (S - m I) */
static sym2 sym2_combine(sym2 s, double m, double alpha, double beta)
{
  sym2 z = {alpha + beta * (s.p - m), beta * s.q, alpha + beta * (s.r - m)};
  return z;
}

static double half_gap(sym2 s, double *m)
{
  *m = 0.5 * (s.p + s.r);
  return hypot(0.5 * (s.p - s.r), s.q);
}

sym2 sym2_exp(sym2 s)
{
  double m, dl = half_gap(s, &m);
  /* sinh(dl)/dl: its series below 1e-4 (error < dl^6/5040) */
  double shc = dl < 1e-4 ? 1 + dl * dl / 6 * (1 + dl * dl / 20) : sinh(dl) / dl;
  double em = exp(m);
  return sym2_combine(s, m, em * cosh(dl), em * shc);
}

sym2 sym2_log(sym2 s)
{
  double m, dl = half_gap(s, &m);
  /* eigenvalues m +- dl > 0; (log(m+dl) - log(m-dl))/(2 dl) = atanh(dl/m)/dl */
  double x = dl / m;
  double coef = x < 1e-4 ? (1 + x * x / 3 * (1 + 0.6 * x * x)) / m : atanh(x) / dl;
  double alpha = 0.5 * log((m + dl) * (m - dl));
  return sym2_combine(s, m, alpha, coef);
}

sym2 sym2_sqrt(sym2 s)
{
  double m, dl = half_gap(s, &m);
  double r1 = sqrt(m + dl), r2 = sqrt(m - dl);
  /* (r1 - r2)/(2 dl) = 1/(r1 + r2) */
  return sym2_combine(s, m, 0.5 * (r1 + r2), 1 / (r1 + r2));
}

double lie_angle(double x, double y)
{
  if (x > 0 && fabs(y) <= LIE_THETA_GUARD * x)
    return 0.0;
  double t = atan2(y, x);
  if (t < 0)
    t += 2 * LIE_PI;
  if (t >= 2 * LIE_PI) /* -tiny + 2 pi rounds to 2 pi */
    t = 0.0;
  return t;
}

void lie_polar(mat2 g, sym2 *P, double *theta)
{
  double t = lie_angle(g.a + g.d, g.c - g.b);
  /* P = g R(t)^T, symmetric up to rounding */
  double c = cos(t), s = sin(t);
  double p00 = g.a * c - g.b * s, p01 = g.a * s + g.b * c;
  double p10 = g.c * c - g.d * s, p11 = g.c * s + g.d * c;
  P->p = p00;
  P->q = 0.5 * (p01 + p10);
  P->r = p11;
  *theta = t;
}

mat2 lie_chart(sym2 X, double theta) { return m2_mul(m2_of_sym(sym2_exp(X)), m2_rot(theta)); }

int lie_chart_coords(lie_group grp, mat2 g, double *coords)
{
  sym2 P;
  double t;
  lie_polar(g, &P, &t);
  const double r2 = 1.41421356237309504880;
  switch (grp) {
  case LIE_SO2:
    coords[0] = t;
    return 1;
  case LIE_SL2: {
    sym2 S = sym2_log(P);
    double s = 0.5 * (S.p - S.r); /* traceless part (exact for det P = 1) */
    coords[0] = r2 * s;
    coords[1] = r2 * S.q;
    coords[2] = t;
    return 3;
  }
  case LIE_GL2: {
    sym2 S = sym2_log(P);
    coords[0] = S.p;
    coords[1] = S.r;
    coords[2] = r2 * S.q;
    coords[3] = t;
    return 4;
  }
  }
  return 0;
}
