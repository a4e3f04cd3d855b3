/**
 * EM routing: values and gradients against an independent float64
 * implementation (test/emOracle.ts) and its finite differences, the
 * normalisation of each child's routing weights over every parent that
 * receives it (across positions and types), a hand-worked two-cluster case,
 * and finiteness of values and gradients on hostile inputs. Every case runs
 * on every backend.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emRouting, emRoutingReference, type EmRoutingOptions } from '../src/capsules/emRouting.js';
import { foldChildren, unfoldChildren, type EmGeometry } from '../src/capsules/emGeometry.js';
import { emRoutingSettings, inverseTemperatureSchedule, LOGIT_BOUND } from '../src/capsules/emSettings.js';
import { Rng } from '../src/util/rng.js';
import { emRoutingOracle, type OracleSettings } from './emOracle.js';
import { assertClose, testEachBackend } from './helpers.js';

type Shape5 = [number, number, number, number, number];

/** A float32 tensor from float64 test data. */
function T(values: ArrayLike<number>, shape?: number[]): tf.Tensor {
  return tf.tensor(Float32Array.from(values), shape);
}

interface Case {
  shape: Shape5;
  votes: Float64Array;
  acts: Float64Array;
  betaU: Float64Array;
  betaA: Float64Array;
  geometry: EmGeometry | null;
  iterations: number;
}

function randomCase(seed: number, shape: Shape5, geometry: EmGeometry | null, opts: { scale?: number; iterations?: number } = {}): Case {
  const rng = new Rng(seed);
  const [b, p, n, j, d] = shape;
  const { scale = 1, iterations = 3 } = opts;
  return {
    shape,
    votes: Float64Array.from({ length: b * p * n * j * d }, () => scale * rng.normal()),
    acts: Float64Array.from({ length: b * p * n }, () => rng.uniform(0.05, 0.95)),
    betaU: Float64Array.from({ length: j }, () => rng.uniform(-1, 1)),
    betaA: Float64Array.from({ length: j }, () => rng.uniform(-1, 1)),
    geometry,
    iterations,
  };
}

function options(c: Case, betaU: tf.Tensor, betaA: tf.Tensor): EmRoutingOptions {
  return { betaU, betaA, geometry: c.geometry, iterations: c.iterations };
}

function oracleSettings(c: Case): OracleSettings {
  const st = emRoutingSettings(tf.zeros(c.shape), { betaU: tf.zeros([c.shape[3]]), betaA: tf.zeros([c.shape[3]]), geometry: c.geometry, iterations: c.iterations });
  return { ...st, logitBound: LOGIT_BOUND, meanEps: 1e-8 };
}

/** The scalar both implementations differentiate: a fixed random weighting of poses and activations. */
function upstream(c: Case, seed: number): { up1: Float64Array; up2: Float64Array } {
  const rng = new Rng(seed);
  const [b, p, , j, d] = c.shape;
  return { up1: Float64Array.from({ length: b * p * j * d }, () => rng.normal()), up2: Float64Array.from({ length: b * p * j }, () => rng.normal()) };
}

function oracleLoss(c: Case, up: { up1: Float64Array; up2: Float64Array }, s: OracleSettings, votes = c.votes, acts = c.acts, betaU = c.betaU, betaA = c.betaA): number {
  const r = emRoutingOracle(votes, acts, betaU, betaA, c.shape, s);
  let l = 0;
  for (let i = 0; i < r.poses.length; i++) l += r.poses[i] * up.up1[i];
  for (let i = 0; i < r.activations.length; i++) l += r.activations[i] * up.up2[i];
  return l;
}

// A 3x2 grid of windows (K = 3, stride 1) over a 5x4 grid of 2 child types:
// children in the middle are seen from up to 6 parent positions.
const CONV: EmGeometry = { inHeight: 5, inWidth: 4, inTypes: 2, kernel: 3, stride: 1, outHeight: 3, outWidth: 2 };
// Stride 2 with uncovered children (the last row and column).
const STRIDED: EmGeometry = { inHeight: 6, inWidth: 6, inTypes: 1, kernel: 3, stride: 2, outHeight: 2, outWidth: 2 };

await testEachBackend('emRouting matches the float64 oracle: fully connected, convolutional, strided', () => {
  const cases = [
    randomCase(1, [2, 1, 7, 3, 16], null),
    randomCase(2, [2, 6, 18, 3, 16], CONV),
    randomCase(3, [1, 4, 9, 2, 16], STRIDED, { iterations: 4 }),
    randomCase(4, [2, 1, 5, 4, 16], null, { iterations: 1 }),
  ];
  for (const c of cases) {
    const r = emRouting(T(c.votes, c.shape) as tf.Tensor5D, T(c.acts, c.shape.slice(0, 3) as [number, number, number]) as tf.Tensor3D, options(c, T(c.betaU), T(c.betaA)));
    const o = emRoutingOracle(c.votes, c.acts, c.betaU, c.betaA, c.shape, oracleSettings(c));
    const what = `shape [${c.shape}] ${c.geometry ? 'conv' : 'fc'} r=${c.iterations}`;
    assertClose(r.poses.dataSync(), o.poses, { rtol: 2e-3, atol: 2e-4, what: `${what} poses` });
    assertClose(r.activations.dataSync(), o.activations, { rtol: 2e-3, atol: 2e-4, what: `${what} activations` });
    assertClose(r.routing.dataSync(), o.routing, { rtol: 2e-3, atol: 2e-4, what: `${what} routing` });
  }
});

await testEachBackend('gradients match finite differences of the float64 oracle (votes, activations, beta_u, beta_a)', () => {
  // Directional derivatives along random directions for each input, on a
  // convolutional and a fully connected case.
  for (const c of [randomCase(5, [1, 6, 18, 3, 16], CONV), randomCase(6, [2, 1, 6, 3, 16], null)]) {
    const s = oracleSettings(c);
    const up = upstream(c, 7);
    const inputs = [T(c.votes, c.shape), T(c.acts, c.shape.slice(0, 3) as [number, number, number]), T(c.betaU), T(c.betaA)];
    const u1 = T(up.up1, [c.shape[0], c.shape[1], c.shape[3], c.shape[4]]);
    const u2 = T(up.up2, [c.shape[0], c.shape[1], c.shape[3]]);
    const grads = tf.grads((v: tf.Tensor, a: tf.Tensor, bu: tf.Tensor, ba: tf.Tensor) => {
      const r = emRouting(v as tf.Tensor5D, a as tf.Tensor3D, { betaU: bu, betaA: ba, geometry: c.geometry, iterations: c.iterations });
      return tf.add(tf.sum(tf.mul(r.poses, u1)), tf.sum(tf.mul(r.activations, u2))) as tf.Scalar;
    })(inputs).map((g) => g.dataSync());
    const rng = new Rng(8);
    const h = 1e-5;
    const names = ['votes', 'activations', 'betaU', 'betaA'];
    const base = [c.votes, c.acts, c.betaU, c.betaA];
    for (let k = 0; k < 4; k++) {
      for (let trial = 0; trial < 2; trial++) {
        const dir = Float64Array.from(base[k], () => rng.normal());
        const plus = base.map((x) => x);
        const minus = base.map((x) => x);
        plus[k] = base[k].map((x, i) => x + h * dir[i]);
        minus[k] = base[k].map((x, i) => x - h * dir[i]);
        const numeric = (oracleLoss(c, up, s, ...(plus as [Float64Array, Float64Array, Float64Array, Float64Array])) - oracleLoss(c, up, s, ...(minus as [Float64Array, Float64Array, Float64Array, Float64Array]))) / (2 * h);
        let analytic = 0;
        for (let i = 0; i < dir.length; i++) analytic += grads[k][i] * dir[i];
        const tol = 2e-3 * Math.max(1, Math.abs(numeric));
        assert.ok(Math.abs(analytic - numeric) <= tol, `${c.geometry ? 'conv' : 'fc'} d/d${names[k]} along a random direction: analytic ${analytic}, numeric ${numeric}`);
      }
    }
  }
});

await testEachBackend('elementwise finite differences on a tiny convolutional case (2-D poses)', () => {
  const g: EmGeometry = { inHeight: 3, inWidth: 3, inTypes: 1, kernel: 2, stride: 1, outHeight: 2, outWidth: 2 };
  const c = randomCase(9, [1, 4, 4, 2, 2], g, { iterations: 3 });
  const s = oracleSettings(c);
  const up = upstream(c, 10);
  const u1 = T(up.up1, [1, 4, 2, 2]);
  const u2 = T(up.up2, [1, 4, 2]);
  const [gv, ga] = tf.grads((v: tf.Tensor, a: tf.Tensor) => {
    const r = emRouting(v as tf.Tensor5D, a as tf.Tensor3D, { betaU: T(c.betaU), betaA: T(c.betaA), geometry: g, iterations: 3 });
    return tf.add(tf.sum(tf.mul(r.poses, u1)), tf.sum(tf.mul(r.activations, u2))) as tf.Scalar;
  })([T(c.votes, c.shape), T(c.acts, [1, 4, 4])]).map((t) => t.dataSync());
  const h = 1e-6;
  const check = (analytic: ArrayLike<number>, base: Float64Array, which: 'votes' | 'acts') => {
    for (let i = 0; i < base.length; i++) {
      const p = base.slice();
      const m = base.slice();
      p[i] += h;
      m[i] -= h;
      const lp = which === 'votes' ? oracleLoss(c, up, s, p) : oracleLoss(c, up, s, c.votes, p);
      const lm = which === 'votes' ? oracleLoss(c, up, s, m) : oracleLoss(c, up, s, c.votes, m);
      const numeric = (lp - lm) / (2 * h);
      assert.ok(Math.abs(analytic[i] - numeric) <= 2e-3 * Math.max(1, Math.abs(numeric)), `d/d${which}[${i}]: analytic ${analytic[i]}, numeric ${numeric}`);
    }
  };
  check(gv, c.votes, 'votes');
  check(ga, c.acts, 'acts');
});

await testEachBackend('each child\'s routing weights sum to 1 over every parent that receives it, across positions and types', () => {
  for (const [c, g] of [
    [randomCase(11, [2, 6, 18, 3, 16], CONV), CONV],
    [randomCase(12, [2, 4, 9, 2, 16], STRIDED), STRIDED],
  ] as const) {
    const r = emRouting(T(c.votes, c.shape) as tf.Tensor5D, T(c.acts, c.shape.slice(0, 3) as [number, number, number]) as tf.Tensor3D, options(c, T(c.betaU), T(c.betaA)));
    const perChild = foldChildren(tf.sum(r.routing, -1), g).dataSync();
    const covered = foldChildren(tf.ones(c.shape.slice(0, 3) as [number, number, number]), g).dataSync();
    for (let i = 0; i < perChild.length; i++) {
      const expected = covered[i] > 0 ? 1 : 0;
      assert.ok(Math.abs(perChild[i] - expected) < 1e-5, `child ${i}: routing weights sum to ${perChild[i]}, expected ${expected}`);
    }
    // Per parent position the weights of shared children do not sum to 1:
    // they are shared with the other positions.
    const perSlot = tf.sum(r.routing, -1).dataSync();
    assert.ok(perSlot.some((v) => v < 0.99), 'some slot holds only part of its child');
  }
  const fc = randomCase(13, [3, 2, 10, 4, 16], null);
  const r = emRouting(T(fc.votes, fc.shape) as tf.Tensor5D, T(fc.acts, fc.shape.slice(0, 3) as [number, number, number]) as tf.Tensor3D, options(fc, T(fc.betaU), T(fc.betaA)));
  for (const s of tf.sum(r.routing, -1).dataSync()) assert.ok(Math.abs(s - 1) < 1e-5, `fully connected: a child's weights sum to ${s}`);
});

await testEachBackend('parents at different positions compete for a shared child', () => {
  // Two windows (K = 3, stride 1) over a 3x4 grid: columns 1 and 2 are in
  // both. Every child votes 0 for every parent except the shared child at
  // (1, 1), whose votes agree with the other children only for the parent
  // at position 0; at position 1 its votes are far off. Routing must move
  // that child to position 0, so at position 1 it keeps almost nothing, and
  // position 1's parents each get a fair share of its other children.
  const g: EmGeometry = { inHeight: 3, inWidth: 4, inTypes: 1, kernel: 3, stride: 1, outHeight: 1, outWidth: 2 };
  const [P, N, J, D] = [2, 9, 2, 4];
  const votes = new Float32Array(P * N * J * D);
  const rng = new Rng(14);
  for (let i = 0; i < votes.length; i++) votes[i] = 0.01 * rng.normal();
  // Child (1, 1) is slot (ky=1, kx=1) = 4 at position 0 and slot (1, 0) = 3 at position 1.
  for (let j = 0; j < J; j++) for (let h = 0; h < D; h++) votes[((1 * N + 3) * J + j) * D + h] = 3;
  const r = emRouting(T(votes, [1, P, N, J, D]) as tf.Tensor5D, tf.fill([1, P, N], 0.9) as tf.Tensor3D, { betaU: tf.zeros([J]), betaA: tf.zeros([J]), geometry: g, iterations: 3 });
  const R = r.routing.arraySync() as number[][][][];
  const atP0 = R[0][0][4][0] + R[0][0][4][1];
  const atP1 = R[0][1][3][0] + R[0][1][3][1];
  assert.ok(Math.abs(atP0 + atP1 - 1) < 1e-5, `the shared child's weights sum to 1 over both positions (${atP0} + ${atP1})`);
  assert.ok(atP0 > 0.99, `the shared child goes to the position whose parents it agrees with (${atP0})`);
  // A child seen by one position only routes all of itself there.
  assert.ok(Math.abs(R[0][0][0][0] + R[0][0][0][1] - 1) < 1e-5);
});

await testEachBackend('hand-worked two-cluster case: each vote goes to its cluster', () => {
  // Four children, two parents, 1-D poses, all children fully active, betas
  // zero. Parent 0's votes: [1, 1, 5, -5]; parent 1's: [5, -5, -1, -1].
  // Children 0 and 1 agree on parent 0, children 2 and 3 on parent 1.
  const votes = tf.tensor5d([1, 5, 1, -5, 5, -1, -5, -1], [1, 1, 4, 2, 1]);
  const acts = tf.ones([1, 1, 4]) as tf.Tensor3D;
  const betas = { betaU: tf.zeros([2]), betaA: tf.zeros([2]) };
  // After one M-step (R = 1/2): mu_0 = (1 + 1 + 5 - 5) / 4 = 0.5,
  // mu_1 = (5 - 5 - 1 - 1) / 4 = -0.5, both variances (0.25 + 0.25 + 20.25
  // + 30.25) / 4 = 12.75, equal activations by symmetry. The E-step then
  // gives R_i0 = 1 / (1 + exp((d_i0^2 - d_i1^2) / (2 * 12.75))) with squared
  // distances d_i0^2 = 0.25, 0.25, 20.25, 30.25 and d_i1^2 = 30.25, 20.25,
  // 0.25, 0.25.
  const first = emRouting(votes, acts, { ...betas, iterations: 2 });
  const v = 12.75 + 1e-4;
  const d0 = [0.25, 0.25, 20.25, 30.25];
  const d1 = [30.25, 20.25, 0.25, 0.25];
  const expected = d0.flatMap((a, i) => {
    const r0 = 1 / (1 + Math.exp((a - d1[i]) / (2 * v)));
    return [r0, 1 - r0];
  });
  assertClose(first.routing.dataSync(), expected, { rtol: 1e-4, atol: 1e-5, what: 'R after one E-step' });
  assert.ok(Math.abs(expected[0] - 0.7643) < 1e-3 && Math.abs(expected[4] - 0.3134) < 1e-3, 'the hand-computed values');
  // More iterations: each child ends up with its cluster, and each parent's
  // pose is its cluster's centre.
  const r = emRouting(votes, acts, { ...betas, iterations: 5 });
  const R = r.routing.dataSync();
  for (const [child, parent] of [[0, 0], [1, 0], [2, 1], [3, 1]]) {
    assert.ok(R[child * 2 + parent] > 0.99, `child ${child} goes to parent ${parent}: R = ${R[child * 2 + parent]}`);
  }
  assertClose(r.poses.dataSync(), [1, -1], { rtol: 1e-2, atol: 1e-2, what: 'cluster centres' });
});

await testEachBackend('activations lie in (0, 1); values and gradients stay finite on hostile inputs', () => {
  const base = randomCase(15, [2, 6, 18, 3, 16], CONV);
  const [b, p, n, j, d] = base.shape;
  const variants: [string, Float64Array, Float64Array][] = [
    ['random', base.votes, base.acts],
    ['huge votes', base.votes.map((v) => v * 1e4), base.acts],
    ['tiny votes', base.votes.map((v) => v * 1e-6), base.acts],
    ['all-equal votes', new Float64Array(base.votes.length).fill(0.7), base.acts],
    ['tiny activations', base.votes, base.acts.map(() => 1e-30)],
    ['zero activations', base.votes, new Float64Array(base.acts.length)],
    ['saturated activations', base.votes, base.acts.map(() => 1)],
    ['huge activations', base.votes, base.acts.map(() => 1e6)],
  ];
  for (const [name, votes, acts] of variants) {
    for (const [betaScale, lambda] of [[1, undefined], [1e3, [1, 10, 100]]] as const) {
      const bu = T(base.betaU.map((x) => x * betaScale));
      const ba = T(base.betaA.map((x) => x * betaScale));
      const opts = { betaU: bu, betaA: ba, geometry: CONV, iterations: 3, inverseTemperature: lambda as number[] | undefined };
      const v = T(votes, [b, p, n, j, d]);
      const a = T(acts, [b, p, n]);
      const r = emRouting(v as tf.Tensor5D, a as tf.Tensor3D, opts);
      const label = `${name}${betaScale > 1 ? ', huge betas and lambda' : ''}`;
      assert.ok(r.poses.dataSync().every(Number.isFinite), `${label}: poses finite`);
      assert.ok(r.routing.dataSync().every((x) => Number.isFinite(x) && x >= 0 && x <= 1), `${label}: routing weights in [0, 1]`);
      for (const x of r.activations.dataSync()) assert.ok(x > 0 && x < 1, `${label}: activation ${x} is in (0, 1)`);
      const grads = tf.grads((vv: tf.Tensor, aa: tf.Tensor, u: tf.Tensor, w: tf.Tensor) => {
        const o = emRouting(vv as tf.Tensor5D, aa as tf.Tensor3D, { ...opts, betaU: u, betaA: w });
        return tf.add(tf.sum(o.poses), tf.sum(o.activations)) as tf.Scalar;
      })([v, a, bu, ba]);
      grads.forEach((g, k) => assert.ok(g.dataSync().every(Number.isFinite), `${label}: gradient ${k} finite`));
    }
  }
  // All-equal votes: the poses are the common vote.
  const eq = emRouting(tf.fill([1, 6, 18, 3, 16], 0.7) as tf.Tensor5D, tf.fill([1, 6, 18], 0.5) as tf.Tensor3D, { betaU: tf.zeros([3]), betaA: tf.zeros([3]), geometry: CONV });
  assertClose(eq.poses.dataSync(), new Float32Array(6 * 3 * 16).fill(0.7), { rtol: 1e-5, what: 'poses of all-equal votes' });
});

await testEachBackend('unfold and fold are adjoint; fold with max picks each child\'s largest slot', () => {
  for (const g of [CONV, STRIDED]) {
    const rng = new Rng(16);
    const P = g.outHeight * g.outWidth;
    const N = g.kernel * g.kernel * g.inTypes;
    const x = T(Array.from({ length: 2 * g.inHeight * g.inWidth * g.inTypes * 3 }, () => rng.normal()), [2, g.inHeight, g.inWidth, g.inTypes, 3]);
    const y = T(Array.from({ length: 2 * P * N * 3 }, () => rng.normal()), [2, P, N, 3]);
    const lhs = tf.sum(tf.mul(unfoldChildren(x, g), y)).dataSync()[0];
    const rhs = tf.sum(tf.mul(x, foldChildren(y, g))).dataSync()[0];
    assert.ok(Math.abs(lhs - rhs) < 1e-3 * Math.max(1, Math.abs(lhs)), `<unfold x, y> = ${lhs}, <x, fold y> = ${rhs}`);
    // Unfolding then folding ones counts each child's parent positions.
    const counts = foldChildren(unfoldChildren(tf.ones([1, g.inHeight, g.inWidth, g.inTypes]), g), g).dataSync();
    const expected: number[] = [];
    for (let yy = 0; yy < g.inHeight; yy++) {
      for (let xx = 0; xx < g.inWidth; xx++) {
        const rows = Array.from({ length: g.outHeight }, (_, oy) => oy * g.stride <= yy && yy < oy * g.stride + g.kernel).filter(Boolean).length;
        const cols = Array.from({ length: g.outWidth }, (_, ox) => ox * g.stride <= xx && xx < ox * g.stride + g.kernel).filter(Boolean).length;
        for (let t = 0; t < g.inTypes; t++) expected.push(rows * cols);
      }
    }
    assert.deepEqual(Array.from(counts), expected);
    const mx = foldChildren(unfoldChildren(x, g), g, 'max').dataSync();
    const xs = x.dataSync();
    for (let i = 0; i < mx.length; i++) if (expected[Math.floor(i / 3)] > 0) assert.ok(Math.abs(mx[i] - xs[i]) < 1e-6);
  }
});

test('history: the assignments of every M-step, from the uniform start to the final routing', () => {
  const geometry: EmGeometry = { inHeight: 4, inWidth: 4, inTypes: 2, kernel: 3, stride: 1, outHeight: 2, outWidth: 2 };
  const c = randomCase(7, [2, 4, 18, 3, 16], geometry, { iterations: 3 });
  const votes = T(c.votes, c.shape) as tf.Tensor5D;
  const acts = T(c.acts, [2, 4, 18]) as tf.Tensor3D;
  const options: EmRoutingOptions = { betaU: T(c.betaU), betaA: T(c.betaA), iterations: 3, geometry, history: true };
  const r = emRouting(votes, acts, options);
  const plain = emRouting(votes, acts, { ...options, history: false });
  assert.equal(r.routingHistory?.length, 3);
  assert.equal(plain.routingHistory, undefined);
  const first = r.routingHistory![0].arraySync() as number[][][][];
  // Uniform start: a slot's child is shared evenly by every parent receiving it,
  // so all J types at one slot get the same weight.
  for (const batch of first) for (const pos of batch) for (const slot of pos) for (const v of slot) assert.ok(Math.abs(v - slot[0]) < 1e-7);
  assertClose(r.routingHistory![2].dataSync(), r.routing.dataSync(), { rtol: 1e-6, atol: 1e-7, what: 'last history entry vs routing' });
  assertClose(r.routing.dataSync(), plain.routing.dataSync(), { what: 'routing with and without history' });
  assert.notDeepEqual(r.routingHistory![1].arraySync(), first, 'the E-step moved the assignments');
  tf.dispose([votes, acts, r.poses, r.activations, r.routing, r.variances!, ...r.routingHistory!, plain.poses, plain.activations, plain.routing, options.betaU, options.betaA]);
  if (plain.variances) plain.variances.dispose();
});

test('bad inputs are refused with one clear message', () => {
  const betas = { betaU: tf.zeros([3]), betaA: tf.zeros([3]) };
  assert.throws(() => emRouting(tf.zeros([1, 2, 3, 16]) as never, tf.zeros([1, 2, 3]) as tf.Tensor3D, betas), /votes must be \[batch, P, N, J, D\]/);
  assert.throws(() => emRouting(tf.zeros([1, 2, 4, 3, 16]) as tf.Tensor5D, tf.zeros([1, 2, 3]) as tf.Tensor3D, betas), /activations must be \[batch, P, N\] = \[1, 2, 4\]/);
  assert.throws(() => emRouting(tf.zeros([1, 1, 4, 3, 16]) as tf.Tensor5D, tf.zeros([1, 1, 4]) as tf.Tensor3D, { betaU: tf.zeros([2]), betaA: tf.zeros([3]) }), /betaU must hold one value per parent type \[3\]/);
  assert.throws(() => emRouting(tf.zeros([1, 1, 4, 3, 16]) as tf.Tensor5D, tf.zeros([1, 1, 4]) as tf.Tensor3D, { ...betas, iterations: 0 }), /iterations must be a positive integer/);
  assert.throws(() => emRouting(tf.zeros([1, 1, 4, 3, 16]) as tf.Tensor5D, tf.zeros([1, 1, 4]) as tf.Tensor3D, { ...betas, geometry: CONV }), /geometry gives P = 6, N = 18/);
  assert.throws(() => emRouting(tf.zeros([1, 1, 4, 3, 16]) as tf.Tensor5D, tf.zeros([1, 1, 4]) as tf.Tensor3D, { ...betas, varianceFloor: 0 }), /varianceFloor must be positive/);
  assert.throws(() => inverseTemperatureSchedule(3, [1, 2]), /has 2 values for 3 iterations/);
  assert.throws(() => inverseTemperatureSchedule(2, { start: 1, end: -1 }), /must be positive and finite/);
  assert.throws(() => unfoldChildren(tf.zeros([1, 4, 4, 2]), CONV), /expected \[batch, 5, 4, 2/);
  assert.throws(() => emRouting(tf.zeros([1, 1, 9, 3, 16]) as tf.Tensor5D, tf.zeros([1, 1, 9]) as tf.Tensor3D, { ...betas, geometry: { ...CONV, inHeight: 2, outHeight: 1, outWidth: 1, inTypes: 1 } }), /need a 3x3 child grid, got 2x4/);
});

test('the inverse-temperature schedules', () => {
  const authors = inverseTemperatureSchedule(3, { scale: 0.01 });
  assertClose(authors, [0.01 * 0.05, 0.01 * (1 - 0.95 ** 2), 0.01 * (1 - 0.95 ** 3)], { rtol: 1e-12, what: 'lambda = 0.01 (1 - 0.95^(t+1))' });
  assert.deepEqual(inverseTemperatureSchedule(3, { start: 1, end: 2 }), [1, 1.5, 2]);
  assert.deepEqual(inverseTemperatureSchedule(1, { start: 1, end: 2 }), [2]);
  // The reference and the dispatching function agree (no fused kernel in this backend set).
  const c = randomCase(17, [1, 1, 5, 2, 16], null);
  const args = [T(c.votes, c.shape) as tf.Tensor5D, T(c.acts, c.shape.slice(0, 3) as [number, number, number]) as tf.Tensor3D, options(c, T(c.betaU), T(c.betaA))] as const;
  assertClose(emRouting(...args).activations.dataSync(), emRoutingReference(...args).activations.dataSync(), { rtol: 1e-3, what: 'dispatch vs reference' });
});
