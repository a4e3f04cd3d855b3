/**
 * Backend selection in Node. Order of preference: the native engine (when its
 * addon is built), then wasm (with the kernels it lacks registered by
 * ./wasmKernels), then tfjs's pure-JS cpu backend. CAPSNET_BACKEND or the
 * CLI's --backend flag forces one.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { loadNativeBackend, type NativeLoadResult } from '../native/index.js';
import { registerWasmExtraKernels } from './wasmKernels.js';

export type BackendName = 'native' | 'wasm' | 'cpu';
export const BACKEND_NAMES: readonly BackendName[] = ['native', 'wasm', 'cpu'];

export interface BackendInfo {
  backend: BackendName;
  /** Why a preferred backend was not used, if one was skipped. */
  fallbackReason?: string;
  blas?: string;
  threads?: number;
}

let nativeResult: Promise<NativeLoadResult> | null = null;
function native(): Promise<NativeLoadResult> {
  return (nativeResult ??= loadNativeBackend());
}

let wasmReady: Promise<boolean> | null = null;
function wasm(): Promise<boolean> {
  return (wasmReady ??= (async () => {
    registerWasmExtraKernels();
    try {
      const prev = tf.getBackend();
      const ok = await tf.setBackend('wasm');
      if (prev && prev !== 'wasm') await tf.setBackend(prev);
      return ok;
    } catch {
      return false;
    }
  })());
}

/** Backends that work in this process, fastest first. */
export async function availableBackends(): Promise<BackendName[]> {
  const out: BackendName[] = [];
  if ((await native()).ok) out.push('native');
  if (await wasm()) out.push('wasm');
  out.push('cpu');
  return out;
}

/** Make `name` the active tfjs backend (it must be available). */
export async function useBackend(name: string): Promise<void> {
  if (!BACKEND_NAMES.includes(name as BackendName)) {
    throw new Error(`unknown backend '${name}': expected one of ${BACKEND_NAMES.join(', ')}`);
  }
  if (name === 'native') {
    const r = await native();
    if (!r.ok) throw new Error(`the native backend is not available: ${r.reason}`);
  }
  if (name === 'wasm' && !(await wasm())) throw new Error('the wasm backend could not be initialised');
  if (tf.getBackend() !== name) {
    if (!(await tf.setBackend(name))) throw new Error(`tfjs could not switch to the '${name}' backend`);
  }
  await tf.ready();
}

let current: BackendInfo | null = null;

/**
 * Pick and activate the backend: `preferred` (or CAPSNET_BACKEND) if given,
 * otherwise the fastest available. Idempotent for the same request.
 */
export async function initBackend(preferred?: string): Promise<BackendInfo> {
  const request = preferred ?? process.env.CAPSNET_BACKEND ?? 'auto';
  if (current && (request === 'auto' || request === current.backend)) {
    if (tf.getBackend() !== current.backend) await useBackend(current.backend);
    return current;
  }
  const nat = await native();
  let info: BackendInfo;
  if (request === 'auto') {
    const names = await availableBackends();
    info = { backend: names[0] };
    if (names[0] !== 'native') info.fallbackReason = `native engine unavailable: ${nat.reason}`;
  } else {
    if (!BACKEND_NAMES.includes(request as BackendName)) {
      throw new Error(`unknown backend '${request}' (from ${preferred ? '--backend' : 'CAPSNET_BACKEND'}): expected auto, ${BACKEND_NAMES.join(', ')}`);
    }
    info = { backend: request as BackendName };
  }
  await useBackend(info.backend);
  if (info.backend === 'native') {
    info.blas = nat.blas;
    info.threads = nat.threads;
  }
  current = info;
  return info;
}

export function describeBackend(info: BackendInfo): string {
  let s = `backend: ${info.backend}`;
  if (info.blas) s += ` (${info.blas}, ${info.threads} threads)`;
  if (info.fallbackReason) s += ` [${info.fallbackReason}]`;
  return s;
}
