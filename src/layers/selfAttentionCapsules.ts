/**
 * Efficient-CapsNet's class capsules (Mazzia, Salvetti, Chiaberge 2021,
 * Methods): a fully connected capsule layer. Every input capsule i predicts
 * every output capsule j through its own matrix, u_hat_j|i = W_ij u_i, and
 * one pass of self-attention routing with learned priors b_ij combines the
 * predictions (src/capsules/selfAttentionRouting.ts). W and b are learned.
 *
 * W is [inCaps, outCaps, outDim, inDim], the layout of CapsNet's DigitCaps,
 * so the prediction vectors share one implementation; b is [inCaps, outCaps]
 * and starts at zero. W starts Gaussian with the He variance Keras gives the
 * official code's 4-D W: 2 / fan-in with fan-in inDim * outCaps * inCaps.
 */
import * as tf from '@tensorflow/tfjs';
import { predictionVectors } from '../capsules/predictionVectors.js';
import { selfAttentionRouting, type SelfAttentionRoutingResult } from '../capsules/selfAttentionRouting.js';
import type { Rng } from '../util/rng.js';
import { Layer, type Shape } from './layer.js';

export interface SelfAttentionCapsulesConfig extends Record<string, unknown> {
  /** Output capsules (one per class). */
  capsules: number;
  /** Dimension of each output capsule. */
  dim: number;
  /** Std of the Gaussian that initialises W (default: the He value above). */
  initStddev?: number;
}

export class SelfAttentionCapsules extends Layer<SelfAttentionCapsulesConfig> {
  static override readonly className = 'SelfAttentionCapsules';
  W!: tf.Variable;
  priors!: tf.Variable;

  protected createWeights(inputShape: Shape, rng: Rng): void {
    const [, inCaps, inDim] = inputShape as number[];
    const { capsules, dim } = this.config;
    const initStddev = this.config.initStddev ?? Math.sqrt(2 / (inDim * capsules * inCaps));
    this.W = this.addWeight('W', [inCaps, capsules, dim, inDim], { kind: 'normal', stddev: initStddev }, rng);
    this.priors = this.addWeight('priors', [inCaps, capsules], { kind: 'zeros' }, rng);
  }

  computeOutputShape(inputShape: Shape): Shape {
    if (inputShape.length !== 3) throw new Error(`${this.name}: expects capsules [batch, capsules, dim], got shape [${inputShape.map((d) => d ?? 'batch')}]`);
    const { capsules, dim } = this.config;
    for (const [what, v] of [['capsules', capsules], ['dim', dim]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`${this.name}: ${what} must be a positive integer, got ${v}`);
    }
    return [inputShape[0], capsules, dim];
  }

  /** u: [batch, inCaps, inDim] -> v [batch, capsules, dim] and the coupling coefficients [batch, inCaps, capsules]. */
  call(u: tf.Tensor3D): SelfAttentionRoutingResult {
    const uHat = predictionVectors(u, this.W as tf.Tensor4D);
    const out = selfAttentionRouting(uHat, this.priors as tf.Tensor2D);
    uHat.dispose();
    return out;
  }
}
