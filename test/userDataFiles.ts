/**
 * Test data written as users have it, from real MNIST and Fashion-MNIST
 * images: folders of PNG and JPEG pictures (gray, or RGB tinted by class so
 * that colour carries information), CSV rows and NumPy arrays.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { ImageDataset } from '../src/data/dataset.js';

/** Class folder names with spaces, capitals and non-ASCII letters. */
export const ODD_CLASS_NAMES = ['Zero digit', 'één', 'Ünïcode drei', 'vier 4'];

/** Tint of class k: RGB multipliers, distinct per class. */
export function classTint(k: number): [number, number, number] {
  return ([[1, 0.25, 0.25], [0.25, 1, 0.25], [0.25, 0.25, 1], [1, 1, 0.2]] as [number, number, number][])[k % 4];
}

export interface PictureOptions {
  format: 'png' | 'jpeg' | 'webp' | 'gif';
  colour: boolean;
  /** Side of the written picture (the 28x28 source is resized). */
  size?: number;
}

/** Image i of `ds` (one channel) as an encoded picture. */
export async function encodePicture(ds: ImageDataset, i: number, label: number, o: PictureOptions): Promise<Buffer> {
  const src = ds.images.subarray(i * ds.height * ds.width, (i + 1) * ds.height * ds.width);
  const c = o.colour ? 3 : 1;
  const raw = Buffer.alloc(src.length * c);
  const tint = classTint(label);
  for (let p = 0; p < src.length; p++) for (let k = 0; k < c; k++) raw[p * c + k] = o.colour ? Math.round(src[p] * tint[k]) : src[p];
  let img = sharp(raw, { raw: { width: ds.width, height: ds.height, channels: c } });
  if (o.size && o.size !== ds.width) img = img.resize(o.size, o.size, { fit: 'fill' });
  const out = o.format === 'png' ? img.png() : o.format === 'jpeg' ? img.jpeg({ quality: 92 }) : o.format === 'webp' ? img.webp({ quality: 95 }) : img.gif();
  return out.toBuffer();
}

/**
 * Write the first `perClass` images of each of the first `classes` labels of
 * `ds` under dir/<name>/ (names from `names`), returning the paths by class.
 */
export async function writeClassFolders(dir: string, ds: ImageDataset, o: PictureOptions & { perClass: number; names?: string[]; classes?: number; skip?: number }): Promise<string[][]> {
  const names = o.names ?? ODD_CLASS_NAMES;
  const classes = o.classes ?? names.length;
  const written: string[][] = Array.from({ length: classes }, () => []);
  let seen = 0;
  for (let i = 0; i < ds.count && written.some((w) => w.length < o.perClass); i++) {
    const l = ds.labels[i];
    if (l >= classes || written[l].length >= o.perClass) continue;
    if (seen++ < (o.skip ?? 0)) continue;
    const folder = join(dir, names[l]);
    mkdirSync(folder, { recursive: true });
    const ext = o.format === 'jpeg' ? (written[l].length % 2 ? 'JPG' : 'jpeg') : o.format === 'png' ? (written[l].length % 2 ? 'PNG' : 'png') : o.format;
    const path = join(folder, `img ${i}.${ext}`);
    writeFileSync(path, await encodePicture(ds, i, l, o));
    written[l].push(path);
  }
  return written;
}

/** A .npy file of `values` with `shape` (uint8 or float32). */
export function npyBytes(values: Uint8Array | Float32Array | Int32Array, shape: number[]): Buffer {
  const descr = values instanceof Uint8Array ? '|u1' : values instanceof Float32Array ? '<f4' : '<i4';
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head);
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(values.buffer, values.byteOffset, values.byteLength)]);
}

/** `ds`'s first n images as CSV rows label,pixel0,... (with a header row when asked). */
export function csvText(ds: ImageDataset, n: number, header: boolean): string {
  const per = ds.height * ds.width * ds.channels;
  const rows: string[] = header ? [['label', ...Array.from({ length: per }, (_, j) => `pixel${j}`)].join(',')] : [];
  for (let i = 0; i < n; i++) rows.push([ds.labels[i], ...ds.images.subarray(i * per, (i + 1) * per)].join(','));
  return rows.join('\n') + '\n';
}
