/**
 * Layer and model structure: output shapes, the paper's parameter counts,
 * configurable sizes, and finite-difference gradient checks on tiny capsule
 * layers.
 */
import * as tf from '@tensorflow/tfjs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CapsNet, capsNetConfig, CnnBaseline, cnnConfig, DigitCapsules, PrimaryCapsules, Rng, squash, dynamicRouting } from '../src/index.js';
import { testEachBackend } from './helpers.js';
import { initBackend } from '../src/backend/node.js';

await initBackend();

test('the paper CapsNet has 8,215,568 trainable parameters, split as in the paper', () => {
  const model = new CapsNet(capsNetConfig('paper'));
  const byLayer = Object.fromEntries(model.summary().map((l) => [l.name, l.params]));
  assert.equal(byLayer.conv1, 20_992);
  assert.equal(byLayer.primary_caps, 5_308_672);
  assert.equal(byLayer.digit_caps, 1_474_560);
  assert.equal(byLayer.decoder_fc1 + byLayer.decoder_fc2 + byLayer.decoder_fc3, 1_411_344);
  assert.equal(model.countParams(), 8_215_568);
  const shapes = Object.fromEntries(model.summary().map((l) => [l.name, l.outputShape]));
  assert.deepEqual(shapes.conv1, [null, 20, 20, 256]);
  assert.deepEqual(shapes.primary_caps, [null, 1152, 8]);
  assert.deepEqual(shapes.digit_caps, [null, 10, 16]);
  assert.deepEqual(shapes.decoder_fc3, [null, 784]);
  model.dispose();
});

test('the CNN baseline has the paper\'s 35.4M parameters (35,445,522)', () => {
  const model = new CnnBaseline(cnnConfig('paper'));
  assert.equal(model.countParams(), 35_445_522);
  assert.deepEqual(model.summary().map((l) => l.outputShape), [[null, 28, 28, 256], [null, 28, 28, 256], [null, 28, 28, 128], [null, 328], [null, 192], [null, 10]]);
  model.dispose();
});

test('every size is configurable: 36x36, 40x40 and RGB variants build with the right shapes', () => {
  const cases: [Parameters<typeof capsNetConfig>[1], number, number][] = [
    [{ inputShape: [36, 36, 1] }, 8 * 10 * 10, 36 * 36],
    [{ inputShape: [40, 40, 1] }, 8 * 12 * 12, 40 * 40],
    [{ inputShape: [32, 32, 3], numClasses: 5, primary: { types: 16 } }, 16 * 8 * 8, 32 * 32 * 3],
  ];
  for (const [over, caps, pixels] of cases) {
    const model = new CapsNet(capsNetConfig('small', over));
    const s = Object.fromEntries(model.summary().map((l) => [l.name, l.outputShape]));
    assert.equal(s.primary_caps[1], caps, `primary capsules for ${JSON.stringify(over)}`);
    assert.equal(s[model.decoderLayers[model.decoderLayers.length - 1].name][1], pixels);
    model.dispose();
  }
  const noDecoder = new CapsNet(capsNetConfig('small', { decoder: null, digit: { routingIterations: 1, dim: 8 } }));
  assert.equal(noDecoder.decoderLayers.length, 0);
  assert.deepEqual(noDecoder.summary().find((l) => l.name === 'digit_caps')!.outputShape, [null, 10, 8]);
  noDecoder.dispose();
  assert.throws(() => new CapsNet(capsNetConfig('small', { inputShape: [8, 8, 1] })), /does not fit/);
  assert.throws(() => new CapsNet(capsNetConfig('small', { conv1: { filters: 0 } })), /conv1.filters must be a positive integer/);
});

await testEachBackend('forward pass: shapes, lengths in [0, 1), masking by label and by the longest capsule', () => {
  const model = new CapsNet(capsNetConfig('small'), 3);
  const x = tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 7) as tf.Tensor4D;
  const labels = tf.tensor1d([1, 2, 3, 4], 'int32');
  const train = model.forward(x, { training: true, labels });
  assert.deepEqual(train.scores.shape, [4, 10]);
  assert.deepEqual(train.digitCaps.shape, [4, 10, 16]);
  assert.equal(train.couplings.length, 3);
  assert.deepEqual(train.couplings[0].shape, [4, 8 * 6 * 6, 10]);
  assert.deepEqual(Array.from(train.decodedClasses!.dataSync()), [1, 2, 3, 4]);
  const lengths = train.scores.dataSync();
  assert.ok(lengths.every((l) => l >= 0 && l < 1));
  const test = model.forward(x);
  const argmax = tf.argMax(test.scores, 1).dataSync();
  assert.deepEqual(Array.from(test.decodedClasses!.dataSync()), Array.from(argmax));
  const recon = test.reconstruction!.dataSync();
  assert.equal(recon.length, 4 * 784);
  assert.ok(recon.every((v) => v > 0 && v < 1), 'sigmoid output');
  // Masking keeps only the chosen capsule.
  const masked = model.mask(train.digitCaps, tf.tensor1d([5, 5, 5, 5], 'int32')).arraySync() as number[][];
  for (const row of masked) {
    row.forEach((v, i) => assert.ok(Math.floor(i / 16) === 5 || v === 0, `masked entry ${i} is ${v}`));
    assert.ok(row.slice(80, 96).some((v) => v !== 0), 'the chosen capsule is kept');
  }
  assert.throws(() => model.forward(tf.zeros([1, 20, 20, 1]) as tf.Tensor4D), /expects images of 28x28x1/);
  model.dispose();
});

/** Central finite differences of f at every entry of x (float32, so a coarse step). */
function numericGrad(f: (x: tf.Tensor) => tf.Scalar, x: tf.Tensor, h = 1e-2): Float32Array {
  const base = x.dataSync().slice();
  const out = new Float32Array(base.length);
  for (let i = 0; i < base.length; i++) {
    const plus = base.slice();
    plus[i] += h;
    const minus = base.slice();
    minus[i] -= h;
    const fp = tf.tidy(() => f(tf.tensor(plus, x.shape)).dataSync()[0]);
    const fm = tf.tidy(() => f(tf.tensor(minus, x.shape)).dataSync()[0]);
    out[i] = (fp - fm) / (2 * h);
  }
  return out;
}

function assertGradClose(analytic: ArrayLike<number>, numeric: ArrayLike<number>, what: string): void {
  let scale = 0;
  for (let i = 0; i < numeric.length; i++) scale = Math.max(scale, Math.abs(numeric[i]));
  for (let i = 0; i < numeric.length; i++) {
    const err = Math.abs(analytic[i] - numeric[i]);
    assert.ok(err <= 2e-2 * scale + 1e-3, `${what}[${i}]: analytic ${analytic[i]} vs numeric ${numeric[i]} (scale ${scale})`);
  }
}

await testEachBackend('finite differences: DigitCapsules (prediction vectors + 3 routing iterations) w.r.t. W and u', () => {
  const rng = new Rng(11);
  const layer = new DigitCapsules('digit', { capsules: 3, dim: 4, routingIterations: 3, initStddev: 0.5 });
  layer.build([null, 5, 3], rng);
  const u = squash(tf.tensor3d(Array.from({ length: 2 * 5 * 3 }, () => rng.normal()), [2, 5, 3]));
  const weights = tf.tensor3d(Array.from({ length: 2 * 3 * 4 }, () => rng.normal()), [2, 3, 4]);
  const lossOfU = (uu: tf.Tensor) => {
    const { v, couplings } = layer.call(uu as tf.Tensor3D);
    tf.dispose(couplings);
    return tf.sum(tf.mul(v, weights)) as tf.Scalar;
  };
  assertGradClose(tf.grad(lossOfU)(u).dataSync(), numericGrad(lossOfU, u), 'd/du');
  const W0 = layer.W.clone();
  const lossOfW = (w: tf.Tensor) => {
    const { v, couplings } = dynamicRouting(
      tf.reshape(tf.transpose(tf.matMul(tf.transpose(u, [1, 0, 2]), tf.reshape(w, [5, 12, 3]), false, true), [1, 0, 2]), [2, 5, 3, 4]) as tf.Tensor4D,
      { iterations: 3 },
    );
    tf.dispose(couplings);
    return tf.sum(tf.mul(v, weights)) as tf.Scalar;
  };
  const analyticW = tf.grad((w: tf.Tensor) => {
    layer.W.assign(w as tf.Tensor);
    return lossOfW(w);
  })(W0);
  assertGradClose(analyticW.dataSync(), numericGrad(lossOfW, W0), 'd/dW');
  // The layer's own gradient w.r.t. its variable matches too.
  const { grads } = tf.variableGrads(() => lossOfU(u), [layer.W]);
  assertGradClose(grads[layer.W.name].dataSync(), numericGrad(lossOfW, W0), 'layer d/dW');
  layer.dispose();
});

await testEachBackend('finite differences: PrimaryCapsules (conv, reshape, squash) w.r.t. the input', () => {
  const rng = new Rng(5);
  const layer = new PrimaryCapsules('primary', { types: 2, dim: 3, kernelSize: 3, strides: 2 });
  layer.build([null, 7, 7, 2], rng);
  const x = tf.tensor4d(Array.from({ length: 7 * 7 * 2 }, () => rng.normal()), [1, 7, 7, 2]);
  const out = layer.call(x);
  assert.deepEqual(out.shape, [1, 3 * 3 * 2, 3]);
  const weights = tf.tensor(Array.from({ length: out.size }, () => rng.normal()), out.shape);
  const f = (xx: tf.Tensor) => tf.sum(tf.mul(layer.call(xx as tf.Tensor4D), weights)) as tf.Scalar;
  assertGradClose(tf.grad(f)(x).dataSync(), numericGrad(f, x), 'd/dx');
  layer.dispose();
});
