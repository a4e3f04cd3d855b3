/**
 * capsnet export: write a trained model (a checkpoint or model directory) as a
 * standalone model directory, optionally with float16 weights (half the
 * size), for shipping and for the browser; or, with --format onnx, as one
 * ONNX file for ONNX Runtime and other serving stacks (docs/onnx.md).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { modelToOnnx, onnxMetadata } from '../export/onnx.js';
import { ONNX_OPSET } from '../export/onnxGraph.js';
import { saveModel } from '../models/files.js';
import type { ClassifierModel } from '../models/model.js';
import { PACKAGE_ROOT } from '../models/pretrained.js';
import { WEIGHTS_FILE, type ModelJson } from '../models/serialization.js';
import { writeFileAtomic } from '../util/files.js';
import { commandSpec, COMMON_FLAGS, UsageError, type ArgsOf } from './args.js';
import { loadModelFromFlags, report, setupBackend } from './common.js';

export const exportSpec = commandSpec({
  name: 'export',
  summary: 'Write a trained model as a standalone model directory (model.json + weights.bin), optionally in float16 or 8 bits per weight, or as an ONNX file.',
  description:
    `--format onnx writes one ONNX file (opset ${ONNX_OPSET}): input 'image' [batch, height, width, channels] in [0, 1], ` +
    "output 'scores' [batch, classes]; CapsNet and Efficient-CapsNet add 'capsules' and 'reconstruction', EM capsules 'poses'. " +
    'The routing iterations are unrolled to the model\'s count, or to --routing N.',
  flags: [
    COMMON_FLAGS.model,
    COMMON_FLAGS.pretrained,
    { name: 'out', type: 'string', arg: 'PATH', help: 'new directory to write (capsnet format) or new .onnx file (onnx format)' },
    { name: 'format', type: 'string', choices: ['capsnet', 'onnx'], default: 'capsnet', help: 'what to write' },
    { name: 'float16', type: 'boolean', help: 'store weights as float16 (half the size)' },
    { name: 'uint8', type: 'boolean', help: 'store weights in 8 bits, with a scale and zero point per output channel (finer for capsule transforms), biases in float32 (about a quarter of the size; capsnet format only)' },
    { name: 'routing', type: 'int', min: 1, help: 'routing iterations to unroll in an ONNX graph (default: the model\'s)' },
    { name: 'note', type: 'string', help: 'free text stored in the model\'s metadata' },
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: [
    'capsnet export --model runs/paper --out pretrained/capsnet-mnist --float16',
    'capsnet export --pretrained mnist --format onnx --out capsnet-mnist.onnx',
    'capsnet export --pretrained mnist --uint8 --out capsnet-mnist-8bit',
  ],
});

/** capsnet's own version, from package.json. */
export function capsnetVersion(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

function exportOnnx(flags: ArgsOf<typeof exportSpec>['flags'], out: string, model: ClassifierModel, json: ModelJson, dir: string): void {
  if (!out.endsWith('.onnx')) throw new UsageError(`--out must name a .onnx file with --format onnx, got '${out}'`);
  if (existsSync(out)) throw new Error(`${out} already exists; choose a new file`);
  const version = capsnetVersion();
  const routingIterations = flags.routing;
  const metadata = onnxMetadata(model, json, { routingIterations, version, ...(flags.note ? { note: flags.note } : {}) });
  const bytes = modelToOnnx(model, { routingIterations, float16: flags.float16 === true, metadata, version });
  writeFileAtomic(out, bytes);
  const encoding = flags.float16 ? 'float16' : 'float32';
  report(flags, { out, from: dir, format: 'onnx', opset: ONNX_OPSET, encoding, bytes: bytes.byteLength, params: model.countParams(), metadata }, () => `wrote ${out}: ONNX opset ${ONNX_OPSET}, ${model.countParams().toLocaleString('en-US')} parameters, ${encoding} weights, ${(bytes.byteLength / 1e6).toFixed(1)} MB`);
}

export async function runExport({ flags }: ArgsOf<typeof exportSpec>): Promise<number> {
  const out = flags.out;
  if (!out) throw new UsageError(flags.format === 'onnx' ? '--out FILE.onnx is needed' : '--out DIR is needed');
  if (flags.routing !== undefined && flags.format !== 'onnx') throw new UsageError('--routing applies to --format onnx only (a saved model keeps its own routing iterations)');
  if (flags.uint8 && flags.float16) throw new UsageError('--uint8 and --float16 are two encodings: give one');
  if (flags.uint8 && flags.format === 'onnx') throw new UsageError('--uint8 applies to --format capsnet only (ONNX files hold float32 or, with --float16, float16 weights)');
  await setupBackend(flags);
  const { model, json, dir } = loadModelFromFlags(flags);
  try {
    if (flags.format === 'onnx') {
      exportOnnx(flags, out, model, json, dir);
      return 0;
    }
    const history = (json.metadata?.history as { testAccuracy?: number; epoch: number }[] | undefined) ?? [];
    const last = history[history.length - 1];
    const metadata: Record<string, unknown> = {
      ...(json.metadata ?? {}),
      exportedFrom: dir.split('/').slice(-3).join('/'),
      ...(last ? { epochs: last.epoch, testAccuracy: last.testAccuracy } : {}),
      ...(flags.note ? { note: flags.note } : {}),
    };
    delete metadata.epoch;
    delete metadata.batch;
    const encoding = flags.uint8 ? 'uint8' : flags.float16 ? 'float16' : 'float32';
    saveModel(model, out, { encoding, metadata });
    const bytes = statSync(join(out, WEIGHTS_FILE)).size; // what was written, not encoded again
    report(flags, { out, from: dir, encoding, weightBytes: bytes, params: model.countParams() }, () => `wrote ${out}: ${model.countParams().toLocaleString('en-US')} parameters, ${encoding}, ${(bytes / 1e6).toFixed(1)} MB of weights`);
    return 0;
  } finally {
    model.dispose();
  }
}
