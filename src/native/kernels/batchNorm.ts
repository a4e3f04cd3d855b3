/**
 * The fused training-mode batch norm kernels (batchNormTraining in
 * src/layers/batchNormalization.ts) on the addon (batchNorm.cc): y with the
 * batch statistics, and dx, dgamma, dbeta in one more pass. Shapes are
 * checked here for readable messages; the addon checks array lengths again
 * before touching memory.
 */
import { FUSED_KERNELS } from '../../backend/fused.js';
import type { NativeAddon } from '../boundary/addon.js';
import { allocF32, f32Input, fail, output, sameShape, type KernelArgs, type FusedKernels } from './kernelUtil.js';

function epsilonOf(kernel: string, attrs: Record<string, unknown>): number {
  const epsilon = attrs.epsilon;
  if (typeof epsilon !== 'number' || !Number.isFinite(epsilon) || epsilon < 0) fail(kernel, `epsilon must be a finite non-negative number, got ${String(epsilon)}`);
  return epsilon;
}

/** x's channel count (its last axis), checked against a per-channel input's shape. */
function channelsOf(kernel: string, xShape: number[], perChannel: number[], what: string): number {
  const C = xShape[xShape.length - 1];
  if (xShape.length < 2 || xShape.some((d) => d === 0)) fail(kernel, `x must have at least two non-empty axes, got shape [${xShape}]`);
  if (perChannel.length !== 1 || perChannel[0] !== C) fail(kernel, `${what} [${perChannel}] does not match the channels of [${xShape}]`);
  return C;
}

/** An optional per-channel input, as its values (absent: undefined). */
function optionalChannels(kernel: string, args: KernelArgs, name: string, C: number): Float32Array | undefined {
  if (!args.inputs[name]) return undefined;
  return f32Input(kernel, args, name, [C]).v;
}

export function fusedKernels(addon: NativeAddon): FusedKernels<'batchNorm'> {
  const K = FUSED_KERNELS;
  return {
    batchNormTraining: (args) => {
      const x = f32Input(K.batchNormTraining, args, 'x');
      const gamma = f32Input(K.batchNormTraining, args, 'gamma');
      const C = channelsOf(K.batchNormTraining, x.t.shape, gamma.t.shape, 'gamma');
      const beta = f32Input(K.batchNormTraining, args, 'beta', [C]);
      const epsilon = epsilonOf(K.batchNormTraining, args.attrs);
      const y = allocF32(x.v.length);
      const mean = new Float32Array(C);
      const variance = new Float32Array(C);
      addon.batchNormTraining({ x: x.v, gamma: gamma.v, beta: beta.v, epsilon, y, mean, variance });
      return [output(args.backend, x.t.shape, 'float32', y), output(args.backend, [C], 'float32', mean), output(args.backend, [C], 'float32', variance)];
    },
    batchNormTrainingGrad: (args) => {
      const K2 = K.batchNormTrainingGrad;
      const dy = f32Input(K2, args, 'dy');
      const x = f32Input(K2, args, 'x');
      sameShape(K2, dy.t, x.t, 'dy and x');
      const gamma = f32Input(K2, args, 'gamma');
      const C = channelsOf(K2, x.t.shape, gamma.t.shape, 'gamma');
      const mean = f32Input(K2, args, 'mean', [C]);
      const variance = f32Input(K2, args, 'variance', [C]);
      const dmean = optionalChannels(K2, args, 'dmean', C);
      const dvariance = optionalChannels(K2, args, 'dvariance', C);
      const epsilon = epsilonOf(K2, args.attrs);
      const dx = allocF32(x.v.length);
      const dgamma = new Float32Array(C);
      const dbeta = new Float32Array(C);
      addon.batchNormTrainingGrad({ dy: dy.v, x: x.v, gamma: gamma.v, mean: mean.v, variance: variance.v, epsilon, dmean, dvariance, dx, dgamma, dbeta });
      return [output(args.backend, x.t.shape, 'float32', dx), output(args.backend, [C], 'float32', dgamma), output(args.backend, [C], 'float32', dbeta)];
    },
  };
}
