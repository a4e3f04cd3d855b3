/**
 * Depthwise 2-D convolution (NHWC) with a bias: every input channel is
 * convolved with its own `depthMultiplier` kernels and nothing mixes the
 * channels, so a k x k layer over C channels holds k*k*C*multiplier weights
 * where a full convolution would hold k*k*C*C*multiplier.
 *
 * Initialisation: Glorot-uniform with the fans that Keras gives the official
 * Efficient-CapsNet code's grouped convolution (Conv2D with groups equal to
 * the channels): fan-in k*k (one input channel per kernel), fan-out k*k times
 * all the output channels.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.js';
import { convOutputSize } from './conv2d.js';
import { Layer, type Shape } from './layer.js';

export interface DepthwiseConv2DConfig extends Record<string, unknown> {
  kernelSize: number;
  strides?: number;
  padding?: 'valid' | 'same';
  depthMultiplier?: number;
}

export class DepthwiseConv2D<C extends DepthwiseConv2DConfig = DepthwiseConv2DConfig> extends Layer<C> {
  static override readonly className: string = 'DepthwiseConv2D';
  kernel!: tf.Variable;
  bias!: tf.Variable;

  protected createWeights(inputShape: Shape, rng: Rng): void {
    const channels = inputShape[3] as number;
    const { kernelSize: k, depthMultiplier = 1 } = this.config;
    const outChannels = channels * depthMultiplier;
    this.kernel = this.addWeight('kernel', [k, k, channels, depthMultiplier], { kind: 'glorotUniform', fanIn: k * k, fanOut: k * k * outChannels }, rng);
    this.bias = this.addWeight('bias', [outChannels], { kind: 'zeros' }, rng);
  }

  /** The convolution's output shape [batch, height, width, channels * depthMultiplier]. */
  protected convShape(inputShape: Shape): [number | null, number, number, number] {
    const { kernelSize, strides = 1, padding = 'valid', depthMultiplier = 1 } = this.config;
    for (const [what, v] of [['kernelSize', kernelSize], ['strides', strides], ['depthMultiplier', depthMultiplier]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`${this.name}: ${what} must be a positive integer, got ${v}`);
    }
    if (inputShape.length !== 4) throw new Error(`${this.name}: expects NHWC maps, got shape [${inputShape.map((d) => d ?? 'batch')}]`);
    const [b, h, w, c] = inputShape;
    const oh = convOutputSize(h as number, kernelSize, strides, padding);
    const ow = convOutputSize(w as number, kernelSize, strides, padding);
    if (oh < 1 || ow < 1) throw new Error(`${this.name}: a ${kernelSize}x${kernelSize} kernel with stride ${strides} does not fit a ${h}x${w} input`);
    return [b, oh, ow, (c as number) * depthMultiplier];
  }

  computeOutputShape(inputShape: Shape): Shape {
    return this.convShape(inputShape);
  }

  /** The convolution plus bias, [batch, height, width, channels * depthMultiplier]. */
  convolve(x: tf.Tensor4D): tf.Tensor4D {
    const { strides = 1, padding = 'valid' } = this.config;
    return tf.tidy(() => tf.add(tf.depthwiseConv2d(x, this.kernel as tf.Tensor4D, strides, padding), this.bias) as tf.Tensor4D);
  }

  call(x: tf.Tensor4D): tf.Tensor {
    return this.convolve(x);
  }
}
