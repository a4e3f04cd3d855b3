/**
 * Training checkpoints (Node only). One format: a checkpoint is a model
 * directory (model.json + weights.bin, loadable anywhere a model is) plus
 *
 *   optimizer.bin   Adam's moments, m/<param> and v/<param>, float32; when
 *                   training averages weights, also the training weights
 *                   w/<param> and the average's running sums avg/<param>
 *                   (the model files then hold the averaged weights)
 *   training.json   options (with the typed description of the data),
 *                   epoch and batch reached, optimizer step and
 *                   hyper-parameters, both Rng states, metrics history
 *
 * Checkpoints live in <out>/checkpoints/<name>/, each written atomically;
 * <out>/latest names the newest and is replaced atomically after it is
 * complete, so a crash at any point leaves the previous checkpoint usable.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CHECKPOINTS_DIR, LATEST_FILE, modelFiles, readModelDir } from '../models/files.js';
import type { ClassifierModel } from '../models/model.js';
import { assignWeights, decodeWeights, encodeWeights, modelFromArtifacts, type WeightEntry } from '../models/serialization.js';
import { makeDataSpec, parseDataSpec, type DataSource, type DataSpec } from '../data/spec.js';
import { writeDirAtomic, writeFileAtomic } from '../util/files.js';
import type { RngState } from '../util/rng.js';
import type { Adam, AdamState } from './adam.js';
import type { WeightAverage, WeightAverageState } from './weightAverage.js';
import type { TrainOptions } from './options.js';

export const TRAINING_FORMAT = 'capsnet-training';
/**
 * Version 2 records the data as a DataSpec (data/spec.ts); version 1 held
 * the train command's data flags by name, and is read as version 2
 * (upgradeVersion1).
 */
export const TRAINING_VERSION = 2;
/** Folder of a run holding the decoded pictures of a --data folder (made before the first checkpoint). */
export const DATA_CACHE_DIR = 'data-cache';
const KEEP_CHECKPOINTS = 2;

export interface EpochMetrics {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testAccuracy?: number;
  testError?: number;
  learningRate: number;
  seconds: number;
  imagesPerSecond: number;
  [term: string]: number | undefined;
}

export interface TrainingState {
  format: typeof TRAINING_FORMAT;
  version: typeof TRAINING_VERSION;
  /** The options training was started with (JSON). */
  options: TrainOptions;
  /** Epochs completed. */
  epoch: number;
  /** Training examples, to check that a resumed run sees the same data. */
  trainCount?: number;
  /** Batches completed within epoch `epoch + 1` (non-zero only for an interrupted epoch). */
  batch: number;
  /** Shuffling Rng state at the start of the current epoch, to rebuild its order. */
  shuffleState: RngState;
  /** Augmentation Rng state now. */
  augState: RngState;
  elapsedSeconds: number;
  history: EpochMetrics[];
  /** Running sums of the interrupted epoch, so its metrics come out whole. */
  partial?: { loss: number; correct: number; seen: number; terms: Record<string, number>; seconds: number };
  optimizer: { type: 'adam'; learningRate: number; beta1: number; beta2: number; epsilon: number; step: number; weights: WeightEntry[] };
  /** Present when training averages weights: its decay and update count. */
  average?: { decay: number; count: number };
}


export function checkpointName(epoch: number, batch: number): string {
  const e = `epoch-${String(epoch).padStart(4, '0')}`;
  return batch > 0 ? `${e}-batch-${String(batch).padStart(6, '0')}` : e;
}

/** Write a checkpoint and point <out>/latest at it. */
export function writeCheckpoint(
  outDir: string,
  model: ClassifierModel,
  optimizer: Adam,
  state: Omit<TrainingState, 'format' | 'version' | 'optimizer' | 'average'>,
  modelMetadata: Record<string, unknown> = {},
  average?: WeightAverage,
): string {
  const name = checkpointName(state.epoch, state.batch);
  const opt: AdamState = optimizer.getState();
  const named = model.params.flatMap((p) => {
    const m = opt.m[p.name];
    const v = opt.v[p.name];
    return m && v ? [{ name: `m/${p.name}`, shape: p.value.shape, values: m }, { name: `v/${p.name}`, shape: p.value.shape, values: v }] : [];
  });
  const avg = average && average.count > 0 ? average.getState() : undefined;
  if (avg) {
    for (const p of model.params) {
      named.push({ name: `w/${p.name}`, shape: p.value.shape, values: p.value.dataSync() as Float32Array });
      named.push({ name: `avg/${p.name}`, shape: p.value.shape, values: avg.sums[p.name] });
    }
  }
  const { entries, data } = encodeWeights(named);
  const training: TrainingState = {
    ...state,
    format: TRAINING_FORMAT,
    version: TRAINING_VERSION,
    optimizer: { type: 'adam', learningRate: optimizer.learningRate, beta1: optimizer.beta1, beta2: optimizer.beta2, epsilon: optimizer.epsilon, step: opt.step, weights: entries },
    ...(avg ? { average: { decay: average!.decay, count: avg.count } } : {}),
  };
  const files = () => modelFiles(model, { metadata: { ...modelMetadata, epoch: state.epoch, batch: state.batch, history: state.history, ...(avg ? { weightAverage: average!.decay } : {}) } });
  const dir = join(outDir, CHECKPOINTS_DIR, name);
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  writeDirAtomic(dir, {
    ...(avg ? average!.withAveraged(model.params, files) : files()),
    'optimizer.bin': data,
    'training.json': JSON.stringify(training, null, 1),
  });
  writeFileAtomic(join(outDir, LATEST_FILE), `${name}\n`);
  pruneCheckpoints(outDir, name);
  return dir;
}

function pruneCheckpoints(outDir: string, keep: string): void {
  const root = join(outDir, CHECKPOINTS_DIR);
  const names = readdirSync(root).filter((n) => n.startsWith('epoch-')).sort();
  const old = names.filter((n) => n !== keep).slice(0, Math.max(0, names.length - KEEP_CHECKPOINTS));
  for (const n of old) rmSync(join(root, n), { recursive: true, force: true });
}

export function hasCheckpoint(outDir: string): boolean {
  return existsSync(join(outDir, LATEST_FILE));
}

export interface LoadedCheckpoint {
  dir: string;
  model: ClassifierModel;
  state: TrainingState;
  optimizerState: AdamState;
  /** The weight average, when training averages weights (the model then holds the training weights). */
  averageState?: WeightAverageState;
}

function latestCheckpointDir(outDir: string): string {
  const latest = join(outDir, LATEST_FILE);
  if (!existsSync(latest)) throw new Error(`no checkpoint to resume in ${outDir} (${latest} not found)`);
  return join(outDir, CHECKPOINTS_DIR, readFileSync(latest, 'utf8').trim());
}

/** The training state stored in checkpoint directory `dir` (training.json). */
export function readStateFile(dir: string): TrainingState {
  const trainingPath = join(dir, 'training.json');
  let state: TrainingState;
  try {
    state = JSON.parse(readFileSync(trainingPath, 'utf8'));
  } catch (e) {
    throw new Error(`${trainingPath}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : 'not valid JSON'}`);
  }
  if (state.format !== TRAINING_FORMAT) throw new Error(`${trainingPath}: not a capsnet training checkpoint`);
  if ((state.version as number) === 1) upgradeVersion1(state as unknown as Version1State);
  else if (state.version !== TRAINING_VERSION) throw new Error(`${trainingPath}: training checkpoint version ${state.version}; this capsnet reads versions 1 to ${TRAINING_VERSION}`);
  if (state.options.data !== undefined) parseDataSpec(state.options.data, `${trainingPath}: options.data`);
  return state;
}

/** A version-1 training.json: its options also held the train command's data flags, and its --resume. */
interface Version1State extends Omit<TrainingState, 'version' | 'options'> {
  version: 1 | typeof TRAINING_VERSION;
  options: Omit<TrainOptions, 'data'> & { data?: DataSpec | Record<string, unknown>; resume?: boolean };
}

/**
 * Read a version-1 state as version 2, in place: the data flags that
 * `capsnet train` recorded become the DataSpec they chose. The flag names
 * are the ones version 1 wrote, fixed here whatever the flags are called
 * now, so that runs saved then still resume.
 */
function upgradeVersion1(state: Version1State): void {
  const { resume: _resume, data, ...options } = state.options;
  const spec = data === undefined ? undefined : dataSpecFromVersion1(data as Record<string, unknown>);
  state.options = { ...options, ...(spec ? { data: spec } : {}) };
  state.version = TRAINING_VERSION;
}

/** The DataSpec of version 1's data flags; undefined when they name no data. */
function dataSpecFromVersion1(flags: Record<string, unknown>): DataSpec | undefined {
  const text = (name: string) => {
    const v = flags[name];
    return typeof v === 'string' ? v : undefined;
  };
  const count = (name: string) => {
    const v = flags[name];
    return typeof v === 'number' ? v : undefined;
  };
  let source: DataSource;
  const path = text('data');
  const images = text('images');
  const labels = text('labels');
  const dataset = text('dataset');
  if (path !== undefined) {
    const channels = Number(flags.channels);
    source = {
      kind: 'user',
      path,
      valSplit: count('val-split'),
      seed: count('data-seed'),
      imageSize: count('image-size'),
      channels: channels === 1 || channels === 3 ? channels : undefined,
      skipInvalid: flags['skip-invalid'] === true || undefined,
      cacheDir: text('cache-dir'),
    };
  } else if (images !== undefined && labels !== undefined) {
    source = { kind: 'idx', images, labels, testImages: text('test-images'), testLabels: text('test-labels') };
  } else if (dataset !== undefined) {
    source = { kind: 'dataset', name: dataset, seed: count('data-seed'), count: count('data-count'), testCount: count('test-data-count'), file: text('data-file') };
  } else return undefined;
  return makeDataSpec(source, { trainLimit: count('train-limit'), testLimit: count('test-limit') });
}

/** The training state of <out>'s latest checkpoint, without loading weights. */
export function readTrainingState(outDir: string): TrainingState {
  return readStateFile(latestCheckpointDir(outDir));
}

/** Read <out>'s latest checkpoint: the model, training state and optimizer state. */
export function readCheckpoint(outDir: string): LoadedCheckpoint {
  const dir = latestCheckpointDir(outDir);
  const state = readStateFile(dir);
  const { json, weights } = readModelDir(dir);
  const { model } = modelFromArtifacts(json, weights, dir);
  let optimizerState: AdamState;
  let averageState: WeightAverageState | undefined;
  try {
    const source = join(dir, 'optimizer.bin');
    const decoded = decodeWeights(state.optimizer.weights, readFileSync(source), source);
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    const w = new Map<string, Float32Array>();
    const sums: Record<string, Float32Array> = {};
    for (const [name, values] of decoded) {
      const slash = name.indexOf('/');
      const [kind, param] = [name.slice(0, slash), name.slice(slash + 1)];
      if (kind === 'm') m[param] = values;
      else if (kind === 'v') v[param] = values;
      else if (kind === 'w') w.set(param, values);
      else if (kind === 'avg') sums[param] = values;
    }
    optimizerState = { step: state.optimizer.step, m, v };
    if (state.average) {
      // The model files hold the averaged weights; training goes on from the training weights.
      const entries = state.optimizer.weights.filter((e) => e.name.startsWith('w/')).map((e) => ({ ...e, name: e.name.slice(2) }));
      assignWeights(model, w, entries, source);
      averageState = { count: state.average.count, sums };
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { dir, model, state, optimizerState, averageState };
}
