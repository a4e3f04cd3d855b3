/**
 * MultiMNIST (section 6 of "Dynamic Routing Between Capsules"): two digits of
 * different classes from the same split, each shifted by up to 4 pixels in
 * each direction on a 36x36 canvas, added and clipped at the maximum pixel
 * value. The set is a seeded recipe (which two digits, which shifts), so any
 * number of pairs costs a few bytes each and pixels are drawn on the fly;
 * each digit can also be drawn alone, as the target of its reconstruction.
 */
import { Rng } from '../util/rng.js';
import type { ImageDataset } from './dataset.js';

export interface MultiMnistOptions {
  count: number;
  seed: number;
  /** Largest shift of each digit in each direction (4 in the paper). */
  maxShift?: number;
}

export function generateMultiMnist(base: ImageDataset, options: MultiMnistOptions): ImageDataset {
  const { count, seed, maxShift = 4 } = options;
  if (base.channels !== 1) throw new Error(`MultiMNIST needs one-channel digits, ${base.name} has ${base.channels}`);
  if (!Number.isInteger(count) || count < 1) throw new Error(`MultiMNIST: count must be a positive integer, got ${count}`);
  const classes = new Set(base.labels);
  if (classes.size < 2) throw new Error(`MultiMNIST: ${base.name} has fewer than two classes`);
  const h = base.height + 2 * maxShift;
  const w = base.width + 2 * maxShift;
  const rng = new Rng(seed);
  const first = new Int32Array(count);
  const second = new Int32Array(count);
  const shifts = new Int8Array(count * 4);
  const labels = new Int32Array(count);
  const multiLabels = new Uint8Array(count * base.numClasses);
  const componentLabels = new Int32Array(count * 2);
  for (let i = 0; i < count; i++) {
    const a = rng.int(0, base.count - 1);
    let b = rng.int(0, base.count - 1);
    while (base.labels[b] === base.labels[a]) b = rng.int(0, base.count - 1);
    first[i] = a;
    second[i] = b;
    for (let k = 0; k < 4; k++) shifts[i * 4 + k] = rng.int(-maxShift, maxShift);
    labels[i] = base.labels[a];
    multiLabels[i * base.numClasses + base.labels[a]] = 1;
    multiLabels[i * base.numClasses + base.labels[b]] = 1;
    componentLabels[i * 2] = base.labels[a];
    componentLabels[i * 2 + 1] = base.labels[b];
  }
  const per = base.height * base.width;
  const scale = 1 / 255;
  /** Add digit `src` shifted by (dx, dy) from the centred position into dst. */
  const paste = (src: number, dx: number, dy: number, dst: Float32Array, offset: number) => {
    const img = base.images.subarray(src * per, (src + 1) * per);
    const x0 = maxShift + dx;
    const y0 = maxShift + dy;
    for (let y = 0; y < base.height; y++) {
      const row = offset + (y0 + y) * w + x0;
      for (let x = 0; x < base.width; x++) dst[row + x] += img[y * base.width + x] * scale;
    }
  };
  const renderComponent = (i: number, k: number, dst: Float32Array, offset: number) => {
    dst.fill(0, offset, offset + h * w);
    paste(k === 0 ? first[i] : second[i], shifts[i * 4 + 2 * k], shifts[i * 4 + 2 * k + 1], dst, offset);
  };
  return {
    name: `multimnist(${base.name}, ${count} pairs, seed ${seed})`,
    images: new Uint8Array(0),
    render: (i, dst, offset) => {
      dst.fill(0, offset, offset + h * w);
      paste(first[i], shifts[i * 4], shifts[i * 4 + 1], dst, offset);
      paste(second[i], shifts[i * 4 + 2], shifts[i * 4 + 3], dst, offset);
      for (let p = offset; p < offset + h * w; p++) if (dst[p] > 1) dst[p] = 1; // clipped at the maximum
    },
    components: { perImage: 2, labels: componentLabels, render: renderComponent },
    labels,
    multiLabels,
    count,
    height: h,
    width: w,
    channels: 1,
    numClasses: base.numClasses,
    classNames: base.classNames,
  };
}
