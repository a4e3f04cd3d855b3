/**
 * Adam (Kingma and Ba 2015), the optimizer of "Dynamic Routing Between
 * Capsules", with its whole state (moments and step count) readable and
 * writable so that checkpoints resume exactly.
 *
 *   m <- b1 m + (1 - b1) g
 *   v <- b2 v + (1 - b2) g^2
 *   w <- w - lr_t m / (sqrt(v) + eps_hat),  lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)
 *
 * (the "epsilon hat" form of the paper's section 2, as in TensorFlow). A
 * backend with the fused kernel CapsAdamUpdate does each variable's update in
 * one pass.
 */
import * as tf from '@tensorflow/tfjs';
import { FUSED_KERNELS, fusedOp } from '../backend/fused.js';
import type { Param } from '../layers/layer.js';

/** The fused update: new weights and both moments in one kernel (no gradient: it runs outside the tape). */
const fusedAdamUpdate = fusedOp(FUSED_KERNELS.adamUpdate);

export interface AdamConfig {
  learningRate: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
}

export interface AdamState {
  step: number;
  /** First and second moments per parameter name. */
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

/** One Adam update in plain tfjs ops; returns [w', m', v']. */
export function adamUpdateReference(w: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, attrs: { lr: number; beta1: number; beta2: number; epsilon: number; step: number }): tf.Tensor[] {
  const { lr, beta1, beta2, epsilon, step } = attrs;
  return tf.tidy(() => {
    const lrT = (lr * Math.sqrt(1 - beta2 ** step)) / (1 - beta1 ** step);
    const m2 = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
    const v2 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
    const w2 = tf.sub(w, tf.mul(tf.div(m2, tf.add(tf.sqrt(v2), epsilon)), lrT));
    return [w2, m2, v2];
  });
}

export class Adam {
  learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  step = 0;
  private moments = new Map<string, { m: tf.Variable; v: tf.Variable }>();

  constructor(config: AdamConfig) {
    this.learningRate = config.learningRate;
    this.beta1 = config.beta1 ?? 0.9;
    this.beta2 = config.beta2 ?? 0.999;
    this.epsilon = config.epsilon ?? 1e-7;
  }

  private momentsFor(name: string, w: tf.Variable): { m: tf.Variable; v: tf.Variable } {
    let s = this.moments.get(name);
    if (!s) {
      // tidy releases the zero tensors; variables survive it.
      s = tf.tidy(() => ({ m: tf.variable(tf.zerosLike(w), false), v: tf.variable(tf.zerosLike(w), false) }));
      this.moments.set(name, s);
    }
    return s;
  }

  /** One update of every parameter that has a gradient (grads keyed by parameter name). */
  applyGradients(params: Param[], grads: Map<string, tf.Tensor>): void {
    this.step++;
    const attrs = { lr: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon, step: this.step };
    const fused = fusedAdamUpdate.available();
    for (const { name, value: w } of params) {
      const g = grads.get(name);
      if (!g) continue;
      const s = this.momentsFor(name, w);
      tf.tidy(() => {
        const [w2, m2, v2] = fused
          ? (fusedAdamUpdate.run({ w, g, m: s.m, v: s.v }, attrs) as tf.Tensor[])
          : adamUpdateReference(w, g, s.m, s.v, attrs);
        w.assign(w2);
        s.m.assign(m2);
        s.v.assign(v2);
      });
    }
  }

  getState(): AdamState {
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (const [name, s] of this.moments) {
      m[name] = s.m.dataSync() as Float32Array;
      v[name] = s.v.dataSync() as Float32Array;
    }
    return { step: this.step, m, v };
  }

  /** Restore the step count and moments for `params` (sizes are checked). */
  setState(state: AdamState, params: Param[]): void {
    this.step = state.step;
    for (const { name, value: w } of params) {
      const m = state.m[name];
      const v = state.v[name];
      if (!m || !v) continue;
      if (m.length !== w.size || v.length !== w.size) {
        throw new Error(`optimizer state for ${name} has ${m.length} values, the parameter has ${w.size}`);
      }
      const s = this.momentsFor(name, w);
      tf.tidy(() => {
        s.m.assign(tf.tensor(m, w.shape));
        s.v.assign(tf.tensor(v, w.shape));
      });
    }
  }

  dispose(): void {
    for (const s of this.moments.values()) tf.dispose([s.m, s.v]);
    this.moments.clear();
  }
}
