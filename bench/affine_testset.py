#!/usr/bin/env python3
"""bench/affine_testset.py -- an affNIST-style 40x40 test set made outside
the plugin, for `lieconv_affine.so -eval_only 1 -test_images ... -test_labels ...`.

    python3 bench/affine_testset.py /tmp/mnist /tmp/affine45 --rotation 45

Reads the first --count images of DIR's t10k files (IDX, plain or .gz),
centres each 28x28 image on a 40x40 canvas, and warps it about the canvas
centre by A = R(theta) S(shear) diag(sx, sy) with theta ~ U[-rotation,
rotation] degrees, shear ~ U[-0.2, 0.2], sx, sy ~ U[0.8, 1.2]
independently (numpy's generator, its own seed), by inverse mapping and
bilinear interpolation written here; then moves the result by an integer
translation drawn uniformly over the range that keeps its non-zero pixels
inside the canvas. Writes OUT/affine-images-idx3-ubyte.gz and
OUT/affine-labels-idx1-ubyte.gz (pixels rounded to bytes).

Only numpy; none of the plugin's code (core/dataset.c, plugins/lieconv/
data.c): the order of the factors, the random draws and the interpolation
are this script's, so the two generators agree only in distribution.
"""
import argparse
import gzip
import os
import struct
import sys

import numpy as np

S = 40


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def find(d, kind):
    name = f"t10k-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    for ext in ("", ".gz"):
        p = os.path.join(d, name + ext)
        if os.path.exists(p):
            return p
    sys.exit(f"affine_testset: no t10k {kind} file in {d}")


def write_idx(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    magic = 0x0800 | arr.ndim
    head = struct.pack(">I", magic) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    tmp = path + ".tmp"
    with gzip.open(tmp, "wb") as f:
        f.write(head + arr.tobytes())
    os.replace(tmp, path)


def bilinear(img, u, v):
    """img sampled at (row v, column u), zero outside."""
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = u - u0, v - v0
    out = np.zeros_like(u)
    for dv, wv in ((0, 1 - fv), (1, fv)):
        for du, wu in ((0, 1 - fu), (1, fu)):
            r, c = v0 + dv, u0 + du
            ok = (r >= 0) & (r < S) & (c >= 0) & (c < S)
            out += np.where(ok, img[np.clip(r, 0, S - 1), np.clip(c, 0, S - 1)], 0.0) * wu * wv
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="IDX directory with t10k-images/labels")
    ap.add_argument("out", help="output directory")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rotation", type=float, default=20.0, help="degrees")
    ap.add_argument("--shear", type=float, default=0.2)
    ap.add_argument("--scale_min", type=float, default=0.8)
    ap.add_argument("--scale_max", type=float, default=1.2)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    imgs = read_idx(find(a.data, "images"))
    labels = read_idx(find(a.data, "labels"))
    if imgs.ndim != 3 or imgs.shape[1] > S or imgs.shape[2] > S:
        sys.exit(f"affine_testset: images of shape {imgs.shape[1:]} do not fit {S}x{S}")
    n = min(a.count, len(imgs))
    rng = np.random.default_rng(a.seed)
    h, w = imgs.shape[1:]
    r0, c0 = (S - h) // 2, (S - w) // 2
    yy, xx = np.mgrid[0:S, 0:S].astype(float)
    centre = (S - 1) / 2.0
    out = np.zeros((n, S, S), dtype=np.uint8)
    for k in range(n):
        canvas = np.zeros((S, S))
        canvas[r0:r0 + h, c0:c0 + w] = imgs[k] / 255.0
        th = np.radians(rng.uniform(-a.rotation, a.rotation))
        sh = rng.uniform(-a.shear, a.shear)
        sx, sy = rng.uniform(a.scale_min, a.scale_max, size=2)
        R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        A = R @ np.array([[1.0, sh], [0.0, 1.0]]) @ np.diag([sx, sy])
        Ai = np.linalg.inv(A)
        # output pixel (x, y) about the centre <- source A^-1 (x, y)
        px, py = xx - centre, yy - centre
        u = Ai[0, 0] * px + Ai[0, 1] * py + centre
        v = Ai[1, 0] * px + Ai[1, 1] * py + centre
        warped = np.clip(bilinear(canvas, u, v), 0.0, 1.0)
        b = np.rint(warped * 255).astype(np.uint8)
        rows, cols = np.nonzero(b)
        if len(rows):
            dy = rng.integers(-rows.min(), S - 1 - rows.max() + 1)
            dx = rng.integers(-cols.min(), S - 1 - cols.max() + 1)
            moved = np.zeros_like(b)
            moved[rows + dy, cols + dx] = b[rows, cols]
            b = moved
        out[k] = b
    os.makedirs(a.out, exist_ok=True)
    write_idx(os.path.join(a.out, "affine-images-idx3-ubyte.gz"), out)
    write_idx(os.path.join(a.out, "affine-labels-idx1-ubyte.gz"), labels[:n])
    print(f"affine_testset: {n} images, rotation +-{a.rotation} deg, shear +-{a.shear}, "
          f"scale {a.scale_min}-{a.scale_max}, seed {a.seed} -> {a.out}")


if __name__ == "__main__":
    main()
