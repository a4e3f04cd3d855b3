/**
 * tf.tidy for functions that return a typed record of tensors (a model's
 * output, a loss with its terms, a routing result). tf.tidy itself only
 * accepts a TensorContainer, which an interface without an index signature
 * is not; here the tensors the result holds are collected and kept, and the
 * result comes back with its own type.
 */
import * as tf from '@tensorflow/tfjs';

/** Every tensor in `value`, walking plain objects and arrays. */
function tensorsIn(value: unknown, out: tf.Tensor[] = []): tf.Tensor[] {
  if (value instanceof tf.Tensor) out.push(value);
  else if (Array.isArray(value)) for (const v of value) tensorsIn(v, out);
  else if (value !== null && typeof value === 'object' && !ArrayBuffer.isView(value)) for (const v of Object.values(value)) tensorsIn(v, out);
  return out;
}

/** Run `fn` in a tidy scope: intermediate tensors are disposed, the ones in its result are kept. */
export function tidyRecord<T>(fn: () => T): T {
  let result!: T;
  tf.tidy(() => {
    result = fn();
    return tensorsIn(result);
  });
  return result;
}
