/**
 * Reconstruction loss of "Dynamic Routing Between Capsules" (section 4.1):
 * the sum of squared differences between the decoder's output and the input
 * pixels, per example, averaged over the batch and scaled down (0.0005 in the
 * paper) so that it does not dominate the margin loss.
 */
import * as tf from '@tensorflow/tfjs';

export const PAPER_RECONSTRUCTION_WEIGHT = 0.0005;

export function reconstructionLoss(reconstruction: tf.Tensor, images: tf.Tensor, weight = PAPER_RECONSTRUCTION_WEIGHT): tf.Scalar {
  const batch = images.shape[0];
  if (reconstruction.size !== images.size) {
    throw new Error(`reconstructionLoss: reconstruction has ${reconstruction.size} values, images have ${images.size}`);
  }
  return tf.tidy(() => {
    const diff = tf.sub(tf.reshape(reconstruction, [batch, -1]), tf.reshape(images, [batch, -1]));
    return tf.mul(tf.div(tf.sum(tf.square(diff)), batch), weight) as tf.Scalar;
  });
}
