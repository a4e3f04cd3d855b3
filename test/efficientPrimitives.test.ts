/**
 * Efficient-CapsNet's squash and self-attention routing against values and
 * gradients from an independent float64 implementation
 * (test/fixtures/efficient-primitives.py writes
 * test/fixtures/efficient-primitives.json), on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { selfAttentionRouting } from '../src/capsules/selfAttentionRouting.js';
import { efficientSquash, squash } from '../src/capsules/squash.js';
import { assertClose, assertSquashFixture, testEachBackend, type SquashFixtureCase } from './helpers.js';

interface RoutingCase { shape: [number, number, number, number]; u_hat: number[]; b: number[]; v: number[]; c: number[]; upstream: number[]; grad_u_hat: number[]; grad_b: number[] }

const fixture = JSON.parse(readFileSync(new URL('../../test/fixtures/efficient-primitives.json', import.meta.url), 'utf8')) as {
  squash: SquashFixtureCase[]; routing: RoutingCase[];
};
const TOL = { rtol: 1e-4, atol: 1e-6 };

await testEachBackend('efficientSquash matches the float64 fixture (values and gradients, zero and tiny vectors included)', () => {
  assert.ok(fixture.squash.length >= 4);
  assertSquashFixture('efficientSquash', efficientSquash, fixture.squash, TOL);
});

await testEachBackend('efficientSquash: lengths 1 - e^-|s|, finite for huge vectors, identity slope at zero, any axis', () => {
  const s = tf.tensor2d([[3, 4, 0], [0, 0, 0], [1e30, -1e30, 0], [2e-7, 0, 0]]);
  const v = efficientSquash(s).arraySync() as number[][];
  const expected = (1 - Math.exp(-5)) / 5;
  assertClose(v[0], [3 * expected, 4 * expected, 0], { rtol: 1e-6, what: 'v of (3, 4, 0)' });
  assert.deepEqual(v[1], [0, 0, 0]);
  assertClose([Math.hypot(...v[2])], [1], { rtol: 1e-6, what: 'a huge vector squashes to unit length' });
  assertClose(v[3], [2e-7, 0, 0], { rtol: 1e-6, atol: 1e-14, what: 'a tiny vector passes almost unchanged' });
  const g = tf.grad((x: tf.Tensor) => tf.sum(efficientSquash(x)))(s).arraySync() as number[][];
  assert.ok(g.flat().every(Number.isFinite), `gradients are finite: ${g}`);
  assertClose(g[1], [1, 1, 1], { rtol: 1e-6, what: 'the gradient at zero is the identity' });
  // Along axis 1 of [2, 3, 2]: the same as moving that axis last.
  const t = tf.tensor3d([[[1, -2], [0.5, 3], [2, 0]], [[0, 0], [0, 0], [0, 0]]]);
  const alongMiddle = efficientSquash(t, 1);
  const viaLast = tf.transpose(efficientSquash(tf.transpose(t, [0, 2, 1])), [0, 2, 1]);
  assertClose(alongMiddle.dataSync(), viaLast.dataSync(), { rtol: 1e-6, what: 'axis 1' });
  assert.throws(() => efficientSquash(t, 3), /axis 3 is out of range for a rank-3 tensor/);
});

await testEachBackend('efficientSquash differs from Eq. 1 of the 2017 paper as the two formulas say', () => {
  // |s| = 0.1: Efficient-CapsNet keeps almost all of it (1 - e^-0.1 = 0.0952), Eq. 1 squashes it to 0.1^2/1.01 = 0.0099.
  const s = tf.tensor2d([[0.1, 0]]);
  assertClose([efficientSquash(s).dataSync()[0]], [1 - Math.exp(-0.1)], { rtol: 1e-5, what: 'efficient squash length' });
  assertClose([squash(s).dataSync()[0]], [0.01 / 1.01], { rtol: 1e-5, what: 'Eq. 1 length' });
});

await testEachBackend('selfAttentionRouting matches the float64 fixture (v, couplings, gradients of uHat and priors)', () => {
  assert.ok(fixture.routing.length >= 5);
  for (const c of fixture.routing) {
    const [batch, inCaps, outCaps, dim] = c.shape;
    const label = `self-attention routing ${c.shape}`;
    const uHat = tf.tensor4d(c.u_hat, c.shape);
    const b = tf.tensor2d(c.b, [inCaps, outCaps]);
    const up = tf.tensor3d(c.upstream, [batch, outCaps, dim]);
    const { v, couplings } = selfAttentionRouting(uHat, b);
    assert.deepEqual(v.shape, [batch, outCaps, dim]);
    assert.deepEqual(couplings.shape, [batch, inCaps, outCaps]);
    assertClose(v.dataSync(), c.v, { ...TOL, what: `${label} v` });
    assertClose(couplings.dataSync(), c.c, { ...TOL, what: `${label} c` });
    const [gu, gb] = tf.grads((x: tf.Tensor, p: tf.Tensor) => {
      const out = selfAttentionRouting(x as tf.Tensor4D, p as tf.Tensor2D);
      return tf.sum(tf.mul(out.v, up));
    })([uHat, b]);
    assertClose(gu.dataSync(), c.grad_u_hat, { ...TOL, what: `${label} grad uHat` });
    assertClose(gb.dataSync(), c.grad_b, { ...TOL, what: `${label} grad priors` });
    tf.dispose([uHat, b, up, v, couplings, gu, gb]);
  }
});

await testEachBackend('selfAttentionRouting rejects inputs of the wrong shape with one clear line', () => {
  const uHat = tf.zeros([2, 4, 3, 5]) as tf.Tensor4D;
  assert.throws(() => selfAttentionRouting(tf.zeros([2, 4, 3]) as unknown as tf.Tensor4D, tf.zeros([4, 3]) as tf.Tensor2D), /uHat must be \[batch, inCaps, outCaps, outDim\], got shape \[2,4,3\]/);
  assert.throws(() => selfAttentionRouting(uHat, tf.zeros([3, 4]) as tf.Tensor2D), /priors must be \[inCaps, outCaps\] = \[4, 3\], got shape \[3,4\]/);
});
