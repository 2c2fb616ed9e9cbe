#!/usr/bin/python3
"""PyTorch peer of bench/ops_bench.c: single ops, forward and backward.

Cases (the same shapes and objectives as ops_bench.c, float64):
  causal_conv  u [64, 784, 64], k [64, 784]: y by FFT as S4's reference does
               it (u to [B, H, L], rfft of u and k at n = 2L, product, irfft,
               [..., :L], back to [B, L, H]), f = sum(w * y), autograd for
               df/du and df/dk
  xent256      torch.nn.functional.cross_entropy (mean) of z [256, 10], df/dz
  xent4096     the same, z [4096, 10]
  conv2d       torch.nn.functional.conv2d(x [64,128,18,18], W [128,128,5,5],
               stride 1, padding 2), f = sum(w * y), df/dx and df/dW

Usage: bench/ops_torch.py -case NAME [-steps N] [-repeats R] [-threads T]
       bench/ops_torch.py -case NAME -check DIR   (DIR from `ops_bench -dump`)

Timing: random inputs of the case's shapes, warm-up, then R repeats of N
steps; prints "torch_rates ..." and "torch_steps_per_second M" (median).
-check loads the C side's inputs, recomputes its outputs here and prints,
per output, max |C - torch| / max |torch|; exits 1 if any exceeds 1e-10.
"""
import argparse
import os
import statistics
import time

import numpy as np
import torch

CHECK_TOL = 1e-10


def causal_conv_y(u, k):
    """u [B, L, H], k [H, L] -> y [B, L, H], S4's FFT convolution."""
    L = u.shape[-2]
    ut = u.transpose(-1, -2)  # b l h -> b h l, as S4 does for (B, L, H) input
    k_f = torch.fft.rfft(k, n=2 * L)
    u_f = torch.fft.rfft(ut, n=2 * L)
    y = torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L]
    return y.transpose(-1, -2)


def step_causal_conv(t):
    y = causal_conv_y(t["u"], t["k"])
    f = (t["w"] * y).sum()
    du, dk = torch.autograd.grad(f, (t["u"], t["k"]))
    return {"f": f, "du": du, "dk": dk, "y": y}


def step_xent(t):
    f = torch.nn.functional.cross_entropy(t["z"], t["labels"])
    dz, = torch.autograd.grad(f, (t["z"],))
    return {"f": f, "dz": dz}


def step_conv2d(t):
    y = torch.nn.functional.conv2d(t["x"], t["W"], stride=1, padding=2)
    f = (t["w"] * y).sum()
    dx, dW = torch.autograd.grad(f, (t["x"], t["W"]))
    return {"f": f, "dx": dx, "dW": dW, "y": y}


# name: (step, {input: (shape, kind)}, default steps, repeats); kind "var"
# (differentiated), "const", or ("labels", classes)
CASES = {
    "causal_conv": (step_causal_conv,
                    {"u": ((64, 784, 64), "var"), "k": ((64, 784), "var"),
                     "w": ((64, 784, 64), "const")}, 2, 5),
    "xent256": (step_xent, {"z": ((256, 10), "var"), "labels": ((256,), ("labels", 10))}, 2000, 5),
    "xent4096": (step_xent, {"z": ((4096, 10), "var"), "labels": ((4096,), ("labels", 10))},
                 300, 5),
    "conv2d": (step_conv2d,
               {"x": ((64, 128, 18, 18), "var"), "W": ((128, 128, 5, 5), "var"),
                "w": ((64, 128, 18, 18), "const")}, 2, 5),
}


def tensor_of(a, kind):
    if kind == "var":
        return torch.from_numpy(a).requires_grad_(True)
    if kind == "const":
        return torch.from_numpy(a)
    return torch.from_numpy(a).to(torch.int64)  # labels: class indices held as doubles in C


def random_inputs(spec):
    g = np.random.default_rng(1)
    out = {}
    for name, (shape, kind) in spec.items():
        if isinstance(kind, tuple):
            a = g.integers(0, kind[1], size=shape).astype(np.float64)
        else:
            a = g.uniform(-1, 1, size=shape)
        out[name] = tensor_of(a, kind)
    return out


def read_dump(d):
    """manifest.txt: 'case NAME', then 'in NAME dims...' / 'out NAME dims...'."""
    ins, outs, case = {}, {}, None
    with open(os.path.join(d, "manifest.txt")) as f:
        for line in f:
            w = line.split()
            if w[0] == "case":
                case = w[1]
                continue
            shape = tuple(int(x) for x in w[2:])
            a = np.fromfile(os.path.join(d, w[1] + ".bin"), dtype="<f8")
            if a.size != int(np.prod(shape, dtype=np.int64)):
                raise SystemExit("ops_torch.py: %s.bin has %d values, the manifest says %s"
                                 % (w[1], a.size, shape))
            (ins if w[0] == "in" else outs)[w[1]] = a.reshape(shape)
    return case, ins, outs


def check(name, d):
    step, spec, _, _ = CASES[name]
    case, ins, outs = read_dump(d)
    if case != name:
        raise SystemExit("ops_torch.py: %s holds case %s, not %s" % (d, case, name))
    t = {k: tensor_of(ins[k], spec[k][1]) for k in spec}
    got = step(t)
    ok = True
    for k, c in outs.items():
        r = got[k].detach().numpy().reshape(c.shape)
        scale = np.abs(r).max()
        err = np.abs(c - r).max() / (scale if scale > 0 else 1.0)
        good = err <= CHECK_TOL
        ok &= bool(good)
        print("check_%s %.3e%s" % (k, err, "" if good else "  MISMATCH"))
    print("check " + ("ok" if ok else "MISMATCH"))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-case", required=True, choices=sorted(CASES))
    ap.add_argument("-steps", type=int, default=0)
    ap.add_argument("-repeats", type=int, default=0)
    ap.add_argument("-threads", type=int, default=2)
    ap.add_argument("-check", metavar="DIR", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_default_dtype(torch.float64)
    if a.check:
        raise SystemExit(0 if check(a.case, a.check) else 1)

    step, spec, steps, repeats = CASES[a.case]
    steps = a.steps or steps
    repeats = a.repeats or repeats
    t = random_inputs(spec)
    for _ in range(max(1, steps // 5)):  # warm-up
        step(t)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step(t)
        rates.append(steps / (time.perf_counter() - t0))
    print("torch_threads %d" % torch.get_num_threads())
    print("torch_rates " + " ".join("%.2f" % r for r in rates))
    print("torch_steps_per_second %.2f" % statistics.median(rates))


if __name__ == "__main__":
    main()
