/**
 * The visualizer page: loads the model list and a model, runs the model on
 * every new input, and hands each analysis (a forward pass with its traced
 * intermediates) to the views. Each view (one file each) has `setup`, run
 * when a model loads, and `render`, run after every analysis; they share
 * state.ts and dom.ts.
 */
import { conv1View } from './conv1.js';
import { digitsView } from './digits.js';
import { $ } from './dom.js';
import { paintImage } from './draw.js';
import { emIteration, renderEm, setupEm } from './em.js';
import { initBackend, Engine, type Analysis, type InputImage } from './engine.js';
import { loadSamples, sampleFile, samplesFor, selectFirstSample, setupInput, setupInputFor, showNoSamples, type ModelEntry } from './inputs.js';
import { primaryView } from './primary.js';
import { reconstructionView } from './reconstruction.js';
import { routingView, stopPlay } from './routing.js';
import { clearError, onCapsuleFocus, setPageState, showError, state, track, type View } from './state.js';

const params = new URLSearchParams(location.search);

/** The views that CapsNet, the CNN and any other model share, in page order (the EM views are em.ts's). */
const VIEWS: View[] = [digitsView, reconstructionView, conv1View, primaryView, routingView];

const KIND_NAMES: Record<Engine['kind'], string> = {
  capsnet: 'CapsNet, dynamic routing',
  em: 'matrix capsules, EM routing',
  // The one architecture without capsules.
  plain: 'CNN baseline',
};

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
    if (Array.isArray(j.sampleSets)) state.sampleSets = ['mnist', ...j.sampleSets.filter((x) => x !== 'mnist')];
  } catch (e) {
    if (!forced) throw new Error(`could not read the list of models (models.json): ${(e as Error).message}`);
  }
  if (!list.length) throw new Error('no model is available: start the visualizer with capsnet viz --model DIR, or add ?model=URL/model.json to the address');
  return list;
}

async function loadModel(entry: ModelEntry): Promise<void> {
  setPageState('loading');
  clearError();
  stopPlay();
  $('model-info').textContent = `Loading ${entry.label}…`;
  const old = state.engine;
  state.engine = null;
  delete document.body.dataset.model;
  state.analysis = null;
  old?.dispose();
  let next: Engine;
  try {
    next = await track(Engine.load(entry.url));
  } catch (e) {
    $('model-info').textContent = 'No model loaded.';
    showError(`Could not load the model from ${entry.url}: ${(e as Error).message}. Check that the folder holds model.json and its weights file (as written by capsnet train), or choose another model above.`);
    return;
  }
  state.engine = next;
  document.body.dataset.model = next.model.modelType;
  setupInputFor(next);
  // A model gets the test images of its own data: those `capsnet viz` serves
  // with it, else those of the dataset it was trained on.
  const file = samplesFor(entry, next);
  if (file === null) {
    showNoSamples('This model was trained on a --data folder whose test images are not served here: start the visualizer with capsnet viz --model MODEL --data PATH to choose from them. Uploads work.');
  } else if (file !== state.samples?.file || !next.accepts(state.input)) {
    if (await track(loadSamples(file))) selectFirstSample();
  }
  setupViews();
  await runAnalysis(state.input);
  setPageState('ready');
}

function describeModel(): string {
  if (!state.engine) return '';
  const m = state.engine.model;
  const params = m.countParams();
  const p = params >= 1e6 ? `${(params / 1e6).toFixed(2)} M` : `${Math.round(params / 1e3)} k`;
  const kind = KIND_NAMES[state.engine.kind];
  let s = `${kind} · ${p} parameters`;
  if (state.geo) s += ` · ${state.geo.primary.h * state.geo.primary.w * state.geo.primary.types} primary capsules · ${state.geo.iterations} routing iterations`;
  s += ` · backend ${state.backendName}${state.backendNote ? ` (${state.backendNote})` : ''}`;
  if (state.analysis) s += ` · forward pass ${state.analysis.ms.toFixed(0)} ms`;
  return s;
}

// ---------------------------------------------------------------- analysis


/** Run the model on `img`; calls made while one is running collapse to the latest. */
async function runAnalysis(img: InputImage): Promise<void> {
  state.input = img;
  paintImage($<HTMLCanvasElement>('input-28'), img.data, img.width, img.height, img.channels);
  if (!state.engine) return; // loadModel analyses `input` once a model is there
  state.pendingInput = img;
  if (state.analysing) return;
  state.analysing = true;
  state.busy++;
  try {
    while (state.pendingInput && state.engine) {
      const px = state.pendingInput;
      state.pendingInput = null;
      const e: Engine = state.engine;
      const a = await e.analyze(px);
      if (e !== state.engine) break;
      onAnalysis(a);
    }
  } catch (e) {
    showError(`The model failed on this input: ${(e as Error).message}`);
  } finally {
    state.analysing = false;
    state.busy--;
  }
}

function onAnalysis(a: Analysis): void {
  state.analysis = a;
  state.selected = a.prediction;
  const [ih, iw, ic] = state.engine!.inputShape;
  paintImage($<HTMLCanvasElement>('input-28'), a.modelInput, iw, ih, ic);
  paintImage($<HTMLCanvasElement>('recon-input'), a.modelInput, iw, ih, ic);
  for (const v of VIEWS) v.render();
  if (a.kind === 'em') renderEm(a);
  $('model-info').textContent = describeModel();
}

// ---------------------------------------------------------------- view setup per model

function setupViews(): void {
  const engine = state.engine;
  if (!engine) return;
  state.geo = engine.kind === 'capsnet' ? engine.geometry() : null;
  $('view-em').hidden = engine.kind !== 'em';
  const [ih, iw] = engine.inputShape;
  $('seen-caption').textContent = `What the network sees (${ih}×${iw})`;
  for (const v of VIEWS) v.setup(engine);
  if (engine.kind === 'em') setupEm($('em-content'), engine, { onChange: () => undefined });
}


// ---------------------------------------------------------------- start

/** A small interface for tests and the curious (window.capsviz). */
const api = {
  get state() {
    return document.body.dataset.state;
  },
  get error() {
    return $('error').hidden ? null : $('error').textContent;
  },
  get backend() {
    return state.backendName;
  },
  get modelUrl() {
    return state.engine?.url ?? null;
  },
  get prediction() {
    return state.analysis ? { label: state.analysis.prediction, scores: Array.from(state.analysis.scores), source: state.inputSource } : null;
  },
  get iteration() {
    return state.engine?.kind === 'em' ? emIteration() : state.iteration;
  },
  latencies: state.latencies,
  decodeTimes: state.decodeTimes,
  /** Resolves once no model work is running or scheduled. */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => (state.busy === 0 && !state.perturbTimer && !state.pendingInput && !state.decodePending ? resolve() : setTimeout(check, 15));
      check();
    });
  },
  /** Class scores for n images (h*w*c floats each, in [0, 1]). */
  async scoresFor(images: number[], n: number): Promise<number[]> {
    if (!state.engine) throw new Error('no model loaded');
    return Array.from(await state.engine.scores(Float32Array.from(images), n));
  },
};
Object.assign(window, { capsviz: api });

async function start(): Promise<void> {
  setupInput((img) => void runAnalysis(img));
  for (const v of VIEWS) v.init?.();
  onCapsuleFocus(() => {
    primaryView.render();
    routingView.render();
  });
  const samplesReady = loadSamples(sampleFile('mnist'));
  try {
    const b = await initBackend(params.get('backend'));
    state.backendName = b.backend;
    state.backendNote = b.note ?? '';
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
