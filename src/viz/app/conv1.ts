/**
 * The first convolution: its kernels and its ReLU maps, one tile each, with
 * one kernel and its map shown large.
 */
import { absMax, diverging, maxOf, outlineTile, paintTiles, sequential, tileAt, tileLayout, type RGB, type TileLayout } from './draw.js';
import { $, onPoint, pointWord } from './dom.js';
import { showReference } from './reference.js';
import { state, track, type View } from './state.js';
import { param, setParams } from './url.js';

/** The first convolution's output grid and kernel size, when the model shows its maps. */
function conv1Geometry(): { h: number; w: number; channels: number; kernel: number } | null {
  return state.layout?.featureMaps ?? null;
}

function conv1Layouts(): { kernels: TileLayout; maps: TileLayout } | null {
  const g = conv1Geometry();
  if (!g) return null;
  const c = g.channels;
  const cols = c >= 128 ? 16 : c >= 32 ? 8 : 4;
  return { kernels: tileLayout(c, g.kernel, g.kernel, cols, 1, 2), maps: tileLayout(c, g.w, g.h, cols, 2, 1) };
}

function strongestMap(maps: Float32Array): number {
  const g = conv1Geometry();
  if (!g) return 0;
  const c = g.channels;
  const sums = new Float32Array(c);
  for (let i = 0; i < maps.length; i++) sums[i % c] += maps[i];
  let best = 0;
  for (let k = 1; k < c; k++) if (sums[k] > sums[best]) best = k;
  return best;
}

function renderConv1(): void {
  const maps = state.analysis?.featureMaps ?? null;
  const l = conv1Layouts();
  const g = conv1Geometry();
  if (!l || !g) return;
  const { channels: C, h, w, kernel: k } = g;
  const focus = Math.max(0, state.conv1Focus);
  if (state.kernels) {
    const kd = state.kernels.data;
    const F = state.kernels.filters;
    const inC = state.kernels.inChannels;
    const km = absMax(kd) || 1;
    // A kernel over colour input is drawn in colour: each channel's weight
    // around mid-gray, so that a kernel tuned to red looks red. Over gray
    // input (or any other channel count), the first channel's weights on the
    // blue-white-red scale.
    const weight = (t: number, y: number, x: number, ch: number) => kd[((y * k + x) * inC + ch) * F + t] / km;
    const color = (t: number, y: number, x: number): RGB =>
      inC === 3 ? [0, 1, 2].map((ch) => 127.5 + 127.5 * weight(t, y, x, ch)) as RGB : diverging(weight(t, y, x, 0));
    const kcanvas = $<HTMLCanvasElement>('conv1-kernels');
    paintTiles(kcanvas, l.kernels, color);
    outlineTile(kcanvas, l.kernels, focus, '#ffb000');
    const f = $<HTMLCanvasElement>('conv1-kernel-focus');
    paintTiles(f, tileLayout(1, k, k, 1, 0, 1), (_t, y, x) => color(focus, y, x));
  }
  if (maps && maps.length === h * w * C) {
    const m = maxOf(maps) || 1;
    const mcanvas = $<HTMLCanvasElement>('conv1-maps');
    paintTiles(mcanvas, l.maps, (t, y, x) => sequential(maps[(y * w + x) * C + t] / m));
    outlineTile(mcanvas, l.maps, focus, '#00b7ff');
    const f = $<HTMLCanvasElement>('conv1-map-focus');
    paintTiles(f, tileLayout(1, w, h, 1, 0, 1), (_t, y, x) => sequential(maps[(y * w + x) * C + focus] / m));
    let mx = 0;
    for (let i = focus; i < maps.length; i += C) mx = Math.max(mx, maps[i]);
    $('conv1-info').textContent = `Kernel and map ${focus + 1} of ${C}: strongest response ${mx.toFixed(2)} (the brightest map pixel overall is ${m.toFixed(2)}).`;
  }
}

function setupConv1Input(): void {
  for (const id of ['conv1-kernels', 'conv1-maps']) {
    const canvas = $<HTMLCanvasElement>(id);
    const layout = () => (id === 'conv1-kernels' ? conv1Layouts()?.kernels : conv1Layouts()?.maps);
    onPoint(canvas, (e) => {
      const l = layout();
      const hit = l && tileAt(canvas, l, e);
      if (hit && hit.tile !== state.conv1Focus) {
        state.conv1Focus = hit.tile;
        setParams({ kernel: hit.tile + 1 });
        renderConv1();
      }
    });
    canvas.addEventListener('keydown', (e) => {
      const l = layout();
      if (!l) return;
      const step: Record<string, number> = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -l.cols, ArrowDown: l.cols };
      if (step[e.key] === undefined) return;
      e.preventDefault();
      state.conv1Focus = Math.min(l.count - 1, Math.max(0, Math.max(0, state.conv1Focus) + step[e.key]));
      setParams({ kernel: state.conv1Focus + 1 });
      renderConv1();
    });
  }
}

/** Read the kernels of the model shown (again, when training has changed them). */
function loadKernels(): void {
  const engine = state.engine;
  if (!engine?.layout.featureMaps) return;
  void track(engine.conv1Kernels()).then(
    (k) => {
      if (engine !== state.engine) return;
      state.kernels = k;
      renderConv1();
    },
    () => undefined, // the model was replaced meanwhile; its successor reads its own
  );
}

export const conv1View: View = {
  refresh: loadKernels,
  init: setupConv1Input,
  setup(engine) {
    const g = engine.layout.featureMaps;
    $('view-conv1').hidden = !g;
    // The address's kernel=N (1-based), else the strongest map of the first input.
    const named = Number(param('kernel'));
    state.conv1Focus = g && Number.isInteger(named) && named >= 1 && named <= g.channels ? named - 1 : -1;
    state.kernels = null;
    if (!g) return;
    loadKernels();
    const k = g.kernel;
    const colourKernels = engine.inputShape[2] === 3;
    showReference('conv1-ref', g.reference);
    $('conv1-explain').textContent = `The first layer slides each of its ${g.channels} kernels (${k}×${k} pixels${colourKernels ? ' over the three colour channels' : ''}) over the image and keeps only positive responses (ReLU). ${colourKernels ? 'Kernels: each pixel shows the weights of red, green and blue around mid-gray (a reddish pixel responds to red; gray is no preference).' : 'Kernels: blue weights darken, red weights brighten.'} Each map shows where its kernel found its pattern (edges, stroke ends, curves); brighter is stronger. ${pointWord()} a map, or use the arrow keys on the maps, to inspect one.`;
  },
  render() {
    const maps = state.analysis?.featureMaps;
    if (!maps) return;
    if (state.conv1Focus < 0) state.conv1Focus = strongestMap(maps);
    renderConv1();
  },
};
