/**
 * Transpose and Cast (layout.cc).
 */
import type * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.js';
import { allocF32, allocI32, allocU8, cpuKernel, output, values, type KernelArgs, type NativeKernelConfig } from './kernelUtil.js';

/** (from, to) -> cast() kind in layout.cc. */
const CAST_KINDS: Record<string, number> = {
  'float32>int32': 0,
  'int32>float32': 1,
  'bool>float32': 2,
  'float32>bool': 3,
  'int32>bool': 4,
  'bool>int32': 5,
};

export function layoutKernels(addon: NativeAddon): NativeKernelConfig[] {
  const transposeFallback = cpuKernel('Transpose');
  const castFallback = cpuKernel('Cast');
  return [
    {
      kernelName: 'Transpose',
      kernelFunc: (args: KernelArgs) => {
        const x = args.inputs.x;
        if (!x) return transposeFallback(args);
        const v = values(args.backend, x);
        // 4-byte elements move as they are; an int32 tensor is viewed as floats.
        let src: Float32Array;
        if (v instanceof Float32Array) src = v;
        else if (v instanceof Int32Array) src = new Float32Array(v.buffer, v.byteOffset, v.length);
        else return transposeFallback(args);
        const perm = args.attrs.perm as number[];
        const shape = perm.map((p) => x.shape[p]);
        const out = allocF32(src.length);
        if (src.length > 0) addon.transpose(src, x.shape, perm, out);
        const result = v instanceof Int32Array ? new Int32Array(out.buffer, out.byteOffset, out.length) : out;
        return output(args.backend, shape, x.dtype, result);
      },
    },
    {
      kernelName: 'Cast',
      kernelFunc: (args: KernelArgs) => {
        const x = args.inputs.x;
        const to = args.attrs.dtype as tf.DataType;
        const kind = x ? CAST_KINDS[`${x.dtype}>${to}`] : undefined;
        if (!x || kind === undefined) return castFallback(args);
        const v = values(args.backend, x);
        const ok = (x.dtype === 'float32' && v instanceof Float32Array) || (x.dtype === 'int32' && v instanceof Int32Array) || (x.dtype === 'bool' && v instanceof Uint8Array);
        if (!ok) return castFallback(args);
        const n = (v as Float32Array).length;
        const out = to === 'float32' ? allocF32(n) : to === 'int32' ? allocI32(n) : allocU8(n);
        if (n > 0) addon.cast(kind, v as Float32Array, out);
        return output(args.backend, x.shape, to, out);
      },
    },
  ];
}
