/**
 * A view's formula and the paper section it illustrates, as the model's
 * inspection layout gives them (PartReference in models/inspection.ts): the
 * formulas set with real sub- and superscripts, and a link to the paper.
 */
import type { PartReference } from '../../models/inspection.js';
import { el } from './dom.js';

/** A script's text after `_` or `^`: `{...}`, or a run of letters and digits (and `|` for a subscript, `+` and `−` for a superscript). */
const SCRIPT = { _: /^(?:\{([^}]*)\}|([\p{L}\p{N}|]+))/u, '^': /^(?:\{([^}]*)\}|([\p{L}\p{N}+−]+))/u } as const;

/** A formula in the layout's plain-text notation as text, <sub> and <sup> nodes. */
export function formulaNodes(text: string): Node[] {
  const out: Node[] = [];
  let plain = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const m = (c === '_' || c === '^') && SCRIPT[c].exec(text.slice(i + 1));
    if (m) {
      if (plain) out.push(document.createTextNode(plain));
      plain = '';
      out.push(el(c === '_' ? 'sub' : 'sup', { textContent: m[1] ?? m[2] }));
      i += 1 + m[0].length;
    } else {
      plain += c;
      i++;
    }
  }
  if (plain) out.push(document.createTextNode(plain));
  return out;
}

/** The formulas and the paper link of `ref`, or null where the model gives none. */
export function referenceBlock(ref: PartReference | undefined): HTMLElement | null {
  if (!ref) return null;
  const link = el('a', { href: ref.paper.url, target: '_blank', rel: 'noopener', title: ref.paper.title, textContent: `${ref.paper.authors}, ${ref.section}` });
  return el(
    'div',
    { className: 'reference' },
    ...ref.formulas.map((f) => el('p', { className: 'formula' }, ...formulaNodes(f))),
    el('p', { className: 'cite' }, 'From ', link, ` (${ref.paper.title}).`),
  );
}

/** Put `ref` into the view's reference slot (`id`), hidden when the model gives none. */
export function showReference(id: string, ref: PartReference | undefined): void {
  const slot = document.getElementById(id);
  if (!slot) throw new Error(`page is missing #${id}`);
  const block = referenceBlock(ref);
  slot.replaceChildren(...(block ? [block] : []));
  slot.hidden = !block;
}
