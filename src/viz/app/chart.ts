/**
 * A small line chart on a canvas for the Train panel's curves: points
 * (x, y), an optional smoothed line, axes with a few labelled ticks, sized
 * to the canvas's CSS box and the screen's pixel density.
 */

export interface Series {
  points: { x: number; y: number }[];
  color: string;
  /** Draw the points as dots (few points) instead of a thin line (many). */
  dots?: boolean;
  /** Also draw an exponential moving average of y with this weight on the past (0.9: smooth). */
  smooth?: number;
}

export interface ChartOptions {
  xLabel: string;
  /** Fixed y range; else from the data. */
  yMin?: number;
  yMax?: number;
  /** Smallest x range shown (the curve grows into it). */
  xMax?: number;
  formatY(v: number): string;
  formatX(v: number): string;
}

/** Round steps (1, 2 or 5 times a power of ten) about `count` per range. */
function ticks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

export function drawChart(canvas: HTMLCanvasElement, series: Series[], o: ChartOptions): void {
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || 300;
  const cssH = canvas.clientHeight || 150;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  const ctx = canvas.getContext('2d')!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  const left = 44;
  const right = 10;
  const top = 8;
  const bottom = 30;
  const w = cssW - left - right;
  const h = cssH - top - bottom;
  const all = series.flatMap((s) => s.points);
  let xMax = Math.max(o.xMax ?? 0, ...all.map((p) => p.x));
  if (!(xMax > 0)) xMax = 1;
  let yMin = o.yMin ?? Math.min(...all.map((p) => p.y));
  let yMax = o.yMax ?? Math.max(...all.map((p) => p.y));
  if (!Number.isFinite(yMin) || !Number.isFinite(yMax)) [yMin, yMax] = [0, 1];
  if (yMax - yMin < 1e-9) [yMin, yMax] = [yMin - 0.5, yMax + 0.5];
  const X = (x: number) => left + (x / xMax) * w;
  const Y = (y: number) => top + h - ((y - yMin) / (yMax - yMin)) * h;
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#5a6273';
  ctx.strokeStyle = '#e3e6ec';
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (const v of ticks(yMin, yMax, 5)) {
    ctx.beginPath();
    ctx.moveTo(left, Math.round(Y(v)) + 0.5);
    ctx.lineTo(left + w, Math.round(Y(v)) + 0.5);
    ctx.stroke();
    ctx.fillText(o.formatY(v), left - 5, Y(v));
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  for (const v of ticks(0, xMax, 5)) ctx.fillText(o.formatX(v), X(v), top + h + 4);
  ctx.fillText(o.xLabel, left + w / 2, top + h + 16);
  ctx.strokeStyle = '#9aa3b5';
  ctx.beginPath();
  ctx.moveTo(left + 0.5, top);
  ctx.lineTo(left + 0.5, top + h + 0.5);
  ctx.lineTo(left + w, top + h + 0.5);
  ctx.stroke();
  for (const s of series) {
    if (!s.points.length) continue;
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    if (s.dots) {
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      s.points.forEach((p, i) => (i ? ctx.lineTo(X(p.x), Y(p.y)) : ctx.moveTo(X(p.x), Y(p.y))));
      ctx.stroke();
      for (const p of s.points) {
        ctx.beginPath();
        ctx.arc(X(p.x), Y(p.y), 3, 0, 2 * Math.PI);
        ctx.fill();
      }
      continue;
    }
    ctx.globalAlpha = s.smooth ? 0.35 : 1;
    ctx.lineWidth = 1;
    ctx.beginPath();
    s.points.forEach((p, i) => (i ? ctx.lineTo(X(p.x), Y(p.y)) : ctx.moveTo(X(p.x), Y(p.y))));
    ctx.stroke();
    ctx.globalAlpha = 1;
    if (s.smooth) {
      ctx.lineWidth = 2;
      ctx.beginPath();
      let m = s.points[0].y;
      s.points.forEach((p, i) => {
        m = i ? s.smooth! * m + (1 - s.smooth!) * p.y : p.y;
        if (i) ctx.lineTo(X(p.x), Y(m));
        else ctx.moveTo(X(p.x), Y(m));
      });
      ctx.stroke();
    }
  }
}
