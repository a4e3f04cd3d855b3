/**
 * Bring your own data: folders of pictures (both layouts, PNG/JPEG/WebP/GIF/
 * BMP, gray and colour, odd class names), CSV and NumPy files, every refusal
 * of bad data, the pixel cache, flips, and memory while streaming a cache
 * larger than the reader's window. Pictures are written from real MNIST and
 * Fashion-MNIST images.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { encode as encodeBmp } from 'bmp-ts';
import { makeBatch } from '../src/data/batches.js';
import { imageBytes, take } from '../src/data/dataset.js';
import { loadFashionMnist } from '../src/data/fashionMnist.js';
import { loadMnist } from '../src/data/mnist.js';
import { openPixelCache, writePixelCache } from '../src/data/pixelCache.js';
import { loadUserData, type UserDataOptions } from '../src/data/userData.js';
import { stratifiedSplit } from '../src/data/split.js';
import { Rng } from '../src/util/rng.js';
import { classTint, csvText, encodePicture, npyBytes, ODD_CLASS_NAMES, writeClassFolders } from './userDataFiles.js';

const mnist = take(loadMnist('test'), 400);
const fashion = take(loadFashionMnist('test'), 400);
const tmp = (p: string) => mkdtempSync(join(tmpdir(), `capsnet-${p}-`));
const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const quiet = (cacheDir: string, extra: Partial<UserDataOptions> = {}): UserDataOptions => ({ cacheDir, log: () => {}, ...extra });

test('a train/test folder of colour PNG and JPEG pictures with odd class names loads with sorted names, its own size and 3 channels', async () => {
  const root = tmp('folder');
  const written = await writeClassFolders(join(root, 'train'), mnist, { format: 'png', colour: true, perClass: 6 });
  await writeClassFolders(join(root, 'test'), mnist, { format: 'jpeg', colour: true, perClass: 3, skip: 40 });
  writeFileSync(join(root, 'train', ODD_CLASS_NAMES[0], 'notes.txt'), 'not a picture');
  writeFileSync(join(root, 'train', ODD_CLASS_NAMES[1], '.DS_Store'), 'junk');
  const cacheDir = join(root, '.cache');
  const train = await loadUserData(root, 'train', quiet(cacheDir));
  const test = await loadUserData(root, 'test', quiet(cacheDir));
  assert.deepEqual(train.classNames, [...ODD_CLASS_NAMES].sort());
  assert.equal(train.count, 24);
  assert.equal(test.count, 12);
  assert.deepEqual([train.height, train.width, train.channels], [28, 28, 3]);
  assert.deepEqual(train.preparation, { kind: 'resize', height: 28, width: 28, channels: 3, fit: 'fill', background: 'black' });
  // PNG is lossless: the first training picture of class 'Zero digit' (files in sorted order) is that MNIST image, tinted.
  const zero = train.classNames!.indexOf('Zero digit');
  const i = Array.from(train.labels).indexOf(zero);
  const m = Number(/img (\d+)\./.exec([...written[0]].sort()[0])![1]);
  const src = mnist.images.subarray(m * 784, (m + 1) * 784);
  const got = imageBytes(train, i);
  const tint = classTint(0);
  for (let p = 0; p < 784; p++) for (let k = 0; k < 3; k++) assert.equal(got[p * 3 + k], Math.round(src[p] * tint[k]), `pixel ${p} channel ${k}`);
  // The second load reads the cache: one cache file, and the same bytes.
  assert.equal(readdirSync(cacheDir).filter((n) => n.endsWith('.pixels')).length, 1);
  const again = await loadUserData(root, 'train', quiet(cacheDir, { log: () => assert.fail('decoded again') }));
  assert.deepEqual(imageBytes(again, i), imageBytes(train, i));
  // A changed file (modification time) makes a new cache.
  const f = join(root, 'train', ODD_CLASS_NAMES[2], readdirSync(join(root, 'train', ODD_CLASS_NAMES[2]))[0]);
  utimesSync(f, new Date(), new Date(Date.now() + 5000));
  let decoded = false;
  await loadUserData(root, 'train', quiet(cacheDir, { log: () => (decoded = true) }));
  assert.ok(decoded, 'a changed source file is decoded again');
});

test('a DIR/<class>/ folder of gray pictures in every format, with --val-split: stratified seeded split, 1 channel, mixed sizes resized to 32', async () => {
  const root = tmp('flat');
  await writeClassFolders(root, fashion, { format: 'png', colour: false, perClass: 5, names: ['A', 'b', 'C'], classes: 3 });
  await writeClassFolders(root, fashion, { format: 'webp', colour: false, perClass: 5, names: ['A', 'b', 'C'], classes: 3, skip: 30, size: 40 });
  await writeClassFolders(root, fashion, { format: 'gif', colour: false, perClass: 5, names: ['A', 'b', 'C'], classes: 3, skip: 60 });
  // BMP, written by the BMP library from a Fashion-MNIST image (ABGR bytes).
  const px = fashion.images.subarray(0, 784);
  const abgr = Buffer.alloc(784 * 4);
  for (let p = 0; p < 784; p++) abgr.set([255, px[p], px[p], px[p]], p * 4);
  writeFileSync(join(root, 'A', 'scan.BMP'), encodeBmp({ data: abgr, width: 28, height: 28, bitPP: 24 }).data);
  const o = quiet(join(root, '.cache'), { valSplit: 0.4, seed: 3 });
  const train = await loadUserData(root, 'train', o);
  const test = await loadUserData(root, 'test', o);
  assert.deepEqual(train.classNames, ['A', 'C', 'b']);
  assert.equal(train.count + test.count, 46);
  assert.deepEqual([train.height, train.width, train.channels], [32, 32, 1], 'sizes differ (28 and 40): 32; no colour: 1 channel');
  for (let c = 0; c < 3; c++) {
    const nTest = Array.from(test.labels).filter((l) => l === c).length;
    const nAll = nTest + Array.from(train.labels).filter((l) => l === c).length;
    assert.equal(nTest, Math.round(nAll * 0.4), `class ${c}: 40% held out`);
  }
  const again = await loadUserData(root, 'test', o);
  assert.deepEqual(again.labels, test.labels, 'the split is seeded');
  const other = await loadUserData(root, 'test', { ...o, seed: 4 });
  assert.notDeepEqual(Array.from({ length: other.count }, (_, i) => imageBytes(other, i)[500]), Array.from({ length: test.count }, (_, i) => imageBytes(test, i)[500]));
  // Explicit size and channels.
  const rgb = await loadUserData(root, 'train', { ...o, imageSize: 20, channels: 3 });
  assert.deepEqual([rgb.height, rgb.width, rgb.channels], [20, 20, 3]);
  await assert.rejects(loadUserData(root, 'train', quiet(join(root, '.cache'))), /has no separate test set: give --val-split/);
  const split = stratifiedSplit(Int32Array.from([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]), 0.5, 1);
  assert.equal(split.test.length, 5);
  assert.equal(new Set([...split.train, ...split.test]).size, 10);
});

test('files that cannot be decoded are all found before training, named with a count; --skip-invalid leaves them out and records them', async () => {
  const root = tmp('bad');
  await writeClassFolders(join(root, 'train'), mnist, { format: 'jpeg', colour: false, perClass: 4, names: ['x', 'y'], classes: 2 });
  await writeClassFolders(join(root, 'test'), mnist, { format: 'png', colour: false, perClass: 2, names: ['x', 'y'], classes: 2, skip: 20 });
  const good = await encodePicture(mnist, 0, 0, { format: 'jpeg', colour: false });
  const png = await encodePicture(mnist, 1, 0, { format: 'png', colour: false });
  writeFileSync(join(root, 'train', 'x', 'empty.jpg'), '');
  writeFileSync(join(root, 'train', 'x', 'truncated.jpg'), good.subarray(0, good.length >> 1));
  writeFileSync(join(root, 'train', 'y', 'truncated.png'), png.subarray(0, png.length >> 1));
  writeFileSync(join(root, 'train', 'y', 'corrupt.png'), Buffer.from('definitely not a picture'));
  const o = quiet(join(root, '.cache'));
  // libvips names a truncated JPEG's fault, or (when decoding several at once) reports an unknown error, said here as corrupt or truncated data.
  await assert.rejects(loadUserData(root, 'train', o), (e: Error) => {
    assert.match(e.message, /^4 of 16 files in .* cannot be decoded: train\/x\/empty\.jpg \(empty file\); train\/x\/truncated\.jpg \(cannot decode \((VipsJpeg: premature end of JPEG image|corrupt or truncated data)\)\)/);
    assert.match(e.message, /--skip-invalid/);
    assert.ok(!e.message.includes('\n'));
    return true;
  });
  const lines: string[] = [];
  const train = await loadUserData(root, 'train', { ...o, skipInvalid: true, log: (s) => lines.push(s) });
  assert.equal(train.count, 8);
  assert.deepEqual(train.skipped!.map((s) => s.path).sort(), ['train/x/empty.jpg', 'train/x/truncated.jpg', 'train/y/corrupt.png', 'train/y/truncated.png']);
  assert.ok(lines.some((l) => /skipping 4 of 16 files/.test(l)));
});

test('refusals: a class folder without pictures, a test class missing from train, a single class', async () => {
  const o = (root: string) => quiet(join(root, '.cache'));
  const empty = tmp('empty');
  await writeClassFolders(empty, mnist, { format: 'png', colour: false, perClass: 2, names: ['a', 'b'], classes: 2 });
  mkdirSync(join(empty, 'c'));
  writeFileSync(join(empty, 'c', 'readme.txt'), 'no pictures here');
  await assert.rejects(loadUserData(empty, 'test', o(empty)), /class folder .*c holds no pictures/);

  const missing = tmp('missing');
  await writeClassFolders(join(missing, 'train'), mnist, { format: 'png', colour: false, perClass: 2, names: ['a', 'b'], classes: 2 });
  await writeClassFolders(join(missing, 'test'), mnist, { format: 'png', colour: false, perClass: 1, names: ['a', 'b', 'zed'], classes: 3 });
  await assert.rejects(loadUserData(missing, 'train', o(missing)), /class 'zed' of .*test is not among the training classes \(a, b\)/);

  const single = tmp('single');
  await writeClassFolders(single, mnist, { format: 'png', colour: false, perClass: 2, names: ['only'], classes: 1 });
  await assert.rejects(loadUserData(single, 'test', o(single)), /single class folder \('only'\)/);
  await assert.rejects(loadUserData(join(single, 'nope'), 'test', o(single)), /not found; expected a folder of class folders/);
});

test('CSV with and without a header, a .npz archive and a folder of .npy files hold the same images; NaN and bad labels are refused', async () => {
  const root = tmp('arrays');
  const n = 30;
  const want = mnist.images.subarray(0, n * 784);
  writeFileSync(join(root, 'with-header.csv'), csvText(mnist, n, true));
  writeFileSync(join(root, 'no-header.csv'), csvText(mnist, n, false));
  for (const f of ['with-header.csv', 'no-header.csv']) {
    const ds = await loadUserData(join(root, f), 'test', quiet(root));
    assert.equal(ds.count, n);
    assert.deepEqual([ds.height, ds.width, ds.channels], [28, 28, 1]);
    assert.ok(same(ds.images, want), f);
    assert.deepEqual(Array.from(ds.labels), Array.from(mnist.labels.subarray(0, n)));
  }
  // uint8 NHW for training, float32 NHWC in [0, 1] for testing.
  const x = mnist.images.subarray(0, 20 * 784);
  const y = Int32Array.from(mnist.labels.subarray(0, 20));
  const xt = Float32Array.from(mnist.images.subarray(20 * 784, n * 784), (v) => v / 255);
  const yt = Int32Array.from(mnist.labels.subarray(20, n));
  const arrays = { x_train: npyBytes(x, [20, 28, 28]), y_train: npyBytes(y, [20]), x_test: npyBytes(xt, [10, 28, 28, 1]), y_test: npyBytes(yt, [10]) };
  writeFileSync(join(root, 'data.npz'), zipSync(Object.fromEntries(Object.entries(arrays).map(([k, v]) => [`${k}.npy`, new Uint8Array(v)]))));
  mkdirSync(join(root, 'npy'));
  for (const [k, v] of Object.entries(arrays)) writeFileSync(join(root, 'npy', `${k}.npy`), v);
  for (const p of [join(root, 'data.npz'), join(root, 'npy')]) {
    const train = await loadUserData(p, 'train', quiet(root));
    const test = await loadUserData(p, 'test', quiet(root));
    assert.ok(same(train.images, x));
    assert.ok(same(test.images, mnist.images.subarray(20 * 784, n * 784)), `${p}: floats in [0, 1] become the same bytes`);
    assert.equal(train.numClasses, 10);
  }
  const nan = Float32Array.from(xt);
  nan[123] = NaN;
  writeFileSync(join(root, 'nan.npz'), zipSync({ 'x_train.npy': new Uint8Array(npyBytes(x, [20, 28, 28])), 'y_train.npy': new Uint8Array(arrays.y_train), 'x_test.npy': new Uint8Array(npyBytes(nan, [10, 28, 28, 1])), 'y_test.npy': new Uint8Array(arrays.y_test) }));
  await assert.rejects(loadUserData(join(root, 'nan.npz'), 'train', quiet(root)), /x_test: NaN at value 123/);
  const badTest = Int32Array.from(yt);
  badTest[2] = 42;
  writeFileSync(join(root, 'label.npz'), zipSync({ ...Object.fromEntries(Object.entries(arrays).map(([k, v]) => [`${k}.npy`, new Uint8Array(v)])), 'y_test.npy': new Uint8Array(npyBytes(badTest, [10])) }));
  await assert.rejects(loadUserData(join(root, 'label.npz'), 'train', quiet(root)), /test label 42 \(example 2\) is out of range: the training labels are 0..9/);
  writeFileSync(join(root, 'neg.csv'), `-1,${Array(784).fill(0).join(',')}\n3,${Array(784).fill(0).join(',')}\n`);
  await assert.rejects(loadUserData(join(root, 'neg.csv'), 'test', quiet(root)), /label -1 of example 0 is out of range/);
  writeFileSync(join(root, 'nan.csv'), `1,${Array(783).fill(0).join(',')},nan\n3,${Array(784).fill(0).join(',')}\n`);
  await assert.rejects(loadUserData(join(root, 'nan.csv'), 'test', quiet(root)), /line 1: NaN or empty pixel value in column 785/);
  writeFileSync(join(root, 'one.csv'), csvText(take({ ...mnist, labels: new Int32Array(mnist.count) }, 5), 5, false));
  await assert.rejects(loadUserData(join(root, 'one.csv'), 'test', quiet(root)), /single class/);
  await assert.rejects(loadUserData(join(root, 'data.npz.txt'), 'test', quiet(root)), /not found/);
});

test('--flip mirrors about half of the images, seeded; without it the Rng draws are those of shifts alone', () => {
  const ds = take(fashion, 64);
  const idx = Int32Array.from({ length: 64 }, (_, i) => i);
  const plain = makeBatch(ds, idx);
  const flipped = makeBatch(ds, idx, 0, new Rng(5), true);
  let mirrored = 0;
  for (let b = 0; b < 64; b++) {
    const a = plain.x.subarray(b * 784, (b + 1) * 784);
    const f = flipped.x.subarray(b * 784, (b + 1) * 784);
    const isMirror = a.every((v, p) => v === f[Math.floor(p / 28) * 28 + 27 - (p % 28)]);
    const isSame = a.every((v, p) => v === f[p]);
    assert.ok(isMirror || isSame, `image ${b} is either mirrored or unchanged`);
    if (isMirror && !isSame) mirrored++;
  }
  assert.ok(mirrored > 16 && mirrored < 48, `${mirrored} of 64 mirrored`);
  assert.deepEqual(makeBatch(ds, idx, 0, new Rng(5), true).x, flipped.x, 'seeded');
  const r1 = new Rng(9);
  const r2 = new Rng(9);
  makeBatch(ds, idx, 2, r1);
  makeBatch(ds, idx, 2, r2, false);
  assert.deepEqual(r1.getState(), r2.getState());
});

test('streaming a pixel cache larger than the reader\'s window keeps resident memory bounded', async () => {
  // 60,000 MNIST training images (47 MB) written to a cache, then read back in shuffled batches by a fresh process.
  const train = loadMnist('train');
  const root = tmp('stream');
  const path = join(root, 'mnist.pixels');
  const n = train.count;
  function* images() {
    for (let i = 0; i < n; i++) yield train.images.subarray(i * 784, (i + 1) * 784);
  }
  await writePixelCache(path, { format: 'capsnet-pixels', version: 1, key: 'test', count: n, height: 28, width: 28, channels: 1, classNames: [], groupNames: ['all'] }, train.labels, new Uint8Array(n), images());
  const cacheBytes = statSync(path).size;
  assert.ok(cacheBytes > 47_000_000);
  assert.equal(openPixelCache(path)!.header.count, n);
  const script = `
    import { PixelFileReader, openPixelCache } from ${JSON.stringify(new URL('../src/data/pixelCache.js', import.meta.url).href)};
    import { makeBatch } from ${JSON.stringify(new URL('../src/data/batches.js', import.meta.url).href)};
    import { Rng } from ${JSON.stringify(new URL('../src/util/rng.js', import.meta.url).href)};
    const cache = openPixelCache(process.argv[1]);
    const h = cache.header;
    const ds = { name: 'cache', images: new Uint8Array(0), pixels: new PixelFileReader(cache), labels: cache.labels, count: h.count, height: h.height, width: h.width, channels: h.channels, numClasses: 10 };
    globalThis.gc?.();
    const base = process.memoryUsage().rss;
    let peak = base, sum = 0;
    const order = new Rng(1).permutation(h.count);
    for (let b = 0; b < h.count; b += 100) {
      // Collected every batch, so the resident size shows what is held, not garbage awaiting collection.
      globalThis.gc?.();
      const batch = makeBatch(ds, order.subarray(b, b + 100), 2, new Rng(b), true);
      sum += batch.x[300];
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    process.stdout.write(JSON.stringify({ base, peak, sum }));
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script, path], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { base, peak, sum } = JSON.parse(r.stdout);
  assert.ok(sum > 0, 'pixels were read');
  const growth = peak - base;
  assert.ok(growth < cacheBytes / 4, `resident memory grew by ${(growth / 1e6).toFixed(1)} MB while streaming a ${(cacheBytes / 1e6).toFixed(1)} MB cache`);
  process.stderr.write(`streamed ${(cacheBytes / 1e6).toFixed(1)} MB: RSS ${(base / 1e6).toFixed(1)} MB at start, peak ${(peak / 1e6).toFixed(1)} MB\n`);
});
