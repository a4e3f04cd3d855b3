/**
 * The model's side of the views, run in the worker: an image of the page
 * made into the model's input, one forward pass read out part by part (the
 * parts the model's inspection layout declares), the decoder alone, and the
 * first convolution's kernels. What to show comes from the model's
 * inspection layout, never from which architecture it is.
 */
import * as tf from '@tensorflow/tfjs';
import { resizeArea, type CapsuleDecoder, type ClassifierModel } from '../../index.js';
import type { Analysis, InputImage } from './protocol.js';

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

async function read(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

/**
 * The model's input for `n` images of the page. An image of the model's own
 * shape (a test image of its dataset, an upload prepared as its training
 * pictures were) goes in as it is. A gray image of another size (a drawn
 * digit, an MNIST test image, 28x28) is centred in a larger frame (as MNIST
 * is padded to 32x32), or shrunk by area averaging into a smaller one, and
 * copied to every channel.
 */
export function prepareInput(model: ClassifierModel, img: InputImage, n = 1): Float32Array {
  const [h, w, c] = model.inputShape;
  if (img.height === h && img.width === w && img.channels === c) return img.data;
  if (img.channels !== 1) throw new Error(`an image of ${img.height}x${img.width}x${img.channels} does not fit this model's ${h}x${w}x${c} input`);
  const per = img.height * img.width;
  const out = new Float32Array(n * h * w * c);
  for (let k = 0; k < n; k++) {
    let px = img.data.subarray(k * per, (k + 1) * per) as Float32Array;
    let iw = img.width;
    let ih = img.height;
    if (ih > h || iw > w) {
      const s = Math.min(h / ih, w / iw);
      const dw = Math.max(1, Math.floor(iw * s));
      const dh = Math.max(1, Math.floor(ih * s));
      px = resizeArea(px, iw, ih, dw, dh);
      iw = dw;
      ih = dh;
    }
    const oy = Math.floor((h - ih) / 2);
    const ox = Math.floor((w - iw) / 2);
    for (let y = 0; y < ih; y++) {
      for (let x = 0; x < iw; x++) {
        const v = px[y * iw + x];
        const base = ((k * h + y + oy) * w + x + ox) * c;
        for (let ch = 0; ch < c; ch++) out[base + ch] = v;
      }
    }
  }
  return out;
}

/** Run the whole network on one image (values in [0, 1]) and read every part it shows. */
export async function analyze(model: ClassifierModel, img: InputImage): Promise<Analysis> {
  const t0 = performance.now();
  const [h, w, c] = model.inputShape;
  const modelInput = prepareInput(model, img);
  const x = tf.tensor4d(modelInput, [1, h, w, c]);
  const parts = model.inspect(x);
  x.dispose();
  const held: tf.Tensor[] = [];
  const take = (t: tf.Tensor): Promise<Float32Array> => {
    held.push(t);
    return read(t);
  };
  const takeAll = (ts: tf.Tensor[]): Promise<Float32Array[]> => Promise.all(ts.map(take));
  try {
    const scores = await take(parts.scores);
    const r = parts.routing;
    return {
      input: img.data,
      modelInput,
      scores,
      prediction: argmax(scores),
      featureMaps: parts.featureMaps ? await take(parts.featureMaps) : null,
      primaryCapsules: parts.primaryCapsules ? { vectors: await take(parts.primaryCapsules.vectors), lengths: await take(parts.primaryCapsules.lengths) } : null,
      capsuleLayers: await Promise.all(
        (parts.capsuleLayers ?? []).map(async (l) => ({ name: l.name, h: l.activations.shape[1], w: l.activations.shape[2], types: l.activations.shape[3], data: await take(l.activations) })),
      ),
      routing: r ? { coefficients: await takeAll(r.coefficients), senderWeights: await take(r.senderWeights), scores: r.scores ? await takeAll(r.scores) : null } : null,
      classCapsules: parts.classCapsules ? await take(parts.classCapsules) : null,
      ms: performance.now() - t0,
    };
  } finally {
    // A tensor may serve two parts (CapsNet's primary lengths weight its routing); disposing twice is harmless.
    tf.dispose(held);
  }
}

function decoderOf(model: ClassifierModel): CapsuleDecoder {
  const d = model.decoder;
  if (!d) throw new Error('this model has no decoder');
  return d;
}

/** The decoder alone on n capsule vectors [n * dim], each placed in class `cls`. */
export async function decode(model: ClassifierModel, vectors: Float32Array, n: number, cls: number): Promise<Float32Array> {
  const dim = vectors.length / n;
  const t = tf.tidy(() => decoderOf(model).decodeCapsule(tf.tensor2d(vectors, [n, dim]), tf.fill([n], cls, 'int32') as tf.Tensor1D));
  const data = await read(t);
  t.dispose();
  return data;
}

/** The first convolution's kernels [k, k, inChannels, filters], when the model shows its maps. */
export async function conv1Kernels(model: ClassifierModel): Promise<{ data: Float32Array; k: number; inChannels: number; filters: number } | null> {
  const maps = model.inspection.featureMaps;
  const p = maps && model.params.find((q) => q.name === `${maps.layer}/kernel`);
  if (!p || p.value.rank !== 4) return null;
  const [k, , inChannels, filters] = p.value.shape;
  return { data: await read(p.value), k, inChannels, filters };
}

/**
 * Scores for a batch of n images (for checking against Node): each of the
 * model's own shape, or 28x28 gray (prepared as the page prepares them).
 */
export async function scores(model: ClassifierModel, images: Float32Array, n: number): Promise<Float32Array> {
  const [h, w, c] = model.inputShape;
  const own = images.length === n * h * w * c;
  const batch = own ? images : prepareInput(model, { data: images, height: 28, width: 28, channels: 1 }, n);
  const out = tf.tidy(() => model.forward(tf.tensor4d(batch, [n, h, w, c]), { decode: 'none' }).scores);
  const data = await read(out);
  out.dispose();
  return data;
}
