/**
 * Loads the compiled addon (build/Release/capsnet_native.node) and checks it
 * against the table of src/backend/kernelTable.ts, from which its type is
 * derived. Every entry point takes one object of named settings and throws
 * a JS error naming the one at fault: a setting it does not declare (refused
 * here), or one that is missing or of the wrong type or length (refused in
 * C++, see args.h). The kernels in ../kernels/ compute shapes and allocate
 * outputs, the addon fills them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { NATIVE_ENTRIES, NATIVE_OPS, type NativeEntry, type NativeEntryName, type OpCodes, type OpFamily } from '../../backend/kernelTable.js';

export type { GemmIsa, NativeInfo, NativeMemoryStats, OpCode, OpCodes } from '../../backend/kernelTable.js';

/** A call of entry E: one settings object (none for entries without settings), its result. */
type EntryCall<E> = E extends NativeEntry<infer S, infer R, string | undefined, string | undefined> ? ([S] extends [void] ? () => R : (settings: S) => R) : never;

/** The addon, typed from NATIVE_ENTRIES. */
export type NativeAddon = { readonly [K in NativeEntryName]: EntryCall<(typeof NATIVE_ENTRIES)[K]> };

export type AddonLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string };

const REBUILD = '(rebuild with node scripts/build-native.mjs)';

/**
 * The code of every op name of NATIVE_OPS, from the addon's own op tables
 * (each op's name at its code); throws naming an op or family the addon
 * lacks.
 */
export function opCodes(addon: Pick<NativeAddon, 'opTables'>): OpCodes {
  const tables = addon.opTables();
  const codes: Record<string, Record<string, number>> = {};
  for (const family of Object.keys(NATIVE_OPS) as OpFamily[]) {
    const table = tables[family];
    if (!Array.isArray(table)) throw new Error(`the native addon has no op table '${family}' ${REBUILD}`);
    codes[family] = {};
    for (const name of NATIVE_OPS[family]) {
      const code = table.indexOf(name);
      if (code < 0) throw new Error(`the native addon's ${family} op table lacks '${name}' ${REBUILD}`);
      codes[family][name] = code;
    }
  }
  return codes as unknown as OpCodes;
}

/** An addon function as C++ exports it: the values of its settings in the order of `settings`, its names (entry.h). */
type RawEntry = ((...values: unknown[]) => unknown) & { readonly settings?: unknown };

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

function settingsError(message: string): TypeError {
  return Object.assign(new TypeError(message), { code: 'ERR_CAPSNET_NATIVE_ARG' });
}

/**
 * Entry `name` as JS calls it, with one object of named settings: it refuses
 * a second argument, a settings value that is not an object, and a setting
 * the entry does not declare (naming it), and passes the values on in the
 * order the entry declares them. The function is generated from that
 * declaration, so that its property reads are as fast as written-out ones:
 * a tiny op pays tens of nanoseconds for its names, where reading them
 * through N-API would cost microseconds.
 */
function namedEntry(name: string, raw: RawEntry): (settings?: object) => unknown {
  const names = raw.settings;
  if (!Array.isArray(names) || !names.every((n) => typeof n === 'string' && IDENTIFIER.test(n))) {
    throw new Error(`the native addon's entry '${name}' does not declare its settings ${REBUILD}`);
  }
  const cases = names.length === 0 ? '' : `${names.map((n) => `case ${JSON.stringify(n)}:`).join(' ')} break;`;
  const values = names.map((n) => `settings[${JSON.stringify(n)}]`).join(', ');
  const body = `return function (settings) {
    if (arguments.length > 1) throw fail(entry + ': takes one settings object, got ' + arguments.length + ' arguments');
    if (settings === undefined) return raw();
    if (typeof settings !== 'object' || settings === null) throw fail(entry + ': expected one settings object');
    for (const key in settings) {
      switch (key) { ${cases} default: throw fail(entry + ": unknown setting '" + key + "'"); }
    }
    return raw(${values});
  };`;
  const call = new Function('raw', 'fail', 'entry', body)(raw, settingsError, name) as (settings?: object) => unknown;
  return Object.defineProperty(call, 'name', { value: name });
}

/**
 * Why `addon` does not match src/backend/kernelTable.ts, or null when it
 * does: every declared entry must be a function of the addon and every
 * function of the addon a declared entry, and every op name the kernels use
 * must be in the addon's op tables.
 */
export function checkAddon(addon: Record<string, unknown>): string | null {
  for (const name of Object.keys(NATIVE_ENTRIES)) {
    if (typeof addon[name] !== 'function') return `the native addon lacks entry '${name}' ${REBUILD}`;
  }
  for (const name of Object.keys(addon)) {
    if (!Object.hasOwn(NATIVE_ENTRIES, name)) return `the native addon exports '${name}', which src/backend/kernelTable.ts does not declare ${REBUILD}`;
  }
  try {
    opCodes(addon as unknown as NativeAddon);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  return null;
}

/** build/Release/, from dist/src/native/boundary/ (compiled) or src/native/boundary/ (sources). */
function candidatePaths(): string[] {
  return ['../../../../build/Release/capsnet_native.node', '../../../build/Release/capsnet_native.node'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
}

/** CPU features the running machine lacks among `needed` (Linux only; elsewhere none are known to be missing). */
function missingCpuFeatures(needed: string[]): string[] {
  if (needed.length === 0 || os.platform() !== 'linux') return [];
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const flags = new Set((info.match(/^flags\s*:(.*)$/m)?.[1] ?? '').trim().split(/\s+/));
    return needed.filter((f) => !flags.has(f));
  } catch {
    return [];
  }
}

let cached: AddonLoad | null = null;

export function loadAddon(): AddonLoad {
  if (cached) return cached;
  cached = (() => {
    const path = candidatePaths().find((p) => existsSync(p));
    if (!path) return { ok: false, reason: 'the addon is not built (npm install builds it; it needs a C++ compiler)' };
    const manifestPath = path.replace(/\.node$/, '.json');
    if (existsSync(manifestPath)) {
      try {
        const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { cpuFeatures?: string[] };
        const missing = missingCpuFeatures(manifest.cpuFeatures ?? []);
        if (missing.length > 0) {
          return { ok: false, reason: `the addon was built for CPU features this machine lacks (${missing.join(', ')}); rebuild it here with node scripts/build-native.mjs` };
        }
      } catch {
        // An unreadable manifest is no reason to refuse the addon.
      }
    }
    let addon: Record<string, unknown>;
    try {
      addon = createRequire(import.meta.url)(path) as Record<string, unknown>;
    } catch (e) {
      return { ok: false, reason: `the addon does not load: ${e instanceof Error ? e.message : String(e)}` };
    }
    const mismatch = checkAddon(addon);
    if (mismatch) return { ok: false, reason: mismatch };
    try {
      const named = Object.fromEntries(Object.keys(NATIVE_ENTRIES).map((name) => [name, namedEntry(name, addon[name] as RawEntry)]));
      return { ok: true, addon: named as unknown as NativeAddon, path };
    } catch (e) {
      return { ok: false, reason: e instanceof Error ? e.message : String(e) };
    }
  })();
  return cached;
}
