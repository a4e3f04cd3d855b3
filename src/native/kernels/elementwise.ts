/**
 * Elementwise kernels (elementwise.cc): unary maps and broadcasting binary
 * ops on float32 tensors, one kernel per op name of NATIVE_OPS. Other dtypes
 * go to the cpu kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { ClipByValue, Equal, Greater, GreaterEqual, LeakyRelu, Less, LessEqual, NotEqual, Step } from '@tensorflow/tfjs';
import { NATIVE_OPS, type OpName } from '../../backend/kernelTable.js';
import type { NativeAddon, OpCodes } from '../boundary/addon.js';
import { allocF32, allocU8, cpuKernel, f32, output, sizeOf, type KernelArgs, type NativeKernelConfig } from './kernelUtil.js';

/** The binary ops with a bool output. */
const COMPARISONS: ReadonlySet<OpName<'binary'>> = new Set([Greater, GreaterEqual, Less, LessEqual, Equal, NotEqual]);

/** unary()'s alpha and beta for the ops that have parameters. */
function unaryParams(name: OpName<'unary'>, attrs: Record<string, unknown>): { alpha?: number; beta?: number } {
  switch (name) {
    case Step:
      return { alpha: Number(attrs.alpha ?? 0) };
    case LeakyRelu:
      return { alpha: Number(attrs.alpha ?? 0.2) };
    case ClipByValue:
      return { alpha: Number(attrs.clipValueMin), beta: Number(attrs.clipValueMax) };
    default:
      return {};
  }
}

export function elementwiseKernels(addon: NativeAddon, codes: OpCodes): NativeKernelConfig[] {
  const out: NativeKernelConfig[] = [];
  for (const name of NATIVE_OPS.unary) {
    const op = codes.unary[name];
    const fallback = cpuKernel(name);
    out.push({
      kernelName: name,
      kernelFunc: (args: KernelArgs) => {
        const x = args.inputs.x;
        const xs = f32(args.backend, x);
        if (!x || !xs) return fallback(args);
        const y = allocF32(xs.length);
        if (xs.length > 0) addon.unary({ op, x: xs, y, ...unaryParams(name, args.attrs) });
        return output(args.backend, x.shape, 'float32', y);
      },
    });
  }
  for (const name of NATIVE_OPS.binary) {
    const op = codes.binary[name];
    const fallback = cpuKernel(name);
    const comparison = COMPARISONS.has(name);
    out.push({
      kernelName: name,
      kernelFunc: (args: KernelArgs) => {
        const { a, b } = args.inputs;
        const as = f32(args.backend, a);
        const bs = f32(args.backend, b);
        if (!a || !b || !as || !bs) return fallback(args);
        const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
        const n = sizeOf(shape);
        const y = comparison ? allocU8(n) : allocF32(n);
        if (n > 0) addon.binary({ op, a: as, aShape: a.shape, b: bs, bShape: b.shape, out: y, outShape: shape });
        return output(args.backend, shape, comparison ? 'bool' : 'float32', y);
      },
    });
  }
  return out;
}
