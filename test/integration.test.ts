/**
 * End to end on real data: the small CapsNet trained on 5,000 MNIST training
 * images reaches at least 97% on 1,000 test images.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { take } from '../src/index.js';
import { describeBackend, initBackend, loadMnist, train } from '../src/node.js';
import { evaluate } from '../src/training/evaluate.js';

test('small CapsNet: 5,000 MNIST training images, at least 97% on 1,000 test images', async () => {
  const info = await initBackend();
  const out = mkdtempSync(join(tmpdir(), 'capsnet-integration-'));
  const trainSet = take(loadMnist('train'), 5000);
  const testSet = take(loadMnist('test'), 1000);
  const result = await train(
    { model: 'capsnet', preset: 'small', dataset: 'mnist', epochs: 6, batchSize: 50, learningRate: 0.002, lrDecay: 0.8, shift: 2, seed: 1, outDir: out },
    { train: trainSet, test: testSet },
    { log: (s) => process.stdout.write(`# ${s}\n`) },
  );
  const ev = evaluate(result.model, testSet);
  process.stdout.write(`# ${describeBackend(info)}: test accuracy ${(100 * ev.accuracy).toFixed(2)}% after ${result.epoch} epochs, ${result.elapsedSeconds.toFixed(0)} s\n`);
  assert.equal(ev.count, 1000);
  assert.ok(ev.accuracy >= 0.97, `test accuracy ${ev.accuracy} is below 97%`);
  assert.equal(result.history[result.history.length - 1].testAccuracy, ev.accuracy, 'the epoch log reports the same accuracy');
  result.model.dispose();
});
