/**
 * The matrix capsule network of "Matrix capsules with EM routing" (Hinton,
 * Sabour, Frosst 2018), section 4, for smallNORB and any other image size:
 *
 *   conv1        K x K (5x5) convolution, stride 2, A channels, ReLU
 *   primaryCaps  1x1 convolution into B capsule types (4x4 pose + activation)
 *   convCaps1    K = 3, stride 2, C types, EM routing
 *   convCaps2    K = 3, stride 1, D types, EM routing
 *   classCaps    one capsule per class, W shared across positions,
 *                coordinate addition, EM routing
 *
 * The class capsules' activations are the scores; the spread loss with a
 * margin rising from 0.2 to 0.9 over training trains the whole network.
 *
 * Parameter counts (1-channel input, 5 classes as for smallNORB; weights are
 * shared across positions, so the input size does not change them):
 *   paper (A = B = C = D = 32): 832 + 17,952 + 147,520 + 147,520 + 2,570
 *                                = 316,394
 *   small (A = 64, B = 8, C = D = 16): 1,664 + 8,840 + 18,464 + 36,896
 *                                + 1,290 = 67,154
 * counting convolution biases, a pose/activation bias in the primary
 * capsules, and the learned beta_u and beta_a of each output capsule type of
 * the three routing layers (2 x (C + D + classes)). The paper quotes "310K"
 * for its model.
 */
import * as tf from '@tensorflow/tfjs';
import { DEFAULT_INVERSE_TEMPERATURE, DEFAULT_VARIANCE_FLOOR, inverseTemperatureSchedule, type EmRoutingConfig } from '../capsules/emSettings.js';
import { ClassCapsules } from '../layers/classCapsules.js';
import { Conv2D } from '../layers/conv2d.js';
import { ConvCapsules } from '../layers/convCapsules.js';
import type { Layer } from '../layers/layer.js';
import { PrimaryMatrixCapsules } from '../layers/primaryMatrixCapsules.js';
import { POSE_SIZE } from '../capsules/matrixVotes.js';
import { spreadLoss, spreadMargin } from '../losses/spreadLoss.js';
import { mergeConfig, presetConfig } from '../util/config.js';
import { Rng } from '../util/rng.js';
import type { DeepPartial } from './capsnet.js';
import type { ConfigOverrides } from './registry.js';
import { PAPERS, type Inspection, type InspectionLayout } from './inspection.js';
import { LayeredModel, type ForwardOptions, type LossResult, type ModelConfig, type ModelOutput, type TrainingProgress } from './model.js';
import { tidyRecord } from '../util/tidy.js';

export interface EmCapsNetConfig extends ModelConfig {
  conv1: { filters: number; kernelSize: number; strides: number };
  primary: { types: number; kernelSize: number };
  convCaps1: { types: number; kernelSize: number; strides: number };
  convCaps2: { types: number; kernelSize: number; strides: number };
  classCaps: { coordinateAddition: boolean };
  routing: EmRoutingConfig;
  /** Std of the Gaussian that initialises the 4x4 transformation matrices. */
  initStddev: number;
  /** Spread-loss margin, rising linearly from marginStart to marginEnd over training. */
  loss: { marginStart: number; marginEnd: number };
}

export type EmCapsNetPreset = 'paper' | 'small';

const ROUTING: EmRoutingConfig = { iterations: 3, inverseTemperature: DEFAULT_INVERSE_TEMPERATURE, varianceFloor: DEFAULT_VARIANCE_FLOOR };

function preset(a: number, b: number, c: number, d: number): EmCapsNetConfig {
  return {
    inputShape: [32, 32, 1],
    numClasses: 5,
    conv1: { filters: a, kernelSize: 5, strides: 2 },
    primary: { types: b, kernelSize: 1 },
    convCaps1: { types: c, kernelSize: 3, strides: 2 },
    convCaps2: { types: d, kernelSize: 3, strides: 1 },
    classCaps: { coordinateAddition: true },
    routing: structuredClone(ROUTING),
    initStddev: 0.5,
    loss: { marginStart: 0.2, marginEnd: 0.9 },
  };
}

const PRESETS: Record<EmCapsNetPreset, EmCapsNetConfig> = {
  paper: preset(32, 32, 32, 32),
  small: preset(64, 8, 16, 16),
};

export const EM_CAPSNET_PRESETS = Object.keys(PRESETS) as EmCapsNetPreset[];

/** A preset's config with `overrides` merged in (nested objects merge key by key). */
export function emCapsNetConfig(presetName: EmCapsNetPreset | string = 'paper', overrides: DeepPartial<EmCapsNetConfig> | ConfigOverrides = {}): EmCapsNetConfig {
  const base = presetConfig(PRESETS, presetName);
  if (!base) throw new Error(`unknown EM capsule network preset '${presetName}': expected ${EM_CAPSNET_PRESETS.join(', ')}`);
  const config = mergeConfig(structuredClone(base), overrides);
  // A schedule given as an override replaces the preset's (its forms differ).
  const schedule = (overrides as DeepPartial<EmCapsNetConfig>).routing?.inverseTemperature;
  if (schedule) config.routing.inverseTemperature = structuredClone(schedule) as EmCapsNetConfig['routing']['inverseTemperature'];
  return config;
}

function validateConfig(c: EmCapsNetConfig): void {
  const ints: [string, number][] = [
    ['inputShape height', c.inputShape?.[0]], ['inputShape width', c.inputShape?.[1]], ['inputShape channels', c.inputShape?.[2]], ['numClasses', c.numClasses],
    ['conv1.filters', c.conv1.filters], ['conv1.kernelSize', c.conv1.kernelSize], ['conv1.strides', c.conv1.strides],
    ['primary.types', c.primary.types], ['primary.kernelSize', c.primary.kernelSize],
    ['convCaps1.types', c.convCaps1.types], ['convCaps1.kernelSize', c.convCaps1.kernelSize], ['convCaps1.strides', c.convCaps1.strides],
    ['convCaps2.types', c.convCaps2.types], ['convCaps2.kernelSize', c.convCaps2.kernelSize], ['convCaps2.strides', c.convCaps2.strides],
    ['routing.iterations', c.routing.iterations],
  ];
  for (const [name, v] of ints) if (!Number.isInteger(v) || v < 1) throw new Error(`EM capsule network config: ${name} must be a positive integer, got ${v}`);
  if (c.numClasses < 2) throw new Error(`EM capsule network config: numClasses must be at least 2, got ${c.numClasses}`);
  try {
    inverseTemperatureSchedule(c.routing.iterations, c.routing.inverseTemperature);
  } catch (e) {
    throw new Error(`EM capsule network config: routing.${(e as Error).message.replace('emRouting: ', '')}`);
  }
  if (!(c.routing.varianceFloor > 0)) throw new Error(`EM capsule network config: routing.varianceFloor must be positive, got ${c.routing.varianceFloor}`);
  if (!(c.initStddev > 0)) throw new Error(`EM capsule network config: initStddev must be positive, got ${c.initStddev}`);
  const { marginStart, marginEnd } = c.loss;
  if (!(marginStart >= 0 && marginEnd >= marginStart && marginEnd <= 1)) throw new Error(`EM capsule network config: loss margins must satisfy 0 <= marginStart <= marginEnd <= 1, got ${marginStart}, ${marginEnd}`);
}

export interface EmCapsNetOutput extends ModelOutput {
  /** Class capsule activations [batch, classes] (the scores). */
  scores: tf.Tensor2D;
  /** Class capsule poses [batch, classes, 16] (4x4, row-major). */
  poses: tf.Tensor3D;
  /** Class capsules' routing weights [batch, 1, H*W*D, classes]. */
  routing: tf.Tensor4D;
  /** With trace: the class capsules' routing weights of every EM iteration, first to last. */
  routingHistory?: tf.Tensor4D[];
  /** With trace: conv1's ReLU maps and each capsule layer's activations [batch, h, w, types]. */
  conv1?: tf.Tensor4D;
  primaryActivations?: tf.Tensor4D;
  primaryPoses?: tf.Tensor5D;
  convCaps1Activations?: tf.Tensor4D;
  convCaps2Activations?: tf.Tensor4D;
}

/** routingIterations overrides the iterations of every routing layer; decode does not apply (no decoder). */
export type EmCapsNetForwardOptions = ForwardOptions;

export class EmCapsNet extends LayeredModel<EmCapsNetConfig> {
  readonly modelType = 'em';
  readonly scoreName = 'class activations';
  readonly conv1: Conv2D;
  readonly primary: PrimaryMatrixCapsules;
  readonly convCaps1: ConvCapsules;
  readonly convCaps2: ConvCapsules;
  readonly classCaps: ClassCapsules;
  readonly layers: Layer[];

  constructor(config: EmCapsNetConfig, seed: number | Rng = 0) {
    validateConfig(config);
    super(config);
    const c = this.config;
    const rng = typeof seed === 'number' ? new Rng(seed) : seed;
    const routing = c.routing;
    this.conv1 = new Conv2D('conv1', { filters: c.conv1.filters, kernelSize: c.conv1.kernelSize, strides: c.conv1.strides, padding: 'valid', activation: 'relu' });
    this.primary = new PrimaryMatrixCapsules('primary_caps', { types: c.primary.types, kernelSize: c.primary.kernelSize });
    this.convCaps1 = new ConvCapsules('conv_caps1', { ...c.convCaps1, routing, initStddev: c.initStddev });
    this.convCaps2 = new ConvCapsules('conv_caps2', { ...c.convCaps2, routing, initStddev: c.initStddev });
    // Receptive-field centres of the last capsule grid in input pixels: each
    // valid convolution moves the centre of position 0 by (K - 1) / 2 input
    // steps and multiplies the step by its stride. Pixel centres are at +0.5.
    let offset = 0.5;
    let step = 1;
    for (const l of [c.conv1, { kernelSize: c.primary.kernelSize, strides: 1 }, c.convCaps1, c.convCaps2]) {
      offset += (step * (l.kernelSize - 1)) / 2;
      step *= l.strides;
    }
    this.classCaps = new ClassCapsules('class_caps', {
      classes: c.numClasses,
      routing,
      initStddev: c.initStddev,
      coordinateAddition: c.classCaps.coordinateAddition ? { offset: [offset, offset], stride: [step, step], imageSize: [c.inputShape[0], c.inputShape[1]] } : null,
    });
    this.layers = [this.conv1, this.primary, this.convCaps1, this.convCaps2, this.classCaps];
    this.buildLayers(this.layers, [null, ...c.inputShape], rng);
  }

  get routingIterations(): number {
    return this.config.routing.iterations;
  }

  get inspection(): InspectionLayout {
    const c = this.config;
    const [, h, w, channels] = this.outputShape(this.conv1) as number[];
    const [, gh, gw, types] = this.outputShape(this.convCaps2) as number[];
    const paper = PAPERS.emRouting;
    return {
      title: 'matrix capsules, EM routing',
      scores: {
        name: 'activation',
        title: 'Class capsule activations',
        about: 'One matrix capsule per class: a 4×4 pose matrix and an activation between 0 and 1. The most active class capsule is the prediction.',
        // The activation is set by the last M-step: how well the class's Gaussian fits the votes it was assigned.
        reference: {
          formulas: ['a_j = logistic(λ (β_a − Σ_h cost_j^h))', 'cost_j^h = (β_u + log σ_j^h) Σ_i r_ij'],
          paper,
          section: 'Sec. 2, Procedure 1 (M-step)',
        },
      },
      featureMaps: {
        layer: this.conv1.name,
        h,
        w,
        channels,
        kernel: c.conv1.kernelSize,
        reference: { formulas: [`ReLU Conv1(x) = ReLU(W ∗ x + b), ${c.conv1.filters} kernels of ${c.conv1.kernelSize}×${c.conv1.kernelSize}`], paper, section: 'Sec. 3' },
      },
      primaryCapsules: null,
      capsuleLayers: {
        title: 'Matrix capsules with EM routing',
        about:
          'A matrix capsule holds a 4×4 pose matrix (how its part is placed and turned) and an activation between 0 and 1 (whether the part is there). ' +
          'Each capsule votes for the pose of every capsule in the next layer by multiplying its pose with a learned matrix; EM routing then treats each higher capsule as a cluster of the votes it receives.',
        reference: { formulas: ['V_ij = M_i W_ij   (capsule i votes for the pose of capsule j)'], paper, section: 'Sec. 2' },
      },
      routing: {
        title: 'EM routing: assignments to the class capsules',
        coefficient: 'EM assignment',
        // Procedure 1 of the paper: R starts uniform; the M-step fits each class's Gaussian, the E-step reassigns by likelihood.
        about: 'At iteration 1 every capsule splits its vote evenly among the classes. Each iteration then reassigns every capsule to the classes whose cluster its vote fits best (E-step) and refits the clusters (M-step).',
        iterations: c.routing.iterations,
        senders: { h: gh, w: gw, types },
        reference: {
          formulas: ['M-step: r_ij = R_ij a_i,   μ_j = Σ_i r_ij V_ij / Σ_i r_ij,   (σ_j^h)^2 = Σ_i r_ij (V_ij^h − μ_j^h)^2 / Σ_i r_ij', 'E-step: R_ij = a_j p_ij / Σ_k a_k p_ik,   p_ij = N(V_ij; μ_j, σ_j^2)'],
          paper,
          section: 'Sec. 2, Procedure 1',
        },
      },
      classCapsules: {
        form: 'pose',
        size: POSE_SIZE,
        about: `The pose says how the class is seen: its position, scale, slant.${c.classCaps.coordinateAddition ? ' The last column carries the position of the votes (coordinate addition), so it moves when the digit moves.' : ''}`,
        reference: {
          formulas: ['M_j = μ_j   (the mean of the votes V_ij assigned to class j, as a 4×4 matrix)', ...(c.classCaps.coordinateAddition ? ['coordinate addition: V_ij gains the scaled (x, y) of capsule i in its first two entries of the last column'] : [])],
          paper,
          section: c.classCaps.coordinateAddition ? 'Sec. 2, Procedure 1; Sec. 3 (coordinate addition)' : 'Sec. 2, Procedure 1',
        },
      },
    };
  }

  /**
   * Conv1's maps, the activations of every capsule layer, the class
   * capsules' assignments R of every EM iteration over the last
   * convolutional capsule layer (children ordered row, column, type), and
   * the class capsules' poses.
   */
  inspect(x: tf.Tensor4D): Inspection {
    return tidyRecord(() => {
      const out = this.forward(x, { trace: true });
      const b = x.shape[0];
      const senders = out.convCaps2Activations!;
      return {
        scores: out.scores,
        featureMaps: out.conv1!,
        capsuleLayers: [
          { name: 'Primary capsules', activations: out.primaryActivations! },
          { name: 'Convolutional capsules 1', activations: out.convCaps1Activations! },
          { name: 'Convolutional capsules 2', activations: senders },
        ],
        routing: {
          coefficients: out.routingHistory!.map((r) => tf.reshape(r, [b, -1, this.numClasses]) as tf.Tensor3D),
          senderWeights: tf.reshape(senders, [b, -1]) as tf.Tensor2D,
        },
        classCapsules: out.poses,
      };
    });
  }

  forward(x: tf.Tensor4D, options: EmCapsNetForwardOptions = {}): EmCapsNetOutput {
    this.checkInput(x);
    const iterations = options.routingIterations;
    return tidyRecord(() => {
      const conv1 = this.conv1.call(x);
      const primary = this.primary.call(conv1);
      const cc1 = this.convCaps1.call(primary, iterations);
      const cc2 = this.convCaps2.call(cc1, iterations);
      const cls = this.classCaps.call(cc2, iterations, options.trace === true);
      const out: EmCapsNetOutput = { scores: cls.activations, poses: cls.poses, routing: cls.routing };
      if (options.trace) {
        out.conv1 = conv1;
        out.primaryPoses = primary.poses;
        out.primaryActivations = primary.activations;
        out.convCaps1Activations = cc1.activations;
        out.convCaps2Activations = cc2.activations;
        out.routingHistory = cls.routingHistory;
      }
      return out;
    });
  }

  /**
   * Data-dependent start (before training): set each routing layer's beta_u
   * so that its cost is centred on this batch and about half of its capsules
   * start active (see calibrateBetaU).
   */
  initializeFromData(x: tf.Tensor4D): void {
    tf.tidy(() => {
      const primary = this.primary.call(this.conv1.call(x));
      this.convCaps1.calibrate(primary);
      const cc1 = this.convCaps1.call(primary);
      this.convCaps2.calibrate(cc1);
      this.classCaps.calibrate(this.convCaps2.call(cc1));
    });
  }

  /** Spread loss; the margin follows progress.fraction (the final margin when absent). */
  loss(output: ModelOutput, _x: tf.Tensor4D, targets: tf.Tensor2D, progress?: TrainingProgress): LossResult {
    const { marginStart, marginEnd } = this.config.loss;
    const m = spreadMargin(progress?.fraction ?? 1, marginStart, marginEnd);
    return tidyRecord(() => {
      const spread = spreadLoss(output.scores, targets, m);
      return { total: spread, terms: { spread, margin: tf.scalar(m) } };
    });
  }
}
