/**
 * Plumbing shared by the native kernels: reading a tensor's typed array
 * (zero-copy), allocating outputs, and falling back to the cpu kernel of the
 * same name for cases the addon does not cover (other dtypes, layouts or
 * activations). The native backend keeps its data exactly as the cpu
 * backend does, so the fallback runs on the same memory.
 */
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { FusedKernelModule, FusedKernelsOf } from '../../backend/kernelTable.js';

export type TensorInfo = tf.TensorInfo;
export type Backend = MathBackendCPU;

export interface KernelArgs {
  inputs: Record<string, TensorInfo | undefined>;
  attrs: Record<string, unknown>;
  backend: Backend;
}

export type NativeKernel = (args: KernelArgs) => TensorInfo | TensorInfo[];

export interface NativeKernelConfig {
  kernelName: string;
  kernelFunc: NativeKernel;
}

/**
 * The kernels of module M, one for each fused kernel that
 * src/backend/kernelTable.ts assigns to it: the result of the module's
 * `fusedKernels(addon)` export, which src/native/backend.ts imports from the
 * table. Leaving one out, or adding one the table assigns elsewhere, does
 * not compile.
 */
export type FusedKernels<M extends FusedKernelModule> = { readonly [K in FusedKernelsOf<M>]: NativeKernel };

/**
 * Input `name` of a kernel as a Float32Array, with a readable error when it is
 * missing, not float32, or not of the expected rank (a number) or shape (an
 * array).
 */
export function f32Input(kernel: string, args: KernelArgs, name: string, expected?: number | number[]): { t: TensorInfo; v: Float32Array } {
  const t = args.inputs[name];
  if (!t) fail(kernel, `missing input ${name}`);
  if (t.dtype !== 'float32') fail(kernel, `${name} must be float32, got ${t.dtype}`);
  if (typeof expected === 'number' && t.shape.length !== expected) fail(kernel, `${name} must have rank ${expected}, got shape [${t.shape}]`);
  if (Array.isArray(expected) && (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i]))) fail(kernel, `${name} must have shape [${expected}], got [${t.shape}]`);
  const v = values(args.backend, t);
  if (!(v instanceof Float32Array)) fail(kernel, `${name} is not held as a Float32Array`);
  return { t, v };
}

/** The tensor's values, as stored by the backend. */
export function values(backend: Backend, t: TensorInfo): tf.backend_util.BackendValues {
  return backend.data.get(t.dataId).values as tf.backend_util.BackendValues;
}

/** The float32 values of t, or null when t is not a float32 tensor held as a Float32Array. */
export function f32(backend: Backend, t: TensorInfo | undefined): Float32Array | null {
  if (t == null || t.dtype !== 'float32') return null;
  const v = backend.data.get(t.dataId).values;
  return v instanceof Float32Array ? v : null;
}

export { allocF32, allocI32, allocU8, releaseScratch } from '../memory.js';

export function output(backend: Backend, shape: number[], dtype: tf.DataType, vals: tf.backend_util.BackendValues): TensorInfo {
  return backend.makeTensorInfo(shape, dtype, vals);
}

/** The cpu backend's kernel `name`, to run on the native backend's memory. */
export function cpuKernel(name: string): NativeKernel {
  const k = tf.getKernel(name, 'cpu');
  if (!k) {
    return () => {
      throw new Error(`native backend: no kernel for ${name}`);
    };
  }
  const kernelFunc = k.kernelFunc;
  return (args) => kernelFunc({ inputs: args.inputs, attrs: args.attrs as tf.NamedAttrMap, backend: args.backend });
}

/** A native kernel as tfjs registers it: it runs on the native backend's memory, which is the cpu backend's. */
export function asKernelFunc(kernel: NativeKernel, name: string): tf.KernelFunc {
  return ({ inputs, attrs, backend }) => {
    if (!(backend instanceof MathBackendCPU)) throw new Error(`${name}: the native kernel was called on another backend`);
    return kernel({ inputs, attrs: attrs ?? {}, backend });
  };
}

export function sizeOf(shape: number[]): number {
  return tf.util.sizeFromShape(shape);
}

/** Fails unless a and b have the same shape. */
export function sameShape(kernel: string, a: TensorInfo, b: TensorInfo, what: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) fail(kernel, `${what}: shapes [${a.shape}] and [${b.shape}] differ`);
}

export function fail(kernel: string, message: string): never {
  throw new Error(`${kernel}: ${message}`);
}
