/**
 * A node:test reporter that ends the run with how many tests were skipped
 * and why (grouped by reason), so that a run which quietly skipped the native
 * engine's, the browser's or a dataset's tests says so in its last lines.
 * Used beside the TAP reporter by `npm test`:
 *
 *   node --test --test-reporter=tap --test-reporter-destination=stdout \
 *     --test-reporter=./scripts/skip-summary.mjs --test-reporter-destination=stdout ...
 */
export default async function* skipSummary(source) {
  const reasons = new Map();
  let skipped = 0;
  for await (const event of source) {
    if (event.type !== 'test:pass' || event.data.skip === undefined || event.data.skip === false) continue;
    skipped++;
    const why = typeof event.data.skip === 'string' && event.data.skip ? event.data.skip : 'no reason given';
    reasons.set(why, (reasons.get(why) ?? 0) + 1);
  }
  if (skipped === 0) {
    yield 'capsnet tests: nothing skipped\n';
    return;
  }
  yield `capsnet tests: ${skipped} skipped\n`;
  for (const [why, n] of [...reasons].sort((a, b) => b[1] - a[1])) yield `  ${String(n).padStart(4)} ${why}\n`;
  yield 'capsnet tests: see "Quick start" in the README for what each needs\n';
}
