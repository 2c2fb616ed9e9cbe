/*
 * model.h -- the graph-network Hamiltonian H_theta and its vector field.
 *
 * Nodes are particles: node features (q_x, q_y, p_x, p_y). Edges join every
 * pair of distinct particles of the same state (none for one particle), and
 * messages run both ways along each; the edge feature is the distance
 * r = |q_i - q_j| (the systems' interactions are central). Our architecture
 * (the paper fixes only "GNN with node and edge encoders, message passing, a
 * summed readout"); the messages are continuous-filter convolutions (SchNet:
 * the sender's features gated elementwise by a learned filter of the
 * distance), which need no [E, w] x [w, w] product:
 *
 *   h   = act(x W_n + b_n)                          node encoder      [R, w]
 *   e   = act(r W_e + b_e)                          edge encoder      [P, w]
 *   per round t = 1..rounds:
 *     m   = h_src * act(r M_t + c_t)                    messages      [2P, w]
 *     a   = sum of m over the edges into each node      (scatter-add)
 *     h   = h + act(h U_t + a + u_t)                    residual update
 *   H   = sum_nodes h r_n + sum_pairs e r_e             summed readout
 *
 * The K states of a task are stacked: R = K N node rows, P = K N (N - 1) / 2
 * pair rows, and one graph evaluates them all (gather / scatter-add rows for
 * the message passing). The field is J grad_x H through the core's
 * derivative nodes, so the loss holds second derivatives of the network and
 * a second-order MAML step third derivatives.
 *
 * The network can be built at any set of block nodes (the parameters' own
 * nodes, or theta' = theta - alpha grad L for MAML), in one graph that
 * holds every program of the model; plans compiled from it share the
 * parameter vector.
 */
#ifndef HAM_MODEL_H
#define HAM_MODEL_H

#include <solver.h>

typedef enum {
  HAM_ACT_TANH = 0,
  HAM_ACT_SOFTPLUS,
  HAM_ACT_SIGMOID,
  HAM_ACT_SIN,
  HAM_ACT_GELU
} ham_act;

typedef enum { HAM_LOSS_MEAN = 0, HAM_LOSS_SUM } ham_loss_norm;

#define HAM_MAX_ROUNDS 2
/* enc, round 1 .. rounds, edge */
#define HAM_MAX_REPS (HAM_MAX_ROUNDS + 2)

typedef struct {
  int width;             /* w */
  int rounds;            /* 1 or 2 */
  ham_act act;
  ham_loss_norm norm;    /* the task loss: mean or sum over the points */
} ham_arch;

/* Parse an activation; smooth ones only. Non-smooth or linear ones are
   refused with the reason (sv_fail naming the option). */
int ham_act_parse(const char *s, ham_act *out);
const char *ham_act_name(ham_act a);
const char *ham_loss_norm_name(ham_loss_norm n);

typedef struct ham_model ham_model;

/* Declares every block (so one model serves 1-, 2- and 3-particle tasks). */
ham_model *ham_model_new(const ham_arch *a);
void ham_model_free(ham_model *m);
const ham_arch *ham_model_arch(const ham_model *m);
sv_graph *ham_model_graph(ham_model *m);
sv_params *ham_model_params(ham_model *m);
/* The parameter nodes, one per block in the params' order. */
sv_node *const *ham_model_blocks(const ham_model *m);
int ham_model_nblocks(const ham_model *m);
/* Is block b unused by one-particle graphs (no edges): the edge encoder,
   the messages and the edge readout. */
int ham_model_block_is_edge(const ham_model *m, int b);
/* Glorot uniform weights, zero biases. */
int ham_model_init(ham_model *m, gsl_rng *rng);

/* What one build of the network gives. */
typedef struct {
  sv_node *Hsum;                 /* scalar: sum of H over the K states */
  sv_node *Hpoint;               /* [K, 1]: H of each state (if asked for) */
  sv_node *grad;                 /* [K N, 4]: grad_x H, rows like x (the field is J grad H) */
  int nrep;
  sv_node *rep[HAM_MAX_REPS];    /* representations: enc, round1.., edge */
  const char *rep_name[HAM_MAX_REPS];
} ham_net;

/*
 * The network at block nodes B (ham_model_blocks(m), or adapted ones) on
 * x, an input [K N, 4] of K states of N particles. per_point: also build H
 * of each state. Returns 0, or -1 with sv_fail.
 */
int ham_net_build(ham_model *m, sv_node *const *B, int N, int K, sv_node *x, int per_point,
                  ham_net *out);

/* The task loss sum_k |J grad H(x_k) - xdot_k|^2 (times 1/K for the mean
   norm) of the network at B on x. y holds the labels in gradient layout,
   g = (-dp/dt, dq/dt) per particle (ham_labels_to_grad), so that the loss
   is sum |grad H - g|^2 without slicing the gradient. */
sv_node *ham_loss_build(ham_model *m, sv_node *const *B, int N, int K, sv_node *x, sv_node *y,
                        ham_net *net);

/* An input [K N, 4] of the model graph. */
sv_node *ham_input(ham_model *m, const char *name, int N, int K);

/* xdot (rows of (dq/dt, dp/dt)) to the gradient layout (-dp/dt, dq/dt),
   and a gradient (dH/dq, dH/dp) to the field (dH/dp, -dH/dq); in place is
   fine. */
void ham_labels_to_grad(int rows, const double *xdot, double *g);
void ham_grad_to_field(int rows, const double *g, double *f);

/* A [n] node packing per-block nodes (the params' layout). */
sv_node *ham_pack(ham_model *m, sv_node *const *blocks);

#endif
