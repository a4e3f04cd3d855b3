/**
 * The visualizer's Train panel in headless Chromium: the page trains with
 * the library's training step in a Web Worker and gets what `capsnet
 * train` gets in Node for the same setup (weights, losses, test accuracy);
 * the downloaded model gives the page's accuracy in `capsnet eval`; the page
 * answers drawing while it trains; run, pause, step and reset; fine-tuning a
 * loaded model; the setup restored from a shared address; and the user's
 * own folder of pictures, read as `capsnet train --data` reads it. Each backend
 * in the order the page tries them: WebGPU (on the CPU through SwiftShader
 * here), WebGL (software-rendered here), wasm.
 *
 * On a machine without a GPU, WebGL and WebGPU run at about one image a
 * second (docs/visualizer.md), so their checks train a few steps and
 * compare the weights; the accuracy check trains 1,000 images on wasm.
 * CAPSNET_BROWSER_TRAIN_FULL=1 runs the 1,000-image check on WebGL and
 * WebGPU too (tens of minutes here, seconds on a GPU).
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { chromium, type Browser, type Page } from 'playwright-core';
import { initBackend } from '../src/backend/node.js';
import { take } from '../src/data/dataset.js';
import { loadMnist } from '../src/data/mnist.js';
import { loadUserData } from '../src/data/userData.js';
import '../src/models/index.js';
import type { ClassifierModel } from '../src/models/model.js';
import { createModel } from '../src/models/registry.js';
import { modelFromArtifacts } from '../src/models/serialization.js';
import { train } from '../src/training/trainer.js';
import { buildViz } from '../src/viz/build.js';
import { startVizServer, type VizServer } from '../src/viz/server.js';
import { ODD_CLASS_NAMES, writeClassFolders } from './userDataFiles.js';
import { ARTIFACTS, canvasPixels, CHROMIUM, CHROMIUM_ARGS, openGuardedPage, pageErrors, WEBGPU_ARGS } from './vizHelpers.js';

const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CAPSNET_CHROMIUM)`;
const FULL = process.env.CAPSNET_BROWSER_TRAIN_FULL === '1';
const BIN = new URL('../../bin/capsnet.js', import.meta.url).pathname;

let browser: Browser;
let server: VizServer;
let tmp: string;

before(async () => {
  if (skip) return;
  await initBackend();
  tmp = mkdtempSync(join(tmpdir(), 'capsnet-viz-train-'));
  mkdirSync(ARTIFACTS, { recursive: true });
  const built = await buildViz({ outDir: join(tmp, 'viz') });
  server = await startVizServer({ root: built.outDir });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** A training setup, as the page's address and as capsnet train's options. */
interface Setup {
  trainLimit: number;
  testLimit: number;
  batchSize: number;
  epochs: number;
}

function query(s: Setup, backend: string, start = true): string {
  return `?${start ? 'train=1&' : ''}arch=capsnet&preset=small&dataset=mnist&train-limit=${s.trainLimit}&test-limit=${s.testLimit}&epochs=${s.epochs}&batch-size=${s.batchSize}&backend=${backend}&checks=1`;
}

async function open(b: Browser, q: string, viewport = { width: 1400, height: 900 }): Promise<Page> {
  return openGuardedPage(b, server.url, server.url + q, { viewport, acceptDownloads: true });
}

/** Wait until the Train panel says `state` (or the page shows an error). */
async function trainState(page: Page, state: string, timeout = 600_000): Promise<void> {
  await page.waitForFunction((s) => document.getElementById('view-train')?.dataset.trainState === s || !document.getElementById('error')!.hidden, state, { timeout, polling: 250 });
  assert.equal(await page.evaluate(() => window.capsviz.error), null);
}

/** Press Download model and read the zip: the model and the folder name in it. */
async function downloadModel(page: Page, dir: string): Promise<{ model: ClassifierModel; metadata: Record<string, unknown>; folder: string }> {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#train-download')]);
  const zipPath = join(dir, dl.suggestedFilename());
  await dl.saveAs(zipPath);
  const files = unzipSync(new Uint8Array(readFileSync(zipPath)));
  const jsonPath = Object.keys(files).find((k) => k.endsWith('/model.json'))!;
  const folder = jsonPath.slice(0, -'/model.json'.length);
  for (const [k, v] of Object.entries(files)) {
    if (k.endsWith('/')) continue;
    mkdirSync(join(dir, folder), { recursive: true });
    writeFileSync(join(dir, k), v);
  }
  const json = JSON.parse(new TextDecoder().decode(files[jsonPath])) as { metadata: Record<string, unknown> };
  const { model } = modelFromArtifacts(json, files[`${folder}/weights.bin`], zipPath);
  return { model, metadata: json.metadata, folder: join(dir, folder) };
}

/** `capsnet train` in Node (its train()) on the same first images, with the page's defaults. */
async function nodeRun(s: Setup): Promise<{ model: ClassifierModel; accuracy: number; loss: number }> {
  const data = { train: take(loadMnist('train'), s.trainLimit), test: take(loadMnist('test'), s.testLimit) };
  const r = await train(
    { model: 'capsnet', preset: 'small', overrides: { inputShape: [28, 28, 1], numClasses: 10 }, dataset: 'mnist', epochs: s.epochs, batchSize: s.batchSize, learningRate: 0.001, lrDecay: 0.96, shift: 2, seed: 1, outDir: join(mkdtempSync(join(tmp, 'node-')), 'run') },
    data,
    { log: () => undefined },
  );
  return { model: r.model, accuracy: r.history[r.history.length - 1].testAccuracy!, loss: r.history[r.history.length - 1].trainLoss };
}

/** The largest relative difference (L2 norms) between the two models' parameters, with its parameter's name. */
function weightDifference(a: ClassifierModel, b: ClassifierModel): { worst: number; name: string } {
  let worst = 0;
  let name = '';
  for (const p of a.params) {
    const x = p.value.dataSync();
    const q = b.params.find((o) => o.name === p.name);
    assert.ok(q, `parameter ${p.name} in both models`);
    const y = q.value.dataSync();
    let d = 0;
    let n = 0;
    for (let i = 0; i < x.length; i++) {
      d += (x[i] - y[i]) ** 2;
      n += x[i] ** 2;
    }
    const rel = Math.sqrt(d / Math.max(n, 1e-30));
    if (rel > worst) [worst, name] = [rel, p.name];
  }
  return { worst, name };
}

function mean(a: number[]): number {
  return a.reduce((s, x) => s + x, 0) / a.length;
}

/** Train a few steps in the page on `backend`, then compare the weights with capsnet train's in Node after the same steps. */
async function fewSteps(t: TestContext, b: Browser, backend: string, s: Setup, tolerance: number): Promise<{ losses: number[]; model: ClassifierModel }> {
  const t0 = Date.now();
  const page = await open(b, query(s, backend));
  try {
    await trainState(page, 'done');
    const info = await page.evaluate(() => window.capsviz.train);
    assert.equal(info.backend, backend);
    assert.equal(info.losses.length, Math.ceil(s.trainLimit / s.batchSize));
    const browserRun = await downloadModel(page, mkdtempSync(join(tmp, `${backend}-`)));
    const node = await nodeRun(s);
    const diff = weightDifference(node.model, browserRun.model);
    t.diagnostic(`${backend}: ${info.losses.length} steps of ${s.batchSize} images, losses ${info.losses.map((x) => x.toFixed(4)).join(', ')} (Node's mean ${node.loss.toFixed(4)}); ${info.imagesPerSecond?.toFixed(2)} images/s; weights differ from capsnet train's by at most ${diff.worst.toExponential(2)} (relative L2, ${diff.name}); ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.ok(Math.abs(mean(info.losses) - node.loss) < 1e-3 * node.loss, `mean loss ${mean(info.losses)} in the page, ${node.loss} in Node`);
    assert.ok(diff.worst < tolerance, `weights within ${tolerance} of capsnet train's (${diff.worst} for ${diff.name})`);
    assert.deepEqual(pageErrors(page), []);
    node.model.dispose();
    return { losses: info.losses, model: browserRun.model };
  } finally {
    await page.close();
  }
}

/** The 1,000-image check: the page's test accuracy after one epoch, Node's for the same setup, and capsnet eval's for the downloaded model. */
async function accuracyCheck(t: TestContext, b: Browser, backend: string): Promise<void> {
  const s: Setup = { trainLimit: 1000, testLimit: 1000, batchSize: 32, epochs: 1 };
  const t0 = Date.now();
  const page = await open(b, query(s, backend));
  try {
    await page.waitForFunction(() => window.capsviz.train.losses.length >= 2, null, { timeout: 600_000 });
    // Drawing while the worker trains: the page handles each pointer event at once.
    if (backend === 'wasm') await drawWhileTraining(t, page);
    await trainState(page, 'done', FULL ? 3_600_000 : 600_000);
    const tTrained = Date.now();
    const attrs = await page.evaluate(() => ({ ...document.getElementById('view-train')!.dataset }));
    const info = await page.evaluate(() => window.capsviz.train);
    assert.equal(attrs.trainState, 'done');
    assert.equal(attrs.trainEpoch, '1');
    assert.equal(attrs.trainBackend, backend);
    const pageAccuracy = Number(attrs.trainTestAccuracy);
    assert.equal(pageAccuracy, info.testAccuracy);
    // The loss falls over the epoch (first and last quarter of the steps).
    const q = Math.floor(info.losses.length / 4);
    assert.ok(mean(info.losses.slice(-q)) < 0.8 * mean(info.losses.slice(0, q)), `loss from ${mean(info.losses.slice(0, q))} to ${mean(info.losses.slice(-q))}`);
    await page.locator('#view-train').screenshot({ path: join(ARTIFACTS, `train-${backend}.png`) });
    const node = await nodeRun(s);
    t.diagnostic(`${backend}: the small CapsNet on ${s.trainLimit} MNIST images, one epoch of batches of ${s.batchSize}: test accuracy ${(100 * pageAccuracy).toFixed(1)}% in the page, ${(100 * node.accuracy).toFixed(1)}% with capsnet train in Node (first ${s.testLimit} test images); ${info.imagesPerSecond?.toFixed(1)} images/s; ${((tTrained - t0) / 1000).toFixed(1)} s in the page`);
    assert.ok(pageAccuracy > 0.3, `the page learnt something (${pageAccuracy})`);
    assert.ok(Math.abs(pageAccuracy - node.accuracy) <= 0.03, `page ${pageAccuracy} and Node ${node.accuracy} within 3 points`);
    node.model.dispose();
    // The downloaded model, evaluated by capsnet eval on the same test images.
    const { model, metadata, folder } = await downloadModel(page, mkdtempSync(join(tmp, `eval-${backend}-`)));
    model.dispose();
    assert.equal(metadata.testAccuracy, pageAccuracy);
    assert.deepEqual(metadata.testImages, { dataset: 'mnist', split: 'test', first: s.testLimit });
    const note = await page.textContent('#train-download-note');
    assert.match(note ?? '', new RegExp(`capsnet eval --model \\S+ --dataset mnist --limit ${s.testLimit}`));
    const r = spawnSync(process.execPath, [BIN, 'eval', '--model', folder, '--limit', String(s.testLimit), '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const evalResult = JSON.parse(r.stdout) as { accuracy: number; correct: number; count: number };
    t.diagnostic(`capsnet eval on the downloaded model: ${evalResult.correct}/${evalResult.count}; the page: ${Math.round(pageAccuracy * s.testLimit)}/${s.testLimit}`);
    assert.equal(evalResult.count, s.testLimit);
    // Different float32 kernels: a near tie may fall the other way.
    assert.ok(Math.abs(evalResult.correct - Math.round(pageAccuracy * s.testLimit)) <= 1, `capsnet eval ${evalResult.accuracy}, the page ${pageAccuracy}`);
    assert.deepEqual(pageErrors(page), []);
  } finally {
    await page.close();
  }
}

/** Draw a stroke while the worker trains: each pointer event is handled within a frame or so, the pad's image reaches the input, and the prediction follows once the worker is between steps. */
async function drawWhileTraining(t: TestContext, page: Page): Promise<void> {
  assert.equal(await page.evaluate(() => window.capsviz.train.state), 'running');
  await page.evaluate(() => {
    const delays: number[] = [];
    (window as Window & { padDelays?: number[] }).padDelays = delays;
    document.getElementById('pad')!.addEventListener('pointermove', (e) => delays.push(performance.now() - e.timeStamp));
  });
  await page.click('#clear');
  const box = (await page.locator('#pad').boundingBox())!;
  const pts: [number, number][] = [[0.3, 0.2], [0.7, 0.2], [0.55, 0.5], [0.45, 0.8]];
  await page.mouse.move(box.x + pts[0][0] * box.width, box.y + pts[0][1] * box.height);
  await page.mouse.down();
  for (const [x, y] of pts.slice(1)) await page.mouse.move(box.x + x * box.width, box.y + y * box.height, { steps: 10 });
  await page.mouse.up();
  const delays = await page.evaluate(() => (window as Window & { padDelays?: number[] }).padDelays!);
  const sorted = [...delays].sort((a, b) => a - b);
  const ink = (await canvasPixels(page, '#input-28')).filter((v, i) => i % 4 === 0 && v > 0).length;
  assert.equal(await page.evaluate(() => window.capsviz.train.state), 'running', 'still training');
  t.diagnostic(`drawing while training: ${delays.length} pointer events handled after a median ${sorted[sorted.length >> 1].toFixed(1)} ms (longest ${sorted[sorted.length - 1].toFixed(1)} ms)`);
  assert.ok(delays.length >= 20, `${delays.length} pointer events reached the pad`);
  assert.ok(sorted[sorted.length >> 1] < 50 && sorted[sorted.length - 1] < 250, `pointer events wait ${sorted.join(', ')} ms`);
  assert.ok(ink > 20, 'the drawing is the input at once');
  await page.waitForFunction(() => window.capsviz.prediction?.source === 'your drawing', null, { timeout: 120_000 });
}

test('wasm: the Train panel trains the small CapsNet on 1,000 MNIST images as capsnet train does, and capsnet eval gets its accuracy from the download', { skip }, async (t) => {
  const t0 = Date.now();
  await accuracyCheck(t, browser, 'wasm');
  t.diagnostic(`test took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

test('WebGL: training steps in the page give capsnet train\'s weights', { skip }, async (t) => {
  const t0 = Date.now();
  if (FULL) await accuracyCheck(t, browser, 'webgl');
  else await fewSteps(t, browser, 'webgl', { trainLimit: 16, testLimit: 20, batchSize: 8, epochs: 1 }, 1e-4);
  t.diagnostic(`test took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

test('WebGPU: a few steps lower the loss, with the weights of a wasm run of the same steps', { skip }, async (t) => {
  const t0 = Date.now();
  const gpuBrowser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...WEBGPU_ARGS] });
  try {
    const s: Setup = { trainLimit: 8, testLimit: 8, batchSize: 4, epochs: 1 };
    if (FULL) await accuracyCheck(t, gpuBrowser, 'webgpu');
    const gpu = await fewSteps(t, gpuBrowser, 'webgpu', s, 1e-4);
    assert.ok(gpu.losses[gpu.losses.length - 1] < gpu.losses[0], `the loss falls: ${gpu.losses.join(', ')}`);
    const wasm = await fewSteps(t, browser, 'wasm', s, 1e-4);
    const diff = weightDifference(wasm.model, gpu.model);
    t.diagnostic(`WebGPU and wasm runs of the same ${gpu.losses.length} steps: weights within ${diff.worst.toExponential(2)} (relative L2, ${diff.name})`);
    assert.ok(diff.worst < 1e-4, `WebGPU's weights within 1e-4 of wasm's (${diff.worst} for ${diff.name})`);
    gpu.model.dispose();
    wasm.model.dispose();
  } finally {
    await gpuBrowser.close();
  }
  t.diagnostic(`test took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

test('run, pause, step one batch, reset; the views follow the weights; a downloaded model loads back and trains on', { skip }, async (t) => {
  const t0 = Date.now();
  const page = await open(browser, query({ trainLimit: 64, testLimit: 20, batchSize: 16, epochs: 2 }, 'wasm', false));
  try {
    await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 60_000 });
    await page.evaluate(() => window.capsviz.idle());
    assert.equal(await page.getAttribute('#view-train', 'data-train-state'), 'idle');
    assert.equal(await page.textContent('#train-run'), 'Train');
    const scores = () => page.evaluate(async () => (await window.capsviz.idle(), window.capsviz.prediction!.scores));
    const kernels = () => canvasPixels(page, '#conv1-kernels');
    // Step: a fresh small CapsNet, one batch; the views show it.
    await page.click('#train-step');
    await page.waitForFunction(() => window.capsviz.train.losses.length === 1);
    assert.equal(await page.getAttribute('#view-train', 'data-train-state'), 'paused');
    await page.waitForFunction(() => /CapsNet/.test(document.getElementById('model-info')!.textContent ?? ''));
    const first = await page.evaluate(() => window.capsviz.train.losses[0]);
    const [s1, k1] = [await scores(), await kernels()];
    await page.click('#train-step');
    await page.waitForFunction(() => window.capsviz.train.losses.length === 2);
    await page.waitForTimeout(500); // the views refresh at most every 400 ms while the weights change
    const [s2, k2] = [await scores(), await kernels()];
    assert.notDeepEqual(s2, s1, 'the class capsules follow the weights');
    assert.notDeepEqual(k2, k1, 'the conv1 kernels follow the weights');
    // Run and pause.
    await page.click('#train-run');
    await page.waitForFunction(() => document.getElementById('view-train')!.dataset.trainState === 'running');
    assert.equal(await page.textContent('#train-run'), 'Pause');
    assert.equal(await page.isDisabled('#train-epochs'), true, 'settings are fixed while training');
    await page.waitForFunction(() => window.capsviz.train.losses.length >= 3);
    await page.click('#train-run');
    await trainState(page, 'paused');
    const paused = await page.evaluate(() => window.capsviz.train.losses.length);
    await page.waitForTimeout(1500);
    assert.equal(await page.evaluate(() => window.capsviz.train.losses.length), paused, 'no steps while paused');
    assert.equal(await page.textContent('#train-run'), 'Continue');
    // Reset: the start again, so the next step repeats the first.
    await page.click('#train-reset');
    await trainState(page, 'idle');
    assert.deepEqual(await page.evaluate(() => window.capsviz.train.losses), []);
    await page.click('#train-step');
    await page.waitForFunction(() => window.capsviz.train.losses.length === 1);
    assert.equal(await page.evaluate(() => window.capsviz.train.losses[0]), first, 'the first step again, to the bit');
    assert.deepEqual(await scores(), s1, 'the same weights as after the first step');
    // Download, load back, fine-tune.
    const { model, folder } = await downloadModel(page, mkdtempSync(join(tmp, 'reload-')));
    model.dispose();
    await page.setInputFiles('#train-load', [join(folder, 'model.json'), join(folder, 'weights.bin')]);
    await page.waitForFunction(() => document.getElementById('train-arch') instanceof HTMLSelectElement && (document.getElementById('train-arch') as HTMLSelectElement).value === 'current');
    await page.evaluate(() => window.capsviz.idle());
    assert.deepEqual(await scores(), s1, 'the loaded model is the downloaded one');
    await page.click('#train-step');
    await page.waitForFunction(() => window.capsviz.train.losses.length === 1);
    t.diagnostic(`fine-tuning the loaded model: first loss ${(await page.evaluate(() => window.capsviz.train.losses[0])).toFixed(4)} (the fresh model's first: ${first.toFixed(4)})`);
    assert.equal(await page.getAttribute('#view-train', 'data-train-state'), 'paused');
    assert.deepEqual(pageErrors(page), []);
  } finally {
    await page.close();
  }
  t.diagnostic(`test took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

test('the address holds the setup (model, data, schedule, test image, view choices) and a shared link restores it', { skip }, async (t) => {
  const t0 = Date.now();
  const setup = '?arch=cnn&preset=small&dataset=mnist&train-limit=500&test-limit=200&epochs=2&batch-size=16&lr=0.002&model=mnist-small&image=3&iter=1&colour=value&weight=0&kernel=5&capsule=2';
  const page = await open(browser, setup);
  try {
    await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 60_000 });
    await page.evaluate(() => window.capsviz.idle());
    const controls = () =>
      page.evaluate(() => {
        const v = (id: string) => (document.getElementById(id) as HTMLInputElement).value;
        return { arch: v('train-arch'), dataset: v('train-dataset'), trainLimit: v('train-limit'), testLimit: v('test-limit'), epochs: v('train-epochs'), batch: v('train-batch'), lr: v('train-lr') };
      });
    assert.deepEqual(await controls(), { arch: 'cnn/small', dataset: 'mnist', trainLimit: '500', testLimit: '200', epochs: '2', batch: '16', lr: '0.002' });
    assert.match((await page.getAttribute('#samples button[aria-pressed=true]', 'aria-label')) ?? '', /^Test image 4,/);
    assert.equal(await page.textContent('#iter-value'), '1 of 3');
    assert.equal(await page.inputValue('#iter-mode'), 'value');
    assert.equal(await page.isChecked('#iter-weight'), false);
    assert.equal(await page.getAttribute('#digit-bars [data-cls="2"]', 'aria-checked'), 'true');
    assert.match((await page.textContent('#recon-caption')) ?? '', /digit capsule 2$/);
    assert.match((await page.textContent('#conv1-info')) ?? '', /^Kernel and map 5 of/);
    // Changes go into the address; the address opens the same page.
    await page.fill('#train-epochs', '3');
    await page.dispatchEvent('#train-epochs', 'change');
    await page.click('#samples button >> nth=41');
    await page.click('#iter-next');
    await page.evaluate(() => window.capsviz.idle());
    const url = page.url();
    assert.match(url, /epochs=3/);
    const again = await open(browser, url.slice(server.url.length));
    try {
      await again.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 60_000 });
      await again.evaluate(() => window.capsviz.idle());
      assert.equal(await again.inputValue('#train-epochs'), '3');
      assert.equal(await again.inputValue('#train-arch'), 'cnn/small');
      assert.equal(await again.getAttribute('#samples button >> nth=41', 'aria-pressed'), 'true');
      assert.equal(await again.textContent('#iter-value'), '2 of 3');
      assert.equal(await again.inputValue('#iter-mode'), 'value');
      assert.deepEqual(pageErrors(again), []);
    } finally {
      await again.close();
    }
  } finally {
    await page.close();
  }
  // A bad value is one line naming the parameter.
  const bad = await open(browser, '?epochs=0');
  try {
    await bad.waitForFunction(() => !document.getElementById('error')!.hidden);
    assert.match((await bad.textContent('#error')) ?? '', /^epochs=0 in the address: expected a whole number from 1 to 100$/);
  } finally {
    await bad.close();
  }
  t.diagnostic(`test took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

test('a folder of pictures chosen in the page: classes, split and input as capsnet train --data makes them; parameter counts of the model built for it; it trains, and capsnet eval scores the download as the page did', { skip }, async (t) => {
  const t0 = Date.now();
  // Real MNIST test digits of three classes as PNG files, in folders with odd names, beside a note, a hidden file and a file that is no picture.
  const dir = join(mkdtempSync(join(tmp, 'folder-')), 'my digits');
  const names = ODD_CLASS_NAMES.slice(0, 3);
  await writeClassFolders(dir, take(loadMnist('test'), 400), { format: 'png', colour: false, perClass: 20, names, classes: 3 });
  writeFileSync(join(dir, names[0], 'notes.txt'), 'not a picture');
  writeFileSync(join(dir, names[1], '.hidden.png'), 'skipped: hidden');
  writeFileSync(join(dir, names[2], 'broken.png'), 'not a PNG at all');
  const valSplit = 0.25;
  const cacheDir = join(tmp, 'folder-cache');
  const nodeSplit = { cacheDir, valSplit, skipInvalid: true, log: () => undefined };
  const [nodeTrain, nodeTest] = [await loadUserData(dir, 'train', nodeSplit), await loadUserData(dir, 'test', nodeSplit)];

  const page = await open(browser, `?arch=capsnet&preset=small&dataset=folder&val-split=${valSplit}&epochs=1&batch-size=8&backend=wasm&checks=1`);
  try {
    await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 60_000 });
    assert.equal(await page.isVisible('#train-folder-row'), true, 'the folder row shows for dataset=folder');
    assert.match((await page.textContent('#train-folder-note')) ?? '', /address cannot hold a folder/);
    await page.setInputFiles('#train-folder', dir);
    await page.waitForFunction(() => /classes/.test(document.getElementById('train-folder-status')!.textContent ?? ''), null, { timeout: 120_000 });
    const described = (await page.textContent('#train-folder-status')) ?? '';
    t.diagnostic(`the folder in the page: ${described}`);
    assert.match(described, new RegExp(`^my digits: 3 classes \\(${[...names].sort().join(', ')}\\), ${nodeTrain.count} training and ${nodeTest.count} test pictures \\(25% of each class held out, seed 1\\); their own size, 28×28, gray\\. Left out 1 file the browser cannot decode, first: ${names[2]}/broken\\.png`));
    assert.equal(await page.inputValue('#train-limit'), String(nodeTrain.count));
    assert.equal(await page.inputValue('#test-limit'), String(nodeTest.count));
    // The address keeps the settings but not the folder.
    assert.match(page.url(), /dataset=folder/);
    assert.match(page.url(), /val-split=0\.25/);
    assert.doesNotMatch(decodeURIComponent(page.url()), /my digits/);
    // The model menu counts each model's parameters on the model built for this data (28x28x1, 3 classes).
    await page.waitForFunction(() => (document.querySelector('#train-arch option[value="capsnet/small"]') as HTMLOptionElement | null)?.dataset.params !== undefined);
    const expected = createModel('capsnet', 'small', { inputShape: [28, 28, 1], numClasses: 3 }, 1);
    const counted = Number(await page.getAttribute('#train-arch option[value="capsnet/small"]', 'data-params'));
    assert.equal(counted, expected.countParams());
    expected.dispose();
    assert.match((await page.textContent('#train-arch option[value="capsnet/small"]')) ?? '', /^Small CapsNet \(dynamic routing\) · \d+(\.\d+)? [kM] parameters$/);
    assert.match((await page.textContent('#train-arch option[value="efficient/mnist"]')) ?? '', /· \d+(\.\d+)? [kM] parameters \(\d+(\.\d+)? k without the decoder\)$/);

    await page.click('#train-run');
    await trainState(page, 'done');
    const info = await page.evaluate(() => window.capsviz.train);
    assert.equal(info.losses.length, Math.ceil(nodeTrain.count / 8));
    // The views show the new model with the folder's class names and its own test pictures.
    await page.evaluate(() => window.capsviz.idle());
    assert.equal(await page.locator('#digit-bars [role=radio]').count(), 3);
    const bars = await page.locator('#digit-bars [role=radio]').evaluateAll((els) => els.map((e) => e.getAttribute('aria-label') ?? ''));
    for (const n of names) assert.ok(bars.some((b) => b.includes(n)), `a class bar for '${n}' (${bars.join(' | ')})`);
    assert.match((await page.textContent('#h-samples')) ?? '', /^my digits test images$/);
    assert.equal(await page.locator('#samples button').count(), nodeTest.count);
    await page.locator('#view-train').screenshot({ path: join(ARTIFACTS, 'train-folder.png') });

    const { model, metadata, folder } = await downloadModel(page, mkdtempSync(join(tmp, 'folder-dl-')));
    model.dispose();
    assert.equal(metadata.dataset, 'my digits');
    assert.deepEqual(metadata.classNames, [...names].sort());
    assert.deepEqual(metadata.preparation, { kind: 'resize', height: 28, width: 28, channels: 1, fit: 'fill', background: 'black' });
    assert.deepEqual(metadata.heldOut, { fraction: valSplit, seed: 1 });
    assert.deepEqual(metadata.testImages, { dataset: 'my digits', split: 'test', first: nodeTest.count, folder: { 'val-split': valSplit, 'data-seed': 1, 'skip-invalid': true } });
    const note = (await page.textContent('#train-download-note')) ?? '';
    assert.match(note, /capsnet eval --model \S+ --data PATH\/TO\/'my digits' --val-split 0\.25 --data-seed 1 --skip-invalid --limit \d+/);
    // capsnet eval on the folder as the note says, on the same test pictures: the page's count of right answers.
    const r = spawnSync(process.execPath, [BIN, 'eval', '--model', folder, '--data', dir, '--val-split', String(valSplit), '--data-seed', '1', '--skip-invalid', '--limit', String(nodeTest.count), '--cache-dir', cacheDir, '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const evalResult = JSON.parse(r.stdout) as { correct: number; count: number };
    const pageCorrect = Math.round(info.testAccuracy! * nodeTest.count);
    t.diagnostic(`capsnet eval on the downloaded model: ${evalResult.correct}/${evalResult.count}; the page: ${pageCorrect}/${nodeTest.count}; ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(evalResult.count, nodeTest.count);
    assert.ok(Math.abs(evalResult.correct - pageCorrect) <= 1, `capsnet eval ${evalResult.correct}, the page ${pageCorrect}`);
    assert.deepEqual(pageErrors(page), []);
  } finally {
    await page.close();
  }
});
