/**
 * What the models whose class capsules are vectors read by their length
 * (CapsNet, Efficient-CapsNet) share: the decoder's input with all but one
 * capsule masked out and which capsule that is (section 4.1 of "Dynamic
 * Routing Between Capsules": the true class in training, the longest at test
 * time, each object's own on MultiMNIST, section 6), and the loss, the
 * margin loss (Eq. 4) plus the weighted reconstruction error.
 */
import * as tf from '@tensorflow/tfjs';
import { marginLoss, type MarginLossOptions } from '../losses/marginLoss.js';
import { reconstructionLoss } from '../losses/reconstructionLoss.js';
import { tidyRecord } from '../util/tidy.js';
import type { CapsuleDecoder, ForwardOptions, LossResult, ModelOutput } from './model.js';

/** What a forward pass adds to its output when the model has a decoder. */
export interface ReconstructionOutput {
  /** Flattened reconstruction [batch, h*w*c]. */
  reconstruction?: tf.Tensor2D;
  /** The class each reconstruction was decoded from [batch]. */
  decodedClasses?: tf.Tensor1D;
  /** With options.components in training: each object reconstructed from its own capsule [batch, k, pixels], and the targets. */
  componentReconstructions?: tf.Tensor3D;
  componentImages?: tf.Tensor3D;
}

/** The margin loss's settings and the reconstruction loss's weight (0 turns it off). */
export interface CapsuleLossConfig extends Required<MarginLossOptions> {
  reconstructionWeight: number;
}

/** Zero every capsule [batch, classes, dim] but the chosen one (per example) and flatten: the decoder's input. */
export function maskCapsules(classCaps: tf.Tensor3D, classes: tf.Tensor1D): tf.Tensor2D {
  const [b, j, d] = classCaps.shape;
  return tf.tidy(() => tf.reshape(tf.mul(classCaps, tf.expandDims(tf.oneHot(tf.cast(classes, 'int32'), j), 2)), [b, j * d]) as tf.Tensor2D);
}

/**
 * The reconstructions of one forward pass from its class capsules and
 * scores, as `options` ask (ForwardOptions.decode and .components); none
 * without a decoder, or in training when the reconstruction loss is off.
 */
export function reconstructions(decoder: CapsuleDecoder | null, classCaps: tf.Tensor3D, scores: tf.Tensor2D, options: ForwardOptions, reconstructionWeight: number): ReconstructionOutput {
  if (decoder === null) return {};
  const { training = false, labels } = options;
  return tidyRecord(() => {
    const reconstructionUsed = !training || reconstructionWeight > 0;
    if (training && options.components && reconstructionUsed) {
      const { labels: compLabels, images } = options.components;
      const [b, k] = compLabels.shape;
      const perObject = Array.from({ length: k }, (_, j) => decoder.decode(classCaps, tf.reshape(tf.slice(compLabels, [0, j], [b, 1]), [b]) as tf.Tensor1D));
      return { componentReconstructions: tf.stack(perObject, 1) as tf.Tensor3D, componentImages: images };
    }
    const decode = options.decode ?? (training && labels ? (reconstructionUsed ? 'labels' : 'none') : 'longest');
    if (decode === 'none') return {};
    let classes: tf.Tensor1D;
    if (decode === 'labels') {
      if (!labels) throw new Error("forward: decode 'labels' needs options.labels");
      classes = tf.cast(labels, 'int32') as tf.Tensor1D;
    } else if (decode === 'longest') {
      classes = tf.argMax(scores, 1) as tf.Tensor1D;
    } else {
      classes = tf.cast(decode, 'int32') as tf.Tensor1D;
    }
    return { reconstruction: decoder.decode(classCaps, classes), decodedClasses: classes };
  });
}

/** The class capsules [batch, classes, dim] of a forward output (its `digitCaps`); `model` names the model in the error. */
export function classCapsulesOf(output: ModelOutput, model: string): tf.Tensor3D {
  const caps = output.digitCaps;
  if (!(caps instanceof tf.Tensor) || caps.rank !== 3) throw new Error(`classCapsules: not a ${model} output (no digitCaps)`);
  return caps as tf.Tensor3D;
}

/**
 * Images from one capsule vector per example [batch, dim] placed in capsule
 * `classes` of `numClasses`, the others zero: what the visualizer's sliders
 * and the perturbation figure redraw.
 */
export function decodeCapsuleVector(decoder: CapsuleDecoder, numClasses: number, vector: tf.Tensor2D, classes: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => {
    const [b, d] = vector.shape;
    const oneHot = tf.oneHot(tf.cast(classes, 'int32'), numClasses).toFloat(); // [b, J]
    const caps = tf.mul(tf.expandDims(oneHot, 2), tf.reshape(vector, [b, 1, d])) as tf.Tensor3D;
    return decoder.decode(caps, classes);
  });
}

/**
 * The margin loss on the scores (the capsule lengths) plus the weighted
 * reconstruction error: on MultiMNIST the sum of each object's (reshaping
 * to one row per example sums over the objects), else the image's.
 */
export function capsuleLoss(out: ModelOutput & ReconstructionOutput, x: tf.Tensor4D, targets: tf.Tensor2D, config: CapsuleLossConfig): LossResult {
  const { mPlus, mMinus, lambda, reconstructionWeight } = config;
  return tidyRecord(() => {
    const margin = marginLoss(out.scores, targets, { mPlus, mMinus, lambda });
    const terms: Record<string, tf.Scalar> = { margin };
    let total = margin;
    const recon =
      !(reconstructionWeight > 0) ? null
      : out.componentReconstructions && out.componentImages ? reconstructionLoss(out.componentReconstructions, out.componentImages, reconstructionWeight)
      : out.reconstruction ? reconstructionLoss(out.reconstruction, x, reconstructionWeight)
      : null;
    if (recon) {
      terms.reconstruction = recon;
      total = tf.add(total, recon);
    }
    return { total, terms };
  });
}
