/**
 * ONNX export checked in ONNX Runtime (onnxruntime-node) against capsnet's
 * own forward pass on real MNIST test images, for each model family: the
 * same predictions, scores within 1e-4, dynamic batches of 37 and 1, every
 * EM iteration count, float16 weights, Efficient-CapsNet trained and
 * exported by the CLI (and its smallNORB form's layers), the metadata, the
 * ONNX checker (Debian's python3-onnx), and the CLI's errors.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend/node.js';
import { makeBatch, sequentialOrder } from '../src/data/batches.js';
import { loadMnist } from '../src/data/mnist.js';
import { modelToOnnx, onnxArchitectures, onnxMetadata } from '../src/export/onnx.js';
import { argmaxRows, loadOnnxRuntime, onnxFileMetadata, runOnnxBatches, type OnnxRuntime } from '../src/export/onnxRuntime.js';
import '../src/models/index.js';
import { loadModel } from '../src/models/files.js';
import type { ClassifierModel } from '../src/models/model.js';
import { pretrainedDir } from '../src/models/pretrained.js';
import { architectureNames, createModel } from '../src/models/registry.js';
import { Adam } from '../src/training/adam.js';
import { trainStep } from '../src/training/trainer.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';

const BIN = new URL('../../bin/capsnet.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'capsnet-onnx-'));
/** Real MNIST test images, as capsnet eval feeds them (bytes / 255). */
const COUNT = 37;
let images: Float32Array;
let ort: OnnxRuntime;
/** Every file written here, for the checker. */
const written: string[] = [];

before(async () => {
  await initBackend();
  ort = await loadOnnxRuntime();
  images = makeBatch(loadMnist('test'), sequentialOrder(COUNT)).x;
});

function cli(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, CAPSNET_DEBUG: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function exportToFile(model: ClassifierModel, name: string, options: { routingIterations?: number; float16?: boolean } = {}): string {
  const path = join(dir, name);
  const metadata = onnxMetadata(model, {}, { ...options, version: 'test' });
  writeFileSync(path, modelToOnnx(model, { ...options, metadata, version: 'test' }));
  written.push(path);
  return path;
}

/** The forward pass's output behind each ONNX output name, where the model has it. */
const ONNX_OUTPUTS: Record<string, string> = { scores: 'scores', capsules: 'digitCaps', reconstruction: 'reconstruction', poses: 'poses' };

/** capsnet's outputs for the first `n` images, by ONNX output name. */
function capsnetOutputs(model: ClassifierModel, n: number, routingIterations?: number): Record<string, Float32Array> {
  const [h, w, c] = model.inputShape;
  return tf.tidy(() => {
    const out = model.forward(tf.tensor4d(images.subarray(0, n * h * w * c), [n, h, w, c]), routingIterations ? ({ routingIterations } as never) : undefined);
    const r: Record<string, Float32Array> = {};
    for (const [name, key] of Object.entries(ONNX_OUTPUTS)) if (out[key] instanceof tf.Tensor) r[name] = (out[key] as tf.Tensor).dataSync() as Float32Array;
    return r;
  });
}

/**
 * How close ONNX Runtime's outputs must be. The default, 1e-4 absolute,
 * holds the graphs of CapsNet, EM capsules and the CNN. Efficient-CapsNet's
 * 3x3 convolutions of 16 channels or more run in capsnet's native engine as
 * Winograd F(4x4,3x3), whose float32 error is about 1e-4 relative, against
 * ONNX Runtime's direct convolutions; its capsule lengths are small in a
 * briefly trained model, so it is held to 1e-3 relative (that error,
 * compounded over the backbone) and 1e-7 absolute instead. Predictions may
 * then differ only where capsnet's two longest capsules are within that
 * tolerance of each other (a tie at float error).
 */
interface Tolerance {
  rtol: number;
  atol: number;
  ties?: boolean;
}
const WINOGRAD_TOLERANCE: Tolerance = { rtol: 1e-3, atol: 1e-7, ties: true };

/** Rows whose predictions differ, each allowed only if `tolerance` allows ties and capsnet's top two scores are within it. */
function assertSamePredictions(got: Float32Array, expected: Float32Array, classes: number, tolerance: Tolerance, what: string): void {
  const a = argmaxRows(got, classes);
  const b = argmaxRows(expected, classes);
  if (!tolerance.ties) return assert.deepEqual(a, b, what);
  for (let r = 0; r < b.length; r++) {
    if (a[r] === b[r]) continue;
    const top = expected[r * classes + b[r]];
    const other = expected[r * classes + a[r]];
    assert.ok(top - other <= 2 * (tolerance.rtol * top + tolerance.atol), `${what}: image ${r} is ${a[r]} in ONNX Runtime, ${b[r]} in capsnet, whose scores ${top} and ${other} are no tie`);
  }
}

/**
 * The file's outputs in ONNX Runtime equal capsnet's: identical
 * predictions, every output within `tolerance`; run as one batch of 37 and
 * as a batch of 1 through the same session (the batch size is dynamic).
 */
async function assertSameAsCapsnet(model: ClassifierModel, path: string, routingIterations?: number, tolerance: Tolerance = { rtol: 0, atol: 1e-4 }): Promise<number> {
  const session = await ort.InferenceSession.create(path);
  assert.deepEqual(session.inputNames, ['image']);
  const expected = capsnetOutputs(model, COUNT, routingIterations);
  assert.deepEqual([...session.outputNames].sort(), Object.keys(expected).sort());
  let worst = 0;
  for (const batch of [COUNT, 1]) {
    const got = await runOnnxBatches(ort, session, images, batch, model.inputShape, batch);
    for (const [name, want] of Object.entries(expected)) {
      const w = want.subarray(0, (want.length / COUNT) * batch);
      assertClose(got[name], w, { rtol: tolerance.rtol, atol: tolerance.atol, what: `${name} (batch ${batch})` });
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(got[name][i] - w[i]));
    }
    assertSamePredictions(got.scores, expected.scores.subarray(0, batch * model.numClasses), model.numClasses, tolerance, `predictions (batch ${batch})`);
  }
  await session.release();
  return worst;
}

test('CapsNet: the shipped small model exported by the CLI gives capsnet\'s scores, capsules and reconstructions in ONNX Runtime', async () => {
  const out = join(dir, 'small.onnx');
  const r = cli('export', '--pretrained', 'mnist-small', '--format', 'onnx', '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  written.push(out);
  const report = JSON.parse(r.stdout);
  assert.equal(report.opset, 17);
  const { model, json } = loadModel(pretrainedDir('mnist-small'));
  try {
    const worst = await assertSameAsCapsnet(model, out);
    assert.ok(worst < 1e-4, `max difference ${worst}`);
    const meta = onnxFileMetadata(readFileSync(out));
    assert.deepEqual(JSON.parse(meta.classes), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    assert.equal(meta.dataset, 'mnist');
    assert.equal(meta.model_type, 'capsnet');
    assert.equal(meta.routing_iterations, '3');
    assert.match(meta.preprocessing, /\[0, 1\]/);
    assert.equal(meta.capsnet_version, JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version);
    const history = json.metadata!.history as { testAccuracy: number }[];
    assert.equal(Number(meta.test_accuracy), json.metadata!.testAccuracy ?? history[history.length - 1].testAccuracy);
  } finally {
    model.dispose();
  }
});

test('CapsNet: --routing unrolls another iteration count, and float16 weights give the same outputs at half the size', async () => {
  const { model } = loadModel(pretrainedDir('mnist-small'));
  try {
    for (const routingIterations of [1, 5]) await assertSameAsCapsnet(model, exportToFile(model, `small-r${routingIterations}.onnx`, { routingIterations }), routingIterations);
    const full = exportToFile(model, 'small-fp32.onnx');
    const half = exportToFile(model, 'small-fp16.onnx', { float16: true });
    const ratio = readFileSync(half).byteLength / readFileSync(full).byteLength;
    assert.ok(ratio > 0.45 && ratio < 0.55, `float16 file is ${ratio.toFixed(3)} of the float32 one`);
    await assertSameAsCapsnet(model, half);
  } finally {
    model.dispose();
  }
});

test('CNN baseline: softmax probabilities of a briefly trained small CNN match in ONNX Runtime', async () => {
  const model = createModel('cnn', 'small', {}, 5);
  try {
    // A few real training steps, so that predictions are not near-ties of random weights.
    const train = loadMnist('train');
    const rng = new Rng(5);
    const optimizer = new Adam({ learningRate: 2e-3 });
    for (let s = 0; s < 8; s++) trainStep(model, optimizer, makeBatch(train, rng.permutation(train.count).subarray(0, 32)), { fraction: 0, rng });
    optimizer.dispose();
    const path = exportToFile(model, 'cnn.onnx');
    await assertSameAsCapsnet(model, path);
    const meta = onnxFileMetadata(readFileSync(path));
    assert.equal(meta.model_type, 'cnn');
    assert.equal(meta.routing_iterations, undefined, 'a model that does not route records no routing iterations');
    assert.throws(() => exportToFile(model, 'cnn-r2.onnx', { routingIterations: 2 }), /CNN baseline has no routing/);
  } finally {
    model.dispose();
  }
});

test('EM capsules: class activations and poses match in ONNX Runtime for 1, 2 and 3 EM iterations', async () => {
  const model = createModel('em', 'small', { inputShape: [28, 28, 1], numClasses: 10 }, 3);
  try {
    // The model's own data-dependent start: about half the capsules active, so routing has work to do.
    tf.tidy(() => model.initializeFromData!(tf.tensor4d(images.subarray(0, 32 * 784), [32, 28, 28, 1])));
    for (const routingIterations of [1, 2, 3]) {
      const path = exportToFile(model, `em-r${routingIterations}.onnx`, { routingIterations });
      await assertSameAsCapsnet(model, path, routingIterations);
      assert.equal(onnxFileMetadata(readFileSync(path)).routing_iterations, String(routingIterations), 'the file records the iterations it unrolls');
    }
  } finally {
    model.dispose();
  }
});

test('Efficient-CapsNet trained and exported by the CLI: scores, capsules and reconstructions in ONNX Runtime, its accuracy on real MNIST test images, float16 weights', async () => {
  const run = join(dir, 'efficient-run');
  const trained = cli('train', '--arch', 'efficient', '--train-limit', '300', '--test-limit', '100', '--epochs', '1', '--out', run, '--json');
  assert.equal(trained.code, 0, trained.stderr);
  const out = join(dir, 'efficient.onnx');
  const r = cli('export', '--model', run, '--format', 'onnx', '--out', out, '--json');
  assert.equal(r.code, 0, r.stderr);
  written.push(out);
  const { model } = loadModel(run);
  try {
    await assertSameAsCapsnet(model, out, undefined, WINOGRAD_TOLERANCE);
    const meta = onnxFileMetadata(readFileSync(out));
    assert.equal(meta.model_type, 'efficient');
    assert.equal(meta.routing_iterations, undefined, 'one pass of self-attention routing: no iterations to record');
    assert.equal(Number(meta.test_accuracy), JSON.parse(trained.stdout).final.testAccuracy);

    // The 100 test images the run scored: ONNX Runtime's accuracy is capsnet eval's.
    const limit = 100;
    const evaluated = cli('eval', '--model', run, '--limit', String(limit), '--json');
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const test = makeBatch(loadMnist('test'), sequentialOrder(limit));
    const session = await ort.InferenceSession.create(out);
    const predictions = argmaxRows((await runOnnxBatches(ort, session, test.x, limit, model.inputShape)).scores, model.numClasses);
    await session.release();
    const correct = predictions.filter((p, i) => p === test.labels[i]).length;
    assert.equal(correct / limit, JSON.parse(evaluated.stdout).accuracy);
  } finally {
    model.dispose();
  }

  // float16: the file holds the values of capsnet's own float16 export, and computes what that model computes.
  const half = join(dir, 'efficient-fp16.onnx');
  assert.equal(cli('export', '--model', run, '--format', 'onnx', '--float16', '--out', half).code, 0);
  written.push(half);
  const ratio = readFileSync(half).byteLength / readFileSync(out).byteLength;
  assert.ok(ratio > 0.45 && ratio < 0.55, `float16 file is ${ratio.toFixed(3)} of the float32 one`);
  const halfDir = join(dir, 'efficient-fp16');
  assert.equal(cli('export', '--model', run, '--float16', '--out', halfDir).code, 0);
  const { model: halfModel } = loadModel(halfDir);
  try {
    await assertSameAsCapsnet(halfModel, half, undefined, WINOGRAD_TOLERANCE);
  } finally {
    halfModel.dispose();
  }
  const routing = cli('export', '--model', run, '--format', 'onnx', '--routing', '2', '--out', join(dir, 'efficient-r2.onnx'));
  assert.notEqual(routing.code, 0);
  assert.match(routing.stderr, /Efficient-CapsNet routes in one pass of self-attention: --routing does not apply/);
});

test('Efficient-CapsNet\'s smallNORB layers (instance norm, leaky ReLU, upsampling decoder) match in ONNX Runtime', async () => {
  // The smallNORB preset's backbone and decoder, at MNIST's size: a 3x3 primary kernel fits the 3x3 maps, two upsampling stages draw 28x28.
  const model = createModel('efficient', 'smallnorb', { inputShape: [28, 28, 1], numClasses: 10, primary: { kernelSize: 3 }, decoder: { kind: 'upsampling', filters: [16, 16] } }, 4);
  try {
    const train = loadMnist('train');
    const rng = new Rng(4);
    const optimizer = new Adam({ learningRate: 2e-3 });
    for (let s = 0; s < 8; s++) trainStep(model, optimizer, makeBatch(train, rng.permutation(train.count).subarray(0, 32)), { fraction: 0, rng });
    optimizer.dispose();
    await assertSameAsCapsnet(model, exportToFile(model, 'efficient-smallnorb-layers.onnx'), undefined, WINOGRAD_TOLERANCE);
  } finally {
    model.dispose();
  }
});

test('every registered architecture has an ONNX graph', () => {
  assert.deepEqual(onnxArchitectures().sort(), architectureNames().sort());
});

test('a model of an architecture without an ONNX graph is one clear error naming it', () => {
  const model = createModel('cnn', 'small', {}, 1);
  try {
    // The same model under a name no graph is registered for.
    const renamed = Object.create(model, { modelType: { value: 'unexported' } }) as ClassifierModel;
    assert.throws(() => modelToOnnx(renamed, { metadata: {}, version: 'test' }), /^Error: ONNX export: no graph for the unexported architecture \(there is one for capsnet, em, cnn, efficient\)$/);
  } finally {
    model.dispose();
  }
});

const checkerPython = ['/usr/bin/python3', 'python3'].find((py) => spawnSync(py, ['-c', 'import onnx'], { stdio: 'ignore' }).status === 0);

test('every exported file passes the ONNX checker (full check, with shape inference)', { skip: checkerPython ? false : 'no python3 with onnx (apt-get install python3-onnx)' }, () => {
  assert.ok(written.length >= 12, `files written by the tests above: ${written.length}`);
  const script = 'import sys, onnx\nfor p in sys.argv[1:]:\n    onnx.checker.check_model(onnx.load(p), full_check=True)\n    print("ok", p)';
  const r = spawnSync(checkerPython!, ['-c', script, ...written], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, written.length);
});

test('export --format onnx: bad flags are one clear line and a non-zero exit, and nothing is overwritten', () => {
  const existing = join(dir, 'existing.onnx');
  writeFileSync(existing, 'keep me');
  const cases: [string[], RegExp][] = [
    [['--pretrained', 'mnist-small', '--format', 'onnx', '--out', existing], /already exists/],
    [['--pretrained', 'mnist-small', '--format', 'onnx', '--out', join(dir, 'model')], /\.onnx file/],
    [['--pretrained', 'mnist-small', '--format', 'onnx'], /--out FILE\.onnx is needed/],
    [['--pretrained', 'mnist-small', '--out', join(dir, 'dir-format'), '--routing', '2'], /--routing applies to --format onnx only/],
    [['--pretrained', 'mnist-small', '--format', 'tflite', '--out', join(dir, 'x.onnx')], /--format must be one of capsnet, onnx/],
    [['--pretrained', 'mnist-small', '--format', 'onnx', '--routing', '0', '--out', join(dir, 'x.onnx')], /--routing must be at least 1/],
  ];
  for (const [args, pattern] of cases) {
    const r = cli('export', ...args);
    assert.notEqual(r.code, 0, args.join(' '));
    const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('backend:'));
    assert.equal(lines.length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
    assert.match(lines[0], pattern);
  }
  assert.equal(readFileSync(existing, 'utf8'), 'keep me');
  assert.equal(existsSync(join(dir, 'x.onnx')), false);
});
