/**
 * The input side: a drawing pad (mouse, pen, touch through pointer events),
 * image uploads, and the conversion of either into the 28x28 MNIST-style
 * image the model expects, with the library's mnistPreprocess; or, for a
 * model trained on a --data folder, an upload prepared as its training
 * pictures were (metadata.preparation).
 */
import { borderMean, mnistPreprocess, resizeArea } from '../../data/preprocess.js';
import type { ImagePreparation } from '../../index.js';
import { paintImage } from './draw.js';
import type { InputImage } from './engine.js';
import { drawBitmap, preparedBytes } from './pictures.js';

export interface PadOptions {
  /** Called while drawing (at most once per animation frame) and when a stroke ends. */
  onChange(): void;
}

export class DrawingPad {
  readonly canvas: HTMLCanvasElement;
  private readonly ctx: CanvasRenderingContext2D;
  private drawing = false;
  private last: [number, number] | null = null;
  private frame = 0;
  /** True when the pad holds something the user drew or uploaded. */
  dirty = false;
  /** False for models that take no drawn digits: the pad then only shows the input. */
  enabled = true;

  constructor(canvas: HTMLCanvasElement, private readonly options: PadOptions) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { willReadFrequently: true })!;
    this.clear();
    canvas.addEventListener('pointerdown', (e) => this.down(e));
    canvas.addEventListener('pointermove', (e) => this.move(e));
    canvas.addEventListener('pointerup', (e) => this.up(e));
    canvas.addEventListener('pointercancel', (e) => this.up(e));
  }

  clear(): void {
    this.ctx.fillStyle = '#000';
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.dirty = false;
  }

  /** Show an image (e.g. a test sample) enlarged, so the user can draw over it. */
  showImage(img: InputImage): void {
    const small = document.createElement('canvas');
    paintImage(small, img.data, img.width, img.height, img.channels);
    this.ctx.imageSmoothingEnabled = true;
    this.ctx.imageSmoothingQuality = 'high';
    this.ctx.fillStyle = '#000';
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.ctx.drawImage(small, 0, 0, this.canvas.width, this.canvas.height);
    this.dirty = false;
  }

  private point(e: PointerEvent): [number, number] {
    const r = this.canvas.getBoundingClientRect();
    return [((e.clientX - r.left) / r.width) * this.canvas.width, ((e.clientY - r.top) / r.height) * this.canvas.height];
  }

  private stroke(from: [number, number], to: [number, number]): void {
    const c = this.ctx;
    c.strokeStyle = '#fff';
    c.fillStyle = '#fff';
    c.lineCap = 'round';
    c.lineJoin = 'round';
    c.lineWidth = this.canvas.width / 13;
    c.beginPath();
    c.moveTo(from[0], from[1]);
    c.lineTo(to[0], to[1]);
    c.stroke();
  }

  private down(e: PointerEvent): void {
    if (!this.enabled || (e.button !== 0 && e.pointerType === 'mouse')) return;
    e.preventDefault();
    try {
      this.canvas.setPointerCapture(e.pointerId);
    } catch {
      // Synthetic events have no active pointer to capture; drawing works without.
    }
    this.drawing = true;
    const p = this.point(e);
    this.last = p;
    this.stroke(p, [p[0] + 0.01, p[1]]);
    this.changed();
  }

  private move(e: PointerEvent): void {
    if (!this.drawing || !this.last) return;
    e.preventDefault();
    const events = typeof e.getCoalescedEvents === 'function' ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) {
      const p = this.point(ev);
      this.stroke(this.last, p);
      this.last = p;
    }
    this.changed();
  }

  private up(e: PointerEvent): void {
    if (!this.drawing) return;
    this.drawing = false;
    this.last = null;
    if (this.canvas.hasPointerCapture(e.pointerId)) this.canvas.releasePointerCapture(e.pointerId);
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.options.onChange();
  }

  private changed(): void {
    this.dirty = true;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.options.onChange();
    });
  }

  /** The pad in gray, [0, 1]. */
  private gray(): Float32Array {
    const { width: w, height: h } = this.canvas;
    const data = this.ctx.getImageData(0, 0, w, h).data;
    const g = new Float32Array(w * h);
    for (let i = 0; i < w * h; i++) g[i] = (0.299 * data[4 * i] + 0.587 * data[4 * i + 1] + 0.114 * data[4 * i + 2]) / 255;
    return g;
  }

  /** The pad as an MNIST-style image (size x size, ink bright on dark). */
  toInput(size = 28): Float32Array {
    return mnistPreprocess(this.gray(), this.canvas.width, this.canvas.height, { invert: false, size });
  }

  /** The pad as the whole frame of a w x h input, each stroke where it was drawn (area averaging). */
  toFrame(w: number, h: number): Float32Array {
    return resizeArea(this.gray(), this.canvas.width, this.canvas.height, w, h);
  }
}

/**
 * Grayscale [0, 1] to ink in [0, 1] over a background of 0: the border's mean
 * is taken as the paper (light paper means dark ink), and the contrast is
 * stretched so that photos of paper, which is never white, lose their grey.
 */
export function stretchInk(g: Float32Array, w: number, h: number): Float32Array {
  const bg = borderMean(g, w, h);
  const light = bg > 0.5;
  let far = bg;
  for (const v of g) far = light ? Math.min(far, v) : Math.max(far, v);
  const range = Math.abs(bg - far);
  if (range < 0.05) return new Float32Array(g.length);
  const out = new Float32Array(g.length);
  for (let i = 0; i < g.length; i++) {
    const ink = (light ? bg - g[i] : g[i] - bg) / range;
    // Slightly below the background counts as paper (noise, shading).
    out[i] = Math.min(1, Math.max(0, (ink - 0.15) / 0.85));
  }
  return out;
}

export class NotAnImageError extends Error {}

const FORMATS = 'Choose a PNG, JPEG, GIF, WebP or BMP picture';

/** Decode an uploaded file with the browser's decoder; files that are not pictures get a NotAnImageError. */
async function decodeUpload(file: File): Promise<ImageBitmap> {
  const name = file.name || 'the file';
  if (file.type && !file.type.startsWith('image/')) throw new NotAnImageError(`"${name}" is not an image (its type is ${file.type}). ${FORMATS}.`);
  try {
    return await createImageBitmap(file);
  } catch {
    throw new NotAnImageError(`"${name}" could not be read as an image. ${FORMATS}.`);
  }
}

/**
 * Read an uploaded file as an MNIST-style image: decoded by the browser,
 * composited over white (so transparent backgrounds count as paper), then
 * cropped, scaled and centred; dark ink on light paper is inverted.
 */
export async function imageFileToInput(file: File, size = 28): Promise<Float32Array> {
  const bitmap = await decodeUpload(file);
  const maxSide = 560;
  const scale = Math.min(1, maxSide / Math.max(bitmap.width, bitmap.height));
  const w = Math.max(1, Math.round(bitmap.width * scale));
  const h = Math.max(1, Math.round(bitmap.height * scale));
  const data = drawBitmap(bitmap, w, h, '#fff', false);
  const g = new Float32Array(w * h);
  for (let i = 0; i < w * h; i++) g[i] = (0.299 * data[4 * i] + 0.587 * data[4 * i + 1] + 0.114 * data[4 * i + 2]) / 255;
  const out = mnistPreprocess(stretchInk(g, w, h), w, h, { invert: false, size });
  if (!out.some((v) => v > 0)) throw new NotAnImageError(`"${file.name || 'the file'}" has no visible ink: it looks blank after conversion to grayscale.`);
  return out;
}

/**
 * An uploaded picture of exactly w x h pixels as the frame of a model of
 * that input (MultiMNIST's 36x36): gray, dark ink on light paper inverted,
 * nothing cropped or moved. Null for a picture of another size.
 */
export async function imageFileToFrame(file: File, w: number, h: number): Promise<Float32Array | null> {
  const bitmap = await decodeUpload(file);
  if (bitmap.width !== w || bitmap.height !== h) {
    bitmap.close();
    return null;
  }
  const data = drawBitmap(bitmap, w, h, '#fff', false);
  const g = new Float32Array(w * h);
  for (let i = 0; i < w * h; i++) g[i] = (0.299 * data[4 * i] + 0.587 * data[4 * i + 1] + 0.114 * data[4 * i + 2]) / 255;
  return stretchInk(g, w, h);
}

/**
 * Read an uploaded file as the model's training pictures were prepared
 * (ImagePreparation): transparency composited on black, stretched to the
 * model's height x width without cropping, and kept in colour or turned to
 * gray the way the training decoder does it (libvips' b-w: the luminance of
 * linear light, Rec. 709 weights, encoded back to sRGB).
 */
export async function imageFileToPrepared(file: File, prep: ImagePreparation): Promise<InputImage> {
  const bitmap = await decodeUpload(file);
  const { width: w, height: h, channels } = prep;
  const bytes = preparedBytes(drawBitmap(bitmap, w, h, '#000', true), prep);
  return { data: Float32Array.from(bytes, (v) => v / 255), height: h, width: w, channels };
}
