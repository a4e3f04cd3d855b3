/**
 * Prediction vectors of a fully connected capsule layer (Eq. 2):
 *
 *   u_hat_j|i = W_ij u_i
 *
 * u: [batch, inCaps, inDim]; W: [inCaps, outCaps, outDim, inDim], one matrix
 * per (input capsule, output capsule) pair, as in the paper. Result:
 * [batch, inCaps, outCaps, outDim].
 */
import * as tf from '@tensorflow/tfjs';
import { FUSED_KERNELS, fusedOp, productGradient } from '../backend/fused.js';

function checkShapes(u: tf.Tensor, W: tf.Tensor): void {
  if (u.rank !== 3) throw new Error(`predictionVectors: u must be [batch, inCaps, inDim], got [${u.shape}]`);
  if (W.rank !== 4) throw new Error(`predictionVectors: W must be [inCaps, outCaps, outDim, inDim], got [${W.shape}]`);
  if (u.shape[1] !== W.shape[0] || u.shape[2] !== W.shape[3]) {
    throw new Error(`predictionVectors: u [${u.shape}] does not fit W [${W.shape}] (inCaps and inDim must agree)`);
  }
}

/** Batched matmul over the input capsules: the reference and browser path. */
export function predictionVectorsReference(u: tf.Tensor3D, W: tf.Tensor4D): tf.Tensor4D {
  checkShapes(u, W);
  const [batch, inCaps, inDim] = u.shape;
  const [, outCaps, outDim] = W.shape;
  return tf.tidy(() => {
    const uT = tf.transpose(u, [1, 0, 2]); // [inCaps, batch, inDim]
    const w = tf.reshape(W, [inCaps, outCaps * outDim, inDim]);
    const prod = tf.matMul(uT, w, false, true); // [inCaps, batch, outCaps*outDim]
    return tf.reshape(tf.transpose(prod, [1, 0, 2]), [batch, inCaps, outCaps, outDim]) as tf.Tensor4D;
  });
}

/** The fused Eq. 2; its gradients are the two CapsPredictionVectorsGrad kernels. */
const fusedPredictionVectors = fusedOp(FUSED_KERNELS.predictionVectors, productGradient('u', FUSED_KERNELS.predictionVectorsGradInput, FUSED_KERNELS.predictionVectorsGradWeights));

export function predictionVectors(u: tf.Tensor3D, W: tf.Tensor4D): tf.Tensor4D {
  checkShapes(u, W);
  if (u.dtype === 'float32' && W.dtype === 'float32' && fusedPredictionVectors.available()) {
    return fusedPredictionVectors.run({ u, W }) as tf.Tensor4D;
  }
  return predictionVectorsReference(u, W);
}
