/** capsnet info: layers, output shapes, parameter counts, and the active backend. */
import { describeBackend } from '../backend/node.js';
import type { ClassifierModel } from '../models/model.js';
import { listPretrained } from '../models/pretrained.js';
import { createModel, getArchitecture } from '../models/registry.js';
import { estimateTrainingMemory, formatBytes } from '../training/memoryEstimate.js';
import { ARCHITECTURE_LIST, commandSpec, PRESET_LIST, presetDefaults, COMMON_FLAGS, UsageError, type ArgsOf } from './args.js';
import { loadModelFromFlags, report, setupBackend } from './common.js';

export const infoSpec = commandSpec({
  name: 'info',
  summary: 'Show a model\'s layers, output shapes and parameter counts, and the active tfjs backend.',
  description: 'Describes a saved model (--model, --pretrained) or a fresh one built from --arch and --preset. `--pretrained list` lists the shipped models.',
  flags: [
    // No default here, so that an --arch given with a saved model can be checked against it.
    { ...COMMON_FLAGS.arch, default: undefined, help: `architecture (${ARCHITECTURE_LIST}) of a fresh model [default: capsnet]; with --model, if given, it must match the saved one` },
    { name: 'preset', type: 'string', help: `preset of --arch (${PRESET_LIST}) [default: ${presetDefaults('default')}]` },
    { name: 'image-size', type: 'int', min: 1, arg: 'N', help: 'build the preset for NxN inputs [default: the preset\'s]' },
    { name: 'channels', type: 'string', choices: ['1', '3'], help: 'build the preset for gray (1) or colour (3) inputs [default: the preset\'s]' },
    { name: 'classes', type: 'int', min: 2, help: 'build the preset for this many classes [default: the preset\'s]' },
    { name: 'memory', type: 'boolean', help: 'also measure the tensor memory of one training step (--batch-size images)' },
    COMMON_FLAGS.batchSize,
    COMMON_FLAGS.model,
    COMMON_FLAGS.pretrained,
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet info --preset paper', 'capsnet info --arch em --preset paper --image-size 64 --channels 3 --memory --batch-size 16', 'capsnet info --model runs/capsnet-small-mnist', 'capsnet info --pretrained list'],
  renamed: { type: `give the architecture with --arch (${ARCHITECTURE_LIST})` },
});

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

export async function runInfo({ flags }: ArgsOf<typeof infoSpec>): Promise<number> {
  const backend = await setupBackend({ ...flags, quiet: true });
  if (flags.pretrained === 'list') {
    const list = listPretrained();
    report(flags, { pretrained: list }, () => list.map((p) => `${p.name.padEnd(16)} ${p.available ? '' : '(not in this copy) '}${p.description}`).join('\n'));
    return 0;
  }
  let model: ClassifierModel;
  let source: string;
  const arch = flags.arch ?? 'capsnet';
  if (flags.model || flags.pretrained) {
    const loaded = loadModelFromFlags(flags);
    model = loaded.model;
    source = loaded.dir;
    if (flags['image-size'] !== undefined || flags.channels !== undefined || flags.classes !== undefined) throw new UsageError('--image-size, --channels and --classes build a preset; a saved model has its own input');
    if (flags.arch !== undefined && flags.arch !== model.modelType) {
      model.dispose();
      throw new UsageError(`--arch ${flags.arch} does not match ${source}, which is ${model.modelType}; leave --arch out to describe a saved model`);
    }
  } else {
    const preset = flags.preset ?? getArchitecture(arch).defaultPreset;
    const base = createModel(arch, preset);
    const [h, w, c] = base.inputShape;
    const n = flags['image-size'];
    const inputShape = [n ?? h, n ?? w, flags.channels !== undefined ? Number(flags.channels) : c];
    const numClasses = flags.classes ?? base.numClasses;
    base.dispose();
    try {
      model = createModel(arch, preset, { inputShape, numClasses });
    } catch (e) {
      throw new Error(`${arch} preset '${preset}' cannot take ${inputShape.join('x')} inputs: ${(e as Error).message}`);
    }
    source = `${arch} preset '${preset}'`;
  }
  const memory = flags.memory ? await estimateTrainingMemory(model, flags['batch-size']) : undefined;
  const layers = model.summary();
  const total = model.countParams();
  // What papers quote: the classifier without its reconstruction decoder, where the model can say.
  const classifier = model.countClassifierParams?.();
  // Saved values that training does not fit by gradient (batch norm's moving statistics).
  const state = model.params.filter((p) => !p.value.trainable).reduce((n, p) => n + p.value.size, 0);
  const counts = { trainableParams: total, ...(classifier !== undefined ? { classifierParams: classifier } : {}), ...(state > 0 ? { nonTrainableParams: state } : {}) };
  report(flags, { model: source, modelType: model.modelType, inputShape: model.inputShape, numClasses: model.numClasses, layers, ...counts, ...(memory ? { trainingMemory: memory } : {}), config: model.getConfig(), backend }, () => {
    const shape = (l: (typeof layers)[number]) => `[${l.outputShape.map((d) => d ?? 'batch').join(', ')}]`;
    const w = [Math.max(5, ...layers.map((l) => l.name.length)), Math.max(5, ...layers.map((l) => l.className.length)), Math.max(12, ...layers.map((l) => shape(l).length))];
    const line = (a: string, b: string, c: string, d: string) => `${a.padEnd(w[0])}  ${b.padEnd(w[1])}  ${c.padEnd(w[2])}  ${d.padStart(12)}`;
    const rows = layers.map((l) => line(l.name, l.className, shape(l), fmt(l.params)));
    return [
      `${source}: input ${model.inputShape.join('x')}, ${model.numClasses} classes`,
      '',
      line('layer', 'class', 'output shape', 'parameters'),
      ...rows,
      '',
      `trainable parameters: ${fmt(total)}${classifier !== undefined ? ` (${fmt(classifier)} without the decoder)` : ''}${state > 0 ? `, plus ${fmt(state)} non-trainable (moving statistics)` : ''}`,
      ...(memory
        ? [
            `training memory, batch ${memory.batchSize} (tensors, measured on one step): ${formatBytes(memory.totalBytes)} = weights ${formatBytes(memory.weightBytes)} + Adam ${formatBytes(memory.optimizerBytes)} + step ${formatBytes(memory.stepFixedBytes)} + ${formatBytes(memory.stepPerExampleBytes)} per image`,
          ]
        : []),
      describeBackend(backend),
    ].join('\n');
  });
  model.dispose();
  return 0;
}
