/**
 * CapsNet of "Dynamic Routing Between Capsules" (Sabour, Frosst, Hinton 2017),
 * section 4: Conv1 (ReLU) -> PrimaryCaps (squash) -> DigitCaps (routing by
 * agreement); the length of each digit capsule is the probability that its
 * class is present. A decoder of three fully connected layers reconstructs
 * the input from the digit capsules with all but one masked out (section 4.1):
 * the true class during training, the longest capsule at test time.
 */
import * as tf from '@tensorflow/tfjs';
import { predictionVectors } from '../capsules/predictionVectors.js';
import { capsuleLength, squash } from '../capsules/squash.js';
import { Conv2D } from '../layers/conv2d.js';
import { Dense } from '../layers/dense.js';
import { DigitCapsules } from '../layers/digitCapsules.js';
import type { Layer } from '../layers/layer.js';
import { PrimaryCapsules } from '../layers/primaryCapsules.js';
import { mergeConfig, presetConfig } from '../util/config.js';
import { Rng } from '../util/rng.js';
import type { ConfigOverrides } from './registry.js';
import { capsuleLoss, classCapsulesOf, decodeCapsuleVector, maskCapsules, reconstructions, type ReconstructionOutput } from './capsuleDecoder.js';
import { PAPERS, type Inspection, type InspectionLayout } from './inspection.js';
import { LayeredModel, type CapsuleDecoder, type ForwardOptions, type LossResult, type ModelConfig, type ModelOutput } from './model.js';
import { tidyRecord } from '../util/tidy.js';

export interface CapsNetConfig extends ModelConfig {
  conv1: { filters: number; kernelSize: number; strides: number };
  primary: { types: number; dim: number; kernelSize: number; strides: number };
  /** initStddev: std of the Gaussian that initialises the transformation matrices W_ij. */
  digit: { dim: number; routingIterations: number; stopGradientInner: boolean; initStddev?: number };
  /** Hidden sizes of the decoder (the paper: 512, 1024), or null for no decoder. */
  decoder: { hidden: number[] } | null;
  loss: { mPlus: number; mMinus: number; lambda: number; reconstructionWeight: number };
}

export type CapsNetPreset = 'paper' | 'small';

const PRESETS: Record<CapsNetPreset, CapsNetConfig> = {
  paper: {
    inputShape: [28, 28, 1],
    numClasses: 10,
    conv1: { filters: 256, kernelSize: 9, strides: 1 },
    primary: { types: 32, dim: 8, kernelSize: 9, strides: 2 },
    digit: { dim: 16, routingIterations: 3, stopGradientInner: false, initStddev: 0.01 },
    decoder: { hidden: [512, 1024] },
    loss: { mPlus: 0.9, mMinus: 0.1, lambda: 0.5, reconstructionWeight: 0.0005 },
  },
  // A quarter of the paper's channels: same structure, about 30x fewer FLOPs.
  // With 4x fewer primary capsules, W starts larger so that the digit
  // capsules are not vanishingly short at the start.
  small: {
    inputShape: [28, 28, 1],
    numClasses: 10,
    conv1: { filters: 64, kernelSize: 9, strides: 1 },
    primary: { types: 8, dim: 8, kernelSize: 9, strides: 2 },
    digit: { dim: 16, routingIterations: 3, stopGradientInner: false, initStddev: 0.05 },
    decoder: { hidden: [256, 512] },
    loss: { mPlus: 0.9, mMinus: 0.1, lambda: 0.5, reconstructionWeight: 0.0005 },
  },
};

export const CAPSNET_PRESETS = Object.keys(PRESETS) as CapsNetPreset[];

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> | null : T[K] };

/** A preset's config with `overrides` merged in (nested objects merge key by key). */
export function capsNetConfig(preset: CapsNetPreset | string = 'paper', overrides: DeepPartial<CapsNetConfig> | ConfigOverrides = {}): CapsNetConfig {
  const base = presetConfig(PRESETS, preset);
  if (!base) throw new Error(`unknown CapsNet preset '${preset}': expected ${CAPSNET_PRESETS.join(', ')}`);
  return mergeConfig(structuredClone(base), overrides);
}

/** With a decoder, also the reconstructions the forward options ask for (ReconstructionOutput). */
export interface CapsNetOutput extends ModelOutput, ReconstructionOutput {
  /** Digit capsule lengths [batch, classes] (the scores). */
  scores: tf.Tensor2D;
  /** Digit capsules [batch, classes, dim]. */
  digitCaps: tf.Tensor3D;
  /** Couplings of each routing iteration, [batch, primaryCaps, classes]. */
  couplings: tf.Tensor3D[];
  /** With trace: Conv1's ReLU maps and the primary capsules [batch, caps, dim]. */
  conv1?: tf.Tensor4D;
  primaryCaps?: tf.Tensor3D;
}

/** CapsNet reads every forward option (decode and routingIterations included). */
export type CapsNetForwardOptions = ForwardOptions;

function validateConfig(c: CapsNetConfig): void {
  const ints: [string, number][] = [
    ['inputShape height', c.inputShape[0]], ['inputShape width', c.inputShape[1]], ['inputShape channels', c.inputShape[2]],
    ['numClasses', c.numClasses], ['conv1.filters', c.conv1.filters], ['conv1.kernelSize', c.conv1.kernelSize], ['conv1.strides', c.conv1.strides],
    ['primary.types', c.primary.types], ['primary.dim', c.primary.dim], ['primary.kernelSize', c.primary.kernelSize], ['primary.strides', c.primary.strides],
    ['digit.dim', c.digit.dim], ['digit.routingIterations', c.digit.routingIterations],
  ];
  for (const [name, v] of ints) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`CapsNet config: ${name} must be a positive integer, got ${v}`);
  }
  if (c.numClasses < 2) throw new Error(`CapsNet config: numClasses must be at least 2, got ${c.numClasses}`);
}

export class CapsNet extends LayeredModel<CapsNetConfig> implements CapsuleDecoder {
  readonly modelType = 'capsnet';
  readonly scoreName = 'capsule lengths';
  override readonly decoder: CapsuleDecoder | null;
  readonly conv1: Conv2D;
  readonly primary: PrimaryCapsules;
  readonly digit: DigitCapsules;
  readonly decoderLayers: Dense[];
  readonly layers: Layer[];

  constructor(config: CapsNetConfig, seed: number | Rng = 0) {
    validateConfig(config);
    super(config);
    const rng = typeof seed === 'number' ? new Rng(seed) : seed;
    const c = this.config;
    this.conv1 = new Conv2D('conv1', { filters: c.conv1.filters, kernelSize: c.conv1.kernelSize, strides: c.conv1.strides, padding: 'valid', activation: 'relu' });
    this.primary = new PrimaryCapsules('primary_caps', { ...c.primary });
    this.digit = new DigitCapsules('digit_caps', { capsules: c.numClasses, dim: c.digit.dim, routingIterations: c.digit.routingIterations, stopGradientInner: c.digit.stopGradientInner, initStddev: c.digit.initStddev });
    const pixels = c.inputShape[0] * c.inputShape[1] * c.inputShape[2];
    this.decoderLayers = c.decoder
      ? [...c.decoder.hidden.map((units, i) => new Dense(`decoder_fc${i + 1}`, { units, activation: 'relu' })), new Dense(`decoder_fc${c.decoder.hidden.length + 1}`, { units: pixels, activation: 'sigmoid' })]
      : [];
    this.layers = [this.conv1, this.primary, this.digit, ...this.decoderLayers];
    this.decoder = this.decoderLayers.length > 0 ? this : null;

    this.buildLayers([this.conv1, this.primary, this.digit], [null, ...c.inputShape], rng);
    // The decoder sees the masked digit capsules flattened: classes * dim.
    this.buildLayers(this.decoderLayers, [null, c.numClasses * c.digit.dim], rng);
  }

  forward(x: tf.Tensor4D, options: CapsNetForwardOptions = {}): CapsNetOutput {
    this.checkInput(x);
    const { trace = false } = options;
    return tidyRecord(() => {
      const conv1 = this.conv1.call(x);
      const primaryCaps = this.primary.call(conv1);
      const { v: digitCaps, couplings } = this.digit.call(primaryCaps, options.routingIterations);
      const scores = capsuleLength(digitCaps) as tf.Tensor2D;
      const out: CapsNetOutput = { scores, digitCaps, couplings };
      if (trace) {
        out.conv1 = conv1;
        out.primaryCaps = primaryCaps;
      }
      return Object.assign(out, reconstructions(this.decoder, digitCaps, scores, options, this.config.loss.reconstructionWeight));
    });
  }

  get routingIterations(): number {
    return this.config.digit.routingIterations;
  }

  get inspection(): InspectionLayout {
    const c = this.config;
    const [, h, w, channels] = this.outputShape(this.conv1) as number[];
    const paper = PAPERS.dynamicRouting;
    const { mPlus, mMinus, lambda, reconstructionWeight } = c.loss;
    return {
      title: 'CapsNet, dynamic routing',
      scores: {
        name: 'capsule length',
        title: 'Class capsules',
        about: `One ${c.digit.dim}-dimensional capsule per class (the paper's DigitCaps). Its length is the network's confidence that the class is present; the longest is the prediction.`,
        // The margin loss trains each length to say whether its class is present.
        reference: {
          formulas: ['L_k = T_k max(0, m^+ − ‖v_k‖)^2 + λ (1 − T_k) max(0, ‖v_k‖ − m^−)^2', `m^+ = ${mPlus}, m^− = ${mMinus}, λ = ${lambda}; T_k = 1 when class k is present`],
          paper,
          section: 'Sec. 3, Eq. 4',
        },
      },
      featureMaps: {
        layer: this.conv1.name,
        h,
        w,
        channels,
        kernel: c.conv1.kernelSize,
        reference: { formulas: [`Conv1(x) = ReLU(W ∗ x + b), ${c.conv1.filters} kernels of ${c.conv1.kernelSize}×${c.conv1.kernelSize}, stride ${c.conv1.strides}`], paper, section: 'Sec. 4' },
      },
      primaryCapsules: {
        h: this.primary.gridHeight,
        w: this.primary.gridWidth,
        types: c.primary.types,
        dim: c.primary.dim,
        about: "A second convolution's outputs are cut into small vectors, the primary capsules, and squashed so that each vector's length lies between 0 and 1.",
        reference: { formulas: ['v_j = ‖s_j‖^2 / (1 + ‖s_j‖^2) · s_j / ‖s_j‖'], paper, section: 'Sec. 2, Eq. 1 (squash)' },
      },
      capsuleLayers: null,
      routing: {
        title: 'Routing by agreement',
        coefficient: 'coupling coefficient',
        // Procedure 1 of the paper: c_ij = softmax_j(b_ij), b_ij starts at 0 and grows by u_hat_j|i . v_j.
        about: 'Each primary capsule predicts every digit capsule and splits its output among them with coupling coefficients that add up to 1. At iteration 1 every capsule splits evenly. After each iteration, capsules send more to the digit capsules that their predictions agree with.',
        iterations: c.digit.routingIterations,
        senders: 'primary capsules',
        reference: {
          formulas: ['û_{j|i} = W_ij u_i,   s_j = Σ_i c_ij û_{j|i},   v_j = squash(s_j)', 'c_ij = exp(b_ij) / Σ_k exp(b_ik)', 'b_ij ← b_ij + û_{j|i} · v_j   (agreement; b_ij starts at 0)'],
          paper,
          section: 'Sec. 2, Eq. 2–3, Procedure 1',
        },
      },
      classCapsules: {
        form: 'vector',
        dim: c.digit.dim,
        reference: { formulas: ['x̂ = decoder(v_k), every other class capsule set to 0', `L = Σ_k L_k + ${reconstructionWeight} Σ_p (x_p − x̂_p)^2`], paper, section: 'Sec. 4.1' },
        dimensions: { formulas: ['x̂(d, t) = decoder(v_k + t e_d),   t = −0.25, −0.20, …, 0.25'], paper, section: 'Sec. 5.1, Fig. 4' },
      },
    };
  }

  /**
   * Conv1's maps, the primary capsules, the couplings of every routing
   * iteration with the digit capsule lengths each gives, and the digit
   * capsules. Iteration r's lengths are |squash(sum_i c_ij u_hat_j|i)| with
   * its couplings (Eq. 2 and 1); the last iteration's are the scores.
   */
  inspect(x: tf.Tensor4D): Inspection {
    return tidyRecord(() => {
      const out = this.forward(x, { trace: true, decode: 'none' });
      const primaryCaps = out.primaryCaps!;
      const uHat = predictionVectors(primaryCaps, this.digit.W as tf.Tensor4D);
      const lengths = capsuleLength(primaryCaps) as tf.Tensor2D;
      return {
        scores: out.scores,
        featureMaps: out.conv1!,
        primaryCapsules: { vectors: primaryCaps, lengths },
        routing: {
          coefficients: out.couplings,
          senderWeights: lengths,
          scores: out.couplings.map((c) => capsuleLength(squash(tf.sum(tf.mul(tf.expandDims(c, 3), uHat), 1))) as tf.Tensor2D),
        },
        classCapsules: out.digitCaps,
      };
    });
  }

  get capsuleDim(): number {
    return this.config.digit.dim;
  }

  classCapsules(output: ModelOutput): tf.Tensor3D {
    return classCapsulesOf(output, 'CapsNet');
  }

  /** Zero every capsule but the chosen one (per example) and flatten: the decoder's input. */
  mask(digitCaps: tf.Tensor3D, classes: tf.Tensor1D): tf.Tensor2D {
    return maskCapsules(digitCaps, classes);
  }

  /** Reconstruct images [batch, h*w*c] from the digit capsules masked to `classes`. */
  decode(digitCaps: tf.Tensor3D, classes: tf.Tensor1D): tf.Tensor2D {
    if (this.decoderLayers.length === 0) throw new Error('this model has no decoder');
    return tf.tidy(() => {
      let h = this.mask(digitCaps, classes);
      for (const layer of this.decoderLayers) h = layer.call(h);
      return h;
    });
  }

  /**
   * Reconstruct from one capsule vector per example [batch, dim] placed in
   * capsule `classes`: what the visualizer's sliders and the perturbation
   * figure redraw.
   */
  decodeCapsule(vector: tf.Tensor2D, classes: tf.Tensor1D): tf.Tensor2D {
    return decodeCapsuleVector(this, this.numClasses, vector, classes);
  }

  /** The margin loss (Eq. 4) plus the weighted reconstruction loss (section 4.1). */
  loss(output: ModelOutput, x: tf.Tensor4D, targets: tf.Tensor2D): LossResult {
    return capsuleLoss(output as CapsNetOutput, x, targets, this.config.loss);
  }
}
