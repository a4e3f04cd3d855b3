/** Fully connected layer: the decoder's layers and the CNN baseline's head. */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.js';
import type { Activation } from './conv2d.js';
import { biasRelu, recordingGradients } from './biasRelu.js';
import { Layer, type Shape } from './layer.js';

export interface DenseConfig extends Record<string, unknown> {
  units: number;
  activation?: Activation;
}

export class Dense extends Layer<DenseConfig> {
  static override readonly className = 'Dense';
  kernel!: tf.Variable;
  bias!: tf.Variable;

  protected createWeights(inputShape: Shape, rng: Rng): void {
    const inUnits = inputShape[inputShape.length - 1] as number;
    this.kernel = this.addWeight('kernel', [inUnits, this.config.units], { kind: 'glorotUniform', fanIn: inUnits, fanOut: this.config.units }, rng);
    this.bias = this.addWeight('bias', [this.config.units], { kind: 'zeros' }, rng);
  }

  computeOutputShape(inputShape: Shape): Shape {
    return [...inputShape.slice(0, -1), this.config.units];
  }

  call(x: tf.Tensor2D): tf.Tensor2D {
    const { activation = 'linear' } = this.config;
    return tf.tidy(() => {
      if (activation === 'relu' && recordingGradients()) return biasRelu(tf.matMul(x, this.kernel as tf.Tensor2D), this.bias as tf.Tensor1D);
      const fusedAct = activation === 'sigmoid' ? 'linear' : activation;
      const y = tf.fused.matMul({ a: x, b: this.kernel as tf.Tensor2D, bias: this.bias, activation: fusedAct });
      return (activation === 'sigmoid' ? tf.sigmoid(y) : y) as tf.Tensor2D;
    });
  }
}
