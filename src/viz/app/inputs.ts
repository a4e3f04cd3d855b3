/**
 * The input: the drawing pad, image uploads and drops, and the test images
 * of the sample set that fits the model.
 */
import { paintGray } from './draw.js';
import { $ } from './dom.js';
import type { Engine } from './engine.js';
import { DrawingPad, imageFileToInput, NotAnImageError } from './pad.js';
import { state, track, type Samples } from './state.js';

let onInput: (pixels: Float32Array) => void = () => undefined;


function sampleFile(set: string): string {
  return set === 'mnist' ? 'samples' : `samples-${set}`;
}

/** The sample set for a model: the one of the dataset it was trained on when the build has it, else MNIST. */
export function sampleSetFor(e: Engine): string {
  const d = e.json.metadata?.dataset;
  return typeof d === 'string' && state.sampleSets.includes(d) ? d : 'mnist';
}

/** Load a sample set and show its images as buttons; false when it could not be loaded. */
export async function loadSamples(set: string): Promise<boolean> {
  const root = $('samples');
  const file = sampleFile(set);
  try {
    const [meta, bin] = await Promise.all([
      fetch(`${file}.json`).then((r) => {
        if (!r.ok) throw new Error(`${file}.json: HTTP ${r.status}`);
        return r.json() as Promise<{ title?: string; count: number; labels: number[]; classNames?: string[]; indices: number[]; height: number; width: number }>;
      }),
      fetch(`${file}.bin`).then((r) => {
        if (!r.ok) throw new Error(`${file}.bin: HTTP ${r.status}`);
        return r.arrayBuffer();
      }),
    ]);
    state.samples = {
      dataset: set,
      title: meta.title ?? set,
      images: new Uint8Array(bin),
      labels: meta.labels,
      classNames: meta.classNames ?? Array.from({ length: 10 }, (_, j) => String(j)),
      indices: meta.indices,
      count: meta.count,
      size: meta.height * meta.width,
    };
  } catch (e) {
    state.samples = null;
    root.textContent = `The test images could not be loaded (${(e as Error).message}); drawing and uploads still work.`;
    return false;
  }
  const s = state.samples;
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
    paintGray(c, Array.from(s.images.subarray(k * s.size, (k + 1) * s.size), (v) => v / 255), 28, 28);
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
  return true;
}

function sampleLabel(s: Samples, k: number): string {
  const name = s.classNames[s.labels[k]] ?? String(s.labels[k]);
  return s.dataset === 'mnist' ? `a ${name}` : name;
}

function sampleTitle(s: Samples, k: number): string {
  const name = s.classNames[s.labels[k]] ?? String(s.labels[k]);
  return `${s.title} test image #${s.indices[k]} (label ${name === String(s.labels[k]) ? name : `${s.labels[k]}, ${name}`})`;
}

/** Select test image #0 of the loaded set (or its first image) as the input, without running the model. */
export function selectFirstSample(): void {
  if (!state.samples) return;
  const first = state.samples.indices.indexOf(0);
  chooseSample(first >= 0 ? first : 0, false);
}

function samplePixels(k: number): Float32Array {
  const s = state.samples!;
  return Float32Array.from(s.images.subarray(k * s.size, (k + 1) * s.size), (v) => v / 255);
}

function chooseSample(k: number, run = true): void {
  if (!state.samples) return;
  state.currentSample = k;
  const root = $('samples');
  [...root.children].forEach((b, i) => {
    b.setAttribute('aria-pressed', String(i === k));
    (b as HTMLElement).tabIndex = i === k ? 0 : -1;
  });
  const px = samplePixels(k);
  pad.showImage(px, 28, 28);
  state.inputSource = sampleTitle(state.samples, k);
  $('input-status').textContent = `${state.inputSource}. Draw on it to change it.`;
  $('upload-error').hidden = true;
  state.input = px;
  if (run) onInput(px);
}

function unpressSamples(): void {
  state.currentSample = -1;
  [...$('samples').children].forEach((b, i) => {
    b.setAttribute('aria-pressed', 'false');
    (b as HTMLElement).tabIndex = i === 0 ? 0 : -1;
  });
}

const pad = new DrawingPad($<HTMLCanvasElement>('pad'), {
  onChange: () => {
    if (!pad.dirty) return;
    if (state.currentSample >= 0) unpressSamples();
    state.inputSource = 'your drawing';
    $('input-status').textContent = 'Your drawing, centred and scaled like MNIST.';
    onInput(pad.toInput());
  },
});

/** Wire the drawing pad, the upload and the sample buttons; `run` gets every new input. */
export function setupInput(run: (pixels: Float32Array) => void): void {
  onInput = run;
  $('clear').addEventListener('click', () => {
    pad.clear();
    unpressSamples();
    state.inputSource = 'empty pad';
    $('input-status').textContent = 'Draw a digit in the black square.';
    $('upload-error').hidden = true;
    onInput(new Float32Array(784));
  });
  const upload = $<HTMLInputElement>('upload');
  upload.addEventListener('change', async () => {
    const file = upload.files?.[0];
    upload.value = '';
    if (!file) return;
    const err = $('upload-error');
    try {
      const px = await track(imageFileToInput(file));
      err.hidden = true;
      unpressSamples();
      pad.showImage(px, 28, 28);
      state.inputSource = `uploaded "${file.name}"`;
      $('input-status').textContent = `Uploaded "${file.name}", converted to a 28×28 MNIST-style image.`;
      onInput(px);
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
