/*
 * ops.h -- what an op is: one descriptor that holds everything the core's
 * generic drivers need to know about it.
 *
 * Every op is defined in one block of one file under core/ops/ (a family
 * per file: elementwise.c, linalg.c, reduce.c, shape.c, index.c, ...):
 *
 *   - its builder, the public sv_* call, which checks the inputs, infers the
 *     output shape (the shape rule) and appends the node;
 *   - its kernel, which computes the output from the input buffers of a
 *     compiled plan;
 *   - its derivative rule (vjp): the contribution of the output's adjoint G
 *     to the adjoint of input i, built from ops, so that a derivative node
 *     can be differentiated again;
 *   - optionally: a folding rule (the op is one of its inputs in disguise,
 *     as x*1 is x), a scratch size and per-plan state (FFT plans).
 *
 * This is the C form of JAX's primitives (impl, abstract evaluation and
 * differentiation rules registered together) and of one entry of PyTorch's
 * derivatives.yaml. The drivers, graph.c (nodes), autodiff.c (reverse
 * mode), compile.c (plans) and kernels.c (running them), know no op by
 * name, except the leaves and the view below.
 */
#ifndef SV_OPS_H
#define SV_OPS_H

#include "../internal.h"
#include "../plan.h"

/* ------------------------------------------------------------------ */
/* The descriptor                                                      */
/* ------------------------------------------------------------------ */

/* How the planner stores an op's output. */
typedef enum {
  SV_STORE_ARENA = 0, /* computed by the kernel into an arena slice */
  SV_STORE_INPUT,     /* a leaf bound by the caller (sv_plan_bind) */
  SV_STORE_PARAM,     /* a leaf in the params vector */
  SV_STORE_CONST,     /* a leaf holding node->data */
  SV_STORE_VIEW       /* the buffer of input 0 (a reshape): no kernel */
} sv_store;

/* What a kernel sees: the node, its output buffer, and the plan for its
   inputs' buffers and resolved shapes (the accessors below). */
typedef struct {
  const sv_plan *p;
  const sv_node *n;
  double *y;              /* output buffer */
  const sv_shape *ys;     /* its shape, batch axis resolved */
  size_t ny;              /* its element count */
  double *work;           /* scratch of op->work() doubles (shared by all steps) */
  void *state;            /* what op->prepare() made for this node */
  /* An elementwise op (SV_OPF_ELEMENTWISE) computes elements [off, off +
     len) only: a fused chain runs its ops block by block (kernels.c). Other
     ops see off 0, len ny. */
  size_t off, len;
} sv_kctx;

/* Flags of an op. */
enum {
  /* Output element i is a function of element i of each input whose element
     count is the output's and of the single element of 1-element inputs
     (when the inputs are shaped so): chains of such ops are fused into one
     loop over blocks at compile time. */
  SV_OPF_ELEMENTWISE = 1
};

/* The view a folding rule gets of the plan being compiled: rep[i] is the
   node that node i was merged into (nodes before i are final). */
typedef struct sv_fold {
  const sv_plan *p;
  const int *rep;
} sv_fold;

struct sv_opdef {
  const char *name;
  sv_store store;
  /* y = op(inputs); 0, or -1 with sv_fail (bad data, e.g. a label out of
     range). NULL only for leaves and views. */
  int (*kernel)(const sv_kctx *k);
  /* The contribution of G (the adjoint of n, n's shape) to the adjoint of
     input i, as a node of n's graph, or NULL after recording an error on the
     graph. NULL here: the op has no derivative (differentiating through it
     is an error that names it). */
  sv_node *(*vjp)(sv_node *n, int i, sv_node *G);
  /* Inputs (bit i for input i) the output does not depend on smoothly: a
     selector whose changes move the output only where it jumps (the x of
     an argmax, class labels). Autodiff passes no adjoint to them. */
  unsigned nodiff;
  unsigned flags;         /* SV_OPF_* */
  /* Optional, for batched nodes with an unbatched input i (a parameter):
     the per-row contributions of G to it, [B, count of input i], row r
     being what vjp gives for row r alone (jacobian_rows.c). */
  sv_node *(*vjp_rows)(sv_node *n, int i, sv_node *G);
  /* Optional: the id of a node whose value this node always has (x*1 is x),
     or -1. */
  int (*fold)(const sv_fold *f, int id);
  /* Optional: scratch doubles the kernel needs, from resolved shapes. */
  size_t (*work)(const sv_plan *p, const sv_node *n);
  /* Optional: per-plan state made once at compile time (FFTW plans), and
     its release. */
  int (*prepare)(const sv_plan *p, const sv_node *n, void **state);
  void (*release)(void *state);
};

/* The descriptors the drivers refer to by name: the leaves, and broadcast
   (a broadcast constant is still that constant, for folding). */
extern const sv_opdef sv__op_input, sv__op_param, sv__op_const, sv__op_broadcast;

/* ------------------------------------------------------------------ */
/* For builders (graph.c)                                              */
/* ------------------------------------------------------------------ */

/* The graph all inputs belong to; NULL (after recording the error) when
   they mix graphs, when one is NULL, or when the graph already failed. */
SV_HIDDEN sv_graph *sv__graph_of(int n, sv_node *const *in);
/* A shape from dims (dims[0] may be SV_BATCH); -1 if invalid. */
SV_HIDDEN int sv__shape_make(sv_shape *s, int ndim, const int *dims);
SV_HIDDEN int sv__shape_equal(const sv_shape *a, const sv_shape *b);
/* numpy broadcasting, right-aligned; -1 if the shapes do not broadcast. */
SV_HIDDEN int sv__shape_broadcast(const sv_shape *a, const sv_shape *b, sv_shape *out);
/* Normalise a possibly negative axis; -1 if out of range. */
SV_HIDDEN int sv__axis(int axis, int ndim);

/* ------------------------------------------------------------------ */
/* For derivative rules (autodiff.c)                                   */
/* ------------------------------------------------------------------ */

/* Sum c down to the shape of `input` (the adjoint of broadcasting). */
SV_HIDDEN sv_node *sv__unbroadcast(sv_node *c, const sv_node *input);
/* sv_vjp with the targets taken as independent variables (no adjoint flows
   from one target into another it is computed from): the rule of a fused
   op can be the reverse mode of the same formula written in ops. */
SV_HIDDEN int sv__vjp_partial(sv_node *y, sv_node *seed, int nx, sv_node *const *x, sv_node **out);
/* A [B, ...] contribution summed to an unbatched input's broadcast axes,
   per row: [B, count of input] (jacobian_rows.c; for vjp_rows rules). */
SV_HIDDEN sv_node *sv__rows_unbroadcast(sv_node *c, const sv_node *input);
/* Zeros of a shape (a broadcast scalar: no storage). */
SV_HIDDEN sv_node *sv__zeros(sv_graph *g, const sv_shape *s);

/* ------------------------------------------------------------------ */
/* For kernels (kernels.c)                                             */
/* ------------------------------------------------------------------ */

static inline const double *sv__kin(const sv_kctx *k, int i) { return k->p->buf[k->n->in[i]->id]; }
static inline const sv_shape *sv__kshape(const sv_kctx *k, int i)
{
  return &k->p->shape[k->n->in[i]->id];
}
static inline size_t sv__kcount(const sv_kctx *k, int i) { return k->p->count[k->n->in[i]->id]; }
/* An elementwise kernel's input i at its block: element off, or the single
   element of a 1-element input. */
static inline const double *sv__kin_at(const sv_kctx *k, int i)
{
  return sv__kin(k, i) + (sv__kcount(k, i) == 1 ? 0 : k->off);
}

/* Left-pad a shape with 1s to 4 axes (numpy's right alignment). */
static inline void sv__pad4(const sv_shape *s, size_t d[4])
{
  for (int i = 0; i < 4; i++)
    d[i] = 1;
  for (int i = 0; i < s->ndim; i++)
    d[4 - s->ndim + i] = (size_t)s->d[i];
}

/* Strides of `in` as seen from an output of padded dims `out`: 0 along
   the axes `in` is broadcast on. */
static inline void sv__bstrides(const sv_shape *in, const size_t out[4], size_t st[4])
{
  size_t d[4], acc = 1;
  sv__pad4(in, d);
  for (int i = 3; i >= 0; i--) {
    st[i] = (d[i] == 1 && out[i] != 1) ? 0 : acc;
    acc *= d[i];
  }
}

/* Elements before and after an axis of a (resolved) shape. */
static inline void sv__split_axis(const sv_shape *s, int axis, size_t *outer, size_t *inner)
{
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < axis; i++)
    *outer *= (size_t)s->d[i];
  for (int i = axis + 1; i < s->ndim; i++)
    *inner *= (size_t)s->d[i];
}

/* A label: a double holding an integer in [0, nclasses); else -1 with a
   message naming `who`, the value and its position. */
SV_HIDDEN int sv__label_check(const char *who, double v, size_t at, int nclasses);
/* The smallest 2^a 3^b 5^c 7^d >= m (m >= 1): a length FFTW does fast
   (fft.c). */
SV_HIDDEN int sv__fft_fast_length(int m);

/* ------------------------------------------------------------------ */
/* For folding rules (compile.c)                                       */
/* ------------------------------------------------------------------ */

/* The node that input i of node `id` was merged into. */
SV_HIDDEN int sv__fold_input(const sv_fold *f, int id, int i);
/* Is node `id` (after merging) a constant equal to v everywhere? */
SV_HIDDEN int sv__fold_is_const(const sv_fold *f, int id, double v);
/* Do two nodes have the same resolved shape? */
SV_HIDDEN int sv__fold_same_shape(const sv_fold *f, int a, int b);

#endif
