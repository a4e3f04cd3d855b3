/**
 * The visualizer page: loads the model list and a model into the worker
 * (engine.ts, worker.ts), asks it to analyse every new input, and hands
 * each analysis (a forward pass with its traced intermediates) to the
 * views. Each view (one file each) has `setup`, run when a model loads, and
 * `render`, run after every analysis; they share state.ts and dom.ts. The
 * Train panel (train.ts) trains in the same worker, and the views follow
 * its weights.
 */
import { capsuleLayersIteration, capsuleLayersView } from './capsuleLayers.js';
import { conv1View } from './conv1.js';
import { digitsView } from './digits.js';
import { $, el } from './dom.js';
import { paintImage } from './draw.js';
import { initBackend, Engine, worker, type Analysis, type InputImage } from './engine.js';
import { loadSamples, sampleFile, samplesFor, selectFirstSample, setupInput, setupInputFor, showNoSamples, showSampleImages, type ModelEntry } from './inputs.js';
import { primaryView } from './primary.js';
import type { BackendChoice, SampleImages, TrainableArch, TrainSetEntry } from './protocol.js';
import { reconstructionView } from './reconstruction.js';
import { routingView, stopPlay } from './routing.js';
import { clearError, onCapsuleFocus, setPageState, showError, state, track, type View } from './state.js';
import { forgetTraining, initTrainPanel, toggleRun, trainInfo, trainsFreshModel, type TrainOffer } from './train.js';
import { param, setParams } from './url.js';

/**
 * Every view, in page order. Each shows the parts of the model's inspection
 * layout it draws and hides itself when the model has none of them.
 */
const VIEWS: View[] = [digitsView, reconstructionView, conv1View, primaryView, routingView, capsuleLayersView];

// ---------------------------------------------------------------- models

interface ModelsJson {
  models?: ModelEntry[];
  sampleSets?: string[];
  trainable?: TrainableArch[];
  trainSets?: TrainSetEntry[];
  trainImages?: number;
  testImages?: number;
}

/** The models the page offers (with ?model=URL first), and what the Train panel offers. */
async function loadModelList(): Promise<{ models: ModelEntry[]; offer: TrainOffer }> {
  const forced = param('model');
  const list: ModelEntry[] = [];
  let j: ModelsJson = {};
  try {
    const res = await fetch('models.json');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    j = (await res.json()) as ModelsJson;
  } catch (e) {
    if (!forced) throw new Error(`could not read the list of models (models.json): ${(e as Error).message}`);
  }
  const shipped = j.models ?? [];
  // ?model= names a model of the list by its id, or any model.json by its URL.
  if (forced && !shipped.some((m) => m.id === forced)) list.push({ id: forced, label: forced, url: forced });
  list.push(...shipped);
  if (forced) list.sort((a, b) => Number(b.id === forced) - Number(a.id === forced));
  if (Array.isArray(j.sampleSets)) state.sampleSets = ['mnist', ...j.sampleSets.filter((x) => x !== 'mnist')];
  const offer: TrainOffer = { trainable: j.trainable ?? [], trainSets: j.trainSets ?? [], trainImages: j.trainImages ?? 0, testImages: j.testImages ?? 0 };
  if (!list.length && !offer.trainable.length) throw new Error('no model is available: start the visualizer with capsnet viz --model DIR, or add ?model=URL/model.json to the address');
  return { models: list, offer };
}

async function loadModel(entry: ModelEntry): Promise<void> {
  setPageState('loading');
  clearError();
  // The worker gives up the model trained here for this one.
  forgetTraining();
  $('model-select').querySelector(`option[value="${TRAINED}"]`)?.remove();
  $('model-info').textContent = `Loading ${entry.label}…`;
  let next: Engine;
  try {
    next = await track(Engine.load({ kind: 'url', url: entry.url }));
  } catch (e) {
    state.engine = null;
    delete document.body.dataset.model;
    $('model-info').textContent = 'No model loaded.';
    showError(`Could not load the model from ${entry.url}: ${(e as Error).message}. Check that the folder holds model.json and its weights file (as written by capsnet train), or choose another model above.`);
    return;
  }
  await adopt(next, entry);
}

/**
 * Show the model the worker holds now: the views set up for it, the test
 * images of its own data (those `capsnet viz` serves with it, those of the
 * folder the Train panel trains it on, else those of the dataset it was
 * trained on), and an analysis of the input.
 */
async function adopt(next: Engine, entry?: ModelEntry, own?: SampleImages | null): Promise<void> {
  setPageState('loading');
  stopPlay();
  state.engine = next;
  state.analysis = null;
  document.body.dataset.model = next.modelType;
  setupInputFor(next);
  const file = own ? own.file : samplesFor(entry, next);
  if (own) {
    if (file !== state.samples?.file || !next.accepts(state.input)) {
      showSampleImages(own);
      selectFirstSample();
    }
  } else if (file === null) {
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
  const e = state.engine;
  const { title, primaryCapsules: primary, routing } = e.layout;
  const n = e.summary.params;
  const p = n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : `${Math.round(n / 1e3)} k`;
  let s = `${title} · ${p} parameters`;
  if (primary) s += ` · ${primary.h * primary.w * primary.types} primary capsules`;
  if (routing) s += ` · ${routing.iterations} routing iteration${routing.iterations === 1 ? '' : 's'}`;
  s += ` · backend ${state.backendName}${state.backendNote ? ` (${state.backendNote})` : ''}`;
  return s;
}

/** The value of the model menu's entry for a model trained in this page. */
const TRAINED = 'trained';

/** Show a model the Train panel set up or loaded, named in the model menu by `label`, with its own test images when the panel has them. */
async function adoptTrained(e: Engine, label: string, samples?: SampleImages | null): Promise<void> {
  const select = $<HTMLSelectElement>('model-select');
  let option = select.querySelector<HTMLOptionElement>(`option[value="${TRAINED}"]`);
  if (!option) {
    option = el('option', { value: TRAINED });
    select.append(option);
  }
  option.textContent = option.title = label;
  select.value = TRAINED;
  await adopt(e, undefined, samples);
}

// ---------------------------------------------------------------- analysis

/** Run the model on `img`; calls made while one is running collapse to the latest. */
async function runAnalysis(img: InputImage): Promise<void> {
  if (img !== state.input && state.chosenClass !== null) {
    // A new input: the decoder views follow its prediction again.
    state.chosenClass = null;
    setParams({ capsule: null });
  }
  state.input = img;
  paintImage($<HTMLCanvasElement>('input-28'), img.data, img.width, img.height, img.channels);
  if (!state.engine) return; // adopt analyses `input` once a model is there
  state.pendingInput = img;
  if (state.analysing) return;
  state.analysing = true;
  state.busy++;
  try {
    while (state.pendingInput && state.engine) {
      const px = state.pendingInput;
      state.pendingInput = null;
      const e: Engine = state.engine;
      let a: Analysis;
      try {
        a = await e.analyze(px);
      } catch (err) {
        if (e !== state.engine) continue; // the model was replaced meanwhile: the new one gets the input
        throw err;
      }
      if (e !== state.engine) continue;
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
  const n = a.scores.length;
  state.selected = state.chosenClass !== null && state.chosenClass < n ? state.chosenClass : a.prediction;
  const [ih, iw, ic] = state.engine!.inputShape;
  paintImage($<HTMLCanvasElement>('input-28'), a.modelInput, iw, ih, ic);
  paintImage($<HTMLCanvasElement>('recon-input'), a.modelInput, iw, ih, ic);
  for (const v of VIEWS) v.render();
  $('model-info').textContent = describeModel();
}

// ---------------------------------------------------------------- view setup per model

function setupViews(): void {
  const engine = state.engine;
  if (!engine) return;
  state.layout = engine.layout;
  const [ih, iw] = engine.inputShape;
  $('seen-caption').textContent = `What the network sees (${ih}×${iw})`;
  for (const v of VIEWS) v.setup(engine);
}

/**
 * The shortest time between two refreshes while training: the views' work
 * shares the worker with training, and on a fast GPU a refresh after every
 * step would halve the training speed.
 */
const REFRESH_MS = 400;
let lastRefresh = 0;
let refreshTimer = 0;

/** The weights changed (training): the kernels and every view, on the same input, at most every REFRESH_MS. */
function refresh(): void {
  if (refreshTimer) return;
  refreshTimer = window.setTimeout(() => {
    refreshTimer = 0;
    lastRefresh = performance.now();
    for (const v of VIEWS) v.refresh?.();
    void runAnalysis(state.input);
  }, Math.max(0, lastRefresh + REFRESH_MS - performance.now()));
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
  /** The backend the worker runs on, why, and the software renderer that draws it, if one does. */
  backendChoice: null as BackendChoice | null,
  get modelUrl() {
    return state.engine?.summary.source ?? null;
  },
  get prediction() {
    return state.analysis ? { label: state.analysis.prediction, scores: Array.from(state.analysis.scores), source: state.inputSource } : null;
  },
  get iteration() {
    return capsuleLayersIteration() ?? state.iteration;
  },
  /** The Train panel's state, its loss curve and its checks. */
  get train() {
    return trainInfo();
  },
  latencies: state.latencies,
  decodeTimes: state.decodeTimes,
  /** Resolves once no model work is running or scheduled (training aside). */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => (state.busy === 0 && !state.perturbTimer && !state.pendingInput && !state.decodePending ? resolve() : setTimeout(check, 15));
      check();
    });
  },
  /** Training images per second on the page's backend: `steps` timed steps of a fresh model after one warm-up (npm run bench:browser). */
  bench(o: { arch: string; preset: string; batchSize: number; steps: number }): Promise<{ imagesPerSecond: number; stepMs: number[] }> {
    return worker().call('bench', { ...o, dataUrl: document.baseURI, dataset: 'mnist' });
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
  let backend;
  try {
    backend = await initBackend(param('backend'));
    state.backendName = backend.backend;
    state.backendNote = backend.note ?? '';
    api.backendChoice = backend;
  } catch (e) {
    showError(`${(e as Error).message}. Try a current version of Chrome, Firefox, Safari or Edge.`);
    return;
  }
  await samplesReady;
  selectFirstSample();
  // The address's choice of class capsule holds for the first input.
  const capsule = param('capsule');
  if (capsule !== null && /^\d+$/.test(capsule)) state.chosenClass = Number(capsule);
  let models: ModelEntry[];
  let offer: TrainOffer;
  try {
    ({ models, offer } = await loadModelList());
  } catch (e) {
    showError((e as Error).message);
    return;
  }
  const select = $<HTMLSelectElement>('model-select');
  select.replaceChildren(...models.map((m, i) => el('option', { value: String(i), textContent: m.label, title: m.label })));
  select.addEventListener('change', () => {
    if (select.value === TRAINED) return;
    const m = models[Number(select.value)];
    setParams({ model: m.id });
    void loadModel(m);
  });
  const { autoTrain, addressError } = initTrainPanel({ adopt: adoptTrained, refresh, showError }, offer, backend);
  // ?train=1 with a fresh model shows that model from the start.
  if (models.length && !(autoTrain && trainsFreshModel())) await loadModel(models[0]);
  if (addressError) showError(addressError);
  else if (autoTrain) await toggleRun();
  else if (!models.length) setPageState('ready');
}

void start();
