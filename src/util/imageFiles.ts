/**
 * Reading and writing images (Node only): PNG through pngjs, PGM (P2 and P5)
 * directly. Pixels come back as floats in [0, 1], channels last.
 */
import { readFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { writeFileAtomic } from './files.js';

export interface RasterImage {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Float32Array;
}

export function parsePgm(bytes: Uint8Array, source: string): RasterImage {
  const text = Buffer.from(bytes.subarray(0, Math.min(bytes.length, 4096))).toString('latin1');
  const magic = text.slice(0, 2);
  if (magic !== 'P2' && magic !== 'P5') throw new Error(`${source}: not a PGM file (magic ${JSON.stringify(magic)})`);
  // Header tokens: magic, width, height, maxval, with # comments.
  const tokens: string[] = [];
  let pos = 2;
  while (tokens.length < 3 && pos < text.length) {
    const ch = text[pos];
    if (ch === '#') {
      while (pos < text.length && text[pos] !== '\n') pos++;
    } else if (/\s/.test(ch)) {
      pos++;
    } else {
      let end = pos;
      while (end < text.length && !/\s/.test(text[end])) end++;
      tokens.push(text.slice(pos, end));
      pos = end;
    }
  }
  const [width, height, maxval] = tokens.map(Number);
  if (!(width > 0 && height > 0 && maxval > 0 && maxval < 65536)) throw new Error(`${source}: bad PGM header`);
  const n = width * height;
  const data = new Float32Array(n);
  if (magic === 'P5') {
    const start = pos + 1;
    const bpp = maxval > 255 ? 2 : 1;
    if (bytes.length < start + n * bpp) throw new Error(`${source}: truncated PGM data`);
    for (let i = 0; i < n; i++) data[i] = (bpp === 2 ? (bytes[start + 2 * i] << 8) | bytes[start + 2 * i + 1] : bytes[start + i]) / maxval;
  } else {
    const rest = Buffer.from(bytes).toString('latin1').slice(pos).replace(/#[^\n]*/g, '').trim().split(/\s+/).map(Number);
    if (rest.length < n || rest.slice(0, n).some((v) => !Number.isFinite(v))) throw new Error(`${source}: truncated or corrupt PGM data`);
    for (let i = 0; i < n; i++) data[i] = rest[i] / maxval;
  }
  return { width, height, channels: 1, data };
}

export function parsePng(bytes: Uint8Array, source: string): RasterImage {
  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(bytes));
  } catch (e) {
    throw new Error(`${source}: not a readable PNG (${(e as Error).message})`);
  }
  const { width, height, data } = png;
  // Grayscale when every pixel has R = G = B; alpha is composited on black.
  let gray = true;
  for (let i = 0; i < width * height && gray; i++) if (data[4 * i] !== data[4 * i + 1] || data[4 * i] !== data[4 * i + 2]) gray = false;
  const channels = gray ? 1 : 3;
  const out = new Float32Array(width * height * channels);
  for (let i = 0; i < width * height; i++) {
    const a = data[4 * i + 3] / 255;
    for (let c = 0; c < channels; c++) out[i * channels + c] = (data[4 * i + c] / 255) * a;
  }
  return { width, height, channels, data: out };
}

/** Read a PNG or PGM file (by content, not extension). */
export function readImage(path: string): RasterImage {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error((e as NodeJS.ErrnoException).code === 'ENOENT' ? `image not found: ${path}` : `cannot read ${path}: ${(e as Error).message}`);
  }
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return parsePng(bytes, path);
  if (bytes.length >= 2 && bytes[0] === 0x50 && (bytes[1] === 0x32 || bytes[1] === 0x35)) return parsePgm(bytes, path);
  throw new Error(`${path}: not a PNG or PGM image`);
}

/** Write grayscale or RGB floats in [0, 1] as a PNG. */
export function writePng(path: string, img: RasterImage): void {
  const png = new PNG({ width: img.width, height: img.height });
  for (let i = 0; i < img.width * img.height; i++) {
    for (let c = 0; c < 3; c++) {
      const v = img.channels === 1 ? img.data[i] : img.data[i * 3 + c];
      png.data[4 * i + c] = Math.round(Math.min(1, Math.max(0, v)) * 255);
    }
    png.data[4 * i + 3] = 255;
  }
  writeFileAtomic(path, PNG.sync.write(png));
}

/** Convert to one channel by averaging. */
export function toGray(img: RasterImage): Float32Array {
  if (img.channels === 1) return img.data;
  const out = new Float32Array(img.width * img.height);
  for (let i = 0; i < out.length; i++) out[i] = (img.data[3 * i] + img.data[3 * i + 1] + img.data[3 * i + 2]) / 3;
  return out;
}
