/*
 * groups.h -- the linear parts G of the affine groups R^2 x| G, and the
 * closed forms for 2x2 matrices they need (specs/lieconv.md):
 *
 *   so2   rotations R(theta)                          (dimension 1)
 *   sl2   SL(2, R) = SPos(2) x SO(2), det g = 1       (dimension 3)
 *   gl2   GL+(2, R) = Pos(2) x SO(2), det g > 0       (dimension 4)
 *
 * Every g factors as g = P R(theta) (polar decomposition, P = (g g^T)^1/2
 * symmetric positive definite). The global chart is
 *
 *   xi(X, theta) = exp(X) R(theta),
 *   xi^-1(g) = (log P, theta),  theta = atan2(c - b, a + d) mod 2 pi,
 *
 * with the angle guarded at the 0 / 2 pi flip: a relative element g^-1 g
 * computed in floating point has a sine of +-1e-17, which would put it at
 * 0 or at 2 pi - 1e-17 depending on rounding and break rotation
 * equivariance; angles within LIE_THETA_GUARD of the flip are 0.
 *
 * Coordinates act on points (x, y) with x along image columns and y along
 * image rows (down).
 */
#ifndef LIECONV_GROUPS_H
#define LIECONV_GROUPS_H

typedef enum { LIE_SO2 = 0, LIE_SL2, LIE_GL2 } lie_group;

/* [[a, b], [c, d]] */
typedef struct {
  double a, b, c, d;
} mat2;

/* the symmetric [[p, q], [q, r]] */
typedef struct {
  double p, q, r;
} sym2;

#define LIE_THETA_GUARD 1e-12
#define LIE_PI 3.14159265358979323846

/* "so2", "sl2", "gl2" (a message naming the value otherwise). */
int lie_group_parse(const char *s, lie_group *out);
const char *lie_group_name(lie_group g);
/* The dimension of G: the number of chart coordinates (1, 3, 4). */
int lie_group_dim(lie_group g);

mat2 m2_mul(mat2 x, mat2 y);
mat2 m2_inv(mat2 x);
double m2_det(mat2 x);
mat2 m2_rot(double theta);
mat2 m2_of_sym(sym2 s);
/* (u, v) = g (x, y) */
void m2_apply(mat2 g, double x, double y, double *u, double *v);

/* Functions of a symmetric 2x2 matrix through its eigenvalues
   m +- delta, m = (p + r)/2, delta = sqrt(((p - r)/2)^2 + q^2):
   f(S) = (f(m+delta) + f(m-delta))/2 I + (f(m+delta) - f(m-delta))/(2 delta) (S - m I),
   each divided difference in a form that stays accurate as delta -> 0.
   log and sqrt need a positive definite S. */
sym2 sym2_exp(sym2 s);
sym2 sym2_log(sym2 s);
sym2 sym2_sqrt(sym2 s);
double sym2_det(sym2 s);

/* The angle in [0, 2 pi) of the rotation (cos, sin) ~ (x, y), guarded. */
double lie_angle(double x, double y);
/* g = P R(theta), g with det > 0; P symmetrised. */
void lie_polar(mat2 g, sym2 *P, double *theta);
/* xi(X, theta) = exp(X) R(theta). */
mat2 lie_chart(sym2 X, double theta);
/* The chart coordinates of g that the kernel network sees, in an
   orthonormal basis of the algebra (trace inner product) for log P,
   then theta:
     so2: (theta)
     sl2: (sqrt2 s, sqrt2 t, theta)      with log P = [[s, t], [t, -s]]
     gl2: (S00, S11, sqrt2 S01, theta)   with log P = S
   Returns the number written (lie_group_dim). */
int lie_chart_coords(lie_group grp, mat2 g, double *coords);

#endif
