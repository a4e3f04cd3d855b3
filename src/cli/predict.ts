/** capsnet predict: class scores (capsule lengths) and the prediction for one image. */
import * as tf from '@tensorflow/tfjs';
import { existsSync, statSync } from 'node:fs';
import { globSync } from 'tinyglobby';
import { readMaybeGzip } from '../data/files.js';
import { decodeRaster, parseImagePreparation, prepareImage, type ImagePreparation } from '../data/imageDecode.js';
import { isImageFile } from '../data/pictureFolder.js';
import { imagesUnder } from '../data/imageFolder.js';
import { parseIdx } from '../data/idx.js';
import { borderMean, mnistPreprocess, resizeArea } from '../data/preprocess.js';
import { isNorbByteMatrix, norbPair, parseNorbMatrix, smallNorbTestInput } from '../data/smallnorb.js';
import type { ClassifierModel } from '../models/model.js';
import { readImage, toGray } from '../util/imageFiles.js';
import { commandSpec, COMMON_FLAGS, UsageError, type ArgsOf } from './args.js';
import { loadModelFromFlags, percent, report, setupBackend } from './common.js';

export const predictSpec = commandSpec({
  name: 'predict',
  summary: 'Predict the class of pictures (PNG, JPEG, WebP, GIF, BMP, PGM; a file, a folder or a glob), or of an image of an IDX or smallNORB dat file.',
  description:
    'A model trained on --data pictures sees each picture prepared exactly as its training images were (the preparation stored in its metadata: ' +
    'resized to its input, gray or colour). A folder or several pictures give one row per picture (path, class, score) as a table, --json or --csv. ' +
    'For other models, images of another size are brought to the model\'s input like MNIST was made (ink scaled into a 20x20 box, centred by mass in 28x28) ' +
    'for one-channel models, or resized otherwise. Dark ink on a light background is inverted automatically. ' +
    'A model trained on smallNORB sees any picture (or a pair of a smallNORB dat file, with --index) as in its test set: ' +
    'downsampled to 48x48, centre-cropped and standardised.',
  positionals: [{ name: 'IMAGE', help: 'picture file, folder of pictures or quoted glob (\'photos/*.jpg\'), or an IDX image file or smallNORB dat file with --index', required: true, variadic: true }],
  flags: [
    COMMON_FLAGS.model,
    COMMON_FLAGS.pretrained,
    { name: 'index', type: 'int', min: 0, help: 'image index within an IDX file or a smallNORB dat file' },
    { name: 'invert', type: 'string', choices: ['auto', 'yes', 'no'], default: 'auto', help: 'invert the image (dark ink on light paper)' },
    { name: 'preprocess', type: 'string', choices: ['auto', 'mnist', 'smallnorb', 'resize', 'none'], default: 'auto', help: 'how to fit the image to the model input (auto: smallnorb for models trained on smallNORB, else mnist for one-channel models)' },
    { name: 'csv', type: 'boolean', help: 'print the rows as CSV (path,class,score)' },
    COMMON_FLAGS.batchSize,
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet predict digit.png --pretrained mnist', 'capsnet predict photos/ --model runs/photos --csv', "capsnet predict 'photos/**/*.jpg' --model runs/photos --json", 'capsnet predict t10k-images-idx3-ubyte --index 7 --model runs/capsnet-small-mnist'],
});

/** The flags that say how a picture or an image of a file becomes the model's input. */
type ImageFlags = Pick<ArgsOf<typeof predictSpec>['flags'], 'preprocess' | 'index' | 'invert'>;

function isIdx(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0 && bytes[1] === 0 && bytes[2] === 0x08;
}

/**
 * Pixels [h*w*c] fitting the model's input: in [0, 1], or standardised for a
 * model trained on smallNORB (`dataset`, from its metadata).
 */
export async function loadInputImage(path: string, model: ClassifierModel, flags: ImageFlags, dataset?: string): Promise<Float32Array> {
  const [h, w, c] = model.inputShape;
  const raw = readMaybeGzip(path);
  const mode = flags.preprocess;
  const norbModel = mode === 'smallnorb' || (mode === 'auto' && typeof dataset === 'string' && dataset.startsWith('smallnorb'));
  if (isNorbByteMatrix(raw)) {
    if (!norbModel) throw new Error(`${path} is a smallNORB dat file, but this model was trained on ${dataset ?? 'another dataset'} (use --preprocess smallnorb to try it anyway)`);
    const index = flags.index;
    if (index === undefined) throw new UsageError(`${path} is a smallNORB dat file: choose a pair with --index N`);
    const pair = norbPair(parseNorbMatrix(raw, path), index, path);
    if (c > 2) throw new Error(`model expects ${c}-channel images; a smallNORB pair has 2`);
    return smallNorbTestInput(pair.planes, pair.height, pair.width, c, h);
  }
  if (isIdx(raw)) {
    const idx = parseIdx(raw, path);
    const index = flags.index;
    if (index === undefined) throw new UsageError(`${path} is an IDX file: choose an image with --index N`);
    const [count, ih, iw, ic = 1] = idx.dims;
    if (idx.dims.length < 3) throw new Error(`${path}: IDX file of rank ${idx.dims.length} holds no images`);
    if (index >= count) throw new Error(`--index ${index} is out of range: ${path} holds ${count} images`);
    if (ih !== h || iw !== w || ic !== c) throw new Error(`model expects ${h}x${w}x${c} images but ${path} has ${ih}x${iw}x${ic}`);
    const per = ih * iw * ic;
    return Float32Array.from(idx.data.subarray(index * per, (index + 1) * per) as Uint8Array, (v) => v / 255);
  }
  if (flags.index !== undefined) throw new UsageError('--index applies to IDX files only');
  // PNG and PGM through the readers the shipped models were checked with; every other format through the picture decoder.
  const isPng = raw.length >= 4 && raw[0] === 0x89 && raw[1] === 0x50;
  const isPgm = raw.length >= 2 && raw[0] === 0x50 && (raw[1] === 0x32 || raw[1] === 0x35);
  const img = isPng || isPgm ? readImage(path) : await decodeRaster(raw, path).catch(() => {
    throw new Error(`${path}: not a PNG or PGM image, nor a JPEG, WebP, GIF or BMP picture that can be decoded`);
  });
  if (norbModel) {
    // Each channel of the picture as one camera's plane, as smallNORB stores them.
    const src = c === 1 ? toGray(img) : img.channels === c ? img.data : null;
    if (!src) throw new Error(`model expects ${c}-channel images, ${path} has ${img.channels}`);
    const n = img.width * img.height;
    const planes = new Uint8Array(c * n);
    for (let k = 0; k < c; k++) for (let i = 0; i < n; i++) planes[k * n + i] = Math.round(255 * src[i * c + k]);
    return smallNorbTestInput(planes, img.height, img.width, c, h);
  }
  const invertFlag = flags.invert;
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

/** The pictures that the IMAGE arguments name: files, every picture under a folder, or the matches of a glob. */
export function expandInputs(args: string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    if (existsSync(a)) {
      if (statSync(a).isDirectory()) {
        const found = imagesUnder(a);
        if (found.length === 0) throw new Error(`${a}: no pictures (PNG, JPEG, WebP, GIF or BMP) in this folder`);
        out.push(...found);
      } else out.push(a);
    } else if (/[*?[{]/.test(a)) {
      const found = globSync(a, { onlyFiles: true }).filter(isImageFile).sort();
      if (found.length === 0) throw new Error(`${a}: no pictures match`);
      out.push(...found);
    } else {
      throw new Error(`image not found: ${a}`);
    }
  }
  return out;
}

interface Row {
  path: string;
  prediction: number;
  className: string;
  score: number;
  scores: number[];
}

function csvField(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export async function runPredict({ flags, positionals }: ArgsOf<typeof predictSpec>): Promise<number> {
  await setupBackend(flags);
  const { model, dir, json } = loadModelFromFlags(flags);
  const [h, w, c] = model.inputShape;
  const prep: ImagePreparation | undefined = json.metadata?.preparation !== undefined ? parseImagePreparation(json.metadata.preparation, dir) : undefined;
  if (prep && (prep.height !== h || prep.width !== w || prep.channels !== c)) throw new Error(`${dir}: its preparation (${prep.height}x${prep.width}x${prep.channels}) does not match its input ${h}x${w}x${c}`);
  const paths = positionals.length === 1 && !prep && existsSync(positionals[0]) && statSync(positionals[0]).isFile() ? positionals : expandInputs(positionals);
  const names = (json.metadata?.classNames as string[] | undefined) ?? Array.from({ length: model.numClasses }, (_, i) => String(i));
  const scoreName = model.scoreName;
  // One score, named by the model ('capsule length', 'probability', 'activation').
  const oneScore = model.inspection.scores.name;
  const per = h * w * c;
  const rows: Row[] = [];
  const batchSize = flags['batch-size'];
  for (let s = 0; s < paths.length; s += batchSize) {
    const part = paths.slice(s, s + batchSize);
    const x = new Float32Array(part.length * per);
    for (let k = 0; k < part.length; k++) {
      const pixels = prep
        ? Float32Array.from(await prepareImage(readMaybeGzip(part[k]), part[k], prep), (v) => v / 255)
        : await loadInputImage(part[k], model, flags, json.metadata?.dataset as string | undefined);
      x.set(pixels, k * per);
    }
    const scores = tf.tidy(() => model.forward(tf.tensor4d(x, [part.length, h, w, c]), { decode: 'none' }).scores.dataSync() as Float32Array);
    for (let k = 0; k < part.length; k++) {
      const row = Array.from(scores.subarray(k * model.numClasses, (k + 1) * model.numClasses));
      let pred = 0;
      for (let j = 1; j < row.length; j++) if (row[j] > row[pred]) pred = j;
      rows.push({ path: part[k], prediction: pred, className: names[pred], score: row[pred], scores: row });
    }
  }
  model.dispose();
  if (flags.csv) {
    process.stdout.write(['path,class,score', ...rows.map((r) => `${csvField(r.path)},${csvField(r.className)},${r.score.toFixed(4)}`)].join('\n') + '\n');
    return 0;
  }
  if (rows.length === 1 && paths.length === 1 && positionals.length === 1 && !statSync(positionals[0]).isDirectory()) {
    const r = rows[0];
    report(flags, { image: r.path, model: dir, prediction: r.prediction, className: r.className, scores: r.scores, scoreName }, () =>
      [
        `${scoreName}:`,
        ...r.scores.map((s, j) => `  ${names[j].padEnd(12)} ${s.toFixed(4)}  ${'#'.repeat(Math.round(s * 40))}${j === r.prediction ? '  <' : ''}`),
        `prediction: ${r.className} (${oneScore} ${r.score.toFixed(4)}, ${percent(r.score, 1)})`,
      ].join('\n'),
    );
    return 0;
  }
  report(flags, { model: dir, scoreName, classNames: names, predictions: rows }, () => {
    const pw = Math.max(4, ...rows.map((r) => r.path.length));
    const cw = Math.max(5, ...rows.map((r) => r.className.length));
    return [`${'path'.padEnd(pw)}  ${'class'.padEnd(cw)}  score`, ...rows.map((r) => `${r.path.padEnd(pw)}  ${r.className.padEnd(cw)}  ${r.score.toFixed(4)}`)].join('\n');
  });
  return 0;
}
