/** Pieces every command shares: backend setup, model and dataset flags, output. */
import '../models/index.js';
import { describeBackend, initBackend, type BackendInfo } from '../backend/node.js';
import { take, type ImageDataset } from '../data/dataset.js';
import { loadIdxPair } from '../data/files.js';
import { datasetNames, loadDataset } from '../data/index.js';
import type { Split } from '../data/mnist.js';
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
];

/**
 * The flags with --dataset filled in, when it was not given, from the models'
 * metadata: the dataset they were trained on (when all agree and --dataset can
 * name it), else mnist. So `eval --pretrained fashion-mnist` tests on
 * Fashion-MNIST.
 */
export function withModelDataset(flags: ParsedFlags, ...models: ModelJson[]): ParsedFlags {
  if (flags.dataset !== undefined || flags.images || flags.labels) return flags;
  const names = new Set(models.map((m) => m.metadata?.dataset));
  const [only] = names;
  return { ...flags, dataset: names.size === 1 && typeof only === 'string' && datasetNames().includes(only) ? only : 'mnist' };
}

/** The dataset the flags name: --images/--labels, or --dataset with its split. */
export function loadDataFromFlags(flags: ParsedFlags, split: Split): ImageDataset {
  const images = flags.images as string | undefined;
  const labels = flags.labels as string | undefined;
  const limit = flags.limit as number | undefined;
  let ds: ImageDataset;
  if (images || labels) {
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
