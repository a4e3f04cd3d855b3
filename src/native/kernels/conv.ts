/**
 * Conv2D, FusedConv2D and the two convolution gradients on im2col + sgemm
 * (conv.cc). NHWC only; NCHW and prelu activations go to the cpu kernels.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from '../boundary/addon.js';
import { BINARY_OPS } from './elementwise.js';
import { ACTIVATIONS } from './matmul.js';
import { allocF32, cpuKernel, f32, output, releaseScratch, sizeOf, type KernelArgs, type NativeKernelConfig } from './kernelUtil.js';

type ConvInfo = tf.backend_util.Conv2DInfo;

/** The 15 geometry arguments conv.cc reads, in order. */
function geometry(c: ConvInfo): number[] {
  return [
    c.batchSize,
    c.inHeight,
    c.inWidth,
    c.inChannels,
    c.outHeight,
    c.outWidth,
    c.outChannels,
    c.filterHeight,
    c.filterWidth,
    c.strideHeight,
    c.strideWidth,
    c.dilationHeight,
    c.dilationWidth,
    c.padInfo.top,
    c.padInfo.left,
  ];
}

function isChannelsLast(attrs: Record<string, unknown>): boolean {
  return (attrs.dataFormat ?? 'NHWC') === 'NHWC';
}

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

function convInfo(xShape: number[], filterShape: number[], attrs: Record<string, unknown>, dilations: number | [number, number]): ConvInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    attrs.strides as number | [number, number],
    dilations,
    attrs.pad as Pad,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
    false,
    'channelsLast',
  );
}

export function convKernels(addon: NativeAddon): NativeKernelConfig[] {
  const conv2dFallback = cpuKernel('Conv2D');
  const fusedFallback = cpuKernel('FusedConv2D');
  const inputFallback = cpuKernel('Conv2DBackpropInput');
  const filterFallback = cpuKernel('Conv2DBackpropFilter');
  const none: Float32Array = new Float32Array(0);

  const forward = (args: KernelArgs, fused: boolean) => {
    const fallback = fused ? fusedFallback : conv2dFallback;
    const { x, filter, bias } = args.inputs;
    const xs = f32(args.backend, x);
    const fs = f32(args.backend, filter);
    if (!x || !filter || !xs || !fs || x.shape.length !== 4 || filter.shape.length !== 4 || !isChannelsLast(args.attrs)) return fallback(args);
    const act = fused ? ACTIVATIONS[String(args.attrs.activation ?? 'linear')] : ACTIVATIONS.linear;
    if (act === undefined) return fallback(args);
    let biasValues: Float32Array = none;
    if (fused && bias) {
      const bv = f32(args.backend, bias);
      if (!bv) return fallback(args);
      biasValues = bv;
    }
    const info = convInfo(x.shape, filter.shape, args.attrs, (args.attrs.dilations ?? 1) as number | [number, number]);
    const shape = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
    const out = allocF32(sizeOf(shape));
    // A bias that is not per-channel (rare) is added after the convolution.
    const perChannel = biasValues.length === 0 || (bias!.shape.length <= 1 && (biasValues.length === 1 || biasValues.length === info.outChannels));
    if (out.length === 0) return output(args.backend, shape, 'float32', out);
    if (perChannel) {
      addon.conv2d(xs, fs, out, biasValues, act, Number(args.attrs.leakyreluAlpha ?? 0.2), ...geometry(info));
      return output(args.backend, shape, 'float32', out);
    }
    addon.conv2d(xs, fs, out, none, ACTIVATIONS.linear, 0, ...geometry(info));
    const sumShape = tf.backend_util.assertAndGetBroadcastShape(shape, bias!.shape);
    const sum = allocF32(sizeOf(sumShape));
    addon.binary(BINARY_OPS.Add, out, shape, biasValues, bias!.shape, sum, sumShape);
    releaseScratch(out);
    const cols = sumShape[sumShape.length - 1];
    if (sum.length > 0) addon.biasActivation(sum, sum.length / cols, cols, none, act, Number(args.attrs.leakyreluAlpha ?? 0.2));
    return output(args.backend, sumShape, 'float32', sum);
  };

  return [
    { kernelName: 'Conv2D', kernelFunc: (args) => forward(args, false) },
    { kernelName: 'FusedConv2D', kernelFunc: (args) => forward(args, true) },
    {
      kernelName: 'Conv2DBackpropInput',
      kernelFunc: (args: KernelArgs) => {
        const { dy, filter } = args.inputs;
        const dys = f32(args.backend, dy);
        const fs = f32(args.backend, filter);
        const inputShape = args.attrs.inputShape as number[];
        if (!dy || !filter || !dys || !fs || dy.shape.length !== 4 || filter.shape.length !== 4 || !isChannelsLast(args.attrs)) return inputFallback(args);
        const info = convInfo(inputShape, filter.shape, args.attrs, 1);
        const expected = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
        if (!tf.util.arraysEqual(dy.shape, expected)) return inputFallback(args);
        const dx = allocF32(sizeOf(inputShape));
        if (dx.length > 0) addon.conv2dBackpropInput(dys, fs, dx, ...geometry(info));
        return output(args.backend, [...inputShape], 'float32', dx);
      },
    },
    {
      kernelName: 'Conv2DBackpropFilter',
      kernelFunc: (args: KernelArgs) => {
        const { x, dy } = args.inputs;
        const xs = f32(args.backend, x);
        const dys = f32(args.backend, dy);
        const filterShape = args.attrs.filterShape as number[];
        if (!x || !dy || !xs || !dys || x.shape.length !== 4 || dy.shape.length !== 4 || !isChannelsLast(args.attrs)) return filterFallback(args);
        const info = convInfo(x.shape, filterShape, args.attrs, 1);
        const expected = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
        if (!tf.util.arraysEqual(dy.shape, expected)) return filterFallback(args);
        const dw = allocF32(sizeOf(filterShape));
        if (dw.length > 0) addon.conv2dBackpropFilter(xs, dys, dw, ...geometry(info));
        return output(args.backend, [...filterShape], 'float32', dw);
      },
    },
  ];
}
