/**
 * The data flags: one table of every flag that chooses data, the selections
 * the commands take from it, and the one place that turns their values into
 * a DataSpec (data/spec.ts), the typed description the library loads and a
 * training run records.
 */
import { resolve } from 'node:path';
import { datasetNames } from '../data/index.js';
import { makeDataSpec, type DataSource, type DataSpec, type LoadDataOptions } from '../data/spec.js';
import type { ModelJson } from '../models/serialization.js';
import { flagSpec, UsageError, type FlagSpec, type FlagsOf } from './args.js';

/** A table of flag specs by name, from a list (so each name is written once). */
function flagTable<const Fs extends readonly FlagSpec[]>(...specs: Fs): { [F in Fs[number] as F['name']]: F } {
  return Object.fromEntries(specs.map((f) => [f.name, f])) as { [F in Fs[number] as F['name']]: F };
}

/** Every flag that chooses data. */
export const DATA_FLAGS = flagTable(
  flagSpec({ name: 'dataset', type: 'string', help: 'dataset name [default: the dataset the model was trained on, else mnist]' }),
  flagSpec({ name: 'images', type: 'string', arg: 'FILE', help: 'IDX image file (gzipped or not) instead of --dataset' }),
  flagSpec({ name: 'labels', type: 'string', arg: 'FILE', help: 'IDX label file to go with --images' }),
  flagSpec({ name: 'limit', type: 'int', min: 1, help: 'use only the first N examples' }),
  flagSpec({ name: 'data-seed', type: 'int', help: 'seed of a generated dataset (multimnist, mnist40, affine-mnist)' }),
  flagSpec({ name: 'data-count', type: 'int', min: 1, help: 'examples of a generated dataset (multimnist)' }),
  flagSpec({ name: 'data-file', type: 'string', arg: 'FILE', help: 'data file of a file-based dataset (affnist .mat)' }),
  flagSpec({ name: 'data', type: 'string', arg: 'PATH', help: 'your own data: a folder of class folders (DIR/<class>/ or DIR/train/<class>/ and DIR/test/<class>/; PNG, JPEG, WebP, GIF, BMP), a .csv file or a folder with train.csv and test.csv, an .npz archive or a folder of x_train/y_train/x_test/y_test .npy files' }),
  flagSpec({ name: 'val-split', type: 'number', arg: 'FRACTION', help: 'with --data of one set (DIR/<class>/ or one .csv): hold out this fraction of each class as the test split (seeded by --data-seed)' }),
  flagSpec({ name: 'image-size', type: 'int', min: 1, arg: 'N', help: 'with a --data folder: resize pictures to NxN [default: their own size when all agree, else 32; for a saved model, its input size]' }),
  flagSpec({ name: 'channels', type: 'string', choices: ['1', '3'], help: 'with a --data folder: gray (1) or colour (3) input [default: 3 when any picture has colour, else 1; for a saved model, its channels]' }),
  flagSpec({ name: 'skip-invalid', type: 'boolean', help: 'with a --data folder: leave out files that cannot be decoded (counted in the summary and the run\'s metadata) instead of stopping' }),
  flagSpec({ name: 'cache-dir', type: 'string', arg: 'DIR', help: 'with a --data folder: where decoded pictures are cached [default: train: OUT/data-cache; else $CAPSNET_CACHE_DIR or ~/.cache/capsnet]' }),
  // A training run reads both splits: these give the test split its own files, size and limit.
  flagSpec({ name: 'test-images', type: 'string', arg: 'FILE', help: 'IDX test images (with --images)' }),
  flagSpec({ name: 'test-labels', type: 'string', arg: 'FILE', help: 'IDX test labels (with --images)' }),
  flagSpec({ name: 'train-limit', type: 'int', min: 1, help: 'use only the first N training images' }),
  flagSpec({ name: 'test-limit', type: 'int', min: 1, help: 'evaluate on only the first N test images' }),
  flagSpec({ name: 'test-data-count', type: 'int', min: 1, help: 'examples of a generated test set (multimnist)' }),
);

type DataFlagName = keyof typeof DATA_FLAGS;

/** The data flags named, in that order. */
export function dataFlags<const K extends DataFlagName>(...names: K[]): (typeof DATA_FLAGS)[K][] {
  return names.map((n) => DATA_FLAGS[n]);
}

/** The data flags of a command that reads one split for saved models (eval, attack; perturb and reconstruct without --limit). */
export const ONE_SPLIT_DATA_FLAGS = dataFlags('dataset', 'images', 'labels', 'limit', 'data-seed', 'data-count', 'data-file', 'data', 'val-split', 'image-size', 'channels', 'skip-invalid', 'cache-dir');

/** --dataset of a training run: a name, mnist unless given. */
export const TRAINING_DATASET_FLAG = { ...DATA_FLAGS.dataset, default: 'mnist', help: 'dataset name' };

/** Values of data flags, as a command's parsed flags hold them (each command has some of them). */
export type DataFlags = Partial<FlagsOf<(typeof DATA_FLAGS)[DataFlagName][]>>;

/** The source the flags name: --data, --images/--labels, or --dataset (mnist when none is given). */
function dataSource(flags: DataFlags, testCount: number | undefined): DataSource {
  if (flags.data !== undefined) {
    if (flags.images || flags.labels) throw new UsageError('give either --data or --images/--labels, not both');
    return {
      kind: 'user',
      path: flags.data,
      valSplit: flags['val-split'],
      seed: flags['data-seed'],
      imageSize: flags['image-size'],
      channels: flags.channels === undefined ? undefined : flags.channels === '3' ? 3 : 1,
      skipInvalid: flags['skip-invalid'] || undefined,
      cacheDir: flags['cache-dir'],
    };
  }
  if (flags.images || flags.labels) {
    if (!flags.images || !flags.labels) throw new UsageError('--images and --labels go together');
    return { kind: 'idx', images: flags.images, labels: flags.labels, testImages: flags['test-images'], testLabels: flags['test-labels'] };
  }
  if (flags['test-images'] !== undefined || flags['test-labels'] !== undefined) throw new UsageError('--test-images and --test-labels go with --images and --labels');
  return { kind: 'dataset', name: flags.dataset ?? 'mnist', seed: flags['data-seed'], count: flags['data-count'], testCount, file: flags['data-file'] };
}

/** The data of a training run (train, ablation): each split with its own limit, the test split with its own generated size. */
export function trainingDataSpec(flags: DataFlags): DataSpec {
  return makeDataSpec(dataSource(flags, flags['test-data-count']), { trainLimit: flags['train-limit'], testLimit: flags['test-limit'] });
}

/** The data of a command that reads one split (eval, attack, ...): --limit and --data-count apply to the split it reads. */
export function oneSplitDataSpec(flags: DataFlags): DataSpec {
  return makeDataSpec(dataSource(flags, flags['data-count']), { trainLimit: flags.limit, testLimit: flags.limit });
}

/** How loading reports: a progress bar and summary lines, unless --json (or quiet). */
export function loadOptions(flags: { json?: boolean; quiet?: boolean; progress?: boolean }): LoadDataOptions {
  return { progress: !flags.json && !flags.quiet && flags.progress !== false, log: flags.json || flags.quiet ? () => {} : undefined };
}

/**
 * The flags with --dataset filled in, when it was not given, from the models'
 * metadata: the dataset they were trained on (when all agree and --dataset can
 * name it), else mnist. So `eval --pretrained fashion-mnist` tests on
 * Fashion-MNIST.
 */
export function withModelDataset<F extends DataFlags>(flags: F, ...models: ModelJson[]): F {
  if (flags.data) return withModelInput(flags, models[0]);
  if (flags.dataset !== undefined || flags.images || flags.labels) return flags;
  const names = new Set(models.map((m) => m.metadata?.dataset));
  const [only] = names;
  return { ...flags, dataset: names.size === 1 && typeof only === 'string' && datasetNames().includes(only) ? only : 'mnist' };
}

/**
 * A --data folder for a saved model is prepared as the model's input was:
 * its size and channels, and the held-out part of its --val-split, unless the
 * flags give them.
 */
function withModelInput<F extends DataFlags>(flags: F, model: ModelJson | undefined): F {
  const shape = (model?.config as { inputShape?: number[] } | undefined)?.inputShape;
  if (!shape || shape.length !== 3 || flags.data === undefined) return flags;
  const [h, w, c] = shape;
  // A model trained with --val-split is evaluated on the part it held out, unless told otherwise.
  const held = model?.metadata?.heldOut as { fraction?: number; seed?: number; source?: string } | undefined;
  const sameData = held?.source !== undefined && resolve(flags.data) === held.source;
  const split = flags['val-split'] === undefined && sameData && typeof held?.fraction === 'number' ? { 'val-split': held.fraction, ...(flags['data-seed'] === undefined ? { 'data-seed': held.seed } : {}) } : {};
  return {
    ...flags,
    ...split,
    ...(flags['image-size'] === undefined && h === w ? { 'image-size': h } : {}),
    ...(flags.channels === undefined && (c === 1 || c === 3) ? { channels: c === 1 ? '1' : '3' } : {}),
  };
}
