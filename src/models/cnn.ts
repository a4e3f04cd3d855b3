/**
 * The CNN baseline of "Dynamic Routing Between Capsules" (section 5): three
 * convolutional layers of 256, 256 and 128 channels (5x5, stride 1, ReLU),
 * two fully connected layers of 328 and 192 units, dropout, and a 10-way
 * softmax trained with cross-entropy: 35.4M parameters on 28x28 input.
 * Convolutions keep the spatial size ('same' padding, no pooling), which is
 * what gives the paper's parameter count.
 */
import * as tf from '@tensorflow/tfjs';
import { Conv2D } from '../layers/conv2d.js';
import { Dense } from '../layers/dense.js';
import { dropout } from '../layers/dropout.js';
import type { Layer } from '../layers/layer.js';
import { Rng } from '../util/rng.js';
import { mergeConfig, presetConfig } from '../util/config.js';
import type { ConfigOverrides } from './registry.js';
import { PAPERS, type Inspection, type InspectionLayout } from './inspection.js';
import { LayeredModel, type ForwardOptions, type LossResult, type ModelConfig, type ModelOutput } from './model.js';
import { tidyRecord } from '../util/tidy.js';

export interface CnnConfig extends ModelConfig {
  convs: { filters: number; kernelSize: number }[];
  dense: number[];
  dropout: number;
}

export type CnnPreset = 'paper' | 'small';

const PRESETS: Record<CnnPreset, CnnConfig> = {
  paper: { inputShape: [28, 28, 1], numClasses: 10, convs: [{ filters: 256, kernelSize: 5 }, { filters: 256, kernelSize: 5 }, { filters: 128, kernelSize: 5 }], dense: [328, 192], dropout: 0.5 },
  small: { inputShape: [28, 28, 1], numClasses: 10, convs: [{ filters: 32, kernelSize: 5 }, { filters: 32, kernelSize: 5 }, { filters: 16, kernelSize: 5 }], dense: [128, 64], dropout: 0.5 },
};

export const CNN_PRESETS = Object.keys(PRESETS) as CnnPreset[];

export function cnnConfig(preset: CnnPreset | string = 'paper', overrides: Partial<CnnConfig> | ConfigOverrides = {}): CnnConfig {
  const base = presetConfig(PRESETS, preset);
  if (!base) throw new Error(`unknown CNN preset '${preset}': expected ${CNN_PRESETS.join(', ')}`);
  return mergeConfig(structuredClone(base), overrides);
}

export interface CnnForwardOptions extends ForwardOptions {
  rng?: Rng;
}

export class CnnBaseline extends LayeredModel<CnnConfig> {
  readonly modelType = 'cnn';
  readonly scoreName = 'probabilities';
  readonly routingIterations = null;
  readonly convs: Conv2D[];
  readonly hidden: Dense[];
  readonly classifier: Dense;
  readonly layers: Layer[];

  constructor(config: CnnConfig, seed: number | Rng = 0) {
    for (const [name, v] of [['numClasses', config.numClasses], ...config.convs.map((c, i) => [`convs[${i}].filters`, c.filters]), ...config.dense.map((d, i) => [`dense[${i}]`, d])] as [string, number][]) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`CNN config: ${name} must be a positive integer, got ${v}`);
    }
    if (!(config.dropout >= 0 && config.dropout < 1)) throw new Error(`CNN config: dropout must be in [0, 1), got ${config.dropout}`);
    super(config);
    const rng = typeof seed === 'number' ? new Rng(seed) : seed;
    this.convs = config.convs.map((c, i) => new Conv2D(`conv${i + 1}`, { filters: c.filters, kernelSize: c.kernelSize, strides: 1, padding: 'same', activation: 'relu' }));
    this.hidden = config.dense.map((units, i) => new Dense(`fc${i + 1}`, { units, activation: 'relu' }));
    this.classifier = new Dense(`fc${config.dense.length + 1}`, { units: config.numClasses });
    this.layers = [...this.convs, ...this.hidden, this.classifier];
    const [, h, w, ch] = this.buildLayers(this.convs, [null, ...config.inputShape], rng) as [null, number, number, number];
    this.buildLayers([...this.hidden, this.classifier], [null, h * w * ch], rng);
  }

  /** The CNN shows only its scores: it has no capsules, routing or decoder. */
  readonly inspection: InspectionLayout = {
    title: 'CNN baseline',
    scores: {
      name: 'probability',
      title: 'Class scores',
      about: 'The CNN baseline has no capsules: it outputs one probability per class (softmax).',
      // The baseline the CapsNet paper compares with.
      reference: { formulas: ['p_k = exp(z_k) / Σ_j exp(z_j),   L = −log p_y   (cross entropy)'], paper: PAPERS.dynamicRouting, section: 'Sec. 5 (the baseline)' },
    },
    featureMaps: null,
    primaryCapsules: null,
    capsuleLayers: null,
    routing: null,
    classCapsules: null,
  };

  inspect(x: tf.Tensor4D): Inspection {
    return tidyRecord(() => ({ scores: this.forward(x).scores }));
  }

  /** Scores are softmax probabilities; `logits` are kept for the loss and for attacks. */
  forward(x: tf.Tensor4D, options: CnnForwardOptions = {}): ModelOutput {
    this.checkInput(x);
    const training = options.training ?? false;
    return tidyRecord(() => {
      let y: tf.Tensor4D = x;
      for (const l of this.convs) y = l.call(y);
      let z = tf.reshape(y, [x.shape[0], -1]) as tf.Tensor2D;
      for (const l of this.hidden) z = l.call(z);
      z = dropout(z, this.config.dropout, options.rng, training);
      const logits = this.classifier.call(z);
      return { scores: tf.softmax(logits) as tf.Tensor2D, logits };
    });
  }

  /** Softmax cross-entropy; multi-hot targets are normalised to a distribution. */
  loss(output: ModelOutput, _x: tf.Tensor4D, targets: tf.Tensor2D): LossResult {
    return tidyRecord(() => {
      const t = tf.div(targets, tf.sum(targets, 1, true));
      const ce = tf.losses.softmaxCrossEntropy(t, output.logits as tf.Tensor2D) as tf.Scalar;
      return { total: ce, terms: { crossEntropy: ce } };
    });
  }
}
