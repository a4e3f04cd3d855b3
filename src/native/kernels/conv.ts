/**
 * Conv2D, FusedConv2D and the two convolution gradients on im2col + sgemm
 * (conv.cc). NHWC only; NCHW and prelu activations go to the cpu kernels.
 */
import * as tf from '@tensorflow/tfjs';
import { Conv2D, Conv2DBackpropFilter, Conv2DBackpropInput, FusedConv2D } from '@tensorflow/tfjs';
import type { ConvGeometry } from '../../backend/kernelTable.js';
import type { NativeAddon, OpCodes } from '../boundary/addon.js';
import { activationCode } from './matmul.js';
import { allocF32, cpuKernel, f32, output, releaseScratch, sizeOf, type KernelArgs, type NativeKernelConfig } from './kernelUtil.js';

type ConvInfo = tf.backend_util.Conv2DInfo;

/** The geometry settings of the addon's convolution entries (depthwise ones too: outChannels is then inChannels times the multiplier). */
export function convGeometry(c: ConvInfo): ConvGeometry {
  return {
    batchSize: c.batchSize,
    inHeight: c.inHeight,
    inWidth: c.inWidth,
    inChannels: c.inChannels,
    outHeight: c.outHeight,
    outWidth: c.outWidth,
    outChannels: c.outChannels,
    filterHeight: c.filterHeight,
    filterWidth: c.filterWidth,
    strideHeight: c.strideHeight,
    strideWidth: c.strideWidth,
    dilationHeight: c.dilationHeight,
    dilationWidth: c.dilationWidth,
    padTop: c.padInfo.top,
    padLeft: c.padInfo.left,
  };
}

export function isChannelsLast(attrs: Record<string, unknown>): boolean {
  return (attrs.dataFormat ?? 'NHWC') === 'NHWC';
}

export type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

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

export function convKernels(addon: NativeAddon, codes: OpCodes): NativeKernelConfig[] {
  const conv2dFallback = cpuKernel(Conv2D);
  const fusedFallback = cpuKernel(FusedConv2D);
  const inputFallback = cpuKernel(Conv2DBackpropInput);
  const filterFallback = cpuKernel(Conv2DBackpropFilter);
  const none: Float32Array = new Float32Array(0);

  const forward = (args: KernelArgs, fused: boolean) => {
    const fallback = fused ? fusedFallback : conv2dFallback;
    const { x, filter, bias } = args.inputs;
    const xs = f32(args.backend, x);
    const fs = f32(args.backend, filter);
    if (!x || !filter || !xs || !fs || x.shape.length !== 4 || filter.shape.length !== 4 || !isChannelsLast(args.attrs)) return fallback(args);
    const act = activationCode(codes, fused ? args.attrs.activation : 'linear');
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
    const alpha = Number(args.attrs.leakyreluAlpha ?? 0.2);
    if (perChannel) {
      addon.conv2d({ x: xs, filter: fs, out, bias: biasValues, activation: act, alpha, ...convGeometry(info) });
      return output(args.backend, shape, 'float32', out);
    }
    addon.conv2d({ x: xs, filter: fs, out, ...convGeometry(info) });
    const sumShape = tf.backend_util.assertAndGetBroadcastShape(shape, bias!.shape);
    const sum = allocF32(sizeOf(sumShape));
    addon.binary({ op: codes.binary.Add, a: out, aShape: shape, b: biasValues, bShape: bias!.shape, out: sum, outShape: sumShape });
    releaseScratch(out);
    const cols = sumShape[sumShape.length - 1];
    if (sum.length > 0) addon.biasActivation({ y: sum, rows: sum.length / cols, cols, activation: act, alpha });
    return output(args.backend, sumShape, 'float32', sum);
  };

  return [
    { kernelName: Conv2D, kernelFunc: (args) => forward(args, false) },
    { kernelName: FusedConv2D, kernelFunc: (args) => forward(args, true) },
    {
      kernelName: Conv2DBackpropInput,
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
        if (dx.length > 0) addon.conv2dBackpropInput({ dy: dys, filter: fs, dx, ...convGeometry(info) });
        return output(args.backend, [...inputShape], 'float32', dx);
      },
    },
    {
      kernelName: Conv2DBackpropFilter,
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
        if (dw.length > 0) addon.conv2dBackpropFilter({ x: xs, dy: dys, dw, ...convGeometry(info) });
        return output(args.backend, [...filterShape], 'float32', dw);
      },
    },
  ];
}
