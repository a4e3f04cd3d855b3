/**
 * The fused self-attention routing kernels
 * (src/capsules/selfAttentionRouting.ts) on the addon
 * (selfAttentionRouting.cc): the routing with its squash, and its gradient
 * in uHat and the priors from a recomputed forward pass. Shapes are checked
 * here for readable messages; the addon checks array lengths again before
 * touching memory.
 */
import { FUSED_KERNELS } from '../../backend/fused.js';
import type { SelfAttentionSizes } from '../../backend/kernelTable.js';
import type { NativeAddon } from '../boundary/addon.js';
import { allocF32, f32Input, fail, output, type KernelArgs, type FusedKernels } from './kernelUtil.js';

/** uHat [batch, inCaps, outCaps, outDim] and priors [inCaps, outCaps], checked. */
function routingInputs(kernel: string, args: KernelArgs): { uHat: Float32Array; priors: Float32Array; sizes: SelfAttentionSizes; shape: number[] } {
  const uHat = f32Input(kernel, args, 'uHat', 4);
  const [batch, inCaps, outCaps, outDim] = uHat.t.shape;
  if (inCaps === 0 || outCaps === 0 || outDim === 0) fail(kernel, `uHat [${uHat.t.shape}] has an empty capsule axis`);
  const priors = f32Input(kernel, args, 'priors', [inCaps, outCaps]);
  return { uHat: uHat.v, priors: priors.v, sizes: { batch, inCaps, outCaps, outDim }, shape: uHat.t.shape };
}

export function fusedKernels(addon: NativeAddon): FusedKernels<'selfAttentionRouting'> {
  const K = FUSED_KERNELS;
  return {
    selfAttentionRouting: (args) => {
      const { uHat, priors, sizes } = routingInputs(K.selfAttentionRouting, args);
      const { batch, inCaps, outCaps, outDim } = sizes;
      const v = allocF32(batch * outCaps * outDim);
      const couplings = allocF32(batch * inCaps * outCaps);
      if (batch > 0) addon.selfAttentionRouting({ uHat, priors, v, couplings, ...sizes });
      return [output(args.backend, [batch, outCaps, outDim], 'float32', v), output(args.backend, [batch, inCaps, outCaps], 'float32', couplings)];
    },
    selfAttentionRoutingGrad: (args) => {
      const kernel = K.selfAttentionRoutingGrad;
      const { uHat, priors, sizes, shape } = routingInputs(kernel, args);
      const { batch, inCaps, outCaps, outDim } = sizes;
      const dv = f32Input(kernel, args, 'dv', [batch, outCaps, outDim]);
      const dcouplings = args.inputs.dcouplings ? f32Input(kernel, args, 'dcouplings', [batch, inCaps, outCaps]).v : undefined;
      const duHat = allocF32(uHat.length);
      const dpriors = new Float32Array(inCaps * outCaps);
      if (batch > 0) addon.selfAttentionRoutingGrad({ uHat, priors, dv: dv.v, dcouplings, duHat, dpriors, ...sizes });
      return [output(args.backend, shape, 'float32', duHat), output(args.backend, [inCaps, outCaps], 'float32', dpriors)];
    },
  };
}
