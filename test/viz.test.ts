/**
 * The visualizer end to end in headless Chromium (Debian's chromium, driven
 * by playwright-core): loading a model, drawing, uploads, the sliders, the
 * routing stepper, error pages, the phone layout, keyboard access, and
 * browser predictions against Node's for the same weights and images.
 * Screenshots go to test-artifacts/viz/.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { initBackend } from '../src/backend/node.js';
import { fashionMnistDir } from '../src/data/fashionMnist.js';
import { argmaxRows } from '../src/export/onnxRuntime.js';
import '../src/models/index.js';
import { loadModel, resolveModelDir, saveModel } from '../src/models/files.js';
import type { CapsNet } from '../src/models/capsnet.js';
import { listPretrained } from '../src/models/pretrained.js';
import { createModel } from '../src/models/registry.js';
import { buildViz } from '../src/viz/build.js';
import { startVizServer, type VizServer } from '../src/viz/server.js';
import { ARTIFACTS, canvasPixels, CHROMIUM, CHROMIUM_ARGS, openGuardedPage, pageErrors } from './vizHelpers.js';

const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CAPSNET_CHROMIUM)`;

let browser: Browser;
let server: VizServer;
let buildDir: string;
let modelDir: string;
let modelName: string;

before(async () => {
  if (skip) return;
  await initBackend();
  const tmp = mkdtempSync(join(tmpdir(), 'capsnet-viz-'));
  mkdirSync(ARTIFACTS, { recursive: true });
  // CAPSNET_VIZ_TEST_MODEL, or the shipped small model when this copy has
  // it, or else fixed random weights (with larger transformation matrices,
  // so that capsule lengths are far from zero).
  const shipped = listPretrained().find((p) => p.name === 'mnist-small' && p.available);
  if (process.env.CAPSNET_VIZ_TEST_MODEL) {
    modelDir = resolveModelDir(process.env.CAPSNET_VIZ_TEST_MODEL);
    modelName = modelDir;
  } else if (shipped) {
    modelDir = shipped.dir;
    modelName = 'pretrained mnist-small';
  } else {
    modelDir = join(tmp, 'model');
    const m = createModel('capsnet', 'small', { digit: { initStddev: 1 } }, 7);
    saveModel(m, modelDir);
    m.dispose();
    modelName = 'small CapsNet with random weights';
  }
  buildDir = (await buildViz({ outDir: join(tmp, 'viz') })).outDir;
  server = await startVizServer({ root: buildDir, modelDir, modelLabel: modelName });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
  });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function open(query = '', viewport = { width: 1400, height: 900 }, phone = false): Promise<Page> {
  // Nothing may be fetched from anywhere but the page's own origin.
  const page = await openGuardedPage(browser, server.url, server.url + query, { viewport, ...(phone ? { hasTouch: true, isMobile: true, deviceScaleFactor: 2 } : {}) });
  await page.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: 60_000 });
  await page.evaluate(() => window.capsviz.idle());
  return page;
}


function differing(a: number[], b: number[]): number {
  if (a.length !== b.length) return Math.max(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

async function shot(page: Page, name: string, fullPage = true): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage });
}

let page: Page;

test('the page loads the model and predicts the first test image', { skip }, async (t) => {
  page = await open();
  const api = await page.evaluate(() => ({ state: window.capsviz.state, error: window.capsviz.error, backend: window.capsviz.backend, prediction: window.capsviz.prediction }));
  t.diagnostic(`model: ${modelName}; backend in headless Chromium: ${api.backend}`);
  assert.equal(api.state, 'ready', api.error ?? '');
  assert.ok(['webgl', 'wasm', 'cpu'].includes(api.backend));
  assert.ok(api.prediction, 'a prediction');
  assert.match(api.prediction.source, /MNIST test image #0/);
  assert.match((await page.textContent('#model-info')) ?? '', /CapsNet, dynamic routing .* backend (webgl|wasm|cpu)/);
  assert.equal(await page.textContent('#prediction'), String(api.prediction.label));
  assert.equal(await page.locator('#samples button').count(), 100);
  assert.equal(await page.locator('#digit-bars [role=radio]').count(), 10);
  assert.equal(await page.locator('#sliders input[type=range]').count(), 16);
  assert.equal(await page.locator('#routing-maps canvas').count(), 10);
  // Each view shows the formula it illustrates, from the model's layout, and links the paper's section.
  const references = await page.$$eval('.reference-slot:not([hidden])', (slots) =>
    slots.map((slot) => ({ id: slot.id, formula: slot.querySelector('.formula')?.textContent ?? '', sub: slot.querySelectorAll('.formula sub').length, link: slot.querySelector('a')?.getAttribute('href') ?? '', cite: slot.querySelector('a')?.textContent ?? '' })),
  );
  const byView = Object.fromEntries(references.map((r) => [r.id, r]));
  assert.deepEqual(Object.keys(byView).sort(), ['conv1-ref', 'digits-ref', 'perturb-ref', 'primary-ref', 'recon-ref', 'routing-ref']);
  for (const r of references) {
    assert.equal(r.link, 'https://arxiv.org/abs/1710.09829', `${r.id} links the CapsNet paper`);
    assert.match(r.cite, /^Sabour et al\. 2017, Sec\. \d/, r.id);
  }
  // The squash (Eq. 1) on the primary capsules, the coupling softmax (Eq. 3) and the agreement of Procedure 1 on the routing, subscripts set as such.
  assert.equal(byView['primary-ref'].formula, 'vj = ‖sj‖2 / (1 + ‖sj‖2) · sj / ‖sj‖');
  assert.equal(byView['primary-ref'].cite, 'Sabour et al. 2017, Sec. 2, Eq. 1 (squash)');
  assert.ok(byView['primary-ref'].sub >= 4, 'subscripts are <sub> elements');
  assert.match((await page.textContent('#routing-ref')) ?? '', /cij = exp\(bij\) \/ Σk exp\(bik\).*bij ← bij \+ ûj\|i · vj/s);
  assert.match(byView['routing-ref'].cite, /Eq\. 2–3, Procedure 1$/);
  assert.match(byView['digits-ref'].cite, /Sec\. 3, Eq\. 4$/);
  assert.match(byView['recon-ref'].cite, /Sec\. 4\.1$/);
  assert.deepEqual(pageErrors(page), []);
  await shot(page, 'desktop');
});

test('a drawn stroke gets a prediction, from an input centred like MNIST', { skip }, async () => {
  await page.click('#clear');
  const box = (await page.locator('#pad').boundingBox())!;
  // A "7": a bar, then a diagonal down to the left.
  const pts: [number, number][] = [[0.25, 0.22], [0.72, 0.22], [0.6, 0.5], [0.45, 0.8]];
  await page.mouse.move(box.x + pts[0][0] * box.width, box.y + pts[0][1] * box.height);
  await page.mouse.down();
  for (const [x, y] of pts.slice(1)) await page.mouse.move(box.x + x * box.width, box.y + y * box.height, { steps: 8 });
  await page.mouse.up();
  await page.evaluate(() => window.capsviz.idle());
  const pred = await page.evaluate(() => window.capsviz.prediction);
  assert.ok(pred);
  assert.equal(pred.source, 'your drawing');
  assert.ok(pred.label >= 0 && pred.label <= 9);
  assert.equal(await page.textContent('#prediction'), String(pred.label));
  // The 28x28 input has ink, centred by mass within a pixel or so.
  const px = await canvasPixels(page, '#input-28');
  let mass = 0;
  let cx = 0;
  let cy = 0;
  for (let i = 0; i < 28 * 28; i++) {
    const v = px[4 * i];
    mass += v;
    cx += v * ((i % 28) + 0.5);
    cy += v * (Math.floor(i / 28) + 0.5);
  }
  assert.ok(mass > 0, 'the drawing reaches the model');
  assert.ok(Math.abs(cx / mass - 14) < 1.5 && Math.abs(cy / mass - 14) < 1.5, `centre of mass (${(cx / mass).toFixed(1)}, ${(cy / mass).toFixed(1)})`);
  await shot(page, 'drawn', false);
});

test('moving a slider changes the reconstruction and runs only the decoder', { skip }, async (t) => {
  await page.click('#samples button >> nth=40'); // a 4
  await page.evaluate(() => window.capsviz.idle());
  const before = await canvasPixels(page, '#recon');
  const predBefore = await page.evaluate(() => window.capsviz.prediction);
  await page.focus('#slider-0');
  await page.keyboard.press('End');
  await page.evaluate(() => window.capsviz.idle());
  const afterEnd = await canvasPixels(page, '#recon');
  assert.ok(differing(before, afterEnd) > 0, 'the reconstruction changed');
  // Sliders leave the forward pass alone.
  assert.deepEqual(await page.evaluate(() => window.capsviz.prediction), predBefore);
  for (let i = 0; i < 15; i++) {
    await page.keyboard.press(i % 2 ? 'ArrowLeft' : 'PageDown');
    await page.evaluate(() => window.capsviz.idle());
  }
  const lat = await page.evaluate(() => ({ latencies: window.capsviz.latencies, decode: window.capsviz.decodeTimes, backend: window.capsviz.backend }));
  assert.ok(lat.latencies.length >= 10);
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  t.diagnostic(`slider -> redrawn reconstruction: median ${med(lat.latencies).toFixed(1)} ms over ${lat.latencies.length} moves (decoder + draw ${med(lat.decode).toFixed(1)} ms) on ${lat.backend}`);
  writeFileSync(join(ARTIFACTS, 'slider-latency.json'), JSON.stringify({ model: modelName, ...lat }, null, 1));
  await page.locator('#view-recon').screenshot({ path: join(ARTIFACTS, 'reconstruction-slider-moved.png') });
  await page.click('#sliders-reset');
  await page.evaluate(() => window.capsviz.idle());
  assert.deepEqual(await canvasPixels(page, '#recon'), before, 'reset restores the reconstruction');
  await page.locator('#view-recon').screenshot({ path: join(ARTIFACTS, 'reconstruction.png') });
  await page.locator('#view-perturb').screenshot({ path: join(ARTIFACTS, 'perturbation-grid.png') });
});

test('the iteration stepper changes the coupling view', { skip }, async () => {
  const pred = (await page.evaluate(() => window.capsviz.prediction))!.label;
  while (await page.isEnabled('#iter-prev')) await page.click('#iter-prev');
  assert.equal(await page.evaluate(() => window.capsviz.iteration), 0);
  assert.match((await page.textContent('#iter-value'))!, /^1 of \d+$/);
  const first = await canvasPixels(page, `#routing-${pred}`);
  await page.locator('#view-routing').screenshot({ path: join(ARTIFACTS, 'routing-iteration-1.png') });
  await page.click('#iter-next');
  assert.match((await page.textContent('#iter-value'))!, /^2 of \d+$/);
  const second = await canvasPixels(page, `#routing-${pred}`);
  assert.ok(differing(first, second) > 0, 'the coupling map changed between iterations 1 and 2');
  while (await page.isEnabled('#iter-next')) await page.click('#iter-next');
  await page.locator('#view-routing').screenshot({ path: join(ARTIFACTS, 'routing-last-iteration.png') });
  // Hovering a primary capsule shows its vector.
  await page.locator('#primary-maps').hover({ position: { x: 6, y: 10 } });
  assert.match((await page.textContent('#capsule-info'))!, /Capsule type \d+, row \d+, column \d+ .*length 0\.\d+/);
  await page.locator('#view-primary').screenshot({ path: join(ARTIFACTS, 'primary-capsule-hover.png') });
});

test('uploads: a picture becomes an input; a file that is not an image gets a clear message', { skip }, async () => {
  await page.setInputFiles('#upload', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a picture') });
  await page.waitForSelector('#upload-error:not([hidden])');
  assert.match((await page.textContent('#upload-error'))!, /"notes\.txt" is not an image/);
  await page.setInputFiles('#upload', { name: 'broken.png', mimeType: 'image/png', buffer: Buffer.from('garbage, not PNG data') });
  await page.waitForFunction(() => /could not be read as an image/.test(document.getElementById('upload-error')!.textContent ?? ''));
  // Dark ink on white paper, like a photo of a drawing: a thick "1".
  const png = new PNG({ width: 60, height: 80 });
  for (let y = 0; y < 80; y++) {
    for (let x = 0; x < 60; x++) {
      const ink = x >= 26 && x < 34 && y >= 10 && y < 70;
      png.data.set(ink ? [20, 20, 20, 255] : [235, 235, 235, 255], 4 * (y * 60 + x));
    }
  }
  await page.setInputFiles('#upload', { name: 'one.png', mimeType: 'image/png', buffer: PNG.sync.write(png) });
  await page.waitForFunction(() => window.capsviz.prediction?.source === 'uploaded "one.png"');
  await page.evaluate(() => window.capsviz.idle());
  assert.equal(await page.isHidden('#upload-error'), true);
  const px = await canvasPixels(page, '#input-28');
  assert.ok(px[4 * (14 * 28 + 14)] > 128, 'the stroke is bright ink in the middle of the input');
  assert.equal(px[4 * (14 * 28 + 4)], 0, 'the paper is black');
  assert.deepEqual(pageErrors(page), []);
});

test('every control has a label and is reachable with the keyboard', { skip }, async () => {
  const unlabeled = await page.$$eval('button, input, select, canvas[tabindex]', (els) =>
    els
      .filter((e) => !(e as HTMLElement).closest('[hidden]'))
      .filter((e) => {
        const el = e as HTMLInputElement;
        const name = el.getAttribute('aria-label') || el.labels?.[0]?.textContent || el.textContent || el.title;
        return !name || !name.trim();
      })
      .map((e) => e.outerHTML.slice(0, 80)),
  );
  assert.deepEqual(unlabeled, []);
  await page.focus('body');
  const reached = new Set<string>();
  for (let i = 0; i < 90; i++) {
    await page.keyboard.press('Tab');
    reached.add(await page.evaluate(() => {
      const a = document.activeElement as HTMLElement | null;
      return a?.id || a?.getAttribute('role') || a?.closest('[id]')?.id || '';
    }));
  }
  for (const id of ['model-select', 'clear', 'upload', 'samples', 'radio', 'sliders-reset', 'slider-0', 'slider-15', 'conv1-maps', 'primary-maps', 'iter-play', 'iter-mode', 'perturb']) {
    assert.ok(reached.has(id), `Tab reaches ${id} (reached: ${[...reached].join(' ')})`);
  }
});

test('the layout fits a phone screen, and a finger draws', { skip }, async () => {
  const phone = await open('', { width: 390, height: 844 }, true);
  try {
    assert.equal(await phone.evaluate(() => window.capsviz.state), 'ready');
    // A touch stroke (real touch events through the DevTools protocol).
    await phone.click('#clear');
    await phone.locator('#pad').scrollIntoViewIfNeeded();
    const box = (await phone.locator('#pad').boundingBox())!;
    const cdp = await phone.context().newCDPSession(phone);
    const at = (fx: number, fy: number) => [{ x: box.x + fx * box.width, y: box.y + fy * box.height }];
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: at(0.5, 0.15) });
    for (let k = 1; k <= 10; k++) await cdp.send('Input.dispatchTouchEvent', { type: 'touchMove', touchPoints: at(0.5, 0.15 + 0.07 * k) });
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    await phone.evaluate(() => window.capsviz.idle());
    assert.equal((await phone.evaluate(() => window.capsviz.prediction))?.source, 'your drawing');
    await phone.evaluate(() => window.scrollTo(0, 0));
    const wide = await phone.evaluate(() =>
      Array.from(document.querySelectorAll('body *'))
        .filter((e) => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
        .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className} (${Math.round(e.getBoundingClientRect().right)}px)`),
    );
    assert.deepEqual(wide, [], 'nothing reaches past the right edge of the screen');
    // Tapping a map selects what is under the finger, and the captions say Tap.
    assert.match((await phone.textContent('#primary-explain')) ?? '', /Tap a capsule/);
    const maps = phone.locator('#primary-maps');
    await maps.scrollIntoViewIfNeeded();
    const mb = (await maps.boundingBox())!;
    const tapped: string[] = [];
    for (const [fx, fy] of [[0.05, 0.05], [0.9, 0.9]]) {
      await phone.touchscreen.tap(mb.x + fx * mb.width, mb.y + fy * mb.height);
      tapped.push(((await phone.textContent('#capsule-info')) ?? '').split(':')[0]);
    }
    assert.match(tapped[0], /^Capsule type 1, row 1, column [12] /);
    assert.notEqual(tapped[1], tapped[0], 'a tap elsewhere selects another capsule');
    await shot(phone, 'phone');
  } finally {
    await phone.close();
  }
});

test('an empty pad detects nothing; the primary capsules and the routing say what their colours mean', { skip }, async () => {
  await page.click('#clear');
  await page.evaluate(() => window.capsviz.idle());
  assert.equal(await page.textContent('#prediction'), 'nothing detected');
  assert.match((await page.textContent('#prediction-conf')) ?? '', /^\(the highest capsule length, \d's, is 0\.\d{3}; a class counts as present above 0\.5\)$/);
  await page.click('#samples button >> nth=70'); // a 7
  await page.evaluate(() => window.capsviz.idle());
  assert.equal(await page.textContent('#prediction'), '7');
  // The primary capsules' colours span this input's lengths, with a legend.
  const lo = Number(await page.textContent('#primary-scale-lo'));
  const hi = Number(await page.textContent('#primary-scale-hi'));
  assert.ok(lo >= 0 && hi <= 1 && hi > lo, `legend from ${lo} to ${hi}`);
  const px = await canvasPixels(page, '#primary-maps');
  const reds = new Set<number>();
  for (let i = 0; i < px.length; i += 4) if (px[i + 2] !== 255 || px[i] !== 255) reds.add(px[i]);
  assert.ok(Math.min(...reds) < 40 && Math.max(...reds) > 240, 'the maps run from dark to bright');
  // The routing view says how far the coefficients are from an even split.
  assert.match((await page.textContent('#routing-summary')) ?? '', /the prediction, lie between \d+\.\d% and \d+\.\d%; to the others between \d+\.\d% and \d+\.\d%\. An even split is 10\.0%\./);
  assert.match((await page.textContent('#routing-legend')) ?? '', /tie \(an even split\)/);
  await page.locator('#view-primary').screenshot({ path: join(ARTIFACTS, 'primary-capsules.png') });
});

test('a broken model URL shows an error, not a blank page', { skip }, async () => {
  const p = await open('?model=no-such-model/model.json');
  try {
    assert.equal(await p.evaluate(() => window.capsviz.state), 'error');
    const msg = (await p.textContent('#error'))!;
    assert.match(msg, /Could not load the model from no-such-model\/model\.json: could not load .*HTTP 404/);
    assert.equal(await p.isVisible('#error'), true);
    assert.equal(await p.isVisible('#view-input'), true);
    assert.equal(await p.locator('#samples button').count(), 100);
    await shot(p, 'broken-model-url');
  } finally {
    await p.close();
  }
  const q = await open('?model=samples.json');
  try {
    assert.match((await q.textContent('#error'))!, /not a capsnet model/);
  } finally {
    await q.close();
  }
});

const fashionModel = listPretrained().find((p) => p.name === 'fashion-mnist' && p.available);
const fashionSkip = skip || (!fashionModel ? 'the Fashion-MNIST model is not in this copy' : !existsSync(join(fashionMnistDir(), 't10k-images-idx3-ubyte.gz')) ? 'Fashion-MNIST is not installed' : false);

test('a model trained on Fashion-MNIST gets Fashion-MNIST test images and classifies them', { skip: fashionSkip }, async (t) => {
  const served = (await (await fetch(new URL('models.json', server.url))).json()) as { models: { id: string }[] };
  const index = served.models.findIndex((m) => m.id === 'fashion-mnist');
  assert.ok(index > 0, 'the shipped Fashion-MNIST model is offered');
  const meta = JSON.parse(readFileSync(join(buildDir, 'samples-fashion-mnist.json'), 'utf8')) as { labels: number[]; classNames: string[]; indices: number[]; count: number };
  const p = await open();
  try {
    await p.selectOption('#model-select', String(index));
    await p.waitForFunction(() => document.body.dataset.state === 'ready' && /^Fashion-MNIST/.test(window.capsviz.prediction?.source ?? ''), null, { timeout: 60_000 });
    await p.evaluate(() => window.capsviz.idle());
    const k0 = meta.indices.indexOf(0);
    const label0 = meta.labels[k0];
    const api = await p.evaluate(() => window.capsviz.prediction!);
    assert.equal(api.source, `Fashion-MNIST test image #0 (label ${label0}, ${meta.classNames[label0]})`);
    assert.equal(await p.textContent('#h-samples'), 'Fashion-MNIST test images');
    assert.equal(await p.locator('#samples button').count(), meta.count);
    assert.equal(await p.getAttribute(`#samples button >> nth=${k0}`, 'aria-pressed'), 'true');
    // The page's images are the samples file's, and the shipped model gets most of them right.
    const bytes = readFileSync(join(buildDir, 'samples-fashion-mnist.bin'));
    const scores = await p.evaluate(([imgs, n]) => window.capsviz.scoresFor(imgs, n), [Array.from(bytes, (v) => v / 255), meta.count] as [number[], number]);
    const right = argmaxRows(scores, 10).filter((c, i) => c === meta.labels[i]).length;
    t.diagnostic(`Fashion-MNIST model in the browser: ${right}/${meta.count} samples right`);
    assert.ok(right >= 0.7 * meta.count, `${right}/${meta.count} right`);
    assert.equal((await p.evaluate(() => window.capsviz.prediction!)).label, scores.slice(k0 * 10, k0 * 10 + 10).indexOf(Math.max(...scores.slice(k0 * 10, k0 * 10 + 10))));
    // Class names stand whole, one line each (not broken inside a word).
    const labelWidths = await p.$$eval('#digit-bars .lbl', (els) => els.map((e) => e.getBoundingClientRect().width));
    assert.ok(labelWidths.every((w) => w < 20), `one line per class name (widths ${labelWidths.map((w) => w.toFixed(0)).join(', ')})`);
    assert.match((await p.getAttribute('#pad', 'aria-label')) ?? '', /draw a picture/);
    await shot(p, 'fashion-model');
    // Back to an MNIST model: back to digits.
    await p.selectOption('#model-select', '0');
    await p.waitForFunction(() => document.body.dataset.state === 'ready' && /^MNIST test image #0/.test(window.capsviz.prediction?.source ?? ''), null, { timeout: 60_000 });
    assert.equal(await p.textContent('#h-samples'), 'MNIST test images');
    assert.deepEqual(pageErrors(p), []);
  } finally {
    await p.close();
  }
});

/**
 * A shipped model's place in the page's model menu, the page's MNIST samples
 * and the scores Node computes for them with that model.
 */
async function shippedOnSamples(id: string, dir: string): Promise<{ index: number; images: Float32Array; labels: number[]; n: number; nodeScores: Float32Array }> {
  const served = (await (await fetch(new URL('models.json', server.url))).json()) as { models: { id: string }[] };
  const index = served.models.findIndex((m) => m.id === id);
  const bytes = readFileSync(join(buildDir, 'samples.bin'));
  const labels = (JSON.parse(readFileSync(join(buildDir, 'samples.json'), 'utf8')) as { labels: number[] }).labels;
  const n = bytes.length / 784;
  const images = Float32Array.from(bytes, (v) => v / 255);
  const { model } = loadModel(dir);
  const nodeScores = tf.tidy(() => model.forward(tf.tensor4d(images, [n, 28, 28, 1])).scores.dataSync() as Float32Array);
  model.dispose();
  return { index, images, labels, n, nodeScores };
}

/** The page's scores for the samples: how many are right, and their largest difference from Node's. */
async function browserAgainstNode(p: Page, s: { images: Float32Array; labels: number[]; n: number; nodeScores: Float32Array }): Promise<{ right: number; maxDiff: number }> {
  const browserScores = await p.evaluate(([imgs, k]) => window.capsviz.scoresFor(imgs, k), [Array.from(s.images), s.n] as [number[], number]);
  assert.equal(browserScores.length, s.n * 10);
  let maxDiff = 0;
  for (let i = 0; i < s.n * 10; i++) maxDiff = Math.max(maxDiff, Math.abs(browserScores[i] - s.nodeScores[i]));
  return { right: argmaxRows(browserScores, 10).filter((c, i) => c === s.labels[i]).length, maxDiff };
}

const emModel = listPretrained().find((p) => p.name === 'em-mnist' && p.available);

test('the shipped EM capsule network (8-bit weights) shows its views in the browser, with Node\'s activations', { skip: skip || (!emModel ? 'the EM model is not in this copy' : false) }, async (t) => {
  const samples = await shippedOnSamples('em-mnist', emModel!.dir);
  const { index, n } = samples;
  assert.ok(index > 0, 'the shipped EM model is offered, after the default');
  const p = await open();
  try {
    await p.selectOption('#model-select', String(index));
    await p.waitForFunction(() => document.body.dataset.state === 'ready' && document.getElementById('view-em')?.checkVisibility(), null, { timeout: 60_000 });
    await p.evaluate(() => window.capsviz.idle());
    assert.deepEqual((await p.locator('#em-poses caption').allTextContents()).map((c) => c.split(' · ')[0]), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    assert.ok((await p.locator('#em-layers canvas').count()) >= 1);
    // The EM views cite the EM routing paper, with its E-step and M-step.
    const emLinks = await p.$$eval('#view-em .reference a', (as) => as.map((a) => a.getAttribute('href')));
    assert.ok(emLinks.length >= 3 && emLinks.every((h) => h === 'https://openreview.net/forum?id=HJWLfGWRb'), emLinks.join(', '));
    assert.match((await p.textContent('#view-em')) ?? '', /E-step: Rij = aj pij \/ Σk ak pik/);
    const { right, maxDiff } = await browserAgainstNode(p, samples);
    t.diagnostic(`shipped EM model in the browser: ${right}/${n} samples right; largest activation difference from Node ${maxDiff.toExponential(2)}`);
    assert.ok(right >= 0.9 * n, `${right}/${n} right`);
    assert.ok(maxDiff < 1e-3, `activations within 1e-3 of Node's (${maxDiff})`);
    // The caption says what this model does with its routing: its prediction gathers almost nothing (docs/em-capsules-mnist.md).
    assert.match((await p.textContent('#em-routing-summary')) ?? '', /, the prediction, receives \d+\.\d% of the capsule activation .*does not predict the class the capsules agree on/);
    await p.locator('#view-em').screenshot({ path: join(ARTIFACTS, 'em-model.png') });
    assert.deepEqual(pageErrors(p), []);
  } finally {
    await p.close();
  }
});

const efficientModel = listPretrained().find((p) => p.name === 'efficient-mnist' && p.available);

test('the shipped Efficient-CapsNet shows its views in the browser, with Node\'s scores and its self-attention coefficients', { skip: skip || (!efficientModel ? 'the Efficient-CapsNet model is not in this copy' : false) }, async (t) => {
  const samples = await shippedOnSamples('efficient-mnist', efficientModel!.dir);
  const { index, n } = samples;
  assert.ok(index > 0, 'the shipped Efficient-CapsNet is offered, after the default');
  const p = await open();
  try {
    await p.selectOption('#model-select', String(index));
    await p.waitForFunction(() => document.body.dataset.state === 'ready' && /self-attention/i.test(document.getElementById('view-routing')?.textContent ?? ''), null, { timeout: 60_000 });
    await p.evaluate(() => window.capsviz.idle());
    // The routing view shows one pass of self-attention coefficients, and cites the Efficient-CapsNet paper.
    assert.match((await p.textContent('#view-routing')) ?? '', /self-attention coefficient/);
    assert.equal(await p.locator('#routing-maps canvas').count() >= 10, true);
    const links = await p.$$eval('#view-routing .reference a, #view-primary .reference a', (as) => as.map((a) => a.getAttribute('href')));
    assert.ok(links.length >= 1 && links.every((h) => /arxiv\.org\/abs\/2101\.12491/.test(h ?? '')), links.join(', '));
    const { right, maxDiff } = await browserAgainstNode(p, samples);
    t.diagnostic(`shipped Efficient-CapsNet in the browser: ${right}/${n} samples right; largest score difference from Node ${maxDiff.toExponential(2)}`);
    assert.ok(right >= 0.95 * n, `${right}/${n} right`);
    assert.ok(maxDiff < 1e-3, `capsule lengths within 1e-3 of Node's (${maxDiff})`);
    // A decoder: the reconstruction view is there.
    assert.equal(await p.isVisible('#view-recon'), true);
    await shot(p, 'efficient-model');
    assert.deepEqual(pageErrors(p), []);
  } finally {
    await p.close();
  }
});

const multiModel = listPretrained().find((p) => p.name === 'multimnist' && p.available);

test('MultiMNIST: pairs of digits, the two predicted classes with a reconstruction each, drawing and 36x36 uploads on the whole frame', { skip: skip || (!multiModel ? 'the MultiMNIST model is not in this copy' : false) }, async (t) => {
  const served = (await (await fetch(new URL('models.json', server.url))).json()) as { models: { id: string }[] };
  const index = served.models.findIndex((m) => m.id === 'multimnist');
  const meta = JSON.parse(readFileSync(join(buildDir, 'samples-multimnist.json'), 'utf8')) as { classes: number[][]; objects: number; height: number };
  assert.equal(meta.objects, 2);
  assert.equal(meta.height, 36);
  assert.ok(meta.classes.every((c) => c.length === 2), 'every sample holds two digits of different classes');
  const p = await open();
  try {
    await p.selectOption('#model-select', String(index));
    await p.waitForFunction(() => document.body.dataset.state === 'ready' && /^MultiMNIST/.test(window.capsviz.prediction?.source ?? ''), null, { timeout: 120_000 });
    await p.evaluate(() => window.capsviz.idle());
    assert.equal(await p.textContent('#h-samples'), 'MultiMNIST test images');
    const source = (await p.evaluate(() => window.capsviz.prediction!.source))!;
    assert.match(source, /^MultiMNIST test image #\d+ \(labels \d and \d\)$/);
    const scores = (await p.evaluate(() => window.capsviz.prediction!.scores))!;
    const top2 = scores.map((v, j) => [v, j]).sort((a, b) => b[0] - a[0]).slice(0, 2).map(([, j]) => String(j));
    assert.equal(await p.textContent('#prediction'), top2.join(' and '));
    assert.equal(await p.isVisible('#recon-each'), true);
    const overlay = await canvasPixels(p, '#recon-overlay');
    let red = 0;
    let green = 0;
    for (let i = 0; i < overlay.length; i += 4) {
      if (overlay[i] > 128 && overlay[i + 1] < 100) red++;
      if (overlay[i + 1] > 128 && overlay[i] < 100) green++;
    }
    t.diagnostic(`MultiMNIST: ${source}, predicted ${top2.join(' and ')}; the overlay has ${red} red and ${green} green pixels`);
    assert.ok(red > 10 && green > 10, 'one reconstruction in red, the other in green');
    // Drawing is on, on the whole frame.
    assert.equal(await p.getAttribute('#pad', 'aria-disabled'), 'false');
    // A 36x36 upload goes in where its ink is: two bars near the left and right edges stay there.
    const png = new PNG({ width: 36, height: 36 });
    for (let y = 0; y < 36; y++) for (let x = 0; x < 36; x++) png.data.set((x >= 3 && x < 6) || (x >= 30 && x < 33) ? [255, 255, 255, 255] : [0, 0, 0, 255], 4 * (y * 36 + x));
    await p.setInputFiles('#upload', { name: 'bars.png', mimeType: 'image/png', buffer: PNG.sync.write(png) });
    await p.waitForFunction(() => window.capsviz.prediction?.source === 'uploaded "bars.png"');
    const seen = await canvasPixels(p, '#input-28');
    assert.equal(seen.length, 36 * 36 * 4);
    assert.ok(seen[4 * (18 * 36 + 4)] > 200 && seen[4 * (18 * 36 + 31)] > 200 && seen[4 * (18 * 36 + 18)] === 0, 'the bars stay at the edges');
    assert.match((await p.textContent('#input-status')) ?? '', /taken as the 36×36 frame, pixel for pixel/);
    await shot(p, 'multimnist');
    assert.deepEqual(pageErrors(p), []);
  } finally {
    await p.close();
  }
});

test('browser predictions equal Node predictions for the same weights and images', { skip }, async (t) => {
  const bytes = readFileSync(join(buildDir, 'samples.bin'));
  const n = bytes.length / 784;
  const images = Float32Array.from(bytes, (v) => v / 255);
  const { model } = loadModel(modelDir);
  const nodeScores = tf.tidy(() => (model as CapsNet).forward(tf.tensor4d(images, [n, 28, 28, 1]), { decode: 'none' }).scores.dataSync() as Float32Array);
  model.dispose();
  const argmax = (s: ArrayLike<number>, i: number) => {
    let b = 0;
    for (let j = 1; j < 10; j++) if (s[i * 10 + j] > s[i * 10 + b]) b = j;
    return b;
  };
  // The page's own choice (wasm in headless Chromium, whose WebGL is
  // software-rendered), WebGL forced, and plain JavaScript on a few images.
  for (const [query, count] of [['', n], ['?backend=webgl', 50], ['?backend=cpu', 10]] as [string, number][]) {
    const p = query === '' ? page : await open(query);
    try {
      const used = await p.evaluate(() => window.capsviz.backend);
      if (query) assert.equal(used, query.split('=')[1]);
      const browserScores = await p.evaluate(([imgs, k]) => window.capsviz.scoresFor(imgs, k), [Array.from(images.subarray(0, count * 784)), count] as [number[], number]);
      const n = count;
      // float32 on different kernels: lengths agree to a relative 1e-3.
      let maxDiff = 0;
      let worst = 0;
      let compared = 0;
      assert.equal(browserScores.length, n * 10);
      for (let i = 0; i < n * 10; i++) {
        const d = Math.abs(browserScores[i] - nodeScores[i]);
        maxDiff = Math.max(maxDiff, d);
        worst = Math.max(worst, d / (1e-3 * Math.abs(nodeScores[i]) + 1e-6));
      }
      for (let i = 0; i < n; i++) {
        const sorted = Array.from(nodeScores.subarray(i * 10, i * 10 + 10)).sort((a, b) => b - a);
        if (sorted[0] - sorted[1] < 1e-3 * sorted[0]) continue; // a near tie: rounding may pick either
        compared++;
        assert.equal(argmax(browserScores, i), argmax(nodeScores, i), `image ${i}: browser (${used}) and Node disagree`);
      }
      t.diagnostic(`${used}: ${compared}/${n} predictions equal to Node's (the rest near ties); largest capsule-length difference ${maxDiff.toExponential(2)}`);
      assert.ok(compared >= n - 3, `at most 3 near ties, found ${n - compared}`);
      assert.ok(worst <= 1, `capsule lengths on ${used} within a relative 1e-3 of Node's (largest difference ${maxDiff})`);
    } finally {
      if (p !== page) await p.close();
    }
  }
});

after(async () => {
  await page?.close();
});
