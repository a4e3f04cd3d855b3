/**
 * The native backend in use: it is registered, preferred and quiet; a small
 * CapsNet and Efficient-CapsNet train on it like on the cpu backend; and 1,000 training steps
 * leave the tensor count and the process's resident memory flat.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { availableBackends, describeBackend, initBackend } from '../src/backend/node.js';
import type { Batch } from '../src/data/batches.js';
import { createModel, type ClassifierModel } from '../src/models/index.js';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { NativeBackend } from '../src/native/backend.js';
import { requestedThreads } from '../src/native/index.js';
import { loadAddon } from '../src/native/boundary/addon.js';
import { Adam } from '../src/training/adam.js';
import { trainStep } from '../src/training/trainer.js';
import { native, nativeTest, on, randn, Rng } from './nativeUtil.js';

/** A CapsNet small enough for a thousand steps in seconds: 12x12 inputs, 36 primary capsules, 4 classes. */
function tinyCapsNet(seed: number): ClassifierModel {
  return createModel('capsnet', 'small', {
    inputShape: [12, 12, 1],
    numClasses: 4,
    conv1: { filters: 8, kernelSize: 5, strides: 1 },
    primary: { types: 4, dim: 4, kernelSize: 3, strides: 2 },
    digit: { dim: 4, routingIterations: 3, stopGradientInner: false },
    decoder: { hidden: [16] },
  }, seed);
}

function syntheticBatch(rng: Rng, size: number, classes: number): Batch {
  const x = randn(rng, size * 144, 0.5).map((v) => Math.min(1, Math.abs(v)));
  const labels = Int32Array.from({ length: size }, () => rng.int(0, classes - 1));
  const targets = new Float32Array(size * classes);
  labels.forEach((l, i) => (targets[i * classes + l] = 1));
  return { x, labels, targets, size, indices: Int32Array.from({ length: size }, (_, i) => i) };
}

nativeTest('native loads with its GEMM and thread count, comes first, and is the default', async () => {
  assert.ok(native.ok);
  assert.match(native.blas ?? '', /^(built-in GEMM \((avx512|avx2|portable|neon)\)|OpenBLAS \S+ \(.+\))$/);
  assert.ok(Number.isInteger(native.threads) && native.threads! >= 1);
  assert.equal((await availableBackends())[0], 'native');
  const info = await initBackend('auto');
  assert.equal(info.backend, 'native');
  assert.match(describeBackend(info), /^backend: native \((built-in GEMM|OpenBLAS)/);
});

nativeTest('the native backend does not print the cpu backend\'s "install tfjs-node" banner', () => {
  const firstWrite = (backend: MathBackendCPU) => {
    const warn = console.warn;
    const lines: string[] = [];
    console.warn = (...args: unknown[]) => void lines.push(args.join(' '));
    try {
      backend.disposeData(backend.write(new Float32Array(2), [2], 'float32'));
    } finally {
      console.warn = warn;
    }
    return lines.join('\n');
  };
  // A fresh cpu backend prints it on its first write; a fresh native one must not.
  assert.match(firstWrite(new MathBackendCPU()), /tfjs-node/);
  assert.doesNotMatch(firstWrite(new NativeBackend()), /tfjs-node/);
});

nativeTest('CAPSNET_THREADS is read as a positive integer', () => {
  assert.equal(requestedThreads({ CAPSNET_THREADS: '3' }).threads, 3);
  const bad = requestedThreads({ CAPSNET_THREADS: 'lots' });
  assert.ok(bad.threads >= 1 && bad.warning?.includes('CAPSNET_THREADS'));
  assert.ok(requestedThreads({ CAPSNET_THREADS: '0' }).warning);
  assert.ok(requestedThreads({}).threads >= 1);
});

nativeTest('a training step of a small CapsNet gives the same loss and gradients as on the cpu backend', async () => {
  const batch = syntheticBatch(new Rng(31), 6, 4);
  const run = () => {
    const model = tinyCapsNet(5);
    const x = tf.tensor4d(batch.x, [6, 12, 12, 1]);
    const labels = tf.tensor1d(batch.labels, 'int32');
    const targets = tf.tensor2d(batch.targets, [6, 4]);
    const { value, grads } = tf.variableGrads(() => model.loss(model.forward(x, { training: true, labels }), x, targets).total, model.params.map((p) => p.value));
    const out = { loss: value.dataSync()[0], grads: model.params.map((p) => grads[p.value.name].dataSync()) };
    model.dispose();
    return out;
  };
  const nat = await on('native', run);
  const cpu = await on('cpu', run);
  assert.ok(Math.abs(nat.loss - cpu.loss) <= 1e-5 * Math.abs(cpu.loss) + 1e-7, `${nat.loss} vs ${cpu.loss}`);
  nat.grads.forEach((g, i) => {
    let worst = 0;
    let scale = 0;
    for (let k = 0; k < g.length; k++) {
      worst = Math.max(worst, Math.abs(g[k] - cpu.grads[i][k]));
      scale = Math.max(scale, Math.abs(cpu.grads[i][k]));
    }
    assert.ok(worst <= 1e-4 * scale + 1e-7, `gradient ${i}: max difference ${worst} at scale ${scale}`);
  });
});

nativeTest('a training step of Efficient-CapsNet (mnist preset, decoder) gives the same loss and gradients as on the cpu backend', async () => {
  // Every path the engine takes for this model: Winograd for the 3x3
  // stride-1 layers, im2col for the others, the native depthwise kernels,
  // fused batch norm, self-attention routing and squash, against tfjs's cpu
  // kernels and the plain-tfjs references.
  const rng = new Rng(32);
  const size = 6;
  const x = Float32Array.from(randn(rng, size * 28 * 28, 0.5), (v) => Math.min(1, Math.abs(v)));
  const labels = Int32Array.from({ length: size }, () => rng.int(0, 9));
  const run = () => {
    const model = createModel('efficient', 'mnist', {}, 7);
    const images = tf.tensor4d(x, [size, 28, 28, 1]);
    const targets = tf.oneHot(tf.tensor1d(labels, 'int32'), 10).toFloat() as tf.Tensor2D;
    const { value, grads } = tf.variableGrads(
      () => model.loss(model.forward(images, { training: true, labels: tf.tensor1d(labels, 'int32') }), images, targets).total,
      model.params.filter((p) => p.value.trainable).map((p) => p.value),
    );
    const out = { loss: value.dataSync()[0], grads: model.params.filter((p) => p.value.trainable).map((p) => ({ name: p.name, g: grads[p.value.name].dataSync() })) };
    model.dispose();
    return out;
  };
  const nat = await on('native', run);
  const cpu = await on('cpu', run);
  assert.ok(Math.abs(nat.loss - cpu.loss) <= 1e-5 * Math.abs(cpu.loss) + 1e-7, `${nat.loss} vs ${cpu.loss}`);
  assert.equal(nat.grads.length, cpu.grads.length);
  nat.grads.forEach(({ name, g }, i) => {
    let worst = 0;
    let scale = 0;
    for (let k = 0; k < g.length; k++) {
      worst = Math.max(worst, Math.abs(g[k] - cpu.grads[i].g[k]));
      scale = Math.max(scale, Math.abs(cpu.grads[i].g[k]));
    }
    assert.ok(worst <= 1e-4 * scale + 1e-7, `${name}: max difference ${worst} at scale ${scale}`);
  });
});

nativeTest('1,000 training steps keep the tensor count and resident memory flat', (t) => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const rng = new Rng(32);
  const model = tinyCapsNet(6);
  const optimizer = new Adam({ learningRate: 1e-3 });
  const batches = Array.from({ length: 8 }, () => syntheticBatch(rng, 16, 4));
  const progress = { fraction: 0, rng };
  const loaded = loadAddon();
  assert.ok(loaded.ok);
  const counts = () => ({ tensors: tf.memory().numTensors, buffers: loaded.addon.memoryStats().buffers });
  const rss: number[] = [];
  let early = { tensors: 0, buffers: 0 };
  let losses = 0;
  for (let step = 1; step <= 1000; step++) {
    losses += trainStep(model, optimizer, batches[step % batches.length], progress).loss;
    if (step === 250) early = counts();
    // Resident memory after a collection, every 50 steps from step 250 on.
    if (step >= 250 && step % 50 === 0) {
      gc();
      rss.push(process.memoryUsage().rss / 2 ** 20);
    }
  }
  const late = counts();
  assert.ok(Number.isFinite(losses));
  assert.equal(late.tensors, early.tensors, 'tensor count after 250 and after 1,000 steps');
  assert.equal(late.buffers, early.buffers, 'engine-owned buffers after 250 and after 1,000 steps');
  // The allocator's and V8's heaps move by a few MiB either way; a leak
  // shows as a steady climb. Compare the medians of the first and last
  // quarters of the samples.
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const q = Math.floor(rss.length / 4);
  const first = median(rss.slice(0, q));
  const last = median(rss.slice(-q));
  t.diagnostic(`tensors ${late.tensors}; resident memory (MiB) ${rss.map((x) => x.toFixed(0)).join(' ')}`);
  assert.ok(last - first < 16, `resident memory grew from ${first.toFixed(1)} to ${last.toFixed(1)} MiB between steps 250-400 and 850-1,000`);
  model.dispose();
  optimizer.dispose();
});

nativeTest('large outputs are freed when their tensor is disposed; data read out or viewed stays valid', () => {
  const loaded = loadAddon();
  assert.ok(loaded.ok);
  const stats = () => loaded.addon.memoryStats();
  const base = stats();
  const x = tf.fill([1024, 512], 2);
  const y = tf.mul(x, 3); // a native kernel output of 2 MiB
  assert.equal(stats().buffers, base.buffers + 1);
  y.dispose();
  // Freed: no longer a live buffer (its block, from 1 MB, is kept for the
  // next output of that size, and counted as kept).
  const after = stats();
  assert.deepEqual([after.buffers, after.bytes], [base.buffers, base.bytes], 'disposing the tensor freed its buffer');
  assert.ok(after.kept <= base.kept + 2 * 1024 * 1024, 'at most its block is kept');

  // Read out: the array belongs to the caller from then on.
  const z = tf.mul(x, 4);
  const data = z.dataSync();
  z.dispose();
  const w = tf.mul(x, 5);
  assert.equal(data.length, 1024 * 512);
  assert.ok(data.every((v) => v === 8), 'values read before disposal are intact');

  // A second tensor on the same memory (a reshape shares it) keeps it alive.
  const u = tf.mul(x, 6);
  const r = tf.reshape(u, [512, 1024]);
  u.dispose();
  assert.ok(r.dataSync().every((v) => v === 12));
  // Slices and other views made by cpu kernels survive their source too.
  const s = tf.mul(x, 7);
  const part = tf.slice(s, [100, 0], [10, 512]);
  s.dispose();
  tf.mul(x, 9).dispose();
  assert.ok(part.dataSync().every((v) => v === 14));
  tf.dispose([x, w, r, part]);
});
