/** Small smallNORB-format files for tests (the real files cannot be downloaded here). */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodeNorbMatrix, smallNorbFileName } from '../src/data/smallnorb.js';

/** Write a fake split: N stereo pairs of h x w, pixel values from `pixel`. */
export function writeFakeSmallNorb(dir: string, split: 'train' | 'test', n: number, h: number, w: number, options: { gzip?: boolean; pixel?: (i: number, cam: number, y: number, x: number) => number } = {}): { cat: number[]; info: number[][] } {
  const { gzip = false, pixel = (i, cam, y, x) => (i * 37 + cam * 101 + y * 3 + x * 5) % 256 } = options;
  const dat = new Uint8Array(n * 2 * h * w);
  for (let i = 0; i < n; i++) for (let c = 0; c < 2; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) dat[((i * 2 + c) * h + y) * w + x] = pixel(i, c, y, x);
  const cat = Array.from({ length: n }, (_, i) => i % 5);
  // instance, elevation 0-8, azimuth 0-34 (even), lighting 0-5
  const info = Array.from({ length: n }, (_, i) => [i % 10, i % 9, (2 * i) % 36, i % 6]);
  const put = (kind: 'dat' | 'cat' | 'info', bytes: Uint8Array) => writeFileSync(join(dir, smallNorbFileName(split, kind) + (gzip ? '.gz' : '')), gzip ? gzipSync(bytes) : bytes);
  put('dat', encodeNorbMatrix('uint8', [n, 2, h, w], dat));
  put('cat', encodeNorbMatrix('int32', [n], cat));
  put('info', encodeNorbMatrix('int32', [n, 4], info.flat()));
  return { cat, info };
}

