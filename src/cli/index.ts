/**
 * The `capsnet` command: dispatches to one module per command. Errors are one
 * line on stderr with a non-zero exit (2 for usage errors).
 */
import { formatHelp, parseArgs, UsageError, type CommandSpec, type ParsedArgs } from './args.js';
import { ablationSpec, runAblation } from './ablation.js';
import { attackSpec, runAttack } from './attack.js';
import { evalSpec, runEval } from './eval.js';
import { exportSpec, runExport } from './export.js';
import { infoSpec, runInfo } from './info.js';
import { perturbSpec, runPerturb } from './perturb.js';
import { plotSpec, runPlot } from './plot.js';
import { predictSpec, runPredict } from './predict.js';
import { reconstructSpec, runReconstruct } from './reconstruct.js';
import { runTrain, trainSpec } from './train.js';
import { runViewpoints, viewpointsSpec } from './viewpoints.js';
import { runViz, vizSpec } from './viz.js';

interface Command {
  spec: CommandSpec;
  run(args: ParsedArgs): Promise<number>;
}

const COMMANDS: Command[] = [
  { spec: trainSpec, run: runTrain },
  { spec: evalSpec, run: runEval },
  { spec: predictSpec, run: runPredict },
  { spec: reconstructSpec, run: runReconstruct },
  { spec: perturbSpec, run: runPerturb },
  { spec: ablationSpec, run: runAblation },
  { spec: attackSpec, run: runAttack },
  { spec: viewpointsSpec, run: runViewpoints },
  { spec: exportSpec, run: runExport },
  { spec: plotSpec, run: runPlot },
  { spec: infoSpec, run: runInfo },
  { spec: vizSpec, run: runViz },
];

function usage(): string {
  return [
    'capsnet: capsule networks in TypeScript',
    '',
    'usage: capsnet <command> [flags]',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.spec.name.padEnd(12)} ${c.spec.summary}`),
    '',
    'In every command --model names a saved model (a model directory, model.json, a training run or a shipped name)',
    'and --arch an architecture (capsnet, cnn, em).',
    '',
    'Run capsnet <command> --help for the flags of a command.',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const cmd = COMMANDS.find((c) => c.spec.name === name);
  if (!cmd) {
    process.stderr.write(`capsnet: unknown command '${name}' (commands: ${COMMANDS.map((c) => c.spec.name).join(', ')})\n`);
    return 2;
  }
  try {
    const args = parseArgs(cmd.spec, rest);
    if (args.help) {
      process.stdout.write(`${formatHelp(cmd.spec)}\n`);
      return 0;
    }
    return await cmd.run(args);
  } catch (e) {
    const err = e as Error;
    const msg = (err?.message ?? String(e)).split('\n')[0];
    process.stderr.write(`capsnet ${name}: error: ${msg}\n`);
    if (process.env.CAPSNET_DEBUG) process.stderr.write(`${err?.stack}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
