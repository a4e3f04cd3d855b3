/**
 * The tfjs backend 'native': tfjs's cpu backend (data in JS typed arrays)
 * with the heavy kernels replaced by the addon's. Every cpu kernel is
 * registered under 'native' too, so an op the addon does not cover still
 * runs, through the cpu kernel, on the same memory. The fused kernels'
 * TS kernels are imported from the modules src/backend/kernelTable.ts names
 * for them, so this file lists none of them.
 */
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { opCodes, type NativeAddon } from './boundary/addon.js';
import { FUSED_KERNEL_MODULES, FUSED_KERNELS, type FusedKernelKey } from '../backend/kernelTable.js';
import { convKernels } from './kernels/conv.js';
import { depthwiseConvKernels } from './kernels/depthwiseConv.js';
import { elementwiseKernels } from './kernels/elementwise.js';
import { asKernelFunc, type NativeKernel, type NativeKernelConfig } from './kernels/kernelUtil.js';
import { layoutKernels } from './kernels/layout.js';
import { matmulKernels } from './kernels/matmul.js';
import { initManagedMemory, onDispose, onEscape, onRegister } from './memory.js';
import { reduceKernels } from './kernels/reduce.js';

export const NATIVE_BACKEND = 'native';
/** Above wasm (2) and cpu (1), so that tfjs itself prefers it once registered. */
const PRIORITY = 3;

type DataId = object;

/**
 * The cpu backend plus the bookkeeping of memory.ts: large kernel outputs
 * are freed when their tensor is disposed, unless their memory may be
 * visible elsewhere.
 */
export class NativeBackend extends MathBackendCPU {
  constructor() {
    super();
    // The cpu backend prints an "install tfjs-node" banner on first use; this
    // backend is the fast Node path, so the advice does not apply.
    Reflect.set(this, 'firstUse', false);
  }

  override write(values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType): DataId {
    const id = super.write(values, shape, dtype);
    onRegister(values);
    return id;
  }

  override move(dataId: DataId, values: tf.backend_util.BackendValues, shape: number[], dtype: tf.DataType, refCount: number): void {
    onEscape(values);
    super.move(dataId, values, shape, dtype, refCount);
  }

  override readSync(dataId: DataId): tf.backend_util.BackendValues {
    if (this.data.has(dataId)) onEscape(this.data.get(dataId).values);
    return super.readSync(dataId);
  }

  override disposeData(dataId: DataId, force = false): boolean {
    const values = this.data.has(dataId) ? this.data.get(dataId).values : undefined;
    const result = super.disposeData(dataId, force);
    if (values !== undefined && !this.data.has(dataId)) onDispose(values);
    return result;
  }
}

/** Every kernel the addon provides, by name. */
export function nativeKernelConfigs(addon: NativeAddon): NativeKernelConfig[] {
  const codes = opCodes(addon);
  return [
    ...elementwiseKernels(addon, codes),
    ...reduceKernels(addon, codes),
    ...layoutKernels(addon, codes),
    ...matmulKernels(addon, codes),
    ...convKernels(addon, codes),
    ...depthwiseConvKernels(addon),
    ...fusedKernelConfigs(addon),
  ];
}

/**
 * Fails, naming it, on a kernel that nothing would call: one whose name is
 * neither a kernel of tfjs's cpu backend (the tfjs kernels) nor a fused
 * kernel of src/backend/kernelTable.ts, or one configured twice.
 */
export function checkNativeKernelNames(configs: readonly NativeKernelConfig[]): void {
  const known = new Set<string>([...tf.getKernelsForBackend('cpu').map((k) => k.kernelName), ...Object.values(FUSED_KERNELS)]);
  const seen = new Set<string>();
  for (const { kernelName } of configs) {
    if (!known.has(kernelName)) throw new Error(`native backend: '${kernelName}' is neither a tfjs kernel nor a fused kernel`);
    if (seen.has(kernelName)) throw new Error(`native backend: '${kernelName}' has two native kernels`);
    seen.add(kernelName);
  }
}

/** What a module of fused-kernel TS kernels exports: `fusedKernels(addon)`, typed there as FusedKernels<module> (kernels/kernelUtil.ts). */
export interface FusedKernelModuleExports {
  fusedKernels?: (addon: NativeAddon) => Readonly<Record<string, NativeKernel | undefined>>;
}

/** Each kernel module, by name, as imported, or the error that importing it gave. */
export type FusedKernelModules = ReadonlyMap<string, FusedKernelModuleExports | Error>;

/**
 * Imports src/native/kernels/<module>.ts for each module that
 * src/backend/kernelTable.ts names (FUSED_KERNEL_MODULES), so that a new
 * fused kernel needs no line here. An import that fails is kept as its
 * error, for fusedKernelConfigs to report naming the kernel, so that
 * loading this file never throws.
 */
export async function importFusedKernelModules(modules: readonly string[] = [...new Set(Object.values(FUSED_KERNEL_MODULES))]): Promise<FusedKernelModules> {
  const imported = await Promise.all(
    modules.map(async (name): Promise<[string, FusedKernelModuleExports | Error]> => {
      try {
        return [name, (await import(`./kernels/${name}.js`)) as FusedKernelModuleExports];
      } catch (e) {
        return [name, e instanceof Error ? e : new Error(String(e))];
      }
    }),
  );
  return new Map(imported);
}

/** The kernel modules of the table, imported once when this file loads. */
const tableKernelModules: FusedKernelModules = await importFusedKernelModules();

/**
 * The native kernel of every fused kernel of src/backend/kernelTable.ts,
 * each from the module its entry names. Fails naming the kernel when its
 * module is missing or does not load, lacks the `fusedKernels` export, or
 * has no kernel for it, and naming the module when it gives a kernel the
 * table does not assign to it.
 */
export function fusedKernelConfigs(addon: NativeAddon, modules: FusedKernelModules = tableKernelModules): NativeKernelConfig[] {
  const keys = Object.keys(FUSED_KERNELS) as FusedKernelKey[];
  const kernelsOf = new Map<string, Readonly<Record<string, NativeKernel | undefined>>>();
  const configs: NativeKernelConfig[] = [];
  for (const key of keys) {
    const name = FUSED_KERNEL_MODULES[key];
    const file = `src/native/kernels/${name}.ts`;
    const what = `native backend: fused kernel '${key}' (${FUSED_KERNELS[key]})`;
    let kernels = kernelsOf.get(name);
    if (kernels === undefined) {
      const loaded = modules.get(name);
      if (loaded === undefined || loaded instanceof Error) throw new Error(`${what}: its module ${file} did not load${loaded ? ` (${loaded.message.split('\n')[0]})` : ''}`);
      if (typeof loaded.fusedKernels !== 'function') throw new Error(`${what}: ${file} does not export fusedKernels`);
      kernels = loaded.fusedKernels(addon);
      kernelsOf.set(name, kernels);
      const extra = Object.keys(kernels).find((k) => !(Object.hasOwn(FUSED_KERNEL_MODULES, k) && FUSED_KERNEL_MODULES[k as FusedKernelKey] === name));
      if (extra !== undefined) throw new Error(`native backend: ${file} gives a kernel for '${extra}', which src/backend/kernelTable.ts does not assign to it`);
    }
    const kernelFunc = kernels[key];
    if (typeof kernelFunc !== 'function') throw new Error(`${what}: ${file} has no kernel for it`);
    configs.push({ kernelName: FUSED_KERNELS[key], kernelFunc });
  }
  return configs;
}

let registered = false;

export function registerNativeBackend(addon: NativeAddon): void {
  if (registered) return;
  const configs = nativeKernelConfigs(addon);
  checkNativeKernelNames(configs);
  initManagedMemory(addon);
  const natives = new Map(configs.map((k) => [k.kernelName, k.kernelFunc]));
  const cpuKernels = tf.getKernelsForBackend('cpu');
  for (const k of cpuKernels) {
    const own = natives.get(k.kernelName);
    tf.registerKernel({ ...k, backendName: NATIVE_BACKEND, kernelFunc: own ? asKernelFunc(own, k.kernelName) : k.kernelFunc });
  }
  const cpuNames = new Set(cpuKernels.map((k) => k.kernelName));
  for (const [name, fn] of natives) {
    if (!cpuNames.has(name)) tf.registerKernel({ kernelName: name, backendName: NATIVE_BACKEND, kernelFunc: asKernelFunc(fn, name) });
  }
  tf.registerBackend(NATIVE_BACKEND, () => new NativeBackend(), PRIORITY);
  registered = true;
}

/** Names of the kernels that run in native code on this backend. */
export function nativeKernelNames(addon: NativeAddon): string[] {
  return nativeKernelConfigs(addon).map((k) => k.kernelName);
}
