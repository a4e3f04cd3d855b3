/**
 * The page's state, in one place: the loaded model, the last analysis, the
 * input, and what each view has selected. Views read and write it; the
 * page (main.ts) loads models and runs analyses.
 */
import { $ } from './dom.js';
import type { InspectionLayout } from '../../index.js';
import { grayDigit, type Analysis, type Engine, type InputImage } from './engine.js';

/**
 * A set of test images to choose from: samples*.json and .bin, written by
 * the build, or a --model's own test images, which `capsnet viz` serves
 * beside the model.
 */
export interface Samples {
  /** Where the files are (without .json and .bin). */
  file: string;
  /** The dataset name in model metadata: mnist, fashion-mnist, or a --data folder's name. */
  dataset: string;
  title: string;
  images: Uint8Array;
  labels: number[];
  classNames: string[];
  /** Each image's index in its dataset's test split. */
  indices: number[];
  count: number;
  height: number;
  width: number;
  channels: number;
  /** Bytes per image. */
  size: number;
  /** Objects in each image (MultiMNIST: 2), and each image's classes when there are several. */
  objects: number;
  classes: number[][] | null;
}

/** A primary capsule: its type and grid position. */
export interface CapsuleRef {
  type: number;
  y: number;
  x: number;
}

/**
 * One section of the page. `setup` runs when a model loads (show or hide
 * the view, build what depends on the model), `render` after every analysis.
 * `init`, when there, wires the view's fixed elements once at start.
 */
export interface View {
  init?(): void;
  setup(engine: Engine): void;
  render(): void;
  /** The model's weights changed (training): read again what `setup` read of them. */
  refresh?(): void;
}

export const state = {
  engine: null as Engine | null,
  /** The parts the loaded model shows (its inspection layout). */
  layout: null as InspectionLayout | null,
  analysis: null as Analysis | null,
  input: grayDigit(new Float32Array(28 * 28)) as InputImage,
  inputSource: '',
  samples: null as Samples | null,
  /** Sample sets the build wrote besides MNIST's (models.json). */
  sampleSets: ['mnist'],
  currentSample: -1,
  /** The class whose capsule the decoder views show: the one chosen (kept while the input stays), else the prediction. */
  selected: 0,
  chosenClass: null as number | null,
  /** That capsule as the model computed it, and as the sliders changed it. */
  base: new Float32Array(16) as Float32Array,
  vector: new Float32Array(16) as Float32Array,
  /** The routing iteration shown. */
  iteration: 0,
  weightByLength: true,
  routingMode: 'delta' as 'delta' | 'value',
  conv1Focus: -1,
  capsFocus: null as CapsuleRef | null,
  kernels: null as { data: Float32Array; k: number; inChannels: number; filters: number } | null,
  /** Model work running (the page is idle at 0). */
  busy: 0,
  perturbTimer: 0,
  perturbCursor: { row: 0, col: 5 },
  playTimer: 0,
  pendingInput: null as InputImage | null,
  analysing: false,
  decodeRunning: false,
  decodePending: null as { t0: number; measure: boolean } | null,
  backendName: '',
  backendNote: '',
  /** Slider move to redrawn reconstruction, and the decoder alone, in ms. */
  latencies: [] as number[],
  decodeTimes: [] as number[],
};

export function setPageState(s: 'loading' | 'ready' | 'error'): void {
  document.body.dataset.state = s;
}

/** Await `p`, counted as model work. */
export async function track<T>(p: Promise<T>): Promise<T> {
  state.busy++;
  try {
    return await p;
  } finally {
    state.busy--;
  }
}

export function showError(message: string): void {
  const el = $('error');
  el.textContent = message;
  el.hidden = false;
  setPageState('error');
}

export function clearError(): void {
  $('error').hidden = true;
}

export function className(j: number): string {
  return state.engine?.classNames[j] ?? String(j);
}

/**
 * A score above which a class counts as present, for scores that are each
 * class's own presence (capsule lengths, activations) rather than shares of
 * one (probabilities): halfway between the margin loss's targets for
 * present (m+ = 0.9) and absent (m- = 0.1) classes.
 */
export const PRESENT = 0.5;

/** Whether the scores are each class's own presence in [0, 1], not probabilities that add up to 1. */
export function presenceScores(scores: ArrayLike<number>): boolean {
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += scores[i];
  return Math.abs(sum - 1) > 1e-3;
}

/**
 * The classes the page reports for an analysis: the `objects` highest
 * scores when the test images hold several objects (MultiMNIST's two
 * digits), else the prediction; none when the scores are presences and
 * none reaches PRESENT (an empty pad).
 */
export function reportedClasses(a: Analysis): number[] {
  const order = Array.from(a.scores.keys()).sort((x, y) => a.scores[y] - a.scores[x]);
  const objects = state.samples?.objects ?? 1;
  if (objects > 1) return order.slice(0, objects);
  return presenceScores(a.scores) && a.scores[order[0]] < PRESENT ? [] : [order[0]];
}

const capsuleFocusListeners: (() => void)[] = [];

/** Call `f` whenever the focused primary capsule changes (the primary and routing views both outline it). */
export function onCapsuleFocus(f: () => void): void {
  capsuleFocusListeners.push(f);
}

export function focusCapsule(c: CapsuleRef | null): void {
  state.capsFocus = c;
  for (const f of capsuleFocusListeners) f();
}
