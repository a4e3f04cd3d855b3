/** Pieces every command shares: backend setup, model and dataset flags, output. */
import '../models/index.js';
import { describeBackend, initBackend, type BackendInfo } from '../backend/node.js';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { take, type ImageDataset } from '../data/dataset.js';
import { loadIdxPair } from '../data/files.js';
import { datasetNames, loadDataset } from '../data/index.js';
import type { Split } from '../data/mnist.js';
import { loadUserData } from '../data/userData.js';
import { loadModel } from '../models/files.js';
import type { CapsuleDecoder, ClassifierModel } from '../models/model.js';
import { modelPathOrPretrained, pretrainedDir } from '../models/pretrained.js';
import type { ModelJson } from '../models/serialization.js';
import { UsageError, type FlagSpec, type ParsedFlags } from './args.js';

export async function setupBackend(flags: ParsedFlags): Promise<BackendInfo> {
  const info = await initBackend((flags.backend as string | undefined) === 'auto' ? undefined : (flags.backend as string | undefined));
  if (!flags.json && !flags.quiet) process.stderr.write(`${describeBackend(info)}\n`);
  return info;
}

export function loadModelFromFlags(flags: ParsedFlags): { model: ClassifierModel; json: ModelJson; dir: string } {
  if (flags.model && flags.pretrained) throw new UsageError('give either --model or --pretrained, not both');
  const path = flags.pretrained ? pretrainedDir(flags.pretrained as string) : flags.model !== undefined ? modelPathOrPretrained(flags.model as string) : undefined;
  if (!path) throw new UsageError('a model is needed: --model MODEL or --pretrained NAME');
  return loadModel(path);
}

/** The model's decoder, or a usage error naming the command and the model (the model is disposed). */
export function requireDecoder(model: ClassifierModel, dir: string, command: string): CapsuleDecoder {
  if (model.decoder) return model.decoder;
  model.dispose();
  throw new UsageError(`${command} needs a model with a decoder; ${dir} is a ${model.modelType} model without one`);
}

export const DATA_FLAGS: FlagSpec[] = [
  { name: 'dataset', type: 'string', help: 'dataset name [default: the dataset the model was trained on, else mnist]' },
  { name: 'images', type: 'string', arg: 'FILE', help: 'IDX image file (gzipped or not) instead of --dataset' },
  { name: 'labels', type: 'string', arg: 'FILE', help: 'IDX label file to go with --images' },
  { name: 'limit', type: 'int', min: 1, help: 'use only the first N examples' },
  { name: 'data-seed', type: 'int', help: 'seed of a generated dataset (multimnist, mnist40, affine-mnist)' },
  { name: 'data-count', type: 'int', min: 1, help: 'examples of a generated dataset (multimnist)' },
  { name: 'data-file', type: 'string', arg: 'FILE', help: 'data file of a file-based dataset (affnist .mat)' },
  { name: 'data', type: 'string', arg: 'PATH', help: 'your own data: a folder of class folders (DIR/<class>/ or DIR/train/<class>/ and DIR/test/<class>/; PNG, JPEG, WebP, GIF, BMP), a .csv file or a folder with train.csv and test.csv, an .npz archive or a folder of x_train/y_train/x_test/y_test .npy files' },
  { name: 'val-split', type: 'number', arg: 'FRACTION', help: 'with --data of one set (DIR/<class>/ or one .csv): hold out this fraction of each class as the test split (seeded by --data-seed)' },
  { name: 'image-size', type: 'int', min: 1, arg: 'N', help: 'with a --data folder: resize pictures to NxN [default: their own size when all agree, else 32; for a saved model, its input size]' },
  { name: 'channels', type: 'string', choices: ['1', '3'], help: 'with a --data folder: gray (1) or colour (3) input [default: 3 when any picture has colour, else 1; for a saved model, its channels]' },
  { name: 'skip-invalid', type: 'boolean', help: 'with a --data folder: leave out files that cannot be decoded (counted in the summary and the run\'s metadata) instead of stopping' },
  { name: 'cache-dir', type: 'string', arg: 'DIR', help: 'with a --data folder: where decoded pictures are cached [default: train: OUT/data-cache; else $CAPSNET_CACHE_DIR or ~/.cache/capsnet]' },
];

/** Where decoded pictures are cached when --cache-dir is not given (train keeps them beside the run instead). */
export function defaultCacheDir(): string {
  return process.env.CAPSNET_CACHE_DIR ?? join(homedir(), '.cache', 'capsnet');
}

/**
 * The flags with --dataset filled in, when it was not given, from the models'
 * metadata: the dataset they were trained on (when all agree and --dataset can
 * name it), else mnist. So `eval --pretrained fashion-mnist` tests on
 * Fashion-MNIST.
 */
export function withModelDataset(flags: ParsedFlags, ...models: ModelJson[]): ParsedFlags {
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
function withModelInput(flags: ParsedFlags, model: ModelJson | undefined): ParsedFlags {
  const shape = (model?.config as { inputShape?: number[] } | undefined)?.inputShape;
  if (!shape || shape.length !== 3) return flags;
  const [h, w, c] = shape;
  // A model trained with --val-split is evaluated on the part it held out, unless told otherwise.
  const held = model?.metadata?.heldOut as { fraction?: number; seed?: number; source?: string } | undefined;
  const sameData = held?.source !== undefined && resolve(flags.data as string) === held.source;
  const split = flags['val-split'] === undefined && sameData && typeof held?.fraction === 'number' ? { 'val-split': held.fraction, ...(flags['data-seed'] === undefined ? { 'data-seed': held.seed } : {}) } : {};
  return {
    ...flags,
    ...split,
    ...(flags['image-size'] === undefined && h === w ? { 'image-size': h } : {}),
    ...(flags.channels === undefined && (c === 1 || c === 3) ? { channels: String(c) } : {}),
  };
}

/** The dataset the flags name: --data, --images/--labels, or --dataset with its split. */
export async function loadDataFromFlags(flags: ParsedFlags, split: Split): Promise<ImageDataset> {
  const images = flags.images as string | undefined;
  const labels = flags.labels as string | undefined;
  const limit = flags.limit as number | undefined;
  let ds: ImageDataset;
  if (flags.data !== undefined) {
    if (images || labels) throw new UsageError('give either --data or --images/--labels, not both');
    ds = await loadUserData(flags.data as string, split, {
      valSplit: flags['val-split'] as number | undefined,
      seed: flags['data-seed'] as number | undefined,
      imageSize: flags['image-size'] as number | undefined,
      channels: flags.channels !== undefined ? (Number(flags.channels) as 1 | 3) : undefined,
      skipInvalid: !!flags['skip-invalid'],
      cacheDir: (flags['cache-dir'] as string | undefined) ?? defaultCacheDir(),
      progress: !flags.json && !flags.quiet && flags.progress !== false,
      log: flags.json || flags.quiet ? () => {} : undefined,
    });
  } else if (images || labels) {
    if (!images || !labels) throw new UsageError('--images and --labels go together');
    ds = loadIdxPair(images, labels);
  } else {
    ds = loadDataset((flags.dataset as string | undefined) ?? 'mnist', split, {
      seed: flags['data-seed'] as number | undefined,
      count: flags['data-count'] as number | undefined,
      file: flags['data-file'] as string | undefined,
    });
  }
  return limit !== undefined ? take(ds, limit) : ds;
}

/** Print `result` as JSON (--json) or as the text `text()` returns. */
export function report(flags: ParsedFlags, result: unknown, text: () => string): void {
  if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${text()}\n`);
}

export function percent(x: number, digits = 2): string {
  return `${(100 * x).toFixed(digits)}%`;
}
