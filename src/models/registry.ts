/**
 * Architectures by name, so that a saved model.json (which records its type
 * and config) can be rebuilt, and the CLI can build `--arch NAME` with
 * `--preset`. Each architecture also declares what callers would
 * otherwise test its name for: the settings the CLI may change on a fresh
 * model (so the CLI never writes config paths itself) and how it trains
 * beside the others in an experiment. What a built model has (a decoder,
 * routing, the parts the visualizer shows) the model itself says
 * (ClassifierModel).
 */
import type { ClassifierModel, ModelConfig } from './model.js';

/** Config overrides, merged key by key into a preset (see util/config.ts). */
export type ConfigOverrides = Record<string, unknown>;

/** Settings the CLI may apply to a fresh model, where the architecture has them. */
export interface ArchitectureSettings {
  /** Routing iterations of every routing layer. */
  routingIterations?: number;
  /** Weight of the reconstruction loss (0 turns it off). */
  reconstructionWeight?: number;
}

export interface Architecture<C extends ModelConfig = ModelConfig> {
  name: string;
  description: string;
  presets: readonly string[];
  /** The preset a model is built from when none is named (capsnet info, library callers). */
  defaultPreset: string;
  /** The preset that trains in minutes on a laptop: what capsnet train and capsnet viewpoints build when --preset is not given. */
  quickPreset: string;
  /** The full config of a preset with overrides merged in. */
  configFor(preset: string, overrides?: ConfigOverrides): C;
  /** For each setting the architecture has, the config overrides that apply it. */
  settings: { [K in keyof ArchitectureSettings]-?: ((value: number) => ConfigOverrides) | null };
  /**
   * Whether experiments that train several architectures side by side
   * (capsnet viewpoints) give this one a schedule of its own (learning rate,
   * batch size, routing iterations) instead of the one the others share.
   */
  separateSchedule: boolean;
  create(config: C, seed?: number): ClassifierModel;
}

const architectures = new Map<string, Architecture>();

export function registerArchitecture<C extends ModelConfig>(a: Architecture<C>): void {
  architectures.set(a.name, a);
}

export function getArchitecture(name: string): Architecture {
  const a = architectures.get(name);
  if (!a) throw new Error(`unknown architecture '${name}': expected one of ${[...architectures.keys()].join(', ')}`);
  return a;
}

export function architectureNames(): string[] {
  return [...architectures.keys()];
}

const SETTING_NAMES: Record<keyof ArchitectureSettings, string> = {
  routingIterations: 'routing iterations',
  reconstructionWeight: 'reconstruction loss (it has no decoder)',
};

/** The config overrides that set `key` to `value` on `arch`; a setting it does not have is a one-line error. */
export function applySetting(arch: Architecture, key: keyof ArchitectureSettings, value: number): ConfigOverrides {
  const apply = arch.settings[key];
  if (!apply) throw new Error(`the ${arch.name} architecture has no ${SETTING_NAMES[key]}`);
  return apply(value);
}

/** Build a fresh model of architecture `name` from a preset and overrides. */
export function createModel(name: string, preset?: string, overrides: ConfigOverrides = {}, seed = 0): ClassifierModel {
  const a = getArchitecture(name);
  const p = preset ?? a.defaultPreset;
  if (!a.presets.includes(p)) throw new Error(`unknown preset '${p}' for architecture '${name}': expected one of ${a.presets.join(', ')}`);
  return a.create(a.configFor(p, overrides), seed);
}
