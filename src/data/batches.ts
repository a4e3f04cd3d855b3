/**
 * Mini-batches for training and evaluation. Pixels become floats in [0, 1];
 * the order comes from a seeded permutation and shifts from a seeded Rng, so
 * a checkpoint that stores both Rng states and the batch index resumes on
 * exactly the same batches.
 */
import type { Rng } from '../util/rng.js';
import { shiftImage } from './augment.js';
import { imageBytes, imageSize, type ImageDataset } from './dataset.js';

export interface Batch {
  /** [size, height, width, channels] floats in [0, 1]. */
  x: Float32Array;
  labels: Int32Array;
  /** Multi-hot targets [size, numClasses]. */
  targets: Float32Array;
  size: number;
  /** Dataset indices of the examples. */
  indices: Int32Array;
  /** Separate objects of multi-object images: [size, perImage, h, w, c] pixels and [size, perImage] classes. */
  components?: { perImage: number; images: Float32Array; labels: Int32Array };
}

export function batchCount(count: number, batchSize: number): number {
  return Math.ceil(count / batchSize);
}

/**
 * Assemble one batch from dataset indices. With an Rng, each image is shifted
 * by up to `maxShift` px and, with `flip`, mirrored with probability 1/2; the
 * flip draw comes after the shift's, and only when flipping, so runs without
 * it draw the same numbers as before.
 */
export function makeBatch(ds: ImageDataset, indices: Int32Array, maxShift = 0, rng?: Rng, flip = false): Batch {
  const size = indices.length;
  const per = imageSize(ds);
  const x = new Float32Array(size * per);
  const labels = new Int32Array(size);
  const targets = new Float32Array(size * ds.numClasses);
  for (let b = 0; b < size; b++) {
    const i = indices[b];
    if (ds.render) {
      ds.render(i, x, b * per, rng);
    } else {
      const src = imageBytes(ds, i);
      let dx = 0;
      let dy = 0;
      if (maxShift > 0 && rng) {
        dx = rng.int(-maxShift, maxShift);
        dy = rng.int(-maxShift, maxShift);
      }
      const mirror = flip && rng !== undefined && rng.next() < 0.5;
      shiftImage(src, x, b * per, ds.height, ds.width, ds.channels, dx, dy, mirror);
    }
    labels[b] = ds.labels[i];
    if (ds.multiLabels) {
      targets.set(ds.multiLabels.subarray(i * ds.numClasses, (i + 1) * ds.numClasses), b * ds.numClasses);
    } else {
      targets[b * ds.numClasses + ds.labels[i]] = 1;
    }
  }
  let components: Batch['components'];
  if (ds.components) {
    const k = ds.components.perImage;
    components = { perImage: k, images: new Float32Array(size * k * per), labels: new Int32Array(size * k) };
    for (let b = 0; b < size; b++) {
      for (let j = 0; j < k; j++) {
        ds.components.render(indices[b], j, components.images, (b * k + j) * per);
        components.labels[b * k + j] = ds.components.labels[indices[b] * k + j];
      }
    }
  }
  return { x, labels, targets, size, indices, components };
}

/** Indices of batch `b` of an ordering. */
export function batchIndices(order: Int32Array, b: number, batchSize: number): Int32Array {
  return order.subarray(b * batchSize, Math.min(order.length, (b + 1) * batchSize));
}

/** 0..n-1 in order (evaluation). */
export function sequentialOrder(n: number): Int32Array {
  const o = new Int32Array(n);
  for (let i = 0; i < n; i++) o[i] = i;
  return o;
}
