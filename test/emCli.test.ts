/**
 * The EM capsule network through the CLI: info, train (MNIST and smallNORB
 * files the test writes), eval, predict, attack side by side with a CNN, and
 * stopping at a target test error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { encodeIdx, type EmCapsNet } from '../src/index.js';
import '../src/models/index.js';
import * as tf from '@tensorflow/tfjs';
import { loadSmallNorb, norbPair, parseNorbMatrix, SMALLNORB_CLASSES, smallNorbFileName } from '../src/data/smallnorb.js';
import { loadModel, saveModel } from '../src/models/files.js';
import { createModel } from '../src/models/registry.js';
import { writeFakeSmallNorb } from './norbFiles.js';

const BIN = new URL('../../bin/capsnet.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'capsnet-em-cli-'));

function run(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, CAPSNET_DEBUG: '', ...env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function json(args: string[], env?: Record<string, string>): Record<string, unknown> {
  const r = run([...args, '--json'], env);
  assert.equal(r.code, 0, `capsnet ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test('info: the paper and small EM presets', () => {
  assert.equal(json(['info', '--arch', 'em', '--preset', 'paper']).trainableParams, 316_394);
  const small = json(['info', '--arch', 'em', '--preset', 'small']);
  assert.equal(small.trainableParams, 67_154);
  assert.deepEqual(small.inputShape, [32, 32, 1]);
  assert.match(run(['info', '--arch', 'em', '--preset', 'small']).stdout, /class_caps\s+ClassCapsules\s+\[batch, 5, 4, 4\]/);
});

test('train, eval, predict and attack an EM capsule network on MNIST; the CNN beside it', () => {
  const em = join(dir, 'em');
  const t = json(['train', '--arch', 'em', '--preset', 'small', '--train-limit', '48', '--test-limit', '32', '--epochs', '1', '--batch-size', '16', '--routing', '2', '--out', em]);
  assert.equal(t.epochs, 1);
  const { model: trained } = loadModel(em);
  assert.ok((trained as EmCapsNet).convCaps1.betaU.dataSync().some((v) => v !== 0), 'training started from the data-dependent beta_u');
  trained.dispose();
  const info = json(['info', '--model', em]);
  assert.deepEqual(info.inputShape, [28, 28, 1], 'the model takes the dataset\'s size');
  assert.equal(info.numClasses, 10);
  assert.equal((info.config as { routing: { iterations: number } }).routing.iterations, 2, '--routing sets the EM iterations');
  const e = json(['eval', '--model', em, '--limit', '40']);
  assert.equal(e.count, 40);
  const idx = join(dir, 'digits.idx');
  writeFileSync(idx, encodeIdx([1, 28, 28], new Uint8Array(784).fill(30)));
  const p = json(['predict', idx, '--index', '0', '--model', em]);
  assert.equal((p.scores as number[]).length, 10);
  assert.ok((p.scores as number[]).every((s) => s > 0 && s < 1), 'class activations in (0, 1)');
  const bad = run(['train', '--arch', 'em', '--recon-weight', '0.1', '--out', join(dir, 'x')]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--recon-weight: the em architecture has no reconstruction loss/);

  const cnn = join(dir, 'cnn');
  json(['train', '--arch', 'cnn', '--preset', 'small', '--train-limit', '48', '--test-limit', '32', '--epochs', '1', '--batch-size', '16', '--out', cnn]);
  const out = join(dir, 'attack');
  const a = json(['attack', '--models', `${em},${cnn}`, '--names', 'EM,CNN', '--limit', '12', '--batch-size', '6', '--eps', '0,0.2', '--iterations', '2', '--out', out]);
  const rows = a.results as { model: string; method: string; mode: string; epsilon: number; accuracy: number; targetSuccess?: number }[];
  assert.equal(rows.length, 2 * 2 * 2 * 2, 'models x methods x modes x epsilons');
  for (const r of rows) {
    assert.ok(r.accuracy >= 0 && r.accuracy <= 1);
    assert.equal(r.targetSuccess !== undefined, r.mode === 'targeted');
  }
  const clean = rows.filter((r) => r.epsilon === 0 && r.model === 'EM').map((r) => r.accuracy);
  assert.ok(clean.every((c) => c === clean[0]), 'epsilon 0 is the clean accuracy for every attack');
  const png = PNG.sync.read(readFileSync(join(out, 'attack.png')));
  assert.ok(png.width >= 900 && png.height >= 900, `${png.width}x${png.height}`);
  const md = readFileSync(join(out, 'attack.md'), 'utf8');
  assert.match(md, /### FGSM, untargeted/);
  assert.match(md, /\| epsilon \| EM \| CNN \|/);
  const usage = run(['attack', '--models', `${em},${cnn}`, '--names', 'one']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--names has 1 names for 2 models/);
});

test('train and evaluate on smallNORB files: 96x96 pairs become 32x32 crops, 5 classes', () => {
  const norb = join(dir, 'norb');
  mkdirSync(norb);
  writeFakeSmallNorb(norb, 'train', 10, 96, 96, { gzip: true });
  writeFakeSmallNorb(norb, 'test', 10, 96, 96);
  const env = { CAPSNET_SMALLNORB_DIR: norb };
  const out = join(dir, 'em-norb');
  const t = json(['train', '--arch', 'em', '--preset', 'small', '--dataset', 'smallnorb', '--epochs', '1', '--batch-size', '5', '--out', out], env);
  assert.equal(t.epochs, 1);
  assert.deepEqual(json(['info', '--model', out]).inputShape, [32, 32, 1]);
  const e = json(['eval', '--model', out, '--dataset', 'smallnorb'], env);
  assert.equal(e.count, 10);
  assert.equal((e.perClass as unknown[]).length, 5);
  const missing = run(['eval', '--model', out, '--dataset', 'smallnorb'], { CAPSNET_SMALLNORB_DIR: join(dir, 'nowhere') });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /not found in .*nowhere: download .*smallNORB/);

  // predict sees a pair of the dat file, or a photograph, as the test set shows it: 48x48, centre crop, standardised.
  const dat = join(norb, smallNorbFileName('test', 'dat'));
  const p = json(['predict', dat, '--index', '3', '--model', out]);
  const { model } = loadModel(out);
  const view = new Float32Array(32 * 32);
  loadSmallNorb('test', { dir: norb }).render!(3, view, 0);
  const expected = tf.tidy(() => Array.from(model.forward(tf.tensor4d(view, [1, 32, 32, 1])).scores.dataSync()));
  model.dispose();
  assert.equal((p.scores as number[]).length, 5);
  (p.scores as number[]).forEach((s, j) => assert.ok(Math.abs(s - expected[j]) < 1e-5, `class ${j}: ${s} against ${expected[j]}`));
  assert.equal(p.className, SMALLNORB_CLASSES[p.prediction as number]);
  const pair = norbPair(parseNorbMatrix(readFileSync(dat), dat), 3);
  const png = new PNG({ width: 96, height: 96, colorType: 0 });
  for (let i = 0; i < 96 * 96; i++) png.data.set([pair.planes[i], pair.planes[i], pair.planes[i], 255], 4 * i);
  writeFileSync(join(dir, 'toy.png'), PNG.sync.write(png, { colorType: 0 }));
  const fromPng = json(['predict', join(dir, 'toy.png'), '--model', out]);
  (fromPng.scores as number[]).forEach((s, j) => assert.ok(Math.abs(s - expected[j]) < 1e-5, `PNG, class ${j}: ${s} against ${expected[j]}`));
  const noIndex = run(['predict', dat, '--model', out]);
  assert.equal(noIndex.code, 2);
  assert.match(noIndex.stderr, /smallNORB dat file: choose a pair with --index N/);
  const far = run(['predict', dat, '--index', '10', '--model', out]);
  assert.equal(far.code, 1);
  assert.match(far.stderr, /index 10 is out of range: .* holds 10 pairs/);
});

test('predict refuses a smallNORB dat file for a model trained on another dataset', () => {
  const norb = join(dir, 'norb-other');
  mkdirSync(norb);
  writeFakeSmallNorb(norb, 'test', 2, 96, 96);
  const m = join(dir, 'mnist-model');
  const model = createModel('capsnet', 'small', {}, 1);
  saveModel(model, m);
  model.dispose();
  const r = run(['predict', join(norb, smallNorbFileName('test', 'dat')), '--index', '0', '--model', m]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is a smallNORB dat file, but this model was trained on another dataset/);
});

test('train --stop-at-error stops at the first check that reaches the target', () => {
  const out = join(dir, 'stop');
  const t = json(['train', '--arch', 'cnn', '--preset', 'small', '--train-limit', '100', '--test-limit', '20', '--epochs', '2', '--batch-size', '10', '--stop-at-error', '100', '--check-every', '3', '--out', out]);
  assert.deepEqual(t.reachedTarget && { epoch: (t.reachedTarget as { epoch: number }).epoch, batch: (t.reachedTarget as { batch: number }).batch }, { epoch: 1, batch: 3 });
  const checks = readFileSync(join(out, 'checks.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(checks.length, 1);
  assert.ok(existsSync(join(out, 'latest')), 'a checkpoint to evaluate');
  const never = json(['train', '--arch', 'cnn', '--preset', 'small', '--train-limit', '40', '--test-limit', '20', '--epochs', '1', '--batch-size', '10', '--stop-at-error', '0', '--check-every', '2', '--out', join(dir, 'never')]);
  assert.equal(never.reachedTarget, null);
  assert.equal(never.epochs, 1);
  assert.equal(readFileSync(join(dir, 'never', 'checks.jsonl'), 'utf8').trim().split('\n').length, 2, 'checks at batch 2 and after the epoch');
});

test('viewpoints: the baseline sets the familiar-view target, the others stop at it, every model is scored on the novel sets', () => {
  const out = join(dir, 'viewpoints');
  const args = ['viewpoints', '--train-limit', '96', '--test-limit', '40', '--baseline-epochs', '1', '--max-epochs', '1', '--batch-size', '16', '--em-batch-size', '16', '--check-images', '32', '--out', out];
  const r = json(args) as { targetError: number; rows: { type: string; role: string; errors: Record<string, number>; trainImages: number }[] };
  assert.deepEqual(r.rows.map((row) => row.type), ['cnn', 'capsnet', 'em']);
  assert.equal(r.rows[0].role, 'baseline');
  assert.equal(r.targetError, r.rows[0].errors['mnist-familiar']);
  for (const row of r.rows) {
    assert.deepEqual(Object.keys(row.errors), ['mnist-familiar', 'mnist-novel-rotation', 'mnist-novel-scale']);
    for (const e of Object.values(row.errors)) assert.ok(e >= 0 && e <= 1, `${row.type}: error ${e}`);
    assert.ok(row.trainImages > 0 && row.trainImages <= 96);
  }
  for (const row of r.rows.slice(1)) {
    assert.equal(row.role, row.errors['mnist-familiar'] <= r.targetError ? 'reached' : 'not reached');
    // Stopped early only if the target was reached.
    if (row.trainImages < 96) assert.equal(row.role, 'reached');
  }
  assert.match(readFileSync(join(out, 'viewpoints.md'), 'utf8'), /\| em \(small\) \| 68,444 \|/);
  // Run again: every model is already trained, and the table is the same.
  const again = json(args) as typeof r;
  assert.deepEqual(again, r);
  const bad = run(['viewpoints', '--archs', 'cnn,rnn']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /unknown architecture 'rnn'/);
});

test('eval, reconstruct and attack default to the dataset the model was trained on', () => {
  const out = join(dir, 'mnist40-cnn');
  json(['train', '--arch', 'cnn', '--preset', 'small', '--dataset', 'mnist40', '--train-limit', '40', '--test-limit', '10', '--epochs', '1', '--batch-size', '20', '--out', out]);
  const e = json(['eval', '--model', out, '--limit', '10']);
  assert.equal(e.dataset, 'mnist40-test');
  assert.equal(e.count, 10);
  const a = json(['attack', '--model', out, '--limit', '4', '--eps', '0,0.1', '--methods', 'fgsm', '--modes', 'untargeted', '--out', join(dir, 'mnist40-attack')]);
  assert.match(JSON.stringify(a), /mnist40-test/);
  // An explicit --dataset still wins: this 40x40 model cannot read 28x28 MNIST.
  const wrong = run(['eval', '--model', out, '--dataset', 'mnist', '--limit', '10']);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /40x40x1 images but mnist-test has 28x28x1/);
});
