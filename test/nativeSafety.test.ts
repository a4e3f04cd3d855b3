/**
 * Every native entry point checks what it is given: missing settings, wrong
 * element types, lengths that do not match the shapes, negative or
 * overflowing sizes, outputs aliasing inputs, unknown op codes. Each must
 * come back as a JS exception, never as a crash or a stray read or write.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import os from 'node:os';
import { FUSED_KERNELS } from '../src/backend/fused.js';
import type { ConvGeometry } from '../src/backend/kernelTable.js';
import { loadAddon, opCodes, type NativeAddon, type OpCode } from '../src/native/boundary/addon.js';
import { nativeTest } from './nativeUtil.js';

function addon(): NativeAddon {
  const loaded = loadAddon();
  assert.ok(loaded.ok);
  return loaded.addon;
}

const F = (n: number) => new Float32Array(n);
/** B H W Ci OH OW Co KH KW, stride, dilation, padding: a 3x3 valid convolution of a [2, 5, 5, 3] input into 4 channels. */
const GEOMETRY: ConvGeometry = {
  batchSize: 2,
  inHeight: 5,
  inWidth: 5,
  inChannels: 3,
  outHeight: 3,
  outWidth: 3,
  outChannels: 4,
  filterHeight: 3,
  filterWidth: 3,
  strideHeight: 1,
  strideWidth: 1,
  dilationHeight: 1,
  dilationWidth: 1,
  padTop: 0,
  padLeft: 0,
};

/** The same input as a depthwise convolution with channel multiplier 2 (filter [3, 3, 3, 2]). */
const DEPTHWISE: ConvGeometry = { ...GEOMETRY, outChannels: 6 };

/** Each case must throw; `pattern` matches the message. */
function rejects(cases: [string, () => unknown, RegExp?][]): void {
  for (const [what, fn, pattern] of cases) {
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof Error, `${what}: threw a non-Error`);
      if (pattern) assert.match(e.message, pattern, what);
      return true;
    }, what);
  }
}

nativeTest('elementwise, reduction and layout entry points reject malformed settings', () => {
  const a = addon();
  const ops = opCodes(a);
  const { Neg } = ops.unary;
  const { Add, Greater } = ops.binary;
  const { Sum, ArgMax } = ops.reduce;
  const broken = a as unknown as Record<string, (...args: unknown[]) => unknown>;
  rejects([
    ['no settings object', () => broken.unary(), /unary: missing setting 'op'/],
    ['two arguments', () => broken.unary({ op: Neg, x: F(4), y: F(4) }, 1), /one settings object/],
    ['a number instead of the settings object', () => broken.unary(5), /one settings object/],
    ['unknown unary op', () => a.unary({ op: 999 as typeof Neg, x: F(4), y: F(4) }), /op/],
    ['unary: output shorter than input', () => a.unary({ op: Neg, x: F(4), y: F(3) }), /expected 4 elements/],
    ['unary: a number instead of an array', () => a.unary({ op: Neg, x: 5 as unknown as Float32Array, y: F(3) }), /Float32Array/],
    ['unary: an Int32Array', () => a.unary({ op: Neg, x: new Int32Array(4) as unknown as Float32Array, y: F(4) }), /Float32Array/],
    ['unary: a plain array', () => a.unary({ op: Neg, x: [1, 2] as unknown as Float32Array, y: F(2) }), /Float32Array/],
    ['binary: a shorter than its shape', () => a.binary({ op: Add, a: F(5), aShape: [2, 3], b: F(3), bShape: [3], out: F(6), outShape: [2, 3] }), /expected 6 elements/],
    ['binary: shapes that do not broadcast', () => a.binary({ op: Add, a: F(6), aShape: [2, 3], b: F(2), bShape: [2], out: F(6), outShape: [2, 3] }), /broadcast/],
    ['binary: output too short', () => a.binary({ op: Add, a: F(6), aShape: [2, 3], b: F(3), bShape: [3], out: F(5), outShape: [2, 3] }), /expected 6 elements/],
    ['binary: negative dimension', () => a.binary({ op: Add, a: F(6), aShape: [2, -3], b: F(3), bShape: [3], out: F(6), outShape: [2, 3] }), /out of range/],
    ['binary: fractional dimension', () => a.binary({ op: Add, a: F(6), aShape: [2, 3.5], b: F(3), bShape: [3], out: F(6), outShape: [2, 3] }), /out of range/],
    ['binary: rank too high', () => a.binary({ op: Add, a: F(1), aShape: [1, 1, 1, 1, 1, 1, 1, 1, 1], b: F(1), bShape: [1], out: F(1), outShape: [1] }), /too many/],
    ['binary: comparison into a Float32Array', () => a.binary({ op: Greater, a: F(6), aShape: [2, 3], b: F(3), bShape: [3], out: F(6), outShape: [2, 3] }), /Uint8Array/],
    ['reduce: sizes that overflow', () => a.reduce({ op: Sum, x: F(4), outer: 2 ** 40, r: 2 ** 40, inner: 2 ** 10, out: F(1) }), /overflow/],
    ['reduce: x shorter than outer*r*inner', () => a.reduce({ op: Sum, x: F(11), outer: 3, r: 4, inner: 1, out: F(3) }), /expected 12 elements/],
    ['reduce: r of zero', () => a.reduce({ op: Sum, x: F(0), outer: 3, r: 0, inner: 1, out: F(3) }), /expected an integer/],
    ['reduce: argmax into a Float32Array', () => a.reduce({ op: ArgMax, x: F(12), outer: 3, r: 4, inner: 1, out: F(3) }), /Int32Array/],
    ['softmax: wrong length', () => a.softmax({ x: F(10), rows: 3, cols: 4, out: F(12) }), /expected 12 elements/],
    ['transpose: perm with a repeated axis', () => a.transpose({ x: F(6), shape: [2, 3], perm: [0, 0], out: F(6) }), /repeats/],
    ['transpose: perm of the wrong length', () => a.transpose({ x: F(6), shape: [2, 3], perm: [1, 0, 2], out: F(6) }), /out of range|perm/],
    ['transpose: output aliasing the input', () => {
      const x = F(6);
      a.transpose({ x, shape: [2, 3], perm: [1, 0], out: x });
    }, /overlaps/],
    ['cast: unknown kind', () => a.cast({ kind: 9 as OpCode<'cast'>, x: F(2), out: new Int32Array(2) }), /kind/],
    ['cast: output of the wrong type', () => a.cast({ kind: ops.cast['float32>int32'], x: F(2), out: F(2) }), /Int32Array/],
    ['setThreads: zero', () => a.setThreads({ threads: 0 }), /threads/],
    ['setColumnBlock: too small', () => a.setColumnBlock({ floats: 1 }), /floats/],
    ['setSpectralColumns: negative', () => a.setSpectralColumns({ columns: -1 }), /columns/],
    ['setSpectralMode: unknown mode', () => a.setSpectralMode({ mode: 'sometimes' as never }), /mode must be 'never', 'auto' or 'always', got 'sometimes'/],
    ['setWinogradMode: unknown mode', () => a.setWinogradMode({ mode: 'often' as never }), /mode must be 'never', 'auto' or 'always', got 'often'/],
    ['allocBuffer: zero bytes', () => a.allocBuffer({ bytes: 0 }), /bytes/],
    ['releaseBuffer: not an ArrayBuffer', () => a.releaseBuffer({ buffer: F(4) as unknown as ArrayBuffer }), /ArrayBuffer/],
  ]);
});

nativeTest('matmul and convolution entry points reject malformed settings', () => {
  const a = addon();
  const x = F(2 * 5 * 5 * 3);
  const f = F(3 * 3 * 3 * 4);
  const y = F(2 * 3 * 3 * 4);
  const mm = { batchA: 1, batchB: 1, M: 2, N: 4, K: 3 };
  rejects([
    ['batchMatMul: a too short', () => a.batchMatMul({ a: F(5), b: F(12), out: F(8), ...mm }), /expected 6 elements/],
    ['batchMatMul: output aliasing a', () => {
      const m = F(4);
      a.batchMatMul({ a: m, b: F(4), out: m, batchA: 1, batchB: 1, M: 2, N: 2, K: 2 });
    }, /overlaps/],
    ['batchMatMul: dimension above int32', () => a.batchMatMul({ a: F(1), b: F(1), out: F(1), ...mm, M: 2 ** 31, N: 1, K: 1 }), /expected an integer/],
    ['batchMatMul: batch of zero', () => a.batchMatMul({ a: F(0), b: F(0), out: F(0), ...mm, batchA: 0 }), /expected an integer/],
    ['biasActivation: bias of the wrong length', () => a.biasActivation({ y: F(6), rows: 2, cols: 3, bias: F(2) }), /bias/],
    ['biasActivation: unknown activation', () => a.biasActivation({ y: F(6), rows: 2, cols: 3, bias: F(3), activation: 42 as OpCode<'activation'> }), /activation/],
    ['conv2d: input too short', () => a.conv2d({ x: F(10), filter: f, out: y, ...GEOMETRY }), /expected 150 elements/],
    ['conv2d: filter too short', () => a.conv2d({ x, filter: F(10), out: y, ...GEOMETRY }), /expected 108 elements/],
    ['conv2d: output too long', () => a.conv2d({ x, filter: f, out: F(73), ...GEOMETRY }), /expected 72 elements/],
    ['conv2d: output aliasing the input', () => {
      const shared = F(150);
      a.conv2d({ x: shared, filter: f, out: shared.subarray(0, 72), ...GEOMETRY });
    }, /overlaps/],
    ['conv2d: zero stride', () => a.conv2d({ x, filter: f, out: y, ...GEOMETRY, strideHeight: 0 }), /stride/],
    ['conv2d: zero input channels', () => a.conv2d({ x, filter: f, out: y, ...GEOMETRY, inChannels: 0 }), /inChannels/],
    ['conv2d: bias of the wrong length', () => a.conv2d({ x, filter: f, out: y, bias: F(3), ...GEOMETRY }), /bias/],
    ['conv2d: missing geometry', () => {
      const partial: Partial<ConvGeometry> = { ...GEOMETRY };
      delete partial.outHeight;
      a.conv2d({ x, filter: f, out: y, ...(partial as ConvGeometry) });
    }, /conv2d: missing setting 'outHeight'/],
    ['conv2d: sizes that overflow', () => a.conv2d({ x, filter: f, out: y, ...GEOMETRY, batchSize: 2 ** 30, inHeight: 2 ** 30, inWidth: 2 ** 30 }), /overflow|too large/],
    ['conv2dBackpropInput: dy too short', () => a.conv2dBackpropInput({ dy: F(71), filter: f, dx: x, ...GEOMETRY }), /expected 72 elements/],
    ['conv2dBackpropInput: dx aliasing dy', () => {
      const shared = F(150);
      a.conv2dBackpropInput({ dy: shared.subarray(0, 72), filter: f, dx: shared, ...GEOMETRY });
    }, /overlaps/],
    ['conv2dBackpropFilter: dw too long', () => a.conv2dBackpropFilter({ x, dy: y, dw: F(109), ...GEOMETRY }), /expected 108 elements/],
    // Depthwise: 3 channels with multiplier 2, filter [3, 3, 3, 2].
    ['depthwiseConv2d: outChannels not a multiple of inChannels', () => a.depthwiseConv2d({ x, filter: F(54), out: F(2 * 3 * 3 * 4), ...GEOMETRY }), /multiple of inChannels/],
    ['depthwiseConv2d: filter too short', () => a.depthwiseConv2d({ x, filter: F(53), out: F(108), ...DEPTHWISE }), /expected 54 elements/],
    ['depthwiseConv2d: output too short', () => a.depthwiseConv2d({ x, filter: F(54), out: F(107), ...DEPTHWISE }), /expected 108 elements/],
    ['depthwiseConv2d: output aliasing the input', () => {
      const shared = F(150);
      a.depthwiseConv2d({ x: shared, filter: F(54), out: shared.subarray(0, 108), ...DEPTHWISE });
    }, /overlaps/],
    ['depthwiseConv2d: zero dilation', () => a.depthwiseConv2d({ x, filter: F(54), out: F(108), ...DEPTHWISE, dilationWidth: 0 }), /dilationWidth/],
    ['depthwiseConv2dBackpropInput: dx too short', () => a.depthwiseConv2dBackpropInput({ dy: F(108), filter: F(54), dx: F(149), ...DEPTHWISE }), /expected 150 elements/],
    ['depthwiseConv2dBackpropInput: dx aliasing the filter', () => {
      const shared = F(150);
      a.depthwiseConv2dBackpropInput({ dy: F(108), filter: shared.subarray(96), dx: shared, ...DEPTHWISE });
    }, /overlaps/],
    ['depthwiseConv2dBackpropFilter: dy too long', () => a.depthwiseConv2dBackpropFilter({ x, dy: F(109), dw: F(54), ...DEPTHWISE }), /expected 108 elements/],
    ['depthwiseConv2dBackpropFilter: sizes that overflow', () => a.depthwiseConv2dBackpropFilter({ x, dy: F(108), dw: F(54), ...DEPTHWISE, batchSize: 2 ** 30, inHeight: 2 ** 30, inWidth: 2 ** 30 }), /overflow|too large/],
  ]);
});

nativeTest('capsule entry points reject malformed settings', () => {
  const a = addon();
  const caps = { batch: 2, inCaps: 3, outCaps: 5, outDim: 6, inDim: 4 };
  const routing = { batch: 1, inCaps: 3, outCaps: 2, outDim: 4, iterations: 3, stopGradientInner: false };
  const attention = { batch: 2, inCaps: 3, outCaps: 5, outDim: 6 };
  const adam = { lrT: 1e-3, beta1: 0.9, oneMinusBeta1: 0.1, beta2: 0.999, oneMinusBeta2: 0.001, epsilon: 1e-7 };
  rejects([
    ['squash: length not a multiple of the dimension', () => a.squash({ s: F(10), out: F(10), dim: 3 }), /multiple/],
    ['squash: dimension zero', () => a.squash({ s: F(10), out: F(10), dim: 0 }), /dim/],
    ['squashGrad: s shorter than dy', () => a.squashGrad({ dy: F(8), s: F(6), ds: F(8), dim: 2 }), /expected 8 elements/],
    ['predictionVectors: W too short', () => a.predictionVectors({ u: F(2 * 3 * 4), W: F(3 * 5 * 6 * 4 - 1), uHat: F(2 * 3 * 5 * 6), ...caps }), /expected 360 elements/],
    ['predictionVectors: output aliasing u', () => {
      const u = F(2 * 3 * 5 * 6);
      a.predictionVectors({ u: u.subarray(0, 24), W: F(360), uHat: u, ...caps });
    }, /overlaps/],
    ['predictionVectorsGradInput: du too short', () => a.predictionVectorsGradInput({ dy: F(180), W: F(360), du: F(23), ...caps }), /expected 24 elements/],
    ['predictionVectorsGradWeights: dW too long', () => a.predictionVectorsGradWeights({ dy: F(180), u: F(24), dW: F(361), ...caps }), /expected 360 elements/],
    ['dynamicRouting: zero iterations', () => a.dynamicRouting({ uHat: F(24), v: F(8), couplings: [], ...routing, iterations: 0 }), /iterations/],
    ['dynamicRouting: a coupling array too short', () => a.dynamicRouting({ uHat: F(24), v: F(8), couplings: [F(6), F(5), F(6)], ...routing }), /expected 6 elements/],
    ['dynamicRouting: one coupling array per iteration', () => a.dynamicRouting({ uHat: F(24), v: F(8), couplings: [F(6), F(6)], ...routing }), /expected 3 arrays/],
    ['dynamicRouting: couplings not an array', () => a.dynamicRouting({ uHat: F(24), v: F(8), couplings: F(18) as unknown as Float32Array[], ...routing }), /array of Float32Arrays/],
    ['dynamicRouting: the same coupling array twice', () => {
      const c = F(6);
      a.dynamicRouting({ uHat: F(24), v: F(8), couplings: [c, F(6), c], ...routing });
    }, /overlaps/],
    ['dynamicRouting: zero input capsules', () => a.dynamicRouting({ uHat: F(0), v: F(8), couplings: [F(0), F(0), F(0)], ...routing, inCaps: 0 }), /inCaps/],
    ['dynamicRouting: stopGradientInner not a boolean', () => a.dynamicRouting({ uHat: F(24), v: F(8), couplings: [F(6), F(6), F(6)], ...routing, stopGradientInner: 1 as unknown as boolean }), /boolean/],
    ['dynamicRoutingGrad: dv too short', () => a.dynamicRoutingGrad({ uHat: F(24), dv: F(7), duHat: F(24), ...routing }), /expected 8 elements/],
    ['adamUpdate: lengths differ', () => a.adamUpdate({ w: F(5), g: F(5), m: F(4), v: F(5), w2: F(5), m2: F(5), v2: F(5), ...adam }), /expected 5 elements/],
    ['efficientSquash: length not a multiple of the dimension', () => a.efficientSquash({ s: F(10), out: F(10), dim: 4 }), /multiple/],
    ['efficientSquashGrad: ds too short', () => a.efficientSquashGrad({ dy: F(8), s: F(8), ds: F(7), dim: 2 }), /expected 8 elements/],
    ['batchNormTraining: x not a multiple of the channels', () => a.batchNormTraining({ x: F(10), gamma: F(3), beta: F(3), epsilon: 1e-3, y: F(10), mean: F(3), variance: F(3) }), /multiple of the channel count/],
    ['batchNormTraining: empty x', () => a.batchNormTraining({ x: F(0), gamma: F(3), beta: F(3), epsilon: 1e-3, y: F(0), mean: F(3), variance: F(3) }), /non-empty/],
    ['batchNormTraining: beta too short', () => a.batchNormTraining({ x: F(12), gamma: F(3), beta: F(2), epsilon: 1e-3, y: F(12), mean: F(3), variance: F(3) }), /expected 3 elements/],
    ['batchNormTraining: negative epsilon', () => a.batchNormTraining({ x: F(12), gamma: F(3), beta: F(3), epsilon: -1, y: F(12), mean: F(3), variance: F(3) }), /epsilon/],
    ['batchNormTraining: y aliasing x', () => {
      const shared = F(12);
      a.batchNormTraining({ x: shared, gamma: F(3), beta: F(3), epsilon: 1e-3, y: shared, mean: F(3), variance: F(3) });
    }, /overlaps/],
    ['batchNormTraining: mean aliasing variance', () => {
      const shared = F(3);
      a.batchNormTraining({ x: F(12), gamma: F(3), beta: F(3), epsilon: 1e-3, y: F(12), mean: shared, variance: shared });
    }, /overlaps/],
    ['batchNormTrainingGrad: x shorter than dy', () => a.batchNormTrainingGrad({ dy: F(12), x: F(9), gamma: F(3), mean: F(3), variance: F(3), epsilon: 1e-3, dx: F(12), dgamma: F(3), dbeta: F(3) }), /expected 12 elements/],
    ['batchNormTrainingGrad: dmean of the wrong length', () => a.batchNormTrainingGrad({ dy: F(12), x: F(12), gamma: F(3), mean: F(3), variance: F(3), epsilon: 1e-3, dmean: F(2), dx: F(12), dgamma: F(3), dbeta: F(3) }), /dmean/],
    ['batchNormTrainingGrad: dx aliasing dy', () => {
      const shared = F(12);
      a.batchNormTrainingGrad({ dy: shared, x: F(12), gamma: F(3), mean: F(3), variance: F(3), epsilon: 1e-3, dx: shared, dgamma: F(3), dbeta: F(3) });
    }, /overlaps/],
    ['selfAttentionRouting: priors too short', () => a.selfAttentionRouting({ uHat: F(2 * 3 * 5 * 6), priors: F(14), v: F(60), couplings: F(30), ...attention }), /expected 15 elements/],
    ['selfAttentionRouting: zero output capsules', () => a.selfAttentionRouting({ uHat: F(0), priors: F(0), v: F(0), couplings: F(0), ...attention, outCaps: 0 }), /outCaps/],
    ['selfAttentionRouting: couplings aliasing v', () => {
      const shared = F(60);
      a.selfAttentionRouting({ uHat: F(180), priors: F(15), v: shared, couplings: shared.subarray(0, 30), ...attention });
    }, /overlaps/],
    ['selfAttentionRoutingGrad: dcouplings of the wrong length', () => a.selfAttentionRoutingGrad({ uHat: F(180), priors: F(15), dv: F(60), dcouplings: F(29), duHat: F(180), dpriors: F(15), ...attention }), /dcouplings/],
    ['selfAttentionRoutingGrad: duHat aliasing uHat', () => {
      const shared = F(180);
      a.selfAttentionRoutingGrad({ uHat: shared, priors: F(15), dv: F(60), duHat: shared, dpriors: F(15), ...attention });
    }, /overlaps/],
  ]);
});

nativeTest('releaseBuffer frees only engine buffers, once, and leaves their views empty', () => {
  const a = addon();
  const before = a.memoryStats();
  // Under 1 MB, so that the freed block is not kept for reuse (next test).
  const buffer = a.allocBuffer({ bytes: 1 << 19 });
  const view = new Float32Array(buffer);
  view.fill(3);
  assert.equal(a.memoryStats().buffers, before.buffers + 1);
  assert.equal(a.releaseBuffer({ buffer: new ArrayBuffer(16) }), false, 'an ordinary ArrayBuffer is not released');
  assert.equal(a.releaseBuffer({ buffer }), true);
  assert.equal(view.length, 0, 'views of a released buffer are empty');
  assert.equal(view[0], undefined);
  assert.equal(a.releaseBuffer({ buffer }), false, 'a second release does nothing');
  assert.deepEqual(a.memoryStats(), before);
  // A view of a released buffer is refused by the kernels, not read.
  assert.throws(() => a.unary({ op: opCodes(a).unary.Neg, x: view, y: F(4) }), /expected 4 elements|elements/);
});

nativeTest('freed blocks from 1 MB are kept and reused for the same size, never while in use; smaller ones are not kept', () => {
  const a = addon();
  const small = a.allocBuffer({ bytes: 512 * 1024 });
  const keptBefore = a.memoryStats().kept;
  assert.equal(a.releaseBuffer({ buffer: small }), true);
  assert.equal(a.memoryStats().kept, keptBefore, 'a block under 1 MB is freed, not kept');
  for (const size of [4 * 1024 * 1024, 40 * 1024 * 1024]) keptAndReused(a, size);
});

function keptAndReused(a: NativeAddon, size: number): void {
  const first = a.allocBuffer({ bytes: size });
  new Float32Array(first).fill(1);
  const before = a.memoryStats();
  assert.equal(a.releaseBuffer({ buffer: first }), true);
  const kept = a.memoryStats();
  assert.equal(kept.kept, before.kept + size, 'the freed block is kept');
  assert.equal(kept.buffers, before.buffers - 1);
  const second = a.allocBuffer({ bytes: size });
  assert.equal(a.memoryStats().kept, before.kept, 'the next block of that size reuses it');
  const third = a.allocBuffer({ bytes: size });
  new Float32Array(third).fill(2);
  assert.ok(new Float32Array(second).length === size / 4 && first.byteLength === 0, "the released buffer stays detached");
  a.releaseBuffer({ buffer: second });
  a.releaseBuffer({ buffer: third });
}

nativeTest('when kept blocks would pass the cap (a quarter of the usable memory, 1.5-8 GB), the longest-kept are freed and the newest kept', () => {
  const a = addon();
  const cap = a.memoryStats().keptCap;
  const GB = 1024 ** 3;
  // The process's memory: the machine's, or a smaller limit of its cgroup (a container's).
  const constrained = (process as { constrainedMemory?: () => number }).constrainedMemory?.() || Infinity;
  const expected = Math.min(8 * GB, Math.max(1.5 * GB, Math.min(os.totalmem(), constrained) / 4));
  assert.ok(Math.abs(cap - expected) <= 0.01 * expected, `cap ${cap} bytes, expected about ${expected}`);
  const big = 128 * 1024 * 1024 + 64; // a size no other test uses; never touched, so no memory is committed
  const blocks = Array.from({ length: Math.ceil(cap / big) + 1 }, () => a.allocBuffer({ bytes: big }));
  for (const buffer of blocks) a.releaseBuffer({ buffer });
  const full = a.memoryStats().kept;
  assert.ok(full <= cap, `kept ${full} bytes, more than the cap`);
  assert.ok(full >= Math.floor(cap / big) * big, 'the cap is filled with the latest blocks');
  // A block of another size is still kept (older ones make room), and reused.
  const other = 100 * 1024 * 1024 + 128;
  a.releaseBuffer({ buffer: a.allocBuffer({ bytes: other }) });
  const withOther = a.memoryStats().kept;
  assert.ok(withOther <= cap);
  const again = a.allocBuffer({ bytes: other });
  assert.equal(a.memoryStats().kept, withOther - other, 'the newest block was kept and is reused');
  a.releaseBuffer({ buffer: again });
});

nativeTest('fused capsule kernels reject wrong dtypes and shapes with readable errors', () => {
  const run = (name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}) => () => tf.engine().runKernel(name, inputs as tf.NamedTensorMap, attrs as tf.NamedAttrMap);
  rejects([
    ['squash of int32', run(FUSED_KERNELS.squash, { s: tf.tensor2d([[1, 2]], [1, 2], 'int32') }), /float32/],
    ['predictionVectors with mismatched capsules', run(FUSED_KERNELS.predictionVectors, { u: tf.zeros([2, 3, 4]), W: tf.zeros([4, 2, 5, 4]) }), /does not fit/],
    ['predictionVectors with u of rank 2', run(FUSED_KERNELS.predictionVectors, { u: tf.zeros([2, 3]), W: tf.zeros([3, 2, 5, 4]) }), /rank 3/],
    ['dynamicRouting with zero iterations', run(FUSED_KERNELS.dynamicRouting, { uHat: tf.zeros([1, 2, 3, 4]) }, { iterations: 0, stopGradientInner: false }), /iterations/],
    ['dynamicRoutingGrad with a wrong dv', run(FUSED_KERNELS.dynamicRoutingGrad, { uHat: tf.zeros([1, 2, 3, 4]), dv: tf.zeros([1, 3, 5]) }, { iterations: 3, stopGradientInner: false }), /does not fit/],
    ['adamUpdate with a missing moment', run(FUSED_KERNELS.adamUpdate, { w: tf.zeros([3]), g: tf.zeros([3]), m: tf.zeros([3]) }, { lr: 1, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, step: 1 }), /missing input v/],
    ['adamUpdate with step 0', run(FUSED_KERNELS.adamUpdate, { w: tf.zeros([3]), g: tf.zeros([3]), m: tf.zeros([3]), v: tf.zeros([3]) }, { lr: 1, beta1: 0.9, beta2: 0.999, epsilon: 1e-7, step: 0 }), /step/],
    ['efficientSquash of int32', run(FUSED_KERNELS.efficientSquash, { s: tf.tensor2d([[1, 2]], [1, 2], 'int32') }), /float32/],
    ['batchNormTraining with gamma of the wrong length', run(FUSED_KERNELS.batchNormTraining, { x: tf.zeros([4, 3]), gamma: tf.ones([2]), beta: tf.zeros([3]) }, { epsilon: 1e-3 }), /gamma \[2\] does not match the channels of \[4,3\]/],
    ['batchNormTraining of a vector', run(FUSED_KERNELS.batchNormTraining, { x: tf.zeros([4]), gamma: tf.ones([4]), beta: tf.zeros([4]) }, { epsilon: 1e-3 }), /at least two non-empty axes/],
    ['batchNormTraining without epsilon', run(FUSED_KERNELS.batchNormTraining, { x: tf.zeros([4, 3]), gamma: tf.ones([3]), beta: tf.zeros([3]) }), /epsilon must be/],
    ['batchNormTrainingGrad with dy and x of different shapes', run(FUSED_KERNELS.batchNormTrainingGrad, { dy: tf.zeros([4, 3]), x: tf.zeros([2, 3]), gamma: tf.ones([3]), mean: tf.zeros([3]), variance: tf.ones([3]) }, { epsilon: 1e-3 }), /dy and x/],
    ['selfAttentionRouting with mismatched priors', run(FUSED_KERNELS.selfAttentionRouting, { uHat: tf.zeros([2, 4, 3, 5]), priors: tf.zeros([3, 4]) }), /priors must have shape \[4,3\]/],
    ['selfAttentionRoutingGrad with a wrong dv', run(FUSED_KERNELS.selfAttentionRoutingGrad, { uHat: tf.zeros([2, 4, 3, 5]), priors: tf.zeros([4, 3]), dv: tf.zeros([2, 3, 4]) }), /dv must have shape \[2,3,5\]/],
  ]);
  // The process is alive and the engine still computes.
  assert.deepEqual(Array.from(tf.add(tf.tensor1d([1, 2]), tf.tensor1d([3, 4])).dataSync()), [4, 6]);
});
