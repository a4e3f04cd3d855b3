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
import { unfoldChildren, type EmGeometry } from '../capsules/emGeometry.js';
import { emRouting, emRoutingReference, type EmRoutingResult } from '../capsules/emRouting.js';
import { calibrateBetaU, layerRoutingOptions, type EmRoutingConfig } from '../capsules/emSettings.js';
import type { Rng } from '../util/rng.js';
import { convOutputSize } from './conv2d.js';
import { Layer, type Shape } from './layer.js';
import { matrixVotes, POSE_DIM, POSE_SIZE } from '../capsules/matrixVotes.js';
import type { MatrixCapsules } from './matrixCapsules.js';
import { tidyRecord } from '../util/tidy.js';

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

export class ConvCapsules extends Layer<ConvCapsulesConfig> {
  static override readonly className = 'ConvCapsules';
  W!: tf.Variable;
  betaU!: tf.Variable;
  betaA!: tf.Variable;

  /** The layer's EM routing settings (iterations, schedule, floors), as configured. */
  get routing(): EmRoutingConfig {
    return this.config.routing;
  }
  /** Where the children of each parent sit (set when built; the ONNX export reads it). */
  geometry!: EmGeometry;

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
      return (reference ? emRoutingReference : emRouting)(votes, a, layerRoutingOptions(this.config.routing, this.betaU, this.betaA, iterations, { geometry: g }));
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
