/**
 * Saving and loading models as directories (Node only): model.json and
 * weights.bin, in the format described in ./serialization.ts. A training
 * output directory also works wherever a model is expected: its latest
 * checkpoint is a model directory.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeDirAtomic } from '../util/files.js';
import type { ClassifierModel } from './model.js';
import { modelFromArtifacts, modelToArtifacts, WEIGHTS_FILE, type ModelJson, type WeightEncoding } from './serialization.js';

export const LATEST_FILE = 'latest';
export const CHECKPOINTS_DIR = 'checkpoints';

/**
 * The model directory that `path` names: a directory with model.json, a
 * training output directory (its latest checkpoint), or model.json itself.
 */
export function resolveModelDir(path: string): string {
  if (!existsSync(path)) throw new Error(`model not found: ${path}`);
  if (statSync(path).isFile()) {
    if (path.endsWith('model.json')) return join(path, '..');
    throw new Error(`${path} is not a model directory or model.json`);
  }
  if (existsSync(join(path, 'model.json'))) return path;
  const latest = join(path, LATEST_FILE);
  if (existsSync(latest)) {
    const dir = join(path, CHECKPOINTS_DIR, readFileSync(latest, 'utf8').trim());
    if (!existsSync(join(dir, 'model.json'))) throw new Error(`${latest} names checkpoint ${dir}, which has no model.json`);
    return dir;
  }
  throw new Error(`${path} holds no model.json and no training checkpoint`);
}

export function readModelDir(dir: string): { json: unknown; weights: Uint8Array } {
  const jsonPath = join(dir, 'model.json');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(jsonPath, 'utf8'));
  } catch (e) {
    throw new Error(`${jsonPath}: ${(e as Error).message.startsWith('ENOENT') ? 'not found' : 'not valid JSON'}`);
  }
  const j = json as Partial<ModelJson>;
  const weightsName = j?.weightsManifest?.[0]?.paths?.[0] ?? WEIGHTS_FILE;
  const weightsPath = join(dir, weightsName);
  if (!existsSync(weightsPath)) throw new Error(`${weightsPath}: weights file not found`);
  return { json, weights: readFileSync(weightsPath) };
}

/** Load a model from a model directory, model.json, or training output directory. */
export function loadModel(path: string): { model: ClassifierModel; json: ModelJson; dir: string } {
  const dir = resolveModelDir(path);
  const { json, weights } = readModelDir(dir);
  return { ...modelFromArtifacts(json, weights, dir), dir };
}

/** The files of a saved model, for writing into a directory. */
export function modelFiles(model: ClassifierModel, options: { encoding?: WeightEncoding; metadata?: Record<string, unknown> } = {}): Record<string, Uint8Array | string> {
  const { json, weights } = modelToArtifacts(model, options);
  return { 'model.json': JSON.stringify(json, null, 1), [WEIGHTS_FILE]: weights };
}

/** Save a model into a new directory (written atomically; `dir` must not exist). */
export function saveModel(model: ClassifierModel, dir: string, options: { encoding?: WeightEncoding; metadata?: Record<string, unknown> } = {}): void {
  if (existsSync(dir)) throw new Error(`${dir} already exists; choose a new directory`);
  writeDirAtomic(dir, modelFiles(model, options));
}
