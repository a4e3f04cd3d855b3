/**
 * A folder of the user's pictures from end to end through the CLI: train the
 * small CapsNet on colour pictures with odd class names (no conversion step),
 * evaluate and predict with class names, and resume exactly from a folder
 * dataset with flips. Pictures are real MNIST digits, tinted per class.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { take } from '../src/data/dataset.js';
import { loadMnist } from '../src/data/mnist.js';
import { loadUserData } from '../src/data/userData.js';
import { initBackend, train, type TrainOptions } from '../src/node.js';
import { ODD_CLASS_NAMES, writeClassFolders } from './userDataFiles.js';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'capsnet.js');
const root = mkdtempSync(join(tmpdir(), 'capsnet-byod-'));
const data = join(root, 'pictures');
const mnist = take(loadMnist('train'), 2000);
await writeClassFolders(join(data, 'train'), mnist, { format: 'png', colour: true, perClass: 40 });
await writeClassFolders(join(data, 'train'), mnist, { format: 'jpeg', colour: true, perClass: 20, skip: 200 });
await writeClassFolders(join(data, 'test'), mnist, { format: 'jpeg', colour: true, perClass: 15, skip: 400 });
const env = { ...process.env, CAPSNET_CACHE_DIR: join(root, 'cache') };

function capsnet(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('train, eval and predict on a folder of colour pictures with odd class names', () => {
  const out = join(root, 'run');
  const t0 = performance.now();
  const tr = capsnet('train', '--data', data, '--preset', 'small', '--epochs', '2', '--batch-size', '20', '--lr', '0.002', '--seed', '1', '--out', out, '--json');
  assert.equal(tr.status, 0, tr.stderr);
  const result = JSON.parse(tr.stdout);
  // 240 training pictures (4 classes), 60 test pictures; colour and shape both tell the classes apart.
  assert.ok(result.final.testAccuracy >= 0.9, `test accuracy ${result.final.testAccuracy}`);
  process.stderr.write(`folder of 240 pictures, 2 epochs: test accuracy ${(100 * result.final.testAccuracy).toFixed(2)}% in ${((performance.now() - t0) / 1000).toFixed(1)} s (decoding included)\n`);

  const ev = capsnet('eval', '--model', out, '--data', data, '--json');
  assert.equal(ev.status, 0, ev.stderr);
  const r = JSON.parse(ev.stdout);
  assert.equal(r.count, 60);
  assert.deepEqual(r.perClass.map((c: { name: string }) => c.name), [...ODD_CLASS_NAMES].sort());
  assert.equal(r.accuracy, result.final.testAccuracy, 'eval prepares the pictures as training did');

  const cls = [...ODD_CLASS_NAMES].sort()[1];
  const pr = capsnet('predict', join(data, 'test', cls), '--model', out, '--json');
  assert.equal(pr.status, 0, pr.stderr);
  const rows = JSON.parse(pr.stdout).predictions as { path: string; className: string; score: number }[];
  assert.equal(rows.length, 15);
  assert.ok(rows.filter((x) => x.className === cls).length >= 12, `most pictures of '${cls}' are predicted as it: ${rows.map((x) => x.className).join(', ')}`);
  const csv = capsnet('predict', join(data, 'test', '*', '*.jpeg'), '--model', out, '--csv');
  assert.equal(csv.status, 0, csv.stderr);
  const lines = csv.stdout.trim().split('\n');
  assert.equal(lines[0], 'path,class,score');
  assert.ok(lines.length > 20 && lines.slice(1).every((l) => /,\d\.\d{4}$/.test(l)));
  const one = capsnet('predict', rows[0].path, '--model', out);
  assert.equal(one.status, 0, one.stderr);
  assert.match(one.stdout, new RegExp(`prediction: ${rows[0].className} `));

  const small = capsnet('train', '--data', data, '--preset', 'small', '--image-size', '12', '--epochs', '1', '--out', join(root, 'small'), '--json');
  assert.equal(small.status, 1);
  assert.match(small.stderr, /images of 12x12 are too small for capsnet preset 'small' .*use a larger --image-size/);
  const noSplit = capsnet('train', '--data', join(data, 'train'), '--epochs', '1', '--out', join(root, 'nosplit'), '--json');
  assert.equal(noSplit.status, 1);
  assert.match(noSplit.stderr, /no separate test set: give --val-split/);
  const both = capsnet('train', '--data', data, '--val-split', '0.2', '--epochs', '1', '--out', join(root, 'both'), '--json');
  assert.equal(both.status, 1);
  assert.match(both.stderr, /has its own test set: --val-split applies to sources without one/);

  // DIR/<class>/ with --val-split: eval holds out the same part by default (the model's metadata records the split).
  const flat = join(data, 'train');
  const held = join(root, 'held');
  const trFlat = capsnet('train', '--data', flat, '--val-split', '0.25', '--data-seed', '5', '--preset', 'small', '--epochs', '1', '--batch-size', '30', '--out', held, '--json');
  assert.equal(trFlat.status, 0, trFlat.stderr);
  const evFlat = JSON.parse(capsnet('eval', '--model', held, '--data', flat, '--json').stdout);
  assert.equal(evFlat.count, 60, 'a quarter of each class of 60 pictures');
  assert.equal(evFlat.accuracy, JSON.parse(trFlat.stdout).final.testAccuracy);
  assert.equal(JSON.parse(capsnet('eval', '--model', held, '--data', flat, '--val-split', '0.5', '--json').stdout).count, 120);
});

test('interrupted and resumed on a streamed folder dataset with flips, training ends with identical weights', async () => {
  await initBackend();
  const o = { cacheDir: join(root, 'cache'), log: () => {} };
  const d = { train: take(await loadUserData(data, 'train', o), 120), test: await loadUserData(data, 'test', o) };
  assert.ok(d.train.pixels, 'the folder is streamed from its cache');
  const base = (outDir: string): TrainOptions => ({
    model: 'capsnet', preset: 'small', overrides: { conv1: { filters: 16 }, primary: { types: 4, dim: 8 }, decoder: { hidden: [32, 64] }, inputShape: [28, 28, 3], numClasses: 4 },
    dataset: 'pictures', epochs: 2, batchSize: 40, learningRate: 0.002, lrDecay: 0.9, shift: 2, flip: true, seed: 7, outDir,
  });
  const quiet = { log: () => {} };
  const straight = await train(base(join(root, 'a')), d, quiet);
  const first = await train(base(join(root, 'b')), d, { ...quiet, maxSteps: 4 });
  assert.equal(first.interrupted, true);
  first.model.dispose();
  const resumed = await train({ ...base(join(root, 'b')), resume: true }, d, quiet);
  for (let i = 0; i < straight.model.params.length; i++) {
    assert.deepEqual(resumed.model.params[i].value.dataSync(), straight.model.params[i].value.dataSync(), `weights of ${straight.model.params[i].name}`);
  }
  straight.model.dispose();
  resumed.model.dispose();
});

test('the paper CapsNet and EM presets adapt to 32x32x3 and 64x64x3: info shows the grid, parameters and training memory; one training step runs', async () => {
  const info = (...args: string[]) => {
    const r = capsnet('info', '--json', ...args);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const primary = (j: { layers: { name: string; outputShape: (number | null)[] }[] }) => j.layers.find((l) => l.name === 'primary_caps')!.outputShape;
  assert.deepEqual(primary(info('--preset', 'paper', '--image-size', '32', '--channels', '3')), [null, 2048, 8]);
  assert.deepEqual(primary(info('--preset', 'paper', '--image-size', '64', '--channels', '3')), [null, 18432, 8]);
  assert.deepEqual(primary(info('--arch', 'em', '--preset', 'paper', '--image-size', '64', '--channels', '3')), [null, 30, 30, 32, 4, 4]);
  const m4 = info('--preset', 'small', '--image-size', '32', '--channels', '3', '--memory', '--batch-size', '4');
  const m8 = info('--preset', 'small', '--image-size', '32', '--channels', '3', '--memory', '--batch-size', '8');
  assert.equal(m4.trainableParams, m8.trainableParams);
  assert.equal(m4.trainingMemory.weightBytes, 4 * m4.trainableParams);
  assert.ok(m4.trainingMemory.stepPerExampleBytes > 0);
  assert.ok(m8.trainingMemory.totalBytes > m4.trainingMemory.totalBytes, 'more images per batch need more memory');
  const bad = capsnet('info', '--preset', 'paper', '--image-size', '12');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /cannot take 12x12x1 inputs: primary_caps: a 9x9 kernel/);

  await initBackend();
  for (const [model, size, batch] of [['capsnet', 32, 4], ['em', 64, 2]] as const) {
    const ds = take(await loadUserData(data, 'train', { cacheDir: join(root, 'cache'), imageSize: size, channels: 3, log: () => {} }), batch);
    const r = await train({ model, preset: 'paper', overrides: { inputShape: [size, size, 3], numClasses: 4 }, dataset: 'pictures', epochs: 1, batchSize: batch, learningRate: 0.001, lrDecay: 1, shift: 2, seed: 1, outDir: join(root, `step-${model}-${size}`) }, { train: ds }, { log: () => {} });
    assert.ok(Number.isFinite(r.history[0].trainLoss), `${model} ${size}x${size}x3 trains`);
    r.model.dispose();
  }
});
