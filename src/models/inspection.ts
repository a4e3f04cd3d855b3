/**
 * What a model shows of itself to people. The visualizer builds its views
 * from a model's `inspection` (which parts the model has, their sizes, and a
 * few words on what each computes) and draws the values that `inspect`
 * returns for an input. Every part is optional: a view whose part a model
 * lacks is hidden, so the visualizer never asks which architecture a model
 * is. The words are the model's (they cite its paper, and each part may
 * give the formula it computes and where its paper describes it); how the
 * views draw the parts is the visualizer's.
 */
import type * as tf from '@tensorflow/tfjs';

/** A paper a model follows: who and when, its title, and its abstract page. */
export interface Paper {
  /** 'Sabour et al. 2017'. */
  authors: string;
  title: string;
  url: string;
}

/** The papers the models here follow. */
export const PAPERS = {
  dynamicRouting: { authors: 'Sabour et al. 2017', title: 'Dynamic Routing Between Capsules', url: 'https://arxiv.org/abs/1710.09829' },
  emRouting: { authors: 'Hinton et al. 2018', title: 'Matrix capsules with EM routing', url: 'https://openreview.net/forum?id=HJWLfGWRb' },
  efficientCapsNet: { authors: 'Mazzia et al. 2021', title: 'Efficient-CapsNet: Capsule Network with Self-Attention Routing', url: 'https://arxiv.org/abs/2101.12491' },
} as const satisfies Record<string, Paper>;

/**
 * What a part computes, as its paper writes it, and where. Formulas are plain
 * text with Unicode symbols, one formula a line; `_` starts a subscript
 * over the letters, digits and `|` that follow, `^` a superscript over the
 * letters, digits, `+` and `−` that follow, either over `{...}` instead, so
 * that `c_ij`, `‖s_j‖^2`, `m^+`, `û_{j|i}` read as written and a page can
 * set them as sub- and superscripts.
 */
export interface PartReference {
  formulas: string[];
  paper: Paper;
  /** Where in the paper: 'Sec. 2, Eq. 1'. */
  section: string;
}

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
  reference?: PartReference;
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
  scores: { name: string; title: string; about: string; reference?: PartReference };
  /** The first convolution's ReLU maps: its layer (kernel parameter `${layer}/kernel`), output grid and kernel size. */
  featureMaps: { layer: string; h: number; w: number; channels: number; kernel: number; reference?: PartReference } | null;
  /** Primary capsules that are vectors with lengths in [0, 1], on a grid. */
  primaryCapsules: (CapsuleGrid & { dim: number; about: string; reference?: PartReference }) | null;
  /** Capsule layers whose capsules each have an activation in [0, 1] (matrix capsules), shown layer by layer. */
  capsuleLayers: { title: string; about: string; reference?: PartReference } | null;
  routing: RoutingPart | null;
  /**
   * The class capsules: vectors whose lengths are the scores (what a
   * decoder, when `model.decoder` is there, redraws the input from), or
   * size x size pose matrices beside an activation. A vector's `reference`
   * is the reconstruction from it, `dimensions` what changing one of its
   * dimensions does to the reconstruction.
   */
  classCapsules:
    | { form: 'vector'; dim: number; reference?: PartReference; dimensions?: PartReference }
    | { form: 'pose'; size: number; about: string; reference?: PartReference }
    | null;
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
