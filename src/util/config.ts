/** Model configs: a preset with a user's overrides merged in. */

/**
 * `over` merged into `base`: nested plain objects merge key by key; anything
 * else in `over` (a number, an array, null) replaces what `base` has, and an
 * undefined value leaves it.
 */
export function mergeConfig<T>(base: T, over: unknown): T {
  if (over === undefined) return base;
  if (over === null || typeof over !== 'object' || Array.isArray(over) || base === null || typeof base !== 'object') return over as T;
  const out = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over as Record<string, unknown>)) out[k] = mergeConfig(out[k], v);
  return out as T;
}

/** The config of preset `name` in `presets`, or undefined for an unknown name. */
export function presetConfig<C>(presets: Record<string, C>, name: string): C | undefined {
  return Object.hasOwn(presets, name) ? presets[name] : undefined;
}
