/**
 * The ONNX graph of Efficient-CapsNet (Mazzia, Salvetti, Chiaberge 2021),
 * from the model's own layers, config and weights, in inference mode:
 *
 *   backbone    each convolution, its non-linearity and its normalization:
 *               batch norm with the moving statistics (a BatchNormalization
 *               node) or instance norm (an InstanceNormalization node)
 *   primary     the depthwise convolution as a Conv with one group per
 *               channel, cut into capsules in NHWC order, Efficient-CapsNet's
 *               squash
 *   class caps  u_hat_j|i = W_ij u_i and the one pass of self-attention
 *               routing with the learned priors
 *   outputs     scores (capsule lengths), capsules, and the reconstruction
 *               from the longest capsule (dense decoder, or the dense seed
 *               map upsampled through convolutions)
 *
 * Convolutions run in NCHW (./onnxLayers.ts); every other value has the
 * layout of the matching tensor of the tfjs forward pass.
 */
import { SQUASH_EPS, SQUASH_TINY_MAX } from '../capsules/squash.js';
import { BatchNormalization } from '../layers/batchNormalization.js';
import { BACKBONE_LEAKY_SLOPE, DECODER_LEAKY_SLOPE, type EfficientCapsNet } from '../models/efficientCapsNet.js';
import { OnnxGraphBuilder, type ValueSpec } from './onnxGraph.js';
import { capsuleLengthScores, capsulePredictions, conv, dense, imageInput, longestCapsuleOnly, values, type OnnxExportOptions } from './onnxLayers.js';

/**
 * Below this length 1 - e^-n loses digits to cancellation and the gain is
 * computed with Kahan's trick; above it (and where e^-n underflows) the
 * plain quotient is exact to float32 rounding.
 */
const CANCELLATION_LENGTH = 1;

/**
 * Efficient-CapsNet's squash (Methods): v = (1 - 1/e^|s|) s / |s| along the
 * last axis, as efficientSquashReference computes it: n = m |s/m| with
 * m = max(max_k |s_k|, tiny), v = s (1 - e^-n) / n, with the library's
 * guards (SQUASH_TINY_MAX, SQUASH_EPS: the same values as efficientSquash). ONNX has no expm1, so
 * for small n the gain is (1 - u) / -log(u) with u = e^-n (Kahan's trick:
 * log(u) is the length whose exponential u really is, so the rounding of u
 * cancels), and 1 where u rounds to 1 (its limit, which keeps v = s ~ 0).
 */
function efficientSquash(g: OnnxGraphBuilder, s: string): string {
  const m = g.op('Max', [g.reduceMax(g.op('Abs', [s]), [-1], true), g.scalar(SQUASH_TINY_MAX, 'squash_tiny_max')]);
  const t = g.div(s, m);
  const n = g.mul(m, g.op('Sqrt', [g.add(g.op('ReduceSumSquare', [t], { axes: [-1], keepdims: 1 }), g.scalar(SQUASH_EPS, 'squash_eps'))]));
  const u = g.op('Exp', [g.op('Neg', [n])]);
  const one = g.scalar(1, 'one');
  const small = g.op('Less', [n, g.scalar(CANCELLATION_LENGTH, 'cancellation_length')]);
  const denominator = g.op('Where', [small, g.op('Neg', [g.op('Log', [u])]), n]);
  const gain = g.op('Where', [g.op('Equal', [u, one]), one, g.div(g.sub(one, u), denominator)]);
  return g.mul(s, gain);
}

export function efficientCapsNetOnnx(model: EfficientCapsNet, options: OnnxExportOptions): Uint8Array {
  if (options.routingIterations !== undefined) throw new Error('Efficient-CapsNet routes in one pass of self-attention: --routing does not apply');
  const c = model.config;
  const [h, w, ch] = c.inputShape;
  const J = c.numClasses;
  const D = c.classCaps.dim;
  const g = new OnnxGraphBuilder({ float16: options.float16 });

  // Backbone: valid convolution, non-linearity, normalization (EfficientCapsNet.backbone).
  let x = g.transpose('image', [0, 3, 1, 2]);
  for (const [i, layer] of model.convs.entries()) {
    const y = conv(g, x, layer, c.backbone[i].strides, 'valid');
    x = c.activation === 'relu' ? g.op('Relu', [y]) : g.op('LeakyRelu', [y], { alpha: BACKBONE_LEAKY_SLOPE });
    const norm = model.norms[i];
    const gamma = g.weight(`${norm.name}/gamma`, [norm.gamma.size], values(norm.gamma));
    const beta = g.weight(`${norm.name}/beta`, [norm.beta.size], values(norm.beta));
    x =
      norm instanceof BatchNormalization
        ? // Inference: the moving statistics, y = gamma (x - moving_mean) / sqrt(moving_var + eps) + beta.
          g.op('BatchNormalization', [x, gamma, beta, g.weight(`${norm.name}/moving_mean`, [norm.movingMean.size], values(norm.movingMean)), g.weight(`${norm.name}/moving_variance`, [norm.movingVariance.size], values(norm.movingVariance))], { epsilon: norm.epsilon })
        : g.op('InstanceNormalization', [x, gamma, beta], { epsilon: norm.epsilon });
  }

  // Primary capsules: channel t * dim + d at each position, capsule (y * W + x) * types + t (the NHWC order).
  const { strides, dim } = c.primary;
  const [, gh, gw, primaryChannels] = model.primary.convolutionShape;
  const maps = conv(g, x, model.primary, strides, 'valid', true);
  const caps = (gh * gw * primaryChannels) / dim;
  const u = efficientSquash(g, g.reshape(g.transpose(maps, [0, 2, 3, 1]), [-1, caps, dim]));

  // Self-attention routing (src/capsules/selfAttentionRouting.ts), one pass:
  // c_ij = softmax_j(u_hat_j|i . sum_k u_hat_j|k / sqrt(d)), s_j = sum_i (c_ij + b_ij) u_hat_j|i.
  const cls = model.classCaps;
  const uHat = capsulePredictions(g, u, cls.W, cls.name); // [b, I, J, D]
  const total = g.reduceSum(uHat, [1], true);
  const logits = g.mul(g.reduceSum(g.mul(uHat, total), [3], false), g.scalar(1 / Math.sqrt(D), 'inverse_sqrt_dim'));
  const couplings = g.op('Softmax', [logits], { axis: -1 });
  const priors = g.weight(`${cls.name}/priors`, cls.priors.shape, values(cls.priors));
  const s = g.reduceSum(g.mul(g.unsqueeze(g.add(couplings, priors), [3]), uHat), [1], false);
  const v = efficientSquash(g, s);

  const outputs: ValueSpec[] = [
    { name: 'scores', shape: ['batch', J] },
    { name: 'capsules', shape: ['batch', J, D] },
  ];
  const scores = capsuleLengthScores(g, v);
  g.op('Identity', [v], {}, 'capsules');
  if (model.decoder !== null) {
    let y = longestCapsuleOnly(g, v, scores, J, D);
    if (model.decoderConvs.length === 0) {
      // Fully connected: ReLU hidden layers, then the pixels through a sigmoid.
      model.decoderDense.forEach((layer, i) => {
        y = dense(g, y, layer, i === model.decoderDense.length - 1 ? 'sigmoid' : 'relu');
      });
    } else {
      // The linear seed map [b, sh, sw, 1]: with one channel, NHWC and NCHW hold the same order.
      y = g.reshape(dense(g, y, model.decoderDense[0], 'linear'), [-1, 1, model.seedMap[0], model.seedMap[1]]);
      const doubled = g.floatTensor('upsampling_scales', [4], [1, 1, 2, 2]);
      for (const [i, layer] of model.decoderConvs.entries()) {
        if (i === model.decoderConvs.length - 1) {
          y = g.op('Sigmoid', [conv(g, y, layer, 1, 'valid')]);
          break;
        }
        // tf.image.resizeBilinear with half-pixel centres (EfficientCapsNet.decode); both read the edge pixel past the border.
        y = g.op('Resize', [y, '', doubled], { mode: 'linear', coordinate_transformation_mode: 'half_pixel' });
        y = g.op('LeakyRelu', [conv(g, y, layer, 1, 'valid')], { alpha: DECODER_LEAKY_SLOPE });
      }
      y = g.transpose(y, [0, 2, 3, 1]);
    }
    g.op('Reshape', [y, g.ints([-1, h, w, ch], 'shape')], {}, 'reconstruction');
    outputs.push({ name: 'reconstruction', shape: ['batch', h, w, ch] });
  }
  return g.encode({ graphName: 'efficient_capsnet', inputs: [imageInput(model)], outputs, metadata: options.metadata, producerVersion: options.version, docString: 'Efficient-CapsNet with one pass of self-attention routing (Mazzia, Salvetti and Chiaberge 2021)' });
}
