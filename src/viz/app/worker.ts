/**
 * The page's Web Worker: it holds the model, runs every forward pass the
 * views ask for, and trains (training.ts), so that the page stays
 * responsive while the model works. Requests and events are in
 * protocol.ts; the page's side is engine.ts.
 */
import { Adam, createModel, loadModelFromUrl, modelFromArtifacts, parseImagePreparation, Rng, type ClassifierModel } from '../../index.js';
import { batchIndices, makeBatch } from '../../data/batches.js';
import { checkCompatible } from '../../training/evaluate.js';
import { trainStepAsync } from '../../training/step.js';
import { analyze, conv1Kernels, decode, scores } from './analysis.js';
import { chooseBackend } from './backends.js';
import { PictureFolder, type FolderProgress } from './folderData.js';
import type { ImageDataset } from '../../data/dataset.js';
import type { ModelSource, ModelSummary, ReplyMessage, RequestMessage, Requests, RequestType, SampleImages, TrainSetup, WorkerEvent } from './protocol.js';
import { sampleIndices } from '../samples.js';
import { loadPacked, modelArtifacts, packedMeta, savedModel, TrainingSession } from './training.js';

/** The model the views show and training changes. */
interface Held {
  model: ClassifierModel;
  metadata: Record<string, unknown>;
  source: string;
  generation: number;
}

let held: Held | null = null;
let generation = 0;
let session: TrainingSession | null = null;
/** The folder of pictures read last, and how many have been read (its id). */
let folder: { id: number; pictures: PictureFolder } | null = null;
let foldersRead = 0;

const folderProgress: FolderProgress = (stage, done, total) => post({ event: 'folder', stage, done, total });

/** The held folder, when it is the one `data` names. */
function folderFor(data: Pick<TrainSetup, 'folder'>): PictureFolder | null {
  if (!data.folder) return null;
  if (!folder || folder.id !== data.folder.id) throw new Error('choose or drop a folder of pictures first');
  return folder.pictures;
}

/** The test images the page offers from a folder's test split (as capsnet viz --data offers them); `file` names the folder and its settings. */
function folderSamples(test: ImageDataset, file: string): SampleImages {
  const indices = sampleIndices(test.labels, test.numClasses);
  const per = test.height * test.width * test.channels;
  const images = new Uint8Array(indices.length * per);
  indices.forEach((i, k) => images.set(test.images.subarray(i * per, (i + 1) * per), k * per));
  const title = test.name.replace(/-test$/, '');
  return { file, dataset: title, title, count: indices.length, labels: indices.map((i) => test.labels[i]), classNames: test.classNames ?? [], indices, height: test.height, width: test.width, channels: test.channels, images };
}

function post(e: WorkerEvent): void {
  self.postMessage(e);
}

function summary(h: Held): ModelSummary {
  const m = h.model;
  const names = h.metadata.classNames;
  return {
    generation: h.generation,
    modelType: m.modelType,
    inputShape: m.inputShape,
    numClasses: m.numClasses,
    params: m.countParams(),
    hasDecoder: m.decoder !== null,
    layout: m.inspection,
    classNames: Array.isArray(names) && names.length === m.numClasses ? names.map(String) : Array.from({ length: m.numClasses }, (_, i) => String(i)),
    preparation: h.metadata.preparation !== undefined ? parseImagePreparation(h.metadata.preparation, h.source) : null,
    metadata: h.metadata,
    source: h.source,
  };
}

/** Hold `model` from now on (the old one is disposed unless it is the same). */
function hold(model: ClassifierModel, metadata: Record<string, unknown>, source: string): ModelSummary {
  if (held && held.model !== model) held.model.dispose();
  held = { model, metadata, source, generation: ++generation };
  return summary(held);
}

/** The held model, if it is the one the request is about. */
function current(gen: number): ClassifierModel {
  if (!held || held.generation !== gen) throw new Error('the model was replaced');
  return held.model;
}

async function stopSession(): Promise<void> {
  const s = session;
  session = null;
  await s?.stop();
}

async function loadSource(source: ModelSource): Promise<{ model: ClassifierModel; metadata: Record<string, unknown>; name: string }> {
  if (source.kind === 'url') {
    const { model, json } = await loadModelFromUrl(source.url);
    return { model, metadata: json.metadata ?? {}, name: source.url };
  }
  const { model, json } = modelFromArtifacts(source.json, source.weights, source.name);
  return { model, metadata: json.metadata ?? {}, name: source.name };
}

type Handlers = { [K in RequestType]: (args: Requests[K]['args']) => Promise<Requests[K]['result']> };

const handlers: Handlers = {
  init: ({ backend, wasmUrl }) => chooseBackend(backend, wasmUrl),

  async load({ source }) {
    await stopSession();
    const { model, metadata, name } = await loadSource(source);
    return hold(model, metadata, name);
  },

  analyze: async ({ generation: g, image }) => analyze(current(g), image),
  decode: async ({ generation: g, vectors, n, cls }) => decode(current(g), vectors, n, cls),
  conv1Kernels: async ({ generation: g }) => conv1Kernels(current(g)),
  scores: async ({ generation: g, images, n }) => scores(current(g), images, n),

  async folder({ read, options }) {
    if (read) {
      const pictures = await PictureFolder.read(read.name, read.files, read.folders, folderProgress);
      folder = { id: ++foldersRead, pictures };
    }
    if (!folder) throw new Error('choose or drop a folder of pictures first');
    const { summary } = await folder.pictures.datasets(options, folderProgress);
    return { ...summary, id: folder.id };
  },

  async paramCounts({ data, models }) {
    let inputShape: [number, number, number];
    let numClasses: number;
    const pictures = folderFor(data);
    if (pictures && data.folder) {
      const prep = pictures.preparation(data.folder.imageSize);
      inputShape = [prep.height, prep.width, prep.channels];
      numClasses = pictures.layout.classNames.length;
    } else {
      const meta = await packedMeta(data.dataUrl, data.dataset);
      inputShape = [meta.height, meta.width, meta.channels];
      numClasses = meta.classNames.length;
    }
    const counts = models.map(({ arch, preset }) => {
      // Built only to be counted: the weights are initialised (the count is the model's own) and freed at once.
      const model = createModel(arch, preset, { inputShape, numClasses }, 1);
      try {
        const params = model.countParams();
        // The count without the decoder where the model's paper gives that one (Efficient-CapsNet's 161K).
        const withoutDecoder = model.countClassifierParams?.() ?? null;
        return { params, withoutDecoder: withoutDecoder === params ? null : withoutDecoder };
      } finally {
        model.dispose();
      }
    });
    return { inputShape, numClasses, counts };
  },

  async trainSetup({ setup }) {
    await stopSession();
    const data = await TrainingSession.data(setup, folderFor(setup), folderProgress);
    let model: ClassifierModel;
    let metadata: Record<string, unknown>;
    let source: string;
    if (setup.start.kind === 'fresh') {
      model = createModel(setup.start.arch, setup.start.preset, { inputShape: [data.train.height, data.train.width, data.train.channels], numClasses: data.train.numClasses }, setup.seed);
      metadata = {
        dataset: data.folder?.summary.name ?? setup.dataset,
        ...(data.train.classNames ? { classNames: data.train.classNames } : {}),
        // A folder's pictures: uploads in the page are then prepared as they were.
        ...(data.folder ? { preparation: data.folder.summary.preparation } : {}),
      };
      source = `a new ${setup.start.arch} (${setup.start.preset} preset), trained in this page`;
    } else {
      if (!held) throw new Error('no model is loaded to continue training');
      model = held.model;
      metadata = { ...held.metadata, initializedFrom: held.source };
      source = `${held.source}, trained further in this page`;
    }
    try {
      checkCompatible(model, data.train);
    } catch (e) {
      if (setup.start.kind === 'fresh') model.dispose();
      throw e;
    }
    const initial = await modelArtifacts(model);
    const s = hold(model, metadata, source);
    session = new TrainingSession(
      setup,
      data,
      model,
      initial,
      {
        status: (status) => post({ event: 'status', status }),
        // The session trains the held model (reset replaces it, with a new generation).
        weights: (step) => post({ event: 'weights', generation: held!.generation, step }),
      },
      data.folder?.summary ?? null,
    );
    return { summary: s, status: session.status(), samples: data.folder ? folderSamples(data.folder.test, `folder-${JSON.stringify(setup.folder)}`) : null };
  },

  async trainControl({ action }) {
    const sess = session;
    if (!sess) throw new Error('set up training first');
    if (action === 'run') sess.run();
    else if (action === 'pause') sess.pause();
    else if (action === 'step') await sess.step();
    else {
      const model = await sess.reset();
      return { summary: hold(model, held!.metadata, held!.source), status: sess.status() };
    }
    return { summary: null, status: sess.status() };
  },

  async save({ generation: g }) {
    const model = current(g);
    const base = held!.metadata;
    return session && session.model === model ? session.artifacts(base) : savedModel(model, base);
  },

  async bench({ arch, preset, batchSize, steps, dataUrl, dataset }) {
    const packed = await loadPacked(dataUrl, dataset);
    const train = packed.train;
    const model = createModel(arch, preset, { inputShape: [train.height, train.width, train.channels], numClasses: train.numClasses }, 1);
    const optimizer = new Adam({ learningRate: 0.001 });
    const rng = new Rng(1);
    const order = rng.permutation(train.count);
    const stepMs: number[] = [];
    try {
      for (let s = 0; s <= steps; s++) {
        const batch = makeBatch(train, batchIndices(order, s % Math.floor(train.count / batchSize), batchSize), 2, rng);
        const t0 = performance.now();
        await trainStepAsync(model, optimizer, batch, { fraction: 0, rng });
        // The first step compiles shaders and allocates: a warm-up, not timed.
        if (s > 0) stepMs.push(performance.now() - t0);
      }
    } finally {
      optimizer.dispose();
      model.dispose();
    }
    const total = stepMs.reduce((a, b) => a + b, 0);
    return { imagesPerSecond: (1000 * batchSize * stepMs.length) / total, stepMs };
  },
};

self.onmessage = async (e: MessageEvent<RequestMessage>) => {
  const { id, type, args } = e.data;
  let reply: ReplyMessage;
  try {
    const result = await (handlers[type] as (a: unknown) => Promise<unknown>)(args);
    reply = { id, ok: true, result };
  } catch (err) {
    reply = { id, ok: false, error: (err as Error).message ?? String(err) };
  }
  self.postMessage(reply);
};
