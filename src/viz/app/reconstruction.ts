/**
 * The decoder views, for a model with a decoder and class capsule vectors:
 * the reconstruction from the selected class capsule with one slider per
 * dimension, and the perturbation grid (CapsNet paper, Fig. 4: each
 * dimension stepped from -0.25 to +0.25). Both run only the decoder.
 */
import { paintImage } from './draw.js';
import { $, fix2 } from './dom.js';
import { showReference } from './reference.js';
import { className, reportedClasses, state, track, showError, type View } from './state.js';

/** The class capsules' dimension, when the page can decode them (a decoder and vector class capsules). */
function decodedDim(): number | null {
  const caps = state.layout?.classCapsules;
  return state.engine?.hasDecoder && caps?.form === 'vector' ? caps.dim : null;
}

function buildSliders(dim: number): void {
  const root = $('sliders');
  root.replaceChildren();
  for (let d = 0; d < dim; d++) {
    const label = document.createElement('label');
    const name = document.createElement('span');
    name.textContent = `dim ${d + 1}`;
    const range = document.createElement('input');
    range.type = 'range';
    range.min = '-0.6';
    range.max = '0.6';
    range.step = '0.01';
    range.id = `slider-${d}`;
    range.dataset.dim = String(d);
    const out = document.createElement('output');
    out.htmlFor.add(range.id);
    range.addEventListener('input', (e) => {
      state.vector[d] = Number(range.value);
      out.textContent = fix2(state.vector[d]);
      void requestDecode(e.timeStamp || performance.now(), true);
      schedulePerturb();
    });
    label.append(name, range, out);
    root.append(label);
  }
}

function syncSliders(): void {
  const root = $('sliders');
  [...root.querySelectorAll('input')].forEach((range, d) => {
    const v = state.vector[d];
    const lim = Math.max(0.6, Math.ceil(Math.abs(v) * 10) / 10);
    range.min = String(-lim);
    range.max = String(lim);
    range.value = String(v);
    (range.nextElementSibling as HTMLOutputElement).textContent = fix2(v);
    range.setAttribute('aria-label', `Dimension ${d + 1} of digit capsule ${className(state.selected)}`);
  });
  $('recon-caption').textContent = `Reconstruction from digit capsule ${className(state.selected)}`;
}


/** Decode `vector` and redraw; moves made during a decode collapse to the latest. */
async function requestDecode(t0: number, measure: boolean): Promise<void> {
  if (!state.engine || !decodedDim()) return;
  state.decodePending = { t0, measure };
  if (state.decodeRunning) return;
  state.decodeRunning = true;
  state.busy++;
  try {
    while (state.decodePending && state.engine) {
      const job = state.decodePending;
      state.decodePending = null;
      const tStart = performance.now();
      const pixels = await state.engine.decode(state.vector, state.selected);
      const [h, w, c] = state.engine.inputShape;
      paintImage($<HTMLCanvasElement>('recon'), pixels, w, h, c);
      const tDrawn = performance.now();
      if (job.measure) {
        state.decodeTimes.push(tDrawn - tStart);
        // The reconstruction is on screen once the next frame is painted
        // (measured for the page's API, window.capsviz.latencies).
        await new Promise<void>((r) => requestAnimationFrame(() => setTimeout(r, 0)));
        state.latencies.push(performance.now() - job.t0);
      }
    }
  } catch (e) {
    showError(`The decoder failed: ${(e as Error).message}`);
  } finally {
    state.decodeRunning = false;
    state.busy--;
  }
}

// ---------------------------------------------------------------- perturbation grid

const DELTAS = Array.from({ length: 11 }, (_, i) => -0.25 + 0.05 * i);
const CELL = 56;
const CELL_GAP = 4;
const LABEL_W = 84;
const HEADER_H = 32;

function schedulePerturb(): void {
  clearTimeout(state.perturbTimer);
  state.perturbTimer = window.setTimeout(() => {
    state.perturbTimer = 0;
    void track(renderPerturb());
  }, 120);
}

async function renderPerturb(): Promise<void> {
  const dim = decodedDim();
  if (!state.engine || !dim) return;
  const n = dim * DELTAS.length;
  const vectors = new Float32Array(n * dim);
  for (let d = 0; d < dim; d++) {
    DELTAS.forEach((delta, k) => {
      const row = vectors.subarray((d * DELTAS.length + k) * dim, (d * DELTAS.length + k + 1) * dim);
      row.set(state.vector);
      row[d] += delta;
    });
  }
  const cls = state.selected;
  const pixels = await state.engine.decodeMany(vectors, n, cls);
  const canvas = $<HTMLCanvasElement>('perturb');
  canvas.width = LABEL_W + DELTAS.length * (CELL + CELL_GAP);
  canvas.height = HEADER_H + dim * (CELL + CELL_GAP);
  const ctx = canvas.getContext('2d')!;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = '#5a6273';
  ctx.font = '600 19px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  const short = (x: number) => (Math.abs(x) < 1e-9 ? '0' : `${x > 0 ? '+' : '−'}${Math.abs(x).toFixed(2).replace(/^0/, '')}`);
  DELTAS.forEach((delta, k) => ctx.fillText(short(delta), LABEL_W + k * (CELL + CELL_GAP) + CELL / 2, HEADER_H / 2));
  ctx.textAlign = 'right';
  const tile = document.createElement('canvas');
  ctx.imageSmoothingEnabled = false;
  const [ih, iw, ic] = state.engine.inputShape;
  const per = ih * iw * ic;
  for (let d = 0; d < dim; d++) {
    const y = HEADER_H + d * (CELL + CELL_GAP);
    ctx.fillText(`dim ${d + 1}`, LABEL_W - 8, y + CELL / 2);
    for (let k = 0; k < DELTAS.length; k++) {
      const i = d * DELTAS.length + k;
      paintImage(tile, pixels.subarray(i * per, (i + 1) * per), iw, ih, ic);
      ctx.drawImage(tile, LABEL_W + k * (CELL + CELL_GAP), y, CELL, CELL);
    }
  }
  ctx.strokeStyle = '#ffb000';
  ctx.lineWidth = 2;
  const mid = LABEL_W + 5 * (CELL + CELL_GAP);
  ctx.strokeRect(mid - 1, HEADER_H - 1, CELL + 2, dim * (CELL + CELL_GAP) - CELL_GAP + 2);
  if (document.activeElement === canvas) {
    ctx.strokeStyle = '#2756c5';
    ctx.lineWidth = 3;
    ctx.strokeRect(LABEL_W + state.perturbCursor.col * (CELL + CELL_GAP) - 2, HEADER_H + state.perturbCursor.row * (CELL + CELL_GAP) - 2, CELL + 4, CELL + 4);
  }
  canvas.setAttribute('aria-label', `Reconstructions from digit capsule ${className(cls)} with one of ${dim} dimensions changed by −0.25 to +0.25 per row. Arrow keys choose a cell, Enter applies it to the sliders.`);
}

function applyPerturbCell(row: number, col: number): void {
  const dim = decodedDim();
  if (!dim || row < 0 || row >= dim || col < 0 || col >= DELTAS.length) return;
  state.vector[row] += DELTAS[col];
  syncSliders();
  void requestDecode(performance.now(), false);
  schedulePerturb();
}

function setupPerturbInput(): void {
  const canvas = $<HTMLCanvasElement>('perturb');
  canvas.addEventListener('click', (e) => {
    const r = canvas.getBoundingClientRect();
    const px = ((e.clientX - r.left) / r.width) * canvas.width;
    const py = ((e.clientY - r.top) / r.height) * canvas.height;
    const col = Math.floor((px - LABEL_W) / (CELL + CELL_GAP));
    const row = Math.floor((py - HEADER_H) / (CELL + CELL_GAP));
    if (px >= LABEL_W && py >= HEADER_H) {
      state.perturbCursor = { row, col };
      applyPerturbCell(row, col);
    }
  });
  canvas.addEventListener('keydown', (e) => {
    const dim = decodedDim();
    if (!dim) return;
    const moves: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (moves[e.key]) {
      e.preventDefault();
      state.perturbCursor.row = Math.min(dim - 1, Math.max(0, state.perturbCursor.row + moves[e.key][0]));
      state.perturbCursor.col = Math.min(DELTAS.length - 1, Math.max(0, state.perturbCursor.col + moves[e.key][1]));
      void track(renderPerturb());
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      applyPerturbCell(state.perturbCursor.row, state.perturbCursor.col);
    }
  });
  canvas.addEventListener('focus', () => void track(renderPerturb()));
  canvas.addEventListener('blur', () => void track(renderPerturb()));
}

/** Overlay colours of the first and second reported class, as in the CapsNet paper's figure 5. */
const OVERLAY: [number, number, number][] = [[1, 0.15, 0.15], [0.15, 1, 0.15]];

/**
 * With two or more reported classes (MultiMNIST's two digits), each one's
 * reconstruction from its own capsule, drawn over each other in red and
 * green (the CapsNet paper, figure 5): where they overlap is yellow.
 */
async function renderEach(): Promise<void> {
  const a = state.analysis;
  const caps = a?.classCapsules;
  const dim = decodedDim();
  const engine = state.engine;
  const reported = a ? reportedClasses(a).slice(0, OVERLAY.length) : [];
  $('recon-each').hidden = reported.length < 2 || !caps || !dim;
  if ($('recon-each').hidden || !engine || !caps || !dim) return;
  const [h, w] = engine.inputShape;
  const per = h * w * engine.inputShape[2];
  let images: Float32Array[];
  try {
    images = await Promise.all(reported.map((j) => engine.decode(caps.slice(j * dim, (j + 1) * dim), j)));
  } catch (e) {
    if (engine === state.engine) showError(`The decoder failed: ${(e as Error).message}`);
    return;
  }
  if (engine !== state.engine || a !== state.analysis) return;
  const rgb = new Float32Array(h * w * 3);
  images.forEach((img, k) => {
    for (let i = 0; i < h * w; i++) {
      // The first channel of a colour reconstruction stands for its ink.
      const v = img[i * (per / (h * w))];
      for (let c = 0; c < 3; c++) rgb[3 * i + c] = Math.min(1, rgb[3 * i + c] + v * OVERLAY[k][c]);
    }
  });
  paintImage($<HTMLCanvasElement>('recon-overlay'), rgb, w, h, 3);
  $('recon-each-caption').textContent = `Reconstructions from capsules ${reported.map(className).join(' (red) and ')} (green), each from its own capsule`;
}

/** Send the selected class's capsule, as the model computed it, to the sliders, the reconstruction and the grid. */
export function showSelectedCapsule(): void {
  const caps = state.analysis?.classCapsules;
  const dim = decodedDim();
  if (!caps || !dim) return;
  state.base = caps.slice(state.selected * dim, (state.selected + 1) * dim);
  state.vector = state.base.slice();
  syncSliders();
  void requestDecode(performance.now(), false);
  schedulePerturb();
}

export const reconstructionView: View = {
  init() {
    setupPerturbInput();
    $('sliders-reset').addEventListener('click', () => {
      state.vector = state.base.slice();
      syncSliders();
      void requestDecode(performance.now(), false);
      schedulePerturb();
    });
  },
  setup() {
    const dim = decodedDim();
    for (const id of ['view-recon', 'view-perturb']) $(id).hidden = !dim;
    if (!dim) return;
    const caps = state.layout?.classCapsules;
    const vector = caps?.form === 'vector' ? caps : null;
    showReference('recon-ref', vector?.reference);
    showReference('perturb-ref', vector?.dimensions);
    $('recon-explain').textContent = `The decoder redraws the digit from the ${dim} numbers of one digit capsule alone (all others are set to zero). Moving a slider changes one number of that capsule and re-runs only the decoder, so you see what each dimension encodes: stroke thickness, slant, width, a loop's size…`;
    buildSliders(dim);
  },
  render() {
    showSelectedCapsule();
    void track(renderEach());
  },
};
