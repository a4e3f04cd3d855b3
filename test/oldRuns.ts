/**
 * The training runs that capsnet wrote at commit e6ac30b, before checkpoints
 * recorded a typed data description (test/fixtures/runs-e6ac30b/README.md).
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FIXTURE = new URL('../../test/fixtures/runs-e6ac30b/', import.meta.url).pathname;
/** Where the runs were written: their recorded paths (data, cache, output, --init) start with it. */
const WRITTEN_IN = '/tmp/oldfix/';

/** The runs: run-mnist (--dataset mnist) and run-photos (--data photos with --val-split), one epoch each. */
export const OLD_RUNS = ['mnist', 'photos'] as const;

/** A fresh copy of the runs, their pictures and straight-run metrics, with the recorded paths moved to the copy. */
export function copyOldRuns(): string {
  const root = mkdtempSync(join(tmpdir(), 'capsnet-e6ac30b-'));
  cpSync(FIXTURE, root, { recursive: true });
  for (const run of OLD_RUNS) {
    for (const file of ['training.json', 'model.json']) {
      const path = join(root, `run-${run}`, 'checkpoints', 'epoch-0001', file);
      writeFileSync(path, readFileSync(path, 'utf8').replaceAll(WRITTEN_IN, `${root}/`));
    }
  }
  return root;
}

/** The epoch metrics the old code wrote for `run` trained straight through two epochs. */
export function straightMetrics(root: string, run: (typeof OLD_RUNS)[number]): { epoch: number; trainLoss: number; learningRate: number; testAccuracy: number }[] {
  return readFileSync(join(root, `straight-${run}.jsonl`), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
}
