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

/** What a step leaves to read: its loss, the loss's terms and the batch's scores, kept until read. */
interface StepTensors {
  value: tf.Scalar;
  terms: Record<string, tf.Scalar>;
  scores: tf.Tensor2D;
}

/** The gradients of the model's loss on one batch, applied by the optimizer. */
function applyStep(model: ClassifierModel, optimizer: Adam, batch: Batch, progress: { fraction: number; rng: Rng }): StepTensors {
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
  tf.dispose(Object.values(grads));
  return { value, terms, scores: scores! };
}

/** The step's result from the values read off its tensors, which it disposes. */
function stepResult(t: StepTensors, read: { loss: number; terms: Record<string, number>; scores: Float32Array }, batch: Batch, classes: number, step: number): StepResult {
  tf.dispose([t.value, t.scores, ...Object.values(t.terms)]);
  if (!Number.isFinite(read.loss)) throw new Error(`training diverged: the loss is ${read.loss} at step ${step}; try a lower learning rate`);
  return { loss: read.loss, terms: read.terms, correct: countCorrect(read.scores, batch.targets, batch.size, classes) };
}

/** One optimizer step on one batch. */
export function trainStep(model: ClassifierModel, optimizer: Adam, batch: Batch, progress: { fraction: number; rng: Rng }): StepResult {
  const t = applyStep(model, optimizer, batch, progress);
  const read = {
    loss: t.value.dataSync()[0],
    terms: Object.fromEntries(Object.entries(t.terms).map(([k, v]) => [k, v.dataSync()[0]])),
    scores: t.scores.dataSync() as Float32Array,
  };
  return stepResult(t, read, batch, model.numClasses, optimizer.step);
}

/**
 * trainStep for backends that cannot read values synchronously (WebGPU in
 * a Web Worker): the same step, its results awaited.
 */
export async function trainStepAsync(model: ClassifierModel, optimizer: Adam, batch: Batch, progress: { fraction: number; rng: Rng }): Promise<StepResult> {
  const t = applyStep(model, optimizer, batch, progress);
  const names = Object.keys(t.terms);
  const [loss, scores, ...terms] = await Promise.all([t.value.data(), t.scores.data(), ...names.map((k) => t.terms[k].data())]);
  const read = { loss: loss[0], terms: Object.fromEntries(names.map((k, i) => [k, terms[i][0]])), scores: scores as Float32Array };
  return stepResult(t, read, batch, model.numClasses, optimizer.step);
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
