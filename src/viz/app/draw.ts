/** Colour maps and canvas painting for the views. */

export type RGB = [number, number, number];

function lerpStops(stops: RGB[], t: number): RGB {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = stops[i];
  const b = stops[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

// Sequential (dark to bright, perceptually ordered, readable in grayscale).
const SEQ: RGB[] = [
  [0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164],
];
// Diverging: blue (negative), near-white (zero), red (positive).
const DIV: RGB[] = [[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247], [253, 219, 199], [239, 138, 98], [178, 24, 43]];

/** t in [0, 1] to a colour, dark to bright. */
export function sequential(t: number): RGB {
  return lerpStops(SEQ, t);
}

/** t in [-1, 1] to blue, white, red. */
export function diverging(t: number): RGB {
  return lerpStops(DIV, (t + 1) / 2);
}

export function gray(t: number): RGB {
  const v = Math.round(255 * Math.min(1, Math.max(0, t)));
  return [v, v, v];
}

/** One colour per class, distinguishable from each other. */
export const CLASS_COLORS: RGB[] = [
  [78, 121, 167], [242, 142, 43], [225, 87, 89], [118, 183, 178], [89, 161, 79],
  [237, 201, 72], [176, 122, 161], [255, 157, 167], [156, 117, 95], [186, 176, 172],
];

export function cssColor(c: RGB): string {
  return `rgb(${c.map((v) => Math.round(v)).join(',')})`;
}

/** Paint a grayscale image (values in [0, 1]) into a canvas of its size. */
export function paintGray(canvas: HTMLCanvasElement, pixels: ArrayLike<number>, w: number, h: number): void {
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const v = Math.round(255 * Math.min(1, Math.max(0, pixels[i])));
    img.data[4 * i] = v;
    img.data[4 * i + 1] = v;
    img.data[4 * i + 2] = v;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

/** Paint an image of 1 (gray) or 3 (RGB) channels, values in [0, 1], HWC. */
export function paintImage(canvas: HTMLCanvasElement, pixels: ArrayLike<number>, w: number, h: number, channels = 1): void {
  if (channels === 1) {
    paintGray(canvas, pixels, w, h);
    return;
  }
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    for (let k = 0; k < 3; k++) img.data[4 * i + k] = Math.round(255 * Math.min(1, Math.max(0, pixels[i * channels + Math.min(k, channels - 1)])));
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

export interface TileLayout {
  count: number;
  tileW: number;
  tileH: number;
  cols: number;
  /** Canvas pixels between tiles. */
  gap: number;
  /** Canvas pixels per tile pixel (>1 leaves room for outlines). */
  scale: number;
}

export function tileLayout(count: number, tileW: number, tileH: number, cols: number, gap = 1, scale = 1): TileLayout & { width: number; height: number; rows: number } {
  const c = Math.max(1, Math.min(cols, count));
  const rows = Math.ceil(count / c);
  return { count, tileW, tileH, cols: c, gap, scale, rows, width: c * tileW * scale + (c - 1) * gap, height: rows * tileH * scale + (rows - 1) * gap };
}

/** The canvas position of a tile's top left corner. */
export function tileOrigin(l: TileLayout, tile: number): [number, number] {
  return [(tile % l.cols) * (l.tileW * l.scale + l.gap), Math.floor(tile / l.cols) * (l.tileH * l.scale + l.gap)];
}

/**
 * Paint `count` tiles of tileW x tileH pixels in a grid; color(tile, y, x)
 * gives each pixel. The canvas gets exactly the grid's size; CSS scales it.
 */
export function paintTiles(canvas: HTMLCanvasElement, layout: TileLayout, color: (tile: number, y: number, x: number) => RGB, background: RGB = [255, 255, 255]): void {
  const l = tileLayout(layout.count, layout.tileW, layout.tileH, layout.cols, layout.gap, layout.scale);
  canvas.width = l.width;
  canvas.height = l.height;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(l.width, l.height);
  const d = img.data;
  for (let i = 0; i < l.width * l.height; i++) {
    d[4 * i] = background[0];
    d[4 * i + 1] = background[1];
    d[4 * i + 2] = background[2];
    d[4 * i + 3] = 255;
  }
  const s = l.scale;
  for (let t = 0; t < l.count; t++) {
    const [ox, oy] = tileOrigin(l, t);
    for (let y = 0; y < l.tileH; y++) {
      for (let x = 0; x < l.tileW; x++) {
        const c = color(t, y, x);
        for (let dy = 0; dy < s; dy++) {
          let p = 4 * ((oy + y * s + dy) * l.width + ox + x * s);
          for (let dx = 0; dx < s; dx++, p += 4) {
            d[p] = c[0];
            d[p + 1] = c[1];
            d[p + 2] = c[2];
          }
        }
      }
    }
  }
  ctx.putImageData(img, 0, 0);
}

/** The tile and pixel under a pointer event on a canvas painted by paintTiles. */
export function tileAt(canvas: HTMLCanvasElement, layout: TileLayout, ev: { clientX: number; clientY: number }): { tile: number; y: number; x: number } | null {
  const r = canvas.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return null;
  const px = ((ev.clientX - r.left) / r.width) * canvas.width;
  const py = ((ev.clientY - r.top) / r.height) * canvas.height;
  const stepX = layout.tileW * layout.scale + layout.gap;
  const stepY = layout.tileH * layout.scale + layout.gap;
  const col = Math.floor(px / stepX);
  const row = Math.floor(py / stepY);
  const x = Math.floor((px - col * stepX) / layout.scale);
  const y = Math.floor((py - row * stepY) / layout.scale);
  const tile = row * layout.cols + col;
  if (col < 0 || col >= layout.cols || tile < 0 || tile >= layout.count || x < 0 || x >= layout.tileW || y < 0 || y >= layout.tileH) return null;
  return { tile, y, x };
}

/** Outline one pixel of a tile (e.g. the focused capsule) on a painted grid. */
export function outlinePixel(canvas: HTMLCanvasElement, layout: TileLayout, tile: number, y: number, x: number, color = '#00d5ff'): void {
  const ctx = canvas.getContext('2d')!;
  const [ox, oy] = tileOrigin(layout, tile);
  const s = layout.scale;
  ctx.strokeStyle = color;
  ctx.lineWidth = Math.max(1, Math.floor(s / 3));
  const lw = ctx.lineWidth;
  ctx.strokeRect(ox + x * s + lw / 2, oy + y * s + lw / 2, s - lw, s - lw);
}

/** Outline a whole tile. */
export function outlineTile(canvas: HTMLCanvasElement, layout: TileLayout, tile: number, color = '#00d5ff'): void {
  const ctx = canvas.getContext('2d')!;
  const [ox, oy] = tileOrigin(layout, tile);
  ctx.strokeStyle = color;
  ctx.lineWidth = 1;
  ctx.strokeRect(ox + 0.5, oy + 0.5, layout.tileW * layout.scale - 1, layout.tileH * layout.scale - 1);
}

/**
 * A colour scale for values whose few largest would wash out the rest: the
 * q-quantile of |values| (values beyond it get the full colour), but at
 * least a tenth of the largest, so near-zero noise never fills the scale.
 */
export function robustScale(values: ArrayLike<number>, q = 0.98, floor = 1e-6): number {
  const abs = Float32Array.from(values, (v) => Math.abs(v)).sort();
  if (!abs.length) return floor;
  return Math.max(floor, abs[Math.min(abs.length - 1, Math.floor(q * abs.length))], abs[abs.length - 1] / 10);
}

export function maxOf(a: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < a.length; i++) if (a[i] > m) m = a[i];
  return m;
}

export function absMax(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
