/**
 * The boundary between TypeScript and the engine is declared once
 * (src/backend/kernelTable.ts on one side, CAPSNET_ENTRY and
 * CAPSNET_OP_TABLE on the other) and checked: a misspelt kernel name, an
 * entry or op the addon lacks, a fused kernel without its TS kernel, and a
 * misspelt or missing setting or attribute each fail with a message naming
 * it, on the real addon.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { emKernelAttrs, emRoutingSettings } from '../src/capsules/emSettings.js';
import { FUSED_KERNEL_MODULES, FUSED_KERNELS, NATIVE_ENTRIES, NATIVE_OPS } from '../src/backend/kernelTable.js';
import { checkNativeKernelNames, fusedKernelConfigs, importFusedKernelModules, nativeKernelConfigs, type FusedKernelModuleExports } from '../src/native/backend.js';
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

/** The real kernel modules of the table, with module `name` replaced by `exports` (undefined: left out). */
async function modulesWith(name: string, exports: FusedKernelModuleExports | Error | undefined): Promise<Map<string, FusedKernelModuleExports | Error>> {
  const modules = new Map(await importFusedKernelModules());
  if (exports === undefined) modules.delete(name);
  else modules.set(name, exports);
  return modules;
}

nativeTest('every fused kernel comes from the kernel module the table names for it, and a missing one fails naming it', async () => {
  const a = addon();
  assert.deepEqual(fusedKernelConfigs(a).map((k) => k.kernelName).sort(), Object.values(FUSED_KERNELS).sort());

  // A module the table names whose import fails, or that is left out.
  const notThere = (await importFusedKernelModules(['noSuchKernels'])).get('noSuchKernels');
  assert.ok(notThere instanceof Error);
  const failing = await modulesWith('squash', notThere);
  assert.throws(() => fusedKernelConfigs(a, failing), /^Error: native backend: fused kernel 'squash' \(CapsSquash\): its module src\/native\/kernels\/squash\.ts did not load \(.*noSuchKernels/m);
  const leftOut = await modulesWith('emRouting', undefined);
  assert.throws(() => fusedKernelConfigs(a, leftOut), /native backend: fused kernel 'emRouting' \(CapsEmRouting\): its module src\/native\/kernels\/emRouting\.ts did not load$/m);

  // A module without the export, without one of its kernels, or with one the table assigns elsewhere.
  const noExport = await modulesWith('squash', {});
  assert.throws(() => fusedKernelConfigs(a, noExport), /fused kernel 'squash' \(CapsSquash\): src\/native\/kernels\/squash\.ts does not export fusedKernels/);
  const squash = (await importFusedKernelModules(['squash'])).get('squash');
  assert.ok(squash && !(squash instanceof Error) && squash.fusedKernels);
  const kernels = squash.fusedKernels(a);
  const { squashGrad: _dropped, ...lacking } = kernels;
  const lackingGrad = await modulesWith('squash', { fusedKernels: () => lacking });
  assert.throws(() => fusedKernelConfigs(a, lackingGrad), /fused kernel 'squashGrad' \(CapsSquashGrad\): src\/native\/kernels\/squash\.ts has no kernel for it/);
  for (const extra of ['squish', 'biasRelu']) {
    const withExtra = await modulesWith('squash', { fusedKernels: () => ({ ...kernels, [extra]: kernels.squash }) });
    assert.throws(() => fusedKernelConfigs(a, withExtra), new RegExp(`native backend: src/native/kernels/squash\\.ts gives a kernel for '${extra}', which src/backend/kernelTable\\.ts does not assign to it`));
  }
});

nativeTest('every kernel module that exports fusedKernels is one the table names', async () => {
  // Beside this compiled test, dist/src/native/kernels/ holds the compiled modules.
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'native', 'kernels');
  const names = readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -'.js'.length));
  const modules = await importFusedKernelModules(names);
  const exporting = names.filter((name) => {
    const m = modules.get(name);
    assert.ok(m && !(m instanceof Error), `${name} loads`);
    return typeof m.fusedKernels === 'function';
  });
  assert.deepEqual(exporting.sort(), [...new Set(Object.values(FUSED_KERNEL_MODULES))].sort());
});

nativeTest('the EM child geometry crosses to the kernel by name: given by position, or with a field misspelt or missing, it fails naming it', () => {
  // One 3x3 window over a 3x3 grid of 2 child types: P = 1 parent position, N = 18 slots.
  const geometry = { inHeight: 3, inWidth: 3, inTypes: 2, kernel: 3, stride: 1, outHeight: 1, outWidth: 1 };
  const [J, D] = [2, 16];
  tf.tidy(() => {
    const votes = tf.randomNormal([1, 1, 18, J, D], 0, 1, 'float32', 5);
    const inputs = { votes, activations: tf.fill([1, 1, 18], 0.7), betaU: tf.zeros([J]), betaA: tf.zeros([J]) };
    const attrs = emKernelAttrs(emRoutingSettings(votes, { betaU: inputs.betaU, betaA: inputs.betaA, geometry }));
    assert.deepEqual(attrs.geometry, geometry);
    const run = (geometryAttr: unknown) => () => tf.engine().runKernel(FUSED_KERNELS.emRouting, inputs, { ...attrs, geometry: geometryAttr } as tf.NamedAttrMap);
    const [poses] = tf.engine().runKernel(FUSED_KERNELS.emRouting, inputs, attrs) as tf.Tensor[];
    assert.deepEqual(poses.shape, [1, 1, J, D]);
    assert.throws(run(Object.values(geometry)), /CapsEmRouting: geometry must be an object of named numbers, got \[3,3,2,3,1,1,1\]/);
    assert.throws(run({ ...geometry, strides: 1 }), /CapsEmRouting: geometry has unknown field 'strides'/);
    const { stride: _stride, ...withoutStride } = geometry;
    assert.throws(run(withoutStride), /CapsEmRouting: geometry\.stride must be a finite number, got undefined/);
    // Without a geometry the attribute is absent (a fully connected layer).
    assert.ok(!('geometry' in emKernelAttrs(emRoutingSettings(votes, { betaU: inputs.betaU, betaA: inputs.betaA }))));
  });
});
