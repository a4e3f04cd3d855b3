import type { Rng } from '../util/rng.js';

/**
 * How stored images become model inputs when that is more than scaling to
 * [0, 1] (smallNORB: random or centre crops, brightness and contrast jitter,
 * per-image standardisation). `apply` writes one image: with an Rng it is a
 * training view (random), without one the deterministic test view.
 */
export interface ImageTransform {
  /** Size of the images the transform produces, which is what a model sees. */
  height: number;
  width: number;
  channels: number;
  apply(src: Uint8Array, dst: Float32Array, dstOffset: number, rng?: Rng): void;
}

/**
 * An in-memory image classification dataset: pixels as bytes (0-255, NHWC)
 * and one class per image, or several (multi-hot) for MultiMNIST.
 */
export interface ImageDataset {
  name: string;
  images: Uint8Array;
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
  /** Input pipeline replacing the default (pixels / 255, random shifts in training). */
  transform?: ImageTransform;
}

/** [height, width, channels] of the images a model sees (after the dataset's transform). */
export function inputShapeOf(ds: ImageDataset): [number, number, number] {
  return ds.transform ? [ds.transform.height, ds.transform.width, ds.transform.channels] : [ds.height, ds.width, ds.channels];
}

export function imageSize(ds: ImageDataset): number {
  return ds.height * ds.width * ds.channels;
}

/** The first `n` examples (or all when n is larger). */
export function take(ds: ImageDataset, n: number): ImageDataset {
  if (n >= ds.count) return ds;
  const size = imageSize(ds);
  return {
    ...ds,
    images: ds.images.subarray(0, n * size),
    labels: ds.labels.subarray(0, n),
    multiLabels: ds.multiLabels?.subarray(0, n * ds.numClasses),
    count: n,
  };
}

/** Check that images and labels fit together; returns the dataset. */
export function validateDataset(ds: ImageDataset): ImageDataset {
  const size = imageSize(ds);
  if (ds.images.length !== ds.count * size) {
    throw new Error(`${ds.name}: ${ds.images.length} pixels do not make ${ds.count} images of ${ds.height}x${ds.width}x${ds.channels}`);
  }
  if (ds.labels.length !== ds.count) throw new Error(`${ds.name}: ${ds.count} images but ${ds.labels.length} labels`);
  for (let i = 0; i < ds.count; i++) {
    const l = ds.labels[i];
    if (!(l >= 0 && l < ds.numClasses)) throw new Error(`${ds.name}: label ${l} of image ${i} is outside 0..${ds.numClasses - 1}`);
  }
  return ds;
}
