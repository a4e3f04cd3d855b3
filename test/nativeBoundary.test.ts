/**
 * The boundary between TypeScript and the engine is declared once
 * (src/backend/kernelTable.ts on one side, CAPSNET_ENTRY and
 * CAPSNET_OP_TABLE on the other) and checked: a misspelt kernel name, an
 * entry or op the addon lacks, and a misspelt or missing setting each fail
 * with a message naming it, on the real addon.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { FUSED_KERNELS, NATIVE_ENTRIES, NATIVE_OPS } from '../src/backend/kernelTable.js';
import { checkNativeKernelNames, nativeKernelConfigs } from '../src/native/backend.js';
import { checkAddon, loadAddon, opCodes, type NativeAddon } from '../src/native/boundary/addon.js';
import { nativeTest } from './nativeUtil.js';

function addon(): NativeAddon {
  const loaded = loadAddon();
  assert.ok(loaded.ok);
  return loaded.addon;
}

/** A copy of the addon's exports, to break on purpose. */
function copy(): Record<string, unknown> {
  return { ...(addon() as unknown as Record<string, unknown>) };
}

nativeTest('the addon exports exactly the entries of the table, with every op name the kernels use', () => {
  assert.equal(checkAddon(copy()), null);
  assert.deepEqual(Object.keys(addon()).sort(), Object.keys(NATIVE_ENTRIES).sort());
  const codes = opCodes(addon());
  for (const family of Object.keys(NATIVE_OPS) as (keyof typeof NATIVE_OPS)[]) {
    const table = addon().opTables()[family];
    for (const name of NATIVE_OPS[family]) assert.equal(table[(codes[family] as Record<string, number>)[name]], name, `${family} ${name}`);
  }
});

nativeTest('an addon that lacks an entry, or exports one the table does not declare, fails the load check naming it', () => {
  const lacking = copy();
  delete lacking.squash;
  assert.match(checkAddon(lacking) ?? '', /^the native addon lacks entry 'squash' \(rebuild with node scripts\/build-native\.mjs\)$/);
  const extra = { ...copy(), squish: () => undefined };
  assert.match(checkAddon(extra) ?? '', /the native addon exports 'squish', which src\/backend\/kernelTable\.ts does not declare/);
});

nativeTest('an op name the kernels use that the addon lacks fails the load check naming it', () => {
  const tables = addon().opTables();
  const withoutNeg = { ...copy(), opTables: () => ({ ...tables, unary: tables.unary.filter((name) => name !== 'Neg') }) };
  assert.match(checkAddon(withoutNeg) ?? '', /the native addon's unary op table lacks 'Neg'/);
  const { cast: _cast, ...others } = tables;
  const withoutCast = { ...copy(), opTables: () => others };
  assert.match(checkAddon(withoutCast) ?? '', /the native addon has no op table 'cast'/);
  // The codes follow the addon's order, whatever it is: a code is never
  // taken from a numbering on this side.
  const reversed = { ...copy(), opTables: () => ({ ...tables, reduce: [...tables.reduce].reverse() }) };
  const codes = opCodes(reversed as unknown as NativeAddon);
  assert.equal(codes.reduce.Sum, tables.reduce.length - 1 - tables.reduce.indexOf('Sum'));
});

nativeTest('a misspelt or missing setting is an error naming it, on either side of an entry', () => {
  const a = addon();
  const s = new Float32Array([3, 4, 0, 0]);
  const out = new Float32Array(4);
  assert.throws(() => a.squash({ s, out, dim: 2, dimm: 2 } as never), /^TypeError: squash: unknown setting 'dimm'$/m);
  assert.throws(() => a.squash({ s, out } as never), /squash: missing setting 'dim'/);
  // An optional setting misspelt is not silently left at its default.
  const y = new Float32Array(6);
  assert.throws(() => a.biasActivation({ y, rows: 2, cols: 3, bais: new Float32Array(3) } as never), /biasActivation: unknown setting 'bais'/);
  assert.throws(() => a.conv2d({ filtre: new Float32Array(1) } as never), /conv2d: unknown setting 'filtre'/);
  assert.throws(() => (a.squash as (...args: unknown[]) => void)({ s, out, dim: 2 }, 1), /squash: takes one settings object, got 2 arguments/);
  // A setting of the wrong type names the entry and the setting.
  assert.throws(() => a.squash({ s, out, dim: '2' as never }), /squash: dim: expected a number/);
  // The correct call still computes: squash([3, 4]) = 25/26 * [3, 4] / 5.
  a.squash({ s, out, dim: 2 });
  assert.ok(Math.abs(out[0] - (25 / 26) * 0.6) < 1e-6 && Math.abs(out[1] - (25 / 26) * 0.8) < 1e-6 && out[2] === 0 && out[3] === 0);
});

nativeTest('a native kernel under a name that is neither a tfjs kernel nor a fused kernel fails registration naming it', () => {
  const configs = nativeKernelConfigs(addon());
  checkNativeKernelNames(configs);
  const conv = configs.find((k) => k.kernelName === tf.Conv2D);
  assert.ok(conv);
  assert.throws(() => checkNativeKernelNames([...configs.filter((k) => k !== conv), { ...conv, kernelName: 'Conv2d' }]), /^Error: native backend: 'Conv2d' is neither a tfjs kernel nor a fused kernel$/m);
  assert.throws(() => checkNativeKernelNames([...configs, { kernelName: 'CapsSqaush', kernelFunc: conv.kernelFunc }]), /'CapsSqaush' is neither a tfjs kernel nor a fused kernel/);
  assert.throws(() => checkNativeKernelNames([...configs, conv]), /native backend: 'Conv2D' has two native kernels/);
  // Every fused kernel of the table has its native kernel.
  const names = new Set(configs.map((k) => k.kernelName));
  for (const name of Object.values(FUSED_KERNELS)) assert.ok(names.has(name), name);
});
