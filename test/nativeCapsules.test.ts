/**
 * The native fused capsule kernels against the plain-tfjs references on the
 * same backend (fused kernels switched off): values and gradients of squash
 * (both kinds), prediction vectors, dynamic routing, self-attention routing
 * (also against the float64 fixture), bias + ReLU, training-mode batch norm,
 * and the Adam update, on random shapes and edge cases.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { FUSED_KERNELS, hasFusedKernel, setFusedKernelsEnabled } from '../src/backend/fused.js';
import { dynamicRouting } from '../src/capsules/dynamicRouting.js';
import { emRouting } from '../src/capsules/emRouting.js';
import type { EmGeometry } from '../src/capsules/emGeometry.js';
import { matrixVotes } from '../src/capsules/matrixVotes.js';
import { predictionVectors } from '../src/capsules/predictionVectors.js';
import { selfAttentionRouting } from '../src/capsules/selfAttentionRouting.js';
import { efficientSquash, squash } from '../src/capsules/squash.js';
import { batchNormTraining } from '../src/layers/batchNormalization.js';
import { biasRelu } from '../src/layers/biasRelu.js';
import { adamUpdateReference } from '../src/training/adam.js';
import { loadAddon, nativeKernelNames } from '../src/native/index.js';
import { tidyRecord } from '../src/util/tidy.js';
import { assertClose } from './helpers.js';
import { nativeTest, randn, Rng, size } from './nativeUtil.js';

const TOL = { rtol: 1e-4, atol: 1e-6 };

/** fn with the fused kernels on, then off (the reference), as arrays. */
function fusedAndReference<T>(fn: () => T): [T, T] {
  setFusedKernelsEnabled(true);
  try {
    const fused = tidyRecord(fn);
    setFusedKernelsEnabled(false);
    const ref = tidyRecord(fn);
    return [fused, ref];
  } finally {
    setFusedKernelsEnabled(true);
  }
}

nativeTest('the native backend provides every fused kernel, in native code', () => {
  const names = Object.values(FUSED_KERNELS);
  assert.ok(names.length >= 15, 'the registry lists every fused kernel');
  const addon = loadAddon();
  assert.ok(addon.ok);
  const inNative = new Set(nativeKernelNames(addon.addon));
  for (const name of names) {
    assert.ok(hasFusedKernel(name), `${name} is registered for native`);
    assert.ok(inNative.has(name), `${name} runs in native code`);
  }
});

nativeTest('squash: values and gradients equal the reference (random shapes, zero, tiny and huge capsules)', () => {
  const rng = new Rng(11);
  const cases: { shape: number[]; data?: (n: number) => Float32Array }[] = [
    { shape: [4, 8] },
    { shape: [3, 5, 16] },
    { shape: [1, 1] },
    { shape: [2, 3, 1, 7] },
    { shape: [37, 3] },
    { shape: [6, 4], data: (n) => new Float32Array(n) },
    { shape: [5, 8], data: (n) => randn(rng, n, 1e-20) },
    { shape: [5, 8], data: (n) => randn(rng, n, 1e18) },
    { shape: [200, 16], data: (n) => randn(rng, n, 0.05) },
  ];
  for (const c of cases) {
    const n = size(c.shape);
    const s = tf.tensor(c.data ? c.data(n) : randn(rng, n), c.shape);
    const up = tf.tensor(randn(rng, n), c.shape);
    const [fused, ref] = fusedAndReference(() => {
      const v = squash(s);
      const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(squash(x), up)))(s);
      return [v.dataSync(), g.dataSync()] as const;
    });
    assertClose(fused[0], ref[0], { ...TOL, what: `squash ${c.shape}` });
    assertClose(fused[1], ref[1], { ...TOL, what: `squash grad ${c.shape}` });
  }
});

nativeTest('biasRelu: values and both gradients equal the reference; no tensor is left behind', () => {
  const rng = new Rng(12);
  // Channel counts off the vector width, row counts off the partial-sum block (256), ties at zero.
  const shapes = [[5, 3], [2, 9, 9, 17], [300, 64], [1, 1], [3, 600, 8]];
  for (const shape of shapes) {
    const n = size(shape);
    const C = shape[shape.length - 1];
    const values = randn(rng, n);
    for (let i = 0; i < n; i += 7) values[i] = 0; // some x + bias land on both sides of 0
    const x = tf.tensor(values, shape);
    const bias = tf.tensor1d(randn(rng, C, 0.5));
    const up = tf.tensor(randn(rng, n), shape);
    const before = tf.memory().numTensors;
    const [fused, ref] = fusedAndReference(() => {
      const y = biasRelu(x, bias);
      const [gx, gb] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(biasRelu(a, b as tf.Tensor1D), up)))([x, bias]);
      return [y.dataSync(), gx.dataSync(), gb.dataSync()] as const;
    });
    assert.equal(tf.memory().numTensors, before, `tensors left behind for [${shape}]`);
    assertClose(fused[0], ref[0], { ...TOL, what: `biasRelu ${shape}` });
    assertClose(fused[1], ref[1], { ...TOL, what: `biasRelu dx ${shape}` });
    assertClose(fused[2], ref[2], { rtol: 1e-4, atol: 1e-5, what: `biasRelu dbias ${shape}` });
    tf.dispose([x, bias, up]);
  }
});

nativeTest('squash of a zero capsule is zero with a zero gradient; huge capsules have unit length', () => {
  const s = tf.tensor2d([[0, 0, 0], [3e30, -4e30, 0]]);
  const v = squash(s).arraySync() as number[][];
  assert.deepEqual(v[0], [0, 0, 0]);
  assert.ok(Math.abs(Math.hypot(...v[1]) - 1) < 1e-6);
  const g = tf.grad((x: tf.Tensor) => tf.sum(squash(x)))(s).dataSync();
  assert.ok(g.every(Number.isFinite));
  assert.ok(Math.abs(g[0]) < 1e-6 && Math.abs(g[1]) < 1e-6 && Math.abs(g[2]) < 1e-6);
});

/** True when running fn called the kernel `name` (so a comparison is not of the reference with itself). */
function runsKernel(name: string, fn: () => unknown): boolean {
  const engine = tf.engine();
  let called = false;
  const original = engine.runKernel.bind(engine);
  engine.runKernel = ((kernelName: string, ...rest: unknown[]) => {
    if (kernelName === name) called = true;
    return (original as (...a: unknown[]) => unknown)(kernelName, ...rest);
  }) as typeof engine.runKernel;
  try {
    tf.tidy(() => {
      fn();
    });
  } finally {
    engine.runKernel = original;
  }
  return called;
}

nativeTest('efficientSquash: values and gradients equal the reference (random shapes, zero, tiny and huge capsules)', () => {
  const rng = new Rng(41);
  const cases: { shape: number[]; data?: (n: number) => Float32Array }[] = [
    { shape: [4, 8] },
    { shape: [100, 16, 8] },
    { shape: [1, 1] },
    { shape: [3, 5, 7] },
    { shape: [6, 4], data: (n) => new Float32Array(n) },
    { shape: [5, 8], data: (n) => randn(rng, n, 1e-6) },
    { shape: [5, 8], data: (n) => randn(rng, n, 30) },
    { shape: [5, 8], data: (n) => randn(rng, n, 1e18) },
  ];
  assert.ok(runsKernel(FUSED_KERNELS.efficientSquash, () => efficientSquash(tf.ones([2, 3]))));
  for (const c of cases) {
    const n = size(c.shape);
    const s = tf.tensor(c.data ? c.data(n) : randn(rng, n), c.shape);
    const up = tf.tensor(randn(rng, n), c.shape);
    const [fused, ref] = fusedAndReference(() => {
      const v = efficientSquash(s);
      const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(efficientSquash(x), up)))(s);
      return [v.dataSync(), g.dataSync()] as const;
    });
    assertClose(fused[0], ref[0], { ...TOL, what: `efficientSquash ${c.shape}` });
    assertClose(fused[1], ref[1], { ...TOL, what: `efficientSquash grad ${c.shape}` });
    tf.dispose([s, up]);
  }
});

nativeTest('batchNormTraining: y, the batch statistics and every gradient equal the reference (odd shapes, constant channels, large means)', () => {
  const rng = new Rng(42);
  // Channel counts off the vector width, row counts off the partial-sum
  // block (256), the model's own maps, a channel constant over the batch
  // (variance 0: eps alone keeps y finite), values far from zero.
  const cases: { shape: number[]; mean?: number; constant?: boolean }[] = [
    { shape: [5, 3] },
    { shape: [2, 9, 9, 17] },
    { shape: [300, 64] },
    { shape: [2, 1] },
    { shape: [10, 24, 24, 32] },
    { shape: [4, 6, 6, 8], constant: true },
    { shape: [50, 7], mean: 1000 },
  ];
  assert.ok(runsKernel(FUSED_KERNELS.batchNormTraining, () => batchNormTraining(tf.ones([2, 3]), tf.ones([3]) as tf.Tensor1D, tf.zeros([3]) as tf.Tensor1D, 1e-3)));
  for (const c of cases) {
    const n = size(c.shape);
    const C = c.shape[c.shape.length - 1];
    const values = randn(rng, n);
    for (let i = 0; i < n; i++) {
      values[i] += c.mean ?? 0;
      if (c.constant && i % C === 1) values[i] = 0.25;
    }
    const x = tf.tensor(values, c.shape);
    const gamma = tf.tensor1d(randn(rng, C, 0.3).map((g) => 1 + g));
    const beta = tf.tensor1d(randn(rng, C));
    const upY = tf.tensor(randn(rng, n), c.shape);
    const upMean = tf.tensor1d(randn(rng, C));
    const upVariance = tf.tensor1d(randn(rng, C));
    const before = tf.memory().numTensors;
    const [fused, ref] = fusedAndReference(() => {
      const out = batchNormTraining(x, gamma as tf.Tensor1D, beta as tf.Tensor1D, 1e-3);
      // Through y only (the layer's case), and through the statistics too.
      const throughY = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(batchNormTraining(a, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3).y, upY)))([x, gamma, beta]);
      const throughAll = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const r = batchNormTraining(a, g as tf.Tensor1D, b as tf.Tensor1D, 1e-3);
        return tf.addN([tf.sum(tf.mul(r.y, upY)), tf.sum(tf.mul(r.mean, upMean)), tf.sum(tf.mul(r.variance, upVariance))]);
      })([x, gamma, beta]);
      return { y: out.y.dataSync(), mean: out.mean.dataSync(), variance: out.variance.dataSync(), throughY: throughY.map((g) => g.dataSync()), throughAll: throughAll.map((g) => g.dataSync()) };
    });
    assert.equal(tf.memory().numTensors, before, `tensors left behind for [${c.shape}]`);
    const what = `[${c.shape}]${c.constant ? ' constant channel' : ''}${c.mean ? ` mean ${c.mean}` : ''}`;
    assert.ok(fused.y.every(Number.isFinite), `${what}: y is finite`);
    const tol = { rtol: 1e-4, atol: 1e-5 };
    assertClose(fused.mean, ref.mean, { rtol: 1e-5, atol: 1e-6, what: `mean ${what}` });
    assertClose(fused.variance, ref.variance, { ...tol, what: `variance ${what}` });
    assertClose(fused.y, ref.y, { ...tol, what: `y ${what}` });
    ['dx', 'dgamma', 'dbeta'].forEach((name, k) => {
      assertClose(fused.throughY[k], ref.throughY[k], { ...tol, what: `${name} through y ${what}` });
      assertClose(fused.throughAll[k], ref.throughAll[k], { ...tol, what: `${name} through y and the statistics ${what}` });
    });
    tf.dispose([x, gamma, beta, upY, upMean, upVariance]);
  }
});

nativeTest('batchNormTraining normalizes each channel to the mean beta and the standard deviation |gamma| (biased, as eps allows)', () => {
  const rng = new Rng(43);
  const x = tf.tensor4d(randn(rng, 8 * 5 * 5 * 3, 4), [8, 5, 5, 3]);
  const gamma = tf.tensor1d([2, -0.5, 1]);
  const beta = tf.tensor1d([1, 0, -3]);
  const { y } = batchNormTraining(x, gamma, beta, 1e-3);
  const m = tf.moments(y, [0, 1, 2]);
  assertClose(m.mean.dataSync(), [1, 0, -3], { rtol: 1e-5, atol: 1e-5, what: 'channel means' });
  const variance = tf.moments(x, [0, 1, 2]).variance.dataSync();
  const expected = [2, -0.5, 1].map((g, c) => (g * g * variance[c]) / (variance[c] + 1e-3));
  assertClose(m.variance.dataSync(), expected, { rtol: 1e-4, what: 'channel variances' });
});

interface RoutingFixture { shape: [number, number, number, number]; u_hat: number[]; b: number[]; v: number[]; c: number[]; upstream: number[]; grad_u_hat: number[]; grad_b: number[] }

nativeTest('selfAttentionRouting: the fused kernel matches the float64 fixture (v, couplings, gradients of uHat and priors)', () => {
  const fixture = JSON.parse(readFileSync(new URL('../../test/fixtures/efficient-primitives.json', import.meta.url), 'utf8')) as { routing: RoutingFixture[] };
  assert.ok(fixture.routing.length >= 5);
  for (const c of fixture.routing) {
    const [batch, inCaps, outCaps, dim] = c.shape;
    const uHat = tf.tensor4d(c.u_hat, c.shape);
    const priors = tf.tensor2d(c.b, [inCaps, outCaps]);
    const up = tf.tensor3d(c.upstream, [batch, outCaps, dim]);
    assert.ok(runsKernel(FUSED_KERNELS.selfAttentionRouting, () => selfAttentionRouting(uHat, priors)), 'the fused kernel runs');
    const { v, couplings } = selfAttentionRouting(uHat, priors);
    const [gu, gb] = tf.grads((x: tf.Tensor, p: tf.Tensor) => tf.sum(tf.mul(selfAttentionRouting(x as tf.Tensor4D, p as tf.Tensor2D).v, up)))([uHat, priors]);
    const what = `fixture [${c.shape}]`;
    assertClose(v.dataSync(), c.v, { ...TOL, what: `v ${what}` });
    assertClose(couplings.dataSync(), c.c, { ...TOL, what: `couplings ${what}` });
    assertClose(gu.dataSync(), c.grad_u_hat, { ...TOL, what: `duHat ${what}` });
    assertClose(gb.dataSync(), c.grad_b, { ...TOL, what: `dpriors ${what}` });
    tf.dispose([uHat, priors, up, v, couplings, gu, gb]);
  }
});

nativeTest('selfAttentionRouting: v, couplings and the gradients (through v and the couplings) equal the reference', () => {
  const rng = new Rng(44);
  // [batch, inCaps, outCaps, dim], scale of uHat: the MNIST model's shape,
  // single capsules, dimensions off the vector width, large agreements
  // (a saturated softmax), all-zero predictions.
  const cases: [number[], number][] = [
    [[100, 16, 10, 16], 0.3],
    [[1, 1, 1, 1], 1],
    [[3, 5, 4, 7], 1],
    [[2, 9, 1, 3], 1],
    [[2, 6, 5, 16], 20],
    [[2, 4, 3, 5], 0],
  ];
  for (const [shape, scale] of cases) {
    const [B, I, J, D] = shape;
    const uHat = tf.tensor4d(randn(rng, B * I * J * D, scale), [B, I, J, D]);
    const priors = tf.tensor2d(randn(rng, I * J, 0.5), [I, J]);
    const upV = tf.tensor3d(randn(rng, B * J * D), [B, J, D]);
    const upC = tf.tensor3d(randn(rng, B * I * J), [B, I, J]);
    const [fused, ref] = fusedAndReference(() => {
      const out = selfAttentionRouting(uHat, priors);
      const throughV = tf.grads((x: tf.Tensor, p: tf.Tensor) => tf.sum(tf.mul(selfAttentionRouting(x as tf.Tensor4D, p as tf.Tensor2D).v, upV)))([uHat, priors]);
      const throughBoth = tf.grads((x: tf.Tensor, p: tf.Tensor) => {
        const r = selfAttentionRouting(x as tf.Tensor4D, p as tf.Tensor2D);
        return tf.add(tf.sum(tf.mul(r.v, upV)), tf.sum(tf.mul(r.couplings, upC)));
      })([uHat, priors]);
      return { v: out.v.dataSync(), c: out.couplings.dataSync(), throughV: throughV.map((g) => g.dataSync()), throughBoth: throughBoth.map((g) => g.dataSync()) };
    });
    const what = `[${shape}] scale ${scale}`;
    assertClose(fused.v, ref.v, { ...TOL, what: `v ${what}` });
    assertClose(fused.c, ref.c, { ...TOL, what: `couplings ${what}` });
    ['duHat', 'dpriors'].forEach((name, k) => {
      assert.ok(fused.throughBoth[k].every(Number.isFinite), `${name} ${what} is finite`);
      assertClose(fused.throughV[k], ref.throughV[k], { ...TOL, what: `${name} through v ${what}` });
      assertClose(fused.throughBoth[k], ref.throughBoth[k], { ...TOL, what: `${name} through v and the couplings ${what}` });
    });
    tf.dispose([uHat, priors, upV, upC]);
  }
});

nativeTest('predictionVectors: values and both gradients equal the reference', () => {
  const rng = new Rng(12);
  // [batch, inCaps, outCaps, outDim, inDim]
  const cases = [
    [2, 6, 3, 4, 5],
    [1, 1, 1, 1, 1],
    [3, 1, 10, 16, 8],
    [5, 7, 1, 3, 2],
    [64, 32, 10, 16, 8],
  ];
  for (const [B, I, J, Dout, Din] of cases) {
    const u = tf.tensor3d(randn(rng, B * I * Din), [B, I, Din]);
    const W = tf.tensor4d(randn(rng, I * J * Dout * Din, 0.1), [I, J, Dout, Din]);
    const up = tf.tensor4d(randn(rng, B * I * J * Dout), [B, I, J, Dout]);
    const [fused, ref] = fusedAndReference(() => {
      const y = predictionVectors(u, W);
      const [gu, gW] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(predictionVectors(a as tf.Tensor3D, b as tf.Tensor4D), up)))([u, W]);
      return [y.dataSync(), gu.dataSync(), gW.dataSync()] as const;
    });
    const what = `[${B},${I},${J},${Dout},${Din}]`;
    assertClose(fused[0], ref[0], { ...TOL, what: `uHat ${what}` });
    assertClose(fused[1], ref[1], { ...TOL, what: `du ${what}` });
    assertClose(fused[2], ref[2], { ...TOL, what: `dW ${what}` });
  }
});

nativeTest('dynamicRouting: v, every iteration\'s couplings and the gradient equal the reference', () => {
  const rng = new Rng(13);
  // [batch, inCaps, outCaps, dim], iterations, stopGradientInner, scale of uHat
  const cases: [number[], number, boolean, number][] = [
    [[2, 6, 3, 4], 3, false, 0.5],
    [[2, 6, 3, 4], 3, true, 0.5],
    [[1, 1, 1, 1], 3, false, 1],
    [[3, 1, 4, 5], 2, false, 1],
    [[2, 9, 1, 3], 3, false, 1],
    [[2, 5, 4, 3], 1, false, 1],
    [[2, 5, 4, 3], 5, false, 2],
    [[2, 5, 4, 3], 5, true, 2],
    [[16, 40, 10, 16], 3, false, 0.1],
    [[16, 40, 10, 16], 3, true, 0.1],
    [[128, 12, 5, 8], 3, false, 0.5],
    [[3, 7, 17, 16], 3, false, 0.5],
  ];
  for (const [shape, iterations, stopGradientInner, scale] of cases) {
    const [B, I, J, D] = shape;
    const uHat = tf.tensor4d(randn(rng, B * I * J * D, scale), [B, I, J, D]);
    const up = tf.tensor3d(randn(rng, B * J * D), [B, J, D]);
    const [fused, ref] = fusedAndReference(() => {
      const out = dynamicRouting(uHat, { iterations, stopGradientInner });
      const g = tf.grad((x: tf.Tensor) => {
        const o = dynamicRouting(x as tf.Tensor4D, { iterations, stopGradientInner });
        return tf.sum(tf.mul(o.v, up));
      })(uHat);
      return { v: out.v.dataSync(), c: out.couplings.map((c) => c.dataSync()), g: g.dataSync() };
    });
    const what = `[${shape}] r=${iterations} stop=${stopGradientInner}`;
    assertClose(fused.v, ref.v, { ...TOL, what: `v ${what}` });
    assert.equal(fused.c.length, iterations);
    fused.c.forEach((c, r) => assertClose(c, ref.c[r], { ...TOL, what: `c${r} ${what}` }));
    assertClose(fused.g, ref.g, { ...TOL, what: `grad ${what}` });
  }
});

nativeTest('matrixVotes equals M W by hand and the matmul route, with gradients', () => {
  const rng = new Rng(19);
  for (const [B, P, N, J] of [[2, 3, 5, 4], [1, 1, 7, 3], [3, 4, 2, 1]]) {
    const M = tf.tensor4d(randn(rng, B * P * N * 16), [B, P, N, 16]);
    const W = tf.tensor4d(randn(rng, N * J * 16), [N, J, 4, 4]);
    const up = tf.tensor(randn(rng, B * P * N * J * 16), [B, P, N, J, 16]);
    const [fused, ref] = fusedAndReference(() => {
      const v = matrixVotes(M, W);
      const [gM, gW] = tf.grads((m: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(matrixVotes(m as tf.Tensor4D, w), up)))([M, W]);
      return { v: v.dataSync(), gM: gM.dataSync(), gW: gW.dataSync() };
    });
    const m = M.dataSync();
    const w = W.dataSync();
    const byHand = new Float64Array(B * P * N * J * 16);
    for (let bp = 0; bp < B * P; bp++)
      for (let n = 0; n < N; n++)
        for (let j = 0; j < J; j++)
          for (let a = 0; a < 4; a++)
            for (let e = 0; e < 4; e++) {
              let acc = 0;
              for (let c = 0; c < 4; c++) acc += m[(bp * N + n) * 16 + a * 4 + c] * w[(n * J + j) * 16 + c * 4 + e];
              byHand[((bp * N + n) * J + j) * 16 + a * 4 + e] = acc;
            }
    const what = `[${B}, ${P}, ${N}, ${J}]`;
    assertClose(fused.v, byHand, { ...TOL, what: `votes ${what} vs M W` });
    assertClose(ref.v, byHand, { ...TOL, what: `matmul route ${what} vs M W` });
    assertClose(fused.gM, ref.gM, { ...TOL, what: `dM ${what}` });
    assertClose(fused.gW, ref.gW, { ...TOL, what: `dW ${what}` });
  }
});

nativeTest('emRouting: poses, activations, routing and all four gradients equal the reference', () => {
  const rng = new Rng(17);
  const conv: EmGeometry = { inHeight: 5, inWidth: 5, inTypes: 3, kernel: 3, stride: 2, outHeight: 2, outWidth: 2 };
  const overlap: EmGeometry = { inHeight: 4, inWidth: 5, inTypes: 2, kernel: 3, stride: 1, outHeight: 2, outWidth: 3 };
  // [batch, P, N, J, D], geometry, iterations, scale of the votes, share of inactive children
  const cases: [number[], EmGeometry | null, number, number, number][] = [
    [[3, 1, 12, 5, 16], null, 3, 1, 0],
    [[5, 4, 27, 4, 16], conv, 3, 0.5, 0],
    [[2, 6, 18, 3, 16], overlap, 2, 1, 0.3],
    [[2, 6, 18, 3, 16], overlap, 1, 1, 0],
    [[1, 1, 7, 2, 4], null, 5, 2, 0],
  ];
  for (const [shape, geometry, iterations, scale, inactive] of cases) {
    const [B, P, N, J, D] = shape;
    const votes = tf.tensor5d(randn(rng, size(shape), scale), shape as [number, number, number, number, number]);
    const acts = tf.tensor3d(Float32Array.from({ length: B * P * N }, () => (rng.uniform(0, 1) < inactive ? 0 : rng.uniform(0.05, 0.95))), [B, P, N]);
    const betaU = tf.tensor1d(randn(rng, J));
    const betaA = tf.tensor1d(randn(rng, J));
    const up1 = tf.tensor(randn(rng, B * P * J * D), [B, P, J, D]);
    const up2 = tf.tensor(randn(rng, B * P * J), [B, P, J]);
    const [fused, ref] = fusedAndReference(() => {
      const out = emRouting(votes, acts, { betaU, betaA, geometry, iterations });
      const grads = tf.grads((v: tf.Tensor, a: tf.Tensor, bu: tf.Tensor, ba: tf.Tensor) => {
        const r = emRouting(v as tf.Tensor5D, a as tf.Tensor3D, { betaU: bu, betaA: ba, geometry, iterations });
        return tf.add(tf.sum(tf.mul(r.poses, up1)), tf.sum(tf.mul(r.activations, up2))) as tf.Scalar;
      })([votes, acts, betaU, betaA]);
      return { poses: out.poses.dataSync(), act: out.activations.dataSync(), routing: out.routing.dataSync(), grads: grads.map((g) => g.dataSync()) };
    });
    const what = `[${shape}] ${geometry ? 'conv' : 'fc'} r=${iterations}`;
    const tol = { rtol: 1e-3, atol: 1e-5 };
    assertClose(fused.poses, ref.poses, { ...tol, what: `poses ${what}` });
    assertClose(fused.act, ref.act, { ...tol, what: `activations ${what}` });
    assertClose(fused.routing, ref.routing, { ...tol, what: `routing ${what}` });
    ['votes', 'activations', 'betaU', 'betaA'].forEach((name, k) => {
      assert.ok(fused.grads[k].every(Number.isFinite), `d/d${name} ${what} is finite`);
      assertClose(fused.grads[k], ref.grads[k], { rtol: 2e-3, atol: 1e-4, what: `d/d${name} ${what}` });
    });
  }
});

nativeTest('dynamicRouting of all-zero predictions gives zero outputs, uniform couplings and finite gradients', () => {
  const uHat = tf.zeros([2, 4, 3, 5]) as tf.Tensor4D;
  const out = dynamicRouting(uHat, { iterations: 3 });
  assert.ok(out.v.dataSync().every((x) => x === 0));
  for (const c of out.couplings) assertClose(c.dataSync(), new Float32Array(2 * 4 * 3).fill(1 / 3), TOL);
  const g = tf.grad((x: tf.Tensor) => tf.sum(dynamicRouting(x as tf.Tensor4D, { iterations: 3 }).v))(uHat).dataSync();
  assert.ok(g.every(Number.isFinite));
});

nativeTest('CapsAdamUpdate equals adamUpdateReference', () => {
  const rng = new Rng(14);
  const cases = [
    { shape: [7], lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, step: 1 },
    { shape: [3, 5, 2], lr: 0.01, beta1: 0.8, beta2: 0.99, epsilon: 1e-4, step: 10 },
    { shape: [100000], lr: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, step: 1234 },
  ];
  for (const { shape, ...attrs } of cases) {
    const n = size(shape);
    const w = tf.tensor(randn(rng, n), shape);
    const g = tf.tensor(randn(rng, n, 0.1), shape);
    const m = tf.tensor(randn(rng, n, 0.01), shape);
    const v = tf.tensor(randn(rng, n, 0.01).map(Math.abs), shape);
    const fused = tf.engine().runKernel(FUSED_KERNELS.adamUpdate, { w, g, m, v }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
    const ref = adamUpdateReference(w, g, m, v, attrs);
    assert.equal(fused.length, 3);
    for (let k = 0; k < 3; k++) {
      assert.deepEqual(fused[k].shape, shape);
      assertClose(fused[k].dataSync(), ref[k].dataSync(), { rtol: 1e-5, atol: 1e-7, what: `adam output ${k} [${shape}] step ${attrs.step}` });
    }
  }
});
