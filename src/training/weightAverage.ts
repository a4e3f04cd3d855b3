/**
 * An exponential moving average of the weights over training (Polyak
 * averaging, in the bias-corrected form of Adam's moments):
 *
 *   a_t = d a_{t-1} + (1 - d) w_t,  a_0 = 0,    average_t = a_t / (1 - d^t)
 *
 * so the average is a weighted mean of the weights after each step, recent
 * ones counting most, with no contribution from the zero start. Late in
 * training the weights wander around a minimum from step to step; their
 * average sits nearer its centre, which is why the averaged model is the one
 * evaluated and saved when training averages weights.
 */
import * as tf from '@tensorflow/tfjs';
import type { Param } from '../layers/layer.js';

/** What a checkpoint keeps of an average: the update count and the running sums (before bias correction). */
export interface WeightAverageState {
  count: number;
  sums: Record<string, Float32Array>;
}

export class WeightAverage {
  readonly decay: number;
  /** Updates so far (t above). */
  count = 0;
  private sums = new Map<string, tf.Variable>();

  constructor(decay: number) {
    if (!(decay > 0 && decay < 1)) throw new Error(`weight-average decay must be in (0, 1), got ${decay}`);
    this.decay = decay;
  }

  private sumFor(p: Param): tf.Variable {
    let s = this.sums.get(p.name);
    if (!s) {
      s = tf.tidy(() => tf.variable(tf.zerosLike(p.value), false));
      this.sums.set(p.name, s);
    }
    return s;
  }

  /** Fold the parameters' current values into the average (once per optimizer step). */
  update(params: Param[]): void {
    this.count++;
    const d = this.decay;
    for (const p of params) {
      const s = this.sumFor(p);
      tf.tidy(() => s.assign(tf.add(tf.mul(s, d), tf.mul(p.value, 1 - d))));
    }
  }

  /** The averaged value of each parameter (bias-corrected); the caller disposes them. */
  averaged(params: Param[]): Map<string, tf.Tensor> {
    if (this.count === 0) throw new Error('the weight average has no updates yet');
    const scale = 1 / (1 - Math.pow(this.decay, this.count));
    return new Map(params.map((p) => [p.name, tf.tidy(() => tf.mul(this.sumFor(p), scale))]));
  }

  /** Put the averaged weights into the parameters (the training weights are overwritten). */
  assignTo(params: Param[]): void {
    const avg = this.averaged(params);
    for (const p of params) p.value.assign(avg.get(p.name)!);
    tf.dispose([...avg.values()]);
  }

  /**
   * Run `fn` with the averaged weights in the model's parameters, then put
   * the training weights back (bit for bit: they are copied aside first).
   */
  withAveraged<T>(params: Param[], fn: () => T): T {
    const saved = params.map((p) => tf.clone(p.value));
    try {
      this.assignTo(params);
      return fn();
    } finally {
      params.forEach((p, i) => p.value.assign(saved[i]));
      tf.dispose(saved);
    }
  }

  /** The running sums and update count, for checkpoints. */
  getState(): WeightAverageState {
    const sums: Record<string, Float32Array> = {};
    for (const [name, s] of this.sums) sums[name] = s.dataSync() as Float32Array;
    return { count: this.count, sums };
  }

  setState(state: WeightAverageState, params: Param[]): void {
    this.count = state.count;
    for (const p of params) {
      const v = state.sums[p.name];
      if (!v) throw new Error(`the checkpoint's weight average has no entry for ${p.name}`);
      if (v.length !== p.value.size) throw new Error(`weight average of ${p.name} has ${v.length} values, the parameter has ${p.value.size}`);
      const s = this.sumFor(p);
      tf.tidy(() => s.assign(tf.tensor(v, p.value.shape)));
    }
  }

  dispose(): void {
    tf.dispose([...this.sums.values()]);
    this.sums.clear();
  }
}
