/**
 * What every classifier in the toolkit provides, so that the training loop,
 * the CLI and the visualizer handle CapsNet, the EM-routing capsule network
 * and the CNN baseline the same way.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Layer, Param, Shape } from '../layers/layer.js';
import type { Rng } from '../util/rng.js';

export interface ForwardOptions {
  training?: boolean;
  /** Class per example [batch] (int32); used to mask capsules in training. */
  labels?: tf.Tensor1D;
  /** Keep the intermediate tensors of each layer in the output (visualizer, inspection). */
  trace?: boolean;
  /** Random numbers for training-time noise (dropout). */
  rng?: Rng;
  /**
   * The separate objects of multi-object images (MultiMNIST): their classes
   * [batch, k] (int32) and images [batch, k, pixels], so that a model with a
   * decoder can reconstruct each object from its own capsule.
   */
  components?: { labels: tf.Tensor2D; images: tf.Tensor3D };
}

export interface ModelOutput {
  /** One score per class, larger is more likely: capsule lengths, activations, or softmax probabilities. */
  scores: tf.Tensor2D;
  [extra: string]: tf.Tensor | tf.Tensor[] | undefined;
}

export interface LossResult {
  total: tf.Scalar;
  /** Named parts of the loss, for logs. */
  terms: Record<string, tf.Scalar>;
}

/** Where training stands, for losses and layers that change over training. */
export interface TrainingProgress {
  /** Fraction of training done, in [0, 1]. */
  fraction: number;
  rng: Rng;
}

export interface LayerSummary {
  name: string;
  className: string;
  outputShape: Shape;
  params: number;
}

export interface ClassifierModel {
  readonly modelType: string;
  /** [height, width, channels]. */
  readonly inputShape: [number, number, number];
  readonly numClasses: number;
  readonly params: Param[];
  readonly layers: Layer[];
  getConfig(): Record<string, unknown>;
  forward(x: tf.Tensor4D, options?: ForwardOptions): ModelOutput;
  /** targets: multi-hot [batch, classes]; labels: the class index per example when there is one. */
  loss(output: ModelOutput, x: tf.Tensor4D, targets: tf.Tensor2D, progress?: TrainingProgress): LossResult;
  summary(): LayerSummary[];
  countParams(): number;
  /** Optional data-dependent initialisation, run once on a batch before training starts. */
  initializeFromData?(x: tf.Tensor4D): void;
  dispose(): void;
}
