/**
 * Squash non-linearity, Eq. 1 of "Dynamic Routing Between Capsules":
 *
 *   v = |s|^2 / (1 + |s|^2) * s / |s|
 *
 * Short vectors shrink to almost zero and long ones to just under unit
 * length, so a capsule's length can be read as a probability.
 *
 * Numerics: s is first divided by m = max|s_k| (held constant for the
 * gradient, since v does not depend on it). With t = s / m and r = |t| >= 1,
 *
 *   v = (t / r) * r^2 / (m^-2 + r^2)
 *
 * which never overflows for huge s, and at s = 0 (m clamped to a tiny value,
 * r = sqrt(eps)) gives v = 0 with finite, near-zero gradients.
 */
import * as tf from '@tensorflow/tfjs';
import { FUSED_KERNELS, fusedOp, runKernel, stopGradient } from '../backend/fused.js';

const TINY_MAX = 1e-12;
const EPS = 1e-12;

function normalizeAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`squash: axis ${axis} is out of range for a rank-${rank} tensor`);
  return a;
}

/** Eq. 1 with plain tfjs ops: the reference and browser implementation. */
export function squashReference<T extends tf.Tensor>(s: T, axis = -1): T {
  const ax = normalizeAxis(axis, s.rank);
  return tf.tidy(() => {
    const m = stopGradient(tf.maximum(tf.max(tf.abs(s), ax, true), TINY_MAX));
    const t = tf.div(s, m);
    const r2 = tf.add(tf.sum(tf.square(t), ax, true), EPS);
    const invM2 = tf.reciprocal(tf.square(m));
    const factor = tf.div(tf.sqrt(r2), tf.add(invM2, r2)); // r / (m^-2 + r^2)
    return tf.mul(t, factor) as T;
  });
}

/** The fused squash along the last axis; its gradient is the CapsSquashGrad kernel. */
const fusedSquash = fusedOp(FUSED_KERNELS.squash, {
  inputsToSave: ['s'],
  gradFunc: (dy, saved) => {
    const [s] = saved;
    return { s: () => runKernel(FUSED_KERNELS.squashGrad, { dy: dy as tf.Tensor, s }) as tf.Tensor };
  },
});

/** Squash along `axis` (default: the last). */
export function squash<T extends tf.Tensor>(s: T, axis = -1): T {
  const ax = normalizeAxis(axis, s.rank);
  if (ax === s.rank - 1 && s.dtype === 'float32' && fusedSquash.available()) {
    return fusedSquash.run({ s }) as T;
  }
  return squashReference(s, ax);
}

/**
 * Euclidean length along the last axis. A tiny epsilon under the square root
 * keeps the gradient finite for a zero vector (the length of a squashed
 * capsule is what the margin loss reads).
 */
export function capsuleLength(v: tf.Tensor, eps = 1e-9): tf.Tensor {
  return tf.tidy(() => tf.sqrt(tf.add(tf.sum(tf.square(v), -1), eps)));
}
