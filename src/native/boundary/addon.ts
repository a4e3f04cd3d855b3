/**
 * Loads the compiled addon (build/Release/capsnet_native.node) and types its
 * entry points. Every entry point checks its arguments in C++ and throws a
 * JS error on a mismatch; the kernels in this folder compute shapes and
 * allocate outputs, the addon fills them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

type F32 = Float32Array;

export type GemmIsa = 'avx512' | 'avx2' | 'portable';

/** What the addon runs (see src/native/engine/gemm/blas.h). */
export interface NativeInfo {
  /** The GEMM in use. */
  gemm: 'builtin' | 'openblas';
  /** builtin: its kernel's instruction set; openblas: its core name (e.g. "Haswell"). */
  gemmIsa: string;
  /** Built-in kernels this CPU runs, best first, comma-separated. */
  gemmIsas: string;
  /** The build's default GEMM. */
  gemmDefault: 'builtin' | 'openblas';
  /** openblas_get_config() when OpenBLAS is linked, else "". */
  openblas: string;
  /** Why CAPSNET_GEMM / CAPSNET_GEMM_ISA was ignored, else "". */
  gemmWarning: string;
  threads: number;
  /** SIMD level the engine's other kernels were compiled for. */
  simd: string;
  /** Whether the engine flushes denormal floats to zero (x86; see src/native/engine/denormals.h). */
  flushesDenormals: boolean;
}

export interface NativeAddon {
  info(): NativeInfo;
  setThreads(n: number): void;
  /** 'builtin' (isa '' = best for this CPU, or 'avx512' | 'avx2' | 'portable') or 'openblas'; throws when unavailable. */
  setGemm(library: 'builtin' | 'openblas', isa: '' | GemmIsa): void;
  allocBuffer(bytes: number): ArrayBuffer;
  releaseBuffer(buffer: ArrayBuffer): boolean;
  accountBuffer(buffer: ArrayBuffer): void;
  memoryStats(): { buffers: number; bytes: number; kept: number; keptCap: number };
  unary(op: number, x: F32, y: F32, alpha: number, beta: number): void;
  binary(op: number, a: F32, aShape: number[], b: F32, bShape: number[], out: F32 | Uint8Array, outShape: number[]): void;
  reduce(op: number, x: F32, outer: number, r: number, inner: number, out: F32 | Int32Array): void;
  softmax(x: F32, rows: number, cols: number, out: F32, log: boolean): void;
  transpose(x: F32, shape: number[], perm: number[], out: F32): void;
  copyBlock(src: F32, srcShape: number[], srcBegin: number[], dst: F32, dstShape: number[], dstBegin: number[], block: number[]): void;
  fill(dst: F32, value: number): void;
  gather(x: F32, outer: number, dim: number, inner: number, indices: Int32Array, out: F32): void;
  cast(kind: number, x: F32 | Int32Array | Uint8Array, out: F32 | Int32Array | Uint8Array): void;
  /** Row-major c = alpha * op(a) op(b) + beta * c with leading dimensions, as the kernels call it (tests, bench). */
  gemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number, a: F32, lda: number, b: F32, ldb: number, beta: number, c: F32, ldc: number): void;
  batchMatMul(a: F32, b: F32, out: F32, batchA: number, batchB: number, M: number, N: number, K: number, transA: boolean, transB: boolean): void;
  biasActivation(y: F32, rows: number, cols: number, bias: F32, activation: number, alpha: number): void;
  /** Per-thread im2col buffer, in floats (tests shrink it to exercise blocking). */
  setColumnBlock(floats: number): void;
  /** Frequency-domain convolution: 0 never, 1 where it pays (default), 2 wherever the geometry allows. */
  setSpectralMode(mode: number): void;
  /** Most spectrum columns the frequency-domain convolution handles per block: 0 as memory allows (default); tests set 1 or 2. */
  setSpectralColumns(columns: number): void;
  conv2d(x: F32, filter: F32, out: F32, bias: F32, activation: number, alpha: number, ...geometry: number[]): void;
  conv2dBackpropInput(dy: F32, filter: F32, dx: F32, ...geometry: number[]): void;
  conv2dBackpropFilter(x: F32, dy: F32, dw: F32, ...geometry: number[]): void;
  squash(s: F32, out: F32, dim: number): void;
  biasRelu(x: F32, bias: F32, y: F32): void;
  biasReluGrad(dy: F32, y: F32, dx: F32, dbias: F32): void;
  squashGrad(dy: F32, s: F32, ds: F32, dim: number): void;
  predictionVectors(u: F32, W: F32, uHat: F32, B: number, I: number, J: number, Dout: number, Din: number): void;
  predictionVectorsGradInput(dy: F32, W: F32, du: F32, B: number, I: number, J: number, Dout: number, Din: number): void;
  predictionVectorsGradWeights(dy: F32, u: F32, dW: F32, B: number, I: number, J: number, Dout: number, Din: number): void;
  matrixVotes(M: F32, W: F32, V: F32, R: number, N: number, J: number): void;
  matrixVotesGradInput(dV: F32, W: F32, dM: F32, R: number, N: number, J: number): void;
  matrixVotesGradWeights(dV: F32, M: F32, dW: F32, R: number, N: number, J: number): void;
  dynamicRouting(uHat: F32, v: F32, couplings: F32[], B: number, I: number, J: number, D: number, R: number, stopGradientInner: boolean): void;
  dynamicRoutingGrad(uHat: F32, dv: F32, duHat: F32, B: number, I: number, J: number, D: number, R: number, stopGradientInner: boolean): void;
  /** Trailing arguments: B, P, N, J, D, lambdas (Float32Array), varianceFloor, costScale, logitBound, meanEps, geometry (7 integers or none). */
  emRouting(votes: F32, activations: F32, betaU: F32, betaA: F32, poses: F32, act: F32, routing: F32, ...settings: unknown[]): void;
  emRoutingGrad(votes: F32, activations: F32, betaU: F32, betaA: F32, dPoses: F32, dAct: F32, dVotes: F32, dActivations: F32, dBetaU: F32, dBetaA: F32, ...settings: unknown[]): void;
  adamUpdate(w: F32, g: F32, m: F32, v: F32, w2: F32, m2: F32, v2: F32, lrT: number, beta1: number, oneMinusBeta1: number, beta2: number, oneMinusBeta2: number, epsilon: number): void;
}

export type AddonLoad = { ok: true; addon: NativeAddon; path: string } | { ok: false; reason: string };

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
    try {
      const addon = createRequire(import.meta.url)(path) as NativeAddon;
      return { ok: true, addon, path };
    } catch (e) {
      return { ok: false, reason: `the addon does not load: ${e instanceof Error ? e.message : String(e)}` };
    }
  })();
  return cached;
}
