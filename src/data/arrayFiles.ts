/**
 * Datasets users already have as arrays (Node only): CSV files in the common
 * `label,pixel0,pixel1,...` layout (with or without a header row), NumPy
 * `.npy` files and `.npz` archives (x_train, y_train, x_test, y_test), uint8
 * or float, NHWC or NHW. The .npy format is a short text header and raw
 * little-endian values, read here directly; .npz is a zip of .npy files,
 * opened with fflate.
 *
 * Pixels become bytes 0-255 like every other dataset: uint8 as they are,
 * floats in [0, 1] scaled by 255, floats in [0, 255] rounded. NaN, negative
 * or larger values are refused, and so are labels that are not whole numbers
 * from 0, or test labels the training set does not have.
 */
import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';

/** Images as bytes with their labels, before they become a dataset. */
export interface ArraySplit {
  images: Uint8Array;
  labels: Int32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
}

function readBytes(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error((e as NodeJS.ErrnoException).code === 'ENOENT' ? `file not found: ${path}` : `cannot read ${path}: ${(e as Error).message}`);
  }
}

/** Pixel values to bytes: [0, 1] floats are scaled, [0, 255] values rounded; NaN and values outside are errors naming `source`. */
export function pixelsToBytes(values: ArrayLike<number>, source: string): Uint8Array {
  let max = 0;
  let fractional = false;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isNaN(v)) throw new Error(`${source}: NaN at value ${i}`);
    if (!(v >= 0 && v <= 255)) throw new Error(`${source}: pixel value ${v} at value ${i} is outside 0-255`);
    if (v > max) max = v;
    if (!fractional && v !== Math.floor(v)) fractional = true;
  }
  const scale = max <= 1 && fractional ? 255 : 1;
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Math.round(values[i] * scale);
  return out;
}

/** Labels to int32: whole numbers from 0, else an error naming `source`. */
export function labelsToInt(values: ArrayLike<number>, source: string): Int32Array {
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!(Number.isInteger(v) && v >= 0 && v < 2 ** 31)) throw new Error(`${source}: label ${v} of example ${i} is out of range (labels are whole numbers from 0)`);
    out[i] = v;
  }
  return out;
}

/** Side of a square image of `pixels` values, gray (s*s) or RGB (s*s*3). */
function squareShape(pixels: number, source: string): [number, number, number] {
  const s1 = Math.round(Math.sqrt(pixels));
  if (s1 * s1 === pixels) return [s1, s1, 1];
  const s3 = Math.round(Math.sqrt(pixels / 3));
  if (3 * s3 * s3 === pixels) return [s3, s3, 3];
  throw new Error(`${source}: ${pixels} pixel values per row make no square image (side*side gray or side*side*3 RGB)`);
}

/** A CSV file: one image per row, the label first. A first row that is not numeric is a header. */
export function parseCsv(text: string, source: string): ArraySplit {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new Error(`${source}: empty CSV file`);
  const header = lines[0].split(',').some((f) => f.trim() !== '' && !Number.isFinite(Number(f)) && !/^nan$/i.test(f.trim()));
  const rows = header ? lines.slice(1) : lines;
  if (rows.length === 0) throw new Error(`${source}: CSV file has a header but no rows`);
  const width = rows[0].split(',').length;
  if (width < 2) throw new Error(`${source}: expected label,pixel0,pixel1,... but row 1 has ${width} field`);
  const pixels = width - 1;
  const labels = new Float64Array(rows.length);
  const values = new Float32Array(rows.length * pixels);
  rows.forEach((row, r) => {
    const fields = row.split(',');
    const line = r + 1 + (header ? 1 : 0);
    if (fields.length !== width) throw new Error(`${source}: line ${line} has ${fields.length} fields, expected ${width}`);
    labels[r] = fields[0].trim() === '' ? NaN : Number(fields[0]);
    if (!Number.isFinite(labels[r])) throw new Error(`${source}: line ${line}: label '${fields[0]}' is not a number`);
    for (let j = 1; j < width; j++) {
      const f = fields[j].trim();
      const v = /^nan$/i.test(f) ? NaN : f === '' ? NaN : Number(f);
      if (Number.isNaN(v)) throw new Error(`${source}: line ${line}: NaN or empty pixel value in column ${j + 1}`);
      if (!Number.isFinite(v)) throw new Error(`${source}: line ${line}: pixel value '${fields[j]}' is not a number`);
      values[r * pixels + j - 1] = v;
    }
  });
  const [height, w, channels] = squareShape(pixels, source);
  return { images: pixelsToBytes(values, source), labels: labelsToInt(labels, source), count: rows.length, height, width: w, channels };
}

export function readCsv(path: string): ArraySplit {
  return parseCsv(Buffer.from(readBytes(path)).toString('utf8'), path);
}

export interface NpyArray {
  shape: number[];
  values: ArrayLike<number>;
}

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];

/** One .npy array: little-endian (or byte) integers and floats, C order. */
export function parseNpy(bytes: Uint8Array, source: string): NpyArray {
  if (bytes.length < 10 || NPY_MAGIC.some((b, i) => bytes[i] !== b)) throw new Error(`${source}: not a NumPy .npy file`);
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = Buffer.from(bytes.subarray(start, start + headerLen)).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`${source}: bad .npy header`);
  if (fortran === 'True') throw new Error(`${source}: Fortran-order arrays are not supported (save with np.ascontiguousarray)`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLen;
  const types: Record<string, [number, (o: number) => number]> = {
    '|u1': [1, (o) => dv.getUint8(o)], '|i1': [1, (o) => dv.getInt8(o)], '|b1': [1, (o) => dv.getUint8(o)],
    '<u1': [1, (o) => dv.getUint8(o)], '<i1': [1, (o) => dv.getInt8(o)],
    '<u2': [2, (o) => dv.getUint16(o, true)], '<i2': [2, (o) => dv.getInt16(o, true)],
    '<u4': [4, (o) => dv.getUint32(o, true)], '<i4': [4, (o) => dv.getInt32(o, true)],
    '<u8': [8, (o) => Number(dv.getBigUint64(o, true))], '<i8': [8, (o) => Number(dv.getBigInt64(o, true))],
    '<f4': [4, (o) => dv.getFloat32(o, true)], '<f8': [8, (o) => dv.getFloat64(o, true)],
  };
  const t = types[descr];
  if (!t) throw new Error(`${source}: unsupported dtype '${descr}' (expected uint8, integers or float32/float64, little-endian)`);
  const [size, get] = t;
  if (bytes.length < dataStart + n * size) throw new Error(`${source}: truncated .npy data (${bytes.length - dataStart} bytes for ${n} values of ${size})`);
  if (size === 1 && descr.endsWith('u1')) return { shape, values: bytes.subarray(dataStart, dataStart + n) };
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = get(dataStart + i * size);
  return { shape, values };
}

/** Images (NHW or NHWC, 1 or 3 channels) and labels ([N]) as an ArraySplit. */
export function arraySplit(x: NpyArray, y: NpyArray, xName: string, yName: string): ArraySplit {
  if (x.shape.length !== 3 && x.shape.length !== 4) throw new Error(`${xName}: images must be NHW or NHWC, got shape (${x.shape.join(', ')})`);
  const [count, height, width, channels = 1] = x.shape;
  if (channels !== 1 && channels !== 3) throw new Error(`${xName}: images must have 1 or 3 channels (NHWC), got ${channels}`);
  if (y.shape.length !== 1 && !(y.shape.length === 2 && y.shape[1] === 1)) throw new Error(`${yName}: labels must have shape (N,), got (${y.shape.join(', ')})`);
  if (y.shape[0] !== count) throw new Error(`${xName} has ${count} images but ${yName} has ${y.shape[0]} labels`);
  return { images: x.values instanceof Uint8Array ? x.values : pixelsToBytes(x.values, xName), labels: labelsToInt(y.values, yName), count, height, width, channels };
}

export const NPY_NAMES = ['x_train', 'y_train', 'x_test', 'y_test'] as const;

/** The four arrays of a .npz archive. */
export function readNpz(path: string): { train: ArraySplit; test: ArraySplit } {
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(readBytes(path));
  } catch (e) {
    throw new Error(`${path}: not a readable .npz archive (${(e as Error).message})`);
  }
  const get = (name: string) => {
    const bytes = files[`${name}.npy`];
    if (!bytes) throw new Error(`${path}: no array '${name}' (expected ${NPY_NAMES.join(', ')}; it has ${Object.keys(files).map((k) => k.replace(/\.npy$/, '')).join(', ') || 'none'})`);
    return parseNpy(bytes, `${path}:${name}`);
  };
  return {
    train: arraySplit(get('x_train'), get('y_train'), `${path}:x_train`, `${path}:y_train`),
    test: arraySplit(get('x_test'), get('y_test'), `${path}:x_test`, `${path}:y_test`),
  };
}

/** x_train.npy, y_train.npy, x_test.npy and y_test.npy in one folder. */
export function readNpyFolder(dir: string): { train: ArraySplit; test: ArraySplit } {
  const get = (name: string) => {
    const p = `${dir}/${name}.npy`;
    return parseNpy(readBytes(p), p);
  };
  return {
    train: arraySplit(get('x_train'), get('y_train'), `${dir}/x_train.npy`, `${dir}/y_train.npy`),
    test: arraySplit(get('x_test'), get('y_test'), `${dir}/x_test.npy`, `${dir}/y_test.npy`),
  };
}
