/**
 * The saved-model format, readable in Node and in the browser:
 *
 *   model.json   { format: "capsnet-model", version: 1, modelType, config,
 *                  weightsManifest: [{ paths: ["weights.bin"], weights: [...] }],
 *                  metadata }
 *   weights.bin  the weights, concatenated in manifest order, little-endian
 *
 * The manifest entries follow TensorFlow.js's weights-manifest convention
 * ({ name, shape, dtype, quantization? }), so tf.io.decodeWeights reads them;
 * weights may be stored as float16 (quantization { dtype: "float16" }) to
 * halve the file, or as 8 bits per weight with a scale and zero point per
 * channel (quantization { dtype: "uint8", scales, zeroPoints }: value =
 * (q - zeroPoint) * scale), a quarter of it. A channel is one index of the
 * weight's trailing axes (see uint8Channels): the output channel of the
 * convolution and dense kernels (tfjs keeps outputs last), and of a capsule
 * transform W [inputs, parents, outDim, inDim] an index of its trailing axes
 * as far as a channel still spans 1024 weights (the paper CapsNet's W: one
 * (parent, outDim, inDim) entry across all 1152 input capsules). A channel's
 * own range makes a narrow channel as exact as a wide one. Biases (one
 * value per channel) stay float32 in an 8-bit file: a scale per value would
 * cost more than it saves. tfjs's own uint8 quantization has one scale per
 * tensor, so these entries are decoded here rather than by
 * tf.io.decodeWeights. Weight names are the model's parameter names
 * (`conv1/kernel`, `digit_caps/W`, ...).
 */
import * as tf from '@tensorflow/tfjs';
import type { ClassifierModel, ModelConfig } from './model.js';
import { getArchitecture } from './registry.js';

export const MODEL_FORMAT = 'capsnet-model';
export const MODEL_FORMAT_VERSION = 1;
export const WEIGHTS_FILE = 'weights.bin';

/** 8-bit weights, one scale and zero point per channel: an index of some trailing axes (value i is in channel i % scales.length). */
export interface PerChannelUint8 {
  dtype: 'uint8';
  scales: number[];
  zeroPoints: number[];
}

export interface WeightEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
  quantization?: { dtype: 'float16' } | PerChannelUint8;
}

export interface ModelJson {
  format: typeof MODEL_FORMAT;
  version: number;
  modelType: string;
  config: ModelConfig;
  weightsManifest: { paths: string[]; weights: WeightEntry[] }[];
  metadata?: Record<string, unknown>;
}

export type WeightEncoding = 'float32' | 'float16' | 'uint8';

/** Bytes per stored weight of an entry. */
function bytesPerWeight(e: WeightEntry): number {
  return e.quantization?.dtype === 'float16' ? 2 : e.quantization?.dtype === 'uint8' ? 1 : 4;
}

/**
 * Fewest weights an 8-bit channel spans once it reaches past the last axis:
 * a channel's scale and zero point take about 25 bytes of model.json, so at
 * 1024 one-byte weights or more they add at most about 2.5% to the file.
 */
const UINT8_MIN_CHANNEL_SPAN = 1024;

/**
 * The channel count of an 8-bit weight of this shape: the product of its
 * last axis and of the axes before it, as far as each channel still spans
 * UINT8_MIN_CHANNEL_SPAN weights. Conv kernels [kh, kw, in, out] and dense
 * kernels [in, out] get one channel per output; a capsule transform
 * W [1152, 10, 16, 8] gets 1280 (one per parent, output and input
 * dimension, each across the 1152 input capsules).
 */
export function uint8Channels(shape: number[]): number {
  if (shape.length === 0) return 1;
  let channels = shape[shape.length - 1];
  let span = shape.reduce((a, b) => a * b, 1) / channels;
  for (let axis = shape.length - 2; axis > 0 && span / shape[axis] >= UINT8_MIN_CHANNEL_SPAN; axis--) {
    channels *= shape[axis];
    span /= shape[axis];
  }
  return channels;
}

/** Channel counts an 8-bit entry of this shape may carry: the product of any number (at least one) of its trailing axes. */
function trailingChannelCounts(shape: number[]): number[] {
  const counts: number[] = [];
  let channels = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) counts.push((channels *= shape[axis]));
  return counts.length ? counts : [1];
}

/**
 * Per-channel 8-bit quantization of values laid out with `channels` as the
 * fastest-varying index (value i belongs to channel i % channels). Each
 * channel's range [min, max], widened to hold 0 so that zero stays exact,
 * maps onto 0..255: scale = (max - min) / 255 and
 * zeroPoint = round(-min / scale); a constant-zero channel gets scale 0.
 * Rounding to nearest makes each value's error at most scale / 2.
 */
export function quantizeUint8(values: Float32Array, channels: number): { q: Uint8Array; scales: number[]; zeroPoints: number[] } {
  if (channels < 1 || values.length % channels !== 0) throw new Error(`quantizeUint8: ${values.length} values do not split into ${channels} channels`);
  const lo = new Array<number>(channels).fill(0);
  const hi = new Array<number>(channels).fill(0);
  for (let i = 0; i < values.length; i++) {
    const c = i % channels;
    if (values[i] < lo[c]) lo[c] = values[i];
    if (values[i] > hi[c]) hi[c] = values[i];
  }
  const scales = lo.map((l, c) => Math.fround((hi[c] - l) / 255));
  const zeroPoints = lo.map((l, c) => (scales[c] > 0 ? Math.min(255, Math.max(0, Math.round(-l / scales[c]))) : 0));
  const q = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const c = i % channels;
    q[i] = scales[c] > 0 ? Math.min(255, Math.max(0, Math.round(values[i] / scales[c]) + zeroPoints[c])) : zeroPoints[c];
  }
  return { q, scales, zeroPoints };
}

/** The values a per-channel uint8 entry stands for. */
export function dequantizeUint8(q: Uint8Array, scales: number[], zeroPoints: number[]): Float32Array {
  const channels = scales.length;
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i++) {
    const c = i % channels;
    out[i] = (q[i] - zeroPoints[c]) * scales[c];
  }
  return out;
}

/** float32 -> IEEE half, rounding to nearest even; overflow saturates to infinity. */
export function toFloat16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < values.length; i++) {
    f[0] = values[i];
    const x = u[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let half = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rem > mid || (rem === mid && half & 1)) half++;
      out[i] = sign | half;
      continue;
    }
    let half = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
    out[i] = sign | half; // a carry into the exponent is the correct rounding
  }
  return out;
}

/** Encode named float32 arrays into one buffer and its manifest entries. */
export function encodeWeights(named: { name: string; shape: number[]; values: Float32Array }[], encoding: WeightEncoding = 'float32'): { entries: WeightEntry[]; data: Uint8Array } {
  const parts: Uint8Array[] = [];
  const entries: WeightEntry[] = [];
  for (const w of named) {
    const size = w.shape.reduce((a, b) => a * b, 1);
    if (size !== w.values.length) throw new Error(`weight ${w.name}: shape [${w.shape}] does not match ${w.values.length} values`);
    const entry: WeightEntry = { name: w.name, shape: w.shape, dtype: 'float32' };
    let bytes: Float32Array | Uint16Array | Uint8Array = w.values;
    if (encoding === 'float16') {
      bytes = toFloat16Bits(w.values);
      entry.quantization = { dtype: 'float16' };
    } else if (encoding === 'uint8' && w.shape.length >= 2) {
      const { q, scales, zeroPoints } = quantizeUint8(w.values, uint8Channels(w.shape));
      bytes = q;
      entry.quantization = { dtype: 'uint8', scales, zeroPoints };
    }
    parts.push(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    entries.push(entry);
  }
  const data = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let offset = 0;
  for (const p of parts) {
    data.set(p, offset);
    offset += p.byteLength;
  }
  return { entries, data };
}

/** Bytes a manifest needs, to check a weights file before decoding it. */
export function manifestByteLength(entries: WeightEntry[]): number {
  return entries.reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1) * bytesPerWeight(e), 0);
}

/** Decode a weights buffer into Float32Arrays by name. */
export function decodeWeights(entries: WeightEntry[], data: Uint8Array, source = 'weights'): Map<string, Float32Array> {
  const need = manifestByteLength(entries);
  if (data.byteLength !== need) {
    throw new Error(`${source}: expected ${need} bytes for ${entries.length} weights, found ${data.byteLength} (truncated or not matching model.json)`);
  }
  const out = new Map<string, Float32Array>();
  let offset = 0;
  for (const e of entries) {
    const size = e.shape.reduce((a, b) => a * b, 1);
    const bytes = data.subarray(offset, offset + size * bytesPerWeight(e));
    offset += bytes.byteLength;
    const quant = e.quantization;
    if (quant?.dtype === 'uint8') {
      // Files written before channels reached past the last axis carry one
      // scale per last-axis index; any trailing-axes product decodes the same way.
      const counts = trailingChannelCounts(e.shape);
      const channels = Array.isArray(quant.scales) ? quant.scales.length : -1;
      if (!counts.includes(channels) || !Array.isArray(quant.zeroPoints) || quant.zeroPoints.length !== channels) {
        throw new Error(`${source}: weight '${e.name}' is 8-bit but its manifest entry does not give ${uint8Channels(e.shape)} scales and zero points (or as many as the product of some trailing axes of [${e.shape}])`);
      }
      out.set(e.name, dequantizeUint8(bytes, quant.scales, quant.zeroPoints));
      continue;
    }
    // float32 and float16, through tfjs's decoder, which reads a whole
    // ArrayBuffer: a copy of just this entry's bytes (not bytes.slice(),
    // which for a Node Buffer is a view of the same memory).
    const own = new Uint8Array(bytes.byteLength);
    own.set(bytes);
    const tensors = tf.io.decodeWeights(own.buffer, [e] as tf.io.WeightsManifestEntry[]);
    const t = tensors[e.name];
    // A copy: the backend may hand out a view of memory it reuses once the tensor is disposed.
    out.set(e.name, (t.dataSync() as Float32Array).slice());
    t.dispose();
  }
  return out;
}

/** Serialize a model: its model.json object and weights.bin bytes. */
export function modelToArtifacts(model: ClassifierModel, options: { encoding?: WeightEncoding; metadata?: Record<string, unknown> } = {}): { json: ModelJson; weights: Uint8Array } {
  const named = model.params.map((p) => ({ name: p.name, shape: p.value.shape, values: p.value.dataSync() as Float32Array }));
  const { entries, data } = encodeWeights(named, options.encoding);
  return {
    json: {
      format: MODEL_FORMAT,
      version: MODEL_FORMAT_VERSION,
      modelType: model.modelType,
      config: model.getConfig(),
      weightsManifest: [{ paths: [WEIGHTS_FILE], weights: entries }],
      ...(options.metadata ? { metadata: options.metadata } : {}),
    },
    weights: data,
  };
}

/** Check that a parsed model.json has the expected structure. */
export function validateModelJson(json: unknown, source: string): ModelJson {
  const j = json as Partial<ModelJson> | null;
  if (!j || typeof j !== 'object') throw new Error(`${source}: not a JSON object`);
  if (j.format !== MODEL_FORMAT) throw new Error(`${source}: not a capsnet model (format is ${JSON.stringify(j.format)}, expected "${MODEL_FORMAT}")`);
  if (typeof j.version !== 'number' || j.version > MODEL_FORMAT_VERSION) throw new Error(`${source}: unsupported format version ${j.version}`);
  if (typeof j.modelType !== 'string' || !j.config || typeof j.config !== 'object') throw new Error(`${source}: missing modelType or config`);
  const { inputShape, numClasses } = j.config;
  if (!Array.isArray(inputShape) || inputShape.length !== 3 || !Number.isInteger(numClasses)) {
    throw new Error(`${source}: config must give inputShape [height, width, channels] and numClasses`);
  }
  if (!Array.isArray(j.weightsManifest) || j.weightsManifest.length !== 1 || !Array.isArray(j.weightsManifest[0].weights)) {
    throw new Error(`${source}: weightsManifest must hold one group of weights`);
  }
  return j as ModelJson;
}

function nonFiniteCount(values: Float32Array): number {
  let n = 0;
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) n++;
  return n;
}

/** Copy decoded weights into a model, checking names, shapes and that every value is finite. */
export function assignWeights(model: ClassifierModel, weights: Map<string, Float32Array>, entries: WeightEntry[], source: string): void {
  const shapes = new Map(entries.map((e) => [e.name, e.shape]));
  for (const p of model.params) {
    const values = weights.get(p.name);
    const shape = shapes.get(p.name);
    if (!values || !shape) throw new Error(`${source}: weight '${p.name}' is missing`);
    if (shape.length !== p.value.shape.length || shape.some((d, i) => d !== p.value.shape[i])) {
      throw new Error(`${source}: weight '${p.name}' has shape [${shape}], the model needs [${p.value.shape}]`);
    }
    const bad = nonFiniteCount(values);
    if (bad > 0) throw new Error(`${source}: weight '${p.name}' has ${bad} of ${values.length} values that are NaN or infinite`);
    tf.tidy(() => p.value.assign(tf.tensor(values, p.value.shape)));
  }
}

/** Rebuild a model from model.json and weights.bin contents. */
export function modelFromArtifacts(json: unknown, weights: Uint8Array, source = 'model'): { model: ClassifierModel; json: ModelJson } {
  const j = validateModelJson(json, source);
  const entries = j.weightsManifest[0].weights;
  const decoded = decodeWeights(entries, weights, source);
  const model = getArchitecture(j.modelType).create(j.config, 0);
  try {
    assignWeights(model, decoded, entries, source);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, json: j };
}

/** Load a model in the browser (or anywhere with fetch): `url` points at model.json. */
export async function loadModelFromUrl(url: string): Promise<{ model: ClassifierModel; json: ModelJson }> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`could not load ${url}: HTTP ${res.status}`);
  let json: unknown;
  try {
    json = await res.json();
  } catch {
    throw new Error(`${url} is not valid JSON`);
  }
  const j = validateModelJson(json, url);
  const weightsUrl = new URL(j.weightsManifest[0].paths[0], new URL(url, globalThis.location?.href ?? 'file:///')).toString();
  const wres = await fetch(weightsUrl);
  if (!wres.ok) throw new Error(`could not load ${weightsUrl}: HTTP ${wres.status}`);
  return modelFromArtifacts(j, new Uint8Array(await wres.arrayBuffer()), url);
}
