/**
 * Elementwise kernels (elementwise.cc): unary maps and broadcasting binary
 * ops on float32 tensors. Other dtypes go to the cpu kernels.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from '../boundary/addon.js';
import { allocF32, allocU8, cpuKernel, f32, output, sizeOf, type KernelArgs, type NativeKernelConfig } from './kernelUtil.js';

/** Kernel name -> op code of unary() in elementwise.cc (same order as its enum). */
export const UNARY_OPS: Record<string, number> = {
  Neg: 0,
  Abs: 1,
  Square: 2,
  Sqrt: 3,
  Rsqrt: 4,
  Exp: 5,
  Log: 6,
  Log1p: 7,
  Expm1: 8,
  Reciprocal: 9,
  Relu: 10,
  Relu6: 11,
  Sigmoid: 12,
  Tanh: 13,
  Step: 14,
  LeakyRelu: 15,
  Elu: 16,
  Floor: 17,
  Ceil: 18,
  Round: 19,
  Sign: 20,
  Sin: 21,
  Cos: 22,
  ClipByValue: 23,
};

/** Kernel name -> op code of binary() in elementwise.cc. Codes from 8 on are comparisons with bool output. */
export const BINARY_OPS: Record<string, number> = {
  Add: 0,
  Sub: 1,
  Multiply: 2,
  RealDiv: 3,
  Maximum: 4,
  Minimum: 5,
  Pow: 6,
  SquaredDifference: 7,
  Greater: 8,
  GreaterEqual: 9,
  Less: 10,
  LessEqual: 11,
  Equal: 12,
  NotEqual: 13,
};
const FIRST_COMPARISON = 8;

function unaryParams(name: string, attrs: Record<string, unknown>): [number, number] {
  switch (name) {
    case 'Step':
      return [Number(attrs.alpha ?? 0), 0];
    case 'LeakyRelu':
      return [Number(attrs.alpha ?? 0.2), 0];
    case 'ClipByValue':
      return [Number(attrs.clipValueMin), Number(attrs.clipValueMax)];
    default:
      return [0, 0];
  }
}

export function elementwiseKernels(addon: NativeAddon): NativeKernelConfig[] {
  const out: NativeKernelConfig[] = [];
  for (const [name, op] of Object.entries(UNARY_OPS)) {
    const fallback = cpuKernel(name);
    out.push({
      kernelName: name,
      kernelFunc: (args: KernelArgs) => {
        const x = args.inputs.x;
        const xs = f32(args.backend, x);
        if (!x || !xs) return fallback(args);
        const [alpha, beta] = unaryParams(name, args.attrs);
        const y = allocF32(xs.length);
        if (xs.length > 0) addon.unary(op, xs, y, alpha, beta);
        return output(args.backend, x.shape, 'float32', y);
      },
    });
  }
  for (const [name, op] of Object.entries(BINARY_OPS)) {
    const fallback = cpuKernel(name);
    const comparison = op >= FIRST_COMPARISON;
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
        if (n > 0) addon.binary(op, as, a.shape, bs, b.shape, y, shape);
        return output(args.backend, shape, comparison ? 'bool' : 'float32', y);
      },
    });
  }
  return out;
}
