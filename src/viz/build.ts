/**
 * Builds the visualizer into a folder of static files that any static host
 * can serve:
 *
 *   index.html, style.css   the page
 *   app.js                  the page's script (views, drawing, the Train panel), bundled by esbuild
 *   worker.js               its Web Worker: tfjs, its backends and the library, which run
 *                           and train the model off the page's thread
 *   wasm/*.wasm             tfjs's wasm binaries (the fallback without a GPU)
 *   samples.bin, .json      MNIST test images (uint8, 28x28) and their labels
 *                           (`capsnet viz --model` serves a model's own test
 *                           images the same way, under models/custom/)
 *   samples-<set>.bin, .json  the same for every other sample set that is
 *                           installed (Fashion-MNIST), shown with models
 *                           trained on it
 *   train-<set>.json, train-<set>-{train,test}.bin.gz
 *                           the data the Train panel trains on: the first
 *                           TRAIN_IMAGES training and TEST_IMAGES test images
 *                           of MNIST and (when installed) Fashion-MNIST,
 *                           gzipped bytes, the labels in the JSON
 *   models.json             the models the page offers, first one by default
 *                           (models/<id>/, which the server maps to each
 *                           shipped model in pretrained/, so the weights
 *                           exist once), the architectures it can train
 *                           and the packed training sets
 *   models/<id>/            only with --standalone: copies of the shipped
 *                           models, for a static host
 *
 * `node dist/src/viz/build.js [--out DIR] [--standalone]` (npm run
 * build:viz) runs it; the `capsnet viz` command runs it when the output is
 * missing or older than its sources.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'fflate';
import { imageBytes, imageSize, take, type ImageDataset } from '../data/dataset.js';
import { loadFashionMnist } from '../data/fashionMnist.js';
import { loadDataset } from '../data/index.js';
import { loadMnist } from '../data/mnist.js';
import '../models/index.js';
import { listPretrained, PACKAGE_ROOT } from '../models/pretrained.js';
import { architectureNames } from '../models/registry.js';
import { sampleIndices } from './samples.js';

export const APP_DIR = join(PACKAGE_ROOT, 'src', 'viz', 'app');
export const DEFAULT_VIZ_OUT = join(PACKAGE_ROOT, 'dist', 'viz');
/** Written last: its presence means a complete build, its mtime is the build time. */
const STAMP = 'build.json';
export { SAMPLES_PER_CLASS } from './samples.js';

export interface VizModelEntry {
  id: string;
  label: string;
  /** model.json, relative to the page. */
  url: string;
  /** The model's own test images (samples.json and .bin without the extension), relative to the page. */
  samples?: string;
}

/** MultiMNIST test pairs the sample set is chosen from (the first of capsnet eval's, which are generated in the same order). */
const MULTIMNIST_PAIRS = 1000;

/**
 * Test images the page offers as inputs, by the dataset name a model's
 * metadata gives, and the training sets the Train panel offers (`loadTrain`).
 * MNIST is always there; the others when installed.
 */
export const SAMPLE_SETS: Record<string, { title: string; load: () => ImageDataset; loadTrain?: () => ImageDataset }> = {
  mnist: { title: 'MNIST', load: () => loadMnist('test'), loadTrain: () => loadMnist('train') },
  'fashion-mnist': { title: 'Fashion-MNIST', load: () => loadFashionMnist('test'), loadTrain: () => loadFashionMnist('train') },
  multimnist: { title: 'MultiMNIST', load: () => loadDataset('multimnist', 'test', { count: MULTIMNIST_PAIRS }) },
};

/** Images of each packed training set (train-<set>-train.bin.gz): the first of the training split, as --train-limit takes them. */
export const TRAIN_IMAGES = 6000;
/** Images of each packed test set: the first of the test split, as --test-limit takes them. */
export const TEST_IMAGES = 1000;

/**
 * The architectures the Train panel offers, when registered: presets small
 * enough to train in a browser tab, each with a word on what it is.
 */
const TRAINABLE: { arch: string; preset: string; name: string }[] = [
  { arch: 'capsnet', preset: 'small', name: 'Small CapsNet (dynamic routing)' },
  { arch: 'efficient', preset: 'mnist', name: 'Efficient-CapsNet (self-attention routing)' },
  { arch: 'cnn', preset: 'small', name: 'Small CNN (no capsules, for comparison)' },
];

/** The trainable architectures that are registered. (The build makes no tensors: `capsnet viz` runs it without a tfjs backend.) */
export function trainableArchitectures(): { arch: string; preset: string; label: string }[] {
  const registered = new Set(architectureNames());
  return TRAINABLE.filter((t) => registered.has(t.arch)).map((t) => ({ arch: t.arch, preset: t.preset, label: t.name }));
}

/** The files of a sample set: samples.* for MNIST, samples-<set>.* for the others. */
export function sampleFile(set: string): string {
  return set === 'mnist' ? 'samples' : `samples-${set}`;
}

export interface BuildResult {
  outDir: string;
  models: VizModelEntry[];
  bytes: number;
  ms: number;
}

function walk(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

/** Newest modification time of the files a build reads. */
function newestSource(): number {
  const files = [...walk(join(PACKAGE_ROOT, 'src')).filter((f) => f.endsWith('.ts') || f.startsWith(APP_DIR)), join(PACKAGE_ROOT, 'package-lock.json')];
  for (const p of listPretrained()) if (p.available) files.push(join(p.dir, 'model.json'), join(p.dir, 'weights.bin'));
  return Math.max(...files.filter(existsSync).map((f) => statSync(f).mtimeMs));
}

/** True when `outDir` holds a complete build that is newer than every source. */
export function isBuildFresh(outDir = DEFAULT_VIZ_OUT): boolean {
  const stamp = join(outDir, STAMP);
  if (!existsSync(stamp)) return false;
  if (!existsSync(join(PACKAGE_ROOT, 'src'))) return true; // an installed copy without sources: use what is there
  return statSync(stamp).mtimeMs >= newestSource();
}

function resolvePackageFile(spec: string): string {
  return createRequire(import.meta.url).resolve(spec);
}

/** The files of a sample set: its description (JSON) and its images (uint8, height x width x channels each). */
export interface SampleFiles {
  json: string;
  bin: Uint8Array;
}

/** The bytes of image i: stored, or drawn by a generated set (MultiMNIST) from its floats in [0, 1]. */
function sampleBytes(ds: ImageDataset, i: number): Uint8Array {
  if (!ds.render) return imageBytes(ds, i);
  const px = new Float32Array(imageSize(ds));
  ds.render(i, px, 0);
  return Uint8Array.from(px, (v) => Math.round(255 * v));
}

/**
 * Samples: the test images the page offers (sampleIndices). For images of
 * several objects (MultiMNIST's two digits) the class is the first
 * object's, and `objects` and `classes` say what each image holds.
 */
export function pickSamples(ds: ImageDataset, set: string, title: string): SampleFiles {
  const size = imageSize(ds);
  const picked = sampleIndices(ds.labels.subarray(0, ds.count), ds.numClasses);
  const images = new Uint8Array(picked.length * size);
  picked.forEach((i, k) => images.set(sampleBytes(ds, i), k * size));
  const classesOf = (i: number) => Array.from({ length: ds.numClasses }, (_, j) => j).filter((j) => ds.multiLabels![i * ds.numClasses + j]);
  const meta = {
    dataset: set,
    title,
    count: picked.length,
    height: ds.height,
    width: ds.width,
    channels: ds.channels,
    labels: picked.map((i) => ds.labels[i]),
    classNames: ds.classNames ?? Array.from({ length: ds.numClasses }, (_, j) => String(j)),
    indices: picked,
    ...(ds.multiLabels ? { objects: ds.components?.perImage ?? 2, classes: picked.map(classesOf) } : {}),
  };
  return { json: JSON.stringify(meta), bin: images };
}

function writeSamples(outDir: string, set: string, ds: ImageDataset): void {
  const { json, bin } = pickSamples(ds, set, SAMPLE_SETS[set].title);
  writeFileSync(join(outDir, `${sampleFile(set)}.bin`), bin);
  writeFileSync(join(outDir, `${sampleFile(set)}.json`), json);
}

/** Write every sample set that is installed; MNIST must be. Returns the names written. */
function writeSampleSets(outDir: string): string[] {
  const written: string[] = [];
  for (const [set, { load }] of Object.entries(SAMPLE_SETS)) {
    let ds: ImageDataset;
    try {
      ds = load();
    } catch (e) {
      if (set === 'mnist') throw e;
      continue; // not installed: models trained on it fall back to MNIST inputs
    }
    writeSamples(outDir, set, ds);
    written.push(set);
  }
  return written;
}

/**
 * Pack a dataset for the Train panel: the first TRAIN_IMAGES training and
 * TEST_IMAGES test images as gzipped bytes, and a JSON file with the
 * labels, the class names and the image size.
 */
function writeTrainSet(outDir: string, set: string, train: ImageDataset, test: ImageDataset): void {
  const split = (ds: ImageDataset, n: number, part: string) => {
    const t = take(ds, n);
    const file = `train-${set}-${part}.bin.gz`;
    const bytes = new Uint8Array(t.count * imageSize(t));
    for (let i = 0; i < t.count; i++) bytes.set(imageBytes(t, i), i * imageSize(t));
    writeFileSync(join(outDir, file), gzipSync(bytes, { level: 9 }));
    return { file, count: t.count, labels: Array.from(t.labels) };
  };
  const meta = {
    dataset: set,
    title: SAMPLE_SETS[set].title,
    height: train.height,
    width: train.width,
    channels: train.channels,
    classNames: train.classNames ?? Array.from({ length: train.numClasses }, (_, j) => String(j)),
    train: split(train, TRAIN_IMAGES, 'train'),
    test: split(test, TEST_IMAGES, 'test'),
  };
  writeFileSync(join(outDir, `train-${set}.json`), JSON.stringify(meta));
}

/** Pack every sample set that has a training split installed; returns their names and titles. */
function writeTrainSets(outDir: string): { dataset: string; title: string }[] {
  const written: { dataset: string; title: string }[] = [];
  for (const [set, { title, load, loadTrain }] of Object.entries(SAMPLE_SETS)) {
    if (!loadTrain) continue;
    let train: ImageDataset;
    let test: ImageDataset;
    try {
      [train, test] = [loadTrain(), load()];
    } catch {
      continue; // not installed: the panel offers the others
    }
    writeTrainSet(outDir, set, train, test);
    written.push({ dataset: set, title });
  }
  return written;
}

/** Copy a model directory's model.json and weights file into `dst`. */
export function copyModelDir(src: string, dst: string): void {
  mkdirSync(dst, { recursive: true });
  const json = JSON.parse(readFileSync(join(src, 'model.json'), 'utf8')) as { weightsManifest?: { paths?: string[] }[] };
  copyFileSync(join(src, 'model.json'), join(dst, 'model.json'));
  for (const p of json.weightsManifest?.[0]?.paths ?? []) copyFileSync(join(src, p), join(dst, p));
}

/**
 * The shipped pretrained models that are present: the small CapsNet first
 * (the default: the quickest to load and run), then the paper CapsNets, then
 * Efficient-CapsNet, then the EM capsule network; a model not named here comes last.
 */
export function shippedModels(): { entry: VizModelEntry; dir: string }[] {
  const order = ['mnist-small', 'mnist', 'fashion-mnist', 'multimnist', 'efficient-mnist', 'em-mnist'];
  const rank = (name: string) => {
    const i = order.indexOf(name);
    return i < 0 ? order.length : i;
  };
  return listPretrained()
    .filter((p) => p.available)
    .sort((a, b) => rank(a.name) - rank(b.name))
    .map((p) => ({ entry: { id: p.name, label: p.description, url: `models/${p.name}/model.json` }, dir: p.dir }));
}

export async function buildViz(options: { outDir?: string; minify?: boolean; standalone?: boolean } = {}): Promise<BuildResult> {
  const t0 = Date.now();
  const outDir = resolve(options.outDir ?? DEFAULT_VIZ_OUT);
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new Error("building the visualizer needs esbuild, a dev dependency: run 'npm ci' in the capsnet directory");
  }
  // Build beside the output and swap it in at the end, so that a server
  // (or a second build) never sees a half-written folder.
  mkdirSync(dirname(outDir), { recursive: true });
  const tmp = mkdtempSync(`${outDir}.tmp-`);
  try {
    await esbuild.build({
      // The page's script and its worker, which alone holds tfjs and the model.
      entryPoints: { app: join(APP_DIR, 'main.ts'), worker: join(APP_DIR, 'worker.ts') },
      outdir: tmp,
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: ['es2020'],
      minify: options.minify ?? true,
      // No source map: it would be the largest file of the package.
      sourcemap: false,
      legalComments: 'linked',
      logLevel: 'silent',
      // tfjs mentions Node modules behind runtime checks; the browser never loads them.
      external: ['fs', 'path', 'crypto', 'worker_threads', 'os', 'util', 'node-fetch', 'string_decoder'],
      define: { 'process.env.NODE_ENV': '"production"' },
    });
    for (const f of ['index.html', 'style.css']) copyFileSync(join(APP_DIR, f), join(tmp, f));

    mkdirSync(join(tmp, 'wasm'));
    const wasmDist = dirname(resolvePackageFile('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
    for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) copyFileSync(join(wasmDist, f), join(tmp, 'wasm', f));

    const sampleSets = writeSampleSets(tmp);
    const trainSets = writeTrainSets(tmp);

    const models = shippedModels();
    if (options.standalone) for (const m of models) copyModelDir(m.dir, join(tmp, 'models', m.entry.id));
    const list = { models: models.map((m) => m.entry), sampleSets, trainable: trainableArchitectures(), trainSets, trainImages: TRAIN_IMAGES, testImages: TEST_IMAGES };
    writeFileSync(join(tmp, 'models.json'), JSON.stringify(list, null, 1));

    const bytes = walk(tmp).reduce((n, f) => n + statSync(f).size, 0);
    writeFileSync(join(tmp, STAMP), JSON.stringify({ builtAt: new Date().toISOString(), models: models.map((m) => m.entry.id) }));
    const old = `${tmp}-old`;
    if (existsSync(outDir)) renameSync(outDir, old);
    renameSync(tmp, outDir);
    rmSync(old, { recursive: true, force: true });
    return { outDir, models: models.map((m) => m.entry), bytes, ms: Date.now() - t0 };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Build only when the output is missing or stale. */
export async function ensureVizBuilt(outDir = DEFAULT_VIZ_OUT): Promise<{ built: boolean; outDir: string }> {
  if (isBuildFresh(outDir)) return { built: false, outDir };
  await buildViz({ outDir });
  return { built: true, outDir };
}

// `node dist/src/viz/build.js [--out DIR] [--standalone]`
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const outDir = i > 0 ? process.argv[i + 1] : undefined;
  buildViz({ outDir, standalone: process.argv.includes('--standalone') }).then(
    (r) => {
      const where = relative(process.cwd(), r.outDir) || '.';
      process.stdout.write(`built the visualizer into ${where}/ (${(r.bytes / 1e6).toFixed(1)} MB, ${r.ms} ms; models: ${r.models.map((m) => m.id).join(', ') || 'none shipped yet'})\n`);
      process.stdout.write(process.argv.includes('--standalone') ? 'serve that folder with any static web server, or run: capsnet viz\n' : 'serve it with: capsnet viz (or build with --standalone to copy the models in, for any static web server)\n');
    },
    (e: Error) => {
      process.stderr.write(`build:viz: error: ${e.message.split('\n')[0]}\n`);
      process.exitCode = 1;
    },
  );
}
