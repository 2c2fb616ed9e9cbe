#!/usr/bin/env python3
"""bench/lieconv_rotation.py -- how far a trained lieconv_affine model is
invariant to rotations of its input, angle by angle.

    lieconv_rotation.py RUNDIR --data DIR [peer options that override the run's]

Loads RUNDIR/checkpoint.bin (and RUNDIR/samples.txt for the Lie-group
network), with the model options of RUNDIR/summary.json, into the PyTorch peer (bench/lieconv_torch.py; its logits agree
with the C plugin's to ~1e-14), rotates the first --count centred test
images of DIR by exact angles about the canvas centre (bilinear, the
plugin's convention: out(p) = in(R^-1 p), x along columns), and prints per
angle the relative change of the pooled invariant features,
||f(R x) - f(x)||_F / ||f(x)||_F, and the accuracy. An SO(2) network with
N samples on the full circle is exactly invariant at multiples of 90
degrees; at multiples of 360/N it is invariant only as far as its sums
over the square grid of kernel taps stand for integrals of the continuous
kernels (see -kernel_sub in the README).
"""
import json
import math
import sys

import numpy as np
import torch

import lieconv_torch as peer
from affine_testset import bilinear

ANGLES = [0, 5, 11.25, 22.5, 33.75, 45, 67.5, 90]


def rotate(imgs, deg):
    """out(p) = in(R^-1 p) about the canvas centre, bilinear, zero outside."""
    S = imgs.shape[-1]
    c = (S - 1) / 2
    t = math.radians(deg)
    co, si = math.cos(t), math.sin(t)
    yy, xx = np.mgrid[0:S, 0:S]
    x, y = xx - c, yy - c
    u, v = co * x + si * y + c, -si * x + co * y + c  # R^-1 p: column u, row v
    return np.stack([bilinear(img, u, v) for img in imgs])


def run_options(run, ap):
    """The run's model options (summary.json) as peer arguments; the command
    line comes after them, so it overrides them."""
    o = json.load(open(run + "/summary.json"))["options"]
    o.setdefault("kernel_sub", 1)  # runs from before -kernel_sub sampled each tap once
    known = {x.dest for x in ap._actions}
    model = ["model", "group", "channels", "samples", "mid", "pad", "same", "blocks", "head",
             "cnn_channels", "kernel_width", "kernel_layers", "kernel_sub", "omega", "mask",
             "kernel_angle", "pool", "align_shift", "final_norm"]
    out = ["--samples_file", run + "/samples.txt"]
    for k in model:
        if k in o and k in known:
            v = o[k]
            out += ["--" + k, str(int(v) if isinstance(v, bool) else v)]
    return out


def main():
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        raise SystemExit(__doc__)
    run = sys.argv[1]
    ap = peer.parser()
    ap.add_argument("--count", type=int, default=200)
    a = peer.resolve(ap.parse_args(run_options(run, ap) + sys.argv[2:]))
    torch.set_num_threads(a.threads)
    g = peer.read_samples(a.samples_file) if a.model == "lie" else None
    net = peer.Net(a, g, torch.float64).to(torch.float64)
    peer.load_checkpoint(run + "/checkpoint.bin", net)
    net.eval()
    x = peer.centred(peer.read_idx(peer.find(a.data, "t10k", "images")))[:a.count]
    y = peer.read_idx(peer.find(a.data, "t10k", "labels"))[:a.count]

    def run_net(imgs):
        with torch.no_grad():
            f = net.features(torch.tensor(imgs[:, None]))
            return f.numpy(), net.head(f).argmax(1).numpy()

    f0, _ = run_net(x)
    print("angle_deg feature_change accuracy")
    for deg in ANGLES:
        f, p = run_net(rotate(x, deg) if deg else x)
        print("%g %.4f %.4f" % (deg, np.linalg.norm(f - f0) / np.linalg.norm(f0), (p == y).mean()))


if __name__ == "__main__":
    main()
