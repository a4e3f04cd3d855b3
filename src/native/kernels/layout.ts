/**
 * Data movement on the addon (layout.cc): Transpose, Slice, PadV2, Concat,
 * Unpack, GatherV2 and Cast. Tensors of 4-byte elements (float32, int32) move as
 * floats; other dtypes and attribute forms not handled here go to the cpu
 * kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { Cast, Concat, GatherV2, PadV2, Slice, Transpose, Unpack } from '@tensorflow/tfjs';
import type { NativeAddon, OpCode, OpCodes } from '../boundary/addon.js';
import { allocF32, allocI32, allocU8, cpuKernel, output, sizeOf, values, type KernelArgs, type NativeKernelConfig, type TensorInfo } from './kernelUtil.js';

/** A tensor's values as floats when its elements are 4 bytes (float32, int32), else null. */
function words(backend: KernelArgs['backend'], x: TensorInfo): Float32Array | null {
  const v = values(backend, x);
  if (v instanceof Float32Array) return v;
  if (v instanceof Int32Array) return new Float32Array(v.buffer, v.byteOffset, v.length);
  return null;
}

function asDtype(out: Float32Array, dtype: tf.DataType): Float32Array | Int32Array {
  return dtype === 'int32' ? new Int32Array(out.buffer, out.byteOffset, out.length) : out;
}

const zeros = (rank: number) => new Array<number>(rank).fill(0);

export function layoutKernels(addon: NativeAddon, codes: OpCodes): NativeKernelConfig[] {
  const transposeFallback = cpuKernel(Transpose);
  const castFallback = cpuKernel(Cast);
  const sliceFallback = cpuKernel(Slice);
  const padFallback = cpuKernel(PadV2);
  const concatFallback = cpuKernel(Concat);
  const unpackFallback = cpuKernel(Unpack);
  const gatherFallback = cpuKernel(GatherV2);
  // cast()'s kind for "from>to", when the engine has that cast.
  const castKinds: Readonly<Partial<Record<string, OpCode<'cast'>>>> = codes.cast;
  return [
    {
      kernelName: Slice,
      kernelFunc: (args: KernelArgs) => {
        const x = args.inputs.x;
        const src = x ? words(args.backend, x) : null;
        if (!x || !src || x.shape.length === 0) return sliceFallback(args);
        const [begin, size] = tf.slice_util.parseSliceParams(x, args.attrs.begin as number[], args.attrs.size as number[]);
        tf.slice_util.assertParamsValid(x, begin, size);
        const out = allocF32(sizeOf(size));
        if (out.length > 0) addon.copyBlock({ src, srcShape: x.shape, srcBegin: begin, dst: out, dstShape: size, dstBegin: zeros(size.length), block: size });
        return output(args.backend, size, x.dtype, asDtype(out, x.dtype));
      },
    },
    {
      kernelName: PadV2,
      kernelFunc: (args: KernelArgs) => {
        const x = args.inputs.x;
        const src = x ? words(args.backend, x) : null;
        const paddings = args.attrs.paddings as [number, number][];
        if (!x || !src || x.shape.length === 0 || x.dtype !== 'float32') return padFallback(args);
        const shape = x.shape.map((d, k) => paddings[k][0] + d + paddings[k][1]);
        const out = allocF32(sizeOf(shape));
        if (out.length === 0) return output(args.backend, shape, x.dtype, out);
        addon.fill({ dst: out, value: Number(args.attrs.constantValue ?? 0) });
        if (src.length > 0) addon.copyBlock({ src, srcShape: x.shape, srcBegin: zeros(x.shape.length), dst: out, dstShape: shape, dstBegin: paddings.map((p) => p[0]), block: x.shape });
        return output(args.backend, shape, x.dtype, out);
      },
    },
    {
      kernelName: Concat,
      kernelFunc: (args: KernelArgs) => {
        const list = Object.values(args.inputs) as TensorInfo[];
        if (list.length === 0 || list[0].shape.length === 0) return concatFallback(args);
        const dtype = list[0].dtype;
        const srcs = list.map((t) => (t.dtype === dtype ? words(args.backend, t) : null));
        if (srcs.some((s) => !s)) return concatFallback(args);
        const rank = list[0].shape.length;
        const axis = tf.util.parseAxisParam(args.attrs.axis as number, list[0].shape)[0];
        tf.backend_util.assertParamsConsistent(list.map((t) => t.shape), axis);
        const shape = tf.backend_util.computeOutShape(list.map((t) => t.shape), axis);
        const out = allocF32(sizeOf(shape));
        let offset = 0;
        list.forEach((t, i) => {
          const begin = zeros(rank);
          begin[axis] = offset;
          if (srcs[i]!.length > 0) addon.copyBlock({ src: srcs[i]!, srcShape: t.shape, srcBegin: zeros(rank), dst: out, dstShape: shape, dstBegin: begin, block: t.shape });
          offset += t.shape[axis];
        });
        return output(args.backend, shape, dtype, asDtype(out, dtype));
      },
    },
    {
      // tf.unstack, and the gradient of tf.stack: one block copy per output.
      // (The cpu kernel slices element by element in JS: 146 ms a step for
      // MultiMNIST's two stacked reconstructions, [100, 2, 1296].)
      kernelName: Unpack,
      kernelFunc: (args: KernelArgs) => {
        const x = args.inputs.value;
        const src = x ? words(args.backend, x) : null;
        if (!x || !src || x.shape.length === 0) return unpackFallback(args);
        const axis = tf.util.parseAxisParam(args.attrs.axis as number, x.shape)[0];
        const shape = x.shape.filter((_, k) => k !== axis);
        const block = x.shape.map((d, k) => (k === axis ? 1 : d));
        return Array.from({ length: x.shape[axis] }, (_, j) => {
          const begin = zeros(x.shape.length);
          begin[axis] = j;
          const out = allocF32(sizeOf(shape));
          if (out.length > 0) addon.copyBlock({ src, srcShape: x.shape, srcBegin: begin, dst: out, dstShape: block, dstBegin: zeros(block.length), block });
          return output(args.backend, shape, x.dtype, asDtype(out, x.dtype));
        });
      },
    },
    {
      kernelName: GatherV2,
      kernelFunc: (args: KernelArgs) => {
        const { x, indices } = args.inputs;
        const src = x ? words(args.backend, x) : null;
        const idx = indices ? values(args.backend, indices) : null;
        if (!x || !indices || !src || !(idx instanceof Int32Array) || Number(args.attrs.batchDims ?? 0) !== 0 || x.shape.length === 0) return gatherFallback(args);
        const axis = tf.util.parseAxisParam(args.attrs.axis as number, x.shape)[0];
        const shape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
        const out = allocF32(sizeOf(shape));
        const outer = sizeOf(x.shape.slice(0, axis));
        const inner = sizeOf(x.shape.slice(axis + 1));
        addon.gather({ x: src, outer, dim: x.shape[axis], inner, indices: idx, out });
        return output(args.backend, shape, x.dtype, asDtype(out, x.dtype));
      },
    },
    {
      kernelName: Transpose,
      kernelFunc: (args: KernelArgs) => {
        const x = args.inputs.x;
        if (!x) return transposeFallback(args);
        // 4-byte elements move as they are; an int32 tensor is viewed as floats.
        const src = words(args.backend, x);
        if (!src) return transposeFallback(args);
        const perm = args.attrs.perm as number[];
        const shape = perm.map((p) => x.shape[p]);
        const out = allocF32(src.length);
        if (src.length > 0) addon.transpose({ x: src, shape: x.shape, perm, out });
        return output(args.backend, shape, x.dtype, asDtype(out, x.dtype));
      },
    },
    {
      kernelName: Cast,
      kernelFunc: (args: KernelArgs) => {
        const x = args.inputs.x;
        const to = args.attrs.dtype as tf.DataType;
        const kind = x ? castKinds[`${x.dtype}>${to}`] : undefined;
        if (!x || kind === undefined) return castFallback(args);
        const v = values(args.backend, x);
        const ok = (x.dtype === 'float32' && v instanceof Float32Array) || (x.dtype === 'int32' && v instanceof Int32Array) || (x.dtype === 'bool' && v instanceof Uint8Array);
        if (!ok) return castFallback(args);
        const n = (v as Float32Array).length;
        const out = to === 'float32' ? allocF32(n) : to === 'int32' ? allocI32(n) : allocU8(n);
        if (n > 0) addon.cast({ kind, x: v as Float32Array, out });
        return output(args.backend, x.shape, to, out);
      },
    },
  ];
}
