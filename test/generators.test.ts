/**
 * Generated datasets (MultiMNIST, MNIST on 40x40, affine MNIST, the
 * familiar and novel viewpoints) and the MAT-file / affNIST readers on
 * files the test writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { makeBatch, Rng, take } from '../src/index.js';
import { loadMnist } from '../src/node.js';
import { generateMultiMnist } from '../src/data/multiMnist.js';
import { placeOnCanvas, AFFNIST_LIKE_RANGES } from '../src/data/affineMnist.js';
import { inverseAffine, warpAffine, inkBox } from '../src/data/affine.js';
import { parseMat } from '../src/data/matfile.js';
import { loadAffnist } from '../src/data/affnist.js';
import { loadDataset } from '../src/data/index.js';
import { drawViewpoint, FAMILIAR_ROTATION, NOVEL_ROTATION, NOVEL_SCALES, testViewpoint } from '../src/data/viewpoints.js';

const mnist = take(loadMnist('test'), 2000);

test('MultiMNIST: 36x36, two digits of different classes, clipped sum of the two shifted digits, seeded', () => {
  const ds = generateMultiMnist(mnist, { count: 300, seed: 5 });
  assert.equal(ds.height, 36);
  assert.equal(ds.width, 36);
  const again = generateMultiMnist(mnist, { count: 300, seed: 5 });
  const other = generateMultiMnist(mnist, { count: 300, seed: 6 });
  const idx = Int32Array.from({ length: 300 }, (_, i) => i);
  const b = makeBatch(ds, idx);
  assert.deepEqual(makeBatch(again, idx).x, b.x, 'same seed, same images');
  assert.notDeepEqual(makeBatch(other, idx).x, b.x, 'another seed, other images');
  const per = 36 * 36;
  for (let i = 0; i < 300; i++) {
    const two = Array.from(ds.multiLabels!.subarray(i * 10, i * 10 + 10));
    assert.equal(two.reduce((a, v) => a + v, 0), 2, 'two different classes');
    const [la, lb] = [b.components!.labels[2 * i], b.components!.labels[2 * i + 1]];
    assert.notEqual(la, lb);
    assert.equal(two[la], 1);
    assert.equal(two[lb], 1);
    const img = b.x.subarray(i * per, (i + 1) * per);
    const ca = b.components!.images.subarray(2 * i * per, (2 * i + 1) * per);
    const cb = b.components!.images.subarray((2 * i + 1) * per, (2 * i + 2) * per);
    for (let p = 0; p < per; p++) assert.ok(Math.abs(img[p] - Math.min(1, ca[p] + cb[p])) < 1e-6);
    // Each digit is shifted by at most 4 px: its ink stays within 4 px of the centred 28x28 frame.
    for (const comp of [ca, cb]) {
      const box = inkBox(comp, 36, 36, 0)!;
      assert.ok(box[0] >= 0 && box[2] <= 35);
    }
  }
  // The shifts cover the whole range: a digit's ink reaches the canvas border for some pairs.
  let touches = 0;
  for (let i = 0; i < 300; i++) {
    const box = inkBox(b.components!.images.subarray(2 * i * per, (2 * i + 1) * per), 36, 36, 0)!;
    if (box[0] <= 1 || box[2] >= 34) touches++;
  }
  assert.ok(touches > 0);
});

test('mnist40: digits land anywhere on the canvas, fresh positions in training, fixed ones at test', () => {
  const ds = placeOnCanvas(mnist, { seed: 3 });
  const idx = Int32Array.from({ length: 200 }, (_, i) => i);
  const fixed1 = makeBatch(ds, idx);
  assert.deepEqual(makeBatch(ds, idx).x, fixed1.x, 'without an Rng the placement depends on the index only');
  const train1 = makeBatch(ds, idx, 0, new Rng(1));
  const train2 = makeBatch(ds, idx, 0, new Rng(2));
  assert.notDeepEqual(train1.x, train2.x);
  const xs: number[] = [];
  for (let i = 0; i < 200; i++) {
    const img = fixed1.x.subarray(i * 1600, (i + 1) * 1600);
    const box = inkBox(img, 40, 40, 0.05)!;
    xs.push(box[0]);
    // The digit itself is unchanged: same ink mass as the 28x28 original.
    let a = 0;
    let m = 0;
    for (const v of img) a += v;
    for (const v of mnist.images.subarray(i * 784, (i + 1) * 784)) m += v / 255;
    assert.ok(Math.abs(a - m) < 0.02 * m + 0.5, `ink mass ${a} vs ${m}`);
  }
  assert.ok(Math.min(...xs) <= 3 && Math.max(...xs) >= 14, `left edges range over the canvas: ${Math.min(...xs)}..${Math.max(...xs)}`);
});

test('affine warps: the identity keeps the image; a 90-degree rotation maps the ink box as expected', () => {
  const src = new Float32Array(28 * 28);
  for (let y = 5; y < 10; y++) for (let x = 8; x < 20; x++) src[y * 28 + x] = 1; // a horizontal bar in the top half
  const same = new Float32Array(28 * 28);
  warpAffine(src, 28, 28, inverseAffine({ rotation: 0, shear: 0, scale: 1, tx: 0, ty: 0 }, 28, 28, 28, 28), same, 28, 28);
  for (let i = 0; i < src.length; i++) assert.ok(Math.abs(same[i] - src[i]) < 1e-6);
  const rot = new Float32Array(28 * 28);
  warpAffine(src, 28, 28, inverseAffine({ rotation: 90, shear: 0, scale: 1, tx: 0, ty: 0 }, 28, 28, 28, 28), rot, 28, 28);
  const box = inkBox(rot, 28, 28, 0.5)!;
  assert.ok(box[2] - box[0] < box[3] - box[1], 'the bar becomes vertical');
  const ds = placeOnCanvas(mnist, { seed: 1, affine: AFFNIST_LIKE_RANGES });
  const b = makeBatch(ds, Int32Array.from([0, 1, 2, 3]));
  assert.ok(b.x.every((v) => v >= 0 && v <= 1));
  const names = ['multimnist', 'mnist40', 'affine-mnist'];
  for (const n of names) assert.ok(loadDataset(n, 'test', { count: 10 }).count > 0, n);
});

test('MultiMNIST training pairs are drawn afresh each epoch, seeded by the epoch; a limited set stays limited; the test pairs are fixed', () => {
  const train = loadDataset('multimnist', 'train', { count: 200, seed: 3 });
  assert.ok(train.forEpoch, 'the training split draws per epoch');
  assert.equal(train.forEpoch!(1), train, 'epoch 1 is the set itself');
  const e2 = train.forEpoch!(2);
  const e2again = train.forEpoch!(2);
  const e3 = train.forEpoch!(3);
  assert.equal(e2.count, 200);
  assert.deepEqual([e2.height, e2.width, e2.numClasses], [train.height, train.width, train.numClasses]);
  const all = Int32Array.from({ length: 200 }, (_, i) => i);
  const images = (ds: typeof train) => makeBatch(ds, all).x;
  assert.deepEqual(images(e2), images(e2again), 'seeded by the epoch');
  const differing = (a: Float32Array, b: Float32Array) => {
    let n = 0;
    for (let i = 0; i < 200; i++) if (a.subarray(i * 1296, (i + 1) * 1296).some((v, k) => v !== b[i * 1296 + k])) n++;
    return n;
  };
  assert.ok(differing(images(train), images(e2)) > 190, 'new pairs in epoch 2');
  assert.ok(differing(images(e2), images(e3)) > 190, 'new pairs in epoch 3');
  // Every pair of every epoch has two digits of different classes.
  for (const ds of [e2, e3]) for (let i = 0; i < ds.count; i++) assert.equal(ds.multiLabels!.subarray(i * 10, i * 10 + 10).reduce((a, b) => a + b, 0), 2);
  assert.equal(take(train, 20).forEpoch!(4).count, 20, '--train-limit keeps its count in every epoch');
  assert.equal(loadDataset('multimnist', 'test', { count: 20 }).forEpoch, undefined, 'test pairs never change');
});

/** A minimal level-5 MAT-file writer for tests (little-endian). */
function matElement(type: number, data: Uint8Array): Uint8Array {
  const padded = Math.ceil(data.length / 8) * 8;
  const out = new Uint8Array(8 + padded);
  const v = new DataView(out.buffer);
  v.setUint32(0, type, true);
  v.setUint32(4, data.length, true);
  out.set(data, 8);
  return out;
}
function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
function u32s(...xs: number[]): Uint8Array {
  const b = new Uint8Array(4 * xs.length);
  xs.forEach((x, i) => new DataView(b.buffer).setUint32(4 * i, x, true));
  return b;
}
function matrix(name: string, cls: number, dims: number[], body: Uint8Array[]): Uint8Array {
  return matElement(14, concat(matElement(6, u32s(cls, 0)), matElement(5, u32s(...dims)), matElement(1, new TextEncoder().encode(name)), ...body));
}
function matFile(...elements: Uint8Array[]): Uint8Array {
  const header = new Uint8Array(128).fill(32);
  header.set(new TextEncoder().encode('MATLAB 5.0 MAT-file, written by a test'));
  header[124] = 0;
  header[125] = 1;
  header[126] = 'I'.charCodeAt(0);
  header[127] = 'M'.charCodeAt(0);
  return concat(header, ...elements);
}
function affnistStruct(images: Uint8Array, labels: Uint8Array, n: number, imageAsDouble = false): Uint8Array {
  const names = new Uint8Array(64);
  names.set(new TextEncoder().encode('image'), 0);
  names.set(new TextEncoder().encode('label_int'), 32);
  const imageEl = imageAsDouble
    ? matrix('', 6, [1600, n], [matElement(9, new Uint8Array(Float64Array.from(images, (v) => v / 255).buffer))])
    : matrix('', 9, [1600, n], [matElement(2, images)]);
  const labelEl = matrix('', 9, [1, n], [matElement(2, labels)]);
  // The field-name length is written as a small data element, as MATLAB does.
  const fieldLen = new Uint8Array(8);
  new DataView(fieldLen.buffer).setUint32(0, (4 << 16) | 5, true);
  new DataView(fieldLen.buffer).setUint32(4, 32, true);
  return matrix('affNISTdata', 2, [1, 1], [fieldLen, matElement(1, names), imageEl, labelEl]);
}

test('affNIST MAT-files: plain and compressed, bytes or doubles; malformed files get clear errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'capsnet-mat-'));
  const n = 3;
  const images = new Uint8Array(1600 * n);
  for (let i = 0; i < n; i++) images[i * 1600 + i * 41] = 255; // a dot on the diagonal, row i
  const labels = Uint8Array.from([7, 0, 3]);
  const plain = matFile(affnistStruct(images, labels, n));
  const compressed = matFile(matElement(15, deflateSync(affnistStruct(images, labels, n, true))));
  for (const [name, bytes] of [['plain.mat', plain], ['compressed.mat', compressed]] as const) {
    writeFileSync(join(dir, name), bytes);
    const ds = loadAffnist(join(dir, name));
    assert.equal(ds.count, 3);
    assert.equal(ds.height, 40);
    assert.deepEqual(Array.from(ds.labels), [7, 0, 3]);
    assert.equal(ds.images[1 * 1600 + 41], 255, `${name}: pixel (1, 1) of image 1`);
    assert.equal(ds.images[1 * 1600 + 40], 0);
  }
  const transposed = loadAffnist(join(dir, 'plain.mat'), { transpose: true });
  assert.equal(transposed.images[2 * 1600 + 82], 255, 'the diagonal stays put under transposition');
  assert.throws(() => parseMat(new Uint8Array(50), 'x'), /too short for a MAT-file header/);
  assert.throws(() => parseMat(plain.subarray(0, plain.length - 20), 'x'), /x: truncated MAT-file/);
  const bad = compressed.slice();
  bad[140] ^= 0xff;
  assert.throws(() => parseMat(bad, 'x'), /corrupt compressed data|truncated|unsupported|unknown/);
  const hdf = new Uint8Array(200);
  hdf.set([0x89, 0x48, 0x44, 0x46]);
  assert.throws(() => parseMat(hdf, 'x'), /v7.3 \(HDF5\) is not supported/);
  writeFileSync(join(dir, 'other.mat'), matFile(matrix('something', 6, [1, 1], [matElement(9, new Uint8Array(8))])));
  assert.throws(() => loadAffnist(join(dir, 'other.mat')), /no affNISTdata struct \(variables: something\)/);
  assert.throws(() => loadAffnist(join(dir, 'missing.mat')), /affNIST file not found/);
});

test('viewpoints: familiar and novel ranges, seeded test views, fresh training views', () => {
  const rng = new Rng(5);
  for (let i = 0; i < 300; i++) {
    const f = drawViewpoint('familiar', rng);
    assert.ok(Math.abs(f.rotation) <= FAMILIAR_ROTATION && f.scale >= 0.9 && f.scale <= 1.1);
    const r = drawViewpoint('novel-rotation', rng);
    assert.ok(Math.abs(r.rotation) >= NOVEL_ROTATION[0] && Math.abs(r.rotation) <= NOVEL_ROTATION[1] && r.scale >= 0.9 && r.scale <= 1.1);
    const s = drawViewpoint('novel-scale', rng);
    assert.ok(Math.abs(s.rotation) <= FAMILIAR_ROTATION && NOVEL_SCALES.some(([lo, hi]) => s.scale >= lo && s.scale <= hi));
  }
  assert.notDeepEqual(testViewpoint('novel-scale', 7, 3), testViewpoint('novel-scale', 7, 4), 'each test image has its own view');
  const ds = loadDataset('mnist-novel-scale', 'test');
  const plain = loadDataset('mnist', 'test');
  assert.deepEqual([ds.count, ds.height, ds.width, ds.numClasses], [10_000, 28, 28, 10]);
  const idx = Int32Array.from({ length: 20 }, (_, i) => i);
  const a = makeBatch(ds, idx).x;
  assert.deepEqual(makeBatch(ds, idx).x, a, 'test views are the same every time');
  assert.notDeepEqual(makeBatch(ds, idx, 0, new Rng(1)).x, makeBatch(ds, idx, 0, new Rng(2)).x, 'training views are drawn afresh');
  // Scaling changes the amount of ink roughly by the area factor: novel scales are far from 1.
  const ink = (x: Float32Array, i: number) => x.subarray(i * 784, (i + 1) * 784).reduce((s, v) => s + v, 0);
  const p = makeBatch(plain, idx).x;
  for (let i = 0; i < 20; i++) {
    const ratio = ink(a, i) / ink(p, i);
    const v = testViewpoint('novel-scale', 202, i);
    assert.ok(Math.abs(ratio - v.scale ** 2) < 0.25 * v.scale ** 2 + 0.05, `image ${i}: ink ratio ${ratio.toFixed(3)} for scale ${v.scale.toFixed(3)}`);
  }
});
