#!/usr/bin/python3
"""The Legendre PINN written the plain way, for bench/run.sh's comparison
of how the peers are timed (bench/README.md, "Why bench/ measured more").

A tanh nn.Sequential with PyTorch's default initialisation, the even grid,
torch.autograd.grad(..., create_graph=True) twice, torch.optim.Adam with a
constant rate, float64, opt.zero_grad() with PyTorch's default. Prints
plain_adam_steps_per_second (the training loop alone, time.perf_counter
around it) and plain_process_seconds (from the interpreter's start, imports
included: what `time python3 ...` would show).
"""
import sys
import time

T0 = time.perf_counter()
import torch  # noqa: E402


def main():
    n, width, depth, points, steps, threads = 3, 16, 3, 96, 5000, 2
    args = sys.argv[1:]
    for i in range(0, len(args) - 1, 2):
        k, v = args[i], int(args[i + 1])
        if k == "-width": width = v
        elif k == "-depth": depth = v
        elif k == "-points": points = v
        elif k == "-steps": steps = v
        elif k == "-threads": threads = v
        else: raise SystemExit("unknown option " + k)
    torch.set_num_threads(threads)
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    layers, nin = [], 1
    for _ in range(depth):
        layers += [torch.nn.Linear(nin, width), torch.nn.Tanh()]
        nin = width
    net = torch.nn.Sequential(*layers, torch.nn.Linear(nin, 1))
    x = torch.linspace(-1, 1, points).reshape(-1, 1).requires_grad_(True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    t = time.perf_counter()
    for _ in range(steps):
        y = (-1.0) ** n + (1 - torch.exp(-(x + 1))) * net(x)
        dy = torch.autograd.grad(y, x, torch.ones_like(y), create_graph=True)[0]
        d2y = torch.autograd.grad(dy, x, torch.ones_like(dy), create_graph=True)[0]
        loss = (((1 - x * x) * d2y - 2 * x * dy + n * (n + 1) * y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    dt = time.perf_counter() - t
    print("plain_adam_steps_per_second %.1f" % (steps / dt))
    print("plain_final_loss %.6e" % loss.item())
    print("plain_process_seconds %.3f" % (time.perf_counter() - T0))


if __name__ == "__main__":
    main()
