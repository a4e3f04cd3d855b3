/**
 * Training speed in the browser: images per second of the visualizer's
 * Train panel (the library's training step in the page's Web Worker) on
 * each tfjs backend the page can use, WebGPU, WebGL and wasm, in Chromium.
 * Each backend trains the small CapsNet on MNIST batches: one warm-up step
 * (shader compilation, allocation), then --steps timed steps.
 *
 *   npm run bench:browser [-- --backends webgpu,webgl,wasm] [-- --steps 3] [-- --batch 32] [-- --arch capsnet --preset small] [-- --gpu]
 *
 * Without --gpu, Chromium runs as the browser tests run it (--disable-gpu):
 * WebGL and WebGPU are then drawn by SwiftShader on the CPU, and the table
 * says so. --gpu lets Chromium use the machine's GPU (Vulkan for WebGPU and
 * WebGL through ANGLE); the table names the adapter it got. Chromium is
 * /usr/bin/chromium, or CAPSNET_CHROMIUM.
 */
import os from 'node:os';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { buildViz } from '../src/viz/build.js';
import { startVizServer } from '../src/viz/server.js';

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

const backends = option('backends', 'webgpu,webgl,wasm').split(',');
const steps = Number(option('steps', '3'));
const batchSize = Number(option('batch', '32'));
const arch = option('arch', 'capsnet');
const preset = option('preset', 'small');
const gpu = process.argv.includes('--gpu');
const executablePath = process.env.CAPSNET_CHROMIUM ?? '/usr/bin/chromium';

const BASE_ARGS = ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--enable-unsafe-webgpu'];
/** As the browser tests run: no GPU; WebGPU on SwiftShader's Vulkan. */
const CPU_ARGS = ['--disable-gpu', '--use-webgpu-adapter=swiftshader'];
/** The machine's GPU: Vulkan for WebGPU, ANGLE on Vulkan for WebGL, headless. */
const GPU_ARGS = ['--ignore-gpu-blocklist', '--enable-features=Vulkan', '--use-angle=vulkan', '--enable-gpu-rasterization'];

interface Row {
  backend: string;
  imagesPerSecond: number | null;
  medianStepMs: number | null;
  device: string;
  error?: string;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const built = await buildViz({ outDir: join(mkdtempSync(join(tmpdir(), 'capsnet-browser-bench-')), 'viz') });
  const server = await startVizServer({ root: built.outDir });
  const browser = await chromium.launch({ executablePath, args: [...BASE_ARGS, ...(gpu ? GPU_ARGS : CPU_ARGS)] });
  const rows: Row[] = [];
  try {
    for (const backend of backends) {
      const page = await browser.newPage();
      try {
        await page.goto(`${server.url}?backend=${backend}`);
        await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: 120_000 });
        const chosen = await page.evaluate(() => (window as unknown as { capsviz: { backendChoice: { backend: string; softwareRenderer?: string } | null } }).capsviz.backendChoice);
        if (!chosen || chosen.backend !== backend) throw new Error(`the page could not start ${backend}`);
        const r = await page.evaluate(
          (o) => (window as unknown as { capsviz: { bench(o: unknown): Promise<{ imagesPerSecond: number; stepMs: number[] }> } }).capsviz.bench(o),
          { arch, preset, batchSize, steps },
        );
        const sorted = [...r.stepMs].sort((a, b) => a - b);
        const device = chosen.softwareRenderer ? `software: ${chosen.softwareRenderer}` : backend === 'wasm' ? `CPU (wasm, ${os.cpus().length} cores)` : 'GPU';
        rows.push({ backend, imagesPerSecond: r.imagesPerSecond, medianStepMs: sorted[sorted.length >> 1], device });
      } catch (e) {
        rows.push({ backend, imagesPerSecond: null, medianStepMs: null, device: '', error: (e as Error).message.split('\n')[0] });
      } finally {
        await page.close();
      }
    }
  } finally {
    await browser.close();
    await server.close();
  }
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  console.log(`browser training: ${arch} (${preset} preset), batches of ${batchSize} MNIST images, ${steps} timed steps after 1 warm-up, in ${executablePath}${gpu ? ' with the GPU' : ' without a GPU (--disable-gpu)'}`);
  console.log(`machine: ${cpu}, ${os.cpus().length} cores; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log('');
  console.log(`${'backend'.padEnd(8)} ${'images/s'.padStart(9)} ${'step ms'.padStart(9)}  device`);
  for (const r of rows) {
    console.log(r.error ? `${r.backend.padEnd(8)} ${'-'.padStart(9)} ${'-'.padStart(9)}  ${r.error}` : `${r.backend.padEnd(8)} ${r.imagesPerSecond!.toFixed(2).padStart(9)} ${r.medianStepMs!.toFixed(0).padStart(9)}  ${r.device}`);
  }
  if (rows.some((r) => r.device.startsWith('software') || r.backend === 'wasm')) {
    console.log('');
    console.log('These are CPU figures: wasm runs on the CPU, and without a GPU SwiftShader draws WebGL and WebGPU on the CPU too. Run with --gpu on a machine with a GPU for GPU figures.');
  }
  console.log(`(${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}

main().catch((e: Error) => {
  process.stderr.write(`bench:browser: error: ${e.message.split('\n')[0]}\n`);
  process.exitCode = 1;
});
