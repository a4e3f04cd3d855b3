/**
 * Checkpoints: an interrupted run resumed from its checkpoint ends with the
 * same weights and optimizer state as an uninterrupted run, and saved models
 * load back exactly (float32) or closely (float16, 8 bits per channel). Weight averaging and
 * fine-tuning from a saved model keep those guarantees.
 */
import * as tf from '@tensorflow/tfjs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CapsNet, capsNetConfig, modelFromArtifacts, modelToArtifacts, Rng, take, WeightAverage } from '../src/index.js';
import { decodeWeights, dequantizeUint8, quantizeUint8, uint8Channels, type WeightEntry } from '../src/models/serialization.js';
import { loadDataset } from '../src/data/index.js';
import { initBackend, loadData, loadMnist, loadModel, readCheckpoint, saveModel, train, type DataSpec, type TrainOptions } from '../src/node.js';
import { readTrainingState } from '../src/training/checkpoint.js';
import { copyOldRuns, OLD_RUNS, straightMetrics } from './oldRuns.js';

await initBackend();

const tiny = { conv1: { filters: 16 }, primary: { types: 4, dim: 8 }, decoder: { hidden: [32, 64] } };
const data = { train: take(loadMnist('train'), 200), test: take(loadMnist('test'), 100) };
const base = (outDir: string): TrainOptions => ({
  model: 'capsnet', preset: 'small', overrides: tiny, dataset: 'mnist', epochs: 2, batchSize: 50,
  learningRate: 0.002, lrDecay: 0.9, shift: 2, seed: 42, outDir,
});
const quiet = { log: () => {} };

test('Rng state round-trips and continues the same stream', () => {
  const a = new Rng(7);
  for (let i = 0; i < 1000; i++) a.next();
  const state = a.getState();
  assert.ok(state.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff));
  const b = new Rng(state);
  for (let i = 0; i < 100; i++) assert.equal(a.nextUint32(), b.nextUint32());
  assert.throws(() => new Rng([1, 2, 3] as never), /invalid RNG state/);
});

test('interrupted mid-epoch and resumed, training ends with identical weights and optimizer state', async () => {
  const root = mkdtempSync(join(tmpdir(), 'capsnet-ckpt-'));
  const straight = await train(base(join(root, 'a')), data, quiet);
  assert.equal(straight.interrupted, false);
  assert.equal(straight.history.length, 2);

  const first = await train(base(join(root, 'b')), data, { ...quiet, maxSteps: 5 }); // 4 steps per epoch: stops in epoch 2
  assert.equal(first.interrupted, true);
  assert.equal(first.epoch, 1);
  const ck = readCheckpoint(join(root, 'b'));
  assert.equal(ck.state.epoch, 1);
  assert.equal(ck.state.batch, 1);
  ck.model.dispose();
  first.model.dispose();
  const resumed = await train({ ...base(join(root, 'b')), resume: true }, data, quiet);
  assert.equal(resumed.interrupted, false);
  assert.equal(resumed.epoch, 2);

  for (let i = 0; i < straight.model.params.length; i++) {
    const p = straight.model.params[i];
    const q = resumed.model.params[i];
    assert.equal(p.name, q.name);
    assert.deepEqual(q.value.dataSync(), p.value.dataSync(), `weights of ${p.name}`);
  }
  const optA = readCheckpoint(join(root, 'a'));
  const optB = readCheckpoint(join(root, 'b'));
  assert.equal(optA.optimizerState.step, 8);
  assert.equal(optB.optimizerState.step, 8);
  for (const name of Object.keys(optA.optimizerState.m)) {
    assert.deepEqual(optB.optimizerState.m[name], optA.optimizerState.m[name], `Adam m of ${name}`);
    assert.deepEqual(optB.optimizerState.v[name], optA.optimizerState.v[name], `Adam v of ${name}`);
  }
  assert.deepEqual(optB.state.augState, optA.state.augState, 'augmentation RNG state');
  assert.deepEqual(optB.state.history.map((h) => [h.trainLoss, h.testAccuracy]), optA.state.history.map((h) => [h.trainLoss, h.testAccuracy]));
  // metrics.jsonl has one line per epoch; only the newest checkpoints are kept; no temporary files remain.
  assert.equal(readFileSync(join(root, 'b', 'metrics.jsonl'), 'utf8').trim().split('\n').length, 2);
  assert.ok(readdirSync(join(root, 'b', 'checkpoints')).length <= 2);
  assert.ok(!readdirSync(join(root, 'b')).some((n) => n.includes('tmp')));
  await assert.rejects(train(base(join(root, 'a')), data, quiet), /already holds a training run: use --resume/);
  for (const c of [optA, optB]) c.model.dispose();
  straight.model.dispose();
  resumed.model.dispose();
});

test('saved models load back: float32 exactly, float16 within half precision', () => {
  const root = mkdtempSync(join(tmpdir(), 'capsnet-save-'));
  const model = new CapsNet(capsNetConfig('small', tiny), 9);
  saveModel(model, join(root, 'm32'));
  saveModel(model, join(root, 'm16'), { encoding: 'float16' });
  assert.ok(existsSync(join(root, 'm32', 'model.json')));
  const l32 = loadModel(join(root, 'm32'));
  const l16 = loadModel(join(root, 'm16', 'model.json'));
  for (let i = 0; i < model.params.length; i++) {
    const a = model.params[i].value.dataSync();
    assert.deepEqual(l32.model.params[i].value.dataSync(), a);
    const h = l16.model.params[i].value.dataSync();
    for (let k = 0; k < a.length; k++) assert.ok(Math.abs(h[k] - a[k]) <= Math.abs(a[k]) * 1e-3 + 1e-7, `${model.params[i].name}[${k}]`);
  }
  const x = tf.randomUniform([2, 28, 28, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
  assert.deepEqual(l32.model.forward(x).scores.dataSync(), model.forward(x).scores.dataSync());
  // Artifacts in memory (the browser path) and a truncated weights buffer.
  const { json, weights } = modelToArtifacts(model);
  assert.throws(() => modelFromArtifacts(json, weights.subarray(0, weights.length - 4), 'm'), /m: expected \d+ bytes for \d+ weights, found \d+/);
  assert.throws(() => modelFromArtifacts({ ...json, format: 'other' }, weights, 'm'), /not a capsnet model/);
  const wrongShape = structuredClone(json);
  wrongShape.weightsManifest[0].weights[0].shape = [1, 2, 3];
  assert.throws(() => modelFromArtifacts(wrongShape, weights, 'm'), /expected \d+ bytes|has shape \[1,2,3\]/);
  assert.throws(() => saveModel(model, join(root, 'm32')), /already exists/);
  tf.dispose(x);
  for (const m of [model, l32.model, l16.model]) m.dispose();
});

test('8-bit weights: each value within half its channel\'s step, zero exact, a quarter of the bytes, and a bad manifest refused', () => {
  // Channels of very different widths, a constant-zero channel and a channel of one sign.
  const channels = 4;
  const values = new Float32Array(400);
  for (let i = 0; i < values.length; i++) {
    const c = i % channels;
    values[i] = c === 0 ? Math.sin(i) * 3 : c === 1 ? Math.cos(i) * 1e-3 : c === 2 ? 0 : 0.5 + (i % 7) * 0.1;
  }
  const { q, scales, zeroPoints } = quantizeUint8(values, channels);
  assert.equal(scales[2], 0);
  const back = dequantizeUint8(q, scales, zeroPoints);
  for (let i = 0; i < values.length; i++) {
    const c = i % channels;
    assert.ok(Math.abs(back[i] - values[i]) <= scales[c] / 2 + 1e-9, `value ${i} (channel ${c}): ${back[i]} for ${values[i]}`);
    if (values[i] === 0) assert.equal(back[i], 0, `zero stays zero at ${i}`);
  }
  // The narrow channel keeps its own precision: a per-tensor scale would round all of it to 0.
  assert.ok(scales[1] < 1e-5 && scales[0] > 1e-2);

  const model = new CapsNet(capsNetConfig('small', tiny), 9);
  const { json, weights } = modelToArtifacts(model, { encoding: 'uint8' });
  // One byte per weight of the kernels and W, four per bias.
  const biasCount = model.params.filter((p) => p.value.rank === 1).reduce((n, p) => n + p.value.size, 0);
  assert.equal(weights.byteLength, model.countParams() + 3 * biasCount);
  const loaded = modelFromArtifacts(json, weights, 'm8').model;
  for (let i = 0; i < model.params.length; i++) {
    const a = model.params[i].value.dataSync();
    const b = loaded.params[i].value.dataSync();
    const entry = json.weightsManifest[0].weights[i];
    if (entry.shape.length === 1) {
      assert.equal(entry.quantization, undefined, `${entry.name}: a bias stays float32`);
      assert.deepEqual(b, a);
      continue;
    }
    assert.equal(entry.quantization?.dtype, 'uint8');
    const step = (entry.quantization as { scales: number[] }).scales;
    for (let k = 0; k < a.length; k++) assert.ok(Math.abs(a[k] - b[k]) <= step[k % step.length] / 2 + 1e-9, `${entry.name}[${k}]`);
  }
  // Channels: a kernel's outputs; a capsule transform's parents, output and input dimensions, while a channel spans 1024 weights or more.
  assert.equal(uint8Channels([9, 9, 256, 256]), 256);
  assert.equal(uint8Channels([1024, 784]), 784);
  assert.equal(uint8Channels([1152, 10, 16, 8]), 1280);
  assert.equal(uint8Channels([1152, 10, 16]), 160);
  assert.equal(uint8Channels([32, 10, 16, 8]), 8);
  // A file with one scale per last-axis index (the coarser grouping) still decodes.
  const w = model.params.find((p) => p.value.rank === 4 && p.name.endsWith('/W'))!;
  const wValues = w.value.dataSync() as Float32Array;
  const coarse = quantizeUint8(wValues, w.value.shape.at(-1)!);
  const coarseEntry: WeightEntry = { name: w.name, shape: w.value.shape, dtype: 'float32', quantization: { dtype: 'uint8', scales: coarse.scales, zeroPoints: coarse.zeroPoints } };
  const wEntry = json.weightsManifest[0].weights.find((e) => e.name === w.name)!;
  assert.equal((wEntry.quantization as { scales: number[] }).scales.length, uint8Channels(w.value.shape));
  const coarseBack = decodeWeights([coarseEntry], coarse.q).get(w.name)!;
  for (let k = 0; k < wValues.length; k++) assert.ok(Math.abs(coarseBack[k] - wValues[k]) <= coarse.scales[k % coarse.scales.length] / 2 + 1e-9, `coarse W[${k}]`);
  assert.throws(() => decodeWeights([{ ...coarseEntry, quantization: { dtype: 'uint8', scales: [...coarse.scales, 1], zeroPoints: [...coarse.zeroPoints, 0] } }], coarse.q), /is 8-bit but its manifest entry does not give/);
  const bad = structuredClone(json);
  (bad.weightsManifest[0].weights[0].quantization as { scales: number[] }).scales.pop();
  assert.throws(() => modelFromArtifacts(bad, weights, 'm8'), /m8: weight 'conv1\/kernel' is 8-bit but its manifest entry does not give \d+ scales and zero points/);
  for (const m of [model, loaded]) m.dispose();
});

test('MultiMNIST drawn afresh each epoch: training uses each epoch\'s pairs, and a resumed run still ends identical to a straight one', async () => {
  const root = mkdtempSync(join(tmpdir(), 'capsnet-fresh-'));
  const pairs = { train: loadDataset('multimnist', 'train', { count: 100, seed: 4 }), test: loadDataset('multimnist', 'test', { count: 40 }) };
  const opts = (dir: string): TrainOptions => ({ ...base(join(root, dir)), dataset: 'multimnist', overrides: { ...tiny, inputShape: [36, 36, 1] }, epochs: 2 });
  const straight = await train(opts('a'), pairs, quiet);
  const first = await train(opts('b'), pairs, { ...quiet, maxSteps: 3 }); // 2 steps per epoch: stops in epoch 2
  assert.equal(first.interrupted, true);
  first.model.dispose();
  const resumed = await train({ ...opts('b'), resume: true }, pairs, quiet);
  // The same two epochs with epoch 1's pairs twice.
  const samePairs = await train(opts('c'), { ...pairs, train: { ...pairs.train, forEpoch: undefined } }, quiet);
  let differs = false;
  for (let i = 0; i < straight.model.params.length; i++) {
    const a = straight.model.params[i].value.dataSync();
    assert.deepEqual(resumed.model.params[i].value.dataSync(), a, `weights of ${straight.model.params[i].name}`);
    if (samePairs.model.params[i].value.dataSync().some((v, k) => v !== a[k])) differs = true;
  }
  assert.ok(differs, 'epoch 2 trained on other pairs than epoch 1');
  for (const m of [straight.model, resumed.model, samePairs.model]) m.dispose();
});

test('stop-at-error checks fall on the same steps whether or not the run was interrupted and resumed', async () => {
  const root = mkdtempSync(join(tmpdir(), 'capsnet-checks-'));
  const opts = (dir: string): TrainOptions => ({ ...base(join(root, dir)), epochs: 2 });
  const hooks = { ...quiet, stopAtError: 0, checkEvery: 3 };
  (await train(opts('a'), data, hooks)).model.dispose();
  (await train(opts('b'), data, { ...hooks, maxSteps: 2 })).model.dispose();
  (await train({ ...opts('b'), resume: true }, data, hooks)).model.dispose();
  const steps = (dir: string) => readFileSync(join(root, dir, 'checks.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
  // 4 steps an epoch: checks at step 3, after epoch 1 (step 4), at step 6 and after epoch 2 (step 8).
  assert.deepEqual(steps('a'), [3, 4, 6, 8]);
  assert.deepEqual(steps('b'), steps('a'));
});

test('the weight average is the bias-corrected exponential mean of the weights after each update', () => {
  const w = tf.variable(tf.tensor1d([0, 0, 0]), true, 'avg-test');
  const params = [{ name: 'w', value: w }];
  const avg = new WeightAverage(0.9);
  assert.throws(() => avg.averaged(params), /no updates yet/);
  const seen: number[][] = [[1, -2, 4], [3, 0, 0.5], [-1, 5, 2]];
  for (const v of seen) {
    w.assign(tf.tensor1d(v));
    avg.update(params);
  }
  // Float64 by hand: sum_k (1-d) d^(t-k) w_k / (1 - d^t).
  const d = 0.9;
  const t = seen.length;
  const expected = [0, 1, 2].map((i) => seen.reduce((acc, v, k) => acc + (1 - d) * d ** (t - 1 - k) * v[i], 0) / (1 - d ** t));
  const got = avg.averaged(params).get('w')!;
  const values = Array.from(got.dataSync());
  values.forEach((x, i) => assert.ok(Math.abs(x - expected[i]) < 1e-5, `average[${i}] ${x} vs ${expected[i]}`));
  // withAveraged swaps the average in and puts the training weights back exactly.
  const inside = avg.withAveraged(params, () => Array.from(w.dataSync()));
  assert.deepEqual(inside, values);
  assert.deepEqual(Array.from(w.dataSync()), seen[t - 1]);
  // State round-trips.
  const copy = new WeightAverage(0.9);
  copy.setState(avg.getState(), params);
  assert.deepEqual(Array.from(copy.averaged(params).get('w')!.dataSync()), values);
  assert.throws(() => new WeightAverage(1), /decay must be in \(0, 1\)/);
  tf.dispose([w, got]);
  avg.dispose();
  copy.dispose();
});

test('with weight averaging, an interrupted and resumed run saves the same averaged and training weights as a straight one', async () => {
  const root = mkdtempSync(join(tmpdir(), 'capsnet-ema-'));
  const opts = (dir: string): TrainOptions => ({ ...base(join(root, dir)), weightAverage: 0.8 });
  const straight = await train(opts('a'), data, quiet);
  (await train(opts('b'), data, { ...quiet, maxSteps: 5 })).model.dispose();
  const resumed = await train({ ...opts('b'), resume: true }, data, quiet);
  const a = readCheckpoint(join(root, 'a'));
  const b = readCheckpoint(join(root, 'b'));
  assert.equal(a.state.average?.count, 8);
  assert.equal(b.state.average?.count, 8);
  const savedA = loadModel(join(root, 'a'));
  const savedB = loadModel(join(root, 'b'));
  let differs = false;
  for (let i = 0; i < straight.model.params.length; i++) {
    const name = straight.model.params[i].name;
    // The model files (and the returned model) hold the average; the checkpoint keeps the training weights to resume from.
    assert.deepEqual(savedB.model.params[i].value.dataSync(), savedA.model.params[i].value.dataSync(), `averaged ${name}`);
    assert.deepEqual(resumed.model.params[i].value.dataSync(), straight.model.params[i].value.dataSync(), `returned ${name}`);
    assert.deepEqual(straight.model.params[i].value.dataSync(), savedA.model.params[i].value.dataSync(), `returned = saved ${name}`);
    assert.deepEqual(b.model.params[i].value.dataSync(), a.model.params[i].value.dataSync(), `training ${name}`);
    assert.deepEqual(b.averageState!.sums[name], a.averageState!.sums[name], `sums of ${name}`);
    const sa = savedA.model.params[i].value.dataSync();
    const ta = a.model.params[i].value.dataSync();
    if (sa.some((x, k) => x !== ta[k])) differs = true;
  }
  assert.ok(differs, 'the averaged weights differ from the training weights');
  // Test accuracy in the history is the averaged model's, and the training weights' is logged beside it.
  const last = a.state.history[a.state.history.length - 1];
  assert.equal(typeof last.testAccuracyTrainingWeights, 'number');
  for (const m of [straight.model, resumed.model, a.model, b.model, savedA.model, savedB.model]) m.dispose();
});

test('--init starts training from a saved model\'s weights, with a fresh optimizer', async () => {
  const root = mkdtempSync(join(tmpdir(), 'capsnet-init-'));
  const source = await train({ ...base(join(root, 'src')), epochs: 1 }, data, quiet);
  const sourceAccuracy = source.history[0].testAccuracy!;
  // A vanishing learning rate leaves the weights where --init put them: the source model's.
  const tuned = await train({ ...base(join(root, 'ft')), epochs: 1, learningRate: 1e-30, init: join(root, 'src') }, data, quiet);
  for (let i = 0; i < source.model.params.length; i++) {
    assert.deepEqual(tuned.model.params[i].value.dataSync(), source.model.params[i].value.dataSync(), source.model.params[i].name);
  }
  assert.equal(tuned.history[0].testAccuracy, sourceAccuracy);
  const saved = loadModel(join(root, 'ft'));
  assert.equal(saved.json.metadata?.initializedFrom, join(root, 'src'));
  saved.model.dispose();
  assert.equal(readCheckpoint(join(root, 'ft')).optimizerState.step, 4, 'the optimizer counts only the new run\'s steps');
  await assert.rejects(train({ ...base(join(root, 'bad')), model: 'cnn', init: join(root, 'src') }, data, quiet), /is a capsnet model, training asks for cnn/);
  await assert.rejects(train({ ...base(join(root, 'bad2')), init: join(root, 'missing') }, data, quiet), /model not found/);
  source.model.dispose();
  tuned.model.dispose();
});

test('runs saved before checkpoints recorded a typed data description (e6ac30b) resume: their data flags read as a DataSpec, and epoch 2 repeats the old code\'s straight run', async () => {
  const root = copyOldRuns();
  for (const run of OLD_RUNS) {
    const outDir = join(root, `run-${run}`);
    const old = JSON.parse(readFileSync(join(outDir, 'checkpoints', 'epoch-0001', 'training.json'), 'utf8'));
    assert.equal(old.version, 1);
    const flags = old.options.data;
    // What the data flags of each run chose, by the names version 1 wrote.
    const expected: DataSpec = run === 'mnist'
      ? { source: { kind: 'dataset', name: flags.dataset }, trainLimit: flags['train-limit'], testLimit: flags['test-limit'] }
      : { source: { kind: 'user', path: flags.data, valSplit: flags['val-split'], seed: flags['data-seed'], imageSize: flags['image-size'], channels: Number(flags.channels) as 1 | 3, cacheDir: flags['cache-dir'] } };
    const state = readTrainingState(outDir);
    assert.equal(state.version, 2);
    assert.deepEqual(state.options.data, expected, run);
    assert.ok(!('resume' in state.options), 'the CLI\'s --resume is not an option of the run');

    const spec = state.options.data!;
    const sets = { train: await loadData(spec, 'train', { log: () => {} }), test: await loadData(spec, 'test', { log: () => {} }) };
    const resumed = await train({ ...state.options, epochs: 2, resume: true }, sets, quiet);
    assert.equal(resumed.epoch, 2);
    assert.deepEqual(resumed.history[0], old.history[0], 'epoch 1 as the old run saved it');
    // Epoch 2 as the old code trained it without a break (a different build of the engine may differ in the last bits).
    const straight = straightMetrics(root, run)[1];
    const second = resumed.history[1];
    assert.equal(second.epoch, 2);
    assert.equal(second.learningRate, straight.learningRate, 'the optimizer goes on from the step it reached');
    assert.ok(Math.abs(second.trainLoss - straight.trainLoss) <= 1e-5 * straight.trainLoss, `${run}: epoch 2 loss ${second.trainLoss}, straight ${straight.trainLoss}`);
    assert.ok(Math.abs(second.testAccuracy! - straight.testAccuracy) <= 1 / sets.test.count, `${run}: epoch 2 test accuracy ${second.testAccuracy}, straight ${straight.testAccuracy}`);
    resumed.model.dispose();

    // The new checkpoint is version 2, with the same data, shifts and flips.
    const saved = readTrainingState(outDir);
    assert.equal(saved.version, 2);
    assert.equal(saved.epoch, 2);
    assert.deepEqual(saved.options.data, expected);
    assert.equal(saved.options.shift, old.options.shift);
    assert.equal(saved.options.flip, old.options.flip);
    assert.ok(!('resume' in saved.options));
  }
});

test('a training.json of an unknown version, or with a malformed data description, is refused with its path', () => {
  const root = copyOldRuns();
  const path = join(root, 'run-mnist', 'checkpoints', 'epoch-0001', 'training.json');
  const old = JSON.parse(readFileSync(path, 'utf8'));
  writeFileSync(path, JSON.stringify({ ...old, version: 3 }));
  assert.throws(() => readTrainingState(join(root, 'run-mnist')), /training\.json: training checkpoint version 3; this capsnet reads versions 1 to 2/);
  const v2 = (data: unknown) => JSON.stringify({ ...old, version: 2, options: { ...old.options, data } });
  writeFileSync(path, v2({ source: { kind: 'dataset', name: 'mnist' }, trainLimit: 0 }));
  assert.throws(() => readTrainingState(join(root, 'run-mnist')), /training\.json: options\.data: trainLimit must be a positive integer, got 0/);
  writeFileSync(path, v2({ source: { kind: 'folder', path: 'x' } }));
  assert.throws(() => readTrainingState(join(root, 'run-mnist')), /options\.data: unknown kind of data source "folder"; expected dataset, idx, user/);
  writeFileSync(path, v2({ source: { kind: 'user', path: 'x', channels: 2 } }));
  assert.throws(() => readTrainingState(join(root, 'run-mnist')), /options\.data: source\.channels must be 1 or 3, got 2/);
  writeFileSync(path, v2({ source: { kind: 'idx', images: 'a' } }));
  assert.throws(() => readTrainingState(join(root, 'run-mnist')), /options\.data: a source of kind idx needs labels/);
  // Version 1's IDX flags become an idx source with its test files.
  writeFileSync(path, JSON.stringify({ ...old, options: { ...old.options, data: { dataset: 'mnist', images: 'tr-i', labels: 'tr-l', 'test-images': 'te-i', 'test-labels': 'te-l', 'train-limit': 5 } } }));
  assert.deepEqual(readTrainingState(join(root, 'run-mnist')).options.data, { source: { kind: 'idx', images: 'tr-i', labels: 'tr-l', testImages: 'te-i', testLabels: 'te-l' }, trainLimit: 5 });
});
