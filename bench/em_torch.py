"""PyTorch implementation of the EM capsule network for the benchmark.

The same model, loss and optimizer as src/models/emCapsNet.ts with its
'paper' preset on 32x32x1 input (smallNORB's crops), 5 classes:

  conv1 5x5 stride 2, 32 channels, ReLU
  primary capsules 1x1: 32 types of 4x4 pose + logistic activation
  conv capsules 3x3 stride 2, 32 types, EM routing (3 iterations)
  conv capsules 3x3 stride 1, 32 types, EM routing
  class capsules: W shared across positions, coordinate addition, EM routing
  spread loss, Adam

EM routing as in src/capsules/emRouting.ts: M-step with the variance floor
and the data-per-parent normalisation, the bounded logistic argument, the
inverse temperature lambda_t = 1 - 0.95^(t+1), a log-space E-step in which
every child is normalised over all parents that receive it (across positions
and types: gathers and scatters over a child index, the usual PyTorch way),
gradients through every iteration. Written the way PyTorch code is usually
written (nn modules, autograd), with vectorised tensor ops.

Prints one JSON object: training images per second, threads, peak memory.

    python3 bench/em_torch.py [--batch 16] [--train-steps 5] [--threads 2]
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

FLOOR = 1e-6
BOUND = 15.0
EPS = 1e-8


class Geometry:
    """Index tables: the child in each (position, slot), for gathers and scatters."""

    def __init__(self, h, w, types, k, s):
        self.oh, self.ow = (h - k) // s + 1, (w - k) // s + 1
        self.children = h * w * types
        idx = []
        for oy in range(self.oh):
            for ox in range(self.ow):
                for ky in range(k):
                    for kx in range(k):
                        for t in range(types):
                            idx.append(((oy * s + ky) * w + ox * s + kx) * types + t)
        self.slot_child = torch.tensor(idx, dtype=torch.long)  # [P*N]
        self.P, self.N = self.oh * self.ow, k * k * types
        counts = torch.zeros(self.children).index_add_(0, self.slot_child, torch.ones(len(idx)))
        self.count = counts[self.slot_child].view(self.P, self.N)
        self.kappa = float((1.0 / self.count).sum()) / self.P  # divided by J in routing


def em_routing(votes, acts, beta_u, beta_a, geometry=None, iterations=3):
    """votes [B, P, N, J, D], acts [B, P, N] -> poses [B, P, J, D], activations [B, P, J]."""
    B, P, N, J, D = votes.shape
    kappa = (geometry.kappa if geometry is not None else N) / J
    if geometry is not None:
        R = (1.0 / (geometry.count * J)).view(1, P, N, 1).expand(B, P, N, J)
    else:
        R = votes.new_full((1, 1, 1, J), 1.0 / J)
    a_in = acts.unsqueeze(-1)
    for it in range(iterations):
        lam = 1.0 - 0.95 ** (it + 1)
        r = R * a_in
        r_sum = r.sum(dim=2, keepdim=True)
        w = (r / (r_sum + EPS)).unsqueeze(-1)
        mu = (w * votes).sum(dim=2, keepdim=True)
        var = (w * (votes - mu) ** 2).sum(dim=2, keepdim=True) + FLOOR
        log_sigma = 0.5 * torch.log(var)
        cost = (log_sigma.sum(-1) + D * beta_u) * r_sum / kappa  # [B, P, 1, J]
        z = lam * (beta_a - cost)
        zb = BOUND * torch.tanh(z / BOUND)
        a_out = torch.sigmoid(zb)  # [B, P, 1, J]
        if it == iterations - 1:
            break
        log_p = -((votes - mu) ** 2 / (2 * var)).sum(-1) - log_sigma.sum(-1)
        logits = log_p + F.logsigmoid(zb)  # [B, P, N, J]
        if geometry is None:
            R = torch.softmax(logits, dim=-1)
        else:
            flat = logits.reshape(B, P * N, J)
            idx = geometry.slot_child.view(1, -1).expand(B, -1)
            row_max = flat.detach().amax(-1)
            child_max = torch.full((B, geometry.children), -1e30).scatter_reduce(1, idx, row_max, reduce="amax")
            e = torch.exp(flat - child_max.gather(1, idx).unsqueeze(-1))
            total = torch.zeros(B, geometry.children).scatter_add(1, idx, e.sum(-1))
            R = (e / total.gather(1, idx).unsqueeze(-1)).view(B, P, N, J)
    return mu.squeeze(2), a_out.squeeze(2)


class ConvCaps(nn.Module):
    def __init__(self, h, w, in_types, out_types, k, s):
        super().__init__()
        self.g = Geometry(h, w, in_types, k, s)
        self.W = nn.Parameter(0.5 * torch.randn(k * k * in_types, out_types, 4, 4))
        self.beta_u = nn.Parameter(torch.zeros(out_types))
        self.beta_a = nn.Parameter(torch.zeros(out_types))
        self.out_types = out_types

    def forward(self, poses, acts):
        B = poses.shape[0]
        g = self.g
        p = poses.reshape(B, g.children, 16)[:, g.slot_child].view(B, g.P, g.N, 4, 4)
        a = acts.reshape(B, g.children)[:, g.slot_child].view(B, g.P, g.N)
        votes = torch.matmul(p.unsqueeze(3), self.W).view(B, g.P, g.N, self.out_types, 16)
        mu, act = em_routing(votes, a, self.beta_u, self.beta_a, g)
        return mu.view(B, g.oh, g.ow, self.out_types, 16), act.view(B, g.oh, g.ow, self.out_types)


class ClassCaps(nn.Module):
    def __init__(self, h, w, in_types, classes, offset, stride, size):
        super().__init__()
        self.W = nn.Parameter(0.5 * torch.randn(in_types, classes, 4, 4))
        self.beta_u = nn.Parameter(torch.zeros(classes))
        self.beta_a = nn.Parameter(torch.zeros(classes))
        coords = torch.zeros(h, w, 1, 1, 16)
        for y in range(h):
            for x in range(w):
                coords[y, x, 0, 0, 3] = (offset + stride * y) / size
                coords[y, x, 0, 0, 7] = (offset + stride * x) / size
        self.register_buffer("coords", coords)
        self.classes = classes

    def forward(self, poses, acts):
        B, h, w, t, _ = poses.shape
        votes = torch.matmul(poses.view(B, h, w, t, 1, 4, 4), self.W).view(B, h, w, t, self.classes, 16) + self.coords
        mu, act = em_routing(votes.view(B, 1, h * w * t, self.classes, 16), acts.reshape(B, 1, h * w * t), self.beta_u, self.beta_a)
        return act.view(B, self.classes)


class EmCapsNet(nn.Module):
    def __init__(self, A=32, B=32, C=32, D=32, classes=5, size=32):
        super().__init__()
        self.conv1 = nn.Conv2d(1, A, 5, stride=2)
        self.primary = nn.Conv2d(A, B * 17, 1)
        self.B = B
        h1 = (size - 5) // 2 + 1
        self.caps1 = ConvCaps(h1, h1, B, C, 3, 2)
        h2 = (h1 - 3) // 2 + 1
        self.caps2 = ConvCaps(h2, h2, C, D, 3, 1)
        h3 = h2 - 2
        self.classes = ClassCaps(h3, h3, D, classes, 8.5, 4, size)

    def forward(self, x):
        y = self.primary(F.relu(self.conv1(x))).permute(0, 2, 3, 1)
        b, h, w, _ = y.shape
        poses = y[..., : self.B * 16].reshape(b, h, w, self.B, 16)
        acts = torch.sigmoid(y[..., self.B * 16 :])
        poses, acts = self.caps1(poses, acts)
        poses, acts = self.caps2(poses, acts)
        return self.classes(poses, acts)


def spread_loss(a, labels, margin):
    at = a.gather(1, labels.view(-1, 1))
    loss = F.relu(margin - (at - a)) ** 2
    loss = loss.scatter(1, labels.view(-1, 1), 0.0)
    return loss.sum(1).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    model = EmCapsNet(size=args.size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(args.batch, 1, args.size, args.size, generator=g), torch.randint(0, 5, (args.batch,), generator=g)) for _ in range(args.warmup + args.train_steps)]

    def step(x, y):
        opt.zero_grad()
        loss = spread_loss(model(x), y, 0.5)
        loss.backward()
        opt.step()
        return float(loss)

    for x, y in batches[: args.warmup]:
        step(x, y)
    t0 = time.perf_counter()
    for x, y in batches[args.warmup :]:
        loss = step(x, y)
    seconds = time.perf_counter() - t0
    if not math.isfinite(loss):
        raise SystemExit("loss is not finite")
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "batch": args.batch,
        "trainImagesPerSecond": args.train_steps * args.batch / seconds,
        "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
