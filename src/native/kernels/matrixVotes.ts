/**
 * The fused matrix-capsule vote kernels (src/capsules/matrixVotes.ts) on the
 * addon (matrixVotes.cc): the votes and their pose and weight gradients.
 */
import { FUSED_KERNELS } from '../../backend/fused.js';
import type { NativeAddon } from '../boundary/addon.js';
import { allocF32, f32Input, fail, output, type FusedKernels } from './kernelUtil.js';

export function fusedKernels(addon: NativeAddon): FusedKernels<'matrixVotes'> {
  const K = FUSED_KERNELS;
  return {
    matrixVotes: (args) => {
      const M = f32Input(K.matrixVotes, args, 'M', 4);
      const W = f32Input(K.matrixVotes, args, 'W', 4);
      const [B, P, N] = M.t.shape;
      const J = W.t.shape[1];
      if (M.t.shape[3] !== 16 || W.t.shape[0] !== N || W.t.shape[2] !== 4 || W.t.shape[3] !== 4) fail(K.matrixVotes, `M [${M.t.shape}] does not fit W [${W.t.shape}]`);
      const out = allocF32(B * P * N * J * 16);
      if (out.length > 0) addon.matrixVotes({ M: M.v, W: W.v, V: out, rows: B * P, slots: N, types: J });
      return output(args.backend, [B, P, N, J, 16], 'float32', out);
    },
    matrixVotesGradInput: (args) => {
      const dy = f32Input(K.matrixVotesGradInput, args, 'dy', 5);
      const W = f32Input(K.matrixVotesGradInput, args, 'W', 4);
      const [B, P, N, J] = dy.t.shape;
      if (dy.t.shape[4] !== 16 || W.t.shape[0] !== N || W.t.shape[1] !== J) fail(K.matrixVotesGradInput, `dy [${dy.t.shape}] does not fit W [${W.t.shape}]`);
      const out = allocF32(B * P * N * 16);
      if (out.length > 0) addon.matrixVotesGradInput({ dV: dy.v, W: W.v, dM: out, rows: B * P, slots: N, types: J });
      return output(args.backend, [B, P, N, 16], 'float32', out);
    },
    matrixVotesGradWeights: (args) => {
      const dy = f32Input(K.matrixVotesGradWeights, args, 'dy', 5);
      const M = f32Input(K.matrixVotesGradWeights, args, 'M', 4);
      const [B, P, N, J] = dy.t.shape;
      if (dy.t.shape[4] !== 16 || M.t.shape[0] !== B || M.t.shape[1] !== P || M.t.shape[2] !== N) fail(K.matrixVotesGradWeights, `dy [${dy.t.shape}] does not fit M [${M.t.shape}]`);
      const out = allocF32(N * J * 16);
      if (out.length > 0) addon.matrixVotesGradWeights({ dV: dy.v, M: M.v, dW: out, rows: B * P, slots: N, types: J });
      return output(args.backend, [N, J, 4, 4], 'float32', out);
    },
  };
}
