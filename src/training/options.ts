/**
 * What a training run is asked to do (TrainOptions), checked before it
 * starts. Its own file so that the trainer and the checkpoints, which store
 * the options, both import it and neither imports the other.
 */
import type { DataSpec } from '../data/spec.js';

export interface TrainOptions {
  /** Model type ('capsnet', ...) and preset. */
  model: string;
  preset: string;
  /** Config overrides merged into the preset (e.g. { digit: { routingIterations: 1 } }). */
  overrides?: Record<string, unknown>;
  /** Dataset name, recorded in checkpoints. */
  dataset: string;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Learning rate multiplier per epoch, applied smoothly every step: lr * decay^(step / stepsPerEpoch). */
  lrDecay: number;
  /** Largest random shift in pixels (the paper: 2). */
  shift: number;
  /** Also mirror each training image left to right with probability 1/2 (seeded like the shifts). */
  flip?: boolean;
  /**
   * Where the data came from (data/spec.ts), recorded in the checkpoints so
   * that a resumed run, or the visualizer, can read the same data. train()
   * does not load data: it takes the datasets it is given.
   */
  data?: DataSpec;
  seed: number;
  outDir: string;
  /**
   * Start from this saved model's weights (a model or training directory)
   * instead of a fresh initialisation: fine-tuning. The architecture is the
   * saved model's; the optimizer starts afresh.
   */
  init?: string;
  /**
   * Keep an exponential moving average of the weights with this decay per
   * step (./weightAverage.ts); test accuracy and the saved model are the
   * averaged weights'.
   */
  weightAverage?: number;
}

export function validateTrainOptions(o: TrainOptions): void {
  const posInt: [string, number][] = [['epochs', o.epochs], ['batch size', o.batchSize]];
  for (const [k, v] of posInt) if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
  if (!(o.learningRate > 0) || !Number.isFinite(o.learningRate)) throw new Error(`learning rate must be a positive number, got ${o.learningRate}`);
  if (!(o.lrDecay > 0 && o.lrDecay <= 1)) throw new Error(`learning-rate decay must be in (0, 1], got ${o.lrDecay}`);
  if (!Number.isInteger(o.shift) || o.shift < 0) throw new Error(`shift must be a non-negative integer, got ${o.shift}`);
  if (!Number.isInteger(o.seed)) throw new Error(`seed must be an integer, got ${o.seed}`);
}
