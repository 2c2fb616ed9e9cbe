#!/usr/bin/python3
"""PyTorch peer of pinn_legendre.so: the Legendre equation PINN.

    (1 - x^2) y'' - 2 x y' + n(n+1) y = 0 on [-1, 1]
    trial solution y = (-1)^n + (1 - exp(-(x+1))) N(x)

N is a tanh MLP (1 input, 1 output); the collocation points are an even
or Chebyshev grid on [-1, 1] (the singular endpoints included); the loss is the mean
squared residual. Adam (optionally with cosine warm restarts, computed
exactly as the C core does), then an optional L-BFGS stage. Every
-eval_every steps the weights are set aside; after training, their
relative L2 error against P_n (numpy) on a 1001-point grid gives the
history. The clock used for "time to accuracy" counts training only.
float64, 2 threads.

Prints "key value" lines (adam_steps_per_second, time_to_1e-4, ...) and
writes the history to -csv FILE if given. -check_checkpoint FILE loads the
weights of a C run instead and prints their loss and error as computed
here: run.sh compares them with the C run's summary.json, so both sides
are known to solve the same problem on the same points.
"""
import argparse
import math
import time

import numpy as np
from numpy.polynomial import legendre as npleg
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters


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


class Legendre:
    def __init__(self, a):
        self.n = a.n
        self.net = build(a.width, a.depth, a.seed)
        if a.grid == "chebyshev":  # the plugin's default: x_j = -cos(pi j/(N-1)), ends exact
            # the plugin's formula, term for term: b0 + (b1 - b0) * 0.5 * (1 - cos(.))
            xs = -1.0 + 2.0 * 0.5 * (1.0 - np.cos(np.pi * np.arange(a.points) / (a.points - 1)))
            xs[0], xs[-1] = -1.0, 1.0
            self.x = torch.tensor(xs, dtype=torch.float64).reshape(-1, 1).requires_grad_(True)
        else:
            self.x = torch.linspace(-1.0, 1.0, a.points).reshape(-1, 1).requires_grad_(True)
        xe = np.linspace(-1.0, 1.0, 1001)
        self.xe = torch.tensor(xe).reshape(-1, 1)
        coef = np.zeros(a.n + 1)
        coef[a.n] = 1.0
        self.ref = npleg.legval(xe, coef)  # P_n by numpy, independent of torch
        self.ref_norm = np.linalg.norm(self.ref)

    def trial(self, x):
        return (-1.0) ** self.n + (1.0 - torch.exp(-(x + 1.0))) * self.net(x)

    def loss(self):
        x = self.x
        y = self.trial(x)
        dy, = torch.autograd.grad(y.sum(), x, create_graph=True)
        d2y, = torch.autograd.grad(dy.sum(), x, create_graph=True)
        r = (1.0 - x * x) * d2y - 2.0 * x * dy + self.n * (self.n + 1) * y
        return (r * r).mean()

    def rel_l2(self):
        with torch.no_grad():
            y = self.trial(self.xe).reshape(-1).numpy()
        return float(np.linalg.norm(y - self.ref) / self.ref_norm)


def load_checkpoint(path, net):
    """Copy the parameters of a C checkpoint (core/checkpoint.c, format 1)
    into net: blocks <name>.<layer>.W [nin, nout] and .b, the last layer
    <name>.out. The checksum is verified."""
    import struct
    data = open(path, "rb").read()
    if data[:8] != b"SVCKPT1\n":
        raise SystemExit("%s: not a solver checkpoint" % path)
    h = 14695981039346656037
    for byte in data[:-8]:
        h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    if h != struct.unpack_from("<Q", data, len(data) - 8)[0]:
        raise SystemExit("%s: checksum mismatch" % path)
    version, real_size, count, nblocks = struct.unpack_from("<IIQI", data, 8)
    if version != 1 or real_size != 8:
        raise SystemExit("%s: format %d, real size %d (expected 1, 8)" % (path, version, real_size))
    pos, blocks = 28, {}
    for _ in range(nblocks):
        (ln,) = struct.unpack_from("<I", data, pos)
        name = data[pos + 4:pos + 4 + ln].decode()
        off, size = struct.unpack_from("<QQ", data, pos + 4 + ln)
        blocks[name] = (off, size)
        pos += 4 + ln + 16
    theta = torch.tensor(struct.unpack_from("<%dd" % count, data, pos))
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    prefix = sorted(blocks)[0].split(".")[0]
    names = ["%s.%d" % (prefix, k) for k in range(len(linears) - 1)] + [prefix + ".out"]
    if len(blocks) != 2 * len(linears):
        raise SystemExit("%s: %d blocks, the network has %d layers" % (path, len(blocks), len(linears)))
    with torch.no_grad():
        for lin, nm in zip(linears, names):
            (wo, ws), (bo, bs) = blocks[nm + ".W"], blocks[nm + ".b"]
            nin, nout = lin.in_features, lin.out_features
            if ws != nin * nout or bs != nout:
                raise SystemExit("%s: block %s does not fit a %dx%d layer" % (path, nm, nin, nout))
            lin.weight.copy_(theta[wo:wo + ws].reshape(nin, nout).t())
            lin.bias.copy_(theta[bo:bo + bs])


class Clock:
    """Training time only: evaluations are excluded."""

    def __init__(self):
        self.train = 0.0
        self.t0 = time.perf_counter()

    def pause(self):
        self.train += time.perf_counter() - self.t0

    def resume(self):
        self.t0 = time.perf_counter()


def schedule(a):
    """The C core's cosine warm restarts: lr for each step, in order."""
    t, period = 0.0, float(a.adam_restart)
    while True:
        if a.adam_restart <= 0:
            yield a.adam_lr
            continue
        yield a.adam_lr_min + 0.5 * (a.adam_lr - a.adam_lr_min) * (1 + math.cos(math.pi * t / period))
        t += 1
        if t >= period:
            t = 0.0
            period *= a.adam_restart_mult


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=3)
    ap.add_argument("-width", type=int, default=32)
    ap.add_argument("-depth", type=int, default=4)
    ap.add_argument("-points", type=int, default=128)
    ap.add_argument("-seed", type=int, default=1)
    ap.add_argument("-adam_steps", type=int, default=5000)
    ap.add_argument("-adam_lr", type=float, default=1e-3)
    ap.add_argument("-adam_beta1", type=float, default=0.9)
    ap.add_argument("-adam_beta2", type=float, default=0.999)
    ap.add_argument("-adam_eps", type=float, default=1e-8)
    ap.add_argument("-adam_restart", type=int, default=0, help="first cosine period (0: constant lr)")
    ap.add_argument("-adam_restart_mult", type=float, default=1.0)
    ap.add_argument("-adam_lr_min", type=float, default=0.0)
    ap.add_argument("-grid", default="even", choices=["even", "chebyshev"],
                    help="collocation points, as the plugin's -grid")
    ap.add_argument("-activation", default="tanh", help="only tanh (the peer's network)")
    ap.add_argument("-resample_every", type=int, default=0, help="only 0 (an even grid)")
    ap.add_argument("-lbfgs_steps", type=int, default=0, help="L-BFGS iterations after Adam")
    ap.add_argument("-max_seconds", type=float, default=0.0,
                    help="stop training after this much training time (0: no limit)")
    ap.add_argument("-eval_every", type=int, default=100)
    ap.add_argument("-threads", type=int, default=2)
    ap.add_argument("-csv", default=None)
    ap.add_argument("-check_checkpoint", metavar="FILE", default=None,
                    help="load a C run's checkpoint.bin, print its loss and rel. L2 error here, exit")
    a = ap.parse_args()
    if a.activation != "tanh":
        ap.error("-activation %s: this peer builds a tanh network only" % a.activation)
    if a.resample_every != 0:
        ap.error("-resample_every %d: this peer trains on the even grid only" % a.resample_every)
    if a.points < 3 or a.width < 1 or a.depth < 1 or a.eval_every < 1:
        ap.error("need -points >= 3, -width >= 1, -depth >= 1, -eval_every >= 1")

    torch.set_num_threads(a.threads)
    torch.set_default_dtype(torch.float64)
    prob = Legendre(a)
    params = list(prob.net.parameters())
    if a.check_checkpoint:
        load_checkpoint(a.check_checkpoint, prob.net)
        print("check_loss %.17g" % prob.loss().item())
        print("check_rel_l2 %.17g" % prob.rel_l2())
        return

    # Every -eval_every steps the weights are copied aside (cheap); their
    # loss and error are computed after training. Evaluating in the loop
    # would slow the training itself down by a third (measured), even with
    # the clock stopped.
    snaps = []  # (stage, step, train_seconds, weights)
    clock = Clock()

    def snapshot(stage, step):
        clock.pause()
        snaps.append((stage, step, clock.train, parameters_to_vector(params).detach().clone()))
        clock.resume()

    def out_of_time():
        return a.max_seconds > 0 and clock.train + time.perf_counter() - clock.t0 > a.max_seconds

    opt = torch.optim.Adam(params, lr=a.adam_lr, betas=(a.adam_beta1, a.adam_beta2), eps=a.adam_eps)
    lrs = schedule(a)
    clock.resume()
    t_adam = time.perf_counter()
    adam_done = a.adam_steps
    for step in range(a.adam_steps):
        if step % a.eval_every == 0:
            if out_of_time():
                adam_done = step
                break
            snapshot("adam", step)
        for g in opt.param_groups:
            g["lr"] = next(lrs)
        opt.zero_grad(set_to_none=True)
        loss = prob.loss()
        loss.backward()
        opt.step()
    snapshot("adam", adam_done)
    adam_train = clock.train
    adam_wall = time.perf_counter() - t_adam

    if a.lbfgs_steps > 0 and not out_of_time():
        lb = torch.optim.LBFGS(params, lr=1.0, max_iter=min(a.eval_every, a.lbfgs_steps),
                               history_size=50, tolerance_grad=0.0, tolerance_change=0.0,
                               line_search_fn="strong_wolfe")

        def closure():
            lb.zero_grad(set_to_none=True)
            l = prob.loss()
            l.backward()
            return l

        done = 0
        while done < a.lbfgs_steps:
            k = min(a.eval_every, a.lbfgs_steps - done)
            lb.param_groups[0]["max_iter"] = k  # iterations per call; the state carries over
            lb.step(closure)
            done += k
            snapshot("lbfgs", done)
            if not bool(torch.isfinite(snaps[-1][3]).all()) or out_of_time():
                break
    clock.pause()

    hist = []  # (stage, step, train_seconds, loss, rel_l2)
    reached = {1e-4: None, 1e-6: None}
    for stage, step, t, w in snaps:
        vector_to_parameters(w, params)
        e = prob.rel_l2()
        hist.append((stage, step, t, prob.loss().item(), e))
        for tgt in reached:
            if reached[tgt] is None and e <= tgt:
                reached[tgt] = (t, stage, step)

    final = hist[-1]
    print("torch_adam_steps %d" % adam_done)
    print("torch_adam_train_seconds %.4f" % adam_train)
    print("torch_adam_wall_seconds %.4f" % adam_wall)
    print("torch_adam_steps_per_second %.1f" % (adam_done / adam_train if adam_train > 0 else 0))
    print("torch_final_loss %.6e" % final[3])
    print("torch_final_rel_l2 %.6e" % final[4])
    print("torch_train_seconds %.4f" % clock.train)
    for tgt, r in reached.items():
        if r is None:
            print("torch_time_to_%.0e never" % tgt)
        else:
            print("torch_time_to_%.0e %.4f (%s step %d)" % (tgt, r[0], r[1], r[2]))
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("stage,step,train_seconds,loss,rel_l2\n")
            for h in hist:
                f.write("%s,%d,%.6f,%.17g,%.17g\n" % h)


if __name__ == "__main__":
    main()
