/**
 * Reductions and softmax (reduce.cc). A reduction over axes that are not
 * adjacent is done as a native transpose that moves them last, then a
 * reduction over the trailing block.
 */
import * as tf from '@tensorflow/tfjs';
import { ArgMax, ArgMin, Softmax } from '@tensorflow/tfjs';
import { NATIVE_OPS } from '../../backend/kernelTable.js';
import type { NativeAddon, OpCodes } from '../boundary/addon.js';
import { allocF32, allocI32, cpuKernel, f32, output, releaseScratch, sizeOf, type KernelArgs, type NativeKernelConfig } from './kernelUtil.js';

export interface ReducePlan {
  outer: number;
  r: number;
  inner: number;
  /** Transpose to apply first, when the reduced axes are not one block. */
  perm?: number[];
}

/** Bring a reduction of `axes` of `shape` to the form [outer, r, inner] -> [outer, inner]. */
export function reducePlan(shape: number[], axes: number[]): ReducePlan {
  const reduced = new Set(axes);
  // Axes of size 1 can sit anywhere; the others must read keep* reduce* keep*.
  let phase = 0;
  let outer = 1;
  let r = 1;
  let inner = 1;
  let contiguous = true;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (d === 1) continue;
    const isReduced = reduced.has(i);
    if (phase === 0) {
      if (isReduced) {
        phase = 1;
        r *= d;
      } else {
        outer *= d;
      }
    } else if (phase === 1) {
      if (isReduced) r *= d;
      else {
        phase = 2;
        inner *= d;
      }
    } else if (isReduced) {
      contiguous = false;
      break;
    } else {
      inner *= d;
    }
  }
  if (contiguous) return { outer, r, inner };
  const keep = shape.map((_, i) => i).filter((i) => !reduced.has(i));
  const red = shape.map((_, i) => i).filter((i) => reduced.has(i));
  return {
    outer: sizeOf(keep.map((i) => shape[i])),
    r: sizeOf(red.map((i) => shape[i])),
    inner: 1,
    perm: [...keep, ...red],
  };
}

export function reduceKernels(addon: NativeAddon, codes: OpCodes): NativeKernelConfig[] {
  const out: NativeKernelConfig[] = [];
  for (const name of NATIVE_OPS.reduce) {
    const op = codes.reduce[name];
    const fallback = cpuKernel(name);
    const isArg = name === ArgMax || name === ArgMin;
    out.push({
      kernelName: name,
      kernelFunc: (args: KernelArgs) => {
        const x = args.inputs.x;
        const xs = f32(args.backend, x);
        if (!x || !xs) return fallback(args);
        // Max names its axes reductionIndices; the others, axis.
        const axes = tf.util.parseAxisParam((args.attrs.axis ?? args.attrs.reductionIndices) as number | number[], x.shape);
        const plan = reducePlan(x.shape, axes);
        if (plan.r === 0 || sizeOf(x.shape) === 0) return fallback(args);
        const keepDims = !isArg && Boolean(args.attrs.keepDims);
        const outShape = keepDims ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
        let src = xs;
        if (plan.perm) {
          src = allocF32(xs.length);
          addon.transpose({ x: xs, shape: x.shape, perm: plan.perm, out: src });
        }
        const n = plan.outer * plan.inner;
        const y = isArg ? allocI32(n) : allocF32(n);
        addon.reduce({ op, x: src, outer: plan.outer, r: plan.r, inner: plan.inner, out: y });
        if (src !== xs) releaseScratch(src);
        return output(args.backend, outShape, isArg ? 'int32' : 'float32', y);
      },
    });
  }

  const softmaxFallback = cpuKernel(Softmax);
  out.push({
    kernelName: Softmax,
    kernelFunc: (args: KernelArgs) => {
      const logits = args.inputs.logits;
      const xs = f32(args.backend, logits);
      if (!logits || !xs || logits.shape.length === 0) return softmaxFallback(args);
      const rank = logits.shape.length;
      const dim = Number(args.attrs.dim ?? -1);
      if (dim !== -1 && dim !== rank - 1) return softmaxFallback(args);
      const cols = logits.shape[rank - 1];
      if (cols === 0 || xs.length === 0) return softmaxFallback(args);
      const y = allocF32(xs.length);
      addon.softmax({ x: xs, rows: xs.length / cols, cols, out: y });
      return output(args.backend, logits.shape, 'float32', y);
    },
  });
  return out;
}
