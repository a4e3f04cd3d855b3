/**
 * The tfjs backend 'native': tfjs's cpu backend (data in JS typed arrays)
 * with the heavy kernels replaced by the addon's. Every cpu kernel is
 * registered under 'native' too, so an op the addon does not cover still
 * runs, through the cpu kernel, on the same memory.
 */
import * as tf from '@tensorflow/tfjs';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { opCodes, type NativeAddon } from './boundary/addon.js';
import { FUSED_KERNELS, type FusedKernelKey, type FusedKernelTable } from '../backend/fused.js';
import { adamUpdateKernels } from './kernels/adamUpdate.js';
import { batchNormKernels } from './kernels/batchNorm.js';
import { biasReluKernels } from './kernels/biasRelu.js';
import { dynamicRoutingKernels } from './kernels/dynamicRouting.js';
import { emRoutingKernels } from './kernels/emRouting.js';
import { matrixVotesKernels } from './kernels/matrixVotes.js';
import { predictionVectorsKernels } from './kernels/predictionVectors.js';
import { selfAttentionRoutingKernels } from './kernels/selfAttentionRouting.js';
import { squashKernels } from './kernels/squash.js';
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

/** The fused kernels of src/backend/fused.ts, one file per op; the table's type makes each one required. */
function fusedKernelConfigs(addon: NativeAddon): NativeKernelConfig[] {
  const table: FusedKernelTable<NativeKernel> = {
    ...squashKernels(addon),
    ...predictionVectorsKernels(addon),
    ...matrixVotesKernels(addon),
    ...dynamicRoutingKernels(addon),
    ...emRoutingKernels(addon),
    ...adamUpdateKernels(addon),
    ...biasReluKernels(addon),
    ...batchNormKernels(addon),
    ...selfAttentionRoutingKernels(addon),
  };
  return (Object.keys(table) as FusedKernelKey[]).map((key) => ({ kernelName: FUSED_KERNELS[key], kernelFunc: table[key] }));
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
