/**
 * An independent float64 implementation of EM routing (Procedure 1 of
 * "Matrix capsules with EM routing") written as plain loops, one child and
 * one parent at a time, for checking the tfjs reference and fused kernels.
 * It shares no code with src/capsules/emRouting.ts or emGeometry.ts, only
 * the type that describes a layer's windows: the child-to-parent bookkeeping
 * for convolutional layers is redone here from the window definition.
 */
import type { EmGeometry } from '../src/capsules/emGeometry.js';

export type OracleGeometry = EmGeometry;

export interface OracleSettings {
  iterations: number;
  lambdas: number[];
  varianceFloor: number;
  costScale: number;
  logitBound: number;
  meanEps: number;
  geometry: OracleGeometry | null;
}

export interface OracleResult {
  poses: Float64Array; // [B, P, J, D]
  activations: Float64Array; // [B, P, J]
  routing: Float64Array; // [B, P, N, J]
}

/** The child (an id) in slot n of parent position p. */
function childOf(g: OracleGeometry | null, p: number, n: number, N: number): number {
  if (!g) return p * N + n;
  const oy = Math.floor(p / g.outWidth);
  const ox = p % g.outWidth;
  const t = n % g.inTypes;
  const k = Math.floor(n / g.inTypes);
  const ky = Math.floor(k / g.kernel);
  const kx = k % g.kernel;
  return ((oy * g.stride + ky) * g.inWidth + (ox * g.stride + kx)) * g.inTypes + t;
}

export function emRoutingOracle(
  votes: ArrayLike<number>,
  acts: ArrayLike<number>,
  betaU: ArrayLike<number>,
  betaA: ArrayLike<number>,
  shape: [number, number, number, number, number],
  s: OracleSettings,
): OracleResult {
  const [B, P, N, J, D] = shape;
  const poses = new Float64Array(B * P * J * D);
  const activations = new Float64Array(B * P * J);
  const routing = new Float64Array(B * P * N * J);
  const V = (b: number, p: number, n: number, j: number, h: number) => votes[(((b * P + p) * N + n) * J + j) * D + h];
  // Slots of each child.
  const slotsOf = new Map<number, [number, number][]>();
  for (let p = 0; p < P; p++) {
    for (let n = 0; n < N; n++) {
      const c = childOf(s.geometry, p, n, N);
      if (!slotsOf.has(c)) slotsOf.set(c, []);
      slotsOf.get(c)!.push([p, n]);
    }
  }
  for (let b = 0; b < B; b++) {
    const R = new Float64Array(P * N * J);
    for (let p = 0; p < P; p++) {
      for (let n = 0; n < N; n++) {
        const parents = slotsOf.get(childOf(s.geometry, p, n, N))!.length * J;
        for (let j = 0; j < J; j++) R[(p * N + n) * J + j] = 1 / parents;
      }
    }
    const mu = new Float64Array(P * J * D);
    const var_ = new Float64Array(P * J * D);
    const logA = new Float64Array(P * J);
    for (let it = 0; it < s.iterations; it++) {
      // M-step, one parent at a time.
      for (let p = 0; p < P; p++) {
        for (let j = 0; j < J; j++) {
          let rSum = 0;
          for (let n = 0; n < N; n++) rSum += R[(p * N + n) * J + j] * acts[(b * P + p) * N + n];
          let costSum = 0;
          for (let h = 0; h < D; h++) {
            let m = 0;
            for (let n = 0; n < N; n++) m += (R[(p * N + n) * J + j] * acts[(b * P + p) * N + n] * V(b, p, n, j, h)) / (rSum + s.meanEps);
            let v = 0;
            for (let n = 0; n < N; n++) v += (R[(p * N + n) * J + j] * acts[(b * P + p) * N + n] * (V(b, p, n, j, h) - m) ** 2) / (rSum + s.meanEps);
            v += s.varianceFloor;
            mu[(p * J + j) * D + h] = m;
            var_[(p * J + j) * D + h] = v;
            costSum += betaU[j] + 0.5 * Math.log(v);
          }
          const cost = costSum * rSum * s.costScale;
          const z = s.logitBound * Math.tanh((s.lambdas[it] * (betaA[j] - cost)) / s.logitBound);
          activations[(b * P + p) * J + j] = 1 / (1 + Math.exp(-z));
          logA[p * J + j] = z >= 0 ? -Math.log1p(Math.exp(-z)) : z - Math.log1p(Math.exp(z));
        }
      }
      if (it === s.iterations - 1) break;
      // E-step, one child at a time, over all of its parents.
      for (const slots of slotsOf.values()) {
        const logits: number[] = [];
        for (const [p, n] of slots) {
          for (let j = 0; j < J; j++) {
            let lp = logA[p * J + j];
            for (let h = 0; h < D; h++) {
              const vv = var_[(p * J + j) * D + h];
              lp -= (V(b, p, n, j, h) - mu[(p * J + j) * D + h]) ** 2 / (2 * vv) + 0.5 * Math.log(vv);
            }
            logits.push(lp);
          }
        }
        const mx = Math.max(...logits);
        let total = 0;
        for (const l of logits) total += Math.exp(l - mx);
        let k = 0;
        for (const [p, n] of slots) for (let j = 0; j < J; j++) R[(p * N + n) * J + j] = Math.exp(logits[k++] - mx) / total;
      }
    }
    poses.set(mu, b * P * J * D);
    routing.set(R, b * P * N * J);
  }
  return { poses, activations, routing };
}
