/**
 * The exported paper CapsNet (the shipped MNIST model, float16 weights) in
 * onnxruntime-web's wasm backend in headless Chromium, every file served
 * from this machine: the page's predictions on real MNIST test images equal
 * onnxruntime-node's and capsnet's, and its scores onnxruntime-node's.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { initBackend } from '../src/backend/node.js';
import { makeBatch, sequentialOrder } from '../src/data/batches.js';
import { loadMnist } from '../src/data/mnist.js';
import { modelToOnnx, onnxMetadata } from '../src/export/onnx.js';
import { argmaxRows, loadOnnxRuntime, runOnnxBatches } from '../src/export/onnxRuntime.js';
import '../src/models/index.js';
import { loadModel } from '../src/models/files.js';
import { listPretrained } from '../src/models/pretrained.js';
import { predictScores } from '../src/training/evaluate.js';
import { take } from '../src/data/dataset.js';
import { startVizServer, type VizServer } from '../src/viz/server.js';
import { CHROMIUM, CHROMIUM_ARGS } from './vizHelpers.js';
import { assertClose } from './helpers.js';

const COUNT = 20;
const paper = listPretrained().find((p) => p.name === 'mnist');
const skip = !existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CAPSNET_CHROMIUM)` : !paper?.available ? 'the shipped paper model is not in this copy' : false;

/** The page: onnxruntime-web from ./ort/, the model and the images from the same origin. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>capsnet ONNX in onnxruntime-web</title>
<script type="module">
import * as ort from './ort/ort.wasm.bundle.min.mjs';
ort.env.wasm.wasmPaths = new URL('./ort/', location.href).href;
window.runOnnx = async (count) => {
  const session = await ort.InferenceSession.create(await (await fetch('model.onnx')).arrayBuffer(), { executionProviders: ['wasm'] });
  const x = new Float32Array(await (await fetch('images.bin')).arrayBuffer());
  const out = await session.run({ image: new ort.Tensor('float32', x, [count, 28, 28, 1]) });
  return { scores: Array.from(out.scores.data), outputs: session.outputNames, threads: ort.env.wasm.numThreads };
};
document.body.dataset.state = 'ready';
</script>`;

let browser: Browser;
let server: VizServer;
let root: string;

before(async () => {
  if (skip) return;
  await initBackend();
  root = mkdtempSync(join(tmpdir(), 'capsnet-onnx-web-'));
  // The package's main entry sits in dist/, beside the browser bundles and the wasm.
  const ortDist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
  mkdirSync(join(root, 'ort'));
  for (const f of ['ort.wasm.bundle.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm']) copyFileSync(join(ortDist, f), join(root, 'ort', f));
  writeFileSync(join(root, 'index.html'), PAGE);
  server = await startVizServer({ root });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('the exported paper CapsNet runs in onnxruntime-web (wasm) in Chromium with the predictions of Node', { skip }, async (t) => {
  const { model, json } = loadModel(paper!.dir);
  const test = take(loadMnist('test'), COUNT);
  const x = makeBatch(test, sequentialOrder(COUNT)).x;
  const version = 'test';
  const bytes = modelToOnnx(model, { float16: true, metadata: onnxMetadata(model, json, { version }), version });
  writeFileSync(join(root, 'model.onnx'), bytes);
  writeFileSync(join(root, 'images.bin'), new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  const ours = argmaxRows(predictScores(model, test), 10);
  model.dispose();

  const ort = await loadOnnxRuntime();
  const session = await ort.InferenceSession.create(bytes);
  const node = (await runOnnxBatches(ort, session, x, COUNT, [28, 28, 1])).scores;
  await session.release();

  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // Everything comes from the local server: a request elsewhere fails the test.
  await page.route((url) => !url.href.startsWith(server.url), (route) => {
    errors.push(`request to another origin: ${route.request().url()}`);
    return route.abort();
  });
  await page.goto(server.url);
  await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 30_000 });
  const web = await page.evaluate((n) => (window as unknown as { runOnnx(n: number): Promise<{ scores: number[]; outputs: string[]; threads: number }> }).runOnnx(n), COUNT);
  t.diagnostic(`onnxruntime-web outputs ${web.outputs.join(', ')}; wasm threads ${web.threads}`);
  assert.deepEqual(errors, []);
  assert.deepEqual(web.outputs, ['scores', 'capsules', 'reconstruction']);
  assert.deepEqual(argmaxRows(web.scores, 10), argmaxRows(node, 10), 'browser against onnxruntime-node');
  assert.deepEqual(argmaxRows(node, 10), ours, 'onnxruntime-node against capsnet');
  assertClose(web.scores, node, { rtol: 0, atol: 1e-4, what: 'scores, browser against onnxruntime-node' });
  // The first 20 MNIST test digits are all read right by the shipped model.
  assert.deepEqual(Array.from(ours), Array.from(test.labels));
  await page.close();
});
