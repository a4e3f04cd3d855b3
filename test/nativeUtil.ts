/**
 * Helpers for the native-engine tests: run a case only when the addon is
 * built, compute the same thing on two backends, and make seeded random
 * data.
 */
import * as tf from '@tensorflow/tfjs';
import type { TestContext } from 'node:test';
import { useBackend } from '../src/backend/node.js';
import { loadNativeBackend, type NativeLoadResult } from '../src/native/index.js';
import { Rng } from '../src/util/rng.js';
import { tidyRecord } from '../src/util/tidy.js';
import { testOnBackend } from './helpers.js';

export const native: NativeLoadResult = await loadNativeBackend();

/** A test that needs the native backend; skipped (with the reason) when the addon is not built. */
export function nativeTest(name: string, fn: (t: TestContext) => void | Promise<void>): void {
  testOnBackend(name, 'native', fn, native.ok ? false : `native engine unavailable: ${native.reason}`);
}

/** fn's arrays computed with `backend` active (tensors created inside are released). */
export async function on<T>(backend: string, fn: () => T): Promise<T> {
  const before = tf.getBackend();
  await useBackend(backend);
  try {
    return tidyRecord(fn);
  } finally {
    await useBackend(before);
  }
}

/** Gaussian values with standard deviation `scale`. */
export function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

export function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export { Rng };
