/**
 * smallNORB: the binary matrix reader on files the tests write (every element
 * type, gzip, malformed headers and data), the split loader (downsampling,
 * labels, viewpoint splits) and the paper's crop / jitter / standardisation
 * pipeline.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeBatch } from '../src/data/batches.js';
import { encodeNorbMatrix, loadSmallNorb, loadSmallNorbImages, parseNorbMatrix, smallNorbFileName, smallNorbView } from '../src/data/smallnorb.js';
import { writeFakeSmallNorb } from './norbFiles.js';
import { Rng } from '../src/util/rng.js';

test('NORB matrices: every element type round-trips; rank < 3 still stores three dimensions', () => {
  const cases: [Parameters<typeof encodeNorbMatrix>[0], number[], number[]][] = [
    ['uint8', [2, 3], [0, 1, 2, 253, 254, 255]],
    ['int32', [3], [-5, 0, 2147483647]],
    ['int16', [2, 1, 2], [-32768, 0, 1, 32767]],
    ['float32', [1, 2, 1, 2], [0.5, -1.25, 3 * 2 ** 30, 0]],
    ['float64', [2], [Math.PI, -1e-300]],
  ];
  for (const [dtype, dims, values] of cases) {
    const bytes = encodeNorbMatrix(dtype, dims, values);
    const m = parseNorbMatrix(bytes);
    assert.equal(m.dtype, dtype);
    assert.deepEqual(m.dims, dims);
    assert.deepEqual(Array.from(m.data), values);
    assert.equal(bytes.length, 8 + 4 * Math.max(3, dims.length) + values.length * { uint8: 1, int16: 2, int32: 4, float32: 4, float64: 8 }[dtype]);
  }
  // The header is little-endian: a byte matrix starts 55 4C 3D 1E.
  assert.deepEqual(Array.from(encodeNorbMatrix('uint8', [1], [7]).subarray(0, 8)), [0x55, 0x4c, 0x3d, 0x1e, 1, 0, 0, 0]);
});

test('malformed NORB matrices are refused with a clear message', () => {
  const good = encodeNorbMatrix('int32', [2, 2], [1, 2, 3, 4]);
  const bad = (mutate: (b: Uint8Array) => Uint8Array) => () => parseNorbMatrix(mutate(good.slice()), 'x.mat');
  assert.throws(bad((b) => b.subarray(0, 6)), /x.mat: too short for a NORB matrix header/);
  assert.throws(bad((b) => { b[0] = 0x99; return b; }), /x.mat: bad magic number 0x1e3d4c99/);
  assert.throws(bad((b) => { b[4] = 0; return b; }), /rank must be between 1 and 16, got 0/);
  assert.throws(bad((b) => { b[4] = 40; return b; }), /rank must be between 1 and 16, got 40/);
  assert.throws(bad((b) => b.subarray(0, 14)), /truncated header \(needs 20 bytes for 3 dimensions/);
  assert.throws(bad((b) => { new DataView(b.buffer).setInt32(12, -1, true); return b; }), /dimension 1 is -1/);
  assert.throws(bad((b) => b.subarray(0, b.length - 1)), /truncated: dimensions \[2, 2\] need 36 bytes, file has 35/);
  assert.throws(bad((b) => Uint8Array.from([...b, 0, 0])), /2 unexpected bytes after the data/);
});

test('loading a split: 2x area downsampling, labels, the first camera or both, gzip, viewpoint splits', () => {
  const dir = mkdtempSync(join(tmpdir(), 'capsnet-norb-'));
  const { cat } = writeFakeSmallNorb(dir, 'train', 9, 8, 8, { gzip: true });
  const ds = loadSmallNorbImages('train', { dir, size: 4 });
  assert.equal(ds.count, 9);
  assert.deepEqual(Array.from(ds.labels), cat);
  const crops = loadSmallNorb('train', { dir, size: 4, crop: 2 });
  assert.deepEqual([crops.count, crops.height, crops.width, crops.channels, crops.numClasses], [9, 2, 2, 1, 5]);
  // Pixel (y, x) of the 4x4 image is the mean of the 2x2 block of camera 0.
  const px = (i: number, c: number, y: number, x: number) => (i * 37 + c * 101 + y * 3 + x * 5) % 256;
  for (const [i, y, x] of [[0, 0, 0], [3, 2, 1], [8, 3, 3]]) {
    const mean = (px(i, 0, 2 * y, 2 * x) + px(i, 0, 2 * y + 1, 2 * x) + px(i, 0, 2 * y, 2 * x + 1) + px(i, 0, 2 * y + 1, 2 * x + 1)) / 4;
    assert.equal(ds.images[i * 16 + y * 4 + x], Math.round(mean), `image ${i} pixel (${y}, ${x})`);
  }
  const stereo = loadSmallNorbImages('train', { dir, size: 4, channels: 2 });
  assert.equal(stereo.images[1], Math.round((px(0, 1, 0, 0) + px(0, 1, 1, 0) + px(0, 1, 0, 1) + px(0, 1, 1, 1)) / 4), 'channel 1 is the second camera');
  // Viewpoints: elevation i % 9 <= 2 is familiar; azimuth (2i) % 36 in {0, 2, 4, 30, 32, 34}.
  assert.equal(loadSmallNorb('train', { dir, size: 4, crop: 2, viewpoints: 'elevation-familiar' }).count, 3);
  assert.equal(loadSmallNorb('train', { dir, size: 4, crop: 2, viewpoints: 'elevation-novel' }).count, 6);
  assert.equal(loadSmallNorb('train', { dir, size: 4, crop: 2, viewpoints: 'azimuth-familiar' }).count, 3);
  assert.throws(() => loadSmallNorb('test', { dir }), /smallnorb-5x01235x9x18x6x2x96x96-testing-dat.mat\(.gz\) not found in .*NYU's smallNORB page/);
});

test('split files that do not fit together are refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'capsnet-norb-bad-'));
  writeFakeSmallNorb(dir, 'test', 4, 4, 4);
  writeFileSync(join(dir, smallNorbFileName('test', 'cat')), encodeNorbMatrix('int32', [3], [0, 1, 2]));
  assert.throws(() => loadSmallNorb('test', { dir, size: 2, crop: 2 }), /4 images but 3 categories and 4 info rows/);
  writeFileSync(join(dir, smallNorbFileName('test', 'cat')), encodeNorbMatrix('int32', [4], [0, 1, 7, 2]));
  assert.throws(() => loadSmallNorb('test', { dir, size: 2, crop: 2 }), /category 7 of image 2 is outside 0..4/);
  writeFileSync(join(dir, smallNorbFileName('test', 'cat')), encodeNorbMatrix('uint8', [4], [0, 1, 2, 3]));
  assert.throws(() => loadSmallNorb('test', { dir, size: 2, crop: 2 }), /expected an int32 matrix \[N\], got uint8/);
  writeFileSync(join(dir, smallNorbFileName('test', 'dat')), encodeNorbMatrix('uint8', [4, 3, 2, 2], new Array(48).fill(0)));
  assert.throws(() => loadSmallNorb('test', { dir, size: 2, crop: 2 }), /expected a byte matrix \[N, 2, height, width\]/);
});

test('the paper\'s pipeline: centre crop standardised for testing, random crops with brightness and contrast for training', () => {
  const size = 8;
  const view = smallNorbView(size, 4, 1);
  const t = { apply: view };
  const rng = new Rng(3);
  const src = Uint8Array.from({ length: size * size }, () => rng.int(0, 255));
  let mean = 0;
  for (const v of src) mean += v / 255;
  mean /= src.length;
  let varSum = 0;
  for (const v of src) varSum += (v / 255 - mean) ** 2;
  const std = Math.sqrt(varSum / src.length);
  const testView = new Float32Array(16);
  t.apply(src, testView, 0);
  // Centre crop: rows and columns 2..5, standardised with the whole image's statistics.
  for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) assert.ok(Math.abs(testView[y * 4 + x] - (src[(y + 2) * size + x + 2] / 255 - mean) / std) < 1e-5);
  // Training views differ from draw to draw, are reproducible from the seed,
  // and are crops of the standardised image up to an affine jitter.
  const a = new Float32Array(16);
  const b = new Float32Array(16);
  t.apply(src, a, 0, new Rng(5));
  t.apply(src, b, 0, new Rng(5));
  assert.deepEqual(a, b);
  const views = Array.from({ length: 20 }, (_, k) => {
    const v = new Float32Array(16);
    t.apply(src, v, 0, new Rng(100 + k));
    return v;
  });
  assert.ok(views.some((v) => v.some((x, i) => Math.abs(x - views[0][i]) > 1e-3)), 'random views differ');
  // A flat image does not divide by zero.
  const flat = new Float32Array(16);
  t.apply(new Uint8Array(size * size).fill(128), flat, 0, new Rng(1));
  assert.ok(flat.every(Number.isFinite));
  // Batches draw through the view: training batches (with an Rng) are random views, test batches centre crops.
  const ds = { name: 'x', images: new Uint8Array(0), render: (_i: number, dst: Float32Array, off: number, r?: Rng) => view(src, dst, off, r), labels: Int32Array.of(0), count: 1, height: 4, width: 4, channels: 1, numClasses: 5 };
  assert.deepEqual(makeBatch(ds, Int32Array.of(0)).x, testView);
  assert.notDeepEqual(makeBatch(ds, Int32Array.of(0), 2, new Rng(9)).x, testView);
  assert.throws(() => smallNorbView(4, 8, 1), /a 8x8 crop does not fit 4x4 images/);
});
