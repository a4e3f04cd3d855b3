/**
 * capsnet viewpoints: the novel-viewpoint experiment of "Matrix capsules with
 * EM routing" (section 6). Every model trains on familiar viewpoints only;
 * the first model (the baseline, the CNN by default) trains for a fixed
 * budget, and each other model stops as soon as its familiar-view test error
 * is no worse than the baseline's. With the familiar error matched, the
 * models' errors on novel viewpoints say which generalises better.
 *
 * Each model is an ordinary training run in OUT/<arch>-<preset>, so an
 * interrupted experiment resumes model by model.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applySetting, architectureNames, getArchitecture, type ConfigOverrides } from '../models/registry.js';
import { hasCheckpoint, readCheckpoint, readTrainingState } from '../training/checkpoint.js';
import { evaluate } from '../training/evaluate.js';
import { train } from '../training/trainer.js';
import { writeFileAtomic } from '../util/files.js';
import { loadData } from '../data/spec.js';
import { ARCHITECTURE_LIST, commandSpec, presetDefaults, COMMON_FLAGS, UsageError, type ArgsOf } from './args.js';
import { percent, report, setupBackend } from './common.js';

/** The familiar training/test set and the novel test sets of each family. */
export const VIEWPOINT_FAMILIES: Record<string, { familiar: string; novel: string[] }> = {
  mnist: { familiar: 'mnist-familiar', novel: ['mnist-novel-rotation', 'mnist-novel-scale'] },
  'smallnorb-azimuth': { familiar: 'smallnorb-azimuth-familiar', novel: ['smallnorb-azimuth-novel'] },
  'smallnorb-elevation': { familiar: 'smallnorb-elevation-familiar', novel: ['smallnorb-elevation-novel'] },
};

export const viewpointsSpec = commandSpec({
  name: 'viewpoints',
  summary: 'Novel-viewpoint generalisation (EM paper, section 6): train on familiar viewpoints, stop at the baseline\'s familiar error, compare novel ones.',
  description:
    'The first architecture of --archs is the baseline: it trains for --baseline-epochs on familiar viewpoints, and its familiar-view test error becomes ' +
    'the target. Every other model trains on the same data until its familiar-view test error is at most the target (checked every epoch and ' +
    'every --check-images training images), or for --max-epochs. All models are then evaluated on the familiar and the novel test sets. ' +
    'The EM capsule network trains with its own learning rate, batch size and EM iterations (--em-*: on MNIST two iterations train, three stall; ' +
    'see the README). Writes OUT/viewpoints.md and OUT/viewpoints.json; each model is a training run in OUT/<arch>-<preset>.',
  flags: [
    { name: 'family', type: 'string', choices: Object.keys(VIEWPOINT_FAMILIES), default: 'mnist', help: 'familiar and novel viewpoint sets' },
    { name: 'archs', type: 'string', arg: 'ARCH,ARCH,...', default: 'cnn,capsnet,em', help: `architectures, baseline first (any of ${ARCHITECTURE_LIST})` },
    { name: 'preset', type: 'string', help: `preset of every model [default: each architecture's quick preset (${presetDefaults('quick')})]` },
    { name: 'baseline-epochs', type: 'int', min: 1, default: 2, help: 'epochs of the baseline' },
    { name: 'max-epochs', type: 'int', min: 1, default: 8, help: 'most epochs of every other model' },
    { name: 'check-images', type: 'int', min: 1, default: 10_000, help: 'check the familiar-view error every this many training images' },
    { name: 'lr', type: 'number', min: 0, default: 0.001, help: 'Adam learning rate (cnn, capsnet)' },
    COMMON_FLAGS.batchSize,
    { name: 'em-lr', type: 'number', min: 0, default: 0.01, help: 'Adam learning rate of the EM capsule network' },
    { name: 'em-batch-size', type: 'int', min: 1, default: 32, help: 'batch size of the EM capsule network' },
    { name: 'em-routing', type: 'int', min: 1, default: 2, help: 'EM iterations of the EM capsule network' },
    { name: 'lr-decay', type: 'number', min: 0, max: 1, default: 0.96, help: 'learning-rate multiplier per epoch' },
    { name: 'seed', type: 'int', default: 1, help: 'random seed of every run' },
    { name: 'train-limit', type: 'int', min: 1, help: 'use only the first N training images' },
    { name: 'test-limit', type: 'int', min: 1, help: 'evaluate on only the first N images of each test set' },
    { name: 'out', type: 'string', arg: 'DIR', default: 'runs/viewpoints', help: 'output directory (one subdirectory per model)' },
    { name: 'progress', type: 'boolean', default: true, help: 'show progress bars' },
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet viewpoints --out runs/viewpoints', 'capsnet viewpoints --family smallnorb-azimuth --preset paper', 'capsnet viewpoints --archs cnn,capsnet'],
  renamed: { models: 'give the architectures with --archs (e.g. --archs cnn,capsnet,em)' },
});

export interface ViewpointRow {
  type: string;
  preset: string;
  parameters: number;
  /** The baseline: trained for a fixed budget. Others: whether they reached the target error. */
  role: 'baseline' | 'reached' | 'not reached';
  epochs: number;
  trainImages: number;
  trainSeconds: number;
  /** Test error on each test set, familiar first. */
  errors: Record<string, number>;
}

/** The last target check a run logged (checks.jsonl), if any. */
function lastCheck(outDir: string): { testError: number; step: number } | undefined {
  const path = join(outDir, 'checks.jsonl');
  if (!existsSync(path)) return undefined;
  const lines = readFileSync(path, 'utf8').trim().split('\n').filter(Boolean);
  return lines.length ? JSON.parse(lines[lines.length - 1]) : undefined;
}

export async function runViewpoints({ flags }: ArgsOf<typeof viewpointsSpec>): Promise<number> {
  const family = VIEWPOINT_FAMILIES[flags.family];
  const types = flags.archs.split(',').map((s) => s.trim()).filter(Boolean);
  if (types.length < 2) throw new UsageError('--archs needs a baseline and at least one architecture to compare');
  for (const t of types) if (!architectureNames().includes(t)) throw new UsageError(`--archs: unknown architecture '${t}' (expected ${architectureNames().join(', ')})`);
  if (new Set(types).size !== types.length) throw new UsageError('--archs lists an architecture twice');
  await setupBackend(flags);
  const log = flags.json ? () => {} : (s: string) => process.stderr.write(`${s}\n`);
  const trainData = await loadData({ source: { kind: 'dataset', name: family.familiar }, trainLimit: flags['train-limit'] }, 'train');
  // Test sets are keyed by their --dataset names, familiar first.
  const setNames = [family.familiar, ...family.novel];
  const testSets = await Promise.all(setNames.map((name) => loadData({ source: { kind: 'dataset', name }, testLimit: flags['test-limit'] }, 'test')));
  const familiarTest = testSets[0];
  const out = flags.out;
  let target = NaN;
  const rows: ViewpointRow[] = [];

  for (const [index, type] of types.entries()) {
    const baseline = index === 0;
    const preset = flags.preset ?? getArchitecture(type).quickPreset;
    // An architecture with a schedule of its own (the EM capsule network) takes the --em-* flags.
    const ownSchedule = getArchitecture(type).separateSchedule;
    const batchSize = ownSchedule ? flags['em-batch-size'] : flags['batch-size'];
    const epochs = baseline ? flags['baseline-epochs'] : flags['max-epochs'];
    const outDir = join(out, `${type}-${preset}`);
    const overrides: ConfigOverrides = {
      ...(ownSchedule ? applySetting(getArchitecture(type), 'routingIterations', flags['em-routing']) : {}),
      inputShape: [trainData.height, trainData.width, trainData.channels],
      numClasses: trainData.numClasses,
    };
    const resume = hasCheckpoint(outDir);
    const check = lastCheck(outDir);
    const done = resume && ((!baseline && check !== undefined && check.testError <= target) || readTrainingState(outDir).epoch >= epochs);
    log(`${type} (${preset})${baseline ? ', baseline' : `, target familiar error ${percent(target)}`}${done ? ': done' : resume ? ': resuming' : ''}`);
    if (!done) {
      const r = await train(
        {
          model: type,
          preset,
          overrides,
          dataset: family.familiar,
          epochs,
          batchSize,
          learningRate: ownSchedule ? flags['em-lr'] : flags.lr,
          lrDecay: flags['lr-decay'],
          shift: 2,
          seed: flags.seed,
          outDir,
          resume,
        },
        { train: trainData, test: familiarTest },
        {
          progress: flags.progress && !flags.json,
          log,
          ...(baseline ? {} : { stopAtError: target, checkEvery: Math.max(1, Math.round(flags['check-images'] / batchSize)) }),
        },
      );
      r.model.dispose();
      if (r.interrupted && !r.reachedTarget) return 130;
    }
    const ck = readCheckpoint(outDir);
    try {
      const errors: Record<string, number> = {};
      testSets.forEach((ds, i) => (errors[setNames[i]] = evaluate(ck.model, ds, { batchSize: Math.max(batchSize, 100) }).error));
      const familiarError = errors[family.familiar];
      if (baseline) target = familiarError;
      const n = trainData.count;
      rows.push({
        type,
        preset,
        parameters: ck.model.countParams(),
        role: baseline ? 'baseline' : familiarError <= target ? 'reached' : 'not reached',
        epochs: ck.state.epoch + ck.state.batch / Math.ceil(n / batchSize),
        trainImages: ck.state.epoch * n + Math.min(ck.state.batch * batchSize, n),
        trainSeconds: ck.state.elapsedSeconds,
        errors,
      });
    } finally {
      ck.model.dispose();
    }
  }

  const table = [
    `| model | parameters | trained on | familiar error target | ${setNames.map((n) => `${n} error`).join(' | ')} |`,
    `| --- | ---: | --- | --- | ${setNames.map(() => '---:').join(' | ')} |`,
    ...rows.map((r) =>
      `| ${r.type} (${r.preset}) | ${r.parameters.toLocaleString('en-US')} | ${r.trainImages.toLocaleString('en-US')} images (${r.epochs.toFixed(2)} epochs, ${Math.round(r.trainSeconds)} s) | ` +
      `${r.role === 'baseline' ? 'sets it' : r.role} | ${setNames.map((n) => percent(r.errors[n])).join(' | ')} |`,
    ),
  ].join('\n');
  const result = { family: flags.family, familiar: family.familiar, novel: family.novel, targetError: target, rows };
  mkdirSync(out, { recursive: true });
  writeFileAtomic(join(out, 'viewpoints.json'), `${JSON.stringify(result, null, 2)}\n`);
  writeFileAtomic(
    join(out, 'viewpoints.md'),
    `# Novel viewpoints (${flags.family})\n\nTrained on ${family.familiar}; the baseline's familiar-view test error ${percent(target)} is the target the other models stop at.\n\n${table}\n`,
  );
  report(flags, result, () => `viewpoints: trained on ${family.familiar}, familiar-view target error ${percent(target)}\n\n${table}\n\nwrote ${join(out, 'viewpoints.md')} and viewpoints.json`);
  return 0;
}
