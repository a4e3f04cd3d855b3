/**
 * EM routing between matrix capsules: Procedure 1 of "Matrix capsules with EM
 * routing" (Hinton, Sabour, Frosst, ICLR 2018).
 *
 * Every child capsule i (a 4x4 pose M_i flattened to D = 16 entries and an
 * activation a_i) casts a vote V_ij = M_i W_ij for each parent j that can
 * receive it. Each parent is a Gaussian over the D pose entries (axis-aligned:
 * one mean and one variance per entry) plus a logistic activation; routing
 * fits the mixture to the votes by alternating
 *
 *   M-step  r_ij   = R_ij a_i
 *           mu_jh  = sum_i r_ij V_ijh / sum_i r_ij
 *           s2_jh  = sum_i r_ij (V_ijh - mu_jh)^2 / sum_i r_ij   (+ variance floor)
 *           cost_h = (beta_u + log sigma_jh) sum_i r_ij
 *           a_j    = logistic(lambda (beta_a - sum_h cost_h))
 *   E-step  p_ij   = N(V_ij; mu_j, diag(s2_j))
 *           R_ij   = a_j p_ij / sum_k a_k p_ik    (k: every parent that receives i)
 *
 * starting from uniform R and ending with an M-step; the poses mu_j and the
 * activations a_j are the layer's output. beta_u and beta_a are learned, one
 * per output capsule type; lambda, an inverse temperature, follows a fixed
 * schedule that rises over the iterations. Gradients flow through every
 * iteration (no stop-gradient anywhere in the procedure).
 *
 * Shapes. Parents sit at P positions (P = 1 for class capsules), each with J
 * types. A parent position sees N child slots; for a convolutional capsule
 * layer these are the K x K x B children of its receptive field, ordered
 * (ky, kx, type), and parents are ordered (row, column):
 *
 *   votes        [batch, P, N, J, D]
 *   activations  [batch, P, N]        child activation in each slot
 *   betaU, betaA [J]
 *   -> poses [batch, P, J, D], activations [batch, P, J], routing [batch, P, N, J]
 *
 * With overlapping receptive fields one child fills slots at several parent
 * positions. Passing its `geometry` makes the E-step normalise each child's
 * assignments over every parent that receives it, across positions and types
 * (so parents at different positions compete for a child, as the paper's
 * procedure requires), and makes the initial R uniform over those parents.
 * Without geometry every slot is its own child and R is normalised over the J
 * parent types only (class capsules, fully connected layers).
 *
 * Numerics (why each guard is there):
 *   - The E-step works with log a_j + log p_ij: a_j enters through its logit
 *     (log a = logSigmoid(z)), the Gaussian through -sum_h [d^2 / 2 s2 + log s],
 *     and each child's normaliser is a log-sum-exp shifted by that child's
 *     largest term, so neither far-away votes (log p of -1e6) nor a ~ 0
 *     underflow to 0/0. The constant -D/2 log(2 pi) cancels and is omitted.
 *   - The variance has a floor added (default 1e-6): all-equal votes give a
 *     finite log sigma and finite gradients.
 *   - The means divide by sum_i r_ij + 1e-8, so parents that receive nothing
 *     (all children inactive) keep finite means and gradients.
 *   - The logistic's argument is bounded smoothly, z -> Z tanh(z / Z) with
 *     Z = 15, which leaves |z| < 5 almost unchanged and keeps activations
 *     strictly inside (0, 1) in float32 with non-zero gradients.
 *   - The amount of data sum_i r_ij grows with a layer's fan-in (512 children
 *     per class capsule in the paper's model, 9 per convolutional one), which
 *     would leave lambda's scale layer dependent. It is divided by kappa, the
 *     data a parent receives when every child is fully active and routed
 *     uniformly (N / J without geometry). This is a fixed, per-layer
 *     rescaling of lambda (beta_a, being learned, absorbs the matching
 *     factor), not a change to the procedure; `costScale` sets it explicitly.
 */
import * as tf from '@tensorflow/tfjs';
import { checkGeometry, normalizeOverParents, parentCounts } from './emGeometry.js';
import { DEFAULT_VARIANCE_FLOOR, emKernelAttrs, emRoutingSettings, LOGIT_BOUND, MEAN_EPS, type EmRoutingOptions, type EmRoutingResult } from './emSettings.js';

export type { EmRoutingOptions, EmRoutingResult } from './emSettings.js';
import { FUSED_KERNELS, fusedOp, runKernel } from '../backend/fused.js';

function checkInputs(votes: tf.Tensor, activations: tf.Tensor, o: EmRoutingOptions): void {
  if (votes.rank !== 5) throw new Error(`emRouting: votes must be [batch, P, N, J, D], got shape [${votes.shape}]`);
  const [b, p, n, j] = votes.shape;
  if (activations.rank !== 3 || activations.shape[0] !== b || activations.shape[1] !== p || activations.shape[2] !== n) {
    throw new Error(`emRouting: activations must be [batch, P, N] = [${b}, ${p}, ${n}], got [${activations.shape}]`);
  }
  for (const [name, beta] of [['betaU', o.betaU], ['betaA', o.betaA]] as const) {
    if (!beta || beta.size !== j || beta.rank > 1) throw new Error(`emRouting: ${name} must hold one value per parent type [${j}], got [${beta?.shape}]`);
  }
  const iterations = o.iterations ?? 3;
  if (!Number.isInteger(iterations) || iterations < 1) throw new Error(`emRouting: iterations must be a positive integer, got ${iterations}`);
  const floor = o.varianceFloor ?? DEFAULT_VARIANCE_FLOOR;
  if (!(floor > 0 && Number.isFinite(floor))) throw new Error(`emRouting: varianceFloor must be positive, got ${floor}`);
  if (o.costScale !== undefined && !(o.costScale > 0 && Number.isFinite(o.costScale))) throw new Error(`emRouting: costScale must be positive, got ${o.costScale}`);
  if (o.geometry) {
    checkGeometry(o.geometry);
    const g = o.geometry;
    if (p !== g.outHeight * g.outWidth || n !== g.kernel * g.kernel * g.inTypes) {
      throw new Error(`emRouting: geometry gives P = ${g.outHeight * g.outWidth}, N = ${g.kernel * g.kernel * g.inTypes}, votes have P = ${p}, N = ${n}`);
    }
  }
}

/** Procedure 1 in plain tfjs ops: the reference, and the path in browsers. */
export function emRoutingReference(votes: tf.Tensor5D, activations: tf.Tensor3D, options: EmRoutingOptions): EmRoutingResult {
  checkInputs(votes, activations, options);
  const st = emRoutingSettings(votes, options);
  const [batch, p, n, j, d] = votes.shape;
  // Layout: batch and positions merged (bp = batch * P) and parent types
  // before children, [bp, J, N, D], so that every sum over children or pose
  // entries is a batched matrix product (which keeps no full-size product
  // alive for the gradient) and every tensor has rank <= 4 (which backends
  // transpose and reduce far faster).
  const bp = batch * p;
  return tf.tidy(() => {
    const V = tf.transpose(tf.reshape(votes, [bp, n, j, d]), [0, 2, 1, 3]); // [bp, J, N, D]
    const betaU = tf.reshape(options.betaU, [1, j, 1, 1]);
    const betaA = tf.reshape(options.betaA, [1, j, 1, 1]);
    const aIn = tf.reshape(activations, [bp, 1, 1, n]);
    // Initial R [bp or 1, J, 1, N]: uniform over the parents that receive each child.
    let R: tf.Tensor = st.geometry
      ? tf.tile(tf.tensor(parentCounts(st.geometry).map((c) => 1 / (c * j)), [1, p, 1, 1, n]), [batch, 1, j, 1, 1]).reshape([bp, j, 1, n])
      : tf.fill([1, j, 1, n], 1 / j);
    let mu: tf.Tensor | null = null;
    let act: tf.Tensor | null = null;
    let variances: tf.Tensor | null = null;
    // R [bp or 1, J, 1, N] as [batch, P, N, J], child-major like the votes.
    const childMajor = (r: tf.Tensor) =>
      tf.reshape(tf.transpose(tf.reshape(r.shape[0] === bp ? r : tf.broadcastTo(r, [bp, j, 1, n]), [bp, j, n]), [0, 2, 1]), [batch, p, n, j]) as tf.Tensor4D;
    const history: tf.Tensor4D[] = [];
    for (let it = 0; it < st.iterations; it++) {
      if (options.history) history.push(childMajor(R));
      // M-step.
      const r = tf.mul(R, aIn); // [bp, J, 1, N]
      const rSum = tf.sum(r, 3, true); // [bp, J, 1, 1]
      const w = tf.div(r, tf.add(rSum, MEAN_EPS)); // sums to ~1 over N
      mu = tf.matMul(w, V); // [bp, J, 1, D]
      const dev2 = tf.square(tf.sub(V, mu)); // [bp, J, N, D]
      const sigma2 = tf.add(tf.matMul(w, dev2), st.varianceFloor); // [bp, J, 1, D]
      const logSigma = tf.mul(tf.log(sigma2), 0.5);
      const sumLogSigma = tf.sum(logSigma, 3, true); // [bp, J, 1, 1]
      const cost = tf.mul(tf.add(sumLogSigma, tf.mul(betaU, d)), tf.mul(rSum, st.costScale)); // sum_h (beta_u + log sigma_h) * sum_i r_ij
      const z = tf.mul(tf.sub(betaA, cost), st.lambdas[it]);
      const zb = tf.mul(tf.tanh(tf.div(z, LOGIT_BOUND)), LOGIT_BOUND);
      act = tf.sigmoid(zb); // [bp, J, 1, 1]
      variances = sigma2;
      if (it === st.iterations - 1) break;
      // E-step: log a_j + log N(V_ij; mu_j, sigma_j), normalised over parents.
      const halfInvVar = tf.reshape(tf.div(0.5, sigma2), [bp, j, d, 1]);
      // log a_j = -softplus(-z) (tf.logSigmoid's custom gradient loses its
      // saved input inside tidy, so it is spelled out).
      const logA = tf.neg(tf.softplus(tf.neg(zb)));
      const logits = tf.sub(tf.sub(logA, sumLogSigma), tf.matMul(dev2, halfInvVar)); // [bp, J, N, 1]
      const logitsChildMajor = tf.reshape(tf.transpose(tf.reshape(logits, [bp, j, n]), [0, 2, 1]), [batch, p, n, j]) as tf.Tensor4D;
      const Rn = normalizeOverParents(logitsChildMajor, st.geometry); // [batch, P, N, J]
      R = tf.reshape(tf.transpose(tf.reshape(Rn, [bp, n, j]), [0, 2, 1]), [bp, j, 1, n]);
    }
    const routing = childMajor(R);
    return {
      poses: tf.reshape(mu!, [batch, p, j, d]) as tf.Tensor4D,
      activations: tf.reshape(act!, [batch, p, j]) as tf.Tensor3D,
      routing,
      variances: tf.reshape(variances!, [batch, p, j, d]) as tf.Tensor4D,
      ...(options.history ? { routingHistory: history } : {}),
    };
  });
}

/** The fused Procedure 1; one CapsEmRoutingGrad kernel gives the gradients of poses and activations. */
const fusedEmRouting = fusedOp(FUSED_KERNELS.emRouting, {
  inputsToSave: ['votes', 'activations', 'betaU', 'betaA'],
  gradFunc: (dys, saved, attrs) => {
    const [votes, activations, betaU, betaA] = saved;
    const dy = dys as tf.Tensor[];
    // The routing output (index 2) carries no gradient. One kernel gives all
    // four gradients; it runs here, not in the per-input closures, because
    // the engine disposes what each closure creates except what it returns.
    const [dVotes, dActivations, dBetaU, dBetaA] = runKernel(FUSED_KERNELS.emRoutingGrad, { votes, activations, betaU, betaA, dPoses: dy[0], dActivations: dy[1] }, attrs) as tf.Tensor[];
    return { votes: () => dVotes, activations: () => dActivations, betaU: () => dBetaU, betaA: () => dBetaA };
  },
});

/**
 * EM routing (see the top of this file for shapes). On a backend with the
 * fused kernel the routing weights come back without a gradient (they are
 * for inspection); poses and activations have exact gradients for votes,
 * child activations, betaU and betaA.
 */
export function emRouting(votes: tf.Tensor5D, activations: tf.Tensor3D, options: EmRoutingOptions): EmRoutingResult {
  checkInputs(votes, activations, options);
  if (votes.dtype === 'float32' && !options.history && fusedEmRouting.available()) {
    const st = emRoutingSettings(votes, options);
    const [j] = [votes.shape[3]];
    const out = fusedEmRouting.run(
      { votes, activations, betaU: tf.reshape(options.betaU, [j]), betaA: tf.reshape(options.betaA, [j]) },
      emKernelAttrs(st),
    ) as tf.Tensor[];
    return { poses: out[0] as tf.Tensor4D, activations: out[1] as tf.Tensor3D, routing: out[2] as tf.Tensor4D };
  }
  return emRoutingReference(votes, activations, options);
}
