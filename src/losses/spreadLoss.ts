/**
 * Spread loss ("Matrix capsules with EM routing", section 3.1):
 *
 *   L = sum_{i != t} max(0, m - (a_t - a_i))^2
 *
 * for target class t, averaged over the batch. It pushes the target's
 * activation a_t above every other activation by the margin m. Starting from
 * a small margin of 0.2 and raising it linearly to 0.9 during training avoids
 * dead capsules in the early layers (the paper's remark); `spreadMargin`
 * gives that schedule from the fraction of training done.
 *
 * With several target classes (multi-hot targets) each present class is
 * compared with every absent one, and the sum is divided by the number of
 * present classes, which reduces to the paper's loss for one class.
 */
import * as tf from '@tensorflow/tfjs';
import { toTargets } from './marginLoss.js';

export const SPREAD_MARGIN_START = 0.2;
export const SPREAD_MARGIN_END = 0.9;

/** The margin after `fraction` of training, rising linearly from `start` to `end`. */
export function spreadMargin(fraction: number, start = SPREAD_MARGIN_START, end = SPREAD_MARGIN_END): number {
  const f = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 1));
  return f === 1 ? end : start + (end - start) * f;
}

/** activations [batch, classes]; labels: class indices [batch] or multi-hot [batch, classes]. */
export function spreadLoss(activations: tf.Tensor2D, labels: tf.Tensor | ArrayLike<number>, margin: number): tf.Scalar {
  if (activations.rank !== 2) throw new Error(`spreadLoss: activations must be [batch, classes], got [${activations.shape}]`);
  if (!(margin >= 0 && Number.isFinite(margin))) throw new Error(`spreadLoss: margin must be a non-negative number, got ${margin}`);
  const [batch, classes] = activations.shape;
  return tf.tidy(() => {
    const T = toTargets(labels, classes, batch); // [b, E]
    // gap[b, t, i] = m - (a_t - a_i), counted for present t and absent i.
    const gap = tf.sub(margin, tf.sub(tf.expandDims(activations, 2), tf.expandDims(activations, 1)));
    const pairs = tf.mul(tf.expandDims(T, 2), tf.expandDims(tf.sub(1, T), 1));
    const perExample = tf.div(tf.sum(tf.mul(tf.square(tf.relu(gap)), pairs), [1, 2]), tf.maximum(tf.sum(T, 1), 1));
    return tf.mean(perExample) as tf.Scalar;
  });
}
