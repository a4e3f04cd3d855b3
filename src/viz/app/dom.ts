/**
 * DOM helpers every view of the page shares: looking up an element,
 * building one, and formatting numbers for labels.
 */

/** The element with this id; a missing one is a bug in the page. */
export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page is missing #${id}`);
  return el as T;
}

/** A new element with properties and children. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

/** Whether the page is used without hover (a phone or tablet): maps then select by tapping, and the captions say so. */
export function noHover(): boolean {
  return matchMedia('(hover: none)').matches;
}

/** How to pick a part of a map, for a caption: 'Tap' on touch screens, 'Hover over' elsewhere. */
export function pointWord(): string {
  return noHover() ? 'Tap' : 'Hover over';
}

/** Call `f` with the pointer's position when it hovers over `el` (mouse, pen) and when it presses or taps it (any pointer, fingers included). */
export function onPoint(el: HTMLElement, f: (e: PointerEvent) => void): void {
  el.addEventListener('pointermove', f);
  el.addEventListener('pointerdown', f);
}

/** `s` with its first letter in upper case, for a label that starts a sentence. */
export function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function fmtPct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

/** Two decimals, without a minus sign on zero. */
export function fix2(v: number): string {
  const s = v.toFixed(2);
  return s === '-0.00' ? '0.00' : s;
}
