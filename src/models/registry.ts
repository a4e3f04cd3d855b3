/**
 * Model types by name, so that a saved model.json (which records its type and
 * config) can be rebuilt, and the CLI can build `--model capsnet|cnn|em`
 * with `--preset`.
 */
import type { ClassifierModel } from './model.js';

export interface ModelType {
  name: string;
  description: string;
  presets: string[];
  defaultPreset: string;
  /** The full config of a preset with overrides merged in. */
  configFor(preset: string, overrides?: Record<string, unknown>): Record<string, unknown>;
  create(config: Record<string, unknown>, seed?: number): ClassifierModel;
}

const types = new Map<string, ModelType>();

export function registerModelType(t: ModelType): void {
  types.set(t.name, t);
}

export function getModelType(name: string): ModelType {
  const t = types.get(name);
  if (!t) throw new Error(`unknown model type '${name}': expected one of ${[...types.keys()].join(', ')}`);
  return t;
}

export function modelTypeNames(): string[] {
  return [...types.keys()];
}

/** Build a fresh model of `type` from a preset and overrides. */
export function createModel(type: string, preset?: string, overrides: Record<string, unknown> = {}, seed = 0): ClassifierModel {
  const t = getModelType(type);
  const p = preset ?? t.defaultPreset;
  if (!t.presets.includes(p)) throw new Error(`unknown preset '${p}' for model '${type}': expected one of ${t.presets.join(', ')}`);
  return t.create(t.configFor(p, overrides), seed);
}
