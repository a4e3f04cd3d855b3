/**
 * The input: the drawing pad, image uploads and drops, and the test images
 * of the sample set that fits the model.
 */
import { paintImage } from './draw.js';
import { $ } from './dom.js';
import { grayDigit, type Engine, type InputImage } from './engine.js';
import { DrawingPad, imageFileToFrame, imageFileToInput, imageFileToPrepared, NotAnImageError } from './pad.js';
import type { SampleImages } from './protocol.js';
import { state, track, type Samples } from './state.js';
import { param, setParams } from './url.js';

let onInput: (img: InputImage) => void = () => undefined;


/** The files of a built sample set: samples.* for MNIST, samples-<set>.* for the others (as build.ts writes them). */
export function sampleFile(set: string): string {
  return set === 'mnist' ? 'samples' : `samples-${set}`;
}

/** A model the page offers (models.json); `samples` names its own test images, when `capsnet viz` serves them. */
export interface ModelEntry {
  id: string;
  label: string;
  url: string;
  samples?: string;
}

/**
 * The test images for a model, as the files' prefix: its own (a model trained
 * on a --data folder, served by `capsnet viz`), else those of the dataset it
 * was trained on when the build has them, else MNIST's. Null for a model
 * trained on a --data folder whose test images are not served.
 */
export function samplesFor(entry: ModelEntry | undefined, e: Engine): string | null {
  if (entry?.samples) return entry.samples;
  if (e.preparation) return null;
  const d = e.metadata.dataset;
  return sampleFile(typeof d === 'string' && state.sampleSets.includes(d) ? d : 'mnist');
}

interface SamplesJson {
  dataset?: string;
  title?: string;
  count: number;
  labels: number[];
  classNames?: string[];
  indices: number[];
  height: number;
  width: number;
  channels?: number;
  objects?: number;
  classes?: number[][];
}

/** Load a sample set and show its images as buttons; false when it could not be loaded. */
export async function loadSamples(file: string): Promise<boolean> {
  try {
    const [meta, bin] = await Promise.all([
      fetch(`${file}.json`).then((r) => {
        if (!r.ok) throw new Error(`${file}.json: HTTP ${r.status}`);
        return r.json() as Promise<SamplesJson>;
      }),
      fetch(`${file}.bin`).then((r) => {
        if (!r.ok) throw new Error(`${file}.bin: HTTP ${r.status}`);
        return r.arrayBuffer();
      }),
    ]);
    const channels = meta.channels ?? 1;
    const size = meta.height * meta.width * channels;
    if (bin.byteLength !== meta.count * size) throw new Error(`${file}.bin holds ${bin.byteLength} bytes, not ${meta.count} images of ${meta.height}x${meta.width}x${channels}`);
    state.samples = {
      file,
      dataset: meta.dataset ?? file,
      title: meta.title ?? meta.dataset ?? file,
      images: new Uint8Array(bin),
      labels: meta.labels,
      classNames: meta.classNames ?? Array.from({ length: 10 }, (_, j) => String(j)),
      indices: meta.indices,
      count: meta.count,
      height: meta.height,
      width: meta.width,
      channels,
      size,
      objects: meta.objects ?? 1,
      classes: meta.classes ?? null,
    };
  } catch (e) {
    showNoSamples(`The test images could not be loaded (${(e as Error).message}); uploads${pad.enabled ? ' and drawing' : ''} still work.`);
    return false;
  }
  showSampleButtons();
  return true;
}

/** Show test images the page holds (a folder's, from the worker). */
export function showSampleImages(set: SampleImages): void {
  const size = set.height * set.width * set.channels;
  state.samples = { ...set, size, objects: 1, classes: null };
  showSampleButtons();
}

/** The sample set's images as buttons. */
function showSampleButtons(): void {
  const root = $('samples');
  const s = state.samples!;
  $('h-samples').textContent = `${s.title} test images`;
  root.replaceChildren();
  for (let k = 0; k < s.count; k++) {
    const b = document.createElement('button');
    b.type = 'button';
    b.tabIndex = -1;
    b.setAttribute('aria-pressed', 'false');
    b.setAttribute('aria-label', `Test image ${s.indices[k] + 1}, ${sampleLabel(s, k)}`);
    b.title = sampleTitle(s, k);
    const c = document.createElement('canvas');
    const img = sampleImage(k);
    paintImage(c, img.data, img.width, img.height, img.channels);
    b.append(c);
    b.addEventListener('click', () => chooseSample(k));
    b.addEventListener('keydown', (e) => {
      const step: Record<string, number> = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -10, ArrowDown: 10, Home: -s.count, End: s.count };
      if (step[e.key] === undefined) return;
      e.preventDefault();
      const next = Math.min(s.count - 1, Math.max(0, k + step[e.key]));
      (root.children[next] as HTMLElement).focus();
      chooseSample(next);
    });
    root.append(b);
  }
}

/** No test images to offer: say why, and start from a black image of the model's input size. */
export function showNoSamples(message: string): void {
  state.samples = null;
  state.currentSample = -1;
  $('h-samples').textContent = 'Test images';
  $('samples').textContent = message;
  const [h, w, c] = state.engine?.inputShape ?? [28, 28, 1];
  state.input = { data: new Float32Array(h * w * c), height: h, width: w, channels: c };
  state.inputSource = 'a black image';
  pad.showImage(state.input);
}

/** The classes of sample k: its label, or all its objects' classes. */
function sampleClasses(s: Samples, k: number): number[] {
  return s.classes?.[k] ?? [s.labels[k]];
}

function sampleLabel(s: Samples, k: number): string {
  const names = sampleClasses(s, k).map((c) => s.classNames[c] ?? String(c));
  return s.dataset === 'mnist' ? `a ${names[0]}` : names.join(' and ');
}

function sampleTitle(s: Samples, k: number): string {
  const classes = sampleClasses(s, k);
  const describe = (c: number) => {
    const name = s.classNames[c] ?? String(c);
    return name === String(c) ? name : `${c}, ${name}`;
  };
  return `${s.title} test image #${s.indices[k]} (${classes.length > 1 ? `labels ${classes.map(describe).join(' and ')}` : `label ${describe(classes[0])}`})`;
}

/**
 * Select the test image the address names (image=N: test image #N of the
 * set), else #0 (or the set's first image), as the input, without running
 * the model.
 */
export function selectFirstSample(): void {
  if (!state.samples) return;
  const named = param('image');
  const k = named !== null && /^\d+$/.test(named) ? state.samples.indices.indexOf(Number(named)) : -1;
  const first = state.samples.indices.indexOf(0);
  chooseSample(k >= 0 ? k : first >= 0 ? first : 0, false);
}

function sampleImage(k: number): InputImage {
  const s = state.samples!;
  return { data: Float32Array.from(s.images.subarray(k * s.size, (k + 1) * s.size), (v) => v / 255), height: s.height, width: s.width, channels: s.channels };
}

function chooseSample(k: number, run = true): void {
  if (!state.samples) return;
  state.currentSample = k;
  if (run) setParams({ image: state.samples.indices[k] });
  const root = $('samples');
  [...root.children].forEach((b, i) => {
    b.setAttribute('aria-pressed', String(i === k));
    (b as HTMLElement).tabIndex = i === k ? 0 : -1;
  });
  const img = sampleImage(k);
  pad.showImage(img);
  state.inputSource = sampleTitle(state.samples, k);
  $('input-status').textContent = pad.enabled ? `${state.inputSource}. Draw on it to change it.` : `${state.inputSource}.`;
  $('upload-error').hidden = true;
  state.input = img;
  if (run) onInput(img);
}

function unpressSamples(): void {
  state.currentSample = -1;
  setParams({ image: null });
  [...$('samples').children].forEach((b, i) => {
    b.setAttribute('aria-pressed', 'false');
    (b as HTMLElement).tabIndex = i === 0 ? 0 : -1;
  });
}

/** How a drawing becomes the model's input (see Engine.drawing); null: drawing is off. */
let drawing: 'digit' | 'frame' | null = 'digit';

/** What the classes are, in a word for the page's sentences: digits, when the class names are 0 to 9, else pictures. */
function subject(): string {
  const names = state.engine?.classNames ?? [];
  return names.length && names.every((n, i) => n === String(i)) ? 'digit' : 'picture';
}

/** The pad's drawing as the model's input. */
function drawnInput(): InputImage {
  const [h, w] = state.engine?.inputShape ?? [28, 28];
  return drawing === 'frame' ? { data: pad.toFrame(w, h), height: h, width: w, channels: 1 } : grayDigit(pad.toInput());
}

/** A blank input: of the model's frame when it is drawn on as a frame, else 28x28. */
function emptyInput(): InputImage {
  const [h, w] = drawing === 'frame' ? state.engine!.inputShape : [28, 28];
  return { data: new Float32Array(h * w), height: h, width: w, channels: 1 };
}

const pad = new DrawingPad($<HTMLCanvasElement>('pad'), {
  onChange: () => {
    if (!pad.dirty) return;
    if (state.currentSample >= 0) unpressSamples();
    state.inputSource = 'your drawing';
    $('input-status').textContent = drawing === 'frame' ? 'Your drawing: the pad is the whole frame.' : 'Your drawing, centred and scaled like MNIST.';
    onInput(drawnInput());
  },
});

/**
 * Fit the input card to a model: the drawing pad for gray models that take
 * drawn digits (see Engine.drawing); uploads always, prepared as the
 * model's training pictures were when it records how.
 */
export function setupInputFor(e: Engine): void {
  drawing = e.drawing;
  pad.enabled = drawing !== null;
  const [h, w, c] = e.inputShape;
  const kind = `${h}×${w} ${c === 3 ? 'colour' : 'grayscale'}`;
  const thing = subject();
  $('pad').setAttribute('aria-disabled', String(!pad.enabled));
  $('pad').setAttribute('aria-label', pad.enabled ? `Drawing area: draw a ${thing} with the mouse, a pen or a finger` : 'The input, enlarged (drawing is off for this model)');
  $('clear').hidden = !pad.enabled;
  const note = $('pad-note');
  note.hidden = pad.enabled;
  note.textContent = pad.enabled ? '' : `Drawing is off: this model takes ${kind} pictures, not gray digits drawn with the mouse. Choose a test image or upload a picture.`;
  const draw = pad.enabled ? `draw ${drawing === 'frame' ? `one or two ${thing}s` : `a ${thing}`} with mouse, pen or finger, ` : '';
  $('input-explain').textContent = e.preparation
    ? `What the network looks at: a ${kind} picture. Choose a test image${pad.enabled ? ', draw with mouse, pen or finger,' : ''} or upload a picture; an upload is stretched to ${h}×${w}${c === 3 ? '' : ' and turned gray'}, as this model's training pictures were.`
    : drawing === 'frame'
      ? `What the network looks at: a ${kind} image, bright ink on black. Choose a test image, ${draw}or upload a picture. The pad is the whole ${h}×${w} frame: what you draw stays where it is. An upload of ${h}×${w} pixels goes in as it is; others are cropped, scaled to fit 20×20 and centred, the way MNIST was made, in the middle of the frame.`
      : `What the network looks at: a ${kind} image, bright ink on black. Choose a test image, ${draw}or upload a picture. ${pad.enabled ? 'Drawings and uploads are' : 'Uploads are'} cropped, scaled to fit 20×20 and centred by their ink's centre of mass, the way MNIST was made${h !== 28 || w !== 28 ? `, then placed in the middle of the ${h}×${w} frame` : ''}.`;
}

/** An uploaded picture as an input: prepared as the model's training pictures were, as its frame when it is the frame's size, else MNIST-style. */
async function uploadedInput(file: File): Promise<{ img: InputImage; how: string }> {
  const e = state.engine;
  const prep = e?.preparation;
  if (prep) {
    const img = await imageFileToPrepared(file, prep);
    return { img, how: `prepared as the model's training pictures were (${img.height}×${img.width}, ${img.channels === 3 ? 'colour' : 'gray'})` };
  }
  const [h, w] = e?.inputShape ?? [28, 28];
  if (e && drawing === 'frame') {
    const frame = await imageFileToFrame(file, w, h);
    if (frame) return { img: { data: frame, height: h, width: w, channels: 1 }, how: `taken as the ${h}×${w} frame, pixel for pixel` };
  }
  const img = grayDigit(await imageFileToInput(file));
  return { img, how: `cropped, scaled and centred like an MNIST digit (28×28${h !== 28 || w !== 28 ? `, in the middle of the ${h}×${w} frame` : ''})` };
}

/** Wire the drawing pad, the upload and the sample buttons; `run` gets every new input. */
export function setupInput(run: (img: InputImage) => void): void {
  onInput = run;
  $('clear').addEventListener('click', () => {
    pad.clear();
    unpressSamples();
    state.inputSource = 'empty pad';
    $('input-status').textContent = `Draw a ${subject()} in the black square.`;
    $('upload-error').hidden = true;
    onInput(emptyInput());
  });
  const upload = $<HTMLInputElement>('upload');
  upload.addEventListener('change', async () => {
    const file = upload.files?.[0];
    upload.value = '';
    if (!file) return;
    const err = $('upload-error');
    try {
      const { img, how } = await track(uploadedInput(file));
      err.hidden = true;
      unpressSamples();
      pad.showImage(img);
      state.inputSource = `uploaded "${file.name}"`;
      $('input-status').textContent = `Uploaded "${file.name}", ${how}.`;
      onInput(img);
    } catch (e) {
      err.textContent = e instanceof NotAnImageError ? e.message : `"${file.name}" could not be used: ${(e as Error).message}`;
      err.hidden = false;
    }
  });
  // Dropping an image file on the pad works like uploading it.
  const padEl = $('pad');
  padEl.addEventListener('dragover', (e) => e.preventDefault());
  padEl.addEventListener('drop', (e) => {
    e.preventDefault();
    const f = e.dataTransfer?.files?.[0];
    if (!f) return;
    const dt = new DataTransfer();
    dt.items.add(f);
    upload.files = dt.files;
    upload.dispatchEvent(new Event('change'));
  });
}
