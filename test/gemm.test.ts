/**
 * The native engine's GEMM (src/native/engine/gemm/blas.h) against a float64 reference:
 * every built-in kernel this CPU runs (AVX-512, AVX2 + FMA, portable, each
 * forced in turn) and OpenBLAS when the build links it, on thin, odd, prime
 * and large shapes, both transposes, leading dimensions wider than the rows,
 * alpha and beta, and empty products. Then a paper-CapsNet training step
 * through the built-in GEMM and through OpenBLAS.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadMnist } from '../src/data/mnist.js';
import { makeBatch } from '../src/data/batches.js';
import { createModel } from '../src/models/index.js';
import { loadAddon, type GemmIsa, type NativeAddon } from '../src/native/boundary/addon.js';
import { native, nativeTest, on, randn, Rng } from './nativeUtil.js';

const addon: NativeAddon | null = native.ok ? (loadAddon() as { ok: true; addon: NativeAddon }).addon : null;
const info = addon?.info();
const isas = (info?.gemmIsas ?? '').split(',').filter(Boolean) as GemmIsa[];
const paths: { name: string; gemm: 'builtin' | 'openblas'; isa: '' | GemmIsa }[] = [
  ...isas.map((isa) => ({ name: `builtin ${isa}`, gemm: 'builtin' as const, isa })),
  ...(info?.openblas ? [{ name: 'openblas', gemm: 'openblas' as const, isa: '' as const }] : []),
];

// Leave the process on the build's default GEMM, whatever a test selected.
after(() => addon?.setGemm({ library: info!.gemm, isa: info!.gemm === 'builtin' ? (info!.gemmIsa as GemmIsa) : '' }));

interface Case {
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  /** Extra elements per row beyond the width. */
  pad: number;
  alpha: number;
  beta: number;
}

/** Row-major operand of rows x cols with leading dimension cols + pad. */
function operand(rng: Rng, rows: number, cols: number, pad: number): { data: Float32Array; ld: number } {
  const ld = Math.max(1, cols + pad);
  const data = rows === 0 || cols === 0 ? new Float32Array(0) : randn(rng, (rows - 1) * ld + cols);
  return { data, ld };
}

/**
 * Checks one product against float64. Each element may differ by a few
 * float32 roundings per term of its sum: the bound is (K + 2) ulps of the
 * sum of the terms' magnitudes, far below what a wrong index would give.
 */
function check(c: Case, seed: number): void {
  const rng = new Rng(seed);
  const a = c.transA ? operand(rng, c.K, c.M, c.pad) : operand(rng, c.M, c.K, c.pad);
  const b = c.transB ? operand(rng, c.N, c.K, c.pad) : operand(rng, c.K, c.N, c.pad);
  const C = operand(rng, c.M, c.N, c.pad);
  const before = Float32Array.from(C.data);
  // beta 0 means C is not read: NaN there must not come through.
  if (c.beta === 0) C.data.fill(NaN);
  const A = (i: number, k: number) => (c.transA ? a.data[k * a.ld + i] : a.data[i * a.ld + k]);
  const B = (k: number, j: number) => (c.transB ? b.data[j * b.ld + k] : b.data[k * b.ld + j]);
  addon!.gemm({ transA: c.transA, transB: c.transB, M: c.M, N: c.N, K: c.K, alpha: c.alpha, a: a.data, lda: a.ld, b: b.data, ldb: b.ld, beta: c.beta, c: C.data, ldc: C.ld });
  const what = `M=${c.M} N=${c.N} K=${c.K} ${c.transA ? 'T' : 'N'}${c.transB ? 'T' : 'N'} pad ${c.pad} alpha ${c.alpha} beta ${c.beta}`;
  for (let i = 0; i < c.M; i++) {
    for (let j = 0; j < c.N; j++) {
      let sum = 0;
      let mag = 0;
      for (let k = 0; k < c.K; k++) {
        const t = c.alpha * A(i, k) * B(k, j);
        sum += t;
        mag += Math.abs(t);
      }
      const old = before[i * C.ld + j];
      const expected = sum + (c.beta === 0 ? 0 : c.beta * old);
      mag += Math.abs(c.beta * old);
      const got = C.data[i * C.ld + j];
      const tol = (c.K + 2) * 1.2e-7 * mag + 1e-30;
      if (!(Math.abs(got - expected) <= tol)) assert.fail(`${what}: C[${i},${j}] = ${got}, expected ${expected} (tolerance ${tol})`);
    }
    // Padding between rows of C is never written.
    for (let j = c.N; j < C.ld && i < c.M - 1 && c.N > 0; j++) {
      const got = C.data[i * C.ld + j];
      const old = before[i * C.ld + j];
      if (!(c.beta === 0 ? Number.isNaN(got) : got === old)) assert.fail(`${what}: padding C[${i},${j}] was written`);
    }
  }
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 37, 5], // a single row: the direct path
  [13, 1, 7], // a single column
  [7, 13, 1], // depth 1
  [5, 3, 300], // thin, long depth
  [17, 29, 31], // odd: ragged tiles in both directions
  [97, 101, 103], // primes
  [12, 32, 256], // exactly one AVX-512 tile and depth block
  [150, 70, 600], // several row blocks and depth blocks, split over threads
  [33, 4100, 20], // wider than one column block
  [8, 12, 33000], // long depth, small result: split over the depth (three parts)
];

for (const p of paths) {
  nativeTest(`GEMM (${p.name}) matches float64 on thin, odd, prime and large shapes, both transposes, padded rows, alpha and beta`, () => {
    addon!.setGemm({ library: p.gemm, isa: p.isa });
    assert.equal(addon!.info().gemm, p.gemm);
    if (p.isa) assert.equal(addon!.info().gemmIsa, p.isa);
    let seed = 1;
    for (const [M, N, K] of SHAPES) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          check({ M, N, K, transA, transB, pad: 0, alpha: 1, beta: 0 }, seed++);
        }
      }
      check({ M, N, K, transA: false, transB: false, pad: 3, alpha: -0.5, beta: 1.5 }, seed++);
      check({ M, N, K, transA: false, transB: true, pad: 7, alpha: 1, beta: 0 }, seed++);
      check({ M, N, K, transA: true, transB: false, pad: 2, alpha: 0.25, beta: -1 }, seed++);
      check({ M, N, K, transA: true, transB: true, pad: 5, alpha: 2, beta: 1 }, seed++);
    }
  });

  nativeTest(`GEMM (${p.name}) handles empty products and alpha 0 as BLAS does`, () => {
    addon!.setGemm({ library: p.gemm, isa: p.isa });
    // K = 0: C = beta * C.
    check({ M: 9, N: 11, K: 0, transA: false, transB: false, pad: 2, alpha: 1, beta: 0.5 }, 3);
    check({ M: 9, N: 11, K: 0, transA: false, transB: true, pad: 0, alpha: 1, beta: 0 }, 4);
    // M = 0 or N = 0: nothing to do, and no array is touched.
    check({ M: 0, N: 11, K: 5, transA: false, transB: false, pad: 0, alpha: 1, beta: 0 }, 5);
    check({ M: 9, N: 0, K: 5, transA: true, transB: false, pad: 0, alpha: 1, beta: 0 }, 6);
    // alpha = 0: A and B are not read, so NaN in them does not reach C.
    const a = new Float32Array(40 * 30).fill(NaN);
    const b = new Float32Array(30 * 20).fill(NaN);
    const c = new Float32Array(40 * 20).fill(2);
    addon!.gemm({ transA: false, transB: false, M: 40, N: 20, K: 30, alpha: 0, a, lda: 30, b, ldb: 20, beta: 0.25, c, ldc: 20 });
    assert.ok(c.every((v) => v === 0.5), 'alpha 0 gives beta * C');
  });
}

nativeTest('GEMM selection: unknown names, and an instruction set this CPU lacks, are clear errors', () => {
  assert.throws(() => addon!.setGemm({ library: 'mkl' as never }), /library must be 'builtin' or 'openblas', got 'mkl'/);
  assert.throws(() => addon!.setGemm({ library: 'builtin', isa: 'sse9' as never }), /instruction set must be avx512, avx2 or (portable|neon), got 'sse9'/);
  for (const isa of ['avx512', 'avx2'] as const) {
    if (!isas.includes(isa)) assert.throws(() => addon!.setGemm({ library: 'builtin', isa }), new RegExp(`cannot run the ${isa} GEMM kernel`));
  }
  if (!info!.openblas) assert.throws(() => addon!.setGemm({ library: 'openblas' }), /does not link OpenBLAS/);
  const square = (a: Float32Array, lda: number) => ({ transA: false, transB: false, M: 4, N: 4, K: 4, alpha: 1, a, lda, b: new Float32Array(16), ldb: 4, beta: 0, c: new Float32Array(16), ldc: 4 });
  assert.throws(() => addon!.gemm(square(new Float32Array(16), 3)), /leading dimension smaller than the row width/);
  assert.throws(() => addon!.gemm(square(new Float32Array(15), 4)), /a: expected 16 elements, got 15/);
});

nativeTest('CAPSNET_GEMM_ISA and CAPSNET_GEMM choose the GEMM when the engine loads, and capsnet info says which runs', () => {
  const bin = fileURLToPath(new URL('../../bin/capsnet.js', import.meta.url));
  const infoWith = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, [bin, 'info', '--preset', 'small'], { encoding: 'utf8', env: { ...process.env, CAPSNET_GEMM: '', CAPSNET_GEMM_ISA: '', ...env } });
    assert.equal(r.status, 0, r.stderr);
    return { backend: r.stdout.split('\n').find((l) => l.startsWith('backend:')) ?? '', stderr: r.stderr };
  };
  for (const isa of isas) assert.match(infoWith({ CAPSNET_GEMM_ISA: isa }).backend, new RegExp(`built-in GEMM \\(${isa}\\)`));
  if (info!.openblas) assert.match(infoWith({ CAPSNET_GEMM: 'openblas' }).backend, /OpenBLAS \S+ \(/);
  // Two settings that contradict each other are both refused, in one line.
  assert.match(infoWith({ CAPSNET_GEMM: 'openblas', CAPSNET_GEMM_ISA: 'portable' }).stderr, /CAPSNET_GEMM_ISA=portable chooses a built-in kernel, CAPSNET_GEMM=openblas another GEMM: both ignored/);
  // A bad value is named in one line, and the default runs.
  const bad = infoWith({ CAPSNET_GEMM_ISA: 'avx1024' });
  assert.match(bad.stderr, /CAPSNET_GEMM \/ CAPSNET_GEMM_ISA ignored: .*got 'avx1024'/);
  assert.match(bad.backend, info!.gemmDefault === 'builtin' ? new RegExp(`built-in GEMM \\(${isas[0]}\\)`) : /OpenBLAS/);
});

const openblas = paths.find((p) => p.gemm === 'openblas');
const stepTest = 'a paper-CapsNet training step gives the same loss and gradients with the built-in GEMM and with OpenBLAS';
if (native.ok && !openblas) test(stepTest, { skip: 'the build does not link OpenBLAS (CAPSNET_BLAS=builtin)' }, () => {});
else nativeTest(stepTest, async () => {
  const mnist = loadMnist('train');
  const batch = makeBatch(mnist, Int32Array.from({ length: 8 }, (_, i) => i));
  const step = () => {
    const model = createModel('capsnet', 'paper', {}, 7);
    const x = tf.tensor4d(batch.x, [8, 28, 28, 1]);
    const labels = tf.tensor1d(batch.labels, 'int32');
    const targets = tf.tensor2d(batch.targets, [8, 10]);
    const { value, grads } = tf.variableGrads(() => model.loss(model.forward(x, { training: true, labels }), x, targets).total, model.params.map((p) => p.value));
    const out = { loss: value.dataSync()[0], grads: model.params.map((p) => ({ name: p.name, data: grads[p.value.name].dataSync() })) };
    model.dispose();
    return out;
  };
  addon!.setGemm({ library: 'builtin' });
  const builtin = await on('native', step);
  addon!.setGemm({ library: 'openblas' });
  const reference = await on('native', step);
  assert.ok(Number.isFinite(builtin.loss) && builtin.loss > 0);
  assert.ok(Math.abs(builtin.loss - reference.loss) <= 1e-5 * Math.abs(reference.loss), `loss ${builtin.loss} vs ${reference.loss}`);
  builtin.grads.forEach((g, i) => {
    const r = reference.grads[i].data;
    let worst = 0;
    let scale = 0;
    for (let k = 0; k < r.length; k++) {
      worst = Math.max(worst, Math.abs(g.data[k] - r[k]));
      scale = Math.max(scale, Math.abs(r[k]));
    }
    assert.ok(scale > 0, `${g.name}: gradient is zero`);
    assert.ok(worst <= 1e-3 * scale, `${g.name}: max difference ${worst} at scale ${scale}`);
  });
});
