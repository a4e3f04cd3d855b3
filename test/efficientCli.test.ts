/**
 * Efficient-CapsNet through every command of the CLI, on one model trained
 * here on 300 real MNIST training images (scored on the first 100 test
 * images): eval, info, plot, predict on a PNG, reconstruct, perturb,
 * attack, export in float16 and 8 bits, resume, --ema and --stop-at-error.
 * The ONNX export is checked in test/onnx.test.ts.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/node.js';
import { makeBatch, sequentialOrder } from '../src/data/batches.js';
import { loadMnist } from '../src/data/mnist.js';
import '../src/models/index.js';
import { loadModel } from '../src/models/files.js';
import { argmaxRows } from '../src/export/onnxRuntime.js';
import { assertClose } from './helpers.js';

const BIN = new URL('../../bin/capsnet.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'capsnet-efficient-cli-'));
const RUN = join(dir, 'run');
/** The training flags every run here shares: 300 training images, 100 test images, batches of 100. */
const DATA = ['--arch', 'efficient', '--train-limit', '300', '--test-limit', '100'];
const TEST_IMAGES = 100;

interface TrainReport {
  epochs: number;
  reachedTarget: { epoch: number; batch: number; testError: number } | null;
  final: { trainLoss: number; testAccuracy: number; testAccuracyTrainingWeights?: number };
  history: { epoch: number; trainLoss: number; testAccuracy: number }[];
}

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, CAPSNET_DEBUG: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function json<T = Record<string, unknown>>(args: string[]): T {
  const r = run([...args, '--json']);
  assert.equal(r.code, 0, `capsnet ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

function accuracy(model: string): number {
  const e = json<{ accuracy: number; count: number }>(['eval', '--model', model, '--limit', String(TEST_IMAGES)]);
  assert.equal(e.count, TEST_IMAGES);
  return e.accuracy;
}

/** The saved model's scores [n, classes] on the first n MNIST test images, in this process. */
function scoresOf(model: string, n: number): Float32Array {
  const { model: m } = loadModel(model);
  try {
    const x = makeBatch(loadMnist('test'), sequentialOrder(n)).x;
    return tf.tidy(() => m.forward(tf.tensor4d(x, [n, 28, 28, 1])).scores.dataSync() as Float32Array);
  } finally {
    m.dispose();
  }
}

let trained: TrainReport;

before(async () => {
  await initBackend();
  trained = json<TrainReport>(['train', ...DATA, '--epochs', '1', '--out', RUN]);
});

test('train, then eval, info and plot read the run', () => {
  assert.equal(trained.epochs, 1);
  const acc = trained.final.testAccuracy;
  assert.ok(acc > 0.1, `after one epoch on 300 images the test accuracy ${acc} beats chance`);
  assert.equal(accuracy(RUN), acc, 'eval scores the saved model on the images training scored it on');
  const info = json<{ modelType: string; trainableParams: number; classifierParams: number; nonTrainableParams: number; inputShape: number[] }>(['info', '--model', RUN]);
  assert.equal(info.modelType, 'efficient');
  assert.equal(info.classifierParams, 161_824, 'the paper\'s 161K');
  assert.equal(info.nonTrainableParams, 576, 'the batch norms\' moving statistics');
  assert.deepEqual(info.inputShape, [28, 28, 1]);
  const plot = json<{ curves: { points: [number, number][] }[] }>(['plot', RUN, '--out', join(dir, 'curve.png')]);
  assert.equal(plot.curves.length, 1);
  assert.equal(plot.curves[0].points.length, 1);
  assert.equal(plot.curves[0].points[0][0], 1);
  assert.ok(Math.abs(plot.curves[0].points[0][1] - 100 * (1 - acc)) < 1e-9, 'the curve is the run\'s test error in percent');
  assert.ok(PNG.sync.read(readFileSync(join(dir, 'curve.png'))).width > 0);
});

test('predict a PNG, reconstruct, perturb and attack', () => {
  const scores = scoresOf(RUN, 10);
  const predictions = argmaxRows(scores, 10);
  // Test image 0 as a PNG; --preprocess none reads it back as the same pixels.
  const x = makeBatch(loadMnist('test'), sequentialOrder(1)).x;
  const png = new PNG({ width: 28, height: 28, colorType: 0 });
  for (let i = 0; i < 784; i++) {
    const v = Math.round(x[i] * 255);
    png.data.set([v, v, v, 255], 4 * i);
  }
  const picture = join(dir, 'digit.png');
  writeFileSync(picture, PNG.sync.write(png, { colorType: 0 }));
  const p = json<{ scores: number[]; prediction: number }>(['predict', picture, '--model', RUN, '--preprocess', 'none']);
  assertClose(p.scores, scores.subarray(0, 10), { rtol: 1e-5, atol: 1e-9, what: 'predicted capsule lengths' });
  assert.equal(p.prediction, predictions[0]);

  const r = json<{ predictions: number[]; labels: number[]; correct: number }>(['reconstruct', '--model', RUN, '--count', '10', '--out', join(dir, 'reconstructions.png')]);
  assert.deepEqual(r.predictions, Array.from(predictions), 'the longest capsules, which the decoder draws');
  assert.equal(r.correct, r.predictions.filter((c, i) => c === r.labels[i]).length);
  const grid = PNG.sync.read(readFileSync(join(dir, 'reconstructions.png')));
  assert.ok(grid.width >= 10 * 28 && grid.height >= 2 * 28, `${grid.width}x${grid.height}`);

  const perturbed = json<{ predicted: number[]; dimensions: number; steps: number[] }>(['perturb', '--model', RUN, '--indices', '0,1,2', '--out', join(dir, 'perturbations.png')]);
  assert.equal(perturbed.dimensions, 16, 'every dimension of a 16-D class capsule');
  assert.deepEqual(perturbed.predicted, Array.from(predictions.subarray(0, 3)));
  assert.equal(perturbed.steps.length, 11);
  assert.ok(existsSync(join(dir, 'perturbations.png')));

  const a = json<{ results: { method: string; mode: string; epsilon: number; accuracy: number; targetSuccess?: number }[] }>(['attack', '--model', RUN, '--limit', '10', '--eps', '0,0.2', '--iterations', '2', '--out', join(dir, 'attack')]);
  assert.equal(a.results.length, 2 * 2 * 2, 'methods x modes x epsilons');
  for (const row of a.results) {
    if (row.epsilon === 0) assert.equal(row.accuracy, r.correct / 10, `${row.method} ${row.mode} at epsilon 0: the clean accuracy on the same 10 images`);
    assert.equal(row.targetSuccess !== undefined, row.mode === 'targeted');
  }
  assert.match(readFileSync(join(dir, 'attack', 'attack.md'), 'utf8'), /### FGSM, untargeted/);
});

test('export --float16 evaluates as the float32 model, --uint8 within one image', () => {
  const full = trained.final.testAccuracy; // what eval gave the float32 model above
  const half = join(dir, 'float16');
  assert.equal(json<{ encoding: string }>(['export', '--model', RUN, '--float16', '--out', half]).encoding, 'float16');
  assert.equal(accuracy(half), full);
  const bytes = join(dir, 'uint8');
  assert.equal(json<{ encoding: string }>(['export', '--model', RUN, '--uint8', '--out', bytes]).encoding, 'uint8');
  const quantized = accuracy(bytes);
  assert.ok(Math.abs(quantized - full) <= 1 / TEST_IMAGES, `8 bits: ${quantized} against ${full}`);
});

test('--resume ends where an uninterrupted run ends, weights and moving statistics included', () => {
  const resumed = json<TrainReport>(['train', ...DATA, '--epochs', '2', '--resume', '--out', RUN]);
  assert.deepEqual(resumed.history.map((h) => h.epoch), [1, 2]);
  assert.equal(resumed.history[0].trainLoss, trained.final.trainLoss, 'the first epoch is the run\'s own');
  const straightDir = join(dir, 'straight');
  const straight = json<TrainReport>(['train', ...DATA, '--epochs', '2', '--out', straightDir]);
  assert.equal(resumed.final.trainLoss, straight.final.trainLoss);
  assert.equal(resumed.final.testAccuracy, straight.final.testAccuracy);
  const { model: a } = loadModel(RUN);
  const { model: b } = loadModel(straightDir);
  try {
    assert.ok(a.params.some((p) => p.name === 'norm1/moving_mean'));
    for (let i = 0; i < a.params.length; i++) assert.deepEqual(a.params[i].value.dataSync(), b.params[i].value.dataSync(), a.params[i].name);
  } finally {
    a.dispose();
    b.dispose();
  }
  assert.equal(json<{ curves: { points: unknown[] }[] }>(['plot', RUN, '--out', join(dir, 'curve2.png')]).curves[0].points.length, 2);
});

test('--ema trains the same weights and saves their average; --stop-at-error stops at the first check that reaches the target', () => {
  const emaDir = join(dir, 'ema');
  const ema = json<TrainReport>(['train', ...DATA, '--epochs', '1', '--ema', '0.9', '--out', emaDir]);
  assert.equal(ema.final.trainLoss, trained.final.trainLoss, 'the average does not change the training');
  assert.equal(ema.final.testAccuracyTrainingWeights, trained.final.testAccuracy);
  assert.equal(accuracy(emaDir), ema.final.testAccuracy, 'the saved model is the averaged one');
  const { model: averaged } = loadModel(emaDir);
  const { model: plain } = loadModel(join(RUN, 'checkpoints', 'epoch-0001'));
  try {
    const differ = averaged.params.filter((p, i) => p.value.dataSync().some((v, k) => v !== plain.params[i].value.dataSync()[k])).length;
    assert.ok(differ > 0, 'the averaged weights are not the trained ones');
  } finally {
    averaged.dispose();
    plain.dispose();
  }

  const stopDir = join(dir, 'stop');
  const stop = json<TrainReport>(['train', ...DATA, '--epochs', '2', '--batch-size', '50', '--stop-at-error', '100', '--check-every', '2', '--out', stopDir]);
  assert.deepEqual(stop.reachedTarget && { epoch: stop.reachedTarget.epoch, batch: stop.reachedTarget.batch }, { epoch: 1, batch: 2 });
  assert.equal(readFileSync(join(stopDir, 'checks.jsonl'), 'utf8').trim().split('\n').length, 1);
  assert.ok(Math.abs(accuracy(stopDir) - (1 - stop.reachedTarget!.testError)) < 1e-9, 'the checkpoint it stopped at is the model it checked');
});
