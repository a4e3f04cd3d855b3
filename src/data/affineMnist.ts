/**
 * MNIST on a larger canvas for the affine-robustness experiment (section 5.2
 * of "Dynamic Routing Between Capsules"): training digits placed at random
 * positions on a 40x40 black canvas (a fresh position each time a digit is
 * seen), a plain test set placed the same way with seeded positions, and a
 * seeded affine test set in the spirit of affNIST: rotation up to +-20
 * degrees, shear up to +-0.2, scale 0.8-1.2, translation anywhere the digit
 * stays on the canvas.
 */
import { Rng } from '../util/rng.js';
import { inkBox, inverseAffine, warpAffine, type AffineParams, type AffineRanges } from './affine.js';
import type { ImageDataset } from './dataset.js';

export interface PlacedMnistOptions {
  canvas?: number;
  seed: number;
  /** Random affine distortion before placement (none: translation only). */
  affine?: AffineRanges;
  name?: string;
}

export const AFFNIST_LIKE_RANGES: AffineRanges = { rotation: 20, shear: 0.2, scaleMin: 0.8, scaleMax: 1.2 };

/** Per-example Rng for the deterministic (test-time) draw of example i. */
function exampleRng(seed: number, i: number): Rng {
  return new Rng((Math.imul(seed, 0x9e3779b1) + i) >>> 0);
}

export function placeOnCanvas(base: ImageDataset, options: PlacedMnistOptions): ImageDataset {
  const { canvas = 40, seed, affine } = options;
  if (base.channels !== 1) throw new Error(`${base.name}: placement needs one-channel images`);
  if (canvas < base.width || canvas < base.height) throw new Error(`canvas ${canvas} is smaller than ${base.width}x${base.height}`);
  const per = base.height * base.width;
  const tmp = new Float32Array(canvas * canvas);
  const render = (i: number, dst: Float32Array, offset: number, rng?: Rng) => {
    const r = rng ?? exampleRng(seed, i);
    const src = base.images.subarray(i * per, (i + 1) * per);
    const p: AffineParams = affine
      ? { rotation: r.uniform(-affine.rotation, affine.rotation), shear: r.uniform(-affine.shear, affine.shear), scale: r.uniform(affine.scaleMin, affine.scaleMax), tx: 0, ty: 0 }
      : { rotation: 0, shear: 0, scale: 1, tx: 0, ty: 0 };
    // Warp into the canvas centre, then translate so that the ink stays inside.
    warpAffine(src, base.width, base.height, inverseAffine(p, base.width, base.height, canvas, canvas), tmp, canvas, canvas, 0, 1 / 255);
    const box = inkBox(tmp, canvas, canvas, 0.05) ?? [0, 0, canvas - 1, canvas - 1];
    const dx = r.int(-box[0], canvas - 1 - box[2]);
    const dy = r.int(-box[1], canvas - 1 - box[3]);
    dst.fill(0, offset, offset + canvas * canvas);
    for (let y = 0; y < canvas; y++) {
      const ty = y + dy;
      if (ty < 0 || ty >= canvas) continue;
      for (let x = 0; x < canvas; x++) {
        const tx = x + dx;
        if (tx < 0 || tx >= canvas) continue;
        dst[offset + ty * canvas + tx] = Math.min(1, Math.max(0, tmp[y * canvas + x]));
      }
    }
  };
  return {
    ...base,
    name: options.name ?? `${base.name} on ${canvas}x${canvas}${affine ? ' (affine)' : ''}`,
    images: new Uint8Array(0),
    render,
    height: canvas,
    width: canvas,
  };
}
