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
import { FUSED_KERNELS, fusedOp, runKernel, stopGradient, type FusedOp } from '../backend/fused.js';

/** The squashes' guards (see above); the ONNX graphs use the same values. */
export const SQUASH_TINY_MAX = 1e-12;
export const SQUASH_EPS = 1e-12;
/** capsuleLength's epsilon under the square root. */
export const CAPSULE_LENGTH_EPS = 1e-9;

function normalizeAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`squash: axis ${axis} is out of range for a rank-${rank} tensor`);
  return a;
}

/** Eq. 1 with plain tfjs ops: the reference and browser implementation. */
export function squashReference<T extends tf.Tensor>(s: T, axis = -1): T {
  const ax = normalizeAxis(axis, s.rank);
  return tf.tidy(() => {
    const m = stopGradient(tf.maximum(tf.max(tf.abs(s), ax, true), SQUASH_TINY_MAX));
    const t = tf.div(s, m);
    const r2 = tf.add(tf.sum(tf.square(t), ax, true), SQUASH_EPS);
    const invM2 = tf.reciprocal(tf.square(m));
    const factor = tf.div(tf.sqrt(r2), tf.add(invM2, r2)); // r / (m^-2 + r^2)
    return tf.mul(t, factor) as T;
  });
}

/** The fused kernel of squash `key` along the last axis, its gradient the `${key}Grad` kernel. */
function fusedSquashOp(key: 'squash' | 'efficientSquash'): FusedOp {
  return fusedOp(FUSED_KERNELS[key], {
    inputsToSave: ['s'],
    gradFunc: (dy, saved) => {
      const [s] = saved;
      return { s: () => runKernel(FUSED_KERNELS[`${key}Grad`], { dy: dy as tf.Tensor, s }) as tf.Tensor };
    },
  });
}

/** `s` squashed along `axis` by the fused kernel where it applies (the last axis of float32 data, on a backend that has it), else by `reference`. */
function squashWith<T extends tf.Tensor>(fused: FusedOp, reference: (s: T, axis: number) => T, s: T, axis: number): T {
  const ax = normalizeAxis(axis, s.rank);
  if (ax === s.rank - 1 && s.dtype === 'float32' && fused.available()) return fused.run({ s }) as T;
  return reference(s, ax);
}

const fusedSquash = fusedSquashOp('squash');

/** Squash along `axis` (default: the last). */
export function squash<T extends tf.Tensor>(s: T, axis = -1): T {
  return squashWith(fusedSquash, squashReference, s, axis);
}

/**
 * The squash of "Efficient-CapsNet: Capsule Network with Self-Attention
 * Routing" (Mazzia, Salvetti, Chiaberge 2021, Methods):
 *
 *   v = (1 - 1/e^|s|) s / |s|
 *
 * Like Eq. 1 above it keeps the direction and maps the length into [0, 1),
 * but it saturates later for long vectors and is close to the identity
 * (v ~ s) for short ones, where Eq. 1 shrinks them quadratically.
 *
 * Written as v = g(n) s with n = |s| and g(n) = (1 - e^-n)/n = -expm1(-n)/n:
 * expm1 keeps g accurate for small n, where 1 - e^-n would lose every digit
 * to cancellation in float32 (g -> 1 as n -> 0, so v ~ s). Guards:
 * - s is measured as m |s/m| with m = max|s_k| (held constant for the
 *   gradient, since v does not depend on it), so |s|^2 never overflows;
 * - SQUASH_EPS under the square root keeps n > 0 at s = 0, where g is 0/0; there
 *   v = 0 and the gradient is upstream * g ~ upstream, the exact limit (the
 *   Jacobian of v at 0 is the identity). With SQUASH_TINY_MAX and SQUASH_EPS as above,
 *   n >= 1e-18 and n^2 stays a normal float32, so the gradient of g (which
 *   divides by n^2) is finite.
 */
export function efficientSquashReference<T extends tf.Tensor>(s: T, axis = -1): T {
  const ax = normalizeAxis(axis, s.rank);
  return tf.tidy(() => {
    const m = stopGradient(tf.maximum(tf.max(tf.abs(s), ax, true), SQUASH_TINY_MAX));
    const t = tf.div(s, m);
    const n = tf.mul(m, tf.sqrt(tf.add(tf.sum(tf.square(t), ax, true), SQUASH_EPS)));
    const gain = tf.div(tf.neg(tf.expm1(tf.neg(n))), n);
    return tf.mul(s, gain) as T;
  });
}

const fusedEfficientSquash = fusedSquashOp('efficientSquash');

/** Efficient-CapsNet's squash along `axis` (default: the last), fused where the backend has the kernel, as squash() is. */
export function efficientSquash<T extends tf.Tensor>(s: T, axis = -1): T {
  return squashWith(fusedEfficientSquash, efficientSquashReference, s, axis);
}

/**
 * Euclidean length along the last axis. A tiny epsilon under the square root
 * keeps the gradient finite for a zero vector (the length of a squashed
 * capsule is what the margin loss reads).
 */
export function capsuleLength(v: tf.Tensor, eps = CAPSULE_LENGTH_EPS): tf.Tensor {
  return tf.tidy(() => tf.sqrt(tf.add(tf.sum(tf.square(v), -1), eps)));
}
