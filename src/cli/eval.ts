/** capsnet eval: accuracy, error, per-class accuracy and confusion matrix on a test set. */
import { loadData } from '../data/spec.js';
import { evaluate } from '../training/evaluate.js';
import { commandSpec, COMMON_FLAGS, UsageError, type ArgsOf } from './args.js';
import { loadModelFromFlags, percent, report, setupBackend } from './common.js';
import { loadOptions, ONE_SPLIT_DATA_FLAGS, oneSplitDataSpec, withModelDataset } from './dataFlags.js';

export const evalSpec = commandSpec({
  name: 'eval',
  summary: 'Evaluate a trained model on a test set.',
  flags: [
    COMMON_FLAGS.model,
    COMMON_FLAGS.pretrained,
    ...ONE_SPLIT_DATA_FLAGS,
    { name: 'split', type: 'string', choices: ['train', 'test'], default: 'test', help: 'dataset split' },
    { name: 'routing', type: 'int', min: 1, help: 'routing iterations at test time (default: the model\'s)' },
    COMMON_FLAGS.batchSize,
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet eval --pretrained mnist', 'capsnet eval --model mnist-small', 'capsnet eval --model runs/capsnet-small-mnist', 'capsnet eval --model runs/x --images t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz'],
});

export function formatConfusion(confusion: number[][], names: string[]): string {
  const w = Math.max(5, ...confusion.flat().map((v) => String(v).length + 1));
  const head = 'true\\pred'.padEnd(10) + names.map((n) => n.slice(0, w - 1).padStart(w)).join('');
  const rows = confusion.map((row, i) => names[i].slice(0, 9).padEnd(10) + row.map((v) => String(v).padStart(w)).join(''));
  return [head, ...rows].join('\n');
}

export async function runEval({ flags }: ArgsOf<typeof evalSpec>): Promise<number> {
  await setupBackend(flags);
  const { model, dir, json } = loadModelFromFlags(flags);
  const ds = await loadData(oneSplitDataSpec(withModelDataset(flags, json)), flags.split, loadOptions(flags));
  if (flags.routing !== undefined && model.routingIterations === null) {
    model.dispose();
    throw new UsageError(`--routing: ${dir} is a ${model.modelType} model, which does not route`);
  }
  const forwardOptions = flags.routing !== undefined ? { routingIterations: flags.routing } : undefined;
  const r = evaluate(model, ds, { batchSize: flags['batch-size'], progress: !flags.json, forwardOptions });
  report(flags, { model: dir, ...r }, () => {
    const lines = [
      `model ${dir} on ${r.dataset} (${r.count} images)`,
      `accuracy ${percent(r.accuracy)}  error ${percent(r.error)}  (${r.correct}/${r.count}, ${r.imagesPerSecond.toFixed(1)} img/s)`,
      '',
      'per class:',
      ...r.perClass.map((c) => `  ${c.name.padEnd(12)} ${percent(c.accuracy).padStart(8)}  (${c.correct}/${c.count})`),
    ];
    if (r.confusion.length) lines.push('', 'confusion matrix (rows: true class, columns: predicted):', formatConfusion(r.confusion, r.perClass.map((c) => c.name)));
    return lines.join('\n');
  });
  model.dispose();
  return 0;
}
