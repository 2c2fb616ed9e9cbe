#!/usr/bin/env python3
"""bench/lieconv_lr_probe.py -- short training probes of the peer's model
(bench/lieconv_torch.py) for learning-rate choices: one or more epochs on
the first --train digits, validation accuracy on the last 500 training
images (never the test set).

    lieconv_lr_probe.py --samples_file RUN/samples.txt [--kernel_lr 0.03] [--horizon 10]
                        [--mult lin.1=0.01,lin.2=0.01] [--model cnn] ...

--kernel_lr multiplies lr for every SIREN block; --mult NAME=F,... for the
parameters whose PyTorch name contains NAME (first match wins, e.g. lin.0,
lin.1, lin.2 for the sine layers, out. for the output layer); --horizon N
runs the cosine over N epochs (0: over the epochs run), so that one epoch
of --horizon 10 is the first epoch of a 10-epoch run. float32, 1 thread,
PyTorch's own initial draw (seed --seed) on the C run's samples. This is
how the default -kernel_lr 0.03 was chosen (README, lieconv_affine).
"""
import argparse
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import lieconv_torch as P  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples_file", required=True)
    ap.add_argument("--data", default="/tmp/mnist")
    ap.add_argument("--model", default="lie", choices=["lie", "cnn"])
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--kernel_lr", type=float, default=1.0)
    ap.add_argument("--mult", default="")
    ap.add_argument("--omega", type=float, default=10.0)
    ap.add_argument("--head_centre", type=int, default=1)
    ap.add_argument("--pool", default="max", choices=["max", "mean"])
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--horizon", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    o = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(o.seed)
    a = argparse.Namespace(model=o.model, group="sl2", channels=o.channels, samples=8, mid=0, pad=2,
                           blocks=o.blocks, head=64, final_norm=1, cnn_channels=o.channels * 8,
                           kernel_width=60, kernel_layers=3, omega=o.omega, mask="hard", pool=o.pool,
                           same=0, kernel_angle="chart")  # the skeleton these probes measured
    net = P.Net(a, P.read_samples(o.samples_file), torch.float32).float()
    tr = P.read_idx(P.find(o.data, "train", "images"))
    tl = P.read_idx(P.find(o.data, "train", "labels")).astype(np.int64)
    X = torch.tensor(P.centred(tr[:o.train])[:, None], dtype=torch.float32)
    Y = torch.tensor(tl[:o.train])
    n = tr.shape[0]
    Xv = torch.tensor(P.centred(tr[n - 500:])[:, None], dtype=torch.float32)
    Yv = tl[n - 500:]
    if o.head_centre:
        net.centre_head(X[:64])
    bs = 64
    per = o.train // bs
    steps = per * o.epochs
    horizon = per * o.horizon if o.horizon else steps
    mult = dict(kv.split("=") for kv in o.mult.split(",")) if o.mult else {}

    def factor(name):
        for k, v in mult.items():
            if k in name:
                return float(v)
        return o.kernel_lr if ".net." in name else 1.0
    groups = [{"params": [p], "lr": o.lr * factor(nm)} for nm, p in net.named_parameters()]
    opt = torch.optim.AdamW(groups, lr=o.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / horizon)))
    gen = torch.Generator().manual_seed(0)

    def val():
        net.eval()
        with torch.no_grad():
            z = torch.cat([net(Xv[k:k + 100]) for k in range(0, 500, 100)])
        net.train()
        return (z.argmax(1).numpy() == Yv).mean()
    t0 = time.time()
    for e in range(o.epochs):
        perm = torch.randperm(o.train, generator=gen)
        losses = []
        for k in range(per):
            idx = perm[k * bs:(k + 1) * bs]
            opt.zero_grad()
            loss = F.cross_entropy(net(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        q = max(1, len(losses) // 4)
        print("epoch %d  loss by quarter %s  validation %.3f  (%.0f s)" % (
            e + 1, " ".join("%.3f" % np.mean(losses[i * q:(i + 1) * q]) for i in range(4)), val(),
            time.time() - t0), flush=True)


if __name__ == "__main__":
    main()
