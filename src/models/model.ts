/**
 * What every classifier in the toolkit provides, so that the training loop,
 * the CLI, ONNX export and the visualizer handle every architecture the same
 * way: they ask a model what it has (a decoder, routing, the parts it can
 * show), never which architecture it is.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Layer, Param, Shape } from '../layers/layer.js';
import type { Rng } from '../util/rng.js';
import type { Inspection, InspectionLayout } from './inspection.js';

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
  /** Routing iterations for this call, in place of the configured ones (models whose `routingIterations` is not null). */
  routingIterations?: number;
  /**
   * Which class capsule feeds the decoder (models whose `decoder` is not
   * null): 'labels' (the true class; needs `labels`), 'longest', a class per
   * example, or 'none' to skip the decoder. Default: 'labels' when training
   * with labels, else 'longest'.
   */
  decode?: 'labels' | 'longest' | 'none' | tf.Tensor1D;
}

/**
 * A decoder that redraws the input from the class capsules with all but one
 * masked out (CapsNet, section 4.1 of "Dynamic Routing Between Capsules").
 */
export interface CapsuleDecoder {
  /** Dimensions of one class capsule. */
  readonly capsuleDim: number;
  /** The class capsules [batch, classes, dim] of one of the model's forward outputs. */
  classCapsules(output: ModelOutput): tf.Tensor3D;
  /** Images [batch, h*w*c] from the class capsules masked to `classes`. */
  decode(classCapsules: tf.Tensor3D, classes: tf.Tensor1D): tf.Tensor2D;
  /** Images from one capsule vector per example [batch, dim], placed in capsule `classes`. */
  decodeCapsule(vector: tf.Tensor2D, classes: tf.Tensor1D): tf.Tensor2D;
}

/** What every model config holds. */
export interface ModelConfig {
  /** [height, width, channels]. */
  inputShape: [number, number, number];
  numClasses: number;
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
  /** The decoder, or null when the model has none. */
  readonly decoder: CapsuleDecoder | null;
  /** Routing iterations of the model's routing layers, or null when it does not route. */
  readonly routingIterations: number | null;
  /** What the scores are, for people: 'capsule lengths', 'probabilities', ... */
  readonly scoreName: string;
  /** The parts of the model that can be shown to people (the visualizer's views), with their sizes. */
  readonly inspection: InspectionLayout;
  getConfig(): ModelConfig;
  forward(x: tf.Tensor4D, options?: ForwardOptions): ModelOutput;
  /** targets: multi-hot [batch, classes]; labels: the class index per example when there is one. */
  loss(output: ModelOutput, x: tf.Tensor4D, targets: tf.Tensor2D, progress?: TrainingProgress): LossResult;
  /** The values of every part in `inspection` for the images x (inference mode); the caller disposes them. */
  inspect(x: tf.Tensor4D): Inspection;
  summary(): LayerSummary[];
  countParams(): number;
  /**
   * Trainable parameters without the reconstruction decoder, for a model
   * whose paper counts them so (Efficient-CapsNet's 161K); capsnet info
   * reports it beside countParams where the model has it.
   */
  countClassifierParams?(): number;
  /** Optional data-dependent initialisation, run once on a batch before training starts. */
  initializeFromData?(x: tf.Tensor4D): void;
  dispose(): void;
}

/**
 * What every model here shares: a config with the input shape and class
 * count, an ordered list of layers built once with their output shapes, and
 * the bookkeeping derived from them (parameters, summary, disposal).
 */
export abstract class LayeredModel<C extends ModelConfig> implements ClassifierModel {
  abstract readonly modelType: string;
  abstract readonly layers: Layer[];
  abstract readonly scoreName: string;
  readonly decoder: CapsuleDecoder | null = null;
  abstract readonly routingIterations: number | null;
  abstract readonly inspection: InspectionLayout;
  readonly config: C;
  private readonly shapes = new Map<Layer, Shape>();

  protected constructor(config: C) {
    this.config = structuredClone(config);
  }

  /** Build `layers` in order, each on the previous one's output shape; returns the last output shape. */
  protected buildLayers(layers: Layer[], inputShape: Shape, rng: Rng): Shape {
    let shape = inputShape;
    for (const layer of layers) {
      const out = layer.computeOutputShape(shape);
      layer.build(shape, rng);
      this.shapes.set(layer, out);
      shape = out;
    }
    return shape;
  }

  /** The output shape of one of the layers `buildLayers` built. */
  protected outputShape(layer: Layer): Shape {
    const shape = this.shapes.get(layer);
    if (!shape) throw new Error(`layer ${layer.name} is not built`);
    return shape;
  }

  /** Throws one clear message unless x is a batch of this model's images. */
  protected checkInput(x: tf.Tensor): void {
    const [h, w, ch] = this.config.inputShape;
    if (x.rank !== 4 || x.shape[1] !== h || x.shape[2] !== w || x.shape[3] !== ch) {
      throw new Error(`model expects images of ${h}x${w}x${ch} ([batch, ${h}, ${w}, ${ch}]), got [${x.shape}]`);
    }
  }

  get inputShape(): [number, number, number] {
    return this.config.inputShape;
  }

  get numClasses(): number {
    return this.config.numClasses;
  }

  get params(): Param[] {
    return this.layers.flatMap((l) => l.params);
  }

  getConfig(): C {
    return structuredClone(this.config);
  }

  countParams(): number {
    return this.layers.reduce((n, l) => n + l.countParams(), 0);
  }

  summary(): LayerSummary[] {
    return this.layers.map((l) => ({ name: l.name, className: l.className, outputShape: this.shapes.get(l)!, params: l.countParams() }));
  }

  abstract forward(x: tf.Tensor4D, options?: ForwardOptions): ModelOutput;
  abstract loss(output: ModelOutput, x: tf.Tensor4D, targets: tf.Tensor2D, progress?: TrainingProgress): LossResult;
  abstract inspect(x: tf.Tensor4D): Inspection;

  dispose(): void {
    for (const l of this.layers) l.dispose();
  }
}
