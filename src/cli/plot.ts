/**
 * capsnet plot: the learning curve of one or more training runs, test error
 * by epoch, drawn from each run's metrics.jsonl (what `capsnet train` writes
 * after every epoch) into one PNG.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writePng } from '../util/imageFiles.js';
import { renderPanels, type Series } from '../util/plot.js';
import { commandSpec, UsageError, type ArgsOf } from './args.js';
import { report } from './common.js';

export const plotSpec = commandSpec({
  name: 'plot',
  summary: 'Draw the learning curves (test error by epoch) of training runs into a PNG.',
  description: 'Reads RUN/metrics.jsonl of each training directory (or a metrics.jsonl file itself) and draws one curve per run.',
  positionals: [{ name: 'RUN', help: 'training directory (or its metrics.jsonl); several compare runs', required: true, variadic: true }],
  flags: [
    { name: 'out', type: 'string', arg: 'FILE', default: 'learning-curve.png', help: 'PNG to write' },
    { name: 'title', type: 'string', help: 'chart title [default: the run names]' },
    { name: 'target', type: 'number', min: 0, max: 100, arg: 'PERCENT', help: 'draw a dashed line at this test error, e.g. the paper\'s' },
    { name: 'max-error', type: 'number', min: 0.01, max: 100, arg: 'PERCENT', help: 'top of the error axis (points above it are drawn at the top) [default: just above the highest point]' },
    { name: 'json', type: 'boolean', help: 'print the curves as JSON' },
  ],
  examples: ['capsnet plot runs/ablation/r1-no-recon-seed1 runs/ablation/r1-recon-seed1 --target 0.45 --out docs/ablation.png'],
});

interface Curve {
  run: string;
  /** [epoch, test error in percent] for every epoch that was evaluated. */
  points: [number, number][];
}

/** The test-error curve of one run; a missing, empty or malformed file is a one-line error. */
function readCurve(path: string): Curve {
  if (!existsSync(path)) throw new Error(`${path}: no such training run (a directory holding metrics.jsonl, or the file itself)`);
  const file = statSync(path).isDirectory() ? join(path, 'metrics.jsonl') : path;
  if (!existsSync(file)) throw new Error(`${file}: no such file (a training run writes it after its first epoch)`);
  const points: [number, number][] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      let m: { epoch?: unknown; testError?: unknown };
      try {
        m = JSON.parse(line);
      } catch {
        throw new Error(`${file}:${i + 1}: not a JSON line`);
      }
      if (typeof m.epoch !== 'number') throw new Error(`${file}:${i + 1}: no epoch number`);
      if (typeof m.testError === 'number' && Number.isFinite(m.testError)) points.push([m.epoch, 100 * m.testError]);
    });
  if (points.length === 0) throw new Error(`${file}: no epoch with a test error`);
  const dir = file.endsWith('metrics.jsonl') ? resolve(file, '..') : resolve(file);
  return { run: basename(dir), points };
}

export async function runPlot({ flags, positionals }: ArgsOf<typeof plotSpec>): Promise<number> {
  if (positionals.length === 0) throw new UsageError("'plot' needs RUN");
  const curves = positionals.map(readCurve);
  const series: Series[] = curves.map((c) => ({ name: c.run, points: c.points }));
  const target = flags.target;
  const highest = Math.max(...curves.flatMap((c) => c.points.map((p) => p[1])), target ?? 0);
  const out = flags.out;
  writePng(
    out,
    renderPanels(
      [
        {
          title: flags.title ?? curves.map((c) => c.run).join(', '),
          xLabel: 'epoch',
          yLabel: 'test error (%)',
          series,
          // Room above the highest point, so a first epoch's error does not sit on the frame;
          // --max-error cuts the axis lower, for curves whose first epochs dwarf the rest.
          yRange: [0, flags['max-error'] ?? highest * 1.1],
          ...(target !== undefined ? { reference: { y: target, label: `target ${target}%` } } : {}),
        },
      ],
      1,
      { panelWidth: 720, panelHeight: 420 },
    ),
  );
  report(flags, { out, curves }, () =>
    [...curves.map((c) => `${c.run}: ${c.points.length} epochs, test error ${c.points[c.points.length - 1][1].toFixed(2)}% after epoch ${c.points[c.points.length - 1][0]}`), `wrote ${out}`].join('\n'),
  );
  return 0;
}
