/**
 * DigitCaps: a fully connected capsule layer. Every input capsule i predicts
 * every output capsule j through its own matrix, u_hat_j|i = W_ij u_i (Eq. 2),
 * and routing by agreement combines the predictions (Procedure 1). Only W is
 * learned; the couplings are computed anew for every input.
 */
import * as tf from '@tensorflow/tfjs';
import { dynamicRouting, type DynamicRoutingResult } from '../capsules/dynamicRouting.js';
import { predictionVectors } from '../capsules/predictionVectors.js';
import type { Rng } from '../util/rng.js';
import { Layer, type Shape } from './layer.js';

export interface DigitCapsulesConfig extends Record<string, unknown> {
  /** Output capsules (one per class). */
  capsules: number;
  /** Dimension of each output capsule. */
  dim: number;
  routingIterations: number;
  stopGradientInner?: boolean;
  /** Std of the Gaussian that initialises W. */
  initStddev?: number;
}

export class DigitCapsules extends Layer<DigitCapsulesConfig> {
  static override readonly className = 'DigitCapsules';
  W!: tf.Variable;

  protected createWeights(inputShape: Shape, rng: Rng): void {
    const [, inCaps, inDim] = inputShape as number[];
    const { capsules, dim, initStddev = 0.01 } = this.config;
    this.W = this.addWeight('W', [inCaps, capsules, dim, inDim], { kind: 'normal', stddev: initStddev }, rng);
  }

  computeOutputShape(inputShape: Shape): Shape {
    return [inputShape[0], this.config.capsules, this.config.dim];
  }

  /** u: [batch, inCaps, inDim] → v [batch, capsules, dim] and the couplings of each iteration. */
  call(u: tf.Tensor3D, routingIterations = this.config.routingIterations): DynamicRoutingResult {
    const uHat = predictionVectors(u, this.W as tf.Tensor4D);
    const out = dynamicRouting(uHat, { iterations: routingIterations, stopGradientInner: this.config.stopGradientInner ?? false });
    uHat.dispose();
    return out;
  }
}
