/**
 * Line charts as raster images (the attack command's accuracy-vs-epsilon
 * curves): panels with axes, ticks, titles and a shared legend, text in a
 * 5x7 bitmap font (upper case, digits and a little punctuation), written
 * through the PNG writer of ./imageFiles.ts.
 */
import type { RasterImage } from './imageFiles.js';

export type Rgb = [number, number, number];

export interface Series {
  name: string;
  points: [number, number][];
  color?: Rgb;
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  yRange?: [number, number];
  /** A dashed horizontal reference line (e.g. chance level) and its label. */
  reference?: { y: number; label: string };
}

export const PALETTE: Rgb[] = [
  [0.85, 0.1, 0.1],
  [0.1, 0.35, 0.85],
  [0.1, 0.6, 0.2],
  [0.8, 0.45, 0.0],
  [0.5, 0.2, 0.7],
  [0.2, 0.2, 0.2],
];

// 5x7 glyphs, one string of 7 rows of 5 bits ('#' on) per character.
const GLYPHS: Record<string, string> = {
  A: ' ### #   ##   #######   ##   ##   #',
  B: '#### #   ##   ##### #   ##   ##### ',
  C: ' ### #   ##    #    #    #   # ### ',
  D: '#### #   ##   ##   ##   ##   ##### ',
  E: '######    #    #### #    #    #####',
  F: '######    #    #### #    #    #    ',
  G: ' ### #   ##    # ####   ##   # ####',
  H: '#   ##   ##   #######   ##   ##   #',
  I: ' ###   #    #    #    #    #   ### ',
  J: '  ###   #    #    #    ##   # ###  ',
  K: '#   ##  # # #  ##   # #  #  # #   #',
  L: '#    #    #    #    #    #    #####',
  M: '#   ### ### # ## # ##   ##   ##   #',
  N: '#   ###  ## # ##  ###   ##   ##   #',
  O: ' ### #   ##   ##   ##   ##   # ### ',
  P: '#### #   ##   ##### #    #    #    ',
  Q: ' ### #   ##   ##   ## # ##  #  ## #',
  R: '#### #   ##   ##### # #  #  # #   #',
  S: ' #####    #     ###     #    ##### ',
  T: '#####  #    #    #    #    #    #  ',
  U: '#   ##   ##   ##   ##   ##   # ### ',
  V: '#   ##   ##   ##   ##   # # #   #  ',
  W: '#   ##   ##   ## # ## # ## # # # # ',
  X: '#   ##   # # #   #   # # #   ##   #',
  Y: '#   ##   # # #   #    #    #    #  ',
  Z: '#####    #   #   #   #   #    #####',
  '0': ' ### #   ##  ### # ###  ##   # ### ',
  '1': '  #   ##    #    #    #    #   ### ',
  '2': ' ### #   #    #   #   #   #   #####',
  '3': '#####    #   #   ##     ##   # ### ',
  '4': '   #   ##  # # #  # #####   #    # ',
  '5': '######    ####     #    ##   # ### ',
  '6': '  ##  #   #    #### #   ##   # ### ',
  '7': '#####    #   #   #   #    #    #   ',
  '8': ' ### #   ##   # ### #   ##   # ### ',
  '9': ' ### #   ##   # ####    #   #  ##  ',
  '.': '                          ##   ##  ',
  ',': '                     ##   ##  #    ',
  '-': '               #####               ',
  '+': '       #    #  #####  #    #       ',
  '%': '##   ##  #   #   #   #   #  ##   ##',
  '(': '   #   #   #    #    #     #     # ',
  ')': ' #     #     #    #    #   #   #   ',
  ':': '      ##   ##       ##   ##        ',
  '/': '         #   #   #   #   #         ',
  '=': '          #####     #####          ',
  '_': '                              #####',
  "'": '  #    #   #                       ',
  ' ': '                                   ',
};

export const GLYPH_W = 5;
export const GLYPH_H = 7;

/** Pixels of the glyph of `ch` (unknown characters draw as a box). */
function glyph(ch: string): string {
  const g = GLYPHS[ch.toUpperCase()] ?? '#####' + '#   #'.repeat(5) + '#####';
  return g.padEnd(GLYPH_W * GLYPH_H, ' ');
}

export class Canvas {
  readonly data: Float32Array;
  constructor(readonly width: number, readonly height: number, background: Rgb = [1, 1, 1]) {
    this.data = new Float32Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.data.set(background, i * 3);
  }

  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.data.set(c, (y * this.width + x) * 3);
  }

  rect(x0: number, y0: number, w: number, h: number, c: Rgb): void {
    for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) this.set(x, y, c);
  }

  /** A line `thickness` pixels wide; `dash` > 0 draws dashes of that length. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thickness = 1, dash = 0): void {
    const len = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
    const r = (thickness - 1) / 2;
    for (let i = 0; i <= len; i++) {
      if (dash > 0 && Math.floor(i / dash) % 2 === 1) continue;
      const x = x0 + ((x1 - x0) * i) / len;
      const y = y0 + ((y1 - y0) * i) / len;
      for (let dy = -r; dy <= r; dy++) for (let dx = -r; dx <= r; dx++) this.set(x + dx, y + dy, c);
    }
  }

  /** Text with its top-left corner at (x, y), each font pixel `scale` pixels; returns the width drawn. */
  text(x: number, y: number, s: string, c: Rgb = [0, 0, 0], scale = 1, vertical = false): number {
    let pos = 0;
    for (const ch of s) {
      const g = glyph(ch);
      for (let gy = 0; gy < GLYPH_H; gy++) {
        for (let gx = 0; gx < GLYPH_W; gx++) {
          if (g[gy * GLYPH_W + gx] !== '#') continue;
          for (let sy = 0; sy < scale; sy++) {
            for (let sx = 0; sx < scale; sx++) {
              if (vertical) this.set(x + gy * scale + sy, y - (pos + gx * scale + sx), c);
              else this.set(x + pos + gx * scale + sx, y + gy * scale + sy, c);
            }
          }
        }
      }
      pos += (GLYPH_W + 1) * scale;
    }
    return pos;
  }

  toRaster(): RasterImage {
    return { width: this.width, height: this.height, channels: 3, data: this.data };
  }
}

export function textWidth(s: string, scale = 1): number {
  return [...s].length * (GLYPH_W + 1) * scale;
}

function niceTicks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

function fmtTick(v: number): string {
  return Number(v.toPrecision(4)).toString();
}

/** Draw panels on a grid with `cols` columns and one legend for every series name. */
export function renderPanels(panels: Panel[], cols = 2, options: { panelWidth?: number; panelHeight?: number; scale?: number } = {}): RasterImage {
  const { panelWidth = 480, panelHeight = 320, scale = 2 } = options;
  const rows = Math.ceil(panels.length / cols);
  const names = [...new Set(panels.flatMap((p) => p.series.map((s) => s.name)))];
  const colorOf = (name: string, given?: Rgb) => given ?? PALETTE[names.indexOf(name) % PALETTE.length];
  const legendH = 16 + 12 * scale * Math.ceil(names.length / 3);
  const canvas = new Canvas(cols * panelWidth, rows * panelHeight + legendH);
  const lh = GLYPH_H * scale;
  panels.forEach((p, k) => {
    const ox = (k % cols) * panelWidth;
    const oy = Math.floor(k / cols) * panelHeight;
    const left = ox + 16 + lh + 6 * (GLYPH_W + 1) * scale * 0.75;
    const right = ox + panelWidth - 26;
    const top = oy + 14 + lh;
    const bottom = oy + panelHeight - 18 - 2 * lh;
    const xs = p.series.flatMap((s) => s.points.map((q) => q[0]));
    const xMin = Math.min(...xs, 0);
    const xMax = Math.max(...xs, xMin + 1e-9);
    const [yMin, yMax] = p.yRange ?? [0, 1];
    const px = (x: number) => left + ((x - xMin) / (xMax - xMin)) * (right - left);
    const py = (y: number) => bottom - ((Math.min(yMax, Math.max(yMin, y)) - yMin) / (yMax - yMin)) * (bottom - top);
    canvas.text(ox + (panelWidth - textWidth(p.title, scale)) / 2, oy + 6, p.title, [0, 0, 0], scale);
    for (const t of niceTicks(yMin, yMax, 5)) {
      canvas.line(left, py(t), right, py(t), [0.88, 0.88, 0.88]);
      const label = fmtTick(t);
      canvas.text(left - 6 - textWidth(label, scale), py(t) - lh / 2, label, [0, 0, 0], scale);
    }
    for (const t of niceTicks(xMin, xMax, 6)) {
      canvas.line(px(t), bottom, px(t), bottom + 4, [0, 0, 0]);
      const label = fmtTick(t);
      canvas.text(px(t) - textWidth(label, scale) / 2, bottom + 7, label, [0, 0, 0], scale);
    }
    canvas.line(left, top, left, bottom, [0, 0, 0]);
    canvas.line(left, bottom, right, bottom, [0, 0, 0]);
    canvas.text((left + right) / 2 - textWidth(p.xLabel, scale) / 2, bottom + 10 + lh, p.xLabel, [0, 0, 0], scale);
    canvas.text(ox + 6, (top + bottom) / 2 + textWidth(p.yLabel, scale) / 2, p.yLabel, [0, 0, 0], scale, true);
    if (p.reference) {
      canvas.line(left, py(p.reference.y), right, py(p.reference.y), [0.45, 0.45, 0.45], 1, 6);
      canvas.text(right - textWidth(p.reference.label, scale), py(p.reference.y) - lh - 3, p.reference.label, [0.45, 0.45, 0.45], scale);
    }
    for (const s of p.series) {
      const c = colorOf(s.name, s.color);
      const pts = [...s.points].sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < pts.length; i++) canvas.line(px(pts[i - 1][0]), py(pts[i - 1][1]), px(pts[i][0]), py(pts[i][1]), c, 2);
      for (const [x, y] of pts) canvas.rect(Math.round(px(x)) - 2, Math.round(py(y)) - 2, 5, 5, c);
    }
  });
  const ly = rows * panelHeight + 8;
  names.forEach((name, i) => {
    const x = 20 + (i % 3) * Math.floor((cols * panelWidth - 40) / 3);
    const y = ly + Math.floor(i / 3) * 12 * scale;
    canvas.rect(x, y + lh / 2 - 2, 18, 4, colorOf(name));
    canvas.text(x + 24, y, name, [0, 0, 0], scale);
  });
  return canvas.toRaster();
}
