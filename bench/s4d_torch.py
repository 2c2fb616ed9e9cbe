#!/usr/bin/env python3
"""s4d_torch.py -- the PyTorch peer of ssm_s4 (bench/README.md).

The same S4D classifier as plugins/ssm/s4d.c, written the way a PyTorch
user would (after state-spaces/s4's minimal S4D and example.py): a linear
encoder to H channels; layers of [kernel K = 2 Re sum_n C_n Bbar_n
exp(l dt A_n) by a Vandermonde product of exponentials, FFT convolution
(rfft of length 2L), skip D u, GELU, Linear(H, 2H) + GLU, residual,
LayerNorm]; mean over time; a linear head; cross-entropy. AdamW (weight
decay 0.01, the state-space parameters A, B, log dt at their own rate and
without decay), a cosine schedule per step to 0 (the core's
SV_LR_COSINE), batch 64, sequential Fashion-MNIST pooled 2x2 (L = 196)
from the same IDX files.

Modes:
  --check FILE   load the parameters and the batch that bench/s4d_step
                 -dump wrote, compute the loss and the gradient in float64
                 and compare with the C values written beside them; then
                 the float32 gradient against the float64 one.
  --step         time forward + backward + AdamW steps on random batches of
                 the real data (steps per second, samples per second).
  (default)      train --epochs on the training images and report the test
                 accuracy after each epoch and the training samples per
                 second.

Debian's PyTorch 1.13 computes a wrong float32 GELU backward when the
incoming gradient is not contiguous (pytorch/pytorch#112006, #107876): the
GELU output's gradient is made contiguous by a hook, and --check measures
the float32 gradient against float64.
"""
import argparse
import gzip
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    assert dtype == 0x08, "unsigned-byte IDX expected"
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(d, stem):
    for name in (stem, stem + ".gz"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(os.path.join(d, stem))


def load(d, split, pool):
    x = read_idx(find(d, split + "-images-idx3-ubyte")).astype(np.float64) / 255.0
    y = read_idx(find(d, split + "-labels-idx1-ubyte")).astype(np.int64)
    n, r, c = x.shape
    x = x.reshape(n, r // pool, pool, c // pool, pool).mean(axis=(2, 4)).reshape(n, -1)
    return x, y


def contiguous_grad(t):
    """The workaround for the float32 GELU backward bug: the gradient that
    flows into GELU's backward is made contiguous."""
    if t.requires_grad:
        t.register_hook(lambda g: g.contiguous())
    return t


class S4DKernel(nn.Module):
    def __init__(self, H, N, dt_min, dt_max, init):
        super().__init__()
        M = N // 2
        self.log_dt = nn.Parameter(torch.rand(H, 1) * (math.log(dt_max) - math.log(dt_min))
                                   + math.log(dt_min))
        n = torch.arange(M, dtype=torch.float64)
        if init == "lin":
            A = torch.complex(-0.5 * torch.ones(M, dtype=torch.float64), -math.pi * n)
        elif init == "inv":
            A = torch.complex(-0.5 * torch.ones(M, dtype=torch.float64),
                              -(N / math.pi) * (N / (2 * n + 1) - 1))
        elif init == "real":
            A = torch.complex(-(n + 1), torch.zeros(M, dtype=torch.float64))
        else:
            raise SystemExit("s4d_torch.py: -init %s is not in the peer" % init)
        self.log_a_re = nn.Parameter(torch.log(-A.real).repeat(H, 1))
        self.a_im = nn.Parameter(A.imag.repeat(H, 1))
        self.b_re = nn.Parameter(torch.ones(H, M, dtype=torch.float64))
        self.b_im = nn.Parameter(torch.zeros(H, M, dtype=torch.float64))
        self.c_re = nn.Parameter(torch.randn(H, M, dtype=torch.float64) * math.sqrt(0.5))
        self.c_im = nn.Parameter(torch.randn(H, M, dtype=torch.float64) * math.sqrt(0.5))

    def forward(self, L):
        dt = torch.exp(self.log_dt)                                   # (H, 1)
        A = torch.complex(-torch.exp(self.log_a_re), self.a_im)       # (H, M)
        B = torch.complex(self.b_re, self.b_im)
        C = torch.complex(self.c_re, self.c_im)
        dtA = A * dt
        K = dtA.unsqueeze(-1) * torch.arange(L, device=A.device, dtype=dt.dtype)  # (H, M, L)
        CB = C * B * (torch.exp(dtA) - 1.0) / A
        return 2 * torch.einsum("hm,hml->hl", CB, torch.exp(K)).real


class S4DBlock(nn.Module):
    def __init__(self, H, N, dt_min, dt_max, init):
        super().__init__()
        self.kernel = S4DKernel(H, N, dt_min, dt_max, init)
        self.D = nn.Parameter(torch.randn(H, 1, dtype=torch.float64))
        self.mix = nn.Linear(H, 2 * H)
        self.norm = nn.LayerNorm(H)

    def forward(self, u):                                  # u (B, L, H)
        L = u.shape[1]
        k = self.kernel(L)                                 # (H, L)
        ut = u.transpose(1, 2)                             # (B, H, L)
        y = torch.fft.irfft(torch.fft.rfft(ut, n=2 * L) * torch.fft.rfft(k, n=2 * L), n=2 * L)[..., :L]
        y = y + ut * self.D
        y = contiguous_grad(F.gelu(y.transpose(1, 2)))     # (B, L, H)
        z = F.glu(self.mix(y), dim=-1)
        return self.norm(z + u)


class S4DModel(nn.Module):
    def __init__(self, H, N, layers, classes, dt_min, dt_max, init):
        super().__init__()
        self.enc = nn.Linear(1, H)
        self.blocks = nn.ModuleList([S4DBlock(H, N, dt_min, dt_max, init) for _ in range(layers)])
        self.head = nn.Linear(H, classes)

    def forward(self, x):                                  # x (B, L)
        u = self.enc(x.unsqueeze(-1))
        for b in self.blocks:
            u = b(u)
        return self.head(u.mean(dim=1))


def ssm_params(model):
    return [p for n, p in model.named_parameters()
            if any(n.endswith(s) for s in ("log_dt", "log_a_re", "a_im", "b_re", "b_im"))]


def optimizer(model, lr, lr_ssm, wd, steps):
    ssm = set(id(p) for p in ssm_params(model))
    rest = [p for p in model.parameters() if id(p) not in ssm]
    opt = torch.optim.AdamW([{"params": rest, "lr": lr, "weight_decay": wd},
                             {"params": ssm_params(model), "lr": lr_ssm, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))
    return opt, sched


# ----------------------------------------------------------------------
# --check: the C model's parameters, batch, loss and gradient
# ----------------------------------------------------------------------

def load_dump(path):
    """name count values... per line: blocks of the C params vector, then
    x, labels, loss, grad; and the sizes line first."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            out[parts[0]] = np.array([float(v) for v in parts[2:]], dtype=np.float64)
    return out


def set_from_c(model, d, H, N, layers):
    M = N // 2
    with torch.no_grad():
        model.enc.weight.copy_(torch.tensor(d["enc.W"]).reshape(1, H).t())
        model.enc.bias.copy_(torch.tensor(d["enc.b"]))
        for k, b in enumerate(model.blocks):
            kk = b.kernel
            kk.log_dt.copy_(torch.tensor(d["%d.ssm.log_dt" % k]).reshape(H, 1))
            for name in ("log_a_re", "a_im", "b_re", "b_im"):
                getattr(kk, name).copy_(torch.tensor(d["%d.ssm.%s" % (k, name)]).reshape(H, M))
            kk.c_re.copy_(torch.tensor(d["%d.c_re" % k]).reshape(H, M))
            kk.c_im.copy_(torch.tensor(d["%d.c_im" % k]).reshape(H, M))
            b.D.copy_(torch.tensor(d["%d.D" % k]).reshape(H, 1))
            b.mix.weight.copy_(torch.tensor(d["%d.W" % k]).reshape(H, 2 * H).t())
            b.mix.bias.copy_(torch.tensor(d["%d.b" % k]))
            b.norm.weight.copy_(torch.tensor(d["%d.ln_g" % k]))
            b.norm.bias.copy_(torch.tensor(d["%d.ln_b" % k]))
        C = model.head.bias.shape[0]
        model.head.weight.copy_(torch.tensor(d["head.W"]).reshape(H, C).t())
        model.head.bias.copy_(torch.tensor(d["head.b"]))


def grad_in_c_order(model, H, N, layers):
    """The gradient packed as the C params vector (blocks in declaration
    order: enc, then per layer the SSM and mixing blocks, then the head)."""
    M = N // 2
    g = []
    g.append(model.enc.weight.grad.t().reshape(-1))
    g.append(model.enc.bias.grad.reshape(-1))
    for b in model.blocks:
        kk = b.kernel
        g += [kk.log_dt.grad.reshape(-1), kk.log_a_re.grad.reshape(-1), kk.a_im.grad.reshape(-1),
              kk.b_re.grad.reshape(-1), kk.b_im.grad.reshape(-1), kk.c_re.grad.reshape(-1),
              kk.c_im.grad.reshape(-1), b.D.grad.reshape(-1), b.mix.weight.grad.t().reshape(-1),
              b.mix.bias.grad.reshape(-1), b.norm.weight.grad.reshape(-1),
              b.norm.bias.grad.reshape(-1)]
    g.append(model.head.weight.grad.t().reshape(-1))
    g.append(model.head.bias.grad.reshape(-1))
    return torch.cat([t.double() for t in g]).numpy()


def check(args):
    d = load_dump(args.check)
    H, N, layers, L, B = (int(v) for v in d["sizes"])
    x = torch.tensor(d["x"]).reshape(B, L)
    y = torch.tensor(d["labels"]).long()
    res = {}
    grads = {}
    for dtype in (torch.float64, torch.float32):
        torch.set_default_dtype(dtype)
        model = S4DModel(H, N, layers, 10, 1e-3, 1e-1, "lin")
        model.to(dtype)
        set_from_c(model, d, H, N, layers)
        loss = F.cross_entropy(model(x.to(dtype)), y)
        loss.backward()
        grads[dtype] = grad_in_c_order(model, H, N, layers)
        res[dtype] = loss.item()
    torch.set_default_dtype(torch.float64)
    gc, g64, g32 = d["grad"], grads[torch.float64], grads[torch.float32]
    scale = np.abs(gc).max()
    print("check_loss_c %.17g" % d["loss"][0])
    print("check_loss_torch64 %.17g" % res[torch.float64])
    print("check_loss_relerr %.3g" % (abs(res[torch.float64] - d["loss"][0]) / abs(d["loss"][0])))
    print("check_grad_maxerr_over_maxgrad %.3g" % (np.abs(g64 - gc).max() / scale))
    print("check_float32_grad_maxerr_over_maxgrad %.3g" % (np.abs(g32 - g64).max() / scale))
    ok = abs(res[torch.float64] - d["loss"][0]) <= 1e-10 * abs(d["loss"][0]) and \
        np.abs(g64 - gc).max() <= 1e-9 * scale
    sys.exit(0 if ok else 1)


# ----------------------------------------------------------------------
# timing and training
# ----------------------------------------------------------------------

def run(args):
    torch.set_num_threads(args.threads)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    torch.set_default_dtype(dtype)
    torch.manual_seed(args.seed)
    xtr, ytr = load(args.data, "train", args.pool)
    xte, yte = load(args.data, "t10k", args.pool)
    if args.train_size:
        xtr, ytr = xtr[:args.train_size], ytr[:args.train_size]
    if args.test_size:
        xte, yte = xte[:args.test_size], yte[:args.test_size]
    xtr = torch.tensor(xtr, dtype=dtype)
    ytr = torch.tensor(ytr)
    xte = torch.tensor(xte, dtype=dtype)
    yte = torch.tensor(yte)
    model = S4DModel(args.H, args.N, args.layers, 10, 1e-3, 1e-1, args.init).to(dtype)
    spe = len(xtr) // args.batch
    steps = args.steps if args.step else args.epochs * spe
    opt, sched = optimizer(model, args.lr, args.ssm_lr, args.weight_decay, steps)

    def evaluate():
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(xte), 256):
                correct += (model(xte[i:i + 256]).argmax(1) == yte[i:i + 256]).sum().item()
        model.train()
        return correct / len(xte)

    def train_step(idx):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        loss.backward()
        opt.step()
        sched.step()
        return loss.item()

    g = torch.Generator().manual_seed(args.seed)
    if args.step:
        for _ in range(args.warmup):
            train_step(torch.randint(len(xtr), (args.batch,), generator=g))
        rates, crates = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                train_step(torch.randint(len(xtr), (args.batch,), generator=g))
            rates.append(args.steps / (time.perf_counter() - t0))
            crates.append(args.steps / (time.process_time() - c0))
        rates.sort()
        crates.sort()
        med = rates[len(rates) // 2]
        print("torch_%s_steps_per_second %.4g" % (args.dtype, med))
        print("torch_%s_samples_per_second %.4g" % (args.dtype, med * args.batch))
        print("torch_%s_rates %s" % (args.dtype, " ".join("%.3g" % r for r in rates)))
        # per CPU second of the process (all its threads): what it ran,
        # not what the other sessions on the machine left it
        print("torch_%s_cpu_samples_per_second %.4g" % (args.dtype, crates[len(crates) // 2] * args.batch))
        return
    seconds = cpu_seconds = 0.0
    accs = []
    for e in range(args.epochs):
        perm = torch.randperm(len(xtr), generator=g)
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(spe):
            train_step(perm[s * args.batch:(s + 1) * args.batch])
        seconds += time.perf_counter() - t0
        cpu_seconds += time.process_time() - c0
        accs.append(evaluate())
        print("epoch %d test_accuracy %.4f train_seconds %.1f" % (e + 1, accs[-1], seconds),
              flush=True)
    print(json.dumps({"dtype": args.dtype, "epochs": args.epochs, "test_accuracy": accs[-1],
                      "test_accuracy_per_epoch": accs, "train_seconds": seconds,
                      "samples_per_second": args.epochs * spe * args.batch / seconds,
                      "train_cpu_seconds": cpu_seconds,
                      "samples_per_cpu_second": args.epochs * spe * args.batch / cpu_seconds}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--pool", type=int, default=2)
    p.add_argument("--H", type=int, default=64)
    p.add_argument("--N", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--init", default="lin")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--ssm_lr", type=float, default=1e-3)
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--train_size", type=int, default=0)
    p.add_argument("--test_size", type=int, default=0)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", metavar="FILE")
    p.add_argument("--step", action="store_true")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if args.check:
        check(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
