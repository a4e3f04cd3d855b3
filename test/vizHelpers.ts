/** Shared pieces of the visualizer's browser tests. */
import { join } from 'node:path';
import type { Browser, BrowserContextOptions, Page } from 'playwright-core';
import { PACKAGE_ROOT } from '../src/models/pretrained.js';

export const CHROMIUM = process.env.CAPSNET_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];
/** WebGPU on the CPU (SwiftShader's Vulkan), where the machine has no GPU: slow, but the real WebGPU backend. */
export const WEBGPU_ARGS = ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader'];
/** Screenshots and measurements, for people to look at (gitignored). */
export const ARTIFACTS = join(PACKAGE_ROOT, 'test-artifacts', 'viz');

/** What the page exposes as window.capsviz. */
export interface VizPageApi {
  state: string;
  error: string | null;
  backend: string;
  iteration: number;
  prediction: { label: number; scores: number[]; source: string } | null;
  latencies: number[];
  decodeTimes: number[];
  idle(): Promise<void>;
  scoresFor(images: number[], n: number): Promise<number[]>;
  /** The Train panel: its state, the loss of every step, its test-accuracy checks. */
  train: {
    state: string;
    epoch: number;
    testAccuracy: number | null;
    losses: number[];
    checks: { epochs: number; step: number; accuracy: number; correct: number; count: number }[];
    imagesPerSecond: number | null;
    backend: string;
  };
}

declare global {
  interface Window {
    capsviz: VizPageApi;
  }
}

/**
 * Opens `url` in a new page of `browser` whose uncaught errors, and any
 * request to an origin other than `origin` (which is refused), are collected
 * for pageErrors(): the page must work offline, from its own server only.
 */
export async function openGuardedPage(browser: Browser, origin: string, url: string, options: BrowserContextOptions = {}): Promise<Page> {
  const page = await browser.newPage(options);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.route((u) => !u.href.startsWith(origin), (route) => {
    errors.push(`request to another origin: ${route.request().url()}`);
    return route.abort();
  });
  (page as Page & { errors: string[] }).errors = errors;
  await page.goto(url);
  return page;
}

/** The errors openGuardedPage collected on `page`. */
export function pageErrors(page: Page): string[] {
  return (page as Page & { errors: string[] }).errors;
}

/** A canvas's RGBA bytes. */
export async function canvasPixels(page: Page, selector: string): Promise<number[]> {
  return page.$eval(selector, (c) => {
    const canvas = c as HTMLCanvasElement;
    return Array.from(canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data);
  });
}
