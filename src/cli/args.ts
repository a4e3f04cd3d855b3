/**
 * A small, strict flag parser: every command declares its flags, and the
 * parser checks types, ranges and choices, so a bad flag value is one clear
 * line and a non-zero exit, and --help is generated from the same table.
 */
import { architectureNames, getArchitecture } from '../models/index.js';

/** The registered architectures, for help texts. */
export const ARCHITECTURE_LIST = architectureNames().join(', ');

/** Group architectures that share a value, for help texts: "capsnet, cnn, em: paper, small; efficient: mnist, ...". */
function byArchitecture(value: (name: string) => string): string {
  const groups = new Map<string, string[]>();
  for (const name of architectureNames()) {
    const v = value(name);
    groups.set(v, [...(groups.get(v) ?? []), name]);
  }
  return [...groups].map(([v, names]) => `${names.join(', ')}: ${v}`).join('; ');
}

/** Each architecture's presets, from the registry, for help texts. */
export const PRESET_LIST = byArchitecture((name) => getArchitecture(name).presets.join(', '));

/** Each architecture's default preset ('default') or quick preset ('quick'), from the registry, for help texts. */
export function presetDefaults(which: 'default' | 'quick'): string {
  return byArchitecture((name) => (which === 'default' ? getArchitecture(name).defaultPreset : getArchitecture(name).quickPreset));
}

export type FlagType = 'string' | 'int' | 'number' | 'boolean';

export interface FlagSpec {
  name: string;
  type: FlagType;
  help: string;
  default?: string | number | boolean;
  choices?: readonly string[];
  min?: number;
  max?: number;
  /** Placeholder shown in help, e.g. DIR. */
  arg?: string;
}

export interface PositionalSpec {
  name: string;
  help: string;
  required?: boolean;
  /** The last positional may take any number of values (e.g. pictures a shell glob expanded). */
  variadic?: boolean;
}

export interface CommandSpec<Fs extends readonly FlagSpec[] = readonly FlagSpec[]> {
  name: string;
  summary: string;
  description?: string;
  flags: Fs;
  positionals?: PositionalSpec[];
  examples?: string[];
  /** Old flag spellings, each with what to give instead: a one-line usage error. */
  renamed?: Record<string, string>;
}

export class UsageError extends Error {}

/** What a flag parses to: a number (int, number), a boolean, or a string (one of its choices when it has them). */
export type FlagValue<F extends FlagSpec> = F['type'] extends 'boolean'
  ? boolean
  : F['type'] extends 'int' | 'number'
    ? number
    : F extends { choices: readonly (infer C extends string)[] }
      ? C
      : string;

/**
 * The parsed flags of a flag table, each under its name with the type its
 * spec gives; a flag without a default is undefined when not given. So a
 * command reads `flags['batch-size']` as a number, checked by the compiler.
 */
export type FlagsOf<Fs extends readonly FlagSpec[]> = {
  [F in Fs[number] as F['name']]: FlagValue<F> | (F extends { default: string | number | boolean } ? never : undefined);
};

export interface ParsedArgs<Flags> {
  flags: Flags;
  positionals: string[];
  help: boolean;
}

/** The parsed arguments of a command spec. */
export type ArgsOf<S> = S extends CommandSpec<infer Fs> ? ParsedArgs<FlagsOf<Fs>> : never;

/**
 * A command's spec, with each flag's name, type, choices and default kept as
 * literal types, so that `FlagsOf` can type what the parser returns.
 */
export function commandSpec<const Fs extends readonly FlagSpec[]>(spec: CommandSpec<Fs>): CommandSpec<Fs> {
  return spec;
}

/** `flags` without the one named `name` (its type too). */
export function omitFlag<F extends FlagSpec, const N extends F['name']>(flags: readonly F[], name: N): Exclude<F, { name: N }>[] {
  return flags.filter((f): f is Exclude<F, { name: N }> => f.name !== name);
}

/** A flag spec with its name, type, choices and default kept as literal types (for flags shared by several commands). */
export function flagSpec<const F extends FlagSpec>(spec: F): F {
  return spec;
}

function parseValue(spec: FlagSpec, raw: string): string | number | boolean {
  const flag = `--${spec.name}`;
  switch (spec.type) {
    case 'boolean':
      if (raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === 'false' || raw === '0' || raw === 'no') return false;
      throw new UsageError(`${flag} takes true or false, got '${raw}'`);
    case 'int':
    case 'number': {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(v)) throw new UsageError(`${flag} must be a number, got '${raw}'`);
      if (spec.type === 'int' && !Number.isInteger(v)) throw new UsageError(`${flag} must be an integer, got '${raw}'`);
      if (spec.min !== undefined && v < spec.min) throw new UsageError(`${flag} must be at least ${spec.min}, got ${raw}`);
      if (spec.max !== undefined && v > spec.max) throw new UsageError(`${flag} must be at most ${spec.max}, got ${raw}`);
      return v;
    }
    case 'string':
      if (spec.choices && !spec.choices.includes(raw)) throw new UsageError(`${flag} must be one of ${spec.choices.join(', ')}; got '${raw}'`);
      return raw;
  }
}

export function parseArgs<Fs extends readonly FlagSpec[]>(spec: CommandSpec<Fs>, argv: string[]): ParsedArgs<FlagsOf<Fs>> {
  const byName = new Map<string, FlagSpec>(spec.flags.map((f) => [f.name, f]));
  const flags: Record<string, string | number | boolean> = {};
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      help = true;
      continue;
    }
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      let name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      let negated = false;
      if (!byName.has(name) && name.startsWith('no-') && byName.get(name.slice(3))?.type === 'boolean') {
        name = name.slice(3);
        negated = true;
      }
      const f = byName.get(name);
      const renamed = spec.renamed?.[name];
      if (!f && renamed) throw new UsageError(`--${name} is no longer a flag of '${spec.name}': ${renamed}`);
      if (!f) throw new UsageError(`unknown flag --${name} for '${spec.name}' (see capsnet ${spec.name} --help)`);
      if (f.type === 'boolean') {
        flags[name] = eq >= 0 ? parseValue(f, a.slice(eq + 1)) : !negated;
        continue;
      }
      const raw = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      if (raw === undefined) throw new UsageError(`--${name} needs a value`);
      flags[name] = parseValue(f, raw);
      continue;
    }
    positionals.push(a);
  }
  if (!help) {
    const pos = spec.positionals ?? [];
    const required = pos.filter((p) => p.required).length;
    if (positionals.length < required) throw new UsageError(`'${spec.name}' needs ${pos.filter((p) => p.required).map((p) => p.name).join(' ')} (see capsnet ${spec.name} --help)`);
    if (positionals.length > pos.length && !pos[pos.length - 1]?.variadic) throw new UsageError(`unexpected argument '${positionals[pos.length]}' for '${spec.name}'`);
  }
  for (const f of spec.flags) if (flags[f.name] === undefined && f.default !== undefined) flags[f.name] = f.default;
  // Every value was parsed by its own spec (parseValue) or is its spec's default: the types FlagsOf gives.
  return { flags: flags as FlagsOf<Fs>, positionals, help };
}

export function formatHelp(spec: CommandSpec): string {
  const pos = (spec.positionals ?? []).map((p) => `${p.required ? p.name : `[${p.name}]`}${p.variadic ? '...' : ''}`).join(' ');
  const lines = [`capsnet ${spec.name}${pos ? ` ${pos}` : ''} [flags]`, '', spec.summary];
  if (spec.description) lines.push('', spec.description);
  if (spec.positionals?.length) {
    lines.push('', 'Arguments:');
    for (const p of spec.positionals) lines.push(`  ${p.name.padEnd(24)} ${p.help}`);
  }
  lines.push('', 'Flags:');
  const all = [...spec.flags, { name: 'help', type: 'boolean' as const, help: 'show this help' }];
  for (const f of all) {
    const left = f.type === 'boolean' ? `--${f.name}` : `--${f.name} ${f.arg ?? (f.type === 'string' ? 'VALUE' : 'N')}`;
    let help = f.help;
    if (f.choices) help += ` (${f.choices.join(', ')})`;
    if (f.default !== undefined && f.type !== 'boolean') help += ` [default: ${f.default}]`;
    lines.push(`  ${left.padEnd(24)} ${help}`);
  }
  if (spec.examples?.length) {
    lines.push('', 'Examples:');
    for (const e of spec.examples) lines.push(`  ${e}`);
  }
  return lines.join('\n');
}

/** Flags shared by several commands. */
export const COMMON_FLAGS = {
  json: flagSpec({ name: 'json', type: 'boolean', help: 'print one JSON object instead of text' }),
  backend: flagSpec({ name: 'backend', type: 'string', help: 'tfjs backend', choices: ['auto', 'native', 'wasm', 'cpu'], default: 'auto' }),
  model: flagSpec({ name: 'model', type: 'string', arg: 'MODEL', help: 'a saved model: model directory, model.json, training output directory, or shipped name (see capsnet info --pretrained list)' }),
  arch: flagSpec({ name: 'arch', type: 'string', arg: 'ARCH', default: 'capsnet', help: `architecture (${ARCHITECTURE_LIST})` }),
  pretrained: flagSpec({ name: 'pretrained', type: 'string', arg: 'NAME', help: 'a shipped pretrained model (see capsnet info --pretrained list)' }),
  batchSize: flagSpec({ name: 'batch-size', type: 'int', min: 1, default: 100, help: 'images per batch' }),
};
