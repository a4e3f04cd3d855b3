/**
 * A typed description of the data a model trains or is tested on (Node
 * only): where the examples come from and how many of each split to use.
 * The CLI builds one from its data flags; a training run records it in its
 * checkpoints (TrainOptions.data), so that a resumed run, or the visualizer,
 * reads the same data whatever the flags are called.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { take, type ImageDataset } from './dataset.js';
import { loadIdxPair } from './files.js';
import { loadDataset } from './index.js';
import type { Split } from './mnist.js';
import { loadUserData } from './userData.js';

/** A dataset by name (data/index.ts), generated ones with their seed and size. */
export interface NamedDataSource {
  kind: 'dataset';
  name: string;
  /** Seed of a generated dataset (MultiMNIST, mnist40, affine MNIST). */
  seed?: number;
  /** Examples of a generated training split. */
  count?: number;
  /** Examples of a generated test split. */
  testCount?: number;
  /** Data file of a dataset read from a path (affNIST). */
  file?: string;
}

/** A pair of IDX files (gzipped or not); the test split reads testImages/testLabels when given, else the same pair. */
export interface IdxDataSource {
  kind: 'idx';
  images: string;
  labels: string;
  testImages?: string;
  testLabels?: string;
}

/** The user's own data (data/userData.ts): a folder of class folders, CSV, .npz or .npy files. */
export interface UserDataSource {
  kind: 'user';
  path: string;
  /** Fraction of each class held out as the test split, for sources without one. */
  valSplit?: number;
  /** Seed of that split. */
  seed?: number;
  /** Pictures: side of the square input, and gray (1) or colour (3). */
  imageSize?: number;
  channels?: 1 | 3;
  /** Pictures: leave out files that cannot be decoded instead of stopping. */
  skipInvalid?: boolean;
  /** Pictures: folder of the decoded-picture cache [default: defaultCacheDir()]. */
  cacheDir?: string;
}

export type DataSource = NamedDataSource | IdxDataSource | UserDataSource;

export interface DataSpec {
  source: DataSource;
  /** Use only the first N training examples. */
  trainLimit?: number;
  /** Use only the first N test examples. */
  testLimit?: number;
}

export interface LoadDataOptions {
  /** Show a progress bar while pictures are decoded. */
  progress?: boolean;
  /** Summary lines of decoding (default: stderr). */
  log?: (line: string) => void;
}

/** `o` without its undefined fields. */
function definedFields<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/**
 * A DataSpec of `source` and `limits`, holding only the fields that are
 * given (no undefined ones), so that what a run records is what was asked.
 */
export function makeDataSpec(source: DataSource, limits: { trainLimit?: number; testLimit?: number } = {}): DataSpec {
  return definedFields({ source: definedFields(source), ...limits });
}

/** Where decoded pictures are cached when the data description names no folder. */
export function defaultCacheDir(): string {
  return process.env.CAPSNET_CACHE_DIR ?? join(homedir(), '.cache', 'capsnet');
}

/** One split of the data `spec` describes, cut to its limit. */
export async function loadData(spec: DataSpec, split: Split, o: LoadDataOptions = {}): Promise<ImageDataset> {
  const s = spec.source;
  let ds: ImageDataset;
  switch (s.kind) {
    case 'user':
      ds = await loadUserData(s.path, split, {
        valSplit: s.valSplit,
        seed: s.seed,
        imageSize: s.imageSize,
        channels: s.channels,
        skipInvalid: !!s.skipInvalid,
        cacheDir: s.cacheDir ?? defaultCacheDir(),
        progress: o.progress,
        log: o.log,
      });
      break;
    case 'idx':
      ds = split === 'test' && s.testImages !== undefined && s.testLabels !== undefined ? loadIdxPair(s.testImages, s.testLabels) : loadIdxPair(s.images, s.labels);
      break;
    case 'dataset':
      ds = loadDataset(s.name, split, { seed: s.seed, count: split === 'train' ? s.count : s.testCount, file: s.file });
      break;
  }
  const limit = split === 'train' ? spec.trainLimit : spec.testLimit;
  return limit !== undefined ? take(ds, limit) : ds;
}

type FieldType = 'string' | 'number' | 'integer' | 'boolean';

/** The fields each kind of source may have, with their types (the one place that lists them for reading). */
const SOURCE_FIELDS: { [K in DataSource['kind']]: Record<string, FieldType> } = {
  dataset: { name: 'string', seed: 'integer', count: 'integer', testCount: 'integer', file: 'string' },
  idx: { images: 'string', labels: 'string', testImages: 'string', testLabels: 'string' },
  user: { path: 'string', valSplit: 'number', seed: 'integer', imageSize: 'integer', channels: 'integer', skipInvalid: 'boolean', cacheDir: 'string' },
};
const REQUIRED_FIELDS: { [K in DataSource['kind']]: string[] } = { dataset: ['name'], idx: ['images', 'labels'], user: ['path'] };

function checkField(value: unknown, type: FieldType): boolean {
  return type === 'integer' ? Number.isInteger(value) : type === 'number' ? typeof value === 'number' && Number.isFinite(value) : typeof value === type;
}

/**
 * `value` checked as a DataSpec (as read from a file): a bad one is an error
 * naming `where` and the field.
 */
export function parseDataSpec(value: unknown, where: string): DataSpec {
  const fail = (what: string): never => {
    throw new Error(`${where}: ${what}`);
  };
  if (typeof value !== 'object' || value === null) fail('not a data description (an object with a source)');
  const v = value as Record<string, unknown>;
  for (const k of ['trainLimit', 'testLimit']) if (v[k] !== undefined && !(Number.isInteger(v[k]) && (v[k] as number) >= 1)) fail(`${k} must be a positive integer, got ${JSON.stringify(v[k])}`);
  const source = v.source as Record<string, unknown> | undefined;
  if (typeof source !== 'object' || source === null) fail('no data source');
  const kind = source!.kind as DataSource['kind'];
  const fields = SOURCE_FIELDS[kind];
  if (!fields) fail(`unknown kind of data source ${JSON.stringify(kind)}; expected ${Object.keys(SOURCE_FIELDS).join(', ')}`);
  for (const k of REQUIRED_FIELDS[kind]) if (source![k] === undefined) fail(`a source of kind ${kind} needs ${k}`);
  for (const [k, x] of Object.entries(source!)) {
    if (k === 'kind' || x === undefined) continue;
    if (!(k in fields)) fail(`a source of kind ${kind} has no field ${k}`);
    if (!checkField(x, fields[k])) fail(`source.${k} must be ${fields[k] === 'integer' ? 'an integer' : `a ${fields[k]}`}, got ${JSON.stringify(x)}`);
  }
  if (kind === 'user' && source!.channels !== undefined && source!.channels !== 1 && source!.channels !== 3) fail(`source.channels must be 1 or 3, got ${source!.channels}`);
  return value as DataSpec;
}
