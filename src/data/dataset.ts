import type { Rng } from '../util/rng.js';

/**
 * An image classification dataset: pixels as bytes (0-255, NHWC) in memory,
 * or drawn on demand by `render` (generated datasets such as MultiMNIST), and
 * one class per image, or several (multi-hot) for MultiMNIST.
 */
export interface ImageDataset {
  name: string;
  /** Pixels of every image; empty when `render` draws them. */
  images: Uint8Array;
  /**
   * Draw image i as floats in [0, 1] into dst at offset. With an Rng
   * (training), a generator may draw fresh random placement; without one the
   * result depends on i alone.
   */
  render?: (i: number, dst: Float32Array, offset: number, rng?: Rng) => void;
  /** The separate objects of multi-object images (MultiMNIST's two digits), for per-object reconstruction. */
  components?: DatasetComponents;
  /** Class index per image. For multi-label data, the first class. */
  labels: Int32Array;
  /** Multi-hot targets [count, numClasses] when an image has several classes. */
  multiLabels?: Uint8Array;
  count: number;
  height: number;
  width: number;
  channels: number;
  numClasses: number;
  /** Class names, when known. */
  classNames?: string[];
  /**
   * Where the pixels are when they are not in `images` (which is then empty):
   * a reader that fetches image i from a cache file on demand, so a dataset
   * larger than memory streams (./pixelCache.ts).
   */
  pixels?: PixelSource;
  /** How a picture becomes an input like this dataset's (saved in a model's metadata, used by predict). */
  preparation?: unknown;
  /** The seeded split that made this set from a source without a test set (--val-split), so that evaluation can hold out the same part. */
  heldOut?: { fraction: number; seed: number; source: string };
  /** Files left out because they could not be decoded (--skip-invalid). */
  skipped?: { path: string; reason: string }[];
  /**
   * A generated training set that draws new examples every epoch (MultiMNIST,
   * as in the paper): the set of epoch e, counting from 1 (epoch 1 is this
   * set). Seeded by e, so a resumed run sees the same sets; the same count,
   * classes and image size in every epoch.
   */
  forEpoch?: (epoch: number) => ImageDataset;
}

/** Image bytes read on demand. */
export interface PixelSource {
  /** Bytes of image i (height * width * channels); valid until the next call. */
  read(i: number): Uint8Array;
}

/** Bytes of image i of a dataset whose pixels are stored (in memory or in a cache file). */
export function imageBytes(ds: ImageDataset, i: number): Uint8Array {
  const per = imageSize(ds);
  return ds.pixels ? ds.pixels.read(i) : ds.images.subarray(i * per, (i + 1) * per);
}

export function imageSize(ds: ImageDataset): number {
  return ds.height * ds.width * ds.channels;
}

export interface DatasetComponents {
  /** Objects per image. */
  perImage: number;
  /** Class of object k of image i at i * perImage + k. */
  labels: Int32Array;
  /** Draw object k of image i (floats in [0, 1], same size as the image). */
  render(i: number, k: number, dst: Float32Array, offset: number): void;
}

/** The first `n` examples (or all when n is larger). */
export function take(ds: ImageDataset, n: number): ImageDataset {
  if (n >= ds.count) return ds;
  const size = imageSize(ds);
  return {
    ...ds,
    images: ds.render || ds.pixels ? ds.images : ds.images.subarray(0, n * size),
    labels: ds.labels.subarray(0, n),
    multiLabels: ds.multiLabels?.subarray(0, n * ds.numClasses),
    components: ds.components && { ...ds.components, labels: ds.components.labels.subarray(0, n * ds.components.perImage) },
    count: n,
    forEpoch: ds.forEpoch && ((epoch: number) => take(ds.forEpoch!(epoch), n)),
  };
}

/** Check that images and labels fit together; returns the dataset. */
export function validateDataset(ds: ImageDataset): ImageDataset {
  const size = imageSize(ds);
  if (!ds.render && !ds.pixels && ds.images.length !== ds.count * size) {
    throw new Error(`${ds.name}: ${ds.images.length} pixels do not make ${ds.count} images of ${ds.height}x${ds.width}x${ds.channels}`);
  }
  if (ds.labels.length !== ds.count) throw new Error(`${ds.name}: ${ds.count} images but ${ds.labels.length} labels`);
  for (let i = 0; i < ds.count; i++) {
    const l = ds.labels[i];
    if (!(l >= 0 && l < ds.numClasses)) throw new Error(`${ds.name}: label ${l} of image ${i} is outside 0..${ds.numClasses - 1}`);
  }
  return ds;
}
