/**
 * Routing from the primary capsules to the class capsules (CapsNet's
 * routing by agreement, or any routing whose senders are the primary
 * capsules): for each iteration, the coefficients of every primary capsule
 * to each class capsule, the class capsule each one sends most to, and the
 * class capsule lengths those coefficients give.
 */
import { CLASS_COLORS, cssColor, diverging, maxOf, outlinePixel, paintTiles, robustScale, sequential, tileAt, tileOrigin, type RGB } from './draw.js';
import { $, capitalize, fmtPct, onPoint } from './dom.js';
import { capsuleIndex, primaryLayout, primaryRouting, renderCapsuleInfo, topClasses } from './primary.js';
import { showReference } from './reference.js';
import { className, focusCapsule, state, type View } from './state.js';
import { param, setParams } from './url.js';

/** How the view draws the coefficients, after the model's words on what they are. */
const ROUTING_DISPLAY =
  'Each map below is one digit capsule, with the primary capsules in the same layout as above: red marks capsules that send it more than an even share, blue less (or, with "COEFFICIENT", brighter means more). ' +
  'Long capsules matter most, so colours are weighted by capsule length unless you untick it. The percentage is the share of all capsule length routed to that digit. The last map shows, for every primary capsule, the digit it sends most to.';

function classCount(): number {
  return state.engine?.numClasses ?? 0;
}

function buildRoutingMaps(): void {
  const root = $('routing-maps');
  root.replaceChildren();
  if (!primaryRouting()) return;
  for (let j = 0; j < classCount(); j++) {
    const fig = document.createElement('figure');
    const canvas = document.createElement('canvas');
    canvas.className = 'pixel';
    canvas.id = `routing-${j}`;
    canvas.setAttribute('role', 'img');
    const cap = document.createElement('figcaption');
    fig.append(canvas, cap);
    root.append(fig);
    onPoint(canvas, (e) => {
      const l = primaryLayout(2);
      const hit = l && tileAt(canvas, l, e);
      if (hit && (hit.tile !== state.capsFocus?.type || hit.y !== state.capsFocus.y || hit.x !== state.capsFocus.x)) focusCapsule({ type: hit.tile, y: hit.y, x: hit.x });
    });
  }
  const legend = $('routing-legend');
  const tie = document.createElement('span');
  const tieMark = document.createElement('i');
  tieMark.className = 'tie';
  tie.append(tieMark, 'tie (an even split)');
  legend.replaceChildren(
    ...Array.from({ length: classCount() }, (_, j) => {
      const s = document.createElement('span');
      const i = document.createElement('i');
      i.style.background = cssColor(CLASS_COLORS[j % CLASS_COLORS.length]);
      s.append(i, className(j));
      return s;
    }),
    tie,
  );
}

/**
 * In words, how far the coefficients of iteration `it` are from an even
 * split: the range of each class's coefficients, the prediction's apart,
 * over the capsules that carry most of the length (the rest barely count).
 */
function routingSummary(c: Float32Array, len: Float32Array, J: number, prediction: number, it: number, iterations: number, coefficient: string): string {
  const maxLen = Math.max(maxOf(len), 1e-9);
  const range = (pick: (j: number) => boolean) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < len.length; i++) {
      if (len[i] < 0.5 * maxLen) continue;
      for (let j = 0; j < J; j++) {
        if (!pick(j)) continue;
        lo = Math.min(lo, c[i * J + j]);
        hi = Math.max(hi, c[i * J + j]);
      }
    }
    return { lo, hi };
  };
  const p = range((j) => j === prediction);
  const o = range((j) => j !== prediction);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const even = 1 / J;
  const spread = Math.max(Math.abs(p.lo - even), Math.abs(p.hi - even), Math.abs(o.lo - even), Math.abs(o.hi - even));
  const at = it === 0 ? `At iteration 1 (before any agreement), ` : `After ${it + 1} of ${iterations} iterations, `;
  let s = `${at}the ${coefficient}s of the longer primary capsules to ${className(prediction)}, the prediction, lie between ${pct(p.lo)} and ${pct(p.hi)}; to the others between ${pct(o.lo)} and ${pct(o.hi)}. An even split is ${pct(even)}.`;
  if (it > 0 && spread < 0.05) s += ' Routing changes them by little in this model, so the colours show their difference from an even split, which is small.';
  return s;
}

function updateIterationLabel(): void {
  const r = primaryRouting()?.iterations ?? 1;
  $('iter-value').textContent = `${state.iteration + 1} of ${r}`;
  $<HTMLButtonElement>('iter-prev').disabled = state.iteration <= 0;
  $<HTMLButtonElement>('iter-next').disabled = state.iteration >= r - 1;
}

function renderRouting(): void {
  const a = state.analysis;
  const routing = primaryRouting();
  if (!a || !routing || !a.routing || !a.primaryCapsules) return;
  updateIterationLabel();
  const J = classCount();
  const coefficients = a.routing.coefficients;
  const c = coefficients[state.iteration];
  const len = a.routing.senderWeights;
  const l = primaryLayout(2)!;
  const totalLen = len.reduce((s, x) => s + x, 0) || 1;
  const even = 1 / J;
  const maxLen = Math.max(maxOf(len), 1e-9);
  const weight = (i: number) => (state.weightByLength ? len[i] / maxLen : 1);
  // One scale for all iterations, so that stepping shows the change; a few
  // strongly routed capsules would wash out the rest, so the top 2% saturate.
  $('routing-summary').textContent = routingSummary(c, len, J, a.prediction, state.iteration, coefficients.length, routing.coefficient);
  let scale = 1e-6;
  if (state.routingMode === 'delta') {
    const deltas: number[] = [];
    for (const cc of coefficients) for (let i = 0; i < len.length; i++) for (let j = 0; j < J; j++) deltas.push((cc[i * J + j] - even) * weight(i));
    scale = robustScale(deltas);
    $('routing-scale').textContent = `White: an even split (1/${J} = ${even.toFixed(3)}). Full red or blue: ${scale.toPrecision(2)} or more above or below that${state.weightByLength ? ', times the capsule length relative to the longest capsule' : ''}.`;
  } else {
    $('routing-scale').textContent = `Black: 0, bright yellow: 1 (square-root scale, so an even split of ${even.toFixed(2)} stays visible).`;
  }
  for (let j = 0; j < J; j++) {
    const canvas = $<HTMLCanvasElement>(`routing-${j}`);
    let share = 0;
    for (let i = 0; i < len.length; i++) share += c[i * J + j] * len[i];
    share /= totalLen;
    paintTiles(canvas, l, (t, y, x) => {
      const i = capsuleIndex({ type: t, y, x });
      return state.routingMode === 'delta' ? diverging(((c[i * J + j] - even) * weight(i)) / scale) : sequential(Math.sqrt(c[i * J + j] * weight(i)));
    });
    if (state.capsFocus) outlinePixel(canvas, l, state.capsFocus.type, state.capsFocus.y, state.capsFocus.x);
    const fig = canvas.parentElement!;
    fig.classList.toggle('predicted', j === a.prediction);
    fig.querySelector('figcaption')!.textContent = `${className(j)} · ${fmtPct(share)}`;
    canvas.setAttribute('aria-label', `${capitalize(routing.coefficient)}s to digit capsule ${className(j)} at iteration ${state.iteration + 1}: it receives ${fmtPct(share)} of the primary capsules' total length`);
  }
  const lw = primaryLayout(4)!;
  const winner = $<HTMLCanvasElement>('routing-winner');
  const ties: [number, number, number][] = [];
  paintTiles(
    winner,
    lw,
    (t, y, x) => {
      const i = capsuleIndex({ type: t, y, x });
      const top = topClasses(c.subarray(i * J, (i + 1) * J));
      // Short capsules fade towards white, the background: they barely count.
      const fade = weight(i);
      if (top.length > 1) {
        ties.push([t, y, x]);
        return [255, 255, 255];
      }
      const col: RGB = CLASS_COLORS[top[0] % CLASS_COLORS.length];
      return [255 - (255 - col[0]) * fade, 255 - (255 - col[1]) * fade, 255 - (255 - col[2]) * fade];
    },
    [255, 255, 255],
  );
  // A capsule that splits evenly (a tie) is white with a dark diagonal, unlike any class's colour.
  const wctx = winner.getContext('2d')!;
  wctx.strokeStyle = '#1d2330';
  wctx.lineWidth = 1;
  for (const [t, y, x] of ties) {
    const [ox, oy] = tileOrigin(lw, t);
    wctx.beginPath();
    wctx.moveTo(ox + x * lw.scale, oy + (y + 1) * lw.scale);
    wctx.lineTo(ox + (x + 1) * lw.scale, oy + y * lw.scale);
    wctx.stroke();
  }
  if (state.capsFocus) outlinePixel(winner, lw, state.capsFocus.type, state.capsFocus.y, state.capsFocus.x, '#000000');
  const bars = $('iter-bars');
  // Shown when the model says what each iteration's coefficients give.
  const lens = a.routing.scores?.[state.iteration];
  bars.hidden = $('iter-bars-title').hidden = !lens;
  if (!lens) {
    renderCapsuleInfo();
    return;
  }
  let top = 0;
  for (let j = 1; j < J; j++) if (lens[j] > lens[top]) top = j;
  bars.replaceChildren(
    ...Array.from(lens, (v, j) => {
      const d = document.createElement('div');
      d.style.height = `${Math.max(1, 100 * v)}%`;
      d.dataset.label = `${className(j)}\n${v.toFixed(2)}`;
      if (j === top) d.className = 'leading';
      return d;
    }),
  );
  bars.setAttribute('aria-label', `Digit capsule lengths after routing iteration ${state.iteration + 1}: ${Array.from(lens, (v, j) => `${className(j)} ${v.toFixed(2)}`).join(', ')}`);
  renderCapsuleInfo();
}

function setIteration(r: number, remember = true): void {
  const routing = primaryRouting();
  if (!routing) return;
  state.iteration = Math.min(routing.iterations - 1, Math.max(0, r));
  if (remember) setParams({ iter: state.iteration + 1 });
  renderRouting();
}

export function stopPlay(): void {
  if (state.playTimer) clearInterval(state.playTimer);
  state.playTimer = 0;
  $('iter-play').setAttribute('aria-pressed', 'false');
  $('iter-play').textContent = 'Play';
}

function setupRoutingInput(): void {
  const winner = $<HTMLCanvasElement>('routing-winner');
  onPoint(winner, (e) => {
    const l = primaryLayout(4);
    const hit = l && tileAt(winner, l, e);
    if (hit && (hit.tile !== state.capsFocus?.type || hit.y !== state.capsFocus.y || hit.x !== state.capsFocus.x)) focusCapsule({ type: hit.tile, y: hit.y, x: hit.x });
  });
  $('iter-prev').addEventListener('click', () => {
    stopPlay();
    setIteration(state.iteration - 1);
  });
  $('iter-next').addEventListener('click', () => {
    stopPlay();
    setIteration(state.iteration + 1);
  });
  $('iter-play').addEventListener('click', () => {
    if (state.playTimer) {
      stopPlay();
      return;
    }
    if (!primaryRouting()) return;
    $('iter-play').setAttribute('aria-pressed', 'true');
    $('iter-play').textContent = 'Pause';
    setIteration(0);
    state.playTimer = window.setInterval(() => setIteration((state.iteration + 1) % (primaryRouting()?.iterations ?? 1), false), 1000);
  });
  $<HTMLSelectElement>('iter-mode').addEventListener('change', (e) => {
    state.routingMode = (e.target as HTMLSelectElement).value === 'value' ? 'value' : 'delta';
    setParams({ colour: state.routingMode === 'value' ? 'value' : null });
    renderRouting();
  });
  $<HTMLInputElement>('iter-weight').addEventListener('change', (e) => {
    state.weightByLength = (e.target as HTMLInputElement).checked;
    setParams({ weight: state.weightByLength ? null : 0 });
    renderRouting();
  });
}

/** The address's routing choices: iter=N (1-based), colour=value, weight=0. */
function readRoutingParams(): void {
  state.routingMode = param('colour') === 'value' ? 'value' : 'delta';
  state.weightByLength = param('weight') !== '0';
  $<HTMLSelectElement>('iter-mode').value = state.routingMode;
  $<HTMLInputElement>('iter-weight').checked = state.weightByLength;
}

export const routingView: View = {
  init() {
    setupRoutingInput();
    readRoutingParams();
  },
  setup() {
    const routing = primaryRouting();
    $('view-routing').hidden = !routing;
    const iter = Number(param('iter'));
    state.iteration = routing ? (Number.isInteger(iter) && iter >= 1 ? Math.min(iter, routing.iterations) - 1 : routing.iterations - 1) : 0;
    if (!routing) return;
    $('h-routing').textContent = routing.title;
    $('routing-explain').textContent = `${routing.about} ${ROUTING_DISPLAY.replace('COEFFICIENT', routing.coefficient)}`;
    $('iter-mode-value').textContent = routing.coefficient;
    showReference('routing-ref', routing.reference);
    buildRoutingMaps();
    updateIterationLabel();
  },
  render: renderRouting,
};
