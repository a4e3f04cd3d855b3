/**
 * The model side of the visualizer: picks a tfjs backend, loads a model with
 * the library's loader and runs it, returning plain arrays for the views.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { CapsNet, capsuleLength, convOutputSize, EmCapsNet, loadModelFromUrl, parseImagePreparation, predictionVectors, resizeArea, squash, type CapsNetOutput, type ClassifierModel, type ImagePreparation, type ModelJson } from '../../index.js';

export type BackendName = 'webgl' | 'wasm' | 'cpu';
const ORDER: BackendName[] = ['webgl', 'wasm', 'cpu'];

/**
 * The WebGL renderer's name when it is a software rasterizer (SwiftShader,
 * llvmpipe, ...), where tfjs's wasm backend is many times faster; else null.
 */
export function softwareWebGL(): string | null {
  try {
    const gl = (document.createElement('canvas').getContext('webgl2') ?? document.createElement('canvas').getContext('webgl')) as WebGLRenderingContext | null;
    if (!gl) return null;
    const info = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = String(info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER));
    gl.getExtension('WEBGL_lose_context')?.loseContext();
    return /swiftshader|llvmpipe|softpipe|software|basic render driver/i.test(renderer) ? renderer : null;
  } catch {
    return null;
  }
}

export interface BackendChoice {
  backend: BackendName;
  /** Why the backend is not WebGL, when it is not. */
  note?: string;
}

/**
 * Activate the first backend that works: WebGL on a GPU, then wasm, then
 * plain JavaScript. WebGL drawn by a software rasterizer goes after wasm.
 * `forced` (the ?backend= parameter) tries only that one.
 */
export async function initBackend(forced?: string | null): Promise<BackendChoice> {
  setWasmPaths(new URL('wasm/', document.baseURI).href);
  let order = ORDER;
  let note: string | undefined;
  if (forced && ORDER.includes(forced as BackendName)) {
    order = [forced as BackendName];
    note = 'chosen with ?backend=';
  } else {
    const soft = softwareWebGL();
    if (soft) {
      order = ['wasm', 'webgl', 'cpu'];
      note = 'WebGL is software-rendered here, and wasm is faster';
    }
  }
  const tried: string[] = [];
  for (const name of order) {
    try {
      if (await tf.setBackend(name)) {
        await tf.ready();
        // A backend can register and still fail on first use (e.g. a lost WebGL context).
        const ok = tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(2)).dataSync()[0] === 3);
        if (ok) return { backend: name, note: name === 'webgl' ? undefined : note ?? (tried.length ? tried.join('; ') : undefined) };
      }
      tried.push(`${name} unavailable`);
    } catch (e) {
      tried.push(`${name}: ${(e as Error).message}`);
    }
  }
  throw new Error(`no tfjs backend works in this browser (${tried.join('; ')})`);
}

/** An image of the page: values in [0, 1], height x width x channels, channels last. */
export interface InputImage {
  data: Float32Array;
  height: number;
  width: number;
  channels: number;
}

/** A 28x28 gray image: what the drawing pad and the MNIST samples give. */
export function grayDigit(data: Float32Array): InputImage {
  return { data, height: 28, width: 28, channels: 1 };
}

export interface CapsAnalysis {
  kind: 'capsnet';
  /** The page's input, and what the model got (see Engine.prepare). */
  input: Float32Array;
  modelInput: Float32Array;
  scores: Float32Array;
  prediction: number;
  /** [classes * dim] */
  digitCaps: Float32Array;
  /** Conv1 ReLU maps [h * w * channels], NHWC. */
  conv1: Float32Array;
  /** [capsules * dim]; capsule index = (y * gridW + x) * types + type. */
  primary: Float32Array;
  primaryLengths: Float32Array;
  /** One [capsules * classes] array per routing iteration. */
  couplings: Float32Array[];
  /** Digit capsule lengths that each iteration's couplings produce. */
  iterationLengths: Float32Array[];
  ms: number;
}

export interface PlainAnalysis {
  kind: 'plain';
  input: Float32Array;
  modelInput: Float32Array;
  scores: Float32Array;
  prediction: number;
  ms: number;
  extra: Record<string, { shape: number[]; data: Float32Array }>;
}

/** A capsule layer's activations, [h, w, types] row-major. */
export interface ActivationMap {
  name: string;
  h: number;
  w: number;
  types: number;
  data: Float32Array;
}

/** Matrix capsules with EM routing (model type `em`). */
export interface EmAnalysis {
  kind: 'em';
  input: Float32Array;
  modelInput: Float32Array;
  /** Class capsule activations. */
  scores: Float32Array;
  prediction: number;
  /** Class capsule poses [classes * 16], each 4x4 row-major. */
  poses: Float32Array;
  /**
   * The class capsules' assignment probabilities R [children * classes] of
   * each EM iteration, first to last; children are the last capsule layer's,
   * ordered row, column, type.
   */
  routing: Float32Array[];
  /** The grid of capsules that vote for the classes. */
  childGrid: { h: number; w: number; types: number };
  /** Activations of the child capsules, [h * w * types] in routing's order. */
  childActivations: Float32Array | null;
  conv1: Float32Array | null;
  layers: ActivationMap[];
  ms: number;
}

export type Analysis = CapsAnalysis | EmAnalysis | PlainAnalysis;

export interface Conv1Geometry {
  h: number;
  w: number;
  channels: number;
  kernel: number;
}

export interface CapsGeometry {
  classes: number;
  dim: number;
  conv1: { h: number; w: number; channels: number; kernel: number };
  primary: { h: number; w: number; types: number; dim: number };
  iterations: number;
  hasDecoder: boolean;
}

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

async function read(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}

export class Engine {
  readonly model: ClassifierModel;
  readonly json: ModelJson;
  readonly url: string;
  readonly classNames: string[];
  /** How its training pictures were prepared, for a model trained on a --data folder (metadata.preparation). */
  readonly preparation: ImagePreparation | null;

  private constructor(model: ClassifierModel, json: ModelJson, url: string) {
    this.model = model;
    this.json = json;
    this.url = url;
    const names = json.metadata?.classNames;
    this.classNames = Array.isArray(names) && names.length === model.numClasses ? names.map(String) : Array.from({ length: model.numClasses }, (_, i) => String(i));
    this.preparation = json.metadata?.preparation !== undefined ? parseImagePreparation(json.metadata.preparation, url) : null;
  }

  /** Whether `prepare` takes this image: one of the model's own shape, or any gray one. */
  accepts(img: InputImage): boolean {
    const [h, w, c] = this.inputShape;
    return img.channels === 1 || (img.height === h && img.width === w && img.channels === c);
  }

  /** Whether a digit drawn on the pad is an input like the model's: only for 28x28 gray models (MNIST's format). */
  get drawable(): boolean {
    const [h, w, c] = this.inputShape;
    return h === 28 && w === 28 && c === 1;
  }

  static async load(url: string): Promise<Engine> {
    const { model, json } = await loadModelFromUrl(url);
    return new Engine(model, json, url);
  }

  /** Which views the page shows: CapsNet's, the EM capsule network's, or the plain ones. */
  get kind(): 'capsnet' | 'em' | 'plain' {
    return this.model instanceof CapsNet ? 'capsnet' : this.model instanceof EmCapsNet ? 'em' : 'plain';
  }

  /** Conv1's output grid and kernel size, for models whose first layer is a convolution named conv1. */
  conv1Geometry(): Conv1Geometry | null {
    const layer = this.model.summary().find((l) => l.name === 'conv1');
    const kernel = this.conv1Kernel();
    if (!layer || !kernel || layer.outputShape.length !== 4) return null;
    const [, h, w, channels] = layer.outputShape as number[];
    return { h, w, channels, kernel: kernel.shape[0] };
  }

  private conv1Kernel(): tf.Variable | null {
    const p = this.model.params.find((q) => q.name === 'conv1/kernel');
    return p && p.value.rank === 4 ? p.value : null;
  }

  /** Routing iterations of the class capsules. */
  get emIterations(): number {
    return this.model.routingIterations ?? 1;
  }

  get caps(): CapsNet {
    if (!(this.model instanceof CapsNet)) throw new Error('not a CapsNet');
    return this.model;
  }

  get inputShape(): [number, number, number] {
    return this.model.inputShape;
  }

  geometry(): CapsGeometry {
    const m = this.caps;
    const c = m.config;
    const [h, w] = c.inputShape;
    const ch = convOutputSize(h, c.conv1.kernelSize, c.conv1.strides, 'valid');
    const cw = convOutputSize(w, c.conv1.kernelSize, c.conv1.strides, 'valid');
    return {
      classes: c.numClasses,
      dim: c.digit.dim,
      conv1: this.conv1Geometry() ?? { h: ch, w: cw, channels: c.conv1.filters, kernel: c.conv1.kernelSize },
      primary: { h: m.primary.gridHeight, w: m.primary.gridWidth, types: c.primary.types, dim: c.primary.dim },
      iterations: c.digit.routingIterations,
      hasDecoder: m.decoderLayers.length > 0,
    };
  }

  /**
   * The model's input for an image of the page. An image of the model's own
   * shape (a test image of its dataset, an upload prepared as its training
   * pictures were) goes in as it is. A gray image of another size (a drawn
   * digit, an MNIST test image, 28x28) is centred in a larger frame (as MNIST
   * is padded to 32x32), or shrunk by area averaging into a smaller one, and
   * copied to every channel.
   */
  prepare(img: InputImage, n = 1): Float32Array {
    const [h, w, c] = this.inputShape;
    if (img.height === h && img.width === w && img.channels === c) return img.data;
    if (img.channels !== 1) throw new Error(`an image of ${img.height}x${img.width}x${img.channels} does not fit this model's ${h}x${w}x${c} input`);
    const per = img.height * img.width;
    const out = new Float32Array(n * h * w * c);
    for (let k = 0; k < n; k++) {
      let px = img.data.subarray(k * per, (k + 1) * per) as Float32Array;
      let iw = img.width;
      let ih = img.height;
      if (ih > h || iw > w) {
        const s = Math.min(h / ih, w / iw);
        const dw = Math.max(1, Math.floor(iw * s));
        const dh = Math.max(1, Math.floor(ih * s));
        px = resizeArea(px, iw, ih, dw, dh);
        iw = dw;
        ih = dh;
      }
      const oy = Math.floor((h - ih) / 2);
      const ox = Math.floor((w - iw) / 2);
      for (let y = 0; y < ih; y++) {
        for (let x = 0; x < iw; x++) {
          const v = px[y * iw + x];
          const base = ((k * h + y + oy) * w + x + ox) * c;
          for (let ch = 0; ch < c; ch++) out[base + ch] = v;
        }
      }
    }
    return out;
  }

  /** Conv1 kernels [k, k, inChannels, filters]; first input channel only. */
  async conv1Kernels(): Promise<{ data: Float32Array; k: number; inChannels: number; filters: number } | null> {
    const kernel = this.conv1Kernel();
    if (!kernel) return null;
    const [k, , inChannels, filters] = kernel.shape;
    return { data: await read(kernel), k, inChannels, filters };
  }

  /** Run the whole network on one image (values in [0, 1]). */
  async analyze(img: InputImage): Promise<Analysis> {
    const t0 = performance.now();
    const [h, w, c] = this.inputShape;
    const pixels = img.data;
    const modelInput = this.prepare(img);
    const x = tf.tensor4d(modelInput, [1, h, w, c]);
    if (this.kind === 'em') return this.analyzeEm(pixels, modelInput, x, t0);
    if (this.kind !== 'capsnet') {
      const out = this.model.forward(x, { trace: true });
      const scores = await read(out.scores);
      const extra: PlainAnalysis['extra'] = {};
      for (const [name, v] of Object.entries(out)) {
        if (name !== 'scores' && v instanceof tf.Tensor && v.dtype === 'float32') extra[name] = { shape: v.shape, data: await read(v) };
      }
      tf.dispose([x, ...Object.values(out).flat().filter((v): v is tf.Tensor => v instanceof tf.Tensor)]);
      return { kind: 'plain', input: pixels, modelInput, scores, prediction: argmax(scores), ms: performance.now() - t0, extra };
    }
    const model = this.caps;
    const out = model.forward(x, { trace: true, decode: 'none' }) as CapsNetOutput;
    // The digit capsule lengths that each iteration's couplings give:
    // v = squash(sum_i c_ij u_hat_j|i), with the model's own prediction vectors.
    const iterLens = tf.tidy(() => {
      const uHat = predictionVectors(out.primaryCaps!, model.digit.W as tf.Tensor4D);
      return out.couplings.map((cp) => capsuleLength(squash(tf.sum(tf.mul(tf.expandDims(cp, 3), uHat), 1))));
    });
    const primaryLengths = capsuleLength(out.primaryCaps!);
    const [scores, digitCaps, conv1, primary, pl, ...rest] = await Promise.all([
      read(out.scores),
      read(out.digitCaps),
      read(out.conv1!),
      read(out.primaryCaps!),
      read(primaryLengths),
      ...out.couplings.map(read),
      ...iterLens.map(read),
    ]);
    const r = out.couplings.length;
    tf.dispose([x, out.scores, out.digitCaps, out.conv1!, out.primaryCaps!, primaryLengths, ...out.couplings, ...iterLens]);
    return {
      kind: 'capsnet',
      input: pixels,
      modelInput,
      scores,
      prediction: argmax(scores),
      digitCaps,
      conv1,
      primary,
      primaryLengths: pl,
      couplings: rest.slice(0, r),
      iterationLengths: rest.slice(r),
      ms: performance.now() - t0,
    };
  }

  private async analyzeEm(pixels: Float32Array, modelInput: Float32Array, x: tf.Tensor4D, t0: number): Promise<EmAnalysis> {
    const out = this.model.forward(x, { trace: true });
    const get = (name: string): tf.Tensor | null => (out[name] instanceof tf.Tensor ? (out[name] as tf.Tensor) : null);
    // The model reports the class capsules' routing of every iteration when traced.
    const routingTensors = (out.routingHistory as tf.Tensor[] | undefined) ?? [];
    const scores = await read(out.scores);
    const poses = get('poses') ? await read(get('poses')!) : new Float32Array(this.model.numClasses * 16);
    const routing = await Promise.all(routingTensors.map(read));
    const conv1 = get('conv1') ? await read(get('conv1')!) : null;
    const layers: ActivationMap[] = [];
    const names: [string, string][] = [['primaryActivations', 'Primary capsules'], ['convCaps1Activations', 'Convolutional capsules 1'], ['convCaps2Activations', 'Convolutional capsules 2']];
    for (const [key, name] of names) {
      const t = get(key);
      if (t && t.rank === 4) layers.push({ name, h: t.shape[1]!, w: t.shape[2]!, types: t.shape[3]!, data: await read(t) });
    }
    const last = layers[layers.length - 1];
    const children = routing.length ? routing[0].length / this.model.numClasses : 0;
    const childGrid = last && last.h * last.w * last.types === children ? { h: last.h, w: last.w, types: last.types } : { h: 1, w: children, types: 1 };
    tf.dispose([x, ...Object.values(out).flat().filter((v): v is tf.Tensor => v instanceof tf.Tensor)]);
    return {
      kind: 'em',
      input: pixels,
      modelInput,
      scores,
      prediction: argmax(scores),
      poses,
      routing,
      childGrid,
      childActivations: last && childGrid.types === last.types ? last.data : null,
      conv1,
      layers,
      ms: performance.now() - t0,
    };
  }

  /** The decoder alone: reconstruct from one capsule vector placed in class `cls`. */
  async decode(vector: Float32Array, cls: number): Promise<Float32Array> {
    const t = tf.tidy(() => this.caps.decodeCapsule(tf.tensor2d(vector, [1, vector.length]), tf.tensor1d([cls], 'int32')));
    const data = await read(t);
    t.dispose();
    return data;
  }

  /** Decode many vectors [n * dim] of class `cls` at once. */
  async decodeMany(vectors: Float32Array, n: number, cls: number): Promise<Float32Array> {
    const dim = vectors.length / n;
    const t = tf.tidy(() => this.caps.decodeCapsule(tf.tensor2d(vectors, [n, dim]), tf.fill([n], cls, 'int32') as tf.Tensor1D));
    const data = await read(t);
    t.dispose();
    return data;
  }

  /**
   * Scores for a batch of n images (for checking against Node): each of the
   * model's own shape, or 28x28 gray (prepared as the page prepares them).
   */
  async scores(images: Float32Array, n: number): Promise<Float32Array> {
    const [h, w, c] = this.inputShape;
    const own = images.length === n * h * w * c;
    const batch = own ? images : this.prepare({ data: images, height: 28, width: 28, channels: 1 }, n);
    const out = tf.tidy(() => {
      const o = this.model.forward(tf.tensor4d(batch, [n, h, w, c]), { decode: 'none' });
      return o.scores;
    });
    const data = await read(out);
    out.dispose();
    return data;
  }

  dispose(): void {
    this.model.dispose();
  }
}
