/**
 * The pieces of the ONNX graphs that several model families share
 * (./onnx.ts, ./onnxEfficient.ts): convolutions and dense layers from a
 * layer's own weights, the prediction vectors of a fully connected capsule
 * layer, the capsule lengths and the decoder's input masked to the longest
 * capsule. Every value is in the layout of the matching tfjs tensor, except
 * convolution maps, which are NCHW.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Activation } from '../layers/conv2d.js';
import type { Dense } from '../layers/dense.js';
import { CAPSULE_LENGTH_EPS } from '../capsules/squash.js';
import type { ClassifierModel } from '../models/model.js';
import type { AttributeValue, OnnxGraphBuilder, ValueSpec } from './onnxGraph.js';


export interface OnnxExportOptions {
  /** Routing iterations to unroll (default: the model's own). */
  routingIterations?: number;
  /** Store the weights in half precision. */
  float16?: boolean;
  /** Written into the file's metadata_props (classes, dataset, preprocessing, version, ...). */
  metadata: Record<string, string>;
  /** The producer version (capsnet's). */
  version: string;
}

export function values(v: tf.Variable | tf.Tensor): Float32Array {
  return v.dataSync() as Float32Array;
}

/**
 * tfjs kernel -> ONNX [out, in / groups, kh, kw]. A full convolution's
 * kernel is [kh, kw, in, out]; a depthwise one's (groups = in) is
 * [kh, kw, in, multiplier], output channel c * multiplier + m.
 */
function convKernel(kernel: tf.Variable, depthwise: boolean): { shape: number[]; data: Float32Array } {
  const [kh, kw, cin, cout] = kernel.shape;
  const src = values(kernel);
  const out = new Float32Array(src.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) {
          const to = depthwise ? ((i * cout + o) * kh + y) * kw + x : ((o * cin + i) * kh + y) * kw + x;
          out[to] = src[((y * kw + x) * cin + i) * cout + o];
        }
  return { shape: depthwise ? [cin * cout, 1, kh, kw] : [cout, cin, kh, kw], data: out };
}

/** tfjs 'same' padding: the extra row or column goes at the end, as in ONNX's SAME_UPPER. */
function samePads(size: number, kernel: number, stride: number): [number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + kernel - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

export interface ConvLayer {
  name: string;
  kernel: tf.Variable;
  bias: tf.Variable;
}

/**
 * A convolution on NCHW input, without its activation; 'same' padding needs
 * the input's spatial size [h, w]. `depthwise`: each input channel convolved
 * with its own kernels (a Conv with one group per input channel).
 */
export function conv(g: OnnxGraphBuilder, x: string, layer: ConvLayer, stride: number, padding: { same: [number, number] } | 'valid', depthwise = false): string {
  const k = convKernel(layer.kernel, depthwise);
  const [kh, kw] = [k.shape[2], k.shape[3]];
  const [top, bottom] = padding === 'valid' ? [0, 0] : samePads(padding.same[0], kh, stride);
  const [left, right] = padding === 'valid' ? [0, 0] : samePads(padding.same[1], kw, stride);
  const W = g.weight(`${layer.name}/kernel`, k.shape, k.data);
  const b = g.weight(`${layer.name}/bias`, [layer.bias.size], values(layer.bias));
  const attributes: Record<string, AttributeValue> = { kernel_shape: [kh, kw], strides: [stride, stride], pads: [top, left, bottom, right] };
  if (depthwise) attributes.group = layer.kernel.shape[2] as number;
  return g.op('Conv', [x, W, b], attributes);
}

export function dense(g: OnnxGraphBuilder, x: string, layer: Dense, activation: Activation): string {
  const W = g.weight(`${layer.name}/kernel`, layer.kernel.shape, values(layer.kernel));
  const b = g.weight(`${layer.name}/bias`, [layer.bias.size], values(layer.bias));
  const y = g.op('Gemm', [x, W, b]);
  return activation === 'relu' ? g.op('Relu', [y]) : activation === 'sigmoid' ? g.op('Sigmoid', [y]) : y;
}

/**
 * Prediction vectors of a fully connected capsule layer, u_hat_j|i = W_ij u_i
 * (Eq. 2 of Sabour et al.): u [batch, I, K] and W [I, J, D, K] give
 * [batch, I, J, D], W stored as [I, K, (J, D)], one product per input capsule.
 */
export function capsulePredictions(g: OnnxGraphBuilder, u: string, W: tf.Variable, name: string): string {
  const [I, J, D, K] = W.shape;
  const src = values(W);
  const Wt = new Float32Array(src.length);
  for (let i = 0; i < I; i++)
    for (let j = 0; j < J; j++)
      for (let d = 0; d < D; d++) for (let k = 0; k < K; k++) Wt[(i * K + k) * J * D + j * D + d] = src[((i * J + j) * D + d) * K + k];
  const w = g.weight(`${name}/W`, [I, K, J * D], Wt);
  return g.reshape(g.op('MatMul', [g.reshape(u, [-1, I, 1, K]), w]), [-1, I, J, D]);
}

/** The graph output `scores`: the lengths of capsules v [batch, classes, dim], with capsuleLength's epsilon. */
export function capsuleLengthScores(g: OnnxGraphBuilder, v: string): string {
  return g.op('Sqrt', [g.add(g.op('ReduceSumSquare', [v], { axes: [-1], keepdims: 0 }), g.scalar(CAPSULE_LENGTH_EPS, 'length_eps'))], {}, 'scores');
}

/**
 * The decoder's input at test time (section 4.1 of Sabour et al.): the class
 * capsules v [batch, J, D] with all but the longest (the argmax of `scores`)
 * zeroed, flattened to [batch, J * D].
 */
export function longestCapsuleOnly(g: OnnxGraphBuilder, v: string, scores: string, J: number, D: number): string {
  const longest = g.op('ArgMax', [scores], { axis: 1, keepdims: 0 });
  const mask = g.op('OneHot', [longest, g.ints([J], 'depth'), g.floatTensor('one_hot_values', [2], [0, 1])], { axis: -1 });
  return g.reshape(g.mul(v, g.unsqueeze(mask, [2])), [-1, J * D]);
}

export function imageInput(model: ClassifierModel): ValueSpec {
  return { name: 'image', shape: ['batch', ...model.inputShape] };
}
