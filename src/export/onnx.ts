/**
 * ONNX graphs of the model families, built from a model's own layers,
 * config and weights, with the routing iterations unrolled (Efficient-CapsNet's
 * is in ./onnxEfficient.ts, the pieces they share in ./onnxLayers.ts). The
 * contract every exported file keeps (docs/onnx.md):
 *
 *   input   image   float32 [batch, height, width, channels], values in [0, 1]
 *   output  scores  float32 [batch, classes]: capsule lengths (CapsNet,
 *                   Efficient-CapsNet), class activations (EM capsules),
 *                   softmax probabilities (CNN)
 *   CapsNet and Efficient-CapsNet also
 *                   capsules [batch, classes, dim], reconstruction
 *                   [batch, height, width, channels] decoded from the longest capsule
 *   EM also         poses [batch, classes, 16] (4x4, row-major)
 *
 * Convolutions run in ONNX's NCHW layout; the graph transposes the NHWC
 * image once and transposes back wherever a reshape depends on the layout,
 * so every value equals the matching tensor of the tfjs forward pass.
 */
import type * as tf from '@tensorflow/tfjs';
import { dataScale, geometryTables, NEG_BIG, type EmGeometry } from '../capsules/emGeometry.js';
import { inverseTemperatureSchedule, LOGIT_BOUND, MEAN_EPS } from '../capsules/emSettings.js';
import type { EmRoutingConfig } from '../capsules/emSettings.js';
import { POSE_DIM, POSE_SIZE } from '../capsules/matrixVotes.js';
import type { CapsNet } from '../models/capsnet.js';
import type { CnnBaseline } from '../models/cnn.js';
import type { EmCapsNet } from '../models/emCapsNet.js';
import type { EfficientCapsNet } from '../models/efficientCapsNet.js';
import type { ClassifierModel } from '../models/model.js';
import { efficientCapsNetOnnx } from './onnxEfficient.js';
import { OnnxGraphBuilder, type ValueSpec } from './onnxGraph.js';
import { capsuleLengthScores, capsulePredictions, conv, dense, imageInput, longestCapsuleOnly, values, type OnnxExportOptions } from './onnxLayers.js';

export type { OnnxExportOptions } from './onnxLayers.js';

/** Eq. 1 of Sabour et al.: v = |s|^2 / (1 + |s|^2) s / |s|, written s |s| / (1 + |s|^2), which is 0 at s = 0. */
function squash(g: OnnxGraphBuilder, s: string): string {
  const n2 = g.op('ReduceSumSquare', [s], { axes: [-1], keepdims: 1 });
  return g.mul(s, g.div(g.op('Sqrt', [n2]), g.add(n2, g.scalar(1, 'one'))));
}

/**
 * CapsNet (Sabour et al. 2017): Conv1, PrimaryCaps, DigitCaps with
 * `iterations` of routing by agreement (Procedure 1), the capsule lengths,
 * and the decoder fed the longest capsule.
 */
export function capsNetOnnx(model: CapsNet, options: OnnxExportOptions): Uint8Array {
  const c = model.config;
  const iterations = options.routingIterations ?? c.digit.routingIterations;
  const [h, w, ch] = c.inputShape;
  const J = c.numClasses;
  const D = c.digit.dim;
  const g = new OnnxGraphBuilder({ float16: options.float16 });
  const x = g.transpose('image', [0, 3, 1, 2]);
  const conv1 = g.op('Relu', [conv(g, x, model.conv1, c.conv1.strides, 'valid')]);
  const primary = conv(g, conv1, model.primary, c.primary.strides, 'valid');
  const caps = model.primary.gridHeight * model.primary.gridWidth * c.primary.types;
  const inDim = c.primary.dim;
  // Capsule index (y * W + x) * types + type, channel type * dim + d: the NHWC order.
  const u = squash(g, g.reshape(g.transpose(primary, [0, 2, 3, 1]), [-1, caps, inDim]));
  const uHat = capsulePredictions(g, u, model.digit.W, 'digit_caps');

  // Procedure 1, unrolled: b starts at 0, so the first couplings are 1/J.
  let b: string | null = null;
  let v = '';
  for (let r = 0; r < iterations; r++) {
    const s = b === null ? g.mul(g.reduceSum(uHat, [1], false), g.scalar(1 / J, 'uniform_coupling')) : g.reduceSum(g.mul(g.unsqueeze(g.op('Softmax', [b], { axis: -1 }), [3]), uHat), [1], false);
    v = squash(g, s);
    if (r < iterations - 1) {
      const agreement = g.reduceSum(g.mul(uHat, g.unsqueeze(v, [1])), [3], false);
      b = b === null ? agreement : g.add(b, agreement);
    }
  }
  const outputs: ValueSpec[] = [
    { name: 'scores', shape: ['batch', J] },
    { name: 'capsules', shape: ['batch', J, D] },
  ];
  const scores = capsuleLengthScores(g, v);
  g.op('Identity', [v], {}, 'capsules');
  if (model.decoderLayers.length > 0) {
    let y = longestCapsuleOnly(g, v, scores, J, D);
    model.decoderLayers.forEach((layer, i) => {
      y = dense(g, y, layer, i === model.decoderLayers.length - 1 ? 'sigmoid' : 'relu');
    });
    g.op('Reshape', [y, g.ints([-1, h, w, ch], 'shape')], {}, 'reconstruction');
    outputs.push({ name: 'reconstruction', shape: ['batch', h, w, ch] });
  }
  return g.encode({ graphName: 'capsnet', inputs: [imageInput(model)], outputs, metadata: options.metadata, producerVersion: options.version, docString: `CapsNet with ${iterations} routing iterations (Sabour, Frosst and Hinton 2017)` });
}

/** The CNN baseline: convolutions with ReLU, fully connected layers (dropout is off at inference), softmax. */
export function cnnOnnx(model: CnnBaseline, options: OnnxExportOptions): Uint8Array {
  if (options.routingIterations !== undefined) throw new Error('the CNN baseline has no routing: --routing does not apply');
  const c = model.config;
  const g = new OnnxGraphBuilder({ float16: options.float16 });
  let y = g.transpose('image', [0, 3, 1, 2]);
  // Stride 1 and 'same' padding keep the image's size through every layer.
  for (const layer of model.convs) y = g.op('Relu', [conv(g, y, layer, 1, { same: [c.inputShape[0], c.inputShape[1]] })]);
  // The dense layers read the NHWC flattening.
  let z = g.op('Flatten', [g.transpose(y, [0, 2, 3, 1])], { axis: 1 });
  for (const layer of model.hidden) z = dense(g, z, layer, 'relu');
  g.op('Softmax', [dense(g, z, model.classifier, 'linear')], { axis: -1 }, 'scores');
  return g.encode({ graphName: 'cnn', inputs: [imageInput(model)], outputs: [{ name: 'scores', shape: ['batch', c.numClasses] }], metadata: options.metadata, producerVersion: options.version, docString: 'CNN baseline of Sabour, Frosst and Hinton 2017' });
}

interface EmLayerRouting {
  iterations: number;
  routing: EmRoutingConfig;
  betaU: tf.Variable;
  betaA: tf.Variable;
  name: string;
}

/**
 * Votes V = M W (matrixVotes): M [batch, P, N, 16] and W [N, J, 4, 4] give
 * [batch, P, N, J, 16], one 4x4 by 4x(J*4) product per slot.
 */
function matrixVotes(g: OnnxGraphBuilder, M: string, W: tf.Variable, name: string, p: number, n: number): string {
  const j = W.shape[1] as number;
  const src = values(W);
  // W[n, j, c, e] as [n, c, (j, e)].
  const Wt = new Float32Array(src.length);
  for (let s = 0; s < n; s++)
    for (let t = 0; t < j; t++)
      for (let r = 0; r < POSE_SIZE; r++) for (let e = 0; e < POSE_SIZE; e++) Wt[((s * POSE_SIZE + r) * j + t) * POSE_SIZE + e] = src[((s * j + t) * POSE_SIZE + r) * POSE_SIZE + e];
  const w = g.weight(`${name}/W`, [n, POSE_SIZE, j * POSE_SIZE], Wt);
  const prod = g.op('MatMul', [g.reshape(M, [-1, p, n, POSE_SIZE, POSE_SIZE]), w]); // [b, P, N, 4 (a), J*4]
  return g.reshape(g.transpose(g.reshape(prod, [-1, p, n, POSE_SIZE, j, POSE_SIZE]), [0, 1, 2, 4, 3, 5]), [-1, p, n, j, POSE_DIM]);
}

/**
 * Slots [batch, J, P*N] -> children -> slots again: each slot gets the sum
 * (or maximum) over every slot of its child (emRouting's reduceSlots, then
 * gatherSlots), through the layer's own index tables.
 */
function slotsOverChild(g: OnnxGraphBuilder, x: string, geometry: EmGeometry, mode: 'sum' | 'max'): string {
  const tb = geometryTables(geometry);
  const padded = g.op('Pad', [x, g.ints([0, 0, 0, 0, 0, 1], 'pads'), g.scalar(mode === 'sum' ? 0 : NEG_BIG, 'pad_value')]);
  const perChild = g.reshape(g.gather(padded, tb.childSlots, 2), [-1, 1, tb.children, tb.maxCount]);
  const reduced = mode === 'sum' ? g.reduceSum(perChild, [3], false) : g.reduceMax(perChild, [3], false);
  return g.gather(reduced, tb.slotChild, 2);
}

/**
 * EM routing (Procedure 1 of Hinton, Sabour, Frosst 2018), unrolled as in
 * emRoutingReference. votes [batch, P, N, J, 16], activations [batch, P, N];
 * returns poses [batch, P, J, 1, 16] and activations [batch, P, J, 1, 1].
 */
function emRouting(g: OnnxGraphBuilder, votes: string, activations: string, dims: { p: number; n: number; j: number }, layer: EmLayerRouting, geometry: EmGeometry | null): { poses: string; activations: string } {
  const { p, n, j } = dims;
  const d = POSE_DIM;
  const lambdas = inverseTemperatureSchedule(layer.iterations, layer.routing.inverseTemperature);
  const costScale = 1 / dataScale(p, n, j, geometry);
  const V = g.transpose(votes, [0, 1, 3, 2, 4]); // [b, P, J, N, D]
  const aIn = g.reshape(activations, [-1, p, 1, 1, n]);
  const betaU = g.weight(`${layer.name}/beta_u`, [1, 1, j, 1, 1], values(layer.betaU));
  const betaA = g.weight(`${layer.name}/beta_a`, [1, 1, j, 1, 1], values(layer.betaA));
  const betaUD = g.mul(betaU, g.scalar(d, 'pose_dim'));
  // Uniform start over the parents that receive each child.
  let R = geometry
    ? g.floatTensor(`${layer.name}/initial_routing`, [1, p, 1, 1, n], Array.from(geometryTables(geometry).slotChild.subarray(0, p * n), (c) => 1 / (geometryTables(geometry).counts[c] * j)))
    : g.scalar(1 / j, `${layer.name}/initial_routing`);
  let mu = '';
  let act = '';
  for (let it = 0; it < layer.iterations; it++) {
    // M-step.
    const r = g.mul(R, aIn);
    const rSum = g.reduceSum(r, [4], true);
    const wts = g.div(r, g.add(rSum, g.scalar(MEAN_EPS, 'mean_eps')));
    mu = g.op('MatMul', [wts, V]); // [b, P, J, 1, D]
    const dev = g.sub(V, mu);
    const dev2 = g.mul(dev, dev); // [b, P, J, N, D]
    const sigma2 = g.add(g.op('MatMul', [wts, dev2]), g.scalar(layer.routing.varianceFloor, 'variance_floor'));
    const sumLogSigma = g.reduceSum(g.mul(g.op('Log', [sigma2]), g.scalar(0.5, 'half')), [4], true); // [b, P, J, 1, 1]
    const cost = g.mul(g.add(sumLogSigma, betaUD), g.mul(rSum, g.scalar(costScale, 'cost_scale')));
    const z = g.mul(g.sub(betaA, cost), g.scalar(lambdas[it], 'inverse_temperature'));
    const zb = g.mul(g.op('Tanh', [g.div(z, g.scalar(LOGIT_BOUND, 'logit_bound'))]), g.scalar(LOGIT_BOUND, 'logit_bound'));
    act = g.op('Sigmoid', [zb]);
    if (it === layer.iterations - 1) break;
    // E-step: log a_j + log N(V_ij; mu_j, sigma_j) up to a constant, normalised over parents.
    const quad = g.reduceSum(g.mul(dev2, g.div(g.scalar(0.5, 'half'), sigma2)), [4], true); // [b, P, J, N, 1]
    const logA = g.op('Neg', [g.op('Softplus', [g.op('Neg', [zb])])]);
    const logits = g.sub(g.sub(logA, sumLogSigma), quad);
    if (!geometry) {
      R = g.reshape(g.op('Softmax', [logits], { axis: 2 }), [-1, p, j, 1, n]);
      continue;
    }
    // Each child's terms over every parent that receives it (normalizeOverParents), slots as [b, J, P*N].
    const flat = g.reshape(g.transpose(g.reshape(logits, [-1, p, j, n]), [0, 2, 1, 3]), [-1, j, p * n]);
    const shift = slotsOverChild(g, g.reduceMax(flat, [1], true), geometry, 'max');
    const e = g.op('Exp', [g.sub(flat, shift)]);
    const total = slotsOverChild(g, g.reduceSum(e, [1], true), geometry, 'sum');
    R = g.unsqueeze(g.transpose(g.reshape(g.div(e, total), [-1, j, p, n]), [0, 2, 1, 3]), [3]); // [b, P, J, 1, N]
  }
  return { poses: mu, activations: act };
}

/**
 * Matrix capsules with EM routing: conv1, primary capsules, two
 * convolutional capsule layers and the class capsules with coordinate
 * addition, each routing layer unrolled to `iterations`.
 */
export function emCapsNetOnnx(model: EmCapsNet, options: OnnxExportOptions): Uint8Array {
  const c = model.config;
  const iterations = options.routingIterations ?? c.routing.iterations;
  const g = new OnnxGraphBuilder({ float16: options.float16 });
  const x = g.transpose('image', [0, 3, 1, 2]);
  const conv1 = g.op('Relu', [conv(g, x, model.conv1, c.conv1.strides, 'valid')]);
  const primaryConv = g.transpose(conv(g, conv1, model.primary, 1, 'valid'), [0, 2, 3, 1]); // NHWC
  const [, ph, pw] = model.summary()[1].outputShape as number[];
  const T = c.primary.types;
  const slice = (from: number, to: number) => g.op('Slice', [primaryConv, g.ints([from], 'starts'), g.ints([to], 'ends'), g.ints([3], 'axes')]);
  // Channel t*16 + h is pose entry h of type t; channel T*16 + t its activation.
  let poses = g.reshape(slice(0, T * POSE_DIM), [-1, ph, pw, T, POSE_DIM]);
  let acts = g.op('Sigmoid', [slice(T * POSE_DIM, T * (POSE_DIM + 1))]);

  for (const layer of [model.convCaps1, model.convCaps2]) {
    const geo = layer.geometry;
    const tb = geometryTables(geo);
    const P = geo.outHeight * geo.outWidth;
    const N = geo.kernel * geo.kernel * geo.inTypes;
    const J = layer.W.shape[1] as number;
    const M = g.reshape(g.gather(g.reshape(poses, [-1, tb.children, POSE_DIM]), tb.slotChild, 1), [-1, P, N, POSE_DIM]);
    const a = g.reshape(g.gather(g.reshape(acts, [-1, tb.children]), tb.slotChild, 1), [-1, P, N]);
    const votes = matrixVotes(g, M, layer.W, layer.name, P, N);
    const out = emRouting(g, votes, a, { p: P, n: N, j: J }, { iterations, routing: layer.routing, betaU: layer.betaU, betaA: layer.betaA, name: layer.name }, geo);
    poses = g.reshape(out.poses, [-1, geo.outHeight, geo.outWidth, J, POSE_DIM]);
    acts = g.reshape(out.activations, [-1, geo.outHeight, geo.outWidth, J]);
  }

  const cls = model.classCaps;
  const [gh, gw, gt] = cls.inGrid;
  const E = c.numClasses;
  // W is shared across positions: positions play the batch's part in the vote product.
  let votes = matrixVotes(g, g.reshape(poses, [-1, gh * gw, gt, POSE_DIM]), cls.W, cls.name, gh * gw, gt);
  if (cls.coords) votes = g.add(votes, g.floatTensor(`${cls.name}/coordinates`, [1, gh * gw, 1, 1, POSE_DIM], cls.coords));
  const n = gh * gw * gt;
  const out = emRouting(g, g.reshape(votes, [-1, 1, n, E, POSE_DIM]), g.reshape(acts, [-1, 1, n]), { p: 1, n, j: E }, { iterations, routing: cls.routing, betaU: cls.betaU, betaA: cls.betaA, name: cls.name }, null);
  g.op('Reshape', [out.activations, g.ints([-1, E], 'shape')], {}, 'scores');
  g.op('Reshape', [out.poses, g.ints([-1, E, POSE_DIM], 'shape')], {}, 'poses');
  return g.encode({
    graphName: 'em_capsules',
    inputs: [imageInput(model)],
    outputs: [
      { name: 'scores', shape: ['batch', E] },
      { name: 'poses', shape: ['batch', E, POSE_DIM] },
    ],
    metadata: options.metadata,
    producerVersion: options.version,
    docString: `Matrix capsules with ${iterations} EM iterations per routing layer (Hinton, Sabour and Frosst 2018)`,
  });
}

/** The model classes that have a graph; each one's modelType is the name it is registered under. */
type ExportableModel = CapsNet | EmCapsNet | CnnBaseline | EfficientCapsNet;

/**
 * The graph of each architecture, under its registered name (the name its
 * saved models record as modelType). The type asks for one entry per model
 * class above, each taking that class, so a class added there without its
 * graph does not compile; a name registered without a graph here is a clear
 * error at export (and the test that compares onnxArchitectures() with the
 * registry fails).
 */
const ONNX_GRAPHS: { [M in ExportableModel as M['modelType']]: (model: M, options: OnnxExportOptions) => Uint8Array } = {
  capsnet: capsNetOnnx,
  em: emCapsNetOnnx,
  cnn: cnnOnnx,
  efficient: efficientCapsNetOnnx,
};

/** The registered architecture names that export to ONNX. */
export function onnxArchitectures(): string[] {
  return Object.keys(ONNX_GRAPHS);
}

/** The ONNX file of any model of the toolkit that has a graph here. */
export function modelToOnnx(model: ClassifierModel, options: OnnxExportOptions): Uint8Array {
  const name = model.modelType;
  if (!Object.hasOwn(ONNX_GRAPHS, name)) throw new Error(`ONNX export: no graph for the ${name} architecture (there is one for ${onnxArchitectures().join(', ')})`);
  // The table's entry for this modelType takes this model's class.
  const graph = ONNX_GRAPHS[name as keyof typeof ONNX_GRAPHS] as (model: ClassifierModel, options: OnnxExportOptions) => Uint8Array;
  return graph(model, options);
}

/** What users must do to their own pictures before feeding `image`. */
export function preprocessingNote(dataset: string, inputShape: [number, number, number]): string {
  const [h, w, c] = inputShape;
  const layout = `float32 NHWC [batch, ${h}, ${w}, ${c}]`;
  if (dataset.startsWith('smallnorb')) return `${layout}: each camera's 96x96 plane downsampled to 48x48, centre-cropped to ${h}x${w} and standardised per image (zero mean, unit variance), as capsnet prepares the smallNORB test set`;
  return `${layout}, grey levels divided by 255 into [0, 1], bright ink on a dark background as in MNIST; a digit photographed dark on light is inverted, cropped to its ink, scaled to fit 20x20 and centred by its centre of mass in ${h}x${w} (capsnet predict does this)`;
}

/**
 * The metadata_props of an exported file: classes (a JSON array), the
 * dataset, the preprocessing, the family, the routing iterations and
 * capsnet's version, plus the test accuracy the saved model records.
 */
export function onnxMetadata(model: ClassifierModel, json: { metadata?: Record<string, unknown> }, options: { routingIterations?: number; version: string; note?: string }): Record<string, string> {
  const meta = json.metadata ?? {};
  const dataset = typeof meta.dataset === 'string' ? meta.dataset : 'mnist';
  const known = Array.isArray(meta.classNames) && meta.classNames.length === model.numClasses ? (meta.classNames as unknown[]).map(String) : null;
  const classes = known ?? Array.from({ length: model.numClasses }, (_, i) => String(i));
  // Only a model that routes records its iterations: the unrolled ones, else its own.
  const routing = model.routingIterations === null ? undefined : options.routingIterations ?? model.routingIterations;
  const history = meta.history as { testAccuracy?: number }[] | undefined;
  const testAccuracy = typeof meta.testAccuracy === 'number' ? meta.testAccuracy : history?.[history.length - 1]?.testAccuracy;
  return {
    classes: JSON.stringify(classes),
    dataset,
    preprocessing: preprocessingNote(dataset, model.inputShape),
    model_type: model.modelType,
    ...(routing !== undefined ? { routing_iterations: String(routing) } : {}),
    ...(testAccuracy !== undefined ? { test_accuracy: String(testAccuracy) } : {}),
    ...(options.note ? { note: options.note } : {}),
    capsnet_version: options.version,
  };
}
