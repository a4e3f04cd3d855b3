/**
 * Batch normalization (Ioffe and Szegedy 2015) over the last axis, as
 * Efficient-CapsNet's backbone uses it after each convolution:
 *
 *   training:   mu, sigma^2 = mean and (biased) variance of the batch over
 *               every axis but the channels
 *               y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta
 *               moving_mu  <- momentum moving_mu  + (1 - momentum) mu
 *               moving_var <- momentum moving_var + (1 - momentum) sigma^2 n/(n-1)
 *   inference:  y = gamma (x - moving_mu) / sqrt(moving_var + eps) + beta
 *
 * with n the values per channel in the batch. momentum 0.99 and eps 1e-3 are
 * the Keras defaults the official Efficient-CapsNet code trains with; the
 * moving variance takes the unbiased batch variance, as TensorFlow's fused
 * batch norm and PyTorch do. eps keeps the division finite for a channel
 * that is constant over the batch (sigma^2 = 0, e.g. a ReLU that is off
 * everywhere).
 *
 * gamma and beta are trained. The moving statistics are parameters too, so
 * that saved models and checkpoints carry them, but their variables are not
 * trainable: the optimizer never sees a gradient for them, and countParams()
 * counts only gamma and beta.
 */
import * as tf from '@tensorflow/tfjs';
import { FUSED_KERNELS, fusedOp, runKernel } from '../backend/fused.js';
import type { Rng } from '../util/rng.js';
import { Layer, type Shape } from './layer.js';

export const KERAS_BATCH_NORM_MOMENTUM = 0.99;
export const KERAS_BATCH_NORM_EPSILON = 1e-3;

export interface BatchNormalizationConfig extends Record<string, unknown> {
  momentum?: number;
  epsilon?: number;
}

export interface BatchNormTrainingResult {
  y: tf.Tensor;
  /** The batch mean and biased variance per channel, [channels]. */
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

/** Training-mode batch norm over every axis but the last, in plain tfjs ops: the reference and browser path. */
export function batchNormTrainingReference(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): BatchNormTrainingResult {
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
  return tf.tidy(() => {
    const mean = tf.mean(x, axes) as tf.Tensor1D;
    const centred = tf.sub(x, mean);
    const variance = tf.mean(tf.square(centred), axes) as tf.Tensor1D;
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(variance, epsilon)));
    return { y: tf.add(tf.mul(centred, scale), beta), mean, variance };
  });
}

/**
 * The fused training-mode batch norm: [y, mean, variance] in one kernel; its
 * gradient, CapsBatchNormTrainingGrad, gives dx, dgamma and dbeta in one
 * more pass (and takes the gradients reaching the statistics, if any).
 */
const fusedBatchNormTraining = fusedOp(FUSED_KERNELS.batchNormTraining, {
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [false, true, true],
  gradFunc: (dys, saved, attrs) => {
    const [x, gamma, mean, variance] = saved;
    const [dy, dmean, dvariance] = dys as (tf.Tensor | null)[];
    const inputs: tf.NamedTensorMap = { dy: dy ?? tf.zerosLike(x), x, gamma, mean, variance };
    if (dmean) inputs.dmean = dmean;
    if (dvariance) inputs.dvariance = dvariance;
    const [dx, dgamma, dbeta] = runKernel(FUSED_KERNELS.batchNormTrainingGrad, inputs, { epsilon: attrs.epsilon }) as tf.Tensor[];
    return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
  },
});

/**
 * Training-mode batch norm: the fused kernel where the backend has it (as
 * squash() does), else the plain tfjs definition.
 */
export function batchNormTraining(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): BatchNormTrainingResult {
  if (x.dtype === 'float32' && x.rank >= 2 && x.size > 0 && fusedBatchNormTraining.available()) {
    const [y, mean, variance] = fusedBatchNormTraining.run({ x, gamma, beta }, { epsilon }) as tf.Tensor[];
    return { y, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
  }
  return batchNormTrainingReference(x, gamma, beta, epsilon);
}

export class BatchNormalization extends Layer<BatchNormalizationConfig> {
  static override readonly className = 'BatchNormalization';
  gamma!: tf.Variable;
  beta!: tf.Variable;
  movingMean!: tf.Variable;
  movingVariance!: tf.Variable;

  get momentum(): number {
    return this.config.momentum ?? KERAS_BATCH_NORM_MOMENTUM;
  }

  get epsilon(): number {
    return this.config.epsilon ?? KERAS_BATCH_NORM_EPSILON;
  }

  protected createWeights(inputShape: Shape, rng: Rng): void {
    const channels = inputShape[inputShape.length - 1] as number;
    const { momentum, epsilon } = this;
    if (!(momentum >= 0 && momentum < 1)) throw new Error(`${this.name}: momentum must be in [0, 1), got ${momentum}`);
    if (!(epsilon > 0)) throw new Error(`${this.name}: epsilon must be positive, got ${epsilon}`);
    this.gamma = this.addWeight('gamma', [channels], { kind: 'zeros' }, rng);
    this.gamma.assign(tf.tidy(() => tf.ones([channels])));
    this.beta = this.addWeight('beta', [channels], { kind: 'zeros' }, rng);
    this.movingMean = this.addStatistic('moving_mean', tf.zeros([channels]));
    this.movingVariance = this.addStatistic('moving_variance', tf.ones([channels]));
  }

  /** A non-trainable parameter: saved with the model, never given to the optimizer. */
  private addStatistic(statName: string, initial: tf.Tensor): tf.Variable {
    const value = tf.variable(initial, false);
    initial.dispose();
    this.params.push({ name: `${this.name}/${statName}`, value });
    return value;
  }

  computeOutputShape(inputShape: Shape): Shape {
    return inputShape;
  }

  /** gamma and beta: the moving statistics are state, not trained parameters. */
  override countParams(): number {
    return this.gamma.size + this.beta.size;
  }

  /** Normalize x [..., channels]: with the batch's statistics (updating the moving ones) when training, else with the moving ones. */
  call<T extends tf.Tensor>(x: T, training = false): T {
    return tf.tidy(() => {
      if (!training) {
        const scale = tf.mul(this.gamma, tf.rsqrt(tf.add(this.movingVariance, this.epsilon)));
        const shift = tf.sub(this.beta, tf.mul(this.movingMean, scale));
        return tf.add(tf.mul(x, scale), shift) as T;
      }
      const { y, mean, variance } = batchNormTraining(x, this.gamma as tf.Tensor1D, this.beta as tf.Tensor1D, this.epsilon);
      const perChannel = x.size / (x.shape[x.rank - 1] as number);
      // The moving variance estimates the population's: Bessel's correction
      // (none for a single value per channel, whose variance is 0 anyway).
      const unbiased = perChannel > 1 ? tf.mul(variance, perChannel / (perChannel - 1)) : variance;
      const m = this.momentum;
      this.movingMean.assign(tf.add(tf.mul(this.movingMean, m), tf.mul(mean, 1 - m)));
      this.movingVariance.assign(tf.add(tf.mul(this.movingVariance, m), tf.mul(unbiased, 1 - m)));
      return y as T;
    });
  }
}
