/** capsnet reconstruct: a PNG grid of test images above their reconstructions. */
import * as tf from '@tensorflow/tfjs';
import { makeBatch } from '../data/batches.js';
import { writePng } from '../util/imageFiles.js';
import { tileGrid } from '../util/grid.js';
import { loadData } from '../data/spec.js';
import { commandSpec, COMMON_FLAGS, omitFlag, UsageError, type ArgsOf } from './args.js';
import { loadModelFromFlags, report, requireDecoder, setupBackend } from './common.js';
import { loadOptions, ONE_SPLIT_DATA_FLAGS, oneSplitDataSpec, withModelDataset } from './dataFlags.js';

export const reconstructSpec = commandSpec({
  name: 'reconstruct',
  summary: 'Write a PNG grid of input images (top rows) above their reconstructions from the longest digit capsule.',
  description:
    'For two-digit images (--dataset multimnist) each input is followed by the reconstructions from the two longest capsules, ' +
    'each digit on its own, and both overlaid in red and green, as in the paper\'s Figure 5.',
  flags: [
    COMMON_FLAGS.model,
    COMMON_FLAGS.pretrained,
    ...omitFlag(ONE_SPLIT_DATA_FLAGS, 'limit'),
    { name: 'count', type: 'int', min: 1, max: 200, default: 10, help: 'number of images' },
    { name: 'start', type: 'int', min: 0, default: 0, help: 'index of the first test image' },
    { name: 'per-row', type: 'int', min: 1, default: 10, help: 'images per row' },
    { name: 'scale', type: 'int', min: 1, max: 16, default: 3, help: 'pixel scale of the figure' },
    { name: 'out', type: 'string', arg: 'FILE', default: 'reconstructions.png', help: 'PNG file to write' },
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet reconstruct --pretrained mnist --count 20 --out recon.png'],
});

export async function runReconstruct({ flags }: ArgsOf<typeof reconstructSpec>): Promise<number> {
  await setupBackend(flags);
  const { model, dir, json } = loadModelFromFlags(flags);
  const decoder = requireDecoder(model, dir, 'reconstruct');
  const ds = await loadData(oneSplitDataSpec(withModelDataset(flags, json)), 'test', loadOptions(flags));
  const start = flags.start;
  const count = Math.min(flags.count, ds.count - start);
  if (count <= 0) throw new Error(`--start ${start} is past the end of ${ds.name} (${ds.count} images)`);
  const [h, w, c] = model.inputShape;
  const batch = makeBatch(ds, Int32Array.from({ length: count }, (_, i) => start + i));
  const per = h * w * c;
  const perRow = flags['per-row'];
  const rows: (Float32Array | null)[][] = [];
  const scale = flags.scale;
  if (ds.multiLabels) {
    // Decode the two longest capsules separately (test time: no labels).
    const { a, b, top } = tf.tidy(() => {
      const out = model.forward(tf.tensor4d(batch.x, [count, h, w, c]), { decode: 'none' });
      const classCaps = decoder.classCapsules(out);
      const { indices } = tf.topk(out.scores, 2);
      const first = tf.reshape(tf.slice(indices, [0, 0], [count, 1]), [count]) as tf.Tensor1D;
      const second = tf.reshape(tf.slice(indices, [0, 1], [count, 1]), [count]) as tf.Tensor1D;
      return {
        a: decoder.decode(classCaps, first).dataSync() as Float32Array,
        b: decoder.decode(classCaps, second).dataSync() as Float32Array,
        top: indices.arraySync() as number[][],
      };
    });
    const rgb = (gray: Float32Array, mask: [number, number, number]) => {
      const out = new Float32Array(gray.length * 3);
      for (let i = 0; i < gray.length; i++) for (let k = 0; k < 3; k++) out[3 * i + k] = gray[i] * mask[k];
      return out;
    };
    for (let r0 = 0; r0 < count; r0 += perRow) {
      const idx = Array.from({ length: Math.min(perRow, count - r0) }, (_, k) => r0 + k);
      const slice = (arr: Float32Array, i: number) => arr.subarray(i * per, (i + 1) * per);
      rows.push(idx.map((i) => rgb(slice(batch.x, i), [1, 1, 1])));
      rows.push(idx.map((i) => rgb(slice(a, i), [1, 0.25, 0.25])));
      rows.push(idx.map((i) => rgb(slice(b, i), [0.25, 1, 0.25])));
      rows.push(idx.map((i) => {
        const o = new Float32Array(per * 3);
        for (let p = 0; p < per; p++) {
          o[3 * p] = slice(a, i)[p];
          o[3 * p + 1] = slice(b, i)[p];
        }
        return o;
      }));
    }
    writePng(flags.out, tileGrid(rows, h, w, 3, { scale }));
    let correct = 0;
    for (let i = 0; i < count; i++) if (top[i].every((j) => ds.multiLabels![(start + i) * ds.numClasses + j] === 1)) correct++;
    report(flags, { out: flags.out, model: dir, count, predictions: top, correct }, () => `wrote ${flags.out}: ${count} two-digit inputs, each digit reconstructed from its own capsule (red, green) and overlaid (${correct}/${count} pairs right)`);
    model.dispose();
    return 0;
  }
  const { recon, pred } = tf.tidy(() => {
    const out = model.forward(tf.tensor4d(batch.x, [count, h, w, c]), { decode: 'none' });
    const classes = tf.argMax(out.scores, 1) as tf.Tensor1D;
    return { recon: decoder.decode(decoder.classCapsules(out), classes).dataSync() as Float32Array, pred: classes.dataSync() as Int32Array };
  });
  for (let r0 = 0; r0 < count; r0 += perRow) {
    const idx = Array.from({ length: Math.min(perRow, count - r0) }, (_, k) => r0 + k);
    rows.push(idx.map((i) => batch.x.subarray(i * per, (i + 1) * per)));
    rows.push(idx.map((i) => recon.subarray(i * per, (i + 1) * per)));
  }
  writePng(flags.out, tileGrid(rows, h, w, c as 1 | 3, { scale }));
  let correct = 0;
  for (let i = 0; i < count; i++) if (pred[i] === batch.labels[i]) correct++;
  const names = (json.metadata?.classNames as string[] | undefined) ?? ds.classNames ?? Array.from({ length: model.numClasses }, (_, j) => String(j));
  const predictedNames = Array.from(pred, (j) => names[j]);
  report(flags, { out: flags.out, model: dir, count, predictions: Array.from(pred), predictedClassNames: predictedNames, labels: Array.from(batch.labels), correct }, () =>
    `wrote ${flags.out}: ${count} inputs above their reconstructions (${correct}/${count} predicted correctly)\npredicted, left to right and top to bottom: ${predictedNames.join(', ')}`,
  );
  model.dispose();
  return 0;
}
