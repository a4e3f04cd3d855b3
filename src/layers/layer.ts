/**
 * Layers follow the tfjs-layers shape: a class with build / call /
 * computeOutputShape / getConfig, registered by class name so a model can be
 * rebuilt from its saved config. Weights are tf.Variables named
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
  /** Registered class name, used in saved configs. */
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

  getConfig(): C {
    return { ...this.config };
  }

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

type LayerCtor = { className: string; new (name: string, config: never): Layer };
const registry = new Map<string, LayerCtor>();

/** Register a layer class so saved configs can name it. */
export function registerLayer(cls: LayerCtor): void {
  registry.set(cls.className, cls);
}

export function layerFromConfig(className: string, name: string, config: Record<string, unknown>): Layer {
  const cls = registry.get(className);
  if (!cls) throw new Error(`unknown layer class '${className}'`);
  return new cls(name, config as never);
}
