/**
 * Self-attention routing of "Efficient-CapsNet: Capsule Network with
 * Self-Attention Routing" (Mazzia, Salvetti, Chiaberge 2021, Methods): one
 * non-iterative pass from n input capsules to the output capsules.
 *
 * For every output capsule j, the prediction vectors u_hat_j|i of the n
 * inputs are the rows of a matrix U_j [n, d]:
 *
 *   A_j   = U_j U_j^T / sqrt(d)              self-attention matrix [n, n]
 *   c_ij  = softmax_j( sum_k A_j[i, k] )     coupling coefficients, the
 *                                            softmax over the output capsules
 *   s_j   = sum_i (c_ij + b_ij) u_hat_j|i    b: learned priors [n, outCaps]
 *   v_j   = squash(s_j)                      Efficient-CapsNet's squash
 *
 * An input capsule whose prediction agrees with the others' predictions for
 * the same parent (a large row sum of A_j) sends it more of its output.
 * sum_k A_j[i, k] = u_hat_j|i . (sum_k u_hat_j|k) / sqrt(d), so A_j is never
 * formed: one sum over the inputs and one dot product per (i, j).
 * Dividing by sqrt(d), as in scaled dot-product attention, keeps the logits'
 * spread independent of the capsule dimension; the softmax itself subtracts
 * its maximum, so large agreements saturate instead of overflowing.
 */
import * as tf from '@tensorflow/tfjs';
import { FUSED_KERNELS, fusedOp, runKernel } from '../backend/fused.js';
import { efficientSquash } from './squash.js';

export interface SelfAttentionRoutingResult {
  /** Output capsules, [batch, outCaps, outDim]. */
  v: tf.Tensor3D;
  /** Coupling coefficients c (before the priors are added), [batch, inCaps, outCaps]. */
  couplings: tf.Tensor3D;
}

function checkInputs(uHat: tf.Tensor, priors: tf.Tensor): void {
  if (uHat.rank !== 4) {
    throw new Error(`selfAttentionRouting: uHat must be [batch, inCaps, outCaps, outDim], got shape [${uHat.shape}]`);
  }
  if (priors.rank !== 2 || priors.shape[0] !== uHat.shape[1] || priors.shape[1] !== uHat.shape[2]) {
    throw new Error(`selfAttentionRouting: priors must be [inCaps, outCaps] = [${uHat.shape[1]}, ${uHat.shape[2]}], got shape [${priors.shape}]`);
  }
}

/** The routing in plain tfjs ops: the reference and browser implementation. */
export function selfAttentionRoutingReference(uHat: tf.Tensor4D, priors: tf.Tensor2D): SelfAttentionRoutingResult {
  checkInputs(uHat, priors);
  const outDim = uHat.shape[3];
  return tf.tidy(() => {
    const total = tf.sum(uHat, 1, true); // [batch, 1, outCaps, outDim]: sum_k u_hat_j|k
    const logits = tf.mul(tf.sum(tf.mul(uHat, total), 3), 1 / Math.sqrt(outDim)); // [batch, inCaps, outCaps]
    const couplings = tf.softmax(logits, -1) as tf.Tensor3D;
    const weights = tf.add(couplings, priors); // c_ij + b_ij
    const s = tf.sum(tf.mul(tf.expandDims(weights, 3), uHat), 1) as tf.Tensor3D; // [batch, outCaps, outDim]
    return { v: efficientSquash(s), couplings };
  });
}

/**
 * The fused routing, squash included: [v, couplings] in one kernel; its
 * gradient in uHat and the priors is the CapsSelfAttentionRoutingGrad
 * kernel (which takes the couplings' gradient too, when they have one).
 */
const fusedSelfAttentionRouting = fusedOp(FUSED_KERNELS.selfAttentionRouting, {
  inputsToSave: ['uHat', 'priors'],
  gradFunc: (dys, saved) => {
    const [uHat, priors] = saved;
    const [dv, dcouplings] = dys as (tf.Tensor | null)[];
    const [batch, , outCaps, outDim] = uHat.shape;
    const inputs: tf.NamedTensorMap = { uHat, priors, dv: dv ?? tf.zeros([batch, outCaps, outDim]) };
    if (dcouplings) inputs.dcouplings = dcouplings;
    const [duHat, dpriors] = runKernel(FUSED_KERNELS.selfAttentionRoutingGrad, inputs) as tf.Tensor[];
    return { uHat: () => duHat, priors: () => dpriors };
  },
});

/**
 * Route prediction vectors uHat [batch, inCaps, outCaps, outDim] to output
 * capsules with learned priors [inCaps, outCaps]: the fused kernel where the
 * backend has it (as dynamicRouting() does), else the plain tfjs definition.
 */
export function selfAttentionRouting(uHat: tf.Tensor4D, priors: tf.Tensor2D): SelfAttentionRoutingResult {
  checkInputs(uHat, priors);
  if (uHat.dtype === 'float32' && priors.dtype === 'float32' && fusedSelfAttentionRouting.available()) {
    const [v, couplings] = fusedSelfAttentionRouting.run({ uHat, priors }) as tf.Tensor[];
    return { v: v as tf.Tensor3D, couplings: couplings as tf.Tensor3D };
  }
  return selfAttentionRoutingReference(uHat, priors);
}
