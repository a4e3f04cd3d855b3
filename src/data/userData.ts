/**
 * A user's own data behind one flag (--data PATH), as the kind of path it is
 * (Node only):
 *
 *   DIR/train/<class>/..., DIR/test/<class>/...   folder of pictures, split
 *   DIR/<class>/...                               folder of pictures, --val-split
 *   DIR with x_train.npy, y_train.npy, x_test.npy, y_test.npy
 *   FILE.npz                                      the same four arrays
 *   DIR with train.csv and test.csv               label,pixel0,... rows
 *   FILE.csv                                      one CSV, --val-split
 *
 * Sources without a test set are split by a seeded split stratified by class:
 * each class gives the same fraction of its examples to the test split.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { readCsv, readNpyFolder, readNpz, type ArraySplit } from './arrayFiles.js';
import type { ImageDataset } from './dataset.js';
import { imagePreparation } from './imageDecode.js';
import { folderCache, folderSummary, scanImageFolder, type FolderCacheOptions } from './imageFolder.js';
import type { Split } from './mnist.js';
import { PixelFileReader } from './pixelCache.js';
import { stratifiedSplit } from './split.js';


export type UserDataKind = 'image-folder' | 'npy-folder' | 'npz' | 'csv-folder' | 'csv';

export const USER_DATA_EXPECTED =
  'a folder of class folders (DIR/<class>/... or DIR/train/<class>/... and DIR/test/<class>/...), a folder with x_train.npy, y_train.npy, x_test.npy and y_test.npy, an .npz archive of those arrays, a folder with train.csv and test.csv, or one .csv file';

export function detectUserData(path: string): UserDataKind {
  if (!existsSync(path)) throw new Error(`--data ${path}: not found; expected ${USER_DATA_EXPECTED}`);
  const st = statSync(path);
  if (st.isFile()) {
    const lower = path.toLowerCase();
    if (lower.endsWith('.npz')) return 'npz';
    if (lower.endsWith('.csv')) return 'csv';
    throw new Error(`--data ${path}: a file of an unknown kind; expected ${USER_DATA_EXPECTED}`);
  }
  if (existsSync(join(path, 'x_train.npy'))) return 'npy-folder';
  if (existsSync(join(path, 'train.csv')) && existsSync(join(path, 'test.csv'))) return 'csv-folder';
  return 'image-folder';
}

export interface UserDataOptions extends Omit<FolderCacheOptions, 'cacheDir'> {
  /** Fraction of each class held out as the test split, for sources without one. */
  valSplit?: number;
  /** Seed of that split. */
  seed?: number;
  /** Folder of the decoded-picture cache (folders of pictures only). */
  cacheDir: string;
}

function heldOut(path: string, single: boolean, o: UserDataOptions): Pick<ImageDataset, 'heldOut'> {
  return single && o.valSplit !== undefined ? { heldOut: { fraction: o.valSplit, seed: o.seed ?? 1, source: resolve(path) } } : {};
}

function noTestSet(path: string): Error {
  return new Error(`--data ${path} has no separate test set: give --val-split FRACTION (e.g. 0.2) to hold out part of each class`);
}

/** The indices of `split` in a source with groups (e.g. train/test) or one group to split. */
function splitIndices(path: string, groups: Uint8Array, groupNames: string[], labels: Int32Array, split: Split, o: UserDataOptions): Int32Array {
  if (groupNames.length > 1) {
    if (o.valSplit !== undefined) throw new Error(`--data ${path} has its own test set: --val-split applies to sources without one (DIR/<class>/ or one .csv file)`);
    const g = groupNames.indexOf(split);
    const out: number[] = [];
    groups.forEach((v, i) => v === g && out.push(i));
    return Int32Array.from(out);
  }
  if (o.valSplit === undefined) {
    // A source without a test set is evaluated whole; training needs a held-out part.
    if (split === 'train') throw noTestSet(path);
    return Int32Array.from(labels.keys());
  }
  return stratifiedSplit(labels, o.valSplit, o.seed)[split];
}

function checkClasses(path: string, numClasses: number, test: Int32Array | undefined): void {
  if (numClasses < 2) throw new Error(`--data ${path}: the training labels hold a single class; a classifier needs two classes or more`);
  if (test) for (let i = 0; i < test.length; i++) if (test[i] >= numClasses) throw new Error(`--data ${path}: test label ${test[i]} (example ${i}) is out of range: the training labels are 0..${numClasses - 1}`);
}

function arrayDataset(path: string, split: Split, parts: { train?: ArraySplit; test?: ArraySplit; all?: ArraySplit }, o: UserDataOptions): ImageDataset {
  const ref = parts.train ?? parts.all!;
  if (parts.test && (parts.test.height !== ref.height || parts.test.width !== ref.width || parts.test.channels !== ref.channels)) {
    throw new Error(`--data ${path}: test images are ${parts.test.height}x${parts.test.width}x${parts.test.channels}, training images ${ref.height}x${ref.width}x${ref.channels}`);
  }
  let maxLabel = 0;
  for (const l of ref.labels) maxLabel = Math.max(maxLabel, l);
  const numClasses = maxLabel + 1;
  checkClasses(path, numClasses, parts.test?.labels);
  let chosen: ArraySplit;
  if (!parts.all && o.valSplit !== undefined) throw new Error(`--data ${path} has its own test set: --val-split applies to sources without one (DIR/<class>/ or one .csv file)`);
  if (parts.all) {
    const idx = splitIndices(path, new Uint8Array(parts.all.count), ['all'], parts.all.labels, split, o);
    const per = ref.height * ref.width * ref.channels;
    const images = new Uint8Array(idx.length * per);
    idx.forEach((i, k) => images.set(parts.all!.images.subarray(i * per, (i + 1) * per), k * per));
    chosen = { ...ref, images, labels: Int32Array.from(idx, (i) => parts.all!.labels[i]), count: idx.length };
  } else {
    chosen = split === 'train' ? parts.train! : parts.test!;
  }
  return {
    name: `${basename(path)}-${split}`,
    images: chosen.images,
    labels: chosen.labels,
    count: chosen.count,
    height: chosen.height,
    width: chosen.width,
    channels: chosen.channels,
    numClasses,
    classNames: Array.from({ length: numClasses }, (_, i) => String(i)),
    preparation: ref.channels === 1 || ref.channels === 3 ? imagePreparation(ref.height, ref.width, ref.channels) : undefined,
    ...heldOut(path, parts.all !== undefined, o),
  };
}

/** The `split` of the data at `path`, of whichever kind it is. */
export async function loadUserData(path: string, split: Split, o: UserDataOptions): Promise<ImageDataset> {
  const kind = detectUserData(path);
  switch (kind) {
    case 'npz':
      return arrayDataset(path, split, readNpz(path), o);
    case 'npy-folder':
      return arrayDataset(path, split, readNpyFolder(path), o);
    case 'csv-folder':
      return arrayDataset(path, split, { train: readCsv(join(path, 'train.csv')), test: readCsv(join(path, 'test.csv')) }, o);
    case 'csv':
      return arrayDataset(path, split, { all: readCsv(path) }, o);
    case 'image-folder': {
      const scan = scanImageFolder(path);
      if (scan.layout === 'classes' && o.valSplit === undefined && split === 'train') throw noTestSet(path);
      const cache = await folderCache(scan, o);
      const h = cache.header;
      const idx = splitIndices(path, cache.groups, h.groupNames, cache.labels, split, o);
      const summary = folderSummary(cache);
      return {
        name: `${basename(scan.root)}-${split}`,
        images: new Uint8Array(0),
        pixels: new PixelFileReader(cache, idx),
        labels: Int32Array.from(idx, (i) => cache.labels[i]),
        count: idx.length,
        height: h.height,
        width: h.width,
        channels: h.channels,
        numClasses: h.classNames.length,
        classNames: h.classNames,
        preparation: summary.preparation,
        skipped: summary.skipped,
        ...heldOut(path, h.groupNames.length === 1, o),
      };
    }
  }
}
