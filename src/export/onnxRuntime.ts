/**
 * Running an exported file in ONNX Runtime for Node (onnxruntime-node, a
 * development dependency: the tests, the benchmark and bench/onnxEval.ts use
 * it to check exported files against capsnet's own forward pass).
 */
import type * as Ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';

export type OnnxRuntime = typeof Ort;

/** onnxruntime-node, or a clear error when it is not installed. */
export async function loadOnnxRuntime(): Promise<OnnxRuntime> {
  try {
    const mod = (await import('onnxruntime-node')) as OnnxRuntime & { default?: OnnxRuntime };
    return mod.default ?? mod;
  } catch {
    throw new Error('onnxruntime-node is not installed (it is a development dependency: npm install --include=dev)');
  }
}

/** The metadata_props of an ONNX file, read with the same schema that wrote them. */
export function onnxFileMetadata(bytes: Uint8Array): Record<string, string> {
  const model = onnxProto.onnx.ModelProto.decode(bytes);
  return Object.fromEntries(model.metadataProps.map((p) => [p.key ?? '', p.value ?? '']));
}

/**
 * Run `session` on `count` images [count, h, w, c] (floats) in batches;
 * returns every output, concatenated over the batches.
 */
export async function runOnnxBatches(ort: OnnxRuntime, session: Ort.InferenceSession, images: Float32Array, count: number, inputShape: [number, number, number], batchSize = 100): Promise<Record<string, Float32Array>> {
  const per = inputShape[0] * inputShape[1] * inputShape[2];
  const parts: Record<string, Float32Array[]> = {};
  for (let start = 0; start < count; start += batchSize) {
    const n = Math.min(batchSize, count - start);
    const feeds = { image: new ort.Tensor('float32', images.subarray(start * per, (start + n) * per), [n, ...inputShape]) };
    const out = await session.run(feeds);
    for (const [name, t] of Object.entries(out)) (parts[name] ??= []).push(t.data as Float32Array);
  }
  const result: Record<string, Float32Array> = {};
  for (const [name, list] of Object.entries(parts)) {
    const all = new Float32Array(list.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of list) {
      all.set(p, o);
      o += p.length;
    }
    result[name] = all;
  }
  return result;
}

/** argmax of every row of [rows, cols]. */
export function argmaxRows(values: ArrayLike<number>, cols: number): Int32Array {
  const rows = values.length / cols;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (values[r * cols + c] > values[r * cols + best]) best = c;
    out[r] = best;
  }
  return out;
}
