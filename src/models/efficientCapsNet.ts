/**
 * Efficient-CapsNet of "Efficient-CapsNet: Capsule Network with
 * Self-Attention Routing" (Mazzia, Salvetti, Chiaberge, Scientific Reports
 * 2021), as its official code builds it for each data set:
 *
 *   backbone   four valid convolutions, each followed by its non-linearity
 *              and a normalization (MNIST, MultiMNIST: ReLU, batch norm;
 *              smallNORB: leaky ReLU, instance norm)
 *   primary    a depthwise convolution as large as the last maps, cut into
 *              8-D capsules and squashed with (1 - 1/e^|s|) s/|s|
 *   class caps one capsule per class, W_ij per (input, class) pair, one pass
 *              of self-attention routing with learned priors
 *   decoder    from the class capsules masked to one class (the true one in
 *              training, the longest at test time, one per object on
 *              MultiMNIST): fully connected 512, 1024, pixels (MNIST,
 *              MultiMNIST), or a dense seed map upsampled through three
 *              convolutions (smallNORB)
 *
 * The loss is the margin loss of the 2017 paper on the capsule lengths plus
 * the reconstruction's squared error. The official code weighs a mean
 * squared error over the pixels by 0.392 (split evenly between MultiMNIST's
 * two objects); here the reconstruction loss is a sum over the pixels, so
 * the same weight is 0.392 / pixels (/ 2 objects): 0.0005 on MNIST.
 *
 * Parameters without the decoder (weights are shared across positions, so
 * for the MNIST backbone only the input channels and the grid the primary
 * kernel leaves change them):
 *   mnist:     conv 832 + 18,496 + 36,928 + 73,856, batch norm gamma and
 *              beta 64 + 128 + 128 + 256, primary 10,368 + 128, class
 *              capsules W 20,480 + priors 160 = 161,824 (the paper's "161K"),
 *              plus 576 moving statistics of the batch norms
 *   smallnorb: 3,168 + 18,496 + 36,928 + 73,856 + 576 (instance norm) +
 *              8,320 + 10,240 + 80 = 151,664 (the paper's "151K")
 */
import * as tf from '@tensorflow/tfjs';
import { capsuleLength } from '../capsules/squash.js';
import { BatchNormalization } from '../layers/batchNormalization.js';
import { Conv2D } from '../layers/conv2d.js';
import { Dense } from '../layers/dense.js';
import { EfficientPrimaryCapsules } from '../layers/efficientPrimaryCapsules.js';
import { InstanceNormalization } from '../layers/instanceNormalization.js';
import type { Layer } from '../layers/layer.js';
import { SelfAttentionCapsules } from '../layers/selfAttentionCapsules.js';
import { mergeConfig, presetConfig } from '../util/config.js';
import { Rng } from '../util/rng.js';
import { tidyRecord } from '../util/tidy.js';
import type { DeepPartial } from './capsnet.js';
import { capsuleLoss, classCapsulesOf, decodeCapsuleVector, maskCapsules, reconstructions, type ReconstructionOutput } from './capsuleDecoder.js';
import { PAPERS, type Inspection, type InspectionLayout } from './inspection.js';
import type { ConfigOverrides } from './registry.js';
import { LayeredModel, type CapsuleDecoder, type ForwardOptions, type LossResult, type ModelConfig, type ModelOutput } from './model.js';

/** One backbone convolution (valid padding). */
export interface BackboneConv {
  filters: number;
  kernelSize: number;
  strides: number;
}

/**
 * 'dense': fully connected hidden layers (ReLU), then the pixels (sigmoid).
 * 'upsampling': a dense layer to a one-channel seed map, then for each entry
 * of `filters` a bilinear 2x upsampling and a valid 3x3 convolution (leaky
 * ReLU), then a valid 3x3 convolution to the image's channels (sigmoid).
 */
export type EfficientDecoderConfig = { kind: 'dense'; hidden: number[] } | { kind: 'upsampling'; filters: number[] };

export interface EfficientCapsNetConfig extends ModelConfig {
  backbone: BackboneConv[];
  /** Non-linearity after each backbone convolution, before its normalization. */
  activation: 'relu' | 'leakyRelu';
  normalization: 'batch' | 'instance';
  /** The depthwise convolution of the primary capsules and their dimension. */
  primary: { kernelSize: number; strides: number; dim: number };
  classCaps: { dim: number };
  decoder: EfficientDecoderConfig | null;
  loss: { mPlus: number; mMinus: number; lambda: number; reconstructionWeight: number };
}

export type EfficientCapsNetPreset = 'mnist' | 'multimnist' | 'smallnorb';

/** Keras's LeakyReLU default (the official smallNORB backbone) and tf.nn.leaky_relu's (its decoder). */
export const BACKBONE_LEAKY_SLOPE = 0.3;
export const DECODER_LEAKY_SLOPE = 0.2;
/** The official code's weight of the reconstruction's mean squared error over the pixels. */
const OFFICIAL_RECONSTRUCTION_WEIGHT = 0.392;

const MARGIN = { mPlus: 0.9, mMinus: 0.1, lambda: 0.5 };

const PRESETS: Record<EfficientCapsNetPreset, EfficientCapsNetConfig> = {
  mnist: {
    inputShape: [28, 28, 1],
    numClasses: 10,
    backbone: [{ filters: 32, kernelSize: 5, strides: 1 }, { filters: 64, kernelSize: 3, strides: 1 }, { filters: 64, kernelSize: 3, strides: 1 }, { filters: 128, kernelSize: 3, strides: 2 }],
    activation: 'relu',
    normalization: 'batch',
    primary: { kernelSize: 9, strides: 1, dim: 8 },
    classCaps: { dim: 16 },
    decoder: { kind: 'dense', hidden: [512, 1024] },
    loss: { ...MARGIN, reconstructionWeight: OFFICIAL_RECONSTRUCTION_WEIGHT / (28 * 28) },
  },
  // Two strided convolutions and a strided 5x5 primary kernel bring the
  // 36x36 canvas to the same 16 primary capsules.
  multimnist: {
    inputShape: [36, 36, 1],
    numClasses: 10,
    backbone: [{ filters: 32, kernelSize: 5, strides: 1 }, { filters: 64, kernelSize: 3, strides: 1 }, { filters: 64, kernelSize: 3, strides: 2 }, { filters: 128, kernelSize: 3, strides: 2 }],
    activation: 'relu',
    normalization: 'batch',
    primary: { kernelSize: 5, strides: 2, dim: 8 },
    classCaps: { dim: 16 },
    decoder: { kind: 'dense', hidden: [512, 1024] },
    loss: { ...MARGIN, reconstructionWeight: OFFICIAL_RECONSTRUCTION_WEIGHT / (2 * 36 * 36) },
  },
  // 48x48 crops of both cameras (two channels), five classes.
  smallnorb: {
    inputShape: [48, 48, 2],
    numClasses: 5,
    backbone: [{ filters: 32, kernelSize: 7, strides: 2 }, { filters: 64, kernelSize: 3, strides: 1 }, { filters: 64, kernelSize: 3, strides: 1 }, { filters: 128, kernelSize: 3, strides: 2 }],
    activation: 'leakyRelu',
    normalization: 'instance',
    primary: { kernelSize: 8, strides: 1, dim: 8 },
    classCaps: { dim: 16 },
    decoder: { kind: 'upsampling', filters: [64, 128, 128] },
    loss: { ...MARGIN, reconstructionWeight: OFFICIAL_RECONSTRUCTION_WEIGHT / (48 * 48 * 2) },
  },
};

export const EFFICIENT_CAPSNET_PRESETS = Object.keys(PRESETS) as EfficientCapsNetPreset[];

/** A preset's config with `overrides` merged in (nested objects merge key by key; arrays are replaced). */
export function efficientCapsNetConfig(preset: EfficientCapsNetPreset | string = 'mnist', overrides: DeepPartial<EfficientCapsNetConfig> | ConfigOverrides = {}): EfficientCapsNetConfig {
  const base = presetConfig(PRESETS, preset);
  if (!base) throw new Error(`unknown Efficient-CapsNet preset '${preset}': expected ${EFFICIENT_CAPSNET_PRESETS.join(', ')}`);
  return mergeConfig(structuredClone(base), overrides);
}

function positiveInts(c: EfficientCapsNetConfig): [string, number][] {
  return [
    ['inputShape height', c.inputShape?.[0]], ['inputShape width', c.inputShape?.[1]], ['inputShape channels', c.inputShape?.[2]], ['numClasses', c.numClasses],
    ...c.backbone.flatMap((b, i): [string, number][] => [[`backbone[${i}].filters`, b.filters], [`backbone[${i}].kernelSize`, b.kernelSize], [`backbone[${i}].strides`, b.strides]]),
    ['primary.kernelSize', c.primary.kernelSize], ['primary.strides', c.primary.strides], ['primary.dim', c.primary.dim], ['classCaps.dim', c.classCaps.dim],
    ...(c.decoder?.kind === 'dense' ? c.decoder.hidden : c.decoder?.filters ?? []).map((n, i): [string, number] => [`decoder ${c.decoder!.kind === 'dense' ? 'hidden' : 'filters'}[${i}]`, n]),
  ];
}

function validateConfig(c: EfficientCapsNetConfig): void {
  const fail = (msg: string): never => {
    throw new Error(`Efficient-CapsNet config: ${msg}`);
  };
  if (!Array.isArray(c.backbone) || c.backbone.length === 0) fail('backbone must list at least one convolution');
  if (c.decoder !== null) {
    if (c.decoder.kind !== 'dense' && c.decoder.kind !== 'upsampling') fail(`decoder.kind must be 'dense' or 'upsampling', got ${JSON.stringify((c.decoder as { kind: unknown }).kind)}`);
    const list = c.decoder.kind === 'dense' ? c.decoder.hidden : c.decoder.filters;
    if (!Array.isArray(list)) fail(`decoder.${c.decoder.kind === 'dense' ? 'hidden' : 'filters'} must be a list of sizes`);
  }
  for (const [name, v] of positiveInts(c)) if (!Number.isInteger(v) || v < 1) fail(`${name} must be a positive integer, got ${v}`);
  if (c.numClasses < 2) fail(`numClasses must be at least 2, got ${c.numClasses}`);
  if (c.activation !== 'relu' && c.activation !== 'leakyRelu') fail(`activation must be 'relu' or 'leakyRelu', got ${JSON.stringify(c.activation)}`);
  if (c.normalization !== 'batch' && c.normalization !== 'instance') fail(`normalization must be 'batch' or 'instance', got ${JSON.stringify(c.normalization)}`);
  const { mPlus, mMinus, lambda, reconstructionWeight } = c.loss;
  if (!(mMinus >= 0 && mPlus > mMinus && mPlus <= 1)) fail(`loss margins must satisfy 0 <= mMinus < mPlus <= 1, got ${mMinus}, ${mPlus}`);
  if (!(lambda >= 0)) fail(`loss.lambda must be non-negative, got ${lambda}`);
  if (!(reconstructionWeight >= 0)) fail(`loss.reconstructionWeight must be non-negative, got ${reconstructionWeight}`);
}

/** Side of the upsampling decoder's seed map for an image side: each stage doubles and a valid 3x3 takes 2, so side = 2^stages (seed - 2). */
function seedSide(side: number, stages: number): number {
  const scale = 2 ** stages;
  if (side % scale !== 0) throw new Error(`Efficient-CapsNet config: an upsampling decoder of ${stages} stages draws sides that are multiples of ${scale}, the input is ${side}`);
  return side / scale + 2;
}

/** With a decoder, also the reconstructions the forward options ask for (ReconstructionOutput). */
export interface EfficientCapsNetOutput extends ModelOutput, ReconstructionOutput {
  /** Class capsule lengths [batch, classes] (the scores). */
  scores: tf.Tensor2D;
  /** Class capsules [batch, classes, dim]. */
  digitCaps: tf.Tensor3D;
  /** The self-attention coupling coefficients of the one routing pass, [[batch, primaryCaps, classes]]. */
  couplings: tf.Tensor3D[];
  /** With trace: the first convolution's maps (after its non-linearity), the backbone's last maps and the primary capsules [batch, caps, dim]. */
  conv1?: tf.Tensor4D;
  features?: tf.Tensor4D;
  primaryCaps?: tf.Tensor3D;
}

type NormalizationLayer = BatchNormalization | InstanceNormalization;

export class EfficientCapsNet extends LayeredModel<EfficientCapsNetConfig> implements CapsuleDecoder {
  readonly modelType = 'efficient';
  readonly scoreName = 'capsule lengths';
  /** One pass of self-attention routing, no iterations to set. */
  readonly routingIterations = null;
  override readonly decoder: CapsuleDecoder | null;
  readonly convs: Conv2D[];
  readonly norms: NormalizationLayer[];
  readonly primary: EfficientPrimaryCapsules;
  readonly classCaps: SelfAttentionCapsules;
  /** The decoder's dense layers: the hidden ones and the pixels, or the seed map. */
  readonly decoderDense: Dense[];
  /** The upsampling decoder's convolutions, the last one to the image channels. */
  readonly decoderConvs: Conv2D[];
  readonly layers: Layer[];
  /** Height and width of the upsampling decoder's seed map (the ONNX graph reads it too). */
  readonly seedMap: [number, number] = [0, 0];

  constructor(config: EfficientCapsNetConfig, seed: number | Rng = 0) {
    validateConfig(config);
    super(config);
    const rng = typeof seed === 'number' ? new Rng(seed) : seed;
    const c = this.config;
    const [h, w, channels] = c.inputShape;
    this.convs = c.backbone.map((b, i) => new Conv2D(`conv${i + 1}`, { ...b, padding: 'valid', activation: c.activation === 'relu' ? 'relu' : 'linear' }));
    this.norms = c.backbone.map((_, i) => (c.normalization === 'batch' ? new BatchNormalization(`norm${i + 1}`, {}) : new InstanceNormalization(`norm${i + 1}`, {})));
    this.primary = new EfficientPrimaryCapsules('primary_caps', { ...c.primary, padding: 'valid' });
    this.classCaps = new SelfAttentionCapsules('class_caps', { capsules: c.numClasses, dim: c.classCaps.dim });
    const caps = c.numClasses * c.classCaps.dim;
    this.decoderDense = [];
    this.decoderConvs = [];
    if (c.decoder?.kind === 'dense') {
      this.decoderDense.push(...c.decoder.hidden.map((units, i) => new Dense(`decoder_fc${i + 1}`, { units, activation: 'relu' })), new Dense(`decoder_fc${c.decoder.hidden.length + 1}`, { units: h * w * channels, activation: 'sigmoid' }));
    } else if (c.decoder?.kind === 'upsampling') {
      const stages = c.decoder.filters.length;
      this.seedMap = [seedSide(h, stages), seedSide(w, stages)];
      this.decoderDense.push(new Dense('decoder_fc1', { units: this.seedMap[0] * this.seedMap[1] }));
      this.decoderConvs.push(...c.decoder.filters.map((filters, i) => new Conv2D(`decoder_conv${i + 1}`, { filters, kernelSize: 3, padding: 'valid' })), new Conv2D(`decoder_conv${stages + 1}`, { filters: channels, kernelSize: 3, padding: 'valid', activation: 'sigmoid' }));
    }
    const backbone = this.convs.flatMap((conv, i) => [conv, this.norms[i]]);
    this.layers = [...backbone, this.primary, this.classCaps, ...this.decoderDense, ...this.decoderConvs];
    this.decoder = this.decoderDense.length > 0 ? this : null;

    const features = this.buildLayers(backbone, [null, h, w, channels], rng);
    this.buildLayers([this.primary, this.classCaps], features, rng);
    this.buildLayers(this.decoderDense, [null, caps], rng);
    let side: [number, number] = this.seedMap;
    let inChannels = 1;
    for (const [i, conv] of this.decoderConvs.entries()) {
      if (i < this.decoderConvs.length - 1) side = [side[0] * 2, side[1] * 2];
      const out = this.buildLayers([conv], [null, side[0], side[1], inChannels], rng);
      side = [out[1] as number, out[2] as number];
      inChannels = out[3] as number;
    }
  }

  /** The backbone: the first convolution's maps (after its non-linearity) and the last maps, [batch, h, w, channels]. */
  backbone(x: tf.Tensor4D, training: boolean): { conv1: tf.Tensor4D; features: tf.Tensor4D } {
    return tidyRecord(() => {
      let h = x;
      let conv1 = x;
      for (const [i, conv] of this.convs.entries()) {
        h = conv.call(h);
        if (this.config.activation === 'leakyRelu') h = tf.leakyRelu(h, BACKBONE_LEAKY_SLOPE);
        if (i === 0) conv1 = h;
        const norm = this.norms[i];
        h = norm instanceof BatchNormalization ? norm.call(h, training) : norm.call(h);
      }
      return { conv1, features: h };
    });
  }

  forward(x: tf.Tensor4D, options: ForwardOptions = {}): EfficientCapsNetOutput {
    this.checkInput(x);
    const { training = false, trace = false } = options;
    return tidyRecord(() => {
      const { conv1, features } = this.backbone(x, training);
      const primaryCaps = this.primary.call(features);
      const { v: digitCaps, couplings } = this.classCaps.call(primaryCaps);
      const scores = capsuleLength(digitCaps) as tf.Tensor2D;
      const out: EfficientCapsNetOutput = { scores, digitCaps, couplings: [couplings] };
      if (trace) {
        out.conv1 = conv1;
        out.features = features;
        out.primaryCaps = primaryCaps;
      }
      return Object.assign(out, reconstructions(this.decoder, digitCaps, scores, options, this.config.loss.reconstructionWeight));
    });
  }

  get capsuleDim(): number {
    return this.config.classCaps.dim;
  }

  get inspection(): InspectionLayout {
    const c = this.config;
    const [, h, w, channels] = this.outputShape(this.convs[0]) as number[];
    const [, gh, gw, primaryChannels] = this.primary.convolutionShape;
    const paper = PAPERS.efficientCapsNet;
    // The paper's sections are cited without equation numbers.
    const section = 'Sec. 3';
    const { mPlus, mMinus, lambda, reconstructionWeight } = c.loss;
    const conv1 = c.backbone[0];
    return {
      title: 'Efficient-CapsNet, self-attention routing',
      scores: {
        name: 'capsule length',
        title: 'Class capsules',
        about: `One ${c.classCaps.dim}-dimensional capsule per class. Its length is the network's confidence that the class is present; the longest is the prediction.`,
        // The margin loss of the 2017 paper, which Efficient-CapsNet keeps.
        reference: {
          formulas: ['L_k = T_k max(0, m^+ − ‖v_k‖)^2 + λ (1 − T_k) max(0, ‖v_k‖ − m^−)^2', `m^+ = ${mPlus}, m^− = ${mMinus}, λ = ${lambda}; T_k = 1 when class k is present`],
          paper: PAPERS.dynamicRouting,
          section: 'Sec. 3, Eq. 4',
        },
      },
      featureMaps: {
        layer: this.convs[0].name,
        h,
        w,
        channels,
        kernel: conv1.kernelSize,
        reference: { formulas: [`conv1(x) = ${c.activation === 'relu' ? 'ReLU' : 'LeakyReLU'}(W ∗ x + b), ${conv1.filters} kernels of ${conv1.kernelSize}×${conv1.kernelSize}, then ${c.normalization} normalization`], paper, section },
      },
      primaryCapsules: {
        h: gh,
        w: gw,
        types: primaryChannels / c.primary.dim,
        dim: c.primary.dim,
        about: 'Four convolutions with normalization, then a depthwise convolution as large as their last maps, whose outputs are cut into small vectors, the primary capsules, and squashed with (1 - 1/e^|s|) s/|s| so that each length lies between 0 and 1.',
        reference: { formulas: ['v = (1 − 1/e^{‖s‖}) · s / ‖s‖'], paper, section: `${section} (squash)` },
      },
      capsuleLayers: null,
      routing: {
        title: 'Self-attention routing',
        coefficient: 'self-attention coefficient',
        // Methods of the paper: c_ij = softmax_j(sum_k A_j[i, k]) with A_j = U_j U_j^T / sqrt(d), in one pass.
        about: 'Each primary capsule predicts every class capsule. For each class, the predictions that agree with the other capsules\' predictions for that class get larger coefficients (self-attention); each capsule splits its output among the classes with coefficients that add up to 1, plus a learned prior per pair. One pass, no iterations.',
        iterations: 1,
        senders: 'primary capsules',
        reference: {
          formulas: ['û_{j|i} = W_ij u_i,   A_j = U_j U_j^T / √d   (U_j: the rows û_{j|i})', 'c_ij = softmax_j(Σ_k A_j[i, k])', 's_j = Σ_i (c_ij + b_ij) û_{j|i},   v_j = squash(s_j)   (b_ij: learned priors)'],
          paper,
          section: `${section} (self-attention routing)`,
        },
      },
      classCapsules: {
        form: 'vector',
        dim: c.classCaps.dim,
        reference: { formulas: ['x̂ = decoder(v_k), every other class capsule set to 0', `L = Σ_k L_k + ${Number(reconstructionWeight.toPrecision(3))} Σ_p (x_p − x̂_p)^2`], paper, section },
        dimensions: { formulas: ['x̂(d, t) = decoder(v_k + t e_d),   t = −0.25, −0.20, …, 0.25'], paper: PAPERS.dynamicRouting, section: 'Sec. 5.1, Fig. 4' },
      },
    };
  }

  /** The first convolution's maps, the primary capsules, the self-attention coefficients and the class capsules. */
  inspect(x: tf.Tensor4D): Inspection {
    return tidyRecord(() => {
      const out = this.forward(x, { trace: true, decode: 'none' });
      const primaryCaps = out.primaryCaps!;
      const lengths = capsuleLength(primaryCaps) as tf.Tensor2D;
      return {
        scores: out.scores,
        featureMaps: out.conv1!,
        primaryCapsules: { vectors: primaryCaps, lengths },
        routing: { coefficients: out.couplings, senderWeights: lengths, scores: [out.scores] },
        classCapsules: out.digitCaps,
      };
    });
  }

  classCapsules(output: ModelOutput): tf.Tensor3D {
    return classCapsulesOf(output, 'Efficient-CapsNet');
  }

  /** Reconstruct images [batch, h*w*c] from the class capsules with all but `classes` zeroed. */
  decode(classCaps: tf.Tensor3D, classes: tf.Tensor1D): tf.Tensor2D {
    if (this.decoder === null) throw new Error('this model has no decoder');
    const b = classCaps.shape[0];
    return tf.tidy(() => {
      let h: tf.Tensor = maskCapsules(classCaps, classes);
      for (const layer of this.decoderDense) h = layer.call(h as tf.Tensor2D);
      if (this.decoderConvs.length === 0) return h as tf.Tensor2D;
      h = tf.reshape(h, [b, this.seedMap[0], this.seedMap[1], 1]);
      for (const [i, conv] of this.decoderConvs.entries()) {
        const last = i === this.decoderConvs.length - 1;
        if (!last) {
          const [, sh, sw] = h.shape;
          // TensorFlow 2's bilinear resize, as Keras's UpSampling2D uses it: half-pixel centres.
          h = tf.image.resizeBilinear(h as tf.Tensor4D, [(sh as number) * 2, (sw as number) * 2], false, true);
        }
        h = conv.call(h as tf.Tensor4D);
        if (!last) h = tf.leakyRelu(h, DECODER_LEAKY_SLOPE);
      }
      return tf.reshape(h, [b, -1]) as tf.Tensor2D;
    });
  }

  /** Reconstruct from one capsule vector per example [batch, dim] placed in capsule `classes`. */
  decodeCapsule(vector: tf.Tensor2D, classes: tf.Tensor1D): tf.Tensor2D {
    return decodeCapsuleVector(this, this.numClasses, vector, classes);
  }

  /** Trainable parameters without the decoder: what the paper counts. */
  countClassifierParams(): number {
    const decoder = new Set<Layer>([...this.decoderDense, ...this.decoderConvs]);
    return this.layers.filter((l) => !decoder.has(l)).reduce((n, l) => n + l.countParams(), 0);
  }

  /**
   * The margin loss plus the weighted reconstruction loss; on MultiMNIST the
   * sum of each object's squared error.
   */
  loss(output: ModelOutput, x: tf.Tensor4D, targets: tf.Tensor2D): LossResult {
    return capsuleLoss(output as EfficientCapsNetOutput, x, targets, this.config.loss);
  }
}
