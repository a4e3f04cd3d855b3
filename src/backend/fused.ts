/**
 * Fused kernels: a library function (squash, dynamicRouting, ...) is written
 * once in plain tfjs ops, which is the reference and the browser path. A
 * backend may also register a kernel under its FUSED_KERNELS name; when the active
 * backend has one, the library function runs that kernel instead, and the
 * gradient is taken from the matching `...Grad` kernel. Models and the CLI
 * never see the difference.
 *
 * Each op's file defines it in one place with `fusedOp`: its reference, its
 * kernel and the gradient of that kernel. The names of every fused kernel
 * (FUSED_KERNELS) are declared with the native entry points that compute
 * them, and the modules of their native kernels, in
 * src/backend/kernelTable.ts.
 */
import * as tf from '@tensorflow/tfjs';

export { FUSED_KERNELS, type FusedKernelKey } from './kernelTable.js';

let fusedEnabled = true;

/** Turn the fused kernels off (true) or on again, e.g. to compare them with the reference. */
export function setFusedKernelsEnabled(enabled: boolean): void {
  fusedEnabled = enabled;
}

export function fusedKernelsEnabled(): boolean {
  return fusedEnabled;
}

/** True when the active backend provides kernel `name` and fused kernels are on. */
export function hasFusedKernel(name: string): boolean {
  if (!fusedEnabled) return false;
  return tf.getKernel(name, tf.getBackend()) != null;
}

export function runKernel(name: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap = {}): tf.Tensor | tf.Tensor[] {
  return tf.engine().runKernel(name, inputs, attrs);
}

/** A fused op's forward kernel, as the op's dispatcher uses it. */
export interface FusedOp {
  readonly kernelName: string;
  /** True when the active backend has the kernel and fused kernels are on. */
  available(): boolean;
  /** Run the kernel; its gradient is registered with tfjs before the first run. */
  run(inputs: tf.NamedTensorMap, attrs?: tf.NamedAttrMap): tf.Tensor | tf.Tensor[];
}

/**
 * The forward kernel `kernelName` of a fused op and the gradient tfjs takes
 * through it (usually by running the op's `...Grad` kernels).
 */
export function fusedOp(kernelName: string, gradient?: Omit<tf.GradConfig, 'kernelName'>): FusedOp {
  let pending = gradient;
  return {
    kernelName,
    available: () => hasFusedKernel(kernelName),
    run(inputs, attrs = {}) {
      if (pending) {
        tf.registerGradient({ ...pending, kernelName });
        pending = undefined;
      }
      return runKernel(kernelName, inputs, attrs);
    },
  };
}

/**
 * The gradient of a product y = f(x, W) of an input x and weights W whose
 * fused kernels give dx from (dy, W) and dW from (dy, x): two kernels, so
 * that only the gradients the tape needs are computed.
 */
export function productGradient(x: string, gradInputKernel: string, gradWeightsKernel: string): Omit<tf.GradConfig, 'kernelName'> {
  return {
    inputsToSave: [x, 'W'],
    gradFunc: (dy, saved) => {
      const [xValue, W] = saved;
      const g = dy as tf.Tensor;
      return {
        [x]: () => runKernel(gradInputKernel, { dy: g, W }) as tf.Tensor,
        W: () => runKernel(gradWeightsKernel, { dy: g, [x]: xValue }) as tf.Tensor,
      };
    },
  };
}

/**
 * A tensor with the same values as x that the gradient tape does not see:
 * the stop-gradient of other frameworks. It shares x's memory.
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  const engine = tf.engine();
  const out = engine.makeTensorFromDataId(x.dataId, x.shape, x.dtype) as T;
  // makeTensorFromDataId tracks the new tensor but does not take a reference
  // on the backend's data: take one, as variables do, so each tensor can be
  // disposed on its own.
  engine.backend.incRef(x.dataId);
  return out;
}
