/** capsnet train: train a model on a dataset, with checkpoints and exact resume. */
import { basename, join, resolve } from 'node:path';
import { modelPathOrPretrained } from '../models/pretrained.js';
import { applySetting, getArchitecture, type Architecture, type ArchitectureSettings, type ConfigOverrides } from '../models/registry.js';
import { mergeConfig } from '../util/config.js';
import { loadData } from '../data/spec.js';
import { DATA_CACHE_DIR, readTrainingState } from '../training/checkpoint.js';
import type { TrainOptions } from '../training/options.js';
import { train } from '../training/trainer.js';
import { ARCHITECTURE_LIST, commandSpec, PRESET_LIST, presetDefaults, COMMON_FLAGS, UsageError, type ArgsOf } from './args.js';
import { percent, report, setupBackend } from './common.js';
import { dataFlags, loadOptions, TRAINING_DATASET_FLAG, trainingDataSpec } from './dataFlags.js';

export const trainSpec = commandSpec({
  name: 'train',
  summary: 'Train a capsule network (or the CNN baseline) on a dataset.',
  description:
    'Writes a checkpoint into --out after every epoch (model, optimizer state, RNG state) and metrics.jsonl. ' +
    'Ctrl-C saves a checkpoint and exits; --resume continues exactly where training stopped.',
  flags: [
    COMMON_FLAGS.arch,
    { name: 'preset', type: 'string', help: `preset of --arch (${PRESET_LIST}) [default: ${presetDefaults('quick')}]; input size and classes follow the dataset` },
    TRAINING_DATASET_FLAG,
    ...dataFlags('images', 'labels', 'data-seed', 'data-count', 'data-file', 'data', 'val-split', 'image-size', 'channels', 'skip-invalid', 'cache-dir'),
    ...dataFlags('test-images', 'test-labels', 'train-limit', 'test-limit', 'test-data-count'),
    { name: 'epochs', type: 'int', min: 1, help: 'epochs to train [default: 3; with --resume: the run\'s own, or more]' },
    COMMON_FLAGS.batchSize,
    { name: 'lr', type: 'number', min: 0, default: 0.001, help: 'Adam learning rate' },
    { name: 'lr-decay', type: 'number', min: 0, max: 1, default: 0.96, help: 'learning-rate multiplier per epoch (exponential decay)' },
    { name: 'routing', type: 'int', min: 1, help: 'routing iterations, for an architecture that routes (default: the preset\'s, 3)' },
    { name: 'recon-weight', type: 'number', min: 0, help: 'reconstruction loss weight, for an architecture with a decoder (default: the preset\'s, 0.0005; 0 turns it off)' },
    { name: 'shift', type: 'int', min: 0, default: 2, help: 'random shift in pixels for augmentation' },
    { name: 'flip', type: 'boolean', help: 'augment with random horizontal flips (photographs, clothing; not digits)' },
    { name: 'init', type: 'string', arg: 'MODEL', help: 'start from this model\'s weights (a model or training directory, or a pretrained name): fine-tuning; the architecture is that model\'s, --preset is not used' },
    { name: 'ema', type: 'number', min: 0, max: 1, arg: 'DECAY', help: 'keep an exponential moving average of the weights with this decay per step (e.g. 0.999); test accuracy and the saved model use the averaged weights' },
    { name: 'seed', type: 'int', default: 1, help: 'random seed (weights, shuffling, shifts)' },
    { name: 'out', type: 'string', arg: 'DIR', help: 'output directory [default: runs/<arch>-<preset>-<dataset>]' },
    { name: 'stop-at-error', type: 'number', min: 0, max: 100, arg: 'PERCENT', help: 'stop as soon as the test error is at most this percentage (checked every epoch, and every --check-every steps)' },
    { name: 'check-every', type: 'int', min: 1, arg: 'STEPS', help: 'with --stop-at-error: also check the test error every this many steps' },
    { name: 'resume', type: 'boolean', help: 'continue the run in --out from its latest checkpoint' },
    { name: 'progress', type: 'boolean', default: true, help: 'show a progress bar (--no-progress to hide)' },
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: [
    'capsnet train --preset small --epochs 3',
    'capsnet train --preset paper --epochs 50 --out runs/paper',
    'capsnet train --out runs/paper --resume',
    'capsnet train --init mnist --epochs 5 --lr 0.0002 --lr-decay 0.7 --ema 0.999 --out runs/paper-ft',
    'capsnet train --arch em --preset small --routing 2 --lr 0.01 --batch-size 32 --epochs 8',
    'capsnet train --data photos/ --val-split 0.2 --image-size 32 --flip --out runs/photos',
  ],
  renamed: { model: `give the architecture with --arch (${ARCHITECTURE_LIST}), or a saved model to start from with --init` },
});

/** The overrides that a setting flag asks for, or a usage error naming the flag when the architecture lacks the setting. */
function flagSetting(arch: Architecture, flag: string, key: keyof ArchitectureSettings, value: number | undefined): ConfigOverrides {
  if (value === undefined) return {};
  try {
    return applySetting(arch, key, value);
  } catch (e) {
    throw new UsageError(`--${flag}: ${(e as Error).message}`);
  }
}

export async function runTrain({ flags }: ArgsOf<typeof trainSpec>): Promise<number> {
  const dataset = flags.data !== undefined ? basename(resolve(flags.data)) : flags.images ? 'idx' : flags.dataset;
  const arch = getArchitecture(flags.arch);
  const preset = flags.preset ?? arch.quickPreset;
  const out = flags.out ?? join('runs', `${arch.name}-${preset}-${dataset}`);
  if (flags.images && !(flags['test-images'] && flags['test-labels'])) {
    throw new UsageError('with --images/--labels, also give --test-images and --test-labels');
  }
  if (flags.init !== undefined && flags.resume) throw new UsageError('--init starts a new run; --resume continues one: give one of them');
  if (flags.init !== undefined && (flags.routing !== undefined || flags['recon-weight'] !== undefined)) {
    throw new UsageError('--init keeps the saved model\'s config; --routing and --recon-weight cannot change it');
  }
  if (flags.ema !== undefined && !(flags.ema > 0 && flags.ema < 1)) throw new UsageError(`--ema must be between 0 and 1 (exclusive), got ${flags.ema}`);
  const overrides = mergeConfig(flagSetting(arch, 'routing', 'routingIterations', flags.routing), flagSetting(arch, 'recon-weight', 'reconstructionWeight', flags['recon-weight']));
  const options: TrainOptions & { resume?: boolean } = {
    model: arch.name,
    preset,
    overrides,
    dataset,
    // With --resume only an explicit --epochs changes the run's length.
    epochs: flags.epochs ?? (flags.resume ? 0 : 3),
    batchSize: flags['batch-size'],
    learningRate: flags.lr,
    lrDecay: flags['lr-decay'],
    shift: flags.shift,
    ...(flags.flip ? { flip: true } : {}),
    seed: flags.seed,
    outDir: out,
    resume: !!flags.resume,
    ...(flags.init !== undefined ? { init: modelPathOrPretrained(flags.init) } : {}),
    ...(flags.ema !== undefined ? { weightAverage: flags.ema } : {}),
  };
  // The data are recorded in the checkpoint; a resumed run reads the same data.
  const recorded = flags.resume ? readTrainingState(out).options.data : undefined;
  await setupBackend(flags);
  // Decoded pictures are kept beside the run (absolute paths, so a resumed run finds them from anywhere).
  options.data = recorded ?? trainingDataSpec(flags.data !== undefined ? { ...flags, data: resolve(flags.data), 'cache-dir': resolve(flags['cache-dir'] ?? join(out, DATA_CACHE_DIR)) } : flags);
  const trainData = await loadData(options.data, 'train', loadOptions(flags));
  const testData = await loadData(options.data, 'test', loadOptions(flags));
  if (trainData.skipped?.length && !flags.json) process.stderr.write(`left out ${trainData.skipped.length} files that cannot be decoded (recorded in the model's metadata)\n`);
  // The model takes the dataset's image size, channels and classes (36x36 MultiMNIST, 40x40 affine MNIST, ...).
  overrides.inputShape = [trainData.height, trainData.width, trainData.channels];
  overrides.numClasses = trainData.numClasses;

  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write('\ninterrupt: finishing this step and saving a checkpoint (Ctrl-C again to quit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  try {
    const stopAtError = flags['stop-at-error'] !== undefined ? flags['stop-at-error'] / 100 : undefined;
    if (flags['check-every'] !== undefined && stopAtError === undefined) throw new UsageError('--check-every goes with --stop-at-error');
    const result = await train(options, { train: trainData, test: testData }, {
      progress: flags.progress && !flags.json,
      signal: controller.signal,
      log: flags.json ? () => {} : undefined,
      stopAtError,
      checkEvery: flags['check-every'],
    }).catch((e: Error) => {
      // A layer's kernel larger than what is left of the image: name the image size and the way out.
      if (/does not fit/.test(e.message)) throw new Error(`images of ${trainData.height}x${trainData.width} are too small for ${arch.name} preset '${preset}' (${e.message}); use a larger --image-size`);
      throw e;
    });
    const last = result.history[result.history.length - 1];
    report(
      flags,
      { outDir: out, checkpoint: result.checkpoint, interrupted: result.interrupted, reachedTarget: result.reachedTarget ?? null, epochs: result.epoch, elapsedSeconds: result.elapsedSeconds, final: last ?? null, history: result.history },
      () =>
        result.reachedTarget
          ? `reached test error ${percent(result.reachedTarget.testError)} at epoch ${result.reachedTarget.epoch}${result.reachedTarget.batch ? `, batch ${result.reachedTarget.batch}` : ' (end)'} (step ${result.reachedTarget.step}) in ${Math.round(result.elapsedSeconds)} s; model: ${out}`
          : result.interrupted
          ? `stopped after ${result.epoch} complete epochs; resume with: capsnet train --out ${out} --resume`
          : `trained ${result.epoch} epochs in ${Math.round(result.elapsedSeconds)} s; test accuracy ${last?.testAccuracy !== undefined ? percent(last.testAccuracy) : 'n/a'}; model: ${out}`,
    );
    result.model.dispose();
    return result.interrupted && !result.reachedTarget ? 130 : 0;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
}
