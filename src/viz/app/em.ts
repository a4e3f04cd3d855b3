/**
 * Views for matrix capsules with EM routing (model type `em`): the
 * activations of each capsule layer, the class capsules' EM routing
 * assignments at each iteration, and the class capsules' 4x4 pose matrices.
 */
import { absMax, diverging, maxOf, paintTiles, robustScale, sequential, tileLayout } from './draw.js';
import { $, el, fmtPct } from './dom.js';
import type { EmAnalysis, Engine } from './engine.js';

let engine: Engine | null = null;
let last: EmAnalysis | null = null;
/** The iteration shown; -1 follows the last. */
let iteration = -1;
let weightByActivation = true;

export function setupEm(root: HTMLElement, e: Engine, _options: { onChange(): void }): void {
  engine = e;
  last = null;
  iteration = -1;
  const iterations = e.emIterations;
  $('em-explain').textContent =
    'A matrix capsule holds a 4×4 pose matrix (how its part is placed and turned) and an activation between 0 and 1 (whether the part is there). ' +
    'Each capsule votes for the pose of every capsule in the next layer by multiplying its pose with a learned matrix; EM routing then treats each higher capsule as a cluster of the votes it receives.';
  const prev = el('button', { type: 'button', id: 'em-iter-prev', textContent: '◀' });
  prev.setAttribute('aria-label', 'Previous EM iteration');
  const next = el('button', { type: 'button', id: 'em-iter-next', textContent: '▶' });
  next.setAttribute('aria-label', 'Next EM iteration');
  const value = el('output', { id: 'em-iter-value', textContent: `${iterations} of ${iterations}` });
  value.setAttribute('aria-live', 'polite');
  const weight = el('input', { type: 'checkbox', id: 'em-weight', checked: weightByActivation });
  const stepper = el(
    'div',
    { className: 'stepper' },
    el('span', { className: 'label', id: 'em-iter-label', textContent: 'EM iteration' }),
    prev,
    value,
    next,
    el('label', { className: 'check' }, weight, ' Weight by capsule activation'),
  );
  stepper.setAttribute('role', 'group');
  stepper.setAttribute('aria-labelledby', 'em-iter-label');
  root.replaceChildren(
    el('h3', { textContent: 'Class capsule poses' }),
    el('p', {
      className: 'explain',
      textContent:
        'The 4×4 pose matrix of each class capsule (blue negative, red positive). The pose says how the class is seen: its position, scale, slant. The last column carries the position of the votes (coordinate addition), so it moves when the digit moves. The most active class is outlined.',
    }),
    el('div', { className: 'pose-grid', id: 'em-poses' }),
    el('h3', { textContent: 'EM routing: assignments to the class capsules' }),
    el('p', {
      className: 'explain',
      textContent:
        'Each map is one class capsule over the grid of the last convolutional capsule layer (one square per capsule type). At iteration 1 every capsule splits its vote evenly among the classes. Each iteration then reassigns every capsule to the classes whose cluster its vote fits best (E-step) and refits the clusters (M-step): red means more than an even share, blue less. The percentage is the share of all capsule activation assigned to that class.',
    }),
    stepper,
    el('p', { className: 'meta', id: 'em-routing-scale' }),
    el('div', { className: 'routing-maps', id: 'em-routing-maps' }),
    el('h3', { textContent: 'Capsule activations, layer by layer' }),
    el('p', {
      className: 'explain',
      textContent: 'The activation of every capsule in each layer: one square per capsule type, one pixel per position; bright capsules found their part.',
    }),
    el('div', { className: 'em-grid', id: 'em-layers' }),
  );
  prev.addEventListener('click', () => step(-1));
  next.addEventListener('click', () => step(1));
  weight.addEventListener('change', () => {
    weightByActivation = weight.checked;
    renderRouting();
  });
}

function shownIteration(): number {
  const n = last?.routing.length ?? 1;
  return iteration < 0 || iteration >= n ? n - 1 : iteration;
}

function step(d: number): void {
  if (!last) return;
  iteration = Math.min(last.routing.length - 1, Math.max(0, shownIteration() + d));
  renderRouting();
}

export function renderEm(a: EmAnalysis): void {
  last = a;
  renderPoses();
  renderRouting();
  renderLayers();
}

/** The iteration shown, for tests and the page's API. */
export function emIteration(): number {
  return shownIteration();
}

function renderPoses(): void {
  const a = last;
  const root = $('em-poses');
  if (!a || !root || !engine) return;
  const J = engine.model.numClasses;
  const m = absMax(a.poses) || 1;
  root.replaceChildren(
    ...Array.from({ length: J }, (_, j) => {
      const table = el('table', { className: 'pose' });
      const name = engine!.classNames[j];
      table.append(el('caption', { textContent: `${name} · ${a.scores[j].toFixed(2)}` }));
      for (let r = 0; r < 4; r++) {
        const tr = el('tr');
        for (let c = 0; c < 4; c++) {
          const v = a.poses[j * 16 + r * 4 + c];
          const [R, G, B] = diverging(v / m);
          const text = v.toFixed(2);
          const td = el('td', { textContent: text === '-0.00' ? '0.00' : text });
          td.style.background = `rgb(${Math.round(R)},${Math.round(G)},${Math.round(B)})`;
          tr.append(td);
        }
        table.append(tr);
      }
      if (j === a.prediction) table.classList.add('predicted');
      table.setAttribute('aria-label', `Pose matrix of class capsule ${name}, activation ${a.scores[j].toFixed(3)}${j === a.prediction ? ', the prediction' : ''}`);
      return table;
    }),
  );
}

function renderRouting(): void {
  const a = last;
  const root = $('em-routing-maps');
  if (!a || !root || !engine) return;
  const J = engine.model.numClasses;
  const n = a.routing.length;
  const it = shownIteration();
  $('em-iter-value').textContent = `${it + 1} of ${n}`;
  $<HTMLButtonElement>('em-iter-prev').disabled = it <= 0;
  $<HTMLButtonElement>('em-iter-next').disabled = it >= n - 1;
  const R = a.routing[it];
  const { h, w, types } = a.childGrid;
  const children = h * w * types;
  const act = a.childActivations;
  const maxAct = act ? Math.max(maxOf(act), 1e-9) : 1;
  const weight = (i: number) => (weightByActivation && act ? act[i] / maxAct : 1);
  const even = 1 / J;
  const deltas: number[] = [];
  for (const r of a.routing) for (let i = 0; i < children; i++) for (let j = 0; j < J; j++) deltas.push((r[i * J + j] - even) * weight(i));
  const scale = robustScale(deltas);
  $('em-routing-scale').textContent = `White: an even share (1/${J} = ${even.toFixed(3)}). Full red or blue: ${scale.toPrecision(2)} or more above or below that${weightByActivation && act ? ', times the capsule activation relative to the most active capsule' : ''}.`;
  const cols = types >= 16 ? 8 : types >= 4 ? 4 : types;
  const scaleUp = Math.max(1, Math.floor(12 / Math.max(h, w)));
  const layout = tileLayout(types, w, h, cols, 1, scaleUp);
  let total = 0;
  for (let i = 0; i < children; i++) total += act ? act[i] : 1;
  if (root.children.length !== J) {
    root.replaceChildren(
      ...Array.from({ length: J }, (_, j) => {
        const canvas = el('canvas', { className: 'pixel', id: `em-routing-${j}` });
        canvas.setAttribute('role', 'img');
        return el('figure', {}, canvas, el('figcaption'));
      }),
    );
  }
  for (let j = 0; j < J; j++) {
    const fig = root.children[j] as HTMLElement;
    const canvas = fig.querySelector('canvas')!;
    // Children are ordered row, column, type.
    paintTiles(canvas, layout, (t, y, x) => {
      const i = (y * w + x) * types + t;
      return diverging(((R[i * J + j] - even) * weight(i)) / scale);
    });
    let share = 0;
    for (let i = 0; i < children; i++) share += R[i * J + j] * (act ? act[i] : 1);
    share /= total || 1;
    const name = engine.classNames[j];
    fig.classList.toggle('predicted', j === a.prediction);
    fig.querySelector('figcaption')!.textContent = `${name} · ${fmtPct(share)}`;
    canvas.setAttribute('aria-label', `EM assignments to class capsule ${name} at iteration ${it + 1}: ${fmtPct(share)} of the capsule activation`);
  }
}

function renderLayers(): void {
  const a = last;
  const root = $('em-layers');
  if (!a || !root) return;
  root.replaceChildren(
    ...a.layers.map((l) => {
      const cols = l.types >= 16 ? 8 : l.types >= 4 ? 4 : l.types;
      const canvas = el('canvas', { className: 'pixel' });
      paintTiles(canvas, tileLayout(l.types, l.w, l.h, cols, 1, Math.max(1, Math.floor(12 / Math.max(l.h, l.w)))), (t, y, x) => sequential(l.data[(y * l.w + x) * l.types + t]));
      canvas.setAttribute('role', 'img');
      canvas.setAttribute('aria-label', `Activations of ${l.name}: ${l.types} capsule types on a ${l.h} by ${l.w} grid`);
      return el('figure', {}, canvas, el('figcaption', { textContent: `${l.name}: ${l.types} types on ${l.h}×${l.w}` }));
    }),
  );
}
