/**
 * How much memory one training step of a model needs, measured rather than
 * guessed: a training step (forward, loss, gradients) is run under
 * tf.profile on batches of 1 and 2 random images, whose peak tensor bytes give
 * a fixed part and a part per example; to those come the weights and Adam's
 * two moments per weight. Tensor bytes only: the runtime itself (Node, the
 * libraries) comes on top.
 */
import * as tf from '@tensorflow/tfjs';
import type { ClassifierModel, ForwardOptions } from '../models/model.js';
import { Rng } from '../util/rng.js';

export interface TrainingMemoryEstimate {
  batchSize: number;
  /** Weights, and Adam's first and second moments. */
  weightBytes: number;
  optimizerBytes: number;
  /** Peak bytes of one step's activations and gradients: fixed + perExample * batchSize. */
  stepFixedBytes: number;
  stepPerExampleBytes: number;
  totalBytes: number;
}

async function stepPeakBytes(model: ClassifierModel, batch: number): Promise<number> {
  const [h, w, c] = model.inputShape;
  const rng = new Rng(1);
  const before = tf.memory().numBytes;
  const info = await tf.profile(() => {
    const x = tf.randomUniform([batch, h, w, c], 0, 1, 'float32', 1) as tf.Tensor4D;
    const labels = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % model.numClasses), 'int32');
    const targets = tf.oneHot(labels, model.numClasses).toFloat() as tf.Tensor2D;
    const { value, grads } = tf.variableGrads(() => {
      const out = model.forward(x, { training: true, labels, rng } as ForwardOptions);
      return model.loss(out, x, targets, { fraction: 0, rng }).total;
    }, model.params.map((p) => p.value));
    tf.dispose([x, labels, targets, value, ...Object.values(grads)]);
  });
  return Math.max(0, info.peakBytes - before);
}

export async function estimateTrainingMemory(model: ClassifierModel, batchSize: number): Promise<TrainingMemoryEstimate> {
  const weightBytes = 4 * model.countParams();
  const one = await stepPeakBytes(model, 1);
  const two = await stepPeakBytes(model, 2);
  const stepPerExampleBytes = Math.max(0, two - one);
  const stepFixedBytes = Math.max(0, one - stepPerExampleBytes);
  const optimizerBytes = 2 * weightBytes;
  return { batchSize, weightBytes, optimizerBytes, stepFixedBytes, stepPerExampleBytes, totalBytes: weightBytes + optimizerBytes + stepFixedBytes + stepPerExampleBytes * batchSize };
}

export function formatBytes(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : n >= 1024 ** 2 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}
