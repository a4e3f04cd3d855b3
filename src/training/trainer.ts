/**
 * The training loop (Node only): mini-batches of shifted images, the model's
 * loss, gradients, Adam with exponential learning-rate decay, test accuracy
 * after every epoch, a checkpoint after every epoch (and on interruption),
 * and exact resumption from the latest checkpoint.
 */
import * as tf from '@tensorflow/tfjs';
import { appendFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { batchCount, batchIndices, makeBatch, type Batch } from '../data/batches.js';
import type { ImageDataset } from '../data/dataset.js';
import type { ClassifierModel, ForwardOptions } from '../models/model.js';
import { loadModel } from '../models/files.js';
import { createModel } from '../models/registry.js';
import { writeFileAtomic } from '../util/files.js';
import { Rng } from '../util/rng.js';
import { Adam } from './adam.js';
import { DATA_CACHE_DIR, hasCheckpoint, readCheckpoint, writeCheckpoint, type EpochMetrics, type TrainingState } from './checkpoint.js';
import { checkCompatible, evaluate, hitsTargets } from './evaluate.js';
import { formatDuration, Progress } from '../util/progress.js';
import { WeightAverage } from './weightAverage.js';

export interface TrainOptions {
  /** Model type ('capsnet', ...) and preset. */
  model: string;
  preset: string;
  /** Config overrides merged into the preset (e.g. { digit: { routingIterations: 1 } }). */
  overrides?: Record<string, unknown>;
  /** Dataset name, recorded in checkpoints. */
  dataset: string;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Learning rate multiplier per epoch, applied smoothly every step: lr * decay^(step / stepsPerEpoch). */
  lrDecay: number;
  /** Largest random shift in pixels (the paper: 2). */
  shift: number;
  /** Also mirror each training image left to right with probability 1/2 (seeded like the shifts). */
  flip?: boolean;
  /** How the data was chosen (the CLI's data flags), kept so a resumed run reads the same. */
  data?: Record<string, unknown>;
  seed: number;
  outDir: string;
  /**
   * Start from this saved model's weights (a model or training directory)
   * instead of a fresh initialisation: fine-tuning. The architecture is the
   * saved model's; the optimizer starts afresh.
   */
  init?: string;
  /**
   * Keep an exponential moving average of the weights with this decay per
   * step (./weightAverage.ts); test accuracy and the saved model are the
   * averaged weights'.
   */
  weightAverage?: number;
}

export interface TrainData {
  train: ImageDataset;
  test?: ImageDataset;
}

export interface TrainHooks {
  /** Text lines (epoch summaries); default: stderr. */
  log?: (line: string) => void;
  /** Show a progress bar. */
  progress?: boolean;
  /** Abort (Ctrl-C): the current step finishes, a checkpoint is written, train() returns. */
  signal?: AbortSignal;
  onEpoch?: (m: EpochMetrics) => void;
  /** Stop after this many optimizer steps in this run (tests of interruption). */
  maxSteps?: number;
  /**
   * Stop as soon as the test error is at most this (e.g. to match another
   * model's error, as in the paper's novel-viewpoint experiment). Checked
   * after every epoch and, with `checkEvery`, every that many steps of the
   * run (counted from its start, across resumes).
   */
  stopAtError?: number;
  checkEvery?: number;
}

export interface TrainResult {
  model: ClassifierModel;
  history: EpochMetrics[];
  interrupted: boolean;
  /** Where the test error first reached hooks.stopAtError. */
  reachedTarget?: { epoch: number; batch: number; step: number; testError: number };
  checkpoint: string;
  epoch: number;
  elapsedSeconds: number;
}

export function validateTrainOptions(o: TrainOptions): void {
  const posInt: [string, number][] = [['epochs', o.epochs], ['batch size', o.batchSize]];
  for (const [k, v] of posInt) if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
  if (!(o.learningRate > 0) || !Number.isFinite(o.learningRate)) throw new Error(`learning rate must be a positive number, got ${o.learningRate}`);
  if (!(o.lrDecay > 0 && o.lrDecay <= 1)) throw new Error(`learning-rate decay must be in (0, 1], got ${o.lrDecay}`);
  if (!Number.isInteger(o.shift) || o.shift < 0) throw new Error(`shift must be a non-negative integer, got ${o.shift}`);
  if (!Number.isInteger(o.seed)) throw new Error(`seed must be an integer, got ${o.seed}`);
}

/** The saved model that `o.init` names, checked against the model type asked for. */
function loadInitModel(o: TrainOptions): ClassifierModel {
  const { model, json, dir } = loadModel(o.init!);
  if (json.modelType !== o.model) {
    model.dispose();
    throw new Error(`${dir} is a ${json.modelType} model, training asks for ${o.model}`);
  }
  return model;
}

interface StepResult {
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

/** Run a model's data-dependent initialisation on a seeded batch of training images (no augmentation). */
function initializeFromData(model: ClassifierModel, ds: ImageDataset, o: TrainOptions): void {
  const [h, w, c] = model.inputShape;
  const idx = new Rng(o.seed ^ 0x1417).permutation(ds.count).subarray(0, Math.min(ds.count, o.batchSize));
  const batch = makeBatch(ds, idx);
  tf.tidy(() => model.initializeFromData!(tf.tensor4d(batch.x, [batch.size, h, w, c])));
}

/** Examples of a batch whose target classes are its highest scores. */
function countCorrect(scores: Float32Array, targets: Float32Array, size: number, classes: number): number {
  let correct = 0;
  for (let i = 0; i < size; i++) if (hitsTargets(scores.subarray(i * classes, (i + 1) * classes), targets.subarray(i * classes, (i + 1) * classes))) correct++;
  return correct;
}

function learningRateAt(o: TrainOptions, step: number, stepsPerEpoch: number): number {
  return o.learningRate * Math.pow(o.lrDecay, step / stepsPerEpoch);
}

function writeMetrics(outDir: string, history: EpochMetrics[]): void {
  writeFileAtomic(join(outDir, 'metrics.jsonl'), history.map((m) => JSON.stringify(m)).join('\n') + (history.length ? '\n' : ''));
}

/**
 * Train from scratch, or with `resume` continue from <outDir>'s latest
 * checkpoint (options then come from the checkpoint; only `epochs` may be
 * raised).
 */
export async function train(options: TrainOptions & { resume?: boolean }, data: TrainData, hooks: TrainHooks = {}): Promise<TrainResult> {
  const log = hooks.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  let o: TrainOptions;
  let model: ClassifierModel;
  let state: Omit<TrainingState, 'format' | 'version' | 'optimizer'>;
  const optimizer = new Adam({ learningRate: options.learningRate });
  let average: WeightAverage | undefined;
  let shuffleRng: Rng;
  let augRng: Rng;

  if (options.resume) {
    const ck = readCheckpoint(options.outDir);
    o = { ...ck.state.options, outDir: options.outDir };
    if (options.epochs !== undefined && options.epochs > o.epochs) o.epochs = options.epochs;
    model = ck.model;
    optimizer.setState(ck.optimizerState, model.params);
    if (o.weightAverage !== undefined) {
      average = new WeightAverage(o.weightAverage);
      if (ck.averageState) average.setState(ck.averageState, model.params);
    }
    state = { ...ck.state, options: o };
    shuffleRng = new Rng(ck.state.shuffleState);
    augRng = new Rng(ck.state.augState);
    log(`resuming ${ck.dir}: ${state.epoch} of ${o.epochs} epochs done${state.batch ? `, and ${state.batch} batches of epoch ${state.epoch + 1}` : ''}`);
  } else {
    o = options;
    validateTrainOptions(o);
    if (hasCheckpoint(o.outDir)) {
      throw new Error(`${o.outDir} already holds a training run: use --resume to continue it, or choose another --out`);
    }
    if (existsSync(o.outDir) && readdirSync(o.outDir).some((n) => n !== DATA_CACHE_DIR)) {
      throw new Error(`${o.outDir} is not empty: choose a new output directory`);
    }
    if (o.weightAverage !== undefined) average = new WeightAverage(o.weightAverage);
    model = o.init ? loadInitModel(o) : createModel(o.model, o.preset, o.overrides ?? {}, o.seed);
    if (model.initializeFromData && !o.init) {
      try {
        checkCompatible(model, data.train);
        initializeFromData(model, data.train, o);
      } catch (e) {
        model.dispose();
        throw e;
      }
    }
    const seedRng = new Rng(o.seed ^ 0x5eed);
    shuffleRng = seedRng.fork();
    augRng = seedRng.fork();
    state = { options: o, epoch: 0, batch: 0, shuffleState: shuffleRng.getState(), augState: augRng.getState(), elapsedSeconds: 0, history: [] };
  }
  checkCompatible(model, data.train);
  if (data.test) checkCompatible(model, data.test);
  if (state.trainCount !== undefined && state.trainCount !== data.train.count) {
    model.dispose();
    throw new Error(`the checkpoint in ${o.outDir} was trained on ${state.trainCount} examples, this training set has ${data.train.count}`);
  }
  state.trainCount = data.train.count;

  const n = data.train.count;
  const stepsPerEpoch = batchCount(n, o.batchSize);
  let steps = 0;
  let interrupted = false;
  let checkpoint = '';
  const runStart = performance.now();
  const elapsedBefore = state.elapsedSeconds;
  let reachedTarget: TrainResult['reachedTarget'];
  const target = hooks.stopAtError;
  if (target !== undefined && !data.test) throw new Error('stopping at a test error needs test data');
  /** Test error now; true when it reached the target. */
  const checkTarget = (epoch: number, batch: number, testError?: number): boolean => {
    if (target === undefined || !data.test) return false;
    const err = testError ?? evaluateAveraged(data.test).error;
    const line = { epoch, batch, step: optimizer.step, testError: err, elapsedSeconds: elapsedBefore + (performance.now() - runStart) / 1000 };
    mkdirSync(o.outDir, { recursive: true });
    appendFileSync(join(o.outDir, 'checks.jsonl'), `${JSON.stringify(line)}\n`);
    log(`check at epoch ${epoch}, batch ${batch} (step ${optimizer.step}): test error ${(100 * err).toFixed(2)}% (target ${(100 * target).toFixed(2)}%)`);
    if (err > target) return false;
    reachedTarget = { epoch, batch, step: optimizer.step, testError: err };
    return true;
  };

  // Saved with every checkpoint's model: what it was trained on, and for a fine-tuned model where it started.
  // The preparation lets predict make a picture into an input exactly as the training images were made.
  const skipped = data.train.skipped;
  const modelMetadata = {
    dataset: o.dataset,
    ...(data.train.classNames ? { classNames: data.train.classNames } : {}),
    ...(data.train.preparation ? { preparation: data.train.preparation } : {}),
    ...(skipped?.length ? { skippedFiles: { count: skipped.length, first: skipped.slice(0, 20) } } : {}),
    ...(data.train.heldOut ? { heldOut: data.train.heldOut } : {}),
    ...(o.init ? { initializedFrom: o.init } : {}),
  };
  /** Test metrics of the model as it is saved: the averaged weights when training averages them. */
  const evaluateTrainingWeights = (test: ImageDataset) => evaluate(model, test, { batchSize: Math.max(o.batchSize, 100) });
  const evaluateAveraged = (test: ImageDataset) =>
    average && average.count > 0 ? average.withAveraged(model.params, () => evaluateTrainingWeights(test)) : evaluateTrainingWeights(test);
  const save = () => {
    state.augState = augRng.getState();
    state.elapsedSeconds = elapsedBefore + (performance.now() - runStart) / 1000;
    checkpoint = writeCheckpoint(o.outDir, model, optimizer, state, modelMetadata, average);
  };

  try {
    while (state.epoch < o.epochs && !interrupted) {
      const epoch = state.epoch + 1;
      // The epoch's order is drawn from the shuffling Rng as it was at the start of the epoch.
      shuffleRng = new Rng(state.shuffleState);
      const order = shuffleRng.permutation(n);
      // A generated set that draws new examples each epoch gives this epoch's.
      const train = data.train.forEpoch ? data.train.forEpoch(epoch) : data.train;
      if (train.count !== n) throw new Error(`${train.name}: epoch ${epoch} has ${train.count} examples, epoch 1 had ${n}`);
      const partial = state.partial ?? { loss: 0, correct: 0, seen: 0, terms: {}, seconds: 0 };
      const epochStart = performance.now();
      const bar = new Progress({ label: `epoch ${epoch}/${o.epochs}`, total: stepsPerEpoch, itemsPerStep: o.batchSize, enabled: hooks.progress ?? false, startAt: state.batch });
      for (let b = state.batch; b < stepsPerEpoch; b++) {
        optimizer.learningRate = learningRateAt(o, optimizer.step, stepsPerEpoch);
        const batch = makeBatch(train, batchIndices(order, b, o.batchSize), o.shift, augRng, o.flip ?? false);
        const r = trainStep(model, optimizer, batch, { fraction: (state.epoch * stepsPerEpoch + b) / (o.epochs * stepsPerEpoch), rng: augRng });
        average?.update(model.params);
        partial.loss += r.loss * batch.size;
        partial.correct += r.correct;
        partial.seen += batch.size;
        for (const [k, v] of Object.entries(r.terms)) partial.terms[k] = (partial.terms[k] ?? 0) + v * batch.size;
        state.batch = b + 1;
        steps++;
        bar.update(b + 1, { loss: partial.loss / partial.seen, acc: `${((100 * partial.correct) / partial.seen).toFixed(2)}%` });
        // Let signal handlers (Ctrl-C) run between steps.
        await new Promise((r) => setImmediate(r));
        if (hooks.signal?.aborted || (hooks.maxSteps !== undefined && steps >= hooks.maxSteps)) {
          if (b + 1 < stepsPerEpoch) {
            interrupted = true;
            break;
          }
        }
        // Counted in the run's steps (the optimizer's, restored on resume), so a resumed run checks where an uninterrupted one would.
        if (hooks.checkEvery && optimizer.step % hooks.checkEvery === 0 && b + 1 < stepsPerEpoch && checkTarget(epoch, b + 1)) {
          interrupted = true;
          break;
        }
      }
      if (interrupted) {
        bar.finish();
        partial.seconds += (performance.now() - epochStart) / 1000;
        state.partial = partial;
        save();
        log(
          reachedTarget
            ? `reached the target test error at epoch ${epoch}, batch ${state.batch}/${stepsPerEpoch}; checkpoint ${checkpoint}`
            : `interrupted at epoch ${epoch}, batch ${state.batch}/${stepsPerEpoch}; checkpoint ${checkpoint} (continue with --resume)`,
        );
        break;
      }
      bar.finish();
      const seconds = partial.seconds + (performance.now() - epochStart) / 1000;
      const metrics: EpochMetrics = {
        epoch,
        trainLoss: partial.loss / partial.seen,
        trainAccuracy: partial.correct / partial.seen,
        learningRate: optimizer.learningRate,
        seconds,
        imagesPerSecond: partial.seen / seconds,
      };
      for (const [k, v] of Object.entries(partial.terms)) metrics[`train_${k}`] = v / partial.seen;
      if (data.test) {
        const ev = evaluateAveraged(data.test);
        metrics.testAccuracy = ev.accuracy;
        metrics.testError = ev.error;
        // The training weights' own accuracy, to show what averaging gives.
        if (average) metrics.testAccuracyTrainingWeights = evaluateTrainingWeights(data.test).accuracy;
      }
      state.history.push(metrics);
      state.epoch = epoch;
      state.batch = 0;
      delete state.partial;
      state.shuffleState = shuffleRng.getState();
      save();
      writeMetrics(o.outDir, state.history);
      hooks.onEpoch?.(metrics);
      log(
        `epoch ${epoch}/${o.epochs}  loss ${metrics.trainLoss.toFixed(4)}  train ${(100 * metrics.trainAccuracy).toFixed(2)}%` +
          (metrics.testAccuracy !== undefined ? `  test ${(100 * metrics.testAccuracy).toFixed(2)}% (error ${(100 * metrics.testError!).toFixed(2)}%)` : '') +
          (metrics.testAccuracyTrainingWeights !== undefined ? ` [training weights ${(100 * metrics.testAccuracyTrainingWeights).toFixed(2)}%]` : '') +
          `  lr ${metrics.learningRate.toPrecision(3)}  ${metrics.imagesPerSecond.toFixed(1)} img/s  ${formatDuration(seconds)}`,
      );
      if (checkTarget(epoch, 0, metrics.testError)) {
        log(`reached the target test error after epoch ${epoch}; checkpoint ${checkpoint}`);
        interrupted = state.epoch < o.epochs;
        break;
      }
      if (hooks.signal?.aborted || (hooks.maxSteps !== undefined && steps >= hooks.maxSteps)) {
        interrupted = state.epoch < o.epochs;
        break;
      }
    }
  } catch (e) {
    optimizer.dispose();
    average?.dispose();
    model.dispose();
    throw e;
  }
  optimizer.dispose();
  // The returned model is the one saved: with averaging, the averaged weights.
  if (average && average.count > 0) average.assignTo(model.params);
  average?.dispose();
  return { model, history: state.history, interrupted, reachedTarget, checkpoint, epoch: state.epoch, elapsedSeconds: state.elapsedSeconds };
}
