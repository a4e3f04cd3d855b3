/**
 * The native CPU engine: an N-API addon on OpenBLAS, registered as the tfjs
 * backend 'native'. Loading never throws: when the addon was not built (no
 * compiler, no OpenBLAS, another OS) `loadNativeBackend` says why and the
 * caller falls back to wasm or cpu.
 *
 * CAPSNET_THREADS sets how many threads the engine uses (default: all cores).
 * CAPSNET_MALLOC_TUNING=0 leaves the C allocator's settings alone (see
 * keepFreedMemory in addon.cc for what the engine changes and why).
 */
import os from 'node:os';
import { loadAddon } from './addon.js';
import { registerNativeBackend } from './backend.js';

export interface NativeLoadResult {
  ok: boolean;
  /** Why the addon is unavailable, when ok is false. */
  reason?: string;
  /** BLAS library and thread count, when ok is true. */
  blas?: string;
  threads?: number;
}

/** Threads from CAPSNET_THREADS, else one per core. */
export function requestedThreads(env: NodeJS.ProcessEnv = process.env): { threads: number; warning?: string } {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const raw = env.CAPSNET_THREADS;
  if (raw === undefined || raw.trim() === '') return { threads: Math.max(1, cores) };
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 256) {
    return { threads: Math.max(1, cores), warning: `CAPSNET_THREADS=${raw} is not an integer in [1, 256]; using ${cores}` };
  }
  return { threads: n };
}

/** Free heap space kept for reuse before it is returned to the system. */
const TRIM_THRESHOLD_BYTES = 512 * 1024 * 1024;

let result: NativeLoadResult | null = null;

export async function loadNativeBackend(): Promise<NativeLoadResult> {
  if (result) return result;
  try {
    const loaded = loadAddon();
    if (!loaded.ok) return (result = { ok: false, reason: loaded.reason });
    const { threads, warning } = requestedThreads();
    if (warning) console.warn(`capsnet: ${warning}`);
    loaded.addon.setThreads(threads);
    if (process.env.CAPSNET_MALLOC_TUNING !== '0') loaded.addon.keepFreedMemory(TRIM_THRESHOLD_BYTES);
    registerNativeBackend(loaded.addon);
    const info = loaded.addon.info();
    // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ..." -> "OpenBLAS 0.3.21 (Zen)"
    const blas = `${info.blasConfig.split(/\s+/).slice(0, 2).join(' ')} (${info.blasCore})`;
    result = { ok: true, blas, threads: info.threads };
  } catch (e) {
    result = { ok: false, reason: `the native engine failed to initialise: ${e instanceof Error ? e.message : String(e)}` };
  }
  return result;
}

export { NATIVE_BACKEND, nativeKernelNames } from './backend.js';
export { loadAddon, type NativeAddon } from './addon.js';
