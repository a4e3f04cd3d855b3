/**
 * The native backend's kernels against tfjs's cpu backend on the same data:
 * convolutions (forward, fused, both gradients; strides, padding, dilation,
 * odd sizes, the im2col blocking, the frequency-domain and Winograd paths),
 * depthwise convolutions, matmuls, elementwise ops with
 * broadcasting, reductions, softmax, transpose, slice, pad, concat, unstack,
 * gather and casts.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { loadAddon } from '../src/native/boundary/addon.js';
import { assertClose } from './helpers.js';
import { nativeTest, on, randn, Rng, size } from './nativeUtil.js';

const TOL = { rtol: 1e-4, atol: 1e-5 };

/** Run fn on native and on cpu with the same inputs; compare every output array. */
async function compare(what: string, inputs: { data: Float32Array | Int32Array | Uint8Array; shape: number[]; dtype?: tf.DataType }[], fn: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[], tol = TOL): Promise<void> {
  const run = () => {
    const xs = inputs.map((i) => tf.tensor(i.data, i.shape, i.dtype ?? 'float32'));
    const out = fn(...xs);
    return (Array.isArray(out) ? out : [out]).map((t) => ({ shape: t.shape, dtype: t.dtype, data: t.dataSync() }));
  };
  const nat = await on('native', run);
  const cpu = await on('cpu', run);
  assert.equal(nat.length, cpu.length);
  nat.forEach((o, k) => {
    assert.deepEqual(o.shape, cpu[k].shape, `${what}: output ${k} shape`);
    assert.equal(o.dtype, cpu[k].dtype, `${what}: output ${k} dtype`);
    if (o.dtype === 'float32') assertClose(o.data, cpu[k].data, { ...tol, what: `${what} output ${k}` });
    else assert.deepEqual(Array.from(o.data), Array.from(cpu[k].data), `${what}: output ${k}`);
  });
}

const f32 = (rng: Rng, shape: number[], scale = 1) => ({ data: randn(rng, size(shape), scale), shape });

interface ConvCase {
  x: number[];
  f: number[];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number;
  dilations?: number | [number, number];
}

const CONV_CASES: ConvCase[] = [
  { x: [2, 9, 9, 3], f: [3, 3, 3, 4], strides: 1, pad: 'valid' },
  { x: [2, 9, 9, 3], f: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { x: [1, 10, 7, 2], f: [4, 3, 2, 5], strides: [2, 1], pad: 'same' },
  { x: [3, 11, 11, 5], f: [5, 5, 5, 6], strides: 2, pad: 'valid' },
  { x: [2, 8, 8, 4], f: [1, 1, 4, 7], strides: 1, pad: 'valid' },
  { x: [2, 7, 9, 3], f: [3, 3, 3, 2], strides: 2, pad: 1 },
  { x: [1, 12, 12, 1], f: [9, 9, 1, 8], strides: 1, pad: 'valid' },
  { x: [4, 20, 20, 16], f: [9, 9, 16, 16], strides: 2, pad: 'valid' },
];

nativeTest('Conv2D and its two gradients equal the cpu kernels (strides, padding, odd shapes)', async () => {
  const rng = new Rng(21);
  for (const c of CONV_CASES) {
    const info = tf.backend_util.computeConv2DInfo(c.x as [number, number, number, number], c.f as [number, number, number, number], c.strides, 1, c.pad);
    const dyShape = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
    await compare(`conv ${JSON.stringify(c)}`, [f32(rng, c.x), f32(rng, c.f, 0.2), f32(rng, dyShape)], (x, f, dy) => {
      const y = tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad);
      const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad), dy)))([x, f]);
      return [y, dx, df];
    });
  }
});

nativeTest('dilated Conv2D equals the cpu kernel', async () => {
  const rng = new Rng(22);
  for (const [x, f, d, pad] of [[[2, 11, 11, 3], [3, 3, 3, 4], 2, 'valid'], [[1, 9, 12, 2], [3, 2, 2, 3], [2, 3], 'same']] as [number[], number[], number | [number, number], 'valid' | 'same'][]) {
    await compare(`dilated conv ${x} ${f} d=${d}`, [f32(rng, x), f32(rng, f)], (a, b) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, pad, 'NHWC', d));
  }
});

nativeTest('FusedConv2D (bias, relu/linear/sigmoid/leakyrelu) and its gradients equal the cpu kernels', async () => {
  const rng = new Rng(23);
  for (const activation of ['relu', 'linear', 'sigmoid', 'leakyrelu', 'elu', 'relu6'] as const) {
    await compare(`fused conv ${activation}`, [f32(rng, [2, 8, 8, 3]), f32(rng, [3, 3, 3, 5], 0.3), f32(rng, [5])], (x, f, b) => {
      const y = tf.fused.conv2d({ x: x as tf.Tensor4D, filter: f as tf.Tensor4D, strides: 1, pad: 'same', bias: b, activation });
      const grads = tf.grads((a: tf.Tensor, w: tf.Tensor, c: tf.Tensor) => tf.sum(tf.fused.conv2d({ x: a as tf.Tensor4D, filter: w as tf.Tensor4D, strides: 1, pad: 'same', bias: c, activation })))([x, f, b]);
      return [y, ...grads];
    });
  }
});

nativeTest('convolutions equal the cpu kernels when the column buffer forces blocking by rows and kernel positions', async () => {
  const loaded = loadAddon();
  assert.ok(loaded.ok);
  const rng = new Rng(24);
  // 1024 floats per thread: every case below is split into many row and
  // position blocks, and the first-layer path accumulates per-thread copies.
  loaded.addon.setColumnBlock({ floats: 1024 });
  try {
    for (const c of [CONV_CASES[3], CONV_CASES[6], CONV_CASES[7], { x: [3, 6, 6, 40], f: [3, 3, 40, 6], strides: 1, pad: 'same' } as ConvCase]) {
      const info = tf.backend_util.computeConv2DInfo(c.x as [number, number, number, number], c.f as [number, number, number, number], c.strides, 1, c.pad);
      const dyShape = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
      await compare(`blocked conv ${JSON.stringify(c)}`, [f32(rng, c.x), f32(rng, c.f, 0.2), f32(rng, dyShape)], (x, f, dy) => {
        const y = tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad);
        const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad), dy)))([x, f]);
        return [y, dx, df];
      });
    }
  } finally {
    loaded.addon.setColumnBlock({ floats: 1 << 20 });
  }
});

nativeTest('frequency-domain convolutions (polyphase DFT) equal the cpu kernels, forward and both gradients, in blocks of any number of columns', async () => {
  const loaded = loadAddon();
  assert.ok(loaded.ok);
  const rng = new Rng(30);
  // Geometries the spectral path takes: CapsNet's primary layer in small,
  // stride 1, unequal strides and kernel sizes, padding, channel counts
  // that are not multiples of the transform's channel block.
  const cases: ConvCase[] = [
    { x: [3, 20, 20, 16], f: [9, 9, 16, 24], strides: 2, pad: 'valid' },
    { x: [2, 12, 12, 20], f: [5, 5, 20, 16], strides: 1, pad: 'valid' },
    { x: [2, 11, 9, 16], f: [5, 4, 16, 17], strides: [2, 1], pad: 'valid' },
    { x: [2, 10, 10, 16], f: [5, 5, 16, 16], strides: 2, pad: 'same' },
    { x: [2, 9, 9, 80], f: [4, 4, 80, 70], strides: 1, pad: 2 },
    // Transform sizes along y that take the radix-2 FFT: 8 (with fewer
    // output rows than that), 16, the CNN baseline's 32, and 64.
    { x: [2, 8, 8, 16], f: [5, 5, 16, 16], strides: 1, pad: 'valid' },
    { x: [2, 12, 12, 16], f: [5, 5, 16, 16], strides: 1, pad: 'same' },
    { x: [1, 28, 28, 16], f: [5, 5, 16, 24], strides: 1, pad: 'same' },
    { x: [1, 60, 60, 16], f: [5, 5, 16, 16], strides: 1, pad: 'same' },
    // Sizes an odd factor times a power of two (odd-size DFTs, twiddles,
    // then radix-2 FFTs): 12 (the second case above; also with 80 and 70
    // channels: full 32-channel chunks and a second channel block; and with
    // stride 2, four phases), 24, the CNN baseline's 40 on MultiMNIST's
    // 36x36 pairs and 44 on 40x40 images.
    { x: [1, 20, 20, 16], f: [5, 5, 16, 16], strides: 1, pad: 'same' },
    { x: [1, 8, 8, 80], f: [5, 5, 80, 70], strides: 1, pad: 'same' },
    { x: [2, 23, 23, 16], f: [9, 9, 16, 16], strides: 2, pad: 'valid' },
    { x: [1, 36, 36, 16], f: [5, 5, 16, 16], strides: 1, pad: 'same' },
    { x: [1, 40, 40, 16], f: [5, 5, 16, 20], strides: 1, pad: 'same' },
    // Direct sums along y: 14 (CapsNet's primary capsules on 36x36) and an
    // odd size above 32 (45).
    { x: [2, 28, 28, 16], f: [9, 9, 16, 16], strides: 2, pad: 'valid' },
    { x: [1, 41, 41, 16], f: [5, 5, 16, 16], strides: 1, pad: 'same' },
  ];
  loaded.addon.setSpectralMode({ mode: 'always' });
  try {
    // 0: every column in one block; 1 and 2
    // run the blocked loops, with a last block shorter than the others
    // (not for the largest images, whose cpu reference takes seconds: the
    // smaller ones cover those loops).
    for (const c of cases) {
      for (const columns of c.x[1] * c.x[2] > 700 ? [0] : [0, 1, 2]) {
        loaded.addon.setSpectralColumns({ columns });
        const info = tf.backend_util.computeConv2DInfo(c.x as [number, number, number, number], c.f as [number, number, number, number], c.strides, 1, c.pad);
        const dyShape = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
        // Each value is a sum of many products (B OH OW per weight of the
        // filter gradient, KH KW Ci per output, KH KW Co per input-gradient
        // value), whose float32 rounding (in either backend) grows with the
        // square root of that count: the absolute tolerance follows the
        // largest, which matters for the values that cancel to near zero.
        const taps = info.filterHeight * info.filterWidth;
        const terms = Math.max(info.batchSize * info.outHeight * info.outWidth, taps * info.inChannels, taps * info.outChannels);
        const tol = { ...TOL, atol: TOL.atol * Math.max(1, Math.sqrt(terms) / 10) };
        await compare(`spectral conv ${JSON.stringify(c)}, columns ${columns}`, [f32(rng, c.x), f32(rng, c.f, 0.2), f32(rng, dyShape), f32(rng, [c.f[3]])], (x, f, dy, b) => {
          const y = tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad);
          const fused = tf.fused.conv2d({ x: x as tf.Tensor4D, filter: f as tf.Tensor4D, strides: c.strides, pad: c.pad, bias: b, activation: 'relu' });
          const [dx, df] = tf.grads((a: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad), dy)))([x, f]);
          return [y, fused, dx, df];
        }, tol);
      }
    }
  } finally {
    loaded.addon.setSpectralMode({ mode: 'auto' });
    loaded.addon.setSpectralColumns({ columns: 0 });
  }
});

nativeTest('Winograd F(4x4, 3x3) convolutions equal the cpu kernels, forward (with bias and activation) and both gradients', async () => {
  const loaded = loadAddon();
  assert.ok(loaded.ok);
  const rng = new Rng(32);
  // 3x3 stride-1 geometries: Efficient-CapsNet's backbone layers (in
  // small), maps whose sides 4 does not divide (partial tiles), maps
  // smaller than a tile, same and explicit padding, channel counts off the
  // vector width and single channels, batches of more than one group of
  // images (group sizes and the filter gradient's partial sums).
  const cases: ConvCase[] = [
    { x: [3, 24, 24, 32], f: [3, 3, 32, 64], strides: 1, pad: 'valid' },
    { x: [2, 22, 22, 64], f: [3, 3, 64, 64], strides: 1, pad: 'valid' },
    { x: [2, 9, 7, 5], f: [3, 3, 5, 3], strides: 1, pad: 'valid' },
    { x: [3, 6, 6, 17], f: [3, 3, 17, 9], strides: 1, pad: 'same' },
    { x: [1, 3, 4, 8], f: [3, 3, 8, 16], strides: 1, pad: 'valid' },
    { x: [2, 5, 5, 1], f: [3, 3, 1, 1], strides: 1, pad: 2 },
    { x: [20, 10, 10, 16], f: [3, 3, 16, 24], strides: 1, pad: 'same' },
  ];
  loaded.addon.setWinogradMode({ mode: 'always' });
  try {
    for (const c of cases) {
      const info = tf.backend_util.computeConv2DInfo(c.x as [number, number, number, number], c.f as [number, number, number, number], c.strides, 1, c.pad);
      const dyShape = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
      const run = () => {
        const [x, f, dy, b] = [c.x, c.f, dyShape, [c.f[3]]].map((shape, k) => tf.tensor(inputs[k], shape));
        const y = tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, c.strides, c.pad);
        const fused = tf.fused.conv2d({ x: x as tf.Tensor4D, filter: f as tf.Tensor4D, strides: c.strides, pad: c.pad, bias: b, activation: 'relu' });
        const [dx, df] = tf.grads((a: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad), dy)))([x, f]);
        return [y, fused, dx, df].map((t) => t.dataSync());
      };
      const inputs = [randn(rng, size(c.x)), randn(rng, size(c.f), 0.2), randn(rng, size(dyShape)), randn(rng, c.f[3])];
      const nat = await on('native', run);
      const cpu = await on('cpu', run);
      // F(4x4, 3x3)'s transforms scale values by up to 5 (B^T) and 8 (A^T)
      // on each side before the products cancel, so its rounding is about
      // 1e-5 of the outputs' root mean square (2.5e-5 at most in these
      // cases; im2col and the spectral path: 2e-6): compare at 1e-4 of it.
      ['y', 'fused', 'dx', 'dw'].forEach((name, k) => {
        const rms = Math.sqrt(Array.from(cpu[k]).reduce((s, v) => s + v * v, 0) / cpu[k].length);
        assertClose(nat[k], cpu[k], { rtol: 1e-4, atol: 1e-4 * rms, what: `winograd conv ${JSON.stringify(c)} ${name}` });
      });
    }
  } finally {
    loaded.addon.setWinogradMode({ mode: 'auto' });
  }
});

nativeTest('DepthwiseConv2dNative and its two gradients equal the cpu kernels (channel multipliers, strides, padding, dilation, odd shapes)', async () => {
  const rng = new Rng(31);
  // [x, filter [KH, KW, C, multiplier], strides, padding, dilations]: the
  // primary capsules of Efficient-CapsNet on MNIST and on MultiMNIST (a
  // kernel as large as the maps; 5x5 stride 2), channel counts off the
  // vector width, multipliers above 1, unequal strides, same padding with
  // stride 2, a 1x1 kernel (filter gradient split by channels), a kernel
  // wider than tall.
  const cases: [number[], number[], number | [number, number], 'valid' | 'same' | number, (number | [number, number])?][] = [
    [[4, 9, 9, 128], [9, 9, 128, 1], 1, 'valid'],
    [[3, 9, 9, 128], [5, 5, 128, 1], 2, 'valid'],
    [[2, 7, 6, 5], [3, 3, 5, 2], 2, 'same'],
    [[3, 8, 8, 3], [3, 3, 3, 3], 1, 'same'],
    [[2, 10, 7, 17], [4, 3, 17, 1], [2, 1], 'valid'],
    [[2, 6, 6, 40], [1, 1, 40, 2], 1, 'valid'],
    [[1, 5, 9, 4], [2, 5, 4, 1], 1, 1],
    [[2, 11, 11, 9], [3, 3, 9, 1], 1, 'valid', 2],
    [[1, 9, 12, 2], [3, 2, 2, 3], 1, 'same', [2, 3]],
  ];
  for (const [x, f, strides, pad, dilations = 1] of cases) {
    const info = tf.backend_util.computeConv2DInfo(x as [number, number, number, number], f as [number, number, number, number], strides, dilations, pad, undefined, true);
    const dyShape = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
    // tfjs takes the gradients of undilated depthwise convolutions only.
    const dilated = dilations !== 1;
    const taps = info.filterHeight * info.filterWidth;
    const tol = { ...TOL, atol: TOL.atol * Math.max(1, Math.sqrt(Math.max(taps, info.batchSize * info.outHeight * info.outWidth)) / 10) };
    await compare(`depthwise ${x} ${f} s=${strides} ${pad} d=${dilations}`, [f32(rng, x), f32(rng, f, 0.3), f32(rng, dyShape)], (a, w, dy) => {
      const y = tf.depthwiseConv2d(a as tf.Tensor4D, w as tf.Tensor4D, strides, pad, 'NHWC', dilations);
      if (dilated) return [y];
      const [dx, dw] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(p as tf.Tensor4D, q as tf.Tensor4D, strides, pad), dy)))([a, w]);
      return [y, dx, dw];
    }, tol);
  }
});

nativeTest('BatchMatMul and _FusedMatMul equal the cpu kernels (transposes, batch broadcasting, bias, activations)', async () => {
  const rng = new Rng(25);
  const cases: [number[], number[], boolean, boolean][] = [
    [[5, 7], [7, 3], false, false],
    [[7, 5], [7, 3], true, false],
    [[5, 7], [3, 7], false, true],
    [[7, 5], [3, 7], true, true],
    [[4, 5, 7], [4, 7, 3], false, false],
    [[4, 5, 7], [1, 7, 3], false, false],
    [[1, 5, 7], [4, 7, 3], false, false],
    [[2, 3, 6, 4], [2, 3, 4, 5], false, false],
    [[300, 64], [64, 200], false, false],
    [[1, 1], [1, 1], false, false],
  ];
  for (const [a, b, ta, tb] of cases) {
    await compare(`matMul ${a} ${b} ${ta} ${tb}`, [f32(rng, a), f32(rng, b)], (x, y) => tf.matMul(x, y, ta, tb));
  }
  for (const activation of ['linear', 'relu', 'sigmoid', 'relu6', 'elu', 'leakyrelu'] as const) {
    await compare(`fused matMul ${activation}`, [f32(rng, [6, 5]), f32(rng, [5, 4]), f32(rng, [4])], (x, y, bias) => {
      const out = tf.fused.matMul({ a: x as tf.Tensor2D, b: y as tf.Tensor2D, bias, activation });
      const grads = tf.grads((p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => tf.sum(tf.fused.matMul({ a: p as tf.Tensor2D, b: q as tf.Tensor2D, bias: r, activation })))([x, y, bias]);
      return [out, ...grads];
    });
  }
  // A bias that is not per-column.
  await compare('fused matMul with a [rows, 1] bias', [f32(rng, [6, 5]), f32(rng, [5, 4]), f32(rng, [6, 1])], (x, y, bias) => tf.fused.matMul({ a: x as tf.Tensor2D, b: y as tf.Tensor2D, bias, activation: 'relu' }));
});

nativeTest('elementwise ops with broadcasting equal the cpu kernels', async () => {
  const rng = new Rng(26);
  const shapes: [number[], number[]][] = [
    [[3, 4], [3, 4]],
    [[3, 4], [4]],
    [[3, 4], [3, 1]],
    [[2, 1, 5], [1, 3, 1]],
    [[2, 3, 4, 5], [3, 1, 5]],
    [[], [2, 3]],
    [[7], []],
    [[6, 20, 20, 16], [16]],
    [[1, 1, 1], [1]],
  ];
  const binary: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
    ['add', tf.add], ['sub', tf.sub], ['mul', tf.mul], ['div', tf.div], ['maximum', tf.maximum], ['minimum', tf.minimum],
    ['squaredDifference', tf.squaredDifference], ['greater', tf.greater], ['greaterEqual', tf.greaterEqual], ['less', tf.less],
    ['lessEqual', tf.lessEqual], ['equal', tf.equal], ['notEqual', tf.notEqual],
  ];
  for (const [sa, sb] of shapes) {
    const a = f32(rng, sa);
    const b = f32(rng, sb);
    // Some equal entries so that the comparisons' edge matters.
    if (size(sa) === size(sb)) a.data.set(b.data.subarray(0, Math.floor(size(sa) / 2)));
    for (const [name, op] of binary) await compare(`${name} ${sa} ${sb}`, [a, b], op);
  }
  await compare('pow', [{ data: randn(rng, 12).map(Math.abs), shape: [3, 4] }, f32(rng, [4])], tf.pow);
  const x = f32(rng, [5, 7]);
  x.data[3] = 0;
  const unary: [string, (t: tf.Tensor) => tf.Tensor][] = [
    ['neg', tf.neg], ['abs', tf.abs], ['square', tf.square], ['exp', tf.exp], ['relu', tf.relu], ['relu6', (t) => tf.relu6(tf.mul(t, 5))],
    ['sigmoid', tf.sigmoid], ['tanh', tf.tanh], ['step', (t) => tf.step(t, 0.3)], ['leakyRelu', (t) => tf.leakyRelu(t, 0.1)], ['elu', tf.elu],
    ['floor', tf.floor], ['ceil', tf.ceil], ['round', (t) => tf.round(tf.mul(t, 4))], ['sign', tf.sign], ['sin', tf.sin], ['cos', tf.cos],
    ['clip', (t) => tf.clipByValue(t, -0.5, 0.7)], ['sqrt', (t) => tf.sqrt(tf.abs(t))], ['rsqrt', (t) => tf.rsqrt(tf.add(tf.abs(t), 0.1))],
    ['log', (t) => tf.log(tf.add(tf.abs(t), 0.1))], ['log1p', (t) => tf.log1p(tf.abs(t))], ['expm1', tf.expm1], ['reciprocal', (t) => tf.reciprocal(tf.add(tf.abs(t), 0.1))],
  ];
  for (const [name, op] of unary) await compare(name, [x], op);
});

nativeTest('NaN propagates through max, maximum, relu and step as on cpu', async () => {
  const data = new Float32Array([1, NaN, -2, 3, NaN, 0.5]);
  const nan = { data, shape: [2, 3] };
  const ones = { data: new Float32Array(6).fill(0.7), shape: [2, 3] };
  for (const [name, fn] of [['max', (t: tf.Tensor) => tf.max(t, 1)], ['min', (t: tf.Tensor) => tf.min(t, 1)], ['relu', tf.relu], ['step', tf.step]] as const) {
    const nat = await on('native', () => fn(tf.tensor(nan.data, nan.shape)).dataSync());
    const cpu = await on('cpu', () => fn(tf.tensor(nan.data, nan.shape)).dataSync());
    assert.deepEqual(Array.from(nat).map(String), Array.from(cpu).map(String), name);
  }
  const nat = await on('native', () => tf.maximum(tf.tensor(nan.data, nan.shape), tf.tensor(ones.data, ones.shape)).dataSync());
  assert.ok(Number.isNaN(nat[1]) && Number.isNaN(nat[4]) && nat[0] === 1 && Math.abs(nat[2] - 0.7) < 1e-7);
});

nativeTest('reductions, softmax, transpose and casts equal the cpu kernels', async () => {
  const rng = new Rng(27);
  const x = f32(rng, [3, 4, 5, 6]);
  const axesList: (number | number[])[] = [0, 1, 2, 3, -1, [1, 2], [0, 3], [0, 2], [1, 3], [0, 1, 2, 3], [2, 3], [0, 1]];
  for (const axes of axesList) {
    for (const keepDims of [false, true]) {
      await compare(`reductions axes ${JSON.stringify(axes)} keepDims ${keepDims}`, [x], (t) => [tf.sum(t, axes, keepDims), tf.mean(t, axes, keepDims), tf.max(t, axes, keepDims), tf.min(t, axes, keepDims), tf.prod(tf.add(tf.mul(t, 0.1), 1), axes, keepDims)]);
    }
  }
  for (const axis of [0, 1, 2, 3]) await compare(`argMax/argMin ${axis}`, [x], (t) => [tf.argMax(t, axis), tf.argMin(t, axis)]);
  await compare('sum of a long vector', [f32(rng, [300000])], (t) => [tf.sum(t), tf.mean(t)], { rtol: 1e-4, atol: 1e-3 });
  await compare('sum with size-1 axes', [f32(rng, [4, 1, 6, 1])], (t) => [tf.sum(t, [1, 2]), tf.sum(t, [0, 3])]);
  await compare('softmax', [f32(rng, [7, 10], 5)], (t) => tf.softmax(t));
  await compare('softmax rank 3 and its gradient', [f32(rng, [2, 3, 4])], (t) => [tf.softmax(t), tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.softmax(a), tf.range(0, 4))))(t)]);
  for (const perm of [[1, 0, 2, 3], [3, 2, 1, 0], [0, 2, 3, 1], [0, 1, 3, 2], [2, 0, 1, 3]]) {
    await compare(`transpose ${perm}`, [x], (t) => tf.transpose(t, perm));
  }
  await compare('transpose of a large matrix', [f32(rng, [257, 131])], (t) => tf.transpose(t));
  await compare('int32 transpose', [{ data: Int32Array.from({ length: 24 }, (_, i) => i * 7 - 50), shape: [2, 3, 4], dtype: 'int32' }], (t) => tf.transpose(t, [2, 0, 1]));
  const mixed = new Float32Array([0, 1.7, -1.7, 2.5, -0.5, 1e10, NaN, -3e9]);
  await compare('casts', [{ data: mixed, shape: [8] }], (t) => [tf.cast(t, 'int32'), tf.cast(t, 'bool'), tf.cast(tf.cast(t, 'int32'), 'float32'), tf.cast(tf.cast(t, 'bool'), 'float32'), tf.cast(tf.cast(t, 'bool'), 'int32'), tf.cast(tf.cast(t, 'int32'), 'bool')]);
});

nativeTest('slice, pad, concat, unstack and gather equal the cpu kernels (any axis, int32, gradients, bad indices)', async () => {
  const rng = new Rng(29);
  const x = f32(rng, [3, 4, 5, 6]);
  const slices: [number[], number[]][] = [
    [[0, 0, 0, 0], [3, 4, 5, 6]],
    [[1, 0, 0, 0], [2, -1, -1, -1]],
    [[0, 1, 2, 3], [3, 2, 3, 3]],
    [[0, 0, 0, 5], [-1, -1, -1, 1]],
    [[2, 3, 4, 0], [1, 1, 1, 6]],
    [[0, 0, 1, 0], [3, 4, 0, 6]],
  ];
  for (const [begin, sz] of slices) {
    await compare(`slice ${begin} ${sz} and its gradient`, [x], (t) => [tf.slice(t, begin, sz), tf.grad((a: tf.Tensor) => tf.sum(tf.square(tf.slice(a, begin, sz))))(t)]);
  }
  await compare('slice of rank 1 and 2', [f32(rng, [10, 7])], (t) => [tf.slice(t, [3, 2], [4, 5]), tf.slice(tf.reshape(t, [70]), [13], [40])]);
  for (const paddings of [[[1, 0], [0, 2], [3, 1], [0, 0]], [[0, 0], [0, 0], [0, 0], [2, 2]], [[2, 1], [1, 2], [0, 0], [0, 0]]] as [number, number][][]) {
    await compare(`pad ${JSON.stringify(paddings)} and its gradient`, [x], (t) => [tf.pad(t, paddings, 0.5), tf.grad((a: tf.Tensor) => tf.sum(tf.square(tf.pad(a, paddings, -1))))(t)]);
  }
  for (const axis of [0, 1, 2, 3, -1]) {
    const y = f32(rng, [3, 4, 5, 6].map((d, k) => (k === (axis + 4) % 4 ? 2 : d)));
    await compare(`concat axis ${axis} and its gradient`, [x, y], (a, b) => [tf.concat([a, b, a], axis), ...tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(tf.concat([p, q], axis))))([a, b])]);
  }
  for (const axis of [0, 1, 2, 3, -1]) {
    await compare(`unstack axis ${axis}, and the gradient of stack`, [x, x], (t, u) => [
      ...tf.unstack(t, axis),
      ...tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(tf.square(tf.stack([p, q, p], axis)), tf.stack([u, p, q], axis))))([t, u]),
    ]);
  }
  const ints = { data: Int32Array.from({ length: 60 }, (_, i) => i * 3 - 40), shape: [3, 4, 5], dtype: 'int32' as const };
  await compare('int32 slice, concat, gather, unstack', [ints], (t) => [tf.slice(t, [1, 1, 1], [2, 2, 3]), tf.concat([t, t], 2), tf.gather(t, tf.tensor1d([3, 0, 3], 'int32'), 1), ...tf.unstack(t, 1)]);
  await compare('bool concat and slice (cpu kernels)', [{ data: new Uint8Array([1, 0, 1, 1, 0, 0]), shape: [2, 3], dtype: 'bool' }], (t) => [tf.concat([t, t], 0), tf.slice(t, [0, 1], [2, 2])]);
  for (const axis of [0, 1, 2, 3]) {
    const dim = x.shape[axis];
    const idx = Int32Array.from({ length: 7 }, (_, i) => (i * 5 + 1) % dim);
    await compare(`gather axis ${axis} and its gradient`, [x], (t) => [tf.gather(t, tf.tensor1d(idx, 'int32'), axis), tf.grad((a: tf.Tensor) => tf.sum(tf.square(tf.gather(a, tf.tensor1d(idx, 'int32'), axis))))(t)]);
  }
  await compare('gather with 2-D indices', [x], (t) => tf.gather(t, tf.tensor2d([[0, 2], [1, 1], [2, 0]], [3, 2], 'int32'), 0));
  await on('native', () => {
    assert.throws(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([0, 3], 'int32')).dataSync(), /index 3 is not in \[0, 3\)|not in \[0, 2\]/);
    assert.throws(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([-1], 'int32')).dataSync(), /index -1 is not in|not in \[0, 2\]/);
  });
});

nativeTest('kernels the addon does not cover still run (through the cpu kernels on the same memory)', async () => {
  const rng = new Rng(28);
  await compare('tile, oneHot, int32 add', [f32(rng, [4, 3])], (t) => [
    tf.tile(t, [2, 1]),
    tf.oneHot(tf.tensor1d([1, 0, 2], 'int32'), 3),
    tf.add(tf.tensor1d([1, 2], 'int32'), tf.tensor1d([3, 4], 'int32')),
  ]);
});

nativeTest('results do not depend on how tasks were scheduled: repeated gradients are bit-identical', async () => {
  const rng = new Rng(29);
  // A first-layer shape (per-task copies of the filter gradient) and a
  // large-filter one (per-task rows of it).
  for (const [xs, fs, stride] of [[[8, 28, 28, 1], [9, 9, 1, 32], 1], [[4, 12, 12, 32], [5, 5, 32, 16], 2]] as [number[], number[], number][]) {
    const x = tf.tensor4d(randn(rng, size(xs)), xs as [number, number, number, number]);
    const f = tf.tensor4d(randn(rng, size(fs), 0.1), fs as [number, number, number, number]);
    const grads = () => tf.tidy(() => {
      const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, 'valid'))))([x, f]);
      return [dx.dataSync(), df.dataSync()];
    });
    const first = grads();
    for (let rep = 0; rep < 4; rep++) {
      const again = grads();
      assert.deepEqual(again[0], first[0], `input gradient ${xs}, repeat ${rep}`);
      assert.deepEqual(again[1], first[1], `filter gradient ${xs}, repeat ${rep}`);
    }
  }
});

nativeTest('denormal floats are flushed to zero inside the engine (x86), and JavaScript keeps them after each call', async () => {
  // 1e-20 * 1e-20 = 1e-40 is a float32 denormal: the cpu kernel (IEEE) keeps
  // it, the engine flushes it where it can (src/native/engine/denormals.h says
  // why), and computes it exactly elsewhere. A million elements are split
  // into parts, some of which the pool's workers take.
  const loaded = loadAddon();
  assert.ok(loaded.ok);
  const flushes = loaded.addon.info().flushesDenormals;
  assert.equal(flushes, process.arch === 'x64' || process.arch === 'ia32', 'x86 builds flush denormals, others do not');
  const tiny = 1e-20;
  for (const n of [4, 1 << 20]) {
    const run = () => tf.mul(tf.fill([n], tiny), tf.fill([n], tiny));
    const nat = await on('native', () => run().dataSync());
    const cpu = await on('cpu', () => run().dataSync());
    assert.ok(cpu[0] > 0 && cpu[0] < 1.2e-38, `cpu keeps the denormal (${cpu[0]})`);
    const magnify = () => tf.mul(tf.tensor1d(new Float32Array(n).fill(cpu[0])), tf.fill([n], 1e30)).dataSync();
    const big = await on('native', magnify);
    if (flushes) {
      assert.equal(nat.findIndex((v) => v !== 0), -1, `native flushes every one of ${n} products to zero`);
      // A denormal input is read as zero (1e-40 * 1e30 would be 1e-10).
      assert.equal(big.findIndex((v) => v !== 0), -1, `native reads every one of ${n} denormal inputs as zero`);
    } else {
      assert.deepEqual(nat, cpu, 'without the flush the engine keeps denormals as the cpu kernel does');
      assert.deepEqual(big, await on('cpu', magnify), 'and reads denormal inputs as they are');
    }
  }
  // The JS thread's own mode is restored: denormal doubles and float32
  // conversions still work after a call into the engine.
  const values = [Number.MIN_VALUE, 1e-40];
  assert.ok(values[0] * 1 > 0, 'the smallest double survives a multiply');
  const f = new Float32Array(1);
  f[0] = values[1];
  assert.ok(f[0] > 0, 'a float32 denormal survives the conversion from a double');
});
