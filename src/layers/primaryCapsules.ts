/**
 * PrimaryCaps (section 4 of "Dynamic Routing Between Capsules"): a
 * convolution with `types * dim` channels, cut into `types` capsule maps of
 * `dim`-D vectors at every output position, then squashed. In the paper:
 * 32 types of 8-D capsules from 9x9 kernels with stride 2, on a 6x6 grid, so
 * 1152 capsules.
 *
 * Layout: channel c = type * dim + d; capsule index = (y * W + x) * types + type.
 */
import * as tf from '@tensorflow/tfjs';
import { squash } from '../capsules/squash.js';
import type { Rng } from '../util/rng.js';
import { convOutputSize } from './conv2d.js';
import { Layer, type Shape } from './layer.js';

export interface PrimaryCapsulesConfig extends Record<string, unknown> {
  types: number;
  dim: number;
  kernelSize: number;
  strides: number;
}

export class PrimaryCapsules extends Layer<PrimaryCapsulesConfig> {
  static override readonly className = 'PrimaryCapsules';
  kernel!: tf.Variable;
  bias!: tf.Variable;
  /** Output grid, known once built. */
  gridHeight = 0;
  gridWidth = 0;

  protected createWeights(inputShape: Shape, rng: Rng): void {
    const inChannels = inputShape[3] as number;
    const { types, dim, kernelSize: k } = this.config;
    const channels = types * dim;
    this.kernel = this.addWeight('kernel', [k, k, inChannels, channels], { kind: 'glorotUniform', fanIn: k * k * inChannels, fanOut: k * k * channels }, rng);
    this.bias = this.addWeight('bias', [channels], { kind: 'zeros' }, rng);
    [this.gridHeight, this.gridWidth] = this.grid(inputShape);
  }

  private grid(inputShape: Shape): [number, number] {
    const { kernelSize, strides } = this.config;
    return [convOutputSize(inputShape[1] as number, kernelSize, strides, 'valid'), convOutputSize(inputShape[2] as number, kernelSize, strides, 'valid')];
  }

  /** [batch, capsules, dim]. */
  computeOutputShape(inputShape: Shape): Shape {
    const { types, dim, kernelSize, strides } = this.config;
    const [oh, ow] = this.grid(inputShape);
    if (oh < 1 || ow < 1) throw new Error(`${this.name}: a ${kernelSize}x${kernelSize} kernel with stride ${strides} does not fit a ${inputShape[1]}x${inputShape[2]} input`);
    return [inputShape[0], oh * ow * types, dim];
  }

  /** Pre-squash convolution output, [batch, gridH, gridW, types * dim] (for inspection). */
  convolve(x: tf.Tensor4D): tf.Tensor4D {
    const { strides } = this.config;
    return tf.fused.conv2d({ x, filter: this.kernel as tf.Tensor4D, strides, pad: 'valid', bias: this.bias });
  }

  call(x: tf.Tensor4D): tf.Tensor3D {
    const { types, dim } = this.config;
    return tf.tidy(() => {
      const y = this.convolve(x);
      const [b, h, w] = y.shape;
      return squash(tf.reshape(y, [b, h * w * types, dim]) as tf.Tensor3D);
    });
  }
}
