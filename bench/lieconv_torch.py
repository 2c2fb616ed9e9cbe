#!/usr/bin/env python3
"""bench/lieconv_torch.py -- the PyTorch peer of lieconv_affine.so.

The same reduced network as plugins/lieconv/model.h (lifting layer, group
convolutions with optional residual blocks, 2x2 max-pools, LayerNorm without parameters, GELU,
invariant max, sorted or aligned pooling, a dense head), the same SIREN kernel networks on the
same kernel points, built from the same group samples (the C run's
samples.txt), the same data (an IDX directory, the first --train_size
training images centred on a 40x40 canvas), the same optimizer (AdamW,
one cosine over the run, batch 64) -- written independently of the C code
and of the reference implementation, in plain PyTorch.

    lieconv_torch.py --samples_file out/samples.txt --data DIR [options]

  --init FILE           start from the parameters of a C checkpoint (the
                        run's init.bin) instead of PyTorch's own draw
  --check FILE          load a C checkpoint, print the logits of the first
                        test images and exit (run.sh compares them with the
                        C run's; they agree to ~1e-13 in float64)
  --test_images/--test_labels   the affine test set (the C run's
                        affine_test-*.gz from -write_affine 1)
  --rate_steps N        time N training steps after 2 warm-up steps and
                        print images per second (no accuracy)
  --dtype float32|float64, --threads T

Prints "key value" lines: acc_centred, acc_affine, train_seconds,
images_per_second, ... for bench/run.sh.
"""
import argparse
import gzip
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

CANVAS = 40
K = 5


# ---------------------------------------------------------------- data

def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise SystemExit("%s: not an unsigned-byte IDX file" % path)
    nd = raw[3]
    dims = struct.unpack(">" + "I" * nd, raw[4:4 + 4 * nd])
    a = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * nd)
    if a.size != int(np.prod(dims)):
        raise SystemExit("%s: %d values for dims %s" % (path, a.size, dims))
    return a.reshape(dims)


def find(d, split, kind):
    import os
    for suffix in ("", ".gz"):
        p = "%s/%s-%s%s" % (d, split, "images-idx3-ubyte" if kind == "images" else "labels-idx1-ubyte", suffix)
        if os.path.exists(p):
            return p
    raise SystemExit("no %s %s in %s" % (split, kind, d))


def centred(imgs):
    n, h, w = imgs.shape
    out = np.zeros((n, CANVAS, CANVAS), dtype=np.float64)
    r0, c0 = (CANVAS - h) // 2, (CANVAS - w) // 2
    out[:, r0:r0 + h, c0:c0 + w] = imgs / 255.0
    return out


# ---------------------------------------------------------------- groups

def read_samples(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            k, i, t, p, q, r = line.split()
            rows.append((int(k), int(i), float(t), float(p), float(q), float(r)))
    nsets = max(r[0] for r in rows) + 1
    n = max(r[1] for r in rows) + 1
    g = np.zeros((nsets, n, 2, 2))
    for k, i, t, p, q, r in rows:
        P = np.array([[p, q], [q, r]])
        R = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        g[k, i] = P @ R
    return g


def chart(group, h):
    """Chart coordinates of 2x2 matrices h [..., 2, 2]: log P (orthonormal
    basis) then theta in [0, 2 pi), h = P R(theta); numpy, float64."""
    a, b, c, d = h[..., 0, 0], h[..., 0, 1], h[..., 1, 0], h[..., 1, 1]
    x, y = a + d, c - b
    t = np.arctan2(y, x)
    t = np.where(t < 0, t + 2 * math.pi, t)
    t = np.where((x > 0) & (np.abs(y) <= 1e-12 * x), 0.0, t)
    t = np.where(t >= 2 * math.pi, 0.0, t)
    if group == "so2":
        return t[..., None]
    co, si = np.cos(t), np.sin(t)
    # P = h R(t)^T, symmetrised
    p00 = a * co - b * si
    p01 = 0.5 * ((a * si + b * co) + (c * co - d * si))
    p11 = c * si + d * co
    P = np.stack([np.stack([p00, p01], -1), np.stack([p01, p11], -1)], -2)
    e, v = np.linalg.eigh(P)
    S = (v * np.log(e)[..., None, :]) @ np.swapaxes(v, -1, -2)
    r2 = math.sqrt(2)
    if group == "sl2":
        s = 0.5 * (S[..., 0, 0] - S[..., 1, 1])
        return np.stack([r2 * s, r2 * S[..., 0, 1], t], -1)
    return np.stack([S[..., 0, 0], S[..., 1, 1], r2 * S[..., 0, 1], t], -1)


def grid():
    t = np.arange(K * K)
    p, q = t // K, t % K
    return np.stack([(2 * q + 1) / K - 1, (2 * p + 1) / K - 1], -1)  # (x, y) per tap


def cell_points(sub):
    """sub x sub points evenly over each tap's pixel cell: [K*K*sub*sub, 2],
    tap-major (the C plugin's -kernel_sub)."""
    h = 1.0 / K
    s = (2 * np.arange(sub) + 1) / sub - 1
    off = np.stack([np.tile(s, sub), np.repeat(s, sub)], -1) * h   # (x, y), x fastest
    return (grid()[:, None, :] + off[None]).reshape(-1, 2)


def layer_points(group, g_out, g_in, mask, angle="chart", sub=1):
    """Kernel points [nout, nin, K*K*sub*sub, din] and factors of a layer
    whose outputs live on g_out and inputs on g_in (None: lifting); angle
    "circle" gives the kernel (cos theta, sin theta) instead of theta; the
    factors carry the 1 / sub^2 of the mean over each tap's cell."""
    gi = np.linalg.inv(g_out)                       # [nout, 2, 2]
    d = cell_points(sub)                            # [KK ss, 2]
    u = np.einsum("iab,tb->ita", gi, d)             # [nout, KK ss, 2]
    rad = np.linalg.norm(u, axis=-1)
    m = (rad <= 1.0).astype(float) if mask == "hard" else 1 / (1 + np.exp(-2 * (1 - rad)))
    m = m / (sub * sub)
    if g_in is None:
        haar = 1 / np.abs(np.linalg.det(g_out))     # per output sample
        z = u[:, None]                              # [nout, 1, KK, 2]
        f = (m * haar[:, None])[:, None]
        return z, f
    rel = np.einsum("iab,jbc->ijac", gi, g_in)      # g_i^-1 h_j
    cc = chart(group, rel)                          # [nout, nin, dim]
    if angle == "circle":                           # theta is the last coordinate
        t = cc[..., -1:]
        cc = np.concatenate([cc[..., :-1], np.cos(t), np.sin(t)], -1)
    nout, nin = rel.shape[:2]
    npt = u.shape[1]
    z = np.concatenate([np.broadcast_to(u[:, None], (nout, nin, npt, 2)),
                        np.broadcast_to(cc[:, :, None], (nout, nin, npt, cc.shape[-1]))], -1)
    haar = 1 / np.abs(np.linalg.det(g_in))          # per INPUT sample
    f = m[:, None] * haar[None, :, None]
    return z, f


# ---------------------------------------------------------------- model

class Siren(torch.nn.Module):
    def __init__(self, din, width, layers, nout, w0, fan_in):
        super().__init__()
        self.w0 = w0
        self.lin = torch.nn.ModuleList()
        nin = din
        for l in range(layers):
            lin = torch.nn.Linear(nin, width)
            with torch.no_grad():
                wb = 1.0 / nin if l == 0 else math.sqrt(6.0 / nin) / w0
                lin.weight.uniform_(-wb, wb)
                if l == 0:
                    lin.bias.uniform_(-1 / math.sqrt(nin), 1 / math.sqrt(nin))
                else:
                    lin.bias.zero_()
            self.lin.append(lin)
            nin = width
        self.out = torch.nn.Linear(nin, nout)
        with torch.no_grad():
            ab = math.sqrt(6.0 / nin) / math.sqrt(fan_in)
            self.out.weight.uniform_(-ab, ab)
            self.out.bias.zero_()

    def forward(self, z):
        for lin in self.lin:
            z = torch.sin(self.w0 * lin(z))
        return self.out(z)


class GLayer(torch.nn.Module):
    """A lifting layer (g_in None) or a group convolution: one conv2d with
    filters [cout nout, cin nin, K, K] from a SIREN on fixed points."""

    def __init__(self, group, cin, cout, g_out, g_in, mask, a, dtype):
        super().__init__()
        z, f = layer_points(group, g_out, g_in, mask, a.kernel_angle, a.kernel_sub)
        self.sub = a.kernel_sub
        self.nout, self.nin = z.shape[0], z.shape[1]
        self.cin, self.cout = cin, cout
        self.register_buffer("z", torch.tensor(z.reshape(-1, z.shape[-1]), dtype=dtype))
        self.register_buffer("f", torch.tensor(f.reshape(-1, 1), dtype=dtype))
        self.net = Siren(z.shape[-1], a.kernel_width, a.kernel_layers, cout * cin, a.omega, cin * K * K)

    def weight(self):
        k = self.net(self.z) * self.f                                 # [(i, j, t), (o, c)]
        k = k.view(self.nout, self.nin, K * K, self.sub * self.sub, self.cout, self.cin).sum(3)
        k = k.permute(3, 0, 4, 1, 2)                                  # (o, i, c, j, t)
        return k.reshape(self.cout * self.nout, self.cin * self.nin, K, K)

    def forward(self, x, pad):
        return F.conv2d(x, self.weight(), padding=pad)


def ln_gelu(x):
    return F.gelu(F.layer_norm(x, x.shape[1:], eps=1e-5))


class Net(torch.nn.Module):
    def __init__(self, a, g, dtype):
        super().__init__()
        self.a = a
        C = a.channels if a.model == "lie" else a.cnn_channels
        self.C = C
        width = C * a.samples if a.pool in ("sorted", "align") else C
        if a.pool == "align":  # the alignment scores' weights, U(+-1) as the plugin draws them
            self.align_A = torch.nn.Parameter(torch.empty(C, 1, a.samples, dtype=dtype))
            torch.nn.init.uniform_(self.align_A, -1, 1)
        if a.model == "lie":
            mask = a.mask
            self.lift = GLayer(a.group, 1, C, g[0], None, mask, a, dtype)
            if a.mid:
                self.mid = GLayer(a.group, C, C, g[0], g[0], mask, a, dtype)
            self.blocks = torch.nn.ModuleList()
            for b in range(a.blocks):
                self.blocks.append(torch.nn.ModuleList([
                    GLayer(a.group, C, C, g[0], g[0], mask, a, dtype),
                    GLayer(a.group, C, C, g[0], g[0], mask, a, dtype)]))
            self.final = GLayer(a.group, C, C, g[1], g[0], mask, a, dtype)
        else:
            def conv(cin, cout):
                w = torch.nn.Parameter(torch.empty(cout, cin, K, K, dtype=dtype))
                b = 1 / math.sqrt(cin * K * K)
                torch.nn.init.uniform_(w, -b, b)
                return w
            self.lift_w = conv(1, C)
            if a.mid:
                self.mid_w = conv(C, C)
            self.block_w = torch.nn.ParameterList()
            for b in range(a.blocks):
                self.block_w.append(conv(C, C))
                self.block_w.append(conv(C, C))
            self.final_w = conv(C, C)
        self.head1 = torch.nn.Parameter(torch.empty(width, a.head, dtype=dtype))
        torch.nn.init.uniform_(self.head1, -1 / math.sqrt(width), 1 / math.sqrt(width))
        self.head1_b = torch.nn.Parameter(torch.zeros(a.head, dtype=dtype))
        self.ln = torch.nn.LayerNorm(a.head, eps=1e-5)
        self.head2 = torch.nn.Linear(a.head, 10)
        with torch.no_grad():
            b = 1 / math.sqrt(a.head)
            self.head2.weight.uniform_(-b, b)
            self.head2.bias.uniform_(-b, b)

    def forward(self, x):
        return self.head(self.features(x))

    def features(self, x):
        a = self.a
        bp = 2 if a.same else 0  # the border padding of lift and final
        if a.model == "lie":
            h = ln_gelu(F.max_pool2d(self.lift(x, bp), 2))
            for c1, c2 in self.blocks:
                r = ln_gelu(c1(h, 2))
                r = ln_gelu(c2(r, 2))
                h = F.gelu(h + r)
            if a.mid:
                h = F.max_pool2d(ln_gelu(self.mid(h, a.pad)), 2)
            h = self.final(h, bp)
            if a.final_norm:
                h = ln_gelu(h)
        else:
            h = ln_gelu(F.max_pool2d(F.conv2d(x, self.lift_w, padding=bp), 2))
            for b in range(a.blocks):
                r = ln_gelu(F.conv2d(h, self.block_w[2 * b], padding=2))
                r = ln_gelu(F.conv2d(r, self.block_w[2 * b + 1], padding=2))
                h = F.gelu(h + r)
            if a.mid:
                h = F.max_pool2d(ln_gelu(F.conv2d(h, self.mid_w, padding=a.pad)), 2)
            h = F.conv2d(h, self.final_w, padding=bp)
            if a.final_norm:
                h = ln_gelu(h)
        if a.pool == "sorted":  # each (channel, sample)'s max over space; each channel's N sorted
            m = h.reshape(h.shape[0], self.C, a.samples, -1).amax(-1)
            return m.sort(dim=-1, descending=True, stable=True).values.reshape(h.shape[0], -1)
        if a.pool == "align":  # the C x N maxima rolled by a soft, learned choice of shift
            N = a.samples
            m = h.reshape(h.shape[0], self.C, N, -1).amax(-1)
            shifts = range(N) if a.align_shift == 0 else range(-a.align_shift, a.align_shift + 1)
            f = torch.stack([torch.roll(m, -k, dims=2) for k in shifts], dim=2)  # f[b,c,j,i] = m[b,c,i+k_j]
            w = torch.softmax((f * self.align_A).sum(dim=(1, 3)), dim=-1)
            return (f * w[:, None, :, None]).sum(2).reshape(h.shape[0], -1)
        h = h.reshape(h.shape[0], self.C, -1)
        return h.amax(-1) if a.pool == "max" else h.mean(-1)

    def head(self, p):
        return self.head2(F.gelu(self.ln(p @ self.head1 + self.head1_b)))

    def centre_head(self, x):
        """The C model's data-dependent start: head.1.b = -mean(pooled) W."""
        with torch.no_grad():
            self.head1_b.copy_(-(self.features(x).mean(0) @ self.head1))

    def c_blocks(self):
        """(C block name, tensor, transpose) for every parameter, as model.c names them."""
        a = self.a
        out = []

        def siren(prefix, net):
            for l, lin in enumerate(net.lin):
                out.append(("%s.kernel.l%d.W" % (prefix, l), lin.weight, True))
                out.append(("%s.kernel.l%d.b" % (prefix, l), lin.bias, False))
            out.append(("%s.kernel.out.W" % prefix, net.out.weight, True))
            out.append(("%s.kernel.out.b" % prefix, net.out.bias, False))
        if a.model == "lie":
            siren("lift", self.lift.net)
            for b, (c1, c2) in enumerate(self.blocks):
                siren("block%d.conv1" % b, c1.net)
                siren("block%d.conv2" % b, c2.net)
            if a.mid:
                siren("mid", self.mid.net)
            siren("final", self.final.net)
            if a.pool == "align":
                out.append(("pool.align.A", self.align_A, False))
        else:
            out.append(("cnn.lift.W", self.lift_w, False))
            for b in range(a.blocks):
                out.append(("cnn.block%d.conv1.W" % b, self.block_w[2 * b], False))
                out.append(("cnn.block%d.conv2.W" % b, self.block_w[2 * b + 1], False))
            if a.mid:
                out.append(("cnn.mid.W", self.mid_w, False))
            out.append(("cnn.final.W", self.final_w, False))
        out.append(("head.1.W", self.head1, False))
        out.append(("head.1.b", self.head1_b, False))
        out.append(("head.ln.scale", self.ln.weight, False))
        out.append(("head.ln.shift", self.ln.bias, False))
        out.append(("head.2.W", self.head2.weight, True))
        out.append(("head.2.b", self.head2.bias, False))
        return out


def load_checkpoint(path, net):
    """Copy a C checkpoint (core/checkpoint.c, format 1) into net."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"SVCKPT1\n":
        raise SystemExit("%s: not a solver checkpoint" % path)
    ver, rs, count, nb = struct.unpack_from("<IIQI", raw, 8)
    at = 8 + 4 + 4 + 8 + 4
    blocks = {}
    for _ in range(nb):
        (ln,) = struct.unpack_from("<I", raw, at)
        at += 4
        name = raw[at:at + ln].decode()
        at += ln
        off, size = struct.unpack_from("<QQ", raw, at)
        at += 16
        blocks[name] = (off, size)
    vals = np.frombuffer(raw, dtype="<f8", count=count, offset=at)
    used = 0
    for name, t, tr in net.c_blocks():
        if name not in blocks:
            raise SystemExit("%s: no block %s (options differ from the C run?)" % (path, name))
        off, size = blocks[name]
        shape = tuple(t.shape[::-1]) if tr else tuple(t.shape)
        if size != t.numel():
            raise SystemExit("%s: block %s has %d values, the peer's %d" % (path, name, size, t.numel()))
        v = torch.tensor(vals[off:off + size].reshape(shape))
        with torch.no_grad():
            t.copy_(v.t() if tr else v)
        used += 1
    if used != nb:
        raise SystemExit("%s: %d blocks, the peer has %d" % (path, nb, used))


def save_checkpoint(path, net):
    """Write net as a C checkpoint (core/checkpoint.c, format 1), so that
    `solver --plugin lieconv_affine.so -eval_only 1 -checkpoint FILE` can
    evaluate it."""
    names, arrays = [], []
    for name, t, tr in net.c_blocks():
        v = t.detach().double()
        names.append(name)
        arrays.append((v.t() if tr else v).contiguous().numpy().ravel())
    count = sum(a.size for a in arrays)
    out = bytearray(b"SVCKPT1\n")
    out += struct.pack("<IIQI", 1, 8, count, len(names))
    off = 0
    for name, a in zip(names, arrays):
        nb = name.encode()
        out += struct.pack("<I", len(nb)) + nb + struct.pack("<QQ", off, a.size)
        off += a.size
    for a in arrays:
        out += a.astype("<f8").tobytes()
    h = 14695981039346656037
    for b in bytes(out):
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    out += struct.pack("<Q", h)
    with open(path, "wb") as f:
        f.write(out)


# ---------------------------------------------------------------- main

def parser():
    """The peer's options (also read by bench/lieconv_rotation.py)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--samples_file")
    ap.add_argument("--model", default="lie", choices=["lie", "cnn"])
    ap.add_argument("--group", default="sl2", choices=["so2", "sl2", "gl2"])
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--mid", type=int, default=0)
    ap.add_argument("--pad", type=int, default=2, choices=[0, 2])
    ap.add_argument("--blocks", type=int, default=0)
    ap.add_argument("--same", type=int, default=1)
    ap.add_argument("--head", type=int, default=64)
    ap.add_argument("--final_norm", type=int, default=1)
    ap.add_argument("--head_centre", type=int, default=1)
    ap.add_argument("--cnn_channels", type=int, default=0)
    ap.add_argument("--kernel_width", type=int, default=60)
    ap.add_argument("--kernel_layers", type=int, default=3)
    ap.add_argument("--omega", type=float, default=10.0)
    ap.add_argument("--kernel_sub", type=int, default=4, help="kernel points per tap along each axis (the plugin's -kernel_sub)")
    ap.add_argument("--mask", default="auto", choices=["auto", "hard", "smooth"])
    ap.add_argument("--pool", default="auto", choices=["auto", "max", "mean", "sorted", "align"])
    ap.add_argument("--align_shift", type=int, default=0, help="with --pool align: shifts -K..K (0: all)")
    ap.add_argument("--kernel_angle", default="chart", choices=["chart", "circle"])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight_decay", type=float, default=0.01)
    ap.add_argument("--kernel_lr", type=float, default=1.0)
    ap.add_argument("--warmup", type=int, default=0, help="linear warm-up steps before the cosine (the plugin's -warmup)")
    ap.add_argument("--train_size", type=int, default=4000)
    ap.add_argument("--test_size", type=int, default=2000)
    ap.add_argument("--test_images")
    ap.add_argument("--test_labels")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init")
    ap.add_argument("--check")
    ap.add_argument("--check_count", type=int, default=8)
    ap.add_argument("--rate_steps", type=int, default=0)
    ap.add_argument("--save", help="write the trained parameters as a C checkpoint")
    return ap


def resolve(a):
    """The plugin's 'auto' and 0 defaults, resolved as it resolves them."""
    if a.mask == "auto":
        a.mask = "smooth" if a.group == "gl2" else "hard"
    if a.pool == "auto":  # as the C plugin: sorted for the Lie-group network, max for the CNN
        a.pool = "sorted" if a.model == "lie" else "max"
    if a.cnn_channels == 0:
        a.cnn_channels = a.channels * a.samples
    return a


def main():
    a = resolve(parser().parse_args())
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dtype = torch.float32 if a.dtype == "float32" else torch.float64

    g = None
    if a.model == "lie":
        if not a.samples_file:
            raise SystemExit("--model lie needs --samples_file (the C run's samples.txt)")
        g = read_samples(a.samples_file)
        if g.shape[1] != a.samples:
            raise SystemExit("%s has %d samples per set, --samples is %d" % (a.samples_file, g.shape[1], a.samples))
    net = Net(a, g, dtype).to(dtype)

    xt = centred(read_idx(find(a.data, "t10k", "images")))[:a.test_size]
    yt = read_idx(find(a.data, "t10k", "labels"))[:a.test_size].astype(np.int64)
    Xt = torch.tensor(xt[:, None], dtype=dtype)

    def logits(X, bs=100):
        net.eval()
        with torch.no_grad():
            return torch.cat([net(X[k:k + bs]) for k in range(0, X.shape[0], bs)])

    if a.check:
        load_checkpoint(a.check, net)
        z = logits(Xt[:a.check_count]).double().numpy()
        for row in z:
            print("logits " + " ".join("%.17g" % v for v in row))
        return

    xs = centred(read_idx(find(a.data, "train", "images"))[:a.train_size])
    ys = read_idx(find(a.data, "train", "labels"))[:a.train_size].astype(np.int64)
    X = torch.tensor(xs[:, None], dtype=dtype)
    Y = torch.tensor(ys)
    if a.init:
        load_checkpoint(a.init, net)
    elif a.head_centre:
        net.centre_head(X[:a.batch])
    per_epoch = a.train_size // a.batch
    steps = a.epochs * per_epoch
    kern = [p for n, p in net.named_parameters() if ".net." in n]
    rest = [p for n, p in net.named_parameters() if ".net." not in n]
    groups = [{"params": rest, "lr": a.lr}]
    if kern:
        groups.append({"params": kern, "lr": a.lr * a.kernel_lr})
    opt = torch.optim.AdamW(groups, lr=a.lr, weight_decay=a.weight_decay)
    def schedule(t):  # core/optim.c: linear warm-up, then one cosine to 0
        if t < a.warmup:
            return (t + 1) / a.warmup
        span = steps - a.warmup
        return 0.5 * (1 + math.cos(math.pi * ((t - a.warmup) / span if span > 0 else 1)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)

    def step(idx):
        opt.zero_grad()
        loss = F.cross_entropy(net(X[idx]), Y[idx])
        loss.backward()
        opt.step()
        sched.step()
        return loss.item()

    net.train()
    if a.rate_steps:
        gen = torch.Generator().manual_seed(a.seed)
        perm = torch.randperm(a.train_size, generator=gen)
        for k in range(2):
            step(perm[k * a.batch:(k + 1) * a.batch])
        t0 = time.perf_counter()
        for k in range(a.rate_steps):
            j = (k + 2) % per_epoch
            step(perm[j * a.batch:(j + 1) * a.batch])
        t = time.perf_counter() - t0
        print("rate_seconds %.6g" % t)
        print("images_per_second %.6g" % (a.rate_steps * a.batch / t))
        return

    gen = torch.Generator().manual_seed(a.seed)
    t0 = time.perf_counter()
    for e in range(a.epochs):
        perm = torch.randperm(a.train_size, generator=gen)
        tot = 0.0
        for k in range(per_epoch):
            tot += step(perm[k * a.batch:(k + 1) * a.batch])
        print("epoch %d loss %.6f (%.1f s)" % (e + 1, tot / per_epoch, time.perf_counter() - t0), flush=True)
    train_seconds = time.perf_counter() - t0
    if a.save:
        save_checkpoint(a.save, net)
    acc_c = (logits(Xt).argmax(1).numpy() == yt).mean()
    print("train_seconds %.6g" % train_seconds)
    print("images_per_second %.6g" % (steps * a.batch / train_seconds))
    print("acc_centred %.6f" % acc_c)
    if a.test_images:
        xa = read_idx(a.test_images) / 255.0
        ya = read_idx(a.test_labels).astype(np.int64)
        acc_a = (logits(torch.tensor(xa[:, None], dtype=dtype)).argmax(1).numpy() == ya).mean()
        print("acc_affine %.6f" % acc_a)


if __name__ == "__main__":
    main()
