/**
 * The settings of EM routing: its options and result (EmRoutingOptions,
 * EmRoutingResult), the inverse-temperature schedule and the defaults, the
 * numbers the reference and the fused kernel share (EmRoutingSettings,
 * emKernelAttrs), the routing config of a capsule layer, and the
 * data-dependent start of beta_u.
 */
import * as tf from '@tensorflow/tfjs';
import type { EmChildGeometry } from '../backend/kernelTable.js';
import { dataScale, type EmGeometry } from './emGeometry.js';

export type InverseTemperature = number[] | { start: number; end: number } | { scale: number };

/** What emRouting (./emRouting.ts) takes besides the votes and activations. */
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
/** Added to sum_i r_ij before dividing by it (parents that receive nothing). */
export const MEAN_EPS = 1e-8;

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
 * Kernel attributes: plain numbers, each by name, so that every backend can
 * read them. The child geometry, when there is one, is attribute `geometry`
 * with the named fields of EmChildGeometry (src/backend/kernelTable.ts);
 * without one the attribute is absent.
 */
export function emKernelAttrs(st: EmRoutingSettings): tf.NamedAttrMap {
  const g = st.geometry;
  const geometry = g && ({ inHeight: g.inHeight, inWidth: g.inWidth, inTypes: g.inTypes, kernel: g.kernel, stride: g.stride, outHeight: g.outHeight, outWidth: g.outWidth } satisfies EmChildGeometry);
  return {
    iterations: st.iterations,
    lambdas: st.lambdas,
    varianceFloor: st.varianceFloor,
    costScale: st.costScale,
    logitBound: LOGIT_BOUND,
    meanEps: MEAN_EPS,
    ...(geometry ? { geometry } : {}),
  };
}

/** Settings of EM routing shared by the capsule layers (see emRouting). */
export interface EmRoutingConfig {
  iterations: number;
  /** Inverse temperature schedule (see EmRoutingOptions). */
  inverseTemperature: InverseTemperature;
  varianceFloor: number;
}

/** A capsule layer's routing options: its config, its learned betas, and the iterations of this call. */
export function layerRoutingOptions(config: EmRoutingConfig, betaU: tf.Tensor, betaA: tf.Tensor, iterations: number, extra: Pick<EmRoutingOptions, 'geometry' | 'history'> = {}): EmRoutingOptions {
  return { betaU, betaA, iterations, inverseTemperature: config.inverseTemperature, varianceFloor: config.varianceFloor, ...extra };
}

/**
 * Data-dependent start for beta_u: the paper's cost sum_h (beta_u + log sigma_h)
 * depends on the scale of the votes, which the initial weights fix only
 * loosely; the paper's authors chose their initial weights so that half of
 * the capsules of each layer start active. Setting beta_u to minus the mean
 * log sigma that routing finds on a batch centres the cost at zero, so that
 * with beta_a = 0 the activations start around one half. Two passes, since
 * routing itself depends on beta_u.
 */
export function calibrateBetaU(betaU: tf.Variable, route: () => EmRoutingResult): void {
  for (let pass = 0; pass < 2; pass++) {
    tf.tidy(() => {
      const r = route();
      if (!r.variances) throw new Error('calibrateBetaU: routing did not report variances');
      const [, , j] = r.variances.shape;
      const meanLogSigma = tf.mean(tf.reshape(tf.mul(tf.log(r.variances), 0.5), [-1, j, r.variances.shape[3]]), [0, 2]);
      betaU.assign(tf.neg(meanLogSigma));
    });
  }
}
