/**
 * The page's side of the model: the model itself lives in a Web Worker
 * (worker.ts), which runs every forward pass and trains, so that drawing,
 * the sliders and the page stay responsive while it works. An Engine is
 * the page's handle on the model the worker holds now: what the page knows
 * of it (its summary) and requests about it, which resolve with plain
 * arrays.
 */
import type { ImagePreparation, InspectionLayout } from '../../index.js';
import type { Analysis, BackendChoice, InputImage, ModelSource, ModelSummary, ReplyMessage, Requests, RequestType, WorkerEvent } from './protocol.js';

export type { Analysis, ActivationMap, InputImage } from './protocol.js';

/** A 28x28 gray image: what the drawing pad and the MNIST samples give. */
export function grayDigit(data: Float32Array): InputImage {
  return { data, height: 28, width: 28, channels: 1 };
}

/** The worker and the requests waiting for its answers. */
class WorkerLink {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners: ((e: WorkerEvent) => void)[] = [];

  constructor(url: URL) {
    this.worker = new Worker(url, { type: 'module' });
    this.worker.onmessage = (e: MessageEvent<ReplyMessage | WorkerEvent>) => {
      const m = e.data;
      if ('event' in m) {
        for (const f of this.listeners) f(m);
        return;
      }
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(m.result);
      else w.reject(new Error(m.error));
    };
    this.worker.onerror = (e) => {
      const err = new Error(`the model's worker failed: ${e.message || 'it could not start'}`);
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
  }

  call<K extends RequestType>(type: K, args: Requests[K]['args'], transfer: Transferable[] = []): Promise<Requests[K]['result']> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, type, args }, transfer);
    });
  }

  on(f: (e: WorkerEvent) => void): void {
    this.listeners.push(f);
  }
}

let link: WorkerLink | null = null;

/** The worker, started on first use (worker.js sits beside the page's app.js). */
export function worker(): WorkerLink {
  link ??= new WorkerLink(new URL('worker.js', document.baseURI));
  return link;
}

/** Pick the worker's tfjs backend (see backends.ts); `forced` is the page's ?backend=. */
export function initBackend(forced: string | null): Promise<BackendChoice> {
  return worker().call('init', { backend: forced, wasmUrl: new URL('wasm/', document.baseURI).href });
}

export class Engine {
  readonly summary: ModelSummary;

  constructor(summary: ModelSummary) {
    this.summary = summary;
  }

  /** Load a model into the worker, replacing the one it holds. */
  static async load(source: ModelSource): Promise<Engine> {
    const s = source.kind === 'url' ? { kind: 'url' as const, url: new URL(source.url, document.baseURI).href } : source;
    return new Engine(await worker().call('load', { source: s }, s.kind === 'files' ? [s.weights.buffer] : []));
  }

  get generation(): number {
    return this.summary.generation;
  }

  /** The parts of the model the page shows. */
  get layout(): InspectionLayout {
    return this.summary.layout;
  }

  get classNames(): string[] {
    return this.summary.classNames;
  }

  get numClasses(): number {
    return this.summary.numClasses;
  }

  get hasDecoder(): boolean {
    return this.summary.hasDecoder;
  }

  get modelType(): string {
    return this.summary.modelType;
  }

  /** How its training pictures were prepared, for a model trained on a --data folder (metadata.preparation). */
  get preparation(): ImagePreparation | null {
    return this.summary.preparation;
  }

  get metadata(): Record<string, unknown> {
    return this.summary.metadata;
  }

  get inputShape(): [number, number, number] {
    return this.summary.inputShape;
  }

  /** Whether the worker's preparation takes this image: one of the model's own shape, or any gray one. */
  accepts(img: InputImage): boolean {
    const [h, w, c] = this.inputShape;
    return img.channels === 1 || (img.height === h && img.width === w && img.channels === c);
  }

  /**
   * How a drawing on the pad becomes the model's input: 'digit' for 28x28
   * gray models (prepared as MNIST was), 'frame' for larger gray ones that
   * take digits where they are (MultiMNIST, 40x40 MNIST: the pad is the
   * frame), null for the rest (colour, pictures prepared otherwise).
   */
  get drawing(): 'digit' | 'frame' | null {
    const [h, w, c] = this.inputShape;
    if (c !== 1) return null;
    if (h === 28 && w === 28) return 'digit';
    return h > 28 && w > 28 && !this.preparation ? 'frame' : null;
  }

  /** Run the whole network on one image (values in [0, 1]) and read every part it shows. */
  analyze(image: InputImage): Promise<Analysis> {
    return worker().call('analyze', { generation: this.generation, image });
  }

  /** The decoder alone: reconstruct from one capsule vector placed in class `cls`. */
  decode(vector: Float32Array, cls: number): Promise<Float32Array> {
    return this.decodeMany(vector, 1, cls);
  }

  /** Decode many vectors [n * dim] of class `cls` at once. */
  decodeMany(vectors: Float32Array, n: number, cls: number): Promise<Float32Array> {
    return worker().call('decode', { generation: this.generation, vectors, n, cls });
  }

  /** The first convolution's kernels [k, k, inChannels, filters], when the model shows its maps. */
  conv1Kernels(): Promise<{ data: Float32Array; k: number; inChannels: number; filters: number } | null> {
    return worker().call('conv1Kernels', { generation: this.generation });
  }

  /**
   * Scores for a batch of n images (for checking against Node): each of the
   * model's own shape, or 28x28 gray (prepared as the page prepares them).
   */
  scores(images: Float32Array, n: number): Promise<Float32Array> {
    return worker().call('scores', { generation: this.generation, images, n });
  }

  /** The model in capsnet's saved-model format: model.json's text and weights.bin. */
  save(): Promise<{ json: string; weights: Uint8Array }> {
    return worker().call('save', { generation: this.generation });
  }
}
