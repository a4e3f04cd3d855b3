/**
 * Margin loss, Eq. 4 of "Dynamic Routing Between Capsules":
 *
 *   L_k = T_k max(0, m+ - |v_k|)^2 + lambda (1 - T_k) max(0, |v_k| - m-)^2
 *
 * summed over the classes k and averaged over the batch. T_k = 1 when class k
 * is present; several classes may be present at once (MultiMNIST), so labels
 * are either class indices [batch] or a multi-hot matrix [batch, classes].
 * lambda down-weights absent classes so that early training does not shrink
 * every capsule.
 */
import * as tf from '@tensorflow/tfjs';

export interface MarginLossOptions {
  mPlus?: number;
  mMinus?: number;
  lambda?: number;
}

/** Turn class indices [batch] or a multi-hot [batch, classes] into float targets. */
export function toTargets(labels: tf.Tensor | ArrayLike<number>, numClasses: number, batch: number): tf.Tensor2D {
  return tf.tidy(() => {
    const t = labels instanceof tf.Tensor ? labels : tf.tensor1d(Array.from(labels), 'int32');
    if (t.rank === 1) {
      if (t.shape[0] !== batch) throw new Error(`labels: expected ${batch} class indices, got ${t.shape[0]}`);
      return tf.oneHot(tf.cast(t, 'int32'), numClasses).toFloat() as tf.Tensor2D;
    }
    if (t.rank === 2) {
      if (t.shape[0] !== batch || t.shape[1] !== numClasses) {
        throw new Error(`labels: multi-hot labels must be [${batch}, ${numClasses}], got [${t.shape}]`);
      }
      return tf.cast(t, 'float32') as tf.Tensor2D;
    }
    throw new Error(`labels: expected class indices [batch] or multi-hot [batch, classes], got rank ${t.rank}`);
  });
}

export function marginLoss(lengths: tf.Tensor2D, labels: tf.Tensor | ArrayLike<number>, options: MarginLossOptions = {}): tf.Scalar {
  const { mPlus = 0.9, mMinus = 0.1, lambda = 0.5 } = options;
  if (lengths.rank !== 2) throw new Error(`marginLoss: lengths must be [batch, classes], got [${lengths.shape}]`);
  const [batch, classes] = lengths.shape;
  return tf.tidy(() => {
    const T = toTargets(labels, classes, batch);
    const present = tf.square(tf.relu(tf.sub(mPlus, lengths)));
    const absent = tf.square(tf.relu(tf.sub(lengths, mMinus)));
    const perClass = tf.add(tf.mul(T, present), tf.mul(tf.mul(tf.sub(1, T), absent), lambda));
    return tf.div(tf.sum(perClass), batch) as tf.Scalar;
  });
}
