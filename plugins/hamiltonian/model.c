/*
 * model.c -- the graph-network Hamiltonian (see model.h for the equations):
 * its parameter blocks, the network built at any block nodes, the vector
 * field J grad_x H and the task loss.
 */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Activations                                                         */
/* ------------------------------------------------------------------ */

static const char *const act_names[] = {"tanh", "softplus", "sigmoid", "sin", "gelu"};
#define NACTS ((int)(sizeof act_names / sizeof *act_names))

const char *ham_act_name(ham_act a) { return (unsigned)a < (unsigned)NACTS ? act_names[a] : "?"; }

const char *ham_loss_norm_name(ham_loss_norm n) { return n == HAM_LOSS_SUM ? "sum" : "mean"; }

int ham_act_parse(const char *s, ham_act *out)
{
  for (int i = 0; i < NACTS; i++)
    if (s && strcmp(s, act_names[i]) == 0) {
      *out = (ham_act)i;
      return 0;
    }
  static const char *const kinks[] = {"relu", "leaky_relu", "relu6", "prelu", "hardtanh",
                                      "hard_tanh", "abs", "elu", "selu", "celu", "hardswish"};
  for (size_t i = 0; s && i < sizeof kinks / sizeof *kinks; i++)
    if (strcmp(s, kinks[i]) == 0)
      return sv_fail("option -activation %s is refused: the loss compares J grad_x H with the "
                     "observed derivatives, so training differentiates the network twice in x "
                     "(and second-order MAML three times); %s has a kink, so its second "
                     "derivative is zero almost everywhere (a delta at the kink) and the "
                     "Hamiltonian's curvature cannot be learned; use a smooth one: tanh, "
                     "softplus, sigmoid, sin or gelu", s, s);
  if (s && (strcmp(s, "none") == 0 || strcmp(s, "linear") == 0 || strcmp(s, "identity") == 0))
    return sv_fail("option -activation %s is refused: a linear network gives a Hamiltonian "
                   "linear in the state, hence a constant vector field; use tanh, softplus, "
                   "sigmoid, sin or gelu", s);
  return sv_fail("option -activation '%s': unknown activation (expected tanh, softplus, sigmoid, "
                 "sin or gelu)", s ? s : "");
}

static sv_node *activate(sv_node *z, ham_act a)
{
  switch (a) {
  case HAM_ACT_TANH: return sv_tanh(z);
  case HAM_ACT_SOFTPLUS: return sv_softplus(z);
  case HAM_ACT_SIGMOID: return sv_sigmoid(z);
  case HAM_ACT_SIN: return sv_sin(z);
  case HAM_ACT_GELU: return sv_gelu(z);
  }
  return z;
}

/* ------------------------------------------------------------------ */
/* Blocks                                                              */
/* ------------------------------------------------------------------ */

/* Block indices: fixed ones, then 7 per round, then the readouts. */
enum { B_NODE_W = 0, B_NODE_B, B_EDGE_W, B_EDGE_B, B_ROUND0 };
enum { R_M = 0, R_m, R_U, R_u, R_PER_ROUND };

struct ham_model {
  ham_arch a;
  sv_graph *g;
  sv_params *p;
  int nblocks;
  sv_node **blk;
  char *is_edge;
  int readout_node, readout_edge;
};

static int round_block(int t, int which) { return B_ROUND0 + R_PER_ROUND * t + which; }

const ham_arch *ham_model_arch(const ham_model *m) { return &m->a; }
sv_graph *ham_model_graph(ham_model *m) { return m->g; }
sv_params *ham_model_params(ham_model *m) { return m->p; }
sv_node *const *ham_model_blocks(const ham_model *m) { return m->blk; }
int ham_model_nblocks(const ham_model *m) { return m->nblocks; }
int ham_model_block_is_edge(const ham_model *m, int b)
{
  return b >= 0 && b < m->nblocks && m->is_edge[b];
}

void ham_model_free(ham_model *m)
{
  if (!m)
    return;
  sv_graph_free(m->g);
  sv_params_free(m->p);
  free(m->blk);
  free(m->is_edge);
  free(m);
}

static int declare(ham_model *m, const char *name, int rows, int cols, sv_param_kind kind,
                   int fan_in, int fan_out, int edge)
{
  int dims[2] = {rows, cols};
  sv_node *n = cols > 0 ? sv_param(m->g, m->p, name, 2, dims) : sv_param(m->g, m->p, name, 1, dims);
  if (!n)
    return sv_fail("hamiltonian: declaring block %s: %s", name,
                   sv_graph_error(m->g) ? sv_graph_error(m->g) : "?");
  sv_params_set_kind(m->p, n, kind, fan_in, fan_out);
  m->blk[m->nblocks] = n;
  m->is_edge[m->nblocks] = (char)edge;
  m->nblocks++;
  return 0;
}

ham_model *ham_model_new(const ham_arch *a)
{
  if (!a || a->width < 1 || a->rounds < 1 || a->rounds > HAM_MAX_ROUNDS)
    return sv_fail("hamiltonian: bad architecture (width >= 1, rounds 1..%d)", HAM_MAX_ROUNDS), NULL;
  ham_model *m = calloc(1, sizeof *m);
  int cap = B_ROUND0 + R_PER_ROUND * a->rounds + 2;
  if (!m || !(m->blk = calloc((size_t)cap, sizeof *m->blk)) ||
      !(m->is_edge = calloc((size_t)cap, 1)) || !(m->g = sv_graph_new()) ||
      !(m->p = sv_params_new())) {
    ham_model_free(m);
    return sv_fail("hamiltonian: out of memory for the model"), NULL;
  }
  m->a = *a;
  int w = a->width;
  char name[64];
  int rc = declare(m, "node.W", 4, w, SV_PARAM_WEIGHT, 4, w, 0);
  rc |= declare(m, "node.b", w, 0, SV_PARAM_BIAS, 4, w, 0);
  rc |= declare(m, "edge.W", 1, w, SV_PARAM_WEIGHT, 1, w, 1);
  rc |= declare(m, "edge.b", w, 0, SV_PARAM_BIAS, 1, w, 1);
  for (int t = 0; t < a->rounds && rc == 0; t++) {
    /* the message filter reads the distance, the update the w node features */
    static const char *const part[R_PER_ROUND] = {"msg%d.W", "msg%d.b", "upd%d.W", "upd%d.b"};
    for (int k = 0; k < R_PER_ROUND; k++) {
      snprintf(name, sizeof name, part[k], t + 1);
      int bias = k == R_m || k == R_u, msg = k <= R_m;
      int rows = k == R_M ? 1 : w, fan_in = msg ? 1 : w;
      rc |= declare(m, name, rows, bias ? 0 : w, bias ? SV_PARAM_BIAS : SV_PARAM_WEIGHT, fan_in, w,
                    msg);
    }
  }
  m->readout_node = m->nblocks;
  rc |= declare(m, "readout.node", w, 1, SV_PARAM_WEIGHT, w, 1, 0);
  m->readout_edge = m->nblocks;
  rc |= declare(m, "readout.edge", w, 1, SV_PARAM_WEIGHT, w, 1, 1);
  if (rc) {
    ham_model_free(m);
    return NULL;
  }
  return m;
}

int ham_model_init(ham_model *m, gsl_rng *rng) { return sv_params_init_glorot(m->p, rng); }

/* ------------------------------------------------------------------ */
/* The network                                                         */
/* ------------------------------------------------------------------ */

sv_node *ham_input(ham_model *m, const char *name, int N, int K)
{
  int dims[2] = {K * N, 4};
  return sv_input(m->g, name, 2, dims);
}

sv_node *ham_pack(ham_model *m, sv_node *const *blocks)
{
  sv_node **flat = malloc((size_t)m->nblocks * sizeof *flat);
  if (!flat)
    return NULL;
  for (int b = 0; b < m->nblocks; b++) {
    int size = (int)sv_params_block_size(m->p, b);
    flat[b] = sv_reshape(blocks[b], 1, &size);
  }
  sv_node *r = sv_concat(m->nblocks, flat, 0);
  free(flat);
  return r;
}

static sv_node *dense(sv_node *x, sv_node *W, sv_node *b) { return sv_add(sv_matmul(x, W), b); }

int ham_net_build(ham_model *m, sv_node *const *B, int N, int K, sv_node *x, int per_point,
                  ham_net *out)
{
  memset(out, 0, sizeof *out);
  if (N < 1 || N > 3 || K < 1 || !x || sv_ndim(x) != 2 || sv_dim(x, 0) != K * N || sv_dim(x, 1) != 4)
    return sv_fail("hamiltonian: network input must be [K N, 4] for N in 1..3 (got N = %d, K = %d)",
                   N, K);
  const ham_act act = m->a.act;
  /* P unordered pairs per state; the E = 2P directed edges are the pairs
     (a -> b) followed by the same pairs reversed (b -> a) */
  int R = K * N, P = K * N * (N - 1) / 2, E = 2 * P;
  int *src = NULL, *dst = NULL, *pt = NULL;
  if (N > 1) {
    src = malloc((size_t)E * sizeof *src);
    dst = malloc((size_t)E * sizeof *dst);
    pt = malloc((size_t)(R > P ? R : P) * sizeof *pt);
    if (!src || !dst || !pt) {
      free(src), free(dst), free(pt);
      return sv_fail("hamiltonian: out of memory for %d edges", E);
    }
    int p = 0;
    for (int k = 0; k < K; k++)
      for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++, p++) {
          src[p] = dst[P + p] = k * N + i;
          dst[p] = src[P + p] = k * N + j;
        }
  }

  sv_node *h = activate(dense(x, B[B_NODE_W], B[B_NODE_B]), act), *e = NULL, *r = NULL;
  out->rep_name[out->nrep] = "enc";
  out->rep[out->nrep++] = h;
  if (N > 1) {
    /* the edge feature: the pair distance r = |q_a - q_b| */
    sv_node *q = sv_slice(x, 1, 0, 2);
    sv_node *dq = sv_sub(sv_gather_rows(q, P, src), sv_gather_rows(q, P, dst));
    int d1[2] = {P, 1};
    r = sv_reshape(sv_sqrt(sv_sum_axis(sv_square(dq), 1)), 2, d1);
    e = activate(dense(r, B[B_EDGE_W], B[B_EDGE_B]), act); /* [P, w] */
  }
  static const char *const round_names[HAM_MAX_ROUNDS] = {"round1", "round2"};
  for (int t = 0; t < m->a.rounds; t++) {
    sv_node *z = sv_matmul(h, B[round_block(t, R_U)]);
    if (N > 1) {
      /* continuous-filter messages: the sender's features gated by a learned
         filter of the distance, the same filter both ways along a pair */
      sv_node *filt = activate(dense(r, B[round_block(t, R_M)], B[round_block(t, R_m)]), act);
      sv_node *both[2] = {filt, filt};
      sv_node *msg = sv_mul(sv_gather_rows(h, E, src), sv_concat(2, both, 0));
      z = sv_add(z, sv_scatter_add_rows(msg, E, dst, R));
    }
    h = sv_add(h, activate(sv_add(z, B[round_block(t, R_u)]), act));
    out->rep_name[out->nrep] = round_names[t];
    out->rep[out->nrep++] = h;
  }
  sv_node *cn = sv_matmul(h, B[m->readout_node]), *ce = NULL; /* [R, 1] */
  out->Hsum = sv_sum(cn);
  if (N > 1) {
    ce = sv_matmul(e, B[m->readout_edge]); /* [P, 1] */
    out->Hsum = sv_add(out->Hsum, sv_sum(ce));
    out->rep_name[out->nrep] = "edge";
    out->rep[out->nrep++] = e;
  }
  if (per_point) {
    if (N == 1) {
      out->Hpoint = cn;
    } else {
      for (int i = 0; i < R; i++)
        pt[i] = i / N;
      sv_node *hp = sv_scatter_add_rows(cn, R, pt, K);
      for (int p = 0; p < P; p++)
        pt[p] = p / (N * (N - 1) / 2);
      out->Hpoint = sv_add(hp, sv_scatter_add_rows(ce, P, pt, K));
    }
  }
  free(src), free(dst), free(pt);
  out->grad = sv_grad(out->Hsum, x); /* [R, 4]: dH/dq, dH/dp per particle */
  if (!out->grad || (per_point && !out->Hpoint))
    return sv_fail("hamiltonian: building the network: %s",
                   sv_graph_error(m->g) ? sv_graph_error(m->g) : "?");
  return 0;
}

sv_node *ham_loss_build(ham_model *m, sv_node *const *B, int N, int K, sv_node *x, sv_node *y,
                        ham_net *net)
{
  ham_net local;
  if (!net)
    net = &local;
  if (ham_net_build(m, B, N, K, x, 0, net) < 0)
    return NULL;
  /* |J grad H - xdot|^2 = |grad H - g|^2 with g = (-dp/dt, dq/dt): no slicing */
  sv_node *L = sv_sum(sv_square(sv_sub(net->grad, y)));
  if (m->a.norm == HAM_LOSS_MEAN)
    L = sv_scale(L, 1.0 / K);
  if (!L)
    sv_fail("hamiltonian: building the loss: %s", sv_graph_error(m->g) ? sv_graph_error(m->g) : "?");
  return L;
}

void ham_labels_to_grad(int rows, const double *xdot, double *g)
{
  for (int i = 0; i < rows; i++) {
    const double *v = xdot + 4 * (size_t)i;
    double *o = g + 4 * (size_t)i;
    double qx = v[0], qy = v[1], px = v[2], py = v[3];
    o[0] = -px, o[1] = -py, o[2] = qx, o[3] = qy;
  }
}

void ham_grad_to_field(int rows, const double *g, double *f)
{
  for (int i = 0; i < rows; i++) {
    const double *v = g + 4 * (size_t)i;
    double *o = f + 4 * (size_t)i;
    double a = v[0], b = v[1], c = v[2], d = v[3];
    o[0] = c, o[1] = d, o[2] = -a, o[3] = -b;
  }
}
