"""PyTorch implementations of the paper CapsNet and of the paper's CNN
baseline for `npm run bench`.

The same model, loss and optimizer as src/models/capsnet.ts with its 'paper'
preset: Conv1 9x9 256 ReLU -> PrimaryCaps 9x9 stride 2, 32 types of 8-D
capsules (squashed) -> DigitCaps 10 x 16-D with W [1152, 10, 16, 8] and 3
routing iterations -> margin loss; decoder FC 512 ReLU, FC 1024 ReLU, FC 784
sigmoid on the capsules masked by the true class, reconstruction loss weight
0.0005; Adam. Written the way PyTorch code is usually written (nn modules,
einsum, autograd through the routing iterations).

--arch cnn is the baseline of section 5 as in src/models/cnn.ts: three 5x5
same-padded convolutions of 256, 256 and 128 channels with ReLU, FC 328 ReLU,
FC 192 ReLU, dropout 0.5, FC 10, softmax cross-entropy; Adam.

--size 36 or 40 pads the MNIST digits to 36x36 (MultiMNIST's size) or 40x40
(mnist40, the affine experiment's), which changes the capsule grid (10x10 or
12x12 primary positions) and the CNN's flattened width, as in the TypeScript
models built on those inputs.

Prints one JSON object: training and inference images per second and the
process's peak resident memory.

    python3 bench/capsnet_torch.py --data DIR [--arch capsnet|cnn] [--size 28]
        [--batch 100] [--train-steps 20] [--infer-batches 20] [--threads 2]
"""
import argparse
import json
import os
import resource
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    _, dtype, ndim = struct.unpack(">HBB", data[:4])
    if dtype != 0x08:
        raise ValueError(f"{path}: expected unsigned bytes")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def squash(s, dim=-1, eps=1e-12):
    n2 = (s * s).sum(dim=dim, keepdim=True)
    return (n2 / (1.0 + n2)) * s / torch.sqrt(n2 + eps)


class CapsNet(nn.Module):
    def __init__(self, size=28, routing_iterations=3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 256, 9)
        self.primary = nn.Conv2d(256, 32 * 8, 9, stride=2)
        grid = (size - 8 - 9) // 2 + 1
        self.caps = grid * grid * 32
        self.pixels = size * size
        self.W = nn.Parameter(0.01 * torch.randn(self.caps, 10, 16, 8))
        self.decoder = nn.Sequential(
            nn.Linear(160, 512), nn.ReLU(inplace=True),
            nn.Linear(512, 1024), nn.ReLU(inplace=True),
            nn.Linear(1024, self.pixels), nn.Sigmoid(),
        )
        self.routing_iterations = routing_iterations

    def capsules(self, x):
        h = F.relu(self.conv1(x))
        p = self.primary(h)  # [B, 256, 6, 6] at 28x28
        b = p.shape[0]
        # Capsule (y, x, type) with 8 channels each, as in the TypeScript model.
        u = squash(p.permute(0, 2, 3, 1).reshape(b, self.caps, 8))
        u_hat = torch.einsum("ijdk,bik->bijd", self.W, u)  # [B, 1152, 10, 16]
        logits = torch.zeros(b, self.caps, 10)
        for r in range(self.routing_iterations):
            c = F.softmax(logits, dim=2)
            v = squash((c.unsqueeze(-1) * u_hat).sum(dim=1))  # [B, 10, 16]
            if r < self.routing_iterations - 1:
                logits = logits + (u_hat * v.unsqueeze(1)).sum(dim=-1)
        return v

    def forward(self, x, labels=None):
        v = self.capsules(x)
        lengths = torch.sqrt((v * v).sum(dim=-1) + 1e-9)
        if labels is None:
            return lengths, None
        mask = F.one_hot(labels, 10).to(v.dtype).unsqueeze(-1)
        recon = self.decoder((v * mask).reshape(v.shape[0], -1))
        return lengths, recon


class Cnn(nn.Module):
    def __init__(self, size=28):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(1, 256, 5, padding=2), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 5, padding=2), nn.ReLU(inplace=True),
            nn.Conv2d(256, 128, 5, padding=2), nn.ReLU(inplace=True),
        )
        self.fc = nn.Sequential(
            nn.Linear(128 * size * size, 328), nn.ReLU(inplace=True),
            nn.Linear(328, 192), nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(192, 10),
        )

    def forward(self, x, labels=None):
        logits = self.fc(self.convs(x).flatten(1))
        return logits, None


def cnn_loss_fn(logits, _recon, _x, labels):
    return F.cross_entropy(logits, labels)


def loss_fn(lengths, recon, x, labels):
    t = F.one_hot(labels, 10).to(lengths.dtype)
    present = F.relu(0.9 - lengths) ** 2
    absent = F.relu(lengths - 0.1) ** 2
    margin = (t * present + 0.5 * (1 - t) * absent).sum() / x.shape[0]
    recon_loss = ((recon - x.reshape(x.shape[0], -1)) ** 2).sum() / x.shape[0]
    return margin + 0.0005 * recon_loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="directory with the MNIST IDX files")
    ap.add_argument("--arch", choices=["capsnet", "cnn"], default="capsnet")
    ap.add_argument("--size", type=int, default=28, help="pad the 28x28 digits to SIZE x SIZE")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--infer-batches", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train_x = read_idx(os.path.join(args.data, "train-images-idx3-ubyte"))
    train_y = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte"))
    test_x = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte"))

    def batch(images, labels, i):
        idx = rng.choice(images.shape[0], args.batch, replace=False) if labels is not None else np.arange(i * args.batch, (i + 1) * args.batch) % images.shape[0]
        x = torch.from_numpy(images[idx].astype(np.float32) / 255.0).unsqueeze(1)
        if args.size > 28:
            lo = (args.size - 28) // 2
            x = F.pad(x, (lo, args.size - 28 - lo, lo, args.size - 28 - lo))
        y = torch.from_numpy(labels[idx].astype(np.int64)) if labels is not None else None
        return x, y

    model = CapsNet(args.size) if args.arch == "capsnet" else Cnn(args.size)
    objective = loss_fn if args.arch == "capsnet" else cnn_loss_fn
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    params = sum(p.numel() for p in model.parameters())

    train_batches = [batch(train_x, train_y, i) for i in range(args.warmup + args.train_steps)]

    def train_step(x, y):
        optimizer.zero_grad(set_to_none=True)
        lengths, recon = model(x, y)
        loss = objective(lengths, recon, x, y)
        loss.backward()
        optimizer.step()
        return loss.item()

    model.train()
    for x, y in train_batches[: args.warmup]:
        train_step(x, y)
    t0 = time.perf_counter()
    for x, y in train_batches[args.warmup :]:
        train_step(x, y)
    train_seconds = time.perf_counter() - t0

    infer_batches = [batch(test_x, None, i) for i in range(args.warmup + args.infer_batches)]
    model.eval()
    with torch.no_grad():
        for x, _ in infer_batches[: args.warmup]:
            model(x)[0].numpy()
        t0 = time.perf_counter()
        for x, _ in infer_batches[args.warmup :]:
            model(x)[0].numpy()
        infer_seconds = time.perf_counter() - t0

    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "params": params,
        "batch": args.batch,
        "trainImagesPerSecond": args.train_steps * args.batch / train_seconds,
        "inferImagesPerSecond": args.infer_batches * args.batch / infer_seconds,
        "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }))


if __name__ == "__main__":
    main()
