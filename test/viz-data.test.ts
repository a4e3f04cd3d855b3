/**
 * The visualizer with a model trained on a folder of the user's colour
 * pictures (real MNIST digits tinted per class, four classes with odd folder
 * names, prepared at 32x32x3), in headless Chromium through `capsnet viz
 * --model RUN`: the samples are that model's own test images, drawn in
 * colour; classes are labelled by their folder names; the drawing pad is
 * off; an upload is prepared as the training pictures were; the views take
 * the 32x32x3 input (the reconstruction in colour, and an EM capsule network
 * of the same input); and the page predicts what Node predicts. Skipped
 * without Chromium.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as tf from '@tensorflow/tfjs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { initBackend } from '../src/backend/node.js';
import { imageBytes, take } from '../src/data/dataset.js';
import { loadMnist } from '../src/data/mnist.js';
import { loadUserData } from '../src/data/userData.js';
import '../src/models/index.js';
import { loadModel, saveModel } from '../src/models/files.js';
import { createModel } from '../src/models/registry.js';
import { imagePreparation } from '../src/data/preparation.js';
import { DEFAULT_VIZ_OUT } from '../src/viz/build.js';
import { startVizServer } from '../src/viz/server.js';
import { ARTIFACTS, canvasPixels, CHROMIUM, CHROMIUM_ARGS } from './vizHelpers.js';
import { encodePicture, ODD_CLASS_NAMES, writeClassFolders } from './userDataFiles.js';

const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CAPSNET_CHROMIUM)`;
const BIN = new URL('../../bin/capsnet.js', import.meta.url).pathname;
const SIZE = 32;
const CLASSES = [...ODD_CLASS_NAMES].sort();

let root: string;
let data: string;
let run: string;
let viz: ChildProcess | undefined;
let url: string;
let browser: Browser;
let page: Page;
const errors: string[] = [];

interface SamplesJson {
  dataset: string;
  count: number;
  height: number;
  width: number;
  channels: number;
  labels: number[];
  classNames: string[];
  indices: number[];
}
let samples: SamplesJson;
let sampleBytes: Uint8Array;

before(async () => {
  if (skip) return;
  root = mkdtempSync(join(tmpdir(), 'capsnet-viz-data-'));
  data = join(root, 'pictures');
  run = join(root, 'run');
  mkdirSync(ARTIFACTS, { recursive: true });
  const mnist = take(loadMnist('test'), 1000);
  await writeClassFolders(join(data, 'train'), mnist, { format: 'png', colour: true, perClass: 30 });
  await writeClassFolders(join(data, 'test'), mnist, { format: 'png', colour: true, perClass: 12, skip: 200 });
  const env = { ...process.env, CAPSNET_CACHE_DIR: join(root, 'cache') };
  const tr = spawnSync(process.execPath, [BIN, 'train', '--data', data, '--image-size', String(SIZE), '--preset', 'small', '--epochs', '2', '--batch-size', '20', '--lr', '0.002', '--seed', '1', '--out', run, '--json'], { encoding: 'utf8', env });
  assert.equal(tr.status, 0, tr.stderr);

  // `capsnet viz --model RUN` finds the run's data itself (its training.json).
  viz = spawn(process.execPath, [BIN, 'viz', '--model', run, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  viz.stderr!.on('data', (d) => (stderr += d));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: viz!.stdout! }).once('line', resolve);
    viz!.once('exit', (code) => reject(new Error(`capsnet viz exited with ${code}: ${stderr}`)));
  });
  const info = JSON.parse(line) as { url: string; testImages: number };
  url = info.url;
  assert.ok(info.testImages > 0, 'viz reports the test images it serves');
  samples = (await (await fetch(new URL('models/custom/samples.json', url))).json()) as SamplesJson;
  sampleBytes = new Uint8Array(await (await fetch(new URL('models/custom/samples.bin', url))).arrayBuffer());

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: 60_000 });
  await page.evaluate(() => window.capsviz.idle());
});

after(async () => {
  await browser?.close();
  if (viz && viz.exitCode === null) {
    const exited = new Promise((r) => viz!.once('exit', r));
    viz.kill('SIGTERM');
    await exited;
  }
});

/** Pixels (RGBA) whose red, green and blue differ by more than `by`. */
function colourful(rgba: number[], by = 40): number {
  let n = 0;
  for (let i = 0; i < rgba.length; i += 4) if (Math.max(rgba[i], rgba[i + 1], rgba[i + 2]) - Math.min(rgba[i], rgba[i + 1], rgba[i + 2]) > by) n++;
  return n;
}

test("the samples are the model's own test images, drawn in colour", { skip }, async () => {
  assert.equal(await page.evaluate(() => window.capsviz.state), 'ready', (await page.evaluate(() => window.capsviz.error)) ?? '');
  const test = await loadUserData(data, 'test', { cacheDir: join(run, 'data-cache'), imageSize: SIZE, log: () => {} });
  assert.deepEqual([samples.height, samples.width, samples.channels], [SIZE, SIZE, 3]);
  assert.equal(samples.count, 4 * 10, 'ten test images of each of the four classes');
  assert.deepEqual(samples.classNames, CLASSES);
  const per = SIZE * SIZE * 3;
  for (let k = 0; k < samples.count; k++) {
    assert.equal(samples.labels[k], test.labels[samples.indices[k]]);
    assert.deepEqual(sampleBytes.subarray(k * per, (k + 1) * per), imageBytes(test, samples.indices[k]), `sample ${k} is test image #${samples.indices[k]}`);
  }
  assert.equal(await page.locator('#samples button').count(), samples.count);
  assert.equal(await page.textContent('#h-samples'), 'pictures test images');
  // A thumbnail and the input the network sees: the very bytes, in colour.
  const k = 13;
  await page.click(`#samples button >> nth=${k}`);
  await page.evaluate(() => window.capsviz.idle());
  const thumb = await canvasPixels(page, `#samples button >> nth=${k} >> canvas`);
  const seen = await canvasPixels(page, '#input-28');
  assert.equal(seen.length, 4 * SIZE * SIZE);
  for (let i = 0; i < SIZE * SIZE; i++) {
    for (let c = 0; c < 3; c++) assert.equal(seen[4 * i + c], sampleBytes[k * per + 3 * i + c], `input pixel ${i}, channel ${c}`);
  }
  assert.deepEqual(thumb, seen);
  assert.ok(colourful(seen) > 20, `the input is drawn in colour (${colourful(seen)} coloured pixels)`);
  assert.match((await page.evaluate(() => window.capsviz.prediction))!.source, new RegExp(`^pictures test image #${samples.indices[k]} \\(label ${samples.labels[k]}, `));
});

test('every class is labelled by its folder name', { skip }, async () => {
  assert.deepEqual(await page.locator('#digit-bars .lbl').allTextContents(), CLASSES);
  const captions = await page.locator('#routing-maps figcaption').allTextContents();
  assert.deepEqual(captions.map((c) => c.split(' · ')[0]), CLASSES);
  // The class colours, then the mark of a capsule that splits evenly.
  assert.deepEqual((await page.locator('#routing-legend span').allTextContents()), [...CLASSES, 'tie (an even split)']);
  const pred = (await page.evaluate(() => window.capsviz.prediction))!.label;
  assert.equal(await page.textContent('#prediction'), CLASSES[pred]);
  assert.match((await page.textContent('#recon-caption'))!, new RegExp(`${CLASSES[pred]}$`));
});

test("the page predicts what Node predicts for the model's test images", { skip }, async (t) => {
  await initBackend();
  const { model } = loadModel(run);
  const n = samples.count;
  const images = Float32Array.from(sampleBytes, (v) => v / 255);
  const nodeScores = tf.tidy(() => model.forward(tf.tensor4d(images, [n, SIZE, SIZE, 3]), { decode: 'none' }).scores.dataSync() as Float32Array);
  model.dispose();
  const argmax = (s: ArrayLike<number>, i: number) => {
    let b = 0;
    for (let j = 1; j < 4; j++) if (s[i * 4 + j] > s[i * 4 + b]) b = j;
    return b;
  };
  const nearTie = (i: number) => {
    const sorted = Array.from(nodeScores.subarray(i * 4, i * 4 + 4)).sort((a, b) => b - a);
    return sorted[0] - sorted[1] < 1e-3 * sorted[0];
  };
  const browserScores = await page.evaluate(([imgs, k]) => window.capsviz.scoresFor(imgs, k), [Array.from(images), n] as [number[], number]);
  let right = 0;
  let maxDiff = 0;
  let compared = 0;
  for (let i = 0; i < n; i++) {
    if (argmax(nodeScores, i) === samples.labels[i]) right++;
    if (nearTie(i)) continue; // rounding may pick either
    compared++;
    assert.equal(argmax(browserScores, i), argmax(nodeScores, i), `sample ${i}`);
  }
  assert.ok(compared >= n - 2, `at most 2 near ties, found ${n - compared}`);
  for (let i = 0; i < 4 * n; i++) maxDiff = Math.max(maxDiff, Math.abs(browserScores[i] - nodeScores[i]));
  t.diagnostic(`${right}/${n} test images right after 2 epochs; ${compared} predictions compared with Node's; largest capsule-length difference from Node ${maxDiff.toExponential(2)}`);
  assert.ok(maxDiff < 1e-3, `capsule lengths within 1e-3 of Node's (${maxDiff})`);
  // The prediction the page shows for a chosen sample is Node's.
  for (const k of [0, 21, 38].filter((i) => !nearTie(i))) {
    await page.click(`#samples button >> nth=${k}`);
    await page.evaluate(() => window.capsviz.idle());
    assert.equal((await page.evaluate(() => window.capsviz.prediction))!.label, argmax(nodeScores, k), `sample ${k}`);
    assert.equal(await page.textContent('#prediction'), CLASSES[argmax(nodeScores, k)]);
  }
});

test('the pad does not take drawings for a 32x32 colour model; an upload is prepared as training pictures were', { skip }, async () => {
  assert.equal(await page.isVisible('#pad-note'), true);
  assert.match((await page.textContent('#pad-note'))!, /^Drawing is off: this model takes 32×32 colour pictures/);
  assert.equal(await page.isHidden('#clear'), true);
  const before = await page.evaluate(() => window.capsviz.prediction);
  const box = (await page.locator('#pad').boundingBox())!;
  await page.mouse.move(box.x + 0.3 * box.width, box.y + 0.3 * box.height);
  await page.mouse.down();
  await page.mouse.move(box.x + 0.7 * box.width, box.y + 0.7 * box.height, { steps: 6 });
  await page.mouse.up();
  await page.evaluate(() => window.capsviz.idle());
  assert.deepEqual(await page.evaluate(() => window.capsviz.prediction), before, 'a stroke changes nothing');

  // A 32x32 colour PNG of a test digit is the model's input as it is (no MNIST-style cropping).
  const mnist = loadMnist('test');
  const i = 5000;
  const png = await encodePicture(mnist, i, 2, { format: 'png', colour: true, size: SIZE });
  await page.setInputFiles('#upload', { name: 'blue.png', mimeType: 'image/png', buffer: png });
  await page.waitForFunction(() => window.capsviz.prediction?.source === 'uploaded "blue.png"');
  await page.evaluate(() => window.capsviz.idle());
  const seen = await canvasPixels(page, '#input-28');
  const { default: sharp } = await import('sharp');
  const raw = await sharp(png).removeAlpha().raw().toBuffer();
  let worst = 0;
  for (let p = 0; p < SIZE * SIZE; p++) for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(seen[4 * p + c] - raw[3 * p + c]));
  assert.ok(worst <= 1, `the upload reaches the model pixel for pixel (largest difference ${worst} of 255)`);
  assert.ok(colourful(seen) > 20);
  assert.match((await page.textContent('#input-status'))!, /prepared as the model's training pictures were \(32×32, colour\)/);
});

test('the views take the 32x32x3 input: conv1 in colour, an 8x8 capsule grid, a colour reconstruction', { skip }, async () => {
  await page.click('#samples button >> nth=0');
  await page.evaluate(() => window.capsviz.idle());
  for (const id of ['#view-conv1', '#view-primary', '#view-routing', '#view-recon', '#view-perturb']) assert.equal(await page.isVisible(id), true, id);
  assert.match((await page.textContent('#primary-explain'))!, /on the 8×8 grid of positions/);
  const recon = await page.$eval('#recon', (c) => [(c as HTMLCanvasElement).width, (c as HTMLCanvasElement).height]);
  assert.deepEqual(recon, [SIZE, SIZE]);
  const r = await canvasPixels(page, '#recon');
  assert.ok(colourful(r, 2) > 0, 'the reconstruction has three channels of its own');
  assert.ok(colourful(await canvasPixels(page, '#conv1-kernels'), 10) > 0, 'colour kernels');
  assert.match((await page.textContent('#seen-caption'))!, /\(32×32\)/);
  assert.deepEqual(errors, []);
  await page.screenshot({ path: join(ARTIFACTS, 'data-model.png'), fullPage: true });
});

test('an EM capsule network on 32x32x3 input shows its views with the class names, and its activations are Node\'s', { skip }, async (t) => {
  await initBackend();
  const dir = join(root, 'em');
  const m = createModel('em', 'small', { inputShape: [SIZE, SIZE, 3], numClasses: 4 }, 5);
  saveModel(m, dir, { metadata: { classNames: CLASSES, preparation: imagePreparation(SIZE, SIZE, 3) } });
  const n = 8;
  const images = Float32Array.from(sampleBytes.subarray(0, n * SIZE * SIZE * 3), (v) => v / 255);
  const nodeScores = tf.tidy(() => m.forward(tf.tensor4d(images, [n, SIZE, SIZE, 3])).scores.dataSync() as Float32Array);
  m.dispose();
  const srv = await startVizServer({ root: DEFAULT_VIZ_OUT, modelDir: dir, modelLabel: 'EM, 32x32x3', modelSamples: { json: JSON.stringify(samples), bin: sampleBytes } });
  const p = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const emErrors: string[] = [];
  p.on('pageerror', (e) => emErrors.push(e.message));
  try {
    await p.goto(srv.url);
    await p.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: 60_000 });
    await p.evaluate(() => window.capsviz.idle());
    assert.equal(await p.evaluate(() => window.capsviz.state), 'ready', (await p.evaluate(() => window.capsviz.error)) ?? '');
    assert.equal(await p.isVisible('#view-em'), true);
    assert.deepEqual((await p.locator('#em-poses caption').allTextContents()).map((c) => c.split(' · ')[0]), CLASSES);
    assert.deepEqual((await p.locator('#em-routing-maps figcaption').allTextContents()).map((c) => c.split(' · ')[0]), CLASSES);
    assert.ok((await p.locator('#em-layers canvas').count()) >= 1);
    assert.ok(colourful(await canvasPixels(p, '#input-28')) > 20, 'the input in colour');
    const browserScores = await p.evaluate(([imgs, k]) => window.capsviz.scoresFor(imgs, k), [Array.from(images), n] as [number[], number]);
    let maxDiff = 0;
    for (let i = 0; i < 4 * n; i++) maxDiff = Math.max(maxDiff, Math.abs(browserScores[i] - nodeScores[i]));
    t.diagnostic(`EM on 32x32x3: largest activation difference from Node ${maxDiff.toExponential(2)}`);
    assert.ok(maxDiff < 1e-3, `activations within 1e-3 of Node's (${maxDiff})`);
    assert.deepEqual(emErrors, []);
    await p.locator('#view-em').screenshot({ path: join(ARTIFACTS, 'data-model-em.png') });
  } finally {
    await p.close();
    await srv.close();
  }
});

test('capsnet viz --data PATH serves the same test images for a model away from its run', { skip }, async () => {
  const copy = join(root, 'copy');
  cpSync(join(run, 'checkpoints', readFileSync(join(run, 'latest'), 'utf8').trim(), 'model.json'), join(copy, 'model.json'));
  cpSync(join(run, 'checkpoints', readFileSync(join(run, 'latest'), 'utf8').trim(), 'weights.bin'), join(copy, 'weights.bin'));
  const env = { ...process.env, CAPSNET_CACHE_DIR: join(root, 'cache') };
  const child = spawn(process.execPath, [BIN, 'viz', '--model', copy, '--data', data, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`capsnet viz exited with ${code}: ${stderr}`)));
    });
    const { url: u, testImages } = JSON.parse(line) as { url: string; testImages: number };
    assert.equal(testImages, samples.count);
    const bin = new Uint8Array(await (await fetch(new URL('models/custom/samples.bin', u))).arrayBuffer());
    assert.deepEqual(bin, sampleBytes, 'prepared at the model\'s 32x32x3 from the folder itself');
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
});

test('capsnet viz: a --data that does not load, or --data without a model, is one clear line and a non-zero exit', { skip }, () => {
  const env = { ...process.env, CAPSNET_CACHE_DIR: join(root, 'cache') };
  const missing = spawnSync(process.execPath, [BIN, 'viz', '--model', run, '--data', join(root, 'nope')], { encoding: 'utf8', env });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr.trim(), /^capsnet viz: error: --data \S+nope: not found; expected a folder of class folders/);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  const alone = spawnSync(process.execPath, [BIN, 'viz', '--data', data], { encoding: 'utf8', env });
  assert.equal(alone.status, 2);
  assert.match(alone.stderr, /--data names the test images of a model: give the model with --model/);
});
