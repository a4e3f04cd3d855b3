/**
 * affNIST (Tieleman 2013): MNIST test digits under random affine transforms on
 * 40x40, distributed as MAT-files holding a struct `affNISTdata` with fields
 * `image` (1600 x N, one image per column) and `label_int` (1 x N). Node only.
 * Users who have the files evaluate on them with
 *   capsnet eval --dataset affnist --affnist FILE.mat
 */
import { readFileSync } from 'node:fs';
import type { ImageDataset } from './dataset.js';
import { validateDataset } from './dataset.js';
import { parseMat, type MatNumeric, type MatValue } from './matfile.js';

export interface AffnistOptions {
  /** The images' 1600 values are rows of the 40x40 image (default); transposed when true. */
  transpose?: boolean;
}

function numeric(v: MatValue | undefined, what: string, source: string): MatNumeric {
  if (!v || v.kind !== 'numeric') throw new Error(`${source}: affNISTdata.${what} is missing or not numeric`);
  return v;
}

export function parseAffnist(bytes: Uint8Array, source: string, options: AffnistOptions = {}): ImageDataset {
  const vars = parseMat(bytes, source);
  const root = vars.affNISTdata;
  if (!root || root.kind !== 'struct' || root.elements.length < 1) throw new Error(`${source}: no affNISTdata struct (variables: ${Object.keys(vars).join(', ') || 'none'})`);
  const rec = root.elements[0];
  const image = numeric(rec.image, 'image', source);
  const labelsV = numeric(rec.label_int, 'label_int', source);
  const [pixels, count] = image.dims;
  const side = Math.round(Math.sqrt(pixels));
  if (image.dims.length !== 2 || side * side !== pixels) throw new Error(`${source}: affNISTdata.image must be (side*side) x N, got [${image.dims}]`);
  if (labelsV.data.length !== count) throw new Error(`${source}: ${count} images but ${labelsV.data.length} labels`);
  // Pixels may be stored as bytes or as floats in [0, 1] or [0, 255].
  let max = 0;
  for (let i = 0; i < image.data.length; i++) max = Math.max(max, Number(image.data[i]));
  const scale = max <= 1 ? 255 : 1;
  const images = new Uint8Array(count * pixels);
  for (let n = 0; n < count; n++) {
    for (let p = 0; p < pixels; p++) {
      const q = options.transpose ? (p % side) * side + Math.floor(p / side) : p;
      images[n * pixels + q] = Math.round(Number(image.data[n * pixels + p]) * scale);
    }
  }
  return validateDataset({
    name: source,
    images,
    labels: Int32Array.from(labelsV.data as ArrayLike<number>),
    count,
    height: side,
    width: side,
    channels: 1,
    numClasses: 10,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
  });
}

export function loadAffnist(path: string, options: AffnistOptions = {}): ImageDataset {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch {
    throw new Error(`affNIST file not found: ${path}`);
  }
  return parseAffnist(bytes, path, options);
}
