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
import { FUSED_KERNELS, hasFusedKernel, runKernel, stopGradient } from './fused.js';

/**
 * Where the children of a convolutional capsule layer sit: a grid of
 * inHeight x inWidth positions with inTypes capsule types, seen by parents on
 * an outHeight x outWidth grid through kernel x kernel windows with `stride`.
 * Only the part of the child grid the windows cover matters.
 */
export interface EmGeometry {
  inHeight: number;
  inWidth: number;
  inTypes: number;
  kernel: number;
  stride: number;
  outHeight: number;
  outWidth: number;
}

export interface EmRoutingOptions {
  /** Learned cost per unit of data of explaining a child's pose, one per parent type [J]. */
  betaU: tf.Tensor;
  /** Learned activation threshold, one per parent type [J]. */
  betaA: tf.Tensor;
  /** EM iterations (E-steps + 1 final M-step). Default 3, as in the paper. */
  iterations?: number;
  /**
   * Inverse temperature lambda of each iteration's M-step: an array of
   * `iterations` positive values, { start, end } for a linear rise, or
   * { scale } for lambda_t = scale * (1 - 0.95^(t+1)), the schedule the
   * paper's authors gave on OpenReview (there with scale 0.01 on unnormalised
   * costs). Default: DEFAULT_INVERSE_TEMPERATURE.
   */
  inverseTemperature?: InverseTemperature;
  /** Added to every variance. Default 1e-6 (DEFAULT_VARIANCE_FLOOR). */
  varianceFloor?: number;
  /** Multiplier of sum_i r_ij in the cost; default 1 / kappa (see above). */
  costScale?: number;
  /** Child positions for convolutional layers; see EmGeometry. */
  geometry?: EmGeometry | null;
  /**
   * Also return the assignments every iteration's M-step used
   * (`routingHistory`), for inspection; this runs the reference procedure.
   */
  history?: boolean;
}

export interface EmRoutingResult {
  /** Parent poses mu [batch, P, J, D]. */
  poses: tf.Tensor4D;
  /** Parent activations in (0, 1) [batch, P, J]. */
  activations: tf.Tensor3D;
  /** Assignment probabilities R of the final M-step [batch, P, N, J]. */
  routing: tf.Tensor4D;
  /** Variances sigma^2 of the final M-step, floor included [batch, P, J, D] (reference only). */
  variances?: tf.Tensor4D;
  /**
   * With `history`: the assignments R [batch, P, N, J] of each iteration's
   * M-step, first to last (the first is the uniform start; the last equals
   * `routing`).
   */
  routingHistory?: tf.Tensor4D[];
}

export type InverseTemperature = number[] | { start: number; end: number } | { scale: number };

/**
 * The default schedule: the authors' lambda_t = scale (1 - 0.95^(t+1)). With
 * the data per parent normalised (kappa, above), scale 1 makes a unit change
 * of log sigma in all 16 pose entries of a parent with half its data move the
 * logistic's argument by about 1.1 in the last of 3 iterations, the same
 * strength as the authors' scale 0.01 with IBM's normalisation by 100.
 */
export const DEFAULT_INVERSE_TEMPERATURE: InverseTemperature = { scale: 1 };
export const DEFAULT_VARIANCE_FLOOR = 1e-6;
/** Bound on the logistic's argument (soft, through tanh). */
export const LOGIT_BOUND = 15;
const MEAN_EPS = 1e-8;
const NEG_BIG = -1e30;

/** lambda for each of `iterations` iterations. */
export function inverseTemperatureSchedule(iterations: number, spec: InverseTemperature = DEFAULT_INVERSE_TEMPERATURE): number[] {
  let out: number[];
  if (Array.isArray(spec)) {
    if (spec.length !== iterations) throw new Error(`emRouting: inverseTemperature has ${spec.length} values for ${iterations} iterations`);
    out = spec.slice();
  } else if ('scale' in spec) {
    out = Array.from({ length: iterations }, (_, t) => spec.scale * (1 - Math.pow(0.95, t + 1)));
  } else {
    out = Array.from({ length: iterations }, (_, t) => (iterations === 1 ? spec.end : spec.start + ((spec.end - spec.start) * t) / (iterations - 1)));
  }
  for (const l of out) if (!(l > 0 && Number.isFinite(l))) throw new Error(`emRouting: inverse temperatures must be positive and finite, got ${l}`);
  return out;
}

/** Height and width of the child grid the windows cover. */
export function coveredSize(g: EmGeometry): [number, number] {
  return [(g.outHeight - 1) * g.stride + g.kernel, (g.outWidth - 1) * g.stride + g.kernel];
}

function checkGeometry(g: EmGeometry): void {
  for (const k of ['inHeight', 'inWidth', 'inTypes', 'kernel', 'stride', 'outHeight', 'outWidth'] as const) {
    if (!Number.isInteger(g[k]) || g[k] < 1) throw new Error(`emRouting: geometry.${k} must be a positive integer, got ${g[k]}`);
  }
  const [ch, cw] = coveredSize(g);
  if (ch > g.inHeight || cw > g.inWidth) {
    throw new Error(`emRouting: ${g.outHeight}x${g.outWidth} windows of ${g.kernel}x${g.kernel} with stride ${g.stride} need a ${ch}x${cw} child grid, got ${g.inHeight}x${g.inWidth}`);
  }
}

/**
 * Index tables of a geometry. Children are numbered c = (y * inWidth + x) *
 * inTypes + t over the whole grid, slots s = p * N + n.
 *   slotChild [P*N]            the child in each slot
 *   childSlots [C * maxCount]  the slots of each child, padded with P*N
 *   counts [C]                 how many slots (= parent positions) per child
 */
interface GeometryTables {
  slotChild: Int32Array;
  childSlots: Int32Array;
  counts: Int32Array;
  maxCount: number;
  children: number;
  slots: number;
}

const tableCache = new Map<string, GeometryTables>();

export function geometryTables(g: EmGeometry): GeometryTables {
  const key = [g.inHeight, g.inWidth, g.inTypes, g.kernel, g.stride, g.outHeight, g.outWidth].join(',');
  let tables = tableCache.get(key);
  if (tables) return tables;
  checkGeometry(g);
  const { inWidth: w, inTypes: t, kernel: k, stride: s, outHeight: oh, outWidth: ow } = g;
  const n = k * k * t;
  const slots = oh * ow * n;
  const children = g.inHeight * w * t;
  const slotChild = new Int32Array(slots);
  const counts = new Int32Array(children);
  for (let oy = 0; oy < oh; oy++) {
    for (let ox = 0; ox < ow; ox++) {
      for (let ky = 0; ky < k; ky++) {
        for (let kx = 0; kx < k; kx++) {
          for (let ti = 0; ti < t; ti++) {
            const slot = (oy * ow + ox) * n + (ky * k + kx) * t + ti;
            const c = ((oy * s + ky) * w + ox * s + kx) * t + ti;
            slotChild[slot] = c;
            counts[c]++;
          }
        }
      }
    }
  }
  let maxCount = 0;
  for (const c of counts) maxCount = Math.max(maxCount, c);
  const childSlots = new Int32Array(children * maxCount).fill(slots);
  const filled = new Int32Array(children);
  for (let slot = 0; slot < slots; slot++) {
    const c = slotChild[slot];
    childSlots[c * maxCount + filled[c]++] = slot;
  }
  tables = { slotChild, childSlots, counts, maxCount, children, slots };
  tableCache.set(key, tables);
  return tables;
}

/** [batch, C, R] -> [batch, P*N, R]: each slot takes its child's value. */
function gatherSlots(x: tf.Tensor3D, tb: GeometryTables): tf.Tensor3D {
  return tf.tidy(() => tf.gather(x, tf.tensor1d(tb.slotChild, 'int32'), 1) as tf.Tensor3D);
}

/** [batch, P*N, R] -> [batch, C, R]: each child sums (or takes the max of) its slots; childless entries get `fill`. */
function reduceSlots(x: tf.Tensor3D, tb: GeometryTables, mode: 'sum' | 'max'): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, , r] = x.shape;
    const padded = tf.concat([x, tf.fill([b, 1, r], mode === 'sum' ? 0 : NEG_BIG)], 1);
    const g = tf.reshape(tf.gather(padded, tf.tensor1d(tb.childSlots, 'int32'), 1), [b, tb.children, tb.maxCount, r]);
    return (mode === 'sum' ? tf.sum(g, 2) : tf.max(g, 2)) as tf.Tensor3D;
  });
}

/*
 * Unfold and fold are each other's adjoints, so each is the other's
 * gradient: two gathers, instead of tf.gather's generic gradient
 * (a segment sum, which some backends run one segment at a time).
 */
function unfoldOp(x: tf.Tensor3D, tb: GeometryTables): tf.Tensor3D {
  const f = (input: tf.Tensor) => ({
    value: gatherSlots(input as tf.Tensor3D, tb),
    gradFunc: (dy: tf.Tensor) => reduceSlots(dy as tf.Tensor3D, tb, 'sum'),
  });
  return tf.customGrad(f as never)(x) as tf.Tensor3D;
}

function foldSumOp(x: tf.Tensor3D, tb: GeometryTables): tf.Tensor3D {
  const f = (input: tf.Tensor) => ({
    value: reduceSlots(input as tf.Tensor3D, tb, 'sum'),
    gradFunc: (dy: tf.Tensor) => gatherSlots(dy as tf.Tensor3D, tb),
  });
  return tf.customGrad(f as never)(x) as tf.Tensor3D;
}

/**
 * Gather [batch, H, W, T, ...rest] children into the slots of each window:
 * [batch, P, K*K*T, ...rest], slots ordered (ky, kx, type).
 */
export function unfoldChildren(x: tf.Tensor, g: EmGeometry): tf.Tensor {
  const tb = geometryTables(g);
  const [b, h, w, t] = x.shape;
  if (h !== g.inHeight || w !== g.inWidth || t !== g.inTypes) {
    throw new Error(`unfoldChildren: expected [batch, ${g.inHeight}, ${g.inWidth}, ${g.inTypes}, ...], got [${x.shape}]`);
  }
  const rest = x.shape.slice(4);
  const r = rest.reduce((a, v) => a * v, 1);
  return tf.tidy(() => tf.reshape(unfoldOp(tf.reshape(x, [b, tb.children, r]) as tf.Tensor3D, tb), [b, g.outHeight * g.outWidth, g.kernel * g.kernel * t, ...rest]));
}

/**
 * The adjoint of unfoldChildren: add the slot values [batch, P, K*K*T, ...rest]
 * back onto the child grid [batch, H, W, T, ...rest] (or, with 'max', take the
 * largest; no gradient). Children no window covers get 0 (or -1e30).
 */
export function foldChildren(x: tf.Tensor, g: EmGeometry, mode: 'sum' | 'max' = 'sum'): tf.Tensor {
  const tb = geometryTables(g);
  const [b, p, n] = x.shape;
  if (p !== g.outHeight * g.outWidth || n !== g.kernel * g.kernel * g.inTypes) {
    throw new Error(`foldChildren: expected [batch, ${g.outHeight * g.outWidth}, ${g.kernel * g.kernel * g.inTypes}, ...], got [${x.shape}]`);
  }
  const rest = x.shape.slice(3);
  const r = rest.reduce((a, v) => a * v, 1);
  return tf.tidy(() => {
    const flat = tf.reshape(x, [b, tb.slots, r]) as tf.Tensor3D;
    const out = mode === 'sum' ? foldSumOp(flat, tb) : reduceSlots(stopGradient(flat), tb, 'max');
    return tf.reshape(out, [b, g.inHeight, g.inWidth, g.inTypes, ...rest]);
  });
}

/** How many parent positions receive each slot's child, [P, N] (constant). */
function parentCounts(g: EmGeometry): Float32Array {
  const tb = geometryTables(g);
  return Float32Array.from(tb.slotChild, (c) => tb.counts[c]);
}

/** kappa: the data one parent receives from fully active children under uniform routing, averaged over positions. */
export function dataScale(p: number, n: number, j: number, g?: EmGeometry | null): number {
  if (!g) return n / j;
  let s = 0;
  for (const c of parentCounts(g)) s += 1 / c;
  return s / (p * j);
}

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

/** Resolved numeric settings shared by the reference and the fused kernel. */
export interface EmRoutingSettings {
  iterations: number;
  lambdas: number[];
  varianceFloor: number;
  costScale: number;
  geometry: EmGeometry | null;
}

export function emRoutingSettings(votes: tf.Tensor, o: EmRoutingOptions): EmRoutingSettings {
  const [, p, n, j] = votes.shape;
  const iterations = o.iterations ?? 3;
  const geometry = o.geometry ?? null;
  return {
    iterations,
    lambdas: inverseTemperatureSchedule(iterations, o.inverseTemperature),
    varianceFloor: o.varianceFloor ?? DEFAULT_VARIANCE_FLOOR,
    costScale: o.costScale ?? 1 / dataScale(p, n, j, geometry),
    geometry,
  };
}

/**
 * R from the E-step's log terms [batch, P, N, J]: normalised over every
 * parent that receives each child (log-sum-exp with a per-child shift).
 */
export function normalizeOverParents(logits: tf.Tensor4D, geometry: EmGeometry | null): tf.Tensor4D {
  if (!geometry) return tf.softmax(logits, -1) as tf.Tensor4D;
  const tb = geometryTables(geometry);
  const [b, p, n, j] = logits.shape;
  return tf.tidy(() => {
    const flat = tf.reshape(logits, [b, p * n, j]);
    // Shift each child's terms by its largest one. The shift cancels in the
    // ratio, so holding it constant leaves the gradient exact (this is not a
    // stop-gradient of the procedure).
    const rowMax = stopGradient(tf.max(flat, -1, true)) as tf.Tensor3D; // [b, P*N, 1]
    const shift = gatherSlots(reduceSlots(rowMax, tb, 'max'), tb);
    const e = tf.exp(tf.sub(flat, shift));
    const total = unfoldOp(foldSumOp(tf.sum(e, -1, true) as tf.Tensor3D, tb), tb); // [b, P*N, 1]
    return tf.reshape(tf.div(e, total), [b, p, n, j]) as tf.Tensor4D;
  });
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

/**
 * EM routing (see the top of this file for shapes). On a backend with the
 * fused kernel the routing weights come back without a gradient (they are
 * for inspection); poses and activations have exact gradients for votes,
 * child activations, betaU and betaA.
 */
export function emRouting(votes: tf.Tensor5D, activations: tf.Tensor3D, options: EmRoutingOptions): EmRoutingResult {
  checkInputs(votes, activations, options);
  if (votes.dtype === 'float32' && !options.history && hasFusedKernel(FUSED_KERNELS.emRouting)) {
    const st = emRoutingSettings(votes, options);
    const [j] = [votes.shape[3]];
    const out = runKernel(
      FUSED_KERNELS.emRouting,
      { votes, activations, betaU: tf.reshape(options.betaU, [j]), betaA: tf.reshape(options.betaA, [j]) },
      emKernelAttrs(st),
    ) as tf.Tensor[];
    return { poses: out[0] as tf.Tensor4D, activations: out[1] as tf.Tensor3D, routing: out[2] as tf.Tensor4D };
  }
  return emRoutingReference(votes, activations, options);
}

/** Kernel attributes: plain numbers, so that every backend can read them. */
export function emKernelAttrs(st: EmRoutingSettings): tf.NamedAttrMap {
  const g = st.geometry;
  return {
    iterations: st.iterations,
    lambdas: st.lambdas,
    varianceFloor: st.varianceFloor,
    costScale: st.costScale,
    logitBound: LOGIT_BOUND,
    meanEps: MEAN_EPS,
    // [inHeight, inWidth, inTypes, kernel, stride, outHeight, outWidth], or empty.
    geometry: g ? [g.inHeight, g.inWidth, g.inTypes, g.kernel, g.stride, g.outHeight, g.outWidth] : [],
  };
}

tf.registerGradient({
  kernelName: FUSED_KERNELS.emRouting,
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
