/**
 * BatchMatMul and _FusedMatMul on sgemm (matmul.cc), with the fused bias and
 * activation of biasActivation.cc.
 */
import * as tf from '@tensorflow/tfjs';
import { BatchMatMul, _FusedMatMul } from '@tensorflow/tfjs';
import type { NativeAddon, OpCode, OpCodes } from '../boundary/addon.js';
import { allocF32, cpuKernel, f32, output, releaseScratch, sizeOf, type Backend, type KernelArgs, type NativeKernelConfig, type TensorInfo } from './kernelUtil.js';

/** The engine's code for a fused kernel's `activation` attribute (absent: linear), or undefined for one it lacks (prelu). */
export function activationCode(codes: OpCodes, activation: unknown): OpCode<'activation'> | undefined {
  const byName: Readonly<Partial<Record<string, OpCode<'activation'>>>> = codes.activation;
  return byName[String(activation ?? 'linear')];
}

interface MatMulResult {
  values: Float32Array;
  shape: number[];
  rows: number;
  cols: number;
}

/** a @ b with tfjs's batch rules, or null when an input is not float32. */
function batchMatMul(addon: NativeAddon, backend: Backend, a: TensorInfo, b: TensorInfo, transA: boolean, transB: boolean): MatMulResult | null {
  const av = f32(backend, a);
  const bv = f32(backend, b);
  if (!av || !bv || a.shape.length < 2 || b.shape.length < 2) return null;
  const ar = a.shape.length;
  const br = b.shape.length;
  const M = transA ? a.shape[ar - 1] : a.shape[ar - 2];
  const K = transA ? a.shape[ar - 2] : a.shape[ar - 1];
  const K2 = transB ? b.shape[br - 1] : b.shape[br - 2];
  const N = transB ? b.shape[br - 2] : b.shape[br - 1];
  if (K !== K2) {
    throw new Error(`Error in matMul: inner shapes (${K}) and (${K2}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transA} and transposeB=${transB} must match.`);
  }
  const outer = tf.backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batchA = sizeOf(a.shape.slice(0, -2));
  const batchB = sizeOf(b.shape.slice(0, -2));
  const batch = Math.max(batchA, batchB);
  const shape = [...outer, M, N];
  const out = allocF32(sizeOf(shape));
  if (out.length > 0) addon.batchMatMul({ a: av, b: bv, out, batchA, batchB, M, N, K, transA, transB });
  return { values: out, shape, rows: batch * M, cols: N };
}

export function matmulKernels(addon: NativeAddon, codes: OpCodes): NativeKernelConfig[] {
  const matMulFallback = cpuKernel(BatchMatMul);
  const fusedFallback = cpuKernel(_FusedMatMul);
  return [
    {
      kernelName: BatchMatMul,
      kernelFunc: (args: KernelArgs) => {
        const { a, b } = args.inputs;
        const r = a && b ? batchMatMul(addon, args.backend, a, b, Boolean(args.attrs.transposeA), Boolean(args.attrs.transposeB)) : null;
        if (!r) return matMulFallback(args);
        return output(args.backend, r.shape, 'float32', r.values);
      },
    },
    {
      kernelName: _FusedMatMul,
      kernelFunc: (args: KernelArgs) => {
        const { a, b, bias } = args.inputs;
        const act = activationCode(codes, args.attrs.activation);
        if (!a || !b || act === undefined || (bias && !f32(args.backend, bias))) return fusedFallback(args);
        const r = batchMatMul(addon, args.backend, a, b, Boolean(args.attrs.transposeA), Boolean(args.attrs.transposeB));
        if (!r) return fusedFallback(args);
        const alpha = Number(args.attrs.leakyreluAlpha ?? 0.2);
        const biasValues = bias ? f32(args.backend, bias)! : new Float32Array(0);
        // A per-column (or scalar) bias is applied in the epilogue; any other
        // broadcastable bias is added first.
        let y = r.values;
        let shape = r.shape;
        let epilogueBias = biasValues;
        if (bias && !(bias.shape.length <= 1 && (biasValues.length === r.cols || biasValues.length === 1))) {
          shape = tf.backend_util.assertAndGetBroadcastShape(r.shape, bias.shape);
          const sum = allocF32(sizeOf(shape));
          if (sum.length > 0) addon.binary({ op: codes.binary.Add, a: y, aShape: r.shape, b: biasValues, bShape: bias.shape, out: sum, outShape: shape });
          releaseScratch(y);
          y = sum;
          epilogueBias = new Float32Array(0);
        }
        const cols = shape[shape.length - 1];
        if (y.length > 0) addon.biasActivation({ y, rows: y.length / cols, cols, bias: epilogueBias, activation: act, alpha });
        return output(args.backend, shape, 'float32', y);
      },
    },
  ];
}
