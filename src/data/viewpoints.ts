/**
 * Familiar and novel viewpoints of MNIST digits, for the generalisation
 * experiment of "Matrix capsules with EM routing" (section 6 trains on some
 * smallNORB azimuths or elevations and tests on the others) carried over to
 * data available here: each digit is rotated about and scaled from its
 * image centre, in 28x28.
 *
 *   familiar        rotation within +-15 degrees, scale 0.9-1.1
 *   novel-rotation  rotation 30-50 degrees either way, familiar scale
 *   novel-scale     familiar rotation, scale 0.6-0.75 or 1.25-1.35
 *
 * Test images get one seeded viewpoint each (the same every time); training
 * images a fresh random familiar viewpoint every time they are drawn.
 */
import { Rng } from '../util/rng.js';
import { inverseAffine, warpAffine } from './affine.js';
import type { ImageDataset } from './dataset.js';

export type ViewpointSet = 'familiar' | 'novel-rotation' | 'novel-scale';

export interface ViewpointDraw {
  /** Degrees, counter-clockwise. */
  rotation: number;
  scale: number;
}

export const FAMILIAR_ROTATION = 15;
export const FAMILIAR_SCALE: [number, number] = [0.9, 1.1];
export const NOVEL_ROTATION: [number, number] = [30, 50];
export const NOVEL_SCALES: [number, number][] = [[0.6, 0.75], [1.25, 1.35]];

export function drawViewpoint(set: ViewpointSet, rng: Rng): ViewpointDraw {
  const familiarRotation = () => rng.uniform(-FAMILIAR_ROTATION, FAMILIAR_ROTATION);
  const familiarScale = () => rng.uniform(FAMILIAR_SCALE[0], FAMILIAR_SCALE[1]);
  switch (set) {
    case 'familiar':
      return { rotation: familiarRotation(), scale: familiarScale() };
    case 'novel-rotation': {
      const r = rng.uniform(NOVEL_ROTATION[0], NOVEL_ROTATION[1]);
      return { rotation: rng.next() < 0.5 ? -r : r, scale: familiarScale() };
    }
    case 'novel-scale': {
      const rotation = familiarRotation();
      const [lo, hi] = NOVEL_SCALES[rng.next() < 0.5 ? 0 : 1];
      return { rotation, scale: rng.uniform(lo, hi) };
    }
  }
}

/** The viewpoint test image i gets (independent of every other image). */
export function testViewpoint(set: ViewpointSet, seed: number, i: number): ViewpointDraw {
  return drawViewpoint(set, new Rng((Math.imul(seed, 0x85ebca6b) + i) >>> 0));
}

/** `base` (one-channel images) seen from `set`'s viewpoints. */
export function viewpointDataset(base: ImageDataset, set: ViewpointSet, seed: number, name = `mnist-${set}`): ImageDataset {
  if (base.channels !== 1) throw new Error(`${base.name}: viewpoints need one-channel images`);
  const { width: w, height: h } = base;
  const per = w * h;
  const render = (i: number, dst: Float32Array, offset: number, rng?: Rng) => {
    const v = rng ? drawViewpoint(set, rng) : testViewpoint(set, seed, i);
    const m = inverseAffine({ rotation: v.rotation, shear: 0, scale: v.scale, tx: 0, ty: 0 }, w, h, w, h);
    warpAffine(base.images.subarray(i * per, (i + 1) * per), w, h, m, dst, w, h, offset, 1 / 255);
    for (let k = offset; k < offset + per; k++) dst[k] = Math.min(1, Math.max(0, dst[k]));
  };
  return { ...base, name, images: new Uint8Array(0), render };
}
