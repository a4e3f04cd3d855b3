/**
 * Pictures decoded by the browser, as the page (an upload) and the worker (a
 * folder of training pictures) both need them: a bitmap's pixels drawn at a
 * size over a background, and those pixels prepared as a model's training
 * pictures were (ImagePreparation: colour kept, or the gray of the training
 * decoder). Nothing here touches the page's document when it runs in the
 * worker: drawing goes through an OffscreenCanvas there.
 */
import type { ImagePreparation } from '../../data/preparation.js';

/** A canvas of w x h: the page's own, or an OffscreenCanvas in a worker. */
function canvas2d(w: number, h: number): CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D {
  if (typeof document === 'undefined') return new OffscreenCanvas(w, h).getContext('2d', { willReadFrequently: true })!;
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return c.getContext('2d', { willReadFrequently: true })!;
}

/**
 * The RGBA pixels of `bitmap` drawn at w x h over a background (what shows
 * through transparency); the bitmap is closed. highQuality asks the browser
 * for its best resampling, as a training decoder's resize would be.
 */
export function drawBitmap(bitmap: ImageBitmap, w: number, h: number, background: string, highQuality: boolean): Uint8ClampedArray {
  const ctx = canvas2d(w, h);
  ctx.fillStyle = background;
  ctx.fillRect(0, 0, w, h);
  if (highQuality) {
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = 'high';
  }
  ctx.drawImage(bitmap, 0, 0, w, h);
  bitmap.close();
  return ctx.getImageData(0, 0, w, h).data;
}

/** sRGB component (0-255) to linear light. */
function linear(v: number): number {
  const x = v / 255;
  return x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
}

/** Linear light to an sRGB component in [0, 1]. */
function encodeSrgb(y: number): number {
  return y <= 0.0031308 ? 12.92 * y : 1.055 * y ** (1 / 2.4) - 0.055;
}

/**
 * RGBA pixels (already composited on black and at the model's size) as the
 * bytes of a prepared picture, height x width x channels: colour as it is,
 * or gray the way the training decoder makes it (libvips' b-w: the luminance
 * of linear light, Rec. 709 weights, encoded back to sRGB).
 */
export function preparedBytes(rgba: Uint8ClampedArray, prep: Pick<ImagePreparation, 'height' | 'width' | 'channels'>): Uint8Array {
  const n = prep.width * prep.height;
  const out = new Uint8Array(n * prep.channels);
  for (let i = 0; i < n; i++) {
    if (prep.channels === 3) for (let k = 0; k < 3; k++) out[3 * i + k] = rgba[4 * i + k];
    else out[i] = Math.round(255 * encodeSrgb(0.2126 * linear(rgba[4 * i]) + 0.7152 * linear(rgba[4 * i + 1]) + 0.0722 * linear(rgba[4 * i + 2])));
  }
  return out;
}
