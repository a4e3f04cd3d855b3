/**
 * The fused Adam update (src/training/adam.ts) on the addon (adamUpdate.cc):
 * the new weights and both moments in one pass.
 */
import { FUSED_KERNELS } from '../../backend/fused.js';
import type { NativeAddon } from '../boundary/addon.js';
import { allocF32, f32Input, fail, output, sameShape, type Backend, type KernelArgs, type TensorInfo, type FusedKernels } from './kernelUtil.js';

export function fusedKernels(addon: NativeAddon): FusedKernels<'adamUpdate'> {
  return { adamUpdate: (args) => adamUpdate(addon, args) };
}

function adamUpdate(addon: NativeAddon, args: KernelArgs): TensorInfo[] {
  const k = FUSED_KERNELS.adamUpdate;
  const w = f32Input(k, args, 'w');
  const g = f32Input(k, args, 'g');
  const m = f32Input(k, args, 'm');
  const v = f32Input(k, args, 'v');
  sameShape(k, w.t, g.t, 'w and g');
  sameShape(k, w.t, m.t, 'w and m');
  sameShape(k, w.t, v.t, 'w and v');
  const { lr, beta1, beta2, epsilon, step } = args.attrs as { lr: number; beta1: number; beta2: number; epsilon: number; step: number };
  if (!(Number.isInteger(step) && step >= 1)) fail(k, `step must be a positive integer, got ${step}`);
  // As adamUpdateReference: the bias-corrected rate in double, the rest in float32.
  const lrT = (lr * Math.sqrt(1 - beta2 ** step)) / (1 - beta1 ** step);
  const n = w.v.length;
  const w2 = allocF32(n);
  const m2 = allocF32(n);
  const v2 = allocF32(n);
  if (n > 0) addon.adamUpdate({ w: w.v, g: g.v, m: m.v, v: v.v, w2, m2, v2, lrT, beta1, oneMinusBeta1: 1 - beta1, beta2, oneMinusBeta2: 1 - beta2, epsilon });
  const b: Backend = args.backend;
  return [output(b, w.t.shape, 'float32', w2), output(b, w.t.shape, 'float32', m2), output(b, w.t.shape, 'float32', v2)];
}
