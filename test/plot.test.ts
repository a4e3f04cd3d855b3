/**
 * The line-chart writer (util/plot.ts) that draws the attack figures: each
 * series where its points put it, a legend, axes and text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PALETTE, renderPanels } from '../src/util/plot.js';

test('line charts: each series is drawn where its points are, with a legend, axes and text', () => {
  const height = 150;
  const img = renderPanels([{ title: 'FGSM', xLabel: 'EPSILON', yLabel: 'ACCURACY', reference: { y: 0.1, label: 'CHANCE' }, series: [{ name: 'A', points: [[0, 1], [0.3, 0]] }, { name: 'B', points: [[0, 0.5], [0.3, 0.5]] }] }], 1, { panelWidth: 200, panelHeight: height, scale: 1 });
  assert.equal(img.width, 200);
  assert.ok(img.height > height, 'a legend below the panel');
  const pixelsOf = ([r0, g0, b0]: number[], inPanel: boolean): [number, number][] => {
    const out: [number, number][] = [];
    for (let y = 0; y < img.height; y++) {
      if (y < height !== inPanel) continue;
      for (let x = 0; x < img.width; x++) {
        const i = 3 * (y * img.width + x);
        if (Math.abs(img.data[i] - r0) < 0.02 && Math.abs(img.data[i + 1] - g0) < 0.02 && Math.abs(img.data[i + 2] - b0) < 0.02) out.push([x, y]);
      }
    }
    return out;
  };
  const [red, blue] = [pixelsOf(PALETTE[0], true), pixelsOf(PALETTE[1], true)];
  // A falls from accuracy 1 at the left to 0 at the right: its pixels span
  // most of the plot, and lower ones lie further right.
  const xs = red.map((p) => p[0]);
  const ys = red.map((p) => p[1]);
  assert.ok(Math.max(...xs) - Math.min(...xs) > 100 && Math.max(...ys) - Math.min(...ys) > 80, `A spans the plot (${red.length} px)`);
  const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
  const [mx, my] = [mean(xs), mean(ys)];
  const cov = red.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const sd = Math.sqrt(red.reduce((s, [x]) => s + (x - mx) ** 2, 0) * red.reduce((s, [, y]) => s + (y - my) ** 2, 0));
  assert.ok(cov / sd > 0.95, `A is one falling line (correlation ${(cov / sd).toFixed(3)})`);
  // B is flat at 0.5: one band of rows, halfway between the two ends of A.
  const blueRows = new Set(blue.map((p) => p[1]));
  assert.ok(blue.length > 100 && blueRows.size <= 6, `B is one horizontal line (${blueRows.size} rows)`);
  const blueY = mean(blue.map((p) => p[1]));
  assert.ok(Math.abs(blueY - (Math.min(...ys) + Math.max(...ys)) / 2) < 4, `B (row ${blueY.toFixed(1)}) sits at half of A's height`);
  // The legend shows both colours; axes and text are black.
  assert.ok(pixelsOf(PALETTE[0], false).length > 20 && pixelsOf(PALETTE[1], false).length > 20, 'both series in the legend');
  assert.ok(pixelsOf([0, 0, 0], true).length > 300, 'axes and text are drawn');
});
