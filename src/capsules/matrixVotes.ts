/**
 * Votes of matrix capsules ("Matrix capsules with EM routing", section 2):
 * each child's 4x4 pose matrix times a learned 4x4 transformation matrix,
 * for every parent type. Poses are stored flattened, row-major, as 16 values.
 */
import * as tf from '@tensorflow/tfjs';
import { FUSED_KERNELS, fusedOp, productGradient } from '../backend/fused.js';

export const POSE_SIZE = 4;
export const POSE_DIM = POSE_SIZE * POSE_SIZE;

/** The fused votes; their gradients are the two CapsMatrixVotesGrad kernels. */
const fusedMatrixVotes = fusedOp(FUSED_KERNELS.matrixVotes, productGradient('M', FUSED_KERNELS.matrixVotesGradInput, FUSED_KERNELS.matrixVotesGradWeights));

/**
 * Votes V = M W for every child slot n and parent type j:
 * M [batch, P, N, 16] (poses) and W [N, J, 4, 4] (one matrix per slot and
 * parent type) give [batch, P, N, J, 16]. One batched matmul over the N slots,
 * each a (batch*P*4 x 4) by (4 x J*4) product.
 */
export function matrixVotes(M: tf.Tensor4D, W: tf.Tensor): tf.Tensor5D {
  const [batch, p, n, d] = M.shape;
  const [wn, j] = W.shape;
  if (d !== POSE_DIM || wn !== n || W.rank !== 4 || W.shape[2] !== POSE_SIZE || W.shape[3] !== POSE_SIZE) {
    throw new Error(`matrixVotes: poses [${M.shape}] do not fit transformation matrices [${W.shape}] (expected [${n}, J, 4, 4])`);
  }
  if (M.dtype === 'float32' && W.dtype === 'float32' && fusedMatrixVotes.available()) {
    // One pass that writes the votes in their final layout; the matmul route
    // below moves the largest tensor of the network through two transposes
    // each way.
    return fusedMatrixVotes.run({ M, W }) as tf.Tensor5D;
  }
  return tf.tidy(() => {
    // Rows (b, p, a) of each slot's pose matrices: [N, batch*P*4, 4].
    const m = tf.reshape(tf.transpose(tf.reshape(M, [batch * p, n, d]), [1, 0, 2]), [n, batch * p * POSE_SIZE, POSE_SIZE]);
    // W[n, j, c, e] as [N, 4 (c), J*4 (j, e)].
    const w = tf.reshape(tf.transpose(W, [0, 2, 1, 3]), [n, POSE_SIZE, j * POSE_SIZE]);
    const v = tf.matMul(m, w); // [N, batch*P*4, J*4]: (b, p, a) x (j, e)
    // Two transposes of rank 4 (backends handle those far faster than one of
    // rank 5): (n, bp, a, je) -> (bp, n, a, je) -> (bpn, j, a, e).
    const t1 = tf.transpose(tf.reshape(v, [n, batch * p, POSE_SIZE, j * POSE_SIZE]), [1, 0, 2, 3]);
    const t2 = tf.transpose(tf.reshape(t1, [batch * p * n, POSE_SIZE, j, POSE_SIZE]), [0, 2, 1, 3]);
    return tf.reshape(t2, [batch, p, n, j, POSE_DIM]) as tf.Tensor5D;
  });
}
