/**
 * Turning an arbitrary grayscale picture of a digit into an MNIST-like input,
 * the way MNIST itself was made: the ink's bounding box is scaled to fit a
 * 20x20 box (area averaging, which anti-aliases), and placed in a 28x28
 * frame so that its centre of mass is at the centre. Ink is bright on dark.
 */
import { inkBox } from './affine.js';

/** Resample a grayscale image with area averaging (box filter). */
export function resizeArea(src: Float32Array, sw: number, sh: number, dw: number, dh: number): Float32Array {
  const out = new Float32Array(dw * dh);
  const sx = sw / dw;
  const sy = sh / dh;
  for (let y = 0; y < dh; y++) {
    const y0 = y * sy;
    const y1 = y0 + sy;
    for (let x = 0; x < dw; x++) {
      const x0 = x * sx;
      const x1 = x0 + sx;
      let sum = 0;
      let area = 0;
      for (let yy = Math.floor(y0); yy < Math.min(sh, Math.ceil(y1)); yy++) {
        const wy = Math.min(y1, yy + 1) - Math.max(y0, yy);
        if (wy <= 0) continue;
        for (let xx = Math.floor(x0); xx < Math.min(sw, Math.ceil(x1)); xx++) {
          const wx = Math.min(x1, xx + 1) - Math.max(x0, xx);
          if (wx <= 0) continue;
          sum += src[yy * sw + xx] * wx * wy;
          area += wx * wy;
        }
      }
      out[y * dw + x] = area > 0 ? sum / area : 0;
    }
  }
  return out;
}

/** Mean of the outermost pixels: a light border means dark ink on a light background. */
export function borderMean(src: Float32Array, w: number, h: number): number {
  let sum = 0;
  let n = 0;
  for (let x = 0; x < w; x++) {
    sum += src[x] + src[(h - 1) * w + x];
    n += 2;
  }
  for (let y = 1; y < h - 1; y++) {
    sum += src[y * w] + src[y * w + w - 1];
    n += 2;
  }
  return n ? sum / n : 0;
}

export interface MnistPreprocessOptions {
  /** Invert (dark ink on light paper): true, false, or 'auto' (by the border). */
  invert?: boolean | 'auto';
  size?: number;
  box?: number;
}

/**
 * Grayscale pixels in [0, 1] (w x h) to a size x size MNIST-style image.
 * Returns zeros when there is no ink.
 */
export function mnistPreprocess(src: Float32Array, w: number, h: number, options: MnistPreprocessOptions = {}): Float32Array {
  const { invert = 'auto', size = 28, box = 20 } = options;
  const inv = invert === 'auto' ? borderMean(src, w, h) > 0.5 : invert;
  const img = inv ? src.map((v) => 1 - v) : src;
  const out = new Float32Array(size * size);
  const ink = inkBox(img, w, h, 0.1);
  if (!ink) return out;
  const [minX, minY, maxX, maxY] = ink;
  const bw = maxX - minX + 1;
  const bh = maxY - minY + 1;
  const crop = new Float32Array(bw * bh);
  for (let y = 0; y < bh; y++) for (let x = 0; x < bw; x++) crop[y * bw + x] = img[(minY + y) * w + minX + x];
  const scale = box / Math.max(bw, bh);
  const dw = Math.max(1, Math.round(bw * scale));
  const dh = Math.max(1, Math.round(bh * scale));
  const small = resizeArea(crop, bw, bh, dw, dh);
  let mass = 0;
  let cx = 0;
  let cy = 0;
  for (let y = 0; y < dh; y++) {
    for (let x = 0; x < dw; x++) {
      const v = small[y * dw + x];
      mass += v;
      cx += v * (x + 0.5);
      cy += v * (y + 0.5);
    }
  }
  cx = mass > 0 ? cx / mass : dw / 2;
  cy = mass > 0 ? cy / mass : dh / 2;
  const ox = Math.round(size / 2 - cx);
  const oy = Math.round(size / 2 - cy);
  for (let y = 0; y < dh; y++) {
    const ty = y + oy;
    if (ty < 0 || ty >= size) continue;
    for (let x = 0; x < dw; x++) {
      const tx = x + ox;
      if (tx < 0 || tx >= size) continue;
      out[ty * size + tx] = Math.min(1, Math.max(0, small[y * dw + x]));
    }
  }
  return out;
}
