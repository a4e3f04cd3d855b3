/**
 * The class scores: one bar per class (capsule length, class-capsule
 * activation or probability) and the prediction. Choosing a bar sends that
 * class's capsule to the decoder views.
 */
import { $ } from './dom.js';
import type { Engine } from './engine.js';
import { showSelectedCapsule } from './reconstruction.js';
import { showReference } from './reference.js';
import { className, PRESENT, reportedClasses, state, type View } from './state.js';
import { setParams } from './url.js';


function buildDigitBars(): void {
  const root = $('digit-bars');
  root.replaceChildren();
  const n = state.engine?.numClasses ?? 10;
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
  const layout = state.layout;
  if (!a || !layout) return;
  const root = $('digit-bars');
  const what = layout.scores.name;
  const reported = reportedClasses(a);
  [...root.children].forEach((el, j) => {
    const b = el as HTMLButtonElement;
    const v = a.scores[j];
    (b.querySelector('.bar') as HTMLElement).style.height = `${Math.max(0.5, 100 * Math.min(1, v)) * 0.8}%`;
    (b.querySelector('.val') as HTMLElement).textContent = v.toFixed(2);
    b.classList.toggle('predicted', reported.includes(j));
    b.setAttribute('aria-checked', String(j === state.selected));
    b.tabIndex = j === state.selected ? 0 : -1;
    b.setAttribute('aria-label', `${className(j)}: ${what} ${v.toFixed(3)}${reported.includes(j) ? ', predicted' : ''}`);
  });
  const top = a.prediction;
  if (!reported.length) {
    $('prediction').textContent = 'nothing detected';
    $('prediction-conf').textContent = `(the highest ${what}, ${className(top)}'s, is ${a.scores[top].toFixed(3)}; a class counts as present above ${PRESENT})`;
  } else {
    $('prediction').textContent = reported.map(className).join(' and ');
    $('prediction-conf').textContent = `(${what} ${reported.map((j) => a.scores[j].toFixed(3)).join(' and ')})`;
  }
}

/** Choosing a class sends its capsule to the decoder views; only capsule vectors can be chosen. */
function selectClass(j: number): void {
  if (!state.analysis || state.layout?.classCapsules?.form !== 'vector') return;
  state.selected = j;
  state.chosenClass = j;
  setParams({ capsule: j });
  renderDigits();
  showSelectedCapsule();
}

/** What the card says: the model's words on its scores, and what the page lets you do with them. */
function explanation(engine: Engine): string {
  const { scores, classCapsules, primaryCapsules, capsuleLayers, routing } = engine.layout;
  if (engine.hasDecoder && classCapsules?.form === 'vector') return `${scores.about} Choose a bar to reconstruct from that capsule and move its sliders.`;
  if (!classCapsules && !primaryCapsules && !capsuleLayers && !routing) return `${scores.about} The views of capsules, routing and reconstruction do not apply to it.`;
  return scores.about;
}

export const digitsView: View = {
  setup(engine) {
    $('h-digits').textContent = engine.layout.scores.title;
    $('digits-explain').textContent = explanation(engine);
    showReference('digits-ref', engine.layout.scores.reference);
    buildDigitBars();
  },
  render: renderDigits,
};
