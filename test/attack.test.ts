/**
 * Adversarial attacks on a model whose gradients are known by hand, and on
 * an EM capsule network.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend } from '../src/backend/node.js';
import { EmCapsNet, emCapsNetConfig, Rng } from '../src/index.js';
import type { ClassifierModel, ModelOutput } from '../src/models/model.js';
import { adversarialBatch, attackLoss, fgsmSweep, predict, randomTargets } from '../src/training/attacks.js';

await initBackend();

/**
 * Two pixels, two classes: logits = (x0, x1) scaled by 10. The gradient of
 * -log p_y with respect to x is 10 (p - onehot(y)), so its sign is (-1, +1)
 * for y = 0 and (+1, -1) for y = 1.
 */
function toyModel(): ClassifierModel {
  return {
    modelType: 'toy',
    inputShape: [1, 1, 2],
    numClasses: 2,
    params: [],
    layers: [],
    decoder: null,
    routingIterations: null,
    scoreName: 'probabilities',
    getConfig: () => ({ inputShape: [1, 1, 2], numClasses: 2 }),
    forward: (x: tf.Tensor4D): ModelOutput => {
      const logits = tf.mul(tf.reshape(x, [x.shape[0], 2]), 10) as tf.Tensor2D;
      return { scores: tf.softmax(logits) as tf.Tensor2D, logits };
    },
    loss: (out: ModelOutput, _x: tf.Tensor4D, targets: tf.Tensor2D) => {
      const total = tf.losses.softmaxCrossEntropy(targets, out.logits as tf.Tensor2D) as tf.Scalar;
      return { total, terms: {} };
    },
    inspection: {
      title: 'two-pixel softmax',
      scores: { name: 'probability', title: 'Class scores', about: 'Softmax of the two pixels times 10.' },
      featureMaps: null,
      primaryCapsules: null,
      capsuleLayers: null,
      routing: null,
      classCapsules: null,
    },
    inspect: (x: tf.Tensor4D) => ({ scores: tf.softmax(tf.mul(tf.reshape(x, [x.shape[0], 2]), 10)) as tf.Tensor2D }),
    summary: () => [],
    countParams: () => 0,
    dispose: () => {},
  };
}

test('FGSM moves along the sign of the loss gradient: away from the label, or towards the target', () => {
  const m = toyModel();
  const x = tf.tensor4d([0.6, 0.4, 0.3, 0.5], [2, 1, 1, 2]);
  const labels = Int32Array.of(0, 1);
  const untargeted = adversarialBatch(m, x, labels, { method: 'fgsm', epsilon: 0.1 }).dataSync();
  assert.deepEqual(Array.from(untargeted, (v) => Number(v.toFixed(5))), [0.5, 0.5, 0.4, 0.4]);
  // Targeted at the other class: the same direction as untargeted here.
  const targeted = adversarialBatch(m, x, labels, { method: 'fgsm', epsilon: 0.1, targets: Int32Array.of(1, 0) }).dataSync();
  assert.deepEqual(Array.from(targeted, (v) => Number(v.toFixed(5))), [0.5, 0.5, 0.4, 0.4]);
  // Targeted at the true class moves the other way (a sign error would not).
  const towardsTruth = adversarialBatch(m, x, labels, { method: 'fgsm', epsilon: 0.1, targets: labels }).dataSync();
  assert.deepEqual(Array.from(towardsTruth, (v) => Number(v.toFixed(5))), [0.7, 0.3, 0.2, 0.6]);
  // Clipping to [0, 1], and a sweep over epsilons equals single runs.
  const big = adversarialBatch(m, x, labels, { method: 'fgsm', epsilon: 0.8 }).dataSync();
  assert.deepEqual(Array.from(big), [0, 1, 1, 0]);
  const sweep = fgsmSweep(m, x, labels, [0, 0.1]);
  assert.deepEqual(Array.from(sweep[0].dataSync()), Array.from(x.dataSync()));
  assert.deepEqual(Array.from(sweep[1].dataSync(), (v) => Number(v.toFixed(5))), [0.5, 0.5, 0.4, 0.4]);
  assert.deepEqual(Array.from(predict(m, x)), [0, 1]);
  assert.deepEqual(Array.from(predict(m, adversarialBatch(m, x, labels, { method: 'fgsm', epsilon: 0.2 }))), [1, 0], 'epsilon 0.2 flips both');
  assert.throws(() => adversarialBatch(m, x, labels, { method: 'fgsm', epsilon: -1 }), /epsilon must be a non-negative number/);
});

test('BIM stays within epsilon of the input and inside the pixel range, and flips what FGSM flips', () => {
  const m = toyModel();
  const rng = new Rng(1);
  const x = tf.tensor4d(Array.from({ length: 16 }, () => rng.next()), [8, 1, 1, 2]);
  const labels = predict(m, x);
  const adv = adversarialBatch(m, x, labels, { method: 'bim', epsilon: 0.15, iterations: 5 });
  const a = adv.dataSync();
  const xs = x.dataSync();
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - xs[i]) <= 0.15 + 1e-6, `|x' - x| = ${Math.abs(a[i] - xs[i])} at ${i}`);
    assert.ok(a[i] >= 0 && a[i] <= 1);
  }
  const fgsmFlips = predict(m, adversarialBatch(m, x, labels, { method: 'fgsm', epsilon: 0.15 }));
  const bimFlips = predict(m, adv);
  for (let i = 0; i < 8; i++) if (fgsmFlips[i] !== labels[i]) assert.notEqual(bimFlips[i], labels[i], `example ${i}`);
  // Without clipping, values may leave [0, 1].
  const free = adversarialBatch(m, tf.tensor4d([0.02, 0.98], [1, 1, 1, 2]), Int32Array.of(1), { method: 'bim', epsilon: 0.1, iterations: 3, clip: null }).dataSync();
  assert.ok(free[0] > 0.1 - 1e-6 && free[1] < 0.9 + 1e-6, `unclipped ${Array.from(free)}`);
});

test('random targets are always wrong classes, and all wrong classes occur', () => {
  const labels = Int32Array.from({ length: 500 }, (_, i) => i % 5);
  const t = randomTargets(labels, 5, new Rng(2));
  const seen = new Set<string>();
  t.forEach((v, i) => {
    assert.notEqual(v, labels[i]);
    assert.ok(v >= 0 && v < 5);
    seen.add(`${labels[i]}->${v}`);
  });
  assert.equal(seen.size, 20);
  // The seed decides the targets: another seed draws others.
  assert.notDeepEqual(randomTargets(labels, 5, new Rng(3)), t, 'another seed, other targets');
});

test('attacks on an EM capsule network: finite gradients for both losses, pixels change by epsilon or not at all', () => {
  const m = new EmCapsNet(emCapsNetConfig('small', { inputShape: [20, 20, 1], numClasses: 3, conv1: { filters: 8 }, primary: { types: 2 }, convCaps1: { types: 2 }, convCaps2: { types: 2 } }), 3);
  const x = tf.randomUniform([2, 20, 20, 1], 0.2, 0.8, 'float32', 4) as tf.Tensor4D;
  const labels = Int32Array.of(0, 2);
  for (const loss of ['ce', 'model'] as const) {
    const g = tf.grad((input: tf.Tensor) => attackLoss(m, input as tf.Tensor4D, labels, loss))(x).dataSync();
    assert.ok(g.every(Number.isFinite), `${loss} gradient finite`);
    assert.ok(g.some((v) => v !== 0), `${loss} gradient not all zero`);
  }
  const adv = adversarialBatch(m, x, labels, { method: 'fgsm', epsilon: 0.05 }).dataSync();
  const xs = x.dataSync();
  // Each pixel moves by exactly epsilon, or not at all where the gradient is
  // zero (the last row and column, which conv1's 5x5/2 windows never reach,
  // and pixels under dead ReLUs).
  let moved = 0;
  for (let i = 0; i < xs.length; i++) {
    const d = Math.abs(adv[i] - xs[i]);
    assert.ok(d < 1e-6 || Math.abs(d - 0.05) < 1e-6, `pixel ${i} moved by ${d}`);
    if (d > 1e-6) moved++;
  }
  assert.ok(moved > 0.5 * xs.length, `${moved} of ${xs.length} pixels moved by epsilon`);
  m.dispose();
});
