/**
 * The fused prediction-vector kernels (src/capsules/predictionVectors.ts) on
 * the addon (predictionVectors.cc): the forward product and its input and
 * weight gradients.
 */
import { FUSED_KERNELS } from '../../backend/fused.js';
import type { NativeAddon } from '../boundary/addon.js';
import { allocF32, f32Input, fail, output, type FusedKernels } from './kernelUtil.js';

export function fusedKernels(addon: NativeAddon): FusedKernels<'predictionVectors'> {
  const K = FUSED_KERNELS;
  return {
    predictionVectors: (args) => {
      const u = f32Input(K.predictionVectors, args, 'u', 3);
      const W = f32Input(K.predictionVectors, args, 'W', 4);
      const [B, I, Din] = u.t.shape;
      const [I2, J, Dout, Din2] = W.t.shape;
      if (I !== I2 || Din !== Din2) fail(K.predictionVectors, `u [${u.t.shape}] does not fit W [${W.t.shape}]`);
      const out = allocF32(B * I * J * Dout);
      if (out.length > 0) addon.predictionVectors({ u: u.v, W: W.v, uHat: out, batch: B, inCaps: I, outCaps: J, outDim: Dout, inDim: Din });
      return output(args.backend, [B, I, J, Dout], 'float32', out);
    },
    predictionVectorsGradInput: (args) => {
      const dy = f32Input(K.predictionVectorsGradInput, args, 'dy', 4);
      const W = f32Input(K.predictionVectorsGradInput, args, 'W', 4);
      const [B, I, J, Dout] = dy.t.shape;
      const [I2, J2, Dout2, Din] = W.t.shape;
      if (I !== I2 || J !== J2 || Dout !== Dout2) fail(K.predictionVectorsGradInput, `dy [${dy.t.shape}] does not fit W [${W.t.shape}]`);
      const out = allocF32(B * I * Din);
      if (out.length > 0) addon.predictionVectorsGradInput({ dy: dy.v, W: W.v, du: out, batch: B, inCaps: I, outCaps: J, outDim: Dout, inDim: Din });
      return output(args.backend, [B, I, Din], 'float32', out);
    },
    predictionVectorsGradWeights: (args) => {
      const dy = f32Input(K.predictionVectorsGradWeights, args, 'dy', 4);
      const u = f32Input(K.predictionVectorsGradWeights, args, 'u', 3);
      const [B, I, J, Dout] = dy.t.shape;
      const [B2, I2, Din] = u.t.shape;
      if (B !== B2 || I !== I2) fail(K.predictionVectorsGradWeights, `dy [${dy.t.shape}] does not fit u [${u.t.shape}]`);
      const out = allocF32(I * J * Dout * Din);
      if (out.length > 0) addon.predictionVectorsGradWeights({ dy: dy.v, u: u.v, dW: out, batch: B, inCaps: I, outCaps: J, outDim: Dout, inDim: Din });
      return output(args.backend, [I, J, Dout, Din], 'float32', out);
    },
  };
}
