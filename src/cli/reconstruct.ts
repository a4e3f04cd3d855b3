/** capsnet reconstruct: a PNG grid of test images above their reconstructions. */
import * as tf from '@tensorflow/tfjs';
import { makeBatch } from '../data/batches.js';
import type { CapsNet } from '../models/capsnet.js';
import { writePng } from '../util/imageFiles.js';
import { tileGrid } from '../util/grid.js';
import { COMMON_FLAGS, UsageError, type CommandSpec, type ParsedArgs } from './args.js';
import { DATA_FLAGS, loadDataFromFlags, loadModelFromFlags, report, setupBackend } from './common.js';

export const reconstructSpec: CommandSpec = {
  name: 'reconstruct',
  summary: 'Write a PNG grid of input images (top rows) above their reconstructions from the longest digit capsule.',
  flags: [
    COMMON_FLAGS.model,
    COMMON_FLAGS.pretrained,
    ...DATA_FLAGS.filter((f) => f.name !== 'limit'),
    { name: 'count', type: 'int', min: 1, max: 200, default: 10, help: 'number of images' },
    { name: 'start', type: 'int', min: 0, default: 0, help: 'index of the first test image' },
    { name: 'per-row', type: 'int', min: 1, default: 10, help: 'images per row' },
    { name: 'scale', type: 'int', min: 1, max: 16, default: 3, help: 'pixel scale of the figure' },
    { name: 'out', type: 'string', arg: 'FILE', default: 'reconstructions.png', help: 'PNG file to write' },
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet reconstruct --pretrained mnist --count 20 --out recon.png'],
};

export async function runReconstruct({ flags }: ParsedArgs): Promise<number> {
  await setupBackend(flags);
  const { model, dir } = loadModelFromFlags(flags);
  if (model.modelType !== 'capsnet' || (model as CapsNet).decoderLayers.length === 0) {
    throw new UsageError(`reconstruct needs a CapsNet with a decoder; ${dir} is a ${model.modelType} model without one`);
  }
  const caps = model as CapsNet;
  const ds = loadDataFromFlags(flags, 'test');
  const start = flags.start as number;
  const count = Math.min(flags.count as number, ds.count - start);
  if (count <= 0) throw new Error(`--start ${start} is past the end of ${ds.name} (${ds.count} images)`);
  const [h, w, c] = model.inputShape;
  const batch = makeBatch(ds, Int32Array.from({ length: count }, (_, i) => start + i));
  const { recon, pred } = tf.tidy(() => {
    const out = caps.forward(tf.tensor4d(batch.x, [count, h, w, c]), { decode: 'longest' });
    return { recon: out.reconstruction!.dataSync() as Float32Array, pred: out.decodedClasses!.dataSync() as Int32Array };
  });
  const per = h * w * c;
  const perRow = flags['per-row'] as number;
  const rows: (Float32Array | null)[][] = [];
  for (let r0 = 0; r0 < count; r0 += perRow) {
    const idx = Array.from({ length: Math.min(perRow, count - r0) }, (_, k) => r0 + k);
    rows.push(idx.map((i) => batch.x.subarray(i * per, (i + 1) * per)));
    rows.push(idx.map((i) => recon.subarray(i * per, (i + 1) * per)));
  }
  const grid = tileGrid(rows, h, w, c as 1 | 3, { scale: flags.scale as number });
  writePng(flags.out as string, grid);
  let correct = 0;
  for (let i = 0; i < count; i++) if (pred[i] === batch.labels[i]) correct++;
  report(flags, { out: flags.out, model: dir, count, predictions: Array.from(pred), labels: Array.from(batch.labels), correct }, () => `wrote ${flags.out}: ${count} inputs above their reconstructions (${correct}/${count} predicted correctly)`);
  model.dispose();
  return 0;
}
