/**
 * The visualizer page: wires the input, the model and the views together.
 * Every view redraws from one Analysis (a forward pass with its traced
 * intermediates); the sliders and the perturbation grid run only the decoder.
 */
import { initBackend, Engine, type Analysis, type CapsGeometry, type Conv1Geometry } from './engine.js';
import { absMax, CLASS_COLORS, cssColor, diverging, maxOf, outlinePixel, outlineTile, paintGray, paintImage, paintTiles, robustScale, sequential, tileAt, tileLayout, type RGB, type TileLayout } from './draw.js';
import { DrawingPad, imageFileToInput, NotAnImageError } from './pad.js';
import { emIteration, renderEm, setupEm } from './em.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page is missing #${id}`);
  return el as T;
};

// ---------------------------------------------------------------- state

interface ModelEntry {
  id: string;
  label: string;
  url: string;
}

/** A set of test images to choose from (samples*.json and .bin, written by the build). */
interface Samples {
  /** The dataset name in model metadata: mnist, fashion-mnist. */
  dataset: string;
  title: string;
  images: Uint8Array;
  labels: number[];
  classNames: string[];
  indices: number[];
  count: number;
  size: number;
}

const params = new URLSearchParams(location.search);
let engine: Engine | null = null;
let geo: CapsGeometry | null = null;
let conv1Geo: Conv1Geometry | null = null;
let analysis: Analysis | null = null;
let input: Float32Array = new Float32Array(28 * 28);
let inputSource = '';
let samples: Samples | null = null;
/** Sample sets the build wrote besides MNIST's (models.json). */
let sampleSets: string[] = ['mnist'];
let currentSample = -1;
let selected = 0;
let base = new Float32Array(16);
let vector = new Float32Array(16);
let iteration = 0;
let weightByLength = true;
let routingMode: 'delta' | 'value' = 'delta';
let conv1Focus = -1;
let capsFocus: { type: number; y: number; x: number } | null = null;
let kernels: { data: Float32Array; k: number; inChannels: number; filters: number } | null = null;
let busy = 0;
let perturbTimer = 0;
let perturbCursor = { row: 0, col: 5 };
let playTimer = 0;

const latencies: number[] = [];
const decodeTimes: number[] = [];

function setState(state: 'loading' | 'ready' | 'error'): void {
  document.body.dataset.state = state;
}

async function track<T>(p: Promise<T>): Promise<T> {
  busy++;
  try {
    return await p;
  } finally {
    busy--;
  }
}

function showError(message: string): void {
  const el = $('error');
  el.textContent = message;
  el.hidden = false;
  setState('error');
}

function clearError(): void {
  $('error').hidden = true;
}

function fmtPct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

/** Two decimals, without a minus sign on zero. */
function fix2(v: number): string {
  const s = v.toFixed(2);
  return s === '-0.00' ? '0.00' : s;
}

function median(a: number[]): number {
  if (!a.length) return NaN;
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function className(j: number): string {
  return engine?.classNames[j] ?? String(j);
}

// ---------------------------------------------------------------- model

async function loadModelList(): Promise<ModelEntry[]> {
  const forced = params.get('model');
  const list: ModelEntry[] = [];
  if (forced) list.push({ id: 'url', label: forced, url: forced });
  try {
    const res = await fetch('models.json');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const j = (await res.json()) as { models?: ModelEntry[]; sampleSets?: string[] };
    for (const m of j.models ?? []) list.push(m);
    if (Array.isArray(j.sampleSets)) sampleSets = ['mnist', ...j.sampleSets.filter((x) => x !== 'mnist')];
  } catch (e) {
    if (!forced) throw new Error(`could not read the list of models (models.json): ${(e as Error).message}`);
  }
  if (!list.length) throw new Error('no model is available: start the visualizer with capsnet viz --model DIR, or add ?model=URL/model.json to the address');
  return list;
}

async function loadModel(entry: ModelEntry): Promise<void> {
  setState('loading');
  clearError();
  stopPlay();
  $('model-info').textContent = `Loading ${entry.label}…`;
  const old = engine;
  engine = null;
  delete document.body.dataset.model;
  analysis = null;
  old?.dispose();
  let next: Engine;
  try {
    next = await track(Engine.load(entry.url));
  } catch (e) {
    $('model-info').textContent = 'No model loaded.';
    showError(`Could not load the model from ${entry.url}: ${(e as Error).message}. Check that the folder holds model.json and its weights file (as written by capsnet train), or choose another model above.`);
    return;
  }
  engine = next;
  document.body.dataset.model = next.model.modelType;
  // A model trained on another dataset gets that dataset's test images.
  const set = sampleSetFor(next);
  if (set !== (samples?.dataset ?? 'mnist') && (await track(loadSamples(set)))) selectFirstSample();
  setupViews();
  await runAnalysis(input);
  setState('ready');
}

function describeModel(): string {
  if (!engine) return '';
  const m = engine.model;
  const params = m.countParams();
  const p = params >= 1e6 ? `${(params / 1e6).toFixed(2)} M` : `${Math.round(params / 1e3)} k`;
  const kind = m.modelType === 'capsnet' ? 'CapsNet, dynamic routing' : m.modelType === 'em' ? 'matrix capsules, EM routing' : m.modelType === 'cnn' ? 'CNN baseline' : m.modelType;
  let s = `${kind} · ${p} parameters`;
  if (geo) s += ` · ${geo.primary.h * geo.primary.w * geo.primary.types} primary capsules · ${geo.iterations} routing iterations`;
  s += ` · backend ${backendName}${backendNote ? ` (${backendNote})` : ''}`;
  if (analysis) s += ` · forward pass ${analysis.ms.toFixed(0)} ms`;
  return s;
}

// ---------------------------------------------------------------- analysis

let pendingInput: Float32Array | null = null;
let analysing = false;

/** Run the model on `pixels`; calls made while one is running collapse to the latest. */
async function runAnalysis(pixels: Float32Array): Promise<void> {
  input = pixels;
  paintGray($<HTMLCanvasElement>('input-28'), pixels, 28, 28);
  if (!engine) return; // loadModel analyses `input` once a model is there
  pendingInput = pixels;
  if (analysing) return;
  analysing = true;
  busy++;
  try {
    while (pendingInput && engine) {
      const px = pendingInput;
      pendingInput = null;
      const e: Engine = engine;
      const a = await e.analyze(px);
      if (e !== engine) break;
      onAnalysis(a);
    }
  } catch (e) {
    showError(`The model failed on this input: ${(e as Error).message}`);
  } finally {
    analysing = false;
    busy--;
  }
}

function onAnalysis(a: Analysis): void {
  analysis = a;
  selected = a.prediction;
  renderDigits();
  const [ih, iw, ic] = engine!.inputShape;
  paintImage($<HTMLCanvasElement>('input-28'), a.modelInput, iw, ih, ic);
  paintImage($<HTMLCanvasElement>('recon-input'), a.modelInput, iw, ih, ic);
  if (a.kind === 'capsnet') {
    if (geo?.hasDecoder) {
      base = a.digitCaps.slice(selected * geo.dim, (selected + 1) * geo.dim);
      vector = base.slice();
      syncSliders();
      void requestDecode(performance.now(), false);
      schedulePerturb();
    }
    renderPrimary();
    renderRouting();
  } else if (a.kind === 'em') {
    renderEm(a);
  }
  const maps = conv1Maps(a);
  if (maps) {
    if (conv1Focus < 0) conv1Focus = strongestMap(maps);
    renderConv1();
  }
  $('model-info').textContent = describeModel();
}

// ---------------------------------------------------------------- view setup per model

function setupViews(): void {
  if (!engine) return;
  const caps = engine.kind === 'capsnet';
  geo = caps ? engine.geometry() : null;
  conv1Geo = engine.kind === 'plain' ? null : engine.conv1Geometry();
  $('view-conv1').hidden = !conv1Geo;
  for (const id of ['view-primary', 'view-routing']) $(id).hidden = !caps;
  for (const id of ['view-recon', 'view-perturb']) $(id).hidden = !(caps && geo?.hasDecoder);
  $('view-em').hidden = engine.model.modelType !== 'em';
  const [ih, iw] = engine.inputShape;
  $('seen-caption').textContent = `What the network sees (${ih}×${iw})`;
  // The class-score card describes what this kind of model outputs.
  const card = SCORE_CARD[engine.model.modelType] ?? SCORE_CARD.other;
  $('h-digits').textContent = card.title;
  $('digits-explain').textContent = card.text.replace('DIM', String(geo?.dim ?? 16));
  if (geo) {
    $('recon-explain').textContent = `The decoder redraws the digit from the ${geo.dim} numbers of one digit capsule alone (all others are set to zero). Moving a slider changes one number of that capsule and re-runs only the decoder, so you see what each dimension encodes: stroke thickness, slant, width, a loop's size…`;
  }
  iteration = geo ? geo.iterations - 1 : 0;
  conv1Focus = -1;
  capsFocus = null;
  kernels = null;
  buildDigitBars();
  if (conv1Geo) {
    void track(engine.conv1Kernels()).then((k) => {
      kernels = k;
      renderConv1();
    });
    const k = conv1Geo.kernel;
    $('conv1-explain').textContent = `The first layer slides each of its ${conv1Geo.channels} kernels (${k}×${k} pixels) over the image and keeps only positive responses (ReLU). Kernels: blue weights darken, red weights brighten. Each map shows where its kernel found its pattern (edges, stroke ends, curves); brighter is stronger. Hover or use the arrow keys on the maps to inspect one.`;
  }
  if (engine.kind === 'em') setupEm($('em-content'), engine, { onChange: () => undefined });
  if (caps && geo) {
    buildSliders(geo.dim);
    buildRoutingMaps();
    const { h, w, types, dim } = geo.primary;
    $('primary-explain').textContent = `A second convolution's outputs are cut into small vectors, the primary capsules, and squashed so that each vector's length lies between 0 and 1. Each of the ${types} squares below is one capsule type on the ${h}×${w} grid of positions (${h * w * types} capsules); brightness is the capsule's length, the confidence that its part of a digit is there. The direction of the vector (its ${dim} numbers) describes how that part looks. Hover or use the arrow keys (Page Up and Down change the type) to read a capsule.`;
  }
  updateIterationLabel();
}

// ---------------------------------------------------------------- digit capsules

const SCORE_CARD: Record<string, { title: string; text: string }> = {
  capsnet: {
    title: 'Digit capsules',
    text: "One DIM-dimensional capsule per class. Its length is the network's confidence that the class is present; the longest is the prediction. Choose a bar to reconstruct from that capsule and move its sliders.",
  },
  em: {
    title: 'Class capsule activations',
    text: "One matrix capsule per class: a 4×4 pose matrix and an activation between 0 and 1. The most active class capsule is the prediction.",
  },
  other: {
    title: 'Class scores',
    text: 'This model has no capsules (for example the CNN baseline): it outputs one probability per class, and the views of capsules, routing and reconstruction do not apply to it.',
  },
};

function buildDigitBars(): void {
  const root = $('digit-bars');
  root.replaceChildren();
  const n = engine?.model.numClasses ?? 10;
  // Word-sized class names (Fashion-MNIST's) get a smaller, wrapping label.
  root.classList.toggle('long-names', Array.from({ length: n }, (_, j) => className(j)).some((name) => name.length > 3));
  for (let j = 0; j < n; j++) {
    const b = document.createElement('button');
    b.type = 'button';
    b.setAttribute('role', 'radio');
    b.dataset.cls = String(j);
    b.innerHTML = '<span class="val"></span><span class="bar"></span><span class="lbl"></span>';
    (b.querySelector('.lbl') as HTMLElement).textContent = className(j);
    b.title = className(j);
    b.addEventListener('click', () => selectClass(j));
    b.addEventListener('keydown', (e) => {
      const d = e.key === 'ArrowRight' || e.key === 'ArrowDown' ? 1 : e.key === 'ArrowLeft' || e.key === 'ArrowUp' ? -1 : 0;
      if (!d) return;
      e.preventDefault();
      const k = (j + d + n) % n;
      selectClass(k);
      (root.children[k] as HTMLElement).focus();
    });
    root.append(b);
  }
}

function renderDigits(): void {
  const a = analysis;
  if (!a) return;
  const root = $('digit-bars');
  const isCaps = a.kind === 'capsnet' || a.kind === 'em';
  const what = a.kind === 'capsnet' ? 'length' : isCaps ? 'activation' : 'probability';
  [...root.children].forEach((el, j) => {
    const b = el as HTMLButtonElement;
    const v = a.scores[j];
    (b.querySelector('.bar') as HTMLElement).style.height = `${Math.max(0.5, 100 * Math.min(1, v)) * 0.8}%`;
    (b.querySelector('.val') as HTMLElement).textContent = v.toFixed(2);
    b.classList.toggle('predicted', j === a.prediction);
    b.setAttribute('aria-checked', String(j === selected));
    b.tabIndex = j === selected ? 0 : -1;
    b.setAttribute('aria-label', `${className(j)}: ${what} ${v.toFixed(3)}${j === a.prediction ? ', the prediction' : ''}`);
  });
  $('prediction').textContent = className(a.prediction);
  $('prediction-conf').textContent = `(${a.kind === 'capsnet' ? 'capsule length' : what} ${a.scores[a.prediction].toFixed(3)})`;
}

function selectClass(j: number): void {
  const a = analysis;
  if (!a || a.kind !== 'capsnet' || !geo) return;
  selected = j;
  base = a.digitCaps.slice(j * geo.dim, (j + 1) * geo.dim);
  vector = base.slice();
  renderDigits();
  syncSliders();
  void requestDecode(performance.now(), false);
  schedulePerturb();
}

// ---------------------------------------------------------------- reconstruction and sliders

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
      vector[d] = Number(range.value);
      out.textContent = fix2(vector[d]);
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
    const v = vector[d];
    const lim = Math.max(0.6, Math.ceil(Math.abs(v) * 10) / 10);
    range.min = String(-lim);
    range.max = String(lim);
    range.value = String(v);
    (range.nextElementSibling as HTMLOutputElement).textContent = fix2(v);
    range.setAttribute('aria-label', `Dimension ${d + 1} of digit capsule ${className(selected)}`);
  });
  $('recon-caption').textContent = `Reconstruction from digit capsule ${className(selected)}`;
}

let decodeRunning = false;
let decodePending: { t0: number; measure: boolean } | null = null;

/** Decode `vector` and redraw; moves made during a decode collapse to the latest. */
async function requestDecode(t0: number, measure: boolean): Promise<void> {
  if (!engine || !geo?.hasDecoder) return;
  decodePending = { t0, measure };
  if (decodeRunning) return;
  decodeRunning = true;
  busy++;
  try {
    while (decodePending && engine) {
      const job = decodePending;
      decodePending = null;
      const tStart = performance.now();
      const pixels = await engine.decode(vector, selected);
      const [h, w, c] = engine.inputShape;
      paintImage($<HTMLCanvasElement>('recon'), pixels, w, h, c);
      const tDrawn = performance.now();
      if (job.measure) {
        decodeTimes.push(tDrawn - tStart);
        // The reconstruction is on screen once the next frame is painted.
        await new Promise<void>((r) => requestAnimationFrame(() => setTimeout(r, 0)));
        latencies.push(performance.now() - job.t0);
        const last = latencies[latencies.length - 1];
        $('latency').textContent = `slider → redrawn: ${last.toFixed(1)} ms (median ${median(latencies).toFixed(1)} ms over ${latencies.length} moves; decoder ${median(decodeTimes).toFixed(1)} ms)`;
      }
    }
  } catch (e) {
    showError(`The decoder failed: ${(e as Error).message}`);
  } finally {
    decodeRunning = false;
    busy--;
  }
}

// ---------------------------------------------------------------- perturbation grid

const DELTAS = Array.from({ length: 11 }, (_, i) => -0.25 + 0.05 * i);
const CELL = 56;
const CELL_GAP = 4;
const LABEL_W = 84;
const HEADER_H = 32;

function schedulePerturb(): void {
  clearTimeout(perturbTimer);
  perturbTimer = window.setTimeout(() => {
    perturbTimer = 0;
    void track(renderPerturb());
  }, 120);
}

async function renderPerturb(): Promise<void> {
  if (!engine || !geo?.hasDecoder) return;
  const dim = geo.dim;
  const n = dim * DELTAS.length;
  const vectors = new Float32Array(n * dim);
  for (let d = 0; d < dim; d++) {
    DELTAS.forEach((delta, k) => {
      const row = vectors.subarray((d * DELTAS.length + k) * dim, (d * DELTAS.length + k + 1) * dim);
      row.set(vector);
      row[d] += delta;
    });
  }
  const cls = selected;
  const pixels = await engine.decodeMany(vectors, n, cls);
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
  const [ih, iw, ic] = engine.inputShape;
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
    ctx.strokeRect(LABEL_W + perturbCursor.col * (CELL + CELL_GAP) - 2, HEADER_H + perturbCursor.row * (CELL + CELL_GAP) - 2, CELL + 4, CELL + 4);
  }
  canvas.setAttribute('aria-label', `Reconstructions from digit capsule ${className(cls)} with one of ${dim} dimensions changed by −0.25 to +0.25 per row. Arrow keys choose a cell, Enter applies it to the sliders.`);
}

function applyPerturbCell(row: number, col: number): void {
  if (!geo || row < 0 || row >= geo.dim || col < 0 || col >= DELTAS.length) return;
  vector[row] += DELTAS[col];
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
      perturbCursor = { row, col };
      applyPerturbCell(row, col);
    }
  });
  canvas.addEventListener('keydown', (e) => {
    if (!geo) return;
    const moves: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    if (moves[e.key]) {
      e.preventDefault();
      perturbCursor.row = Math.min(geo.dim - 1, Math.max(0, perturbCursor.row + moves[e.key][0]));
      perturbCursor.col = Math.min(DELTAS.length - 1, Math.max(0, perturbCursor.col + moves[e.key][1]));
      void track(renderPerturb());
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      applyPerturbCell(perturbCursor.row, perturbCursor.col);
    }
  });
  canvas.addEventListener('focus', () => void track(renderPerturb()));
  canvas.addEventListener('blur', () => void track(renderPerturb()));
}

// ---------------------------------------------------------------- conv1

function conv1Layouts(): { kernels: TileLayout; maps: TileLayout } | null {
  if (!conv1Geo) return null;
  const c = conv1Geo.channels;
  const cols = c >= 128 ? 16 : c >= 32 ? 8 : 4;
  return { kernels: tileLayout(c, conv1Geo.kernel, conv1Geo.kernel, cols, 1, 2), maps: tileLayout(c, conv1Geo.w, conv1Geo.h, cols, 2, 1) };
}

/** Conv1's ReLU maps in an analysis, when the model reports them. */
function conv1Maps(a: Analysis | null): Float32Array | null {
  return a && (a.kind === 'capsnet' || a.kind === 'em') ? a.conv1 : null;
}

function strongestMap(maps: Float32Array): number {
  if (!conv1Geo) return 0;
  const c = conv1Geo.channels;
  const sums = new Float32Array(c);
  for (let i = 0; i < maps.length; i++) sums[i % c] += maps[i];
  let best = 0;
  for (let k = 1; k < c; k++) if (sums[k] > sums[best]) best = k;
  return best;
}

function renderConv1(): void {
  const maps = conv1Maps(analysis);
  const l = conv1Layouts();
  if (!l || !conv1Geo) return;
  const { channels: C, h, w, kernel: k } = conv1Geo;
  const focus = Math.max(0, conv1Focus);
  if (kernels) {
    const kd = kernels.data;
    const F = kernels.filters;
    const inC = kernels.inChannels;
    const km = absMax(kd) || 1;
    const kcanvas = $<HTMLCanvasElement>('conv1-kernels');
    paintTiles(kcanvas, l.kernels, (t, y, x) => diverging(kd[((y * k + x) * inC) * F + t] / km));
    outlineTile(kcanvas, l.kernels, focus, '#ffb000');
    const f = $<HTMLCanvasElement>('conv1-kernel-focus');
    paintTiles(f, tileLayout(1, k, k, 1, 0, 1), (_t, y, x) => diverging(kd[((y * k + x) * inC) * F + focus] / km));
  }
  if (maps && maps.length === h * w * C) {
    const m = maxOf(maps) || 1;
    const mcanvas = $<HTMLCanvasElement>('conv1-maps');
    paintTiles(mcanvas, l.maps, (t, y, x) => sequential(maps[(y * w + x) * C + t] / m));
    outlineTile(mcanvas, l.maps, focus, '#00b7ff');
    const f = $<HTMLCanvasElement>('conv1-map-focus');
    paintTiles(f, tileLayout(1, w, h, 1, 0, 1), (_t, y, x) => sequential(maps[(y * w + x) * C + focus] / m));
    let mx = 0;
    for (let i = focus; i < maps.length; i += C) mx = Math.max(mx, maps[i]);
    $('conv1-info').textContent = `Kernel and map ${focus + 1} of ${C}: strongest response ${mx.toFixed(2)} (the brightest map pixel overall is ${m.toFixed(2)}).`;
  }
}

function setupConv1Input(): void {
  for (const id of ['conv1-kernels', 'conv1-maps']) {
    const canvas = $<HTMLCanvasElement>(id);
    const layout = () => (id === 'conv1-kernels' ? conv1Layouts()?.kernels : conv1Layouts()?.maps);
    canvas.addEventListener('pointermove', (e) => {
      const l = layout();
      const hit = l && tileAt(canvas, l, e);
      if (hit && hit.tile !== conv1Focus) {
        conv1Focus = hit.tile;
        renderConv1();
      }
    });
    canvas.addEventListener('keydown', (e) => {
      const l = layout();
      if (!l) return;
      const step: Record<string, number> = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -l.cols, ArrowDown: l.cols };
      if (step[e.key] === undefined) return;
      e.preventDefault();
      conv1Focus = Math.min(l.count - 1, Math.max(0, Math.max(0, conv1Focus) + step[e.key]));
      renderConv1();
    });
  }
}

// ---------------------------------------------------------------- primary capsules

function primaryLayout(scale = 4): TileLayout | null {
  if (!geo) return null;
  const t = geo.primary.types;
  const cols = t >= 16 ? 8 : t >= 4 ? 4 : t;
  return tileLayout(t, geo.primary.w, geo.primary.h, cols, scale >= 4 ? 3 : 2, scale);
}

function capsuleIndex(c: { type: number; y: number; x: number }): number {
  return (c.y * geo!.primary.w + c.x) * geo!.primary.types + c.type;
}

function renderPrimary(): void {
  const a = analysis;
  const l = primaryLayout();
  if (!a || a.kind !== 'capsnet' || !l || !geo) return;
  const canvas = $<HTMLCanvasElement>('primary-maps');
  paintTiles(canvas, l, (t, y, x) => sequential(a.primaryLengths[capsuleIndex({ type: t, y, x })]));
  if (capsFocus) outlinePixel(canvas, l, capsFocus.type, capsFocus.y, capsFocus.x);
  renderCapsuleInfo();
}

function renderCapsuleInfo(): void {
  const a = analysis;
  const root = $('capsule-info');
  if (!a || a.kind !== 'capsnet' || !geo) return;
  if (!capsFocus) {
    root.textContent = 'Hover over a capsule, or focus the map and use the arrow keys, to see its vector and where it sends its output.';
    return;
  }
  const i = capsuleIndex(capsFocus);
  const d = geo.primary.dim;
  const v = a.primary.subarray(i * d, (i + 1) * d);
  const J = geo.classes;
  const c = a.couplings[iteration].subarray(i * J, (i + 1) * J);
  let top = 0;
  for (let j = 1; j < J; j++) if (c[j] > c[top]) top = j;
  const vec = document.createElement('div');
  vec.className = 'vec';
  vec.setAttribute('aria-hidden', 'true');
  const m = Math.max(absMax(v), 1e-6);
  for (const x of v) {
    // Red up for positive, blue down for negative, from the middle line.
    const s = document.createElement('span');
    const bar = document.createElement('i');
    const h = Math.max(1, (Math.abs(x) / m) * 31);
    bar.style.height = `${h}px`;
    if (x < 0) {
      s.className = 'neg';
      bar.style.top = '32px';
    } else bar.style.bottom = '32px';
    s.append(bar);
    vec.append(s);
  }
  const text = document.createElement('div');
  const title = document.createElement('div');
  title.innerHTML = '';
  title.textContent = `Capsule type ${capsFocus.type + 1}, row ${capsFocus.y + 1}, column ${capsFocus.x + 1} (number ${i + 1} of ${a.primaryLengths.length}): length ${a.primaryLengths[i].toFixed(3)}.`;
  const route = document.createElement('div');
  route.textContent = `At routing iteration ${iteration + 1} it sends ${fmtPct(c[top])} of its output to digit capsule ${className(top)}.`;
  const nums = document.createElement('div');
  nums.className = 'numbers';
  nums.textContent = `[${Array.from(v, (x) => x.toFixed(3)).join(', ')}]`;
  text.append(title, route, nums);
  root.replaceChildren(vec, text);
}

function focusCapsule(c: { type: number; y: number; x: number } | null): void {
  capsFocus = c;
  renderPrimary();
  renderRouting();
}

function setupPrimaryInput(): void {
  const canvas = $<HTMLCanvasElement>('primary-maps');
  canvas.addEventListener('pointermove', (e) => {
    const l = primaryLayout();
    const hit = l && tileAt(canvas, l, e);
    if (hit && (hit.tile !== capsFocus?.type || hit.y !== capsFocus.y || hit.x !== capsFocus.x)) focusCapsule({ type: hit.tile, y: hit.y, x: hit.x });
  });
  canvas.addEventListener('keydown', (e) => {
    if (!geo) return;
    const { types, h, w } = geo.primary;
    const c = capsFocus ?? { type: 0, y: 0, x: 0 };
    let { type, y, x } = c;
    if (!capsFocus && e.key.startsWith('Arrow')) {
      e.preventDefault();
      focusCapsule(c);
      return;
    }
    switch (e.key) {
      case 'ArrowLeft': x--; break;
      case 'ArrowRight': x++; break;
      case 'ArrowUp': y--; break;
      case 'ArrowDown': y++; break;
      case 'PageDown': type++; break;
      case 'PageUp': type--; break;
      default: return;
    }
    e.preventDefault();
    if (x < 0) { x = w - 1; type--; }
    if (x >= w) { x = 0; type++; }
    if (y < 0) y = 0;
    if (y >= h) y = h - 1;
    type = (type + types) % types;
    focusCapsule({ type, y, x });
  });
  canvas.addEventListener('focus', () => {
    if (!capsFocus && analysis) focusCapsule(strongestCapsule());
  });
}

function strongestCapsule(): { type: number; y: number; x: number } | null {
  const a = analysis;
  if (!a || a.kind !== 'capsnet' || !geo) return null;
  let best = 0;
  for (let i = 1; i < a.primaryLengths.length; i++) if (a.primaryLengths[i] > a.primaryLengths[best]) best = i;
  const T = geo.primary.types;
  const pos = Math.floor(best / T);
  return { type: best % T, y: Math.floor(pos / geo.primary.w), x: pos % geo.primary.w };
}

// ---------------------------------------------------------------- routing

function buildRoutingMaps(): void {
  const root = $('routing-maps');
  root.replaceChildren();
  if (!geo) return;
  for (let j = 0; j < geo.classes; j++) {
    const fig = document.createElement('figure');
    const canvas = document.createElement('canvas');
    canvas.className = 'pixel';
    canvas.id = `routing-${j}`;
    canvas.setAttribute('role', 'img');
    const cap = document.createElement('figcaption');
    fig.append(canvas, cap);
    root.append(fig);
    canvas.addEventListener('pointermove', (e) => {
      const l = primaryLayout(2);
      const hit = l && tileAt(canvas, l, e);
      if (hit && (hit.tile !== capsFocus?.type || hit.y !== capsFocus.y || hit.x !== capsFocus.x)) focusCapsule({ type: hit.tile, y: hit.y, x: hit.x });
    });
  }
  const legend = $('routing-legend');
  legend.replaceChildren(
    ...Array.from({ length: geo.classes }, (_, j) => {
      const s = document.createElement('span');
      const i = document.createElement('i');
      i.style.background = cssColor(CLASS_COLORS[j % CLASS_COLORS.length]);
      s.append(i, className(j));
      return s;
    }),
  );
  const winner = $<HTMLCanvasElement>('routing-winner');
  winner.onpointermove = (e) => {
    const l = primaryLayout(4);
    const hit = l && tileAt(winner, l, e);
    if (hit && (hit.tile !== capsFocus?.type || hit.y !== capsFocus.y || hit.x !== capsFocus.x)) focusCapsule({ type: hit.tile, y: hit.y, x: hit.x });
  };
}

function updateIterationLabel(): void {
  const r = geo?.iterations ?? 1;
  $('iter-value').textContent = `${iteration + 1} of ${r}`;
  $<HTMLButtonElement>('iter-prev').disabled = iteration <= 0;
  $<HTMLButtonElement>('iter-next').disabled = iteration >= r - 1;
}

function renderRouting(): void {
  const a = analysis;
  if (!a || a.kind !== 'capsnet' || !geo) return;
  updateIterationLabel();
  const J = geo.classes;
  const c = a.couplings[iteration];
  const len = a.primaryLengths;
  const l = primaryLayout(2)!;
  const totalLen = len.reduce((s, x) => s + x, 0) || 1;
  const even = 1 / J;
  const maxLen = Math.max(maxOf(len), 1e-9);
  const weight = (i: number) => (weightByLength ? len[i] / maxLen : 1);
  // One scale for all iterations, so that stepping shows the change; a few
  // strongly routed capsules would wash out the rest, so the top 2% saturate.
  let scale = 1e-6;
  if (routingMode === 'delta') {
    const deltas: number[] = [];
    for (const cc of a.couplings) for (let i = 0; i < len.length; i++) for (let j = 0; j < J; j++) deltas.push((cc[i * J + j] - even) * weight(i));
    scale = robustScale(deltas);
    $('routing-scale').textContent = `White: an even split (1/${J} = ${even.toFixed(3)}). Full red or blue: ${scale.toPrecision(2)} or more above or below that${weightByLength ? ', times the capsule length relative to the longest capsule' : ''}.`;
  } else {
    $('routing-scale').textContent = `Black: 0, bright yellow: 1 (square-root scale, so an even split of ${even.toFixed(2)} stays visible).`;
  }
  for (let j = 0; j < J; j++) {
    const canvas = $<HTMLCanvasElement>(`routing-${j}`);
    let share = 0;
    for (let i = 0; i < len.length; i++) share += c[i * J + j] * len[i];
    share /= totalLen;
    paintTiles(canvas, l, (t, y, x) => {
      const i = capsuleIndex({ type: t, y, x });
      return routingMode === 'delta' ? diverging(((c[i * J + j] - even) * weight(i)) / scale) : sequential(Math.sqrt(c[i * J + j] * weight(i)));
    });
    if (capsFocus) outlinePixel(canvas, l, capsFocus.type, capsFocus.y, capsFocus.x);
    const fig = canvas.parentElement!;
    fig.classList.toggle('predicted', j === a.prediction);
    fig.querySelector('figcaption')!.textContent = `${className(j)} · ${fmtPct(share)}`;
    canvas.setAttribute('aria-label', `Couplings to digit capsule ${className(j)} at iteration ${iteration + 1}: it receives ${fmtPct(share)} of the primary capsules' total length`);
  }
  const lw = primaryLayout(4)!;
  const winner = $<HTMLCanvasElement>('routing-winner');
  paintTiles(
    winner,
    lw,
    (t, y, x) => {
      const i = capsuleIndex({ type: t, y, x });
      let best = 0;
      let second = -1;
      for (let j = 1; j < J; j++) {
        const v = c[i * J + j];
        if (v > c[i * J + best]) {
          second = c[i * J + best];
          best = j;
        } else if (v > second) second = v;
      }
      const fade = weight(i);
      const tie = c[i * J + best] - second < 1e-4;
      const col: RGB = tie ? [150, 150, 150] : CLASS_COLORS[best % CLASS_COLORS.length];
      return [col[0] * fade, col[1] * fade, col[2] * fade];
    },
    [255, 255, 255],
  );
  if (capsFocus) outlinePixel(winner, lw, capsFocus.type, capsFocus.y, capsFocus.x, '#ffffff');
  const bars = $('iter-bars');
  const lens = a.iterationLengths[iteration];
  let top = 0;
  for (let j = 1; j < J; j++) if (lens[j] > lens[top]) top = j;
  bars.replaceChildren(
    ...Array.from(lens, (v, j) => {
      const d = document.createElement('div');
      d.style.height = `${Math.max(1, 100 * v)}%`;
      d.dataset.label = `${className(j)}\n${v.toFixed(2)}`;
      if (j === top) d.className = 'leading';
      return d;
    }),
  );
  bars.setAttribute('aria-label', `Digit capsule lengths after routing iteration ${iteration + 1}: ${Array.from(lens, (v, j) => `${className(j)} ${v.toFixed(2)}`).join(', ')}`);
  renderCapsuleInfo();
}

function setIteration(r: number): void {
  if (!geo) return;
  iteration = Math.min(geo.iterations - 1, Math.max(0, r));
  renderRouting();
}

function stopPlay(): void {
  if (playTimer) clearInterval(playTimer);
  playTimer = 0;
  $('iter-play').setAttribute('aria-pressed', 'false');
  $('iter-play').textContent = 'Play';
}

function setupRoutingInput(): void {
  $('iter-prev').addEventListener('click', () => {
    stopPlay();
    setIteration(iteration - 1);
  });
  $('iter-next').addEventListener('click', () => {
    stopPlay();
    setIteration(iteration + 1);
  });
  $('iter-play').addEventListener('click', () => {
    if (playTimer) {
      stopPlay();
      return;
    }
    if (!geo) return;
    $('iter-play').setAttribute('aria-pressed', 'true');
    $('iter-play').textContent = 'Pause';
    setIteration(0);
    playTimer = window.setInterval(() => setIteration((iteration + 1) % (geo?.iterations ?? 1)), 1000);
  });
  $<HTMLSelectElement>('iter-mode').addEventListener('change', (e) => {
    routingMode = (e.target as HTMLSelectElement).value === 'value' ? 'value' : 'delta';
    renderRouting();
  });
  $<HTMLInputElement>('iter-weight').addEventListener('change', (e) => {
    weightByLength = (e.target as HTMLInputElement).checked;
    renderRouting();
  });
}

// ---------------------------------------------------------------- input

function sampleFile(set: string): string {
  return set === 'mnist' ? 'samples' : `samples-${set}`;
}

/** The sample set for a model: the one of the dataset it was trained on when the build has it, else MNIST. */
function sampleSetFor(e: Engine): string {
  const d = e.json.metadata?.dataset;
  return typeof d === 'string' && sampleSets.includes(d) ? d : 'mnist';
}

/** Load a sample set and show its images as buttons; false when it could not be loaded. */
async function loadSamples(set: string): Promise<boolean> {
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
    samples = {
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
    samples = null;
    root.textContent = `The test images could not be loaded (${(e as Error).message}); drawing and uploads still work.`;
    return false;
  }
  const s = samples;
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
function selectFirstSample(): void {
  if (!samples) return;
  const first = samples.indices.indexOf(0);
  chooseSample(first >= 0 ? first : 0, false);
}

function samplePixels(k: number): Float32Array {
  const s = samples!;
  return Float32Array.from(s.images.subarray(k * s.size, (k + 1) * s.size), (v) => v / 255);
}

function chooseSample(k: number, run = true): void {
  if (!samples) return;
  currentSample = k;
  const root = $('samples');
  [...root.children].forEach((b, i) => {
    b.setAttribute('aria-pressed', String(i === k));
    (b as HTMLElement).tabIndex = i === k ? 0 : -1;
  });
  const px = samplePixels(k);
  pad.showImage(px, 28, 28);
  inputSource = sampleTitle(samples, k);
  $('input-status').textContent = `${inputSource}. Draw on it to change it.`;
  $('upload-error').hidden = true;
  input = px;
  if (run) void runAnalysis(px);
}

function unpressSamples(): void {
  currentSample = -1;
  [...$('samples').children].forEach((b, i) => {
    b.setAttribute('aria-pressed', 'false');
    (b as HTMLElement).tabIndex = i === 0 ? 0 : -1;
  });
}

const pad = new DrawingPad($<HTMLCanvasElement>('pad'), {
  onChange: () => {
    if (!pad.dirty) return;
    if (currentSample >= 0) unpressSamples();
    inputSource = 'your drawing';
    $('input-status').textContent = 'Your drawing, centred and scaled like MNIST.';
    void runAnalysis(pad.toInput());
  },
});

function setupInput(): void {
  $('clear').addEventListener('click', () => {
    pad.clear();
    unpressSamples();
    inputSource = 'empty pad';
    $('input-status').textContent = 'Draw a digit in the black square.';
    $('upload-error').hidden = true;
    void runAnalysis(new Float32Array(784));
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
      inputSource = `uploaded "${file.name}"`;
      $('input-status').textContent = `Uploaded "${file.name}", converted to a 28×28 MNIST-style image.`;
      void runAnalysis(px);
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
  $('sliders-reset').addEventListener('click', () => {
    vector = base.slice();
    syncSliders();
    void requestDecode(performance.now(), false);
    schedulePerturb();
  });
}

// ---------------------------------------------------------------- start

let backendName = '';
let backendNote = '';

/** A small interface for tests and the curious (window.capsviz). */
const api = {
  get state() {
    return document.body.dataset.state;
  },
  get error() {
    return $('error').hidden ? null : $('error').textContent;
  },
  get backend() {
    return backendName;
  },
  get modelUrl() {
    return engine?.url ?? null;
  },
  get prediction() {
    return analysis ? { label: analysis.prediction, scores: Array.from(analysis.scores), source: inputSource } : null;
  },
  get iteration() {
    return engine?.kind === 'em' ? emIteration() : iteration;
  },
  latencies,
  decodeTimes,
  /** Resolves once no model work is running or scheduled. */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => (busy === 0 && !perturbTimer && !pendingInput && !decodePending ? resolve() : setTimeout(check, 15));
      check();
    });
  },
  /** Class scores for n images (h*w*c floats each, in [0, 1]). */
  async scoresFor(images: number[], n: number): Promise<number[]> {
    if (!engine) throw new Error('no model loaded');
    return Array.from(await engine.scores(Float32Array.from(images), n));
  },
};
(window as unknown as { capsviz: typeof api }).capsviz = api;

async function start(): Promise<void> {
  setupInput();
  setupConv1Input();
  setupPrimaryInput();
  setupRoutingInput();
  setupPerturbInput();
  const samplesReady = loadSamples('mnist');
  try {
    const b = await initBackend(params.get('backend'));
    backendName = b.backend;
    backendNote = b.note ?? '';
  } catch (e) {
    showError(`${(e as Error).message}. Try a current version of Chrome, Firefox, Safari or Edge.`);
    return;
  }
  await samplesReady;
  selectFirstSample();
  let models: ModelEntry[];
  try {
    models = await loadModelList();
  } catch (e) {
    showError((e as Error).message);
    return;
  }
  const select = $<HTMLSelectElement>('model-select');
  select.replaceChildren(
    ...models.map((m, i) => {
      const o = document.createElement('option');
      o.value = String(i);
      o.textContent = m.label;
      return o;
    }),
  );
  select.addEventListener('change', () => void loadModel(models[Number(select.value)]));
  await loadModel(models[0]);
}

void start();
