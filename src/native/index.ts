/**
 * The native CPU engine: an N-API addon on OpenBLAS, registered as the tfjs
 * backend 'native'. Loading never throws: when the addon was not built (no
 * compiler, no OpenBLAS, another OS) `loadNativeBackend` says why and the
 * caller falls back to wasm or cpu.
 */
export interface NativeLoadResult {
  ok: boolean;
  /** Why the addon is unavailable, when ok is false. */
  reason?: string;
  /** BLAS library and thread count, when ok is true. */
  blas?: string;
  threads?: number;
}

export async function loadNativeBackend(): Promise<NativeLoadResult> {
  return { ok: false, reason: 'the native addon is not built yet' };
}
