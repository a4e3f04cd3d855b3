/**
 * The class scores: one bar per class (capsule length, class-capsule
 * activation or probability) and the prediction. Choosing a bar sends that
 * class's capsule to the decoder views.
 */
import { $ } from './dom.js';
import type { Engine } from './engine.js';
import { showSelectedCapsule } from './reconstruction.js';
import { className, state, type View } from './state.js';


/** The class-score card of each kind of model: what its scores are. */
const SCORE_CARD: Record<Engine['kind'], { title: string; text: string }> = {
  capsnet: {
    title: 'Class capsules',
    text: "One DIM-dimensional capsule per class (the paper's DigitCaps). Its length is the network's confidence that the class is present; the longest is the prediction. Choose a bar to reconstruct from that capsule and move its sliders.",
  },
  em: {
    title: 'Class capsule activations',
    text: "One matrix capsule per class: a 4×4 pose matrix and an activation between 0 and 1. The most active class capsule is the prediction.",
  },
  plain: {
    title: 'Class scores',
    text: 'This model has no capsules (for example the CNN baseline): it outputs one probability per class, and the views of capsules, routing and reconstruction do not apply to it.',
  },
};

function buildDigitBars(): void {
  const root = $('digit-bars');
  root.replaceChildren();
  const n = state.engine?.model.numClasses ?? 10;
  // Word-sized class names (Fashion-MNIST's) get a smaller, wrapping label.
  root.classList.toggle('long-names', Array.from({ length: n }, (_, j) => className(j)).some((name) => name.length > 3));
  for (let j = 0; j < n; j++) {
    const b = document.createElement('button');
    b.type = 'button';
    b.setAttribute('role', 'radio');
    b.dataset.cls = String(j);
    b.innerHTML = '<span class="val"></span><span class="bar"></span><span class="lbl"></span>';
    (b.querySelector('.lbl') as HTMLElement).textContent = className(j);
    b.title = className(j);
    b.addEventListener('click', () => selectClass(j));
    b.addEventListener('keydown', (e) => {
      const d = e.key === 'ArrowRight' || e.key === 'ArrowDown' ? 1 : e.key === 'ArrowLeft' || e.key === 'ArrowUp' ? -1 : 0;
      if (!d) return;
      e.preventDefault();
      const k = (j + d + n) % n;
      selectClass(k);
      (root.children[k] as HTMLElement).focus();
    });
    root.append(b);
  }
}

function renderDigits(): void {
  const a = state.analysis;
  if (!a) return;
  const root = $('digit-bars');
  const isCaps = a.kind === 'capsnet' || a.kind === 'em';
  const what = a.kind === 'capsnet' ? 'length' : isCaps ? 'activation' : 'probability';
  [...root.children].forEach((el, j) => {
    const b = el as HTMLButtonElement;
    const v = a.scores[j];
    (b.querySelector('.bar') as HTMLElement).style.height = `${Math.max(0.5, 100 * Math.min(1, v)) * 0.8}%`;
    (b.querySelector('.val') as HTMLElement).textContent = v.toFixed(2);
    b.classList.toggle('predicted', j === a.prediction);
    b.setAttribute('aria-checked', String(j === state.selected));
    b.tabIndex = j === state.selected ? 0 : -1;
    b.setAttribute('aria-label', `${className(j)}: ${what} ${v.toFixed(3)}${j === a.prediction ? ', the prediction' : ''}`);
  });
  $('prediction').textContent = className(a.prediction);
  $('prediction-conf').textContent = `(${a.kind === 'capsnet' ? 'capsule length' : what} ${a.scores[a.prediction].toFixed(3)})`;
}

function selectClass(j: number): void {
  const a = state.analysis;
  if (!a || a.kind !== 'capsnet' || !state.geo) return;
  state.selected = j;
  renderDigits();
  showSelectedCapsule();
}

export const digitsView: View = {
  setup(engine) {
    const card = SCORE_CARD[engine.kind];
    $('h-digits').textContent = card.title;
    $('digits-explain').textContent = card.text.replace('DIM', String(state.geo?.dim ?? 16));
    buildDigitBars();
  },
  render: renderDigits,
};
