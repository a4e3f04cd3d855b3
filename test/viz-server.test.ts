/**
 * The visualizer's static build, its loopback server, and the `capsnet viz`
 * command (no browser needed; the browser tests are in viz.test.ts and
 * viz-train.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get } from 'node:http';
import { createInterface } from 'node:readline';
import { gunzipSync } from 'node:zlib';
import { fashionMnistDir, loadFashionMnist } from '../src/data/fashionMnist.js';
import { loadMnist } from '../src/data/mnist.js';
import '../src/models/index.js';
import { createModel } from '../src/models/registry.js';
import { saveModel } from '../src/models/files.js';
import { DEFAULT_VIZ_OUT, ensureVizBuilt, isBuildFresh, SAMPLES_PER_CLASS, TEST_IMAGES, TRAIN_IMAGES } from '../src/viz/build.js';
import { startVizServer } from '../src/viz/server.js';

const BIN = new URL('../../bin/capsnet.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'capsnet-viz-server-'));
const modelDir = join(dir, 'model');
{
  const m = createModel('capsnet', 'small', {}, 3);
  saveModel(m, modelDir, { encoding: 'float16' });
  m.dispose();
}

/** Status of a GET with the path sent as is (fetch would normalise the dots away). */
function rawStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

test('the static build holds the page, the bundle, wasm binaries, samples and a model list', async () => {
  await ensureVizBuilt();
  assert.ok(isBuildFresh(), 'a build right after building is fresh');
  for (const f of ['index.html', 'style.css', 'app.js', 'worker.js', 'models.json', 'samples.json', 'samples.bin', 'wasm/tfjs-backend-wasm.wasm', 'wasm/tfjs-backend-wasm-simd.wasm', 'wasm/tfjs-backend-wasm-threaded-simd.wasm']) {
    assert.ok(existsSync(join(DEFAULT_VIZ_OUT, f)), f);
  }
  // The page's script leaves tfjs and the model to its worker.
  assert.ok(statSync(join(DEFAULT_VIZ_OUT, 'app.js')).size < 200_000, `app.js is ${statSync(join(DEFAULT_VIZ_OUT, 'app.js')).size} bytes`);
  // The Train panel's data: the first TRAIN_IMAGES and TEST_IMAGES of MNIST, gzipped, the labels in the JSON.
  const packed = JSON.parse(readFileSync(join(DEFAULT_VIZ_OUT, 'train-mnist.json'), 'utf8')) as { train: { file: string; count: number; labels: number[] }; test: { file: string; count: number; labels: number[] } };
  const mnistTrain = loadMnist('train');
  assert.equal(packed.train.count, TRAIN_IMAGES);
  assert.equal(packed.test.count, TEST_IMAGES);
  assert.deepEqual(packed.train.labels, Array.from(mnistTrain.labels.subarray(0, TRAIN_IMAGES)));
  assert.ok(gunzipSync(readFileSync(join(DEFAULT_VIZ_OUT, packed.train.file))).equals(Buffer.from(mnistTrain.images.subarray(0, TRAIN_IMAGES * 784))), 'the first training images, byte for byte');
  const meta = JSON.parse(readFileSync(join(DEFAULT_VIZ_OUT, 'samples.json'), 'utf8'));
  assert.equal(meta.count, 10 * SAMPLES_PER_CLASS);
  assert.equal(readFileSync(join(DEFAULT_VIZ_OUT, 'samples.bin')).length, meta.count * 28 * 28);
  assert.deepEqual([...new Set(meta.labels)].sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(meta.dataset, 'mnist');
  // Every other installed sample set beside it, named in models.json.
  const list = JSON.parse(readFileSync(join(DEFAULT_VIZ_OUT, 'models.json'), 'utf8')) as { sampleSets: string[] };
  const fashionInstalled = existsSync(join(fashionMnistDir(), 't10k-images-idx3-ubyte.gz'));
  assert.deepEqual(list.sampleSets, fashionInstalled ? ['mnist', 'fashion-mnist', 'multimnist'] : ['mnist', 'multimnist']);
  if (fashionInstalled) {
    const fm = JSON.parse(readFileSync(join(DEFAULT_VIZ_OUT, 'samples-fashion-mnist.json'), 'utf8'));
    assert.equal(fm.title, 'Fashion-MNIST');
    assert.equal(fm.classNames[9], 'Ankle boot');
    assert.equal(readFileSync(join(DEFAULT_VIZ_OUT, 'samples-fashion-mnist.bin')).length, fm.count * 28 * 28);
    const test0 = loadFashionMnist('test');
    const k = fm.indices.indexOf(0);
    assert.ok(k >= 0, 'test image #0 is among the samples');
    assert.deepEqual([...readFileSync(join(DEFAULT_VIZ_OUT, 'samples-fashion-mnist.bin')).subarray(k * 784, (k + 1) * 784)], [...test0.images.subarray(0, 784)]);
    assert.equal(fm.labels[k], test0.labels[0]);
  }
  // The page loads nothing from other origins.
  const html = readFileSync(join(DEFAULT_VIZ_OUT, 'index.html'), 'utf8');
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//);
});

test('the server serves the app and a --model directory on loopback, and nothing outside them', async () => {
  await ensureVizBuilt();
  const srv = await startVizServer({ root: DEFAULT_VIZ_OUT, modelDir, modelLabel: 'test model' });
  try {
    assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const index = await fetch(srv.url);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await index.text(), /Capsule network visualizer/);
    const wasm = await fetch(new URL('wasm/tfjs-backend-wasm.wasm', srv.url));
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    await wasm.arrayBuffer();
    const models = (await (await fetch(new URL('models.json', srv.url))).json()) as { models: { id: string; url: string; label: string }[]; sampleSets: string[] };
    assert.equal(models.models[0].id, 'custom');
    assert.ok(models.sampleSets.includes('mnist'), 'the served list keeps the sample sets');
    assert.equal(models.models[0].label, 'test model');
    const mj = await fetch(new URL(models.models[0].url, srv.url));
    assert.equal(mj.status, 200);
    assert.equal(((await mj.json()) as { modelType: string }).modelType, 'capsnet');
    const w = await fetch(new URL('models/custom/weights.bin', srv.url));
    assert.equal(Buffer.from(await w.arrayBuffer()).length, readFileSync(join(modelDir, 'weights.bin')).length);
    // Weights are fetched once: the browser asks again with the ETag and an unchanged file is a 304 without a body.
    const etag = w.headers.get('etag');
    assert.match(etag ?? '', /^"[0-9a-z]+-[0-9a-z]+"$/);
    assert.equal(w.headers.get('cache-control'), 'no-cache');
    const again = await fetch(new URL('models/custom/weights.bin', srv.url), { headers: { 'If-None-Match': etag! } });
    assert.equal(again.status, 304);
    assert.equal((await again.arrayBuffer()).byteLength, 0);
    const other = await fetch(new URL('models/custom/weights.bin', srv.url), { headers: { 'If-None-Match': '"another"' } });
    assert.equal(other.status, 200);
    await other.arrayBuffer();
    for (const bad of ['/../package.json', '/../../package.json', '/%2e%2e/%2e%2e/package.json', '/models/custom/..%2f..%2fpackage.json', '/models/custom/../../../package.json', '/nope.js']) {
      assert.equal(await rawStatus(srv.port, bad), 404, bad);
    }
    const post = await fetch(srv.url, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    await post.arrayBuffer();
  } finally {
    await srv.close();
  }
});

test('capsnet viz --model DIR prints the URL, serves the page and stops cleanly', async () => {
  const child = spawn(process.execPath, [BIN, 'viz', '--model', modelDir, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout });
      rl.once('line', resolve);
      child.once('exit', (code) => reject(new Error(`capsnet viz exited with ${code}: ${stderr}`)));
    });
    const info = JSON.parse(line) as { url: string; port: number; model: string };
    assert.match(info.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await fetch(info.url);
    assert.equal(page.status, 200);
    await page.text();
    const models = (await (await fetch(new URL('models.json', info.url))).json()) as { models: { id: string }[] };
    assert.equal(models.models[0].id, 'custom');
  } finally {
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
  }
});

test('capsnet viz: a missing model or a taken port is one clear line and a non-zero exit', async () => {
  const r = spawnSync(process.execPath, [BIN, 'viz', '--model', join(dir, 'nope')], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr.trim(), /^capsnet viz: error: model not found: /);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  const held = await startVizServer({ root: DEFAULT_VIZ_OUT });
  try {
    const r2 = spawnSync(process.execPath, [BIN, 'viz', '--model', modelDir, '--port', String(held.port)], { encoding: 'utf8' });
    assert.equal(r2.status, 2);
    assert.match(r2.stderr.trim(), /port \d+ is in use/);
  } finally {
    await held.close();
  }
  const h = spawnSync(process.execPath, [BIN, 'viz', '--help'], { encoding: 'utf8' });
  assert.equal(h.status, 0);
  assert.match(h.stdout, /^capsnet viz/);
});
