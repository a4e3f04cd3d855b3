/**
 * capsnet attack: accuracy under white-box FGSM and BIM attacks, untargeted
 * and targeted, over a range of epsilons, for one or several trained models
 * side by side. Writes the curves as a PNG, a Markdown table and JSON.
 */
import * as tf from '@tensorflow/tfjs';
import { basename, join } from 'node:path';
import { batchCount, batchIndices, makeBatch, sequentialOrder } from '../data/batches.js';
import { take } from '../data/dataset.js';
import { loadData } from '../data/spec.js';
import { loadModel } from '../models/files.js';
import { modelPathOrPretrained } from '../models/pretrained.js';
import type { ClassifierModel } from '../models/model.js';
import { adversarialBatch, fgsmSweep, predict, randomTargets, type AttackMethod } from '../training/attacks.js';
import { checkCompatible } from '../training/evaluate.js';
import { Progress } from '../util/progress.js';
import { mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../util/files.js';
import { writePng } from '../util/imageFiles.js';
import { renderPanels, type Panel } from '../util/plot.js';
import { Rng } from '../util/rng.js';
import { commandSpec, COMMON_FLAGS, UsageError, type ArgsOf } from './args.js';
import { percent, report, setupBackend } from './common.js';
import { loadOptions, ONE_SPLIT_DATA_FLAGS, oneSplitDataSpec, withModelDataset } from './dataFlags.js';

export const attackSpec = commandSpec({
  name: 'attack',
  summary: 'Accuracy under FGSM and BIM attacks (untargeted and targeted) over a range of epsilons, for one or more models.',
  description:
    'The attacks differentiate the cross-entropy of each model\'s class distribution (softmax of its logits, or its scores normalised to sum to one) ' +
    'unless --loss model, which uses the model\'s own training loss. Untargeted attacks report accuracy; targeted attacks move each image towards ' +
    'a seeded random wrong class and report both accuracy and the fraction classified as the target. Writes <out>/attack.png, attack.md and attack.json.',
  flags: [
    COMMON_FLAGS.model,
    { name: 'models', type: 'string', arg: 'MODEL,MODEL,...', help: 'several saved models to compare (comma-separated, as --model takes them)' },
    { name: 'names', type: 'string', arg: 'NAME,...', help: 'legend names for the models (default: model type and directory)' },
    ...ONE_SPLIT_DATA_FLAGS,
    { name: 'split', type: 'string', choices: ['train', 'test'], default: 'test', help: 'dataset split' },
    { name: 'methods', type: 'string', default: 'fgsm,bim', help: 'attacks to run: fgsm, bim' },
    { name: 'modes', type: 'string', default: 'untargeted,targeted', help: 'untargeted, targeted' },
    { name: 'eps', type: 'string', default: '0,0.05,0.1,0.15,0.2,0.25,0.3', help: 'epsilons, in pixel units of [0, 1] images' },
    { name: 'iterations', type: 'int', min: 1, default: 10, help: 'BIM iterations' },
    { name: 'step-size', type: 'number', min: 0, help: 'BIM step per iteration [default: 2.5 eps / iterations]' },
    { name: 'loss', type: 'string', choices: ['ce', 'model'], default: 'ce', help: 'loss the attacks climb' },
    { name: 'clip', type: 'string', default: 'auto', help: 'pixel range: auto ([0, 1] when the data lie in it), none, or LO,HI' },
    { name: 'seed', type: 'int', default: 1, help: 'seed of the targeted attacks\' target classes' },
    COMMON_FLAGS.batchSize,
    { name: 'out', type: 'string', arg: 'DIR', default: join('runs', 'attack'), help: 'directory for attack.png, attack.md and attack.json' },
    COMMON_FLAGS.backend,
    COMMON_FLAGS.json,
  ],
  examples: [
    'capsnet attack --models runs/em-small-mnist,runs/capsnet-small-mnist,runs/cnn-small-mnist --names "EM capsules,CapsNet,CNN" --limit 1000',
    'capsnet attack --model runs/em-small-mnist --methods fgsm --modes untargeted --eps 0,0.1,0.2,0.3',
  ],
});

export interface AttackRow {
  model: string;
  method: AttackMethod;
  mode: 'untargeted' | 'targeted';
  epsilon: number;
  accuracy: number;
  /** Targeted attacks: fraction classified as the target class. */
  targetSuccess?: number;
}

function list(raw: string, flag: string): string[] {
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (items.length === 0) throw new UsageError(`--${flag} needs at least one value`);
  return items;
}

/** The comma-separated values of --flag, each one of `allowed`. */
function listOf<const C extends string>(raw: string, flag: string, allowed: readonly C[]): C[] {
  const items = list(raw, flag);
  const known = (s: string): s is C => (allowed as readonly string[]).includes(s);
  for (const s of items) if (!known(s)) throw new UsageError(`--${flag} takes ${allowed.join(' and ')}, got '${s}'`);
  return items.filter(known);
}

function parseEpsilons(raw: string): number[] {
  const eps = list(raw, 'eps').map((s) => {
    const v = Number(s);
    if (!Number.isFinite(v) || v < 0) throw new UsageError(`--eps values must be non-negative numbers, got '${s}'`);
    return v;
  });
  return [...new Set(eps)].sort((a, b) => a - b);
}

function parseClip(raw: string, sample: Float32Array): [number, number] | null {
  if (raw === 'none') return null;
  if (raw === 'auto') {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of sample) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    return lo >= 0 && hi <= 1 ? [0, 1] : null;
  }
  const parts = raw.split(',').map(Number);
  if (parts.length !== 2 || !parts.every(Number.isFinite) || !(parts[0] < parts[1])) throw new UsageError(`--clip must be auto, none or LO,HI with LO < HI, got '${raw}'`);
  return [parts[0], parts[1]];
}

function markdownTables(rows: AttackRow[], names: string[], epsilons: number[]): string {
  const out: string[] = [];
  const groups = [...new Set(rows.map((r) => `${r.method} ${r.mode}`))];
  for (const g of groups) {
    const [method, mode] = g.split(' ');
    const targeted = mode === 'targeted';
    out.push(`### ${method.toUpperCase()}, ${mode}`, '', targeted ? 'Accuracy / fraction classified as the target class.' : 'Accuracy.', '');
    out.push(`| epsilon | ${names.join(' | ')} |`, `| ---: | ${names.map(() => '---:').join(' | ')} |`);
    for (const e of epsilons) {
      const cells = names.map((n) => {
        const r = rows.find((x) => x.model === n && x.method === method && x.mode === mode && x.epsilon === e);
        if (!r) return '';
        return targeted ? `${percent(r.accuracy, 1)} / ${percent(r.targetSuccess ?? 0, 1)}` : percent(r.accuracy, 1);
      });
      out.push(`| ${e} | ${cells.join(' | ')} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

export function attackPanels(rows: AttackRow[], names: string[], numClasses: number): Panel[] {
  const groups = [...new Set(rows.map((r) => `${r.method} ${r.mode}`))];
  const panels: Panel[] = [];
  for (const g of groups) {
    const [method, mode] = g.split(' ');
    const sel = (n: string) => rows.filter((r) => r.model === n && r.method === method && r.mode === mode);
    panels.push({
      title: `${method} ${mode}: accuracy`,
      xLabel: 'epsilon',
      yLabel: 'accuracy',
      reference: { y: 1 / numClasses, label: 'chance' },
      series: names.map((n) => ({ name: n, points: sel(n).map((r) => [r.epsilon, r.accuracy] as [number, number]) })),
    });
    if (mode === 'targeted') {
      panels.push({
        title: `${method} targeted: success`,
        xLabel: 'epsilon',
        yLabel: 'classified as target',
        series: names.map((n) => ({ name: n, points: sel(n).map((r) => [r.epsilon, r.targetSuccess ?? 0] as [number, number]) })),
      });
    }
  }
  return panels;
}

export async function runAttack({ flags }: ArgsOf<typeof attackSpec>): Promise<number> {
  const dirs = flags.models ? list(flags.models, 'models') : flags.model ? [flags.model] : [];
  if (dirs.length === 0) throw new UsageError('a model is needed: --model MODEL or --models MODEL,MODEL,...');
  if (flags.models && flags.model) throw new UsageError('give either --model or --models, not both');
  const methods: AttackMethod[] = listOf(flags.methods, 'methods', ['fgsm', 'bim']);
  const modes: AttackRow['mode'][] = listOf(flags.modes, 'modes', ['untargeted', 'targeted']);
  const epsilons = parseEpsilons(flags.eps);
  const givenNames = flags.names ? list(flags.names, 'names') : null;
  if (givenNames && givenNames.length !== dirs.length) throw new UsageError(`--names has ${givenNames.length} names for ${dirs.length} models`);

  await setupBackend(flags);
  const loaded = dirs.map((d) => loadModel(modelPathOrPretrained(d)));
  const names = givenNames ?? loaded.map((l, i) => `${l.model.modelType} ${basename(dirs[i])}`);
  if (new Set(names).size !== names.length) throw new UsageError('the models need distinct names (use --names)');
  try {
    const full = await loadData(oneSplitDataSpec({ ...withModelDataset(flags, ...loaded.map((l) => l.json)), limit: undefined }), flags.split, loadOptions(flags));
    const ds = take(full, flags.limit ?? 1000);
    for (const { model } of loaded) checkCompatible(model, ds);
    const numClasses = ds.numClasses;
    if (numClasses < 2) throw new Error(`${ds.name} has fewer than two classes`);
    const targetsAll = randomTargets(ds.labels.subarray(0, ds.count), numClasses, new Rng(flags.seed));
    const batchSize = flags['batch-size'];
    const order = sequentialOrder(ds.count);
    const nb = batchCount(ds.count, batchSize);
    const clip = parseClip(flags.clip, makeBatch(ds, batchIndices(order, 0, batchSize)).x);
    const loss = flags.loss;
    const iterations = flags.iterations;
    const stepSize = flags['step-size'];
    const rows: AttackRow[] = [];
    const t0 = performance.now();
    loaded.forEach(({ model }, mi) => {
      const name = names[mi];
      const counts = new Map<string, { correct: number; hit: number }>();
      const tally = (key: string, pred: Int32Array, labels: Int32Array, targets: Int32Array | null) => {
        const c = counts.get(key) ?? { correct: 0, hit: 0 };
        for (let i = 0; i < pred.length; i++) {
          if (pred[i] === labels[i]) c.correct++;
          if (targets && pred[i] === targets[i]) c.hit++;
        }
        counts.set(key, c);
      };
      const perBatch = modes.length * methods.reduce((n, m) => n + (m === 'fgsm' ? 1 : epsilons.filter((e) => e > 0).length), 0);
      const progress = new Progress({ label: `attack ${name}`, total: nb * perBatch, itemsPerStep: batchSize, enabled: !flags.json });
      let done = 0;
      for (let b = 0; b < nb; b++) {
        const idx = batchIndices(order, b, batchSize);
        const batch = makeBatch(ds, idx);
        const [h, w, c] = model.inputShape;
        const x = tf.tensor4d(batch.x, [batch.size, h, w, c]);
        const labels = batch.labels;
        const targets = Int32Array.from(idx, (i) => targetsAll[i]);
        const clean = predict(model, x);
        for (const mode of modes) {
          const tg = mode === 'targeted' ? targets : undefined;
          for (const method of methods) {
            if (method === 'fgsm') {
              const advs = fgsmSweep(model, x, labels, epsilons, { targets: tg, loss, clip });
              advs.forEach((adv, k) => {
                tally(`${method} ${mode} ${epsilons[k]}`, epsilons[k] === 0 ? clean : predict(model, adv), labels, tg ?? null);
                adv.dispose();
              });
              progress.update(++done);
            } else {
              for (const e of epsilons) {
                if (e === 0) {
                  tally(`${method} ${mode} 0`, clean, labels, tg ?? null);
                  continue;
                }
                const adv = adversarialBatch(model, x, labels, { method, epsilon: e, targets: tg, loss, iterations, stepSize, clip });
                tally(`${method} ${mode} ${e}`, predict(model, adv), labels, tg ?? null);
                adv.dispose();
                progress.update(++done);
              }
            }
          }
        }
        x.dispose();
      }
      progress.finish();
      for (const mode of modes) {
        for (const method of methods) {
          for (const e of epsilons) {
            const cnt = counts.get(`${method} ${mode} ${e}`)!;
            rows.push({ model: name, method, mode, epsilon: e, accuracy: cnt.correct / ds.count, ...(mode === 'targeted' ? { targetSuccess: cnt.hit / ds.count } : {}) });
          }
        }
      }
    });
    const seconds = (performance.now() - t0) / 1000;
    const outDir = flags.out;
    mkdirSync(outDir, { recursive: true });
    const modelsInfo = loaded.map((l, i) => ({ name: names[i], dir: l.dir, modelType: l.model.modelType, params: l.model.countParams() }));
    const settings = { dataset: ds.name, count: ds.count, epsilons, methods, modes, loss, iterations, stepSize: stepSize ?? '2.5 eps / iterations', clip, seed: flags.seed };
    const md = [`# Adversarial attacks on ${ds.name} (${ds.count} images)`, '', `Models: ${modelsInfo.map((m) => `${m.name} (${m.modelType}, ${m.params.toLocaleString('en-US')} parameters, ${m.dir})`).join('; ')}.`, `Loss: ${loss === 'ce' ? 'cross-entropy of the normalised scores' : "the model's own loss"}; BIM: ${iterations} iterations. Chance: ${percent(1 / numClasses, 1)}.`, '', markdownTables(rows, names, epsilons)].join('\n');
    writeFileAtomic(join(outDir, 'attack.md'), md);
    writeFileAtomic(join(outDir, 'attack.json'), JSON.stringify({ models: modelsInfo, ...settings, seconds, results: rows }, null, 1));
    writePng(join(outDir, 'attack.png'), renderPanels(attackPanels(rows, names, numClasses), 2));
    report(flags, { outDir, models: modelsInfo, ...settings, seconds, results: rows }, () => `${markdownTables(rows, names, epsilons)}\nwrote ${join(outDir, 'attack.png')}, attack.md and attack.json (${Math.round(seconds)} s)`);
  } finally {
    for (const l of loaded) l.model.dispose();
  }
  return 0;
}
