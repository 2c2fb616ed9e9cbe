/*
 * nn.c -- dense layers and MLPs as graph builders over a params vector, at
 * its own values (sv_dense, sv_mlp) or at a node laid out like it
 * (sv_dense_at, sv_mlp_at: functional parameters, see params_view.c), and
 * the same MLP in Taylor mode (sv_mlp_jet: its input derivatives pushed
 * forward with it, see ops/jet.c).
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static const char *const act_names[] = {"none", "tanh", "sigmoid", "softplus", "sin"};

int sv_activation_parse(const char *s, sv_activation *out)
{
  for (int i = 0; i < (int)(sizeof act_names / sizeof *act_names); i++)
    if (s && strcmp(s, act_names[i]) == 0) {
      *out = (sv_activation)i;
      return 0;
    }
  return sv_fail("unknown activation '%s' (expected none, tanh, sigmoid, softplus or sin)", s ? s : "");
}

const char *sv_activation_name(sv_activation a)
{
  return (unsigned)a < sizeof act_names / sizeof *act_names ? act_names[a] : "?";
}

static sv_node *activate(sv_node *z, sv_activation act)
{
  switch (act) {
  case SV_ACT_TANH: return sv_tanh(z);
  case SV_ACT_SIGMOID: return sv_sigmoid(z);
  case SV_ACT_SOFTPLUS: return sv_softplus(z);
  case SV_ACT_SIN: return sv_sin(z);
  case SV_ACT_NONE: break;
  }
  return z;
}

sv_node *sv_dense(sv_params *p, const char *name, sv_node *x, int nout, sv_activation act)
{
  if (!x)
    return NULL;
  sv_graph *g = x->g;
  if (x->shape.ndim != 2)
    return sv__graph_fail(g, "dense '%s': input must be [rows, features]", name);
  int nin = x->shape.d[1];
  if (nout < 1)
    return sv__graph_fail(g, "dense '%s': %d outputs", name, nout);
  char wn[256], bn[256];
  snprintf(wn, sizeof wn, "%s.W", name);
  snprintf(bn, sizeof bn, "%s.b", name);
  int wd[2] = {nin, nout}, bd[1] = {nout};
  sv_node *W = sv_param(g, p, wn, 2, wd), *b = sv_param(g, p, bn, 1, bd);
  if (!W || !b)
    return NULL;
  sv_params_set_kind(p, W, SV_PARAM_WEIGHT, nin, nout);
  sv_params_set_kind(p, b, SV_PARAM_BIAS, nin, nout);
  return activate(sv_add(sv_matmul(x, W), b), act);
}

sv_node *sv_mlp(sv_params *p, const char *name, sv_node *x, int width, int depth, int nout,
                sv_activation act)
{
  if (!x)
    return NULL;
  if (width < 1 || depth < 0 || nout < 1)
    return sv__graph_fail(x->g, "mlp '%s': width %d, depth %d, outputs %d (need >= 1, >= 0, >= 1)", name,
                          width, depth, nout);
  char ln[256];
  sv_node *h = x;
  for (int l = 0; l < depth; l++) {
    snprintf(ln, sizeof ln, "%s.%d", name, l);
    h = sv_dense(p, ln, h, width, act);
  }
  snprintf(ln, sizeof ln, "%s.out", name);
  return sv_dense(p, ln, h, nout, SV_ACT_NONE);
}

/* The block `name` at theta (or the param node itself), declaring it with
   `dims` and `kind` when p has no such block yet. */
static sv_node *block_at(sv_params *p, sv_node *theta, sv_graph *g, const char *name, int ndim,
                         const int *dims, sv_param_kind kind, int fan_in, int fan_out)
{
  int b = sv_params_find(p, name);
  sv_node *n;
  if (b < 0) {
    n = sv_param(g, p, name, ndim, dims);
    if (!n)
      return NULL;
    sv_params_set_kind(p, n, kind, fan_in, fan_out);
  } else {
    const sv_param_block *blk = &p->blocks[b];
    int ok = blk->shape.ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
      ok = blk->shape.d[i] == dims[i];
    if (!ok)
      return sv__graph_fail(g, "block '%s' exists with another shape", name);
    n = sv__param_node(g, p, b);
  }
  return theta ? sv_params_view(p, theta, name) : n;
}

sv_node *sv_dense_at(sv_params *p, sv_node *theta, const char *name, sv_node *x, int nout,
                     sv_activation act)
{
  if (!x)
    return NULL;
  sv_graph *g = x->g;
  if (!p)
    return sv__graph_fail(g, "dense '%s': no params vector", name);
  if (theta && theta->g != g)
    return sv__graph_fail(g, "dense '%s': theta is a node of another graph", name);
  if (x->shape.ndim != 2)
    return sv__graph_fail(g, "dense '%s': input must be [rows, features]", name);
  int nin = x->shape.d[1];
  if (nout < 1)
    return sv__graph_fail(g, "dense '%s': %d outputs", name, nout);
  char wn[256], bn[256];
  snprintf(wn, sizeof wn, "%s.W", name);
  snprintf(bn, sizeof bn, "%s.b", name);
  int wd[2] = {nin, nout}, bd[1] = {nout};
  sv_node *W = block_at(p, theta, g, wn, 2, wd, SV_PARAM_WEIGHT, nin, nout);
  sv_node *b = W ? block_at(p, theta, g, bn, 1, bd, SV_PARAM_BIAS, nin, nout) : NULL;
  if (!W || !b)
    return NULL;
  return activate(sv_add(sv_matmul(x, W), b), act);
}

sv_node *sv_mlp_at(sv_params *p, sv_node *theta, const char *name, sv_node *x, int width, int depth,
                   int nout, sv_activation act)
{
  if (!x)
    return NULL;
  if (width < 1 || depth < 0 || nout < 1)
    return sv__graph_fail(x->g, "mlp '%s': width %d, depth %d, outputs %d (need >= 1, >= 0, >= 1)", name,
                          width, depth, nout);
  char ln[256];
  sv_node *h = x;
  for (int l = 0; l < depth; l++) {
    snprintf(ln, sizeof ln, "%s.%d", name, l);
    h = sv_dense_at(p, theta, ln, h, width, act);
  }
  snprintf(ln, sizeof ln, "%s.out", name);
  return sv_dense_at(p, theta, ln, h, nout, SV_ACT_NONE);
}

/*
 * Taylor mode. The input x [B, d] becomes the stack [B, J, d], J = 1 +
 * order d: the value row x, the tangent rows e_k (dx/dx_k), and zero
 * second-derivative rows. Each layer is then one matrix product of the
 * whole stack ([B J, nin] x W: the derivatives of x W are x' W and x'' W)
 * and one fused jet activation that adds the bias to the value row.
 */
static sv_node *input_stack(sv_node *x, int d, int order)
{
  sv_graph *g = x->g;
  int B = x->shape.d[0];
  double eye[SV_JET_MAX_DIRS * SV_JET_MAX_DIRS] = {0};
  for (int k = 0; k < d; k++)
    eye[k * d + k] = 1.0;
  int dd[2] = {d, d}, vs[3] = {B, 1, d}, ts[3] = {B, d, d};
  sv_node *parts[3];
  parts[0] = sv_reshape(x, 3, vs);
  parts[1] = sv_broadcast_to(sv_constant(g, 2, dd, eye), 3, ts);
  parts[2] = sv_broadcast_to(sv_scalar(g, 0.0), 3, ts);
  return sv_concat(order == 2 ? 3 : 2, parts, 1);
}

int sv_mlp_jet(sv_params *p, sv_node *theta, const char *name, sv_node *x, int width, int depth,
               int nout, sv_activation act, int order, sv_jet *out)
{
  if (!out)
    return sv_fail("mlp_jet '%s': no output", name);
  memset(out, 0, sizeof *out);
  if (!x)
    return sv_fail("mlp_jet '%s': no input (an earlier op failed)", name);
  sv_graph *g = x->g;
  if (g->error)
    return sv_fail("mlp_jet '%s': the graph has an error: %s", name, g->error);
  int d = x->shape.ndim == 2 ? x->shape.d[1] : 0;
  if (x->shape.ndim != 2 || d > SV_JET_MAX_DIRS)
    return sv_fail("mlp_jet '%s': the input must be [rows, d] with d <= %d", name, SV_JET_MAX_DIRS);
  if (order < 1 || order > 2)
    return sv_fail("mlp_jet '%s': derivative order %d (1 or 2)", name, order);
  if (width < 1 || depth < 0 || nout < 1)
    return sv_fail("mlp_jet '%s': width %d, depth %d, outputs %d (need >= 1, >= 0, >= 1)", name,
                   width, depth, nout);
  if (!p)
    return sv_fail("mlp_jet '%s': no params vector", name);
  sv_node *S = input_stack(x, d, order);
  int nin = d;
  char ln[256], wn[300], bn[300];
  for (int l = 0; l <= depth; l++) {
    int last = l == depth, nl = last ? nout : width;
    if (last)
      snprintf(ln, sizeof ln, "%s.out", name);
    else
      snprintf(ln, sizeof ln, "%s.%d", name, l);
    snprintf(wn, sizeof wn, "%s.W", ln);
    snprintf(bn, sizeof bn, "%s.b", ln);
    int wd[2] = {nin, nl}, bd[1] = {nl};
    sv_node *W = block_at(p, theta, g, wn, 2, wd, SV_PARAM_WEIGHT, nin, nl);
    sv_node *b = W ? block_at(p, theta, g, bn, 1, bd, SV_PARAM_BIAS, nin, nl) : NULL;
    S = sv__jet_act(sv_matmul(S, W), b, last ? SV_ACT_NONE : act, d, order);
    nin = nl;
  }
  if (!S)
    return sv_fail("mlp_jet '%s': %s", name, g->error ? g->error : "building failed");
  int B = x->shape.d[0], os[2] = {B, nout};
  out->ndir = d;
  out->order = order;
  out->stack = S;
  out->u = sv_reshape(sv_slice(S, 1, 0, 1), 2, os);
  for (int k = 0; k < d; k++) {
    out->du[k] = sv_reshape(sv_slice(S, 1, 1 + k, 1), 2, os);
    if (order == 2)
      out->d2u[k] = sv_reshape(sv_slice(S, 1, 1 + d + k, 1), 2, os);
  }
  if (g->error)
    return sv_fail("mlp_jet '%s': %s", name, g->error);
  return 0;
}
