/**
 * What a model shows of itself to people. The visualizer builds its views
 * from a model's `inspection` (which parts the model has, their sizes, and a
 * few words on what each computes) and draws the values that `inspect`
 * returns for an input. Every part is optional: a view whose part a model
 * lacks is hidden, so the visualizer never asks which architecture a model
 * is. The words are the model's (they cite its paper); how the views draw
 * the parts is the visualizer's.
 */
import type * as tf from '@tensorflow/tfjs';

/** Capsules on a grid of positions, several types at each: capsule (y * w + x) * types + type. */
export interface CapsuleGrid {
  h: number;
  w: number;
  types: number;
}

/** How the class capsules get their input from the capsules below. */
export interface RoutingPart {
  /** A heading: 'Routing by agreement'. */
  title: string;
  /** What one coefficient is, singular: 'coupling coefficient', 'EM assignment', 'self-attention coefficient'. */
  coefficient: string;
  /** What the coefficients are and how they change from one iteration to the next. */
  about: string;
  /** Iterations the model runs (1 for a single pass). */
  iterations: number;
  /**
   * Which capsules send: the primary capsules (weighted by their lengths,
   * drawn over the primary capsules' grid), or a grid of capsules with an
   * activation each (the last capsule layer of `capsuleLayers`).
   */
  senders: 'primary capsules' | CapsuleGrid;
}

export interface InspectionLayout {
  /** The architecture in a few words: 'CapsNet, dynamic routing'. */
  title: string;
  /**
   * The class scores: one score's name, singular ('capsule length',
   * 'activation', 'probability'), a heading, and what the scores are.
   */
  scores: { name: string; title: string; about: string };
  /** The first convolution's ReLU maps: its layer (kernel parameter `${layer}/kernel`), output grid and kernel size. */
  featureMaps: { layer: string; h: number; w: number; channels: number; kernel: number } | null;
  /** Primary capsules that are vectors with lengths in [0, 1], on a grid. */
  primaryCapsules: (CapsuleGrid & { dim: number; about: string }) | null;
  /** Capsule layers whose capsules each have an activation in [0, 1] (matrix capsules), shown layer by layer. */
  capsuleLayers: { title: string; about: string } | null;
  routing: RoutingPart | null;
  /**
   * The class capsules: vectors whose lengths are the scores (what a
   * decoder, when `model.decoder` is there, redraws the input from), or
   * size x size pose matrices beside an activation.
   */
  classCapsules: { form: 'vector'; dim: number } | { form: 'pose'; size: number; about: string } | null;
}

/**
 * The values of each part of the layout for a batch of inputs (the
 * visualizer sends one). The caller owns every tensor and disposes it.
 */
export interface Inspection {
  /** [batch, classes], as `forward` gives them. */
  scores: tf.Tensor2D;
  /** [batch, h, w, channels] */
  featureMaps?: tf.Tensor4D;
  /** vectors [batch, capsules, dim] and their lengths [batch, capsules], capsules in the grid's order. */
  primaryCapsules?: { vectors: tf.Tensor3D; lengths: tf.Tensor2D };
  /** Each capsule layer's activations [batch, h, w, types], first to last, with a name for people. */
  capsuleLayers?: { name: string; activations: tf.Tensor4D }[];
  routing?: {
    /** [batch, senders, classes] for each iteration, first to last. */
    coefficients: tf.Tensor3D[];
    /** [batch, senders]: how much each sender counts (its length or activation). */
    senderWeights: tf.Tensor2D;
    /** [batch, classes] for each iteration: the scores that iteration's coefficients give, when the model can say. */
    scores?: tf.Tensor2D[];
  };
  /** [batch, classes, dim] vectors, or [batch, classes, size * size] poses (row-major). */
  classCapsules?: tf.Tensor3D;
}
