/**
 * The Train panel: choose an architecture (or the model shown, to
 * fine-tune it), the data and the schedule; run, pause, step one batch,
 * reset; watch the loss and the test accuracy while every view follows the
 * changing weights. Training runs in the worker (training.ts) with the
 * library's training step. The model leaves the page in capsnet's
 * saved-model format (a zip of model.json and weights.bin) and comes back
 * the same way. The data is a set packed with the page, or the user's own
 * folder of pictures, picked or dropped, which the worker reads as
 * `capsnet train --data` reads one (folderData.ts).
 *
 * The panel's element carries its state for tests and scripts:
 * data-train-state (idle, running, paused, done), data-train-epoch,
 * data-train-test-accuracy (a fraction) and data-train-backend.
 */
import { strToU8, unzipSync, zipSync } from 'fflate';
import { drawChart } from './chart.js';
import { $, el, fmtPct } from './dom.js';
import { Engine, worker } from './engine.js';
import { FOLDER_DATASET, type AccuracyCheck, type BackendChoice, type FolderFile, type FolderOptions, type FolderSummary, type ModelSummary, type SampleImages, type TrainableArch, type TrainSetEntry, type TrainSetup, type TrainStatus } from './protocol.js';
import { state } from './state.js';
import { choiceParam, numberParam, param, setParams } from './url.js';

/** What the page gives the panel: how to show a model the worker now holds, and its own errors. */
export interface TrainPanelHooks {
  /** Show `engine` (set up the views for it and analyse the input), named `label` in the model menu; `samples`: its own test images, when the page has them. */
  adopt(engine: Engine, label: string, samples?: SampleImages | null): Promise<void>;
  /** The weights changed: analyse the input again. */
  refresh(): void;
  showError(message: string): void;
}

/** The fresh models offered, and the datasets packed for training (models.json). */
export interface TrainOffer {
  trainable: TrainableArch[];
  trainSets: TrainSetEntry[];
  /** Images in the packed sets (the most a run can use). */
  trainImages: number;
  testImages: number;
}

/** The schedule's settings: the address's names (capsnet train's flags), their limits and defaults. */
const NUMBERS = {
  'train-limit': { id: 'train-limit', min: 1, max: 60000, integer: true },
  'test-limit': { id: 'test-limit', min: 1, max: 10000, integer: true },
  epochs: { id: 'train-epochs', min: 1, max: 100, integer: true, default: 1 },
  'batch-size': { id: 'train-batch', min: 1, max: 512, integer: true, default: 32 },
  lr: { id: 'train-lr', min: 1e-6, max: 1, integer: false, default: 0.001 },
} as const;
type NumberKey = keyof typeof NUMBERS;

/** A folder's settings: the address's names (capsnet train's flags), their limits and defaults (image-size: blank for the rule's choice). */
const FOLDER_NUMBERS = {
  'val-split': { id: 'train-val-split', min: 0.01, max: 0.99, integer: false, default: '0.2' },
  'image-size': { id: 'train-image-size', min: 4, max: 256, integer: true, default: '' },
} as const;
type FolderKey = keyof typeof FOLDER_NUMBERS;

/** capsnet train's defaults for what the panel does not show. */
const LR_DECAY = 0.96;
const SHIFT = 2;
const SEED = 1;
/** --data-seed's default: the seed of a folder's held-out split. */
const DATA_SEED = 1;
const CHECKS_PER_EPOCH = 4;
/** Test-accuracy checks per epoch: the address's checks=N (not a control: for tests and scripts), else CHECKS_PER_EPOCH. */
let addressChecks = CHECKS_PER_EPOCH;

const CURRENT = 'current';

let hooks: TrainPanelHooks;
let offer: TrainOffer;
let backend: BackendChoice;
/** The setup the worker trains with, once set up; a changed control makes it stale. */
let active: TrainSetup | null = null;
let status: TrainStatus | null = null;
let losses: { x: number; y: number }[] = [];
let checks: AccuracyCheck[] = [];
/** The folder of pictures the worker read last, as its settings make it (null: none yet). */
let folderInfo: (FolderSummary & { id: number }) | null = null;
/** Serializes the panel's requests (a click while one runs waits for it). */
let queue: Promise<unknown> = Promise.resolve();

function panel(): HTMLElement {
  return $('view-train');
}

function numberInput(key: NumberKey): HTMLInputElement {
  return $<HTMLInputElement>(NUMBERS[key].id);
}

function folderInput(key: FolderKey): HTMLInputElement {
  return $<HTMLInputElement>(FOLDER_NUMBERS[key].id);
}

function chosenDataset(): string {
  return $<HTMLSelectElement>('train-dataset').value;
}

/** The largest value a setting takes: the image limits are the sizes of the packed sets, or of the folder's splits. */
function largest(key: NumberKey): number {
  const folder = chosenDataset() === FOLDER_DATASET ? folderInfo : null;
  if (key === 'train-limit') return folder ? folder.trainCount : offer.trainImages;
  if (key === 'test-limit') return folder ? folder.testCount : offer.testImages;
  return NUMBERS[key].max;
}

/** The control's label, for messages. */
function labelOf(input: HTMLInputElement, fallback: string): string {
  return input.labels?.[0]?.firstChild?.textContent?.trim() || fallback;
}

/** A folder's settings as the controls have them, checked, or an error naming the first bad one. */
function readFolderOptions(): FolderOptions {
  const read = (key: FolderKey): number | null => {
    const spec = FOLDER_NUMBERS[key];
    const input = folderInput(key);
    if (input.value === '' && spec.default === '') return null;
    const v = Number(input.value);
    if (input.value === '' || !Number.isFinite(v) || v < spec.min || v > spec.max || (spec.integer && !Number.isInteger(v))) {
      throw new Error(`${labelOf(input, key)}: expected ${spec.integer ? 'a whole number' : 'a number'} from ${spec.min} to ${spec.max}${spec.default === '' ? ', or nothing for the pictures\' own size' : ''}`);
    }
    return v;
  };
  return { valSplit: read('val-split')!, imageSize: read('image-size'), seed: DATA_SEED };
}

/** The settings as the controls have them, checked, or an error naming the first bad one. */
function readSetup(): TrainSetup {
  const archValue = $<HTMLSelectElement>('train-arch').value;
  const values = {} as Record<NumberKey, number>;
  for (const [key, spec] of Object.entries(NUMBERS) as [NumberKey, (typeof NUMBERS)[NumberKey]][]) {
    const input = numberInput(key);
    const v = Number(input.value);
    const max = largest(key);
    if (input.value === '' || !Number.isFinite(v) || v < spec.min || v > max || (spec.integer && !Number.isInteger(v))) {
      throw new Error(`${labelOf(input, key)}: expected ${spec.integer ? 'a whole number' : 'a number'} from ${spec.min} to ${max}`);
    }
    values[key] = v;
  }
  const [arch, preset] = archValue.split('/');
  const dataset = chosenDataset();
  let folder: TrainSetup['folder'];
  if (dataset === FOLDER_DATASET) {
    if (!folderInfo) throw new Error('Data: choose a folder of pictures (or drop one on the Train panel) first');
    folder = { id: folderInfo.id, name: folderInfo.name, ...readFolderOptions() };
  }
  return {
    start: archValue === CURRENT ? { kind: 'current' } : { kind: 'fresh', arch, preset },
    dataset,
    ...(folder ? { folder } : {}),
    dataUrl: document.baseURI,
    trainLimit: values['train-limit'],
    testLimit: values['test-limit'],
    epochs: values.epochs,
    batchSize: values['batch-size'],
    learningRate: values.lr,
    lrDecay: LR_DECAY,
    shift: SHIFT,
    seed: SEED,
    checksPerEpoch: addressChecks,
  };
}

/** The controls' settings into the address. */
function writeParams(): void {
  const values: Record<string, string | number> = {};
  const archValue = $<HTMLSelectElement>('train-arch').value;
  if (archValue === CURRENT) values.arch = CURRENT;
  else [values.arch, values.preset] = archValue.split('/');
  values.dataset = chosenDataset();
  for (const key of Object.keys(NUMBERS) as NumberKey[]) values[key] = numberInput(key).value;
  // A folder's settings go with a folder (the folder itself cannot: it is chosen again after opening the link).
  const folder = values.dataset === FOLDER_DATASET;
  const folderValues = Object.fromEntries((Object.keys(FOLDER_NUMBERS) as FolderKey[]).map((k) => [k, folder ? folderInput(k).value || null : null]));
  setParams({ preset: null, ...values, ...folderValues });
}

/** The address's settings into the controls; a bad value is an error naming it, and the default stays. */
function readParams(): void {
  addressChecks = numberParam('checks', { min: 1, max: 100, integer: true }) ?? CHECKS_PER_EPOCH;
  const archs = offer.trainable.map((t) => t.arch);
  const arch = choiceParam('arch', [...new Set([...archs, CURRENT])]);
  const select = $<HTMLSelectElement>('train-arch');
  if (arch === CURRENT) select.value = CURRENT;
  else if (arch) {
    const presets = offer.trainable.filter((t) => t.arch === arch).map((t) => t.preset);
    const preset = choiceParam('preset', presets) ?? presets[0];
    select.value = `${arch}/${preset}`;
  }
  const dataset = choiceParam('dataset', [...offer.trainSets.map((s) => s.dataset), FOLDER_DATASET]);
  if (dataset) $<HTMLSelectElement>('train-dataset').value = dataset;
  for (const [key, spec] of Object.entries(FOLDER_NUMBERS) as [FolderKey, (typeof FOLDER_NUMBERS)[FolderKey]][]) {
    const v = numberParam(key, { min: spec.min, max: spec.max, integer: spec.integer });
    if (v !== null) folderInput(key).value = String(v);
  }
  for (const [key, spec] of Object.entries(NUMBERS) as [NumberKey, (typeof NUMBERS)[NumberKey]][]) {
    const v = numberParam(key, { min: spec.min, max: largest(key), integer: spec.integer });
    if (v !== null) numberInput(key).value = String(v);
  }
}

function setAttributes(): void {
  const p = panel();
  p.dataset.trainState = status?.state ?? 'idle';
  p.dataset.trainEpoch = String(status?.epoch ?? 0);
  p.dataset.trainTestAccuracy = status?.testAccuracy != null ? String(status.testAccuracy) : '';
  p.dataset.trainBackend = backend.backend;
}

function describeStatus(): string {
  const parts: string[] = [`Backend ${backend.backend}${backend.note ? ` (${backend.note})` : ''}`];
  if (!status || !active) return `${parts[0]}. Press Train to start.`;
  if (status.imagesPerSecond !== null) parts.push(`${status.imagesPerSecond.toFixed(1)} images/s`);
  parts.push(status.activity);
  const last = losses[losses.length - 1];
  if (last) parts.push(`loss ${last.y.toFixed(4)}`);
  if (status.testAccuracy !== null) parts.push(`test accuracy ${fmtPct(status.testAccuracy)} on ${status.testCount} images`);
  return `${parts.join(' · ')}.`;
}

function renderCharts(): void {
  const epochLen = status && status.stepsPerEpoch ? status.stepsPerEpoch : 1;
  const epochs = status?.epochs ?? active?.epochs ?? 1;
  drawChart($<HTMLCanvasElement>('train-loss-chart'), [{ points: losses.map((p) => ({ x: p.x / epochLen, y: p.y })), color: '#2756c5', smooth: 0.8 }], {
    xLabel: 'epochs',
    xMax: epochs,
    yMin: 0,
    formatY: (v) => v.toFixed(2),
    formatX: (v) => String(Number(v.toFixed(2))),
  });
  drawChart($<HTMLCanvasElement>('train-acc-chart'), [{ points: checks.map((c) => ({ x: c.epochs, y: 100 * c.accuracy })), color: '#b2182b', dots: true }], {
    xLabel: 'epochs',
    xMax: epochs,
    yMin: 0,
    yMax: 100,
    formatY: (v) => `${v}%`,
    formatX: (v) => String(Number(v.toFixed(2))),
  });
  const checksPerEpoch = active?.checksPerEpoch ?? addressChecks;
  $('train-acc-caption').textContent = `Test accuracy on the first ${status?.testCount || numberInput('test-limit').value} test images, ${checksPerEpoch === 1 ? 'after each epoch' : `${checksPerEpoch} times an epoch`}`;
}

function renderButtons(): void {
  const s = status?.state ?? 'idle';
  const run = $<HTMLButtonElement>('train-run');
  run.textContent = s === 'running' ? 'Pause' : s === 'paused' ? 'Continue' : s === 'done' ? 'Train again' : 'Train';
  run.setAttribute('aria-pressed', String(s === 'running'));
  $<HTMLButtonElement>('train-step').disabled = s === 'running' || s === 'done';
  $<HTMLButtonElement>('train-reset').disabled = !active || s === 'running';
  for (const id of SETTINGS) $<HTMLInputElement>(id).disabled = s === 'running' || (id === 'train-folder' && folderReading);
}

/** Every control of a setting, disabled while training runs. */
const SETTINGS = ['train-arch', 'train-dataset', ...Object.values(NUMBERS).map((n) => n.id), ...Object.values(FOLDER_NUMBERS).map((n) => n.id), 'train-folder', 'train-load'];

function render(): void {
  $('train-folder-row').hidden = chosenDataset() !== FOLDER_DATASET;
  setAttributes();
  renderButtons();
  $('train-status').textContent = describeStatus();
  renderCharts();
}

function onStatus(s: TrainStatus): void {
  // The new losses are those of the last steps up to step s.step.
  for (const [i, y] of s.losses.entries()) losses.push({ x: s.step - s.losses.length + i + 1, y });
  checks.push(...s.checks);
  status = s;
  if (s.error) hooks.showError(`Training stopped: ${s.error}`);
  render();
}

/** Run one request of the panel after the ones before it; errors go to the page. */
function enqueue(f: () => Promise<void>): Promise<void> {
  const next = queue.then(f).catch((e: Error) => hooks.showError(e.message));
  queue = next;
  return next;
}

/** Set up training with the controls' settings (a new model, or the one shown), unless the worker has them already. */
async function ensureSetup(): Promise<void> {
  const setup = readSetup();
  if (active && JSON.stringify(active) === JSON.stringify(setup) && status?.state !== 'done') return;
  const { summary, status: s, samples: own } = await worker().call('trainSetup', { setup });
  active = setup;
  samples = own;
  losses = [];
  checks = [];
  status = s;
  render();
  await adopt(summary);
}

/** The test images of the folder the model trains on, for the input card (null with a packed set: the page has those). */
let samples: SampleImages | null = null;

async function adopt(summary: ModelSummary): Promise<void> {
  await hooks.adopt(new Engine(summary), `Trained in this page: ${summary.layout.title}`, samples);
}

/** Train (or continue), or pause when training. */
export function toggleRun(): Promise<void> {
  return enqueue(async () => {
    if (status?.state === 'running') {
      onStatus((await worker().call('trainControl', { action: 'pause' })).status);
      return;
    }
    await ensureSetup();
    onStatus((await worker().call('trainControl', { action: 'run' })).status);
  });
}

function step(): Promise<void> {
  return enqueue(async () => {
    await ensureSetup();
    onStatus((await worker().call('trainControl', { action: 'step' })).status);
  });
}

function reset(): Promise<void> {
  return enqueue(async () => {
    if (!active) return;
    const r = await worker().call('trainControl', { action: 'reset' });
    losses = [];
    checks = [];
    status = r.status;
    render();
    if (r.summary) await adopt(r.summary);
  });
}

/** A folder name for the downloaded model: what it is and what it was trained on. */
function downloadName(): string {
  const e = state.engine;
  const dataset = String(e?.metadata.dataset ?? active?.dataset ?? 'model');
  const what = active?.start.kind === 'fresh' ? `${active.start.arch}-${active.start.preset}` : (e?.modelType ?? 'model');
  return `${what}-${dataset}${active ? '-browser' : ''}`.replace(/[^a-z0-9._-]+/gi, '-');
}

async function download(): Promise<void> {
  const e = state.engine;
  if (!e) throw new Error('no model to download');
  const { json, weights } = await e.save();
  const dir = downloadName();
  const zip = zipSync({ [dir]: { 'model.json': strToU8(json), 'weights.bin': weights } }, { level: 6 });
  const url = URL.createObjectURL(new Blob([zip], { type: 'application/zip' }));
  const a = el('a', { href: url, download: `${dir}.zip` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  const meta = JSON.parse(json) as { metadata?: { testAccuracy?: number; testImages?: { dataset: string; first: number; folder?: Record<string, number | boolean> } } };
  const t = meta.metadata?.testImages;
  $('train-download-note').textContent = t
    ? `Saved ${dir}.zip in capsnet's model format. Unzip it and run: capsnet eval --model ${dir} ${evalData(t)} --limit ${t.first} (this page measured ${fmtPct(meta.metadata!.testAccuracy!)} on those images).`
    : `Saved ${dir}.zip in capsnet's model format. Unzip it and use the folder wherever capsnet takes --model.`;
}

/** capsnet eval's flags for the test images a model's metadata records: a named dataset, or a folder with its split (where the folder is, the page cannot know). */
function evalData(t: { dataset: string; folder?: Record<string, number | boolean> }): string {
  if (!t.folder) return `--dataset ${t.dataset}`;
  const flags = Object.entries(t.folder).map(([k, v]) => (v === true ? ` --${k}` : ` --${k} ${v}`));
  const name = /[^\w.-]/.test(t.dataset) ? `'${t.dataset.replace(/'/g, "'\\''")}'` : t.dataset;
  return `--data PATH/TO/${name}${flags.join('')}`;
}

/** model.json and its weights file from a zip, or from the two files picked together. */
async function readModelFiles(files: File[]): Promise<{ json: unknown; weights: Uint8Array; name: string }> {
  const entries = new Map<string, Uint8Array>();
  for (const f of files) {
    const bytes = new Uint8Array(await f.arrayBuffer());
    if (/\.zip$/i.test(f.name)) for (const [path, data] of Object.entries(unzipSync(bytes))) entries.set(path.split('/').pop()!, data);
    else entries.set(f.name, bytes);
  }
  const name = files.map((f) => f.name).join(', ');
  const jsonBytes = entries.get('model.json');
  if (!jsonBytes) throw new Error(`${name}: choose a model's model.json together with its weights.bin, or the .zip that Download model saves`);
  let json: { weightsManifest?: { paths?: string[] }[] };
  try {
    json = JSON.parse(new TextDecoder().decode(jsonBytes)) as typeof json;
  } catch {
    throw new Error(`${name}: model.json is not valid JSON`);
  }
  const weightsName = json.weightsManifest?.[0]?.paths?.[0] ?? 'weights.bin';
  const weights = entries.get(weightsName);
  if (!weights) throw new Error(`${name}: model.json's weights file ${weightsName} was not chosen with it`);
  return { json, weights, name };
}

async function loadFiles(files: File[]): Promise<void> {
  const { json, weights, name } = await readModelFiles(files);
  const engine = await Engine.load({ kind: 'files', json, weights, name });
  active = null;
  status = null;
  samples = null;
  losses = [];
  checks = [];
  $<HTMLSelectElement>('train-arch').value = CURRENT;
  writeParams();
  render();
  await hooks.adopt(engine, `Loaded: ${name}`);
}

function buildControls(): void {
  const arch = $<HTMLSelectElement>('train-arch');
  arch.replaceChildren(
    ...offer.trainable.map((t) => el('option', { value: `${t.arch}/${t.preset}`, textContent: t.label })),
    el('option', { value: CURRENT, textContent: 'The model shown (fine-tune it)' }),
  );
  const data = $<HTMLSelectElement>('train-dataset');
  data.replaceChildren(
    ...offer.trainSets.map((s) => el('option', { value: s.dataset, textContent: s.title })),
    el('option', { value: FOLDER_DATASET, textContent: 'Your own folder of pictures…' }),
  );
  setLimits(offer.trainImages, offer.testImages);
  for (const key of ['epochs', 'batch-size', 'lr'] as const) numberInput(key).value = String(NUMBERS[key].default);
  for (const key of Object.keys(FOLDER_NUMBERS) as FolderKey[]) folderInput(key).value = FOLDER_NUMBERS[key].default;
}

/** The image limits' largest values, and the limits set to them. */
function setLimits(train: number, test: number): void {
  for (const [key, n] of [['train-limit', train], ['test-limit', test]] as const) {
    numberInput(key).max = String(n);
    numberInput(key).value = String(n);
  }
}

/**
 * The image limits for the chosen data (the packed sets' sizes, or the
 * folder's splits): a limit that was all of the data before, or that the
 * data no longer has, becomes all of it; a smaller one (the address's) stays.
 */
function fitLimits(): void {
  for (const key of ['train-limit', 'test-limit'] as const) {
    const input = numberInput(key);
    const n = largest(key);
    const v = Number(input.value);
    if (input.value === '' || !(v >= 1) || v > n || String(v) === input.max) input.value = String(n);
    input.max = String(n);
  }
}

// ---------------------------------------------------------------- parameter counts

/** Counts asked for, latest last: an older answer that arrives late is dropped. */
let countRequest = 0;

function formatCount(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e5 ? `${Math.round(n / 1e3)} k` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n);
}

/**
 * Each fresh model's trainable parameters in the model menu, counted by the
 * worker on the model built for the chosen data (its image size and
 * classes change them): nothing here is written by hand.
 */
async function showParamCounts(): Promise<void> {
  const dataset = chosenDataset();
  if (dataset === FOLDER_DATASET && !folderInfo) return;
  let folder: TrainSetup['folder'];
  try {
    if (dataset === FOLDER_DATASET) folder = { id: folderInfo!.id, name: folderInfo!.name, ...readFolderOptions() };
  } catch {
    return; // a bad folder setting: the panel says so when training starts
  }
  const request = ++countRequest;
  const { inputShape, numClasses, counts } = await worker().call('paramCounts', { data: { dataset, dataUrl: document.baseURI, folder }, models: offer.trainable.map(({ arch, preset }) => ({ arch, preset })) });
  if (request !== countRequest) return;
  const options = $<HTMLSelectElement>('train-arch').options;
  const shape = `${inputShape[0]}×${inputShape[1]}×${inputShape[2]} input, ${numClasses} classes`;
  offer.trainable.forEach((t, i) => {
    const { params, withoutDecoder } = counts[i];
    const option = options[i];
    option.textContent = `${t.label} · ${formatCount(params)} parameters${withoutDecoder !== null ? ` (${formatCount(withoutDecoder)} without the decoder)` : ''}`;
    option.title = `${option.textContent}, for a ${shape}`;
    option.dataset.params = String(params);
  });
}

// ---------------------------------------------------------------- the user's folder of pictures

/** Whether the worker is reading a folder now. */
let folderReading = false;

function folderStatus(text: string, error = false): void {
  const p = $('train-folder-status');
  p.textContent = text;
  p.classList.toggle('error-text', error);
}

/** The folder in words: its classes, its splits, its input size, what was left out. */
function describeFolder(f: FolderSummary): string {
  const { height: h, width: w, channels: c } = f.preparation;
  const names = f.classNames.length <= 12 ? ` (${f.classNames.join(', ')})` : '';
  const split = f.heldOut
    ? `${f.trainCount} training and ${f.testCount} test pictures (${Math.round(100 * f.heldOut.fraction)}% of each class held out, seed ${f.heldOut.seed})`
    : `${f.trainCount} training pictures from train/ and ${f.testCount} test pictures from test/`;
  const size = f.imageSize !== null ? `resized to ${h}×${w}` : f.sizes.length === 1 ? `their own size, ${h}×${w}` : `resized to ${h}×${w}, as their sizes differ`;
  const skipped = f.skipped.length ? ` Left out ${f.skipped.length} file${f.skipped.length === 1 ? '' : 's'} the browser cannot decode, first: ${f.skipped[0].path} (${f.skipped[0].reason}).` : '';
  return `${f.name}: ${f.classNames.length} classes${names}, ${split}; ${size}, ${c === 3 ? 'colour' : 'gray'}.${skipped}`;
}

/** Let the worker read `read` (a new folder), or make the one it holds into data with the current settings. */
async function updateFolder(read?: { name: string; files: FolderFile[]; folders: string[] }): Promise<void> {
  let options: FolderOptions;
  try {
    options = readFolderOptions();
  } catch (e) {
    folderStatus((e as Error).message, true);
    return;
  }
  if (!read && !folderInfo) return;
  folderReading = true;
  renderButtons();
  if (read) folderStatus(`Reading ${read.name}…`);
  try {
    folderInfo = await worker().call('folder', { ...(read ? { read } : {}), options });
    folderStatus(describeFolder(folderInfo));
    fitLimits();
    writeParams();
    await showParamCounts();
  } catch (e) {
    folderStatus((e as Error).message, true);
  } finally {
    folderReading = false;
    renderButtons();
  }
}

/** The files of a folder chosen with the folder input: its name and each file's path inside it. */
function chosenFolder(files: File[]): { name: string; files: FolderFile[]; folders: string[] } {
  const name = files[0].webkitRelativePath.split('/')[0] || 'folder';
  return { name, files: files.map((file) => ({ path: file.webkitRelativePath.split('/').slice(1).join('/') || file.name, file })), folders: [] };
}

/** A dropped folder's files and folders, walked through the entries API (the only way a drop gives a folder's contents). */
async function droppedFolder(entry: FileSystemDirectoryEntry): Promise<{ name: string; files: FolderFile[]; folders: string[] }> {
  const files: FolderFile[] = [];
  const folders: string[] = [];
  const walk = async (dir: FileSystemDirectoryEntry, prefix: string): Promise<void> => {
    const reader = dir.createReader();
    // readEntries gives a folder's entries a batch at a time, an empty batch at the end.
    for (;;) {
      const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const e of batch) {
        const path = prefix + e.name;
        if (e.isDirectory) {
          folders.push(path);
          await walk(e as FileSystemDirectoryEntry, `${path}/`);
        } else if (e.isFile) {
          files.push({ path, file: await new Promise<File>((resolve, reject) => (e as FileSystemFileEntry).file(resolve, reject)) });
        }
      }
    }
  };
  await walk(entry, '');
  return { name: entry.name, files, folders };
}

function setupFolderInput(): void {
  const input = $<HTMLInputElement>('train-folder');
  input.addEventListener('change', () => {
    const files = [...(input.files ?? [])];
    input.value = '';
    if (files.length) void enqueue(() => updateFolder(chosenFolder(files)));
    else folderStatus('That folder holds no files.', true);
  });
  // A folder dropped anywhere on the panel is the data; so is one dropped while another dataset is chosen.
  const zone = panel();
  zone.addEventListener('dragover', (e) => {
    if (!e.dataTransfer?.types.includes('Files')) return;
    e.preventDefault();
    if (status?.state !== 'running') $('train-folder-row').classList.add('dragging');
  });
  zone.addEventListener('dragleave', (e) => {
    if (!zone.contains(e.relatedTarget as Node | null)) $('train-folder-row').classList.remove('dragging');
  });
  zone.addEventListener('drop', (e) => {
    $('train-folder-row').classList.remove('dragging');
    const items = [...(e.dataTransfer?.items ?? [])].filter((i) => i.kind === 'file');
    if (!items.length) return;
    // Not the browser's default, which would open the file in place of the page.
    e.preventDefault();
    if (status?.state === 'running') return;
    const entries = items.map((i) => i.webkitGetAsEntry()).filter((x) => x !== null);
    if (entries.length !== 1 || !entries[0].isDirectory) {
      hooks.showError('Drop one folder of pictures on the Train panel (a subfolder of pictures per class), not single files; Load model… takes a saved model.');
      return;
    }
    chooseFolderData();
    void enqueue(async () => updateFolder(await droppedFolder(entries[0] as FileSystemDirectoryEntry)));
  });
  for (const key of Object.keys(FOLDER_NUMBERS) as FolderKey[]) folderInput(key).addEventListener('change', () => void enqueue(() => updateFolder()));
}

/** Choose the folder as the data (a drop does it), as a change of the menu would. */
function chooseFolderData(): void {
  const select = $<HTMLSelectElement>('train-dataset');
  if (select.value === FOLDER_DATASET) return;
  select.value = FOLDER_DATASET;
  select.dispatchEvent(new Event('change'));
}

/** The data menu changed: the folder's row shows or hides, the limits and the parameter counts follow the data. */
function onDatasetChange(): void {
  fitLimits();
  render();
  void showParamCounts().catch(() => undefined);
}

/**
 * Set the panel up: the offered models and data, the address's settings,
 * the buttons. Returns whether the address asks to start training
 * (?train=1), and what is wrong with its settings (training then waits).
 */
export function initTrainPanel(h: TrainPanelHooks, o: TrainOffer, b: BackendChoice): { autoTrain: boolean; addressError: string | null } {
  hooks = h;
  offer = o;
  backend = b;
  const p = panel();
  p.hidden = !o.trainable.length || !o.trainSets.length;
  if (p.hidden) return { autoTrain: false, addressError: null };
  buildControls();
  let addressError: string | null = null;
  try {
    readParams();
  } catch (e) {
    addressError = (e as Error).message;
  }
  worker().on((e) => {
    if (e.event === 'status') onStatus(e.status);
    else if (e.event === 'weights' && state.engine?.generation === e.generation) hooks.refresh();
  });
  $('train-run').addEventListener('click', () => void toggleRun());
  $('train-step').addEventListener('click', () => void step());
  $('train-reset').addEventListener('click', () => void reset());
  $('train-download').addEventListener('click', () => void enqueue(download));
  $('train-share').addEventListener('click', () => {
    writeParams();
    void navigator.clipboard?.writeText(location.href).then(
      () => ($('train-download-note').textContent = 'The link to this setup is copied.'),
      () => ($('train-download-note').textContent = `The link to this setup: ${location.href}`),
    );
  });
  const load = $<HTMLInputElement>('train-load');
  load.addEventListener('change', () => {
    const files = [...(load.files ?? [])];
    load.value = '';
    if (files.length) void enqueue(() => loadFiles(files));
  });
  setupFolderInput();
  $('train-dataset').addEventListener('change', onDatasetChange);
  for (const id of ['train-arch', 'train-dataset', ...Object.values(NUMBERS).map((n) => n.id), ...Object.values(FOLDER_NUMBERS).map((n) => n.id)]) $(id).addEventListener('change', writeParams);
  window.addEventListener('resize', renderCharts);
  render();
  void showParamCounts().catch(() => undefined);
  return { autoTrain: param('train') === '1' && !addressError, addressError };
}

/** Another model is loading: the worker has ended the training run, and the next Train sets one up afresh. */
export function forgetTraining(): void {
  if (!active) return;
  active = null;
  status = null;
  samples = null;
  losses = [];
  checks = [];
  render();
}

/** Whether the panel's setup starts from a fresh model (not the one shown). */
export function trainsFreshModel(): boolean {
  return $<HTMLSelectElement>('train-arch').value !== CURRENT;
}

/** What the page's API (window.capsviz.train) reports. */
export function trainInfo(): { state: string; epoch: number; testAccuracy: number | null; losses: number[]; checks: AccuracyCheck[]; imagesPerSecond: number | null; backend: string } {
  return {
    state: status?.state ?? 'idle',
    epoch: status?.epoch ?? 0,
    testAccuracy: status?.testAccuracy ?? null,
    losses: losses.map((p) => p.y),
    checks: [...checks],
    imagesPerSecond: status?.imagesPerSecond ?? null,
    backend: backend?.backend ?? '',
  };
}
