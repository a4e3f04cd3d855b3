/**
 * Test-set evaluation: accuracy and error, per-class accuracy, and the
 * confusion matrix (rows: true class, columns: predicted). For multi-label
 * data (MultiMNIST) an example counts as right when its k classes are the k
 * highest scores, as in section 6 of "Dynamic Routing Between Capsules".
 */
import * as tf from '@tensorflow/tfjs';
import { batchCount, batchIndices, makeBatch, sequentialOrder } from '../data/batches.js';
import type { ImageDataset } from '../data/dataset.js';
import type { ClassifierModel, ForwardOptions } from '../models/model.js';
import { Progress } from '../util/progress.js';

export interface EvalResult {
  dataset: string;
  count: number;
  correct: number;
  accuracy: number;
  error: number;
  perClass: { class: number; name: string; count: number; correct: number; accuracy: number }[];
  /** confusion[true][predicted] (single-label data only). */
  confusion: number[][];
  seconds: number;
  imagesPerSecond: number;
}

export interface EvalOptions {
  batchSize?: number;
  progress?: boolean;
  /** Extra forward options (e.g. routingIterations for ablations). */
  forwardOptions?: ForwardOptions;
}

/**
 * A pass over a dataset in order, batch by batch: each batch's scores as a
 * tensor (read and disposed by the caller), stored into one array of
 * scores [count, classes].
 */
function scorePass(model: ClassifierModel, ds: ImageDataset, options: EvalOptions) {
  checkCompatible(model, ds);
  const { batchSize = 100 } = options;
  const k = model.numClasses;
  const scores = new Float32Array(ds.count * k);
  const order = sequentialOrder(ds.count);
  const batches = batchCount(ds.count, batchSize);
  const progress = new Progress({ label: `eval ${ds.name}`, total: batches, itemsPerStep: batchSize, enabled: options.progress ?? false });
  return {
    batches,
    /** Batch b's scores, and where they go in the array. */
    batch(b: number): { at: number; t: tf.Tensor2D } {
      const idx = batchIndices(order, b, batchSize);
      const batch = makeBatch(ds, idx);
      const t = tf.tidy(() => model.forward(tf.tensor4d(batch.x, [batch.size, ds.height, ds.width, ds.channels]), { training: false, decode: 'none', ...options.forwardOptions }).scores);
      return { at: idx[0] * k, t };
    },
    store(b: number, at: number, values: ArrayLike<number>): void {
      scores.set(values, at);
      progress.update(b + 1);
    },
    finish(): Float32Array {
      progress.finish();
      return scores;
    },
  };
}

/** Scores [count, classes] for every image of a dataset. */
export function predictScores(model: ClassifierModel, ds: ImageDataset, options: EvalOptions = {}): Float32Array {
  const pass = scorePass(model, ds, options);
  for (let b = 0; b < pass.batches; b++) {
    const { at, t } = pass.batch(b);
    pass.store(b, at, t.dataSync());
    t.dispose();
  }
  return pass.finish();
}

/** predictScores for backends that cannot read values synchronously (WebGPU in a Web Worker). */
export async function predictScoresAsync(model: ClassifierModel, ds: ImageDataset, options: EvalOptions = {}): Promise<Float32Array> {
  const pass = scorePass(model, ds, options);
  for (let b = 0; b < pass.batches; b++) {
    const { at, t } = pass.batch(b);
    pass.store(b, at, await t.data());
    t.dispose();
  }
  return pass.finish();
}

/** Throw a one-line error when the model cannot take the dataset's images. */
export function checkCompatible(model: ClassifierModel, ds: ImageDataset): void {
  const [h, w, c] = model.inputShape;
  if (h !== ds.height || w !== ds.width || c !== ds.channels) {
    throw new Error(`model expects ${h}x${w}x${c} images but ${ds.name} has ${ds.height}x${ds.width}x${ds.channels}`);
  }
  if (model.numClasses < ds.numClasses) {
    throw new Error(`model has ${model.numClasses} classes but ${ds.name} has ${ds.numClasses}`);
  }
}

/**
 * True when the k target classes (k = 1 for ordinary labels, 2 for
 * MultiMNIST) are the k highest scores: every target scores above every
 * non-target.
 */
export function hitsTargets(row: ArrayLike<number>, target: ArrayLike<number>): boolean {
  let minTarget = Infinity;
  let maxOther = -Infinity;
  for (let j = 0; j < row.length; j++) {
    if (target[j] > 0) minTarget = Math.min(minTarget, row[j]);
    else maxOther = Math.max(maxOther, row[j]);
  }
  return minTarget !== Infinity && minTarget > maxOther;
}

/** Indices of the k highest scores. */
export function topK(row: Float32Array, k: number): number[] {
  return Array.from(row.keys()).sort((a, b) => row[b] - row[a]).slice(0, k);
}

export function evaluate(model: ClassifierModel, ds: ImageDataset, options: EvalOptions = {}): EvalResult {
  const t0 = performance.now();
  const scores = predictScores(model, ds, options);
  return evalResult(model.numClasses, ds, scores, (performance.now() - t0) / 1000);
}

/** evaluate for backends that cannot read values synchronously (WebGPU in a Web Worker). */
export async function evaluateAsync(model: ClassifierModel, ds: ImageDataset, options: EvalOptions = {}): Promise<EvalResult> {
  const t0 = performance.now();
  const scores = await predictScoresAsync(model, ds, options);
  return evalResult(model.numClasses, ds, scores, (performance.now() - t0) / 1000);
}

/** Accuracy, per-class accuracy and confusion of `scores` [count, k] against the dataset's labels. */
function evalResult(k: number, ds: ImageDataset, scores: Float32Array, seconds: number): EvalResult {
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const perCount = new Array<number>(k).fill(0);
  const perCorrect = new Array<number>(k).fill(0);
  let correct = 0;
  for (let i = 0; i < ds.count; i++) {
    const row = scores.subarray(i * k, (i + 1) * k);
    if (ds.multiLabels) {
      const target = ds.multiLabels.subarray(i * ds.numClasses, (i + 1) * ds.numClasses);
      const truth: number[] = [];
      for (let j = 0; j < ds.numClasses; j++) if (target[j]) truth.push(j);
      const top = topK(row, truth.length);
      if (hitsTargets(row, target)) correct++;
      for (const t of truth) {
        perCount[t]++;
        if (top.includes(t)) perCorrect[t]++;
      }
    } else {
      let pred = 0;
      for (let j = 1; j < k; j++) if (row[j] > row[pred]) pred = j;
      const t = ds.labels[i];
      confusion[t][pred]++;
      perCount[t]++;
      if (pred === t) {
        perCorrect[t]++;
        correct++;
      }
    }
  }
  const accuracy = ds.count > 0 ? correct / ds.count : 0;
  return {
    dataset: ds.name,
    count: ds.count,
    correct,
    accuracy,
    error: 1 - accuracy,
    perClass: perCount.map((n, c) => ({ class: c, name: ds.classNames?.[c] ?? String(c), count: n, correct: perCorrect[c], accuracy: n > 0 ? perCorrect[c] / n : 0 })),
    confusion: ds.multiLabels ? [] : confusion,
    seconds,
    imagesPerSecond: ds.count / seconds,
  };
}
