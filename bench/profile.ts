/**
 * Kernel profile of the paper CapsNet on real MNIST at batch 100 (with
 * --arch cnn, of the paper's CNN baseline; with --arch em, of the EM
 * capsule network on seeded random 32x32 images at batch 16, as in
 * emBench.ts): where a training step and an inference batch spend their
 * time, kernel by kernel, and which kernels run in native code. --dataset
 * profiles CapsNet or the CNN on another registered dataset at its own
 * image size (multimnist: 36x36 pairs; mnist40: 40x40). --arch efficient
 * profiles Efficient-CapsNet (preset mnist unless --preset says otherwise)
 * with its decoder on real MNIST at batch 100.
 *
 *   npm run profile [-- --steps N] [-- --batch B] [-- --preset small] [-- --arch cnn|em|efficient] [-- --dataset multimnist]
 *
 * Times are given on the wall clock and in CPU time of the process (all
 * its threads, process.cpuUsage()), which other work on the machine moves
 * far less. Not a benchmark (the timers add overhead); see bench.ts for the
 * numbers.
 */
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend } from '../src/backend/node.js';
import { type Batch, makeBatch } from '../src/data/batches.js';
import { loadDataset } from '../src/data/index.js';
import type { ImageDataset } from '../src/data/dataset.js';
import { createModel } from '../src/models/index.js';
import { loadAddon } from '../src/native/boundary/addon.js';
import { nativeKernelNames } from '../src/native/backend.js';
import { Adam } from '../src/training/adam.js';
import { trainStep } from '../src/training/trainer.js';
import { Rng } from '../src/util/rng.js';
import { randomBatches } from './emBench.js';
import { installKernelTimers, kernelTimings, resetKernelTimings } from './kernelProfile.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

/** CPU time of this process (every thread, user and system) since `since`, in ms. */
function cpuMs(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
}

function table(title: string, steps: number, totalMs: number, cpu: number, natives: Set<string>): void {
  const rows = kernelTimings();
  const kernelMs = rows.reduce((s, r) => s + r.ms, 0);
  // CPU time counts every thread of the engine's pool: it moves less than
  // the wall clock when other work shares the cores.
  console.log(`\n${title}: ${(totalMs / steps).toFixed(1)} ms per batch (CPU time ${(cpu / steps).toFixed(1)} ms), of which kernels ${(kernelMs / steps).toFixed(1)} ms`);
  console.log(`${'kernel'.padEnd(34)} ${'calls'.padStart(6)} ${'ms'.padStart(9)} ${'CPU ms'.padStart(9)} ${'%'.padStart(6)}  ${'largest output'.padStart(14)}  impl`);
  for (const r of rows) {
    const impl = natives.has(r.kernel) ? 'native' : 'js (cpu kernel)';
    console.log(`${r.kernel.padEnd(34)} ${(r.calls / steps).toFixed(0).padStart(6)} ${(r.ms / steps).toFixed(2).padStart(9)} ${(r.cpuMs / steps).toFixed(2).padStart(9)} ${((100 * r.ms) / kernelMs).toFixed(1).padStart(6)}  ${String(r.maxOutput).padStart(14)}  ${impl}`);
  }
}

function datasetBatches(ds: ImageDataset, count: number, batchSize: number, rng: Rng): Batch[] {
  return Array.from({ length: count }, (_, i) => makeBatch(ds, rng.permutation(ds.count).subarray(0, batchSize), 2, new Rng(i)));
}

async function main(): Promise<void> {
  const info = await initBackend();
  console.log(describeBackend(info));
  const kind = arg('arch', 'capsnet');
  if (kind !== 'capsnet' && kind !== 'em' && kind !== 'cnn' && kind !== 'efficient') throw new Error(`--arch must be capsnet, cnn, em or efficient, not ${kind}`);
  const steps = Number(arg('steps', '3'));
  const batchSize = Number(arg('batch', kind === 'em' ? '16' : '100'));
  const preset = arg('preset', kind === 'efficient' ? 'mnist' : 'paper');
  const dataset = arg('dataset', 'mnist');
  if (kind === 'em' && dataset !== 'mnist') throw new Error('--dataset is for --arch capsnet, cnn or efficient (the EM profile uses random 32x32 images)');
  // MultiMNIST generates only the pairs used.
  const data = kind === 'em' ? undefined : loadDataset(dataset, 'train', { count: (steps + 1) * batchSize });
  const addon = loadAddon();
  const natives = new Set(info.backend === 'native' && addon.ok ? nativeKernelNames(addon.addon) : []);

  const rng = new Rng(1);
  const overrides = data ? { inputShape: [data.height, data.width, data.channels], numClasses: data.numClasses } : {};
  const model = createModel(kind, preset, overrides, 1);
  console.log(`model: ${kind}/${preset}${data ? ` on ${dataset} (${data.height}x${data.width})` : ''}, ${model.countParams().toLocaleString('en-US')} parameters, batch ${batchSize}`);
  const optimizer = new Adam({ learningRate: 1e-3 });
  const batches = !data ? randomBatches(model, steps + 1, batchSize, rng) : datasetBatches(data, steps + 1, batchSize, rng);
  if (kind === 'em') tf.tidy(() => model.initializeFromData?.(tf.tensor4d(batches[0].x, [batchSize, ...model.inputShape])));

  installKernelTimers(tf.getBackend());
  trainStep(model, optimizer, batches[0], { fraction: 0, rng });
  resetKernelTimings();
  let t0 = performance.now();
  let c0 = process.cpuUsage();
  for (let s = 1; s <= steps; s++) trainStep(model, optimizer, batches[s], { fraction: 0, rng });
  table('training step', steps, performance.now() - t0, cpuMs(c0), natives);

  const [h, w, c] = model.inputShape;
  const infer = (b: (typeof batches)[number]) =>
    tf.tidy(() => {
      const x = tf.tensor4d(b.x, [b.size, h, w, c]);
      return model.forward(x, { training: false, decode: 'none' } as never).scores.dataSync();
    });
  infer(batches[0]);
  resetKernelTimings();
  t0 = performance.now();
  c0 = process.cpuUsage();
  for (let s = 1; s <= steps; s++) infer(batches[s]);
  table('inference batch', steps, performance.now() - t0, cpuMs(c0), natives);
  console.log(`\ntensors alive: ${tf.memory().numTensors}`);
  model.dispose();
  optimizer.dispose();
}

await main();
