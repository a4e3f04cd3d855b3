/**
 * Layers follow the tfjs-layers shape: a class with build / call /
 * computeOutputShape; a model rebuilds its layers from its own config. Weights are tf.Variables named
 * `<layer>/<weight>`; the tfjs variable itself gets a unique suffix so that
 * several models can live in one process.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.js';
import { initialize, type InitializerSpec } from './initializers.js';

/** A trainable parameter: its stable name in saved files and its variable. */
export interface Param {
  name: string;
  value: tf.Variable;
}

export type Shape = (number | null)[];

let variableCounter = 0;

export abstract class Layer<C extends Record<string, unknown> = Record<string, unknown>> {
  /** Class name, shown in model summaries. */
  static readonly className: string;
  readonly name: string;
  protected readonly config: C;
  readonly params: Param[] = [];
  private builtShape: Shape | null = null;

  constructor(name: string, config: C) {
    this.name = name;
    this.config = config;
  }

  get built(): boolean {
    return this.builtShape !== null;
  }

  /** Create the weights for an input of `inputShape` (batch dimension first, null). */
  build(inputShape: Shape, rng: Rng): void {
    if (this.built) throw new Error(`layer ${this.name} is already built`);
    this.builtShape = inputShape;
    this.createWeights(inputShape, rng);
  }

  protected abstract createWeights(inputShape: Shape, rng: Rng): void;

  abstract computeOutputShape(inputShape: Shape): Shape;

  get className(): string {
    return (this.constructor as typeof Layer).className;
  }

  protected addWeight(weightName: string, shape: number[], init: InitializerSpec, rng: Rng): tf.Variable {
    const name = `${this.name}/${weightName}`;
    const value = tf.tidy(() => tf.variable(initialize(init, shape, rng), true, `${name}_${variableCounter++}`));
    this.params.push({ name, value });
    return value;
  }

  countParams(): number {
    return this.params.reduce((n, p) => n + p.value.size, 0);
  }

  dispose(): void {
    for (const p of this.params) p.value.dispose();
  }
}
