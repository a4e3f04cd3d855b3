/**
 * Affine warps of small grayscale images (bilinear sampling, zero outside),
 * for the affine-robustness and novel-viewpoint experiments.
 */

/** A 2x3 matrix mapping destination pixel centres to source coordinates. */
export type Affine = [number, number, number, number, number, number];

export interface AffineParams {
  /** Rotation in degrees (counter-clockwise). */
  rotation: number;
  /** Horizontal shear factor. */
  shear: number;
  /** Isotropic scale. */
  scale: number;
  /** Translation of the centre in destination pixels. */
  tx: number;
  ty: number;
}

/**
 * The inverse map for: scale, shear and rotate about the source centre, then
 * put that centre at the destination centre plus (tx, ty).
 */
export function inverseAffine(p: AffineParams, srcW: number, srcH: number, dstW: number, dstH: number): Affine {
  const t = (p.rotation * Math.PI) / 180;
  const c = Math.cos(t);
  const s = Math.sin(t);
  // Forward linear part A = R * Sh * S, with Sh = [[1, shear], [0, 1]].
  const a = p.scale * c;
  const b = p.scale * (c * p.shear - s);
  const d = p.scale * s;
  const e = p.scale * (s * p.shear + c);
  const det = a * e - b * d;
  const ia = e / det;
  const ib = -b / det;
  const id = -d / det;
  const ie = a / det;
  const cxd = dstW / 2 + p.tx;
  const cyd = dstH / 2 + p.ty;
  // src = A^-1 (dst - cd) + cs
  return [ia, ib, srcW / 2 - ia * cxd - ib * cyd, id, ie, srcH / 2 - id * cxd - ie * cyd];
}

/** Sample `src` (srcW x srcH, values in any range) through the inverse map `m` into dst (dstW x dstH) at `offset`. */
export function warpAffine(src: ArrayLike<number>, srcW: number, srcH: number, m: Affine, dst: Float32Array, dstW: number, dstH: number, offset = 0, scale = 1): void {
  for (let y = 0; y < dstH; y++) {
    for (let x = 0; x < dstW; x++) {
      const px = x + 0.5;
      const py = y + 0.5;
      const sx = m[0] * px + m[1] * py + m[2] - 0.5;
      const sy = m[3] * px + m[4] * py + m[5] - 0.5;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      let v = 0;
      for (let k = 0; k < 4; k++) {
        const xx = x0 + (k & 1);
        const yy = y0 + (k >> 1);
        if (xx < 0 || yy < 0 || xx >= srcW || yy >= srcH) continue;
        v += src[yy * srcW + xx] * ((k & 1) ? fx : 1 - fx) * ((k >> 1) ? fy : 1 - fy);
      }
      dst[offset + y * dstW + x] = v * scale;
    }
  }
}

export interface AffineRanges {
  rotation: number;
  shear: number;
  scaleMin: number;
  scaleMax: number;
}

/** Bounding box of pixels above `threshold`: [minX, minY, maxX, maxY], or null when empty. */
export function inkBox(img: ArrayLike<number>, w: number, h: number, threshold: number): [number, number, number, number] | null {
  let minX = w;
  let minY = h;
  let maxX = -1;
  let maxY = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (img[y * w + x] > threshold) {
        if (x < minX) minX = x;
        if (x > maxX) maxX = x;
        if (y < minY) minY = y;
        if (y > maxY) maxY = y;
      }
    }
  }
  return maxX < 0 ? null : [minX, minY, maxX, maxY];
}
