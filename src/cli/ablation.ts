/**
 * capsnet ablation: Table 1 of "Dynamic Routing Between Capsules". The same
 * model trained four ways, 1 or 3 routing iterations with and without the
 * reconstruction loss, each with the same budget (epochs, batch, learning
 * rate, seed), and the test errors side by side. Each cell is an ordinary
 * training run in OUT/<cell>, so an interrupted ablation resumes cell by cell.
 */
import { join } from 'node:path';
import { PAPER_RECONSTRUCTION_WEIGHT } from '../losses/reconstructionLoss.js';
import { applySetting, getArchitecture } from '../models/registry.js';
import { mergeConfig } from '../util/config.js';
import { loadData } from '../data/spec.js';
import { hasCheckpoint, readCheckpoint, readTrainingState } from '../training/checkpoint.js';
import { train } from '../training/trainer.js';
import { commandSpec, COMMON_FLAGS, type ArgsOf, UsageError } from './args.js';
import { percent, report, setupBackend } from './common.js';
import { dataFlags, loadOptions, TRAINING_DATASET_FLAG, trainingDataSpec } from './dataFlags.js';

export const ablationSpec = commandSpec({
  name: 'ablation',
  summary: 'Routing and reconstruction ablation (paper Table 1): r = 1 or 3, reconstruction on or off, same budget.',
  flags: [
    { name: 'preset', type: 'string', default: 'paper', help: 'CapsNet preset' },
    TRAINING_DATASET_FLAG,
    // The --data flags: its cells train on the same data.
    ...dataFlags('data-seed', 'data', 'val-split', 'image-size', 'channels', 'skip-invalid', 'cache-dir'),
    { name: 'epochs', type: 'int', min: 1, default: 10, help: 'epochs per cell' },
    COMMON_FLAGS.batchSize,
    { name: 'lr', type: 'number', min: 0, default: 0.001, help: 'Adam learning rate' },
    { name: 'lr-decay', type: 'number', min: 0, max: 1, default: 0.96, help: 'learning-rate multiplier per epoch' },
    { name: 'trials', type: 'int', min: 1, default: 1, help: 'seeds per cell (mean and spread reported)' },
    { name: 'seed', type: 'int', default: 1, help: 'first seed' },
    { name: 'cells', type: 'string', arg: 'LIST', help: 'only these cells, comma-separated (r1-no-recon, r1-recon, r3-no-recon, r3-recon); default all four' },
    ...dataFlags('train-limit', 'test-limit'),
    { name: 'out', type: 'string', arg: 'DIR', default: 'runs/ablation', help: 'output directory (one subdirectory per cell and seed)' },
    { name: 'progress', type: 'boolean', default: true, help: 'show progress bars' },
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet ablation --preset paper --epochs 10 --out runs/ablation', 'capsnet ablation --preset paper --epochs 10 --seed 2 --cells r3-recon --out runs/ablation'],
});

export const ABLATION_CELLS = [
  { name: 'r1-no-recon', routing: 1, reconstruction: false },
  { name: 'r1-recon', routing: 1, reconstruction: true },
  { name: 'r3-no-recon', routing: 3, reconstruction: false },
  { name: 'r3-recon', routing: 3, reconstruction: true },
] as const;

/** The cells named by --cells (all four without it); an unknown name is an error. */
export function selectCells(list: string | undefined): (typeof ABLATION_CELLS)[number][] {
  if (list === undefined) return [...ABLATION_CELLS];
  const names = list.split(',').map((s) => s.trim()).filter(Boolean);
  const known = ABLATION_CELLS.map((c) => c.name) as string[];
  const unknown = names.filter((n) => !known.includes(n));
  if (unknown.length || !names.length) throw new UsageError(`--cells: ${unknown.length ? `unknown cell ${unknown.join(', ')}` : 'no cell named'}; the cells are ${known.join(', ')}`);
  return ABLATION_CELLS.filter((c) => names.includes(c.name));
}

export async function runAblation({ flags }: ArgsOf<typeof ablationSpec>): Promise<number> {
  const cells = selectCells(flags.cells);
  await setupBackend(flags);
  const data = trainingDataSpec(flags);
  const trainData = await loadData(data, 'train', loadOptions(flags));
  const testData = await loadData(data, 'test', loadOptions(flags));
  const datasetName = flags.data !== undefined ? trainData.name.replace(/-train$/, '') : flags.dataset;
  const rows: { cell: string; routing: number; reconstruction: boolean; errors: number[]; meanError: number; std: number; seconds: number }[] = [];
  const log = flags.json ? () => {} : (s: string) => process.stderr.write(`${s}\n`);
  const capsnet = getArchitecture('capsnet');
  for (const cell of cells) {
    const errors: number[] = [];
    let seconds = 0;
    for (let t = 0; t < flags.trials; t++) {
      const seed = flags.seed + t;
      const outDir = join(flags.out, `${cell.name}-seed${seed}`);
      const resume = hasCheckpoint(outDir);
      log(`${cell.name}, seed ${seed}${resume ? ' (resuming)' : ''}`);
      const done = resume && readTrainingState(outDir).epoch >= flags.epochs;
      if (!done) {
        const r = await train(
          {
            model: capsnet.name,
            preset: flags.preset,
            overrides: {
              ...mergeConfig(applySetting(capsnet, 'routingIterations', cell.routing), applySetting(capsnet, 'reconstructionWeight', cell.reconstruction ? PAPER_RECONSTRUCTION_WEIGHT : 0)),
              inputShape: [trainData.height, trainData.width, trainData.channels],
              numClasses: trainData.numClasses,
            },
            dataset: datasetName,
            epochs: flags.epochs,
            batchSize: flags['batch-size'],
            learningRate: flags.lr,
            lrDecay: flags['lr-decay'],
            shift: 2,
            seed,
            outDir,
            resume,
          },
          { train: trainData, test: testData },
          { progress: flags.progress && !flags.json, log },
        );
        r.model.dispose();
        if (r.interrupted) return 130;
      }
      const ck = readCheckpoint(outDir);
      const last = ck.state.history[ck.state.history.length - 1];
      errors.push(last.testError ?? NaN);
      seconds += ck.state.elapsedSeconds;
      ck.model.dispose();
    }
    const mean = errors.reduce((a, b) => a + b, 0) / errors.length;
    const std = Math.sqrt(errors.reduce((a, b) => a + (b - mean) ** 2, 0) / errors.length);
    rows.push({ cell: cell.name, routing: cell.routing, reconstruction: cell.reconstruction, errors, meanError: mean, std, seconds });
  }
  report(flags, { preset: flags.preset, dataset: datasetName, epochs: flags.epochs, batchSize: flags['batch-size'], trials: flags.trials, rows }, () =>
    [
      `ablation: CapsNet '${flags.preset}' on ${datasetName}, ${flags.epochs} epochs per cell, batch ${flags['batch-size']}, ${flags.trials} seed(s)`,
      '',
      'routing  reconstruction  test error          training time',
      ...rows.map((r) => `${String(r.routing).padEnd(8)} ${(r.reconstruction ? 'yes' : 'no').padEnd(15)} ${`${percent(r.meanError)}${r.errors.length > 1 ? ` +- ${percent(r.std)}` : ''}`.padEnd(19)} ${(r.seconds / 3600).toFixed(2)} h`),
    ].join('\n'),
  );
  return 0;
}
