/**
 * The fused capsule kernels of src/capsules/fused.ts, on the addon
 * (capsules.cc): squash, prediction vectors, matrix-capsule votes and
 * dynamic routing with their gradients, and the Adam update. Shapes are checked here for readable
 * messages; the addon checks array lengths again before touching memory.
 */
import { FUSED_KERNELS } from '../capsules/fused.js';
import type { NativeAddon } from './addon.js';
import { allocF32, f32Input, fail, output, type Backend, type KernelArgs, type NativeKernelConfig, type TensorInfo } from './kernelUtil.js';

function sameShape(kernel: string, a: TensorInfo, b: TensorInfo, what: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) fail(kernel, `${what}: shapes [${a.shape}] and [${b.shape}] differ`);
}

function routingAttrs(kernel: string, attrs: Record<string, unknown>): { iterations: number; stop: boolean } {
  const iterations = Number(attrs.iterations);
  if (!Number.isInteger(iterations) || iterations < 1) fail(kernel, `iterations must be a positive integer, got ${String(attrs.iterations)}`);
  return { iterations, stop: Boolean(attrs.stopGradientInner) };
}

export function capsuleKernels(addon: NativeAddon): NativeKernelConfig[] {
  const K = FUSED_KERNELS;
  return [
    {
      kernelName: K.squash,
      kernelFunc: (args) => {
        const { t, v } = f32Input(K.squash, args, 's');
        if (t.shape.length === 0) fail(K.squash, 's must have at least one axis');
        const dim = t.shape[t.shape.length - 1];
        const out = allocF32(v.length);
        if (v.length > 0) addon.squash(v, out, dim);
        return output(args.backend, t.shape, 'float32', out);
      },
    },
    {
      kernelName: K.squashGrad,
      kernelFunc: (args) => {
        const dy = f32Input(K.squashGrad, args, 'dy');
        const s = f32Input(K.squashGrad, args, 's');
        sameShape(K.squashGrad, dy.t, s.t, 'dy and s');
        if (s.t.shape.length === 0) fail(K.squashGrad, 's must have at least one axis');
        const out = allocF32(s.v.length);
        if (s.v.length > 0) addon.squashGrad(dy.v, s.v, out, s.t.shape[s.t.shape.length - 1]);
        return output(args.backend, s.t.shape, 'float32', out);
      },
    },
    {
      kernelName: K.predictionVectors,
      kernelFunc: (args) => {
        const u = f32Input(K.predictionVectors, args, 'u', 3);
        const W = f32Input(K.predictionVectors, args, 'W', 4);
        const [B, I, Din] = u.t.shape;
        const [I2, J, Dout, Din2] = W.t.shape;
        if (I !== I2 || Din !== Din2) fail(K.predictionVectors, `u [${u.t.shape}] does not fit W [${W.t.shape}]`);
        const out = allocF32(B * I * J * Dout);
        if (out.length > 0) addon.predictionVectors(u.v, W.v, out, B, I, J, Dout, Din);
        return output(args.backend, [B, I, J, Dout], 'float32', out);
      },
    },
    {
      kernelName: K.predictionVectorsGradInput,
      kernelFunc: (args) => {
        const dy = f32Input(K.predictionVectorsGradInput, args, 'dy', 4);
        const W = f32Input(K.predictionVectorsGradInput, args, 'W', 4);
        const [B, I, J, Dout] = dy.t.shape;
        const [I2, J2, Dout2, Din] = W.t.shape;
        if (I !== I2 || J !== J2 || Dout !== Dout2) fail(K.predictionVectorsGradInput, `dy [${dy.t.shape}] does not fit W [${W.t.shape}]`);
        const out = allocF32(B * I * Din);
        if (out.length > 0) addon.predictionVectorsGradInput(dy.v, W.v, out, B, I, J, Dout, Din);
        return output(args.backend, [B, I, Din], 'float32', out);
      },
    },
    {
      kernelName: K.predictionVectorsGradWeights,
      kernelFunc: (args) => {
        const dy = f32Input(K.predictionVectorsGradWeights, args, 'dy', 4);
        const u = f32Input(K.predictionVectorsGradWeights, args, 'u', 3);
        const [B, I, J, Dout] = dy.t.shape;
        const [B2, I2, Din] = u.t.shape;
        if (B !== B2 || I !== I2) fail(K.predictionVectorsGradWeights, `dy [${dy.t.shape}] does not fit u [${u.t.shape}]`);
        const out = allocF32(I * J * Dout * Din);
        if (out.length > 0) addon.predictionVectorsGradWeights(dy.v, u.v, out, B, I, J, Dout, Din);
        return output(args.backend, [I, J, Dout, Din], 'float32', out);
      },
    },
    {
      kernelName: K.matrixVotes,
      kernelFunc: (args) => {
        const M = f32Input(K.matrixVotes, args, 'M', 4);
        const W = f32Input(K.matrixVotes, args, 'W', 4);
        const [B, P, N] = M.t.shape;
        const J = W.t.shape[1];
        if (M.t.shape[3] !== 16 || W.t.shape[0] !== N || W.t.shape[2] !== 4 || W.t.shape[3] !== 4) fail(K.matrixVotes, `M [${M.t.shape}] does not fit W [${W.t.shape}]`);
        const out = allocF32(B * P * N * J * 16);
        if (out.length > 0) addon.matrixVotes(M.v, W.v, out, B * P, N, J);
        return output(args.backend, [B, P, N, J, 16], 'float32', out);
      },
    },
    {
      kernelName: K.matrixVotesGradInput,
      kernelFunc: (args) => {
        const dy = f32Input(K.matrixVotesGradInput, args, 'dy', 5);
        const W = f32Input(K.matrixVotesGradInput, args, 'W', 4);
        const [B, P, N, J] = dy.t.shape;
        if (dy.t.shape[4] !== 16 || W.t.shape[0] !== N || W.t.shape[1] !== J) fail(K.matrixVotesGradInput, `dy [${dy.t.shape}] does not fit W [${W.t.shape}]`);
        const out = allocF32(B * P * N * 16);
        if (out.length > 0) addon.matrixVotesGradInput(dy.v, W.v, out, B * P, N, J);
        return output(args.backend, [B, P, N, 16], 'float32', out);
      },
    },
    {
      kernelName: K.matrixVotesGradWeights,
      kernelFunc: (args) => {
        const dy = f32Input(K.matrixVotesGradWeights, args, 'dy', 5);
        const M = f32Input(K.matrixVotesGradWeights, args, 'M', 4);
        const [B, P, N, J] = dy.t.shape;
        if (dy.t.shape[4] !== 16 || M.t.shape[0] !== B || M.t.shape[1] !== P || M.t.shape[2] !== N) fail(K.matrixVotesGradWeights, `dy [${dy.t.shape}] does not fit M [${M.t.shape}]`);
        const out = allocF32(N * J * 16);
        if (out.length > 0) addon.matrixVotesGradWeights(dy.v, M.v, out, B * P, N, J);
        return output(args.backend, [N, J, 4, 4], 'float32', out);
      },
    },
    {
      kernelName: K.dynamicRouting,
      kernelFunc: (args) => {
        const { t, v } = f32Input(K.dynamicRouting, args, 'uHat', 4);
        const { iterations, stop } = routingAttrs(K.dynamicRouting, args.attrs);
        const [B, I, J, D] = t.shape;
        if (I === 0 || J === 0 || D === 0) fail(K.dynamicRouting, `uHat [${t.shape}] has an empty capsule axis`);
        const vOut = allocF32(B * J * D);
        const couplings = Array.from({ length: iterations }, () => allocF32(B * I * J));
        if (B > 0) addon.dynamicRouting(v, vOut, couplings, B, I, J, D, iterations, stop);
        return [output(args.backend, [B, J, D], 'float32', vOut), ...couplings.map((c) => output(args.backend, [B, I, J], 'float32', c))];
      },
    },
    {
      kernelName: K.dynamicRoutingGrad,
      kernelFunc: (args) => {
        const uHat = f32Input(K.dynamicRoutingGrad, args, 'uHat', 4);
        const dv = f32Input(K.dynamicRoutingGrad, args, 'dv', 3);
        const { iterations, stop } = routingAttrs(K.dynamicRoutingGrad, args.attrs);
        const [B, I, J, D] = uHat.t.shape;
        if (I === 0 || J === 0 || D === 0) fail(K.dynamicRoutingGrad, `uHat [${uHat.t.shape}] has an empty capsule axis`);
        if (dv.t.shape[0] !== B || dv.t.shape[1] !== J || dv.t.shape[2] !== D) fail(K.dynamicRoutingGrad, `dv [${dv.t.shape}] does not fit uHat [${uHat.t.shape}]`);
        const out = allocF32(uHat.v.length);
        if (B > 0) addon.dynamicRoutingGrad(uHat.v, dv.v, out, B, I, J, D, iterations, stop);
        return output(args.backend, uHat.t.shape, 'float32', out);
      },
    },
    {
      kernelName: K.adamUpdate,
      kernelFunc: (args) => adamUpdate(addon, args),
    },
  ];
}

function adamUpdate(addon: NativeAddon, args: KernelArgs): TensorInfo[] {
  const k = FUSED_KERNELS.adamUpdate;
  const w = f32Input(k, args, 'w');
  const g = f32Input(k, args, 'g');
  const m = f32Input(k, args, 'm');
  const v = f32Input(k, args, 'v');
  sameShape(k, w.t, g.t, 'w and g');
  sameShape(k, w.t, m.t, 'w and m');
  sameShape(k, w.t, v.t, 'w and v');
  const { lr, beta1, beta2, epsilon, step } = args.attrs as { lr: number; beta1: number; beta2: number; epsilon: number; step: number };
  if (!(Number.isInteger(step) && step >= 1)) fail(k, `step must be a positive integer, got ${step}`);
  // As adamUpdateReference: the bias-corrected rate in double, the rest in float32.
  const lrT = (lr * Math.sqrt(1 - beta2 ** step)) / (1 - beta1 ** step);
  const n = w.v.length;
  const w2 = allocF32(n);
  const m2 = allocF32(n);
  const v2 = allocF32(n);
  if (n > 0) addon.adamUpdate(w.v, g.v, m.v, v.v, w2, m2, v2, lrT, beta1, 1 - beta1, beta2, 1 - beta2, epsilon);
  const b: Backend = args.backend;
  return [output(b, w.t.shape, 'float32', w2), output(b, w.t.shape, 'float32', m2), output(b, w.t.shape, 'float32', v2)];
}
