/**
 * Training in the worker with the library's own pieces, the code `capsnet
 * train` runs: the step (`trainStep`: the model's loss, its gradients and
 * Adam), the learning-rate schedule, the run's random streams, batches and
 * evaluation. Epoch by epoch it walks the data as the trainer does (each
 * epoch's order drawn from the shuffling stream, shifts from the
 * augmentation stream), so the same seed and settings give the same batches
 * as `capsnet train`; checkpoints and files are the Node trainer's part
 * and have no place here. Every value is read with an await: WebGPU cannot
 * read synchronously in a worker (its synchronous reads give zeros there).
 */
import * as tf from '@tensorflow/tfjs';
import { gunzipSync } from 'fflate';
import { Adam, modelFromArtifacts, modelToArtifacts, take, validateDataset, type ClassifierModel, type ImageDataset, type ModelJson, type Rng } from '../../index.js';
import { batchCount, batchIndices, makeBatch } from '../../data/batches.js';
import { evaluateAsync } from '../../training/evaluate.js';
import { learningRateAt, trainingRngs, trainStepAsync } from '../../training/step.js';
import type { FolderProgress, PictureFolder } from './folderData.js';
import type { AccuracyCheck, FolderSummary, TrainSetup, TrainState, TrainStatus } from './protocol.js';

/** A dataset the build packed (train-<set>.json and its gzipped image files). */
export interface PackedDataset {
  train: ImageDataset;
  test: ImageDataset;
}

interface PackedSplitJson {
  file: string;
  count: number;
  labels: number[];
}

interface PackedJson {
  dataset: string;
  title: string;
  height: number;
  width: number;
  channels: number;
  classNames: string[];
  train: PackedSplitJson;
  test: PackedSplitJson;
}

const packedCache = new Map<string, Promise<PackedDataset>>();
const metaCache = new Map<string, Promise<PackedJson>>();

async function fetchBytes(url: string): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`could not load ${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** A packed dataset's description (train-<dataset>.json): its image size, classes and labels. */
export function packedMeta(dataUrl: string, dataset: string): Promise<PackedJson> {
  const url = new URL(`train-${dataset}.json`, dataUrl).href;
  let p = metaCache.get(url);
  if (!p) {
    p = (async () => {
      const res = await fetch(url);
      if (!res.ok) throw new Error(`the page has no training data for '${dataset}' (${url}: HTTP ${res.status})`);
      return (await res.json()) as PackedJson;
    })();
    p.catch(() => metaCache.delete(url));
    metaCache.set(url, p);
  }
  return p;
}

/** Load a packed dataset of the build: train-<dataset>.json, its images gunzipped (uint8, height x width x channels each). */
export function loadPacked(dataUrl: string, dataset: string): Promise<PackedDataset> {
  const url = new URL(`train-${dataset}.json`, dataUrl).href;
  let p = packedCache.get(url);
  if (!p) {
    p = (async () => {
      const meta = await packedMeta(dataUrl, dataset);
      const split = async (s: PackedSplitJson, name: string): Promise<ImageDataset> =>
        validateDataset({
          name: `${meta.title} ${name}`,
          images: gunzipSync(await fetchBytes(new URL(s.file, url).href)),
          labels: Int32Array.from(s.labels),
          count: s.count,
          height: meta.height,
          width: meta.width,
          channels: meta.channels,
          numClasses: meta.classNames.length,
          classNames: meta.classNames,
        });
      const [train, test] = await Promise.all([split(meta.train, 'train'), split(meta.test, 'test')]);
      return { train, test };
    })();
    p.catch(() => packedCache.delete(url));
    packedCache.set(url, p);
  }
  return p;
}

/** Let queued messages (the page's analysis and decode requests) run between steps. */
function yieldToMessages(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/** Images in one evaluation call; the worker answers the page between calls. */
const CHECK_CHUNK = 100;

/**
 * One training run in the page: its model, optimizer, data and random
 * streams, driven step by step (run, pause, step, reset). Emits its status
 * after every step and check, and tells when the weights change.
 */
export class TrainingSession {
  state: TrainState = 'idle';
  model: ClassifierModel;
  private optimizer: Adam;
  private shuffleRng!: Rng;
  private augRng!: Rng;
  private order: Int32Array | null = null;
  /** Epochs finished, and batches done of the current one. */
  private epochsDone = 0;
  private batch = 0;
  private readonly stepsPerEpoch: number;
  private readonly checkAt: Set<number>;
  private pending = { losses: [] as number[], checks: [] as AccuracyCheck[] };
  private recent: { images: number; ms: number }[] = [];
  private testAccuracy: number | null = null;
  private activity = 'ready to train';
  private running: Promise<void> | null = null;
  private error: string | undefined;

  /**
   * `initial` is the model as the run starts (a fresh model, or the model
   * being fine-tuned), saved so that reset can return to it.
   */
  constructor(
    readonly setup: TrainSetup,
    private readonly data: { train: ImageDataset; test: ImageDataset },
    model: ClassifierModel,
    private readonly initial: { json: unknown; weights: Uint8Array },
    private readonly hooks: { status(s: TrainStatus): void; weights(step: number): void },
    /** What the folder of pictures made, when the data is one. */
    private readonly folderSummary: FolderSummary | null = null,
  ) {
    this.model = model;
    this.optimizer = new Adam({ learningRate: setup.learningRate });
    this.stepsPerEpoch = batchCount(data.train.count, setup.batchSize);
    // Checks at evenly spaced batches of each epoch, the last at its end.
    const k = Math.max(1, Math.min(setup.checksPerEpoch, this.stepsPerEpoch));
    this.checkAt = new Set(Array.from({ length: k }, (_, i) => Math.round(((i + 1) * this.stepsPerEpoch) / k)));
    this.seed();
  }

  /**
   * The training and test sets the setup asks for: the first trainLimit and
   * testLimit images of the packed set, or of the folder's splits.
   */
  static async data(setup: TrainSetup, folder: PictureFolder | null, progress: FolderProgress): Promise<{ train: ImageDataset; test: ImageDataset; folder: { summary: FolderSummary; test: ImageDataset } | null }> {
    if (setup.folder) {
      if (!folder) throw new Error('choose or drop a folder of pictures first');
      const { train, test, summary } = await folder.datasets(setup.folder, progress);
      return { train: take(train, setup.trainLimit), test: take(test, setup.testLimit), folder: { summary, test } };
    }
    const packed = await loadPacked(setup.dataUrl, setup.dataset);
    return { train: take(packed.train, setup.trainLimit), test: take(packed.test, setup.testLimit), folder: null };
  }

  private seed(): void {
    const { shuffle, augment } = trainingRngs(this.setup.seed);
    this.shuffleRng = shuffle;
    this.augRng = augment;
    this.order = null;
    this.epochsDone = 0;
    this.batch = 0;
  }

  status(): TrainStatus {
    const recent = this.recent.slice(-10);
    const ms = recent.reduce((s, r) => s + r.ms, 0);
    const images = recent.reduce((s, r) => s + r.images, 0);
    const s: TrainStatus = {
      state: this.state,
      epoch: this.epochsDone + (this.batch > 0 && this.state !== 'done' ? 1 : 0),
      epochs: this.setup.epochs,
      batch: this.batch,
      stepsPerEpoch: this.stepsPerEpoch,
      step: this.optimizer.step,
      trainCount: this.data.train.count,
      testCount: this.data.test.count,
      losses: this.pending.losses,
      checks: this.pending.checks,
      imagesPerSecond: ms > 0 ? (1000 * images) / ms : null,
      learningRate: learningRateAt(this.setup, this.optimizer.step, this.stepsPerEpoch),
      testAccuracy: this.testAccuracy,
      activity: this.activity,
      ...(this.error ? { error: this.error } : {}),
    };
    this.pending = { losses: [], checks: [] };
    return s;
  }

  private emit(): void {
    this.hooks.status(this.status());
  }

  /** Train until the last epoch or a pause. */
  run(): void {
    if (this.state === 'running' || this.state === 'done') return;
    this.state = 'running';
    this.emit();
    this.running ??= this.loop().finally(() => {
      this.running = null;
    });
  }

  pause(): void {
    if (this.state === 'running') this.state = 'paused';
    this.activity = 'paused';
  }

  /** One batch (and the check that follows it, if one does), then pause. */
  async step(): Promise<void> {
    if (this.state === 'running') this.pause();
    await this.running;
    if (this.state === 'done') return;
    this.state = 'paused';
    await this.advance();
    // advance() ends the run after its last batch.
    if ((this.state as TrainState) !== 'done') this.activity = 'paused';
    this.emit();
  }

  /** Back to the start: the initial weights, a new optimizer, the streams seeded again, no history. */
  async reset(): Promise<ClassifierModel> {
    this.pause();
    await this.running;
    this.optimizer.dispose();
    this.optimizer = new Adam({ learningRate: this.setup.learningRate });
    // The worker holds the model and disposes the one it replaces.
    const { model } = modelFromArtifacts(this.initial.json, this.initial.weights, 'the model as training started');
    this.model = model;
    this.seed();
    this.recent = [];
    this.testAccuracy = null;
    this.error = undefined;
    this.pending = { losses: [], checks: [] };
    this.state = 'idle';
    this.activity = 'ready to train';
    this.emit();
    return model;
  }

  private async loop(): Promise<void> {
    while (this.state === 'running') {
      await this.advance();
      if (this.state === 'running') this.emit();
      await yieldToMessages();
    }
    this.emit();
  }

  /** One training step, then the test check when one is due, and the end of the run after the last epoch. */
  private async advance(): Promise<void> {
    try {
      await this.trainOneBatch();
      this.hooks.weights(this.optimizer.step);
      if (this.checkAt.has(this.batch)) await this.check();
      if (this.batch === this.stepsPerEpoch) {
        this.epochsDone++;
        this.batch = 0;
        this.order = null;
        if (this.epochsDone >= this.setup.epochs) {
          this.state = 'done';
          this.activity = `done: ${this.setup.epochs} epoch${this.setup.epochs === 1 ? '' : 's'}`;
        }
      }
    } catch (e) {
      this.state = 'paused';
      this.error = (e as Error).message;
      this.activity = 'stopped by an error';
    }
  }

  /** The next batch of the epoch, as Epochs.trainSteps in training/trainer.ts draws it, and one step on it. */
  private async trainOneBatch(): Promise<void> {
    const { setup, data } = this;
    const epoch = this.epochsDone; // finished epochs: this batch belongs to epoch + 1
    // Each epoch's order is drawn from the shuffling stream at the epoch's start.
    this.order ??= this.shuffleRng.permutation(data.train.count);
    const b = this.batch;
    const t0 = performance.now();
    this.optimizer.learningRate = learningRateAt(setup, this.optimizer.step, this.stepsPerEpoch);
    const batch = makeBatch(data.train, batchIndices(this.order, b, setup.batchSize), setup.shift, this.augRng);
    const r = await trainStepAsync(this.model, this.optimizer, batch, { fraction: (epoch * this.stepsPerEpoch + b) / (setup.epochs * this.stepsPerEpoch), rng: this.augRng });
    this.recent.push({ images: batch.size, ms: performance.now() - t0 });
    if (this.recent.length > 50) this.recent.shift();
    this.pending.losses.push(r.loss);
    this.batch = b + 1;
    this.activity = `epoch ${epoch + 1} of ${setup.epochs}, batch ${this.batch} of ${this.stepsPerEpoch}`;
  }

  /** Test accuracy on the test set, with capsnet eval's evaluation, a chunk at a time so that the page's requests are answered in between. */
  private async check(): Promise<void> {
    const test = this.data.test;
    this.activity = `checking the test accuracy on ${test.count} images`;
    this.emit();
    let correct = 0;
    for (let start = 0; start < test.count; start += CHECK_CHUNK) {
      const n = Math.min(CHECK_CHUNK, test.count - start);
      correct += (await evaluateAsync(this.model, slice(test, start, n), { batchSize: CHECK_CHUNK })).correct;
      await yieldToMessages();
    }
    const accuracy = test.count ? correct / test.count : 0;
    this.testAccuracy = accuracy;
    this.pending.checks.push({ epochs: this.epochsDone + this.batch / this.stepsPerEpoch, step: this.optimizer.step, accuracy, correct, count: test.count });
  }

  /** The model in capsnet's saved-model format, with what it was trained on in its metadata. */
  artifacts(base: Record<string, unknown>): Promise<{ json: string; weights: Uint8Array }> {
    const { setup, data } = this;
    const folder = setup.folder;
    const dataset = folder ? folder.name : setup.dataset;
    const metadata: Record<string, unknown> = {
      ...base,
      dataset,
      classNames: data.train.classNames,
      // A folder's pictures, as capsnet train --data records them: how a picture becomes an input, the held-out split, the files left out.
      ...(data.train.preparation ? { preparation: data.train.preparation } : {}),
      ...(this.folderSummary?.heldOut ? { heldOut: this.folderSummary.heldOut } : {}),
      ...(this.folderSummary?.skipped.length ? { skippedFiles: { count: this.folderSummary.skipped.length, first: this.folderSummary.skipped.slice(0, 20) } } : {}),
      trainedIn: 'the capsnet visualizer (browser)',
      training: {
        backend: tf.getBackend(),
        epochs: this.epochsDone + this.batch / this.stepsPerEpoch,
        steps: this.optimizer.step,
        trainImages: data.train.count,
        batchSize: setup.batchSize,
        learningRate: setup.learningRate,
        lrDecay: setup.lrDecay,
        shift: setup.shift,
        seed: setup.seed,
        ...(setup.start.kind === 'fresh' ? { arch: setup.start.arch, preset: setup.start.preset } : { fineTuned: true }),
      },
      // The test images the accuracy was measured on: capsnet eval --model DIR --dataset D --limit N measures it again
      // (for a folder: --data FOLDER, with its split and the pictures left out).
      ...(this.testAccuracy !== null ? { testAccuracy: this.testAccuracy, testImages: { dataset, split: 'test', first: data.test.count, ...(folder ? { folder: this.folderFlags() } : {}) } } : {}),
    };
    return savedModel(this.model, metadata);
  }

  /** capsnet's --data flags that read the folder's test split as the page did (besides --data itself). */
  private folderFlags(): Record<string, number | boolean> {
    const f = this.folderSummary;
    if (!f) return {};
    return { ...(f.heldOut ? { 'val-split': f.heldOut.fraction, 'data-seed': f.heldOut.seed } : {}), ...(f.skipped.length ? { 'skip-invalid': true } : {}) };
  }

  /** Stop after the step under way, and free the optimizer's state. */
  async stop(): Promise<void> {
    this.pause();
    await this.running;
    this.optimizer.dispose();
  }
}

/**
 * modelToArtifacts with the weights read with an await first: a backend
 * keeps what it read on the CPU, where modelToArtifacts's reads then find
 * it (WebGPU in a worker cannot read otherwise).
 */
export async function modelArtifacts(model: ClassifierModel, metadata?: Record<string, unknown>): Promise<{ json: ModelJson; weights: Uint8Array }> {
  await Promise.all(model.params.map((p) => p.value.data()));
  return modelToArtifacts(model, metadata ? { metadata } : {});
}

/** A model in capsnet's saved-model format: model.json's text and weights.bin. */
export async function savedModel(model: ClassifierModel, metadata: Record<string, unknown>): Promise<{ json: string; weights: Uint8Array }> {
  const { json, weights } = await modelArtifacts(model, metadata);
  return { json: JSON.stringify(json, null, 1), weights };
}

/** Images start..start+n-1 of a dataset whose pixels are in memory. */
function slice(ds: ImageDataset, start: number, n: number): ImageDataset {
  const per = ds.height * ds.width * ds.channels;
  return { ...ds, images: ds.images.subarray(start * per, (start + n) * per), labels: ds.labels.subarray(start, start + n), count: n };
}
