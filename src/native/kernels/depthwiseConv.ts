/**
 * DepthwiseConv2dNative and its two gradients on the addon
 * (depthwiseConv.cc): NHWC, any channel multiplier, strides, dilations and
 * padding. NCHW data and inputs held otherwise than as Float32Arrays go to
 * the cpu kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { DepthwiseConv2dNative, DepthwiseConv2dNativeBackpropFilter, DepthwiseConv2dNativeBackpropInput } from '@tensorflow/tfjs';
import type { NativeAddon } from '../boundary/addon.js';
import { convGeometry, isChannelsLast, type Pad } from './conv.js';
import { allocF32, cpuKernel, f32, output, sizeOf, type KernelArgs, type NativeKernelConfig } from './kernelUtil.js';

function depthwiseInfo(xShape: number[], filterShape: number[], attrs: Record<string, unknown>): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as number | [number, number],
    (attrs.dilations ?? 1) as number | [number, number],
    attrs.pad as Pad,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
    true,
    'channelsLast',
  );
}

export function depthwiseConvKernels(addon: NativeAddon): NativeKernelConfig[] {
  const forwardFallback = cpuKernel(DepthwiseConv2dNative);
  const inputFallback = cpuKernel(DepthwiseConv2dNativeBackpropInput);
  const filterFallback = cpuKernel(DepthwiseConv2dNativeBackpropFilter);
  const rank4 = (...shapes: number[][]) => shapes.every((s) => s.length === 4);
  return [
    {
      kernelName: DepthwiseConv2dNative,
      kernelFunc: (args: KernelArgs) => {
        const { x, filter } = args.inputs;
        const xs = f32(args.backend, x);
        const fs = f32(args.backend, filter);
        if (!x || !filter || !xs || !fs || !rank4(x.shape, filter.shape) || !isChannelsLast(args.attrs) || filter.shape[2] !== x.shape[3]) return forwardFallback(args);
        const info = depthwiseInfo(x.shape, filter.shape, args.attrs);
        const shape = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
        const out = allocF32(sizeOf(shape));
        if (out.length > 0) addon.depthwiseConv2d({ x: xs, filter: fs, out, ...convGeometry(info) });
        return output(args.backend, shape, 'float32', out);
      },
    },
    {
      kernelName: DepthwiseConv2dNativeBackpropInput,
      kernelFunc: (args: KernelArgs) => {
        const { dy, filter } = args.inputs;
        const dys = f32(args.backend, dy);
        const fs = f32(args.backend, filter);
        const inputShape = args.attrs.inputShape as number[];
        if (!dy || !filter || !dys || !fs || !rank4(dy.shape, filter.shape, inputShape) || !isChannelsLast(args.attrs) || filter.shape[2] !== inputShape[3]) return inputFallback(args);
        const info = depthwiseInfo(inputShape, filter.shape, args.attrs);
        if (!tf.util.arraysEqual(dy.shape, [info.batchSize, info.outHeight, info.outWidth, info.outChannels])) return inputFallback(args);
        const dx = allocF32(sizeOf(inputShape));
        if (dx.length > 0) addon.depthwiseConv2dBackpropInput({ dy: dys, filter: fs, dx, ...convGeometry(info) });
        return output(args.backend, [...inputShape], 'float32', dx);
      },
    },
    {
      kernelName: DepthwiseConv2dNativeBackpropFilter,
      kernelFunc: (args: KernelArgs) => {
        const { x, dy } = args.inputs;
        const xs = f32(args.backend, x);
        const dys = f32(args.backend, dy);
        const filterShape = args.attrs.filterShape as number[];
        if (!x || !dy || !xs || !dys || !rank4(x.shape, dy.shape, filterShape) || !isChannelsLast(args.attrs) || filterShape[2] !== x.shape[3]) return filterFallback(args);
        const info = depthwiseInfo(x.shape, filterShape, args.attrs);
        if (!tf.util.arraysEqual(dy.shape, [info.batchSize, info.outHeight, info.outWidth, info.outChannels])) return filterFallback(args);
        const dw = allocF32(sizeOf(filterShape));
        if (dw.length > 0) addon.depthwiseConv2dBackpropFilter({ x: xs, dy: dys, dw, ...convGeometry(info) });
        return output(args.backend, [...filterShape], 'float32', dw);
      },
    },
  ];
}
