/**
 * CapsNet's primary capsules: one tile per capsule type, brightness the
 * capsule's length, and the vector and routing of the capsule in focus.
 */
import { absMax, outlinePixel, paintTiles, sequential, tileAt, tileLayout, type TileLayout } from './draw.js';
import { $, fmtPct } from './dom.js';
import { className, focusCapsule, state, type CapsuleRef, type View } from './state.js';


export function primaryLayout(scale = 4): TileLayout | null {
  if (!state.geo) return null;
  const t = state.geo.primary.types;
  const cols = t >= 16 ? 8 : t >= 4 ? 4 : t;
  return tileLayout(t, state.geo.primary.w, state.geo.primary.h, cols, scale >= 4 ? 3 : 2, scale);
}

export function capsuleIndex(c: CapsuleRef): number {
  return (c.y * state.geo!.primary.w + c.x) * state.geo!.primary.types + c.type;
}

function renderPrimary(): void {
  const a = state.analysis;
  const l = primaryLayout();
  if (!a || a.kind !== 'capsnet' || !l || !state.geo) return;
  const canvas = $<HTMLCanvasElement>('primary-maps');
  paintTiles(canvas, l, (t, y, x) => sequential(a.primaryLengths[capsuleIndex({ type: t, y, x })]));
  if (state.capsFocus) outlinePixel(canvas, l, state.capsFocus.type, state.capsFocus.y, state.capsFocus.x);
  renderCapsuleInfo();
}

export function renderCapsuleInfo(): void {
  const a = state.analysis;
  const root = $('capsule-info');
  if (!a || a.kind !== 'capsnet' || !state.geo) return;
  if (!state.capsFocus) {
    root.textContent = 'Hover over a capsule, or focus the map and use the arrow keys, to see its vector and where it sends its output.';
    return;
  }
  const i = capsuleIndex(state.capsFocus);
  const d = state.geo.primary.dim;
  const v = a.primary.subarray(i * d, (i + 1) * d);
  const J = state.geo.classes;
  const c = a.couplings[state.iteration].subarray(i * J, (i + 1) * J);
  let top = 0;
  for (let j = 1; j < J; j++) if (c[j] > c[top]) top = j;
  const vec = document.createElement('div');
  vec.className = 'vec';
  vec.setAttribute('aria-hidden', 'true');
  const m = Math.max(absMax(v), 1e-6);
  for (const x of v) {
    // Red up for positive, blue down for negative, from the middle line.
    const s = document.createElement('span');
    const bar = document.createElement('i');
    const h = Math.max(1, (Math.abs(x) / m) * 31);
    bar.style.height = `${h}px`;
    if (x < 0) {
      s.className = 'neg';
      bar.style.top = '32px';
    } else bar.style.bottom = '32px';
    s.append(bar);
    vec.append(s);
  }
  const text = document.createElement('div');
  const title = document.createElement('div');
  title.innerHTML = '';
  title.textContent = `Capsule type ${state.capsFocus.type + 1}, row ${state.capsFocus.y + 1}, column ${state.capsFocus.x + 1} (number ${i + 1} of ${a.primaryLengths.length}): length ${a.primaryLengths[i].toFixed(3)}.`;
  const route = document.createElement('div');
  route.textContent = `At routing iteration ${state.iteration + 1} it sends ${fmtPct(c[top])} of its output to digit capsule ${className(top)}.`;
  const nums = document.createElement('div');
  nums.className = 'numbers';
  nums.textContent = `[${Array.from(v, (x) => x.toFixed(3)).join(', ')}]`;
  text.append(title, route, nums);
  root.replaceChildren(vec, text);
}

function setupPrimaryInput(): void {
  const canvas = $<HTMLCanvasElement>('primary-maps');
  canvas.addEventListener('pointermove', (e) => {
    const l = primaryLayout();
    const hit = l && tileAt(canvas, l, e);
    if (hit && (hit.tile !== state.capsFocus?.type || hit.y !== state.capsFocus.y || hit.x !== state.capsFocus.x)) focusCapsule({ type: hit.tile, y: hit.y, x: hit.x });
  });
  canvas.addEventListener('keydown', (e) => {
    if (!state.geo) return;
    const { types, h, w } = state.geo.primary;
    const c = state.capsFocus ?? { type: 0, y: 0, x: 0 };
    let { type, y, x } = c;
    if (!state.capsFocus && e.key.startsWith('Arrow')) {
      e.preventDefault();
      focusCapsule(c);
      return;
    }
    switch (e.key) {
      case 'ArrowLeft': x--; break;
      case 'ArrowRight': x++; break;
      case 'ArrowUp': y--; break;
      case 'ArrowDown': y++; break;
      case 'PageDown': type++; break;
      case 'PageUp': type--; break;
      default: return;
    }
    e.preventDefault();
    if (x < 0) { x = w - 1; type--; }
    if (x >= w) { x = 0; type++; }
    if (y < 0) y = 0;
    if (y >= h) y = h - 1;
    type = (type + types) % types;
    focusCapsule({ type, y, x });
  });
  canvas.addEventListener('focus', () => {
    if (!state.capsFocus && state.analysis) focusCapsule(strongestCapsule());
  });
}

function strongestCapsule(): CapsuleRef | null {
  const a = state.analysis;
  if (!a || a.kind !== 'capsnet' || !state.geo) return null;
  let best = 0;
  for (let i = 1; i < a.primaryLengths.length; i++) if (a.primaryLengths[i] > a.primaryLengths[best]) best = i;
  const T = state.geo.primary.types;
  const pos = Math.floor(best / T);
  return { type: best % T, y: Math.floor(pos / state.geo.primary.w), x: pos % state.geo.primary.w };
}

export const primaryView: View = {
  init: setupPrimaryInput,
  setup(engine) {
    $('view-primary').hidden = engine.kind !== 'capsnet';
    state.capsFocus = null;
    if (!state.geo) return;
    const { h, w, types, dim } = state.geo.primary;
    $('primary-explain').textContent = `A second convolution's outputs are cut into small vectors, the primary capsules, and squashed so that each vector's length lies between 0 and 1. Each of the ${types} squares below is one capsule type on the ${h}×${w} grid of positions (${h * w * types} capsules); brightness is the capsule's length, the confidence that its part of a digit is there. The direction of the vector (its ${dim} numbers) describes how that part looks. Hover or use the arrow keys (Page Up and Down change the type) to read a capsule.`;
  },
  render: renderPrimary,
};
