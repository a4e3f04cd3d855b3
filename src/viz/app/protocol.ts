/**
 * What the page and its Web Worker (worker.ts) say to each other. The
 * worker holds the model, runs every forward pass and trains; the page
 * draws. Each request gets one reply with the same id; the worker also
 * sends events (training progress, changed weights) on its own.
 */
import type { ImagePreparation, InspectionLayout } from '../../index.js';

/** The tfjs backends the page can run on, in the order it tries them. */
export const BACKEND_ORDER = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_ORDER)[number];

export interface BackendChoice {
  backend: BackendName;
  /** Why the backend is not the first in the order, or that it was forced. */
  note?: string;
  /** A software rasterizer that draws WebGL or WebGPU here (SwiftShader, llvmpipe, ...), when one does. */
  softwareRenderer?: string;
}

/** An image of the page: values in [0, 1], height x width x channels, channels last. */
export interface InputImage {
  data: Float32Array;
  height: number;
  width: number;
  channels: number;
}

/** A capsule layer's activations, [h, w, types] row-major. */
export interface ActivationMap {
  name: string;
  h: number;
  w: number;
  types: number;
  data: Float32Array;
}

/**
 * One run of the model on one image, as plain arrays: the values of the
 * parts the model's inspection layout declares (null or empty where it has
 * none; see models/inspection.ts for their layouts).
 */
export interface Analysis {
  /** The page's input, and what the model got (see prepareInput in analysis.ts). */
  input: Float32Array;
  modelInput: Float32Array;
  scores: Float32Array;
  prediction: number;
  /** The first convolution's ReLU maps [h * w * channels], NHWC. */
  featureMaps: Float32Array | null;
  /** vectors [capsules * dim] and lengths [capsules]; capsule index = (y * gridW + x) * types + type. */
  primaryCapsules: { vectors: Float32Array; lengths: Float32Array } | null;
  capsuleLayers: ActivationMap[];
  routing: {
    /** One [senders * classes] array per iteration. */
    coefficients: Float32Array[];
    /** How much each sender counts (its length or activation). */
    senderWeights: Float32Array;
    /** The class scores each iteration's coefficients give, when the model says. */
    scores: Float32Array[] | null;
  } | null;
  /** [classes * dim] vectors or [classes * size * size] poses. */
  classCapsules: Float32Array | null;
  /** Milliseconds the worker took. */
  ms: number;
}

/** What the page knows of the worker's model. */
export interface ModelSummary {
  /** Counts up with every model the worker holds; requests name it, so that answers about a replaced model are dropped. */
  generation: number;
  modelType: string;
  inputShape: [number, number, number];
  numClasses: number;
  params: number;
  hasDecoder: boolean;
  layout: InspectionLayout;
  /** One name per class: the metadata's, else the class indices. */
  classNames: string[];
  /** How its training pictures were prepared, for a model trained on a --data folder (metadata.preparation). */
  preparation: ImagePreparation | null;
  metadata: Record<string, unknown>;
  /** Where it came from, in words: its URL, a file name, or "a new small CapsNet". */
  source: string;
}

/** Where a model comes from. */
export type ModelSource =
  | { kind: 'url'; url: string }
  | { kind: 'files'; json: unknown; weights: Uint8Array; name: string };

/** Architectures and presets small enough to train in a browser tab, with a label for the menu. */
export interface TrainableArch {
  arch: string;
  preset: string;
  label: string;
}

/** A dataset the build packed for training (train-<set>.json). */
export interface TrainSetEntry {
  dataset: string;
  title: string;
}

/** The Train panel's dataset value for the user's own folder of pictures (no packed set has this name). */
export const FOLDER_DATASET = 'folder';

/** A file of a folder picked or dropped in the page, with its path relative to the folder ('/' between names). */
export interface FolderFile {
  path: string;
  file: File;
}

/** How a folder of pictures becomes training data: the panel's settings, named as capsnet train's flags. */
export interface FolderOptions {
  /** --image-size: the side of the square input; null: the pictures' own size when all agree, else 32. */
  imageSize: number | null;
  /** --val-split: the fraction of each class held out for testing, for a folder without train/ and test/. */
  valSplit: number;
  /** --data-seed: the seed of that split. */
  seed: number;
}

/** What the worker made of a folder of pictures with the panel's settings. */
export interface FolderSummary {
  /** The folder's name (the dataset's name, as capsnet train --data names it). */
  name: string;
  layout: 'train-test' | 'classes';
  classNames: string[];
  /** Pictures found in the class folders. */
  pictures: number;
  /** Pictures the browser could not decode, left out (as --skip-invalid does). */
  skipped: { path: string; reason: string }[];
  preparation: ImagePreparation;
  /** The pictures' sizes ('WxH'), distinct. */
  sizes: string[];
  trainCount: number;
  testCount: number;
  /** The held-out split, for a folder without train/ and test/. */
  heldOut: { fraction: number; seed: number } | null;
  imageSize: number | null;
}

/** A set of test images to choose from, as the page shows them (the build's samples*.json with its bytes). */
export interface SampleImages {
  /** Names the set: the same name, the same images. */
  file: string;
  dataset: string;
  title: string;
  count: number;
  labels: number[];
  classNames: string[];
  /** Each image's index in its test split. */
  indices: number[];
  height: number;
  width: number;
  channels: number;
  /** Bytes, height x width x channels each. */
  images: Uint8Array;
}

/** What the Train panel asks for: the model to start from, the data and the schedule. */
export interface TrainSetup {
  /** A fresh model of an architecture and preset, or the model the page shows (fine-tuning). */
  start: { kind: 'fresh'; arch: string; preset: string } | { kind: 'current' };
  /** A packed dataset of the build (train-<dataset>.json, relative to dataUrl), or FOLDER_DATASET. */
  dataset: string;
  /** With FOLDER_DATASET: the folder the worker holds (`id` counts the folders read) and how it becomes data. */
  folder?: FolderOptions & { id: number; name: string };
  dataUrl: string;
  trainLimit: number;
  testLimit: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Learning-rate multiplier per epoch, applied smoothly every step (as capsnet train --lr-decay). */
  lrDecay: number;
  /** Largest random shift in pixels (capsnet train --shift). */
  shift: number;
  seed: number;
  /** Test-accuracy checks per epoch (the last one at the epoch's end). */
  checksPerEpoch: number;
}

export type TrainState = 'idle' | 'running' | 'paused' | 'done';

/** One test-accuracy check: after `epochs` epochs (fractional between epoch ends). */
export interface AccuracyCheck {
  epochs: number;
  step: number;
  accuracy: number;
  correct: number;
  count: number;
}

export interface TrainStatus {
  state: TrainState;
  /** Epochs finished, and the one running (1-based; 0 before the first step). */
  epoch: number;
  epochs: number;
  /** Batches done in the current epoch, of stepsPerEpoch. */
  batch: number;
  stepsPerEpoch: number;
  /** Optimizer steps so far. */
  step: number;
  trainCount: number;
  testCount: number;
  /** Losses of the steps since the last status, in order (the curve's new points). */
  losses: number[];
  /** Checks made since the last status. */
  checks: AccuracyCheck[];
  /** Training images per second over the recent steps (steps only, not the checks). */
  imagesPerSecond: number | null;
  learningRate: number;
  /** The latest test accuracy, a fraction. */
  testAccuracy: number | null;
  /** What it is doing now, in words (loading data, step 3 of 31, checking the test accuracy). */
  activity: string;
  error?: string;
}

/** Requests and their replies. */
export interface Requests {
  init: { args: { backend: string | null; wasmUrl: string }; result: BackendChoice };
  load: { args: { source: ModelSource }; result: ModelSummary };
  analyze: { args: { generation: number; image: InputImage }; result: Analysis };
  decode: { args: { generation: number; vectors: Float32Array; n: number; cls: number }; result: Float32Array };
  conv1Kernels: { args: { generation: number }; result: { data: Float32Array; k: number; inChannels: number; filters: number } | null };
  scores: { args: { generation: number; images: Float32Array; n: number }; result: Float32Array };
  /**
   * Read a folder of pictures (`read`: its files and the folders seen), or
   * take the one read last, and make it into data with `options`; progress
   * comes as 'folder' events.
   */
  folder: { args: { read?: { name: string; files: FolderFile[]; folders: string[] }; options: FolderOptions }; result: FolderSummary & { id: number } };
  /** Trainable parameters of each model, built for the data of `data` (a packed set, or the folder with its options). */
  paramCounts: {
    args: { data: Pick<TrainSetup, 'dataset' | 'dataUrl' | 'folder'>; models: { arch: string; preset: string }[] };
    result: { inputShape: [number, number, number]; numClasses: number; counts: { params: number; withoutDecoder: number | null }[] };
  };
  /** The model set up for training; with a folder, its test images to choose from. */
  trainSetup: { args: { setup: TrainSetup }; result: { summary: ModelSummary; status: TrainStatus; samples: SampleImages | null } };
  trainControl: { args: { action: 'run' | 'pause' | 'step' | 'reset' }; result: { summary: ModelSummary | null; status: TrainStatus } };
  /** The model in capsnet's saved-model format (model.json and weights.bin), with the metadata of its training in the page. */
  save: { args: { generation: number }; result: { json: string; weights: Uint8Array } };
  /** Training images per second on this backend: `steps` timed steps after one warm-up step (the bench). */
  bench: { args: { arch: string; preset: string; batchSize: number; steps: number; dataUrl: string; dataset: string }; result: { imagesPerSecond: number; stepMs: number[] } };
}

export type RequestType = keyof Requests;

export interface RequestMessage<K extends RequestType = RequestType> {
  id: number;
  type: K;
  args: Requests[K]['args'];
}

export type ReplyMessage = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

/** Events the worker sends unasked. */
export type WorkerEvent =
  | { event: 'status'; status: TrainStatus }
  /** The weights changed (a training step, a reset): views re-run on the current input. */
  | { event: 'weights'; generation: number; step: number }
  /** Reading a folder of pictures: `done` of `total` decoded to look at, or prepared at the input size. */
  | { event: 'folder'; stage: 'reading' | 'preparing'; done: number; total: number };
