/**
 * Capsule primitives against values and gradients from an independent
 * float64 implementation (test/fixtures/capsule-primitives.json), on every
 * backend.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dynamicRouting, marginLoss, reconstructionLoss, squash } from '../src/index.js';
import { assertClose, assertSquashFixture, testEachBackend, type SquashFixtureCase } from './helpers.js';

interface RoutingCase { shape: [number, number, number, number]; iterations: number; stopGradientInner: boolean; u_hat: number[]; v: number[]; c_last: number[]; upstream: number[]; grad_u_hat: number[] }
interface MarginCase { shape: [number, number]; lengths: number[]; labels: number[] | number[][]; mPlus: number; mMinus: number; lambda: number; loss: number; grad_lengths: number[] }

const fixture = JSON.parse(readFileSync(new URL('../../test/fixtures/capsule-primitives.json', import.meta.url), 'utf8')) as {
  squash: SquashFixtureCase[]; routing: RoutingCase[]; margin: MarginCase[];
};
const TOL = { rtol: 1e-4, atol: 1e-6 };

await testEachBackend('squash matches the float64 fixture (values and gradients)', () => {
  assertSquashFixture('squash', squash, fixture.squash, TOL);
});

await testEachBackend('squash is finite at zero and for huge vectors', () => {
  const s = tf.tensor2d([[0, 0, 0, 0], [1e30, -1e30, 1e30, 0], [1e-30, 0, 0, 0], [3, 4, 0, 0]]);
  const v = squash(s);
  const vals = v.arraySync() as number[][];
  assert.deepEqual(vals[0], [0, 0, 0, 0]);
  const len1 = Math.hypot(...vals[1]);
  assert.ok(Math.abs(len1 - 1) < 1e-6, `huge vector squashes to unit length, got ${len1}`);
  assert.ok(Math.abs(vals[3][0] - (25 / 26) * 0.6) < 1e-6 && Math.abs(vals[3][1] - (25 / 26) * 0.8) < 1e-6);
  const g = tf.grad((x: tf.Tensor) => tf.sum(squash(x)))(s);
  const gv = g.dataSync();
  assert.ok(gv.every(Number.isFinite), `gradients are finite: ${Array.from(gv)}`);
  assert.ok(Math.abs(gv[0]) < 1e-6, 'the gradient of squash at zero is zero');
  tf.dispose([s, v, g]);
});

await testEachBackend('dynamicRouting matches the float64 fixture (v, last couplings, gradients)', () => {
  for (const c of fixture.routing) {
    const label = `routing ${c.shape} r=${c.iterations} stop=${c.stopGradientInner}`;
    const uHat = tf.tensor4d(c.u_hat, c.shape);
    const up = tf.tensor(c.upstream, [c.shape[0], c.shape[2], c.shape[3]]);
    const { v, couplings } = dynamicRouting(uHat, { iterations: c.iterations, stopGradientInner: c.stopGradientInner });
    assert.equal(couplings.length, c.iterations);
    assert.deepEqual(couplings[0].shape, [c.shape[0], c.shape[1], c.shape[2]]);
    assertClose(v.dataSync(), c.v, { ...TOL, what: `${label} v` });
    assertClose(couplings[couplings.length - 1].dataSync(), c.c_last, { ...TOL, what: `${label} c` });
    const g = tf.grad((x: tf.Tensor) => {
      const out = dynamicRouting(x as tf.Tensor4D, { iterations: c.iterations, stopGradientInner: c.stopGradientInner });
      tf.dispose(out.couplings);
      return tf.sum(tf.mul(out.v, up));
    })(uHat);
    assertClose(g.dataSync(), c.grad_u_hat, { ...TOL, what: `${label} grad` });
    tf.dispose([uHat, up, v, g, ...couplings]);
  }
});

await testEachBackend('marginLoss matches the float64 fixture (value and gradient)', () => {
  for (const c of fixture.margin) {
    const lengths = tf.tensor2d(c.lengths, c.shape);
    const labels = Array.isArray(c.labels[0]) ? tf.tensor2d(c.labels as number[][]) : tf.tensor1d(c.labels as number[], 'int32');
    const opts = { mPlus: c.mPlus, mMinus: c.mMinus, lambda: c.lambda };
    const loss = marginLoss(lengths, labels, opts);
    assertClose([loss.dataSync()[0]], [c.loss], { ...TOL, what: 'margin loss' });
    const g = tf.grad((x: tf.Tensor) => marginLoss(x as tf.Tensor2D, labels, opts))(lengths);
    assertClose(g.dataSync(), c.grad_lengths, { ...TOL, what: 'margin grad' });
    tf.dispose([lengths, labels, loss, g]);
  }
});

await testEachBackend('marginLoss accepts multi-hot targets (two digits present)', () => {
  const lengths = tf.tensor2d([[0.95, 0.05, 0.5], [0.2, 0.8, 0.95]]);
  const loss = marginLoss(lengths, tf.tensor2d([[1, 0, 1], [0, 1, 1]])).dataSync()[0];
  // Hand-worked: ex0: class2 present at 0.5 -> 0.4^2; ex1: class0 absent at 0.2 -> 0.5*0.1^2, class1 present at 0.8 -> 0.1^2.
  const expected = (0.16 + 0.005 + 0.01) / 2;
  assert.ok(Math.abs(loss - expected) < 1e-6, `${loss} vs ${expected}`);
  tf.dispose(lengths);
});

await testEachBackend('reconstructionLoss is 0.0005 x summed squared error, averaged over the batch', () => {
  const x = tf.tensor2d([[0, 1, 0.5, 0.25], [1, 1, 1, 1]]);
  const r = tf.tensor2d([[0.5, 1, 0.5, 0.25], [0, 0, 1, 1]]);
  const loss = reconstructionLoss(r, x).dataSync()[0];
  assert.ok(Math.abs(loss - 0.0005 * (0.25 + 2) / 2) < 1e-9, `got ${loss}`);
  const weighted = reconstructionLoss(r, x, 1).dataSync()[0];
  assert.ok(Math.abs(weighted - 1.125) < 1e-6);
  tf.dispose([x, r]);
});
