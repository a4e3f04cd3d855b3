/**
 * The primary capsules (vectors): one tile per capsule type, brightness the
 * capsule's length, and the vector and routing of the capsule in focus.
 */
import type { RoutingPart } from '../../index.js';
import { absMax, outlinePixel, paintTiles, sequential, tileAt, tileLayout, type TileLayout } from './draw.js';
import { $, fmtPct, onPoint, pointWord } from './dom.js';
import { showReference } from './reference.js';
import { className, focusCapsule, state, type CapsuleRef, type View } from './state.js';

/** The primary capsules' grid, when the model has vector primary capsules. */
export function primaryGrid(): { h: number; w: number; types: number; dim: number } | null {
  return state.layout?.primaryCapsules ?? null;
}

/** The routing from the primary capsules to the class capsules, when the model routes from them. */
export function primaryRouting(): RoutingPart | null {
  const r = state.layout?.routing;
  return r && r.senders === 'primary capsules' && primaryGrid() ? r : null;
}

/** Coefficients this close to each other count as a tie (an even split stays one through float32 rounding). */
const TIE = 1e-4;

/** The classes a sender's coefficients `c` (one per class) favour: the largest, with every class within TIE of it. */
export function topClasses(c: ArrayLike<number>): number[] {
  let best = 0;
  for (let j = 1; j < c.length; j++) if (c[j] > c[best]) best = j;
  const top: number[] = [];
  for (let j = 0; j < c.length; j++) if (c[best] - c[j] < TIE) top.push(j);
  return top;
}

export function primaryLayout(scale = 4): TileLayout | null {
  const g = primaryGrid();
  if (!g) return null;
  const t = g.types;
  const cols = t >= 16 ? 8 : t >= 4 ? 4 : t;
  return tileLayout(t, g.w, g.h, cols, scale >= 4 ? 3 : 2, scale);
}

export function capsuleIndex(c: CapsuleRef): number {
  const g = primaryGrid()!;
  return (c.y * g.w + c.x) * g.types + c.type;
}

/**
 * The range the maps' colours span: the lengths' own, from the shortest to
 * the longest capsule of this input. Most capsules of a trained CapsNet are
 * long (0.9 and more), and on a fixed 0-to-1 scale every map would be pale
 * all over, background included.
 */
function lengthRange(lengths: Float32Array): { lo: number; hi: number } {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of lengths) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  // An input whose capsules are all equally long (a blank image) gets a range anyway.
  return hi - lo < 1e-6 ? { lo: Math.max(0, hi - 0.5), hi: Math.max(hi, 1e-6) } : { lo, hi };
}

function renderScale(lo: number, hi: number): void {
  const bar = $<HTMLCanvasElement>('primary-scale');
  paintTiles(bar, tileLayout(1, 128, 1, 1, 0, 1), (_t, _y, x) => sequential(x / 127));
  $('primary-scale-lo').textContent = lo.toFixed(3);
  $('primary-scale-hi').textContent = hi.toFixed(3);
  $('primary-scale-note').textContent = `Colour: capsule length, from the shortest capsule of this input (${lo.toFixed(3)}, dark) to the longest (${hi.toFixed(3)}, bright).`;
}

function renderPrimary(): void {
  const p = state.analysis?.primaryCapsules;
  const l = primaryLayout();
  if (!p || !l) return;
  const canvas = $<HTMLCanvasElement>('primary-maps');
  const { lo, hi } = lengthRange(p.lengths);
  renderScale(lo, hi);
  paintTiles(canvas, l, (t, y, x) => sequential((p.lengths[capsuleIndex({ type: t, y, x })] - lo) / (hi - lo)));
  if (state.capsFocus) outlinePixel(canvas, l, state.capsFocus.type, state.capsFocus.y, state.capsFocus.x);
  renderCapsuleInfo();
}

export function renderCapsuleInfo(): void {
  const a = state.analysis;
  const p = a?.primaryCapsules;
  const g = primaryGrid();
  const root = $('capsule-info');
  if (!a || !p || !g || !state.layout) return;
  if (!state.capsFocus) {
    root.textContent = `${pointWord()} a capsule, or focus the map and use the arrow keys, to see its vector and where it sends its output.`;
    return;
  }
  const i = capsuleIndex(state.capsFocus);
  const d = g.dim;
  const v = p.vectors.subarray(i * d, (i + 1) * d);
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
  title.textContent = `Capsule type ${state.capsFocus.type + 1}, row ${state.capsFocus.y + 1}, column ${state.capsFocus.x + 1} (number ${i + 1} of ${p.lengths.length}): length ${p.lengths[i].toFixed(3)}.`;
  text.append(title);
  const routing = primaryRouting();
  if (routing && a.routing) {
    // Where the capsule sends most at the routing iteration shown; a tie is said as one.
    const J = a.scores.length;
    const c = a.routing.coefficients[state.iteration].subarray(i * J, (i + 1) * J);
    const top = topClasses(c);
    const route = document.createElement('div');
    const at = `At routing iteration ${state.iteration + 1}`;
    route.textContent =
      top.length === J
        ? `${at} it splits its output evenly among all ${J} class capsules (${fmtPct(c[0])} each).`
        : top.length > 1
          ? `${at} it sends most, ${fmtPct(c[top[0]])} each, to the class capsules ${top.map(className).join(', ')} (a tie).`
          : `${at} it sends the most, ${fmtPct(c[top[0]])} of its output, to the class capsule ${className(top[0])}.`;
    text.append(route);
  }
  const nums = document.createElement('div');
  nums.className = 'numbers';
  nums.textContent = `[${Array.from(v, (x) => x.toFixed(3)).join(', ')}]`;
  text.append(nums);
  root.replaceChildren(vec, text);
}

function setupPrimaryInput(): void {
  const canvas = $<HTMLCanvasElement>('primary-maps');
  onPoint(canvas, (e) => {
    const l = primaryLayout();
    const hit = l && tileAt(canvas, l, e);
    if (hit && (hit.tile !== state.capsFocus?.type || hit.y !== state.capsFocus.y || hit.x !== state.capsFocus.x)) focusCapsule({ type: hit.tile, y: hit.y, x: hit.x });
  });
  canvas.addEventListener('keydown', (e) => {
    const g = primaryGrid();
    if (!g) return;
    const { types, h, w } = g;
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
  const lengths = state.analysis?.primaryCapsules?.lengths;
  const g = primaryGrid();
  if (!lengths || !g) return null;
  let best = 0;
  for (let i = 1; i < lengths.length; i++) if (lengths[i] > lengths[best]) best = i;
  const T = g.types;
  const pos = Math.floor(best / T);
  return { type: best % T, y: Math.floor(pos / g.w), x: pos % g.w };
}

export const primaryView: View = {
  init: setupPrimaryInput,
  setup(engine) {
    const p = engine.layout.primaryCapsules;
    $('view-primary').hidden = !p;
    state.capsFocus = null;
    if (!p) return;
    const { h, w, types, dim } = p;
    showReference('primary-ref', p.reference);
    $('primary-explain').textContent = `${p.about} Each of the ${types} squares below is one capsule type on the ${h}×${w} grid of positions (${h * w * types} capsules); brightness is the capsule's length, the confidence that its part of a digit is there. The direction of the vector (its ${dim} numbers) describes how that part looks. ${pointWord()} a capsule, or use the arrow keys (Page Up and Down change the type), to read it.`;
  },
  render: renderPrimary,
};
