/**
 * capsnet export: write a trained model (a checkpoint or model directory) as a
 * standalone model directory, optionally with float16 weights (half the
 * size), for shipping and for the browser.
 */
import { saveModel } from '../models/files.js';
import { modelToArtifacts } from '../models/serialization.js';
import { COMMON_FLAGS, type CommandSpec, type ParsedArgs } from './args.js';
import { loadModelFromFlags, report, setupBackend } from './common.js';

export const exportSpec: CommandSpec = {
  name: 'export',
  summary: 'Write a trained model as a standalone model directory (model.json + weights.bin), optionally in float16.',
  flags: [
    COMMON_FLAGS.model,
    { name: 'out', type: 'string', arg: 'DIR', help: 'new directory to write' },
    { name: 'float16', type: 'boolean', help: 'store weights as float16 (half the size)' },
    { name: 'note', type: 'string', help: 'free text stored in the model\'s metadata' },
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet export --model runs/paper --out pretrained/capsnet-mnist --float16'],
};

export async function runExport({ flags }: ParsedArgs): Promise<number> {
  await setupBackend(flags);
  if (!flags.out) throw new Error('--out DIR is needed');
  const { model, json, dir } = loadModelFromFlags(flags);
  const history = (json.metadata?.history as { testAccuracy?: number; epoch: number }[] | undefined) ?? [];
  const last = history[history.length - 1];
  const metadata: Record<string, unknown> = {
    ...(json.metadata ?? {}),
    exportedFrom: dir.split('/').slice(-3).join('/'),
    ...(last ? { epochs: last.epoch, testAccuracy: last.testAccuracy } : {}),
    ...(flags.note ? { note: flags.note } : {}),
  };
  delete metadata.epoch;
  delete metadata.batch;
  const encoding = flags.float16 ? 'float16' : 'float32';
  saveModel(model, flags.out as string, { encoding, metadata });
  const bytes = modelToArtifacts(model, { encoding }).weights.byteLength;
  report(flags, { out: flags.out, from: dir, encoding, weightBytes: bytes, params: model.countParams() }, () => `wrote ${flags.out}: ${model.countParams().toLocaleString('en-US')} parameters, ${encoding}, ${(bytes / 1e6).toFixed(1)} MB of weights`);
  model.dispose();
  return 0;
}
