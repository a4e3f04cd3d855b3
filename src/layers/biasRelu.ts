/**
 * y = max(x + bias, 0), bias along the last axis: the epilogue of every
 * ReLU convolution and dense layer. Written once in plain tfjs ops (the
 * reference and the browser path); where the backend has the fused kernel
 * (see src/backend/fused.ts) it runs in one pass, and its gradient, dx =
 * dy where y > 0 and dbias the sum of dx over all but the last axis, in one
 * more. tfjs runs this epilogue fused only when no gradient is recorded; in
 * training it is an Add and a Relu, and their gradients a Step, a Multiply
 * and a Sum, each a pass over the layer's output.
 */
import * as tf from '@tensorflow/tfjs';
import { FUSED_KERNELS, fusedOp, runKernel } from '../backend/fused.js';

/** The plain-tfjs definition: the reference and browser implementation. */
export function biasReluReference<T extends tf.Tensor>(x: T, bias: tf.Tensor1D): T {
  return tf.tidy(() => tf.relu(tf.add(x, bias)) as T);
}

const fusedBiasRelu = fusedOp(FUSED_KERNELS.biasRelu, {
  inputsToSave: [],
  outputsToSave: [true],
  gradFunc: (dy, saved) => {
    const [y] = saved;
    const [dx, dbias] = runKernel(FUSED_KERNELS.biasReluGrad, { dy: dy as tf.Tensor, y }) as tf.Tensor[];
    return { x: () => dx, bias: () => dbias };
  },
});

/**
 * True while tfjs records gradients (inside tf.grads or variableGrads): its
 * fused conv2d and matMul then run a ReLU epilogue unfused, so the layers
 * apply biasRelu themselves.
 */
export function recordingGradients(): boolean {
  return tf.engine().state.gradientDepth > 0;
}

/** max(x + bias, 0) with bias along the last axis. */
export function biasRelu<T extends tf.Tensor>(x: T, bias: tf.Tensor1D): T {
  if (x.dtype === 'float32' && x.rank > 0 && bias.shape[0] === x.shape[x.rank - 1] && fusedBiasRelu.available()) {
    return fusedBiasRelu.run({ x, bias }) as T;
  }
  return biasReluReference(x, bias);
}
