/**
 * The fused squash kernels (src/capsules/squash.ts) on the addon (squash.cc).
 * Shapes are checked here for readable messages; the addon checks array
 * lengths again before touching memory.
 */
import { FUSED_KERNELS, type FusedKernelTable } from '../../backend/fused.js';
import type { NativeAddon } from '../boundary/addon.js';
import { allocF32, f32Input, fail, output, sameShape, type NativeKernel } from './kernelUtil.js';

export function squashKernels(addon: NativeAddon): Pick<FusedKernelTable<NativeKernel>, 'squash' | 'squashGrad'> {
  const K = FUSED_KERNELS;
  return {
    squash: (args) => {
      const { t, v } = f32Input(K.squash, args, 's');
      if (t.shape.length === 0) fail(K.squash, 's must have at least one axis');
      const dim = t.shape[t.shape.length - 1];
      const out = allocF32(v.length);
      if (v.length > 0) addon.squash({ s: v, out, dim });
      return output(args.backend, t.shape, 'float32', out);
    },
    squashGrad: (args) => {
      const dy = f32Input(K.squashGrad, args, 'dy');
      const s = f32Input(K.squashGrad, args, 's');
      sameShape(K.squashGrad, dy.t, s.t, 'dy and s');
      if (s.t.shape.length === 0) fail(K.squashGrad, 's must have at least one axis');
      const out = allocF32(s.v.length);
      if (s.v.length > 0) addon.squashGrad({ dy: dy.v, s: s.v, ds: out, dim: s.t.shape[s.t.shape.length - 1] });
      return output(args.backend, s.t.shape, 'float32', out);
    },
  };
}
