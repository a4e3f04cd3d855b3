/**
 * Routing by agreement, Procedure 1 of "Dynamic Routing Between Capsules".
 *
 *   b_ij <- 0                                   (per example)
 *   for r iterations:
 *     c_i   <- softmax_j(b_i)                   (Eq. 3: over the output capsules)
 *     s_j   <- sum_i c_ij u_hat_j|i             (Eq. 2)
 *     v_j   <- squash(s_j)                      (Eq. 1)
 *     b_ij  <- b_ij + u_hat_j|i . v_j           (agreement; not after the last)
 *
 * The couplings c are computed in the forward pass and are not parameters.
 * Gradients flow through every iteration; with `stopGradientInner` the
 * prediction vectors are treated as constants in every iteration but the
 * last, as several public implementations do.
 */
import * as tf from '@tensorflow/tfjs';
import { FUSED_KERNELS, fusedOp, runKernel, stopGradient } from '../backend/fused.js';
import { squash } from './squash.js';

export interface DynamicRoutingOptions {
  /** Routing iterations r (the paper uses 3). */
  iterations: number;
  /** Detach u_hat in all iterations but the last. Default false. */
  stopGradientInner?: boolean;
}

export interface DynamicRoutingResult {
  /** Output capsules, [batch, outCaps, outDim]. */
  v: tf.Tensor3D;
  /** Coupling coefficients c used in each iteration, each [batch, inCaps, outCaps]. */
  couplings: tf.Tensor3D[];
}

function checkInputs(uHat: tf.Tensor, options: DynamicRoutingOptions): void {
  if (uHat.rank !== 4) {
    throw new Error(`dynamicRouting: uHat must be [batch, inCaps, outCaps, outDim], got shape [${uHat.shape}]`);
  }
  if (!Number.isInteger(options.iterations) || options.iterations < 1) {
    throw new Error(`dynamicRouting: iterations must be a positive integer, got ${options.iterations}`);
  }
}

/** Procedure 1 in plain tfjs ops: the reference and browser implementation. */
export function dynamicRoutingReference(uHat: tf.Tensor4D, options: DynamicRoutingOptions): DynamicRoutingResult {
  checkInputs(uHat, options);
  const { iterations, stopGradientInner = false } = options;
  const [batch, inCaps, outCaps] = uHat.shape;
  return tf.tidy(() => {
    const uHatInner = stopGradientInner ? stopGradient(uHat) : uHat;
    const couplings: tf.Tensor3D[] = [];
    let b: tf.Tensor3D = tf.zeros([batch, inCaps, outCaps]);
    let v: tf.Tensor3D | null = null;
    for (let r = 0; r < iterations; r++) {
      const last = r === iterations - 1;
      const u = last ? uHat : uHatInner;
      const c = tf.softmax(b, -1) as tf.Tensor3D;
      couplings.push(c);
      const s = tf.sum(tf.mul(tf.expandDims(c, 3), u), 1) as tf.Tensor3D; // [batch, outCaps, outDim]
      v = squash(s);
      if (!last) {
        const agreement = tf.sum(tf.mul(u, tf.expandDims(v, 1)), 3) as tf.Tensor3D;
        b = tf.add(b, agreement);
      }
    }
    return { v: v as tf.Tensor3D, couplings };
  });
}

/** The fused Procedure 1; v's gradient is the CapsDynamicRoutingGrad kernel (couplings carry none). */
const fusedDynamicRouting = fusedOp(FUSED_KERNELS.dynamicRouting, {
  inputsToSave: ['uHat'],
  gradFunc: (dys, saved, attrs) => {
    const [uHat] = saved;
    const dv = Array.isArray(dys) ? dys[0] : dys;
    return {
      uHat: () =>
        runKernel(FUSED_KERNELS.dynamicRoutingGrad, { uHat, dv }, {
          iterations: attrs.iterations,
          stopGradientInner: attrs.stopGradientInner,
        }) as tf.Tensor,
    };
  },
});

/**
 * Route prediction vectors uHat [batch, inCaps, outCaps, outDim] to output
 * capsules. On a backend with the fused kernel the couplings come back
 * without a gradient (they are for inspection); v's gradient is exact.
 */
export function dynamicRouting(uHat: tf.Tensor4D, options: DynamicRoutingOptions): DynamicRoutingResult {
  checkInputs(uHat, options);
  if (uHat.dtype === 'float32' && fusedDynamicRouting.available()) {
    const out = fusedDynamicRouting.run({ uHat }, {
      iterations: options.iterations,
      stopGradientInner: options.stopGradientInner ?? false,
    }) as tf.Tensor[];
    const [v, ...couplings] = out;
    return { v: v as tf.Tensor3D, couplings: couplings as tf.Tensor3D[] };
  }
  return dynamicRoutingReference(uHat, options);
}
