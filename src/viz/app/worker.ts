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
import type { ModelSource, ModelSummary, ReplyMessage, RequestMessage, Requests, RequestType, WorkerEvent } from './protocol.js';
import { loadPacked, modelArtifacts, savedModel, TrainingSession } from './training.js';

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

  async trainSetup({ setup }) {
    await stopSession();
    const data = await TrainingSession.data(setup);
    let model: ClassifierModel;
    let metadata: Record<string, unknown>;
    let source: string;
    if (setup.start.kind === 'fresh') {
      model = createModel(setup.start.arch, setup.start.preset, { inputShape: [data.train.height, data.train.width, data.train.channels], numClasses: data.train.numClasses }, setup.seed);
      metadata = { dataset: setup.dataset, ...(data.train.classNames ? { classNames: data.train.classNames } : {}) };
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
    session = new TrainingSession(setup, data, model, initial, {
      status: (status) => post({ event: 'status', status }),
      // The session trains the held model (reset replaces it, with a new generation).
      weights: (step) => post({ event: 'weights', generation: held!.generation, step }),
    });
    return { summary: s, status: session.status() };
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
