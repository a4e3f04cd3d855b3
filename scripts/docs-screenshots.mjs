#!/usr/bin/env node
/**
 * Makes the Train panel screenshots of docs/visualizer.md:
 * docs/visualizer-train-desktop.png (a 1280-wide window: the panel and the
 * first views) and docs/visualizer-train-phone.png (the panel on a 390x844
 * phone). Run with `npm run docs:screenshots` (it compiles first).
 *
 * It builds the visualizer when dist/viz/ is missing or older than its
 * sources (as `capsnet viz` does), serves it with the visualizer's own
 * server on a free port, and opens it in headless Chromium (the browser
 * tests' executable and flags; CAPSNET_CHROMIUM names another) with the
 * Train panel training the small CapsNet on wasm for one epoch of 1,000
 * images (about half a minute), so that the curves show a trend and the
 * views show a model that recognises digits; it waits for the views to
 * follow the final weights and takes the pictures. Any error the page reports ends it with a one-line message and
 * a non-zero exit status.
 */
import { mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { chromium } from 'playwright-core';
import { PACKAGE_ROOT } from '../dist/src/models/pretrained.js';
import { DEFAULT_VIZ_OUT, ensureVizBuilt } from '../dist/src/viz/build.js';
import { startVizServer } from '../dist/src/viz/server.js';
import { CHROMIUM, CHROMIUM_ARGS, openGuardedPage, pageErrors } from '../dist/test/vizHelpers.js';

const DOCS = join(PACKAGE_ROOT, 'docs');
/**
 * The page's setup (src/viz/app/url.ts and train.ts read it): a short
 * training, so that the screenshots show an epoch under way within seconds.
 */
const QUERY = '?train=1&arch=capsnet&preset=small&dataset=mnist&train-limit=1000&test-limit=200&epochs=1&batch-size=32&backend=wasm';
/** Steps and test-accuracy checks to wait for before pausing: the whole epoch (1,000 / 32 = 32 steps, 4 checks). */
const MIN_STEPS = 32;
const MIN_CHECKS = 4;
const TIMEOUT_MS = 300_000;

/** The page's error, from its error box, window.capsviz or an uncaught exception; null when there is none. */
async function pageError(page) {
  const shown = await page.evaluate(() => {
    const box = document.getElementById('error');
    return (box && !box.hidden && box.textContent?.trim()) || window.capsviz?.error || null;
  });
  return shown ?? pageErrors(page)[0] ?? null;
}

async function failOnPageError(page, what) {
  const error = await pageError(page);
  if (error) throw new Error(`the page (${what}) reports: ${error.split('\n')[0]}`);
}

/**
 * Opens the page, lets the Train panel train until both curves show
 * something (or the epoch ends), pauses it and waits for the views to
 * redraw. Returns the open page.
 */
async function trainedPage(browser, serverUrl, what, options) {
  const page = await openGuardedPage(browser, serverUrl, serverUrl + QUERY, options);
  await page.waitForFunction(
    ([steps, checks]) => {
      if (!document.getElementById('error').hidden) return true;
      const train = window.capsviz?.train;
      return !!train && (train.state === 'done' || (train.losses.length >= steps && train.checks.length >= checks));
    },
    [MIN_STEPS, MIN_CHECKS],
    { timeout: TIMEOUT_MS, polling: 250 },
  );
  await failOnPageError(page, what);
  if ((await page.evaluate(() => window.capsviz.train.state)) === 'running') {
    await page.click('#train-run');
    await page.waitForFunction(() => ['paused', 'done'].includes(document.getElementById('view-train').dataset.trainState) || !document.getElementById('error').hidden, null, { timeout: TIMEOUT_MS });
  }
  await page.evaluate(() => window.capsviz.idle());
  await failOnPageError(page, what);
  return page;
}

/** The screenshots; returns the files written. */
async function screenshots(serverUrl) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const written = [];
  try {
    // Desktop: from the top of the page down to the formula boxes of the first row of views
    // (the whole first row when it has none), so that the Input card's long list of test images is cut.
    const desktop = await trainedPage(browser, serverUrl, 'desktop', { viewport: { width: 1280, height: 1000 } });
    const bottom = await desktop.evaluate(() => {
      const visible = (e) => e.getClientRects().length > 0;
      const views = [...document.querySelectorAll('#main > section.card:not(#view-train)')].filter(visible);
      const firstTop = Math.min(...views.map((v) => v.getBoundingClientRect().top));
      const firstRow = views.filter((v) => v.getBoundingClientRect().top - firstTop < 2);
      const references = firstRow.flatMap((v) => [...v.querySelectorAll('.reference')].filter(visible));
      const ends = (references.length ? references : firstRow).map((e) => e.getBoundingClientRect().bottom);
      return Math.ceil(Math.max(document.getElementById('view-train').getBoundingClientRect().bottom, ...ends) + window.scrollY + 24);
    });
    const desktopFile = join(DOCS, 'visualizer-train-desktop.png');
    await desktop.screenshot({ path: desktopFile, fullPage: true, clip: { x: 0, y: 0, width: 1280, height: Math.min(bottom, 2400) } });
    written.push(desktopFile);
    await desktop.close();

    // Phone: the Train panel, its settings stacked above the curves.
    const phone = await trainedPage(browser, serverUrl, 'phone', { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const phoneFile = join(DOCS, 'visualizer-train-phone.png');
    await phone.locator('#view-train').screenshot({ path: phoneFile });
    written.push(phoneFile);
    await phone.close();
  } finally {
    await browser.close();
  }
  return written;
}

async function main() {
  mkdirSync(DOCS, { recursive: true });
  const { built, outDir } = await ensureVizBuilt(DEFAULT_VIZ_OUT);
  if (built) process.stdout.write(`built the visualizer into ${relative(process.cwd(), outDir) || '.'}/\n`);
  const server = await startVizServer({ root: outDir });
  try {
    for (const file of await screenshots(server.url)) process.stdout.write(`wrote ${relative(process.cwd(), file)}\n`);
  } finally {
    await server.close();
  }
}

main().catch((e) => {
  process.stderr.write(`docs:screenshots: error: ${String(e?.message ?? e).split('\n')[0]}\n`);
  process.exitCode = 1;
});
