/**
 * The visualizer with a matrix-capsule model (model type `em`) in headless
 * Chromium: its views appear, the EM iteration stepper changes the routing
 * view, and the browser's class activations equal Node's. Skipped without
 * Chromium.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { initBackend } from '../src/backend/node.js';
import '../src/models/index.js';
import { loadModel, saveModel } from '../src/models/files.js';
import { createModel } from '../src/models/registry.js';
import { buildViz } from '../src/viz/build.js';
import { startVizServer, type VizServer } from '../src/viz/server.js';
import { ARTIFACTS, canvasPixels, CHROMIUM, CHROMIUM_ARGS } from './vizHelpers.js';

const skip = !existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM}` : false;


let browser: Browser;
let server: VizServer;
let buildDir: string;
let modelDir: string;
let page: Page;

before(async () => {
  if (skip) return;
  await initBackend();
  const tmp = mkdtempSync(join(tmpdir(), 'capsnet-viz-em-'));
  mkdirSync(ARTIFACTS, { recursive: true });
  modelDir = join(tmp, 'em');
  const m = createModel('em', 'small', { inputShape: [28, 28, 1], numClasses: 10 }, 5);
  saveModel(m, modelDir);
  m.dispose();
  buildDir = (await buildViz({ outDir: join(tmp, 'viz') })).outDir;
  server = await startVizServer({ root: buildDir, modelDir, modelLabel: 'EM capsules, random weights' });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  await page.goto(server.url);
  await page.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: 60_000 });
  await page.evaluate(() => window.capsviz.idle());
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function pixels(selector: string): Promise<string> {
  return (await canvasPixels(page, selector)).join(',');
}

test('an EM model shows class activations, pose matrices, routing and layer activations', { skip }, async () => {
  assert.equal(await page.evaluate(() => window.capsviz.state), 'ready', (await page.evaluate(() => window.capsviz.error)) ?? '');
  assert.equal(await page.isVisible('#view-em'), true);
  assert.equal(await page.isHidden('#view-routing'), true, 'the CapsNet routing view is hidden');
  assert.equal(await page.isHidden('#view-recon'), true, 'no decoder, no reconstruction');
  assert.equal(await page.textContent('#h-digits'), 'Class capsule activations');
  assert.equal(await page.locator('#em-poses table.pose').count(), 10);
  assert.equal(await page.locator('#em-poses table.pose td').count(), 160);
  assert.equal(await page.locator('#em-routing-maps canvas').count(), 10);
  assert.ok((await page.locator('#em-layers canvas').count()) >= 1);
  await page.locator('#view-em').screenshot({ path: join(ARTIFACTS, 'em.png') });
});

test('the EM iteration stepper changes the routing view', { skip }, async () => {
  assert.doesNotMatch((await page.textContent('#em-iter-value'))!, /only the last/, 'the model reports every EM iteration');
  const pred = (await page.evaluate(() => window.capsviz.prediction))!.label;
  const lastIt = await pixels(`#em-routing-${pred}`);
  while (await page.isEnabled('#em-iter-prev')) await page.click('#em-iter-prev');
  assert.equal(await page.evaluate(() => window.capsviz.iteration), 0);
  assert.match((await page.textContent('#em-iter-value'))!, /^1 of \d+$/);
  assert.notEqual(await pixels(`#em-routing-${pred}`), lastIt, 'iteration 1 looks different from the last');
  await page.locator('#view-em').screenshot({ path: join(ARTIFACTS, 'em-iteration-1.png') });
});

test("browser class activations equal Node's for an EM model", { skip }, async (t) => {
  const bytes = readFileSync(join(buildDir, 'samples.bin'));
  const n = 20;
  const images = Float32Array.from(bytes.subarray(0, n * 784), (v) => v / 255);
  const { model } = loadModel(modelDir);
  const nodeScores = tf.tidy(() => model.forward(tf.tensor4d(images, [n, 28, 28, 1])).scores.dataSync() as Float32Array);
  model.dispose();
  const browserScores = await page.evaluate(([imgs, k]) => window.capsviz.scoresFor(imgs, k), [Array.from(images), n] as [number[], number]);
  let maxDiff = 0;
  for (let i = 0; i < n * 10; i++) maxDiff = Math.max(maxDiff, Math.abs(browserScores[i] - nodeScores[i]));
  t.diagnostic(`largest activation difference ${maxDiff.toExponential(2)}`);
  assert.ok(maxDiff < 1e-3, `activations within 1e-3 of Node's (largest difference ${maxDiff})`);
});
