/**
 * The `capsnet` command: dispatches to one module per command. Errors are one
 * line on stderr with a non-zero exit (2 for usage errors).
 */
import { ARCHITECTURE_LIST, formatHelp, parseArgs, UsageError, type CommandSpec, type FlagSpec, type FlagsOf, type ParsedArgs } from './args.js';
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
  /** Parse the arguments and run the command (or print its help): the exit code. */
  main(argv: string[]): Promise<number>;
}

/** A command: its spec, and its run function taking the flags that spec parses to. */
function command<Fs extends readonly FlagSpec[]>(spec: CommandSpec<Fs>, run: (args: ParsedArgs<FlagsOf<Fs>>) => Promise<number>): Command {
  return {
    spec,
    main: async (argv) => {
      const args = parseArgs(spec, argv);
      if (!args.help) return run(args);
      process.stdout.write(`${formatHelp(spec)}\n`);
      return 0;
    },
  };
}

const COMMANDS: Command[] = [
  command(trainSpec, runTrain),
  command(evalSpec, runEval),
  command(predictSpec, runPredict),
  command(reconstructSpec, runReconstruct),
  command(perturbSpec, runPerturb),
  command(ablationSpec, runAblation),
  command(attackSpec, runAttack),
  command(viewpointsSpec, runViewpoints),
  command(exportSpec, runExport),
  command(plotSpec, runPlot),
  command(infoSpec, runInfo),
  command(vizSpec, runViz),
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
    `and --arch an architecture (${ARCHITECTURE_LIST}).`,
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
    return await cmd.main(rest);
  } catch (e) {
    const err = e as Error;
    const msg = (err?.message ?? String(e)).split('\n')[0];
    process.stderr.write(`capsnet ${name}: error: ${msg}\n`);
    if (process.env.CAPSNET_DEBUG) process.stderr.write(`${err?.stack}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}
