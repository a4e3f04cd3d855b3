/**
 * The training loop (Node only): mini-batches of shifted images, the model's
 * loss, gradients, Adam with exponential learning-rate decay, test accuracy
 * after every epoch, a checkpoint after every epoch (and on interruption),
 * and exact resumption from the latest checkpoint.
 */
import * as tf from '@tensorflow/tfjs';
import { appendFileSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { batchCount, batchIndices, makeBatch } from '../data/batches.js';
import type { ImageDataset } from '../data/dataset.js';
import type { ClassifierModel } from '../models/model.js';
import { loadModel } from '../models/files.js';
import { createModel } from '../models/registry.js';
import { writeFileAtomic } from '../util/files.js';
import { Rng } from '../util/rng.js';
import { Adam } from './adam.js';
import { DATA_CACHE_DIR, hasCheckpoint, readCheckpoint, writeCheckpoint, type EpochMetrics, type TrainingState } from './checkpoint.js';
import { checkCompatible, evaluate } from './evaluate.js';
import { validateTrainOptions, type TrainOptions } from './options.js';
import { learningRateAt, trainingRngs, trainStep } from './step.js';
import { formatDuration, Progress } from '../util/progress.js';
import { WeightAverage } from './weightAverage.js';

export { trainStep, type StepResult } from './step.js';

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

/** The saved model that `o.init` names, checked against the model type asked for. */
function loadInitModel(o: TrainOptions): ClassifierModel {
  const { model, json, dir } = loadModel(o.init!);
  if (json.modelType !== o.model) {
    model.dispose();
    throw new Error(`${dir} is a ${json.modelType} model, training asks for ${o.model}`);
  }
  return model;
}

/** Run a model's data-dependent initialisation on a seeded batch of training images (no augmentation). */
function initializeFromData(model: ClassifierModel, ds: ImageDataset, o: TrainOptions): void {
  const [h, w, c] = model.inputShape;
  const idx = new Rng(o.seed ^ 0x1417).permutation(ds.count).subarray(0, Math.min(ds.count, o.batchSize));
  const batch = makeBatch(ds, idx);
  tf.tidy(() => model.initializeFromData!(tf.tensor4d(batch.x, [batch.size, h, w, c])));
}

function writeMetrics(outDir: string, history: EpochMetrics[]): void {
  writeFileAtomic(join(outDir, 'metrics.jsonl'), history.map((m) => JSON.stringify(m)).join('\n') + (history.length ? '\n' : ''));
}

/** What a run carries from step to step: its options, model, optimizer and weight average, the augmentation Rng, and the state a checkpoint saves. */
interface Run {
  o: TrainOptions;
  model: ClassifierModel;
  optimizer: Adam;
  average?: WeightAverage;
  /** Shifts, flips and the model's own sampling draw from it, step after step. */
  augRng: Rng;
  state: Omit<TrainingState, 'format' | 'version' | 'optimizer'>;
}

/** A new run: the options and the output directory checked, the model built (or loaded for fine-tuning) and initialised, the Rngs seeded. */
function startRun(o: TrainOptions, data: TrainData): Run {
  validateTrainOptions(o);
  if (hasCheckpoint(o.outDir)) {
    throw new Error(`${o.outDir} already holds a training run: use --resume to continue it, or choose another --out`);
  }
  if (existsSync(o.outDir) && readdirSync(o.outDir).some((n) => n !== DATA_CACHE_DIR)) {
    throw new Error(`${o.outDir} is not empty: choose a new output directory`);
  }
  const model = o.init ? loadInitModel(o) : createModel(o.model, o.preset, o.overrides ?? {}, o.seed);
  if (model.initializeFromData && !o.init) {
    try {
      checkCompatible(model, data.train);
      initializeFromData(model, data.train, o);
    } catch (e) {
      model.dispose();
      throw e;
    }
  }
  const { shuffle: shuffleRng, augment: augRng } = trainingRngs(o.seed);
  const state = { options: o, epoch: 0, batch: 0, shuffleState: shuffleRng.getState(), augState: augRng.getState(), elapsedSeconds: 0, history: [] };
  return { o, model, optimizer: new Adam({ learningRate: o.learningRate }), average: o.weightAverage !== undefined ? new WeightAverage(o.weightAverage) : undefined, augRng, state };
}

/** A run continued from <outDir>'s latest checkpoint: its options (`epochs` may be raised), model, optimizer state, weight average and Rng states. */
function resumeRun(outDir: string, epochs: number | undefined, learningRate: number, log: (line: string) => void): Run {
  const ck = readCheckpoint(outDir);
  const o: TrainOptions = { ...ck.state.options, outDir };
  if (epochs !== undefined && epochs > o.epochs) o.epochs = epochs;
  const model = ck.model;
  const optimizer = new Adam({ learningRate });
  optimizer.setState(ck.optimizerState, model.params);
  let average: WeightAverage | undefined;
  if (o.weightAverage !== undefined) {
    average = new WeightAverage(o.weightAverage);
    if (ck.averageState) average.setState(ck.averageState, model.params);
  }
  // The state to go on from; what only the checkpoint file holds (format, version, optimizer, average) is written anew with each checkpoint.
  const { format: _format, version: _version, optimizer: _optimizer, average: _average, ...saved } = ck.state;
  const state = { ...saved, options: o };
  log(`resuming ${ck.dir}: ${state.epoch} of ${o.epochs} epochs done${state.batch ? `, and ${state.batch} batches of epoch ${state.epoch + 1}` : ''}`);
  return { o, model, optimizer, average, augRng: new Rng(ck.state.augState), state };
}

/** The data fit the model, and a resumed run sees as many training examples as it was trained on. */
function checkRunData(run: Run, data: TrainData): void {
  checkCompatible(run.model, data.train);
  if (data.test) checkCompatible(run.model, data.test);
  if (run.state.trainCount !== undefined && run.state.trainCount !== data.train.count) {
    throw new Error(`the checkpoint in ${run.o.outDir} was trained on ${run.state.trainCount} examples, this training set has ${data.train.count}`);
  }
  run.state.trainCount = data.train.count;
}

/** Running sums of an epoch's training steps (kept in a checkpoint of an interrupted epoch). */
type EpochSums = NonNullable<TrainingState['partial']>;

/**
 * The epochs of one call of train(): each epoch's steps, its evaluation and
 * report, and the checkpoints, after every epoch and where the run stops.
 */
class Epochs {
  /** Where the test error first reached hooks.stopAtError. */
  reachedTarget: TrainResult['reachedTarget'];
  /** The last checkpoint written. */
  checkpoint = '';
  /** Optimizer steps taken in this call (hooks.maxSteps counts them). */
  private steps = 0;
  private readonly runStart = performance.now();
  private readonly elapsedBefore: number;
  private readonly stepsPerEpoch: number;
  private readonly modelMetadata: Record<string, unknown>;

  constructor(
    private readonly run: Run,
    private readonly data: TrainData,
    private readonly hooks: TrainHooks,
    private readonly log: (line: string) => void,
  ) {
    if (hooks.stopAtError !== undefined && !data.test) throw new Error('stopping at a test error needs test data');
    this.elapsedBefore = run.state.elapsedSeconds;
    this.stepsPerEpoch = batchCount(data.train.count, run.o.batchSize);
    // Saved with every checkpoint's model: what it was trained on, and for a fine-tuned model where it started.
    // The preparation lets predict make a picture into an input exactly as the training images were made.
    const t = data.train;
    this.modelMetadata = {
      dataset: run.o.dataset,
      ...(t.classNames ? { classNames: t.classNames } : {}),
      ...(t.preparation ? { preparation: t.preparation } : {}),
      ...(t.skipped?.length ? { skippedFiles: { count: t.skipped.length, first: t.skipped.slice(0, 20) } } : {}),
      ...(t.heldOut ? { heldOut: t.heldOut } : {}),
      ...(run.o.init ? { initializedFrom: run.o.init } : {}),
    };
  }

  /** Train until the run's last epoch, or until it is interrupted or reaches the target: whether it stopped before its last epoch. */
  async trainAll(): Promise<boolean> {
    const { state, o } = this.run;
    while (state.epoch < o.epochs) {
      const epoch = state.epoch + 1;
      const { sums, shuffleState, stopped } = await this.trainSteps(epoch);
      if (stopped) {
        state.partial = sums;
        this.save();
        this.log(
          this.reachedTarget
            ? `reached the target test error at epoch ${epoch}, batch ${state.batch}/${this.stepsPerEpoch}; checkpoint ${this.checkpoint}`
            : `interrupted at epoch ${epoch}, batch ${state.batch}/${this.stepsPerEpoch}; checkpoint ${this.checkpoint} (continue with --resume)`,
        );
        return true;
      }
      const metrics = this.epochMetrics(epoch, sums);
      state.history.push(metrics);
      state.epoch = epoch;
      state.batch = 0;
      delete state.partial;
      state.shuffleState = shuffleState;
      this.save();
      writeMetrics(o.outDir, state.history);
      this.hooks.onEpoch?.(metrics);
      this.log(epochLine(metrics, o.epochs));
      if (this.checkTarget(epoch, 0, metrics.testError)) {
        this.log(`reached the target test error after epoch ${epoch}; checkpoint ${this.checkpoint}`);
        return state.epoch < o.epochs;
      }
      if (this.stopRequested()) return state.epoch < o.epochs;
    }
    return false;
  }

  /** Ctrl-C, or the step budget of this call spent. */
  private stopRequested(): boolean {
    return this.hooks.signal?.aborted === true || (this.hooks.maxSteps !== undefined && this.steps >= this.hooks.maxSteps);
  }

  /**
   * The steps of epoch `epoch`, from batch state.batch (non-zero when an
   * interrupted epoch resumes): its running sums, the shuffling Rng's state
   * after drawing its order, and whether it stopped before its last batch.
   */
  private async trainSteps(epoch: number): Promise<{ sums: EpochSums; shuffleState: TrainingState['shuffleState']; stopped: boolean }> {
    const { o, model, optimizer, average, augRng, state } = this.run;
    const n = this.data.train.count;
    const stepsPerEpoch = this.stepsPerEpoch;
    // The epoch's order is drawn from the shuffling Rng as it was at the start of the epoch.
    const shuffleRng = new Rng(state.shuffleState);
    const order = shuffleRng.permutation(n);
    // A generated set that draws new examples each epoch gives this epoch's.
    const train = this.data.train.forEpoch ? this.data.train.forEpoch(epoch) : this.data.train;
    if (train.count !== n) throw new Error(`${train.name}: epoch ${epoch} has ${train.count} examples, epoch 1 had ${n}`);
    const sums = state.partial ?? { loss: 0, correct: 0, seen: 0, terms: {}, seconds: 0 };
    const epochStart = performance.now();
    const bar = new Progress({ label: `epoch ${epoch}/${o.epochs}`, total: stepsPerEpoch, itemsPerStep: o.batchSize, enabled: this.hooks.progress ?? false, startAt: state.batch });
    let stopped = false;
    for (let b = state.batch; b < stepsPerEpoch; b++) {
      optimizer.learningRate = learningRateAt(o, optimizer.step, stepsPerEpoch);
      const batch = makeBatch(train, batchIndices(order, b, o.batchSize), o.shift, augRng, o.flip ?? false);
      const r = trainStep(model, optimizer, batch, { fraction: (state.epoch * stepsPerEpoch + b) / (o.epochs * stepsPerEpoch), rng: augRng });
      average?.update(model.params);
      sums.loss += r.loss * batch.size;
      sums.correct += r.correct;
      sums.seen += batch.size;
      for (const [k, v] of Object.entries(r.terms)) sums.terms[k] = (sums.terms[k] ?? 0) + v * batch.size;
      state.batch = b + 1;
      this.steps++;
      bar.update(b + 1, { loss: sums.loss / sums.seen, acc: `${((100 * sums.correct) / sums.seen).toFixed(2)}%` });
      // Let signal handlers (Ctrl-C) run between steps.
      await new Promise((r) => setImmediate(r));
      // A stop at the epoch's last batch waits for the epoch's end (trainAll), so that the epoch is evaluated.
      const last = b + 1 === stepsPerEpoch;
      // Target checks count the run's steps (the optimizer's, restored on resume), so a resumed run checks where an uninterrupted one would.
      if (!last && (this.stopRequested() || (this.hooks.checkEvery && optimizer.step % this.hooks.checkEvery === 0 && this.checkTarget(epoch, b + 1)))) {
        stopped = true;
        break;
      }
    }
    bar.finish();
    sums.seconds += (performance.now() - epochStart) / 1000;
    return { sums, shuffleState: shuffleRng.getState(), stopped };
  }

  /** The metrics of a finished epoch: training loss and accuracy, and test accuracy (with averaging, of the averaged and the training weights). */
  private epochMetrics(epoch: number, sums: EpochSums): EpochMetrics {
    const metrics: EpochMetrics = {
      epoch,
      trainLoss: sums.loss / sums.seen,
      trainAccuracy: sums.correct / sums.seen,
      learningRate: this.run.optimizer.learningRate,
      seconds: sums.seconds,
      imagesPerSecond: sums.seen / sums.seconds,
    };
    for (const [k, v] of Object.entries(sums.terms)) metrics[`train_${k}`] = v / sums.seen;
    if (this.data.test) {
      const ev = this.evaluateAveraged(this.data.test);
      metrics.testAccuracy = ev.accuracy;
      metrics.testError = ev.error;
      // The training weights' own accuracy, to show what averaging gives.
      if (this.run.average) metrics.testAccuracyTrainingWeights = this.evaluateTrainingWeights(this.data.test).accuracy;
    }
    return metrics;
  }

  /** The test error now (or `testError`, already measured), logged to checks.jsonl; true when it reached hooks.stopAtError. */
  private checkTarget(epoch: number, batch: number, testError?: number): boolean {
    const target = this.hooks.stopAtError;
    if (target === undefined || !this.data.test) return false;
    const { o, optimizer } = this.run;
    const err = testError ?? this.evaluateAveraged(this.data.test).error;
    const line = { epoch, batch, step: optimizer.step, testError: err, elapsedSeconds: this.elapsedSeconds() };
    mkdirSync(o.outDir, { recursive: true });
    appendFileSync(join(o.outDir, 'checks.jsonl'), `${JSON.stringify(line)}\n`);
    this.log(`check at epoch ${epoch}, batch ${batch} (step ${optimizer.step}): test error ${(100 * err).toFixed(2)}% (target ${(100 * target).toFixed(2)}%)`);
    if (err > target) return false;
    this.reachedTarget = { epoch, batch, step: optimizer.step, testError: err };
    return true;
  }

  /** Test metrics of the training weights themselves. */
  private evaluateTrainingWeights(test: ImageDataset) {
    return evaluate(this.run.model, test, { batchSize: Math.max(this.run.o.batchSize, 100) });
  }

  /** Test metrics of the model as it is saved: the averaged weights when training averages them. */
  private evaluateAveraged(test: ImageDataset) {
    const average = this.run.average;
    return average && average.count > 0 ? average.withAveraged(this.run.model.params, () => this.evaluateTrainingWeights(test)) : this.evaluateTrainingWeights(test);
  }

  /** Seconds of training so far, in all calls of the run. */
  private elapsedSeconds(): number {
    return this.elapsedBefore + (performance.now() - this.runStart) / 1000;
  }

  /** Write a checkpoint of the run as it is now. */
  private save(): void {
    const { o, model, optimizer, average, augRng, state } = this.run;
    state.augState = augRng.getState();
    state.elapsedSeconds = this.elapsedSeconds();
    this.checkpoint = writeCheckpoint(o.outDir, model, optimizer, state, this.modelMetadata, average);
  }
}

/** The line that reports a finished epoch. */
function epochLine(m: EpochMetrics, epochs: number): string {
  return (
    `epoch ${m.epoch}/${epochs}  loss ${m.trainLoss.toFixed(4)}  train ${(100 * m.trainAccuracy).toFixed(2)}%` +
    (m.testAccuracy !== undefined ? `  test ${(100 * m.testAccuracy).toFixed(2)}% (error ${(100 * m.testError!).toFixed(2)}%)` : '') +
    (m.testAccuracyTrainingWeights !== undefined ? ` [training weights ${(100 * m.testAccuracyTrainingWeights).toFixed(2)}%]` : '') +
    `  lr ${m.learningRate.toPrecision(3)}  ${m.imagesPerSecond.toFixed(1)} img/s  ${formatDuration(m.seconds)}`
  );
}

/**
 * Train from scratch, or with `resume` continue from <outDir>'s latest
 * checkpoint (options then come from the checkpoint; only `epochs` may be
 * raised).
 */
export async function train(options: TrainOptions & { resume?: boolean }, data: TrainData, hooks: TrainHooks = {}): Promise<TrainResult> {
  const log = hooks.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const { resume, ...given } = options;
  const run = resume ? resumeRun(given.outDir, given.epochs, given.learningRate, log) : startRun(given, data);
  let interrupted: boolean;
  let epochs: Epochs;
  try {
    checkRunData(run, data);
    epochs = new Epochs(run, data, hooks, log);
    interrupted = await epochs.trainAll();
  } catch (e) {
    run.optimizer.dispose();
    run.average?.dispose();
    run.model.dispose();
    throw e;
  }
  run.optimizer.dispose();
  // The returned model is the one saved: with averaging, the averaged weights.
  if (run.average && run.average.count > 0) run.average.assignTo(run.model.params);
  run.average?.dispose();
  const { state } = run;
  return { model: run.model, history: state.history, interrupted, reachedTarget: epochs.reachedTarget, checkpoint: epochs.checkpoint, epoch: state.epoch, elapsedSeconds: state.elapsedSeconds };
}
