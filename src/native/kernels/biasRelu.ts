/**
 * The fused bias + ReLU kernels (src/layers/biasRelu.ts) on the addon
 * (biasRelu.cc). Shapes are checked here for readable messages; the addon
 * checks array lengths again before touching memory.
 */
import { FUSED_KERNELS } from '../../backend/fused.js';
import type { NativeAddon } from '../boundary/addon.js';
import { allocF32, f32Input, fail, output, sameShape, type FusedKernels } from './kernelUtil.js';

export function fusedKernels(addon: NativeAddon): FusedKernels<'biasRelu'> {
  const K = FUSED_KERNELS;
  const channels = (kernel: string, shape: number[], bias: number[]) => {
    if (shape.length === 0 || bias.length !== 1 || bias[0] !== shape[shape.length - 1]) fail(kernel, `bias [${bias}] does not match the last axis of [${shape}]`);
    return bias[0];
  };
  return {
    biasRelu: (args) => {
      const x = f32Input(K.biasRelu, args, 'x');
      const bias = f32Input(K.biasRelu, args, 'bias');
      channels(K.biasRelu, x.t.shape, bias.t.shape);
      const out = allocF32(x.v.length);
      if (x.v.length > 0) addon.biasRelu({ x: x.v, bias: bias.v, y: out });
      return output(args.backend, x.t.shape, 'float32', out);
    },
    biasReluGrad: (args) => {
      const dy = f32Input(K.biasReluGrad, args, 'dy');
      const y = f32Input(K.biasReluGrad, args, 'y');
      sameShape(K.biasReluGrad, dy.t, y.t, 'dy and y');
      if (y.t.shape.length === 0) fail(K.biasReluGrad, 'y must have at least one axis');
      const C = y.t.shape[y.t.shape.length - 1];
      const dx = allocF32(y.v.length);
      const dbias = new Float32Array(C);
      if (y.v.length > 0) addon.biasReluGrad({ dy: dy.v, y: y.v, dx, dbias });
      return [output(args.backend, y.t.shape, 'float32', dx), output(args.backend, [C], 'float32', dbias)];
    },
  };
}
