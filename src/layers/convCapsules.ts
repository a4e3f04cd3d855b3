/**
 * Convolutional matrix capsules ("Matrix capsules with EM routing",
 * section 4): each parent position sees the K x K x B child capsules of its
 * receptive field; each (kernel position, input type, output type) has one
 * learned 4x4 transformation matrix, shared across positions like a
 * convolution kernel; children vote V = M W for every parent type, and EM
 * routing turns the votes into the parents' poses and activations. A child
 * that falls into several overlapping windows is routed among all the parents
 * of all those windows (the E-step normalises across positions and types).
 */
import * as tf from '@tensorflow/tfjs';
import { emRouting, emRoutingReference, unfoldChildren, type EmGeometry, type EmRoutingOptions, type EmRoutingResult, type InverseTemperature } from '../capsules/emRouting.js';
import type { Rng } from '../util/rng.js';
import { convOutputSize } from './conv2d.js';
import { Layer, type Shape } from './layer.js';
import { matrixVotes, POSE_DIM, POSE_SIZE, type MatrixCapsules } from './matrixCapsules.js';
import { tidyRecord } from '../util/tidy.js';

/** Settings of EM routing shared by the capsule layers (see emRouting). */
export interface EmRoutingConfig {
  iterations: number;
  /** Inverse temperature schedule (see emRouting). */
  inverseTemperature: InverseTemperature;
  varianceFloor: number;
}

export interface ConvCapsulesConfig extends Record<string, unknown> {
  /** Output capsule types. */
  types: number;
  kernelSize: number;
  strides: number;
  routing: EmRoutingConfig;
  /** Std of the Gaussian that initialises the transformation matrices. */
  initStddev?: number;
}

export interface CapsuleLayerOutput extends MatrixCapsules {
  /** EM routing's final assignment probabilities [batch, P, N, J]. */
  routing: tf.Tensor4D;
}

/**
 * Data-dependent start for beta_u: the paper's cost sum_h (beta_u + log sigma_h)
 * depends on the scale of the votes, which the initial weights fix only
 * loosely; the paper's authors chose their initial weights so that half of
 * the capsules of each layer start active. Setting beta_u to minus the mean
 * log sigma that routing finds on a batch centres the cost at zero, so that
 * with beta_a = 0 the activations start around one half. Two passes, since
 * routing itself depends on beta_u.
 */
export function calibrateBetaU(betaU: tf.Variable, route: () => EmRoutingResult): void {
  for (let pass = 0; pass < 2; pass++) {
    tf.tidy(() => {
      const r = route();
      if (!r.variances) throw new Error('calibrateBetaU: routing did not report variances');
      const [, , j] = r.variances.shape;
      const meanLogSigma = tf.mean(tf.reshape(tf.mul(tf.log(r.variances), 0.5), [-1, j, r.variances.shape[3]]), [0, 2]);
      betaU.assign(tf.neg(meanLogSigma));
    });
  }
}

export class ConvCapsules extends Layer<ConvCapsulesConfig> {
  static override readonly className = 'ConvCapsules';
  W!: tf.Variable;
  betaU!: tf.Variable;
  betaA!: tf.Variable;
  private geometry!: EmGeometry;

  protected createWeights(inputShape: Shape, rng: Rng): void {
    const [, h, w, inTypes] = inputShape as number[];
    const { types, kernelSize: k, initStddev = 0.5 } = this.config;
    this.W = this.addWeight('W', [k * k * inTypes, types, POSE_SIZE, POSE_SIZE], { kind: 'normal', stddev: initStddev }, rng);
    this.betaU = this.addWeight('beta_u', [types], { kind: 'zeros' }, rng);
    this.betaA = this.addWeight('beta_a', [types], { kind: 'zeros' }, rng);
    const [oh, ow] = this.grid(inputShape);
    this.geometry = { inHeight: h, inWidth: w, inTypes, kernel: k, stride: this.config.strides, outHeight: oh, outWidth: ow };
  }

  private grid(inputShape: Shape): [number, number] {
    const { kernelSize: k, strides: s } = this.config;
    return [convOutputSize(inputShape[1] as number, k, s, 'valid'), convOutputSize(inputShape[2] as number, k, s, 'valid')];
  }

  computeOutputShape(inputShape: Shape): Shape {
    const [oh, ow] = this.grid(inputShape);
    const { kernelSize: k, strides: s } = this.config;
    if (oh < 1 || ow < 1) throw new Error(`${this.name}: a ${k}x${k} kernel with stride ${s} does not fit a ${inputShape[1]}x${inputShape[2]} capsule grid`);
    return [inputShape[0], oh, ow, this.config.types, POSE_SIZE, POSE_SIZE];
  }

  private route(input: MatrixCapsules, iterations: number, reference: boolean): EmRoutingResult {
    const g = this.geometry;
    const [, h, w, t] = input.activations.shape;
    if (h !== g.inHeight || w !== g.inWidth || t !== g.inTypes) {
      throw new Error(`${this.name}: expects a ${g.inHeight}x${g.inWidth} grid of ${g.inTypes} capsule types, got [${input.activations.shape}]`);
    }
    return tidyRecord(() => {
      const M = unfoldChildren(input.poses, g) as tf.Tensor4D; // [b, P, N, 16]
      const a = unfoldChildren(input.activations, g) as tf.Tensor3D; // [b, P, N]
      const votes = matrixVotes(M, this.W);
      const options: EmRoutingOptions = {
        betaU: this.betaU,
        betaA: this.betaA,
        iterations,
        inverseTemperature: this.config.routing.inverseTemperature,
        varianceFloor: this.config.routing.varianceFloor,
        geometry: g,
      };
      return (reference ? emRoutingReference : emRouting)(votes, a, options);
    });
  }

  /** Centre the routing cost on `input` (see calibrateBetaU). */
  calibrate(input: MatrixCapsules): void {
    calibrateBetaU(this.betaU, () => this.route(input, this.config.routing.iterations, true));
  }

  call(input: MatrixCapsules, iterations = this.config.routing.iterations): CapsuleLayerOutput {
    const g = this.geometry;
    const [b] = input.activations.shape;
    return tf.tidy(() => {
      const r = this.route(input, iterations, false);
      const J = this.config.types;
      return {
        poses: tf.reshape(r.poses, [b, g.outHeight, g.outWidth, J, POSE_DIM]) as tf.Tensor5D,
        activations: tf.reshape(r.activations, [b, g.outHeight, g.outWidth, J]) as tf.Tensor4D,
        routing: r.routing,
      };
    });
  }
}
