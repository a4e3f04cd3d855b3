/** 2-D convolution (NHWC) with optional ReLU: CapsNet's Conv1 and the CNN baseline's layers. */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.js';
import { biasRelu, recordingGradients } from './biasRelu.js';
import { Layer, type Shape } from './layer.js';

export type Activation = 'linear' | 'relu' | 'sigmoid';

export interface Conv2DConfig extends Record<string, unknown> {
  filters: number;
  kernelSize: number;
  strides?: number;
  padding?: 'valid' | 'same';
  activation?: Activation;
}

export function convOutputSize(size: number, kernel: number, stride: number, padding: 'valid' | 'same'): number {
  return padding === 'same' ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1;
}

export class Conv2D extends Layer<Conv2DConfig> {
  static override readonly className = 'Conv2D';
  kernel!: tf.Variable;
  bias!: tf.Variable;

  protected createWeights(inputShape: Shape, rng: Rng): void {
    const inChannels = inputShape[3] as number;
    const { filters, kernelSize: k } = this.config;
    this.kernel = this.addWeight('kernel', [k, k, inChannels, filters], { kind: 'glorotUniform', fanIn: k * k * inChannels, fanOut: k * k * filters }, rng);
    this.bias = this.addWeight('bias', [filters], { kind: 'zeros' }, rng);
  }

  computeOutputShape(inputShape: Shape): Shape {
    const { kernelSize, strides = 1, padding = 'valid', filters } = this.config;
    const [b, h, w] = inputShape;
    const oh = convOutputSize(h as number, kernelSize, strides, padding);
    const ow = convOutputSize(w as number, kernelSize, strides, padding);
    if (oh < 1 || ow < 1) throw new Error(`${this.name}: a ${kernelSize}x${kernelSize} kernel with stride ${strides} does not fit a ${h}x${w} input`);
    return [b, oh, ow, filters];
  }

  call(x: tf.Tensor4D): tf.Tensor4D {
    const { strides = 1, padding = 'valid', activation = 'linear' } = this.config;
    // Outside training the fused op runs conv + bias + ReLU in one kernel;
    // while gradients are recorded tfjs would run it unfused, so the ReLU
    // layers take biasRelu instead. Sigmoid is applied separately.
    return tf.tidy(() => {
      if (activation === 'relu' && recordingGradients()) return biasRelu(tf.conv2d(x, this.kernel as tf.Tensor4D, strides, padding), this.bias as tf.Tensor1D);
      const fusedAct = activation === 'sigmoid' ? 'linear' : activation;
      const y = tf.fused.conv2d({ x, filter: this.kernel as tf.Tensor4D, strides, pad: padding, bias: this.bias, activation: fusedAct });
      return (activation === 'sigmoid' ? tf.sigmoid(y) : y) as tf.Tensor4D;
    });
  }
}
