/**
 * The native CPU engine: an N-API addon with its own GEMM, registered as the
 * tfjs backend 'native'. Loading never throws: when the addon was not built
 * (no compiler, another OS) `loadNativeBackend` says why and the caller falls
 * back to wasm or cpu.
 *
 * CAPSNET_THREADS sets how many threads the engine uses (default: all cores);
 * CAPSNET_GEMM=builtin|openblas and CAPSNET_GEMM_ISA=avx512|avx2|portable
 * (neon on arm64) choose the matrix product (see src/native/engine/gemm/blas.h).
 */
import os from 'node:os';
import { loadAddon, type NativeInfo } from './boundary/addon.js';
import { registerNativeBackend } from './backend.js';

export interface NativeLoadResult {
  ok: boolean;
  /** Why the addon is unavailable, when ok is false. */
  reason?: string;
  /** The GEMM in use, e.g. "built-in GEMM (avx512)" or "OpenBLAS 0.3.21 (Haswell)", when ok is true. */
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

/** "built-in GEMM (avx512)", or "OpenBLAS 0.3.21 (Haswell)" from "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...". */
export function describeGemm(info: NativeInfo): string {
  if (info.gemm === 'builtin') return `built-in GEMM (${info.gemmIsa})`;
  return `${info.openblas.split(/\s+/).slice(0, 2).join(' ')} (${info.gemmIsa})`;
}

let result: NativeLoadResult | null = null;

export async function loadNativeBackend(): Promise<NativeLoadResult> {
  if (result) return result;
  try {
    const loaded = loadAddon();
    if (!loaded.ok) return (result = { ok: false, reason: loaded.reason });
    const { threads, warning } = requestedThreads();
    if (warning) console.warn(`capsnet: ${warning}`);
    loaded.addon.setThreads({ threads });
    registerNativeBackend(loaded.addon);
    const info = loaded.addon.info();
    if (info.gemmWarning) console.warn(`capsnet: ${info.gemmWarning}`);
    result = { ok: true, blas: describeGemm(info), threads: info.threads };
  } catch (e) {
    result = { ok: false, reason: `the native engine failed to initialise: ${e instanceof Error ? e.message : String(e)}` };
  }
  return result;
}

export { NATIVE_BACKEND, nativeKernelNames } from './backend.js';
export { loadAddon, type GemmIsa, type NativeAddon, type NativeInfo } from './boundary/addon.js';
