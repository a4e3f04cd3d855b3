/**
 * smallNORB (LeCun, Huang, Bottou 2004): 96x96 stereo photographs of 50 toys
 * in 5 classes (animal, human, airplane, truck, car) under 18 azimuths, 9
 * elevations and 6 lightings; 24,300 training and 24,300 test pairs, with
 * different toy instances in the two sets. The files come from NYU's
 * smallNORB page (https://cs.nyu.edu/~yann/data/norb-v1.0-small/), gzipped
 * or not:
 *
 *   smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat
 *   smallnorb-5x01235x9x18x6x2x96x96-testing-{dat,cat,info}.mat
 *
 * Binary matrix format (all integers little-endian):
 *   int32 magic   0x1E3D4C55 bytes, 0x1E3D4C54 int32, 0x1E3D4C56 int16,
 *                 0x1E3D4C51 float32, 0x1E3D4C53 float64
 *   int32 ndim
 *   int32 dim[max(3, ndim)]   (dimensions past ndim are stored but unused)
 *   the data, row-major
 * dat is [N, 2, 96, 96] bytes (the two cameras), cat [N] int32 classes,
 * info [N, 4] int32: instance, elevation (0-8: 30 to 70 degrees), azimuth
 * (0, 2, ..., 34: times 10 degrees), lighting (0-5).
 *
 * Preprocessing as in "Matrix capsules with EM routing" (section 5): each
 * image is downsampled to 48x48 and standardised (zero mean, unit variance);
 * training takes random 32x32 crops with random brightness and contrast, the
 * test the centre 32x32 crop.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Rng } from '../util/rng.js';
import { validateDataset, type ImageDataset } from './dataset.js';
import { readMaybeGzip } from './files.js';
import type { Split } from './mnist.js';
import { resizeArea } from './preprocess.js';

export const SMALLNORB_CLASSES = ['animal', 'human', 'airplane', 'truck', 'car'];
/** The paper's stored image side (96 downsampled to 48) and the crop the model sees. */
export const SMALLNORB_SIZE = 48;
export const SMALLNORB_CROP = 32;

const TYPES = {
  0x1e3d4c55: { dtype: 'uint8', bytes: 1 },
  0x1e3d4c54: { dtype: 'int32', bytes: 4 },
  0x1e3d4c56: { dtype: 'int16', bytes: 2 },
  0x1e3d4c51: { dtype: 'float32', bytes: 4 },
  0x1e3d4c53: { dtype: 'float64', bytes: 8 },
} as const;

export type NorbDtype = (typeof TYPES)[keyof typeof TYPES]['dtype'];

export const NORB_MAGIC: Record<NorbDtype, number> = { uint8: 0x1e3d4c55, int32: 0x1e3d4c54, int16: 0x1e3d4c56, float32: 0x1e3d4c51, float64: 0x1e3d4c53 };

export interface NorbMatrix {
  dtype: NorbDtype;
  dims: number[];
  data: Uint8Array | Int32Array | Int16Array | Float32Array | Float64Array;
}

const MAX_RANK = 16;

/** Parse a NORB binary matrix; `source` names the file in errors. */
export function parseNorbMatrix(bytes: Uint8Array, source = 'NORB matrix'): NorbMatrix {
  if (bytes.byteLength < 8) throw new Error(`${source}: too short for a NORB matrix header (${bytes.byteLength} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  const type = TYPES[magic as keyof typeof TYPES];
  if (!type) throw new Error(`${source}: bad magic number 0x${magic.toString(16).padStart(8, '0')} (not a NORB binary matrix)`);
  const rank = view.getInt32(4, true);
  if (rank < 1 || rank > MAX_RANK) throw new Error(`${source}: rank must be between 1 and ${MAX_RANK}, got ${rank}`);
  const stored = Math.max(3, rank);
  const header = 8 + 4 * stored;
  if (bytes.byteLength < header) throw new Error(`${source}: truncated header (needs ${header} bytes for ${stored} dimensions, file has ${bytes.byteLength})`);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) {
    const d = view.getInt32(8 + 4 * i, true);
    if (d < 1) throw new Error(`${source}: dimension ${i} is ${d}`);
    dims.push(d);
  }
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = header + count * type.bytes;
  if (bytes.byteLength < expected) throw new Error(`${source}: truncated: dimensions [${dims.join(', ')}] need ${expected} bytes, file has ${bytes.byteLength}`);
  if (bytes.byteLength > expected) throw new Error(`${source}: ${bytes.byteLength - expected} unexpected bytes after the data for dimensions [${dims.join(', ')}]`);
  let data: NorbMatrix['data'];
  if (type.dtype === 'uint8') {
    data = bytes.subarray(header, expected);
  } else {
    const Ctor = { int32: Int32Array, int16: Int16Array, float32: Float32Array, float64: Float64Array }[type.dtype];
    const arr = new Ctor(count);
    const get = { int32: (o: number) => view.getInt32(o, true), int16: (o: number) => view.getInt16(o, true), float32: (o: number) => view.getFloat32(o, true), float64: (o: number) => view.getFloat64(o, true) }[type.dtype];
    for (let i = 0; i < count; i++) arr[i] = get(header + i * type.bytes);
    data = arr;
  }
  return { dtype: type.dtype, dims, data };
}

/** Encode a NORB binary matrix (used to write small test files). */
export function encodeNorbMatrix(dtype: NorbDtype, dims: number[], data: ArrayLike<number>): Uint8Array {
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`encodeNorbMatrix: dimensions [${dims}] need ${count} values, got ${data.length}`);
  const bytesPer = { uint8: 1, int16: 2, int32: 4, float32: 4, float64: 8 }[dtype];
  const stored = Math.max(3, dims.length);
  const header = 8 + 4 * stored;
  const out = new Uint8Array(header + count * bytesPer);
  const view = new DataView(out.buffer);
  view.setUint32(0, NORB_MAGIC[dtype], true);
  view.setInt32(4, dims.length, true);
  for (let i = 0; i < stored; i++) view.setInt32(8 + 4 * i, dims[i] ?? 1, true);
  for (let i = 0; i < count; i++) {
    const o = header + i * bytesPer;
    if (dtype === 'uint8') out[o] = data[i];
    else if (dtype === 'int16') view.setInt16(o, data[i], true);
    else if (dtype === 'int32') view.setInt32(o, data[i], true);
    else if (dtype === 'float32') view.setFloat32(o, data[i], true);
    else view.setFloat64(o, data[i], true);
  }
  return out;
}

export function smallNorbDir(): string {
  return process.env.CAPSNET_SMALLNORB_DIR ?? join('data', 'smallnorb');
}

export function smallNorbFileName(split: Split, kind: 'dat' | 'cat' | 'info'): string {
  return split === 'train' ? `smallnorb-5x46789x9x18x6x2x96x96-training-${kind}.mat` : `smallnorb-5x01235x9x18x6x2x96x96-testing-${kind}.mat`;
}

function findFile(dir: string, name: string): string {
  for (const candidate of [join(dir, name), join(dir, `${name}.gz`)]) if (existsSync(candidate)) return candidate;
  throw new Error(
    `smallNORB file ${name}(.gz) not found in ${dir}: download the six smallnorb-5x*.mat.gz files from NYU's smallNORB page (https://cs.nyu.edu/~yann/data/norb-v1.0-small/) into that directory, or set CAPSNET_SMALLNORB_DIR`,
  );
}

/** Which images to keep, by the viewpoint split of the paper's generalisation experiments (section 6). */
export type NorbViewpoints = 'all' | 'azimuth-familiar' | 'azimuth-novel' | 'elevation-familiar' | 'elevation-novel';

/**
 * Familiar viewpoints as in the paper: azimuths 300, 320, 340, 0, 20 and 40
 * degrees (info azimuth 30, 32, 34, 0, 2, 4), or the three lowest elevations
 * (30, 35, 40 degrees: info elevation 0-2). Novel: the rest.
 */
export function viewpointFilter(v: NorbViewpoints): (elevation: number, azimuth: number) => boolean {
  const familiarAzimuth = (a: number) => a >= 30 || a <= 4;
  switch (v) {
    case 'all':
      return () => true;
    case 'azimuth-familiar':
      return (_e, a) => familiarAzimuth(a);
    case 'azimuth-novel':
      return (_e, a) => !familiarAzimuth(a);
    case 'elevation-familiar':
      return (e) => e <= 2;
    case 'elevation-novel':
      return (e) => e > 2;
  }
}

export interface SmallNorbOptions {
  dir?: string;
  /** Side of the stored, downsampled images (the paper: 48). */
  size?: number;
  /** Side of the crops the model sees (the paper: 32). */
  crop?: number;
  /** 1: the first camera only (the paper's model); 2: both as channels. */
  channels?: 1 | 2;
  viewpoints?: NorbViewpoints;
}

/** A dat matrix holds stereo pairs of bytes, [N, 2, height, width]. */
function checkDatMatrix(dat: NorbMatrix, source: string): void {
  if (dat.dtype !== 'uint8' || dat.dims.length !== 4 || dat.dims[1] !== 2) throw new Error(`${source}: expected a byte matrix [N, 2, height, width], got ${dat.dtype} [${dat.dims.join(', ')}]`);
}

/** Read and check the dat/cat/info matrices of a split. */
export function readSmallNorbFiles(dir: string, split: Split): { dat: NorbMatrix; cat: NorbMatrix; info: NorbMatrix; paths: string[] } {
  const paths = (['dat', 'cat', 'info'] as const).map((k) => findFile(dir, smallNorbFileName(split, k)));
  const [dat, cat, info] = paths.map((p) => parseNorbMatrix(readMaybeGzip(p), p));
  checkDatMatrix(dat, paths[0]);
  if (cat.dtype !== 'int32' || cat.dims.length !== 1) throw new Error(`${paths[1]}: expected an int32 matrix [N], got ${cat.dtype} [${cat.dims.join(', ')}]`);
  if (info.dtype !== 'int32' || info.dims.length !== 2 || info.dims[1] !== 4) throw new Error(`${paths[2]}: expected an int32 matrix [N, 4], got ${info.dtype} [${info.dims.join(', ')}]`);
  const n = dat.dims[0];
  if (cat.dims[0] !== n || info.dims[0] !== n) throw new Error(`${dir}: ${n} images but ${cat.dims[0]} categories and ${info.dims[0]} info rows`);
  for (let i = 0; i < n; i++) {
    const c = cat.data[i];
    if (!(c >= 0 && c < SMALLNORB_CLASSES.length)) throw new Error(`${paths[1]}: category ${c} of image ${i} is outside 0..${SMALLNORB_CLASSES.length - 1}`);
  }
  return { dat, cat, info, paths };
}

/** Draws one model input from a stored image; with an Rng a random training view, else the test view. */
export type NorbView = (src: Uint8Array, dst: Float32Array, dstOffset: number, rng?: Rng) => void;

/**
 * The paper's input pipeline on stored size x size images: standardise with
 * the whole image's mean and standard deviation, take a crop x crop window
 * (random in training, central in the test), and in training change
 * brightness by up to +-32/255 of the pixel range and contrast by a factor
 * in [0.5, 1.5] about the crop's mean. The jitter is applied after the
 * standardisation statistics are taken, so it survives them. The values are
 * standardised, not in [0, 1].
 */
export function smallNorbView(size: number, crop: number, channels: number): NorbView {
  if (crop > size) throw new Error(`smallNORB: a ${crop}x${crop} crop does not fit ${size}x${size} images`);
  const n = size * size * channels;
  return (src, dst, off, rng) => {
    let sum = 0;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      const v = src[i] / 255;
      sum += v;
      sq += v * v;
    }
    const mean = sum / n;
    // As TensorFlow's per_image_standardization: the deviation is kept at
    // least 1/sqrt(n) so that a flat image does not divide by zero.
    const std = Math.max(Math.sqrt(Math.max(0, sq / n - mean * mean)), 1 / Math.sqrt(n));
    const y0 = rng ? rng.int(0, size - crop) : Math.floor((size - crop) / 2);
    const x0 = rng ? rng.int(0, size - crop) : Math.floor((size - crop) / 2);
    const contrast = rng ? rng.uniform(0.5, 1.5) : 1;
    const brightness = rng ? rng.uniform(-32 / 255, 32 / 255) : 0;
    let cropMean = 0;
    if (rng) {
      for (let y = 0; y < crop; y++) for (let x = 0; x < crop * channels; x++) cropMean += src[((y0 + y) * size + x0) * channels + x] / 255;
      cropMean /= crop * crop * channels;
    }
    for (let y = 0; y < crop; y++) {
      const s = ((y0 + y) * size + x0) * channels;
      const d = off + y * crop * channels;
      for (let x = 0; x < crop * channels; x++) {
        let v = src[s + x] / 255;
        if (rng) v = (v - cropMean) * contrast + cropMean + brightness;
        dst[d + x] = (v - mean) / std;
      }
    }
  };
}

/** Downsample the first `channels` planes of a [2, h, w] stereo pair to size x size x channels bytes (area averaging). */
function downsamplePair(pair: Uint8Array, h: number, w: number, size: number, channels: number, out: Uint8Array, outOffset: number): void {
  for (let c = 0; c < channels; c++) {
    const plane = Float32Array.from(pair.subarray(c * h * w, (c + 1) * h * w));
    const small = resizeArea(plane, w, h, size, size);
    for (let i = 0; i < size * size; i++) out[outOffset + i * channels + c] = Math.min(255, Math.max(0, Math.round(small[i])));
  }
}

/** Whether `bytes` start like a NORB binary matrix of bytes (a smallNORB dat file). */
export function isNorbByteMatrix(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) === NORB_MAGIC.uint8;
}

/** The stereo pair `index` of a dat matrix [N, 2, h, w]: its two h x w planes. */
export function norbPair(dat: NorbMatrix, index: number, source = 'NORB matrix'): { planes: Uint8Array; height: number; width: number } {
  checkDatMatrix(dat, source);
  const [n, , h, w] = dat.dims;
  if (!(Number.isInteger(index) && index >= 0 && index < n)) throw new Error(`index ${index} is out of range: ${source} holds ${n} pairs`);
  return { planes: (dat.data as Uint8Array).subarray(index * 2 * h * w, (index + 1) * 2 * h * w), height: h, width: w };
}

/**
 * One picture as a model trained on smallNORB sees it in testing: the first
 * `channels` of its planes (h x w bytes each, channel-major: a stereo pair
 * or a photograph's gray levels) downsampled to size x size like the stored
 * images, then the centre crop, standardised.
 */
export function smallNorbTestInput(planes: Uint8Array, h: number, w: number, channels: number, crop = SMALLNORB_CROP, size = SMALLNORB_SIZE): Float32Array {
  if (planes.length < channels * h * w) throw new Error(`smallNORB input: ${channels} planes of ${h}x${w} need ${channels * h * w} bytes, got ${planes.length}`);
  const stored = new Uint8Array(size * size * channels);
  downsamplePair(planes, h, w, size, channels, stored, 0);
  const out = new Float32Array(crop * crop * channels);
  smallNorbView(size, crop, channels)(stored, out, 0);
  return out;
}

/**
 * A smallNORB split as a dataset of crop x crop images (what the model sees),
 * drawn from stored size x size downsampled images by the paper's pipeline.
 */
export function loadSmallNorb(split: Split, options: SmallNorbOptions = {}): ImageDataset {
  const { size = SMALLNORB_SIZE, crop = SMALLNORB_CROP, channels = 1, viewpoints = 'all' } = options;
  const { images: stored, labels, count } = loadSmallNorbImages(split, options);
  const per = size * size * channels;
  const view = smallNorbView(size, crop, channels);
  return validateDataset({
    name: `smallnorb${viewpoints === 'all' ? '' : `-${viewpoints}`}-${split}`,
    images: new Uint8Array(0),
    render: (i, dst, offset, rng) => view(stored.subarray(i * per, (i + 1) * per), dst, offset, rng),
    labels,
    count,
    height: crop,
    width: crop,
    channels,
    numClasses: SMALLNORB_CLASSES.length,
    classNames: SMALLNORB_CLASSES,
  });
}

/** The downsampled size x size images of a split (before cropping), for inspection and tests. */
export function loadSmallNorbImages(split: Split, options: SmallNorbOptions = {}): { images: Uint8Array; labels: Int32Array; count: number } {
  const { dir = smallNorbDir(), size = SMALLNORB_SIZE, channels = 1, viewpoints = 'all' } = options;
  const { dat, cat, info } = readSmallNorbFiles(dir, split);
  const [count, , h, w] = dat.dims;
  const keep = viewpointFilter(viewpoints);
  const per = size * size * channels;
  const out: number[] = [];
  for (let i = 0; i < count; i++) if (keep(info.data[i * 4 + 1], info.data[i * 4 + 2])) out.push(i);
  const images = new Uint8Array(out.length * per);
  out.forEach((i, k) => downsamplePair((dat.data as Uint8Array).subarray(i * 2 * h * w, (i + 1) * 2 * h * w), h, w, size, channels, images, k * per));
  return { images, labels: Int32Array.from(out, (i) => cat.data[i]), count: out.length };
}
