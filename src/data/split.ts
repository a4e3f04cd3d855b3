/**
 * The held-out split of a source without a test set (--val-split), in one
 * place for `--data` in Node (./userData.ts) and the visualizer's Train
 * panel: plain arithmetic on the labels and a seeded stream, no files.
 */
import { Rng } from '../util/rng.js';

/** Indices of the train and test parts of a seeded split stratified by class. */
export function stratifiedSplit(labels: Int32Array, fraction: number, seed = 1): { train: Int32Array; test: Int32Array } {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`--val-split must be between 0 and 1 (exclusive), got ${fraction}`);
  const byClass = new Map<number, number[]>();
  labels.forEach((l, i) => {
    if (!byClass.has(l)) byClass.set(l, []);
    byClass.get(l)!.push(i);
  });
  const rng = new Rng(seed ^ 0x5b117);
  const train: number[] = [];
  const test: number[] = [];
  for (const cls of [...byClass.keys()].sort((a, b) => a - b)) {
    const idx = byClass.get(cls)!;
    const perm = rng.permutation(idx.length);
    // Every class with two examples or more keeps one on each side.
    const nTest = idx.length < 2 ? 0 : Math.min(idx.length - 1, Math.max(1, Math.round(idx.length * fraction)));
    perm.forEach((p, k) => (k < nTest ? test : train).push(idx[p]));
  }
  const sorted = (a: number[]) => Int32Array.from(a.sort((x, y) => x - y));
  return { train: sorted(train), test: sorted(test) };
}
