#!/usr/bin/env python3
"""bench/lieconv_stats.py -- per-layer statistics of a lieconv_affine.so
network at its initial (or any) parameters, through the PyTorch peer.

    lieconv_stats.py --data DIR --samples_file RUN/samples.txt --checkpoint RUN/init.bin [--count 256]

RUN is a C run with -write_init 1 (init.bin) or a trained run
(checkpoint.bin); the default skeleton of the plugin (-blocks 0 -mid 0)
and the options below must be those of that run. Prints, in float64, the
mean / std / max |.| of the filters and of each layer's output on the first
--count training images, the spread of the pooled features between images,
and the gradient norm of every parameter block against its size (Adam's
step does not depend on the gradient's size, but the table shows which
blocks the loss is most sensitive to).
"""
import argparse
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import lieconv_torch as P  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--samples_file", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--group", default="sl2", choices=["so2", "sl2", "gl2"])
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--count", type=int, default=256)
    o = ap.parse_args()
    torch.set_num_threads(1)
    a = argparse.Namespace(model="lie", group=o.group, channels=o.channels, samples=o.samples,
                           mid=0, pad=2, blocks=0, head=64, final_norm=1, cnn_channels=0,
                           kernel_width=60, kernel_layers=3, omega=10.0,
                           mask="smooth" if o.group == "gl2" else "hard", pool="max",
                           same=0, kernel_angle="chart")  # the skeleton measured
    net = P.Net(a, P.read_samples(o.samples_file), torch.float64).double()
    P.load_checkpoint(o.checkpoint, net)
    X = torch.tensor(P.centred(P.read_idx(P.find(o.data, "train", "images"))[:o.count])[:, None])
    Y = torch.tensor(P.read_idx(P.find(o.data, "train", "labels"))[:o.count].astype(np.int64))

    def st(name, t):
        t = t.detach()
        print("%-26s mean %+.4f  std %.4f  max|.| %.4f" % (name, t.mean(), t.std(), t.abs().max()))

    st("input", X)
    for nm, L in (("lift", net.lift), ("final", net.final)):
        w = L.weight()
        st(nm + " filter", w)
        print("%-26s %.4f" % (nm + " filter |w|^2 per output", w.pow(2).sum((1, 2, 3)).mean()))
    h = net.lift(X, 0)
    st("lift output", h)
    h = P.ln_gelu(F.max_pool2d(h, 2))
    st("pool, LayerNorm, GELU", h)
    h = net.final(h, 0)
    st("final group conv output", h)
    h = P.ln_gelu(h)
    st("LayerNorm, GELU", h)
    p = h.reshape(h.shape[0], a.channels, -1).amax(-1)
    st("invariant max pool", p)
    print("%-26s %.4f (between images, mean over channels), %.4f (of the channel means)"
          % ("pooled spread", p.std(0).mean(), p.mean(0).std()))
    z = net.head(p)
    st("logits", z)
    loss = F.cross_entropy(z, Y)
    loss.backward()
    print("loss %.4f" % loss.item())
    for nm, q in net.named_parameters():
        print("grad %-28s |param| %8.3g  |grad| %8.3g" % (nm, q.norm().item(), q.grad.norm().item()))


if __name__ == "__main__":
    main()
