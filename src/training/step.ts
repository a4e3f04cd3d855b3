/**
 * One training step, the learning-rate schedule and the run's random
 * streams: the parts of the training loop that run anywhere. The trainer
 * (./trainer.ts, Node) drives them epoch by epoch with checkpoints; the
 * visualizer's Train panel drives the same functions in a Web Worker, so
 * both train with the same code, batch for batch.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batches.js';
import type { ClassifierModel, ForwardOptions } from '../models/model.js';
import { Rng } from '../util/rng.js';
import type { Adam } from './adam.js';
import { hitsTargets } from './evaluate.js';

export interface StepResult {
  loss: number;
  terms: Record<string, number>;
  correct: number;
}

/** One optimizer step on one batch. */
export function trainStep(model: ClassifierModel, optimizer: Adam, batch: Batch, progress: { fraction: number; rng: Rng }): StepResult {
  const [h, w, ch] = model.inputShape;
  const byVariable = new Map(model.params.map((p) => [p.value.name, p.name]));
  let scores: tf.Tensor2D | null = null;
  let terms: Record<string, tf.Scalar> = {};
  const { value, grads } = tf.tidy(() => {
    const x = tf.tensor4d(batch.x, [batch.size, h, w, ch]);
    const labels = tf.tensor1d(batch.labels, 'int32');
    const targets = tf.tensor2d(batch.targets, [batch.size, model.numClasses]);
    const c = batch.components;
    const components = c && {
      labels: tf.tensor2d(c.labels, [batch.size, c.perImage], 'int32'),
      images: tf.tensor3d(c.images, [batch.size, c.perImage, h * w * ch]),
    };
    return tf.variableGrads(() => {
      const out = model.forward(x, { training: true, labels, rng: progress.rng, components } as ForwardOptions);
      const l = model.loss(out, x, targets, progress);
      scores = tf.keep(out.scores);
      terms = Object.fromEntries(Object.entries(l.terms).map(([k, t]) => [k, tf.keep(t)]));
      return l.total;
    }, model.params.map((p) => p.value));
  });
  const named = new Map<string, tf.Tensor>();
  for (const [varName, g] of Object.entries(grads)) named.set(byVariable.get(varName)!, g);
  optimizer.applyGradients(model.params, named);
  const loss = value.dataSync()[0];
  const termValues = Object.fromEntries(Object.entries(terms).map(([k, t]) => [k, t.dataSync()[0]]));
  const correct = countCorrect(scores!.dataSync() as Float32Array, batch.targets, batch.size, model.numClasses);
  tf.dispose([value, scores!, ...Object.values(grads), ...Object.values(terms)]);
  if (!Number.isFinite(loss)) throw new Error(`training diverged: the loss is ${loss} at step ${optimizer.step}; try a lower learning rate`);
  return { loss, terms: termValues, correct };
}

/** Examples of a batch whose target classes are its highest scores. */
function countCorrect(scores: Float32Array, targets: Float32Array, size: number, classes: number): number {
  let correct = 0;
  for (let i = 0; i < size; i++) if (hitsTargets(scores.subarray(i * classes, (i + 1) * classes), targets.subarray(i * classes, (i + 1) * classes))) correct++;
  return correct;
}

/** The learning rate at optimizer step `step`: `learningRate * lrDecay^(step / stepsPerEpoch)`, decayed smoothly every step. */
export function learningRateAt(o: { learningRate: number; lrDecay: number }, step: number, stepsPerEpoch: number): number {
  return o.learningRate * Math.pow(o.lrDecay, step / stepsPerEpoch);
}

/**
 * The random streams of a run seeded with `seed`: the shuffling Rng (each
 * epoch's order is drawn from it) and the augmentation Rng (shifts, flips
 * and the model's own sampling, step after step).
 */
export function trainingRngs(seed: number): { shuffle: Rng; augment: Rng } {
  const seedRng = new Rng(seed ^ 0x5eed);
  const shuffle = seedRng.fork();
  const augment = seedRng.fork();
  return { shuffle, augment };
}
