/**
 * capsnet perturb: the dimension-perturbation figure of "Dynamic Routing
 * Between Capsules" (Fig. 4). For each chosen test digit, each of the winning
 * digit capsule's dimensions is stepped over [-0.25, 0.25] in steps of 0.05
 * and the decoder redraws the digit: one row per dimension.
 */
import * as tf from '@tensorflow/tfjs';
import { makeBatch } from '../data/batches.js';
import { writePng } from '../util/imageFiles.js';
import { tileGrid } from '../util/grid.js';
import { loadData } from '../data/spec.js';
import { commandSpec, COMMON_FLAGS, omitFlag, UsageError, type ArgsOf } from './args.js';
import { loadModelFromFlags, report, requireDecoder, setupBackend } from './common.js';
import { loadOptions, ONE_SPLIT_DATA_FLAGS, oneSplitDataSpec, withModelDataset } from './dataFlags.js';

export const perturbSpec = commandSpec({
  name: 'perturb',
  summary: 'Render how each dimension of the winning digit capsule changes the reconstruction (paper Fig. 4).',
  flags: [
    COMMON_FLAGS.model,
    COMMON_FLAGS.pretrained,
    ...omitFlag(ONE_SPLIT_DATA_FLAGS, 'limit'),
    { name: 'indices', type: 'string', default: '0,1,2', help: 'comma-separated test image indices' },
    { name: 'range', type: 'number', min: 0, default: 0.25, help: 'largest perturbation (both signs)' },
    { name: 'step', type: 'number', min: 0.001, default: 0.05, help: 'perturbation step' },
    { name: 'scale', type: 'int', min: 1, max: 16, default: 2, help: 'pixel scale of the figure' },
    { name: 'out', type: 'string', arg: 'FILE', default: 'perturbations.png', help: 'PNG file to write' },
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet perturb --pretrained mnist --indices 0,1,2,3 --out fig4.png'],
});

/** Perturbation values from -range to +range in `step`s (0 included). */
export function perturbationSteps(range: number, step: number): number[] {
  const n = Math.round(range / step);
  return Array.from({ length: 2 * n + 1 }, (_, i) => Number(((i - n) * step).toFixed(6)));
}

export async function runPerturb({ flags }: ArgsOf<typeof perturbSpec>): Promise<number> {
  await setupBackend(flags);
  const { model, dir, json } = loadModelFromFlags(flags);
  const decoder = requireDecoder(model, dir, 'perturb');
  const ds = await loadData(oneSplitDataSpec(withModelDataset(flags, json)), 'test', loadOptions(flags));
  const indices = flags.indices.split(',').map((s) => {
    const v = Number(s.trim());
    if (!Number.isInteger(v) || v < 0) throw new UsageError(`--indices must be non-negative integers, got '${s}'`);
    if (v >= ds.count) throw new Error(`index ${v} is out of range: ${ds.name} has ${ds.count} images`);
    return v;
  });
  const steps = perturbationSteps(flags.range, flags.step);
  const [h, w, c] = model.inputShape;
  const dim = decoder.capsuleDim;
  const batch = makeBatch(ds, Int32Array.from(indices));
  const rows: (Float32Array | null)[][] = [];
  const winners: number[] = [];
  tf.tidy(() => {
    const out = model.forward(tf.tensor4d(batch.x, [indices.length, h, w, c]), { decode: 'none' });
    const classes = tf.argMax(out.scores, 1).dataSync();
    const vecs = decoder.classCapsules(out).arraySync();
    for (let k = 0; k < indices.length; k++) {
      const cls = classes[k];
      winners.push(cls);
      const v = vecs[k][cls];
      // All dim x steps variants of this capsule in one decoder batch.
      const variants: number[][] = [];
      for (let d = 0; d < dim; d++) for (const s of steps) variants.push(v.map((x, i) => (i === d ? x + s : x)));
      const images = decoder.decodeCapsule(tf.tensor2d(variants), tf.fill([variants.length], cls, 'int32') as tf.Tensor1D).dataSync() as Float32Array;
      const per = h * w * c;
      for (let d = 0; d < dim; d++) rows.push(steps.map((_, j) => images.slice((d * steps.length + j) * per, (d * steps.length + j + 1) * per)));
      if (k < indices.length - 1) rows.push([]);
    }
  });
  writePng(flags.out, tileGrid(rows, h, w, c as 1 | 3, { scale: flags.scale, pad: 1 }));
  report(flags, { out: flags.out, model: dir, indices, predicted: winners, dimensions: dim, steps }, () => `wrote ${flags.out}: ${indices.length} digit${indices.length === 1 ? '' : 's'} x ${dim} dimensions x ${steps.length} steps (${steps[0]} to ${steps[steps.length - 1]})`);
  model.dispose();
  return 0;
}
