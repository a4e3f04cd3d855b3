/**
 * Benchmark of the EM capsule network of "Matrix capsules with EM routing"
 * (paper preset: A = B = C = D = 32, 316,394 parameters) on 32x32 inputs, 5
 * classes, as for smallNORB: training images per second on the active
 * backend (the native engine with the fused EM routing kernels when built),
 * and the same for the PyTorch implementation of the same model
 * (bench/em_torch.py) in the same run, with their ratio.
 *
 *   node dist/bench/emBench.js [--batch 16] [--train-steps 5] [--threads 2] [--no-torch]
 *
 * Inputs are seeded random images (smallNORB itself is not needed to time a
 * training step). Other work on the machine skews every figure, so the load
 * average is printed too.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeBackend, initBackend } from '../src/backend/node.js';
import type { Batch } from '../src/data/batches.js';
import { createModel } from '../src/models/index.js';
import { Adam } from '../src/training/adam.js';
import { trainStep } from '../src/training/trainer.js';
import { Rng } from '../src/util/rng.js';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

export interface EmTorchResult {
  torch: string;
  threads: number;
  params: number;
  batch: number;
  trainImagesPerSecond: number;
  peakRssMiB: number;
}

/** A python that can import torch: CAPSNET_PYTHON, python3 on PATH, or the system one. */
export function findTorchPython(): string | null {
  const candidates = [process.env.CAPSNET_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => Boolean(c));
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return null;
}

export function runEmTorch(python: string, batch: number, steps: number, threads: number): EmTorchResult | string {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'em_torch.py');
  const r = spawnSync(python, [script, '--batch', String(batch), '--train-steps', String(steps), '--threads', String(threads)], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (r.status !== 0) return `PyTorch run failed: ${(r.stderr || String(r.error)).trim().split('\n').slice(-3).join(' | ')}`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as EmTorchResult;
}

/** Seeded random images with random labels: enough to time a step of a model whose data is not here (smallNORB). */
export function randomBatches(model: { inputShape: [number, number, number]; numClasses: number }, count: number, batchSize: number, rng: Rng): Batch[] {
  const [h, w, c] = model.inputShape;
  const k = model.numClasses;
  return Array.from({ length: count }, () => {
    const x = Float32Array.from({ length: batchSize * h * w * c }, () => rng.normal());
    const labels = Int32Array.from({ length: batchSize }, () => rng.int(0, k - 1));
    const targets = new Float32Array(batchSize * k);
    labels.forEach((l, i) => (targets[i * k + l] = 1));
    return { x, labels, targets, size: batchSize, indices: Int32Array.from({ length: batchSize }, (_, i) => i) };
  });
}

/** Training images per second of the paper EM capsule network on 32x32 inputs (one warm-up step). */
export function timeEmTraining(batch: number, steps: number): { imagesPerSecond: number; stepMs: number[]; params: number } {
  const model = createModel('em', 'paper', {}, 1);
  const [h, w, c] = model.inputShape;
  const rng = new Rng(2);
  const batches = randomBatches(model, steps + 1, batch, rng);
  tf.tidy(() => model.initializeFromData?.(tf.tensor4d(batches[0].x, [batch, h, w, c])));
  const optimizer = new Adam({ learningRate: 1e-3 });
  trainStep(model, optimizer, batches[0], { fraction: 0.5, rng });
  const stepMs: number[] = [];
  const t0 = performance.now();
  for (let s = 1; s <= steps; s++) {
    const ts = performance.now();
    trainStep(model, optimizer, batches[s], { fraction: 0.5, rng });
    stepMs.push(performance.now() - ts);
  }
  const seconds = (performance.now() - t0) / 1000;
  const params = model.countParams();
  model.dispose();
  optimizer.dispose();
  return { imagesPerSecond: (steps * batch) / seconds, stepMs, params };
}

async function main(): Promise<void> {
  const batch = option('batch', 16);
  const steps = option('train-steps', 5);
  const threads = option('threads', os.cpus().length);
  const info = await initBackend();
  console.log(describeBackend(info));
  console.log(`load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} on ${os.cpus().length} cores`);
  const ours = timeEmTraining(batch, steps);
  console.log(`EM capsules, paper preset (${ours.params.toLocaleString('en-US')} parameters), 32x32, batch ${batch}: ${ours.imagesPerSecond.toFixed(2)} training images/s (steps ${ours.stepMs.map((m) => m.toFixed(0)).join(', ')} ms)`);
  if (flag('no-torch')) return;
  const python = findTorchPython();
  if (!python) {
    console.log('PyTorch: not available (set CAPSNET_PYTHON to a python with torch)');
    return;
  }
  const torch = runEmTorch(python, batch, steps, threads);
  if (typeof torch === 'string') {
    console.log(torch);
    return;
  }
  console.log(`PyTorch ${torch.torch} (${torch.threads} threads), same model (${torch.params.toLocaleString('en-US')} parameters): ${torch.trainImagesPerSecond.toFixed(2)} training images/s, peak RSS ${torch.peakRssMiB.toFixed(0)} MiB`);
  console.log(`ratio: ${(ours.imagesPerSecond / torch.trainImagesPerSecond).toFixed(2)}x PyTorch`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
