/**
 * The EM capsule network: the paper's and the small preset's parameter
 * counts, shapes for any input size, channels and classes, coordinate
 * addition, the spread loss and its margin schedule, the data-dependent
 * start, saving and loading, and a few training steps.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend } from '../src/backend/node.js';
import { loadMnist } from '../src/data/mnist.js';
import { makeBatch } from '../src/data/batches.js';
import { Adam, EmCapsNet, emCapsNetConfig, modelFromArtifacts, modelToArtifacts, Rng, spreadLoss, spreadMargin } from '../src/index.js';
import { trainStep } from '../src/training/trainer.js';
import { assertClose, testEachBackend } from './helpers.js';

await initBackend();

test('the paper preset has 316,394 parameters: A = B = C = D = 32, 32x32x1 input, 5 classes', async () => {
  await initBackend();
  const model = new EmCapsNet(emCapsNetConfig('paper'));
  const byLayer = Object.fromEntries(model.summary().map((l) => [l.name, l.params]));
  // conv1 5x5x1x32 + 32; primary 1x1x32x(32*17) + 32*17; conv caps 3*3*32*32 4x4
  // matrices + beta_u, beta_a per output type; class caps 32*5 4x4 matrices + betas.
  assert.deepEqual(byLayer, { conv1: 832, primary_caps: 17_952, conv_caps1: 147_520, conv_caps2: 147_520, class_caps: 2_570 });
  assert.equal(model.countParams(), 316_394);
  assert.deepEqual(model.summary().map((l) => l.outputShape), [[null, 14, 14, 32], [null, 14, 14, 32, 4, 4], [null, 6, 6, 32, 4, 4], [null, 4, 4, 32, 4, 4], [null, 5, 4, 4]]);
  model.dispose();
});

test('the small preset has 67,154 parameters: A = 64, B = 8, C = D = 16, 1 channel, 5 classes', async () => {
  await initBackend();
  const model = new EmCapsNet(emCapsNetConfig('small'));
  const byLayer = Object.fromEntries(model.summary().map((l) => [l.name, l.params]));
  assert.deepEqual(byLayer, { conv1: 1_664, primary_caps: 8_840, conv_caps1: 18_464, conv_caps2: 36_896, class_caps: 1_290 });
  assert.equal(model.countParams(), 67_154);
  // Weights are shared across positions: the input size does not change the
  // count; channels change conv1 and classes the class capsules.
  const mnist = new EmCapsNet(emCapsNetConfig('small', { inputShape: [28, 28, 1], numClasses: 10 }));
  assert.equal(mnist.countParams(), 67_154 + 5 * (16 * 16 + 2));
  const stereo = new EmCapsNet(emCapsNetConfig('small', { inputShape: [48, 48, 2] }));
  assert.equal(stereo.countParams(), 67_154 + 25 * 64);
  for (const m of [model, mnist, stereo]) m.dispose();
});

test('any input size, channel count and number of classes builds with the right shapes', async () => {
  await initBackend();
  const cases: [[number, number, number], number, (number | null)[][]][] = [
    [[28, 28, 1], 10, [[null, 12, 12, 64], [null, 12, 12, 8, 4, 4], [null, 5, 5, 16, 4, 4], [null, 3, 3, 16, 4, 4], [null, 10, 4, 4]]],
    [[40, 36, 3], 7, [[null, 18, 16, 64], [null, 18, 16, 8, 4, 4], [null, 8, 7, 16, 4, 4], [null, 6, 5, 16, 4, 4], [null, 7, 4, 4]]],
  ];
  for (const [inputShape, numClasses, shapes] of cases) {
    const m = new EmCapsNet(emCapsNetConfig('small', { inputShape, numClasses }));
    assert.deepEqual(m.summary().map((l) => l.outputShape), shapes);
    m.dispose();
  }
  assert.throws(() => new EmCapsNet(emCapsNetConfig('small', { inputShape: [12, 12, 1] })), /does not fit/);
  assert.throws(() => new EmCapsNet(emCapsNetConfig('small', { convCaps1: { types: 0 } })), /convCaps1.types must be a positive integer/);
  assert.throws(() => new EmCapsNet(emCapsNetConfig('small', { routing: { inverseTemperature: { start: 0, end: 1 } } })), /inverse temperatures must be positive/);
  assert.throws(() => new EmCapsNet(emCapsNetConfig('small', { loss: { marginStart: 0.9, marginEnd: 0.2 } })), /marginStart <= marginEnd/);
  assert.throws(() => emCapsNetConfig('huge' as never), /unknown EM capsule network preset 'huge'/);
});

await testEachBackend('coordinate addition: the scaled receptive-field centre is added to vote entries 3 (row) and 7 (column)', () => {
  const m = new EmCapsNet(emCapsNetConfig('small', { inputShape: [32, 32, 1], numClasses: 3 }), 1);
  // With W = 0 the votes are the coordinates alone. ConvCaps2 positions
  // (4x4) have receptive-field centres 8.5 + 4k pixels (conv1 5x5/2, convcaps
  // 3x3/2 and 3x3/1), divided by the image size 32.
  m.classCaps.W.assign(tf.zerosLike(m.classCaps.W));
  const caps = { poses: tf.randomNormal([1, 4, 4, 16, 16]) as tf.Tensor5D, activations: tf.fill([1, 4, 4, 16], 0.5) as tf.Tensor4D };
  const votes = m.classCaps.votes(caps).arraySync() as number[][][][];
  for (let y = 0; y < 4; y++) {
    for (let x = 0; x < 4; x++) {
      for (const t of [0, 15]) {
        const v = votes[0][(y * 4 + x) * 16 + t][2];
        assert.ok(Math.abs(v[3] - (8.5 + 4 * y) / 32) < 1e-6, `row coordinate at (${y}, ${x}): ${v[3]}`);
        assert.ok(Math.abs(v[7] - (8.5 + 4 * x) / 32) < 1e-6, `column coordinate at (${y}, ${x}): ${v[7]}`);
        assert.ok(v.every((e, i) => i === 3 || i === 7 || e === 0), 'other entries untouched');
      }
    }
  }
  const off = new EmCapsNet(emCapsNetConfig('small', { numClasses: 3, classCaps: { coordinateAddition: false } }), 1);
  off.classCaps.W.assign(tf.zerosLike(off.classCaps.W));
  assert.ok(off.classCaps.votes(caps).dataSync().every((v) => v === 0), 'no coordinates without coordinate addition');
  m.dispose();
  off.dispose();
});

await testEachBackend('forward: activations in (0, 1), poses, routing, trace, routing-iteration override', () => {
  const m = new EmCapsNet(emCapsNetConfig('small', { inputShape: [28, 28, 1], numClasses: 10, conv1: { filters: 16 }, primary: { types: 4 }, convCaps1: { types: 6 }, convCaps2: { types: 5 } }), 2);
  const x = tf.randomUniform([2, 28, 28, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
  const out = m.forward(x, { trace: true });
  assert.deepEqual(out.scores.shape, [2, 10]);
  assert.deepEqual(out.poses.shape, [2, 10, 16]);
  assert.deepEqual(out.routing.shape, [2, 1, 3 * 3 * 5, 10]);
  assert.deepEqual(out.convCaps1Activations!.shape, [2, 5, 5, 6]);
  for (const s of out.scores.dataSync()) assert.ok(s > 0 && s < 1, `activation ${s}`);
  const one = m.forward(x, { routingIterations: 1 });
  assert.ok(Math.abs(one.scores.dataSync()[0] - out.scores.dataSync()[0]) > 0, 'one routing iteration gives different activations');
  assert.throws(() => m.forward(tf.zeros([1, 32, 32, 1]) as tf.Tensor4D), /expects images of 28x28x1/);
  m.dispose();
});

await testEachBackend('spread loss: hand-computed values, multi-hot targets, gradients, margin schedule', () => {
  // a = [0.8, 0.5, 0.1], target 0, m = 0.5: max(0, 0.5 - 0.3)^2 + max(0, 0.5 - 0.7)^2 = 0.04.
  // a = [0.2, 0.6, 0.5], target 1, m = 0.5: (0.5 - (0.6 - 0.2))^2 + (0.5 - 0.1)^2 = 0.01 + 0.16.
  const a = tf.tensor2d([[0.8, 0.5, 0.1], [0.2, 0.6, 0.5]]);
  const loss = spreadLoss(a, tf.tensor1d([0, 1], 'int32'), 0.5).dataSync()[0];
  assert.ok(Math.abs(loss - (0.04 + 0.17) / 2) < 1e-6, `got ${loss}`);
  // Two targets present: each compared with the absent class, divided by 2.
  const multi = spreadLoss(tf.tensor2d([[0.8, 0.5, 0.1]]), tf.tensor2d([[1, 1, 0]]), 0.5).dataSync()[0];
  assert.ok(Math.abs(multi - (0 + 0.01) / 2) < 1e-6, `multi-hot: ${multi}`);
  const g = tf.grad((x: tf.Tensor) => spreadLoss(x as tf.Tensor2D, tf.tensor1d([0, 1], 'int32'), 0.5))(a).arraySync() as number[][];
  assert.ok(g[0][0] < 0 && g[0][1] > 0 && g[0][2] === 0, `the target is pushed up, close rivals down: ${g[0]}`);
  assert.ok(Math.abs(g[1][1] + (g[1][0] + g[1][2])) < 1e-6, 'the gradients of a pair cancel');
  assert.equal(spreadMargin(0), 0.2);
  assert.equal(spreadMargin(1), 0.9);
  assert.ok(Math.abs(spreadMargin(0.5) - 0.55) < 1e-12);
  assert.equal(spreadMargin(2), 0.9);
  const m = new EmCapsNet(emCapsNetConfig('small', { inputShape: [28, 28, 1], numClasses: 3 }));
  const out = { scores: tf.tensor2d([[0.8, 0.5, 0.1]]) };
  const early = m.loss(out, tf.zeros([1, 28, 28, 1]), tf.tensor2d([[1, 0, 0]]), { fraction: 0, rng: new Rng(1) });
  const late = m.loss(out, tf.zeros([1, 28, 28, 1]), tf.tensor2d([[1, 0, 0]]), { fraction: 1, rng: new Rng(1) });
  assert.ok(Math.abs(early.terms.margin.dataSync()[0] - 0.2) < 1e-7 && Math.abs(late.terms.margin.dataSync()[0] - 0.9) < 1e-6);
  assert.ok(early.total.dataSync()[0] === 0 && late.total.dataSync()[0] > 0.3, 'a larger margin costs more');
  m.dispose();
});

test('data-dependent start: about half of the capsules are active, where beta_u = 0 saturates them', async () => {
  await initBackend();
  const ds = loadMnist('test');
  const batch = makeBatch(ds, Int32Array.from({ length: 16 }, (_, i) => i));
  const x = tf.tensor4d(batch.x, [16, 28, 28, 1]);
  const m = new EmCapsNet(emCapsNetConfig('small', { inputShape: [28, 28, 1], numClasses: 10 }), 4);
  const meanAct = () => tf.tidy(() => tf.mean(m.forward(x, { trace: true }).convCaps2Activations!).dataSync()[0]);
  const before = meanAct();
  m.initializeFromData(x);
  const after = meanAct();
  assert.ok(before > 0.8, `with beta_u = 0 the capsules start nearly all on (${before})`);
  assert.ok(after > 0.3 && after < 0.7, `after the data-dependent start about half are on (${after})`);
  assert.ok(m.convCaps1.betaU.dataSync().every((v) => v > 0), 'beta_u compensates the small initial variances');
  m.dispose();
  x.dispose();
});

test('save and load: the same scores from model.json and weights.bin', async () => {
  await initBackend();
  const m = new EmCapsNet(emCapsNetConfig('small', { inputShape: [28, 28, 1], numClasses: 10 }), 5);
  const x = tf.randomUniform([2, 28, 28, 1], 0, 1, 'float32', 6) as tf.Tensor4D;
  const { json, weights } = modelToArtifacts(m);
  assert.equal(json.modelType, 'em');
  const { model: back } = modelFromArtifacts(JSON.parse(JSON.stringify(json)), weights);
  assertClose(back.forward(x).scores.dataSync(), m.forward(x).scores.dataSync(), { rtol: 1e-6, what: 'scores after loading' });
  assert.equal(back.countParams(), m.countParams());
  m.dispose();
  back.dispose();
});

test('a few Adam steps on a small batch lower the spread loss', async () => {
  await initBackend();
  const ds = loadMnist('train');
  const m = new EmCapsNet(emCapsNetConfig('small', { inputShape: [28, 28, 1], numClasses: 10, conv1: { filters: 16 }, primary: { types: 4 }, convCaps1: { types: 4 }, convCaps2: { types: 4 } }), 7);
  const batch = makeBatch(ds, Int32Array.from({ length: 8 }, (_, i) => i));
  m.initializeFromData(tf.tensor4d(batch.x, [8, 28, 28, 1]));
  const opt = new Adam({ learningRate: 0.01 });
  const rng = new Rng(8);
  const losses = [];
  for (let i = 0; i < 8; i++) losses.push(trainStep(m, opt, batch, { fraction: 0.5, rng }).loss);
  assert.ok(losses.every(Number.isFinite));
  assert.ok(losses[losses.length - 1] < 0.8 * losses[0], `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
  opt.dispose();
  m.dispose();
});
