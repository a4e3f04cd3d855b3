/**
 * The IDX reader on valid, truncated and corrupt files (written by the test),
 * the real MNIST files, batching with shifts, and MNIST-style preprocessing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodeIdx, parseIdx, makeBatch, Rng } from '../src/index.js';
import { loadData, loadFashionMnist, loadIdxPair, loadMnist } from '../src/node.js';
import { fashionMnistDir } from '../src/data/fashionMnist.js';
import { existsSync } from 'node:fs';
import { mnistPreprocess } from '../src/data/preprocess.js';
import { shiftImage } from '../src/data/augment.js';

const dir = mkdtempSync(join(tmpdir(), 'capsnet-idx-'));
function file(name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

const images = encodeIdx([3, 2, 2], Uint8Array.from([0, 255, 128, 1, 2, 3, 4, 5, 9, 8, 7, 6]));
const labels = encodeIdx([3], Uint8Array.from([1, 0, 2]));

test('parseIdx reads dimensions and data of a valid file', () => {
  const a = parseIdx(images);
  assert.equal(a.dtype, 'uint8');
  assert.deepEqual(a.dims, [3, 2, 2]);
  assert.deepEqual(Array.from(a.data), [0, 255, 128, 1, 2, 3, 4, 5, 9, 8, 7, 6]);
  // Big-endian int32 and float32 element types.
  const ints = new Uint8Array([0, 0, 0x0c, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xfe, 0, 0, 1, 0]);
  assert.deepEqual(Array.from(parseIdx(ints).data), [-2, 256]);
  const floats = new Uint8Array([0, 0, 0x0d, 1, 0, 0, 0, 1, 0x3f, 0xc0, 0, 0]);
  assert.deepEqual(Array.from(parseIdx(floats).data), [1.5]);
});

test('parseIdx names each kind of corruption', () => {
  assert.throws(() => parseIdx(new Uint8Array([0, 0, 8]), 'f'), /f: too short for an IDX header/);
  assert.throws(() => parseIdx(Uint8Array.from([1, 0, 8, 1, 0, 0, 0, 0]), 'f'), /bad IDX magic number 0x01000801/);
  assert.throws(() => parseIdx(Uint8Array.from([0, 0, 0x42, 1, 0, 0, 0, 0]), 'f'), /unknown IDX element type 0x42/);
  assert.throws(() => parseIdx(Uint8Array.from([0, 0, 8, 0]), 'f'), /rank must be at least 1/);
  assert.throws(() => parseIdx(images.subarray(0, 10), 'f'), /truncated IDX header/);
  assert.throws(() => parseIdx(images.subarray(0, images.length - 1), 'f'), /truncated: dimensions \[3, 2, 2\] need 28 bytes, file has 27/);
  const extra = new Uint8Array(images.length + 2);
  extra.set(images);
  assert.throws(() => parseIdx(extra, 'f'), /2 unexpected bytes after the data/);
});

test('loadIdxPair reads plain and gzipped files and checks that they fit together', () => {
  const ds = loadIdxPair(file('img', images), file('lbl.gz', gzipSync(labels)), { numClasses: 3 });
  assert.equal(ds.count, 3);
  assert.equal(ds.height, 2);
  assert.equal(ds.channels, 1);
  assert.deepEqual(Array.from(ds.labels), [1, 0, 2]);
  assert.throws(() => loadIdxPair(file('img2', images), file('lbl2', encodeIdx([2], Uint8Array.from([1, 0])))), /has 3 images but .* has 2 labels/);
  assert.throws(() => loadIdxPair(file('img3', images), file('lbl3', labels), { numClasses: 2 }), /label 2 of image 2 is outside 0..1/);
  assert.throws(() => loadIdxPair(join(dir, 'missing'), file('lbl4', labels)), /file not found: .*missing/);
  const badGzip = gzipSync(images).subarray(0, 20);
  assert.throws(() => loadIdxPair(file('bad.gz', badGzip), file('lbl5', labels)), /corrupt gzip data/);
  assert.throws(() => loadIdxPair(file('lbl-as-img', labels), file('lbl6', labels)), /images must have 3 or 4 dimensions/);
});

test('real MNIST: 60,000 + 10,000 images of 28x28, labels 0-9', () => {
  const train = loadMnist('train');
  const testSet = loadMnist('test');
  assert.equal(train.count, 60_000);
  assert.equal(testSet.count, 10_000);
  assert.equal(train.height * train.width, 784);
  const counts = new Array(10).fill(0);
  for (const l of testSet.labels) counts[l]++;
  assert.ok(counts.every((c) => c > 800 && c < 1200), `class counts ${counts}`);
});

test('real Fashion-MNIST from its gzipped IDX files: 60,000 + 10,000 images, named classes', { skip: !existsSync(fashionMnistDir()) && 'dataset-fashion-mnist is not installed' }, () => {
  const testSet = loadFashionMnist('test');
  assert.equal(testSet.count, 10_000);
  assert.equal(loadFashionMnist('train').count, 60_000);
  assert.equal(testSet.classNames![9], 'Ankle boot');
  const counts = new Array(10).fill(0);
  for (const l of testSet.labels) counts[l]++;
  assert.deepEqual(counts, new Array(10).fill(1000));
});

test('batches: pixels in [0, 1], shifts of at most 2 px with zero fill, seeded and repeatable', () => {
  const ds = loadMnist('test');
  const idx = Int32Array.from([0, 1, 2, 3]);
  const plain = makeBatch(ds, idx);
  assert.equal(plain.x.length, 4 * 784);
  assert.ok(plain.x.every((v) => v >= 0 && v <= 1));
  assert.deepEqual(Array.from(plain.labels), Array.from(ds.labels.subarray(0, 4)));
  assert.equal(plain.targets[plain.labels[0]], 1);
  const a = makeBatch(ds, idx, 2, new Rng(3));
  const b = makeBatch(ds, idx, 2, new Rng(3));
  assert.deepEqual(a.x, b.x, 'same seed, same shifts');
  // Each shifted image equals the original moved by some (dx, dy) in [-2, 2].
  for (let i = 0; i < 4; i++) {
    const src = ds.images.subarray(i * 784, (i + 1) * 784);
    const got = a.x.subarray(i * 784, (i + 1) * 784);
    let found = false;
    for (let dy = -2; dy <= 2 && !found; dy++) {
      for (let dx = -2; dx <= 2 && !found; dx++) {
        const expect = new Float32Array(784);
        shiftImage(src, expect, 0, 28, 28, 1, dx, dy);
        found = expect.every((v, k) => v === got[k]);
      }
    }
    assert.ok(found, `image ${i} is a shift of at most 2 px`);
  }
});

test('mnistPreprocess centres a drawn stroke by mass and inverts dark-on-light input', () => {
  // A 100x60 white canvas with a dark vertical bar near the left edge.
  const w = 100;
  const h = 60;
  const img = new Float32Array(w * h).fill(1);
  for (let y = 10; y < 50; y++) for (let x = 5; x < 12; x++) img[y * w + x] = 0;
  const out = mnistPreprocess(img, w, h);
  assert.equal(out.length, 784);
  let mass = 0;
  let cx = 0;
  let cy = 0;
  let maxRow = 0;
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const v = out[y * 28 + x];
      mass += v;
      cx += v * (x + 0.5);
      cy += v * (y + 0.5);
      if (v > 0.5) maxRow = Math.max(maxRow, y);
    }
  }
  assert.ok(mass > 10, 'ink survives');
  assert.ok(Math.abs(cx / mass - 14) < 1 && Math.abs(cy / mass - 14) < 1, `centre of mass ${cx / mass}, ${cy / mass}`);
  assert.ok(maxRow <= 24, 'the stroke fits the 20x20 box');
  assert.ok(mnistPreprocess(new Float32Array(w * h).fill(1), w, h).every((v) => v === 0), 'a blank canvas gives a blank image');
});

test('loadData reads the split a DataSpec describes: IDX test files when given, else the same pair; each split cut to its limit', async () => {
  const testImages = file('spec-test-images', encodeIdx([2, 2, 2], Uint8Array.from([10, 20, 30, 40, 50, 60, 70, 80])));
  const testLabels = file('spec-test-labels', encodeIdx([2], Uint8Array.from([2, 1])));
  const pair = { kind: 'idx' as const, images: file('spec-images', images), labels: file('spec-labels', labels) };
  const both = { source: { ...pair, testImages, testLabels }, trainLimit: 2 };
  const train = await loadData(both, 'train');
  assert.equal(train.count, 2);
  assert.deepEqual(Array.from(train.labels), [1, 0]);
  const test = await loadData(both, 'test');
  assert.deepEqual(Array.from(test.labels), [2, 1]);
  assert.deepEqual(Array.from(test.images.subarray(0, 4)), [10, 20, 30, 40]);
  // One pair serves both splits (eval --images/--labels); testLimit cuts the test split only.
  const one = { source: pair, testLimit: 1 };
  assert.equal((await loadData(one, 'train')).count, 3);
  assert.deepEqual(Array.from((await loadData(one, 'test')).labels), [1]);
  // A named dataset: its generated size per split.
  const multi = { source: { kind: 'dataset' as const, name: 'multimnist', seed: 2, count: 30, testCount: 20 } };
  assert.equal((await loadData(multi, 'train')).count, 30);
  assert.equal((await loadData(multi, 'test')).count, 20);
  await assert.rejects(loadData({ source: { kind: 'dataset', name: 'no-such-set' } }, 'test'), /unknown dataset 'no-such-set'/);
});
