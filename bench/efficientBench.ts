/**
 * Benchmark of Efficient-CapsNet (src/models/efficientCapsNet.ts, preset
 * mnist, with its reconstruction decoder) training on real MNIST at batch
 * 100: images per second on the active backend (the native engine when
 * built) and for the PyTorch implementation of the same model
 * (bench/efficient_torch.py) in the same run, with their ratio and the
 * minutes a 60,000-image epoch takes at each rate. bench.ts runs it as one
 * of its rows; on its own it alternates the two implementations for
 * `--rounds` rounds, so that both see the same spells of other work on the
 * machine, and reports each round and the medians.
 *
 *   node dist/bench/efficientBench.js [--train-steps 10] [--rounds 3] [--no-torch]
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeBackend, initBackend } from '../src/backend/node.js';
import { makeBatch, type Batch } from '../src/data/batches.js';
import { loadMnist, mnistFiles } from '../src/data/mnist.js';
import { createModel } from '../src/models/index.js';
import { Adam } from '../src/training/adam.js';
import { trainStep } from '../src/training/trainer.js';
import { Rng } from '../src/util/rng.js';
import { findTorchPython } from './emBench.js';

export const EFFICIENT_BATCH = 100;
/** The official recipe's learning rate (bench/efficient_torch.py uses it too); it does not change a step's time. */
const LEARNING_RATE = 5e-4;

export interface EfficientTiming {
  imagesPerSecond: number;
  /** Wall and CPU milliseconds of each timed step (CPU: every thread of this process). */
  stepMs: number[];
  stepCpuMs: number[];
}

/** Efficient-CapsNet (mnist preset, decoder included) trained on `batches` after `warmup` untimed steps. */
export function timeEfficientTraining(batches: Batch[], warmup: number): EfficientTiming {
  const model = createModel('efficient', 'mnist', {}, 1);
  const optimizer = new Adam({ learningRate: LEARNING_RATE });
  const rng = new Rng(2);
  for (let s = 0; s < warmup; s++) trainStep(model, optimizer, batches[s], { fraction: 0, rng });
  const stepMs: number[] = [];
  const stepCpuMs: number[] = [];
  const t0 = performance.now();
  for (let s = warmup; s < batches.length; s++) {
    const c0 = process.cpuUsage();
    const ts = performance.now();
    trainStep(model, optimizer, batches[s], { fraction: 0, rng });
    stepMs.push(performance.now() - ts);
    const c = process.cpuUsage(c0);
    stepCpuMs.push((c.user + c.system) / 1000);
  }
  const seconds = (performance.now() - t0) / 1000;
  model.dispose();
  optimizer.dispose();
  return { imagesPerSecond: ((batches.length - warmup) * EFFICIENT_BATCH) / seconds, stepMs, stepCpuMs };
}

export interface EfficientTorchResult {
  torch: string;
  threads: number;
  params: number;
  classifierParams: number;
  trainImagesPerSecond: number;
  inferImagesPerSecond: number;
  peakRssMiB: number;
}

/** bench/efficient_torch.py on the same MNIST files with `threads` threads: its result, or why it failed. */
export function runEfficientTorch(python: string, threads: number, trainSteps: number): EfficientTorchResult | string {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'efficient_torch.py');
  const data = dirname(mnistFiles('train').images);
  const r = spawnSync(python, [script, '--data', data, '--preset', 'mnist', '--batch', String(EFFICIENT_BATCH), '--train-steps', String(trainSteps), '--infer-batches', '2', '--threads', String(threads)], {
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.status !== 0) return `PyTorch Efficient-CapsNet run failed: ${(r.stderr || String(r.error)).trim().split('\n').slice(-3).join(' | ')}`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as EfficientTorchResult;
}

/** Shuffled, shifted MNIST training batches, as training draws them. */
export function efficientBatches(count: number, seed = 1): Batch[] {
  const train = loadMnist('train');
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => makeBatch(train, rng.permutation(train.count).subarray(0, EFFICIENT_BATCH), 2, rng));
}

/** Minutes for 60,000 training images at `imagesPerSecond`. */
export const epochMinutes = (imagesPerSecond: number) => 60000 / imagesPerSecond / 60;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const option = (name: string, fallback: number) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const trainSteps = option('train-steps', 10);
  const rounds = option('rounds', 3);
  const warmup = 2;
  const info = await initBackend();
  const threads = info.threads ?? os.availableParallelism();
  console.log(`Efficient-CapsNet (mnist preset, decoder), batch ${EFFICIENT_BATCH}, real MNIST; ${describeBackend(info)}`);
  const python = process.argv.includes('--no-torch') ? null : findTorchPython();
  const batches = efficientBatches(warmup + trainSteps);
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let r = 1; r <= rounds; r++) {
    const load = os.loadavg()[0];
    const t = timeEfficientTraining(batches, warmup);
    ours.push(t.imagesPerSecond);
    let line = `round ${r}: capsnet ${t.imagesPerSecond.toFixed(1)} images/s (median step ${median(t.stepMs).toFixed(0)} ms, CPU ${median(t.stepCpuMs).toFixed(0)} ms)`;
    if (python) {
      const p = runEfficientTorch(python, threads, trainSteps);
      if (typeof p === 'string') line += `; ${p}`;
      else {
        theirs.push(p.trainImagesPerSecond);
        line += `; PyTorch ${p.torch} ${p.trainImagesPerSecond.toFixed(1)} images/s (${(t.imagesPerSecond / p.trainImagesPerSecond).toFixed(2)}x)`;
      }
    }
    console.log(`${line}; load average ${load.toFixed(2)}`);
  }
  const m = median(ours);
  console.log(`median: capsnet ${m.toFixed(1)} images/s, ${epochMinutes(m).toFixed(1)} min per epoch` + (theirs.length ? `; PyTorch ${median(theirs).toFixed(1)} images/s, ${epochMinutes(median(theirs)).toFixed(1)} min per epoch; ratio ${(m / median(theirs)).toFixed(2)}x` : ''));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
