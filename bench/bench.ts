/**
 * Benchmark of the paper CapsNet (8.2M parameters) on real MNIST at batch
 * 100: training and inference images per second and peak resident memory on
 * the active backend (the native engine when built), the same figures for a
 * PyTorch implementation of the same model (bench/capsnet_torch.py) when
 * python3 with torch is available, their ratios, and the FLOP rate achieved
 * against a measured sgemm peak. Further rows, each beside PyTorch:
 * - the paper CapsNet training on 36x36 (MultiMNIST) and 40x40 (mnist40)
 *   inputs, MNIST digits padded to that size;
 * - the paper's CNN baseline training on 28x28 (src/models/cnn.ts) and on
 *   40x40 (padded digits, as above; not with --no-sizes);
 * - the EM capsule network of "Matrix capsules with EM routing" (paper
 *   preset, 32x32 inputs, batch 16; see emBench.ts), unless --no-em.
 * - Efficient-CapsNet (mnist preset, with its decoder) training on the same
 *   MNIST batches beside bench/efficient_torch.py, and the minutes an epoch
 *   takes against the paper CapsNet's (see efficientBench.ts), unless
 *   --no-efficient.
 * - the same model exported to ONNX (capsnet export --format onnx), its
 *   inference in onnxruntime-node on the same batches, unless --no-onnx.
 * A last table gives the GEMM rate of the built-in kernels against OpenBLAS
 * (when the build links it) at 2048^3 and at the paper CapsNet's own shapes.
 *
 *   npm run bench [-- --train-steps 20] [-- --infer-batches 20] [-- --em-steps 3] [-- --no-torch] [-- --no-em] [-- --no-sizes] [-- --no-cnn] [-- --no-onnx] [-- --no-efficient] [-- --only-onnx] [-- --only-efficient] [-- --epoch]
 *
 * --only-onnx times just the two inference rows (ours and ONNX Runtime's);
 * --only-efficient just Efficient-CapsNet's training beside PyTorch's and
 * the paper CapsNet's training rate (ours) for the epoch comparison.
 *
 * --epoch also times one full epoch (60,000 images) of training. Other work
 * on the machine skews every figure, so the load average is printed too.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeBackend, initBackend } from '../src/backend/node.js';
import { modelToOnnx } from '../src/export/onnx.js';
import { loadOnnxRuntime } from '../src/export/onnxRuntime.js';
import { makeBatch, type Batch } from '../src/data/batches.js';
import { loadMnist, mnistFiles } from '../src/data/mnist.js';
import { capsNetConfig, createModel, type CapsNetConfig } from '../src/models/index.js';
import { loadAddon, type GemmIsa, type NativeAddon } from '../src/native/boundary/addon.js';
import { Adam } from '../src/training/adam.js';
import { trainStep } from '../src/training/trainer.js';
import { Rng } from '../src/util/rng.js';
import { epochMinutes, runEfficientTorch, timeEfficientTraining, type EfficientTorchResult } from './efficientBench.js';
import { findTorchPython, runEmTorch, timeEmTraining, type EmTorchResult } from './emBench.js';

const BATCH = 100;

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

/** Multiply-adds x 2 of one image through the model, forward and for a training step. */
export function capsNetFlops(c: CapsNetConfig): { forward: number; train: number } {
  const [h, w, ch] = c.inputShape;
  const o1 = h - c.conv1.kernelSize + 1;
  const conv1 = 2 * o1 * o1 * c.conv1.filters * c.conv1.kernelSize ** 2 * ch;
  const o2 = Math.floor((o1 - c.primary.kernelSize) / c.primary.strides) + 1;
  const channels = c.primary.types * c.primary.dim;
  const primary = 2 * o2 * o2 * channels * c.primary.kernelSize ** 2 * c.conv1.filters;
  const caps = o2 * o2 * c.primary.types;
  const uHat = 2 * caps * c.numClasses * c.digit.dim * c.primary.dim;
  // Weighted sums in every iteration, agreements in all but the last.
  const routing = 2 * caps * c.numClasses * c.digit.dim * (2 * c.digit.routingIterations - 1);
  const sizes = [c.numClasses * c.digit.dim, ...(c.decoder?.hidden ?? []), h * w * ch];
  let decoder = 0;
  for (let i = 0; i + 1 < sizes.length; i++) decoder += 2 * sizes[i] * sizes[i + 1];
  const forward = conv1 + primary + uHat + routing;
  // Backward: both gradients of every product, except Conv1's input gradient
  // (the images need none).
  const train = forward + decoder + (conv1 + 2 * primary + 2 * uHat + 2 * routing + 2 * decoder);
  return { forward, train };
}

/**
 * The GEMM shapes (transA, transB, M, N, K) that dominate a paper-CapsNet
 * training step at batch 100, traced from the engine: the primary capsules'
 * frequency-domain products (forward, input and filter gradients) and Conv1's
 * im2col product and filter gradient.
 */
const MODEL_GEMMS: [boolean, boolean, number, number, number][] = [
  [false, false, 200, 256, 2048],
  [false, true, 200, 2048, 256],
  [true, false, 2048, 256, 200],
  [false, false, 256, 256, 81],
  [true, false, 81, 256, 5000],
];

/** GFLOPS of the engine's GEMM (on every thread, as the kernels run it) for one shape, best of a few. */
function gemmRate(addon: NativeAddon, [transA, transB, M, N, K]: [boolean, boolean, number, number, number]): number {
  const a = new Float32Array(M * K).map((_, i) => ((i % 7) - 3) * 0.1);
  const b = new Float32Array(K * N).map((_, i) => ((i % 5) - 2) * 0.1);
  const c = new Float32Array(M * N);
  const flops = 2 * M * N * K;
  const reps = Math.max(1, Math.round(2e9 / flops));
  const once = () => {
    for (let r = 0; r < reps; r++) addon.gemm({ transA, transB, M, N, K, alpha: 1, a, lda: transA ? M : K, b, ldb: transB ? K : N, beta: 0, c, ldc: N });
  };
  once();
  let best = Infinity;
  for (let r = 0; r < 4; r++) {
    const t0 = performance.now();
    once();
    best = Math.min(best, (performance.now() - t0) / reps);
  }
  return flops / best / 1e6;
}

interface GemmTable {
  shapes: string[];
  /** GFLOPS per shape, one column per GEMM. */
  columns: { name: string; rates: number[] }[];
  /** The column of the GEMM the models ran on. */
  active: number;
}

/** Every built-in kernel this CPU runs and OpenBLAS when linked, at 2048^3 and the model's shapes; leaves the default selected. */
function gemmTable(): GemmTable | null {
  const loaded = loadAddon();
  if (!loaded.ok) return null;
  const addon = loaded.addon;
  const info = addon.info();
  const shapes: [boolean, boolean, number, number, number][] = [[false, false, 2048, 2048, 2048], ...MODEL_GEMMS];
  const choices: { name: string; gemm: 'builtin' | 'openblas'; isa: '' | GemmIsa }[] = [
    ...(info.gemmIsas.split(',').filter(Boolean) as GemmIsa[]).map((isa) => ({ name: `builtin ${isa}`, gemm: 'builtin' as const, isa })),
    ...(info.openblas ? [{ name: `OpenBLAS ${info.openblas.split(/\s+/)[1] ?? ''}`.trim(), gemm: 'openblas' as const, isa: '' as const }] : []),
  ];
  const columns = choices.map((ch) => {
    addon.setGemm({ library: ch.gemm, isa: ch.isa });
    return { name: ch.name, rates: shapes.map((sh) => gemmRate(addon, sh)) };
  });
  addon.setGemm({ library: info.gemm, isa: info.gemm === 'builtin' ? (info.gemmIsa as GemmIsa) : '' });
  const active = choices.findIndex((ch) => ch.gemm === info.gemm && (ch.gemm === 'openblas' || ch.isa === info.gemmIsa));
  return { shapes: shapes.map(([ta, tb, M, N, K]) => `${ta ? 'T' : 'N'}${tb ? 'T' : 'N'} ${M}x${N}x${K}`), columns, active };
}

interface TorchResult {
  torch: string;
  threads: number;
  trainImagesPerSecond: number;
  inferImagesPerSecond: number;
  peakRssMiB: number;
}

function runTorch(python: string, threads: number, trainSteps: number, inferBatches: number, arch: 'capsnet' | 'cnn' = 'capsnet', size = 28): TorchResult | string {
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'capsnet_torch.py');
  const data = dirname(mnistFiles('train').images);
  const r = spawnSync(python, [script, '--data', data, '--arch', arch, '--size', String(size), '--batch', String(BATCH), '--train-steps', String(trainSteps), '--infer-batches', String(inferBatches), '--threads', String(threads)], {
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.status !== 0) return `PyTorch run failed: ${(r.stderr || String(r.error)).trim().split('\n').slice(-3).join(' | ')}`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchResult;
}

/** MNIST batches with the digits centred on a size x size canvas (36: MultiMNIST's, 40: mnist40's). */
function padBatches(batches: Batch[], size: number): Batch[] {
  if (size === 28) return batches;
  const lo = Math.floor((size - 28) / 2);
  return batches.map((b) => {
    const x = new Float32Array(b.size * size * size);
    for (let n = 0; n < b.size; n++)
      for (let y = 0; y < 28; y++) x.set(b.x.subarray((n * 28 + y) * 28, (n * 28 + y + 1) * 28), (n * size + y + lo) * size + lo);
    return { ...b, x };
  });
}

function timeTraining(batches: Batch[], warmup: number, arch: 'capsnet' | 'cnn' = 'capsnet', size = 28): { imagesPerSecond: number; stepMs: number[] } {
  const model = createModel(arch, 'paper', size === 28 ? {} : { inputShape: [size, size, 1] }, 1);
  const optimizer = new Adam({ learningRate: 1e-3 });
  const rng = new Rng(2);
  for (let s = 0; s < warmup; s++) trainStep(model, optimizer, batches[s], { fraction: 0, rng });
  const stepMs: number[] = [];
  const t0 = performance.now();
  for (let s = warmup; s < batches.length; s++) {
    const ts = performance.now();
    trainStep(model, optimizer, batches[s], { fraction: 0, rng });
    stepMs.push(performance.now() - ts);
  }
  const seconds = (performance.now() - t0) / 1000;
  model.dispose();
  optimizer.dispose();
  return { imagesPerSecond: ((batches.length - warmup) * BATCH) / seconds, stepMs };
}

function timeInference(batches: Batch[], warmup: number): number {
  const model = createModel('capsnet', 'paper', {}, 1);
  const [h, w, c] = model.inputShape;
  const infer = (b: Batch) => {
    const scores = tf.tidy(() => model.forward(tf.tensor4d(b.x, [b.size, h, w, c]), { training: false, decode: 'none' } as never).scores);
    scores.dataSync();
    scores.dispose();
  };
  for (let i = 0; i < warmup; i++) infer(batches[i]);
  const t0 = performance.now();
  for (let i = warmup; i < batches.length; i++) infer(batches[i]);
  const seconds = (performance.now() - t0) / 1000;
  model.dispose();
  return ((batches.length - warmup) * BATCH) / seconds;
}

/**
 * The same model (same seed) exported to ONNX and run in onnxruntime-node
 * with as many threads as our engine; only the scores are fetched, as our
 * inference row computes only the scores.
 */
async function timeOnnxInference(batches: Batch[], warmup: number, threads: number): Promise<number | string> {
  let ort;
  try {
    ort = await loadOnnxRuntime();
  } catch (e) {
    return (e as Error).message;
  }
  const model = createModel('capsnet', 'paper', {}, 1);
  const [h, w, c] = model.inputShape;
  const bytes = modelToOnnx(model, { metadata: {}, version: 'bench' });
  model.dispose();
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1 });
  const infer = (b: Batch) => session.run({ image: new ort.Tensor('float32', b.x, [b.size, h, w, c]) }, ['scores']);
  for (let i = 0; i < warmup; i++) await infer(batches[i]);
  const t0 = performance.now();
  for (let i = warmup; i < batches.length; i++) await infer(batches[i]);
  const seconds = (performance.now() - t0) / 1000;
  await session.release();
  return ((batches.length - warmup) * BATCH) / seconds;
}

/** One full epoch: every training image once, shuffled and shifted as in training. */
function timeEpoch(train: ReturnType<typeof loadMnist>): number {
  const model = createModel('capsnet', 'paper', {}, 1);
  const optimizer = new Adam({ learningRate: 1e-3 });
  const rng = new Rng(3);
  const order = rng.permutation(train.count);
  const t0 = performance.now();
  for (let s = 0; s * BATCH < train.count; s++) {
    trainStep(model, optimizer, makeBatch(train, order.subarray(s * BATCH, (s + 1) * BATCH), 2, rng), { fraction: 0, rng });
  }
  const seconds = (performance.now() - t0) / 1000;
  model.dispose();
  optimizer.dispose();
  return seconds;
}

const fmt = (x: number, d = 1) => x.toFixed(d);

/**
 * The Efficient-CapsNet rows: its training rate beside PyTorch's, and the
 * minutes per 60,000-image epoch of both and of the paper CapsNet (ours).
 */
function efficientRows(ours: number, torch: EfficientTorchResult | undefined, capsnet: number, stepMs: number[]): void {
  const line = (label: string, a: number, b: number | undefined, ratio: number | undefined) =>
    console.log(`${label.padEnd(36)} ${fmt(a).padStart(10)}${b !== undefined ? ` ${fmt(b).padStart(10)}` : ''}${ratio !== undefined ? ` ${`${fmt(ratio, 2)}x`.padStart(8)}` : ''}`);
  console.log(`${'Efficient-CapsNet (mnist, decoder)'.padEnd(36)} ${'capsnet'.padStart(10)}${torch ? ` ${'PyTorch'.padStart(10)} ${'ratio'.padStart(8)}` : ''}`);
  line('training images/s', ours, torch?.trainImagesPerSecond, torch ? ours / torch.trainImagesPerSecond : undefined);
  line('minutes per MNIST epoch (lower wins)', epochMinutes(ours), torch && epochMinutes(torch.trainImagesPerSecond), torch ? ours / torch.trainImagesPerSecond : undefined);
  line('paper CapsNet, minutes per epoch', epochMinutes(capsnet), undefined, undefined);
  console.log(`Efficient-CapsNet: ${fmt(median(stepMs), 0)} ms a step (median), an epoch in ${fmt(capsnet / ours, 2)}x the paper CapsNet's time${torch ? `; PyTorch ${torch.torch}, ${torch.threads} threads, ${torch.classifierParams.toLocaleString('en-US')} classifier parameters` : ''}`);
}
const EM_BATCH = 16;
/** The middle value (upper middle for an even count). */
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const trainSteps = option('train-steps', 20);
  const inferBatches = option('infer-batches', 20);
  const warmup = 2;
  const load0 = os.loadavg()[0];
  const info = await initBackend();
  console.log(`capsnet benchmark: paper CapsNet, batch ${BATCH}, real MNIST`);
  console.log(`machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores, ${fmt(os.totalmem() / 2 ** 30)} GiB; node ${process.version}`);
  console.log(describeBackend(info));
  const threads = info.threads ?? os.availableParallelism();

  const test = loadMnist('test');
  const inferBatches_ = Array.from({ length: warmup + inferBatches }, (_, i) => {
    const start = (i * BATCH) % (test.count - BATCH);
    return makeBatch(test, Int32Array.from({ length: BATCH }, (_, k) => start + k));
  });
  if (flag('only-onnx')) {
    const ours = timeInference(inferBatches_, warmup);
    const onnx = await timeOnnxInference(inferBatches_, warmup, threads);
    console.log('');
    console.log(`${'inference images/s'.padEnd(36)} ${fmt(ours).padStart(12)}`);
    if (typeof onnx === 'string') console.log(onnx);
    else console.log(`${'inference images/s, onnxruntime-node'.padEnd(36)} ${fmt(onnx).padStart(12)}   (${fmt(onnx / ours, 2)}x ours)`);
    console.log(`load average (1 min) before / after: ${fmt(load0, 2)} / ${fmt(os.loadavg()[0], 2)} on ${os.availableParallelism()} cores`);
    return;
  }
  const train = loadMnist('train');
  const rng = new Rng(1);
  const trainBatches = Array.from({ length: warmup + trainSteps }, () => makeBatch(train, rng.permutation(train.count).subarray(0, BATCH), 2, rng));
  // Efficient-CapsNet trains on as many of the same batches as the paper CapsNet's row.
  const efficientSteps = trainSteps;
  if (flag('only-efficient')) {
    const efficient = timeEfficientTraining(trainBatches, warmup);
    const capsnet = timeTraining(trainBatches.slice(0, warmup + Math.max(3, Math.round(trainSteps / 2))), warmup);
    const py = flag('no-torch') ? null : findTorchPython();
    const torch = py ? runEfficientTorch(py, threads, efficientSteps) : 'PyTorch not found (python3 -c "import torch" fails)';
    console.log('');
    efficientRows(efficient.imagesPerSecond, typeof torch === 'object' ? torch : undefined, capsnet.imagesPerSecond, efficient.stepMs);
    if (typeof torch === 'string') console.log(torch);
    console.log(`load average (1 min) before / after: ${fmt(load0, 2)} / ${fmt(os.loadavg()[0], 2)} on ${os.availableParallelism()} cores${load0 > 0.5 ? ' (other work was running: figures are lower bounds)' : ''}`);
    return;
  }

  const training = timeTraining(trainBatches, warmup);
  const inference = timeInference(inferBatches_, warmup);
  const epochSeconds = flag('epoch') ? timeEpoch(train) : null;
  // The paper model's peak, as PyTorch's is (one model per process): read
  // before the larger models, ONNX Runtime's run and the GEMM table.
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  // Fewer steps for the larger and slower models: their steps take longer.
  const sizeSteps = Math.max(3, Math.round(trainSteps / 2));
  const sizes = flag('no-sizes') ? [] : [36, 40].map((size) => ({ size, ...timeTraining(padBatches(trainBatches.slice(0, warmup + sizeSteps), size), warmup, 'capsnet', size) }));
  const cnnSteps = Math.max(3, Math.round(trainSteps / 4));
  const cnn = flag('no-cnn') ? null : timeTraining(trainBatches.slice(0, warmup + cnnSteps), warmup, 'cnn');
  // The affine experiment's size, where the CNN's 5x5 layers need transforms of 44.
  const cnn40 = flag('no-cnn') || flag('no-sizes') ? null : timeTraining(padBatches(trainBatches.slice(0, warmup + cnnSteps), 40), warmup, 'cnn', 40);
  const onnx = flag('no-onnx') ? null : await timeOnnxInference(inferBatches_, warmup, threads);
  const gemms = info.backend === 'native' ? gemmTable() : null;
  // The peak the model's rate is set against: the GEMM the model ran on, at 2048^3.
  const peak = gemms ? gemms.columns[Math.max(0, gemms.active)].rates[0] : null;
  const flops = capsNetFlops(capsNetConfig('paper'));
  const trainGflops = (flops.train * training.imagesPerSecond) / 1e9;
  const inferGflops = (flops.forward * inference) / 1e9;

  const emSteps = option('em-steps', 3);
  const em = flag('no-em') ? null : timeEmTraining(EM_BATCH, emSteps);
  const efficient = flag('no-efficient') ? null : timeEfficientTraining(trainBatches, warmup);

  let torch: TorchResult | string | null = null;
  let emTorch: EmTorchResult | string | null = null;
  const torchSizes = new Map<number, TorchResult | string>();
  let torchCnn: TorchResult | string | null = null;
  let torchCnn40: TorchResult | string | null = null;
  let efficientTorch: EfficientTorchResult | string | null = null;
  if (!flag('no-torch')) {
    const py = findTorchPython();
    torch = py ? runTorch(py, threads, trainSteps, inferBatches) : 'PyTorch not found (python3 -c "import torch" fails)';
    if (py) for (const s of sizes) torchSizes.set(s.size, runTorch(py, threads, sizeSteps, 1, 'capsnet', s.size));
    if (py && cnn) torchCnn = runTorch(py, threads, cnnSteps, 1, 'cnn');
    if (py && cnn40) torchCnn40 = runTorch(py, threads, cnnSteps, 1, 'cnn', 40);
    if (py && em) emTorch = runEmTorch(py, EM_BATCH, emSteps, threads);
    if (py && efficient) efficientTorch = runEfficientTorch(py, threads, efficientSteps);
  }
  const load1 = os.loadavg()[0];

  console.log('');
  console.log(`${''.padEnd(28)} ${'capsnet'.padStart(12)}${typeof torch === 'object' && torch ? ` ${'PyTorch'.padStart(12)} ${'ratio'.padStart(8)}` : ''}`);
  const row = (label: string, ours: number, theirs: number | undefined, higherIsBetter: boolean, d = 1) => {
    let line = `${label.padEnd(28)} ${fmt(ours, d).padStart(12)}`;
    if (theirs !== undefined) line += ` ${fmt(theirs, d).padStart(12)} ${`${fmt(higherIsBetter ? ours / theirs : theirs / ours, 2)}x`.padStart(8)}`;
    console.log(line);
  };
  const t = typeof torch === 'object' && torch ? torch : undefined;
  row('training images/s', training.imagesPerSecond, t?.trainImagesPerSecond, true);
  row('inference images/s', inference, t?.inferImagesPerSecond, true);
  if (typeof onnx === 'number') row('inference, onnxruntime-node', onnx, t?.inferImagesPerSecond, true);
  row('peak RSS MiB (lower is better)', peakRssMiB, t?.peakRssMiB, false, 0);
  const ok = (r: TorchResult | string | null | undefined) => (typeof r === 'object' && r ? r : undefined);
  for (const s of sizes) row(`training ${s.size}x${s.size} images/s`, s.imagesPerSecond, ok(torchSizes.get(s.size))?.trainImagesPerSecond, true);
  if (cnn) row('CNN baseline training img/s', cnn.imagesPerSecond, ok(torchCnn)?.trainImagesPerSecond, true);
  if (cnn40) row('CNN training 40x40 images/s', cnn40.imagesPerSecond, ok(torchCnn40)?.trainImagesPerSecond, true);
  if (em) row('EM capsules training images/s', em.imagesPerSecond, typeof emTorch === 'object' && emTorch ? emTorch.trainImagesPerSecond : undefined, true, 2);
  if (efficient) {
    console.log('');
    efficientRows(efficient.imagesPerSecond, typeof efficientTorch === 'object' && efficientTorch ? efficientTorch : undefined, training.imagesPerSecond, efficient.stepMs);
    if (typeof efficientTorch === 'string') console.log(efficientTorch);
  }
  console.log('');
  console.log(`training step: median ${fmt(median(training.stepMs), 0)} ms, fastest ${fmt(Math.min(...training.stepMs), 0)} ms (${trainSteps} steps after ${warmup} warm-up)`);
  console.log(`FLOPs per image (direct convolution): forward ${fmt(flops.forward / 1e9, 3)} G, training ${fmt(flops.train / 1e9, 3)} G`);
  console.log(`effective rate: training ${fmt(trainGflops)} GFLOPS, inference ${fmt(inferGflops)} GFLOPS${peak ? ` (${fmt((100 * trainGflops) / peak, 0)}% and ${fmt((100 * inferGflops) / peak, 0)}% of the sgemm peak, ${fmt(peak)} GFLOPS at 2048^3)` : ''}`);
  if (peak) console.log('(the primary-capsule convolutions run in the frequency domain with about a third of the direct FLOPs, so effective rates can pass the sgemm peak)');
  console.log(`full MNIST epoch (60,000 images): ${epochSeconds !== null ? `${fmt(epochSeconds, 0)} s measured` : `~${fmt(60000 / training.imagesPerSecond, 0)} s at the training rate above (--epoch measures one)`}`);
  if (em) console.log(`EM capsules: paper preset (${em.params.toLocaleString('en-US')} parameters), 32x32 inputs, 5 classes, batch ${EM_BATCH}, ${emSteps} steps after one warm-up (median step ${fmt(median(em.stepMs), 0)} ms)${typeof emTorch === 'string' ? `; ${emTorch}` : ''}`);
  if (typeof onnx === 'number') console.log(`onnxruntime-node: the same model exported to ONNX (opset 17), ${threads} threads: ${fmt(onnx / inference, 2)}x our engine's inference rate`);
  else if (typeof onnx === 'string') console.log(onnx);
  if (sizes.length) console.log(`36x36 and 40x40: the paper CapsNet on MNIST digits padded to that size (3,200 and 4,608 primary capsules), ${sizeSteps} steps after ${warmup} warm-up`);
  if (cnn) console.log(`CNN baseline: paper preset (three 5x5 convolutions 256/256/128, FC 328/192), 28x28${cnn40 ? ' and the digits padded to 40x40' : ''}, batch ${BATCH}, ${cnnSteps} steps after ${warmup} warm-up`);
  for (const r of [...torchSizes.values(), torchCnn, torchCnn40]) if (typeof r === 'string') console.log(r);
  if (t) console.log(`PyTorch ${t.torch}, ${t.threads} threads`);
  else if (typeof torch === 'string') console.log(torch);
  if (gemms) {
    console.log('');
    console.log(`GEMM GFLOPS on ${threads} threads (engine's sgemmParallel; the paper CapsNet's shapes at batch 100)`);
    console.log(`${'shape (op(A) op(B) MxNxK)'.padEnd(28)} ${gemms.columns.map((c) => c.name.padStart(16)).join(' ')}`);
    gemms.shapes.forEach((sh, i) => console.log(`${sh.padEnd(28)} ${gemms.columns.map((c) => fmt(c.rates[i]).padStart(16)).join(' ')}`));
    const ob = gemms.columns.find((c) => c.name.startsWith('OpenBLAS'));
    const best = gemms.columns[0];
    if (ob && best !== ob) console.log(`${best.name} at 2048^3: ${fmt((100 * best.rates[0]) / ob.rates[0], 0)}% of OpenBLAS's rate`);
  }
  console.log(`load average (1 min) before / after: ${fmt(load0, 2)} / ${fmt(load1, 2)} on ${os.availableParallelism()} cores${load0 > 0.5 ? ' (other work was running: figures are lower bounds)' : ''}`);
}

await main();
