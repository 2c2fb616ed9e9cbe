#!/usr/bin/python3
"""PyTorch peer of hamiltonian_meta.so's MAML step (bench/hamiltonian_step.c).

Written the way a researcher would write it: the same graph-network
Hamiltonian (node and edge encoders, continuous-filter messages on the pair
distance, a summed readout), the vector field J grad_x H through
torch.autograd.grad(..., create_graph=True), MAML by hand (one inner SGD
step on the support set; second order keeps the inner gradient's graph,
first order detaches it), float64, torch.optim.Adam for the outer step.

Usage:
  bench/hamiltonian_torch.py -check DUMP
      load the C side's weights and meta-batches (`hamiltonian_step -dump
      DUMP`), recompute the first- and second-order meta-gradients of the
      first batch and the weights after three second-order Adam steps, and
      print the largest relative differences.
  bench/hamiltonian_torch.py -pool DUMP [-order 1|2] [-steps N] [-repeats R]
                             [-warmup W] [-threads T] [-only1]
      time outer steps on meta-batches drawn from the dump's task pool
      (a system uniformly, then one of its tasks): prints
      "torch_order<k>_steps_per_second V" (median of the repeats) and
      "torch_order<k>_cpu_steps_per_second V" (per second of process CPU
      time).
"""
import argparse
import random
import statistics
import sys
import time

import torch

torch.set_default_dtype(torch.float64)


# --------------------------------------------------------------------------
# The dump
# --------------------------------------------------------------------------
def read_dump(path):
    with open(path) as f:
        tok = f.read().split("\n")
    pos = [0]

    def line():
        s = tok[pos[0]]
        pos[0] += 1
        return s

    def vec(tag):
        name, n = line().split()
        assert name == tag, (name, tag)
        return torch.tensor([float(line()) for _ in range(int(n))])

    def task():
        head = line().split()
        assert head[0] == "task"
        N, K = int(head[1]), int(head[2])
        parts = [torch.tensor([float(v) for v in line().split()]).reshape(K * N, 4) for _ in range(4)]
        return {"N": N, "K": K, "system": head[3], "xs": parts[0], "ys": parts[1],
                "xq": parts[2], "yq": parts[3]}

    d = {}
    for key in ("width", "rounds"):
        k, v = line().split()
        d[key] = int(v)
    for key in ("alpha", "lr"):
        k, v = line().split()
        d[key] = float(v)
    k, d["norm"] = line().split()
    nb = int(line().split()[1])
    d["blocks"] = []
    for _ in range(nb):
        name, n = tok[pos[0]].split()
        d["blocks"].append((name, vec(name)))
    nbatch = int(line().split()[1])
    d["batches"] = []
    for b in range(nbatch):
        T = int(line().split()[1])
        d["batches"].append([task() for _ in range(T)])
        if b == 0:
            d["loss"] = float(line().split()[1])
            d["grad2"] = vec("grad2")
            d["grad1"] = vec("grad1")
    d["after3"] = vec("after3")
    npool = int(line().split()[1])
    d["pool"] = [task() for _ in range(npool)]
    return d


# --------------------------------------------------------------------------
# The graph network
# --------------------------------------------------------------------------
def shapes(width, rounds):
    w = width
    s = [("node.W", (4, w)), ("node.b", (w,)), ("edge.W", (1, w)), ("edge.b", (w,))]
    for t in range(1, rounds + 1):
        s += [("msg%d.W" % t, (1, w)), ("msg%d.b" % t, (w,)), ("upd%d.W" % t, (w, w)),
              ("upd%d.b" % t, (w,))]
    s += [("readout.node", (w, 1)), ("readout.edge", (w, 1))]
    return s


class Edges:
    """Pair indices for K states of N particles: (a -> b) then (b -> a)."""

    def __init__(self, N, K):
        a, b = [], []
        for k in range(K):
            for i in range(N):
                for j in range(i + 1, N):
                    a.append(k * N + i)
                    b.append(k * N + j)
        self.a = torch.tensor(a, dtype=torch.long)
        self.b = torch.tensor(b, dtype=torch.long)
        self.src = torch.cat([self.a, self.b])
        self.dst = torch.cat([self.b, self.a])


def hamiltonian(p, x, N, edges, rounds):
    """Sum over the states of H_theta (the states are independent)."""
    h = torch.tanh(x @ p["node.W"] + p["node.b"])
    H = 0.0
    if N > 1:
        q = x[:, :2]
        r = (q[edges.a] - q[edges.b]).pow(2).sum(1, keepdim=True).sqrt()
        e = torch.tanh(r @ p["edge.W"] + p["edge.b"])
        H = (e @ p["readout.edge"]).sum()
    for t in range(1, rounds + 1):
        z = h @ p["upd%d.W" % t]
        if N > 1:
            filt = torch.tanh(r @ p["msg%d.W" % t] + p["msg%d.b" % t])
            msg = h[edges.src] * torch.cat([filt, filt])
            z = z + torch.zeros_like(h).index_add(0, edges.dst, msg)
        h = h + torch.tanh(z + p["upd%d.b" % t])
    return H + (h @ p["readout.node"]).sum()


def task_loss(p, x, xdot, N, K, edges, rounds, norm):
    """|J grad_x H - xdot|^2 summed over the K states (or their mean)."""
    x = x.detach().requires_grad_(True)
    H = hamiltonian(p, x, N, edges, rounds)
    dH, = torch.autograd.grad(H, x, create_graph=True)
    field = torch.cat([dH[:, 2:], -dH[:, :2]], 1)
    loss = ((field - xdot) ** 2).sum()
    return loss / K if norm == "mean" else loss


class Maml:
    def __init__(self, width, rounds, alpha, lr, norm, blocks=None, seed=0):
        torch.manual_seed(seed)
        self.rounds = rounds
        self.norm = norm
        self.alpha = alpha
        self.names = []
        self.params = {}
        for name, shape in shapes(width, rounds):
            if blocks is not None:
                v = dict(blocks)[name].reshape(shape).clone()
            elif name.endswith(".b"):
                v = torch.zeros(shape)
            else:
                fan_in, fan_out = shape[0], shape[1]
                bound = (6.0 / (fan_in + fan_out)) ** 0.5
                v = (torch.rand(shape) * 2 - 1) * bound
            self.params[name] = v.requires_grad_(True)
            self.names.append(name)
        self.plist = [self.params[k] for k in self.names]
        self.opt = torch.optim.Adam(self.plist, lr=lr)
        self.edges = {}

    def edges_for(self, N, K):
        if (N, K) not in self.edges:
            self.edges[(N, K)] = Edges(N, K)
        return self.edges[(N, K)]

    def meta_loss_backward(self, tasks, order):
        """Accumulate the meta-gradient of mean_tasks Lq(theta') into .grad."""
        total = 0.0
        for t in tasks:
            N, K = t["N"], t["K"]
            ed = self.edges_for(N, K)
            ls = task_loss(self.params, t["xs"], t["ys"], N, K, ed, self.rounds, self.norm)
            grads = torch.autograd.grad(ls, self.plist, create_graph=(order == 2), allow_unused=True)
            fast = {}
            for name, p, g in zip(self.names, self.plist, grads):
                if g is None:  # one particle: no edges, the edge blocks are unused
                    fast[name] = p
                else:
                    fast[name] = p - self.alpha * (g if order == 2 else g.detach())
            lq = task_loss(fast, t["xq"], t["yq"], N, K, ed, self.rounds, self.norm) / len(tasks)
            lq.backward()
            total += lq.item()
        return total

    def step(self, tasks, order):
        self.opt.zero_grad(set_to_none=False)
        loss = self.meta_loss_backward(tasks, order)
        self.opt.step()
        return loss

    def flat(self, what="data"):
        return torch.cat([(p.grad if what == "grad" else p.detach()).reshape(-1) for p in self.plist])


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-check")
    ap.add_argument("-pool")
    ap.add_argument("-order", type=int, default=2)
    ap.add_argument("-steps", type=int, default=50)
    ap.add_argument("-repeats", type=int, default=5)
    ap.add_argument("-warmup", type=int, default=5)
    ap.add_argument("-threads", type=int, default=1)
    ap.add_argument("-only1", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    if a.check:
        d = read_dump(a.check)
        for order, key in ((2, "grad2"), (1, "grad1")):
            m = Maml(d["width"], d["rounds"], d["alpha"], d["lr"], d["norm"], d["blocks"])
            m.opt.zero_grad(set_to_none=False)
            loss = m.meta_loss_backward(d["batches"][0], order)
            print("check_order%d_grad_relerr %.3e" % (order, rel(m.flat("grad"), d[key])))
            if order == 2:
                print("check_loss_relerr %.3e" % abs((loss - d["loss"]) / d["loss"]))
        m = Maml(d["width"], d["rounds"], d["alpha"], d["lr"], d["norm"], d["blocks"])
        for b in d["batches"]:
            m.step(b, 2)
        print("check_after3_relerr %.3e" % rel(m.flat(), d["after3"]))
        g1, g2 = d["grad1"], d["grad2"]
        print("check_c_order_gap %.3e" % ((g2 - g1).norm() / g2.norm()).item())
        return 0

    if not a.pool:
        print("hamiltonian_torch.py: give -check DUMP or -pool DUMP", file=sys.stderr)
        return 2
    d = read_dump(a.pool)
    by_sys = {}
    for t in d["pool"]:
        if a.only1 and t["N"] > 1:
            continue
        by_sys.setdefault(t["system"], []).append(t)
    systems = sorted(by_sys)
    rng = random.Random(1)
    m = Maml(d["width"], d["rounds"], d["alpha"], d["lr"], d["norm"], d["blocks"])

    def batch():
        return [rng.choice(by_sys[rng.choice(systems)]) for _ in range(10)]

    for _ in range(a.warmup):
        m.step(batch(), a.order)
    rates, crates = [], []
    for _ in range(a.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.steps):
            loss = m.step(batch(), a.order)
        rates.append(a.steps / (time.perf_counter() - t0))
        crates.append(a.steps / (time.process_time() - c0))
    if loss != loss:
        print("hamiltonian_torch.py: the meta-loss is NaN", file=sys.stderr)
        return 1
    print("torch_order%d_steps_per_second %.2f" % (a.order, statistics.median(rates)))
    print("torch_order%d_rates %s" % (a.order, " ".join("%.2f" % r for r in rates)))
    print("torch_order%d_cpu_steps_per_second %.2f" % (a.order, statistics.median(crates)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
