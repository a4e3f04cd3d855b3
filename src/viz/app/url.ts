/**
 * The page's setup in its address, so that a link restores it: the model,
 * the training settings (named as capsnet train's flags), the chosen test
 * image and what the views show. The page writes every change back with
 * history.replaceState; opening the link reads it.
 */

const params = new URLSearchParams(location.search);

/** A parameter of the address the page was opened with (as changed since), or null. */
export function param(name: string): string | null {
  return params.get(name);
}

/** Set parameters (null removes one) and show the new address, without reloading or adding history. */
export function setParams(values: Record<string, string | number | boolean | null | undefined>): void {
  for (const [k, v] of Object.entries(values)) {
    if (v === null || v === undefined || v === false) params.delete(k);
    else params.set(k, v === true ? '1' : String(v));
  }
  const q = params.toString();
  history.replaceState(history.state, '', `${location.pathname}${q ? `?${q}` : ''}${location.hash}`);
}

/**
 * A number parameter, checked: null when absent; an error naming the
 * parameter when it is not a number in [min, max] (an integer when asked).
 */
export function numberParam(name: string, o: { min: number; max: number; integer?: boolean }): number | null {
  const s = params.get(name);
  if (s === null || s === '') return null;
  const v = Number(s);
  if (!Number.isFinite(v) || v < o.min || v > o.max || (o.integer && !Number.isInteger(v))) {
    throw new Error(`${name}=${s} in the address: expected ${o.integer ? 'a whole number' : 'a number'} from ${o.min} to ${o.max}`);
  }
  return v;
}

/** A parameter that must be one of `choices`: null when absent, an error naming the choices otherwise. */
export function choiceParam<T extends string>(name: string, choices: readonly T[]): T | null {
  const s = params.get(name);
  if (s === null || s === '') return null;
  if (!(choices as readonly string[]).includes(s)) throw new Error(`${name}=${s} in the address: expected one of ${choices.join(', ')}`);
  return s as T;
}
