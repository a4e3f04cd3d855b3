/**
 * The capsnet command end to end: help, JSON output, one-line errors with
 * non-zero exits, and a small model trained, evaluated, used for prediction
 * and reconstruction through the CLI.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { encodeIdx } from '../src/index.js';
import { oneSplitDataSpec, trainingDataSpec } from '../src/cli/dataFlags.js';
import { copyOldRuns, straightMetrics } from './oldRuns.js';

const BIN = new URL('../../bin/capsnet.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'capsnet-cli-'));

function run(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, CAPSNET_DEBUG: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function assertOneLineError(r: { code: number; stderr: string }, pattern: RegExp, code = 1): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('backend:'));
  assert.equal(lines.length, 1, `one error line, got: ${r.stderr}`);
  assert.match(lines[0], pattern);
}

test('every command has --help', () => {
  for (const cmd of ['train', 'eval', 'predict', 'reconstruct', 'info']) {
    const r = run(cmd, '--help');
    assert.equal(r.code, 0, cmd);
    assert.match(r.stdout, new RegExp(`^capsnet ${cmd}`));
    assert.match(r.stdout, /--help/);
  }
  assert.match(run('--help').stdout, /commands:/);
});

test('info --json reports the paper model: 8,215,568 trainable parameters and the backend', () => {
  const r = run('info', '--preset', 'paper', '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.trainableParams, 8_215_568);
  assert.equal(j.layers.length, 6);
  assert.ok(['native', 'wasm', 'cpu'].includes(j.backend.backend));
  assert.match(run('info', '--preset', 'paper').stdout, /trainable parameters: 8,215,568/);
});

test('--model names a saved model (a shipped name too), --arch the architecture; the old spellings say the new ones', () => {
  const shipped = JSON.parse(run('info', '--model', 'mnist-small', '--json').stdout);
  assert.equal(shipped.modelType, 'capsnet');
  assert.equal(shipped.trainableParams, 1_280_720);
  assert.equal(JSON.parse(run('info', '--arch', 'cnn', '--preset', 'small', '--json').stdout).modelType, 'cnn');
  assertOneLineError(run('train', '--model', 'em'), /--model is no longer a flag of 'train': give the architecture with --arch/, 2);
  assertOneLineError(run('info', '--type', 'em'), /--type is no longer a flag of 'info': give the architecture with --arch/, 2);
  assertOneLineError(run('viewpoints', '--models', 'cnn,em'), /--models is no longer a flag of 'viewpoints': give the architectures with --archs/, 2);
});

test('a saved model whose weights hold NaN or infinity does not load: the error names the weight and the count', () => {
  const src = JSON.parse(readFileSync(new URL('../../pretrained/capsnet-small-mnist/model.json', import.meta.url), 'utf8')) as { weightsManifest: { weights: { name: string; shape: number[] }[] }[] };
  const bad = join(dir, 'nan-model');
  mkdirSync(bad);
  // A float32 copy of the small model's manifest with every weight zero, and three NaNs and one Inf in the bias of conv1.
  const weights = src.weightsManifest[0].weights.map((w) => ({ name: w.name, shape: w.shape, dtype: 'float32' }));
  const sizes = weights.map((w) => w.shape.reduce((a, b) => a * b, 1));
  const values = new Float32Array(sizes.reduce((a, b) => a + b, 0));
  const at = sizes.slice(0, weights.findIndex((w) => w.name === 'conv1/bias')).reduce((a, b) => a + b, 0);
  values.set([NaN, NaN, Infinity, NaN], at);
  writeFileSync(join(bad, 'weights.bin'), new Uint8Array(values.buffer));
  writeFileSync(join(bad, 'model.json'), JSON.stringify({ ...src, weightsManifest: [{ paths: ['weights.bin'], weights }] }));
  assertOneLineError(run('eval', '--model', bad, '--limit', '10'), /weight 'conv1\/bias' has 4 of 64 values that are NaN or infinite/);
});

test('bad flags and inputs: one clear line and a non-zero exit', () => {
  assertOneLineError(run('train', '--epochs', 'many'), /--epochs must be a number, got 'many'/, 2);
  assertOneLineError(run('train', '--epochs', '0'), /--epochs must be at least 1/, 2);
  assertOneLineError(run('train', '--bogus'), /unknown flag --bogus/, 2);
  assertOneLineError(run('train', '--backend', 'gpu'), /--backend must be one of auto, native, wasm, cpu/, 2);
  assertOneLineError(run('frobnicate'), /unknown command 'frobnicate'/, 2);
  assertOneLineError(run('export', '--pretrained', 'mnist-small', '--uint8', '--float16', '--out', join(dir, 'never')), /--uint8 and --float16 are two encodings: give one/, 2);
  assertOneLineError(run('export', '--pretrained', 'mnist-small', '--uint8', '--format', 'onnx', '--out', join(dir, 'never.onnx')), /--uint8 applies to --format capsnet only/, 2);
  assertOneLineError(run('info', '--model', 'mnist-small', '--arch', 'em'), /--arch em does not match .*capsnet-small-mnist, which is capsnet; leave --arch out/, 2);
  assertOneLineError(run('ablation', '--cells', 'r3-recon,r2-recon'), /--cells: unknown cell r2-recon; the cells are r1-no-recon, r1-recon, r3-no-recon, r3-recon/, 2);
  assertOneLineError(run('eval'), /a model is needed/, 2);
  assertOneLineError(run('eval', '--model', join(dir, 'nope')), /model not found/);
  assertOneLineError(run('predict', join(dir, 'nope.png'), '--model', dir), /holds no model.json/);
  const corrupt = join(dir, 'corrupt-images');
  writeFileSync(corrupt, Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 9]));
  assertOneLineError(run('train', '--images', corrupt, '--labels', corrupt, '--test-images', corrupt, '--test-labels', corrupt, '--out', join(dir, 'x')), /truncated IDX header/);
  assertOneLineError(run('train', '--dataset', 'cifar'), /unknown dataset 'cifar'/);
  assertOneLineError(run('train', '--preset', 'huge', '--out', join(dir, 'y')), /unknown preset 'huge'/);
  assertOneLineError(run('train', '--init', 'mnist-small', '--resume', '--out', join(dir, 'z')), /--init starts a new run; --resume continues one/, 2);
  assertOneLineError(run('train', '--init', 'mnist-small', '--routing', '1', '--out', join(dir, 'z')), /--init keeps the saved model's config/, 2);
  assertOneLineError(run('train', '--ema', '1', '--out', join(dir, 'z')), /--ema must be between 0 and 1/, 2);
  assertOneLineError(run('train', '--init', join(dir, 'no-model'), '--out', join(dir, 'z')), /model not found/);
  assertOneLineError(run('train', '--arch', 'cnn', '--init', 'mnist-small', '--out', join(dir, 'z')), /is a capsnet model, training asks for cnn/);
  assertOneLineError(run('train', '--arch', 'cnn', '--routing', '3', '--out', join(dir, 'z')), /--routing: the cnn architecture has no routing iterations/, 2);
  assertOneLineError(run('train', '--arch', 'rnn', '--out', join(dir, 'z')), /unknown architecture 'rnn'/);
});

test('train, eval, predict and reconstruct a small model through the CLI', () => {
  const out = join(dir, 'run');
  const t = run('train', '--train-limit', '300', '--test-limit', '100', '--epochs', '1', '--batch-size', '50', '--out', out, '--json');
  assert.equal(t.code, 0, t.stderr);
  const tj = JSON.parse(t.stdout);
  assert.equal(tj.epochs, 1);
  assert.ok(tj.final.testAccuracy >= 0 && tj.final.testAccuracy <= 1);
  assert.ok(existsSync(join(out, 'metrics.jsonl')));

  // The learning curve of the run, from its metrics.jsonl.
  const chart = join(dir, 'curve.png');
  const pl = run('plot', out, '--out', chart, '--target', '5', '--json');
  assert.equal(pl.code, 0, pl.stderr);
  const curve = JSON.parse(pl.stdout).curves[0];
  assert.deepEqual(curve.points, [[1, 100 * tj.final.testError]]);
  const drawn = PNG.sync.read(readFileSync(chart));
  assert.equal(drawn.width, 720);
  // The run's series is drawn in the palette's first colour (red).
  let red = 0;
  for (let i = 0; i < drawn.width * drawn.height; i++) if (drawn.data[4 * i] > 180 && drawn.data[4 * i + 1] < 60 && drawn.data[4 * i + 2] < 60) red++;
  assert.ok(red > 0, 'the curve is drawn');
  assertOneLineError(run('plot', join(dir, 'nowhere')), /nowhere: no such training run/);
  assertOneLineError(run('plot', dir), /metrics.jsonl: no such file/);
  const broken = join(dir, 'broken.jsonl');
  writeFileSync(broken, '{"epoch":1,"testError":0.5}\nnot json\n');
  assertOneLineError(run('plot', broken), /broken.jsonl:2: not a JSON line/);

  const e = run('eval', '--model', out, '--limit', '200', '--json');
  assert.equal(e.code, 0, e.stderr);
  const ej = JSON.parse(e.stdout);
  assert.equal(ej.count, 200);
  assert.equal(ej.confusion.length, 10);
  assert.equal(ej.confusion.flat().reduce((a: number, b: number) => a + b, 0), 200);
  assert.equal(ej.perClass.reduce((a: number, c: { correct: number }) => a + c.correct, 0), ej.correct);
  const text = run('eval', '--model', out, '--limit', '50');
  assert.match(text.stdout, /accuracy .*error/);
  assert.match(text.stdout, /confusion matrix/);

  // Predict from an IDX file, a PNG and a PGM.
  const idx = join(dir, 'one.idx');
  const pixels = new Uint8Array(2 * 784);
  for (let y = 6; y < 22; y++) pixels[784 + y * 28 + 14] = 255;
  writeFileSync(idx, encodeIdx([2, 28, 28], pixels));
  const p = run('predict', idx, '--index', '1', '--model', out, '--json');
  assert.equal(p.code, 0, p.stderr);
  const pj = JSON.parse(p.stdout);
  assert.equal(pj.scores.length, 10);
  assert.equal(pj.prediction, pj.scores.indexOf(Math.max(...pj.scores)));
  assertOneLineError(run('predict', idx, '--model', out), /is an IDX file: choose an image with --index N/, 2);
  assertOneLineError(run('predict', idx, '--index', '5', '--model', out), /--index 5 is out of range: .* holds 2 images/);
  const png = new PNG({ width: 56, height: 56 });
  png.data.fill(255);
  for (let y = 10; y < 46; y++) for (let x = 26; x < 30; x++) png.data.fill(0, (y * 56 + x) * 4, (y * 56 + x) * 4 + 3);
  writeFileSync(join(dir, 'digit.png'), PNG.sync.write(png));
  const pp = run('predict', join(dir, 'digit.png'), '--model', out);
  assert.equal(pp.code, 0, pp.stderr);
  assert.match(pp.stdout, /prediction: \d/);
  writeFileSync(join(dir, 'digit.pgm'), `P2\n# a comment\n2 2\n255\n0 255\n255 0\n`);
  assert.equal(run('predict', join(dir, 'digit.pgm'), '--model', out).code, 0);
  writeFileSync(join(dir, 'not-an-image.png'), 'hello');
  assertOneLineError(run('predict', join(dir, 'not-an-image.png'), '--model', out), /not a PNG or PGM image/);

  const r = run('reconstruct', '--model', out, '--count', '4', '--out', join(dir, 'recon.png'), '--json');
  assert.equal(r.code, 0, r.stderr);
  const img = PNG.sync.read(readFileSync(join(dir, 'recon.png')));
  assert.ok(img.width > 4 * 28 && img.height > 2 * 28, `grid ${img.width}x${img.height}`);

  // A model of the wrong shape for the data.
  const wrong = join(dir, 'wrong-images');
  writeFileSync(wrong, encodeIdx([1, 20, 20], new Uint8Array(400)));
  writeFileSync(join(dir, 'wrong-labels'), encodeIdx([1], new Uint8Array(1)));
  assertOneLineError(run('eval', '--model', out, '--images', wrong, '--labels', join(dir, 'wrong-labels')), /model expects 28x28x1 images but .* has 20x20x1/);
  // Resume of a finished run with more epochs continues; a new run into the same directory is refused.
  assertOneLineError(run('train', '--out', out), /already holds a training run/);
});

test('Ctrl-C during training saves a checkpoint and exits cleanly; --resume finishes the run', async () => {
  const out = join(dir, 'interrupted');
  const args = [BIN, 'train', '--train-limit', '2000', '--test-limit', '100', '--epochs', '1', '--batch-size', '10', '--out', out];
  // A progress line after every step tells the test that training is under way.
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CAPSNET_PROGRESS_INTERVAL: '0' } });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  await new Promise<void>((resolve) => {
    const poll = setInterval(() => {
      if (/epoch 1\/1 \[[#-]+\] [1-9]/.test(stderr)) {
        clearInterval(poll);
        resolve();
      }
    }, 20);
  });
  child.kill('SIGINT');
  const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
  assert.equal(code, 130, stderr);
  assert.match(stderr, /interrupted at epoch 1, batch \d+\/200; checkpoint .* \(continue with --resume\)/);
  const latest = readFileSync(join(out, 'latest'), 'utf8').trim();
  assert.match(latest, /^epoch-0000-batch-\d{6}$/);
  const resumed = run('train', '--out', out, '--resume', '--json');
  assert.equal(resumed.code, 0, resumed.stderr);
  const j = JSON.parse(resumed.stdout);
  assert.equal(j.epochs, 1);
  assert.equal(j.interrupted, false);
  assert.equal(readFileSync(join(out, 'latest'), 'utf8').trim(), 'epoch-0001');
});

test('ablation --cells trains only the cells named, in OUT/<cell>-seed<seed>', () => {
  const out = join(dir, 'ablation-cells');
  const r = run('ablation', '--preset', 'small', '--epochs', '1', '--train-limit', '200', '--test-limit', '100', '--cells', 'r3-no-recon', '--seed', '2', '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.rows.map((row: { cell: string }) => row.cell), ['r3-no-recon']);
  assert.equal(j.rows[0].routing, 3);
  assert.ok(existsSync(join(out, 'r3-no-recon-seed2')));
  assert.ok(!existsSync(join(out, 'r1-no-recon-seed2')));
});

test('the data flags become one typed DataSpec: a training run gives each split its own limit and size; other commands apply theirs to the split they read', () => {
  assert.deepEqual(trainingDataSpec({ dataset: 'multimnist', 'data-seed': 3, 'data-count': 500, 'test-data-count': 200, 'train-limit': 400, 'test-limit': 100 }), {
    source: { kind: 'dataset', name: 'multimnist', seed: 3, count: 500, testCount: 200 },
    trainLimit: 400,
    testLimit: 100,
  });
  assert.deepEqual(oneSplitDataSpec({ dataset: 'multimnist', 'data-count': 500, limit: 50 }), { source: { kind: 'dataset', name: 'multimnist', count: 500, testCount: 500 }, trainLimit: 50, testLimit: 50 });
  assert.deepEqual(oneSplitDataSpec({}), { source: { kind: 'dataset', name: 'mnist' } });
  assert.deepEqual(trainingDataSpec({ dataset: 'mnist', images: 'a', labels: 'b', 'test-images': 'c', 'test-labels': 'd' }), { source: { kind: 'idx', images: 'a', labels: 'b', testImages: 'c', testLabels: 'd' } });
  assert.deepEqual(trainingDataSpec({ dataset: 'mnist', data: 'photos', 'val-split': 0.2, 'data-seed': 2, 'image-size': 32, channels: '3', 'skip-invalid': true, 'cache-dir': 'c' }), {
    source: { kind: 'user', path: 'photos', valSplit: 0.2, seed: 2, imageSize: 32, channels: 3, skipInvalid: true, cacheDir: 'c' },
  });
  assert.throws(() => oneSplitDataSpec({ data: 'photos', images: 'a' }), /give either --data or --images\/--labels, not both/);
  assert.throws(() => oneSplitDataSpec({ labels: 'b' }), /--images and --labels go together/);
  assert.throws(() => trainingDataSpec({ 'test-images': 'c', 'test-labels': 'd' }), /--test-images and --test-labels go with --images and --labels/);
});

test('train --resume continues a run that capsnet saved before checkpoints recorded a typed data description (e6ac30b)', () => {
  const root = copyOldRuns();
  const out = join(root, 'run-photos');
  const recorded = JSON.parse(readFileSync(join(out, 'checkpoints', 'epoch-0001', 'training.json'), 'utf8')).options.data;
  const r = run('train', '--out', out, '--resume', '--epochs', '2', '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.epochs, 2);
  assert.equal(j.history.length, 2);
  // Its --data folder, split, size and cache, as the old run recorded them: the same training pictures and the same second epoch.
  const straight = straightMetrics(root, 'photos')[1];
  assert.ok(Math.abs(j.final.trainLoss - straight.trainLoss) <= 1e-5 * straight.trainLoss, `epoch 2 loss ${j.final.trainLoss}, straight ${straight.trainLoss}`);
  assert.ok(existsSync(join(out, 'data-cache')), 'pictures decoded into the cache the run recorded');
  const saved = JSON.parse(readFileSync(join(out, 'checkpoints', 'epoch-0002', 'training.json'), 'utf8'));
  assert.equal(saved.version, 2);
  assert.deepEqual(saved.options.data.source, {
    kind: 'user',
    path: recorded.data,
    valSplit: recorded['val-split'],
    seed: recorded['data-seed'],
    imageSize: recorded['image-size'],
    channels: Number(recorded.channels),
    cacheDir: recorded['cache-dir'],
  });
  assert.equal(recorded['cache-dir'], join(out, 'data-cache'));
});
