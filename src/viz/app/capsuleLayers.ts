/**
 * Views of capsule layers whose capsules carry an activation (the matrix
 * capsules of the EM capsule network): the class capsules' pose matrices,
 * the routing from the last capsule layer's grid to the class capsules at
 * each iteration, and the activations of each capsule layer. Each part shows
 * when the model's inspection layout has it (pose class capsules, routing
 * whose senders are a capsule grid, capsule layers); the section shows when
 * any does.
 */
import type { CapsuleGrid, RoutingPart } from '../../index.js';
import { absMax, diverging, maxOf, paintTiles, robustScale, sequential, tileLayout } from './draw.js';
import { $, capitalize, el, fmtPct } from './dom.js';
import { referenceBlock, showReference } from './reference.js';
import type { Analysis, Engine } from './engine.js';
import { state, type View } from './state.js';

let engine: Engine | null = null;
/** The iteration shown; -1 follows the last. */
let iteration = -1;
let weightByActivation = true;

/** The routing this section shows: the one whose senders are a capsule grid, not the primary capsules. */
function gridRouting(): (RoutingPart & { senders: CapsuleGrid }) | null {
  const r = state.layout?.routing;
  return r && r.senders !== 'primary capsules' ? (r as RoutingPart & { senders: CapsuleGrid }) : null;
}

function setup(e: Engine): void {
  const { capsuleLayers, classCapsules, title } = e.layout;
  const routing = gridRouting();
  const poses = classCapsules?.form === 'pose' ? classCapsules : null;
  const section = $('view-em');
  section.hidden = !capsuleLayers && !poses && !routing;
  engine = section.hidden ? null : e;
  iteration = -1;
  if (section.hidden) return;
  $('h-em').textContent = capsuleLayers?.title ?? title;
  $('em-explain').textContent = capsuleLayers?.about ?? '';
  showReference('em-ref', capsuleLayers?.reference);
  const parts: HTMLElement[] = [];
  if (poses) {
    parts.push(
      el('h3', { textContent: 'Class capsule poses' }),
      el('p', {
        className: 'explain',
        textContent: `The ${poses.size}×${poses.size} pose matrix of each class capsule (blue negative, red positive). ${poses.about} The most active class is outlined.`,
      }),
      el('div', { className: 'pose-grid', id: 'em-poses' }),
      ...[referenceBlock(poses.reference)].filter((b) => b !== null),
    );
  }
  if (routing) {
    const iterations = routing.iterations;
    const prev = el('button', { type: 'button', id: 'em-iter-prev', textContent: '◀' });
    prev.setAttribute('aria-label', 'Previous routing iteration');
    const next = el('button', { type: 'button', id: 'em-iter-next', textContent: '▶' });
    next.setAttribute('aria-label', 'Next routing iteration');
    const value = el('output', { id: 'em-iter-value', textContent: `${iterations} of ${iterations}` });
    value.setAttribute('aria-live', 'polite');
    const weight = el('input', { type: 'checkbox', id: 'em-weight', checked: weightByActivation });
    const stepper = el(
      'div',
      { className: 'stepper' },
      el('span', { className: 'label', id: 'em-iter-label', textContent: 'Routing iteration' }),
      prev,
      value,
      next,
      el('label', { className: 'check' }, weight, ' Weight by capsule activation'),
    );
    stepper.setAttribute('role', 'group');
    stepper.setAttribute('aria-labelledby', 'em-iter-label');
    parts.push(
      el('h3', { textContent: routing.title }),
      el('p', {
        className: 'explain',
        textContent: `Each map is one class capsule over the grid of the last convolutional capsule layer (one square per capsule type). ${routing.about} Red means more than an even share, blue less. The percentage is the share of all capsule activation assigned to that class.`,
      }),
      stepper,
      el('p', { className: 'summary', id: 'em-routing-summary' }),
      el('p', { className: 'meta', id: 'em-routing-scale' }),
      el('div', { className: 'routing-maps', id: 'em-routing-maps' }),
      ...[referenceBlock(routing.reference)].filter((b) => b !== null),
    );
    prev.addEventListener('click', () => step(-1));
    next.addEventListener('click', () => step(1));
    weight.addEventListener('change', () => {
      weightByActivation = weight.checked;
      renderRouting();
    });
  }
  if (capsuleLayers) {
    parts.push(
      el('h3', { textContent: 'Capsule activations, layer by layer' }),
      el('p', {
        className: 'explain',
        textContent: 'The activation of every capsule in each layer: one square per capsule type, one pixel per position; bright capsules found their part.',
      }),
      el('div', { className: 'em-grid', id: 'em-layers' }),
    );
  }
  $('em-content').replaceChildren(...parts);
}

function shownIteration(): number {
  const n = state.analysis?.routing?.coefficients.length ?? 1;
  return iteration < 0 || iteration >= n ? n - 1 : iteration;
}

function step(d: number): void {
  const n = state.analysis?.routing?.coefficients.length;
  if (!n) return;
  iteration = Math.min(n - 1, Math.max(0, shownIteration() + d));
  renderRouting();
}

/** The routing iteration this section shows, or null when it shows no routing (for the page's API). */
export function capsuleLayersIteration(): number | null {
  return engine && gridRouting() ? shownIteration() : null;
}

function renderPoses(a: Analysis): void {
  const caps = engine?.layout.classCapsules;
  if (!engine || caps?.form !== 'pose' || !a.classCapsules) return;
  const poses = a.classCapsules;
  const size = caps.size;
  const per = size * size;
  const J = engine.numClasses;
  const m = absMax(poses) || 1;
  $('em-poses').replaceChildren(
    ...Array.from({ length: J }, (_, j) => {
      const table = el('table', { className: 'pose' });
      const name = engine!.classNames[j];
      table.append(el('caption', { textContent: `${name} · ${a.scores[j].toFixed(2)}` }));
      for (let r = 0; r < size; r++) {
        const tr = el('tr');
        for (let c = 0; c < size; c++) {
          const v = poses[j * per + r * size + c];
          const [R, G, B] = diverging(v / m);
          const text = v.toFixed(2);
          const td = el('td', { textContent: text === '-0.00' ? '0.00' : text });
          td.style.background = `rgb(${Math.round(R)},${Math.round(G)},${Math.round(B)})`;
          tr.append(td);
        }
        table.append(tr);
      }
      if (j === a.prediction) table.classList.add('predicted');
      table.setAttribute('aria-label', `Pose matrix of class capsule ${name}, ${engine!.layout.scores.name} ${a.scores[j].toFixed(3)}${j === a.prediction ? ', the prediction' : ''}`);
      return table;
    }),
  );
}

function renderRouting(): void {
  const a = state.analysis;
  const routing = gridRouting();
  if (!a?.routing || !routing || !engine) return;
  const J = engine.numClasses;
  const coefficients = a.routing.coefficients;
  const n = coefficients.length;
  const it = shownIteration();
  $('em-iter-value').textContent = `${it + 1} of ${n}`;
  $<HTMLButtonElement>('em-iter-prev').disabled = it <= 0;
  $<HTMLButtonElement>('em-iter-next').disabled = it >= n - 1;
  const R = coefficients[it];
  const { h, w, types } = routing.senders;
  const senders = h * w * types;
  const act = a.routing.senderWeights;
  const maxAct = Math.max(maxOf(act), 1e-9);
  const weight = (i: number) => (weightByActivation ? act[i] / maxAct : 1);
  const even = 1 / J;
  const deltas: number[] = [];
  for (const r of coefficients) for (let i = 0; i < senders; i++) for (let j = 0; j < J; j++) deltas.push((r[i * J + j] - even) * weight(i));
  const scale = robustScale(deltas);
  $('em-routing-scale').textContent = `White: an even share (1/${J} = ${even.toFixed(3)}). Full red or blue: ${scale.toPrecision(2)} or more above or below that${weightByActivation ? ', times the capsule activation relative to the most active capsule' : ''}.`;
  const cols = types >= 16 ? 8 : types >= 4 ? 4 : types;
  const scaleUp = Math.max(1, Math.floor(12 / Math.max(h, w)));
  const layout = tileLayout(types, w, h, cols, 1, scaleUp);
  let total = 0;
  for (let i = 0; i < senders; i++) total += act[i];
  $('em-routing-summary').textContent = assignmentSummary(R, act, senders, J, a.prediction, it, n, routing.coefficient);
  const root = $('em-routing-maps');
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
    // Senders are ordered row, column, type.
    paintTiles(canvas, layout, (t, y, x) => {
      const i = (y * w + x) * types + t;
      return diverging(((R[i * J + j] - even) * weight(i)) / scale);
    });
    let share = 0;
    for (let i = 0; i < senders; i++) share += R[i * J + j] * act[i];
    share /= total || 1;
    const name = engine.classNames[j];
    fig.classList.toggle('predicted', j === a.prediction);
    fig.querySelector('figcaption')!.textContent = `${name} · ${fmtPct(share)}`;
    canvas.setAttribute('aria-label', `${capitalize(routing.coefficient)}s to class capsule ${name} at iteration ${it + 1}: ${fmtPct(share)} of the capsule activation`);
  }
}

/**
 * In words, where the assignments of iteration `it` go: the prediction's
 * share of the capsule activation and the class with the most. A model may
 * classify by what its classes are left with rather than what they gather
 * (the shipped EM model gives its prediction almost nothing at the last
 * iteration: docs/em-capsules-mnist.md); the sentence says which it is.
 */
function assignmentSummary(R: Float32Array, act: Float32Array, senders: number, J: number, prediction: number, it: number, iterations: number, coefficient: string): string {
  const shares = new Float64Array(J);
  let total = 0;
  for (let i = 0; i < senders; i++) {
    total += act[i];
    for (let j = 0; j < J; j++) shares[j] += R[i * J + j] * act[i];
  }
  for (let j = 0; j < J; j++) shares[j] /= total || 1;
  let most = 0;
  for (let j = 1; j < J; j++) if (shares[j] > shares[most]) most = j;
  const name = (j: number) => engine!.classNames[j];
  const at = `At iteration ${it + 1} of ${iterations}`;
  let s = `${at}, ${name(prediction)}, the prediction, receives ${fmtPct(shares[prediction])} of the capsule activation through its ${coefficient}s (an even share is ${fmtPct(1 / J)}); ${most === prediction ? 'that is the most of any class.' : `${name(most)} receives the most, ${fmtPct(shares[most])}.`}`;
  if (shares[prediction] < 1 / J) s += ' So this model does not predict the class the capsules agree on: its prediction gathers less than an even share, and its activation comes from what routing leaves it, not from the votes it gets.';
  return s;
}

function renderLayers(a: Analysis): void {
  if (!engine?.layout.capsuleLayers) return;
  $('em-layers').replaceChildren(
    ...a.capsuleLayers.map((l) => {
      const cols = l.types >= 16 ? 8 : l.types >= 4 ? 4 : l.types;
      const canvas = el('canvas', { className: 'pixel' });
      paintTiles(canvas, tileLayout(l.types, l.w, l.h, cols, 1, Math.max(1, Math.floor(12 / Math.max(l.h, l.w)))), (t, y, x) => sequential(l.data[(y * l.w + x) * l.types + t]));
      canvas.setAttribute('role', 'img');
      canvas.setAttribute('aria-label', `Activations of ${l.name}: ${l.types} capsule types on a ${l.h} by ${l.w} grid`);
      return el('figure', {}, canvas, el('figcaption', { textContent: `${l.name}: ${l.types} types on ${l.h}×${l.w}` }));
    }),
  );
}

export const capsuleLayersView: View = {
  setup,
  render() {
    const a = state.analysis;
    if (!a || !engine) return;
    renderPoses(a);
    renderRouting();
    renderLayers(a);
  },
};
