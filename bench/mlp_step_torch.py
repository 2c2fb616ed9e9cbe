#!/usr/bin/python3
"""PyTorch peer of bench/mlp_step.c: one PINN training step.

A 4x32 tanh MLP (1 input, 1 output) on 128 points: forward, u'' through
autograd with create_graph=True, the loss mean((u'' + u)^2) and its
gradient w.r.t. all weights. No optimizer update (the C side does none
either). float64, 2 threads. Prints one line "torch_steps_per_second N".

Usage: bench/mlp_step_torch.py [-steps N] [-repeats R] [-threads T]
       bench/mlp_step_torch.py -check DUMP   (DUMP from `mlp_step -dump`)

-check loads the C side's weights, recomputes the loss and the gradient
here and prints the largest differences: both sides time the same
computation.
"""
import argparse
import statistics
import time

import torch


def build(width, depth, seed):
    torch.manual_seed(seed)
    layers = []
    nin = 1
    for _ in range(depth):
        lin = torch.nn.Linear(nin, width)
        torch.nn.init.xavier_uniform_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
        layers += [lin, torch.nn.Tanh()]
        nin = width
    out = torch.nn.Linear(nin, 1)
    torch.nn.init.xavier_uniform_(out.weight)
    torch.nn.init.zeros_(out.bias)
    layers.append(out)
    return torch.nn.Sequential(*layers)


def step(net, x, params):
    u = net(x)
    du, = torch.autograd.grad(u.sum(), x, create_graph=True)
    d2u, = torch.autograd.grad(du.sum(), x, create_graph=True)
    loss = ((d2u + u) ** 2).mean()
    grads = torch.autograd.grad(loss, params)
    return loss, grads


def load_dump(path, net):
    """Copy the weights of `mlp_step -dump` into net; return (loss, grads)."""
    with open(path) as f:
        lines = f.read().split("\n")
    c_loss = float(lines[0].split()[1])
    blocks, i = {}, 1
    while i < len(lines) and lines[i]:
        _, name, size = lines[i].split()
        size = int(size)
        vals = [tuple(map(float, l.split())) for l in lines[i + 1:i + 1 + size]]
        blocks[name] = (torch.tensor([v[0] for v in vals]), torch.tensor([v[1] for v in vals]))
        i += 1 + size
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    names = ["net.%d" % k for k in range(len(linears) - 1)] + ["net.out"]
    c_grads = []
    with torch.no_grad():
        for lin, nm in zip(linears, names):
            w, gw = blocks[nm + ".W"]
            b, gb = blocks[nm + ".b"]
            nin, nout = lin.in_features, lin.out_features
            lin.weight.copy_(w.reshape(nin, nout).t())  # C: x W with W [nin, nout]
            lin.bias.copy_(b)
            c_grads += [gw.reshape(nin, nout).t(), gb]
    return c_loss, c_grads


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-steps", type=int, default=2000)
    ap.add_argument("-repeats", type=int, default=5)
    ap.add_argument("-threads", type=int, default=2)
    ap.add_argument("-points", type=int, default=128)
    ap.add_argument("-width", type=int, default=32)
    ap.add_argument("-depth", type=int, default=4)
    ap.add_argument("-check", metavar="DUMP", default=None)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.set_default_dtype(torch.float64)
    net = build(a.width, a.depth, 1)
    params = list(net.parameters())
    x = torch.linspace(-1.0, 1.0, a.points).reshape(-1, 1).requires_grad_(True)

    if a.check:
        c_loss, c_grads = load_dump(a.check, net)
        loss, grads = step(net, x, params)
        gmax = max(g.abs().max().item() for g in grads)
        dg = max((g - cg).abs().max().item() for g, cg in zip(grads, c_grads))
        dl = abs(loss.item() - c_loss) / abs(loss.item())
        print("check_loss_relerr %.2e" % dl)
        print("check_grad_maxerr_over_maxgrad %.2e" % (dg / gmax))
        ok = dl < 1e-12 and dg / gmax < 1e-12
        print("check " + ("ok" if ok else "MISMATCH"))
        raise SystemExit(0 if ok else 1)

    for _ in range(max(50, a.steps // 10)):  # warm-up
        step(net, x, params)
    rates = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss, grads = step(net, x, params)
        rates.append(a.steps / (time.perf_counter() - t0))
    print("torch_loss %.17g" % loss.item())
    print("torch_rates " + " ".join("%.1f" % r for r in rates))
    print("torch_steps_per_second %.1f" % statistics.median(rates))


if __name__ == "__main__":
    main()
