/**
 * A small, strict flag parser: every command declares its flags, and the
 * parser checks types, ranges and choices, so a bad flag value is one clear
 * line and a non-zero exit, and --help is generated from the same table.
 */
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

export interface CommandSpec {
  name: string;
  summary: string;
  description?: string;
  flags: FlagSpec[];
  positionals?: PositionalSpec[];
  examples?: string[];
  /** Old flag spellings, each with what to give instead: a one-line usage error. */
  renamed?: Record<string, string>;
}

export class UsageError extends Error {}

export type ParsedFlags = Record<string, string | number | boolean | undefined>;

export interface ParsedArgs {
  flags: ParsedFlags;
  positionals: string[];
  help: boolean;
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

export function parseArgs(spec: CommandSpec, argv: string[]): ParsedArgs {
  const byName = new Map(spec.flags.map((f) => [f.name, f]));
  const flags: ParsedFlags = {};
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
  return { flags, positionals, help };
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
  json: { name: 'json', type: 'boolean', help: 'print one JSON object instead of text' } as FlagSpec,
  backend: { name: 'backend', type: 'string', help: 'tfjs backend', choices: ['auto', 'native', 'wasm', 'cpu'], default: 'auto' } as FlagSpec,
  model: { name: 'model', type: 'string', arg: 'MODEL', help: 'a saved model: model directory, model.json, training output directory, or shipped name (see capsnet info --pretrained list)' } as FlagSpec,
  arch: { name: 'arch', type: 'string', arg: 'ARCH', default: 'capsnet', help: 'architecture (capsnet, cnn, em)' } as FlagSpec,
  pretrained: { name: 'pretrained', type: 'string', arg: 'NAME', help: 'a shipped pretrained model (see capsnet info --pretrained list)' } as FlagSpec,
  batchSize: { name: 'batch-size', type: 'int', min: 1, default: 100, help: 'images per batch' } as FlagSpec,
};
