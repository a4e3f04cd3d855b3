/**
 * What every registered architecture shows of itself (models/inspection.ts),
 * checked on real MNIST test images: `inspect` gives exactly the parts its
 * layout declares, with the declared shapes; its scores are `forward`'s;
 * primary capsule lengths are the vectors' lengths; the last routing
 * iteration's scores and the class capsule vectors' lengths are the scores;
 * and nothing leaks. The visualizer relies on this contract alone.
 */
import * as tf from '@tensorflow/tfjs';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initBackend } from '../src/backend/node.js';
import { makeBatch, sequentialOrder } from '../src/data/batches.js';
import { loadMnist } from '../src/data/mnist.js';
import '../src/models/index.js';
import type { Inspection, InspectionLayout } from '../src/models/inspection.js';
import { architectureNames, createModel, getArchitecture } from '../src/models/registry.js';
import { assertClose } from './helpers.js';

await initBackend();

const BATCH = 3;
const images = makeBatch(loadMnist('test'), sequentialOrder(BATCH)).x;

function values(t: tf.Tensor): Float32Array {
  return t.dataSync() as Float32Array;
}

/** Euclidean length of each `dim`-long row of `v`. */
function rowLengths(v: Float32Array, dim: number): Float32Array {
  return Float32Array.from({ length: v.length / dim }, (_, i) => Math.hypot(...v.subarray(i * dim, (i + 1) * dim)));
}

/** The parts of a layout and of an inspection, by name: they must be the same. */
function declaredParts(layout: InspectionLayout): string[] {
  return (['featureMaps', 'primaryCapsules', 'capsuleLayers', 'routing', 'classCapsules'] as const).filter((k) => layout[k] !== null);
}

function presentParts(parts: Inspection): string[] {
  return (['featureMaps', 'primaryCapsules', 'capsuleLayers', 'routing', 'classCapsules'] as const).filter((k) => parts[k] !== undefined);
}

for (const name of architectureNames()) {
  test(`${name}: inspect gives the parts its layout declares, with their shapes and the model's scores`, () => {
    const arch = getArchitecture(name);
    const preset = arch.quickPreset;
    const model = createModel(name, preset, { inputShape: [28, 28, 1], numClasses: 10 }, 3);
    try {
      const layout = model.inspection;
      const J = model.numClasses;
      assert.ok(layout.title && layout.scores.name && layout.scores.title && layout.scores.about, 'words for people');
      const x = tf.tensor4d(images, [BATCH, 28, 28, 1]);
      const expected = tf.tidy(() => values(model.forward(x).scores));
      const before = tf.memory().numTensors;
      const parts = model.inspect(x);
      try {
        assert.deepEqual(presentParts(parts), declaredParts(layout));
        assert.deepEqual(parts.scores.shape, [BATCH, J]);
        assertClose(values(parts.scores), expected, { atol: 1e-5, what: 'scores against forward' });

        const maps = layout.featureMaps;
        if (maps && parts.featureMaps) {
          assert.deepEqual(parts.featureMaps.shape, [BATCH, maps.h, maps.w, maps.channels]);
          const kernel = model.params.find((p) => p.name === `${maps.layer}/kernel`);
          assert.ok(kernel, `the maps' layer has a kernel parameter ${maps.layer}/kernel`);
          assert.deepEqual(kernel.value.shape.slice(0, 2), [maps.kernel, maps.kernel]);
          assert.equal(kernel.value.shape[3], maps.channels);
        }

        const primary = layout.primaryCapsules;
        let primaryCount = 0;
        if (primary && parts.primaryCapsules) {
          primaryCount = primary.h * primary.w * primary.types;
          assert.deepEqual(parts.primaryCapsules.vectors.shape, [BATCH, primaryCount, primary.dim]);
          assert.deepEqual(parts.primaryCapsules.lengths.shape, [BATCH, primaryCount]);
          const lengths = values(parts.primaryCapsules.lengths);
          assertClose(lengths, rowLengths(values(parts.primaryCapsules.vectors), primary.dim), { atol: 1e-5, what: 'primary capsule lengths' });
          assert.ok(lengths.every((l) => l >= 0 && l <= 1), 'primary capsule lengths lie in [0, 1]');
        }

        for (const l of parts.capsuleLayers ?? []) {
          assert.equal(l.activations.rank, 4, l.name);
          assert.ok(values(l.activations).every((a) => a >= 0 && a <= 1), `${l.name}: activations in [0, 1]`);
        }

        const routing = layout.routing;
        if (routing && parts.routing) {
          let senders: number;
          if (routing.senders === 'primary capsules') {
            assert.ok(primary, 'routing from the primary capsules needs primary capsules');
            senders = primaryCount;
            assertClose(values(parts.routing.senderWeights), values(parts.primaryCapsules!.lengths), { atol: 0, what: 'senders weighted by their lengths' });
          } else {
            const { h, w, types } = routing.senders;
            senders = h * w * types;
            const last = parts.capsuleLayers?.[parts.capsuleLayers.length - 1];
            assert.ok(last, 'routing from a capsule grid needs the capsule layers');
            assert.deepEqual(last.activations.shape, [BATCH, h, w, types], 'the senders are the last capsule layer');
            assertClose(values(parts.routing.senderWeights), values(last.activations), { atol: 0, what: 'senders weighted by their activations' });
          }
          assert.equal(parts.routing.coefficients.length, routing.iterations);
          for (const c of parts.routing.coefficients) {
            assert.deepEqual(c.shape, [BATCH, senders, J]);
            assert.ok(values(c).every(Number.isFinite));
          }
          assert.deepEqual(parts.routing.senderWeights.shape, [BATCH, senders]);
          if (parts.routing.scores) {
            assert.equal(parts.routing.scores.length, routing.iterations);
            assertClose(values(parts.routing.scores[routing.iterations - 1]), expected, { atol: 1e-5, what: "the last iteration's scores" });
          }
        }

        const caps = layout.classCapsules;
        if (caps && parts.classCapsules) {
          if (caps.form === 'vector') {
            assert.deepEqual(parts.classCapsules.shape, [BATCH, J, caps.dim]);
            // A score may be sqrt(|v|^2 + eps) (capsuleLength's guard against a zero vector's gradient), at most sqrt(1e-9) = 3.2e-5 above |v|.
            assertClose(rowLengths(values(parts.classCapsules), caps.dim), expected, { atol: 5e-5, what: 'class capsule lengths are the scores' });
            if (model.decoder) assert.equal(model.decoder.capsuleDim, caps.dim);
          } else {
            assert.deepEqual(parts.classCapsules.shape, [BATCH, J, caps.size * caps.size]);
          }
        }
      } finally {
        const held: (tf.Tensor | undefined)[] = [parts.scores, parts.featureMaps, parts.primaryCapsules?.vectors, parts.primaryCapsules?.lengths, ...(parts.capsuleLayers ?? []).map((l) => l.activations), ...(parts.routing?.coefficients ?? []), parts.routing?.senderWeights, ...(parts.routing?.scores ?? []), parts.classCapsules];
        tf.dispose(held.filter((t): t is tf.Tensor => t !== undefined));
      }
      assert.equal(tf.memory().numTensors, before, 'inspect keeps no tensor but the ones it returns');
      x.dispose();
    } finally {
      model.dispose();
    }
  });
}

test('CapsNet shows its couplings by iteration: even at iteration 1, and each iteration gives its own lengths', () => {
  // Larger transformation matrices than the preset's, so that random capsules are long enough to agree.
  const model = createModel('capsnet', 'small', { digit: { routingIterations: 3, initStddev: 1 } }, 3);
  const x = tf.tensor4d(images, [BATCH, 28, 28, 1]);
  const parts = model.inspect(x);
  try {
    // Procedure 1: b_ij starts at 0, so the first couplings are 1/J.
    assert.ok(values(parts.routing!.coefficients[0]).every((c) => Math.abs(c - 0.1) < 1e-6));
    const [first, , last] = parts.routing!.scores!.map(values);
    assert.ok(first.some((v, i) => Math.abs(v - last[i]) > 0.01 * last[i]), 'routing changes the lengths between iterations 1 and 3');
  } finally {
    tf.dispose([x, parts.scores, parts.featureMaps!, parts.primaryCapsules!.vectors, parts.primaryCapsules!.lengths, ...parts.routing!.coefficients, ...parts.routing!.scores!, parts.classCapsules!]);
    model.dispose();
  }
});
