/**
 * Instance normalization (Ulyanov, Vedaldi, Lempitsky 2016) of NHWC maps:
 * every channel of every image is normalized over its own positions,
 *
 *   y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta,
 *   mu, sigma^2 = mean and variance of x[n, :, :, c],
 *
 * the same in training and inference (no batch statistics, so no state).
 * Efficient-CapsNet's smallNORB backbone uses it after each convolution, as
 * the official code does with eps 1e-3 and gamma and beta drawn uniformly
 * from [-0.05, 0.05]. eps keeps the division finite for a channel that is
 * constant over an image.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.js';
import { Layer, type Shape } from './layer.js';

export interface InstanceNormalizationConfig extends Record<string, unknown> {
  epsilon?: number;
  /** gamma and beta start uniform in [-initRange, initRange]. */
  initRange?: number;
}

export class InstanceNormalization extends Layer<InstanceNormalizationConfig> {
  static override readonly className = 'InstanceNormalization';
  gamma!: tf.Variable;
  beta!: tf.Variable;

  get epsilon(): number {
    return this.config.epsilon ?? 1e-3;
  }

  protected createWeights(inputShape: Shape, rng: Rng): void {
    if (inputShape.length !== 4) throw new Error(`${this.name}: expects NHWC maps, got shape [${inputShape.map((d) => d ?? 'batch')}]`);
    if (!(this.epsilon > 0)) throw new Error(`${this.name}: epsilon must be positive, got ${this.epsilon}`);
    const channels = inputShape[3] as number;
    const range = this.config.initRange ?? 0.05;
    this.gamma = this.addWeight('gamma', [channels], { kind: 'zeros' }, rng);
    this.beta = this.addWeight('beta', [channels], { kind: 'zeros' }, rng);
    for (const w of [this.gamma, this.beta]) {
      const values = Float32Array.from({ length: channels }, () => rng.uniform(-range, range));
      w.assign(tf.tidy(() => tf.tensor1d(values)));
    }
  }

  computeOutputShape(inputShape: Shape): Shape {
    return inputShape;
  }

  call(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, [1, 2], true);
      const scale = tf.mul(this.gamma, tf.rsqrt(tf.add(variance, this.epsilon)));
      return tf.add(tf.mul(tf.sub(x, mean), scale), this.beta) as tf.Tensor4D;
    });
  }
}
