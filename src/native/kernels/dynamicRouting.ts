/**
 * The fused dynamic-routing kernels (src/capsules/dynamicRouting.ts) on the
 * addon (dynamicRouting.cc): Procedure 1 forward, and its gradient from a
 * recomputed forward pass.
 */
import { FUSED_KERNELS } from '../../backend/fused.js';
import type { NativeAddon } from '../boundary/addon.js';
import { allocF32, f32Input, fail, output, type FusedKernels } from './kernelUtil.js';

function routingAttrs(kernel: string, attrs: Record<string, unknown>): { iterations: number; stop: boolean } {
  const iterations = Number(attrs.iterations);
  if (!Number.isInteger(iterations) || iterations < 1) fail(kernel, `iterations must be a positive integer, got ${String(attrs.iterations)}`);
  return { iterations, stop: Boolean(attrs.stopGradientInner) };
}

export function fusedKernels(addon: NativeAddon): FusedKernels<'dynamicRouting'> {
  const K = FUSED_KERNELS;
  return {
    dynamicRouting: (args) => {
      const { t, v } = f32Input(K.dynamicRouting, args, 'uHat', 4);
      const { iterations, stop } = routingAttrs(K.dynamicRouting, args.attrs);
      const [B, I, J, D] = t.shape;
      if (I === 0 || J === 0 || D === 0) fail(K.dynamicRouting, `uHat [${t.shape}] has an empty capsule axis`);
      const vOut = allocF32(B * J * D);
      const couplings = Array.from({ length: iterations }, () => allocF32(B * I * J));
      if (B > 0) addon.dynamicRouting({ uHat: v, v: vOut, couplings, batch: B, inCaps: I, outCaps: J, outDim: D, iterations, stopGradientInner: stop });
      return [output(args.backend, [B, J, D], 'float32', vOut), ...couplings.map((c) => output(args.backend, [B, I, J], 'float32', c))];
    },
    dynamicRoutingGrad: (args) => {
      const uHat = f32Input(K.dynamicRoutingGrad, args, 'uHat', 4);
      const dv = f32Input(K.dynamicRoutingGrad, args, 'dv', 3);
      const { iterations, stop } = routingAttrs(K.dynamicRoutingGrad, args.attrs);
      const [B, I, J, D] = uHat.t.shape;
      if (I === 0 || J === 0 || D === 0) fail(K.dynamicRoutingGrad, `uHat [${uHat.t.shape}] has an empty capsule axis`);
      if (dv.t.shape[0] !== B || dv.t.shape[1] !== J || dv.t.shape[2] !== D) fail(K.dynamicRoutingGrad, `dv [${dv.t.shape}] does not fit uHat [${uHat.t.shape}]`);
      const out = allocF32(uHat.v.length);
      if (B > 0) addon.dynamicRoutingGrad({ uHat: uHat.v, dv: dv.v, duHat: out, batch: B, inCaps: I, outCaps: J, outDim: D, iterations, stopGradientInner: stop });
      return output(args.backend, uHat.t.shape, 'float32', out);
    },
  };
}
