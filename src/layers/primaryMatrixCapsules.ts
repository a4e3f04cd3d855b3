/**
 * Primary matrix capsules ("Matrix capsules with EM routing", section 4):
 * a K x K convolution (1x1 in the paper) whose channels at every position
 * are cut into B capsule types, each a 4x4 pose (16 linear channels) and an
 * activation (one channel through a logistic). There is no routing into this
 * layer.
 *
 * Channel layout: pose entry h of type t is channel t*16 + h; the activation
 * of type t is channel B*16 + t.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.js';
import { convOutputSize } from './conv2d.js';
import { Layer, type Shape } from './layer.js';
import { POSE_DIM, POSE_SIZE } from '../capsules/matrixVotes.js';
import type { MatrixCapsules } from './matrixCapsules.js';

export interface PrimaryMatrixCapsulesConfig extends Record<string, unknown> {
  /** Capsule types B. */
  types: number;
  /** Kernel size (the paper: 1). */
  kernelSize?: number;
  strides?: number;
}

export class PrimaryMatrixCapsules extends Layer<PrimaryMatrixCapsulesConfig> {
  static override readonly className = 'PrimaryMatrixCapsules';
  kernel!: tf.Variable;
  bias!: tf.Variable;

  protected createWeights(inputShape: Shape, rng: Rng): void {
    const inChannels = inputShape[3] as number;
    const { types, kernelSize: k = 1 } = this.config;
    const channels = types * (POSE_DIM + 1);
    this.kernel = this.addWeight('kernel', [k, k, inChannels, channels], { kind: 'glorotUniform', fanIn: k * k * inChannels, fanOut: k * k * channels }, rng);
    this.bias = this.addWeight('bias', [channels], { kind: 'zeros' }, rng);
  }

  /** [batch, height, width, types, 4, 4]: the pose matrices (each with an activation). */
  computeOutputShape(inputShape: Shape): Shape {
    const { types, kernelSize = 1, strides = 1 } = this.config;
    const h = convOutputSize(inputShape[1] as number, kernelSize, strides, 'valid');
    const w = convOutputSize(inputShape[2] as number, kernelSize, strides, 'valid');
    if (h < 1 || w < 1) throw new Error(`${this.name}: a ${kernelSize}x${kernelSize} kernel does not fit a ${inputShape[1]}x${inputShape[2]} input`);
    return [inputShape[0], h, w, types, POSE_SIZE, POSE_SIZE];
  }

  call(x: tf.Tensor4D): MatrixCapsules {
    const { types, strides = 1 } = this.config;
    return tf.tidy(() => {
      const y = tf.fused.conv2d({ x, filter: this.kernel as tf.Tensor4D, strides, pad: 'valid', bias: this.bias });
      const [b, h, w] = y.shape;
      const poses = tf.reshape(tf.slice(y, [0, 0, 0, 0], [b, h, w, types * POSE_DIM]), [b, h, w, types, POSE_DIM]) as tf.Tensor5D;
      const activations = tf.sigmoid(tf.slice(y, [0, 0, 0, types * POSE_DIM], [b, h, w, types])) as tf.Tensor4D;
      return { poses, activations };
    });
  }
}
