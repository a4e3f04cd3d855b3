/**
 * The boundary between TypeScript and the native engine, declared once.
 *
 * NATIVE_ENTRIES lists every entry point of the addon (each registered with
 * CAPSNET_ENTRY in the C++ file that implements it, under src/native/) with
 * the type of its one settings object and of its result. The addon's type, NativeAddon in
 * src/native/boundary/addon.ts, is derived from this table, and when the
 * addon loads its exports are compared with the table both ways, so a
 * missing or undeclared entry is a load failure that names it.
 *
 * An entry that is a fused kernel also names the tfjs kernel it runs as:
 * FUSED_KERNELS, the registry of src/backend/fused.ts, is derived from those
 * names. It names as well the module of its TS kernel
 * (src/native/kernels/<module>.ts), which the native backend imports from
 * this table alone (FUSED_KERNEL_MODULES), failing at load, naming the
 * kernel, when the module or its kernel is missing. NATIVE_OPS lists, per op family, the op names the native kernels
 * use; their codes come from the addon's own tables (opTables()) when it
 * loads, never from a numbering kept here.
 *
 * Pure data and types: browser code imports FUSED_KERNELS from here.
 */
import {
  Abs,
  Add,
  ArgMax,
  ArgMin,
  Ceil,
  ClipByValue,
  Cos,
  Elu,
  Equal,
  Exp,
  Expm1,
  Floor,
  Greater,
  GreaterEqual,
  LeakyRelu,
  Less,
  LessEqual,
  Log,
  Log1p,
  Max,
  Maximum,
  Mean,
  Min,
  Minimum,
  Multiply,
  Neg,
  NotEqual,
  Pow,
  Prod,
  RealDiv,
  Reciprocal,
  Relu,
  Relu6,
  Round,
  Rsqrt,
  Sigmoid,
  Sign,
  Sin,
  Sqrt,
  Square,
  SquaredDifference,
  Step,
  Sub,
  Sum,
  Tanh,
} from '@tensorflow/tfjs';

type F32 = Float32Array;

/** The op names each op family of the engine must have, for the kernels that use them. */
export const NATIVE_OPS = {
  /** unary(): elementwise maps, by tfjs kernel name. */
  unary: [Neg, Abs, Square, Sqrt, Rsqrt, Exp, Log, Log1p, Expm1, Reciprocal, Relu, Relu6, Sigmoid, Tanh, Step, LeakyRelu, Elu, Floor, Ceil, Round, Sign, Sin, Cos, ClipByValue],
  /** binary(): broadcasting ops, by tfjs kernel name; the comparisons write bool. */
  binary: [Add, Sub, Multiply, RealDiv, Maximum, Minimum, Pow, SquaredDifference, Greater, GreaterEqual, Less, LessEqual, Equal, NotEqual],
  /** reduce(): reductions, by tfjs kernel name. */
  reduce: [Sum, Mean, Max, Min, Prod, ArgMax, ArgMin],
  /** The activations of tfjs's fused kernels (attribute `activation`); prelu is not covered. */
  activation: ['linear', 'relu', 'relu6', 'leakyrelu', 'sigmoid', 'elu'],
  /** cast(): dtype conversions, "from>to". */
  cast: ['float32>int32', 'int32>float32', 'bool>float32', 'float32>bool', 'int32>bool', 'bool>int32'],
} as const;

export type OpFamily = keyof typeof NATIVE_OPS;
export type OpName<F extends OpFamily> = (typeof NATIVE_OPS)[F][number];

/** An op code of family F, as the addon numbers it: obtainable only from the addon's tables (see opCodes in src/native/boundary/addon.ts). */
export type OpCode<F extends OpFamily> = number & { readonly opFamily: F };

/** The code of every op name of NATIVE_OPS, per family. */
export type OpCodes = { readonly [F in OpFamily]: { readonly [N in OpName<F>]: OpCode<F> } };

/** The built-in GEMM's kernels; the portable one is 'neon' on arm64 (see src/native/engine/gemm/blas.cc). */
export type GemmIsa = 'avx512' | 'avx2' | 'portable' | 'neon';

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

/** Engine-owned buffers (src/native/engine/memory.cc). */
export interface NativeMemoryStats {
  /** Buffers still allocated, and their bytes. */
  buffers: number;
  bytes: number;
  /** Bytes of freed large blocks kept for reuse, and the most kept. */
  kept: number;
  keptCap: number;
}

/** Convolution geometry, named as tfjs's Conv2DInfo names it (padTop and padLeft are its padInfo.top and .left). */
export interface ConvGeometry {
  batchSize: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  outChannels: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  dilationHeight: number;
  dilationWidth: number;
  padTop: number;
  padLeft: number;
}

/** u [batch, inCaps, inDim], W [inCaps, outCaps, outDim, inDim], uHat [batch, inCaps, outCaps, outDim]. */
export interface CapsuleSizes {
  batch: number;
  inCaps: number;
  outCaps: number;
  outDim: number;
  inDim: number;
}

/** Self-attention routing of uHat [batch, inCaps, outCaps, outDim] with priors [inCaps, outCaps]. */
export interface SelfAttentionSizes {
  batch: number;
  inCaps: number;
  outCaps: number;
  outDim: number;
}

/** Matrix-capsule votes: M [rows, slots, 16], W [slots, types, 16], V [rows, slots, types, 16]. */
export interface VoteSizes {
  rows: number;
  slots: number;
  types: number;
}

/** Dynamic routing of uHat [batch, inCaps, outCaps, outDim] for `iterations` iterations. */
export interface RoutingSettings {
  batch: number;
  inCaps: number;
  outCaps: number;
  outDim: number;
  iterations: number;
  stopGradientInner: boolean;
}

/** The child grid of a convolutional EM layer (EmGeometry of src/capsules/emGeometry.ts). */
export interface EmChildGeometry {
  inHeight: number;
  inWidth: number;
  inTypes: number;
  kernel: number;
  stride: number;
  outHeight: number;
  outWidth: number;
}

/**
 * EM routing of votes [batch, positions, slots, types, poseSize] with the
 * settings of src/capsules/emSettings.ts; the child geometry is given whole
 * or not at all.
 */
export type EmRoutingSettings = {
  votes: F32;
  activations: F32;
  betaU: F32;
  betaA: F32;
  batch: number;
  positions: number;
  slots: number;
  types: number;
  poseSize: number;
  /** One inverse temperature per iteration. */
  lambdas: F32;
  varianceFloor: number;
  costScale: number;
  logitBound: number;
  meanEps: number;
} & (EmChildGeometry | { [K in keyof EmChildGeometry]?: never });

/**
 * An entry point taking settings S (void: none) and returning R. A fused
 * kernel's entry also has Kernel, the tfjs kernel name it runs as, and
 * Module, the file of its TS kernel: src/native/kernels/<Module>.ts.
 */
export interface NativeEntry<S, R, Kernel extends string | undefined, Module extends string | undefined> {
  readonly kernel: Kernel;
  readonly kernelModule: Module;
  /** Types only: never set. */
  readonly signature?: (settings: S) => R;
}

function entry<S = void, R = void>(): NativeEntry<S, R, undefined, undefined> {
  return { kernel: undefined, kernelModule: undefined };
}

/**
 * A fused kernel's entry: fused('CapsSquash', 'squash').settings<S>() runs
 * as tfjs kernel CapsSquash, and src/native/kernels/squash.ts provides it
 * (its fusedKernels export; see src/native/backend.ts).
 */
function fused<Kernel extends string, Module extends string>(kernel: Kernel, kernelModule: Module): { settings<S>(): NativeEntry<S, void, Kernel, Module> } {
  return { settings: () => ({ kernel, kernelModule }) };
}

/**
 * Every entry point of the addon. Settings marked optional have a default
 * in C++; an absent required setting, or one the entry does not read, is an
 * error naming it.
 */
export const NATIVE_ENTRIES = {
  // The engine (src/native/boundary/addon.cc, engine/conv.cc).
  info: entry<void, NativeInfo>(),
  /** Threads for every parallel kernel, the caller included (1 to 256). */
  setThreads: entry<{ threads: number }>(),
  /** 'builtin' (isa '' = best for this CPU) or 'openblas'; throws when unavailable. */
  setGemm: entry<{ library: 'builtin' | 'openblas'; isa?: '' | GemmIsa }>(),
  /** Each op family's names, each at its code. */
  opTables: entry<void, { readonly [family: string]: readonly string[] }>(),
  /** Per-thread im2col buffer, in floats (tests shrink it to exercise blocking). */
  setColumnBlock: entry<{ floats: number }>(),
  /** Frequency-domain convolution: never, where it pays (default), or wherever the geometry allows. */
  setSpectralMode: entry<{ mode: 'never' | 'auto' | 'always' }>(),
  /** Winograd's F(4x4, 3x3) for 3x3 stride-1 convolutions: never, where it pays (default), or wherever the geometry allows. */
  setWinogradMode: entry<{ mode: 'never' | 'auto' | 'always' }>(),
  /** Most spectrum columns the frequency-domain convolution handles per block: 0 as memory allows (default); tests set 1 or 2. */
  setSpectralColumns: entry<{ columns: number }>(),

  // Engine-owned memory (engine/memory.cc).
  allocBuffer: entry<{ bytes: number }, ArrayBuffer>(),
  releaseBuffer: entry<{ buffer: ArrayBuffer }, boolean>(),
  accountBuffer: entry<{ buffer: ArrayBuffer }>(),
  memoryStats: entry<void, NativeMemoryStats>(),

  // tfjs kernels (engine/elementwise.cc, reduce.cc, layout.cc, matmul.cc, biasActivation.cc, conv.cc, depthwiseConv.cc).
  unary: entry<{ op: OpCode<'unary'>; x: F32; y: F32; alpha?: number; beta?: number }>(),
  binary: entry<{ op: OpCode<'binary'>; a: F32; aShape: number[]; b: F32; bShape: number[]; out: F32 | Uint8Array; outShape: number[] }>(),
  reduce: entry<{ op: OpCode<'reduce'>; x: F32; outer: number; r: number; inner: number; out: F32 | Int32Array }>(),
  softmax: entry<{ x: F32; rows: number; cols: number; out: F32; log?: boolean }>(),
  transpose: entry<{ x: F32; shape: number[]; perm: number[]; out: F32 }>(),
  copyBlock: entry<{ src: F32; srcShape: number[]; srcBegin: number[]; dst: F32; dstShape: number[]; dstBegin: number[]; block: number[] }>(),
  fill: entry<{ dst: F32; value: number }>(),
  gather: entry<{ x: F32; outer: number; dim: number; inner: number; indices: Int32Array; out: F32 }>(),
  cast: entry<{ kind: OpCode<'cast'>; x: F32 | Int32Array | Uint8Array; out: F32 | Int32Array | Uint8Array }>(),
  /** Row-major c = alpha * op(a) op(b) + beta * c with leading dimensions, as the kernels call it (tests, bench). */
  gemm: entry<{ transA: boolean; transB: boolean; M: number; N: number; K: number; alpha: number; a: F32; lda: number; b: F32; ldb: number; beta: number; c: F32; ldc: number }>(),
  batchMatMul: entry<{ a: F32; b: F32; out: F32; batchA: number; batchB: number; M: number; N: number; K: number; transA?: boolean; transB?: boolean }>(),
  biasActivation: entry<{ y: F32; rows: number; cols: number; bias?: F32; activation?: OpCode<'activation'>; alpha?: number }>(),
  conv2d: entry<ConvGeometry & { x: F32; filter: F32; out: F32; bias?: F32; activation?: OpCode<'activation'>; alpha?: number }>(),
  conv2dBackpropInput: entry<ConvGeometry & { dy: F32; filter: F32; dx: F32 }>(),
  conv2dBackpropFilter: entry<ConvGeometry & { x: F32; dy: F32; dw: F32 }>(),
  // Depthwise convolutions (engine/depthwiseConv.cc): outChannels is inChannels times the channel multiplier.
  depthwiseConv2d: entry<ConvGeometry & { x: F32; filter: F32; out: F32 }>(),
  depthwiseConv2dBackpropInput: entry<ConvGeometry & { dy: F32; filter: F32; dx: F32 }>(),
  depthwiseConv2dBackpropFilter: entry<ConvGeometry & { x: F32; dy: F32; dw: F32 }>(),

  // Fused kernels (src/backend/fused.ts): one engine file each, named after the op.
  squash: fused('CapsSquash', 'squash').settings<{ s: F32; out: F32; dim: number }>(),
  squashGrad: fused('CapsSquashGrad', 'squash').settings<{ dy: F32; s: F32; ds: F32; dim: number }>(),
  predictionVectors: fused('CapsPredictionVectors', 'predictionVectors').settings<CapsuleSizes & { u: F32; W: F32; uHat: F32 }>(),
  predictionVectorsGradInput: fused('CapsPredictionVectorsGradInput', 'predictionVectors').settings<CapsuleSizes & { dy: F32; W: F32; du: F32 }>(),
  predictionVectorsGradWeights: fused('CapsPredictionVectorsGradWeights', 'predictionVectors').settings<CapsuleSizes & { dy: F32; u: F32; dW: F32 }>(),
  matrixVotes: fused('CapsMatrixVotes', 'matrixVotes').settings<VoteSizes & { M: F32; W: F32; V: F32 }>(),
  matrixVotesGradInput: fused('CapsMatrixVotesGradInput', 'matrixVotes').settings<VoteSizes & { dV: F32; W: F32; dM: F32 }>(),
  matrixVotesGradWeights: fused('CapsMatrixVotesGradWeights', 'matrixVotes').settings<VoteSizes & { dV: F32; M: F32; dW: F32 }>(),
  /** couplings: one Float32Array [batch, inCaps, outCaps] per iteration. */
  dynamicRouting: fused('CapsDynamicRouting', 'dynamicRouting').settings<RoutingSettings & { uHat: F32; v: F32; couplings: F32[] }>(),
  dynamicRoutingGrad: fused('CapsDynamicRoutingGrad', 'dynamicRouting').settings<RoutingSettings & { uHat: F32; dv: F32; duHat: F32 }>(),
  emRouting: fused('CapsEmRouting', 'emRouting').settings<EmRoutingSettings & { poses: F32; act: F32; routing: F32 }>(),
  emRoutingGrad: fused('CapsEmRoutingGrad', 'emRouting').settings<EmRoutingSettings & { dPoses: F32; dAct: F32; dVotes: F32; dActivations: F32; dBetaU: F32; dBetaA: F32 }>(),
  adamUpdate: fused('CapsAdamUpdate', 'adamUpdate').settings<{ w: F32; g: F32; m: F32; v: F32; w2: F32; m2: F32; v2: F32; lrT: number; beta1: number; oneMinusBeta1: number; beta2: number; oneMinusBeta2: number; epsilon: number }>(),
  biasRelu: fused('CapsBiasRelu', 'biasRelu').settings<{ x: F32; bias: F32; y: F32 }>(),
  biasReluGrad: fused('CapsBiasReluGrad', 'biasRelu').settings<{ dy: F32; y: F32; dx: F32; dbias: F32 }>(),
  efficientSquash: fused('CapsEfficientSquash', 'squash').settings<{ s: F32; out: F32; dim: number }>(),
  efficientSquashGrad: fused('CapsEfficientSquashGrad', 'squash').settings<{ dy: F32; s: F32; ds: F32; dim: number }>(),
  /** x [rows, channels]: y, and the batch mean and biased variance per channel. */
  batchNormTraining: fused('CapsBatchNormTraining', 'batchNorm').settings<{ x: F32; gamma: F32; beta: F32; epsilon: number; y: F32; mean: F32; variance: F32 }>(),
  /** dmean and dvariance: the gradients reaching the statistics themselves (absent: none). */
  batchNormTrainingGrad: fused('CapsBatchNormTrainingGrad', 'batchNorm').settings<{ dy: F32; x: F32; gamma: F32; mean: F32; variance: F32; epsilon: number; dmean?: F32; dvariance?: F32; dx: F32; dgamma: F32; dbeta: F32 }>(),
  selfAttentionRouting: fused('CapsSelfAttentionRouting', 'selfAttentionRouting').settings<SelfAttentionSizes & { uHat: F32; priors: F32; v: F32; couplings: F32 }>(),
  /** dcouplings: the gradient reaching the coupling coefficients (absent: none). */
  selfAttentionRoutingGrad: fused('CapsSelfAttentionRoutingGrad', 'selfAttentionRouting').settings<SelfAttentionSizes & { uHat: F32; priors: F32; dv: F32; dcouplings?: F32; duHat: F32; dpriors: F32 }>(),
} as const;

type Entries = typeof NATIVE_ENTRIES;

/** The name of an entry point of the addon. */
export type NativeEntryName = keyof Entries;

/** The entries that are fused kernels. */
export type FusedKernelKey = { [K in NativeEntryName]: Entries[K]['kernel'] extends string ? K : never }[NativeEntryName];

/** Fused kernel -> the tfjs kernel name it registers as (the registry of src/backend/fused.ts). */
export const FUSED_KERNELS = Object.fromEntries(
  Object.entries(NATIVE_ENTRIES).flatMap(([key, e]) => (e.kernel === undefined ? [] : [[key, e.kernel]])),
) as { readonly [K in FusedKernelKey]: Entries[K]['kernel'] };

/** Fused kernel -> the module of its TS kernel, src/native/kernels/<module>.ts. */
export const FUSED_KERNEL_MODULES = Object.fromEntries(
  Object.entries(NATIVE_ENTRIES).flatMap(([key, e]) => (e.kernelModule === undefined ? [] : [[key, e.kernelModule]])),
) as { readonly [K in FusedKernelKey]: Entries[K]['kernelModule'] };

/** A module of TS kernels of fused kernels (a file name under src/native/kernels/, without .ts). */
export type FusedKernelModule = Entries[FusedKernelKey]['kernelModule'];

/** The fused kernels the table assigns to module M. */
export type FusedKernelsOf<M extends FusedKernelModule> = { [K in FusedKernelKey]: Entries[K]['kernelModule'] extends M ? K : never }[FusedKernelKey];
