/**
 * Pretrained models shipped in the repository's pretrained/ directory
 * (Node only), by name, for `--pretrained NAME`.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface PretrainedEntry {
  name: string;
  dir: string;
  description: string;
}

/** The package root: dist/src/models/ is three levels below it. */
export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const PRETRAINED_ROOT = join(PACKAGE_ROOT, 'pretrained');

const ENTRIES: PretrainedEntry[] = [
  { name: 'mnist', dir: 'capsnet-mnist', description: 'CapsNet, paper preset, trained on MNIST' },
  { name: 'mnist-small', dir: 'capsnet-small-mnist', description: 'CapsNet, small preset, trained on MNIST (quick demos)' },
  { name: 'fashion-mnist', dir: 'capsnet-fashion-mnist', description: 'CapsNet, paper preset, trained on Fashion-MNIST' },
  { name: 'em-mnist', dir: 'em-small-mnist', description: 'Matrix capsules with EM routing, small preset, 2 EM iterations, trained on MNIST' },
  { name: 'multimnist', dir: 'capsnet-multimnist', description: 'CapsNet, paper preset, trained on MultiMNIST (two overlapping digits on 36x36)' },
  { name: 'efficient-mnist', dir: 'efficient-mnist', description: 'Efficient-CapsNet (self-attention routing), mnist preset, trained on MNIST' },
];

export function listPretrained(): (PretrainedEntry & { available: boolean })[] {
  return ENTRIES.map((e) => ({ ...e, dir: join(PRETRAINED_ROOT, e.dir), available: existsSync(join(PRETRAINED_ROOT, e.dir, 'model.json')) }));
}

export function pretrainedDir(name: string): string {
  const e = listPretrained().find((p) => p.name === name);
  if (!e) throw new Error(`unknown pretrained model '${name}': expected one of ${ENTRIES.map((p) => p.name).join(', ')}`);
  if (!e.available) throw new Error(`pretrained model '${name}' is not in this copy (${e.dir} has no model.json)`);
  return e.dir;
}

/** `value` as a path, or, when no such path exists and it names a pretrained model, that model's directory. */
export function modelPathOrPretrained(value: string): string {
  if (existsSync(value)) return value;
  return ENTRIES.some((e) => e.name === value) ? pretrainedDir(value) : value;
}
