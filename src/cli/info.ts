/** capsnet info: layers, output shapes, parameter counts, and the active backend. */
import { describeBackend } from '../backend/node.js';
import type { ClassifierModel } from '../models/model.js';
import { listPretrained } from '../models/pretrained.js';
import { createModel } from '../models/registry.js';
import { COMMON_FLAGS, type CommandSpec, type ParsedArgs } from './args.js';
import { loadModelFromFlags, report, setupBackend } from './common.js';

export const infoSpec: CommandSpec = {
  name: 'info',
  summary: 'Show a model\'s layers, output shapes and parameter counts, and the active tfjs backend.',
  description: 'Describes a saved model (--model, --pretrained) or a fresh one built from --arch and --preset. `--pretrained list` lists the shipped models.',
  flags: [
    COMMON_FLAGS.arch,
    { name: 'preset', type: 'string', default: 'paper', help: 'preset of --arch' },
    COMMON_FLAGS.model,
    COMMON_FLAGS.pretrained,
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: ['capsnet info --preset paper', 'capsnet info --arch em --preset small', 'capsnet info --model runs/capsnet-small-mnist', 'capsnet info --pretrained list'],
  renamed: { type: 'give the architecture with --arch (capsnet, cnn, em)' },
};

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

export async function runInfo({ flags }: ParsedArgs): Promise<number> {
  const backend = await setupBackend({ ...flags, quiet: true });
  if (flags.pretrained === 'list') {
    const list = listPretrained();
    report(flags, { pretrained: list }, () => list.map((p) => `${p.name.padEnd(16)} ${p.available ? '' : '(not in this copy) '}${p.description}`).join('\n'));
    return 0;
  }
  let model: ClassifierModel;
  let source: string;
  if (flags.model || flags.pretrained) {
    const loaded = loadModelFromFlags(flags);
    model = loaded.model;
    source = loaded.dir;
  } else {
    model = createModel(flags.arch as string, flags.preset as string);
    source = `${flags.arch} preset '${flags.preset}'`;
  }
  const layers = model.summary();
  const total = model.countParams();
  report(flags, { model: source, modelType: model.modelType, inputShape: model.inputShape, numClasses: model.numClasses, layers, trainableParams: total, config: model.getConfig(), backend }, () => {
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
      `trainable parameters: ${fmt(total)}`,
      describeBackend(backend),
    ].join('\n');
  });
  model.dispose();
  return 0;
}
