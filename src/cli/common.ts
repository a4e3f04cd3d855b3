/** Pieces every command shares: backend setup, model flags, output. */
import '../models/index.js';
import { describeBackend, initBackend, type BackendInfo } from '../backend/node.js';
import { loadModel } from '../models/files.js';
import type { CapsuleDecoder, ClassifierModel } from '../models/model.js';
import { modelPathOrPretrained, pretrainedDir } from '../models/pretrained.js';
import type { ModelJson } from '../models/serialization.js';
import { UsageError } from './args.js';

/** The tfjs backend --backend names (auto: the fastest available), announced on stderr unless --json (or quiet). */
export async function setupBackend(flags: { backend?: string; json?: boolean; quiet?: boolean }): Promise<BackendInfo> {
  const info = await initBackend(flags.backend === 'auto' ? undefined : flags.backend);
  if (!flags.json && !flags.quiet) process.stderr.write(`${describeBackend(info)}\n`);
  return info;
}

export function loadModelFromFlags(flags: { model?: string; pretrained?: string }): { model: ClassifierModel; json: ModelJson; dir: string } {
  if (flags.model && flags.pretrained) throw new UsageError('give either --model or --pretrained, not both');
  const path = flags.pretrained ? pretrainedDir(flags.pretrained) : flags.model !== undefined ? modelPathOrPretrained(flags.model) : undefined;
  if (!path) throw new UsageError('a model is needed: --model MODEL or --pretrained NAME');
  return loadModel(path);
}

/** The model's decoder, or a usage error naming the command and the model (the model is disposed). */
export function requireDecoder(model: ClassifierModel, dir: string, command: string): CapsuleDecoder {
  if (model.decoder) return model.decoder;
  model.dispose();
  throw new UsageError(`${command} needs a model with a decoder; ${dir} is a ${model.modelType} model without one`);
}

/** Print `result` as JSON (--json) or as the text `text()` returns. */
export function report(flags: { json?: boolean }, result: unknown, text: () => string): void {
  if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${text()}\n`);
}

export function percent(x: number, digits = 2): string {
  return `${(100 * x).toFixed(digits)}%`;
}
