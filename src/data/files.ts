/**
 * Reading dataset files from disk (Node only): gzip is detected by its magic
 * bytes, so `.gz` and plain IDX files both work.
 */
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { ImageDataset } from './dataset.js';
import { validateDataset } from './dataset.js';
import { parseIdx } from './idx.js';

export function readMaybeGzip(path: string): Uint8Array {
  if (!existsSync(path)) throw new Error(`file not found: ${path}`);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read ${path}: ${(e as Error).message}`);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      return gunzipSync(bytes);
    } catch (e) {
      throw new Error(`${path}: corrupt gzip data (${(e as Error).message})`);
    }
  }
  return bytes;
}

/**
 * An IDX image file [count, height, width] or [count, height, width, channels]
 * and its IDX label file [count] as a dataset.
 */
export function loadIdxPair(imagesPath: string, labelsPath: string, options: { name?: string; numClasses?: number; classNames?: string[] } = {}): ImageDataset {
  const images = parseIdx(readMaybeGzip(imagesPath), imagesPath);
  const labels = parseIdx(readMaybeGzip(labelsPath), labelsPath);
  if (images.dtype !== 'uint8') throw new Error(`${imagesPath}: images must be unsigned bytes (IDX type 0x08), got ${images.dtype}`);
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new Error(`${imagesPath}: images must have 3 or 4 dimensions [count, height, width(, channels)], got [${images.dims.join(', ')}]`);
  }
  if (labels.dims.length !== 1) throw new Error(`${labelsPath}: labels must have one dimension, got [${labels.dims.join(', ')}]`);
  const [count, height, width, channels = 1] = images.dims;
  if (labels.dims[0] !== count) throw new Error(`${imagesPath} has ${count} images but ${labelsPath} has ${labels.dims[0]} labels`);
  const labelArr = Int32Array.from(labels.data as ArrayLike<number>);
  let maxLabel = 0;
  for (const l of labelArr) maxLabel = Math.max(maxLabel, l);
  const numClasses = options.numClasses ?? Math.max(maxLabel + 1, 2);
  return validateDataset({
    name: options.name ?? imagesPath,
    images: images.data as Uint8Array,
    labels: labelArr,
    count,
    height,
    width,
    channels,
    numClasses,
    classNames: options.classNames,
  });
}
