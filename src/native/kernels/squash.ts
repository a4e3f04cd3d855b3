/**
 * The fused squash kernels (src/capsules/squash.ts: Eq. 1 and
 * Efficient-CapsNet's squash) on the addon (squash.cc).
 * Shapes are checked here for readable messages; the addon checks array
 * lengths again before touching memory.
 */
import { FUSED_KERNELS } from '../../backend/fused.js';
import type { NativeAddon } from '../boundary/addon.js';
import { allocF32, f32Input, fail, output, sameShape, type NativeKernel, type FusedKernels } from './kernelUtil.js';

type SquashKey = 'squash' | 'efficientSquash';

/** The kernel of squash `key` and of its gradient, along the last axis. */
function squashPair<F extends SquashKey>(addon: NativeAddon, key: F): Record<F, NativeKernel> & Record<`${F}Grad`, NativeKernel> {
  const name = FUSED_KERNELS[key];
  const gradName = FUSED_KERNELS[`${key}Grad`];
  const forward: NativeKernel = (args) => {
    const { t, v } = f32Input(name, args, 's');
    if (t.shape.length === 0) fail(name, 's must have at least one axis');
    const dim = t.shape[t.shape.length - 1];
    const out = allocF32(v.length);
    if (v.length > 0) addon[key]({ s: v, out, dim });
    return output(args.backend, t.shape, 'float32', out);
  };
  const gradient: NativeKernel = (args) => {
    const dy = f32Input(gradName, args, 'dy');
    const s = f32Input(gradName, args, 's');
    sameShape(gradName, dy.t, s.t, 'dy and s');
    if (s.t.shape.length === 0) fail(gradName, 's must have at least one axis');
    const out = allocF32(s.v.length);
    if (s.v.length > 0) addon[`${key}Grad`]({ dy: dy.v, s: s.v, ds: out, dim: s.t.shape[s.t.shape.length - 1] });
    return output(args.backend, s.t.shape, 'float32', out);
  };
  return { [key]: forward, [`${key}Grad`]: gradient } as Record<F, NativeKernel> & Record<`${F}Grad`, NativeKernel>;
}

export function fusedKernels(addon: NativeAddon): FusedKernels<'squash'> {
  return { ...squashPair(addon, 'squash'), ...squashPair(addon, 'efficientSquash') };
}
