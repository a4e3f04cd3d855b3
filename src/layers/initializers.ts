/**
 * Weight initializers drawn from the project's seeded Rng (not tfjs's global
 * random state), so that a seed fixes a model exactly.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.js';

export type InitializerSpec =
  | { kind: 'zeros' }
  | { kind: 'glorotUniform'; fanIn: number; fanOut: number }
  | { kind: 'normal'; stddev: number };

export function initialize(spec: InitializerSpec, shape: number[], rng: Rng): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  switch (spec.kind) {
    case 'zeros':
      break;
    case 'glorotUniform': {
      const limit = Math.sqrt(6 / (spec.fanIn + spec.fanOut));
      for (let i = 0; i < n; i++) out[i] = rng.uniform(-limit, limit);
      break;
    }
    case 'normal':
      for (let i = 0; i < n; i++) out[i] = spec.stddev * rng.normal();
      break;
  }
  return tf.tensor(out, shape);
}
