/**
 * Test-set accuracy of an exported ONNX file in ONNX Runtime (onnxruntime-node),
 * and, given the saved model it came from, how far its scores are from
 * capsnet's own on every test image and how the two compare in speed:
 *
 *   capsnet export --pretrained mnist --format onnx --out capsnet-mnist.onnx
 *   node dist/bench/onnxEval.js capsnet-mnist.onnx --pretrained mnist [--batch-size 100] [--limit N]
 *
 * The test set is the one the file's metadata names (its `dataset`). On
 * multi-label data (MultiMNIST) an image is right when its classes are its top
 * scores (the rule of `capsnet eval`), and two models predict the same when
 * they give it the same top classes.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { describeBackend, initBackend } from '../src/backend/node.js';
import { makeBatch, sequentialOrder } from '../src/data/batches.js';
import { take } from '../src/data/dataset.js';
import { loadDataset } from '../src/data/index.js';
import { argmaxRows, loadOnnxRuntime, onnxFileMetadata, runOnnxBatches } from '../src/export/onnxRuntime.js';
import '../src/models/index.js';
import { loadModel } from '../src/models/files.js';
import { pretrainedDir } from '../src/models/pretrained.js';
import { hitsTargets, predictScores, topK } from '../src/training/evaluate.js';

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file || file.startsWith('--')) throw new Error('usage: onnxEval.js FILE.onnx [--pretrained NAME | --model DIR] [--batch-size N] [--limit N]');
  const batchSize = Number(option('batch-size') ?? 100);
  const bytes = readFileSync(file);
  const meta = onnxFileMetadata(bytes);
  let ds = loadDataset(meta.dataset ?? 'mnist', 'test');
  if (option('limit')) ds = take(ds, Number(option('limit')));
  const classes = JSON.parse(meta.classes ?? '[]') as string[];
  const x = makeBatch(ds, sequentialOrder(ds.count)).x;
  const ort = await loadOnnxRuntime();
  const threads = os.availableParallelism();
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1 });
  const t0 = performance.now();
  const out = await runOnnxBatches(ort, session, x, ds.count, [ds.height, ds.width, ds.channels], batchSize);
  const ortSeconds = (performance.now() - t0) / 1000;
  const k = classes.length || ds.numClasses;
  /** Image i's predicted classes (as many top scores as it has targets, in order) and whether they are right. */
  const judge = (scores: Float32Array, i: number): { classes: string; right: boolean } => {
    const row = scores.subarray(i * k, (i + 1) * k);
    if (!ds.multiLabels) {
      const top = argmaxRows(row, k)[0];
      return { classes: String(top), right: top === ds.labels[i] };
    }
    const target = ds.multiLabels.subarray(i * ds.numClasses, (i + 1) * ds.numClasses);
    const count = target.reduce((n, t) => n + (t ? 1 : 0), 0);
    return { classes: topK(row, count).sort((a, b) => a - b).join(','), right: hitsTargets(row, target) };
  };
  const predictions = Array.from({ length: ds.count }, (_, i) => judge(out.scores, i));
  const correct = predictions.filter((p) => p.right).length;
  const result: Record<string, unknown> = {
    file,
    dataset: ds.name,
    count: ds.count,
    onnxRuntimeAccuracy: correct / ds.count,
    onnxRuntimeImagesPerSecond: ds.count / ortSeconds,
    threads,
  };
  const source = option('pretrained') ? pretrainedDir(option('pretrained')!) : option('model');
  if (source) {
    const info = await initBackend();
    const { model } = loadModel(source);
    const t1 = performance.now();
    const ours = predictScores(model, ds, { batchSize });
    const oursSeconds = (performance.now() - t1) / 1000;
    let maxDiff = 0;
    let samePredictions = 0;
    let oursCorrect = 0;
    for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i] - out.scores[i]));
    for (let i = 0; i < ds.count; i++) {
      const mine = judge(ours, i);
      if (mine.classes === predictions[i].classes) samePredictions++;
      if (mine.right) oursCorrect++;
    }
    Object.assign(result, { capsnetBackend: describeBackend(info), capsnetAccuracy: oursCorrect / ds.count, capsnetImagesPerSecond: ds.count / oursSeconds, samePredictions, maxScoreDifference: maxDiff });
    model.dispose();
  }
  console.log(JSON.stringify(result, null, 2));
}

await main();
