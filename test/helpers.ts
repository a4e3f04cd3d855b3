/**
 * Test helpers: run a case on every tfjs backend available in Node, and
 * compare arrays with a relative tolerance.
 */
import * as tf from '@tensorflow/tfjs';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { availableBackends, useBackend } from '../src/backend/node.js';

/** Backends every numeric test runs on: native when built, then wasm and cpu. */
export async function testBackends(): Promise<string[]> {
  const names = await availableBackends();
  const only = process.env.CAPSNET_TEST_BACKENDS;
  return only ? names.filter((n) => only.split(',').includes(n)) : names;
}

/** Register `name [backend]`: `fn` runs with that backend active; `skip` gives the reason it cannot. */
export function testOnBackend(name: string, backend: string, fn: (t: TestContext) => void | Promise<void>, skip: string | false = false): void {
  test(`${name} [${backend}]`, { skip }, async (t) => {
    await useBackend(backend);
    // Tensors the case creates are released with the scope; leaks are
    // checked by the dedicated memory tests.
    tf.engine().startScope();
    try {
      await fn(t);
    } finally {
      tf.engine().endScope();
    }
  });
}

/** Register `name` once per backend; `fn` runs with that backend active. */
export async function testEachBackend(name: string, fn: (t: TestContext, backend: string) => void | Promise<void>): Promise<void> {
  for (const backend of await testBackends()) testOnBackend(name, backend, (t) => fn(t, backend));
}

/**
 * Assert |actual - expected| <= rtol * max(|expected|, floor) elementwise,
 * where floor (default: atol / rtol) keeps near-zero entries from demanding
 * impossible relative precision in float32.
 */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, opts: { rtol?: number; atol?: number; what?: string } = {}): void {
  const { rtol = 1e-4, atol = 1e-6, what = 'values' } = opts;
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (!Number.isFinite(a)) assert.fail(`${what}[${i}] is ${a}, expected ${e}`);
    const err = Math.abs(a - e) / (rtol * Math.abs(e) + atol);
    if (err > worst) {
      worst = err;
      worstAt = i;
    }
  }
  if (worst > 1) {
    assert.fail(`${what}[${worstAt}] = ${actual[worstAt]}, expected ${expected[worstAt]} (rtol ${rtol}, atol ${atol})`);
  }
}

/** A squash case of a float64 fixture: s of `shape`, its squash v, and the gradient of sum(v * upstream) with respect to s. */
export interface SquashFixtureCase {
  shape: number[];
  s: number[];
  v: number[];
  upstream: number[];
  grad_s: number[];
}

/** Checks a squash (along the last axis) against fixture cases: its values, and its gradient through tfjs's tape. */
export function assertSquashFixture(name: string, squashFn: (s: tf.Tensor) => tf.Tensor, cases: readonly SquashFixtureCase[], tol: { rtol: number; atol: number }): void {
  for (const c of cases) {
    const s = tf.tensor(c.s, c.shape);
    const up = tf.tensor(c.upstream, c.shape);
    const v = squashFn(s);
    assertClose(v.dataSync(), c.v, { ...tol, what: `${name} v ${c.shape}` });
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(squashFn(x), up)))(s);
    assertClose(g.dataSync(), c.grad_s, { ...tol, what: `${name} grad ${c.shape}` });
    tf.dispose([s, up, v, g]);
  }
}
