/**
 * The geometry of EM routing in a convolutional capsule layer ("Matrix
 * capsules with EM routing", section 2): which child capsule fills each
 * parent's window slots, and the unfold (children to slots) and fold (slots
 * back to children) between them. With overlapping windows one child fills
 * several slots; the E-step normalises its assignments over every parent
 * that receives it (normalizeOverParents).
 */
import * as tf from '@tensorflow/tfjs';
import { stopGradient } from '../backend/fused.js';
import type { EmChildGeometry } from '../backend/kernelTable.js';

/** Fill of child slots no window covers, when taking a maximum. */
export const NEG_BIG = -1e30;

/**
 * Where the children of a convolutional capsule layer sit: a grid of
 * inHeight x inWidth positions with inTypes capsule types, seen by parents on
 * an outHeight x outWidth grid through kernel x kernel windows with `stride`.
 * Only the part of the child grid the windows cover matters. The native EM
 * kernels take the same record (declared with them in
 * src/backend/kernelTable.ts).
 */
export interface EmGeometry extends EmChildGeometry {}

/** Height and width of the child grid the windows cover. */
export function coveredSize(g: EmGeometry): [number, number] {
  return [(g.outHeight - 1) * g.stride + g.kernel, (g.outWidth - 1) * g.stride + g.kernel];
}

export function checkGeometry(g: EmGeometry): void {
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
export function parentCounts(g: EmGeometry): Float32Array {
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
