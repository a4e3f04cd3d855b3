/**
 * Efficient-CapsNet: the paper's parameter counts, its layers (batch and
 * instance normalization, depthwise convolution, primary and self-attention
 * capsules) against hand computations and finite differences, training
 * steps, and saving the batch-norm statistics with the model.
 */
import * as tf from '@tensorflow/tfjs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend } from '../src/backend/node.js';
import { BatchNormalization } from '../src/layers/batchNormalization.js';
import { DepthwiseConv2D } from '../src/layers/depthwiseConv2d.js';
import { EfficientPrimaryCapsules } from '../src/layers/efficientPrimaryCapsules.js';
import { InstanceNormalization } from '../src/layers/instanceNormalization.js';
import { SelfAttentionCapsules } from '../src/layers/selfAttentionCapsules.js';
import { createModel, EfficientCapsNet, efficientCapsNetConfig, modelFromArtifacts, modelToArtifacts, Rng } from '../src/index.js';
import { Adam } from '../src/training/adam.js';
import { trainStep } from '../src/training/trainer.js';
import { assertClose, testEachBackend } from './helpers.js';

await initBackend();

function randomTensor(rng: Rng, shape: number[], scale = 1, offset = 0): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, () => offset + scale * rng.normal()), shape);
}

/** Central finite differences of f at every entry of x (float32, so a coarse step). */
function numericGrad(f: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor, h = 1e-2): Float32Array {
  const base = x.dataSync().slice();
  const out = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) {
    const at = (d: number) => {
      const v = base.slice();
      v[i] += d;
      return tf.tidy(() => f(tf.tensor(v, x.shape)).dataSync()[0]);
    };
    out[i] = (at(h) - at(-h)) / (2 * h);
  }
  return out;
}

test('the MNIST preset has the paper\'s 161,824 trainable parameters without the decoder, plus 576 batch-norm statistics', () => {
  const model = new EfficientCapsNet(efficientCapsNetConfig('mnist'));
  const byLayer = Object.fromEntries(model.summary().map((l) => [l.name, l.params]));
  assert.deepEqual([byLayer.conv1, byLayer.conv2, byLayer.conv3, byLayer.conv4], [832, 18_496, 36_928, 73_856]);
  assert.deepEqual([byLayer.norm1, byLayer.norm2, byLayer.norm3, byLayer.norm4], [64, 128, 128, 256]);
  assert.equal(byLayer.primary_caps, 9 * 9 * 128 + 128);
  assert.equal(byLayer.class_caps, 16 * 10 * 16 * 8 + 16 * 10);
  assert.equal(model.countClassifierParams(), 161_824);
  assert.equal(model.countParams(), 161_824 + (160 * 512 + 512) + (512 * 1024 + 1024) + (1024 * 784 + 784));
  const statistics = model.params.filter((p) => !p.value.trainable);
  assert.equal(statistics.reduce((n, p) => n + p.value.size, 0), 576);
  assert.ok(statistics.every((p) => /^norm\d\/moving_(mean|variance)$/.test(p.name)), statistics.map((p) => p.name).join(', '));
  const shapes = Object.fromEntries(model.summary().map((l) => [l.name, l.outputShape]));
  assert.deepEqual(shapes.conv4, [null, 9, 9, 128]);
  assert.deepEqual(shapes.primary_caps, [null, 16, 8]);
  assert.deepEqual(shapes.class_caps, [null, 10, 16]);
  assert.deepEqual(shapes.decoder_fc3, [null, 784]);
  assert.equal(model.routingIterations, null);
  model.dispose();
});

test('the smallNORB preset has the paper\'s 151K (151,664) and MultiMNIST reaches 16 primary capsules on 36x36; other sizes build', () => {
  const norb = createModel('efficient', 'smallnorb') as EfficientCapsNet;
  assert.equal(norb.countClassifierParams(), 151_664);
  assert.deepEqual(norb.inputShape, [48, 48, 2]);
  assert.equal(norb.params.filter((p) => !p.value.trainable).length, 0, 'instance norm keeps no statistics');
  const norbShapes = Object.fromEntries(norb.summary().map((l) => [l.name, l.outputShape]));
  assert.deepEqual(norbShapes.primary_caps, [null, 16, 8]);
  assert.deepEqual(norbShapes.decoder_conv4, [null, 48, 48, 2]);
  norb.dispose();
  const multi = createModel('efficient', 'multimnist') as EfficientCapsNet;
  assert.deepEqual(Object.fromEntries(multi.summary().map((l) => [l.name, l.outputShape])).primary_caps, [null, 16, 8]);
  multi.dispose();
  // A 40x40 RGB input leaves 15x15 maps for the 9x9 depthwise kernel: 7x7 positions of 16 capsules.
  const rgb = new EfficientCapsNet(efficientCapsNetConfig('mnist', { inputShape: [40, 40, 3], numClasses: 7 }));
  const s = Object.fromEntries(rgb.summary().map((l) => [l.name, l.outputShape]));
  assert.deepEqual(s.primary_caps, [null, 7 * 7 * 16, 8]);
  assert.deepEqual(s.class_caps, [null, 7, 16]);
  assert.deepEqual(s.decoder_fc3, [null, 40 * 40 * 3]);
  rgb.dispose();
  assert.throws(() => createModel('efficient', 'paper'), /unknown preset 'paper' for architecture 'efficient': expected one of mnist, multimnist, smallnorb/);
  assert.throws(() => new EfficientCapsNet(efficientCapsNetConfig('mnist', { inputShape: [16, 16, 1] })), /primary_caps: a 9x9 kernel with stride 1 does not fit a 3x3 input/);
  assert.throws(() => new EfficientCapsNet(efficientCapsNetConfig('mnist', { primary: { dim: 7 } })), /128 channels do not split into 7-D capsules/);
  assert.throws(() => new EfficientCapsNet(efficientCapsNetConfig('smallnorb', { inputShape: [44, 44, 2] })), /sides that are multiples of 8, the input is 44/);
  assert.throws(() => new EfficientCapsNet(efficientCapsNetConfig('mnist', { normalization: 'group' as 'batch' })), /normalization must be 'batch' or 'instance', got "group"/);
});

await testEachBackend('batch norm: batch statistics and the Keras moving-average update in training, the moving ones in inference', () => {
  const rng = new Rng(5);
  const bn = new BatchNormalization('bn', { momentum: 0.9 });
  bn.build([null, 3, 2, 4], rng);
  const x = randomTensor(rng, [5, 3, 2, 4], 2, 1.5);
  const y = bn.call(x, true);
  const { mean, variance } = tf.moments(y, [0, 1, 2]);
  assertClose(mean.dataSync(), [0, 0, 0, 0], { atol: 1e-5, what: 'normalized mean' });
  // Biased variance 1 - eps / (var + eps) with eps 1e-3.
  const xMoments = tf.moments(x, [0, 1, 2]);
  const v = xMoments.variance.dataSync();
  assertClose(variance.dataSync(), Array.from(v, (s) => s / (s + 1e-3)), { rtol: 1e-4, what: 'normalized variance' });
  const n = 5 * 3 * 2;
  assertClose(bn.movingMean.dataSync(), Array.from(xMoments.mean.dataSync(), (m) => 0.1 * m), { rtol: 1e-5, what: 'moving mean' });
  assertClose(bn.movingVariance.dataSync(), Array.from(v, (s) => 0.9 + 0.1 * s * (n / (n - 1))), { rtol: 1e-5, what: 'moving variance (unbiased)' });
  // Inference: the moving statistics, and nothing moves.
  const before = bn.movingMean.dataSync().slice();
  const inferred = bn.call(x, false);
  const mm = bn.movingMean.dataSync();
  const mv = bn.movingVariance.dataSync();
  const xs = x.dataSync();
  const expected = Array.from(xs, (value, i) => (value - mm[i % 4]) / Math.sqrt(mv[i % 4] + 1e-3));
  assertClose(inferred.dataSync(), expected, { rtol: 1e-4, atol: 1e-5, what: 'inference output' });
  assert.deepEqual(Array.from(bn.movingMean.dataSync()), Array.from(before));
  assert.equal(bn.countParams(), 8, 'gamma and beta only');
  bn.dispose();
});

await testEachBackend('batch norm in training: gradients match finite differences, and sum to zero per channel', () => {
  const rng = new Rng(8);
  const bn = new BatchNormalization('bn', {});
  bn.build([null, 2, 2, 3], rng);
  bn.gamma.assign(tf.tensor1d([1.5, -0.5, 2]));
  bn.beta.assign(tf.tensor1d([0.1, 0.2, -0.3]));
  const x = randomTensor(rng, [3, 2, 2, 3]);
  const up = randomTensor(rng, [3, 2, 2, 3]);
  const f = (t: tf.Tensor) => tf.sum(tf.mul(bn.call(t, true), up)) as tf.Scalar;
  const g = tf.grad(f)(x);
  const numeric = numericGrad(f, x, 1e-2);
  assertClose(g.dataSync(), numeric, { rtol: 2e-2, atol: 2e-3, what: 'dL/dx' });
  // The normalized output does not change when a channel shifts, so its gradient sums to zero per channel.
  assertClose(tf.sum(g, [0, 1, 2]).dataSync(), [0, 0, 0], { atol: 1e-4, what: 'per-channel sum of dL/dx' });
  bn.dispose();
});

await testEachBackend('instance norm normalizes each image and channel over its positions', () => {
  const rng = new Rng(6);
  const norm = new InstanceNormalization('in', {});
  norm.build([null, 4, 3, 2], rng);
  const gamma = norm.gamma.dataSync();
  const beta = norm.beta.dataSync();
  assert.ok([...gamma, ...beta].every((v) => Math.abs(v) <= 0.05), 'gamma and beta start in [-0.05, 0.05]');
  const x = randomTensor(rng, [2, 4, 3, 2], 3, -1);
  const y = norm.call(x as tf.Tensor4D);
  const { mean, variance } = tf.moments(y, [1, 2]);
  const xv = tf.moments(x, [1, 2]).variance.dataSync();
  assertClose(mean.dataSync(), [beta[0], beta[1], beta[0], beta[1]], { atol: 1e-5, what: 'per-image mean is beta' });
  assertClose(variance.dataSync(), Array.from(xv, (s, i) => (gamma[i % 2] ** 2 * s) / (s + 1e-3)), { rtol: 1e-3, atol: 1e-7, what: 'per-image variance is gamma^2' });
  norm.dispose();
});

await testEachBackend('depthwise convolution equals a full convolution with a channel-diagonal kernel', () => {
  const rng = new Rng(9);
  const dw = new DepthwiseConv2D('dw', { kernelSize: 3, strides: 2 });
  dw.build([null, 7, 6, 4], rng);
  dw.bias.assign(tf.tensor1d([0.5, -1, 0, 2]));
  const x = randomTensor(rng, [2, 7, 6, 4]) as tf.Tensor4D;
  const k = dw.kernel.arraySync() as number[][][][];
  const full = tf.tensor4d(k.map((row) => row.map((col) => col.map((ch, c) => [0, 1, 2, 3].map((o) => (o === c ? ch[0] : 0))))));
  const expected = tf.add(tf.conv2d(x, full, 2, 'valid'), dw.bias);
  const y = dw.call(x);
  assert.deepEqual(y.shape, [2, 3, 2, 4]);
  assertClose(y.dataSync(), expected.dataSync(), { rtol: 1e-5, atol: 1e-6, what: 'depthwise output' });
  assert.equal(dw.countParams(), 3 * 3 * 4 + 4);
  dw.dispose();
});

await testEachBackend('primary and self-attention capsules: lengths below 1, gradients of W and the priors match finite differences', () => {
  const rng = new Rng(12);
  const primary = new EfficientPrimaryCapsules('primary', { kernelSize: 3, strides: 1, dim: 4 });
  primary.build([null, 4, 4, 8], rng);
  const x = randomTensor(rng, [2, 4, 4, 8]) as tf.Tensor4D;
  const u = primary.call(x);
  assert.deepEqual(u.shape, [2, 2 * 2 * 2, 4]);
  // Capsule (y * W + x) * 2 + t holds channels 4t .. 4t+3 of position (y, x), squashed.
  const conv = primary.convolve(x).arraySync() as number[][][][];
  const raw = conv[1][1][0].slice(4, 8);
  const n = Math.hypot(...raw);
  assertClose((u.arraySync() as number[][][])[1][2 * 2 + 1], raw.map((r) => ((1 - Math.exp(-n)) * r) / n), { rtol: 1e-4, what: 'capsule (1, 0) type 1' });
  const caps = new SelfAttentionCapsules('caps', { capsules: 3, dim: 5, initStddev: 0.5 });
  caps.build([null, 8, 4], rng);
  caps.priors.assign(randomTensor(rng, [8, 3], 0.1) as tf.Tensor2D);
  const { v, couplings } = caps.call(u);
  assert.deepEqual(v.shape, [2, 3, 5]);
  assertClose(tf.sum(couplings, 2).dataSync(), new Array(16).fill(1), { rtol: 1e-5, what: 'couplings sum to 1 over the classes' });
  const lengths = tf.norm(v, 'euclidean', -1).dataSync();
  assert.ok(lengths.every((l) => l > 0 && l < 1), `lengths in (0, 1): ${lengths}`);
  const up = randomTensor(rng, [2, 3, 5]);
  const lossOf = () => tf.sum(tf.mul(caps.call(u).v, up)) as tf.Scalar;
  const { grads } = tf.variableGrads(lossOf, [caps.W, caps.priors]);
  for (const variable of [caps.priors, caps.W]) {
    const original = variable.dataSync().slice();
    const numeric = numericGrad((t) => {
      variable.assign(t);
      return lossOf();
    }, tf.tensor(original, variable.shape), 1e-2);
    variable.assign(tf.tensor(original, variable.shape));
    assertClose(grads[variable.name].dataSync(), numeric, { rtol: 3e-2, atol: 3e-3, what: `d/d${variable.name}` });
  }
  primary.dispose();
  caps.dispose();
});

await testEachBackend('training steps with the MNIST and smallNORB structures: finite loss terms, every weight and statistic moves', () => {
  // Each preset's structure with fewer channels, to keep the pure-JS backends quick.
  const narrow = (first: { kernelSize: number; strides: number }, strides: number[]) => [{ filters: 8, ...first }, ...[8, 8, 16].map((filters, i) => ({ filters, kernelSize: 3, strides: strides[i] }))];
  const cases = [
    ['mnist', { backbone: narrow({ kernelSize: 5, strides: 1 }, [1, 1, 2]), decoder: { kind: 'dense', hidden: [16, 32] } }],
    ['smallnorb', { backbone: narrow({ kernelSize: 7, strides: 2 }, [1, 1, 2]), decoder: { kind: 'upsampling', filters: [4, 4, 4] } }],
  ] as const;
  for (const [preset, overrides] of cases) {
    const model = createModel('efficient', preset, overrides, 3) as EfficientCapsNet;
    const [h, w, c] = model.inputShape;
    const rng = new Rng(4);
    const batch = 4;
    const labels = Int32Array.from({ length: batch }, (_, i) => i % model.numClasses);
    const targets = new Float32Array(batch * model.numClasses);
    labels.forEach((l, i) => (targets[i * model.numClasses + l] = 1));
    const images = Float32Array.from({ length: batch * h * w * c }, () => Math.max(0, rng.normal()) / 3);
    const x = tf.tensor4d(images, [batch, h, w, c]);
    const before = new Map(model.params.map((p) => [p.name, p.value.dataSync().slice()]));
    const inference = model.forward(x);
    assert.deepEqual(inference.reconstruction!.shape, [batch, h * w * c]);
    assert.deepEqual(model.inspect(x).routing!.coefficients[0].shape, [batch, 2, model.numClasses]);
    const optimizer = new Adam({ learningRate: 1e-3 });
    const step = trainStep(model, optimizer, { x: images, labels, targets, size: batch, indices: new Int32Array(batch) }, { fraction: 0, rng });
    assert.ok(Number.isFinite(step.loss) && step.terms.margin > 0 && step.terms.reconstruction > 0, `${preset}: ${JSON.stringify(step)}`);
    for (const p of model.params) {
      const moved = p.value.dataSync().some((v, i) => v !== before.get(p.name)![i]);
      assert.ok(moved, `${preset}: ${p.name} did not change in a training step`);
    }
    optimizer.dispose();
    model.dispose();
  }
});

await testEachBackend('a saved model keeps its batch-norm statistics and gives the same scores', () => {
  const model = createModel('efficient', 'mnist', { backbone: [8, 8, 8, 16].map((filters, i) => ({ filters, kernelSize: i === 0 ? 5 : 3, strides: i === 3 ? 2 : 1 })), decoder: null }, 1) as EfficientCapsNet;
  const rng = new Rng(2);
  const x = randomTensor(rng, [3, 28, 28, 1], 0.3, 0.2) as tf.Tensor4D;
  model.forward(x, { training: true, decode: 'none' }); // moves the statistics away from 0 and 1
  const norm = model.norms[0] as BatchNormalization;
  assert.ok(norm.movingMean.dataSync().some((v) => v !== 0));
  const scores = model.forward(x).scores.dataSync();
  const { json, weights } = modelToArtifacts(model);
  assert.ok(json.weightsManifest[0].weights.some((e) => e.name === 'norm1/moving_variance'));
  const { model: loaded } = modelFromArtifacts(json, weights, 'efficient');
  assertClose(loaded.forward(x).scores.dataSync(), scores, { rtol: 1e-5, what: 'scores after loading' });
  assert.ok(loaded.params.filter((p) => p.name.includes('moving_')).every((p) => !p.value.trainable), 'loaded statistics stay non-trainable');
  model.dispose();
  loaded.dispose();
});
