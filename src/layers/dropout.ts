/**
 * Inverted dropout with masks drawn from the project's seeded Rng, so that a
 * resumed run draws the same masks.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.js';

export function dropout(x: tf.Tensor2D, rate: number, rng: Rng | undefined, training: boolean): tf.Tensor2D {
  if (!training || rate <= 0) return x;
  if (!rng) throw new Error('dropout in training needs an Rng');
  const keep = 1 - rate;
  const mask = new Float32Array(x.size);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.next() < keep ? 1 / keep : 0;
  return tf.tidy(() => tf.mul(x, tf.tensor2d(mask, x.shape)) as tf.Tensor2D);
}
