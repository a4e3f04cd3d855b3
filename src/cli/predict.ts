/** capsnet predict: class scores (capsule lengths) and the prediction for one image. */
import * as tf from '@tensorflow/tfjs';
import { readMaybeGzip } from '../data/files.js';
import { parseIdx } from '../data/idx.js';
import { borderMean, mnistPreprocess, resizeArea } from '../data/preprocess.js';
import { isNorbByteMatrix, norbPair, parseNorbMatrix, smallNorbTestInput } from '../data/smallnorb.js';
import type { ClassifierModel } from '../models/model.js';
import { readImage, toGray } from '../util/imageFiles.js';
import { COMMON_FLAGS, UsageError, type CommandSpec, type ParsedArgs } from './args.js';
import { loadModelFromFlags, percent, report, setupBackend } from './common.js';

export const predictSpec: CommandSpec = {
  name: 'predict',
  summary: 'Predict the class of one image: PNG, PGM, or an image of an IDX or smallNORB dat file.',
  description:
    'Images of another size are brought to the model\'s input like MNIST was made (ink scaled into a 20x20 box, centred by mass in 28x28) ' +
    'for one-channel models, or resized otherwise. Dark ink on a light background is inverted automatically. ' +
    'A model trained on smallNORB sees any picture (or a pair of a smallNORB dat file, with --index) as in its test set: ' +
    'downsampled to 48x48, centre-cropped and standardised.',
  positionals: [{ name: 'IMAGE', help: 'PNG or PGM file, or an IDX image file or smallNORB dat file with --index', required: true }],
  flags: [
    COMMON_FLAGS.model,
    COMMON_FLAGS.pretrained,
    { name: 'index', type: 'int', min: 0, help: 'image index within an IDX file or a smallNORB dat file' },
    { name: 'invert', type: 'string', choices: ['auto', 'yes', 'no'], default: 'auto', help: 'invert the image (dark ink on light paper)' },
    { name: 'preprocess', type: 'string', choices: ['auto', 'mnist', 'smallnorb', 'resize', 'none'], default: 'auto', help: 'how to fit the image to the model input (auto: smallnorb for models trained on smallNORB, else mnist for one-channel models)' },
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet predict digit.png --pretrained mnist', 'capsnet predict t10k-images-idx3-ubyte --index 7 --model runs/capsnet-small-mnist'],
};

function isIdx(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0 && bytes[1] === 0 && bytes[2] === 0x08;
}

/**
 * Pixels [h*w*c] fitting the model's input: in [0, 1], or standardised for a
 * model trained on smallNORB (`dataset`, from its metadata).
 */
export function loadInputImage(path: string, model: ClassifierModel, flags: Record<string, unknown>, dataset?: string): Float32Array {
  const [h, w, c] = model.inputShape;
  const raw = readMaybeGzip(path);
  const mode = flags.preprocess as string;
  const norbModel = mode === 'smallnorb' || (mode === 'auto' && typeof dataset === 'string' && dataset.startsWith('smallnorb'));
  if (isNorbByteMatrix(raw)) {
    if (!norbModel) throw new Error(`${path} is a smallNORB dat file, but this model was trained on ${dataset ?? 'another dataset'} (use --preprocess smallnorb to try it anyway)`);
    const index = flags.index as number | undefined;
    if (index === undefined) throw new UsageError(`${path} is a smallNORB dat file: choose a pair with --index N`);
    const pair = norbPair(parseNorbMatrix(raw, path), index, path);
    if (c > 2) throw new Error(`model expects ${c}-channel images; a smallNORB pair has 2`);
    return smallNorbTestInput(pair.planes, pair.height, pair.width, c, h);
  }
  if (isIdx(raw)) {
    const idx = parseIdx(raw, path);
    const index = flags.index as number | undefined;
    if (index === undefined) throw new UsageError(`${path} is an IDX file: choose an image with --index N`);
    const [count, ih, iw, ic = 1] = idx.dims;
    if (idx.dims.length < 3) throw new Error(`${path}: IDX file of rank ${idx.dims.length} holds no images`);
    if (index >= count) throw new Error(`--index ${index} is out of range: ${path} holds ${count} images`);
    if (ih !== h || iw !== w || ic !== c) throw new Error(`model expects ${h}x${w}x${c} images but ${path} has ${ih}x${iw}x${ic}`);
    const per = ih * iw * ic;
    return Float32Array.from(idx.data.subarray(index * per, (index + 1) * per) as Uint8Array, (v) => v / 255);
  }
  if (flags.index !== undefined) throw new UsageError('--index applies to IDX files only');
  const img = readImage(path);
  if (norbModel) {
    // Each channel of the picture as one camera's plane, as smallNORB stores them.
    const src = c === 1 ? toGray(img) : img.channels === c ? img.data : null;
    if (!src) throw new Error(`model expects ${c}-channel images, ${path} has ${img.channels}`);
    const n = img.width * img.height;
    const planes = new Uint8Array(c * n);
    for (let k = 0; k < c; k++) for (let i = 0; i < n; i++) planes[k * n + i] = Math.round(255 * src[i * c + k]);
    return smallNorbTestInput(planes, img.height, img.width, c, h);
  }
  const invertFlag = flags.invert as string;
  if (c === 1) {
    const gray = toGray(img);
    const invert = invertFlag === 'auto' ? borderMean(gray, img.width, img.height) > 0.5 : invertFlag === 'yes';
    if (mode === 'mnist' || (mode === 'auto' && (img.width !== w || img.height !== h))) {
      return mnistPreprocess(gray, img.width, img.height, { invert, size: w });
    }
    const g = invert ? gray.map((v) => 1 - v) : gray;
    if (img.width === w && img.height === h) return g;
    if (mode === 'none') throw new Error(`image is ${img.width}x${img.height}, model expects ${w}x${h} (use --preprocess resize)`);
    return resizeArea(g, img.width, img.height, w, h);
  }
  if (img.channels !== c) throw new Error(`model expects ${c}-channel images, ${path} has ${img.channels}`);
  if (img.width === w && img.height === h) return img.data;
  if (mode === 'none') throw new Error(`image is ${img.width}x${img.height}, model expects ${w}x${h}`);
  const out = new Float32Array(h * w * c);
  for (let k = 0; k < c; k++) {
    const plane = new Float32Array(img.width * img.height);
    for (let i = 0; i < plane.length; i++) plane[i] = img.data[i * c + k];
    const r = resizeArea(plane, img.width, img.height, w, h);
    for (let i = 0; i < r.length; i++) out[i * c + k] = r[i];
  }
  return out;
}

export async function runPredict({ flags, positionals }: ParsedArgs): Promise<number> {
  await setupBackend(flags);
  const { model, dir, json } = loadModelFromFlags(flags);
  const pixels = loadInputImage(positionals[0], model, flags, json.metadata?.dataset as string | undefined);
  const [h, w, c] = model.inputShape;
  const scores = tf.tidy(() => model.forward(tf.tensor4d(pixels, [1, h, w, c]), { decode: 'none' }).scores.dataSync() as Float32Array);
  let pred = 0;
  for (let j = 1; j < scores.length; j++) if (scores[j] > scores[pred]) pred = j;
  const names = (json.metadata?.classNames as string[] | undefined) ?? Array.from(scores, (_, i) => String(i));
  const scoreName = model.scoreName;
  report(flags, { image: positionals[0], model: dir, prediction: pred, className: names[pred], scores: Array.from(scores), scoreName }, () =>
    [
      `${scoreName}:`,
      ...Array.from(scores, (s, j) => `  ${names[j].padEnd(12)} ${s.toFixed(4)}  ${'#'.repeat(Math.round(s * 40))}${j === pred ? '  <' : ''}`),
      `prediction: ${names[pred]} (${scoreName === 'capsule lengths' ? 'length' : 'score'} ${scores[pred].toFixed(4)}, ${percent(scores[pred], 1)})`,
    ].join('\n'),
  );
  model.dispose();
  return 0;
}
