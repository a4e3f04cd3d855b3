/**
 * Every native entry point checks what it is given: wrong element types,
 * lengths that do not match the shapes, negative or overflowing sizes,
 * outputs aliasing inputs, unknown op codes. Each must come back as a JS
 * exception, never as a crash or a stray read or write.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import os from 'node:os';
import { FUSED_KERNELS } from '../src/backend/fused.js';
import { loadAddon, type NativeAddon } from '../src/native/boundary/addon.js';
import { nativeTest } from './nativeUtil.js';

function addon(): NativeAddon {
  const loaded = loadAddon();
  assert.ok(loaded.ok);
  return loaded.addon;
}

const F = (n: number) => new Float32Array(n);
const GEOMETRY = [2, 5, 5, 3, 3, 3, 4, 3, 3, 1, 1, 1, 1, 0, 0]; // B H W Ci OH OW Co KH KW sh sw dh dw pt pl

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

nativeTest('elementwise, reduction and layout entry points reject malformed arguments', () => {
  const a = addon();
  rejects([
    ['missing arguments', () => (a.unary as unknown as () => void)(), /missing/],
    ['unknown unary op', () => a.unary(999, F(4), F(4), 0, 0), /op/],
    ['unary: output shorter than input', () => a.unary(0, F(4), F(3), 0, 0), /expected 4 elements/],
    ['unary: a number instead of an array', () => a.unary(0, 5 as unknown as Float32Array, F(3), 0, 0), /Float32Array/],
    ['unary: an Int32Array', () => a.unary(0, new Int32Array(4) as unknown as Float32Array, F(4), 0, 0), /Float32Array/],
    ['unary: a plain array', () => a.unary(0, [1, 2] as unknown as Float32Array, F(2), 0, 0), /Float32Array/],
    ['binary: a shorter than its shape', () => a.binary(0, F(5), [2, 3], F(3), [3], F(6), [2, 3]), /expected 6 elements/],
    ['binary: shapes that do not broadcast', () => a.binary(0, F(6), [2, 3], F(2), [2], F(6), [2, 3]), /broadcast/],
    ['binary: output too short', () => a.binary(0, F(6), [2, 3], F(3), [3], F(5), [2, 3]), /expected 6 elements/],
    ['binary: negative dimension', () => a.binary(0, F(6), [2, -3], F(3), [3], F(6), [2, 3]), /out of range/],
    ['binary: fractional dimension', () => a.binary(0, F(6), [2, 3.5], F(3), [3], F(6), [2, 3]), /out of range/],
    ['binary: rank too high', () => a.binary(0, F(1), [1, 1, 1, 1, 1, 1, 1, 1, 1], F(1), [1], F(1), [1]), /too many/],
    ['binary: comparison into a Float32Array', () => a.binary(8, F(6), [2, 3], F(3), [3], F(6), [2, 3]), /Uint8Array/],
    ['reduce: sizes that overflow', () => a.reduce(0, F(4), 2 ** 40, 2 ** 40, 2 ** 10, F(1)), /overflow/],
    ['reduce: x shorter than outer*r*inner', () => a.reduce(0, F(11), 3, 4, 1, F(3)), /expected 12 elements/],
    ['reduce: r of zero', () => a.reduce(0, F(0), 3, 0, 1, F(3)), /expected an integer/],
    ['reduce: argmax into a Float32Array', () => a.reduce(5, F(12), 3, 4, 1, F(3)), /Int32Array/],
    ['softmax: wrong length', () => a.softmax(F(10), 3, 4, F(12), false), /expected 12 elements/],
    ['transpose: perm with a repeated axis', () => a.transpose(F(6), [2, 3], [0, 0], F(6)), /repeats/],
    ['transpose: perm of the wrong length', () => a.transpose(F(6), [2, 3], [1, 0, 2], F(6)), /out of range|perm/],
    ['transpose: output aliasing the input', () => {
      const x = F(6);
      a.transpose(x, [2, 3], [1, 0], x);
    }, /overlaps/],
    ['cast: unknown kind', () => a.cast(9, F(2), new Int32Array(2)), /kind/],
    ['cast: output of the wrong type', () => a.cast(0, F(2), F(2)), /Int32Array/],
    ['setThreads: zero', () => a.setThreads(0), /threads/],
    ['setColumnBlock: too small', () => a.setColumnBlock(1), /floats/],
    ['setSpectralColumns: negative', () => a.setSpectralColumns(-1), /columns/],
    ['allocBuffer: zero bytes', () => a.allocBuffer(0), /bytes/],
    ['releaseBuffer: not an ArrayBuffer', () => a.releaseBuffer(F(4) as unknown as ArrayBuffer), /ArrayBuffer/],
  ]);
});

nativeTest('matmul and convolution entry points reject malformed arguments', () => {
  const a = addon();
  const x = F(2 * 5 * 5 * 3);
  const f = F(3 * 3 * 3 * 4);
  const y = F(2 * 3 * 3 * 4);
  rejects([
    ['batchMatMul: a too short', () => a.batchMatMul(F(5), F(12), F(8), 1, 1, 2, 4, 3, false, false), /expected 6 elements/],
    ['batchMatMul: output aliasing a', () => {
      const m = F(4);
      a.batchMatMul(m, F(4), m, 1, 1, 2, 2, 2, false, false);
    }, /overlaps/],
    ['batchMatMul: dimension above int32', () => a.batchMatMul(F(1), F(1), F(1), 1, 1, 2 ** 31, 1, 1, false, false), /expected an integer/],
    ['batchMatMul: batch of zero', () => a.batchMatMul(F(0), F(0), F(0), 0, 1, 1, 1, 1, false, false), /expected an integer/],
    ['biasActivation: bias of the wrong length', () => a.biasActivation(F(6), 2, 3, F(2), 1, 0), /bias/],
    ['biasActivation: unknown activation', () => a.biasActivation(F(6), 2, 3, F(3), 42, 0), /activation/],
    ['conv2d: input too short', () => a.conv2d(F(10), f, y, F(0), 0, 0, ...GEOMETRY), /expected 150 elements/],
    ['conv2d: filter too short', () => a.conv2d(x, F(10), y, F(0), 0, 0, ...GEOMETRY), /expected 108 elements/],
    ['conv2d: output too long', () => a.conv2d(x, f, F(73), F(0), 0, 0, ...GEOMETRY), /expected 72 elements/],
    ['conv2d: output aliasing the input', () => {
      const shared = F(150);
      a.conv2d(shared, f, shared.subarray(0, 72), F(0), 0, 0, ...GEOMETRY);
    }, /overlaps/],
    ['conv2d: zero stride', () => a.conv2d(x, f, y, F(0), 0, 0, ...GEOMETRY.slice(0, 9), 0, 1, 1, 1, 0, 0), /stride/],
    ['conv2d: zero input channels', () => a.conv2d(x, f, y, F(0), 0, 0, 2, 5, 5, 0, 3, 3, 4, 3, 3, 1, 1, 1, 1, 0, 0), /inChannels/],
    ['conv2d: bias of the wrong length', () => a.conv2d(x, f, y, F(3), 0, 0, ...GEOMETRY), /bias/],
    ['conv2d: missing geometry', () => (a.conv2d as unknown as (...args: unknown[]) => void)(x, f, y, F(0), 0, 0, 2, 5, 5), /missing/],
    ['conv2d: sizes that overflow', () => a.conv2d(x, f, y, F(0), 0, 0, 2 ** 30, 2 ** 30, 2 ** 30, 3, 3, 3, 4, 3, 3, 1, 1, 1, 1, 0, 0), /overflow|too large/],
    ['conv2dBackpropInput: dy too short', () => a.conv2dBackpropInput(F(71), f, x, ...GEOMETRY), /expected 72 elements/],
    ['conv2dBackpropInput: dx aliasing dy', () => {
      const shared = F(150);
      a.conv2dBackpropInput(shared.subarray(0, 72), f, shared, ...GEOMETRY);
    }, /overlaps/],
    ['conv2dBackpropFilter: dw too long', () => a.conv2dBackpropFilter(x, y, F(109), ...GEOMETRY), /expected 108 elements/],
  ]);
});

nativeTest('capsule entry points reject malformed arguments', () => {
  const a = addon();
  rejects([
    ['squash: length not a multiple of the dimension', () => a.squash(F(10), F(10), 3), /multiple/],
    ['squash: dimension zero', () => a.squash(F(10), F(10), 0), /dim/],
    ['squashGrad: s shorter than dy', () => a.squashGrad(F(8), F(6), F(8), 2), /expected 8 elements/],
    ['predictionVectors: W too short', () => a.predictionVectors(F(2 * 3 * 4), F(3 * 5 * 6 * 4 - 1), F(2 * 3 * 5 * 6), 2, 3, 5, 6, 4), /expected 360 elements/],
    ['predictionVectors: output aliasing u', () => {
      const u = F(2 * 3 * 5 * 6);
      a.predictionVectors(u.subarray(0, 24), F(360), u, 2, 3, 5, 6, 4);
    }, /overlaps/],
    ['predictionVectorsGradInput: du too short', () => a.predictionVectorsGradInput(F(180), F(360), F(23), 2, 3, 5, 6, 4), /expected 24 elements/],
    ['predictionVectorsGradWeights: dW too long', () => a.predictionVectorsGradWeights(F(180), F(24), F(361), 2, 3, 5, 6, 4), /expected 360 elements/],
    ['dynamicRouting: zero iterations', () => a.dynamicRouting(F(24), F(8), [], 1, 3, 2, 4, 0, false), /iterations/],
    ['dynamicRouting: a coupling array too short', () => a.dynamicRouting(F(24), F(8), [F(6), F(5), F(6)], 1, 3, 2, 4, 3, false), /expected 6 elements/],
    ['dynamicRouting: one coupling array per iteration', () => a.dynamicRouting(F(24), F(8), [F(6), F(6)], 1, 3, 2, 4, 3, false), /expected 3 arrays/],
    ['dynamicRouting: couplings not an array', () => a.dynamicRouting(F(24), F(8), F(18) as unknown as Float32Array[], 1, 3, 2, 4, 3, false), /array of Float32Arrays/],
    ['dynamicRouting: the same coupling array twice', () => {
      const c = F(6);
      a.dynamicRouting(F(24), F(8), [c, F(6), c], 1, 3, 2, 4, 3, false);
    }, /overlaps/],
    ['dynamicRouting: zero input capsules', () => a.dynamicRouting(F(0), F(8), [F(0), F(0), F(0)], 1, 0, 2, 4, 3, false), /inCaps/],
    ['dynamicRouting: stopGradientInner not a boolean', () => a.dynamicRouting(F(24), F(8), [F(6), F(6), F(6)], 1, 3, 2, 4, 3, 1 as unknown as boolean), /boolean/],
    ['dynamicRoutingGrad: dv too short', () => a.dynamicRoutingGrad(F(24), F(7), F(24), 1, 3, 2, 4, 3, false), /expected 8 elements/],
    ['adamUpdate: lengths differ', () => a.adamUpdate(F(5), F(5), F(4), F(5), F(5), F(5), F(5), 1e-3, 0.9, 0.1, 0.999, 0.001, 1e-7), /expected 5 elements/],
  ]);
});

nativeTest('releaseBuffer frees only engine buffers, once, and leaves their views empty', () => {
  const a = addon();
  const before = a.memoryStats();
  const buffer = a.allocBuffer(1 << 20);
  const view = new Float32Array(buffer);
  view.fill(3);
  assert.equal(a.memoryStats().buffers, before.buffers + 1);
  assert.equal(a.releaseBuffer(new ArrayBuffer(16)), false, 'an ordinary ArrayBuffer is not released');
  assert.equal(a.releaseBuffer(buffer), true);
  assert.equal(view.length, 0, 'views of a released buffer are empty');
  assert.equal(view[0], undefined);
  assert.equal(a.releaseBuffer(buffer), false, 'a second release does nothing');
  assert.deepEqual(a.memoryStats(), before);
  // A view of a released buffer is refused by the kernels, not read.
  assert.throws(() => a.unary(0, view, F(4), 0, 0), /expected 4 elements|elements/);
});

nativeTest('freed blocks above 32 MB are kept and reused for the same size, never while in use', () => {
  const a = addon();
  const size = 40 * 1024 * 1024;
  const first = a.allocBuffer(size);
  new Float32Array(first).fill(1);
  const before = a.memoryStats();
  assert.equal(a.releaseBuffer(first), true);
  const kept = a.memoryStats();
  assert.equal(kept.kept, before.kept + size, 'the freed block is kept');
  assert.equal(kept.buffers, before.buffers - 1);
  const second = a.allocBuffer(size);
  assert.equal(a.memoryStats().kept, before.kept, 'the next block of that size reuses it');
  const third = a.allocBuffer(size);
  new Float32Array(third).fill(2);
  assert.ok(new Float32Array(second).length === size / 4 && first.byteLength === 0, "the released buffer stays detached");
  a.releaseBuffer(second);
  a.releaseBuffer(third);
});

nativeTest('when kept blocks would pass the cap (a quarter of the usable memory, 1.5-8 GB), the longest-kept are freed and the newest kept', () => {
  const a = addon();
  const cap = a.memoryStats().keptCap;
  const GB = 1024 ** 3;
  // The process's memory: the machine's, or a smaller limit of its cgroup (a container's).
  const constrained = (process as { constrainedMemory?: () => number }).constrainedMemory?.() || Infinity;
  const expected = Math.min(8 * GB, Math.max(1.5 * GB, Math.min(os.totalmem(), constrained) / 4));
  assert.ok(Math.abs(cap - expected) <= 0.01 * expected, `cap ${cap} bytes, expected about ${expected}`);
  const big = 128 * 1024 * 1024 + 64; // a size no other test uses; never touched, so no memory is committed
  const blocks = Array.from({ length: Math.ceil(cap / big) + 1 }, () => a.allocBuffer(big));
  for (const b of blocks) a.releaseBuffer(b);
  const full = a.memoryStats().kept;
  assert.ok(full <= cap, `kept ${full} bytes, more than the cap`);
  assert.ok(full >= Math.floor(cap / big) * big, 'the cap is filled with the latest blocks');
  // A block of another size is still kept (older ones make room), and reused.
  const other = 100 * 1024 * 1024 + 128;
  a.releaseBuffer(a.allocBuffer(other));
  const withOther = a.memoryStats().kept;
  assert.ok(withOther <= cap);
  const again = a.allocBuffer(other);
  assert.equal(a.memoryStats().kept, withOther - other, 'the newest block was kept and is reused');
  a.releaseBuffer(again);
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
  ]);
  // The process is alive and the engine still computes.
  assert.deepEqual(Array.from(tf.add(tf.tensor1d([1, 2]), tf.tensor1d([3, 4])).dataSync()), [4, 6]);
});
