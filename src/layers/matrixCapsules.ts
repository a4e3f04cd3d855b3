/**
 * What matrix-capsule layers pass between them ("Matrix capsules with EM
 * routing", section 2): at every grid position, T capsule types, each a 4x4
 * pose matrix (stored flattened, row-major, as 16 values) and a logistic
 * activation.
 */
import type * as tf from '@tensorflow/tfjs';

export interface MatrixCapsules {
  /** [batch, height, width, types, 16]. */
  poses: tf.Tensor5D;
  /** [batch, height, width, types], in (0, 1). */
  activations: tf.Tensor4D;
}
