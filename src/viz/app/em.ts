/**
 * Views for matrix-capsule models (EM routing). Filled in from what the EM
 * model's traced forward pass exposes.
 */
import type { Engine, PlainAnalysis } from './engine.js';

export interface EmViewState {
  iteration: number;
}

export function renderEm(root: HTMLElement, _engine: Engine, a: PlainAnalysis, _state: EmViewState): void {
  root.textContent = `Traced outputs: ${Object.keys(a.extra).join(', ') || 'none'}.`;
}
